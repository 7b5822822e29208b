/*
 * The uwsgi protocol, server side: nginx's uwsgi_pass.
 *
 * The head is the vars block (already CGI variables); the body is CONTENT_LENGTH raw bytes;
 * the response is plain HTTP/1.x, which nginx parses. One request per connection.
 *
 * Depends on: conn.c, response.c, server.c (server/README)
 */
#include "proto.h"
#include "uwsgi.h"

#include <assert.h>
#include <string.h>
#include "server.h"

/*
 * The parser's output, GY_MAX_PARAMS slots (16 KiB), is one array for the whole worker: a head
 * is parsed from start to end in one call, under the GIL (thread cores run gyre's code holding
 * it), and its few dozen params are then copied into the connection's own room. Were the slots
 * in every connection, each of thousands of parked requests would keep pages of them resident.
 */
static struct uwsgi_request parsed;

static int uwsgi_parse_head(struct gy_conn *c)
{
    int rc = proto_uwsgi_parse(c->buf, c->len, S.cfg->buffer_size, &parsed);
    if (rc == UWSGI_INCOMPLETE)
        return 0;
    if (rc < 0) {
        conn_reject(c, proto_uwsgi_strerror(rc));
        return -1;
    }
    struct gy_param *room = conn_param_room(c, parsed.nparams);
    if (!room && parsed.nparams) {
        conn_reject(c, "out of memory for the request's vars");
        return -1;
    }
    if (parsed.nparams) /* never 0 on success (a vars block holds a var), but memcpy wants room */
        memcpy(room, parsed.params, parsed.nparams * sizeof(*room));
    c->params = room;
    c->nparams = parsed.nparams;
    conn_body_length(c, (size_t)rc, parsed.content_length);
    return 1;
}

/* The framing headers and the blank line. */
static int uwsgi_head_finish(struct gy_conn *c, struct gy_response *r, int64_t content_length)
{
    (void)c;
    if (resp_head_content_length(r, content_length) < 0)
        return -1;
    return RESP_HEAD_APPEND_LIT(r, "\r\n");
}

static enum io_result uwsgi_send(struct gy_conn *c, struct iovec *head, struct iovec *body, int n)
{
    struct iovec iov[1 + GY_SEND_MAX_IOV];
    int k = 0;
    assert(n <= GY_SEND_MAX_IOV);
    if (head)
        iov[k++] = *head;
    for (int i = 0; i < n; i++)
        iov[k++] = body[i];
    return conn_write_all(c, iov, k);
}

static enum io_result uwsgi_send_file(struct gy_conn *c, int fd, off_t offset, uint64_t count,
                                      uint64_t *sent)
{
    return conn_sendfile(c, fd, offset, count, sent);
}

static bool uwsgi_finish(struct gy_conn *c, bool complete)
{
    (void)c;
    return complete; /* the end of the response is the close */
}

const struct gy_protocol proto_uwsgi = {
    .name = "uwsgi",
    .state_size = 0, /* the params are copied into the connection's room (above) */
    .parse_head = uwsgi_parse_head,
    /* nginx reads the status from an HTTP/1.1 status line whatever the client spoke. */
    .status_prefix = "HTTP/1.1 ",
    .head_finish = uwsgi_head_finish,
    .send = uwsgi_send,
    .send_file = uwsgi_send_file,
    .finish = uwsgi_finish,
};
