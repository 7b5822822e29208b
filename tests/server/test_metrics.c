/*
 * Unit tests of metrics.c, uWSGI's metrics store: --metric's keyvals parsed as uWSGI 2.0.21
 * parses them (and what it refuses, refused with a reason), aliases and children resolved, the
 * arithmetic of uwsgi.metric_* (wrap-around, division by 0 refused, set_min's test), values
 * shared with forked processes and whole after one is killed mid-update, the collectors and
 * --metrics-dir. Pure C: no Python.
 */
#include "metrics.h"
#include "testlib.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct parsed {
    struct gy_metric m;
    char *text;
    char err[256], warn[512];
    int rc;
};

static struct parsed parse(const char *spec)
{
    struct parsed p;
    p.rc = metric_parse(spec, &p.m, &p.text, p.err, sizeof(p.err), p.warn, sizeof(p.warn));
    return p;
}

/* A store made of the specs (NULL-terminated); -1 and err when metrics_create refuses. */
static int make(struct gy_metrics *ms, const char *const *specs, char *err, size_t errlen)
{
    metrics_destroy(ms); /* the previous store of the test, if any */
    static struct gy_config cfg;
    cfg = (struct gy_config){ 0 };
    for (int i = 0; specs[i]; i++)
        cfg.metrics[cfg.nmetrics++] = specs[i];
    return metrics_create(ms, &cfg, err, errlen);
}

TEST(a_bare_value_is_the_name_of_a_counter)
{
    struct parsed p = parse("requests.total");
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_STR(p.m.name, "requests.total");
    CHECK_EQ_INT(p.m.type, METRIC_COUNTER);
    CHECK_EQ_STR(p.m.oid, "");
    CHECK_EQ_INT(p.m.initial_value, 0);
    CHECK_EQ_STR(p.warn, "");
    free(p.text);
}

TEST(keyvals_give_type_initial_value_oid_and_freq)
{
    struct parsed p = parse("name=g,type=gauge,initial_value=-42,oid=1.3.6,freq=0");
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_STR(p.m.name, "g");
    CHECK_EQ_INT(p.m.type, METRIC_GAUGE);
    CHECK_EQ_INT(p.m.initial_value, -42);
    CHECK_EQ_STR(p.m.oid, "1.3.6");
    CHECK_EQ_INT(p.m.freq, 1); /* uWSGI: 0 is 1 */
    free(p.text);
    p = parse("name=a,type=absolute");
    CHECK_EQ_INT(p.m.type, METRIC_ABSOLUTE);
    free(p.text);
    p = parse("name=al,type=alias,alias=a");
    CHECK_EQ_INT(p.m.type, METRIC_ALIAS);
    CHECK_EQ_STR(p.m.alias, "a");
    free(p.text);
    p = parse("name=big,initial_value=9223372036854775807");
    CHECK_EQ_INT(p.rc, 0);
    CHECK(p.m.initial_value == INT64_MAX);
    free(p.text);
}

TEST(a_backslash_escapes_a_comma_in_a_value)
{
    struct parsed p = parse("name=f,collector=file,arg1=/tmp/a\\,b,arg1n=2");
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_STR(p.m.arg1, "/tmp/a,b");
    CHECK_EQ_INT(p.m.arg1n, 2);
    CHECK_EQ_INT(p.m.collector, COLLECT_FILE);
    free(p.text);
}

