/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The resolver on its own: a fake registry step, the real cache (with an injected clock
 * for entry ages) and a memory-only pin store. Each test asks pinlet_resolver_resolve()
 * directly and checks the answer's digest, source, fallback flag and error, and how often
 * the registry was asked.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "util/time.h"
#include "pins/pins.h"
#include "ref/ref.h"
#include "registry/registry.h"
#include "resolve/resolve.h"
#include "util/log.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

/* resolve.c's bound on the failing-registry table (FAILING_MAX). */
#define FAILING_MAX 1024

/* ---- fake registry step ---- */

struct fake {
        atomic_int calls;
        const char *digest; /* answer */
        int fail;           /* < 0: fail with this class */
        bool last_auth;
        char last_user[64];
        char last_pass[64];
};

static int fake_step(void *ctx, const struct pinlet_ref *ref,
                     const struct pinlet_registry_auth *auth, int64_t deadline_ms,
                     struct pinlet_resolution *ret, struct pinlet_error **err)
{
        struct fake *f = ctx;

        f->calls++;
        f->last_auth = auth != NULL;
        snprintf(f->last_user, sizeof(f->last_user), "%s",
                 auth && auth->username ? auth->username : "");
        snprintf(f->last_pass, sizeof(f->last_pass), "%s",
                 auth && auth->password ? auth->password : "");
        if (f->fail < 0)
                return pinlet_error_set(err, f->fail, "resolve %s: registry %s: fake failure %s",
                                        ref->path, ref->domain, pinlet_error_class(f->fail));
        ret->digest = strdup(f->digest);
        return ret->digest ? 0 : -ENOMEM;
}

/* ---- fixture ---- */

static int64_t fake_now;
static int64_t fake_clock(void *ctx)
{
        (void)ctx;
        return fake_now;
}

struct fx {
        struct pinlet_cache *cache;
        struct pinlet_pins *pins;
        struct pinlet_resolver *r;
        struct fake fake;
};

static void fx_cache(struct fx *fx, uint64_t ttl_ms, uint64_t stale_ms)
{
        pinlet_cache_free(fx->cache);
        fx->cache = NULL;
        assert_int_equal(pinlet_cache_new(
                                 &(const struct pinlet_cache_options){
                                         .ttl_ms = ttl_ms,
                                         .stale_if_error_ms = stale_ms,
                                         .negative_ttl_ms = 5000,
                                         .clock = fake_clock,
                                 },
                                 &fx->cache),
                         0);
}

/* (Re)creates the resolver; with_cache false: no cache at all. */
static void fx_resolver(struct fx *fx, uint64_t error_ttl_ms, bool with_cache)
{
        pinlet_resolver_free(fx->r);
        fx->r = NULL;
        assert_int_equal(pinlet_resolver_new(
                                 &(const struct pinlet_resolver_options){
                                         .registry_fn = fake_step,
                                         .registry_ctx = &fx->fake,
                                         .cache = with_cache ? fx->cache : NULL,
                                         .pins = fx->pins,
                                         .error_ttl_ms = error_ttl_ms,
                                 },
                                 &fx->r, NULL),
                         0);
}

static int setup(void **state)
{
        struct fx *fx = calloc(1, sizeof(*fx));

        assert_non_null(fx);
        fake_now = 1000000;
        fx->fake.digest = D1;
        fx_cache(fx, 30000, 600000);
        assert_int_equal(pinlet_pins_open(NULL, 64, &fx->pins, NULL), 0);
        fx_resolver(fx, 0, true);
        *state = fx;
        return 0;
}

static int teardown(void **state)
{
        struct fx *fx = *state;

        pinlet_resolver_free(fx->r);
        pinlet_pins_close(fx->pins);
        pinlet_cache_free(fx->cache);
        free(fx);
        return 0;
}

/* ---- one resolution ---- */

/* A query and its answer; the answer's endpoint borrows from the ref. */
struct res {
        struct pinlet_ref *ref;
        char *key;
        struct pinlet_resolve_answer a;
        int ret;
};

static void res_done(struct res *x)
{
        pinlet_resolve_answer_done(&x->a);
        pinlet_ref_free(x->ref);
        free(x->key);
        *x = (struct res){ 0 };
}

