/*
 * Unit tests of signals.c's pure parts: uWSGI's cron rule (each field a value, -1 any, -N every
 * N; day of month and day of week ORed when both are given; week day 7 is Sunday), the option
 * syntaxes (--cron, --cron2, --timer, --fs-signal) and the signal targets. The routing itself
 * runs through real processes in tests/integration/test_uwsgi_signals.py.
 */
#include "signals.h"
#include "testlib.h"

#include <string.h>
#include <time.h>

/* A struct tm as localtime() gives it: month 1..12 here, tm_mon 0..11 there. */
static struct tm at(int year, int month, int mday, int hour, int min, int wday)
{
    struct tm t;
    memset(&t, 0, sizeof(t));
    t.tm_year = year - 1900;
    t.tm_mon = month - 1;
    t.tm_mday = mday;
    t.tm_hour = hour;
    t.tm_min = min;
    t.tm_wday = wday;
    return t;
}

TEST(cron_every_field_any_matches_every_minute)
{
    struct tm t = at(2026, 12, 6, 16, 7, 0);
    CHECK(cron_matches(&t, -1, -1, -1, -1, -1));
    t = at(2026, 1, 31, 0, 0, 6);
    CHECK(cron_matches(&t, -1, -1, -1, -1, -1));
}

TEST(cron_exact_minute_and_hour)
{
    struct tm t = at(2026, 12, 6, 16, 7, 0);
    CHECK(cron_matches(&t, 7, 16, -1, -1, -1));
    CHECK(!cron_matches(&t, 8, 16, -1, -1, -1));
    CHECK(!cron_matches(&t, 7, 15, -1, -1, -1));
    CHECK(cron_matches(&t, 7, -1, -1, -1, -1));
}

TEST(cron_negative_is_every_n)
{
    struct tm t = at(2026, 12, 6, 16, 10, 0);
    CHECK(cron_matches(&t, -5, -1, -1, -1, -1));  /* every 5: minute 10 */
    CHECK(cron_matches(&t, -2, -1, -1, -1, -1));  /* every 2 */
    CHECK(!cron_matches(&t, -3, -1, -1, -1, -1)); /* 10 is no multiple of 3 */
    CHECK(cron_matches(&t, -1, -4, -1, -1, -1));  /* hour 16, every 4 */
    CHECK(!cron_matches(&t, -1, -5, -1, -1, -1));
}

TEST(cron_month_is_one_based_as_uwsgi)
{
    struct tm t = at(2026, 12, 6, 16, 10, 0);
    CHECK(cron_matches(&t, -1, -1, -1, 12, -1));
    CHECK(!cron_matches(&t, -1, -1, -1, 11, -1));
    CHECK(cron_matches(&t, -1, -1, -1, -3, -1)); /* December: 12, a multiple of 3 */
    t = at(2026, 1, 6, 16, 10, 2);
    CHECK(cron_matches(&t, -1, -1, -1, 1, -1));
    CHECK(!cron_matches(&t, -1, -1, -1, 0, -1));
}

TEST(cron_day_and_weekday_are_ored_when_both_given)
{
    /* Sunday the 6th */
    struct tm t = at(2026, 12, 6, 0, 0, 0);
    CHECK(cron_matches(&t, 0, 0, 6, -1, 3));  /* the day matches, the week day not */
    CHECK(cron_matches(&t, 0, 0, 15, -1, 0)); /* the week day matches, the day not */
    CHECK(!cron_matches(&t, 0, 0, 15, -1, 3));
    /* One of them any: both must match. */
    CHECK(cron_matches(&t, 0, 0, 6, -1, -1));
    CHECK(!cron_matches(&t, 0, 0, 7, -1, -1));
    CHECK(cron_matches(&t, 0, 0, -1, -1, 0));
    CHECK(!cron_matches(&t, 0, 0, -1, -1, 1));
}

TEST(cron_weekday_seven_is_sunday)
{
    struct tm sunday = at(2026, 12, 6, 3, 30, 0);
    struct tm monday = at(2026, 12, 7, 3, 30, 1);
    CHECK(cron_matches(&sunday, 30, 3, -1, -1, 7));
    CHECK(!cron_matches(&monday, 30, 3, -1, -1, 7));
}

TEST(cron_spec_parses_five_fields_and_the_command)
{
    int f[5];
    const char *cmd = NULL;
    CHECK_EQ_INT(cron_parse("-1 -1 -1 -1 -1 echo hi there", f, &cmd), 0);
    CHECK_EQ_INT(f[0], -1);
    CHECK_EQ_INT(f[4], -1);
    CHECK_EQ_STR(cmd, "echo hi there");
    CHECK_EQ_INT(cron_parse("30 4  1 12 0   /usr/bin/backup", f, &cmd), 0);
    CHECK_EQ_INT(f[0], 30);
    CHECK_EQ_INT(f[1], 4);
    CHECK_EQ_INT(f[2], 1);
    CHECK_EQ_INT(f[3], 12);
    CHECK_EQ_INT(f[4], 0);
    CHECK_EQ_STR(cmd, "/usr/bin/backup");
    CHECK_EQ_INT(cron_parse("0 0 0 0 0", f, &cmd), 0);
    CHECK(cmd == NULL);
}

