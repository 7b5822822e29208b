/*
 * The shared-memory cache (cache.h): uWSGI's --cache2 store, one MAP_SHARED mapping per cache
 * (anonymous, or a file with `store=PATH`, which then survives restarts).
 *
 * Layout of a mapping: header | hash buckets | free-slot stack | block bitmap | item slots |
 * value blocks. Item slot i (1..max_items-1; 0 means "none", as in uWSGI) holds a key, its
 * value's size, first block and expiry, and its links: the next item of its hash bucket
 * (singly linked) and, with purge_lru, its neighbours in the LRU list. Without `bitmap` item i's
 * value is block i; with it a value takes consecutive blocks found in the bitmap.
 *
 * Crash safety (a worker SIGKILLed holding the lock): the mutex is robust, so the next taker
 * gets EOWNERDEAD. The invariant that makes the repair possible: while a write is under way,
 * sh->dirty is set and sh->dirty_item names the one item slot whose key or value may be half
 * written; every other slot is whole. Everything else (buckets, free stack, bitmap, LRU list,
 * counts) is derived from the slots, so the taker drops dirty_item and rebuilds the rest
 * (cache_rebuild). A key thus reads back whole or is absent, never torn. The same rebuild runs
 * when a store file is opened: a gyre killed mid-write leaves a file that loads clean.
 *
 * Expiry: a value past its expiry is absent to every operation (and removed when met, under
 * the lock); the master sweeps the rest every --cache-expire-freq seconds (caches_sweep), and a
 * full cache sweeps before it evicts or refuses.
 *
 * Depends on: log.c (server/README)
 */
#include "cache.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CACHE_MAGIC 0x3165686361637967ULL /* "gycache1" */
#define NO_BLOCK UINT64_MAX
/* A mapping larger than this is a typo in items/blocksize, not a cache (1 TiB). */
#define CACHE_MAX_MAP (1ULL << 40)

void (*cache_fault_hook)(const char *step);

struct cache_shared {
    uint64_t magic;
    /* the layout, checked when a store file is opened again */
    uint64_t max_items, blocksize, blocks, keysize, hashsize, bitmap;
    pthread_mutex_t lock;
    volatile pid_t holder;
    volatile uint64_t dirty;      /* a write is under way ... */
    volatile uint64_t dirty_item; /* ... and this slot may be half written (0: none) */
    uint64_t n_items, hits, miss, full, last_modified_at;
    uint64_t free_top; /* free_stack[1..free_top] are free slots */
    uint64_t lru_head, lru_tail;
    uint64_t bitmap_pos;
    uint64_t last_full_sweep;
};

struct cache_item {
    uint64_t hash;
    uint64_t keysize; /* 0: a free slot */
    uint64_t valsize;
    uint64_t first_block;
    uint64_t expires; /* wall-clock second, 0: never */
    uint64_t next;    /* the next slot in its hash bucket */
    uint64_t lru_prev, lru_next;
    uint64_t hits;
    char key[];
};

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static uint32_t djb33x(const char *key, size_t len)
{
    uint32_t h = 5381;
    for (size_t i = 0; i < len; i++)
        h = ((h << 5) + h) ^ (uint32_t)(signed char)key[i]; /* uWSGI's: char is signed there */
    return h;
}

static struct cache_item *item(const struct cache *c, uint64_t i)
{
    return (struct cache_item *)(c->items + c->item_size * i);
}

static char *block(const struct cache *c, uint64_t b)
{
    return c->data + c->conf->blocksize * b;
}

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

static void fault(const char *step)
{
    if (cache_fault_hook)
        cache_fault_hook(step);
}

/* ---- the mapping ----------------------------------------------------------------------- */

struct layout {
    size_t header, hashtable, free_stack, bitmap, items, data, total;
};

/* The offsets of the parts; -1 when the sizes overflow or pass CACHE_MAX_MAP. */
static int compute_layout(const struct gy_cache_conf *conf, size_t item_size, struct layout *l)
{
    unsigned long long parts[5];
    if (__builtin_mul_overflow(conf->hashsize, 8ULL, &parts[0]) ||
        __builtin_mul_overflow(conf->max_items, 8ULL, &parts[1]) ||
        __builtin_mul_overflow(conf->max_items, (unsigned long long)item_size, &parts[3]) ||
        __builtin_mul_overflow(conf->blocks, conf->blocksize, &parts[4]))
        return -1;
    parts[2] = conf->bitmap ? align8((size_t)(conf->blocks / 8 + 1)) : 0;
    unsigned long long off = align8(sizeof(struct cache_shared));
    size_t *fields[] = { &l->hashtable, &l->free_stack, &l->bitmap, &l->items, &l->data };
    l->header = 0;
    for (int i = 0; i < 5; i++) {
        *fields[i] = (size_t)off;
        if (parts[i] > CACHE_MAX_MAP || __builtin_add_overflow(off, parts[i], &off) ||
            off > CACHE_MAX_MAP)
            return -1;
    }
    l->total = (size_t)off;
    return 0;
}

