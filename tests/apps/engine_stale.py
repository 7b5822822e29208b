"""Test app for test_engine.py: stale handles from a finished request must not reach the next one.

    /double-switch   suspend seed-style with two timers that switch back (0.1 s and 0.4 s):
                     the first resumes the request, the second fires after it has ended
    /keep-write      answer, keeping the write() callable; a timer calls it 0.2 s later
    /slow            start_response, gyre.sleep(0.6), then the body b"slow body"
    /stale           what the stale write() call did
    /hello           a normal request
"""
import greenlet
import gyre
from tornado.ioloop import IOLoop

STALE = []


def _reply(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def double_switch(environ, start_response):
    me = greenlet.getcurrent()
    loop = IOLoop.current()
    loop.call_later(0.1, me.switch)
    loop.call_later(0.4, me.switch)  # a forgotten "timeout" timer
    me.parent.switch()
    return _reply(start_response, b"resumed once")


def keep_write(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1")])

    def later():
        try:
            write(b"LEAKED-FROM-AN-ENDED-REQUEST")
            STALE.append("stale write returned")
        except Exception as e:
            STALE.append("stale write raised %s" % type(e).__name__)
    IOLoop.current().call_later(0.2, later)
    return [b"k"]


def slow(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    gyre.sleep(0.6)
    return [b"slow body"]


def application(environ, start_response):
    path = environ.get("PATH_INFO")
    if path == "/double-switch":
        return double_switch(environ, start_response)
    if path == "/keep-write":
        return keep_write(environ, start_response)
    if path == "/slow":
        return slow(environ, start_response)
    if path == "/stale":
        return _reply(start_response, ";".join(STALE).encode())
    return _reply(start_response, b"hello")
