/*
 * Unit tests of log.c: log_escape (the one escaper of client bytes in request lines), the
 * server messages of log_msg / log_errno / log_lines, read back from the stderr they write to,
 * and where lines go: --log-date, --logger, --req-logger, --log-route, --log-encoder.
 * Pure C: no Python, no server.
 */
#include "config.h"
#include "log.h"
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- log_escape ------------------------------------------------------------------------------ */

/* log_escape of a byte string into a buffer of cap bytes, NUL-terminated for CHECK_EQ_STR. */
static const char *escaped(const char *src, size_t n, size_t cap)
{
    static char out[512];

    if (cap >= sizeof(out))
        abort();
    out[log_escape(out, cap, src, n)] = '\0';
    return out;
}

#define ESCAPED(lit) escaped((lit), sizeof(lit) - 1, 500)

TEST(escape_leaves_printable_bytes_alone)
{
    CHECK_EQ_STR(ESCAPED("/a/b?c=d&e=%20f"), "/a/b?c=d&e=%20f");
    CHECK_EQ_STR(ESCAPED(""), "");
    /* Bytes over 0x7f are not control bytes: UTF-8 reaches the log as it is, as in nginx. */
    CHECK_EQ_STR(ESCAPED("caf\xc3\xa9"), "caf\xc3\xa9");
    CHECK_EQ_STR(ESCAPED(" ~'"), " ~'");
}

TEST(escape_control_bytes_del_quote_and_backslash)
{
    CHECK_EQ_STR(ESCAPED("a\nb"), "a\\x0ab");
    CHECK_EQ_STR(ESCAPED("\r\n"), "\\x0d\\x0a");
    CHECK_EQ_STR(ESCAPED("\x1b[31m"), "\\x1b[31m"); /* a terminal escape */
    CHECK_EQ_STR(ESCAPED("\x7f"), "\\x7f");
    CHECK_EQ_STR(ESCAPED("\x1f"), "\\x1f");
    CHECK_EQ_STR(ESCAPED("say \"hi\""), "say \\x22hi\\x22");
    CHECK_EQ_STR(ESCAPED("a\\b"), "a\\x5cb");
    /* A NUL inside the slice is a byte like the others: the length says where it ends. */
    CHECK_EQ_STR(escaped("a\0b", 3, 500), "a\\x00b");
    /* Every control byte, one by one: four bytes each, lower-case hex. */
    for (unsigned ch = 0; ch < 0x20; ch++) {
        char src = (char)ch, want[8];

        TEST_CONTEXT("byte 0x%02x", ch);
        snprintf(want, sizeof(want), "\\x%02x", ch);
        CHECK_EQ_STR(escaped(&src, 1, 500), want);
    }
}

TEST(escape_stops_before_an_escape_that_does_not_fit)
{
    /* "ab" then \x0a (4 bytes): with 2 to 5 bytes of room, never a part of the escape. */
    CHECK_EQ_STR(escaped("ab\ncd", 5, 0), "");
    CHECK_EQ_STR(escaped("ab\ncd", 5, 1), "a");
    CHECK_EQ_STR(escaped("ab\ncd", 5, 2), "ab");
    CHECK_EQ_STR(escaped("ab\ncd", 5, 3), "ab");
    CHECK_EQ_STR(escaped("ab\ncd", 5, 5), "ab");
    CHECK_EQ_STR(escaped("ab\ncd", 5, 6), "ab\\x0a");
    CHECK_EQ_STR(escaped("ab\ncd", 5, 7), "ab\\x0ac");
    CHECK_EQ_STR(escaped("ab\ncd", 5, 100), "ab\\x0acd");
    /* What is written is always whole escapes: a prefix of the full output, in every room. */
    {
        static const char src[] = "\"\x01x\\\x7f\ty";
        const char *full = "\\x22\\x01x\\x5c\\x7f\\x09y";
        char out[64];

        for (size_t cap = 0; cap <= strlen(full) + 1; cap++) {
            size_t n = log_escape(out, cap, src, sizeof(src) - 1);

            TEST_CONTEXT("room for %zu bytes", cap);
            CHECK(n <= cap);
            CHECK_EQ_MEM(out, n, full, n);
            /* A cut falls between escapes: after it, a whole "\xHH" or a plain byte. */
            for (size_t i = 0; i < n; i++)
                if (out[i] == '\\')
                    CHECK(i + 4 <= n && out[i + 1] == 'x');
        }
    }
}

