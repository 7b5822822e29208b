/*
 * testlib.h -- a header-only harness for the C unit tests of the wire parsers.
 *
 *     #include "testlib.h"
 *
 *     TEST(empty_input_is_incomplete)
 *     {
 *         char *buf = guarded_copy("", 0);
 *         CHECK_EQ_INT(my_parse(buf, 0), 0);
 *         guarded_free(buf, 0);
 *     }
 *
 *     int main(int argc, char **argv) { return testlib_main(argc, argv); }
 *
 * TEST() registers the test by itself (a constructor), so a test cannot be written and then
 * forgotten in a list; tests run in source order. A failed CHECK prints file:line, the test and
 * the values, then lets the test go on, so one run shows every broken expectation. Every
 * CHECK_* macro is an expression that is true when the check passed, for `if (!CHECK(p)) return;`
 * where going on would only crash.
 *
 * Counting is per test: a test passes when none of its checks failed. The last line printed is
 * exactly "N passed, N failed"; the exit status is non-zero when a test failed.
 *
 * Arguments of the test binary: -v prints each test's name before it runs (to place a crash
 * when no sanitizer reports it); any other argument runs only the tests whose name contains it.
 *
 * Include it in one translation unit per test binary: everything here is static.
 */
#ifndef GYRE_TESTLIB_H
#define GYRE_TESTLIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TESTLIB_MAX_TESTS 1024
#define TESTLIB_MAX_REPORTS 20 /* failures printed per test; a failing loop would flood */

struct testlib_test {
    const char *name;
    void (*fn)(void);
    int line;
};

static struct {
    struct testlib_test tests[TESTLIB_MAX_TESTS];
    int ntests;
    int passed, failed;   /* tests */
    unsigned long checks; /* checks run, all tests */
    int test_failures;    /* failed checks in the current test */
    const char *current;
    char context[256];
} testlib;

/* Registration happens in constructors, before main and so before any test output. */
static inline void testlib_register(const char *name, void (*fn)(void), int line)
{
    if (testlib.ntests == TESTLIB_MAX_TESTS) {
        fprintf(stderr, "testlib: more than %d tests, raise TESTLIB_MAX_TESTS\n",
                TESTLIB_MAX_TESTS);
        abort();
    }
    testlib.tests[testlib.ntests++] = (struct testlib_test){ name, fn, line };
}

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void testlib_register_##name(void)                         \
    {                                                                                              \
        testlib_register(#name, test_##name, __LINE__);                                            \
    }                                                                                              \
    static void test_##name(void)

/*
 * Say what a loop is on, e.g. TEST_CONTEXT("prefix of %zu bytes", n): failures print it, so a
 * check inside a loop names the iteration that broke. Cleared when each test starts.
 */
#define TEST_CONTEXT(...) testlib_set_context(__VA_ARGS__)

__attribute__((format(printf, 1, 2))) static inline void testlib_set_context(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(testlib.context, sizeof(testlib.context), fmt, ap);
    va_end(ap);
}

/* Records one check; prints the failure, already formatted by the caller, if it failed. */
__attribute__((format(printf, 4, 5))) static inline int
testlib_check(int ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    testlib.checks++;
    if (ok)
        return 1;
    if (++testlib.test_failures <= TESTLIB_MAX_REPORTS) {
        fprintf(stderr, "%s:%d: %s: ", file, line, testlib.current ? testlib.current : "?");
        if (testlib.context[0])
            fprintf(stderr, "[%s] ", testlib.context);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    } else if (testlib.test_failures == TESTLIB_MAX_REPORTS + 1) {
        fprintf(stderr, "%s:%d: %s: further failures of this test not shown\n", file, line,
                testlib.current ? testlib.current : "?");
    }
    return 0;
}

/* Prints up to 64 bytes C-escaped, for the mismatch messages of byte strings. */
static inline void testlib_escape(char *out, size_t outsize, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t o = 0, shown = len < 64 ? len : 64;

    for (size_t i = 0; i < shown && o + 8 < outsize; i++) {
        if (p[i] == '"' || p[i] == '\\')
            o += (size_t)snprintf(out + o, outsize - o, "\\%c", p[i]);
        else if (p[i] >= 0x20 && p[i] < 0x7f)
            out[o++] = (char)p[i];
        else
            o += (size_t)snprintf(out + o, outsize - o, "\\x%02x", p[i]);
    }
    snprintf(out + o, outsize - o, "%s", shown < len ? "..." : "");
}

static inline int testlib_check_int(intmax_t a, intmax_t b, const char *as, const char *bs,
                                    const char *file, int line)
{
    return testlib_check(a == b, file, line, "%s == %s: %jd != %jd", as, bs, a, b);
}

static inline int testlib_check_mem(const void *a, size_t alen, const void *b, size_t blen,
                                    const char *as, const char *bs, const char *file, int line)
{
    char ea[300], eb[300];

    if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0))
        return testlib_check(1, file, line, "%s", "");
    if (a == NULL || b == NULL)
        return testlib_check(0, file, line, "%s == %s: %s != %s", as, bs, a ? "..." : "NULL",
                             b ? "..." : "NULL");
    testlib_escape(ea, sizeof(ea), a, alen);
    testlib_escape(eb, sizeof(eb), b, blen);
    return testlib_check(0, file, line, "%s == %s: \"%s\" (%zu) != \"%s\" (%zu)", as, bs, ea, alen,
                         eb, blen);
}

