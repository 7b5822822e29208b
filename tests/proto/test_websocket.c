/*
 * Unit tests of proto/websocket.c: the frame parser, the UTF-8 validator, close payloads, the
 * encoders, masking and the handshake key.
 *
 * Every frame is parsed from a guarded copy whose last byte sits just before an inaccessible
 * page, so an over-read crashes the test instead of passing. Complete frames are parsed from a
 * writable copy (the parser unmasks in place); every prefix of a frame is parsed from a
 * READ-ONLY copy, so a parser that wrote to the buffer before the frame is complete faults.
 * Frames are built by this file's own encoder (cframe()), not by the encoders under test, which
 * are checked against literal bytes and against it.
 */
#include "testlib.h"
#include "websocket.h"

#include <limits.h>

/* ---- building frames ---- */

static const uint8_t MASK[4] = { 0x37, 0xfa, 0x21, 0x3d }; /* RFC 6455 5.7's examples' mask */

enum { LEN_SHORTEST = 0, LEN_7 = 7, LEN_16 = 16, LEN_64 = 64 };

/*
 * A client frame, written byte by byte from RFC 6455 5.2: byte 0 as given, the length in the
 * form asked for (the shortest when LEN_SHORTEST), the mask when masked, the payload XORed with
 * it. Returns the frame's size.
 */
static size_t encode(uint8_t *out, uint8_t b0, int masked, int form, uint64_t n,
                     const uint8_t mask[4], const void *payload)
{
    const uint8_t *pl = payload;
    size_t o = 2;

    if (form == LEN_SHORTEST)
        form = n <= 125 ? LEN_7 : n <= 0xffff ? LEN_16 : LEN_64;
    out[0] = b0;
    out[1] = masked ? 0x80 : 0;
    if (form == LEN_7) {
        out[1] |= (uint8_t)n;
    } else if (form == LEN_16) {
        out[1] |= 126;
        out[o++] = (uint8_t)(n >> 8);
        out[o++] = (uint8_t)n;
    } else {
        out[1] |= 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            out[o++] = (uint8_t)(n >> shift);
    }
    if (masked) {
        memcpy(out + o, mask, 4);
        o += 4;
    }
    if (payload)
        for (uint64_t i = 0; i < n; i++)
            out[o + i] = masked ? (uint8_t)(pl[i] ^ mask[i % 4]) : pl[i];
    return o + (payload ? (size_t)n : 0);
}

static uint8_t b0_of(unsigned opcode, int fin)
{
    return (uint8_t)((fin ? 0x80 : 0) | opcode);
}

/* A masked client frame with the shortest length, as browsers send. */
static size_t cframe(uint8_t *out, unsigned opcode, int fin, const void *payload, size_t n)
{
    return encode(out, b0_of(opcode, fin), 1, LEN_SHORTEST, n, MASK, payload);
}

#define BIG (3 * 65536 + 64)

/* A byte stream of several frames. */
struct stream {
    size_t len;
    uint8_t buf[BIG];
};

static void add_frame(struct stream *s, unsigned opcode, int fin, const void *payload, size_t n)
{
    if (s->len + n + WS_MAX_HEADER > sizeof(s->buf)) {
        fprintf(stderr, "test stream overflow\n");
        abort();
    }
    s->len += cframe(s->buf + s->len, opcode, fin, payload, n);
}

/* ---- parsing, with the invariants every call must keep ---- */

/* A writable guarded copy: the parser unmasks complete frames in place. */
static uint8_t *guarded_rw(const void *data, size_t len)
{
    uint8_t *p = guarded_copy(data, len);
    size_t span = testlib_data_pages_size(len);

    if (span && mprotect(p + len - span, span, PROT_READ | PROT_WRITE) != 0) {
        perror("guarded_rw: mprotect");
        abort();
    }
    return p;
}

static int parser_eq(const struct ws_parser *a, const struct ws_parser *b)
{
    return a->max_message == b->max_message && a->msg_opcode == b->msg_opcode &&
           a->msg_len == b->msg_len && a->utf8_state == b->utf8_state;
}

/* What a frame's first bytes say `need` must be, read independently of the parser. */
static uint64_t expected_need(const uint8_t *data, size_t k)
{
    unsigned len7, ext;
    uint64_t n = 0;

    if (k < 2)
        return 2;
    len7 = data[1] & 0x7f;
    ext = len7 == 127 ? 8 : len7 == 126 ? 2 : 0;
    if (k < 2 + ext)
        return 2 + ext + (data[1] & 0x80 ? 4 : 0);
    for (unsigned i = 0; i < ext; i++)
        n = n << 8 | data[2 + i];
    return 2 + ext + (data[1] & 0x80 ? 4 : 0) + (ext ? n : len7);
}

/*
 * Every proper prefix of the frame data[0..len) (all of them for small frames; the header,
 * the ends and a sample of the payload for large ones), each from its own read-only guarded
 * copy, with a copy of p: WS_INCOMPLETE with the exact need, or already `full` when full is an
 * error, and once an error, the same error for every longer prefix. The state never changes.
 */
static void check_prefixes(const struct ws_parser *p0, const uint8_t *data, size_t len, int full)
{
    int seen_error = 0;

    for (size_t k = 0; k < len; k++) {
        struct ws_parser p = *p0;
        struct ws_frame f;
        uint8_t *buf;
        int r;

        if (len > 2048 && k > 64 && k + 64 < len && k % 4093 != 0)
            continue;
        TEST_CONTEXT("prefix of %zu of %zu bytes", k, len);
        buf = guarded_copy(data, k);
        r = ws_parse_frame(&p, buf, k, &f);
        guarded_free(buf, k);
        CHECK(parser_eq(&p, p0));
        CHECK(f.payload == NULL);
        if (r == WS_INCOMPLETE) {
            CHECK(!seen_error);
            CHECK_EQ_INT(f.need, expected_need(data, k));
            CHECK(f.need > k);
            if (full > 0)
                CHECK(f.need <= (uint64_t)full);
        } else {
            CHECK(full < 0);
            CHECK_EQ_INT(r, full);
            seen_error = 1;
        }
    }
    TEST_CONTEXT("%s", "");
}

/* The payload of the last frame parse_checked() returned, copied out of the guarded buffer. */
static uint8_t got[BIG];
static size_t got_len;

/*
 * Parses data[0..len) from a writable guarded copy with p, checking what every result must
 * keep: a frame lies inside the buffer and the bytes after it are untouched; an INCOMPLETE or
 * an error leaves p as it was, and an INCOMPLETE leaves the buffer as it was too.
 */
static int parse_checked(struct ws_parser *p, const uint8_t *data, size_t len, struct ws_frame *f)
{
    struct ws_parser before = *p;
    uint8_t *buf = guarded_rw(data, len);
    int r = ws_parse_frame(p, buf, len, f);

    got_len = 0;
    if (r > 0) {
        CHECK((size_t)r <= len);
        CHECK_EQ_INT(f->header_len + f->payload_len, r);
        CHECK(f->payload == buf + f->header_len);
        CHECK_EQ_INT(f->need, 0);
        CHECK(f->header_len >= 6 && f->header_len <= WS_MAX_HEADER);
        CHECK_EQ_MEM(buf + r, len - (size_t)r, data + r, len - (size_t)r);
        if ((size_t)r <= len && f->payload_len <= sizeof(got)) {
            got_len = (size_t)f->payload_len;
            memcpy(got, f->payload, got_len);
        }
        if (f->opcode >= WS_OP_CLOSE)
            CHECK(f->fin && f->msg_opcode == f->opcode);
        else
            CHECK(f->msg_opcode == WS_OP_TEXT || f->msg_opcode == WS_OP_BINARY);
    } else {
        CHECK(parser_eq(p, &before));
        CHECK(f->payload == NULL);
        if (r == WS_INCOMPLETE) {
            CHECK(f->need > len);
            CHECK_EQ_MEM(buf, len, data, len);
        } else {
            CHECK_EQ_INT(f->need, 0);
        }
    }
    guarded_free(buf, len);
    /* Whatever happened, the state is one the parser can be in. */
    CHECK(p->msg_opcode == 0 || p->msg_opcode == WS_OP_TEXT || p->msg_opcode == WS_OP_BINARY);
    if (p->msg_opcode != WS_OP_TEXT)
        CHECK_EQ_INT(p->utf8_state, WS_UTF8_ACCEPT);
    if (p->msg_opcode == 0)
        CHECK_EQ_INT(p->msg_len, 0);
    CHECK(p->msg_len <= p->max_message);
    return r;
}

