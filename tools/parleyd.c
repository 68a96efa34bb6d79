/* SPDX-License-Identifier: MIT */
/* parleyd: runs a whole deployment from one parley.xml. It starts
 * parley-router and, once it is ready, the daemons whose sections the file
 * has, one after the other; restarts any that dies, with backoff; forwards
 * SIGHUP; and on SIGTERM stops them in reverse order. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <expat.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "common_cfg.h"
#include "conf.h"
#include "err.h"
#include "log.h"
#include "notify.h"

#define DEFAULT_CONFIG   "/etc/parley/parley.xml"
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   10000
#define STABLE_MS        30000 /* uptime after which the backoff starts again */
#define READY_TIMEOUT_S  30    /* for each daemon at startup */
#define STOP_TIMEOUT_S   10    /* SIGTERM to SIGKILL */

extern char **environ;

/* The daemons parleyd knows, in start order (stopped in reverse): c2s last,
 * so that clients are let in once everything behind it is ready. */
struct daemon_def {
    const char *section; /* its element in parley.xml; also its build-tree folder */
    const char *prog;
    bool optional; /* not built yet: skipped (with a warning) when its binary is missing */
};

static const struct daemon_def daemon_defs[] = {
    {"router", "parley-router", false},
    {"sm", "parley-sm", false},
    {"resolver", "parley-resolver", false},
    {"s2s", "parley-s2s", true},
    {"muc", "parley-muc", true},
    {"c2s", "parley-c2s", false},
};
#define NDAEMONS PL_ARRAY_LEN(daemon_defs)

enum phase {
    PHASE_STARTING, /* starting children one by one, each after the previous is ready */
    PHASE_RUNNING,
    PHASE_STOPPING, /* stopping children one by one, in reverse order */
};

struct child {
    struct parleyd *pd;
    const char *prog;
    char *path; /* the executable */
    pid_t pid;  /* 0 while not running */
    bool ready;
    struct timespec started; /* CLOCK_MONOTONIC */
    long backoff_ms;
    struct event *restart;
};

struct parleyd {
    struct event_base *base;
    const char *config; /* absolute */
    struct child children[NDAEMONS];
    size_t nchildren;
    size_t starting, stopping; /* index of the child being started, or stopped */
    enum phase phase;
    int exit_code;
    char **env; /* our environment, with NOTIFY_SOCKET pointing at notify_fd */
    int notify_fd;
    struct event *notify_ev, *sig_term, *sig_int, *sig_hup, *sig_chld;
    struct event *ready_timer, *stop_timer;
};

/* ---- configuration and binaries ----------------------------------------- */

struct scan {
    int depth;
    bool found[NDAEMONS];
};

static void XMLCALL on_scan_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
    struct scan *s = arg;
    (void)attrs;
    if (s->depth++ != 1)
        return;
    for (size_t i = 0; i < NDAEMONS; i++)
        s->found[i] = s->found[i] || strcmp(name, daemon_defs[i].section) == 0;
}

static void XMLCALL on_scan_end(void *arg, const XML_Char *name)
{
    struct scan *s = arg;
    (void)name;
    s->depth--;
}

/* Which daemon sections the file has (router always counts). The file has
 * been loaded by conf_load already, so it is well-formed. */
static int scan_sections(const char *path, bool found_r[NDAEMONS], struct err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return err_set(err, XMPP_COND_UNDEFINED_CONDITION, "%s: %s", path, strerror(errno));
    struct scan s = {0};
    XML_Parser p = XML_ParserCreate(NULL);
    XML_SetUserData(p, &s);
    XML_SetElementHandler(p, on_scan_start, on_scan_end);
    char chunk[8192];
    size_t n;
    int rc = 0;
    do {
        n = fread(chunk, 1, sizeof(chunk), f);
        if (XML_Parse(p, chunk, (int)n, n == 0) == XML_STATUS_ERROR) {
            rc = err_set(err, XMPP_COND_UNDEFINED_CONDITION, "%s:%lu: %s", path,
                         (unsigned long)XML_GetCurrentLineNumber(p),
                         XML_ErrorString(XML_GetErrorCode(p)));
            break;
        }
    } while (n > 0);
    XML_ParserFree(p);
    fclose(f);
    memcpy(found_r, s.found, sizeof(s.found));
    found_r[0] = true;
    return rc;
}

