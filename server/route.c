/*
 * uWSGI's internal routing: rules of a PCRE2 regex on a request var and an action, evaluated in
 * order before the app runs (see route.h). The actions and their return values are uWSGI's:
 *
 *   NEXT      the next rule: addheader, delheader/remheader, addvar, log, set*, rewrite
 *   CONTINUE  stop routing, run the app: continue/last, rewrite-last
 *   BREAK     stop routing, answer without the app: redirect*, return, break
 *
 * A rule that does not match is NEXT. Arguments expand $0..$9 (the rule's capture groups) and
 * ${VAR} (a request var, as the rules so far left it). --route-if rules test a condition on
 * expanded arguments instead of a regex on one var ("equal:${HTTPS};on", "regexp:${X};^a(b)").
 *
 * Depends on: (nothing in server/)
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "route.h"

#include "config.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum action {
    A_REDIRECT,
    A_REWRITE,
    A_RETURN,
    A_BREAK,
    A_CONTINUE,
    A_ADDHEADER,
    A_DELHEADER,
    A_ADDVAR,
    A_SETVAR, /* setpathinfo, setscriptname, setmethod: one var replaced */
    A_LOG,
    A_DONOTLOG,
};

/* --route-if's conditions, on "LEFT;RIGHT" (or one value), uWSGI's names. */
enum cond {
    C_NONE, /* a regex on a var, or --route-run */
    C_EQUAL,
    C_STARTSWITH,
    C_ENDSWITH,
    C_CONTAINS,
    C_REGEXP,
    C_EMPTY,
    C_EXISTS,
    C_ISFILE,
    C_ISDIR,
    C_HIGHER,
    C_LOWER,
    C_HIGHER_EQUAL,
    C_LOWER_EQUAL,
};

struct rule {
    char *subject; /* the var matched; NULL: always (or a condition) */
    pcre2_code *re;
    enum cond cond;
    bool negate;     /* --route-if-not */
    char *cond_args; /* the condition's arguments, unexpanded (C_REGEXP: the left part) */
    enum action action;
    int status; /* redirect: 301/302; return/break: the code (0: none) */
    bool last;  /* rewrite-last */
    char *var;  /* A_SETVAR: which */
    char *args; /* the action's argument, unexpanded */
    char *break_msg;
};

struct route_table {
    struct rule *rules;
    int n, cap;
    char *unsupported;
};

/* ---- the table -------------------------------------------------------------------------- */

struct route_table *route_table_new(void)
{
    return calloc(1, sizeof(struct route_table));
}

bool route_table_empty(const struct route_table *t)
{
    return !t || t->n == 0;
}

const char *route_unsupported(const struct route_table *t)
{
    return t ? t->unsupported : NULL;
}

static void rule_free(struct rule *r)
{
    free(r->subject);
    free(r->cond_args);
    pcre2_code_free(r->re);
    free(r->var);
    free(r->args);
    free(r->break_msg);
}

bool route_table_from_config(const struct gy_config *cfg, struct route_table **out, char *err,
                             size_t errlen)
{
    *out = NULL;
    if (cfg->nroutes == 0)
        return true;
    struct route_table *t = route_table_new();
    if (!t) {
        snprintf(err, errlen, "out of memory building the routing table");
        return false;
    }
    for (int i = 0; i < cfg->nroutes; i++) {
        const struct gy_route_conf *rc = &cfg->routes[i];
        char why[256];
        bool ok = false;
        switch (rc->kind) {
        case GY_ROUTE_REGEX:
            ok = route_add(t, rc->subject, rc->spec, why, sizeof(why));
            break;
        case GY_ROUTE_RUN:
            ok = route_add(t, NULL, rc->spec, why, sizeof(why));
            break;
        case GY_ROUTE_IF:
        case GY_ROUTE_IF_NOT:
            ok = route_add_if(t, rc->kind == GY_ROUTE_IF_NOT, rc->spec, why, sizeof(why));
            break;
        }
        if (!ok) {
            snprintf(err, errlen, "route \"%s\": %s", rc->spec, why);
            route_table_free(t);
            return false;
        }
    }
    *out = t;
    return true;
}

