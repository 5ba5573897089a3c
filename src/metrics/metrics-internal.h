/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the files of src/metrics share: the counters (metrics.c), the HTTP server
 * (http.c) and the process metrics read from /proc (process.c). Not for other modules.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics/metrics.h"
#include "util/buf.h"
#include "util/grpc_names.h"

/* gRPC status codes 0 (OK) .. 16 (UNAUTHENTICATED); anything else counts as UNKNOWN. */
#define N_GRPC_CODES PINLET_GRPC_N_CODES
#define N_DECISIONS  8 /* substituted ... unlocked, would_reject, verified */
#define N_SOURCES    6 /* none, lock, pin, cache, registry, stale */
#define N_OUTCOMES   8 /* ok ... other */
#define MAX_BUCKETS  17

/* One histogram: per-bucket counts, NOT cumulative (an observation adds to exactly one
 * bucket; the scrape sums them), the last one being +Inf; the sum in integer nanoseconds
 * so that it is exact and needs no floating-point atomics. */
struct histogram {
        _Atomic uint64_t buckets[MAX_BUCKETS + 1];
        _Atomic uint64_t sum_ns;
};

/* Bucket upper bounds: the label text ("0.005") and the same in nanoseconds. */
struct bucket_bounds {
        size_t n;
        const char *const *le;
        const uint64_t *le_ns;
};

struct cri_method_stats {
        _Atomic uint64_t codes[N_GRPC_CODES];
        struct histogram duration;
        _Atomic uint64_t decisions[N_DECISIONS][N_SOURCES];
};

/* A registry label value. name is NULL until claimed (compare-and-swap), then never
 * changes; it is owned by the struct pinlet_metrics. hash (of name, never 0) is stored by
 * the claimer just after the name: 0 means "not yet known", compare the name then. */
struct registry_slot {
        _Atomic(char *) name;
        _Atomic uint64_t hash;
        _Atomic uint64_t outcomes[N_OUTCOMES];
        struct histogram duration;
};

struct pinlet_metrics {
        struct pinlet_metrics_options o; /* callbacks and clock; pointers not kept */
        char *version;

        /* CRI method names, sorted and unique (bsearch); methods[n_methods] is "other". */
        char **method_names;
        size_t n_methods;
        struct cri_method_stats *methods; /* n_methods + 1 */

        /* [0, n_configured): configured registries; then max_other claimed on first use;
         * the last one is "other". */
        struct registry_slot *registries;
        size_t n_configured, max_other, n_registry_slots;

        _Atomic uint64_t cache_lookups[_PINLET_METRICS_CACHE_MAX];
        _Atomic uint64_t tag_moved;
        _Atomic uint64_t config_reloads_ok, config_reloads_failed;
        _Atomic int64_t config_last_success_ns; /* CLOCK_REALTIME */

        _Atomic int64_t heartbeat_ms; /* o.clock; INT64_MIN: never */
        _Atomic bool listening;

        /* HTTP server (http.c); NULL/unused without opts.listen. */
        struct MHD_Daemon *daemon;
        char *address;   /* "127.0.0.1:PORT" or "unix:/path" */
        char *unix_path; /* removed at free */
        unsigned port;
};

int64_t metrics_clock_now(struct pinlet_metrics *m);

/* http.c: binds opts->listen and starts the server. */
int metrics_http_start(struct pinlet_metrics *m, const char *listen, struct pinlet_error **err);
void metrics_http_stop(struct pinlet_metrics *m);

/* The health answers (also used by tests through the HTTP server). ret_reason: static or
 * written into buf. */
bool metrics_healthy(struct pinlet_metrics *m, char *buf, size_t size);
bool metrics_ready(struct pinlet_metrics *m, char *buf, size_t size);

/* process.c: appends the process_* families. Missing /proc data leaves a metric out. */
int metrics_format_process(struct pinlet_buf *b);

/* metrics.c helpers process.c uses. */
int metrics_appendf(struct pinlet_buf *b, const char *fmt, ...) _printf_(2, 3);
int metrics_header(struct pinlet_buf *b, const char *name, const char *type, const char *help);
/* "12.000345" from nanoseconds, trailing zeros (and the dot) dropped: exact. */
int metrics_append_ns_as_seconds(struct pinlet_buf *b, uint64_t ns);
