"""FastCGI 1.0 (--fastcgi-socket), spoken by hand over raw unix sockets, by cgi-fcgi (libfcgi) and
by nginx (fastcgi_pass, fastcgi_keep_conn on, upstream keepalive).

The client (conftest.py's FastCGI section) is written from the spec, not from gyre's sources: every
record gyre sends is checked as it is read (version 1, content padded to a multiple of 8, reserved
byte 0, stream records on the request's id, nothing after END_REQUEST). Every socket has a timeout: a gyre that does not answer fails a test, never hangs it.
"""
import hashlib
import json
import os
import socket
import struct
import subprocess
import time

import pytest
import requests

from conftest import (FCGI_ABORT_REQUEST, FCGI_AUTHORIZER, FCGI_BEGIN_REQUEST, FCGI_CANT_MPX_CONN,
                      FCGI_DATA, FCGI_END_REQUEST, FCGI_FILTER, FCGI_GET_VALUES,
                      FCGI_GET_VALUES_RESULT, FCGI_KEEP_CONN, FCGI_MAX_CONTENT, FCGI_OVERLOADED,
                      FCGI_PARAMS, FCGI_REQUEST_COMPLETE, FCGI_RESPONDER, FCGI_STDERR, FCGI_STDIN,
                      FCGI_STDOUT, FCGI_UNKNOWN_ROLE, FCGI_UNKNOWN_TYPE, FcgiReader,
                      fcgi_begin_request, fcgi_decode_pairs, fcgi_make_params, fcgi_pairs,
                      fcgi_record, fcgi_request_bytes, fcgi_stream, wait_for)

TIMEOUT = 5.0
APP = "fcgi_app.py"

# ---- the protocol: the spec's names, the client of conftest.py ----------------------------------

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR, DATA = (
    FCGI_BEGIN_REQUEST, FCGI_ABORT_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT,
    FCGI_STDERR, FCGI_DATA)
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = (FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT,
                                               FCGI_UNKNOWN_TYPE)
RESPONDER, AUTHORIZER, FILTER = FCGI_RESPONDER, FCGI_AUTHORIZER, FCGI_FILTER
KEEP_CONN = FCGI_KEEP_CONN
REQUEST_COMPLETE, CANT_MPX_CONN, OVERLOADED, UNKNOWN_ROLE = (
    FCGI_REQUEST_COMPLETE, FCGI_CANT_MPX_CONN, FCGI_OVERLOADED, FCGI_UNKNOWN_ROLE)
MAX_CONTENT = FCGI_MAX_CONTENT
record, begin_request, encode_pairs, decode_pairs = (fcgi_record, fcgi_begin_request, fcgi_pairs,
                                                     fcgi_decode_pairs)
stream, make_params, request_bytes = fcgi_stream, fcgi_make_params, fcgi_request_bytes


class Conn(FcgiReader):
    """A client connection: sends bytes, reads gyre's records one at a time, each checked."""

    def __init__(self, path, timeout=TIMEOUT):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(path)
        super().__init__(sock)

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def closed_by_peer(self):
        """True when gyre has closed the connection (EOF), False if it is still open. Waits
        at most the socket's timeout for EOF; anything but EOF fails."""
        rec = self.read_record()
        assert rec is None, "unexpected record %r" % rec
        return True

    def still_open(self, wait=0.3):
        """Nothing arrives and the connection is not closed within `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            d = self.sock.recv(1)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(TIMEOUT)
        assert d == b"", "unexpected bytes %r" % d
        return False


def fcgi_request(path_or_conn, rid=1, keep=False, **kw):
    """Send one request on a new connection (or the given one), return its Response."""
    if isinstance(path_or_conn, Conn):
        path_or_conn.send(request_bytes(rid, keep=keep, **kw))
        return path_or_conn.response(rid)
    with Conn(path_or_conn) as c:
        c.send(request_bytes(rid, keep=keep, **kw))
        return c.response(rid)


def healthy(g):
    """gyre is alive and serves a normal FastCGI request on a new connection."""
    assert g.proc.poll() is None, "gyre died:\n" + g.log()
    status, _, body = fcgi_request(g.socket).assert_complete()
    assert (status, body) == (200, b"Hello, World!")


def log_since(g, mark):
    return g.log()[mark:]


@pytest.fixture
def fcgi(gyre):
    """fcgi(*args): gyre serving fcgi_app.py on a FastCGI unix socket (g.socket)."""
    def start(*args):
        return gyre(APP, *args, proto="fastcgi")
    return start


def app_calls(g, path):
    """How many times the app was called for PATH_INFO path (fcgi_app logs every call)."""
    return g.log().count("fcgi_app: called %s\n" % path)


def rejected(g, data, reason, close_after=False):
    """Bad input: gyre sends nothing, closes the connection, logs `reason`, and stays healthy.
    With close_after the client closes (a half-close: it sent all it will) instead of waiting
    for gyre to close."""
    mark = len(g.log())
    with Conn(g.socket) as c:
        try:
            c.send(data)
            if close_after:
                c.sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # gyre already hung up
        assert c.closed_by_peer()
        assert c.records == [], "gyre answered bad input %r: %r" % (data[:32], c.records)
    expect_log(g, mark, reason, "for %r" % data[:32])
    healthy(g)


def expect_log(g, mark, text, what=""):
    """Wait for text in gyre's log after mark; fail showing what was logged instead."""
    try:
        wait_for(lambda: text in log_since(g, mark), timeout=3)
    except AssertionError:
        raise AssertionError("%r not in gyre's log %s; it logged:\n%s"
                             % (text, what, log_since(g, mark))) from None


# ---- a full request and response ----------------------------------------------------------------

