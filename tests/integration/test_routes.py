"""uWSGI's internal routing (--route, --route-uri, --route-host, --route-qs, --route-run) and
--add-header, on gyre and on Debian's uWSGI with the same command line (uWSGI needs its
router_redirect and router_rewrite plugins; gyre accepts and ignores --plugin)."""
import socket

import pytest
import requests

from conftest import wait_for
from test_pyenv import SERVERS, server, write_app  # noqa: F401  (server is a fixture)

ECHO_APP = """
import json
def application(env, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("X-App", "1")])
    keys = ("PATH_INFO", "QUERY_STRING", "REQUEST_URI", "MYVAR", "SCRIPT_NAME")
    return [json.dumps({k: env.get(k) for k in keys}).encode()]
"""

PLUGINS = ["--plugin", "router_redirect,router_rewrite"]


@pytest.fixture
def routed(server, tmp_path):
    app = write_app(tmp_path / "echo.py", ECHO_APP)

    def start(kind, *args):
        return server(kind, *PLUGINS, "--wsgi-file", app, *args)
    return start


@pytest.mark.parametrize("kind", SERVERS)
def test_redirect_with_capture_groups(routed, kind):
    s = routed(kind, "--route", "^/old/(.*)$ redirect:/new/$1",
               "--route", "^/gone/(.*)$ redirect-301:https://example.org/$1")
    r = s.get("/old/a/b?q=1")
    assert r.status_code == 302 and r.headers["Location"] == "/new/a/b"
    r = s.get("/gone/x")
    assert r.status_code == 301 and r.headers["Location"] == "https://example.org/x"
    assert s.get("/other").status_code == 200


@pytest.mark.parametrize("kind", SERVERS)
def test_rewrite_changes_path_info_and_goes_on(routed, kind):
    s = routed(kind, "--route", "^/rw/(.*)$ rewrite:/x/$1",
               "--route", "^/x/ addheader:X-After: yes",
               "--route", "^/last/(.*)$ rewrite-last:/l/$1",
               "--route", "^/l/ addheader:X-After: yes",
               "--route", "^/qs/(.*)$ rewrite:/q/$1?added=1")
    r = s.get("/rw/b?z=2")
    got = r.json()
    assert (got["PATH_INFO"], got["QUERY_STRING"], got["REQUEST_URI"]) == ("/x/b", "z=2",
                                                                           "/rw/b?z=2")
    assert r.headers.get("X-After") == "yes"
    r = s.get("/last/q")
    assert r.json()["PATH_INFO"] == "/l/q"
    assert "X-After" not in r.headers  # rewrite-last: no rule after it ran
    got = s.get("/qs/v?old=2").json()
    assert (got["PATH_INFO"], got["QUERY_STRING"]) == ("/q/v", "added=1&old=2")


@pytest.mark.parametrize("kind", SERVERS)
def test_return_and_break(routed, kind):
    s = routed(kind, "--route", "^/ret$ return:403", "--route", "^/brk$ break:404 Nope")
    r = s.get("/ret")
    assert r.status_code == 403 and r.text == "Forbidden"
    r = s.get("/brk")
    assert r.status_code == 404 and r.reason == "Nope" and r.text == ""
    assert r.headers.get("Connection") == "close"


@pytest.mark.parametrize("kind", SERVERS)
def test_headers_and_vars(routed, kind):
    s = routed(kind, "--route", "^/hdr addheader:X-Foo: bar ${REQUEST_URI}",
               "--route", "^/hdr delheader:X-App",
               "--route", "^/env/(.*) addvar:MYVAR=v$1",
               "--add-header", "X-Every: yes")
    r = s.get("/hdr?a=1")
    assert r.headers["X-Foo"] == "bar /hdr?a=1"
    assert "X-App" not in r.headers and r.headers["X-Every"] == "yes"
    r = s.get("/env/7")
    assert r.json()["MYVAR"] == "v7" and r.headers["X-App"] == "1"


@pytest.mark.parametrize("kind", SERVERS)
def test_add_header_on_every_response(routed, kind):
    s = routed(kind, "--add-header", "X-Every: yes", "--add-header", "X-Frame-Options: DENY",
               "--route", "^/old redirect:/new")
    for path in ("/", "/old"):
        r = s.get(path)
        assert r.headers["X-Every"] == "yes" and r.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("kind", SERVERS)
def test_route_subjects(routed, kind):
    s = routed(kind, "--route-host", "^www\\.example\\.org$ redirect:https://example.org/",
               "--route-uri", "\\?debug=1 return:403",
               "--route-qs", "^lang=(\\w+) addvar:MYVAR=lang-$1")
    r = s.get("/p", headers={"Host": "www.example.org"})
    assert r.status_code == 302 and r.headers["Location"] == "https://example.org/"
    assert s.get("/p", headers={"Host": "example.org"}).status_code == 200
    assert s.get("/p?debug=1").status_code == 403
    assert s.get("/p?lang=fr").json()["MYVAR"] == "lang-fr"


def test_continue_stops_routing_before_later_rules(routed):
    s = routed("gyre", "--route", "^/api continue:", "--route", ". return:403")
    assert s.get("/api/x").status_code == 200
    assert s.get("/web").status_code == 403


def test_route_run_always_runs(routed):
    s = routed("gyre", "--route-run", "addheader:X-Run: 1")
    assert s.get("/anything").headers["X-Run"] == "1"


