/*
 * Depends on: (nothing in server/) (server/README)
 */
#include "locks.h"

#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>

#define LOCK_SLOT 128 /* bytes per lock: a cache line or two, no false sharing */
_Static_assert(sizeof(struct gy_lock) <= LOCK_SLOT, "struct gy_lock fits its slot");

int locks_create(struct gy_locks *l, int n)
{
    size_t size = (size_t)(n + 1) * LOCK_SLOT;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    l->slots = p;
    l->n = n;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    /* A worker that dies holding one leaves it to the next taker (EOWNERDEAD). */
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    /* A second lock() by the thread holding it is an error, not a silent deadlock. */
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    int rc = 0;
    for (int i = 0; i <= n && rc == 0; i++)
        rc = pthread_mutex_init(&locks_at(l, i)->m, &a);
    pthread_mutexattr_destroy(&a);
    if (rc) {
        munmap(p, size);
        l->slots = NULL;
        errno = rc;
        return -1;
    }
    return 0;
}

struct gy_lock *locks_at(const struct gy_locks *l, int i)
{
    return (struct gy_lock *)(l->slots + (size_t)i * LOCK_SLOT);
}
