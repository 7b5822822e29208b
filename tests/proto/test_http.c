/*
 * Unit tests of the HTTP/1.x request parser and the chunked body decoder. Every input is parsed
 * from a guarded copy whose last byte sits just before an inaccessible page, so an over-read
 * crashes the test instead of passing. The chunked decoder writes to its buffer, so its inputs
 * are guarded copies made writable again (writable_copy); the guard page stays.
 */
#include "testlib.h"
#include "http.h"

#define LIT(s) s, sizeof(s) - 1

/* ---- helpers ---- */

/* A guarded copy parsed, kept alive while its slices are checked. */
struct parsed {
    char *buf;
    size_t len;
    int r;
    struct http_request req;
};

static struct parsed *parse_lim(const char *data, size_t len, const struct http_limits *lim)
{
    static struct parsed p;

    p.buf = guarded_copy(data, len);
    p.len = len;
    p.r = proto_http_parse_request(p.buf, len, 0, lim, &p.req);
    return &p;
}

static void parsed_free(struct parsed *p)
{
    guarded_free(p->buf, p->len);
}

static int status_lim(const char *data, size_t len, const struct http_limits *lim)
{
    struct parsed *p = parse_lim(data, len, lim);
    int r = p->r;

    parsed_free(p);
    return r;
}

static int status_hinted(const char *data, size_t len, size_t last_len,
                         const struct http_limits *lim)
{
    static struct http_request req;
    char *buf = guarded_copy(data, len);
    int r = proto_http_parse_request(buf, len, last_len, lim, &req);

    guarded_free(buf, len);
    return r;
}

#define STATUS(lit) status_lim((lit), sizeof(lit) - 1, NULL)

static int slice_is(struct gy_slice s, const char *want)
{
    return CHECK_EQ_MEM(s.ptr, s.len, want, strlen(want));
}

/* Every slice of a successful parse lies inside buf[0..r). */
static void check_slices_inside(const struct parsed *p)
{
    const struct http_request *q = &p->req;
    const struct gy_slice *s[5] = { &q->method, &q->target, &q->path, &q->query, &q->host };
    const char *end = p->buf + p->r;

    for (int i = 0; i < 5; i++)
        CHECK(s[i]->ptr >= p->buf && s[i]->ptr <= end && s[i]->len <= (size_t)(end - s[i]->ptr));
    for (uint32_t i = 0; i < q->nheaders; i++) {
        const struct gy_slice *n = &q->headers[i].name, *v = &q->headers[i].value;

        CHECK(n->ptr >= p->buf && n->len > 0 && n->len <= (size_t)(end - n->ptr));
        CHECK(v->ptr >= p->buf && v->len <= (size_t)(end - v->ptr));
        CHECK(n->ptr[n->len] == ':');
    }
}

/*
 * Every proper prefix is INCOMPLETE and the whole gives want, both unhinted and fed byte by
 * byte with the last_len hint; appending bytes after a complete head changes nothing.
 */
static void check_prefixes(const char *data, size_t len, int want, const struct http_limits *lim)
{
    char *more;

    for (size_t n = 0; n < len; n++) {
        TEST_CONTEXT("prefix of %zu bytes", n);
        CHECK_EQ_INT(status_lim(data, n, lim), HTTP_INCOMPLETE);
        CHECK_EQ_INT(status_hinted(data, n, n ? n - 1 : 0, lim), HTTP_INCOMPLETE);
    }
    TEST_CONTEXT("whole, %zu bytes", len);
    CHECK_EQ_INT(status_lim(data, len, lim), want);
    CHECK_EQ_INT(status_hinted(data, len, len ? len - 1 : 0, lim), want);
    if (want > 0) {
        more = malloc(len + 3);
        memcpy(more, data, len);
        memcpy(more + len, "X\r\n", 3);
        TEST_CONTEXT("whole and 3 more bytes");
        CHECK_EQ_INT(status_lim(more, len + 3, lim), want);
        free(more);
    }
}

static void check_chunked(const char *in, size_t len, ptrdiff_t want, const char *want_data,
                          size_t want_len);

/* ---- realistic requests ---- */

static const char curl_get[] = "GET /hello/world?a=1&b=%C3%A9 HTTP/1.1\r\n"
                               "Host: localhost:8080\r\n"
                               "User-Agent: curl/7.88.1\r\n"
                               "Accept: */*\r\n"
                               "\r\n";

static const char browser_get[] =
    "GET /static/app.js?v=3 HTTP/1.1\r\n"
    "Host: example.test\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Referer: http://example.test/\r\n"
    "Cookie: session=abc123; theme=dark\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: script\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "If-None-Match: \"33a64df5\"\r\n"
    "Cache-Control: max-age=0\r\n"
    "\r\n";

static const char post_json_head[] = "POST /api/items HTTP/1.1\r\n"
                                     "Host: localhost:8080\r\n"
                                     "User-Agent: curl/7.88.1\r\n"
                                     "Accept: */*\r\n"
                                     "Content-Type: application/json\r\n"
                                     "Content-Length: 27\r\n"
                                     "\r\n";
static const char post_json_body[] = "{\"name\":\"widget\",\"qty\": 30}";

static const char chunked_post_head[] = "POST /upload HTTP/1.1\r\n"
                                        "Host: localhost\r\n"
                                        "Transfer-Encoding: chunked\r\n"
                                        "Content-Type: text/plain\r\n"
                                        "\r\n";
static const char chunked_post_body[] = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";

static const char curl_expect[] = "PUT /big HTTP/1.1\r\n"
                                  "Host: localhost:8080\r\n"
                                  "User-Agent: curl/7.88.1\r\n"
                                  "Accept: */*\r\n"
                                  "Content-Length: 2000000\r\n"
                                  "Content-Type: application/octet-stream\r\n"
                                  "Expect: 100-continue\r\n"
                                  "\r\n";

static const char http10_plain[] = "GET /index.html HTTP/1.0\r\nUser-Agent: ab/2.3\r\n\r\n";
static const char http10_keep_alive[] =
    "GET /index.html HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: h\r\nUser-Agent: ab/2.3\r\n\r\n";

TEST(curl_get)
{
    struct parsed *p = parse_lim(LIT(curl_get), NULL);
    const struct http_request *q = &p->req;

    if (CHECK_EQ_INT(p->r, sizeof(curl_get) - 1)) {
        check_slices_inside(p);
        slice_is(q->method, "GET");
        slice_is(q->target, "/hello/world?a=1&b=%C3%A9");
        slice_is(q->path, "/hello/world");
        slice_is(q->query, "a=1&b=%C3%A9");
        slice_is(q->host, "localhost:8080");
        CHECK_EQ_INT(q->minor_version, 1);
        CHECK_EQ_INT(q->body, HTTP_BODY_NONE);
        CHECK_EQ_INT(q->content_length, 0);
        CHECK_EQ_INT(q->keep_alive, 1);
        CHECK_EQ_INT(q->expect_continue, 0);
        if (CHECK_EQ_INT(q->nheaders, 3)) {
            slice_is(q->headers[0].name, "Host");
            slice_is(q->headers[0].value, "localhost:8080");
            slice_is(q->headers[1].name, "User-Agent");
            slice_is(q->headers[1].value, "curl/7.88.1");
            slice_is(q->headers[2].name, "Accept");
            slice_is(q->headers[2].value, "*/*");
        }
    }
    parsed_free(p);
    check_prefixes(LIT(curl_get), sizeof(curl_get) - 1, NULL);
}

TEST(browser_get)
{
    struct parsed *p = parse_lim(LIT(browser_get), NULL);
    const struct http_request *q = &p->req;

    if (CHECK_EQ_INT(p->r, sizeof(browser_get) - 1)) {
        check_slices_inside(p);
        slice_is(q->path, "/static/app.js");
        slice_is(q->query, "v=3");
        slice_is(q->host, "example.test");
        CHECK_EQ_INT(q->keep_alive, 1);
        CHECK_EQ_INT(q->body, HTTP_BODY_NONE);
        if (CHECK_EQ_INT(q->nheaders, 14)) {
            slice_is(q->headers[2].value,
                     "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8");
            slice_is(q->headers[7].name, "Cookie");
            slice_is(q->headers[7].value, "session=abc123; theme=dark");
            slice_is(q->headers[12].value, "\"33a64df5\"");
            slice_is(q->headers[13].name, "Cache-Control");
        }
    }
    parsed_free(p);
    check_prefixes(LIT(browser_get), sizeof(browser_get) - 1, NULL);
}

TEST(post_with_content_length)
{
    char req[512];
    size_t head = sizeof(post_json_head) - 1, len = head + sizeof(post_json_body) - 1;
    struct parsed *p;

    CHECK_EQ_INT(sizeof(post_json_body) - 1, 27);
    memcpy(req, post_json_head, head);
    memcpy(req + head, post_json_body, sizeof(post_json_body) - 1);
    p = parse_lim(req, len, NULL);
    if (CHECK_EQ_INT(p->r, head)) {
        check_slices_inside(p);
        slice_is(p->req.method, "POST");
        slice_is(p->req.path, "/api/items");
        slice_is(p->req.query, "");
        CHECK_EQ_INT(p->req.body, HTTP_BODY_LENGTH);
        CHECK_EQ_INT(p->req.content_length, 27);
        CHECK_EQ_INT(p->req.keep_alive, 1);
        CHECK_EQ_MEM(p->buf + p->r, p->len - (size_t)p->r, post_json_body, 27);
    }
    parsed_free(p);
    /* The body is not the parser's business: with or without it, the head is the same. */
    check_prefixes(req, head, (int)head, NULL);
    CHECK_EQ_INT(status_lim(req, len, NULL), head);
}

TEST(chunked_post)
{
    struct parsed *p = parse_lim(LIT(chunked_post_head), NULL);

    if (CHECK_EQ_INT(p->r, sizeof(chunked_post_head) - 1)) {
        CHECK_EQ_INT(p->req.body, HTTP_BODY_CHUNKED);
        CHECK_EQ_INT(p->req.content_length, 0);
        CHECK_EQ_INT(p->req.keep_alive, 1);
    }
    parsed_free(p);
    check_prefixes(LIT(chunked_post_head), sizeof(chunked_post_head) - 1, NULL);
    check_chunked(LIT(chunked_post_body), sizeof(chunked_post_body) - 1, LIT("hello world"));
}

TEST(curl_expect_100_continue)
{
    struct parsed *p = parse_lim(LIT(curl_expect), NULL);

    if (CHECK_EQ_INT(p->r, sizeof(curl_expect) - 1)) {
        CHECK_EQ_INT(p->req.body, HTTP_BODY_LENGTH);
        CHECK_EQ_INT(p->req.content_length, 2000000);
        CHECK_EQ_INT(p->req.expect_continue, 1);
    }
    parsed_free(p);
    check_prefixes(LIT(curl_expect), sizeof(curl_expect) - 1, NULL);
}