/* Loads the common part: parleyd needs its log settings, and a broken file
 * is reported once here rather than by every daemon. */
static int load_common(const char *path, struct arena *a, struct common_cfg *c, struct err *err)
{
    const struct conf_table *tables[] = {&common_cfg_table};
    void *const outs[] = {c};
    if (conf_load(path, tables, outs, 1, common_cfg_sections, a, err) < 0)
        return -1;
    return common_cfg_validate(c, err);
}

static char *executable_in(const char *dir, const char *sub, const char *prog)
{
    char path[PATH_MAX];
    int n = sub ? snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, prog)
                : snprintf(path, sizeof(path), "%s/%s", dir, prog);
    struct stat st;
    if (n < 0 || (size_t)n >= sizeof(path) || stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
        access(path, X_OK) < 0)
        return NULL;
    char real[PATH_MAX];
    return xstrdup(realpath(path, real) ? real : path);
}

/* The daemon's executable: next to parleyd, then in the build tree
 * (../router/parley-router from tools/), then on PATH. NULL if none. */
static char *find_binary(const struct daemon_def *def)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *found = NULL;
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL)
            *slash = '\0';
        found = executable_in(self, NULL, def->prog);
        if (found == NULL) {
            char sub[64];
            snprintf(sub, sizeof(sub), "../%s", def->section);
            found = executable_in(self, sub, def->prog);
        }
    }
    const char *env = getenv("PATH");
    char *list = xstrdup(env ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin");
    char *save = NULL;
    for (char *d = strtok_r(list, ":", &save); found == NULL && d != NULL;
         d = strtok_r(NULL, ":", &save))
        found = executable_in(d[0] ? d : ".", NULL, def->prog);
    free(list);
    return found;
}

/* Fills pd->children with the daemons to run. Returns 0, or -1 when one
 * the file needs is not installed (logged). */
static int plan_children(struct parleyd *pd, const bool found[NDAEMONS])
{
    int rc = 0;
    for (size_t i = 0; i < NDAEMONS; i++) {
        const struct daemon_def *def = &daemon_defs[i];
        if (!found[i])
            continue;
        char *path = find_binary(def);
        if (path == NULL && def->optional) {
            log_warn(NULL, "<%s> is configured but %s is not installed: not started", def->section,
                     def->prog);
            continue;
        }
        if (path == NULL) {
            log_error(NULL,
                      "<%s> is configured but %s is not installed (looked next to parleyd, "
                      "in the build tree and on PATH)",
                      def->section, def->prog);
            rc = -1;
            continue;
        }
        struct child *c = &pd->children[pd->nchildren++];
        *c = (struct child){.pd = pd, .prog = def->prog, .path = path};
        c->backoff_ms = BACKOFF_FIRST_MS;
    }
    return rc;
}

/* ---- processes ----------------------------------------------------------- */

/* Runs path with -f (run) or -t (check, stdout discarded), -c config. The
 * child gets its own process group, so a terminal's ^C reaches parleyd only
 * and the daemons stop in order, and SIGTERM if parleyd dies. */
static pid_t spawn(const struct parleyd *pd, const char *path, bool check)
{
    char *argv[] = {(char *)path, check ? "-t" : "-f", "-c", (char *)pd->config, NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* The child: async-signal-safe calls only. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1);
    setpgid(0, 0);
    if (check) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDOUT_FILENO);
    }
    execve(path, argv, pd->env);
    _exit(127);
}

