/* SPDX-License-Identifier: MIT */
/* parleyctl: manage users and the database of a Parley deployment. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "arena.h"
#include "conf.h"
#include "ctl.h"
#include "err.h"
#include "log.h"
#include "store_cfg.h"

#define DEFAULT_CONFIG "/etc/parley/parley.xml"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: parleyctl [--config FILE] COMMAND ...\n"
            "  init DIR --domain D [...]   write a new deployment into DIR: parley.xml,\n"
            "                              certificate, database (init --help for options)\n"
            "  user add JID [PASSWORD]     create an account (password from stdin if not given)\n"
            "  user passwd JID [PASSWORD]  change its password\n"
            "  user del JID                delete the account and everything stored for it\n"
            "  user exists JID             exit 0 if the account exists, 1 if not\n"
            "  user check JID [PASSWORD]   exit 0 if the password is right, 1 if not\n"
            "  user list [DOMAIN]          list accounts\n"
            "  user info JID               first activation, last logout and its status\n"
            "  db init                     create the schema in an empty database\n"
            "  db migrate                  move an older schema to this version\n"
            "  db status                   show the database and its schema version\n"
            "options: --config FILE (default " DEFAULT_CONFIG "), --iterations N (SCRAM, "
            "default 4096)\n");
}

int ctl_store_open(struct ctl *ctl, bool create, bool migrate)
{
    struct store_cfg cfg;
    store_cfg_from_common(ctl->common, ctl->a, &cfg);
    struct err err = {0};
    ctl->st = store_open(ctl->base, &cfg, create, migrate, &err);
    if (ctl->st == NULL) {
        fprintf(stderr, "parleyctl: %s\n", err.text);
        return CTL_UNAVAILABLE;
    }
    return CTL_OK;
}

void ctl_wait(struct ctl *ctl, const bool *done)
{
    while (!*done)
        event_base_loop(ctl->base, EVLOOP_ONCE);
}

static int load_config(struct ctl *ctl, struct common_cfg *common)
{
    const struct conf_table *tables[] = {&common_cfg_table};
    void *const outs[] = {common};
    struct err err = {0};
    if (conf_load(ctl->config_path, tables, outs, 1, common_cfg_sections, ctl->a, &err) < 0 ||
        common_cfg_validate(common, &err) < 0) {
        fprintf(stderr, "parleyctl: %s\n", err.text);
        return CTL_CONFIG;
    }
    ctl->common = common;
    return CTL_OK;
}

/* A command that works on the configured store. */
static int run_command(struct ctl *ctl, int argc, char **argv)
{
    int rc;
    ctl->base = event_base_new();
    if (strcmp(argv[0], "user") == 0) {
        rc = ctl_user(ctl, argc - 1, argv + 1);
    } else if (strcmp(argv[0], "db") == 0) {
        rc = ctl_db(ctl, argc - 1, argv + 1);
    } else {
        usage(stderr);
        rc = CTL_USAGE;
    }
    store_close(&ctl->st);
    event_base_free(ctl->base);
    ctl->base = NULL;
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"iterations", required_argument, NULL, 'i'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct ctl ctl = {.config_path = DEFAULT_CONFIG, .iterations = 4096};
    int opt;
    while ((opt = getopt_long(argc, argv, "+c:i:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            ctl.config_path = optarg;
            break;
        case 'i':
            ctl.iterations = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return CTL_OK;
        default:
            usage(stderr);
            return CTL_USAGE;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 1) {
        usage(stderr);
        return CTL_USAGE;
    }
    /* Library messages (at most warnings) go to stderr. */
    if (log_open("parleyctl", LOG_SINK_STDERR, NULL, LOG_LEVEL_WARN) < 0)
        return CTL_FAIL;
    ctl.a = arena_new(0);
    int rc;
    if (strcmp(argv[0], "init") == 0) {
        /* init writes the configuration, so it runs without loading one. */
        rc = ctl_init(&ctl, argc, argv);
    } else {
        struct common_cfg common;
        rc = load_config(&ctl, &common);
        if (rc == CTL_OK)
            rc = run_command(&ctl, argc, argv);
    }
    arena_free(&ctl.a);
    log_close();
    return rc;
}
