/*
 * Logging: one write(2) per line to stderr, so lines from several processes never interleave
 * mid-line. Request log lines are built by the caller and handed to log_raw().
 */
#ifndef GYRE_LOG_H
#define GYRE_LOG_H

#include <stddef.h>

void log_init(void);
/* A server message: "[gyre PID] ...\n". */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A message followed by strerror(errno). */
void log_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write len bytes as they are (the caller ends them with a newline). */
void log_raw(const char *buf, size_t len);
/* "Wed Nov 25 18:35:07 2026", cached for the current second. */
const char *log_asctime(void);

#endif
