/*
 * FastCGI 1.0, application side of the responder role (what nginx's fastcgi_pass sends, and the
 * records gyre sends back).
 *
 *   record  = header content padding
 *   header  = version:u8 type:u8 requestId:u16be contentLength:u16be paddingLength:u8 reserved:u8
 *   content = contentLength bytes; padding = paddingLength bytes, ignored
 *
 * A request on the wire: BEGIN_REQUEST (role, flags), PARAMS records whose concatenated content
 * is a name-value pair block, an empty PARAMS record, STDIN records carrying the body, an empty
 * STDIN record. The answer: STDOUT records carrying the HTTP response (CGI style: header lines,
 * a blank line, the body), an empty STDOUT record, END_REQUEST. Record boundaries mean nothing
 * inside a stream: a name-value pair, even a length field, may be cut by one.
 *
 * Three layers, each independent of the others:
 *  - proto_fcgi_next(): an incremental record parser, one struct fcgi_parser per connection,
 *    fed whatever bytes arrived, returning events one at a time;
 *  - proto_fcgi_parse_params(): a pure parser of a complete, contiguous name-value pair block
 *    (the PARAMS content, concatenated by the server);
 *  - the encoders of the response records, writing into caller buffers.
 * None of them allocates; the parsers never copy stream content, they return slices.
 */
#ifndef GYRE_PROTO_FASTCGI_H
#define GYRE_PROTO_FASTCGI_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"

/* ---- wire constants (the spec's names) ---- */

#define FCGI_HEADER_LEN 8
#define FCGI_VERSION_1 1
#define FCGI_NULL_REQUEST_ID 0 /* management records */
#define FCGI_MAX_CONTENT 65535 /* contentLength is 16 bits */
#define FCGI_MAX_PADDING 255
/* The most proto_fcgi_next() consumes in one call: padding, then a header and its content. */
#define FCGI_MAX_STEP (FCGI_MAX_PADDING + FCGI_HEADER_LEN + FCGI_MAX_CONTENT)

/* Record types. */
#define FCGI_BEGIN_REQUEST 1      /* server -> app, application record */
#define FCGI_ABORT_REQUEST 2      /* server -> app, application record */
#define FCGI_END_REQUEST 3        /* app -> server */
#define FCGI_PARAMS 4             /* server -> app, stream */
#define FCGI_STDIN 5              /* server -> app, stream */
#define FCGI_STDOUT 6             /* app -> server, stream */
#define FCGI_STDERR 7             /* app -> server, stream */
#define FCGI_DATA 8               /* server -> app, stream (filter role only) */
#define FCGI_GET_VALUES 9         /* server -> app, management record */
#define FCGI_GET_VALUES_RESULT 10 /* app -> server, management record */
#define FCGI_UNKNOWN_TYPE 11      /* app -> server, management record */

/* BEGIN_REQUEST roles and flags. */
#define FCGI_RESPONDER 1
#define FCGI_AUTHORIZER 2
#define FCGI_FILTER 3
#define FCGI_KEEP_CONN 1 /* flags: keep the connection open after END_REQUEST */

/* END_REQUEST protocolStatus. */
#define FCGI_REQUEST_COMPLETE 0
#define FCGI_CANT_MPX_CONN 1 /* a second request on a connection that serves one at a time */
#define FCGI_OVERLOADED 2
#define FCGI_UNKNOWN_ROLE 3

/* Fixed record sizes of the encoders below, header included (the bodies are 8 bytes: no pad). */
#define FCGI_BEGIN_REQUEST_BODY_LEN 8
#define FCGI_END_REQUEST_LEN (FCGI_HEADER_LEN + 8)
#define FCGI_UNKNOWN_TYPE_LEN (FCGI_HEADER_LEN + 8)

/*
 * The largest GET_VALUES content the parser accumulates. The three variables the spec defines,
 * asked with empty values, take 48 bytes; a record announcing more than this fails with
 * FCGI_E_GET_VALUES_TOO_BIG at its header.
 */
#define FCGI_GET_VALUES_MAX 256

/* Largest GET_VALUES_RESULT record proto_fcgi_encode_get_values_result() writes: the three
 * variables with 10-digit values (uint32_t), padded, plus the header. */
#define FCGI_GET_VALUES_RESULT_MAX 80

/* ---- status codes ---- */

