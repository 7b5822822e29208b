/*
 * Unit tests of the FastCGI record parser, the name-value pair parser and the encoders.
 *
 * Every input is parsed from a guarded copy whose last byte sits just before an inaccessible
 * page, so an over-read crashes the test instead of passing. Streams are fed whole, byte by byte
 * and in random pieces (each piece its own guarded copy), and what comes out is compared as a
 * transcript: the events with consecutive content pieces of one stream joined, so that the same
 * stream gives the same transcript however it was cut.
 */
#include "testlib.h"
#include "fastcgi.h"

/* ---- building input ---- */

struct bytes {
    size_t len;
    unsigned char buf[1 << 19];
};

static void put(struct bytes *b, const void *data, size_t n)
{
    if (b->len + n > sizeof(b->buf)) {
        fprintf(stderr, "test input overflow\n");
        abort();
    }
    if (n)
        memcpy(b->buf + b->len, data, n);
    b->len += n;
}

static void put_byte(struct bytes *b, unsigned v)
{
    unsigned char c = (unsigned char)v;

    put(b, &c, 1);
}

/* A header with every field given raw, so that tests can send bad ones. */
static void put_header(struct bytes *b, unsigned version, unsigned type, unsigned id, size_t clen,
                       unsigned padding)
{
    const unsigned char h[FCGI_HEADER_LEN] = {
        (unsigned char)version,     (unsigned char)type,
        (unsigned char)(id >> 8),   (unsigned char)(id & 0xff),
        (unsigned char)(clen >> 8), (unsigned char)(clen & 0xff),
        (unsigned char)padding,     0x5a, /* reserved: ignored whatever it is */
    };

    put(b, h, sizeof(h));
}

/* Padding bytes that look like a record (a BEGIN_REQUEST header), so that a parser reading them
 * as anything would go visibly wrong. */
static void put_padding(struct bytes *b, unsigned padding)
{
    static const unsigned char junk[8] = { 1, FCGI_BEGIN_REQUEST, 0, 1, 0, 8, 0, 0 };

    for (unsigned i = 0; i < padding; i++)
        put_byte(b, junk[i % 8]);
}

static void put_record(struct bytes *b, unsigned type, unsigned id, const void *content,
                       size_t clen, unsigned padding)
{
    put_header(b, FCGI_VERSION_1, type, id, clen, padding);
    put(b, content, clen);
    put_padding(b, padding);
}

/* Padded to 8 bytes, as nginx sends them. */
static void put_record8(struct bytes *b, unsigned type, unsigned id, const void *content,
                        size_t clen)
{
    put_record(b, type, id, content, clen, (unsigned)fcgi_padding_length(clen));
}

static void put_begin(struct bytes *b, unsigned id, unsigned role, unsigned flags)
{
    const unsigned char body[8] = { (unsigned char)(role >> 8),
                                    (unsigned char)(role & 0xff),
                                    (unsigned char)flags,
                                    1,
                                    2,
                                    3,
                                    4,
                                    5 };

    put_record(b, FCGI_BEGIN_REQUEST, id, body, sizeof(body), 0);
}

/* A name-value pair length: 1 byte up to 127 unless wide, else 4 bytes with the high bit set. */
static void put_length(struct bytes *b, size_t len, int wide)
{
    if (len > 127 || wide) {
        put_byte(b, 0x80 | (unsigned)(len >> 24));
        put_byte(b, (unsigned)(len >> 16 & 0xff));
        put_byte(b, (unsigned)(len >> 8 & 0xff));
        put_byte(b, (unsigned)(len & 0xff));
    } else {
        put_byte(b, (unsigned)len);
    }
}

static void put_pair_n(struct bytes *b, const void *name, size_t nlen, const void *value,
                       size_t vlen, int wide_name, int wide_value)
{
    put_length(b, nlen, wide_name);
    put_length(b, vlen, wide_value);
    put(b, name, nlen);
    put(b, value, vlen);
}

static void put_pair(struct bytes *b, const char *name, const char *value)
{
    put_pair_n(b, name, strlen(name), value, strlen(value), 0, 0);
}

/* ---- feeding a stream and recording what comes out ---- */

#define MAX_EVENTS 8192

struct event_rec {
    int type;
    unsigned record_type, request_id, role, flags;
    size_t off, len; /* content or GET_VALUES data, in transcript.data */
};

struct transcript {
    int status;        /* 0, or the error that ended the stream */
    size_t nevents;    /* after joining content pieces */
    size_t raw_events; /* every event the parser returned but NONE */
    struct event_rec ev[MAX_EVENTS];
    size_t data_len;
    unsigned char data[1 << 19];
};

enum split { WHOLE, BYTEWISE, RANDOM };

static int is_content_event(int type)
{
    return type == FCGI_EV_PARAMS || type == FCGI_EV_STDIN || type == FCGI_EV_DATA;
}

/* The record type each event comes from, 0 for UNKNOWN_TYPE (any type but these six). */
static unsigned event_record_type(int type)
{
    switch (type) {
    case FCGI_EV_BEGIN_REQUEST:
        return FCGI_BEGIN_REQUEST;
    case FCGI_EV_ABORT_REQUEST:
        return FCGI_ABORT_REQUEST;
    case FCGI_EV_PARAMS:
    case FCGI_EV_PARAMS_END:
        return FCGI_PARAMS;
    case FCGI_EV_STDIN:
    case FCGI_EV_STDIN_END:
        return FCGI_STDIN;
    case FCGI_EV_DATA:
    case FCGI_EV_DATA_END:
        return FCGI_DATA;
    case FCGI_EV_GET_VALUES:
        return FCGI_GET_VALUES;
    default:
        return 0;
    }
}

static void transcript_data(struct transcript *t, const void *data, size_t len)
{
    if (t->data_len + len > sizeof(t->data)) {
        fprintf(stderr, "transcript overflow\n");
        abort();
    }
    if (len)
        memcpy(t->data + t->data_len, data, len);
    t->data_len += len;
}

/*
 * Checks that ev, returned with r bytes consumed from buf, is well-formed, and records it.
 * Returns 0 when it is so broken that going on would only crash.
 */
static int transcript_add(struct transcript *t, const struct fcgi_event *ev, const char *buf, int r,
                          const struct fcgi_parser *p)
{
    struct event_rec *last = t->nevents ? &t->ev[t->nevents - 1] : NULL;
    unsigned rt = event_record_type(ev->type);

    if (ev->type == FCGI_EV_NONE)
        return CHECK_EQ_INT(ev->data.len, 0);
    if (!CHECK(ev->type > FCGI_EV_NONE && ev->type <= FCGI_EV_UNKNOWN_TYPE))
        return 0;
    t->raw_events++;
    if (rt)
        CHECK_EQ_INT(ev->record_type, rt);
    else
        CHECK(ev->record_type != FCGI_BEGIN_REQUEST && ev->record_type != FCGI_ABORT_REQUEST &&
              ev->record_type != FCGI_PARAMS && ev->record_type != FCGI_STDIN &&
              ev->record_type != FCGI_DATA && ev->record_type != FCGI_GET_VALUES);
    if (ev->type == FCGI_EV_GET_VALUES)
        CHECK_EQ_INT(ev->request_id, 0);
    else if (rt)
        CHECK(ev->request_id != 0);

    if (is_content_event(ev->type)) {
        /* A slice of what this call consumed, never empty. */
        if (!CHECK(ev->data.len >= 1 && ev->data.ptr >= buf &&
                   ev->data.len <= (size_t)r - (size_t)(ev->data.ptr - buf)))
            return 0;
        if (last && last->type == (int)ev->type && last->request_id == ev->request_id) {
            transcript_data(t, ev->data.ptr, ev->data.len); /* joins: data is appended in order */
            last->len += ev->data.len;
            return 1;
        }
    } else if (ev->type == FCGI_EV_GET_VALUES) {
        const char *body = (const char *)p->body;

        if (!CHECK(ev->data.len <= FCGI_GET_VALUES_MAX && ev->data.ptr >= body &&
                   ev->data.ptr + ev->data.len <= body + sizeof(p->body)))
            return 0;
    } else {
        CHECK_EQ_INT(ev->data.len, 0);
    }
    if (!CHECK(t->nevents < MAX_EVENTS))
        return 0;
    t->ev[t->nevents++] = (struct event_rec){
        .type = ev->type,
        .record_type = ev->record_type,
        .request_id = ev->request_id,
        .role = ev->role,
        .flags = ev->flags,
        .off = t->data_len,
        .len = ev->data.len,
    };
    transcript_data(t, ev->data.ptr, ev->data.len);
    return 1;
}

