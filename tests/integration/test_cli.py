"""gyre's command line: option forms, errors, what each option changes, start-up and stop.

Apps: tests/apps/cli_app.py, cli_broken.py and the package cli_pkg/.
"""
import errno
import json
import os
import platform
import re
import signal
import socket
import stat
import struct
import subprocess
import time
import uuid

import greenlet
import pytest
import tornado

from conftest import (Session, APPS, GYRE, connect, encode_vars, parse_response, recv_all, uwsgi_packet,
                      uwsgi_request, wait_for)

APP = os.path.join(APPS, "cli_app.py")
TIMEOUT = 10

# Every option gyre documents (uWSGI-compatible names and the aliases).
OPTIONS = ["socket", "uwsgi-socket", "wsgi-file", "file", "module", "wsgi", "callable", "tornado",
           "async", "greenlet", "chmod-socket", "buffer-size", "listen", "socket-timeout",
           "worker-reload-mercy", "chdir", "pythonpath", "python-path", "pp", "env",
           "disable-logging", "plugin", "plugins", "help", "version"]


def run(*args, timeout=TIMEOUT, **kw):
    return subprocess.run([GYRE, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


class Proc(Session):
    """gyre started with exactly the given argv (no fixture-added --socket)."""

    def __init__(self, tmp, argv, env=None):
        super().__init__(tmp, [GYRE, *argv], env=env)

    def wait_banner(self):
        wait_for(lambda: " pid %d: " % self.proc.pid in self.log() or self.proc.poll() is not None,
                 what="gyre's banner")
        assert self.proc.poll() is None, self.log()

    def stop(self):
        return super().stop(10)


@pytest.fixture
def launch(tmp_path):
    started = []

    def start(*argv, env=None, wait=True):
        p = Proc(str(tmp_path), list(argv), env=env)
        started.append(p)
        if wait:
            p.wait_banner()
        return p
    yield start
    for p in started:
        p.stop()


def get_body(sock_path, path="/"):
    status, _, body = parse_response(uwsgi_request(
        sock_path, {"PATH_INFO": path, "REQUEST_URI": path}, timeout=TIMEOUT))
    return status, body


def get_json(sock_path, path="/"):
    status, body = get_body(sock_path, path)
    assert status == 200, body
    return json.loads(body)


def packet_with_datasize(size, path="/"):
    """A uwsgi packet whose vars block is exactly `size` bytes (padded with X_PAD)."""
    base = [("REQUEST_METHOD", "GET"), ("PATH_INFO", path), ("QUERY_STRING", ""),
            ("SERVER_PROTOCOL", "HTTP/1.1"), ("REMOTE_ADDR", "127.0.0.1")]
    fixed = len(encode_vars(base + [("X_PAD", "")]))
    data = encode_vars(base + [("X_PAD", "p" * (size - fixed))])
    assert len(data) == size
    return struct.pack("<BHB", 0, len(data), 0) + data


# ---- --help, --version and command-line errors --------------------------------------------------

def test_help_lists_every_option():
    r = run("--help")
    assert r.returncode == 0
    assert r.stderr == ""
    for name in OPTIONS:
        assert re.search(r"(^|\s)--%s(\s|\[|=|$)" % re.escape(name), r.stdout, re.M), name
    assert "Usage" in r.stdout


def test_every_option_in_help_is_accepted_by_the_parser():
    listed = sorted(set(re.findall(r"^\s+--([a-z][a-z0-9-]*)", run("--help").stdout, re.M)))
    assert set(OPTIONS) <= set(listed)
    for name in listed:
        if name in ("help", "version"):
            continue
        # With a value or without, an option gyre knows is never "unknown".
        flag_only = name in ("greenlet", "disable-logging")
        r = run("--" + name) if flag_only else run("--" + name, "1")
        assert "unknown option" not in r.stderr, (name, r.stderr)
        assert r.returncode == 2      # still no socket and no app: a usage error, not a start


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert re.fullmatch(r"gyre \d+\.\d+\.\d+\n", r.stdout), r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("args, mention", [
    (["--bogus-option"], "--bogus-option"),
    (["--bogus-option=1"], "--bogus-option"),
    (["-x"], "-x"),
    (["app.py"], "app.py"),
    (["--tornado"], "--tornado"),                       # missing value at the end
    (["--tornado", "abc"], "abc"),
    (["--tornado=12x"], "12x"),
    (["--tornado", "0"], "--tornado"),
    (["--buffer-size", "1e3"], "1e3"),
    (["--listen", ""], "--listen"),
    (["--socket-timeout", "soon"], "soon"),
    (["--chmod-socket=rw"], "rw"),
    (["--greenlet=maybe"], "--greenlet"),
    (["-q"], "-q"),                                     # no such short flag in uWSGI either
    (["-x"], "-x"),                                     # uWSGI's --xmlconfig: takes a value
    (["app.yaml"], ".ini"),                             # uWSGI's yaml config: not read
    (["--enable_threads"], "--enable-threads"),         # a typo, named
    (["--env", "NOEQUALS"], "NOEQUALS"),
])
def test_bad_option_one_line_exit_2(tmp_path, args, mention):
    sock = str(tmp_path / "s.sock")
    r = run("--socket", sock, "--wsgi-file", APP, *args)
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.endswith("\n") and r.stderr.strip(), r.stderr
    assert mention in r.stderr
    assert not os.path.exists(sock)


@pytest.mark.parametrize("args, mention", [
    (["--wsgi-file", APP], "socket"),
    ([], "socket"),
    (["--socket", "/tmp/gyre-cli-test-never-bound.sock"], "app"),
    (["--socket"], "--socket"),
])
def test_missing_socket_or_app_one_line_exit_2(args, mention):
    r = run(*args)
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.strip(), r.stderr
    assert mention in r.stderr
    assert not os.path.exists("/tmp/gyre-cli-test-never-bound.sock")


# ---- option forms -------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["space", "equals"])
def test_option_forms(launch, tmp_path, form):
    sock = str(tmp_path / "app.sock")
    workdir = tmp_path / "work"
    workdir.mkdir()
    opts = [("socket", sock), ("wsgi-file", APP), ("tornado", "3"), ("env", "GYRE_T_FORM=" + form),
            ("chdir", str(workdir)), ("buffer-size", "2048")]
    argv = []
    for k, v in opts:
        argv += ["--%s=%s" % (k, v)] if form == "equals" else ["--" + k, v]
    g = launch(*argv)
    assert "3 cores on uwsgi://" + sock in g.log()
    report = get_json(sock)
    assert report["env"] == {"GYRE_T_FORM": form}
    assert os.path.realpath(report["cwd"]) == os.path.realpath(str(workdir))


def test_uwsgi_plugin_options_accepted(gyre):
    g = gyre("cli_app.py", "--plugin", "python3", "--plugins", "tornado,greenlet", "--greenlet",
             "--tornado", "2")
    assert "2 cores" in g.log()
    assert "cwd" in get_json(g.socket)
    assert "warning" not in g.log()


def test_module_and_wsgi_file_both_given_the_module_serves(gyre):
    """uWSGI loads --module first, as the default app, and skips the file ("mountpoint already
    configured"); real configs give both (ckan, creme-crm in tests/realconfigs)."""
    g = gyre("hello.py", "--module", "cli_app", "--pythonpath", APPS)
    assert "cwd" in get_json(g.socket)  # cli_app's answer, not hello's
    assert "--module cli_app and --wsgi-file" in g.log() and "the module serves" in g.log()


def test_uwsgi_options_gyre_lacks_warn_and_keep_their_value(gyre):
    # --gevent takes a value in uWSGI: 100 is its value, not a stray argument; --ksm takes
    # none here; --master=True is a flag with a value; -T is uWSGI's --enable-threads.
    g = gyre("cli_app.py", "--gevent", "100", "--ksm", "--master=True", "--tornado", "2",
             "--plugin", "php")
    assert "cwd" in get_json(g.socket)
    log = g.log()
    assert "gyre: warning: --gevent: gevent: gyre serves concurrency with --tornado N greenlet " \
           "cores" in log, log
    assert "gyre: warning: --ksm: ksm: not supported by gyre: ignored" in log
    assert "plugin 'php' is not built into gyre" in log


def test_strict_on_the_command_line_refuses_uwsgi_options_gyre_lacks(tmp_path):
    sock = str(tmp_path / "s.sock")
    r = run("--socket", sock, "--wsgi-file", APP, "--gevent", "100", "--strict")
    assert r.returncode == 1, r
    assert r.stderr.count("\n") == 1 and "--gevent" in r.stderr and "strict" in r.stderr, r
    assert not os.path.exists(sock)


# ---- loading the app ----------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["--module", "cli_pkg.mod"], b"cli_pkg.mod application"),
    (["--module", "cli_pkg.mod:custom"], b"cli_pkg.mod custom"),
    (["--module", "cli_pkg.mod", "--callable", "other"], b"cli_pkg.mod other"),
    (["--wsgi", "cli_pkg.mod:custom"], b"cli_pkg.mod custom"),
])
def test_module_and_callable(gyre, args, expected):
    g = gyre(None, "--pythonpath", APPS, *args)
    assert get_body(g.socket) == (200, expected)


