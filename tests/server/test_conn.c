/*
 * conn.c's buffer: the window of ready body bytes, the bytes still to come, the pipelined
 * request behind a body, and the body an app leaves unread. With the real uwsgi and HTTP
 * protocols (server/proto_uwsgi.c, proto_http.c) on a real socketpair; the loop is
 * tests/server/conn_loop.c, and a core's wait on its socket is this file's runner: the client
 * sends its next piece, and the wait ends.
 */
#include "testlib.h"

#include "conn.h"
#include "engine.h"
#include "listen.h"
#include "proto.h"
#include "server.h"

#include <fcntl.h>
#include <sys/socket.h>

extern int conn_loop_polls;
extern engine_fd_fn conn_loop_fn;
extern void *conn_loop_ctx;
extern int conn_loop_events;

static struct gy_config cfg;
static struct gy_listener listener;

/* The client's side: what it sends when a core waits, piece by piece. */
struct test_client {
    int fd;
    const char *data;
    size_t len, sent, piece;
    int waits;
    int queued, closed;
};
static struct test_client client;

static void on_request_queued(void)
{
    client.queued++;
}

static void on_conn_closed(void)
{
    client.closed++;
}

/* A core waits on its socket: the client sends its next piece, and the socket is ready. */
static enum io_result core_wait(struct gy_conn *c, bool reading)
{
    (void)c;
    client.waits++;
    if (!reading || client.sent == client.len)
        return IO_TIMEOUT;
    size_t n = client.len - client.sent < client.piece ? client.len - client.sent : client.piece;
    ssize_t w = write(client.fd, client.data + client.sent, n);
    if (w <= 0)
        return IO_TIMEOUT;
    client.sent += (size_t)w;
    return IO_OK;
}

static void core_resume(struct gy_conn *c, enum io_result rc)
{
    (void)c;
    (void)rc;
}

static bool read_ahead; /* the next start()'s runner.read_ahead */

static struct conn_runner runner = {
    .request_queued = on_request_queued,
    .conn_closed = on_conn_closed,
    .suspend = core_wait,
    .resume = core_resume,
};

/* A connection on `proto` whose client sends first[0..nfirst) at once, then the rest of
 * `rest` piece bytes at a time, each time a core waits. Returns the queued connection. */
static struct gy_conn *start(const struct gy_protocol *proto, const char *first, size_t nfirst,
                             const char *rest, size_t nrest, size_t piece)
{
    /* Closed connections stay in S.free_conns, for conn.c to reuse (as a worker does). */
    if (!S.cfg) {
        S.cfg = &cfg;
        link_init(&S.pending);
        link_init(&S.free_conns);
    }
    cfg = (struct gy_config){ .buffer_size = 4096, .socket_timeout = 30, .keepalive_timeout = -1 };
    listener = (struct gy_listener){ .fd = -1, .proto = proto, .name = "test" };
    runner.write_behind = 0;
    runner.read_ahead = read_ahead;
    conn_set_runner(&runner);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        perror("socketpair");
        exit(1);
    }
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    client = (struct test_client){ .fd = sv[1], .data = rest, .len = nrest, .piece = piece };
    if (nfirst && write(sv[1], first, nfirst) != (ssize_t)nfirst) {
        perror("write");
        exit(1);
    }
    conn_accepted(sv[0], &listener);
    struct gy_conn *c = conn_pending_pop();
    if (c)
        c->phase = CONN_IN_CORE;
    return c;
}

static void finish(struct gy_conn *c)
{
    if (c && c->fd >= 0)
        conn_close(c);
    close(client.fd);
}

/* A uwsgi packet: the 4-byte header, then the vars. */
static size_t uwsgi_packet(char *out, const char *const *kv, int n)
{
    size_t len = 4;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(kv[i]);
        out[len] = (char)(l & 0xff);
        out[len + 1] = (char)(l >> 8);
        memcpy(out + len + 2, kv[i], l);
        len += 2 + l;
    }
    size_t vars = len - 4;
    out[0] = 0;
    out[1] = (char)(vars & 0xff);
    out[2] = (char)(vars >> 8);
    out[3] = 0;
    return len;
}

