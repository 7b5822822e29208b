/*
 * --stats and --metrics-http: what the scoreboard says, for uwsgitop and for Prometheus.
 *
 * Served by the process that owns the scoreboard's view of every worker: the master, or the
 * only process. Each connection gets one document and is closed, as uWSGI's stats server does
 * (--stats-http and --metrics-http wrap it in an HTTP/1.0 response). The documents are a few
 * KiB, built in memory and written at once.
 *
 * Depends on: cache.c, listen.c, log.c, metrics.c, scoreboard.c, server.c (server/README)
 */
#include "cache.h"
#include "log.h"
#include "listen.h"
#include "metrics.h"
#include "process.h"
#include "proto.h"
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---- listen queues ------------------------------------------------------------------------ */

/* Connections waiting in a unix listening socket's backlog: sock_diag's UNIX_DIAG_RQLEN. */
static int unix_queue(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return -1;
    struct {
        struct nlmsghdr nlh;
        struct unix_diag_req req;
    } rq = {
        .nlh = { .nlmsg_len = sizeof(rq),
                 .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                 .nlmsg_flags = NLM_F_REQUEST },
        .req = { .sdiag_family = AF_UNIX,
                 .udiag_states = -1U,
                 .udiag_ino = (unsigned)st.st_ino,
                 .udiag_show = UDIAG_SHOW_RQLEN,
                 .udiag_cookie = { ~0U, ~0U } },
    };
    int queue = -1;
    char buf[1024];
    if (send(nl, &rq, sizeof(rq), 0) == (ssize_t)sizeof(rq)) {
        ssize_t n = recv(nl, buf, sizeof(buf), 0);
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (n > 0 && NLMSG_OK(h, (size_t)n) && h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
            struct unix_diag_msg *m = NLMSG_DATA(h);
            int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
            for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len))
                if (a->rta_type == UNIX_DIAG_RQLEN) {
                    struct unix_diag_rqlen *q = RTA_DATA(a);
                    queue = (int)q->udiag_rqueue;
                }
        }
    }
    close(nl);
    return queue;
}

/* Connections waiting to be accepted on a listening socket (process.h). */
int listen_queue(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return 0;
    if (ss.ss_family == AF_UNIX) {
        int q = unix_queue(fd);
        return q < 0 ? 0 : q;
    }
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0)
        return (int)ti.tcpi_unacked; /* for a listening socket: its accept queue */
    return 0;
}

/* ---- per worker --------------------------------------------------------------------------- */

/* What a worker's requests hold (struct sb_memory): refreshed once a second by the worker. */
static json_t *memory_json(const volatile struct sb_memory *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "busy_cores", json_integer((json_int_t)m->busy));
    json_object_set_new(o, "parked_cores", json_integer((json_int_t)m->parked));
    json_object_set_new(o, "greenlets", json_integer((json_int_t)m->greenlets));
    json_object_set_new(o, "frame_stack_bytes", json_integer((json_int_t)m->frame_stack));
    json_object_set_new(o, "greenlet_stack_bytes", json_integer((json_int_t)m->greenlet_stack));
    json_object_set_new(o, "connections", json_integer((json_int_t)m->conns));
    json_object_set_new(o, "connection_alloc_bytes", json_integer((json_int_t)m->conn_alloc));
    json_object_set_new(o, "connection_buffered_bytes", json_integer((json_int_t)m->conn_buffered));
    json_object_set_new(o, "environ_bytes", json_integer((json_int_t)m->environ));
    return o;
}

static void proc_mem(pid_t pid, unsigned long long *rss, unsigned long long *vsz)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long long pages_vsz = 0, pages_rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &pages_vsz, &pages_rss) != 2)
            pages_vsz = pages_rss = 0;
        fclose(f);
    }
    unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
    *rss = pages_rss * page;
    *vsz = pages_vsz * page;
}

static bool slot_live(const struct sb_worker *w)
{
    return w->id > 0 && w->pid > 0 && kill(w->pid, 0) == 0;
}

