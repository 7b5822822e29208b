"""Test app for the cores' hand-over rules (test_engine.py) and signals (test_process.py).

    /cf-wait?key=K      gyre.wait on a concurrent.futures.Future registered under K; answers
                        "got <result>" (or the exception it raised)
    /cf-publish?key=K   resolve K's future from this request's core; answers "published K" and
                        whether this core was killed while it published
    /cf-ready?key=K     "yes" once a /cf-wait has registered K
    /asyncio            what a WSGI app sees of asyncio inside a core: no running loop, and
                        get_event_loop() / IOLoop.current() are still the loop gyre runs
    /asyncio-resumed    the same after the app suspended its core and a timer resumed it
    /sleep?s=S          gyre.sleep(S)
"""
import asyncio
import concurrent.futures
import json
from urllib.parse import parse_qs

import greenlet
import gyre
from tornado.ioloop import IOLoop

IMPORT_IOLOOP = IOLoop.current()
_futures = {}


def _q(environ, name, default=None):
    return parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0]


def _reply(start_response, body):
    body = body.encode() if isinstance(body, str) else body
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _asyncio_facts():
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    loop = asyncio.get_event_loop()
    cur = IOLoop.current()

    async def coro():
        await asyncio.sleep(0.01)
        return asyncio.get_running_loop() is loop

    return {
        "running_loop": None if running is None else repr(running),
        "get_event_loop_is_ioloops": loop is IMPORT_IOLOOP.asyncio_loop,
        "ioloop_current_is_import_ioloop": cur is IMPORT_IOLOOP,
        "loop_is_running": loop.is_running(),
        "coroutine_runs_on_the_loop": gyre.wait(coro()),
        "core": gyre.core_id() is not None,
    }


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    key = _q(environ, "key", "k")
    if path == "/cf-wait":
        fut = _futures[key] = concurrent.futures.Future()
        try:
            return _reply(start_response, "got %s" % gyre.wait(fut, timeout=10))
        except BaseException as e:  # reported to the test, which expects none
            return _reply(start_response, "raised %r" % e)
    if path == "/cf-ready":
        return _reply(start_response, "yes" if key in _futures else "no")
    if path == "/cf-publish":
        killed = False
        try:
            _futures.pop(key).set_result("value-" + key)
        except greenlet.GreenletExit:
            killed = True
            raise
        finally:
            if killed:
                print("core_app: the publisher of %s got GreenletExit" % key, flush=True)
        return _reply(start_response, "published %s" % key)
    if path == "/asyncio":
        return _reply(start_response, json.dumps(_asyncio_facts(), sort_keys=True))
    if path == "/asyncio-resumed":
        me = greenlet.getcurrent()
        IOLoop.current().call_later(0.01, me.switch)
        me.parent.switch()
        return _reply(start_response, json.dumps(_asyncio_facts(), sort_keys=True))
    if path == "/sleep":
        gyre.sleep(float(_q(environ, "s", "0")))
        return _reply(start_response, "slept")
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
