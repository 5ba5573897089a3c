/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cache/cache.h"
#include "util/time.h"

/* An injected clock for entry ages. */
static int64_t fake_now;

static int64_t fake_clock(void *ctx)
{
        return fake_now;
}

/* A scripted resolver: returns code (and value "sha256:<n>" with n = call number) and may
 * block on a gate until the test opens it. */
struct resolver {
        atomic_int calls;
        int code;
        const char *message;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool gated;
        bool open;
};

static void resolver_init(struct resolver *r, int code, const char *message)
{
        memset(r, 0, sizeof(*r));
        r->code = code;
        r->message = message;
        pthread_mutex_init(&r->lock, NULL);
        pthread_cond_init(&r->cond, NULL);
}

static void resolver_open(struct resolver *r)
{
        pthread_mutex_lock(&r->lock);
        r->open = true;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
}

static int resolve(void *ctx, const char *key, int64_t deadline_ms, char **ret_value,
                   struct pinlet_error **err)
{
        struct resolver *r = ctx;
        int n = ++r->calls;

        pthread_mutex_lock(&r->lock);
        while (r->gated && !r->open)
                pthread_cond_wait(&r->cond, &r->lock);
        pthread_mutex_unlock(&r->lock);
        if (r->code < 0)
                return pinlet_error_set(err, r->code, "%s", r->message);
        assert_int_not_equal(asprintf(ret_value, "sha256:%d", n), -1);
        return 0;
}

static struct pinlet_cache *new_cache(size_t max)
{
        struct pinlet_cache_options o = {
                .ttl_ms = 30000,
                .stale_if_error_ms = 600000,
                .negative_ttl_ms = 5000,
                .max_entries = max,
                .clock = fake_clock,
        };
        struct pinlet_cache *c = NULL;

        fake_now = 1000000;
        assert_int_equal(pinlet_cache_new(&o, &c), 0);
        return c;
}

/* get() expecting success: checks value and source. */
static void check_value(struct pinlet_cache *c, struct resolver *r, const char *key,
                        const char *value, enum pinlet_cache_source source)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_free_ char *v = NULL;
        enum pinlet_cache_source s;

        assert_int_equal(pinlet_cache_get(c, key, pinlet_now_ms() + 5000, resolve, r, &v, &s, &err),
                         0);
        assert_string_equal(v, value);
        assert_int_equal(s, source);
        if (source != PINLET_CACHE_SOURCE_STALE)
                assert_null(err);
}

static void check_error(struct pinlet_cache *c, struct resolver *r, const char *key, int code,
                        const char *message)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        char *v = NULL;
        enum pinlet_cache_source s;

        assert_int_equal(pinlet_cache_get(c, key, pinlet_now_ms() + 5000, resolve, r, &v, &s, &err),
                         code);
        assert_null(v);
        assert_non_null(err);
        assert_int_equal(err->code, code);
        assert_string_equal(err->message, message);
}

static void test_hit_miss_expiry(void **state)
{
        _cleanup_cache_ struct pinlet_cache *c = new_cache(0);
        struct resolver r;
        char *v = NULL;

        resolver_init(&r, 0, NULL);
        assert_int_equal(pinlet_cache_peek(c, "k", &v), -ENOENT);
        check_value(c, &r, "k", "sha256:1", PINLET_CACHE_SOURCE_REGISTRY);
        check_value(c, &r, "k", "sha256:1", PINLET_CACHE_SOURCE_CACHE);
        fake_now += 29999;
        check_value(c, &r, "k", "sha256:1", PINLET_CACHE_SOURCE_CACHE);
        assert_int_equal(pinlet_cache_peek(c, "k", &v), 0);
        assert_string_equal(v, "sha256:1");
        free(v);
        assert_int_equal(r.calls, 1);
        fake_now += 1; /* exactly ttl old: expired */
        assert_int_equal(pinlet_cache_peek(c, "k", &v), -ENOENT);
        check_value(c, &r, "k", "sha256:2", PINLET_CACHE_SOURCE_REGISTRY);
        assert_int_equal(r.calls, 2);
        /* other keys are separate */
        check_value(c, &r, "k2", "sha256:3", PINLET_CACHE_SOURCE_REGISTRY);
        assert_int_equal(pinlet_cache_size(c), 2);
        pinlet_cache_invalidate(c, "k");
        check_value(c, &r, "k", "sha256:4", PINLET_CACHE_SOURCE_REGISTRY);
}