/* ---- the JSON document (uWSGI's shape) ---------------------------------------------------- */

/* uWSGI's "caches": one object per cache, its layout and counters (cache.c). */
static json_t *caches_json(void)
{
    json_t *list = json_array();
    for (int i = 0; i < caches_count(); i++) {
        const struct cache *c = caches_at(i);
        const struct gy_cache_conf *cc = c->conf;
        struct cache_stats st;
        cache_get_stats(c, &st);
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(cc->name));
        json_object_set_new(o, "hash", json_string("djb33x"));
        json_object_set_new(o, "hashsize", json_integer((json_int_t)cc->hashsize));
        json_object_set_new(o, "keysize", json_integer((json_int_t)cc->keysize));
        json_object_set_new(o, "max_items", json_integer((json_int_t)cc->max_items));
        json_object_set_new(o, "blocks", json_integer((json_int_t)cc->blocks));
        json_object_set_new(o, "blocksize", json_integer((json_int_t)cc->blocksize));
        json_object_set_new(o, "items", json_integer((json_int_t)st.items));
        json_object_set_new(o, "hits", json_integer((json_int_t)st.hits));
        json_object_set_new(o, "miss", json_integer((json_int_t)st.miss));
        json_object_set_new(o, "full", json_integer((json_int_t)st.full));
        json_object_set_new(o, "last_modified_at", json_integer((json_int_t)st.last_modified_at));
        json_array_append_new(list, o);
    }
    return list;
}

/* uWSGI's "metrics" object: each metric by name, in the order defined, as
 * {"type": uWSGI's number, "oid": "" or the oid, "value": the value}; an alias has its own
 * type (3) and oid and its target's value. */
static json_t *metrics_json(void)
{
    json_t *o = json_object();
    for (int i = 0; i < METRICS.n; i++) {
        const struct gy_metric *m = &METRICS.m[i];
        json_t *v = json_object();
        json_object_set_new(v, "type", json_integer(m->type));
        json_object_set_new(v, "oid", json_string(m->oid));
        json_object_set_new(v, "value", json_integer((json_int_t)metrics_value(&METRICS, i)));
        json_object_set_new(o, m->name, v);
    }
    return o;
}

