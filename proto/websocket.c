/*
 * RFC 6455 framing, server side: the frame parser (whole frames, unmasked in place), the UTF-8
 * validator it runs over text messages, close payloads, the frame header encoders and the
 * Sec-WebSocket-Key syntax check. No allocation, no Python, no state but struct ws_parser's.
 *
 * The parser decides every header error at the first byte that makes the frame bad, looking at
 * nothing after it: byte 0 (RSV, opcode, a fragmented control frame, the fragmentation
 * sequence), then byte 1 (MASK, a control frame's length), then the extended length (its top
 * bit, the size limits). So a prefix of a frame is either WS_INCOMPLETE or has the result of
 * the whole frame, and a peer announcing a 2 GB frame is refused on its 10th byte, not after
 * the server has buffered it. Payload checks (UTF-8, close codes) need the payload unmasked,
 * so they wait for the whole frame: the parser never unmasks, and so never writes, before the
 * frame is complete, which is what lets a WS_INCOMPLETE call change nothing at all.
 *
 * Lengths are compared with the bytes left (len - offset) before any index moves, so no read
 * or pointer goes past buf[len - 1]; 64-bit sums are written as subtractions that cannot wrap.
 */
#include "websocket.h"

#include <limits.h>
#include <string.h>

/* ---- byte order ---- */

/* Byte arithmetic rather than loads: the buffer has no alignment and the wire is big-endian
 * whatever the host is. */
static inline uint64_t read_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static inline void write_be(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = n; i-- > 0; v >>= 8)
        p[i] = (uint8_t)(v & 0xff);
}

/* ---- UTF-8 ---- */

/*
 * A deterministic automaton over byte classes, after Bjoern Hoehrmann's "Flexible and Economical
 * UTF-8 Decoder" (2008-2010): the idea of classes plus a state table is his, these tables and
 * their numbering are written here from RFC 3629's grammar (section 4):
 *
 *   UTF8-2 = %xC2-DF UTF8-tail
 *   UTF8-3 = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
 *            %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
 *   UTF8-4 = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) / %xF4 %x80-8F 2( UTF8-tail )
 *
 * Each state says what the next byte may be, so a byte that no valid text could continue with
 * (C0, F5, ED A0: a surrogate, F4 90: past U+10FFFF, E0 80: overlong) rejects on that byte.
 * Only validation is needed, so unlike Hoehrmann's decoder no code point is accumulated.
 */
enum {
    U_ACCEPT = WS_UTF8_ACCEPT, /* between characters */
    U_REJECT = WS_UTF8_REJECT, /* final */
    U_TAIL1,                   /* one UTF8-tail to go */
    U_TAIL2,                   /* two */
    U_TAIL3,                   /* three */
    U_E0,                      /* after E0: A0-BF, then one tail (no overlong 3-byte form) */
    U_ED,                      /* after ED: 80-9F, then one tail (no surrogate) */
    U_F0,                      /* after F0: 90-BF, then two tails (no overlong 4-byte form) */
    U_F4,                      /* after F4: 80-8F, then two tails (nothing past U+10FFFF) */
    U_NSTATES
};

enum {
    B_ASCII, /* 00-7F */
    B_T80,   /* 80-8F: a tail byte in the range every constrained second byte accepts ... */
    B_T90,   /* 90-9F */
    B_TA0,   /* A0-BF: ... the three ranges the constrained second bytes tell apart */
    B_BAD,   /* C0-C1 (overlong 2-byte leads), F5-FF: in no valid text */
    B_L2,    /* C2-DF */
    B_E0,    /* E0 */
    B_L3,    /* E1-EC, EE-EF */
    B_ED,    /* ED */
    B_F0,    /* F0 */
    B_L4,    /* F1-F3 */
    B_F4,    /* F4 */
    B_NCLASSES
};

