/* SPDX-License-Identifier: MIT */
/* The typed configuration loader: expat builds a small element tree of the
 * file, which is then walked against the tables' keys to fill their structs,
 * with file:line errors naming the key. */
#include "conf.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "err.h"

#define CONF_MAX_DEPTH 32
#define CONF_MAX_FILE  (16UL * 1024 * 1024)
#define CONF_ERR_COND  XMPP_COND_UNDEFINED_CONDITION

/* Clip lengths keep "file:line: <path>: reason" inside struct err's text. */
#define CLIP_NAME  72
#define CLIP_PATH  80
#define CLIP_VALUE 40
#define CLIP_ENUMS 96

#define KIB 1024UL
#define MIB (1024UL * KIB)
#define GIB (1024UL * MIB)

/* One element of the file. */
struct node {
    const char *name;
    unsigned long line;
    const char **attrs; /* name, value, ..., NULL */
    const char *text;   /* trimmed of surrounding whitespace */
    struct node *child, *last, *next;
};

/* expat callback state. */
struct xml_state {
    XML_Parser p;
    struct arena *tmp;
    struct node *root;
    struct node *stack[CONF_MAX_DEPTH];
    struct buf text[CONF_MAX_DEPTH];
    int depth;
    const char *fail; /* our own reason to stop, e.g. a DOCTYPE */
    unsigned long fail_line;
};

/* One struct being filled at the current level: the tables at the top, the
 * sub-table of one group occurrence inside it. */
struct slot {
    const struct conf_table *t;
    void *out;
    unsigned long *seen; /* per key: the line it was first given at, 0 = not yet */
};

/* A list value waiting for its key's check (conf_check_fn), which runs
 * once every value is loaded. */
struct check_later {
    const struct conf_key *k;
    const void *out;
    const char *value, *path; /* path: "<a><b>" as errors name it */
    unsigned long line;
    struct check_later *next;
};

struct loader {
    const char *name; /* the file as named, for messages */
    const char *base; /* folder for relative paths; NULL leaves them relative */
    struct arena *a;  /* results */
    struct arena *tmp;
    const char *const *ignore;
    struct err *err;
    const char *names[CONF_MAX_DEPTH]; /* elements from below <parley> to the current one */
    int depth;
    struct check_later *checks, **checks_tail; /* in file order */
};

/* ---- error text ---- */

/* Drops a UTF-8 sequence cut short at the end of s. */
static void trim_partial_utf8(char *s)
{
    size_t n = strlen(s);
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0 || (unsigned char)s[i - 1] < 0x80)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (n - (i - 1) < want)
        s[i - 1] = '\0';
}

/* Copies at most max bytes of s to dst (cap >= max + 4), control characters
 * shown as '?', marking a cut with "..." at the end or, with tail, keeping
 * the end of s behind a leading "...". */
static const char *clip(char *dst, size_t cap, const char *s, size_t max, bool tail)
{
    size_t n = strlen(s);
    const char *from = s;
    const char *pre = "", *post = "";
    if (n > max) {
        if (tail) {
            from = s + n - max;
            while (((unsigned char)*from & 0xC0) == 0x80)
                from++;
            pre = "...";
        } else {
            post = "...";
        }
        n = n - (size_t)(from - s) > max ? max : n - (size_t)(from - s);
    }
    size_t o = 0;
    o += (size_t)snprintf(dst + o, cap - o, "%s", pre);
    for (size_t i = 0; i < n && o + 1 < cap; i++)
        dst[o++] = (unsigned char)from[i] < 0x20 || from[i] == 0x7f ? '?' : from[i];
    dst[o] = '\0';
    trim_partial_utf8(dst);
    if (*post)
        snprintf(dst + strlen(dst), cap - strlen(dst), "%s", post);
    return dst;
}

/* Writes the key path "<a><b>" or "<a><b @c>" of the current element stack
 * followed by suffix (a key path relative to it, "x.y@z", or NULL); the root
 * itself is "<parley>". */
static void render_path(const struct loader *ld, const char *suffix, struct buf *b)
{
    int nel = 0;
    for (int i = 0; i < ld->depth; i++, nel++)
        buf_printf(b, "<%s>", ld->names[i]);
    const char *attr = NULL;
    if (suffix != NULL) {
        const char *at = strchr(suffix, '@');
        const char *end = at ? at : suffix + strlen(suffix);
        for (const char *p = suffix; p < end;) {
            const char *dot = memchr(p, '.', (size_t)(end - p));
            const char *stop = dot ? dot : end;
            buf_printf(b, "<%.*s>", (int)(stop - p), p);
            nel++;
            p = dot ? dot + 1 : end;
        }
        attr = at ? at + 1 : NULL;
    }
    if (nel == 0)
        buf_append_str(b, "<parley>");
    if (attr == NULL)
        return;
    b->data[--b->len] = '\0'; /* reopen the last element for the attribute */
    buf_printf(b, " @%s>", attr);
}

/* Sets err to "name[:line]: [<path>: ]reason" and returns -1. */
static int fail_at(struct loader *ld, unsigned long line, bool with_path, const char *suffix,
                   const char *fmt, ...) PL_PRINTF(5, 6);

