/*
 * Depends on: regexp.c (server/README)
 *
 * Where log lines go, uWSGI's way (core/logging.c), without uWSGI's log master: every process
 * writes its own lines, one write(2) each, so nothing can stall or lose them in a pipe.
 *
 *   A line is a server message (log_msg: "[gyre PID] ...", after --log-date's prefix) or a
 *   request line (log_request_line). Request lines take the request chain when a
 *   --req-logger is configured, else the message chain, as in uWSGI.
 *   A chain: the first --log-route (or --log-req-route) whose regex matches sends the line to
 *   that named logger, and so does every other route that matches; a line no route took goes
 *   to every unnamed --logger of the chain, or to stderr (--logto's file) when it has none.
 *   Before a logger writes it, the line goes through the chain's --log-encoder list (an
 *   encoder "NAME:ID" only for the logger ID).
 *   Loggers: file:PATH (or logfile=PATH,maxsize=N,backupname=NAME), fd:N, stdio (stderr or
 *   --logto), syslog[:IDENT[,FACILITY]].
 *   --log-maxsize rotates stderr's --logto file, a file logger's maxsize its own file.
 */
#include "config.h"
#include "log.h"
#include "regexp.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define MAX_LOGGERS GY_MAX_LIST
#define LINE_MAX_BYTES 8192 /* an encoded line longer than this is cut */

/* A file that may be rotated: its path, the fds that write to it and its limit. */
struct logfile {
    const char *path;
    const char *backupname; /* NULL: PATH.<unix time> */
    unsigned long long maxsize;
    bool reopen;       /* reopen once the path names another file (or none) */
    double checked_at; /* the last such check, at most once a second */
};

enum logger_kind { LOGGER_FD, LOGGER_STDERR, LOGGER_SYSLOG };

struct logger {
    char *id; /* a named logger gets only the lines a route sends it */
    enum logger_kind kind;
    int fd;
    struct logfile file; /* LOGGER_FD opened from file: */
    char *kv;            /* file:'s key=value copy, which file.path points into */
};

enum enc_kind { ENC_PREFIX, ENC_SUFFIX, ENC_NL, ENC_FORMAT, ENC_JSON };

struct encoder {
    enum enc_kind kind;
    char *use_for; /* NULL: every logger */
    char *args;
};

struct route {
    struct gy_regexp *re;
    struct logger *logger;
};

struct chain {
    struct logger loggers[MAX_LOGGERS];
    int nloggers;
    struct route routes[GY_MAX_LIST];
    int nroutes;
    struct encoder encoders[GY_MAX_LIST];
    int nencoders;
    struct gy_regexp *drains[GY_MAX_LIST], *filters[GY_MAX_LIST]; /* --log-drain, --log-filter */
    int ndrains, nfilters;
};

static struct {
    int pid;
    const struct gy_config *cfg;
    struct logfile stderr_file; /* --logto, behind fds 1 and 2 */
    int out_fd;                 /* stderr (or --logto): 2, or its copy once fds 1 and 2 are the
                                   capture pipe */
    struct chain main, req;
    bool syslog_open;
    pthread_mutex_t lock; /* one line at a time: the capture thread dispatches too */
    time_t rotate_seen[GY_MAX_LIST], reopen_seen[GY_MAX_LIST]; /* the touch files' mtimes */
} L = { .out_fd = 2, .lock = PTHREAD_MUTEX_INITIALIZER };

void log_init(void)
{
    L.pid = (int)getpid();
}

/* A child forked while another thread held the lock would wait for it forever. */
static void lock_reset_in_child(void)
{
    pthread_mutex_init(&L.lock, NULL);
}

