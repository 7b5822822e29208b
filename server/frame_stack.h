/*
 * Small Python frame stacks for greenlet cores (frame_stack.c).
 *
 * CPython 3.11 keeps a thread's Python frames in a chain of "data stack" chunks, and greenlet
 * gives every greenlet a chain of its own, starting with a fresh 16 KiB chunk whose first page
 * is always touched. A parked request holds its greenlet's first page even when its frames
 * take a few hundred bytes: 4 KiB of each parked request's memory. A core's greenlet starts on
 * a small chunk from this pool instead, and only a deeper stack grows into CPython's own chunks.
 */
#ifndef GYRE_FRAME_STACK_H
#define GYRE_FRAME_STACK_H

#include <stddef.h>

/* Room for `ncores` first chunks (address space only: a page is touched when a core first runs
 * there), and the arena allocator that takes them back. 0, or -1 with errno set. */
int frame_stack_init(int ncores);

/* Called first thing in a core's new greenlet, before any Python frame exists there: start its
 * frame stack on a pool chunk. Does nothing when the pool is spent, or when the greenlet
 * already has a frame stack (a greenlet or CPython that does not start greenlets empty). */
void frame_stack_adopt(void);

/* The pool's chunks held by greenlets now, and the size of each. */
size_t frame_stack_in_use(void);
size_t frame_stack_chunk_size(void);

#endif