static int fail_at(struct loader *ld, unsigned long line, bool with_path, const char *suffix,
                   const char *fmt, ...)
{
    char name[CLIP_NAME + 8], path[CLIP_PATH + 8], lnum[32] = "", reason[256];
    struct buf pb = BUF_INIT;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    clip(name, sizeof(name), ld->name, CLIP_NAME, true);
    if (line > 0)
        snprintf(lnum, sizeof(lnum), ":%lu", line);
    if (with_path) {
        render_path(ld, suffix, &pb);
        clip(path, sizeof(path), buf_cstr(&pb), CLIP_PATH, true);
        buf_fini(&pb);
        err_set(ld->err, CONF_ERR_COND, "%s%s: %s: %s", name, lnum, path, reason);
    } else {
        err_set(ld->err, CONF_ERR_COND, "%s%s: %s", name, lnum, reason);
    }
    if (ld->err != NULL)
        trim_partial_utf8(ld->err->text);
    return -1;
}

/* ---- XML to tree ---- */

static void xml_stop(struct xml_state *xs, const char *reason)
{
    if (xs->fail == NULL) {
        xs->fail = reason;
        xs->fail_line = XML_GetCurrentLineNumber(xs->p);
    }
    XML_StopParser(xs->p, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct xml_state *xs = ud;
    if (xs->depth >= CONF_MAX_DEPTH) {
        xml_stop(xs, "elements nested too deep");
        return;
    }
    struct node *n = arena_alloc(xs->tmp, sizeof(*n));
    n->name = arena_strdup(xs->tmp, name);
    n->line = XML_GetCurrentLineNumber(xs->p);
    size_t na = 0;
    while (attrs[na] != NULL)
        na++;
    n->attrs = arena_alloc(xs->tmp, (na + 1) * sizeof(*n->attrs));
    for (size_t i = 0; i < na; i++)
        n->attrs[i] = arena_strdup(xs->tmp, attrs[i]);

    if (xs->depth == 0) {
        xs->root = n;
    } else {
        struct node *parent = xs->stack[xs->depth - 1];
        if (parent->last != NULL)
            parent->last->next = n;
        else
            parent->child = n;
        parent->last = n;
    }
    buf_reset(&xs->text[xs->depth]);
    xs->stack[xs->depth++] = n;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct xml_state *xs = ud;
    (void)name;
    struct node *n = xs->stack[--xs->depth];
    const struct buf *t = &xs->text[xs->depth];
    size_t from = 0, to = t->len;
    while (from < to && is_space(t->data[from]))
        from++;
    while (to > from && is_space(t->data[to - 1]))
        to--;
    n->text = arena_strndup(xs->tmp, t->len ? t->data + from : "", to - from);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct xml_state *xs = ud;
    if (xs->depth > 0)
        buf_append(&xs->text[xs->depth - 1], s, (size_t)len);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    xml_stop(ud, "DOCTYPE is not allowed");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation)
{
    (void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid;
    (void)pubid, (void)notation;
    xml_stop(ud, "entity declarations are not allowed");
}

/* Parses data into a tree in ld->tmp. */
static int parse_xml(struct loader *ld, const char *data, size_t len, struct node **root_r)
{
    struct xml_state xs;
    memset(&xs, 0, sizeof(xs));
    xs.tmp = ld->tmp;
    if (len > CONF_MAX_FILE)
        return fail_at(ld, 0, false, NULL, "file is larger than %lu bytes", CONF_MAX_FILE);

    xs.p = XML_ParserCreate(NULL);
    if (xs.p == NULL)
        pl_panic(__FILE__, __LINE__, "XML_ParserCreate failed");
    XML_SetUserData(xs.p, &xs);
    XML_SetElementHandler(xs.p, on_start, on_end);
    XML_SetCharacterDataHandler(xs.p, on_text);
    XML_SetStartDoctypeDeclHandler(xs.p, on_doctype);
    XML_SetEntityDeclHandler(xs.p, on_entity_decl);
    XML_SetParamEntityParsing(xs.p, XML_PARAM_ENTITY_PARSING_NEVER);

    int rc = 0;
    if (XML_Parse(xs.p, data, (int)len, XML_TRUE) != XML_STATUS_OK) {
        if (xs.fail != NULL)
            rc = fail_at(ld, xs.fail_line, false, NULL, "%s", xs.fail);
        else
            rc = fail_at(ld, XML_GetCurrentLineNumber(xs.p), false, NULL, "malformed XML: %s",
                         XML_ErrorString(XML_GetErrorCode(xs.p)));
    }
    XML_ParserFree(xs.p);
    for (int i = 0; i < CONF_MAX_DEPTH; i++)
        buf_fini(&xs.text[i]);
    if (rc == 0 && xs.root == NULL)
        rc = fail_at(ld, 0, false, NULL, "no root element"); /* expat refuses this first */
    if (rc == 0)
        *root_r = xs.root;
    return rc;
}

/* ---- values ---- */

static void store(void *out, size_t offset, const void *v, size_t n)
{
    memcpy((char *)out + offset, v, n);
}

/* Reads an unsigned decimal prefix of s into *v_r; returns the rest, or
 * NULL when there are no digits or the number overflows. */
static const char *read_digits(const char *s, unsigned long long *v_r)
{
    unsigned long long v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    *v_r = v;
    return p == s ? NULL : p;
}

static bool parse_long(const char *s, long *v_r)
{
    bool neg = *s == '-';
    unsigned long long u;
    const char *end = read_digits(s + neg, &u);
    if (end == NULL || *end != '\0')
        return false;
    if (neg ? u > (unsigned long long)LONG_MAX + 1 : u > (unsigned long long)LONG_MAX)
        return false;
    if (!neg)
        *v_r = (long)u;
    else
        *v_r = u == (unsigned long long)LONG_MAX + 1 ? LONG_MIN : -(long)u;
    return true;
}

/* Multiplies with overflow check. */
static bool mul_ok(unsigned long long v, unsigned long long m, unsigned long long *r)
{
    if (m != 0 && v > ULLONG_MAX / m)
        return false;
    *r = v * m;
    return true;
}

struct unit {
    const char *suffix;
    unsigned long long mult;
};

static const struct unit size_units[] = {
    {"", 1}, {"k", KIB}, {"K", KIB}, {"m", MIB}, {"M", MIB}, {"g", GIB}, {"G", GIB}, {NULL, 0},
};
static const struct unit duration_units[] = {
    {"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60UL * 1000}, {"h", 3600UL * 1000}, {NULL, 0},
};

/* Reads digits followed by one of the units' suffixes. */
static bool parse_units(const char *s, const struct unit *units, unsigned long long *v_r)
{
    unsigned long long v;
    const char *end = read_digits(s, &v);
    if (end == NULL)
        return false;
    for (const struct unit *u = units; u->suffix != NULL; u++) {
        if (strcmp(end, u->suffix) == 0)
            return mul_ok(v, u->mult, v_r);
    }
    return false;
}

/* Number formats for bounds in messages and for conf_dump. */
static void fmt_plain(char *dst, size_t cap, long v)
{
    snprintf(dst, cap, "%ld", v);
}

static void fmt_size(char *dst, size_t cap, long v)
{
    static const char units[] = "GMK";
    unsigned long long m = GIB;
    for (size_t i = 0; i < 3; i++, m /= KIB) {
        if (v != 0 && v % (long long)m == 0) {
            snprintf(dst, cap, "%lld%c", v / (long long)m, units[i]);
            return;
        }
    }
    snprintf(dst, cap, "%ld", v);
}

static void fmt_duration(char *dst, size_t cap, long v)
{
    static const struct {
        long ms;
        const char *unit;
    } units[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < PL_ARRAY_LEN(units); i++) {
        if (v != 0 && v % units[i].ms == 0) {
            snprintf(dst, cap, "%ld%s", v / units[i].ms, units[i].unit);
            return;
        }
    }
    snprintf(dst, cap, "%ld%s", v, v == 0 ? "" : "ms");
}

static void fmt_enums(char *dst, size_t cap, const char *const *names)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; names[i] != NULL; i++)
        buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
    clip(dst, cap, buf_cstr(&b), CLIP_ENUMS, false);
    buf_fini(&b);
}

static const char *resolve_path(struct loader *ld, const char *v)
{
    if (v[0] == '/' || ld->base == NULL)
        return arena_strdup(ld->a, v);
    while (v[0] == '.' && v[1] == '/')
        v += 2;
    return arena_printf(ld->a, "%s/%s", ld->base, v);
}

/* How a numeric type prints its bounds and names itself in messages. */
struct number_type {
    const char *what, *hint;
    void (*fmt)(char *, size_t, long);
    long lo_none; /* a min not worth printing when there is no max */
};

static const struct number_type number_types[] = {
    [CONF_T_INT] = {"an integer", "", fmt_plain, LONG_MIN},
    [CONF_T_SIZE] = {"a size", " (suffix k, m or g)", fmt_size, 0},
    [CONF_T_DURATION] = {"a duration", " (suffix ms, s, m or h)", fmt_duration, 0},
};

static bool parse_number(const struct conf_key *k, const char *text, long *v_r)
{
    if (k->type == CONF_T_INT)
        return parse_long(text, v_r);
    unsigned long long u;
    if (!parse_units(text, k->type == CONF_T_SIZE ? size_units : duration_units, &u) ||
        u > LONG_MAX)
        return false;
    *v_r = (long)u;
    return true;
}

/* CONF_T_INT, CONF_T_SIZE and CONF_T_DURATION: parsed, checked against
 * min..max (max 0: none) and stored. */
static int set_number(struct loader *ld, const struct slot *s, const struct conf_key *k,
                      const char *text, unsigned long line, const char *suffix)
{
    long v;
    if (!parse_number(k, text, &v) || v < k->min || (k->max != 0 && v > k->max)) {
        const struct number_type *nt = &number_types[k->type];
        char q[CLIP_VALUE + 8], lo[32], hi[32], range[80] = "";
        nt->fmt(lo, sizeof(lo), k->min);
        nt->fmt(hi, sizeof(hi), k->max);
        if (k->max != 0)
            snprintf(range, sizeof(range), " in %s..%s", lo, hi);
        else if (k->min != nt->lo_none)
            snprintf(range, sizeof(range), " >= %s", lo);
        return fail_at(ld, line, true, suffix, "%s\"%s\" is not %s%s%s", line ? "" : "default ",
                       clip(q, sizeof(q), text, CLIP_VALUE, false), nt->what, range, nt->hint);
    }
    if (k->type == CONF_T_SIZE) {
        size_t sz = (size_t)v;
        store(s->out, k->offset, &sz, sizeof(sz));
    } else {
        store(s->out, k->offset, &v, sizeof(v));
    }
    return 0;
}

static bool parse_bool(const char *text, bool *v_r)
{
    static const char *const words[] = {"", "true", "yes", "1", "false", "no", "0"};
    for (size_t i = 0; i < PL_ARRAY_LEN(words); i++) {
        if (strcmp(text, words[i]) == 0) {
            *v_r = i < 4;
            return true;
        }
    }
    return false;
}

/* Parses text as a value of key k into slot's struct. line and suffix say
 * where it came from (suffix: the key path below the current element, for
 * messages); line 0 means the key's default. */
static int set_value(struct loader *ld, const struct slot *s, const struct conf_key *k,
                     const char *text, unsigned long line, const char *suffix)
{
    const char *dflt = line == 0 ? "default " : "";
    char q[CLIP_VALUE + 8], names[CLIP_ENUMS + 8];
    const char *str;
    bool b;

    switch (k->type) {
    case CONF_T_INT:
    case CONF_T_SIZE:
    case CONF_T_DURATION:
        return set_number(ld, s, k, text, line, suffix);
    case CONF_T_STR:
    case CONF_T_PATH:
        if (k->type == CONF_T_PATH && text[0] == '\0')
            return fail_at(ld, line, true, suffix, "%sempty path", dflt);
        str = k->type == CONF_T_PATH ? resolve_path(ld, text) : arena_strdup(ld->a, text);
        store(s->out, k->offset, &str, sizeof(str));
        return 0;
    case CONF_T_BOOL:
        if (!parse_bool(text, &b))
            return fail_at(ld, line, true, suffix,
                           "%s\"%s\" is not a boolean (true, false, yes, no, 1 or 0)", dflt,
                           clip(q, sizeof(q), text, CLIP_VALUE, false));
        store(s->out, k->offset, &b, sizeof(b));
        return 0;
    case CONF_T_ENUM:
        PL_ASSERT(k->enums != NULL);
        for (int i = 0; k->enums[i] != NULL; i++) {
            if (strcmp(k->enums[i], text) == 0) {
                store(s->out, k->offset, &i, sizeof(i));
                return 0;
            }
        }
        fmt_enums(names, sizeof(names), k->enums);
        return fail_at(ld, line, true, suffix, "%s\"%s\" is not one of: %s", dflt,
                       clip(q, sizeof(q), text, CLIP_VALUE, false), names);
    case CONF_T_LIST:
    case CONF_T_GROUP:
        break;
    }
    pl_panic(__FILE__, __LINE__, "conf key %s: type %d is not a single value", k->path, k->type);
}

/* Arrays grow in the result arena by doubling; the capacity follows from
 * the count, so the struct needs no field for it. */
static void *append_slot(struct arena *a, void *arr, size_t count, size_t elem)
{
    if (count == 0 || (count >= 4 && (count & (count - 1)) == 0)) {
        size_t cap = count == 0 ? 4 : count * 2;
        void *grown = arena_alloc(a, cap * elem);
        if (count)
            memcpy(grown, arr, count * elem);
        arr = grown;
    }
    return arr;
}

static void list_append(struct loader *ld, const struct slot *s, const struct conf_key *k,
                        const char *text)
{
    const char **arr;
    size_t count;
    memcpy(&arr, (char *)s->out + k->offset, sizeof(arr));
    memcpy(&count, (char *)s->out + k->count_offset, sizeof(count));
    arr = append_slot(ld->a, arr, count, sizeof(*arr));
    arr[count++] = arena_strdup(ld->a, text);
    store(s->out, k->offset, &arr, sizeof(arr));
    store(s->out, k->count_offset, &count, sizeof(count));
}

/* ---- walking the tree ---- */

static int walk(struct loader *ld, struct slot *slots, size_t nslots, const struct node *n,
                const char *prefix, bool top, bool has_value);

static int apply_defaults(struct loader *ld, const struct slot *s)
{
    for (size_t i = 0; i < s->t->nkeys; i++) {
        const struct conf_key *k = &s->t->keys[i];
        if (k->def == NULL || k->type == CONF_T_LIST || k->type == CONF_T_GROUP)
            continue;
        if (set_value(ld, s, k, k->def, 0, k->path) < 0)
            return -1;
    }
    return 0;
}

/* After a struct's element: list defaults, then required keys. line is the
 * group element's (0 at the top level). */
static int finish(struct loader *ld, const struct slot *s, unsigned long line)
{
    for (size_t i = 0; i < s->t->nkeys; i++) {
        const struct conf_key *k = &s->t->keys[i];
        bool present = s->seen[i] != 0;
        if (k->type == CONF_T_LIST || k->type == CONF_T_GROUP) {
            size_t count;
            memcpy(&count, (char *)s->out + k->count_offset, sizeof(count));
            if (count == 0 && k->def != NULL && k->type == CONF_T_LIST)
                list_append(ld, s, k, k->def);
            present = count > 0;
        }
        if (k->required && !present && k->def == NULL)
            return fail_at(ld, line, true, k->path, "missing required value");
    }
    return 0;
}

static int add_group(struct loader *ld, const struct slot *s, const struct conf_key *k,
                     const struct node *n)
{
    const struct conf_table *sub = k->sub;
    PL_ASSERT(sub != NULL && sub->size > 0);
    struct slot gs = {sub, arena_alloc(ld->tmp, sub->size),
                      arena_alloc(ld->tmp, (sub->nkeys + 1) * sizeof(unsigned long))};
    if (apply_defaults(ld, &gs) < 0 || walk(ld, &gs, 1, n, "", false, false) < 0 ||
        finish(ld, &gs, n->line) < 0)
        return -1;

    char *arr;
    size_t count;
    memcpy(&arr, (char *)s->out + k->offset, sizeof(arr));
    memcpy(&count, (char *)s->out + k->count_offset, sizeof(count));
    arr = append_slot(ld->a, arr, count, sub->size);
    memcpy(arr + count * sub->size, gs.out, sub->size);
    count++;
    store(s->out, k->offset, &arr, sizeof(arr));
    store(s->out, k->count_offset, &count, sizeof(count));
    return 0;
}

/* Whether some key in slots lies below path ("path.x" or "path@x"). */
static bool claims(const struct slot *slots, size_t nslots, const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < nslots; i++) {
        for (size_t j = 0; j < slots[i].t->nkeys; j++) {
            const char *kp = slots[i].t->keys[j].path;
            if (strncmp(kp, path, n) == 0 && (kp[n] == '.' || kp[n] == '@'))
                return true;
        }
    }
    return false;
}