/* One whole frame: its prefixes, then itself. Returns the status. */
static int parse_one(struct ws_parser *p, const uint8_t *data, size_t len, struct ws_frame *f)
{
    struct ws_parser before = *p;
    int r;

    r = parse_checked(&before, data, len, f);
    check_prefixes(p, data, len, r);
    return parse_checked(p, data, len, f);
}

/* Parses one complete frame and checks it is the whole of data with the given payload. */
static void expect_frame(struct ws_parser *p, const uint8_t *data, size_t len, unsigned opcode,
                         unsigned msg_opcode, int fin, const void *payload, size_t n)
{
    struct ws_frame f;
    int r = parse_one(p, data, len, &f);

    if (!CHECK_EQ_INT(r, len))
        return;
    CHECK_EQ_INT(f.opcode, opcode);
    CHECK_EQ_INT(f.msg_opcode, msg_opcode);
    CHECK_EQ_INT(f.fin, fin);
    CHECK_EQ_INT(f.payload_len, n);
    CHECK_EQ_MEM(got, got_len, payload, n);
}

/* The status of one frame given as bytes, with a fresh parser. */
static int status_of(const uint8_t *data, size_t len, uint64_t max_message)
{
    struct ws_parser p;
    struct ws_frame f;

    ws_parser_init(&p, max_message);
    return parse_one(&p, data, len, &f);
}

/* ---- RFC 6455 5.7's examples ---- */

TEST(rfc_masked_hello)
{
    static const uint8_t hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    struct ws_parser p;

    ws_parser_init(&p, 1024);
    expect_frame(&p, hello, sizeof(hello), WS_OP_TEXT, WS_OP_TEXT, 1, "Hello", 5);
    CHECK_EQ_INT(p.msg_opcode, 0);
}

TEST(rfc_masked_pong)
{
    static const uint8_t pong[] = {
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
    };
    struct ws_parser p;

    ws_parser_init(&p, 1024);
    expect_frame(&p, pong, sizeof(pong), WS_OP_PONG, WS_OP_PONG, 1, "Hello", 5);
}

TEST(rfc_unmasked_frames_are_refused)
{
    static const uint8_t hello[] = { 0x81, 0x05, 'H', 'e', 'l', 'l', 'o' };
    static const uint8_t hel[] = { 0x01, 0x03, 'H', 'e', 'l' };
    static const uint8_t ping[] = { 0x89, 0x05, 'H', 'e', 'l', 'l', 'o' };

    CHECK_EQ_INT(status_of(hello, sizeof(hello), 1024), WS_E_UNMASKED);
    CHECK_EQ_INT(status_of(hel, sizeof(hel), 1024), WS_E_UNMASKED);
    CHECK_EQ_INT(status_of(ping, sizeof(ping), 1024), WS_E_UNMASKED);
    CHECK_EQ_INT(status_of(hello, 2, 1024), WS_E_UNMASKED); /* from the header alone */
}

TEST(rfc_server_headers)
{
    uint8_t h[WS_MAX_HEADER];

    /* "Hello", 256 bytes and 64 KiB in single unmasked frames, as 5.7 writes them. */
    CHECK_EQ_MEM(h, ws_frame_header(h, WS_OP_TEXT, 1, 5), "\x81\x05", 2);
    CHECK_EQ_MEM(h, ws_frame_header(h, WS_OP_BINARY, 1, 256), "\x82\x7e\x01\x00", 4);
    CHECK_EQ_MEM(h, ws_frame_header(h, WS_OP_BINARY, 1, 65536),
                 "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    /* A fragmented "Hello": "Hel" opens it, "lo" ends it. */
    CHECK_EQ_MEM(h, ws_frame_header(h, WS_OP_TEXT, 0, 3), "\x01\x03", 2);
    CHECK_EQ_MEM(h, ws_frame_header(h, WS_OP_CONTINUATION, 1, 2), "\x80\x02", 2);
    CHECK_EQ_MEM(h, ws_frame_header(h, WS_OP_CLOSE, 1, 0), "\x88\x00", 2);
    CHECK_EQ_MEM(h, ws_frame_header(h, WS_OP_PING, 1, 125), "\x89\x7d", 2);
}

/* ---- lengths ---- */

static uint8_t pattern_payload[BIG];

static void fill_pattern(void)
{
    for (size_t i = 0; i < sizeof(pattern_payload); i++)
        pattern_payload[i] = (uint8_t)(i * 7 + (i >> 8));
}

TEST(lengths_7_16_64_bit)
{
    static const size_t sizes[] = { 0, 1, 5, 124, 125, 126, 127, 1000, 65535, 65536, 65537 };
    static uint8_t frame[BIG];
    struct ws_parser p;

    fill_pattern();
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i], len = cframe(frame, WS_OP_BINARY, 1, pattern_payload, n);
        struct ws_frame f;

        TEST_CONTEXT("payload of %zu bytes", n);
        CHECK_EQ_INT(len - n, n <= 125 ? 6 : n <= 65535 ? 8 : 14);
        ws_parser_init(&p, 1 << 20);
        expect_frame(&p, frame, len, WS_OP_BINARY, WS_OP_BINARY, 1, pattern_payload, n);
        /* The header alone, then all but the last payload byte: the exact total is asked. */
        ws_parser_init(&p, 1 << 20);
        if (n > 0) {
            CHECK_EQ_INT(parse_checked(&p, frame, len - n, &f), WS_INCOMPLETE);
            CHECK_EQ_INT(f.need, len);
            CHECK_EQ_INT(f.payload_len, n);
            CHECK_EQ_INT(f.header_len, len - n);
            CHECK_EQ_INT(parse_checked(&p, frame, len - 1, &f), WS_INCOMPLETE);
            CHECK_EQ_INT(f.need, len);
        }
    }
}

TEST(lengths_not_in_shortest_form_are_accepted)
{
    static const size_t sizes[] = { 0, 5, 125, 126, 65535 };
    static uint8_t frame[70000];
    struct ws_parser p;

    fill_pattern();
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i], len;

        TEST_CONTEXT("%zu bytes in 16-bit form", n);
        len = encode(frame, 0x82, 1, LEN_16, n, MASK, pattern_payload);
        CHECK_EQ_INT(len, 8 + n);
        ws_parser_init(&p, 1 << 20);
        expect_frame(&p, frame, len, WS_OP_BINARY, WS_OP_BINARY, 1, pattern_payload, n);

        TEST_CONTEXT("%zu bytes in 64-bit form", n);
        len = encode(frame, 0x82, 1, LEN_64, n, MASK, pattern_payload);
        CHECK_EQ_INT(len, 14 + n);
        ws_parser_init(&p, 1 << 20);
        expect_frame(&p, frame, len, WS_OP_BINARY, WS_OP_BINARY, 1, pattern_payload, n);
    }
}

TEST(need_before_the_length_is_known)
{
    static const uint8_t h16[] = { 0x82, 0xfe, 0x01, 0x00 };
    static const uint8_t h64[] = { 0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0 };
    struct ws_parser p;
    struct ws_frame f;

    ws_parser_init(&p, 1 << 20);
    CHECK_EQ_INT(parse_checked(&p, h16, 0, &f), WS_INCOMPLETE);
    CHECK_EQ_INT(f.need, 2);
    CHECK_EQ_INT(parse_checked(&p, h16, 1, &f), WS_INCOMPLETE);
    CHECK_EQ_INT(f.need, 2);
    CHECK_EQ_INT(f.opcode, WS_OP_BINARY); /* filled as far as the bytes go */
    CHECK_EQ_INT(f.fin, 1);
    CHECK_EQ_INT(parse_checked(&p, h16, 2, &f), WS_INCOMPLETE);
    CHECK_EQ_INT(f.need, 8); /* the header: 2 + 2 + 4 */
    CHECK_EQ_INT(f.header_len, 8);
    CHECK_EQ_INT(parse_checked(&p, h16, 3, &f), WS_INCOMPLETE);
    CHECK_EQ_INT(f.need, 8);
    CHECK_EQ_INT(parse_checked(&p, h16, 4, &f), WS_INCOMPLETE);
    CHECK_EQ_INT(f.need, 8 + 256);
    CHECK_EQ_INT(f.payload_len, 256);
    for (size_t k = 2; k < sizeof(h64); k++) {
        TEST_CONTEXT("64-bit header, %zu bytes", k);
        CHECK_EQ_INT(parse_checked(&p, h64, k, &f), WS_INCOMPLETE);
        CHECK_EQ_INT(f.need, 14);
    }
    CHECK_EQ_INT(parse_checked(&p, h64, sizeof(h64), &f), WS_INCOMPLETE);
    CHECK_EQ_INT(f.need, 14 + 65536);
}

