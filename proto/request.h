/*
 * The request model every wire protocol parses into.
 *
 * Parsers never copy or allocate: a parameter is a pair of slices pointing into the caller's
 * buffer, valid for as long as that buffer is. The server turns the pairs into the WSGI environ.
 */
#ifndef GYRE_PROTO_REQUEST_H
#define GYRE_PROTO_REQUEST_H

#include <stddef.h>
#include <stdint.h>

/* Upper bound on the CGI variables of one request. nginx sends about 30; a uwsgi vars block of
 * 65535 bytes could hold 16383 empty ones, and nobody legitimate sends that. */
#define GY_MAX_PARAMS 512

struct gy_slice {
    const char *ptr;
    uint32_t len;
};

struct gy_param {
    struct gy_slice name;
    struct gy_slice value;
};

/* Compare a slice with lit_len bytes of lit (GY_SLICE_EQ: with a string literal). */
static inline int gy_slice_eq(struct gy_slice s, const char *lit, size_t lit_len)
{
    if (s.len != lit_len)
        return 0;
    for (size_t i = 0; i < lit_len; i++)
        if (s.ptr[i] != lit[i])
            return 0;
    return 1;
}
#define GY_SLICE_EQ(s, lit) gy_slice_eq((s), (lit), sizeof(lit) - 1)

/*
 * A body length from the wire (uwsgi's and FastCGI's CONTENT_LENGTH, HTTP's Content-Length),
 * read strictly: ASCII digits only, at most INT64_MAX. Anything a lenient reader would take
 * differently from the front end or the app -- a sign, blanks, trailing junk, another base,
 * overflow -- is refused (-1) rather than guessed at. An empty string is 0; a caller for whom
 * that is an error (HTTP's 1*DIGIT) checks len first.
 */
static inline int gy_parse_decimal(const char *p, size_t len, int64_t *out)
{
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)p[i] - (unsigned)'0'; /* wraps below '0': one test does */
        if (d > 9 || v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

#endif
