"""uWSGI signals (issue 12): register_signal/signal, timers, cron, file monitors, and Debian's
uwsgidecorators (@timer, @signal, @filemon, @cron) on top of them. The same app
(tests/apps/signals_app.py) runs under gyre and under Debian's uWSGI 2.0.21 (--plugin python3
--master), and what its handlers record (one line per run, in a file) is compared: which
worker(s) ran which signal, how often. Under uWSGI's own tornado engine a handler never runs (its
loop does not watch the worker's signal socket); under gyre's it does, and it may suspend."""
import json
import os
import re
import signal
import time
import urllib.request

import pytest

from conftest import APPS, GYRE, UWSGI, Session, free_port, started, wait_for

APP = os.path.join(APPS, "signals_app.py")
SERVERS = ("gyre", "uwsgi")

pytestmark = pytest.mark.skipif(
    not os.path.exists("/usr/lib/python3/dist-packages/uwsgidecorators.py"),
    reason="Debian's python3-uwsgidecorators is not installed (make deps)")

LINE = re.compile(r"^(\w+) sig=(\d+) worker=(\d+) pid=(\d+) t=([\d.]+)$")


class Server:
    """gyre or Debian's uWSGI serving signals_app.py on --http-socket, with a master and
    `workers` workers unless master=False; setup: what the app registers (SIGNALS_SETUP).
    Ready once every worker can run a handler: gyre's workers log their registrations once the
    app is loaded; uWSGI loads the app in its master, then logs each worker it spawns."""

    def __init__(self, tmp, kind, setup, *args, workers=2, master=True, engine=(), env=None):
        self.kind = kind
        self.out = os.path.join(tmp, "signals-%s-%d.out" % (kind, time.monotonic_ns()))
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        procs = ["--master", "--processes", str(workers)] if master else []
        common = ["--http-socket", "127.0.0.1:%d" % self.port, "--wsgi-file", APP, *procs,
                  *engine, *args]
        if kind == "gyre":
            argv = [GYRE, *common]
        else:
            plugins = "python3,greenlet_python3,tornado_python3" if engine else "python3"
            argv = [UWSGI, "--plugins", plugins, *common]
        full_env = dict(os.environ, SIGNALS_OUT=self.out, SIGNALS_SETUP=",".join(setup),
                        **(env or {}))
        self.session = Session(tmp, argv, env=full_env)
        n = workers if master else 1
        if kind == "gyre":
            ready = ["(wid: %d " % i for i in range(1, n + 1)] if setup else []
        else:
            ready = ["spawned uWSGI worker %d " % i for i in range(1, n + 1)] if master else []
        wait_for(lambda: all(r in self.log() for r in ready) or not self.session.alive(), 30,
                 what="%s's workers" % kind)
        assert self.session.alive(), self.log()
        wait_for(self.answers, 30, what="%s to answer" % kind)

    def answers(self):
        try:
            return self.get("/") == "ok"
        except OSError:
            return False

    def log(self):
        return self.session.log()

    def get(self, path, timeout=30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            assert r.status == 200
            return r.read().decode()

    def json(self, path):
        return json.loads(self.get(path))

    def raise_signal(self, n):
        assert self.json("/raise?n=%d" % n) == ["ok", "NoneType", None]

    def lines(self, tag=None):
        """What the handlers recorded: (tag, sig, worker, pid, time) tuples, in order."""
        try:
            with open(self.out) as f:
                text = f.read()
        except FileNotFoundError:
            return []
        got = [LINE.match(line).groups() for line in text.splitlines()]
        got = [(t, int(s), int(w), int(p), float(ts)) for t, s, w, p, ts in got]
        return [g for g in got if tag is None or g[0] == tag]

    def wait_lines(self, tag, count, timeout=30):
        wait_for(lambda: len(self.lines(tag)) >= count or not self.session.alive(), timeout,
                 what="%d %r handler run(s) under %s" % (count, tag, self.kind))
        assert self.session.alive(), self.log()
        return self.lines(tag)

    def stop(self):
        self.session.kill_group()


@pytest.fixture
def server(tmp_path):
    """server(kind, setup, *args, **kw): a Server."""
    with started(tmp_path, Server) as start:
        yield start


@pytest.mark.parametrize("kind", SERVERS)
def test_timer_decorator_fires_every_second(server, kind):
    """@timer(1): the handler runs again and again, about a second apart. gyre's two workers
    each register the timer (they load the app after the fork): the master keeps one timer, so
    the signal comes once a second, as uWSGI's (which registers it once, in its master)."""
    s = server(kind, ["timer"])
    runs = s.wait_lines("timer", 4, timeout=30)
    times = [r[4] for r in runs[:4]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.5 < g < 3.0 for g in gaps), gaps
    assert {r[2] for r in runs} <= {1, 2}


@pytest.mark.parametrize("kind", SERVERS)
def test_signal_targets_route_to_the_right_workers(server, kind):
    """uwsgi.signal(N) from a request: 'workers' runs the handler once in every worker,
    'worker2' only in worker 2, the default target in exactly one worker."""
    s = server(kind, ["targets"])
    s.raise_signal(20)
    runs = s.wait_lines("all", 2)
    s.raise_signal(21)
    w2 = s.wait_lines("w2", 1)
    for _ in range(4):
        s.raise_signal(22)
    anys = s.wait_lines("any", 4)
    # The last delivery is in: nothing ran twice, nothing went elsewhere.
    s.raise_signal(21)
    s.wait_lines("w2", 2)
    assert sorted(r[2] for r in s.lines("all")) == [1, 2]
    assert [r[2] for r in s.lines("w2")] == [2, 2]
    assert len(s.lines("any")) == 4 and {r[2] for r in anys} <= {1, 2}
    assert all(r[1] == 20 for r in runs) and w2[0][1] == 21


@pytest.mark.parametrize("kind", SERVERS)
def test_active_workers_and_an_absent_spooler(server, kind):
    """'active-workers': every running worker once. 'spooler' without a spooler: the handler
    never runs (gyre logs why); a signal raised after it still arrives."""
    s = server(kind, ["more"])
    s.raise_signal(27)
    s.raise_signal(26)
    runs = s.wait_lines("active", 2)
    assert sorted(r[2] for r in runs) == [1, 2]
    s.raise_signal(26)
    s.wait_lines("active", 4)
    assert s.lines("spooler") == []
    if kind == "gyre":
        assert "signal 27: target spooler: gyre has no spooler" in s.log()


@pytest.mark.parametrize("kind", SERVERS)
def test_a_handler_that_raises_is_logged_and_the_worker_goes_on(server, kind):
    s = server(kind, ["raises"])
    s.raise_signal(24)
    s.wait_lines("raising", 1)
    wait_for(lambda: "RuntimeError: signals_app: a handler that raises" in s.log(), 10,
             what="the traceback in the log")
    s.raise_signal(24)
    recovered = s.wait_lines("recovered", 1)
    assert recovered[0][2] == 1  # target worker1
    assert s.get("/") == "ok"


@pytest.mark.parametrize("kind", SERVERS)
def test_filemon_decorator_runs_when_the_file_changes(server, kind, tmp_path):
    watched = tmp_path / "watched.txt"
    watched.write_text("x")
    s = server(kind, ["filemon"], env={"SIGNALS_WATCH": str(watched)})
    # A change the test makes until the monitor reports it: the master adds its watch while
    # the app loads, which the test cannot see from outside.
    def touched_and_seen():
        os.utime(watched, None)
        try:
            wait_for(lambda: s.lines("filemon"), 1.0, what="filemon")
            return True
        except AssertionError:
            return False
    wait_for(touched_and_seen, 30, what="a filemon handler run after a touch")
    assert {r[2] for r in s.lines("filemon")} <= {1, 2}


@pytest.mark.parametrize("kind", SERVERS)
def test_timer_option_raises_a_registered_signal(server, kind):
    """--timer "22 1": the master raises signal 22 every second; the app's @signal(22)
    handler (default target) runs each time in one worker."""
    s = server(kind, ["targets"], "--timer", "22 1")
    runs = s.wait_lines("any", 3, timeout=30)
    assert all(r[1] == 22 for r in runs)


@pytest.mark.parametrize("kind", SERVERS)
def test_handlers_run_in_the_new_workers_after_a_reload(server, kind):
    """SIGHUP: a graceful reload. The new workers register their handlers again (gyre: while
    the old ones still serve) and 'workers' reaches each new process once."""
    s = server(kind, ["targets"])
    s.raise_signal(20)
    old = {r[3] for r in s.wait_lines("all", 2)}
    s.session.signal(signal.SIGHUP)
    seen = set()

    def new_workers_ran_it():
        try:
            s.raise_signal(20)
        except OSError:  # uWSGI's reload may refuse a connection while its workers change
            return False
        try:
            wait_for(lambda: {r[3] for r in s.lines("all")} - old - seen, 1.0, what="a run")
        except AssertionError:
            pass
        seen.update({r[3] for r in s.lines("all")} - old)
        return len(seen) >= 2
    wait_for(new_workers_ran_it, 60, what="both new workers to run the handler")
    assert len(seen) == 2 and not seen & old


@pytest.mark.parametrize("kind", SERVERS)
def test_rb_timer_stops_after_its_iterations(server, kind):
    """add_rb_timer(num, 1, 2): two runs, then none; @timer(1) beside it is the clock that
    shows the time passing (three more of its runs after the second rb one)."""
    s = server(kind, ["rb", "timer"])
    second = s.wait_lines("rb", 2)[1][4]
    wait_for(lambda: len([r for r in s.lines("timer") if r[4] > second]) >= 3, 30,
             what="three timer runs after the rb timer's second")
    assert len(s.lines("rb")) == 2


def test_registration_and_errors_answer_as_uwsgi(server):
    """signal_registered(), and what bad calls raise (TypeError for a wrong argument,
    ValueError 'unable to register signal' for a target longer than 63 bytes), registering the
    same signal twice: the same under both servers."""
    answers, registered = {}, {}
    for kind in SERVERS:
        s = server(kind, ["targets"], workers=1)
        answers[kind] = s.json("/errors")
        registered[kind] = s.json("/registered")
        s.stop()
    assert answers["gyre"] == answers["uwsgi"]
    assert registered["gyre"] == registered["uwsgi"]
    a = answers["gyre"]
    assert a["register_long_target"] == ["error", "ValueError", "unable to register signal"]
    assert a["register_str_num"][:2] == ["error", "TypeError"]
    assert a["register_twice_b"] == ["ok", "NoneType", None]
    assert a["registered_after"] == ["ok", "bool", True]
    assert a["registered_unregistered"] == ["ok", "NoneType", None]
    assert registered["gyre"]["20"] is True and registered["gyre"]["23"] is None


def test_without_a_master_nothing_registers_as_uwsgi(server):
    """uWSGI: "you cannot register signals without a master", a ValueError; add_timer and the
    others the same. gyre answers alike."""
    answers = {}
    for kind in SERVERS:
        s = server(kind, [], master=False)
        answers[kind] = s.json("/errors")
        s.stop()
    assert answers["gyre"] == answers["uwsgi"]
    assert answers["gyre"]["register_twice_a"] == ["error", "ValueError",
                                                   "unable to register signal"]


def test_a_handler_suspends_while_the_worker_serves_requests(server):
    """gyre: a handler runs in a core of its own, so gyre.sleep() in it suspends only it; the
    worker (one process, four cores) answers requests meanwhile."""
    s = server("gyre", ["sleepy"], "--tornado", "4", workers=1, env={"SIGNALS_SLEEP": "3"})
    s.raise_signal(23)
    sleeping = s.wait_lines("sleeping", 1)[0]
    served = 0
    for _ in range(5):
        assert s.get("/", timeout=10) == "ok"
        served += 1
    done = time.time()
    slept = s.wait_lines("slept", 1, timeout=30)[0]
    assert served == 5
    assert done < slept[4], "the requests waited for the handler's sleep"
    assert slept[4] - sleeping[4] >= 2.9


def test_handlers_run_with_thread_cores(server):
    """--threads without --tornado: a handler runs on the worker's loop thread, between its
    events, as uWSGI's runs in its worker between requests; every target still routes."""
    s = server("gyre", ["targets", "timer"], "--threads", "4")
    s.raise_signal(20)
    assert sorted(r[2] for r in s.wait_lines("all", 2)) == [1, 2]
    s.raise_signal(21)
    assert [r[2] for r in s.wait_lines("w2", 1)] == [2]
    s.wait_lines("timer", 2)


def test_uwsgi_tornado_engine_never_runs_handlers_gyre_does(server):
    """The defect issue 12 names: under uWSGI's tornado engine (--tornado N --greenlet) the
    registration works, but the loop never watches the worker's signal socket, so no handler
    ever runs. The same app under gyre --tornado runs its @timer(1) handler every second.
    gyre's runs are counted first; uWSGI's engine gets the same time and more, and none."""
    engine = ("--tornado", "4", "--greenlet")
    g = server("gyre", ["timer", "targets"], engine=("--tornado", "4"), workers=1)
    t0 = time.monotonic()
    g.raise_signal(22)
    g.wait_lines("timer", 3, timeout=30)
    g.wait_lines("any", 1)
    window = max(time.monotonic() - t0, 3.0) + 2.0
    g.stop()
    u = server("uwsgi", ["timer", "targets"], engine=engine, workers=1)
    assert "[uwsgi-signal] signum 0 registered" in u.log()
    u.raise_signal(22)
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        assert u.get("/") == "ok"  # the worker is alive and serving all along
        try:
            wait_for(lambda: u.lines(), 0.5, what="a handler run")
            break  # one ran: the assertion below says so
        except AssertionError:
            pass
    assert u.lines() == []


def test_cron_every_minute_signal_and_command(server, tmp_path):
    """@cron(-1, -1, -1, -1, -1) and --cron "-1 -1 -1 -1 -1 CMD": at the next minute the
    master raises the signal (its handler runs) and runs the command (/bin/sh -c). Bounded by
    a minute and some; the matching itself is tests/server/test_signals.c's."""
    marker = tmp_path / "cron-ran"
    s = server("gyre", ["cron"], "--cron", "-1 -1 -1 -1 -1 echo ran >> %s" % marker, workers=1)
    s.wait_lines("cron", 1, timeout=75)
    wait_for(lambda: marker.exists() and "ran" in marker.read_text(), 15,
             what="the --cron command's output")
    wait_for(lambda: re.search(r'\[uwsgi-cron\] command "echo ran .*exited with status 0',
                               s.log()), 10, what="the command's exit in the log")


@pytest.mark.parametrize("value", ["x", "1", "300 1", "1 0", "1 2 3"])
def test_bad_timer_option_is_an_error(tmp_path, value):
    sess = Session(str(tmp_path), [GYRE, "--http-socket", "127.0.0.1:%d" % free_port(),
                                   "--wsgi-file", APP, "--master", "--timer", value])
    assert sess.wait_exit(10) == 2
    assert "--timer" in sess.log() or "timer" in sess.log()


@pytest.mark.parametrize("opt,value", [("--cron", "* * * * * cmd"), ("--cron", "1 2 3 4 5"),
                                       ("--cron2", "minute=1,legion=x cmd"),
                                       ("--fs-signal", "/tmp/x"), ("--touch-signal", "/tmp 999")])
def test_bad_cron_and_monitor_options_are_errors(tmp_path, opt, value):
    sess = Session(str(tmp_path), [GYRE, "--http-socket", "127.0.0.1:%d" % free_port(),
                                   "--wsgi-file", APP, "--master", opt, value])
    assert sess.wait_exit(10) == 2
    assert opt.lstrip("-") in sess.log()


def test_master_options_without_a_master_warn(tmp_path):
    """--timer, --cron... are the master's: without --master gyre says they are ignored, and
    --strict refuses to start."""
    port = free_port()
    sess = Session(str(tmp_path), [GYRE, "--http-socket", "127.0.0.1:%d" % port, "--wsgi-file",
                                   APP, "--timer", "3 1", "--cron", "-1 -1 -1 -1 -1 true"])
    try:
        wait_for(lambda: "need --master: ignored" in sess.log() or not sess.alive(), 30,
                 what="the warning")
        assert sess.alive(), sess.log()
    finally:
        sess.kill_group()
    strict = Session(str(tmp_path), [GYRE, "--http-socket", "127.0.0.1:%d" % free_port(),
                                      "--wsgi-file", APP, "--strict", "--timer", "3 1"])
    assert strict.wait_exit(30) != 0
    assert "--strict: --timer" in strict.log()
