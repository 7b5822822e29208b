/*
 * The HTTP/1.x request parser (head only, zero-copy, no allocation, no state) and the chunked
 * body decoder (incremental, in place).
 *
 * The head parser reads left to right and decides every error at the first byte that makes the
 * request bad, looking at nothing after it. So a prefix of a request can only be INCOMPLETE or
 * have the result of the whole request, and an error comes out as soon as its byte arrives, not
 * when the head is complete. Limits are positions too: a target is too long at its
 * (max_target + 1)th byte, a head too large when its (max_head + 1)th byte arrives and the head
 * has not ended.
 *
 * Every bounds check compares a length with the bytes left (end - p) before a pointer moves;
 * bound() caps a scan at a limit without forming a pointer past end.
 */
#include "http.h"

#include <limits.h>
#include <string.h>

/* ---- character classes ---- */

enum {
    C_TCHAR = 1,  /* RFC 9110 5.6.2 tchar: field names, methods, transfer codings */
    C_VALUE = 2,  /* field-value bytes: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 4, /* request-target bytes: VCHAR but '#', and obs-text (nginx takes it too) */
    C_HOST = 8,   /* uri-host [ ":" port ]: unreserved, pct-encoded, sub-delims, ':', '[', ']' */
};

#define NO 0
#define WS C_VALUE
#define TV (C_TCHAR | C_VALUE)
#define VU (C_VALUE | C_TARGET)
#define VUH (C_VALUE | C_TARGET | C_HOST)
#define TVU (C_TCHAR | C_VALUE | C_TARGET)
#define ALL (C_TCHAR | C_VALUE | C_TARGET | C_HOST)

/* Generated from the definitions above, and checked byte by byte by the unit tests. */
static const uint8_t char_class[256] = {
    /* 0_ */ NO,  NO,  NO,  NO,  NO,  NO,  NO,  NO,
    NO,           WS,  NO,  NO,  NO,  NO,  NO,  NO,
    /* 1_ */ NO,  NO,  NO,  NO,  NO,  NO,  NO,  NO,
    NO,           NO,  NO,  NO,  NO,  NO,  NO,  NO,
    /* 2_ */ WS,  ALL, VU,  TV,  ALL, ALL, ALL, ALL,
    VUH,          VUH, ALL, ALL, VUH, ALL, ALL, VU,
    /* 3_ */ ALL, ALL, ALL, ALL, ALL, ALL, ALL, ALL,
    ALL,          ALL, VUH, VUH, VU,  VUH, VU,  VU,
    /* 4_ */ VU,  ALL, ALL, ALL, ALL, ALL, ALL, ALL,
    ALL,          ALL, ALL, ALL, ALL, ALL, ALL, ALL,
    /* 5_ */ ALL, ALL, ALL, ALL, ALL, ALL, ALL, ALL,
    ALL,          ALL, ALL, VUH, VU,  VUH, TVU, ALL,
    /* 6_ */ TVU, ALL, ALL, ALL, ALL, ALL, ALL, ALL,
    ALL,          ALL, ALL, ALL, ALL, ALL, ALL, ALL,
    /* 7_ */ ALL, ALL, ALL, ALL, ALL, ALL, ALL, ALL,
    ALL,          ALL, ALL, VU,  TVU, VU,  ALL, NO,
    /* 8_ */ VU,  VU,  VU,  VU,  VU,  VU,  VU,  VU,
    VU,           VU,  VU,  VU,  VU,  VU,  VU,  VU,
    /* 9_ */ VU,  VU,  VU,  VU,  VU,  VU,  VU,  VU,
    VU,           VU,  VU,  VU,  VU,  VU,  VU,  VU,
    /* a_ */ VU,  VU,  VU,  VU,  VU,  VU,  VU,  VU,
    VU,           VU,  VU,  VU,  VU,  VU,  VU,  VU,
    /* b_ */ VU,  VU,  VU,  VU,  VU,  VU,  VU,  VU,
    VU,           VU,  VU,  VU,  VU,  VU,  VU,  VU,
    /* c_ */ VU,  VU,  VU,  VU,  VU,  VU,  VU,  VU,
    VU,           VU,  VU,  VU,  VU,  VU,  VU,  VU,
    /* d_ */ VU,  VU,  VU,  VU,  VU,  VU,  VU,  VU,
    VU,           VU,  VU,  VU,  VU,  VU,  VU,  VU,
    /* e_ */ VU,  VU,  VU,  VU,  VU,  VU,  VU,  VU,
    VU,           VU,  VU,  VU,  VU,  VU,  VU,  VU,
    /* f_ */ VU,  VU,  VU,  VU,  VU,  VU,  VU,  VU,
    VU,           VU,  VU,  VU,  VU,  VU,  VU,  VU,
};

#undef NO
#undef WS
#undef TV
#undef VU
#undef VUH
#undef TVU
#undef ALL

static inline int is_class(unsigned char c, unsigned cls)
{
    return (char_class[c] & cls) != 0;
}

