"""Python-side helpers of gyre: the cold paths that read better in Python than in C.

Compiled into the gyre binary and loaded as the module ``_gyre_boot``. Nothing here runs per
request.
"""
import importlib
import importlib.machinery
import importlib.util
import os
import select
import selectors
import sys

CO_OPTIMIZED = 0x1


class SetupError(Exception):
    """A configuration gyre cannot start with: its message is the one log line."""


# What configure() was given, for load_app.
_mounts = []
_manage_script_name = False
_imports = []
_autoreload = 0


def configure(home, pythonpath, mounts, manage_script_name, honour_stdin, py_autoreload,
              aliases, imports, under_master):
    """The Python environment of the options, before the app is imported: stdin, sys.path
    (--pythonpath globs, the virtualenv), module aliases, and what load_app will import."""
    global _mounts, _manage_script_name, _imports, _autoreload
    if not honour_stdin:
        # uWSGI's default: an app (or a library) reading stdin gets EOF at once, not a hang
        # on the terminal or the service manager's pipe. --honour-stdin keeps it.
        fd = os.open(os.devnull, os.O_RDONLY)
        if fd != 0:
            os.dup2(fd, 0)
            os.close(fd)
    set_python_path(pythonpath)
    if home:
        use_virtualenv(home)
    for alias in aliases:
        add_module_alias(alias)
    _mounts = [parse_mount(m) for m in mounts]
    _manage_script_name = manage_script_name
    _imports = list(imports)
    if py_autoreload and under_master:
        _autoreload = py_autoreload  # started once the app is imported: see load_app
    elif py_autoreload:
        sys.stderr.write("gyre: WARNING: --py-autoreload needs --master (a reload starts new "
                         "workers): modules are not watched\n")


def start_autoreload(interval):
    """--py-autoreload N: every N seconds, the source files of the loaded modules are checked
    against their mtimes once the app was imported (the first scan, here). When one changed,
    this worker stops gracefully (SIGHUP to itself, as a master's reload asks; it works after
    --uid too) and the master starts a new one, which imports the new code. Each worker
    watches its own modules, so all of them are replaced. A thread, not a loop timer: a slow
    stat() never holds the loop."""
    import signal
    import threading
    import time

    def source_mtimes(seen):
        changed = None
        for mod in list(sys.modules.values()):
            path = getattr(mod, "__file__", None)
            if not path:
                continue
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            if seen.setdefault(path, mtime) != mtime:
                changed = path
        return changed

    seen = {}
    source_mtimes(seen)

    def watch():
        while True:
            time.sleep(interval)
            changed = source_mtimes(seen)
            if changed:
                sys.stderr.write("gyre: %s changed: reloading the worker (--py-autoreload)\n"
                                 % changed)
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGHUP)
                return

    threading.Thread(target=watch, name="gyre-py-autoreload", daemon=True).start()


def set_python_path(entries):
    """'.' then each --pythonpath entry at the front of sys.path, in the order given. An entry
    with glob characters (/srv/*/lib) adds each directory it matches, sorted, as uWSGI does."""
    dirs = []
    for entry in entries:
        if any(c in entry for c in "*?["):
            import glob
            matches = sorted(p for p in glob.glob(entry) if os.path.isdir(p))
            if not matches:
                sys.stderr.write("gyre: --pythonpath %s matches no directory\n" % entry)
            dirs.extend(matches)
        else:
            dirs.append(entry)
    sys.path[0:0] = ["."] + dirs


def use_virtualenv(home):
    """--home VENV, as uWSGI sets it: sys.prefix and sys.exec_prefix are VENV, its
    site-packages (and its .pth files) are on sys.path. gyre's own Tornado and greenlet are
    Debian's, imported already: the system's dist-packages stay on sys.path, after the venv's,
    so the venv's packages win."""
    import site
    home = os.path.abspath(home)
    if not os.path.isdir(home):
        raise SetupError("--home %s: no such directory" % home)
    ours = "%d.%d" % sys.version_info[:2]
    cfg_version = pyvenv_version(os.path.join(home, "pyvenv.cfg"))
    if cfg_version and cfg_version != ours:
        raise SetupError("--home %s is a virtualenv of Python %s; gyre runs Python %s: "
                         "recreate it with /usr/bin/python3 -m venv" % (home, cfg_version, ours))
    packages = os.path.join(home, "lib", "python" + ours, "site-packages")
    if not os.path.isdir(packages):
        import glob
        others = sorted(glob.glob(os.path.join(home, "lib", "python*", "site-packages")))
        if others:
            raise SetupError("--home %s has packages for another Python only (%s); gyre runs "
                             "Python %s" % (home, ", ".join(others), ours))
        raise SetupError("--home %s is not a virtualenv: no lib/python%s/site-packages"
                         % (home, ours))
    before = list(sys.path)
    site.addsitedir(packages)
    added = [p for p in sys.path if p not in before]
    system = [i for i, p in enumerate(before) if p.endswith(("dist-packages", "site-packages"))]
    at = system[0] if system else len(before)
    sys.path[:] = before[:at] + added + before[at:]
    sys.prefix = sys.exec_prefix = home