static inline int testlib_check_str(const char *a, const char *b, const char *as, const char *bs,
                                    const char *file, int line)
{
    if (a == NULL || b == NULL)
        return testlib_check(a == b, file, line, "%s == %s: %s != %s", as, bs, a ? a : "NULL",
                             b ? b : "NULL");
    return testlib_check_mem(a, strlen(a), b, strlen(b), as, bs, file, line);
}

#define CHECK(cond) testlib_check(!!(cond), __FILE__, __LINE__, "CHECK(%s) failed", #cond)
/* Integers of any type up to intmax_t; enums and negative statuses compare as expected. */
#define CHECK_EQ_INT(a, b)                                                                         \
    testlib_check_int((intmax_t)(a), (intmax_t)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_EQ_STR(a, b) testlib_check_str((a), (b), #a, #b, __FILE__, __LINE__)
/* Byte strings with lengths: slices, binary data. */
#define CHECK_EQ_MEM(a, alen, b, blen)                                                             \
    testlib_check_mem((a), (alen), (b), (blen), #a, #b, __FILE__, __LINE__)

/*
 * Copy len bytes so that they end exactly where an inaccessible page begins: a parser reading
 * even one byte past buf[len - 1] faults at once, sanitizer or not (ASan does not watch mmap'd
 * memory; the guard page does). With len 0 the pointer is the guard page itself, so any read
 * faults. The copy is read-only too: parsers take const input, and a stray write faults as well.
 * Release it with guarded_free(p, len), with the same len.
 */
static inline size_t testlib_pagesize(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static inline size_t testlib_data_pages_size(size_t len)
{
    size_t page = testlib_pagesize();

    return (len + page - 1) / page * page;
}

static inline void *guarded_copy(const void *data, size_t len)
{
    size_t page = testlib_pagesize(), span = testlib_data_pages_size(len);
    char *base = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                      0);
    char *p;

    if (base == MAP_FAILED) {
        perror("testlib: guarded_copy: mmap");
        abort();
    }
    p = base + span - len;
    if (len)
        memcpy(p, data, len);
    if ((span && mprotect(base, span, PROT_READ) != 0) ||
        mprotect(base + span, page, PROT_NONE) != 0) {
        perror("testlib: guarded_copy: mprotect");
        abort();
    }
    return p;
}

static inline void guarded_free(const void *p, size_t len)
{
    size_t span = testlib_data_pages_size(len);
    const char *guard = (const char *)p + len;

    if (munmap((void *)(guard - span), span + testlib_pagesize()) != 0) {
        perror("testlib: guarded_free: munmap");
        abort();
    }
}

/* Prints the closing line and returns the process exit status. */
static inline int testlib_finish(void)
{
    printf("%lu checks in %d tests\n", testlib.checks, testlib.passed + testlib.failed);
    printf("%d passed, %d failed\n", testlib.passed, testlib.failed);
    fflush(stdout);
    return testlib.failed ? 1 : 0;
}

static inline void testlib_run(const struct testlib_test *t, int verbose)
{
    if (verbose) {
        printf("-- %s\n", t->name);
        fflush(stdout);
    }
    testlib.current = t->name;
    testlib.context[0] = '\0';
    testlib.test_failures = 0;
    t->fn();
    if (testlib.test_failures) {
        testlib.failed++;
        fprintf(stderr, "FAIL %s (%d failed checks)\n", t->name, testlib.test_failures);
    } else {
        testlib.passed++;
    }
    testlib.current = NULL;
    testlib.context[0] = '\0';
}

static inline int testlib_selected(const char *name, int argc, char **argv)
{
    int filtered = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0)
            continue;
        filtered = 1;
        if (strstr(name, argv[i]))
            return 1;
    }
    return !filtered;
}

/* Runs the registered tests in source order and returns testlib_finish()'s status. */
static inline int testlib_main(int argc, char **argv)
{
    int verbose = 0;

    for (int i = 1; i < argc; i++)
        verbose |= strcmp(argv[i], "-v") == 0;
    /* Insertion sort by line: constructors run in an order the compiler picks. */
    for (int i = 1; i < testlib.ntests; i++) {
        struct testlib_test t = testlib.tests[i];
        int j = i;

        for (; j > 0 && testlib.tests[j - 1].line > t.line; j--)
            testlib.tests[j] = testlib.tests[j - 1];
        testlib.tests[j] = t;
    }
    for (int i = 0; i < testlib.ntests; i++)
        if (testlib_selected(testlib.tests[i].name, argc, argv))
            testlib_run(&testlib.tests[i], verbose);
    return testlib_finish();
}

#endif