static bool ignored(const struct loader *ld, const char *name)
{
    for (size_t i = 0; ld->ignore != NULL && ld->ignore[i] != NULL; i++) {
        if (strcmp(ld->ignore[i], name) == 0)
            return true;
    }
    return false;
}

static int walk_attrs(struct loader *ld, struct slot *slots, size_t nslots, const struct node *n,
                      const char *prefix)
{
    for (size_t i = 0; n->attrs[i] != NULL; i += 2) {
        if (strcmp(n->attrs[i], "xmlns") == 0 || strncmp(n->attrs[i], "xmlns:", 6) == 0)
            continue; /* namespace declarations are not keys */
        const char *path = arena_printf(ld->tmp, "%s@%s", prefix, n->attrs[i]);
        const char *suffix = path + strlen(prefix);
        bool found = false;
        for (size_t s = 0; s < nslots; s++) {
            for (size_t j = 0; j < slots[s].t->nkeys; j++) {
                const struct conf_key *k = &slots[s].t->keys[j];
                if (strcmp(k->path, path) != 0)
                    continue;
                found = true;
                if (slots[s].seen[j] != 0)
                    return fail_at(ld, n->line, true, suffix, "given twice (first at line %lu)",
                                   slots[s].seen[j]);
                if (set_value(ld, &slots[s], k, n->attrs[i + 1], n->line, suffix) < 0)
                    return -1;
                slots[s].seen[j] = n->line;
            }
        }
        if (!found)
            return fail_at(ld, n->line, true, suffix, "unknown attribute");
    }
    return 0;
}

