/* SPDX-License-Identifier: MIT */
/* The incremental XMPP stream parser: expat events become a stream-open
 * callback and one callback per stanza, with the stanza's tree (in a
 * per-stanza arena) and its exact raw bytes, under size/depth/attribute
 * limits and RFC 6120's restricted XML. Between stanzas the parser can be
 * released and later rebuilt from the stream header's namespace scope. */
#include "xstream.h"

#include <stdarg.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <expat.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "err.h"
#include "log.h"
#include "xml.h"

/* Expat joins URI, local name and prefix with this; it can never occur in
 * XML text, so no URI can contain it. */
#define NS_SEP '\x01'

#define DEFAULT_MAX_STANZA 65536
#define DEFAULT_MAX_DEPTH  32
#define DEFAULT_MAX_ATTRS  64
#define ARENA_CHUNK        2048 /* kept per stream between stanzas: small for idle connections */
#define FEED_PIECE_MAX     (1 << 29) /* XML_Parse takes an int length */
#define MAX_STANZA_CAP     (1 << 29) /* so held bytes plus a piece fit in an int */
#define DEFER_MIN          1024      /* partial token size from which feeding is deferred */
#define POOL_LOOK          8         /* idle engines compared with a stream's header */
/* An engine that has parsed this much is freed rather than pooled: expat
 * keeps every distinct element and attribute name it has seen, and its
 * input buffer is as large as the largest piece it was given. */
#define RETIRE_FED   (256u << 10)
#define RETIRE_PIECE (64u << 10)

#define EXPAT_VERSION_AT_LEAST(a, b, c)                                                            \
    (XML_MAJOR_VERSION * 10000 + XML_MINOR_VERSION * 100 + XML_MICRO_VERSION >=                    \
     (a)*10000 + (b)*100 + (c))

/* An expat parser and the stanza arena: all that only a stream being
 * parsed needs (about 13 KiB). A stream owns one from its first byte until
 * xstream_release; with a pool, engines go back to it and serve whichever
 * stream needs one next. */
struct engine {
    XML_Parser parser;
    struct arena *arena; /* the current stanza's tree; reset after each */
    /* The stream header start tag (see reopen) the parser is inside, at a
     * stanza boundary; empty: at the document start. */
    struct buf key;
    uint64_t fed;        /* bytes given to XML_Parse since created */
    size_t biggest;      /* the largest piece given to XML_Parse */
    struct engine *next; /* in the pool's idle list, most recently used first */
};

struct xstream_pool {
    struct engine *idle;
    size_t nidle;
    size_t lent;  /* held by streams */
    size_t low;   /* fewest idle since the last trim */
    size_t users; /* the creator's reference and one per stream */
    size_t created;
};

/* The state of expat_piece's look for the end of the stanza expat is in. */
struct guess {
    int depth;
    enum { G_TEXT, G_LT, G_TAG, G_QUOTE, G_END_TAG, G_STOP } mode;
    char quote, prev;
};

/* Stream offsets ("pos") count bytes since the stream header's first byte:
 * expat's byte index plus shift (see pos_index). */
struct xstream {
    struct engine *eng;        /* NULL until the first byte, and while released */
    struct xstream_pool *pool; /* NULL: engines are the stream's own */
    const struct xstream_ops *ops;
    void *arg;
    struct xstream_limits lim;
    unsigned flags;

    struct buf default_ns; /* the header's xmlns='...' */
    struct buf text;       /* character data not yet added to cur */
    /* The header's qualified name and namespace declarations as a start
     * tag: what an engine is fed so that the stanzas after a release see
     * the same namespace scope (declarations first, the tag around them at
     * open). Identical headers share pooled engines. */
    struct buf reopen;
    int64_t shift;      /* stream offset minus expat's byte index */
    int64_t line_shift; /* stream line minus expat's line */
    int64_t line;       /* while released: the stream's line */
    bool replaying;     /* an engine is reading reopen */

    /* Raw bytes: a stanza inside one chunk is handed out in place; bytes
     * that may belong to a stanza still to finish are kept in carry, which
     * holds the stream bytes [carry_start, base). */
    struct buf carry;
    int64_t carry_start;
    int64_t base;         /* offset of chunk[0] */
    const char *chunk;    /* the bytes XML_Parse is working on */
    int64_t safe_pos;     /* everything before is finished events at depth <= 1 */
    int64_t stanza_start; /* the open stanza's '<' */

    /* Expat rescans a partial token from its start on every XML_Parse, so a
     * long start tag sent a byte at a time would cost O(n^2). Once the
     * partial token is DEFER_MIN bytes long, bytes are held back until one
     * could end it (see feed_chunk). */
    int64_t tail_start; /* expat's unparsed partial token begins here */
    struct buf held;    /* bytes [base, base + held.len) not yet given to expat */
    char quote;         /* quote open at the end of tail + held ('\0': none) */
    bool quote_valid;   /* quote has been computed for the current tail */

    unsigned depth;    /* open elements, the stream root included */
    bool in_cdata;     /* inside a CDATA section */
    unsigned ns_decls; /* namespace declarations of the element being opened */
    struct xml_node *stanza, *cur;

    bool in_feed;          /* inside XML_Parse, so handlers may be running */
    bool in_scan;          /* in_feed is set for a callback of the scanner: no expat */
    unsigned long scanned; /* stanzas the scanner handed out */
    /* expat_piece has looked at the stream bytes [guess_keep, guess_pos)
     * and found no end there; -1: nothing to go on from. */
    struct guess guess;
    int64_t guess_keep, guess_pos;
    bool failed;        /* err holds why; dead until xstream_reset */
    bool reset_pending; /* xstream_reset was called from a callback */
    struct err *err;    /* allocated by the first failure: most streams never fail */
};

/* Fails the stream (the first failure's reason wins) and, from a handler,
 * stops expat at once. */
static void xs_fail(struct xstream *xs, enum xmpp_cond cond, const char *fmt, ...) PL_PRINTF(3, 4);
static void cclass_init(void);

static void xs_fail(struct xstream *xs, enum xmpp_cond cond, const char *fmt, ...)
{
    if (!xs->failed) {
        if (xs->err == NULL)
            xs->err = xmalloc(sizeof(*xs->err));
        va_list ap;
        va_start(ap, fmt);
        xs->err->cond = cond;
        vsnprintf(xs->err->text, sizeof(xs->err->text), fmt, ap);
        va_end(ap);
        xs->failed = true;
    }
    if (xs->in_feed && !xs->in_scan)
        (void)XML_StopParser(xs->eng->parser, XML_FALSE);
}

/* Expat may deliver a few more events after XML_StopParser. */
static bool stopped(const struct xstream *xs)
{
    return xs->failed || xs->reset_pending;
}

/* In a handler: the stream offset of the event's first byte. Outside: of
 * the first byte expat has not parsed yet. -1 if expat has no position. */
static int64_t pos_index(const struct xstream *xs)
{
    XML_Index i = XML_GetCurrentByteIndex(xs->eng->parser);
    return i < 0 ? -1 : (int64_t)i + xs->shift;
}

