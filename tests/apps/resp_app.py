"""App for tests/integration/test_response.py: responses that test gyre's response side.

Routed on PATH_INFO; parameters in the query string.
"""
import os
from urllib.parse import parse_qs

# One list shared by every request: /shared returns it, /mutate changes it meanwhile.
ITEM = 65536
SHARED = [bytes([65 + i % 26]) * ITEM for i in range(200)]
SHARED_BYTES = b"".join(SHARED)


def qs(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def plain(start_response, body, status="200 OK", extra=()):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                            *extra])
    return [body]


def shared(environ, start_response):
    """The shared list itself, as the response (its length is 200 * 64 KiB)."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return SHARED


def mutate(environ, start_response):
    """Replace (or, ?how=shrink, empty) the shared list: its old items are freed."""
    how = qs(environ).get("how", "replace")
    if how == "shrink":
        del SHARED[:]
    else:
        SHARED[:] = [b"X" * ITEM for _ in range(200)]
    return plain(start_response, b"mutated")


def declared(environ, start_response):
    """A body of ?actual= bytes under a Content-Length of ?declared=, in ?items= pieces
    (list), or yielded by a generator (?gen=1)."""
    q = qs(environ)
    actual, length = int(q["actual"]), int(q["declared"])
    items = int(q.get("items", "1"))
    body = bytes(97 + i % 26 for i in range(actual))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(length))])
    step = -(-actual // items) if actual else 1
    pieces = [body[i:i + step] for i in range(0, actual, step)] or [b""]
    if q.get("gen"):
        return iter(pieces)
    return pieces


def bad_length(environ, start_response):
    """A Content-Length header that is not a length."""
    start_response("200 OK", [("Content-Length", qs(environ).get("value", "ten"))])
    return [b"0123456789"]


def big_file(environ, start_response):
    """?path= through wsgi.file_wrapper (sendfile)."""
    f = open(qs(environ)["path"], "rb")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f)


def truncate(environ, start_response):
    """Truncate ?path= to ?size= bytes (the file another request is sending)."""
    q = qs(environ)
    os.truncate(q["path"], int(q.get("size", "0")))
    return plain(start_response, b"truncated")


def respond_then_read(environ, start_response):
    """The response head goes out (write()) before the app reads the body."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"head first;")
    try:
        body = environ["wsgi.input"].read()
        tail = b"read %d" % len(body)
    except Exception as e:          # what a read after the head raises, for the test to see
        tail = ("error %s" % type(e).__name__).encode()
    return [tail]


def ok(environ, start_response):
    return plain(start_response, b"ok")


ROUTES = {"/shared": shared, "/mutate": mutate, "/declared": declared,
          "/bad_length": bad_length, "/big_file": big_file, "/truncate": truncate,
          "/respond_then_read": respond_then_read, "/ok": ok}


def application(environ, start_response):
    route = ROUTES.get(environ.get("PATH_INFO", "/"))
    if route is None:
        return plain(start_response, b"not found", "404 Not Found")
    return route(environ, start_response)