def test_full_request_and_response(fcgi):
    g = fcgi()
    with Conn(g.socket) as c:
        c.send(request_bytes(1, path="/env", query="a=1&b=2",
                             extra={"HTTP_X_TOKEN": "t0k3n", "HTTPS": "on"}))
        resp = c.response(1)
        assert c.closed_by_peer()  # FCGI_KEEP_CONN clear: gyre closes after END_REQUEST
    # The records, in order: non-empty STDOUT, one empty STDOUT, END_REQUEST; all on id 1.
    kinds = [(r.type, r.id, bool(r.content)) for r in c.records]
    assert kinds == [(STDOUT, 1, True)] * (len(kinds) - 2) + [(STDOUT, 1, False),
                                                              (END_REQUEST, 1, True)], kinds
    assert c.records[-1].content == b"\0" * 8  # appStatus 0, REQUEST_COMPLETE, reserved zeros
    status, headers, body = resp.assert_complete()
    assert resp.stdout.startswith(b"Status: 200 OK\r\n")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    env = json.loads(body)
    for k, v in make_params("/env", "a=1&b=2").items():
        assert env[k] == v, k
    assert env["HTTP_X_TOKEN"] == "t0k3n"
    assert env["wsgi.url_scheme"] == "https"
    g.wait_log("GET /env?a=1&b=2 => generated %d bytes" % len(body))


def test_response_of_every_size_is_padded(fcgi):
    """Bodies of every length modulo 8 (and 0): every record is padded, the bytes are intact."""
    g = fcgi()
    with Conn(g.socket) as c:
        for n in list(range(0, 20)) + [65527, 65528, 65529, 65535, 65536, 131056, 131057]:
            body = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
            c.send(request_bytes(1, path="/echo", query="raw=1", method="POST", body=body,
                                 keep=True))
            status, _, got = c.response(1).assert_complete()
            assert (status, got) == (200, body), n
        assert c.still_open()


# ---- records cut anywhere, and merged -----------------------------------------------------------

def split_request(body=b"hello, body", rid=1, keep=False):
    # A 130-byte cookie: a 4-byte value length in the middle of the pairs.
    return request_bytes(rid, path="/echo", query="raw=1", method="POST", body=body, keep=keep,
                         extra={"HTTP_COOKIE": "c=" + "k" * 128}, params_chunk=50, stdin_chunk=4)


def test_one_byte_at_a_time(fcgi):
    g = fcgi()
    body = b"0123456789abcdefghij"
    with Conn(g.socket) as c:
        for rid in (1, 7):  # two requests on one kept connection: the parser's state carries on
            data = split_request(body, rid, keep=True)
            for i in range(len(data)):
                c.send(data[i:i + 1])
                time.sleep(0.0005)  # let gyre read it alone
            status, _, got = c.response(rid).assert_complete()
            assert (status, got) == (200, body)
        assert c.still_open()


def test_split_at_every_byte_boundary(fcgi):
    """The request in two sends, cut after each of its bytes in turn: in a header, in
    BEGIN_REQUEST's body, in a PARAMS length field, a name, a value, in padding, in STDIN."""
    g = fcgi()
    body = b"split!"
    data = split_request(body)
    for cut in range(1, len(data)):
        with Conn(g.socket) as c:
            c.send(data[:cut])
            time.sleep(0.001)
            c.send(data[cut:])
            resp = c.response(1)
            status, _, got = resp.assert_complete()
            assert (status, got) == (200, body), "cut at %d" % cut
    assert app_calls(g, "/echo") == len(data) - 1


def test_whole_request_merged_in_one_send(fcgi):
    g = fcgi()
    body = os.urandom(3000)
    # Large records, and tiny ones (1 byte of content + 7 of padding each), in one send apiece.
    for params_chunk, stdin_chunk in ((MAX_CONTENT, MAX_CONTENT), (1, 1), (7, 9)):
        data = request_bytes(1, path="/echo", query="raw=1", method="POST", body=body,
                             params_chunk=params_chunk, stdin_chunk=stdin_chunk)
        with Conn(g.socket) as c:
            c.send(data)
            status, _, got = c.response(1).assert_complete()
            assert (status, got) == (200, body)


def test_params_split_across_records_mid_pair(fcgi):
    """The pairs block in records cut inside length fields, names and values; records with
    padding of every size, and one with padding beyond alignment (the spec allows 0..255)."""
    g = fcgi()
    params = make_params("/env", "x=1", extra={"HTTP_X_LONG": "v" * 200, "HTTP_X_SHORT": "s"})
    pairs = encode_pairs(params)
    # Record boundaries: every few bytes, and three inside the 4-byte length of the 200-byte
    # value (0x800000c8), so that its bytes arrive in four different records.
    vlen_at = pairs.index(b"\x80\x00\x00\xc8")
    bounds = sorted(set(list(range(1, len(pairs), 23)) + [vlen_at + 1, vlen_at + 2, vlen_at + 3]))
    recs, p = b"", 0
    for i, b in enumerate(bounds + [len(pairs)]):
        # padding of every size, some beyond 8-byte alignment (the spec allows 0..255)
        recs += record(PARAMS, 1, pairs[p:b], padding=(i * 37) % 256)
        p = b
    recs += record(PARAMS, 1)
    with Conn(g.socket) as c:
        c.send(begin_request(1) + recs + record(STDIN, 1))
        status, _, body = c.response(1).assert_complete()
    env = json.loads(body)
    assert status == 200
    for k, v in params.items():
        assert env[k] == v, k