TEST(what_uwsgi_refuses_at_start_is_an_error_with_a_reason)
{
    static const struct {
        const char *spec, *err;
    } cases[] = {
        { "type=gauge", "you need to specify a metric name" },
        { "name=a/b", "invalid metric name: 'a/b'" },
        { "name=..", "invalid metric name: '..'" },
        { "na me", "invalid metric name" },
        { "name=x,oid=1.a", "invalid metric oid: '1.a'" },
        { "name=x,collector=nosuch", "unable to find metric collector \"nosuch\"" },
        { "name=x,type=alias", "metric alias \"x\" requires a mapping" },
        { "name=x,gauge", "invalid metric keyval syntax: 'gauge' has no value" },
        { "name=x,initial_value=12abc", "initial_value=12abc is not a signed 64-bit number" },
        { "name=x,initial_value=99999999999999999999", "not a signed 64-bit number" },
        { "name=x,freq=-1", "freq=-1 is not a number of seconds" },
        { "name=x,collector=file", "collector=file needs the file as arg1=PATH" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct parsed p = parse(cases[i].spec);
        TEST_CONTEXT("%s", cases[i].spec);
        CHECK_EQ_INT(p.rc, -1);
        CHECK(strstr(p.err, cases[i].err) != NULL);
        free(p.text);
    }
}

TEST(what_gyre_accepts_without_honouring_is_a_warning_naming_the_key)
{
    struct parsed p = parse("name=x,type=histogram");
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_INT(p.m.type, METRIC_COUNTER);
    CHECK(strstr(p.warn, "type=histogram") != NULL);
    free(p.text);
    p = parse("name=x,reset_after_push=1,colour=red");
    CHECK_EQ_INT(p.rc, 0);
    CHECK(strstr(p.warn, "reset_after_push") != NULL);
    CHECK(strstr(p.warn, "colour") != NULL);
    free(p.text);
    p = parse("name=x,collector=func,arg1=my_symbol");
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_INT(p.m.collector, COLLECT_ZERO);
    CHECK(strstr(p.warn, "collector=func") != NULL);
    free(p.text);
    p = parse("name=x,arg2=a,arg3=b,arg2n=1,arg3n=2");
    CHECK_EQ_STR(p.warn, ""); /* read by no collector, in uWSGI either */
    free(p.text);
}

TEST(aliases_read_their_target_and_children_must_come_first)
{
    struct gy_metrics ms = { 0 };
    char err[512];
    const char *ok[] = { "name=c,initial_value=5", "name=a,type=alias,alias=c", NULL };
    CHECK_EQ_INT(make(&ms, ok, err, sizeof(err)), 0);
    CHECK_EQ_INT(ms.n, 2);
    CHECK(ms.enabled);
    CHECK(!ms.collecting);
    CHECK_EQ_INT(metrics_get(&ms, "a"), 5);
    CHECK_EQ_INT(metrics_update(&ms, "c", METRIC_INC, 2), 0);
    CHECK_EQ_INT(metrics_get(&ms, "a"), 7);
    CHECK_EQ_INT(metrics_update(&ms, "a", METRIC_SET, 1), -1); /* an alias is read-only */
    CHECK_EQ_INT(metrics_get(&ms, "c"), 7);

    const char *later[] = { "name=a,type=alias,alias=c", "name=c", NULL };
    CHECK_EQ_INT(make(&ms, later, err, sizeof(err)), -1);
    CHECK(strstr(err, "unable to find metric \"c\"") != NULL);
    const char *kids[] = { "name=s,collector=sum,children=x;y", NULL };
    CHECK_EQ_INT(make(&ms, kids, err, sizeof(err)), -1);
    CHECK(strstr(err, "unable to find metric \"x\"") != NULL);
    metrics_destroy(&ms);
}

TEST(a_name_given_again_redefines_the_metric_in_its_place)
{
    struct gy_metrics ms = { 0 };
    char err[512];
    const char *specs[] = { "name=a", "name=b", "name=a,type=gauge,initial_value=3", NULL };
    CHECK_EQ_INT(make(&ms, specs, err, sizeof(err)), 0);
    CHECK_EQ_INT(ms.n, 2);
    CHECK_EQ_STR(ms.m[0].name, "a");
    CHECK_EQ_INT(ms.m[0].type, METRIC_GAUGE);
    CHECK_EQ_INT(metrics_get(&ms, "a"), 3);
    metrics_destroy(&ms);
}

TEST(no_metric_no_store_and_every_update_refused)
{
    struct gy_metrics ms = { 0 };
    char err[64];
    const char *none[] = { NULL };
    CHECK_EQ_INT(make(&ms, none, err, sizeof(err)), 0);
    CHECK(!ms.enabled);
    CHECK_EQ_INT(metrics_update(&ms, "x", METRIC_INC, 1), -1);
    CHECK_EQ_INT(metrics_get(&ms, "x"), 0);
    metrics_destroy(&ms);
}

TEST(arithmetic_as_uwsgi_and_wrapping_around_in_64_bits)
{
    struct gy_metrics ms = { 0 };
    char err[512];
    const char *specs[] = { "name=v", "name=m,type=gauge,initial_value=10", NULL };
    CHECK_EQ_INT(make(&ms, specs, err, sizeof(err)), 0);
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_INC, 1), 0);
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_INC, 41), 0);
    CHECK_EQ_INT(metrics_get(&ms, "v"), 42);
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_DEC, 50), 0);
    CHECK_EQ_INT(metrics_get(&ms, "v"), -8);
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_MUL, -3), 0);
    CHECK_EQ_INT(metrics_get(&ms, "v"), 24);
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_DIV, 5), 0);
    CHECK_EQ_INT(metrics_get(&ms, "v"), 4); /* C's division: towards 0 */
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_DIV, 0), -1);
    CHECK_EQ_INT(metrics_get(&ms, "v"), 4);
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_SET, INT64_MAX), 0);
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_INC, 1), 0);
    CHECK(metrics_get(&ms, "v") == INT64_MIN);
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_DIV, -1), 0); /* uWSGI: SIGFPE */
    CHECK(metrics_get(&ms, "v") == INT64_MIN);
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_SET, INT64_MAX), 0);
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_MUL, 2), 0);
    CHECK_EQ_INT(metrics_get(&ms, "v"), -2);
    CHECK_EQ_INT(metrics_update(&ms, "v", METRIC_DEC, INT64_MAX), 0);
    CHECK(metrics_get(&ms, "v") == INT64_MAX);
    CHECK_EQ_INT(metrics_update(&ms, "nope", METRIC_INC, 1), -1);
    CHECK_EQ_INT(metrics_get(&ms, "nope"), 0);

    /* set_max: only larger. set_min: smaller, and above the initial value (uWSGI's test). */
    CHECK_EQ_INT(metrics_update(&ms, "m", METRIC_SET_MAX, 5), 0);
    CHECK_EQ_INT(metrics_get(&ms, "m"), 10);
    CHECK_EQ_INT(metrics_update(&ms, "m", METRIC_SET_MAX, 50), 0);
    CHECK_EQ_INT(metrics_get(&ms, "m"), 50);
    CHECK_EQ_INT(metrics_update(&ms, "m", METRIC_SET_MIN, 20), 0);
    CHECK_EQ_INT(metrics_get(&ms, "m"), 20);
    CHECK_EQ_INT(metrics_update(&ms, "m", METRIC_SET_MIN, 10), 0); /* not above 10 */
    CHECK_EQ_INT(metrics_get(&ms, "m"), 20);
    CHECK_EQ_INT(metrics_update(&ms, "m", METRIC_SET_MIN, 30), 0); /* not smaller */
    CHECK_EQ_INT(metrics_get(&ms, "m"), 20);
    metrics_destroy(&ms);
}