def test_wsgi_file_with_callable(gyre):
    g = gyre("cli_app.py", "--callable", "alt")
    assert get_body(g.socket) == (200, b"alt callable")


def test_module_found_through_chdir(gyre):
    g = gyre(None, "--chdir", APPS, "--module", "cli_pkg.mod:other")
    assert get_body(g.socket) == (200, b"cli_pkg.mod other")


@pytest.mark.parametrize("opt", ["--pythonpath", "--python-path", "--pp"])
def test_pythonpath(gyre, tmp_path, opt):
    libdir = tmp_path / "lib"
    libdir.mkdir()
    name = "gyre_pp_app_" + uuid.uuid4().hex[:8]
    (libdir / (name + ".py")).write_text(
        "import sys\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [repr(%r in sys.path).encode()]\n" % str(libdir))
    g = gyre(None, opt, str(libdir), "--module", name)
    assert get_body(g.socket) == (200, b"True")


def test_chdir_and_env_visible_to_the_app(gyre, tmp_path):
    workdir = tmp_path / "wd"
    workdir.mkdir()
    g = gyre("cli_app.py", "--chdir", str(workdir), "--env", "GYRE_T_ONE=1",
             "--env=GYRE_T_TWO=a=b c", "--env", "GYRE_T_EMPTY=")
    report = get_json(g.socket)
    assert os.path.realpath(report["cwd"]) == os.path.realpath(str(workdir))
    assert report["env"] == {"GYRE_T_ONE": "1", "GYRE_T_TWO": "a=b c", "GYRE_T_EMPTY": ""}


