/*
 * --stats and --metrics-http: what the scoreboard says, for uwsgitop and for Prometheus.
 *
 * Served by the process that owns the scoreboard's view of every worker: the master, or the
 * only process. Each connection gets one document and is closed, as uWSGI's stats server does
 * (--stats-http and --metrics-http wrap it in an HTTP/1.0 response). The documents are a few
 * KiB, built in memory and written at once.
 */
#include "log.h"
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
        .nlh = {.nlmsg_len = sizeof rq, .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST},
        .req = {.sdiag_family = AF_UNIX, .udiag_states = -1U, .udiag_ino = (unsigned)st.st_ino,
                .udiag_show = UDIAG_SHOW_RQLEN, .udiag_cookie = {~0U, ~0U}},
    };
    int queue = -1;
    char buf[1024];
    if (send(nl, &rq, sizeof rq, 0) == (ssize_t)sizeof rq) {
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (n > 0 && NLMSG_OK(h, (size_t)n) && h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
            struct unix_diag_msg *m = NLMSG_DATA(h);
            int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
            for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len);
                 a = RTA_NEXT(a, len))
                if (a->rta_type == UNIX_DIAG_RQLEN) {
                    struct unix_diag_rqlen *q = RTA_DATA(a);
                    queue = (int)q->udiag_rqueue;
                }
        }
    }
    close(nl);
    return queue;
}

/* Connections waiting to be accepted on a listening socket. */
static int listen_queue(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return 0;
    if (ss.ss_family == AF_UNIX) {
        int q = unix_queue(fd);
        return q < 0 ? 0 : q;
    }
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0)
        return (int)ti.tcpi_unacked; /* for a listening socket: its accept queue */
    return 0;
}

/* ---- per worker --------------------------------------------------------------------------- */

static void proc_mem(pid_t pid, unsigned long long *rss, unsigned long long *vsz)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
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

static char *stats_json(void)
{
    json_t *doc = json_object();
    char cwd[4096];
    json_object_set_new(doc, "version", json_string(GYRE_VERSION));
    json_object_set_new(doc, "pid", json_integer(getpid()));
    json_object_set_new(doc, "uid", json_integer(getuid()));
    json_object_set_new(doc, "gid", json_integer(getgid()));
    json_object_set_new(doc, "cwd", json_string(getcwd(cwd, sizeof cwd) ? cwd : ""));

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
            json_object_set_new(co, "vars", json_array());
            json_object_set_new(co, "req_info", json_object());
            json_array_append_new(cores, co);
        }
        json_object_set_new(o, "cores", cores);
        json_array_append_new(workers, o);
    }
    json_object_set_new(doc, "workers", workers);
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

static char *metrics_text(void)
{
    struct text t = {0};
    const char *classes[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
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
#define PER_WORKER(name, type, help, expr)                                                      \
    add(&t, "# HELP " name " " help "\n# TYPE " name " " type "\n");                            \
    for (int i = 0; i < S.board.nslots; i++) {                                                  \
        const struct sb_worker *w = scoreboard_slot(&S.board, i);                               \
        if (slot_live(w))                                                                       \
            add(&t, name "{worker=\"%d\",pid=\"%d\"} %llu\n", w->id, (int)w->pid,              \
                (unsigned long long)(expr));                                                    \
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
        int count[CORE_APP_SUSPENDED + 1] = {0};
        for (int c = 0; c < S.board.ncores; c++)
            if (w->cores[c].activity <= CORE_APP_SUSPENDED)
                count[w->cores[c].activity]++;
        for (int a = CORE_WAIT_READ; a <= CORE_APP_SUSPENDED; a++)
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
            add(&t, "gyre_request_duration_seconds_bucket{worker=\"%d\",pid=\"%d\",le=\"%g\"} %llu\n",
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
    return t.p;
}

/* ---- serving ------------------------------------------------------------------------------ */

/*
 * A thread of its own, blocking, one connection at a time, every socket operation bounded by a
 * timeout: a scraper that stalls or never reads only delays other scrapers, never the IOLoop or
 * the master's loop. It touches no Python, only the scoreboard and the listeners.
 */
static struct gy_listener stats_l = {.fd = -1}, metrics_l = {.fd = -1};

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Read what the client sends until the end of an HTTP head (http) or until it stops, so that
 * closing leaves nothing unread: unread input turns the close into a reset that can cut the
 * document short. */
static void swallow(int fd, bool until_head)
{
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + (have < 4 ? have : 0), sizeof buf - 4, 0);
        if (n <= 0)
            return;
        if (until_head) {
            have += (size_t)n;
            if (memmem(buf, have < sizeof buf ? have : sizeof buf, "\r\n\r\n", 4))
                return;
            if (have >= 4)
                have = 0;
        }
    }
}

static void answer(int fd, bool http, const char *ctype, char *body)
{
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct timeval rtv = {.tv_usec = 500000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof rtv);
    if (http)
        swallow(fd, true);
    if (body) {
        size_t blen = strlen(body);
        if (http) {
            char head[256];
            int hlen = snprintf(head, sizeof head,
                                "HTTP/1.0 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                                "Connection: close\r\n\r\n",
                                ctype, blen);
            send_all(fd, head, (size_t)hlen);
        }
        send_all(fd, body, blen);
        free(body);
    }
    shutdown(fd, SHUT_WR);
    swallow(fd, false); /* until the client closes, or half a second */
}

static void *serve(void *unused)
{
    (void)unused;
    for (;;) {
        struct pollfd pfd[2] = {{.fd = stats_l.fd, .events = POLLIN},
                                {.fd = metrics_l.fd, .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            return NULL;
        for (int i = 0; i < 2; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            int fd = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            if (i == 1)
                answer(fd, true, "text/plain; version=0.0.4", metrics_text());
            else
                answer(fd, S.cfg->stats_http, "application/json", stats_json());
            close(fd);
        }
    }
}

static int open_one(struct gy_listener *l, const char *addr, const char *what)
{
    if (!addr)
        return 0;
    if (listen_open_one(l, addr) < 0) {
        log_msg("cannot serve %s on %s", what, addr);
        return -1;
    }
    /* blocking: the thread waits in poll() and accept() only after it */
    fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) & ~O_NONBLOCK);
    return 0;
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
    struct gy_listener *ls[2] = {&stats_l, &metrics_l};
    for (int i = 0; i < 2; i++) {
        if (ls[i]->fd >= 0)
            close(ls[i]->fd);
        ls[i]->fd = -1;
        if (ls[i]->unlink_on_exit && unlink_files)
            unlink(ls[i]->name);
        ls[i]->unlink_on_exit = false;
    }
}
