/* SPDX-License-Identifier: MIT */
/* Heap allocation that never returns NULL: on failure the process logs and
 * exits with PL_EXIT_NOMEM, so no caller checks. */
#ifndef PL_ALLOC_H
#define PL_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
/* Zero-filled; the product nmemb * size is overflow-checked. */
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Copies at most n bytes of s and terminates the copy. */
char *xstrndup(const char *s, size_t n);
/* Frees *p and sets it to NULL. */
void xfree(void *pp);

#endif
