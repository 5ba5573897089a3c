/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prometheus metrics and health endpoints for the daemon.
 *
 * One struct pinlet_metrics holds every counter pinlet pushes (CRI calls, decisions,
 * registry round trips, cache lookups, config reloads) and, when opts.listen is set, an
 * HTTP server (libmicrohttpd, on its OWN internal polling thread) that serves
 *
 *   GET /metrics  the Prometheus text exposition format 0.0.4
 *                 (Content-Type: text/plain; version=0.0.4; charset=utf-8)
 *   GET /healthz  200 "ok" when pinlet_metrics_heartbeat() was called within the last
 *                 heartbeat_max_age_ms (default 1000 ms), else 503 with how long ago
 *   GET /readyz   200 "ready" when pinlet_metrics_set_ready(m, true) was called and the
 *                 runtime backend is up (opts.backend_up), else 503, the reasons in the body
 *
 * HEAD is answered like GET without a body; other methods get 405 (with Allow), other
 * paths 404.
 *
 * Never blocking a CRI call: every update below is a relaxed atomic add (or store) into
 * storage fixed when the object is created: arrays indexed by the known label values
 * (CRI method, gRPC code, decision, source, outcome, histogram bucket). A scrape only
 * reads those atomics, so it never takes a lock a CRI call could wait on. The one label
 * set not known in advance, the registry host, lives in a fixed array of slots claimed
 * with compare-and-swap (no mutex either): the configured registries, then the first
 * max_other_registries hosts seen (default 50), then "other".
 * A scrape is not a snapshot: counters move while it is written. Each histogram's _count
 * is the sum of its buckets as read, so _count always equals the +Inf bucket; its _sum
 * may include an observation whose bucket was read just before it landed.
 *
 * Gauges that other modules already know (cache size, pin count, lock entries and reload
 * counts, audit write errors, backend connectivity) are not pushed: the callbacks in the
 * options are called at scrape time, on the HTTP thread. They must be thread-safe and
 * cheap (no I/O, no waiting on a lock a writer holds across I/O).
 *
 * Every function taking a struct pinlet_metrics * accepts NULL and then does nothing, so
 * call sites need no "is metrics on" test.
 *
 * Threads: everything may be called from any thread at any time, except new and free
 * (one owner). pinlet_metrics_new() starts the HTTP thread, which inherits the caller's
 * signal mask: create it after the daemon blocked its signals.
 *
 * WHERE THE DAEMON CALLS WHAT (the lead wires these; see each function too):
 *   src/cli/serve.c     new (after pipeline_init, before pinlet_proxy_new), set_ready(true)
 *                       after pinlet_proxy_new succeeded (the socket listens) and
 *                       set_ready(false) when shutdown starts, free after pinlet_proxy_free
 *   src/proxy/proxy.c   heartbeat on every wake of the completion-queue loop (it wakes at
 *                       least every 500 ms); cri_request when a call ends (status sent)
 *   src/intercept       decision next to every pinlet_audit_write()
 *   src/resolve         cache_lookup for every cache answer; registry_request for every
 *                       registry round trip (answer.registry_ms >= 0)
 *   config live reload  config_reload after every reload attempt
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/macro.h"

struct pinlet_metrics;

enum pinlet_metrics_backend {
        PINLET_METRICS_BACKEND_RUNTIME, /* label backend="runtime" */
        PINLET_METRICS_BACKEND_IMAGE,   /* label backend="image" */
        _PINLET_METRICS_BACKEND_MAX,
};

enum pinlet_metrics_cache_result {
        PINLET_METRICS_CACHE_HIT,   /* a fresh entry (or another caller's resolution) */
        PINLET_METRICS_CACHE_MISS,  /* the registry was asked */
        PINLET_METRICS_CACHE_STALE, /* the registry failed: an expired entry was served */
        _PINLET_METRICS_CACHE_MAX,
};

