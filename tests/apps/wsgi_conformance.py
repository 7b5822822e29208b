"""PEP 3333 conformance app for tests/integration/test_wsgi.py.

One app, routed on PATH_INFO. Routes that leave a trace after the response (close() markers)
take the marker file's path in the query string: ?marker=/abs/path.
"""
import hashlib
import io
import json
import os
import random
import sys
from urllib.parse import parse_qs

import gyre

def qs(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def respond_json(start_response, obj, status="200 OK"):
    body = json.dumps(obj, sort_keys=True).encode("ascii")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def write_marker(path, text):
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)


def pattern(n, seed):
    """n deterministic pseudo-random bytes (the tests compute the same)."""
    return random.Random(seed).randbytes(n)


# ---- the environ ---------------------------------------------------------------------------------

def env_report(environ, start_response):
    out = {"types": {}, "str": {}}
    for k, v in environ.items():
        out["types"][k] = type(v).__name__
        if isinstance(v, str):
            out["str"][k] = v
    version = environ.get("wsgi.version")
    out["version"] = list(version) if isinstance(version, tuple) else repr(version)
    for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        out[k] = environ.get(k)
    inp, err = environ.get("wsgi.input"), environ.get("wsgi.errors")
    out["input_api"] = {m: callable(getattr(inp, m, None))
                        for m in ("read", "readline", "readlines", "__iter__")}
    out["errors_api"] = {m: callable(getattr(err, m, None))
                         for m in ("write", "writelines", "flush")}
    out["file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
    return respond_json(start_response, out)


# ---- wsgi.input ---------------------------------------------------------------------------------

def input_modes(environ, start_response):
    q = qs(environ)
    mode = q.get("mode", "read")
    n = int(q.get("n", "7"))
    inp = environ["wsgi.input"]
    pieces = []
    if mode == "read":
        pieces.append(inp.read())
        pieces.append(inp.read())          # at the end: b''
    elif mode == "readn":
        while True:
            chunk = inp.read(n)
            pieces.append(chunk)
            if not chunk:
                break
    elif mode == "readline":
        while True:
            line = inp.readline()
            pieces.append(line)
            if not line:
                break
    elif mode == "readlinen":
        while True:
            line = inp.readline(n)
            pieces.append(line)
            if not line:
                break
    elif mode == "readlines":
        pieces = inp.readlines()
        pieces.append(inp.read())
    elif mode == "readlineshint":
        pieces = inp.readlines(n)
        pieces.append(b"|")
        pieces.append(inp.read())
    elif mode == "iter":
        pieces = [line for line in inp]
    elif mode == "past":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        pieces.append(inp.read(length))
        pieces.append(inp.read(100))
        pieces.append(inp.read())
        pieces.append(inp.readline())
        pieces.append(inp.read(1))
    elif mode == "mixed":
        pieces.append(inp.readline())
        pieces.append(inp.read(3))
        pieces.append(inp.readline(2))
        pieces.append(inp.read())
    else:
        raise ValueError("unknown mode " + mode)
    return respond_json(start_response, {"pieces": [p.decode("latin-1") for p in pieces]})


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("X-Body-Sha256", hashlib.sha256(body).hexdigest()),
                              ("X-Body-Length", str(len(body)))])
    return [body]


def hash_body(environ, start_response):
    h = hashlib.sha256()
    total = 0
    inp = environ["wsgi.input"]
    while True:
        chunk = inp.read(65536)
        if not chunk:
            break
        h.update(chunk)
        total += len(chunk)
    return respond_json(start_response, {"sha256": h.hexdigest(), "length": total})


# ---- responses ----------------------------------------------------------------------------------

def big(environ, start_response):
    q = qs(environ)
    size, seed = int(q["size"]), int(q.get("seed", "1"))
    data = pattern(size, seed)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def gen():
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]
    return gen()


def generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b""
        for i in range(50):
            if i % 10 == 0:
                gyre.sleep(0)       # let the loop run between items
            yield b"line %03d\n" % i
    return gen()


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"one-")
    write(b"two-")
    return [b"three", b"-four"]


def errors_stream(environ, start_response):
    token = qs(environ)["token"]
    err = environ["wsgi.errors"]
    err.write("wsgi.errors says %s\n" % token)
    err.writelines(["writelines %s a\n" % token, "writelines %s b\n" % token])
    err.flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged"]


