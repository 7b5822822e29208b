/*
 * HTTP/1.x, request side, for --http-socket (plain HTTP from development tools and direct
 * clients): the request head (request line and header fields) and the chunked body coding.
 *
 *   head    = [ CRLF ] request-line *( field-line CRLF ) CRLF
 *   request-line = method SP request-target SP HTTP-version CRLF
 *
 * The head parser is stateless in the picohttpparser manner: each call re-parses the head from
 * the start of the buffer, and a last_len hint lets a call that cannot complete skip the work.
 * It also decides the body framing (length, chunked or none) and keep-alive, so the server only
 * follows what it is told. The chunked decoder is incremental and works in place.
 *
 * Strict where leniency has bitten HTTP servers (request smuggling, response splitting):
 *
 *   - Lines end in CRLF only. A bare LF (which picohttpparser and RFC 9112 2.2 allow) or a bare
 *     CR is an error: a front end that reads lines differently must not see other headers than
 *     we do. One empty line before the request line is skipped (RFC 9112 2.2).
 *   - Exactly one SP between the parts of the request line; the version is "HTTP/" DIGIT "."
 *     DIGIT and only 1.0 and 1.1 are served (other well-formed versions: 505).
 *   - Field names are tokens (RFC 9110 tchar), followed at once by ':'. Whitespace before the
 *     colon, a line starting with whitespace (obs-fold, or whitespace before the first field)
 *     and control characters other than HTAB in values are errors. Bytes 0x80-0xff (obs-text)
 *     are accepted in values and in the request-target, as nginx does.
 *   - Content-Length is 1*DIGIT, at most INT64_MAX. Repeated Content-Length fields, and the list
 *     form "5, 5", are accepted when every value is the same number (RFC 9110 8.6 allows either
 *     that or rejecting); different values are an error. The accepted ones are replaced by one
 *     (RFC 9110 8.6 again): the headers hold a single Content-Length field with a single value,
 *     so the app sees the length the body was framed by, never "5, 5".
 *   - Transfer-Encoding: "chunked" exactly once, as the only coding. Any other coding (gzip, or
 *     a coding with parameters) is 501; chunked twice, empty list elements or Transfer-Encoding
 *     in an HTTP/1.0 request are 400; Transfer-Encoding with Content-Length is 400.
 *   - CONNECT is refused (501) as soon as the method is read: gyre is no proxy, and a tunnel's
 *     bytes after the head must never be read as requests.
 *   - HTTP/1.1 requires exactly one Host field; HTTP/1.0 at most one. A Host value holds only
 *     the characters of uri-host [ ":" port ] (it may be empty, RFC 9112 3.2).
 */
#ifndef GYRE_PROTO_HTTP_H
#define GYRE_PROTO_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"

/* Size of the headers array; lim->max_headers is clamped to it. With the CGI variables the
 * server adds, a request still fits in GY_MAX_PARAMS. */
#define HTTP_MAX_HEADERS 256
/* Methods longer than this are refused with 501 before the rest of the line is read. */
#define HTTP_MAX_METHOD 64

/* Defaults for the fields of struct http_limits left 0. */
#define HTTP_DEFAULT_MAX_HEAD 16384
#define HTTP_DEFAULT_MAX_TARGET 8192
#define HTTP_DEFAULT_MAX_HEADER_LINE 8192
#define HTTP_DEFAULT_MAX_HEADERS 100

/* Bounds of the chunked decoder. */
#define HTTP_CHUNK_MAX_HEX 16        /* hex digits of a chunk-size, leading zeros included */
#define HTTP_CHUNK_MAX_EXT 1024      /* bytes between the chunk-size and its CRLF */
#define HTTP_CHUNK_MAX_TRAILERS 8192 /* trailer section, final CRLF included */

/*
 * Results of proto_http_parse_request() (> 0 is the length of the head) and of
 * proto_http_decode_chunked() (> 0: see there). proto_http_error_status() gives the status code
 * to answer each with; every error means the connection is to be closed after the answer.
 */
