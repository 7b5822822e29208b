/*
 * libFuzzer harness for the FastCGI record parser (proto_fcgi_next), the name-value pair parser
 * (proto_fcgi_parse_params, proto_fcgi_get_values_asked) and, through round trips, the encoders.
 *
 * Input: k = data[0] % 17, then k piece sizes (one byte each), then the stream. The stream is
 * fed to a parser three ways and must give one transcript (the events, consecutive content
 * pieces of one stream joined; and the final status):
 *   - whole, from one exactly-sized heap copy;
 *   - in pieces of the given sizes, cycled (a size 0 is a zero-length call, then 1 byte), each
 *     piece its own exactly-sized heap copy, so ASan sees a read past any piece;
 *   - by a reference reader written differently (whole records, indices, no state machine).
 * Every call is checked: consumed within what was given and at least 1 byte of it, slices
 * inside what that call consumed (GET_VALUES data inside the parser), events well-formed,
 * errors sticky. Then the pair parser runs on the stream itself and on every joined PARAMS
 * content, against a reference; every GET_VALUES is answered and the answer read back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastcgi.h"

#define INVARIANT(c)                                                                               \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- transcripts ---- */

struct event_rec {
    int type;
    unsigned record_type, request_id, role, flags;
    size_t off, len;
};

struct transcript {
    int status;
    size_t nevents, cap;
    struct event_rec *ev;
    size_t data_len;
    uint8_t *data;
};

/* Every event consumes at least one input byte and its data are input bytes (GET_VALUES: its
 * content), so len + 1 of each is enough. */
static void transcript_init(struct transcript *t, size_t len)
{
    t->status = 0;
    t->nevents = 0;
    t->cap = len + 1;
    t->ev = malloc(t->cap * sizeof(*t->ev));
    t->data_len = 0;
    t->data = malloc(len + 1);
    INVARIANT(t->ev != NULL && t->data != NULL);
}

static void transcript_free(struct transcript *t)
{
    free(t->ev);
    free(t->data);
}

static int is_content(int type)
{
    return type == FCGI_EV_PARAMS || type == FCGI_EV_STDIN || type == FCGI_EV_DATA;
}

static void add_event(struct transcript *t, int type, unsigned record_type, unsigned id,
                      unsigned role, unsigned flags, const void *data, size_t len)
{
    struct event_rec *last = t->nevents ? &t->ev[t->nevents - 1] : NULL;

    INVARIANT(t->data_len + len <= t->cap);
    if (is_content(type) && last && last->type == type && last->request_id == id) {
        last->len += len;
    } else {
        INVARIANT(t->nevents < t->cap);
        t->ev[t->nevents++] = (struct event_rec){ type,  record_type, id, role,
                                                  flags, t->data_len, len };
    }
    if (len)
        memcpy(t->data + t->data_len, data, len);
    t->data_len += len;
}

static void check_same(const struct transcript *a, const struct transcript *b)
{
    INVARIANT(a->status == b->status);
    INVARIANT(a->nevents == b->nevents);
    for (size_t i = 0; i < a->nevents; i++) {
        const struct event_rec *x = &a->ev[i], *y = &b->ev[i];

        INVARIANT(x->type == y->type && x->record_type == y->record_type);
        INVARIANT(x->request_id == y->request_id && x->role == y->role && x->flags == y->flags);
        INVARIANT(x->len == y->len && memcmp(a->data + x->off, b->data + y->off, x->len) == 0);
    }
}

/* ---- the parser, checked on every call ---- */

static int is_request_type(unsigned type)
{
    return type == FCGI_BEGIN_REQUEST || type == FCGI_ABORT_REQUEST || type == FCGI_PARAMS ||
           type == FCGI_STDIN || type == FCGI_DATA;
}

