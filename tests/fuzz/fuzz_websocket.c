/*
 * libFuzzer harness for proto/websocket.c.
 *
 * Input: max_message:u16le (0xffff stands for UINT64_MAX, no limit but the parser's own), then
 * a stream of client frames. The stream is parsed as a server reads it: parse, drop the bytes
 * consumed, go on until WS_INCOMPLETE or an error.
 *
 * Every result is checked against a reference parser written differently from the real one
 * (indices into a const buffer, a 128-bit sum for the size limit, payloads unmasked into a copy,
 * a close-code list, and UTF-8 judged by code point ranges over the WHOLE message so far rather
 * than by an incremental automaton): status, need, every field of the frame, the unmasked
 * payload and the message state after it. Then, for each frame:
 *   - it is parsed again from an exactly-sized heap copy of itself (ASan sees a read past it),
 *     and some of its prefixes from exactly-sized copies: WS_INCOMPLETE or the same error,
 *     state untouched;
 *   - a frame returned is encoded again with ws_client_frame_header() and ws_mask() and parsed
 *     back to the same frame and state; when it came with the shortest length form, the bytes
 *     are the very bytes received; ws_frame_header() is the same header without the mask;
 *   - its payload unmasked in two pieces at their offsets equals the payload unmasked at once,
 *     a text payload validated in two pieces equals validated at once, and a close payload
 *     gives ws_close_payload() the answer the parser gave.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "websocket.h"

#define INVARIANT(c)                                                                               \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_STREAM (1 << 20)

/* ---- the reference ---- */

/* 0 valid and complete, 1 invalid (nothing appended can fix it), 2 valid but cut inside a
 * character: from the range of code points each character can still become. */
static int ref_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t b = s[i++];
        uint32_t cp, lo, hi, first, last;
        unsigned more;

        if (b < 0x80)
            continue;
        if (b >= 0xc0 && b <= 0xdf) {
            more = 1, cp = b & 0x1f, lo = 0x80, hi = 0x7ff;
        } else if (b >= 0xe0 && b <= 0xef) {
            more = 2, cp = b & 0x0f, lo = 0x800, hi = 0xffff;
        } else if (b >= 0xf0 && b <= 0xf7) {
            more = 3, cp = b & 0x07, lo = 0x10000, hi = 0x10ffff;
        } else {
            return 1;
        }
        for (; more > 0 && i < n; more--, i++) {
            if ((s[i] & 0xc0) != 0x80)
                return 1;
            cp = cp << 6 | (s[i] & 0x3f);
        }
        first = cp << (6 * more);
        last = first + ((1u << (6 * more)) - 1);
        if (last < lo || first > hi)
            return 1;
        first = first < lo ? lo : first;
        last = last > hi ? hi : last;
        if (first >= 0xd800 && last <= 0xdfff)
            return 1;
        if (more > 0)
            return 2;
    }
    return 0;
}

static int ref_close_code_ok(unsigned code)
{
    static const unsigned listed[] = { 1000, 1001, 1002, 1003, 1007, 1008,
                                       1009, 1010, 1011, 1012, 1013, 1014 };

    for (size_t i = 0; i < sizeof(listed) / sizeof(listed[0]); i++)
        if (code == listed[i])
            return 1;
    return code / 1000 == 3 || code / 1000 == 4;
}

struct ref {
    uint64_t max;
    unsigned open;    /* 0, or the open message's opcode */
    uint64_t msg_len; /* its bytes so far */
    size_t text_len;  /* the open text message's bytes so far, kept whole in text[] */
    uint8_t text[MAX_STREAM];
};

struct ref_frame {
    unsigned opcode, msg_opcode, fin, header_len;
    uint64_t payload_len, need;
    size_t decided; /* on an error: the bytes it was decided with */
};