static char *stats_json(void)
{
    json_t *doc = json_object();
    char cwd[4096];
    json_object_set_new(doc, "version", json_string(GYRE_VERSION));
    json_object_set_new(doc, "pid", json_integer(getpid()));
    json_object_set_new(doc, "uid", json_integer(getuid()));
    json_object_set_new(doc, "gid", json_integer(getgid()));
    json_object_set_new(doc, "cwd", json_string(getcwd(cwd, sizeof(cwd)) ? cwd : ""));

    json_t *sockets = json_array();
    int total_queue = 0;
    for (int i = 0; i < S.nlisteners; i++) {
        const struct gy_listener *l = &S.listeners[i];
        int q = l->fd >= 0 ? listen_queue(l->fd) : 0;
        total_queue += q;
        json_t *s = json_object();
        json_object_set_new(s, "name", json_string(l->name));
        json_object_set_new(s, "proto", json_string(l->proto->name));
        json_object_set_new(s, "queue", json_integer(q));
        json_object_set_new(s, "max_queue", json_integer(S.cfg->listen_backlog));
        json_object_set_new(s, "shared", json_integer(0));
        json_object_set_new(s, "can_offload", json_integer(0));
        json_array_append_new(sockets, s);
    }
    json_object_set_new(doc, "listen_queue", json_integer(total_queue));
    json_object_set_new(doc, "listen_queue_errors", json_integer(0));
    json_object_set_new(doc, "load", json_integer(total_queue));
    json_object_set_new(doc, "signal_queue", json_integer(0));
    if (METRICS.enabled && !S.cfg->stats_no_metrics)
        json_object_set_new(doc, "metrics", metrics_json()); /* before "sockets", as uWSGI */
    json_object_set_new(doc, "sockets", sockets);

    json_t *workers = json_array();
    double now = (double)time(NULL);
    for (int i = 0; i < S.board.nslots; i++) {
        const struct sb_worker *w = scoreboard_slot(&S.board, i);
        if (!slot_live(w))
            continue;
        unsigned long long rss, vsz;
        proc_mem(w->pid, &rss, &vsz);
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(w->id));
        json_object_set_new(o, "pid", json_integer(w->pid));
        json_object_set_new(o, "accepting", json_integer(w->accepting));
        json_object_set_new(o, "requests", json_integer((json_int_t)w->requests));
        json_object_set_new(o, "delta_requests", json_integer(0));
        json_object_set_new(o, "exceptions", json_integer((json_int_t)w->exceptions));
        json_object_set_new(o, "harakiri_count", json_integer((json_int_t)w->harakiri));
        json_object_set_new(o, "signals", json_integer(0));
        json_object_set_new(o, "signal_queue", json_integer(0));
        json_object_set_new(o, "status", json_string(w->busy ? "busy" : "idle"));
        json_object_set_new(o, "rss", json_integer((json_int_t)rss));
        json_object_set_new(o, "vsz", json_integer((json_int_t)vsz));
        json_object_set_new(o, "running_time", json_integer((json_int_t)w->rt_us));
        json_object_set_new(o, "last_spawn", json_integer((json_int_t)w->started));
        json_object_set_new(o, "respawn_count", json_integer((json_int_t)w->respawns));
        json_object_set_new(o, "tx", json_integer((json_int_t)w->tx));
        json_object_set_new(o, "avg_rt",
                            json_integer(w->requests ? (json_int_t)(w->rt_us / w->requests) : 0));
        json_object_set_new(o, "uptime", json_integer((json_int_t)(now - w->started)));
        json_object_set_new(o, "apps", json_array());
        json_object_set_new(o, "memory", memory_json(&w->mem)); /* gyre's own */
        json_t *cores = json_array();
        for (int c = 0; c < S.board.ncores; c++) {
            const struct sb_core *sc = &w->cores[c];
            json_t *co = json_object();
            json_object_set_new(co, "id", json_integer(c));
            json_object_set_new(co, "requests", json_integer((json_int_t)sc->requests));
            json_object_set_new(co, "static_requests", json_integer(0));
            json_object_set_new(co, "routed_requests", json_integer(0));
            json_object_set_new(co, "offloaded_requests", json_integer(0));
            json_object_set_new(co, "write_errors", json_integer(0));
            json_object_set_new(co, "read_errors", json_integer(0));
            json_object_set_new(co, "in_request", json_integer(sc->activity != CORE_IDLE));
            /* gyre's own: what the core is waiting on */
            json_object_set_new(co, "waiting",
                                json_string(core_activity_name((enum core_activity)sc->activity)));
            json_object_set_new(co, "kind",
                                json_string(S.cfg->thread_cores ? "thread" : "greenlet"));
            json_object_set_new(co, "vars", json_array());
            json_object_set_new(co, "req_info", json_object());
            json_array_append_new(cores, co);
        }
        json_object_set_new(o, "cores", cores);
        json_array_append_new(workers, o);
    }
    json_object_set_new(doc, "workers", workers);
    if (caches_count()) /* as uWSGI: the key only when there is a cache */
        json_object_set_new(doc, "caches", caches_json());
    char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    return text;
}

/* ---- Prometheus text format --------------------------------------------------------------- */

struct text {
    char *p;
    size_t len, cap;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 16384;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *np = realloc(t->p, cap);
        if (!np)
            return;
        t->p = np;
        t->cap = cap;
    }
}