/* Written out from the class comments above; the unit tests check every byte against them. */
// clang-format off
static const uint8_t utf8_class[256] = {
    /* 0_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 1_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 2_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 3_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 4_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 5_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 6_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 7_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 8_ */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 9_ */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* a_ */ 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* b_ */ 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* c_ */ 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* d_ */ 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* e_ */ 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* f_ */ 9,10,10,10,11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/* Rows: the state; columns: the byte's class, in B_* order. */
#define R_ U_REJECT
#define A_ U_ACCEPT
#define T1 U_TAIL1
#define T2 U_TAIL2
#define T3 U_TAIL3
static const uint8_t utf8_next[U_NSTATES][B_NCLASSES] = {
    /*             ASCII T80 T90 TA0 BAD L2  E0    L3  ED    F0    L4  F4 */
    [U_ACCEPT] = { A_,   R_, R_, R_, R_, T1, U_E0, T2, U_ED, U_F0, T3, U_F4 },
    [U_REJECT] = { R_,   R_, R_, R_, R_, R_, R_,   R_, R_,   R_,   R_, R_ },
    [U_TAIL1]  = { R_,   A_, A_, A_, R_, R_, R_,   R_, R_,   R_,   R_, R_ },
    [U_TAIL2]  = { R_,   T1, T1, T1, R_, R_, R_,   R_, R_,   R_,   R_, R_ },
    [U_TAIL3]  = { R_,   T2, T2, T2, R_, R_, R_,   R_, R_,   R_,   R_, R_ },
    [U_E0]     = { R_,   R_, R_, T1, R_, R_, R_,   R_, R_,   R_,   R_, R_ },
    [U_ED]     = { R_,   T1, T1, R_, R_, R_, R_,   R_, R_,   R_,   R_, R_ },
    [U_F0]     = { R_,   R_, T2, T2, R_, R_, R_,   R_, R_,   R_,   R_, R_ },
    [U_F4]     = { R_,   T2, R_, R_, R_, R_, R_,   R_, R_,   R_,   R_, R_ },
};
#undef R_
#undef A_
#undef T1
#undef T2
#undef T3
// clang-format on

#define HIGH_BITS 0x8080808080808080ull

uint32_t ws_utf8_validate(uint32_t state, const uint8_t *buf, size_t len)
{
    size_t i = 0;

    if (state >= U_NSTATES) /* not a state this function returned: refuse rather than index */
        return U_REJECT;
    while (i < len) {
        /* Between characters, runs of ASCII (most text, JSON) go 8 bytes per test. */
        if (state == U_ACCEPT) {
            for (; len - i >= 8; i += 8) {
                uint64_t w;

                memcpy(&w, buf + i, sizeof(w));
                if (w & HIGH_BITS)
                    break;
            }
            if (i == len)
                break;
        }
        state = utf8_next[state][utf8_class[buf[i++]]];
        if (state == U_REJECT)
            return U_REJECT;
    }
    return state;
}

/* ---- masking ---- */

void ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t offset)
{
    uint8_t pattern[8];
    uint64_t m;
    size_t i = 0;

    /* The mask rotated to start at `offset`, twice: XOR-ing 8 bytes at a time through memcpy
     * (one unaligned load and store each on the machines we run on, and no alignment or
     * aliasing assumption in C) is what keeps an echo benchmark off this loop. */
    for (unsigned k = 0; k < 8; k++)
        pattern[k] = mask[(offset + k) & 3];
    memcpy(&m, pattern, sizeof(m));
    for (; len - i >= 32; i += 32) {
        uint64_t w[4];

        memcpy(w, buf + i, sizeof(w));
        w[0] ^= m;
        w[1] ^= m;
        w[2] ^= m;
        w[3] ^= m;
        memcpy(buf + i, w, sizeof(w));
    }
    for (; len - i >= 8; i += 8) {
        uint64_t w;

        memcpy(&w, buf + i, sizeof(w));
        w ^= m;
        memcpy(buf + i, &w, sizeof(w));
    }
    /* i is a multiple of 8, so pattern[k] lines up with byte i + k again. */
    for (unsigned k = 0; i < len; i++, k++)
        buf[i] ^= pattern[k];
}

/* ---- close payloads ---- */

