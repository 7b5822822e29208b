/*
 * FastCGI 1.0 responder, server side: nginx's fastcgi_pass.
 *
 * One request at a time per connection (FCGI_MPXS_CONNS=0): a BEGIN_REQUEST for a second id
 * while one is served gets END_REQUEST(CANT_MPX_CONN), which is what the spec asks of a server
 * that does not multiplex; nginx never multiplexes. FCGI_KEEP_CONN is honoured: the connection
 * then carries request after request (nginx `fastcgi_keep_conn on` with an upstream keepalive
 * pool), and is closed after END_REQUEST when the flag is clear.
 *
 * The record parser (proto/fastcgi.c) runs over the connection's buffer: PARAMS content is
 * gathered in the connection's scratch buffer (--buffer-size bytes) and parsed once complete;
 * STDIN content is compacted in place into body bytes, so the app reads it as it arrives.
 * Management records (GET_VALUES, unknown types) are answered where they are met.
 *
 * Depends on: conn.c, log.c, response.c, server.c (server/README)
 */
#include "fastcgi.h"
#include "log.h"
#include "proto.h"
#include "server.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* FastCGI state of a connection (one request at a time: FCGI_MPXS_CONNS=0), in its
 * proto_state. */
struct fcgi_conn {
    struct fcgi_parser parser; /* per connection: records run across requests */
    uint16_t request_id;       /* the request being served, 0 between requests */
    uint8_t flags;             /* its BEGIN_REQUEST flags (FCGI_KEEP_CONN) */
    bool aborted;              /* ABORT_REQUEST seen */
    bool params_done;
    size_t plen; /* PARAMS bytes gathered in conn->scratch */
    struct fcgi_params params;
};

static inline struct fcgi_conn *fcgi_of(struct gy_conn *c)
{
    return (struct fcgi_conn *)c->proto_state;
}

static void fcgi_reset(struct gy_conn *c)
{
    struct fcgi_conn *f = fcgi_of(c);
    if (c->scratch_cap < S.cfg->buffer_size) {
        char *p = realloc(c->scratch, S.cfg->buffer_size);
        if (p) {
            c->scratch = p;
            c->scratch_cap = S.cfg->buffer_size;
        }
    }
    if (c->requests == 0)
        memset(&f->parser, 0, sizeof(f->parser));
    f->request_id = 0;
    f->flags = 0;
    f->aborted = false;
    f->params_done = false;
    f->plen = 0;
}

/* Small answers the loop writes on the spot: END_REQUEST for a request gyre will not serve,
 * GET_VALUES_RESULT, UNKNOWN_TYPE. One that cannot go out whole (the peer is not reading)
 * breaks the record stream: what follows would be read as garbage. The socket is shut down
 * instead, so that every later read or write on it fails and the connection ends through its
 * usual path (closing it here would pull it from under the parse loop that called). */
static void write_record_now(struct gy_conn *c, const char *rec, size_t n)
{
    if (conn_write_now(c, rec, n) < 0) {
        log_msg("%s: the peer does not read our records: connection shut down", c->listener->name);
        shutdown(c->fd, SHUT_RDWR);
    }
}

static void send_end_request(struct gy_conn *c, uint16_t id, uint8_t status)
{
    char rec[FCGI_END_REQUEST_LEN];
    int n = proto_fcgi_encode_end_request(rec, sizeof(rec), id, 0, status);
    if (n > 0)
        write_record_now(c, rec, (size_t)n);
}

static void answer_management(struct gy_conn *c, const struct fcgi_event *ev)
{
    char rec[FCGI_GET_VALUES_RESULT_MAX];
    int n;
    if (ev->type == FCGI_EV_GET_VALUES) {
        int asked = proto_fcgi_get_values_asked(ev->data.ptr, ev->data.len);
        struct fcgi_values v = { .max_conns = (uint32_t)S.max_conns,
                                 .max_reqs = (uint32_t)S.ncores,
                                 .mpxs_conns = 0 };
        n = asked < 0 ? asked
                      : proto_fcgi_encode_get_values_result(rec, sizeof(rec), (unsigned)asked, &v);
    } else {
        n = proto_fcgi_encode_unknown_type(rec, sizeof(rec), ev->record_type);
    }
    if (n > 0)
        write_record_now(c, rec, (size_t)n);
}

