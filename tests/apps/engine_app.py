"""Test app for test_engine.py: the Tornado loop engine and the greenlet cores.

Every route answers text/plain; numbers and names in the body are computed here, at request
time, so that the tests can check what really happened inside gyre.

    /loop                 facts about IOLoop.current()/instance() and the import-time loop
    /import-loop          suspend on a timer of the loop grabbed at import time
    /suspend?s=0.2        the seed's suspension: call_later(s, me.switch); me.parent.switch()
    /gsleep?s=0.2         gyre.sleep(s)
    /peak                 most requests ever suspended at once (/suspend and /gsleep), then reset
    /hello                no suspension at all
    /wait/tornado         gyre.wait on a tornado Future resolved by IOLoop.call_later
    /wait/asyncio         gyre.wait on an asyncio future resolved by loop.call_later
    /wait/coro            gyre.wait on an `async def` coroutine
    /wait/exc             gyre.wait on a future that fails: the app must see the exception
    /wait/coro-exc        gyre.wait on a coroutine that raises
    /wait/timeout?t=0.3   gyre.wait(never_done, timeout=t)
    /wait/done            gyre.wait on a future that is already done
    /wait/beats-timeout   gyre.wait(resolved at 0.1 s, timeout=0.5)
    /wait/thread          gyre.wait on a concurrent.futures.Future from a thread pool
    /notincore/schedule   schedule IOLoop callbacks that call gyre.wait/gyre.sleep outside a core
    /notincore/result     what those callbacks saw
    /notincore/child      gyre.sleep from a child greenlet of the request's core
    /notincore/import     what gyre.sleep raised at import time
    /gen                  a response generator that suspends between its items (both ways)
    /dropref              greenlet.getcurrent().parent.switch() keeping no reference
    /timers               IOLoop.call_later/call_at/add_timeout with arguments, remove_timeout, a
                          callback that raises and one returning a coroutine: what fired, as JSON
    /deep?n=100           n calls deep, suspended at the bottom until /deep/gate?open=1
    /deep/gate            how many /deep wait; ?open=1 resumes them all, the last come first
    /recursion            runs into RecursionError twice, suspending in between
"""
import asyncio
import concurrent.futures
import json
import threading
import time
from urllib.parse import parse_qs

import greenlet
import gyre
from tornado import gen
from tornado.concurrent import Future
from tornado.ioloop import IOLoop

# As the seed does: grab the loop at import time.
IMPORT_LOOP = IOLoop.instance()
IMPORT_CURRENT = IOLoop.current()

# gyre.sleep at import time: not inside a request core.
try:
    gyre.sleep(0.01)
    IMPORT_SLEEP = "no exception"
except BaseException as e:  # noqa: B902 - record whatever it is
    IMPORT_SLEEP = "%s|%s|%s" % (type(e).__name__, isinstance(e, RuntimeError),
                                 isinstance(e, getattr(gyre, "NotInCoreError", ())))

POOL = concurrent.futures.ThreadPoolExecutor(2)

_suspended = 0
_peak = 0
_notincore = []


def _reply(start_response, body, status="200 OK"):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _q(environ, name, default):
    return parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0]


def _in_thread(fn):
    out = []

    def run():
        try:
            out.append(fn())
        except Exception as e:  # noqa: B902 - report whatever it is
            out.append(type(e).__name__)
    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out[0]


def loop_facts(environ, start_response):
    cur = IOLoop.current()
    inst = IOLoop.instance()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    loop = asyncio.get_event_loop()
    facts = {
        "current_is_instance": cur is inst,
        "current_is_import_loop": cur is IMPORT_LOOP,
        "import_current_is_import_instance": IMPORT_CURRENT is IMPORT_LOOP,
        # A core is synchronous code: no running loop there, but the event loop is the IOLoop's.
        "no_running_loop_in_core": running is None,
        "asyncio_loop_is_the_ioloops": cur.asyncio_loop is loop,
        "running": loop.is_running(),
        "current_no_instance": IOLoop.current(instance=False) is cur,
        # Another thread has no event loop (gyre answers get_event_loop itself on its loop's
        # thread only): asyncio's RuntimeError, as without gyre.
        "other_thread": _in_thread(lambda: type(asyncio.get_event_loop()).__name__),
        "core": gyre.core_id(),
        "environ_core": environ.get("gyre.core"),
    }
    return _reply(start_response, json.dumps(facts, sort_keys=True))


def import_loop(environ, start_response):
    # Only the running loop fires this timer: were IMPORT_LOOP another loop, nothing would ever
    # switch back and the request would hang (the test bounds it).
    me = greenlet.getcurrent()
    t0 = time.monotonic()
    IMPORT_LOOP.call_later(0.1, me.switch)
    me.parent.switch()
    return _reply(start_response, "resumed by the import-time loop after %.3f" % (time.monotonic() - t0))