def test_four_byte_lengths(fcgi):
    g = fcgi()
    cookie = "; ".join("c%02d=%s" % (i, "x" * 10) for i in range(22))  # > 127 bytes
    assert 250 < len(cookie) < 400
    long_name = "HTTP_X_" + "N" * 150  # a name over 127 bytes too
    params = make_params("/env", extra={"HTTP_COOKIE": cookie, long_name: "n",
                                        "HTTP_X_BIG": "b" * 2000})
    for long in (False, True):  # True: every length in the 4-byte form, even the short ones
        data = (begin_request(1) + record(PARAMS, 1, encode_pairs(params, long=long))
                + record(PARAMS, 1) + record(STDIN, 1))
        with Conn(g.socket) as c:
            c.send(data)
            status, _, body = c.response(1).assert_complete()
        env = json.loads(body)
        assert status == 200
        assert env["HTTP_COOKIE"] == cookie
        assert env[long_name] == "n"
        assert env["HTTP_X_BIG"] == "b" * 2000


# ---- the request body ---------------------------------------------------------------------------

def test_stdin_in_many_small_records(fcgi):
    g = fcgi()
    body = os.urandom(20000)
    recs, p, n = b"", 0, 0
    while p < len(body):
        size = 1 + n % 13  # 1..13 bytes a record, every padding length
        recs += record(STDIN, 1, body[p:p + size])
        p += size
        n += 1
    pairs = encode_pairs(make_params("/echo", "raw=1", "POST", body))
    with Conn(g.socket) as c:
        c.send(begin_request(1) + record(PARAMS, 1, pairs) + record(PARAMS, 1) + recs
               + record(STDIN, 1))
        status, _, got = c.response(1).assert_complete()
    assert n > 2500
    assert (status, got) == (200, body)


def test_app_reads_the_body_while_the_client_still_sends_it(fcgi):
    """The app starts (and answers "started" through write()) on the first STDIN record; the
    client sends the rest of the body only once it has seen that."""
    g = fcgi()
    body = os.urandom(300000)
    first = 100
    pairs = encode_pairs(make_params("/early", method="POST", body=body))
    with Conn(g.socket) as c:
        c.send(begin_request(1) + record(PARAMS, 1, pairs) + record(PARAMS, 1)
               + record(STDIN, 1, body[:first]))
        seen = b""
        while b"started\n" not in seen:
            rec = c.read_record()
            assert rec is not None and rec.type == STDOUT and rec.content, rec
            seen += rec.content
        assert seen.startswith(b"Status: 200 OK\r\n")
        # The rest in records of various sizes, with pauses the app has to wait through.
        p, i = first, 0
        while p < len(body):
            size = (1, 500, 8000, 65535)[i % 4]
            c.send(record(STDIN, 1, body[p:p + size]))
            p += size
            i += 1
            if i % 10 == 0:
                time.sleep(0.01)
        c.send(record(STDIN, 1))
        resp = c.response(1)
        assert resp.stdout_closed and resp.protocol_status == REQUEST_COMPLETE
    info = json.loads((seen + resp.stdout).partition(b"started\n")[2])
    assert info["length"] == len(body)
    assert info["sha256"] == hashlib.sha256(body).hexdigest()


def test_4mib_body(fcgi):
    g = fcgi()
    body = os.urandom(4 << 20)
    with Conn(g.socket, timeout=15) as c:
        # Odd-sized records (65535 bytes + 1 of padding) and a short last one.
        c.send(request_bytes(1, path="/echo", method="POST", body=body, stdin_chunk=MAX_CONTENT))
        status, _, got = c.response(1).assert_complete()
    info = json.loads(got)
    assert status == 200
    assert info["length"] == len(body)
    assert info["sha256"] == hashlib.sha256(body).hexdigest()


# ---- the response -------------------------------------------------------------------------------

@pytest.mark.parametrize("route, query", [
    ("/big", "n=%d" % (4 << 20)),               # one 4 MiB item
    ("/gen", "n=64&size=65536"),                 # a generator, 64 items of 64 KiB
    ("/write", "n=1024&size=4096"),              # the write() callable, 4 KiB at a time
    ("/many", "n=3000"),                         # a list of 3000 items of 1..3000 bytes
])
def test_big_response_checked_by_sha256(fcgi, route, query):
    g = fcgi()
    with Conn(g.socket, timeout=15) as c:
        c.send(request_bytes(1, path=route, query=query))
        resp = c.response(1)
    status, headers, body = resp.assert_complete()
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == headers["x-sha256"]
    assert len(body) >= 4 << 20
    assert max(resp.stdout_records) <= MAX_CONTENT
    assert len(resp.stdout_records) >= len(resp.stdout) // MAX_CONTENT + 1


# ---- FCGI_KEEP_CONN -----------------------------------------------------------------------------

def test_keep_conn_three_requests_on_one_connection(fcgi):
    g = fcgi()
    mark = len(g.log())
    body = os.urandom(70000)
    with Conn(g.socket) as c:
        status, _, got = fcgi_request(c, 1, keep=True).assert_complete()
        assert (status, got) == (200, b"Hello, World!")
        assert c.still_open()
        status, _, got = fcgi_request(c, 2, keep=True, path="/echo", query="raw=1",
                                      method="POST", body=body).assert_complete()
        assert (status, got) == (200, body)
        assert c.still_open()
        status, _, got = fcgi_request(c, 1, keep=True, path="/env").assert_complete()
        assert status == 200 and json.loads(got)["PATH_INFO"] == "/env"
        assert c.still_open(0.5)
    assert g.wait_log("=> generated", since=mark, count=3).count("=> generated") == 3
    assert "connection closed" not in log_since(g, mark)  # the client's close is not an error


def test_keep_conn_clear_connection_closed_after_end_request(fcgi):
    g = fcgi()
    for route in ("/", "/gen"):
        with Conn(g.socket) as c:
            c.send(request_bytes(1, path=route, query="n=3&size=10"))
            c.response(1).assert_complete()
            assert c.closed_by_peer()
            assert c.records[-1].type == END_REQUEST


