/*
 * The uwsgi request parser: header and vars block, zero-copy, no allocation, no state.
 *
 * Being stateless costs nothing on a slow client: the header alone says how long the vars block
 * is, and the vars are walked only once all of it is in, so a request that trickles in byte by
 * byte is still walked exactly once; each earlier call only looks at 4 bytes.
 *
 * Every bounds check compares a length with the bytes left (end - p) before a pointer moves, so
 * no pointer is ever formed past the end of the block, let alone dereferenced there.
 */
#include "uwsgi.h"

#include <string.h>

/* Byte arithmetic rather than a uint16_t load: the buffer has no alignment and the wire is
 * little-endian whatever the host is. */
static inline size_t read_u16le(const unsigned char *p)
{
    return (size_t)p[0] | (size_t)p[1] << 8;
}

static inline struct gy_slice slice(const unsigned char *p, size_t len)
{
    return (struct gy_slice){ .ptr = (const char *)p, .len = (uint32_t)len };
}

static inline int is_content_length(const unsigned char *key, size_t len)
{
    static const char name[] = "CONTENT_LENGTH";

    return len == sizeof(name) - 1 && memcmp(key, name, len) == 0;
}

/*
 * Walk the vars block p[0..end). Each var is framed completely (both lengths checked against
 * the block) before its contents are judged or counted: bytes that do not fit are no var at all,
 * so TRUNCATED wins over what their name or number would say. The results reach req only on
 * success: after an error nparams stays 0 and no half-filled params pass for a request.
 */
static int parse_vars(const unsigned char *p, const unsigned char *end, struct uwsgi_request *req)
{
    uint32_t n = 0;
    int64_t content_length = 0;

    while (p != end) {
        const unsigned char *key, *val;
        size_t klen, vlen;

        if (end - p < 2)
            return UWSGI_E_TRUNCATED;
        klen = read_u16le(p);
        key = p + 2;
        if ((size_t)(end - key) < klen + 2) /* the key and the value's length field */
            return UWSGI_E_TRUNCATED;
        vlen = read_u16le(key + klen);
        val = key + klen + 2;
        if ((size_t)(end - val) < vlen)
            return UWSGI_E_TRUNCATED;
        p = val + vlen;

        if (klen == 0)
            return UWSGI_E_EMPTY_KEY;
        if (n == GY_MAX_PARAMS)
            return UWSGI_E_TOO_MANY_VARS;
        /* A repeated CONTENT_LENGTH: each must be valid and the last wins, as it does when the
         * params are stored into the environ dict in order, so body framing and app agree. */
        if (is_content_length(key, klen) &&
            gy_parse_decimal((const char *)val, vlen, &content_length) < 0)
            return UWSGI_E_CONTENT_LENGTH;
        req->params[n].name = slice(key, klen);
        req->params[n].value = slice(val, vlen);
        n++;
    }
    req->nparams = n;
    req->content_length = content_length;
    return 0;
}

int proto_uwsgi_parse(const char *buf, size_t len, size_t max_datasize, struct uwsgi_request *req)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t datasize;
    int r;

    /* The header fields are filled as soon as they are known, even on error, for the log line;
     * nparams and content_length only on success. */
    req->modifier1 = 0;
    req->modifier2 = 0;
    req->datasize = 0;
    req->nparams = 0;
    req->content_length = 0;

    if (len < UWSGI_HEADER_SIZE)
        return UWSGI_INCOMPLETE;
    datasize = read_u16le(p + 1);
    req->modifier1 = p[0];
    req->datasize = (uint16_t)datasize;
    req->modifier2 = p[3];

    /* Decided on the header alone, so a bad or oversized request is refused before the server
     * waits for (or buffers) a vars block it will never use. */
    if (p[0] != 0)
        return UWSGI_E_MODIFIER;
    if (datasize == 0)
        return UWSGI_E_EMPTY;
    if (datasize > max_datasize)
        return UWSGI_E_TOO_BIG;

    if (len - UWSGI_HEADER_SIZE < datasize)
        return UWSGI_INCOMPLETE;
    p += UWSGI_HEADER_SIZE;
    r = parse_vars(p, p + datasize, req);
    if (r < 0)
        return r;
    return UWSGI_HEADER_SIZE + (int)datasize;
}

const char *proto_uwsgi_strerror(int status)
{
    switch (status) {
    case UWSGI_INCOMPLETE:
        return "incomplete request";
    case UWSGI_E_TOO_BIG:
        return "vars block larger than buffer-size";
    case UWSGI_E_MODIFIER:
        return "unsupported modifier1";
    case UWSGI_E_EMPTY:
        return "empty vars block";
    case UWSGI_E_TRUNCATED:
        return "var runs past the end of the vars block";
    case UWSGI_E_EMPTY_KEY:
        return "var with an empty name";
    case UWSGI_E_TOO_MANY_VARS:
        return "too many vars";
    case UWSGI_E_CONTENT_LENGTH:
        return "invalid CONTENT_LENGTH";
    default:
        return status > 0 ? "no error" : "unknown error";
    }
}
