/*
 * FastCGI 1.0: the incremental record parser, the name-value pair parser, the response encoders.
 *
 * The record parser is a small state machine over a byte stream that may be cut anywhere: each
 * header is gathered into the parser (always copied, whole or split: 8 bytes cost nothing next
 * to the syscall that brought them, and one code path serves every cut), stream content is
 * handed out as slices of the caller's buffer the moment it is there, and the two small bodies
 * (BEGIN_REQUEST, GET_VALUES) are gathered into the parser so that their events carry them
 * whole. Nothing is decided from a partial header: its 8th byte decides.
 *
 * As in uwsgi.c, every bounds check compares a length with the bytes left (end - p) before a
 * pointer moves, so no pointer is ever formed past the end of the buffer.
 */
#include "fastcgi.h"

#include <string.h>

enum { ST_HEADER = 0, ST_CONTENT, ST_PADDING };

static inline size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Byte arithmetic rather than loads: no alignment, and the wire is big-endian whatever the host. */
static inline unsigned read_u16be(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static inline struct gy_slice slice(const void *p, size_t len)
{
    return (struct gy_slice){ .ptr = (const char *)p, .len = (uint32_t)len };
}

static inline int is_stream(uint8_t type)
{
    return type == FCGI_PARAMS || type == FCGI_STDIN || type == FCGI_DATA;
}

/* The records of a request, which must name one (the spec's "application records"). */
static inline int is_request_record(uint8_t type)
{
    return type == FCGI_BEGIN_REQUEST || type == FCGI_ABORT_REQUEST || is_stream(type);
}

/* Records whose content the parser keeps and hands out whole. */
static inline int is_accumulated(uint8_t type)
{
    return type == FCGI_BEGIN_REQUEST || type == FCGI_GET_VALUES;
}

static int fail(struct fcgi_parser *p, int status)
{
    p->error = (int16_t)status;
    return status;
}

/*
 * The header is complete: judge it on its own. Everything a record could be refused for is
 * visible here, so a bad record is refused before its content is waited for.
 */
static int take_header(struct fcgi_parser *p)
{
    const unsigned char *h = p->header;
    uint8_t type = h[1];
    unsigned id = read_u16be(h + 2), clen = read_u16be(h + 4);

    if (h[0] != FCGI_VERSION_1)
        return fail(p, FCGI_E_VERSION);
    if (is_request_record(type) && id == FCGI_NULL_REQUEST_ID)
        return fail(p, FCGI_E_NULL_REQUEST_ID);
    if (type == FCGI_GET_VALUES && id != FCGI_NULL_REQUEST_ID)
        return fail(p, FCGI_E_MANAGEMENT_ID);
    if (type == FCGI_BEGIN_REQUEST && clen != FCGI_BEGIN_REQUEST_BODY_LEN)
        return fail(p, FCGI_E_BEGIN_LENGTH);
    /* The accumulation buffer is body[]: GET_VALUES must fit it (BEGIN_REQUEST's 8 bytes do). */
    if (type == FCGI_GET_VALUES && clen > FCGI_GET_VALUES_MAX)
        return fail(p, FCGI_E_GET_VALUES_TOO_BIG);

    p->type = type;
    p->request_id = (uint16_t)id;
    p->content_length = (uint16_t)clen;
    p->content_left = (uint16_t)clen;
    p->padding_left = h[6];
    p->header_have = 0;
    p->state = ST_CONTENT;
    return 0;
}

/*
 * The event of a record whose content has all been consumed or skipped: every record's but a
 * stream record with content, whose events were its content.
 */
static void record_event(const struct fcgi_parser *p, struct fcgi_event *ev)
{
    ev->record_type = p->type;
    ev->request_id = p->request_id;
    switch (p->type) {
    case FCGI_BEGIN_REQUEST:
        ev->type = FCGI_EV_BEGIN_REQUEST;
        ev->role = (uint16_t)read_u16be(p->body);
        ev->flags = p->body[2];
        break;
    case FCGI_ABORT_REQUEST:
        ev->type = FCGI_EV_ABORT_REQUEST;
        break;
    case FCGI_PARAMS:
        ev->type = FCGI_EV_PARAMS_END;
        break;
    case FCGI_STDIN:
        ev->type = FCGI_EV_STDIN_END;
        break;
    case FCGI_DATA:
        ev->type = FCGI_EV_DATA_END;
        break;
    case FCGI_GET_VALUES:
        ev->type = FCGI_EV_GET_VALUES;
        ev->data = slice(p->body, p->content_length);
        break;
    default:
        ev->type = FCGI_EV_UNKNOWN_TYPE;
        break;
    }
}

/* The content is done: the padding, if any, then the next header. */
static void end_content(struct fcgi_parser *p)
{
    p->state = p->padding_left ? ST_PADDING : ST_HEADER;
}

int proto_fcgi_next(struct fcgi_parser *p, const char *buf, size_t len, struct fcgi_event *ev)
{
    const unsigned char *start = (const unsigned char *)buf, *q = start, *end = start + len;

    *ev = (struct fcgi_event){ .type = FCGI_EV_NONE };
    if (p->error)
        return p->error;
    if (len == 0) /* buf may be NULL then, and NULL + 0 is undefined in C */
        return 0;

    /*
     * One pass per state change, each consuming at least one byte; leaves as soon as an event is
     * filled, so that the caller sees every event, or when the bytes run out. Every record gives
     * an event, so one call consumes at most padding, a header and a record's content: the
     * result always fits an int, however long buf is.
     */
    while (q != end && ev->type == FCGI_EV_NONE) {
        size_t avail = (size_t)(end - q), n;

        switch (p->state) {
        case ST_HEADER:
            n = min_size(avail, FCGI_HEADER_LEN - p->header_have);
            memcpy(p->header + p->header_have, q, n);
            p->header_have = (uint8_t)(p->header_have + n);
            q += n;
            if (p->header_have < FCGI_HEADER_LEN)
                break;
            if (take_header(p) < 0)
                return p->error;
            if (p->content_left == 0) { /* an empty record: its event at once */
                record_event(p, ev);
                end_content(p);
            }
            break;

        case ST_CONTENT:
            n = min_size(avail, p->content_left);
            if (is_stream(p->type)) {
                ev->type = p->type == FCGI_PARAMS  ? FCGI_EV_PARAMS
                           : p->type == FCGI_STDIN ? FCGI_EV_STDIN
                                                   : FCGI_EV_DATA;
                ev->record_type = p->type;
                ev->request_id = p->request_id;
                ev->data = slice(q, n);
            } else if (is_accumulated(p->type)) {
                /* content_length - content_left bytes are in already; take_header() made sure
                 * content_length fits body[]. */
                memcpy(p->body + (p->content_length - p->content_left), q, n);
            }
            q += n;
            p->content_left = (uint16_t)(p->content_left - n);
            if (p->content_left == 0) {
                if (!is_stream(p->type))
                    record_event(p, ev);
                end_content(p);
            }
            break;

        case ST_PADDING:
            n = min_size(avail, p->padding_left);
            q += n;
            p->padding_left = (uint8_t)(p->padding_left - n);
            if (p->padding_left == 0)
                p->state = ST_HEADER;
            break;
        }
    }
    return (int)(q - start);
}

/* ---- name-value pairs ---- */

/*
 * One length field at *pp: a byte below 0x80 is the length; otherwise it is the top byte of a
 * 4-byte big-endian length with that bit cleared. A field cut by the end of the block is
 * FCGI_E_TRUNCATED. The 4-byte form of a length below 128 is taken too: the spec says short
 * lengths *may* use one byte.
 */
static int read_length(const unsigned char **pp, const unsigned char *end, size_t *out)
{
    const unsigned char *p = *pp;

    if (p == end)
        return FCGI_E_TRUNCATED;
    if (!(p[0] & 0x80)) {
        *out = p[0];
        *pp = p + 1;
        return 0;
    }
    if (end - p < 4)
        return FCGI_E_TRUNCATED;
    *out = (size_t)(p[0] & 0x7f) << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    *pp = p + 4;
    return 0;
}

/*
 * Frame the next pair of the block p[0..end): both length fields, then the name and the value,
 * each length checked against the bytes left before the pointer moves over it.
 */
static int next_pair(const unsigned char **pp, const unsigned char *end, struct gy_param *out)
{
    const unsigned char *p = *pp;
    size_t nlen, vlen;

    if (read_length(&p, end, &nlen) < 0 || read_length(&p, end, &vlen) < 0)
        return FCGI_E_TRUNCATED;
    if ((size_t)(end - p) < nlen)
        return FCGI_E_TRUNCATED;
    out->name = slice(p, nlen);
    p += nlen;
    if ((size_t)(end - p) < vlen)
        return FCGI_E_TRUNCATED;
    out->value = slice(p, vlen);
    *pp = p + vlen;
    return 0;
}

/*
 * Each pair is framed completely before its contents are judged or counted, so TRUNCATED wins
 * over what a cut pair's name would say. Results reach out only on success.
 */
int proto_fcgi_parse_params(const char *buf, size_t len, struct fcgi_params *out)
{
    /* No arithmetic on buf when len is 0: it may be NULL (no params at all). */
    const unsigned char *p = (const unsigned char *)buf, *end = len ? p + len : p;
    uint32_t n = 0;
    int64_t content_length = 0;

    out->nparams = 0;
    out->content_length = 0;
    while (p != end) {
        struct gy_param pair;

        if (next_pair(&p, end, &pair) < 0)
            return FCGI_E_TRUNCATED;
        if (pair.name.len == 0)
            return FCGI_E_EMPTY_NAME;
        if (n == GY_MAX_PARAMS)
            return FCGI_E_TOO_MANY_PARAMS;
        /* Repeated: each must be valid and the last wins, as in the environ dict. */
        if (GY_SLICE_EQ(pair.name, "CONTENT_LENGTH") &&
            gy_parse_decimal(pair.value.ptr, pair.value.len, &content_length) < 0)
            return FCGI_E_CONTENT_LENGTH;
        out->params[n++] = pair;
    }
    out->nparams = n;
    out->content_length = content_length;
    return (int)n;
}

/* ---- management records ---- */

int proto_fcgi_get_values_asked(const char *content, size_t len)
{
    const unsigned char *p = (const unsigned char *)content, *end = len ? p + len : p;
    unsigned asked = 0;

    while (p != end) {
        struct gy_param pair;

        if (next_pair(&p, end, &pair) < 0)
            return FCGI_E_TRUNCATED;
        if (GY_SLICE_EQ(pair.name, "FCGI_MAX_CONNS"))
            asked |= FCGI_ASKED_MAX_CONNS;
        else if (GY_SLICE_EQ(pair.name, "FCGI_MAX_REQS"))
            asked |= FCGI_ASKED_MAX_REQS;
        else if (GY_SLICE_EQ(pair.name, "FCGI_MPXS_CONNS"))
            asked |= FCGI_ASKED_MPXS_CONNS;
    }
    return (int)asked;
}

static void write_header(unsigned char *h, uint8_t type, uint16_t id, size_t clen)
{
    h[0] = FCGI_VERSION_1;
    h[1] = type;
    h[2] = (unsigned char)(id >> 8);
    h[3] = (unsigned char)(id & 0xff);
    h[4] = (unsigned char)(clen >> 8);
    h[5] = (unsigned char)(clen & 0xff);
    h[6] = (unsigned char)fcgi_padding_length(clen);
    h[7] = 0;
}

/* A pair with a name under 128 bytes and a decimal value (at most 10 digits): 1-byte lengths. */
static size_t put_value(unsigned char *p, const char *name, uint32_t value)
{
    size_t nlen = strlen(name), vlen = 0;
    char digits[10];

    do {
        digits[vlen++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    p[0] = (unsigned char)nlen;
    p[1] = (unsigned char)vlen;
    memcpy(p + 2, name, nlen);
    for (size_t i = 0; i < vlen; i++)
        p[2 + nlen + i] = (unsigned char)digits[vlen - 1 - i];
    return 2 + nlen + vlen;
}

int proto_fcgi_encode_get_values_result(char *out, size_t outsize, unsigned asked,
                                        const struct fcgi_values *values)
{
    /* Built aside and copied, so out needs only the record's real size. */
    unsigned char rec[FCGI_GET_VALUES_RESULT_MAX];
    size_t clen = 0, size;

    if (asked & FCGI_ASKED_MAX_CONNS)
        clen += put_value(rec + FCGI_HEADER_LEN + clen, "FCGI_MAX_CONNS", values->max_conns);
    if (asked & FCGI_ASKED_MAX_REQS)
        clen += put_value(rec + FCGI_HEADER_LEN + clen, "FCGI_MAX_REQS", values->max_reqs);
    if (asked & FCGI_ASKED_MPXS_CONNS)
        clen += put_value(rec + FCGI_HEADER_LEN + clen, "FCGI_MPXS_CONNS", values->mpxs_conns != 0);
    write_header(rec, FCGI_GET_VALUES_RESULT, FCGI_NULL_REQUEST_ID, clen);
    size = fcgi_record_size(clen);
    memset(rec + FCGI_HEADER_LEN + clen, 0, fcgi_padding_length(clen));
    if (outsize < size)
        return FCGI_E_NO_SPACE;
    memcpy(out, rec, size);
    return (int)size;
}

int proto_fcgi_encode_unknown_type(char *out, size_t outsize, uint8_t type)
{
    unsigned char *o = (unsigned char *)out;

    if (outsize < FCGI_UNKNOWN_TYPE_LEN)
        return FCGI_E_NO_SPACE;
    write_header(o, FCGI_UNKNOWN_TYPE, FCGI_NULL_REQUEST_ID, 8);
    o[8] = type;
    memset(o + 9, 0, 7);
    return FCGI_UNKNOWN_TYPE_LEN;
}

/* ---- response records ---- */

int proto_fcgi_encode_header(char *out, size_t outsize, uint8_t type, uint16_t request_id,
                             size_t content_len)
{
    if (content_len > FCGI_MAX_CONTENT)
        return FCGI_E_CONTENT_TOO_LONG;
    if (outsize < FCGI_HEADER_LEN)
        return FCGI_E_NO_SPACE;
    write_header((unsigned char *)out, type, request_id, content_len);
    return FCGI_HEADER_LEN;
}

int proto_fcgi_encode_stdout_header(char *out, size_t outsize, uint16_t request_id,
                                    size_t content_len)
{
    return proto_fcgi_encode_header(out, outsize, FCGI_STDOUT, request_id, content_len);
}

int proto_fcgi_encode_stderr_header(char *out, size_t outsize, uint16_t request_id,
                                    size_t content_len)
{
    return proto_fcgi_encode_header(out, outsize, FCGI_STDERR, request_id, content_len);
}

int proto_fcgi_encode_record(char *out, size_t outsize, uint8_t type, uint16_t request_id,
                             const char *content, size_t len)
{
    size_t size;

    if (len > FCGI_MAX_CONTENT)
        return FCGI_E_CONTENT_TOO_LONG;
    size = fcgi_record_size(len);
    if (outsize < size)
        return FCGI_E_NO_SPACE;
    write_header((unsigned char *)out, type, request_id, len);
    /* memmove: the content may already sit at out + FCGI_HEADER_LEN, framed in place. It may be
     * NULL when len is 0. */
    if (len)
        memmove(out + FCGI_HEADER_LEN, content, len);
    memset(out + FCGI_HEADER_LEN + len, 0, fcgi_padding_length(len));
    return (int)size;
}

int proto_fcgi_encode_end_request(char *out, size_t outsize, uint16_t request_id,
                                  uint32_t app_status, uint8_t protocol_status)
{
    unsigned char *o = (unsigned char *)out;

    if (outsize < FCGI_END_REQUEST_LEN)
        return FCGI_E_NO_SPACE;
    write_header(o, FCGI_END_REQUEST, request_id, 8);
    o[8] = (unsigned char)(app_status >> 24);
    o[9] = (unsigned char)(app_status >> 16 & 0xff);
    o[10] = (unsigned char)(app_status >> 8 & 0xff);
    o[11] = (unsigned char)(app_status & 0xff);
    o[12] = protocol_status;
    memset(o + 13, 0, 3);
    return FCGI_END_REQUEST_LEN;
}

const char *proto_fcgi_strerror(int status)
{
    switch (status) {
    case FCGI_E_VERSION:
        return "unsupported record version";
    case FCGI_E_MANAGEMENT_ID:
        return "management record on a request id";
    case FCGI_E_NULL_REQUEST_ID:
        return "request record on request id 0";
    case FCGI_E_BEGIN_LENGTH:
        return "begin-request body not 8 bytes";
    case FCGI_E_GET_VALUES_TOO_BIG:
        return "get-values record too large";
    case FCGI_E_TRUNCATED:
        return "name-value pair runs past the end of the block";
    case FCGI_E_EMPTY_NAME:
        return "param with an empty name";
    case FCGI_E_TOO_MANY_PARAMS:
        return "too many params";
    case FCGI_E_CONTENT_LENGTH:
        return "invalid CONTENT_LENGTH";
    case FCGI_E_NO_SPACE:
        return "output buffer too small";
    case FCGI_E_CONTENT_TOO_LONG:
        return "record content over 65535 bytes";
    default:
        return status >= 0 ? "no error" : "unknown error";
    }
}