/* Every negative result of the functions below. 0 and positive values are successes. */
enum fcgi_status {
    FCGI_E_VERSION = -1,            /* record version other than 1 */
    FCGI_E_MANAGEMENT_ID = -2,      /* GET_VALUES on a non-zero request id */
    FCGI_E_NULL_REQUEST_ID = -3,    /* BEGIN_REQUEST, ABORT_REQUEST, PARAMS, STDIN, DATA on id 0 */
    FCGI_E_BEGIN_LENGTH = -4,       /* BEGIN_REQUEST whose content length is not 8 */
    FCGI_E_GET_VALUES_TOO_BIG = -5, /* GET_VALUES content over FCGI_GET_VALUES_MAX */
    FCGI_E_TRUNCATED = -6,          /* a name-value pair runs past the end of its block */
    FCGI_E_EMPTY_NAME = -7,         /* a param with a zero-length name */
    FCGI_E_TOO_MANY_PARAMS = -8,    /* more than GY_MAX_PARAMS pairs */
    FCGI_E_CONTENT_LENGTH = -9,     /* CONTENT_LENGTH present but not a decimal number < 2^63 */
    FCGI_E_NO_SPACE = -10,          /* encoder: the output buffer is too small */
    FCGI_E_CONTENT_TOO_LONG = -11,  /* encoder: more than FCGI_MAX_CONTENT bytes in one record */
};

/* A short lowercase English description of a negative status, for log lines. */
const char *proto_fcgi_strerror(int status);

/* ---- the record parser ---- */

enum fcgi_event_type {
    FCGI_EV_NONE = 0,      /* bytes consumed, nothing complete yet (header, padding, ...) */
    FCGI_EV_BEGIN_REQUEST, /* request_id, role, flags */
    FCGI_EV_ABORT_REQUEST, /* request_id */
    FCGI_EV_PARAMS,        /* request_id, data: the next piece of the PARAMS stream */
    FCGI_EV_PARAMS_END,    /* request_id: the empty PARAMS record, the stream is complete */
    FCGI_EV_STDIN,         /* request_id, data: the next piece of the request body */
    FCGI_EV_STDIN_END,     /* request_id: the empty STDIN record, the body is complete */
    FCGI_EV_DATA,          /* request_id, data: the next piece of the DATA stream (filter) */
    FCGI_EV_DATA_END,      /* request_id: the empty DATA record */
    FCGI_EV_GET_VALUES,    /* request_id 0, data: the record's whole content, see below */
    FCGI_EV_UNKNOWN_TYPE,  /* request_id, record_type: answer proto_fcgi_encode_unknown_type() */
};

struct fcgi_event {
    enum fcgi_event_type type;
    uint8_t record_type; /* the type byte of the record the event comes from */
    uint8_t flags;       /* BEGIN_REQUEST: FCGI_KEEP_CONN and the rest as sent */
    uint16_t role;       /* BEGIN_REQUEST: FCGI_RESPONDER, ... as sent, not checked */
    uint16_t request_id; /* every event but NONE */
    /*
     * PARAMS, STDIN, DATA: 1 byte or more, inside buf[0..consumed) of the call that returned
     * the event, valid as long as that buffer is. GET_VALUES: 0 to FCGI_GET_VALUES_MAX bytes
     * inside the parser itself, valid until the next call on that parser. Otherwise empty.
     */
    struct gy_slice data;
};

/*
 * The state of one connection's record stream. Zero-initialised is ready (at the first header);
 * there is nothing to release. The fields are private: read events, not these.
 */
struct fcgi_parser {
    uint8_t state;       /* enum in fastcgi.c: header, content, padding */
    uint8_t header_have; /* header bytes in header[] so far */
    uint8_t type;        /* of the record in progress */
    uint8_t padding_left;
    uint16_t request_id;
    uint16_t content_length;
    uint16_t content_left;
    int16_t error; /* once negative, every later call returns it */
    uint8_t header[FCGI_HEADER_LEN];
    uint8_t body[FCGI_GET_VALUES_MAX]; /* BEGIN_REQUEST's or GET_VALUES's content, accumulated */
};