TEST(frame_size_limit_is_int_max)
{
    /* The frame's size is returned as an int: a frame of exactly INT_MAX bytes is waited for,
     * one byte more is too big from its header, whatever max_message allows. */
    static uint8_t h[WS_MAX_HEADER];
    const uint64_t fits = (uint64_t)INT_MAX - 14;
    struct ws_parser p;
    struct ws_frame f;
    size_t len;

    ws_parser_init(&p, UINT64_MAX);
    len = encode(h, 0x82, 1, LEN_64, fits, MASK, NULL);
    CHECK_EQ_INT(parse_checked(&p, h, len, &f), WS_INCOMPLETE);
    CHECK_EQ_INT(f.need, INT_MAX);
    len = encode(h, 0x82, 1, LEN_64, fits + 1, MASK, NULL);
    CHECK_EQ_INT(parse_checked(&p, h, len, &f), WS_E_TOO_BIG);
    CHECK_EQ_INT(f.payload_len, fits + 1);
    len = encode(h, 0x82, 1, LEN_64, 1ull << 62, MASK, NULL);
    CHECK_EQ_INT(parse_checked(&p, h, len, &f), WS_E_TOO_BIG);
    len = encode(h, 0x82, 1, LEN_64, (1ull << 63) - 1, MASK, NULL);
    CHECK_EQ_INT(parse_checked(&p, h, len, &f), WS_E_TOO_BIG);
}

TEST(length_with_the_top_bit_set)
{
    static uint8_t h[WS_MAX_HEADER];
    static const uint64_t lens[] = { 1ull << 63, UINT64_MAX, (1ull << 63) + 5 };
    struct ws_parser p;
    struct ws_frame f;

    for (size_t i = 0; i < 3; i++) {
        size_t len = encode(h, 0x82, 1, LEN_64, lens[i], MASK, NULL);

        TEST_CONTEXT("length %llx", (unsigned long long)lens[i]);
        ws_parser_init(&p, UINT64_MAX);
        CHECK_EQ_INT(parse_checked(&p, h, 10, &f), WS_E_LENGTH); /* the mask not yet in */
        CHECK_EQ_INT(parse_checked(&p, h, len, &f), WS_E_LENGTH);
        CHECK_EQ_INT(parse_checked(&p, h, 9, &f), WS_INCOMPLETE);
        CHECK_EQ_INT(ws_status_close_code(WS_E_LENGTH), 1002);
    }
}

/* ---- masking ---- */

TEST(mask_every_offset_length_and_alignment)
{
    static const uint8_t mask[4] = { 0x01, 0x80, 0xff, 0x5a };
    static const uint64_t offsets[] = { 0, 1, 2, 3, 4, 5, 6, 7, 1ull << 40, (1ull << 40) + 3 };
    uint8_t src[96], want[96];

    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 29 + 3);
    for (size_t o = 0; o < sizeof(offsets) / sizeof(offsets[0]); o++)
        for (size_t align = 0; align < 8; align++)
            for (size_t n = 0; n + align <= sizeof(src); n++) {
                /* The bytes end at a guard page: a write past n faults. */
                uint8_t *buf = guarded_rw(src + align, n);

                TEST_CONTEXT("offset %llu, start %zu, %zu bytes", (unsigned long long)offsets[o],
                             align, n);
                for (size_t i = 0; i < n; i++)
                    want[i] = src[align + i] ^ mask[(offsets[o] + i) % 4];
                ws_mask(buf, n, mask, offsets[o]);
                CHECK_EQ_MEM(buf, n, want, n);
                ws_mask(buf, n, mask, offsets[o]); /* its own inverse */
                CHECK_EQ_MEM(buf, n, src + align, n);
                guarded_free(buf, n);
            }
}

TEST(mask_in_pieces_equals_mask_at_once)
{
    /* A payload unmasked in pieces (as a server streaming a big frame would), each piece at its
     * offset, equals the payload unmasked at once. */
    uint8_t whole[200], pieces[200];

    for (size_t i = 0; i < sizeof(whole); i++)
        whole[i] = pieces[i] = (uint8_t)(i ^ 0xa5);
    ws_mask(whole, sizeof(whole), MASK, 0);
    for (size_t at = 0, step = 1; at < sizeof(pieces); at += step, step = step * 2 + 1) {
        size_t n = sizeof(pieces) - at < step ? sizeof(pieces) - at : step;

        ws_mask(pieces + at, n, MASK, at);
    }
    CHECK_EQ_MEM(pieces, sizeof(pieces), whole, sizeof(whole));
}

TEST(frames_with_various_masks)
{
    static const uint8_t masks[][4] = {
        { 0, 0, 0, 0 }, { 0xff, 0xff, 0xff, 0xff }, { 1, 2, 3, 4 }, { 0x80, 0, 0, 0x01 }
    };
    static uint8_t frame[300];
    struct ws_parser p;

    fill_pattern();
    for (size_t m = 0; m < 4; m++)
        for (size_t n = 0; n < 140; n += 13) {
            size_t len = encode(frame, 0x82, 1, LEN_SHORTEST, n, masks[m], pattern_payload);

            TEST_CONTEXT("mask %zu, %zu bytes", m, n);
            ws_parser_init(&p, 1024);
            expect_frame(&p, frame, len, WS_OP_BINARY, WS_OP_BINARY, 1, pattern_payload, n);
        }
}

/* ---- streams of frames, fragmentation ---- */

TEST(fragmented_text_with_interleaved_control_frames)
{
    static struct stream s;
    static const struct {
        unsigned opcode, msg_opcode;
        int fin;
        const char *payload;
        size_t len;
        uint8_t msg_open_after;
        uint64_t msg_len_after;
    } want[] = {
        { WS_OP_TEXT, WS_OP_TEXT, 0, "Hel", 3, WS_OP_TEXT, 3 },
        { WS_OP_PING, WS_OP_PING, 1, "ping", 4, WS_OP_TEXT, 3 },
        { WS_OP_CONTINUATION, WS_OP_TEXT, 0, "lo ", 3, WS_OP_TEXT, 6 },
        { WS_OP_PONG, WS_OP_PONG, 1, "", 0, WS_OP_TEXT, 6 },
        { WS_OP_CONTINUATION, WS_OP_TEXT, 0, "", 0, WS_OP_TEXT, 6 },
        { WS_OP_CLOSE, WS_OP_CLOSE, 1, "\x03\xe8", 2, WS_OP_TEXT, 6 },
        { WS_OP_CONTINUATION, WS_OP_TEXT, 1, "world", 5, 0, 0 },
        { WS_OP_BINARY, WS_OP_BINARY, 0, "\x00\xff", 2, WS_OP_BINARY, 2 },
        { WS_OP_CONTINUATION, WS_OP_BINARY, 1, "\xc0", 1, 0, 0 },
        { WS_OP_TEXT, WS_OP_TEXT, 1, "next", 4, 0, 0 },
    };
    const size_t n = sizeof(want) / sizeof(want[0]);
    size_t at = 0;
    struct ws_parser p;

    s.len = 0;
    for (size_t i = 0; i < n; i++)
        add_frame(&s, want[i].opcode, want[i].fin, want[i].payload, want[i].len);
    ws_parser_init(&p, 1024);
    /* The whole stream in one buffer, frame after frame, as a server reads it. */
    for (size_t i = 0; i < n; i++) {
        struct ws_frame f;
        int r;

        TEST_CONTEXT("frame %zu", i);
        r = parse_checked(&p, s.buf + at, s.len - at, &f);
        if (!CHECK(r > 0))
            return;
        CHECK_EQ_INT(f.opcode, want[i].opcode);
        CHECK_EQ_INT(f.msg_opcode, want[i].msg_opcode);
        CHECK_EQ_INT(f.fin, want[i].fin);
        CHECK_EQ_MEM(got, got_len, want[i].payload, want[i].len);
        CHECK_EQ_INT(p.msg_opcode, want[i].msg_open_after);
        CHECK_EQ_INT(p.msg_len, want[i].msg_len_after);
        at += (size_t)r;
    }
    CHECK_EQ_INT(at, s.len);
}

