/*
 * Unit tests of proto_uwsgi_parse(). Every input is parsed from a guarded copy whose last byte
 * sits just before an inaccessible page, so an over-read crashes the test instead of passing.
 */
#include "testlib.h"
#include "uwsgi.h"

/* A packet under construction: header, vars, then whatever raw bytes a test appends. */
struct pkt {
    size_t len;
    unsigned char buf[UWSGI_HEADER_SIZE + UWSGI_MAX_DATASIZE + 4096];
};

struct var {
    const char *key, *value;
};

static void pkt_bytes(struct pkt *p, const void *data, size_t n)
{
    if (p->len + n > sizeof(p->buf)) {
        fprintf(stderr, "test packet overflow\n");
        abort();
    }
    memcpy(p->buf + p->len, data, n);
    p->len += n;
}

static void pkt_u16(struct pkt *p, size_t v)
{
    unsigned char b[2] = { (unsigned char)(v & 0xff), (unsigned char)(v >> 8 & 0xff) };

    pkt_bytes(p, b, 2);
}

/* The header with datasize 0 for now: pkt_end() or pkt_set_datasize() fills it in. */
static void pkt_start(struct pkt *p, uint8_t modifier1, uint8_t modifier2)
{
    unsigned char h[UWSGI_HEADER_SIZE] = { modifier1, 0, 0, modifier2 };

    p->len = 0;
    pkt_bytes(p, h, sizeof(h));
}

static void pkt_var_n(struct pkt *p, const void *key, size_t klen, const void *val, size_t vlen)
{
    pkt_u16(p, klen);
    pkt_bytes(p, key, klen);
    pkt_u16(p, vlen);
    pkt_bytes(p, val, vlen);
}

static void pkt_var(struct pkt *p, const char *key, const char *val)
{
    pkt_var_n(p, key, strlen(key), val, strlen(val));
}

static void pkt_set_datasize(struct pkt *p, size_t datasize)
{
    p->buf[1] = (unsigned char)(datasize & 0xff);
    p->buf[2] = (unsigned char)(datasize >> 8 & 0xff);
}

/* Closes the vars block: datasize = everything after the header so far. Returns 4 + datasize. */
static size_t pkt_end(struct pkt *p)
{
    pkt_set_datasize(p, p->len - UWSGI_HEADER_SIZE);
    return p->len;
}

/* Status of parsing a guarded copy of data[0..len), for tests that need nothing else. */
static int status_of(const void *data, size_t len, size_t max_datasize)
{
    static struct uwsgi_request req;
    char *buf = guarded_copy(data, len);
    int r = proto_uwsgi_parse(buf, len, max_datasize, &req);

    guarded_free(buf, len);
    return r;
}

static int pkt_status(const struct pkt *p, size_t max_datasize)
{
    return status_of(p->buf, p->len, max_datasize);
}

static size_t u16le(const char *p)
{
    return (size_t)(unsigned char)p[0] | (size_t)(unsigned char)p[1] << 8;
}

/*
 * The params of a successful parse, encoded again, must be buf[4..r) byte for byte: that pins
 * every slice to its exact place in the buffer, inside the vars block, in order, none skipped.
 */
static void check_reencodes(const char *buf, int r, const struct uwsgi_request *req)
{
    const char *p = buf + UWSGI_HEADER_SIZE, *end = buf + r;

    CHECK_EQ_INT(r, UWSGI_HEADER_SIZE + req->datasize);
    CHECK(req->nparams <= GY_MAX_PARAMS);
    for (uint32_t i = 0; i < req->nparams && end - p >= 4; i++) {
        const struct gy_param *pr = &req->params[i];

        CHECK_EQ_INT(u16le(p), pr->name.len);
        CHECK(pr->name.ptr == p + 2);
        p += 2 + pr->name.len;
        CHECK_EQ_INT(u16le(p), pr->value.len);
        CHECK(pr->value.ptr == p + 2);
        p += 2 + pr->value.len;
        if (!CHECK(p <= end))
            return;
    }
    CHECK(p == end);
}