static void check_later(struct loader *ld, const struct conf_key *k, const void *out,
                        const struct node *c)
{
    struct check_later *cl = arena_alloc(ld->tmp, sizeof(*cl));
    struct buf pb = BUF_INIT;
    render_path(ld, NULL, &pb);
    *cl =
        (struct check_later){k, out, c->text, arena_strdup(ld->tmp, buf_cstr(&pb)), c->line, NULL};
    buf_fini(&pb);
    *ld->checks_tail = cl;
    ld->checks_tail = &cl->next;
}

static int run_checks(struct loader *ld)
{
    for (const struct check_later *cl = ld->checks; cl != NULL; cl = cl->next) {
        char why[160], q[CLIP_VALUE + 8], path[CLIP_PATH + 8];
        if (!cl->k->check(cl->value, cl->out, why, sizeof(why)))
            return fail_at(ld, cl->line, false, NULL, "%s: \"%s\": %s",
                           clip(path, sizeof(path), cl->path, CLIP_PATH, true),
                           clip(q, sizeof(q), cl->value, CLIP_VALUE, false), why);
    }
    return 0;
}

/* One child element c at key path path. */
static int walk_child(struct loader *ld, struct slot *slots, size_t nslots, const struct node *c,
                      const char *path, bool top)
{
    bool exact = false, group = false;
    for (size_t s = 0; s < nslots; s++) {
        for (size_t j = 0; j < slots[s].t->nkeys; j++) {
            const struct conf_key *k = &slots[s].t->keys[j];
            if (strcmp(k->path, path) != 0)
                continue;
            exact = true;
            if (k->type == CONF_T_GROUP) {
                group = true;
                if (add_group(ld, &slots[s], k, c) < 0)
                    return -1;
            } else if (k->type == CONF_T_LIST) {
                if (k->check != NULL)
                    check_later(ld, k, slots[s].out, c);
                list_append(ld, &slots[s], k, c->text);
            } else {
                if (slots[s].seen[j] != 0)
                    return fail_at(ld, c->line, true, NULL, "given twice (first at line %lu)",
                                   slots[s].seen[j]);
                if (set_value(ld, &slots[s], k, c->text, c->line, NULL) < 0)
                    return -1;
                slots[s].seen[j] = c->line;
            }
        }
    }
    if (group)
        return 0; /* its attributes and children belong to the group's table */
    if (!exact && !claims(slots, nslots, path)) {
        if (top && ignored(ld, c->name))
            return 0;
        return fail_at(ld, c->line, true, NULL, "unknown element");
    }
    return walk(ld, slots, nslots, c, path, false, exact);
}