static void check_event(const struct fcgi_event *ev, const char *buf, int r,
                        const struct fcgi_parser *p)
{
    const char *body = (const char *)p->body;

    switch (ev->type) {
    case FCGI_EV_NONE:
        INVARIANT(ev->data.len == 0);
        return;
    case FCGI_EV_PARAMS:
    case FCGI_EV_STDIN:
    case FCGI_EV_DATA:
        INVARIANT(ev->data.len >= 1 && ev->data.ptr >= buf && ev->data.ptr < buf + r);
        INVARIANT(ev->data.len <= (size_t)(buf + r - ev->data.ptr));
        INVARIANT(ev->record_type == (ev->type == FCGI_EV_PARAMS  ? FCGI_PARAMS
                                      : ev->type == FCGI_EV_STDIN ? FCGI_STDIN
                                                                  : FCGI_DATA));
        INVARIANT(ev->request_id != 0);
        return;
    case FCGI_EV_PARAMS_END:
    case FCGI_EV_STDIN_END:
    case FCGI_EV_DATA_END:
        INVARIANT(ev->record_type == (ev->type == FCGI_EV_PARAMS_END  ? FCGI_PARAMS
                                      : ev->type == FCGI_EV_STDIN_END ? FCGI_STDIN
                                                                      : FCGI_DATA));
        INVARIANT(ev->request_id != 0 && ev->data.len == 0);
        return;
    case FCGI_EV_BEGIN_REQUEST:
    case FCGI_EV_ABORT_REQUEST:
        INVARIANT(ev->record_type ==
                  (ev->type == FCGI_EV_BEGIN_REQUEST ? FCGI_BEGIN_REQUEST : FCGI_ABORT_REQUEST));
        INVARIANT(ev->request_id != 0 && ev->data.len == 0);
        return;
    case FCGI_EV_GET_VALUES:
        INVARIANT(ev->record_type == FCGI_GET_VALUES && ev->request_id == 0);
        INVARIANT(ev->data.len <= FCGI_GET_VALUES_MAX && ev->data.ptr >= body &&
                  ev->data.ptr + ev->data.len <= body + sizeof(p->body));
        return;
    case FCGI_EV_UNKNOWN_TYPE:
        INVARIANT(!is_request_type(ev->record_type) && ev->record_type != FCGI_GET_VALUES);
        INVARIANT(ev->data.len == 0);
        return;
    }
    INVARIANT(!"event type out of range");
}

/* Exactly-sized heap copy: ASan flags a read of byte n. */
static char *copy_of(const uint8_t *data, size_t n)
{
    char *c = malloc(n ? n : 1);

    INVARIANT(c != NULL);
    if (n)
        memcpy(c, data, n);
    return c;
}

/* One call on buf[0..n): checks it, records its event. Returns r, or the error. */
static int step(struct fcgi_parser *p, const char *buf, size_t n, struct transcript *t)
{
    struct fcgi_event ev;
    int r = proto_fcgi_next(p, buf, n, &ev);

    if (r < 0) {
        INVARIANT(r >= FCGI_E_CONTENT_TOO_LONG && ev.type == FCGI_EV_NONE);
        INVARIANT(r == FCGI_E_VERSION || r == FCGI_E_MANAGEMENT_ID || r == FCGI_E_NULL_REQUEST_ID ||
                  r == FCGI_E_BEGIN_LENGTH || r == FCGI_E_GET_VALUES_TOO_BIG);
        INVARIANT(strcmp(proto_fcgi_strerror(r), "unknown error") != 0);
        /* Sticky, whatever comes next. */
        INVARIANT(proto_fcgi_next(p, buf, n, &ev) == r && ev.type == FCGI_EV_NONE);
        t->status = r;
        return r;
    }
    INVARIANT((size_t)r <= n && r <= FCGI_MAX_STEP);
    INVARIANT(n == 0 ? r == 0 && ev.type == FCGI_EV_NONE : r >= 1);
    check_event(&ev, buf, r, p);
    if (ev.type != FCGI_EV_NONE)
        add_event(t, ev.type, ev.record_type, ev.request_id, ev.role, ev.flags, ev.data.ptr,
                  ev.data.len);
    return r;
}

static void feed_whole(const uint8_t *stream, size_t len, struct transcript *t)
{
    struct fcgi_parser p;
    char *buf = copy_of(stream, len);
    size_t off = 0;

    memset(&p, 0, sizeof(p));
    while (off < len) {
        int r = step(&p, buf + off, len - off, t);

        if (r < 0)
            break;
        off += (size_t)r;
    }
    free(buf);
}

