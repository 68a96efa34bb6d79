/* SPDX-License-Identifier: MIT */
/* Limits over time: the idle timeout, whitespace keepalives, the byte rate
 * per connection ("karma": over budget, reading pauses until it refills),
 * and failed logins per IP address. Ordered lists make every event O(1);
 * a one-second tick walks only what has expired. */
#include "c2s.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "hmap.h"
#include "xstream.h"

#define TICK_MS           1000
#define FAST_TICK_MS      50
#define AUTHFAIL_WINDOW   60000 /* failures are counted per minute... */
#define AUTHFAIL_BLOCK_MS 60000 /* ...and a full count blocks for a minute */
#define RATE_MIN_BURST    4096

struct authfail {
    struct list link; /* c2s->auth.fail_list, by window start */
    int64_t window_start;
    int64_t blocked_until;
    long count;
    char ip[];
};

/* ---- per-IP failed logins ------------------------------------------------------ */

void authfail_record(struct c2s *c2s, const struct client *c)
{
    if (c2s->cfg->auth_fail_limit == 0)
        return;
    char ip[64];
    client_ip(c, ip, sizeof(ip));
    int64_t now = c2s_now_ms();
    struct authfail *f = hmap_get(c2s->auth.fails, ip);
    if (f == NULL) {
        f = xcalloc(1, sizeof(*f) + strlen(ip) + 1);
        memcpy(f->ip, ip, strlen(ip) + 1);
        list_init(&f->link);
        hmap_put(c2s->auth.fails, f->ip, f);
    }
    if (f->count == 0 || now - f->window_start >= AUTHFAIL_WINDOW) {
        f->window_start = now;
        f->count = 0;
        list_push_tail(&c2s->auth.fail_list, &f->link);
    }
    if (++f->count >= c2s->cfg->auth_fail_limit && f->blocked_until <= now) {
        f->blocked_until = now + AUTHFAIL_BLOCK_MS;
        log_notice(&c2s->lc,
                   "%ld failed logins from %s within a minute: refusing logins from it "
                   "for %d s",
                   f->count, ip, AUTHFAIL_BLOCK_MS / 1000);
    }
}

bool authfail_blocked(struct c2s *c2s, const struct client *c)
{
    if (c2s->cfg->auth_fail_limit == 0 || hmap_count(c2s->auth.fails) == 0)
        return false;
    char ip[64];
    client_ip(c, ip, sizeof(ip));
    const struct authfail *f = hmap_get(c2s->auth.fails, ip);
    return f != NULL && f->blocked_until > c2s_now_ms();
}

static void authfail_expire(struct c2s *c2s, int64_t now)
{
    struct list *l = c2s->auth.fail_list.next;
    while (l != &c2s->auth.fail_list) {
        struct authfail *f = LIST_ENTRY(l, struct authfail, link);
        l = l->next;
        if (now - f->window_start < AUTHFAIL_WINDOW)
            break;
        if (f->blocked_until > now)
            continue;
        list_remove(&f->link);
        hmap_del(c2s->auth.fails, f->ip);
        free(f);
    }
}

/* ---- rate ----------------------------------------------------------------------- */

static void arm_fast_tick(struct c2s *c2s)
{
    if (!evtimer_pending(c2s->clients.fast_tick, NULL)) {
        struct timeval tv = {0, FAST_TICK_MS * 1000};
        evtimer_add(c2s->clients.fast_tick, &tv);
    }
}

static void refill(struct client *c, int64_t now)
{
    int64_t rate = (int64_t)c->c2s->cfg->rate;
    int64_t burst = rate > RATE_MIN_BURST ? rate : RATE_MIN_BURST;
    c->budget += (now - c->budget_ms) * rate / 1000;
    if (c->budget > burst)
        c->budget = burst;
    c->budget_ms = now;
}

void limits_on_input(struct client *c, size_t n)
{
    struct c2s *c2s = c->c2s;
    int64_t now = c2s_now_ms();
    c->last_in_ms = now;
    list_push_tail(&c2s->clients.idle, &c->idle_link);
    if (c2s->cfg->rate == 0)
        return;
    refill(c, now);
    c->budget -= (int64_t)n;
    if (c->budget < 0 && !(c->pause & PAUSE_RATE)) {
        client_pause(c, PAUSE_RATE, true);
        list_push_tail(&c2s->clients.throttled, &c->throttle_link);
        arm_fast_tick(c2s);
    }
}

void limits_block_router(struct client *c)
{
    if (c->pause & PAUSE_ROUTER)
        return;
    client_pause(c, PAUSE_ROUTER, true);
    list_push_tail(&c->c2s->clients.blocked, &c->block_link);
    arm_fast_tick(c->c2s);
}