/* ---- writing and rotating files ---------------------------------------------------------- */

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to complain to */
        }
        buf += n;
        len -= (size_t)n;
    }
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Open path again and put it behind fd (and fd 1 too for stderr: Python's print goes there). */
static void reopen_onto(const struct logfile *lf, int fd, bool truncate)
{
    int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0);
    int nfd = open(lf->path, flags, 0640);
    if (nfd < 0)
        return; /* keep writing to the old file rather than nowhere */
    if (L.cfg && L.cfg->logfile_chmod > 0 && lf == &L.stderr_file)
        fchmod(nfd, (mode_t)L.cfg->logfile_chmod);
    if (fd == 2)
        dup2(nfd, 1); /* print() and tracebacks follow (fds 1 and 2 are not the capture pipe) */
    dup2(nfd, fd);
    close(nfd);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/*
 * Past maxsize: rename the file and open a new one, as uWSGI's uwsgi_log_do_rotate. Every
 * process shares the file, and each checks before it writes: a POSIX lock on the file (held
 * per process, so the processes exclude each other) lets one rename it; the others, once they
 * hold the lock, find the path naming a new file and only reopen it.
 */
static void rotate(struct logfile *lf, int fd, bool force)
{
    struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    while (fcntl(fd, F_SETLKW, &lock) < 0 && errno == EINTR)
        ;
    struct stat now, at_path;
    bool ours = fstat(fd, &now) == 0 && stat(lf->path, &at_path) == 0 && same_file(&now, &at_path);
    if (ours && (force || (unsigned long long)now.st_size > lf->maxsize)) {
        char name[4096];
        if (lf->backupname)
            snprintf(name, sizeof(name), "%s", lf->backupname);
        else
            snprintf(name, sizeof(name), "%s.%lld", lf->path, (long long)time(NULL));
        char msg[4200];
        int n = snprintf(msg, sizeof(msg), "%s - logsize: %llu, triggering rotation to %s...\n",
                         log_asctime(), (unsigned long long)now.st_size, name);
        write_all(fd, msg, n > 0 && (size_t)n < sizeof(msg) ? (size_t)n : 0);
        if (rename(lf->path, name) == 0)
            reopen_onto(lf, fd, true);
    } else if (!ours) {
        reopen_onto(lf, fd, false); /* another process rotated it */
    }
    lock.l_type = F_UNLCK;
    fcntl(fd, F_SETLK, &lock); /* (reopen_onto's dup2 already dropped it: a no-op then) */
}

/* Before a write to a file of ours: rotate it past its size, reopen it once moved away. */
/* --touch-logrotate, --touch-logreopen: whether one of the files changed its mtime since this
 * process last looked (the times seen at start are inherited by the forked workers). */
static bool touched(const char *const *paths, time_t *seen, int n)
{
    bool any = false;
    for (int i = 0; i < n; i++) {
        struct stat st;
        time_t m = stat(paths[i], &st) == 0 ? st.st_mtime : 0;
        if (m != seen[i]) {
            any |= seen[i] != 0 || m != 0;
            seen[i] = m;
        }
    }
    return any;
}

static void note_touch_times(void)
{
    touched(L.cfg->touch_logrotate, L.rotate_seen, L.cfg->ntouch_logrotate);
    touched(L.cfg->touch_logreopen, L.reopen_seen, L.cfg->ntouch_logreopen);
}

/* Before a write to a file of ours: rotate it past its size, reopen it once moved away; for
 * the --logto file, the touch files too (checked at most once a second). */
static void check_file(struct logfile *lf, int fd)
{
    if (!lf->path)
        return;
    struct stat st;
    if (lf->maxsize && fstat(fd, &st) == 0 && (unsigned long long)st.st_size > lf->maxsize) {
        rotate(lf, fd, false);
        return;
    }
    bool touches = lf == &L.stderr_file && (L.cfg->ntouch_logrotate || L.cfg->ntouch_logreopen);
    if (!lf->reopen && !touches)
        return;
    double t = now_mono();
    if (t - lf->checked_at < 1.0)
        return;
    lf->checked_at = t;
    if (touches && touched(L.cfg->touch_logrotate, L.rotate_seen, L.cfg->ntouch_logrotate)) {
        rotate(lf, fd, true); /* renamed once: the other processes find it renamed, reopen */
        return;
    }
    bool reopen = touches &&
                  touched(L.cfg->touch_logreopen, L.reopen_seen, L.cfg->ntouch_logreopen);
    struct stat at_path;
    if (reopen || (lf->reopen && fstat(fd, &st) == 0 &&
                   (stat(lf->path, &at_path) < 0 || !same_file(&st, &at_path))))
        reopen_onto(lf, fd, false);
}

static void write_stderr(const char *buf, size_t len)
{
    check_file(&L.stderr_file, L.out_fd);
    write_all(L.out_fd, buf, len);
}

/* ---- encoders ------------------------------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (n > b->cap - b->len)
        n = b->cap - b->len;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* A JSON string's inside (RFC 8259), escaped by libjansson. JSON text is UTF-8; a message that
 * is not (a client's bytes in a request line may be anything) is read as Latin-1, so that every
 * byte still shows, as its own code point. */
static void buf_put_json(struct buf *b, const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    char *latin1 = NULL;
    if (!j && (latin1 = malloc(2 * n + 1))) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (ch < 0x80) {
                latin1[k++] = (char)ch;
            } else {
                latin1[k++] = (char)(0xc0 | ch >> 6);
                latin1[k++] = (char)(0x80 | (ch & 0x3f));
            }
        }
        j = json_stringn(latin1, k);
    }
    char *text = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    if (text) /* "...": the quotes are the template's */
        buf_put(b, text + 1, strlen(text) - 2);
    free(text);
    json_decref(j);
    free(latin1);
}