/* Resolves image with a budget of budget_ms from now. */
static struct res resolve_full(struct fx *fx, const char *image, enum pinlet_resolve_purpose p,
                               const struct pinlet_registry_auth *auth, bool may_block,
                               int64_t budget_ms)
{
        struct res x = { 0 };

        assert_int_equal(pinlet_ref_parse(image, &x.ref, NULL), 0);
        x.key = pinlet_ref_key(x.ref);
        assert_non_null(x.key);
        x.ret = pinlet_resolver_resolve(fx->r,
                                        &(const struct pinlet_resolve_query){
                                                .ref = x.ref,
                                                .key = x.key,
                                                .purpose = p,
                                                .auth = auth,
                                                .deadline_ms = pinlet_now_ms() + budget_ms,
                                                .may_block = may_block,
                                        },
                                        &x.a);
        if (may_block)
                assert_int_not_equal(x.ret, PINLET_RESOLVE_DEFER);
        /* the answer's invariants, whatever the question */
        if (x.ret == 0) {
                assert_non_null(x.a.digest);
                assert_true(pinlet_ref_digest_valid(x.a.digest));
                assert_int_not_equal(x.a.source, PINLET_SOURCE_NONE);
                assert_true(!x.a.fallback || x.a.err); /* a fallback says why */
        } else if (x.ret == PINLET_RESOLVE_DEFER) {
                assert_non_null(x.a.queue);
                assert_null(x.a.digest);
        } else {
                assert_true(x.ret < 0);
                assert_non_null(x.a.err);
                assert_null(x.a.digest);
        }
        return x;
}

static struct res resolve(struct fx *fx, const char *image, enum pinlet_resolve_purpose p)
{
        return resolve_full(fx, image, p, NULL, true, 5000);
}

/* Resolves and checks digest and source in one go. */
#define assert_resolves(fx, image, purpose, want_digest, want_source)                             \
        do {                                                                                      \
                struct res _x = resolve((fx), (image), (purpose));                                \
                assert_int_equal(_x.ret, 0);                                                      \
                assert_string_equal(_x.a.digest, (want_digest));                                  \
                assert_string_equal(pinlet_resolve_source_to_string(_x.a.source), (want_source)); \
                res_done(&_x);                                                                    \
        } while (0)

static void pin(struct fx *fx, const char *key, const char *digest)
{
        assert_int_equal(pinlet_pins_record(fx->pins, key, digest, NULL, NULL, NULL), 0);
}

/* ---- the key of a tag ---- */

static void test_ref_key(void **state)
{
        static const struct {
                const char *in, *key;
        } cases[] = {
                { "nginx:1.25", "docker.io/library/nginx:1.25" },
                { "Reg.Example:5000/team/app:V1", "reg.example:5000/team/app:V1" },
                { "REG.EXAMPLE/team/app:Tag_A", "reg.example/team/app:Tag_A" },
                { "LocalHost/x:Y", "localhost/x:Y" },
                { "reg.example/a/b:v1", "reg.example/a/b:v1" },
                { "[::1]:5000/app:v1", "[::1]:5000/app:v1" },
                /* a host only by its capitals keeps them: "myreg/app" would be Docker Hub's */
                { "MyReg/app:v1", "MyReg/app:v1" },
                { "dHsha024o/library/nginx:1.", "dHsha024o/library/nginx:1." },
                /* a host that lower-cased would be Docker Hub's name keeps its case too */
                { "Docker.io/nx:1.25", "Docker.io/nx:1.25" },
                { "Index.Docker.IO/nx:1", "Index.Docker.IO/nx:1" },
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct pinlet_ref *ref = NULL;
                char *key;

                assert_int_equal(pinlet_ref_parse(cases[i].in, &ref, NULL), 0);
                key = pinlet_ref_key(ref);
                assert_non_null(key);
                assert_string_equal(key, cases[i].key);
                pinlet_ref_free(ref);
                /* a key parses back to a reference with the same key (lock files) */
                ref = NULL;
                assert_int_equal(pinlet_ref_parse(key, &ref, NULL), 0);
                {
                        char *again = pinlet_ref_key(ref);

                        assert_string_equal(again, key);
                        free(again);
                }
                free(key);
                pinlet_ref_free(ref);
        }
}

