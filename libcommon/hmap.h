/* SPDX-License-Identifier: MIT */
/* A string-keyed hash map that grows with its contents. Keys are copied;
 * values are borrowed pointers the map never frees. */
#ifndef PL_HMAP_H
#define PL_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hmap;

struct hmap_iter {
    size_t bucket;
    const void *entry;
};

struct hmap *hmap_new(void);
/* Frees the map and its key copies (not the values); sets *m to NULL. */
void hmap_free(struct hmap **m);

/* Returns the value for key, or NULL when absent. */
void *hmap_get(const struct hmap *m, const char *key);
void *hmap_getn(const struct hmap *m, const char *key, size_t len);
/* Sets key to value (not NULL), replacing any previous value, which is
 * returned (NULL if there was none). */
void *hmap_put(struct hmap *m, const char *key, void *value);
/* Removes key; returns its value or NULL if it was absent. */
void *hmap_del(struct hmap *m, const char *key);
size_t hmap_count(const struct hmap *m);

/* Iteration in no particular order; the map must not change meanwhile:
 *   struct hmap_iter it = {0}; while (hmap_next(m, &it, &k, &v)) ... */
bool hmap_next(const struct hmap *m, struct hmap_iter *it, const char **key_r, void **value_r);

/* The 64-bit hash the map uses, seeded per process. */
uint64_t hmap_hash(const struct hmap *m, const char *key, size_t len);
/* A hash with a fixed seed: the same on every host and run (used where
 * several processes must agree, e.g. the router's rendezvous hashing). */
uint64_t hash_stable(const void *data, size_t len, uint64_t seed);

#endif
