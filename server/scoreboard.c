/*
 * Depends on: no other server file (server/README)
 */
#include "scoreboard.h"

#include <string.h>
#include <sys/mman.h>

const double sb_bucket_bounds[SB_BUCKETS] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,  0.5,   1,    2.5,   5,    10 };

const char *core_activity_name(enum core_activity a)
{
    static const char *const names[] = {
        [CORE_IDLE] = "idle",
        [CORE_RUNNING] = "running",
        [CORE_WAIT_READ] = "fd-read",
        [CORE_WAIT_WRITE] = "fd-write",
        [CORE_WAIT_TIMER] = "timer",
        [CORE_WAIT_FUTURE] = "future",
        [CORE_APP_SUSPENDED] = "app-suspended",
        [CORE_WAIT_APP_FD] = "app-fd",
        [CORE_WAIT_WEBSOCKET] = "websocket",
    };
    return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}

int scoreboard_create(struct scoreboard *sb, int nslots, int ncores)
{
    sb->nslots = nslots;
    sb->ncores = ncores;
    sb->stride = sizeof(struct sb_worker) + (size_t)ncores * sizeof(struct sb_core);
    sb->stride = (sb->stride + 63) & ~(size_t)63; /* a cache line per worker at least */
    void *m = mmap(NULL, sb->stride * (size_t)nslots, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    sb->mem = m;
    return 0;
}

struct sb_worker *scoreboard_slot(const struct scoreboard *sb, int i)
{
    return (struct sb_worker *)(sb->mem + sb->stride * (size_t)i);
}

void scoreboard_record_request(struct sb_worker *w, int status, uint64_t tx, double seconds,
                               bool exception)
{
    w->requests++;
    w->exceptions += exception;
    w->tx += tx;
    w->rt_us += (uint64_t)(seconds * 1e6);
    w->status[status >= 100 && status < 600 ? status / 100 : 0]++;
    int b = 0;
    while (b < SB_BUCKETS && seconds > sb_bucket_bounds[b])
        b++;
    w->hist[b]++;
}
