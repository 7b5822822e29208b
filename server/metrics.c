/*
 * uWSGI's metrics, the shared store (metrics.h): --metric parsed as uWSGI 2.0.21 parses it
 * (core/metrics.c), the values in a shared mapping made before the workers are forked, the
 * updates of uwsgi.metric_* as single atomic instructions (or compare-and-swap loops), the
 * collectors and --metrics-dir run by a thread of the master (or of the only process).
 *
 * Why atomics and no lock: uWSGI takes a process-shared rwlock around each update; a worker
 * killed while holding it would stop every other one. A compare-and-swap either happened or
 * not, so a killed worker leaves nothing half-done and no one waiting.
 *
 * Depends on: log.c (server/README)
 */
#include "metrics.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct gy_metrics METRICS;

/* ---- parsing one --metric ------------------------------------------------------------------ */

/* uWSGI's allowed characters (uwsgi_validate_metric_name): a name is also a file name in
 * --metrics-dir, so no '/' and no "..". */
static bool valid_name(const char *s)
{
    if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              *s == '.' || *s == '-' || *s == '_'))
            return false;
    return true;
}

static bool valid_oid(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || *s == '.'))
            return false;
    return true;
}

/* A whole signed 64-bit number (uWSGI reads it with strtoll and takes garbage as 0: gyre says
 * what is wrong instead). */
static bool parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

static const struct {
    const char *name;
    enum metric_collector c;
} COLLECTORS[] = {
    { "file", COLLECT_FILE },
    { "sum", COLLECT_SUM },
    { "accumulator", COLLECT_ACCUMULATOR },
    { "adder", COLLECT_ADDER },
    { "multiplier", COLLECT_MULTIPLIER },
    { "avg", COLLECT_AVG },
    { "ptr", COLLECT_ZERO },
    { "func", COLLECT_ZERO },
};

static void add_warning(char *warn, size_t warnlen, const char *fmt, const char *what)
{
    size_t used = strlen(warn);
    if (used + 2 >= warnlen)
        return;
    if (used)
        warn[used++] = ';', warn[used++] = ' ', warn[used] = '\0';
    snprintf(warn + used, warnlen - used, fmt, what);
}

/* Split text in place at unescaped `sep`, removing the backslashes of escapes (uWSGI's
 * uwsgi_kvlist_parse). Returns the next item's start, or NULL at the end. */