/* ---- sources in order, per purpose ---- */

/* CREATE: what was pulled is what runs: the pin before the cache and the registry. */
static void test_create_pin_first(void **state)
{
        struct fx *fx = *state;
        struct res x;

        assert_resolves(fx, "registry.example/app:v1", PINLET_RESOLVE_STATUS, D1, "registry");
        pin(fx, "registry.example/app:v1", D2);
        assert_resolves(fx, "registry.example/app:v1", PINLET_RESOLVE_CREATE, D2, "pin");
        /* the pin needs no registry: also decided on the completion-queue thread */
        x = resolve_full(fx, "Registry.Example/app:v1", PINLET_RESOLVE_CREATE, NULL, false, 5000);
        assert_int_equal(x.ret, 0);
        assert_string_equal(x.a.digest, D2);
        assert_int_equal(x.a.source, PINLET_SOURCE_PIN);
        assert_false(x.a.fallback);
        assert_null(x.a.err);
        assert_true(x.a.registry_ms < 0);
        res_done(&x);
        assert_int_equal(fx->fake.calls, 1);

        /* without a pin: registry, then cache */
        assert_resolves(fx, "registry.example/other:v1", PINLET_RESOLVE_CREATE, D1, "registry");
        assert_resolves(fx, "registry.example/other:v1", PINLET_RESOLVE_CREATE, D1, "cache");
        assert_int_equal(fx->fake.calls, 2);
}

/* STATUS: cache, then registry; the pin only on an outage, after a stale cache entry. */
static void test_status_order(void **state)
{
        struct fx *fx = *state;
        struct res x;

        pin(fx, "registry.example/app:v1", D2);
        x = resolve(fx, "registry.example/app:v1", PINLET_RESOLVE_STATUS);
        assert_int_equal(x.ret, 0);
        assert_string_equal(x.a.digest, D1); /* not the pin */
        assert_int_equal(x.a.source, PINLET_SOURCE_REGISTRY);
        assert_true(x.a.registry_ms >= 0);
        assert_string_equal(x.a.endpoint, "registry.example");
        assert_false(x.a.fallback);
        res_done(&x);
        x = resolve(fx, "registry.example/app:v1", PINLET_RESOLVE_STATUS);
        assert_int_equal(x.a.source, PINLET_SOURCE_CACHE);
        assert_true(x.a.registry_ms < 0);
        res_done(&x);
        assert_int_equal(fx->fake.calls, 1);

        /* outage, no cache entry: the pin, flagged as a fallback with the cause */
        pin(fx, "registry.example/app:v2", D3);
        fx->fake.fail = PINLET_EUNAVAIL;
        x = resolve(fx, "registry.example/app:v2", PINLET_RESOLVE_STATUS);
        assert_int_equal(x.ret, 0);
        assert_string_equal(x.a.digest, D3);
        assert_int_equal(x.a.source, PINLET_SOURCE_PIN);
        assert_true(x.a.fallback);
        assert_non_null(strstr(pinlet_error_message(x.a.err, 0), "fake failure"));
        res_done(&x);

        /* outage with an expired cache entry and a pin: the stale entry wins */
        fake_now += 31000;
        x = resolve(fx, "registry.example/app:v1", PINLET_RESOLVE_STATUS);
        assert_int_equal(x.ret, 0);
        assert_string_equal(x.a.digest, D1);
        assert_int_equal(x.a.source, PINLET_SOURCE_STALE);
        assert_true(x.a.fallback);
        res_done(&x);

        /* not found is an answer, not an outage: no pin */
        fx->fake.fail = PINLET_ENOTFOUND;
        x = resolve(fx, "registry.example/app:v2", PINLET_RESOLVE_STATUS);
        assert_int_equal(x.ret, PINLET_ENOTFOUND);
        res_done(&x);
        /* nor is refused credentials */
        pin(fx, "registry.example/app:v3", D3);
        fx->fake.fail = PINLET_EUNAUTH;
        x = resolve(fx, "registry.example/app:v3", PINLET_RESOLVE_STATUS);
        assert_int_equal(x.ret, PINLET_EUNAUTH);
        res_done(&x);
}

