/* SPDX-License-Identifier: MIT */
/* Unit tests for the log API (libcommon/log.c): captured lines with their
 * context prefix, level filtering before argument evaluation, level names,
 * and the file sink with reopen after rotation. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>

#include <cmocka.h>

#include "attr.h"
#include "log.h"

enum { CAP_MAX = 8, CAP_LINE = 4096 };

struct capture {
    size_t n;
    enum log_level level[CAP_MAX];
    char line[CAP_MAX][CAP_LINE];
};

static void capture_fn(enum log_level level, const char *line, void *arg)
{
    struct capture *cap = arg;
    assert_true(cap->n < CAP_MAX);
    cap->level[cap->n] = level;
    snprintf(cap->line[cap->n], CAP_LINE, "%s", line);
    cap->n++;
}

/* A scratch directory per test for the file sink. */
struct fixture {
    char dir[64];
    char path[96];
    char rotated[96];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/pl-test-log.XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/parley.log", fx->dir);
    snprintf(fx->rotated, sizeof(fx->rotated), "%s/parley.log.1", fx->dir);
    log_close();
    log_set_capture(NULL, NULL);
    log_set_level(LOG_LEVEL_INFO);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    log_close();
    log_set_capture(NULL, NULL);
    log_set_level(LOG_LEVEL_INFO);
    unlink(fx->path);
    unlink(fx->rotated);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Reads a whole file into a NUL-terminated heap string. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *s = calloc(1, 65536);
    size_t n = fread(s, 1, 65535, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Splits s into lines in place; returns how many (at most max). */
static size_t split_lines(char *s, char **lines, size_t max)
{
    size_t n = 0;
    for (char *nl; n < max && (nl = strchr(s, '\n')) != NULL; s = nl + 1) {
        *nl = '\0';
        lines[n++] = s;
    }
    assert_string_equal(s, ""); /* every line was terminated */
    return n;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Asserts a file-sink line is "YYYY-MM-DDTHH:MM:SS.mmmZ ident[pid]: level: msg". */
static void check_file_line(const char *line, const char *level, const char *msg)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
    assert_true(strlen(line) > sizeof(shape) - 1);
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd')
            assert_true(is_digit(line[i]));
        else
            assert_int_equal(line[i], shape[i]);
    }
    char want[512];
    snprintf(want, sizeof(want), "test[%d]: %s: %s", (int)getpid(), level, msg);
    assert_string_equal(line + sizeof(shape) - 1, want);
}

/* Each macro reaches the capture with its level and the context prefix. */
static void test_capture_lines(void **state)
{
    (void)state;
    struct log_ctx conn, empty = {{0}};
    log_ctx_set(&conn, "c2s %s %s", "192.0.2.7:51234", "alice@ex.org/phone");
    log_ctx_set(NULL, "ignored %d", 1); /* a NULL context is accepted */

    struct capture cap = {0};
    log_set_capture(capture_fn, &cap);
    log_error(&conn, "stream error %s", "not-well-formed");
    log_warn(NULL, "queue %d%% full", 90);
    log_notice(&empty, "plain");
    log_info(&conn, "bound");
    log_debug(&conn, "read %zu bytes", (size_t)17);
    log_write(&conn, LOG_LEVEL_NOTICE, "direct %c", 'x');
    log_set_capture(NULL, NULL);

    static const struct {
        enum log_level level;
        const char *line;
    } want[] = {
        {LOG_LEVEL_ERROR, "c2s 192.0.2.7:51234 alice@ex.org/phone: stream error not-well-formed"},
        {LOG_LEVEL_WARN, "queue 90% full"},
        {LOG_LEVEL_NOTICE, "plain"},
        {LOG_LEVEL_INFO, "c2s 192.0.2.7:51234 alice@ex.org/phone: bound"},
        {LOG_LEVEL_DEBUG, "c2s 192.0.2.7:51234 alice@ex.org/phone: read 17 bytes"},
        {LOG_LEVEL_NOTICE, "c2s 192.0.2.7:51234 alice@ex.org/phone: direct x"},
    };
    assert_int_equal(cap.n, PL_ARRAY_LEN(want));
    for (size_t i = 0; i < PL_ARRAY_LEN(want); i++) {
        assert_int_equal(cap.level[i], want[i].level);
        assert_string_equal(cap.line[i], want[i].line);
    }
}

/* Prefixes and messages are cut to their buffers, never overflow them. */
static void test_truncation(void **state)
{
    (void)state;
    char longp[300];
    memset(longp, 'p', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    struct log_ctx lc;
    log_ctx_set(&lc, "%s", longp);
    assert_int_equal(strlen(lc.prefix), sizeof(lc.prefix) - 1);

    char longm[3000];
    memset(longm, 'm', sizeof(longm) - 1);
    longm[sizeof(longm) - 1] = '\0';
    struct capture cap = {0};
    log_set_capture(capture_fn, &cap);
    log_info(&lc, "%s", longm);
    log_set_capture(NULL, NULL);
    assert_int_equal(cap.n, 1);
    /* 127 prefix bytes, ": ", then the message up to a 2047-byte line. */
    assert_int_equal(strlen(cap.line[0]), 2047);
    assert_memory_equal(cap.line[0], longp, 127);
    assert_memory_equal(cap.line[0] + 127, ": mmm", 5);
}

static void test_enabled(void **state)
{
    (void)state;
    static const struct {
        enum log_level set;
        enum log_level ask;
        bool want;
    } rows[] = {
        {LOG_LEVEL_ERROR, LOG_LEVEL_ERROR, true},  {LOG_LEVEL_ERROR, LOG_LEVEL_WARN, false},
        {LOG_LEVEL_WARN, LOG_LEVEL_ERROR, true},   {LOG_LEVEL_WARN, LOG_LEVEL_WARN, true},
        {LOG_LEVEL_WARN, LOG_LEVEL_NOTICE, false}, {LOG_LEVEL_INFO, LOG_LEVEL_NOTICE, true},
        {LOG_LEVEL_INFO, LOG_LEVEL_INFO, true},    {LOG_LEVEL_INFO, LOG_LEVEL_DEBUG, false},
        {LOG_LEVEL_DEBUG, LOG_LEVEL_DEBUG, true},  {LOG_LEVEL_DEBUG, LOG_LEVEL_ERROR, true},
    };
    for (size_t r = 0; r < PL_ARRAY_LEN(rows); r++) {
        log_set_level(rows[r].set);
        assert_int_equal(log_enabled(rows[r].ask), rows[r].want);
    }
    /* A capture sees every line, so every level is enabled while it is installed. */
    struct capture cap = {0};
    log_set_level(LOG_LEVEL_ERROR);
    log_set_capture(capture_fn, &cap);
    assert_true(log_enabled(LOG_LEVEL_DEBUG));
    log_debug(NULL, "below the level");
    log_set_capture(NULL, NULL);
    assert_false(log_enabled(LOG_LEVEL_DEBUG));
    assert_int_equal(cap.n, 1);
    assert_int_equal(cap.level[0], LOG_LEVEL_DEBUG);
    assert_string_equal(cap.line[0], "below the level");
}

/* The arguments of a disabled level are not evaluated; those of an enabled
 * level are, exactly once, and only enabled lines reach the sink. */
static void test_disabled_args_not_evaluated(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(log_open("test", LOG_SINK_FILE, fx->path, LOG_LEVEL_WARN), 0);
    int count = 0;
    log_debug(NULL, "%d", count++);
    log_info(NULL, "%d", count++);
    log_notice(NULL, "%d", count++);
    assert_int_equal(count, 0);
    log_warn(NULL, "%d", count++);
    assert_int_equal(count, 1);
    log_error(NULL, "%d", count++);
    assert_int_equal(count, 2);
    log_close();

    char *text = slurp(fx->path);
    char *lines[4];
    assert_int_equal(split_lines(text, lines, 4), 2);
    check_file_line(lines[0], "warn", "0");
    check_file_line(lines[1], "error", "1");
    free(text);
}

static void test_level_names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int want;
    } rows[] = {
        {"error", LOG_LEVEL_ERROR},
        {"warn", LOG_LEVEL_WARN},
        {"notice", LOG_LEVEL_NOTICE},
        {"info", LOG_LEVEL_INFO},
        {"debug", LOG_LEVEL_DEBUG},
        {"", -1},
        {"warning", -1},
        {"WARN", -1},
        {"info ", -1},
        {"err", -1},
    };
    for (size_t r = 0; r < PL_ARRAY_LEN(rows); r++) {
        int got = log_level_from_name(rows[r].name);
        assert_int_equal(got, rows[r].want);
        if (got >= 0)
            assert_string_equal(log_level_name((enum log_level)got), rows[r].name);
    }
    assert_string_equal(log_level_name((enum log_level)99), "debug");
}

