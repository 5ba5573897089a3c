/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The resolver: sources in order, cache keys, stale answers, the pin fallback on an
 * outage and the failing-registry memory. The contract is in resolve.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sys/random.h>
#include <sys/uio.h>

#include "cache/cache.h"
#include "lock/lock.h"
#include "metrics/metrics.h"
#include "pins/pins.h"
#include "resolve/resolve.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/lru.h"
#include "util/str.h"
#include "util/time.h"

/* A timeout marks a registry failing only when it had at least this long to answer. */
#define FAILING_MIN_BUDGET_MS 1000
/* Hosts remembered as failing at once; the oldest is forgotten first. Registry names come
 * from pods, so the table is bounded. */
#define FAILING_MAX 1024

struct failing {
        struct pinlet_lru_node node; /* node.key = host */
        char *host;                  /* lower case, owned */
        int64_t until_ms;
        int code;
        char *message;
};

struct pinlet_resolver {
        struct pinlet_registry *registry;
        pinlet_resolve_registry_fn registry_fn;
        void *registry_ctx;
        struct pinlet_cache *cache;
        struct pinlet_pins *pins;
        uint64_t error_ttl_ms;
        struct pinlet_metrics *metrics;
        uint8_t salt[32]; /* credential identities in cache keys */

        pthread_mutex_t lock; /* protects failing */
        struct pinlet_lru failing;
};

const char *pinlet_resolve_source_to_string(enum pinlet_resolve_source s)
{
        switch (s) {
        case PINLET_SOURCE_LOCK:
                return "lock";
        case PINLET_SOURCE_PIN:
                return "pin";
        case PINLET_SOURCE_CACHE:
                return "cache";
        case PINLET_SOURCE_REGISTRY:
                return "registry";
        case PINLET_SOURCE_STALE:
                return "stale";
        default:
                return NULL;
        }
}

void pinlet_resolve_answer_done(struct pinlet_resolve_answer *a)
{
        free(a->digest);
        pinlet_error_free(a->err);
        free(a->queue);
        free(a->endpoint);
        *a = (struct pinlet_resolve_answer){ .registry_ms = -1 };
}

static int registry_resolve(void *ctx, const struct pinlet_ref *ref,
                            const struct pinlet_registry_auth *auth, int64_t deadline_ms,
                            struct pinlet_resolution *ret, struct pinlet_error **err)
{
        return pinlet_registry_resolve(ctx, ref, auth, deadline_ms, ret, err);
}

int pinlet_resolver_new(const struct pinlet_resolver_options *o, struct pinlet_resolver **ret,
                        struct pinlet_error **err)
{
        struct pinlet_resolver *r;
        int k;

        if (!o || (!o->registry && !o->registry_fn))
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "resolver needs a registry client or a registry step");
        r = calloc(1, sizeof(*r));
        if (!r)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        *r = (struct pinlet_resolver){
                .registry = o->registry,
                .registry_fn = o->registry_fn ? o->registry_fn : registry_resolve,
                .registry_ctx = o->registry_fn ? o->registry_ctx : o->registry,
                .cache = o->cache,
                .pins = o->pins,
                .error_ttl_ms = o->error_ttl_ms,
                .metrics = o->metrics,
        };
        if (getrandom(r->salt, sizeof(r->salt), 0) != (ssize_t)sizeof(r->salt)) {
                free(r);
                return pinlet_error_set(err, -EIO, "getrandom failed");
        }
        k = pinlet_lru_init(&r->failing, 64);
        if (k < 0) {
                free(r);
                return pinlet_error_set(err, k, "out of memory");
        }
        pthread_mutex_init(&r->lock, NULL);
        *ret = r;
        return 0;
}

static void failing_free(struct failing *f)
{
        if (!f)
                return;
        free(f->host);
        free(f->message);
        free(f);
}

void pinlet_resolver_free(struct pinlet_resolver *r)
{
        struct pinlet_lru_node *n;

        if (!r)
                return;
        while ((n = pinlet_lru_oldest(&r->failing))) {
                pinlet_lru_remove(&r->failing, n);
                failing_free(PINLET_LRU_ENTRY(n, struct failing, node));
        }
        pinlet_lru_done(&r->failing);
        pthread_mutex_destroy(&r->lock);
        explicit_bzero(r->salt, sizeof(r->salt));
        free(r);
}

