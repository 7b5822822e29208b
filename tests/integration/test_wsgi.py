"""PEP 3333 conformance of gyre over its three protocols: uwsgi, FastCGI and HTTP/1.1.

Most tests run once per protocol (the `proto` fixture): through real nginx (`stack`, uwsgi_pass
or fastcgi_pass) or straight at gyre's --http-socket, and, where the test needs to see gyre's own
bytes, through `Direct`, a minimal client of each protocol (uwsgi packet, FastCGI records, HTTP/1.1
request) talking to gyre with no nginx in between. The WSGI behaviour must be the same whatever
the protocol. Tests about the uwsgi vars themselves (HTTPS, SCRIPT_NAME, vars a front end omits)
stay uwsgi-only; the HTTP socket's own parsing is in test_http.py.

The app is tests/apps/wsgi_conformance.py; it routes on PATH_INFO. Expected values are computed
here independently (io.BytesIO for wsgi.input semantics, the same seeded byte pattern for big
bodies), never taken from the server.

Environ differences that are legitimate (PEP 3333 allows them) and not asserted equal:
  - SERVER_NAME: nginx sends its server_name ("localhost"); the HTTP socket takes it from Host.
  - SERVER_PORT: nginx's port, or gyre's own for the HTTP socket (each is the port the client
    connected to, which is what is asserted).
  - CONTENT_TYPE/CONTENT_LENGTH without a body: nginx sends them empty, the HTTP socket omits
    them (PEP 3333: "may be empty or absent").
  - nginx adds CGI extras (DOCUMENT_ROOT, REQUEST_SCHEME, GATEWAY_INTERFACE, SERVER_SOFTWARE...
    for FastCGI); the HTTP socket sends only what it knows.
"""
import hashlib
import io
import json
import os
import random
import socket
import struct
import time
import uuid
from collections import namedtuple
from urllib.parse import quote, urlparse

import pytest
import requests

from conftest import (BASE_VARS, FCGI_PARAMS, FCGI_STDIN, PROTOS, FcgiReader, connect, encode_vars,
                      fcgi_begin_request, fcgi_pairs, fcgi_record, fcgi_stream, parse_response,
                      recv_all, uwsgi_packet, uwsgi_request, wait_for)

APP = "wsgi_conformance.py"
TIMEOUT = 10
CGI_KEYS = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
            "SERVER_PORT", "SERVER_PROTOCOL")
WSGI_KEYS = ("wsgi.version", "wsgi.url_scheme", "wsgi.input", "wsgi.errors", "wsgi.multithread",
             "wsgi.multiprocess", "wsgi.run_once")


@pytest.fixture(params=PROTOS)
def proto(request):
    """The protocol gyre serves: uwsgi and fastcgi behind nginx, http directly."""
    return request.param


@pytest.fixture
def serve(stack, proto):
    """serve(*gyre_args): the conformance app over this test's protocol."""
    def start(*args):
        return stack(APP, *args, proto=proto)
    return start


def port_of(s):
    """The port the client talks to: nginx's, or gyre's own HTTP socket."""
    return urlparse(s.url).port


def pattern(n, seed):
    return random.Random(seed).randbytes(n)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def raw(g, path, query="", method="GET", body=b"", extra=None, timeout=TIMEOUT):
    v = {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": method,
         "REQUEST_URI": path + ("?" + query if query else "")}
    v.update(extra or {})
    return parse_response(uwsgi_request(g.socket, v, body, timeout=timeout))


def raw_packet_only(varlist, body=b""):
    """A uwsgi packet with exactly these vars (no BASE_VARS)."""
    data = encode_vars(varlist)
    return struct.pack("<BHB", 0, len(data), 0) + data + body


def raw_head(raw_bytes):
    return raw_bytes.partition(b"\r\n\r\n")[0]


# ---- speaking gyre's own protocol: uwsgi, FastCGI or HTTP/1.1 -----------------------------------

Reply = namedtuple("Reply", "status headers body head complete")


def dechunk(data):
    """(body, complete) of a chunked response body; complete once the last chunk was seen."""
    body = b""
    while True:
        line, sep, rest = data.partition(b"\r\n")
        if not sep:
            return body, False
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return body, rest.startswith(b"\r\n")
        if len(rest) < size + 2:
            return body + rest[:size], False
        body += rest[:size]
        data = rest[size + 2:]