TEST(http10_with_and_without_keep_alive)
{
    struct parsed *p = parse_lim(LIT(http10_plain), NULL);

    if (CHECK_EQ_INT(p->r, sizeof(http10_plain) - 1)) {
        CHECK_EQ_INT(p->req.minor_version, 0);
        CHECK_EQ_INT(p->req.keep_alive, 0);
        slice_is(p->req.host, ""); /* no Host: fine in 1.0 */
        CHECK_EQ_INT(p->req.body, HTTP_BODY_NONE);
    }
    parsed_free(p);
    p = parse_lim(LIT(http10_keep_alive), NULL);
    if (CHECK_EQ_INT(p->r, sizeof(http10_keep_alive) - 1)) {
        CHECK_EQ_INT(p->req.minor_version, 0);
        CHECK_EQ_INT(p->req.keep_alive, 1);
        slice_is(p->req.host, "h");
    }
    parsed_free(p);
    check_prefixes(LIT(http10_plain), sizeof(http10_plain) - 1, NULL);
    check_prefixes(LIT(http10_keep_alive), sizeof(http10_keep_alive) - 1, NULL);
}

TEST(pipelined_requests)
{
    static const char in[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                             "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                             "\r\n" /* a stray CRLF after a body, skipped */
                             "GET /c?x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    static struct http_request req;
    const size_t len = sizeof(in) - 1;
    char *buf = guarded_copy(in, len);
    size_t off = 0;
    int r;

    r = proto_http_parse_request(buf + off, len - off, 0, NULL, &req);
    if (CHECK_EQ_INT(r, 28)) {
        slice_is(req.path, "/a");
        CHECK_EQ_INT(req.body, HTTP_BODY_NONE);
        CHECK_EQ_INT(req.keep_alive, 1);
    }
    off += (size_t)r;
    r = proto_http_parse_request(buf + off, len - off, 0, NULL, &req);
    if (CHECK(r > 0)) {
        slice_is(req.path, "/b");
        CHECK_EQ_INT(req.body, HTTP_BODY_LENGTH);
        CHECK_EQ_INT(req.content_length, 5);
        CHECK_EQ_MEM(buf + off + r, 5, "hello", 5);
        off += (size_t)r + (size_t)req.content_length;
    }
    r = proto_http_parse_request(buf + off, len - off, 0, NULL, &req);
    if (CHECK_EQ_INT(r, len - off)) {
        slice_is(req.path, "/c");
        slice_is(req.query, "x");
        CHECK_EQ_INT(req.keep_alive, 0);
        CHECK(req.method.ptr == buf + off + 2); /* after the skipped CRLF */
    }
    guarded_free(buf, len);
}

/* ---- the chunked decoder: harness ---- */

/* A guarded copy the decoder may write to: the data pages made writable, the guard page not. */
static char *writable_copy(const void *data, size_t len)
{
    char *p = guarded_copy(data, len);
    size_t span = testlib_data_pages_size(len);

    if (span && mprotect(p + len - span, span, PROT_READ | PROT_WRITE) != 0) {
        perror("mprotect");
        abort();
    }
    return p;
}

/* What a whole decode produced: every data byte, the status, where the body ended. */
struct decoded {
    ptrdiff_t r; /* last status: > 0 means ended */
    size_t end;  /* r > 0: offset in the input just past the body */
    size_t ndata;
    char data[1 << 17];
};

/* xorshift64*, seeded: the same pieces every run. */
static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 2654435761u + 0x9e3779b97f4a7c15u;
}

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717u;
}

/*
 * Decode in pieces of sizes from piece(): each from its own writable guarded copy. Stops at the
 * first non-zero status. mode 0: whole, 1: byte by byte, 2: random 1..max pieces.
 */
static void decode_pieces(const char *in, size_t len, int mode, size_t max, struct decoded *out)
{
    struct http_chunked_decoder dec = { 0 };
    size_t off = 0;

    out->r = 0;
    out->end = 0;
    out->ndata = 0;
    do {
        size_t n = mode == 0 ? len - off : mode == 1 ? 1 : 1 + (size_t)(rng() % max);
        size_t got;
        char *buf;

        if (n > len - off)
            n = len - off;
        buf = writable_copy(in + off, n);
        got = n;
        out->r = proto_http_decode_chunked(&dec, buf, &got);
        if (!CHECK(got <= n) || !CHECK(out->ndata + got <= sizeof(out->data))) {
            guarded_free(buf, n);
            return;
        }
        memcpy(out->data + out->ndata, buf, got);
        out->ndata += got;
        if (out->r > 0) {
            CHECK((size_t)out->r <= n);
            out->end = off + (size_t)out->r;
            /* the bytes after the body are untouched, where they were */
            CHECK_EQ_MEM(buf + out->r, n - (size_t)out->r, in + out->end, n - (size_t)out->r);
        }
        guarded_free(buf, n);
        off += n;
    } while (out->r == 0 && off < len);
    CHECK_EQ_INT((uint64_t)out->ndata, out->r < 0 ? (uint64_t)out->ndata : dec.total);
}

/*
 * Decodes in into want_data and the status want (> 0: the body ends want bytes into the input)
 * whole, byte by byte, and in random pieces under several seeds: all must agree.
 */
static void check_chunked(const char *in, size_t len, ptrdiff_t want, const char *want_data,
                          size_t want_len)
{
    static struct decoded d;

    for (int mode = 0; mode < 2 + 16; mode++) {
        if (mode >= 2)
            rng_seed((uint64_t)mode);
        TEST_CONTEXT("mode %s, seed %d",
                     mode == 0   ? "whole"
                     : mode == 1 ? "bytes"
                                 : "pieces",
                     mode);
        decode_pieces(in, len, mode < 2 ? mode : 2, mode < 10 ? 7 : 64, &d);
        if (want > 0) {
            CHECK(d.r > 0);
            CHECK_EQ_INT(d.end, want);
        } else {
            CHECK_EQ_INT(d.r, want);
        }
        CHECK_EQ_MEM(d.data, d.ndata, want_data, want_len);
    }
}

#define CHUNKED_OK(in, data) check_chunked(LIT(in), sizeof(in) - 1, LIT(data))
#define CHUNKED_ERR(in, status, data) check_chunked(LIT(in), status, LIT(data))

/* Chunked POST end to end: head, body, then the next request where the body left it. */
TEST(chunked_post_decoded_then_pipelined)
{
    static const char in[] = "POST /upload HTTP/1.1\r\nHost: localhost\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                             "GET /next HTTP/1.1\r\nHost: localhost\r\n\r\n";
    static struct http_request req;
    const size_t len = sizeof(in) - 1;
    char *buf = writable_copy(in, len);
    struct http_chunked_decoder dec = { 0 };
    size_t n;
    ptrdiff_t d;
    int r;

    r = proto_http_parse_request(buf, len, 0, NULL, &req);
    if (!CHECK(r > 0) || !CHECK_EQ_INT(req.body, HTTP_BODY_CHUNKED)) {
        guarded_free(buf, len);
        return;
    }
    n = len - (size_t)r;
    d = proto_http_decode_chunked(&dec, buf + r, &n);
    CHECK_EQ_INT(d, sizeof("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") - 1);
    CHECK_EQ_MEM(buf + r, n, "hello world", 11);
    CHECK_EQ_INT(dec.total, 11);
    r += (int)d;
    r = proto_http_parse_request(buf + r, len - (size_t)r, 0, NULL, &req);
    if (CHECK(r > 0))
        slice_is(req.path, "/next");
    guarded_free(buf, len);
}

/* ---- leading empty line ---- */

