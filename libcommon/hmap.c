/* SPDX-License-Identifier: MIT */
/* Separate chaining with doubling at load factor 1; the seed is random per
 * map so that keys chosen by peers cannot be aimed at one bucket. */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"
#include "attr.h"

struct entry {
    struct entry *next;
    uint64_t hash;
    void *value;
    size_t len;
    char key[];
};

struct hmap {
    struct entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    uint64_t seed;
};

static inline uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Reads 8 bytes as little-endian whatever the host, so hosts agree. */
static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t k = 0;
    for (int i = 0; i < 8; i++)
        k |= (uint64_t)p[i] << (8 * i);
    return k;
}

uint64_t hash_stable(const void *data, size_t len, uint64_t seed)
{
    /* 8 bytes at a time, multiply-rotate, finished with a murmur3 mixer. */
    const unsigned char *p = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
    while (len >= 8) {
        uint64_t k = load_le64(p);
        h = rotl(h ^ mix(k), 27) * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
        p += 8;
        len -= 8;
    }
    uint64_t k = 0;
    for (size_t i = 0; i < len; i++)
        k |= (uint64_t)p[i] << (8 * i);
    h ^= mix(k + len);
    return mix(h);
}

uint64_t hmap_hash(const struct hmap *m, const char *key, size_t len)
{
    return hash_stable(key, len, m->seed);
}

struct hmap *hmap_new(void)
{
    struct hmap *m = xcalloc(1, sizeof(*m));
    m->nbuckets = 16;
    m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
    if (getrandom(&m->seed, sizeof(m->seed), GRND_NONBLOCK) != sizeof(m->seed))
        m->seed = (uint64_t)(uintptr_t)m ^ 0x5bd1e995u;
    return m;
}

void hmap_free(struct hmap **mp)
{
    struct hmap *m = *mp;
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (struct entry *e = m->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(m->buckets);
    free(m);
    *mp = NULL;
}

static struct entry **find(const struct hmap *m, const char *key, size_t len, uint64_t h)
{
    struct entry **pe = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pe != NULL; pe = &(*pe)->next) {
        struct entry *e = *pe;
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
            break;
    }
    return pe;
}

void *hmap_getn(const struct hmap *m, const char *key, size_t len)
{
    struct entry *e = *find(m, key, len, hmap_hash(m, key, len));
    return e ? e->value : NULL;
}

void *hmap_get(const struct hmap *m, const char *key)
{
    return hmap_getn(m, key, strlen(key));
}

static void grow(struct hmap *m)
{
    size_t n = m->nbuckets * 2;
    struct entry **b = xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (struct entry *e = m->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            struct entry **slot = &b[e->hash & (n - 1)];
            e->next = *slot;
            *slot = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void *hmap_put(struct hmap *m, const char *key, void *value)
{
    PL_ASSERT(value != NULL);
    size_t len = strlen(key);
    uint64_t h = hmap_hash(m, key, len);
    struct entry **pe = find(m, key, len, h);
    if (*pe != NULL) {
        void *old = (*pe)->value;
        (*pe)->value = value;
        return old;
    }
    struct entry *e = xmalloc(sizeof(*e) + len + 1);
    e->next = NULL;
    e->hash = h;
    e->value = value;
    e->len = len;
    memcpy(e->key, key, len + 1);
    *pe = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return NULL;
}

void *hmap_del(struct hmap *m, const char *key)
{
    size_t len = strlen(key);
    struct entry **pe = find(m, key, len, hmap_hash(m, key, len));
    struct entry *e = *pe;
    if (e == NULL)
        return NULL;
    void *v = e->value;
    *pe = e->next;
    free(e);
    m->count--;
    return v;
}

size_t hmap_count(const struct hmap *m)
{
    return m->count;
}

bool hmap_next(const struct hmap *m, struct hmap_iter *it, const char **key_r, void **value_r)
{
    const struct entry *e = it->entry;
    if (e != NULL) {
        e = e->next;
        if (e == NULL)
            it->bucket++;
    }
    while (e == NULL && it->bucket < m->nbuckets) {
        e = m->buckets[it->bucket];
        if (e == NULL)
            it->bucket++;
    }
    it->entry = e;
    if (e == NULL)
        return false;
    if (key_r)
        *key_r = e->key;
    if (value_r)
        *value_r = e->value;
    return true;
}