@pytest.mark.parametrize("case", ["body-unread", "stdin-end-after-the-response"])
def test_keep_conn_when_the_app_does_not_read_the_body(fcgi, case):
    """FCGI_KEEP_CONN: "the application does not close the connection after responding". Apps
    often answer without reading the body (a 403, a redirect; here the hello route), and the
    records frame it: gyre can skip the STDIN records left of the request it answered."""
    g = fcgi()
    with Conn(g.socket) as c:
        if case == "body-unread":
            # nginx's way: the whole request, body included, in one write
            c.send(request_bytes(1, path="/", method="POST", body=b"z" * 1000, keep=True))
            resp = c.response(1)
        else:
            # the body's records still coming when the app has answered
            data = request_bytes(1, path="/", method="POST", body=b"z" * 1000, keep=True,
                                 stdin_chunk=500)
            c.send(data[:-2 * (500 + 8) - 8])
            resp = c.response(1)
            c.send(data[-2 * (500 + 8) - 8:])
        status, _, got = resp.assert_complete()
        assert (status, got) == (200, b"Hello, World!")
        assert c.still_open(), "gyre closed a FCGI_KEEP_CONN connection after END_REQUEST"
        status, _, got = fcgi_request(c, 1, keep=True).assert_complete()
        assert (status, got) == (200, b"Hello, World!")


# ---- management records -------------------------------------------------------------------------

