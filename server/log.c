/*
 * Depends on: no other server file (server/README)
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static int log_pid;

void log_init(void)
{
    log_pid = (int)getpid();
}

void log_raw(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(log_fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to complain to */
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Whether a byte must not reach the log as it is: a control byte or DEL would start a forged
 * line or drive the terminal showing the log. In a field of the request line, '"' and '\\'
 * too: they would end or escape a quoted field a log parser splits on. As nginx's access log. */
static bool needs_escape(unsigned char ch, bool field)
{
    return ch < 0x20 || ch == 0x7f || (field && (ch == '"' || ch == '\\'));
}

static size_t escape(char *dst, size_t cap, const char *src, size_t n, bool field)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (!needs_escape(ch, field)) {
            if (len == cap)
                break;
            dst[len++] = (char)ch;
            continue;
        }
        if (cap - len < 4)
            break; /* cut before an escape, never through one */
        dst[len++] = '\\';
        dst[len++] = 'x';
        dst[len++] = hex[ch >> 4];
        dst[len++] = hex[ch & 15];
    }
    return len;
}

size_t log_escape(char *dst, size_t cap, const char *src, size_t n)
{
    return escape(dst, cap, src, n, true);
}

size_t log_escaped_len(const char *src, size_t n)
{
    size_t len = n;
    for (size_t i = 0; i < n; i++)
        if (needs_escape((unsigned char)src[i], true))
            len += 3;
    return len;
}

/* Every server message is one line: whatever it quotes (a client's method or URI, an app's
 * exception message, a path) has its control bytes escaped here, so no caller can forget. */
static void log_vmsg(const char *suffix, const char *fmt, va_list ap)
{
    char text[2048];
    int m = vsnprintf(text, sizeof(text), fmt, ap);
    size_t tlen = m < 0 ? 0 : (size_t)m < sizeof(text) ? (size_t)m : sizeof(text) - 1;
    char line[4096];
    size_t slen = strlen(suffix);
    int n = snprintf(line, sizeof(line), "[gyre %d] ", log_pid);
    size_t len = (size_t)n;
    len += escape(line + len, sizeof(line) - len - slen - 1, text, tlen, false);
    len += escape(line + len, sizeof(line) - len - 1, suffix, slen, false);
    line[len++] = '\n';
    log_raw(line, len);
}

/* A message followed by lines of their own (a stack): each line prefixed as a message, its
 * control bytes escaped as in log_msg. */
void log_lines(const char *first, const char *text)
{
    log_msg("%s", first);
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        log_msg("%.*s", (int)n, text);
        text += n + (nl ? 1 : 0);
    }
}

void log_msg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg("", fmt, ap);
    va_end(ap);
}

void log_errno(const char *fmt, ...)
{
    char suffix[160];
    snprintf(suffix, sizeof(suffix), ": %s", strerror(errno));
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(suffix, fmt, ap);
    va_end(ap);
}

const char *log_asctime(void)
{
    static time_t cached_at;
    static char buf[32];
    time_t now = time(NULL);
    if (now != cached_at) {
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%a %b %e %H:%M:%S %Y", &tm);
        cached_at = now;
    }
    return buf;
}
