"""The benchmark app: one WSGI callable, served unchanged by gyre and by uWSGI.

    ./gyre --socket S --wsgi-file bench/app.py --tornado 100 --greenlet
    uwsgi --plugins python3,greenlet_python3,tornado_python3 --socket S \
          --wsgi-file bench/app.py --tornado 100 --greenlet

Routes:
    /hello     b"Hello, World!"
    /64k       a 64 KiB body
    /post      reads the whole wsgi.input, answers its length as text
    /suspend   suspends the core 20 ms on an IOLoop timer, exactly as the uWSGI Tornado loop
               engine docs do it (greenlet switch to the loop, a timer switches back)
    /sleep     blocks its thread 20 ms (time.sleep), then a small body: the blocking app of the
               --threads cases (gyre --threads 8 / uwsgi --threads 8, no Tornado)
    /256k      a 256 KiB body: what the slow clients of the --threads slow-client case read
    /cache?n=N N uwsgi.cache_get + N uwsgi.cache_update of 100-byte values over 64 keys (the
               cache group: both servers with --cache2 name=bench,...), then b"cache N\n"
"""

import time


import greenlet
from tornado.ioloop import IOLoop

HELLO = b"Hello, World!"
BODY_64K = b"x" * (64 * 1024)
READ_CHUNK = 64 * 1024
SUSPEND_SECONDS = 0.02
SLEEP_SECONDS = 0.02
BODY_256K = b"y" * (256 * 1024)
CACHE_KEYS = ["key%d" % i for i in range(64)]
CACHE_VALUE = b"v" * 100


def _reply(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def hello(environ, start_response):
    return _reply(start_response, HELLO)


def body_64k(environ, start_response):
    return _reply(start_response, BODY_64K)


def post(environ, start_response):
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _reply(start_response, b"bad Content-Length\n", "400 Bad Request")
    stream = environ["wsgi.input"]
    total = 0
    while remaining > 0:
        chunk = stream.read(min(remaining, READ_CHUNK))
        if not chunk:  # the client went away early
            break
        total += len(chunk)
        remaining -= len(chunk)
    return _reply(start_response, str(total).encode("ascii"))


def suspend(environ, start_response):
    # Exactly the seed's pattern: ask the IOLoop to switch back to this greenlet in 20 ms, then
    # give control to the loop (our parent greenlet).
    me = greenlet.getcurrent()
    IOLoop.current().call_later(SUSPEND_SECONDS, me.switch)
    me.parent.switch()
    return _reply(start_response, b"suspended 20 ms\n")


def sleep(environ, start_response):
    # A blocking call (a database, an HTTP API): holds the OS thread serving the request.
    time.sleep(SLEEP_SECONDS)
    return _reply(start_response, b"slept 20 ms\n")


def body_256k(environ, start_response):
    return _reply(start_response, BODY_256K)


def cache(environ, start_response):
    import uwsgi  # both servers provide it; only this route needs it

    qs = environ.get("QUERY_STRING", "")
    n = int(qs[2:]) if qs.startswith("n=") and qs[2:].isdigit() else 10
    for i in range(n):
        key = CACHE_KEYS[i % len(CACHE_KEYS)]
        uwsgi.cache_get(key, "bench")
        uwsgi.cache_update(key, CACHE_VALUE, 0, "bench")
    return _reply(start_response, b"cache %d\n" % n)


ROUTES = {
    "/hello": hello,
    "/64k": body_64k,
    "/post": post,
    "/suspend": suspend,
    "/sleep": sleep,
    "/256k": body_256k,
    "/cache": cache,
}


def application(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO") or "/")
    if handler is None:
        return _reply(start_response, b"no such route\n", "404 Not Found")
    return handler(environ, start_response)
