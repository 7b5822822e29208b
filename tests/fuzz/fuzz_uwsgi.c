/*
 * libFuzzer harness for proto_uwsgi_parse().
 *
 * Input: max_datasize:u16le, then the bytes handed to the parser. 0xffff stands for SIZE_MAX, a
 * limit past anything the 16-bit datasize can announce.
 *
 * Beyond "no crash, no sanitizer report", every result is checked against a plain reference
 * reading of the spec written differently from the parser (indices, not pointers; a different
 * overflow test for CONTENT_LENGTH), and a success must re-encode to exactly the parsed bytes.
 * Prefixes are re-parsed from exactly-sized heap copies, so ASan sees any read past the end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uwsgi.h"

#define INVARIANT(c)                                                                               \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static size_t u16le(const uint8_t *p)
{
    return p[0] + 256 * (size_t)p[1];
}

/* Decimal digits only, value <= INT64_MAX: by length and string comparison, not arithmetic. */
static int reference_content_length(const uint8_t *p, size_t n, int64_t *out)
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

/* The spec, checked in the order it lists; offsets never exceed 4 + 65535 + 65535 + 4. */
static int reference_parse(const uint8_t *b, size_t len, size_t max, int64_t *content_length,
                           uint32_t *nvars)
{
    size_t datasize, i, end;

    *content_length = 0;
    *nvars = 0;
    if (len < 4)
        return UWSGI_INCOMPLETE;
    datasize = u16le(b + 1);
    if (b[0] != 0)
        return UWSGI_E_MODIFIER;
    if (datasize == 0)
        return UWSGI_E_EMPTY;
    if (datasize > max)
        return UWSGI_E_TOO_BIG;
    if (len < 4 + datasize)
        return UWSGI_INCOMPLETE;
    for (i = 4, end = 4 + datasize; i < end;) {
        size_t key, klen, val, vlen;

        if (i + 2 > end)
            return UWSGI_E_TRUNCATED;
        klen = u16le(b + i);
        key = i + 2;
        if (key + klen + 2 > end)
            return UWSGI_E_TRUNCATED;
        vlen = u16le(b + key + klen);
        val = key + klen + 2;
        if (val + vlen > end)
            return UWSGI_E_TRUNCATED;
        i = val + vlen;
        if (klen == 0)
            return UWSGI_E_EMPTY_KEY;
        if (++*nvars > GY_MAX_PARAMS)
            return UWSGI_E_TOO_MANY_VARS;
        if (klen == 14 && memcmp(b + key, "CONTENT_LENGTH", 14) == 0 &&
            !reference_content_length(b + val, vlen, content_length))
            return UWSGI_E_CONTENT_LENGTH;
    }
    return (int)end;
}

/* Writes the params back in wire form and compares with the block; also pins every slice to
 * the place it must occupy, which equal bytes alone would not prove. */
static void check_reencodes(const uint8_t *buf, int r, const struct uwsgi_request *req)
{
    static uint8_t out[UWSGI_HEADER_SIZE + UWSGI_MAX_DATASIZE];
    size_t o = UWSGI_HEADER_SIZE;

    out[0] = req->modifier1;
    out[1] = (uint8_t)(req->datasize & 0xff);
    out[2] = (uint8_t)(req->datasize >> 8);
    out[3] = req->modifier2;
    for (uint32_t i = 0; i < req->nparams; i++) {
        const struct gy_slice *s[2] = { &req->params[i].name, &req->params[i].value };

        INVARIANT(s[0]->len > 0);
        for (int j = 0; j < 2; j++) {
            INVARIANT((size_t)r - o >= 2 && s[j]->len <= (size_t)r - o - 2);
            INVARIANT(s[j]->ptr == (const char *)buf + o + 2);
            out[o] = (uint8_t)(s[j]->len & 0xff);
            out[o + 1] = (uint8_t)(s[j]->len >> 8);
            memcpy(out + o + 2, s[j]->ptr, s[j]->len);
            o += 2 + s[j]->len;
        }
    }
    INVARIANT(o == (size_t)r);
    INVARIANT(memcmp(out, buf, o) == 0);
}

/* Parses an exactly-sized heap copy of buf[0..n): ASan flags a read of byte n. */
static int parse_copy(const uint8_t *buf, size_t n, size_t max, struct uwsgi_request *req)
{
    char *copy = malloc(n ? n : 1);
    int r;

    INVARIANT(copy != NULL);
    memcpy(copy, buf, n);
    r = proto_uwsgi_parse(copy, n, max, req);
    free(copy);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct uwsgi_request req, again;
    const uint8_t *buf;
    size_t len, max;
    int64_t ref_content_length;
    uint32_t ref_nvars;
    int r, ref;

    if (size < 2)
        return 0;
    max = u16le(data) == 0xffff ? SIZE_MAX : u16le(data);
    buf = data + 2;
    len = size - 2;

    r = proto_uwsgi_parse((const char *)buf, len, max, &req);
    ref = reference_parse(buf, len, max, &ref_content_length, &ref_nvars);
    if (r != ref) {
        fprintf(stderr, "parser says %d (%s), reference says %d (%s)\n", r, proto_uwsgi_strerror(r),
                ref, proto_uwsgi_strerror(ref));
        abort();
    }
    INVARIANT(r >= UWSGI_E_CONTENT_LENGTH);
    INVARIANT(proto_uwsgi_strerror(r) != NULL);
    if (len >= UWSGI_HEADER_SIZE) {
        INVARIANT(req.modifier1 == buf[0]);
        INVARIANT(req.datasize == u16le(buf + 1));
        INVARIANT(req.modifier2 == buf[3]);
    }
    if (r <= 0) {
        INVARIANT(req.nparams == 0 && req.content_length == 0);
        return 0;
    }

    INVARIANT((size_t)r <= len);
    INVARIANT(r == UWSGI_HEADER_SIZE + req.datasize);
    INVARIANT(req.nparams <= GY_MAX_PARAMS);
    INVARIANT(req.nparams == ref_nvars);
    INVARIANT(req.content_length == ref_content_length);
    check_reencodes(buf, r, &req);

    /* The body is not the parser's business: the block alone parses the same, one byte short
     * of it does not parse yet. */
    INVARIANT(parse_copy(buf, (size_t)r, max, &again) == r);
    INVARIANT(again.nparams == req.nparams && again.content_length == req.content_length);
    INVARIANT(parse_copy(buf, (size_t)r - 1, max, &again) == UWSGI_INCOMPLETE);
    return 0;
}