/* Read the whole body with conn_read_some, `chunk` bytes at a time. */
static size_t read_body(struct gy_conn *c, char *dst, size_t cap, size_t chunk, enum io_result *rc)
{
    size_t total = 0;
    *rc = IO_OK;
    while (total < cap) {
        size_t want = cap - total < chunk ? cap - total : chunk, got = 0;
        *rc = conn_read_some(c, dst + total, want, &got);
        if (*rc != IO_OK || got == 0)
            break;
        total += got;
    }
    return total;
}

TEST(uwsgi_body_window_moves_as_the_app_reads)
{
    char pkt[256 + 10];
    const char *kv[] = { "REQUEST_METHOD", "POST", "CONTENT_LENGTH", "10" };
    size_t n = uwsgi_packet(pkt, kv, 4);
    memcpy(pkt + n, "0123456789", 10);
    struct gy_conn *c = start(&proto_uwsgi, pkt, n + 10, NULL, 0, 0);
    if (!CHECK(c != NULL))
        return;
    CHECK_EQ_INT(client.queued, 1);
    CHECK_EQ_INT(c->head_len, n);
    CHECK_EQ_INT(conn_body_remaining(c), 10);

    char out[16];
    size_t got = 0;
    CHECK_EQ_INT(conn_read_some(c, out, 4, &got), IO_OK);
    CHECK_EQ_MEM(out, got, "0123", 4);
    CHECK_EQ_INT(conn_body_remaining(c), 6);

    size_t ready = 0;
    const char *p = conn_body_peek(c, &ready);
    CHECK_EQ_MEM(p, ready, "456789", 6);
    conn_body_consume(c, 2);
    CHECK_EQ_INT(conn_body_remaining(c), 4);

    CHECK_EQ_INT(conn_read_some(c, out, sizeof(out), &got), IO_OK);
    CHECK_EQ_MEM(out, got, "6789", 4);
    CHECK_EQ_INT(conn_body_remaining(c), 0);
    CHECK_EQ_INT(conn_read_some(c, out, sizeof(out), &got), IO_OK);
    CHECK_EQ_INT(got, 0); /* the end of the body, not a wait */
    CHECK_EQ_INT(client.waits, 0);
    finish(c);
}

/* The params of a request, looked up by name. */
static struct gy_slice param(const struct gy_conn *c, const char *name)
{
    for (uint32_t i = 0; i < c->nparams; i++)
        if (gy_slice_eq(c->params[i].name, name, strlen(name)))
            return c->params[i].value;
    return (struct gy_slice){ NULL, 0 };
}

TEST(uwsgi_head_larger_than_the_first_buffer_grows_it)
{
    /* A 3 KiB head (over the first 1 KiB: it doubles twice; under --buffer-size 4096), in pieces: the buffer starts small and grows before the head is
     * complete; every var reads back whole. */
    static char big[3000], pkt[4000];
    memset(big, 'v', sizeof(big) - 1);
    big[0] = '<';
    big[sizeof(big) - 2] = '>';
    const char *kv[] = { "REQUEST_METHOD", "GET", "HTTP_X_BIG", big, "PATH_INFO", "/grown" };
    size_t n = uwsgi_packet(pkt, kv, 6);
    struct gy_conn *c = start(&proto_uwsgi, pkt, 100, pkt + 100, n - 100, 1500);
    if (!CHECK(c == NULL)) /* not complete yet: the loop waits for the rest */
        return;
    for (int i = 0; i < 10 && client.queued == 0; i++) {
        core_wait(NULL, true);
        conn_loop_fn(conn_loop_ctx, client.fd, conn_loop_events);
    }
    c = conn_pending_pop();
    if (!CHECK(c != NULL))
        return;
    c->phase = CONN_IN_CORE;
    CHECK_EQ_INT(c->head_len, n);
    struct gy_slice v = param(c, "HTTP_X_BIG");
    CHECK_EQ_MEM(v.ptr, v.len, big, strlen(big));
    v = param(c, "PATH_INFO");
    CHECK_EQ_MEM(v.ptr, v.len, "/grown", 6);
    finish(c);
}

