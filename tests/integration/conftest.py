"""Fixtures for the integration tests: real gyre processes, real nginx, real sockets.

    def test_x(stack):
        s = stack("hello.py", "--tornado", "10")     # gyre + nginx in front of it
        r = requests.get(s.url + "/")

    def test_y(gyre):
        g = gyre("hello.py")                          # gyre alone, on a unix socket
        raw = uwsgi_request(g.socket, {"PATH_INFO": "/"})

Apps live in tests/apps/. Every process started here is stopped at the end of its test.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GYRE = os.environ.get("GYRE_BIN", os.path.join(ROOT, "gyre"))
APPS = os.path.join(ROOT, "tests", "apps")
NGINX_TEMPLATE = os.path.join(ROOT, "nginx-conf", "uwsgi.conf")
NGINX_TEMPLATES = {"uwsgi": NGINX_TEMPLATE,
                   "fastcgi": os.path.join(ROOT, "nginx-conf", "fastcgi.conf")}
PROTO_FLAG = {"uwsgi": "--socket", "fastcgi": "--fastcgi-socket"}
PROTOS = ("uwsgi", "fastcgi", "http")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class Gyre:
    """One gyre process, its socket and its log."""

    def __init__(self, tmp, app, *args, socket_name="app.sock", wait=True, env=None,
                 proto="uwsgi"):
        """proto: "uwsgi" (--socket), "fastcgi" (--fastcgi-socket) on the unix socket
        self.socket, or "http" (--http-socket) on 127.0.0.1:self.port."""
        self.proto = proto
        self.socket = os.path.join(tmp, socket_name)
        self.port = None
        self.log_path = os.path.join(tmp, "gyre-%d.log" % time.monotonic_ns())
        app_args = []
        if app is not None:
            app_args = ["--wsgi-file", app if os.path.isabs(app) else os.path.join(APPS, app)]
        if proto == "http":
            self.port = free_port()
            sock_args = ["--http-socket", "127.0.0.1:%d" % self.port]
        else:
            sock_args = [PROTO_FLAG[proto], self.socket]
        self.argv = [GYRE, *sock_args, *app_args, *args]
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        if wait:
            wait_for(lambda: self.listening() or self.proc.poll() is not None,
                     what="gyre's socket")
            if self.proc.poll() is not None:
                raise AssertionError("gyre exited with %s:\n%s" % (self.proc.returncode, self.log()))
            # The socket exists once bound; the app is loaded right after: wait for a connect
            # to be served rather than guessing.

    def listening(self):
        if "gyre" not in self.log():
            return False
        if self.port is None:
            return os.path.exists(self.socket)
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def mark(self):
        """Where the log ends now: pass it as since= to look only at what comes after."""
        return len(self.log())

    def wait_log(self, text, timeout=10.0, since=0, count=1):
        """Wait until text occurs count times in the log (from since on); returns that part.
        gyre writes a request's log line after the response's last byte: a client that has its
        response may look before the line is there, so tests wait for log lines, never read them
        once."""
        got = []
        def enough():
            got[:] = [self.log()[since:]]
            return got[0].count(text) >= count
        wait_for(enough, timeout, what="%r %d time(s) in gyre's log" % (text, count))
        return got[0]

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("gyre did not stop within %ss:\n%s" % (timeout, self.log()))
        self.logf.close()
        return self.proc.returncode


class Session:
    """A process (gyre, or a wrapper exec'ing it) in a session of its own, so that it and its
    children can be signalled and killed as a group; its stdout+stderr go to a log file."""

    def __init__(self, tmp, argv, env=None, cwd=None, stdout=None, stderr=None):
        self.argv = argv
        self.log_path = os.path.join(tmp, "gyre-%d.log" % time.monotonic_ns())
        self.logf = open(self.log_path, "wb")
        if stdout is None:
            stdout, stderr = self.logf, subprocess.STDOUT
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                     start_new_session=True, cwd=cwd, env=env)
        self.pid = self.proc.pid

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout=10.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("gyre did not exit within %ss:\n%s" % (timeout, self.log()))

    def stop(self, timeout=15.0):
        """SIGTERM, then SIGKILL after timeout; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode

    def kill_group(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.logf.close()


class Nginx:
    """A private nginx in the foreground, in front of a unix socket."""

    def __init__(self, tmp, socket_path, template=NGINX_TEMPLATE):
        self.prefix = os.path.join(tmp, "nginx")
        os.makedirs(self.prefix, exist_ok=True)
        self.port = free_port()
        conf = open(template).read()
        conf = (conf.replace("@PORT@", str(self.port)).replace("@SOCKET@", socket_path)
                .replace("@PREFIX@", self.prefix))
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", self.prefix + "/", "-c", self.conf,
                                      "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = "http://127.0.0.1:%d" % self.port

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited:\n" + self.error_log())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(listening, what="nginx")

    def error_log(self):
        try:
            return open(os.path.join(self.prefix, "error.log")).read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stack:
    def __init__(self, gyre, nginx):
        self.gyre, self.nginx = gyre, nginx
        self.url = nginx.url if nginx else "http://127.0.0.1:%d" % gyre.port


@pytest.fixture
def gyre(tmp_path):
    started = []

    def start(app, *args, **kw):
        g = Gyre(str(tmp_path), app, *args, **kw)
        started.append(g)
        return g
    yield start
    for g in started:
        g.stop()


@pytest.fixture
def stack(tmp_path):
    """stack(app, *gyre_args, proto="uwsgi"): gyre behind nginx (uwsgi_pass or fastcgi_pass,
    with keep-alive upstream connections for FastCGI), or gyre alone for proto="http"."""
    started = []

    def start(app, *args, proto="uwsgi", **kw):
        g = Gyre(str(tmp_path), app, *args, proto=proto, **kw)
        started.append(g)
        n = None
        if proto != "http":
            n = Nginx(str(tmp_path), g.socket, template=NGINX_TEMPLATES[proto])
            started.append(n)
        return Stack(g, n)
    yield start
    for p in reversed(started):
        p.stop()


# ---- the uwsgi protocol, spoken by hand ---------------------------------------------------------

BASE_VARS = {
    "REQUEST_METHOD": "GET", "REQUEST_URI": "/", "PATH_INFO": "/", "QUERY_STRING": "",
    "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
    "REMOTE_ADDR": "127.0.0.1",
}


def encode_vars(pairs):
    items = pairs.items() if isinstance(pairs, dict) else pairs
    out = b""
    for k, v in items:
        k = k.encode("latin-1") if isinstance(k, str) else k
        v = v.encode("latin-1") if isinstance(v, str) else v
        out += struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
    return out


def uwsgi_packet(vars=None, body=b"", modifier1=0):
    v = dict(BASE_VARS)
    v.update(vars or {})
    if body and "CONTENT_LENGTH" not in v:
        v["CONTENT_LENGTH"] = str(len(body))
    data = encode_vars(v)
    return struct.pack("<BHB", modifier1, len(data), 0) + data + body


def connect(path, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def recv_all(s):
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d


def uwsgi_request(path, vars=None, body=b"", timeout=10.0):
    """Send one uwsgi request, return the raw HTTP response bytes (read until close)."""
    with connect(path, timeout) as s:
        s.sendall(uwsgi_packet(vars, body))
        return recv_all(s)


def parse_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body