static void bitmap_set(struct cache *c, uint64_t first, uint64_t n, bool used)
{
    for (uint64_t b = first; b < first + n; b++) {
        if (used)
            c->bitmap[b / 8] |= (uint8_t)(1u << (b % 8));
        else
            c->bitmap[b / 8] &= (uint8_t) ~(1u << (b % 8));
    }
}

static bool bitmap_used(const struct cache *c, uint64_t b)
{
    return c->bitmap[b / 8] & (1u << (b % 8));
}

static uint64_t blocks_for(const struct cache *c, uint64_t len)
{
    return (len + c->conf->blocksize - 1) / c->conf->blocksize;
}

/* n consecutive free blocks, searched from where the last allocation ended; NO_BLOCK if none. */
static uint64_t bitmap_find(struct cache *c, uint64_t n)
{
    uint64_t nb = c->conf->blocks;
    if (n > nb)
        return NO_BLOCK;
    uint64_t start = c->sh->bitmap_pos < nb ? c->sh->bitmap_pos : 0;
    for (int pass = 0; pass < 2; pass++) {
        uint64_t from = pass ? 0 : start, to = pass ? start + n : nb;
        if (to > nb)
            to = nb;
        uint64_t run = 0;
        for (uint64_t b = from; b < to; b++) {
            if (!(b % 8) && c->bitmap[b / 8] == 0xff && b + 8 <= to) {
                run = 0;
                b += 7;
                continue;
            }
            run = bitmap_used(c, b) ? 0 : run + 1;
            if (run == n) {
                uint64_t first = b + 1 - n;
                c->sh->bitmap_pos = b + 1;
                return first;
            }
        }
    }
    return NO_BLOCK;
}

static void lru_unlink(struct cache *c, uint64_t i)
{
    struct cache_shared *sh = c->sh;
    struct cache_item *it = item(c, i);
    if (it->lru_next)
        item(c, it->lru_next)->lru_prev = it->lru_prev;
    else
        sh->lru_tail = it->lru_prev;
    if (it->lru_prev)
        item(c, it->lru_prev)->lru_next = it->lru_next;
    else
        sh->lru_head = it->lru_next;
    it->lru_prev = it->lru_next = 0;
}

static void lru_append(struct cache *c, uint64_t i)
{
    struct cache_shared *sh = c->sh;
    struct cache_item *it = item(c, i);
    it->lru_next = 0;
    it->lru_prev = sh->lru_tail;
    if (sh->lru_tail)
        item(c, sh->lru_tail)->lru_next = i;
    else
        sh->lru_head = i;
    sh->lru_tail = i;
}

/* Is slot i a whole item, as far as its own fields can tell? */
static bool item_sane(const struct cache *c, uint64_t i)
{
    const struct cache_item *it = item(c, i);
    if (!it->keysize || it->keysize > c->conf->keysize || !it->valsize ||
        it->valsize > c->max_item_size)
        return false;
    if (it->hash != djb33x(it->key, it->keysize))
        return false;
    if (!c->conf->bitmap)
        return it->first_block == i;
    return it->first_block < c->conf->blocks &&
           blocks_for(c, it->valsize) <= c->conf->blocks - it->first_block;
}

static void slot_clear(struct cache *c, uint64_t i)
{
    struct cache_item *it = item(c, i);
    it->keysize = it->valsize = it->hash = it->expires = it->next = 0;
    it->lru_prev = it->lru_next = it->hits = 0;
}

/* Rebuild everything derived from the item slots, dropping slot drop (0: none). The items
 * kept. Runs under the lock (or before any fork). */