/* ASCII only, whatever the locale (see pinlet_ref_host_key). */
static char *lowercase_dup(const char *s)
{
        char *d = strdup(s);

        for (char *p = d; p && *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p - 'A' + 'a');
        return d;
}

/* ---- failing registries ---- */

static bool failure_is_outage(int code)
{
        return code == PINLET_EUNAVAIL || code == PINLET_ETIMEOUT;
}

/* Copies the remembered failure of host into *err when it is still in force. */
static int failing_check(struct pinlet_resolver *r, const char *host, struct pinlet_error **err)
{
        struct failing *f;
        int code = 0;

        if (r->error_ttl_ms == 0)
                return 0;
        pthread_mutex_lock(&r->lock);
        f = PINLET_LRU_ENTRY(pinlet_lru_find(&r->failing, host), struct failing, node);
        if (f && f->until_ms > pinlet_now_ms()) {
                code = f->code;
                pinlet_error_set(err, code, "%s (registry failing, not asked again for %lld ms)",
                                 f->message, (long long)(f->until_ms - pinlet_now_ms()));
        } else if (f) {
                pinlet_lru_remove(&r->failing, &f->node);
                failing_free(f);
        }
        pthread_mutex_unlock(&r->lock);
        return code;
}

static void failing_mark(struct pinlet_resolver *r, const char *host, int code, const char *msg)
{
        struct failing *f;
        struct pinlet_lru_node *old;

        if (r->error_ttl_ms == 0)
                return;
        pthread_mutex_lock(&r->lock);
        f = PINLET_LRU_ENTRY(pinlet_lru_find(&r->failing, host), struct failing, node);
        if (!f) {
                f = calloc(1, sizeof(*f));
                if (!f || !(f->host = strdup(host))) {
                        free(f);
                        pthread_mutex_unlock(&r->lock);
                        return;
                }
                f->node.key = f->host;
                pinlet_lru_insert(&r->failing, &f->node);
                while (pinlet_lru_size(&r->failing) > FAILING_MAX &&
                       (old = pinlet_lru_oldest(&r->failing)) && old != &f->node) {
                        pinlet_lru_remove(&r->failing, old);
                        failing_free(PINLET_LRU_ENTRY(old, struct failing, node));
                }
        } else {
                pinlet_lru_touch(&r->failing, &f->node);
        }
        free(f->message);
        f->message = strdup(msg);
        if (!f->message) {
                pinlet_lru_remove(&r->failing, &f->node);
                failing_free(f);
        } else {
                f->code = code;
                f->until_ms = pinlet_now_ms() + (int64_t)r->error_ttl_ms;
        }
        pthread_mutex_unlock(&r->lock);
}

bool pinlet_resolver_registry_failing(struct pinlet_resolver *r, const char *host)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_free_ char *key = lowercase_dup(host);

        return key && failing_check(r, key, &err) < 0;
}

/* ---- cache keys ---- */

/* hex(SHA-256(salt || fingerprint)): the credential identity in a cache key. */
static int salted_identity(const struct pinlet_resolver *r, const char *fp,
                           char ret[static PINLET_SHA256_HEX_SIZE])
{
        const struct iovec iov[] = {
                { .iov_base = (void *)r->salt, .iov_len = sizeof(r->salt) },
                { .iov_base = (void *)fp, .iov_len = strlen(fp) },
        };

        return pinlet_sha256_hex_iov(iov, 2, ret);
}

/* The cache key of q (see resolve.h). The credential identity is used only when the
 * request's AuthConfig applies to this registry, exactly as the registry client decides;
 * *ret_auth is then the credentials to resolve with (else NULL: the node's). */
static int cache_key(struct pinlet_resolver *r, const struct pinlet_resolve_query *q, char **ret,
                     const struct pinlet_registry_auth **ret_auth, struct pinlet_error **err)
{
        struct pinlet_creds creds = { 0 };
        char fp[PINLET_SHA256_HEX_SIZE], id[PINLET_SHA256_HEX_SIZE];
        char *key = NULL;
        int k;

        *ret_auth = NULL;
        if (q->purpose == PINLET_RESOLVE_PULL && q->auth) {
                k = pinlet_creds_from_auth(q->auth, q->ref->domain, &creds, err);
                if (k < 0)
                        return k;
                if (k > 0) {
                        k = pinlet_creds_fingerprint(&creds, fp);
                        pinlet_creds_clear(&creds);
                        if (k >= 0)
                                k = salted_identity(r, fp, id);
                        explicit_bzero(fp, sizeof(fp));
                        if (k < 0)
                                return pinlet_error_set(err, k,
                                                        "cannot fingerprint the credentials");
                        if (asprintf(&key, "%s auth:%s", q->key, id) < 0)
                                return pinlet_error_set(err, -ENOMEM, "out of memory");
                        *ret_auth = q->auth;
                        *ret = key;
                        return 0;
                }
        }
        key = pinlet_strjoin(q->key, " node"); /* on every call: no asprintf */
        if (!key)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        *ret = key;
        return 0;
}

