/* SPDX-License-Identifier: MIT */
/* router_bench: a load generator for any XEP-0114 router. Pairs of components fire small
 * <message/> stanzas at each other through the router and it prints stanzas/s and the router's
 * RSS each second. Only libc and GnuTLS (for SHA-1), never libcommon, so it is neutral. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#define END_TAG       "</message>"
#define END_TAG_LEN   (sizeof(END_TAG) - 1)
#define ID_DIGITS     10
#define RX_CHUNK      (256 * 1024)
#define TX_BATCH      (64 * 1024)
#define MAX_SECONDS   3600
#define SETUP_TIMEOUT 10

/* Exit codes. */
enum bench_exit {
    BENCH_OK = 0,
    BENCH_SETUP = 1, /* bad options, connect or handshake failed */
    BENCH_LOSS = 2,  /* stanzas lost, duplicated, bounced, or the router closed a stream */
};

struct opts {
    const char *host;
    const char *port;
    const char *name_a, *name_b;
    const char *secret_a, *secret_b;
    int pairs;
    size_t window;
    size_t size;
    int seconds;
    int warmup;
    int drain;
    long router_pid;
    bool verbose;
};

/* One component connection. Its peer is the other half of the pair: what this one sends, the
 * peer receives. */
struct comp {
    int fd;
    char name[256];
    struct comp *peer;
    uint64_t sent;     /* stanzas generated (queued in out or written) */
    uint64_t received; /* "</message>" seen in the input */
    size_t match;      /* bytes of END_TAG matched at the end of the last read */
    char *tmpl;        /* one stanza; its id digits sit at id_off */
    size_t tmpl_len, id_off;
    char *out;
    size_t out_len, out_off;
    bool want_out; /* EPOLLOUT is armed */
    bool dumped;   /* first input shown (--verbose) */
};

