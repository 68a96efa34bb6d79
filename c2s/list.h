/* SPDX-License-Identifier: MIT */
/* An intrusive circular doubly linked list: O(1) insert and remove for the
 * c2s's ordered lists (idle, output silence, throttled, timed sessions). */
#ifndef PL_C2S_LIST_H
#define PL_C2S_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* Embedded in the listed object; a list head is the same struct. A link
 * that is on no list points at itself (after list_init or list_remove). */
struct list {
    struct list *prev, *next;
};

#define LIST_ENTRY(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void list_init(struct list *l)
{
    l->prev = l->next = l;
}

static inline bool list_empty(const struct list *l)
{
    return l->next == l;
}

static inline bool list_linked(const struct list *l)
{
    return l->next != l;
}

static inline void list_remove(struct list *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

/* Appends l at the tail of head (removing it first from where it was). */
static inline void list_push_tail(struct list *head, struct list *l)
{
    if (list_linked(l))
        list_remove(l);
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

/* The first element, or NULL when empty. */
static inline struct list *list_first(const struct list *head)
{
    return list_empty(head) ? NULL : head->next;
}

#endif
