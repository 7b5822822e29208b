"""The names of the `uwsgi` module, for tests/integration/test_uwsgi_api_inventory.py: each
non-dunder name of dir(uwsgi) with its docstring (gyre marks what it does not provide yet)."""
import json

import uwsgi


def application(environ, start_response):
    names = {}
    for name in dir(uwsgi):
        if name.startswith("__"):
            continue
        obj = getattr(uwsgi, name)
        names[name] = obj.__doc__ if callable(obj) else None
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(names).encode()]