static uint64_t cache_rebuild(struct cache *c, uint64_t drop)
{
    struct cache_shared *sh = c->sh;
    const struct gy_cache_conf *conf = c->conf;
    memset(c->hashtable, 0, conf->hashsize * 8);
    if (c->bitmap) {
        memset(c->bitmap, 0, conf->blocks / 8 + 1);
        for (uint64_t b = conf->blocks; b < (conf->blocks / 8 + 1) * 8; b++)
            bitmap_set(c, b, 1, true); /* the tail bits past the last block: never free */
    }
    sh->free_top = 0;
    sh->lru_head = sh->lru_tail = 0;
    sh->n_items = 0;
    sh->bitmap_pos = 0;
    /* Slots pushed from the last down, so that the first ones are taken first. */
    for (uint64_t i = conf->max_items - 1; i >= 1; i--) {
        bool keep = i != drop && item_sane(c, i);
        struct cache_item *it = item(c, i);
        if (keep && c->bitmap) {
            uint64_t n = blocks_for(c, it->valsize);
            for (uint64_t b = it->first_block; b < it->first_block + n && keep; b++)
                keep = !bitmap_used(c, b); /* two items on one block: the second goes */
            if (keep)
                bitmap_set(c, it->first_block, n, true);
        }
        if (!keep) {
            slot_clear(c, i);
            c->free_stack[++sh->free_top] = i;
            continue;
        }
        uint64_t b = it->hash % conf->hashsize;
        it->next = c->hashtable[b];
        c->hashtable[b] = i;
        it->lru_prev = it->lru_next = 0;
        if (conf->purge_lru)
            lru_append(c, i);
        sh->n_items++;
    }
    sh->dirty_item = 0;
    sh->dirty = 0;
    return sh->n_items;
}

static int init_mutex(struct cache_shared *sh)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    /* A worker that dies holding it leaves it to the next taker (EOWNERDEAD): see the top. */
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&sh->lock, &a);
    pthread_mutexattr_destroy(&a);
    return rc;
}

static void set_layout(struct cache_shared *sh, const struct gy_cache_conf *conf)
{
    sh->magic = CACHE_MAGIC;
    sh->max_items = conf->max_items;
    sh->blocksize = conf->blocksize;
    sh->blocks = conf->blocks;
    sh->keysize = conf->keysize;
    sh->hashsize = conf->hashsize;
    sh->bitmap = conf->bitmap;
}

static bool same_layout(const struct cache_shared *sh, const struct gy_cache_conf *conf)
{
    return sh->magic == CACHE_MAGIC && sh->max_items == conf->max_items &&
           sh->blocksize == conf->blocksize && sh->blocks == conf->blocks &&
           sh->keysize == conf->keysize && sh->hashsize == conf->hashsize &&
           sh->bitmap == (uint64_t)conf->bitmap;
}