def test_app_import_failure_logs_traceback_and_exits_nonzero(gyre):
    g = gyre("cli_broken.py", wait=False)
    rc = g.proc.wait(TIMEOUT)
    log = g.log()
    assert rc != 0, log
    assert "Traceback (most recent call last)" in log
    assert "ModuleNotFoundError" in log and "gyre_test_no_such_module_cli_broken" in log
    assert "cli_broken.py" in log
    assert not os.path.exists(g.socket)


def test_missing_callable_exits_nonzero(gyre):
    g = gyre("cli_app.py", "--callable", "no_such_callable", wait=False)
    rc = g.proc.wait(TIMEOUT)
    assert rc != 0
    assert "no_such_callable" in g.log()


# ---- sockets ------------------------------------------------------------------------------------

def socket_mode(path):
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    return stat.S_IMODE(st.st_mode)


@pytest.mark.parametrize("args, mode", [
    (["--chmod-socket"], 0o666),                       # bare, last on the line
    (["--chmod-socket", "--tornado", "2"], 0o666),     # bare, followed by another option
    (["--chmod-socket=660"], 0o660),
    (["--chmod-socket", "660"], 0o660),
    (["--chmod-socket=600"], 0o600),
])
def test_chmod_socket(gyre, args, mode):
    g = gyre("cli_app.py", *args)
    assert socket_mode(g.socket) == mode
    assert "cwd" in get_json(g.socket)


