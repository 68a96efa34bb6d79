/* SPDX-License-Identifier: MIT */
/* An incremental XMPP stream parser on expat: bytes in, a stream-open event
 * and one callback per top-level stanza out. Each stanza arrives as an
 * xml_node tree in a per-stanza arena (reset after the callback returns) and
 * as the raw bytes it was sent as, so a router can forward it unchanged. */
#ifndef PL_XSTREAM_H
#define PL_XSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "attr.h"

struct err;
struct xml_node;
struct xstream;

struct xstream_limits {
    size_t max_stanza;  /* bytes of one stanza; 0 = 65536 */
    unsigned max_depth; /* element depth inside a stanza; 0 = 32 */
    unsigned max_attrs; /* attributes on one element; 0 = 64 */
};

enum xstream_flags {
    /* Build only each stanza's top element and its attributes; children and
     * text are parsed, checked and counted but not built (the router). */
    XSTREAM_SHALLOW = 1 << 0,
    /* Shallow streams hand complete stanzas in plain ASCII XML to the
     * callback from a scanner that skips expat (see xstream.c); this makes
     * expat parse every byte, for tests that compare the two. */
    XSTREAM_EXPAT_ONLY = 1 << 1,
};

struct xstream_ops {
    /* The <stream:stream> header arrived; hdr holds its attributes (and the
     * default namespace in hdr->ns... see xstream_default_ns). Return 0 to go
     * on, -1 to stop parsing (xstream_feed then returns -1 with err as set
     * through xstream_fail). */
    int (*on_open)(void *arg, const struct xml_node *hdr);
    /* One complete stanza. raw/raw_len are its exact bytes. The tree lives in
     * the stanza arena until this returns. Return 0 or -1 as above. */
    int (*on_stanza)(void *arg, struct xml_node *stanza, const char *raw, size_t raw_len);
    /* </stream:stream> arrived. */
    void (*on_close)(void *arg);
};

/* ops and arg are borrowed; limits copied. */
struct xstream *xstream_new(const struct xstream_limits *limits, const struct xstream_ops *ops,
                            void *arg, unsigned flags);
void xstream_free(struct xstream **xs);

/* Parses len bytes. Returns 0, or -1 with err set to the stream condition
 * to send (not-well-formed, restricted-xml, policy-violation,
 * invalid-namespace, bad-namespace-prefix, unsupported-encoding, ...) and a
 * reason. After -1 the stream is dead until xstream_reset. */
int xstream_feed(struct xstream *xs, const char *data, size_t len, struct err *err) PL_WARN_UNUSED;
/* Starts over, expecting a new stream header (after STARTTLS or SASL).
 * Called from a callback, it takes effect when that callback returns: the
 * bytes after the current stanza in the current xstream_feed are discarded
 * (they belonged to the old stream) and xstream_feed returns 0, or -1 if the
 * callback also called xstream_fail. */
void xstream_reset(struct xstream *xs);
/* Gives back the expat parser and the stanza arena (about 13 KiB) while
 * the stream sits between stanzas with every byte fed so far parsed: to
 * its pool (xstream_set_pool), else freed. The next xstream_feed takes a
 * pooled parser that has read an identical stream header, or has one read
 * a copy of the header's name and namespace declarations (no callback sees
 * it), so the stanzas that follow produce exactly the same events, trees,
 * raw bytes and errors as without the release. Returns true if the stream
 * holds no parser now (released now or before, or nothing fed yet); false,
 * with nothing changed, inside a callback, before the end of the header,
 * inside a stanza or a partial token, after the stream's end or a failure. */
bool xstream_release(struct xstream *xs);

/* Parsers shared by the streams of one process: a stream holds one only
 * while it is inside a stanza (see xstream_release), so thousands of idle
 * streams need a handful. Not thread-safe, like the streams. */
struct xstream_pool;
struct xstream_pool *xstream_pool_new(void);
/* Drops the creator's reference: the pool goes when its last stream does. */
void xstream_pool_free(struct xstream_pool **pool);
/* Makes xs borrow from pool; call before the first xstream_feed. */
void xstream_set_pool(struct xstream *xs, struct xstream_pool *pool);
/* Frees the idle parsers no stream took since the previous trim: call it
 * every few seconds, so that the pool follows the peak of recent demand. */
void xstream_pool_trim(struct xstream_pool *pool);
/* Parsers held by streams now, idle in the pool, and created so far. */
void xstream_pool_stats(const struct xstream_pool *pool, size_t *lent_r, size_t *idle_r,
                        size_t *created_r);

/* Called from a callback to fail the stream: xstream_feed returns -1 with
 * this condition and text. */
void xstream_fail(struct xstream *xs, const struct err *err);
/* Stanzas the scanner handed out without expat (shallow streams only). */
unsigned long xstream_scanned(const struct xstream *xs);
/* The default namespace the stream header declared ("" if none). */
const char *xstream_default_ns(const struct xstream *xs);
/* The arena of the current stanza, for callbacks that build replies with the
 * same lifetime. */
struct arena *xstream_arena(struct xstream *xs);

#endif
