/*
 * Unit tests of logformat.c, the one renderer of request log lines: the built-in uWSGI line,
 * every %(variable) of --log-format as uWSGI renders it, the client's text escaped
 * (log_escape), lines cut to the buffer without cutting an escape, and the "log only if"
 * options of --disable-logging. Pure C: no Python.
 *
 * The compiled format is process state: the first test renders before any compile (the
 * built-in default); the others compile what they render.
 */
#include "config.h"
#include "log.h"
#include "testlib.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define P(n, v)                                                                                    \
    {                                                                                              \
        { n, sizeof(n) - 1 },                                                                      \
        {                                                                                          \
            v, sizeof(v) - 1                                                                       \
        }                                                                                          \
    }
static const struct gy_param PARAMS[] = {
    P("REMOTE_USER", "alice"),
    P("HTTP_HOST", "example.org"),
    P("HTTP_USER_AGENT", "ua/1.0"),
    P("HTTP_REFERER", "http://r/"),
    P("CONTENT_LENGTH", "42"),
    P("HTTP_X_REQUEST_ID", "id-7"),
    P("HTTP_X_EMPTY", ""),
    P("HTTP_X_FORWARDED_FOR", "203.0.113.9, 10.0.0.1"),
    P("HTTP_X_REQUEST_ID", "second"),
};

/* A request with a value in every field, none equal to another, so a field rendered in the
 * place of another shows. */
static struct log_fields fields(void)
{
    struct log_fields f = { 0 };

    f.method = "POST";
    f.method_len = 4;
    f.uri = "/p?q=1";
    f.uri_len = 6;
    f.addr = "10.0.0.7";
    f.addr_len = 8;
    f.proto = "HTTP/1.1";
    f.proto_len = 8;
    f.params = PARAMS;
    f.nparams = sizeof(PARAMS) / sizeof(PARAMS[0]);
    f.status = 201;
    f.rsize = 12345678901ULL;
    f.micros = 17250;
    f.pid = 4242;
    f.wid = 2;
    f.core = 3;
    f.req = 99;
    f.headers = 5;
    f.headers_size = 160;
    f.switches = 6;
    return f;
}

static char out[4096];

/* Compile fmt (it must compile) and render f: the line without its newline. */
static const char *render(const char *fmt, const struct log_fields *f)
{
    const char *err = logformat_compile(fmt);
    size_t n;

    if (!CHECK(err == NULL)) {
        fprintf(stderr, "    %s\n", err);
        return "";
    }
    n = logformat_render(f, out, sizeof(out));
    if (!CHECK(n >= 1 && out[n - 1] == '\n' && out[n] == '\0'))
        return "";
    out[n - 1] = '\0';
    return out;
}

/* ---- the built-in line ----------------------------------------------------------------------- */

/* The default line with the request's start (ctime's 24 characters) cut out of its middle. */
static void check_default_line(const char *line, const char *head, const char *tail)
{
    size_t hl = strlen(head);

    CHECK_EQ_INT(strlen(line), hl + 24 + strlen(tail));
    CHECK_EQ_MEM(line, hl < strlen(line) ? hl : strlen(line), head, hl);
    if (strlen(line) >= hl + 24)
        CHECK_EQ_STR(line + hl + 24, tail);
}

TEST(default_line_is_uwsgis) /* first: nothing compiled yet */
{
    struct log_fields f = fields();

    logformat_render(&f, out, sizeof(out));
    /* uWSGI 2.0's line, field for field (core appears twice, as in uWSGI). */
    check_default_line(out, "[pid: 4242|core: 3|req: 99] 10.0.0.7 () {18 vars in 227 bytes} [",
                       "] POST /p?q=1 => generated 12345678901 bytes in 17 msecs (HTTP/1.1 201) "
                       "5 headers in 160 bytes (6 switches on core 3)\n");
}

