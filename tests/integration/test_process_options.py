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
    master-fifo          uWSGI's one-letter commands: reload, stop, a worker more or less ...

Every process is started in a session of its own and killed as a group at the end of its test
(daemonized ones by their pid file). Every wait is a bounded wait for a condition.
"""
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
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
    # The master logs a worker's exit when it reaps it, a moment after the process is gone.
    for pid in first.values():
        s.wait_log("(pid %d) exited with status 0" % pid, timeout=10)
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


# ---- reload triggers ---------------------------------------------------------------------------

def workers_after_reload(s, before):
    """Wait for a reload to replace every worker of before (pids); the new pids."""
    def replaced():
        now = set(s.children())
        return now and not (now & before) and get(s, "/pid", timeout=5)[0] == 200
    try:
        wait_for(replaced, 20, what="every worker replaced")
    except AssertionError as e:
        raise AssertionError("%s: workers %s, before %s\n%s" % (e, s.children(), before,
                                                                s.log()))
    return set(s.children())


def test_fs_reload_on_a_change_in_a_directory(servers):
    d = os.path.join(servers.tmp, "code")
    os.mkdir(d)
    s = servers("--master", "--processes", "2", "--fs-reload", d)
    before = set(s.children())
    assert len(before) == 2
    with open(os.path.join(d, "new.py"), "w") as f:
        f.write("x = 1\n")
    s.wait_log("graceful reload (%s)" % d)
    workers_after_reload(s, before)


def test_fs_reload_watches_a_file_deleted_and_created_again(servers):
    f = os.path.join(servers.tmp, "settings.py")
    open(f, "w").close()
    s = servers("--master", "--fs-reload", f)
    before = set(s.children())
    os.unlink(f)
    before = workers_after_reload(s, before)
    n = s.log().count("graceful reload (%s)" % f)
    open(f, "w").close()  # back: a change too, and watched again
    s.wait_log("graceful reload (%s)" % f, count=n + 1)
    before = workers_after_reload(s, before)
    n = s.log().count("graceful reload (%s)" % f)
    with open(f, "a") as fh:
        fh.write("DEBUG = False\n")
    s.wait_log("graceful reload (%s)" % f, count=n + 1)


def test_fs_reload_an_editors_save_is_one_reload(servers):
    """An editor writes a new file and renames it over the old one: the watch is lost and
    added again at once, without a second reload for the same save."""
    f = os.path.join(servers.tmp, "views.py")
    open(f, "w").close()
    s = servers("--master", "--fs-reload", f)
    before = set(s.children())
    text = "graceful reload (%s)" % f
    for n, content in ((1, "a = 1\n"), (2, "a = 2\n")):
        with open(f + ".swp", "w") as fh:
            fh.write(content)
        os.replace(f + ".swp", f)
        s.wait_log(text, count=n)
        before = workers_after_reload(s, before)
        assert s.log().count(text) == n, s.log()


@pytest.mark.parametrize("option", ["--touch-chain-reload", "--touch-workers-reload"])
def test_touch_chain_and_workers_reload(servers, option):
    f = os.path.join(servers.tmp, "reload.txt")
    open(f, "w").close()
    s = servers("--master", "--processes", "2", option, f)
    before = set(s.children())
    t = time.time() + 5
    os.utime(f, (t, t))
    s.wait_log("graceful reload (%s)" % f)
    workers_after_reload(s, before)


# ---- attached daemons --------------------------------------------------------------------------

def pids_in(path):
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def check_attach_daemon(servers, kind):
    rec = os.path.join(servers.tmp, "daemon-%s.pids" % kind)
    s = servers("--master", "--attach-daemon", "echo $$ >> %s; exec sleep 600" % rec, kind=kind)
    wait_for(lambda: len(pids_in(rec)) == 1, 15, what="the daemon started")
    first = pids_in(rec)[0]
    assert alive(first) and first in s.children()
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(pids_in(rec)) == 2, 15, what="the daemon restarted")
    second = pids_in(rec)[1]
    assert second != first and alive(second)
    s.signal(signal.SIGINT if kind == "uwsgi" else signal.SIGTERM)
    s.wait_exit(20)
    wait_for(lambda: not alive(second), 10, what="the daemon stopped with the master")
    return s


def test_attach_daemon_restarted_and_stopped_with_the_master(servers):
    s = check_attach_daemon(servers, "gyre")
    assert s.proc.returncode == 0
    assert re.search(r'daemon "echo .*" \(pid \d+\) killed by signal 9', s.log()), s.log()


def test_attach_daemon_uwsgi_reference(servers):
    check_attach_daemon(servers, "uwsgi")


def test_attach_daemon_ignoring_sigterm_is_killed(servers):
    rec = os.path.join(servers.tmp, "stubborn.pids")
    s = servers("--attach-daemon", "trap '' TERM; echo $$ >> %s; while :; do sleep 0.1; done"
                % rec)
    wait_for(lambda: len(pids_in(rec)) == 1, 15, what="the daemon started")
    s.signal(signal.SIGTERM)
    assert s.wait_exit(30) == 0
    assert not alive(pids_in(rec)[0])
    assert "still running 5 s after signal 15: killing it" in s.log()


def test_attach_daemon_dying_at_once_is_restarted_with_a_growing_delay(servers):
    rec = os.path.join(servers.tmp, "crash.pids")
    s = servers("--attach-daemon", "echo $$ >> %s; exit 3" % rec)
    s.wait_log("restarting in 1 s", timeout=20)
    # 0.5 s, 1 s, 2 s ... between starts: a handful in a few seconds, not hundreds.
    assert len(pids_in(rec)) < 10
    assert "exited with status 3" in s.log()


def test_smart_attach_daemon_follows_its_pidfile(servers):
    pidfile = os.path.join(servers.tmp, "smart.pid")
    # A daemon that forks away (the launcher exits at once) and writes its pid file.
    s = servers("--smart-attach-daemon", "%s sleep 600 & echo $! > %s" % (pidfile, pidfile))
    wait_for(lambda: pids_in(pidfile) and alive(pids_in(pidfile)[0]), 15, what="the daemon")
    first = pids_in(pidfile)[0]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: pids_in(pidfile) and pids_in(pidfile)[0] != first
             and alive(pids_in(pidfile)[0]), 15, what="the daemon started again")
    second = pids_in(pidfile)[0]
    s.signal(signal.SIGTERM)
    assert s.wait_exit(20) == 0
    wait_for(lambda: not alive(second), 10, what="the daemon stopped with the master")


def test_smart_attach_daemon2_detaches_a_foreground_command(servers):
    pidfile = os.path.join(servers.tmp, "smart2.pid")
    s = servers("--smart-attach-daemon2", "%s exec sleep 600" % pidfile)
    wait_for(lambda: pids_in(pidfile) and alive(pids_in(pidfile)[0]), 15, what="the daemon")
    first = pids_in(pidfile)[0]
    assert os.getsid(first) != os.getsid(s.pid)  # detached: a session of its own
    assert b"sleep" in cmdline(first)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: pids_in(pidfile) and pids_in(pidfile)[0] != first
             and alive(pids_in(pidfile)[0]), 15, what="the daemon started again")
    second = pids_in(pidfile)[0]
    try:
        s.signal(signal.SIGTERM)
        assert s.wait_exit(20) == 0
        wait_for(lambda: not alive(second), 10, what="the daemon stopped with the master")
    finally:
        if alive(second):
            os.kill(second, signal.SIGKILL)


@pytest.mark.parametrize("kind", ["gyre", "uwsgi"])
def test_attach_daemon2_keyval(servers, kind):
    rec = os.path.join(servers.tmp, "kv-%s.pids" % kind)
    # Deaf to SIGTERM, stopped by its stopsignal (SIGUSR1) at once.
    s = servers("--master", "--attach-daemon2",
                "cmd=trap '' TERM; echo $$ >> %s; while :; do sleep 0.1; done,stopsignal=10"
                % rec, kind=kind)
    wait_for(lambda: len(pids_in(rec)) == 1, 15, what="the daemon started")
    pid = pids_in(rec)[0]
    s.signal(signal.SIGTERM if kind == "gyre" else signal.SIGINT)
    assert s.wait_exit(20) == 0
    wait_for(lambda: not alive(pid), 10, what="the daemon stopped by its stopsignal")
    assert "killing it" not in s.log()


def test_attach_daemon2_smart_and_bad_specs(servers):
    pidfile, out = os.path.join(servers.tmp, "kv.pid"), os.path.join(servers.tmp, "kv.out")
    # A comma inside the command stays in it: only ",key=" starts the next key.
    s = servers("--attach-daemon2", "cmd=echo one,two > %s; exec sleep 600,pidfile=%s,"
                "daemonize=1,freq=3" % (out, pidfile))
    wait_for(lambda: pids_in(pidfile) and alive(pids_in(pidfile)[0]), 15, what="the daemon")
    wait_for(lambda: os.path.exists(out) and open(out).read() == "one,two\n", 10, what="out")
    s.wait_log("key freq is not one gyre has: ignored")
    pid = pids_in(pidfile)[0]
    s.signal(signal.SIGTERM)
    assert s.wait_exit(20) == 0
    wait_for(lambda: not alive(pid), 10, what="the daemon stopped")
    bad = servers("--attach-daemon2", "cmd=sleep 1,daemonize=1", wait=False)
    assert bad.wait_exit(20) == 1
    assert "needs cmd=, a pidfile= with daemonize=" in bad.log()


def test_smart_attach_daemon_alive_is_adopted_not_started_twice(servers):
    pidfile = os.path.join(servers.tmp, "adopt.pid")
    runs = os.path.join(servers.tmp, "adopt.runs")
    keep = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        with open(pidfile, "w") as f:
            f.write("%d\n" % keep.pid)
        s = servers("--smart-attach-daemon",
                    "%s echo run >> %s; sleep 600 & echo $! > %s" % (pidfile, runs, pidfile))
        s.wait_log("already running (pid %d" % keep.pid)
        assert not os.path.exists(runs)
        s.signal(signal.SIGTERM)
        assert s.wait_exit(20) == 0
        wait_for(lambda: keep.poll() is not None, 10, what="the adopted daemon stopped")
    finally:
        if keep.poll() is None:
            keep.kill()
        keep.wait()


# ---- hooks -------------------------------------------------------------------------------------

PHASES = ["asap", "as-root", "as-user", "master-start", "post-fork", "pre-app", "post-app",
          "accepting"]


def hook_records(path):
    """[(phase, pid that ran the hook, uid)] in order."""
    try:
        with open(path) as f:
            return [(p, int(pid), int(uid)) for p, pid, uid in (l.split() for l in f)]
    except FileNotFoundError:
        return []


def hook_args(rec, phases=PHASES, exec_form=False):
    args = []
    for p in phases:
        # $PPID: the process that ran the hook (the shell is its child).
        cmd = "echo %s $PPID $(id -u) >> %s" % (p, rec)
        args += (["--exec-" + p, cmd] if exec_form else ["--hook-" + p, "exec:" + cmd])
    return args


@pytest.mark.parametrize("exec_form", [False, True], ids=["hook-exec", "exec"])
def test_hooks_run_once_in_the_master_or_in_each_worker_in_order(servers, exec_form):
    rec = os.path.join(servers.tmp, "hooks.txt")
    s = servers("--master", "--processes", "2",
                *hook_args(rec, PHASES + ["as-user-atexit"], exec_form))
    wait_for(lambda: sum(p == "accepting" for p, _, _ in hook_records(rec)) == 2, 15,
             what="both workers accepting")
    recs = hook_records(rec)
    master = s.pid
    workers = set(s.children())
    for phase in ("asap", "as-root", "as-user", "master-start"):
        assert [pid for p, pid, _ in recs if p == phase] == [master], recs
    for phase in ("post-fork", "pre-app", "post-app", "accepting"):
        assert sorted(pid for p, pid, _ in recs if p == phase) == sorted(workers), recs
    order = [p for p, _, _ in recs if p in ("asap", "as-root", "as-user", "master-start")]
    assert order == ["asap", "as-root", "as-user", "master-start"]
    for w in workers:
        assert [p for p, pid, _ in recs if pid == w] == ["post-fork", "pre-app", "post-app",
                                                          "accepting"]
    assert "as-user-atexit" not in [p for p, _, _ in recs]
    s.signal(signal.SIGTERM)
    assert s.wait_exit(20) == 0
    assert [pid for p, pid, _ in hook_records(rec) if p == "as-user-atexit"] == [master]
    assert 'running "exec:echo asap' in s.log()


def test_hooks_uwsgi_reference(servers):
    """The same counts under uWSGI --lazy-apps (gyre's model): master-start once in the
    master; post-fork, pre-app, post-app and accepting once in each worker."""
    rec = os.path.join(servers.tmp, "uwsgi-hooks.txt")
    s = servers("--master", "--processes", "2", "--lazy-apps",
                *hook_args(rec, ["master-start", "post-fork", "pre-app", "post-app",
                                 "accepting"]), kind="uwsgi")
    wait_for(lambda: sum(p == "accepting" for p, _, _ in hook_records(rec)) == 2, 15,
             what="both workers accepting")
    recs = hook_records(rec)
    assert [pid for p, pid, _ in recs if p == "master-start"] == [s.pid]
    workers = set(s.children())
    for phase in ("post-fork", "pre-app", "post-app", "accepting"):
        assert sorted(pid for p, pid, _ in recs if p == phase) == sorted(workers), recs


def accepting_counts(rec):
    recs = hook_records(rec)
    return {p: sum(q == p for q, _, _ in recs)
            for p in ("accepting-once", "accepting1", "accepting1-once")}


def check_accepting_variants(servers, kind):
    rec = os.path.join(servers.tmp, "%s-acc.txt" % kind)
    s = servers("--master", "--processes", "2", "--lazy-apps",
                *hook_args(rec, ["accepting-once", "accepting1", "accepting1-once"]), kind=kind)
    want = {"accepting-once": 2, "accepting1": 1, "accepting1-once": 1}
    wait_for(lambda: accepting_counts(rec) == want, 15, what="%s at the start" % want)
    # Worker 1 dies and is respawned: accepting1 again, the "once" ones not.
    one = [pid for p, pid, _ in hook_records(rec) if p == "accepting1"][0]
    os.kill(one, signal.SIGKILL)
    want = {"accepting-once": 2, "accepting1": 2, "accepting1-once": 1}
    wait_for(lambda: accepting_counts(rec) == want, 15, what="%s after a respawn" % want)
    return s, rec


@pytest.mark.parametrize("kind", ["gyre", "uwsgi"])
def test_hook_accepting_once_and_worker1(servers, kind):
    s, rec = check_accepting_variants(servers, kind)
    if kind == "gyre":
        # A reload (uWSGI's starts its master again): the "once" hooks run again.
        s.signal(signal.SIGHUP)
        want = {"accepting-once": 4, "accepting1": 3, "accepting1-once": 2}
        wait_for(lambda: accepting_counts(rec) == want, 20, what="%s after a reload" % want)


def test_hook_jail_phases_run_before_as_root(servers):
    rec = os.path.join(servers.tmp, "jail.txt")
    s = servers("--master", *hook_args(rec, ["as-root", "post-jail", "in-jail", "pre-jail"]))
    assert [(p, pid) for p, pid, _ in hook_records(rec)] == [
        ("pre-jail", s.pid), ("in-jail", s.pid), ("as-root", s.pid)]


def test_call_options(servers):
    s = servers("--call-asap", "unsetenv", "--call-pre-app", "sync")
    s.wait_log('running "call:sync" (pre app)')
    assert 'running "call:unsetenv" (asap)' in s.log()


def test_hook_as_user_runs_as_the_uid(servers):
    # Where nobody can write (pytest's own directories are root's alone).
    d = tempfile.mkdtemp(prefix="gyre-hooks-", dir="/tmp")
    try:
        os.chmod(d, 0o777)
        rec = os.path.join(d, "hooks.txt")
        open(rec, "w").close()
        os.chmod(rec, 0o666)
        nobody = pwd.getpwnam("nobody")
        servers("--master", "--uid", "nobody", "--gid", "nogroup",
                *hook_args(rec, ["as-root", "as-user", "pre-app"]))
        wait_for(lambda: any(p == "pre-app" for p, _, _ in hook_records(rec)), 15,
                 what="pre-app")
        uids = {p: uid for p, _, uid in hook_records(rec)}
        assert uids == {"as-root": 0, "as-user": nobody.pw_uid, "pre-app": nobody.pw_uid}
    finally:
        shutil.rmtree(d)


def test_hooks_without_a_master(servers):
    rec = os.path.join(servers.tmp, "single.txt")
    s = servers(*hook_args(rec, ["asap", "as-root", "as-user", "pre-app", "post-app",
                                 "accepting", "as-user-atexit"]))
    wait_for(lambda: any(p == "accepting" for p, _, _ in hook_records(rec)), 15, what="hooks")
    assert [p for p, _, _ in hook_records(rec)] == ["asap", "as-root", "as-user", "pre-app",
                                                    "post-app", "accepting"]
    assert {pid for _, pid, _ in hook_records(rec)} == {s.pid}
    s.signal(signal.SIGTERM)
    assert s.wait_exit(20) == 0
    assert hook_records(rec)[-1][0] == "as-user-atexit"


def test_hook_actions(servers):
    t = servers.tmp
    made, gone = os.path.join(t, "made"), os.path.join(t, "gone")
    open(gone, "w").close()
    written, appended = os.path.join(t, "written"), os.path.join(t, "appended")
    fifo = os.path.join(t, "fifo")
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        s = servers("--hook-asap", "mkdir:" + made,
                    "--hook-asap", "mkdir:" + made,  # there already: fine
                    "--hook-asap", "unlink:" + gone,
                    "--hook-asap", "unlink:" + gone,  # gone already: fine
                    "--hook-asap", "write:%s one two" % written,
                    "--hook-asap", "appendn:%s first" % appended,
                    "--hook-asap", "appendn:%s second" % appended,
                    "--hook-asap", "writefifo:%s through the fifo" % fifo,
                    "--hook-asap", "putenv:HOOKED=by putenv",
                    "--hook-asap", "callret:unsetenv NOT_SET",
                    "--hook-pre-app", "print:hello from pre-app",
                    "--hook-post-fork", "chdir:" + made)
        assert os.path.isdir(made) and not os.path.exists(gone)
        assert open(written).read() == "one two"
        assert open(appended).read() == "first\nsecond\n"
        assert os.read(rfd, 100) == b"through the fifo"
        assert get(s, "/env", "name=HOOKED")[1].endswith(b" by putenv")
        s.wait_log("hello from pre-app")
    finally:
        os.close(rfd)


def test_hook_action_chdir_in_a_worker(servers):
    d = os.path.join(servers.tmp, "wd")
    os.mkdir(d)
    s = servers("--master", "--hook-post-fork", "chdir:" + d)
    assert get(s, "/cwd")[1].endswith(b" " + d.encode())


@pytest.mark.parametrize("args", [["--hook-pre-app", "exec:exit 3"],
                                  ["--master", "--processes", "2", "--hook-accepting", "exec:false"],
                                  ["--master", "--hook-master-start", "mkdir:/nonexistent/dir"],
                                  ["--hook-asap", "callret:no_such_function_anywhere"],
                                  ["--hook-asap", "writefifo:/nonexistent-fifo x"]],
                         ids=["single pre-app", "worker accepting", "master-start", "callret",
                              "writefifo"])
def test_a_failing_hook_ends_the_instance(servers, args):
    s = servers(*args, wait=False)
    assert s.wait_exit(20) == 1, s.log()
    assert "FATAL hook failed" in s.log()
    assert not os.path.exists(s.socket)


def test_an_unknown_hook_action_is_refused_before_anything_runs(servers):
    rec = os.path.join(servers.tmp, "never")
    s = servers("--hook-asap", "exec:touch " + rec, "--hook-pre-app", "frobnicate:x", wait=False)
    assert s.wait_exit(10) == 1
    assert '"frobnicate:x": expected ACTION:ARG' in s.log()
    assert not os.path.exists(rec)


# ---- daemonize, pid files, umask ---------------------------------------------------------------

def read_pid(path):
    with open(path) as f:
        return int(f.read().strip())


@pytest.mark.parametrize("option", ["--daemonize", "--daemonize2"])
def test_daemonize_detaches_and_logs_to_the_file(tmp_path, option):
    t = str(tmp_path)
    sock, log, pidfile = (os.path.join(t, n) for n in ("d.sock", "d.log", "d.pid"))
    launcher = subprocess.run([GYRE, "--socket", sock, "--wsgi-file", APP, "--master",
                               option, log, "--pidfile", pidfile],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    pid = None
    try:
        assert launcher.returncode == 0, launcher.stderr
        assert launcher.stdout == b"" and launcher.stderr == b""
        wait_for(lambda: os.path.exists(pidfile) and os.path.exists(sock), 15,
                 what="the daemon's pid file and socket")
        pid = read_pid(pidfile)
        assert alive(pid)
        assert os.getsid(pid) == pid  # a session of its own: no terminal to lose
        wait_for(lambda: "master: started worker 1" in open(log).read(), 15, what="its log")
        raw = uwsgi_request(sock, {"PATH_INFO": "/pid", "REQUEST_URI": "/pid"})
        assert parse_response(raw)[0] == 200
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), 20, what="the daemon stopped")
        assert not os.path.exists(pidfile) and not os.path.exists(sock)
        assert "master: stopped" in open(log).read()
    finally:
        if pid and alive(pid):
            os.killpg(pid, signal.SIGKILL)


def test_daemonize_with_logto_logs_to_logto(tmp_path):
    t = str(tmp_path)
    sock, dlog, logto, pidfile = (os.path.join(t, n) for n in ("d.sock", "d.log", "to.log",
                                                              "d.pid"))
    r = subprocess.run([GYRE, "--socket", sock, "--wsgi-file", APP, "--daemonize", dlog,
                        "--logto", logto, "--pidfile", pidfile], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
    pid = None
    try:
        assert r.returncode == 0, r.stderr
        wait_for(lambda: os.path.exists(pidfile), 15, what="the pid file")
        pid = read_pid(pidfile)
        wait_for(lambda: "(Python" in open(logto).read(), 15, what="the banner in --logto")
        assert not os.path.exists(dlog) or os.path.getsize(dlog) == 0  # --logto wins
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), 20, what="the daemon stopped")
    finally:
        if pid and alive(pid):
            os.killpg(pid, signal.SIGKILL)


def test_daemonize_with_an_unwritable_log_says_so_on_the_terminal(tmp_path):
    r = subprocess.run([GYRE, "--socket", str(tmp_path / "s"), "--wsgi-file", APP,
                        "--daemonize", "/nonexistent/dir/log"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
    assert r.returncode == 1
    assert b"--daemonize /nonexistent/dir/log: No such file or directory" in r.stderr


def test_safe_pidfile_and_pidfile2(servers):
    t = servers.tmp
    safe, second = os.path.join(t, "safe.pid"), os.path.join(t, "second.pid")
    s = servers("--master", "--safe-pidfile", safe, "--pidfile2", second)
    assert read_pid(safe) == s.pid and read_pid(second) == s.pid
    assert not [n for n in os.listdir(t) if n.endswith(".tmp")]  # renamed into place
    s.signal(signal.SIGTERM)
    assert s.wait_exit(20) == 0
    assert not os.path.exists(safe) and not os.path.exists(second)


def test_umask_applies_to_the_files_gyre_creates(servers):
    t = servers.tmp
    default_pid, masked_pid = os.path.join(t, "default.pid"), os.path.join(t, "masked.pid")
    servers("--pidfile", default_pid)
    servers("--pidfile", masked_pid, "--umask", "077")
    old = os.umask(0o022)
    os.umask(old)
    assert os.stat(default_pid).st_mode & 0o777 == 0o666 & ~old
    assert os.stat(masked_pid).st_mode & 0o777 == 0o600


def test_umask_must_be_octal(tmp_path):
    r = subprocess.run([GYRE, "--socket", str(tmp_path / "s"), "--wsgi-file", APP, "--umask",
                        "9"], capture_output=True, timeout=20)
    assert r.returncode == 2 and b"expected an octal mask" in r.stderr


# ---- process titles ----------------------------------------------------------------------------

def titles(s):
    """{pid: (cmdline title, comm)} of the master and its workers."""
    out = {}
    for pid in [s.pid] + s.children():
        with open("/proc/%d/comm" % pid) as f:
            out[pid] = (cmdline(pid).split(b"\0")[0].decode(), f.read().strip())
    return out


def check_procname(servers, kind, args, master_title, worker_title):
    s = servers("--master", "--processes", "2", *args, kind=kind)
    wait_for(lambda: len(s.children()) == 2, 10, what="two workers")
    name = "uWSGI" if kind == "uwsgi" else "gyre"

    def named():
        t = titles(s)
        return (t[s.pid][0] == master_title.format(name) and
                sorted(v[0] for p, v in t.items() if p != s.pid) ==
                [worker_title.format(name, i) for i in (1, 2)])
    wait_for(named, 10, what="the titles %s" % titles(s))
    return s


@pytest.mark.parametrize("kind", ["gyre", "uwsgi"])
@pytest.mark.parametrize("args,master,worker", [
    (["--auto-procname"], "{} master", "{} worker {}"),
    (["--auto-procname", "--procname-prefix-spaced", "myapp"], "myapp {} master",
     "myapp {} worker {}"),
    (["--procname-prefix", "x-"], "x-{} master", "x-{} worker {}"),
    (["--auto-procname", "--procname-master", "boss", "--procname-prefix", "P:"], "P:boss",
     "P:{} worker {}"),
], ids=["auto", "prefix-spaced", "prefix", "procname-master"])
def test_procname_like_uwsgi(servers, kind, args, master, worker):
    check_procname(servers, kind, args, master, worker)


def test_procname_sets_every_title_and_the_thread_name(servers):
    s = servers("--master", "--processes", "2", "--procname", "shop", "--procname-master",
                "shop-master")
    wait_for(lambda: len(s.children()) == 2, 10, what="two workers")
    t = titles(s)
    assert t[s.pid] == ("shop-master", "shop-master")
    assert sorted(v for p, v in t.items() if p != s.pid) == [("shop", "shop")] * 2


def test_no_procname_option_leaves_the_command_line(servers):
    s = servers("--master")
    assert cmdline(s.pid).split(b"\0")[:2] == [GYRE.encode(), b"--socket"]


# ---- no-orphans, and what is gyre's behaviour already ------------------------------------------

@pytest.mark.parametrize("uid", [[], ["--uid", "nobody", "--gid", "nogroup"]],
                         ids=["root", "dropped"])
def test_no_orphans_workers_end_with_the_master(servers, uid):
    # Dropping privileges clears the kernel's parent-death signal: set after, it holds.
    s = servers("--master", "--processes", "2", "--no-orphans", *uid)
    workers = s.children()
    assert len(workers) == 2
    os.kill(s.pid, signal.SIGKILL)
    wait_for(lambda: not any(alive(w) for w in workers), 15, what="the workers gone")


def test_without_no_orphans_workers_outlive_a_killed_master(servers):
    s = servers("--master")
    workers = s.children()
    os.kill(s.pid, signal.SIGKILL)
    s.proc.wait(10)
    assert all(alive(w) for w in workers)  # uWSGI's default too; the fixture kills the group


@pytest.mark.parametrize("kind", ["gyre", "uwsgi"])
def test_vacuum_die_on_term_thunder_lock_lazy(servers, kind):
    """Accepted, and what they ask is what gyre does anyway: the stop removes the socket
    (vacuum), SIGTERM stops (die-on-term). uWSGI is stopped with SIGINT, its own stop."""
    s = servers("--master", "--processes", "2", "--vacuum", "--die-on-term", "--thunder-lock",
                "--lazy-apps", "--lazy", kind=kind)
    # Both workers have their app (uWSGI, stopped while one loads it, can hang on its lock).
    for text in (["(default app)"] if kind == "uwsgi" else ["(worker 1)", "(worker 2)"]):
        s.wait_log(text, count=2 if kind == "uwsgi" else 1)
    s.signal(signal.SIGTERM if kind == "gyre" else signal.SIGINT)
    assert s.wait_exit(30) == 0
    assert not os.path.exists(s.socket)


# ---- master FIFO -------------------------------------------------------------------------------

def fifo_send(path, cmds):
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, cmds)
    finally:
        os.close(fd)


def test_master_fifo_stop_now_during_a_graceful_stop(servers):
    fifo = os.path.join(servers.tmp, "q.fifo")
    s = servers("--master", "--master-fifo", fifo, "--worker-reload-mercy", "60")
    h = Holder(s, servers.tmp)
    h.hold()
    fifo_send(fifo, b"q")  # graceful: would wait for the held request up to 60 s
    s.wait_log("graceful stop, 1 connection(s) in flight")
    fifo_send(fifo, b"Q")
    assert s.wait_exit(20) == 0
    assert "cutting GET /hold" in s.log()
    open(h.flag, "w").close()


@pytest.mark.parametrize("kind", ["gyre", "uwsgi"])
def test_master_fifo_reload_and_stop(servers, kind):
    fifo = os.path.join(servers.tmp, "%s.fifo" % kind)
    lazy = ["--lazy-apps"] if kind == "uwsgi" else []  # a log line per worker ready
    s = servers("--master", "--processes", "2", "--master-fifo", fifo, *lazy, kind=kind)
    wait_for(lambda: len(s.children()) == 2, 10, what="two workers")
    # Both workers ready: a uWSGI worker told to stop while it starts ignores it (60 s mercy).
    s.wait_log("(default app)" if kind == "uwsgi" else "(worker 2)", count=2 if lazy else 1)
    before = set(s.children())
    fifo_send(fifo, b"r")
    workers_after_reload(s, before)
    wait_for(lambda: len(s.children()) == 2, 20, what="two workers after the reload")
    if lazy:  # both new uWSGI workers ready again, for the same reason
        s.wait_log("(default app)", count=4)
    fifo_send(fifo, b"q")
    assert s.wait_exit(30) == 0


def test_master_fifo_commands(servers):
    fifos = [os.path.join(servers.tmp, "f%d" % i) for i in range(2)]
    pidfile = os.path.join(servers.tmp, "p.pid")
    s = servers("--processes", "3", "--cheaper", "1", "--cheaper-overload", "30",
                "--master-fifo", fifos[0], "--master-fifo", fifos[1], "--pidfile", pidfile)
    assert len(s.children()) == 1 and stat.S_ISFIFO(os.stat(fifos[0]).st_mode)
    fifo_send(fifos[0], b"+")
    wait_for(lambda: len(s.children()) == 2, 15, what="a worker more")
    fifo_send(fifos[0], b"-")
    try:
        wait_for(lambda: len(s.children()) == 1, 15, what="a worker less")
    except AssertionError:
        raise AssertionError(s.log())
    fifo_send(fifos[0], b"1")  # from now on the second FIFO
    s.wait_log("now reading " + fifos[1])
    os.unlink(pidfile)
    fifo_send(fifos[1], b"Ps%")
    wait_for(lambda: os.path.exists(pidfile), 10, what="the pid file again")
    assert read_pid(pidfile) == s.pid
    s.wait_log("command '%' is not one gyre has")
    assert re.search(r"master: worker 1 \(pid \d+\) running, 0 busy core\(s\)", s.log())
    fifo_send(fifos[1], b"Q")
    assert s.wait_exit(20) == 0
    assert not any(os.path.exists(f) for f in fifos)


# ---- unix_signal -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gyre", "uwsgi"])
def test_unix_signal_gracefully_kill_them_all(servers, kind):
    """The uWSGI recipe for a graceful stop on SIGTERM (uWSGI 2.0's SIGTERM reloads), here on
    SIGUSR1 to show the mapping works: the held request is served, then the instance exits."""
    s = servers("--master", "--hook-master-start", "unix_signal:10 gracefully_kill_them_all",
                kind=kind)
    h = Holder(s, servers.tmp)
    h.hold()
    s.signal(signal.SIGUSR1)
    if kind == "gyre":
        s.wait_log("User defined signal 1: graceful stop of 1 worker(s)")
    else:
        s.wait_log("graceful shutdown")
    assert s.alive()
    assert h.release() == [200]
    assert s.wait_exit(30) == 0


def test_unix_signal_remaps_sigterm_and_sighup(servers):
    s = servers("--master", "--hook-master-start", "unix_signal:15 grace_them_all",
                "--hook-master-start", "unix_signal:1 kill_them_all")
    before = set(s.children())
    s.signal(signal.SIGTERM)  # now a reload
    workers_after_reload(s, before)
    h = Holder(s, servers.tmp)
    h.hold()
    s.signal(signal.SIGHUP)  # now a stop at once: the held request is cut
    assert s.wait_exit(20) == 0
    assert "cutting GET /hold" in s.log()
    open(h.flag, "w").close()


@pytest.mark.parametrize("hook", ["unix_signal:15 no_such_function", "unix_signal:17 kill_them_all",
                                  "unix_signal:x kill_them_all"])
def test_unix_signal_bad_function_or_signal_ends_the_instance(servers, hook):
    s = servers("--master", "--hook-master-start", hook, wait=False)
    assert s.wait_exit(20) == 1
    assert "FATAL hook failed" in s.log()


def test_unix_signal_in_a_worker_has_no_effect(servers):
    s = servers("--master", "--hook-post-fork", "unix_signal:10 kill_them_all")
    s.wait_log("only the master's signals can be given a function: no effect here")


# ---- memory limits -----------------------------------------------------------------------------

def seconds_since_start(pid):
    """How long ago (s) pid started, from /proc: its start time in clock ticks since boot."""
    with open("/proc/%d/stat" % pid) as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def test_reload_on_as_waits_for_min_worker_lifetime(servers):
    # Any Python process has more than 1 MiB of address space: the limit is passed at once,
    # and the replacement waits for --min-worker-lifetime.
    s = servers("--master", "--reload-on-as", "1", "--min-worker-lifetime", "3")
    first = s.children()[0]
    s.wait_log("(--reload-on-as 1): asking to be replaced", timeout=20)
    assert seconds_since_start(first) >= 2.9
    s.wait_log("(pid %d) exited with status 0" % first)


def test_evil_reload_on_rss_the_master_kills_the_worker(servers):
    s = servers("--master", "--evil-reload-on-rss", "1")
    first = s.children()[0]
    s.wait_log("(--evil-reload-on-rss 1): killing it", timeout=20)
    s.wait_log("(pid %d) killed by signal 9" % first)
    s.wait_log("master: started worker 1", count=2)


def test_cheaper_rss_limit_soft_starts_no_more_workers(servers):
    s = servers("--processes", "3", "--cheaper", "1", "--cheaper-overload", "1",
                "--cheaper-rss-limit-soft", "1")
    h = Holder(s, servers.tmp)
    for _ in range(2):
        h.hold(wait=False)
    s.wait_log("passes --cheaper-rss-limit-soft 1: no more", timeout=20)
    assert len(s.children()) == 1
    assert h.release() == [200, 200]


def test_cheaper_rss_limit_hard_stops_workers(servers):
    s = servers("--processes", "3", "--cheaper", "1", "--cheaper-initial", "3",
                "--cheaper-overload", "30", "--cheaper-rss-limit-hard", "1")
    s.wait_log("passes --cheaper-rss-limit-hard 1", timeout=20)
    wait_for(lambda: len(s.children()) == 1, 30, what="down to --cheaper 1")


def test_sigterm_without_die_on_term_gyre_stops_where_uwsgi_2_0_reloads(servers):
    """What the README says of --die-on-term: Debian's uWSGI 2.0 reloads on SIGTERM without it;
    gyre stops, as systemd, docker and Kubernetes expect."""
    u = servers("--master", "--lazy-apps", kind="uwsgi")
    u.wait_log("(default app)")
    u.signal(signal.SIGTERM)
    u.wait_log("binary reloading uWSGI")
    assert u.alive()
    g = servers("--master")
    g.signal(signal.SIGTERM)
    assert g.wait_exit(20) == 0