/* One frame at b[0..n): the status; the payload unmasked into payload[] when complete. */
static int ref_parse(struct ref *s, const uint8_t *b, size_t n, struct ref_frame *f,
                     uint8_t *payload)
{
    unsigned op, ctl, l7, extbytes;
    uint64_t plen = 0, prior;

    memset(f, 0, sizeof(*f));
    if (n < 1) {
        f->need = 2;
        return WS_INCOMPLETE;
    }
    f->decided = 1;
    op = b[0] % 16;
    ctl = op >= 8;
    f->opcode = op;
    f->fin = b[0] / 128;
    f->msg_opcode = op == 0 ? s->open : op;
    if ((b[0] / 16) % 8 != 0)
        return WS_E_RSV;
    if ((op >= 3 && op <= 7) || op >= 11)
        return WS_E_OPCODE;
    if (ctl && !f->fin)
        return WS_E_CONTROL_FRAGMENTED;
    if (op == 0 && s->open == 0)
        return WS_E_CONTINUATION;
    if ((op == 1 || op == 2) && s->open != 0)
        return WS_E_INTERLEAVED;
    if (n < 2) {
        f->need = 2;
        return WS_INCOMPLETE;
    }
    f->decided = 2;
    l7 = b[1] % 128;
    extbytes = l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
    f->header_len = 2 + extbytes + (b[1] >= 128 ? 4 : 0);
    if (b[1] < 128)
        return WS_E_UNMASKED;
    if (ctl && l7 >= 126)
        return WS_E_CONTROL_TOO_BIG;
    if (n < 2 + extbytes) {
        f->need = f->header_len;
        return WS_INCOMPLETE;
    }
    f->decided = 2 + extbytes;
    if (extbytes == 0)
        plen = l7;
    for (unsigned i = 0; i < extbytes; i++)
        plen = plen * 256 + b[2 + i];
    f->payload_len = plen;
    if (plen >= (1ull << 63))
        return WS_E_LENGTH;
    prior = op == 0 ? s->msg_len : 0;
    if (!ctl && (unsigned __int128)prior + plen > s->max)
        return WS_E_TOO_BIG;
    if (f->header_len + plen > (uint64_t)INT_MAX)
        return WS_E_TOO_BIG;
    if (n < f->header_len || n - f->header_len < plen) {
        f->need = f->header_len + plen;
        return WS_INCOMPLETE;
    }
    f->decided = f->header_len + plen;
    for (size_t i = 0; i < plen; i++)
        payload[i] = b[f->header_len + i] ^ b[f->header_len - 4 + i % 4];

    if (op == WS_OP_CLOSE && plen == 1)
        return WS_E_CLOSE_PAYLOAD;
    if (op == WS_OP_CLOSE && plen >= 2 && !ref_close_code_ok(payload[0] * 256u + payload[1]))
        return WS_E_CLOSE_PAYLOAD;
    if (op == WS_OP_CLOSE && plen >= 2 && ref_utf8(payload + 2, plen - 2) != 0)
        return WS_E_UTF8;
    if (ctl)
        return (int)(f->header_len + plen);

    if (f->msg_opcode == WS_OP_TEXT) {
        size_t have = op == 0 ? s->text_len : 0;
        int v;

        memcpy(s->text + have, payload, plen); /* past text_len: not committed yet */
        v = ref_utf8(s->text, have + plen);
        if (v == 1 || (v == 2 && f->fin))
            return WS_E_UTF8;
        s->text_len = f->fin ? 0 : have + plen;
    }
    s->open = f->fin ? 0 : f->msg_opcode;
    s->msg_len = f->fin ? 0 : prior + plen;
    return (int)(f->header_len + plen);
}

/* ---- helpers ---- */

static int parser_eq(const struct ws_parser *a, const struct ws_parser *b)
{
    return a->max_message == b->max_message && a->msg_opcode == b->msg_opcode &&
           a->msg_len == b->msg_len && a->utf8_state == b->utf8_state;
}

/* Parses an exactly-sized heap copy of buf[0..n) with a copy of p. */
static int parse_copy(const struct ws_parser *p, const uint8_t *buf, size_t n,
                      struct ws_parser *after, struct ws_frame *f)
{
    uint8_t *copy = malloc(n ? n : 1);
    int r;

    INVARIANT(copy != NULL);
    memcpy(copy, buf, n);
    *after = *p;
    r = ws_parse_frame(after, copy, n, f);
    free(copy);
    f->payload = NULL; /* freed */
    return r;
}

/* Prefixes of the frame raw[0..n) whose full result is `full`: INCOMPLETE with a need above
 * the prefix, or full itself when it is an error; the state never moves. */
