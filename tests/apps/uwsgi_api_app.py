"""The `uwsgi` module as an app sees it: the same file under gyre and Debian's uWSGI
(tests/integration/test_uwsgi_module.py compares the answers).

    /info             the module's values and what its calls return, as JSON-able text
    /calls            return values and errors of calls whose results do not depend on the server
    /postfork         what @postfork (Debian's uwsgidecorators) recorded in this worker
    /log?msg=TEXT     uwsgi.log(TEXT), answering its return value
    /reload, /stop    uwsgi.reload(), uwsgi.stop()
    /count?file=F&lock=N&hold=S
                      under uwsgi.lock(N): read the integer in F, wait S seconds (on the loop in a
                      gyre greenlet core), write it back plus one; answers "pid value";
                      with in_thread=1 under gyre, on a pool thread (gyre.run_in_thread)
    /die_holding?lock=N   take lock N and exit the worker while holding it
    /not_yet          what using the decorators gyre cannot honour yet raises
"""
import json
import threading
import os
import time
from urllib.parse import parse_qs

import uwsgi
import uwsgidecorators

try:
    import gyre
except ImportError:  # Debian's uWSGI
    gyre = None

POSTFORK = []


@uwsgidecorators.postfork
def record_fork():
    POSTFORK.append({"pid": os.getpid(), "worker_id": uwsgi.worker_id()})
    uwsgi.log("uwsgi_api_app: postfork in worker %d pid %d" % (uwsgi.worker_id(), os.getpid()))


def pause(seconds):
    """Hold the CPU's attention elsewhere for a while: another core of a gyre worker runs."""
    if gyre is not None and gyre._core_kind() == "greenlet":
        gyre.sleep(seconds)
    else:
        time.sleep(seconds)


def describe(v):
    if isinstance(v, (bytes, str, int, bool, float)) or v is None:
        return [type(v).__name__, v.decode("latin-1") if isinstance(v, bytes) else v]
    return [type(v).__name__, repr(v)]


def call(f, *args):
    try:
        return ["ok", describe(f(*args))]
    except BaseException as e:  # noqa: B902 - the error is what is compared
        return ["error", type(e).__name__, str(e)]


def info():
    workers = uwsgi.workers()
    return {
        "pid": os.getpid(),
        "opt": {k: describe(v) for k, v in uwsgi.opt.items()},
        "worker_id": call(uwsgi.worker_id),
        "masterpid": call(uwsgi.masterpid),
        "mule_id": call(uwsgi.mule_id),
        "total_requests": call(uwsgi.total_requests),
        "numproc": describe(uwsgi.numproc),
        "started_on": describe(uwsgi.started_on),
        "hostname": describe(uwsgi.hostname),
        "version": describe(uwsgi.version),
        "version_info": [type(uwsgi.version_info).__name__,
                         [type(x).__name__ for x in uwsgi.version_info]],
        "workers_type": type(workers).__name__,
        "workers": [{k: describe(v) for k, v in w.items() if k != "apps"} for w in workers],
        "has_post_fork_hook": callable(getattr(uwsgi, "post_fork_hook", None)),
        "micros": describe(uwsgi.micros()),
        "time": time.time(),
        "mem": [type(uwsgi.mem()).__name__, [describe(x) for x in uwsgi.mem()]],
    }


