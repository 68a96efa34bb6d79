/* SPDX-License-Identifier: MIT */
/* A Parley test component built on comp_client: stanzas to send arrive on
 * stdin, one per line; events go to stdout, one per line (UP, DOWN,
 * RECV <raw>, BINDERR <name> <cond>). The e2e tests drive it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "alloc.h"
#include "buf.h"
#include "comp_client.h"
#include "log.h"

struct testcomp {
    struct event_base *base;
    struct comp_client *cc;
    struct buf pending; /* stdin lines not yet sent (link down) */
    struct evbuffer *in;
    struct event *stdin_ev;
};

static void flush_pending(struct testcomp *t)
{
    if (t->pending.len == 0 || !comp_client_is_up(t->cc))
        return;
    if (comp_client_send(t->cc, t->pending.data, t->pending.len) == 0)
        buf_reset(&t->pending);
}

static void on_up(struct comp_client *cc, void *arg)
{
    (void)cc;
    printf("UP\n");
    fflush(stdout);
    flush_pending(arg);
}

static void on_down(struct comp_client *cc, void *arg)
{
    (void)cc;
    (void)arg;
    printf("DOWN\n");
    fflush(stdout);
}

static void on_stanza(struct comp_client *cc, struct xml_node *st, const char *raw, size_t len,
                      void *arg)
{
    (void)cc;
    (void)st;
    (void)arg;
    fputs("RECV ", stdout);
    for (size_t i = 0; i < len; i++)
        putchar(raw[i] == '\n' ? ' ' : raw[i]);
    putchar('\n');
    fflush(stdout);
}

static void on_bind_error(struct comp_client *cc, const char *name, const char *cond, void *arg)
{
    (void)cc;
    (void)arg;
    printf("BINDERR %s %s\n", name, cond);
    fflush(stdout);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
    struct testcomp *t = arg;
    (void)what;
    int n = evbuffer_read(t->in, fd, 65536);
    if (n <= 0) {
        event_del(t->stdin_ev);
        event_base_loopexit(t->base, NULL);
        return;
    }
    char *line;
    size_t len;
    while ((line = evbuffer_readln(t->in, &len, EVBUFFER_EOL_LF)) != NULL) {
        buf_append(&t->pending, line, len);
        free(line);
    }
    flush_pending(t);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"address", required_argument, NULL, 'a'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"secret", required_argument, NULL, 's'},
                                         {"bind", required_argument, NULL, 'b'},
                                         {"watch", no_argument, NULL, 'w'},
                                         {NULL, 0, NULL, 0}};
    struct comp_client_cfg cfg = {.address = "127.0.0.1", .backoff_max_ms = 500};
    const char *binds[16];
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'a':
            cfg.address = optarg;
            break;
        case 'p':
            cfg.port = atoi(optarg);
            break;
        case 'n':
            cfg.name = optarg;
            break;
        case 's':
            cfg.secret = optarg;
            break;
        case 'b':
            if (cfg.nbinds < 16)
                binds[cfg.nbinds++] = optarg;
            break;
        case 'w':
            cfg.watch = true;
            break;
        default:
            return 64;
        }
    }
    if (cfg.name == NULL || cfg.secret == NULL || cfg.port == 0) {
        fprintf(stderr,
                "usage: pl_testcomp --port N --name NAME --secret S [--bind X] [--watch]\n");
        return 64;
    }
    cfg.binds = binds;
    if (log_open("pl_testcomp", LOG_SINK_STDERR, NULL, LOG_LEVEL_INFO) < 0)
        return 71;
    struct testcomp t = {0};
    t.base = event_base_new();
    t.in = evbuffer_new();
    static const struct comp_client_ops ops = {on_up, on_down, on_stanza, on_bind_error};
    t.cc = comp_client_new(t.base, &cfg, &ops, &t);
    t.stdin_ev = event_new(t.base, STDIN_FILENO, EV_READ | EV_PERSIST, on_stdin, &t);
    event_add(t.stdin_ev, NULL);
    event_base_dispatch(t.base);
    comp_client_free(&t.cc);
    event_free(t.stdin_ev);
    evbuffer_free(t.in);
    buf_fini(&t.pending);
    event_base_free(t.base);
    return 0;
}
