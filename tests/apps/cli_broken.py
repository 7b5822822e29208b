"""An app that cannot be imported: gyre must log the traceback and exit non-zero."""
import gyre_test_no_such_module_cli_broken  # noqa: F401


def application(environ, start_response):
    start_response("200 OK", [])
    return [b"unreachable"]