/* xorshift64*: the same pieces on every run. */
static uint64_t prng(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static size_t piece_size(enum split how, uint64_t *seed, size_t left)
{
    size_t n;

    if (how == WHOLE)
        return left;
    if (how == BYTEWISE)
        return 1;
    /* Mostly small pieces (they cut headers and pairs), some large ones. */
    n = prng(seed) % 4 ? 1 + prng(seed) % 16 : 1 + prng(seed) % 3000;
    return n < left ? n : left;
}

/*
 * Feeds stream[0..len) to a fresh parser in pieces, each from its own guarded copy, calling
 * until each piece is consumed, and records the events. Checks on every call: consumed within
 * the piece and at least 1 byte, events well-formed, a zero-length call a no-op, an error
 * sticky.
 */
static void feed(struct transcript *t, const void *stream, size_t len, enum split how,
                 uint64_t seed)
{
    struct fcgi_parser p;
    struct fcgi_event ev;
    size_t pos = 0;

    memset(&p, 0, sizeof(p));
    t->status = 0;
    t->nevents = t->raw_events = t->data_len = 0;
    seed = seed * 2 + 1;
    while (pos < len) {
        size_t piece = piece_size(how, &seed, len - pos), off = 0;
        char *buf = guarded_copy((const char *)stream + pos, piece);

        while (off < piece) {
            int r = proto_fcgi_next(&p, buf + off, piece - off, &ev);

            if (r < 0) {
                t->status = r;
                CHECK_EQ_INT(ev.type, FCGI_EV_NONE);
                /* Sticky: whatever comes next, the same error. */
                CHECK_EQ_INT(proto_fcgi_next(&p, buf + off, piece - off, &ev), r);
                CHECK_EQ_INT(proto_fcgi_next(&p, buf, 0, &ev), r);
                guarded_free(buf, piece);
                return;
            }
            if (!CHECK(r >= 1 && (size_t)r <= piece - off && r <= FCGI_MAX_STEP) ||
                !transcript_add(t, &ev, buf + off, r, &p)) {
                t->status = 1; /* not a parser status: fails every comparison */
                guarded_free(buf, piece);
                return;
            }
            off += (size_t)r;
        }
        /* A call with nothing: consumes nothing, changes nothing. buf + piece is the guard page. */
        CHECK_EQ_INT(proto_fcgi_next(&p, buf + piece, 0, &ev), 0);
        CHECK_EQ_INT(ev.type, FCGI_EV_NONE);
        guarded_free(buf, piece);
        pos += piece;
    }
}

static void check_same_transcript(const struct transcript *a, const struct transcript *b)
{
    CHECK_EQ_INT(a->status, b->status);
    if (!CHECK_EQ_INT(a->nevents, b->nevents))
        return;
    for (size_t i = 0; i < a->nevents; i++) {
        const struct event_rec *x = &a->ev[i], *y = &b->ev[i];

        CHECK_EQ_INT(x->type, y->type);
        CHECK_EQ_INT(x->record_type, y->record_type);
        CHECK_EQ_INT(x->request_id, y->request_id);
        CHECK_EQ_INT(x->role, y->role);
        CHECK_EQ_INT(x->flags, y->flags);
        CHECK_EQ_MEM(a->data + x->off, x->len, b->data + y->off, y->len);
    }
}

static struct transcript whole_t, piece_t;

/* Feeds the stream whole into whole_t, then byte by byte and in random pieces (several seeds),
 * each compared with the whole feed. */
static void feed_every_way(const void *stream, size_t len)
{
    feed(&whole_t, stream, len, WHOLE, 0);
    TEST_CONTEXT("byte by byte");
    feed(&piece_t, stream, len, BYTEWISE, 0);
    check_same_transcript(&whole_t, &piece_t);
    for (uint64_t seed = 1; seed <= 20; seed++) {
        TEST_CONTEXT("random pieces, seed %llu", (unsigned long long)seed);
        feed(&piece_t, stream, len, RANDOM, seed);
        check_same_transcript(&whole_t, &piece_t);
    }
    TEST_CONTEXT("%s", "");
}

/* Checks event i of a transcript. data may be NULL for "no data". */
static void check_event(const struct transcript *t, size_t i, int type, unsigned id,
                        const void *data, size_t dlen)
{
    if (!CHECK(i < t->nevents))
        return;
    CHECK_EQ_INT(t->ev[i].type, type);
    CHECK_EQ_INT(t->ev[i].request_id, id);
    if (data)
        CHECK_EQ_MEM(t->data + t->ev[i].off, t->ev[i].len, data, dlen);
    else
        CHECK_EQ_INT(t->ev[i].len, 0);
}

#define BYTES(b) (b)->buf, (b)->len

/* ---- a realistic nginx request ---- */

#define C40 "0123456789abcdefghijklmnopqrstuvwxyzABCD"
static const char long_cookie[] = "session=" C40 C40 C40 C40 C40 C40; /* 248 bytes: 4-byte length */
static const char nginx_body[] = "name=gyre&proto=fastcgi&x=1";

static const struct {
    const char *name, *value;
} nginx_params[] = {
    { "SCRIPT_FILENAME", "/srv/app/hello" },
    { "QUERY_STRING", "a=1&b=%C3%A9" },
    { "REQUEST_METHOD", "POST" },
    { "CONTENT_TYPE", "application/x-www-form-urlencoded" },
    { "CONTENT_LENGTH", "27" },
    { "SCRIPT_NAME", "/hello/world" },
    { "REQUEST_URI", "/hello/world?a=1&b=%C3%A9" },
    { "DOCUMENT_URI", "/hello/world" },
    { "DOCUMENT_ROOT", "/usr/share/nginx/html" },
    { "SERVER_PROTOCOL", "HTTP/1.1" },
    { "REQUEST_SCHEME", "http" },
    { "GATEWAY_INTERFACE", "CGI/1.1" },
    { "SERVER_SOFTWARE", "nginx/1.22.1" },
    { "REMOTE_ADDR", "127.0.0.1" },
    { "REMOTE_PORT", "51234" },
    { "SERVER_ADDR", "127.0.0.1" },
    { "SERVER_PORT", "8080" },
    { "SERVER_NAME", "localhost" },
    { "REDIRECT_STATUS", "200" },
    { "HTTP_HOST", "localhost:8080" },
    { "HTTP_USER_AGENT", "curl/7.88.1" },
    { "HTTP_ACCEPT", "*/*" },
    { "HTTP_COOKIE", long_cookie },
    { "HTTP_CONTENT_TYPE", "application/x-www-form-urlencoded" },
    { "HTTP_CONTENT_LENGTH", "27" },
};
#define NGINX_N (sizeof(nginx_params) / sizeof(nginx_params[0]))

static struct bytes nginx_pairs, nginx_get_pairs, nginx_stream;

/*
 * Two requests on one kept-alive connection, id 1 both times, as nginx sends them:
 *  1. BEGIN_REQUEST (responder, KEEP_CONN); the pair block in five PARAMS records, cut inside a
 *     name, inside the 4-byte value length of HTTP_COOKIE, between the two lengths of a pair
 *     and inside a value; an empty PARAMS; the body in three STDIN records; an empty STDIN.
 *  2. A GET: BEGIN_REQUEST, one PARAMS record, an empty PARAMS, an empty STDIN.
 * Records are padded to 8 bytes, but for one PARAMS record padded with 13.
 */
static void build_nginx(void)
{
    size_t cookie_at = 0, cut[6];
    const size_t body_len = sizeof(nginx_body) - 1;

    nginx_pairs.len = 0;
    for (size_t i = 0; i < NGINX_N; i++) {
        if (strcmp(nginx_params[i].name, "HTTP_COOKIE") == 0)
            cookie_at = nginx_pairs.len;
        put_pair(&nginx_pairs, nginx_params[i].name, nginx_params[i].value);
    }
    cut[0] = 0;
    cut[1] = 7;                 /* inside SCRIPT_FILENAME */
    cut[2] = cookie_at + 1 + 2; /* HTTP_COOKIE: name length, 2 bytes of the value's length */
    cut[3] = cookie_at + 1 + 4 + 11 + 100;                         /* inside the cookie's value */
    cut[4] = cookie_at + 1 + 4 + 11 + sizeof(long_cookie) - 1 + 1; /* between a pair's lengths */
    cut[5] = nginx_pairs.len;

    nginx_get_pairs.len = 0;
    put_pair(&nginx_get_pairs, "REQUEST_METHOD", "GET");
    put_pair(&nginx_get_pairs, "PATH_INFO", "/again");
    put_pair(&nginx_get_pairs, "CONTENT_LENGTH", "");

    nginx_stream.len = 0;
    put_begin(&nginx_stream, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    for (int i = 0; i < 5; i++) {
        const unsigned char *piece = nginx_pairs.buf + cut[i];
        size_t n = cut[i + 1] - cut[i];

        if (i == 2)
            put_record(&nginx_stream, FCGI_PARAMS, 1, piece, n, 13);
        else
            put_record8(&nginx_stream, FCGI_PARAMS, 1, piece, n);
    }
    put_record8(&nginx_stream, FCGI_PARAMS, 1, NULL, 0);
    put_record8(&nginx_stream, FCGI_STDIN, 1, nginx_body, 10);
    put_record8(&nginx_stream, FCGI_STDIN, 1, nginx_body + 10, 13);
    put_record8(&nginx_stream, FCGI_STDIN, 1, nginx_body + 23, body_len - 23);
    put_record8(&nginx_stream, FCGI_STDIN, 1, NULL, 0);

    put_begin(&nginx_stream, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_record8(&nginx_stream, FCGI_PARAMS, 1, BYTES(&nginx_get_pairs));
    put_record8(&nginx_stream, FCGI_PARAMS, 1, NULL, 0);
    put_record8(&nginx_stream, FCGI_STDIN, 1, NULL, 0);
}

static void check_nginx_transcript(const struct transcript *t)
{
    CHECK_EQ_INT(t->status, 0);
    CHECK_EQ_INT(t->nevents, 9);
    check_event(t, 0, FCGI_EV_BEGIN_REQUEST, 1, NULL, 0);
    if (t->nevents > 0) {
        CHECK_EQ_INT(t->ev[0].role, FCGI_RESPONDER);
        CHECK_EQ_INT(t->ev[0].flags, FCGI_KEEP_CONN);
    }
    check_event(t, 1, FCGI_EV_PARAMS, 1, BYTES(&nginx_pairs));
    check_event(t, 2, FCGI_EV_PARAMS_END, 1, NULL, 0);
    check_event(t, 3, FCGI_EV_STDIN, 1, nginx_body, sizeof(nginx_body) - 1);
    check_event(t, 4, FCGI_EV_STDIN_END, 1, NULL, 0);
    check_event(t, 5, FCGI_EV_BEGIN_REQUEST, 1, NULL, 0);
    check_event(t, 6, FCGI_EV_PARAMS, 1, BYTES(&nginx_get_pairs));
    check_event(t, 7, FCGI_EV_PARAMS_END, 1, NULL, 0);
    check_event(t, 8, FCGI_EV_STDIN_END, 1, NULL, 0);
}

TEST(nginx_request_whole)
{
    build_nginx();
    CHECK_EQ_INT(sizeof(nginx_body) - 1, 27); /* = its CONTENT_LENGTH */
    CHECK_EQ_INT(strlen(long_cookie), 248);
    feed(&whole_t, BYTES(&nginx_stream), WHOLE, 0);
    check_nginx_transcript(&whole_t);
    /* Fed whole, one event per record: every record's content comes in one piece. */
    CHECK_EQ_INT(whole_t.raw_events, 1 + 5 + 1 + 3 + 1 + 1 + 1 + 1 + 1);
}

TEST(nginx_request_byte_by_byte)
{
    build_nginx();
    feed(&piece_t, BYTES(&nginx_stream), BYTEWISE, 0);
    check_nginx_transcript(&piece_t);
    /* Content comes out as it arrives: a byte in, a byte of content out. */
    CHECK_EQ_INT(piece_t.raw_events, 1 + nginx_pairs.len + 1 + (sizeof(nginx_body) - 1) + 1 + 1 +
                                         nginx_get_pairs.len + 1 + 1);
}

TEST(nginx_request_random_pieces)
{
    build_nginx();
    feed_every_way(BYTES(&nginx_stream));
    check_nginx_transcript(&whole_t);
}

TEST(nginx_params_parse)
{
    static struct fcgi_params out;
    char *buf;
    int r;

    build_nginx();
    feed(&piece_t, BYTES(&nginx_stream), RANDOM, 7);
    if (!CHECK_EQ_INT(piece_t.nevents, 9))
        return;
    /* What the server does: the PARAMS content, joined, parsed as one block. */
    buf = guarded_copy(piece_t.data + piece_t.ev[1].off, piece_t.ev[1].len);
    r = proto_fcgi_parse_params(buf, piece_t.ev[1].len, &out);
    CHECK_EQ_INT(r, NGINX_N);
    CHECK_EQ_INT(out.content_length, 27);
    if (CHECK_EQ_INT(out.nparams, NGINX_N))
        for (size_t i = 0; i < NGINX_N; i++) {
            TEST_CONTEXT("param %zu", i);
            CHECK_EQ_MEM(out.params[i].name.ptr, out.params[i].name.len, nginx_params[i].name,
                         strlen(nginx_params[i].name));
            CHECK_EQ_MEM(out.params[i].value.ptr, out.params[i].value.len, nginx_params[i].value,
                         strlen(nginx_params[i].value));
        }
    guarded_free(buf, piece_t.ev[1].len);

    buf = guarded_copy(piece_t.data + piece_t.ev[6].off, piece_t.ev[6].len);
    CHECK_EQ_INT(proto_fcgi_parse_params(buf, piece_t.ev[6].len, &out), 3);
    CHECK_EQ_INT(out.content_length, 0);
    guarded_free(buf, piece_t.ev[6].len);
}

TEST(stdin_before_its_record_completes)
{
    static struct bytes s;
    static struct fcgi_parser p;
    struct fcgi_event ev;
    char *buf;
    size_t head;

    /* A STDIN record of 10 bytes of which 3 have arrived: those 3 are an event already. */
    s.len = 0;
    put_record8(&s, FCGI_STDIN, 9, "0123456789", 10);
    head = FCGI_HEADER_LEN + 3;
    memset(&p, 0, sizeof(p));
    buf = guarded_copy(s.buf, head);
    CHECK_EQ_INT(proto_fcgi_next(&p, buf, head, &ev), head);
    CHECK_EQ_INT(ev.type, FCGI_EV_STDIN);
    CHECK_EQ_INT(ev.request_id, 9);
    CHECK(ev.data.ptr == buf + FCGI_HEADER_LEN);
    CHECK_EQ_MEM(ev.data.ptr, ev.data.len, "012", 3);
    guarded_free(buf, head);

    /* The rest, with the padding and the first half of the next header: the content first. */
    put_record8(&s, FCGI_STDIN, 9, NULL, 0);
    buf = guarded_copy(s.buf + head, s.len - head - 4);
    CHECK_EQ_INT(proto_fcgi_next(&p, buf, s.len - head - 4, &ev), 7);
    CHECK_EQ_INT(ev.type, FCGI_EV_STDIN);
    CHECK_EQ_MEM(ev.data.ptr, ev.data.len, "3456789", 7);
    CHECK_EQ_INT(proto_fcgi_next(&p, buf + 7, s.len - head - 4 - 7, &ev), 6 + 4);
    CHECK_EQ_INT(ev.type, FCGI_EV_NONE);
    guarded_free(buf, s.len - head - 4);
    buf = guarded_copy(s.buf + s.len - 4, 4);
    CHECK_EQ_INT(proto_fcgi_next(&p, buf, 4, &ev), 4);
    CHECK_EQ_INT(ev.type, FCGI_EV_STDIN_END);
    CHECK_EQ_INT(ev.request_id, 9);
    guarded_free(buf, 4);
}

TEST(zero_initialised_parser_and_empty_input)
{
    static struct fcgi_parser p;
    struct fcgi_event ev = { .type = FCGI_EV_STDIN };
    char *buf = guarded_copy("", 0);

    memset(&p, 0, sizeof(p));
    CHECK_EQ_INT(proto_fcgi_next(&p, buf, 0, &ev), 0);
    CHECK_EQ_INT(ev.type, FCGI_EV_NONE);
    CHECK_EQ_INT(proto_fcgi_next(&p, NULL, 0, &ev), 0);
    guarded_free(buf, 0);
}

/* ---- BEGIN_REQUEST, ABORT_REQUEST ---- */

TEST(begin_request_fields)
{
    static const unsigned roles[] = { FCGI_RESPONDER, FCGI_AUTHORIZER, FCGI_FILTER, 0,
                                      0x1234,         0xffff };
    static const unsigned flags[] = { 0, FCGI_KEEP_CONN, 0xfe, 0xff };
    static struct bytes s;

    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        for (size_t j = 0; j < sizeof(flags) / sizeof(flags[0]); j++) {
            s.len = 0;
            put_begin(&s, 0x0102 + (unsigned)i, roles[i], flags[j]);
            TEST_CONTEXT("role %u flags %u", roles[i], flags[j]);
            feed(&whole_t, BYTES(&s), BYTEWISE, 0);
            CHECK_EQ_INT(whole_t.status, 0);
            check_event(&whole_t, 0, FCGI_EV_BEGIN_REQUEST, 0x0102 + (unsigned)i, NULL, 0);
            if (CHECK_EQ_INT(whole_t.nevents, 1)) {
                CHECK_EQ_INT(whole_t.ev[0].role, roles[i]);
                CHECK_EQ_INT(whole_t.ev[0].flags, flags[j]);
            }
        }
}

TEST(begin_request_event_on_its_last_byte)
{
    static struct bytes s;
    static struct fcgi_parser p;
    struct fcgi_event ev;

    s.len = 0;
    put_begin(&s, 0xffff, FCGI_RESPONDER, 0);
    memset(&p, 0, sizeof(p));
    for (size_t i = 0; i < s.len; i++) {
        char *buf = guarded_copy(s.buf + i, 1);

        TEST_CONTEXT("byte %zu", i);
        CHECK_EQ_INT(proto_fcgi_next(&p, buf, 1, &ev), 1);
        CHECK_EQ_INT(ev.type, i + 1 == s.len ? FCGI_EV_BEGIN_REQUEST : FCGI_EV_NONE);
        guarded_free(buf, 1);
    }
    CHECK_EQ_INT(ev.request_id, 0xffff);
    CHECK_EQ_INT(ev.role, FCGI_RESPONDER);
}

TEST(abort_request)
{
    static struct bytes s;

    s.len = 0;
    put_begin(&s, 3, FCGI_RESPONDER, 0);
    // clang-format off
    put_record8(&s, FCGI_PARAMS, 3, "\x01\x01" "AB", 4);
    // clang-format on
    put_record8(&s, FCGI_ABORT_REQUEST, 3, NULL, 0);
    /* Content on an ABORT_REQUEST means nothing: skipped, the event after it. */
    put_record(&s, FCGI_ABORT_REQUEST, 4, "junk", 4, 3);
    put_record8(&s, FCGI_ABORT_REQUEST, 0xffff, NULL, 0);
    feed_every_way(BYTES(&s));
    CHECK_EQ_INT(whole_t.status, 0);
    CHECK_EQ_INT(whole_t.nevents, 5);
    check_event(&whole_t, 0, FCGI_EV_BEGIN_REQUEST, 3, NULL, 0);
    // clang-format off
    check_event(&whole_t, 1, FCGI_EV_PARAMS, 3, "\x01\x01" "AB", 4);
    // clang-format on
    check_event(&whole_t, 2, FCGI_EV_ABORT_REQUEST, 3, NULL, 0);
    check_event(&whole_t, 3, FCGI_EV_ABORT_REQUEST, 4, NULL, 0);
    check_event(&whole_t, 4, FCGI_EV_ABORT_REQUEST, 0xffff, NULL, 0);
}

/* ---- padding ---- */

TEST(padding_of_every_length_is_skipped)
{
    static const size_t clens[] = { 0, 1, 7, 8, 9 };
    static struct bytes s;

    for (size_t c = 0; c < sizeof(clens) / sizeof(clens[0]); c++)
        for (unsigned pad = 0; pad <= FCGI_MAX_PADDING; pad += pad < 17 ? 1 : 29) {
            s.len = 0;
            put_record(&s, FCGI_STDIN, 1, "ABCDEFGHI", clens[c], pad);
            put_record(&s, FCGI_UNKNOWN_TYPE + 1, 1, "ABCDEFGHI", clens[c], pad);
            // clang-format off
            put_record(&s, FCGI_GET_VALUES, 0, "\x01\x00" "Z", clens[c] < 3 ? 0 : 3, pad);
            // clang-format on
            put_record(&s, FCGI_ABORT_REQUEST, 2, NULL, 0, pad);
            put_record(&s, FCGI_STDIN, 1, NULL, 0, 255 - pad);
            TEST_CONTEXT("content %zu, padding %u", clens[c], pad);
            feed(&whole_t, BYTES(&s), WHOLE, 0);
            feed(&piece_t, BYTES(&s), BYTEWISE, 0);
            check_same_transcript(&whole_t, &piece_t);
            CHECK_EQ_INT(whole_t.status, 0);
            if (!CHECK_EQ_INT(whole_t.nevents, 5))
                continue;
            if (clens[c]) {
                check_event(&whole_t, 0, FCGI_EV_STDIN, 1, "ABCDEFGHI", clens[c]);
                check_event(&whole_t, 1, FCGI_EV_UNKNOWN_TYPE, 1, NULL, 0);
            } else {
                check_event(&whole_t, 0, FCGI_EV_STDIN_END, 1, NULL, 0);
                check_event(&whole_t, 1, FCGI_EV_UNKNOWN_TYPE, 1, NULL, 0);
            }
            // clang-format off
            check_event(&whole_t, whole_t.nevents - 3, FCGI_EV_GET_VALUES, 0, "\x01\x00" "Z",
                        clens[c] < 3 ? 0 : 3);
            // clang-format on
            check_event(&whole_t, whole_t.nevents - 2, FCGI_EV_ABORT_REQUEST, 2, NULL, 0);
            check_event(&whole_t, whole_t.nevents - 1, FCGI_EV_STDIN_END, 1, NULL, 0);
        }
}

TEST(padding_is_consumed_with_the_next_header)
{
    static struct bytes s;
    static struct fcgi_parser p;
    struct fcgi_event ev;
    char *buf;

    /* An empty PARAMS padded with 5: the event on the header, the padding left for later. */
    s.len = 0;
    put_record(&s, FCGI_PARAMS, 1, NULL, 0, 5);
    put_record(&s, FCGI_STDIN, 1, NULL, 0, 0);
    buf = guarded_copy(s.buf, s.len);
    memset(&p, 0, sizeof(p));
    CHECK_EQ_INT(proto_fcgi_next(&p, buf, s.len, &ev), FCGI_HEADER_LEN);
    CHECK_EQ_INT(ev.type, FCGI_EV_PARAMS_END);
    CHECK_EQ_INT(proto_fcgi_next(&p, buf + 8, s.len - 8, &ev), 5 + FCGI_HEADER_LEN);
    CHECK_EQ_INT(ev.type, FCGI_EV_STDIN_END);
    guarded_free(buf, s.len);
}

/* ---- errors ---- */

/*
 * s holds good records, then a bad header at bad_at: every way of feeding it gives the events
 * of the good records, then status. Byte by byte, the bad header's first 7 bytes are taken
 * without complaint: nothing is decided before the 8th.
 */
static void check_error(const struct bytes *s, size_t bad_at, int status, size_t nevents)
{
    static struct fcgi_parser p;
    struct fcgi_event ev;

    feed_every_way(s->buf, s->len);
    CHECK_EQ_INT(whole_t.status, status);
    CHECK_EQ_INT(whole_t.nevents, nevents);

    memset(&p, 0, sizeof(p));
    for (size_t i = 0; i < bad_at + FCGI_HEADER_LEN && i < s->len; i++) {
        char *buf = guarded_copy(s->buf + i, 1);
        int r = proto_fcgi_next(&p, buf, 1, &ev);

        guarded_free(buf, 1);
        if (i + 1 < bad_at + FCGI_HEADER_LEN) {
            if (!CHECK_EQ_INT(r, 1))
                return;
        } else {
            CHECK_EQ_INT(r, status);
        }
    }
}

/* A good request's start, so that errors come mid-stream. */
static void put_prelude(struct bytes *s)
{
    s->len = 0;
    put_begin(s, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    // clang-format off
    put_record8(s, FCGI_PARAMS, 1, "\x01\x01" "AB", 4);
    // clang-format on
}

TEST(error_version)
{
    static const unsigned versions[] = { 0, 2, 3, 0x7f, 0x80, 0xff };
    static struct bytes s;

    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        size_t at;

        TEST_CONTEXT("version %u", versions[i]);
        put_prelude(&s);
        at = s.len;
        put_header(&s, versions[i], FCGI_STDIN, 1, 0, 0);
        check_error(&s, at, FCGI_E_VERSION, 2);
        /* Version first: a record bad in every other way too is still a version error. */
        s.len = 0;
        put_header(&s, versions[i], FCGI_BEGIN_REQUEST, 0, 3, 0);
        check_error(&s, 0, FCGI_E_VERSION, 0);
    }
}

TEST(error_management_record_on_a_request_id)
{
    static const unsigned ids[] = { 1, 2, 0x100, 0xffff };
    static struct bytes s;

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        size_t at;

        TEST_CONTEXT("id %u", ids[i]);
        put_prelude(&s);
        at = s.len;
        // clang-format off
        put_record8(&s, FCGI_GET_VALUES, ids[i], "\x0e\x00" "FCGI_MAX_CONNS", 16);
        // clang-format on
        check_error(&s, at, FCGI_E_MANAGEMENT_ID, 2);
    }
}

TEST(error_request_record_on_id_zero)
{
    static const unsigned types[] = { FCGI_BEGIN_REQUEST, FCGI_ABORT_REQUEST, FCGI_PARAMS,
                                      FCGI_STDIN, FCGI_DATA };
    static struct bytes s;

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t at;

        TEST_CONTEXT("type %u", types[i]);
        put_prelude(&s);
        at = s.len;
        put_record(&s, types[i], 0, "\0\x01\0\0\0\0\0\0", 8, 0);
        check_error(&s, at, FCGI_E_NULL_REQUEST_ID, 2);
        /* The empty end records too. */
        put_prelude(&s);
        put_record(&s, types[i], 0, NULL, 0, 0);
        check_error(&s, at, FCGI_E_NULL_REQUEST_ID, 2);
    }
}

TEST(error_begin_request_length)
{
    static const size_t lens[] = { 0, 1, 7, 9, 16, 65535 };
    static struct bytes s;

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t at;

        TEST_CONTEXT("length %zu", lens[i]);
        put_prelude(&s);
        at = s.len;
        put_header(&s, FCGI_VERSION_1, FCGI_BEGIN_REQUEST, 2, lens[i], 0);
        put_padding(&s, lens[i] < 64 ? (unsigned)lens[i] : 64);
        check_error(&s, at, FCGI_E_BEGIN_LENGTH, 2);
    }
}