TEST(uwsgi_params_follow_the_buffer_when_a_body_grows_it)
{
    /* A small head with a body: at the head's end the buffer grows for the body, and the
     * params, slices of the head, move with its bytes. */
    char pkt[256 + 4000];
    const char *kv[] = { "REQUEST_METHOD", "POST", "CONTENT_LENGTH", "4000", "PATH_INFO", "/p" };
    size_t n = uwsgi_packet(pkt, kv, 6);
    memset(pkt + n, 'b', 4000);
    struct gy_conn *c = start(&proto_uwsgi, pkt, n + 4000, NULL, 0, 0);
    if (!CHECK(c != NULL))
        return;
    struct gy_slice v = param(c, "PATH_INFO");
    CHECK_EQ_MEM(v.ptr, v.len, "/p", 2);
    CHECK(v.ptr >= c->buf && v.ptr < c->buf + c->head_len);
    v = param(c, "REQUEST_METHOD");
    CHECK_EQ_MEM(v.ptr, v.len, "POST", 4);
    static char out[4000];
    enum io_result rc;
    CHECK_EQ_INT(read_body(c, out, sizeof(out), 1000, &rc), 4000);
    CHECK_EQ_INT(rc, IO_OK);
    CHECK(out[0] == 'b' && out[3999] == 'b');
    finish(c);
}

TEST(uwsgi_body_bigger_than_the_buffer_arrives_in_pieces)
{
    enum { BODY = 300000 };
    static char body[BODY], out[BODY];
    for (size_t i = 0; i < BODY; i++)
        body[i] = (char)('a' + (i * 7) % 26);
    char pkt[256];
    const char *kv[] = { "REQUEST_METHOD", "PUT", "CONTENT_LENGTH", "300000" };
    size_t n = uwsgi_packet(pkt, kv, 4);
    /* The head and 1000 body bytes at once; the rest 7000 bytes per wait of the core. */
    char first[256 + 1000];
    memcpy(first, pkt, n);
    memcpy(first + n, body, 1000);
    struct gy_conn *c = start(&proto_uwsgi, first, n + 1000, body + 1000, BODY - 1000, 7000);
    if (!CHECK(c != NULL))
        return;
    CHECK_EQ_INT(conn_body_remaining(c), BODY);
    enum io_result rc;
    size_t got = read_body(c, out, BODY, 4096, &rc);
    CHECK_EQ_INT(rc, IO_OK);
    CHECK_EQ_MEM(out, got, body, BODY);
    CHECK_EQ_INT(conn_body_remaining(c), 0);
    CHECK(client.waits >= (BODY - 1000) / 7000);
    finish(c);
}

TEST(uwsgi_body_cut_short_is_closed_not_a_hang)
{
    char pkt[256 + 3];
    const char *kv[] = { "REQUEST_METHOD", "POST", "CONTENT_LENGTH", "100" };
    size_t n = uwsgi_packet(pkt, kv, 4);
    memcpy(pkt + n, "abc", 3);
    struct gy_conn *c = start(&proto_uwsgi, pkt, n + 3, NULL, 0, 0);
    if (!CHECK(c != NULL))
        return;
    shutdown(client.fd, SHUT_WR); /* the client sends no more */
    char out[200];
    enum io_result rc;
    size_t got = read_body(c, out, sizeof(out), 50, &rc);
    CHECK_EQ_MEM(out, got, "abc", 3);
    CHECK_EQ_INT(rc, IO_CLOSED);
    finish(c);
}

static const char PIPELINED[] = "POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                                "GET /two HTTP/1.1\r\nHost: x\r\n\r\n";

