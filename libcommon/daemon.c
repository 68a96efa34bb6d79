/* SPDX-License-Identifier: MIT */
/* What is the same in every daemon's life: parse the command line, load and
 * check the configuration, open the log, run the event loop, reload on
 * SIGHUP, stop on SIGTERM. */
#include "daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "err.h"
#include "log.h"
#include "notify.h"

#define DEFAULT_CONFIG     "/etc/parley/parley.xml"
#define SHUTDOWN_GRACE_SEC 3

/* One loaded configuration; everything lives in its arena, so the pointers
 * handed to the daemon stay valid until the arena is freed. */
struct loaded {
    struct arena *arena;
    struct common_cfg *common;
    void *cfg;
};

struct daemon {
    const struct daemon_hooks *hooks;
    const char *config_path;
    const char *name;
    struct event_base *base;
    struct loaded cur;
    void *ctx;
    struct event *sig_term, *sig_int, *sig_hup;
    struct event *drain;
    time_t stop_deadline;
};

struct event_base *daemon_base(struct daemon *d)
{
    return d->base;
}

const char *daemon_name_override(struct daemon *d)
{
    return d->name;
}

static void loaded_free(struct loaded *l)
{
    arena_free(&l->arena);
    l->cfg = NULL;
}

/* Loads and validates; on failure err names file, line and key. */
static int load_config(struct daemon *d, struct loaded *out, struct err *err)
{
    const struct daemon_hooks *h = d->hooks;
    const char *ignore[16];
    size_t n = 0;
    for (size_t i = 0; common_cfg_sections[i] != NULL && n + 1 < PL_ARRAY_LEN(ignore); i++) {
        if (strcmp(common_cfg_sections[i], h->section) != 0)
            ignore[n++] = common_cfg_sections[i];
    }
    ignore[n] = NULL;

    out->arena = arena_new(0);
    out->common = arena_alloc(out->arena, sizeof(*out->common));
    out->cfg = arena_alloc(out->arena, h->table->size);
    const struct conf_table *tables[] = {&common_cfg_table, h->table};
    void *const outs[] = {out->common, out->cfg};
    if (conf_load(d->config_path, tables, outs, 2, ignore, out->arena, err) < 0)
        goto fail;
    if (common_cfg_validate(out->common, err) < 0)
        goto fail;
    if (h->validate != NULL && h->validate(out->common, out->cfg, err) < 0)
        goto fail;
    return 0;
fail:
    loaded_free(out);
    return -1;
}

static int open_log(const struct daemon *d, const struct common_cfg *c)
{
    return log_open(d->hooks->prog, (enum log_sink)c->log_sink, c->log_file,
                    (enum log_level)c->log_level);
}

static void on_signal_term(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    (void)what;
    log_notice(NULL, "signal %d: shutting down", (int)sig);
    event_del(d->sig_term);
    event_del(d->sig_int);
    event_del(d->sig_hup);
    d->hooks->stop(d->ctx);
    d->stop_deadline = time(NULL) + SHUTDOWN_GRACE_SEC;
    struct timeval tick = {0, 20000};
    event_add(d->drain, &tick);
}

/* While stopping: ends the loop as soon as the daemon has flushed and
 * closed everything, or when the grace period is over. */
static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    (void)fd;
    (void)what;
    bool busy = d->hooks->busy != NULL && d->hooks->busy(d->ctx);
    if (!busy || time(NULL) >= d->stop_deadline) {
        if (busy)
            log_warn(NULL, "stopping with connections still flushing");
        event_base_loopbreak(d->base);
        return;
    }
    struct timeval tick = {0, 20000};
    event_add(d->drain, &tick);
}

static void on_signal_hup(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    (void)sig;
    (void)what;
    struct loaded next = {0};
    struct err err = {0};
    if (log_reopen() < 0)
        log_error(NULL, "reload: cannot reopen the log file: %m");
    if (load_config(d, &next, &err) < 0) {
        log_error(NULL, "reload: %s; keeping the running configuration", err.text);
        return;
    }
    if (d->hooks->reload == NULL) {
        log_warn(NULL, "reload: this daemon applies configuration only at start");
        loaded_free(&next);
        return;
    }
    if (d->hooks->reload(d->ctx, next.common, next.cfg, &err) < 0) {
        log_error(NULL, "reload: %s; keeping the running configuration", err.text);
        loaded_free(&next);
        return;
    }
    log_set_level((enum log_level)next.common->log_level);
    loaded_free(&d->cur);
    d->cur = next;
    log_notice(NULL, "configuration reloaded from %s", d->config_path);
}