/* The store file, opened (made when absent) at its size: fd, or -1 with err. *fresh: new. */
static int open_store(const struct gy_cache_conf *conf, size_t size, bool *fresh, char *err,
                      size_t errlen)
{
    const char *path = conf->store;
    struct stat st;
    *fresh = stat(path, &st) != 0;
    if (!*fresh && (!S_ISREG(st.st_mode) || (size_t)st.st_size != size)) {
        if (!conf->store_delete) {
            snprintf(err, errlen,
                     "cache %s: store %s is not a file of this cache's size (%zu bytes): remove "
                     "it, or add store_delete=1 to replace it",
                     conf->name, path, size);
            return -1;
        }
        log_msg("cache %s: replacing store %s (made for another layout)", conf->name, path);
        if (unlink(path) < 0) {
            snprintf(err, errlen, "cache %s: unlink(%s): %s", conf->name, path, strerror(errno));
            return -1;
        }
        *fresh = true;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || (*fresh && ftruncate(fd, (off_t)size) < 0)) {
        snprintf(err, errlen, "cache %s: store %s: %s", conf->name, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int cache_open(struct cache *c, const struct gy_cache_conf *conf, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->conf = conf;
    if (conf->store_redis)
        return 0;
    c->item_size = align8(sizeof(struct cache_item) + conf->keysize);
    c->max_item_size = conf->bitmap ? conf->blocksize * conf->blocks : conf->blocksize;
    struct layout l;
    if (conf->max_items < 2 || compute_layout(conf, c->item_size, &l) < 0) {
        snprintf(err, errlen, "cache %s: %s", conf->name,
                 conf->max_items < 2 ? "items must be at least 2 (slot 0 is never used)"
                                     : "items, blocks and blocksize make more than 1 TiB");
        return -1;
    }
    bool fresh = true;
    int fd = -1;
    if (conf->store && (fd = open_store(conf, l.total, &fresh, err, errlen)) < 0)
        return -1;
    void *p = mmap(NULL, l.total, PROT_READ | PROT_WRITE,
                   fd >= 0 ? MAP_SHARED : MAP_SHARED | MAP_ANONYMOUS, fd, 0);
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "cache %s: mmap of %zu bytes: %s", conf->name, l.total,
                 strerror(saved));
        return -1;
    }
    c->map_size = l.total;
    c->sh = p;
    c->hashtable = (uint64_t *)((char *)p + l.hashtable);
    c->free_stack = (uint64_t *)((char *)p + l.free_stack);
    c->bitmap = conf->bitmap ? (uint8_t *)p + l.bitmap : NULL;
    c->items = (char *)p + l.items;
    c->data = (char *)p + l.data;
    if (!fresh && !same_layout(c->sh, conf)) {
        snprintf(err, errlen, "cache %s: store %s was made for another layout: remove it",
                 conf->name, conf->store);
        cache_close(c);
        return -1;
    }
    /* Before any fork, alone: a mutex left in a store file by a gyre killed holding it is
     * garbage now; made anew. */
    int rc = init_mutex(c->sh);
    if (rc) {
        snprintf(err, errlen, "cache %s: mutex: %s", conf->name, strerror(rc));
        cache_close(c);
        return -1;
    }
    uint64_t drop = c->sh->dirty ? c->sh->dirty_item : 0;
    if (fresh) {
        memset(c->sh, 0, offsetof(struct cache_shared, lock));
        set_layout(c->sh, conf);
    }
    uint64_t n = cache_rebuild(c, drop);
    if (!fresh)
        log_msg("cache %s: restored %llu item(s) from %s%s", conf->name, (unsigned long long)n,
                conf->store, drop ? " (one half-written item dropped)" : "");
    return 0;
}

void cache_close(struct cache *c)
{
    if (c->sh)
        munmap(c->sh, c->map_size);
    c->sh = NULL;
}

/* ---- the lock -------------------------------------------------------------------------- */

static int cache_lock(struct cache *c)
{
    struct cache_shared *sh = c->sh;
    int rc = pthread_mutex_lock(&sh->lock);
    if (rc == EOWNERDEAD) {
        bool dirty = sh->dirty;
        uint64_t drop = dirty ? sh->dirty_item : 0;
        uint64_t n = cache_rebuild(c, drop);
        log_msg("cache %s: pid %d died holding its lock%s: rebuilt, %llu item(s) kept",
                c->conf->name, (int)sh->holder,
                drop    ? " in the middle of a write (that key dropped)"
                : dirty ? " in the middle of a write"
                        : "",
                (unsigned long long)n);
        pthread_mutex_consistent(&sh->lock);
        rc = 0;
    }
    if (rc) {
        errno = rc;
        return -1;
    }
    sh->holder = getpid();
    return 0;
}

static void cache_unlock(struct cache *c)
{
    c->sh->holder = 0;
    pthread_mutex_unlock(&c->sh->lock);
}

/* A write of slot i begins: from now until write_done, only slot i may be half written. */
static void write_begin(struct cache *c, uint64_t i)
{
    c->sh->dirty_item = i;
    __atomic_store_n(&c->sh->dirty, 1, __ATOMIC_RELEASE);
}

static void write_done(struct cache *c)
{
    __atomic_store_n(&c->sh->dirty, 0, __ATOMIC_RELEASE);
    c->sh->dirty_item = 0;
    if (c->conf->lastmod)
        c->sh->last_modified_at = now_s();
}

/* ---- the operations -------------------------------------------------------------------- */

/* Remove slot i (dirty-marked by the caller); prev: the slot before it in its bucket (0: it
 * is the bucket's head). */
static void unlink_item(struct cache *c, uint64_t i, uint64_t prev)
{
    struct cache_shared *sh = c->sh;
    struct cache_item *it = item(c, i);
    if (prev)
        item(c, prev)->next = it->next;
    else
        c->hashtable[it->hash % c->conf->hashsize] = it->next;
    if (c->bitmap)
        bitmap_set(c, it->first_block, blocks_for(c, it->valsize), false);
    if (c->conf->purge_lru)
        lru_unlink(c, i);
    slot_clear(c, i);
    c->free_stack[++sh->free_top] = i;
    sh->n_items--;
}

static void delete_item(struct cache *c, uint64_t i, uint64_t prev)
{
    write_begin(c, i);
    unlink_item(c, i, prev);
    write_done(c);
}

/* Remove slot i, its bucket predecessor looked up (a chain is at most the cache long). */
static void remove_slot(struct cache *c, uint64_t i)
{
    uint64_t prev = 0, steps = 0;
    for (uint64_t j = c->hashtable[item(c, i)->hash % c->conf->hashsize]; j && j != i;
         j = item(c, j)->next) {
        if (++steps > c->conf->max_items || j >= c->conf->max_items)
            break;
        prev = j;
    }
    delete_item(c, i, prev);
}

static uint64_t find_in_chain(struct cache *c, const char *key, size_t klen, uint64_t *prev_out,
                              bool *broken)
{
    uint32_t h = djb33x(key, klen);
    uint64_t prev = 0, steps = 0;
    for (uint64_t i = c->hashtable[h % c->conf->hashsize]; i; i = item(c, i)->next) {
        if (++steps > c->conf->max_items || i >= c->conf->max_items) {
            *broken = true;
            return 0;
        }
        struct cache_item *it = item(c, i);
        if (it->hash == h && it->keysize == klen && !memcmp(it->key, key, klen)) {
            if (it->expires && it->expires <= now_s()) {
                delete_item(c, i, prev);
                return 0;
            }
            if (prev_out)
                *prev_out = prev;
            return i;
        }
        prev = i;
    }
    return 0;
}

/* The slot holding key (0: none; an expired one is removed on the way); *prev_out its
 * predecessor in the bucket. A chain that loops is corruption: rebuilt, logged. */
static uint64_t find(struct cache *c, const char *key, size_t klen, uint64_t *prev_out)
{
    bool broken = false;
    uint64_t i = find_in_chain(c, key, klen, prev_out, &broken);
    if (broken) {
        log_msg("cache %s: a hash chain loops: rebuilt", c->conf->name);
        cache_rebuild(c, 0);
        i = find_in_chain(c, key, klen, prev_out, &broken);
    }
    return i;
}

static uint64_t sweep_locked(struct cache *c, uint64_t from, uint64_t to, uint64_t now)
{
    uint64_t removed = 0;
    for (uint64_t i = from; i < to; i++) {
        struct cache_item *it = item(c, i);
        if (it->keysize && it->expires && it->expires <= now) {
            remove_slot(c, i);
            removed++;
        }
    }
    return removed;
}

/* The cache has no free slot (or blocks): make room as configured. true if some was made. */
static bool make_room(struct cache *c)
{
    struct cache_shared *sh = c->sh;
    const struct gy_cache_conf *conf = c->conf;
    sh->full++;
    uint64_t now = now_s();
    if (sh->last_full_sweep != now) { /* at most once a second: a full scan */
        sh->last_full_sweep = now;
        if (sweep_locked(c, 1, conf->max_items, now))
            return true;
    }
    if (conf->purge_lru && sh->lru_head) {
        if (!conf->ignore_full)
            log_msg("cache %s: full, the least recently used item purged", conf->name);
        remove_slot(c, sh->lru_head);
        return true;
    }
    if (!conf->ignore_full)
        log_msg("*** DANGER cache \"%s\" is FULL !!! ***", conf->name);
    if (conf->clear_on_full) {
        for (uint64_t i = 1; i < conf->max_items; i++)
            if (item(c, i)->keysize)
                remove_slot(c, i);
        return true;
    }
    return false;
}

/* The value's blocks for a new or resized value of len bytes in slot i; NO_BLOCK if none. */
static uint64_t alloc_blocks(struct cache *c, uint64_t i, uint64_t len)
{
    if (!c->bitmap)
        return i;
    uint64_t b = bitmap_find(c, blocks_for(c, len));
    if (b != NO_BLOCK)
        bitmap_set(c, b, blocks_for(c, len), true);
    return b;
}

/* Copy a value in two halves around a fault step: the crash tests die between them. */
static void copy_value(char *dst, const char *src, size_t len)
{
    memcpy(dst, src, len / 2);
    fault("value-half");
    memcpy(dst + len / 2, src + len / 2, len - len / 2);
}

static int64_t math(enum cache_op op, int64_t a, int64_t b)
{
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b; /* wraps, as uWSGI's int64 does in practice */
    switch (op) {
    case CACHE_INC:
        return (int64_t)(ua + ub);
    case CACHE_DEC:
        return (int64_t)(ua - ub);
    case CACHE_MUL:
        return (int64_t)(ua * ub);
    default: /* CACHE_DIV; by 0 is 0, as uWSGI */
        if (b == 0)
            return 0;
        if (b == -1)
            return (int64_t)(0 - ua);
        return a / b;
    }
}

static bool is_math(enum cache_op op)
{
    return op == CACHE_INC || op == CACHE_DEC || op == CACHE_MUL || op == CACHE_DIV;
}

/* The new value of a key absent until now: SET/UPDATE/APPEND/PREPEND's, or a number. */
static int insert(struct cache *c, const struct cache_req *req, const char *val, size_t vlen)
{
    struct cache_shared *sh = c->sh;
    if (!sh->free_top && !(make_room(c) && sh->free_top))
        return 0;
    uint64_t i = c->free_stack[sh->free_top];
    uint64_t first = alloc_blocks(c, i, vlen);
    if (first == NO_BLOCK) { /* blocks, not slots, are short: room is made once more */
        if (!make_room(c) || !sh->free_top)
            return 0;
        i = c->free_stack[sh->free_top];
        if ((first = alloc_blocks(c, i, vlen)) == NO_BLOCK)
            return 0;
    }
    write_begin(c, i);
    sh->free_top--;
    struct cache_item *it = item(c, i);
    it->keysize = 0; /* set last: a slot with a key is a whole item */
    it->hash = djb33x(req->key, req->klen);
    it->first_block = first;
    it->valsize = vlen;
    it->expires = req->expires ? now_s() + req->expires : 0;
    it->hits = 0;
    memcpy(it->key, req->key, req->klen);
    copy_value(block(c, first), val, vlen);
    it->keysize = req->klen;
    fault("linked");
    uint64_t b = it->hash % c->conf->hashsize;
    it->next = c->hashtable[b];
    c->hashtable[b] = i;
    if (c->conf->purge_lru)
        lru_append(c, i);
    sh->n_items++;
    write_done(c);
    return 1;
}

/* UPDATE of a present key (slot i): the value replaced, the expiry set anew. */
static int replace(struct cache *c, uint64_t i, const struct cache_req *req)
{
    struct cache_item *it = item(c, i);
    uint64_t first = it->first_block;
    bool moved = c->bitmap && blocks_for(c, req->vlen) != blocks_for(c, it->valsize);
    if (moved) {
        bitmap_set(c, first, blocks_for(c, it->valsize), false); /* its own blocks may serve */
        uint64_t nb = alloc_blocks(c, i, req->vlen);
        if (nb == NO_BLOCK) {
            bitmap_set(c, first, blocks_for(c, it->valsize), true);
            c->sh->full++;
            return 0;
        }
        first = nb;
    }
    write_begin(c, i);
    copy_value(block(c, first), req->val, req->vlen);
    it->first_block = first;
    it->valsize = req->vlen;
    it->expires = req->expires ? now_s() + req->expires : 0;
    if (c->conf->purge_lru) {
        lru_unlink(c, i);
        lru_append(c, i);
    }
    write_done(c);
    return 1;
}

static int op_math(struct cache *c, const struct cache_req *req)
{
    uint64_t i = find(c, req->key, req->klen, NULL);
    if (!i) {
        int64_t v = math(req->op, c->conf->math_initial, req->num);
        char buf[8];
        memcpy(buf, &v, 8);
        return insert(c, req, buf, 8);
    }
    struct cache_item *it = item(c, i);
    /* A value that is no number: uWSGI computes on its first 8 bytes (and whatever follows a
     * shorter one in the block) and keeps 8 bytes. gyre the same, a short one zero-padded. */
    if (blocks_for(c, 8) > blocks_for(c, it->valsize))
        return 0; /* 8 bytes would not fit its blocks (bitmap, blocksize < 8) */
    int64_t v = 0;
    char *p = block(c, it->first_block);
    memcpy(&v, p, it->valsize < 8 ? it->valsize : 8);
    v = math(req->op, v, req->num);
    write_begin(c, i);
    if (c->bitmap && blocks_for(c, 8) < blocks_for(c, it->valsize))
        bitmap_set(c, it->first_block + blocks_for(c, 8),
                   blocks_for(c, it->valsize) - blocks_for(c, 8), false);
    memcpy(p, &v, 8);
    it->valsize = 8;
    if (c->conf->purge_lru) {
        lru_unlink(c, i);
        lru_append(c, i);
    }
    write_done(c);
    return 1;
}

/* APPEND/PREPEND: the new value built in place of the old. */
static int op_concat(struct cache *c, const struct cache_req *req)
{
    uint64_t i = find(c, req->key, req->klen, NULL);
    if (!i)
        return insert(c, req, req->val, req->vlen);
    struct cache_item *it = item(c, i);
    uint64_t old = it->valsize, len = old + req->vlen;
    if (len > c->max_item_size || len < old)
        return 0;
    uint64_t first = it->first_block;
    if (c->bitmap && blocks_for(c, len) != blocks_for(c, old)) {
        bitmap_set(c, first, blocks_for(c, old), false);
        uint64_t nb = alloc_blocks(c, i, len);
        if (nb == NO_BLOCK) {
            bitmap_set(c, first, blocks_for(c, old), true);
            c->sh->full++;
            return 0;
        }
        first = nb;
    }
    write_begin(c, i);
    char *dst = block(c, first), *src = block(c, it->first_block);
    if (req->op == CACHE_APPEND) {
        memmove(dst, src, old);
        memcpy(dst + old, req->val, req->vlen);
    } else {
        memmove(dst + req->vlen, src, old);
        memcpy(dst, req->val, req->vlen);
    }
    it->first_block = first;
    it->valsize = len;
    write_done(c);
    return 1;
}

static int op_locked(struct cache *c, const struct cache_req *req, struct cache_out *out)
{
    struct cache_shared *sh = c->sh;
    uint64_t prev = 0, i;
    switch (req->op) {
    case CACHE_GET:
        if (!(i = find(c, req->key, req->klen, NULL))) {
            sh->miss++;
            return 0;
        }
        sh->hits++;
        item(c, i)->hits++;
        if (c->conf->purge_lru) {
            lru_unlink(c, i);
            lru_append(c, i);
        }
        {
            struct cache_item *it = item(c, i);
            char *dst = out->alloc(out->ctx, it->valsize);
            if (!dst)
                return -1;
            memcpy(dst, block(c, it->first_block), it->valsize);
        }
        return 1;
    case CACHE_NUM:
        out->num = 0;
        if (!(i = find(c, req->key, req->klen, NULL))) {
            sh->miss++;
            return 0;
        }
        sh->hits++;
        if (item(c, i)->valsize == 8)
            memcpy(&out->num, block(c, item(c, i)->first_block), 8);
        return 1;
    case CACHE_EXISTS:
        return find(c, req->key, req->klen, NULL) ? 1 : 0;
    case CACHE_DEL:
        if (!(i = find(c, req->key, req->klen, &prev)))
            return 0;
        delete_item(c, i, prev);
        return 1;
    case CACHE_CLEAR:
        for (i = 1; i < c->conf->max_items; i++)
            if (item(c, i)->keysize)
                remove_slot(c, i);
        return 1;
    case CACHE_KEYS: {
        uint64_t now = now_s();
        for (i = 1; i < c->conf->max_items; i++) {
            struct cache_item *it = item(c, i);
            if (it->keysize && (!it->expires || it->expires > now) &&
                out->key(out->ctx, it->key, it->keysize))
                return -1;
        }
        return 1;
    }
    case CACHE_SET:
    case CACHE_UPDATE:
        if ((i = find(c, req->key, req->klen, NULL)))
            return req->op == CACHE_UPDATE ? replace(c, i, req) : 0;
        return insert(c, req, req->val, req->vlen);
    case CACHE_APPEND:
    case CACHE_PREPEND:
        return op_concat(c, req);
    default:
        return op_math(c, req);
    }
}

int cache_do(struct cache *c, const struct cache_req *req, struct cache_out *out)
{
    if (!c->sh) {
        errno = EINVAL;
        return -1;
    }
    /* What no store could hold, refused before the lock (uWSGI's answers: not done). */
    out->num = 0;
    bool keyed = req->op != CACHE_CLEAR && req->op != CACHE_KEYS;
    if (keyed && (!req->klen || req->klen > c->conf->keysize))
        return 0;
    bool valued = req->op == CACHE_SET || req->op == CACHE_UPDATE || req->op == CACHE_APPEND ||
                  req->op == CACHE_PREPEND;
    if (valued && (!req->vlen || req->vlen > c->max_item_size))
        return 0;
    if (is_math(req->op) && 8 > c->max_item_size)
        return 0;
    if (cache_lock(c) < 0)
        return -1;
    int rc = op_locked(c, req, out);
    cache_unlock(c);
    return rc;
}

uint64_t cache_sweep(struct cache *c)
{
    uint64_t removed = 0, now = now_s();
    /* In chunks: a worker waits for one chunk at most, not for the whole scan. */
    for (uint64_t from = 1; from < c->conf->max_items; from += 1024) {
        uint64_t to = from + 1024 < c->conf->max_items ? from + 1024 : c->conf->max_items;
        if (cache_lock(c) < 0)
            return removed;
        removed += sweep_locked(c, from, to, now);
        cache_unlock(c);
    }
    return removed;
}

void cache_get_stats(const struct cache *c, struct cache_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!c->sh)
        return;
    /* Read without the lock: counters, a moment's snapshot. */
    st->items = c->sh->n_items;
    st->hits = c->sh->hits;
    st->miss = c->sh->miss;
    st->full = c->sh->full;
    st->last_modified_at = c->sh->last_modified_at;
}