TEST(error_get_values_too_big)
{
    static struct bytes s;
    static unsigned char content[FCGI_GET_VALUES_MAX + 1];
    size_t at;

    memset(content, 'x', sizeof(content));
    put_prelude(&s);
    at = s.len;
    put_record8(&s, FCGI_GET_VALUES, 0, content, FCGI_GET_VALUES_MAX + 1);
    check_error(&s, at, FCGI_E_GET_VALUES_TOO_BIG, 2);
    put_prelude(&s);
    put_header(&s, FCGI_VERSION_1, FCGI_GET_VALUES, 0, 65535, 0);
    check_error(&s, at, FCGI_E_GET_VALUES_TOO_BIG, 2);

    /* At the bound: accepted, whole. */
    put_prelude(&s);
    put_record8(&s, FCGI_GET_VALUES, 0, content, FCGI_GET_VALUES_MAX);
    feed_every_way(BYTES(&s));
    CHECK_EQ_INT(whole_t.status, 0);
    CHECK_EQ_INT(whole_t.nevents, 3);
    check_event(&whole_t, 2, FCGI_EV_GET_VALUES, 0, content, FCGI_GET_VALUES_MAX);
}

TEST(error_is_sticky)
{
    static struct bytes s, good;
    static struct fcgi_parser p;
    struct fcgi_event ev;
    char *buf;

    s.len = 0;
    put_header(&s, 2, FCGI_STDIN, 1, 0, 0);
    good.len = 0;
    put_begin(&good, 1, FCGI_RESPONDER, 0);
    memset(&p, 0, sizeof(p));
    buf = guarded_copy(s.buf, s.len);
    CHECK_EQ_INT(proto_fcgi_next(&p, buf, s.len, &ev), FCGI_E_VERSION);
    guarded_free(buf, s.len);
    /* A good record afterwards changes nothing: the stream cannot be resynchronised. */
    buf = guarded_copy(good.buf, good.len);
    CHECK_EQ_INT(proto_fcgi_next(&p, buf, good.len, &ev), FCGI_E_VERSION);
    CHECK_EQ_INT(ev.type, FCGI_EV_NONE);
    CHECK_EQ_INT(proto_fcgi_next(&p, buf, 0, &ev), FCGI_E_VERSION);
    guarded_free(buf, good.len);
}