static int64_t event_end(const struct xstream *xs)
{
    return pos_index(xs) + XML_GetCurrentByteCount(xs->eng->parser);
}

static void check_stanza_size(struct xstream *xs, int64_t end)
{
    if ((uint64_t)(end - xs->stanza_start) > xs->lim.max_stanza)
        xs_fail(xs, XMPP_COND_STREAM_POLICY_VIOLATION, "stanza larger than %zu bytes",
                xs->lim.max_stanza);
}

/* ---- building the tree ------------------------------------------------- */

/* Splits expat's "uri SEP local [SEP prefix]" into arena copies. */
static const char *split_name(struct arena *a, const char *qname, const char **ns_r,
                              const char **prefix_r)
{
    const char *sep = strchr(qname, NS_SEP);
    if (sep == NULL) {
        *ns_r = NULL;
        *prefix_r = NULL;
        return arena_strdup(a, qname);
    }
    *ns_r = arena_strndup(a, qname, (size_t)(sep - qname));
    const char *local = sep + 1;
    const char *sep2 = strchr(local, NS_SEP);
    if (sep2 == NULL) {
        *prefix_r = NULL;
        return arena_strdup(a, local);
    }
    *prefix_r = arena_strdup(a, sep2 + 1);
    return arena_strndup(a, local, (size_t)(sep2 - local));
}

static struct xml_node *build_elem(struct xstream *xs, const char *qname, const char **atts,
                                   unsigned nattrs)
{
    struct arena *a = xs->eng->arena;
    struct xml_node *n = arena_alloc(a, sizeof(*n));
    const char *ns, *prefix;
    n->kind = XML_ELEM;
    n->name = split_name(a, qname, &ns, &prefix);
    n->ns = ns ? ns : "";
    n->prefix = prefix;
    if (nattrs > 0) {
        n->attrs = arena_alloc(a, nattrs * sizeof(*n->attrs));
        n->nattrs = n->attr_cap = nattrs;
        for (size_t i = 0; i < nattrs; i++) {
            struct xml_attr *at = &n->attrs[i];
            at->name = split_name(a, atts[2 * i], &at->ns, &prefix);
            at->value = arena_strdup(a, atts[2 * i + 1]);
        }
    }
    return n;
}

static void flush_text(struct xstream *xs)
{
    if (xs->text.len == 0)
        return;
    xml_text_add(xs->eng->arena, xs->cur, xs->text.data, xs->text.len);
    buf_reset(&xs->text);
}

/* A callback returned -1: keep the error it set through xstream_fail. */
static void callback_failed(struct xstream *xs)
{
    xs_fail(xs, XMPP_COND_STREAM_UNDEFINED_CONDITION, "stream stopped by its handler");
}

/* ---- expat handlers ---------------------------------------------------- */

static bool is_stream_root(const char *qname)
{
    static const char want[] = XML_NS_STREAM "\x01stream";
    size_t n = sizeof(want) - 1;
    return strncmp(qname, want, n) == 0 && (qname[n] == '\0' || qname[n] == NS_SEP);
}

/* Completes reopen, which holds the header's namespace declarations, into
 * the header's start tag: same prefix and name, no other attributes. */
static void save_reopen(struct xstream *xs, const struct xml_node *hdr)
{
    struct buf tag = BUF_INIT;
    buf_append_char(&tag, '<');
    if (hdr->prefix != NULL)
        buf_printf(&tag, "%s:", hdr->prefix);
    buf_append_str(&tag, hdr->name);
    buf_append(&tag, xs->reopen.data, xs->reopen.len);
    buf_append_char(&tag, '>');
    buf_fini(&xs->reopen);
    xs->reopen = tag;
    /* The engine is now inside this very header. */
    buf_reset(&xs->eng->key);
    buf_append(&xs->eng->key, tag.data, tag.len);
}

static void stream_open(struct xstream *xs, const char *qname, const char **atts, unsigned nattrs)
{
    if (!is_stream_root(qname)) {
        xs_fail(xs, XMPP_COND_STREAM_INVALID_NAMESPACE,
                "the stream root is not <stream> in " XML_NS_STREAM);
        return;
    }
    xs->depth = 1;
    xs->safe_pos = event_end(xs);
    struct xml_node *hdr = build_elem(xs, qname, atts, nattrs);
    save_reopen(xs, hdr);
    int rc = xs->ops->on_open ? xs->ops->on_open(xs->arg, hdr) : 0;
    arena_reset(xs->eng->arena);
    if (rc < 0)
        callback_failed(xs);
}

static void stanza_open(struct xstream *xs, const char *qname, const char **atts, unsigned nattrs)
{
    xs->stanza_start = pos_index(xs);
    xs->depth = 2;
    check_stanza_size(xs, event_end(xs));
    if (stopped(xs))
        return;
    xs->stanza = xs->cur = build_elem(xs, qname, atts, nattrs);
    buf_reset(&xs->text);
}

static void child_open(struct xstream *xs, const char *qname, const char **atts, unsigned nattrs)
{
    /* The new element's depth inside the stanza (the stanza itself is 1)
     * equals the number of elements open around it, the root included. */
    if (xs->depth > xs->lim.max_depth) {
        xs_fail(xs, XMPP_COND_STREAM_POLICY_VIOLATION, "elements nested deeper than %u",
                xs->lim.max_depth);
        return;
    }
    check_stanza_size(xs, event_end(xs));
    if (stopped(xs))
        return;
    xs->depth++;
    if (xs->flags & XSTREAM_SHALLOW)
        return;
    flush_text(xs);
    struct xml_node *n = build_elem(xs, qname, atts, nattrs);
    xml_append(xs->cur, n);
    xs->cur = n;
}

static void on_start(void *ud, const char *qname, const char **atts)
{
    struct xstream *xs = ud;
    if (stopped(xs))
        return;
    if (xs->replaying) {
        /* The synthetic header of a rebuilt parser: the stream is open. */
        xs->depth = 1;
        xs->ns_decls = 0;
        return;
    }
    unsigned nattrs = 0;
    while (atts[2 * (size_t)nattrs] != NULL)
        nattrs++;
    unsigned decls = xs->ns_decls;
    xs->ns_decls = 0;
    if (nattrs + decls > xs->lim.max_attrs) {
        xs_fail(xs, XMPP_COND_STREAM_POLICY_VIOLATION,
                "element with more than %u attributes and namespace declarations",
                xs->lim.max_attrs);
        return;
    }
    if (xs->depth == 0)
        stream_open(xs, qname, atts, nattrs);
    else if (xs->depth == 1)
        stanza_open(xs, qname, atts, nattrs);
    else
        child_open(xs, qname, atts, nattrs);
}