static void check_prefix(const struct ws_parser *p, const uint8_t *raw, size_t k, int full,
                         uint64_t frame_size)
{
    struct ws_parser after;
    struct ws_frame f;
    int r = parse_copy(p, raw, k, &after, &f);

    INVARIANT(parser_eq(&after, p));
    if (r == WS_INCOMPLETE) {
        INVARIANT(f.need > k);
        INVARIANT(full < 0 || f.need <= frame_size);
    } else {
        INVARIANT(full < 0 && r == full);
    }
}

/* A frame returned, encoded again and parsed back from the state before it. */
static void check_reencode(const struct ws_parser *before, const struct ws_parser *after_real,
                           const struct ws_frame *f, const uint8_t *raw, const uint8_t *payload)
{
    static uint8_t frame[MAX_STREAM + WS_MAX_HEADER];
    uint8_t mask[4], server[WS_MAX_HEADER];
    struct ws_parser after;
    struct ws_frame g;
    size_t hn, sn;
    int r;

    memcpy(mask, raw + f->header_len - 4, 4);
    hn = ws_client_frame_header(frame, f->opcode, f->fin, f->payload_len, mask);
    memcpy(frame + hn, payload, (size_t)f->payload_len);
    ws_mask(frame + hn, (size_t)f->payload_len, mask, 0);
    r = parse_copy(before, frame, hn + (size_t)f->payload_len, &after, &g);
    INVARIANT(r == (int)(hn + f->payload_len));
    INVARIANT(g.opcode == f->opcode && g.msg_opcode == f->msg_opcode && g.fin == f->fin);
    INVARIANT(g.header_len == hn && g.payload_len == f->payload_len);
    INVARIANT(parser_eq(&after, after_real));
    if (hn == f->header_len) /* the shortest form was used: the same bytes */
        INVARIANT(memcmp(frame, raw, hn + (size_t)f->payload_len) == 0);
    else
        INVARIANT(hn < f->header_len);

    sn = ws_frame_header(server, f->opcode, f->fin, f->payload_len);
    INVARIANT(sn + 4 == hn);
    server[1] |= 0x80;
    INVARIANT(memcmp(server, frame, sn) == 0);
}