def add_module_alias(spec):
    """--pymodule-alias NAME=TARGET: `import NAME` gives the module TARGET, or the module of
    the file TARGET (a path, or a name ending in .py), as uWSGI does."""
    name, target = spec.split("=", 1)
    if target.endswith(".py") or os.sep in target:
        spec = importlib.util.spec_from_file_location(name, target)
        if spec is None or not os.path.isfile(target):
            raise SetupError("--pymodule-alias %s: no Python file %s" % (name, target))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    else:
        sys.modules[name] = importlib.import_module(target)


def pyvenv_version(path):
    """major.minor of the Python a venv was made with (pyvenv.cfg's version), or None."""
    try:
        with open(path) as f:
            for line in f:
                key, sep, value = line.partition("=")
                if sep and key.strip() in ("version", "version_info"):
                    return ".".join(value.strip().split(".")[:2])
    except OSError:
        pass
    return None


def parse_mount(spec):
    """'/prefix=app.py' or '/prefix=pkg.mod[:callable]' -> (mountpoint, file, module)."""
    mountpoint, app = spec.split("=", 1)
    mountpoint = mountpoint.rstrip("/")
    if app.endswith((".py", ".wsgi")) or os.sep in app:
        return mountpoint, app, None
    return mountpoint, None, app


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
    """The callable to serve: the app of --wsgi-file/--module, or the --mount dispatcher;
    the --import modules first."""
    for name in _imports:
        # uWSGI prints the traceback of an --import that fails and goes on (even with
        # --need-app): the app may not need it.
        try:
            importlib.import_module(name)
        except Exception:
            sys.excepthook(*sys.exc_info())
    default = import_app(wsgi_file, module, callable_name) if wsgi_file or module else None
    app = default
    if _mounts:
        apps = [(mp, import_app(f, m, callable_name)) for mp, f, m in _mounts]
        app = MountDispatcher(apps, default, _manage_script_name)
    if _autoreload:
        start_autoreload(_autoreload)
    return app


class MountDispatcher:
    """uWSGI's --mount: the app whose mountpoint is the request's SCRIPT_NAME or, with
    --manage-script-name, the longest one PATH_INFO starts with (the prefix then moves from
    PATH_INFO to SCRIPT_NAME). Else the default app, else 404."""

    def __init__(self, apps, default, manage_script_name):
        self.apps = sorted(apps, key=lambda a: len(a[0]), reverse=True)
        self.default = default
        self.manage_script_name = manage_script_name

    def __call__(self, environ, start_response):
        if self.manage_script_name:
            path = environ.get("PATH_INFO", "")
            for mountpoint, app in self.apps:
                rest = path[len(mountpoint):]
                if path.startswith(mountpoint) and rest[:1] in ("", "/"):
                    environ["SCRIPT_NAME"] = mountpoint
                    environ["PATH_INFO"] = rest
                    return app(environ, start_response)
        else:
            script_name = environ.get("SCRIPT_NAME", "").rstrip("/")
            for mountpoint, app in self.apps:
                if script_name == mountpoint:
                    return app(environ, start_response)
        if self.default is not None:
            return self.default(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no app mounted here\n"]


def import_app(wsgi_file, module, callable_name):
    """Import the app the way uWSGI's --wsgi-file / --module do and return the callable."""
    if wsgi_file:
        path = os.path.abspath(wsgi_file)
        # uWSGI names the module after the file's path; keep a name no other import can take.
        name = "uwsgi_file_" + "".join(c if c.isalnum() else "_" for c in path)
        # Any file name: real deployments load app.wsgi or an extension-less script
        # (keystone-wsgi-public), which spec_from_file_location alone refuses.
        loader = importlib.machinery.SourceFileLoader(name, path)
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
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


def thread_stack(ident):
    """The Python stack of OS thread ``ident``, most recent call last, for a log line."""
    import traceback
    frame = sys._current_frames().get(ident)
    if frame is None:
        return "  (no Python frames)\n"
    return "".join(traceback.format_stack(frame)).rstrip("\n") + "\n"


def name_thread(name):
    """A thread core's name in threading (uWSGI names its own "uWSGIWorker1Core0")."""
    import threading
    threading.current_thread().name = name


# The IOLoop gyre runs, for the calls made from thread cores (wait_in_thread).
_ioloop = None


def use_thread_pool(ioloop, nthreads, stack_kib):
    """--threads N beside --tornado: N threads as asyncio's default executor, which
    IOLoop.run_in_executor(None, ...), loop.run_in_executor(None, ...) and gyre.run_in_thread
    use. --threads-stacksize sets threading.stack_size, which the pool's threads (and those the
    app starts after this) get."""
    import concurrent.futures
    import threading
    if stack_kib:
        threading.stack_size(max(stack_kib, 128) * 1024)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=nthreads,
                                                 thread_name_prefix="gyre-thread")
    ioloop.asyncio_loop.set_default_executor(pool)