/* ---- log_msg, log_errno, log_lines: one line each, control bytes escaped ------------------- */

/* Runs fn with stderr sent to a temporary file and returns what it wrote (static buffer). */
static const char *captured(void (*fn)(void))
{
    static char out[8192];
    char path[] = "/tmp/gyre-test-log.XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    ssize_t n;

    if (fd < 0 || saved < 0) {
        perror("captured");
        abort();
    }
    unlink(path);
    fflush(stderr);
    dup2(fd, 2);
    fn();
    dup2(saved, 2);
    close(saved);
    n = pread(fd, out, sizeof(out) - 1, 0);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    return out;
}

static char expect_buf[8192];

/* The "[gyre PID] " prefix of this process's messages, followed by text. */
static const char *line(const char *text)
{
    snprintf(expect_buf, sizeof(expect_buf), "[gyre %d] %s", (int)getpid(), text);
    return expect_buf;
}

static void msg_plain(void)
{
    log_init();
    log_msg("listening on %s, %d cores", "/tmp/x.sock", 4);
}

static void msg_with_client_bytes(void)
{
    log_init();
    /* A method and an exception message from the outside world, forging a second line. */
    log_msg("bad request %s: %s", "GET\r\n[gyre 1] forged", "\x1b[2J");
}

static void msg_errno(void)
{
    log_init();
    errno = ENOENT;
    log_errno("cannot open %s", "a\nb");
}

static void msg_lines(void)
{
    log_init();
    log_lines("Traceback:", "  File \"x\"\n\x1b]0;t\x07\nlast");
}

TEST(log_msg_one_prefixed_line)
{
    char want[256];

    snprintf(want, sizeof(want), "%s\n", line("listening on /tmp/x.sock, 4 cores"));
    CHECK_EQ_STR(captured(msg_plain), want);
}

TEST(log_msg_escapes_control_bytes_of_the_whole_message)
{
    char want[256];

    /* Quotes and backslashes stay: a server message is not a quoted field. */
    snprintf(want, sizeof(want), "%s\n",
             line("bad request GET\\x0d\\x0a[gyre 1] forged: \\x1b[2J"));
    CHECK_EQ_STR(captured(msg_with_client_bytes), want);
}

TEST(log_errno_appends_strerror)
{
    char want[256];

    snprintf(want, sizeof(want), "%s\n", line("cannot open a\\x0ab: No such file or directory"));
    CHECK_EQ_STR(captured(msg_errno), want);
}

TEST(log_lines_one_message_per_line)
{
    char want[512];
    int n = 0;

    n += snprintf(want + n, sizeof(want) - (size_t)n, "%s\n", line("Traceback:"));
    n += snprintf(want + n, sizeof(want) - (size_t)n, "%s\n", line("  File \"x\""));
    n += snprintf(want + n, sizeof(want) - (size_t)n, "%s\n", line("\\x1b]0;t\\x07"));
    snprintf(want + n, sizeof(want) - (size_t)n, "%s\n", line("last"));
    CHECK_EQ_STR(captured(msg_lines), want);
}

/* ---- destinations: loggers, routes, encoders, --log-date ------------------------------------- */

static struct gy_config cfg;

/* A fresh configuration of the log (every list empty), applied: NULL or log_setup's error. */
static const char *setup(void)
{
    return log_setup(&cfg);
}

static void reset(void)
{
    memset(&cfg, 0, sizeof(cfg));
    CHECK(setup() == NULL);
}

static char tmpdir[64];

static const char *tmpfile_path(const char *name)
{
    static char paths[8][128];
    static int next;
    char *p = paths[next++ % 8];

    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/gyre-test-log-dir.XXXXXX");
        if (!mkdtemp(tmpdir))
            abort();
    }
    snprintf(p, 128, "%s/%s", tmpdir, name);
    unlink(p);
    return p;
}

static const char *slurp(const char *path)
{
    static char buf[8192];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof(buf) - 1);

    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void msg_hello(void)
{
    log_init();
    log_msg("hello \"q\" \\ end");
}

static void msg_utf8(void)
{
    log_init();
    log_msg("caf\xc3\xa9 \xe2\x82\xac");
}

static void msg_latin1(void)
{
    log_init();
    log_msg("caf\xe9 \xff");
}

static void msg_and_request(void)
{
    log_init();
    log_msg("route-me please");
    log_msg("stay");
    log_request_line("GET / 200\n", 10);
}

