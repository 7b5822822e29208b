/*
 * Request log lines: the one renderer. uWSGI's logformat, text with %(name) variables,
 * compiled once into a list of pieces (literal text or a variable); rendering a request's line
 * only copies, escapes and formats numbers into the caller's buffer: no parsing and no
 * allocation per request. Without --log-format the format is uWSGI's default line (with
 * --memory-report's and --log-micros's variants), rendered by the same code: text from the
 * client is escaped in one place (put_text).
 *
 * Variables, as uWSGI 2.0 renders them (core/logging.c, uwsgi_register_logchunks):
 *   uri method user addr host proto uagent referer   the request's (CGI) text
 *   var.NAME                                         any request variable, e.g. var.HTTP_X_ID
 *   status rsize (body bytes) hsize (head bytes) size (both) cl (request body length)
 *   micros msecs secs                                how long the request took
 *   time tmsecs tmicros ltime ctime ftime            when it started; epoch: now
 *   pid wid core switches vars pktsize headers modifier1 modifier2 werr rerr ioerr
 *   vsz rss vszM rssM                                the process's memory (bytes, MiB)
 *   req                                              gyre's: the worker's request counter
 *   metric.NAME                                      the --metric's value (0: no such metric)
 *   any other NAME                                   the request's logvar: uwsgi.set_logvar(NAME, v)
 * A value that is empty, or a logvar the app did not set, renders "-", as in uWSGI. A '%' not
 * followed by "(" is literal text, as in uWSGI.
 *
 * Depends on: metrics.c, log.c (server/README)
 */
#include "config.h"
#include "log.h"
#include "metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum lf_var {
    V_LITERAL,
    V_METHOD,
    V_URI,
    V_ADDR,
    V_PROTO,
    V_PARAM, /* a request variable by name (user, uagent, referer, var.NAME) */
    V_HOST,  /* HTTP_HOST, else SERVER_NAME, as uWSGI's wsgi_req->host */
    V_STATUS,
    V_RSIZE,
    V_HSIZE,
    V_SIZE,
    V_CL,
    V_MICROS,
    V_MSECS,
    V_SECS,
    V_TIME,
    V_TMSECS,
    V_TMICROS,
    V_LTIME,
    V_CTIME,
    V_FTIME,
    V_EPOCH,
    V_PID,
    V_WID,
    V_CORE,
    V_SWITCHES,
    V_VARS,
    V_PKTSIZE,
    V_HEADERS,
    V_MODIFIER,
    V_WERR,
    V_RERR,
    V_IOERR,
    V_VSZ,
    V_RSS,
    V_VSZM,
    V_RSSM,
    V_REQ,
    V_METRIC, /* metric.NAME: a --metric's value */
    V_LOGVAR, /* any other name: a logvar the app sets with uwsgi.set_logvar */
};

static const struct {
    const char *name;
    enum lf_var var;
    const char *param; /* V_PARAM: the request variable */
} VARS[] = {
    { "uri", V_URI, NULL },
    { "method", V_METHOD, NULL },
    { "user", V_PARAM, "REMOTE_USER" },
    { "addr", V_ADDR, NULL },
    { "host", V_HOST, NULL },
    { "proto", V_PROTO, NULL },
    { "uagent", V_PARAM, "HTTP_USER_AGENT" },
    { "referer", V_PARAM, "HTTP_REFERER" },
    { "status", V_STATUS, NULL },
    { "rsize", V_RSIZE, NULL },
    { "hsize", V_HSIZE, NULL },
    { "size", V_SIZE, NULL },
    { "cl", V_CL, NULL },
    { "micros", V_MICROS, NULL },
    { "msecs", V_MSECS, NULL },
    { "secs", V_SECS, NULL },
    { "time", V_TIME, NULL },
    { "tmsecs", V_TMSECS, NULL },
    { "tmicros", V_TMICROS, NULL },
    { "ltime", V_LTIME, NULL },
    { "ctime", V_CTIME, NULL },
    { "ftime", V_FTIME, NULL },
    { "epoch", V_EPOCH, NULL },
    { "pid", V_PID, NULL },
    { "wid", V_WID, NULL },
    { "core", V_CORE, NULL },
    { "switches", V_SWITCHES, NULL },
    { "vars", V_VARS, NULL },
    { "pktsize", V_PKTSIZE, NULL },
    { "headers", V_HEADERS, NULL },
    { "modifier1", V_MODIFIER, NULL },
    { "modifier2", V_MODIFIER, NULL },
    { "werr", V_WERR, NULL },
    { "rerr", V_RERR, NULL },
    { "ioerr", V_IOERR, NULL },
    { "vsz", V_VSZ, NULL },
    { "rss", V_RSS, NULL },
    { "vszM", V_VSZM, NULL },
    { "rssM", V_RSSM, NULL },
    { "req", V_REQ, NULL },
};

