"""Test app for test_process.py: an app that fails to import, for the master's respawn backoff."""
raise RuntimeError("proc_broken: this app cannot be imported")


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
