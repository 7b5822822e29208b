"""uWSGI signals through Debian's uwsgidecorators, served the same by gyre and by Debian's uWSGI.

What it registers is chosen by the environment (SIGNALS_SETUP: comma-separated names), and each
handler run appends one line to the file SIGNALS_OUT ("<tag> sig=N worker=W pid=P"), one
write(2) with O_APPEND, so that lines from several workers never mix:

    timer     @timer(1)                           tag "timer"
    targets   @signal(20, target='workers'), @signal(21, target='worker2'), @signal(22) (any
              worker), tags "all", "w2", "any"
    filemon   @filemon(SIGNALS_WATCH)             tag "filemon"
    cron      @cron(-1, -1, -1, -1, -1)           tag "cron" (every minute)
    sleepy    @signal(23): gyre.sleep(SIGNALS_SLEEP) then tag "slept" (gyre only: a core)
    raises    @signal(24, target="worker1"): raises the first time (tag "raising"), then tag "recovered"
    more      @signal(26, target='active-workers') tag "active", @signal(27, target='spooler')
              tag "spooler" (no spooler: never runs)
    rb        register_signal(25) + add_rb_timer(25, 1, 2): tag "rb", twice, a second apart

Requests: /raise?n=N (uwsgi.signal(N)), /registered (signal_registered of 0..30), /errors
(what bad calls raise), /whoami (worker id and pid), / (ok).
"""
import json
import os
import time
from urllib.parse import parse_qs

import uwsgi

OUT = os.environ.get("SIGNALS_OUT", "/dev/null")
SETUP = set(filter(None, os.environ.get("SIGNALS_SETUP", "").split(",")))
if SETUP:
    # It refuses to import without a master ("you have to enable the uWSGI master process").
    import uwsgidecorators
raised_once = []


def record(tag, num):
    line = "%s sig=%d worker=%d pid=%d t=%.3f\n" % (tag, num, uwsgi.worker_id(), os.getpid(),
                                                     time.time())
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


if "timer" in SETUP:
    @uwsgidecorators.timer(1)
    def on_timer(num):
        record("timer", num)

if "targets" in SETUP:
    @uwsgidecorators.signal(20, target="workers")
    def on_all(num):
        record("all", num)

    @uwsgidecorators.signal(21, target="worker2")
    def on_w2(num):
        record("w2", num)

    @uwsgidecorators.signal(22)
    def on_any(num):
        record("any", num)

if "rb" in SETUP:
    # uwsgidecorators' @rbtimer passes no iterations: the call itself, limited to 2 runs.
    def on_rb(num):
        record("rb", num)
    uwsgi.register_signal(25, "", on_rb)
    uwsgi.add_rb_timer(25, 1, 2)

if "more" in SETUP:
    @uwsgidecorators.signal(26, target="active-workers")
    def on_active(num):
        record("active", num)

    @uwsgidecorators.signal(27, target="spooler")
    def on_spooler(num):
        record("spooler", num)

if "filemon" in SETUP:
    @uwsgidecorators.filemon(os.environ["SIGNALS_WATCH"])
    def on_change(num):
        record("filemon", num)

if "cron" in SETUP:
    @uwsgidecorators.cron(-1, -1, -1, -1, -1)
    def on_cron(num):
        record("cron", num)

if "sleepy" in SETUP:
    @uwsgidecorators.signal(23)
    def on_sleepy(num):
        import gyre
        record("sleeping", num)
        gyre.sleep(float(os.environ.get("SIGNALS_SLEEP", "2")))
        record("slept", num)

if "raises" in SETUP:
    @uwsgidecorators.signal(24, target="worker1")
    def on_raises(num):
        if not raised_once:
            raised_once.append(1)
            record("raising", num)
            raise RuntimeError("signals_app: a handler that raises")
        record("recovered", num)


def outcome(fn, *args):
    try:
        v = fn(*args)
        return ["ok", type(v).__name__, v if isinstance(v, (int, bool, type(None))) else repr(v)]
    except Exception as e:  # what the call raises is what the test compares
        return ["error", type(e).__name__, str(e)]


def errors():
    def handler(num):
        pass
    return {
        "register_str_num": outcome(uwsgi.register_signal, "x", "", handler),
        "register_long_target": outcome(uwsgi.register_signal, 30, "w" * 64, handler),
        "register_no_args": outcome(uwsgi.register_signal),
        "signal_str": outcome(uwsgi.signal, "x"),
        "add_timer_str": outcome(uwsgi.add_timer, 30, "x"),
        "add_cron_short": outcome(uwsgi.add_cron, 30, -1, -1),
        "add_rb_timer_str": outcome(uwsgi.add_rb_timer, "x", 1),
        "add_file_monitor_int": outcome(uwsgi.add_file_monitor, 30, 5),
        "registered_str": outcome(uwsgi.signal_registered, "x"),
        "registered_unregistered": outcome(uwsgi.signal_registered, 29),
        "register_twice_a": outcome(uwsgi.register_signal, 31, "workers", handler),
        "register_twice_b": outcome(uwsgi.register_signal, 31, "workers", handler),
        "registered_after": outcome(uwsgi.signal_registered, 31),
    }


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    q = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/raise":
        body = json.dumps(outcome(uwsgi.signal, int(q["n"][0])))
    elif path == "/registered":
        body = json.dumps({n: uwsgi.signal_registered(n) for n in range(0, 31)})
    elif path == "/errors":
        body = json.dumps(errors())
    elif path == "/whoami":
        body = json.dumps({"worker_id": uwsgi.worker_id(), "pid": os.getpid()})
    else:
        body = "ok"
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]
