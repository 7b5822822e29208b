#include "log.h"

#include <errno.h>
#include <stdarg.h>
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

static void log_vmsg(const char *suffix, const char *fmt, va_list ap)
{
    char line[2048];
    int n = snprintf(line, sizeof line, "[gyre %d] ", log_pid);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2 - strlen(suffix))
        len = sizeof line - 2 - strlen(suffix);
    memcpy(line + len, suffix, strlen(suffix));
    len += strlen(suffix);
    line[len++] = '\n';
    log_raw(line, len);
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
    snprintf(suffix, sizeof suffix, ": %s", strerror(errno));
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
        strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
        cached_at = now;
    }
    return buf;
}