TEST(a_collected_metric_is_the_collectors_alone)
{
    struct gy_metrics ms = { 0 };
    char err[512];
    const char *specs[] = {
        "name=a,initial_value=6",
        "name=b,initial_value=3",
        "name=sum,collector=sum,children=a;b",
        "name=avg,collector=avg,children=a;b",
        "name=add,collector=adder,children=a;b,arg1n=100",
        "name=mul,collector=multiplier,children=a;b,arg1n=-2",
        "name=acc,collector=accumulator,children=b,initial_value=1",
        "name=slow,collector=sum,children=a,freq=10",
        "name=zero,collector=ptr,initial_value=7",
        NULL,
    };
    CHECK_EQ_INT(make(&ms, specs, err, sizeof(err)), 0);
    CHECK(ms.collecting);
    CHECK_EQ_INT(metrics_update(&ms, "sum", METRIC_INC, 1), -1);
    metrics_collect(&ms, 100);
    CHECK_EQ_INT(metrics_get(&ms, "sum"), 9);
    CHECK_EQ_INT(metrics_get(&ms, "avg"), 4);
    CHECK_EQ_INT(metrics_get(&ms, "add"), 109);
    CHECK_EQ_INT(metrics_get(&ms, "mul"), -18);
    CHECK_EQ_INT(metrics_get(&ms, "acc"), 1 + 1 + 3); /* initial + its own + children */
    CHECK_EQ_INT(metrics_get(&ms, "slow"), 6);
    CHECK_EQ_INT(metrics_get(&ms, "zero"), 7);
    metrics_update(&ms, "a", METRIC_INC, 4);
    metrics_collect(&ms, 101);
    CHECK_EQ_INT(metrics_get(&ms, "sum"), 13);
    CHECK_EQ_INT(metrics_get(&ms, "acc"), 1 + 5 + 3);
    CHECK_EQ_INT(metrics_get(&ms, "slow"), 6); /* due at 110 */
    metrics_collect(&ms, 110);
    CHECK_EQ_INT(metrics_get(&ms, "slow"), 10);
    metrics_destroy(&ms);
}