/* A BEGIN_REQUEST: 1 if it starts the request gyre serves next. */
static int begin(struct gy_conn *c, const struct fcgi_event *ev)
{
    struct fcgi_conn *f = fcgi_of(c);
    if (f->request_id != 0) {
        send_end_request(c, ev->request_id, FCGI_CANT_MPX_CONN);
        return 0;
    }
    if (ev->role != FCGI_RESPONDER) {
        log_msg("%s: FastCGI role %u is not served (responder only)", c->listener->name,
                (unsigned)ev->role);
        send_end_request(c, ev->request_id, FCGI_UNKNOWN_ROLE);
        return 0;
    }
    f->request_id = ev->request_id;
    f->flags = ev->flags;
    return 1;
}

static int fcgi_parse_head(struct gy_conn *c)
{
    struct fcgi_conn *f = fcgi_of(c);
    while (c->raw_pos < c->len) {
        struct fcgi_event ev;
        int n = proto_fcgi_next(&f->parser, c->buf + c->raw_pos, c->len - c->raw_pos, &ev);
        if (n < 0) {
            conn_reject(c, proto_fcgi_strerror(n));
            return -1;
        }
        c->raw_pos += (size_t)n;
        switch (ev.type) {
        case FCGI_EV_NONE:
        case FCGI_EV_DATA:
        case FCGI_EV_DATA_END:
            break;
        case FCGI_EV_BEGIN_REQUEST:
            if (!begin(c, &ev) && f->request_id == 0 && !(ev.flags & FCGI_KEEP_CONN)) {
                conn_close(c); /* answered; the peer asked for the connection to end */
                return -1;
            }
            break;
        case FCGI_EV_ABORT_REQUEST:
            if (ev.request_id == f->request_id) {
                /* Aborted before the app saw it: nothing to run. */
                send_end_request(c, ev.request_id, FCGI_REQUEST_COMPLETE);
                if (!(f->flags & FCGI_KEEP_CONN)) {
                    conn_close(c);
                    return -1;
                }
                f->request_id = 0;
                f->plen = 0;
            }
            break;
        case FCGI_EV_PARAMS:
            if (ev.request_id != f->request_id)
                break;
            if (c->scratch_cap - f->plen < ev.data.len) {
                conn_reject(c, "FastCGI params larger than buffer-size");
                return -1;
            }
            memcpy(c->scratch + f->plen, ev.data.ptr, ev.data.len);
            f->plen += ev.data.len;
            break;
        case FCGI_EV_PARAMS_END: {
            if (ev.request_id != f->request_id)
                break;
            int rc = proto_fcgi_parse_params(c->scratch, f->plen, &f->params);
            if (rc < 0) {
                conn_reject(c, proto_fcgi_strerror(rc));
                return -1;
            }
            f->params_done = true;
            c->params = f->params.params;
            c->nparams = f->params.nparams;
            c->keep_alive = (f->flags & FCGI_KEEP_CONN) != 0;
            /* The body's records follow. The head's records are parsed and its params live in
             * scratch: nothing points into their bytes, so they leave the buffer. Kept, a head
             * of records, padding and management records could fill the buffer to its last
             * byte and leave no room to read the body into. */
            memmove(c->buf, c->buf + c->raw_pos, c->len - c->raw_pos);
            c->len -= c->raw_pos;
            conn_body_decoded(c, 0);
            return 1;
        }
        case FCGI_EV_STDIN:
        case FCGI_EV_STDIN_END:
            if (ev.request_id == f->request_id && f->request_id != 0) {
                conn_reject(c, "FastCGI STDIN before the end of PARAMS");
                return -1;
            }
            break;
        case FCGI_EV_GET_VALUES:
        case FCGI_EV_UNKNOWN_TYPE:
            answer_management(c, &ev);
            break;
        }
    }
    /* Everything buffered is consumed; the bytes stay (a rejection logs how many came) until
     * the head is complete or the connection ends: a head is a few KiB and the buffer holds it. */
    return 0;
}