int ws_close_code_valid(unsigned code)
{
    /*
     * RFC 6455 7.4.1 defines 1000-1011 with 1004 reserved and 1005, 1006 never on the wire;
     * 7.4.2 reserves 1000-2999 for the protocol and leaves 3000-4999 to libraries and apps.
     * IANA's WebSocket Close Code Number registry has since assigned 1012 (service restart),
     * 1013 (try again later) and 1014 (bad gateway), which servers send and browsers accept:
     * they are accepted here. 1015 (TLS handshake failure) is, like 1005 and 1006, a code an
     * endpoint reports but never sends; 1016-2999 are unassigned.
     */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int ws_close_payload(const uint8_t *payload, size_t len, uint16_t *code, const uint8_t **reason,
                     size_t *reason_len)
{
    unsigned c;

    *code = WS_CLOSE_NO_STATUS;
    *reason = payload;
    *reason_len = 0;
    if (len == 0)
        return 0;
    if (len == 1)
        return WS_E_CLOSE_PAYLOAD;
    c = (unsigned)read_be(payload, 2);
    *code = (uint16_t)c; /* known even when invalid, for the log line */
    if (!ws_close_code_valid(c))
        return WS_E_CLOSE_PAYLOAD;
    if (ws_utf8_validate(U_ACCEPT, payload + 2, len - 2) != U_ACCEPT)
        return WS_E_UTF8;
    *reason = payload + 2;
    *reason_len = len - 2;
    return 0;
}

/* ---- the frame parser ---- */

void ws_parser_init(struct ws_parser *p, uint64_t max_message)
{
    memset(p, 0, sizeof(*p));
    p->max_message = max_message;
}

static inline int is_control(unsigned opcode)
{
    return opcode >= 0x8;
}

static inline int is_known_opcode(unsigned opcode)
{
    return opcode <= WS_OP_BINARY || (opcode >= WS_OP_CLOSE && opcode <= WS_OP_PONG);
}

/* What byte 0 alone (FIN, RSV, opcode, and the open message) says is wrong, or 0. */
static int check_byte0(const struct ws_parser *p, uint8_t b0)
{
    unsigned opcode = b0 & 0x0f;

    if (b0 & 0x70)
        return WS_E_RSV;
    if (!is_known_opcode(opcode))
        return WS_E_OPCODE;
    if (is_control(opcode))
        return (b0 & 0x80) ? 0 : WS_E_CONTROL_FRAGMENTED;
    if (opcode == WS_OP_CONTINUATION)
        return p->msg_opcode ? 0 : WS_E_CONTINUATION;
    return p->msg_opcode ? WS_E_INTERLEAVED : 0;
}

/* The payload checks of a complete, unmasked frame, and the message state they advance. */
static int finish_frame(struct ws_parser *p, const struct ws_frame *f)
{
    uint32_t utf8 = U_ACCEPT;

    if (f->opcode == WS_OP_CLOSE) {
        uint16_t code;
        const uint8_t *reason;
        size_t reason_len;

        return ws_close_payload(f->payload, (size_t)f->payload_len, &code, &reason, &reason_len);
    }
    if (is_control(f->opcode))
        return 0;
    if (f->msg_opcode == WS_OP_TEXT) {
        /* A fragment may end inside a character; only the message's end may not. */
        utf8 = ws_utf8_validate(f->opcode == WS_OP_CONTINUATION ? p->utf8_state : U_ACCEPT,
                                f->payload, (size_t)f->payload_len);
        if (utf8 == U_REJECT || (f->fin && utf8 != U_ACCEPT))
            return WS_E_UTF8;
    }
    if (f->fin) {
        p->msg_opcode = 0;
        p->msg_len = 0;
        p->utf8_state = U_ACCEPT;
    } else {
        p->msg_len = (f->opcode == WS_OP_CONTINUATION ? p->msg_len : 0) + f->payload_len;
        p->msg_opcode = f->msg_opcode;
        p->utf8_state = utf8;
    }
    return 0;
}

/* An error: need is for WS_INCOMPLETE only, payload for frames returned only. */
static int fail(struct ws_frame *frame, int status)
{
    frame->need = 0;
    frame->payload = NULL;
    return status;
}

int ws_parse_frame(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_frame *frame)
{
    unsigned opcode, len7, ext;
    uint64_t msg_so_far, total;
    int r;

    /* Filled as far as the bytes go, on every outcome: an error's log line can name the frame. */
    memset(frame, 0, sizeof(*frame));
    frame->need = 2;
    if (len == 0)
        return WS_INCOMPLETE;

    opcode = buf[0] & 0x0f;
    frame->opcode = (uint8_t)opcode;
    frame->fin = buf[0] >> 7;
    frame->msg_opcode = (uint8_t)(opcode == WS_OP_CONTINUATION ? p->msg_opcode : opcode);
    r = check_byte0(p, buf[0]);
    if (r < 0)
        return fail(frame, r);
    if (len < 2)
        return WS_INCOMPLETE;

    len7 = buf[1] & 0x7f;
    ext = len7 == 127 ? 8 : len7 == 126 ? 2 : 0;
    frame->header_len = (uint8_t)(2 + ext + ((buf[1] & 0x80) ? 4 : 0));
    if (!(buf[1] & 0x80))
        return fail(frame, WS_E_UNMASKED);
    if (is_control(opcode) && len7 > WS_MAX_CONTROL_PAYLOAD)
        return fail(frame, WS_E_CONTROL_TOO_BIG);
    if (len < 2 + ext) {
        frame->need = frame->header_len;
        return WS_INCOMPLETE;
    }

    frame->payload_len = ext ? read_be(buf + 2, ext) : len7;
    if (frame->payload_len >> 63)
        return fail(frame, WS_E_LENGTH);
    /* The message's size limit, checked as a subtraction that cannot wrap (msg_len exceeds
     * max_message only if the caller lowered it mid-message), and the frame's own: its size is
     * returned as an int. Control frames are no part of a message and have their own limit. */
    msg_so_far = opcode == WS_OP_CONTINUATION ? p->msg_len : 0;
    if (!is_control(opcode) &&
        (msg_so_far > p->max_message || frame->payload_len > p->max_message - msg_so_far))
        return fail(frame, WS_E_TOO_BIG);
    if (frame->payload_len > (uint64_t)INT_MAX - frame->header_len)
        return fail(frame, WS_E_TOO_BIG);

    total = frame->header_len + frame->payload_len;
    if (len < total) {
        frame->need = total;
        return WS_INCOMPLETE;
    }
    frame->need = 0;
    frame->payload = buf + frame->header_len;
    ws_mask(frame->payload, (size_t)frame->payload_len, buf + frame->header_len - 4, 0);
    r = finish_frame(p, frame);
    if (r < 0)
        return fail(frame, r);
    return (int)total;
}

uint16_t ws_status_close_code(int status)
{
    switch (status) {
    case WS_E_TOO_BIG:
        return WS_CLOSE_TOO_BIG;
    case WS_E_UTF8:
        return WS_CLOSE_BAD_DATA;
    default:
        return status < 0 ? WS_CLOSE_PROTOCOL_ERROR : WS_CLOSE_NORMAL;
    }
}

const char *ws_strerror(int status)
{
    switch (status) {
    case WS_INCOMPLETE:
        return "incomplete frame";
    case WS_E_UNMASKED:
        return "client frame not masked";
    case WS_E_RSV:
        return "reserved bit set";
    case WS_E_OPCODE:
        return "reserved opcode";
    case WS_E_CONTROL_FRAGMENTED:
        return "fragmented control frame";
    case WS_E_CONTROL_TOO_BIG:
        return "control frame over 125 bytes";
    case WS_E_CONTINUATION:
        return "continuation frame without a message";
    case WS_E_INTERLEAVED:
        return "new message inside a fragmented message";
    case WS_E_LENGTH:
        return "frame length with the top bit set";
    case WS_E_TOO_BIG:
        return "message larger than websocket-max-size";
    case WS_E_UTF8:
        return "invalid utf-8 in text";
    case WS_E_CLOSE_PAYLOAD:
        return "invalid close frame payload";
    default:
        return status > 0 ? "no error" : "unknown error";
    }
}

/* ---- the encoders ---- */

/* Byte 0, the length forms (shortest), the MASK bit; returns the header's size so far. */
static size_t put_header(uint8_t out[WS_MAX_HEADER], unsigned opcode, int fin, uint64_t payload_len,
                         uint8_t mask_bit)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (payload_len <= WS_MAX_CONTROL_PAYLOAD) {
        out[1] = (uint8_t)(mask_bit | payload_len);
        return 2;
    }
    if (payload_len <= 0xffff) {
        out[1] = mask_bit | 126;
        write_be(out + 2, payload_len, 2);
        return 4;
    }
    out[1] = mask_bit | 127;
    write_be(out + 2, payload_len, 8);
    return 10;
}

