/* SPDX-License-Identifier: MIT */
/* c2s_bench: a neutral XMPP client load generator (plain TCP, SASL PLAIN or SCRAM-SHA-1, bind,
 * presence) for any server: logins/s, messages/s with latency between paired users, latency at a
 * fixed rate, and the servers' RSS per idle session. Only libc and GnuTLS (for SCRAM), never
 * libcommon, so it treats Parley and jabberd2 alike. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
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

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#define HIST_US       1000000 /* latency histogram: 1 us buckets below 1 s, */
#define HIST_MS       120000  /* then 1 ms buckets up to 2 minutes (and one overflow) */
#define MAX_PIDS      32
#define READ_CHUNK    65536
#define SETUP_TIMEOUT 120 /* seconds for every session of a phase to be ready */
#define SCRAM_LEN     20  /* SHA-1 */
#define NS_SASL       "urn:ietf:params:xml:ns:xmpp-sasl"

enum bench_exit {
    BENCH_OK = 0,
    BENCH_SETUP = 1, /* bad options, connect refused, authentication failed */
    BENCH_LOSS = 2,  /* messages lost, bounced or out of order, or a stream closed under load */
};

enum mode { MODE_LOGINS, MODE_MESSAGES, MODE_RATE, MODE_IDLE };

struct opts {
    const char *host, *domain, *prefix, *password, *mech, *archive, *peer_domain;
    int port, peer_port, users, first, concurrency, window, seconds, warmup, drain, settle, rounds,
        rate;
    long pids[MAX_PIDS];
    int npids;
    enum mode mode;
    bool scram_cache, verbose;
};

/* The SCRAM keys derived for one user from a salt and an iteration count. */
struct scram_keys {
    char salt[64];
    unsigned iter;
    unsigned char client_key[SCRAM_LEN], stored_key[SCRAM_LEN], server_key[SCRAM_LEN];
    bool valid;
};

struct bytes {
    char *data;
    size_t len, cap;
};

enum conn_state {
    CS_FREE,
    CS_CONNECTING,
    CS_FEATURES, /* stream opened, waiting for <stream:features> */
    CS_AUTH,     /* <auth> sent */
    CS_FEATURES2,
    CS_BIND,
    CS_SESSION,
    CS_PREFS, /* XEP-0441 archive preferences (--archive) */
    CS_PING,  /* presence and a ping sent: the ping's result means the session is available */
    CS_READY,
};

static const char *const state_names[] = {
    "free", "connecting", "features", "auth", "features after auth",
    "bind", "session",    "prefs",    "ping", "ready",
};

struct conn {
    int fd;
    int user; /* 0-based; the JID is prefix(first + user)@domain */
    enum conn_state state;
    struct bytes in, out;
    size_t scan, stanza_start;
    int depth;
    bool dirty, want_out, need_session;
    int64_t t_login; /* when the connection was started */
    struct conn *peer;
    char peer_jid[128];
    long inflight; /* messages this one sent that its peer has not received yet */
    uint64_t tx_seq, rx_seq;
    char *scram_msg; /* client-first-bare, then the AuthMessage */
    char cnonce[33];
};

struct stats {
    uint64_t hist[HIST_US];
    uint64_t hist_ms[HIST_MS + 1];
    uint64_t count, max_us, sum_us;
};

/* --mode rate: messages go out round-robin over the users; each carries the time it was due,
 * not when it was written, so a server that falls behind shows its queueing. */
struct schedule {
    int64_t t0;
    uint64_t sent;
    int next;
};