/* Checks and applies the attributes, text and children of n, whose key path
 * is prefix ("" for the root of the slots' tables). */
static int walk(struct loader *ld, struct slot *slots, size_t nslots, const struct node *n,
                const char *prefix, bool top, bool has_value)
{
    if (walk_attrs(ld, slots, nslots, n, prefix) < 0)
        return -1;
    if (!has_value && n->text[0] != '\0') {
        char q[CLIP_VALUE + 8];
        return fail_at(ld, n->line, true, NULL, "unexpected text \"%s\"",
                       clip(q, sizeof(q), n->text, CLIP_VALUE, false));
    }
    for (const struct node *c = n->child; c != NULL; c = c->next) {
        if (ld->depth >= CONF_MAX_DEPTH)
            return fail_at(ld, c->line, false, NULL, "elements nested too deep");
        const char *path = *prefix ? arena_printf(ld->tmp, "%s.%s", prefix, c->name) : c->name;
        ld->names[ld->depth++] = c->name;
        int rc = walk_child(ld, slots, nslots, c, path, top);
        ld->depth--;
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- entry points ---- */

static int load(struct loader *ld, const char *data, size_t len,
                const struct conf_table *const *tables, void *const *outs, size_t ntables)
{
    struct slot *slots = arena_alloc(ld->tmp, (ntables + 1) * sizeof(*slots));
    for (size_t i = 0; i < ntables; i++) {
        memset(outs[i], 0, tables[i]->size);
        slots[i] =
            (struct slot){tables[i], outs[i],
                          arena_alloc(ld->tmp, (tables[i]->nkeys + 1) * sizeof(unsigned long))};
    }
    for (size_t i = 0; i < ntables; i++) {
        if (apply_defaults(ld, &slots[i]) < 0)
            return -1;
    }

    struct node *root = NULL;
    if (parse_xml(ld, data, len, &root) < 0)
        return -1;
    if (strcmp(root->name, "parley") != 0)
        return fail_at(ld, root->line, false, NULL, "root element is <%s>, expected <parley>",
                       root->name);
    if (walk(ld, slots, ntables, root, "", true, false) < 0)
        return -1;
    for (size_t i = 0; i < ntables; i++) {
        if (finish(ld, &slots[i], 0) < 0)
            return -1;
    }
    return run_checks(ld);
}

static int load_with_base(const char *name, const char *base, const char *data, size_t len,
                          const struct conf_table *const *tables, void *const *outs, size_t ntables,
                          const char *const *ignore, struct arena *a, struct err *err)
{
    struct loader ld;
    memset(&ld, 0, sizeof(ld));
    ld.name = name;
    ld.base = base;
    ld.a = a;
    ld.tmp = arena_new(0);
    ld.ignore = ignore;
    ld.err = err;
    ld.checks_tail = &ld.checks;
    int rc = load(&ld, data, len, tables, outs, ntables);
    arena_free(&ld.tmp);
    return rc;
}

int conf_load_mem(const char *name, const char *data, size_t len,
                  const struct conf_table *const *tables, void *const *outs, size_t ntables,
                  const char *const *ignore, struct arena *a, struct err *err)
{
    const char *slash = strrchr(name, '/');
    char *base = NULL;
    if (slash != NULL)
        base = xstrndup(name, slash == name ? 1 : (size_t)(slash - name));
    if (base != NULL && strcmp(base, "/") == 0)
        base[0] = '\0'; /* "/x.pem", not "//x.pem" */
    int rc = load_with_base(name, base, data, len, tables, outs, ntables, ignore, a, err);
    free(base);
    return rc;
}

int conf_load(const char *path, const struct conf_table *const *tables, void *const *outs,
              size_t ntables, const char *const *ignore, struct arena *a, struct err *err)
{
    struct loader ld = {.name = path, .err = err};
    struct buf data = BUF_INIT;
    int rc = -1;
    char *dir = NULL, *real = NULL;

    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail_at(&ld, 0, false, NULL, "cannot open: %s", strerror(errno));
        goto out;
    }
    for (;;) {
        buf_reserve(&data, 65536);
        size_t n = fread(data.data + data.len, 1, 65536, f);
        data.len += n;
        data.data[data.len] = '\0';
        if (n == 0)
            break;
        if (data.len > CONF_MAX_FILE) {
            fail_at(&ld, 0, false, NULL, "file is larger than %lu bytes", CONF_MAX_FILE);
            goto out;
        }
    }
    if (ferror(f)) {
        fail_at(&ld, 0, false, NULL, "cannot read: %s", strerror(errno));
        goto out;
    }

    /* Relative paths in the file are made absolute against its folder. */
    const char *slash = strrchr(path, '/');
    dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
    real = realpath(dir, NULL);
    const char *base = real ? real : dir;
    rc = load_with_base(path, strcmp(base, "/") == 0 ? "" : base, data.data ? data.data : "",
                        data.len, tables, outs, ntables, ignore, a, err);
out:
    if (f != NULL)
        fclose(f);
    buf_fini(&data);
    free(dir);
    free(real);
    return rc;
}

/* ---- dump ---- */

static bool single_valued(const struct conf_key *k)
{
    return k->type != CONF_T_LIST && k->type != CONF_T_GROUP;
}

static void put_escaped(struct buf *b, const char *s, bool attr)
{
    for (; *s; s++) {
        if (*s == '&')
            buf_append_str(b, "&amp;");
        else if (*s == '<')
            buf_append_str(b, "&lt;");
        else if (*s == '>')
            buf_append_str(b, "&gt;");
        else if (*s == '"' && attr)
            buf_append_str(b, "&quot;");
        else
            buf_append_char(b, *s);
    }
}

static void put_comment(struct buf *b, const char *text)
{
    buf_append_str(b, "<!-- ");
    for (const char *s = text; *s; s++) {
        buf_append_char(b, *s);
        if (*s == '-' && (s[1] == '-' || s[1] == '\0'))
            buf_append_char(b, ' ');
    }
    buf_append_str(b, " -->");
}

static void put_indent(struct buf *b, int indent)
{
    for (int i = 0; i < indent; i++)
        buf_append_str(b, "  ");
}

/* Appends the value of a single-valued key; false when it is unset. */
static bool put_value(struct buf *b, const struct conf_key *k, const void *out, bool attr)
{
    const char *p = (const char *)out + k->offset;
    char num[48];
    long l = 0;
    size_t z;
    int e;
    bool v;
    const char *str;

    switch (k->type) {
    case CONF_T_STR:
    case CONF_T_PATH:
        memcpy(&str, p, sizeof(str));
        if (str != NULL && k->secret)
            buf_append_str(b, "(hidden)"); /* -t output ends up in tickets and logs */
        else if (str != NULL)
            put_escaped(b, str, attr);
        return str != NULL;
    case CONF_T_BOOL:
        memcpy(&v, p, sizeof(v));
        buf_append_str(b, v ? "true" : "false");
        return true;
    case CONF_T_ENUM:
        memcpy(&e, p, sizeof(e));
        for (int i = 0; k->enums[i] != NULL; i++) {
            if (i == e) {
                put_escaped(b, k->enums[i], attr);
                return true;
            }
        }
        buf_printf(b, "%d", e);
        return true;
    case CONF_T_SIZE:
        memcpy(&z, p, sizeof(z));
        l = z > LONG_MAX ? LONG_MAX : (long)z; /* the loader stores no more */
        break;
    case CONF_T_INT:
    case CONF_T_DURATION:
        memcpy(&l, p, sizeof(l));
        break;
    case CONF_T_LIST:
    case CONF_T_GROUP:
        return false;
    }
    number_types[k->type].fmt(num, sizeof(num), l);
    buf_append_str(b, num);
    return true;
}

static void dump_level(struct buf *b, const struct conf_table *t, const void *out,
                       const char *prefix, int indent);

/* The attributes of the element at path, as ' name="value"'. */
static void put_attrs(struct buf *b, const struct conf_table *t, const void *out, const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < t->nkeys; i++) {
        const struct conf_key *k = &t->keys[i];
        if (strncmp(k->path, path, n) != 0 || k->path[n] != '@' || !single_valued(k))
            continue;
        size_t mark = b->len;
        buf_printf(b, " %s=\"", k->path + n + 1);
        if (put_value(b, k, out, true)) {
            buf_append_char(b, '"');
        } else {
            b->len = mark;
            b->data[mark] = '\0';
        }
    }
}