static void feed_pieces(const uint8_t *stream, size_t len, const uint8_t *sizes, size_t k,
                        struct transcript *t)
{
    struct fcgi_parser p;
    size_t pos = 0, i = 0;

    memset(&p, 0, sizeof(p));
    while (pos < len) {
        size_t want = sizes[i++ % k], n, off = 0;
        char *buf;

        if (want == 0) {
            buf = copy_of(stream + pos, 0);
            INVARIANT(step(&p, buf, 0, t) == 0);
            free(buf);
            want = 1;
        }
        n = want < len - pos ? want : len - pos;
        buf = copy_of(stream + pos, n);
        while (off < n) {
            int r = step(&p, buf + off, n - off, t);

            if (r < 0) {
                free(buf);
                return;
            }
            off += (size_t)r;
        }
        free(buf);
        pos += n;
    }
}

/* ---- the reference reader: whole records by index ---- */

static unsigned u16be(const uint8_t *p)
{
    return (unsigned)p[0] * 256 + p[1];
}

static void reference_walk(const uint8_t *b, size_t len, struct transcript *t)
{
    size_t i = 0;

    while (len - i >= FCGI_HEADER_LEN) {
        unsigned version = b[i], type = b[i + 1], id = u16be(b + i + 2), clen = u16be(b + i + 4);
        size_t pad = b[i + 6], have = len - i - FCGI_HEADER_LEN;
        const uint8_t *c = b + i + FCGI_HEADER_LEN;
        int stream = type == FCGI_PARAMS || type == FCGI_STDIN || type == FCGI_DATA;
        int base = type == FCGI_PARAMS  ? FCGI_EV_PARAMS
                   : type == FCGI_STDIN ? FCGI_EV_STDIN
                                        : FCGI_EV_DATA;

        if (version != 1) {
            t->status = FCGI_E_VERSION;
            return;
        }
        if (is_request_type(type) && id == 0) {
            t->status = FCGI_E_NULL_REQUEST_ID;
            return;
        }
        if (type == FCGI_GET_VALUES && id != 0) {
            t->status = FCGI_E_MANAGEMENT_ID;
            return;
        }
        if (type == FCGI_BEGIN_REQUEST && clen != 8) {
            t->status = FCGI_E_BEGIN_LENGTH;
            return;
        }
        if (type == FCGI_GET_VALUES && clen > FCGI_GET_VALUES_MAX) {
            t->status = FCGI_E_GET_VALUES_TOO_BIG;
            return;
        }
        if (stream && clen == 0)
            add_event(t, base + 1, type, id, 0, 0, NULL, 0); /* the _END event follows */
        else if (stream && have > 0)
            add_event(t, base, type, id, 0, 0, c, have < clen ? have : clen);
        else if (!stream && have >= clen) {
            if (type == FCGI_BEGIN_REQUEST)
                add_event(t, FCGI_EV_BEGIN_REQUEST, type, id, u16be(c), c[2], NULL, 0);
            else if (type == FCGI_ABORT_REQUEST)
                add_event(t, FCGI_EV_ABORT_REQUEST, type, id, 0, 0, NULL, 0);
            else if (type == FCGI_GET_VALUES)
                add_event(t, FCGI_EV_GET_VALUES, type, id, 0, 0, c, clen);
            else
                add_event(t, FCGI_EV_UNKNOWN_TYPE, type, id, 0, 0, NULL, 0);
        }
        if (have < clen + pad)
            return;
        i += FCGI_HEADER_LEN + clen + pad;
    }
}

/* ---- name-value pairs ---- */

/* The spec's lengths, by index: 1 byte, or 4 with the top bit masked off. */
static int ref_length(const uint8_t *b, size_t len, size_t *i, size_t *out)
{
    if (*i >= len)
        return 0;
    if (b[*i] < 128) {
        *out = b[(*i)++];
        return 1;
    }
    if (len - *i < 4)
        return 0;
    *out = ((size_t)(b[*i] - 128) << 24) + ((size_t)b[*i + 1] << 16) + ((size_t)b[*i + 2] << 8) +
           b[*i + 3];
    *i += 4;
    return 1;
}

