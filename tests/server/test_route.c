/*
 * Unit tests of route.c, uWSGI's internal routing: rules parsed (bad regexes and actions
 * refused, unknown actions set aside), evaluated in order with uWSGI's NEXT / CONTINUE / BREAK,
 * $N and ${VAR} expanded, rewrite's PATH_INFO and QUERY_STRING. Pure C: no Python.
 */
#include "route.h"
#include "testlib.h"

#include <stdio.h>
#include <string.h>

/* A request: NULL-terminated name/value pairs. */
struct req {
    const char *const *kv;
};

static const char *req_get(void *ctx, const char *name, size_t nlen, size_t *vlen)
{
    const struct req *r = ctx;
    for (int i = 0; r->kv[i]; i += 2)
        if (strlen(r->kv[i]) == nlen && memcmp(r->kv[i], name, nlen) == 0) {
            *vlen = strlen(r->kv[i + 1]);
            return r->kv[i + 1];
        }
    return NULL;
}

static const char *const REQ[] = {
    "PATH_INFO", "/old/page",   "REQUEST_URI", "/old/page?x=1", "QUERY_STRING", "x=1",
    "HTTP_HOST", "example.org", NULL,
};

/* Evaluate `specs` (on PATH_INFO) over REQ. */
static struct route_table *table(const char *const *specs)
{
    struct route_table *t = route_table_new();
    char err[256];
    for (int i = 0; specs[i]; i++)
        if (!CHECK(route_add(t, "PATH_INFO", specs[i], err, sizeof(err))))
            printf("  %s: %s\n", specs[i], err);
    return t;
}

static const char *var(const struct route_outcome *o, const char *name)
{
    struct req r = { REQ };
    struct route_vars vars = { req_get, &r };
    size_t len;
    return route_var(o, &vars, name, strlen(name), &len);
}

static void eval(const struct route_table *t, struct route_outcome *o)
{
    struct req r = { REQ };
    struct route_vars vars = { req_get, &r };
    CHECK(route_eval(t, &vars, o));
}

TEST(redirect_expands_groups_and_vars)
{
    struct route_table *t = table(
        (const char *const[]){ "^/old/(.*)$ redirect:https://${HTTP_HOST}/new/$1", NULL });
    struct route_outcome o;
    eval(t, &o);
    CHECK_EQ_INT(o.status, 302);
    CHECK_EQ_STR(o.status_line, "302 Found");
    CHECK_EQ_STR(o.location, "https://example.org/new/page");
    route_outcome_clear(&o);
    route_table_free(t);
}

TEST(redirect_301_and_no_match)
{
    struct route_table *t = table(
        (const char *const[]){ "^/nomatch redirect:/x", "^/old redirect-301:/moved", NULL });
    struct route_outcome o;
    eval(t, &o);
    CHECK_EQ_INT(o.status, 301);
    CHECK_EQ_STR(o.location, "/moved");
    route_outcome_clear(&o);
    route_table_free(t);
}

TEST(rewrite_goes_on_and_later_rules_see_it)
{
    struct route_table *t = table((const char *const[]){
        "^/old/(.*)$ rewrite:/new/$1?y=2", "^/new/ addheader:X-Seen: ${PATH_INFO}", NULL });
    struct route_outcome o;
    eval(t, &o);
    CHECK_EQ_INT(o.status, 0);
    CHECK_EQ_STR(var(&o, "PATH_INFO"), "/new/page");
    CHECK_EQ_STR(var(&o, "QUERY_STRING"), "y=2&x=1");
    CHECK_EQ_INT(o.nadd_headers, 1);
    if (o.nadd_headers == 1)
        CHECK_EQ_STR(o.add_headers[0], "X-Seen: /new/page");
    route_outcome_clear(&o);
    route_table_free(t);
}

TEST(rewrite_last_stops_the_chain)
{
    struct route_table *t = table(
        (const char *const[]){ "^/old/(.*)$ rewrite-last:/l/$1", "^/l/ return:403", NULL });
    struct route_outcome o;
    eval(t, &o);
    CHECK_EQ_INT(o.status, 0);
    CHECK_EQ_STR(var(&o, "PATH_INFO"), "/l/page");
    route_outcome_clear(&o);
    route_table_free(t);
}

TEST(return_and_break)
{
    struct route_table *t = table((const char *const[]){ "^/old return:403", NULL });
    struct route_outcome o;
    eval(t, &o);
    CHECK_EQ_STR(o.status_line, "403 Forbidden");
    CHECK_EQ_STR(o.body, "Forbidden");
    CHECK(!o.close);
    route_outcome_clear(&o);
    route_table_free(t);

    t = table((const char *const[]){ "^/old break:404 Nope", NULL });
    eval(t, &o);
    CHECK_EQ_STR(o.status_line, "404 Nope");
    CHECK(o.close);
    CHECK(o.body == NULL);
    route_outcome_clear(&o);
    route_table_free(t);

    t = table((const char *const[]){ "^/old break", NULL });
    eval(t, &o);
    CHECK_EQ_INT(o.status, 0);
    CHECK(o.close);
    route_outcome_clear(&o);
    route_table_free(t);
}

TEST(continue_stops_before_later_rules)
{
    struct route_table *t = table(
        (const char *const[]){ "^/old continue:", "^/old return:500", NULL });
    struct route_outcome o;
    eval(t, &o);
    CHECK_EQ_INT(o.status, 0);
    route_outcome_clear(&o);
    route_table_free(t);
}