struct bench {
    struct opts o;
    struct schedule sched;
    int ep;
    struct conn *conns;
    int nconns;
    struct scram_keys *keys; /* per user */
    struct conn **dirty;
    int ndirty;
    bool sending, measuring, failed;
    int ready, failures;
    unsigned scram_iter; /* the iteration count servers sent, the last time */
    uint64_t login_seq, received, errors, disorder, scram_full, prefs_refused;
    struct stats lat;
    char rx[READ_CHUNK];
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("c2s_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(BENCH_SETUP);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL)
        die("out of memory");
    return p;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- servers' /proc numbers ---------------------------------------------------------------- */

static long proc_rss_kib(long pid)
{
    char path[64], line[256];
    long kib = -1;
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

static double proc_cpu_s(long pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char *ok = fgets(line, sizeof(line), f);
    fclose(f);
    char *p = ok ? strrchr(line, ')') : NULL;
    unsigned long long ut, st;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Sum over the --pid processes; -1 if none was given or one is unreadable. */
static long servers_rss_kib(const struct opts *o)
{
    long sum = 0;
    for (int i = 0; i < o->npids; i++) {
        long v = proc_rss_kib(o->pids[i]);
        if (v < 0)
            return -1;
        sum += v;
    }
    return o->npids > 0 ? sum : -1;
}

static double servers_cpu_s(const struct opts *o)
{
    double sum = 0;
    for (int i = 0; i < o->npids; i++) {
        double v = proc_cpu_s(o->pids[i]);
        if (v < 0)
            return -1;
        sum += v;
    }
    return o->npids > 0 ? sum : -1;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- latency histogram --------------------------------------------------------------------- */

static void stats_add(struct stats *s, int64_t ns)
{
    uint64_t us = ns < 0 ? 0 : (uint64_t)ns / 1000;
    if (us < HIST_US)
        s->hist[us]++;
    else
        s->hist_ms[us / 1000 < HIST_MS ? us / 1000 : HIST_MS]++;
    s->count++;
    s->sum_us += us;
    if (us > s->max_us)
        s->max_us = us;
}

/* The q-quantile in microseconds (1 ms resolution from 1 s on). */
static uint64_t stats_quantile(const struct stats *s, double q)
{
    if (s->count == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)s->count);
    if (want >= s->count)
        want = s->count - 1;
    uint64_t seen = 0;
    for (uint64_t us = 0; us < HIST_US; us++) {
        seen += s->hist[us];
        if (seen > want)
            return us;
    }
    for (uint64_t ms = 0; ms <= HIST_MS; ms++) {
        seen += s->hist_ms[ms];
        if (seen > want)
            return ms * 1000;
    }
    return s->max_us;
}

/* ---- buffers and base64 -------------------------------------------------------------------- */

static void bytes_reserve(struct bytes *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
    bytes_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void bytes_printf(struct bytes *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void bytes_printf(struct bytes *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    bytes_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void bytes_free(struct bytes *b)
{
    free(b->data);
    *b = (struct bytes){0};
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Writes the base64 of in to out, which has room for 4 * ceil(n / 3) + 1 bytes. */
static void b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
    }
    out[o] = '\0';
}

/* Decodes n base64 characters (whitespace skipped) into out (room for n bytes); the length, or
 * -1 if a character is not base64. */
static long b64_decode(const char *in, size_t n, unsigned char *out)
{
    unsigned v = 0;
    int bits = 0;
    long o = 0;
    for (size_t i = 0; i < n && in[i] != '='; i++) {
        const char *p = strchr(b64chars, in[i]);
        if (in[i] == ' ' || in[i] == '\n' || in[i] == '\r' || in[i] == '\t')
            continue;
        if (p == NULL || in[i] == '\0')
            return -1;
        v = (v << 6) | (unsigned)(p - b64chars);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(v >> bits);
        }
    }
    return o;
}

/* ---- a minimal XML scanner: only the outer element of each stanza is read ------------------ */

struct str {
    const char *p;
    size_t len;
};

enum tag_kind { TAG_INCOMPLETE, TAG_SKIP, TAG_OPEN, TAG_EMPTY, TAG_CLOSE };

static const char *find(const char *p, size_t n, const char *needle)
{
    return memmem(p, n, needle, strlen(needle));
}

/* The tag starting at buf[start] ('<'): its kind and the offset just past it. */
static enum tag_kind tag_at(const char *buf, size_t start, size_t len, size_t *end_r)
{
    const char *p = buf + start, *lim = buf + len;
    const char *close = NULL;
    if (lim - p < 2)
        return TAG_INCOMPLETE;
    if (p[1] == '?')
        close = find(p, (size_t)(lim - p), "?>");
    else if (lim - p >= 4 && memcmp(p, "<!--", 4) == 0)
        close = find(p, (size_t)(lim - p), "-->");
    else if (p[1] == '!')
        close = find(p, (size_t)(lim - p), "]]>");
    if (p[1] == '?' || p[1] == '!') {
        if (close == NULL)
            return TAG_INCOMPLETE;
        *end_r = (size_t)(close - buf) + (p[1] == '?' ? 2 : 3);
        return TAG_SKIP;
    }
    char quote = 0;
    for (const char *q = p + 1; q < lim; q++) {
        if (quote != 0) {
            if (*q == quote)
                quote = 0;
        } else if (*q == '\'' || *q == '"') {
            quote = *q;
        } else if (*q == '>') {
            *end_r = (size_t)(q - buf) + 1;
            if (p[1] == '/')
                return TAG_CLOSE;
            return q[-1] == '/' ? TAG_EMPTY : TAG_OPEN;
        }
    }
    return TAG_INCOMPLETE;
}

/* The element name of a stanza (prefix included, e.g. "stream:features"). */
static struct str stanza_name(struct str s)
{
    size_t i = 1;
    while (i < s.len && strchr(" \t\r\n/>", s.p[i]) == NULL)
        i++;
    return (struct str){s.p + 1, i - 1};
}

static bool str_is(struct str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

/* The value of attribute name in the stanza's start tag (not unescaped). */
static bool stanza_attr(struct str s, const char *name, struct str *val_r)
{
    size_t nlen = strlen(name), i = 1 + stanza_name(s).len;
    while (i < s.len) {
        while (i < s.len && strchr(" \t\r\n", s.p[i]) != NULL)
            i++;
        if (i >= s.len || s.p[i] == '>' || s.p[i] == '/')
            return false;
        size_t a = i;
        while (i < s.len && s.p[i] != '=')
            i++;
        size_t alen = i - a;
        while (alen > 0 && strchr(" \t\r\n", s.p[a + alen - 1]) != NULL)
            alen--;
        while (i < s.len && s.p[i] != '\'' && s.p[i] != '"')
            i++;
        if (i >= s.len)
            return false;
        char q = s.p[i++];
        size_t v = i;
        while (i < s.len && s.p[i] != q)
            i++;
        if (alen == nlen && memcmp(s.p + a, name, nlen) == 0) {
            *val_r = (struct str){s.p + v, i - v};
            return true;
        }
        i++;
    }
    return false;
}

static bool attr_is(struct str s, const char *name, const char *want)
{
    struct str v;
    return stanza_attr(s, name, &v) && str_is(v, want);
}

/* The text of the first <name> child (no attributes expected), or false. */
static bool child_text(struct str s, const char *open, struct str *text_r)
{
    const char *p = find(s.p, s.len, open);
    if (p == NULL)
        return false;
    p += strlen(open);
    const char *e = memchr(p, '<', (size_t)(s.p + s.len - p));
    if (e == NULL)
        return false;
    *text_r = (struct str){p, (size_t)(e - p)};
    return true;
}

/* The character data of the stanza's top element (SASL payloads). */
static struct str stanza_text(struct str s)
{
    size_t end;
    if (tag_at(s.p, 0, s.len, &end) != TAG_OPEN)
        return (struct str){s.p + s.len, 0};
    const char *e = memchr(s.p + end, '<', s.len - end);
    return (struct str){s.p + end, e ? (size_t)(e - (s.p + end)) : 0};
}

/* ---- connections --------------------------------------------------------------------------- */

static void conn_fail(struct bench *b, struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void mark_dirty(struct bench *b, struct conn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        b->dirty[b->ndirty++] = c;
    }
}

static void send_str(struct bench *b, struct conn *c, const char *s)
{
    bytes_add(&c->out, s, strlen(s));
    mark_dirty(b, c);
}

static void user_name(const struct bench *b, int user, char *out, size_t cap)
{
    snprintf(out, cap, "%s%d", b->o.prefix, b->o.first + user);
}

static void set_events(struct bench *b, struct conn *c, bool want_out)
{
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0u), .data.ptr = c};
    if (epoll_ctl(b->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    c->want_out = want_out;
}

/* Writes what is queued; false if the connection failed. */
static bool conn_flush(struct bench *b, struct conn *c)
{
    if (c->state == CS_CONNECTING || c->state == CS_FREE)
        return true; /* EPOLLOUT stays armed until the connection is up */
    size_t off = 0;
    while (off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            conn_fail(b, c, "send: %s", strerror(errno));
            return false;
        }
        off += (size_t)n;
    }
    memmove(c->out.data, c->out.data + off, c->out.len - off);
    c->out.len -= off;
    if ((c->out.len > 0) != c->want_out)
        set_events(b, c, c->out.len > 0);
    return true;
}

static void conn_close(struct bench *b, struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(b->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = CS_FREE;
    c->out.len = 0;
    c->in.len = 0;
    free(c->scram_msg);
    c->scram_msg = NULL;
}

static void conn_fail(struct bench *b, struct conn *c, const char *fmt, ...)
{
    char user[64];
    va_list ap;
    user_name(b, c->user, user, sizeof(user));
    if (b->failures++ < 10) {
        fprintf(stderr, "c2s_bench: %s (%s): ", user, state_names[c->state]);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    if (c->state == CS_READY)
        b->ready--;
    b->errors++;
    conn_close(b, c);
}

/* With --peer-port, the second user of each pair (odd 0-based numbers) lives on the peer
 * server: every message then crosses from one server to the other over s2s. */
static bool on_peer(const struct bench *b, int user)
{
    return b->o.peer_port != 0 && user % 2 == 1;
}

static const char *user_domain(const struct bench *b, int user)
{
    return on_peer(b, user) ? b->o.peer_domain : b->o.domain;
}

static int user_port(const struct bench *b, int user)
{
    return on_peer(b, user) ? b->o.peer_port : b->o.port;
}

static void send_stream_header(struct bench *b, struct conn *c)
{
    bytes_printf(&c->out,
                 "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
                 user_domain(b, c->user));
    mark_dirty(b, c);
}

/* Starts a non-blocking connection for user into slot c. */
static void conn_start(struct bench *b, struct conn *c, int user)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)user_port(b, user))};
    if (inet_pton(AF_INET, b->o.host, &sa.sin_addr) != 1)
        die("--host %s: not an IPv4 address", b->o.host);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s (raise the open files limit?)", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->user = user;
    c->state = CS_CONNECTING;
    c->depth = 0;
    c->scan = 0;
    c->t_login = now_ns();
    c->need_session = false;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = true;
    if (epoll_ctl(b->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
        conn_fail(b, c, "connect: %s", strerror(errno));
}

/* ---- SASL ---------------------------------------------------------------------------------- */

static void send_auth(struct bench *b, struct conn *c)
{
    char user[64], raw[256], enc[400];
    user_name(b, c->user, user, sizeof(user));
    if (strcmp(b->o.mech, "PLAIN") == 0) {
        int n = snprintf(raw, sizeof(raw), "%c%s%c%s", 0, user, 0, b->o.password);
        b64_encode((const unsigned char *)raw, (size_t)n, enc);
    } else {
        unsigned char rnd[16];
        gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd));
        b64_encode(rnd, sizeof(rnd), c->cnonce);
        int n = snprintf(raw, sizeof(raw), "n,,n=%s,r=%s", user, c->cnonce);
        free(c->scram_msg);
        c->scram_msg = strdup(raw + 3);
        b64_encode((const unsigned char *)raw, (size_t)n, enc);
    }
    bytes_printf(&c->out, "<auth xmlns='" NS_SASL "' mechanism='%s'>%s</auth>", b->o.mech, enc);
    mark_dirty(b, c);
    c->state = CS_AUTH;
}

static void hmac(const unsigned char *key, const char *msg, size_t n, unsigned char *out)
{
    gnutls_hmac_fast(GNUTLS_MAC_SHA1, key, SCRAM_LEN, msg, n, out);
}

/* The keys for this salt and count, from the cache when allowed. */
static const struct scram_keys *scram_keys(struct bench *b, int user, struct str salt,
                                           unsigned iter)
{
    struct scram_keys *k = &b->keys[user];
    if (b->o.scram_cache && k->valid && k->iter == iter && str_is(salt, k->salt))
        return k;
    unsigned char rawsalt[64], salted[SCRAM_LEN];
    long sl = salt.len < sizeof(k->salt) ? b64_decode(salt.p, salt.len, rawsalt) : -1;
    if (sl < 0)
        return NULL;
    gnutls_datum_t pw = {(unsigned char *)b->o.password, (unsigned)strlen(b->o.password)};
    gnutls_datum_t s = {rawsalt, (unsigned)sl};
    if (gnutls_pbkdf2(GNUTLS_MAC_SHA1, &pw, &s, iter, salted, SCRAM_LEN) < 0)
        return NULL;
    b->scram_full++;
    memcpy(k->salt, salt.p, salt.len);
    k->salt[salt.len] = '\0';
    k->iter = iter;
    hmac(salted, "Client Key", 10, k->client_key);
    hmac(salted, "Server Key", 10, k->server_key);
    gnutls_hash_fast(GNUTLS_DIG_SHA1, k->client_key, SCRAM_LEN, k->stored_key);
    k->valid = true;
    return k;
}

/* A field "x=value" of a SCRAM message. */
static bool scram_field(const char *msg, char name, struct str *val_r)
{
    for (const char *p = msg; p != NULL && *p != '\0'; p = strchr(p, ',')) {
        if (*p == ',')
            p++;
        if (p[0] == name && p[1] == '=') {
            size_t n = strcspn(p + 2, ",");
            *val_r = (struct str){p + 2, n};
            return true;
        }
    }
    return false;
}

/* Answers the server-first-message with the client-final-message. */
static void scram_challenge(struct bench *b, struct conn *c, const char *sfirst)
{
    struct str nonce, salt, iters;
    if (!scram_field(sfirst, 'r', &nonce) || !scram_field(sfirst, 's', &salt) ||
        !scram_field(sfirst, 'i', &iters) || nonce.len < strlen(c->cnonce) ||
        memcmp(nonce.p, c->cnonce, strlen(c->cnonce)) != 0 || nonce.len > 200) {
        conn_fail(b, c, "bad SCRAM challenge: %s", sfirst);
        return;
    }
    b->scram_iter = (unsigned)atoi(iters.p);
    const struct scram_keys *k = scram_keys(b, c->user, salt, b->scram_iter);
    if (k == NULL) {
        conn_fail(b, c, "SCRAM: bad salt or PBKDF2 failed");
        return;
    }
    char without[256];
    snprintf(without, sizeof(without), "c=biws,r=%.*s", (int)nonce.len, nonce.p);
    size_t alen = strlen(c->scram_msg) + strlen(sfirst) + strlen(without) + 3;
    char *auth = xrealloc(NULL, alen);
    snprintf(auth, alen, "%s,%s,%s", c->scram_msg, sfirst, without);
    free(c->scram_msg);
    c->scram_msg = auth;
    unsigned char sig[SCRAM_LEN], proof[SCRAM_LEN];
    hmac(k->stored_key, auth, strlen(auth), sig);
    for (int i = 0; i < SCRAM_LEN; i++)
        proof[i] = k->client_key[i] ^ sig[i];
    char p64[32], final[400], enc[600];
    b64_encode(proof, SCRAM_LEN, p64);
    int n = snprintf(final, sizeof(final), "%s,p=%s", without, p64);
    b64_encode((const unsigned char *) final, (size_t)n, enc);
    bytes_printf(&c->out, "<response xmlns='" NS_SASL "'>%s</response>", enc);
    mark_dirty(b, c);
}

/* Checks the server's signature ("v=..."); false and the connection failed if wrong. */
static bool scram_verify(struct bench *b, struct conn *c, const char *sfinal)
{
    struct str v;
    const struct scram_keys *k = &b->keys[c->user];
    unsigned char want[SCRAM_LEN];
    char w64[32];
    hmac(k->server_key, c->scram_msg, strlen(c->scram_msg), want);
    b64_encode(want, SCRAM_LEN, w64);
    if (!scram_field(sfinal, 'v', &v) || !str_is(v, w64)) {
        conn_fail(b, c, "SCRAM: wrong server signature in '%s'", sfinal);
        return false;
    }
    return true;
}

/* <challenge/>, <success/> or <failure/> while authenticating. */
static void on_sasl(struct bench *b, struct conn *c, struct str s, struct str name)
{
    struct str t = stanza_text(s);
    unsigned char dec[1024];
    long n = t.len < sizeof(dec) ? b64_decode(t.p, t.len, dec) : -1;
    if (n < 0) {
        conn_fail(b, c, "bad base64 in <%.*s>", (int)name.len, name.p);
        return;
    }
    dec[n] = '\0';
    bool scram = strcmp(b->o.mech, "PLAIN") != 0;
    if (str_is(name, "challenge") && scram && strncmp((char *)dec, "v=", 2) == 0) {
        if (scram_verify(b, c, (char *)dec))
            send_str(b, c, "<response xmlns='" NS_SASL "'/>");
    } else if (str_is(name, "challenge") && scram) {
        scram_challenge(b, c, (char *)dec);
    } else if (str_is(name, "success")) {
        if (scram && n > 0 && !scram_verify(b, c, (char *)dec))
            return;
        c->depth = 0; /* the stream restarts */
        send_stream_header(b, c);
        c->state = CS_FEATURES2;
    } else {
        conn_fail(b, c, "authentication failed: %.*s", (int)s.len, s.p);
        b->failed = true;
    }
}

/* ---- the login sequence and the stanzas of a ready session --------------------------------- */

static void on_features(struct bench *b, struct conn *c, struct str s)
{
    if (c->state == CS_FEATURES) {
        char want[64];
        snprintf(want, sizeof(want), "<mechanism>%s</mechanism>", b->o.mech);
        if (find(s.p, s.len, want) == NULL) {
            conn_fail(b, c, "%s is not offered: %.*s", b->o.mech, (int)s.len, s.p);
            b->failed = true;
            return;
        }
        send_auth(b, c);
        return;
    }
    const char *sess = find(s.p, s.len, "<session");
    if (sess != NULL) {
        /* RFC 3921 session: needed unless marked optional (RFC 6121 appendix E) */
        const char *end = find(sess, (size_t)(s.p + s.len - sess), "</session>");
        const char *opt = find(sess, (size_t)(s.p + s.len - sess), "<optional");
        c->need_session = end != NULL && opt != NULL ? opt > end : opt == NULL;
    }
    bytes_printf(&c->out,
                 "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 "<resource>b%llu</resource></bind></iq>",
                 (unsigned long long)++b->login_seq);
    mark_dirty(b, c);
    c->state = CS_BIND;
}

static void send_presence_ping(struct bench *b, struct conn *c)
{
    bytes_printf(&c->out,
                 "<presence/><iq type='get' id='ping' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>",
                 user_domain(b, c->user));
    mark_dirty(b, c);
    c->state = CS_PING;
}

static void on_ready(struct bench *b, struct conn *c);

/* After bind: the session request if the server needs it, the archive preferences if asked
 * for, then presence and a ping. */
static void login_step(struct bench *b, struct conn *c)
{
    if (c->state == CS_BIND && c->need_session) {
        send_str(b, c,
                 "<iq type='set' id='session'>"
                 "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
        c->state = CS_SESSION;
    } else if (c->state < CS_PREFS && b->o.archive != NULL) {
        bytes_printf(&c->out,
                     "<iq type='set' id='prefs'><prefs xmlns='urn:xmpp:mam:2' default='%s'/></iq>",
                     b->o.archive);
        mark_dirty(b, c);
        c->state = CS_PREFS;
    } else {
        send_presence_ping(b, c);
    }
}

/* An <iq/> during login: the results of bind, session, prefs and ping. */
static void on_login_iq(struct bench *b, struct conn *c, struct str s)
{
    static const char *const ids[] = {
        [CS_BIND] = "bind", [CS_SESSION] = "session", [CS_PREFS] = "prefs", [CS_PING] = "ping"};
    const char *want = ids[c->state];
    if (!attr_is(s, "id", want))
        return;
    /* A server without XEP-0313 refuses the preferences: that is fine, it archives nothing. */
    if (!attr_is(s, "type", "result") && c->state != CS_PREFS) {
        conn_fail(b, c, "%s failed: %.*s", want, (int)s.len, s.p);
        return;
    }
    if (c->state == CS_PREFS && !attr_is(s, "type", "result"))
        b->prefs_refused++;
    if (c->state != CS_PING) {
        login_step(b, c);
        return;
    }
    c->state = CS_READY;
    b->ready++;
    on_ready(b, c);
}

static void send_message(struct bench *b, struct conn *c, int64_t stamp)
{
    bytes_printf(&c->out, "<message to='%s' type='chat' id='%llu'><body>%lld</body></message>",
                 c->peer_jid, (unsigned long long)++c->tx_seq, (long long)stamp);
    c->inflight++;
    mark_dirty(b, c);
}

/* A <message/> for this session: from its peer, with the send time in the body. */
static void on_message(struct bench *b, struct conn *c, struct str s)
{
    struct str id, body;
    struct conn *from = c->peer;
    if (attr_is(s, "type", "error") || from == NULL || !child_text(s, "<body>", &body) ||
        !stanza_attr(s, "id", &id)) {
        if (b->errors++ < 5)
            fprintf(stderr, "c2s_bench: unexpected: %.*s\n", (int)(s.len < 300 ? s.len : 300), s.p);
        return;
    }
    int64_t now = now_ns(), stamp = strtoll(body.p, NULL, 10);
    if (strtoull(id.p, NULL, 10) != ++c->rx_seq) {
        b->disorder++;
        c->rx_seq = strtoull(id.p, NULL, 10);
    }
    from->inflight--;
    b->received++;
    if (b->measuring)
        stats_add(&b->lat, now - stamp);
    if (b->sending && b->o.mode == MODE_MESSAGES && from->inflight < b->o.window &&
        from->state == CS_READY)
        send_message(b, from, now);
}

/* Any iq a server sends us gets an empty result (a ping, most likely). */
static void on_server_iq(struct bench *b, struct conn *c, struct str s)
{
    struct str id, from;
    if (!attr_is(s, "type", "get") && !attr_is(s, "type", "set"))
        return;
    if (!stanza_attr(s, "id", &id))
        return;
    if (stanza_attr(s, "from", &from))
        bytes_printf(&c->out, "<iq type='result' id='%.*s' to='%.*s'/>", (int)id.len, id.p,
                     (int)from.len, from.p);
    else
        bytes_printf(&c->out, "<iq type='result' id='%.*s'/>", (int)id.len, id.p);
    mark_dirty(b, c);
}

static void on_stanza(struct bench *b, struct conn *c, struct str s)
{
    struct str name = stanza_name(s);
    if (b->o.verbose && c->user == 0)
        fprintf(stderr, "c2s_bench: <- %.*s\n", (int)s.len, s.p);
    if (str_is(name, "message") && c->state == CS_READY)
        on_message(b, c, s);
    else if (str_is(name, "presence"))
        return;
    else if (str_is(name, "iq") && c->state >= CS_BIND && c->state <= CS_PING)
        on_login_iq(b, c, s);
    else if (str_is(name, "iq"))
        on_server_iq(b, c, s);
    else if (str_is(name, "stream:features") &&
             (c->state == CS_FEATURES || c->state == CS_FEATURES2))
        on_features(b, c, s);
    else if (c->state == CS_AUTH &&
             (str_is(name, "challenge") || str_is(name, "success") || str_is(name, "failure")))
        on_sasl(b, c, s, name);
    else if (str_is(name, "stream:error"))
        conn_fail(b, c, "stream error: %.*s", (int)s.len, s.p);
    else if (b->o.verbose)
        fprintf(stderr, "c2s_bench: ignored: %.*s\n", (int)s.len, s.p);
}

/* Feeds the complete top-level children of the stream to on_stanza; false if the connection
 * was closed meanwhile. */
static bool scan_input(struct bench *b, struct conn *c)
{
    size_t pos = c->scan;
    while (pos < c->in.len && c->state != CS_FREE) {
        char *lt = memchr(c->in.data + pos, '<', c->in.len - pos);
        if (lt == NULL) {
            pos = c->in.len;
            break;
        }
        size_t start = (size_t)(lt - c->in.data), end;
        enum tag_kind k = tag_at(c->in.data, start, c->in.len, &end);
        if (k == TAG_INCOMPLETE) {
            pos = start;
            break;
        }
        pos = end;
        if (k == TAG_OPEN && c->depth++ == 1)
            c->stanza_start = start;
        else if (k == TAG_EMPTY && c->depth == 1)
            on_stanza(b, c, (struct str){c->in.data + start, end - start});
        else if (k == TAG_CLOSE && --c->depth == 1)
            on_stanza(b, c, (struct str){c->in.data + c->stanza_start, end - c->stanza_start});
        else if (k == TAG_CLOSE && c->depth <= 0)
            conn_fail(b, c, "the server closed the stream");
    }
    if (c->state == CS_FREE)
        return false;
    size_t keep = c->depth > 1 ? c->stanza_start : pos;
    memmove(c->in.data, c->in.data + keep, c->in.len - keep);
    c->in.len -= keep;
    c->scan = pos - keep;
    c->stanza_start -= c->depth > 1 ? keep : 0;
    return true;
}

static void on_readable(struct bench *b, struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, b->rx, sizeof(b->rx), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_fail(b, c, "%s", n == 0 ? "the server closed the connection" : strerror(errno));
            return;
        }
        bytes_add(&c->in, b->rx, (size_t)n);
        if (!scan_input(b, c) || (size_t)n < sizeof(b->rx))
            return;
    }
}

static void on_connected(struct bench *b, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        conn_fail(b, c, "connect to %s:%d: %s", b->o.host, user_port(b, c->user), strerror(err));
        b->failed = true;
        return;
    }
    c->state = CS_FEATURES;
    send_stream_header(b, c);
}

/* ---- the event loop ------------------------------------------------------------------------ */

static void flush_dirty(struct bench *b)
{
    for (int i = 0; i < b->ndirty; i++) {
        struct conn *c = b->dirty[i];
        c->dirty = false;
        if (c->state != CS_FREE)
            conn_flush(b, c);
    }
    b->ndirty = 0;
}

/* Runs the loop until the deadline (ns), or until done() is true. */
static void run_until(struct bench *b, int64_t deadline, bool (*done)(struct bench *),
                      void (*tick)(struct bench *))
{
    struct epoll_event evs[256];
    for (;;) {
        if (tick != NULL)
            tick(b);
        flush_dirty(b);
        int64_t now = now_ns();
        if (now >= deadline || (done != NULL && done(b)))
            return;
        int ms = tick != NULL ? 1 : (int)((deadline - now) / 1000000 + 1);
        int n = epoll_wait(b->ep, evs, 256, ms > 100 ? 100 : ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->state == CS_CONNECTING && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                on_connected(b, c);
            if (c->state != CS_FREE && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                on_readable(b, c);
            if (c->state != CS_FREE && (evs[i].events & EPOLLOUT))
                conn_flush(b, c);
        }
    }
}

/* ---- modes --------------------------------------------------------------------------------- */

static void on_ready(struct bench *b, struct conn *c)
{
    if (b->o.mode == MODE_LOGINS && b->measuring)
        stats_add(&b->lat, now_ns() - c->t_login);
}

static bool all_ready(struct bench *b)
{
    return b->ready == b->nconns || b->failed;
}

/* Logs every user in (--concurrency at a time) and waits until all sessions are available. */
static void login_all(struct bench *b)
{
    int started = 0;
    int64_t deadline = now_ns() + (int64_t)SETUP_TIMEOUT * 1000000000;
    while (b->ready < b->nconns && !b->failed && now_ns() < deadline) {
        int pending = 0;
        for (int i = 0; i < started; i++)
            pending += b->conns[i].state != CS_READY && b->conns[i].state != CS_FREE;
        while (pending < b->o.concurrency && started < b->nconns) {
            conn_start(b, &b->conns[started], started);
            started++;
            pending++;
        }
        run_until(b, now_ns() + 10000000, all_ready, NULL);
        if (started == b->nconns && b->ready + b->failures >= b->nconns && b->ready < b->nconns)
            break;
    }
    if (b->ready < b->nconns)
        die("only %d of %d sessions became available (%d failed)", b->ready, b->nconns,
            b->failures);
}

static void pair_up(struct bench *b)
{
    for (int i = 0; i + 1 < b->nconns; i += 2) {
        struct conn *x = &b->conns[i], *y = &b->conns[i + 1];
        char name[64];
        x->peer = y;
        y->peer = x;
        user_name(b, y->user, name, sizeof(name));
        snprintf(x->peer_jid, sizeof(x->peer_jid), "%s@%s", name, user_domain(b, y->user));
        user_name(b, x->user, name, sizeof(name));
        snprintf(y->peer_jid, sizeof(y->peer_jid), "%s@%s", name, user_domain(b, x->user));
    }
}

static uint64_t total_inflight(const struct bench *b)
{
    uint64_t n = 0;
    for (int i = 0; i < b->nconns; i++)
        n += (uint64_t)(b->conns[i].inflight > 0 ? b->conns[i].inflight : 0);
    return n;
}

static bool drained(struct bench *b)
{
    return total_inflight(b) == 0;
}

static void rate_tick(struct bench *b)
{
    struct schedule *sc = &b->sched;
    if (!b->sending)
        return;
    uint64_t due = (uint64_t)((double)(now_ns() - sc->t0) * b->o.rate / 1e9);
    while (sc->sent < due) {
        struct conn *c = &b->conns[sc->next];
        sc->next = (sc->next + 1) % b->nconns;
        send_message(b, c, sc->t0 + (int64_t)((double)sc->sent * 1e9 / b->o.rate));
        sc->sent++;
    }
}

struct window {
    int64_t t0, t1;
    double srv_cpu0, srv_cpu1, gen_cpu0, gen_cpu1;
    uint64_t count0, count1;
    double per_s_min, per_s_max;
};

/* The measured seconds, one line each; count points at what is counted. */
static void measure(struct bench *b, struct window *w, const uint64_t *count,
                    void (*tick)(struct bench *), const char *unit)
{
    b->measuring = true;
    w->t0 = now_ns();
    w->srv_cpu0 = servers_cpu_s(&b->o);
    w->gen_cpu0 = self_cpu_s();
    w->count0 = *count;
    w->per_s_min = 1e300;
    printf("%4s %12s %10s %10s %12s\n", "t", unit, "p50 ms", "p99 ms", "servers KiB");
    uint64_t prev = *count;
    int64_t prev_t = w->t0;
    for (int s = 1; s <= b->o.seconds; s++) {
        run_until(b, w->t0 + (int64_t)s * 1000000000, NULL, tick);
        int64_t t = now_ns();
        double rate = (double)(*count - prev) * 1e9 / (double)(t - prev_t);
        w->per_s_min = rate < w->per_s_min ? rate : w->per_s_min;
        w->per_s_max = rate > w->per_s_max ? rate : w->per_s_max;
        printf("%4d %12.0f %10.3f %10.3f %12ld\n", s, rate, stats_quantile(&b->lat, 0.5) / 1e3,
               stats_quantile(&b->lat, 0.99) / 1e3, servers_rss_kib(&b->o));
        fflush(stdout);
        prev = *count;
        prev_t = t;
    }
    b->measuring = false;
    w->t1 = now_ns();
    w->count1 = *count;
    w->srv_cpu1 = servers_cpu_s(&b->o);
    w->gen_cpu1 = self_cpu_s();
}

static void print_result(struct bench *b, const struct window *w, const char *extra)
{
    double secs = (double)(w->t1 - w->t0) / 1e9;
    double srv = w->srv_cpu0 < 0 || w->srv_cpu1 < 0 ? -1 : (w->srv_cpu1 - w->srv_cpu0) / secs;
    printf("RESULT mode=%s rate=%.0f min=%.0f max=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f "
           "mean_ms=%.3f samples=%llu servers_cpu=%.2f generator_cpu=%.2f errors=%llu "
           "prefs_refused=%llu %s\n",
           b->o.mode == MODE_LOGINS ? "logins"
           : b->o.mode == MODE_RATE ? "rate"
                                    : "messages",
           (double)(w->count1 - w->count0) / secs, w->per_s_min, w->per_s_max,
           stats_quantile(&b->lat, 0.5) / 1e3, stats_quantile(&b->lat, 0.99) / 1e3,
           (double)b->lat.max_us / 1e3,
           b->lat.count ? (double)b->lat.sum_us / (double)b->lat.count / 1e3 : 0.0,
           (unsigned long long)b->lat.count, srv, (w->gen_cpu1 - w->gen_cpu0) / secs,
           (unsigned long long)b->errors, (unsigned long long)b->prefs_refused, extra);
}

/* Ends every session: </stream:stream>, then close. */
static void close_all(struct bench *b)
{
    for (int i = 0; i < b->nconns; i++) {
        struct conn *c = &b->conns[i];
        if (c->state != CS_FREE && c->state != CS_CONNECTING) {
            send_str(b, c, "</stream:stream>");
            conn_flush(b, c);
        }
        conn_close(b, c);
        c->dirty = false;
    }
    b->ready = 0;
    b->ndirty = 0;
}

/* Rounds: every user logs in (--concurrency at a time) and stays until all have; then all
 * leave and the servers get --settle seconds to end the sessions. The first round is a
 * warm-up (--warmup 0: none): it fills the SCRAM cache where the salt is stable. */
static int run_logins(struct bench *b)
{
    struct window w = {.per_s_min = 1e300};
    double busy_s = 0, srv = 0, gen = 0;
    uint64_t done = 0;
    printf("%5s %12s %10s %10s %12s\n", "round", "logins/s", "p50 ms", "p99 ms", "servers KiB");
    for (int r = b->o.warmup > 0 ? 0 : 1; r <= b->o.rounds; r++) {
        b->measuring = r > 0;
        double srv0 = servers_cpu_s(&b->o), gen0 = self_cpu_s();
        int64_t t0 = now_ns();
        login_all(b);
        double secs = (double)(now_ns() - t0) / 1e9, rate = b->nconns / secs;
        printf("%5s %12.0f %10.3f %10.3f %12ld\n", r == 0 ? "warm" : "", rate,
               stats_quantile(&b->lat, 0.5) / 1e3, stats_quantile(&b->lat, 0.99) / 1e3,
               servers_rss_kib(&b->o));
        fflush(stdout);
        if (r > 0) {
            busy_s += secs;
            done += (uint64_t)b->nconns;
            srv += servers_cpu_s(&b->o) - srv0;
            gen += self_cpu_s() - gen0;
            w.per_s_min = rate < w.per_s_min ? rate : w.per_s_min;
            w.per_s_max = rate > w.per_s_max ? rate : w.per_s_max;
        }
        close_all(b);
        run_until(b, now_ns() + (int64_t)b->o.settle * 1000000000, NULL, NULL);
    }
    /* print_result() reads rates from the window: present the busy time as one. */
    w.t1 = (int64_t)(busy_s * 1e9);
    w.count1 = done;
    w.srv_cpu0 = b->o.npids > 0 ? 0 : -1;
    w.srv_cpu1 = srv;
    w.gen_cpu1 = gen;
    char extra[128];
    snprintf(extra, sizeof(extra), "users=%d concurrency=%d rounds=%d pbkdf2=%llu iterations=%u",
             b->nconns, b->o.concurrency, b->o.rounds, (unsigned long long)b->scram_full,
             b->scram_iter);
    print_result(b, &w, extra);
    return b->failed || b->errors > 0 ? BENCH_LOSS : BENCH_OK;
}

/* --mode messages and --mode rate. */
static int run_messages(struct bench *b)
{
    struct window w = {0};
    login_all(b);
    pair_up(b);
    printf("# %d sessions available\n", b->ready);
    b->sending = true;
    void (*tick)(struct bench *) = NULL;
    if (b->o.mode == MODE_MESSAGES) {
        for (int i = 0; i < b->nconns; i++)
            for (int k = 0; k < b->o.window; k++)
                send_message(b, &b->conns[i], now_ns());
    } else {
        b->sched.t0 = now_ns();
        tick = rate_tick;
    }
    run_until(b, now_ns() + (int64_t)b->o.warmup * 1000000000, NULL, tick);
    measure(b, &w, &b->received, tick, "msgs/s");
    b->sending = false;
    run_until(b, now_ns() + (int64_t)b->o.drain * 1000000000, drained, NULL);
    uint64_t lost = total_inflight(b);
    char extra[160];
    snprintf(extra, sizeof(extra), "users=%d window=%d target=%d lost=%llu disorder=%llu",
             b->nconns, b->o.mode == MODE_MESSAGES ? b->o.window : 0,
             b->o.mode == MODE_RATE ? b->o.rate : 0, (unsigned long long)lost,
             (unsigned long long)b->disorder);
    print_result(b, &w, extra);
    if (lost > 0)
        fprintf(stderr, "c2s_bench: %llu messages were never delivered\n",
                (unsigned long long)lost);
    return lost > 0 || b->disorder > 0 || b->failed || b->errors > 0 ? BENCH_LOSS : BENCH_OK;
}

static void proc_name(long pid, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(out, (int)cap, f) == NULL)
        snprintf(out, cap, "?");
    out[strcspn(out, "\n")] = '\0';
    if (f != NULL)
        fclose(f);
}

static int run_idle(struct bench *b)
{
    long before = servers_rss_kib(&b->o), each[MAX_PIDS];
    for (int i = 0; i < b->o.npids; i++)
        each[i] = proc_rss_kib(b->o.pids[i]);
    int64_t t0 = now_ns();
    login_all(b);
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("# %d sessions available after %.1f s; settling %d s\n", b->ready, secs, b->o.settle);
    run_until(b, now_ns() + (int64_t)b->o.settle * 1000000000, NULL, NULL);
    long after = servers_rss_kib(&b->o);
    double per = before < 0 || after < 0 ? -1 : (double)(after - before) / b->nconns;
    printf("servers' RSS: %ld KiB before, %ld KiB with %d idle sessions: %.2f KiB per session\n",
           before, after, b->nconns, per);
    /* The split by daemon also goes on the RESULT line (name:KiB,...), so
     * that the script can show where each server's memory is. */
    char split[MAX_PIDS * 48] = "-";
    size_t used = 0;
    for (int i = 0; i < b->o.npids; i++) {
        char name[32];
        long now = proc_rss_kib(b->o.pids[i]);
        double kib = (double)(now - each[i]) / b->nconns;
        proc_name(b->o.pids[i], name, sizeof(name));
        name[strcspn(name, " =,")] = '\0';
        printf("  %-16s pid %-7ld %8ld -> %8ld KiB: %6.2f KiB per session\n", name, b->o.pids[i],
               each[i], now, kib);
        int n = snprintf(split + used, sizeof(split) - used, "%s%s:%.2f", i ? "," : "", name, kib);
        if (n > 0 && (size_t)n < sizeof(split) - used)
            used += (size_t)n;
    }
    printf("RESULT mode=idle sessions=%d rss_before_kib=%ld rss_after_kib=%ld "
           "kib_per_session=%.2f per_daemon=%s login_s=%.2f errors=%llu\n",
           b->nconns, before, after, per, split, secs, (unsigned long long)b->errors);
    return b->failed || b->ready < b->nconns ? BENCH_LOSS : BENCH_OK;
}

/* ---- options and main ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: c2s_bench --port PORT --domain DOMAIN [options]\n"
          "  --mode M            logins, messages (default), rate or idle\n"
          "  --host ADDR         server address, IPv4 (127.0.0.1)\n"
          "  --users N           users PREFIX<first>..PREFIX<first+N-1> (1000); an even number\n"
          "                      for messages and rate: user 2i talks to user 2i+1\n"
          "  --prefix P          user name prefix (u); --first N the first number (1)\n"
          "  --password P        every user's password (benchpass)\n"
          "  --mech M            PLAIN (default) or SCRAM-SHA-1\n"
          "  --no-scram-cache    run PBKDF2 on every SCRAM login, even with a known salt\n"
          "  --concurrency K     logins in flight (50)\n"
          "  --archive D         after bind, set the XEP-0441 archive default to D (always or\n"
          "                      never); a refusal (no XEP-0313 on the server) is counted\n"
          "  --window W          messages in flight per user, mode messages (8)\n"
          "  --rate R            messages/s in total, mode rate (5000)\n"
          "  --seconds S         measured seconds (10); --warmup S before (2); logins:\n"
          "                      --warmup 0 skips the warm-up round\n"
          "  --drain S           seconds to wait for what is in flight at the end (10)\n"
          "  --rounds N          logins: measured rounds, after one warm-up round (3)\n"
          "  --settle S          idle: seconds between the last login and reading RSS;\n"
          "                      logins: pause after each round's logout (3)\n"
          "  --peer-port P       the second user of each pair logs in on this port, as a user\n"
          "                      of --peer-domain D: messages cross two servers (s2s)\n"
          "  --pid PID           a server process: RSS and CPU are summed over these (repeat)\n"
          "  --verbose           show what the first user receives\n",
          f);
}

static long parse_num(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        die("--%s: \"%s\" is not an integer in %ld..%ld", opt, s, min, max);
    return v;
}

/* The index of the option's argument among the words; dies if it is none. */
static int parse_word(const char *opt, const char *s, const char *const *words)
{
    for (int i = 0; words[i] != NULL; i++) {
        if (strcmp(s, words[i]) == 0)
            return i;
    }
    die("--%s: \"%s\" is not a known value (see --help)", opt, s);
}

static const char *const mode_names[] = {"logins", "messages", "rate", "idle", NULL};
static const char *const mech_names[] = {"PLAIN", "SCRAM-SHA-1", NULL};
static const char *const archive_names[] = {"always", "never", NULL};

/* Options with an integer or a string argument, and their defaults. getopt's val is the
 * index plus OPT_INT, or plus OPT_STR. */
#define OPT_INT 256
#define OPT_STR 512
static const struct int_opt {
    const char *name;
    size_t off; /* an int in struct opts */
    long min, max, def;
} int_opts[] = {
    {"port", offsetof(struct opts, port), 1, 65535, 0},
    {"peer-port", offsetof(struct opts, peer_port), 1, 65535, 0},
    {"users", offsetof(struct opts, users), 1, 1000000, 1000},
    {"first", offsetof(struct opts, first), 0, INT_MAX / 2, 1},
    {"concurrency", offsetof(struct opts, concurrency), 1, 100000, 50},
    {"window", offsetof(struct opts, window), 1, 100000, 8},
    {"rate", offsetof(struct opts, rate), 1, 10000000, 5000},
    {"seconds", offsetof(struct opts, seconds), 1, 3600, 10},
    {"warmup", offsetof(struct opts, warmup), 0, 600, 2},
    {"drain", offsetof(struct opts, drain), 1, 600, 10},
    {"settle", offsetof(struct opts, settle), 0, 600, 3},
    {"rounds", offsetof(struct opts, rounds), 1, 1000, 3},
};
static const struct str_opt {
    const char *name;
    size_t off; /* a const char * in struct opts */
    const char *def;
} str_opts[] = {
    {"host", offsetof(struct opts, host), "127.0.0.1"},
    {"domain", offsetof(struct opts, domain), NULL},
    {"prefix", offsetof(struct opts, prefix), "u"},
    {"password", offsetof(struct opts, password), "benchpass"},
    {"peer-domain", offsetof(struct opts, peer_domain), NULL},
};
#define N_INT_OPTS (sizeof(int_opts) / sizeof(int_opts[0]))
#define N_STR_OPTS (sizeof(str_opts) / sizeof(str_opts[0]))

static void parse_opt(struct opts *o, int ch)
{
    if (ch >= OPT_INT && ch < OPT_INT + (int)N_INT_OPTS) {
        const struct int_opt *io = &int_opts[ch - OPT_INT];
        *(int *)((char *)o + io->off) = (int)parse_num(io->name, optarg, io->min, io->max);
    } else if (ch >= OPT_STR && ch < OPT_STR + (int)N_STR_OPTS) {
        *(const char **)((char *)o + str_opts[ch - OPT_STR].off) = optarg;
    } else if (ch == 'm') {
        o->mode = (enum mode)parse_word("mode", optarg, mode_names); /* in enum order */
    } else if (ch == 'M') {
        o->mech = mech_names[parse_word("mech", optarg, mech_names)];
    } else if (ch == 'A') {
        o->archive = archive_names[parse_word("archive", optarg, archive_names)];
    } else if (ch == 'i' && o->npids < MAX_PIDS) {
        o->pids[o->npids++] = parse_num("pid", optarg, 1, INT_MAX);
    } else if (ch == 'C') {
        o->scram_cache = false;
    } else if (ch == 'v') {
        o->verbose = true;
    } else {
        usage(ch == 'h' ? stdout : stderr);
        exit(ch == 'h' ? BENCH_OK : BENCH_SETUP);
    }
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option named[] = {
        {"mode", required_argument, NULL, 'm'},     {"mech", required_argument, NULL, 'M'},
        {"archive", required_argument, NULL, 'A'},  {"pid", required_argument, NULL, 'i'},
        {"no-scram-cache", no_argument, NULL, 'C'}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
    };
    size_t nnamed = sizeof(named) / sizeof(named[0]);
    struct option longopts[sizeof(named) / sizeof(named[0]) + N_INT_OPTS + N_STR_OPTS + 1];
    memcpy(longopts, named, sizeof(named));
    *o = (struct opts){.mech = "PLAIN", .mode = MODE_MESSAGES, .scram_cache = true};
    for (size_t i = 0; i < N_INT_OPTS; i++) {
        longopts[nnamed++] = (struct option){int_opts[i].name, 1, NULL, OPT_INT + (int)i};
        *(int *)((char *)o + int_opts[i].off) = (int)int_opts[i].def;
    }
    for (size_t i = 0; i < N_STR_OPTS; i++) {
        longopts[nnamed++] = (struct option){str_opts[i].name, 1, NULL, OPT_STR + (int)i};
        *(const char **)((char *)o + str_opts[i].off) = str_opts[i].def;
    }
    longopts[nnamed] = (struct option){NULL, 0, NULL, 0};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1)
        parse_opt(o, ch);
    if (optind != argc || o->port == 0 || o->domain == NULL) {
        usage(stderr);
        exit(BENCH_SETUP);
    }
    if ((o->peer_port != 0) != (o->peer_domain != NULL))
        die("--peer-port and --peer-domain go together");
    if ((o->mode == MODE_MESSAGES || o->mode == MODE_RATE) && o->users % 2 != 0)
        die("--users %d: messages and rate need an even number (pairs)", o->users);
}