def test_get_values(fcgi):
    g = fcgi("--tornado", "3")
    with Conn(g.socket) as c:
        names = [b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"]
        c.send(record(GET_VALUES, 0, encode_pairs([(n, b"") for n in names])))
        rec = c.read_record()
        assert (rec.type, rec.id) == (GET_VALUES_RESULT, 0)
        values = dict(decode_pairs(rec.content))
        assert sorted(values) == sorted(names)
        assert values[b"FCGI_MPXS_CONNS"] == b"0"
        assert values[b"FCGI_MAX_REQS"] == b"3"  # --tornado 3: three requests at once
        assert values[b"FCGI_MAX_CONNS"].isdigit() and int(values[b"FCGI_MAX_CONNS"]) >= 3
        # Only what is asked, unknown names ignored.
        c.send(record(GET_VALUES, 0, encode_pairs([(b"FCGI_MPXS_CONNS", b""),
                                                   (b"NOT_A_VARIABLE", b"")])))
        rec = c.read_record()
        assert rec.type == GET_VALUES_RESULT
        assert decode_pairs(rec.content) == [(b"FCGI_MPXS_CONNS", b"0")]
        c.send(record(GET_VALUES, 0, encode_pairs([(b"NOT_A_VARIABLE", b"")])))
        rec = c.read_record()
        assert (rec.type, rec.content) == (GET_VALUES_RESULT, b"")
        # The connection then carries a request.
        status, _, body = fcgi_request(c).assert_complete()
        assert (status, body) == (200, b"Hello, World!")


def test_unknown_record_type(fcgi):
    g = fcgi()
    with Conn(g.socket) as c:
        for rtype, content in ((99, b""), (99, b"abc"), (200, b"x" * 100), (255, b"")):
            c.send(record(rtype, 0, content))
            rec = c.read_record()
            assert (rec.type, rec.id) == (UNKNOWN_TYPE, 0)
            assert rec.content == bytes([rtype]) + b"\0" * 7
        status, _, body = fcgi_request(c).assert_complete()
        assert (status, body) == (200, b"Hello, World!")


@pytest.mark.parametrize("role", [AUTHORIZER, FILTER])
def test_roles_other_than_responder(fcgi, role):
    g = fcgi()
    pairs = encode_pairs(make_params("/"))
    rest = record(PARAMS, 5, pairs) + record(PARAMS, 5) + record(STDIN, 5)
    if role == FILTER:
        rest += record(DATA, 5, b"filter data") + record(DATA, 5)
    # Flag clear: END_REQUEST(UNKNOWN_ROLE), then the connection is closed.
    with Conn(g.socket) as c:
        c.send(begin_request(5, role) + rest)
        resp = c.response(5)
        assert (resp.app_status, resp.protocol_status) == (0, UNKNOWN_ROLE)
        assert resp.stdout == b"" and not resp.stdout_closed
        assert c.closed_by_peer()
    # FCGI_KEEP_CONN: the same, and the connection then serves a responder request.
    with Conn(g.socket) as c:
        c.send(begin_request(5, role, KEEP_CONN) + rest)
        resp = c.response(5)
        assert resp.protocol_status == UNKNOWN_ROLE
        status, _, body = fcgi_request(c, 6, keep=True).assert_complete()
        assert (status, body) == (200, b"Hello, World!")
    assert g.wait_log("FastCGI role %d is not served" % role, count=2).count(
        "FastCGI role %d is not served" % role) == 2
    assert app_calls(g, "/") == 1  # the responder request only


def read_until_ends(c, ids):
    """Every record until an END_REQUEST has come for each id in ids (or gyre closed)."""
    ends = {}
    while set(ends) != set(ids):
        rec = c.read_record()
        if rec is None:
            break
        if rec.type == END_REQUEST:
            ends[rec.id] = struct.unpack(">IB3x", rec.content)
    return ends


@pytest.mark.parametrize("keep", [False, True], ids=["close", "keep_conn"])
@pytest.mark.parametrize("kind", ["generator", "list", "reading-body"])
def test_second_request_while_one_is_active_cant_mpx_conn(fcgi, kind, keep):
    """FCGI_MPXS_CONNS=0: a BEGIN_REQUEST for id 2 while id 1 is being served (the app sleeps,
    or waits for its body) gets END_REQUEST(CANT_MPX_CONN) and nothing else; id 1 completes.
    Whatever the response is made of: a generator, a list, or a body still being read."""
    g = fcgi("--tornado", "2")
    flags = KEEP_CONN if keep else 0
    second = (begin_request(2, flags=flags) + record(PARAMS, 2, encode_pairs(make_params("/")))
              + record(PARAMS, 2) + record(STDIN, 2))
    with Conn(g.socket) as c:
        if kind == "reading-body":
            body = os.urandom(5000)
            pairs = encode_pairs(make_params("/echo", "raw=1", "POST", body))
            c.send(begin_request(1, flags=flags) + record(PARAMS, 1, pairs) + record(PARAMS, 1)
                   + record(STDIN, 1, body[:1000]))
            g.wait_log("fcgi_app: called /echo")
            time.sleep(0.05)  # the app waits for more of the body
            c.send(second)
            time.sleep(0.05)
            c.send(record(STDIN, 1, body[1000:]) + record(STDIN, 1))
            expect = body
        else:
            c.send(request_bytes(1, path="/sleep", query="s=0.5" + ("&gen=1" if kind ==
                                                                    "generator" else ""),
                                 keep=keep))
            g.wait_log("fcgi_app: called /sleep")
            c.send(second)  # while the app sleeps
            expect = b"slept"
        ends = read_until_ends(c, [1, 2])
        one = [r for r in c.records if r.id == 1 and r.type == STDOUT]
        two = [r for r in c.records if r.id == 2 and r.type == STDOUT]
        assert ends.get(1) == (0, REQUEST_COMPLETE)
        assert b"".join(r.content for r in one).endswith(b"\r\n\r\n" + expect)
        assert ends.get(2) == (0, CANT_MPX_CONN), \
            "the second request got END_REQUEST %s (None: none at all), and %d STDOUT records" \
            % (ends.get(2), len(two))
        assert two == []
        if keep:
            status, _, body = fcgi_request(c, 3, keep=True).assert_complete()
            assert (status, body) == (200, b"Hello, World!")
        else:
            assert c.closed_by_peer()
    assert app_calls(g, "/") == (1 if keep else 0)


# ---- FCGI_ABORT_REQUEST -------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [False, True], ids=["close", "keep_conn"])
def test_abort_during_a_slow_streaming_response(fcgi, tmp_path, keep):
    g = fcgi("--tornado", "1")
    marker = str(tmp_path / "closed")
    mark = len(g.log())
    with Conn(g.socket) as c:
        c.send(request_bytes(1, path="/slow", query="n=100&delay=0.05&marker=" + marker,
                             keep=keep))
        got = b""
        while len(got.partition(b"\r\n\r\n")[2]) < 2000:  # two chunks of 1000 bytes in
            rec = c.read_record()
            assert rec.type == STDOUT and rec.content
            got += rec.content
        t0 = time.monotonic()
        c.send(record(ABORT_REQUEST, 1))
        resp = c.response(1)
        assert time.monotonic() - t0 < 2.0  # not the 5 s the 100 chunks would take
        assert resp.stdout_closed
        assert (resp.app_status, resp.protocol_status) == (0, REQUEST_COMPLETE)
        wait_for(lambda: os.path.exists(marker), timeout=2, what="close() of the iterable")
        sent, n = map(int, open(marker).read().split("closed after ")[1].split(" of "))
        assert 2 <= sent < 50 and n == 100  # it stopped, long before the end
        g.wait_log("the client aborted the request", since=mark)
        if keep:
            # FCGI_KEEP_CONN: the connection outlives the request, aborted or not.
            assert c.still_open(), "gyre closed a FCGI_KEEP_CONN connection after an abort"
            status, _, body = fcgi_request(c, 2, keep=True).assert_complete()
            assert (status, body) == (200, b"Hello, World!")
        else:
            assert c.closed_by_peer()
    healthy(g)


def test_abort_while_the_app_reads_the_body(fcgi):
    """ABORT_REQUEST among the STDIN records: the app's read raises, END_REQUEST still comes,
    and the one core is free again."""
    g = fcgi("--tornado", "1")
    mark = len(g.log())
    pairs = encode_pairs(make_params("/read_fail", method="POST", body=b"a" * 100000))
    with Conn(g.socket) as c:
        c.send(begin_request(1) + record(PARAMS, 1, pairs) + record(PARAMS, 1)
               + record(STDIN, 1, b"a" * 5000))
        g.wait_log("fcgi_app: read_fail reading")
        time.sleep(0.05)
        c.send(record(ABORT_REQUEST, 1))
        resp = c.response(1)
        assert resp.protocol_status == REQUEST_COMPLETE
        assert c.closed_by_peer()
    expect_log(g, mark, "fcgi_app: read raised ")
    healthy(g)


@pytest.mark.parametrize("keep", [False, True], ids=["close", "keep_conn"])
def test_abort_before_the_end_of_params(fcgi, keep):
    g = fcgi("--tornado", "1")
    pairs = encode_pairs(make_params("/never"))
    with Conn(g.socket) as c:
        c.send(begin_request(1, flags=KEEP_CONN if keep else 0)
               + record(PARAMS, 1, pairs[:40]))
        time.sleep(0.05)
        c.send(record(ABORT_REQUEST, 1))
        resp = c.response(1)
        assert (resp.app_status, resp.protocol_status) == (0, REQUEST_COMPLETE)
        assert resp.stdout == b""
        if keep:
            # The rest of the aborted request's records are ignored; the next one is served.
            c.send(record(PARAMS, 1, pairs[40:]) + record(PARAMS, 1) + record(STDIN, 1))
            status, _, body = fcgi_request(c, 2, keep=True).assert_complete()
            assert (status, body) == (200, b"Hello, World!")
        else:
            assert c.closed_by_peer()
    healthy(g)
    assert app_calls(g, "/never") == 0


# ---- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [0, 2, 255])
def test_wrong_version_byte(fcgi, version):
    g = fcgi()
    data = request_bytes()
    rejected(g, bytes([version]) + data[1:], "unsupported record version after ")
    # ... also in a later record, after a valid BEGIN_REQUEST
    rejected(g, data[:16] + bytes([version]) + data[17:], "unsupported record version after ")


@pytest.mark.parametrize("length", [0, 7, 9, 16])
def test_begin_request_content_length_not_8(fcgi, length):
    g = fcgi()
    bad = record(BEGIN_REQUEST, 1, struct.pack(">HB5x", RESPONDER, 0).ljust(length, b"\0")[:length])
    rejected(g, bad + request_bytes()[16:], "begin-request body not 8 bytes after ")


@pytest.mark.parametrize("cut", ["in-a-header", "in-begin-body", "in-params",
                                 "before-params-end"])
def test_truncated_record_then_close(fcgi, cut):
    g = fcgi()
    data = request_bytes()
    params_end = data.index(record(PARAMS, 1)) + 8
    n = {"in-a-header": 3, "in-begin-body": 12, "in-params": 16 + 8 + 30,
         "before-params-end": params_end - 1}[cut]
    rejected(g, data[:n], "client closed mid-request", close_after=True)
    assert app_calls(g, "/") == 1  # healthy()'s request only


def test_truncated_request_on_a_kept_connection_then_close(fcgi):
    g = fcgi()
    mark = len(g.log())
    with Conn(g.socket) as c:
        fcgi_request(c, 1, keep=True).assert_complete()
        c.send(request_bytes(1, keep=True)[:40])  # half of the next request, then hang up
        time.sleep(0.05)
    expect_log(g, mark, "client closed mid-request", "for the half request")
    healthy(g)


def test_params_over_buffer_size(fcgi):
    g = fcgi("--buffer-size", "1024")
    base = encode_pairs(make_params("/"))
    pad_pair = len(encode_pairs({"HTTP_X_PAD": "p" * 200}))
    pad = 1024 - len(base) - (pad_pair - 200)
    exact = base + encode_pairs({"HTTP_X_PAD": "p" * pad})
    assert len(exact) == 1024
    over = base + encode_pairs({"HTTP_X_PAD": "p" * (pad + 1)})

    def req(pairs):
        return begin_request(1) + stream(PARAMS, 1, pairs, 300) + record(STDIN, 1)
    with Conn(g.socket) as c:
        c.send(req(exact))
        assert c.response(1).assert_complete()[2] == b"Hello, World!"
    rejected(g, req(over), "FastCGI params larger than buffer-size after ")
    # Far over, in many records
    rejected(g, req(base + encode_pairs({"HTTP_X_PAD": "p" * 60000})),
             "FastCGI params larger than buffer-size after ")


@pytest.mark.parametrize("name, data, reason", [
    ("http", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "unsupported record version"),
    ("zeros", b"\0" * 64, "unsupported record version"),
    ("random", bytes([0x5a]) + bytes((i * 7919 + 13) % 256 for i in range(500)),
     "unsupported record version"),
    ("ones", b"\x01" * 64, "begin-request body not 8 bytes"),  # BEGIN_REQUEST of 257 bytes
    ("params-on-id-0", record(PARAMS, 0, b"\x01\x01ab"), "request record on request id 0"),
    ("begin-on-id-0", begin_request(0), "request record on request id 0"),
    ("get-values-on-id-1", record(GET_VALUES, 1, encode_pairs({"FCGI_MAX_REQS": ""})),
     "management record on a request id"),
    ("get-values-too-big", record(GET_VALUES, 0, encode_pairs({"X" * 300: ""})),
     "get-values record too large"),
    ("pair-past-the-end", begin_request(1) + record(PARAMS, 1, b"\x05\x7fSHORT")
     + record(PARAMS, 1), "name-value pair runs past the end of the block"),
    ("4-byte-length-cut", begin_request(1) + record(PARAMS, 1, b"\x04\x80\x00") + record(PARAMS, 1),
     "name-value pair runs past the end of the block"),
    ("empty-name", begin_request(1) + record(PARAMS, 1, b"\x00\x01x") + record(PARAMS, 1),
     "param with an empty name"),
    ("content-length", request_bytes(extra={"CONTENT_LENGTH": "12x"}), "invalid CONTENT_LENGTH"),
])
def test_garbage(fcgi, name, data, reason):
    g = fcgi()
    rejected(g, data, reason)
    assert app_calls(g, "/") == 1


def test_connect_and_close_without_data(fcgi):
    g = fcgi()
    phrase = "client closed without a request after 0 bytes, connection closed"
    for _ in range(3):
        Conn(g.socket).close()
    wait_for(lambda: g.log().count(phrase) == 3, timeout=3, what="3 x %r" % phrase)
    for _ in range(50):
        Conn(g.socket).close()
    wait_for(lambda: g.log().count(phrase) == 53, timeout=3, what="53 x %r" % phrase)
    healthy(g)


def test_client_disconnects_mid_body(fcgi):
    g = fcgi("--tornado", "1")
    pairs = encode_pairs(make_params("/read_fail", method="POST", body=b"b" * 1000000))
    for _ in range(3):  # more rounds than cores: the core is freed each time
        mark = len(g.log())
        c = Conn(g.socket)
        c.send(begin_request(1, flags=KEEP_CONN) + record(PARAMS, 1, pairs) + record(PARAMS, 1)
               + stream(STDIN, 1, b"b" * 70000, 10000)[:-8])  # 70000 bytes, no end record
        wait_for(lambda: "fcgi_app: read_fail reading" in log_since(g, mark), timeout=3,
                 what="the app to start reading")
        c.close()
        # (The count is at most 70000: a read(4096) that meets the end of the connection raises
        # and drops what it had gathered.)
        wait_for(lambda: "read raised ConnectionResetError(the client closed the connection "
                         "before sending the whole body) after " in log_since(g, mark),
                 timeout=3, what="the app's read to fail")
        n = int(log_since(g, mark).split("before sending the whole body) after ")[1].split()[0])
        assert 60000 <= n <= 70000
        healthy(g)


def test_stdin_before_the_end_of_params(fcgi):
    g = fcgi()
    pairs = encode_pairs(make_params("/echo", method="POST", body=b"abc"))
    rejected(g, begin_request(1) + record(PARAMS, 1, pairs) + record(STDIN, 1, b"abc"),
             "FastCGI STDIN before the end of PARAMS after ")
    rejected(g, begin_request(1) + record(STDIN, 1, b"abc"),
             "FastCGI STDIN before the end of PARAMS after ")
    assert app_calls(g, "/echo") == 0


# ---- cgi-fcgi (libfcgi): an independent client ---------------------------------------------------

def cgi_fcgi(g, env, body=b""):
    """Run `cgi-fcgi -bind -connect SOCKET` with a CGI environment (its whole environment goes
    out as PARAMS) and the body on stdin; return (status, headers, body) of its output."""
    p = subprocess.run(["cgi-fcgi", "-bind", "-connect", g.socket], env=env, input=body,
                       capture_output=True, timeout=TIMEOUT)
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert p.stderr == b""
    head, _, out = p.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("Status: ")
    headers = dict((k.lower(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:]))
    return int(lines[0][8:11]), headers, out


def test_cgi_fcgi_get_and_post(fcgi):
    g = fcgi()
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/env", "QUERY_STRING": "q=cgi-fcgi",
           "REQUEST_URI": "/env?q=cgi-fcgi", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
           "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_X_CLIENT": "libfcgi"}
    status, headers, out = cgi_fcgi(g, env)
    assert status == 200
    got = json.loads(out)
    for k, v in env.items():
        assert got[k] == v, k
    body = os.urandom(300000)
    env = dict(env, REQUEST_METHOD="POST", PATH_INFO="/echo", QUERY_STRING="raw=1",
               REQUEST_URI="/echo?raw=1", CONTENT_LENGTH=str(len(body)),
               CONTENT_TYPE="application/octet-stream")
    status, headers, out = cgi_fcgi(g, env, body)
    assert (status, int(headers["content-length"])) == (200, len(body))
    assert out == body
    g.wait_log("POST /echo?raw=1 => generated 300000 bytes")