static void test_stale_if_error(void **state)
{
        _cleanup_cache_ struct pinlet_cache *c = new_cache(0);
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_free_ char *v = NULL;
        enum pinlet_cache_source s;
        struct resolver ok, down, gone, denied, timeout;

        resolver_init(&ok, 0, NULL);
        resolver_init(&down, PINLET_EUNAVAIL, "registry: connection refused");
        resolver_init(&timeout, PINLET_ETIMEOUT, "registry: timed out");
        resolver_init(&gone, PINLET_ENOTFOUND, "tag not found");
        resolver_init(&denied, PINLET_EUNAUTH, "unauthorized");

        check_value(c, &ok, "k", "sha256:1", PINLET_CACHE_SOURCE_REGISTRY);
        /* fresh: the failing resolver is not even asked */
        check_value(c, &down, "k", "sha256:1", PINLET_CACHE_SOURCE_CACHE);
        assert_int_equal(down.calls, 0);

        fake_now += 30000;
        assert_int_equal(
                pinlet_cache_get(c, "k", pinlet_now_ms() + 1000, resolve, &down, &v, &s, &err), 0);
        assert_string_equal(v, "sha256:1");
        assert_int_equal(s, PINLET_CACHE_SOURCE_STALE);
        assert_non_null(err); /* the cause travels along for the audit record */
        assert_int_equal(err->code, PINLET_EUNAVAIL);
        assert_string_equal(err->message, "registry: connection refused");
        assert_int_equal(down.calls, 1);
        check_value(c, &timeout, "k", "sha256:1", PINLET_CACHE_SOURCE_STALE);

        /* not-found and unauthorized are answers, not outages: no stale value */
        check_error(c, &denied, "k", PINLET_EUNAUTH, "unauthorized");
        check_value(c, &down, "k", "sha256:1", PINLET_CACHE_SOURCE_STALE);

        /* the window ends ttl + stale_if_error after the value was resolved */
        fake_now += 600000 - 1;
        check_value(c, &down, "k", "sha256:1", PINLET_CACHE_SOURCE_STALE);
        fake_now += 1;
        check_error(c, &down, "k", PINLET_EUNAVAIL, "registry: connection refused");

        /* a not-found after expiry replaces the value */
        check_value(c, &ok, "k2", "sha256:2", PINLET_CACHE_SOURCE_REGISTRY);
        fake_now += 30000;
        check_error(c, &gone, "k2", PINLET_ENOTFOUND, "tag not found");
        fake_now += 5000;
        check_error(c, &down, "k2", PINLET_EUNAVAIL, "registry: connection refused");
}

static void test_negative(void **state)
{
        _cleanup_cache_ struct pinlet_cache *c = new_cache(0);
        struct resolver gone, ok;
        char *v = NULL;

        resolver_init(&gone, PINLET_ENOTFOUND, "docker.io/library/nginx:nope: tag not found");
        resolver_init(&ok, 0, NULL);
        check_error(c, &gone, "k", PINLET_ENOTFOUND, "docker.io/library/nginx:nope: tag not found");
        fake_now += 4999;
        /* served from the negative entry: the ok resolver is not asked */
        check_error(c, &ok, "k", PINLET_ENOTFOUND, "docker.io/library/nginx:nope: tag not found");
        assert_int_equal(ok.calls, 0);
        assert_int_equal(gone.calls, 1);
        assert_int_equal(pinlet_cache_peek(c, "k", &v), -ENOENT);
        fake_now += 1;
        check_value(c, &ok, "k", "sha256:1", PINLET_CACHE_SOURCE_REGISTRY);

        /* other errors are never cached */
        {
                struct resolver denied;
                resolver_init(&denied, PINLET_EUNAUTH, "denied");
                check_error(c, &denied, "k3", PINLET_EUNAUTH, "denied");
                check_error(c, &denied, "k3", PINLET_EUNAUTH, "denied");
                assert_int_equal(denied.calls, 2);
        }
}

static void test_negative_disabled(void **state)
{
        struct pinlet_cache_options o = { .ttl_ms = 1000, .clock = fake_clock };
        _cleanup_cache_ struct pinlet_cache *c = NULL;
        struct resolver gone;

        assert_int_equal(pinlet_cache_new(&o, &c), 0);
        resolver_init(&gone, PINLET_ENOTFOUND, "nope");
        check_error(c, &gone, "k", PINLET_ENOTFOUND, "nope");
        check_error(c, &gone, "k", PINLET_ENOTFOUND, "nope");
        assert_int_equal(gone.calls, 2);
        assert_int_equal(pinlet_cache_size(c), 0);
}