TEST(default_line_variants_memory_report_and_micros)
{
    static struct gy_config cfg;
    struct log_fields f = fields();
    unsigned long long vsz, vszm, rss, rssm;
    int used = 0;

    cfg.log_micros = true;
    CHECK(logformat_setup(&cfg) == NULL);
    logformat_render(&f, out, sizeof(out));
    check_default_line(out, "[pid: 4242|core: 3|req: 99] 10.0.0.7 () {18 vars in 227 bytes} [",
                       "] POST /p?q=1 => generated 12345678901 bytes in 17250 micros (HTTP/1.1 "
                       "201) 5 headers in 160 bytes (6 switches on core 3)\n");
    /* --memory-report: uwsgi_logit_simple's "{address space usage: ...} {rss usage: ...} ". */
    cfg.log_micros = false;
    cfg.memory_report = true;
    CHECK(logformat_setup(&cfg) == NULL);
    logformat_render(&f, out, sizeof(out));
    if (CHECK_EQ_INT(sscanf(out,
                            "{address space usage: %llu bytes/%lluMB} {rss usage: %llu "
                            "bytes/%lluMB} %n",
                            &vsz, &vszm, &rss, &rssm, &used),
                     4)) {
        CHECK(vsz > 0 && rss > 0 && vszm == vsz / 1024 / 1024 && rssm == rss / 1024 / 1024);
        CHECK(strncmp(out + used, "[pid: 4242|core: 3|req: 99] ", 28) == 0);
    }
    cfg.memory_report = false;
}

/* ---- every variable -------------------------------------------------------------------------- */

TEST(every_variable)
{
    static const struct {
        const char *fmt, *want;
    } cases[] = {
        { "%(method)", "POST" },
        { "%(uri)", "/p?q=1" },
        { "%(status)", "201" },
        { "%(rsize)", "12345678901" },
        { "%(hsize)", "160" },
        { "%(size)", "12345679061" }, /* head and body, as uWSGI's */
        { "%(cl)", "42" },
        { "%(micros)", "17250" },
        { "%(msecs)", "17" },
        { "%(secs)", "0.017250" },
        { "%(pid)", "4242" },
        { "%(wid)", "2" },
        { "%(core)", "3" },
        { "%(addr)", "10.0.0.7" },
        { "%(proto)", "HTTP/1.1" },
        { "%(vars)", "18" },     /* 9 names and 9 values, as uWSGI counts them */
        { "%(pktsize)", "227" }, /* the uwsgi packet's datasize */
        { "%(headers)", "5" },
        { "%(switches)", "6" },
        { "%(req)", "99" },
        { "%(user)", "alice" },
        { "%(host)", "example.org" },
        { "%(uagent)", "ua/1.0" },
        { "%(referer)", "http://r/" },
        { "%(var.HTTP_X_REQUEST_ID)", "id-7" }, /* the first of its name */
        { "%(var.REMOTE_USER)", "alice" },
        { "%(modifier1) %(modifier2)", "0 0" },
        { "%(werr) %(rerr) %(ioerr)", "0 0 0" },
        { "%(metric.worker.0.requests)", "0" },
    };
    struct log_fields f = fields();

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TEST_CONTEXT("%s", cases[i].fmt);
        CHECK_EQ_STR(render(cases[i].fmt, &f), cases[i].want);
    }
    f.read_errors = 1;
    f.write_errors = 2;
    CHECK_EQ_STR(render("%(werr) %(rerr) %(ioerr)", &f), "2 1 3");
}

TEST(empty_and_missing_values_are_a_dash)
{
    struct log_fields f = fields();

    /* uWSGI writes "-" for a variable with no value: a missing request variable, an empty one,
     * and any other name, a logvar the app did not set. */
    CHECK_EQ_STR(render("[%(var.HTTP_X_NONE)][%(var.HTTP_X_EMPTY)]", &f), "[-][-]");
    CHECK_EQ_STR(render("[%(nosuch)][%(STATUS)][%( status)]", &f), "[-][-][-]");
    f.nparams = 0;
    CHECK_EQ_STR(render("%(user) %(host) %(uagent) %(referer) %(cl)", &f), "- - - - 0");
    /* "%()" is no variable: text. */
    CHECK_EQ_STR(render("%() %(status)", &f), "%() 201");
}