static void put_attr_help(struct buf *b, const struct conf_table *t, const char *path, int indent)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < t->nkeys; i++) {
        const struct conf_key *k = &t->keys[i];
        if (strncmp(k->path, path, n) != 0 || k->path[n] != '@' || k->help == NULL)
            continue;
        put_indent(b, indent);
        char text[256];
        snprintf(text, sizeof(text), "%s: %s", k->path + n, k->help);
        put_comment(b, text);
        buf_append_char(b, '\n');
    }
}

static void put_help(struct buf *b, const struct conf_key *k)
{
    if (k != NULL && k->help != NULL) {
        buf_append_char(b, ' ');
        put_comment(b, k->help);
    }
}

static void dump_group(struct buf *b, const struct conf_key *k, const void *out, const char *name,
                       int indent)
{
    const char *arr;
    size_t count;
    memcpy(&arr, (const char *)out + k->offset, sizeof(arr));
    memcpy(&count, (const char *)out + k->count_offset, sizeof(count));
    char text[256];
    snprintf(text, sizeof(text), "<%s>: %zu, %s", name, count, k->help ? k->help : "");
    put_indent(b, indent);
    put_comment(b, text);
    buf_append_char(b, '\n');
    if (count > 0)
        put_attr_help(b, k->sub, "", indent);
    for (size_t i = 0; i < count; i++) {
        const void *elem = arr + i * k->sub->size;
        put_indent(b, indent);
        buf_printf(b, "<%s", name);
        put_attrs(b, k->sub, elem, "");
        size_t mark = b->len;
        buf_append_str(b, ">\n");
        size_t inner = b->len;
        dump_level(b, k->sub, elem, "", indent + 1);
        if (b->len == inner) {
            b->len = mark;
            buf_append_str(b, "/>\n");
        } else {
            put_indent(b, indent);
            buf_printf(b, "</%s>\n", name);
        }
    }
}

