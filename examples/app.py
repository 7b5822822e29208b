"""gyre demo: a small WSGI app whose requests suspend their core on the Tornado IOLoop.

    ./gyre --socket run/app.sock --wsgi-file examples/app.py --tornado 100 --greenlet

Routes:
    /                 this page, with links
    /sleep?s=0.2      suspend the core for s seconds the way the uWSGI Tornado docs do it:
                      a greenlet switch to the loop, and an IOLoop timer that switches back
    /sleep?s=0.2&via=gyre    the same with gyre.sleep(s)
    /wait?s=0.2       gyre.wait() on a coroutine that awaits on the IOLoop and returns a value
    /wait?s=2&timeout=0.5    ... and what a timeout looks like (504)
    /env              the WSGI environ, as text
    /echo             POST a body, get it back (read from wsgi.input)

While one core sleeps the others keep serving: 100 concurrent /sleep?s=1 requests take about
one second in all, not a hundred.
"""

import html
import os
import sys
import time
from urllib.parse import parse_qs

import greenlet
from tornado import gen
from tornado.ioloop import IOLoop

try:
    import gyre  # built into the gyre server; absent under other servers
except ImportError:
    gyre = None

MAX_SLEEP = 60.0
ECHO_CHUNK = 64 * 1024

# How many requests are suspended right now, and the most ever at once: shows that the cores
# really wait side by side.
_sleeping = 0
_peak = 0


def _response(start_response, status, body, ctype="text/plain; charset=utf-8", extra=()):
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
    headers.extend(extra)
    start_response(status, headers)
    return [body]


def _seconds(query, name, default):
    """A number of seconds from the query string, in [0, MAX_SLEEP]; ValueError if not."""
    raw = query.get(name, [default])[0]
    value = float(raw)
    if not 0.0 <= value <= MAX_SLEEP:  # also rejects nan
        raise ValueError(raw)
    return value


def index(environ, start_response):
    links = [
        ("/sleep?s=0.2", "suspend this core 0.2 s on an IOLoop timer (greenlet switch)"),
        ("/sleep?s=0.2&via=gyre", "the same with gyre.sleep()"),
        ("/wait?s=0.2", "gyre.wait() on a coroutine running on the IOLoop"),
        ("/wait?s=2&timeout=0.5", "gyre.wait() with a timeout that expires"),
        ("/env", "the WSGI environ"),
        ("/echo", "echo a POST body: curl --data-binary @file URL/echo"),
    ]
    items = "\n".join(
        '<li><a href="%s">%s</a> &mdash; %s</li>' % (html.escape(u), html.escape(u), html.escape(d))
        for u, d in links
    )
    server = environ.get("SERVER_SOFTWARE", "")
    body = """<!doctype html>
<html><head><meta charset="utf-8"><title>gyre</title></head>
<body>
<h1>Hello from gyre</h1>
<p>This page was served by a WSGI app running in a greenlet core on the Tornado IOLoop
(pid %d, Python %s%s).</p>
<ul>
%s
</ul>
<p>Try <code>seq 100 | xargs -P100 -I{} curl -s -o /dev/null URL/sleep?s=1</code>:
a second or so (plus the time to start 100 curls), not a hundred.</p>
</body></html>
""" % (
        os.getpid(),
        sys.version.split()[0],
        ", " + html.escape(server) if server else "",
        items,
    )
    return _response(start_response, "200 OK", body, "text/html; charset=utf-8")


def sleep(environ, start_response):
    global _sleeping, _peak
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        seconds = _seconds(query, "s", "0.2")
    except ValueError:
        return _response(start_response, "400 Bad Request", "s must be seconds in [0, %g]\n" % MAX_SLEEP)
    via = query.get("via", ["greenlet"])[0]
    if via not in ("greenlet", "gyre"):
        return _response(start_response, "400 Bad Request", "via must be greenlet or gyre\n")
    if via == "gyre" and gyre is None:
        return _response(start_response, "501 Not Implemented", "the gyre module is not available in this server\n")

    _sleeping += 1
    _peak = max(_peak, _sleeping)
    peers = _sleeping - 1
    started = time.monotonic()
    try:
        if via == "gyre":
            gyre.sleep(seconds)
        else:
            # Exactly as in the uWSGI Tornado loop engine docs: ask the IOLoop to switch back to
            # this greenlet in `seconds`, then give control to the loop (our parent greenlet).
            # Other requests run meanwhile; the timer resumes us right here.
            me = greenlet.getcurrent()
            IOLoop.current().call_later(seconds, me.switch)
            me.parent.switch()
    finally:
        _sleeping -= 1
    took = time.monotonic() - started
    return _response(
        start_response,
        "200 OK",
        "slept %.3f s (asked %.3f s, via %s); %d other request(s) were asleep when this one "
        "started; at most %d at once so far\n" % (took, seconds, via, peers, _peak),
    )


async def _slow_answer(seconds):
    # Runs on the IOLoop like any Tornado coroutine, while the WSGI core waits for it.
    await gen.sleep(seconds)
    return 42


def wait(environ, start_response):
    if gyre is None:
        return _response(start_response, "501 Not Implemented", "the gyre module is not available in this server\n")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        seconds = _seconds(query, "s", "0.2")
        timeout = _seconds(query, "timeout", "10")
    except ValueError:
        return _response(
            start_response, "400 Bad Request", "s and timeout must be seconds in [0, %g]\n" % MAX_SLEEP
        )
    started = time.monotonic()
    try:
        answer = gyre.wait(_slow_answer(seconds), timeout=timeout)
    except TimeoutError:  # asyncio.TimeoutError and tornado.util.TimeoutError are this class
        return _response(
            start_response,
            "504 Gateway Timeout",
            "gave up after %.3f s (timeout=%g s, the coroutine needed %g s)\n"
            % (time.monotonic() - started, timeout, seconds),
        )
    return _response(
        start_response,
        "200 OK",
        "the coroutine answered %r after %.3f s\n" % (answer, time.monotonic() - started),
    )


def env(environ, start_response):
    lines = []
    for key in sorted(environ):
        value = environ[key]
        lines.append("%s = %s" % (key, value if isinstance(value, str) else repr(value)))
    return _response(start_response, "200 OK", "\n".join(lines) + "\n")


def echo(environ, start_response):
    if environ.get("REQUEST_METHOD") not in ("POST", "PUT"):
        return _response(
            start_response,
            "405 Method Not Allowed",
            "POST (or PUT) a body to /echo, e.g. curl --data-binary @file URL/echo\n",
            extra=[("Allow", "POST, PUT")],
        )
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _response(start_response, "400 Bad Request", "bad Content-Length\n")
    stream = environ["wsgi.input"]
    chunks = []
    while remaining > 0:
        chunk = stream.read(min(remaining, ECHO_CHUNK))
        if not chunk:  # the client went away early
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    body = b"".join(chunks)
    ctype = environ.get("CONTENT_TYPE") or "application/octet-stream"
    return _response(start_response, "200 OK", body, ctype)


ROUTES = {
    "/": index,
    "/sleep": sleep,
    "/wait": wait,
    "/env": env,
    "/echo": echo,
}


def application(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO") or "/")
    if handler is None:
        return _response(start_response, "404 Not Found", "no such page; see /\n")
    return handler(environ, start_response)