static inline int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static inline unsigned char to_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static inline struct gy_slice slice(const unsigned char *p, size_t len)
{
    return (struct gy_slice){ .ptr = (const char *)p, .len = (uint32_t)len };
}

/* p + n, or end if fewer than n bytes are left. */
static inline const unsigned char *bound(const unsigned char *p, const unsigned char *end, size_t n)
{
    return (size_t)(end - p) > n ? p + n : end;
}

/* The first byte of [p, end) not in cls, or end. */
static inline const unsigned char *scan(const unsigned char *p, const unsigned char *end,
                                        unsigned cls)
{
    while (p != end && is_class(*p, cls))
        p++;
    return p;
}

/* Case-insensitive equality of [p, end) with a lowercase literal. */
static int span_eq(const unsigned char *p, const unsigned char *end, const char *lower, size_t n)
{
    if ((size_t)(end - p) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (to_lower(p[i]) != (unsigned char)lower[i])
            return 0;
    return 1;
}
#define SPAN_EQ(p, end, lit) span_eq((p), (end), (lit), sizeof(lit) - 1)

/* Narrows [*s, *e) to exclude leading and trailing SP/HTAB. */
static void trim_ows(const unsigned char **s, const unsigned char **e)
{
    while (*s != *e && is_ows(**s))
        (*s)++;
    while (*e != *s && is_ows((*e)[-1]))
        (*e)--;
}

/* The end of the comma-list element starting at p: the next ',' or end. */
static const unsigned char *element_end(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *comma = memchr(p, ',', (size_t)(end - p));

    return comma ? comma : end;
}

/* ---- the request head ---- */

struct limits {
    size_t max_head, max_target, max_header_line, max_headers;
};

static void resolve_limits(const struct http_limits *lim, struct limits *l)
{
    static const struct http_limits none;

    if (lim == NULL)
        lim = &none;
    l->max_head = lim->max_head ? lim->max_head : HTTP_DEFAULT_MAX_HEAD;
    l->max_target = lim->max_target ? lim->max_target : HTTP_DEFAULT_MAX_TARGET;
    l->max_header_line = lim->max_header_line ? lim->max_header_line : HTTP_DEFAULT_MAX_HEADER_LINE;
    l->max_headers = lim->max_headers ? lim->max_headers : HTTP_DEFAULT_MAX_HEADERS;
    /* The head length is returned as an int; slices hold uint32_t lengths. */
    if (l->max_head > INT32_MAX)
        l->max_head = INT32_MAX;
    if (l->max_headers > HTTP_MAX_HEADERS)
        l->max_headers = HTTP_MAX_HEADERS;
}

/* What the fields say about the request, gathered line by line. */
struct fields {
    int64_t content_length;
    struct gy_slice content_length_value; /* the first number as sent, for the one field kept */
    uint8_t has_content_length;
    uint8_t chunked;
    uint8_t conn_close;
    uint8_t conn_keep_alive;
    uint8_t expect_continue;
    uint8_t has_host;
    struct gy_slice host;
};

/* The target split, kept aside until the whole head has parsed. */
struct target {
    struct gy_slice path, query, authority;
    uint8_t absolute;
};

/*
 * A CRLF at *pp: 1 (and *pp moved past it), HTTP_INCOMPLETE, or HTTP_E_LINE_ENDING for a CR
 * not followed by LF or anything else. Callers only come here on a CR or LF byte.
 */
static int expect_crlf(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;

    if (p == end)
        return HTTP_INCOMPLETE;
    if (p[0] != '\r')
        return HTTP_E_LINE_ENDING;
    if (end - p < 2)
        return HTTP_INCOMPLETE;
    if (p[1] != '\n')
        return HTTP_E_LINE_ENDING;
    *pp = p + 2;
    return 1;
}

static int is_host(const unsigned char *p, const unsigned char *end)
{
    return scan(p, end, C_HOST) == end;
}

/*
 * Which of the four forms of RFC 9112 3.2 the target is, and its path, query and authority.
 * The bytes are already known to be C_TARGET.
 */
static int split_target(const unsigned char *t, const unsigned char *end, struct gy_slice method,
                        struct target *out)
{
    const unsigned char *path = t, *q;

    /* Empty parts are empty slices of the target, never NULL: every slice points into buf. */
    out->path = out->query = out->authority = slice(end, 0);
    out->absolute = 0;
    if (t[0] == '/') {
        /* origin-form, the usual */
    } else if (end - t == 1 && t[0] == '*') {
        /* asterisk-form, OPTIONS only */
        if (!GY_SLICE_EQ(method, "OPTIONS"))
            return HTTP_E_TARGET;
        out->path = slice(t, 1);
        return 0;
    } else {
        /* absolute-form "http://authority/path?query", which servers must accept (RFC 9112
         * 3.2.2). Only http and https: anything else is not for an HTTP server. */
        const unsigned char *colon = memchr(t, ':', (size_t)(end - t)), *auth;

        if (colon == NULL || !(SPAN_EQ(t, colon, "http") || SPAN_EQ(t, colon, "https")))
            return HTTP_E_TARGET;
        if (end - colon < 3 || colon[1] != '/' || colon[2] != '/')
            return HTTP_E_TARGET;
        auth = colon + 3;
        for (path = auth; path != end && *path != '/' && *path != '?'; path++)
            ;
        /* no userinfo ('@' is not a host byte), no empty host */
        if (path == auth || !is_host(auth, path))
            return HTTP_E_TARGET;
        out->authority = slice(auth, (size_t)(path - auth));
        out->absolute = 1;
    }
    q = memchr(path, '?', (size_t)(end - path));
    if (q) {
        out->path = slice(path, (size_t)(q - path));
        out->query = slice(q + 1, (size_t)(end - q - 1));
    } else {
        out->path = slice(path, (size_t)(end - path));
    }
    return 0;
}

/* "HTTP/" DIGIT "." DIGIT CRLF at *pp, byte by byte so a bad byte fails as soon as it is in. */
static int parse_version(const unsigned char **pp, const unsigned char *end, uint8_t *minor)
{
    static const char form[] = "HTTP/9.9"; /* '9': any digit */
    const unsigned char *p = *pp;
    size_t have = (size_t)(end - p);
    int r;

    for (size_t i = 0; i < sizeof(form) - 1; i++) {
        if (i == have)
            return HTTP_INCOMPLETE;
        if (form[i] == '9' ? (unsigned)(p[i] - '0') > 9 : p[i] != form[i])
            return HTTP_E_VERSION;
    }
    if (have == 8)
        return HTTP_INCOMPLETE;
    if (p[8] != '\r')
        return p[8] == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_VERSION; /* "HTTP/1.10", "HTTP/1.1 " */
    p += 8;
    r = expect_crlf(&p, end);
    if (r <= 0)
        return r;
    /* Judged once the version is known to be well-formed: HTTP/2.0 is 505, HTTP/2.00 is 400. */
    if ((*pp)[5] != '1' || (*pp)[7] > '1')
        return HTTP_E_VERSION_UNSUPPORTED;
    *minor = (uint8_t)((*pp)[7] - '0');
    *pp = p;
    return 1;
}

/* method SP request-target SP HTTP-version CRLF */
static int parse_request_line(const unsigned char **pp, const unsigned char *end,
                              const struct limits *l, struct http_request *req, struct target *tg)
{
    const unsigned char *p = *pp, *stop, *q;
    int r;

    stop = bound(p, end, HTTP_MAX_METHOD + 1);
    q = scan(p, stop, C_TCHAR);
    if (q == stop)
        return (size_t)(stop - p) > HTTP_MAX_METHOD ? HTTP_E_METHOD_TOO_LONG : HTTP_INCOMPLETE;
    if (q == p || *q != ' ')
        return HTTP_E_METHOD;
    req->method = slice(p, (size_t)(q - p));
    /* CONNECT asks for a tunnel: what follows its head is not HTTP, and gyre is no proxy. It is
     * refused here, before its authority-form target, so it can never reach the app or leave
     * the connection open for the tunnel's bytes to be read as requests. */
    if (GY_SLICE_EQ(req->method, "CONNECT"))
        return HTTP_E_METHOD_CONNECT;
    p = q + 1;

    stop = bound(p, end, l->max_target + 1);
    q = scan(p, stop, C_TARGET);
    if (q == stop)
        return (size_t)(stop - p) > l->max_target ? HTTP_E_TARGET_TOO_LONG : HTTP_INCOMPLETE;
    if (*q == '\r' || *q == '\n')
        return q == p ? HTTP_E_TARGET : HTTP_E_REQUEST_LINE; /* HTTP/0.9 style, no version */
    if (q == p || *q != ' ')
        return HTTP_E_TARGET; /* empty (two spaces), a control byte, '#' */
    req->target = slice(p, (size_t)(q - p));
    r = split_target(p, q, req->method, tg);
    if (r < 0)
        return r;
    p = q + 1;

    r = parse_version(&p, end, &req->minor_version);
    if (r <= 0)
        return r;
    *pp = p;
    return 1;
}

/* 1*DIGIT, at most INT64_MAX (request.h): HTTP wants at least one digit. */
static int parse_decimal(const unsigned char *p, const unsigned char *end, int64_t *out)
{
    if (p == end)
        return -1;
    return gy_parse_decimal((const char *)p, (size_t)(end - p), out);
}

/* What field() says about a field line that is well-formed. */
enum {
    FIELD_KEEP = 0,      /* one more entry of req->headers */
    FIELD_COLLAPSED = 1, /* said again what a kept field says: not kept */
};

/*
 * Content-Length: every element of every such field must be the same number, else the body's
 * end would depend on which one a reader believes. The first field is kept with its first
 * element as its value; the others are collapsed into it (RFC 9110 8.6), so that what the app
 * reads is the length the body was framed by, "5" and never "5, 5".
 */
static int field_content_length(struct gy_param *h, const unsigned char *v, const unsigned char *ve,
                                struct fields *f)
{
    int repeat = f->has_content_length;

    for (const unsigned char *s = v;;) {
        const unsigned char *e = element_end(s, ve), *next = e;
        int64_t n;

        trim_ows(&s, &e);
        if (parse_decimal(s, e, &n) < 0)
            return HTTP_E_CONTENT_LENGTH;
        if (f->has_content_length && n != f->content_length)
            return HTTP_E_CONTENT_LENGTH_CONFLICT;
        if (!f->has_content_length)
            f->content_length_value = slice(s, (size_t)(e - s));
        f->has_content_length = 1;
        f->content_length = n;
        if (next == ve)
            break;
        s = next + 1;
    }
    if (f->chunked)
        return HTTP_E_CL_AND_TE;
    if (repeat)
        return FIELD_COLLAPSED;
    h->value = f->content_length_value;
    return FIELD_KEEP;
}

/*
 * Transfer-Encoding: all fields together form one list, and the only list served is "chunked"
 * alone. Each element is judged in order, so "gzip, chunked" is 501 at gzip (a coding we cannot
 * undo) and "chunked, chunked" 400 at the second.
 */
static int field_transfer_encoding(const unsigned char *v, const unsigned char *ve, uint8_t minor,
                                   struct fields *f)
{
    /* RFC 9112 6.1: framing of an HTTP/1.0 message with Transfer-Encoding is faulty. */
    if (minor == 0)
        return HTTP_E_TE_HTTP10;
    for (const unsigned char *s = v;;) {
        const unsigned char *e = element_end(s, ve), *next = e, *tok;

        trim_ows(&s, &e);
        tok = scan(s, e, C_TCHAR);
        if (tok == s)
            return HTTP_E_TRANSFER_ENCODING; /* empty element, or not a token */
        if (tok != e) {
            /* A coding with parameters ("gzip;q=1") is a coding we do not implement; chunked
             * takes none. Anything else after the token is not a transfer-coding at all. */
            while (tok != e && is_ows(*tok))
                tok++;
            return tok != e && *tok == ';' ? HTTP_E_TE_UNSUPPORTED : HTTP_E_TRANSFER_ENCODING;
        }
        if (!SPAN_EQ(s, e, "chunked"))
            return HTTP_E_TE_UNSUPPORTED;
        if (f->chunked)
            return HTTP_E_TE_CHUNKED_TWICE;
        f->chunked = 1;
        if (next == ve)
            break;
        s = next + 1;
    }
    return f->has_content_length ? HTTP_E_CL_AND_TE : 0;
}

/* Connection and Expect: lists of case-insensitive tokens; unknown ones do not matter here. */
static void field_connection(const unsigned char *v, const unsigned char *ve, struct fields *f)
{
    for (const unsigned char *s = v;;) {
        const unsigned char *e = element_end(s, ve), *next = e;

        trim_ows(&s, &e);
        if (SPAN_EQ(s, e, "close"))
            f->conn_close = 1;
        else if (SPAN_EQ(s, e, "keep-alive"))
            f->conn_keep_alive = 1;
        if (next == ve)
            break;
        s = next + 1;
    }
}

static void field_expect(const unsigned char *v, const unsigned char *ve, struct fields *f)
{
    for (const unsigned char *s = v;;) {
        const unsigned char *e = element_end(s, ve), *next = e;

        trim_ows(&s, &e);
        if (SPAN_EQ(s, e, "100-continue"))
            f->expect_continue = 1;
        if (next == ve)
            break;
        s = next + 1;
    }
}

/*
 * The fields that decide framing, connection and host; the others are the application's. h is
 * the field as it will be kept (name, trimmed value v..ve). Returns FIELD_KEEP, FIELD_COLLAPSED
 * or an error status.
 */
static int field(struct gy_param *h, const unsigned char *v, const unsigned char *ve, uint8_t minor,
                 struct fields *f)
{
    struct gy_slice name = h->name;

    switch (name.len) {
    case 4:
        if (!HTTP_NAME_EQ(name, "host"))
            return 0;
        if (f->has_host)
            return HTTP_E_HOST_DUPLICATE;
        if (!is_host(v, ve))
            return HTTP_E_HOST_INVALID;
        f->has_host = 1;
        f->host = slice(v, (size_t)(ve - v));
        return 0;
    case 6:
        if (HTTP_NAME_EQ(name, "expect"))
            field_expect(v, ve, f);
        return 0;
    case 10:
        if (HTTP_NAME_EQ(name, "connection"))
            field_connection(v, ve, f);
        return 0;
    case 14:
        if (HTTP_NAME_EQ(name, "content-length"))
            return field_content_length(h, v, ve, f);
        return 0;
    case 17:
        if (HTTP_NAME_EQ(name, "transfer-encoding"))
            return field_transfer_encoding(v, ve, minor, f);
        return 0;
    default:
        return 0;
    }
}

/*
 * One field line at *pp, which is not at a CR or LF: name ":" OWS value OWS CRLF, at most
 * max_header_line bytes before the CRLF. Returns 1 with the line's name and trimmed value, or
 * a status.
 */
static int parse_field_line(const unsigned char **pp, const unsigned char *end,
                            const struct limits *l, struct gy_slice *name,
                            const unsigned char **value, const unsigned char **value_end)
{
    const unsigned char *p = *pp, *stop, *q, *v, *ve;
    int r;

    if (is_ows(*p))
        return HTTP_E_OBS_FOLD;
    /* The line's bytes are scanned up to one past the limit: a CR there ends a line of exactly
     * max_header_line bytes, anything else makes it too long. */
    stop = bound(p, end, l->max_header_line + 1);
    q = scan(p, stop, C_TCHAR);
    if (q == stop)
        return (size_t)(stop - p) > l->max_header_line ? HTTP_E_HEADER_LINE_TOO_LONG
                                                       : HTTP_INCOMPLETE;
    if (*q != ':')
        return is_ows(*q) ? HTTP_E_SPACE_BEFORE_COLON : HTTP_E_HEADER_NAME;
    if (q == p)
        return HTTP_E_HEADER_NAME;
    *name = slice(p, (size_t)(q - p));

    v = q + 1;
    ve = scan(v, stop, C_VALUE);
    if (ve == stop)
        return (size_t)(stop - p) > l->max_header_line ? HTTP_E_HEADER_LINE_TOO_LONG
                                                       : HTTP_INCOMPLETE;
    if (*ve != '\r')
        return *ve == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_HEADER_VALUE;
    q = ve;
    r = expect_crlf(&q, end);
    if (r <= 0)
        return r;
    trim_ows(&v, &ve);
    *value = v;
    *value_end = ve;
    *pp = q;
    return 1;
}

static int parse_head(const unsigned char *buf, const unsigned char *end, const struct limits *l,
                      struct http_request *req)
{
    const unsigned char *p = buf;
    struct fields f = { .host = slice(buf, 0) };
    struct target tg;
    uint32_t n = 0;   /* fields kept in req->headers */
    size_t lines = 0; /* field lines, the kept and the collapsed: what max_headers counts */
    int r;

    if (p == end)
        return HTTP_INCOMPLETE;
    /* RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request line
     * (some clients send a CRLF after a POST body). One, as picohttpparser does. */
    if (*p == '\r' || *p == '\n') {
        r = expect_crlf(&p, end);
        if (r <= 0)
            return r;
    }
    r = parse_request_line(&p, end, l, req, &tg);
    if (r <= 0)
        return r;

    for (;;) {
        struct gy_slice name;
        const unsigned char *v, *ve;

        if (p == end)
            return HTTP_INCOMPLETE;
        if (*p == '\r' || *p == '\n') {
            r = expect_crlf(&p, end);
            if (r <= 0)
                return r;
            break;
        }
        r = parse_field_line(&p, end, l, &name, &v, &ve);
        if (r <= 0)
            return r;
        /* Framed and checked before counted, as uwsgi vars are: a malformed extra line is
         * reported as malformed. n <= lines < max_headers <= HTTP_MAX_HEADERS: slot n exists. */
        if (lines == l->max_headers)
            return HTTP_E_TOO_MANY_HEADERS;
        lines++;
        req->headers[n].name = name;
        req->headers[n].value = slice(v, (size_t)(ve - v));
        r = field(&req->headers[n], v, ve, req->minor_version, &f);
        if (r < 0)
            return r;
        if (r == FIELD_KEEP)
            n++;
    }

    if (!f.has_host && req->minor_version == 1)
        return HTTP_E_HOST_MISSING; /* RFC 9112 3.2, whatever the target's form */

    req->path = tg.path;
    req->query = tg.query;
    req->host = tg.absolute ? tg.authority : f.host;
    req->nheaders = n;
    if (f.chunked) {
        req->body = HTTP_BODY_CHUNKED;
    } else if (f.has_content_length) {
        req->body = HTTP_BODY_LENGTH;
        req->content_length = f.content_length;
    }
    req->keep_alive = !f.conn_close && (req->minor_version == 1 || f.conn_keep_alive);
    /* RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request MUST be ignored. */
    req->expect_continue = f.expect_continue && req->minor_version == 1;
    return (int)(p - buf);
}

/*
 * Whether a head can have ended in buf[from..avail), from being the length of the previous call,
 * which returned HTTP_INCOMPLETE: a complete head contains "\r\n\r\n" (a request line and
 * field lines hold no CR or LF), and its first one ends the head, so its last byte is a new one.
 */
static int has_head_end(const unsigned char *buf, size_t avail, size_t from)
{
    for (size_t i = from > 3 ? from : 3; i < avail; i++) {
        const unsigned char *lf = memchr(buf + i, '\n', avail - i);

        if (lf == NULL)
            return 0;
        i = (size_t)(lf - buf);
        if (buf[i - 3] == '\r' && buf[i - 2] == '\n' && buf[i - 1] == '\r')
            return 1;
    }
    return 0;
}

int proto_http_parse_request(const char *buf, size_t len, size_t last_len,
                             const struct http_limits *lim, struct http_request *req)
{
    const unsigned char *p = (const unsigned char *)buf;
    struct limits l;
    size_t avail;
    int r;

    resolve_limits(lim, &l);
    avail = len < l.max_head ? len : l.max_head;

    req->method = slice(p, 0);
    req->target = slice(p, 0);
    req->path = slice(p, 0);
    req->query = slice(p, 0);
    req->host = slice(p, 0);
    req->minor_version = 0xff;
    req->body = HTTP_BODY_NONE;
    req->keep_alive = 0;
    req->expect_continue = 0;
    req->content_length = 0;
    req->nheaders = 0;

    /* With the hint, a head that cannot be complete yet is not parsed. Past max_head it is,
     * once: that decides between 431 and an error earlier in the head. */
    if (last_len != 0 && last_len <= len && len <= l.max_head && !has_head_end(p, avail, last_len))
        return HTTP_INCOMPLETE;

    /* Only the first max_head bytes are parsed: a head that has not ended within them is too
     * large, whatever follows. */
    r = parse_head(p, p + avail, &l, req);
    if (r == HTTP_INCOMPLETE && len > l.max_head)
        return HTTP_E_HEAD_TOO_LARGE;
    return r;
}

int proto_http_error_status(int status)
{
    switch (status) {
    case HTTP_E_TARGET_TOO_LONG:
        return 414;
    case HTTP_E_HEADER_LINE_TOO_LONG:
    case HTTP_E_TOO_MANY_HEADERS:
    case HTTP_E_HEAD_TOO_LARGE:
    case HTTP_E_CHUNK_TRAILERS_TOO_LARGE:
        return 431;
    case HTTP_E_METHOD_TOO_LONG:
    case HTTP_E_METHOD_CONNECT:
    case HTTP_E_TE_UNSUPPORTED:
        return 501;
    case HTTP_E_VERSION_UNSUPPORTED:
        return 505;
    case HTTP_E_CHUNK_AFTER_END:
        return 500;
    default:
        return status < 0 && status >= HTTP_E_LAST ? 400 : 0;
    }
}

const char *proto_http_strerror(int status)
{
    switch (status) {
    case HTTP_INCOMPLETE:
        return "incomplete request";
    case HTTP_E_LINE_ENDING:
        return "line not ended by crlf";
    case HTTP_E_METHOD:
        return "invalid method";
    case HTTP_E_METHOD_TOO_LONG:
        return "method too long";
    case HTTP_E_TARGET:
        return "invalid request target";
    case HTTP_E_TARGET_TOO_LONG:
        return "request target too long";
    case HTTP_E_REQUEST_LINE:
        return "request line without http version";
    case HTTP_E_VERSION:
        return "malformed http version";
    case HTTP_E_VERSION_UNSUPPORTED:
        return "http version not supported";
    case HTTP_E_OBS_FOLD:
        return "header line starts with whitespace (obs-fold)";
    case HTTP_E_HEADER_NAME:
        return "invalid header name";
    case HTTP_E_SPACE_BEFORE_COLON:
        return "whitespace between header name and colon";
    case HTTP_E_HEADER_VALUE:
        return "control character in header value";
    case HTTP_E_HEADER_LINE_TOO_LONG:
        return "header line too long";
    case HTTP_E_TOO_MANY_HEADERS:
        return "too many headers";
    case HTTP_E_HEAD_TOO_LARGE:
        return "request head too large";
    case HTTP_E_HOST_MISSING:
        return "http/1.1 request without host";
    case HTTP_E_HOST_DUPLICATE:
        return "more than one host header";
    case HTTP_E_HOST_INVALID:
        return "invalid host header";
    case HTTP_E_CONTENT_LENGTH:
        return "invalid content-length";
    case HTTP_E_CONTENT_LENGTH_CONFLICT:
        return "conflicting content-length values";
    case HTTP_E_TRANSFER_ENCODING:
        return "malformed transfer-encoding";
    case HTTP_E_TE_UNSUPPORTED:
        return "transfer coding other than chunked";
    case HTTP_E_TE_CHUNKED_TWICE:
        return "chunked transfer coding applied twice";
    case HTTP_E_TE_HTTP10:
        return "transfer-encoding in an http/1.0 request";
    case HTTP_E_CL_AND_TE:
        return "both content-length and transfer-encoding";
    case HTTP_E_CHUNK_SIZE:
        return "invalid chunk size";
    case HTTP_E_CHUNK_SIZE_TOO_LONG:
        return "chunk size over 16 hex digits";
    case HTTP_E_CHUNK_EXT:
        return "control character in chunk extension";
    case HTTP_E_CHUNK_EXT_TOO_LONG:
        return "chunk extensions too long";
    case HTTP_E_CHUNK_DATA_CRLF:
        return "chunk data not followed by crlf";
    case HTTP_E_CHUNK_TRAILER:
        return "invalid trailer line";
    case HTTP_E_CHUNK_TRAILERS_TOO_LARGE:
        return "trailers too large";
    case HTTP_E_CHUNK_AFTER_END:
        return "chunked body already ended";
    case HTTP_E_METHOD_CONNECT:
        return "connect method not supported (not a proxy)";
    default:
        return status > 0 ? "no error" : "unknown error";
    }
}

/* ---- helpers for the server ---- */

int proto_http_name_eq(struct gy_slice name, const char *lower, size_t lower_len)
{
    /* Lengths first: a zero slice may have a NULL ptr, which must not take part in arithmetic. */
    if (name.len != lower_len)
        return 0;
    for (size_t i = 0; i < lower_len; i++)
        if (to_lower((unsigned char)name.ptr[i]) != (unsigned char)lower[i])
            return 0;
    return 1;
}

/* ASCII case-insensitive equality of two names, both in any case. */
static int name_eq_any(struct gy_slice a, struct gy_slice b)
{
    if (a.len != b.len)
        return 0;
    for (size_t i = 0; i < a.len; i++)
        if (to_lower((unsigned char)a.ptr[i]) != to_lower((unsigned char)b.ptr[i]))
            return 0;
    return 1;
}

const struct gy_param *proto_http_find_header(const struct http_request *req,
                                              const struct gy_param *after, const char *lower,
                                              size_t lower_len)
{
    const struct gy_param *h = after ? after + 1 : req->headers;

    for (; h < req->headers + req->nheaders; h++)
        if (proto_http_name_eq(h->name, lower, lower_len))
            return h;
    return NULL;
}

int proto_http_is_repeat(const struct http_request *req, const struct gy_param *h)
{
    for (const struct gy_param *e = req->headers; e < h; e++)
        if (name_eq_any(e->name, h->name))
            return 1;
    return 0;
}

size_t proto_http_join_repeats(const struct http_request *req, const struct gy_param *first,
                               const char *sep, size_t sep_len, char *out, size_t outsize)
{
    const struct gy_param *end = req->headers + req->nheaders;
    size_t len = first->value.len;

    /* The length first, so nothing is written unless all of it fits. */
    for (const struct gy_param *h = first + 1; h < end; h++)
        if (name_eq_any(h->name, first->name))
            len += sep_len + h->value.len;
    if (out == NULL || len > outsize)
        return len;
    memcpy(out, first->value.ptr, first->value.len);
    size_t at = first->value.len;
    for (const struct gy_param *h = first + 1; h < end; h++) {
        if (!name_eq_any(h->name, first->name))
            continue;
        memcpy(out + at, sep, sep_len);
        at += sep_len;
        memcpy(out + at, h->value.ptr, h->value.len);
        at += h->value.len;
    }
    return len;
}

size_t proto_http_cgi_name(struct gy_slice name, char *out, size_t outsize)
{
    static const char prefix[] = "HTTP_";
    size_t plen = sizeof(prefix) - 1;

    if (name.len == 0 || memchr(name.ptr, '_', name.len) != NULL)
        return 0;
    if (HTTP_NAME_EQ(name, "content-type") || HTTP_NAME_EQ(name, "content-length"))
        plen = 0; /* CGI names these two without the prefix, and the server must not add both */
    if (outsize <= plen || outsize - plen <= name.len)
        return 0;
    memcpy(out, prefix, plen);
    for (size_t i = 0; i < name.len; i++) {
        unsigned char c = (unsigned char)name.ptr[i];

        out[plen + i] = (char)(c == '-' ? '_' : c >= 'a' && c <= 'z' ? c - ('a' - 'A') : c);
    }
    out[plen + name.len] = '\0';
    return plen + name.len;
}

/* ---- the chunked body ----
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext    = *( BWS ";" BWS name [ BWS "=" BWS value ] )
 *
 * A byte-at-a-time state machine, but for chunk data, which is moved in one memmove per call
 * and chunk. Every framing byte is consumed into the state, so a call never has to leave bytes
 * behind for the next one, and where the input is split cannot matter.
 */
enum {
    CS_SIZE = 0, /* hex digits; zero-initialised decoders start here */
    CS_SIZE_BWS, /* SP/HTAB after the digits: only ';' may follow */
    CS_EXT,      /* extensions, up to the CR */
    CS_SIZE_LF,  /* LF ending the chunk-size line */
    CS_DATA,
    CS_DATA_CR, /* CRLF after the chunk data */
    CS_DATA_LF,
    CS_TRAILER_START, /* start of a trailer line, or of the final CRLF */
    CS_TRAILER_NAME,
    CS_TRAILER_VALUE,
    CS_TRAILER_LF,
    CS_END_LF, /* LF of the final CRLF */
    CS_DONE,
};

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = to_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Bytes between the digits and the CR: one more, or the limit is passed. */
static int ext_byte(struct http_chunked_decoder *dec)
{
    return dec->count++ == HTTP_CHUNK_MAX_EXT ? HTTP_E_CHUNK_EXT_TOO_LONG : 0;
}

/* One framing byte. Returns 0 or a status; the state moves on. */
static int chunk_step(struct http_chunked_decoder *dec, unsigned char c)
{
    int h;

    if (dec->state >= CS_TRAILER_START && dec->count++ == HTTP_CHUNK_MAX_TRAILERS)
        return HTTP_E_CHUNK_TRAILERS_TOO_LARGE;
    switch (dec->state) {
    case CS_SIZE:
        h = hex_value(c);
        if (h >= 0) {
            if (dec->count == HTTP_CHUNK_MAX_HEX)
                return HTTP_E_CHUNK_SIZE_TOO_LONG; /* 16 digits hold any uint64_t: no overflow */
            dec->remaining = dec->remaining << 4 | (uint64_t)h;
            dec->count++;
            return 0;
        }
        if (dec->count == 0)
            return c == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_CHUNK_SIZE; /* empty, sign, blank */
        dec->count = 0;
        if (c == '\r') {
            dec->state = CS_SIZE_LF;
            return 0;
        }
        if (c == ';' || is_ows(c)) {
            dec->state = c == ';' ? CS_EXT : CS_SIZE_BWS;
            return ext_byte(dec);
        }
        return c == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_CHUNK_SIZE; /* "0x10", "5 5" */
    case CS_SIZE_BWS:
        if (c != ';' && !is_ows(c))
            return HTTP_E_CHUNK_SIZE; /* "5 \r\n": BWS only comes before an extension */
        if (c == ';')
            dec->state = CS_EXT;
        return ext_byte(dec);
    case CS_EXT:
        if (c == '\r') {
            dec->state = CS_SIZE_LF;
            return 0;
        }
        if (!is_class(c, C_VALUE))
            return c == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_CHUNK_EXT;
        return ext_byte(dec);
    case CS_SIZE_LF:
        if (c != '\n')
            return HTTP_E_LINE_ENDING;
        dec->count = 0;
        dec->state = dec->remaining ? CS_DATA : CS_TRAILER_START;
        return 0;
    case CS_DATA_CR:
        if (c != '\r')
            return HTTP_E_CHUNK_DATA_CRLF; /* not data: the chunk-size said where data ends */
        dec->state = CS_DATA_LF;
        return 0;
    case CS_DATA_LF:
        if (c != '\n')
            return HTTP_E_CHUNK_DATA_CRLF;
        dec->state = CS_SIZE;
        return 0;
    case CS_TRAILER_START:
        if (c == '\r') {
            dec->state = CS_END_LF;
            return 0;
        }
        if (!is_class(c, C_TCHAR))
            return c == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_CHUNK_TRAILER;
        dec->state = CS_TRAILER_NAME;
        return 0;
    case CS_TRAILER_NAME:
        if (c == ':') {
            dec->state = CS_TRAILER_VALUE;
            return 0;
        }
        return is_class(c, C_TCHAR) ? 0 : HTTP_E_CHUNK_TRAILER;
    case CS_TRAILER_VALUE:
        if (c == '\r') {
            dec->state = CS_TRAILER_LF;
            return 0;
        }
        if (!is_class(c, C_VALUE))
            return c == '\n' ? HTTP_E_LINE_ENDING : HTTP_E_CHUNK_TRAILER;
        return 0;
    case CS_TRAILER_LF:
        if (c != '\n')
            return HTTP_E_LINE_ENDING;
        dec->state = CS_TRAILER_START;
        return 0;
    case CS_END_LF:
        if (c != '\n')
            return HTTP_E_LINE_ENDING;
        dec->state = CS_DONE;
        return 0;
    default:
        return HTTP_E_CHUNK_AFTER_END; /* CS_DATA and CS_DONE never get here */
    }
}

ptrdiff_t proto_http_decode_chunked(struct http_chunked_decoder *dec, char *buf, size_t *len)
{
    unsigned char *b = (unsigned char *)buf;
    size_t n = *len, src = 0, dst = 0;
    int r = 0;

    *len = 0;
    if (dec->error)
        return dec->error;
    if (dec->state == CS_DONE)
        return HTTP_E_CHUNK_AFTER_END;
    while (src < n) {
        if (dec->state == CS_DATA) {
            size_t k = n - src;

            if (k > dec->remaining)
                k = (size_t)dec->remaining;
            /* dst <= src always: framing bytes are dropped, never added */
            if (dst != src)
                memmove(b + dst, b + src, k);
            src += k;
            dst += k;
            dec->remaining -= k;
            dec->total += k;
            if (dec->remaining == 0)
                dec->state = CS_DATA_CR;
            continue;
        }
        r = chunk_step(dec, b[src++]);
        if (r < 0)
            break;
        if (dec->state == CS_DONE) {
            *len = dst;
            return (ptrdiff_t)src;
        }
    }
    *len = dst;
    if (r < 0) {
        dec->error = (int8_t)r;
        return r;
    }
    return HTTP_INCOMPLETE;
}