class MarkedIterable:
    """An iterable response whose close() leaves a marker file saying how far it got."""

    def __init__(self, marker, chunks, chunk_size=65536, fail_at=None):
        self.marker, self.chunks, self.fail_at = marker, chunks, fail_at
        self.chunk = b"x" * chunk_size
        self.produced = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.fail_at is not None and self.produced == self.fail_at:
            raise RuntimeError("iterator failure %d" % self.produced)
        if self.produced >= self.chunks:
            raise StopIteration
        self.produced += 1
        return self.chunk

    def close(self):
        write_marker(self.marker, "closed after %d" % self.produced)


def closing(environ, start_response):
    q = qs(environ)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    fail_at = int(q["fail_at"]) if "fail_at" in q else None
    return MarkedIterable(q["marker"], int(q.get("chunks", "4")),
                          int(q.get("chunk_size", "65536")), fail_at)


def file_wrapper(environ, start_response):
    q = qs(environ)
    wrapper = environ["wsgi.file_wrapper"]
    kind = q.get("kind", "file")
    if kind == "file":
        f = open(q["path"], "rb")
        if "seek" in q:
            f.seek(int(q["seek"]))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return wrapper(f, 8192)
    # A file-like object without a file descriptor: the server has to iterate it.
    data = pattern(int(q["size"]), int(q.get("seed", "1")))

    class Tracked(io.BytesIO):
        def close(self):
            write_marker(q.get("marker"), "closed")
            super().close()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return wrapper(Tracked(data), 1000)


def head(environ, start_response):
    kind = qs(environ).get("kind", "list")
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("X-Head-Kind", kind)])
    if kind == "list":
        return [b"hello world"]
    if kind == "multi":
        return [b"hello ", b"big ", b"world"]
    if kind == "write":
        write(b"written")
        return [b"hello"]
    return iter([b"gen", b"erated"])


def header_value(environ, start_response):
    kind = qs(environ)["kind"]
    value = {"latin1": "caf\xe9 \xff", "crlf": "a\r\nX-Injected: yes", "lf": "a\nX-Injected: yes",
             "nonlatin1": "\u20ac", "badname": "v"}[kind]
    name = "X-Bad:Name" if kind == "badname" else "X-Value"
    start_response("200 OK", [("Content-Type", "text/plain"), (name, value)])
    return [b"header ok"]


# ---- start_response rules -----------------------------------------------------------------------

def exc_replace(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
    try:
        raise ValueError("replaced before sending")
    except ValueError:
        start_response("503 Replaced", [("Content-Type", "text/plain"), ("X-Second", "2")],
                       sys.exc_info())
    return [b"replacement body"]


def exc_after_body(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    write(b"partial")
    try:
        raise ValueError("too late to replace EXC-AFTER-BODY")
    except ValueError:
        start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"should never be sent"]


def exc_after_body_gen(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])

    def gen():
        yield b"partial"
        try:
            raise KeyError("EXC-AFTER-BODY-GEN")
        except KeyError:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"should never be sent"
    return gen()


def twice(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"second start_response accepted"]


# ---- broken apps --------------------------------------------------------------------------------

def fail_raise(environ, start_response):
    raise ZeroDivisionError("APP-RAISED-MARKER")


def fail_raise_after_start(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise LookupError("APP-RAISED-AFTER-START")


def fail_none(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return None


def fail_str_list(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]


def fail_str_gen(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (s for s in ["not bytes"])


def fail_no_start(environ, start_response):
    return [b"body without start_response"]


def fail_no_start_gen(environ, start_response):
    return iter([b"body without start_response"])


def fail_iter_first(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return MarkedIterable(qs(environ).get("marker"), 3, 10, fail_at=0)


def fail_not_iterable(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return 42


def ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


ROUTES = {
    "/env": env_report, "/input": input_modes, "/echo": echo, "/hash": hash_body, "/big": big,
    "/generator": generator, "/write": write_callable, "/errors": errors_stream,
    "/closing": closing, "/file_wrapper": file_wrapper, "/head": head, "/header": header_value,
    "/exc_replace": exc_replace, "/exc_after_body": exc_after_body,
    "/exc_after_body_gen": exc_after_body_gen, "/twice": twice,
    "/fail/raise": fail_raise, "/fail/raise_after_start": fail_raise_after_start,
    "/fail/none": fail_none, "/fail/str_list": fail_str_list, "/fail/str_gen": fail_str_gen,
    "/fail/no_start": fail_no_start, "/fail/no_start_gen": fail_no_start_gen,
    "/fail/iter_first": fail_iter_first, "/fail/not_iterable": fail_not_iterable,
    "/ok": ok,
}


def application(environ, start_response):
    route = ROUTES.get(environ.get("PATH_INFO", ""), env_report)
    return route(environ, start_response)