static void stanza_close(struct xstream *xs, int64_t end)
{
    check_stanza_size(xs, end);
    if (stopped(xs))
        return;
    if (!(xs->flags & XSTREAM_SHALLOW))
        flush_text(xs);
    const char *raw;
    size_t raw_len = (size_t)(end - xs->stanza_start);
    bool carried = xs->stanza_start < xs->base;
    if (!carried) {
        raw = xs->chunk + (xs->stanza_start - xs->base);
    } else {
        /* Began in an earlier chunk: complete the carried bytes. */
        buf_consume(&xs->carry, (size_t)(xs->stanza_start - xs->carry_start));
        xs->carry_start = xs->stanza_start;
        buf_append(&xs->carry, xs->chunk, (size_t)(end - xs->base));
        raw = xs->carry.data;
    }
    struct xml_node *stanza = xs->stanza;
    xs->stanza = xs->cur = NULL;
    xs->safe_pos = end;
    int rc = xs->ops->on_stanza ? xs->ops->on_stanza(xs->arg, stanza, raw, raw_len) : 0;
    if (carried) {
        buf_reset(&xs->carry);
        xs->carry_start = xs->base;
    }
    arena_reset(xs->eng->arena);
    if (rc < 0)
        callback_failed(xs);
}

static void on_end(void *ud, const char *qname)
{
    struct xstream *xs = ud;
    (void)qname;
    if (stopped(xs))
        return;
    int64_t end = event_end(xs);
    xs->depth--;
    if (xs->depth == 0) {
        xs->safe_pos = end;
        if (xs->ops->on_close)
            xs->ops->on_close(xs->arg);
    } else if (xs->depth == 1) {
        stanza_close(xs, end);
    } else {
        check_stanza_size(xs, end);
        if (stopped(xs) || (xs->flags & XSTREAM_SHALLOW))
            return;
        flush_text(xs);
        xs->cur = xs->cur->parent;
    }
}

static void on_text(void *ud, const char *s, int len)
{
    struct xstream *xs = ud;
    if (stopped(xs))
        return;
    if (xs->depth == 1) {
        /* Between stanzas only whitespace (keepalives) may appear. RFC 6120
         * names no condition for stray text; bad-format ("cannot be
         * processed") fits best. */
        for (int i = 0; i < len; i++) {
            if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
                xs_fail(xs, XMPP_COND_STREAM_BAD_FORMAT, "text between stanzas");
                return;
            }
        }
        xs->safe_pos = event_end(xs);
        return;
    }
    if (xs->depth < 2)
        return;
    check_stanza_size(xs, event_end(xs));
    if (!stopped(xs) && !(xs->flags & XSTREAM_SHALLOW))
        buf_append(&xs->text, s, (size_t)len);
}

/* Expat may have consumed every byte inside an unfinished CDATA section:
 * no place to release the parser. */
static void on_cdata_start(void *ud)
{
    struct xstream *xs = ud;
    xs->in_cdata = true;
}

/* Between stanzas, an empty CDATA section reports no text: move safe_pos
 * past its markup here so such sections cannot add up to a "stanza". */
static void on_cdata_end(void *ud)
{
    struct xstream *xs = ud;
    xs->in_cdata = false;
    if (!stopped(xs) && xs->depth == 1)
        xs->safe_pos = event_end(xs);
}

static void on_ns_decl(void *ud, const char *prefix, const char *uri)
{
    struct xstream *xs = ud;
    if (stopped(xs) || xs->replaying)
        return;
    xs->ns_decls++;
    if (xs->depth != 0)
        return;
    if (prefix == NULL) {
        buf_reset(&xs->default_ns);
        if (uri != NULL)
            buf_append_str(&xs->default_ns, uri);
    }
    /* Escaped as an attribute value, so that the rebuilt parser reads
     * back the same URI (a newline given as &#xA; stays a newline). */
    if (prefix == NULL) {
        xml_append_attr(&xs->reopen, "xmlns", uri != NULL ? uri : "");
    } else {
        buf_printf(&xs->reopen, " xmlns:%s='", prefix);
        xml_escape(&xs->reopen, uri != NULL ? uri : "", uri != NULL ? strlen(uri) : 0, true);
        buf_append_char(&xs->reopen, '\'');
    }
}

static void on_xml_decl(void *ud, const char *version, const char *encoding, int standalone)
{
    struct xstream *xs = ud;
    (void)version;
    (void)standalone;
    if (encoding != NULL && strcasecmp(encoding, "UTF-8") != 0)
        xs_fail(xs, XMPP_COND_STREAM_UNSUPPORTED_ENCODING, "encoding \"%.64s\" is not UTF-8",
                encoding);
}

/* Restricted XML (RFC 6120 §11.1). Refusing the DOCTYPE as soon as it starts
 * means no entity declaration is ever read, so entity expansion attacks
 * cost nothing. */
static void on_doctype(void *ud, const char *name, const char *sysid, const char *pubid,
                       int has_internal_subset)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    xs_fail(ud, XMPP_COND_STREAM_RESTRICTED_XML, "DOCTYPE declarations are not allowed");
}

static void on_entity_decl(void *ud, const char *name, int is_param, const char *value,
                           int value_len, const char *base, const char *sysid, const char *pubid,
                           const char *notation)
{
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    xs_fail(ud, XMPP_COND_STREAM_RESTRICTED_XML, "entity declarations are not allowed");
}

static void on_pi(void *ud, const char *target, const char *data)
{
    (void)target;
    (void)data;
    xs_fail(ud, XMPP_COND_STREAM_RESTRICTED_XML, "processing instructions are not allowed");
}

static void on_comment(void *ud, const char *data)
{
    (void)data;
    xs_fail(ud, XMPP_COND_STREAM_RESTRICTED_XML, "comments are not allowed");
}

static void on_skipped_entity(void *ud, const char *name, int is_param)
{
    (void)name;
    (void)is_param;
    xs_fail(ud, XMPP_COND_STREAM_RESTRICTED_XML, "entity references are not allowed");
}

/* ---- engines: a parser and a stanza arena ----------------------------- */

static void setup_parser(XML_Parser p, struct xstream *xs)
{
    XML_SetUserData(p, xs);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    XML_SetCdataSectionHandler(p, on_cdata_start, on_cdata_end);
    XML_SetStartNamespaceDeclHandler(p, on_ns_decl);
    XML_SetXmlDeclHandler(p, on_xml_decl);
    XML_SetStartDoctypeDeclHandler(p, on_doctype);
    XML_SetEntityDeclHandler(p, on_entity_decl);
    XML_SetProcessingInstructionHandler(p, on_pi);
    XML_SetCommentHandler(p, on_comment);
    XML_SetSkippedEntityHandler(p, on_skipped_entity);
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
    unsigned long salt;
    if (getrandom(&salt, sizeof(salt), GRND_NONBLOCK) == (ssize_t)sizeof(salt))
        XML_SetHashSalt(p, salt); /* else expat seeds itself */
#if EXPAT_VERSION_AT_LEAST(2, 6, 0)
    /* Deferral would hold back the last stanza of a burst until more bytes
     * arrive; stanzas must be delivered as soon as they are complete. */
    XML_SetReparseDeferralEnabled(p, XML_FALSE);
#endif
}

static struct engine *engine_new(void)
{
    struct engine *e = xcalloc(1, sizeof(*e));
    e->parser = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (e->parser == NULL)
        log_fatal(NULL, PL_EXIT_NOMEM, "out of memory creating an XML parser");
    XML_SetReturnNSTriplet(e->parser, XML_TRUE);
    setup_parser(e->parser, NULL);
    e->arena = arena_new(ARENA_CHUNK);
    return e;
}

