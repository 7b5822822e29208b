"""uWSGI's async API on gyre's loop (issue 12, group 7): wait_fd_read/wait_fd_write/async_sleep
register what the request's next uwsgi.suspend() waits for, ready_fd() says what ended it,
async_connect/is_connected make a non-blocking connection. The same app
(tests/apps/uwsgi_async_app.py) runs under gyre's greenlet cores (--tornado), gyre's thread cores
(--threads) and Debian's uWSGI async loop (--async --greenlet), which is what these calls were
made for; under uWSGI's own tornado engine they never resume the request (the last test)."""
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import APPS, GYRE, UWSGI, Session, free_port, started, wait_for

APP = os.path.join(APPS, "uwsgi_async_app.py")
MODES = {
    "gyre-greenlet": [GYRE, "--tornado", "10"],
    "gyre-threads": [GYRE, "--threads", "4"],
    "uwsgi-async": [UWSGI, "--plugin", "python3,greenlet_python3", "--async", "10", "--greenlet"],
}
ALL = list(MODES)
GYRE_MODES = ["gyre-greenlet", "gyre-threads"]


class Server:
    def __init__(self, tmp, mode, *args):
        self.mode = mode
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        argv = [*MODES[mode], "--http-socket", "127.0.0.1:%d" % self.port, "--wsgi-file", APP,
                "--master", "--processes", "1", *args]
        self.session = Session(tmp, argv)
        wait_for(self._answers, 30, what="%s to answer" % mode)

    def _answers(self):
        assert self.session.alive(), self.session.log()
        try:
            self.get("/ping", timeout=2)
            return True
        except OSError:
            return False

    def get(self, path, timeout=20):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            assert r.status == 200
            return json.loads(r.read())

    def log(self):
        return self.session.log()

    def stop(self):
        self.session.kill_group()


@pytest.fixture
def server(tmp_path):
    """server(mode, *args): a Server."""
    with started(tmp_path, Server) as start:
        yield start


@pytest.mark.parametrize("mode", ALL)
def test_wait_fd_read_times_out_then_sees_data(server, mode):
    """A registered read wait that times out: suspend() returns True after the timeout and
    ready_fd() is -1; with data waiting it returns at once and ready_fd() is the fd. The
    registration calls answer b'', as uWSGI's."""
    s = server(mode)
    r = s.get("/read-timeout")
    assert r["registered"] == "b''" and r["suspend"] == "True"
    assert r["ready"] == -1
    assert 0.9 <= r["took"] < 3, r
    r = s.get("/read-ready")
    assert r["ready"] == r["fd"] and r["took"] < 0.5, r


@pytest.mark.parametrize("mode", ALL)
def test_wait_fd_write_and_two_fds(server, mode):
    s = server(mode)
    r = s.get("/write-ready")
    assert r["registered"] == "b''" and r["ready"] == r["fd"] and r["took"] < 0.5, r
    r = s.get("/two-fds")
    assert r["ready"] == r["fd"] and r["took"] < 0.5, r


@pytest.mark.parametrize("mode", ALL)
def test_async_sleep(server, mode):
    s = server(mode)
    r = s.get("/sleep?1")
    assert r["registered"] == "b''" and r["suspend"] == "True", r
    assert r["ready"] == -1
    assert 0.9 <= r["took"] < 3, r


@pytest.mark.parametrize("mode", ALL)
def test_ready_fd_of_a_new_request(server, mode):
    """ready_fd() belongs to the request that waited: a later request starts at -1."""
    s = server(mode)
    assert s.get("/read-ready")["ready"] >= 0
    assert s.get("/ready-fresh") == {"ready": -1}


