/*
 * The uwsgi binary protocol, request side (what nginx's uwsgi_pass sends).
 *
 *   packet  = header vars body
 *   header  = modifier1:u8 datasize:u16le modifier2:u8
 *   vars    = *( keysize:u16le key valsize:u16le value )       exactly datasize bytes
 *   body    = CONTENT_LENGTH bytes, raw, following the vars block
 *
 * Only modifier1 0 (a WSGI/HTTP request with a vars block) is served. The response side of the
 * protocol is plain HTTP/1.x bytes and needs no framing of its own.
 */
#ifndef GYRE_PROTO_UWSGI_H
#define GYRE_PROTO_UWSGI_H

#include "request.h"

#define UWSGI_HEADER_SIZE 4
#define UWSGI_MAX_DATASIZE 65535

/* Results of proto_uwsgi_parse(): > 0 is the size of the complete header + vars block. */
enum uwsgi_status {
    UWSGI_INCOMPLETE = 0,        /* need more bytes: call again with the same buffer, longer */
    UWSGI_E_TOO_BIG = -1,        /* datasize over the caller's limit (--buffer-size) */
    UWSGI_E_MODIFIER = -2,       /* modifier1 other than 0 */
    UWSGI_E_EMPTY = -3,          /* datasize 0: no vars at all */
    UWSGI_E_TRUNCATED = -4,      /* a key or value length runs past the end of the vars block */
    UWSGI_E_EMPTY_KEY = -5,      /* a var with a zero-length name */
    UWSGI_E_TOO_MANY_VARS = -6,  /* more than GY_MAX_PARAMS vars */
    UWSGI_E_CONTENT_LENGTH = -7, /* CONTENT_LENGTH present but not a decimal number < 2^63 */
};

struct uwsgi_request {
    uint8_t modifier1;
    uint8_t modifier2;
    uint16_t datasize;
    uint32_t nparams;
    int64_t content_length; /* 0 when the CONTENT_LENGTH var is absent or empty */
    struct gy_param params[GY_MAX_PARAMS];
};

/*
 * Parse one request's header and vars block from buf[0..len).
 *
 * Returns the number of bytes the header and vars occupy (4 + datasize) once all of them are in
 * buf, UWSGI_INCOMPLETE while they are not, or a negative enum uwsgi_status on bad input. Bytes
 * past the vars block (the start of the body) are left alone. max_datasize is the largest vars
 * block accepted (the --buffer-size option, at most UWSGI_MAX_DATASIZE); a header announcing more
 * fails at once, before the vars arrive. Never reads outside buf[0..len), never allocates.
 * On success req->params point into buf.
 */
int proto_uwsgi_parse(const char *buf, size_t len, size_t max_datasize, struct uwsgi_request *req);

/* A short lowercase English description of a negative status, for log lines. */
const char *proto_uwsgi_strerror(int status);

#endif