def _track(fn):
    global _suspended, _peak
    _suspended += 1
    _peak = max(_peak, _suspended)
    try:
        fn()
    finally:
        _suspended -= 1


def suspend(environ, start_response):
    s = float(_q(environ, "s", "0.2"))
    t0 = time.monotonic()

    def seed_style():
        # Exactly as the seed shows.
        me = greenlet.getcurrent()
        IOLoop.current().call_later(s, me.switch)
        me.parent.switch()
    _track(seed_style)
    return _reply(start_response, "suspended %.3f" % (time.monotonic() - t0))


def gsleep(environ, start_response):
    s = float(_q(environ, "s", "0.2"))
    t0 = time.monotonic()
    _track(lambda: gyre.sleep(s))
    return _reply(start_response, "slept %.3f" % (time.monotonic() - t0))


def peak(environ, start_response):
    global _peak
    p, _peak = _peak, 0
    return _reply(start_response, "peak %d now %d" % (p, _suspended))


def hello(environ, start_response):
    return _reply(start_response, "hello from core %s" % gyre.core_id())


class AppError(Exception):
    pass


def wait_route(environ, start_response):
    kind = environ["PATH_INFO"].rsplit("/", 1)[1]
    token = _q(environ, "token", "tok")
    loop = IOLoop.current()
    t0 = time.monotonic()
    try:
        if kind == "tornado":
            fut = Future()
            loop.call_later(0.2, fut.set_result, "tornado:" + token)
            result = gyre.wait(fut)
        elif kind == "asyncio":
            fut = asyncio.get_event_loop().create_future()
            asyncio.get_event_loop().call_later(0.2, fut.set_result, "asyncio:" + token)
            result = gyre.wait(fut)
        elif kind == "coro":
            async def coro():
                await asyncio.sleep(0.1)
                await gen.sleep(0.1)
                return "coro:" + token
            result = gyre.wait(coro())
        elif kind == "exc":
            fut = Future()
            loop.call_later(0.2, fut.set_exception, AppError("exc:" + token))
            result = gyre.wait(fut)
        elif kind == "coro-exc":
            async def failing():
                await asyncio.sleep(0.05)
                raise KeyError("coro-exc:" + token)
            result = gyre.wait(failing())
        elif kind == "timeout":
            t = float(_q(environ, "t", "0.3"))
            result = gyre.wait(Future(), timeout=t)
        elif kind == "done":
            fut = Future()
            fut.set_result("done:" + token)
            result = gyre.wait(fut)
        elif kind == "beats-timeout":
            fut = Future()
            loop.call_later(0.1, fut.set_result, "beat:" + token)
            result = gyre.wait(fut, timeout=0.5)
        elif kind == "thread":
            # Tornado's `await` takes a concurrent.futures.Future; its callbacks run in the
            # worker thread.
            result = gyre.wait(POOL.submit(lambda: (time.sleep(0.1), "thread:" + token)[1]),
                               timeout=2)
        else:
            return _reply(start_response, "no such wait", "404 Not Found")
    except Exception as e:
        result = "raised %s(%s) builtin_timeout=%s" % (
            type(e).__name__, e.args[0] if e.args else "", isinstance(e, TimeoutError))
    return _reply(start_response, "%s after %.3f" % (result, time.monotonic() - t0))


def _try(what, fn):
    try:
        fn()
        _notincore.append("%s:no exception" % what)
    except BaseException as e:  # noqa: B902
        _notincore.append("%s:%s|%s|%s" % (what, type(e).__name__, isinstance(e, RuntimeError),
                                           isinstance(e, gyre.NotInCoreError)))


def notincore_schedule(environ, start_response):
    loop = IOLoop.current()
    fut = Future()
    loop.add_callback(_try, "cb-wait", lambda: gyre.wait(fut))
    loop.add_callback(_try, "cb-sleep", lambda: gyre.sleep(0.1))
    loop.call_later(0.05, _try, "timer-wait", lambda: gyre.wait(fut, timeout=1))
    # And one that lets the error escape into the IOLoop: Tornado logs it, gyre must go on.
    loop.add_callback(lambda: gyre.sleep(0.1))
    return _reply(start_response, "scheduled")


def notincore_result(environ, start_response):
    return _reply(start_response, ";".join(sorted(_notincore)))


