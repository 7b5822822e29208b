"""WebSocket endpoints through uWSGI's API (uwsgi.websocket_*), for
tests/integration/test_websocket.py. The same file runs under gyre and Debian's uWSGI.

Every endpoint logs one line when its WebSocket ends: `WS-END <name> <OSError text>` (or
`WS-END <name> returned`), on stderr, which both servers put in their log, so that the tests can
wait for what the server side saw.

    /echo             each message back: text as text, b"bin:..." as binary (the rest)
    /broadcast        each message to every other /broadcast socket (a chat room): a message
                      wakes the others through a pipe each, watched with uwsgi.wait_fd_read
                      beside the client socket, as uWSGI's async chat examples do
    /idle-then-spin   waits for one message, echoes it, then spins in Python (--harakiri)
    /return-body      handshake, one message, then returns a body: b"AFTER"
    /errors           the handshake's errors, as JSON: no key, a second call, headers sent
    /proto            handshake(key, origin, proto) given by the app
    /fcgi             a handshake over FastCGI: the error text in a 200
    /recv-nb          websocket_recv_nb() before the client sent anything
"""
import json
import os
import sys
import time

import uwsgi


def log(*parts):
    sys.stderr.write(" ".join(str(p) for p in parts) + "\n")
    sys.stderr.flush()


def echo(env):
    uwsgi.websocket_handshake()
    log("WS-OPEN echo")
    try:
        while True:
            msg = uwsgi.websocket_recv()
            if msg == b"close-me":
                log("WS-END echo returned")
                return
            if msg.startswith(b"bin:"):
                uwsgi.websocket_send_binary(msg[4:])
            else:
                uwsgi.websocket_send(msg)
    except OSError as e:
        log("WS-END echo", type(e).__name__, e)


ROOM = {}  # id -> (pending messages, pipe write end)


def broadcast(env):
    uwsgi.websocket_handshake()
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    me = object()
    inbox = []
    ROOM[me] = (inbox, wfd)
    fd = uwsgi.connection_fd()
    log("WS-OPEN broadcast", len(ROOM))
    try:
        while True:
            while True:
                msg = uwsgi.websocket_recv_nb()
                if not msg:
                    break
                for other, (box, w) in list(ROOM.items()):
                    if other is not me:
                        box.append(msg)
                        os.write(w, b"x")
            while inbox:
                uwsgi.websocket_send(inbox.pop(0))
            uwsgi.wait_fd_read(fd, 5)
            uwsgi.wait_fd_read(rfd, 5)
            uwsgi.suspend()
            try:
                os.read(rfd, 4096)
            except BlockingIOError:
                pass
    except OSError as e:
        log("WS-END broadcast", type(e).__name__, e)
    finally:
        del ROOM[me]
        os.close(rfd)
        os.close(wfd)


def idle_then_spin(env):
    uwsgi.websocket_handshake()
    log("WS-OPEN idle")
    msg = uwsgi.websocket_recv()
    uwsgi.websocket_send(msg)
    if msg == b"spin":
        end = time.monotonic() + 60
        while time.monotonic() < end:
            pass
    log("WS-END idle returned")


def return_body(env):
    uwsgi.websocket_handshake()
    msg = uwsgi.websocket_recv()
    uwsgi.websocket_send(msg)
    log("WS-END return-body returned")
    return [b"AFTER"]


def errors(env, start_response):
    out = {}
    # A request without Sec-WebSocket-Key (the test sends none).
    try:
        uwsgi.websocket_handshake()
        out["nokey"] = "no error"
    except OSError as e:
        out["nokey"] = "%s: %s" % (type(e).__name__, e)
    start_response("200 OK", [("Content-Type", "application/json")])
    body = json.dumps(out).encode()
    return [body]


def handshake_twice(env):
    uwsgi.websocket_handshake()
    try:
        uwsgi.websocket_handshake()
        uwsgi.websocket_send(b"second: no error")
    except OSError as e:
        uwsgi.websocket_send(("second: %s: %s" % (type(e).__name__, e)).encode())


def after_headers(env, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"started\n")
    try:
        uwsgi.websocket_handshake()
        return [b"no error\n"]
    except OSError as e:
        return [("%s: %s\n" % (type(e).__name__, e)).encode()]


def proto(env):
    uwsgi.websocket_handshake(env["HTTP_SEC_WEBSOCKET_KEY"], "http://origin.example", "chat")
    uwsgi.websocket_send(b"ok")
    uwsgi.websocket_recv()


def recv_nb(env):
    """recv_nb before the client sent anything (b''), then a message."""
    uwsgi.websocket_handshake()
    uwsgi.websocket_send(("first: %r" % uwsgi.websocket_recv_nb()).encode())
    msg = uwsgi.websocket_recv()
    uwsgi.websocket_send(b"got " + msg)
    uwsgi.websocket_recv()


def fcgi(env, start_response):
    try:
        uwsgi.websocket_handshake()
        text = "no error"
    except OSError as e:
        text = "%s: %s" % (type(e).__name__, e)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [text.encode()]


WS = {"/echo": echo, "/broadcast": broadcast, "/idle-then-spin": idle_then_spin,
      "/return-body": return_body, "/twice": handshake_twice, "/proto": proto,
      "/recv-nb": recv_nb}
PLAIN = {"/errors": errors, "/after-headers": after_headers, "/fcgi": fcgi}


def application(env, start_response):
    path = env.get("PATH_INFO", "/")
    if path in PLAIN:
        return PLAIN[path](env, start_response)
    if path in WS:
        body = WS[path](env)
        return body or []
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
