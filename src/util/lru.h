/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An intrusive string-keyed hash table that also keeps its entries in recency order (an
 * LRU list): the resolution cache and the pin store both need "find by key, mark used,
 * drop the least recently used beyond a bound".
 *
 * Intrusive: the caller embeds a struct pinlet_lru_node in its own entry, points
 * node->key at the entry's key string and gets its entry back with PINLET_LRU_ENTRY().
 * The table allocates nothing per entry and never frees an entry: it only links nodes.
 * The key string belongs to the entry; it must stay valid and unchanged while the node is
 * in the table. Keys compare as plain C strings (strcmp); at most one node per key.
 *
 * Buckets: FNV-1a, chained, a power of two. init sizes the table for `expected` entries
 * (about one per bucket, at most 2^20 buckets up front so that a huge bound costs no huge
 * table before it fills); insert doubles the buckets when the average chain passes two
 * entries. A failed growth is not an error: chains just get longer.
 *
 * Not thread-safe: the caller serializes every call on one table (its own lock).
 */
#pragma once

#include <stddef.h>

/* Embedded in the caller's entry. Only key is the caller's to set (before insert). */
struct pinlet_lru_node {
        const char *key;                     /* borrowed from the entry */
        struct pinlet_lru_node *hnext;       /* bucket chain */
        struct pinlet_lru_node *prev, *next; /* recency: prev is newer, next is older */
};

struct pinlet_lru {
        struct pinlet_lru_node **buckets; /* owned: the only allocation of the table */
        size_t n_buckets;                 /* power of two */
        size_t size;
        struct pinlet_lru_node *newest, *oldest;
};

/* The entry of type `type` whose member `member` is node; NULL when node is NULL. */
#define PINLET_LRU_ENTRY(node, type, member)                                                 \
        ({                                                                                   \
                struct pinlet_lru_node *_n_ = (node);                                        \
                _n_ ? (type *)(void *)((char *)_n_ - offsetof(type, member)) : (type *)NULL; \
        })

/* Sets up an empty table sized for about expected entries. Returns 0 or -ENOMEM. */
int pinlet_lru_init(struct pinlet_lru *l, size_t expected);

/* Frees the buckets only: the entries still linked are the caller's (free them first, by
 * walking from pinlet_lru_newest()). Leaves an empty table that must be init'ed again
 * before use. Accepts a zeroed, never init'ed table. */
void pinlet_lru_done(struct pinlet_lru *l);

/* The node with this key, or NULL. Does not change the recency order. */
struct pinlet_lru_node *pinlet_lru_find(const struct pinlet_lru *l, const char *key);

/* Links node (node->key set, no node with that key in the table) as the most recent. */
void pinlet_lru_insert(struct pinlet_lru *l, struct pinlet_lru_node *node);

/* Makes a node of the table the most recent. */
void pinlet_lru_touch(struct pinlet_lru *l, struct pinlet_lru_node *node);

/* Unlinks a node of the table; the caller frees its entry afterwards if it wants. */
void pinlet_lru_remove(struct pinlet_lru *l, struct pinlet_lru_node *node);

static inline size_t pinlet_lru_size(const struct pinlet_lru *l)
{
        return l->size;
}

/*
 * Walking in recency order. To remove (and free) the current node while walking, take
 * the next one first:
 *
 *   for (n = pinlet_lru_oldest(l); n; n = next) {
 *           next = pinlet_lru_newer(n);
 *           ... pinlet_lru_remove(l, n); free the entry ...
 *   }
 *
 * Touching or inserting while walking changes the order under the walk: don't.
 */
static inline struct pinlet_lru_node *pinlet_lru_oldest(const struct pinlet_lru *l)
{
        return l->oldest;
}

static inline struct pinlet_lru_node *pinlet_lru_newest(const struct pinlet_lru *l)
{
        return l->newest;
}

static inline struct pinlet_lru_node *pinlet_lru_newer(const struct pinlet_lru_node *node)
{
        return node->prev;
}

static inline struct pinlet_lru_node *pinlet_lru_older(const struct pinlet_lru_node *node)
{
        return node->next;
}