def calls():
    out = {}
    out["lock"] = call(uwsgi.lock)
    out["is_locked_held"] = call(uwsgi.is_locked)
    out["unlock"] = call(uwsgi.unlock)
    out["unlock_again"] = call(uwsgi.unlock)
    out["is_locked_free"] = call(uwsgi.is_locked, 0)
    out["lock_last"] = call(uwsgi.lock, 2)
    out["unlock_last"] = call(uwsgi.unlock, 2)
    out["lock_over"] = call(uwsgi.lock, 3)
    out["lock_negative"] = call(uwsgi.lock, -1)
    out["lock_str"] = call(uwsgi.lock, "a")
    out["is_locked_over"] = call(uwsgi.is_locked, 3)
    out["unlock_over"] = call(uwsgi.unlock, 3)
    out["log_bytes"] = call(uwsgi.log, b"x")
    out["log_int"] = call(uwsgi.log, 3)
    out["get_logvar_missing"] = call(uwsgi.get_logvar, "k")
    out["set_logvar"] = call(uwsgi.set_logvar, "k", "v")
    out["get_logvar"] = call(uwsgi.get_logvar, "k")
    out["signal_registered"] = call(uwsgi.signal_registered, 3)
    out["i_am_the_spooler"] = call(uwsgi.i_am_the_spooler)
    out["in_farm"] = call(uwsgi.in_farm, "x")
    out["mule_id"] = call(uwsgi.mule_id)
    out["is_a_reload"] = describe(uwsgi.is_a_reload)
    out["SPOOL"] = [uwsgi.SPOOL_OK, uwsgi.SPOOL_RETRY, uwsgi.SPOOL_IGNORE]
    out["spool_decorator"] = call(uwsgidecorators.spool, lambda args: None)
    return out


def count(q):
    path = q["file"][0]
    n = int(q.get("lock", ["0"])[0])
    hold = float(q.get("hold", ["0.001"])[0])
    uwsgi.lock(n)
    try:
        with open(path) as f:
            value = int(f.read() or "0")
        pause(hold)
        with open(path, "w") as f:
            f.write(str(value + 1))
    finally:
        uwsgi.unlock(n)
    return "%d %d" % (os.getpid(), value + 1)


def not_yet():
    out = {}
    out["mulefunc"] = call(lambda: uwsgidecorators.mulefunc(1)(lambda: None)())
    return out


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/info":
        body = json.dumps(info())
    elif path == "/calls":
        body = json.dumps(calls())
    elif path == "/postfork":
        body = json.dumps({"pid": os.getpid(), "worker_id": uwsgi.worker_id(),
                           "postfork": POSTFORK})
    elif path == "/log":
        body = json.dumps(call(uwsgi.log, q["msg"][0]))
    elif path == "/reload":
        body = json.dumps(call(uwsgi.reload))
    elif path == "/stop":
        body = json.dumps(call(uwsgi.stop))
    elif path == "/count":
        if q.get("in_thread") and gyre is not None:  # on a pool thread of --tornado --threads
            body = gyre.run_in_thread(count, q)
        else:
            body = count(q)
    elif path == "/die_holding":
        uwsgi.lock(int(q.get("lock", ["0"])[0]))
        os._exit(3)
    elif path == "/process":  # sockets, connection_fd(), setprocname(), log_this_request()
        import socket as socketmod
        out = {"sockets_type": type(uwsgi.sockets).__name__, "listening": []}
        for fd in uwsgi.sockets:
            with socketmod.socket(fileno=os.dup(fd)) as ls:
                out["listening"].append(ls.getsockopt(socketmod.SOL_SOCKET,
                                                      socketmod.SO_ACCEPTCONN))
        cfd = uwsgi.connection_fd()
        out["connection_fd"] = describe(cfd)
        with socketmod.socket(fileno=os.dup(cfd)) as cs:
            out["peer_port"] = cs.getpeername()[1]
        out["setprocname"] = call(uwsgi.setprocname, q.get("name", ["apiapp"])[0])
        with open("/proc/self/task/%d/comm" % threading.get_native_id()) as f:
            out["comm"] = f.read().strip()
        with open("/proc/self/cmdline", "rb") as f:
            out["cmdline"] = f.read().split(b"\0")[0].decode().strip()
        if q.get("log"):
            out["log_this_request"] = call(uwsgi.log_this_request)
        body = json.dumps(out)
    elif path == "/process2":  # uwsgi.env, listen_queue(), logsize()
        body = json.dumps({
            "env_is_environ": getattr(uwsgi, "env", None) is environ,
            "listen_queue": call(uwsgi.listen_queue),
            "listen_queue_bad": call(uwsgi.listen_queue, 5),
            "logsize": call(uwsgi.logsize),
        })
    elif path == "/environ":  # uWSGI's own environ keys
        body = json.dumps({k: describe(environ.get(k)) for k in
                           ("uwsgi.core", "uwsgi.node", "uwsgi.version")})
    elif path == "/not_yet":
        body = json.dumps(not_yet())
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such page\n"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]