TEST(http_pipelined_request_starts_where_the_body_ended)
{
    struct gy_conn *c = start(&proto_http, PIPELINED, sizeof(PIPELINED) - 1, NULL, 0, 0);
    if (!CHECK(c != NULL))
        return;
    CHECK_EQ_INT(conn_body_remaining(c), 5);
    char out[16];
    size_t got = 0;
    CHECK_EQ_INT(conn_read_some(c, out, sizeof(out), &got), IO_OK);
    CHECK_EQ_MEM(out, got, "hello", 5);
    CHECK(conn_keep_alive(c));

    conn_request_done(c, true);
    struct gy_conn *next = conn_pending_pop();
    if (!CHECK(next == c))
        return;
    CHECK_EQ_INT(c->requests, 1);
    CHECK_EQ_INT(conn_body_remaining(c), 0);
    CHECK_EQ_INT(c->len, c->head_len); /* nothing behind the second request */
    CHECK_EQ_MEM(c->buf, 9, "GET /two ", 9);
    finish(c);
}

TEST(http_unread_body_is_drained_before_the_next_request)
{
    /* The app reads nothing of a 5-byte body; the next request must not start inside it. */
    struct gy_conn *c = start(&proto_http, PIPELINED, sizeof(PIPELINED) - 1, NULL, 0, 0);
    if (!CHECK(c != NULL))
        return;
    conn_request_done(c, true);
    struct gy_conn *next = conn_pending_pop();
    if (!CHECK(next == c))
        return;
    CHECK_EQ_MEM(c->buf, 9, "GET /two ", 9);
    CHECK_EQ_INT(c->phase, CONN_QUEUED);
    finish(c);
}

TEST(http_unread_body_still_on_the_wire_is_drained)
{
    /* Only the head is there when the app finishes; the body and the next request follow. */
    static const char head[] = "POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n\r\n";
    static char rest[40000 + 64];
    memset(rest, 'z', 40000);
    static const char second[] = "GET /two HTTP/1.1\r\nHost: x\r\n\r\n";
    memcpy(rest + 40000, second, sizeof(second) - 1);
    struct gy_conn *c = start(&proto_http, head, sizeof(head) - 1, rest, 40000 + sizeof(second) - 1,
                              9000);
    if (!CHECK(c != NULL))
        return;
    conn_request_done(c, true);
    struct gy_conn *next = conn_pending_pop();
    if (!CHECK(next == c))
        return;
    CHECK_EQ_MEM(c->buf, 9, "GET /two ", 9);
    finish(c);
}

