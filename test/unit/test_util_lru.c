/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/lru.h"

/* The node is not the first member, so PINLET_LRU_ENTRY has an offset to undo. */
struct item {
        int id;
        char key[32];
        struct pinlet_lru_node node;
};

static struct item *item_new(int id)
{
        struct item *it = calloc(1, sizeof(*it));

        assert_non_null(it);
        it->id = id;
        snprintf(it->key, sizeof(it->key), "key-%d", id);
        it->node.key = it->key;
        return it;
}

static struct item *find(const struct pinlet_lru *l, const char *key)
{
        return PINLET_LRU_ENTRY(pinlet_lru_find(l, key), struct item, node);
}

/* The ids from oldest to newest, compared with want; also checks the walk the other way
 * and the size. */
static void assert_order(const struct pinlet_lru *l, const int *want, size_t n)
{
        struct pinlet_lru_node *node;
        size_t i = 0;

        assert_int_equal(pinlet_lru_size(l), n);
        for (node = pinlet_lru_oldest(l); node; node = pinlet_lru_newer(node), i++) {
                assert_true(i < n);
                assert_int_equal(PINLET_LRU_ENTRY(node, struct item, node)->id, want[i]);
        }
        assert_int_equal(i, n);
        for (node = pinlet_lru_newest(l); node; node = pinlet_lru_older(node)) {
                assert_true(i > 0);
                assert_int_equal(PINLET_LRU_ENTRY(node, struct item, node)->id, want[--i]);
        }
        assert_int_equal(i, 0);
}

/* Removes and frees every item, newest first (what the modules' free functions do). */
static void free_all(struct pinlet_lru *l)
{
        struct pinlet_lru_node *node, *next;

        for (node = pinlet_lru_newest(l); node; node = next) {
                next = pinlet_lru_older(node);
                pinlet_lru_remove(l, node);
                free(PINLET_LRU_ENTRY(node, struct item, node));
        }
        assert_int_equal(pinlet_lru_size(l), 0);
        assert_null(pinlet_lru_oldest(l));
        assert_null(pinlet_lru_newest(l));
        pinlet_lru_done(l);
}

static void test_basic_order(void **state)
{
        struct pinlet_lru l;
        struct item *a = item_new(1), *b = item_new(2), *c = item_new(3);

        assert_int_equal(pinlet_lru_init(&l, 0), 0);
        assert_int_equal(pinlet_lru_size(&l), 0);
        assert_null(pinlet_lru_oldest(&l));
        assert_null(pinlet_lru_find(&l, "key-1"));

        pinlet_lru_insert(&l, &a->node);
        pinlet_lru_insert(&l, &b->node);
        pinlet_lru_insert(&l, &c->node);
        assert_order(&l, (const int[]){ 1, 2, 3 }, 3);
        assert_ptr_equal(find(&l, "key-1"), a);
        assert_ptr_equal(find(&l, "key-2"), b);
        assert_ptr_equal(find(&l, "key-3"), c);
        assert_null(find(&l, "key-4"));
        assert_null(find(&l, "key-"));
        assert_null(find(&l, "key-11"));
        /* find does not change the order */
        assert_order(&l, (const int[]){ 1, 2, 3 }, 3);

        pinlet_lru_touch(&l, &a->node);
        assert_order(&l, (const int[]){ 2, 3, 1 }, 3);
        pinlet_lru_touch(&l, &a->node); /* already the newest */
        assert_order(&l, (const int[]){ 2, 3, 1 }, 3);
        pinlet_lru_touch(&l, &c->node); /* from the middle */
        assert_order(&l, (const int[]){ 2, 1, 3 }, 3);

        pinlet_lru_remove(&l, &a->node); /* middle */
        free(a);
        assert_null(find(&l, "key-1"));
        assert_order(&l, (const int[]){ 2, 3 }, 2);
        pinlet_lru_remove(&l, &c->node); /* newest */
        free(c);
        assert_order(&l, (const int[]){ 2 }, 1);
        assert_ptr_equal(pinlet_lru_oldest(&l), pinlet_lru_newest(&l));
        pinlet_lru_touch(&l, &b->node); /* the only one */
        assert_order(&l, (const int[]){ 2 }, 1);

        /* a removed key can come back */
        a = item_new(1);
        pinlet_lru_insert(&l, &a->node);
        assert_order(&l, (const int[]){ 2, 1 }, 2);
        assert_ptr_equal(find(&l, "key-1"), a);
        free_all(&l);
}

/* Evicting the oldest beyond a bound, as the cache and the pin store do. */
static void test_evict_oldest(void **state)
{
        struct pinlet_lru l;
        struct pinlet_lru_node *oldest;
        int evicted[8], n_evicted = 0;

        assert_int_equal(pinlet_lru_init(&l, 3), 0);
        for (int id = 1; id <= 6; id++) {
                struct item *it = item_new(id);

                pinlet_lru_insert(&l, &it->node);
                if (id == 4)
                        pinlet_lru_touch(&l, &find(&l, "key-2")->node);
                while (pinlet_lru_size(&l) > 3 && (oldest = pinlet_lru_oldest(&l))) {
                        pinlet_lru_remove(&l, oldest);
                        evicted[n_evicted++] = PINLET_LRU_ENTRY(oldest, struct item, node)->id;
                        free(PINLET_LRU_ENTRY(oldest, struct item, node));
                }
        }
        assert_int_equal(n_evicted, 3);
        assert_int_equal(evicted[0], 1);
        assert_int_equal(evicted[1], 3); /* 2 was touched after 3 */
        assert_int_equal(evicted[2], 4);
        assert_order(&l, (const int[]){ 2, 5, 6 }, 3);
        free_all(&l);
}