static void engine_free(struct engine *e)
{
    XML_ParserFree(e->parser);
    arena_free(&e->arena);
    buf_fini(&e->key);
    free(e);
}

/* Back to the document start, keeping expat's memory. */
static void engine_restart(struct engine *e, struct xstream *xs)
{
    XML_ParserReset(e->parser, "UTF-8"); /* clears the handlers, keeps the triplet mode */
    setup_parser(e->parser, xs);
    arena_reset(e->arena);
    buf_reset(&e->key);
}

/* Takes an idle engine whose key is want (NULL: one at the document
 * start), else the most recently used one, else NULL. Only the few most
 * recent are looked at: nearly every stream of a server has the same
 * header, and a mismatch costs a restart, not a mistake. */
static struct engine *pool_take(struct xstream_pool *pool, const struct buf *want)
{
    struct engine **pp = &pool->idle, **pick = NULL;
    for (int i = 0; *pp != NULL && i < POOL_LOOK; i++, pp = &(*pp)->next) {
        const struct buf *k = &(*pp)->key;
        if (want == NULL ? k->len == 0
                         : k->len == want->len && memcmp(k->data, want->data, k->len) == 0) {
            pick = pp;
            break;
        }
    }
    if (pick == NULL)
        pick = &pool->idle;
    struct engine *e = *pick;
    if (e == NULL)
        return NULL;
    *pick = e->next;
    e->next = NULL;
    pool->nidle--;
    if (pool->nidle < pool->low)
        pool->low = pool->nidle;
    return e;
}

static void pool_unref(struct xstream_pool *pool)
{
    if (--pool->users > 0)
        return;
    for (struct engine *e = pool->idle, *next; e != NULL; e = next) {
        next = e->next;
        engine_free(e);
    }
    free(pool);
}

/* Gives xs an engine: a pooled one that has read the same header if there
 * is one, else one that reads reopen first (no callback sees it). Stream
 * offsets and line numbers go on from where the stream's last engine left. */
static void engine_attach(struct xstream *xs)
{
    bool at_start = xs->depth == 0;
    PL_ASSERT(!at_start || xs->base == 0);
    struct engine *e = xs->pool != NULL ? pool_take(xs->pool, at_start ? NULL : &xs->reopen) : NULL;
    bool match =
        e != NULL && (at_start ? e->key.len == 0
                               : e->key.len == xs->reopen.len &&
                                     memcmp(e->key.data, xs->reopen.data, e->key.len) == 0);
    if (e == NULL) {
        e = engine_new();
        if (xs->pool != NULL)
            xs->pool->created++;
    } else if (!match) {
        engine_restart(e, NULL);
    }
    xs->eng = e;
    if (xs->pool != NULL)
        xs->pool->lent++;
    XML_SetUserData(e->parser, xs);
    if (at_start) {
        xs->shift = 0;
        xs->line_shift = 0;
        return;
    }
    if (e->key.len == 0) {
        xs->replaying = true;
        xs->in_feed = true;
        enum XML_Status st = XML_Parse(e->parser, xs->reopen.data, (int)xs->reopen.len, XML_FALSE);
        xs->in_feed = false;
        xs->replaying = false;
        e->fed += xs->reopen.len;
        if (st != XML_STATUS_OK || xs->failed) {
            xs_fail(xs, XMPP_COND_STREAM_INTERNAL_SERVER_ERROR,
                    "the stream header could not be parsed again: %s",
                    XML_ErrorString(XML_GetErrorCode(e->parser)));
            return;
        }
        buf_append(&e->key, xs->reopen.data, xs->reopen.len);
    }
    xs->shift = xs->base - (int64_t)XML_GetCurrentByteIndex(e->parser);
    xs->line_shift = xs->line - (int64_t)XML_GetCurrentLineNumber(e->parser);
}

/* Takes the engine from xs: into the pool (restarted unless the stream is
 * at a stanza boundary) or freed. */
static void engine_detach(struct xstream *xs, bool at_boundary)
{
    struct engine *e = xs->eng;
    xs->eng = NULL;
    XML_SetUserData(e->parser, NULL);
    struct xstream_pool *pool = xs->pool;
    if (pool != NULL)
        pool->lent--;
    if (pool == NULL || e->fed > RETIRE_FED || e->biggest > RETIRE_PIECE) {
        engine_free(e);
        return;
    }
    if (at_boundary)
        arena_reset(e->arena);
    else
        engine_restart(e, NULL);
    e->next = pool->idle;
    pool->idle = e;
    pool->nidle++;
}

/* ---- stream lifecycle --------------------------------------------------- */

static void state_reset(struct xstream *xs)
{
    if (xs->eng != NULL)
        arena_reset(xs->eng->arena);
    buf_reset(&xs->default_ns);
    buf_reset(&xs->reopen);
    buf_reset(&xs->text);
    buf_reset(&xs->carry);
    buf_reset(&xs->held);
    xs->carry_start = xs->base = xs->safe_pos = xs->stanza_start = xs->tail_start = 0;
    xs->shift = xs->line_shift = xs->line = 0;
    xs->replaying = false;
    xs->quote = '\0';
    xs->quote_valid = false;
    xs->chunk = NULL;
    xs->depth = xs->ns_decls = 0;
    xs->in_cdata = false;
    xs->stanza = xs->cur = NULL;
    xs->failed = xs->reset_pending = false;
    xs->guess_pos = -1;
    free(xs->err);
    xs->err = NULL;
}

struct xstream *xstream_new(const struct xstream_limits *limits, const struct xstream_ops *ops,
                            void *arg, unsigned flags)
{
    struct xstream *xs = xcalloc(1, sizeof(*xs));
    if (limits != NULL)
        xs->lim = *limits;
    if (xs->lim.max_stanza == 0)
        xs->lim.max_stanza = DEFAULT_MAX_STANZA;
    if (xs->lim.max_stanza > MAX_STANZA_CAP)
        xs->lim.max_stanza = MAX_STANZA_CAP;
    if (xs->lim.max_depth == 0)
        xs->lim.max_depth = DEFAULT_MAX_DEPTH;
    if (xs->lim.max_attrs == 0)
        xs->lim.max_attrs = DEFAULT_MAX_ATTRS;
    xs->ops = ops;
    xs->arg = arg;
    xs->flags = flags;
    state_reset(xs);
    cclass_init();
    return xs;
}

/* Every byte fed so far is parsed and the stream sits between stanzas:
 * no partial token in expat, none held back, nothing carried. */
static bool at_boundary(const struct xstream *xs)
{
    return !xs->in_feed && !xs->failed && !xs->reset_pending && xs->depth == 1 && !xs->in_cdata &&
           xs->held.len == 0 && xs->safe_pos == xs->base && xs->tail_start == xs->base;
}