class Direct:
    """A client of gyre's own protocol (no nginx): g.proto says which.

    The request is built in three parts so that a body can trickle: head(), then piece() for
    each part of the body, then end(). request() does it all and returns a Reply."""

    def __init__(self, g):
        self.g, self.proto = g, g.proto

    def connect(self, timeout=TIMEOUT):
        if self.proto == "http":
            return socket.create_connection(("127.0.0.1", self.g.port), timeout=timeout)
        return connect(self.g.socket, timeout)

    def head(self, path, query="", method="GET", headers=None, content_length=None):
        uri = path + ("?" + query if query else "")
        headers = dict(headers or {})
        if self.proto == "http":
            out = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, uri)
            if content_length is not None:
                out += "Content-Length: %d\r\n" % content_length
            out = out.encode("latin-1")
            for k, v in headers.items():
                out += k.encode("latin-1") + b": " + (v if isinstance(v, bytes)
                                                       else v.encode("latin-1")) + b"\r\n"
            return out + b"\r\n"
        v = dict(BASE_VARS, PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=method,
                 REQUEST_URI=uri, SCRIPT_NAME="")
        if content_length is not None:
            v["CONTENT_LENGTH"] = str(content_length)
        for k, val in headers.items():
            v["HTTP_" + k.upper().replace("-", "_")] = val
        if self.proto == "uwsgi":
            return uwsgi_packet(v)
        return fcgi_begin_request(1) + fcgi_stream(FCGI_PARAMS, 1, fcgi_pairs(v))

    def piece(self, data):
        if self.proto == "fastcgi":
            return fcgi_stream(FCGI_STDIN, 1, data, end=False)
        return data

    def end(self):
        return fcgi_record(FCGI_STDIN, 1) if self.proto == "fastcgi" else b""

    def read_reply(self, c):
        """Read the response until gyre closes the connection (or, for FastCGI, ends the
        request) and parse it: the FastCGI "Status:" line, the HTTP chunked coding, undone."""
        complete = None
        if self.proto == "fastcgi":
            data, complete = FcgiReader(c).read_stdout()
        else:
            data = recv_all(c)
        head, _, body = data.partition(b"\r\n\r\n")
        status, headers, _ = parse_response(head + b"\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", ""):
            body, complete = dechunk(body)
        elif "content-length" in headers and complete is None:
            complete = len(body) == int(headers["content-length"])
        return Reply(status, headers, body, head, complete)

    def request(self, path, query="", method="GET", body=b"", headers=None, timeout=TIMEOUT):
        with self.connect(timeout) as c:
            c.sendall(self.head(path, query, method, headers, len(body) if body else None)
                      + self.piece(body) + self.end())
            return self.read_reply(c)


def assert_still_serves(url_or_gyre):
    if isinstance(url_or_gyre, str):
        r = requests.get(url_or_gyre + "/ok", timeout=TIMEOUT)
        assert (r.status_code, r.text) == (200, "ok")
    elif url_or_gyre.proto != "uwsgi":
        r = Direct(url_or_gyre).request("/ok")
        assert (r.status, r.body) == (200, b"ok")
    else:
        status, _, body = raw(url_or_gyre, "/ok")
        assert (status, body) == (200, b"ok")


def marker_text(path, timeout=5.0):
    wait_for(lambda: os.path.exists(path), timeout, what="marker file " + path)
    with open(path) as f:
        return f.read()


# ---- the environ --------------------------------------------------------------------------------

