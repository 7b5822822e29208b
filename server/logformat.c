/*
 * Request log lines: the one renderer. uWSGI's logformat, text with %(name) variables,
 * compiled once into a list of pieces (literal text or a variable); rendering a request's line
 * only copies, escapes and formats numbers into the caller's buffer: no parsing and no
 * allocation per request. Without --log-format the format is LOGFORMAT_UWSGI, uWSGI's default
 * line, rendered by the same code: text from the client is escaped in one place (put_text).
 *
 * Variables: method uri status size msecs pid core addr proto vars pktsize hsize headers
 * switches req time (epoch) ltime. A '%' not followed by "(" is literal text, as in uWSGI.
 *
 * Depends on: log.c (server/README)
 */
#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum lf_var {
    V_LITERAL,
    V_METHOD,
    V_URI,
    V_STATUS,
    V_SIZE,
    V_MSECS,
    V_PID,
    V_CORE,
    V_ADDR,
    V_PROTO,
    V_VARS,
    V_PKTSIZE,
    V_HSIZE,
    V_HEADERS,
    V_SWITCHES,
    V_REQ,
    V_TIME,
    V_LTIME,
};

static const struct {
    const char *name;
    enum lf_var var;
} VARS[] = {
    { "method", V_METHOD },   { "uri", V_URI },           { "status", V_STATUS },
    { "size", V_SIZE },       { "msecs", V_MSECS },       { "pid", V_PID },
    { "core", V_CORE },       { "addr", V_ADDR },         { "proto", V_PROTO },
    { "vars", V_VARS },       { "pktsize", V_PKTSIZE },   { "hsize", V_HSIZE },
    { "headers", V_HEADERS }, { "switches", V_SWITCHES }, { "req", V_REQ },
    { "time", V_TIME },       { "epoch", V_TIME },        { "ltime", V_LTIME },
};

struct piece {
    enum lf_var var;
    const char *text; /* V_LITERAL */
    size_t len;
};

static struct piece *pieces;
static size_t npieces;
static char *pieces_text; /* the format's copy, which the literal pieces point into */

/* uWSGI's default request line, field for field, so that log tooling keeps working. */
static const char LOGFORMAT_UWSGI[] =
    "[pid: %(pid)|core: %(core)|req: %(req)] %(addr) () {%(vars) vars in %(pktsize) bytes} "
    "[%(ltime)] %(method) %(uri) => generated %(size) bytes in %(msecs) msecs "
    "(%(proto) %(status)) %(headers) headers in %(hsize) bytes "
    "(%(switches) switches on core %(core))";

const char *logformat_compile(const char *fmt)
{
    static char err[160];
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
    const char *lit = copy;
    for (const char *p = copy; *p;) {
        const char *close = p[0] == '%' && p[1] == '(' ? strchr(p + 2, ')') : NULL;
        if (!close) {
            p++;
            continue;
        }
        const char *name = p + 2;
        size_t len = (size_t)(close - name);
        enum lf_var var = V_LITERAL;
        for (size_t i = 0; i < sizeof(VARS) / sizeof(VARS[0]); i++)
            if (strlen(VARS[i].name) == len && memcmp(VARS[i].name, name, len) == 0)
                var = VARS[i].var;
        if (var == V_LITERAL) {
            snprintf(err, sizeof(err),
                     "unknown variable %%(%.*s): known are method uri status "
                     "size msecs pid core addr proto vars pktsize hsize headers switches req "
                     "time ltime",
                     len > 40 ? 40 : (int)len, name);
            free(out);
            free(copy);
            return err;
        }
        if (p > lit)
            out[n++] = (struct piece){ V_LITERAL, lit, (size_t)(p - lit) };
        out[n++] = (struct piece){ var, NULL, 0 };
        p = lit = close + 1;
    }
    if (*lit)
        out[n++] = (struct piece){ V_LITERAL, lit, strlen(lit) };
    free(pieces);
    free(pieces_text);
    pieces = out;
    pieces_text = copy;
    npieces = n;
    return NULL;
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

/* Text from the request, escaped. */
static void put_text(struct sink *s, const char *p, int n)
{
    if (s->cut)
        return;
    size_t len = n > 0 ? (size_t)n : 0;
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

size_t logformat_render(const struct log_fields *f, char *out, size_t cap)
{
    if (cap < 2) {
        if (cap == 1)
            out[0] = '\0';
        return 0;
    }
    if (!pieces && logformat_compile(LOGFORMAT_UWSGI) != NULL)
        return 0; /* out of memory: no line rather than a wrong one */
    struct sink s = { out, 0, cap - 2, false };
    for (size_t i = 0; i < npieces && !s.cut; i++) {
        const struct piece *pc = &pieces[i];
        switch (pc->var) {
        case V_LITERAL:
            put(&s, pc->text, pc->len);
            break;
        case V_METHOD:
            put_text(&s, f->method, f->method_len);
            break;
        case V_URI:
            put_text(&s, f->uri, f->uri_len);
            break;
        case V_ADDR:
            put_text(&s, f->addr, f->addr_len);
            break;
        case V_PROTO:
            put_text(&s, f->proto, f->proto_len);
            break;
        case V_STATUS:
            put_int(&s, f->status);
            break;
        case V_SIZE:
            put_num(&s, f->size);
            break;
        case V_MSECS:
            put_num(&s, f->msecs);
            break;
        case V_PID:
            put_int(&s, f->pid);
            break;
        case V_CORE:
            put_int(&s, f->core);
            break;
        case V_VARS:
            put_num(&s, f->vars);
            break;
        case V_PKTSIZE:
            put_num(&s, f->head_size);
            break;
        case V_HSIZE:
            put_num(&s, f->headers_size);
            break;
        case V_HEADERS:
            put_num(&s, f->headers);
            break;
        case V_SWITCHES:
            put_num(&s, f->switches);
            break;
        case V_REQ:
            put_num(&s, f->req);
            break;
        case V_TIME:
            put_int(&s, (long long)time(NULL));
            break;
        case V_LTIME: {
            const char *t = log_asctime();
            put(&s, t, strlen(t));
            break;
        }
        }
    }
    out[s.len++] = '\n';
    out[s.len] = '\0';
    return s.len;
}