static void describe_status(int status, char *out, size_t n)
{
    if (WIFEXITED(status)) {
        snprintf(out, n, "exited with status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        const char *abbrev = sigabbrev_np(WTERMSIG(status));
        snprintf(out, n, "was killed by signal %d (SIG%s)%s", WTERMSIG(status),
                 abbrev ? abbrev : "?", WCOREDUMP(status) ? ", core dumped" : "");
    } else {
        snprintf(out, n, "changed state 0x%x", (unsigned)status);
    }
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

static int start_child(struct child *c, const char *verb)
{
    pid_t pid = spawn(c->pd, c->path, false);
    if (pid < 0) {
        log_error(NULL, "cannot start %s: fork: %m", c->prog);
        return -1;
    }
    c->pid = pid;
    c->ready = false;
    clock_gettime(CLOCK_MONOTONIC, &c->started);
    log_info(NULL, "%s %s (pid %d)", verb, c->prog, (int)pid);
    return 0;
}

/* --check: each daemon loads the file with -t. Returns the exit code. */
static int check_all(struct parleyd *pd)
{
    int rc = PL_EXIT_OK;
    for (size_t i = 0; i < pd->nchildren; i++) {
        struct child *c = &pd->children[i];
        pid_t pid = spawn(pd, c->path, true);
        int status = 0;
        while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            log_notice(NULL, "%s: configuration ok", c->prog);
            continue;
        }
        char how[96] = "cannot be run";
        if (pid > 0)
            describe_status(status, how, sizeof(how));
        log_error(NULL, "%s: configuration check failed: %s", c->prog, how);
        rc = PL_EXIT_CONFIG;
    }
    return rc;
}

/* ---- supervision --------------------------------------------------------- */

static void stop_next(struct parleyd *pd);

static void begin_stop(struct parleyd *pd)
{
    pd->phase = PHASE_STOPPING;
    evtimer_del(pd->ready_timer);
    for (size_t i = 0; i < pd->nchildren; i++)
        evtimer_del(pd->children[i].restart);
    pd->stopping = pd->nchildren;
    stop_next(pd);
}

/* SIGTERM to the next running child from the end; ends the loop when none
 * is left. */
static void stop_next(struct parleyd *pd)
{
    while (pd->stopping > 0) {
        struct child *c = &pd->children[--pd->stopping];
        if (c->pid <= 0)
            continue;
        log_info(NULL, "stopping %s (pid %d)", c->prog, (int)c->pid);
        kill(c->pid, SIGTERM);
        struct timeval tv = {STOP_TIMEOUT_S, 0};
        evtimer_add(pd->stop_timer, &tv);
        return;
    }
    event_base_loopbreak(pd->base);
}

static void on_stop_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct parleyd *pd = arg;
    struct child *c = &pd->children[pd->stopping];
    (void)fd;
    (void)what;
    if (c->pid > 0) {
        log_warn(NULL, "%s (pid %d) did not stop in %ds: killing it", c->prog, (int)c->pid,
                 STOP_TIMEOUT_S);
        kill(c->pid, SIGKILL);
    }
}

/* Starts the next daemon in order, or declares the deployment ready. */
static void start_next(struct parleyd *pd)
{
    if (++pd->starting >= pd->nchildren) {
        evtimer_del(pd->ready_timer);
        pd->phase = PHASE_RUNNING;
        log_notice(NULL, "ready: %zu daemon%s running", pd->nchildren,
                   pd->nchildren == 1 ? "" : "s");
        if (notify_send("READY=1") < 0)
            log_warn(NULL, "cannot notify readiness on $NOTIFY_SOCKET: %m");
        return;
    }
    struct timeval tv = {READY_TIMEOUT_S, 0};
    evtimer_add(pd->ready_timer, &tv);
    if (start_child(&pd->children[pd->starting], "started") < 0) {
        pd->exit_code = PL_EXIT_OSERR;
        begin_stop(pd);
    }
}

static void on_ready_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct parleyd *pd = arg;
    (void)fd;
    (void)what;
    log_error(NULL, "%s is not ready after %ds: stopping", pd->children[pd->starting].prog,
              READY_TIMEOUT_S);
    pd->exit_code = 1;
    begin_stop(pd);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
    struct child *c = arg;
    (void)fd;
    (void)what;
    if (c->pd->phase == PHASE_STOPPING)
        return;
    if (start_child(c, "restarted") == 0)
        return;
    long delay = c->backoff_ms;
    c->backoff_ms = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(c->restart, &tv);
}

