"""The response side of gyre, over its three protocols: what goes on the wire after the app
returns, and what the connection does next.

  - a list returned by the app is sent as it was when the app returned it, whatever another
    request does to that list while the response is on its way (issue 8, defect 1);
  - the app's Content-Length is enforced: never more bytes than declared, and a body shorter
    than declared (an app's, or a file that shrinks under sendfile) ends the connection, so the
    next response is never read as the rest of this one (defect 5);
  - no `100 Continue` after the response head (defect 6);
  - request log lines escape what the client sent (defect 8).

The app is tests/apps/resp_app.py. Each protocol is spoken by hand (uwsgi packets, FastCGI
records, HTTP/1.1) so that the bytes gyre writes are what the test sees.
"""
import re
import socket
import struct

import pytest

from conftest import (BASE_VARS, FCGI_KEEP_CONN, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FcgiReader,
                      connect, encode_vars, fcgi_begin_request, fcgi_pairs, fcgi_record,
                      fcgi_stream, recv_all, wait_for)
from test_http import Conn, req

APP = "resp_app.py"
TIMEOUT = 10
ITEM = 65536


def shared_bytes():
    """What resp_app.SHARED holds when the app starts (computed here, not asked of the app)."""
    return b"".join(bytes([65 + i % 26]) * ITEM for i in range(200))


def declared_body(n):
    return bytes(97 + i % 26 for i in range(n))


# ---- clients ------------------------------------------------------------------------------------

def uwsgi_vars(path, query="", method="GET", uri=None, extra=None):
    v = dict(BASE_VARS, PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=method,
             REQUEST_URI=uri if uri is not None else path + ("?" + query if query else ""))
    v.update(extra or {})
    return v


def uwsgi_send(sock, path, query="", **kw):
    data = encode_vars(uwsgi_vars(path, query, **kw))
    sock.sendall(struct.pack("<BHB", 0, len(data), 0) + data)


def fcgi_request(path, query="", flags=FCGI_KEEP_CONN):
    v = uwsgi_vars(path, query)
    return (fcgi_begin_request(1, flags=flags) + fcgi_stream(FCGI_PARAMS, 1, fcgi_pairs(v))
            + fcgi_record(FCGI_STDIN, 1))