TEST(each_frame_of_a_stream_with_every_prefix)
{
    /* The same kind of stream, frame by frame from buffers that end with it: every prefix of
     * every frame is INCOMPLETE with the exact need and the message state intact. */
    static uint8_t frame[200];
    static const char *texts[] = { "a", "", "\xc3", "\xa9 and more text than fits a short frame" };
    struct ws_parser p;
    size_t len;

    ws_parser_init(&p, 1024);
    len = cframe(frame, WS_OP_TEXT, 0, texts[0], 1);
    expect_frame(&p, frame, len, WS_OP_TEXT, WS_OP_TEXT, 0, texts[0], 1);
    len = cframe(frame, WS_OP_PING, 1, "12345678901234567890", 20);
    expect_frame(&p, frame, len, WS_OP_PING, WS_OP_PING, 1, "12345678901234567890", 20);
    len = cframe(frame, WS_OP_CONTINUATION, 0, texts[1], 0);
    expect_frame(&p, frame, len, WS_OP_CONTINUATION, WS_OP_TEXT, 0, "", 0);
    len = cframe(frame, WS_OP_CONTINUATION, 0, texts[2], 1);
    expect_frame(&p, frame, len, WS_OP_CONTINUATION, WS_OP_TEXT, 0, texts[2], 1);
    CHECK(p.utf8_state != WS_UTF8_ACCEPT); /* inside the é */
    CHECK_EQ_INT(p.msg_len, 2);
    len = cframe(frame, WS_OP_CONTINUATION, 1, texts[3], strlen(texts[3]));
    expect_frame(&p, frame, len, WS_OP_CONTINUATION, WS_OP_TEXT, 1, texts[3], strlen(texts[3]));
    CHECK_EQ_INT(p.msg_opcode, 0);
    CHECK_EQ_INT(p.msg_len, 0);
    CHECK_EQ_INT(p.utf8_state, WS_UTF8_ACCEPT);
}

TEST(pipelined_frames_leave_the_next_untouched)
{
    static struct stream s;
    struct ws_parser p;
    struct ws_frame f;
    int r;

    s.len = 0;
    add_frame(&s, WS_OP_TEXT, 1, "one", 3);
    add_frame(&s, WS_OP_BINARY, 1, "two", 3);
    ws_parser_init(&p, 1024);
    r = parse_checked(&p, s.buf, s.len, &f); /* checks the second frame's bytes are intact */
    CHECK_EQ_INT(r, 9);
    CHECK_EQ_MEM(got, got_len, "one", 3);
    r = parse_checked(&p, s.buf + 9, s.len - 9, &f);
    CHECK_EQ_INT(r, 9);
    CHECK_EQ_MEM(got, got_len, "two", 3);
    /* The first frame plus part of the second: the first is returned whole. */
    CHECK_EQ_INT(parse_checked(&p, s.buf, 10, &f), 9);
}

/* ---- errors: each status, its close code, the byte that decides it ---- */

TEST(errors_from_the_header)
{
    static const struct {
        const char *name;
        uint8_t bytes[16];
        size_t len, decided_at; /* the prefix length at which the error is known */
        int open_message;       /* a text message is open (after "\x01\x81...") */
        int status;
    } cases[] = {
        { "rsv1", { 0xc1, 0x81, 1, 2, 3, 4, 'x' }, 7, 1, 0, WS_E_RSV },
        { "rsv2", { 0xa1, 0x81, 1, 2, 3, 4, 'x' }, 7, 1, 0, WS_E_RSV },
        { "rsv3", { 0x91, 0x81, 1, 2, 3, 4, 'x' }, 7, 1, 0, WS_E_RSV },
        { "rsv on a ping", { 0xc9, 0x80, 1, 2, 3, 4 }, 6, 1, 0, WS_E_RSV },
        { "rsv before the opcode", { 0xf3, 0x80, 1, 2, 3, 4 }, 6, 1, 0, WS_E_RSV },
        { "opcode 3", { 0x83, 0x80, 1, 2, 3, 4 }, 6, 1, 0, WS_E_OPCODE },
        { "opcode 7", { 0x87, 0x80, 1, 2, 3, 4 }, 6, 1, 0, WS_E_OPCODE },
        { "opcode 0xb", { 0x8b, 0x80, 1, 2, 3, 4 }, 6, 1, 0, WS_E_OPCODE },
        { "opcode 0xf", { 0x0f, 0x80, 1, 2, 3, 4 }, 6, 1, 0, WS_E_OPCODE },
        { "opcode before the mask", { 0x84, 0x00 }, 2, 1, 0, WS_E_OPCODE },
        { "ping without fin", { 0x09, 0x80, 1, 2, 3, 4 }, 6, 1, 0, WS_E_CONTROL_FRAGMENTED },
        { "close without fin", { 0x08, 0x80, 1, 2, 3, 4 }, 6, 1, 0, WS_E_CONTROL_FRAGMENTED },
        { "pong without fin", { 0x0a, 0x80, 1, 2, 3, 4 }, 6, 1, 1, WS_E_CONTROL_FRAGMENTED },
        { "continuation alone", { 0x80, 0x80, 1, 2, 3, 4 }, 6, 1, 0, WS_E_CONTINUATION },
        { "continuation, no fin", { 0x00, 0x80, 1, 2, 3, 4 }, 6, 1, 0, WS_E_CONTINUATION },
        { "text inside a message", { 0x81, 0x80, 1, 2, 3, 4 }, 6, 1, 1, WS_E_INTERLEAVED },
        { "binary inside a message", { 0x02, 0x80, 1, 2, 3, 4 }, 6, 1, 1, WS_E_INTERLEAVED },
        { "unmasked text", { 0x81, 0x01, 'x' }, 3, 2, 0, WS_E_UNMASKED },
        { "unmasked ping", { 0x89, 0x00 }, 2, 2, 0, WS_E_UNMASKED },
        { "unmasked continuation", { 0x80, 0x00 }, 2, 2, 1, WS_E_UNMASKED },
        { "unmasked, 64-bit", { 0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0 }, 10, 2, 0, WS_E_UNMASKED },
        { "ping of 126", { 0x89, 0xfe, 0x00, 0x7e }, 4, 2, 0, WS_E_CONTROL_TOO_BIG },
        { "close of 127 (64-bit)", { 0x88, 0xff, 0 }, 3, 2, 0, WS_E_CONTROL_TOO_BIG },
        { "pong in 16-bit form", { 0x8a, 0xfe, 0x00, 0x05 }, 4, 2, 1, WS_E_CONTROL_TOO_BIG },
        { "unmasked beats control size", { 0x89, 0x7e }, 2, 2, 0, WS_E_UNMASKED },
        { "64-bit top bit",
          { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 },
          14,
          10,
          0,
          WS_E_LENGTH },
        { "too big, 7-bit", { 0x82, 0x91, 1, 2, 3, 4 }, 6, 2, 0, WS_E_TOO_BIG },
        { "too big, 16-bit", { 0x82, 0xfe, 0x00, 0x11, 1, 2, 3, 4 }, 8, 4, 0, WS_E_TOO_BIG },
        { "too big, 64-bit", { 0x81, 0xff, 0, 0, 0, 1, 0, 0, 0, 0 }, 10, 10, 0, WS_E_TOO_BIG },
        { "too big in a message", { 0x80, 0x8d, 1, 2, 3, 4 }, 6, 2, 1, WS_E_TOO_BIG },
    };
    /* An open text message of 4 bytes, for the cases that need one. */
    static const uint8_t open_msg[] = { 0x01, 0x84, 0, 0, 0, 0, 'o', 'p', 'e', 'n' };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ws_parser p, before;
        struct ws_frame f;

        TEST_CONTEXT("%s", cases[i].name);
        ws_parser_init(&p, 16);
        if (cases[i].open_message &&
            !CHECK_EQ_INT(parse_checked(&p, open_msg, sizeof(open_msg), &f), sizeof(open_msg)))
            continue;
        before = p;
        CHECK_EQ_INT(parse_checked(&p, cases[i].bytes, cases[i].len, &f), cases[i].status);
        CHECK_EQ_INT(parse_checked(&p, cases[i].bytes, cases[i].decided_at, &f), cases[i].status);
        CHECK_EQ_INT(parse_checked(&p, cases[i].bytes, cases[i].decided_at - 1, &f), WS_INCOMPLETE);
        CHECK(parser_eq(&p, &before));
        check_prefixes(&p, cases[i].bytes, cases[i].len, cases[i].status);
        CHECK_EQ_INT(ws_status_close_code(cases[i].status),
                     cases[i].status == WS_E_TOO_BIG ? 1009 : 1002);
    }
}

TEST(frame_fields_on_errors)
{
    static const uint8_t big[] = { 0x82, 0xfe, 0x10, 0x00 };
    static const uint8_t unmasked[] = { 0x89, 0x7d };
    struct ws_parser p;
    struct ws_frame f;

    ws_parser_init(&p, 100);
    CHECK_EQ_INT(parse_checked(&p, big, sizeof(big), &f), WS_E_TOO_BIG);
    CHECK_EQ_INT(f.opcode, WS_OP_BINARY);
    CHECK_EQ_INT(f.msg_opcode, WS_OP_BINARY);
    CHECK_EQ_INT(f.fin, 1);
    CHECK_EQ_INT(f.header_len, 8);
    CHECK_EQ_INT(f.payload_len, 4096);
    CHECK_EQ_INT(parse_checked(&p, unmasked, sizeof(unmasked), &f), WS_E_UNMASKED);
    CHECK_EQ_INT(f.opcode, WS_OP_PING);
    CHECK_EQ_INT(f.header_len, 2);
}

