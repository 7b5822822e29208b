"""The `uwsgi` module (issue 12): `import uwsgi` in the app, Debian's uwsgidecorators on top of
it, and uwsgi.lock() across workers. Each check that gyre claims as uWSGI's runs the same app
(tests/apps/uwsgi_api_app.py) under gyre and under Debian's uWSGI 2.0.21 (--plugin python3) and
compares what the app sees."""
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import APPS, GYRE, UWSGI, Session, free_port, wait_for

APP = os.path.join(APPS, "uwsgi_api_app.py")
SERVERS = ("gyre", "uwsgi")
POSTFORK_LINE = "uwsgi_api_app: postfork in worker"

pytestmark = pytest.mark.skipif(
    not os.path.exists("/usr/lib/python3/dist-packages/uwsgidecorators.py"),
    reason="Debian's python3-uwsgidecorators is not installed (make deps)")


class Server:
    """gyre or Debian's uWSGI: a master and `workers` workers serving uwsgi_api_app.py on
    --http-socket; ready once every worker ran the app's @postfork (it logs a line)."""

    def __init__(self, tmp, kind, *args, workers=2):
        self.kind = kind
        self.workers = workers
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        common = ["--http-socket", "127.0.0.1:%d" % self.port, "--wsgi-file", APP, "--master",
                  "--processes", str(workers), *args]
        argv = [GYRE, *common] if kind == "gyre" else [UWSGI, "--plugin", "python3", *common]
        self.session = Session(tmp, argv)
        self.wait_postforks(workers)

    def log(self):
        return self.session.log()

    def wait_postforks(self, n, timeout=30):
        wait_for(lambda: self.log().count(POSTFORK_LINE) >= n or not self.session.alive(),
                 timeout, what="%d postfork line(s) from %s" % (n, self.kind))
        assert self.session.alive(), self.log()

    def get(self, path, timeout=30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            assert r.status == 200
            return r.read().decode()

    def json(self, path):
        return json.loads(self.get(path))

    def stop(self):
        self.session.kill_group()


@pytest.fixture
def server(tmp_path):
    started = []

    def start(kind, *args, **kw):
        s = Server(str(tmp_path), kind, *args, **kw)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


OPTS = ["--harakiri", "30", "--pythonpath", "/tmp", "--pythonpath", "/var", "--locks", "2",
        "--enable-threads"]


@pytest.mark.parametrize("kind", SERVERS)
def test_process_info_as_uwsgi(server, kind):
    """opt, worker_id(), masterpid(), mule_id(), numproc, started_on, hostname, version,
    total_requests(), workers(): the values and types uWSGI gives."""
    before = int(time.time())
    s = server(kind, *OPTS)
    info = s.json("/info")
    opt = info["opt"]
    # Values bytes, switches True, an option given twice its last value (as Debian's 2.0.21).
    assert opt["harakiri"] == ["bytes", "30"]
    assert opt["pythonpath"] == ["bytes", "/var"]
    assert opt["locks"] == ["bytes", "2"]
    assert opt["enable-threads"] == ["bool", True]
    assert opt["master"] == ["bool", True]
    assert opt["processes"] == ["bytes", "2"]
    assert opt["wsgi-file"] == ["bytes", APP]
    assert opt["http-socket"] == ["bytes", "127.0.0.1:%d" % s.port]
    assert info["worker_id"][0] == "ok" and info["worker_id"][1][0] == "int"
    wid = info["worker_id"][1][1]
    assert wid in (1, 2)
    assert info["masterpid"] == ["ok", ["int", s.session.pid]]
    assert info["mule_id"] == ["ok", ["int", 0]]
    assert info["numproc"] == ["int", 2]
    assert info["started_on"][0] == "int"
    assert before - 2 <= info["started_on"][1] <= int(time.time()) + 1
    assert info["hostname"] == ["bytes", socket.gethostname()]
    assert info["version"][0] == "bytes" and info["version"][1].startswith("2.0.21")
    assert info["version_info"] == ["tuple", ["int", "int", "int", "int", "bytes"]]
    assert info["total_requests"][0] == "ok" and info["total_requests"][1][0] == "int"
    assert info["workers_type"] == "tuple"
    workers = info["workers"]
    assert [w["id"] for w in workers] == [["int", 1], ["int", 2]]
    for w in workers:
        for key in ("pid", "requests", "exceptions", "tx", "avg_rt", "last_spawn",
                    "respawn_count", "running_time", "delta_requests", "signals", "rss", "vsz"):
            assert w[key][0] == "int", (key, w)
        assert w["status"][0] == "bytes"
    me = workers[wid - 1]
    assert me["pid"] == ["int", info["pid"]]
    assert me["status"] == ["bytes", "busy"]  # it serves this request
    assert info["has_post_fork_hook"] is True  # uwsgidecorators set it
    assert info["micros"][0] == "int" and abs(info["micros"][1] / 1e6 - info["time"]) < 5
    kind_, (rss, vsz) = info["mem"]
    assert kind_ == "tuple" and rss[0] == vsz[0] == "int" and 0 < rss[1] < vsz[1]

    # total_requests() counts the requests served before this one, by every worker.
    for _ in range(3):
        s.get("/postfork")
    wait_for(lambda: s.json("/info")["total_requests"][1][1] >= 4, 10,
             what="total_requests() to count the requests served")


def test_calls_answer_as_uwsgi(server):
    """Return values and errors of the calls whose answers do not depend on the server (locks,
    log, logvars, the spooler/signal/farm probes uwsgidecorators makes): the same under both."""
    answers = {}
    for kind in SERVERS:
        s = server(kind, "--locks", "2", workers=1)
        answers[kind] = s.json("/calls")
        s.stop()
    assert answers["gyre"] == answers["uwsgi"]
    calls = answers["gyre"]
    assert calls["lock"] == ["ok", ["NoneType", None]]
    assert calls["is_locked_held"] == ["ok", ["bool", True]]
    assert calls["is_locked_free"] == ["ok", ["bool", False]]
    assert calls["lock_over"] == ["error", "ValueError", "Invalid lock number"]
    assert calls["get_logvar"] == ["ok", ["bytes", "v"]]


@pytest.mark.parametrize("kind", SERVERS)
def test_log_goes_to_the_servers_log(server, kind):
    s = server(kind, workers=1)
    assert s.json("/log?msg=hello-from-the-app-42") == ["ok", ["bool", True]]
    wait_for(lambda: "hello-from-the-app-42" in s.log(), 10, what="the app's line in the log")


@pytest.mark.parametrize("kind", SERVERS)
def test_postfork_runs_once_in_each_worker(server, kind):
    """Debian's uwsgidecorators imports on top of the module, and its @postfork runs once in
    each worker, in that worker (uWSGI calls uwsgi.post_fork_hook after each fork)."""
    s = server(kind, workers=2)
    seen = {}

    def both_seen():
        r = s.json("/postfork")
        seen[r["worker_id"]] = r
        return len(seen) == 2
    wait_for(both_seen, 30, what="both workers to answer")
    for wid, r in seen.items():
        assert r["postfork"] == [{"pid": r["pid"], "worker_id": wid}]
    assert s.log().count(POSTFORK_LINE) == 2


@pytest.mark.parametrize("kind", SERVERS)
def test_sockets_connection_fd_setprocname_log_this_request(server, kind):
    """uwsgi.sockets (the listening fds), connection_fd() (this request's client socket),
    setprocname() (the title: /proc comm) and log_this_request() (a line for this request under
    --disable-logging, and only for it): the same under both servers."""
    s = server(kind, "--disable-logging", workers=1)
    client = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    with client:
        client.sendall(b"GET /process?name=apiapp-x HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
        raw = b""
        while True:
            chunk = client.recv(65536)
            if not chunk:
                break
            raw += chunk
        r = json.loads(raw.split(b"\r\n\r\n", 1)[1])
        assert r["peer_port"] == client.getsockname()[1]
    assert r["sockets_type"] == "list" and r["listening"] == [1]
    assert r["connection_fd"][0] == "int"
    assert r["setprocname"] == ["ok", ["NoneType", None]]
    assert r["cmdline"] == "apiapp-x"  # what ps shows
    if kind == "gyre":  # and top, which uWSGI leaves alone
        assert r["comm"] == "apiapp-x"
    assert "GET /process?name=apiapp-x" not in s.log()
    r = s.json("/process?log=1&name=apiapp-y")
    assert r["log_this_request"] == ["ok", ["NoneType", None]]
    wait_for(lambda: "GET /process?log=1&name=apiapp-y" in s.log(), 10,
             what="the line log_this_request() asked for")
    assert "GET /process?name=apiapp-x" not in s.log()


@pytest.mark.parametrize("kind", SERVERS)
def test_env_listen_queue_logsize(server, kind):
    """uwsgi.env is the request's environ; listen_queue(n) the backlog of socket n (none
    waiting here), ValueError for a socket that is not there; logsize() 0 without --logto."""
    s = server(kind, workers=1)
    r = s.json("/process2")
    assert r["env_is_environ"] is True
    assert r["listen_queue"] == ["ok", ["int", 0]]
    assert r["listen_queue_bad"] == ["error", "ValueError", "unable to find socket 5"]
    assert r["logsize"] == ["ok", ["int", 0]]


@pytest.mark.parametrize("kind", SERVERS)
def test_environ_has_uwsgi_keys(server, kind):
    """uwsgi.core (int, with more than one core), uwsgi.node (the host name, bytes),
    uwsgi.version (bytes): in every request's environ, as uWSGI puts them there."""
    s = server(kind, workers=1)
    env = s.json("/environ")
    assert env["uwsgi.core"] == ["NoneType", None]
    s.stop()
    s = server(kind, "--threads", "2", workers=1)
    env = s.json("/environ")
    assert env["uwsgi.core"][0] == "int" and env["uwsgi.core"][1] in (0, 1)
    assert env["uwsgi.node"] == ["bytes", socket.gethostname()]
    assert env["uwsgi.version"][0] == "bytes" and env["uwsgi.version"][1].startswith("2.0.21")


def test_not_yet_provided_decorators_fail_when_used(server):
    """What gyre cannot honour (mules) imports, and raises a clear NotImplementedError when
    used; @spool says what uWSGI says without a spooler. (@timer, @cron, @signal and @filemon
    work: test_uwsgi_signals.py.)"""
    s = server("gyre", workers=1)
    r = s.json("/not_yet")
    assert r["mulefunc"][:2] == ["error", "NotImplementedError"], r["mulefunc"]
    assert "gyre does not provide mules yet" in r["mulefunc"][2]
    calls = s.json("/calls")
    assert calls["spool_decorator"][:2] == ["error", "Exception"]
    assert "enable the uWSGI spooler" in calls["spool_decorator"][2]


@pytest.mark.parametrize("kind", SERVERS)
def test_reload_replaces_the_workers(server, kind):
    s = server(kind, workers=2)
    old = s.json("/postfork")["pid"]
    assert s.json("/reload") == ["ok", ["bool", True]]
    s.wait_postforks(4, timeout=60)  # new workers, @postfork again

    def replaced():
        try:
            return s.json("/postfork")["pid"] != old
        except (OSError, urllib.error.URLError):
            return False
    wait_for(replaced, 30, what="a request served by a new worker")


def run_counter(s, path, n, clients=6, lock=0, hold=0.002, in_thread=lambda i: False):
    """n /count requests from `clients` threads; returns the pids that answered and the
    values they wrote."""
    results, errors = [], []
    todo = list(range(n))
    mutex = threading.Lock()

    def client():
        while True:
            with mutex:
                if not todo:
                    return
                i = todo.pop()
            try:
                pid, value = s.get("/count?file=%s&lock=%d&hold=%g%s" % (
                    path, lock, hold, "&in_thread=1" if in_thread(i) else ""), timeout=60).split()
                with mutex:
                    results.append((int(pid), int(value)))
            except Exception as e:  # noqa: B902 - reported below
                with mutex:
                    errors.append(repr(e))
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    return results


COUNTER_SETUPS = [
    ("gyre", ()),
    ("uwsgi", ()),
    ("gyre", ("--tornado", "4")),
    ("gyre", ("--threads", "4")),
    ("uwsgi", ("--threads", "4")),
]


@pytest.mark.parametrize("kind,args", COUNTER_SETUPS,
                         ids=["-".join((k,) + a).replace("--", "") for k, a in COUNTER_SETUPS])
def test_lock_serializes_workers(server, tmp_path, kind, args):
    """Two workers (and their cores) increment a counter file under uwsgi.lock(1): no update
    is lost, each value is written once."""
    s = server(kind, "--locks", "1", *args, workers=2)
    path = str(tmp_path / "counter")
    with open(path, "w") as f:
        f.write("0")
    n = 60
    results = run_counter(s, path, n, lock=1)
    assert len(results) == n
    assert sorted(v for _, v in results) == list(range(1, n + 1))
    with open(path) as f:
        assert f.read() == str(n)


def test_lock_shared_by_greenlet_cores_and_pool_threads(server, tmp_path):
    """gyre --tornado 4 --threads 2: greenlet cores and the pool's threads (gyre.run_in_thread)
    of two workers take turns on one lock: a core waits on the loop for a pool thread's lock,
    a pool thread blocks (GIL released) for a core's."""
    s = server("gyre", "--tornado", "4", "--threads", "2", "--locks", "1", workers=2)
    path = str(tmp_path / "counter")
    with open(path, "w") as f:
        f.write("0")
    results = run_counter(s, path, 60, lock=1, in_thread=lambda i: i % 2 == 0)
    assert sorted(v for _, v in results) == list(range(1, 61))
    with open(path) as f:
        assert f.read() == "60"


def test_lock_waiting_greenlet_cores_leave_the_loop_free(server, tmp_path):
    """gyre, one worker of 4 greenlet cores: cores that wait for a lock held by another core
    of the same worker do not deadlock it, and the loop still serves other requests meanwhile."""
    s = server("gyre", "--tornado", "4", workers=1)
    path = str(tmp_path / "counter")
    with open(path, "w") as f:
        f.write("0")
    done = []
    t = threading.Thread(target=lambda: done.append(run_counter(s, path, 6, clients=3,
                                                                hold=0.3)))
    t0 = time.monotonic()
    t.start()
    # While the three cores take turns holding the lock (6 x 0.3 s), the fourth core answers.
    wait_for(lambda: open(path).read() != "0", 20, what="the first increment")
    t1 = time.monotonic()
    s.get("/postfork", timeout=10)
    assert time.monotonic() - t1 < 1.0
    t.join(60)
    assert done and sorted(v for _, v in done[0]) == list(range(1, 7))
    assert time.monotonic() - t0 >= 6 * 0.3  # they did take turns


@pytest.mark.parametrize("kind", SERVERS)
def test_lock_of_a_dead_holder_is_taken_over(server, tmp_path, kind):
    """A worker that dies holding a lock does not leave it locked for ever (robust mutexes)."""
    s = server(kind, "--locks", "1", workers=2)
    with pytest.raises((OSError, urllib.error.URLError, ConnectionError)):
        s.get("/die_holding?lock=1", timeout=30)
    path = str(tmp_path / "counter")
    with open(path, "w") as f:
        f.write("0")
    assert s.get("/count?file=%s&lock=1" % path, timeout=30).split()[1] == "1"


NO_MASTER_APP = '''
import uwsgi
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/reload":
        return [repr(uwsgi.reload()).encode()]
    w = uwsgi.workers()
    return [repr((uwsgi.worker_id(), uwsgi.masterpid(), uwsgi.numproc, len(w), w[0]["id"],
                  uwsgi.opt.get("master"))).encode()]
'''


@pytest.mark.parametrize("kind", SERVERS)
def test_without_a_master_as_uwsgi(tmp_path, kind):
    """The only process: worker 1 of 1, master pid 0 (what uwsgidecorators refuses); reload()
    answers True (uWSGI's only process then exits; gyre's logs that a reload needs --master)."""
    app = tmp_path / "nomaster.py"
    app.write_text(NO_MASTER_APP)
    port = free_port()
    common = ["--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", str(app)]
    argv = [GYRE, *common] if kind == "gyre" else [UWSGI, "--plugin", "python3", *common]
    s = Session(str(tmp_path), argv)
    url = "http://127.0.0.1:%d" % port

    def get(path):
        with urllib.request.urlopen(url + path, timeout=30) as r:
            return r.read().decode()

    def up():
        try:
            return get("/")
        except OSError:
            return None
    try:
        wait_for(lambda: up() or not s.alive(), 30, what="%s to serve" % kind)
        assert get("/") == "(1, 0, 1, 1, 1, None)"
        assert get("/reload") == "True"
        if kind == "gyre":
            wait_for(lambda: "a graceful reload needs --master" in s.log(), 10,
                     what="gyre's line on SIGHUP without a master")
    finally:
        s.kill_group()


@pytest.mark.parametrize("kind", SERVERS)
def test_stop_ends_the_instance(server, kind):
    """stop(): the master and its workers exit. gyre's stop is graceful: the calling request
    gets its answer (uWSGI's master kills its workers at once: the request is cut)."""
    s = server(kind, workers=2)
    try:
        body = s.get("/stop")
    except (OSError, urllib.error.URLError, ConnectionError):
        body = None
    if kind == "gyre":
        assert body == json.dumps(["ok", ["bool", True]])
    s.session.wait_exit(30)


def test_locks_option_is_checked(tmp_path):
    """--locks takes 0..1024; anything else is refused at start (exit 2), naming the option."""
    s = Session(str(tmp_path), [GYRE, "--http-socket", "127.0.0.1:%d" % free_port(),
                                "--wsgi-file", APP, "--locks", "2000"])
    assert s.wait_exit(10) == 2
    assert "locks" in s.log()