def notincore_child(environ, start_response):
    out = []

    def child():
        try:
            gyre.sleep(0.1)
            out.append("no exception")
        except BaseException as e:  # noqa: B902
            out.append("%s|%s|%s" % (type(e).__name__, isinstance(e, RuntimeError),
                                     isinstance(e, gyre.NotInCoreError)))
    greenlet.greenlet(child).switch()
    return _reply(start_response, "child:" + ";".join(out))


def notincore_import(environ, start_response):
    return _reply(start_response, "import:" + IMPORT_SLEEP)


def gen_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    t0 = time.monotonic()

    def body():
        yield b"a"
        gyre.sleep(0.2)
        yield b"b"
        me = greenlet.getcurrent()
        IOLoop.current().call_later(0.2, me.switch)
        me.parent.switch()
        yield b"c %.3f" % (time.monotonic() - t0)
    return body()


def dropref(environ, start_response):
    # Suspend keeping no reference to our own greenlet: nothing can ever switch back.
    greenlet.getcurrent().parent.switch()
    return _reply(start_response, "resumed?!")


_gate = []  # greenlets /deep left suspended, until /deep/gate?open=1


def deep(environ, start_response):
    # n calls deep, suspended at the bottom until the gate opens, then the frames add up on the
    # way back: whatever a frame held must still be there after the switches.
    n = int(_q(environ, "n", "100"))

    def down(k):
        if k == 0:
            me = greenlet.getcurrent()
            _gate.append(me)
            me.parent.switch()
            return 0
        return k + down(k - 1)
    return _reply(start_response, "sum %d" % down(n))


def deep_gate(environ, start_response):
    if _q(environ, "open", ""):
        waiting = _gate[::-1]  # the last come is resumed first
        _gate.clear()
        for g in waiting:
            IOLoop.current().add_callback(g.switch)
        return _reply(start_response, "opened %d" % len(waiting))
    return _reply(start_response, "waiting %d" % len(_gate))


def recursion(environ, start_response):
    # Runs into the recursion limit, suspends once on the way back, and recurses again.
    def forever(k):
        return forever(k + 1)
    caught = []
    for _ in range(2):
        try:
            forever(0)
        except RecursionError:
            caught.append("RecursionError")
        me = greenlet.getcurrent()
        IOLoop.current().add_callback(me.switch)
        me.parent.switch()
    return _reply(start_response, " ".join(caught))


def timers(environ, start_response):
    # gyre's IOLoop schedules call_later/call_at in C: the calls must keep Tornado's meaning.
    import datetime
    io = IOLoop.current()
    fired = []
    me = greenlet.getcurrent()

    async def coro(tag):
        await asyncio.sleep(0.01)
        fired.append(tag)
        if tag == "coro":
            io.add_callback(me.switch)

    def boom():
        fired.append("boom")
        raise ValueError("timer callback failure for the test")

    # Deadlines 50 ms or more apart: the order holds even on a slow machine (valgrind).
    io.call_later(0.1, lambda *a, **k: fired.append(("later", a, sorted(k.items()))), 1, 2, x=3)
    io.call_at(io.time() + 0.2, lambda a: fired.append(("at", a)), "A")
    io.add_timeout(datetime.timedelta(seconds=0.3), fired.append, "timedelta")
    io.add_timeout(io.time() + 0.3, fired.append, "deadline")
    cancelled = io.call_later(0.2, fired.append, "cancelled")
    io.remove_timeout(cancelled)
    io.call_later(-5, fired.append, "negative")  # at once, as max(0, delay)
    io.call_later(0.4, boom)
    io.call_later(0.5, coro, "coro")  # Tornado awaits what a callback returns
    io.call_later(delay=0.05, callback=lambda: fired.append("keywords"))
    errors = []
    for bad in [("soon", fired.append), ()]:
        try:
            io.call_later(*bad)
        except TypeError:
            errors.append("TypeError")
    me.parent.switch()
    return _reply(start_response, json.dumps({"fired": fired, "errors": errors}))


ROUTES = {
    "/timers": timers,
    "/loop": loop_facts,
    "/import-loop": import_loop,
    "/suspend": suspend,
    "/gsleep": gsleep,
    "/peak": peak,
    "/hello": hello,
    "/notincore/schedule": notincore_schedule,
    "/notincore/result": notincore_result,
    "/notincore/child": notincore_child,
    "/notincore/import": notincore_import,
    "/gen": gen_route,
    "/dropref": dropref,
    "/deep": deep,
    "/deep/gate": deep_gate,
    "/recursion": recursion,
}


def application(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    if path.startswith("/wait/"):
        return wait_route(environ, start_response)
    handler = ROUTES.get(path)
    if handler is None:
        return _reply(start_response, "no such page", "404 Not Found")
    return handler(environ, start_response)
