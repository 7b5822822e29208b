"""uWSGI's process options, honoured: real gyre masters, workers, daemons and hooks, and the
same check against Debian's uWSGI where gyre claims its behaviour.

    cheaper              workers held busy (an app that waits until told) make the master add
                         workers up to --processes; once free, it stops them down to --cheaper
    max-worker-lifetime  a worker replaced after its time, gracefully
    mercies              --reload-mercy bounds a stop too; --worker-reload-mercy a reload too
    fs-reload            inotify on a directory: a new file there is a graceful reload;
                         --touch-chain-reload is --touch-reload
    attach-daemon        started, restarted when killed, stopped (SIGTERM, then SIGKILL) with
                         the master; smart-attach-daemon follows its pid file
    hooks                every phase runs where and as often as uWSGI runs it, in order; the
                         actions; a failing hook ends the instance; an unknown action is refused
    daemonize            detached (own session), pidfile holds the daemon's pid, SIGTERM stops it
    pidfiles, umask, procname, no-orphans, vacuum/die-on-term/thunder-lock/lazy

Every process is started in a session of its own and killed as a group at the end of its test
(daemonized ones by their pid file). Every wait is a bounded wait for a condition.
"""
import os
import pwd
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import APPS, GYRE, Session, uwsgi_request, parse_response, wait_for

APP = os.path.join(APPS, "procopt_app.py")
STARTED = re.compile(r"master: started worker (\d+) \(pid (\d+)\)")


# ---- processes ---------------------------------------------------------------------------------

class Server(Session):
    """gyre (or uwsgi, kind="uwsgi") with a master, on a unix socket, in a session of its own."""

    def __init__(self, tmp, *args, kind="gyre", app=APP, wait=True):
        self.kind = kind
        self.socket = os.path.join(tmp, "%s-%d.sock" % (kind, time.monotonic_ns()))
        if kind == "gyre":
            argv = [GYRE, "--socket", self.socket, "--wsgi-file", app, *args]
        else:
            argv = ["uwsgi", "--plugin", "python3", "--socket", self.socket, "--wsgi-file", app,
                    *args]
        super().__init__(tmp, argv)
        if wait:
            self.wait_serving()

    def wait_serving(self, timeout=15.0):
        def up():
            if not self.alive():
                raise AssertionError("%s exited (%s):\n%s" % (self.kind, self.proc.returncode,
                                                               self.log()))
            if not os.path.exists(self.socket):
                return False
            try:
                return get(self, "/pid", timeout=2)[0] == 200
            except OSError:
                return False
        wait_for(up, timeout, what="%s serving" % self.kind)

    def wait_log(self, text, timeout=15.0, count=1):
        def seen():
            n = self.log().count(text)
            if n < count and not self.alive():
                raise AssertionError("%s exited before %r:\n%s" % (self.kind, text, self.log()))
            return n >= count
        wait_for(seen, timeout, what="%r x%d in the log" % (text, count))

    def children(self):
        return children_of(self.pid)


