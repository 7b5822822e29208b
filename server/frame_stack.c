/*
 * Small Python frame stacks for greenlet cores.
 *
 * CPython 3.11 pushes a call's frame on the thread state's data stack: a chain of chunks, the
 * current one between datastack_top and datastack_limit. When a frame does not fit, it links
 * a new chunk of at least 16 KiB, and frees it again when the call that needed it returns; the
 * first ("root") chunk of a chain is never popped. greenlet saves and restores these three
 * fields at every switch, and starts each new greenlet with none, so the greenlet's first call
 * makes it a root chunk of 16 KiB: mapped, with its first page touched. Most parked requests
 * use a few hundred bytes of it.
 *
 * Here a core's greenlet starts on a CHUNK_SIZE root chunk of a pool instead (frame_stack_adopt,
 * first thing in the greenlet's run), four to a page. CPython sees an ordinary root chunk: its
 * size field says how far it reaches, and a deeper stack links CPython's own 16 KiB chunks
 * after it and pops them as usual. Every chunk CPython or greenlet frees goes through the arena
 * allocator (_PyObject_VirtualFree, and greenlet's own release of a finished greenlet's
 * chain), which is why this file installs one: it takes the pool's chunks back, and hands all
 * else to the allocator that was there before.
 *
 * A stack that oscillates across the end of a small root chunk would map and unmap a 16 KiB
 * chunk on every call; the arena allocator therefore keeps a few freed 16 KiB chunks for reuse.
 *
 * Everything runs under the GIL (CPython allocates frames and arenas only with it held).
 * The layout of PyThreadState and _PyStackChunk is CPython 3.11's and 3.12's; elsewhere this
 * file does nothing.
 *
 * Depends on: nothing in server/ (server/README)
 */
#include <Python.h>

#include "frame_stack.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
#define FRAME_STACK_SUPPORTED 1
#else
#define FRAME_STACK_SUPPORTED 0
#endif

/* A root chunk: its header (24 bytes), the slot CPython skips in a root chunk, and about
 * 120 pointers of frames: the seed's app and a middleware or two. A deeper stack grows into
 * CPython's own chunks. */
#define CHUNK_SIZE 1024
/* CPython's DATA_STACK_CHUNK_SIZE: the smallest chunk it links after a full one. */
#define CPYTHON_CHUNK_SIZE (16 * 1024)
#define SPARE_MAX 16

struct frame_stack_pool {
    char *base; /* ncores * CHUNK_SIZE of address space */
    size_t nchunks;
    size_t next_unused; /* chunks below it have been handed out at least once */
    void *free_list;    /* freed chunks: each one's first word links the next */
    size_t in_use;
    void *spare[SPARE_MAX]; /* freed CPython chunks of CPYTHON_CHUNK_SIZE, for reuse */
    int nspare;
    PyObjectArenaAllocator next; /* the arena allocator this one stands in front of */
};

static struct frame_stack_pool P;

static bool in_pool(const void *p)
{
    return P.base && (const char *)p >= P.base && (const char *)p < P.base + P.nchunks * CHUNK_SIZE;
}

static void *arena_alloc(void *ctx, size_t size)
{
    (void)ctx;
    if (size == CPYTHON_CHUNK_SIZE && P.nspare > 0)
        return P.spare[--P.nspare];
    return P.next.alloc(P.next.ctx, size);
}

static void arena_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    if (in_pool(p)) {
        *(void **)p = P.free_list;
        P.free_list = p;
        P.in_use--;
        return;
    }
    if (size == CPYTHON_CHUNK_SIZE && P.nspare < SPARE_MAX) {
        P.spare[P.nspare++] = p;
        return;
    }
    P.next.free(P.next.ctx, p, size);
}

int frame_stack_init(int ncores)
{
    if (!FRAME_STACK_SUPPORTED || ncores <= 0 || P.base)
        return 0;
    size_t len = (size_t)ncores * CHUNK_SIZE;
    /* Address space only: the kernel backs a page when a core first runs on it. */
    void *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return -1;
    P.base = base;
    P.nchunks = (size_t)ncores;
    PyObject_GetArenaAllocator(&P.next);
    PyObjectArenaAllocator mine = { NULL, arena_alloc, arena_free };
    PyObject_SetArenaAllocator(&mine);
    return 0;
}

void frame_stack_adopt(void)
{
#if FRAME_STACK_SUPPORTED
    PyThreadState *ts = PyThreadState_Get();
    if (!P.base || ts->datastack_chunk)
        return;
    char *chunk;
    if (P.free_list) {
        chunk = P.free_list;
        P.free_list = *(void **)chunk;
    } else if (P.next_unused < P.nchunks) {
        chunk = P.base + P.next_unused++ * CHUNK_SIZE;
    } else {
        return; /* more live greenlets than cores (abandoned ones): CPython's own chunk */
    }
    P.in_use++;
    _PyStackChunk *root = (_PyStackChunk *)chunk;
    root->previous = NULL;
    root->size = CHUNK_SIZE;
    root->top = 0;
    ts->datastack_chunk = root;
    /* As CPython's push_chunk does for a root chunk: the first slot stays unused, so that
     * popping the first frame never finds it at the chunk's start and frees the root. */
    ts->datastack_top = &root->data[1];
    ts->datastack_limit = (PyObject **)(chunk + CHUNK_SIZE);
#endif
}

size_t frame_stack_in_use(void)
{
    return P.in_use;
}

size_t frame_stack_chunk_size(void)
{
    return CHUNK_SIZE;
}