/* Parses p from a guarded copy and checks it against the vars it was built from. */
static void check_parses_to(const struct pkt *p, size_t max_datasize, const struct var *vars,
                            size_t nvars, int64_t content_length)
{
    static struct uwsgi_request req;
    char *buf = guarded_copy(p->buf, p->len);
    int r = proto_uwsgi_parse(buf, p->len, max_datasize, &req);

    if (CHECK(r > 0)) {
        check_reencodes(buf, r, &req);
        CHECK_EQ_INT(req.content_length, content_length);
        if (CHECK_EQ_INT(req.nparams, nvars)) {
            for (size_t i = 0; i < nvars; i++) {
                CHECK_EQ_MEM(req.params[i].name.ptr, req.params[i].name.len, vars[i].key,
                             strlen(vars[i].key));
                CHECK_EQ_MEM(req.params[i].value.ptr, req.params[i].value.len, vars[i].value,
                             strlen(vars[i].value));
            }
        }
    }
    guarded_free(buf, p->len);
}

/* What nginx 1.22 sends for a small form POST with the stock uwsgi_params. */
static const struct var nginx_post[] = {
    { "QUERY_STRING", "a=1&b=%C3%A9" },
    { "REQUEST_METHOD", "POST" },
    { "CONTENT_TYPE", "application/x-www-form-urlencoded" },
    { "CONTENT_LENGTH", "11" },
    { "REQUEST_URI", "/submit/form?a=1&b=%C3%A9" },
    { "PATH_INFO", "/submit/form" },
    { "DOCUMENT_ROOT", "/usr/share/nginx/html" },
    { "SERVER_PROTOCOL", "HTTP/1.1" },
    { "REQUEST_SCHEME", "http" },
    { "REMOTE_ADDR", "127.0.0.1" },
    { "REMOTE_PORT", "51234" },
    { "SERVER_PORT", "8080" },
    { "SERVER_NAME", "localhost" },
    { "HTTP_HOST", "localhost:8080" },
    { "HTTP_USER_AGENT", "curl/7.88.1" },
    { "HTTP_ACCEPT", "*/*" },
    { "HTTP_CONTENT_LENGTH", "11" },
    { "HTTP_CONTENT_TYPE", "application/x-www-form-urlencoded" },
};
#define NGINX_POST_N (sizeof(nginx_post) / sizeof(nginx_post[0]))
static const char nginx_body[] = "hello=world";

static size_t build_nginx_post(struct pkt *p)
{
    size_t head;

    pkt_start(p, 0, 0);
    for (size_t i = 0; i < NGINX_POST_N; i++)
        pkt_var(p, nginx_post[i].key, nginx_post[i].value);
    head = pkt_end(p);
    pkt_bytes(p, nginx_body, sizeof(nginx_body) - 1);
    return head;
}

/*
 * Feeds every prefix of p, each from its own guarded copy: INCOMPLETE until the header and vars
 * are all there, then the full size however many body bytes follow.
 */
static void check_every_prefix(const struct pkt *p, size_t head, size_t max_datasize)
{
    for (size_t n = 0; n <= p->len; n++) {
        TEST_CONTEXT("prefix of %zu of %zu bytes", n, p->len);
        CHECK_EQ_INT(status_of(p->buf, n, max_datasize), n < head ? UWSGI_INCOMPLETE : (int)head);
    }
}

/* ---- whole requests ---- */

TEST(nginx_post)
{
    static struct pkt p;
    static struct uwsgi_request req;
    size_t head = build_nginx_post(&p);
    char *buf = guarded_copy(p.buf, p.len);
    int r = proto_uwsgi_parse(buf, p.len, 4096, &req);

    CHECK_EQ_INT(r, head);
    CHECK_EQ_INT(req.modifier1, 0);
    CHECK_EQ_INT(req.modifier2, 0);
    CHECK_EQ_INT(req.datasize, head - UWSGI_HEADER_SIZE);
    CHECK_EQ_INT(req.content_length, 11);
    CHECK_EQ_INT(req.nparams, NGINX_POST_N);
    /* The body follows the vars untouched (the copy is read-only, so it could not be written). */
    CHECK_EQ_MEM(buf + r, p.len - (size_t)r, nginx_body, sizeof(nginx_body) - 1);
    guarded_free(buf, p.len);

    check_parses_to(&p, 4096, nginx_post, NGINX_POST_N, 11);
}

TEST(nginx_post_every_prefix)
{
    static struct pkt p;
    size_t head = build_nginx_post(&p);

    check_every_prefix(&p, head, 4096);
}

TEST(small_packets_every_prefix)
{
    static struct pkt p;
    size_t head;

    pkt_start(&p, 0, 0);
    pkt_var(&p, "A", "");
    head = pkt_end(&p);
    check_every_prefix(&p, head, UWSGI_MAX_DATASIZE);

    pkt_start(&p, 0, 7);
    pkt_var(&p, "REQUEST_METHOD", "GET");
    pkt_var(&p, "PATH_INFO", "/");
    head = pkt_end(&p);
    pkt_bytes(&p, "\0\x01\x02 body", 8);
    check_every_prefix(&p, head, head - UWSGI_HEADER_SIZE);
}