/* A cache name as a label value: \\ and " escaped, other control bytes dropped. */
static const char *label(const char *s, char *buf, size_t len)
{
    size_t o = 0;
    for (; *s && o + 3 < len; s++) {
        if (*s == '\\' || *s == '"')
            buf[o++] = '\\';
        if ((unsigned char)*s >= 0x20)
            buf[o++] = *s;
    }
    buf[o] = '\0';
    return buf;
}

static void caches_metrics(struct text *t)
{
    static const struct {
        const char *name, *type, *help;
    } series[] = {
        { "gyre_cache_items", "gauge", "Items in a uwsgi cache." },
        { "gyre_cache_hits_total", "counter",
          "uwsgi.cache_get/cache_num calls that found the key." },
        { "gyre_cache_misses_total", "counter", "uwsgi.cache_get/cache_num calls that did not." },
        { "gyre_cache_full_total", "counter",
          "Times a cache was full (a key refused or, with purge_lru, one evicted)." },
    };
    for (size_t k = 0; caches_count() && k < sizeof(series) / sizeof(series[0]); k++) {
        add(t, "# HELP %s %s\n# TYPE %s %s\n", series[k].name, series[k].help, series[k].name,
            series[k].type);
        for (int i = 0; i < caches_count(); i++) {
            struct cache_stats st;
            cache_get_stats(caches_at(i), &st);
            uint64_t v[] = { st.items, st.hits, st.miss, st.full };
            char name[256];
            add(t, "%s{cache=\"%s\"} %llu\n", series[k].name,
                label(caches_at(i)->conf->name, name, sizeof(name)), (unsigned long long)v[k]);
        }
    }
}

/* A metric's name as a Prometheus one: gyre_metric_ and the name with what Prometheus does
 * not allow in a name ('.', '-') as '_'. */
static void prometheus_name(const char *name, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "gyre_metric_%s", name);
    for (char *p = out + 12; n > 0 && *p; p++)
        if (*p == '.' || *p == '-')
            *p = '_';
}

/* --metric's metrics, one family each (labelled with the uWSGI name, which the family name
 * cannot always spell): a counter as a counter, a gauge and an absolute as a gauge, an alias as
 * its target's kind. Names that become the same family name share one family (its first's
 * type), since Prometheus allows one TYPE line per family. */
static void uwsgi_metrics_text(struct text *t)
{
    for (int i = 0; i < METRICS.n; i++) {
        char family[160], other[160];
        prometheus_name(METRICS.m[i].name, family, sizeof(family));
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) {
            prometheus_name(METRICS.m[j].name, other, sizeof(other));
            seen = strcmp(family, other) == 0;
        }
        if (seen)
            continue;
        const struct gy_metric *m = &METRICS.m[i];
        int kind = m->type;
        for (int j = 0; kind == METRIC_ALIAS && j < METRICS.n; j++)
            if (METRICS.m[j].slot == m->slot && METRICS.m[j].type != METRIC_ALIAS)
                kind = METRICS.m[j].type;
        add(t, "# HELP %s uWSGI metric (--metric), shared by the workers.\n# TYPE %s %s\n", family,
            family, kind == METRIC_COUNTER ? "counter" : "gauge");
        for (int j = i; j < METRICS.n; j++) {
            prometheus_name(METRICS.m[j].name, other, sizeof(other));
            if (strcmp(family, other) == 0)
                add(t, "%s{name=\"%s\"} %lld\n", family, METRICS.m[j].name,
                    (long long)metrics_value(&METRICS, j));
        }
    }
}

static char *metrics_text(void)
{
    struct text t = { 0 };
    const char *classes[6] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };
    add(&t, "# HELP gyre_requests_total Requests served, by worker and status class.\n"
            "# TYPE gyre_requests_total counter\n");
    for (int i = 0; i < S.board.nslots; i++) {
        const struct sb_worker *w = scoreboard_slot(&S.board, i);
        if (!slot_live(w))
            continue;
        for (int c = 0; c < 6; c++)
            add(&t, "gyre_requests_total{worker=\"%d\",pid=\"%d\",class=\"%s\"} %llu\n", w->id,
                (int)w->pid, classes[c], (unsigned long long)w->status[c]);
    }
