/* SPDX-License-Identifier: Apache-2.0 */
/*
 * answer.endpoint: the endpoint the registry step reports (a mirror, from hosts.toml) when
 * this call asked the registry; the registry's API host otherwise (a cache hit); an owned
 * string that outlives the query's reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "ref/ref.h"
#include "registry/registry.h"
#include "resolve/resolve.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"

static int calls;

static int mirror_step(void *ctx, const struct pinlet_ref *ref,
                       const struct pinlet_registry_auth *auth, int64_t deadline_ms,
                       struct pinlet_resolution *ret, struct pinlet_error **err)
{
        calls++;
        ret->digest = strdup(D1);
        ret->endpoint = strdup("http://mirror.example:5000");
        return ret->digest && ret->endpoint ? 0 : -ENOMEM;
}

static void test_endpoint(void **state)
{
        const struct pinlet_cache_options co = { .ttl_ms = 60000, .max_entries = 16 };
        _cleanup_(pinlet_resolver_freep) struct pinlet_resolver *r = NULL;
        struct pinlet_resolver_options o = { .registry_fn = mirror_step };
        struct pinlet_cache *cache = NULL;
        struct pinlet_resolve_answer a = { .registry_ms = -1 };
        struct pinlet_error *err = NULL;
        struct pinlet_ref *ref = NULL;
        struct pinlet_resolve_query q = { .purpose = PINLET_RESOLVE_STATUS, .may_block = true };
        char *key;

        assert_int_equal(pinlet_cache_new(&co, &cache), 0);
        o.cache = cache;
        assert_int_equal(pinlet_resolver_new(&o, &r, &err), 0);
        assert_int_equal(pinlet_ref_parse("docker.io/library/nginx:1.25", &ref, &err), 0);
        key = pinlet_ref_key(ref);
        assert_non_null(key);
        q.ref = ref;
        q.key = key;

        /* asked the registry: the step's endpoint */
        assert_int_equal(pinlet_resolver_resolve(r, &q, &a), 0);
        assert_int_equal(calls, 1);
        assert_string_equal(a.digest, D1);
        assert_string_equal(a.endpoint, "http://mirror.example:5000");
        pinlet_resolve_answer_done(&a);

        /* a cache hit asks nobody: the registry's API host, owned by the answer */
        assert_int_equal(pinlet_resolver_resolve(r, &q, &a), 0);
        assert_int_equal(calls, 1);
        assert_int_equal(a.source, PINLET_SOURCE_CACHE);
        pinlet_ref_free(ref);
        assert_string_equal(a.endpoint, "registry-1.docker.io");
        pinlet_resolve_answer_done(&a);
        assert_null(a.endpoint);

        free(key);
        pinlet_resolver_free(TAKE_PTR(r));
        pinlet_cache_free(cache);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_endpoint),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
