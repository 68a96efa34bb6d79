/* SPDX-License-Identifier: MIT */
/* The connecting end of XEP-0114, used by every Parley daemon to reach the
 * router: handshake, Parley binds, stanza I/O, and reconnection with
 * exponential backoff that re-binds every name when the router returns. */
#ifndef PL_COMP_CLIENT_H
#define PL_COMP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "xstream.h"

struct comp_client;
struct event_base;
struct xml_node;

struct comp_client_cfg {
    const char *address; /* numeric router address */
    int port;
    const char *name;   /* component name (stream 'to') */
    const char *secret; /* handshake secret */
    const char *const *binds;
    size_t nbinds;
    bool watch; /* ask for component up/down notices */
    struct xstream_limits limits;
    long backoff_min_ms; /* first retry delay; 0 = 100 */
    long backoff_max_ms; /* cap; 0 = 10000 */
};

struct comp_client_ops {
    /* Handshake done and every bind answered: stanzas may flow. */
    void (*on_up)(struct comp_client *cc, void *arg);
    /* The link is gone (a reconnect is scheduled). */
    void (*on_down)(struct comp_client *cc, void *arg);
    /* A stanza or a router notice (namespace PL_NS_ROUTER). The tree lives
     * until the callback returns. */
    void (*on_stanza)(struct comp_client *cc, struct xml_node *st, const char *raw, size_t len,
                      void *arg);
    /* The router refused a bind: cond names the error. May be NULL. */
    void (*on_bind_error)(struct comp_client *cc, const char *name, const char *cond, void *arg);
};

/* Copies cfg (strings included) and starts connecting at once. */
struct comp_client *comp_client_new(struct event_base *base, const struct comp_client_cfg *cfg,
                                    const struct comp_client_ops *ops, void *arg);
/* Closes the link (sending </stream:stream>) and frees; sets *cc to NULL. */
void comp_client_free(struct comp_client **cc);

bool comp_client_is_up(const struct comp_client *cc);
/* Queues raw stanza bytes for the router. Returns 0, or -1 when the link is
 * not up (nothing queued: the caller keeps or bounces the stanza). */
int comp_client_send(struct comp_client *cc, const char *data, size_t len) PL_WARN_UNUSED;
/* Bytes waiting to be written to the router, for back-pressure. */
size_t comp_client_pending(const struct comp_client *cc);
/* Binds one more name now (and after every reconnect). */
void comp_client_bind(struct comp_client *cc, const char *name);

#endif