/* ---- the registry step ---- */

/* What the cache's single-flight leader runs. */
struct fill_ctx {
        struct pinlet_resolver *r;
        const struct pinlet_ref *ref;
        const struct pinlet_registry_auth *auth;
        const char *host;    /* lower case: the failing-table key */
        int64_t registry_ms; /* set when this caller's fill ran */
        char *endpoint;      /* owned: the endpoint that answered this caller's fill */
};

static int fill(void *userdata, const char *key, int64_t deadline_ms, char **ret_value,
                struct pinlet_error **err)
{
        struct fill_ctx *fc = userdata;
        struct pinlet_resolution res = { 0 };
        int64_t t0 = pinlet_now_ms();
        int k;

        /* another caller may have found the registry failing while we queued */
        k = failing_check(fc->r, fc->host, err);
        if (k < 0)
                return k;
        k = fc->r->registry_fn(fc->r->registry_ctx, fc->ref, fc->auth, deadline_ms, &res, err);
        fc->registry_ms = pinlet_now_ms() - t0;
        pinlet_metrics_registry_request(fc->r->metrics, fc->host, k,
                                        (uint64_t)fc->registry_ms * 1000000);
        if (k < 0) {
                if (failure_is_outage(k) &&
                    (k != PINLET_ETIMEOUT || deadline_ms - t0 >= FAILING_MIN_BUDGET_MS))
                        failing_mark(fc->r, fc->host, k, pinlet_error_message(*err, k));
                return k;
        }
        /* never let a broken registry step put something into a request that is not a
         * digest */
        if (!res.digest || !pinlet_ref_digest_valid(res.digest)) {
                pinlet_resolution_done(&res);
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "registry step returned an invalid digest");
        }
        *ret_value = TAKE_PTR(res.digest);
        free(fc->endpoint);
        fc->endpoint = TAKE_PTR(res.endpoint);
        pinlet_resolution_done(&res);
        return 0;
}

static enum pinlet_resolve_source from_cache_source(enum pinlet_cache_source s)
{
        switch (s) {
        case PINLET_CACHE_SOURCE_CACHE:
                return PINLET_SOURCE_CACHE;
        case PINLET_CACHE_SOURCE_STALE:
                return PINLET_SOURCE_STALE;
        default:
                return PINLET_SOURCE_REGISTRY;
        }
}

/* The pin of q's reference: 1 found (ret filled), 0 none. */
static int from_pin(struct pinlet_resolver *r, const struct pinlet_resolve_query *q,
                    struct pinlet_resolve_answer *ret)
{
        char *digest = NULL;

        if (!r->pins || pinlet_pins_lookup(r->pins, q->key, &digest) < 0)
                return 0;
        if (!pinlet_ref_digest_valid(digest)) {
                free(digest);
                return 0;
        }
        free(ret->digest);
        ret->digest = digest;
        ret->source = PINLET_SOURCE_PIN;
        return 1;
}

/* The registry failed to answer (now, or within error_ttl): the outage fallbacks. Takes
 * the failure in ret->err; returns 0 when a fallback answered (ret->err then says why),
 * else the failure's code. */
static int outage_fallback(struct pinlet_resolver *r, const struct pinlet_resolve_query *q,
                           const char *key, int code, struct pinlet_resolve_answer *ret)
{
        enum pinlet_cache_source src;
        char *value = NULL;

        if (!failure_is_outage(code))
                return code;
        if (key && r->cache && pinlet_cache_lookup(r->cache, key, true, &value, &src, NULL) == 0) {
                ret->digest = value;
                ret->source = from_cache_source(src);
                ret->fallback = src == PINLET_CACHE_SOURCE_STALE;
                pinlet_metrics_cache_lookup(r->metrics, ret->fallback ? PINLET_METRICS_CACHE_STALE
                                                                      : PINLET_METRICS_CACHE_HIT);
                if (!ret->fallback) /* became fresh meanwhile: no failure to report */
                        pinlet_error_free(TAKE_PTR(ret->err));
                return 0;
        }
        if (q->purpose == PINLET_RESOLVE_STATUS && from_pin(r, q, ret)) {
                /* what was pulled is still what the node has */
                ret->fallback = true;
                return 0;
        }
        return code;
}