/* A child died while it should be running: restart it after the backoff,
 * which doubles with each quick death and starts again after a stable run. */
static void schedule_restart(struct child *c, long uptime_ms)
{
    if (uptime_ms >= STABLE_MS)
        c->backoff_ms = BACKOFF_FIRST_MS;
    long delay = c->backoff_ms;
    c->backoff_ms = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    log_notice(NULL, "restarting %s in %ld ms", c->prog, delay);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(c->restart, &tv);
}

static void child_exited(struct parleyd *pd, struct child *c, int status)
{
    char how[96];
    describe_status(status, how, sizeof(how));
    bool was_ready = c->ready;
    long uptime = elapsed_ms(&c->started);
    pid_t pid = c->pid;
    c->pid = 0;
    c->ready = false;
    if (pd->phase == PHASE_STOPPING) {
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (clean)
            log_info(NULL, "%s (pid %d) stopped", c->prog, (int)pid);
        else
            log_warn(NULL, "%s (pid %d) %s while stopping", c->prog, (int)pid, how);
        if (c == &pd->children[pd->stopping]) {
            evtimer_del(pd->stop_timer);
            stop_next(pd);
        }
        return;
    }
    if (!was_ready && pd->phase == PHASE_STARTING && c == &pd->children[pd->starting]) {
        log_error(NULL, "%s (pid %d) %s before it was ready: stopping", c->prog, (int)pid, how);
        /* Pass a daemon's own code on (78: its configuration is invalid). */
        pd->exit_code = WIFEXITED(status) && WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1;
        begin_stop(pd);
        return;
    }
    log_warn(NULL, "%s (pid %d) %s after %ld.%lds", c->prog, (int)pid, how, uptime / 1000,
             uptime % 1000 / 100);
    schedule_restart(c, uptime);
}

static struct child *child_by_pid(struct parleyd *pd, pid_t pid)
{
    for (size_t i = 0; i < pd->nchildren; i++) {
        if (pd->children[i].pid == pid)
            return &pd->children[i];
    }
    return NULL;
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    struct parleyd *pd = arg;
    (void)sig;
    (void)what;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = child_by_pid(pd, pid);
        if (c != NULL)
            child_exited(pd, c, status);
    }
}

static void child_ready(struct parleyd *pd, struct child *c)
{
    if (c->ready)
        return;
    c->ready = true;
    log_info(NULL, "%s (pid %d) is ready", c->prog, (int)c->pid);
    if (pd->phase == PHASE_STARTING && c == &pd->children[pd->starting])
        start_next(pd);
}

/* A datagram on our notify socket; the kernel tells who sent it. */
static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct parleyd *pd = arg;
    (void)what;
    char data[512];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = {data, sizeof(data) - 1};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
    ssize_t n;
    while ((n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) >= 0) {
        data[n] = '\0';
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        struct child *c = NULL;
        if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(cm), sizeof(cred));
            c = child_by_pid(pd, cred.pid);
        }
        bool ready = strncmp(data, "READY=1", 7) == 0 || strstr(data, "\nREADY=1") != NULL;
        if (c != NULL && ready)
            child_ready(pd, c);
        msg.msg_controllen = sizeof(ctl);
    }
}

static void on_signal_term(evutil_socket_t sig, short what, void *arg)
{
    struct parleyd *pd = arg;
    (void)what;
    if (pd->phase == PHASE_STOPPING) {
        log_notice(NULL, "signal %d: already stopping", (int)sig);
        return;
    }
    log_notice(NULL, "signal %d: stopping the daemons", (int)sig);
    begin_stop(pd);
}

