"""The uWSGI Tornado loop engine's AsyncHTTPClient example, written for Tornado 6.

    ./gyre --socket run/app.sock --wsgi-file examples/tornado_fetch.py --tornado 100 --greenlet

    /          fetch BACKEND_URL the way the docs do it (greenlet switch + a done callback)
    /wait      the same with gyre.wait(future), in one line

BACKEND_URL comes from the WSGI environ (e.g. `--env BACKEND_URL=...` or an nginx
`uwsgi_param BACKEND_URL ...;`), else from the process environment, else
http://127.0.0.1:9191/services. `python3 examples/tornado_fetch.py [PORT]` runs a stand-in
backend that answers on that URL.

Why the docs' version hangs on Tornado 6
----------------------------------------
The docs call

    http_client.fetch("http://localhost:9191/services", functools.partial(handle_request, me))
    me.parent.switch()

Tornado 6 removed fetch()'s callback argument: the signature is now
fetch(request, raise_error=True, **kwargs) and it returns a Future. The partial lands in
raise_error (merely truthy), nobody ever calls handle_request, and so nothing ever switches back
to the greenlet: the request hangs until nginx times it out (504) and its core is lost for good.
The fix is to hang the switch on the Future that fetch() returns.
"""

import os

import greenlet
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.web import Application, RequestHandler

try:
    import gyre  # built into the gyre server
except ImportError:
    gyre = None

DEFAULT_BACKEND = "http://127.0.0.1:9191/services"

# At most 10 fetches at once by default, the rest queued: let every core have one in flight.
# (The client itself is created inside a request, where the server's IOLoop is current;
# AsyncHTTPClient() keeps one instance per IOLoop. The docs' IOLoop.instance() is an old alias
# of IOLoop.current().)
AsyncHTTPClient.configure(None, max_clients=100)


def backend_url(environ):
    return environ.get("BACKEND_URL") or os.environ.get("BACKEND_URL") or DEFAULT_BACKEND


def fetch_with_greenlet(url):
    """The docs' pattern, made correct for Tornado 6."""
    me = greenlet.getcurrent()
    fut = AsyncHTTPClient().fetch(url)
    # A Future runs its done callbacks from the IOLoop (call_soon), never inline, even when it is
    # already done: the switch back always comes after we have switched away below.
    fut.add_done_callback(lambda f: me.switch())
    me.parent.switch()  # back to the IOLoop until the response (or the error) is in
    return fut.result()  # the HTTPResponse, or raises what fetch() raised


def fetch_with_gyre(url):
    """The same in one line: gyre.wait suspends the core until the Future is done."""
    return gyre.wait(AsyncHTTPClient().fetch(url))


def _reply(start_response, status, body):
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    if path == "/":
        fetch = fetch_with_greenlet
    elif path == "/wait":
        if gyre is None:
            return _reply(start_response, "501 Not Implemented", b"the gyre module is not available in this server\n")
        fetch = fetch_with_gyre
    else:
        return _reply(start_response, "404 Not Found", b"try / or /wait\n")

    url = backend_url(environ)
    try:
        response = fetch(url)
    except (HTTPClientError, OSError) as exc:  # an error status or timeout; refused, reset, ...
        return _reply(start_response, "502 Bad Gateway", ("backend %s: %s\n" % (url, exc)).encode())
    return _reply(start_response, "200 OK", response.body)


class _Services(RequestHandler):
    def get(self):
        self.write("services: cache, rpc, metrics\n")


if __name__ == "__main__":
    # A stand-in backend for trying the example: python3 examples/tornado_fetch.py [PORT]
    import asyncio
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9191

    async def main():
        Application([(r"/services", _Services)]).listen(port, "127.0.0.1")
        print("backend on http://127.0.0.1:%d/services" % port)
        await asyncio.Event().wait()

    asyncio.run(main())
