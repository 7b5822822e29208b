"""Test app for tests/integration/test_fastcgi.py: one app, routed on PATH_INFO.

Every call is announced in gyre's log ("fcgi_app: called PATH"), so that a test can tell whether
the app ran for a request at all. Routes that leave a trace after the response take a marker
file's path in the query string (?marker=/abs/path).

    /             Hello, World!
    /env          JSON of the environ's str values
    /echo         read wsgi.input (?chunk=N bytes at a time, default 8192); JSON: length and
                  sha256 of the body; ?raw=1 answers the body itself
    /early        start_response, write(b"started\\n") at once, then read the body (the client
                  sends the rest of it only after it has seen "started"); the JSON of /echo
    /big?n=N      N random bytes as one item (X-Sha256 header: their sha256)
    /gen?n=N&size=S  N items of S random bytes from a generator (X-Sha256: the whole body's)
    /many?n=N     a list of N items of sizes 1..N (exercises the record splitting of lists)
    /write?n=N&size=S  the same bytes as /gen, through the write() callable
    /slow?n=N&delay=D&marker=PATH  an iterable of N 1000-byte chunks, gyre.sleep(D) between
                  them; its close() writes "closed after K of N" to PATH
    /sleep?s=S[&gen=1]  gyre.sleep(S), then "slept" (a list, or a generator with gen=1)
    /read_fail    read the body; an exception is logged ("fcgi_app: read raised ...") and raised
    /socks        JSON: this process's pid and the inodes of the sockets open in it right now
"""
import hashlib
import json
import os
import sys
from urllib.parse import parse_qs

import gyre


def log(text):
    sys.stderr.write("fcgi_app: %s\n" % text)
    sys.stderr.flush()


def qs(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def write_marker(path, text):
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)


def respond_json(start_response, obj):
    body = json.dumps(obj, sort_keys=True).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def read_body(environ, chunk):
    stream = environ["wsgi.input"]
    h = hashlib.sha256()
    total, reads, parts = 0, 0, []
    while True:
        data = stream.read(chunk)
        if not data:
            break
        reads += 1
        total += len(data)
        h.update(data)
        parts.append(data)
    return b"".join(parts), {"length": total, "sha256": h.hexdigest(), "reads": reads}


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]


def env(environ, start_response):
    return respond_json(start_response, {k: v for k, v in environ.items() if isinstance(v, str)})


def echo(environ, start_response):
    q = qs(environ)
    body, info = read_body(environ, int(q.get("chunk", 8192)))
    if q.get("raw"):
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return respond_json(start_response, info)


def early(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "application/json")])
    write(b"started\n")
    log("early started")
    _, info = read_body(environ, 4096)
    return [json.dumps(info, sort_keys=True).encode("ascii")]


def big(environ, start_response):
    data = os.urandom(int(qs(environ).get("n", 4 << 20)))
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("X-Sha256", hashlib.sha256(data).hexdigest())])
    return [data]


def _chunks(environ):
    q = qs(environ)
    n, size = int(q.get("n", 64)), int(q.get("size", 65536))
    chunks = [os.urandom(size) for _ in range(n)]
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return chunks, h.hexdigest()


def gen(environ, start_response):
    chunks, digest = _chunks(environ)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("X-Sha256", digest)])
    return (c for c in chunks)


def many(environ, start_response):
    n = int(qs(environ).get("n", 500))
    items = [bytes([65 + i % 26]) * (i + 1) for i in range(n)]
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("X-Sha256", hashlib.sha256(b"".join(items)).hexdigest())])
    return items


def write_route(environ, start_response):
    chunks, digest = _chunks(environ)
    w = start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("X-Sha256", digest)])
    for c in chunks:
        w(c)
    return []


class Slow:
    def __init__(self, n, delay, marker):
        self.n, self.delay, self.marker, self.sent = n, delay, marker, 0

    def __iter__(self):
        for i in range(self.n):
            if i:
                gyre.sleep(self.delay)
            self.sent += 1
            yield b"%04d" % i + b"." * 996

    def close(self):
        log("slow closed after %d of %d" % (self.sent, self.n))
        write_marker(self.marker, "closed after %d of %d" % (self.sent, self.n))


def slow(environ, start_response):
    q = qs(environ)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Slow(int(q.get("n", 100)), float(q.get("delay", 0.05)), q.get("marker"))


def sleep(environ, start_response):
    q = qs(environ)
    gyre.sleep(float(q.get("s", 0.3)))
    start_response("200 OK", [("Content-Type", "text/plain")])
    if q.get("gen"):
        return (b for b in [b"sl", b"ept"])
    return [b"slept"]


def read_fail(environ, start_response):
    total = 0
    stream = environ["wsgi.input"]
    log("read_fail reading")
    try:
        while True:
            data = stream.read(4096)
            if not data:
                break
            total += len(data)
    except Exception as e:
        log("read raised %s(%s) after %d bytes" % (type(e).__name__, e, total))
        raise
    return respond_json(start_response, {"length": total})


def socks(environ, start_response):
    inodes = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue  # the directory's own descriptor, already closed
        if target.startswith("socket:["):
            inodes.append(int(target[8:-1]))
    return respond_json(start_response, {"pid": os.getpid(), "inodes": sorted(inodes)})


ROUTES = {"/": hello, "/env": env, "/echo": echo, "/early": early, "/big": big, "/gen": gen,
          "/many": many, "/write": write_route, "/slow": slow, "/sleep": sleep,
          "/read_fail": read_fail, "/socks": socks}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    log("called %s" % path)
    return ROUTES.get(path, hello)(environ, start_response)