int pinlet_resolver_resolve(struct pinlet_resolver *r, const struct pinlet_resolve_query *q,
                            struct pinlet_resolve_answer *ret)
{
        _cleanup_free_ char *key = NULL, *host = NULL, *value = NULL;
        const struct pinlet_registry_auth *auth = NULL;
        struct fill_ctx fc;
        enum pinlet_cache_source src;
        int k;

        ret->registry_ms = -1;
        if (q->lock) {
                const char *digest, *file;

                if (pinlet_lock_set_lookup(q->lock, q->key, &digest, &file) == 0) {
                        ret->digest = strdup(digest);
                        if (!ret->digest)
                                return pinlet_error_set(&ret->err, -ENOMEM, "out of memory");
                        ret->source = PINLET_SOURCE_LOCK;
                        ret->lock_file = file;
                        return 0;
                }
        }
        ret->endpoint = strdup(pinlet_registry_api_host(q->ref->domain));
        if (!ret->endpoint)
                return pinlet_error_set(&ret->err, -ENOMEM, "out of memory");

        if (q->purpose == PINLET_RESOLVE_CREATE && from_pin(r, q, ret))
                return 0;

        k = cache_key(r, q, &key, &auth, &ret->err);
        if (k < 0)
                return k;
        host = pinlet_ref_host_key(q->ref);
        if (!host)
                return pinlet_error_set(&ret->err, -ENOMEM, "out of memory");

        if (r->cache) {
                k = pinlet_cache_lookup(r->cache, key, false, &value, &src, &ret->err);
                if (k == 0) {
                        pinlet_metrics_cache_lookup(r->metrics, PINLET_METRICS_CACHE_HIT);
                        ret->digest = TAKE_PTR(value);
                        ret->source = PINLET_SOURCE_CACHE;
                        return 0;
                }
                if (k != -EAGAIN)
                        return k; /* a cached answer (not found) or out of memory */
        }

        k = failing_check(r, host, &ret->err);
        if (k < 0)
                return outage_fallback(r, q, key, k, ret);

        if (!q->may_block) {
                ret->queue = TAKE_PTR(host);
                return PINLET_RESOLVE_DEFER;
        }

        fc = (struct fill_ctx){
                .r = r,
                .ref = q->ref,
                .auth = auth,
                .host = host,
                .registry_ms = -1,
        };
        if (!r->cache) {
                k = fill(&fc, key, q->deadline_ms, &value, &ret->err);
                src = PINLET_CACHE_SOURCE_REGISTRY;
        } else {
                int64_t t0 = pinlet_now_ms();

                k = pinlet_cache_get(r->cache, key, q->deadline_ms, fill, &fc, &value, &src,
                                     &ret->err);
                /* a follower of another caller's resolution waited about as long */
                if (k == 0 && src != PINLET_CACHE_SOURCE_CACHE && fc.registry_ms < 0)
                        fc.registry_ms = pinlet_now_ms() - t0;
        }
        ret->registry_ms = fc.registry_ms;
        if (fc.endpoint) {
                free(ret->endpoint);
                ret->endpoint = TAKE_PTR(fc.endpoint);
        }
        if (k < 0)
                return outage_fallback(r, q, NULL, k, ret);
        if (!pinlet_ref_digest_valid(value))
                return pinlet_error_set(&ret->err, PINLET_EPROTO, "cache held an invalid digest");
        ret->digest = TAKE_PTR(value);
        ret->source = from_cache_source(src);
        ret->fallback = src == PINLET_CACHE_SOURCE_STALE;
        if (r->cache)
                pinlet_metrics_cache_lookup(
                        r->metrics, src == PINLET_CACHE_SOURCE_CACHE   ? PINLET_METRICS_CACHE_HIT
                                    : src == PINLET_CACHE_SOURCE_STALE ? PINLET_METRICS_CACHE_STALE
                                                                       : PINLET_METRICS_CACHE_MISS);
        return 0;
}
