"""The app of bench/wsbench.py (issue 14): websockets through uWSGI's API, served unchanged by
gyre and by uWSGI (its Tornado loop engine or its async mode, both with greenlets).

    /echo     uwsgi.websocket_handshake(), then echo every message back (websocket_recv ->
              websocket_send) until the client closes
    /park     the handshake, then wait in websocket_recv() (the idle websocket: a parked core);
              counted while it waits
    /parked   how many /park websockets are waiting now (text)
    /has-ws   "yes" if this server's uwsgi module has websocket_handshake, else "no"
    /hello    b"Hello, World!": the bench's "is it up" probe

A server whose uwsgi module lacks the websocket API answers /echo and /park with 501 and a body
saying so (the bench reports "no websocket API yet" instead of failing).
"""
import uwsgi

parked = 0


def _reply(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def echo():
    while True:
        try:
            msg = uwsgi.websocket_recv()
        except IOError:  # uWSGI's signal for a closed (or failed) websocket
            return
        uwsgi.websocket_send(msg)


def park():
    global parked
    parked += 1
    try:
        while True:
            uwsgi.websocket_recv()  # the bench sends nothing: this waits until it closes
    except IOError:
        return
    finally:
        parked -= 1


def application(environ, start_response):
    path = environ.get("PATH_INFO")
    if path in ("/echo", "/park"):
        if not hasattr(uwsgi, "websocket_handshake"):
            return _reply(start_response, b"no websocket API\n", "501 Not Implemented")
        try:
            uwsgi.websocket_handshake(environ.get("HTTP_SEC_WEBSOCKET_KEY", ""),
                                      environ.get("HTTP_ORIGIN", ""))
        except NotImplementedError:  # a placeholder for a name not provided yet
            return _reply(start_response, b"no websocket API\n", "501 Not Implemented")
        (echo if path == "/echo" else park)()
        return []
    if path == "/parked":
        return _reply(start_response, str(parked).encode())
    if path == "/has-ws":
        return _reply(start_response, b"yes" if hasattr(uwsgi, "websocket_handshake") else b"no")
    return _reply(start_response, b"Hello, World!")
