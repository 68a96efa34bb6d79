/* SPDX-License-Identifier: MIT */
/* Log sinks. The only fprintf(stderr) in Parley lives here. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct log_state {
    char ident[64];
    enum log_sink sink;
    enum log_level level;
    char *path;
    FILE *file;
    log_capture_fn *capture;
    void *capture_arg;
};

static struct log_state st = {
    .ident = "parley",
    .sink = LOG_SINK_STDERR,
    .level = LOG_LEVEL_INFO,
};

static const char *const level_names[] = {"error", "warn", "notice", "info", "debug"};

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level >= PL_ARRAY_LEN(level_names))
        return "debug";
    return level_names[level];
}

int log_level_from_name(const char *name)
{
    for (size_t i = 0; i < PL_ARRAY_LEN(level_names); i++) {
        if (strcmp(level_names[i], name) == 0)
            return (int)i;
    }
    return -1;
}

static int syslog_priority(enum log_level level)
{
    switch (level) {
    case LOG_LEVEL_ERROR:
        return LOG_ERR;
    case LOG_LEVEL_WARN:
        return LOG_WARNING;
    case LOG_LEVEL_NOTICE:
        return LOG_NOTICE;
    case LOG_LEVEL_INFO:
        return LOG_INFO;
    case LOG_LEVEL_DEBUG:
        break;
    }
    return LOG_DEBUG;
}

int log_open(const char *ident, enum log_sink sink, const char *path, enum log_level level)
{
    FILE *f = NULL;
    if (sink == LOG_SINK_FILE) {
        f = fopen(path, "a");
        if (f == NULL)
            return -1;
        setvbuf(f, NULL, _IOLBF, 0);
    }
    log_close();
    snprintf(st.ident, sizeof(st.ident), "%s", ident);
    st.sink = sink;
    st.level = level;
    st.file = f;
    if (sink == LOG_SINK_FILE)
        st.path = strdup(path);
    if (sink == LOG_SINK_SYSLOG)
        openlog(st.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    return 0;
}

int log_reopen(void)
{
    if (st.sink != LOG_SINK_FILE)
        return 0;
    FILE *f = fopen(st.path, "a");
    if (f == NULL)
        return -1;
    setvbuf(f, NULL, _IOLBF, 0);
    fclose(st.file);
    st.file = f;
    return 0;
}

void log_close(void)
{
    if (st.file != NULL)
        fclose(st.file);
    if (st.sink == LOG_SINK_SYSLOG)
        closelog();
    free(st.path);
    st.file = NULL;
    st.path = NULL;
    st.sink = LOG_SINK_STDERR;
}

void log_set_level(enum log_level level)
{
    st.level = level;
}

void log_set_capture(log_capture_fn *fn, void *arg)
{
    st.capture = fn;
    st.capture_arg = arg;
}

bool log_enabled(enum log_level level)
{
    return level <= st.level || st.capture != NULL;
}

void log_ctx_set(struct log_ctx *lc, const char *fmt, ...)
{
    if (lc == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lc->prefix, sizeof(lc->prefix), fmt, ap);
    va_end(ap);
}

void log_vwrite(const struct log_ctx *lc, enum log_level level, const char *fmt, va_list ap)
{
    char msg[2048];
    int off = 0;
    if (lc != NULL && lc->prefix[0] != '\0')
        off = snprintf(msg, sizeof(msg), "%s: ", lc->prefix);
    if (off < 0 || (size_t)off >= sizeof(msg))
        off = 0;
    vsnprintf(msg + off, sizeof(msg) - (size_t)off, fmt, ap);

    if (st.capture != NULL) {
        st.capture(level, msg, st.capture_arg);
        return;
    }
    if (level > st.level)
        return;
    if (st.sink == LOG_SINK_SYSLOG) {
        syslog(syslog_priority(level), "%s", msg);
        return;
    }
    FILE *out = st.sink == LOG_SINK_FILE && st.file ? st.file : stderr;
    if (st.sink == LOG_SINK_FILE) {
        struct timeval tv;
        struct tm tm;
        char ts[32];
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(out, "%s.%03ldZ %s[%d]: %s: %s\n", ts, (long)tv.tv_usec / 1000, st.ident,
                (int)getpid(), log_level_name(level), msg);
    } else {
        /* stderr goes to a terminal or journald, which stamp time themselves. */
        fprintf(out, "%s: %s: %s\n", st.ident, log_level_name(level), msg);
    }
}

void log_write(const struct log_ctx *lc, enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(lc, level, fmt, ap);
    va_end(ap);
}

void log_fatal(const struct log_ctx *lc, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(lc, LOG_LEVEL_ERROR, fmt, ap);
    va_end(ap);
    exit(code);
}

void pl_panic(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_write(NULL, LOG_LEVEL_ERROR, "panic: %s:%d: %s", file, line, msg);
    abort();
}
