/*
 * An intrusive doubly linked list, as in nginx's ngx_queue_t: a struct gy_link member in the
 * element, a struct gy_link as the list head. Three lines a function, inline.
 */
#ifndef GYRE_LIST_H
#define GYRE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct gy_link {
    struct gy_link *prev, *next;
};

static inline void link_init(struct gy_link *l)
{
    l->prev = l->next = l;
}
static inline bool link_empty(const struct gy_link *l)
{
    return l->next == l;
}
static inline void link_remove(struct gy_link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
static inline void link_append(struct gy_link *head, struct gy_link *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
#define link_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