static char *next_item(char **cursor, char sep)
{
    char *in = *cursor, *out = in, *start = in;
    if (!in)
        return NULL;
    for (; *in; in++) {
        if (*in == '\\' && in[1]) {
            *out++ = *++in;
        } else if (*in == sep) {
            *out = '\0';
            *cursor = in + 1;
            return start;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    *cursor = NULL;
    return start;
}

static int set_key(struct gy_metric *m, const char *key, const char *v, char *err, size_t errlen,
                   char *warn, size_t warnlen)
{
    if (strcmp(key, "name") == 0) {
        m->name = v;
    } else if (strcmp(key, "oid") == 0) {
        m->oid = v;
    } else if (strcmp(key, "type") == 0) {
        if (strcmp(v, "counter") == 0)
            m->type = METRIC_COUNTER;
        else if (strcmp(v, "gauge") == 0)
            m->type = METRIC_GAUGE;
        else if (strcmp(v, "absolute") == 0)
            m->type = METRIC_ABSOLUTE;
        else if (strcmp(v, "alias") == 0)
            m->type = METRIC_ALIAS;
        else
            add_warning(warn, warnlen, "type=%s is no metric type: a counter, as uWSGI takes it",
                        v);
    } else if (strcmp(key, "initial_value") == 0 || strcmp(key, "arg1n") == 0) {
        int64_t *field = key[0] == 'i' ? &m->initial_value : &m->arg1n;
        if (!parse_i64(v, field)) {
            snprintf(err, errlen, "%s=%s is not a signed 64-bit number", key, v);
            return -1;
        }
    } else if (strcmp(key, "freq") == 0) {
        int64_t f;
        if (!parse_i64(v, &f) || f < 0 || f > UINT_MAX) {
            snprintf(err, errlen, "freq=%s is not a number of seconds", v);
            return -1;
        }
        m->freq = f ? (unsigned)f : 1; /* uWSGI: 0 is 1 */
    } else if (strcmp(key, "collector") == 0) {
        size_t i;
        for (i = 0; i < sizeof(COLLECTORS) / sizeof(COLLECTORS[0]); i++)
            if (strcmp(COLLECTORS[i].name, v) == 0)
                break;
        if (i == sizeof(COLLECTORS) / sizeof(COLLECTORS[0])) {
            snprintf(err, errlen, "unable to find metric collector \"%s\"", v);
            return -1;
        }
        m->collector = COLLECTORS[i].c;
        if (m->collector == COLLECT_ZERO)
            add_warning(warn, warnlen,
                        "collector=%s reads a C pointer or function of uWSGI's own, which gyre "
                        "has not: the metric stays at its initial_value",
                        v);
    } else if (strcmp(key, "arg1") == 0) {
        m->arg1 = v;
    } else if (strcmp(key, "children") == 0) {
        m->children_names = v;
    } else if (strcmp(key, "alias") == 0) {
        m->alias = v;
    } else if (strcmp(key, "arg2") == 0 || strcmp(key, "arg3") == 0 || strcmp(key, "arg2n") == 0 ||
               strcmp(key, "arg3n") == 0) {
        /* Read by no collector uWSGI has (nor gyre): kept by uWSGI, unused. */
    } else if (strcmp(key, "reset_after_push") == 0) {
        add_warning(warn, warnlen,
                    "%s: gyre pushes metrics nowhere (no carbon, statsd...): ignored", key);
    } else {
        add_warning(warn, warnlen, "%s: no key of --metric (uWSGI ignores it too)", key);
    }
    return 0;
}

int metric_parse(const char *value, struct gy_metric *m, char **text, char *err, size_t errlen,
                 char *warn, size_t warnlen)
{
    *m = (struct gy_metric){ .oid = "", .freq = 1, .slot = -1, .dir_fd = -1 };
    warn[0] = '\0';
    *text = strdup(value);
    if (!*text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!strchr(*text, '=')) {
        m->name = *text; /* uWSGI: a bare value is the name of a counter */
    } else {
        char *cursor = *text, *item;
        while ((item = next_item(&cursor, ','))) {
            if (!*item)
                continue;
            char *eq = strchr(item, '=');
            if (!eq) {
                snprintf(err, errlen, "invalid metric keyval syntax: '%s' has no value", item);
                return -1;
            }
            *eq = '\0';
            if (set_key(m, item, eq + 1, err, errlen, warn, warnlen) < 0)
                return -1;
        }
    }
    if (!m->name) {
        snprintf(err, errlen, "you need to specify a metric name");
        return -1;
    }
    if (!valid_name(m->name)) {
        snprintf(err, errlen, "invalid metric name: '%s' (letters, digits, '.', '-', '_')",
                 m->name);
        return -1;
    }
    if (!valid_oid(m->oid)) {
        snprintf(err, errlen, "invalid metric oid: '%s' (digits and dots)", m->oid);
        return -1;
    }
    if (m->type == METRIC_ALIAS && !m->alias) {
        snprintf(err, errlen, "metric alias \"%s\" requires a mapping (alias=NAME)", m->name);
        return -1;
    }
    if (m->collector == COLLECT_FILE && !m->arg1) {
        snprintf(err, errlen, "collector=file needs the file as arg1=PATH");
        return -1;
    }
    return 0;
}

/* ---- creating the store -------------------------------------------------------------------- */

/* The children of m (names separated by ';'), each an earlier metric. */
static int resolve_children(struct gy_metrics *ms, struct gy_metric *m, char *err, size_t errlen)
{
    m->nchildren = 0;
    if (!m->children_names)
        return 0;
    char *list = strdup(m->children_names), *save = NULL;
    if (!list) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (char *p = strtok_r(list, ";", &save); p && rc == 0; p = strtok_r(NULL, ";", &save)) {
        int c = metrics_find(ms, p);
        if (c < 0) {
            snprintf(err, errlen, "unable to find metric \"%s\" (children= names earlier metrics)",
                     p);
            rc = -1;
        } else if (m->nchildren == METRIC_MAX_CHILDREN) {
            snprintf(err, errlen, "more than %d children", METRIC_MAX_CHILDREN);
            rc = -1;
        } else {
            m->children[m->nchildren++] = c;
        }
    }
    free(list);
    return rc;
}

static int define_all(struct gy_metrics *ms, const struct gy_config *cfg, char *err, size_t errlen)
{
    for (int i = 0; i < cfg->nmetrics; i++) {
        struct gy_metric m;
        char *text, e[256], warn[512];
        int rc = metric_parse(cfg->metrics[i], &m, &text, e, sizeof(e), warn, sizeof(warn));
        ms->texts[i] = text; /* freed by metrics_destroy, also on an error */
        if (rc < 0) {
            snprintf(err, errlen, "--metric %s: %s", cfg->metrics[i], e);
            return -1;
        }
        int at = metrics_find(ms, m.name);
        bool is_new = at < 0;
        if (is_new)
            at = ms->n;
        m.slot = at; /* a redefinition keeps its place and value, as in uWSGI */
        if (m.alias) {
            int target = metrics_find(ms, m.alias);
            if (target < 0 || target == at) {
                snprintf(err, errlen, "--metric %s: unable to find metric \"%s\"", cfg->metrics[i],
                         m.alias);
                return -1;
            }
            /* uWSGI maps the value only for type=alias; alias= alone does nothing. */
            if (m.type == METRIC_ALIAS)
                m.slot = ms->m[target].slot;
        }
        ms->m[at] = m;
        if (is_new)
            ms->n++;
        if (resolve_children(ms, &ms->m[at], e, sizeof(e)) < 0) {
            snprintf(err, errlen, "--metric %s: %s", cfg->metrics[i], e);
            return -1;
        }
    }
    return 0;
}

static int open_dir_files(struct gy_metrics *ms, const struct gy_config *cfg, char *err,
                          size_t errlen)
{
    int dfd = open(cfg->metrics_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, errlen, "--metrics-dir %s: %s", cfg->metrics_dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < ms->n; i++) {
        struct gy_metric *m = &ms->m[i];
        m->dir_fd = openat(dfd, m->name, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        if (m->dir_fd < 0) {
            snprintf(err, errlen, "--metrics-dir %s/%s: %s", cfg->metrics_dir, m->name,
                     strerror(errno));
            close(dfd);
            return -1;
        }
        m->written = INT64_MIN; /* not known: written at the first pass */
        if (cfg->metrics_dir_restore && m->type != METRIC_ALIAS && m->collector == COLLECT_NONE) {
            char buf[64];
            ssize_t n = pread(m->dir_fd, buf, sizeof(buf) - 1, 0);
            buf[n > 0 ? n : 0] = '\0';
            char *end;
            errno = 0;
            long long v = strtoll(buf, &end, 10);
            if (n > 0 && end != buf && !errno)
                ms->values[m->slot] = v;
        }
    }
    close(dfd);
    return 0;
}

void metrics_destroy(struct gy_metrics *ms)
{
    for (int i = 0; i < ms->n; i++)
        if (ms->m[i].dir_fd >= 0)
            close(ms->m[i].dir_fd);
    for (int i = 0; ms->texts && i < ms->ntexts; i++)
        free(ms->texts[i]);
    free(ms->texts);
    free(ms->m);
    if (ms->values)
        munmap(ms->values, (size_t)ms->n * sizeof(int64_t));
    *ms = (struct gy_metrics){ 0 };
}

static int create(struct gy_metrics *ms, const struct gy_config *cfg, char *err, size_t errlen)
{
    *ms = (struct gy_metrics){ .enabled = cfg->enable_metrics || cfg->nmetrics > 0 };
    if (cfg->nmetrics == 0)
        return 0;
    ms->m = calloc((size_t)cfg->nmetrics, sizeof(*ms->m));
    ms->texts = calloc((size_t)cfg->nmetrics, sizeof(*ms->texts));
    if (!ms->m || !ms->texts) {
        snprintf(err, errlen, "metrics: out of memory");
        return -1;
    }
    ms->ntexts = cfg->nmetrics;
    if (define_all(ms, cfg, err, errlen) < 0)
        return -1;
    size_t size = (size_t)ms->n * sizeof(int64_t);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "metrics: shared memory: %s", strerror(errno));
        return -1;
    }
    ms->values = p;
    /* In order, as uWSGI: an alias with an initial_value sets its target's. */
    for (int i = 0; i < ms->n; i++) {
        struct gy_metric *m = &ms->m[i];
        if (m->initial_value)
            ms->values[m->slot] = m->initial_value;
        if (m->collector != COLLECT_NONE)
            ms->collecting = true;
    }
    if (cfg->metrics_dir) {
        ms->collecting = true;
        if (open_dir_files(ms, cfg, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int metrics_create(struct gy_metrics *ms, const struct gy_config *cfg, char *err, size_t errlen)
{
    if (create(ms, cfg, err, errlen) == 0)
        return 0;
    metrics_destroy(ms);
    return -1;
}

/* ---- reading and updating ------------------------------------------------------------------ */

int metrics_find(const struct gy_metrics *ms, const char *name)
{
    for (int i = 0; i < ms->n; i++)
        if (strcmp(ms->m[i].name, name) == 0)
            return i;
    return -1;
}

int64_t metrics_value(const struct gy_metrics *ms, int i)
{
    return __atomic_load_n(&ms->values[ms->m[i].slot], __ATOMIC_RELAXED);
}

int64_t metrics_get(const struct gy_metrics *ms, const char *name)
{
    int i = metrics_find(ms, name);
    return i < 0 ? 0 : metrics_value(ms, i);
}

/* The new value of an update of old by v; false when it leaves old as it is. Two's complement
 * wrap-around, computed in unsigned arithmetic (signed overflow is undefined in C). */
static bool apply(enum metric_op op, int64_t old, int64_t v, int64_t initial, int64_t *out)
{
    switch (op) {
    case METRIC_SET:
        *out = v;
        return true;
    case METRIC_INC:
        *out = (int64_t)((uint64_t)old + (uint64_t)v);
        return true;
    case METRIC_DEC:
        *out = (int64_t)((uint64_t)old - (uint64_t)v);
        return true;
    case METRIC_MUL:
        *out = (int64_t)((uint64_t)old * (uint64_t)v);
        return true;
    case METRIC_DIV:
        *out = v == -1 ? (int64_t)(0 - (uint64_t)old) : old / v;
        return true;
    case METRIC_SET_MAX:
        *out = v;
        return v > old;
    case METRIC_SET_MIN:
        /* uWSGI's test, word for word: values not above the initial value never count. */
        *out = v;
        return v > initial && v < old;
    }
    return false;
}

int metrics_update(struct gy_metrics *ms, const char *name, enum metric_op op, int64_t v)
{
    if (op == METRIC_DIV && v == 0)
        return -1;
    int i = metrics_find(ms, name);
    if (i < 0 || ms->m[i].type == METRIC_ALIAS || ms->m[i].collector != COLLECT_NONE)
        return -1;
    int64_t *p = &ms->values[ms->m[i].slot];
    int64_t old = __atomic_load_n(p, __ATOMIC_RELAXED), new;
    do {
        if (!apply(op, old, v, ms->m[i].initial_value, &new))
            return 0;
    } while (!__atomic_compare_exchange_n(p, &old, new, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    return 0;
}

/* ---- collectors ---------------------------------------------------------------------------- */

/* The arg1n-th (from 0) blank-separated number of the file (its first 4 KiB), or 0. A file
 * that cannot be opened is logged once (uWSGI logs it every second), again after it was back. */
static int64_t collect_file(struct gy_metric *m)
{
    char buf[4097];
    int fd = open(m->arg1, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (!m->file_failed)
            log_errno("metric %s: collector=file: open(%s): counted as 0", m->name, m->arg1);
        m->file_failed = true;
        return 0;
    }
    m->file_failed = false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *blanks = " \t\r\n";
    char *p = buf + strspn(buf, blanks);
    for (int64_t pos = 0; *p && pos < m->arg1n; pos++) {
        p += strcspn(p, blanks);
        p += strspn(p, blanks);
    }
    return *p ? (int64_t)strtoll(p, NULL, 10) : 0;
}

static int64_t collect(const struct gy_metrics *ms, struct gy_metric *m)
{
    uint64_t sum = 0;
    for (int c = 0; c < m->nchildren; c++)
        sum += (uint64_t)metrics_value(ms, m->children[c]);
    switch (m->collector) {
    case COLLECT_FILE:
        return collect_file(m);
    case COLLECT_SUM:
        return (int64_t)sum;
    case COLLECT_ACCUMULATOR:
        return (int64_t)(sum + (uint64_t)__atomic_load_n(&ms->values[m->slot], __ATOMIC_RELAXED));
    case COLLECT_ADDER:
        return (int64_t)(sum + (uint64_t)m->arg1n);
    case COLLECT_MULTIPLIER:
        return (int64_t)(sum * (uint64_t)m->arg1n);
    case COLLECT_AVG:
        return m->nchildren ? (int64_t)sum / m->nchildren : 0;
    case COLLECT_NONE:
    case COLLECT_ZERO:
        break;
    }
    return 0;
}

static void write_dir_file(struct gy_metric *m, int64_t v)
{
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%lld\n", (long long)v);
    /* A failed write is tried again at the next pass (written stays the old value). */
    if (pwrite(m->dir_fd, buf, (size_t)len, 0) == len && ftruncate(m->dir_fd, len) == 0)
        m->written = v;
}

void metrics_collect(struct gy_metrics *ms, int64_t now)
{
    for (int i = 0; i < ms->n; i++) {
        struct gy_metric *m = &ms->m[i];
        if (m->collector == COLLECT_NONE || m->type == METRIC_ALIAS || now < m->next_collect)
            continue;
        /* uWSGI adds initial_value at every pass, to an accumulator's own value too. */
        int64_t v = (int64_t)((uint64_t)m->initial_value + (uint64_t)collect(ms, m));
        __atomic_store_n(&ms->values[m->slot], v, __ATOMIC_RELAXED);
        m->next_collect = now + m->freq;
    }
    for (int i = 0; i < ms->n; i++) {
        struct gy_metric *m = &ms->m[i];
        int64_t v = metrics_value(ms, i);
        if (m->dir_fd >= 0 && v != m->written)
            write_dir_file(m, v);
    }
}

static void *collector_thread(void *arg)
{
    struct gy_metrics *ms = arg;
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        metrics_collect(ms, (int64_t)ts.tv_sec);
        nanosleep(&(struct timespec){ .tv_sec = 1 }, NULL);
    }
    return NULL;
}

int metrics_start_collector(struct gy_metrics *ms)
{
    if (!ms->collecting)
        return 0;
    pthread_t t;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the main thread's */
    int rc = pthread_create(&t, NULL, collector_thread, ms);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    pthread_detach(t);
    return 0;
}

int metrics_setup(const struct gy_config *cfg)
{
    char err[512];
    if (metrics_create(&METRICS, cfg, err, sizeof(err)) < 0) {
        log_msg("%s", err);
        return -1;
    }
    if (metrics_start_collector(&METRICS) < 0) {
        log_errno("metrics: cannot start the collector thread");
        return -1;
    }
    if (METRICS.n)
        log_msg("metrics: %d defined%s", METRICS.n,
                METRICS.collecting ? ", collected every second" : "");
    return 0;
}