/* PULL never answers from the pin: the pull makes the pin. */
static void test_pull_never_pin(void **state)
{
        struct fx *fx = *state;
        struct res x;

        pin(fx, "registry.example/app:v1", D2);
        assert_resolves(fx, "registry.example/app:v1", PINLET_RESOLVE_PULL, D1, "registry");
        pin(fx, "registry.example/app:v2", D2);
        fx->fake.fail = PINLET_EUNAVAIL;
        x = resolve(fx, "registry.example/app:v2", PINLET_RESOLVE_PULL);
        assert_int_equal(x.ret, PINLET_EUNAVAIL);
        assert_non_null(strstr(pinlet_error_message(x.a.err, 0), "fake failure"));
        assert_false(x.a.fallback);
        res_done(&x);
        /* CREATE for the same tag does use it */
        assert_resolves(fx, "registry.example/app:v2", PINLET_RESOLVE_CREATE, D2, "pin");
}

/* ---- never blocking ---- */

static void test_defer(void **state)
{
        struct fx *fx = *state;
        struct res x;

        x = resolve_full(fx, "Reg.Example:5000/app:v1", PINLET_RESOLVE_STATUS, NULL, false, 5000);
        assert_int_equal(x.ret, PINLET_RESOLVE_DEFER);
        assert_string_equal(x.a.queue, "reg.example:5000");
        res_done(&x);
        x = resolve_full(fx, "nginx:1.25", PINLET_RESOLVE_PULL, NULL, false, 5000);
        assert_int_equal(x.ret, PINLET_RESOLVE_DEFER);
        assert_string_equal(x.a.queue, "docker.io");
        res_done(&x);
        assert_int_equal(fx->fake.calls, 0);

        /* on a worker: asked, and then the cache answers without deferring */
        assert_resolves(fx, "Reg.Example:5000/app:v1", PINLET_RESOLVE_STATUS, D1, "registry");
        x = resolve_full(fx, "reg.example:5000/app:v1", PINLET_RESOLVE_STATUS, NULL, false, 5000);
        assert_int_equal(x.ret, 0);
        assert_int_equal(x.a.source, PINLET_SOURCE_CACHE);
        res_done(&x);

        /* a cached "not found" is an answer too */
        fx->fake.fail = PINLET_ENOTFOUND;
        x = resolve(fx, "reg.example:5000/app:missing", PINLET_RESOLVE_STATUS);
        assert_int_equal(x.ret, PINLET_ENOTFOUND);
        res_done(&x);
        x = resolve_full(fx, "reg.example:5000/app:missing", PINLET_RESOLVE_STATUS, NULL, false,
                         5000);
        assert_int_equal(x.ret, PINLET_ENOTFOUND);
        res_done(&x);
        assert_int_equal(fx->fake.calls, 2);

        /* the endpoint of Docker Hub is its API host */
        x = resolve_full(fx, "nginx:1.25", PINLET_RESOLVE_STATUS, NULL, false, 5000);
        assert_string_equal(x.a.endpoint, "registry-1.docker.io");
        res_done(&x);
}

/* ---- stale answers ---- */

/* ttl 0: never served fresh from the cache, but within the stale window on an outage. */
static void test_stale_ttl0(void **state)
{
        struct fx *fx = *state;
        struct res x;

        fx_cache(fx, 0, 60000);
        fx_resolver(fx, 0, true);
        assert_resolves(fx, "registry.example/app:v1", PINLET_RESOLVE_PULL, D1, "registry");
        fx->fake.digest = D2;
        assert_resolves(fx, "registry.example/app:v1", PINLET_RESOLVE_PULL, D2, "registry");
        assert_int_equal(fx->fake.calls, 2);

        fx->fake.fail = PINLET_ETIMEOUT;
        fake_now += 59000;
        x = resolve(fx, "registry.example/app:v1", PINLET_RESOLVE_PULL);
        assert_int_equal(x.ret, 0);
        assert_string_equal(x.a.digest, D2);
        assert_int_equal(x.a.source, PINLET_SOURCE_STALE);
        assert_true(x.a.fallback);
        assert_non_null(x.a.err);
        assert_non_null(strstr(pinlet_error_message(x.a.err, 0), "fake failure"));
        res_done(&x);

        /* past the stale window: the failure */
        fake_now += 2000;
        x = resolve(fx, "registry.example/app:v1", PINLET_RESOLVE_PULL);
        assert_int_equal(x.ret, PINLET_ETIMEOUT);
        res_done(&x);
        /* not on "not found" (an answer), even within the window */
        fx->fake.fail = 0;
        assert_resolves(fx, "registry.example/app:v2", PINLET_RESOLVE_PULL, D2, "registry");
        fx->fake.fail = PINLET_ENOTFOUND;
        x = resolve(fx, "registry.example/app:v2", PINLET_RESOLVE_PULL);
        assert_int_equal(x.ret, PINLET_ENOTFOUND);
        res_done(&x);
}

