"""App for tests/integration/test_cli.py: reports what the command line changed."""
import json
import os
import sys
from urllib.parse import parse_qs

import gyre


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/sleep":
        q = parse_qs(environ.get("QUERY_STRING", ""))
        gyre.sleep(float(q.get("s", ["1"])[0]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    report = {
        "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("GYRE_T_")},
        "sys_path": sys.path,
        "core": environ.get("gyre.core"),
    }
    body = json.dumps(report).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def alt(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"alt callable"]