/* ---- unknown types ---- */

TEST(unknown_types_are_skipped_and_reported)
{
    static const unsigned types[] = { 0,
                                      FCGI_END_REQUEST,
                                      FCGI_STDOUT,
                                      FCGI_STDERR,
                                      FCGI_GET_VALUES_RESULT,
                                      FCGI_UNKNOWN_TYPE,
                                      12,
                                      0x80,
                                      0xff };
    static const unsigned ids[] = { 0, 1, 0xffff };
    static const size_t clens[] = { 0, 5, 300 };
    static unsigned char content[300];
    static struct bytes s;

    /* Content that looks like records: a parser reading it as records would see them. */
    for (size_t i = 0; i < sizeof(content); i++)
        content[i] = (const unsigned char[]){ 1, FCGI_STDIN, 0, 1, 0, 0, 0, 0 }[i % 8];
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
            for (size_t c = 0; c < sizeof(clens) / sizeof(clens[0]); c++) {
                TEST_CONTEXT("type %u id %u content %zu", types[t], ids[i], clens[c]);
                s.len = 0;
                put_record8(&s, types[t], ids[i], content, clens[c]);
                put_record8(&s, FCGI_STDIN, 1, NULL, 0);
                feed(&whole_t, BYTES(&s), WHOLE, 0);
                feed(&piece_t, BYTES(&s), BYTEWISE, 0);
                check_same_transcript(&whole_t, &piece_t);
                CHECK_EQ_INT(whole_t.status, 0);
                if (!CHECK_EQ_INT(whole_t.nevents, 2))
                    continue;
                check_event(&whole_t, 0, FCGI_EV_UNKNOWN_TYPE, ids[i], NULL, 0);
                CHECK_EQ_INT(whole_t.ev[0].record_type, types[t]);
                check_event(&whole_t, 1, FCGI_EV_STDIN_END, 1, NULL, 0);
            }
}

TEST(unknown_type_event_after_its_content)
{
    static struct bytes s;
    static struct fcgi_parser p;
    struct fcgi_event ev;
    char *buf;

    s.len = 0;
    put_record(&s, 42, 0, "abcdef", 6, 2);
    memset(&p, 0, sizeof(p));
    buf = guarded_copy(s.buf, s.len);
    CHECK_EQ_INT(proto_fcgi_next(&p, buf, FCGI_HEADER_LEN + 5, &ev), FCGI_HEADER_LEN + 5);
    CHECK_EQ_INT(ev.type, FCGI_EV_NONE);
    CHECK_EQ_INT(proto_fcgi_next(&p, buf + 13, s.len - 13, &ev), 1);
    CHECK_EQ_INT(ev.type, FCGI_EV_UNKNOWN_TYPE);
    CHECK_EQ_INT(ev.record_type, 42);
    CHECK_EQ_INT(ev.request_id, 0);
    CHECK_EQ_INT(proto_fcgi_next(&p, buf + 14, s.len - 14, &ev), 2);
    CHECK_EQ_INT(ev.type, FCGI_EV_NONE);
    guarded_free(buf, s.len);
}