static void buf_put_num(struct buf *b, unsigned long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", v);
    buf_put(b, tmp, (size_t)n);
}

/* One ${name} of the format and json encoders: msg (without its newline), msgnl, unix,
 * micros, millis, strftime:FMT. An unknown name is nothing, as in uWSGI. */
static void put_encoder_var(struct buf *b, const char *name, size_t nlen, const char *msg,
                            size_t len, bool json)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    void (*text)(struct buf *, const char *, size_t) = json ? buf_put_json : buf_put;
    if (nlen == 3 && !memcmp(name, "msg", 3)) {
        text(b, msg, len > 0 && msg[len - 1] == '\n' ? len - 1 : len);
    } else if (nlen == 5 && !memcmp(name, "msgnl", 5)) {
        text(b, msg, len);
    } else if (nlen == 4 && !memcmp(name, "unix", 4)) {
        buf_put_num(b, (unsigned long long)tv.tv_sec);
    } else if (nlen == 6 && !memcmp(name, "micros", 6)) {
        buf_put_num(b, (unsigned long long)tv.tv_sec * 1000000ULL + (unsigned long long)tv.tv_usec);
    } else if (nlen == 6 && !memcmp(name, "millis", 6)) {
        buf_put_num(b, (unsigned long long)tv.tv_sec * 1000ULL +
                           (unsigned long long)tv.tv_usec / 1000);
    } else if (nlen > 9 && !memcmp(name, "strftime:", 9)) {
        char fmt[256], out[256];
        snprintf(fmt, sizeof(fmt), "%.*s", (int)(nlen - 9), name + 9);
        struct tm tm;
        time_t t = tv.tv_sec;
        localtime_r(&t, &tm);
        size_t n = strftime(out, sizeof(out), fmt, &tm);
        text(b, out, n);
    }
}

/* format and json: the args with their ${var}s; a '$' not before '{' is text. */
static void encode_template(struct buf *b, const char *args, const char *msg, size_t len, bool json)
{
    for (const char *p = args; *p;) {
        const char *close = p[0] == '$' && p[1] == '{' ? strchr(p + 2, '}') : NULL;
        if (!close) {
            buf_put(b, p, 1);
            p++;
            continue;
        }
        put_encoder_var(b, p + 2, (size_t)(close - p - 2), msg, len, json);
        p = close + 1;
    }
}

static void encode(const struct encoder *e, const char *msg, size_t len, struct buf *out)
{
    out->len = 0;
    switch (e->kind) {
    case ENC_PREFIX:
        buf_put(out, e->args, strlen(e->args));
        buf_put(out, msg, len);
        break;
    case ENC_SUFFIX:
        buf_put(out, msg, len);
        buf_put(out, e->args, strlen(e->args));
        break;
    case ENC_NL:
        buf_put(out, msg, len);
        buf_put(out, "\n", 1);
        break;
    case ENC_FORMAT:
    case ENC_JSON:
        encode_template(out, e->args, msg, len, e->kind == ENC_JSON);
        break;
    }
}

