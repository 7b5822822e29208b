"""The app of test_logging.py: responses of a chosen status, size and duration, the same under
gyre and under uWSGI."""
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    headers = [("Content-Type", "text/plain")]
    if path.startswith("/status/"):
        code = int(path.split("/")[2])
        start_response("%d Chosen" % code, headers + [("X-Log", "1")])
        return [b"" if code in (204, 304) else b"status body\n"]
    if path == "/sleep":
        time.sleep(float(query or "0.3"))
    elif path == "/big":
        start_response("200 OK", headers)
        return [b"x" * int(query or "100000")]
    elif path == "/empty":
        start_response("200 OK", headers)
        return [b""]
    elif path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", headers + [("X-Len", str(len(body)))])
        return [body]
    elif path == "/logvar":  # uwsgi.set_logvar: %(NAME) in --log-format
        import uwsgi
        for pair in query.split("&"):
            k, _, v = pair.partition("=")
            uwsgi.set_logvar(k, v.replace("+", " ").replace("%0A", "\n"))
    elif path == "/fail":
        raise RuntimeError("log_app: failing on purpose")
    start_response("200 OK", headers)
    return [b"hello\n"]