void route_table_free(struct route_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++)
        rule_free(&t->rules[i]);
    free(t->rules);
    free(t->unsupported);
    free(t);
}

static bool note_unsupported(struct route_table *t, const char *name, size_t len)
{
    size_t have = t->unsupported ? strlen(t->unsupported) : 0;
    char *u = realloc(t->unsupported, have + len + 3);
    if (!u)
        return false;
    if (have)
        memcpy(u + have, ", ", 2), have += 2;
    memcpy(u + have, name, len);
    u[have + len] = '\0';
    t->unsupported = u;
    return true;
}

/* "CODE[ MESSAGE]" of return: and break:. */
static bool parse_status(const char *args, int *status, char **msg)
{
    char *end;
    long code = strtol(args, &end, 10);
    if (end == args || code < 100 || code > 999 || (*end && *end != ' '))
        return false;
    *status = (int)code;
    if (*end == ' ' && end[1])
        *msg = strdup(end + 1);
    return true;
}

/* The action part of a rule: its kind and arguments in r; false with err for a bad one;
 * true with *known false for an action gyre does not implement. */
static bool parse_action(struct rule *r, const char *action, bool *known, char *err, size_t errlen)
{
    const char *colon = strchr(action, ':');
    size_t nlen = colon ? (size_t)(colon - action) : strlen(action);
    const char *args = colon ? colon + 1 : "";
    static const struct {
        const char *name;
        enum action action;
        int status;
        const char *var;
    } ACTIONS[] = {
        { "redirect", A_REDIRECT, 302, NULL },
        { "redirect-302", A_REDIRECT, 302, NULL },
        { "redirect-301", A_REDIRECT, 301, NULL },
        { "redirect-permanent", A_REDIRECT, 301, NULL },
        { "rewrite", A_REWRITE, 0, NULL },
        { "rewrite-last", A_REWRITE, 1, NULL },
        { "return", A_RETURN, 0, NULL },
        { "break", A_BREAK, 0, NULL },
        { "continue", A_CONTINUE, 0, NULL },
        { "last", A_CONTINUE, 0, NULL },
        { "addheader", A_ADDHEADER, 0, NULL },
        { "delheader", A_DELHEADER, 0, NULL },
        { "remheader", A_DELHEADER, 0, NULL },
        { "addvar", A_ADDVAR, 0, NULL },
        { "log", A_LOG, 0, NULL },
        { "donotlog", A_DONOTLOG, 0, NULL },
        { "setpathinfo", A_SETVAR, 0, "PATH_INFO" },
        { "setscriptname", A_SETVAR, 0, "SCRIPT_NAME" },
        { "setmethod", A_SETVAR, 0, "REQUEST_METHOD" },
    };
    *known = false;
    for (size_t i = 0; i < sizeof(ACTIONS) / sizeof(ACTIONS[0]); i++) {
        if (strlen(ACTIONS[i].name) != nlen || memcmp(ACTIONS[i].name, action, nlen) != 0)
            continue;
        *known = true;
        r->action = ACTIONS[i].action;
        r->status = ACTIONS[i].status;
        r->last = r->action == A_REWRITE && ACTIONS[i].status;
        if (ACTIONS[i].var && !(r->var = strdup(ACTIONS[i].var)))
            goto oom;
        break;
    }
    if (!*known)
        return true;
    switch (r->action) {
    case A_RETURN:
        if (!parse_status(args, &r->status, &r->break_msg)) {
            snprintf(err, errlen, "%.*s needs a status code, e.g. %.*s:403", (int)nlen, action,
                     (int)nlen, action);
            return false;
        }
        break;
    case A_BREAK:
        if (*args && !parse_status(args, &r->status, &r->break_msg)) {
            snprintf(err, errlen, "break takes a status code and a message, e.g. break:404 Nope");
            return false;
        }
        break;
    case A_REDIRECT:
    case A_REWRITE:
    case A_ADDHEADER:
    case A_DELHEADER:
    case A_ADDVAR:
    case A_SETVAR:
        if (!*args) {
            snprintf(err, errlen, "%.*s needs an argument (%.*s:...)", (int)nlen, action, (int)nlen,
                     action);
            return false;
        }
        if (r->action == A_ADDHEADER && !strchr(args, ':')) {
            snprintf(err, errlen, "addheader needs \"Name: value\"");
            return false;
        }
        if (r->action == A_ADDVAR && (!strchr(args, '=') || *args == '=')) {
            snprintf(err, errlen, "addvar needs KEY=VALUE");
            return false;
        }
        break;
    default:
        break;
    }
    if (!(r->args = strdup(args)))
        goto oom;
    return true;
oom:
    snprintf(err, errlen, "out of memory");
    return false;
}