TEST(headers_vars_and_logs)
{
    struct route_table *t = table(
        (const char *const[]){ "^/(o)ld addheader:X-A: $1", "^/old delheader:Server",
                               "^/old remheader:X-B", "^/old addvar:MYVAR=v-${QUERY_STRING}",
                               "^/old log:saw ${REQUEST_URI}", "^/old setscriptname:/app", NULL });
    struct route_outcome o;
    eval(t, &o);
    CHECK_EQ_INT(o.nadd_headers, 1);
    CHECK_EQ_INT(o.ndel_headers, 2);
    CHECK_EQ_STR(var(&o, "MYVAR"), "v-x=1");
    CHECK_EQ_STR(var(&o, "SCRIPT_NAME"), "/app");
    CHECK_EQ_INT(o.nlogs, 1);
    if (o.nlogs == 1)
        CHECK_EQ_STR(o.logs[0], "saw /old/page?x=1");
    route_outcome_clear(&o);
    route_table_free(t);
}

TEST(subjects_and_route_run)
{
    struct route_table *t = route_table_new();
    char err[128];
    CHECK(route_add(t, "HTTP_HOST", "^www\\. return:410", err, sizeof(err)));
    CHECK(route_add(t, "QUERY_STRING", "x=(\\d) addvar:X=$1", err, sizeof(err)));
    CHECK(route_add(t, NULL, "addheader:X-Always: 1", err, sizeof(err)));
    struct route_outcome o;
    eval(t, &o);
    CHECK_EQ_INT(o.status, 0); /* the host is example.org */
    CHECK_EQ_STR(var(&o, "X"), "1");
    CHECK_EQ_INT(o.nadd_headers, 1);
    route_outcome_clear(&o);
    route_table_free(t);
}

TEST(bad_rules_are_refused_unknown_actions_set_aside)
{
    struct route_table *t = route_table_new();
    char err[256];
    CHECK(!route_add(t, "PATH_INFO", "^/(unclosed return:403", err, sizeof(err)));
    CHECK(strstr(err, "bad regex") != NULL);
    CHECK(!route_add(t, "PATH_INFO", "^/x return:abc", err, sizeof(err)));
    CHECK(!route_add(t, "PATH_INFO", "^/x addheader:NoColon", err, sizeof(err)));
    CHECK(!route_add(t, "PATH_INFO", "noaction", err, sizeof(err)));
    CHECK(route_add(t, "PATH_INFO", "^/x cache:key=foo", err, sizeof(err)));
    CHECK(route_add(t, "PATH_INFO", "^/x uwsgi:127.0.0.1:3031,0,0", err, sizeof(err)));
    CHECK_EQ_STR(route_unsupported(t), "cache, uwsgi");
    CHECK(route_table_empty(t));
    route_table_free(t);
}

/* --route-if over the request of REQ: does `spec` apply (its action is addheader:X: 1)? */
static bool if_applies(bool negate, const char *cond)
{
    struct route_table *t = route_table_new();
    char spec[256], err[256];
    snprintf(spec, sizeof(spec), "%s addheader:X: $1", cond);
    if (!CHECK(route_add_if(t, negate, spec, err, sizeof(err))))
        printf("  %s: %s\n", spec, err);
    struct route_outcome o;
    eval(t, &o);
    bool applied = o.nadd_headers == 1;
    route_outcome_clear(&o);
    route_table_free(t);
    return applied;
}

TEST(route_if_conditions)
{
    CHECK(if_applies(false, "equal:${HTTP_HOST};example.org"));
    CHECK(!if_applies(false, "equal:${HTTP_HOST};example.com"));
    CHECK(if_applies(true, "equal:${HTTP_HOST};example.com"));
    CHECK(if_applies(false, "startswith:${PATH_INFO};/old"));
    CHECK(if_applies(false, "endswith:${PATH_INFO};page"));
    CHECK(if_applies(false, "contains:${REQUEST_URI};?x="));
    CHECK(if_applies(false, "empty:${HTTPS}"));
    CHECK(!if_applies(true, "empty:${HTTPS}"));
    CHECK(if_applies(false, "isdir:/tmp"));
    CHECK(!if_applies(false, "isfile:/tmp"));
    CHECK(if_applies(false, "ishigher:${QUERY_STRING};0") == false); /* "x=1" is 0 */
    CHECK(if_applies(false, "<:3;10"));
}

TEST(route_if_regexp_captures)
{
    struct route_table *t = route_table_new();
    char err[256];
    CHECK(route_add_if(t, false, "regexp:${PATH_INFO};^/old/(\\w+) addvar:PAGE=$1", err,
                       sizeof(err)));
    struct route_outcome o;
    eval(t, &o);
    CHECK_EQ_STR(var(&o, "PAGE"), "page");
    route_outcome_clear(&o);
    route_table_free(t);

    t = route_table_new();
    CHECK(!route_add_if(t, false, "nosuchcond:a;b return:403", err, sizeof(err)));
    CHECK(strstr(err, "unknown route-if condition") != NULL);
    CHECK(!route_add_if(t, false, "regexp:novalue return:403", err, sizeof(err)));
    CHECK(!route_add_if(t, false, "regexp:a;( return:403", err, sizeof(err)));
    route_table_free(t);
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