static void usage(const char *prog, FILE *out)
{
    fprintf(out,
            "usage: %s [-c FILE] [-n NAME] [-t] [-f]\n"
            "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
            "  -n NAME  component name, overriding the configuration\n"
            "  -t       check the configuration, print it, and exit\n"
            "  -f       run in the foreground\n",
            prog);
}

static void print_config(const struct daemon *d)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "<!-- effective configuration of %s from %s -->\n<parley>\n", d->hooks->prog,
               d->config_path);
    conf_dump(&b, &common_cfg_table, d->cur.common);
    conf_dump(&b, d->hooks->table, d->cur.cfg);
    buf_append_str(&b, "</parley>\n");
    fwrite(b.data, 1, b.len, stdout);
    buf_fini(&b);
}

static int run_loop(struct daemon *d)
{
    struct err err = {0};
    d->base = event_base_new();
    if (d->base == NULL)
        log_fatal(NULL, PL_EXIT_OSERR, "cannot create the event loop");
    d->ctx = d->hooks->init(d, d->cur.common, d->cur.cfg, &err);
    if (d->ctx == NULL) {
        log_error(NULL, "start: %s", err.text);
        event_base_free(d->base);
        return PL_EXIT_CONFIG;
    }
    d->sig_term = evsignal_new(d->base, SIGTERM, on_signal_term, d);
    d->sig_int = evsignal_new(d->base, SIGINT, on_signal_term, d);
    d->sig_hup = evsignal_new(d->base, SIGHUP, on_signal_hup, d);
    d->drain = evtimer_new(d->base, on_drain_tick, d);
    event_add(d->sig_term, NULL);
    event_add(d->sig_int, NULL);
    event_add(d->sig_hup, NULL);

    if (notify_send("READY=1") < 0)
        log_warn(NULL, "cannot notify readiness on $NOTIFY_SOCKET: %m");
    log_notice(NULL, "started");
    event_base_dispatch(d->base);
    notify_send("STOPPING=1");

    d->hooks->fini(d->ctx);
    event_free(d->sig_term);
    event_free(d->sig_int);
    event_free(d->sig_hup);
    event_free(d->drain);
    event_base_free(d->base);
    log_notice(NULL, "stopped");
    return PL_EXIT_OK;
}

int daemon_run(int argc, char **argv, const struct daemon_hooks *hooks)
{
    struct daemon d = {.hooks = hooks, .config_path = DEFAULT_CONFIG};
    bool check = false, foreground = false;
    int opt;
    while ((opt = getopt(argc, argv, "c:n:tfh")) != -1) {
        switch (opt) {
        case 'c':
            d.config_path = optarg;
            break;
        case 'n':
            d.name = optarg;
            break;
        case 't':
            check = true;
            break;
        case 'f':
            foreground = true;
            break;
        case 'h':
            usage(hooks->prog, stdout);
            return PL_EXIT_OK;
        default:
            usage(hooks->prog, stderr);
            return PL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        usage(hooks->prog, stderr);
        return PL_EXIT_USAGE;
    }
    if (log_open(hooks->prog, LOG_SINK_STDERR, NULL, LOG_LEVEL_INFO) < 0)
        return PL_EXIT_OSERR;

    struct err err = {0};
    if (load_config(&d, &d.cur, &err) < 0) {
        log_error(NULL, "%s", err.text);
        return PL_EXIT_CONFIG;
    }
    if (check) {
        print_config(&d);
        loaded_free(&d.cur);
        return PL_EXIT_OK;
    }
    if (open_log(&d, d.cur.common) < 0) {
        log_error(NULL, "cannot open log file %s: %m", d.cur.common->log_file);
        loaded_free(&d.cur);
        return PL_EXIT_CONFIG;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!foreground && daemon(0, 0) < 0) {
        log_error(NULL, "cannot detach: %m");
        loaded_free(&d.cur);
        return PL_EXIT_OSERR;
    }
    int rc = run_loop(&d);
    loaded_free(&d.cur);
    log_close();
    return rc;
}