/* ---- DATA (filter role): a stream like the others ---- */

TEST(data_stream)
{
    static struct bytes s;

    s.len = 0;
    put_begin(&s, 5, FCGI_FILTER, 0);
    put_record8(&s, FCGI_PARAMS, 5, NULL, 0);
    put_record8(&s, FCGI_STDIN, 5, NULL, 0);
    put_record8(&s, FCGI_DATA, 5, "file", 4);
    put_record8(&s, FCGI_DATA, 5, " data", 5);
    put_record8(&s, FCGI_DATA, 5, NULL, 0);
    feed_every_way(BYTES(&s));
    CHECK_EQ_INT(whole_t.nevents, 5);
    check_event(&whole_t, 3, FCGI_EV_DATA, 5, "file data", 9);
    check_event(&whole_t, 4, FCGI_EV_DATA_END, 5, NULL, 0);
}

TEST(interleaved_request_ids_are_kept_apart)
{
    static struct bytes s;

    /* The parser knows nothing of requests: each event carries its record's id. */
    s.len = 0;
    put_record8(&s, FCGI_STDIN, 1, "one", 3);
    put_record8(&s, FCGI_STDIN, 2, "two", 3);
    put_record8(&s, FCGI_STDIN, 1, "ONE", 3);
    feed_every_way(BYTES(&s));
    CHECK_EQ_INT(whole_t.nevents, 3);
    check_event(&whole_t, 0, FCGI_EV_STDIN, 1, "one", 3);
    check_event(&whole_t, 1, FCGI_EV_STDIN, 2, "two", 3);
    check_event(&whole_t, 2, FCGI_EV_STDIN, 1, "ONE", 3);
}

TEST(largest_records)
{
    static struct bytes s;
    static unsigned char content[FCGI_MAX_CONTENT];

    for (size_t i = 0; i < sizeof(content); i++)
        content[i] = (unsigned char)(i * 7 + i / 256);
    s.len = 0;
    put_begin(&s, 1, FCGI_RESPONDER, 0);
    put_record(&s, FCGI_PARAMS, 1, content, FCGI_MAX_CONTENT, 255);
    put_record(&s, FCGI_STDIN, 1, content, FCGI_MAX_CONTENT, 1);
    put_record(&s, 99, 1, content, FCGI_MAX_CONTENT, 255);
    put_record8(&s, FCGI_STDIN, 1, NULL, 0);
    feed(&whole_t, BYTES(&s), WHOLE, 0);
    CHECK_EQ_INT(whole_t.raw_events, 5);
    CHECK_EQ_INT(whole_t.nevents, 5);
    check_event(&whole_t, 1, FCGI_EV_PARAMS, 1, content, sizeof(content));
    check_event(&whole_t, 2, FCGI_EV_STDIN, 1, content, sizeof(content));
    check_event(&whole_t, 3, FCGI_EV_UNKNOWN_TYPE, 1, NULL, 0);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        TEST_CONTEXT("seed %llu", (unsigned long long)seed);
        feed(&piece_t, BYTES(&s), RANDOM, seed);
        check_same_transcript(&whole_t, &piece_t);
    }

    /* The longest step: the PARAMS record's 255 padding bytes, then a header and 65535 bytes of
     * STDIN in one call. */
    {
        static struct fcgi_parser p;
        struct fcgi_event ev;
        char *buf = guarded_copy(s.buf, s.len);
        size_t off = 0;
        int r;

        memset(&p, 0, sizeof(p));
        off += (size_t)proto_fcgi_next(&p, buf, s.len, &ev);             /* BEGIN_REQUEST */
        off += (size_t)proto_fcgi_next(&p, buf + off, s.len - off, &ev); /* PARAMS */
        CHECK_EQ_INT(ev.type, FCGI_EV_PARAMS);
        r = proto_fcgi_next(&p, buf + off, s.len - off, &ev);
        CHECK_EQ_INT(r, FCGI_MAX_STEP);
        CHECK_EQ_INT(ev.type, FCGI_EV_STDIN);
        CHECK_EQ_INT(ev.data.len, FCGI_MAX_CONTENT);
        guarded_free(buf, s.len);
    }
}

/* ---- name-value pairs ---- */

static struct fcgi_params params_out;

/* proto_fcgi_parse_params() of a guarded copy; params_out keeps the results, whose slices then
 * point into freed memory: compare their lengths and offsets, not their bytes. */
static int params_status(const void *data, size_t len)
{
    char *buf = guarded_copy(data, len);
    int r = proto_fcgi_parse_params(buf, len, &params_out);

    guarded_free(buf, len);
    return r;
}

#define PAIRS_STATUS(lit) params_status(lit, sizeof(lit) - 1)

struct pair {
    const char *name;
    size_t nlen;
    const char *value;
    size_t vlen;
};

/*
 * Parses b and checks the pairs against want, and each slice's exact place: in FastCGI the
 * value follows its name directly, and the next pair's lengths follow the value.
 */
static void check_pairs(const struct bytes *b, const struct pair *want, size_t n, int64_t clen)
{
    char *buf = guarded_copy(b->buf, b->len);
    int r = proto_fcgi_parse_params(buf, b->len, &params_out);

    CHECK_EQ_INT(r, n);
    CHECK_EQ_INT(params_out.content_length, clen);
    if (CHECK_EQ_INT(params_out.nparams, n)) {
        for (size_t i = 0; i < n; i++) {
            const struct gy_param *pr = &params_out.params[i];
            const char *next = i + 1 < n ? params_out.params[i + 1].name.ptr : buf + b->len;

            TEST_CONTEXT("pair %zu", i);
            CHECK_EQ_MEM(pr->name.ptr, pr->name.len, want[i].name, want[i].nlen);
            CHECK_EQ_MEM(pr->value.ptr, pr->value.len, want[i].value, want[i].vlen);
            CHECK(pr->value.ptr == pr->name.ptr + pr->name.len);
            CHECK(pr->name.ptr >= buf && pr->value.ptr + pr->value.len <= buf + b->len);
            /* Between this value and the next name: two length fields of 1 or 4 bytes. */
            if (i + 1 < n) {
                size_t gap = (size_t)(next - (pr->value.ptr + pr->value.len));

                CHECK(gap == 2 || gap == 5 || gap == 8);
            } else {
                CHECK(pr->value.ptr + pr->value.len == next);
            }
        }
    }
    guarded_free(buf, b->len);
}

TEST(pairs_one_and_four_byte_lengths)
{
    static struct bytes b;
    static char v200[200], v70000[70000], n300[300];
    static struct pair want[8];

    memset(v200, 'v', sizeof(v200));
    memset(v70000, 'w', sizeof(v70000));
    memset(n300, 'N', sizeof(n300));
    b.len = 0;
    put_pair_n(&b, "SHORT", 5, "s", 1, 0, 0);
    want[0] = (struct pair){ "SHORT", 5, "s", 1 };
    put_pair_n(&b, "EDGE", 4, v200, 127, 0, 0); /* 127: the largest 1-byte length */
    want[1] = (struct pair){ "EDGE", 4, v200, 127 };
    put_pair_n(&b, "V128", 4, v200, 128, 0, 0); /* 128: the smallest 4-byte one */
    want[2] = (struct pair){ "V128", 4, v200, 128 };
    put_pair_n(&b, "V200", 4, v200, 200, 0, 0); /* 0x80 0x00 0x00 0xc8 */
    want[3] = (struct pair){ "V200", 4, v200, 200 };
    put_pair_n(&b, "V70000", 6, v70000, 70000, 0, 0); /* a length with 3 significant bytes */
    want[4] = (struct pair){ "V70000", 6, v70000, 70000 };
    put_pair_n(&b, n300, 300, "", 0, 0, 0); /* a 4-byte name length */
    want[5] = (struct pair){ n300, 300, "", 0 };
    put_pair_n(&b, "WIDE", 4, "x", 1, 1, 1); /* 4-byte form of short lengths: allowed */
    want[6] = (struct pair){ "WIDE", 4, "x", 1 };
    put_pair_n(&b, "E", 1, "", 0, 0, 1); /* 0x80 0 0 0: length 0 */
    want[7] = (struct pair){ "E", 1, "", 0 };
    CHECK_EQ_INT(b.buf[b.len - 6], 0x01); /* the last pair: 01 80 00 00 00 'E' */
    CHECK_EQ_INT(b.buf[b.len - 5], 0x80);
    check_pairs(&b, want, 8, 0);
}

TEST(pairs_exact_bytes)
{
    /* Hand-written wire bytes, not built by the helpers above. */
    // clang-format off
    static const char block[] = "\x04\x03" "NAMEval"
                                "\x80\x00\x00\x01\x80\x00\x00\xc8" "N";
    // clang-format on
    static char vals[201];
    char *buf;
    size_t len;

    memset(vals, 'z', 200);
    len = sizeof(block) - 1;
    {
        static struct bytes b;

        b.len = 0;
        put(&b, block, len);
        put(&b, vals, 200);
        buf = guarded_copy(b.buf, b.len);
        if (CHECK_EQ_INT(proto_fcgi_parse_params(buf, b.len, &params_out), 2)) {
            CHECK_EQ_MEM(params_out.params[0].name.ptr, params_out.params[0].name.len, "NAME", 4);
            CHECK_EQ_MEM(params_out.params[0].value.ptr, params_out.params[0].value.len, "val", 3);
            CHECK_EQ_MEM(params_out.params[1].name.ptr, params_out.params[1].name.len, "N", 1);
            CHECK_EQ_INT(params_out.params[1].value.len, 200);
            CHECK(params_out.params[1].value.ptr == buf + len);
        }
        guarded_free(buf, b.len);
    }
}

TEST(pairs_empty_block)
{
    char *buf = guarded_copy("", 0);

    CHECK_EQ_INT(proto_fcgi_parse_params(buf, 0, &params_out), 0);
    CHECK_EQ_INT(params_out.nparams, 0);
    CHECK_EQ_INT(proto_fcgi_parse_params(NULL, 0, &params_out), 0);
    guarded_free(buf, 0);
}

