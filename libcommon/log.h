/* SPDX-License-Identifier: MIT */
/* The one log API. The sink (stderr, syslog, a file, or a test's capture
 * function) is the only process-wide state in Parley. */
#ifndef PL_LOG_H
#define PL_LOG_H

#include <stdbool.h>
#include <stdarg.h>

#include "attr.h"

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_NOTICE,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

enum log_sink {
    LOG_SINK_STDERR = 0,
    LOG_SINK_SYSLOG,
    LOG_SINK_FILE,
};

/* A log context: a prefix naming the object a line is about, e.g. the
 * connection "router 127.0.0.1:40212 sm-1". Embedded in the object; a NULL
 * context means process scope. */
struct log_ctx {
    char prefix[128];
};

/* Called with each formatted line (no trailing newline) when a capture
 * function is installed; used by tests. */
typedef void log_capture_fn(enum log_level level, const char *line, void *arg);

/* Opens the process log: ident is the daemon name, path is used by
 * LOG_SINK_FILE. Returns 0, or -1 when the file cannot be opened (the
 * previous sink is kept). */
int log_open(const char *ident, enum log_sink sink, const char *path,
             enum log_level level) PL_WARN_UNUSED;
/* Reopens the log file (after rotation, on SIGHUP). Returns 0 or -1. */
int log_reopen(void) PL_WARN_UNUSED;
void log_close(void);
void log_set_level(enum log_level level);
/* Installs (or with NULL removes) a capture function that sees every line
 * instead of the sink. */
void log_set_capture(log_capture_fn *fn, void *arg);
bool log_enabled(enum log_level level);

/* Sets lc's prefix; a NULL lc is ignored. */
void log_ctx_set(struct log_ctx *lc, const char *fmt, ...) PL_PRINTF(2, 3);

void log_write(const struct log_ctx *lc, enum log_level level, const char *fmt, ...)
    PL_PRINTF(3, 4);
void log_vwrite(const struct log_ctx *lc, enum log_level level, const char *fmt, va_list ap)
    PL_PRINTF(3, 0);
/* Logs at error level and exits with code. */
PL_NORETURN void log_fatal(const struct log_ctx *lc, int code, const char *fmt, ...)
    PL_PRINTF(3, 4);

/* The level is checked before the arguments are evaluated. */
#define PL_LOG_AT(lvl, lc, ...)                                                                    \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write((lc), (lvl), __VA_ARGS__);                                                   \
    } while (0)
#define log_error(lc, ...)  PL_LOG_AT(LOG_LEVEL_ERROR, lc, __VA_ARGS__)
#define log_warn(lc, ...)   PL_LOG_AT(LOG_LEVEL_WARN, lc, __VA_ARGS__)
#define log_notice(lc, ...) PL_LOG_AT(LOG_LEVEL_NOTICE, lc, __VA_ARGS__)
#define log_info(lc, ...)   PL_LOG_AT(LOG_LEVEL_INFO, lc, __VA_ARGS__)
#define log_debug(lc, ...)  PL_LOG_AT(LOG_LEVEL_DEBUG, lc, __VA_ARGS__)

/* Parses "error", "warn", "notice", "info", "debug". Returns -1 if unknown. */
int log_level_from_name(const char *name);
const char *log_level_name(enum log_level level);

#endif
