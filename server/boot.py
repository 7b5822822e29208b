"""Python-side helpers of gyre: the cold paths that read better in Python than in C.

Compiled into the gyre binary and loaded as the module ``_gyre_boot``. Nothing here runs per
request.
"""
import importlib
import importlib.util
import os
import select
import selectors
import sys

CO_OPTIMIZED = 0x1


def hide_running_loop_in_cores(loop_greenlet):
    """Inside a core there is no *running* asyncio loop: a WSGI app is synchronous code, and
    libraries that ask (Django's async_unsafe, asgiref) must not take it for a coroutine. The
    loop gyre runs lives in the greenlet loop_greenlet of this thread; every other greenlet of
    this thread is a core (or one the app made in a core). Other threads are left alone: one may
    run an asyncio loop of its own. The names the app and libraries look up are replaced before
    the app is imported, so `from asyncio import get_running_loop` gets these too."""
    import asyncio
    import asyncio.events
    import threading

    from greenlet import getcurrent

    loop_thread = threading.get_ident()
    real_get = asyncio.events._get_running_loop

    def _get_running_loop():
        if getcurrent() is not loop_greenlet and threading.get_ident() == loop_thread:
            return None
        return real_get()

    def get_running_loop():
        loop = _get_running_loop()
        if loop is None:
            raise RuntimeError("no running event loop")
        return loop

    for mod in (asyncio, asyncio.events):
        mod._get_running_loop = _get_running_loop
        mod.get_running_loop = get_running_loop


def load_app(wsgi_file, module, callable_name):
    """Import the app the way uWSGI's --wsgi-file / --module do and return the callable."""
    if wsgi_file:
        path = os.path.abspath(wsgi_file)
        # uWSGI names the module after the file's path; keep a name no other import can take.
        name = "uwsgi_file_" + "".join(c if c.isalnum() else "_" for c in path)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None:
            raise ImportError("cannot load %s: not a Python file" % wsgi_file)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        # Let the app import its neighbours, as `python app.py` would.
        sys.path.insert(0, os.path.dirname(path))
        spec.loader.exec_module(mod)
        where = wsgi_file
    else:
        if ":" in module:
            module, callable_name = module.split(":", 1)
        mod = importlib.import_module(module)
        where = module
    app = getattr(mod, callable_name, None)
    if app is None:
        raise LookupError("%s has no callable named %r (see --callable)" % (where, callable_name))
    if not callable(app):
        raise TypeError("%s.%s is not callable" % (where, callable_name))
    return app


def greenlet_internal_refs(gr):
    """How many references to the suspended greenlet ``gr`` its own frames hold.

    A fast local of an optimised frame counts twice: once in its slot and once in the frame's
    f_locals dict, which reading f_locals creates and keeps. Names held in cells count once, for
    the dict only, since a closure elsewhere may share the cell. Under-counting only makes gyre
    keep waiting; what is counted is certainly held by the greenlet itself.
    """
    n = 0
    frame = gr.gr_frame
    while frame is not None:
        code = frame.f_code
        optimised = code.co_flags & CO_OPTIMIZED
        cells = code.co_cellvars + code.co_freevars
        for name, value in frame.f_locals.items():
            if value is gr:
                n += 2 if optimised and name not in cells else 1
        frame = frame.f_back
    del frame
    return n


def greenlet_stack(gr):
    """The Python stack of a suspended greenlet, most recent call last, for a log line."""
    import traceback
    frame = gr.gr_frame
    if frame is None:
        return "  (no Python frames)\n"
    return "".join(traceback.format_stack(frame)).rstrip("\n") + "\n"


class PreciseEpollSelector(selectors.EpollSelector):
    """The selector of gyre's asyncio loop: EpollSelector, with waits precise to the microsecond.

    epoll_wait takes whole milliseconds and Python rounds a timeout up, so every timer of the
    loop (IOLoop.call_later, asyncio.sleep, gyre.sleep) fires up to a millisecond late: 20 ms
    suspends took 20.5 ms on average. A wait with a timeout is instead a timerfd armed to the
    nanosecond in the same epoll set, and an epoll_wait without one.
    """

    def __init__(self):
        super().__init__()
        import gyre
        self._arm = gyre._timerfd_arm
        self._disarm = gyre._timerfd_disarm
        self._tfd = gyre._timerfd_create()
        # Registered with the epoll object only: select() skips fds it has no key for.
        self._selector.register(self._tfd, select.EPOLLIN)

    def select(self, timeout=None):
        if timeout is None or timeout <= 0:
            return super().select(timeout)
        self._arm(self._tfd, timeout)
        try:
            return super().select(None)
        finally:
            self._disarm(self._tfd)

    def close(self):
        if self._tfd >= 0:
            os.close(self._tfd)
            self._tfd = -1
        super().close()