TEST(pairs_truncated)
{
    /* A name length alone. */
    CHECK_EQ_INT(PAIRS_STATUS("\x01"), FCGI_E_TRUNCATED);
    /* A 4-byte name length cut after 1, 2, 3 bytes. */
    CHECK_EQ_INT(PAIRS_STATUS("\x80"), FCGI_E_TRUNCATED);
    CHECK_EQ_INT(PAIRS_STATUS("\x80\x00"), FCGI_E_TRUNCATED);
    CHECK_EQ_INT(PAIRS_STATUS("\x80\x00\x00"), FCGI_E_TRUNCATED);
    /* A 4-byte value length cut mid-length, after a good 1-byte name length. */
    CHECK_EQ_INT(PAIRS_STATUS("\x01\x80"), FCGI_E_TRUNCATED);
    CHECK_EQ_INT(PAIRS_STATUS("\x01\x80\x00\xc8"), FCGI_E_TRUNCATED);
    /* The same after a good pair: the error is the block's, not the first pair's. */
    // clang-format off
    CHECK_EQ_INT(PAIRS_STATUS("\x01\x01" "Kv" "\x01\x80\x00"), FCGI_E_TRUNCATED);
    /* Name runs past; name fits and value runs past by one byte. */
    CHECK_EQ_INT(PAIRS_STATUS("\x05\x00" "KEY"), FCGI_E_TRUNCATED);
    CHECK_EQ_INT(PAIRS_STATUS("\x03\x03" "KEYva"), FCGI_E_TRUNCATED);
    CHECK_EQ_INT(PAIRS_STATUS("\x03\x80\x00\x00\xc8" "KEY" "v"), FCGI_E_TRUNCATED);
    /* The largest lengths: nothing wraps. */
    CHECK_EQ_INT(PAIRS_STATUS("\xff\xff\xff\xff\x00" "K"), FCGI_E_TRUNCATED);
    CHECK_EQ_INT(PAIRS_STATUS("\x01\xff\xff\xff\xff" "K"), FCGI_E_TRUNCATED);
    // clang-format on
    CHECK_EQ_INT(PAIRS_STATUS("\xff\xff\xff\xff\xff\xff\xff\xff"), FCGI_E_TRUNCATED);
    CHECK_EQ_INT(params_out.nparams, 0);
    /* Exactly fitting, for contrast. */
    // clang-format off
    CHECK_EQ_INT(PAIRS_STATUS("\x03\x03" "KEYval"), 1);
    CHECK_EQ_INT(PAIRS_STATUS("\x03\x80\x00\x00\x03" "KEYval"), 1);
    // clang-format on
}

TEST(pairs_every_prefix)
{
    static struct bytes b;
    size_t bounds[4], nb = 0;

    /* Every prefix of a block either ends at a pair boundary (and parses to the pairs before
     * it) or cuts a pair (TRUNCATED). */
    b.len = 0;
    bounds[nb++] = b.len;
    put_pair(&b, "A", "1");
    bounds[nb++] = b.len;
    put_pair_n(&b, "LONGVALUE", 9, long_cookie, sizeof(long_cookie) - 1, 0, 0);
    bounds[nb++] = b.len;
    put_pair_n(&b, "W", 1, "wide", 4, 1, 1);
    bounds[nb++] = b.len;
    for (size_t n = 0; n <= b.len; n++) {
        int want = FCGI_E_TRUNCATED;

        for (size_t i = 0; i < nb; i++)
            if (bounds[i] == n)
                want = (int)i;
        TEST_CONTEXT("prefix of %zu", n);
        CHECK_EQ_INT(params_status(b.buf, n), want);
    }
}

TEST(pairs_empty_name_and_empty_value)
{
    // clang-format off
    CHECK_EQ_INT(PAIRS_STATUS("\x01\x00" "K"), 1);
    CHECK_EQ_INT(PAIRS_STATUS("\x00\x01" "v"), FCGI_E_EMPTY_NAME);
    CHECK_EQ_INT(PAIRS_STATUS("\x01\x00" "K" "\x80\x00\x00\x00\x00"), FCGI_E_EMPTY_NAME);
    /* Framing first: an empty name in a cut pair is a cut pair. */
    CHECK_EQ_INT(PAIRS_STATUS("\x00\x02" "v"), FCGI_E_TRUNCATED);
    // clang-format on
}

static void build_many(struct bytes *b, size_t n)
{
    char name[24];

    b->len = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "K%zu", i);
        put_pair(b, name, "");
    }
}

TEST(pairs_too_many)
{
    static struct bytes b;

    build_many(&b, GY_MAX_PARAMS);
    CHECK_EQ_INT(params_status(BYTES(&b)), GY_MAX_PARAMS);
    build_many(&b, GY_MAX_PARAMS + 1);
    CHECK_EQ_INT(params_status(BYTES(&b)), FCGI_E_TOO_MANY_PARAMS);
    CHECK_EQ_INT(params_out.nparams, 0);
    /* One too many but cut: framing wins. */
    build_many(&b, GY_MAX_PARAMS);
    // clang-format off
    put(&b, "\x01\x02" "Kv", 4);
    // clang-format on
    CHECK_EQ_INT(params_status(BYTES(&b)), FCGI_E_TRUNCATED);
}

static int content_length_status(const char *value, size_t vlen, int64_t *out)
{
    static struct bytes b;
    int r;

    b.len = 0;
    put_pair(&b, "REQUEST_METHOD", "POST");
    put_pair_n(&b, "CONTENT_LENGTH", 14, value, vlen, 0, 0);
    put_pair(&b, "PATH_INFO", "/");
    r = params_status(BYTES(&b));
    *out = params_out.content_length;
    return r;
}

/* The value is read by gy_parse_decimal (its table of values: test_request.c); here, that the
 * parser uses it: a value it takes, the largest, and one it refuses, with the FastCGI status. */
TEST(pairs_content_length)
{
    int64_t got = -1;

    CHECK_EQ_INT(content_length_status("9223372036854775807", 19, &got), 3);
    CHECK_EQ_INT(got, INT64_MAX);
    CHECK_EQ_INT(content_length_status("", 0, &got), 3); /* empty: no body, as nginx sends it */
    CHECK_EQ_INT(got, 0);
    CHECK_EQ_INT(content_length_status("9223372036854775808", 19, &got), FCGI_E_CONTENT_LENGTH);
    CHECK_EQ_INT(got, 0);
    CHECK_EQ_INT(content_length_status("+1", 2, &got), FCGI_E_CONTENT_LENGTH);
    CHECK_EQ_INT(got, 0);
}

TEST(pairs_content_length_repeated_and_lookalikes)
{
    static struct bytes b;

    b.len = 0;
    put_pair(&b, "CONTENT_LENGTH", "5");
    put_pair(&b, "CONTENT_LENGTH", "7");
    CHECK_EQ_INT(params_status(BYTES(&b)), 2);
    CHECK_EQ_INT(params_out.content_length, 7);
    b.len = 0;
    put_pair(&b, "CONTENT_LENGTH", "x");
    put_pair(&b, "CONTENT_LENGTH", "7");
    CHECK_EQ_INT(params_status(BYTES(&b)), FCGI_E_CONTENT_LENGTH);
    b.len = 0;
    put_pair(&b, "HTTP_CONTENT_LENGTH", "x");
    put_pair(&b, "content_length", "x");
    put_pair(&b, "CONTENT_LENGTHS", "x");
    put_pair_n(&b, "CONTENT_LENGTH\0", 15, "x", 1, 0, 0);
    CHECK_EQ_INT(params_status(BYTES(&b)), 4);
    CHECK_EQ_INT(params_out.content_length, 0);
    /* The name in the 4-byte form is still the name. */
    b.len = 0;
    put_pair_n(&b, "CONTENT_LENGTH", 14, "12", 2, 1, 1);
    CHECK_EQ_INT(params_status(BYTES(&b)), 1);
    CHECK_EQ_INT(params_out.content_length, 12);
}

TEST(pairs_errors_leave_no_params)
{
    static struct bytes b;

    b.len = 0;
    put_pair(&b, "A", "1");
    CHECK_EQ_INT(params_status(BYTES(&b)), 1);
    put_pair(&b, "CONTENT_LENGTH", "12");
    put(&b, "\x05", 1);
    CHECK_EQ_INT(params_status(BYTES(&b)), FCGI_E_TRUNCATED);
    CHECK_EQ_INT(params_out.nparams, 0);
    CHECK_EQ_INT(params_out.content_length, 0);
}

/* ---- encoders ---- */

/* A test-side record reader, independent of the parser: the fields of the header at p. */
struct rec {
    unsigned version, type, id, clen, padding;
    const unsigned char *content;
};

static struct rec read_rec(const void *data)
{
    const unsigned char *p = data;

    return (struct rec){ p[0],
                         p[1],
                         (unsigned)p[2] << 8 | p[3],
                         (unsigned)p[4] << 8 | p[5],
                         p[6],
                         p + FCGI_HEADER_LEN };
}

TEST(padding_length)
{
    for (size_t n = 0; n <= 64; n++) {
        TEST_CONTEXT("%zu", n);
        CHECK_EQ_INT((n + fcgi_padding_length(n)) % 8, 0);
        CHECK(fcgi_padding_length(n) < 8);
        CHECK_EQ_INT(fcgi_record_size(n), 8 + n + fcgi_padding_length(n));
    }
    CHECK_EQ_INT(fcgi_padding_length(FCGI_MAX_CONTENT), 1);
    CHECK_EQ_INT(fcgi_padding_length(FCGI_STREAM_CHUNK), 0);
    CHECK_EQ_INT(sizeof(FCGI_PADDING_BYTES), 8);
}

