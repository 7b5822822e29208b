/*
 * WebSockets in a request (websocket.c): the opening handshake, then messages read and written
 * on the request's connection by the core serving it. RFC 6455 framing is proto/websocket.c's;
 * the Python functions (uwsgi.websocket_*) are uwsgi_websocket.c's.
 */
#ifndef GYRE_WS_SERVER_H
#define GYRE_WS_SERVER_H

#include "core.h"

/* The strings passed to websocket_handshake(); a NULL ptr: take the request's header. */
struct ws_handshake_args {
    const char *key, *origin, *proto;
    Py_ssize_t key_len, origin_len, proto_len;
};

/* Answer the request with 101 and make it a WebSocket. -1 with an OSError set (uWSGI's IOError
 * message, then why). */
int websocket_handshake(struct gy_core *c, const struct ws_handshake_args *a);
/* The next complete message (text or binary) as bytes; nonblocking: b'' when none is complete
 * yet. NULL with an OSError set when the WebSocket is (or just got) closed. */
PyObject *websocket_recv(struct gy_core *c, bool nonblocking);
/* One message, text (WS_OP_TEXT) or binary; -1 with an OSError set. `what` names it in the
 * error ("websocket message", "websocket binary message"). */
int websocket_send(struct gy_core *c, unsigned opcode, const char *msg, size_t len,
                   const char *what);
/* The worker stops gracefully (worker.c): every WebSocket parked in websocket_recv is closed
 * with 1001 (going away) and its recv raises, so that its app returns now instead of holding the
 * stop for its whole grace; a recv called later does the same. */
void websocket_server_stopping(void);
/* The request is over (wsgi.c, after the app returned or failed): close the WebSocket with 1000
 * if nobody did, and free its state. Nothing when the request made no handshake. */
void websocket_request_end(struct gy_core *c);

#endif