/* Room for every connection plus a few: the default soft limit of 1024 is too low. */
static void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)need + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)need + 64)
            die("%d connections need more open files than the limit of %llu", need,
                (unsigned long long)rl.rlim_cur);
    }
}

int main(int argc, char **argv)
{
    static struct bench b; /* static: it holds the latency histogram */
    parse_opts(argc, argv, &b.o);
    signal(SIGPIPE, SIG_IGN);
    if (gnutls_global_init() < 0)
        die("gnutls_global_init failed");
    int n = b.o.users;
    raise_nofile(n);
    b.ep = epoll_create1(EPOLL_CLOEXEC);
    b.conns = calloc((size_t)n, sizeof(*b.conns));
    b.dirty = calloc((size_t)n, sizeof(*b.dirty));
    b.keys = calloc((size_t)b.o.users, sizeof(*b.keys));
    if (b.ep < 0 || b.conns == NULL || b.dirty == NULL || b.keys == NULL)
        die("setup: %s", strerror(errno));
    b.nconns = n;
    for (int i = 0; i < n; i++)
        b.conns[i].fd = -1;
    printf("# c2s_bench: mode %s, %s:%d, domain %s, %d users, %s, concurrency %d, window %d, "
           "rate %d, %d s warm-up, %d s measured\n",
           mode_names[b.o.mode], b.o.host, b.o.port, b.o.domain, b.o.users, b.o.mech,
           b.o.concurrency, b.o.window, b.o.rate, b.o.warmup, b.o.seconds);
    fflush(stdout);
    int rc;
    if (b.o.mode == MODE_LOGINS)
        rc = run_logins(&b);
    else if (b.o.mode == MODE_IDLE)
        rc = run_idle(&b);
    else
        rc = run_messages(&b);
    for (int i = 0; i < b.nconns; i++) {
        struct conn *c = &b.conns[i];
        if (c->state != CS_FREE && c->state != CS_CONNECTING) {
            send_str(&b, c, "</stream:stream>");
            conn_flush(&b, c);
        }
        conn_close(&b, c);
        bytes_free(&c->in);
        bytes_free(&c->out);
    }
    return rc;
}