/* ---- loggers and chains -------------------------------------------------------------------- */

static void logger_write(struct logger *lg, const char *msg, size_t len)
{
    switch (lg->kind) {
    case LOGGER_STDERR:
        write_stderr(msg, len);
        break;
    case LOGGER_FD:
        check_file(&lg->file, lg->fd);
        write_all(lg->fd, msg, len);
        break;
    case LOGGER_SYSLOG:
        syslog(LOG_INFO, "%.*s", (int)len, msg);
        break;
    }
}

/* The line through the chain's encoders meant for this logger (NULL: stderr), then out. */
static void deliver(const struct chain *ch, struct logger *lg, const char *msg, size_t len)
{
    char bufs[2][LINE_MAX_BYTES]; /* on the stack: the stats thread logs too */
    int which = 0;
    for (int i = 0; i < ch->nencoders; i++) {
        const struct encoder *e = &ch->encoders[i];
        if (e->use_for && (!lg || !lg->id || strcmp(e->use_for, lg->id) != 0))
            continue;
        struct buf out = { bufs[which], 0, LINE_MAX_BYTES };
        encode(e, msg, len, &out);
        msg = out.p;
        len = out.len;
        which ^= 1;
    }
    if (lg)
        logger_write(lg, msg, len);
    else
        write_stderr(msg, len);
}

static bool any_match(struct gy_regexp *const *res, int n, const char *text, size_t len)
{
    for (int i = 0; i < n; i++)
        if (regexp_match(res[i], text, len))
            return true;
    return false;
}

/* uWSGI's uwsgi_master_log: --log-drain drops a line, --log-filter keeps only the lines it
 * matches, then the routes, then the unnamed loggers (or stderr). */
static void dispatch_locked(struct chain *ch, const char *line, size_t len)
{
    if (ch->nroutes || ch->ndrains || ch->nfilters) {
        /* The line without its newline (a '$' then ends where the text does). */
        size_t n = len > 0 && line[len - 1] == '\n' ? len - 1 : len;
        if (any_match(ch->drains, ch->ndrains, line, n))
            return;
        if (ch->nfilters && !any_match(ch->filters, ch->nfilters, line, n))
            return;
        bool routed = false;
        for (int i = 0; i < ch->nroutes; i++)
            if (regexp_match(ch->routes[i].re, line, n)) {
                deliver(ch, ch->routes[i].logger, line, len);
                routed = true;
            }
        if (routed)
            return;
    }
    bool any = false;
    for (int i = 0; i < ch->nloggers; i++)
        if (!ch->loggers[i].id) {
            deliver(ch, &ch->loggers[i], line, len);
            any = true;
        }
    if (!any)
        deliver(ch, NULL, line, len);
}

static void dispatch(struct chain *ch, const char *line, size_t len)
{
    pthread_mutex_lock(&L.lock);
    dispatch_locked(ch, line, len);
    pthread_mutex_unlock(&L.lock);
}

void log_request_line(const char *buf, size_t len)
{
    dispatch(L.req.nloggers ? &L.req : &L.main, buf, len);
}

/* ---- what Python writes to fds 1 and 2 -------------------------------------------------------- */

/* The capture pipe's reader: each line Python (print, tracebacks, the logging module) or a C
 * library wrote to stdout or stderr, dispatched as a message, as uWSGI's log master does with
 * its workers' output. A line longer than the buffer goes out in pieces. */
static void *capture_loop(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[LINE_MAX_BYTES];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (len)
                dispatch(&L.main, buf, len);
            return NULL; /* every writer is gone */
        }
        len += (size_t)n;
        size_t start = 0;
        for (char *nl; (nl = memchr(buf + start, '\n', len - start));) {
            size_t end = (size_t)(nl - buf) + 1;
            dispatch(&L.main, buf + start, end - start);
            start = end;
        }
        if (start == 0 && len == sizeof(buf)) {
            dispatch(&L.main, buf, len);
            len = 0;
        } else {
            memmove(buf, buf + start, len - start);
            len -= start;
        }
    }
}