TEST(every_opcode)
{
    for (unsigned op = 0; op < 16; op++)
        for (int fin = 0; fin < 2; fin++) {
            uint8_t frame[16];
            size_t len = cframe(frame, op, fin, "", 0);
            int want;

            TEST_CONTEXT("opcode %u, fin %d", op, fin);
            if ((op >= 3 && op <= 7) || op >= 0xb)
                want = WS_E_OPCODE;
            else if (op >= 8 && !fin)
                want = WS_E_CONTROL_FRAGMENTED;
            else if (op == 0)
                want = WS_E_CONTINUATION;
            else
                want = (int)len; /* an empty close included: no status */
            CHECK_EQ_INT(status_of(frame, len, 16), want);
        }
}

TEST(a_new_message_after_fin_is_fine_and_continuation_after_it_is_not)
{
    static uint8_t frame[32];
    struct ws_parser p;
    struct ws_frame f;
    size_t len;

    ws_parser_init(&p, 16);
    len = cframe(frame, WS_OP_BINARY, 0, "ab", 2);
    CHECK_EQ_INT(parse_checked(&p, frame, len, &f), len);
    len = cframe(frame, WS_OP_CONTINUATION, 1, "cd", 2);
    CHECK_EQ_INT(parse_checked(&p, frame, len, &f), len);
    len = cframe(frame, WS_OP_CONTINUATION, 1, "ef", 2);
    CHECK_EQ_INT(parse_checked(&p, frame, len, &f), WS_E_CONTINUATION);
    len = cframe(frame, WS_OP_TEXT, 1, "ef", 2);
    CHECK_EQ_INT(parse_checked(&p, frame, len, &f), len);
}

/* ---- max_message ---- */

/* A message of fragments with the given payload sizes; returns the status of the last frame. */
static int fragments_status(uint64_t max, const size_t *sizes, size_t n, unsigned first_opcode,
                            size_t *failed_at)
{
    static uint8_t frame[BIG];
    struct ws_parser p;

    fill_pattern();
    ws_parser_init(&p, max);
    *failed_at = n;
    for (size_t i = 0; i < n; i++) {
        size_t len = cframe(frame, i ? WS_OP_CONTINUATION : first_opcode, i + 1 == n,
                            pattern_payload, sizes[i]);
        struct ws_frame f;
        int r = parse_one(&p, frame, len, &f);

        if (r <= 0) {
            *failed_at = i;
            return r;
        }
        CHECK_EQ_INT(r, len);
    }
    return 1;
}

TEST(max_message_at_and_one_over_the_limit)
{
    /* The limit is on the message, the sum of its fragments (binary here, text below). */
    static const struct {
        uint64_t max;
        size_t sizes[4], n;
        int ok;
        size_t failed_at;
    } cases[] = {
        { 10, { 10 }, 1, 1, 1 },
        { 10, { 11 }, 1, 0, 0 },
        { 10, { 4, 6 }, 2, 1, 2 },
        { 10, { 4, 7 }, 2, 0, 1 },
        { 10, { 4, 0, 6, 0 }, 4, 1, 4 },
        { 10, { 4, 0, 6, 1 }, 4, 0, 3 },
        { 10, { 10, 0 }, 2, 1, 2 },
        { 10, { 10, 1 }, 2, 0, 1 },
        { 0, { 0, 0 }, 2, 1, 2 },
        { 0, { 0, 1 }, 2, 0, 1 },
        { 65536, { 65000, 536 }, 2, 1, 2 },
        { 65536, { 65000, 537 }, 2, 0, 1 },
        { 65536, { 126, 65410, 0 }, 3, 1, 3 },
        { 65536, { 126, 65411, 0 }, 3, 0, 1 },
        { 65535, { 65536 }, 1, 0, 0 },
        { 65536, { 65536 }, 1, 1, 1 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t failed_at;
        int r = fragments_status(cases[i].max, cases[i].sizes, cases[i].n, WS_OP_BINARY,
                                 &failed_at);

        TEST_CONTEXT("case %zu", i);
        CHECK_EQ_INT(r, cases[i].ok ? 1 : WS_E_TOO_BIG);
        CHECK_EQ_INT(failed_at, cases[i].failed_at);
    }
}

TEST(max_message_applies_to_text_and_not_to_control_frames)
{
    static uint8_t frame[200];
    static char text[130];
    struct ws_parser p;
    struct ws_frame f;
    size_t len;

    memset(text, 'x', sizeof(text));
    ws_parser_init(&p, 5);
    len = cframe(frame, WS_OP_TEXT, 0, text, 3);
    CHECK_EQ_INT(parse_checked(&p, frame, len, &f), len);
    /* A ping of 125 bytes is no part of the message: fine with a limit of 5. */
    len = cframe(frame, WS_OP_PING, 1, text, 125);
    CHECK_EQ_INT(parse_checked(&p, frame, len, &f), len);
    len = cframe(frame, WS_OP_CLOSE, 1, "\x03\xe8xxxxxxxxxxxxxxxx", 18);
    CHECK_EQ_INT(parse_checked(&p, frame, len, &f), len);
    len = cframe(frame, WS_OP_CONTINUATION, 1, text, 3);
    CHECK_EQ_INT(parse_checked(&p, frame, len, &f), WS_E_TOO_BIG);
    CHECK_EQ_INT(parse_checked(&p, frame, 2, &f), WS_E_TOO_BIG); /* from the header */
    len = cframe(frame, WS_OP_CONTINUATION, 1, text, 2);
    CHECK_EQ_INT(parse_checked(&p, frame, len, &f), len);
    CHECK_EQ_MEM(got, got_len, "xx", 2);
}

TEST(max_message_lowered_mid_message)
{
    /* A caller lowering the limit under what the open message already holds: the next
     * fragment is too big, even an empty one, and nothing wraps around. */
    static uint8_t frame[32];
    struct ws_parser p;
    struct ws_frame f;
    size_t len;

    ws_parser_init(&p, 100);
    len = cframe(frame, WS_OP_BINARY, 0, "abcdef", 6);
    CHECK_EQ_INT(parse_checked(&p, frame, len, &f), len);
    p.max_message = 3;
    len = cframe(frame, WS_OP_CONTINUATION, 1, "", 0);
    CHECK_EQ_INT(ws_parse_frame(&p, frame, len, &f), WS_E_TOO_BIG);
    p.max_message = UINT64_MAX;
    CHECK_EQ_INT(ws_parse_frame(&p, frame, len, &f), len);
}

/* ---- UTF-8 ---- */

/*
 * A reference of "could these bytes start valid UTF-8?", written from the code point ranges
 * rather than from the byte grammar the automaton encodes: 0 valid and complete, 1 invalid
 * (no continuation can fix it), 2 a valid prefix ending inside a character.
 */
static int ref_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t b = s[i++];
        uint32_t cp, lo, hi;
        unsigned more;

        if (b < 0x80)
            continue;
        if (b >= 0xc0 && b <= 0xdf)
            more = 1, cp = b & 0x1f, lo = 0x80, hi = 0x7ff;
        else if (b >= 0xe0 && b <= 0xef)
            more = 2, cp = b & 0x0f, lo = 0x800, hi = 0xffff;
        else if (b >= 0xf0 && b <= 0xf7)
            more = 3, cp = b & 0x07, lo = 0x10000, hi = 0x10ffff;
        else
            return 1;
        for (; more > 0 && i < n; more--, i++) {
            if ((s[i] & 0xc0) != 0x80)
                return 1;
            cp = cp << 6 | (s[i] & 0x3f);
        }
        {
            /* The code points this character can still become: [first, last]. */
            uint32_t first = cp << (6 * more), last = first + ((1u << (6 * more)) - 1);

            if (last < lo || first > hi)
                return 1;
            if (first < lo)
                first = lo;
            if (last > hi)
                last = hi;
            if (first >= 0xd800 && last <= 0xdfff)
                return 1; /* surrogates only */
            if (more > 0)
                return 2;
        }
    }
    return 0;
}

static int dfa_verdict(uint32_t state)
{
    return state == WS_UTF8_ACCEPT ? 0 : state == WS_UTF8_REJECT ? 1 : 2;
}

/* The automaton against the reference on s, and on every split of s in two calls. */
static void check_utf8(const uint8_t *s, size_t n)
{
    int want = ref_utf8(s, n);

    CHECK_EQ_INT(dfa_verdict(ws_utf8_validate(WS_UTF8_ACCEPT, s, n)), want);
    for (size_t k = 0; k <= n; k++) {
        uint32_t st = ws_utf8_validate(WS_UTF8_ACCEPT, s, k);

        CHECK_EQ_INT(dfa_verdict(ws_utf8_validate(st, s + k, n - k)), want);
    }
}