enum http_status {
    HTTP_INCOMPLETE = 0,                  /* need more bytes */
    HTTP_E_LINE_ENDING = -1,              /* CR without LF, or LF without CR (400) */
    HTTP_E_METHOD = -2,                   /* method empty or not a token (400) */
    HTTP_E_METHOD_TOO_LONG = -3,          /* method over HTTP_MAX_METHOD bytes (501) */
    HTTP_E_TARGET = -4,                   /* bad request-target: byte or form (400) */
    HTTP_E_TARGET_TOO_LONG = -5,          /* request-target over lim->max_target (414) */
    HTTP_E_REQUEST_LINE = -6,             /* no version after the target (400) */
    HTTP_E_VERSION = -7,                  /* malformed HTTP-version (400) */
    HTTP_E_VERSION_UNSUPPORTED = -8,      /* well-formed, but not HTTP/1.0 or 1.1 (505) */
    HTTP_E_OBS_FOLD = -9,                 /* field line starting with SP or HTAB (400) */
    HTTP_E_HEADER_NAME = -10,             /* field name empty or not a token, or no colon (400) */
    HTTP_E_SPACE_BEFORE_COLON = -11,      /* whitespace between field name and colon (400) */
    HTTP_E_HEADER_VALUE = -12,            /* control character in a field value (400) */
    HTTP_E_HEADER_LINE_TOO_LONG = -13,    /* field line over lim->max_header_line (431) */
    HTTP_E_TOO_MANY_HEADERS = -14,        /* more than lim->max_headers fields (431) */
    HTTP_E_HEAD_TOO_LARGE = -15,          /* no end of head within lim->max_head bytes (431) */
    HTTP_E_HOST_MISSING = -16,            /* HTTP/1.1 request without Host (400) */
    HTTP_E_HOST_DUPLICATE = -17,          /* more than one Host field (400) */
    HTTP_E_HOST_INVALID = -18,            /* Host value not uri-host [ ":" port ] (400) */
    HTTP_E_CONTENT_LENGTH = -19,          /* Content-Length not 1*DIGIT <= INT64_MAX (400) */
    HTTP_E_CONTENT_LENGTH_CONFLICT = -20, /* Content-Length values that differ (400) */
    HTTP_E_TRANSFER_ENCODING = -21,       /* malformed Transfer-Encoding list (400) */
    HTTP_E_TE_UNSUPPORTED = -22,          /* a transfer coding other than chunked (501) */
    HTTP_E_TE_CHUNKED_TWICE = -23,        /* chunked applied twice (400) */
    HTTP_E_TE_HTTP10 = -24,               /* Transfer-Encoding in an HTTP/1.0 request (400) */
    HTTP_E_CL_AND_TE = -25,               /* both Content-Length and Transfer-Encoding (400) */
    /* chunked body */
    HTTP_E_CHUNK_SIZE = -26,               /* chunk-size empty, not hex, or junk after it (400) */
    HTTP_E_CHUNK_SIZE_TOO_LONG = -27,      /* more than HTTP_CHUNK_MAX_HEX digits (400) */
    HTTP_E_CHUNK_EXT = -28,                /* control character in a chunk extension (400) */
    HTTP_E_CHUNK_EXT_TOO_LONG = -29,       /* extensions over HTTP_CHUNK_MAX_EXT bytes (400) */
    HTTP_E_CHUNK_DATA_CRLF = -30,          /* chunk data not followed by CRLF (400) */
    HTTP_E_CHUNK_TRAILER = -31,            /* malformed trailer field line (400) */
    HTTP_E_CHUNK_TRAILERS_TOO_LARGE = -32, /* trailers over HTTP_CHUNK_MAX_TRAILERS (431) */
    HTTP_E_CHUNK_AFTER_END = -33,          /* decoder called again after the last chunk (500) */
    /* request line, continued */
    HTTP_E_METHOD_CONNECT = -34, /* CONNECT: a tunnel, which gyre does not serve (501) */
};
#define HTTP_E_LAST HTTP_E_METHOD_CONNECT /* the most negative status */