TEST(pipelined_requests_parse_one_at_a_time)
{
    static struct pkt p;
    static struct uwsgi_request req;
    size_t first, second;
    char *buf;
    int r;

    pkt_start(&p, 0, 0);
    pkt_var(&p, "PATH_INFO", "/one");
    first = pkt_end(&p);
    pkt_bytes(&p, (unsigned char[]){ 0, 0, 0, 0 }, 4); /* second header, patched below */
    pkt_u16(&p, 9);
    pkt_bytes(&p, "PATH_INFO", 9);
    pkt_u16(&p, 4);
    pkt_bytes(&p, "/two", 4);
    second = p.len - first;
    p.buf[first + 1] = (unsigned char)(second - UWSGI_HEADER_SIZE);

    buf = guarded_copy(p.buf, p.len);
    r = proto_uwsgi_parse(buf, p.len, 4096, &req);
    CHECK_EQ_INT(r, first);
    if (CHECK_EQ_INT(req.nparams, 1))
        CHECK_EQ_MEM(req.params[0].value.ptr, req.params[0].value.len, "/one", 4);
    r = proto_uwsgi_parse(buf + first, p.len - first, 4096, &req);
    CHECK_EQ_INT(r, second);
    if (CHECK_EQ_INT(req.nparams, 1))
        CHECK_EQ_MEM(req.params[0].value.ptr, req.params[0].value.len, "/two", 4);
    guarded_free(buf, p.len);
}

/* ---- the header ---- */

TEST(fewer_than_four_bytes_is_incomplete)
{
    /* Even bytes that will turn out to be a bad header: nothing is decided before 4 bytes. */
    static const unsigned char junk[3] = { 0xff, 0xff, 0xff };
    static const unsigned char zeros[3] = { 0, 0, 0 };

    for (size_t n = 0; n < UWSGI_HEADER_SIZE; n++) {
        TEST_CONTEXT("%zu bytes", n);
        CHECK_EQ_INT(status_of(junk, n, UWSGI_MAX_DATASIZE), UWSGI_INCOMPLETE);
        CHECK_EQ_INT(status_of(zeros, n, 0), UWSGI_INCOMPLETE);
    }
}

TEST(modifier1_other_than_zero)
{
    static struct uwsgi_request req;

    for (unsigned m = 1; m <= 0xff; m++) {
        unsigned char h[UWSGI_HEADER_SIZE] = { (unsigned char)m, 0x10, 0, 0 };
        char *buf = guarded_copy(h, sizeof(h));

        TEST_CONTEXT("modifier1 %u", m);
        CHECK_EQ_INT(proto_uwsgi_parse(buf, sizeof(h), UWSGI_MAX_DATASIZE, &req), UWSGI_E_MODIFIER);
        CHECK_EQ_INT(req.modifier1, m);
        guarded_free(buf, sizeof(h));
    }
}

TEST(modifier2_is_passed_through)
{
    static struct pkt p;
    static struct uwsgi_request req;

    for (unsigned m = 0; m <= 0xff; m++) {
        char *buf;

        pkt_start(&p, 0, (uint8_t)m);
        pkt_var(&p, "K", "v");
        pkt_end(&p);
        buf = guarded_copy(p.buf, p.len);
        TEST_CONTEXT("modifier2 %u", m);
        CHECK_EQ_INT(proto_uwsgi_parse(buf, p.len, UWSGI_MAX_DATASIZE, &req), p.len);
        CHECK_EQ_INT(req.modifier2, m);
        guarded_free(buf, p.len);
    }
}

TEST(datasize_zero_is_empty)
{
    static const unsigned char h[] = { 0, 0, 0, 0 };
    static const unsigned char more[] = { 0, 0, 0, 0, 1, 0, 'K', 0, 0 };

    CHECK_EQ_INT(status_of(h, sizeof(h), UWSGI_MAX_DATASIZE), UWSGI_E_EMPTY);
    CHECK_EQ_INT(status_of(more, sizeof(more), UWSGI_MAX_DATASIZE), UWSGI_E_EMPTY);
}

