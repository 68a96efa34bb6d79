/* SPDX-License-Identifier: MIT */
/* Chunked bump allocator. The first chunk is kept across resets, so an arena
 * reset after every stanza costs no malloc in the steady state. */
#include "arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"

#define ARENA_ALIGN       16
#define ARENA_DEFAULT_CHK 4096

struct chunk {
    struct chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct arena {
    struct chunk *head; /* current chunk; older ones follow */
    size_t chunk_size;
    size_t used;
    size_t footprint;
};

static struct chunk *chunk_new(size_t size)
{
    struct chunk *c = xcalloc(1, sizeof(*c) + size);
    c->size = size;
    return c;
}

struct arena *arena_new(size_t chunk_size)
{
    struct arena *a = xcalloc(1, sizeof(*a));
    a->chunk_size = chunk_size ? chunk_size : ARENA_DEFAULT_CHK;
    return a;
}

void arena_free(struct arena **ap)
{
    struct arena *a = *ap;
    if (a == NULL)
        return;
    for (struct chunk *c = a->head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
    *ap = NULL;
}

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

void *arena_alloc(struct arena *a, size_t n)
{
    size_t need = align_up(n ? n : 1);
    if (need < n)
        log_fatal(NULL, PL_EXIT_NOMEM, "arena allocation of %zu bytes overflows", n);

    struct chunk *c = a->head;
    if (c == NULL || c->size - c->used < need) {
        if (need > a->chunk_size / 4) {
            /* Big allocation: its own chunk, linked behind the current one
             * so the current chunk's free tail stays in use. */
            struct chunk *big = chunk_new(need);
            big->used = need;
            if (c != NULL) {
                big->next = c->next;
                c->next = big;
            } else {
                a->head = big;
            }
            a->used += need;
            a->footprint += need;
            return big->data;
        }
        c = chunk_new(a->chunk_size);
        c->next = a->head;
        a->head = c;
        a->footprint += c->size;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->used += need;
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    return p; /* zero-filled, so already terminated */
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_vprintf(struct arena *a, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        pl_panic(__FILE__, __LINE__, "bad format string \"%s\"", fmt);
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = arena_vprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

void arena_reset(struct arena *a)
{
    if (a->head == NULL)
        return;
    /* Keep the oldest regular chunk: it is the one most likely to be reused.
     * Regular chunks are pushed at the head but big ones are linked behind
     * the current chunk, so the oldest regular chunk need not be the last. */
    struct chunk *keep = NULL;
    for (struct chunk *c = a->head; c != NULL; c = c->next) {
        if (c->size == a->chunk_size)
            keep = c;
    }
    for (struct chunk *c = a->head, *next; c != NULL; c = next) {
        next = c->next;
        if (c != keep)
            free(c);
    }
    if (keep != NULL) {
        memset(keep->data, 0, keep->used);
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
    a->used = 0;
    a->footprint = keep ? keep->size : 0;
}

size_t arena_used(const struct arena *a)
{
    return a->used;
}

size_t arena_footprint(const struct arena *a)
{
    return a->footprint;
}