static pcre2_code *compile(const char *re, size_t len, char *err, size_t errlen)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, (PCRE2_SIZE)len, 0, &code, &off, NULL);
    if (!c) {
        char msg[128];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
        snprintf(err, errlen, "bad regex at offset %zu: %s", (size_t)off, msg);
    }
    return c;
}

/* "COND:ARGS" of --route-if into r. */
static bool parse_cond(struct rule *r, const char *cond, size_t len, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        enum cond cond;
    } CONDS[] = {
        { "equal", C_EQUAL },
        { "isequal", C_EQUAL },
        { "eq", C_EQUAL },
        { "==", C_EQUAL },
        { "startswith", C_STARTSWITH },
        { "endswith", C_ENDSWITH },
        { "contains", C_CONTAINS },
        { "contain", C_CONTAINS },
        { "regexp", C_REGEXP },
        { "re", C_REGEXP },
        { "empty", C_EMPTY },
        { "exists", C_EXISTS },
        { "isfile", C_ISFILE },
        { "isdir", C_ISDIR },
        { "ishigher", C_HIGHER },
        { ">", C_HIGHER },
        { "islower", C_LOWER },
        { "<", C_LOWER },
        { "ishigherequal", C_HIGHER_EQUAL },
        { ">=", C_HIGHER_EQUAL },
        { "islowerequal", C_LOWER_EQUAL },
        { "<=", C_LOWER_EQUAL },
    };
    const char *colon = memchr(cond, ':', len);
    size_t nlen = colon ? (size_t)(colon - cond) : len;
    for (size_t i = 0; i < sizeof(CONDS) / sizeof(CONDS[0]); i++)
        if (strlen(CONDS[i].name) == nlen && memcmp(CONDS[i].name, cond, nlen) == 0)
            r->cond = CONDS[i].cond;
    if (r->cond == C_NONE) {
        snprintf(err, errlen, "unknown route-if condition \"%.*s\"", (int)nlen, cond);
        return false;
    }
    const char *args = colon ? colon + 1 : cond + len;
    size_t alen = (size_t)(cond + len - args);
    if (r->cond == C_REGEXP) {
        /* The regex is the literal right part: compiled once, here. */
        const char *semi = memchr(args, ';', alen);
        if (!semi) {
            snprintf(err, errlen, "regexp needs VALUE;REGEX");
            return false;
        }
        if (!(r->re = compile(semi + 1, (size_t)(args + alen - semi - 1), err, errlen)))
            return false;
        alen = (size_t)(semi - args);
    }
    if (!(r->cond_args = strndup(args, alen))) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return true;
}

static bool table_push(struct route_table *t, struct rule *r)
{
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 8;
        struct rule *rules = realloc(t->rules, (size_t)cap * sizeof(*rules));
        if (!rules)
            return false;
        t->rules = rules;
        t->cap = cap;
    }
    t->rules[t->n++] = *r;
    return true;
}

/* The rule r with its head (regex or condition) parsed, from `action` on. */
static bool add_rule(struct route_table *t, struct rule *r, const char *action, char *err,
                     size_t errlen)
{
    bool known;
    if (!parse_action(r, action, &known, err, errlen)) {
        rule_free(r);
        return false;
    }
    if (!known) {
        const char *colon = strchr(action, ':');
        rule_free(r);
        if (note_unsupported(t, action, colon ? (size_t)(colon - action) : strlen(action)))
            return true;
    } else if (table_push(t, r)) {
        return true;
    } else {
        rule_free(r);
    }
    snprintf(err, errlen, "out of memory");
    return false;
}