void log_capture_stdio(void)
{
    if (!L.main.nloggers && !L.main.nroutes && !L.main.nencoders && !L.main.ndrains &&
        !L.main.nfilters)
        return; /* stderr is where lines go as they are: nothing to capture */
    int p[2];
    int out = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (out < 0 || pipe2(p, O_CLOEXEC) < 0) {
        log_errno("cannot capture stdout and stderr for --logger");
        return;
    }
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, capture_loop, (void *)(intptr_t)p[0]) != 0) {
        log_msg("cannot capture stdout and stderr for --logger: no thread");
        close(p[0]);
        close(p[1]);
        close(out);
        return;
    }
    pthread_attr_destroy(&attr);
    pthread_mutex_lock(&L.lock);
    L.out_fd = out;
    dup2(p[1], 1);
    dup2(p[1], 2);
    close(p[1]);
    pthread_mutex_unlock(&L.lock);
}

/* ---- set-up ------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int facility;
} FACILITIES[] = {
    { "auth", LOG_AUTH },     { "authpriv", LOG_AUTHPRIV }, { "cron", LOG_CRON },
    { "daemon", LOG_DAEMON }, { "ftp", LOG_FTP },           { "kern", LOG_KERN },
    { "lpr", LOG_LPR },       { "mail", LOG_MAIL },         { "news", LOG_NEWS },
    { "security", LOG_AUTH }, { "syslog", LOG_SYSLOG },     { "user", LOG_USER },
    { "uucp", LOG_UUCP },     { "local0", LOG_LOCAL0 },     { "local1", LOG_LOCAL1 },
    { "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },     { "local4", LOG_LOCAL4 },
    { "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 },     { "local7", LOG_LOCAL7 },
};

static char err_buf[512];

static const char *fail(const char *opt, const char *value, const char *what)
{
    snprintf(err_buf, sizeof(err_buf), "--%s %s: %s", opt, value, what);
    return err_buf;
}

/* syslog[:IDENT[,FACILITY]]: openlog once, as uWSGI's syslog plugin (default ident "uwsgi",
 * facility daemon). */
static const char *setup_syslog(const char *opt, const char *spec, const char *arg)
{
    if (L.syslog_open)
        return NULL; /* one openlog per process: the first syslog logger's ident wins */
    int facility = LOG_DAEMON;
    char *ident = strdup(arg && *arg ? arg : "uwsgi");
    if (!ident)
        return "out of memory";
    char *comma = strchr(ident, ',');
    if (comma) {
        *comma = '\0';
        size_t i = 0;
        for (; i < sizeof(FACILITIES) / sizeof(FACILITIES[0]); i++)
            if (!strcmp(FACILITIES[i].name, comma + 1))
                break;
        if (i == sizeof(FACILITIES) / sizeof(FACILITIES[0])) {
            free(ident);
            return fail(opt, spec, "unknown syslog facility");
        }
        facility = FACILITIES[i].facility;
    }
    openlog(ident, 0, facility); /* ident is kept by syslog: never freed */
    L.syslog_open = true;
    return NULL;
}

