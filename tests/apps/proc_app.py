"""Test app for test_process.py: the master and its workers.

Every body starts with "pid=<the worker's pid>" so that the tests know which process answered.

    /pid                  no suspension
    /gsleep?s=0.5         gyre.sleep(s)
    /suspend?s=0.5        the seed's suspension: call_later(s, me.switch); me.parent.switch()
    /long                 gyre.sleep(30): for --harakiri
    /spin                 a CPU loop that never yields to the loop: for the master's --harakiri
    /grow?mb=N            keep N more MiB (touched) for the life of the worker: --reload-on-rss
    /ids                  uid, gid, euid, egid of the worker
    /err                  a traceback to wsgi.errors, a print() to stdout and one to stderr

With PROC_BREAK=<file> in the environment, the import fails while that file exists (a broken
deploy). With PROC_TRACE=<file> in the environment (--env), every request with ?id=N appends
"start <pid> <id>" and "end <pid> <id>" lines to that file (O_APPEND: one write per line).
"""
import os
import sys
import traceback
from urllib.parse import parse_qs

import greenlet
import gyre
from tornado.ioloop import IOLoop

TRACE = os.environ.get("PROC_TRACE")
BREAK = os.environ.get("PROC_BREAK")
if BREAK and os.path.exists(BREAK):
    raise RuntimeError("proc_app: broken deploy (%s exists)" % BREAK)


_kept = []


def _trace(what, rid):
    if TRACE and rid is not None:
        fd = os.open(TRACE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, ("%s %d %s\n" % (what, os.getpid(), rid)).encode())
        finally:
            os.close(fd)


def _long_sleep():
    gyre.sleep(30)  # PROC-HARAKIRI-LINE


def _spin():
    n = 0
    while True:  # PROC-SPIN-LINE
        n += 1


def _suspend(seconds):
    me = greenlet.getcurrent()
    IOLoop.current().call_later(seconds, me.switch)
    me.parent.switch()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    q = parse_qs(environ.get("QUERY_STRING", ""))
    rid = q.get("id", [None])[0]
    seconds = float(q.get("s", ["0"])[0])
    _trace("start", rid)
    extra = ""
    status = "200 OK"
    if path == "/gsleep":
        gyre.sleep(seconds)
    elif path == "/suspend":
        _suspend(seconds)
    elif path == "/long":
        _long_sleep()
    elif path == "/spin":
        _spin()
    elif path == "/grow":
        _kept.append(b"x" * (int(q["mb"][0]) << 20))
    elif path == "/ids":
        extra = " uid=%d gid=%d euid=%d egid=%d" % (os.getuid(), os.getgid(), os.geteuid(),
                                                      os.getegid())
    elif path == "/err":
        try:
            raise ValueError("proc-app-logged-error")
        except ValueError:
            environ["wsgi.errors"].write(traceback.format_exc())
            environ["wsgi.errors"].flush()
        print("proc-app-print-stdout")
        print("proc-app-print-stderr", file=sys.stderr)
    elif path != "/pid":
        status = "404 Not Found"
    _trace("end", rid)
    start_response(status, [("Content-Type", "text/plain")])
    return [("pid=%d%s" % (os.getpid(), extra)).encode()]
