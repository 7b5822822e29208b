/*
 * Unit tests of request.h, the request model every parser fills: gy_parse_decimal (the one
 * reader of body lengths: uwsgi's and FastCGI's CONTENT_LENGTH, HTTP's Content-Length) and
 * gy_slice_eq. The parser tests keep one case each showing that the parser uses it; the table
 * of values lives here, once.
 */
#include "request.h"
#include "testlib.h"

#include <stdint.h>
#include <string.h>

/* gy_parse_decimal on a guarded copy: a read past the last byte faults. */
static int parse(const char *s, size_t len, int64_t *out)
{
    char *buf = guarded_copy(s, len);
    int r = gy_parse_decimal(buf, len, out);

    guarded_free(buf, len);
    return r;
}

TEST(decimal_values)
{
    static const struct {
        const char *value;
        size_t len;
        int64_t want;
    } cases[] = {
#define OK(s, v) { s, sizeof(s) - 1, v }
        OK("", 0), /* empty is 0: HTTP's caller refuses it itself (1*DIGIT) */
        OK("0", 0),
        OK("7", 7),
        OK("27", 27),
        OK("123", 123),
        OK("007", 7),
        OK("4294967295", 4294967295),
        OK("4294967296", 4294967296),
        OK("9223372036854775799", INT64_MAX - 8),
        OK("9223372036854775806", INT64_MAX - 1),
        OK("9223372036854775807", INT64_MAX),
        OK("00000000000000000000009223372036854775807", INT64_MAX), /* leading zeros are free */
#undef OK
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t got = -1;

        TEST_CONTEXT("\"%s\"", cases[i].value);
        CHECK_EQ_INT(parse(cases[i].value, cases[i].len, &got), 0);
        CHECK_EQ_INT(got, cases[i].want);
    }
}

TEST(decimal_refusals_leave_the_output_alone)
{
    static const struct {
        const char *value;
        size_t len;
    } cases[] = {
#define BAD(s) { s, sizeof(s) - 1 }
        /* Overflow, at the edge and far past it. */
        BAD("9223372036854775808"), /* INT64_MAX + 1 */
        BAD("9223372036854775810"),
        BAD("18446744073709551615"), /* UINT64_MAX */
        BAD("18446744073709551616"), /* UINT64_MAX + 1: wraps to 0 in a 64-bit reader */
        BAD("92233720368547758070"), /* INT64_MAX * 10 + 0 */
        BAD("99999999999999999999"),
        BAD("000000000000000000009223372036854775808"),
        /* Signs, blanks, separators, other bases: what strtoll and friends would take. */
        BAD("+1"),
        BAD("-1"),
        BAD("-0"),
        BAD(" 1"),
        BAD("1 "),
        BAD("1\t"),
        BAD("1\r\n"),
        BAD("1,000"),
        BAD("1_000"),
        BAD("1.0"),
        BAD("0x10"),
        BAD("1e3"),
        BAD("\"5\""),
        /* NUL inside the slice: the length says where the value ends, not a terminator. */
        BAD("1\0"),
        BAD("\0"),
        /* The bytes next to the digits, and digits that are not ASCII. */
        BAD("/"),        /* '0' - 1: wraps below '0' */
        BAD(":"),        /* '9' + 1 */
        BAD("\xd9\xa1"), /* ARABIC-INDIC DIGIT ONE */
        BAD("\xb1"),
        BAD("\xff"),
        BAD("abc"),
#undef BAD
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t got = 12345;

        TEST_CONTEXT("case %zu", i);
        CHECK_EQ_INT(parse(cases[i].value, cases[i].len, &got), -1);
        CHECK_EQ_INT(got, 12345);
    }
}

TEST(decimal_every_byte_alone)
{
    for (unsigned c = 0; c < 256; c++) {
        char ch = (char)c;
        int64_t got = -1;
        int r = parse(&ch, 1, &got);

        TEST_CONTEXT("byte 0x%02x", c);
        if (c >= '0' && c <= '9') {
            CHECK_EQ_INT(r, 0);
            CHECK_EQ_INT(got, c - '0');
        } else {
            CHECK_EQ_INT(r, -1);
        }
    }
}

TEST(decimal_every_prefix_of_int64_max)
{
    /* Each prefix of "9223372036854775807" is its own number: no step overflows early. */
    static const char max[] = "9223372036854775807";
    int64_t want = 0;

    for (size_t n = 1; n < sizeof(max); n++) {
        int64_t got = -1;

        want = want * 10 + (max[n - 1] - '0');
        TEST_CONTEXT("%zu digits", n);
        CHECK_EQ_INT(parse(max, n, &got), 0);
        CHECK_EQ_INT(got, want);
    }
}

TEST(slice_eq)
{
    struct gy_slice s = { "CONTENT_LENGTH", 14 };

    CHECK(GY_SLICE_EQ(s, "CONTENT_LENGTH"));
    CHECK(!GY_SLICE_EQ(s, "CONTENT_LENGTHS"));
    CHECK(!GY_SLICE_EQ(s, "CONTENT_LENGT"));
    CHECK(!GY_SLICE_EQ(s, "content_length"));
    s.len = 13;
    CHECK(GY_SLICE_EQ(s, "CONTENT_LENGT"));
    s.len = 0;
    CHECK(GY_SLICE_EQ(s, ""));
    CHECK(!gy_slice_eq(s, "x", 1));
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