TEST(the_file_collector_reads_the_nth_number)
{
    char path[] = "/tmp/gyre-test-metrics-XXXXXX";
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0))
        return;
    CHECK(write(fd, "  12 34\n\t56 x\n", 14) == 14);
    close(fd);
    char s0[128], s2[128], s9[128], sm[128];
    snprintf(s0, sizeof(s0), "name=f0,collector=file,arg1=%s", path);
    snprintf(s2, sizeof(s2), "name=f2,collector=file,arg1=%s,arg1n=2,initial_value=1", path);
    snprintf(s9, sizeof(s9), "name=f9,collector=file,arg1=%s,arg1n=9", path);
    snprintf(sm, sizeof(sm), "name=fm,collector=file,arg1=%s.missing", path);
    const char *specs[] = { s0, s2, s9, sm, NULL };
    struct gy_metrics ms = { 0 };
    char err[512];
    CHECK_EQ_INT(make(&ms, specs, err, sizeof(err)), 0);
    metrics_collect(&ms, 1);
    CHECK_EQ_INT(metrics_get(&ms, "f0"), 12);
    CHECK_EQ_INT(metrics_get(&ms, "f2"), 57);
    CHECK_EQ_INT(metrics_get(&ms, "f9"), 0);
    CHECK_EQ_INT(metrics_get(&ms, "fm"), 0);
    unlink(path);
    metrics_destroy(&ms);
}