TEST(header_checks_in_order)
{
    /* modifier1, then empty, then size: each header fails on its first problem. */
    static const unsigned char bad_mod_empty[] = { 1, 0, 0, 0 };
    static const unsigned char bad_mod_big[] = { 1, 0xff, 0xff, 0 };
    static const unsigned char empty_max0[] = { 0, 0, 0, 0 };

    CHECK_EQ_INT(status_of(bad_mod_empty, 4, UWSGI_MAX_DATASIZE), UWSGI_E_MODIFIER);
    CHECK_EQ_INT(status_of(bad_mod_big, 4, 16), UWSGI_E_MODIFIER);
    CHECK_EQ_INT(status_of(empty_max0, 4, 0), UWSGI_E_EMPTY);
}

TEST(too_big_from_the_header_alone)
{
    static struct uwsgi_request req;
    static const unsigned char h[] = { 0, 0x01, 0x10, 0 }; /* datasize 0x1001 = 4097 */
    char *buf = guarded_copy(h, sizeof(h));

    CHECK_EQ_INT(proto_uwsgi_parse(buf, sizeof(h), 4096, &req), UWSGI_E_TOO_BIG);
    CHECK_EQ_INT(req.datasize, 4097); /* known, for the log line */
    CHECK_EQ_INT(proto_uwsgi_parse(buf, sizeof(h), 4097, &req), UWSGI_INCOMPLETE);
    CHECK_EQ_INT(proto_uwsgi_parse(buf, sizeof(h), 0, &req), UWSGI_E_TOO_BIG);
    guarded_free(buf, sizeof(h));
}

TEST(datasize_at_the_limit_and_one_over)
{
    static struct pkt p;
    size_t head, ds;

    pkt_start(&p, 0, 0);
    pkt_var(&p, "PATH_INFO", "/limit");
    head = pkt_end(&p);
    ds = head - UWSGI_HEADER_SIZE;

    CHECK_EQ_INT(pkt_status(&p, ds), head);
    CHECK_EQ_INT(pkt_status(&p, ds + 1), head);
    CHECK_EQ_INT(pkt_status(&p, ds - 1), UWSGI_E_TOO_BIG);
    CHECK_EQ_INT(status_of(p.buf, UWSGI_HEADER_SIZE, ds - 1), UWSGI_E_TOO_BIG);
    CHECK_EQ_INT(status_of(p.buf, UWSGI_HEADER_SIZE, ds), UWSGI_INCOMPLETE);
}

TEST(datasize_65535)
{
    static struct pkt p;
    static char value[UWSGI_MAX_DATASIZE];
    static const struct var vars[] = { { "X", value } };
    size_t head;
    const size_t vlen = UWSGI_MAX_DATASIZE - (2 + 1 + 2); /* one var filling the block */

    memset(value, 'v', vlen);
    value[vlen] = '\0';
    pkt_start(&p, 0, 0);
    pkt_var(&p, "X", value);
    head = pkt_end(&p);
    CHECK_EQ_INT(head, UWSGI_HEADER_SIZE + 65535);
    CHECK_EQ_INT(p.buf[1], 0xff);
    CHECK_EQ_INT(p.buf[2], 0xff);

    check_parses_to(&p, UWSGI_MAX_DATASIZE, vars, 1, 0);
    check_parses_to(&p, SIZE_MAX, vars, 1, 0); /* a limit past the wire's range is harmless */
    CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE - 1), UWSGI_E_TOO_BIG);
    CHECK_EQ_INT(status_of(p.buf, UWSGI_HEADER_SIZE, UWSGI_MAX_DATASIZE), UWSGI_INCOMPLETE);
    CHECK_EQ_INT(status_of(p.buf, head - 1, UWSGI_MAX_DATASIZE), UWSGI_INCOMPLETE);

    /* One body byte after the largest block: still counted out. */
    pkt_bytes(&p, "B", 1);
    CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE), head);
}

/* ---- the vars block ---- */

/* A vars block given as raw bytes, datasize = its length. */
static int block_status(const void *vars, size_t n)
{
    static struct pkt p;

    pkt_start(&p, 0, 0);
    pkt_bytes(&p, vars, n);
    pkt_end(&p);
    return pkt_status(&p, UWSGI_MAX_DATASIZE);
}

#define BLOCK_STATUS(lit) block_status(lit, sizeof(lit) - 1)