#define PER_WORKER(name, type, help, expr)                                                         \
    add(&t, "# HELP " name " " help "\n# TYPE " name " " type "\n");                               \
    for (int i = 0; i < S.board.nslots; i++) {                                                     \
        const struct sb_worker *w = scoreboard_slot(&S.board, i);                                  \
        if (slot_live(w))                                                                          \
            add(&t, name "{worker=\"%d\",pid=\"%d\"} %llu\n", w->id, (int)w->pid,                  \
                (unsigned long long)(expr));                                                       \
    }
    PER_WORKER("gyre_exceptions_total", "counter", "Requests the app failed (answered 500).",
               w->exceptions)
    PER_WORKER("gyre_harakiri_total", "counter", "Requests cancelled by --harakiri.", w->harakiri)
    PER_WORKER("gyre_requests_in_flight", "gauge", "Cores serving a request.", w->busy)
    PER_WORKER("gyre_worker_respawns_total", "counter", "Times the worker was respawned.",
               w->respawns)
    PER_WORKER("gyre_response_bytes_total", "counter", "Response body bytes sent.", w->tx)
    add(&t, "# HELP gyre_cores_suspended Cores suspended in a wait, by what they wait on.\n"
            "# TYPE gyre_cores_suspended gauge\n");
    for (int i = 0; i < S.board.nslots; i++) {
        const struct sb_worker *w = scoreboard_slot(&S.board, i);
        if (!slot_live(w))
            continue;
        int count[CORE_ACTIVITIES] = { 0 };
        for (int c = 0; c < S.board.ncores; c++)
            if (w->cores[c].activity < CORE_ACTIVITIES)
                count[w->cores[c].activity]++;
        for (int a = CORE_WAIT_READ; a < CORE_ACTIVITIES; a++)
            add(&t, "gyre_cores_suspended{worker=\"%d\",pid=\"%d\",waiting=\"%s\"} %d\n", w->id,
                (int)w->pid, core_activity_name((enum core_activity)a), count[a]);
    }
    add(&t, "# HELP gyre_request_duration_seconds Time from a complete request head to the end "
            "of its response.\n# TYPE gyre_request_duration_seconds histogram\n");
    for (int i = 0; i < S.board.nslots; i++) {
        const struct sb_worker *w = scoreboard_slot(&S.board, i);
        if (!slot_live(w))
            continue;
        unsigned long long cum = 0;
        for (int b = 0; b < SB_BUCKETS; b++) {
            cum += w->hist[b];
            add(&t,
                "gyre_request_duration_seconds_bucket{worker=\"%d\",pid=\"%d\",le=\"%g\"} %llu\n",
                w->id, (int)w->pid, sb_bucket_bounds[b], cum);
        }
        cum += w->hist[SB_BUCKETS];
        add(&t, "gyre_request_duration_seconds_bucket{worker=\"%d\",pid=\"%d\",le=\"+Inf\"} %llu\n",
            w->id, (int)w->pid, cum);
        add(&t, "gyre_request_duration_seconds_sum{worker=\"%d\",pid=\"%d\"} %.6f\n", w->id,
            (int)w->pid, (double)w->rt_us / 1e6);
        add(&t, "gyre_request_duration_seconds_count{worker=\"%d\",pid=\"%d\"} %llu\n", w->id,
            (int)w->pid, cum);
    }
    add(&t, "# HELP gyre_listen_queue Connections waiting in a socket's backlog.\n"
            "# TYPE gyre_listen_queue gauge\n");
    for (int i = 0; i < S.nlisteners; i++)
        if (S.listeners[i].fd >= 0)
            add(&t, "gyre_listen_queue{socket=\"%s\",proto=\"%s\"} %d\n", S.listeners[i].name,
                S.listeners[i].proto->name, listen_queue(S.listeners[i].fd));
    caches_metrics(&t);
    uwsgi_metrics_text(&t);
    return t.p;
}

