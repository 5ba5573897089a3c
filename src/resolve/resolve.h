/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The resolver: the ONE place that decides which digest an image tag means for a CRI call,
 * and where that answer comes from. The interceptors ask it one question per image slot
 * and get one answer back (digest, source, endpoint, error).
 *
 * Sources, in order (the first that answers wins):
 *
 * First, for every purpose: the lock set the call holds (lock files, src/lock). A tag the
 * lock names gets the locked digest and nothing else is asked: not the pin store, not the
 * cache, not the registry (a locked tag costs no round trip and works with the registry
 * down). Otherwise:
 *
 *   purpose   pin store            cache (fresh)   registry (via cache, single-flight)
 *   CREATE    first: what was      then            then
 *             pulled is what runs
 *   STATUS    only on an outage    first           then; on an outage: a stale cache
 *             (fallback)                                 entry, else the pin
 *   PULL      never (the pull      first           then; on an outage: a stale entry
 *             makes the pin)
 *
 * (Registry mirrors slot in as endpoints of the registry step.)
 *
 * Cache keys: "<reference> node" when the node's credentials resolve it, and "<reference>
 * auth:<salted SHA-256 of the credential>" when a PullImage carries credentials that apply
 * to the registry, so a caller whose credentials the registry would refuse gets that
 * refusal, not a digest resolved with someone else's secret. The node's credentials are
 * the Docker config files and the kubelet credential providers (registry/credprov.h): one
 * node-wide identity per reference, shared by every caller without request credentials,
 * so "node" names them all; a request's own credentials never share that key. The reference in a
 * key (and in the pin store: pinlet_ref_key) has its registry host in lower case: hosts are
 * case-insensitive, the repository path is lower case by grammar. The salt is per resolver
 * (per process): keys may be logged at debug level, and must not let anyone test password
 * guesses against an unsalted hash.
 *
 * Failing registries: a registry whose resolution failed to get an answer (connection
 * refused, reset or closed without an answer, DNS failure, timeout, 5xx, 429: the registry
 * client's PINLET_EUNAVAIL and PINLET_ETIMEOUT) is remembered for error_ttl_ms. Meanwhile
 * resolutions against it fail at once with the remembered cause (and take the outage
 * fallbacks above) instead of each waiting out its own timeout. A timeout counts only when
 * the registry had at least FAILING_MIN_BUDGET_MS to answer: a call that came with almost
 * no time left says nothing about the registry.
 *
 * Never blocking: with query.may_block false (the gRPC completion-queue thread) the resolver
 * answers from the pin store, the cache and the failing-registry memory only, and returns
 * PINLET_RESOLVE_DEFER when a registry round trip is needed; answer.queue then names the
 * registry (its lower-case host), for the caller's per-registry worker queue. With
 * may_block true it makes the round trip, bounded by query.deadline_ms.
 *
 * Thread-safety: pinlet_resolver_resolve may be called from any number of threads; the
 * cache, the pin store and the registry client are thread-safe, the failing-registry table
 * has its own mutex. Ownership: the resolver borrows everything in its options.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "ref/ref.h"
#include "registry/creds.h"
#include "registry/registry.h"
#include "util/error.h"

struct pinlet_cache;
struct pinlet_pins;
struct pinlet_lock_set;
struct pinlet_metrics;

enum pinlet_resolve_source {
        PINLET_SOURCE_NONE,     /* no answer */
        PINLET_SOURCE_LOCK,     /* a lock file */
        PINLET_SOURCE_PIN,      /* the pin store */
        PINLET_SOURCE_CACHE,    /* a fresh cache entry (or another caller's resolution) */
        PINLET_SOURCE_REGISTRY, /* asked the registry now */
        PINLET_SOURCE_STALE,    /* the registry failed: an expired cache entry */
};

/* "lock", "pin", "cache", "registry", "stale"; NULL for NONE. */
const char *pinlet_resolve_source_to_string(enum pinlet_resolve_source s);

enum pinlet_resolve_purpose {
        PINLET_RESOLVE_PULL,   /* PullImage: the request's credentials */
        PINLET_RESOLVE_STATUS, /* ImageStatus: the node's credentials, pin on an outage */
        PINLET_RESOLVE_CREATE, /* CreateContainer: the pin first */
};

/* The registry step, injectable for tests: same contract as pinlet_registry_resolve(). */
typedef int (*pinlet_resolve_registry_fn)(void *ctx, const struct pinlet_ref *ref,
                                          const struct pinlet_registry_auth *auth,
                                          int64_t deadline_ms, struct pinlet_resolution *ret,
                                          struct pinlet_error **err);

struct pinlet_resolver_options {
        struct pinlet_registry *registry;       /* used when registry_fn is NULL */
        pinlet_resolve_registry_fn registry_fn; /* NULL: pinlet_registry_resolve(registry) */
        void *registry_ctx;
        struct pinlet_cache *cache;     /* NULL: every resolution asks the registry */
        struct pinlet_pins *pins;       /* NULL: no pins */
        uint64_t error_ttl_ms;          /* failing-registry memory; 0: off */
        struct pinlet_metrics *metrics; /* NULL: none; cache lookups, registry requests */
};

struct pinlet_resolver;

/* Borrows everything in o. -EINVAL without registry and registry_fn. */
int pinlet_resolver_new(const struct pinlet_resolver_options *o, struct pinlet_resolver **ret,
                        struct pinlet_error **err);
void pinlet_resolver_free(struct pinlet_resolver *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_resolver *, pinlet_resolver_free)

struct pinlet_resolve_query {
        const struct pinlet_ref *ref; /* a reference with a tag and no digest */
        const char *key;              /* pinlet_ref_key(ref) */
        enum pinlet_resolve_purpose purpose;
        const struct pinlet_registry_auth *auth; /* PULL: the request's AuthConfig, or NULL */
        int64_t deadline_ms;                     /* absolute CLOCK_MONOTONIC ms */
        bool may_block;
        /* The lock set of the whole call (one set per call: never a mix of an old and a
         * new one), or NULL when no lock files are configured. Borrowed. */
        const struct pinlet_lock_set *lock;
};

/* One answer; release with pinlet_resolve_answer_done(). */
struct pinlet_resolve_answer {
        char *digest; /* success: a valid digest ("sha256:<hex>") */
        enum pinlet_resolve_source source;
        char *endpoint;      /* owned: the endpoint that answered ("https://mirror:5000") when
                              * this call asked the registry; else the registry's API host
                              * that would be asked; NULL for a lock answer */
        int64_t registry_ms; /* the round trip; < 0 when none was made */
        /* Failure: the cause (its message names the image and the registry). Success from
         * a fallback (STALE, or PIN on an outage): why the registry was not used. */
        struct pinlet_error *err;
        bool fallback;         /* success served by an outage fallback (stale entry or pin) */
        const char *lock_file; /* source LOCK: the file that named the tag (borrowed from
                                * the query's lock set) */
        char *queue;           /* PINLET_RESOLVE_DEFER: the worker queue to run the round trip on */
};

void pinlet_resolve_answer_done(struct pinlet_resolve_answer *a);

#define PINLET_RESOLVE_DEFER 1

/*
 * Answers q. Returns 0 with ret->digest and ret->source set; PINLET_RESOLVE_DEFER (only
 * when !q->may_block) with ret->queue set; or a negative class from util/error.h with
 * ret->err set (PINLET_ENOTFOUND, PINLET_EUNAUTH, PINLET_EUNAVAIL, PINLET_ETIMEOUT, ...).
 * *ret must be zeroed (or done) before the call.
 */
int pinlet_resolver_resolve(struct pinlet_resolver *r, const struct pinlet_resolve_query *q,
                            struct pinlet_resolve_answer *ret);

/* Whether host (any case) is remembered as failing now. For tests and metrics. */
bool pinlet_resolver_registry_failing(struct pinlet_resolver *r, const char *host);
