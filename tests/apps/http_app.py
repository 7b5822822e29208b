"""App for tests/integration/test_http.py (gyre --http-socket), routed on PATH_INFO.

Every route is small and says what it did in its response, so the tests can check the HTTP
framing gyre puts around it.
"""
import hashlib
import json
from urllib.parse import parse_qs

import gyre


def qs(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def respond_json(start_response, obj, status="200 OK"):
    body = json.dumps(obj, sort_keys=True).encode("ascii")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def env(environ, start_response):
    """The str values of the environ (CGI keys and wsgi.url_scheme)."""
    return respond_json(start_response, {k: v for k, v in environ.items() if isinstance(v, str)})


def echo(environ, start_response):
    """The whole body, read in pieces of ?n= bytes (default: one read())."""
    n = int(qs(environ).get("n", "-1"))
    inp = environ["wsgi.input"]
    if n < 0:
        body = inp.read()
    else:
        parts = []
        while True:
            part = inp.read(n)
            if not part:
                break
            parts.append(part)
        body = b"".join(parts)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("X-Body-Length", str(len(body))),
                              ("X-Body-Sha256", hashlib.sha256(body).hexdigest())])
    return [body]


def read_report(environ, start_response):
    """Read the body, catching what the read raises: says what the app saw."""
    try:
        body = environ["wsgi.input"].read()
        out = {"error": None, "length": len(body)}
    except Exception as e:          # the point: whatever the server raises, report it
        out = {"error": type(e).__name__, "message": str(e)}
    return respond_json(start_response, out)


def lines(environ, start_response):
    """readline() until the end: the lines as latin-1 strs."""
    inp = environ["wsgi.input"]
    got = []
    while True:
        line = inp.readline()
        if not line:
            break
        got.append(line.decode("latin-1"))
    return respond_json(start_response, {"lines": got})


def noread(environ, start_response):
    """Never touches wsgi.input."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"did not read"]


def sleep_then_read(environ, start_response):
    """Waits ?delay= seconds (without blocking the loop) before reading the body."""
    gyre.sleep(float(qs(environ).get("delay", "0.5")))
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def gen(environ, start_response):
    """A generator: the server cannot know the length."""
    count = int(qs(environ).get("count", "5"))
    start_response("200 OK", [("Content-Type", "text/plain")])

    def items():
        for i in range(count):
            yield b"item %d\n" % i
    return items()


def listed(environ, start_response):
    """A list of several bytes objects: the server knows the length."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"one ", b"two ", b"three"]


def status(environ, start_response):
    """?code=204|304|200..., with ?body= bytes returned anyway (an app that should not)."""
    q = qs(environ)
    code = q.get("code", "200")
    reason = {"204": "No Content", "304": "Not Modified"}.get(code, "Whatever")
    start_response("%s %s" % (code, reason), [("X-Status-Route", code)])
    return [q.get("body", "").encode("latin-1")]


def ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


ROUTES = {"/env": env, "/echo": echo, "/read_report": read_report, "/lines": lines,
          "/noread": noread, "/sleep_then_read": sleep_then_read, "/gen": gen, "/list": listed,
          "/status": status, "/ok": ok}


def application(environ, start_response):
    route = ROUTES.get(environ.get("PATH_INFO", ""))
    if route is None:
        if environ.get("PATH_INFO", "").startswith("/env"):
            return env(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such route"]
    return route(environ, start_response)