/* ---- serving ------------------------------------------------------------------------------
 *
 * A thread of its own that never blocks on a client: one poll() loop over the two listeners
 * and every client, each client with its own state, buffer and a deadline for its whole
 * exchange (request, document, close). A client that trickles its request, or reads the
 * document slowly, or not at all, holds only its own slot until its deadline, never the thread:
 * a scraper is answered at once however many slow clients there are. When every slot is taken,
 * the oldest client makes room for the new one, so slow clients cannot lock scrapers out either.
 * The thread touches no Python, only the scoreboard and the listeners.
 */

#define STATS_MAX_CLIENTS 64      /* clients served at once; the next one evicts the oldest */
#define STATS_DEADLINE_MS 5000    /* a client's whole exchange, from accept to close */
#define STATS_LINGER_MS 500       /* after the document: wait this long for the client's close */
#define STATS_QUIET_MS 500        /* an HTTP client silent this long has sent all it will send */
#define STATS_MAX_HEAD 16384      /* an HTTP request head longer than this is not a scraper's */
#define STATS_ACCEPT_BURST 16     /* accepts per listener and loop turn: clients get turns too */
#define STATS_ACCEPT_PAUSE_MS 100 /* after accept() failed for want of fds (or memory) */

enum client_state {
    CLIENT_FREE = 0,
    CLIENT_READ_HEAD, /* HTTP: the request head is skipped, up to its blank line */
    CLIENT_WRITE,     /* the document is being sent */
    CLIENT_LINGER,    /* sent and shut down for writing: reading until the client closes */
};

struct stats_client {
    int fd;
    enum client_state state;
    bool metrics;         /* which document: /metrics or the stats JSON */
    bool http;            /* the request head is read and the document wrapped in HTTP/1.0 */
    uint8_t crlf_matched; /* bytes of "\r\n\r\n" matched at the end of what was read */
    size_t head_read;
    char *out; /* the whole response, HTTP head included */
    size_t out_len, out_sent;
    int64_t accepted_ms, deadline_ms;
    int64_t quiet_ms; /* CLIENT_READ_HEAD: answer then, if no byte came meanwhile */
};

static struct gy_listener stats_l = { .fd = -1 }, metrics_l = { .fd = -1 };
static struct stats_client clients[STATS_MAX_CLIENTS];
/* Listeners are not polled before then: a pending connection that cannot be accepted (EMFILE)
 * would make poll() return at once, forever. */
static int64_t accept_paused_until_ms;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void client_close(struct stats_client *c)
{
    close(c->fd);
    free(c->out);
    *c = (struct stats_client){ .fd = -1 };
}

