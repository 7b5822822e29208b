"""App for tests/integration/test_config.py: reports what the configuration changed.

GET /        a JSON report: cwd, the CFG_* environment variables, pid, core, sys.path
GET /fixed   a known response: 11 bytes of body, 2 headers
"""
import json
import os
import sys


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/fixed":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Cfg", "1")])
        return [b"fixed body\n"]
    report = {
        "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("CFG_")},
        "pid": os.getpid(),
        "core": environ.get("gyre.core"),
        "sys_path": sys.path,
        "file": __file__,
    }
    body = json.dumps(report).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