/* Decimal digits only, value <= INT64_MAX: by length and string comparison, not arithmetic. */
static int ref_content_length(const uint8_t *p, size_t n, int64_t *out)
{
    static const char max[] = "9223372036854775807";
    int64_t v = 0;

    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    while (n > 0 && p[0] == '0')
        p++, n--;
    if (n > sizeof(max) - 1 || (n == sizeof(max) - 1 && memcmp(p, max, n) > 0))
        return 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    *out = v;
    return 1;
}

struct ref_pair {
    size_t name, nlen, value, vlen; /* offsets into the block */
};

static struct ref_pair ref_pairs[GY_MAX_PARAMS];

/*
 * The params' verdict: the first problem of the first pair that has one, framing before
 * contents. *asked gets GET_VALUES's verdict, which only framing stops: the FCGI_ASKED_* bits
 * of the whole block, or FCGI_E_TRUNCATED.
 */
static int reference_params(const uint8_t *b, size_t len, int64_t *clen, int *asked)
{
    size_t i = 0;
    int n = 0, status = 0;

    *clen = 0;
    *asked = 0;
    while (i < len) {
        size_t nlen, vlen;

        if (!ref_length(b, len, &i, &nlen) || !ref_length(b, len, &i, &vlen) || len - i < nlen ||
            len - i - nlen < vlen) {
            *asked = FCGI_E_TRUNCATED;
            return status ? status : FCGI_E_TRUNCATED;
        }
        if (nlen == 14 && memcmp(b + i, "FCGI_MAX_CONNS", 14) == 0)
            *asked |= FCGI_ASKED_MAX_CONNS;
        if (nlen == 13 && memcmp(b + i, "FCGI_MAX_REQS", 13) == 0)
            *asked |= FCGI_ASKED_MAX_REQS;
        if (nlen == 15 && memcmp(b + i, "FCGI_MPXS_CONNS", 15) == 0)
            *asked |= FCGI_ASKED_MPXS_CONNS;
        if (status == 0) {
            if (nlen == 0)
                status = FCGI_E_EMPTY_NAME;
            else if (n == GY_MAX_PARAMS)
                status = FCGI_E_TOO_MANY_PARAMS;
            else if (nlen == 14 && memcmp(b + i, "CONTENT_LENGTH", 14) == 0 &&
                     !ref_content_length(b + i + nlen, vlen, clen))
                status = FCGI_E_CONTENT_LENGTH;
            else
                ref_pairs[n++] = (struct ref_pair){ i, nlen, i + nlen, vlen };
        }
        i += nlen + vlen;
    }
    return status ? status : n;
}

static struct fcgi_params params;

/* Both pair parsers on an exactly-sized copy of b[0..len), compared. */
static void check_params(const uint8_t *b, size_t len)
{
    char *buf = copy_of(b, len);
    int64_t ref_clen;
    int ref_asked;
    int ref = reference_params(b, len, &ref_clen, &ref_asked);
    int r = proto_fcgi_parse_params(buf, len, &params);
    int asked = proto_fcgi_get_values_asked(buf, len);

    if (r != ref) {
        fprintf(stderr, "params: parser says %d (%s), reference says %d (%s)\n", r,
                proto_fcgi_strerror(r), ref, proto_fcgi_strerror(ref));
        abort();
    }
    INVARIANT(asked == ref_asked);
    if (r < 0) {
        INVARIANT(params.nparams == 0 && params.content_length == 0);
    } else {
        INVARIANT(params.nparams == (uint32_t)r && params.content_length == ref_clen);
        for (int i = 0; i < r; i++) {
            INVARIANT(params.params[i].name.ptr == buf + ref_pairs[i].name);
            INVARIANT(params.params[i].name.len == ref_pairs[i].nlen);
            INVARIANT(params.params[i].value.ptr == buf + ref_pairs[i].value);
            INVARIANT(params.params[i].value.len == ref_pairs[i].vlen);
        }
    }
    free(buf);
}

/* ---- round trips through the encoders ---- */