# ---- through nginx ------------------------------------------------------------------------------
#
# Did nginx reuse its upstream connections? gyre logs nothing per connection and a unix socket
# has no REMOTE_PORT, so the app looks at the connection itself: every accepted connection is a
# new socket with a new inode (sockfs numbers them from a counter and does not recycle them
# within a test), and while a request is served its own connection is open in the serving
# process. The /socks route returns the inodes of the sockets open in its process during the
# request. The sockets that are always there (the listener, the IOLoop's wake-up socketpair...)
# are found first: the inodes common to two requests on two raw connections, the first closed
# (gyre closed it: we saw EOF) before the second was opened. Every other inode a request reports
# is a client connection, so the distinct such inodes over a run = the connections that carried
# requests (an extra socket the process opened later could only raise the count, never hide a
# connection). With reuse that is a handful for 200 requests; a connection per request gives 200.
# test_socket_inodes_count_connections checks the method itself on raw connections.

def socks(path_or_conn, rid=1, keep=False):
    """(pid, set of socket inodes) reported by the app for one request."""
    status, _, body = fcgi_request(path_or_conn, rid, keep=keep, path="/socks").assert_complete()
    assert status == 200
    info = json.loads(body)
    return info["pid"], set(info["inodes"])


def constant_sockets(g):
    """(pid, inodes) of the sockets open in the serving process outside any connection."""
    pid1, first = socks(g.socket)
    pid2, second = socks(g.socket)
    assert pid1 == pid2
    return pid1, first & second


