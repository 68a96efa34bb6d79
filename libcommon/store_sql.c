/* SPDX-License-Identifier: MIT */
/* SQL generation. Identifiers come only from store_schema.c and are always
 * double-quoted; every value is a bound parameter. The text is the same
 * for SQLite and PostgreSQL: both accept $n placeholders, ON CONFLICT ...
 * DO UPDATE and RETURNING. */
#include "store_sql.h"

#include <string.h>

#include "arena.h"
#include "buf.h"

struct sqlb {
    struct arena *a;
    struct buf sql;
    struct store_param *params;
    size_t nparams, cap;
    struct store_rcol *rcols;
    size_t nrcols, rcap;
};

static void add_param(struct sqlb *b, const struct store_param *p)
{
    if (b->nparams == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        struct store_param *n = arena_alloc(b->a, cap * sizeof(*n));
        if (b->nparams)
            memcpy(n, b->params, b->nparams * sizeof(*n));
        b->params = n;
        b->cap = cap;
    }
    b->params[b->nparams] = *p;
    /* The caller's record may be gone before the driver runs the statement. */
    if (p->s != NULL)
        b->params[b->nparams].s = arena_strdup(b->a, p->s);
    b->nparams++;
    buf_printf(&b->sql, "$%zu", b->nparams);
}

static void add_param_str(struct sqlb *b, const char *s)
{
    struct store_param p = {.type = STORE_T_STR, .s = s};
    add_param(b, &p);
}

static void add_param_int(struct sqlb *b, int64_t v)
{
    struct store_param p = {.type = STORE_T_INT, .i = v};
    add_param(b, &p);
}

static void add_rcol(struct sqlb *b, const char *name, enum store_type t)
{
    if (b->nrcols == b->rcap) {
        size_t cap = b->rcap ? b->rcap * 2 : 16;
        struct store_rcol *n = arena_alloc(b->a, cap * sizeof(*n));
        if (b->nrcols)
            memcpy(n, b->rcols, b->nrcols * sizeof(*n));
        b->rcols = n;
        b->rcap = cap;
    }
    b->rcols[b->nrcols++] = (struct store_rcol){name, t};
}

static const struct store_col *find_col(const struct store_coll *c, const char *name)
{
    for (size_t i = 0; i < c->ncols; i++) {
        if (strcmp(c->cols[i].name, name) == 0)
            return &c->cols[i];
    }
    return NULL;
}

/* A UTF-8 check: well-formed, no overlongs or surrogates. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if (n >= len - i)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* Checks a field against its column. */
static int check_field(const struct store_coll *c, const struct store_field *f, size_t max_value,
                       const struct store_col **col_r, struct err *err)
{
    const struct store_col *col = find_col(c, f->name);
    if (col == NULL)
        return err_set(err, XMPP_COND_BAD_REQUEST, "%s has no field '%s'", c->name, f->name);
    if (col->type != f->type)
        return err_set(err, XMPP_COND_BAD_REQUEST, "%s.%s has another type", c->name, f->name);
    if (!f->null && (f->type == STORE_T_STR || f->type == STORE_T_XML)) {
        size_t len = strlen(f->s);
        if (len > max_value)
            return err_set(err, XMPP_COND_NOT_ACCEPTABLE,
                           "%s.%s: %zu bytes is over the limit of %zu", c->name, f->name, len,
                           max_value);
        if (!utf8_valid((const unsigned char *)f->s, len))
            return err_set(err, XMPP_COND_BAD_REQUEST, "%s.%s is not valid UTF-8", c->name,
                           f->name);
    }
    *col_r = col;
    return 0;
}

static struct store_param field_param(const struct store_field *f)
{
    return (struct store_param){.type = f->type, .null = f->null, .s = f->s, .i = f->i, .b = f->b};
}

/* " WHERE owner = $1 [AND col = $n ...]" */
static int where(struct sqlb *b, const struct store_op *op, const struct store_rec *filter,
                 size_t max_value, struct err *err)
{
    buf_append_str(&b->sql, " WHERE \"owner\" = ");
    add_param_str(b, op->owner);
    for (size_t i = 0; filter != NULL && i < filter->n; i++) {
        const struct store_field *f = &filter->f[i];
        const struct store_col *col;
        if (check_field(op->coll, f, max_value, &col, err) < 0)
            return -1;
        if (f->null) {
            buf_printf(&b->sql, " AND \"%s\" IS NULL", col->name);
            continue;
        }
        buf_printf(&b->sql, " AND \"%s\" = ", col->name);
        struct store_param p = field_param(f);
        add_param(b, &p);
    }
    return 0;
}