TEST(log_date_prefixes_messages_only)
{
    const char *got;

    reset();
    cfg.logdate = true;
    CHECK(setup() == NULL);
    got = captured(msg_and_request);
    /* "Sun Dec  6 10:02:15 2026 - [gyre N] ...": ctime's 24 characters and " - " */
    CHECK(strlen(got) > 27 && strncmp(got + 24, " - [gyre ", 9) == 0);
    CHECK(strstr(got, "\nGET / 200\n") != NULL); /* the request line as it was */
    cfg.log_strftime = "<%Y>";
    CHECK(setup() == NULL);
    got = captured(msg_hello);
    CHECK(got[0] == '<' && got[5] == '>' && strncmp(got + 6, " - [gyre ", 9) == 0);
    reset();
}

TEST(encoders_format_json_prefix_suffix_nl)
{
    char want[256];
    const char *encoders[] = { "format [${msg}] ${unknown}$x", "nl" };

    reset();
    cfg.log_encoders[0] = encoders[0];
    cfg.log_encoders[1] = encoders[1];
    cfg.nlog_encoders = 2;
    CHECK(setup() == NULL);
    snprintf(want, sizeof(want), "[%s] $x\n", line("hello \"q\" \\ end"));
    CHECK_EQ_STR(captured(msg_hello), want);
    /* json: the message escaped as a JSON string's inside. */
    cfg.log_encoders[0] = "json {\"msg\":\"${msg}\",\"nl\":\"${msgnl}\"}";
    CHECK(setup() == NULL);
    snprintf(want, sizeof(want),
             "{\"msg\":\"[gyre %d] hello \\\"q\\\" \\\\ end\",\"nl\":\"[gyre %d] "
             "hello \\\"q\\\" \\\\ end\\n\"}\n",
             (int)getpid(), (int)getpid());
    CHECK_EQ_STR(captured(msg_hello), want);
    /* json is UTF-8: UTF-8 stays as it is; other bytes are read as Latin-1. */
    cfg.log_encoders[0] = "json {\"msg\":\"${msg}\"}";
    CHECK(setup() == NULL);
    snprintf(want, sizeof(want), "{\"msg\":\"[gyre %d] caf\xc3\xa9 \xe2\x82\xac\"}\n",
             (int)getpid());
    CHECK_EQ_STR(captured(msg_utf8), want);
    snprintf(want, sizeof(want), "{\"msg\":\"[gyre %d] caf\xc3\xa9 \xc3\xbf\"}\n", (int)getpid());
    CHECK_EQ_STR(captured(msg_latin1), want);
    /* prefix, suffix (the suffix after the newline, as uWSGI's) */
    cfg.log_encoders[0] = "prefix >>";
    cfg.log_encoders[1] = "suffix <<";
    CHECK(setup() == NULL);
    snprintf(want, sizeof(want), ">>%s\n<<", line("hello \"q\" \\ end"));
    CHECK_EQ_STR(captured(msg_hello), want);
    /* ${unix}, ${millis}, ${micros}, ${strftime:...} */
    cfg.log_encoders[0] = "format ${unix} ${millis} ${micros} ${strftime:%Y}";
    cfg.nlog_encoders = 1;
    CHECK(setup() == NULL);
    {
        long long u, ms, us;
        int y;

        if (CHECK_EQ_INT(sscanf(captured(msg_hello), "%lld %lld %lld %d", &u, &ms, &us, &y), 4)) {
            CHECK(ms / 1000 >= u && ms / 1000 <= u + 1 && us / 1000 >= ms);
            CHECK(y >= 2024);
        }
    }
    reset();
}

TEST(unnamed_logger_takes_every_line_and_req_logger_the_requests)
{
    const char *msgs = tmpfile_path("msgs.log"), *reqs = tmpfile_path("reqs.log");
    char spec1[160], spec2[160];

    reset();
    snprintf(spec1, sizeof(spec1), "file:%s", msgs);
    cfg.loggers[0] = spec1;
    cfg.nloggers = 1;
    CHECK(setup() == NULL);
    CHECK_EQ_STR(captured(msg_and_request), ""); /* nothing on stderr */
    CHECK(strstr(slurp(msgs), "] route-me please\n") && strstr(slurp(msgs), "\nGET / 200\n"));
    unlink(msgs);
    snprintf(spec2, sizeof(spec2), "file:%s", reqs);
    cfg.req_loggers[0] = spec2;
    cfg.nreq_loggers = 1;
    CHECK(setup() == NULL);
    CHECK_EQ_STR(captured(msg_and_request), "");
    CHECK(strstr(slurp(msgs), "] stay\n") && !strstr(slurp(msgs), "GET /"));
    CHECK_EQ_STR(slurp(reqs), "GET / 200\n");
    reset();
}

