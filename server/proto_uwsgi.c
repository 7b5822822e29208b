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
#include "server.h"

static int uwsgi_parse_head(struct gy_conn *c)
{
    struct uwsgi_request *req = (struct uwsgi_request *)c->proto_state;
    int rc = proto_uwsgi_parse(c->buf, c->len, S.cfg->buffer_size, req);
    if (rc == UWSGI_INCOMPLETE)
        return 0;
    if (rc < 0) {
        conn_reject(c, proto_uwsgi_strerror(rc));
        return -1;
    }
    c->params = req->params;
    c->nparams = req->nparams;
    conn_body_length(c, (size_t)rc, req->content_length);
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
    .state_size = sizeof(struct uwsgi_request),
    .parse_head = uwsgi_parse_head,
    /* nginx reads the status from an HTTP/1.1 status line whatever the client spoke. */
    .status_prefix = "HTTP/1.1 ",
    .head_finish = uwsgi_head_finish,
    .send = uwsgi_send,
    .send_file = uwsgi_send_file,
    .finish = uwsgi_finish,
};