def test_socket_inodes_count_connections(fcgi):
    g = fcgi()
    pid, baseline = constant_sockets(g)
    seen = []
    for _ in range(3):  # three connections: three inodes
        p, inodes = socks(g.socket)
        assert p == pid
        seen.append(inodes - baseline)
    assert all(len(s) == 1 for s in seen) and len(set.union(*seen)) == 3, seen
    seen = []
    with Conn(g.socket) as c:  # one connection, three requests: one inode
        for rid in (1, 2, 3):
            p, inodes = socks(c, rid, keep=True)
            seen.append(inodes - baseline)
    assert all(len(s) == 1 for s in seen) and len(set.union(*seen)) == 1, seen


def nginx_connections(s, n, method="GET", body=None):
    """n requests to /socks through nginx on one keep-alive client session: the set of gyre's
    client connections that carried them. Every 5th request is a POST /echo (body echoed)."""
    pid, baseline = constant_sockets(s.gyre)
    conns = set()
    with requests.Session() as session:
        for i in range(n):
            if method == "GET" and i % 5 == 4:
                data = os.urandom(1000 + i * 100)
                r = session.post(s.url + "/echo?raw=1", data=data, timeout=TIMEOUT)
                assert (r.status_code, r.content) == (200, data), i
                continue
            r = session.request(method, s.url + "/socks?i=%d" % i, data=body, timeout=TIMEOUT)
            assert r.status_code == 200, (i, r.status_code, r.text[:200])
            info = r.json()
            assert info["pid"] == pid
            mine = set(info["inodes"]) - baseline
            assert mine, "request %d saw no client connection in gyre" % i
            conns |= mine
    return conns