/* The file sink appends; after the file is renamed, lines follow the open
 * file until log_reopen starts a new file at the configured path. */
static void test_file_reopen_after_rotation(void **state)
{
    struct fixture *fx = *state;
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    fputs("existing line\n", f);
    fclose(f);

    struct log_ctx lc;
    log_ctx_set(&lc, "router");
    assert_int_equal(log_open("test", LOG_SINK_FILE, fx->path, LOG_LEVEL_INFO), 0);
    log_info(&lc, "before rotation");
    assert_int_equal(rename(fx->path, fx->rotated), 0);
    log_notice(NULL, "after rename");
    assert_int_equal(log_reopen(), 0);
    log_warn(&lc, "after reopen");
    log_debug(&lc, "filtered");
    log_close();

    char *lines[4];
    char *old = slurp(fx->rotated);
    assert_int_equal(split_lines(old, lines, 4), 3);
    assert_string_equal(lines[0], "existing line");
    check_file_line(lines[1], "info", "router: before rotation");
    check_file_line(lines[2], "notice", "after rename");
    free(old);

    char *cur = slurp(fx->path);
    assert_int_equal(split_lines(cur, lines, 4), 1);
    check_file_line(lines[0], "warn", "router: after reopen");
    free(cur);
}

/* A file that cannot be opened leaves the previous sink in place. */
static void test_open_failure_keeps_sink(void **state)
{
    struct fixture *fx = *state;
    char bad[128];
    snprintf(bad, sizeof(bad), "%s/missing-dir/x.log", fx->dir);
    assert_int_equal(log_open("test", LOG_SINK_FILE, fx->path, LOG_LEVEL_INFO), 0);
    assert_int_equal(log_open("other", LOG_SINK_FILE, bad, LOG_LEVEL_DEBUG), -1);
    log_info(NULL, "still here");
    log_debug(NULL, "level unchanged too");
    assert_int_equal(log_reopen(), 0);
    log_info(NULL, "after reopen");
    log_close();
    assert_int_equal(log_reopen(), 0); /* stderr needs no reopening */

    char *lines[4];
    char *text = slurp(fx->path);
    assert_int_equal(split_lines(text, lines, 4), 2);
    check_file_line(lines[0], "info", "still here");
    check_file_line(lines[1], "info", "after reopen");
    free(text);
}

/* The stderr sink writes "ident: level: message" without a timestamp. */
static void test_stderr_sink(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(log_open("test", LOG_SINK_STDERR, NULL, LOG_LEVEL_NOTICE), 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
    fclose(f);

    struct log_ctx lc;
    log_ctx_set(&lc, "sm");
    log_notice(&lc, "started with %d features", 3);
    log_info(&lc, "filtered");
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);

    char *text = slurp(fx->path);
    assert_string_equal(text, "test: notice: sm: started with 3 features\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_capture_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled_args_not_evaluated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_reopen_after_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failure_keeps_sink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stderr_sink, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