size_t ws_frame_header(uint8_t out[WS_MAX_HEADER], unsigned opcode, int fin, uint64_t payload_len)
{
    return put_header(out, opcode, fin, payload_len, 0);
}

size_t ws_client_frame_header(uint8_t out[WS_MAX_HEADER], unsigned opcode, int fin,
                              uint64_t payload_len, const uint8_t mask[4])
{
    size_t n = put_header(out, opcode, fin, payload_len, 0x80);

    memcpy(out + n, mask, 4);
    return n + 4;
}

/* ---- the handshake key ---- */

static inline int is_base64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

static inline int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

int ws_key_valid(const char *buf, size_t len)
{
    const unsigned char *s, *e;

    if (buf == NULL || len == 0)
        return 0;
    s = (const unsigned char *)buf;
    e = s + len;
    while (s != e && is_ows(*s))
        s++;
    while (e != s && is_ows(e[-1]))
        e--;
    /* 16 bytes are 128 bits: 21 characters of 6 bits and a 22nd holding the last 2, then "==".
     * The 22nd character's 4 low bits, which decoding drops, are not checked: RFC 6455 4.1
     * asks only for a value that decodes to 16 bytes, which such a value does (Python's
     * base64.b64decode, for one, takes it), and the key is only ever hashed as text. */
    if (e - s != 24 || s[22] != '=' || s[23] != '=')
        return 0;
    for (int i = 0; i < 22; i++)
        if (!is_base64(s[i]))
            return 0;
    return 1;
}
