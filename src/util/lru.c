/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/lru.h"

#define MIN_BUCKETS 16
#define INITIAL_MAX ((size_t)1 << 20) /* buckets allocated up front, at most */
#define GROW_LOAD   2                 /* grow when size > GROW_LOAD * n_buckets */

/* 64-bit FNV-1a: short keys (references), no adversary who could pick colliding keys
 * cheaply enough to matter at these bounds, and a few lines. */
static uint64_t hash(const char *s)
{
        uint64_t h = 1469598103934665603ULL;

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return h;
}

static struct pinlet_lru_node **bucket(const struct pinlet_lru *l, const char *key)
{
        return &l->buckets[hash(key) & (l->n_buckets - 1)];
}

int pinlet_lru_init(struct pinlet_lru *l, size_t expected)
{
        size_t n = MIN_BUCKETS;

        while (n < expected && n < INITIAL_MAX)
                n <<= 1;
        *l = (struct pinlet_lru){ 0 };
        l->buckets = calloc(n, sizeof(*l->buckets));
        if (!l->buckets)
                return -ENOMEM;
        l->n_buckets = n;
        return 0;
}

void pinlet_lru_done(struct pinlet_lru *l)
{
        free(l->buckets);
        *l = (struct pinlet_lru){ 0 };
}

struct pinlet_lru_node *pinlet_lru_find(const struct pinlet_lru *l, const char *key)
{
        struct pinlet_lru_node *n = *bucket(l, key);

        while (n && strcmp(n->key, key) != 0)
                n = n->hnext;
        return n;
}

/* Doubles the buckets and rehashes every node. On allocation failure the old buckets
 * stay: lookups only get slower. */
static void grow(struct pinlet_lru *l)
{
        struct pinlet_lru_node **old = l->buckets;
        size_t n_old = l->n_buckets, n = n_old * 2;

        if (n < n_old)
                return;
        l->buckets = calloc(n, sizeof(*l->buckets));
        if (!l->buckets) {
                l->buckets = old;
                return;
        }
        l->n_buckets = n;
        for (size_t i = 0; i < n_old; i++)
                for (struct pinlet_lru_node *node = old[i], *next; node; node = next) {
                        struct pinlet_lru_node **b = bucket(l, node->key);

                        next = node->hnext;
                        node->hnext = *b;
                        *b = node;
                }
        free(old);
}

static void list_unlink(struct pinlet_lru *l, struct pinlet_lru_node *node)
{
        if (node->prev)
                node->prev->next = node->next;
        else
                l->newest = node->next;
        if (node->next)
                node->next->prev = node->prev;
        else
                l->oldest = node->prev;
        node->prev = node->next = NULL;
}

static void list_push_newest(struct pinlet_lru *l, struct pinlet_lru_node *node)
{
        node->prev = NULL;
        node->next = l->newest;
        if (l->newest)
                l->newest->prev = node;
        l->newest = node;
        if (!l->oldest)
                l->oldest = node;
}

void pinlet_lru_insert(struct pinlet_lru *l, struct pinlet_lru_node *node)
{
        struct pinlet_lru_node **b;

        if (l->size >= GROW_LOAD * l->n_buckets)
                grow(l);
        b = bucket(l, node->key);
        node->hnext = *b;
        *b = node;
        list_push_newest(l, node);
        l->size++;
}

void pinlet_lru_touch(struct pinlet_lru *l, struct pinlet_lru_node *node)
{
        if (l->newest == node)
                return;
        list_unlink(l, node);
        list_push_newest(l, node);
}

void pinlet_lru_remove(struct pinlet_lru *l, struct pinlet_lru_node *node)
{
        struct pinlet_lru_node **p = bucket(l, node->key);

        /* By identity, not by key: the node is known to be in this chain. */
        while (*p != node)
                p = &(*p)->hnext;
        *p = node->hnext;
        node->hnext = NULL;
        list_unlink(l, node);
        l->size--;
}