TEST(logvars_are_what_the_app_set)
{
    struct log_fields f = fields();
    struct gy_param lv[] = {
        P("user_id", "42"),
        P("note", "a \"b\"\n"),
        P("empty", ""),
    };
    f.logvars = lv;
    f.nlogvars = 3;
    /* Escaped as the client's text is: an app's value cannot start a forged line. */
    CHECK_EQ_STR(render("%(user_id) [%(note)] %(empty) %(other) %(status)", &f),
                 "42 [a \\x22b\\x22\\x0a] - - 201");
    /* A logvar never shadows a variable of uWSGI's. */
    struct gy_param st[] = { P("status", "999") };
    f.logvars = st;
    f.nlogvars = 1;
    CHECK_EQ_STR(render("%(status)", &f), "201");
}

TEST(memory_variables_are_the_process_s)
{
    struct log_fields f = fields();
    unsigned long long vsz = 0, rss = 0, vszm = 0, rssm = 0;

    if (!CHECK_EQ_INT(sscanf(render("%(vsz) %(rss) %(vszM) %(rssM)", &f), "%llu %llu %llu %llu",
                             &vsz, &rss, &vszm, &rssm),
                      4))
        return;
    CHECK(vsz > 1024 * 1024 && rss > 0 && rss < vsz);
    CHECK(vszm <= vsz / 1024 / 1024 && vszm + 1 >= vsz / 1024 / 1024);
    CHECK(rssm <= rss / 1024 / 1024 + 1);
}

TEST(numbers_at_their_limits)
{
    struct log_fields f = fields();

    f.status = -1; /* no status yet: signed, as uWSGI prints it */
    f.pid = 0;
    f.core = -1;
    f.rsize = 18446744073709551615ULL;
    f.micros = 4294967295000ULL;
    f.switches = 0;
    CHECK_EQ_STR(render("%(status) %(pid) %(core) %(rsize) %(msecs) %(switches)", &f),
                 "-1 0 -1 18446744073709551615 4294967295 0");
}

TEST(time_variables)
{
    struct log_fields f = fields();
    time_t before = time(NULL), after;
    long long t, e, tms, tus;
    char rest[8];

    f.micros = 2500000; /* the request started 2.5 s ago */
    if (CHECK_EQ_INT(sscanf(render("%(time) %(epoch) %(tmsecs) %(tmicros)", &f),
                            "%lld %lld %lld %lld%7s", &t, &e, &tms, &tus, rest),
                     4)) {
        after = time(NULL);
        /* time is the request's start, epoch now (uWSGI's uwsgi_now()). */
        CHECK(e >= before && e <= after);
        CHECK(t >= before - 3 && t <= after - 2);
        CHECK(tms / 1000 == t && tus / 1000 == tms);
    }
    {
        /* ltime (and ftime without --logformat-strftime): Apache's 10/Oct/2000:13:55:36 -0700;
         * ctime: "Wed Nov 25 18:35:07 2026". */
        int d, y, hh, mm, ss, z;
        char mon[4], dow[4];

        CHECK_EQ_INT(sscanf(render("%(ltime)|%(ftime)", &f), "%2d/%3s/%4d:%2d:%2d:%2d %5d|", &d,
                            mon, &y, &hh, &mm, &ss, &z),
                     7);
        CHECK_EQ_INT(strlen(render("%(ctime)", &f)), 24);
        CHECK_EQ_INT(sscanf(out, "%3s %3s %d %d:%d:%d %d", dow, mon, &d, &hh, &mm, &ss, &y), 7);
    }
}

