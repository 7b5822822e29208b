/*
 * uWSGI's metrics (metrics.c): named signed 64-bit values that every process of an instance
 * shares, declared with `--metric name=...,type=...,initial_value=...` and updated by the app
 * with uwsgi.metric_inc/dec/mul/div/set/set_max/set_min (uwsgi_metrics.c), shown in the stats
 * JSON's "metrics" object and as Prometheus series (stats.c). Plain C.
 *
 * The definitions live in each process's private memory (made before the first fork, read-only
 * after); the values live in one shared mapping, updated with atomic instructions only, so a
 * worker killed in the middle of an update leaves every value whole (the old one or the new).
 */
#ifndef GYRE_METRICS_H
#define GYRE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* uWSGI's numbers for the types: the stats JSON shows them as "type". */
enum metric_type {
    METRIC_COUNTER = 0,
    METRIC_GAUGE = 1,
    METRIC_ABSOLUTE = 2,
    METRIC_ALIAS = 3, /* reads another metric's value (alias=NAME); never updated itself */
};

/* Where a metric's value comes from: the app (none), or a collector that the collector
 * thread runs every `freq` seconds, as uWSGI's metrics thread does. */
enum metric_collector {
    COLLECT_NONE,
    COLLECT_FILE,        /* the arg1n-th blank-separated number of the file arg1 */
    COLLECT_SUM,         /* the children's sum */
    COLLECT_ACCUMULATOR, /* its own value plus the children's sum */
    COLLECT_ADDER,       /* the children's sum plus arg1n */
    COLLECT_MULTIPLIER,  /* the children's sum times arg1n */
    COLLECT_AVG,         /* the children's average (integer division) */
    COLLECT_ZERO,        /* ptr and func: C pointers and functions of uWSGI's own, which gyre
                            has not: 0 (uWSGI's func collector without its symbol) */
};

#define METRIC_MAX_CHILDREN 32

/* One metric, as defined by its --metric. Strings point into the spec text it was parsed
 * from (kept for the process's lifetime). */
struct gy_metric {
    const char *name;
    const char *oid; /* "" when not given */
    enum metric_type type;
    enum metric_collector collector;
    int64_t initial_value;
    unsigned freq;     /* seconds between collections (1 when not given) */
    const char *arg1;  /* the file collector's path */
    int64_t arg1n;     /* the file collector's position; adder's and multiplier's operand */
    const char *alias; /* alias=NAME: the metric an alias reads (an earlier one) */
    const char *children_names; /* children=A;B: the collectors' inputs (earlier ones) */
    int slot;                   /* its value in the shared array; an alias: its target's */
    int children[METRIC_MAX_CHILDREN];
    int nchildren;
    int64_t next_collect; /* collector thread only: when it is due (seconds, monotonic) */
    int dir_fd;           /* --metrics-dir: its file, or -1 */
    int64_t written;      /* --metrics-dir: the value the file holds */
    bool file_failed;     /* collector=file: its file could not be opened (logged once) */
};

struct gy_metrics {
    struct gy_metric *m; /* in the order given */
    int n;
    char **texts; /* the parsed copies of the specs (the strings above point into them) */
    int ntexts;
    int64_t *values; /* shared mapping, n of them (an alias shares its target's) */
    bool enabled;    /* --metric or --enable-metrics: the stats JSON has "metrics" */
    bool collecting; /* a collector or --metrics-dir: the collector thread runs */
};

/* The instance's metrics: made by metrics_create before the workers are forked. */
extern struct gy_metrics METRICS;

/* Parse one --metric value alone (no references resolved) into m, pointing into *text, a copy
 * the caller frees. Returns 0, or -1 with err filled (what uWSGI refuses at start: no name, a
 * bad name or oid, an unknown collector, a key without a value). A key or collector gyre
 * accepts without honouring it fully is named in warn ("" when none). */
int metric_parse(const char *value, struct gy_metric *m, char **text, char *err, size_t errlen,
                 char *warn, size_t warnlen);

/* The metrics of cfg (--metric, in order; alias= and children= name earlier ones; a name given
 * again redefines that metric, as in uWSGI), their shared values set to their initial values,
 * and the --metrics-dir files opened (and read with --metrics-dir-restore). 0, or -1 with err
 * filled. */
int metrics_create(struct gy_metrics *ms, const struct gy_config *cfg, char *err, size_t errlen);
/* Everything metrics_create made, given back (ms is then empty). */
void metrics_destroy(struct gy_metrics *ms);

/* The index of the metric called name, or -1. */
int metrics_find(const struct gy_metrics *ms, const char *name);
int64_t metrics_value(const struct gy_metrics *ms, int i);
/* uwsgi.metric_get: 0 for an unknown name, as uWSGI. */
int64_t metrics_get(const struct gy_metrics *ms, const char *name);

enum metric_op {
    METRIC_SET,
    METRIC_INC,
    METRIC_DEC,
    METRIC_MUL,
    METRIC_DIV,
    METRIC_SET_MAX,
    METRIC_SET_MIN,
};
/* One update, atomic across the processes. -1 where uWSGI refuses it (uwsgi.metric_* then
 * answers None): an unknown name, an alias, a metric with a collector, a division by 0. The
 * arithmetic wraps around in two's complement (INT64_MIN / -1 is INT64_MIN), as uWSGI's C
 * arithmetic does on x86-64 (where that division kills the uWSGI worker with SIGFPE). */
int metrics_update(struct gy_metrics *ms, const char *name, enum metric_op op, int64_t v);

/* One pass of the collectors that are due at `now` (seconds, any monotonic clock), then the
 * --metrics-dir files of the values that changed. */
void metrics_collect(struct gy_metrics *ms, int64_t now);
/* A thread of the calling process that calls metrics_collect every second (only when
 * ms->collecting). 0, or -1 with errno set. */
int metrics_start_collector(struct gy_metrics *ms);

/* METRICS made from cfg and its collector started, in the master (or the only process) before
 * any fork; a failure is logged. 0 or -1. */
int metrics_setup(const struct gy_config *cfg);

#endif