/*
 * Consume bytes of the stream from buf[0..len) until one event completes or the bytes run out.
 *
 * Returns the number of bytes consumed, with *ev filled (FCGI_EV_NONE if the bytes ran out
 * before an event completed): 0..len, at least 1 whenever len > 0, and never more than
 * FCGI_MAX_STEP however long buf is. The caller advances buf by that much and calls again while
 * bytes remain: bytes not consumed were not looked at, so a socket read is fed call after call
 * until consumed whole. Or a negative enum fcgi_status: the stream is broken (it cannot be
 * resynchronised), *ev is FCGI_EV_NONE and every later call returns the same error. buf may be
 * NULL when len is 0 (a no-op).
 *
 * The parser is a record layer: it checks each record on its own (version; request id 0 for
 * GET_VALUES, non-zero for the request records; BEGIN_REQUEST's length) and knows nothing of
 * requests. Which request ids are active, PARAMS before STDIN, nothing after the end records,
 * one request at a time: the caller's to enforce.
 *
 * Events, each delivered as soon as its bytes are consumed (a record's padding is skipped by
 * later calls, before the next header):
 *  - PARAMS / STDIN / DATA: stream content as it arrives, as slices of buf; a record's content
 *    may come in several events and one event never spans two records. An empty record of the
 *    stream gives the _END event instead.
 *  - BEGIN_REQUEST and GET_VALUES: once their whole content is in. It is accumulated inside the
 *    parser, so it may arrive split anywhere.
 *  - ABORT_REQUEST and UNKNOWN_TYPE: once their content (if any) has been skipped. UNKNOWN_TYPE
 *    is every record type but the six above, including those only an application sends
 *    (END_REQUEST, STDOUT, ...), on any request id; the spec's answer is
 *    proto_fcgi_encode_unknown_type(record_type).
 * Never reads outside buf[0..len), never writes to it, never allocates.
 */
int proto_fcgi_next(struct fcgi_parser *p, const char *buf, size_t len, struct fcgi_event *ev);

/* ---- name-value pairs ---- */

struct fcgi_params {
    uint32_t nparams;
    int64_t content_length; /* 0 when the CONTENT_LENGTH param is absent or empty */
    struct gy_param params[GY_MAX_PARAMS];
};

/*
 * Parse a complete name-value pair block buf[0..len): every pair is
 *   nameLength valueLength name value
 * each length 1 byte (0..127) or, when that byte's high bit is set, 4 bytes big-endian with the
 * high bit cleared (31 bits). Returns the number of pairs (0 for an empty block) or
 * FCGI_E_TRUNCATED, FCGI_E_EMPTY_NAME, FCGI_E_TOO_MANY_PARAMS, FCGI_E_CONTENT_LENGTH; a
 * CONTENT_LENGTH is read strictly, as proto_uwsgi_parse() does (decimal digits only, < 2^63;
 * the last one wins and each must be valid). On success out->params point into buf; on error
 * out->nparams and out->content_length are 0. Never reads outside buf[0..len).
 */
int proto_fcgi_parse_params(const char *buf, size_t len, struct fcgi_params *out);

/* ---- management records ---- */

/* What proto_fcgi_get_values_asked() found among the names of a GET_VALUES record. */
#define FCGI_ASKED_MAX_CONNS 1u
#define FCGI_ASKED_MAX_REQS 2u
#define FCGI_ASKED_MPXS_CONNS 4u

/*
 * Walk the names of a GET_VALUES content (the data of an FCGI_EV_GET_VALUES event) and return
 * the FCGI_ASKED_* bits of the variables asked for: names the spec does not define, and the
 * values (which should be empty), are ignored. FCGI_E_TRUNCATED if a pair runs past the end.
 */
int proto_fcgi_get_values_asked(const char *content, size_t len);

struct fcgi_values {
    uint32_t max_conns; /* FCGI_MAX_CONNS: concurrent transport connections accepted */
    uint32_t max_reqs;  /* FCGI_MAX_REQS: concurrent requests accepted */
    int mpxs_conns;     /* FCGI_MPXS_CONNS: non-zero if requests are multiplexed */
};

/*
 * Write the GET_VALUES_RESULT record (header, content, padding) answering the variables in
 * `asked` (FCGI_ASKED_* bits; 0 gives an empty answer), values in decimal, in the order of the
 * bits. Returns the record's size, at most FCGI_GET_VALUES_RESULT_MAX, or FCGI_E_NO_SPACE.
 */