TEST(ftime_takes_the_log_date_format)
{
    static struct gy_config cfg;
    struct log_fields f = fields();
    char want[64];
    time_t t;

    cfg.log_format = "[%(ftime)]";
    cfg.logformat_strftime = true;
    cfg.log_strftime = "%Y@%H";
    CHECK(logformat_setup(&cfg) == NULL);
    f.micros = 0;
    for (int tries = 0; tries < 5; tries++) {
        struct tm tm;

        logformat_render(&f, out, sizeof(out));
        t = time(NULL);
        localtime_r(&t, &tm);
        strftime(want, sizeof(want), "[%Y@%H]\n", &tm);
        if (strcmp(out, want) == 0)
            break;
    }
    CHECK_EQ_STR(out, want);
    cfg.logformat_strftime = false;
    logformat_setup(&cfg);
    logformat_render(&f, out, sizeof(out));
    CHECK(strchr(out, '/') != NULL); /* ltime's form again */
}

TEST(log_x_forwarded_for_takes_the_header_whole)
{
    static struct gy_config cfg;
    struct log_fields f = fields();

    cfg.log_format = "%(addr)";
    cfg.log_x_forwarded_for = true;
    CHECK(logformat_setup(&cfg) == NULL);
    logformat_render(&f, out, sizeof(out));
    CHECK_EQ_STR(out, "203.0.113.9, 10.0.0.1\n"); /* uWSGI takes the value as it is */
    f.nparams = 4;                                /* no X-Forwarded-For: REMOTE_ADDR */
    logformat_render(&f, out, sizeof(out));
    CHECK_EQ_STR(out, "10.0.0.7\n");
    cfg.log_x_forwarded_for = false;
}

/* ---- --disable-logging and the "log only if" options ------------------------------------------ */

TEST(log_only_if_options)
{
    static struct gy_config cfg;
    struct log_fields f = fields();

    CHECK(logformat_setup(&cfg) == NULL);
    CHECK(logformat_wanted(&f)); /* logging on: every request */
    cfg.log_5xx = cfg.log_4xx = true;
    CHECK(logformat_wanted(&f)); /* ... whatever the options say */
    cfg.disable_logging = true;
    cfg.log_5xx = cfg.log_4xx = false;
    CHECK(!logformat_wanted(&f));
    cfg.log_5xx = true;
    f.status = 500;
    CHECK(logformat_wanted(&f));
    f.status = 599;
    CHECK(logformat_wanted(&f));
    f.status = 404;
    CHECK(!logformat_wanted(&f));
    cfg.log_4xx = true;
    CHECK(logformat_wanted(&f));
    f.status = 200;
    CHECK(!logformat_wanted(&f));
    cfg.log_slow = 100;
    f.micros = 99999;
    CHECK(!logformat_wanted(&f));
    f.micros = 100000;
    CHECK(logformat_wanted(&f));
    f.micros = 10;
    cfg.log_big = 1000;
    f.rsize = 999;
    CHECK(!logformat_wanted(&f));
    f.rsize = 1000;
    CHECK(logformat_wanted(&f));
    f.rsize = 0;
    CHECK(!logformat_wanted(&f));
    cfg.log_zero = true;
    CHECK(logformat_wanted(&f));
    cfg.log_zero = false;
    cfg.log_ioerror = true;
    CHECK(!logformat_wanted(&f));
    f.write_errors = 1;
    CHECK(logformat_wanted(&f));
    memset(&cfg, 0, sizeof(cfg));
    logformat_setup(&cfg);
}

TEST(literal_text_and_lone_percent_signs)
{
    struct log_fields f = fields();

    CHECK_EQ_STR(render("", &f), "");
    CHECK_EQ_STR(render("no variables at all", &f), "no variables at all");
    CHECK_EQ_STR(render("%(status)%(status)", &f), "201201");
    CHECK_EQ_STR(render("a %(method) b %(uri) c", &f), "a POST b /p?q=1 c");
    /* A '%' not followed by '(' is text, as in uWSGI; so is "%(" with no ')'. */
    CHECK_EQ_STR(render("100% %s %%(status) %", &f), "100% %s %201 %");
    CHECK_EQ_STR(render("%(status) %(unclosed", &f), "201 %(unclosed");
}

/* ---- the client's text is escaped ------------------------------------------------------------ */