/* A registry remembered as failing: the completion-queue thread gets the stale entry at
 * once instead of deferring to a worker that would only fail again. */
static void test_stale_fast_path(void **state)
{
        struct fx *fx = *state;
        struct res x;

        fx_resolver(fx, 60000, true);
        assert_resolves(fx, "registry.example/app:v1", PINLET_RESOLVE_STATUS, D1, "registry");
        fake_now += 31000;
        fx->fake.fail = PINLET_EUNAVAIL;
        assert_resolves(fx, "registry.example/app:v1", PINLET_RESOLVE_STATUS, D1, "stale");
        assert_int_equal(fx->fake.calls, 2);
        assert_true(pinlet_resolver_registry_failing(fx->r, "registry.example"));
        x = resolve_full(fx, "registry.example/app:v1", PINLET_RESOLVE_STATUS, NULL, false, 5000);
        assert_int_equal(x.ret, 0);
        assert_int_equal(x.a.source, PINLET_SOURCE_STALE);
        assert_true(x.a.fallback);
        assert_non_null(strstr(pinlet_error_message(x.a.err, 0), "fake failure"));
        res_done(&x);
        assert_int_equal(fx->fake.calls, 2);
}

/* ---- credentials in cache keys ---- */

static void test_auth_keys(void **state)
{
        struct fx *fx = *state;
        const struct pinlet_registry_auth alice1 = { .username = "alice", .password = "p1" };
        const struct pinlet_registry_auth alice1b = { .username = "alice", .password = "p1" };
        const struct pinlet_registry_auth alice2 = { .username = "alice", .password = "p2" };
        const struct pinlet_registry_auth elsewhere = { .server_address = "quay.io",
                                                        .username = "bob",
                                                        .password = "p3" };
        const struct pinlet_registry_auth bad = { .auth = "!!!s3cret-in-auth" };
        struct res x;

#define PULL_AS(creds, want_source)                                                              \
        do {                                                                                     \
                x = resolve_full(fx, "registry.example/app:v1", PINLET_RESOLVE_PULL, (creds),    \
                                 true, 5000);                                                    \
                assert_int_equal(x.ret, 0);                                                      \
                assert_string_equal(pinlet_resolve_source_to_string(x.a.source), (want_source)); \
                res_done(&x);                                                                    \
        } while (0)

        PULL_AS(&alice1, "registry");
        assert_true(fx->fake.last_auth);
        assert_string_equal(fx->fake.last_pass, "p1");
        PULL_AS(&alice1b, "cache"); /* equal credentials (another struct): the same key */
        assert_int_equal(fx->fake.calls, 1);
        PULL_AS(&alice2, "registry"); /* another password: its own resolution */
        assert_int_equal(fx->fake.calls, 2);
        assert_string_equal(fx->fake.last_pass, "p2");
        PULL_AS(NULL, "registry"); /* the node's */
        assert_int_equal(fx->fake.calls, 3);
        assert_false(fx->fake.last_auth);
        PULL_AS(&elsewhere, "cache"); /* for another registry: the node's key */
        assert_int_equal(fx->fake.calls, 3);
#undef PULL_AS

        /* STATUS and CREATE use the node's credentials whatever is passed */
        x = resolve_full(fx, "registry.example/app:v1", PINLET_RESOLVE_STATUS, &alice2, true, 5000);
        assert_int_equal(x.a.source, PINLET_SOURCE_CACHE);
        res_done(&x);
        x = resolve_full(fx, "registry.example/app:v9", PINLET_RESOLVE_STATUS, &alice2, true, 5000);
        assert_int_equal(x.a.source, PINLET_SOURCE_REGISTRY);
        assert_false(fx->fake.last_auth);
        res_done(&x);

        /* an AuthConfig that is not valid: refused before anything is asked */
        x = resolve_full(fx, "registry.example/app:v1", PINLET_RESOLVE_PULL, &bad, true, 5000);
        assert_int_equal(x.ret, PINLET_EINVAL);
        assert_null(strstr(pinlet_error_message(x.a.err, 0), "s3cret"));
        res_done(&x);
        assert_int_equal(fx->fake.calls, 4);
}

