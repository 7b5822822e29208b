"""Test app for test_observe.py: stats, metrics and systemd integration.

    /hello?n=N       200, a body of N bytes (default 5)
    /missing         404
    /raise           the app raises: gyre answers 500 and counts an exception
    /gsleep?s=S      gyre.sleep(S), then 200            -> the core waits on a "timer"
    /suspend?s=S     the seed's way: IOLoop.call_later(S, me.switch); me.parent.switch()
                                                         -> "app-suspended"
    /wait?s=S        gyre.wait(a tornado Future resolved S later) -> "future"
    /body            reads the whole wsgi.input, answers its length -> "fd-read" while it waits
    /pid             pid=<worker pid>
    /abandon         suspends keeping no reference to its greenlet: gyre answers 500 and the
                     greenlet is killed (its frame stack goes back to gyre's pool)
"""
import os
from urllib.parse import parse_qs

import greenlet
import gyre
from tornado.concurrent import Future
from tornado.ioloop import IOLoop


def _q(environ, name, default):
    return parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0]


def _reply(start_response, body, status="200 OK"):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/hello":
        return _reply(start_response, b"x" * int(_q(environ, "n", "5")))
    if path == "/raise":
        raise RuntimeError("obs_app: raised on purpose")
    if path == "/gsleep":
        gyre.sleep(float(_q(environ, "s", "0.2")))
        return _reply(start_response, "slept")
    if path == "/suspend":
        me = greenlet.getcurrent()
        IOLoop.current().call_later(float(_q(environ, "s", "0.2")), me.switch)
        me.parent.switch()
        return _reply(start_response, "resumed")
    if path == "/wait":
        fut = Future()
        IOLoop.current().call_later(float(_q(environ, "s", "0.2")), fut.set_result, "done")
        return _reply(start_response, gyre.wait(fut))
    if path == "/body":
        data = environ["wsgi.input"].read()
        return _reply(start_response, "len=%d" % len(data))
    if path == "/abandon":
        greenlet.getcurrent().parent.switch()
        return _reply(start_response, "resumed?!")
    if path == "/pid":
        return _reply(start_response, "pid=%d" % os.getpid())
    return _reply(start_response, "not found: " + path, "404 Not Found")
