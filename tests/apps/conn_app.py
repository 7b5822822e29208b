"""App for test_conn_limits.py: answers without reading the body, or reads it all."""
import hashlib


def application(environ, start_response):
    # Apache's mod_proxy_fcgi puts the path in SCRIPT_NAME, nginx and the tests in PATH_INFO.
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    if path == "/reject":
        # A 413 answered without reading the body, as apps checking a limit do.
        body = b"too large\n"
        start_response("413 Request Entity Too Large",
                       [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/echo":
        data = environ["wsgi.input"].read()
        body = ("%d %s" % (len(data), hashlib.sha256(data).hexdigest())).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