TEST(utf8_every_one_and_two_byte_string)
{
    /* Exhaustive over two bytes: pins every byte's class (each of the constrained second
     * bytes after E0, ED, F0, F4 tells the tail classes apart) and every lead. */
    for (unsigned a = 0; a < 256; a++) {
        uint8_t one[1] = { (uint8_t)a };

        TEST_CONTEXT("%02x", a);
        check_utf8(one, 1);
        for (unsigned b = 0; b < 256; b++) {
            uint8_t two[2] = { (uint8_t)a, (uint8_t)b };

            TEST_CONTEXT("%02x %02x", a, b);
            CHECK_EQ_INT(dfa_verdict(ws_utf8_validate(WS_UTF8_ACCEPT, two, 2)), ref_utf8(two, 2));
        }
    }
}

TEST(utf8_boundary_bytes_up_to_four)
{
    /* Three and four bytes from the edges of every class: 24^4 strings. */
    static const uint8_t edge[] = { 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                    0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed,
                                    0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff };
    const size_t ne = sizeof(edge);

    for (size_t a = 0; a < ne; a++)
        for (size_t b = 0; b < ne; b++)
            for (size_t c = 0; c < ne; c++)
                for (size_t d = 0; d < ne; d++) {
                    uint8_t s[4] = { edge[a], edge[b], edge[c], edge[d] };

                    TEST_CONTEXT("%02x %02x %02x %02x", s[0], s[1], s[2], s[3]);
                    CHECK_EQ_INT(dfa_verdict(ws_utf8_validate(WS_UTF8_ACCEPT, s, 3)),
                                 ref_utf8(s, 3));
                    CHECK_EQ_INT(dfa_verdict(ws_utf8_validate(WS_UTF8_ACCEPT, s, 4)),
                                 ref_utf8(s, 4));
                }
}

static size_t encode_utf8(uint8_t *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

TEST(utf8_every_code_point)
{
    /* Every scalar value is accepted; every surrogate, encoded as if it were one, is refused at
     * its second byte; and so is everything past U+10FFFF up to what 4 bytes can hold. */
    unsigned bad = 0;

    for (uint32_t cp = 0; cp <= 0x1fffff; cp++) {
        uint8_t s[4];
        size_t n = encode_utf8(s, cp), rejected_from;
        int surrogate = cp >= 0xd800 && cp <= 0xdfff;

        /* The prefix length from which the bytes are refused (n + 1: never). F5-F7 lead the
         * code points from U+140000: refused at once; the surrogates' ED and U+110000's F4 are
         * fine leads, refused at the second byte. */
        rejected_from = cp >= 0x140000 ? 1 : surrogate || cp > 0x10ffff ? 2 : n + 1;
        for (size_t k = 1; k <= n; k++) {
            uint32_t st = ws_utf8_validate(WS_UTF8_ACCEPT, s, k);
            int ok = k >= rejected_from ? st == WS_UTF8_REJECT
                     : k == n           ? st == WS_UTF8_ACCEPT
                                        : st != WS_UTF8_REJECT && st != WS_UTF8_ACCEPT;

            if (!ok && bad++ < 5) {
                TEST_CONTEXT("U+%04X, %zu bytes of %zu: state %u", (unsigned)cp, k, n,
                             (unsigned)st);
                CHECK(ok);
            }
        }
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(utf8_rejects_at_the_first_impossible_byte)
{
    static const struct {
        const char *s;
        size_t ok_prefix; /* the longest prefix still accepted as a possible start */
    } cases[] = {
        { "\xc0\x80", 0 },           /* overlong NUL: C0 never starts anything */
        { "\xc1\xbf", 0 },           /* overlong 2-byte */
        { "\xf5\x80\x80\x80", 0 },   /* would be past U+10FFFF */
        { "\xff", 0 },               /* never in UTF-8 */
        { "\x80", 0 },               /* a tail with no lead */
        { "\xe0\x80\x80", 1 },       /* overlong 3-byte: E0 needs A0-BF */
        { "\xe0\x9f\xbf", 1 },       /* overlong U+07FF */
        { "\xed\xa0\x80", 1 },       /* U+D800, a surrogate */
        { "\xed\xbf\xbf", 1 },       /* U+DFFF */
        { "\xf0\x80\x80\x80", 1 },   /* overlong 4-byte */
        { "\xf0\x8f\xbf\xbf", 1 },   /* overlong U+FFFF */
        { "\xf4\x90\x80\x80", 1 },   /* U+110000 */
        { "\xc3\x28", 1 },           /* a lead, then ASCII */
        { "\xe2\x82\x28", 2 },       /* 3-byte cut by ASCII */
        { "\xf0\x9f\x98\x28", 3 },   /* 4-byte cut by ASCII */
        { "ab\xc3\xa9\xc3\xc3", 5 }, /* a lead where a tail must be */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const uint8_t *s = (const uint8_t *)cases[i].s;
        size_t n = strlen(cases[i].s);

        TEST_CONTEXT("case %zu", i);
        for (size_t k = 0; k <= n; k++)
            CHECK_EQ_INT(ws_utf8_validate(WS_UTF8_ACCEPT, s, k) == WS_UTF8_REJECT,
                         k > cases[i].ok_prefix);
    }
}

TEST(utf8_ascii_fast_path_at_every_alignment)
{
    /* Runs of ASCII of every length before a multi-byte character or a bad byte, from every
     * starting alignment: the 8-byte skip must stop at the right byte. */
    static const char *tails[] = { "\xc3\xa9", "\xc0", "\xe2\x82", "\xf0\x9f\x98\x80!", "\x80" };
    uint8_t s[64];

    for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++)
        for (size_t align = 0; align < 8; align++)
            for (size_t run = 0; run < 40; run++) {
                size_t tl = strlen(tails[t]), n = run + tl + 3;
                uint8_t *buf;

                memset(s, 'a', sizeof(s));
                memcpy(s + align + run, tails[t], tl);
                buf = guarded_copy(s, align + n);
                TEST_CONTEXT("tail %zu, start %zu, run %zu", t, align, run);
                check_utf8(buf + align, n);
                check_utf8(buf + align, run + tl);
                guarded_free(buf, align + n);
            }
}

TEST(utf8_state_outside_the_automaton_is_refused)
{
    CHECK_EQ_INT(ws_utf8_validate(1000, (const uint8_t *)"a", 1), WS_UTF8_REJECT);
    CHECK_EQ_INT(ws_utf8_validate(WS_UTF8_REJECT, (const uint8_t *)"a", 1), WS_UTF8_REJECT);
    CHECK_EQ_INT(ws_utf8_validate(WS_UTF8_REJECT, NULL, 0), WS_UTF8_REJECT);
    CHECK_EQ_INT(ws_utf8_validate(WS_UTF8_ACCEPT, NULL, 0), WS_UTF8_ACCEPT);
}

/*
 * A text message of the bytes s[0..n) sent in fragments cut at cuts[] (ascending), with a
 * ping between every two; returns the index of the fragment that failed (nfrag on success)
 * and its status in *status.
 */
static size_t send_text(const uint8_t *s, size_t n, const size_t *cuts, size_t ncuts, int *status)
{
    static uint8_t frame[300];
    struct ws_parser p;
    size_t from = 0;

    ws_parser_init(&p, 1024);
    *status = 1;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n, len;
        struct ws_frame f;
        int r;

        len = cframe(frame, i ? WS_OP_CONTINUATION : WS_OP_TEXT, i == ncuts, s + from, to - from);
        r = parse_checked(&p, frame, len, &f);
        if (r <= 0) {
            *status = r;
            return i;
        }
        CHECK_EQ_MEM(got, got_len, s + from, to - from);
        if (i < ncuts) {
            len = cframe(frame, WS_OP_PING, 1, "", 0);
            CHECK_EQ_INT(parse_checked(&p, frame, len, &f), len);
        }
        from = to;
    }
    return ncuts + 1;
}

TEST(utf8_text_split_across_fragments_at_every_position)
{
    /* 1, 2, 3 and 4-byte characters: "a é € 😀 z". */
    static const uint8_t text[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    const size_t n = sizeof(text) - 1;
    int status;

    for (size_t i = 0; i <= n; i++)
        for (size_t j = i; j <= n; j++) {
            size_t cuts[2] = { i, j };

            TEST_CONTEXT("cuts at %zu and %zu", i, j);
            CHECK_EQ_INT(send_text(text, n, cuts, 2, &status), 3);
            CHECK_EQ_INT(status, 1);
        }
}

TEST(utf8_bad_text_fails_in_the_fragment_holding_the_bad_byte)
{
    static const struct {
        const char *s;
        size_t bad_at; /* the byte that makes the text invalid; its length when cut at fin */
    } cases[] = {
        { "ok \xc0\x80 then", 3 },
        { "ok \xed\xa0\x80 surrogate", 4 },
        { "ok \xf4\x90\x80\x80 too high", 4 },
        { "ok \xe0\x80\x80 overlong", 4 },
        { "ok \xf0\x8f\xbf\xbf overlong", 4 },
        { "cut at fin \xe2\x82", 13 },
        { "cut at fin \xf0\x9f\x98", 14 },
        { "cut at fin \xc3", 12 },
    };

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const uint8_t *s = (const uint8_t *)cases[c].s;
        size_t n = strlen(cases[c].s), at = cases[c].bad_at;

        for (size_t i = 0; i <= n; i++) {
            size_t cut[1] = { i }, failed;
            int status;

            TEST_CONTEXT("case %zu, cut at %zu", c, i);
            failed = send_text(s, n, cut, 1, &status);
            CHECK_EQ_INT(status, WS_E_UTF8);
            /* The first fragment holds bytes [0, i): it fails when it holds the bad byte. */
            CHECK_EQ_INT(failed, at < i ? 0 : 1);
        }
        CHECK_EQ_INT(ws_status_close_code(WS_E_UTF8), 1007);
    }
}

TEST(binary_messages_are_not_utf8_checked)
{
    static const uint8_t junk[] = { 0xc0, 0xff, 0xed, 0xa0, 0x80, 0xf4 };
    static uint8_t frame[32];
    struct ws_parser p;
    size_t len;

    ws_parser_init(&p, 1024);
    len = cframe(frame, WS_OP_BINARY, 1, junk, sizeof(junk));
    expect_frame(&p, frame, len, WS_OP_BINARY, WS_OP_BINARY, 1, junk, sizeof(junk));
    len = cframe(frame, WS_OP_PING, 1, junk, sizeof(junk));
    expect_frame(&p, frame, len, WS_OP_PING, WS_OP_PING, 1, junk, sizeof(junk));
    len = cframe(frame, WS_OP_TEXT, 1, junk, sizeof(junk));
    CHECK_EQ_INT(status_of(frame, len, 1024), WS_E_UTF8);
}

/* ---- close payloads ---- */

TEST(close_code_validity)
{
    for (unsigned c = 0; c < 70000; c++) {
        int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);

        TEST_CONTEXT("code %u", c);
        CHECK_EQ_INT(ws_close_code_valid(c), want);
    }
    /* Named: the reserved ones and 1012-1014 (IANA-registered, accepted). */
    CHECK(!ws_close_code_valid(1004));
    CHECK(!ws_close_code_valid(1005));
    CHECK(!ws_close_code_valid(1006));
    CHECK(!ws_close_code_valid(1015));
    CHECK(ws_close_code_valid(1012) && ws_close_code_valid(1013) && ws_close_code_valid(1014));
}