TEST(truncated_vars)
{
    /* A lone byte: half a key length field. */
    CHECK_EQ_INT(BLOCK_STATUS("\x01"), UWSGI_E_TRUNCATED);
    /* Key length with nothing after it. */
    CHECK_EQ_INT(BLOCK_STATUS("\x01\x00"), UWSGI_E_TRUNCATED);
    /* Key runs past the block. */
    // clang-format off
    CHECK_EQ_INT(BLOCK_STATUS("\x05\x00" "KEY"), UWSGI_E_TRUNCATED);
    /* Key fits, no value length field. */
    CHECK_EQ_INT(BLOCK_STATUS("\x03\x00" "KEY"), UWSGI_E_TRUNCATED);
    /* Key fits, half a value length field. */
    CHECK_EQ_INT(BLOCK_STATUS("\x03\x00" "KEY" "\x01"), UWSGI_E_TRUNCATED);
    /* Value one byte short. */
    CHECK_EQ_INT(BLOCK_STATUS("\x03\x00" "KEY" "\x03\x00" "va"), UWSGI_E_TRUNCATED);
    /* Lengths in the high byte: 0x0100 is 256, not 1. */
    CHECK_EQ_INT(BLOCK_STATUS("\x00\x01" "K" "\x00\x00"), UWSGI_E_TRUNCATED);
    CHECK_EQ_INT(BLOCK_STATUS("\x01\x00" "K" "\x00\x01" "v"), UWSGI_E_TRUNCATED);
    /* Lengths near the maximum must not wrap anything. */
    CHECK_EQ_INT(BLOCK_STATUS("\xff\xff" "K"), UWSGI_E_TRUNCATED);
    CHECK_EQ_INT(BLOCK_STATUS("\x01\x00" "K" "\xff\xff" "v"), UWSGI_E_TRUNCATED);
    /* Exactly fitting, for contrast. */
    CHECK_EQ_INT(BLOCK_STATUS("\x03\x00" "KEY" "\x03\x00" "val"), 4 + 10);
    // clang-format on
}

TEST(length_field_split_at_block_end)
{
    /* A good var, then one byte of the next key's length field as the last byte of the block. */
    // clang-format off
    CHECK_EQ_INT(BLOCK_STATUS("\x01\x00" "K" "\x01\x00" "v" "\x01"), UWSGI_E_TRUNCATED);
    // clang-format on
    /* The same, and the other byte of the field plus a whole var follow as body: the parser
     * must judge the block by datasize, not by what happens to come after it. */
    {
        static struct pkt p;

        pkt_start(&p, 0, 0);
        pkt_var(&p, "K", "v");
        pkt_bytes(&p, "\x01", 1);
        pkt_end(&p);
        // clang-format off
        pkt_bytes(&p, "\x00" "L" "\x01\x00" "w", 5);
        // clang-format on
        CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE), UWSGI_E_TRUNCATED);
    }
    /* A value length field split at the block end. */
    // clang-format off
    CHECK_EQ_INT(BLOCK_STATUS("\x01\x00" "K" "\x01\x00" "v" "\x01\x00" "L" "\x01"),
                 UWSGI_E_TRUNCATED);
    // clang-format on
}

TEST(value_reaching_into_the_body_is_truncated)
{
    static struct pkt p;

    pkt_start(&p, 0, 0);
    pkt_var(&p, "A", "a");
    pkt_u16(&p, 1);
    pkt_bytes(&p, "B", 1);
    pkt_u16(&p, 4);
    pkt_bytes(&p, "bb", 2);
    pkt_end(&p);
    pkt_bytes(&p, "bb", 2); /* the rest of the value, past datasize */
    CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE), UWSGI_E_TRUNCATED);
}

TEST(malformed_block_is_incomplete_until_it_is_all_there)
{
    static struct pkt p;

    pkt_start(&p, 0, 0);
    pkt_var(&p, "OK", "yes");
    // clang-format off
    pkt_bytes(&p, "\x09\x00" "SHORT", 7);
    // clang-format on
    pkt_end(&p);
    for (size_t n = 0; n < p.len; n++) {
        TEST_CONTEXT("prefix of %zu bytes", n);
        CHECK_EQ_INT(status_of(p.buf, n, UWSGI_MAX_DATASIZE), UWSGI_INCOMPLETE);
    }
    CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE), UWSGI_E_TRUNCATED);
}

TEST(empty_key)
{
    // clang-format off
    CHECK_EQ_INT(BLOCK_STATUS("\x00\x00" "\x00\x00"), UWSGI_E_EMPTY_KEY);
    CHECK_EQ_INT(BLOCK_STATUS("\x00\x00" "\x03\x00" "val"), UWSGI_E_EMPTY_KEY);
    CHECK_EQ_INT(BLOCK_STATUS("\x01\x00" "K" "\x01\x00" "v" "\x00\x00" "\x01\x00" "w"),
                 UWSGI_E_EMPTY_KEY);
    /* Framing comes first: an empty key whose value runs off the block is truncated. */
    CHECK_EQ_INT(BLOCK_STATUS("\x00\x00" "\x05\x00" "val"), UWSGI_E_TRUNCATED);
    // clang-format on
    CHECK_EQ_INT(BLOCK_STATUS("\x00\x00"), UWSGI_E_TRUNCATED);
}

