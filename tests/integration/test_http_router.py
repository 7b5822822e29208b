"""uWSGI's HTTP router options on gyre: --http ADDR (gyre's workers serve HTTP/1.1 there
themselves), --http11-socket, --http-keepalive, --http-auto-chunked, --http-timeout,
--http-modifier1 and friends, --https (refused: no TLS), the "=N" shared-socket form (refused),
and --chown-socket on unix sockets.

What a client sees is checked against gyre and Debian's uWSGI alike (the `kind` parameter).
"""
import grp
import os
import pwd
import socket
import time

import pytest
import requests

from conftest import GYRE, UWSGI, Session, wait_for

KINDS = ("gyre", "uwsgi")
APP_SRC = '''
def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        # no Content-Length: the server frames it (chunked on HTTP/1.1)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"part%d;" % i for i in range(5))
    body = ("APP %s %s" % (environ["REQUEST_METHOD"], path)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.fixture
def app(tmp_path):
    p = tmp_path / "router_app.py"
    p.write_text(APP_SRC)
    return str(p)


def read_response(sock, deadline):
    """One response off sock: (head, body, closed): framed by Content-Length, chunked coding, or
    the close. closed: the server closed the connection right after it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "closed before the head: %r" % buf
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}

    def more():
        assert time.monotonic() < deadline, "response not complete in time"
        return sock.recv(65536)
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = more()
            assert chunk, "closed inside the body"
            rest += chunk
        body, rest = rest[:n], rest[n:]
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += more()
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += more()
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                break
    else:
        body = rest
        while True:
            chunk = more()
            if not chunk:
                return lines[0], headers, body, True
            body += chunk
    sock.settimeout(0.5)
    try:
        closed = sock.recv(1) == b""
    except socket.timeout:
        closed = False
    sock.settimeout(10)
    return lines[0], headers, body, closed


def exchange(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        return read_response(s, time.monotonic() + 20)


@pytest.mark.parametrize("kind", KINDS)
def test_http_serves_the_app(http_server, app, kind):
    s = http_server(kind, app)
    r = requests.get(s.url + "/hello?x=1", timeout=10)
    assert (r.status_code, r.text) == (200, "APP GET /hello")
    r = requests.post(s.url + "/form", data=b"a=1", timeout=10)
    assert r.text == "APP POST /form"


@pytest.mark.parametrize("kind", KINDS)
def test_http10_client_gets_the_body_and_the_close(http_server, app, kind):
    s = http_server(kind, app)
    status, headers, body, closed = exchange(s.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert status.split()[1] == "200"
    assert body == b"APP GET /old"
    assert closed
    # streamed without a length: the close ends it, never chunked for HTTP/1.0
    status, headers, body, closed = exchange(s.port, b"GET /stream HTTP/1.0\r\n\r\n")
    assert "transfer-encoding" not in headers
    assert body == b"part0;part1;part2;part3;part4;" and closed


@pytest.mark.parametrize("kind", KINDS)
def test_http_keepalive_and_auto_chunked(http_server, app, kind):
    """--http-keepalive --http-auto-chunked: several HTTP/1.1 requests on one connection, a
    response without Content-Length sent chunked. gyre does both always."""
    s = http_server(kind, app, "--http-keepalive", "--http-auto-chunked")
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        deadline = time.monotonic() + 20
        c.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        _, _, body, closed = read_response(c, deadline)
        assert (body, closed) == (b"APP GET /one", False)
        c.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        _, headers, body, closed = read_response(c, deadline)
        assert headers.get("transfer-encoding") == "chunked"
        assert (body, closed) == (b"part0;part1;part2;part3;part4;", False)
        c.sendall(b"GET /three HTTP/1.1\r\nHost: x\r\n\r\n")
        _, _, body, _ = read_response(c, deadline)
        assert body == b"APP GET /three"


def test_http_keepalive_value_form(http_server, app):
    # `--http-keepalive 1` would make the 1 a config file, in uWSGI ("unable to load
    # configuration from 1") as in gyre: an optional value is attached with `=`.
    s = http_server("gyre", app, "--http-keepalive=1")
    with requests.Session() as sess:
        assert [sess.get(s.url + "/k%d" % i, timeout=10).text for i in range(3)] == \
            ["APP GET /k0", "APP GET /k1", "APP GET /k2"]


@pytest.mark.parametrize("kind", KINDS)
def test_http_on_a_unix_socket(http_server, app, tmp_path, kind):
    path = str(tmp_path / "http.sock")
    s = http_server(kind, app, addr=path)
    wait_for(lambda: os.path.exists(path), 20, what="the unix socket")
    def ask():
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(10)
            c.connect(path)
            c.sendall(b"GET /unix HTTP/1.0\r\n\r\n")
            return read_response(c, time.monotonic() + 20)[2]
    assert ask() == b"APP GET /unix"


def test_http11_socket_and_modifiers(tmp_path, app):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    n = port.getsockname()[1]
    port.close()
    g = Session(str(tmp_path), [GYRE, "--http11-socket", "127.0.0.1:%d" % n, "--wsgi-file", app,
                                "--http-socket-modifier1", "0", "--http-modifier1", "9",
                                "--http-modifier2", "0", "--http-socket-modifier2", "0"])
    try:
        wait_for(lambda: "gyre" in g.log() or not g.alive(), 20, what="gyre")
        def ok():
            try:
                return requests.get("http://127.0.0.1:%d/m" % n, timeout=2).text == "APP GET /m"
            except requests.ConnectionError:
                return False
        wait_for(ok, 20, what="an answer on --http11-socket")
    finally:
        g.stop()


def test_http_timeout_drops_a_silent_client(http_server, app):
    """--http-timeout is gyre's client timeout on its sockets (--socket-timeout): a client that
    sends half a head is dropped after it, not after the default 30 s."""
    s = http_server("gyre", app, "--http-timeout", "1")
    with socket.create_connection(("127.0.0.1", s.port), timeout=20) as c:
        c.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        got = c.recv(4096)
        elapsed = time.monotonic() - started
    assert not got.startswith(b"HTTP/1.1 200")
    assert elapsed < 15


@pytest.mark.parametrize("args,what", [
    (["--http", "=0"], "--shared-socket"),
    (["--https", ":8443,cert.pem,key.pem"], "no TLS"),
    (["--https-socket", ":8443,cert.pem,key.pem"], "no TLS"),
    (["--http-keepalive=x"], "expected a whole number"),
    (["--chown-socket", ":grp"], "USER"),
])
def test_refused_forms(tmp_path, args, what):
    p = Session(str(tmp_path), [GYRE, "--http-socket", ":1", "--wsgi-file", "x.py", *args])
    assert p.wait_exit() == 2
    assert what in p.log()
    p.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_chown_socket(tmp_path, app, kind):
    path = str(tmp_path / "owned.sock")
    user, group = "nobody", grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    binary = [GYRE] if kind == "gyre" else [UWSGI, "--plugin", "python3"]
    p = Session(str(tmp_path), [*binary, "--socket", path, "--wsgi-file", app,
                                "--chown-socket", "%s:%s" % (user, group)])
    try:
        wait_for(lambda: os.path.exists(path), 20, what="the socket")
        def owned():
            st = os.stat(path)
            return (st.st_uid, st.st_gid) == (pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
        wait_for(owned, 20, what="the socket's owner")
    finally:
        p.kill_group()


def test_chown_socket_unknown_user_stops_the_start(tmp_path, app):
    p = Session(str(tmp_path), [GYRE, "--socket", str(tmp_path / "s.sock"), "--wsgi-file", app,
                                "--chown-socket", "no-such-user-here"])
    assert p.wait_exit(20) != 0
    assert "--chown-socket no-such-user-here: no such user" in p.log()
    p.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_http_with_master_and_processes(http_server, app, tmp_path, kind):
    """The most common command line of all: --http :PORT --master --processes N."""
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "f.txt").write_bytes(b"static text\n")
    s = http_server(kind, app, "--master", "--processes", "2",
                    "--static-map", "/s=" + str(tmp_path / "s"))
    def answers():
        try:
            return requests.get(s.url + "/x", timeout=5).text == "APP GET /x"
        except requests.ConnectionError:
            return False
    wait_for(answers, 30, what="an answer")
    # a connection per request: uWSGI's router closes each one after its response
    for i in range(6):
        assert requests.get(s.url + "/p%d" % i, timeout=10).text == "APP GET /p%d" % i
        r = requests.get(s.url + "/s/f.txt", timeout=10)
        assert (r.content, r.headers["Content-Type"]) == (b"static text\n", "text/plain")


@pytest.mark.parametrize("kind", KINDS)
def test_a_typical_ini_runs_unchanged(tmp_path, app, kind):
    """An .ini as deployments write it: --http, the router options, static files, offload."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app.js").write_bytes(b"console.log(1);\n")
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    n = port.getsockname()[1]
    port.close()
    ini = tmp_path / "site.ini"
    ini.write_text("""[uwsgi]
http = 127.0.0.1:%d
wsgi-file = %s
master = true
processes = 1
http-timeout = 300
http-keepalive = true
http-auto-chunked = true
offload-threads = 2
static-map = /assets=%s
static-expires-type = text/javascript=86400
""" % (n, app, tmp_path / "assets"))
    binary = [GYRE] if kind == "gyre" else [UWSGI, "--plugin", "http,python3"]
    p = Session(str(tmp_path), [*binary, "--ini", str(ini)])
    try:
        def js():
            try:
                return requests.get("http://127.0.0.1:%d/assets/app.js" % n, timeout=5)
            except requests.ConnectionError:
                return None
        wait_for(lambda: js() is not None or not p.alive(), 30, what="an answer")
        r = js()
        assert r is not None, p.log()
        assert (r.status_code, r.content) == (200, b"console.log(1);\n")
        assert r.headers["Content-Type"] == "text/javascript"
        assert "Expires" in r.headers
        assert requests.get("http://127.0.0.1:%d/x" % n, timeout=10).text == "APP GET /x"
    finally:
        p.kill_group()