/* ---- failing registries ---- */

static void test_failing_memory(void **state)
{
        static const struct {
                int code;
                int64_t budget_ms;
                bool failing;
        } cases[] = {
                { PINLET_EUNAVAIL, 5000, true },   { PINLET_EUNAVAIL, 100, true },
                { PINLET_ETIMEOUT, 5000, true },   { PINLET_ETIMEOUT, 3000, true },
                { PINLET_ETIMEOUT, 300, false }, /* no time to answer: says nothing */
                { PINLET_ENOTFOUND, 5000, false }, { PINLET_EUNAUTH, 5000, false },
                { PINLET_ETLS, 5000, false },      { PINLET_EPROTO, 5000, false },
        };
        struct fx *fx = *state;

        fx_resolver(fx, 600000, false);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char host[64], image[128], other[128];
                struct res x;
                int calls;

                snprintf(host, sizeof(host), "h%zu.example", i);
                snprintf(image, sizeof(image), "H%zu.Example/app:v1", i);
                snprintf(other, sizeof(other), "h%zu.example/app:v2", i);
                fx->fake.fail = cases[i].code;
                x = resolve_full(fx, image, PINLET_RESOLVE_PULL, NULL, true, cases[i].budget_ms);
                assert_int_equal(x.ret, cases[i].code);
                res_done(&x);
                if (pinlet_resolver_registry_failing(fx->r, host) != cases[i].failing)
                        fail_msg("case %zu (%s, %lld ms): failing should be %d", i,
                                 pinlet_error_class(cases[i].code), (long long)cases[i].budget_ms,
                                 cases[i].failing);

                /* another tag of that registry, registry answering again now */
                calls = fx->fake.calls;
                fx->fake.fail = 0;
                x = resolve_full(fx, other, PINLET_RESOLVE_PULL, NULL, false, 5000);
                if (cases[i].failing) {
                        /* the remembered failure, at once: no round trip, no defer */
                        assert_int_equal(x.ret, cases[i].code);
                        assert_non_null(strstr(pinlet_error_message(x.a.err, 0), "fake failure"));
                        assert_int_equal(fx->fake.calls, calls);
                } else {
                        assert_int_equal(x.ret, PINLET_RESOLVE_DEFER);
                }
                res_done(&x);
                x = resolve_full(fx, other, PINLET_RESOLVE_PULL, NULL, true, 5000);
                assert_int_equal(x.ret, cases[i].failing ? cases[i].code : 0);
                assert_int_equal(fx->fake.calls, calls + (cases[i].failing ? 0 : 1));
                res_done(&x);
        }

        /* error_ttl 0: nothing is remembered */
        fx_resolver(fx, 0, false);
        fx->fake.fail = PINLET_EUNAVAIL;
        {
                struct res x = resolve(fx, "h0.example/app:v1", PINLET_RESOLVE_PULL);

                assert_int_equal(x.ret, PINLET_EUNAVAIL);
                res_done(&x);
        }
        assert_false(pinlet_resolver_registry_failing(fx->r, "h0.example"));
}