/* ---- every cache of the configuration -------------------------------------------------- */

static struct {
    struct cache caches[GY_MAX_CACHES + 1];
    int n;
    const struct gy_config *cfg;
    double next_sweep;
} R;

/* spec is "[CACHE ]REST": REST when it is meant for cache c (no CACHE: every cache). */
static const char *for_cache(const struct cache *c, const char *spec)
{
    const char *space = strchr(spec, ' ');
    if (!space)
        return spec;
    size_t n = (size_t)(space - spec);
    return strlen(c->conf->name) == n && !strncmp(spec, c->conf->name, n) ? space + 1 : NULL;
}

static void preload_one(struct cache *c, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct cache_req req = { .op = CACHE_SET, .key = key, .klen = klen, .val = val, .vlen = vlen };
    struct cache_out out = { 0 };
    if (cache_do(c, &req, &out) == 1)
        log_msg("cache %s: stored \"%.*s\"", c->conf->name, (int)klen, key);
    else
        log_msg("cache %s: could not store \"%.*s\" (%zu bytes: there already, too big, or the "
                "cache full)",
                c->conf->name, (int)klen, key, vlen);
}

/* --add-cache-item and --load-file-in-cache, as uWSGI: set (never overwriting) at start. */
static void preload(struct cache *c, const struct gy_config *cfg)
{
    for (int i = 0; i < cfg->nadd_cache_item; i++) {
        const char *kv = for_cache(c, cfg->add_cache_item[i]);
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (eq)
            preload_one(c, kv, (size_t)(eq - kv), eq + 1, strlen(eq + 1));
    }
    for (int i = 0; i < cfg->nload_file_in_cache; i++) {
        const char *path = for_cache(c, cfg->load_file_in_cache[i]);
        if (!path)
            continue;
        errno = 0;
        FILE *f = fopen(path, "rb");
        char *buf = NULL;
        long size = -1;
        if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
            fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size + 1)) &&
            fread(buf, 1, (size_t)size, f) == (size_t)size)
            preload_one(c, path, strlen(path), buf, (size_t)size);
        else
            log_msg("cache %s: unable to read file \"%s\": %s", c->conf->name, path,
                    errno ? strerror(errno) : "short read");
        free(buf);
        if (f)
            fclose(f);
    }
}

