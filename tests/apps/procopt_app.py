"""Test app for test_process_options.py, served by gyre and by Debian's uWSGI alike.

    /pid               "pid=<the worker's pid>"
    /hold?f=PATH&e=P2  creates P2 (the request has begun), then waits (up to 60 s) until PATH
                       exists: a worker kept busy until the test says so. gyre.sleep under
                       gyre (the core suspends), time.sleep under uWSGI
    /env?name=NAME     the worker's value of an environment variable
    /cwd               the worker's working directory
"""
import os
import time
from urllib.parse import parse_qs

try:
    import gyre
    _sleep = gyre.sleep
except ImportError:  # uWSGI
    _sleep = time.sleep


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/hold":
        if "e" in q:
            open(q["e"], "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(q["f"]) and time.monotonic() < deadline:
            _sleep(0.05)
        body = "held"
    elif path == "/env":
        body = os.environ.get(q["name"], "<unset>")
    elif path == "/cwd":
        body = os.getcwd()
    else:
        body = ""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("pid=%d %s" % (os.getpid(), body)).encode()]