struct piece {
    enum lf_var var;
    const char *text; /* V_LITERAL: the text; V_PARAM, V_LOGVAR: the variable's name */
    size_t len;
};

static struct {
    struct piece *pieces;
    size_t npieces;
    char *text;        /* the format's copy, which the pieces point into */
    bool needs_memory; /* a piece shows vsz or rss: read them once per line */
    const struct gy_config *cfg;
} F;

/* uWSGI's default request line, field for field, so that log tooling keeps working. */
#define LINE_HEAD                                                                                  \
    "[pid: %(pid)|core: %(core)|req: %(req)] %(addr) () {%(vars) vars in %(pktsize) bytes} "       \
    "[%(ctime)] %(method) %(uri) => generated %(rsize) bytes in "
#define LINE_TAIL                                                                                  \
    " (%(proto) %(status)) %(headers) headers in %(hsize) bytes (%(switches) switches on core "    \
    "%(core))"
/* --memory-report puts this before the line (uwsgi_logit_simple). */
#define MEMORY_REPORT                                                                              \
    "{address space usage: %(vsz) bytes/%(vszM)MB} {rss usage: %(rss) bytes/%(rssM)MB} "
static const char *const DEFAULT_FORMATS[2][2] = {
    { LINE_HEAD "%(msecs) msecs" LINE_TAIL, LINE_HEAD "%(micros) micros" LINE_TAIL },
    { MEMORY_REPORT LINE_HEAD "%(msecs) msecs" LINE_TAIL,
      MEMORY_REPORT LINE_HEAD "%(micros) micros" LINE_TAIL },
};

static enum lf_var lookup(const char *name, size_t len, const char **param)
{
    *param = NULL;
    for (size_t i = 0; i < sizeof(VARS) / sizeof(VARS[0]); i++)
        if (strlen(VARS[i].name) == len && memcmp(VARS[i].name, name, len) == 0) {
            *param = VARS[i].param;
            return VARS[i].var;
        }
    if (len > 4 && memcmp(name, "var.", 4) == 0)
        return V_PARAM;
    if (len > 7 && memcmp(name, "metric.", 7) == 0)
        return V_METRIC;
    return V_LOGVAR;
}

const char *logformat_compile(const char *fmt)
{
    /* At most one literal per variable plus one: a bound for the array. */
    size_t max = 1;
    for (const char *p = fmt; (p = strstr(p, "%(")); p += 2)
        max += 2;
    struct piece *out = calloc(max, sizeof(*out));
    char *copy = strdup(fmt);
    if (!out || !copy) {
        free(out);
        free(copy);
        return "out of memory";
    }
    size_t n = 0;
    bool needs_memory = false;
    const char *lit = copy;
    for (const char *p = copy; *p;) {
        /* "%()" is no variable (uWSGI prints garbage for it): text, as any '%' is. */
        const char *close = p[0] == '%' && p[1] == '(' && p[2] != ')' ? strchr(p + 2, ')') : NULL;
        if (!close) {
            p++;
            continue;
        }
        const char *name = p + 2;
        size_t len = (size_t)(close - name);
        const char *pname;
        enum lf_var var = lookup(name, len, &pname);
        size_t plen = pname ? strlen(pname) : 0;
        if (var == V_PARAM && !pname) { /* var.NAME */
            pname = name + 4;
            plen = len - 4;
        } else if (var == V_LOGVAR) {
            pname = name;
            plen = len;
        } else if (var == V_METRIC) {
            pname = name + 7;
            plen = len - 7;
        }
        needs_memory |= var == V_VSZ || var == V_RSS || var == V_VSZM || var == V_RSSM;
        if (p > lit)
            out[n++] = (struct piece){ V_LITERAL, lit, (size_t)(p - lit) };
        out[n++] = (struct piece){ var, pname, plen };
        p = lit = close + 1;
    }
    if (*lit)
        out[n++] = (struct piece){ V_LITERAL, lit, strlen(lit) };
    free(F.pieces);
    free(F.text);
    F.pieces = out;
    F.text = copy;
    F.npieces = n;
    F.needs_memory = needs_memory;
    return NULL;
}

