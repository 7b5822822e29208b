/*
 * libFuzzer harness for proto_http_parse_request() and proto_http_decode_chunked().
 *
 * Input: mode:u8 seed:u8, then the bytes handed to the parser or the decoder.
 *   mode bit 0: 0 the request parser, 1 the chunked decoder.
 *   mode bits 1-2 (parser): the limits: NULL (defaults), tiny, small, or a zeroed struct.
 *   seed: picks the prefixes re-parsed and the pieces the decoder is fed in.
 *
 * Parser: beyond "no crash, no sanitizer report", a complete head must satisfy properties read
 * off the bytes independently of the parser (CRLF only, slices inside the head and well-formed,
 * the framing and keep-alive a plain reading of the fields gives), must be stable (the head alone
 * parses the same, one byte short is INCOMPLETE), and every prefix must be INCOMPLETE or agree
 * with the whole, with or without the last_len hint.
 *
 * Decoder: a whole-buffer reference decoder written differently (indices, no state machine)
 * must give the same data and result, and so must the decoder fed byte by byte and in pieces.
 *
 * Every parse is of an exactly-sized heap copy, so ASan sees a read of the byte past the end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define INVARIANT(c)                                                                               \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717u;
}

/* ---- the request parser ---- */

static const struct http_limits tiny = { 64, 16, 24, 3 };
static const struct http_limits small = { 200, 50, 60, 8 };
static const struct http_limits zero;

struct lim_view {
    size_t max_head, max_headers;
};

static int parse_copy(const uint8_t *buf, size_t n, size_t last_len, const struct http_limits *lim,
                      struct http_request *req)
{
    char *copy = malloc(n ? n : 1);
    int r;

    INVARIANT(copy != NULL);
    memcpy(copy, buf, n);
    r = proto_http_parse_request(copy, n, last_len, lim, req);
    free(copy);
    return r;
}

