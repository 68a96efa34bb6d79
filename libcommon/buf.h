/* SPDX-License-Identifier: MIT */
/* The one growable byte buffer: binary-safe and always NUL-terminated past
 * len, so its data can be handed to C string functions when it holds text. */
#ifndef PL_BUF_H
#define PL_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "attr.h"

struct buf {
    char *data; /* NULL until the first append; "" is never NULL once used */
    size_t len;
    size_t cap;
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_init(struct buf *b);
/* Frees the storage; b is left empty and reusable. */
void buf_fini(struct buf *b);
/* Makes room for at least n more bytes without changing len. */
void buf_reserve(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) PL_PRINTF(2, 3);
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) PL_PRINTF(2, 0);
/* Drops the first n bytes (n <= len), keeping the rest. */
void buf_consume(struct buf *b, size_t n);
/* Sets len to 0, keeping the storage. */
void buf_reset(struct buf *b);
/* Returns the heap storage (caller frees; never NULL) and leaves b empty. */
char *buf_detach(struct buf *b, size_t *len_r);
/* Returns the contents as a C string ("" when empty); valid until the next change. */
const char *buf_cstr(const struct buf *b);

#endif
