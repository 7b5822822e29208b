/*
 * Static files served from C before the app is called (static.c): uWSGI's --check-static,
 * --static-map, --static-map2 and --check-static-docroot, with --static-index, gzip variants,
 * Expires rules, If-Modified-Since and single byte ranges. Plain C, no Python.
 */
#ifndef GYRE_STATIC_H
#define GYRE_STATIC_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "conn.h"
#include "request.h"

struct gy_config;
struct gy_response;

/* What the static lookup reads of a request: values of its CGI params (absent: len 0). */
struct static_request {
    struct gy_slice method, path_info, uri, document_root;
    struct gy_slice if_modified_since, range, if_range, accept_encoding;
    time_t now;
};

/* The answer to a request for a static file. */
struct static_file {
    int status;              /* 200, 206, 304 or 416 */
    int fd;                  /* the file sent, open; -1 when none */
    char path[PATH_MAX + 4]; /* its real path: FILE, or FILE.gz */
    char root[PATH_MAX];     /* the (real) directory it was found under */
    struct stat st;          /* of fd */
    const char *type;        /* Content-Type (of FILE, not of FILE.gz), or NULL */
    bool gzip;               /* FILE.gz is sent: Content-Encoding: gzip */
    bool vary;               /* a gzip variant was looked for: Vary: Accept-Encoding */
    time_t expires;          /* Expires, or 0 */
    uint64_t offset, length; /* the bytes of the file the body is (206: the range) */
};

/* Is any static option given? When not, static_serve returns at once. */
bool static_enabled(const struct gy_config *cfg);
/* Find the file a request names. true: f->path, f->root set (nothing open yet); false: not a
 * static file (no mapping matches, nothing there, a directory without index, a method other
 * than GET/HEAD, outside its directory): the app gets the request, as in uWSGI. */
bool static_find(const struct gy_config *cfg, const struct static_request *q,
                 struct static_file *f);
/* Open the found file and decide the answer: status, gzip variant, range, type, expires.
 * false when the file cannot be opened (gone meanwhile): the app gets the request. */
bool static_open(const struct gy_config *cfg, const struct static_request *q,
                 struct static_file *f);
void static_close(struct static_file *f);
/* The status line (after status_prefix) and the headers of the answer, into r; the protocol's
 * head_finish adds Content-Length and the rest. -1 when out of memory. */
int static_head(const struct static_file *f, struct gy_response *r, const char *status_prefix);
/* The body length the head announces: -1 for none (304). */
int64_t static_content_length(const struct static_file *f);

/* RFC 1123 dates ("Sun, 06 Nov 1994 08:49:37 GMT"): -1 when not one. */
time_t static_parse_http_date(const char *p, size_t len);
/* One "bytes=" range against a file of size bytes: 1 and [*from, *to] inclusive; 0 when the
 * header is to be ignored (malformed, several ranges); -1 when it cannot be satisfied. */
int static_parse_range(struct gy_slice v, uint64_t size, uint64_t *from, uint64_t *to);

/* Core side, before the app: answer c's request with a static file when one matches. true:
 * answered (r holds the status and sizes for the log line), *io says how the writes ended
 * (IO_KILLED: the core is being killed, a Python error is set), *complete when the whole
 * answer went out (the connection may carry another request); false: the app gets it. */
bool static_serve(const struct gy_config *cfg, struct gy_conn *c, struct gy_response *r,
                  enum io_result *io, bool *complete);

#endif