/* Compact the STDIN content of buf[0..*len) to its front (see struct gy_protocol). */
static ptrdiff_t fcgi_decode_body(struct gy_conn *c, char *buf, size_t *len)
{
    struct fcgi_conn *f = fcgi_of(c);
    size_t in = 0, out = 0;
    while (in < *len) {
        struct fcgi_event ev;
        int n = proto_fcgi_next(&f->parser, buf + in, *len - in, &ev);
        if (n < 0) {
            *len = out;
            return n;
        }
        in += (size_t)n;
        switch (ev.type) {
        case FCGI_EV_STDIN:
            if (ev.request_id == f->request_id) {
                memmove(buf + out, ev.data.ptr, ev.data.len);
                out += ev.data.len;
            }
            break;
        case FCGI_EV_STDIN_END:
            if (ev.request_id == f->request_id) {
                *len = out;
                return (ptrdiff_t)in;
            }
            break;
        case FCGI_EV_ABORT_REQUEST:
            if (ev.request_id == f->request_id) {
                f->aborted = true;
                *len = out;
                return GY_BODY_ABORTED; /* the app's read fails; the request ends */
            }
            break;
        case FCGI_EV_BEGIN_REQUEST:
            begin(c, &ev); /* a second request: CANT_MPX_CONN */
            break;
        case FCGI_EV_GET_VALUES:
        case FCGI_EV_UNKNOWN_TYPE:
            answer_management(c, &ev);
            break;
        default:
            break;
        }
    }
    *len = out;
    return 0;
}

/* During the response nothing but ABORT_REQUEST (or management records) can arrive: nginx
 * waits for END_REQUEST before it reuses the connection. Look without waiting. */
static bool fcgi_poll_abort(struct gy_conn *c)
{
    struct fcgi_conn *f = fcgi_of(c);
    if (!c->body_done || c->len == c->cap)
        return f->aborted;
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
    if (n == 0)
        return true; /* closed: nobody is left to read the response */
    if (n < 0)
        return f->aborted;
    c->len += (size_t)n;
    while (c->raw_pos < c->len && !f->aborted) {
        struct fcgi_event ev;
        int k = proto_fcgi_next(&f->parser, c->buf + c->raw_pos, c->len - c->raw_pos, &ev);
        if (k < 0)
            return true;
        c->raw_pos += (size_t)k;
        if (ev.type == FCGI_EV_ABORT_REQUEST && ev.request_id == f->request_id)
            f->aborted = true;
        else if (ev.type == FCGI_EV_GET_VALUES || ev.type == FCGI_EV_UNKNOWN_TYPE)
            answer_management(c, &ev);
        else if (ev.type == FCGI_EV_BEGIN_REQUEST)
            begin(c, &ev);
    }
    return f->aborted;
}

static int fcgi_head_finish(struct gy_conn *c, struct gy_response *r, int64_t content_length)
{
    (void)c;
    if (resp_head_content_length(r, content_length) < 0)
        return -1;
    return RESP_HEAD_APPEND_LIT(r, "\r\n");
}

/* Wrap the bytes of head and body[0..n) in STDOUT records: full records of FCGI_STREAM_CHUNK
 * bytes (no padding needed), the last one padded to 8. A batch of iovecs goes out per writev. */
static enum io_result fcgi_send(struct gy_conn *c, struct iovec *head, struct iovec *body, int n)
{
    uint16_t id = fcgi_of(c)->request_id;
    enum { MAXIOV = 128, MAXREC = 40 };
    struct iovec out[MAXIOV];
    char headers[MAXREC][FCGI_HEADER_LEN];
    int nout = 0, nrec = 0;

    /* The input as one sequence: head first, then the body. */
    struct iovec in[1 + GY_SEND_MAX_IOV];
    int nin = 0;
    size_t total = 0;
    assert(n <= GY_SEND_MAX_IOV);
    if (head)
        in[nin++] = *head;
    for (int i = 0; i < n; i++)
        in[nin++] = body[i];
    for (int i = 0; i < nin; i++)
        total += in[i].iov_len;