TEST(http_chunked_body_is_decoded_in_place)
{
    static const char req[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                              "GET /two HTTP/1.1\r\nHost: x\r\n\r\n";
    struct gy_conn *c = start(&proto_http, req, sizeof(req) - 1, NULL, 0, 0);
    if (!CHECK(c != NULL))
        return;
    CHECK(c->decoded);
    char out[32];
    enum io_result rc;
    size_t got = read_body(c, out, sizeof(out), 3, &rc);
    CHECK_EQ_INT(rc, IO_OK);
    CHECK_EQ_MEM(out, got, "hello world", 11);
    conn_request_done(c, true);
    CHECK(conn_pending_pop() == c);
    CHECK_EQ_MEM(c->buf, 9, "GET /two ", 9);
    finish(c);
}

TEST(http_chunked_body_in_pieces_across_chunk_boundaries)
{
    static const char head[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char body[] = "a\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n";
    /* Three bytes per wait: the decoder meets every size line and CRLF split. */
    struct gy_conn *c = start(&proto_http, head, sizeof(head) - 1, body, sizeof(body) - 1, 3);
    if (!CHECK(c != NULL))
        return;
    char out[32];
    enum io_result rc;
    size_t got = read_body(c, out, sizeof(out), 32, &rc);
    CHECK_EQ_INT(rc, IO_OK);
    CHECK_EQ_MEM(out, got, "0123456789abc", 13);
    CHECK(c->body_done);
    finish(c);
}

TEST(http_broken_chunked_framing_fails_every_read)
{
    static const char req[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "zz\r\nhello\r\n";
    struct gy_conn *c = start(&proto_http, req, sizeof(req) - 1, NULL, 0, 0);
    if (!CHECK(c != NULL))
        return;
    char out[32];
    size_t got = 0;
    CHECK_EQ_INT(conn_read_some(c, out, sizeof(out), &got), IO_BAD_BODY);
    CHECK_EQ_INT(conn_read_some(c, out, sizeof(out), &got), IO_BAD_BODY);
    CHECK(!conn_keep_alive(c) || c->body_error);
    finish(c);
}

/* ---- write-behind: the loop holds what the socket did not take (thread cores) ---------- */

/* A uwsgi request with no body, its connection in a core whose socket takes little: its send
 * buffer is small and the client does not read. */
static struct gy_conn *start_slow_reader(size_t write_behind)
{
    char pkt[64];
    const char *kv[] = { "REQUEST_METHOD", "GET" };
    size_t n = uwsgi_packet(pkt, kv, 2);
    struct gy_conn *c = start(&proto_uwsgi, pkt, n, NULL, 0, 0);
    if (c) {
        int small = 4096;
        setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        setsockopt(client.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    runner.write_behind = write_behind;
    return c;
}

/* Everything the client can read now, appended to out (up to cap). */
static size_t client_read_all(char *out, size_t have, size_t cap)
{
    fcntl(client.fd, F_SETFL, O_NONBLOCK);
    for (;;) {
        ssize_t n = read(client.fd, out + have, cap - have);
        if (n <= 0)
            return have;
        have += (size_t)n;
    }
}

TEST(write_behind_holds_what_the_socket_does_not_take_and_the_core_goes_on)
{
    struct gy_conn *c = start_slow_reader(1u << 20);
    if (!CHECK(c != NULL))
        return;
    enum { N = 300000 };
    static char sent[N], got[N + 16];
    for (size_t i = 0; i < N; i++)
        sent[i] = (char)('a' + i % 26);
    struct iovec iov[2] = { { sent, 100000 }, { sent + 100000, N - 100000 } };
    CHECK_EQ_INT(conn_write_all(c, iov, 2), IO_OK);
    CHECK_EQ_INT(client.waits, 0); /* the core never waited for the client */
    CHECK(c->out_len - c->out_pos > 0);
    CHECK(conn_loop_events & EV_WRITE); /* the loop watches for room */
    /* Another write queues behind the held bytes, in order. */
    struct iovec more = { (char *)"END", 3 };
    CHECK_EQ_INT(conn_write_all(c, &more, 1), IO_OK);
    conn_request_done(c, true);
    CHECK_EQ_INT(c->phase, CONN_FLUSHING); /* the core let go; the loop sends the rest */
    CHECK(c->core == NULL);
    size_t have = 0;
    for (int turns = 0; turns < 10000 && c->fd >= 0 && c->phase == CONN_FLUSHING; turns++) {
        have = client_read_all(got, have, sizeof(got));
        conn_loop_fn(conn_loop_ctx, c->fd, EV_WRITE); /* the socket has room: the loop flushes */
    }
    have = client_read_all(got, have, sizeof(got));
    CHECK_EQ_INT(have, N + 3);
    CHECK(memcmp(got, sent, N) == 0);
    CHECK_EQ_MEM(got + N, 3, "END", 3);
    CHECK_EQ_INT(client.closed, 1); /* uwsgi: the response ends with the close */
    finish(c);
}

TEST(write_behind_takes_the_rest_of_a_file_that_fits)
{
    struct gy_conn *c = start_slow_reader(1u << 20);
    if (!CHECK(c != NULL))
        return;
    enum { N = 400000 };
    static char sent[N], got[N + 16];
    for (size_t i = 0; i < N; i++)
        sent[i] = (char)('A' + i % 23);
    char path[] = "/tmp/gyre-test-conn-XXXXXX";
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0))
        return;
    unlink(path);
    CHECK(write(fd, sent, N) == N);
    uint64_t out = 0;
    /* From offset 1000: what sendfile did not take is read into the held bytes. */
    CHECK_EQ_INT(conn_sendfile(c, fd, 1000, N - 1000, &out), IO_OK);
    CHECK_EQ_INT(out, N - 1000);
    CHECK_EQ_INT(client.waits, 0);
    conn_request_done(c, true);
    CHECK_EQ_INT(c->phase, CONN_FLUSHING);
    size_t have = 0;
    for (int turns = 0; turns < 10000 && c->fd >= 0 && c->phase == CONN_FLUSHING; turns++) {
        have = client_read_all(got, have, sizeof(got));
        conn_loop_fn(conn_loop_ctx, c->fd, EV_WRITE);
    }
    have = client_read_all(got, have, sizeof(got));
    CHECK_EQ_INT(have, N - 1000);
    CHECK(memcmp(got, sent + 1000, N - 1000) == 0);
    close(fd);
    finish(c);
}

TEST(write_behind_is_bounded_past_it_the_core_waits_for_the_client)
{
    struct gy_conn *c = start_slow_reader(65536);
    if (!CHECK(c != NULL))
        return;
    static char big[300000];
    memset(big, 'x', sizeof(big));
    struct iovec iov = { big, sizeof(big) };
    /* More than the bound is left after the socket is full: the core waits (and this test's
     * client never reads, so the wait times out). */
    CHECK_EQ_INT(conn_write_all(c, &iov, 1), IO_TIMEOUT);
    CHECK_EQ_INT(client.waits, 1);
    CHECK(c->out_len - c->out_pos == 0);
    finish(c);
}

TEST(write_behind_off_the_core_waits_as_before)
{
    struct gy_conn *c = start_slow_reader(0);
    if (!CHECK(c != NULL))
        return;
    static char some[100000];
    struct iovec iov = { some, sizeof(some) };
    CHECK_EQ_INT(conn_write_all(c, &iov, 1), IO_TIMEOUT);
    CHECK_EQ_INT(client.waits, 1);
    finish(c);
}

/* ---- read-ahead: a body that fits is read on the loop before a core takes the request ---- */

TEST(read_ahead_queues_the_request_only_once_its_body_is_in)
{
    char pkt[256 + 10];
    const char *kv[] = { "REQUEST_METHOD", "POST", "CONTENT_LENGTH", "10" };
    size_t n = uwsgi_packet(pkt, kv, 4);
    memcpy(pkt + n, "0123", 4);
    read_ahead = true;
    struct gy_conn *c = start(&proto_uwsgi, pkt, n + 4, NULL, 0, 0);
    read_ahead = false;
    CHECK(c == NULL); /* not queued: its body is still coming */
    CHECK_EQ_INT(client.queued, 0);
    CHECK(conn_loop_events & EV_READ);
    if (!CHECK(write(client.fd, "4567", 4) == 4))
        return;
    c = conn_loop_ctx;
    conn_loop_fn(c, c->fd, EV_READ);
    CHECK_EQ_INT(client.queued, 0);
    if (!CHECK(write(client.fd, "89", 2) == 2))
        return;
    conn_loop_fn(c, c->fd, EV_READ);
    CHECK_EQ_INT(client.queued, 1);
    c = conn_pending_pop();
    if (!CHECK(c != NULL))
        return;
    c->phase = CONN_IN_CORE;
    size_t ready = 0;
    const char *p = conn_body_peek(c, &ready);
    CHECK_EQ_MEM(p, ready, "0123456789", 10); /* all of it buffered: the core never waits */
    CHECK(c->body_done);
    finish(c);
}

TEST(read_ahead_leaves_a_body_larger_than_the_buffer_to_the_core)
{
    char pkt[256];
    const char *kv[] = { "REQUEST_METHOD", "POST", "CONTENT_LENGTH", "10000000" };
    size_t n = uwsgi_packet(pkt, kv, 4);
    read_ahead = true;
    struct gy_conn *c = start(&proto_uwsgi, pkt, n, NULL, 0, 0);
    read_ahead = false;
    CHECK(c != NULL); /* queued at once: the core streams it */
    CHECK_EQ_INT(client.queued, 1);
    finish(c);
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
