"""PEP 3333 conformance of gyre, through real nginx (`stack`) and over raw uwsgi (`gyre`).

The app is tests/apps/wsgi_conformance.py; it routes on PATH_INFO. Expected values are computed
here independently (io.BytesIO for wsgi.input semantics, the same seeded byte pattern for big
bodies), never taken from the server.
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
from urllib.parse import quote

import pytest
import requests

from conftest import (connect, encode_vars, parse_response, recv_all, uwsgi_packet,
                      uwsgi_request, wait_for)

APP = "wsgi_conformance.py"
TIMEOUT = 10
CGI_KEYS = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
            "SERVER_PORT", "SERVER_PROTOCOL")
WSGI_KEYS = ("wsgi.version", "wsgi.url_scheme", "wsgi.input", "wsgi.errors", "wsgi.multithread",
             "wsgi.multiprocess", "wsgi.run_once")


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


def assert_still_serves(url_or_gyre):
    if isinstance(url_or_gyre, str):
        r = requests.get(url_or_gyre + "/ok", timeout=TIMEOUT)
        assert (r.status_code, r.text) == (200, "ok")
    else:
        status, _, body = raw(url_or_gyre, "/ok")
        assert (status, body) == (200, b"ok")


def marker_text(path, timeout=5.0):
    wait_for(lambda: os.path.exists(path), timeout, what="marker file " + path)
    with open(path) as f:
        return f.read()


# ---- the environ --------------------------------------------------------------------------------

def test_environ_required_keys_and_types_through_nginx(stack):
    s = stack(APP, "--tornado", "4")
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
    assert strs["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert strs["SERVER_PORT"] == str(s.nginx.port)
    assert strs["HTTP_X_CUSTOM"] == "abc"
    for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        assert types[k] == "bool" and env[k] is False, k
    assert all(env["input_api"].values()), env["input_api"]
    assert all(env["errors_api"].values()), env["errors_api"]
    assert env["file_wrapper"] is True


def test_environ_content_type_and_length_not_as_http_keys(stack):
    s = stack(APP)
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
    assert env["str"].get("CONTENT_LENGTH", "") in ("", "0")


def test_environ_latin1_decoding_raw(gyre):
    g = gyre(APP)
    status, _, body = raw(g, "/caf\xe9", extra={"HTTP_X_NAME": b"caf\xe9 \xff\xfe\x80",
                                                 "REQUEST_URI": b"/caf%E9"})
    env = json.loads(body)
    assert status == 200
    assert env["str"]["HTTP_X_NAME"] == "caf\xe9 \xff\xfe\x80"
    assert env["str"]["PATH_INFO"] == "/caf\xe9"
    assert env["str"]["REQUEST_URI"] == "/caf%E9"


def test_environ_latin1_decoding_through_nginx(stack):
    s = stack(APP)
    r = requests.get(s.url + "/caf%E9", headers={"X-Name": "caf\xe9"}, timeout=TIMEOUT)
    env = r.json()
    assert env["str"]["PATH_INFO"] == "/caf\xe9"      # nginx decodes %E9 to the byte 0xE9
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
def test_input_reading_modes_through_nginx(stack, mode, n, body):
    s = stack(APP)
    r = requests.post(s.url + "/input?mode=%s&n=%d" % (mode, n), data=body, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    got = [p.encode("latin-1") for p in r.json()["pieces"]]
    assert got == expected_pieces(mode, body, n)


def test_input_readlines_hint_returns_whole_lines(stack):
    s = stack(APP)
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
def test_slow_body_does_not_block_the_loop(gyre, mode):
    g = gyre(APP, "--tornado", "2")
    pieces = [b"first piece ab", b"c\nsecond", b" line\n", b"third and last"]
    body = b"".join(pieces)
    path, query = ("/echo", "") if mode == "echo" else ("/input", "mode=readline")
    with connect(g.socket, timeout=TIMEOUT) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": path, "QUERY_STRING": query,
                                "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body))}))
        for i, piece in enumerate(pieces[:-1]):
            time.sleep(0.15)
            c.sendall(piece)
            # Meanwhile another request is served at once: the waiting core blocks nothing.
            t0 = time.monotonic()
            status, _, other = raw(g, "/ok", timeout=5)
            assert (status, other) == (200, b"ok")
            assert time.monotonic() - t0 < 1.0
        # No answer before the body is complete.
        c.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c.recv(1)
        c.settimeout(TIMEOUT)
        c.sendall(pieces[-1])
        status, headers, resp = parse_response(recv_all(c))
    assert status == 200
    if mode == "echo":
        assert resp == body
        assert headers["x-body-sha256"] == sha(body)
    else:
        got = [p.encode("latin-1") for p in json.loads(resp)["pieces"]]
        assert got == expected_pieces("readline", body, 0)


@pytest.mark.parametrize("mode, first", [("readline", b"a"), ("readlinen", b"a"),
                                         ("iter", b"a"), ("readline", b"ab")])
def test_readline_line_split_across_arrivals(gyre, mode, first):
    """A line whose first part arrives alone (here a single byte) is joined with the rest."""
    g = gyre(APP)
    pieces = [first, b"bc\nde", b"f\n", b"g"]
    body = b"".join(pieces)
    with connect(g.socket, timeout=TIMEOUT) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": "/input", "QUERY_STRING": "mode=%s&n=100" % mode,
                                "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body))}))
        try:
            for piece in pieces:
                time.sleep(0.1)
                c.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass            # gyre answered early (an error): the status below says so
        status, _, resp = parse_response(recv_all(c))
    assert status == 200, g.log()[-2000:]
    got = [p.encode("latin-1") for p in json.loads(resp)["pieces"]]
    assert got == expected_pieces(mode, body, 100)
    assert_still_serves(g)


# ---- big bodies through nginx -------------------------------------------------------------------

def test_post_10mib_echoed_through_nginx(stack):
    s = stack(APP, "--tornado", "4")
    data = pattern(10 * 1024 * 1024, 7)
    r = requests.post(s.url + "/echo", data=data, timeout=60)
    assert r.status_code == 200
    assert r.headers["X-Body-Length"] == str(len(data))
    assert r.headers["X-Body-Sha256"] == sha(data)
    assert len(r.content) == len(data) and sha(r.content) == sha(data)


def test_post_10mib_hashed_in_pieces_through_nginx(stack):
    s = stack(APP)
    data = pattern(10 * 1024 * 1024, 11)
    r = requests.post(s.url + "/hash", data=data, timeout=60)
    assert r.json() == {"sha256": sha(data), "length": len(data)}


def test_response_16mib_through_nginx(stack):
    s = stack(APP)
    size = 16 * 1024 * 1024
    r = requests.get(s.url + "/big?size=%d&seed=3" % size, timeout=60)
    assert r.status_code == 200
    assert len(r.content) == size
    assert sha(r.content) == sha(pattern(size, 3))
    assert "GET /big?size=%d&seed=3 => generated %d bytes" % (size, size) in s.gyre.log()


def test_generator_response_arrives_whole(stack):
    s = stack(APP)
    expected = b"".join(b"line %03d\n" % i for i in range(50))
    r = requests.get(s.url + "/generator", timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == expected
    status, headers, body = parse_response(uwsgi_request(s.gyre.socket,
                                                         {"PATH_INFO": "/generator"}))
    assert status == 200 and body == expected
    assert "content-length" not in headers     # unknown length: the body ends with the connection


# ---- wsgi.errors --------------------------------------------------------------------------------

def test_wsgi_errors_goes_to_the_log(stack):
    s = stack(APP)
    token = uuid.uuid4().hex
    r = requests.get(s.url + "/errors?token=" + token, timeout=TIMEOUT)
    assert r.text == "logged"
    s.gyre.wait_log("wsgi.errors says %s\n" % token, timeout=5)
    s.gyre.wait_log("writelines %s a\nwritelines %s b\n" % (token, token), timeout=5)


# ---- wsgi.file_wrapper --------------------------------------------------------------------------

def test_file_wrapper_real_file_through_nginx(stack, tmp_path):
    s = stack(APP)
    data = pattern(300_001, 5)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    r = requests.get(s.url + "/file_wrapper?path=" + quote(str(path)), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers.get("Content-Length") == str(len(data))
    assert r.content == data


def test_file_wrapper_real_file_raw_honours_position(gyre, tmp_path):
    g = gyre(APP)
    data = pattern(70_000, 6)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    status, headers, body = raw(g, "/file_wrapper", "path=%s&seek=1000" % quote(str(path)))
    assert status == 200
    assert headers["content-length"] == str(len(data) - 1000)
    assert body == data[1000:]


def test_file_wrapper_bytesio_falls_back_to_iteration(stack, tmp_path):
    s = stack(APP)
    marker = str(tmp_path / "bytesio-closed")
    r = requests.get(s.url + "/file_wrapper?kind=bytesio&size=25000&seed=9&marker=" + marker,
                     timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == pattern(25000, 9)
    # PEP 3333: the wrapper's close() calls the file-like object's close().
    assert marker_text(marker) == "closed"


# ---- start_response -----------------------------------------------------------------------------

def test_exc_info_replaces_headers_before_anything_is_sent(stack):
    s = stack(APP)
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
def test_exc_info_after_body_started_reraises(gyre, path, message):
    g = gyre(APP)
    status, headers, body = raw(g, path)
    # The head and the first bytes were out: the response is cut, nothing else is appended.
    assert status == 200
    assert headers["content-length"] == "100"
    assert body == b"partial"
    g.wait_log(message, timeout=5)
    assert "Traceback" in g.log()
    assert "should never be sent" not in g.log()
    assert_still_serves(g)


def test_exc_info_after_body_started_cuts_connection_through_nginx(stack):
    s = stack(APP)
    # Speak HTTP by hand: client libraries may silently accept a body shorter than announced.
    with socket.create_connection(("127.0.0.1", s.nginx.port), timeout=TIMEOUT) as c:
        c.sendall(b"GET /exc_after_body HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = recv_all(c)          # nginx closes the client connection: the response is cut
    status, headers, body = parse_response(data)
    assert status == 200 and headers["content-length"] == "100"
    assert body == b"partial"
    s.gyre.wait_log("ValueError: too late to replace EXC-AFTER-BODY", timeout=5)
    wait_for(lambda: "upstream prematurely closed" in s.nginx.error_log(), 5,
             what="nginx noticing the cut response")
    assert_still_serves(s.url)


def test_write_callable_bytes_come_first(stack):
    s = stack(APP)
    r = requests.get(s.url + "/write", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == b"one-two-three-four"


# ---- HEAD ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, length", [("list", 11), ("multi", 15), ("gen", None),
                                          ("write", None)])
def test_head_has_headers_but_no_body(gyre, kind, length):
    g = gyre(APP)
    with connect(g.socket, TIMEOUT) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": "/head", "QUERY_STRING": "kind=" + kind,
                                "REQUEST_METHOD": "HEAD"}))
        data = recv_all(c)
    status, headers, body = parse_response(data)
    assert status == 200
    assert headers["x-head-kind"] == kind
    assert data.endswith(b"\r\n\r\n") and body == b""
    if length is not None:
        assert headers["content-length"] == str(length)


def test_head_file_wrapper_has_length_but_no_body(gyre, tmp_path):
    g = gyre(APP)
    path = tmp_path / "f.bin"
    path.write_bytes(b"z" * 5000)
    status, headers, body = raw(g, "/file_wrapper", "path=" + quote(str(path)), method="HEAD")
    assert status == 200 and headers["content-length"] == "5000" and body == b""


# ---- close() ------------------------------------------------------------------------------------

def test_close_called_after_normal_response(stack, tmp_path):
    s = stack(APP)
    marker = str(tmp_path / "normal")
    r = requests.get(s.url + "/closing?chunks=3&chunk_size=10&marker=" + marker, timeout=TIMEOUT)
    assert r.content == b"x" * 30
    assert marker_text(marker) == "closed after 3"


def test_close_called_when_client_disconnects_mid_response(gyre, tmp_path):
    g = gyre(APP)
    marker = str(tmp_path / "disconnect")
    chunks = 2000          # 125 MiB if nobody stops it
    with connect(g.socket, TIMEOUT) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": "/closing",
                                "QUERY_STRING": "chunks=%d&marker=%s" % (chunks, marker)}))
        got = b""
        while len(got) < 4096:
            d = c.recv(4096)
            assert d
            got += d
        assert got.startswith(b"HTTP/1.1 200")
    text = marker_text(marker, timeout=10)
    produced = int(text.rsplit(" ", 1)[1])
    assert produced < chunks, text          # the server stopped iterating early
    g.wait_log("the client went away", timeout=5)
    assert_still_serves(g)


@pytest.mark.parametrize("fail_at", [0, 2])
def test_close_called_when_iterator_raises(gyre, tmp_path, fail_at):
    g = gyre(APP)
    marker = str(tmp_path / "iter-raised")
    status, _, body = raw(g, "/closing", "chunks=4&chunk_size=10&fail_at=%d&marker=%s"
                          % (fail_at, marker))
    if fail_at == 0:
        assert status == 500                 # nothing was sent yet: a clean 500
    else:
        assert status == 200 and body == b"x" * 10 * fail_at   # cut after what was sent
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
def test_app_failure_gives_500_and_next_request_works(stack, path, log_text):
    s = stack(APP)
    r = requests.get(s.url + path, timeout=TIMEOUT)
    assert r.status_code == 500
    assert b"body without start_response" not in r.content
    assert b"second start_response accepted" not in r.content
    s.gyre.wait_log(log_text, timeout=5)
    s.gyre.wait_log("GET %s => generated" % path, timeout=5)
    assert_still_serves(s.url)


def test_app_raise_logs_traceback(gyre):
    g = gyre(APP)
    status, _, _ = raw(g, "/fail/raise")
    assert status == 500
    g.wait_log("ZeroDivisionError: APP-RAISED-MARKER", timeout=5)
    log = g.log()
    assert "Traceback (most recent call last)" in log
    assert "in fail_raise" in log          # the app's own frame is in the traceback
    assert_still_serves(g)


# ---- response headers ---------------------------------------------------------------------------

def test_latin1_response_header_value(stack):
    s = stack(APP)
    data = uwsgi_request(s.gyre.socket, {"PATH_INFO": "/header", "QUERY_STRING": "kind=latin1"})
    assert b"\r\nX-Value: caf\xe9 \xff\r\n" in raw_head(data)
    r = requests.get(s.url + "/header?kind=latin1", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["X-Value"] == "caf\xe9 \xff"


@pytest.mark.parametrize("kind", ["crlf", "lf", "nonlatin1", "badname"])
def test_bad_response_header_rejected_with_500(stack, kind):
    s = stack(APP)
    data = uwsgi_request(s.gyre.socket, {"PATH_INFO": "/header", "QUERY_STRING": "kind=" + kind})
    status, headers, body = parse_response(data)
    assert status == 500
    assert b"X-Injected" not in data and b"X-Bad" not in data and b"header ok" not in data
    r = requests.get(s.url + "/header?kind=" + kind, timeout=TIMEOUT)
    assert r.status_code == 500
    assert "X-Injected" not in r.headers
    assert_still_serves(s.url)