/* file:PATH or file:logfile=PATH,maxsize=N,backupname=NAME (uWSGI's logfile plugin). */
static const char *setup_file(struct logger *lg, const char *opt, const char *spec, const char *arg)
{
    if (!arg || !*arg)
        return fail(opt, spec, "file: needs a path");
    lg->file.path = arg;
    if (strchr(arg, '=')) {
        char *kv = lg->kv = strdup(arg);
        if (!kv)
            return "out of memory";
        lg->file.path = NULL;
        for (char *save = NULL, *item = strtok_r(kv, ",", &save); item;
             item = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(item, '=');
            if (!eq)
                return fail(opt, spec, "expected key=value items");
            *eq = '\0';
            if (!strcmp(item, "logfile"))
                lg->file.path = eq + 1;
            else if (!strcmp(item, "backupname"))
                lg->file.backupname = eq + 1;
            else if (!strcmp(item, "maxsize"))
                lg->file.maxsize = strtoull(eq + 1, NULL, 10);
            else
                return fail(opt, spec, "keys are logfile, maxsize and backupname");
        }
        if (!lg->file.path)
            return fail(opt, spec, "missing logfile=");
    }
    lg->kind = LOGGER_FD;
    lg->fd = open(lg->file.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (lg->fd < 0) {
        snprintf(err_buf, sizeof(err_buf), "--%s %s: %s", opt, spec, strerror(errno));
        return err_buf;
    }
    return NULL;
}

/* [ID ]PLUGIN[:ARGS], as uWSGI's setup_choosen_logger reads it. */
static const char *setup_logger(struct logger *lg, const char *opt, const char *spec)
{
    memset(lg, 0, sizeof(*lg));
    lg->fd = -1;
    const char *name = spec;
    const char *space = strchr(spec, ' ');
    if (space) {
        bool is_id = space > spec;
        for (const char *p = spec; p < space; p++)
            is_id &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9');
        if (is_id) {
            lg->id = strndup(spec, (size_t)(space - spec));
            name = space + 1;
        }
    }
    const char *colon = strchr(name, ':');
    size_t nlen = colon ? (size_t)(colon - name) : strlen(name);
    const char *arg = colon && colon[1] ? colon + 1 : NULL;
    if (nlen == 4 && !memcmp(name, "file", 4))
        return setup_file(lg, opt, spec, arg);
    if (nlen == 2 && !memcmp(name, "fd", 2)) {
        lg->kind = LOGGER_FD;
        lg->fd = arg ? atoi(arg) : -1;
        /* fds 1 and 2 may become the capture pipe: a line written there would come back. */
        if (lg->fd == 1 || lg->fd == 2)
            lg->kind = LOGGER_STDERR;
        return lg->fd >= 0 ? NULL : fail(opt, spec, "fd: needs a file descriptor number");
    }
    if (nlen == 5 && !memcmp(name, "stdio", 5)) {
        lg->kind = LOGGER_STDERR;
        return NULL;
    }
    if (nlen == 6 && !memcmp(name, "syslog", 6)) {
        lg->kind = LOGGER_SYSLOG;
        return setup_syslog(opt, spec, arg);
    }
    return fail(opt, spec, "unknown logger: gyre has file, fd, stdio and syslog");
}

static struct logger *find_logger(const char *id, size_t len)
{
    struct chain *chains[2] = { &L.main, &L.req };
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < chains[c]->nloggers; i++) {
            const char *lid = chains[c]->loggers[i].id;
            if (lid && strlen(lid) == len && !memcmp(lid, id, len))
                return &chains[c]->loggers[i];
        }
    return NULL;
}

/* ID REGEX (PCRE, as uWSGI's). */
static const char *setup_route(struct route *r, const char *opt, const char *spec)
{
    const char *space = strchr(spec, ' ');
    if (!space || space == spec || !space[1])
        return fail(opt, spec, "expected LOGGER-ID REGEX");
    r->logger = find_logger(spec, (size_t)(space - spec));
    if (!r->logger)
        return fail(opt, spec, "no --logger/--req-logger has that id");
    char err[192];
    r->re = regexp_compile(space + 1, strlen(space + 1), err, sizeof(err));
    return r->re ? NULL : fail(opt, spec, err);
}

static const char *setup_regexes(struct gy_regexp **res, int *n, const char *opt,
                                 const char *const *list, int count)
{
    for (int i = 0; i < count; i++) {
        char err[192];
        res[*n] = regexp_compile(list[i], strlen(list[i]), err, sizeof(err));
        if (!res[*n])
            return fail(opt, list[i], err);
        (*n)++;
    }
    return NULL;
}