static void test_lru(void **state)
{
        _cleanup_cache_ struct pinlet_cache *c = new_cache(3);
        struct resolver r;
        char *v = NULL;

        resolver_init(&r, 0, NULL);
        check_value(c, &r, "a", "sha256:1", PINLET_CACHE_SOURCE_REGISTRY);
        check_value(c, &r, "b", "sha256:2", PINLET_CACHE_SOURCE_REGISTRY);
        check_value(c, &r, "c", "sha256:3", PINLET_CACHE_SOURCE_REGISTRY);
        check_value(c, &r, "a", "sha256:1", PINLET_CACHE_SOURCE_CACHE); /* a is now newest */
        assert_int_equal(pinlet_cache_peek(c, "b", &v), 0);             /* peek does not refresh */
        free(v);
        check_value(c, &r, "d", "sha256:4", PINLET_CACHE_SOURCE_REGISTRY);
        assert_int_equal(pinlet_cache_size(c), 3);
        assert_int_equal(pinlet_cache_peek(c, "b", &v), -ENOENT); /* b was least recent */
        check_value(c, &r, "e", "sha256:5", PINLET_CACHE_SOURCE_REGISTRY);
        assert_int_equal(pinlet_cache_peek(c, "c", &v), -ENOENT);
        check_value(c, &r, "a", "sha256:1", PINLET_CACHE_SOURCE_CACHE);
        check_value(c, &r, "d", "sha256:4", PINLET_CACHE_SOURCE_CACHE);
        check_value(c, &r, "e", "sha256:5", PINLET_CACHE_SOURCE_CACHE);
        assert_int_equal(r.calls, 5);
}

/* Single-flight: N threads get the same key while the resolver is held at a gate. */
#define N_THREADS 50

/* Polls until cond holds. The 10 s deadline only keeps a broken build from hanging the
 * suite; nothing here depends on how long the wait takes. */
