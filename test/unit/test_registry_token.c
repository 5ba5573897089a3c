/* SPDX-License-Identifier: Apache-2.0 */
/* Token responses and the token cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "registry/token.h"

static int parse(const char *json, struct pinlet_token *t)
{
        struct pinlet_error *err = NULL;
        int r = pinlet_token_parse(json, strlen(json), t, &err);

        if (r < 0) {
                assert_non_null(err);
                /* messages never echo the token */
                assert_null(strstr(pinlet_error_message(err, r), "SECRET"));
        }
        pinlet_error_free(err);
        return r;
}

static void test_parse(void **state)
{
        struct pinlet_token t;

        assert_int_equal(parse("{\"token\":\"abc.def\",\"expires_in\":300,"
                               "\"issued_at\":\"2026-11-26T10:00:00Z\"}",
                               &t),
                         0);
        assert_string_equal(t.token, "abc.def");
        assert_int_equal(t.expires_in, 300);
        pinlet_token_clear(&t);
        assert_null(t.token);

        /* OAuth2 form; default lifetime */
        assert_int_equal(parse("{\"access_token\":\"xyz\"}", &t), 0);
        assert_string_equal(t.token, "xyz");
        assert_int_equal(t.expires_in, PINLET_TOKEN_DEFAULT_TTL);
        pinlet_token_clear(&t);

        /* token wins over access_token; an empty token falls back */
        assert_int_equal(parse("{\"token\":\"a\",\"access_token\":\"b\"}", &t), 0);
        assert_string_equal(t.token, "a");
        pinlet_token_clear(&t);
        assert_int_equal(parse("{\"token\":\"\",\"access_token\":\"b\"}", &t), 0);
        assert_string_equal(t.token, "b");
        pinlet_token_clear(&t);

        /* zero/negative lifetimes get the default; issued_at is not read at all */
        assert_int_equal(
                parse("{\"token\":\"a\",\"expires_in\":0,\"issued_at\":\"yesterday\"}", &t), 0);
        assert_int_equal(t.expires_in, PINLET_TOKEN_DEFAULT_TTL);
        pinlet_token_clear(&t);
}

static void test_parse_errors(void **state)
{
        static const char *bad[] = {
                "",
                "not json",
                "[]",
                "{}",
                "{\"token\":42}",
                "{\"token\":\"\"}",
                "{\"token\":\"SECRET with space\"}",
                "{\"token\":\"SECRET\\n\"}",
                "{\"token\":\"SECRET\\u0000x\"}",
                "{\"token\":\"SECRET\",\"expires_in\":\"60\"}",
                "{\"token\":\"SECRET\",\"token\":\"SECRET2\"}",
        };
        struct pinlet_token t;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parse(bad[i], &t) != PINLET_EPROTO)
                        fail_msg("'%s' was accepted", bad[i]);
}

static void test_cache(void **state)
{
        struct pinlet_token_cache c;
        char *t = NULL, key[32];

        assert_int_equal(pinlet_token_cache_init(&c, 0), 0);
        assert_int_equal(pinlet_token_cache_get(&c, "k", 0, &t), 0);

        /* 60 s lifetime: kept until 50 s (10 s margin) */
        assert_int_equal(pinlet_token_cache_put(&c, "k", "tok", 1000, 60000), 0);
        assert_int_equal(pinlet_token_cache_get(&c, "k", 50999, &t), 1);
        assert_string_equal(t, "tok");
        free(t);
        assert_int_equal(pinlet_token_cache_get(&c, "k", 51000, &t), 0);
        assert_int_equal(pinlet_token_cache_size(&c), 0); /* the expired entry is gone */

        /* short lifetimes keep half */
        assert_int_equal(pinlet_token_cache_put(&c, "s", "short", 0, 10000), 0);
        assert_int_equal(pinlet_token_cache_get(&c, "s", 4999, &t), 1);
        free(t);
        assert_int_equal(pinlet_token_cache_get(&c, "s", 5000, &t), 0);

        /* replace, drop */
        assert_int_equal(pinlet_token_cache_put(&c, "k", "one", 0, 60000), 0);
        assert_int_equal(pinlet_token_cache_put(&c, "k", "two", 0, 60000), 0);
        assert_int_equal(pinlet_token_cache_size(&c), 1);
        assert_int_equal(pinlet_token_cache_get(&c, "k", 1, &t), 1);
        assert_string_equal(t, "two");
        free(t);
        pinlet_token_cache_drop(&c, "k");
        assert_int_equal(pinlet_token_cache_get(&c, "k", 1, &t), 0);

        /* bounded: the least recently used entry goes */
        for (int i = 0; i < PINLET_TOKEN_CACHE_MAX; i++) {
                snprintf(key, sizeof(key), "k%d", i);
                assert_int_equal(pinlet_token_cache_put(&c, key, "t", 0, 60000), 0);
        }
        assert_int_equal(pinlet_token_cache_get(&c, "k0", 1, &t), 1); /* k0 now recent */
        free(t);
        assert_int_equal(pinlet_token_cache_put(&c, "new", "t", 0, 60000), 0);
        assert_int_equal(pinlet_token_cache_size(&c), PINLET_TOKEN_CACHE_MAX);
        assert_int_equal(pinlet_token_cache_get(&c, "k1", 1, &t), 0);
        assert_int_equal(pinlet_token_cache_get(&c, "k0", 1, &t), 1);
        free(t);
        pinlet_token_cache_done(&c);
}

/* The bound is the caller's: a cache of 2 keeps the 2 most recently used tokens, and an
 * expired token leaves on the next put before anything still valid. */
static void test_cache_small_bound(void **state)
{
        struct pinlet_token_cache c;
        char *t = NULL;

        assert_int_equal(pinlet_token_cache_init(&c, 2), 0);
        assert_int_equal(pinlet_token_cache_put(&c, "a", "ta", 0, 60000), 0);
        assert_int_equal(pinlet_token_cache_put(&c, "b", "tb", 0, 60000), 0);
        assert_int_equal(pinlet_token_cache_get(&c, "a", 1, &t), 1); /* b is now the LRU */
        free(t);
        assert_int_equal(pinlet_token_cache_put(&c, "c", "tc", 0, 60000), 0);
        assert_int_equal(pinlet_token_cache_size(&c), 2);
        assert_int_equal(pinlet_token_cache_get(&c, "b", 1, &t), 0);
        assert_int_equal(pinlet_token_cache_get(&c, "a", 1, &t), 1);
        free(t);

        /* "short" expires at 5 s; at 6 s a put drops it, not the older entry "c" that the LRU
         * order alone would have evicted */
        pinlet_token_cache_drop(&c, "a");
        assert_int_equal(pinlet_token_cache_put(&c, "short", "ts", 0, 10000), 0);
        assert_int_equal(pinlet_token_cache_put(&c, "d", "td", 6000, 60000), 0);
        assert_int_equal(pinlet_token_cache_size(&c), 2);
        assert_int_equal(pinlet_token_cache_get(&c, "c", 6001, &t), 1);
        free(t);
        assert_int_equal(pinlet_token_cache_get(&c, "d", 6001, &t), 1);
        free(t);
        pinlet_token_cache_done(&c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_cache),
                cmocka_unit_test(test_cache_small_bound),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