/* A GET_VALUES answered: the answer is a well-framed record whose pairs are the asked names. */
static void check_get_values(const uint8_t *content, size_t len, unsigned seed)
{
    char out[FCGI_GET_VALUES_RESULT_MAX];
    const struct fcgi_values v = { seed * 2654435761u, seed, (int)(seed & 1) };
    int asked = proto_fcgi_get_values_asked((const char *)content, len), n, np;
    const uint8_t *h = (const uint8_t *)out;

    if (asked < 0)
        return;
    INVARIANT(asked <= 7);
    INVARIANT(proto_fcgi_encode_get_values_result(out, 0, (unsigned)asked, &v) == FCGI_E_NO_SPACE);
    n = proto_fcgi_encode_get_values_result(out, sizeof(out), (unsigned)asked, &v);
    INVARIANT(n >= FCGI_HEADER_LEN && n <= FCGI_GET_VALUES_RESULT_MAX && n % 8 == 0);
    INVARIANT(h[0] == 1 && h[1] == FCGI_GET_VALUES_RESULT && u16be(h + 2) == 0);
    INVARIANT((size_t)n == fcgi_record_size(u16be(h + 4)));
    INVARIANT(h[6] == fcgi_padding_length(u16be(h + 4)));
    np = proto_fcgi_parse_params(out + FCGI_HEADER_LEN, u16be(h + 4), &params);
    INVARIANT(np == !!(asked & 1) + !!(asked & 2) + !!(asked & 4));
    INVARIANT(proto_fcgi_get_values_asked(out + FCGI_HEADER_LEN, u16be(h + 4)) == asked);
}

/* Content re-framed by the encoder and parsed again comes out the same. */
static void check_reencode(const struct event_rec *e, const uint8_t *data)
{
    static char rec[FCGI_HEADER_LEN + FCGI_MAX_CONTENT + 8];
    size_t len = e->len < FCGI_MAX_CONTENT ? e->len : FCGI_MAX_CONTENT;
    struct fcgi_parser p;
    struct fcgi_event ev;
    int n = proto_fcgi_encode_record(rec, sizeof(rec), (uint8_t)e->record_type,
                                     (uint16_t)e->request_id, (const char *)data, len);

    INVARIANT(n >= 0 && (size_t)n == fcgi_record_size(len));
    memset(&p, 0, sizeof(p));
    INVARIANT(proto_fcgi_next(&p, rec, (size_t)n, &ev) == (int)(FCGI_HEADER_LEN + len));
    INVARIANT((int)ev.type == e->type && ev.request_id == e->request_id);
    INVARIANT(ev.data.len == len && memcmp(ev.data.ptr, data, len) == 0);
    INVARIANT(proto_fcgi_next(&p, rec + FCGI_HEADER_LEN + len, (size_t)n - FCGI_HEADER_LEN - len,
                              &ev) == (int)fcgi_padding_length(len));
    INVARIANT(ev.type == FCGI_EV_NONE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct transcript whole, pieces, ref;
    const uint8_t *sizes, *stream;
    size_t k, len;
    int reencoded = 0;

    if (size < 1)
        return 0;
    k = data[0] % 17;
    if (size - 1 < k)
        return 0;
    sizes = data + 1;
    stream = data + 1 + k;
    len = size - 1 - k;

    transcript_init(&whole, len);
    transcript_init(&pieces, len);
    transcript_init(&ref, len);
    feed_whole(stream, len, &whole);
    reference_walk(stream, len, &ref);
    check_same(&whole, &ref);
    if (k) {
        feed_pieces(stream, len, sizes, k, &pieces);
        check_same(&whole, &pieces);
    }

    /* The pair parsers on the raw bytes, and on what the server would parse. */
    check_params(stream, len);
    for (size_t i = 0; i < whole.nevents; i++) {
        const struct event_rec *e = &whole.ev[i];

        if (e->type == FCGI_EV_PARAMS || e->type == FCGI_EV_GET_VALUES)
            check_params(whole.data + e->off, e->len);
        if (e->type == FCGI_EV_GET_VALUES)
            check_get_values(whole.data + e->off, e->len, (unsigned)i);
        if (is_content(e->type) && reencoded++ < 4)
            check_reencode(e, whole.data + e->off);
    }

    transcript_free(&whole);
    transcript_free(&pieces);
    transcript_free(&ref);
    return 0;
}