static void on_fast_tick(evutil_socket_t fd, short what, void *arg)
{
    struct c2s *c2s = arg;
    (void)fd;
    (void)what;
    int64_t now = c2s_now_ms();
    for (struct list *l = c2s->clients.throttled.next, *next; l != &c2s->clients.throttled;
         l = next) {
        next = l->next;
        struct client *c = LIST_ENTRY(l, struct client, throttle_link);
        refill(c, now);
        if (c->budget >= 0 || c2s->cfg->rate == 0) {
            list_remove(l);
            client_pause(c, PAUSE_RATE, false);
        }
    }
    while (!sm_link_congested(c2s) && !list_empty(&c2s->clients.blocked)) {
        struct list *l = list_first(&c2s->clients.blocked);
        list_remove(l);
        client_pause(LIST_ENTRY(l, struct client, block_link), PAUSE_ROUTER, false);
    }
    if (!list_empty(&c2s->clients.throttled) || !list_empty(&c2s->clients.blocked))
        arm_fast_tick(c2s);
}

/* ---- idle and keepalive ------------------------------------------------------------- */

void limits_on_output(struct client *c)
{
    c->last_out_ms = c2s_now_ms();
    list_push_tail(&c->c2s->clients.quiet, &c->out_link);
}

static void idle_expire(struct c2s *c2s, int64_t now)
{
    long ms = c2s->cfg->idle_timeout_ms;
    struct list *l;
    while (ms > 0 && (l = list_first(&c2s->clients.idle)) != NULL) {
        struct client *c = LIST_ENTRY(l, struct client, idle_link);
        if (now - c->last_in_ms < ms)
            break;
        list_remove(l);
        client_stream_error(c, XMPP_COND_STREAM_CONNECTION_TIMEOUT, "no input for %ld s",
                            ms / 1000);
    }
}

static void keepalive(struct c2s *c2s, int64_t now)
{
    long ms = c2s->cfg->keepalive_ms;
    struct list *l;
    for (size_t n = c2s->clients.count; ms > 0 && n > 0; n--) {
        if ((l = list_first(&c2s->clients.quiet)) == NULL)
            break;
        struct client *c = LIST_ENTRY(l, struct client, out_link);
        if (now - c->last_out_ms < ms)
            break;
        if (c->header_sent)
            client_write(c, " ", 1); /* moves it to the tail */
        else
            limits_on_output(c);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct c2s *c2s = arg;
    (void)fd;
    (void)what;
    int64_t now = c2s_now_ms();
    idle_expire(c2s, now);
    keepalive(c2s, now);
    authfail_expire(c2s, now);
    sessions_housekeeping(c2s, now);
    client_parsers_tick(c2s);
}

/* ---- clients ------------------------------------------------------------------------- */

void limits_client_new(struct client *c)
{
    list_init(&c->idle_link);
    list_init(&c->out_link);
    list_init(&c->throttle_link);
    list_init(&c->block_link);
    c->budget_ms = c2s_now_ms();
    c->budget = (int64_t)c->c2s->cfg->rate;
    limits_on_input(c, 0);
    limits_on_output(c);
}

void limits_client_gone(struct client *c)
{
    list_remove(&c->idle_link);
    list_remove(&c->out_link);
    list_remove(&c->throttle_link);
    list_remove(&c->block_link);
}

void limits_init(struct c2s *c2s)
{
    list_init(&c2s->clients.all);
    list_init(&c2s->clients.idle);
    list_init(&c2s->clients.quiet);
    list_init(&c2s->clients.throttled);
    list_init(&c2s->clients.blocked);
    list_init(&c2s->auth.fail_list);
    c2s->auth.fails = hmap_new();
    c2s->clients.parsers = xstream_pool_new();
    c2s->clients.tick = event_new(c2s->base, -1, EV_PERSIST, on_tick, c2s);
    struct timeval tv = {TICK_MS / 1000, 0};
    event_add(c2s->clients.tick, &tv);
    c2s->clients.fast_tick = evtimer_new(c2s->base, on_fast_tick, c2s);
}

void limits_fini(struct c2s *c2s)
{
    while (!list_empty(&c2s->auth.fail_list)) {
        struct authfail *f = LIST_ENTRY(list_first(&c2s->auth.fail_list), struct authfail, link);
        list_remove(&f->link);
        free(f);
    }
    hmap_free(&c2s->auth.fails);
    xstream_pool_free(&c2s->clients.parsers);
    if (c2s->clients.tick != NULL)
        event_free(c2s->clients.tick);
    if (c2s->clients.fast_tick != NULL)
        event_free(c2s->clients.fast_tick);
    c2s->clients.tick = c2s->clients.fast_tick = NULL;
}