/* NAME[:ID] [ARGS] */
static const char *setup_encoder(struct encoder *e, const char *opt, const char *spec)
{
    static const struct {
        const char *name;
        enum enc_kind kind;
    } KINDS[] = { { "prefix", ENC_PREFIX },
                  { "suffix", ENC_SUFFIX },
                  { "nl", ENC_NL },
                  { "format", ENC_FORMAT },
                  { "json", ENC_JSON } };
    const char *space = strchr(spec, ' ');
    size_t head = space ? (size_t)(space - spec) : strlen(spec);
    const char *colon = memchr(spec, ':', head);
    size_t nlen = colon ? (size_t)(colon - spec) : head;
    e->args = strdup(space ? space + 1 : "");
    e->use_for = colon ? strndup(colon + 1, head - nlen - 1) : NULL;
    if (!e->args || (colon && !e->use_for))
        return "out of memory";
    for (size_t i = 0; i < sizeof(KINDS) / sizeof(KINDS[0]); i++)
        if (strlen(KINDS[i].name) == nlen && !memcmp(KINDS[i].name, spec, nlen)) {
            e->kind = KINDS[i].kind;
            return NULL;
        }
    return fail(opt, spec, "unknown encoder: gyre has prefix, suffix, nl, format and json");
}

static const char *setup_chain(struct chain *ch, const char *logger_opt, const char *const *loggers,
                               int nloggers, const char *enc_opt, const char *const *encoders,
                               int nencoders)
{
    /* Counted before they are checked: reset_chain frees what a failed one holds. */
    for (int i = 0; i < nloggers; i++) {
        const char *err = setup_logger(&ch->loggers[ch->nloggers++], logger_opt, loggers[i]);
        if (err)
            return err;
    }
    for (int i = 0; i < nencoders; i++) {
        const char *err = setup_encoder(&ch->encoders[ch->nencoders++], enc_opt, encoders[i]);
        if (err)
            return err;
    }
    return NULL;
}

static const char *setup_routes(struct chain *ch, const char *opt, const char *const *routes, int n)
{
    for (int i = 0; i < n; i++) {
        const char *err = setup_route(&ch->routes[ch->nroutes], opt, routes[i]);
        if (err)
            return err;
        ch->nroutes++;
    }
    return NULL;
}

/* --logfile-chown: the --logto file to --uid/--gid, so that workers that dropped to them can
 * reopen and rotate it. */
static const char *chown_logfile(const struct gy_config *cfg)
{
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    if (cfg->uid) {
        struct passwd *pw = getpwnam(cfg->uid);
        char *end;
        unsigned long n = strtoul(cfg->uid, &end, 10);
        if (pw)
            uid = pw->pw_uid, gid = pw->pw_gid;
        else if (*end == '\0')
            uid = (uid_t)n;
        else
            return fail("uid", cfg->uid, "no such user");
    }
    if (cfg->gid) {
        struct group *gr = getgrnam(cfg->gid);
        char *end;
        unsigned long n = strtoul(cfg->gid, &end, 10);
        if (gr)
            gid = gr->gr_gid;
        else if (*end == '\0')
            gid = (gid_t)n;
        else
            return fail("gid", cfg->gid, "no such group");
    }
    if (fchown(2, uid, gid) < 0) {
        snprintf(err_buf, sizeof(err_buf), "--logfile-chown: %s", strerror(errno));
        return err_buf;
    }
    return NULL;
}

/* What an earlier log_setup made (the unit tests call it more than once). */
static void reset_chain(struct chain *ch)
{
    for (int i = 0; i < ch->nloggers; i++) {
        if (ch->loggers[i].file.path && ch->loggers[i].fd >= 0)
            close(ch->loggers[i].fd);
        free(ch->loggers[i].id);
        free(ch->loggers[i].kv);
    }
    for (int i = 0; i < ch->nroutes; i++)
        regexp_free(ch->routes[i].re);
    for (int i = 0; i < ch->ndrains; i++)
        regexp_free(ch->drains[i]);
    for (int i = 0; i < ch->nfilters; i++)
        regexp_free(ch->filters[i]);
    for (int i = 0; i < ch->nencoders; i++) {
        free(ch->encoders[i].args);
        free(ch->encoders[i].use_for);
    }
    memset(ch, 0, sizeof(*ch));
}