/* Request limits. A field left 0 takes its HTTP_DEFAULT_*; a NULL pointer means all defaults. */
struct http_limits {
    size_t max_head;        /* whole head, CRLFs included; clamped to INT32_MAX (431) */
    size_t max_target;      /* request-target (414) */
    size_t max_header_line; /* one field line, its CRLF excluded (431) */
    size_t max_headers;     /* number of field lines; clamped to HTTP_MAX_HEADERS (431) */
};

enum http_body {
    HTTP_BODY_NONE = 0,    /* no Content-Length, no Transfer-Encoding: no body at all */
    HTTP_BODY_LENGTH = 1,  /* content_length bytes follow the head (0 is possible) */
    HTTP_BODY_CHUNKED = 2, /* a chunked body follows: proto_http_decode_chunked() */
};

struct http_request {
    struct gy_slice method; /* a token, case-sensitive ("GET", not "get") */
    struct gy_slice target; /* the request-target as sent */
    /* The target split: path up to the first '?', query after it (without the '?'; empty when
     * there is none). Origin form "/p?q": path "/p". Absolute form "http://h/p?q": path "/p",
     * and empty for "http://h?q" (which means "/"). Asterisk form "*": path "*". (Authority
     * form, "h:443", is CONNECT's only, and CONNECT is refused.) */
    struct gy_slice path;
    struct gy_slice query;
    /* The authority of an absolute-form target, which RFC 9112 3.2.2 says wins over the Host
     * field, or else the Host field value; empty if there is neither (HTTP/1.0). */
    struct gy_slice host;
    uint8_t minor_version;   /* 0 or 1; 0xff until the version was read */
    uint8_t body;            /* enum http_body */
    uint8_t keep_alive;      /* 1.1: unless "Connection: close"; 1.0: only with "keep-alive" */
    uint8_t expect_continue; /* "Expect: 100-continue" in an HTTP/1.1 request */
    int64_t content_length;  /* HTTP_BODY_LENGTH: the body size; otherwise 0 */
    uint32_t nheaders;
    /* In order, repeats kept (proto_http_join_repeats() joins them), but for Content-Length:
     * at most one field, whose value is the first of the identical numbers sent (its list and
     * its repeats collapsed). name is a token as sent (any case); value has no leading or
     * trailing SP/HTAB and may be empty. */
    struct gy_param headers[HTTP_MAX_HEADERS];
};

/*
 * Parse one request head from buf[0..len).
 *
 * Returns the length of the head, CRLF CRLF included, once it is all in buf (the body, or the
 * next pipelined request, starts there); HTTP_INCOMPLETE while it is not; or a negative enum
 * http_status as soon as the bytes so far can only be a bad request: an error does not wait for
 * the rest of the head. Never reads outside buf[0..len), never allocates, never writes outside
 * *req. On success every slice points into buf[0..result).
 *
 * last_len: 0, or the len of the previous call on the same buffer, which returned
 * HTTP_INCOMPLETE. The call then only looks for the end of the head in the new bytes and returns
 * HTTP_INCOMPLETE at once if it is not there, so a head trickling in byte by byte is not
 * re-parsed for every byte (picohttpparser's slowloris counter). Such a call may therefore report
 * an error in the new bytes later than an unhinted one (when the head is complete, or larger
 * than lim->max_head), never differently. A last_len over len is ignored.
 *
 * The head fields (method, target, minor_version) are set as soon as they are parsed, also
 * on errors, for the log line; everything else only on success: after an error or
 * HTTP_INCOMPLETE, nheaders is 0 and body is HTTP_BODY_NONE.
 */
int proto_http_parse_request(const char *buf, size_t len, size_t last_len,
                             const struct http_limits *lim, struct http_request *req);

