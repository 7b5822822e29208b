/* The floor of "hello world behind nginx" (issue 13): the least a uwsgi backend can do per
 * request. One process, one epoll loop, a non-blocking unix-socket listener; each connection
 * sends one uwsgi packet (4-byte header + vars, no body), gets an 11-byte "Hello World" and is
 * closed. bench/bench.py builds it (build/bench/c_responder) and measures its CPU per request
 * behind the same nginx as gyre and uWSGI: gyre's CPU/request divided by this one's is how far
 * gyre is from a server that does nothing but the protocol.
 *
 *     c_responder SOCKET_PATH
 *
 * Correct, not clever: partial reads are resumed (the header and vars may come in pieces), a
 * write that would block waits for EPOLLOUT, any error or early EOF closes the connection.
 * Depends on: libc (epoll, unix sockets) only; not part of gyre. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 11\r\n\r\nHello World";

struct conn {
    int fd;
    unsigned char head[4]; /* the uwsgi header: modifier1, vars size (LE 16 bits), modifier2 */
    size_t got;            /* bytes of the packet read so far (header + vars) */
    size_t sent;           /* bytes of RESPONSE written so far */
    int in_epoll;          /* registered yet: most connections never are (see accept_all) */
};

static void conn_close(struct conn *c)
{
    close(c->fd); /* also removes it from the epoll set */
    free(c);
}

/* Write what is left of the response; 1: done, 0: would block (wait for EPOLLOUT), -1: error. */
static int conn_write(struct conn *c)
{
    while (c->sent < sizeof(RESPONSE) - 1) {
        ssize_t n = send(c->fd, RESPONSE + c->sent, sizeof(RESPONSE) - 1 - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->sent += (size_t)n;
    }
    return 1;
}

/* Wait for `events` on the connection: register it, or change what it waits for. */
static int conn_wait(int ep, struct conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(ep, c->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0)
        return -1;
    c->in_epoll = 1;
    return 0;
}

/* Read until the whole packet is in (vars are counted, not kept); then answer. Returns 0 while
 * the connection lives on (more to read, or a write waiting for EPOLLOUT), -1 once closed. */
static int conn_step(int ep, struct conn *c)
{
    unsigned char scratch[4096];
    for (;;) {
        size_t need = 4;
        if (c->got >= 4)
            need = 4 + (size_t)(c->head[1] | (c->head[2] << 8));
        if (c->got >= need)
            break;
        /* As much as there is, in one call: a body after the vars (none for GET) is read and
         * ignored; there is no second request on a uwsgi connection. */
        ssize_t n = recv(c->fd, scratch, sizeof(scratch), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && (c->in_epoll || conn_wait(ep, c, EPOLLIN) == 0))
            return 0; /* level-triggered EPOLLIN brings us back */
        if (n <= 0) { /* an error, or EOF before the packet was complete */
            conn_close(c);
            return -1;
        }
        for (ssize_t i = 0; i < n && c->got + (size_t)i < 4; i++)
            c->head[c->got + (size_t)i] = scratch[i];
        c->got += (size_t)n;
    }
    if (conn_write(c) == 0 && conn_wait(ep, c, EPOLLOUT) == 0)
        return 0; /* the socket buffer is full: wait until it drains */
    conn_close(c);
    return -1;
}

static void accept_all(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN: all taken; any other error: try again on the next event */
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        /* nginx writes the packet right after connecting: it is usually here already, and the
         * connection is then answered and closed without ever entering the epoll set. */
        conn_step(ep, c);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: %s SOCKET_PATH (a unix socket path, < 108 bytes)\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, argv[1]);
    unlink(argv[1]);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
    if (lfd < 0 || ep < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(lfd, 4096) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        perror("c_responder: listen");
        return 1;
    }
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR) {
            perror("c_responder: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                accept_all(ep, lfd);
            } else if (evs[i].events & EPOLLOUT) {
                if (conn_write(c) != 0) /* done or failed: either way the connection ends */
                    conn_close(c);
            } else {
                conn_step(ep, c);
            }
        }
    }
}