const char *logformat_setup(const struct gy_config *cfg)
{
    F.cfg = cfg;
    if (cfg->log_format)
        return logformat_compile(cfg->log_format);
    return logformat_compile(DEFAULT_FORMATS[cfg->memory_report][cfg->log_micros]);
}

/* uWSGI's "log only if" options: with --disable-logging, a request matching one of them is
 * still logged (log_request in uWSGI's core/logging.c); without it every request is. */
bool logformat_wanted(const struct log_fields *f)
{
    const struct gy_config *c = F.cfg;
    if (!c || !c->disable_logging || f->forced)
        return true;
    return (c->log_zero && f->rsize == 0) ||
           (c->log_slow && f->micros / 1000 >= (unsigned long long)c->log_slow) ||
           (c->log_4xx && f->status >= 400 && f->status <= 499) ||
           (c->log_5xx && f->status >= 500 && f->status <= 599) ||
           (c->log_big && f->rsize >= c->log_big) ||
           (c->log_ioerror && (f->read_errors || f->write_errors));
}

/* The output, bounded: a line that does not fit is cut, never overflowed. Once anything is cut
 * the line ends there: later fields after a field missing its end would read as that field's
 * whole value. */
struct sink {
    char *buf;
    size_t len, cap; /* cap leaves room for the final "\n\0" */
    bool cut;
};