/* The action after "HEAD ", past the spaces; NULL when there is no space. */
static const char *after_head(const char *spec)
{
    const char *sp = strchr(spec, ' ');
    if (!sp || sp == spec)
        return NULL;
    while (*sp == ' ')
        sp++;
    return sp;
}

bool route_add(struct route_table *t, const char *subject, const char *spec, char *err,
               size_t errlen)
{
    struct rule r = { 0 };
    const char *action = spec;
    if (subject) {
        /* "REGEX ACTION": the regex ends at the first space, as in uWSGI. */
        action = after_head(spec);
        if (!action) {
            snprintf(err, errlen, "expected \"REGEX ACTION[:ARGS]\"");
            return false;
        }
        if (!(r.re = compile(spec, (size_t)(strchr(spec, ' ') - spec), err, errlen)))
            return false;
        if (!(r.subject = strdup(subject))) {
            rule_free(&r);
            snprintf(err, errlen, "out of memory");
            return false;
        }
    }
    return add_rule(t, &r, action, err, errlen);
}

bool route_add_if(struct route_table *t, bool negate, const char *spec, char *err, size_t errlen)
{
    struct rule r = { .negate = negate };
    const char *action = after_head(spec);
    if (!action) {
        snprintf(err, errlen, "expected \"CONDITION:ARGS ACTION[:ARGS]\"");
        return false;
    }
    if (!parse_cond(&r, spec, (size_t)(strchr(spec, ' ') - spec), err, errlen)) {
        rule_free(&r);
        return false;
    }
    return add_rule(t, &r, action, err, errlen);
}

/* ---- evaluation ------------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* NULL when out of memory; an empty string is an empty string. */
static char *buf_take(struct buf *b)
{
    if (b->failed) {
        free(b->p);
        return NULL;
    }
    if (!b->p)
        return strdup("");
    return b->p;
}

const char *route_var(const struct route_outcome *out, const struct route_vars *vars,
                      const char *name, size_t nlen, size_t *vlen)
{
    for (int i = out->nvars - 1; i >= 0; i--)
        if (strlen(out->vars[i].name) == nlen && memcmp(out->vars[i].name, name, nlen) == 0) {
            *vlen = strlen(out->vars[i].value);
            return out->vars[i].value;
        }
    *vlen = 0;
    return vars->get(vars->ctx, name, nlen, vlen);
}