/* The memory ends after error_ttl. */
static void test_failing_expires(void **state)
{
        struct fx *fx = *state;
        int64_t deadline;
        struct res x;

        fx_resolver(fx, 200, false);
        fx->fake.fail = PINLET_EUNAVAIL;
        x = resolve(fx, "registry.example/app:v1", PINLET_RESOLVE_PULL);
        res_done(&x);
        assert_true(pinlet_resolver_registry_failing(fx->r, "REGISTRY.example"));
        deadline = pinlet_now_ms() + 10000;
        while (pinlet_resolver_registry_failing(fx->r, "registry.example")) {
                assert_true(pinlet_now_ms() < deadline);
                usleep(10000);
        }
        fx->fake.fail = 0;
        assert_resolves(fx, "registry.example/app:v1", PINLET_RESOLVE_PULL, D1, "registry");
        assert_int_equal(fx->fake.calls, 2);
}

/* Registry names come from pods: the table holds at most FAILING_MAX hosts, the oldest
 * forgotten first. */
static void test_failing_bounded(void **state)
{
        enum { N = FAILING_MAX + 76 };
        struct fx *fx = *state;
        size_t failing = 0;
        char buf[64];

        fx_resolver(fx, 600000, false);
        fx->fake.fail = PINLET_EUNAVAIL;
        for (size_t i = 0; i < N; i++) {
                struct res x;

                snprintf(buf, sizeof(buf), "h%zu.example/app:v1", i);
                x = resolve(fx, buf, PINLET_RESOLVE_PULL);
                assert_int_equal(x.ret, PINLET_EUNAVAIL);
                res_done(&x);
        }
        for (size_t i = 0; i < N; i++) {
                snprintf(buf, sizeof(buf), "h%zu.example", i);
                failing += pinlet_resolver_registry_failing(fx->r, buf);
        }
        assert_int_equal(failing, FAILING_MAX);
        assert_false(pinlet_resolver_registry_failing(fx->r, "h0.example"));
        assert_false(pinlet_resolver_registry_failing(fx->r, "h75.example"));
        assert_true(pinlet_resolver_registry_failing(fx->r, "h76.example"));
        snprintf(buf, sizeof(buf), "h%d.example", N - 1);
        assert_true(pinlet_resolver_registry_failing(fx->r, buf));
}

/* ---- a broken registry step never puts a non-digest into a request ---- */

static void test_invalid_digest(void **state)
{
        static const char *const bad[] = { "latest", "sha256:1234", "md5:" D1, "" };
        struct fx *fx = *state;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char image[64];
                struct res x;

                fx->fake.digest = bad[i];
                snprintf(image, sizeof(image), "registry.example/app:v%zu", i);
                x = resolve(fx, image, PINLET_RESOLVE_STATUS);
                assert_int_equal(x.ret, PINLET_EPROTO);
                res_done(&x);
        }
}

static void test_new_errors(void **state)
{
        struct pinlet_resolver *r = NULL;
        struct pinlet_error *err = NULL;

        (void)state;
        assert_int_equal(
                pinlet_resolver_new(&(const struct pinlet_resolver_options){ 0 }, &r, &err),
                PINLET_EINVAL);
        assert_null(r);
        assert_non_null(err);
        pinlet_error_free(err);
        pinlet_resolver_free(NULL);
        assert_null(pinlet_resolve_source_to_string(PINLET_SOURCE_NONE));
        assert_string_equal(pinlet_resolve_source_to_string(PINLET_SOURCE_PIN), "pin");
        assert_string_equal(pinlet_resolve_source_to_string(PINLET_SOURCE_CACHE), "cache");
        assert_string_equal(pinlet_resolve_source_to_string(PINLET_SOURCE_REGISTRY), "registry");
        assert_string_equal(pinlet_resolve_source_to_string(PINLET_SOURCE_STALE), "stale");
        assert_string_equal(pinlet_resolve_source_to_string(PINLET_SOURCE_LOCK), "lock");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ref_key),
                T(test_create_pin_first),
                T(test_status_order),
                T(test_pull_never_pin),
                T(test_defer),
                T(test_stale_ttl0),
                T(test_stale_fast_path),
                T(test_auth_keys),
                T(test_failing_memory),
                T(test_failing_expires),
                T(test_failing_bounded),
                T(test_invalid_digest),
                cmocka_unit_test(test_new_errors),
        };

        pinlet_log_setup(PINLET_LOG_ERROR, PINLET_LOG_TEXT);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