def test_tcp_socket_serves(launch, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    g = launch("--socket", "127.0.0.1:%d" % port, "--wsgi-file", APP)
    assert "uwsgi://127.0.0.1:%d" % port in g.log()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": "/"}))
        status, _, body = parse_response(recv_all(c))
    assert status == 200 and "cwd" in json.loads(body)


def test_tcp_port_out_of_range_is_refused(launch):
    # 99999 is no TCP port; it must not be taken modulo 65536 (34463) and served there.
    g = launch("--socket", "127.0.0.1:99999", "--wsgi-file", APP, wait=False)
    try:
        rc = g.proc.wait(3)
    except subprocess.TimeoutExpired:
        rc = None
    assert rc not in (None, 0), "gyre started with --socket 127.0.0.1:99999:\n" + g.log()


def test_socket_timeout_drops_a_silent_client(gyre):
    g = gyre("cli_app.py", "--socket-timeout", "1")
    with connect(g.socket, TIMEOUT) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": "/"})[:10])      # half a head, then silence
        t0 = time.monotonic()
        assert recv_all(c) == b""
        assert time.monotonic() - t0 < 4
    g.wait_log("socket timeout reading the request head", timeout=5)
    assert get_json(g.socket)


def test_buffer_size(gyre):
    g = gyre("cli_app.py", "--buffer-size", "1024")
    for size in (1000, 1024):
        with connect(g.socket, TIMEOUT) as c:
            c.sendall(packet_with_datasize(size))
            status, _, _ = parse_response(recv_all(c))
        assert status == 200, size
    with connect(g.socket, TIMEOUT) as c:
        c.sendall(packet_with_datasize(1025))
        assert recv_all(c) == b""                    # refused: closed without an answer
    g.wait_log("vars block larger than buffer-size", timeout=5)
    assert get_json(g.socket)


def test_buffer_size_default_accepts_larger_blocks(gyre):
    g = gyre("cli_app.py")
    with connect(g.socket, TIMEOUT) as c:
        c.sendall(packet_with_datasize(4000))
        status, _, _ = parse_response(recv_all(c))
    assert status == 200


def test_listen_backlog(gyre, tmp_path):
    """With the only core busy and a parsed request queued, gyre stops accepting and leaves new
    connections in the kernel's backlog, which --listen sizes: a unix socket refuses (EAGAIN) a
    connect once the backlog is full."""
    st = str(tmp_path / "stats.sock")
    g = gyre("cli_app.py", "--tornado", "1", "--listen", "2", "--stats", st)
    busy = connect(g.socket, TIMEOUT)
    busy.sendall(uwsgi_packet({"PATH_INFO": "/sleep", "QUERY_STRING": "s=1.5"}))
    waiting = connect(g.socket, TIMEOUT)
    waiting.sendall(uwsgi_packet({"PATH_INFO": "/sleep", "QUERY_STRING": "s=0"}))

    def not_accepting():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(TIMEOUT)
            s.connect(st)
            return json.loads(recv_all(s))["workers"][0]["accepting"] == 0
    # A condition, not a guessed time: the worker has stopped watching the listening socket.
    wait_for(not_accepting, TIMEOUT, what="the worker to stop accepting")
    queued = []
    refused = False
    try:
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(g.socket)
            except BlockingIOError:
                s.close()
                refused = True
                break
            queued.append(s)
        assert refused, "20 connections queued behind a busy core despite --listen 2"
        assert len(queued) <= 4, len(queued)
        status, body = parse_response(recv_all(busy))[::2]
        assert (status, body) == (200, b"slept")
        status, body = parse_response(recv_all(waiting))[::2]
        assert (status, body) == (200, b"slept")
    finally:
        busy.close()
        waiting.close()
        for s in queued:
            s.close()


# ---- logging ------------------------------------------------------------------------------------

def test_request_log_line_by_default(gyre):
    g = gyre("cli_app.py")
    get_json(g.socket, "/logged-path")
    g.wait_log("GET /logged-path => generated", timeout=5)


def test_disable_logging(gyre):
    g = gyre("cli_app.py", "--disable-logging")
    get_json(g.socket, "/unlogged-path")
    # The log line is written before the connection closes: by now it would be there.
    time.sleep(0.2)
    log = g.log()
    assert "/unlogged-path" not in log
    assert "=> generated" not in log
    assert "gyre " in log          # the banner still is logged


def test_banner_is_the_first_log_line(gyre):
    g = gyre("cli_app.py", "--tornado", "7")
    version = run("--version").stdout.split()[1]
    first = g.log().splitlines()[0]
    m = re.search(r"gyre (\S+) \(Python (\S+), Tornado (\S+), greenlet (\S+)\) pid (\d+): "
                  r"(\d+) cores? on (.*)$", first)
    assert m, first
    assert m.group(1) == version
    assert m.group(2) == platform.python_version()
    assert m.group(3) == tornado.version
    assert m.group(4) == greenlet.__version__
    assert int(m.group(5)) == g.proc.pid
    assert m.group(6) == "7"
    assert m.group(7) == "uwsgi://" + g.socket


def test_banner_single_core(gyre):
    g = gyre("cli_app.py")
    assert re.search(r": 1 core on uwsgi://", g.log().splitlines()[0])


# ---- stopping -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly(gyre, sig):
    g = gyre("cli_app.py")
    assert get_json(g.socket)
    t0 = time.monotonic()
    g.proc.send_signal(sig)
    rc = g.proc.wait(5)
    assert rc == 0, g.log()
    assert time.monotonic() - t0 < 3
    assert not os.path.exists(g.socket)
    assert "stopped after 1 request" in g.log()


def test_in_flight_request_completes_on_sigterm(gyre):
    g = gyre("cli_app.py", "--tornado", "2")
    with connect(g.socket, TIMEOUT) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": "/sleep", "QUERY_STRING": "s=1"}))
        time.sleep(0.3)
        t0 = time.monotonic()
        g.proc.send_signal(signal.SIGTERM)
        g.wait_log("graceful stop", timeout=5)
        # No new connections once stopping.
        with pytest.raises(OSError) as exc:
            connect(g.socket, 2).close()
        assert exc.value.errno == errno.ENOENT  # the socket file goes before the log line
        status, _, body = parse_response(recv_all(c))
    assert (status, body) == (200, b"slept")
    assert g.proc.wait(5) == 0
    assert time.monotonic() - t0 < 4
    assert not os.path.exists(g.socket)


def test_worker_reload_mercy_bounds_the_graceful_stop(gyre):
    g = gyre("cli_app.py", "--worker-reload-mercy", "0.5")
    with connect(g.socket, TIMEOUT) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": "/sleep", "QUERY_STRING": "s=5"}))
        time.sleep(0.3)
        t0 = time.monotonic()
        g.proc.send_signal(signal.SIGTERM)
        assert g.proc.wait(5) == 0
        assert time.monotonic() - t0 < 2.5
        assert b"slept" not in recv_all(c)
    assert "still open after" in g.log()
    assert not os.path.exists(g.socket)


def test_second_signal_stops_at_once(gyre):
    g = gyre("cli_app.py")
    with connect(g.socket, TIMEOUT) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": "/sleep", "QUERY_STRING": "s=5"}))
        time.sleep(0.3)
        t0 = time.monotonic()
        g.proc.send_signal(signal.SIGTERM)
        g.wait_log("graceful stop", timeout=5)
        g.proc.send_signal(signal.SIGINT)
        assert g.proc.wait(5) == 0
        assert time.monotonic() - t0 < 2.5
    assert "again: stopping now" in g.log()
    assert not os.path.exists(g.socket)