TEST(encode_header)
{
    char out[FCGI_HEADER_LEN];
    static const unsigned char want[8] = { 1, FCGI_STDOUT, 0x12, 0x34, 0x01, 0x02, 6, 0 };

    CHECK_EQ_INT(proto_fcgi_encode_header(out, sizeof(out), FCGI_STDOUT, 0x1234, 0x0102), 8);
    CHECK_EQ_MEM(out, 8, want, 8);
    CHECK_EQ_INT(proto_fcgi_encode_stdout_header(out, 8, 0xffff, 65535), 8);
    CHECK_EQ_MEM(out, 8, "\x01\x06\xff\xff\xff\xff\x01\x00", 8);
    CHECK_EQ_INT(proto_fcgi_encode_stderr_header(out, 8, 1, 0), 8);
    CHECK_EQ_MEM(out, 8, "\x01\x07\x00\x01\x00\x00\x00\x00", 8);
    CHECK_EQ_INT(proto_fcgi_encode_header(out, 8, FCGI_STDOUT, 1, 65536), FCGI_E_CONTENT_TOO_LONG);
    CHECK_EQ_INT(proto_fcgi_encode_header(out, 8, FCGI_STDOUT, 1, SIZE_MAX),
                 FCGI_E_CONTENT_TOO_LONG);
    CHECK_EQ_INT(proto_fcgi_encode_stdout_header(out, 7, 1, 1), FCGI_E_NO_SPACE);
    CHECK_EQ_INT(proto_fcgi_encode_stderr_header(out, 0, 1, 1), FCGI_E_NO_SPACE);
}

TEST(encode_end_request)
{
    static const unsigned statuses[] = { FCGI_REQUEST_COMPLETE, FCGI_CANT_MPX_CONN, FCGI_OVERLOADED,
                                         FCGI_UNKNOWN_ROLE };
    char out[FCGI_END_REQUEST_LEN];

    for (size_t i = 0; i < 4; i++) {
        struct rec r;

        TEST_CONTEXT("protocol status %u", statuses[i]);
        CHECK_EQ_INT(proto_fcgi_encode_end_request(out, sizeof(out), 0x0a0b, 0x01020304,
                                                   (uint8_t)statuses[i]),
                     FCGI_END_REQUEST_LEN);
        r = read_rec(out);
        CHECK_EQ_INT(r.version, 1);
        CHECK_EQ_INT(r.type, FCGI_END_REQUEST);
        CHECK_EQ_INT(r.id, 0x0a0b);
        CHECK_EQ_INT(r.clen, 8);
        CHECK_EQ_INT(r.padding, 0);
        CHECK_EQ_MEM(r.content, 4, "\x01\x02\x03\x04", 4);
        CHECK_EQ_INT(r.content[4], statuses[i]);
        CHECK_EQ_MEM(r.content + 5, 3, "\0\0\0", 3);
    }
    CHECK_EQ_INT(proto_fcgi_encode_end_request(out, sizeof(out), 1, 0xffffffff, 0), 16);
    CHECK_EQ_MEM(out + 8, 5, "\xff\xff\xff\xff\x00", 5);
    CHECK_EQ_INT(proto_fcgi_encode_end_request(out, 15, 1, 0, 0), FCGI_E_NO_SPACE);
}

TEST(encode_unknown_type)
{
    char out[FCGI_UNKNOWN_TYPE_LEN];

    CHECK_EQ_INT(proto_fcgi_encode_unknown_type(out, sizeof(out), 42), FCGI_UNKNOWN_TYPE_LEN);
    // clang-format off
    CHECK_EQ_MEM(out, 16, "\x01\x0b\x00\x00\x00\x08\x00\x00" "\x2a\0\0\0\0\0\0\0", 16);
    // clang-format on
    CHECK_EQ_INT(proto_fcgi_encode_unknown_type(out, 15, 42), FCGI_E_NO_SPACE);
}

TEST(encode_record)
{
    static char out[FCGI_HEADER_LEN + FCGI_MAX_CONTENT + 8], content[FCGI_MAX_CONTENT + 1];

    memset(content, 'c', sizeof(content));
    CHECK_EQ_INT(proto_fcgi_encode_record(out, sizeof(out), FCGI_STDOUT, 3, "hello", 5), 16);
    // clang-format off
    CHECK_EQ_MEM(out, 16, "\x01\x06\x00\x03\x00\x05\x03\x00" "hello\0\0\0", 16);
    // clang-format on
    CHECK_EQ_INT(proto_fcgi_encode_record(out, 16, FCGI_STDOUT, 3, "hello", 5), 16);
    CHECK_EQ_INT(proto_fcgi_encode_record(out, 15, FCGI_STDOUT, 3, "hello", 5), FCGI_E_NO_SPACE);
    CHECK_EQ_INT(proto_fcgi_encode_record(out, sizeof(out), FCGI_STDOUT, 3, NULL, 0), 8);
    CHECK_EQ_INT(
        proto_fcgi_encode_record(out, sizeof(out), FCGI_STDOUT, 3, content, FCGI_MAX_CONTENT),
        FCGI_HEADER_LEN + FCGI_MAX_CONTENT + 1);
    CHECK_EQ_INT(
        proto_fcgi_encode_record(out, sizeof(out), FCGI_STDOUT, 3, content, FCGI_MAX_CONTENT + 1),
        FCGI_E_CONTENT_TOO_LONG);
    /* In place: the content already where it goes. */
    memcpy(out + FCGI_HEADER_LEN, "in place", 8);
    CHECK_EQ_INT(proto_fcgi_encode_record(out, sizeof(out), FCGI_STDOUT, 1, out + 8, 8), 16);
    // clang-format off
    CHECK_EQ_MEM(out, 16, "\x01\x06\x00\x01\x00\x08\x00\x00" "in place", 16);
    // clang-format on
}

TEST(encoders_round_trip_through_the_parser)
{
    static const size_t lens[] = { 0, 1, 7, 8, 9, 255, 65528, 65535 };
    static const unsigned types[] = { FCGI_PARAMS, FCGI_STDIN, FCGI_DATA };
    static char content[FCGI_MAX_CONTENT];
    static struct bytes s;
    static char rec[FCGI_HEADER_LEN + FCGI_MAX_CONTENT + 8];

    for (size_t i = 0; i < sizeof(content); i++)
        content[i] = (char)(i % 251);
    /* Stream records the parser reads as content: what went in comes out, framing intact. */
    for (size_t t = 0; t < 3; t++)
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            int n = proto_fcgi_encode_record(rec, sizeof(rec), (uint8_t)types[t], 77, content,
                                             lens[i]);

            TEST_CONTEXT("type %u, %zu bytes", types[t], lens[i]);
            if (!CHECK_EQ_INT(n, fcgi_record_size(lens[i])))
                continue;
            s.len = 0;
            put(&s, rec, (size_t)n);
            n = proto_fcgi_encode_header(rec, sizeof(rec), (uint8_t)types[t], 77, 0);
            put(&s, rec, (size_t)n);
            feed(&whole_t, BYTES(&s), WHOLE, 0);
            CHECK_EQ_INT(whole_t.status, 0);
            CHECK_EQ_INT(whole_t.nevents, 2); /* the content (or an end), then the end */
            if (lens[i]) {
                check_event(&whole_t, 0,
                            types[t] == FCGI_PARAMS  ? FCGI_EV_PARAMS
                            : types[t] == FCGI_STDIN ? FCGI_EV_STDIN
                                                     : FCGI_EV_DATA,
                            77, content, lens[i]);
            }
            check_event(&whole_t, whole_t.nevents - 1,
                        types[t] == FCGI_PARAMS  ? FCGI_EV_PARAMS_END
                        : types[t] == FCGI_STDIN ? FCGI_EV_STDIN_END
                                                 : FCGI_EV_DATA_END,
                        77, NULL, 0);
        }

    /* The response records are unknown types to a parser of requests: it still frames them,
     * so what follows each one is read right. */
    {
        char buf[FCGI_GET_VALUES_RESULT_MAX];
        const struct fcgi_values v = { 10, 20, 0 };
        int n;

        s.len = 0;
        n = proto_fcgi_encode_stdout_header(buf, sizeof(buf), 5, 11);
        put(&s, buf, (size_t)n);
        put(&s, "Status: 200", 11);
        put(&s, FCGI_PADDING_BYTES, fcgi_padding_length(11));
        n = proto_fcgi_encode_stderr_header(buf, sizeof(buf), 5, 0);
        put(&s, buf, (size_t)n);
        n = proto_fcgi_encode_end_request(buf, sizeof(buf), 5, 0, FCGI_REQUEST_COMPLETE);
        put(&s, buf, (size_t)n);
        n = proto_fcgi_encode_unknown_type(buf, sizeof(buf), 200);
        put(&s, buf, (size_t)n);
        n = proto_fcgi_encode_get_values_result(buf, sizeof(buf), 7, &v);
        put(&s, buf, (size_t)n);
        put_record8(&s, FCGI_ABORT_REQUEST, 5, NULL, 0);
        TEST_CONTEXT("response records");
        feed_every_way(BYTES(&s));
        CHECK_EQ_INT(whole_t.status, 0);
        if (CHECK_EQ_INT(whole_t.nevents, 6)) {
            static const unsigned rts[] = { FCGI_STDOUT, FCGI_STDERR, FCGI_END_REQUEST,
                                            FCGI_UNKNOWN_TYPE, FCGI_GET_VALUES_RESULT };

            for (size_t i = 0; i < 5; i++) {
                check_event(&whole_t, i, FCGI_EV_UNKNOWN_TYPE, i < 3 ? 5 : 0, NULL, 0);
                CHECK_EQ_INT(whole_t.ev[i].record_type, rts[i]);
            }
            check_event(&whole_t, 5, FCGI_EV_ABORT_REQUEST, 5, NULL, 0);
        }
    }
}

