/*
 * Listening sockets: bind them, accept from them while a core is free.
 *
 * When every core is busy and as many parsed requests wait for one, gyre stops watching the
 * listening sockets, so further connections wait in the kernel's backlog (--listen) instead of
 * in gyre, and nothing spins; the first request to leave the queue starts the watch again.
 *
 * The same holds at the connection limit (--max-conns, by default the fd limit minus a reserve
 * for everything else the process opens): connections past it wait in the backlog, and the
 * first connection to close makes room. Should accept() still fail for want of descriptors
 * (EMFILE, ENFILE) or memory, the level-triggered watch would report the waiting connection
 * again at once and the loop would spin: gyre stops watching until a connection closes or
 * ACCEPT_RETRY_DELAY passes, and says so once per episode.
 *
 * Depends on: conn.c, engine.c, log.c, proto_fastcgi.c, proto_http.c, proto_uwsgi.c, server.c
 *     (server/README)
 */

#include "engine.h"
#include "log.h"
#include "conn.h"
#include "listen.h"
#include "proto.h"
#include "server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <unistd.h>

/* A user or group by name or number: -1 when there is none. */
static long id_of(const char *name, bool group)
{
    char *end;
    long n = strtol(name, &end, 10);
    if (*name && *end == '\0' && n >= 0)
        return n;
    if (group) {
        struct group *g = getgrnam(name);
        return g ? (long)g->gr_gid : -1;
    }
    struct passwd *pw = getpwnam(name);
    return pw ? (long)pw->pw_uid : -1;
}

/* --chown-socket USER[:GROUP], as uWSGI: the socket file's owner (and group), so that a front
 * end running as another user may connect with a --chmod-socket such as 660. */
static int chown_socket(const char *path, const char *spec)
{
    char user[128];
    const char *colon = strchr(spec, ':');
    size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (ulen == 0 || ulen >= sizeof(user)) {
        log_msg("--chown-socket %s: expected USER[:GROUP]", spec);
        return -1;
    }
    memcpy(user, spec, ulen);
    user[ulen] = '\0';
    long uid = id_of(user, false);
    long gid = colon && colon[1] ? id_of(colon + 1, true) : -1;
    if (uid < 0 || (colon && colon[1] && gid < 0)) {
        log_msg("--chown-socket %s: no such %s", spec, uid < 0 ? "user" : "group");
        return -1;
    }
    if (chown(path, (uid_t)uid, gid < 0 ? (gid_t)-1 : (gid_t)gid) < 0) {
        log_errno("chown(%s, %s)", path, spec);
        return -1;
    }
    return 0;
}

static int open_unix(struct gy_listener *l, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        log_msg("socket path too long: %s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_errno("socket(%s)", path);
        return -1;
    }
    /* A socket file left behind by a previous run would make bind() fail; anything that is
     * not a socket is left alone. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        log_errno("bind(%s)", path);
        close(fd);
        return -1;
    }
    l->unlink_on_exit = true;
    if (S.cfg->chmod_socket >= 0 && chmod(path, (mode_t)S.cfg->chmod_socket) < 0) {
        log_errno("chmod(%s)", path);
        close(fd);
        return -1;
    }
    if (S.cfg->chown_socket && chown_socket(path, S.cfg->chown_socket) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int open_tcp(const char *addr)
{
    /* HOST:PORT, :PORT (every interface, as in uWSGI) or [V6]:PORT; options.c checked PORT */
    char host[256];
    const char *colon = strrchr(addr, ':');
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= sizeof(host)) {
        log_msg("bad socket address: %s", addr);
        return -1;
    }
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        log_msg("bad socket address %s: %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_errno("socket(%s)", addr);
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        log_errno("bind(%s)", addr);
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

static bool is_tcp_address(const char *addr)
{
    /* uWSGI's rule: a path has a '/' or no ':' at all. */
    return strchr(addr, ':') && !strchr(addr, '/');
}

int listen_open_one(struct gy_listener *l, const char *addr)
{
    snprintf(l->name, sizeof(l->name), "%s", addr);
    l->unlink_on_exit = false;
    int fd = is_tcp_address(addr) ? open_tcp(addr) : open_unix(l, addr);
    if (fd < 0)
        return -1;
    l->fd = fd;
    if (listen(fd, S.cfg->listen_backlog) < 0) {
        log_errno("listen(%s)", addr);
        return -1;
    }
    return 0;
}

/* systemd socket activation: the inherited socket for addr, by path (unix) or port (TCP). */
static int inherited_match(const char *addr, int nfds, const bool *used)
{
    for (int j = 0; j < nfds; j++) {
        int fd = SD_LISTEN_FDS_START + j;
        if (used[j])
            continue;
        if (!is_tcp_address(addr)) {
            if (sd_is_socket_unix(fd, SOCK_STREAM, 1, addr, 0) > 0)
                return j;
        } else {
            const char *colon = strrchr(addr, ':');
            if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, (uint16_t)atoi(colon + 1)) > 0)
                return j;
        }
    }
    return -1;
}