/* The document, with its HTTP head if the client speaks HTTP. NULL if it cannot be made. */
static char *response(const struct stats_client *c, size_t *len)
{
    char *body = c->metrics ? metrics_text() : stats_json();
    if (!body || !c->http) {
        *len = body ? strlen(body) : 0;
        return body;
    }
    size_t blen = strlen(body);
    char *out = NULL;
    int n = asprintf(&out,
                     "HTTP/1.0 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     c->metrics ? "text/plain; version=0.0.4" : "application/json", blen, body);
    free(body);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return out;
}

static void client_writable(struct stats_client *c, int64_t now);

/* The request is in (or is not awaited): make the document and send what the socket takes. */
static void client_answer(struct stats_client *c, int64_t now)
{
    c->out = response(c, &c->out_len);
    if (!c->out) {
        client_close(c);
        return;
    }
    c->state = CLIENT_WRITE;
    client_writable(c, now);
}

/* All sent: half-close, and read until the client closes, so that closing leaves nothing
 * unread (unread input turns the close into a reset that can cut the document short). */
static void client_start_linger(struct stats_client *c, int64_t now)
{
    shutdown(c->fd, SHUT_WR);
    free(c->out);
    c->out = NULL;
    c->state = CLIENT_LINGER;
    if (c->deadline_ms > now + STATS_LINGER_MS)
        c->deadline_ms = now + STATS_LINGER_MS;
}

/* Feeds the bytes read to the search for the blank line ending an HTTP head. */
static bool head_ended(struct stats_client *c, const char *p, size_t n)
{
    static const char crlfcrlf[4] = { '\r', '\n', '\r', '\n' };
    for (size_t i = 0; i < n; i++) {
        if (p[i] == crlfcrlf[c->crlf_matched])
            c->crlf_matched++;
        else
            c->crlf_matched = p[i] == '\r'; /* a CR always starts a new match */
        if (c->crlf_matched == 4)
            return true;
    }
    return false;
}

static void client_readable(struct stats_client *c, int64_t now)
{
    char buf[4096];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (c->state != CLIENT_READ_HEAD) {
        if (n <= 0)
            client_close(c); /* the client closed (or failed): the exchange is over */
        return;              /* else: discarded, as it is after the head */
    }
    if (n < 0) {
        client_close(c);
        return;
    }
    c->quiet_ms = now + STATS_QUIET_MS;
    /* The end of the request, or the end of the client's input: answer now. */
    if (n == 0 || head_ended(c, buf, (size_t)n)) {
        client_answer(c, now);
        return;
    }
    c->head_read += (size_t)n;
    if (c->head_read > STATS_MAX_HEAD)
        client_close(c);
}

static void client_writable(struct stats_client *c, int64_t now)
{
    while (c->out_sent < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            client_close(c);
            return;
        }
        c->out_sent += (size_t)w;
    }
    client_start_linger(c, now);
}

/* A free slot, or the oldest client's, closed to make room. */
static struct stats_client *client_slot(void)
{
    struct stats_client *oldest = &clients[0];
    for (int i = 0; i < STATS_MAX_CLIENTS; i++) {
        if (clients[i].state == CLIENT_FREE)
            return &clients[i];
        if (clients[i].accepted_ms < oldest->accepted_ms)
            oldest = &clients[i];
    }
    client_close(oldest);
    return oldest;
}

static void accept_clients(const struct gy_listener *l, bool metrics, int64_t now)
{
    for (int k = 0; k < STATS_ACCEPT_BURST; k++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_paused_until_ms = now + STATS_ACCEPT_PAUSE_MS;
            return; /* EAGAIN: none left; a connection aborted meanwhile: the next turn */
        }
        struct stats_client *c = client_slot();
        *c = (struct stats_client){
            .fd = fd,
            .metrics = metrics,
            .http = metrics || S.cfg->stats_http,
            .accepted_ms = now,
            .deadline_ms = now + STATS_DEADLINE_MS,
        };
        if (c->http) {
            c->state = CLIENT_READ_HEAD;
            c->quiet_ms = now + STATS_QUIET_MS;
        } else {
            client_answer(c, now); /* uwsgitop sends nothing: the document goes at once */
        }
    }
}

/* Its time is up: 0 when the client is closed. Else, the next time the loop must wake for it. */
static int64_t client_timers(struct stats_client *c, int64_t now)
{
    if (now >= c->deadline_ms) {
        client_close(c); /* too slow, whatever it was doing */
        return 0;
    }
    if (c->state == CLIENT_READ_HEAD) {
        /* A client that sends no request (uwsgitop pointed at --stats-http) or stops sending
         * one midway is answered after a silence: only the deadline ends a trickle. */
        if (now >= c->quiet_ms) {
            client_answer(c, now);
            if (c->state == CLIENT_FREE)
                return 0;
        } else if (c->quiet_ms < c->deadline_ms) {
            return c->quiet_ms;
        }
    }
    return c->deadline_ms;
}