/* What a scrape reads from src/lock (struct pinlet_lock_stats). */
struct pinlet_metrics_lock_stats {
        uint64_t entries;
        uint64_t reloads_ok;
        uint64_t reloads_failed;
};

/* Monotonic milliseconds (only differences matter), injectable for tests. */
typedef int64_t (*pinlet_metrics_clock_fn)(void *clock_ctx);

#define PINLET_METRICS_DEFAULT_MAX_OTHER_REGISTRIES 50
#define PINLET_METRICS_DEFAULT_HEARTBEAT_MAX_AGE_MS 1000
#define PINLET_METRICS_EXPOSITION_MAX               (4u << 20) /* bytes of one /metrics body */

/* Everything is borrowed for the duration of pinlet_metrics_new() only (copied). */
struct pinlet_metrics_options {
        /* "HOST:PORT" ("127.0.0.1:9464", "[::1]:9464", "localhost:9464"; port 0 picks one,
         * see pinlet_metrics_address()) or "unix:/PATH" (mode 0660; a stale socket there
         * is replaced, any other file is an error). NULL or "": no HTTP server, the
         * counters still work (pinlet_metrics_format()). */
        const char *listen;
        const char *version; /* pinlet_build_info{version}; NULL: PINLET_VERSION */
        /* The CRI methods that get their own "method" label value, as names ("PullImage")
         * or paths ("/runtime.v1.ImageService/PullImage": the part after the last '/');
         * NULL-terminated, duplicates fine. Anything else counts as "other". The daemon
         * passes the paths of pinlet_cri_methods() plus "GetContainerEvents", so the list
         * lives in one place (src/intercept/methods.c). */
        const char *const *cri_methods;
        /* The configured registry hosts (NULL-terminated): each always has its own
         * "registry" label value, and they do not count against max_other_registries. */
        const char *const *registries;
        size_t max_other_registries;   /* 0: PINLET_METRICS_DEFAULT_MAX_OTHER_REGISTRIES */
        int64_t heartbeat_max_age_ms;  /* 0: PINLET_METRICS_DEFAULT_HEARTBEAT_MAX_AGE_MS */
        pinlet_metrics_clock_fn clock; /* NULL: CLOCK_MONOTONIC_COARSE (a few ns per read) */
        void *clock_ctx;

        /* Scrape-time callbacks (any may be NULL: the metric then reads 0; a NULL
         * backend_up reads "down"). Called on the HTTP thread with userdata. */
        void *userdata;
        uint64_t (*cache_entries)(void *userdata); /* pinlet_cache_size() */
        uint64_t (*pins)(void *userdata);          /* pinlet_pins_size() */
        void (*lock_stats)(void *userdata, struct pinlet_metrics_lock_stats *ret);
        uint64_t (*audit_write_errors)(void *userdata); /* pinlet_audit_stats()'s failed */
        /* Whether the backend's channel is connected (gRPC's GRPC_CHANNEL_READY). With no
         * separate image endpoint, answer for the runtime's channel for both. */
        bool (*backend_up)(void *userdata, enum pinlet_metrics_backend b);
};

/* Creates the counters and, with opts->listen, binds the socket and starts the HTTP
 * thread. Errors: -EINVAL (a listen address that does not parse: *err says why), the
 * -errno of socket/bind/listen (*err names the address), -ENOMEM. */
/* Checks a metrics.listen value as pinlet_metrics_new() reads it, without binding (for
 * check-config): the syntax, the host resolving, an absolute unix path that fits. NULL
 * or "" is fine (off). -EINVAL with *err naming the key. */
int pinlet_metrics_check_listen(const char *listen, struct pinlet_error **err);

int pinlet_metrics_new(const struct pinlet_metrics_options *opts, struct pinlet_metrics **ret,
                       struct pinlet_error **err);

/* Stops the HTTP thread (waits for a response in progress), removes a unix socket, frees.
 * NULL is fine. Must not race with other calls on m. */
