/* SPDX-License-Identifier: MIT */
/* A bump allocator over chunks for per-connection, per-stanza and scratch
 * lifetimes: allocate freely, free everything at once. */
#ifndef PL_ARENA_H
#define PL_ARENA_H

#include <stdarg.h>
#include <stddef.h>

#include "attr.h"

struct arena;

/* chunk_size is the size of each chunk (0 means 4 KiB); allocations larger
 * than a quarter of it get a chunk of their own. */
struct arena *arena_new(size_t chunk_size);
/* Frees the arena and everything allocated from it; sets *a to NULL. */
void arena_free(struct arena **a);

/* Returns n zero-filled bytes aligned for any type, valid until the next
 * arena_reset or arena_free. */
void *arena_alloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
/* Copies n bytes of s (which need not be terminated) and terminates the copy. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) PL_PRINTF(2, 3);
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap) PL_PRINTF(2, 0);

/* Forgets every allocation but keeps the first chunk for reuse. */
void arena_reset(struct arena *a);
/* Bytes handed out since the last reset. */
size_t arena_used(const struct arena *a);
/* Bytes of chunks held, including the unused tails. */
size_t arena_footprint(const struct arena *a);

#endif
