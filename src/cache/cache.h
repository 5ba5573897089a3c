/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Resolution cache: maps a key (the caller's string; the lead uses a normalized reference
 * such as "docker.io/library/nginx:1.25") to an opaque value string (a digest).
 *
 * Freshness, measured with the cache's clock (injectable for tests):
 *   - a value is served from the cache for ttl_ms after it was resolved (source CACHE);
 *   - after that a lookup resolves again (source REGISTRY). If that fresh resolution fails
 *     with PINLET_EUNAVAIL or PINLET_ETIMEOUT and the old value is less than
 *     ttl_ms + stale_if_error_ms old, the old value is returned (source STALE). Not on
 *     not-found, unauthorized or any other error: those are answers, not outages;
 *   - a PINLET_ENOTFOUND answer is cached for negative_ttl_ms (0 disables) and returned
 *     again with the same class and message; other errors are never cached.
 *   - at most max_entries entries; the least recently used one is evicted first.
 *
 * Single-flight: concurrent lookups of one key that miss share ONE resolution. The first
 * caller (leader) runs the resolver without holding the cache lock; the others (followers)
 * wait for its result, each bounded by its own deadline. A follower whose deadline passes
 * returns PINLET_ETIMEOUT (or, like a timed-out resolution, the old value as STALE within
 * the stale window, *err set) while the leader carries on (its result is still cached). The
 * resolver gets the LEADER's ctx and deadline: followers get the leader's answer, so the
 * key must contain everything that changes the answer (for example, resolution with
 * different credentials needs different keys). The cache compares keys as plain strings.
 *
 * Deadlines are absolute CLOCK_MONOTONIC milliseconds (pinlet_now_ms(), util/time.h),
 * always on the real clock, also when a test injects a clock for the entries' ages.
 *
 * Thread-safety: every function may be called from any thread; one mutex guards the
 * table, never held while the resolver runs. pinlet_cache_free() must not race with
 * other calls on the same cache.
 *
 * Ownership: returned values (*ret_value) and errors (*err) belong to the caller. The
 * cache copies keys and values.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/time.h"

struct pinlet_cache;

/* Resolves key before deadline_ms. Returns >= 0 with *ret_value set (a malloc'ed string
 * the cache takes), or a negative class (util/error.h) with *err set. Runs on the leader's
 * thread without the cache lock; it must not look up the same key in the same cache (it
 * would wait for itself until its deadline). */
typedef int (*pinlet_cache_fill_fn)(void *ctx, const char *key, int64_t deadline_ms,
                                    char **ret_value, struct pinlet_error **err);

/* Monotonic milliseconds; only differences matter. */
typedef int64_t (*pinlet_clock_fn)(void *clock_ctx);

enum pinlet_cache_source {
        PINLET_CACHE_SOURCE_CACHE,    /* fresh entry, or the result of a resolution in
                                       * progress we waited on (single-flight follower) */
        PINLET_CACHE_SOURCE_REGISTRY, /* resolved now, by this caller */
        PINLET_CACHE_SOURCE_STALE,    /* resolution failed (unavailable/timeout): old value */
};

struct pinlet_cache_options {
        uint64_t ttl_ms;            /* 0: values are never served from the cache */
        uint64_t stale_if_error_ms; /* 0: never serve stale */
        uint64_t negative_ttl_ms;   /* 0: not-found is not cached */
        size_t max_entries;         /* 0 means the default, 10000 */
        pinlet_clock_fn clock;      /* NULL: pinlet_now_ms */
        void *clock_ctx;
};

#define PINLET_CACHE_DEFAULT_MAX_ENTRIES 10000
#define PINLET_CACHE_KEY_MAX             4096

/* Returns 0 or -ENOMEM. */
int pinlet_cache_new(const struct pinlet_cache_options *o, struct pinlet_cache **ret);
void pinlet_cache_free(struct pinlet_cache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_cache *, pinlet_cache_free)
#define _cleanup_cache_ _cleanup_(pinlet_cache_freep)

/*
 * Looks key up, resolving with fn(ctx, ...) on a miss (shared with concurrent callers).
 * Returns 0 with *ret_value (owned by the caller) and *ret_source set, or a negative code
 * with *err set:
 *   - the resolver's error (class and message), also when a follower got it from the
 *     leader or when it comes from the negative cache;
 *   - PINLET_ETIMEOUT when this caller's deadline passed while waiting for the leader;
 *   - PINLET_EINVAL for an empty key or one longer than PINLET_CACHE_KEY_MAX;
 *   - -ENOMEM.
 * With source STALE the call succeeds (returns 0) AND, when err is not NULL, *err holds
 * the failure that made the cache fall back (for logs and the audit record); the caller
 * frees it. In every other success *err is left untouched.
 */
int pinlet_cache_get(struct pinlet_cache *c, const char *key, int64_t deadline_ms,
                     pinlet_cache_fill_fn fn, void *ctx, char **ret_value,
                     enum pinlet_cache_source *ret_source, struct pinlet_error **err);

/* A fresh value for key without resolving: 0 with *ret_value (caller owns), -ENOENT when
 * there is no fresh positive entry, -ENOMEM. Does not change the LRU order. */
int pinlet_cache_peek(struct pinlet_cache *c, const char *key, char **ret_value);

/*
 * Looks key up without resolving and without waiting (for the gRPC completion-queue
 * thread: only the cache's mutex is taken, never held while anything resolves):
 *   - 0, *ret_value (caller owns) and *ret_source CACHE: a fresh positive entry (the LRU
 *     order is refreshed, as for a get);
 *   - 0 and STALE, only with allow_stale: an expired positive entry still within
 *     stale_if_error_ms (the caller knows the registry is failing);
 *   - a fresh negative entry's class (PINLET_ENOTFOUND) with *err holding its message;
 *   - -EAGAIN: nothing usable (the caller must resolve); -ENOMEM.
 */
int pinlet_cache_lookup(struct pinlet_cache *c, const char *key, bool allow_stale, char **ret_value,
                        enum pinlet_cache_source *ret_source, struct pinlet_error **err);

/* Drops key's entry (positive or negative); an in-flight resolution is not affected. */
void pinlet_cache_invalidate(struct pinlet_cache *c, const char *key);

/* Number of entries held (positive and negative, fresh or not). */
size_t pinlet_cache_size(struct pinlet_cache *c);

/* Number of callers waiting for a resolution in progress (single-flight followers), over
 * all keys. For tests: a follower counted here is attached to the flight and gets its
 * result, so a test may finish the resolution once the count is what it expects instead of
 * sleeping and hoping every thread got there. */
size_t pinlet_cache_waiters(struct pinlet_cache *c);

const char *pinlet_cache_source_to_string(enum pinlet_cache_source s); /* "cache", ... */