    int i = 0;
    size_t off = 0; /* into in[i] */
    while (total > 0) {
        size_t rec_len = fcgi_stream_chunk(total);
        /* Room for this record: header, up to nin slices, padding. */
        if (nrec == MAXREC || nout + nin + 2 > MAXIOV) {
            enum io_result rc = conn_write_all(c, out, nout);
            if (rc != IO_OK)
                return rc;
            nout = nrec = 0;
        }
        proto_fcgi_encode_stdout_header(headers[nrec], FCGI_HEADER_LEN, id, rec_len);
        out[nout++] = (struct iovec){ headers[nrec++], FCGI_HEADER_LEN };
        size_t need = rec_len;
        while (need > 0) {
            size_t avail = in[i].iov_len - off;
            size_t take = avail < need ? avail : need;
            if (take)
                out[nout++] = (struct iovec){ (char *)in[i].iov_base + off, take };
            need -= take;
            off += take;
            if (off == in[i].iov_len) {
                i++;
                off = 0;
            }
        }
        size_t pad = fcgi_padding_length(rec_len);
        if (pad)
            out[nout++] = (struct iovec){ (void *)FCGI_PADDING_BYTES, pad };
        total -= rec_len;
    }
    return nout ? conn_write_all(c, out, nout) : IO_OK;
}

static enum io_result fcgi_send_file(struct gy_conn *c, int fd, off_t offset, uint64_t count,
                                     uint64_t *sent)
{
    *sent = 0;
    while (*sent < count) {
        size_t rec_len = fcgi_stream_chunk(count - *sent);
        char hdr[FCGI_HEADER_LEN];
        proto_fcgi_encode_stdout_header(hdr, sizeof(hdr), fcgi_of(c)->request_id, rec_len);
        struct iovec iov = { hdr, sizeof(hdr) };
        enum io_result rc = conn_write_all(c, &iov, 1);
        uint64_t got = 0;
        if (rc == IO_OK)
            rc = conn_sendfile(c, fd, offset + (off_t)*sent, rec_len, &got);
        *sent += got;
        if (rc == IO_OK && got < rec_len) {
            /* The file shrank under us: the record was announced, so fill it. */
            static const char zeros[4096];
            for (uint64_t left = rec_len - got; rc == IO_OK && left > 0;) {
                struct iovec z = { (void *)zeros,
                                   left < sizeof(zeros) ? (size_t)left : sizeof(zeros) };
                left -= z.iov_len;
                rc = conn_write_all(c, &z, 1);
            }
            if (rc == IO_OK)
                count = *sent; /* stop after this record */
        }
        size_t pad = fcgi_padding_length(rec_len);
        if (rc == IO_OK && pad) {
            struct iovec p = { (void *)FCGI_PADDING_BYTES, pad };
            rc = conn_write_all(c, &p, 1);
        }
        if (rc != IO_OK)
            return rc;
    }
    return IO_OK;
}

/* The empty STDOUT record closing the stream, then END_REQUEST. */
static bool fcgi_finish(struct gy_conn *c, bool complete)
{
    struct fcgi_conn *f = fcgi_of(c);
    /* Records that came while the request ran: a BEGIN_REQUEST among them was sent while this
     * one was active, and gets CANT_MPX_CONN now, before our END_REQUEST. */
    fcgi_poll_abort(c);
    /* A cut response (a failed write, a body shorter than its Content-Length) gets no
     * END_REQUEST: the close is what tells nginx, which must not reuse the connection. */
    if (!complete && !f->aborted)
        return false;
    char recs[FCGI_HEADER_LEN + FCGI_END_REQUEST_LEN];
    proto_fcgi_encode_stdout_header(recs, FCGI_HEADER_LEN, f->request_id, 0);
    proto_fcgi_encode_end_request(recs + FCGI_HEADER_LEN, FCGI_END_REQUEST_LEN, f->request_id, 0,
                                  FCGI_REQUEST_COMPLETE);
    struct iovec iov = { recs, sizeof(recs) };
    /* An aborted request ends cleanly too: END_REQUEST closes it on the wire. */
    return conn_write_all(c, &iov, 1) == IO_OK;
}

const struct gy_protocol proto_fastcgi = {
    .name = "fastcgi",
    .state_size = sizeof(struct fcgi_conn),
    .reset = fcgi_reset,
    .parse_head = fcgi_parse_head,
    .decode_body = fcgi_decode_body,
    /* CGI style: the status is a header of the response nginx turns into HTTP. */
    .status_prefix = "Status: ",
    .head_finish = fcgi_head_finish,
    .send = fcgi_send,
    .send_file = fcgi_send_file,
    .poll_abort = fcgi_poll_abort,
    .finish = fcgi_finish,
};