void xstream_free(struct xstream **xsp)
{
    struct xstream *xs = *xsp;
    if (xs == NULL)
        return;
    PL_ASSERT(!xs->in_feed);
    if (xs->eng != NULL)
        engine_detach(xs, at_boundary(xs));
    if (xs->pool != NULL)
        pool_unref(xs->pool);
    free(xs->err);
    buf_fini(&xs->default_ns);
    buf_fini(&xs->reopen);
    buf_fini(&xs->text);
    buf_fini(&xs->carry);
    buf_fini(&xs->held);
    free(xs);
    *xsp = NULL;
}

void xstream_reset(struct xstream *xs)
{
    if (xs->in_feed) {
        xs->reset_pending = true;
        if (!xs->in_scan)
            (void)XML_StopParser(xs->eng->parser, XML_FALSE);
        return;
    }
    if (xs->eng != NULL)
        engine_restart(xs->eng, xs);
    state_reset(xs);
}

bool xstream_release(struct xstream *xs)
{
    if (xs->eng == NULL)
        return true;
    if (!at_boundary(xs))
        return false;
    PL_ASSERT(xs->carry.len == 0 && xs->text.len == 0);
    xs->line = (int64_t)XML_GetCurrentLineNumber(xs->eng->parser) + xs->line_shift;
    engine_detach(xs, true);
    buf_fini(&xs->text);
    buf_fini(&xs->carry);
    buf_fini(&xs->held);
    return true;
}

void xstream_fail(struct xstream *xs, const struct err *err)
{
    xs_fail(xs, err->cond, "%s", err->text);
}

unsigned long xstream_scanned(const struct xstream *xs)
{
    return xs->scanned;
}

const char *xstream_default_ns(const struct xstream *xs)
{
    return buf_cstr(&xs->default_ns);
}

struct arena *xstream_arena(struct xstream *xs)
{
    if (xs->eng == NULL)
        engine_attach(xs);
    return xs->eng->arena;
}

/* ---- pools ------------------------------------------------------------- */

struct xstream_pool *xstream_pool_new(void)
{
    struct xstream_pool *pool = xcalloc(1, sizeof(*pool));
    pool->users = 1;
    return pool;
}

void xstream_pool_free(struct xstream_pool **poolp)
{
    if (*poolp != NULL)
        pool_unref(*poolp);
    *poolp = NULL;
}

void xstream_set_pool(struct xstream *xs, struct xstream_pool *pool)
{
    PL_ASSERT(xs->pool == NULL && xs->eng == NULL);
    xs->pool = pool;
    pool->users++;
}

void xstream_pool_trim(struct xstream_pool *pool)
{
    /* The least recently used are at the end of the list. */
    size_t keep = pool->nidle - pool->low;
    struct engine **pp = &pool->idle;
    for (size_t i = 0; i < keep && *pp != NULL; i++)
        pp = &(*pp)->next;
    for (struct engine *e = *pp, *next; e != NULL; e = next) {
        next = e->next;
        engine_free(e);
        pool->nidle--;
    }
    *pp = NULL;
    pool->low = pool->nidle;
}

void xstream_pool_stats(const struct xstream_pool *pool, size_t *lent_r, size_t *idle_r,
                        size_t *created_r)
{
    *lent_r = pool->lent;
    *idle_r = pool->nidle;
    *created_r = pool->created;
}

/* ---- feeding ----------------------------------------------------------- */

static void fail_from_expat(struct xstream *xs)
{
    enum XML_Error code = XML_GetErrorCode(xs->eng->parser);
    enum xmpp_cond cond;
    switch (code) {
    case XML_ERROR_UNBOUND_PREFIX:
        cond = XMPP_COND_STREAM_BAD_NAMESPACE_PREFIX;
        break;
    case XML_ERROR_UNDEFINED_ENTITY:
    case XML_ERROR_PARAM_ENTITY_REF:
    case XML_ERROR_RECURSIVE_ENTITY_REF:
    case XML_ERROR_ASYNC_ENTITY:
    case XML_ERROR_BINARY_ENTITY_REF:
    case XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF:
    case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
    case XML_ERROR_ENTITY_DECLARED_IN_PE:
        cond = XMPP_COND_STREAM_RESTRICTED_XML;
        break;
    case XML_ERROR_UNKNOWN_ENCODING:
    case XML_ERROR_INCORRECT_ENCODING:
        cond = XMPP_COND_STREAM_UNSUPPORTED_ENCODING;
        break;
    case XML_ERROR_NO_MEMORY:
        cond = XMPP_COND_STREAM_RESOURCE_CONSTRAINT;
        break;
    default:
        cond = XMPP_COND_STREAM_NOT_WELL_FORMED;
        break;
    }
    xs_fail(xs, cond, "%s at line %lu", XML_ErrorString(code),
            (unsigned long)((int64_t)XML_GetCurrentLineNumber(xs->eng->parser) + xs->line_shift));
}

/* Keeps the bytes from the first one a later stanza may still need, and
 * enforces max_stanza on bytes that have arrived but not yet completed a
 * stanza (a huge stanza fails as soon as it crosses the limit). */
static void carry_update(struct xstream *xs, const char *data, size_t len)
{
    int64_t end = xs->base + (int64_t)len;
    int64_t keep = xs->depth >= 2 ? xs->stanza_start : xs->safe_pos;
    PL_ASSERT(keep >= xs->carry_start && keep <= end);
    if (keep >= xs->base) {
        buf_reset(&xs->carry);
        buf_append(&xs->carry, data + (keep - xs->base), (size_t)(end - keep));
    } else {
        buf_consume(&xs->carry, (size_t)(keep - xs->carry_start));
        buf_append(&xs->carry, data, len);
    }
    xs->carry_start = keep;
    xs->base = end;
    if ((uint64_t)(end - keep) > xs->lim.max_stanza)
        xs_fail(xs, XMPP_COND_STREAM_POLICY_VIOLATION, "stanza larger than %zu bytes",
                xs->lim.max_stanza);
}

static void feed_piece(struct xstream *xs, const char *data, size_t len)
{
    PL_ASSERT(len <= INT_MAX);
    xs->chunk = data;
    xs->in_feed = true;
    struct engine *e = xs->eng;
    e->fed += len;
    if (len > e->biggest)
        e->biggest = len;
    enum XML_Status st = XML_Parse(e->parser, data, (int)len, XML_FALSE);
    xs->in_feed = false;
    xs->chunk = NULL;
    if (xs->reset_pending || xs->failed)
        return;
    if (st != XML_STATUS_OK) {
        fail_from_expat(xs);
        return;
    }
    /* Outside handlers the index is where the unparsed partial token starts. */
    int64_t tail = pos_index(xs);
    carry_update(xs, data, len);
    xs->tail_start = tail >= xs->carry_start && tail <= xs->base ? tail : xs->base;
    xs->quote_valid = false;
}

/* Tracks attribute-value quotes; returns true at a '>' outside quotes, the
 * only byte that can end a start or end tag. */
static bool scan_quotes(char *quote, const char *p, size_t len)
{
    char q = *quote;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (q != '\0') {
            if (c == q)
                q = '\0';
        } else if (c == '\'' || c == '"') {
            q = c;
        } else if (c == '>') {
            *quote = q;
            return true;
        }
    }
    *quote = q;
    return false;
}