TEST(close_payloads)
{
    static const struct {
        const char *bytes;
        size_t len;
        int status;
        unsigned code;
        const char *reason;
    } cases[] = {
        // clang-format off
        { "", 0, 0, 1005, "" },
        { "\x03", 1, WS_E_CLOSE_PAYLOAD, 1005, "" },
        { "\x03\xe8", 2, 0, 1000, "" },
        { "\x03\xe8" "bye", 5, 0, 1000, "bye" },
        { "\x03\xe9" "\xc3\xa9t\xc3\xa9", 7, 0, 1001, "\xc3\xa9t\xc3\xa9" },
        { "\x03\xf3", 2, 0, 1011, "" },
        { "\x03\xf4", 2, 0, 1012, "" },
        { "\x03\xf6", 2, 0, 1014, "" },
        { "\x0f\xa0", 2, 0, 4000, "" },
        { "\x13\x87", 2, 0, 4999, "" },
        { "\x0b\xb8", 2, 0, 3000, "" },
        { "\x03\xe7", 2, WS_E_CLOSE_PAYLOAD, 999, "" },
        { "\x00\x00", 2, WS_E_CLOSE_PAYLOAD, 0, "" },
        { "\x03\xec", 2, WS_E_CLOSE_PAYLOAD, 1004, "" },
        { "\x03\xed", 2, WS_E_CLOSE_PAYLOAD, 1005, "" },
        { "\x03\xee", 2, WS_E_CLOSE_PAYLOAD, 1006, "" },
        { "\x03\xf7", 2, WS_E_CLOSE_PAYLOAD, 1015, "" },
        { "\x03\xf8", 2, WS_E_CLOSE_PAYLOAD, 1016, "" },
        { "\x0b\xb7", 2, WS_E_CLOSE_PAYLOAD, 2999, "" },
        { "\x13\x88", 2, WS_E_CLOSE_PAYLOAD, 5000, "" },
        { "\xff\xff", 2, WS_E_CLOSE_PAYLOAD, 65535, "" },
        { "\x13\x88" "\xc0", 3, WS_E_CLOSE_PAYLOAD, 5000, "" }, /* the code is judged first */
        { "\x03\xe8" "\xc0", 3, WS_E_UTF8, 1000, "" },
        { "\x03\xe8" "ok\xed\xa0\x80", 7, WS_E_UTF8, 1000, "" },
        { "\x03\xe8" "cut\xe2\x82", 7, WS_E_UTF8, 1000, "" },
        // clang-format on
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const uint8_t *in = guarded_copy(cases[i].bytes, cases[i].len);
        uint16_t code = 0;
        const uint8_t *reason = NULL;
        size_t reason_len = 99;
        static uint8_t frame[200];
        size_t len;

        TEST_CONTEXT("case %zu", i);
        CHECK_EQ_INT(ws_close_payload(in, cases[i].len, &code, &reason, &reason_len),
                     cases[i].status);
        CHECK_EQ_INT(code, cases[i].code);
        if (cases[i].status == 0) {
            CHECK_EQ_MEM(reason, reason_len, cases[i].reason, strlen(cases[i].reason));
            CHECK(reason_len == 0 || reason == in + 2);
        } else {
            CHECK_EQ_INT(reason_len, 0);
        }
        guarded_free(in, cases[i].len);

        /* The same payload in a close frame: the parser judges it the same way. */
        len = cframe(frame, WS_OP_CLOSE, 1, cases[i].bytes, cases[i].len);
        if (cases[i].status == 0) {
            struct ws_parser p;

            ws_parser_init(&p, 0);
            expect_frame(&p, frame, len, WS_OP_CLOSE, WS_OP_CLOSE, 1, cases[i].bytes, cases[i].len);
        } else {
            CHECK_EQ_INT(status_of(frame, len, 1024), cases[i].status);
            CHECK_EQ_INT(ws_status_close_code(cases[i].status),
                         cases[i].status == WS_E_UTF8 ? 1007 : 1002);
        }
    }
}

TEST(close_frame_of_125_bytes)
{
    static uint8_t payload[125], frame[140];
    struct ws_parser p;
    size_t len;

    memset(payload, 'r', sizeof(payload));
    payload[0] = 0x03;
    payload[1] = 0xe8;
    len = cframe(frame, WS_OP_CLOSE, 1, payload, 125);
    ws_parser_init(&p, 16);
    expect_frame(&p, frame, len, WS_OP_CLOSE, WS_OP_CLOSE, 1, payload, 125);
}

/* ---- the encoders ---- */