TEST(client_fields_are_escaped)
{
    struct log_fields f = fields();

    f.method = "GE\nT";
    f.method_len = 4;
    f.uri = "/\"a\"\\b\x1b[0m\x7f";
    f.uri_len = (int)strlen(f.uri);
    f.addr = "\r\n";
    f.addr_len = 2;
    f.proto = "HTTP/1.1\0x";
    f.proto_len = 10;
    CHECK_EQ_STR(render("%(method) \"%(uri)\" %(addr) %(proto)", &f),
                 "GE\\x0aT \"/\\x22a\\x22\\x5cb\\x1b[0m\\x7f\" \\x0d\\x0a HTTP/1.1\\x00x");
    /* The format's own text is the operator's, not the client's: it is copied as it is. */
    CHECK_EQ_STR(render("\"%(status)\"\t\\", &f), "\"201\"\t\\");
}

TEST(lengths_bound_the_client_fields)
{
    struct log_fields f = fields();

    /* The slices are not NUL-terminated: only their length counts. */
    f.method = "GETXXXX";
    f.method_len = 3;
    f.uri = NULL;
    f.uri_len = 0;
    f.addr = "ignored";
    f.addr_len = -5; /* a negative length renders nothing, never a huge copy */
    CHECK_EQ_STR(render("[%(method)][%(uri)][%(addr)]", &f), "[GET][-][-]");
}

/* ---- lines that do not fit ------------------------------------------------------------------- */

TEST(tiny_buffers)
{
    struct log_fields f = fields();

    CHECK_EQ_STR(render("%(status)", &f), "201");
    out[0] = 'x';
    CHECK_EQ_INT(logformat_render(&f, out, 0), 0);
    CHECK_EQ_INT(out[0], 'x'); /* no room: nothing written */
    CHECK_EQ_INT(logformat_render(&f, out, 1), 0);
    CHECK_EQ_INT(out[0], '\0');
    CHECK_EQ_INT(logformat_render(&f, out, 2), 1);
    CHECK_EQ_STR(out, "\n");
    CHECK_EQ_INT(logformat_render(&f, out, 3), 2);
    CHECK_EQ_STR(out, "2\n");
    CHECK_EQ_INT(logformat_render(&f, out, 5), 4);
    CHECK_EQ_STR(out, "201\n");
    CHECK_EQ_INT(logformat_render(&f, out, 500), 4);
}

TEST(a_cut_line_ends_in_whole_escapes_and_its_newline)
{
    struct log_fields f = fields();
    static char full[512], cut[512];
    size_t full_len;

    f.uri = "/a\nb\"c";
    f.uri_len = 6;
    logformat_compile("%(uri)");
    full_len = logformat_render(&f, full, sizeof(full));
    CHECK_EQ_STR(full, "/a\\x0ab\\x22c\n");
    for (size_t cap = 2; cap <= full_len + 1; cap++) {
        size_t n = logformat_render(&f, cut, cap);

        TEST_CONTEXT("room for %zu bytes", cap);
        if (!CHECK(n >= 1 && n < cap && cut[n - 1] == '\n' && cut[n] == '\0'))
            continue;
        CHECK_EQ_MEM(cut, n - 1, full, n - 1); /* a prefix of the whole line */
        for (size_t i = 0; i + 1 < n; i++)
            if (cut[i] == '\\')
                CHECK(i + 4 < n && cut[i + 1] == 'x');
    }
}

TEST(a_field_cut_short_ends_the_line)
{
    /* Fields after a cut one would make the cut value read as whole: "/a =>" is a lie about
     * the URI "/a\nb". The line ends at the first field that does not fit. */
    struct log_fields f = fields();
    char out[16];
    f.uri = "/a\nb";
    f.uri_len = 4;
    logformat_compile("%(uri) => %(status)");
    size_t n = logformat_render(&f, out, 7);
    CHECK_EQ_STR(out, "/a\n");
    CHECK_EQ_INT(n, 3);
    n = logformat_render(&f, out, sizeof(out));
    CHECK_EQ_STR(out, "/a\\x0ab => 201\n");
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