TEST(empty_values_allowed)
{
    static struct pkt p;
    static const struct var vars[] = {
        { "CONTENT_TYPE", "" },
        { "QUERY_STRING", "" },
        { "HTTPS", "" },
        { "Z", "" },
    };

    pkt_start(&p, 0, 0);
    for (size_t i = 0; i < 4; i++)
        pkt_var(&p, vars[i].key, vars[i].value);
    pkt_end(&p);
    check_parses_to(&p, UWSGI_MAX_DATASIZE, vars, 4, 0);
}

TEST(binary_bytes_in_keys_and_values)
{
    static struct pkt p;
    static struct uwsgi_request req;
    static const char val[] = { 0, '\r', '\n', (char)0xff, (char)0x80, 0, ' ', '"' };
    static const char key[] = { (char)0xc3, (char)0xa9, 0, 'K' };
    char *buf;
    int r;

    pkt_start(&p, 0, 0);
    pkt_var_n(&p, "HTTP_X_BIN", 10, val, sizeof(val));
    pkt_var_n(&p, key, sizeof(key), "\0", 1);
    pkt_end(&p);
    buf = guarded_copy(p.buf, p.len);
    r = proto_uwsgi_parse(buf, p.len, UWSGI_MAX_DATASIZE, &req);
    if (CHECK_EQ_INT(r, p.len) && CHECK_EQ_INT(req.nparams, 2)) {
        check_reencodes(buf, r, &req);
        CHECK_EQ_MEM(req.params[0].value.ptr, req.params[0].value.len, val, sizeof(val));
        CHECK_EQ_MEM(req.params[1].name.ptr, req.params[1].name.len, key, sizeof(key));
        CHECK_EQ_MEM(req.params[1].value.ptr, req.params[1].value.len, "\0", 1);
    }
    guarded_free(buf, p.len);
}

/* n vars named K000, K001, ... with empty values. */
static void build_many_vars(struct pkt *p, size_t n)
{
    pkt_start(p, 0, 0);
    for (size_t i = 0; i < n; i++) {
        char key[24];

        snprintf(key, sizeof(key), "K%03zu", i);
        pkt_var(p, key, "");
    }
    pkt_end(p);
}

TEST(max_params_exactly)
{
    static struct pkt p;
    static struct uwsgi_request req;
    char *buf;
    int r;

    build_many_vars(&p, GY_MAX_PARAMS);
    buf = guarded_copy(p.buf, p.len);
    r = proto_uwsgi_parse(buf, p.len, UWSGI_MAX_DATASIZE, &req);
    CHECK_EQ_INT(r, p.len);
    CHECK_EQ_INT(req.nparams, GY_MAX_PARAMS);
    if (r > 0) {
        check_reencodes(buf, r, &req);
        CHECK_EQ_MEM(req.params[GY_MAX_PARAMS - 1].name.ptr, req.params[GY_MAX_PARAMS - 1].name.len,
                     "K511", 4);
    }
    guarded_free(buf, p.len);
}

TEST(max_params_plus_one)
{
    static struct pkt p;
    static struct uwsgi_request req;
    char *buf;

    build_many_vars(&p, GY_MAX_PARAMS + 1);
    buf = guarded_copy(p.buf, p.len);
    CHECK_EQ_INT(proto_uwsgi_parse(buf, p.len, UWSGI_MAX_DATASIZE, &req), UWSGI_E_TOO_MANY_VARS);
    CHECK_EQ_INT(req.nparams, 0); /* no partial result to mistake for a request */
    guarded_free(buf, p.len);

    /* The extra var is framed and judged before it is counted. */
    build_many_vars(&p, GY_MAX_PARAMS);
    pkt_bytes(&p, "\x00\x00\x00\x00", 4);
    pkt_end(&p);
    CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE), UWSGI_E_EMPTY_KEY);
    build_many_vars(&p, GY_MAX_PARAMS);
    pkt_bytes(&p, "\x01", 1);
    pkt_end(&p);
    CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE), UWSGI_E_TRUNCATED);
}

