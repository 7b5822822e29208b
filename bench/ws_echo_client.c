/* The echo load of bench/wsbench.py (issue 14) in C, so that the client is never what limits a
 * server's websocket round trips. wsbench.py opens the websockets itself (the HTTP handshake,
 * Sec-WebSocket-Accept checked) and passes them to this program as inherited descriptors; here
 * each socket keeps one masked text frame in flight: when its echo is back and checked byte for
 * byte, the next frame goes out with a new masking key (RFC 6455 5.3: client frames are masked).
 *
 *     ws_echo_client WARMUP_MS DURATION_MS PAYLOAD FD...
 *
 * Prints "start COUNT T CPU" when the warm-up ends and "end COUNT T CPU" when the measured run
 * does (T: CLOCK_MONOTONIC seconds, CPU: this process's user+system seconds), each line flushed
 * at once so that wsbench.py samples the server's CPU at the same moment. Any bad frame, closed
 * socket or 10 s without an echo: "error WHY" and exit status 1.
 * Depends on: libc (epoll) only; not part of gyre. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_PAYLOAD 125 /* one-byte lengths only: what a chat message is */
#define STALL_MS 10000

struct ws {
    int fd;
    size_t have; /* bytes of the expected echo received so far */
};

static unsigned char payload[MAX_PAYLOAD];
static size_t payload_len;
static uint32_t rng = 2463534242u;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void fail(const char *why)
{
    printf("error %s\n", why);
    exit(1);
}

/* FIN + text, MASK + length, a fresh key (xorshift32), the payload XORed with it. */
static void send_frame(struct ws *w)
{
    unsigned char frame[2 + 4 + MAX_PAYLOAD];
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    frame[0] = 0x81;
    frame[1] = (unsigned char)(0x80 | payload_len);
    memcpy(frame + 2, &rng, 4);
    for (size_t i = 0; i < payload_len; i++)
        frame[6 + i] = payload[i] ^ frame[2 + i % 4];
    ssize_t n = send(w->fd, frame, 6 + payload_len, MSG_NOSIGNAL);
    if (n != (ssize_t)(6 + payload_len)) /* a 38-byte frame into a socket with nothing queued */
        fail(n < 0 ? strerror(errno) : "short send");
}

/* Read what is there; each complete, correct echo counts one round trip and sends the next. */
static unsigned long long on_readable(struct ws *w)
{
    unsigned char buf[4096];
    unsigned long long trips = 0;
    ssize_t n = recv(w->fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0)
        fail(n < 0 ? strerror(errno) : "the server closed a websocket");
    for (ssize_t i = 0; i < n; i++) {
        unsigned char want = w->have == 0   ? 0x81
                             : w->have == 1 ? (unsigned char)payload_len
                                            : payload[w->have - 2];
        if (buf[i] != want)
            fail("an echo frame differs from the message sent");
        if (++w->have == 2 + payload_len) {
            w->have = 0;
            trips++;
            if (i + 1 < n) /* one message in flight: nothing may follow its echo */
                fail("more bytes than one echo");
            send_frame(w);
        }
    }
    return trips;
}

int main(int argc, char **argv)
{
    if (argc < 5 || strlen(argv[3]) > MAX_PAYLOAD) {
        fprintf(stderr, "usage: %s WARMUP_MS DURATION_MS PAYLOAD(<=125 bytes) FD...\n", argv[0]);
        return 2;
    }
    double warmup = atoi(argv[1]) / 1000.0, duration = atoi(argv[2]) / 1000.0;
    payload_len = strlen(argv[3]);
    memcpy(payload, argv[3], payload_len);
    int nws = argc - 4;
    struct ws *ws = calloc((size_t)nws, sizeof(*ws));
    int ep = epoll_create1(0);
    if (!ws || ep < 0)
        fail("out of memory or fds");
    for (int i = 0; i < nws; i++) {
        ws[i].fd = atoi(argv[4 + i]);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ws[i] };
        if (fcntl(ws[i].fd, F_SETFL, fcntl(ws[i].fd, F_GETFL) | O_NONBLOCK) < 0 ||
            epoll_ctl(ep, EPOLL_CTL_ADD, ws[i].fd, &ev) < 0)
            fail("a descriptor given is no socket");
        send_frame(&ws[i]);
    }
    unsigned long long count = 0;
    double t0 = now_s(), last = t0, start = t0 + warmup, end = start + duration;
    int started = 0;
    struct epoll_event evs[256];
    for (;;) {
        double t = now_s();
        if (!started && t >= start) {
            printf("start %llu %.6f %.6f\n", count, t, cpu_s());
            fflush(stdout);
            started = 1;
        }
        if (t >= end) {
            printf("end %llu %.6f %.6f\n", count, t, cpu_s());
            fflush(stdout);
            return 0;
        }
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR)
            fail(strerror(errno));
        if (n <= 0) {
            if ((now_s() - last) * 1000 > STALL_MS)
                fail("no echo for 10 s");
            continue;
        }
        last = now_s();
        for (int i = 0; i < n; i++)
            count += on_readable(evs[i].data.ptr);
    }
}