TEST(one_leading_crlf_is_skipped)
{
    CHECK_EQ_INT(STATUS("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 29);
    check_prefixes(LIT("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 29, NULL);
    CHECK_EQ_INT(STATUS("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_METHOD);
    CHECK_EQ_INT(STATUS("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_LINE_ENDING);
    CHECK_EQ_INT(STATUS("\rGET / HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_LINE_ENDING);
    CHECK_EQ_INT(STATUS("\r"), HTTP_INCOMPLETE);
    CHECK_EQ_INT(STATUS("\r\n"), HTTP_INCOMPLETE);
}

/* ---- error paths ---- */

struct error_case {
    const char *in;
    size_t len;
    int status;
    int code;
};
#define ERR(s, st, code)                                                                           \
    {                                                                                              \
        s, sizeof(s) - 1, st, code                                                                 \
    }

static void check_error_cases(const struct error_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char esc[300];

        testlib_escape(esc, sizeof(esc), c[i].in, c[i].len);
        TEST_CONTEXT("case %zu: \"%s\"", i, esc);
        CHECK_EQ_INT(status_lim(c[i].in, c[i].len, NULL), c[i].status);
        CHECK_EQ_INT(proto_http_error_status(c[i].status), c[i].code);
    }
}

#define H11 "GET / HTTP/1.1\r\nHost: h\r\n"

TEST(errors_request_line)
{
    static const struct error_case cases[] = {
        ERR("GET / HTTP/1.1\nHost: h\r\n\r\n", HTTP_E_LINE_ENDING, 400),
        ERR("GET / HTTP/1.1\rHost: h\r\n\r\n", HTTP_E_LINE_ENDING, 400),
        ERR(" GET / HTTP/1.1\r\n", HTTP_E_METHOD, 400),
        ERR("GE(T / HTTP/1.1\r\n", HTTP_E_METHOD, 400),
        ERR("GET\t/ HTTP/1.1\r\n", HTTP_E_METHOD, 400),
        ERR("G\x00T / HTTP/1.1\r\n", HTTP_E_METHOD, 400), ERR("GET\r\n", HTTP_E_METHOD, 400),
        ERR("/ HTTP/1.1\r\n", HTTP_E_METHOD, 400),
        ERR("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", HTTP_E_METHOD, 400), /* TLS hello */
        ERR("GET  / HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        // clang-format off
        ERR("GET /a\x00" "b HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET /a\x7f" "b HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        // clang-format on
        ERR("GET /a\tb HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET /#frag HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET foo HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET * HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET ftp://h/ HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET http:/h/ HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET http:// HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET http:///x HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET http://u@h/ HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET httpx://h/ HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET :// HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        /* CONNECT: refused at the SP after the method, whatever follows (issue 8, 13) */
        ERR("CONNECT ", HTTP_E_METHOD_CONNECT, 501),
        ERR("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            HTTP_E_METHOD_CONNECT, 501),
        ERR("CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_E_METHOD_CONNECT, 501),
        ERR("CONNECT h:443 HTTP/1.0\r\n\r\n", HTTP_E_METHOD_CONNECT, 501),
        ERR("CONNECT h:443/x HTTP/1.1\r\n", HTTP_E_METHOD_CONNECT, 501),
        ERR("CONNECT u@h:443 HTTP/1.1\r\n", HTTP_E_METHOD_CONNECT, 501),
        /* the authority form is CONNECT's only */
        ERR("GET h:443 HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("OPTIONS example.com:443 HTTP/1.1\r\n", HTTP_E_TARGET, 400),
        ERR("GET \r\n", HTTP_E_TARGET, 400),
        ERR("GET /\r\n\r\n", HTTP_E_REQUEST_LINE, 400), /* HTTP/0.9 */
        ERR("GET /\n", HTTP_E_REQUEST_LINE, 400), ERR("GET / http/1.1\r\n", HTTP_E_VERSION, 400),
        ERR("GET / HTTP/1.1 \r\n", HTTP_E_VERSION, 400),
        ERR("GET / HTTP/1.10\r\n", HTTP_E_VERSION, 400),
        ERR("GET / HTTP/11\r\n", HTTP_E_VERSION, 400), ERR("GET / HTTP/1\r\n", HTTP_E_VERSION, 400),
        ERR("GET / HTTP/a.1\r\n", HTTP_E_VERSION, 400),
        ERR("GET / HTTPS/1.1\r\n", HTTP_E_VERSION, 400),
        ERR("GET / HTTP/1.1x", HTTP_E_VERSION, 400), ERR("GET / HTTP/1.1\x00", HTTP_E_VERSION, 400),
        ERR("GET /  HTTP/1.1\r\n", HTTP_E_VERSION, 400),
        ERR("GET / HTTP/1.1\n", HTTP_E_LINE_ENDING, 400),
        ERR("GET / HTTP/1.1\r\r\n", HTTP_E_LINE_ENDING, 400),
        ERR("GET / HTTP/0.9\r\n", HTTP_E_VERSION_UNSUPPORTED, 505),
        ERR("GET / HTTP/0.0\r\n", HTTP_E_VERSION_UNSUPPORTED, 505),
        ERR("GET / HTTP/1.2\r\n", HTTP_E_VERSION_UNSUPPORTED, 505),
        ERR("GET / HTTP/2.0\r\n", HTTP_E_VERSION_UNSUPPORTED, 505),
        ERR("GET / HTTP/3.0\r\n", HTTP_E_VERSION_UNSUPPORTED, 505),
        ERR("GET / HTTP/9.9\r\n", HTTP_E_VERSION_UNSUPPORTED, 505),
        ERR("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HTTP_E_TARGET,
            400), /* h2 preface: '*' needs OPTIONS */
    };

    check_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

TEST(errors_fields)
{
    static const struct error_case cases[] = {
        ERR(H11 "X: a\n\r\n", HTTP_E_LINE_ENDING, 400),
        ERR(H11 "\n", HTTP_E_LINE_ENDING, 400),
        ERR(H11 "\rX", HTTP_E_LINE_ENDING, 400),
        ERR(H11 "X: a\rY: b\r\n\r\n", HTTP_E_LINE_ENDING, 400),
        ERR(H11 "X: a\r\r\n\r\n", HTTP_E_LINE_ENDING, 400),
        ERR(H11 "X-A: a\r\n b\r\n\r\n", HTTP_E_OBS_FOLD, 400),
        ERR(H11 "X-A: a\r\n\tb\r\n\r\n", HTTP_E_OBS_FOLD, 400),
        ERR("GET / HTTP/1.1\r\n Host: h\r\n\r\n", HTTP_E_OBS_FOLD, 400),
        ERR(H11 ": a\r\n\r\n", HTTP_E_HEADER_NAME, 400),
        ERR(H11 "X(: a\r\n\r\n", HTTP_E_HEADER_NAME, 400),
        ERR(H11 "X\x00: a\r\n\r\n", HTTP_E_HEADER_NAME, 400),
        ERR(H11 "Xa\r\n\r\n", HTTP_E_HEADER_NAME, 400),
        ERR(H11 "X/Y: a\r\n\r\n", HTTP_E_HEADER_NAME, 400),
        ERR(H11 "\xc3\x84: a\r\n\r\n", HTTP_E_HEADER_NAME, 400),
        ERR(H11 "X-A : a\r\n\r\n", HTTP_E_SPACE_BEFORE_COLON, 400),
        ERR(H11 "X-A\t: a\r\n\r\n", HTTP_E_SPACE_BEFORE_COLON, 400),
        // clang-format off
        ERR(H11 "X: a\x00" "b\r\n\r\n", HTTP_E_HEADER_VALUE, 400),
        ERR(H11 "X: a\x7f" "b\r\n\r\n", HTTP_E_HEADER_VALUE, 400),
        ERR(H11 "X: \x01\r\n\r\n", HTTP_E_HEADER_VALUE, 400),
        ERR(H11 "X: a\x1b" "b\r\n\r\n", HTTP_E_HEADER_VALUE, 400),
        ERR(H11 "X: a\x0b" "b\r\n\r\n", HTTP_E_HEADER_VALUE, 400),
        // clang-format on
        ERR("GET / HTTP/1.1\r\n\r\n", HTTP_E_HOST_MISSING, 400),
        ERR("GET / HTTP/1.1\r\nX: y\r\n\r\n", HTTP_E_HOST_MISSING, 400),
        ERR("GET http://h/ HTTP/1.1\r\n\r\n", HTTP_E_HOST_MISSING, 400),
        ERR(H11 "Host: h\r\n\r\n", HTTP_E_HOST_DUPLICATE, 400),
        ERR(H11 "host: other\r\n\r\n", HTTP_E_HOST_DUPLICATE, 400),
        ERR("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", HTTP_E_HOST_DUPLICATE, 400),
        ERR("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HTTP_E_HOST_INVALID, 400),
        ERR("GET / HTTP/1.1\r\nHost: user@h\r\n\r\n", HTTP_E_HOST_INVALID, 400),
        ERR("GET / HTTP/1.1\r\nHost: h/x\r\n\r\n", HTTP_E_HOST_INVALID, 400),
        ERR("GET / HTTP/1.1\r\nHost: h\"\r\n\r\n", HTTP_E_HOST_INVALID, 400),
        ERR("GET / HTTP/1.1\r\nHost: h\xc3\xa9\r\n\r\n", HTTP_E_HOST_INVALID, 400),
        /* decided at the line, before the rest of the head is in */
        ERR("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n", HTTP_E_HOST_DUPLICATE, 400),
    };

    check_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* ---- request smuggling ---- */

TEST(errors_framing_and_smuggling)
{
    static const struct error_case cases[] = {
        /* CL.TE and TE.CL, in both orders, with equal or zero values */
        ERR(H11 "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_E_CL_AND_TE, 400),
        ERR(H11 "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", HTTP_E_CL_AND_TE, 400),
        ERR(H11 "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", HTTP_E_CL_AND_TE, 400),
        /* TE.TE: obfuscated or doubled codings */
        ERR(H11 "Transfer-Encoding: chunked, chunked\r\n\r\n", HTTP_E_TE_CHUNKED_TWICE, 400),
        ERR(H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            HTTP_E_TE_CHUNKED_TWICE, 400),
        ERR(H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n", HTTP_E_TE_UNSUPPORTED,
            501),
        ERR(H11 "Transfer-Encoding: xchunked\r\n\r\n", HTTP_E_TE_UNSUPPORTED, 501),
        ERR(H11 "Transfer-Encoding: chunkedx\r\n\r\n", HTTP_E_TE_UNSUPPORTED, 501),
        ERR(H11 "Transfer-Encoding: gzip\r\n\r\n", HTTP_E_TE_UNSUPPORTED, 501),
        ERR(H11 "Transfer-Encoding: gzip, chunked\r\n\r\n", HTTP_E_TE_UNSUPPORTED, 501),
        ERR(H11 "Transfer-Encoding: chunked, gzip\r\n\r\n", HTTP_E_TE_UNSUPPORTED, 501),
        ERR(H11 "Transfer-Encoding: identity\r\n\r\n", HTTP_E_TE_UNSUPPORTED, 501),
        ERR(H11 "Transfer-Encoding: chunked;q=1\r\n\r\n", HTTP_E_TE_UNSUPPORTED, 501),
        ERR(H11 "Transfer-Encoding: chunked ; q=1\r\n\r\n", HTTP_E_TE_UNSUPPORTED, 501),
        ERR(H11 "Transfer-Encoding: \r\n\r\n", HTTP_E_TRANSFER_ENCODING, 400),
        ERR(H11 "Transfer-Encoding: chunked,\r\n\r\n", HTTP_E_TRANSFER_ENCODING, 400),
        ERR(H11 "Transfer-Encoding: , chunked\r\n\r\n", HTTP_E_TRANSFER_ENCODING, 400),
        ERR(H11 "Transfer-Encoding: \"chunked\"\r\n\r\n", HTTP_E_TRANSFER_ENCODING, 400),
        ERR(H11 "Transfer-Encoding: chunked x\r\n\r\n", HTTP_E_TRANSFER_ENCODING, 400),
        ERR(H11 "Transfer-Encoding: chun ked\r\n\r\n", HTTP_E_TRANSFER_ENCODING, 400),
        ERR(H11 "Transfer-Encoding : chunked\r\n\r\n", HTTP_E_SPACE_BEFORE_COLON, 400),
        // clang-format off
        ERR(H11 "Transfer-Encoding:\x0b" "chunked\r\n\r\n", HTTP_E_HEADER_VALUE, 400),
        ERR(H11 "Transfer-Encoding: \x0c" "chunked\r\n\r\n", HTTP_E_HEADER_VALUE, 400),
        // clang-format on
        ERR(H11 "Transfer-Encoding: chunked\x00\r\n\r\n", HTTP_E_HEADER_VALUE, 400),
        ERR(H11 "X: x\r\n Transfer-Encoding: chunked\r\n\r\n", HTTP_E_OBS_FOLD, 400),
        ERR(H11 "Transfer-Encoding: chunked\r\n , chunked\r\n\r\n", HTTP_E_OBS_FOLD, 400),
        /* the empty value is judged at its line, before the fold */
        ERR(H11 "Transfer-Encoding:\r\n chunked\r\n\r\n", HTTP_E_TRANSFER_ENCODING, 400),
        ERR(H11 "Transfer-Encoding: chunked\n\r\n", HTTP_E_LINE_ENDING, 400),
        ERR(H11 "X: y\nTransfer-Encoding: chunked\r\n\r\n", HTTP_E_LINE_ENDING, 400),
        ERR(H11 "X: y\rTransfer-Encoding: chunked\r\n\r\n", HTTP_E_LINE_ENDING, 400),
        ERR(H11 "Transfer-Encoding\x00: chunked\r\n\r\n", HTTP_E_HEADER_NAME, 400),
        ERR(H11 "Transfer-Encodin\xc4\xa3: chunked\r\n\r\n", HTTP_E_HEADER_NAME, 400),
        ERR("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_E_TE_HTTP10, 400),
        ERR("POST / HTTP/1.0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            HTTP_E_TE_HTTP10, 400),
        /* CL.CL */
        ERR(H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", HTTP_E_CONTENT_LENGTH_CONFLICT,
            400),
        ERR(H11 "Content-Length: 5, 6\r\n\r\n", HTTP_E_CONTENT_LENGTH_CONFLICT, 400),
        ERR(H11 "Content-Length: 0\r\nContent-Length: 00\r\nContent-Length: 1\r\n\r\n",
            HTTP_E_CONTENT_LENGTH_CONFLICT, 400),
        ERR(H11 "Content-Length: 5,\r\n\r\n", HTTP_E_CONTENT_LENGTH, 400),
        ERR(H11 "Content-Length: ,5\r\n\r\n", HTTP_E_CONTENT_LENGTH, 400),
        ERR(H11 "Content-Length: 5,,5\r\n\r\n", HTTP_E_CONTENT_LENGTH, 400),
        ERR(H11 "Content-Length: 5 5\r\n\r\n", HTTP_E_CONTENT_LENGTH, 400),
        ERR(H11 "Content-Length: \r\n\r\n", HTTP_E_CONTENT_LENGTH, 400),
        ERR(H11 "Content-Length : 5\r\n\r\n", HTTP_E_SPACE_BEFORE_COLON, 400),
        ERR(H11 "Content-Length: 5\r\n Content-Length: 6\r\n\r\n", HTTP_E_OBS_FOLD, 400),
        /* the conflict is found at its line */
        ERR(H11 "Content-Length: 5\r\nContent-Length: 6\r\n", HTTP_E_CONTENT_LENGTH_CONFLICT, 400),
    };

    check_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static int64_t content_length_of(const char *in, size_t len, int *r)
{
    struct parsed *p = parse_lim(in, len, NULL);
    int64_t cl = p->req.content_length;

    *r = p->r;
    if (p->r > 0)
        CHECK_EQ_INT(p->req.body, HTTP_BODY_LENGTH);
    parsed_free(p);
    return cl;
}

TEST(content_length_values)
{
    static const struct {
        const char *value;
        size_t len;
        int ok;
        int64_t want;
    } cases[] = {
#define OK(s, v)                                                                                   \
    {                                                                                              \
        s, sizeof(s) - 1, 1, v                                                                     \
    }
#define BAD(s)                                                                                     \
    {                                                                                              \
        s, sizeof(s) - 1, 0, 0                                                                     \
    }
        /* Each number is read by gy_parse_decimal (its table: test_request.c); here, that the
         * parser uses it, and what HTTP adds: lists of one number, at least one digit. */
        OK("9223372036854775807", INT64_MAX),
        OK("5, 5", 5),
        OK("5,5", 5),
        OK("5 ,\t5 , 05", 5),
        BAD("9223372036854775808"), /* INT64_MAX + 1 */
        BAD("-1"),
        BAD("\"5\""),
#undef OK
#undef BAD
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[256];
        int n = snprintf(in, sizeof(in), H11 "Content-Length: %.*s\r\n\r\n", (int)cases[i].len,
                         cases[i].value);
        int r;
        int64_t got = content_length_of(in, (size_t)n, &r);

        TEST_CONTEXT("Content-Length: %s", cases[i].value);
        if (cases[i].ok) {
            CHECK_EQ_INT(r, n);
            CHECK_EQ_INT(got, cases[i].want);
        } else {
            CHECK_EQ_INT(r, HTTP_E_CONTENT_LENGTH);
            CHECK_EQ_INT(got, 0);
        }
    }
}

/* Content-Length as the application gets it: one field, one value, where it was first sent. */
TEST(content_length_collapsed)
{
    static const struct {
        const char *fields, *value;
        uint32_t index; /* of the one Content-Length among the headers (Host is 0) */
        uint32_t nheaders;
        int64_t length;
    } cases[] = {
        { "Content-Length: 5\r\n", "5", 1, 2, 5 },
        { "Content-Length: 5\r\nContent-Length: 5\r\n", "5", 1, 2, 5 },
        { "Content-Length: 5, 5\r\n", "5", 1, 2, 5 },
        { "Content-Length: 5 ,\t5 , 5\r\n", "5", 1, 2, 5 },
        { "X-A: 1\r\ncontent-length: 5, 5\r\nX-B: 2\r\nContent-Length: 5\r\nX-C: 3\r\n", "5", 2, 5,
          5 },
        { "Content-Length: 05\r\nContent-Length: 5\r\n", "05", 1, 2, 5 }, /* first as sent */
        { "Content-Length: 0, 0\r\n", "0", 1, 2, 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[512];
        int n = snprintf(in, sizeof(in), H11 "%s\r\nhello", cases[i].fields);
        struct parsed *p = parse_lim(in, (size_t)n, NULL);

        TEST_CONTEXT("case %zu", i);
        if (CHECK_EQ_INT(p->r, n - 5) && CHECK_EQ_INT(p->req.nheaders, cases[i].nheaders)) {
            check_slices_inside(p);
            CHECK_EQ_INT(p->req.content_length, cases[i].length);
            CHECK(HTTP_NAME_EQ(p->req.headers[cases[i].index].name, "content-length"));
            slice_is(p->req.headers[cases[i].index].value, cases[i].value);
            /* it is the only one */
            const struct gy_param *h = proto_http_find_header(&p->req, NULL, "content-length", 14);
            CHECK(h == &p->req.headers[cases[i].index]);
            CHECK(proto_http_find_header(&p->req, h, "content-length", 14) == NULL);
        }
        parsed_free(p);
        check_prefixes(in, (size_t)n - 5, n - 5, NULL);
    }
    /* The collapsed lines still count as field lines for max_headers. */
    {
        struct http_limits lim = { .max_headers = 3 };

        CHECK_EQ_INT(status_lim(LIT(H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), &lim),
                     sizeof(H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n") - 1);
        CHECK_EQ_INT(status_lim(LIT(H11 "Content-Length: 5\r\nContent-Length: 5\r\n"
                                        "Content-Length: 5\r\n\r\n"),
                                &lim),
                     HTTP_E_TOO_MANY_HEADERS);
    }
}

TEST(framing_accepted)
{
    struct parsed *p;

    /* identical duplicates are one value, numerically: 5 and 05 frame the same body */
    p = parse_lim(
        LIT(H11 "Content-Length: 5\r\ncontent-length: 05\r\nCONTENT-LENGTH: 5, 5\r\n\r\n"), NULL);
    if (CHECK(p->r > 0)) {
        CHECK_EQ_INT(p->req.body, HTTP_BODY_LENGTH);
        CHECK_EQ_INT(p->req.content_length, 5);
        /* Collapsed into one field of one value (issue 8, 12): the app must not see "5, 5" */
        if (CHECK_EQ_INT(p->req.nheaders, 2)) {
            slice_is(p->req.headers[1].name, "Content-Length");
            slice_is(p->req.headers[1].value, "5");
        }
        check_slices_inside(p);
    }
    parsed_free(p);
    /* Content-Length: 0 is a body of 0 bytes, framed, not "no framing" */
    p = parse_lim(LIT(H11 "Content-Length: 0\r\n\r\n"), NULL);
    if (CHECK(p->r > 0)) {
        CHECK_EQ_INT(p->req.body, HTTP_BODY_LENGTH);
        CHECK_EQ_INT(p->req.content_length, 0);
    }
    parsed_free(p);
    static const char *const te[] = { "chunked", "Chunked", "CHUNKED", "\tchunked \t" };
    for (size_t i = 0; i < sizeof(te) / sizeof(te[0]); i++) {
        char in[128];
        int n = snprintf(in, sizeof(in), H11 "Transfer-Encoding: %s\r\n\r\n", te[i]);

        TEST_CONTEXT("Transfer-Encoding: %s", te[i]);
        p = parse_lim(in, (size_t)n, NULL);
        if (CHECK_EQ_INT(p->r, n))
            CHECK_EQ_INT(p->req.body, HTTP_BODY_CHUNKED);
        parsed_free(p);
    }
    /* Only the exact names frame the body: these are ordinary fields. */
    static const char *const names[] = { "Transfer_Encoding", "Transfer-Encodings",
                                         "X-Content-Length", "Content-Lengt", "TransferEncoding" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char in[128];
        int n = snprintf(in, sizeof(in), H11 "%s: chunked\r\n\r\n", names[i]);

        TEST_CONTEXT("%s", names[i]);
        p = parse_lim(in, (size_t)n, NULL);
        if (CHECK_EQ_INT(p->r, n))
            CHECK_EQ_INT(p->req.body, HTTP_BODY_NONE);
        parsed_free(p);
    }
}

/* ---- character classes, byte by byte ---- */

static int is_tchar_ref(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

TEST(every_byte_in_a_header_name)
{
    for (int c = 0; c < 256; c++) {
        char in[64];
        int n = snprintf(in, sizeof(in), H11 "X%cY: v\r\n\r\n", c ? c : '?');
        int want;

        in[sizeof(H11) - 1 + 1] = (char)c;
        if (is_tchar_ref(c) || c == ':')
            want = n;
        else if (c == ' ' || c == '\t')
            want = HTTP_E_SPACE_BEFORE_COLON;
        else
            want = HTTP_E_HEADER_NAME;
        TEST_CONTEXT("byte 0x%02x", c);
        CHECK_EQ_INT(status_lim(in, (size_t)n, NULL), want);
    }
}

TEST(every_byte_in_a_header_value)
{
    for (int c = 0; c < 256; c++) {
        char in[64];
        int n = snprintf(in, sizeof(in), H11 "X: a%cb\r\n\r\n", c ? c : '?');
        int want;

        in[sizeof(H11) - 1 + 4] = (char)c;
        if (c == '\t' || (c >= 0x20 && c != 0x7f))
            want = n;
        else if (c == '\r' || c == '\n')
            want = HTTP_E_LINE_ENDING;
        else
            want = HTTP_E_HEADER_VALUE;
        TEST_CONTEXT("byte 0x%02x", c);
        CHECK_EQ_INT(status_lim(in, (size_t)n, NULL), want);
    }
}

TEST(every_byte_in_a_target)
{
    for (int c = 0; c < 256; c++) {
        char in[64];
        int n = snprintf(in, sizeof(in), "GET /a%cb HTTP/1.1\r\nHost: h\r\n\r\n", c ? c : '?');
        int want;

        in[6] = (char)c;
        if (c > 0x20 && c != 0x7f && c != '#')
            want = n;
        else if (c == ' ')
            want = HTTP_E_VERSION; /* "/a" then "b HTTP/1.1" */
        else if (c == '\r' || c == '\n')
            want = HTTP_E_REQUEST_LINE;
        else
            want = HTTP_E_TARGET;
        TEST_CONTEXT("byte 0x%02x", c);
        CHECK_EQ_INT(status_lim(in, (size_t)n, NULL), want);
    }
}

TEST(every_byte_in_a_method)
{
    for (int c = 0; c < 256; c++) {
        char in[64];
        int n = snprintf(in, sizeof(in), "G%cT / HTTP/1.1\r\nHost: h\r\n\r\n", c ? c : '?');
        int r;

        in[1] = (char)c;
        r = status_lim(in, (size_t)n, NULL);
        TEST_CONTEXT("byte 0x%02x", c);
        if (is_tchar_ref(c))
            CHECK_EQ_INT(r, n);
        else
            CHECK(r < 0);
    }
}

TEST(every_byte_in_a_host)
{
    for (int c = 0; c < 256; c++) {
        char in[64];
        int n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: a%cb\r\n\r\n", c ? c : '?');
        int want;

        in[23] = (char)c;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c != 0 && strchr("-._~%!$&'()*+,;=:[]", c)))
            want = n;
        else if (c == '\r' || c == '\n')
            want = HTTP_E_LINE_ENDING;
        else if (c == '\t' || (c >= 0x20 && c != 0x7f))
            want = HTTP_E_HOST_INVALID;
        else
            want = HTTP_E_HEADER_VALUE;
        TEST_CONTEXT("byte 0x%02x", c);
        CHECK_EQ_INT(status_lim(in, (size_t)n, NULL), want);
    }
}

/* ---- values: whitespace, empties, repeats ---- */

TEST(values_are_trimmed_and_may_be_empty)
{
    struct parsed *p = parse_lim(
        LIT(H11 "A:v\r\nB:  \t v w \t \r\nC:\r\nD: \t \r\nE: \xff\x80\r\n\r\n"), NULL);

    if (CHECK(p->r > 0) && CHECK_EQ_INT(p->req.nheaders, 6)) {
        check_slices_inside(p);
        slice_is(p->req.headers[1].value, "v");
        slice_is(p->req.headers[2].value, "v w");
        slice_is(p->req.headers[3].value, "");
        slice_is(p->req.headers[4].value, "");
        slice_is(p->req.headers[5].value, "\xff\x80");
        /* an empty value still points into the line, not elsewhere */
        CHECK(p->req.headers[3].value.ptr > p->req.headers[3].name.ptr);
    }
    parsed_free(p);
}

TEST(target_forms)
{
    static const struct {
        const char *line, *path, *query, *host;
    } cases[] = {
        { "GET /p?q HTTP/1.1", "/p", "q", "h" },
        { "GET /p? HTTP/1.1", "/p", "", "h" },
        { "GET /p HTTP/1.1", "/p", "", "h" },
        { "GET /?a?b HTTP/1.1", "/", "a?b", "h" },
        { "GET //x HTTP/1.1", "//x", "", "h" },
        { "GET /\xc3\xa9 HTTP/1.1", "/\xc3\xa9", "", "h" },
        { "GET http://Example.com:8080/a/b?x=1 HTTP/1.1", "/a/b", "x=1", "Example.com:8080" },
        { "GET HTTPS://e.com HTTP/1.1", "", "", "e.com" },
        { "GET http://e.com?x HTTP/1.1", "", "x", "e.com" },
        { "GET http://[::1]:80/ HTTP/1.1", "/", "", "[::1]:80" },
        { "OPTIONS * HTTP/1.1", "*", "", "h" },
        /* methods are case-sensitive: "connect" is some other method, not a tunnel */
        { "connect / HTTP/1.1", "/", "", "h" },
        { "CONNECTX / HTTP/1.1", "/", "", "h" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[256];
        int n = snprintf(in, sizeof(in), "%s\r\nHost: h\r\n\r\n", cases[i].line);
        struct parsed *p = parse_lim(in, (size_t)n, NULL);

        TEST_CONTEXT("%s", cases[i].line);
        if (CHECK_EQ_INT(p->r, n)) {
            check_slices_inside(p);
            slice_is(p->req.path, cases[i].path);
            slice_is(p->req.query, cases[i].query);
            slice_is(p->req.host, cases[i].host);
        }
        parsed_free(p);
    }
}

TEST(keep_alive)
{
    static const struct {
        int minor;
        const char *fields;
        int want;
    } cases[] = {
        { 1, "", 1 },
        { 1, "Connection: close\r\n", 0 },
        { 1, "Connection: Close\r\n", 0 },
        { 1, "connection: CLOSE\r\n", 0 },
        { 1, "Connection: keep-alive\r\n", 1 },
        { 1, "Connection: Upgrade, close\r\n", 0 },
        { 1, "Connection: close,TE\r\n", 0 },
        { 1, "Connection: keep-alive\r\nConnection: close\r\n", 0 },
        { 1, "Connection: closed\r\n", 1 },
        { 1, "Connection: \"close\"\r\n", 1 },
        { 1, "Connection:\r\n", 1 },
        { 1, "X-Connection: close\r\n", 1 },
        { 0, "", 0 },
        { 0, "Connection: keep-alive\r\n", 1 },
        { 0, "Connection: Keep-Alive\r\n", 1 },
        { 0, "Connection: \t keep-alive \t\r\n", 1 },
        { 0, "Connection: foo, keep-alive\r\n", 1 },
        { 0, "Connection: keep-alive, close\r\n", 0 },
        { 0, "Connection: close\r\nConnection: keep-alive\r\n", 0 },
        { 0, "Connection: keepalive\r\n", 0 },
        { 0, "Keep-Alive: timeout=5\r\n", 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[256];
        int n = snprintf(in, sizeof(in), "GET / HTTP/1.%d\r\nHost: h\r\n%s\r\n", cases[i].minor,
                         cases[i].fields);
        struct parsed *p = parse_lim(in, (size_t)n, NULL);

        TEST_CONTEXT("HTTP/1.%d %s", cases[i].minor, cases[i].fields);
        if (CHECK_EQ_INT(p->r, n))
            CHECK_EQ_INT(p->req.keep_alive, cases[i].want);
        parsed_free(p);
    }
}

TEST(expect_continue)
{
    static const struct {
        int minor;
        const char *fields;
        int want;
    } cases[] = {
        { 1, "", 0 },
        { 1, "Expect: 100-continue\r\n", 1 },
        { 1, "expect: 100-Continue\r\n", 1 },
        { 1, "Expect:  100-CONTINUE \r\n", 1 },
        { 1, "Expect: foo, 100-continue\r\n", 1 },
        { 1, "Expect: 200-ok\r\n", 0 },
        { 1, "Expect: 100-continued\r\n", 0 },
        { 0, "Expect: 100-continue\r\n", 0 }, /* RFC 9110 10.1.1: ignored in HTTP/1.0 */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[256];
        int n = snprintf(in, sizeof(in),
                         "POST / HTTP/1.%d\r\nHost: h\r\nContent-Length: 3\r\n%s\r\n",
                         cases[i].minor, cases[i].fields);
        struct parsed *p = parse_lim(in, (size_t)n, NULL);

        TEST_CONTEXT("HTTP/1.%d %s", cases[i].minor, cases[i].fields);
        if (CHECK_EQ_INT(p->r, n))
            CHECK_EQ_INT(p->req.expect_continue, cases[i].want);
        parsed_free(p);
    }
}

TEST(empty_host_is_allowed)
{
    struct parsed *p = parse_lim(LIT("GET / HTTP/1.1\r\nHost:\r\n\r\n"), NULL);

    if (CHECK(p->r > 0))
        slice_is(p->req.host, "");
    parsed_free(p);
}

/* ---- limits, at and one past ---- */

/* "GET <target> HTTP/1.1\r\nHost: h\r\n" + nfields lines "X-NNNN: v" + pad line + "\r\n" */
static size_t build(char *out, size_t outsize, size_t target_len, size_t nfields, size_t pad_line)
{
    size_t o = 0;

    o += (size_t)snprintf(out + o, outsize - o, "GET /");
    for (size_t i = 1; i < target_len; i++)
        out[o++] = 'a';
    o += (size_t)snprintf(out + o, outsize - o, " HTTP/1.1\r\nHost: h\r\n");
    for (size_t i = 0; i < nfields; i++)
        o += (size_t)snprintf(out + o, outsize - o, "X-%04zu: v\r\n", i);
    if (pad_line) {
        /* "P: " + bytes: a line of exactly pad_line bytes before its CRLF */
        o += (size_t)snprintf(out + o, outsize - o, "P: ");
        for (size_t i = 3; i < pad_line; i++)
            out[o++] = 'p';
        out[o++] = '\r';
        out[o++] = '\n';
    }
    out[o++] = '\r';
    out[o++] = '\n';
    if (o > outsize)
        abort();
    return o;
}

static char big[1 << 20];

TEST(limit_max_head)
{
    struct http_limits lim = { .max_head = 300 };
    size_t n = build(big, sizeof(big), 1, 0, 300 - 29); /* 29: the head around the pad line */

    CHECK_EQ_INT(n, 300);
    CHECK_EQ_INT(status_lim(big, n, &lim), 300);
    /* a body byte after a head of exactly max_head does not count */
    big[n] = 'x';
    CHECK_EQ_INT(status_lim(big, n + 1, &lim), 300);
    lim.max_head = 299;
    CHECK_EQ_INT(status_lim(big, n - 1, &lim), HTTP_INCOMPLETE); /* not yet over */
    CHECK_EQ_INT(status_lim(big, n, &lim), HTTP_E_HEAD_TOO_LARGE);
    CHECK_EQ_INT(status_hinted(big, n, n - 1, &lim), HTTP_E_HEAD_TOO_LARGE);
    CHECK_EQ_INT(proto_http_error_status(HTTP_E_HEAD_TOO_LARGE), 431);
    /* an error inside the first max_head bytes wins over the size */
    memcpy(big + 30, "\x01", 1);
    CHECK_EQ_INT(status_lim(big, n, &lim), HTTP_E_HEADER_VALUE);
    CHECK_EQ_INT(status_hinted(big, n, n - 1, &lim), HTTP_E_HEADER_VALUE);

    /* the defaults: 16384 */
    n = build(big, sizeof(big), 1, 0, HTTP_DEFAULT_MAX_HEAD - 29);
    CHECK_EQ_INT(status_lim(big, n, &(struct http_limits){ .max_header_line = 1 << 20 }),
                 HTTP_DEFAULT_MAX_HEAD);
    n = build(big, sizeof(big), 1, 0, HTTP_DEFAULT_MAX_HEAD - 28);
    CHECK_EQ_INT(status_lim(big, n, &(struct http_limits){ .max_header_line = 1 << 20 }),
                 HTTP_E_HEAD_TOO_LARGE);
}

TEST(limit_max_target)
{
    struct http_limits lim = { .max_target = 100 };
    size_t n = build(big, sizeof(big), 100, 0, 0);

    CHECK_EQ_INT(status_lim(big, n, &lim), n);
    n = build(big, sizeof(big), 101, 0, 0);
    CHECK_EQ_INT(status_lim(big, n, &lim), HTTP_E_TARGET_TOO_LONG);
    CHECK_EQ_INT(proto_http_error_status(HTTP_E_TARGET_TOO_LONG), 414);
    /* decided at the 101st target byte, before the SP arrives */
    CHECK_EQ_INT(status_lim(big, 4 + 100, &lim), HTTP_INCOMPLETE);
    CHECK_EQ_INT(status_lim(big, 4 + 101, &lim), HTTP_E_TARGET_TOO_LONG);
    /* the default */
    n = build(big, sizeof(big), HTTP_DEFAULT_MAX_TARGET, 0, 0);
    CHECK_EQ_INT(status_lim(big, n, NULL), n);
    n = build(big, sizeof(big), HTTP_DEFAULT_MAX_TARGET + 1, 0, 0);
    CHECK_EQ_INT(status_lim(big, n, NULL), HTTP_E_TARGET_TOO_LONG);
}

TEST(limit_max_header_line)
{
    struct http_limits lim = { .max_header_line = 64 };
    size_t n = build(big, sizeof(big), 1, 0, 64);

    CHECK_EQ_INT(status_lim(big, n, &lim), n);
    check_prefixes(big, n, (int)n, &lim);
    n = build(big, sizeof(big), 1, 0, 65);
    CHECK_EQ_INT(status_lim(big, n, &lim), HTTP_E_HEADER_LINE_TOO_LONG);
    CHECK_EQ_INT(proto_http_error_status(HTTP_E_HEADER_LINE_TOO_LONG), 431);
    /* trailing whitespace counts: it is on the line */
    n = build(big, sizeof(big), 1, 0, 64);
    big[n - 5] = ' ';
    CHECK_EQ_INT(status_lim(big, n, &lim), n);
    /* a name alone can be too long, before its colon */
    memset(big + 25, 'N', 70);
    CHECK_EQ_INT(status_lim(big, 25 + 64, &lim), HTTP_INCOMPLETE);
    CHECK_EQ_INT(status_lim(big, 25 + 65, &lim), HTTP_E_HEADER_LINE_TOO_LONG);
    /* the default */
    n = build(big, sizeof(big), 1, 0, HTTP_DEFAULT_MAX_HEADER_LINE);
    CHECK_EQ_INT(status_lim(big, n, NULL), n);
    n = build(big, sizeof(big), 1, 0, HTTP_DEFAULT_MAX_HEADER_LINE + 1);
    CHECK_EQ_INT(status_lim(big, n, NULL), HTTP_E_HEADER_LINE_TOO_LONG);
}

TEST(limit_max_headers)
{
    struct http_limits lim = { .max_headers = 10 };
    struct parsed *p;
    size_t n = build(big, sizeof(big), 1, 9, 0); /* Host + 9 */

    p = parse_lim(big, n, &lim);
    if (CHECK_EQ_INT(p->r, n))
        CHECK_EQ_INT(p->req.nheaders, 10);
    parsed_free(p);
    n = build(big, sizeof(big), 1, 10, 0);
    p = parse_lim(big, n, &lim);
    CHECK_EQ_INT(p->r, HTTP_E_TOO_MANY_HEADERS);
    CHECK_EQ_INT(p->req.nheaders, 0);
    parsed_free(p);
    CHECK_EQ_INT(proto_http_error_status(HTTP_E_TOO_MANY_HEADERS), 431);
    /* the extra line is framed before it is counted */
    n = build(big, sizeof(big), 1, 9, 0);
    memcpy(big + n - 2, "X : y\r\n\r\n", 9);
    CHECK_EQ_INT(status_lim(big, n + 7, &lim), HTTP_E_SPACE_BEFORE_COLON);
    /* the default, 100 */
    n = build(big, sizeof(big), 1, HTTP_DEFAULT_MAX_HEADERS - 1, 0);
    CHECK_EQ_INT(status_lim(big, n, NULL), n);
    n = build(big, sizeof(big), 1, HTTP_DEFAULT_MAX_HEADERS, 0);
    CHECK_EQ_INT(status_lim(big, n, NULL), HTTP_E_TOO_MANY_HEADERS);
    /* a limit over the array is clamped to it */
    lim.max_headers = 100000;
    lim.max_head = 1 << 20;
    n = build(big, sizeof(big), 1, HTTP_MAX_HEADERS - 1, 0);
    p = parse_lim(big, n, &lim);
    if (CHECK_EQ_INT(p->r, n))
        CHECK_EQ_INT(p->req.nheaders, HTTP_MAX_HEADERS);
    parsed_free(p);
    n = build(big, sizeof(big), 1, HTTP_MAX_HEADERS, 0);
    CHECK_EQ_INT(status_lim(big, n, &lim), HTTP_E_TOO_MANY_HEADERS);
}

TEST(limit_method)
{
    char in[256];
    int n;

    memset(in, 'M', HTTP_MAX_METHOD);
    n = HTTP_MAX_METHOD + snprintf(in + HTTP_MAX_METHOD, sizeof(in) - HTTP_MAX_METHOD,
                                   " / HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK_EQ_INT(status_lim(in, (size_t)n, NULL), n);
    memset(in, 'M', HTTP_MAX_METHOD + 1);
    CHECK_EQ_INT(status_lim(in, HTTP_MAX_METHOD, NULL), HTTP_INCOMPLETE);
    CHECK_EQ_INT(status_lim(in, HTTP_MAX_METHOD + 1, NULL), HTTP_E_METHOD_TOO_LONG);
    CHECK_EQ_INT(proto_http_error_status(HTTP_E_METHOD_TOO_LONG), 501);
}

/* ---- the last_len hint ---- */

TEST(hint_skips_incomplete_heads)
{
    static const char bad[] = "GET / HTTP/1.1\r\nHost: h\r\nX: \x01\r\n\r\n";
    const size_t len = sizeof(bad) - 1, at = 28; /* the \x01 */

    /* Unhinted, the error shows at its byte; hinted, once the head is complete. */
    CHECK_EQ_INT(status_lim(bad, at + 1, NULL), HTTP_E_HEADER_VALUE);
    CHECK_EQ_INT(status_hinted(bad, at + 1, at, NULL), HTTP_INCOMPLETE);
    CHECK_EQ_INT(status_hinted(bad, len - 1, len - 2, NULL), HTTP_INCOMPLETE);
    CHECK_EQ_INT(status_hinted(bad, len, len - 1, NULL), HTTP_E_HEADER_VALUE);
    /* a hint past len is ignored */
    CHECK_EQ_INT(status_hinted(bad, at + 1, at + 5, NULL), HTTP_E_HEADER_VALUE);
    /* the head end split across calls at each of its 4 bytes */
    for (size_t k = 1; k <= 4; k++) {
        TEST_CONTEXT("last_len = len - %zu", k);
        CHECK_EQ_INT(status_hinted(LIT(curl_get), sizeof(curl_get) - 1 - k, NULL),
                     sizeof(curl_get) - 1);
    }
    CHECK_EQ_INT(status_hinted(LIT(curl_get), 1, NULL), sizeof(curl_get) - 1);
}

/* ---- the result struct ---- */

TEST(errors_and_incomplete_leave_no_headers)
{
    struct parsed *p = parse_lim(LIT(browser_get), NULL);
    static struct http_request req;
    char *buf;

    CHECK(p->r > 0);
    req = p->req;
    parsed_free(p);
    buf = guarded_copy(LIT(H11 "Content-Length: 5\r\nX: \x01\r\n\r\n"));
    CHECK_EQ_INT(proto_http_parse_request(
                     buf, sizeof(H11 "Content-Length: 5\r\nX: \x01\r\n\r\n") - 1, 0, NULL, &req),
                 HTTP_E_HEADER_VALUE);
    CHECK_EQ_INT(req.nheaders, 0);
    CHECK_EQ_INT(req.body, HTTP_BODY_NONE);
    CHECK_EQ_INT(req.content_length, 0);
    CHECK_EQ_INT(req.keep_alive, 0);
    slice_is(req.method, "GET"); /* for the log line */
    slice_is(req.target, "/");
    CHECK_EQ_INT(req.minor_version, 1);
    slice_is(req.path, "");
    /* INCOMPLETE too resets what a previous call left */
    CHECK_EQ_INT(proto_http_parse_request(buf, 3, 0, NULL, &req), HTTP_INCOMPLETE);
    CHECK_EQ_INT(req.minor_version, 0xff);
    slice_is(req.method, "");
    guarded_free(buf, sizeof(H11 "Content-Length: 5\r\nX: \x01\r\n\r\n") - 1);
    /* 505: the method and target are there, the version is not */
    p = parse_lim(LIT("BREW /pot HTTP/2.0\r\n"), NULL);
    CHECK_EQ_INT(p->r, HTTP_E_VERSION_UNSUPPORTED);
    slice_is(p->req.method, "BREW");
    slice_is(p->req.target, "/pot");
    CHECK_EQ_INT(p->req.minor_version, 0xff);
    parsed_free(p);
    /* an empty buffer: the pointer is never read */
    CHECK_EQ_INT(STATUS(""), HTTP_INCOMPLETE);
}

/* ---- helpers for the server ---- */

TEST(find_header_and_name_eq)
{
    struct parsed *p = parse_lim(
        LIT(H11 "Cookie: a=1\r\nX-Y: 2\r\nCOOKIE: b=2\r\ncookie: c=3\r\n\r\n"), NULL);
    const struct gy_param *h;
    int seen = 0;

    if (CHECK(p->r > 0)) {
        static const char *const want[] = { "a=1", "b=2", "c=3" };

        for (h = NULL; (h = proto_http_find_header(&p->req, h, LIT("cookie")));)
            if (CHECK(seen < 3))
                slice_is(h->value, want[seen++]);
        CHECK_EQ_INT(seen, 3);
        h = proto_http_find_header(&p->req, NULL, LIT("host"));
        if (CHECK(h != NULL))
            slice_is(h->value, "h");
        CHECK(proto_http_find_header(&p->req, NULL, LIT("x-z")) == NULL);
        CHECK(proto_http_find_header(&p->req, NULL, LIT("x-")) == NULL);
        h = &p->req.headers[p->req.nheaders - 1];
        CHECK(proto_http_find_header(&p->req, h, LIT("cookie")) == NULL);
    }
    parsed_free(p);
    CHECK(HTTP_NAME_EQ(((struct gy_slice){ "Content-TYPE", 12 }), "content-type"));
    CHECK(!HTTP_NAME_EQ(((struct gy_slice){ "Content-TYPE", 12 }), "content-typ"));
    CHECK(!HTTP_NAME_EQ(((struct gy_slice){ "Content_TYPE", 12 }), "content-type"));
    /* only ASCII letters fold: '@' is not '`', '[' is not '{' */
    CHECK(!HTTP_NAME_EQ(((struct gy_slice){ "@[", 2 }), "`{"));
}

/* Repeats are joined in one pass, in order, with the caller's separator (issue 8, 11). */
TEST(join_repeats)
{
    static const char in[] = H11 "Cookie: a=1\r\nX-M: x\r\ncookie: b=2; c=3\r\nX-E:\r\n"
                                 "COOKIE: d=4\r\nX-M: \r\nX-E: e\r\n\r\n";
    struct parsed *p = parse_lim(LIT(in), NULL);
    char out[64];

    if (CHECK_EQ_INT(p->r, sizeof(in) - 1) && CHECK_EQ_INT(p->req.nheaders, 8)) {
        const struct gy_param *h = p->req.headers;

        /* Host, Cookie, X-M, cookie, X-E, COOKIE, X-M, X-E */
        CHECK(!proto_http_is_repeat(&p->req, &h[0]));
        CHECK(!proto_http_is_repeat(&p->req, &h[1]));
        CHECK(!proto_http_is_repeat(&p->req, &h[2]));
        CHECK(proto_http_is_repeat(&p->req, &h[3]));
        CHECK(!proto_http_is_repeat(&p->req, &h[4]));
        CHECK(proto_http_is_repeat(&p->req, &h[5]));
        CHECK(proto_http_is_repeat(&p->req, &h[6]));
        CHECK(proto_http_is_repeat(&p->req, &h[7]));

        size_t n = proto_http_join_repeats(&p->req, &h[1], "; ", 2, out, sizeof(out));
        CHECK_EQ_MEM(out, n, "a=1; b=2; c=3; d=4", 18);
        n = proto_http_join_repeats(&p->req, &h[2], ", ", 2, out, sizeof(out));
        CHECK_EQ_MEM(out, n, "x, ", 3); /* an empty repeat is an empty element */
        n = proto_http_join_repeats(&p->req, &h[4], ", ", 2, out, sizeof(out));
        CHECK_EQ_MEM(out, n, ", e", 3);
        n = proto_http_join_repeats(&p->req, &h[0], ", ", 2, out, sizeof(out));
        CHECK_EQ_MEM(out, n, "h", 1); /* no repeat: the value itself */
        /* the length alone, and nothing written when it does not fit */
        CHECK_EQ_INT(proto_http_join_repeats(&p->req, &h[1], "; ", 2, NULL, 0), 18);
        memset(out, '#', sizeof(out));
        CHECK_EQ_INT(proto_http_join_repeats(&p->req, &h[1], "; ", 2, out, 17), 18);
        CHECK(out[0] == '#');
        CHECK_EQ_INT(proto_http_join_repeats(&p->req, &h[1], "; ", 2, out, 18), 18);
        CHECK_EQ_MEM(out, 18, "a=1; b=2; c=3; d=4", 18);
    }
    parsed_free(p);

    /* 99 repeats of 150 bytes in a 16 KiB head: joined, they take about the head's size (the
     * server's scratch space is twice max_head), not the sum of every partial join. */
    size_t n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 98; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "Cookie: %02d%0150d\r\n", i, 0);
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n");
    CHECK(n <= HTTP_DEFAULT_MAX_HEAD);
    p = parse_lim(big, n, NULL);
    if (CHECK_EQ_INT(p->r, n) && CHECK_EQ_INT(p->req.nheaders, 99)) {
        static char joined[HTTP_DEFAULT_MAX_HEAD];
        size_t want = 98 * 152 + 97 * 2, got;

        got = proto_http_join_repeats(&p->req, &p->req.headers[1], "; ", 2, joined, sizeof(joined));
        if (CHECK_EQ_INT(got, want)) {
            CHECK(memcmp(joined, "00000", 5) == 0 && memcmp(joined + 152, "; 01", 4) == 0);
            CHECK(memcmp(joined + want - 152, "97", 2) == 0);
        }
        CHECK(got < n);
    }
    parsed_free(p);
}

TEST(cgi_name)
{
    char out[32];

    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ LIT("User-Agent") }, out, sizeof(out)), 15);
    CHECK_EQ_STR(out, "HTTP_USER_AGENT");
    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ LIT("content-type") }, out, sizeof(out)),
                 12);
    CHECK_EQ_STR(out, "CONTENT_TYPE");
    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ LIT("Content-Length") }, out, sizeof(out)),
                 14);
    CHECK_EQ_STR(out, "CONTENT_LENGTH");
    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ LIT("x-1.a~b") }, out, sizeof(out)), 12);
    CHECK_EQ_STR(out, "HTTP_X_1.A~B");
    strcpy(out, "unchanged");
    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ LIT("X_Forwarded_For") }, out, sizeof(out)),
                 0);
    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ LIT("_") }, out, sizeof(out)), 0);
    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ "", 0 }, out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "unchanged");
    /* exactly fitting, and one byte short */
    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ LIT("A") }, out, 7), 6);
    CHECK_EQ_STR(out, "HTTP_A");
    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ LIT("A") }, out, 6), 0);
    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ LIT("A") }, out, 0), 0);
    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ LIT("Content-Type") }, out, 13), 12);
    CHECK_EQ_INT(proto_http_cgi_name((struct gy_slice){ LIT("Content-Type") }, out, 12), 0);
}