/* A rule's argument with $N and ${VAR} replaced. */
static char *expand(const char *args, const char *subject, const PCRE2_SIZE *ov, int ngroups,
                    const struct route_outcome *out, const struct route_vars *vars)
{
    struct buf b = { 0 };
    for (const char *p = args; *p;) {
        if (p[0] == '$' && p[1] >= '0' && p[1] <= '9') {
            int g = p[1] - '0';
            if (g < ngroups && ov[2 * g] != PCRE2_UNSET)
                buf_add(&b, subject + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
            p += 2;
        } else if (p[0] == '$' && p[1] == '{' && strchr(p + 2, '}')) {
            const char *name = p + 2, *end = strchr(name, '}');
            size_t vlen;
            const char *v = route_var(out, vars, name, (size_t)(end - name), &vlen);
            if (v)
                buf_add(&b, v, vlen);
            p = end + 1;
        } else {
            size_t n = strcspn(p + 1, "$") + 1;
            buf_add(&b, p, n);
            p += n;
        }
    }
    return buf_take(&b);
}

static bool set_var(struct route_outcome *out, const char *name, size_t nlen, char *value)
{
    if (!value)
        return false;
    if (out->nvars == ROUTE_MAX_EDITS) {
        free(value);
        return true; /* a rule set that edits this much repeats itself: the rest is dropped */
    }
    char *n = strndup(name, nlen);
    if (!n) {
        free(value);
        return false;
    }
    out->vars[out->nvars++] = (struct route_var){ n, value };
    return true;
}

static bool push(char **list, int *n, char *s)
{
    if (!s)
        return false;
    if (*n == ROUTE_MAX_EDITS)
        free(s);
    else
        list[(*n)++] = s;
    return true;
}

/* rewrite: PATH_INFO, and QUERY_STRING when the new path has one (the old one appended). */
static bool rewrite(struct route_outcome *out, const struct route_vars *vars, char *to)
{
    char *q = strchr(to, '?');
    if (q) {
        size_t olen;
        const char *old = route_var(out, vars, "QUERY_STRING", 12, &olen);
        struct buf b = { 0 };
        buf_add(&b, q + 1, strlen(q + 1));
        if (old && olen) {
            buf_add(&b, "&", 1);
            buf_add(&b, old, olen);
        }
        *q = '\0';
        if (!set_var(out, "QUERY_STRING", 12, buf_take(&b))) {
            free(to);
            return false;
        }
    }
    return set_var(out, "PATH_INFO", 9, to);
}

static char *status_line(int status, const char *msg)
{
    char line[256];
    snprintf(line, sizeof(line), "%d %s", status, msg ? msg : route_reason(status));
    return strdup(line);
}

enum verdict { NEXT, CONTINUE, BREAK, FAILED };

static enum verdict run_action(const struct rule *r, char *arg, struct route_outcome *out,
                               const struct route_vars *vars)
{
    switch (r->action) {
    case A_REDIRECT:
        out->status = r->status;
        out->location = arg;
        out->body = strdup("Moved");
        out->status_line = status_line(r->status, NULL);
        return out->body && out->status_line ? BREAK : FAILED;
    case A_REWRITE:
        if (!rewrite(out, vars, arg))
            return FAILED;
        return r->last ? CONTINUE : NEXT;
    case A_RETURN:
        free(arg);
        out->status = r->status;
        out->status_line = status_line(r->status, r->break_msg);
        out->body = strdup(r->break_msg ? r->break_msg : route_reason(r->status));
        return out->body && out->status_line ? BREAK : FAILED;
    case A_BREAK:
        free(arg);
        out->close = true;
        if (r->status) {
            out->status = r->status;
            out->status_line = status_line(r->status, r->break_msg);
            if (!out->status_line)
                return FAILED;
        }
        return BREAK;
    case A_CONTINUE:
        free(arg);
        return CONTINUE;
    case A_ADDHEADER:
        return push(out->add_headers, &out->nadd_headers, arg) ? NEXT : FAILED;
    case A_DELHEADER:
        return push(out->del_headers, &out->ndel_headers, arg) ? NEXT : FAILED;
    case A_LOG:
        return push(out->logs, &out->nlogs, arg) ? NEXT : FAILED;
    case A_DONOTLOG:
        free(arg);
        out->donotlog = true;
        return NEXT;
    case A_ADDVAR: {
        char *eq = strchr(arg, '=');
        bool ok = eq && set_var(out, arg, (size_t)(eq - arg), strdup(eq + 1));
        free(arg);
        return ok || !eq ? NEXT : FAILED;
    }
    case A_SETVAR:
        return set_var(out, r->var, strlen(r->var), arg) ? NEXT : FAILED;
    }
    free(arg);
    return NEXT;
}

/* Numbers compare as numbers (ishigher ...), as uWSGI's strtoll does. */
static long long as_number(const char *s)
{
    return strtoll(s, NULL, 10);
}

/* A --route-if condition over its expanded arguments "LEFT;RIGHT" (or one value). */
static bool cond_holds(enum cond cond, char *args)
{
    char *semi = strchr(args, ';');
    const char *left = args, *right = "";
    if (semi) {
        *semi = '\0';
        right = semi + 1;
    }
    size_t ll = strlen(left), rl = strlen(right);
    struct stat st;
    switch (cond) {
    case C_EQUAL:
        return strcmp(left, right) == 0;
    case C_STARTSWITH:
        return ll >= rl && memcmp(left, right, rl) == 0;
    case C_ENDSWITH:
        return ll >= rl && memcmp(left + ll - rl, right, rl) == 0;
    case C_CONTAINS:
        return strstr(left, right) != NULL;
    case C_EMPTY:
        return ll == 0;
    case C_EXISTS:
        return stat(left, &st) == 0;
    case C_ISFILE:
        return stat(left, &st) == 0 && S_ISREG(st.st_mode);
    case C_ISDIR:
        return stat(left, &st) == 0 && S_ISDIR(st.st_mode);
    case C_HIGHER:
        return as_number(left) > as_number(right);
    case C_LOWER:
        return as_number(left) < as_number(right);
    case C_HIGHER_EQUAL:
        return as_number(left) >= as_number(right);
    case C_LOWER_EQUAL:
        return as_number(left) <= as_number(right);
    case C_NONE:
    case C_REGEXP:
        break;
    }
    return false;
}

/* Does rule r apply to the request? 1 yes, 0 no, -1 out of memory. On a regex match, *subject
 * and the match data give the capture groups ($N); *owned is a string to free after the
 * rule ran (the expanded subject of a condition). */
static int rule_applies(const struct rule *r, const struct route_outcome *out,
                        const struct route_vars *vars, pcre2_match_data *md, const char **subject,
                        int *ngroups, char **owned)
{
    size_t slen = 0;
    *subject = "";
    *ngroups = 0;
    *owned = NULL;
    if (r->cond != C_NONE) {
        if (!(*owned = expand(r->cond_args, NULL, NULL, 0, out, vars)))
            return -1;
        if (r->cond != C_REGEXP)
            return cond_holds(r->cond, *owned) != r->negate;
        *subject = *owned;
        slen = strlen(*owned);
    } else if (r->re) {
        *subject = route_var(out, vars, r->subject, strlen(r->subject), &slen);
        if (!*subject)
            *subject = "", slen = 0;
    } else {
        return 1; /* --route-run */
    }
    int rc = pcre2_match(r->re, (PCRE2_SPTR)*subject, slen, 0, 0, md, NULL);
    /* 0: more groups than the match data holds: the first ten. An error counts as no match. */
    *ngroups = rc == 0 ? 10 : rc;
    return (rc >= 0) != r->negate;
}

bool route_eval(const struct route_table *t, const struct route_vars *vars,
                struct route_outcome *out)
{
    memset(out, 0, sizeof(*out));
    if (route_table_empty(t))
        return true;
    pcre2_match_data *md = pcre2_match_data_create(10, NULL);
    bool ok = md != NULL;
    for (int i = 0; ok && i < t->n; i++) {
        const struct rule *r = &t->rules[i];
        const char *subject;
        int ngroups;
        char *owned;
        int applies = rule_applies(r, out, vars, md, &subject, &ngroups, &owned);
        if (applies <= 0) {
            free(owned);
            ok = applies == 0;
            continue;
        }
        const PCRE2_SIZE *ov = ngroups > 0 ? pcre2_get_ovector_pointer(md) : NULL;
        char *arg = expand(r->args, subject, ov, ngroups, out, vars);
        free(owned);
        enum verdict v = arg ? run_action(r, arg, out, vars) : FAILED;
        if (v == FAILED)
            ok = false;
        else if (v != NEXT)
            break;
    }
    pcre2_match_data_free(md);
    if (!ok)
        route_outcome_clear(out);
    return ok;
}

void route_outcome_clear(struct route_outcome *out)
{
    free(out->status_line);
    free(out->location);
    free(out->body);
    for (int i = 0; i < out->nvars; i++) {
        free(out->vars[i].name);
        free(out->vars[i].value);
    }
    for (int i = 0; i < out->nadd_headers; i++)
        free(out->add_headers[i]);
    for (int i = 0; i < out->ndel_headers; i++)
        free(out->del_headers[i]);
    for (int i = 0; i < out->nlogs; i++)
        free(out->logs[i]);
    memset(out, 0, sizeof(*out));
}

const char *route_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 410:
        return "Gone";
    case 413:
        return "Request Entity Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}