TEST(encoder_round_trip)
{
    static const uint64_t lens[] = { 0, 1, 125, 126, 65535, 65536, (1ull << 32) + 1 };
    static const size_t server_size[] = { 2, 2, 2, 4, 4, 10, 10 };
    static uint8_t frame[65536 + WS_MAX_HEADER];
    static const uint8_t mask[4] = { 0xde, 0xad, 0xbe, 0xef };

    fill_pattern();
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (unsigned op = 0; op <= WS_OP_PONG; op++)
            for (int fin = 0; fin < 2; fin++) {
                uint8_t sh[WS_MAX_HEADER], ch[WS_MAX_HEADER], want[WS_MAX_HEADER];
                size_t sn = ws_frame_header(sh, op, fin, lens[i]);
                size_t cn = ws_client_frame_header(ch, op, fin, lens[i], mask);
                size_t wn = encode(want, b0_of(op, fin), 1, LEN_SHORTEST, lens[i], mask, NULL);
                struct ws_parser p;
                struct ws_frame f;
                int r;

                if (op >= 3 && op <= 7)
                    continue;
                TEST_CONTEXT("length %llu, opcode %u, fin %d", (unsigned long long)lens[i], op,
                             fin);
                /* The server header is the client's without MASK and mask: one encoder. */
                CHECK_EQ_INT(sn, server_size[i]);
                CHECK_EQ_INT(cn, sn + 4);
                CHECK_EQ_MEM(ch, cn, want, wn);
                sh[1] |= 0x80;
                CHECK_EQ_MEM(sh, sn, ch, sn);
                CHECK_EQ_MEM(ch + sn, 4, mask, 4);

                /* Parsed back: an open message for continuations, a limit above the length. */
                ws_parser_init(&p, UINT64_MAX);
                if (op == WS_OP_CONTINUATION)
                    p.msg_opcode = WS_OP_BINARY; /* an open message to continue */
                if (lens[i] > 65536) {
                    /* Header only: the length comes back; a frame over INT_MAX is too big. */
                    r = parse_checked(&p, ch, cn, &f);
                    CHECK_EQ_INT(f.opcode, op);
                    CHECK_EQ_INT(f.fin, fin);
                    if (op >= WS_OP_CLOSE) {
                        CHECK_EQ_INT(r, fin ? WS_E_CONTROL_TOO_BIG : WS_E_CONTROL_FRAGMENTED);
                        continue;
                    }
                    CHECK_EQ_INT(r, WS_E_TOO_BIG);
                    CHECK_EQ_INT(f.header_len, 14);
                    CHECK_EQ_INT(f.payload_len, lens[i]);
                    continue;
                }
                memcpy(frame, ch, cn);
                memcpy(frame + cn, pattern_payload, (size_t)lens[i]);
                ws_mask(frame + cn, (size_t)lens[i], mask, 0);
                r = parse_checked(&p, frame, cn + (size_t)lens[i], &f);
                if (op >= WS_OP_CLOSE && (!fin || lens[i] > 125)) {
                    CHECK(r == WS_E_CONTROL_FRAGMENTED || r == WS_E_CONTROL_TOO_BIG);
                    continue;
                }
                if (op == WS_OP_CLOSE && lens[i] > 0) {
                    CHECK(r < 0); /* the pattern is no valid close payload */
                    continue;
                }
                if (op == WS_OP_TEXT) {
                    /* The pattern starts with ASCII and goes on with bytes that are not. */
                    int v = ref_utf8(pattern_payload, (size_t)lens[i]);

                    if (v == 1 || (v == 2 && fin)) {
                        CHECK_EQ_INT(r, WS_E_UTF8);
                        continue;
                    }
                }
                if (!CHECK_EQ_INT(r, cn + lens[i]))
                    continue;
                CHECK_EQ_INT(f.opcode, op);
                CHECK_EQ_INT(f.fin, fin);
                CHECK_EQ_INT(f.header_len, cn);
                CHECK_EQ_MEM(got, got_len, pattern_payload, (size_t)lens[i]);
            }
}

TEST(encoder_opcode_is_masked_to_four_bits)
{
    uint8_t h[WS_MAX_HEADER];

    CHECK_EQ_INT(ws_frame_header(h, 0xf1, 1, 0), 2);
    CHECK_EQ_INT(h[0], 0x81);
    CHECK_EQ_INT(ws_frame_header(h, WS_OP_TEXT, 42, 0), 2); /* any non-zero fin */
    CHECK_EQ_INT(h[0], 0x81);
}

/* ---- the handshake key ---- */

TEST(key_valid)
{
    static const char *good[] = {
        "dGhlIHNhbXBsZSBub25jZQ==", /* RFC 6455 1.3 */
        "AAAAAAAAAAAAAAAAAAAAAA==",    "/////////////////////w==",
        "+/+/+/+/+/+/+/+/+/+/+Q==",    " dGhlIHNhbXBsZSBub25jZQ==",
        "dGhlIHNhbXBsZSBub25jZQ==\t ", "\t \tdGhlIHNhbXBsZSBub25jZQ== \t",
        "dGhlIHNhbXBsZSBub25jZR==", /* pad bits set: still 16 bytes, accepted */
    };
    static const char *bad[] = {
        "",
        "   ",
        "dGhlIHNhbXBsZSBub25jZQ=",      /* one '=' short */
        "dGhlIHNhbXBsZSBub25jZQ",       /* no padding */
        "dGhlIHNhbXBsZSBub25jZQ===",    /* one '=' too many */
        "dGhlIHNhbXBsZSBub25jZQQ=",     /* 17 bytes' worth */
        "dGhlIHNhbXBsZSBub25jZQQQ",     /* 18 bytes, no padding */
        "dGhlIHNhbXBsZSBub25jZ===",     /* padding too early */
        "dGhlIHNhbXBsZSBub25j=Q==",     /* '=' inside */
        "dGhlIHNhbXBsZSBub25jZQ==dGhl", /* trailing data */
        "dGhlIHNhbXBsZSBub25jZQ== x",   /* trailing junk after whitespace */
        "dGhlIHNhbXBsZSB ub25jZQ==",    /* inner space */
        "dGhlIHNhbXBsZSBub25jZQ-=",     /* base64url */
        "dGhlIHNhbXBsZSBub25-ZQ==",     /* base64url alphabet */
        "dGhlIHNhbXBsZSBub25_ZQ==",
        "dGhlIHNhbXBsZSBub25jZQ==\r", /* CR is no optional whitespace */
        "\ndGhlIHNhbXBsZSBub25jZQ==",
        "dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==",
        "dGhlIHNhbXBsZSBub25jZQ..",
        "ZGdobGlobmhieHNjZWJ1b2puWlE=", /* 20 bytes */
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        size_t n = strlen(good[i]);
        char *buf = guarded_copy(good[i], n);

        TEST_CONTEXT("good %zu", i);
        CHECK_EQ_INT(ws_key_valid(buf, n), 1);
        guarded_free(buf, n);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = strlen(bad[i]);
        char *buf = guarded_copy(bad[i], n);

        TEST_CONTEXT("bad %zu", i);
        CHECK_EQ_INT(ws_key_valid(buf, n), 0);
        guarded_free(buf, n);
    }
    CHECK_EQ_INT(ws_key_valid(NULL, 0), 0);
    /* A NUL inside, and the key cut by the length given. */
    CHECK_EQ_INT(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=\0", 24), 0);
    CHECK_EQ_INT(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 23), 0);
}

TEST(key_every_byte_at_every_position)
{
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";

    for (size_t pos = 0; pos < 24; pos++)
        for (unsigned c = 0; c < 256; c++) {
            char k[24];
            int b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '+' || c == '/';

            memcpy(k, key, 24);
            k[pos] = (char)c;
            TEST_CONTEXT("byte %02x at %zu", c, pos);
            CHECK_EQ_INT(ws_key_valid(k, 24), pos < 22 ? b64 : c == '=');
        }
}

/* ---- status names ---- */

TEST(strerror_and_close_codes)
{
    static const int statuses[] = {
        WS_E_UNMASKED,        WS_E_RSV,          WS_E_OPCODE,        WS_E_CONTROL_FRAGMENTED,
        WS_E_CONTROL_TOO_BIG, WS_E_CONTINUATION, WS_E_INTERLEAVED,   WS_E_LENGTH,
        WS_E_TOO_BIG,         WS_E_UTF8,         WS_E_CLOSE_PAYLOAD,
    };
    const size_t n = sizeof(statuses) / sizeof(statuses[0]);

    for (size_t i = 0; i < n; i++) {
        const char *s = ws_strerror(statuses[i]);
        unsigned code = ws_status_close_code(statuses[i]);

        TEST_CONTEXT("status %d", statuses[i]);
        CHECK_EQ_INT(statuses[i], -(int)i - 1); /* every code from -1 down, none skipped */
        CHECK(s[0] >= 'a' && s[0] <= 'z');
        CHECK(strlen(s) < 60 && s[strlen(s) - 1] != '.' && !strchr(s, '\n'));
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(s, ws_strerror(statuses[j])) != 0);
        CHECK(strcmp(s, ws_strerror(-100)) != 0);
        CHECK_EQ_INT(code, statuses[i] == WS_E_TOO_BIG ? WS_CLOSE_TOO_BIG
                           : statuses[i] == WS_E_UTF8  ? WS_CLOSE_BAD_DATA
                                                       : WS_CLOSE_PROTOCOL_ERROR);
        CHECK(ws_close_code_valid(code));
    }
    CHECK_EQ_STR(ws_strerror(WS_INCOMPLETE), "incomplete frame");
    CHECK_EQ_STR(ws_strerror(-(int)n - 1), "unknown error");
    CHECK_EQ_STR(ws_strerror(42), "no error");
    CHECK_EQ_INT(ws_status_close_code(-100), 1002);
    CHECK_EQ_INT(ws_status_close_code(42), 1000);
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
