/* SPDX-License-Identifier: MIT */
/* parley-router: the context, the connection and route structs, and the
 * functions the router's files share. */
#ifndef PL_ROUTER_H
#define PL_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comp_handshake.h"
#include "common_cfg.h"
#include "conf.h"
#include "err.h"
#include "log.h"

struct bufferevent;
struct event;
struct event_base;
struct evconnlistener;
struct hmap;
struct xml_node;
struct xstream;

struct router_cfg {
    const char *listen; /* NULL: <router-link><address> */
    long port;          /* 0: <router-link><port> */
    size_t max_stanza;
    size_t output_limit;
    long handshake_timeout_ms;
};

extern const struct conf_table router_cfg_table;
int router_cfg_validate(const struct common_cfg *common, const void *cfg, struct err *err);

/* A name bound on the router and the connections serving it. */
struct route {
    char *name;
    struct peer **conns;
    size_t n, cap;
};

enum peer_state {
    PEER_OPENING,   /* waiting for the component's stream header */
    PEER_HANDSHAKE, /* header answered, waiting for <handshake/> */
    PEER_READY,     /* authenticated: stanzas flow */
    PEER_CLOSING,   /* stream error or close sent; freed once flushed */
};

struct peer {
    struct router *r;
    struct bufferevent *bev;
    struct xstream *xs;
    struct log_ctx lc;
    char peer[64];
    enum peer_state state;
    char stream_id[COMP_STREAM_ID_LEN + 1];
    char *name;   /* component name, after the header */
    char **binds; /* bound names, its own name among them once ready */
    size_t nbinds, bind_cap;
    bool header_sent;
    bool watching;   /* receives component notices */
    bool is_default; /* holds the default route "*" */
    bool paused;     /* reading stopped: a destination is backed up */
    bool free_scheduled;
    struct event *timer; /* handshake timeout, then the close deadline */
    struct peer *prev, *next;
    struct peer *paused_next;
};

struct router_stats {
    uint64_t routed;
    uint64_t bounced;
    uint64_t dropped;
    uint64_t pauses;
};

struct router {
    struct event_base *base;
    const struct common_cfg *common;
    const struct router_cfg *cfg;
    struct evconnlistener *listener;
    struct hmap *routes;  /* bound name -> struct route */
    struct hmap *by_name; /* component name -> its ready conn */
    struct peer *conns;
    struct peer *paused;
    struct router_stats stats;
};

/* conn.c */
int router_listen(struct router *r, struct err *err) PL_WARN_UNUSED;
void peer_write(struct peer *c, const char *data, size_t len);
/* Sends the stream error (after our header if it was not yet sent), logs
 * the cause, and closes. */
void peer_stream_error(struct peer *c, enum xmpp_cond cond, const char *fmt, ...) PL_PRINTF(3, 4);
/* Unregisters c at once and frees it once its output is flushed. */
void peer_close(struct peer *c);
void peer_close_all(struct router *r, enum xmpp_cond cond);
/* Stops reading from src until destinations drain. */
void peer_pause(struct peer *src);
void peer_send_header(struct peer *c, const char *from);
/* Frees every connection at once (after the loop ends). */
void peer_free_all(struct router *r);

/* handshake.c */
int handshake_on_open(struct peer *c, const struct xml_node *hdr);
void handshake_on_stanza(struct peer *c, const struct xml_node *st, const char *raw, size_t len);
void handshake_on_timeout(struct peer *c);

/* bind.c */
void bind_on_element(struct peer *c, const struct xml_node *st);
bool bind_add(struct peer *c, const char *name);
void bind_remove_all(struct peer *c);
bool bind_allowed(const struct router *r, const char *comp, const char *name);
void bind_recheck_acl(struct router *r);
void notice_component(struct router *r, struct peer *subject, bool up);
struct route *route_get(const struct router *r, const char *name, size_t len);

/* route.c */
void route_stanza(struct peer *c, struct xml_node *st, const char *raw, size_t len);
/* The bytes between the end of a raw element's start tag and the start of
 * its end tag; empty for <x/>. */
void raw_inner(const char *raw, size_t len, const char **inner_r, size_t *inner_len_r);

#endif
