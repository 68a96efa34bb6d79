/* SPDX-License-Identifier: MIT */
/* Compiler attributes and the assertion macro used across Parley. */
#ifndef PL_ATTR_H
#define PL_ATTR_H

#define PL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define PL_WARN_UNUSED       __attribute__((warn_unused_result))
#define PL_NORETURN          __attribute__((noreturn))
#define PL_UNUSED            __attribute__((unused))

#define PL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Aborts with file:line when a condition the code relies on is false: a bug,
 * never bad input. */
#define PL_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            pl_panic(__FILE__, __LINE__, "assertion failed: %s", #cond);                           \
    } while (0)

/* Logs "panic: file:line: message" and aborts. Defined in log.c. */
PL_NORETURN void pl_panic(const char *file, int line, const char *fmt, ...) PL_PRINTF(3, 4);

/* Exit codes, documented in docs/configuration.md. */
enum pl_exit {
    PL_EXIT_OK = 0,
    PL_EXIT_USAGE = 64,  /* bad command line */
    PL_EXIT_NOMEM = 71,  /* allocation failed */
    PL_EXIT_OSERR = 71,  /* a system call the daemon cannot run without failed */
    PL_EXIT_CONFIG = 78, /* configuration file is invalid */
};

#endif