static void put(struct sink *s, const char *p, size_t n)
{
    if (s->cut)
        return;
    if (n > s->cap - s->len) {
        n = s->cap - s->len;
        s->cut = true;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

/* Text from the request, escaped; "-" when there is none, as uWSGI writes an empty value. */
static void put_text(struct sink *s, const char *p, int n)
{
    if (s->cut)
        return;
    if (n <= 0 || !p) {
        put(s, "-", 1);
        return;
    }
    size_t len = (size_t)n;
    size_t room = s->cap - s->len;
    s->cut = log_escaped_len(p, len) > room; /* log_escape stops where the rest does not fit */
    s->len += log_escape(s->buf + s->len, room, p, len);
}

static void put_num(struct sink *s, unsigned long long v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(s, tmp + i, sizeof(tmp) - i);
}

static void put_int(struct sink *s, long long v)
{
    if (v < 0) {
        put(s, "-", 1);
        put_num(s, 0ULL - (unsigned long long)v);
    } else {
        put_num(s, (unsigned long long)v);
    }
}

static void put_str(struct sink *s, const char *str)
{
    put(s, str, strlen(str));
}

/* A request variable by name: the first of that name, as uwsgi_get_var finds it. */
static struct gy_slice find(const struct gy_param *ps, unsigned n, const char *name, size_t len)
{
    for (unsigned i = 0; i < n; i++)
        if (gy_slice_eq(ps[i].name, name, len))
            return ps[i].value;
    return (struct gy_slice){ NULL, 0 };
}

static struct gy_slice param(const struct log_fields *f, const char *name, size_t len)
{
    return find(f->params, f->nparams, name, len);
}

/* The request's variables as a uwsgi packet's body (uWSGI's pktsize, the header's datasize):
 * what nginx's uwsgi_pass sends, and what uWSGI builds from an HTTP or FastCGI request too. */
static unsigned long long packet_size(const struct log_fields *f)
{
    unsigned long long n = 0;
    for (unsigned i = 0; i < f->nparams; i++)
        n += 4ULL + f->params[i].name.len + f->params[i].value.len;
    return n;
}

static unsigned long long content_length(const struct log_fields *f)
{
    struct gy_slice v = param(f, "CONTENT_LENGTH", 14);
    unsigned long long n = 0;
    for (uint32_t i = 0; i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9' && n < (1ULL << 60); i++)
        n = n * 10 + (unsigned long long)(v.ptr[i] - '0');
    return n;
}

/* A time of the request's start, formatted, cached for its second (localtime_r is not free).
 * One cache per format: ltime, ctime and ftime each keep their own. */
struct time_cache {
    time_t at;
    char text[64];
};

static const char *format_time(struct time_cache *tc, time_t t, const char *fmt)
{
    if (t != tc->at || !tc->text[0]) {
        struct tm tm;
        localtime_r(&t, &tm);
        if (strftime(tc->text, sizeof(tc->text), fmt, &tm) == 0)
            tc->text[0] = '\0';
        tc->at = t;
    }
    return tc->text;
}

/* The process's address space and resident set, in bytes, as uWSGI's get_memusage reads them
 * (fields 23 and 24 of /proc/self/stat; rss in pages). */
static void memory_usage(unsigned long long *vsz, unsigned long long *rss)
{
    *vsz = *rss = 0;
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f)
        return;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command (field 2) may hold spaces and ')': the fields after it follow its last ')'. */
    const char *p = strrchr(buf, ')');
    unsigned long long v = 0, r = 0;
    if (p && sscanf(p + 1,
                    " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d "
                    "%*u %llu %llu",
                    &v, &r) == 2) {
        *vsz = v;
        *rss = r * (unsigned long long)sysconf(_SC_PAGESIZE);
    }
}

/* What one line needs to know once: the clock and the memory, read before the pieces. */
struct line_facts {
    unsigned long long start_us, now_s, vsz, rss;
    struct gy_slice addr;
};

static void gather(const struct log_fields *f, struct line_facts *lf)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long long now_us = (unsigned long long)tv.tv_sec * 1000000ULL + (unsigned)tv.tv_usec;
    lf->now_s = (unsigned long long)tv.tv_sec;
    lf->start_us = now_us > f->micros ? now_us - f->micros : now_us;
    lf->vsz = lf->rss = 0;
    if (F.needs_memory)
        memory_usage(&lf->vsz, &lf->rss);
    lf->addr = (struct gy_slice){ f->addr, f->addr_len > 0 ? (uint32_t)f->addr_len : 0 };
    /* --log-x-forwarded-for: the header's value, whole, as uWSGI takes it. */
    if (F.cfg && F.cfg->log_x_forwarded_for) {
        struct gy_slice xff = param(f, "HTTP_X_FORWARDED_FOR", 20);
        if (xff.ptr)
            lf->addr = xff;
    }
}

static void put_secs(struct sink *s, unsigned long long micros)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%f", (double)micros / 1e6); /* uwsgi_float2str */
    put(s, tmp, n > 0 ? (size_t)n : 0);
}