static void *serve(void *unused)
{
    (void)unused;
    for (int i = 0; i < STATS_MAX_CLIENTS; i++)
        clients[i].fd = -1;
    for (;;) {
        struct pollfd pfd[2 + STATS_MAX_CLIENTS];
        int slot_of[2 + STATS_MAX_CLIENTS];
        int n = 0, timeout = -1;
        int64_t now = now_ms();
        bool accepting = now >= accept_paused_until_ms;
        pfd[n++] = (struct pollfd){ .fd = accepting ? stats_l.fd : -1, .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = accepting ? metrics_l.fd : -1, .events = POLLIN };
        if (!accepting)
            timeout = (int)(accept_paused_until_ms - now);
        for (int i = 0; i < STATS_MAX_CLIENTS; i++) {
            struct stats_client *c = &clients[i];
            if (c->state == CLIENT_FREE)
                continue;
            int64_t wake = client_timers(c, now);
            if (wake == 0)
                continue;
            int left = (int)(wake - now);
            if (timeout < 0 || left < timeout)
                timeout = left;
            slot_of[n] = i;
            pfd[n++] = (struct pollfd){
                .fd = c->fd, .events = (short)(c->state == CLIENT_WRITE ? POLLOUT : POLLIN)
            };
        }
        if (poll(pfd, (nfds_t)n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            log_errno("stats: poll");
            return NULL;
        }
        now = now_ms();
        for (int k = 2; k < n; k++) {
            struct stats_client *c = &clients[slot_of[k]];
            if (!pfd[k].revents || c->state == CLIENT_FREE)
                continue;
            if (c->state == CLIENT_WRITE)
                client_writable(c, now);
            else
                client_readable(c, now);
        }
        /* Accepted last: a new client may take the slot of one polled above. */
        if (pfd[0].revents & POLLIN)
            accept_clients(&stats_l, false, now);
        if (pfd[1].revents & POLLIN)
            accept_clients(&metrics_l, true, now);
    }
}

/*
 * The stats socket tells anyone who can connect how the server is doing, and each connection
 * takes a slot of the stats thread: a unix one is for its owner only (0600), whatever the umask
 * and --chmod-socket (that option is for the app's sockets, which the front end must reach).
 */
static int restrict_unix_socket(const struct gy_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) < 0 || ss.ss_family != AF_UNIX)
        return 0;
    if (chmod(l->name, 0600) < 0) {
        log_errno("chmod(%s)", l->name);
        return -1;
    }
    return 0;
}

static int open_one(struct gy_listener *l, const char *addr, const char *what)
{
    if (!addr)
        return 0;
    /* Created owner-only, so that no one else can connect before the chmod below (but with
     * --chmod-socket, which listen.c applies to every unix socket it makes, for a moment). */
    mode_t old_umask = umask(0177);
    int rc = listen_open_one(l, addr);
    umask(old_umask);
    if (rc < 0 || restrict_unix_socket(l) < 0) {
        log_msg("cannot serve %s on %s", what, addr);
        return -1;
    }
    return 0; /* non-blocking, as listen_open_one() makes it: the loop accepts until EAGAIN */
}

int stats_open(void)
{
    if (open_one(&stats_l, S.cfg->stats, "--stats") < 0 ||
        open_one(&metrics_l, S.cfg->metrics_http, "--metrics-http") < 0)
        return -1;
    return 0;
}

int stats_start(void)
{
    if (stats_l.fd < 0 && metrics_l.fd < 0)
        return 0;
    pthread_t t;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the main thread's */
    int rc = pthread_create(&t, NULL, serve, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_msg("cannot start the stats thread: %s", strerror(rc));
        return -1;
    }
    pthread_detach(t);
    return 0;
}

void stats_close(bool unlink_files)
{
    struct gy_listener *ls[2] = { &stats_l, &metrics_l };
    for (int i = 0; i < 2; i++) {
        if (ls[i]->fd >= 0)
            close(ls[i]->fd);
        ls[i]->fd = -1;
        if (ls[i]->unlink_on_exit && unlink_files)
            unlink(ls[i]->name);
        ls[i]->unlink_on_exit = false;
    }
}