static void select_cols(struct sqlb *b, const struct store_coll *c, bool with_seq)
{
    const char *sep = "";
    if (with_seq) {
        buf_append_str(&b->sql, "\"seq\"");
        add_rcol(b, "seq", STORE_T_INT);
        sep = ", ";
    }
    for (size_t i = 0; i < c->ncols; i++) {
        buf_printf(&b->sql, "%s\"%s\"", sep, c->cols[i].name);
        add_rcol(b, c->cols[i].name, c->cols[i].type);
        sep = ", ";
    }
}

static int build_write(struct sqlb *b, const struct store_op *op, const struct store_rec *rec,
                       size_t max_value, struct err *err)
{
    const struct store_coll *c = op->coll;
    const struct store_field **byc = arena_alloc(b->a, (c->ncols + 1) * sizeof(*byc));
    for (size_t i = 0; rec != NULL && i < rec->n; i++) {
        const struct store_col *col;
        if (check_field(c, &rec->f[i], max_value, &col, err) < 0)
            return -1;
        byc[col - c->cols] = &rec->f[i];
    }
    buf_printf(&b->sql, "INSERT INTO \"%s\" (\"owner\"", c->table);
    for (size_t i = 0; i < c->ncols; i++)
        buf_printf(&b->sql, ", \"%s\"", c->cols[i].name);
    buf_append_str(&b->sql, ") VALUES (");
    add_param_str(b, op->owner);
    for (size_t i = 0; i < c->ncols; i++) {
        const struct store_field *f = byc[i];
        if (c->cols[i].key && (f == NULL || f->null))
            return err_set(err, XMPP_COND_BAD_REQUEST, "%s: key field '%s' is missing", c->name,
                           c->cols[i].name);
        struct store_param p =
            f ? field_param(f) : (struct store_param){.type = c->cols[i].type, .null = true};
        buf_append_str(&b->sql, ", ");
        add_param(b, &p);
    }
    buf_append_char(&b->sql, ')');
    if (op->kind == STORE_OP_PUT && c->kind == STORE_KIND_KEYED) {
        buf_append_str(&b->sql, " ON CONFLICT (\"owner\"");
        size_t nonkey = 0;
        for (size_t i = 0; i < c->ncols; i++) {
            if (c->cols[i].key)
                buf_printf(&b->sql, ", \"%s\"", c->cols[i].name);
            else
                nonkey++;
        }
        if (nonkey == 0) {
            buf_append_str(&b->sql, ") DO NOTHING");
            return 0;
        }
        buf_append_str(&b->sql, ") DO UPDATE SET ");
        const char *sep = "";
        for (size_t i = 0; i < c->ncols; i++) {
            if (c->cols[i].key)
                continue;
            buf_printf(&b->sql, "%s\"%s\" = excluded.\"%s\"", sep, c->cols[i].name,
                       c->cols[i].name);
            sep = ", ";
        }
    }
    return 0;
}

static int build_range(struct sqlb *b, const struct store_op *op, int64_t anchor_seq,
                       size_t max_value, struct err *err)
{
    const struct store_coll *c = op->coll;
    const struct store_range *q = &op->range;
    buf_append_str(&b->sql, "SELECT ");
    select_cols(b, c, true);
    buf_printf(&b->sql, " FROM \"%s\"", c->table);
    if (where(b, op, q->filter, max_value, err) < 0)
        return -1;
    if (q->start) {
        buf_printf(&b->sql, " AND \"%s\" >= ", c->time_col);
        add_param_int(b, q->start);
    }
    if (q->end) {
        buf_printf(&b->sql, " AND \"%s\" <= ", c->time_col);
        add_param_int(b, q->end);
    }
    if (anchor_seq >= 0) {
        buf_append_str(&b->sql, q->after_id ? " AND \"seq\" > " : " AND \"seq\" < ");
        add_param_int(b, anchor_seq);
    }
    buf_printf(&b->sql, " ORDER BY \"seq\" %s LIMIT ", q->reverse ? "DESC" : "ASC");
    add_param_int(b, (int64_t)q->limit + 1); /* one more tells whether it is complete */
    return 0;
}