def test_environ_required_keys_and_types(serve, proto):
    s = serve("--tornado", "4")
    r = requests.get(s.url + "/env/some/where?x=1&y=%20z", headers={"X-Custom": "abc"},
                     timeout=TIMEOUT)
    assert r.status_code == 200
    env = r.json()
    types, strs = env["types"], env["str"]
    for k in CGI_KEYS + WSGI_KEYS:
        assert k in types, k
    for k in CGI_KEYS + ("wsgi.url_scheme", "HTTP_X_CUSTOM", "HTTP_HOST"):
        assert types[k] == "str", (k, types[k])
    # Every CGI-style key (upper case, no dot) is a native str.
    for k, t in types.items():
        if "." not in k:
            assert t == "str", (k, t)
    assert env["version"] == [1, 0]
    assert types["wsgi.version"] == "tuple"
    assert strs["wsgi.url_scheme"] == "http"
    assert strs["REQUEST_METHOD"] == "GET"
    assert strs["SCRIPT_NAME"] == ""
    assert strs["PATH_INFO"] == "/env/some/where"
    assert strs["QUERY_STRING"] == "x=1&y=%20z"
    assert strs["REQUEST_URI"] == "/env/some/where?x=1&y=%20z"
    assert strs["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert strs["SERVER_PORT"] == str(port_of(s))
    # nginx: its server_name; the HTTP socket: the Host the client sent (127.0.0.1:PORT).
    assert strs["SERVER_NAME"] == ("127.0.0.1" if proto == "http" else "localhost")
    assert strs["REMOTE_ADDR"] == "127.0.0.1"
    assert strs["REMOTE_PORT"].isdigit() and 0 < int(strs["REMOTE_PORT"]) < 65536
    assert strs["HTTP_X_CUSTOM"] == "abc"
    for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        assert types[k] == "bool" and env[k] is False, k
    assert all(env["input_api"].values()), env["input_api"]
    assert all(env["errors_api"].values()), env["errors_api"]
    assert env["file_wrapper"] is True


def test_environ_same_over_the_three_protocols(stack):
    """One request, three ways in: what PEP 3333 defines reads the same in every environ."""
    envs = {}
    headers = {"X-Custom": "abc", "Content-Type": "text/x-test", "Accept": "*/*",
               "User-Agent": "gyre-tests"}
    for proto in PROTOS:
        s = stack(APP, proto=proto)
        r = requests.post(s.url + "/env/p%20q/r?a=1&b=%2F", data=b"12345", headers=headers,
                          timeout=TIMEOUT)
        assert r.status_code == 200, proto
        envs[proto] = r.json()
    legit = {"SERVER_NAME", "SERVER_PORT", "REMOTE_PORT", "HTTP_HOST", "HTTP_CONNECTION",
             "gyre.core"}
    keys = set(CGI_KEYS + WSGI_KEYS) | {"REQUEST_URI", "REMOTE_ADDR", "CONTENT_TYPE",
                                        "CONTENT_LENGTH", "HTTP_X_CUSTOM", "HTTP_ACCEPT",
                                        "HTTP_USER_AGENT", "wsgi.input_terminated",
                                        "wsgi.file_wrapper"}
    base = envs["uwsgi"]
    for proto in ("fastcgi", "http"):
        env = envs[proto]
        for k in sorted(keys - legit):
            assert env["types"].get(k) == base["types"].get(k), (proto, k)
            assert env["str"].get(k) == base["str"].get(k), (proto, k)
        assert env["version"] == base["version"]
        for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
            assert env[k] == base[k], (proto, k)
        assert env["input_api"] == base["input_api"] and env["errors_api"] == base["errors_api"]
        # Whatever else a front end adds, no HTTP_* header appears twice under another name,
        # and the body's type and length never appear as HTTP_CONTENT_*.
        assert not any(k.startswith("HTTP_CONTENT_") for k in env["types"]), proto
    assert base["str"]["PATH_INFO"] == "/env/p q/r"
    assert base["str"]["QUERY_STRING"] == "a=1&b=%2F"
    assert base["str"]["CONTENT_LENGTH"] == "5"
    assert base["str"]["CONTENT_TYPE"] == "text/x-test"


def test_environ_content_type_and_length_not_as_http_keys(serve):
    s = serve()
    body = b"a=1&b=2"
    r = requests.post(s.url + "/env", data=body, timeout=TIMEOUT,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    env = r.json()
    assert env["str"]["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["str"]["CONTENT_LENGTH"] == str(len(body))
    assert "HTTP_CONTENT_TYPE" not in env["types"]
    assert "HTTP_CONTENT_LENGTH" not in env["types"]
    assert env["str"]["REQUEST_METHOD"] == "POST"


def test_environ_http_content_type_only_becomes_content_type(gyre):
    g = gyre(APP)
    status, _, body = raw(g, "/env", extra={"HTTP_CONTENT_TYPE": "text/csv",
                                            "HTTP_CONTENT_LENGTH": "999"})
    env = json.loads(body)
    assert status == 200
    assert env["str"]["CONTENT_TYPE"] == "text/csv"
    assert "HTTP_CONTENT_TYPE" not in env["types"]
    assert "HTTP_CONTENT_LENGTH" not in env["types"]
    assert "CONTENT_LENGTH" not in env["types"]  # none sent: none made up


def test_environ_latin1_decoding_raw(gyre):
    g = gyre(APP)
    status, _, body = raw(g, "/caf\xe9", extra={"HTTP_X_NAME": b"caf\xe9 \xff\xfe\x80",
                                                 "REQUEST_URI": b"/caf%E9"})
    env = json.loads(body)
    assert status == 200
    assert env["str"]["HTTP_X_NAME"] == "caf\xe9 \xff\xfe\x80"
    assert env["str"]["PATH_INFO"] == "/caf\xe9"
    assert env["str"]["REQUEST_URI"] == "/caf%E9"


def test_environ_values_shared_between_requests_stay_each_requests_own(gyre):
    # Short values are shared strings (wsgi_environ.c's table, 256 slots): 600 distinct ones
    # overwrite each other's slots, repeated ones hit, the 48-byte edge and longer values are
    # built apart; every request must still see exactly what it sent.
    g = gyre(APP)
    values = ["v%d" % (i % 300) for i in range(600)] + ["x" * 47, "x" * 48, "x" * 49, "", "y" * 48]
    for v in values:
        status, _, body = raw(g, "/env", extra={"HTTP_X_VALUE": v.encode(), "HTTP_X_SAME": b"same"})
        env = json.loads(body)
        assert status == 200
        assert (env["str"]["HTTP_X_VALUE"], env["str"]["HTTP_X_SAME"]) == (v, "same")


def test_environ_latin1_decoding_through_front_end(serve):
    s = serve()
    r = requests.get(s.url + "/caf%E9", headers={"X-Name": "caf\xe9"}, timeout=TIMEOUT)
    env = r.json()
    assert env["str"]["PATH_INFO"] == "/caf\xe9"      # %E9 decoded to the byte 0xE9
    assert env["str"]["REQUEST_URI"] == "/caf%E9"
    assert env["str"]["HTTP_X_NAME"] == "caf\xe9"


@pytest.mark.parametrize("https, scheme", [(None, "http"), ("on", "https"), ("ON", "https"),
                                           ("1", "https")])
def test_url_scheme_from_https_var(gyre, https, scheme):
    g = gyre(APP)
    extra = {"HTTPS": https} if https is not None else {}
    _, _, body = raw(g, "/env", extra=extra)
    assert json.loads(body)["str"]["wsgi.url_scheme"] == scheme


def test_url_scheme_https_off_is_http(gyre):
    # CGI servers (Apache, and wsgiref.util.guess_scheme) treat HTTPS=off as plain http.
    g = gyre(APP)
    _, _, body = raw(g, "/env", extra={"HTTPS": "off"})
    assert json.loads(body)["str"]["wsgi.url_scheme"] == "http"


def test_environ_defaults_when_front_end_omits_vars(gyre):
    g = gyre(APP)
    with connect(g.socket, TIMEOUT) as c:
        c.sendall(raw_packet_only([("REQUEST_METHOD", "GET")]))
        status, _, body = parse_response(recv_all(c))
    assert status == 200
    env = json.loads(body)
    for k in CGI_KEYS + WSGI_KEYS:
        assert k in env["types"], k
    for k in CGI_KEYS:
        assert env["types"][k] == "str", k
    assert env["str"]["SCRIPT_NAME"] == ""
    assert env["str"]["PATH_INFO"] == ""
    assert env["str"]["QUERY_STRING"] == ""
    assert env["str"]["SERVER_PROTOCOL"].startswith("HTTP/")
    assert env["str"]["SERVER_NAME"] != "" and env["str"]["SERVER_PORT"] != ""


def test_environ_script_name_kept_when_sent(gyre):
    g = gyre(APP)
    _, _, body = raw(g, "/env", extra={"SCRIPT_NAME": "/mount"})
    env = json.loads(body)
    assert env["str"]["SCRIPT_NAME"] == "/mount"
    assert env["str"]["PATH_INFO"] == "/env"


# ---- wsgi.input ---------------------------------------------------------------------------------

SMALL_BODY = b"line one\nline two\n\n\xe9 latin\nlast line without newline"
BIG_BODY = b"".join(b"line %05d %s\n" % (i, b"y" * (i % 37)) for i in range(3000)) + b"tail"


def expected_pieces(mode, body, n):
    f = io.BytesIO(body)
    out = []
    if mode == "read":
        return [f.read(), f.read()]
    if mode in ("readn", "readline", "readlinen"):
        fn = {"readn": lambda: f.read(n), "readline": f.readline,
              "readlinen": lambda: f.readline(n)}[mode]
        while True:
            p = fn()
            out.append(p)
            if not p:
                return out
    if mode == "readlines":
        return f.readlines() + [f.read()]
    if mode == "iter":
        return list(f)
    if mode == "mixed":
        return [f.readline(), f.read(3), f.readline(2), f.read()]
    if mode == "past":
        return [body, b"", b"", b"", b""]
    raise AssertionError(mode)


@pytest.mark.parametrize("body", [SMALL_BODY, BIG_BODY], ids=["small", "big"])
@pytest.mark.parametrize("mode, n", [("read", 0), ("readn", 7), ("readn", 4096),
                                     ("readline", 0), ("readlinen", 5), ("readlines", 0),
                                     ("iter", 0), ("mixed", 0), ("past", 0)])
def test_input_reading_modes(serve, mode, n, body):
    s = serve()
    r = requests.post(s.url + "/input?mode=%s&n=%d" % (mode, n), data=body, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    got = [p.encode("latin-1") for p in r.json()["pieces"]]
    assert got == expected_pieces(mode, body, n)


def test_input_readlines_hint_returns_whole_lines(serve):
    s = serve()
    r = requests.post(s.url + "/input?mode=readlineshint&n=12", data=SMALL_BODY, timeout=TIMEOUT)
    pieces = [p.encode("latin-1") for p in r.json()["pieces"]]
    sep = pieces.index(b"|")
    lines, rest = pieces[:sep], pieces[sep + 1:]
    assert lines and all(l.endswith(b"\n") for l in lines)
    assert b"".join(lines + rest) == SMALL_BODY


@pytest.mark.parametrize("extra", [b"", b"EXTRA BYTES AFTER THE BODY"], ids=["exact", "extra"])
def test_input_read_past_content_length_never_blocks(gyre, extra):
    """The client keeps its socket open after the body: reads past CONTENT_LENGTH must
    return b'' at once instead of waiting for more."""
    g = gyre(APP, "--socket-timeout", "20")
    with connect(g.socket, timeout=5) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": "/input", "QUERY_STRING": "mode=past",
                                "REQUEST_METHOD": "POST", "CONTENT_LENGTH": "5"}, b"hello" + extra))
        t0 = time.monotonic()
        status, _, body = parse_response(recv_all(c))   # times out (fails) if the app blocks
        assert time.monotonic() - t0 < 3
    assert status == 200
    assert json.loads(body)["pieces"] == ["hello", "", "", "", ""]


@pytest.mark.parametrize("split", [False, True], ids=["with_head", "after_head"])
def test_input_read_past_end_never_blocks_any_protocol(gyre, proto, split):
    """The same over each protocol, the body arriving with the head or on its own: once the
    body is over (its length, the last chunk or the empty STDIN record), reads return b''
    without waiting for the client, which keeps its socket open."""
    g = gyre(APP, "--socket-timeout", "20", proto=proto)
    d = Direct(g)
    with d.connect(timeout=5) as c:
        head = d.head("/input", "mode=past", "POST", content_length=5)
        rest = d.piece(b"hello") + d.end()
        if split:
            c.sendall(head)
            time.sleep(0.2)
            c.sendall(rest)
        else:
            c.sendall(head + rest)
        t0 = time.monotonic()
        r = d.read_reply(c)                   # times out (fails) if the app blocks
        assert time.monotonic() - t0 < 3
    assert r.status == 200, g.log()[-2000:]
    assert json.loads(r.body)["pieces"] == ["hello", "", "", "", ""]


def test_input_empty_without_content_length(gyre):
    """Bytes after a head that announces no CONTENT_LENGTH are no body: read() is b'' at once."""
    g = gyre(APP)
    with connect(g.socket, timeout=5) as c:
        c.sendall(raw_packet_only([("REQUEST_METHOD", "POST"), ("PATH_INFO", "/input"),
                                   ("QUERY_STRING", "mode=past")], b"unannounced bytes"))
        status, _, body = parse_response(recv_all(c))
    assert status == 200
    assert json.loads(body)["pieces"] == ["", "", "", "", ""]


@pytest.mark.parametrize("mode", ["echo", "readline"])
def test_slow_body_does_not_block_the_loop(gyre, proto, mode):
    g = gyre(APP, "--tornado", "2", proto=proto)
    d = Direct(g)
    pieces = [b"first piece ab", b"c\nsecond", b" line\n", b"third and last"]
    body = b"".join(pieces)
    path, query = ("/echo", "") if mode == "echo" else ("/input", "mode=readline")
    with d.connect(timeout=TIMEOUT) as c:
        c.sendall(d.head(path, query, "POST", content_length=len(body)))
        for i, piece in enumerate(pieces[:-1]):
            time.sleep(0.15)
            c.sendall(d.piece(piece))
            # Meanwhile another request is served at once: the waiting core blocks nothing.
            t0 = time.monotonic()
            other = d.request("/ok", timeout=5)
            assert (other.status, other.body) == (200, b"ok")
            assert time.monotonic() - t0 < 1.0
        # No answer before the body is complete.
        c.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c.recv(1)
        c.settimeout(TIMEOUT)
        c.sendall(d.piece(pieces[-1]) + d.end())
        r = d.read_reply(c)
    assert r.status == 200, g.log()[-2000:]
    if mode == "echo":
        assert r.body == body
        assert r.headers["x-body-sha256"] == sha(body)
    else:
        got = [p.encode("latin-1") for p in json.loads(r.body)["pieces"]]
        assert got == expected_pieces("readline", body, 0)


@pytest.mark.parametrize("mode, first", [("readline", b"a"), ("readlinen", b"a"),
                                         ("iter", b"a"), ("readline", b"ab")])
def test_readline_line_split_across_arrivals(gyre, proto, mode, first):
    """A line whose first part arrives alone (here a single byte) is joined with the rest."""
    g = gyre(APP, proto=proto)
    d = Direct(g)
    pieces = [first, b"bc\nde", b"f\n", b"g"]
    body = b"".join(pieces)
    with d.connect(timeout=TIMEOUT) as c:
        c.sendall(d.head("/input", "mode=%s&n=100" % mode, "POST", content_length=len(body)))
        try:
            for piece in pieces:
                time.sleep(0.1)
                c.sendall(d.piece(piece))
            c.sendall(d.end())
        except (BrokenPipeError, ConnectionResetError):
            pass            # gyre answered early (an error): the status below says so
        r = d.read_reply(c)
    assert r.status == 200, g.log()[-2000:]
    got = [p.encode("latin-1") for p in json.loads(r.body)["pieces"]]
    assert got == expected_pieces(mode, body, 100)
    assert_still_serves(g)


# ---- big bodies ---------------------------------------------------------------------------------

def test_post_10mib_echoed(serve):
    s = serve("--tornado", "4")
    data = pattern(10 * 1024 * 1024, 7)
    r = requests.post(s.url + "/echo", data=data, timeout=60)
    assert r.status_code == 200
    assert r.headers["X-Body-Length"] == str(len(data))
    assert r.headers["X-Body-Sha256"] == sha(data)
    assert len(r.content) == len(data) and sha(r.content) == sha(data)


def test_post_10mib_hashed_in_pieces(serve):
    s = serve()
    data = pattern(10 * 1024 * 1024, 11)
    r = requests.post(s.url + "/hash", data=data, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"sha256": sha(data), "length": len(data)}


def test_response_16mib(serve):
    s = serve()
    size = 16 * 1024 * 1024
    r = requests.get(s.url + "/big?size=%d&seed=3" % size, timeout=60)
    assert r.status_code == 200
    assert len(r.content) == size
    assert sha(r.content) == sha(pattern(size, 3))
    s.gyre.wait_log("GET /big?size=%d&seed=3 => generated %d bytes" % (size, size))


def test_generator_response_arrives_whole(serve, proto):
    s = serve()
    expected = b"".join(b"line %03d\n" % i for i in range(50))
    r = requests.get(s.url + "/generator", timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == expected
    d = Direct(s.gyre).request("/generator")
    assert d.status == 200 and d.body == expected
    # Unknown length: no Content-Length. uwsgi: the body ends with the connection; FastCGI:
    # with the END_REQUEST record; HTTP/1.1: with the chunked coding's last chunk.
    assert "content-length" not in d.headers
    if proto == "http":
        assert d.headers["transfer-encoding"] == "chunked" and d.complete
    if proto == "fastcgi":
        assert d.complete


# ---- wsgi.errors --------------------------------------------------------------------------------

def test_wsgi_errors_goes_to_the_log(serve):
    s = serve()
    token = uuid.uuid4().hex
    r = requests.get(s.url + "/errors?token=" + token, timeout=TIMEOUT)
    assert r.text == "logged"
    s.gyre.wait_log("wsgi.errors says %s\n" % token, timeout=5)
    s.gyre.wait_log("writelines %s a\nwritelines %s b\n" % (token, token), timeout=5)


# ---- wsgi.file_wrapper --------------------------------------------------------------------------

def test_file_wrapper_real_file(serve, tmp_path):
    s = serve()
    data = pattern(300_001, 5)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    r = requests.get(s.url + "/file_wrapper?path=" + quote(str(path)), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers.get("Content-Length") == str(len(data))
    assert r.content == data


def test_file_wrapper_real_file_raw_honours_position(gyre, proto, tmp_path):
    g = gyre(APP, proto=proto)
    data = pattern(70_000, 6)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    r = Direct(g).request("/file_wrapper", "path=%s&seek=1000" % quote(str(path)))
    assert r.status == 200
    assert r.headers["content-length"] == str(len(data) - 1000)
    assert r.body == data[1000:]
    assert r.complete is not False


def test_file_wrapper_bytesio_falls_back_to_iteration(serve, tmp_path):
    s = serve()
    marker = str(tmp_path / "bytesio-closed")
    r = requests.get(s.url + "/file_wrapper?kind=bytesio&size=25000&seed=9&marker=" + marker,
                     timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == pattern(25000, 9)
    # PEP 3333: the wrapper's close() calls the file-like object's close().
    assert marker_text(marker) == "closed"


# ---- start_response -----------------------------------------------------------------------------

def test_exc_info_replaces_headers_before_anything_is_sent(serve):
    s = serve()
    r = requests.get(s.url + "/exc_replace", timeout=TIMEOUT)
    assert r.status_code == 503
    assert r.reason == "Replaced"
    assert r.headers.get("X-Second") == "2"
    assert "X-First" not in r.headers
    assert r.content == b"replacement body"


@pytest.mark.parametrize("path, message", [
    ("/exc_after_body", "ValueError: too late to replace EXC-AFTER-BODY"),
    ("/exc_after_body_gen", "KeyError: 'EXC-AFTER-BODY-GEN'"),
])
def test_exc_info_after_body_started_reraises(gyre, proto, path, message):
    g = gyre(APP, proto=proto)
    r = Direct(g).request(path)
    # The head and the first bytes were out: the response is cut, nothing else is appended
    # (FastCGI: no END_REQUEST either; the closed connection tells nginx).
    assert r.status == 200
    assert r.headers["content-length"] == "100"
    assert r.body == b"partial"
    assert r.complete is False
    g.wait_log(message, timeout=5)
    assert "Traceback" in g.log()
    assert "should never be sent" not in g.log()
    assert_still_serves(g)


def test_exc_info_after_body_started_cuts_connection(serve):
    s = serve()
    # Speak HTTP by hand: client libraries may silently accept a body shorter than announced.
    with socket.create_connection(("127.0.0.1", port_of(s)), timeout=TIMEOUT) as c:
        c.sendall(b"GET /exc_after_body HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = recv_all(c)          # the client connection is closed: the response is cut
    status, headers, body = parse_response(data)
    assert status == 200 and headers["content-length"] == "100"
    assert body == b"partial"
    s.gyre.wait_log("ValueError: too late to replace EXC-AFTER-BODY", timeout=5)
    if s.nginx:
        wait_for(lambda: "upstream prematurely closed" in s.nginx.error_log(), 5,
                 what="nginx noticing the cut response")
    assert_still_serves(s.url)


def test_write_callable_bytes_come_first(serve):
    s = serve()
    r = requests.get(s.url + "/write", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == b"one-two-three-four"


# ---- HEAD ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, length", [("list", 11), ("multi", 15), ("gen", None),
                                          ("write", None)])
def test_head_has_headers_but_no_body(gyre, proto, kind, length):
    """The same head as GET (RFC 9110 9.3.2), Content-Length included when the length is known
    without generating the body, and no body bytes at all."""
    g = gyre(APP, proto=proto)
    d = Direct(g)
    r = d.request("/head", "kind=" + kind, method="HEAD")
    assert r.status == 200
    assert r.headers["x-head-kind"] == kind
    assert r.body == b""
    if proto == "fastcgi":
        assert r.complete
    if length is not None:
        assert r.headers.get("content-length") == str(length), r.head
    get = d.request("/head", "kind=" + kind)
    assert get.body == {"list": b"hello world", "multi": b"hello big world",
                        "gen": b"generated", "write": b"writtenhello"}[kind]


def test_head_file_wrapper_has_length_but_no_body(gyre, proto, tmp_path):
    g = gyre(APP, proto=proto)
    path = tmp_path / "f.bin"
    path.write_bytes(b"z" * 5000)
    r = Direct(g).request("/file_wrapper", "path=" + quote(str(path)), method="HEAD")
    assert r.status == 200 and r.body == b""
    assert r.headers.get("content-length") == "5000", r.head


@pytest.mark.parametrize("kind", ["list", "multi", "gen"])
def test_head_through_front_end(serve, kind):
    s = serve()
    get = requests.get(s.url + "/head?kind=" + kind, timeout=TIMEOUT)
    head = requests.head(s.url + "/head?kind=" + kind, timeout=TIMEOUT)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["X-Head-Kind"] == kind
    assert head.headers.get("Content-Length") == get.headers.get("Content-Length")
    assert_still_serves(s.url)


# ---- close() ------------------------------------------------------------------------------------

def test_close_called_after_normal_response(serve, tmp_path):
    s = serve()
    marker = str(tmp_path / "normal")
    r = requests.get(s.url + "/closing?chunks=3&chunk_size=10&marker=" + marker, timeout=TIMEOUT)
    assert r.content == b"x" * 30
    assert marker_text(marker) == "closed after 3"


def test_close_called_when_client_disconnects_mid_response(gyre, proto, tmp_path):
    g = gyre(APP, proto=proto)
    d = Direct(g)
    marker = str(tmp_path / "disconnect")
    chunks = 2000          # 125 MiB if nobody stops it
    with d.connect(TIMEOUT) as c:
        c.sendall(d.head("/closing", "chunks=%d&marker=%s" % (chunks, marker)) + d.end())
        got = b""
        while len(got) < 4096:
            data = c.recv(4096)
            assert data
            got += data
        assert b"200" in got[:40]
    text = marker_text(marker, timeout=10)
    produced = int(text.rsplit(" ", 1)[1])
    assert produced < chunks, text          # the server stopped iterating early
    wait_for(lambda: "the client went away" in g.log() or "client aborted" in g.log(), 5,
             what="gyre noticing the client left")
    assert_still_serves(g)


@pytest.mark.parametrize("fail_at", [0, 2])
def test_close_called_when_iterator_raises(gyre, proto, tmp_path, fail_at):
    g = gyre(APP, proto=proto)
    marker = str(tmp_path / "iter-raised")
    r = Direct(g).request("/closing", "chunks=4&chunk_size=10&fail_at=%d&marker=%s"
                          % (fail_at, marker))
    if fail_at == 0:
        assert r.status == 500                 # nothing was sent yet: a clean 500
        assert r.complete is not False
    else:
        assert r.status == 200 and r.body == b"x" * 10 * fail_at   # cut after what was sent
        assert r.complete is not True          # and never passed off as complete
    assert marker_text(marker) == "closed after %d" % fail_at
    g.wait_log("RuntimeError: iterator failure %d" % fail_at, timeout=5)
    assert "Traceback" in g.log()
    assert_still_serves(g)


# ---- broken apps --------------------------------------------------------------------------------

@pytest.mark.parametrize("path, log_text", [
    ("/fail/raise", "ZeroDivisionError: APP-RAISED-MARKER"),
    ("/fail/raise_after_start", "LookupError: APP-RAISED-AFTER-START"),
    ("/fail/none", "returned None"),
    ("/fail/str_list", "must be bytes, not str"),
    ("/fail/str_gen", "must be bytes, not str"),
    ("/fail/no_start", "without calling start_response()"),
    ("/fail/no_start_gen", "without calling start_response()"),
    ("/fail/not_iterable", "not iterable"),
    ("/twice", "start_response() called a second time without exc_info"),
])
def test_app_failure_gives_500_and_next_request_works(serve, path, log_text):
    s = serve()
    r = requests.get(s.url + path, timeout=TIMEOUT)
    assert r.status_code == 500
    assert b"body without start_response" not in r.content
    assert b"second start_response accepted" not in r.content
    s.gyre.wait_log(log_text, timeout=5)
    s.gyre.wait_log("GET %s => generated" % path, timeout=5)
    assert_still_serves(s.url)


def test_app_raise_logs_traceback(gyre, proto):
    g = gyre(APP, proto=proto)
    r = Direct(g).request("/fail/raise")
    assert r.status == 500
    g.wait_log("ZeroDivisionError: APP-RAISED-MARKER", timeout=5)
    log = g.log()
    assert "Traceback (most recent call last)" in log
    assert "in fail_raise" in log          # the app's own frame is in the traceback
    assert_still_serves(g)


# ---- response headers ---------------------------------------------------------------------------

def test_latin1_response_header_value(serve):
    s = serve()
    d = Direct(s.gyre).request("/header", "kind=latin1")
    assert b"\r\nX-Value: caf\xe9 \xff\r\n" in d.head
    r = requests.get(s.url + "/header?kind=latin1", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["X-Value"] == "caf\xe9 \xff"


@pytest.mark.parametrize("kind", ["crlf", "lf", "nonlatin1", "badname"])
def test_bad_response_header_rejected_with_500(serve, kind):
    s = serve()
    d = Direct(s.gyre).request("/header", "kind=" + kind)
    assert d.status == 500
    for bad in (b"X-Injected", b"X-Bad", b"header ok"):
        assert bad not in d.head and bad not in d.body
    r = requests.get(s.url + "/header?kind=" + kind, timeout=TIMEOUT)
    assert r.status_code == 500
    assert "X-Injected" not in r.headers
    assert_still_serves(s.url)