/* Looks at a long partial token. Returns true if it is a tag, whose end
 * scan_quotes can see coming; refuses tokens that are never this long in
 * an acceptable stream; returns false (parse as usual) for anything else. */
static bool long_token_is_tag(struct xstream *xs)
{
    const char *t = xs->carry.data + (xs->tail_start - xs->carry_start);
    size_t len = (size_t)(xs->base - xs->tail_start);
    if (t[0] == '&') {
        xs_fail(xs, XMPP_COND_STREAM_RESTRICTED_XML, "entity reference of %zu bytes or more", len);
        return false;
    }
    if (t[0] != '<')
        return false;
    if (t[1] == '?' || (t[1] == '!' && (t[2] == '-' || t[2] == 'D'))) {
        xs_fail(xs, XMPP_COND_STREAM_RESTRICTED_XML,
                "comment, processing instruction or DOCTYPE of %zu bytes or more", len);
        return false;
    }
    if (t[1] == '!')
        return false; /* a CDATA section: its content is reported as it comes */
    if (!xs->quote_valid) {
        xs->quote = '\0';
        (void)scan_quotes(&xs->quote, t + 1, len - 1);
        (void)scan_quotes(&xs->quote, xs->held.data, xs->held.len);
        xs->quote_valid = true;
    }
    return true;
}

/* Feeds one piece, holding it back while it cannot complete a long partial
 * token, so every byte of a tag is scanned a bounded number of times. */
static void feed_chunk(struct xstream *xs, const char *data, size_t len)
{
    if (xs->held.len == 0 && xs->base - xs->tail_start < DEFER_MIN) {
        feed_piece(xs, data, len);
        return;
    }
    bool is_tag = long_token_is_tag(xs);
    if (xs->failed)
        return;
    if (is_tag && !scan_quotes(&xs->quote, data, len)) {
        buf_append(&xs->held, data, len);
        int64_t keep = xs->depth >= 2 ? xs->stanza_start : xs->safe_pos;
        if ((uint64_t)(xs->base + (int64_t)xs->held.len - keep) > xs->lim.max_stanza)
            xs_fail(xs, XMPP_COND_STREAM_POLICY_VIOLATION, "stanza larger than %zu bytes",
                    xs->lim.max_stanza);
        return;
    }
    if (xs->held.len == 0) {
        feed_piece(xs, data, len);
        return;
    }
    /* Nothing touches held while expat parses it, so stanzas' raw bytes
     * can point into it. */
    buf_append(&xs->held, data, len);
    feed_piece(xs, xs->held.data, xs->held.len);
    buf_reset(&xs->held);
}

/* ---- the scanner: shallow stanzas without expat ------------------------ */

/* A shallow stream needs of a stanza only its outer element with its
 * attributes and its bytes. When expat sits idle at a stanza boundary, the
 * scanner reads the complete stanzas at the start of the bytes fed, as long
 * as they are written in a plain subset of XML: printable ASCII and XML
 * whitespace only; names without prefixes (but xml: on attributes); no
 * entity references in the outer element's attribute values and no tab, CR
 * or LF in them (their values need no normalising); elsewhere only the five
 * predefined entities; no CDATA, comments, PIs, character references or
 * "]]>"; no reserved namespace name bound as the default; no duplicate
 * attribute; within max_stanza, max_depth and max_attrs. Expat accepts all
 * of that and reports the same stanza. At anything else, or a stanza that
 * does not end in these bytes, the scanner stops and expat reads on from
 * there, so expat alone decides every error. The bytes expat never saw are
 * added to shift and line_shift, so its byte offsets and line numbers go on
 * being the stream's. */

#define SCAN_ATTRS_MAX 64 /* attributes kept per element; beyond, expat reads it */
#define SCAN_DEPTH_MAX 64 /* open elements inside a stanza; beyond, expat reads it */

enum { CC_TEXT = 1, CC_NAME_START = 2, CC_NAME = 4, CC_SPACE = 8 };

/* CC_TEXT: a byte that stands for itself in text and attribute values
 * (printable ASCII but '<', '&' and ']'). */
static unsigned char cclass[256];

static void cclass_init(void)
{
    if (cclass['a'] != 0)
        return;
    for (int c = 0x20; c < 0x7f; c++)
        cclass[c] = CC_TEXT;
    cclass['<'] = cclass['&'] = cclass[']'] = 0;
    for (int c = 'a'; c <= 'z'; c++) {
        cclass[c] |= CC_NAME_START | CC_NAME;
        cclass[c - 'a' + 'A'] |= CC_NAME_START | CC_NAME;
    }
    for (int c = '0'; c <= '9'; c++)
        cclass[c] |= CC_NAME;
    cclass['_'] |= CC_NAME_START | CC_NAME;
    cclass['.'] |= CC_NAME;
    cclass['-'] |= CC_NAME;
    cclass[' '] |= CC_SPACE;
    cclass['\t'] |= CC_SPACE;
    cclass['\n'] |= CC_SPACE;
    cclass['\r'] |= CC_SPACE;
}

struct scan_str {
    const char *p;
    size_t len;
};

struct scan {
    const char *p, *end;
    uint64_t lines; /* line breaks passed, counted as expat counts them */
    unsigned max_attrs;
    /* The outer element of the last stanza scanned. */
    struct scan_str name, xmlns;
    bool has_xmlns;
    unsigned nattrs; /* without xmlns */
    struct scan_str attr[SCAN_ATTRS_MAX], value[SCAN_ATTRS_MAX];
};

static bool cc(char c, unsigned what)
{
    return (cclass[(unsigned char)c] & what) != 0;
}

/* At a CR or LF: one line, CR LF included. False for a CR that ends the
 * bytes (a LF may follow in the next ones). */
static bool scan_newline(struct scan *s)
{
    if (*s->p == '\r') {
        if (s->p + 1 == s->end)
            return false;
        if (s->p[1] == '\n')
            s->p++;
    }
    s->p++;
    s->lines++;
    return true;
}

static bool scan_space(struct scan *s)
{
    while (s->p < s->end && cc(*s->p, CC_SPACE)) {
        if (*s->p == '\n' || *s->p == '\r') {
            if (!scan_newline(s))
                return false;
        } else {
            s->p++;
        }
    }
    return true;
}

/* A name without a colon; its length, 0 if none starts here. */
static size_t scan_ncname(struct scan *s)
{
    const char *q = s->p;
    if (q == s->end || !cc(*q, CC_NAME_START))
        return 0;
    for (q++; q < s->end && cc(*q, CC_NAME); q++)
        ;
    size_t n = (size_t)(q - s->p);
    s->p = q;
    return n;
}

/* At '&': one of the five predefined entity references. */
static bool scan_entity(struct scan *s)
{
    static const struct scan_str ents[] = {
        {"&lt;", 4}, {"&gt;", 4}, {"&amp;", 5}, {"&quot;", 6}, {"&apos;", 6}};
    size_t left = (size_t)(s->end - s->p);
    for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
        if (left >= ents[i].len && memcmp(s->p, ents[i].p, ents[i].len) == 0) {
            s->p += ents[i].len;
            return true;
        }
    }
    return false;
}

