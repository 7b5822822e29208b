"""uWSGI's async API (uwsgi.wait_fd_read/write, async_sleep, suspend, ready_fd, async_connect,
is_connected, set_user_harakiri), the same app under gyre and Debian's uWSGI: each route answers
JSON of what the calls returned and how long the waits took."""
import json
import os
import socket
import time

import uwsgi


def timed(fn):
    t = time.monotonic()
    r = fn()
    return r, round(time.monotonic() - t, 3)


def wait_read(fd, timeout):
    r = uwsgi.wait_fd_read(fd, timeout)
    s, took = timed(uwsgi.suspend)
    return {"registered": repr(r), "suspend": repr(s), "took": took, "ready": uwsgi.ready_fd()}


def route(path, qs):
    if path == "/ping":
        return {"pid": os.getpid()}
    if path == "/ready-fresh":  # a new request has waited for nothing yet
        return {"ready": uwsgi.ready_fd()}
    if path == "/read-timeout":
        a, b = socket.socketpair()
        with a, b:
            return dict(wait_read(a.fileno(), 1), fd=a.fileno())
    if path == "/read-ready":
        a, b = socket.socketpair()
        with a, b:
            b.send(b"x")
            return dict(wait_read(a.fileno(), 5), fd=a.fileno())
    if path == "/write-ready":
        a, b = socket.socketpair()
        with a, b:
            r = uwsgi.wait_fd_write(a.fileno(), 5)
            s, took = timed(uwsgi.suspend)
            return {"registered": repr(r), "took": took, "ready": uwsgi.ready_fd(),
                    "fd": a.fileno()}
    if path == "/two-fds":  # the one that becomes ready ends the wait
        a, b = socket.socketpair()
        c, d = socket.socketpair()
        with a, b, c, d:
            d.send(b"x")
            uwsgi.wait_fd_read(a.fileno(), 5)
            uwsgi.wait_fd_read(c.fileno(), 5)
            s, took = timed(uwsgi.suspend)
            return {"took": took, "ready": uwsgi.ready_fd(), "fd": c.fileno()}
    if path == "/sleep":
        secs = int(qs or "1")
        r = uwsgi.async_sleep(secs)
        s, took = timed(uwsgi.suspend)
        return {"registered": repr(r), "suspend": repr(s), "took": took, "ready": uwsgi.ready_fd()}
    if path == "/bad-fd":
        try:
            uwsgi.wait_fd_read(-1, 1)
        except Exception as e:
            return {"error": repr(e)}
        return {"error": None}
    if path == "/connect":
        fd = uwsgi.async_connect(qs)
        out = {"fd_type": type(fd).__name__, "fd_ok": fd >= 0}
        if fd >= 0:
            uwsgi.wait_fd_write(fd, 5)
            s, took = timed(uwsgi.suspend)
            out.update(ready_is_fd=uwsgi.ready_fd() == fd, connected=uwsgi.is_connected(fd),
                       took=took)
            os.close(fd)
        return out
    if path == "/green":  # nothing registered: once round the loop (gyre)
        s, took = timed(uwsgi.green_schedule)
        s2, took2 = timed(uwsgi.suspend)
        return {"green_schedule": repr(s), "suspend": repr(s2), "took": max(took, took2)}
    if path == "/user-harakiri":
        r = uwsgi.set_user_harakiri(int(qs or "1"))
        uwsgi.async_sleep(30)
        uwsgi.suspend()
        return {"set_user_harakiri": repr(r), "survived": True}
    if path == "/user-harakiri-off":
        r = uwsgi.set_user_harakiri(1)
        uwsgi.set_user_harakiri(0)
        uwsgi.async_sleep(2)
        uwsgi.suspend()
        return {"set_user_harakiri": repr(r), "survived": True}
    return None


def application(env, start_response):
    out = route(env["PATH_INFO"], env.get("QUERY_STRING", ""))
    if out is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such route\n"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(out).encode()]