TEST(metrics_dir_keeps_each_value_in_a_file_and_restores_it)
{
    char dir[] = "/tmp/gyre-test-metrics-dir-XXXXXX";
    if (!CHECK(mkdtemp(dir) != NULL))
        return;
    static struct gy_config cfg;
    cfg = (struct gy_config){ 0 };
    cfg.metrics[cfg.nmetrics++] = "name=hits,initial_value=3";
    cfg.metrics[cfg.nmetrics++] = "name=hits.alias,type=alias,alias=hits";
    cfg.metrics_dir = dir;
    struct gy_metrics ms = { 0 };
    char err[512], path[256], buf[64];
    CHECK_EQ_INT(metrics_create(&ms, &cfg, err, sizeof(err)), 0);
    CHECK(ms.collecting);
    metrics_update(&ms, "hits", METRIC_INC, 39);
    metrics_collect(&ms, 1);
    snprintf(path, sizeof(path), "%s/hits", dir);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    buf[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
    CHECK_EQ_STR(buf, "42\n");
    snprintf(path, sizeof(path), "%s/hits.alias", dir);
    CHECK(access(path, F_OK) == 0);

    cfg.metrics_dir_restore = true; /* the next start */
    metrics_destroy(&ms);
    CHECK_EQ_INT(metrics_create(&ms, &cfg, err, sizeof(err)), 0);
    CHECK_EQ_INT(metrics_get(&ms, "hits"), 42);

    cfg.metrics_dir = "/nonexistent/gyre-metrics";
    metrics_destroy(&ms);
    CHECK_EQ_INT(metrics_create(&ms, &cfg, err, sizeof(err)), -1);
    CHECK(strstr(err, "--metrics-dir /nonexistent/gyre-metrics") != NULL);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
    metrics_destroy(&ms);
}

TEST(processes_share_the_values_and_a_killed_one_corrupts_nothing)
{
    struct gy_metrics ms = { 0 };
    char err[512];
    const char *specs[] = { "name=n", "name=busy", NULL };
    CHECK_EQ_INT(make(&ms, specs, err, sizeof(err)), 0);
    enum { CHILDREN = 4, EACH = 20000 };
    pid_t pids[CHILDREN];
    for (int c = 0; c < CHILDREN; c++) {
        pids[c] = fork();
        if (pids[c] == 0) {
            for (int i = 0; i < EACH; i++)
                metrics_update(&ms, "n", i % 2 ? METRIC_INC : METRIC_SET_MAX, i % 2 ? 1 : -1);
            _exit(0);
        }
    }
    for (int c = 0; c < CHILDREN; c++)
        waitpid(pids[c], NULL, 0);
    CHECK_EQ_INT(metrics_get(&ms, "n"), CHILDREN * EACH / 2);

    /* One process updating in a loop, killed: the others go on, nothing is held. */
    pid_t busy = fork();
    if (busy == 0)
        for (;;)
            metrics_update(&ms, "busy", METRIC_MUL, 1), metrics_update(&ms, "busy", METRIC_INC, 1);
    for (int waited_ms = 0; metrics_get(&ms, "busy") < 1000 && waited_ms < 10000; waited_ms++)
        usleep(1000);
    CHECK(metrics_get(&ms, "busy") >= 1000);
    kill(busy, SIGKILL);
    waitpid(busy, NULL, 0);
    int64_t v = metrics_get(&ms, "busy");
    CHECK_EQ_INT(metrics_update(&ms, "busy", METRIC_INC, 1), 0);
    CHECK(metrics_get(&ms, "busy") == v + 1);
    metrics_destroy(&ms);
}

TEST(the_metric_options_check_each_metric_as_it_is_given)
{
    static struct gy_config cfg;
    cfg = (struct gy_config){ 0 };
    CHECK(options_set(&cfg, "metric", "name=a,type=gauge") == NULL);
    CHECK(cfg.enable_metrics);
    CHECK(options_set(&cfg, "metric", "name=b,type=alias,alias=a") == NULL);
    CHECK(options_set(&cfg, "metric", "name=s,collector=sum,children=a;b") == NULL);
    const char *err = options_set(&cfg, "metric", "name=c,type=alias,alias=later");
    CHECK(err && strstr(err, "unable to find metric \"later\""));
    err = options_set(&cfg, "metric", "name=d,collector=sum,children=a;zz");
    CHECK(err && strstr(err, "unable to find metric \"zz\""));
    err = options_set(&cfg, "metric", "name=bad/name");
    CHECK(err && strstr(err, "invalid metric name"));
    CHECK_EQ_INT(cfg.nmetrics, 3);
    /* accepted with a warning; refused under --strict (exit 1: "(strict mode)") */
    CHECK(options_set(&cfg, "metric", "name=w,reset_after_push=1") == NULL);
    CHECK(options_set(&cfg, "strict", NULL) == NULL);
    err = options_set(&cfg, "metric", "name=w2,collector=func,arg1=f");
    CHECK(err && strstr(err, "collector=func") && strstr(err, "(strict mode)"));
    CHECK(options_set(&cfg, "metrics-dir", "/tmp") == NULL);
    CHECK_EQ_STR(cfg.metrics_dir, "/tmp");
    CHECK(options_set(&cfg, "metric-dir-restore", NULL) == NULL);
    CHECK(cfg.metrics_dir_restore);
    CHECK(options_set(&cfg, "stats-no-metrics", NULL) == NULL);
    CHECK(cfg.stats_no_metrics);
    CHECK(options_set(&cfg, "metrics-no-cores", NULL) == NULL);
    cfg = (struct gy_config){ 0 };
    CHECK(options_set(&cfg, "enable-metrics", NULL) == NULL);
    CHECK(cfg.enable_metrics);
    CHECK_EQ_INT(cfg.nmetrics, 0);
}

int main(int argc, char **argv)
{
    return testlib_main(argc, argv);
}