TEST(cron_spec_refuses_what_is_not_five_numbers)
{
    int f[5];
    const char *cmd;
    CHECK_EQ_INT(cron_parse("", f, &cmd), -1);
    CHECK_EQ_INT(cron_parse("* * * * * cmd", f, &cmd), -1); /* uWSGI's syntax is numbers */
    CHECK_EQ_INT(cron_parse("1 2 3 4 cmd", f, &cmd), -1);
    CHECK_EQ_INT(cron_parse("1 2 3 4 5x cmd", f, &cmd), -1);
    CHECK_EQ_INT(cron_parse("99999 2 3 4 5 cmd", f, &cmd), -1);
}

TEST(cron2_keys_and_defaults)
{
    int f[5];
    bool unique;
    const char *cmd, *err = NULL;
    CHECK_EQ_INT(cron2_parse("minute=-5,hour=3,unique=1 /bin/true x", f, &unique, &cmd, &err), 0);
    CHECK_EQ_INT(f[0], -5);
    CHECK_EQ_INT(f[1], 3);
    CHECK_EQ_INT(f[2], -1);
    CHECK_EQ_INT(f[3], -1);
    CHECK_EQ_INT(f[4], -1);
    CHECK(unique);
    CHECK_EQ_STR(cmd, "/bin/true x");
    /* No key=val list: every minute, the whole value is the command. */
    CHECK_EQ_INT(cron2_parse("echo a=b", f, &unique, &cmd, &err), 0);
    CHECK_EQ_STR(cmd, "echo a=b");
    CHECK_EQ_INT(f[0], -1);
    CHECK(!unique);
}

TEST(cron2_refuses_unknown_keys_and_bad_values)
{
    int f[5];
    bool unique;
    const char *cmd, *err = NULL;
    CHECK_EQ_INT(cron2_parse("minute=1,legion=x cmd", f, &unique, &cmd, &err), -1);
    CHECK(err && strstr(err, "key"));
    CHECK_EQ_INT(cron2_parse("minute=x cmd", f, &unique, &cmd, &err), -1);
    CHECK_EQ_INT(cron2_parse("minute=1", f, &unique, &cmd, &err), -1);    /* no command */
    CHECK_EQ_INT(cron2_parse("minute cmd=1", f, &unique, &cmd, &err), 0); /* a command */
}

TEST(timer_and_file_signal_specs)
{
    int sig, secs;
    char path[64];
    CHECK_EQ_INT(timer_spec_parse("17 5", &sig, &secs), 0);
    CHECK_EQ_INT(sig, 17);
    CHECK_EQ_INT(secs, 5);
    CHECK_EQ_INT(timer_spec_parse("256 5", &sig, &secs), -1);
    CHECK_EQ_INT(timer_spec_parse("1 0", &sig, &secs), -1);
    CHECK_EQ_INT(timer_spec_parse("1", &sig, &secs), -1);
    CHECK_EQ_INT(timer_spec_parse("1 2 3", &sig, &secs), -1);
    CHECK_EQ_INT(file_signal_parse("/tmp/a file 9", path, sizeof(path), &sig), 0);
    CHECK_EQ_STR(path, "/tmp/a file");
    CHECK_EQ_INT(sig, 9);
    CHECK_EQ_INT(file_signal_parse("/tmp/x", path, sizeof(path), &sig), -1);
    CHECK_EQ_INT(file_signal_parse("/tmp/x 300", path, sizeof(path), &sig), -1);
    CHECK_EQ_INT(file_signal_parse(" 3", path, sizeof(path), &sig), -1);
}

TEST(signal_targets_as_uwsgi_names_them)
{
    int n;
    CHECK_EQ_INT(signal_target_parse("", &n), TARGET_ANY);
    CHECK_EQ_INT(signal_target_parse("worker", &n), TARGET_ANY);
    CHECK_EQ_INT(signal_target_parse("worker0", &n), TARGET_ANY);
    CHECK_EQ_INT(signal_target_parse("workers", &n), TARGET_ALL);
    CHECK_EQ_INT(signal_target_parse("active-workers", &n), TARGET_ACTIVE);
    CHECK_EQ_INT(signal_target_parse("worker3", &n), TARGET_WORKER);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(signal_target_parse("worker12", &n), TARGET_WORKER);
    CHECK_EQ_INT(n, 12);
    CHECK_EQ_INT(signal_target_parse("workerx", &n), TARGET_UNKNOWN);
    CHECK_EQ_INT(signal_target_parse("spooler", &n), TARGET_ABSENT);
    CHECK_EQ_INT(signal_target_parse("mule", &n), TARGET_ABSENT);
    CHECK_EQ_INT(signal_target_parse("mule2", &n), TARGET_ABSENT);
    CHECK_EQ_INT(signal_target_parse("mules", &n), TARGET_ABSENT);
    CHECK_EQ_INT(signal_target_parse("farm_x", &n), TARGET_ABSENT);
    CHECK_EQ_INT(signal_target_parse("nonsense", &n), TARGET_UNKNOWN);
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
