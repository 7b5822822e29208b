/*
 * uWSGI's internal routing (--route, --route-uri, --route-host, ...) and --add-header: a table
 * of rules, each a PCRE2 regex on one request var and an action, evaluated in order before the
 * app runs. Plain C, no Python: the request is seen through a lookup callback, and what the
 * rules decided comes back as a struct route_outcome for the WSGI layer to apply.
 */
#ifndef GYRE_ROUTE_H
#define GYRE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#define ROUTE_MAX_EDITS 32

struct route_table;

/* The request's vars (CGI params), as route.c reads them: NULL when the request has none. */
struct route_vars {
    const char *(*get)(void *ctx, const char *name, size_t nlen, size_t *vlen);
    void *ctx;
};

/* What the rules decided for one request. Strings are owned by the outcome. */
struct route_outcome {
    /* Answer without calling the app: status > 0 (redirect, return, break:CODE). */
    int status;
    char *status_line; /* "302 Found" */
    char *location;    /* redirect */
    char *body;        /* return: the reason phrase, as uWSGI sends it */
    bool close;        /* break: no response at all (status 0), or one and close */

    /* The request's vars, changed (rewrite: PATH_INFO, QUERY_STRING) or added (addvar). */
    struct route_var {
        char *name, *value;
    } vars[ROUTE_MAX_EDITS];
    int nvars;

    /* Response headers: added ("Name: value") and removed (names). */
    char *add_headers[ROUTE_MAX_EDITS];
    int nadd_headers;
    char *del_headers[ROUTE_MAX_EDITS];
    int ndel_headers;

    bool donotlog; /* donotlog: no request log line for this request */

    /* log: actions, to be written by the caller. */
    char *logs[ROUTE_MAX_EDITS];
    int nlogs;
};

/* A table from the configuration: subject is the var matched (NULL: always, --route-run),
 * spec "REGEX ACTION[:ARGS]". NULL and a message in err on a bad regex or action. Actions gyre
 * does not implement are left out and named in *unsupported (comma separated, owned by the
 * table) for the one warning line at start. */
struct route_table *route_table_new(void);
struct gy_config;
/* Every --route* rule of cfg, in order, into a new table (NULL when there is none); false with
 * err naming the rule on a bad one. */
bool route_table_from_config(const struct gy_config *cfg, struct route_table **out, char *err,
                             size_t errlen);
bool route_add(struct route_table *t, const char *subject, const char *spec, char *err,
               size_t errlen);
/* --route-if (negate: --route-if-not): spec "COND:ARGS ACTION[:ARGS]". */
bool route_add_if(struct route_table *t, bool negate, const char *spec, char *err, size_t errlen);
const char *route_unsupported(const struct route_table *t); /* NULL: none */
bool route_table_empty(const struct route_table *t);
void route_table_free(struct route_table *t);

/* Run the rules over a request; false when out of memory (out is then cleared). */
bool route_eval(const struct route_table *t, const struct route_vars *vars,
                struct route_outcome *out);
void route_outcome_clear(struct route_outcome *out);

/* A var as the rules left it: the outcome's change, else the request's. */
const char *route_var(const struct route_outcome *out, const struct route_vars *vars,
                      const char *name, size_t nlen, size_t *vlen);

/* The reason phrase of an HTTP status ("Not Found"), "Unknown" for others. */
const char *route_reason(int status);

#endif