int listen_open_all(void)
{
    static const struct gy_protocol *const by_conf[] = {
        [GY_PROTO_UWSGI] = &proto_uwsgi,
        [GY_PROTO_FASTCGI] = &proto_fastcgi,
        [GY_PROTO_HTTP] = &proto_http,
    };
    /* LISTEN_FDS/LISTEN_PID: sockets systemd bound for us. Each configured socket takes the
     * inherited one with its path (or port), else the next unused one in order; sockets
     * nothing inherited stands for are bound here. */
    int nfds = sd_listen_fds(1);
    if (nfds < 0)
        nfds = 0;
    bool used[64] = { false };
    if (nfds > 64)
        nfds = 64;
    int matched[GY_MAX_SOCKETS];
    for (int i = 0; i < S.cfg->nsockets; i++) {
        matched[i] = inherited_match(S.cfg->sockets[i].addr, nfds, used);
        if (matched[i] >= 0)
            used[matched[i]] = true;
    }
    for (int i = 0, next = 0; i < S.cfg->nsockets; i++) {
        while (matched[i] < 0 && next < nfds) {
            int fd = SD_LISTEN_FDS_START + next;
            if (!used[next] && sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0) {
                matched[i] = next;
                used[next] = true;
            }
            next++;
        }
    }
    for (int i = 0; i < S.cfg->nsockets; i++) {
        const struct gy_socket_conf *sc = &S.cfg->sockets[i];
        struct gy_listener *l = &S.listeners[S.nlisteners];
        *l = (struct gy_listener){ .fd = -1, .proto = by_conf[sc->proto] };
        if (matched[i] >= 0) {
            int fd = SD_LISTEN_FDS_START + matched[i];
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            snprintf(l->name, sizeof(l->name), "%s", sc->addr);
            /* Matched by order, the inherited socket may live elsewhere: name it as it is. */
            struct sockaddr_un sa;
            socklen_t sl = sizeof(sa);
            if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0 && sa.sun_family == AF_UNIX &&
                sl > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0])
                snprintf(l->name, sizeof(l->name), "%s", sa.sun_path);
            l->fd = fd;
            l->unlink_on_exit = false; /* systemd's socket: it stays when gyre restarts */
            l->inherited = true;       /* the banner says so */
            S.nlisteners++;
            continue;
        }
        if (listen_open_one(l, sc->addr) < 0)
            return -1;
        S.nlisteners++;
    }
    for (int j = 0; j < nfds; j++)
        if (!used[j]) {
            log_msg("fd %d from systemd matches no configured socket: closed",
                    SD_LISTEN_FDS_START + j);
            close(SD_LISTEN_FDS_START + j);
        }
    return 0;
}

#define ACCEPT_BATCH 16
/* Descriptors kept for what is not a client connection: the interpreter, the app's files, the
 * loop, logs, listeners; plus one per core for sendfile's files. */
#define FD_RESERVE 64
/* Out of descriptors: the next accept() is tried after this long at the latest. */
#define ACCEPT_RETRY_DELAY 0.5

/* accept() failed for want of resources: the listeners are not watched until a connection
 * closes (S.nconns drops below nconns_at) or the retry timer fires. */
static struct {
    bool paused;
    bool logged; /* this episode was logged; an accept that works ends the episode */
    int nconns_at;
    struct engine_timer timer;
} backoff;

/* The connection limit: --max-conns, or what RLIMIT_NOFILE leaves after the reserve. */
void listen_limits_init(void)
{
    if (S.cfg->max_conns > 0) {
        S.max_conns = S.cfg->max_conns;
        return;
    }
    struct rlimit rl;
    long fds = 1024; /* no answer, or no limit: as many as a default soft limit */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur <= INT_MAX)
        fds = (long)rl.rlim_cur;
    long reserve = FD_RESERVE + S.ncores;
    /* A tiny fd limit still leaves half of it to clients. */
    long n = fds - reserve > fds / 2 ? fds - reserve : fds / 2;
    S.max_conns = n > 0 ? (int)n : 1;
}