TEST(smallest_vars_block)
{
    /* datasize 1..4 can hold no whole var; 5 holds one with a 1-byte key and an empty value. */
    CHECK_EQ_INT(BLOCK_STATUS("\x01"), UWSGI_E_TRUNCATED);
    // clang-format off
    CHECK_EQ_INT(BLOCK_STATUS("\x01\x00" "K"), UWSGI_E_TRUNCATED);
    CHECK_EQ_INT(BLOCK_STATUS("\x01\x00" "K\x00"), UWSGI_E_TRUNCATED);
    CHECK_EQ_INT(BLOCK_STATUS("\x01\x00" "K\x00\x00"), UWSGI_HEADER_SIZE + 5);
    // clang-format on
}

/* ---- CONTENT_LENGTH ---- */

static int content_length_status(const char *value, size_t vlen, int64_t *out)
{
    static struct pkt p;
    static struct uwsgi_request req;
    char *buf;
    int r;

    pkt_start(&p, 0, 0);
    pkt_var(&p, "REQUEST_METHOD", "POST");
    pkt_var_n(&p, "CONTENT_LENGTH", 14, value, vlen);
    pkt_var(&p, "PATH_INFO", "/");
    pkt_end(&p);
    buf = guarded_copy(p.buf, p.len);
    r = proto_uwsgi_parse(buf, p.len, UWSGI_MAX_DATASIZE, &req);
    *out = req.content_length;
    guarded_free(buf, p.len);
    return r;
}

/* The value is read by gy_parse_decimal (its table of values: test_request.c); here, that the
 * parser uses it: a value it takes, the largest, and one it refuses, with the uwsgi status. */
TEST(content_length_values)
{
    int64_t got = -1;

    CHECK(content_length_status("9223372036854775807", 19, &got) > 0);
    CHECK_EQ_INT(got, INT64_MAX);
    CHECK(content_length_status("", 0, &got) > 0);
    CHECK_EQ_INT(got, 0);
    CHECK_EQ_INT(content_length_status("9223372036854775808", 19, &got), UWSGI_E_CONTENT_LENGTH);
    CHECK_EQ_INT(got, 0);
    CHECK_EQ_INT(content_length_status("-1", 2, &got), UWSGI_E_CONTENT_LENGTH);
    CHECK_EQ_INT(got, 0);
}

TEST(content_length_absent_is_zero)
{
    static struct pkt p;
    static const struct var vars[] = { { "REQUEST_METHOD", "GET" }, { "PATH_INFO", "/" } };

    pkt_start(&p, 0, 0);
    pkt_var(&p, "REQUEST_METHOD", "GET");
    pkt_var(&p, "PATH_INFO", "/");
    pkt_end(&p);
    check_parses_to(&p, UWSGI_MAX_DATASIZE, vars, 2, 0);
}

TEST(only_the_exact_name_is_content_length)
{
    static const char *const names[] = {
        "HTTP_CONTENT_LENGTH", "content_length",  "CONTENT_LENGT",  "CONTENT_LENGTHS",
        "CONTENT_LENGTH ",     " CONTENT_LENGTH", "CONTENT-LENGTH", "Content-Length",
    };
    static struct pkt p;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct var vars[] = { { names[i], "not a number" } };

        TEST_CONTEXT("%s", names[i]);
        pkt_start(&p, 0, 0);
        pkt_var(&p, names[i], "not a number");
        pkt_end(&p);
        check_parses_to(&p, UWSGI_MAX_DATASIZE, vars, 1, 0);
    }
    TEST_CONTEXT("CONTENT_LENGTH\\0");
    pkt_start(&p, 0, 0);
    pkt_var_n(&p, "CONTENT_LENGTH\0", 15, "x", 1);
    pkt_end(&p);
    CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE), p.len);
}

TEST(content_length_repeated)
{
    static struct pkt p;
    static const struct var twice[] = { { "CONTENT_LENGTH", "5" }, { "CONTENT_LENGTH", "7" } };

    /* The last wins, as when the params become the environ dict. */
    pkt_start(&p, 0, 0);
    pkt_var(&p, "CONTENT_LENGTH", "5");
    pkt_var(&p, "CONTENT_LENGTH", "7");
    pkt_end(&p);
    check_parses_to(&p, UWSGI_MAX_DATASIZE, twice, 2, 7);

    /* Each one must be valid, the first as much as the last. */
    pkt_start(&p, 0, 0);
    pkt_var(&p, "CONTENT_LENGTH", "x");
    pkt_var(&p, "CONTENT_LENGTH", "7");
    pkt_end(&p);
    CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE), UWSGI_E_CONTENT_LENGTH);
    pkt_start(&p, 0, 0);
    pkt_var(&p, "CONTENT_LENGTH", "7");
    pkt_var(&p, "CONTENT_LENGTH", "-7");
    pkt_end(&p);
    CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE), UWSGI_E_CONTENT_LENGTH);
}

