/* SPDX-License-Identifier: MIT */
/* Typed records: building, reading, and parsing database text into fields. */
#include "store_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

struct store_rec *store_rec_new(struct arena *a)
{
    return arena_alloc(a, sizeof(struct store_rec));
}

static struct store_field *slot(struct arena *a, struct store_rec *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->f[i].name, name) == 0) {
            const char *keep = r->f[i].name;
            memset(&r->f[i], 0, sizeof(r->f[i]));
            r->f[i].name = keep;
            return &r->f[i];
        }
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        struct store_field *f = arena_alloc(a, cap * sizeof(*f));
        if (r->n)
            memcpy(f, r->f, r->n * sizeof(*f));
        r->f = f;
        r->cap = cap;
    }
    struct store_field *f = &r->f[r->n++];
    f->name = arena_strdup(a, name);
    return f;
}

void store_rec_str(struct arena *a, struct store_rec *r, const char *name, const char *v)
{
    struct store_field *f = slot(a, r, name);
    f->type = STORE_T_STR;
    f->s = arena_strdup(a, v);
}

void store_rec_xml(struct arena *a, struct store_rec *r, const char *name, const char *v)
{
    struct store_field *f = slot(a, r, name);
    f->type = STORE_T_XML;
    f->s = arena_strdup(a, v);
}

void store_rec_int(struct arena *a, struct store_rec *r, const char *name, int64_t v)
{
    struct store_field *f = slot(a, r, name);
    f->type = STORE_T_INT;
    f->i = v;
}

void store_rec_bool(struct arena *a, struct store_rec *r, const char *name, bool v)
{
    struct store_field *f = slot(a, r, name);
    f->type = STORE_T_BOOL;
    f->b = v;
}

void store_rec_time(struct arena *a, struct store_rec *r, const char *name, int64_t us)
{
    struct store_field *f = slot(a, r, name);
    f->type = STORE_T_TIME;
    f->i = us;
}

void store_rec_null(struct arena *a, struct store_rec *r, const char *name, enum store_type t)
{
    struct store_field *f = slot(a, r, name);
    f->type = t;
    f->null = true;
}

const struct store_field *store_rec_field(const struct store_rec *r, const char *name)
{
    for (size_t i = 0; r != NULL && i < r->n; i++) {
        if (strcmp(r->f[i].name, name) == 0)
            return &r->f[i];
    }
    return NULL;
}

const char *store_rec_get_str(const struct store_rec *r, const char *name, const char *fallback)
{
    const struct store_field *f = store_rec_field(r, name);
    if (f == NULL || f->null || (f->type != STORE_T_STR && f->type != STORE_T_XML))
        return fallback;
    return f->s;
}

int64_t store_rec_get_int(const struct store_rec *r, const char *name, int64_t fallback)
{
    const struct store_field *f = store_rec_field(r, name);
    if (f == NULL || f->null || (f->type != STORE_T_INT && f->type != STORE_T_TIME))
        return fallback;
    return f->i;
}

bool store_rec_get_bool(const struct store_rec *r, const char *name, bool fallback)
{
    const struct store_field *f = store_rec_field(r, name);
    if (f == NULL || f->null || f->type != STORE_T_BOOL)
        return fallback;
    return f->b;
}

int store_field_from_text(struct arena *a, struct store_field *f, enum store_type t,
                          const char *text)
{
    f->type = t;
    f->null = false;
    switch (t) {
    case STORE_T_STR:
    case STORE_T_XML:
        f->s = arena_strdup(a, text);
        return 0;
    case STORE_T_INT:
    case STORE_T_TIME: {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0')
            return -1;
        f->i = v;
        return 0;
    }
    case STORE_T_BOOL:
        if (!strcmp(text, "t") || !strcmp(text, "true") || !strcmp(text, "1")) {
            f->b = true;
            return 0;
        }
        if (!strcmp(text, "f") || !strcmp(text, "false") || !strcmp(text, "0")) {
            f->b = false;
            return 0;
        }
        return -1;
    }
    return -1;
}
