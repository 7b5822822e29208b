/*
 * Unit tests of logformat.c, the one renderer of request log lines: the built-in uWSGI line,
 * every %(variable) of --log-format, the client's text escaped (log_escape), lines cut to the
 * buffer without cutting an escape, and the errors of logformat_compile. Pure C: no Python.
 *
 * The compiled format is process state: the first test renders before any compile (the
 * built-in default); the others compile what they render.
 */
#include "log.h"
#include "testlib.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    f.status = 201;
    f.size = 12345678901ULL;
    f.msecs = 17;
    f.pid = 4242;
    f.core = 3;
    f.req = 99;
    f.vars = 31;
    f.head_size = 812;
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

TEST(default_line_is_uwsgis) /* first: nothing compiled yet */
{
    struct log_fields f = fields();
    char want[512], t[32] = "";
    size_t n = 0;

    /* ltime is the clock's: render again (bounded) if the second turned during the render. */
    for (int tries = 0; tries < 5; tries++) {
        snprintf(t, sizeof(t), "%s", log_asctime());
        n = logformat_render(&f, out, sizeof(out));
        if (strcmp(t, log_asctime()) == 0)
            break;
    }
    /* uWSGI 2.0's line, field for field (core appears twice, as in uWSGI). */
    snprintf(want, sizeof(want),
             "[pid: 4242|core: 3|req: 99] 10.0.0.7 () {31 vars in 812 bytes} [%s] POST /p?q=1 "
             "=> generated 12345678901 bytes in 17 msecs (HTTP/1.1 201) 5 headers in 160 bytes "
             "(6 switches on core 3)\n",
             t);
    CHECK_EQ_STR(out, want);
    CHECK_EQ_INT(n, strlen(want));
}

/* ---- every variable -------------------------------------------------------------------------- */

TEST(every_variable)
{
    static const struct {
        const char *fmt, *want;
    } cases[] = {
        { "%(method)", "POST" },      { "%(uri)", "/p?q=1" },    { "%(status)", "201" },
        { "%(size)", "12345678901" }, { "%(msecs)", "17" },      { "%(pid)", "4242" },
        { "%(core)", "3" },           { "%(addr)", "10.0.0.7" }, { "%(proto)", "HTTP/1.1" },
        { "%(vars)", "31" },          { "%(pktsize)", "812" },   { "%(hsize)", "160" },
        { "%(headers)", "5" },        { "%(switches)", "6" },    { "%(req)", "99" },
    };
    struct log_fields f = fields();

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TEST_CONTEXT("%s", cases[i].fmt);
        CHECK_EQ_STR(render(cases[i].fmt, &f), cases[i].want);
    }
}

TEST(numbers_at_their_limits)
{
    struct log_fields f = fields();

    f.status = -1; /* no status yet: signed, as uWSGI prints it */
    f.pid = 0;
    f.core = -1;
    f.size = 18446744073709551615ULL;
    f.msecs = 4294967295u;
    f.switches = 0;
    CHECK_EQ_STR(render("%(status) %(pid) %(core) %(size) %(msecs) %(switches)", &f),
                 "-1 0 -1 18446744073709551615 4294967295 0");
}

TEST(time_epoch_and_ltime)
{
    struct log_fields f = fields();
    time_t before = time(NULL), after;
    long long t, e;
    char rest[8];

    if (CHECK_EQ_INT(sscanf(render("%(time) %(epoch)", &f), "%lld %lld%7s", &t, &e, rest), 2)) {
        after = time(NULL);
        CHECK(t >= before && t <= after);
        CHECK(e >= t && e <= after); /* epoch is time's other name */
    }
    {
        char want[64] = "", t[32];
        const char *line = "";

        for (int tries = 0; tries < 5; tries++) {
            snprintf(t, sizeof(t), "%s", log_asctime());
            line = render("[%(ltime)]", &f);
            snprintf(want, sizeof(want), "[%s]", log_asctime());
            if (strcmp(t, log_asctime()) == 0)
                break;
        }
        CHECK_EQ_STR(line, want);
        /* "Wed Nov 25 18:35:07 2026": 24 characters, as asctime without its newline. */
        CHECK_EQ_INT(strlen(log_asctime()), 24);
    }
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

/* ---- unknown variables ----------------------------------------------------------------------- */

TEST(unknown_variable_is_refused_and_the_format_kept)
{
    struct log_fields f = fields();
    const char *err;
    char longname[200];

    CHECK_EQ_STR(render("kept %(status)", &f), "kept 201");
    err = logformat_compile("x %(status) %(nope) y");
    if (CHECK(err != NULL)) {
        CHECK(strncmp(err, "unknown variable %(nope): known are ", 36) == 0);
        CHECK(strstr(err, " method ") && strstr(err, " ltime"));
    }
    /* Names are whole and case-sensitive. */
    CHECK(logformat_compile("%(STATUS)") != NULL);
    CHECK(logformat_compile("%(stat)") != NULL);
    CHECK(logformat_compile("%(statuss)") != NULL);
    CHECK(logformat_compile("%()") != NULL);
    CHECK(logformat_compile("%( status)") != NULL);
    /* A long name is quoted in part: the message stays one short line. */
    memset(longname, 'z', sizeof(longname));
    memcpy(longname, "%(", 2);
    memcpy(longname + sizeof(longname) - 2, ")", 2);
    err = logformat_compile(longname);
    if (CHECK(err != NULL))
        CHECK(strlen(err) < 200 && !strchr(err, '\n'));
    /* The refused formats changed nothing: the last good one still renders. */
    CHECK_EQ_INT(logformat_render(&f, out, sizeof(out)), 9);
    CHECK_EQ_STR(out, "kept 201\n");
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
    CHECK_EQ_STR(render("[%(method)][%(uri)][%(addr)]", &f), "[GET][][]");
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