TEST(stream_split_helper)
{
    static const size_t sizes[] = { 0,     1,     7,      8,      65527,  65528, 65529,
                                    65535, 65536, 131056, 131057, 200000, 300007 };
    static char body[300007];
    static struct bytes s;
    char hdr[FCGI_HEADER_LEN];

    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)(i * 13 % 256);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k], records = 0;

        TEST_CONTEXT("body of %zu bytes", n);
        /* The loop of the header's comment, as the server writes it, into s. */
        s.len = 0;
        for (size_t off = 0; off < n;) {
            size_t c = fcgi_stream_chunk(n - off);

            CHECK(c >= 1 && c <= FCGI_STREAM_CHUNK && c <= FCGI_MAX_CONTENT);
            if (off + c < n)
                CHECK_EQ_INT(c, FCGI_STREAM_CHUNK); /* full records but the last */
            CHECK_EQ_INT(proto_fcgi_encode_header(hdr, sizeof(hdr), FCGI_STDIN, 1, c), 8);
            put(&s, hdr, 8);
            put(&s, body + off, c);
            put(&s, FCGI_PADDING_BYTES, fcgi_padding_length(c));
            off += c;
            records++;
        }
        CHECK_EQ_INT(records, fcgi_stream_records(n));
        CHECK_EQ_INT(s.len, fcgi_stream_wire_size(n));
        CHECK_EQ_INT(s.len % 8, 0);
        /* Closed, and read back (as STDIN: the parser reads the request side). */
        CHECK_EQ_INT(proto_fcgi_encode_header(hdr, sizeof(hdr), FCGI_STDIN, 1, 0), 8);
        put(&s, hdr, 8);
        feed(&whole_t, BYTES(&s), WHOLE, 0);
        CHECK_EQ_INT(whole_t.status, 0);
        CHECK_EQ_INT(whole_t.raw_events, records + 1);
        if (n)
            check_event(&whole_t, 0, FCGI_EV_STDIN, 1, body, n);
        check_event(&whole_t, whole_t.nevents - 1, FCGI_EV_STDIN_END, 1, NULL, 0);
    }
    CHECK_EQ_INT(FCGI_STREAM_CHUNK % 8, 0);
    CHECK(FCGI_STREAM_CHUNK + 8 > FCGI_MAX_CONTENT);
}

/* ---- GET_VALUES ---- */

/* The GET_VALUES_RESULT record at data: checks its framing and parses its pairs. */
static int parse_result(const char *data, int n)
{
    static char copy[FCGI_GET_VALUES_RESULT_MAX];
    struct rec r;
    char *buf;
    int np;

    if (!CHECK(n >= FCGI_HEADER_LEN))
        return -100;
    r = read_rec(data);
    CHECK_EQ_INT(r.version, 1);
    CHECK_EQ_INT(r.type, FCGI_GET_VALUES_RESULT);
    CHECK_EQ_INT(r.id, 0);
    CHECK_EQ_INT(r.padding, fcgi_padding_length(r.clen));
    CHECK_EQ_INT((size_t)n, fcgi_record_size(r.clen));
    CHECK(n <= FCGI_GET_VALUES_RESULT_MAX);
    for (unsigned i = 0; i < r.padding; i++)
        CHECK_EQ_INT(r.content[r.clen + i], 0);
    /* Parsed from a guarded copy, the slices then moved to a copy that outlives it. */
    memcpy(copy, r.content, r.clen);
    buf = guarded_copy(copy, r.clen);
    np = proto_fcgi_parse_params(buf, r.clen, &params_out);
    for (int i = 0; i < np; i++) {
        params_out.params[i].name.ptr = copy + (params_out.params[i].name.ptr - buf);
        params_out.params[i].value.ptr = copy + (params_out.params[i].value.ptr - buf);
    }
    guarded_free(buf, r.clen);
    return np;
}

#define CHECK_PARAM(i, n, v)                                                                       \
    do {                                                                                           \
        CHECK_EQ_MEM(params_out.params[i].name.ptr, params_out.params[i].name.len, n,              \
                     sizeof(n) - 1);                                                               \
        CHECK_EQ_MEM(params_out.params[i].value.ptr, params_out.params[i].value.len, v,            \
                     sizeof(v) - 1);                                                               \
    } while (0)

TEST(get_values_to_get_values_result)
{
    static struct bytes content, s;
    const struct fcgi_values v = { 1000000000u, 4294967295u, 0 };
    char out[FCGI_GET_VALUES_RESULT_MAX];
    char *buf;
    int asked, n;

    /* What a web server asks (values empty), split over the stream however it comes. */
    content.len = 0;
    put_pair(&content, "FCGI_MAX_CONNS", "");
    put_pair(&content, "FCGI_MAX_REQS", "");
    put_pair(&content, "FCGI_MPXS_CONNS", "");
    CHECK_EQ_INT(content.len, 48);
    s.len = 0;
    put_record8(&s, FCGI_GET_VALUES, 0, BYTES(&content));
    feed_every_way(BYTES(&s));
    CHECK_EQ_INT(whole_t.status, 0);
    CHECK_EQ_INT(whole_t.raw_events, 1);
    check_event(&whole_t, 0, FCGI_EV_GET_VALUES, 0, BYTES(&content));
    CHECK_EQ_INT(piece_t.raw_events, 1); /* accumulated: one event however it was cut */

    buf = guarded_copy(whole_t.data, whole_t.ev[0].len);
    asked = proto_fcgi_get_values_asked(buf, whole_t.ev[0].len);
    guarded_free(buf, whole_t.ev[0].len);
    CHECK_EQ_INT(asked, FCGI_ASKED_MAX_CONNS | FCGI_ASKED_MAX_REQS | FCGI_ASKED_MPXS_CONNS);

    n = proto_fcgi_encode_get_values_result(out, sizeof(out), (unsigned)asked, &v);
    CHECK_EQ_INT(n, FCGI_GET_VALUES_RESULT_MAX); /* 10 digits: the largest answer */
    if (CHECK_EQ_INT(parse_result(out, n), 3)) {
        CHECK_PARAM(0, "FCGI_MAX_CONNS", "1000000000");
        CHECK_PARAM(1, "FCGI_MAX_REQS", "4294967295");
        CHECK_PARAM(2, "FCGI_MPXS_CONNS", "0");
    }
    CHECK_EQ_INT(proto_fcgi_encode_get_values_result(out, (size_t)n - 1, (unsigned)asked, &v),
                 FCGI_E_NO_SPACE);
    CHECK_EQ_INT(proto_fcgi_encode_get_values_result(out, (size_t)n, (unsigned)asked, &v), n);
}

TEST(get_values_answers_only_what_was_asked)
{
    static struct bytes content;
    const struct fcgi_values v = { 0, 1, 42 };
    char out[FCGI_GET_VALUES_RESULT_MAX];
    char *buf;
    int asked, n;

    /* Unknown names, a value where there should be none, a 4-byte length, a repeat. */
    content.len = 0;
    put_pair(&content, "FCGI_MAX_REQS", "ignored");
    put_pair(&content, "X_UNKNOWN", "");
    put_pair(&content, "FCGI_MAX_REQ", "");
    put_pair(&content, "fcgi_max_conns", "");
    put_pair_n(&content, "FCGI_MPXS_CONNS", 15, "", 0, 1, 1);
    put_pair(&content, "FCGI_MAX_REQS", "");
    buf = guarded_copy(content.buf, content.len);
    asked = proto_fcgi_get_values_asked(buf, content.len);
    guarded_free(buf, content.len);
    CHECK_EQ_INT(asked, FCGI_ASKED_MAX_REQS | FCGI_ASKED_MPXS_CONNS);
    n = proto_fcgi_encode_get_values_result(out, sizeof(out), (unsigned)asked, &v);
    if (CHECK_EQ_INT(parse_result(out, n), 2)) {
        CHECK_PARAM(0, "FCGI_MAX_REQS", "1");
        CHECK_PARAM(1, "FCGI_MPXS_CONNS", "1"); /* any non-zero is "1" */
    }

    /* Nothing known asked: an empty answer, a bare header. */
    // clang-format off
    CHECK_EQ_INT(proto_fcgi_get_values_asked("\x01\x00" "X", 3), 0);
    // clang-format on
    CHECK_EQ_INT(proto_fcgi_get_values_asked(NULL, 0), 0);
    n = proto_fcgi_encode_get_values_result(out, sizeof(out), 0, &v);
    CHECK_EQ_INT(n, FCGI_HEADER_LEN);
    CHECK_EQ_INT(parse_result(out, n), 0);
    n = proto_fcgi_encode_get_values_result(out, sizeof(out), FCGI_ASKED_MAX_CONNS, &v);
    if (CHECK_EQ_INT(parse_result(out, n), 1))
        CHECK_PARAM(0, "FCGI_MAX_CONNS", "0");
}

TEST(get_values_truncated)
{
    // clang-format off
    static const char cut[] = "\x0e\x00" "FCGI_MAX_CONN";
    // clang-format on
    char *buf = guarded_copy(cut, sizeof(cut) - 1);

    CHECK_EQ_INT(proto_fcgi_get_values_asked(buf, sizeof(cut) - 1), FCGI_E_TRUNCATED);
    guarded_free(buf, sizeof(cut) - 1);
    buf = guarded_copy("\x0e\x80\x00", 3);
    CHECK_EQ_INT(proto_fcgi_get_values_asked(buf, 3), FCGI_E_TRUNCATED);
    guarded_free(buf, 3);
}

/* ---- strerror ---- */

TEST(strerror)
{
    static const int statuses[] = {
        FCGI_E_VERSION,      FCGI_E_MANAGEMENT_ID,      FCGI_E_NULL_REQUEST_ID,
        FCGI_E_BEGIN_LENGTH, FCGI_E_GET_VALUES_TOO_BIG, FCGI_E_TRUNCATED,
        FCGI_E_EMPTY_NAME,   FCGI_E_TOO_MANY_PARAMS,    FCGI_E_CONTENT_LENGTH,
        FCGI_E_NO_SPACE,     FCGI_E_CONTENT_TOO_LONG,
    };
    const size_t n = sizeof(statuses) / sizeof(statuses[0]);

    /* Every code from -1 down, none skipped. */
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_INT(statuses[i], -(int)i - 1);
    CHECK_EQ_STR(proto_fcgi_strerror(FCGI_E_VERSION), "unsupported record version");
    for (size_t i = 0; i < n; i++) {
        const char *s = proto_fcgi_strerror(statuses[i]);

        TEST_CONTEXT("status %d", statuses[i]);
        CHECK(s[0] >= 'a' && s[0] <= 'z');
        CHECK(strlen(s) < 60 && s[strlen(s) - 1] != '.' && !strchr(s, '\n'));
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(s, proto_fcgi_strerror(statuses[j])) != 0);
        CHECK(strcmp(s, proto_fcgi_strerror(-100)) != 0);
    }
    CHECK_EQ_STR(proto_fcgi_strerror(-(int)n - 1), "unknown error");
    CHECK_EQ_STR(proto_fcgi_strerror(0), "no error");
    CHECK_EQ_STR(proto_fcgi_strerror(42), "no error");
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