static bool str_starts(struct scan_str v, const char *prefix)
{
    size_t n = strlen(prefix);
    return v.len >= n && memcmp(v.p, prefix, n) == 0;
}

/* An attribute value after its opening quote q, up to and past the closing
 * one. */
static bool scan_value(struct scan *s, char q, bool outer, struct scan_str *v)
{
    v->p = s->p;
    for (;;) {
        if (s->p == s->end)
            return false;
        char c = *s->p;
        if (c == q)
            break;
        if (cc(c, CC_TEXT) || c == ']') {
            s->p++;
        } else if (outer) {
            return false;
        } else if (c == '&') {
            if (!scan_entity(s))
                return false;
        } else if (c == '\n' || c == '\r') {
            if (!scan_newline(s))
                return false;
        } else if (c == '\t') {
            s->p++;
        } else {
            return false;
        }
    }
    v->len = (size_t)(s->p - v->p);
    s->p++;
    return true;
}

/* A start tag at '<' and a name start character. The outer one's name,
 * attributes and xmlns go into s. *empty: it ended with "/>". */
static bool scan_start_tag(struct scan *s, bool outer, struct scan_str *name, bool *empty)
{
    struct scan_str seen[SCAN_ATTRS_MAX];
    unsigned n = 0;
    s->p++;
    name->p = s->p;
    name->len = scan_ncname(s);
    if (name->len == 0)
        return false;
    for (;;) {
        const char *before = s->p;
        if (!scan_space(s) || s->p == s->end)
            return false;
        if (*s->p == '>') {
            s->p++;
            *empty = false;
            return true;
        }
        if (*s->p == '/') {
            if (s->p + 1 == s->end || s->p[1] != '>')
                return false;
            s->p += 2;
            *empty = true;
            return true;
        }
        /* Attributes are separated by whitespace; this also refuses a
         * prefixed element name. */
        if (s->p == before || n == SCAN_ATTRS_MAX || n >= s->max_attrs)
            return false;
        struct scan_str an = {s->p, scan_ncname(s)};
        if (an.len == 0)
            return false;
        if (s->p < s->end && *s->p == ':') {
            if (an.len != 3 || memcmp(an.p, "xml", 3) != 0)
                return false;
            s->p++;
            if (scan_ncname(s) == 0)
                return false;
            an.len = (size_t)(s->p - an.p);
        }
        for (unsigned i = 0; i < n; i++) {
            if (seen[i].len == an.len && memcmp(seen[i].p, an.p, an.len) == 0)
                return false;
        }
        seen[n++] = an;
        if (!scan_space(s) || s->p == s->end || *s->p != '=')
            return false;
        s->p++;
        if (!scan_space(s) || s->p == s->end || (*s->p != '\'' && *s->p != '"'))
            return false;
        char q = *s->p++;
        struct scan_str v;
        if (!scan_value(s, q, outer, &v))
            return false;
        bool is_xmlns = an.len == 5 && memcmp(an.p, "xmlns", 5) == 0;
        if (is_xmlns &&
            (str_starts(v, XML_NS_XML) || str_starts(v, "http://www.w3.org/2000/xmlns/")))
            return false;
        if (!outer)
            continue;
        if (is_xmlns) {
            s->xmlns = v;
            s->has_xmlns = true;
        } else {
            s->attr[s->nattrs] = an;
            s->value[s->nattrs++] = v;
        }
    }
}

/* One complete stanza from s->p (at '<' and a name start character). */
static bool scan_stanza(struct scan *s, size_t max_stanza, unsigned max_depth)
{
    const char *start = s->p;
    struct scan_str open[SCAN_DEPTH_MAX];
    unsigned depth = 0; /* open elements of the stanza, itself included */
    bool empty;
    s->nattrs = 0;
    s->has_xmlns = false;
    if (!scan_start_tag(s, true, &s->name, &empty))
        return false;
    if (!empty)
        open[depth++] = s->name;
    while (depth > 0) {
        if ((size_t)(s->p - start) > max_stanza)
            return false;
        while (s->p < s->end) {
            char c = *s->p;
            if (cc(c, CC_TEXT)) {
                s->p++;
            } else if (c == '<') {
                break;
            } else if (c == '\t') {
                s->p++;
            } else if (c == '\n' || c == '\r') {
                if (!scan_newline(s))
                    return false;
            } else if (c == '&') {
                if (!scan_entity(s))
                    return false;
            } else if (c == ']') {
                if (s->end - s->p < 3 || (s->p[1] == ']' && s->p[2] == '>'))
                    return false;
                s->p++;
            } else {
                return false;
            }
        }
        if (s->end - s->p < 2)
            return false;
        if (s->p[1] == '/') {
            const struct scan_str *top = &open[depth - 1];
            s->p += 2;
            if ((size_t)(s->end - s->p) < top->len || memcmp(s->p, top->p, top->len) != 0)
                return false;
            s->p += top->len;
            if (s->p < s->end && (cc(*s->p, CC_NAME) || *s->p == ':'))
                return false;
            if (!scan_space(s) || s->p == s->end || *s->p != '>')
                return false;
            s->p++;
            depth--;
        } else if (cc(s->p[1], CC_NAME_START)) {
            /* As child_open counts: the stream root and the open elements. */
            if (1 + depth > max_depth || depth == SCAN_DEPTH_MAX)
                return false;
            struct scan_str name;
            if (!scan_start_tag(s, false, &name, &empty))
                return false;
            if (!empty)
                open[depth++] = name;
        } else {
            return false;
        }
    }
    return (size_t)(s->p - start) <= max_stanza;
}

/* The stanza's outer element, as build_elem makes it in a shallow stream. */
static struct xml_node *scan_node(struct xstream *xs, const struct scan *s)
{
    struct arena *a = xs->eng->arena;
    struct xml_node *n = arena_alloc(a, sizeof(*n));
    n->kind = XML_ELEM;
    n->name = arena_strndup(a, s->name.p, s->name.len);
    n->ns = s->has_xmlns ? arena_strndup(a, s->xmlns.p, s->xmlns.len)
                         : arena_strdup(a, buf_cstr(&xs->default_ns));
    if (s->nattrs == 0)
        return n;
    n->attrs = arena_alloc(a, s->nattrs * sizeof(*n->attrs));
    n->nattrs = n->attr_cap = s->nattrs;
    for (unsigned i = 0; i < s->nattrs; i++) {
        struct xml_attr *at = &n->attrs[i];
        struct scan_str an = s->attr[i];
        if (str_starts(an, "xml:")) {
            at->ns = arena_strdup(a, XML_NS_XML);
            an.p += 4;
            an.len -= 4;
        }
        at->name = arena_strndup(a, an.p, an.len);
        at->value = arena_strndup(a, s->value[i].p, s->value[i].len);
    }
    return n;
}

/* n bytes the scanner has read, with lines line breaks: expat, still at the
 * boundary before them, now stands for the stream at the boundary after. */
