"""Fixtures for the integration tests: real gyre processes, real nginx, real sockets.

    def test_x(stack):
        s = stack("hello.py", "--tornado", "10")     # gyre + nginx in front of it
        r = requests.get(s.url + "/")

    def test_y(gyre):
        g = gyre("hello.py")                          # gyre alone, on a unix socket
        raw = uwsgi_request(g.socket, {"PATH_INFO": "/"})

Apps live in tests/apps/. Every process started here is stopped at the end of its test.
"""
import contextlib
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


class FrontEnd:
    """A private web server in the foreground on a free loopback port, its files in prefix."""

    name = "front end"
    stop_signal = signal.SIGQUIT

    def wait_listening(self):
        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("%s exited:\n%s" % (self.name, self.error_log()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(listening, what=self.name)

    def error_log(self):
        try:
            return open(os.path.join(self.prefix, "error.log")).read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Nginx(FrontEnd):
    """A private nginx in the foreground, in front of a unix socket."""

    name = "nginx"

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
        self.wait_listening()


class Stack:
    def __init__(self, gyre, nginx):
        self.gyre, self.nginx = gyre, nginx
        self.url = nginx.url if nginx else "http://127.0.0.1:%d" % gyre.port


@contextlib.contextmanager
def started(tmp_path, make):
    """What a fixture that starts servers yields: start(*args, **kw) makes one with
    make(str(tmp_path), *args, **kw); each is stopped (its stop()) when the test ends, the last
    started first."""
    servers = []

    def start(*args, **kw):
        s = make(str(tmp_path), *args, **kw)
        servers.append(s)
        return s
    try:
        yield start
    finally:
        for s in reversed(servers):
            s.stop()


@pytest.fixture
def gyre(tmp_path):
    """gyre(app, *args, **kw): a Gyre serving app."""
    with started(tmp_path, Gyre) as start:
        yield start


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


# ---- FastCGI: the one client of the tests ------------------------------------------------------
#
# Written from the spec (https://fastcgi-archives.github.io/FastCGI_Specification.html), not from
# gyre's sources. Encoding: records, name-value pairs, streams, whole responder requests.
# Decoding: FcgiReader reads gyre's records off a connected socket; read_record(strict=True)
# checks each against the spec (version 1, reserved 0, padded to 8, at most 65535 bytes).

FCGI_VERSION_1 = 1
(FCGI_BEGIN_REQUEST, FCGI_ABORT_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT,
 FCGI_STDERR, FCGI_DATA) = range(1, 9)
FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT, FCGI_UNKNOWN_TYPE = 9, 10, 11
FCGI_RESPONDER, FCGI_AUTHORIZER, FCGI_FILTER = 1, 2, 3
FCGI_KEEP_CONN = 1
FCGI_REQUEST_COMPLETE, FCGI_CANT_MPX_CONN, FCGI_OVERLOADED, FCGI_UNKNOWN_ROLE = 0, 1, 2, 3
FCGI_MAX_CONTENT = 65535

FCGI_BASE_PARAMS = {
    "REQUEST_METHOD": "GET", "REQUEST_URI": "/", "SCRIPT_NAME": "", "PATH_INFO": "/",
    "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost",
    "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1", "GATEWAY_INTERFACE": "CGI/1.1",
}


def fcgi_record(rtype, rid, content=b"", padding=None, version=FCGI_VERSION_1, length=None):
    """One record. padding defaults to the spec's recommendation (content + padding a multiple of
    8); length overrides the contentLength field (to lie about it)."""
    if padding is None:
        padding = -len(content) % 8
    clen = len(content) if length is None else length
    return (struct.pack(">BBHHBB", version, rtype, rid, clen, padding, 0) + content
            + b"\0" * padding)


def fcgi_begin_request(rid, role=FCGI_RESPONDER, flags=0):
    return fcgi_record(FCGI_BEGIN_REQUEST, rid, struct.pack(">HB5x", role, flags))


def fcgi_nv_length(n, long=False):
    """A name-value pair length: 1 byte below 128, else 4 bytes big-endian with the top bit set
    (long=True forces the 4-byte form, which the spec allows for any length)."""
    if n < 128 and not long:
        return bytes([n])
    return struct.pack(">I", n | 0x80000000)


def _latin1(s):
    return s.encode("latin-1") if isinstance(s, str) else s


def fcgi_pairs(pairs, long=False):
    """Name-value pairs (a dict or a list of pairs, str or bytes) in the spec's encoding."""
    out = b""
    for k, v in (pairs.items() if isinstance(pairs, dict) else pairs):
        k, v = _latin1(k), _latin1(v)
        out += fcgi_nv_length(len(k), long) + fcgi_nv_length(len(v), long) + k + v
    return out


def fcgi_decode_pairs(data):
    """Name-value pairs back into a list of (name, value) bytes."""
    out, p = [], 0

    def length():
        nonlocal p
        if data[p] < 128:
            p += 1
            return data[p - 1]
        n = struct.unpack(">I", data[p:p + 4])[0] & 0x7FFFFFFF
        p += 4
        return n
    while p < len(data):
        nlen = length()
        vlen = length()
        out.append((data[p:p + nlen], data[p + nlen:p + nlen + vlen]))
        p += nlen + vlen
    assert p == len(data), "pairs run past the end of the record"
    return out


def fcgi_stream(rtype, rid, data, chunk=FCGI_MAX_CONTENT, end=True):
    """A stream's records: data cut into records of `chunk` bytes, then (end=True) the empty
    record that closes the stream."""
    out = b""
    for i in range(0, len(data), chunk):
        out += fcgi_record(rtype, rid, data[i:i + chunk])
    return out + (fcgi_record(rtype, rid) if end else b"")


def fcgi_make_params(path="/", query="", method="GET", body=b"", extra=None):
    p = dict(FCGI_BASE_PARAMS, PATH_INFO=path, REQUEST_URI=path + ("?" + query if query else ""),
             QUERY_STRING=query, REQUEST_METHOD=method)
    if body or method == "POST":
        p["CONTENT_LENGTH"] = str(len(body))
        p["CONTENT_TYPE"] = "application/octet-stream"
    p.update(extra or {})
    return p


def fcgi_request_bytes(rid=1, path="/", query="", method="GET", body=b"", keep=False, extra=None,
                       params_chunk=FCGI_MAX_CONTENT, stdin_chunk=FCGI_MAX_CONTENT):
    """A whole responder request: BEGIN_REQUEST, PARAMS, empty PARAMS, STDIN, empty STDIN."""
    pairs = fcgi_pairs(fcgi_make_params(path, query, method, body, extra))
    return (fcgi_begin_request(rid, flags=FCGI_KEEP_CONN if keep else 0)
            + fcgi_stream(FCGI_PARAMS, rid, pairs, params_chunk)
            + fcgi_stream(FCGI_STDIN, rid, body, stdin_chunk))


class FcgiRecord:
    def __init__(self, version, rtype, rid, content, padding, reserved):
        self.version, self.type, self.id = version, rtype, rid
        self.content, self.padding, self.reserved = content, padding, reserved

    def __repr__(self):
        return "Record(type=%d, id=%d, %d+%d bytes)" % (self.type, self.id, len(self.content),
                                                        self.padding)


class FcgiResponse:
    def __init__(self, rid):
        self.id = rid
        self.stdout = b""
        self.stderr = b""
        self.stdout_records = []   # content length of every non-empty STDOUT record
        self.stdout_closed = False
        self.app_status = self.protocol_status = None
        self.others = []

    def cgi(self):
        """(status, headers, body) of the CGI response in STDOUT."""
        head, sep, body = self.stdout.partition(b"\r\n\r\n")
        assert sep, "no blank line after the CGI headers: %r" % self.stdout[:300]
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("Status: "), "the first line is not a Status header: %r" \
            % lines[0]
        status = int(lines[0][8:11])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers, body

    def assert_complete(self):
        assert self.stdout_closed, "END_REQUEST without the empty STDOUT record before it"
        assert (self.app_status, self.protocol_status) == (0, FCGI_REQUEST_COMPLETE)
        return self.cgi()


class FcgiReader:
    """gyre's records off a connected socket, one at a time (every one kept in .records)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.records = []

    def _fill(self, n):
        """At least n bytes buffered: True, or False at end of stream."""
        while len(self.buf) < n:
            try:
                d = self.sock.recv(262144)
            except ConnectionResetError:
                d = b""
            if not d:
                return False
            self.buf += d
        return True

    def read_record(self, strict=True):
        """The next record, or None if gyre closed the connection. strict: the record is checked
        against the spec, and a close inside a record fails; else such a close is None too."""
        if not self._fill(8):
            assert not strict or self.buf == b"", \
                "connection closed inside a record header: %r" % self.buf
            return None
        version, rtype, rid, clen, plen, reserved = struct.unpack(">BBHHBB", self.buf[:8])
        if not self._fill(8 + clen + plen):
            assert not strict, \
                "connection closed inside a record (type %d, %d+%d bytes)" % (rtype, clen, plen)
            return None
        rec = FcgiRecord(version, rtype, rid, self.buf[8:8 + clen], plen, reserved)
        self.buf = self.buf[8 + clen + plen:]
        if strict:
            assert version == FCGI_VERSION_1, rec
            assert reserved == 0, rec
            assert (clen + plen) % 8 == 0, "record not padded to 8: %r" % rec
            assert plen < 8, "more padding than 8-byte alignment needs: %r" % rec
            assert clen <= FCGI_MAX_CONTENT
        self.records.append(rec)
        return rec

    def read_stdout(self):
        """(stdout, ended): the STDOUT bytes until END_REQUEST (ended True) or until gyre closes
        the connection, between records or inside one (ended False)."""
        stdout = b""
        while True:
            rec = self.read_record(strict=False)
            if rec is None:
                return stdout, False
            if rec.type == FCGI_STDOUT:
                stdout += rec.content
            elif rec.type == FCGI_END_REQUEST:
                return stdout, True

    def response(self, rid=1):
        """Read one request's answer: STDOUT and STDERR records until END_REQUEST for rid.
        Management records and END_REQUESTs for other ids are kept aside (.others)."""
        resp = FcgiResponse(rid)
        stdout_ended = False
        while True:
            rec = self.read_record()
            assert rec is not None, "connection closed before END_REQUEST for id %d " \
                "(got %d stdout bytes so far)" % (rid, len(resp.stdout))
            if rec.id != rid:
                resp.others.append(rec)
                continue
            if rec.type == FCGI_STDOUT:
                assert not stdout_ended, "STDOUT after the empty STDOUT record"
                if rec.content:
                    resp.stdout_records.append(len(rec.content))
                    resp.stdout += rec.content
                else:
                    stdout_ended = True
            elif rec.type == FCGI_STDERR:
                resp.stderr += rec.content
            elif rec.type == FCGI_END_REQUEST:
                assert len(rec.content) == 8, rec
                resp.app_status, resp.protocol_status = struct.unpack(">IB3x", rec.content)
                resp.stdout_closed = stdout_ended
                return resp
            else:
                raise AssertionError("unexpected record %r for the request" % rec)


# ---- gyre or Debian's uWSGI with --http: the same client checks against both -------------------

UWSGI = shutil.which("uwsgi") or "/usr/bin/uwsgi"


class HttpServer:
    """gyre, or Debian's uWSGI (kind="uwsgi": its HTTP router and one worker), serving the WSGI
    file app with `--http 127.0.0.1:PORT` and the extra options args; url is where it answers."""

    def __init__(self, tmp, kind, app, *args, addr=None):
        self.kind = kind
        # free_port() only finds a port free now: another process on the machine (a second
        # test run, a chroot's) may bind it first. That server exits saying so; pick another.
        for attempt in range(3):
            self._start(tmp, kind, app, args, addr)
            if self.session.alive() or addr or "Address already in use" not in self.log():
                break
        if not self.session.alive():
            raise AssertionError("%s exited:\n%s" % (kind, self.log()))
        if (addr or "127.0.0.1:").startswith("127.0.0.1:"):
            wait_for(self._connectable, 20, what="%s's port" % kind)

    def _start(self, tmp, kind, app, args, addr):
        self.port = free_port()
        addr = addr or "127.0.0.1:%d" % self.port
        if kind == "gyre":
            argv = [GYRE, "--http", addr, "--wsgi-file", app, *args]
        else:
            argv = [UWSGI, "--plugin", "http,python3", "--http", addr, "--wsgi-file", app, *args]
        self.session = Session(tmp, argv)
        self.url = "http://127.0.0.1:%d" % self.port
        # uWSGI's router listens before its worker is up: wait for the worker, not the port.
        ready = "gyre" if kind == "gyre" else "spawned uWSGI worker"
        wait_for(lambda: ready in self.log() or not self.session.alive(), 20,
                 what="%s to start" % kind)

    def _connectable(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def log(self):
        return self.session.log()

    def stop(self):
        self.session.kill_group()


@pytest.fixture
def http_server(tmp_path):
    """http_server(kind, app, *args): gyre or uWSGI with --http (see HttpServer)."""
    with started(tmp_path, HttpServer) as start:
        yield start