int proto_fcgi_encode_get_values_result(char *out, size_t outsize, unsigned asked,
                                        const struct fcgi_values *values);

/* The UNKNOWN_TYPE record (id 0) answering a record of type `type`: FCGI_UNKNOWN_TYPE_LEN bytes,
 * or FCGI_E_NO_SPACE. */
int proto_fcgi_encode_unknown_type(char *out, size_t outsize, uint8_t type);

/* ---- response records ---- */

/* The padding that brings content_len to a multiple of 8 (the spec's recommendation). */
static inline size_t fcgi_padding_length(size_t content_len)
{
    return (8 - (content_len & 7)) & 7;
}

/* Padding bytes to send after content, e.g. as the last iovec of a record: take
 * fcgi_padding_length() of them. Their value is ignored by the receiver. */
#define FCGI_PADDING_BYTES "\0\0\0\0\0\0\0"

/*
 * Write a record header: version 1, type, request_id, content_len, padding for 8-byte
 * alignment. The caller sends content_len bytes of content, then fcgi_padding_length(content_len)
 * padding bytes. Returns FCGI_HEADER_LEN, FCGI_E_CONTENT_TOO_LONG or FCGI_E_NO_SPACE.
 * An empty record (content_len 0) of a stream type closes that stream.
 */
int proto_fcgi_encode_header(char *out, size_t outsize, uint8_t type, uint16_t request_id,
                             size_t content_len);

/* proto_fcgi_encode_header() for STDOUT and STDERR. */
int proto_fcgi_encode_stdout_header(char *out, size_t outsize, uint16_t request_id,
                                    size_t content_len);
int proto_fcgi_encode_stderr_header(char *out, size_t outsize, uint16_t request_id,
                                    size_t content_len);

/*
 * Write a whole record, header, a copy of content[0..len) and zero padding (content may already
 * be at out + FCGI_HEADER_LEN: it is moved, not copied, and may be NULL when len is 0):
 * fcgi_record_size(len) bytes, or FCGI_E_CONTENT_TOO_LONG or FCGI_E_NO_SPACE.
 */
int proto_fcgi_encode_record(char *out, size_t outsize, uint8_t type, uint16_t request_id,
                             const char *content, size_t len);

/* The END_REQUEST record: FCGI_END_REQUEST_LEN bytes, or FCGI_E_NO_SPACE. */
int proto_fcgi_encode_end_request(char *out, size_t outsize, uint16_t request_id,
                                  uint32_t app_status, uint8_t protocol_status);

/*
 * Splitting a body into stream records. A body of n bytes goes out as
 * fcgi_stream_records(n) records, the next of which carries fcgi_stream_chunk(remaining)
 * bytes, every one but the last FCGI_STREAM_CHUNK bytes; then, once the stream is done, one
 * empty record closes it. FCGI_STREAM_CHUNK is the largest multiple of 8 a record can carry,
 * so the full records need no padding and only the last one is padded.
 *
 *     for (size_t off = 0; off < n; ) {
 *         size_t c = fcgi_stream_chunk(n - off);
 *         proto_fcgi_encode_stdout_header(hdr, sizeof(hdr), id, c);
 *         send(hdr, 8); send(body + off, c); send(FCGI_PADDING_BYTES, fcgi_padding_length(c));
 *         off += c;
 *     }
 *
 * A body of 0 bytes needs no record at all: an empty record would end the stream.
 */
#define FCGI_STREAM_CHUNK 65528

static inline size_t fcgi_stream_chunk(size_t remaining)
{
    return remaining < FCGI_STREAM_CHUNK ? remaining : FCGI_STREAM_CHUNK;
}

static inline size_t fcgi_stream_records(size_t n)
{
    return n / FCGI_STREAM_CHUNK + (n % FCGI_STREAM_CHUNK != 0);
}

/* Wire size of one record carrying len (<= FCGI_MAX_CONTENT) bytes, header and padding included. */
static inline size_t fcgi_record_size(size_t len)
{
    return FCGI_HEADER_LEN + len + fcgi_padding_length(len);
}

/* Wire size of n bytes of stream content split as above, the closing empty record excluded. */
static inline size_t fcgi_stream_wire_size(size_t n)
{
    return n + fcgi_stream_records(n) * FCGI_HEADER_LEN +
           fcgi_padding_length(n % FCGI_STREAM_CHUNK);
}

#endif