static void scan_consume(struct xstream *xs, size_t n, uint64_t lines)
{
    xs->base += (int64_t)n;
    xs->shift += (int64_t)n;
    xs->line_shift += (int64_t)lines;
    xs->safe_pos = xs->tail_start = xs->carry_start = xs->base;
}

static bool scan_ready(const struct xstream *xs)
{
    return (xs->flags & (XSTREAM_SHALLOW | XSTREAM_EXPAT_ONLY)) == XSTREAM_SHALLOW &&
           xs->eng != NULL && at_boundary(xs);
}

/* Hands out the stanzas of the subset at the start of data and skips the
 * whitespace between them. Returns the bytes read; stops before anything
 * else, and after a callback that failed or reset the stream. */
static size_t scan_feed(struct xstream *xs, const char *data, size_t len)
{
    struct scan s = {.p = data, .end = data + len, .max_attrs = xs->lim.max_attrs};
    const char *done = data;
    while (!xs->failed && !xs->reset_pending) {
        s.lines = 0;
        bool ok = scan_space(&s);
        const char *lt = s.p;
        uint64_t space_lines = s.lines;
        if (!ok || s.end - lt < 2 || *lt != '<' || !cc(lt[1], CC_NAME_START) ||
            !scan_stanza(&s, xs->lim.max_stanza, xs->lim.max_depth)) {
            scan_consume(xs, (size_t)(lt - done), space_lines);
            done = lt;
            break;
        }
        scan_consume(xs, (size_t)(s.p - done), s.lines);
        done = s.p;
        xs->stanza_start = xs->base - (s.p - lt);
        struct xml_node *st = scan_node(xs, &s);
        xs->scanned++;
        xs->in_feed = xs->in_scan = true;
        int rc = xs->ops->on_stanza ? xs->ops->on_stanza(xs->arg, st, lt, (size_t)(s.p - lt)) : 0;
        xs->in_feed = xs->in_scan = false;
        arena_reset(xs->eng->arena);
        if (rc < 0)
            callback_failed(xs);
    }
    return (size_t)(done - data);
}

/* Where expat should stop so that the scanner can take over again: just
 * past the '>' that seems to close the element expat is in (or is about to
 * read). The guess only looks at tags and quotes; expat parses every byte
 * anyway, so a wrong guess only splits its input elsewhere. */
/* Returns the offset past the closing '>' in p, or 0: not there, or a
 * comment, PI, CDATA section or DOCTYPE (*stop is set then). */
static size_t guess_run(struct guess *g, const char *p, size_t len, bool *stop)
{
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        switch (g->mode) {
        case G_TEXT: {
            const char *lt = memchr(p + i, '<', len - i);
            if (lt == NULL)
                return 0;
            i = (size_t)(lt - p);
            g->mode = G_LT;
            break;
        }
        case G_LT:
            if (c == '!' || c == '?') {
                *stop = true;
                return 0;
            }
            if (c == '/') {
                g->mode = G_END_TAG;
            } else {
                g->depth++;
                g->mode = G_TAG;
                g->prev = c;
            }
            break;
        case G_TAG:
            if (c == '\'' || c == '"') {
                g->quote = c;
                g->mode = G_QUOTE;
            } else if (c == '>') {
                g->mode = G_TEXT;
                if (g->prev == '/' && --g->depth <= 0)
                    return i + 1;
            } else {
                g->prev = c;
            }
            break;
        case G_QUOTE:
            if (c == g->quote) {
                g->mode = G_TAG;
                g->prev = c;
            }
            break;
        case G_STOP:
            return 0;
        case G_END_TAG:
            if (c == '>') {
                g->mode = G_TEXT;
                if (--g->depth < 0) {
                    *stop = true;
                    return 0;
                }
                if (g->depth == 0)
                    return i + 1;
            }
            break;
        }
    }
    return 0;
}

/* How much of data (len bytes, next for expat) to give expat now: up to the
 * end of the stanza it is in or about to read, so that the scanner reads
 * the ones after; all of it if that end is not in data. */
static size_t expat_piece(struct xstream *xs, const char *data, size_t len)
{
    if ((xs->flags & (XSTREAM_SHALLOW | XSTREAM_EXPAT_ONLY)) != XSTREAM_SHALLOW ||
        xs->eng == NULL || xs->depth == 0 || xs->in_cdata || xs->held.len > 0)
        return len;
    /* The bytes of the unfinished stanza (or top-level token) expat has
     * seen: carry begins there. */
    int64_t keep = xs->depth >= 2 ? xs->stanza_start : xs->safe_pos;
    if (keep < xs->carry_start || keep > xs->base)
        return len;
    struct guess *g = &xs->guess;
    bool stop = false;
    if (xs->guess_pos != xs->base || xs->guess_keep != keep) {
        /* Once per stanza: what expat has seen of it. From then on the
         * look goes on from where it stopped, so a stanza arriving in
         * small pieces costs linear time. */
        *g = (struct guess){0, G_TEXT, '\0', '\0'};
        xs->guess_keep = keep;
        const char *seen = xs->carry.data + (keep - xs->carry_start);
        if (guess_run(g, seen, (size_t)(xs->base - keep), &stop) > 0 || stop)
            g->mode = G_STOP;
    }
    size_t end = guess_run(g, data, len, &stop);
    if (stop)
        g->mode = G_STOP;
    if (end > 0) {
        xs->guess_pos = -1;
        return end;
    }
    xs->guess_pos = xs->base + (int64_t)len;
    return len;
}

/* UTF-16 and UTF-32 start with bytes UTF-8 never starts with. */
static bool bad_first_byte(unsigned char c)
{
    return c == 0x00 || c == 0xFE || c == 0xFF;
}

int xstream_feed(struct xstream *xs, const char *data, size_t len, struct err *err)
{
    PL_ASSERT(!xs->in_feed);
    if (!xs->failed && xs->base == 0 && len > 0 && bad_first_byte((unsigned char)data[0]))
        xs_fail(xs, XMPP_COND_STREAM_UNSUPPORTED_ENCODING, "the stream is not UTF-8");
    if (!xs->failed && xs->eng == NULL && len > 0)
        engine_attach(xs);
    while (len > 0 && !xs->failed) {
        size_t n = scan_ready(xs) ? scan_feed(xs, data, len) : 0;
        if (n < len && !xs->failed && !xs->reset_pending) {
            size_t m = len - n > FEED_PIECE_MAX ? FEED_PIECE_MAX : len - n;
            m = expat_piece(xs, data + n, m);
            feed_chunk(xs, data + n, m);
            n += m;
        }
        if (xs->reset_pending) {
            /* Reset from a callback: the rest of these bytes belonged to
             * the old stream (e.g. plaintext after <starttls/>). */
            bool failed = xs->failed;
            struct err saved = failed ? *xs->err : (struct err){0};
            xstream_reset(xs);
            if (!failed)
                return 0;
            if (err != NULL)
                *err = saved;
            return -1;
        }
        data += n;
        len -= n;
    }
    if (xs->failed) {
        if (err != NULL)
            *err = *xs->err;
        return -1;
    }
    return 0;
}
