/*
 * Logging: one write(2) per line to stderr, so lines from several processes never interleave
 * mid-line. Request log lines are rendered by logformat.c (the client's fields through
 * log_escape) and handed to log_raw(); every other line goes through log_msg, which escapes
 * the control bytes of the whole message: no line can hold a newline or a terminal escape
 * that came from a client or an app.
 */
#ifndef GYRE_LOG_H
#define GYRE_LOG_H

#include <stddef.h>

void log_init(void);
/* A server message: "[gyre PID] ...\n", control bytes escaped (\xHH). */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A message and then text of several lines (a stack), each line a message of its own. */
void log_lines(const char *first, const char *text);
/* A message followed by strerror(errno). */
void log_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write len bytes as they are (the caller ends them with a newline). */
void log_raw(const char *buf, size_t len);
/* "Wed Nov 25 18:35:07 2026", cached for the current second. */
const char *log_asctime(void);

/* What a request log line can say. */
struct log_fields {
    const char *method, *uri, *addr, *proto; /* with their lengths: */
    int method_len, uri_len, addr_len, proto_len;
    int status;
    unsigned long long size; /* body bytes the app produced */
    unsigned msecs;
    int pid;
    int core;
    unsigned long long req; /* the worker's request counter */
    unsigned vars;          /* CGI params of the request */
    unsigned head_size;     /* bytes of its head */
    unsigned headers;       /* response headers */
    size_t headers_size;
    unsigned long long switches;
};

/* logformat.c: every request log line. Compile --log-format once at start-up (NULL or an
 * error message); without one, uWSGI's default line is the format. Render one line (with its
 * newline) into out, returning its length: the client's text in it escaped by log_escape. */
const char *logformat_compile(const char *fmt);
size_t logformat_render(const struct log_fields *f, char *out, size_t cap);
/* Bytes from a client made safe for a log line: control bytes, DEL, '"' and '\\' become
 * \xHH, as nginx writes them. Writes at most cap bytes to dst (never half an escape) and
 * returns how many; stops early when src does not fit. */
size_t log_escape(char *dst, size_t cap, const char *src, size_t n);
/* How many bytes log_escape needs for all of src. */
size_t log_escaped_len(const char *src, size_t n);

#endif
