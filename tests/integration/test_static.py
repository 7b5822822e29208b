"""Static files served by gyre itself, before the app: --static-map, --static-map2,
--check-static, --static-index, --static-gzip-all, --static-expires-*, --static-skip-ext,
--static-safe, --mimefile; If-Modified-Since (304), Range (206/416), HEAD; traversal refused
(.., %2e%2e, symlinks, NUL); a miss falls through to the app, as in uWSGI.

The basic checks run against gyre and Debian's uWSGI alike (the `kind` parameter): the client
sees the same answer from both. The rest are gyre's own (uWSGI needs --honour-range for ranges,
for instance), and run through every protocol gyre speaks, behind real nginx where it fronts.
"""
import email.utils
import os
import socket
import time
from http.client import HTTPConnection

import pytest
import requests

from conftest import (GYRE, Nginx, NGINX_TEMPLATES, PROTO_FLAG, Session, parse_response,
                      uwsgi_request, wait_for)

KINDS = ("gyre", "uwsgi")
CSS = b"body { color: #123456; }\n"
PNG = bytes(range(256)) * 8  # binary bytes, every value
GZ = b"\x1f\x8b pretend-gzip-bytes"
SECRET = b"TOP SECRET outside the static directory\n"
APP_SRC = '''
def application(environ, start_response):
    body = ("APP " + environ["PATH_INFO"]).encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.fixture
def site(tmp_path):
    """tmp/app.py, tmp/secret.txt, and the tree tmp/static/: a.css (+ a.css.gz), img.png,
    sub/index.html, noindex/ (a directory without index), leak -> ../secret.txt (a symlink out),
    big.bin (3 MiB)."""
    root = tmp_path / "static"
    (root / "sub").mkdir(parents=True)
    (root / "noindex").mkdir()
    (root / "a.css").write_bytes(CSS)
    (root / "a.css.gz").write_bytes(GZ)
    (root / "img.png").write_bytes(PNG)
    (root / "sub" / "index.html").write_bytes(b"<p>index</p>\n")
    (root / "noindex" / "x.txt").write_bytes(b"x\n")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (tmp_path / "secret.txt").write_bytes(SECRET)
    os.symlink(str(tmp_path / "secret.txt"), str(root / "leak"))
    (tmp_path / "app.py").write_text(APP_SRC)
    return tmp_path


def app(site):
    return str(site / "app.py")


def static_dir(site):
    return str(site / "static")


def get(url, **kw):
    return requests.get(url, timeout=10, **kw)


def raw_get(port, path, headers=None):
    """A request with the path sent as it is (no client-side normalisation of '..')."""
    c = HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


# ---- the same answers from gyre and uWSGI --------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_static_map_serves_bytes_and_type(http_server, site, kind):
    s = http_server(kind, app(site), "--static-map", "/static=" + static_dir(site))
    r = get(s.url + "/static/a.css")
    assert r.status_code == 200
    assert r.content == CSS
    assert r.headers["Content-Type"] == "text/css"
    assert r.headers["Content-Length"] == str(len(CSS))
    mtime = os.stat(os.path.join(static_dir(site), "a.css")).st_mtime
    assert email.utils.parsedate_to_datetime(r.headers["Last-Modified"]).timestamp() == int(mtime)
    r = get(s.url + "/static/img.png")
    assert (r.status_code, r.content, r.headers["Content-Type"]) == (200, PNG, "image/png")
    # everything else is the app's
    assert get(s.url + "/other").text == "APP /other"


@pytest.mark.parametrize("kind", KINDS)
def test_if_modified_since_answers_304(http_server, site, kind):
    s = http_server(kind, app(site), "--static-map", "/static=" + static_dir(site))
    lm = get(s.url + "/static/a.css").headers["Last-Modified"]
    r = get(s.url + "/static/a.css", headers={"If-Modified-Since": lm})
    assert r.status_code == 304
    assert r.content == b""
    older = email.utils.formatdate(time.time() - 86400 * 400, usegmt=True)
    os.utime(os.path.join(static_dir(site), "a.css"))  # modified after `older`
    r = get(s.url + "/static/a.css", headers={"If-Modified-Since": older})
    assert (r.status_code, r.content) == (200, CSS)


@pytest.mark.parametrize("kind", KINDS)
def test_traversal_is_refused_and_goes_to_the_app(http_server, site, kind):
    s = http_server(kind, app(site), "--static-map", "/static=" + static_dir(site))
    for path in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/%2E%2E/secret.txt",
                 "/static/leak", "/static/sub/../../secret.txt"):
        status, body = raw_get(s.port, path)
        assert SECRET not in body, path
        # uWSGI resolves the dot segments itself: the app sees /secret.txt
        assert body.startswith(b"APP /"), (path, body)


@pytest.mark.parametrize("kind", KINDS)
def test_misses_fall_through_to_the_app(http_server, site, kind):
    s = http_server(kind, app(site), "--static-map", "/static=" + static_dir(site),
                    "--static-index", "index.html")
    assert get(s.url + "/static/missing.css").text == "APP /static/missing.css"
    # a directory without an index file
    assert get(s.url + "/static/noindex/").text == "APP /static/noindex/"
    # only GET and HEAD are served statically
    r = requests.post(s.url + "/static/a.css", data=b"x", timeout=10)
    assert r.text == "APP /static/a.css"
    # a directory with one
    r = get(s.url + "/static/sub/")
    assert (r.status_code, r.content, r.headers["Content-Type"]) == (200, b"<p>index</p>\n",
                                                                    "text/html")


@pytest.mark.parametrize("kind", KINDS)
def test_static_gzip_all(http_server, site, kind):
    s = http_server(kind, app(site), "--static-map", "/static=" + static_dir(site),
                    "--static-gzip-all")
    r = get(s.url + "/static/a.css", headers={"Accept-Encoding": "gzip"}, stream=True)
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Content-Type"] == "text/css"
    assert r.raw.read(decode_content=False) == GZ
    r = get(s.url + "/static/a.css", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in r.headers
    assert r.content == CSS
    # no FILE.gz: the file itself
    r = get(s.url + "/static/img.png", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in r.headers and r.content == PNG


@pytest.mark.parametrize("kind", KINDS)
def test_static_map2_keeps_the_mountpoint(http_server, site, kind):
    s = http_server(kind, app(site), "--static-map2", "/static=" + str(site))
    r = get(s.url + "/static/a.css")
    assert (r.status_code, r.content) == (200, CSS)
    assert get(s.url + "/secret.txt").text == "APP /secret.txt"


@pytest.mark.parametrize("kind", KINDS)
def test_check_static_and_skip_ext(http_server, site, kind):
    s = http_server(kind, app(site), "--check-static", static_dir(site),
                    "--static-skip-ext", ".png")
    r = get(s.url + "/a.css")
    assert (r.status_code, r.content) == (200, CSS)
    assert get(s.url + "/img.png").text == "APP /img.png"


@pytest.mark.parametrize("kind", KINDS)
def test_static_expires_type(http_server, site, kind):
    s = http_server(kind, app(site), "--static-map", "/static=" + static_dir(site),
                    "--static-expires-type", "text/css=3600")
    r = get(s.url + "/static/a.css")
    expires = email.utils.parsedate_to_datetime(r.headers["Expires"]).timestamp()
    assert abs(expires - (time.time() + 3600)) < 120
    assert "Expires" not in get(s.url + "/static/img.png").headers


@pytest.mark.parametrize("kind", KINDS)
def test_static_expires_uri_mtime(http_server, site, kind):
    s = http_server(kind, app(site), "--static-map", "/static=" + static_dir(site),
                    "--static-expires-uri-mtime", r"\.png$ 600")
    r = get(s.url + "/static/img.png")
    mtime = int(os.stat(os.path.join(static_dir(site), "img.png")).st_mtime)
    assert email.utils.parsedate_to_datetime(r.headers["Expires"]).timestamp() == mtime + 600
    assert "Expires" not in get(s.url + "/static/a.css").headers


@pytest.mark.parametrize("kind", KINDS)
def test_static_map_to_a_file(http_server, site, kind):
    s = http_server(kind, app(site), "--static-map",
                    "/favicon.ico=" + os.path.join(static_dir(site), "img.png"))
    r = get(s.url + "/favicon.ico")
    assert (r.status_code, r.content) == (200, PNG)


# ---- gyre's own ----------------------------------------------------------------------------------

def test_range_206_and_416_and_head(http_server, site):
    s = http_server("gyre", app(site), "--static-map", "/static=" + static_dir(site),
                    "--honour-range", "--offload-threads", "2")
    r = get(s.url + "/static/img.png", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.content == PNG[10:20]
    assert r.headers["Content-Range"] == "bytes 10-19/%d" % len(PNG)
    r = get(s.url + "/static/img.png", headers={"Range": "bytes=-5"})
    assert (r.status_code, r.content) == (206, PNG[-5:])
    r = get(s.url + "/static/img.png", headers={"Range": "bytes=100-"})
    assert (r.status_code, r.content) == (206, PNG[100:])
    r = get(s.url + "/static/img.png", headers={"Range": "bytes=%d-" % len(PNG)})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */%d" % len(PNG)
    # several ranges, or a malformed one: the whole file (allowed by RFC 9110 14.2)
    r = get(s.url + "/static/img.png", headers={"Range": "bytes=0-1,5-6"})
    assert (r.status_code, r.content) == (200, PNG)
    r = requests.head(s.url + "/static/img.png", timeout=10)
    assert (r.status_code, r.content) == (200, b"")
    assert r.headers["Content-Length"] == str(len(PNG))


def test_keep_alive_after_a_static_answer_and_the_log_line(http_server, site):
    s = http_server("gyre", app(site), "--static-map", "/static=" + static_dir(site))
    with requests.Session() as sess:
        a = sess.get(s.url + "/static/a.css", timeout=10)
        b = sess.get(s.url + "/static/img.png", timeout=10)
        c = sess.get(s.url + "/app", timeout=10)
    assert (a.content, b.content, c.text) == (CSS, PNG, "APP /app")
    wait_for(lambda: "GET /static/img.png => generated %d bytes" % len(PNG) in s.log(),
             what="the static request's log line")
    assert "GET /static/a.css => generated %d bytes" % len(CSS) in s.log()


def test_traversal_is_logged_and_nul_refused(gyre, site):
    g = gyre(app(site), "--static-map", "/static=" + static_dir(site))
    raw = uwsgi_request(g.socket, {"PATH_INFO": "/static/a.css\0.png", "REQUEST_URI": "/x"})
    status, _, body = parse_response(raw)
    assert body == b"APP /static/a.css\0.png"
    raw = uwsgi_request(g.socket, {"PATH_INFO": "/static/../secret.txt"})
    assert parse_response(raw)[2] == b"APP /static/../secret.txt"
    g.wait_log("security error: %s is not under %s" % (site / "secret.txt", static_dir(site)))


def test_static_safe_allows_a_symlinked_tree(gyre, site):
    g = gyre(app(site), "--static-map", "/static=" + static_dir(site),
             "--static-safe", str(site))
    raw = uwsgi_request(g.socket, {"PATH_INFO": "/static/leak"})
    assert parse_response(raw)[2] == SECRET


def test_mimefile(gyre, site):
    types = site / "mime.types"
    types.write_text("# mine\ntext/x-mine css\n")
    g = gyre(app(site), "--static-map", "/static=" + static_dir(site), "--mimefile", str(types))
    status, headers, body = parse_response(uwsgi_request(g.socket,
                                                         {"PATH_INFO": "/static/a.css"}))
    assert (status, headers["content-type"], body) == (200, "text/x-mine", CSS)


@pytest.mark.parametrize("proto", ("uwsgi", "fastcgi"))
def test_through_nginx_every_protocol(tmp_path, site, proto):
    """Behind nginx (uwsgi_pass, fastcgi_pass): the big file whole (sendfile through a socket
    that fills up), a range, a 304, a miss to the app."""
    sock = str(tmp_path / "g.sock")
    g = Session(str(tmp_path), [GYRE, PROTO_FLAG[proto], sock, "--wsgi-file", app(site),
                                "--static-map", "/static=" + static_dir(site)])
    n = None
    try:
        wait_for(lambda: os.path.exists(sock) and "gyre" in g.log(), 20, what="gyre")
        n = Nginx(str(tmp_path), sock, template=NGINX_TEMPLATES[proto])
        big = (site / "static" / "big.bin").read_bytes()
        r = get(n.url + "/static/big.bin")
        assert r.status_code == 200 and r.content == big
        r = get(n.url + "/static/big.bin", headers={"Range": "bytes=1000-1999"})
        assert (r.status_code, r.content) == (206, big[1000:2000])
        lm = get(n.url + "/static/a.css").headers["Last-Modified"]
        r = get(n.url + "/static/a.css", headers={"If-Modified-Since": lm})
        assert r.status_code == 304
        assert get(n.url + "/static/nope").text == "APP /static/nope"
    finally:
        if n:
            n.stop()
        g.stop()


def test_http_socket_direct_big_file_slow_reader(http_server, site):
    """A client that reads only later: whatever the socket buffers do not take, the core waits
    to send (sendfile resumes where it stopped), and other requests are served meanwhile."""
    s = http_server("gyre", app(site), "--static-map", "/static=" + static_dir(site),
                    "--tornado", "4")
    big = (site / "static" / "big.bin").read_bytes()
    slow = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    slow.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    # meanwhile the app answers others
    assert get(s.url + "/other").text == "APP /other"
    data = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        chunk = slow.recv(65536)
        if not chunk:
            break
        data += chunk
        if data.count(b"\r\n\r\n") and len(data.partition(b"\r\n\r\n")[2]) >= len(big):
            break
    slow.close()
    body = data.partition(b"\r\n\r\n")[2]
    assert len(body) == len(big)
    assert body == big


def test_bad_static_options_are_refused(tmp_path):
    for args, what in ((["--static-map", "/static"], "expected MOUNTPOINT=DIR"),
                       (["--static-map", "static=/x"], "must start with '/'"),
                       (["--static-expires-uri", "([ 10"], "not a valid"),
                       (["--static-expires-type", "text/css"], "expected TYPE=SECONDS"),
                       (["--static-index", "a/b.html"], "without '/'")):
        p = Session(str(tmp_path), [GYRE, "--http-socket", ":1", "--wsgi-file", "x.py", *args])
        assert p.wait_exit() == 2
        assert what in p.log(), (args, p.log())
        p.stop()


def test_harakiri_cancels_a_static_answer_to_a_client_that_stopped_reading(http_server, site):
    """--harakiri on a static file: the core waiting on a client that reads nothing is cancelled
    like an app's request, logged, and the worker serves on."""
    big = site / "static" / "huge.bin"
    with open(big, "wb") as f:
        f.truncate(32 << 20)  # more than the socket buffers of both ends take
    s = http_server("gyre", app(site), "--static-map", "/static=" + static_dir(site),
                    "--harakiri", "1", "--tornado", "2")
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.settimeout(10)
    stuck.connect(("127.0.0.1", s.port))
    try:
        stuck.sendall(b"GET /static/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: "static file cancelled by harakiri" in s.log(), 30,
                 what="the harakiri line")
        wait_for(lambda: "GET /static/huge.bin => generated" in s.log(), 10,
                 what="the request's log line")
        assert get(s.url + "/static/a.css").content == CSS
        assert get(s.url + "/after").text == "APP /after"
        assert "Traceback" not in s.log()
    finally:
        stuck.close()


def test_check_static_docroot_and_gzip_rules(gyre, site):
    """--check-static-docroot: the front end's DOCUMENT_ROOT + PATH_INFO; --static-gzip-ext and
    --static-gzip (a regexp) pick which files get their .gz looked for."""
    g = gyre(app(site), "--check-static-docroot", "--static-gzip-ext", ".js",
             "--static-gzip", r"/a\.css$")
    def ask(path, **extra):
        v = {"PATH_INFO": path, "DOCUMENT_ROOT": static_dir(site), **extra}
        return parse_response(uwsgi_request(g.socket, v))
    status, headers, body = ask("/a.css", HTTP_ACCEPT_ENCODING="gzip, br")
    assert (status, headers.get("content-encoding"), body) == (200, "gzip", GZ)
    assert ask("/img.png")[2] == PNG
    # no DOCUMENT_ROOT: the app
    raw = uwsgi_request(g.socket, {"PATH_INFO": "/a.css"})
    assert parse_response(raw)[2] == b"APP /a.css"


def test_static_map_to_a_file_with_its_gzip(http_server, site):
    s = http_server("gyre", app(site), "--static-gzip-all", "--static-map",
                    "/style.css=" + os.path.join(static_dir(site), "a.css"))
    r = get(s.url + "/style.css", headers={"Accept-Encoding": "gzip"}, stream=True)
    assert (r.headers.get("Content-Encoding"), r.raw.read(decode_content=False)) == ("gzip", GZ)
    assert get(s.url + "/style.css", headers={"Accept-Encoding": "identity"}).content == CSS
    assert "security error" not in s.log()


def test_concurrent_static_and_app_requests(http_server, site):
    """Static answers and app requests side by side on 8 cores: every byte where it belongs."""
    import concurrent.futures
    s = http_server("gyre", app(site), "--static-map", "/static=" + static_dir(site),
                    "--tornado", "8")
    big = (site / "static" / "big.bin").read_bytes()

    def one(i):
        if i % 2:
            return get(s.url + "/static/big.bin").content == big
        return get(s.url + "/app%d" % i).text == "APP /app%d" % i
    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        results = list(ex.map(one, range(60)))
    assert results == [True] * 60


@pytest.mark.parametrize("kind", KINDS)
def test_same_mountpoint_twice_falls_back_in_order(http_server, site, kind):
    other = site / "other"
    other.mkdir()
    (other / "only-here.txt").write_bytes(b"second tree\n")
    (other / "a.css").write_bytes(b"shadowed\n")
    s = http_server(kind, app(site), "--static-map", "/static=" + static_dir(site),
                    "--static-map", "/static=" + str(other))
    assert get(s.url + "/static/only-here.txt").content == b"second tree\n"
    assert get(s.url + "/static/a.css").content == CSS