static void dump_list(struct buf *b, const struct conf_key *k, const void *out, const char *name,
                      int indent)
{
    const char *const *arr;
    size_t count;
    memcpy(&arr, (const char *)out + k->offset, sizeof(arr));
    memcpy(&count, (const char *)out + k->count_offset, sizeof(count));
    if (count == 0) {
        char text[256];
        snprintf(text, sizeof(text), "<%s>: none, %s", name, k->help ? k->help : "");
        put_indent(b, indent);
        put_comment(b, text);
        buf_append_char(b, '\n');
    }
    for (size_t i = 0; i < count; i++) {
        put_indent(b, indent);
        buf_printf(b, "<%s>", name);
        put_escaped(b, arr[i], false);
        buf_printf(b, "</%s>", name);
        put_help(b, i == 0 ? k : NULL);
        buf_append_char(b, '\n');
    }
}

static void dump_element(struct buf *b, const struct conf_table *t, const void *out,
                         const char *path, const char *name, int indent)
{
    const struct conf_key *value = NULL;
    bool children = false;
    size_t n = strlen(path);
    for (size_t i = 0; i < t->nkeys; i++) {
        const struct conf_key *k = &t->keys[i];
        if (strcmp(k->path, path) == 0 && value == NULL)
            value = k;
        children |= strncmp(k->path, path, n) == 0 && k->path[n] == '.';
    }
    if (value != NULL && value->type == CONF_T_GROUP) {
        dump_group(b, value, out, name, indent);
        return;
    }
    if (value != NULL && value->type == CONF_T_LIST) {
        dump_list(b, value, out, name, indent);
        return;
    }

    put_attr_help(b, t, path, indent);
    put_indent(b, indent);
    size_t start = b->len;
    buf_printf(b, "<%s", name);
    put_attrs(b, t, out, path);
    buf_append_char(b, '>');
    if (value != NULL && !put_value(b, value, out, false) && !children) {
        /* an unset string: shown as a comment so the dump still loads */
        char text[256];
        snprintf(text, sizeof(text), "<%s/>: not set, %s", name, value->help ? value->help : "");
        b->len = start;
        b->data[start] = '\0';
        put_comment(b, text);
        buf_append_char(b, '\n');
        return;
    }
    if (children) {
        buf_append_char(b, '\n');
        char *sub = xmalloc(n + 2);
        snprintf(sub, n + 2, "%s.", path);
        dump_level(b, t, out, sub, indent + 1);
        free(sub);
        put_indent(b, indent);
    }
    buf_printf(b, "</%s>", name);
    if (!children)
        put_help(b, value);
    buf_append_char(b, '\n');
}