TEST(status_codes_and_strerror)
{
    static const struct {
        int status, code;
    } map[] = {
        { HTTP_E_LINE_ENDING, 400 },
        { HTTP_E_METHOD, 400 },
        { HTTP_E_METHOD_TOO_LONG, 501 },
        { HTTP_E_TARGET, 400 },
        { HTTP_E_TARGET_TOO_LONG, 414 },
        { HTTP_E_REQUEST_LINE, 400 },
        { HTTP_E_VERSION, 400 },
        { HTTP_E_VERSION_UNSUPPORTED, 505 },
        { HTTP_E_OBS_FOLD, 400 },
        { HTTP_E_HEADER_NAME, 400 },
        { HTTP_E_SPACE_BEFORE_COLON, 400 },
        { HTTP_E_HEADER_VALUE, 400 },
        { HTTP_E_HEADER_LINE_TOO_LONG, 431 },
        { HTTP_E_TOO_MANY_HEADERS, 431 },
        { HTTP_E_HEAD_TOO_LARGE, 431 },
        { HTTP_E_HOST_MISSING, 400 },
        { HTTP_E_HOST_DUPLICATE, 400 },
        { HTTP_E_HOST_INVALID, 400 },
        { HTTP_E_CONTENT_LENGTH, 400 },
        { HTTP_E_CONTENT_LENGTH_CONFLICT, 400 },
        { HTTP_E_TRANSFER_ENCODING, 400 },
        { HTTP_E_TE_UNSUPPORTED, 501 },
        { HTTP_E_TE_CHUNKED_TWICE, 400 },
        { HTTP_E_TE_HTTP10, 400 },
        { HTTP_E_CL_AND_TE, 400 },
        { HTTP_E_CHUNK_SIZE, 400 },
        { HTTP_E_CHUNK_SIZE_TOO_LONG, 400 },
        { HTTP_E_CHUNK_EXT, 400 },
        { HTTP_E_CHUNK_EXT_TOO_LONG, 400 },
        { HTTP_E_CHUNK_DATA_CRLF, 400 },
        { HTTP_E_CHUNK_TRAILER, 400 },
        { HTTP_E_CHUNK_TRAILERS_TOO_LARGE, 431 },
        { HTTP_E_CHUNK_AFTER_END, 500 },
        { HTTP_E_METHOD_CONNECT, 501 },
    };
    const size_t n = sizeof(map) / sizeof(map[0]);

    CHECK_EQ_INT(n, -HTTP_E_LAST); /* every status is listed */
    for (size_t i = 0; i < n; i++) {
        const char *s = proto_http_strerror(map[i].status);

        TEST_CONTEXT("status %d", map[i].status);
        CHECK_EQ_INT(map[i].status, -(int)i - 1);
        CHECK_EQ_INT(proto_http_error_status(map[i].status), map[i].code);
        CHECK(s[0] >= 'a' && s[0] <= 'z');
        CHECK(strlen(s) < 60 && s[strlen(s) - 1] != '.' && !strchr(s, '\n'));
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(s, proto_http_strerror(map[j].status)) != 0);
        CHECK(strcmp(s, proto_http_strerror(-100)) != 0);
        CHECK(strcmp(s, proto_http_strerror(HTTP_INCOMPLETE)) != 0);
    }
    CHECK_EQ_INT(proto_http_error_status(HTTP_INCOMPLETE), 0);
    CHECK_EQ_INT(proto_http_error_status(42), 0);
    CHECK_EQ_INT(proto_http_error_status(HTTP_E_LAST - 1), 0);
    CHECK_EQ_STR(proto_http_strerror(HTTP_INCOMPLETE), "incomplete request");
    CHECK_EQ_STR(proto_http_strerror(HTTP_E_LAST - 1), "unknown error");
    CHECK_EQ_STR(proto_http_strerror(42), "no error");
}

