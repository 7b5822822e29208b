/*
 * Logging: one write(2) per line, so lines from several processes never interleave mid-line.
 * Request log lines are rendered by logformat.c (the client's fields through log_escape) and
 * handed to log_request_line(); every other line goes through log_msg, which escapes the
 * control bytes of the whole message: no line can hold a newline or a terminal escape that
 * came from a client or an app. Where a line goes (stderr or --logto, --logger, --log-route)
 * and how it is encoded (--log-encoder) is log.c's alone.
 */
#ifndef GYRE_LOG_H
#define GYRE_LOG_H

#include "request.h" /* struct gy_param */

#include <stdbool.h>
#include <stddef.h>

struct gy_config;

/* Once, in main, after --logto is open (fds 1 and 2): --log-date, rotation (--log-maxsize),
 * --logger/--req-logger, --log-route, --log-encoder and the rest of them. NULL, or what is
 * wrong with an option (the caller exits). */
const char *log_setup(const struct gy_config *cfg);
/* After log_setup, with --logger, --log-route or --log-encoder: fds 1 and 2 become a pipe that
 * a thread of this process reads, so that what Python writes there (print, tracebacks) takes
 * the loggers too, as in uWSGI; the processes forked after share it. */
void log_capture_stdio(void);
/* After a fork and at start: the pid of "[gyre PID]". */
void log_init(void);
/* A server message: "[gyre PID] ...\n", control bytes escaped (\xHH). */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A message and then text of several lines (a stack), each line a message of its own. */
void log_lines(const char *first, const char *text);
/* A message followed by strerror(errno). */
void log_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A request log line of len bytes, newline included, written as it is: to the request
 * loggers (--req-logger) if any, else where the messages go. */
void log_request_line(const char *buf, size_t len);
/* --harakiri-verbose: log where process pid is stuck (/proc/PID/syscall and wchan). */
void log_proc_state(int pid);
/* "Wed Nov 25 18:35:07 2026", cached for the current second. */
const char *log_asctime(void);

/* What a request log line can say. */
struct log_fields {
    const char *method, *uri, *addr, *proto; /* with their lengths: */
    int method_len, uri_len, addr_len, proto_len;
    const struct gy_param *params; /* the request's CGI variables (var.NAME, host, ...) */
    unsigned nparams;
    const struct gy_param *logvars; /* what the app set with uwsgi.set_logvar */
    unsigned nlogvars;
    int status;
    unsigned long long rsize;  /* body bytes the app produced */
    unsigned long long micros; /* how long the request took */
    int pid;
    int wid; /* worker id: 1..--processes */
    int core;
    unsigned long long req; /* the worker's request counter */
    unsigned headers;       /* response headers */
    size_t headers_size;
    unsigned long long switches;
    unsigned read_errors, write_errors; /* the request's body could not be read; the client
                                           could not be written to */
    bool forced;                        /* the app asked for the line (uwsgi.log_this_request) */
};

/* logformat.c: every request log line. logformat_setup compiles --log-format (or uWSGI's
 * default line, with --memory-report's and --log-micros's variants) once at start-up and keeps
 * cfg for the "log only if" options; logformat_compile compiles a format alone (NULL or an
 * error). Render one line
 * (with its newline) into out, returning its length: the client's text in it escaped by
 * log_escape. logformat_log renders and writes a request's line if it is to be logged. */
const char *logformat_setup(const struct gy_config *cfg);
const char *logformat_compile(const char *fmt);
bool logformat_wanted(const struct log_fields *f);
size_t logformat_render(const struct log_fields *f, char *out, size_t cap);
void logformat_log(const struct log_fields *f);
/* Bytes from a client made safe for a log line: control bytes, DEL, '"' and '\\' become
 * \xHH, as nginx writes them. Writes at most cap bytes to dst (never half an escape) and
 * returns how many; stops early when src does not fit. */
size_t log_escape(char *dst, size_t cap, const char *src, size_t n);
/* How many bytes log_escape needs for all of src. */
size_t log_escaped_len(const char *src, size_t n);

#endif