static void on_backoff_timer(void *ctx)
{
    (void)ctx;
    backoff.paused = false;
    listen_update();
}

static void backoff_end(void)
{
    backoff.paused = false;
    engine_timer_disarm(&backoff.timer);
}

static void backoff_start(struct gy_listener *l, int err)
{
    if (!backoff.logged) {
        log_msg("accept(%s): %s with %d connection(s) open: accepting again when one closes "
                "(or in %g s)",
                l->name, strerror(err), S.nconns, ACCEPT_RETRY_DELAY);
        backoff.logged = true;
    }
    backoff.paused = true;
    backoff.nconns_at = S.nconns;
    /* Should the loop refuse the timer, a closing connection still ends the pause. */
    engine_timer_arm(&backoff.timer, ACCEPT_RETRY_DELAY, on_backoff_timer, NULL);
    listen_update();
}

static bool out_of_resources(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void on_acceptable(void *ctx, int fd, int events)
{
    (void)events;
    struct gy_listener *l = ctx;
    /* Take what the backlog holds while there is room, a batch at a time: one wakeup, many
     * connections, but timers due meanwhile get their turn before the next batch. */
    for (int batch = 0; S.accepting && batch < ACCEPT_BATCH; batch++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (out_of_resources(errno))
                backoff_start(l, errno);
            else
                log_errno("accept(%s)", l->name);
            return;
        }
        backoff.logged = false;
        conn_accepted(cfd, l);
        listen_update(); /* one more connection: the limit may be reached */
    }
}

/* --max-requests under a master: a worker that has served its N requests takes no more (the
 * master replaces it on its next heartbeat), instead of accepting until the replacement is
 * up. Not with --min-worker-lifetime, which may keep it serving past N; nor without a master,
 * where nobody would replace it. */
static bool served_enough(void)
{
    const struct gy_config *cfg = S.cfg;
    return S.link && cfg->max_requests && !cfg->min_worker_lifetime &&
           S.requests >= cfg->max_requests;
}

/* Accept while a core is free, and also while the queue of parsed requests is shorter than
 * the cores: a core that finishes takes the next request straight from the queue, in its own
 * greenlet, without a trip through the loop. Past that, the kernel's backlog holds them. Once
 * stopped, accepting resumes when the queue is half empty (or a core is free): each start and
 * stop is a trip through the IOLoop's Python, not to be paid per request. */
static bool want_accepting(void)
{
    int queue_room = S.accepting ? S.ncores : S.ncores / 2 + 1;
    return !S.stopping && !backoff.paused && !served_enough() && S.nconns < S.max_conns &&
           (S.busy < S.ncores || S.npending < queue_room);
}

static void update_task(void *ctx)
{
    (void)ctx;
    listen_update();
}

void listen_update(void)
{
    if (!engine_on_loop_thread()) {
        /* A thread core's change: the listening sockets are watched by the IOLoop, the loop's
         * to change. Posted only when there is something to change, not per request. */
        static struct engine_task from_thread = { .fn = update_task };
        if (want_accepting() != S.accepting || (backoff.paused && S.nconns < backoff.nconns_at))
            engine_post(&from_thread);
        return;
    }
    /* A connection closed since accept() ran out of descriptors: there is one again. */
    if (backoff.paused && S.nconns < backoff.nconns_at)
        backoff_end();
    bool want = want_accepting();
    if (want == S.accepting)
        return;
    S.accepting = want;
    if (S.slot)
        S.slot->accepting = want;
    for (int i = 0; i < S.nlisteners; i++) {
        struct gy_listener *l = &S.listeners[i];
        if (l->fd < 0)
            continue;
        engine_watch(l->fd, want ? EV_READ : 0, on_acceptable, l); /* a failure is logged */
    }
}

void listen_close_all(void)
{
    S.accepting = false;
    if (S.slot)
        S.slot->accepting = 0;
    for (int i = 0; i < S.nlisteners; i++) {
        struct gy_listener *l = &S.listeners[i];
        if (l->fd >= 0) {
            engine_forget(l->fd);
            close(l->fd);
            l->fd = -1;
        }
        if (l->unlink_on_exit) {
            unlink(l->name);
            l->unlink_on_exit = false;
        }
    }
}
