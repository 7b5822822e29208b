"""The uWSGI Tornado loop engine's example (tornado-loop-engine.rst), kept as the docs write it.

On Tornado 6 fetch() has no callback argument any more: the partial lands in `raise_error`,
handle_request is never called and nothing ever switches back to the greenlet. gyre's sweep
must find that greenlet (only its own frame refers to it), fail the request with a 500 and
free the core. The only changes to the docs' code: the backend URL comes from BACKEND_URL
(--env), the docs' stray one-space indent before `def application` is removed, and the
callable is renamed seed_application so that `/ok` can answer a normal request.
"""
import os

from tornado.httpclient import AsyncHTTPClient
import greenlet
import functools

# this gives us access to the main IOLoop (the same used by uWSGI)
from tornado.ioloop import IOLoop
io_loop = IOLoop.instance()

BACKEND_URL = os.environ.get("BACKEND_URL", "http://localhost:9191/services")


def handle_request(me, response):
    if response.error:
        print("Error:", response.error)
    else:
        me.result = response.body


def seed_application(e, sr):
    me = greenlet.getcurrent()
    http_client = AsyncHTTPClient()
    http_client.fetch(BACKEND_URL, functools.partial(handle_request, me))
    me.parent.switch()
    sr('200 OK', [('Content-Type','text/plain')])
    return me.result


def application(e, sr):
    if e.get("PATH_INFO") == "/ok":
        sr("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    return seed_application(e, sr)