int store_sql_build(struct arena *a, struct store_op *op, const struct store_rec *rec,
                    int64_t anchor_seq, size_t max_value, struct err *err)
{
    const struct store_coll *c = op->coll;
    struct sqlb b = {.a = a};
    buf_init(&b.sql);
    int rc = -1;
    bool is_log = c->kind == STORE_KIND_LOG;

    switch (op->kind) {
    case STORE_OP_GET:
        buf_append_str(&b.sql, "SELECT ");
        select_cols(&b, c, is_log);
        buf_printf(&b.sql, " FROM \"%s\"", c->table);
        if (where(&b, op, rec, max_value, err) < 0)
            goto out;
        buf_printf(&b.sql, " ORDER BY %s", c->order);
        break;
    case STORE_OP_PUT:
    case STORE_OP_INSERT:
        if (build_write(&b, op, rec, max_value, err) < 0)
            goto out;
        break;
    case STORE_OP_DELETE:
        buf_printf(&b.sql, "DELETE FROM \"%s\"", c->table);
        if (where(&b, op, rec, max_value, err) < 0)
            goto out;
        break;
    case STORE_OP_COUNT:
        buf_printf(&b.sql, "SELECT count(*) FROM \"%s\"", c->table);
        add_rcol(&b, "count", STORE_T_INT);
        if (where(&b, op, rec, max_value, err) < 0)
            goto out;
        break;
    case STORE_OP_TAKE:
        if (!is_log) {
            err_set(err, XMPP_COND_BAD_REQUEST, "%s is not a queue", c->name);
            goto out;
        }
        buf_printf(&b.sql, "DELETE FROM \"%s\"", c->table);
        if (where(&b, op, NULL, max_value, err) < 0)
            goto out;
        buf_append_str(&b.sql, " RETURNING ");
        select_cols(&b, c, true);
        break;
    case STORE_OP_OWNERS:
        buf_printf(&b.sql, "SELECT DISTINCT \"owner\" FROM \"%s\" ORDER BY \"owner\"", c->table);
        add_rcol(&b, "owner", STORE_T_STR);
        break;
    case STORE_OP_ANCHOR:
        buf_printf(&b.sql, "SELECT \"seq\" FROM \"%s\" WHERE \"owner\" = ", c->table);
        add_param_str(&b, op->owner);
        buf_printf(&b.sql, " AND \"%s\" = ", c->id_col);
        add_param_str(&b, op->range.after_id ? op->range.after_id : op->range.before_id);
        add_rcol(&b, "seq", STORE_T_INT);
        break;
    case STORE_OP_RANGE:
        if (!is_log || c->time_col == NULL) {
            err_set(err, XMPP_COND_BAD_REQUEST, "%s has no order for ranges", c->name);
            goto out;
        }
        if (build_range(&b, op, anchor_seq, max_value, err) < 0)
            goto out;
        break;
    case STORE_OP_EXPIRE:
        if (c->time_col == NULL) {
            err_set(err, XMPP_COND_BAD_REQUEST, "%s has no time column", c->name);
            goto out;
        }
        buf_printf(&b.sql, "DELETE FROM \"%s\" WHERE \"owner\" = ", c->table);
        add_param_str(&b, op->owner);
        buf_printf(&b.sql, " AND \"%s\" < ", c->time_col);
        add_param_int(&b, op->range.end);
        break;
    case STORE_OP_COUNTER: {
        const struct store_field *name = store_rec_field(rec, "name");
        const struct store_field *delta = store_rec_field(rec, "value");
        buf_append_str(&b.sql,
                       "INSERT INTO \"counters\" (\"owner\", \"name\", \"value\") VALUES (");
        add_param_str(&b, op->owner);
        buf_append_str(&b.sql, ", ");
        add_param_str(&b, name->s);
        buf_append_str(&b.sql, ", ");
        add_param_int(&b, delta->i);
        buf_append_str(&b.sql, ") ON CONFLICT (\"owner\", \"name\") DO UPDATE SET \"value\" = "
                               "\"counters\".\"value\" + excluded.\"value\" RETURNING \"value\"");
        add_rcol(&b, "value", STORE_T_INT);
        break;
    }
    }
    op->sql = arena_strndup(a, b.sql.data, b.sql.len);
    op->params = b.params;
    op->nparams = b.nparams;
    op->rcols = b.rcols;
    op->nrcols = b.nrcols;
    rc = 0;
out:
    buf_fini(&b.sql);
    return rc;
}