static void on_signal_hup(evutil_socket_t sig, short what, void *arg)
{
    struct parleyd *pd = arg;
    (void)sig;
    (void)what;
    if (log_reopen() < 0)
        log_error(NULL, "cannot reopen the log file: %m");
    /* A daemon that is not ready yet may not handle SIGHUP; it reads the
     * file as it starts anyway. */
    for (size_t i = 0; i < pd->nchildren; i++) {
        struct child *c = &pd->children[i];
        if (c->pid > 0 && c->ready) {
            log_info(NULL, "SIGHUP to %s (pid %d)", c->prog, (int)c->pid);
            kill(c->pid, SIGHUP);
        }
    }
}

/* ---- setup --------------------------------------------------------------- */

/* Our environment for the children, with NOTIFY_SOCKET set to addr, or
 * without it when addr is NULL. */
static char **child_env(const char *addr)
{
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = xcalloc(n + 2, sizeof(*env));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0)
            env[k++] = xstrdup(environ[i]);
    }
    if (addr != NULL) {
        struct buf b = BUF_INIT;
        buf_printf(&b, "NOTIFY_SOCKET=%s", addr);
        env[k] = buf_detach(&b, NULL);
    }
    return env;
}

/* An abstract AF_UNIX datagram socket that reports the sender's pid. */
static int notify_open(struct parleyd *pd)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int len = snprintf(sa.sun_path, sizeof(sa.sun_path), "@parleyd/%d/%lx", (int)getpid(),
                       (unsigned long)ts.tv_nsec);
    pd->env = child_env(sa.sun_path);
    sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)len);
    if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, salen) < 0) {
        close(fd);
        return -1;
    }
    pd->notify_fd = fd;
    return 0;
}

static int supervisor_init(struct parleyd *pd)
{
    pd->base = event_base_new();
    if (pd->base == NULL || notify_open(pd) < 0)
        return -1;
    pd->notify_ev = event_new(pd->base, pd->notify_fd, EV_READ | EV_PERSIST, on_notify, pd);
    pd->sig_term = evsignal_new(pd->base, SIGTERM, on_signal_term, pd);
    pd->sig_int = evsignal_new(pd->base, SIGINT, on_signal_term, pd);
    pd->sig_hup = evsignal_new(pd->base, SIGHUP, on_signal_hup, pd);
    pd->sig_chld = evsignal_new(pd->base, SIGCHLD, on_sigchld, pd);
    pd->ready_timer = evtimer_new(pd->base, on_ready_timeout, pd);
    pd->stop_timer = evtimer_new(pd->base, on_stop_timeout, pd);
    for (size_t i = 0; i < pd->nchildren; i++)
        pd->children[i].restart = evtimer_new(pd->base, on_restart, &pd->children[i]);
    event_add(pd->notify_ev, NULL);
    event_add(pd->sig_term, NULL);
    event_add(pd->sig_int, NULL);
    event_add(pd->sig_hup, NULL);
    event_add(pd->sig_chld, NULL);
    return 0;
}

static void supervisor_fini(struct parleyd *pd)
{
    struct event *evs[] = {pd->notify_ev, pd->sig_term,    pd->sig_int,   pd->sig_hup,
                           pd->sig_chld,  pd->ready_timer, pd->stop_timer};
    for (size_t i = 0; i < PL_ARRAY_LEN(evs); i++) {
        if (evs[i] != NULL)
            event_free(evs[i]);
    }
    for (size_t i = 0; i < pd->nchildren; i++) {
        if (pd->children[i].restart != NULL)
            event_free(pd->children[i].restart);
    }
    if (pd->notify_fd >= 0)
        close(pd->notify_fd);
    if (pd->base != NULL)
        event_base_free(pd->base);
}