TEST(routes_send_matching_lines_to_a_named_logger)
{
    const char *routed = tmpfile_path("routed.log");
    char spec[160];
    const char *got;

    reset();
    snprintf(spec, sizeof(spec), "special file:%s", routed);
    cfg.loggers[0] = spec;
    cfg.nloggers = 1;
    cfg.log_routes[0] = "special route-me|^GET";
    cfg.nlog_routes = 1;
    /* an encoder for that logger only */
    cfg.log_encoders[0] = "prefix:special R:";
    cfg.nlog_encoders = 1;
    CHECK(setup() == NULL);
    got = captured(msg_and_request);
    /* The named logger gets only what a route sends it; the rest goes where it went. */
    CHECK(strstr(got, "] stay\n") && !strstr(got, "route-me") && !strstr(got, "GET"));
    CHECK(strncmp(slurp(routed), "R:[gyre ", 8) == 0 && strstr(slurp(routed), "R:GET / 200\n"));
    CHECK(!strstr(slurp(routed), "stay"));
    reset();
}

TEST(fd_loggers)
{
    char spec[32];
    const char *path = tmpfile_path("fd.log");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    const char *got;

    reset();
    snprintf(spec, sizeof(spec), "fd:%d", fd);
    cfg.loggers[0] = spec;
    cfg.loggers[1] = "fd:2"; /* stderr as it was, never a capture pipe */
    cfg.nloggers = 2;
    CHECK(setup() == NULL);
    got = captured(msg_hello);
    CHECK(strstr(got, "] hello") != NULL);
    CHECK(strstr(slurp(path), "] hello") != NULL);
    close(fd);
    reset();
}

TEST(drains_and_filters)
{
    const char *got;

    reset();
    cfg.log_drains[0] = "route-me";
    cfg.nlog_drains = 1;
    CHECK(setup() == NULL);
    got = captured(msg_and_request);
    CHECK(!strstr(got, "route-me") && strstr(got, "] stay\n") && strstr(got, "GET / 200\n"));
    cfg.log_filters[0] = "^GET";
    cfg.log_filters[1] = "stay$";
    cfg.nlog_filters = 2;
    CHECK(setup() == NULL);
    got = captured(msg_and_request);
    CHECK(!strstr(got, "route-me") && strstr(got, "] stay\n") && strstr(got, "GET / 200\n"));
    cfg.nlog_filters = 1;
    CHECK(setup() == NULL);
    CHECK_EQ_STR(captured(msg_and_request), "GET / 200\n");
    /* PCRE, as uWSGI's: \d and a lazy quantifier, which POSIX regexps lack. */
    cfg.log_filters[0] = "^GET .*? \\d{3}$";
    CHECK(setup() == NULL);
    CHECK_EQ_STR(captured(msg_and_request), "GET / 200\n");
    cfg.log_drains[0] = "(";
    CHECK(setup() != NULL);
    reset();
}

TEST(bad_logging_options_are_errors)
{
    static const struct {
        const char *logger, *route, *encoder, *want;
    } cases[] = {
        { "redislog:127.0.0.1", NULL, NULL, "unknown logger" },
        { "file:", NULL, NULL, "needs a path" },
        { "file:/nonexistent-dir/x.log", NULL, NULL, "No such file" },
        { "syslog:gyre,nosuchfacility", NULL, NULL, "unknown syslog facility" },
        { "file:logfile=/tmp/x,colour=red", NULL, NULL, "keys are" },
        { NULL, "nobody x", NULL, "no --logger" },
        { NULL, "x", NULL, "expected LOGGER-ID REGEX" },
        { "a stdio", "a (unclosed", NULL, "regular expression" },
        { NULL, NULL, "gzip", "unknown encoder" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *err;

        TEST_CONTEXT("case %zu", i);
        memset(&cfg, 0, sizeof(cfg));
        cfg.loggers[0] = cases[i].logger;
        cfg.nloggers = cases[i].logger != NULL;
        cfg.log_routes[0] = cases[i].route;
        cfg.nlog_routes = cases[i].route != NULL;
        cfg.log_encoders[0] = cases[i].encoder;
        cfg.nlog_encoders = cases[i].encoder != NULL;
        err = setup();
        if (CHECK(err != NULL))
            CHECK(strstr(err, cases[i].want) != NULL);
    }
    reset();
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