def test_bare_break_closes_without_a_response(routed):
    s = routed("gyre", "--route", "^/drop break:")
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(b"GET /drop HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.recv(1024) == b""
    c.close()
    assert s.get("/fine").status_code == 200


def test_client_bytes_cannot_split_a_header(routed):
    """$1 is the client's: a line break in it must not become a header of its own."""
    s = routed("gyre", "--route", "^/h/([\\s\\S]*) addheader:X-Echo: $1",
               "--route", "^/r/([\\s\\S]*) redirect:/to/$1")
    r = s.get("/h/a%0D%0AX-Evil:%201")
    assert r.status_code == 200 and "X-Evil" not in r.headers and "X-Echo" not in r.headers
    s.wait_log("addheader would hold a line break")
    r = s.get("/r/a%0D%0AX-Evil:%201")
    assert r.status_code == 400 and "X-Evil" not in r.headers


def test_unsupported_actions_are_named_in_one_warning(routed):
    """Once, by the process that read the configuration: not once per worker."""
    s = routed("gyre", "--route", "^/c cache:key=x", "--route", "^/u uwsgi:127.0.0.1:3031,0,0",
               "--route", "^/ok addheader:X-Ok: 1", "--master", "--processes", "3")
    warning = "routing actions gyre does not implement, their rules are ignored: cache, uwsgi"
    s.wait_log(warning)
    assert s.get("/c").status_code == 200
    assert s.get("/ok").headers["X-Ok"] == "1"
    wait_for(lambda: s.log().count("spawned") >= 3 or s.log().count("core on") >= 3,
             what="3 workers up")
    assert s.log().count(warning) == 1, s.log()


@pytest.mark.parametrize("kind", SERVERS)
def test_donotlog_drops_the_request_line(routed, kind):
    """uWSGI's donotlog: (health checks in real configs): that request is not logged, the
    others are."""
    s = routed(kind, "--route", "^/health donotlog:")
    assert s.get("/health").status_code == 200
    assert s.get("/seen").status_code == 200
    s.wait_log("/seen")
    assert "GET /health" not in s.log()  # (uWSGI prints its routing table: "^/health")


@pytest.mark.parametrize("spec, what", [
    ("^/(broken return:403", "bad regex"),
    ("^/x return:abc", "needs a status code"),
    ("^/x addheader:NoColon", "addheader needs"),
])
def test_bad_route_stops_start_up_with_one_line(server, tmp_path, spec, what):
    app = write_app(tmp_path / "echo.py", ECHO_APP)
    s = server("gyre", "--wsgi-file", app, "--route", spec, wait=False)
    wait_for(lambda: s.proc.poll() is not None, timeout=20, what="gyre to exit")
    assert s.proc.returncode != 0
    assert what in s.log() and "Traceback" not in s.log()


@pytest.mark.parametrize("kind", SERVERS)
def test_route_if_forces_https_as_real_configs_do(routed, kind):
    """The common uwsgi.ini form: redirect when the front end says the request was plain
    http (X-Forwarded-Proto), keep the URI."""
    s = routed(kind, "--route-if",
               "equal:${HTTP_X_FORWARDED_PROTO};http redirect-301:https://${HTTP_HOST}${REQUEST_URI}",
               "--route-if-not", "empty:${HTTP_X_TAG} addheader:X-Tagged: ${HTTP_X_TAG}",
               "--route-if", "startswith:${PATH_INFO};/adm addvar:MYVAR=admin")
    r = s.get("/a/b?c=1", headers={"X-Forwarded-Proto": "http", "Host": "example.org"})
    assert r.status_code == 301 and r.headers["Location"] == "https://example.org/a/b?c=1"
    r = s.get("/a/b?c=1", headers={"X-Forwarded-Proto": "https"})
    assert r.status_code == 200 and "X-Tagged" not in r.headers
    assert s.get("/x", headers={"X-Tag": "t1"}).headers["X-Tagged"] == "t1"
    assert s.get("/admin").json()["MYVAR"] == "admin"


@pytest.mark.parametrize("kind", SERVERS)
def test_route_if_regexp_captures(routed, kind):
    s = routed(kind, "--route-if", "regexp:${PATH_INFO};^/user/(\\d+)$ addvar:MYVAR=id-$1")
    assert s.get("/user/42").json()["MYVAR"] == "id-42"
    assert s.get("/user/x").json()["MYVAR"] is None


@pytest.mark.parametrize("proto", ["uwsgi", "fastcgi"])
def test_routes_behind_nginx(stack, tmp_path, proto):
    """The answers of the routing rules in the front end's protocol: a CGI Status for
    FastCGI, a status line for uwsgi; nginx passes them on."""
    app = write_app(tmp_path / "echo.py", ECHO_APP)
    s = stack(app, "--route", "^/old/(.*)$ redirect:/new/$1", "--route", "^/deny return:403",
              "--route", "^/rw/(.*)$ rewrite:/x/$1", "--add-header", "X-Every: yes",
              "--limit-post", "10", proto=proto)
    r = requests.get(s.url + "/old/a", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"].endswith("/new/a")
    assert r.headers["X-Every"] == "yes"
    r = requests.get(s.url + "/deny", timeout=10)
    assert r.status_code == 403 and r.text == "Forbidden"
    assert requests.get(s.url + "/rw/b", timeout=10).json()["PATH_INFO"] == "/x/b"
    assert requests.post(s.url + "/p", data=b"x" * 11, timeout=10).status_code == 413
    assert requests.get(s.url + "/ok", timeout=10).json()["PATH_INFO"] == "/ok"