static void put_piece(struct sink *s, const struct piece *pc, const struct log_fields *f,
                      const struct line_facts *lf)
{
    static struct time_cache ltime, ctime_, ftime;
    time_t start = (time_t)(lf->start_us / 1000000ULL);
    switch (pc->var) {
    case V_LITERAL:
        put(s, pc->text, pc->len);
        break;
    case V_METHOD:
        put_text(s, f->method, f->method_len);
        break;
    case V_URI:
        put_text(s, f->uri, f->uri_len);
        break;
    case V_ADDR:
        put_text(s, lf->addr.ptr, (int)lf->addr.len);
        break;
    case V_PROTO:
        put_text(s, f->proto, f->proto_len);
        break;
    case V_PARAM: {
        struct gy_slice v = param(f, pc->text, pc->len);
        put_text(s, v.ptr, (int)(v.len > 4096 ? 4096 : v.len));
        break;
    }
    case V_HOST: {
        struct gy_slice v = param(f, "HTTP_HOST", 9);
        if (!v.len)
            v = param(f, "SERVER_NAME", 11);
        put_text(s, v.ptr, (int)(v.len > 4096 ? 4096 : v.len));
        break;
    }
    case V_STATUS:
        put_int(s, f->status);
        break;
    case V_RSIZE:
        put_num(s, f->rsize);
        break;
    case V_HSIZE:
        put_num(s, f->headers_size);
        break;
    case V_SIZE:
        put_num(s, f->headers_size + f->rsize);
        break;
    case V_CL:
        put_num(s, content_length(f));
        break;
    case V_MICROS:
        put_num(s, f->micros);
        break;
    case V_MSECS:
        put_num(s, f->micros / 1000);
        break;
    case V_SECS:
        put_secs(s, f->micros);
        break;
    case V_TIME:
        put_num(s, lf->start_us / 1000000ULL);
        break;
    case V_TMSECS:
        put_num(s, lf->start_us / 1000);
        break;
    case V_TMICROS:
        put_num(s, lf->start_us);
        break;
    case V_LTIME:
        put_str(s, format_time(&ltime, start, "%d/%b/%Y:%H:%M:%S %z"));
        break;
    case V_CTIME:
        put_str(s, format_time(&ctime_, start, "%a %b %e %H:%M:%S %Y"));
        break;
    case V_FTIME:
        /* --logformat-strftime with --log-date FORMAT: that format; else ltime's (uWSGI). */
        if (F.cfg && F.cfg->logformat_strftime && F.cfg->log_strftime)
            put_str(s, format_time(&ftime, start, F.cfg->log_strftime));
        else
            put_str(s, format_time(&ltime, start, "%d/%b/%Y:%H:%M:%S %z"));
        break;
    case V_EPOCH:
        put_num(s, lf->now_s);
        break;
    case V_PID:
        put_int(s, f->pid);
        break;
    case V_WID:
        put_int(s, f->wid);
        break;
    case V_CORE:
        put_int(s, f->core);
        break;
    case V_SWITCHES:
        put_num(s, f->switches);
        break;
    case V_VARS:
        put_num(s, 2ULL * f->nparams); /* uWSGI counts names and values: its iovecs */
        break;
    case V_PKTSIZE:
        put_num(s, packet_size(f));
        break;
    case V_HEADERS:
        put_num(s, f->headers);
        break;
    case V_MODIFIER:
        put(s, "0", 1); /* gyre serves modifier1 0 only */
        break;
    case V_METRIC: {
        char name[256];
        size_t n = pc->len < sizeof(name) ? pc->len : 0; /* too long a name is no metric's */
        memcpy(name, pc->text, n);
        name[n] = '\0';
        put_int(s, (long long)metrics_get(&METRICS, name)); /* 0 for an unknown one, as uWSGI */
        break;
    }
    case V_WERR:
        put_num(s, f->write_errors);
        break;
    case V_RERR:
        put_num(s, f->read_errors);
        break;
    case V_IOERR:
        put_num(s, (unsigned long long)f->read_errors + f->write_errors);
        break;
    case V_VSZ:
        put_num(s, lf->vsz);
        break;
    case V_RSS:
        put_num(s, lf->rss);
        break;
    case V_VSZM:
        put_num(s, lf->vsz / 1024 / 1024);
        break;
    case V_RSSM:
        put_num(s, lf->rss / 1024 / 1024);
        break;
    case V_REQ:
        put_num(s, f->req);
        break;
    case V_LOGVAR: {
        struct gy_slice v = find(f->logvars, f->nlogvars, pc->text, pc->len);
        put_text(s, v.ptr, (int)(v.len > 4096 ? 4096 : v.len));
        break;
    }
    }
}

size_t logformat_render(const struct log_fields *f, char *out, size_t cap)
{
    if (cap < 2) {
        if (cap == 1)
            out[0] = '\0';
        return 0;
    }
    if (!F.pieces && logformat_compile(DEFAULT_FORMATS[0][0]) != NULL)
        return 0; /* out of memory: no line rather than a wrong one */
    struct line_facts lf;
    gather(f, &lf);
    struct sink s = { out, 0, cap - 2, false };
    for (size_t i = 0; i < F.npieces && !s.cut; i++)
        put_piece(&s, &F.pieces[i], f, &lf);
    out[s.len++] = '\n';
    out[s.len] = '\0';
    return s.len;
}

void logformat_log(const struct log_fields *f)
{
    if (!logformat_wanted(f))
        return;
    /* Room for the URI's 512 bytes escaped (4 each) and the rest of the line. */
    char line[4096];
    size_t n = logformat_render(f, line, sizeof(line));
    if (n > 0)
        log_request_line(line, n);
}