def split_head(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return headers, body


# ---- defect 1: a list the app shares with other requests -----------------------------------------

@pytest.mark.parametrize("how", ["replace", "shrink"])
def test_shared_list_mutated_while_it_is_sent(gyre, how):
    """The app returns a module-level list (12.5 MiB, 200 items); while gyre waits for the slow
    client to read it, another request replaces or empties that list. The first client must get
    the list as it was returned, byte for byte, never freed memory or the other request's
    bytes."""
    g = gyre(APP, "--tornado", "2")
    expected = shared_bytes()
    with connect(g.socket, TIMEOUT) as a:
        uwsgi_send(a, "/shared")
        first = a.recv(1)               # the response has started: gyre is in its writes
        assert first == b"H"
        # The rest cannot fit the socket buffers: gyre's core is suspended mid-list now.
        with connect(g.socket, TIMEOUT) as b:
            uwsgi_send(b, "/mutate", "how=" + how)
            assert recv_all(b).endswith(b"mutated")
        raw = first + recv_all(a)
    headers, body = split_head(raw)
    assert headers.get("content-length") == str(len(expected))
    assert len(body) == len(expected), g.log()[-2000:]
    assert body == expected, "bytes other than the returned list's were sent"
    assert g.proc.poll() is None, g.log()[-2000:]


# ---- defect 5: Content-Length is enforced --------------------------------------------------------

SHAPES = [("list1", "items=1"), ("list3", "items=3"), ("gen", "items=3&gen=1")]


@pytest.mark.parametrize("shape,q", SHAPES)
def test_http_longer_than_content_length_is_cut_and_connection_reused(gyre, shape, q):
    g = gyre(APP, proto="http")
    with Conn(g.port, TIMEOUT) as c:
        c.send(req("/declared?actual=20&declared=10&" + q))
        r = c.read_response()
        assert (r.status, r.body) == (200, declared_body(10))
        c.send(req("/ok"))
        r = c.read_response()
        assert (r.status, r.body) == (200, b"ok"), "the extra bytes were read as the next response"
    g.wait_log("longer than its Content-Length")


@pytest.mark.parametrize("shape,q", SHAPES)
def test_uwsgi_longer_than_content_length_is_cut(gyre, shape, q):
    g = gyre(APP)
    with connect(g.socket, TIMEOUT) as s:
        uwsgi_send(s, "/declared", "actual=20&declared=10&" + q)
        headers, body = split_head(recv_all(s))
    assert headers["content-length"] == "10"
    assert body == declared_body(10)
    g.wait_log("longer than its Content-Length")


@pytest.mark.parametrize("shape,q", SHAPES)
def test_fastcgi_longer_than_content_length_is_cut_and_connection_reused(gyre, shape, q):
    g = gyre(APP, proto="fastcgi")
    with connect(g.socket, TIMEOUT) as s:
        rd = FcgiReader(s)
        s.sendall(fcgi_request("/declared", "actual=20&declared=10&" + q))
        stdout, ended = rd.read_stdout()
        assert ended
        assert split_head(stdout)[1] == declared_body(10)
        s.sendall(fcgi_request("/ok"))
        stdout, ended = rd.read_stdout()
        assert ended and split_head(stdout)[1] == b"ok"
    g.wait_log("longer than its Content-Length")


@pytest.mark.parametrize("shape,q", SHAPES)
def test_http_shorter_than_content_length_closes(gyre, shape, q):
    """A short body on a kept-alive connection: gyre closes it, so the bytes of the next
    response are never taken for the rest of this one."""
    g = gyre(APP, proto="http")
    with Conn(g.port, TIMEOUT) as c:
        # The next request is already pipelined behind the first.
        c.send(req("/declared?actual=5&declared=10&" + q) + req("/ok", headers=[("Connection", "close")]))
        head = c.read_head()
        assert head.h["content-length"] == "10"
        rest = c.read_to_close()
    assert rest == declared_body(5), "more than the short body came: %r" % rest[:200]
    g.wait_log("shorter than its Content-Length")


def test_uwsgi_shorter_than_content_length_closes(gyre):
    g = gyre(APP)
    with connect(g.socket, TIMEOUT) as s:
        uwsgi_send(s, "/declared", "actual=5&declared=10")
        headers, body = split_head(recv_all(s))
    assert (headers["content-length"], body) == ("10", declared_body(5))
    g.wait_log("shorter than its Content-Length")


@pytest.mark.parametrize("shape,q", SHAPES)
def test_fastcgi_shorter_than_content_length_closes_without_end_request(gyre, shape, q):
    """FCGI_KEEP_CONN: a short body must not end with END_REQUEST on a connection nginx reuses;
    the close tells nginx the response is cut."""
    g = gyre(APP, proto="fastcgi")
    with connect(g.socket, TIMEOUT) as s:
        s.sendall(fcgi_request("/declared", "actual=5&declared=10&" + q))
        stdout, ended = FcgiReader(s).read_stdout()
    assert not ended, "END_REQUEST after a body shorter than its Content-Length"
    assert split_head(stdout)[1] == declared_body(5)
    g.wait_log("shorter than its Content-Length")


@pytest.mark.parametrize("proto", ["uwsgi", "fastcgi"])
def test_short_body_behind_nginx_is_cut_for_the_client(stack, proto):
    """Behind nginx (FastCGI with upstream keep-alive): the client sees a cut response, never a
    whole one, and the next request is served normally on whatever nginx keeps."""
    s = stack(APP, proto=proto)
    host, port = s.url[len("http://"):].split(":")
    with Conn(int(port), TIMEOUT) as c:
        c.send(req("/declared?actual=5&declared=10"))
        head = c.read_head()
        assert head.h["content-length"] == "10"
        rest = c.read_to_close()          # nginx closes the client's connection: it is cut
    assert rest == declared_body(5)
    for _ in range(3):
        r, _ = exchange_ok(int(port))
        assert (r.status, r.body) == (200, b"ok")
    s.gyre.wait_log("shorter than its Content-Length")


def exchange_ok(port):
    with Conn(port, TIMEOUT) as c:
        c.send(req("/ok", headers=[("Connection", "close")]))
        return c.read_response(), None


def test_bad_app_content_length_is_a_500(gyre):
    g = gyre(APP, proto="http")
    with Conn(g.port, TIMEOUT) as c:
        c.send(req("/bad_length?value=ten"))
        r = c.read_response()
        assert r.status == 500
        c.send(req("/ok"))
        assert c.read_response().body == b"ok"
    g.wait_log("Content-Length")


def big_file(tmp_path):
    path = tmp_path / "big.bin"
    size = 64 << 20          # far more than socket buffers hold (TCP: a few MiB each way)
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path), size


def truncate_over(g, path):
    """Truncate the file through the app, on a second connection (a second core)."""
    with connect(g.socket if g.proto != "http" else None, TIMEOUT) if g.proto != "http" \
            else socket.create_connection(("127.0.0.1", g.port), TIMEOUT) as s:
        if g.proto == "http":
            s.sendall(req("/truncate?path=" + path, headers=[("Connection", "close")]))
        elif g.proto == "uwsgi":
            uwsgi_send(s, "/truncate", "path=" + path)
        else:
            s.sendall(fcgi_request("/truncate", "path=" + path, flags=0))
        assert b"truncated" in recv_all(s)