/* ---- the chunked decoder ---- */

TEST(chunked_simple)
{
    CHUNKED_OK("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
    CHUNKED_OK("0\r\n\r\n", "");
    CHUNKED_OK("1\r\nx\r\n0\r\n\r\n", "x");
    CHUNKED_OK("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij");
    CHUNKED_OK("0005\r\nhello\r\n000\r\n\r\n", "hello");
    /* data holding what looks like framing */
    CHUNKED_OK("7\r\n0\r\n\r\n\r\n\r\n0\r\n\r\n", "0\r\n\r\n\r\n");
    CHUNKED_OK("3\r\n\x00\xff\n\r\n0\r\n\r\n", "\x00\xff\n");
}

TEST(chunked_leaves_what_follows)
{
    /* the body ends 12 bytes in; a pipelined request follows, left in place */
    check_chunked(LIT("2\r\nok\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), 12, LIT("ok"));
    check_chunked(LIT("0\r\n\r\n0\r\n\r\n"), 5, "", 0);
}

TEST(chunked_incomplete)
{
    CHUNKED_ERR("5\r\nhel", HTTP_INCOMPLETE, "hel");
    CHUNKED_ERR("5\r\nhello\r\n0\r\n", HTTP_INCOMPLETE, "hello");
    CHUNKED_ERR("5\r\nhello\r\n0\r\n\r", HTTP_INCOMPLETE, "hello");
    CHUNKED_ERR("5", HTTP_INCOMPLETE, "");
    CHUNKED_ERR("", HTTP_INCOMPLETE, "");
}

TEST(chunked_size_errors)
{
    CHUNKED_ERR("\r\n", HTTP_E_CHUNK_SIZE, "");
    CHUNKED_ERR("\n", HTTP_E_LINE_ENDING, "");
    CHUNKED_ERR("x5\r\n", HTTP_E_CHUNK_SIZE, "");
    CHUNKED_ERR(" 5\r\n", HTTP_E_CHUNK_SIZE, "");
    CHUNKED_ERR("-5\r\n", HTTP_E_CHUNK_SIZE, "");
    CHUNKED_ERR("+5\r\n", HTTP_E_CHUNK_SIZE, "");
    CHUNKED_ERR("0x5\r\n", HTTP_E_CHUNK_SIZE, "");
    CHUNKED_ERR("5g\r\n", HTTP_E_CHUNK_SIZE, "");
    CHUNKED_ERR("5 \r\n", HTTP_E_CHUNK_SIZE, "");
    CHUNKED_ERR("5 5\r\n", HTTP_E_CHUNK_SIZE, "");
    CHUNKED_ERR("5\n", HTTP_E_LINE_ENDING, "");
    CHUNKED_ERR("5\rX", HTTP_E_LINE_ENDING, "");
    CHUNKED_ERR("5\r\r\n", HTTP_E_LINE_ENDING, "");
    CHUNKED_ERR("5\r\nhello\r\n\r\n", HTTP_E_CHUNK_SIZE, "hello");
    /* the errors come at the first bad byte, whatever follows */
    CHUNKED_ERR("x", HTTP_E_CHUNK_SIZE, "");
}

TEST(chunked_size_boundaries)
{
    /* 16 hex digits: fine, whatever their value, leading zeros counting */
    CHUNKED_OK("0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n", "hello");
    CHUNKED_ERR("00000000000000005\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK_SIZE_TOO_LONG, "");
    CHUNKED_ERR("00000000000000000\r\n\r\n", HTTP_E_CHUNK_SIZE_TOO_LONG, "");
    CHUNKED_ERR("10000000000000000\r\n", HTTP_E_CHUNK_SIZE_TOO_LONG, "");
    CHUNKED_ERR("fffffffffffffffff", HTTP_E_CHUNK_SIZE_TOO_LONG, "");
    CHUNKED_ERR("ffffffffffffffff\r\nabc", HTTP_INCOMPLETE, "abc");
    CHUNKED_ERR("FFFFFFFFFFFFFFFF\r\nabc", HTTP_INCOMPLETE, "abc");
    CHUNKED_ERR("7fffffffffffffff\r\nabc", HTTP_INCOMPLETE, "abc");
    CHUNKED_ERR("8000000000000000\r\nabc", HTTP_INCOMPLETE, "abc");

    /* the announced size is all in the decoder, exactly */
    {
        struct http_chunked_decoder dec = { 0 };
        char *buf = writable_copy(LIT("ffffffffffffffff\r\nabc"));
        size_t n = sizeof("ffffffffffffffff\r\nabc") - 1;

        CHECK_EQ_INT(proto_http_decode_chunked(&dec, buf, &n), HTTP_INCOMPLETE);
        CHECK_EQ_INT(n, 3);
        CHECK(dec.remaining == UINT64_MAX - 3);
        CHECK_EQ_INT(dec.total, 3);
        guarded_free(buf, sizeof("ffffffffffffffff\r\nabc") - 1);
    }
}

TEST(chunked_extensions)
{
    char in[4096], ext[2048];
    int n;

    CHUNKED_OK("5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello");
    CHUNKED_OK("5 ; a=b\r\nhello\r\n0\r\n\r\n", "hello");
    CHUNKED_OK("5\t;a=\"q s;\\\" x\"\r\nhello\r\n0\r\n\r\n", "hello");
    CHUNKED_OK("5;\xff\r\nhello\r\n0\r\n\r\n", "hello");
    CHUNKED_OK("5;\r\nhello\r\n0\r\n\r\n", "hello");
    CHUNKED_ERR("5;a\x01\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK_EXT, "");
    CHUNKED_ERR("5;a\x7f\r\n", HTTP_E_CHUNK_EXT, "");
    CHUNKED_ERR("5;a\n", HTTP_E_LINE_ENDING, "");
    CHUNKED_ERR("5;a\rb", HTTP_E_LINE_ENDING, "");

    /* exactly HTTP_CHUNK_MAX_EXT bytes between the size and the CR, then one more */
    memset(ext, 'e', sizeof(ext));
    ext[0] = ';';
    n = snprintf(in, sizeof(in), "5%.*s\r\nhello\r\n0%.*s\r\n\r\n", HTTP_CHUNK_MAX_EXT, ext,
                 HTTP_CHUNK_MAX_EXT, ext);
    check_chunked(in, (size_t)n, n, LIT("hello"));
    n = snprintf(in, sizeof(in), "5%.*s\r\nhello\r\n0\r\n\r\n", HTTP_CHUNK_MAX_EXT + 1, ext);
    check_chunked(in, (size_t)n, HTTP_E_CHUNK_EXT_TOO_LONG, "", 0);
    /* BWS counts too */
    memset(ext, ' ', HTTP_CHUNK_MAX_EXT);
    ext[HTTP_CHUNK_MAX_EXT - 1] = ';';
    n = snprintf(in, sizeof(in), "5%.*s\r\nhello\r\n0\r\n\r\n", HTTP_CHUNK_MAX_EXT, ext);
    check_chunked(in, (size_t)n, n, LIT("hello"));
    ext[HTTP_CHUNK_MAX_EXT - 1] = ' ';
    ext[HTTP_CHUNK_MAX_EXT] = ';';
    n = snprintf(in, sizeof(in), "5%.*s\r\nhello\r\n0\r\n\r\n", HTTP_CHUNK_MAX_EXT + 1, ext);
    check_chunked(in, (size_t)n, HTTP_E_CHUNK_EXT_TOO_LONG, "", 0);
    /* the limit is per chunk line: many lines each at the limit */
    memset(ext, 'e', sizeof(ext));
    ext[0] = ';';
    n = snprintf(in, sizeof(in), "1%.*s\r\na\r\n1%.*s\r\nb\r\n0\r\n\r\n", HTTP_CHUNK_MAX_EXT, ext,
                 HTTP_CHUNK_MAX_EXT, ext);
    check_chunked(in, (size_t)n, n, LIT("ab"));
}

TEST(chunked_data_crlf_required)
{
    CHUNKED_ERR("5\r\nhelloX\r\n0\r\n\r\n", HTTP_E_CHUNK_DATA_CRLF, "hello");
    CHUNKED_ERR("5\r\nhello world\r\n0\r\n\r\n", HTTP_E_CHUNK_DATA_CRLF, "hello");
    CHUNKED_ERR("5\r\nhello\rX\r\n0\r\n\r\n", HTTP_E_CHUNK_DATA_CRLF, "hello");
    CHUNKED_ERR("5\r\nhello\n0\r\n\r\n", HTTP_E_CHUNK_DATA_CRLF, "hello");
    CHUNKED_ERR("5\r\nhello\n\n0\r\n\r\n", HTTP_E_CHUNK_DATA_CRLF, "hello");
    CHUNKED_ERR("5\r\nhello\r\r\n0\r\n\r\n", HTTP_E_CHUNK_DATA_CRLF, "hello");
    CHUNKED_ERR("5\r\nhello\n\r0\r\n\r\n", HTTP_E_CHUNK_DATA_CRLF, "hello");
    CHUNKED_ERR("5\r\nhello0\r\n\r\n", HTTP_E_CHUNK_DATA_CRLF, "hello");
    CHUNKED_ERR("4\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK_DATA_CRLF, "hell");
    CHUNKED_ERR("6\r\nhello\r\n0\r\n\r\n", HTTP_E_CHUNK_DATA_CRLF, "hello\r");
}

TEST(chunked_trailers)
{
    char in[3 * HTTP_CHUNK_MAX_TRAILERS];
    int n, o;

    CHUNKED_OK("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nY:z\r\nZ: \t\r\n\r\n", "hello");
    CHUNKED_OK("0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n", "");
    CHUNKED_ERR("0\r\nX\r\n\r\n", HTTP_E_CHUNK_TRAILER, "");
    CHUNKED_ERR("0\r\n: v\r\n\r\n", HTTP_E_CHUNK_TRAILER, "");
    CHUNKED_ERR("0\r\n x: v\r\n\r\n", HTTP_E_CHUNK_TRAILER, "");
    CHUNKED_ERR("0\r\nX : v\r\n\r\n", HTTP_E_CHUNK_TRAILER, "");
    CHUNKED_ERR("0\r\nX: a\x00\r\n\r\n", HTTP_E_CHUNK_TRAILER, "");
    CHUNKED_ERR("0\r\nX: a\n\r\n", HTTP_E_LINE_ENDING, "");
    CHUNKED_ERR("0\r\nX: a\rb", HTTP_E_LINE_ENDING, "");
    CHUNKED_ERR("0\r\n\n", HTTP_E_LINE_ENDING, "");
    CHUNKED_ERR("0\r\n\rX", HTTP_E_LINE_ENDING, "");

    /* the trailer section, final CRLF included, at exactly its limit and one past */
    for (int extra = 0; extra <= 1; extra++) {
        const int size = HTTP_CHUNK_MAX_TRAILERS + extra;

        o = snprintf(in, sizeof(in), "1\r\nz\r\n0\r\n");
        n = o;
        /* lines "T: vvvv\r\n" of 100 bytes, then one line to make the size exact */
        while (size - (n - o) - 2 > 200) {
            n += snprintf(in + n, sizeof(in) - (size_t)n, "T: %095d\r\n", 0);
        }
        {
            int last = size - (n - o) - 2 - 5; /* "L: " + value + CRLF */

            n += snprintf(in + n, sizeof(in) - (size_t)n, "L: %0*d\r\n\r\n", last, 0);
        }
        TEST_CONTEXT("trailers of %d bytes", n - o);
        CHECK_EQ_INT(n - o, size);
        check_chunked(in, (size_t)n, extra ? HTTP_E_CHUNK_TRAILERS_TOO_LARGE : n, LIT("z"));
    }
}

TEST(chunked_errors_stick_and_end_is_final)
{
    struct http_chunked_decoder dec = { 0 };
    char *buf = writable_copy(LIT("5\r\nhelloX"));
    char *good = writable_copy(LIT("0\r\n\r\n"));
    size_t n = 9;

    CHECK_EQ_INT(proto_http_decode_chunked(&dec, buf, &n), HTTP_E_CHUNK_DATA_CRLF);
    CHECK_EQ_MEM(buf, n, "hello", 5);
    n = 5;
    CHECK_EQ_INT(proto_http_decode_chunked(&dec, good, &n), HTTP_E_CHUNK_DATA_CRLF);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_MEM(good, 5, "0\r\n\r\n", 5); /* untouched */
    guarded_free(buf, 9);
    guarded_free(good, 5);

    memset(&dec, 0, sizeof(dec));
    good = writable_copy(LIT("0\r\n\r\n0\r\n\r\n"));
    n = 10;
    CHECK_EQ_INT(proto_http_decode_chunked(&dec, good, &n), 5);
    CHECK_EQ_INT(n, 0);
    n = 5;
    CHECK_EQ_INT(proto_http_decode_chunked(&dec, good + 5, &n), HTTP_E_CHUNK_AFTER_END);
    CHECK_EQ_INT(n, 0);
    n = 0;
    CHECK_EQ_INT(proto_http_decode_chunked(&dec, good, &n), HTTP_E_CHUNK_AFTER_END);
    guarded_free(good, 10);
    /* an empty input needs more, and reads nothing */
    memset(&dec, 0, sizeof(dec));
    n = 0;
    good = writable_copy("", 0);
    CHECK_EQ_INT(proto_http_decode_chunked(&dec, good, &n), HTTP_INCOMPLETE);
    CHECK_EQ_INT(n, 0);
    guarded_free(good, 0);
}

/* A long body of random chunks, extensions and trailers, decoded in random pieces. */
TEST(chunked_random_bodies)
{
    static char in[1 << 15], data[1 << 14];

    for (int round = 0; round < 8; round++) {
        size_t n = 0, nd = 0;

        rng_seed(1000 + (uint64_t)round);
        while (nd < 6000) {
            size_t size = rng() % 3 ? rng() % 64 + 1 : rng() % 4000 + 1;

            n += (size_t)snprintf(in + n, sizeof(in) - n, rng() % 2 ? "%zx" : "%zX", size);
            if (rng() % 4 == 0)
                n += (size_t)snprintf(in + n, sizeof(in) - n, ";ext=%u", (unsigned)(rng() % 1000));
            in[n++] = '\r';
            in[n++] = '\n';
            for (size_t i = 0; i < size; i++)
                in[n++] = data[nd++] = (char)rng();
            in[n++] = '\r';
            in[n++] = '\n';
        }
        n += (size_t)snprintf(in + n, sizeof(in) - n, "0\r\n%s\r\n",
                              round % 2 ? "Trailer-A: 1\r\nTrailer-B: x y\r\n" : "");
        TEST_CONTEXT("round %d", round);
        check_chunked(in, n, (ptrdiff_t)n, data, nd);
    }
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
