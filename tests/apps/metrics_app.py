"""uWSGI's metrics as an app sees them: the same file under gyre and Debian's uWSGI
(tests/integration/test_uwsgi_metrics.py compares the answers). Started with the metrics of
METRICS_ARGS in that test.

    /calls                  return values and errors of a fixed series of uwsgi.metric_* calls
                            (on a fresh server: it updates the metrics)
    /inc?name=N&times=K     uwsgi.metric_inc(N) K times, a short pause between; answers
                            "pid True" (or "pid None")
    /get?name=N             uwsgi.metric_get(N)
    /ready                  "pid": which worker answered
"""
import json
import os
import time
from urllib.parse import parse_qs

import uwsgi


def call(f, *args):
    try:
        v = f(*args)
        return ["ok", type(v).__name__, v]
    except BaseException as e:  # noqa: B902 - the error is what is compared
        return ["error", type(e).__name__, str(e)]


def calls():
    """Each step: what it called and what came back; the metrics are those of the test's
    METRICS_ARGS (c counter, g gauge initial 10, a alias of c, ab absolute, s sum of c;g,
    lo gauge initial 2)."""
    m = uwsgi
    steps = [
        ("inc c", m.metric_inc, "c"),
        ("inc c 5", m.metric_inc, "c", 5),
        ("get c", m.metric_get, "c"),
        ("dec c 2", m.metric_dec, "c", 2),
        ("mul c -3", m.metric_mul, "c", -3),
        ("div c 4", m.metric_div, "c", 4),
        ("get c", m.metric_get, "c"),
        ("div c 0", m.metric_div, "c", 0),
        ("get a", m.metric_get, "a"),
        ("set a", m.metric_set, "a", 3),
        ("inc a", m.metric_inc, "a"),
        ("get g", m.metric_get, "g"),
        ("set g default", m.metric_set, "g"),
        ("get g", m.metric_get, "g"),
        ("set_max g 0", m.metric_set_max, "g", 0),
        ("set_max g 50", m.metric_set_max, "g", 50),
        ("get g", m.metric_get, "g"),
        ("set_min lo 1", m.metric_set_min, "lo", 1),
        ("set_min lo 3", m.metric_set_min, "lo", 3),
        ("set lo 9", m.metric_set, "lo", 9),
        ("set_min lo 3", m.metric_set_min, "lo", 3),
        ("get lo", m.metric_get, "lo"),
        ("set ab -7", m.metric_set, "ab", -7),
        ("get ab", m.metric_get, "ab"),
        ("set s", m.metric_set, "s", 1),
        ("inc unknown", m.metric_inc, "unknown"),
        ("get unknown", m.metric_get, "unknown"),
        ("set c 2**63-1", m.metric_set, "c", 2 ** 63 - 1),
        ("inc c", m.metric_inc, "c"),
        ("get c", m.metric_get, "c"),
        ("set c 2**63", m.metric_set, "c", 2 ** 63),
        ("inc c 'x'", m.metric_inc, "c", "x"),
        ("inc c 1.5", m.metric_inc, "c", 1.5),
        ("inc b'c'", m.metric_inc, b"c"),
        ("inc no args", m.metric_inc),
        ("get no args", m.metric_get),
        ("get c 1", m.metric_get, "c", 1),
        ("set c 0", m.metric_set, "c", 0),
    ]
    return [[s[0]] + call(*s[1:]) for s in steps]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/calls":
        body = json.dumps(calls())
    elif path == "/inc":
        result = None
        for _ in range(int(q.get("times", "1"))):
            result = uwsgi.metric_inc(q["name"])
            time.sleep(0.0005)  # let the other worker's increments interleave with these
        body = "%d %s" % (os.getpid(), result)
    elif path == "/get":
        body = str(uwsgi.metric_get(q["name"]))
    else:
        body = str(os.getpid())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
