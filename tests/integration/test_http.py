"""gyre's own HTTP/1.1 server (--http-socket), spoken by hand over raw sockets, plus `requests`
and `http.client`: connection management (keep-alive, pipelining, HTTP/1.0), request bodies
(Content-Length, chunked, Expect: 100-continue), response framing (Content-Length, chunked,
close-delimited, HEAD, 204/304), the parser's strictness (smuggling, limits, malformed heads:
proto/http.h documents each choice) and the CGI environ the HTTP socket builds.

The app is tests/apps/http_app.py. Every socket has a timeout; every rejected request is
followed by a normal one on a new connection.
"""
import email.utils
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import namedtuple
from http.client import HTTPConnection

import pytest
import requests

from conftest import APPS, GYRE, free_port, wait_for

APP = "http_app.py"
TIMEOUT = 5


# ---- a raw HTTP/1.1 client ----------------------------------------------------------------------

Resp = namedtuple("Resp", "version status reason headers h body head")


class Conn:
    """One client connection: send bytes, read whole responses one after the other (framing by
    Content-Length, chunked coding or the close), see whether the server closed it."""

    def __init__(self, port, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection; unparsed: %r" % self.buf[:200])
        self.buf += data

    def read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_close(self):
        try:
            while True:
                self._fill()
        except (EOFError, ConnectionResetError):
            pass
        out, self.buf = self.buf, b""
        return out

    def read_head(self):
        head = self.read_until(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        version, code, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        h = {}
        for k, v in headers:
            h[k.lower()] = h[k.lower()] + ", " + v if k.lower() in h else v
        return Resp(version, int(code), reason, headers, h, None, head)

    def read_response(self, method="GET"):
        """The next final response (1xx are returned too: check .status)."""
        r = self.read_head()
        if method == "HEAD" or r.status in (204, 304) or r.status < 200:
            body = b""
        elif "chunked" in r.h.get("transfer-encoding", ""):
            body = b""
            while True:
                size = int(self.read_until(b"\r\n")[:-2].split(b";")[0], 16)
                if size == 0:
                    while self.read_until(b"\r\n") != b"\r\n":
                        pass            # trailers
                    break
                body += self.read_exact(size + 2)[:-2]
        elif "content-length" in r.h:
            body = self.read_exact(int(r.h["content-length"]))
        else:
            body = self.read_to_close()
        return r._replace(body=body)

    def closed(self, timeout=3.0):
        """True if the server closes the connection within timeout without sending anything
        more (a reset counts as closed)."""
        self.sock.settimeout(timeout)
        try:
            extra = self.buf + self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        assert extra == b"", "unexpected bytes after the response: %r" % extra[:200]
        return True


def exchange(port, data, method="GET", timeout=TIMEOUT):
    """One request on a new connection: (response, closed afterwards)."""
    with Conn(port, timeout) as c:
        c.send(data)
        r = c.read_response(method)
        return r, c.closed()


def req(path, method="GET", headers=(), body=b"", version="1.1", host=True):
    out = "%s %s HTTP/%s\r\n" % (method, path, version)
    if host:
        out += "Host: localhost\r\n"
    for k, v in headers:
        out += "%s: %s\r\n" % (k, v)
    return out.encode("latin-1") + b"\r\n" + body


def chunked(pieces, ext=b"", trailers=b""):
    out = b""
    for p in pieces:
        out += b"%x%s\r\n%s\r\n" % (len(p), ext, p)
    return out + b"0\r\n" + trailers + b"\r\n"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def pattern(n, seed):
    return random.Random(seed).randbytes(n)


@pytest.fixture
def http(gyre):
    """http(*gyre_args): gyre serving http_app.py on --http-socket 127.0.0.1:PORT."""
    def start(*args):
        return gyre(APP, *args, proto="http")
    return start


def alive(g):
    """gyre still runs and serves a normal request on a new connection."""
    assert g.proc.poll() is None, g.log()[-2000:]
    r, _ = exchange(g.port, req("/ok", headers=[("Connection", "close")]))
    assert (r.status, r.body) == (200, b"ok")


def served_paths(g):
    return re.findall(r"\] [A-Z]+ (\S+) => generated", g.log())


# ---- keep-alive and pipelining -----------------------------------------------------------------

def test_keep_alive_requests_share_one_connection(http):
    g = http()
    with Conn(g.port) as c:
        for i in range(5):
            c.send(req("/env?i=%d" % i))
            r = c.read_response()
            assert r.status == 200
            assert "connection" not in r.h          # HTTP/1.1: persistent by default
            env = json.loads(r.body)
            assert env["QUERY_STRING"] == "i=%d" % i
            # The server saw the same client socket every time: one connection.
            assert env["REMOTE_PORT"] == str(c.local_port)
        # Other kinds of responses keep it too: chunked, HEAD, a body read by the app.
        c.send(req("/gen?count=3"))
        assert c.read_response().body == b"item 0\nitem 1\nitem 2\n"
        c.send(req("/list", "HEAD"))
        assert c.read_response("HEAD").body == b""
        c.send(req("/echo", "POST", [("Content-Length", "5")], b"hello"))
        assert c.read_response().body == b"hello"
        c.send(req("/env"))
        assert json.loads(c.read_response().body)["REMOTE_PORT"] == str(c.local_port)
        assert not c.closed(0.3)
    assert sum(p.startswith("/env") for p in served_paths(g)) == 6


def test_pipelined_requests_answered_in_order(http):
    g = http()
    batch = (req("/env?n=1")
             + req("/echo", "POST", [("Content-Length", "5")], b"hello")
             + req("/gen?count=2")
             + req("/list", "HEAD")
             + req("/echo", "POST", [("Transfer-Encoding", "chunked")], chunked([b"ab", b"c"]))
             + req("/status?code=204")
             + req("/env?n=2", headers=[("Connection", "close")]))
    with Conn(g.port) as c:
        c.send(batch)                       # all in one send
        r = c.read_response()
        assert json.loads(r.body)["QUERY_STRING"] == "n=1"
        assert c.read_response().body == b"hello"
        assert c.read_response().body == b"item 0\nitem 1\n"
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b""
        assert c.read_response().body == b"abc"
        assert c.read_response().status == 204
        r = c.read_response()
        assert json.loads(r.body)["QUERY_STRING"] == "n=2"
        assert r.h["connection"] == "close"
        assert c.closed()
    alive(g)


@pytest.mark.parametrize("count", [2, 3])
def test_pipelined_gets_in_one_send(http, count):
    g = http()
    with Conn(g.port) as c:
        c.send(b"".join(req("/env?k=%d" % i) for i in range(count)))
        for i in range(count):
            r = c.read_response()
            assert r.status == 200
            assert json.loads(r.body)["QUERY_STRING"] == "k=%d" % i
        assert not c.closed(0.3)


def test_pipelined_requests_split_anywhere(http):
    """The same batch, cut in 13-byte pieces: request boundaries fall mid-line and mid-chunk."""
    g = http()
    batch = (req("/env?n=1") + req("/echo", "POST", [("Transfer-Encoding", "chunked")],
                                   chunked([b"x" * 20, b"y" * 7], b";e=1", b"T: v\r\n"))
             + req("/list", "HEAD") + req("/env?n=2", headers=[("Connection", "close")]))
    with Conn(g.port) as c:
        for i in range(0, len(batch), 13):
            c.send(batch[i:i + 13])
            time.sleep(0.005)
        assert json.loads(c.read_response().body)["QUERY_STRING"] == "n=1"
        assert c.read_response().body == b"x" * 20 + b"y" * 7
        assert c.read_response("HEAD").body == b""
        assert json.loads(c.read_response().body)["QUERY_STRING"] == "n=2"
        assert c.closed()


def test_http10_without_keep_alive_closes(http):
    g = http()
    with Conn(g.port) as c:
        c.send(b"GET /list HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"one two three"
        assert r.h["connection"] == "close"
        assert c.closed()


@pytest.mark.parametrize("value", ["keep-alive", "Keep-Alive"])
def test_http10_keep_alive_stays_open(http, value):
    g = http()
    with Conn(g.port) as c:
        for i in range(3):
            c.send(b"GET /env?i=%d HTTP/1.0\r\nConnection: %s\r\n\r\n" % (i, value.encode()))
            r = c.read_response()
            assert r.status == 200 and r.h["connection"].lower() == "keep-alive"
            env = json.loads(r.body)
            assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
            assert env["REMOTE_PORT"] == str(c.local_port)
        assert not c.closed(0.3)


def test_http10_keep_alive_with_unknown_length_closes(http):
    """HTTP/1.0 has no chunked coding: a body of unknown length ends with the connection."""
    g = http()
    with Conn(g.port) as c:
        c.send(b"GET /gen?count=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert "content-length" not in r.h and "transfer-encoding" not in r.h
        assert r.h["connection"] == "close"
        assert r.body == b"item 0\nitem 1\nitem 2\n"


@pytest.mark.parametrize("value", ["close", "Close", "keep-alive, close"])
def test_connection_close_honoured(http, value):
    g = http()
    with Conn(g.port) as c:
        c.send(req("/list", headers=[("Connection", value)]) + req("/ok"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"one two three"
        assert r.h["connection"] == "close"
        assert c.closed()                   # and the pipelined /ok is never answered
    assert "/ok" not in served_paths(g)


def test_idle_kept_alive_connection_dropped_after_keepalive_timeout(http):
    """Between requests the wait is --keepalive-timeout's, not --socket-timeout's (which bounds
    a client silent in mid-request), as nginx's keepalive_timeout and client_body_timeout."""
    g = http("--socket-timeout", "0.5", "--keepalive-timeout", "2")
    with Conn(g.port) as c:
        c.send(req("/ok"))
        assert c.read_response().body == b"ok"
        t0 = time.monotonic()
        assert c.closed(timeout=6)
        assert time.monotonic() - t0 > 1.5
    alive(g)


def test_idle_kept_alive_connections_hold_no_core(http):
    g = http("--tornado", "1")
    conns = [Conn(g.port) for _ in range(5)]
    try:
        for c in conns:
            c.send(req("/ok"))
            assert c.read_response().body == b"ok"
        t0 = time.monotonic()
        alive(g)                            # one core, five idle connections: still served
        assert time.monotonic() - t0 < 1.0
        for c in conns:                     # and each idle one still works
            c.send(req("/ok"))
            assert c.read_response().body == b"ok"
    finally:
        for c in conns:
            c.sock.close()


def test_requests_session_reuses_the_connection(http):
    g = http()
    base = "http://127.0.0.1:%d" % g.port
    with requests.Session() as s:
        ports = set()
        for i in range(10):
            r = s.get(base + "/env?i=%d" % i, timeout=TIMEOUT)
            assert r.status_code == 200
            ports.add(r.json()["REMOTE_PORT"])
        r = s.get(base + "/gen?count=4", timeout=TIMEOUT)
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert r.text == "".join("item %d\n" % i for i in range(4))
        ports.add(s.get(base + "/env", timeout=TIMEOUT).json()["REMOTE_PORT"])
    assert len(ports) == 1


def test_http_client_keep_alive_and_chunked_upload(http):
    g = http()
    conn = HTTPConnection("127.0.0.1", g.port, timeout=TIMEOUT)
    try:
        ports = set()
        for i in range(3):
            conn.request("GET", "/env?i=%d" % i)
            r = conn.getresponse()
            assert r.status == 200
            ports.add(json.loads(r.read())["REMOTE_PORT"])
        pieces = [b"alpha ", b"", b"beta " * 1000, b"gamma"]
        conn.request("POST", "/echo", body=iter(pieces), encode_chunked=True)
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200 and body == b"".join(pieces)
        conn.request("GET", "/env")
        r = conn.getresponse()
        ports.add(json.loads(r.read())["REMOTE_PORT"])
        assert len(ports) == 1
    finally:
        conn.close()


# ---- request bodies -----------------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [[1] * 10, [7, 4096, 1], [65536 + 3, 5], [1 << 20],
                                   [3000] * 40], ids=["ones", "mixed", "64k", "1m", "many"])
@pytest.mark.parametrize("arrival", ["one_send", "trickled"])
def test_chunked_request_body(http, sizes, arrival):
    g = http()
    data = pattern(sum(sizes), len(sizes))
    pieces, pos = [], 0
    for n in sizes:
        pieces.append(data[pos:pos + n])
        pos += n
    body = chunked(pieces)
    head = req("/echo?n=1000", "POST", [("Transfer-Encoding", "chunked")])
    with Conn(g.port) as c:
        if arrival == "one_send":
            c.send(head + body)
        else:
            c.send(head)
            step = max(1, len(body) // 25)
            for i in range(0, len(body), step):
                time.sleep(0.005)
                c.send(body[i:i + step])
        r = c.read_response()
        assert r.status == 200, g.log()[-2000:]
        assert r.h["x-body-length"] == str(len(data))
        assert r.h["x-body-sha256"] == sha(data)
        c.send(req("/ok"))                  # the body was consumed exactly: the next request
        assert c.read_response().body == b"ok"


def test_chunked_body_read_by_lines(http):
    g = http()
    pieces = [b"fir", b"st line\nsec", b"ond line\n", b"\n", b"no newline"]
    with Conn(g.port) as c:
        c.send(req("/lines", "POST", [("Transfer-Encoding", "chunked")], chunked(pieces)))
        r = c.read_response()
    assert json.loads(r.body)["lines"] == ["first line\n", "second line\n", "\n", "no newline"]


def test_chunk_extensions_and_trailers(http):
    g = http()
    body = (b"5;name=value;flag\r\nhello\r\n"
            b"6;q=\"quoted; str\"\r\n world\r\n"
            b"000A\r\n, 10 bytes\r\n"
            b"a;x=1\r\n and 10 mo\r\n"
            b"0;last=yes\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n")
    with Conn(g.port) as c:
        c.send(req("/echo", "POST", [("Transfer-Encoding", "chunked")], body) + req("/ok"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello world, 10 bytes and 10 mo"
        assert c.read_response().body == b"ok"  # trailers consumed: the next request is intact


def test_transfer_encoding_chunked_is_case_insensitive(http):
    g = http()
    r, _ = exchange(g.port, req("/echo", "POST", [("transfer-encoding", "Chunked"),
                                                  ("Connection", "close")], chunked([b"abc"])))
    assert r.status == 200 and r.body == b"abc"


@pytest.mark.parametrize("size", [5, 300_000])
def test_content_length_body_arriving_after_the_head(http, size):
    """The client sends the head, then the body a little later (as http.client and any client
    with a large body do): the app reads exactly the body."""
    g = http()
    data = pattern(size, 1)
    with Conn(g.port) as c:
        c.send(req("/echo", "POST", [("Content-Length", str(size))]))
        time.sleep(0.2)
        c.send(data)
        r = c.read_response()
        assert r.status == 200, g.log()[-1500:]
        assert r.h["x-body-sha256"] == sha(data)
        c.send(req("/ok"))
        assert c.read_response().body == b"ok"


def test_large_post_with_requests(http):
    g = http()
    data = pattern(3 * 1024 * 1024, 2)
    r = requests.post("http://127.0.0.1:%d/echo?n=65536" % g.port, data=data, timeout=30)
    assert r.status_code == 200, g.log()[-1500:]
    assert r.headers["X-Body-Sha256"] == sha(data)


def test_post_without_length_has_no_body(http):
    g = http()
    with Conn(g.port) as c:
        c.send(req("/read_report", "POST") + req("/ok"))
        assert json.loads(c.read_response().body) == {"error": None, "length": 0}
        assert c.read_response().body == b"ok"


def test_same_content_length_twice_is_accepted(http):
    """proto/http.h: repeated Content-Length fields with the same value are one length."""
    g = http()
    r, _ = exchange(g.port, req("/echo", "POST", [("Content-Length", "3"), ("Content-Length", "3"),
                                                  ("Connection", "close")], b"abc"))
    assert r.status == 200 and r.body == b"abc"


# ---- Expect: 100-continue ----------------------------------------------------------------------

@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_expect_100_continue_sent_when_the_app_reads(http, framing):
    g = http("--tornado", "2")
    data = b"the body after the 100"
    if framing == "chunked":
        hdr, body = ("Transfer-Encoding", "chunked"), chunked([data[:5], data[5:]])
    else:
        hdr, body = ("Content-Length", str(len(data))), data
    with Conn(g.port) as c:
        c.send(req("/sleep_then_read?delay=0.5", "POST", [hdr, ("Expect", "100-continue")]))
        # Not before the app asks for the body: it sleeps first.
        c.sock.settimeout(0.25)
        with pytest.raises(socket.timeout):
            c.sock.recv(1)
        c.sock.settimeout(TIMEOUT)
        r = c.read_response()
        assert (r.status, r.head) == (100, b"HTTP/1.1 100 Continue\r\n\r\n")
        assert c.buf == b""                 # nothing else until the body is there
        c.send(body)
        r = c.read_response()
        assert r.status == 200, g.log()[-1500:]
        assert r.body == data
        c.send(req("/ok"))
        assert c.read_response().body == b"ok"


def test_expect_100_continue_not_sent_when_the_app_never_reads(http):
    g = http()
    with Conn(g.port) as c:
        c.send(req("/noread", "POST", [("Content-Length", "5"), ("Expect", "100-continue")]))
        r = c.read_response()
        assert r.status == 200 and r.body == b"did not read"       # no 100 first
        assert b"100 Continue" not in r.head
        # The body never came: the server either says it closes, or keeps reading (RFC 9110
        # 10.1.1: a server answering before the whole content SHOULD say which).
        if r.h.get("connection") != "close":
            try:
                c.send(b"hello" + req("/ok"))
                assert c.read_response().body == b"ok"
            except (EOFError, ConnectionError) as e:
                pytest.fail("the server closed the connection after a response that did not "
                            "say Connection: close (%r)" % e)


def test_unread_body_then_pipelined_request(http):
    """The app ignores a body that came whole with the head; the request after it is either
    answered or the response said Connection: close (never silently dropped)."""
    g = http()
    with Conn(g.port) as c:
        c.send(req("/noread", "POST", [("Content-Length", "5")], b"hello") + req("/ok"))
        r = c.read_response()
        assert r.body == b"did not read"
        if r.h.get("connection") == "close":
            assert c.closed()
        else:
            try:
                assert c.read_response().body == b"ok"
            except (EOFError, ConnectionError) as e:
                pytest.fail("pipelined request dropped: the server closed the connection after "
                            "a response that did not say Connection: close (%r)" % e)


# ---- response framing ---------------------------------------------------------------------------

def test_chunked_response_when_length_unknown(http):
    g = http()
    with Conn(g.port) as c:
        c.send(req("/gen?count=50"))
        r = c.read_response()
        assert r.status == 200
        assert r.h["transfer-encoding"] == "chunked" and "content-length" not in r.h
        assert r.body == b"".join(b"item %d\n" % i for i in range(50))
        c.send(req("/gen?count=0"))         # an empty generator: an empty body, still framed
        r = c.read_response()
        assert r.body == b""
        # Nothing was yielded before the end: the length is known, 0, and said as such.
        assert r.h.get("content-length") == "0" and "transfer-encoding" not in r.h
        c.send(req("/ok"))
        assert c.read_response().body == b"ok"


def test_close_delimited_response_for_http10(http):
    g = http()
    with Conn(g.port) as c:
        c.send(b"GET /gen?count=20 HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert "transfer-encoding" not in r.h and "content-length" not in r.h
        assert r.h["connection"] == "close"
        assert r.body == b"".join(b"item %d\n" % i for i in range(20))


def test_content_length_when_the_app_returns_a_list(http):
    g = http()
    with Conn(g.port) as c:
        c.send(req("/list"))
        r = c.read_response()
        assert r.h["content-length"] == "13" and "transfer-encoding" not in r.h
        assert r.body == b"one two three"


def test_head_has_no_body(http):
    """Pipelined HEADs then a GET: had any HEAD response carried body bytes, the responses
    after it would not parse."""
    g = http()
    with Conn(g.port) as c:
        c.send(req("/list", "HEAD") + req("/gen", "HEAD") + req("/env", "HEAD") + req("/ok"))
        for _ in range(3):
            r = c.read_response("HEAD")
            assert r.status == 200 and r.body == b""
        assert c.read_response().body == b"ok"
        assert not c.closed(0.3)


def test_head_http10_has_no_body(http):
    g = http()
    r, closed = exchange(g.port, b"HEAD /gen HTTP/1.0\r\n\r\n", "HEAD")
    assert r.status == 200 and closed
    # read_response("HEAD") took nothing after the head; closed() checked nothing else came.


IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|"
                         r"Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")


def check_date(value):
    assert IMF_FIXDATE.match(value), value
    when = email.utils.parsedate_to_datetime(value).timestamp()
    assert abs(when - time.time()) < 5


@pytest.mark.parametrize("path", ["/ok", "/gen", "/status?code=204", "/nowhere"])
def test_date_and_server_headers(http, path):
    g = http()
    r, _ = exchange(g.port, req(path, headers=[("Connection", "close")]))
    check_date(r.h["date"])
    assert r.h["server"] == "gyre"
    assert [k.lower() for k, _ in r.headers].count("date") == 1


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\r\n\r\n",                                          # 400: no Host
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",           # 414
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",  # 431
], ids=["400", "414", "431"])
def test_error_responses_have_date_and_server(http, raw):
    """RFC 9110 6.6.1: an origin server with a clock MUST send Date in every 4xx response."""
    g = http()
    r, _ = exchange(g.port, raw)
    assert 400 <= r.status < 500
    assert r.h["server"] == "gyre"
    check_date(r.h.get("date", "(no Date header)"))


@pytest.mark.parametrize("code", ["204", "304"])
@pytest.mark.parametrize("app_body", ["", "oops"], ids=["empty", "app_gives_body"])
def test_204_and_304_have_no_body(http, code, app_body):
    """No body bytes after a 204 or 304 head, even when the app (wrongly) returns some: on a
    kept-alive connection they would be read as the start of the next response."""
    g = http()
    with Conn(g.port) as c:
        c.send(req("/status?code=%s&body=%s" % (code, app_body)) + req("/ok"))
        r = c.read_response()
        assert r.status == int(code) and r.h["x-status-route"] == code
        assert "transfer-encoding" not in r.h
        if code == "204":
            assert "content-length" not in r.h  # RFC 9110 8.6: MUST NOT for 204
        nxt = c.read_response()
        assert nxt.head.startswith(b"HTTP/1.1 200 OK\r\n"), (c.buf, nxt.head)
        assert nxt.body == b"ok"


# ---- request smuggling, limits and malformed heads ---------------------------------------------

BIG_HEAD = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(90))     # ~19 KiB
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
REJECTED = [
    ("cl_and_te", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, 400),
    ("te_and_cl", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 30\r\n\r\n0\r\n\r\n" + SMUGGLED, 400),
    ("two_lengths", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                    b"Content-Length: 4\r\n\r\nabcd", 400),
    ("length_list", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd", 400),
    ("length_plus", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400),
    ("length_negative", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    ("length_hex", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc", 400),
    ("length_overflow", b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 99999999999999999999\r\n\r\n", 400),
    ("te_gzip", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("te_gzip_chunked", b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                        b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te_chunked_twice", b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_in_http10", b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("head_too_large", b"GET /ok HTTP/1.1\r\nHost: x\r\n" + BIG_HEAD + b"\r\n", 431),
    ("header_line_too_long", b"GET /ok HTTP/1.1\r\nHost: x\r\nX-L: " + b"v" * 9000
                             + b"\r\n\r\n", 431),
    ("too_many_headers", b"GET /ok HTTP/1.1\r\nHost: x\r\n"
                         + b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"\r\n", 431),
    ("target_too_long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("obs_fold", b"GET /ok HTTP/1.1\r\nHost: x\r\nX-A: one\r\n  two\r\n\r\n", 400),
    ("obs_fold_tab", b"GET /ok HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n", 400),
    ("bare_lf", b"GET /ok HTTP/1.1\nHost: x\n\n", 400),
    ("bare_lf_one_line", b"GET /ok HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400),
    ("bare_cr", b"GET /ok HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n", 400),
    ("garbage_line", b"hello there\r\n\r\n", 400),
    ("tls_hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32, 400),
    ("http09", b"GET /\r\n\r\n", 400),
    ("two_spaces", b"GET  /ok HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("space_in_target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad_version", b"GET /ok HTTP/1.x\r\nHost: x\r\n\r\n", 400),
    ("http2", b"GET /ok HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("http12", b"GET /ok HTTP/1.2\r\nHost: x\r\n\r\n", 505),
    ("no_host", b"GET /ok HTTP/1.1\r\n\r\n", 400),
    ("two_hosts", b"GET /ok HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    ("bad_host", b"GET /ok HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("space_before_colon", b"GET /ok HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("bad_header_name", b"GET /ok HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", 400),
    ("no_colon", b"GET /ok HTTP/1.1\r\nHost: x\r\nJust a line\r\n\r\n", 400),
    ("control_in_value", b"GET /ok HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400),
    ("method_too_long", b"M" * 70 + b" /ok HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    # gyre is not a proxy: CONNECT never reaches the app, nor a tunnel's bytes behind it
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
                + SMUGGLED, 501),
    ("connect_origin_form", b"CONNECT /ok HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED, 501),
    ("connect_http10", b"CONNECT example.com:443 HTTP/1.0\r\n\r\n" + SMUGGLED, 501),
]


@pytest.mark.parametrize("name, raw, status", REJECTED, ids=[r[0] for r in REJECTED])
def test_rejected_request(http, name, raw, status):
    g = http()
    with Conn(g.port) as c:
        try:
            c.send(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass                # rejected before it was all sent: the answer is still there
        r = c.read_response()
        assert r.status == status, (r.head, r.body)
        assert r.h["connection"] == "close"
        assert r.h["content-length"] == str(len(r.body))
        assert c.closed()
    # The app never saw it (nor anything smuggled behind it).
    assert served_paths(g) == []
    g.wait_log("connection closed", timeout=5)
    alive(g)
    assert served_paths(g) == ["/ok"]


def test_http2_preface_rejected(http):
    g = http()
    with Conn(g.port) as c:
        c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        r = c.read_response()
        assert r.status == 400  # "PRI *" is no HTTP/1.x request line
        assert c.closed()
    alive(g)


def test_error_after_a_good_request_on_the_same_connection(http):
    """A bad request after a good one: the good one is answered, then the 400, then close."""
    g = http()
    with Conn(g.port) as c:
        c.send(req("/ok") + b"GET /x HTTP/1.1\nHost: x\n\n")
        assert c.read_response().body == b"ok"
        assert c.read_response().status == 400
        assert c.closed()
    alive(g)


BAD_CHUNKS = [
    ("not_hex", b"zz\r\nabc\r\n0\r\n\r\n"),
    ("overflow_17_digits", b"1" + b"0" * 16 + b"\r\nabc\r\n0\r\n\r\n"),
    ("overflow_20_digits", b"f" * 20 + b"\r\nabc\r\n0\r\n\r\n"),
    ("negative", b"-3\r\nabc\r\n0\r\n\r\n"),
    ("empty_size", b"\r\nabc\r\n0\r\n\r\n"),
    ("space_in_size", b"3 3\r\nabc\r\n0\r\n\r\n"),
    ("no_crlf_after_data", b"3\r\nabcX\r\n0\r\n\r\n"),
    ("bare_lf_after_size", b"3\nabc\r\n0\r\n\r\n"),
    ("extension_too_long", b"3;" + b"e" * 2000 + b"\r\nabc\r\n0\r\n\r\n"),
    ("bad_trailer", b"3\r\nabc\r\n0\r\nnot a trailer\r\n\r\n"),
]


@pytest.mark.parametrize("arrival", ["with_head", "after_head"])
@pytest.mark.parametrize("name, body", BAD_CHUNKS, ids=[b[0] for b in BAD_CHUNKS])
def test_bad_chunked_body_fails_the_read(http, name, body, arrival):
    """Broken chunked framing: the app's read raises (at once, whether the bytes came with the
    head or later), and the connection is closed after the response."""
    g = http()
    head = req("/read_report", "POST", [("Transfer-Encoding", "chunked")])
    with Conn(g.port, timeout=1.5) as c:
        if arrival == "with_head":
            c.send(head + body)
        else:
            c.send(head)
            time.sleep(0.2)
            c.send(body)
        t0 = time.monotonic()
        try:
            r = c.read_response()
        except socket.timeout:
            pytest.fail("no answer within 1.5 s: the app's read waits instead of failing")
        assert time.monotonic() - t0 < 1
        assert r.status == 200, r.status  # the app caught the error its read raised
        report = json.loads(r.body)
        assert report["error"] == "ValueError", report
        assert c.closed()
    alive(g)


def test_body_cut_by_the_client(http):
    g = http()
    with Conn(g.port) as c:
        c.send(req("/read_report", "POST", [("Transfer-Encoding", "chunked")]) + b"10\r\nabc")
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        report = json.loads(r.body)
        assert report["error"] == "ConnectionResetError", report
    alive(g)


# ---- slow clients -------------------------------------------------------------------------------

def test_slowloris_head_does_not_block_other_clients(http):
    """One core; a client trickles its head one byte at a time; others are served meanwhile."""
    g = http("--tornado", "1")
    head = req("/env?slow=1", headers=[("X-Padding", "p" * 40)])
    with Conn(g.port) as slow:
        for i, byte in enumerate(head[:-1]):
            slow.send(bytes([byte]))
            if i % 8 == 0:
                t0 = time.monotonic()
                alive(g)
                assert time.monotonic() - t0 < 0.5
            else:
                time.sleep(0.003)
        slow.send(head[-1:])
        r = slow.read_response()
        assert json.loads(r.body)["QUERY_STRING"] == "slow=1"


def test_many_slow_heads_at_once(http):
    g = http("--tornado", "1")
    slow = [Conn(g.port) for _ in range(20)]
    try:
        for c in slow:
            c.send(b"GET /env?slow=1 HTTP/1.1\r\nHo")
        t0 = time.monotonic()
        alive(g)
        assert time.monotonic() - t0 < 0.5
        for i, c in enumerate(slow):
            c.send(b"st: x\r\n\r\n")
        for c in slow:
            assert c.read_response().status == 200
    finally:
        for c in slow:
            c.sock.close()


# ---- the environ of the HTTP socket ------------------------------------------------------------

def env_of(g, raw):
    r, _ = exchange(g.port, raw)
    assert r.status == 200, r.body
    return json.loads(r.body)


def test_path_info_percent_decoded_query_string_raw(http):
    g = http()
    target = "/env/a%20b/c%2Fd/%C3%A9/%7e/50%25/%zz/%4?x=%20&y=%2F+z&e=%C3%A9"
    env = env_of(g, req(target, headers=[("Connection", "close")]))
    assert env["PATH_INFO"] == "/env/a b/c/d/\xc3\xa9/~/50%/%zz/%4"     # latin-1 str of the bytes
    assert env["QUERY_STRING"] == "x=%20&y=%2F+z&e=%C3%A9"
    assert env["REQUEST_URI"] == target
    assert env["SCRIPT_NAME"] == ""


def test_obs_text_in_target_and_headers_is_latin1(http):
    g = http()
    env = env_of(g, b"GET /env/caf\xe9?q=\xff HTTP/1.1\r\nHost: x\r\nX-Name: caf\xe9 \x80\r\n"
                    b"Connection: close\r\n\r\n")
    assert env["PATH_INFO"] == "/env/caf\xe9"
    assert env["QUERY_STRING"] == "q=\xff"
    assert env["HTTP_X_NAME"] == "caf\xe9 \x80"


def test_repeated_headers_are_joined(http):
    g = http()
    env = env_of(g, req("/env", headers=[("X-Multi", "a"), ("Accept", "text/html"),
                                         ("x-multi", "b"), ("X-MULTI", "c, d"),
                                         ("Cookie", "a=1"), ("cookie", "b=2; c=3"),
                                         ("X_Under", "dropped"), ("X-Empty", ""),
                                         ("Connection", "close")]))
    assert env["HTTP_X_MULTI"] == "a, b, c, d"
    assert env["HTTP_COOKIE"] == "a=1; b=2; c=3"
    assert env["HTTP_ACCEPT"] == "text/html"
    assert env["HTTP_X_EMPTY"] == ""
    # A name with '_' would pass for the '-' one: dropped (as nginx and gunicorn do).
    assert "HTTP_X_UNDER" not in env


def test_many_repeated_headers_fit_the_scratch_space(http):
    """Issue 8 (11): 30 Cookie lines of 100 bytes (a 3.3 KiB head, far under the 16 KiB and
    100-field limits) were answered 431: each repeat copied the whole value joined so far, so the
    scratch space grew with the square of the repeats. Joined once, they take their own size."""
    g = http()
    cookies = ["c%02d=%s" % (i, "v" * 96) for i in range(30)]
    multi = ["m%02d%s" % (i, "w" * 97) for i in range(40)]
    headers = [("Cookie", c) for c in cookies] + [("X-Multi", m) for m in multi]
    raw = req("/env", headers=headers + [("Connection", "close")])
    assert 7000 < len(raw) < 8000, len(raw)
    env = env_of(g, raw)
    assert env["HTTP_COOKIE"] == "; ".join(cookies)
    assert env["HTTP_X_MULTI"] == ", ".join(multi)
    # As many repeats as the 100-field limit allows, each as long as fits 16 KiB of head.
    many = ["%02d%s" % (i, "z" * 150) for i in range(98)]
    raw = req("/env", headers=[("Cookie", c) for c in many] + [("Connection", "close")])
    assert len(raw) < 16384, len(raw)
    assert env_of(g, raw)["HTTP_COOKIE"] == "; ".join(many)
    alive(g)


@pytest.mark.parametrize("fields", [[("Content-Length", "5"), ("Content-Length", "5")],
                                    [("Content-Length", "5, 5")],
                                    [("Content-Length", "5 ,5"), ("content-length", "5")]],
                         ids=["twice", "list", "list_and_repeat"])
def test_duplicate_content_length_reaches_the_app_once(http, fields):
    """Issue 8 (12): identical Content-Length values are one length (RFC 9110 8.6), and the app
    sees that one value, not "5, 5" (which int() and every framework choke on)."""
    g = http()
    with Conn(g.port) as c:
        c.send(req("/env", "POST", fields, b"hello") + req("/ok"))
        r = c.read_response()
        assert r.status == 200, r.body
        env = json.loads(r.body)
        assert env["CONTENT_LENGTH"] == "5"
        assert "HTTP_CONTENT_LENGTH" not in env
        # the body was 5 bytes: the pipelined request after it is read as the next request
        assert c.read_response().body == b"ok"


def test_header_values_trimmed(http):
    g = http()
    env = env_of(g, b"GET /env HTTP/1.1\r\nHost: x\r\nX-Pad: \t  a  b \t\r\n"
                    b"Connection: close\r\n\r\n")
    assert env["HTTP_X_PAD"] == "a  b"


@pytest.mark.parametrize("host, name, port", [
    ("example.org:1234", "example.org", "1234"),
    ("example.org", "example.org", "80"),
    ("[::1]:99", "[::1]", "99"),
    ("[::1]", "[::1]", "80"),
])
def test_server_name_and_port_from_host(http, host, name, port):
    g = http()
    env = env_of(g, b"GET /env HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                    % host.encode())
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == (name, port)
    assert env["HTTP_HOST"] == host


def test_http10_without_host_uses_the_socket_address(http):
    g = http()
    env = env_of(g, b"GET /env HTTP/1.0\r\n\r\n")
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(g.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in env


def test_absolute_form_target(http):
    g = http()
    env = env_of(g, req("http://example.com:8080/env/p%20q?x=1",
                        headers=[("Connection", "close")]))
    assert env["PATH_INFO"] == "/env/p q"
    assert env["QUERY_STRING"] == "x=1"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8080")
    assert env["REQUEST_URI"] == "http://example.com:8080/env/p%20q?x=1"


def test_environ_cgi_basics(http):
    g = http()
    with Conn(g.port) as c:
        c.send(req("/env", "POST", [("Content-Type", "text/plain"), ("Content-Length", "3")],
                   b"abc"))
        env = json.loads(c.read_response().body)
        assert env["REQUEST_METHOD"] == "POST"
        assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "3"
        assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
        assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"] == str(c.local_port)
        assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
        assert env["wsgi.url_scheme"] == "http"


# ---- the command line of the README -------------------------------------------------------------

def test_seed_command_line_on_all_interfaces(tmp_path):
    """`gyre --http-socket :PORT --wsgi-file app.py --tornado 100 --greenlet`, run from the
    app's directory: ":PORT" listens on every interface; reach it on 127.0.0.1."""
    shutil.copy(os.path.join(APPS, APP), tmp_path / "app.py")
    port = free_port()
    log_path = tmp_path / "gyre.log"
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen([GYRE, "--http-socket", ":%d" % port, "--wsgi-file", "app.py",
                                 "--tornado", "100", "--greenlet"], cwd=tmp_path,
                                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        def up():
            assert proc.poll() is None, log_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, what="gyre on :%d" % port)
        r = requests.get("http://127.0.0.1:%d/env?x=1" % port, timeout=TIMEOUT)
        assert r.status_code == 200
        env = r.json()
        assert env["SERVER_PORT"] == str(port) and env["QUERY_STRING"] == "x=1"
        # A POST in one send (a body arriving after its head is test_content_length_body_...).
        r, _ = exchange(port, req("/echo", "POST", [("Content-Length", "4"),
                                                    ("Connection", "close")], b"seed"))
        assert r.status == 200 and r.body == b"seed"
        assert "100 cores" in log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("gyre did not stop on SIGTERM:\n" + log_path.read_text())
