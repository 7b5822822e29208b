/*
 * Unit tests of log.c: log_escape (the one escaper of client bytes in request lines) and the
 * server messages of log_msg / log_errno / log_lines, read back from the stderr they write to.
 * Pure C: no Python, no server.
 */
#include "log.h"
#include "testlib.h"

#include <errno.h>
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

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