def children_of(pid):
    """The pids whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d))
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2] != "Z"
    except OSError:
        return False


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read()


def get(s, path, query="", timeout=10.0):
    raw = uwsgi_request(s.socket, {"PATH_INFO": path, "QUERY_STRING": query,
                                   "REQUEST_URI": path + ("?" + query if query else "")},
                        timeout=timeout)
    if not raw:
        return None, b""
    status, _, body = parse_response(raw)
    return status, body


@pytest.fixture
def servers(tmp_path):
    """servers(*args, kind=...) -> Server; every one killed as a group at the end."""
    started = []

    def start(*args, **kw):
        s = Server(str(tmp_path), *args, **{k: v for k, v in kw.items() if k != "wait"},
                   wait=False)
        started.append(s)
        if kw.get("wait", True):
            s.wait_serving()
        return s
    start.tmp = str(tmp_path)
    yield start
    for s in reversed(started):
        s.kill_group()


class Holder:
    """Requests to /hold in threads: each keeps a worker core busy until release()."""

    def __init__(self, server, tmp):
        self.server = server
        self.tmp = tmp
        self.flag = os.path.join(tmp, "release-%d" % time.monotonic_ns())
        self.results = []
        self.threads = []

    def hold(self, wait=True):
        """Send one; returns once the app is running it (wait), or at once."""
        entered = os.path.join(self.tmp, "entered-%d" % time.monotonic_ns())

        def run():
            try:
                self.results.append(get(self.server, "/hold", "f=%s&e=%s" % (self.flag, entered),
                                        timeout=90)[0])
            except OSError as e:
                self.results.append(repr(e))
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)
        if wait:
            wait_for(lambda: os.path.exists(entered), 20, what="the held request in the app")

    def release(self):
        open(self.flag, "w").close()
        for t in self.threads:
            t.join(90)
        return self.results


# ---- cheaper -----------------------------------------------------------------------------------

def check_cheaper(servers, kind):
    s = servers("--master", "--processes", "3", "--cheaper", "1", "--cheaper-initial", "1",
                "--cheaper-step", "1", "--cheaper-overload", "1", kind=kind)
    wait_for(lambda: len(s.children()) == 1, 10, what="one worker at the start")
    h = Holder(s, servers.tmp)
    # Six requests that each hold a core until released: more than three workers can run, so
    # every worker there is stays busy (gyre's worker also queues one behind its busy core),
    # and the master adds workers one at a time until --processes.
    for _ in range(6):
        h.hold(wait=False)
    wait_for(lambda: len(s.children()) == 3, 30, what="3 workers while all are busy")
    assert h.release() == [200] * 6
    wait_for(lambda: len(s.children()) == 1, 30, what="back to --cheaper 1 worker when idle")
    assert get(s, "/pid")[0] == 200
    return s


def test_cheaper_adds_busy_workers_and_stops_idle_ones(servers):
    s = check_cheaper(servers, "gyre")
    log = s.log()
    assert "all 1 worker(s) busy" in log and "all 2 worker(s) busy" in log, log
    assert "stopping worker 3" in log and "stopping worker 2" in log, log
    # Stopped gracefully: an exit status, not a kill.
    assert re.search(r"worker 3 \(pid \d+\) exited with status 0", log), log


def test_cheaper_uwsgi_reference(servers):
    check_cheaper(servers, "uwsgi")


def test_cheaper_algo_other_than_spare_warns_and_runs_spare(servers):
    s = servers("--processes", "2", "--cheaper", "1", "--cheaper-algo", "busyness",
                "--cheaper-busyness-max", "60", "--cheaper-busyness-min", "20")
    s.wait_log("--cheaper-algo busyness is not in gyre: using spare")
    wait_for(lambda: len(s.children()) == 1, 10, what="the --cheaper count")


# ---- lifetimes and mercies ---------------------------------------------------------------------

def test_max_worker_lifetime_replaces_the_worker_gracefully(servers):
    s = servers("--master", "--processes", "2", "--max-worker-lifetime", "2",
                "--max-worker-lifetime-delta", "2")
    first = dict((int(i), int(p)) for i, p in STARTED.findall(s.log()))
    # worker 1 after 2 + 1*2 s, worker 2 after 2 + 2*2 s: never both at once.
    s.wait_log("(--max-worker-lifetime 4): replacing it", timeout=20)
    s.wait_log("(--max-worker-lifetime 6): replacing it", timeout=20)
    wait_for(lambda: not alive(first[1]) and not alive(first[2]), 20, what="old workers gone")
    log = s.log()
    for pid in first.values():
        assert "(pid %d) exited with status 0" % pid in log, log
    assert get(s, "/pid")[0] == 200


def test_reload_mercy_bounds_a_stop_too(servers):
    s = servers("--master", "--reload-mercy", "1")
    h = Holder(s, servers.tmp)
    h.hold()
    s.signal(signal.SIGTERM)
    s.wait_log("graceful stop, 1 connection(s) in flight, up to 1 s")
    assert s.wait_exit(15) == 0
    open(h.flag, "w").close()


def test_worker_reload_mercy_bounds_a_reload_too(servers):
    s = servers("--master", "--worker-reload-mercy", "1")
    h = Holder(s, servers.tmp)
    h.hold()
    s.signal(signal.SIGHUP)
    s.wait_log("graceful stop, 1 connection(s) in flight, up to 1 s")
    s.wait_log("still open after 1 s of grace")
    open(h.flag, "w").close()
