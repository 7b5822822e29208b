"""uwsgi.cache_* as an app sees them: the same file under gyre and Debian's uWSGI
(tests/integration/test_uwsgi_cache.py compares the answers).

    POST /run       body: JSON list of calls [NAME, ARG...]; an ARG {"b": TEXT} is TEXT as
                    latin-1 bytes, {"i": N} an int, anything else as JSON gives it. Answers a
                    JSON list, one [outcome...] per call (see call()), and who ran them.
                    ?hold=S: then keeps its core (a greenlet core sleeps on the loop, else the
                    thread sleeps) S seconds, so that other requests go to other workers
    GET /whoami     {"pid", "worker_id"}
    GET /fill?n=N&size=S&prefix=P&seed=X
                    cache_update of N keys P0..P(N-1), each S bytes all made of one byte derived
                    from the key and X (so a torn value shows as mixed bytes); answers "done N"
    GET /check?n=N&prefix=P
                    reads the N keys back: counts of whole, absent, torn values (JSON)
    GET /getset?n=N   N cache_get + cache_set pairs on a small key space (the bench's route)
"""
import json
import os
import time
from urllib.parse import parse_qs

import uwsgi

try:
    import gyre
except ImportError:  # Debian's uWSGI
    gyre = None


def pause(seconds):
    if gyre is not None and gyre._core_kind() == "greenlet":
        gyre.sleep(seconds)
    else:
        time.sleep(seconds)


def describe(v):
    if isinstance(v, (bytes, str, int, bool, float)) or v is None:
        return [type(v).__name__, v.decode("latin-1") if isinstance(v, bytes) else v]
    if isinstance(v, (list, tuple)):
        return [type(v).__name__, sorted(describe(x)[1] for x in v)]
    return [type(v).__name__, repr(v)]


def decode_arg(a):
    if isinstance(a, dict) and "b" in a:
        return a["b"].encode("latin-1")
    if isinstance(a, dict) and "i" in a:
        return int(a["i"])
    return a


def call(name, *args):
    f = getattr(uwsgi, name, None)
    if f is None:
        return ["missing", name]
    try:
        return ["ok", describe(f(*[decode_arg(a) for a in args]))]
    except BaseException as e:  # noqa: B902 - the error is what is compared
        return ["error", type(e).__name__, str(e)]


def byte_for(key, seed):
    return bytes([(sum(key.encode()) + seed) % 251 + 1])


def fill(q):
    n, size = int(q["n"][0]), int(q["size"][0])
    prefix, seed = q.get("prefix", ["k"])[0], int(q.get("seed", ["0"])[0])
    cache = q.get("cache", [None])[0]
    for i in range(n):
        key = "%s%d" % (prefix, i)
        val = byte_for(key, seed + i) * size
        if cache:
            uwsgi.cache_update(key, val, 0, cache)
        else:
            uwsgi.cache_update(key, val)
    return "done %d" % n


def check(q):
    n, prefix = int(q["n"][0]), q.get("prefix", ["k"])[0]
    cache = q.get("cache", [None])[0]
    counts = {"whole": 0, "absent": 0, "torn": []}
    for i in range(n):
        key = "%s%d" % (prefix, i)
        v = uwsgi.cache_get(key, cache) if cache else uwsgi.cache_get(key)
        if v is None:
            counts["absent"] += 1
        elif len(set(v)) == 1 and len(v) > 0:
            counts["whole"] += 1
        else:
            counts["torn"].append([key, len(v), sorted(set(v))[:8]])
    return json.dumps(counts)


def getset(q):
    n = int(q.get("n", ["10"])[0])
    pid = os.getpid()
    hits = 0
    for i in range(n):
        key = "bench%d" % (i % 64)
        if uwsgi.cache_get(key) is not None:
            hits += 1
        uwsgi.cache_update(key, b"%d:%d" % (pid, i))
    return "ok %d" % hits


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/run":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        calls = json.loads(body)
        out = json.dumps({"pid": os.getpid(), "results": [call(*c) for c in calls]})
        if "hold" in q:
            pause(float(q["hold"][0]))
    elif path == "/whoami":
        out = json.dumps({"pid": os.getpid(), "worker_id": uwsgi.worker_id()})
    elif path == "/fill":
        out = fill(q)
    elif path == "/check":
        out = check(q)
    elif path == "/getset":
        out = getset(q)
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such route\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [out.encode()]