void pinlet_metrics_free(struct pinlet_metrics *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_metrics *, pinlet_metrics_free)
#define _cleanup_metrics_ _cleanup_(pinlet_metrics_freep)

/* Where the server listens: "127.0.0.1:43127" (the port the kernel chose for port 0),
 * "[::1]:9464", "unix:/run/pinlet/metrics.sock"; NULL without a server. Owned by m. */
const char *pinlet_metrics_address(struct pinlet_metrics *m);

/* The TCP port the server listens on; 0 for a unix socket or without a server. */
unsigned pinlet_metrics_port(struct pinlet_metrics *m);

/*
 * HOT PATH: proxy.c, completion-queue thread, when a call ends (its status known: sent to
 * the client, or received from the backend and forwarded). path is the call's ":path";
 * grpc_code a grpc_status_code (out of range counts as "UNKNOWN"); duration_ns from
 * accepting the call to its status. A lock-free binary search of the method name
 * and three relaxed atomic adds.
 */
void pinlet_metrics_cri_request(struct pinlet_metrics *m, const char *path, int grpc_code,
                                uint64_t duration_ns);

/*
 * src/intercept, next to each pinlet_audit_write() (CQ thread or worker): method the
 * short CRI name ("PullImage"), decision a PINLET_AUDIT_* value ("substituted", ...,
 * "unlocked"), source the record's source ("lock", "pin", "cache", "registry", "stale";
 * NULL or "" count as "none"). A tag_moved decision also counts pinlet_tag_moved_total.
 * Returns -EINVAL (nothing counted) for a decision or source not in those lists.
 */
int pinlet_metrics_decision(struct pinlet_metrics *m, const char *method, const char *decision,
                            const char *source);

/*
 * src/resolve, after each registry round trip (worker threads only: the CQ thread never
 * makes one): host the registry asked (answer.endpoint; any case: compared in lower
 * case), code 0 or the negative class of the failure (util/error.h: not_found,
 * unauthorized, unavailable, timeout, protocol, tls; anything else is "other"),
 * duration_ns the round trip (answer.registry_ms * 1000000). Lock-free (a scan of at most
 * configured + max_other_registries slots, one compare-and-swap for a new host).
 */
void pinlet_metrics_registry_request(struct pinlet_metrics *m, const char *host, int code,
                                     uint64_t duration_ns);

/* src/resolve, for each answer that consulted the cache. One relaxed add. */
void pinlet_metrics_cache_lookup(struct pinlet_metrics *m, enum pinlet_metrics_cache_result r);

/* After each configuration reload attempt; a success also sets
 * pinlet_config_last_reload_success_timestamp_seconds to now (it starts at the time
 * pinlet_metrics_new() ran: the daemon only starts with a valid configuration). */
void pinlet_metrics_config_reload(struct pinlet_metrics *m, bool success);

/*
 * HOT PATH: proxy.c, the completion-queue loop, on every wake (including its periodic
 * ≤ 500 ms timeout): one clock read and one relaxed atomic store. /healthz turns 503
 * when the loop stops calling it for longer than heartbeat_max_age_ms.
 */
void pinlet_metrics_heartbeat(struct pinlet_metrics *m);

/* serve.c: true once the CRI socket listens, false when shutdown begins. One store. */
void pinlet_metrics_set_ready(struct pinlet_metrics *m, bool listening);

/*
 * Renders the exposition (what GET /metrics answers): *ret_text is a malloc'ed,
 * NUL-terminated string of *ret_len bytes (ret_len may be NULL). Calls the scrape-time
 * callbacks. -ENOMEM, or -E2BIG past PINLET_METRICS_EXPOSITION_MAX.
 */
int pinlet_metrics_format(struct pinlet_metrics *m, char **ret_text, size_t *ret_len);

/* CLOCK_MONOTONIC in nanoseconds: a start time for cri_request's duration_ns. */
uint64_t pinlet_metrics_now_ns(void);