@pytest.mark.parametrize("mode", ALL)
def test_waits_do_not_hold_the_worker(server, mode):
    """Requests waiting in suspend() leave the worker free: N of them at once (one process,
    N cores) take one wait, not N."""
    s = server(mode)
    n = 4
    results, errors = [], []

    def one():
        try:
            results.append(s.get("/sleep?2"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    t0 = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    took = time.monotonic() - t0
    assert not errors and len(results) == n, errors
    assert took < 2 * 2 - 0.5, "%d waits of 2 s took %.2f s on %s" % (n, took, mode)


@pytest.mark.parametrize("mode", ALL)
def test_bad_fd_raises_as_uwsgi(server, mode):
    s = server(mode)
    assert s.get("/bad-fd") == {"error": "OSError('unable to fd -1 to the event queue')"}


@pytest.mark.parametrize("mode", ALL)
def test_async_connect(server, mode):
    """async_connect() gives the fd of a connect in progress; once writable, is_connected()
    says whether it succeeded."""
    s = server(mode)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    with listener:
        r = s.get("/connect?127.0.0.1:%d" % listener.getsockname()[1])
        assert r["fd_type"] == "int" and r["fd_ok"] and r["ready_is_fd"], r
        assert r["connected"] is True
    closed = free_port()
    r = s.get("/connect?127.0.0.1:%d" % closed)
    assert r["fd_ok"] and r["ready_is_fd"] and r["connected"] is False, r


@pytest.mark.parametrize("mode", GYRE_MODES)
def test_async_connect_unix_and_bad_address(server, mode, tmp_path):
    s = server(mode)
    path = str(tmp_path / "l.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(8)
    with listener:
        r = s.get("/connect?" + path)
        assert r["fd_ok"] and r["connected"] is True, r
    r = s.get("/connect?no-such-host.invalid:80")
    assert r == {"fd_type": "int", "fd_ok": False}
    wait_for(lambda: "uwsgi.async_connect(\"no-such-host.invalid:80\")" in s.log(), 10,
             what="the refused async_connect's log line")


@pytest.mark.parametrize("mode", GYRE_MODES)
def test_suspend_with_nothing_registered_yields_once(server, mode):
    """gyre: suspend()/green_schedule() with no wait registered goes once round the loop and
    returns True. (uWSGI's async loop never resumes such a request: not checked against it.)"""
    s = server(mode)
    r = s.get("/green")
    assert r["green_schedule"] == "True" and r["suspend"] == "True" and r["took"] < 1, r


@pytest.mark.parametrize("mode", GYRE_MODES)
def test_set_user_harakiri(server, mode):
    """set_user_harakiri(s) cancels the request after s seconds even without --harakiri; the
    worker goes on. (uWSGI's master kills the whole worker instead.)"""
    s = server(mode)
    pid = s.get("/ping")["pid"]
    t0 = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as e:
        s.get("/user-harakiri?1")
    assert e.value.code == 500
    # a thread core's wait is cut short too: no --harakiri-grace, no worker replaced
    assert time.monotonic() - t0 < 4
    wait_for(lambda: "harakiri" in s.log() and "uwsgi.set_user_harakiri" in s.log(), 10,
             what="the harakiri line")
    r = s.get("/user-harakiri-off")
    assert r == {"set_user_harakiri": "None", "survived": True}
    assert s.get("/ping")["pid"] == pid
    assert "asking to be replaced" not in s.log()


def test_uwsgi_tornado_engine_never_resumes(tmp_path):
    """What gyre fixes: under Debian uWSGI's own tornado engine the same calls log "ASYNC call
    without async mode !!!" and the request is not answered."""
    port = free_port()
    argv = [UWSGI, "--plugin", "python3,greenlet_python3,tornado_python3", "--tornado", "10",
            "--greenlet", "--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", APP, "--master"]
    sess = Session(str(tmp_path), argv)
    try:
        url = "http://127.0.0.1:%d" % port

        def answers():
            try:
                urllib.request.urlopen(url + "/ping", timeout=2).read()
                return True
            except OSError:
                return False
        wait_for(answers, 30, what="uWSGI's tornado engine")
        with pytest.raises(OSError):
            urllib.request.urlopen(url + "/sleep?1", timeout=4).read()
        assert "ASYNC call without async mode" in sess.log()
    finally:
        sess.kill_group()