int caches_create(const struct gy_config *cfg)
{
    R.cfg = cfg;
    for (int i = R.n; i < cfg->ncaches; i++) {
        char err[512];
        if (cache_open(&R.caches[i], &cfg->caches[i], err, sizeof(err)) < 0) {
            log_msg("%s", err);
            return -1;
        }
        const struct gy_cache_conf *cc = &cfg->caches[i];
        if (cc->store_redis)
            log_msg("cache \"%s\": on Redis %s", cc->name, cc->store);
        else
            log_msg("cache \"%s\": %llu items, %llu blocks of %llu bytes, keys up to %llu "
                    "bytes%s%s (%zu KiB shared)",
                    cc->name, cc->max_items - 1, cc->blocks, cc->blocksize, cc->keysize,
                    cc->bitmap ? ", bitmap" : "", cc->purge_lru ? ", LRU purge" : "",
                    R.caches[i].map_size / 1024);
        R.n = i + 1;
        if (!cc->store_redis)
            preload(&R.caches[i], cfg);
    }
    return 0;
}

int caches_count(void)
{
    return R.n;
}

struct cache *caches_at(int i)
{
    return i >= 0 && i < R.n ? &R.caches[i] : NULL;
}

struct cache *caches_find(const char *name)
{
    if (!R.n)
        return NULL;
    if (!name || !*name)
        return &R.caches[0];
    for (int i = 0; i < R.n; i++)
        if (!strcmp(R.caches[i].conf->name, name))
            return &R.caches[i];
    return NULL;
}

void caches_sweep(double now)
{
    if (!R.n || R.cfg->cache_no_expire || now < R.next_sweep)
        return;
    R.next_sweep = now + (R.cfg->cache_expire_freq > 0 ? R.cfg->cache_expire_freq : 3);
    for (int i = 0; i < R.n; i++) {
        struct cache *c = &R.caches[i];
        if (!c->sh || c->conf->no_expire)
            continue;
        uint64_t n = cache_sweep(c);
        if (n && R.cfg->cache_report_freed)
            log_msg("freed %llu items for cache \"%s\"", (unsigned long long)n, c->conf->name);
    }
}