def test_http_file_shrinking_under_sendfile_closes(gyre, tmp_path):
    path, size = big_file(tmp_path)
    g = gyre(APP, "--tornado", "2", proto="http")
    with Conn(g.port, TIMEOUT) as c:
        c.send(req("/big_file?path=" + path) + req("/ok", headers=[("Connection", "close")]))
        head = c.read_head()
        assert head.h["content-length"] == str(size)
        truncate_over(g, path)
        rest = c.read_to_close()
    assert len(rest) < size
    assert b"HTTP/1.1" not in rest, "the next response was sent as the rest of the body"
    g.wait_log("shorter than its Content-Length")


def test_fastcgi_file_shrinking_under_sendfile_closes(gyre, tmp_path):
    path, size = big_file(tmp_path)
    g = gyre(APP, "--tornado", "2", proto="fastcgi")
    with connect(g.socket, TIMEOUT) as s:
        s.sendall(fcgi_request("/big_file", "path=" + path))
        rd = FcgiReader(s)
        rec = rd.read_record()
        assert rec is not None and rec.type == FCGI_STDOUT, rec
        first = rec.content
        truncate_over(g, path)
        stdout, ended = rd.read_stdout()
    assert not ended, "END_REQUEST after a file that shrank under sendfile"
    assert len(split_head(first + stdout)[1]) < size
    g.wait_log("shorter than its Content-Length")


# ---- defect 6: Expect: 100-continue --------------------------------------------------------------

def test_no_100_continue_after_the_response_head(gyre):
    """The app writes its head before reading the body: no 1xx may follow it. The body is still
    readable (the client sends it on its own), and the connection closes after the response,
    as its head announced."""
    g = gyre(APP, proto="http")
    with Conn(g.port, TIMEOUT) as c:
        c.send(req("/respond_then_read", "POST",
                   [("Content-Length", "5"), ("Expect", "100-continue")]))
        head = c.read_head()
        assert head.status == 200
        assert head.h.get("connection") == "close"
        c.send(b"hello")                # as curl does when no 100 comes
        rest = c.read_to_close()
    assert b"100 Continue" not in rest, rest
    assert b"head first;" in rest and b"read 5" in rest


# ---- defect 8: request log lines escape the client's bytes ---------------------------------------

FORGED = "/x\n[pid: 1|app: 0|req: 1/1] forged\x1b[31mred\x1b[0m\"q\"\\"


@pytest.mark.parametrize("fmt", [None, "%(addr) %(method) %(uri) %(status)"])
def test_log_line_escapes_control_bytes(gyre, fmt):
    args = ["--log-format", fmt] if fmt else []
    g = gyre(APP, *args)
    with connect(g.socket, TIMEOUT) as s:
        uwsgi_send(s, "/ok", uri=FORGED, method="GET\x1b]0;title\x07",
                   extra={"REMOTE_ADDR": "1.2.3.4\n[pid: 2] forged-addr"})
        assert recv_all(s).endswith(b"ok")
    g.wait_log("forged\\x1b[31m")
    with open(g.log_path, "rb") as f:
        log = f.read()
    lines = [line for line in log.split(b"\n") if b"forged" in line]
    assert len(lines) == 1, lines
    line = lines[0]
    assert b"\x1b" not in log and b"\x07" not in log
    assert b"/x\\x0a[pid: 1|app: 0|req: 1/1] forged\\x1b[31mred\\x1b[0m\\x22q\\x22\\x5c" in line
    assert b"1.2.3.4\\x0a[pid: 2] forged-addr" in line
    assert b"GET\\x1b]0;title\\x07" in line
    if fmt is None:
        assert re.match(rb"\[pid: \d+\|core: 0\|req: 1\] 1\.2\.3\.4", line), line


def test_server_messages_escape_control_bytes(gyre):
    """Not only the request line: every server message that quotes a client's bytes (here the
    line SIGINT writes for each request it cuts) has its control bytes escaped by log_msg."""
    g = gyre("engine_app.py", "--tornado", "2")
    with connect(g.socket, TIMEOUT) as s:
        uwsgi_send(s, "/suspend", "s=30", uri=FORGED)
        # A second request on the other core answers once the first is parked on its timer.
        with connect(g.socket, TIMEOUT) as s2:
            uwsgi_send(s2, "/peak")
            assert b"200" in recv_all(s2).split(b"\r\n", 1)[0]
        wait_for(lambda: "GET /peak" in g.log(), what="the second request's log line")
        g.proc.send_signal(2)
        g.proc.wait(TIMEOUT)
    with open(g.log_path, "rb") as f:
        log = f.read()
    assert b"SIGINT: cutting GET /x\\x0a[pid: 1|app: 0|req: 1/1] forged\\x1b[31m" in log, log
    assert b"\x1b" not in log
    assert not any(line.startswith(b"[pid: 1|app: 0") for line in log.split(b"\n")), log