const char *log_setup(const struct gy_config *cfg)
{
    static bool atfork;
    if (!atfork)
        atfork = pthread_atfork(NULL, NULL, lock_reset_in_child) == 0;
    reset_chain(&L.main);
    reset_chain(&L.req);
    L.cfg = cfg;
    L.stderr_file = (struct logfile){ .path = cfg->logto,
                                      .backupname = cfg->log_backupname,
                                      .maxsize = cfg->logto ? cfg->log_maxsize : 0,
                                      .reopen = cfg->logto && cfg->log_reopen };
    note_touch_times();
    /* --log-truncate: as uWSGI's O_TRUNC open of --logto (the file is open O_APPEND already). */
    if (cfg->logto && cfg->log_truncate && ftruncate(2, 0) < 0) {
        snprintf(err_buf, sizeof(err_buf), "--log-truncate: %s", strerror(errno));
        return err_buf;
    }
    if (cfg->logto && cfg->logfile_chmod > 0 && fchmod(2, (mode_t)cfg->logfile_chmod) < 0) {
        snprintf(err_buf, sizeof(err_buf), "--logfile-chmod: %s", strerror(errno));
        return err_buf;
    }
    if (cfg->logto && cfg->logfile_chown) {
        const char *err = chown_logfile(cfg);
        if (err)
            return err;
    }
    const char *err = setup_chain(&L.main, "logger", cfg->loggers, cfg->nloggers, "log-encoder",
                                  cfg->log_encoders, cfg->nlog_encoders);
    if (!err)
        err = setup_chain(&L.req, "req-logger", cfg->req_loggers, cfg->nreq_loggers,
                          "log-req-encoder", cfg->log_req_encoders, cfg->nlog_req_encoders);
    if (!err)
        err = setup_routes(&L.main, "log-route", cfg->log_routes, cfg->nlog_routes);
    if (!err)
        err = setup_routes(&L.req, "log-req-route", cfg->log_req_routes, cfg->nlog_req_routes);
    if (!err)
        err = setup_regexes(L.main.drains, &L.main.ndrains, "log-drain", cfg->log_drains,
                            cfg->nlog_drains);
    if (!err)
        err = setup_regexes(L.main.filters, &L.main.nfilters, "log-filter", cfg->log_filters,
                            cfg->nlog_filters);
    return err;
}

/* ---- escaping and messages ----------------------------------------------------------------- */

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

/* --log-date: "Wed Nov 25 18:35:07 2026 - " or strftime's " - ", as uwsgi_log prefixes. */
static size_t date_prefix(char *out, size_t cap)
{
    if (!L.cfg || !L.cfg->logdate)
        return 0;
    char when[128];
    if (L.cfg->log_strftime) {
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        if (strftime(when, sizeof(when), L.cfg->log_strftime, &tm) == 0)
            when[0] = '\0';
    } else {
        snprintf(when, sizeof(when), "%s", log_asctime());
    }
    int n = snprintf(out, cap, "%s - ", when);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
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
    size_t len = date_prefix(line, 200);
    len += (size_t)snprintf(line + len, sizeof(line) - len, "[gyre %d] ", L.pid);
    len += escape(line + len, sizeof(line) - len - slen - 1, text, tlen, false);
    len += escape(line + len, sizeof(line) - len - 1, suffix, slen, false);
    line[len++] = '\n';
    dispatch(&L.main, line, len);
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

/* --harakiri-verbose: where a stuck process is, in the kernel's words, as uWSGI's
 * trigger_harakiri logs it ("HARAKIRI: -- syscall> ..." and "... wchan> ..."). */
void log_proc_state(int pid)
{
    static const char *const files[] = { "syscall", "wchan" };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%d/%s", pid, files[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        while (n > 0 && buf[n - 1] == '\n')
            n--;
        log_msg("HARAKIRI: -- %s> %.*s", files[i], (int)n, buf);
    }
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
