"""uwsgi.cache_* as an app sees it, for tests/integration/test_cache_redis.py: the same file
under gyre (a cache with store=redis...) and Debian's uWSGI (a local --cache2), so that the
answers of the two can be compared.

    POST /run         body: JSON list of calls, each [function_name, arg, ...] (strings stay str,
                      uWSGI's cache functions take str keys and values); answers a JSON list, one
                      entry per call: ["ok", type, value] (bytes as latin-1 text, lists of bytes
                      as lists of text) or ["error", exception type, message]
    /get?key=K        uwsgi.cache_get(K, "r") after logging "cache_redis_app: calling"; answers
                      "pid elapsed_seconds value" (or the error as "error TYPE: message")
    /ping             "pid core": no cache call
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

CACHE = "r"


def describe(v):
    if isinstance(v, bytes):
        return ["bytes", v.decode("latin-1")]
    if isinstance(v, list):
        return ["list", sorted(x.decode("latin-1") for x in v)]
    return [type(v).__name__, v]


def run(calls):
    out = []
    for name, *args in calls:
        try:
            out.append(["ok", *describe(getattr(uwsgi, name)(*args))])
        except Exception as e:  # noqa: B902 - the error is what is compared
            out.append(["error", type(e).__name__, str(e)])
    return out


def get(key):
    uwsgi.log("cache_redis_app: calling cache_get(%r)" % key)
    t0 = time.monotonic()
    try:
        v = uwsgi.cache_get(key, CACHE)
    except Exception as e:  # noqa: B902
        return "error %s: %s" % (type(e).__name__, e)
    return "%d %.3f %r" % (os.getpid(), time.monotonic() - t0, v)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/run":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.dumps(run(json.loads(environ["wsgi.input"].read(n)))).encode()
        ctype = "application/json"
    elif path == "/get":
        body, ctype = get(q["key"]).encode(), "text/plain"
    elif path == "/ping":
        core = gyre.core_id() if gyre is not None else None
        body, ctype = ("%d %s" % (os.getpid(), core)).encode(), "text/plain"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]