struct bench {
    struct opts o;
    int ep;
    struct comp *comps; /* 2 * pairs: a0, b0, a1, b1, ... */
    int ncomps;
    size_t window_stanzas;
    bool sending;
    bool failed; /* a sanity check failed: exit BENCH_LOSS */
    char rx[RX_CHUNK];
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("router_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(BENCH_SETUP);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The router's resident set in KiB, or -1 when unknown. */
static long router_rss_kib(long pid)
{
    char path[64], line[256];
    long kib = -1;
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

/* CPU seconds (user + system) the router has used, or -1 when unknown. */
static double router_cpu_s(long pid)
{
    char path[64], line[1024];
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char *ok = fgets(line, sizeof(line), f);
    fclose(f);
    /* Fields after the command, which may hold spaces: state is field 3, utime 14, stime 15. */
    char *p = ok ? strrchr(line, ')') : NULL;
    unsigned long long ut, st;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(FILE *f)
{
    fputs("usage: router_bench --port PORT [options]\n"
          "  --host ADDR         router address (127.0.0.1)\n"
          "  --port PORT         router port for components (required)\n"
          "  --name-a NAME       first component's name (a.bench)\n"
          "  --name-b NAME       second component's name (b.bench)\n"
          "  --secret-a S        first component's secret (secret)\n"
          "  --secret-b S        second component's secret (secret)\n"
          "  --pairs N           pairs of components (1); with N > 1 pair i (1..N) inserts i\n"
          "                      before the first dot of each name: a1.bench, b1.bench, ...\n"
          "  --window BYTES      stanza bytes in flight per direction and pair (262144)\n"
          "  --size BYTES        size of one stanza (150)\n"
          "  --seconds S         measured seconds (30)\n"
          "  --warmup S          seconds of load before measuring (2)\n"
          "  --drain S           seconds to wait for stanzas in flight at the end (10)\n"
          "  --router-pid PID    report this process's VmRSS\n"
          "  --verbose           show the start of what each component receives\n",
          f);
}

static long parse_num(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        die("%s: \"%s\" is not an integer in %ld..%ld", opt, s, min, max);
    return v;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"name-a", required_argument, NULL, 'a'},
        {"name-b", required_argument, NULL, 'b'},
        {"secret-a", required_argument, NULL, 'A'},
        {"secret-b", required_argument, NULL, 'B'},
        {"pairs", required_argument, NULL, 'n'},
        {"window", required_argument, NULL, 'w'},
        {"size", required_argument, NULL, 'z'},
        {"seconds", required_argument, NULL, 's'},
        {"warmup", required_argument, NULL, 'W'},
        {"drain", required_argument, NULL, 'd'},
        {"router-pid", required_argument, NULL, 'r'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct opts){.host = "127.0.0.1",
                       .name_a = "a.bench",
                       .name_b = "b.bench",
                       .secret_a = "secret",
                       .secret_b = "secret",
                       .pairs = 1,
                       .window = 256 * 1024,
                       .size = 150,
                       .seconds = 30,
                       .warmup = 2,
                       .drain = 10,
                       .router_pid = -1};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H':
            o->host = optarg;
            break;
        case 'p':
            o->port = optarg;
            break;
        case 'a':
            o->name_a = optarg;
            break;
        case 'b':
            o->name_b = optarg;
            break;
        case 'A':
            o->secret_a = optarg;
            break;
        case 'B':
            o->secret_b = optarg;
            break;
        case 'n':
            o->pairs = (int)parse_num("--pairs", optarg, 1, 1000);
            break;
        case 'w':
            o->window = (size_t)parse_num("--window", optarg, 1024, 1L << 30);
            break;
        case 'z':
            o->size = (size_t)parse_num("--size", optarg, 100, 65536);
            break;
        case 's':
            o->seconds = (int)parse_num("--seconds", optarg, 1, MAX_SECONDS);
            break;
        case 'W':
            o->warmup = (int)parse_num("--warmup", optarg, 0, 600);
            break;
        case 'd':
            o->drain = (int)parse_num("--drain", optarg, 1, 600);
            break;
        case 'r':
            o->router_pid = parse_num("--router-pid", optarg, 1, INT_MAX);
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'h':
            usage(stdout);
            exit(BENCH_OK);
        default:
            usage(stderr);
            exit(BENCH_SETUP);
        }
    }
    if (optind != argc || o->port == NULL) {
        usage(stderr);
        exit(BENCH_SETUP);
    }
}

/* Pair i of n: with n > 1 the index goes before the first dot ("a.bench" -> "a3.bench"). */
static void pair_name(const char *base, int i, int n, char *out, size_t cap)
{
    if (n == 1) {
        snprintf(out, cap, "%s", base);
        return;
    }
    const char *dot = strchr(base, '.');
    int head = dot ? (int)(dot - base) : (int)strlen(base);
    snprintf(out, cap, "%.*s%d%s", head, base, i + 1, dot ? dot : "");
}

/* Builds the one stanza this component sends, padded with body text to exactly size bytes. */
static void build_template(struct comp *c, size_t size)
{
    static const char text[] = "The quick brown fox jumps over the lazy dog. ";
    char head[700];
    int hlen = snprintf(head, sizeof(head), "<message from='u@%s' to='u@%s' id='%0*d'><body>",
                        c->name, c->peer->name, ID_DIGITS, 0);
    const char *tail = "</body></message>";
    size_t fixed = (size_t)hlen + strlen(tail);
    if (fixed + 1 > size)
        die("--size %zu is too small for the names: a stanza needs at least %zu bytes", size,
            fixed + 1);
    c->tmpl = malloc(size);
    if (c->tmpl == NULL)
        die("out of memory");
    memcpy(c->tmpl, head, (size_t)hlen);
    size_t pad = size - fixed;
    for (size_t i = 0; i < pad; i++)
        c->tmpl[(size_t)hlen + i] = text[i % (sizeof(text) - 1)];
    memcpy(c->tmpl + hlen + pad, tail, strlen(tail));
    c->tmpl_len = size;
    c->id_off = (size_t)hlen - strlen("'><body>") - ID_DIGITS;
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        die("%s:%s: %s", host, port, gai_strerror(rc));
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        die("cannot connect to %s:%s: %s", host, port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {SETUP_TIMEOUT, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void write_all(int fd, const char *p, size_t n, const char *name)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            die("%s: write: %s", name, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* Reads (blocking, with the setup timeout) until the input holds the whole start tag that begins
 * with `want`, and returns a pointer to it. A stream error or a closed stream is fatal. */
static const char *read_tag(struct comp *c, char *buf, size_t cap, size_t *len, const char *want)
{
    for (;;) {
        buf[*len] = '\0';
        const char *hit = strstr(buf, want);
        if (hit != NULL && strchr(hit, '>') != NULL)
            return hit;
        if (strstr(buf, "<stream:error") != NULL || strstr(buf, "</stream:stream>") != NULL)
            die("%s: the router refused the component: %s", c->name, buf);
        if (*len + 1 >= cap)
            die("%s: no %s in the first %zu bytes: %s", c->name, want, cap, buf);
        ssize_t r = read(c->fd, buf + *len, cap - 1 - *len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die("%s: waiting for %s: %s", c->name, want, strerror(errno));
        if (r == 0)
            die("%s: the router closed the connection; received: %s", c->name, buf);
        *len += (size_t)r;
    }
}

static void sha1_hex(const char *id, const char *secret, char out[41])
{
    char in[1024];
    unsigned char md[20];
    int n = snprintf(in, sizeof(in), "%s%s", id, secret);
    if (n < 0 || (size_t)n >= sizeof(in))
        die("stream id and secret are too long");
    if (gnutls_hash_fast(GNUTLS_DIG_SHA1, in, (size_t)n, md) < 0)
        die("gnutls has no SHA-1");
    for (int i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Reads the value of attribute `name` inside the start tag at tag into out. */
static void tag_attr(const char *tag, const char *name, char *out, size_t cap)
{
    const char *end = strchr(tag, '>');
    size_t nlen = strlen(name);
    for (const char *p = strstr(tag, name); p != NULL && p < end; p = strstr(p + 1, name)) {
        if ((p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n' || p[-1] == '\r') && p[nlen] == '=' &&
            (p[nlen + 1] == '\'' || p[nlen + 1] == '"')) {
            const char *v = p + nlen + 2;
            const char *q = strchr(v, p[nlen + 1]);
            if (q == NULL || q > end || (size_t)(q - v) >= cap)
                break;
            memcpy(out, v, (size_t)(q - v));
            out[q - v] = '\0';
            return;
        }
    }
    die("no %s='...' in the router's stream header: %.*s", name, (int)(end - tag + 1), tag);
}

/* XEP-0114: stream header, then <handshake>hex(SHA-1(id + secret))</handshake>. */
static void handshake(struct comp *c, const struct opts *o, const char *secret)
{
    char buf[8192], id[512], digest[41], msg[1024];
    size_t len = 0;
    c->fd = connect_to(o->host, o->port);
    int n = snprintf(msg, sizeof(msg),
                     "<?xml version='1.0'?><stream:stream "
                     "xmlns:stream='http://etherx.jabber.org/streams' "
                     "xmlns='jabber:component:accept' to='%s'>",
                     c->name);
    write_all(c->fd, msg, (size_t)n, c->name);
    const char *hdr = read_tag(c, buf, sizeof(buf), &len, "<stream:stream");
    tag_attr(hdr, "id", id, sizeof(id));
    sha1_hex(id, secret, digest);
    n = snprintf(msg, sizeof(msg), "<handshake>%s</handshake>", digest);
    write_all(c->fd, msg, (size_t)n, c->name);
    /* "<handshake/>" or "<handshake></handshake>": nothing else can follow yet, since no
     * component sends before every handshake is done, so the rest of buf is dropped. */
    read_tag(c, buf, sizeof(buf), &len, "<handshake");
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

/* Counts END_TAG in p, carrying a partial match across reads in c->match. END_TAG has a single
 * '<', at its start, so a failed partial match never hides the start of another. */
static uint64_t count_end_tags(struct comp *c, const char *p, size_t n)
{
    uint64_t count = 0;
    size_t i = 0;
    while (c->match > 0 && i < n) {
        if (p[i] != END_TAG[c->match]) {
            c->match = 0;
            break;
        }
        i++;
        if (++c->match == END_TAG_LEN) {
            count++;
            c->match = 0;
        }
    }
    while (i < n) {
        const char *lt = memchr(p + i, '<', n - i);
        if (lt == NULL)
            break;
        size_t at = (size_t)(lt - p), avail = n - at;
        if (avail >= END_TAG_LEN && memcmp(lt, END_TAG, END_TAG_LEN) == 0) {
            count++;
            i = at + END_TAG_LEN;
        } else if (avail < END_TAG_LEN && memcmp(lt, END_TAG, avail) == 0) {
            c->match = avail;
            break;
        } else {
            i = at + 1;
        }
    }
    return count;
}

static void set_want_out(struct bench *b, struct comp *c, bool on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(b->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    c->want_out = on;
}

/* Appends as many stanzas as the window allows, up to TX_BATCH bytes. */
static void refill(struct bench *b, struct comp *c)
{
    uint64_t in_flight = c->sent - c->peer->received;
    if (!b->sending || in_flight >= b->window_stanzas)
        return;
    uint64_t k = b->window_stanzas - in_flight;
    if (k > TX_BATCH / c->tmpl_len)
        k = TX_BATCH / c->tmpl_len;
    c->out_len = 0;
    c->out_off = 0;
    for (uint64_t j = 0; j < k; j++) {
        char *s = c->out + c->out_len;
        memcpy(s, c->tmpl, c->tmpl_len);
        uint64_t id = ++c->sent;
        for (int d = ID_DIGITS - 1; d >= 0; d--, id /= 10)
            s[c->id_off + (size_t)d] = (char)('0' + id % 10);
        c->out_len += c->tmpl_len;
    }
}

/* Writes until the window closes or the socket is full. */
static void pump(struct bench *b, struct comp *c)
{
    for (;;) {
        if (c->out_off == c->out_len) {
            refill(b, c);
            if (c->out_off == c->out_len) {
                set_want_out(b, c, false);
                return;
            }
        }
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_want_out(b, c, true);
            return;
        }
        if (w < 0)
            die("%s: write: %s", c->name, strerror(errno));
        c->out_off += (size_t)w;
    }
}

/* Flags the signs of a router that rejects or bounces what we send. */
static void check_input(struct bench *b, struct comp *c, const char *p, size_t n)
{
    if (!c->dumped && b->o.verbose) {
        printf("# %s receives: %.*s\n", c->name, (int)(n < 300 ? n : 300), p);
        c->dumped = true;
    }
    if (memmem(p, n, "<stream:error", 13) != NULL || memmem(p, n, "</stream:stream>", 16) != NULL) {
        fprintf(stderr, "router_bench: %s: the router ended the stream: %.*s\n", c->name,
                (int)(n < 1000 ? n : 1000), p);
        exit(BENCH_LOSS);
    }
    if (memmem(p, n, "type='error'", 12) != NULL || memmem(p, n, "type=\"error\"", 12) != NULL ||
        memmem(p, n, " error='", 8) != NULL) {
        if (!b->failed)
            fprintf(stderr, "router_bench: %s: received a bounced stanza: %.*s\n", c->name,
                    (int)(n < 600 ? n : 600), p);
        b->failed = true;
    }
    if (c->received > c->peer->sent) {
        fprintf(stderr, "router_bench: %s: received %llu stanzas but %s sent only %llu\n", c->name,
                (unsigned long long)c->received, c->peer->name, (unsigned long long)c->peer->sent);
        exit(BENCH_LOSS);
    }
}

static void on_readable(struct bench *b, struct comp *c)
{
    char *rx = b->rx;
    for (int i = 0; i < 4; i++) {
        ssize_t r = read(c->fd, rx, RX_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (r < 0)
            die("%s: read: %s", c->name, strerror(errno));
        if (r == 0) {
            fprintf(stderr, "router_bench: %s: the router closed the connection\n", c->name);
            exit(BENCH_LOSS);
        }
        c->received += count_end_tags(c, rx, (size_t)r);
        check_input(b, c, rx, (size_t)r);
        if ((size_t)r < RX_CHUNK)
            break;
    }
    pump(b, c->peer); /* its window may have opened */
}

static uint64_t total_received(const struct bench *b)
{
    uint64_t n = 0;
    for (int i = 0; i < b->ncomps; i++)
        n += b->comps[i].received;
    return n;
}

static uint64_t total_sent(const struct bench *b)
{
    uint64_t n = 0;
    for (int i = 0; i < b->ncomps; i++)
        n += b->comps[i].sent;
    return n;
}

/* Runs the event loop until `until` (monotonic seconds), or until every stanza sent has
 * arrived when stop_when_drained. */
static void run_until(struct bench *b, double until, bool stop_when_drained)
{
    struct epoll_event evs[64];
    for (;;) {
        double left = until - now_s();
        if (left <= 0)
            return;
        if (stop_when_drained && total_received(b) == total_sent(b))
            return;
        int ms = (int)(left * 1000) + 1;
        int n = epoll_wait(b->ep, evs, 64, ms > 100 ? 100 : ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct comp *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(b, c);
            if (evs[i].events & EPOLLOUT)
                pump(b, c);
        }
    }
}

static void setup(struct bench *b)
{
    const struct opts *o = &b->o;
    b->ncomps = 2 * o->pairs;
    b->comps = calloc((size_t)b->ncomps, sizeof(*b->comps));
    b->ep = epoll_create1(EPOLL_CLOEXEC);
    if (b->comps == NULL || b->ep < 0)
        die("setup: %s", strerror(errno));
    for (int i = 0; i < o->pairs; i++) {
        struct comp *a = &b->comps[2 * i], *z = &b->comps[2 * i + 1];
        pair_name(o->name_a, i, o->pairs, a->name, sizeof(a->name));
        pair_name(o->name_b, i, o->pairs, z->name, sizeof(z->name));
        a->peer = z;
        z->peer = a;
    }
    for (int i = 0; i < b->ncomps; i++) {
        struct comp *c = &b->comps[i];
        build_template(c, o->size);
        c->out = malloc(TX_BATCH);
        if (c->out == NULL)
            die("out of memory");
        handshake(c, o, i % 2 == 0 ? o->secret_a : o->secret_b);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(b->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl: %s", strerror(errno));
    }
    b->window_stanzas = o->window / o->size;
    if (b->window_stanzas == 0)
        b->window_stanzas = 1;
}

struct measure {
    double mean, min, max;
    long rss_idle, rss_start, rss_end;
    double router_cpu, self_cpu; /* share of one CPU over the measured seconds; <0: unknown */
};

static void print_rss(long kib)
{
    if (kib < 0)
        printf("%12s\n", "-");
    else
        printf("%12ld\n", kib);
}

/* The measured seconds: one line per second. */
static void measure(struct bench *b, struct measure *m)
{
    m->rss_start = router_rss_kib(b->o.router_pid);
    double rcpu0 = router_cpu_s(b->o.router_pid), scpu0 = self_cpu_s();
    m->min = 1e300;
    m->max = 0;
    printf("%4s %12s %12s\n", "t", "stanzas/s", "RSS KiB");
    double t0 = now_s(), prev_t = t0;
    uint64_t r0 = total_received(b), prev_r = r0;
    for (int s = 1; s <= b->o.seconds; s++) {
        run_until(b, t0 + s, false);
        double t = now_s();
        uint64_t r = total_received(b);
        double rate = (double)(r - prev_r) / (t - prev_t);
        if (rate < m->min)
            m->min = rate;
        if (rate > m->max)
            m->max = rate;
        long rss = router_rss_kib(b->o.router_pid);
        printf("%4d %12.0f ", s, rate);
        print_rss(rss);
        fflush(stdout);
        prev_t = t;
        prev_r = r;
        m->rss_end = rss;
    }
    m->mean = (double)(prev_r - r0) / (prev_t - t0);
    double rcpu1 = router_cpu_s(b->o.router_pid);
    m->router_cpu = rcpu0 < 0 || rcpu1 < 0 ? -1 : (rcpu1 - rcpu0) / (prev_t - t0);
    m->self_cpu = (self_cpu_s() - scpu0) / (prev_t - t0);
}

/* Prints the summary and returns the exit code. */
static int report(const struct bench *b, const struct measure *m)
{
    uint64_t sent = total_sent(b), received = total_received(b);
    uint64_t lost = sent - received;
    printf("summary: mean %.0f stanzas/s (min %.0f, max %.0f per second) over %d s\n", m->mean,
           m->min, m->max, b->o.seconds);
    printf("router RSS: %ld KiB idle, %ld KiB at start, %ld KiB at end (-1: unknown)\n",
           m->rss_idle, m->rss_start, m->rss_end);
    printf("CPU: router %.0f%%, generator %.0f%% of one core (router -100%%: unknown)\n",
           100 * m->router_cpu, 100 * m->self_cpu);
    printf("drain: sent %llu, received %llu, lost %llu%s\n", (unsigned long long)sent,
           (unsigned long long)received, (unsigned long long)lost,
           lost ? " (stanzas sent were never delivered)" : "");
    printf("RESULT mean=%.0f min=%.0f max=%.0f rss_idle_kib=%ld rss_start_kib=%ld "
           "rss_end_kib=%ld router_cpu=%.2f generator_cpu=%.2f sent=%llu received=%llu lost=%llu "
           "bounced=%d\n",
           m->mean, m->min, m->max, m->rss_idle, m->rss_start, m->rss_end, m->router_cpu,
           m->self_cpu, (unsigned long long)sent, (unsigned long long)received,
           (unsigned long long)lost, b->failed ? 1 : 0);
    return (lost != 0 || b->failed) ? BENCH_LOSS : BENCH_OK;
}

int main(int argc, char **argv)
{
    static struct bench b; /* static: it holds the 256 KiB input buffer */
    struct measure m = {0};
    parse_opts(argc, argv, &b.o);
    setup(&b);
    printf("# router_bench: %d pair(s) via %s:%s, %zu-byte stanzas, window %zu bytes "
           "(%zu stanzas) per direction, %d s warm-up, %d s measured\n",
           b.o.pairs, b.o.host, b.o.port, b.o.size, b.o.window, b.window_stanzas, b.o.warmup,
           b.o.seconds);
    m.rss_idle = router_rss_kib(b.o.router_pid);
    b.sending = true;
    for (int i = 0; i < b.ncomps; i++)
        pump(&b, &b.comps[i]);
    run_until(&b, now_s() + b.o.warmup, false);
    measure(&b, &m);
    b.sending = false;
    run_until(&b, now_s() + b.o.drain, true);
    int rc = report(&b, &m);
    for (int i = 0; i < b.ncomps; i++) {
        write_all(b.comps[i].fd, "</stream:stream>", 16, b.comps[i].name);
        close(b.comps[i].fd);
    }
    return rc;
}