/* Dumps every element whose key path starts with prefix, in table order,
 * each distinct element once. */
static void dump_level(struct buf *b, const struct conf_table *t, const void *out,
                       const char *prefix, int indent)
{
    size_t pn = strlen(prefix);
    for (size_t i = 0; i < t->nkeys; i++) {
        const char *rest = t->keys[i].path;
        if (strncmp(rest, prefix, pn) != 0)
            continue;
        rest += pn;
        size_t cn = strcspn(rest, ".@");
        if (cn == 0)
            continue; /* an attribute of the element being dumped */
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++) {
            const char *r = t->keys[j].path;
            dup = strncmp(r, prefix, pn) == 0 && strncmp(r + pn, rest, cn) == 0 &&
                  (r[pn + cn] == '\0' || r[pn + cn] == '.' || r[pn + cn] == '@');
        }
        if (dup)
            continue;
        char *name = xstrndup(rest, cn);
        char *path = xmalloc(pn + cn + 1);
        memcpy(path, prefix, pn);
        memcpy(path + pn, rest, cn);
        path[pn + cn] = '\0';
        dump_element(b, t, out, path, name, indent);
        free(name);
        free(path);
    }
}

void conf_dump(struct buf *b, const struct conf_table *table, const void *out)
{
    /* attributes of <parley> itself, which this function does not write */
    for (size_t i = 0; i < table->nkeys; i++) {
        const struct conf_key *k = &table->keys[i];
        if (k->path[0] != '@' || !single_valued(k))
            continue;
        struct buf v = BUF_INIT;
        if (!put_value(&v, k, out, false))
            buf_append_str(&v, "(not set)");
        char text[256];
        snprintf(text, sizeof(text), "<parley %s=\"%s\">%s%s", k->path + 1, buf_cstr(&v),
                 k->help ? ": " : "", k->help ? k->help : "");
        put_indent(b, 1);
        put_comment(b, text);
        buf_append_char(b, '\n');
        buf_fini(&v);
    }
    dump_level(b, table, out, "", 1);
}