/* More keys than buckets (no growth yet at load 2): chains hold several nodes; removing
 * from the head, middle and end of chains keeps every other key findable. */
static void test_collisions(void **state)
{
        enum { N = 32 };
        struct item *items[N];
        struct pinlet_lru l;
        int want[N], n_want = 0;

        assert_int_equal(pinlet_lru_init(&l, 0), 0);
        assert_int_equal(l.n_buckets, 16);
        for (int i = 0; i < N; i++) {
                items[i] = item_new(i);
                pinlet_lru_insert(&l, &items[i]->node);
        }
        assert_int_equal(l.n_buckets, 16); /* 32 keys in 16 buckets: collisions for sure */
        for (int i = 0; i < N; i++)
                assert_ptr_equal(find(&l, items[i]->key), items[i]);

        for (int i = 0; i < N; i++)
                if (i % 3 == 1) {
                        pinlet_lru_remove(&l, &items[i]->node);
                        free(items[i]);
                        items[i] = NULL;
                } else
                        want[n_want++] = i;
        for (int i = 0; i < N; i++) {
                char key[32];

                snprintf(key, sizeof(key), "key-%d", i);
                assert_ptr_equal(find(&l, key), items[i]);
        }
        assert_order(&l, want, (size_t)n_want);
        free_all(&l);
}

/* Removing (and freeing) nodes while walking in either direction. */
static void test_remove_while_iterating(void **state)
{
        struct pinlet_lru_node *node, *next;
        struct pinlet_lru l;

        assert_int_equal(pinlet_lru_init(&l, 8), 0);
        for (int id = 0; id < 10; id++)
                pinlet_lru_insert(&l, &item_new(id)->node);

        /* oldest first, dropping the odd ids */
        for (node = pinlet_lru_oldest(&l); node; node = next) {
                struct item *it = PINLET_LRU_ENTRY(node, struct item, node);

                next = pinlet_lru_newer(node);
                if (it->id % 2) {
                        pinlet_lru_remove(&l, node);
                        free(it);
                }
        }
        assert_order(&l, (const int[]){ 0, 2, 4, 6, 8 }, 5);
        assert_null(find(&l, "key-3"));
        assert_non_null(find(&l, "key-4"));

        /* newest first, dropping 8 (the newest) and 0 (the oldest) */
        for (node = pinlet_lru_newest(&l); node; node = next) {
                struct item *it = PINLET_LRU_ENTRY(node, struct item, node);

                next = pinlet_lru_older(node);
                if (it->id == 8 || it->id == 0) {
                        pinlet_lru_remove(&l, node);
                        free(it);
                }
        }
        assert_order(&l, (const int[]){ 2, 4, 6 }, 3);
        free_all(&l);
}

/* Far more keys than the table was sized for: buckets double, every key stays findable
 * and the recency order survives the rehash. */
static void test_growth(void **state)
{
        enum { N = 10000 };
        struct pinlet_lru l;
        struct pinlet_lru_node *node;
        int id = 0;

        assert_int_equal(pinlet_lru_init(&l, 0), 0);
        for (int i = 0; i < N; i++) {
                pinlet_lru_insert(&l, &item_new(i)->node);
                /* the load bound holds at every step */
                assert_true(pinlet_lru_size(&l) <= 2 * l.n_buckets);
        }
        assert_int_equal(pinlet_lru_size(&l), N);
        assert_true(l.n_buckets >= N / 2);
        assert_int_equal(l.n_buckets & (l.n_buckets - 1), 0);
        for (int i = 0; i < N; i++) {
                char key[32];

                snprintf(key, sizeof(key), "key-%d", i);
                assert_non_null(find(&l, key));
                assert_int_equal(find(&l, key)->id, i);
        }
        for (node = pinlet_lru_oldest(&l); node; node = pinlet_lru_newer(node))
                assert_int_equal(PINLET_LRU_ENTRY(node, struct item, node)->id, id++);
        assert_int_equal(id, N);

        /* touch the oldest: it becomes the newest, the next one the oldest */
        pinlet_lru_touch(&l, pinlet_lru_oldest(&l));
        assert_int_equal(PINLET_LRU_ENTRY(pinlet_lru_newest(&l), struct item, node)->id, 0);
        assert_int_equal(PINLET_LRU_ENTRY(pinlet_lru_oldest(&l), struct item, node)->id, 1);
        free_all(&l);
}

/* The table is sized for the expected count up front, capped at 2^20 buckets. */
static void test_init_sizing(void **state)
{
        struct pinlet_lru l = { 0 };

        pinlet_lru_done(&l); /* a zeroed table is fine to done */
        assert_int_equal(pinlet_lru_init(&l, 1), 0);
        assert_int_equal(l.n_buckets, 16);
        pinlet_lru_done(&l);
        assert_null(l.buckets);
        assert_int_equal(pinlet_lru_init(&l, 1000), 0);
        assert_int_equal(l.n_buckets, 1024);
        pinlet_lru_done(&l);
        assert_int_equal(pinlet_lru_init(&l, 1024), 0);
        assert_int_equal(l.n_buckets, 1024);
        pinlet_lru_done(&l);
        assert_int_equal(pinlet_lru_init(&l, SIZE_MAX), 0);
        assert_int_equal(l.n_buckets, (size_t)1 << 20);
        pinlet_lru_done(&l);
        assert_null(PINLET_LRU_ENTRY(NULL, struct item, node));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_basic_order), cmocka_unit_test(test_evict_oldest),
                cmocka_unit_test(test_collisions),  cmocka_unit_test(test_remove_while_iterating),
                cmocka_unit_test(test_growth),      cmocka_unit_test(test_init_sizing),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