static int is_tchar(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int eq_ci(struct gy_slice s, const char *lit)
{
    size_t n = strlen(lit);

    if (s.len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((uint8_t)s.ptr[i]) != lit[i])
            return 0;
    return 1;
}

static void check_slice(const uint8_t *buf, int r, struct gy_slice s)
{
    INVARIANT(s.ptr != NULL);
    INVARIANT((const uint8_t *)s.ptr >= buf && (const uint8_t *)s.ptr <= buf + r);
    INVARIANT(s.len <= (size_t)(buf + r - (const uint8_t *)s.ptr));
}

/* Whether a comma list holds the token tok (lowercase), read with plain loops. */
static int list_has(struct gy_slice v, const char *tok)
{
    size_t i = 0, n = strlen(tok);

    while (i <= v.len) {
        size_t j = i, s, e;

        while (j < v.len && v.ptr[j] != ',')
            j++;
        s = i;
        e = j;
        while (s < e && (v.ptr[s] == ' ' || v.ptr[s] == '\t'))
            s++;
        while (e > s && (v.ptr[e - 1] == ' ' || v.ptr[e - 1] == '\t'))
            e--;
        if (e - s == n) {
            size_t k = 0;

            while (k < n && lower((uint8_t)v.ptr[s + k]) == tok[k])
                k++;
            if (k == n)
                return 1;
        }
        i = j + 1;
    }
    return 0;
}

/* The first number of a Content-Length value, by string comparison as in fuzz_uwsgi.c. */
static int64_t first_number(struct gy_slice v)
{
    static const char max[] = "9223372036854775807";
    size_t s = 0, e = 0;
    int64_t n = 0;

    while (e < v.len && v.ptr[e] >= '0' && v.ptr[e] <= '9')
        e++;
    INVARIANT(e > 0);
    while (s < e - 1 && v.ptr[s] == '0')
        s++;
    INVARIANT(e - s < sizeof(max) ||
              (e - s == sizeof(max) - 1 && memcmp(v.ptr + s, max, e - s) <= 0));
    for (; s < e; s++)
        n = n * 10 + (v.ptr[s] - '0');
    return n;
}

/* What a complete head must look like, judged from its bytes and slices. */
static void check_complete(const uint8_t *buf, size_t len, int r, const struct http_request *req,
                           const struct lim_view *l)
{
    uint32_t cl = 0, te = 0, host = 0;
    int close = 0, ka = 0, expect = 0;
    const struct gy_param *first_cl = NULL;

    INVARIANT((size_t)r <= len && (size_t)r <= l->max_head && r >= 16);
    INVARIANT(memcmp(buf + r - 4, "\r\n\r\n", 4) == 0);
    for (int i = 0; i < r; i++) {
        if (buf[i] == '\n')
            INVARIANT(i > 0 && buf[i - 1] == '\r');
        if (buf[i] == '\r')
            INVARIANT(i + 1 < r && buf[i + 1] == '\n');
        /* the first blank line ends the head */
        if (i >= 3 && i < r - 1)
            INVARIANT(memcmp(buf + i - 3, "\r\n\r\n", 4) != 0);
    }

    check_slice(buf, r, req->method);
    check_slice(buf, r, req->target);
    check_slice(buf, r, req->path);
    check_slice(buf, r, req->query);
    check_slice(buf, r, req->host);
    INVARIANT(req->method.len > 0 && req->method.len <= HTTP_MAX_METHOD);
    INVARIANT(!GY_SLICE_EQ(req->method, "CONNECT")); /* a tunnel is never served */
    for (uint32_t i = 0; i < req->method.len; i++)
        INVARIANT(is_tchar((uint8_t)req->method.ptr[i]));
    INVARIANT(req->target.len > 0);
    for (uint32_t i = 0; i < req->target.len; i++) {
        uint8_t c = (uint8_t)req->target.ptr[i];

        INVARIANT(c > ' ' && c != 0x7f && c != '#');
    }
    INVARIANT(req->target.ptr[req->target.len] == ' ');
    INVARIANT(req->path.len + req->query.len <= req->target.len);
    INVARIANT(req->minor_version <= 1);
    INVARIANT(req->body <= HTTP_BODY_CHUNKED);
    INVARIANT(req->keep_alive <= 1 && req->expect_continue <= 1);
    INVARIANT(req->nheaders <= l->max_headers && req->nheaders <= HTTP_MAX_HEADERS);

    for (uint32_t i = 0; i < req->nheaders; i++) {
        const struct gy_param *h = &req->headers[i];

        check_slice(buf, r, h->name);
        check_slice(buf, r, h->value);
        INVARIANT(h->name.len > 0);
        for (uint32_t k = 0; k < h->name.len; k++)
            INVARIANT(is_tchar((uint8_t)h->name.ptr[k]));
        INVARIANT(h->name.ptr[h->name.len] == ':');
        INVARIANT(h->name.ptr[-1] == '\n');
        INVARIANT(i == 0 || h->name.ptr > req->headers[i - 1].value.ptr);
        for (uint32_t k = 0; k < h->value.len; k++) {
            uint8_t c = (uint8_t)h->value.ptr[k];

            INVARIANT(c == '\t' || (c >= ' ' && c != 0x7f));
        }
        if (h->value.len) {
            INVARIANT(h->value.ptr[0] != ' ' && h->value.ptr[0] != '\t');
            INVARIANT(h->value.ptr[h->value.len - 1] != ' ' &&
                      h->value.ptr[h->value.len - 1] != '\t');
        }
        if (eq_ci(h->name, "content-length")) {
            cl++;
            if (!first_cl)
                first_cl = h;
        }
        te += eq_ci(h->name, "transfer-encoding");
        host += eq_ci(h->name, "host");
        if (eq_ci(h->name, "connection")) {
            close |= list_has(h->value, "close");
            ka |= list_has(h->value, "keep-alive");
        }
        if (eq_ci(h->name, "expect"))
            expect |= list_has(h->value, "100-continue");
    }

    /* Repeats of a name joined, each name once: the values and separators of a field line take
     * fewer bytes than the line (name, ':', CRLF), so all of it fits in the head's size. */
    size_t joined = 0;
    for (uint32_t i = 0; i < req->nheaders; i++) {
        static char out[1 << 17];
        const struct gy_param *h = &req->headers[i];
        size_t n;

        if (proto_http_is_repeat(req, h))
            continue;
        n = proto_http_join_repeats(req, h, ", ", 2, NULL, 0);
        INVARIANT(n >= h->value.len);
        INVARIANT(proto_http_join_repeats(req, h, ", ", 2, out, sizeof(out)) == n);
        INVARIANT(memcmp(out, h->value.ptr, h->value.len) == 0);
        joined += n;
    }
    INVARIANT(joined <= (size_t)r);

    /* The framing a plain reading of the fields gives. Content-Length is collapsed to one
     * field holding one number. */
    INVARIANT(cl <= 1);
    if (cl) {
        INVARIANT(first_cl->value.len > 0);
        for (uint32_t k = 0; k < first_cl->value.len; k++)
            INVARIANT(first_cl->value.ptr[k] >= '0' && first_cl->value.ptr[k] <= '9');
    }
    INVARIANT(!(cl && te));
    if (te) {
        INVARIANT(req->body == HTTP_BODY_CHUNKED && req->minor_version == 1 && te == 1);
        INVARIANT(req->content_length == 0);
    } else if (cl) {
        INVARIANT(req->body == HTTP_BODY_LENGTH);
        INVARIANT(req->content_length == first_number(first_cl->value));
    } else {
        INVARIANT(req->body == HTTP_BODY_NONE && req->content_length == 0);
    }
    INVARIANT(host <= 1 && (req->minor_version == 0 || host == 1));
    INVARIANT(req->keep_alive == (!close && (req->minor_version == 1 || ka)));
    INVARIANT(req->expect_continue == (expect && req->minor_version == 1));
}

static void fuzz_request(const uint8_t *buf, size_t len, unsigned mode, unsigned seed)
{
    static struct http_request req, again;
    static const struct http_limits *const presets[4] = { NULL, &tiny, &small, &zero };
    const struct http_limits *lim = presets[(mode >> 1) & 3];
    struct lim_view l = { HTTP_DEFAULT_MAX_HEAD, HTTP_DEFAULT_MAX_HEADERS };
    size_t nprefixes;
    int r;

    if (lim && lim->max_head) {
        l.max_head = lim->max_head;
        l.max_headers = lim->max_headers;
    }

    r = proto_http_parse_request((const char *)buf, len, 0, lim, &req);
    /* no decoder statuses from the parser (CONNECT's came after them) */
    INVARIANT(r >= HTTP_E_CL_AND_TE || r == HTTP_E_METHOD_CONNECT);
    INVARIANT(r <= 0 || (size_t)r <= len);
    INVARIANT(proto_http_strerror(r) != NULL);
    if (r < 0) {
        int st = proto_http_error_status(r);

        INVARIANT(st == 400 || st == 414 || st == 431 || st == 501 || st == 505);
    }
    if (r <= 0) {
        INVARIANT(req.nheaders == 0 && req.body == HTTP_BODY_NONE && req.content_length == 0);
        /* under the head limit, INCOMPLETE means the bytes so far end no head */
        if (r == 0)
            INVARIANT(len <= l.max_head);
    } else {
        check_complete(buf, len, r, &req, &l);
        /* stable: the head alone parses the same; one byte short, it is not complete */
        INVARIANT(parse_copy(buf, (size_t)r, 0, lim, &again) == r);
        INVARIANT(again.nheaders == req.nheaders && again.body == req.body &&
                  again.content_length == req.content_length && again.keep_alive == req.keep_alive);
        INVARIANT(parse_copy(buf, (size_t)r - 1, 0, lim, &again) == HTTP_INCOMPLETE);
    }

    /* Prefixes: INCOMPLETE or the whole's result; with the hint, INCOMPLETE or the same. */
    rng_state = seed * 0x9e3779b97f4a7c15u + len + 1;
    nprefixes = len <= 96 ? len : 32;
    for (size_t i = 0; i < nprefixes; i++) {
        size_t k = len <= 96 ? i : (size_t)(rng() % len);
        int p = parse_copy(buf, k, 0, lim, &again);

        if (p != HTTP_INCOMPLETE) {
            INVARIANT(p == r);
            continue;
        }
        INVARIANT(r <= 0 || k < (size_t)r);
        if (k > 0) {
            int h = parse_copy(buf, len, k, lim, &again);

            INVARIANT(h == HTTP_INCOMPLETE || h == r);
            if (r > 0 || len > l.max_head)
                INVARIANT(h == r);
        }
    }
}

/* ---- the chunked decoder ---- */

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int value_byte(uint8_t c)
{
    return c == '\t' || (c >= ' ' && c != 0x7f);
}

/*
 * The whole body at once, by indices: returns the offset just past the body, 0 if more is
 * needed, or the status of the first bad byte. out gets the data.
 */
static ptrdiff_t reference_chunked(const uint8_t *b, size_t len, uint8_t *out, size_t *outlen)
{
    size_t i = 0, o = 0, t = 0;

    *outlen = 0;
    for (;;) {
        uint64_t size = 0;
        size_t digits = 0, ext = 0;

        for (; i < len && hexval(b[i]) >= 0; i++) {
            if (digits == HTTP_CHUNK_MAX_HEX)
                return HTTP_E_CHUNK_SIZE_TOO_LONG;
            size = size * 16 + (uint64_t)hexval(b[i]);
            digits++;
        }
        if (i == len)
            return 0;
        if (digits == 0)
            return b[i] == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_CHUNK_SIZE;
        if (b[i] == ' ' || b[i] == '\t') {
            for (; i < len && (b[i] == ' ' || b[i] == '\t'); i++)
                if (ext++ == HTTP_CHUNK_MAX_EXT)
                    return HTTP_E_CHUNK_EXT_TOO_LONG;
            if (i == len)
                return 0;
            if (b[i] != ';')
                return HTTP_E_CHUNK_SIZE;
        }
        if (b[i] == ';') {
            for (; i < len && b[i] != '\r'; i++) {
                if (!value_byte(b[i]))
                    return b[i] == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_CHUNK_EXT;
                if (ext++ == HTTP_CHUNK_MAX_EXT)
                    return HTTP_E_CHUNK_EXT_TOO_LONG;
            }
            if (i == len)
                return 0;
        }
        if (b[i] != '\r')
            return b[i] == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_CHUNK_SIZE;
        if (++i == len)
            return 0;
        if (b[i++] != '\n')
            return HTTP_E_LINE_ENDING;
        if (size == 0)
            break;
        if (len - i < size) {
            memcpy(out + o, b + i, len - i);
            *outlen = o + (len - i);
            return 0;
        }
        memcpy(out + o, b + i, (size_t)size);
        o += (size_t)size;
        *outlen = o;
        i += (size_t)size;
        if (i == len)
            return 0;
        if (b[i++] != '\r')
            return HTTP_E_CHUNK_DATA_CRLF;
        if (i == len)
            return 0;
        if (b[i++] != '\n')
            return HTTP_E_CHUNK_DATA_CRLF;
    }
    /* trailer lines, then the final CRLF; t counts every byte of them */
    for (;;) {
        if (i == len)
            return 0;
        if (t++ == HTTP_CHUNK_MAX_TRAILERS)
            return HTTP_E_CHUNK_TRAILERS_TOO_LARGE;
        if (b[i] == '\r') {
            if (++i == len)
                return 0;
            if (t++ == HTTP_CHUNK_MAX_TRAILERS)
                return HTTP_E_CHUNK_TRAILERS_TOO_LARGE;
            return b[i] == '\n' ? (ptrdiff_t)(i + 1) : HTTP_E_LINE_ENDING;
        }
        if (!is_tchar(b[i]))
            return b[i] == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_CHUNK_TRAILER;
        for (i++;; i++) {
            if (i == len)
                return 0;
            if (t++ == HTTP_CHUNK_MAX_TRAILERS)
                return HTTP_E_CHUNK_TRAILERS_TOO_LARGE;
            if (b[i] == ':')
                break;
            if (!is_tchar(b[i]))
                return HTTP_E_CHUNK_TRAILER;
        }
        for (i++;; i++) {
            if (i == len)
                return 0;
            if (t++ == HTTP_CHUNK_MAX_TRAILERS)
                return HTTP_E_CHUNK_TRAILERS_TOO_LARGE;
            if (b[i] == '\r')
                break;
            if (!value_byte(b[i]))
                return b[i] == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_CHUNK_TRAILER;
        }
        if (++i == len)
            return 0;
        if (t++ == HTTP_CHUNK_MAX_TRAILERS)
            return HTTP_E_CHUNK_TRAILERS_TOO_LARGE;
        if (b[i++] != '\n')
            return HTTP_E_LINE_ENDING;
    }
}

/* Feeds in pieces (max 0: whole) from exactly-sized heap copies; returns the end offset (> 0),
 * 0 or the error, the data in out. */
static ptrdiff_t decode_pieces(const uint8_t *in, size_t len, size_t max, uint8_t *out,
                               size_t *outlen)
{
    struct http_chunked_decoder dec = { 0 };
    size_t off = 0;
    ptrdiff_t r = 0;

    *outlen = 0;
    do {
        size_t n = max ? 1 + (size_t)(rng() % max) : len - off, got;
        char *buf;

        if (n > len - off)
            n = len - off;
        buf = malloc(n ? n : 1);
        INVARIANT(buf != NULL);
        memcpy(buf, in + off, n);
        got = n;
        r = proto_http_decode_chunked(&dec, buf, &got);
        INVARIANT(got <= n);
        memcpy(out + *outlen, buf, got);
        *outlen += got;
        if (r > 0) {
            INVARIANT((size_t)r <= n);
            INVARIANT(memcmp(buf + r, in + off + (size_t)r, n - (size_t)r) == 0);
            r += (ptrdiff_t)off;
        }
        free(buf);
        off += n;
    } while (r == 0 && off < len);
    if (r >= 0)
        INVARIANT(dec.total == *outlen);
    INVARIANT(r <= 0 || dec.remaining == 0);
    return r;
}

static void fuzz_chunked(const uint8_t *in, size_t len, unsigned seed)
{
    static uint8_t ref[1 << 20], whole[1 << 20], part[1 << 20];
    size_t nref, nwhole, npart;
    ptrdiff_t rref, rwhole, rpart;

    if (len > sizeof(ref))
        return;
    rref = reference_chunked(in, len, ref, &nref);
    rwhole = decode_pieces(in, len, 0, whole, &nwhole);
    if (rref != rwhole) {
        fprintf(stderr, "decoder says %td (%s), reference says %td (%s)\n", rwhole,
                proto_http_strerror((int)rwhole), rref, proto_http_strerror((int)rref));
        abort();
    }
    INVARIANT(rwhole >= HTTP_E_LAST && rwhole <= (ptrdiff_t)len);
    INVARIANT(rwhole >= 0 || rwhole <= HTTP_E_CHUNK_SIZE || rwhole == HTTP_E_LINE_ENDING);
    INVARIANT(nref == nwhole && memcmp(ref, whole, nref) == 0);
    INVARIANT(nwhole <= len);

    rng_state = seed * 0x9e3779b97f4a7c15u + len + 1;
    for (size_t max = 1; max <= 64; max *= 4) {
        rpart = decode_pieces(in, len, max, part, &npart);
        INVARIANT(rpart == rwhole);
        INVARIANT(npart == nwhole && memcmp(part, whole, npart) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (data[0] & 1)
        fuzz_chunked(data + 2, size - 2, data[1]);
    else
        fuzz_request(data + 2, size - 2, data[0], data[1]);
    return 0;
}