def test_through_nginx_200_requests_on_reused_upstream_connections(stack):
    s = stack(APP, "--tornado", "4", proto="fastcgi")
    mark = len(s.gyre.log())
    conns = nginx_connections(s, 200)
    print("upstream connections: %d" % len(conns))
    # gyre logs a request after its response: wait for the lines, then count them.
    assert s.gyre.wait_log("=> generated", since=mark, count=202).count("=> generated") == 202
    # 200 requests (160 of which report) over very few upstream connections: nginx kept them
    # (fastcgi_keep_conn on) and gyre served request after request on each (FCGI_KEEP_CONN).
    assert 1 <= len(conns) <= 4, "%d upstream connections for 200 requests" % len(conns)
    errors = [ln for ln in s.nginx.error_log().splitlines()
              if any(lvl in ln for lvl in ("[error]", "[crit]", "[alert]", "[emerg]"))]
    assert errors == []


def test_through_nginx_posts_the_app_does_not_read_keep_the_connection(stack):
    """POSTs answered without reading the body (/socks ignores it): with FCGI_KEEP_CONN the
    connection should go back to nginx's pool all the same."""
    s = stack(APP, "--tornado", "4", proto="fastcgi")
    conns = nginx_connections(s, 20, method="POST", body=b"x" * 500)
    assert 1 <= len(conns) <= 4, "%d upstream connections for 20 requests" % len(conns)


# ---- a head that fills the buffer; closing while the front end still sends ---------------------

# gyre's connection buffer: the uwsgi header, the largest head (--buffer-size, at least 16 KiB
# for HTTP) and 16 KiB of body read-ahead (server/conn.c conn_alloc).
def conn_buffer_size(buffer_size=4096):
    return 4 + max(buffer_size, 16384) + 16384


def padded_head(rid, pairs, total):
    """BEGIN_REQUEST, PARAMS and the empty PARAMS record, `total` bytes in all: the pairs cut
    into as many records as the padding (at most 255 a record) needs."""
    fixed = len(begin_request(rid)) + len(record(PARAMS, rid))
    n = -(-(total - fixed - len(pairs)) // (8 + 255 + 1))
    assert 0 < n <= len(pairs), "not enough pairs to pad %d records" % n
    cuts = [len(pairs) * i // n for i in range(n + 1)]
    pad_total = total - fixed - len(pairs) - 8 * n
    pads = [pad_total // n + (1 if i < pad_total % n else 0) for i in range(n)]
    assert all(0 <= p <= 255 for p in pads)
    out = begin_request(rid)
    for i in range(n):
        out += record(PARAMS, rid, pairs[cuts[i]:cuts[i + 1]], padding=pads[i])
    out += record(PARAMS, rid)
    assert len(out) == total
    return out


@pytest.mark.parametrize("short_by", [0, 1, 8])
def test_head_filling_the_buffer_keeps_the_body(fcgi, short_by):
    """BEGIN + PARAMS totalling the connection buffer exactly: the STDIN records after them
    reach the app whole (a zero-byte read into the full buffer was taken for EOF)."""
    g = fcgi()
    body = os.urandom(5000)
    pairs = encode_pairs(make_params("/echo", method="POST", body=body,
                                     extra={"HTTP_X_FILL": "f" * 1500}))
    data = padded_head(1, pairs, conn_buffer_size() - short_by) + stream(STDIN, 1, body)
    with Conn(g.socket) as c:
        c.send(data)
        status, _, got = c.response(1).assert_complete()
    assert status == 200
    info = json.loads(got)
    assert (info["length"], info["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    healthy(g)


def test_empty_stdin_after_the_answer_is_read_not_refused(fcgi):
    """Apache's mod_proxy_fcgi and cgi-fcgi send the closing empty STDIN record after PARAMS, and
    gyre may answer before it arrives: without FCGI_KEEP_CONN gyre must not close the connection
    under the sender (EPIPE: Apache's 503 "AH01075 ... sending empty stdin"), but read the
    request to its end and then close."""
    g = fcgi()
    for _ in range(3):
        with Conn(g.socket) as c:
            c.send(begin_request(1) + stream(PARAMS, 1, encode_pairs(make_params("/"))))
            status, _, got = c.response(1).assert_complete()
            assert (status, got) == (200, b"Hello, World!")
            # The answer is complete; the request's end goes out now, and must be taken.
            c.send(record(STDIN, 1))
            assert c.closed_by_peer()
    healthy(g)


def test_unread_body_is_taken_before_the_close(fcgi):
    """The app answers without reading a 1 MiB body: the sender can still send all of it (gyre
    reads and drops it on the loop, not in a core), and the connection closes after it."""
    g = fcgi("--tornado", "1")
    body = b"b" * (1 << 20)
    with Conn(g.socket) as c:
        pairs = encode_pairs(make_params("/", method="POST", body=body))
        c.send(begin_request(1) + stream(PARAMS, 1, pairs))
        status, _, got = c.response(1).assert_complete()
        assert (status, got) == (200, b"Hello, World!")
        # The core is free while the connection lingers: another request is served at once.
        healthy(g)
        c.send(stream(STDIN, 1, body))
        assert c.closed_by_peer()
    healthy(g)


def test_cgi_fcgi_get_exits_0(fcgi):
    """Debian's cgi-fcgi (libfcgi) GETs: it writes the empty STDIN after PARAMS and exited with
    EPIPE, having read the whole answer, when gyre closed first."""
    g = fcgi()
    env = dict(os.environ, REQUEST_METHOD="GET", SCRIPT_NAME="", PATH_INFO="/",
               QUERY_STRING="", SERVER_NAME="localhost", SERVER_PORT="80",
               SERVER_PROTOCOL="HTTP/1.1", REQUEST_URI="/")
    for i in range(30):
        r = subprocess.run(["cgi-fcgi", "-bind", "-connect", g.socket], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        assert r.returncode == 0, "run %d: cgi-fcgi exited %d: %r" % (i, r.returncode, r.stderr)
        assert r.stdout.endswith(b"Hello, World!")