/* ---- the harness ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ref ref;
    static uint8_t ref_payload[MAX_STREAM], piecewise[MAX_STREAM];
    struct ws_parser p;
    uint64_t max;
    unsigned max16;
    uint8_t *buf, *raw;
    size_t len, off = 0;

    if (size < 2 || size - 2 > MAX_STREAM)
        return 0;
    max16 = data[0] | (unsigned)data[1] << 8;
    max = max16 == 0xffff ? UINT64_MAX : max16;
    len = size - 2;
    raw = (uint8_t *)data + 2; /* read only: the pristine frames */
    buf = malloc(len ? len : 1);
    INVARIANT(buf != NULL);
    memcpy(buf, raw, len);

    ws_parser_init(&p, max);
    INVARIANT(p.max_message == max && p.msg_opcode == 0 && p.msg_len == 0 && p.utf8_state == 0);
    ref.max = max;
    ref.open = 0;
    ref.msg_len = 0;
    ref.text_len = 0;

    for (;;) {
        struct ws_parser before = p;
        struct ws_frame f;
        struct ref_frame rf;
        int r, want;

        r = ws_parse_frame(&p, buf + off, len - off, &f);
        want = ref_parse(&ref, raw + off, len - off, &rf, ref_payload);
        if (r != want) {
            fprintf(stderr, "at offset %zu: parser says %d (%s), reference says %d (%s)\n", off, r,
                    ws_strerror(r), want, ws_strerror(want));
            abort();
        }
        INVARIANT(ws_strerror(r) != NULL);
        INVARIANT(r > 0 || ws_status_close_code(r) == 1000 || ws_status_close_code(r) == 1002 ||
                  ws_status_close_code(r) == 1007 || ws_status_close_code(r) == 1009);
        INVARIANT(f.opcode == rf.opcode && f.fin == rf.fin && f.msg_opcode == rf.msg_opcode);
        INVARIANT(f.header_len == rf.header_len && f.payload_len == rf.payload_len);
        INVARIANT(f.need == rf.need);
        INVARIANT(r >= WS_E_CLOSE_PAYLOAD);

        /* The state, against the reference's. */
        INVARIANT(p.max_message == max);
        INVARIANT(p.msg_opcode == ref.open && p.msg_len == ref.msg_len);
        INVARIANT(p.msg_len <= max);
        INVARIANT(p.utf8_state != WS_UTF8_REJECT);
        INVARIANT((p.utf8_state == WS_UTF8_ACCEPT) ==
                  (ref.open != WS_OP_TEXT || ref_utf8(ref.text, ref.text_len) == 0));

        if (r <= 0) {
            INVARIANT(parser_eq(&p, &before));
            INVARIANT(f.payload == NULL);
            if (r == WS_INCOMPLETE) {
                INVARIANT(f.need > len - off);
                INVARIANT(memcmp(buf + off, raw + off, len - off) == 0); /* nothing written */
            }
            /* An error comes with the byte that decides it, not later, not earlier: a copy of
             * the bytes up to it gives the error, one byte less is still incomplete. */
            if (r < 0) {
                struct ws_parser after;
                struct ws_frame g;

                INVARIANT(rf.decided >= 1 && rf.decided <= len - off);
                INVARIANT(parse_copy(&before, raw + off, rf.decided, &after, &g) == r);
                INVARIANT(parser_eq(&after, &before));
                INVARIANT(parse_copy(&before, raw + off, rf.decided - 1, &after, &g) ==
                          WS_INCOMPLETE);
                INVARIANT(g.need > rf.decided - 1);
            }
            break;
        }

        /* A frame: inside the buffer, its payload where the header ends, unmasked as the
         * reference unmasked it, the bytes after it untouched. */
        INVARIANT((size_t)r <= len - off);
        INVARIANT((uint64_t)r == f.header_len + f.payload_len);
        INVARIANT(f.payload == buf + off + f.header_len);
        INVARIANT(f.need == 0);
        INVARIANT(memcmp(f.payload, ref_payload, (size_t)f.payload_len) == 0);
        INVARIANT(memcmp(buf + off + r, raw + off + r, len - off - (size_t)r) == 0);
        INVARIANT(memcmp(buf + off, raw + off, f.header_len) == 0);

        /* Alone, from an exactly-sized copy; and some prefixes. */
        {
            struct ws_parser after;
            struct ws_frame g;

            INVARIANT(parse_copy(&before, raw + off, (size_t)r, &after, &g) == r);
            INVARIANT(parser_eq(&after, &p));
            for (size_t k = 0; k < (size_t)r && k < 16; k++)
                check_prefix(&before, raw + off, k, r, (uint64_t)r);
            check_prefix(&before, raw + off, (size_t)r - 1, r, (uint64_t)r);
            check_prefix(&before, raw + off, (size_t)r / 2, r, (uint64_t)r);
        }

        check_reencode(&before, &p, &f, raw + off, ref_payload);

        /* Unmasking in two pieces at their offsets; validating in two pieces. */
        {
            size_t n = (size_t)f.payload_len, cut = n ? data[(off + n) % size] % (n + 1) : 0;
            const uint8_t *mask = raw + off + f.header_len - 4;

            memcpy(piecewise, raw + off + f.header_len, n);
            ws_mask(piecewise, cut, mask, 0);
            ws_mask(piecewise + cut, n - cut, mask, cut);
            INVARIANT(memcmp(piecewise, ref_payload, n) == 0);
            if (f.msg_opcode == WS_OP_TEXT) {
                uint32_t st = ws_utf8_validate(before.utf8_state, f.payload, cut);

                st = ws_utf8_validate(st, f.payload + cut, n - cut);
                INVARIANT(st == ws_utf8_validate(before.utf8_state, f.payload, n));
                INVARIANT(f.fin ? st == WS_UTF8_ACCEPT : st == p.utf8_state);
            }
        }
        if (f.opcode == WS_OP_CLOSE) {
            uint16_t code;
            const uint8_t *reason;
            size_t reason_len;

            INVARIANT(ws_close_payload(f.payload, (size_t)f.payload_len, &code, &reason,
                                       &reason_len) == 0);
            INVARIANT(f.payload_len == 0
                          ? code == WS_CLOSE_NO_STATUS && reason_len == 0
                          : code == (f.payload[0] << 8 | f.payload[1]) && reason == f.payload + 2 &&
                                reason_len == f.payload_len - 2);
            INVARIANT(f.payload_len == 0 || ws_close_code_valid(code));
        }
        off += (size_t)r;
    }
    free(buf);
    return 0;
}