#define WAIT_FOR(cond)                                                         \
        do {                                                                   \
                int64_t wait_deadline_ = pinlet_now_ms() + 10000;              \
                while (!(cond)) {                                              \
                        if (pinlet_now_ms() > wait_deadline_)                  \
                                fail_msg("still false after 10 s: %s", #cond); \
                        usleep(1000);                                          \
                }                                                              \
        } while (0)

struct worker {
        struct pinlet_cache *c;
        struct resolver *r;
        atomic_int *entered;
        int64_t deadline_ms;
        int ret;
        char *value;
        enum pinlet_cache_source source;
        struct pinlet_error *err;
};

static void *worker_run(void *p)
{
        struct worker *w = p;

        ++*w->entered;
        w->ret = pinlet_cache_get(w->c, "docker.io/library/nginx:1.25", w->deadline_ms, resolve,
                                  w->r, &w->value, &w->source, &w->err);
        return NULL;
}

static void run_flight(struct resolver *r, struct worker *w, pthread_t *t)
{
        /* ttl 0: a value is never served from the cache, so a caller that came late would
         * start a second resolution. One call proves that all of them shared one flight. */
        struct pinlet_cache_options o = { .ttl_ms = 0 };
        struct pinlet_cache *c = NULL;
        atomic_int entered = 0;

        assert_int_equal(pinlet_cache_new(&o, &c), 0);
        r->gated = true;
        for (int i = 0; i < N_THREADS; i++) {
                w[i] = (struct worker){
                        .c = c, .r = r, .entered = &entered, .deadline_ms = pinlet_now_ms() + 60000
                };
                assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
        }
        /* One leader inside the resolver, every other thread attached to its flight: only
         * then may it finish, or a late thread would start a second resolution. */
        WAIT_FOR(r->calls == 1 && pinlet_cache_waiters(c) == N_THREADS - 1);
        assert_int_equal(entered, N_THREADS);
        resolver_open(r);
        for (int i = 0; i < N_THREADS; i++)
                pthread_join(t[i], NULL);
        assert_int_equal(r->calls, 1);
        pinlet_cache_free(c);
}

static void test_single_flight(void **state)
{
        struct worker w[N_THREADS];
        pthread_t t[N_THREADS];
        struct resolver r;
        int leaders = 0;

        resolver_init(&r, 0, NULL);
        run_flight(&r, w, t);
        for (int i = 0; i < N_THREADS; i++) {
                assert_int_equal(w[i].ret, 0);
                assert_string_equal(w[i].value, "sha256:1");
                /* one leader asked the registry; every follower got the shared answer */
                if (w[i].source == PINLET_CACHE_SOURCE_REGISTRY)
                        leaders++;
                else
                        assert_int_equal(w[i].source, PINLET_CACHE_SOURCE_CACHE);
                assert_null(w[i].err);
                free(w[i].value);
        }
        assert_int_equal(leaders, 1);
}

static void test_single_flight_error(void **state)
{
        struct worker w[N_THREADS];
        pthread_t t[N_THREADS];
        struct resolver r;

        resolver_init(&r, PINLET_EUNAUTH, "registry.example: 401 unauthorized");
        run_flight(&r, w, t);
        for (int i = 0; i < N_THREADS; i++) {
                assert_int_equal(w[i].ret, PINLET_EUNAUTH);
                assert_null(w[i].value);
                assert_non_null(w[i].err);
                assert_int_equal(w[i].err->code, PINLET_EUNAUTH);
                assert_string_equal(w[i].err->message, "registry.example: 401 unauthorized");
                pinlet_error_free(w[i].err);
        }
}

static void test_follower_deadline(void **state)
{
        struct pinlet_cache_options o = { .ttl_ms = 30000 };
        _cleanup_cache_ struct pinlet_cache *c = NULL;
        atomic_int entered = 0;
        struct worker leader, follower;
        pthread_t tl, tf;
        struct resolver r;
        int64_t t0;
        char *v = NULL;

        assert_int_equal(pinlet_cache_new(&o, &c), 0);
        resolver_init(&r, 0, NULL);
        r.gated = true;
        leader = (struct worker){
                .c = c, .r = &r, .entered = &entered, .deadline_ms = pinlet_now_ms() + 60000
        };
        assert_int_equal(pthread_create(&tl, NULL, worker_run, &leader), 0);
        WAIT_FOR(r.calls == 1); /* the leader is inside the resolver */

        t0 = pinlet_now_ms();
        follower = (struct worker){ .c = c, .r = &r, .entered = &entered, .deadline_ms = t0 + 150 };
        assert_int_equal(pthread_create(&tf, NULL, worker_run, &follower), 0);
        pthread_join(tf, NULL);
        assert_true(pinlet_now_ms() - t0 >= 150);
        assert_int_equal(follower.ret, PINLET_ETIMEOUT);
        assert_non_null(follower.err);
        assert_int_equal(follower.err->code, PINLET_ETIMEOUT);
        pinlet_error_free(follower.err);

        /* a deadline already past gives up at once */
        follower = (struct worker){ .c = c, .r = &r, .entered = &entered, .deadline_ms = 0 };
        worker_run(&follower);
        assert_int_equal(follower.ret, PINLET_ETIMEOUT);
        pinlet_error_free(follower.err);

        /* the leader carries on and its result is cached */
        resolver_open(&r);
        pthread_join(tl, NULL);
        assert_int_equal(leader.ret, 0);
        assert_string_equal(leader.value, "sha256:1");
        free(leader.value);
        assert_int_equal(pinlet_cache_peek(c, "docker.io/library/nginx:1.25", &v), 0);
        assert_string_equal(v, "sha256:1");
        free(v);
        assert_int_equal(r.calls, 1);
}

/* A follower that runs out of time while the registry hangs is in an outage too: it gets
 * the old value within the stale window, as the leader would on its own timeout. */
static void test_follower_deadline_stale(void **state)
{
        _cleanup_cache_ struct pinlet_cache *c = new_cache(10);
        atomic_int entered = 0;
        struct worker leader, follower;
        pthread_t tl, tf;
        struct resolver r;

        resolver_init(&r, 0, NULL);
        check_value(c, &r, "docker.io/library/nginx:1.25", "sha256:1",
                    PINLET_CACHE_SOURCE_REGISTRY);
        fake_now += 60000; /* past the TTL, inside the stale window */
        r.gated = true;
        leader = (struct worker){
                .c = c, .r = &r, .entered = &entered, .deadline_ms = pinlet_now_ms() + 60000
        };
        assert_int_equal(pthread_create(&tl, NULL, worker_run, &leader), 0);
        WAIT_FOR(r.calls == 2); /* the leader is inside the resolver */
        follower = (struct worker){
                .c = c, .r = &r, .entered = &entered, .deadline_ms = pinlet_now_ms() + 100
        };
        assert_int_equal(pthread_create(&tf, NULL, worker_run, &follower), 0);
        pthread_join(tf, NULL);
        assert_int_equal(follower.ret, 0);
        assert_string_equal(follower.value, "sha256:1");
        assert_int_equal(follower.source, PINLET_CACHE_SOURCE_STALE);
        assert_non_null(follower.err);
        assert_int_equal(follower.err->code, PINLET_ETIMEOUT);
        free(follower.value);
        pinlet_error_free(follower.err);

        /* past the stale window: the timeout stands */
        fake_now += 600000;
        follower = (struct worker){ .c = c, .r = &r, .entered = &entered, .deadline_ms = 0 };
        worker_run(&follower);
        assert_int_equal(follower.ret, PINLET_ETIMEOUT);
        assert_null(follower.value);
        pinlet_error_free(follower.err);

        resolver_open(&r);
        pthread_join(tl, NULL);
        assert_int_equal(leader.ret, 0);
        free(leader.value);
}

/* Many threads, many keys, a small bound and a resolver that sometimes fails: no crash,
 * no leak (under ASan), every answer well-formed. */
struct stress {
        struct pinlet_cache *c;
        int id;
        int ok, failed;
};

static int flaky_resolve(void *ctx, const char *key, int64_t deadline_ms, char **ret_value,
                         struct pinlet_error **err)
{
        static atomic_int n;
        int k = ++n;

        if (k % 7 == 0)
                return pinlet_error_set(err, PINLET_EUNAVAIL, "%s: down", key);
        if (k % 11 == 0)
                return pinlet_error_set(err, PINLET_ENOTFOUND, "%s: not found", key);
        return asprintf(ret_value, "v:%s", key) < 0 ? -ENOMEM : 0;
}

static void *stress_run(void *p)
{
        struct stress *s = p;
        char key[32];

        for (int i = 0; i < 3000; i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                _cleanup_free_ char *v = NULL;
                enum pinlet_cache_source src;
                int r;

                snprintf(key, sizeof(key), "k%d", (i * 31 + s->id * 7) % 97);
                r = pinlet_cache_get(s->c, key, pinlet_now_ms() + 5000, flaky_resolve, NULL, &v,
                                     &src, &err);
                if (r == 0) {
                        assert_true(strncmp(v, "v:", 2) == 0 && strcmp(v + 2, key) == 0);
                        s->ok++;
                } else {
                        assert_true(r == PINLET_EUNAVAIL || r == PINLET_ENOTFOUND);
                        assert_non_null(err);
                        s->failed++;
                }
                if (i % 100 == 0)
                        pinlet_cache_invalidate(s->c, key);
        }
        return NULL;
}

static void test_stress(void **state)
{
        /* ttl 1 ms on the real clock: entries expire all the time, flights overlap. */
        struct pinlet_cache_options o = {
                .ttl_ms = 1, .stale_if_error_ms = 5, .negative_ttl_ms = 1, .max_entries = 20
        };
        _cleanup_cache_ struct pinlet_cache *c = NULL;
        struct stress s[8];
        pthread_t t[8];
        int ok = 0;

        assert_int_equal(pinlet_cache_new(&o, &c), 0);
        for (int i = 0; i < 8; i++) {
                s[i] = (struct stress){ .c = c, .id = i };
                assert_int_equal(pthread_create(&t[i], NULL, stress_run, &s[i]), 0);
        }
        for (int i = 0; i < 8; i++) {
                pthread_join(t[i], NULL);
                ok += s[i].ok;
        }
        assert_true(ok > 0);
        assert_true(pinlet_cache_size(c) <= 20);
}

static void test_invalid_key(void **state)
{
        _cleanup_cache_ struct pinlet_cache *c = new_cache(0);
        _cleanup_error_ struct pinlet_error *err = NULL;
        enum pinlet_cache_source s;
        struct resolver r;
        char *v = NULL;

        resolver_init(&r, 0, NULL);
        assert_int_equal(pinlet_cache_get(c, "", 0, resolve, &r, &v, &s, &err), PINLET_EINVAL);
        assert_int_equal(r.calls, 0);
        assert_string_equal(pinlet_cache_source_to_string(PINLET_CACHE_SOURCE_STALE), "stale");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hit_miss_expiry),
                cmocka_unit_test(test_stale_if_error),
                cmocka_unit_test(test_negative),
                cmocka_unit_test(test_negative_disabled),
                cmocka_unit_test(test_lru),
                cmocka_unit_test(test_single_flight),
                cmocka_unit_test(test_single_flight_error),
                cmocka_unit_test(test_follower_deadline),
                cmocka_unit_test(test_follower_deadline_stale),
                cmocka_unit_test(test_stress),
                cmocka_unit_test(test_invalid_key),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