/* ---- the body and the result struct ---- */

TEST(body_is_not_counted_or_parsed)
{
    static struct pkt p;
    static const struct var vars[] = { { "CONTENT_LENGTH", "4" } };
    size_t head;

    /* A body that looks like a malformed vars block and like another header. */
    pkt_start(&p, 0, 0);
    pkt_var(&p, "CONTENT_LENGTH", "4");
    head = pkt_end(&p);
    pkt_bytes(&p, "\xff\xff\x00\x00", 4);
    CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE), head);
    check_parses_to(&p, UWSGI_MAX_DATASIZE, vars, 1, 4);
    /* CONTENT_LENGTH says how much body to expect, not how much is there. */
    pkt_bytes(&p, "more than four", 14);
    CHECK_EQ_INT(pkt_status(&p, UWSGI_MAX_DATASIZE), head);
}

TEST(errors_leave_no_params)
{
    static struct pkt p;
    static struct uwsgi_request req;
    char *buf;

    /* Fill req with a good parse first, then fail on the same struct. */
    build_nginx_post(&p);
    buf = guarded_copy(p.buf, p.len);
    CHECK(proto_uwsgi_parse(buf, p.len, 4096, &req) > 0);
    CHECK(req.nparams > 0);
    guarded_free(buf, p.len);

    pkt_start(&p, 0, 3);
    pkt_var(&p, "PATH_INFO", "/");
    pkt_var(&p, "CONTENT_LENGTH", "12");
    pkt_bytes(&p, "\x00\x00\x00\x00", 4);
    pkt_end(&p);
    buf = guarded_copy(p.buf, p.len);
    CHECK_EQ_INT(proto_uwsgi_parse(buf, p.len, 4096, &req), UWSGI_E_EMPTY_KEY);
    CHECK_EQ_INT(req.nparams, 0);
    CHECK_EQ_INT(req.content_length, 0);
    CHECK_EQ_INT(req.datasize, p.len - UWSGI_HEADER_SIZE);
    CHECK_EQ_INT(req.modifier2, 3);
    /* INCOMPLETE too resets what a previous call left. */
    CHECK_EQ_INT(proto_uwsgi_parse(buf, 2, 4096, &req), UWSGI_INCOMPLETE);
    CHECK_EQ_INT(req.nparams, 0);
    CHECK_EQ_INT(req.datasize, 0);
    guarded_free(buf, p.len);
}

TEST(strerror)
{
    static const int statuses[] = {
        UWSGI_E_TOO_BIG,   UWSGI_E_MODIFIER,      UWSGI_E_EMPTY,          UWSGI_E_TRUNCATED,
        UWSGI_E_EMPTY_KEY, UWSGI_E_TOO_MANY_VARS, UWSGI_E_CONTENT_LENGTH,
    };
    const size_t n = sizeof(statuses) / sizeof(statuses[0]);

    CHECK_EQ_STR(proto_uwsgi_strerror(UWSGI_E_TOO_BIG), "vars block larger than buffer-size");
    CHECK_EQ_STR(proto_uwsgi_strerror(UWSGI_E_MODIFIER), "unsupported modifier1");
    for (size_t i = 0; i < n; i++) {
        const char *s = proto_uwsgi_strerror(statuses[i]);

        TEST_CONTEXT("status %d", statuses[i]);
        CHECK_EQ_INT(statuses[i], -(int)i - 1); /* every code from -1 down, none skipped */
        CHECK(s[0] >= 'a' && s[0] <= 'z');
        CHECK(strlen(s) < 60 && s[strlen(s) - 1] != '.' && !strchr(s, '\n'));
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(s, proto_uwsgi_strerror(statuses[j])) != 0);
        CHECK(strcmp(s, proto_uwsgi_strerror(-100)) != 0);
    }
    CHECK_EQ_STR(proto_uwsgi_strerror(UWSGI_INCOMPLETE), "incomplete request");
    CHECK_EQ_STR(proto_uwsgi_strerror(-(int)n - 1), "unknown error"); /* past the last status */
    CHECK_EQ_STR(proto_uwsgi_strerror(-100), "unknown error");
    CHECK_EQ_STR(proto_uwsgi_strerror(42), "no error");
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