static int supervise(struct parleyd *pd)
{
    signal(SIGPIPE, SIG_IGN);
    if (supervisor_init(pd) < 0) {
        log_error(NULL, "cannot set up the event loop and notify socket: %m");
        supervisor_fini(pd);
        return PL_EXIT_OSERR;
    }
    log_notice(NULL, "starting %zu daemon%s from %s", pd->nchildren, pd->nchildren == 1 ? "" : "s",
               pd->config);
    pd->phase = PHASE_STARTING;
    pd->starting = 0;
    struct timeval tv = {READY_TIMEOUT_S, 0};
    evtimer_add(pd->ready_timer, &tv);
    if (start_child(&pd->children[0], "started") < 0)
        pd->exit_code = PL_EXIT_OSERR;
    else
        event_base_dispatch(pd->base);
    notify_send("STOPPING=1");
    supervisor_fini(pd);
    log_notice(NULL, "stopped");
    return pd->exit_code;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out, "usage: parleyd [--config FILE] [--check] [--foreground]\n"
                 "  starts parley-router, then every daemon whose section FILE has; restarts\n"
                 "  those that die, forwards SIGHUP, stops them all on SIGTERM\n"
                 "  -c, --config FILE  configuration (default " DEFAULT_CONFIG ")\n"
                 "  -t, --check        check the configuration with each daemon, and exit\n"
                 "  -f, --foreground   stay in the foreground (use this under systemd)\n");
}

static int parse_args(int argc, char **argv, const char **config_r, bool *check_r, bool *fg_r)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 't'},
                                         {"foreground", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:tfh", opts, NULL)) != -1) {
        if (opt == 'c') {
            *config_r = optarg;
        } else if (opt == 't') {
            *check_r = true;
        } else if (opt == 'f') {
            *fg_r = true;
        } else if (opt == 'h') {
            usage(stdout);
            return -1;
        } else {
            usage(stderr);
            return PL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return PL_EXIT_USAGE;
    }
    return 0;
}

/* Loads the file, finds the daemons and their executables. */
static int prepare(struct parleyd *pd, const char *config, struct arena *a,
                   struct common_cfg *common)
{
    char real[PATH_MAX];
    struct err err = {0};
    bool found[NDAEMONS];
    if (realpath(config, real) == NULL) {
        log_error(NULL, "%s: %m", config);
        return PL_EXIT_CONFIG;
    }
    pd->config = arena_strdup(a, real);
    if (load_common(pd->config, a, common, &err) < 0 ||
        scan_sections(pd->config, found, &err) < 0) {
        log_error(NULL, "%s", err.text);
        return PL_EXIT_CONFIG;
    }
    return plan_children(pd, found) < 0 ? PL_EXIT_CONFIG : PL_EXIT_OK;
}

static int run(struct parleyd *pd, const struct common_cfg *common, bool foreground)
{
    if (log_open("parleyd", (enum log_sink)common->log_sink, common->log_file,
                 (enum log_level)common->log_level) < 0) {
        log_error(NULL, "cannot open log file %s: %m", common->log_file);
        return PL_EXIT_CONFIG;
    }
    if (!foreground && daemon(0, 0) < 0) {
        log_error(NULL, "cannot detach: %m");
        return PL_EXIT_OSERR;
    }
    return supervise(pd);
}

int main(int argc, char **argv)
{
    const char *config = DEFAULT_CONFIG;
    bool check = false, foreground = false;
    int rc = parse_args(argc, argv, &config, &check, &foreground);
    if (rc != 0)
        return rc < 0 ? PL_EXIT_OK : rc;
    if (log_open("parleyd", LOG_SINK_STDERR, NULL, LOG_LEVEL_INFO) < 0)
        return PL_EXIT_OSERR;
    struct parleyd pd = {.notify_fd = -1};
    struct arena *a = arena_new(0);
    struct common_cfg common;
    rc = prepare(&pd, config, a, &common);
    if (check) {
        /* Check what can be checked even when a daemon is missing. */
        pd.env = child_env(NULL);
        int crc = check_all(&pd);
        rc = rc != PL_EXIT_OK ? rc : crc;
        if (rc == PL_EXIT_OK)
            log_notice(NULL, "%s: ok", pd.config);
    } else if (rc == PL_EXIT_OK) {
        rc = run(&pd, &common, foreground);
    }
    for (size_t i = 0; pd.env != NULL && pd.env[i] != NULL; i++)
        free(pd.env[i]);
    free(pd.env);
    for (size_t i = 0; i < pd.nchildren; i++)
        free(pd.children[i].path);
    arena_free(&a);
    log_close();
    return rc;
}