def set_ioloop(ioloop):
    global _ioloop
    _ioloop = ioloop


def run_in_thread(fn, /, *args, **kwargs):
    """Run fn(*args, **kwargs) on a thread of the pool (--threads N with --tornado: asyncio's
    default executor) and suspend only the calling core until it returns: its result is
    returned, its exception raised here. In a thread core (--threads alone) fn simply runs:
    the request already has an OS thread of its own."""
    import functools
    import gyre
    kind = gyre._core_kind()
    if kind is None:
        raise gyre.NotInCoreError(
            "gyre.run_in_thread() suspends a request core: call it from the WSGI app while it "
            "serves a request, not from the loop, a pool thread or another greenlet")
    if kind == "thread":
        return fn(*args, **kwargs)
    call = functools.partial(fn, *args, **kwargs)
    return gyre.wait(_ioloop.asyncio_loop.run_in_executor(None, call))


def wait_in_thread(awaitable, timeout):
    """gyre.wait in a thread core: the awaitable runs on the loop (its futures and coroutines
    belong there) and this thread blocks, the GIL released, until it is done."""
    import concurrent.futures
    from tornado.concurrent import chain_future
    from tornado.gen import convert_yielded
    done = concurrent.futures.Future()

    def start():
        try:
            chain_future(convert_yielded(awaitable), done)
        except BaseException as e:  # handed to the waiting thread, which raises it
            done.set_exception(e)

    _ioloop.add_callback(start)  # thread-safe: the loop runs it on its next turn
    try:
        return done.result(timeout)
    except concurrent.futures.TimeoutError:
        if done.done():
            raise
        raise TimeoutError("gyre.wait() timed out after %g seconds" % timeout) from None


class PreciseEpollSelector(selectors.EpollSelector):
    """The selector of gyre's asyncio loop: EpollSelector, with waits precise to the microsecond.

    epoll_wait takes whole milliseconds and Python rounds a timeout up, so every timer of the
    loop (IOLoop.call_later, asyncio.sleep, gyre.sleep) fires up to a millisecond late: 20 ms
    suspends took 20.5 ms on average. A wait with a timeout is instead a timerfd armed to the
    nanosecond in the same epoll set, and an epoll_wait without one.

    The timer is left armed after a wait: the next wait with a timeout re-arms it, which also
    clears a timer that fired (timerfd_settime resets its count), so a turn of the loop costs
    one timerfd system call, not three. A fired timer left unread only shows up in a zero
    timeout poll, where select() drops it (it has no key); a wait without a timeout disarms
    it first, or it would end at once.
    """

    def __init__(self):
        super().__init__()
        import gyre
        self._arm = gyre._timerfd_arm
        self._disarm = gyre._timerfd_disarm
        self._tfd = gyre._timerfd_create()
        self._loop_waits = gyre._loop_waits
        # Registered with the epoll object only: select() skips fds it has no key for.
        self._selector.register(self._tfd, select.EPOLLIN)
        self._armed = False

    def select(self, timeout=None):
        self._loop_waits()  # thread cores handed work meanwhile start now, the GIL about free
        if timeout is None:
            if self._armed:
                self._disarm(self._tfd)
                self._armed = False
        elif timeout > 0:
            self._arm(self._tfd, timeout)
            self._armed = True
            timeout = None
        return super().select(timeout)

    def close(self):
        if self._tfd >= 0:
            os.close(self._tfd)
            self._tfd = -1
        super().close()