/* The status code to answer a negative status with: 400, 414, 431, 501, 505 (500 for
 * HTTP_E_CHUNK_AFTER_END, a server bug); 0 for results that are not errors. */
int proto_http_error_status(int status);

/* A short lowercase English description of a status, for log lines. */
const char *proto_http_strerror(int status);

/*
 * ASCII case-insensitive name comparison: lower must be lowercase. HTTP_NAME_EQ(s, "host").
 */
int proto_http_name_eq(struct gy_slice name, const char *lower, size_t lower_len);
#define HTTP_NAME_EQ(s, lit) proto_http_name_eq((s), (lit), sizeof(lit) - 1)

/*
 * The first header after `after` (NULL: from the first) named lower (lowercase, compared
 * case-insensitively), or NULL. Loop over repeats with
 *     for (h = NULL; (h = proto_http_find_header(req, h, "cookie", 6)); ) ...
 */
const struct gy_param *proto_http_find_header(const struct http_request *req,
                                              const struct gy_param *after, const char *lower,
                                              size_t lower_len);

/*
 * Whether a field of h's name (compared case-insensitively) comes before h in req->headers: its
 * value is then part of the first one's joined value, see below.
 */
int proto_http_is_repeat(const struct http_request *req, const struct gy_param *h);

/*
 * The value of the field `first` joined with the values of every later field of the same name,
 * in order, separated by sep (", " for a list, RFC 9110 5.3; "; " for Cookie, RFC 6265 5.4).
 * Returns the joined length, and writes the joined bytes to out only if they fit in outsize
 * (out may be NULL with outsize 0 to ask the length). One pass over the fields: the space a
 * request's joined values take is linear in the size of its head, however many repeats.
 */
size_t proto_http_join_repeats(const struct http_request *req, const struct gy_param *first,
                               const char *sep, size_t sep_len, char *out, size_t outsize);

/*
 * The CGI/WSGI environ name of a field: "HTTP_" + name uppercased with '-' as '_', except
 * Content-Type and Content-Length, which are CONTENT_TYPE and CONTENT_LENGTH. Writes it to out
 * NUL-terminated and returns its length; returns 0, writing nothing, when it does not fit in
 * outsize or when the name contains '_': "X_Forwarded_For" would pass for "X-Forwarded-For"
 * (nginx and gunicorn drop such fields too).
 */
size_t proto_http_cgi_name(struct gy_slice name, char *out, size_t outsize);

/*
 * Incremental, in-place decoder of a chunked body (RFC 9112 7.1). Zero-initialised it is ready;
 * one per body.
 */
struct http_chunked_decoder {
    uint64_t remaining; /* data bytes of the current chunk not yet seen */
    uint64_t total;     /* data bytes decoded so far, all calls (for a body size limit) */
    uint32_t count;     /* per-state counter: hex digits, extension or trailer bytes */
    uint8_t state;      /* private */
    int8_t error;       /* once set, every call returns it */
};

/*
 * Decode buf[0..*len), the next bytes of the chunked body: the chunk data among them is moved
 * to the front of buf and *len set to its length; the framing is consumed and remembered in dec.
 *
 * Returns:
 *   HTTP_INCOMPLETE (0)  every byte was consumed; call again with the next bytes.
 *   > 0                  the body ended (last chunk and trailers seen): the number of bytes of
 *                        buf the body used. The bytes after it, the next request, are left where
 *                        they were, at buf[result .. original *len).
 *   < 0                  an enum http_status; *len is the data decoded before the error. The
 *                        decoder stays failed: later calls return the same status.
 * Chunk extensions and trailer fields are checked for syntax and size, and dropped. A decoder
 * that has finished returns HTTP_E_CHUNK_AFTER_END. The split of the input into calls never
 * changes the data or the result.
 */
ptrdiff_t proto_http_decode_chunked(struct http_chunked_decoder *dec, char *buf, size_t *len);

#endif
