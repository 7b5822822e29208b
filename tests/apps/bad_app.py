"""Test app for test_uwsgi_badinput.py: what a request core sees when the client misbehaves.

    /             Hello, World! (the "normal request" every test ends with)
    /echo?chunk=N read wsgi.input to the end, N bytes (default 1000) at a time; answer the length
    /stream?n=N   a streaming response of N chunks of 64 KiB (generator with close())
    /write?n=N    the same through the write() callable
    /events       what the routes above recorded (exceptions seen, close() calls)
"""
import sys

EVENTS = []
CHUNK = b"x" * 65536


def _record(what):
    EVENTS.append(what)
    # Also in gyre's log, so that a test can wait for the moment it happened.
    sys.stderr.write("bad_app: %s\n" % what)
    sys.stderr.flush()


def echo(environ, start_response):
    stream = environ["wsgi.input"]
    size = int(environ.get("QUERY_STRING", "").partition("chunk=")[2] or 1000)
    total = 0
    _record("echo reading CONTENT_LENGTH=%s" % environ.get("CONTENT_LENGTH"))
    try:
        while True:
            chunk = stream.read(size)
            if not chunk:
                break
            total += len(chunk)
    except Exception as e:
        _record("echo read raised %s(%s) after %d bytes" % (type(e).__name__, e, total))
        raise
    body = b"read %d" % total
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Stream:
    def __init__(self, n):
        self.n = n
        self.sent = 0

    def __iter__(self):
        for _ in range(self.n):
            self.sent += 1
            yield CHUNK

    def close(self):
        _record("stream closed after %d of %d chunks" % (self.sent, self.n))


def stream(environ, start_response):
    n = int(environ.get("QUERY_STRING", "n=1000").partition("=")[2] or 1000)
    _record("stream starting")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Stream(n)


def write(environ, start_response):
    n = int(environ.get("QUERY_STRING", "n=1000").partition("=")[2] or 1000)
    w = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    _record("write starting")
    sent = 0
    try:
        for _ in range(n):
            w(CHUNK)
            sent += 1
    except Exception as e:
        _record("write raised %s(%s) after %d of %d chunks" % (type(e).__name__, e, sent, n))
        return []
    _record("write finished %d chunks" % n)
    return []


def events(environ, start_response):
    body = "\n".join(EVENTS).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    if path == "/echo":
        return echo(environ, start_response)
    if path == "/stream":
        return stream(environ, start_response)
    if path == "/write":
        return write(environ, start_response)
    if path == "/events":
        return events(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, World!"]
