/*
 * One wire protocol, seen from the server (proto_uwsgi.c, proto_fastcgi.c, proto_http.c). The
 * request model is shared: every protocol turns its head into CGI params (conn->params) and a
 * body framing; the WSGI layer, the cores and the connection handling are the same for all.
 * Adding a protocol: its proto/ parser, its proto_*.c, and a line in listen.c's table.
 */
#ifndef GYRE_PROTO_H
#define GYRE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "conn.h"
#include "response.h"

/* The most body iovecs one send() is handed: wsgi.c batches a response by it, and each
 * protocol sizes its own iovec array from it (the head and its framing included). */
#define GY_SEND_MAX_IOV 64

/* decode_body: the client called the request off (FastCGI's ABORT_REQUEST). */
#define GY_BODY_ABORTED PTRDIFF_MIN

struct gy_protocol {
    const char *name;
    /* Bytes of its own state per connection (conn->proto_state). */
    size_t state_size;
    /* REMOTE_ADDR comes from the socket's peer, not from the head (HTTP). */
    bool wants_peer;
    /* A new connection, or the next request on one: forget the last request's state. */
    void (*reset)(struct gy_conn *c);
    /* Loop side: c->buf[0..len) grew. 1: the head is complete (params, body framing set);
     * 0: need more bytes; -1: the connection was answered and/or closed. */
    int (*parse_head)(struct gy_conn *c);
    /* Body framing other than a plain length: decode buf[0..*len) in place, the data moved to
     * the front and *len set to its size; > 0 when the body ended (bytes of buf it used), 0
     * when every byte was consumed, GY_BODY_ABORTED when the client called the request off,
     * another value < 0 on bad input. NULL for length-framed bodies. */
    ptrdiff_t (*decode_body)(struct gy_conn *c, char *buf, size_t *len);
    /* Core side, before the app first reads the body (HTTP's 100 Continue). May be NULL. */
    enum io_result (*before_body)(struct gy_conn *c);
    /* Response: the head starts with this, then the status ("200 OK"). */
    const char *status_prefix;
    /* Append the framing headers and the blank line to r's head. content_length < 0: unknown.
     * -1 when out of memory. */
    int (*head_finish)(struct gy_conn *c, struct gy_response *r, int64_t content_length);
    /* Write the head (when not NULL: the first time) and then body[0..n), framed;
     * n <= GY_SEND_MAX_IOV (asserted). */
    enum io_result (*send)(struct gy_conn *c, struct iovec *head, struct iovec *body, int n);
    /* Write count bytes of fd from offset as response body, framed. */
    enum io_result (*send_file)(struct gy_conn *c, int fd, off_t offset, uint64_t count,
                                uint64_t *sent);
    /* Between the items of a streamed response: has the client called the request off
     * (FastCGI's ABORT_REQUEST)? May be NULL. */
    bool (*poll_abort)(struct gy_conn *c);
    /* After the response (complete or not): the protocol's end of request. True when the
     * exchange ended cleanly on the wire, so the connection may carry another request. */
    bool (*finish)(struct gy_conn *c, bool complete);
};

extern const struct gy_protocol proto_uwsgi, proto_fastcgi, proto_http;

#endif
