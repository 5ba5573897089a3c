/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The counters and the exposition text (Prometheus text format 0.0.4, see
 * https://prometheus.io/docs/instrumenting/exposition_formats/): for each family a
 * "# HELP" and a "# TYPE" line, then its samples; label values escape \, " and newline.
 * The text is checked by `promtool check metrics` in the tests (integration/metrics).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "metrics/metrics-internal.h"
#include "util/error.h"
#include "util/str.h"

#ifndef PINLET_VERSION
#define PINLET_VERSION "unknown"
#endif

/* Registry hosts longer than this are counted as "other": a DNS name is at most 253 bytes,
 * plus ":port". */
#define HOST_MAX 262

#define GRPC_CODE_UNKNOWN 2

/* The audit record's decision values (audit.h PINLET_AUDIT_*), in the same order. */
static const char *const decision_names[N_DECISIONS] = {
        "substituted", "would_substitute", "passed_through", "rejected",
        "tag_moved",   "unlocked",         "would_reject",   "verified",
};
#define DECISION_TAG_MOVED 4

/* resolve.h's pinlet_resolve_source_to_string() values; "none" for no source. */
static const char *const source_names[N_SOURCES] = {
        "none", "lock", "pin", "cache", "registry", "stale",
};

static const char *const outcome_names[N_OUTCOMES] = {
        "ok", "not_found", "unauthorized", "unavailable", "timeout", "protocol", "tls", "other",
};

static const char *const cache_result_names[_PINLET_METRICS_CACHE_MAX] = {
        [PINLET_METRICS_CACHE_HIT] = "hit",
        [PINLET_METRICS_CACHE_MISS] = "miss",
        [PINLET_METRICS_CACHE_STALE] = "stale",
};

static const char *const backend_names[_PINLET_METRICS_BACKEND_MAX] = {
        [PINLET_METRICS_BACKEND_RUNTIME] = "runtime",
        [PINLET_METRICS_BACKEND_IMAGE] = "image",
};

/* CRI calls: a Version or a cache hit takes well under a millisecond through the proxy
 * (docs/PERFORMANCE.md), a PullImage of a large image minutes: 0.5 ms .. 2 min. */
static const char *const cri_le[] = {
        "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
        "0.5",    "1",     "2.5",    "5",     "10",   "30",    "60",   "120",
};
static const uint64_t cri_le_ns[] = {
        500000,     1000000,     2500000,     5000000,     10000000,     25000000,
        50000000,   100000000,   250000000,   500000000,   1000000000,   2500000000,
        5000000000, 10000000000, 30000000000, 60000000000, 120000000000,
};
static const struct bucket_bounds cri_buckets = { ELEMENTSOF(cri_le), cri_le, cri_le_ns };

/* Registry round trips (HEAD of a manifest, maybe a token first): 5 ms .. 30 s (the
 * resolver's own timeout bounds them). */
static const char *const registry_le[] = {
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
};
static const uint64_t registry_le_ns[] = {
        5000000,   10000000,   25000000,   50000000,   100000000,   250000000,
        500000000, 1000000000, 2500000000, 5000000000, 10000000000, 30000000000,
};
static const struct bucket_bounds registry_buckets = { ELEMENTSOF(registry_le), registry_le,
                                                       registry_le_ns };

_Static_assert(ELEMENTSOF(cri_le) == ELEMENTSOF(cri_le_ns), "cri buckets");
_Static_assert(ELEMENTSOF(registry_le) == ELEMENTSOF(registry_le_ns), "registry buckets");
_Static_assert(ELEMENTSOF(cri_le) <= MAX_BUCKETS && ELEMENTSOF(registry_le) <= MAX_BUCKETS,
               "MAX_BUCKETS");

#define relaxed memory_order_relaxed

static int64_t clock_coarse_ms(void *ctx)
{
        struct timespec ts;

        /* COARSE: a few ns (no vDSO TSC read); its ~4 ms resolution is plenty for a 1 s
         * heartbeat window. */
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t metrics_clock_now(struct pinlet_metrics *m)
{
        return m->o.clock(m->o.clock_ctx);
}

uint64_t pinlet_metrics_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t realtime_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- updates (hot paths: no locks, no allocation) ---- */

static void histogram_observe(struct histogram *h, const struct bucket_bounds *bb, uint64_t ns)
{
        size_t i = 0;

        while (i < bb->n && ns > bb->le_ns[i])
                i++;
        atomic_fetch_add_explicit(&h->buckets[i], 1, relaxed);
        atomic_fetch_add_explicit(&h->sum_ns, ns, relaxed);
}

static int cmp_name(const void *key, const void *elem)
{
        return strcmp(key, *(char *const *)elem);
}

/* The method's index; n_methods ("other") when unknown. The table is immutable after
 * pinlet_metrics_new(), so no lock. */
static size_t method_index(struct pinlet_metrics *m, const char *name)
{
        char *const *p;

        if (!name || !*name)
                return m->n_methods;
        p = bsearch(name, m->method_names, m->n_methods, sizeof(char *), cmp_name);
        return p ? (size_t)(p - m->method_names) : m->n_methods;
}

static const char *path_method(const char *path)
{
        const char *slash = strrchr(path, '/');

        return slash ? slash + 1 : path;
}

void pinlet_metrics_cri_request(struct pinlet_metrics *m, const char *path, int grpc_code,
                                uint64_t duration_ns)
{
        struct cri_method_stats *s;

        if (!m)
                return;
        s = &m->methods[method_index(m, path ? path_method(path) : NULL)];
        if (grpc_code < 0 || grpc_code >= N_GRPC_CODES)
                grpc_code = GRPC_CODE_UNKNOWN;
        atomic_fetch_add_explicit(&s->codes[grpc_code], 1, relaxed);
        histogram_observe(&s->duration, &cri_buckets, duration_ns);
}

static int name_index(const char *const *names, size_t n, const char *s)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(names[i], s) == 0)
                        return (int)i;
        return -1;
}

int pinlet_metrics_decision(struct pinlet_metrics *m, const char *method, const char *decision,
                            const char *source)
{
        int d, src;

        if (!m)
                return 0;
        d = decision ? name_index(decision_names, N_DECISIONS, decision) : -1;
        /* "none" is the label value for no source, never what a caller passes. */
        src = !source || !*source ? 0 : name_index(source_names + 1, N_SOURCES - 1, source);
        if (d < 0 || src < 0)
                return -EINVAL;
        if (source && *source)
                src++;
        atomic_fetch_add_explicit(&m->methods[method_index(m, method)].decisions[d][src], 1,
                                  relaxed);
        if (d == DECISION_TAG_MOVED)
                atomic_fetch_add_explicit(&m->tag_moved, 1, relaxed);
        return 0;
}

static size_t outcome_index(int code)
{
        switch (code) {
        case 0:
                return 0;
        case PINLET_ENOTFOUND:
                return 1;
        case PINLET_EUNAUTH:
                return 2;
        case PINLET_EUNAVAIL:
                return 3;
        case PINLET_ETIMEOUT:
                return 4;
        case PINLET_EPROTO:
                return 5;
        case PINLET_ETLS:
                return 6;
        default:
                return 7;
        }
}

/* FNV-1a, 64 bits, never 0 (0 marks a slot whose hash is not stored yet). */
static uint64_t host_hash(const char *s)
{
        uint64_t h = 14695981039346656037u;

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211u;
        return h | 1;
}

/* The slot of host (already lower case). Lock-free: slots are claimed in order with a
 * compare-and-swap and never released, so a scan that reaches an empty slot knows host
 * is in none before it; two threads racing for one slot with the same host both end on
 * the winner's slot (the loser compares against what won). The hash spares the strcmp()
 * of every other slot: ~60 slots scan in tens of nanoseconds. */
static struct registry_slot *registry_slot(struct pinlet_metrics *m, const char *host)
{
        struct registry_slot *other = &m->registries[m->n_registry_slots - 1];
        _cleanup_free_ char *mine = NULL;
        uint64_t h = host_hash(host);

        for (size_t i = 0; i < m->n_registry_slots - 1; i++) {
                struct registry_slot *s = &m->registries[i];
                char *name = atomic_load_explicit(&s->name, memory_order_acquire);
                uint64_t sh;

                if (!name) {
                        if (!mine) {
                                mine = strdup(host);
                                if (!mine)
                                        return other;
                        }
                        if (atomic_compare_exchange_strong_explicit(&s->name, &name, mine,
                                                                    memory_order_acq_rel,
                                                                    memory_order_acquire)) {
                                mine = NULL; /* the slot owns it now */
                                atomic_store_explicit(&s->hash, h, memory_order_release);
                                return s;
                        }
                        /* Lost the race: name is the winner's. */
                }
                sh = atomic_load_explicit(&s->hash, memory_order_acquire);
                if ((sh == 0 || sh == h) && strcmp(name, host) == 0)
                        return s;
        }
        return other;
}

void pinlet_metrics_registry_request(struct pinlet_metrics *m, const char *host, int code,
                                     uint64_t duration_ns)
{
        struct registry_slot *s;
        char lower[HOST_MAX + 1];
        size_t n;

        if (!m)
                return;
        n = host ? strlen(host) : 0;
        if (n == 0 || n > HOST_MAX) {
                s = &m->registries[m->n_registry_slots - 1];
        } else {
                /* Hosts are case-insensitive: one label value per host, in lower case. */
                for (size_t i = 0; i <= n; i++)
                        lower[i] =
                                (host[i] >= 'A' && host[i] <= 'Z') ? host[i] - 'A' + 'a' : host[i];
                s = registry_slot(m, lower);
        }
        atomic_fetch_add_explicit(&s->outcomes[outcome_index(code)], 1, relaxed);
        histogram_observe(&s->duration, &registry_buckets, duration_ns);
}

void pinlet_metrics_cache_lookup(struct pinlet_metrics *m, enum pinlet_metrics_cache_result r)
{
        if (!m || (unsigned)r >= _PINLET_METRICS_CACHE_MAX)
                return;
        atomic_fetch_add_explicit(&m->cache_lookups[r], 1, relaxed);
}

void pinlet_metrics_config_reload(struct pinlet_metrics *m, bool success)
{
        if (!m)
                return;
        if (success) {
                atomic_store_explicit(&m->config_last_success_ns, realtime_ns(), relaxed);
                atomic_fetch_add_explicit(&m->config_reloads_ok, 1, relaxed);
        } else {
                atomic_fetch_add_explicit(&m->config_reloads_failed, 1, relaxed);
        }
}

void pinlet_metrics_heartbeat(struct pinlet_metrics *m)
{
        if (!m)
                return;
        atomic_store_explicit(&m->heartbeat_ms, metrics_clock_now(m), relaxed);
}

void pinlet_metrics_set_ready(struct pinlet_metrics *m, bool listening)
{
        if (!m)
                return;
        atomic_store_explicit(&m->listening, listening, relaxed);
}

/* ---- health ---- */

bool metrics_healthy(struct pinlet_metrics *m, char *buf, size_t size)
{
        int64_t last = atomic_load_explicit(&m->heartbeat_ms, relaxed);
        int64_t age;

        if (last == INT64_MIN) {
                snprintf(buf, size, "no heartbeat yet from the completion-queue thread\n");
                return false;
        }
        age = metrics_clock_now(m) - last;
        if (age > m->o.heartbeat_max_age_ms) {
                snprintf(buf, size,
                         "completion-queue thread silent for %" PRId64 " ms (limit %" PRId64
                         " ms)\n",
                         age, m->o.heartbeat_max_age_ms);
                return false;
        }
        snprintf(buf, size, "ok\n");
        return true;
}

bool metrics_ready(struct pinlet_metrics *m, char *buf, size_t size)
{
        bool listening = atomic_load_explicit(&m->listening, relaxed);
        bool up = m->o.backend_up && m->o.backend_up(m->o.userdata, PINLET_METRICS_BACKEND_RUNTIME);

        if (listening && up) {
                snprintf(buf, size, "ready\n");
                return true;
        }
        snprintf(buf, size, "%s%s", listening ? "" : "not listening on the CRI socket\n",
                 up ? "" : "runtime backend not connected\n");
        return false;
}

/* ---- exposition ---- */

int metrics_appendf(struct pinlet_buf *b, const char *fmt, ...)
{
        char small[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t)n < sizeof(small))
                return pinlet_buf_append(b, small, (size_t)n);

        _cleanup_free_ char *big = malloc((size_t)n + 1);
        if (!big)
                return -ENOMEM;
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        return pinlet_buf_append(b, big, (size_t)n);
}

int metrics_header(struct pinlet_buf *b, const char *name, const char *type, const char *help)
{
        return metrics_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int metrics_append_ns_as_seconds(struct pinlet_buf *b, uint64_t ns)
{
        char frac[16];
        int n;

        n = snprintf(frac, sizeof(frac), "%09" PRIu64, ns % 1000000000u);
        while (n > 0 && frac[n - 1] == '0')
                frac[--n] = '\0';
        return metrics_appendf(b, "%" PRIu64 "%s%s", ns / 1000000000u, n ? "." : "", frac);
}

/* Appends a label value escaped as the text format wants (\\, \", \n). Registry hosts come
 * from pods' image references: never trust them to be clean. */
static int append_label_value(struct pinlet_buf *b, const char *v)
{
        int r = 0;

        for (const char *p = v; *p && r >= 0; p++) {
                switch (*p) {
                case '\\':
                        r = pinlet_buf_append(b, "\\\\", 2);
                        break;
                case '"':
                        r = pinlet_buf_append(b, "\\\"", 2);
                        break;
                case '\n':
                        r = pinlet_buf_append(b, "\\n", 2);
                        break;
                default:
                        r = pinlet_buf_append(b, p, 1);
                        break;
                }
        }
        return r;
}

/* name{label="value"} (the opening; the caller adds more labels or "} value"). */
static int sample_open(struct pinlet_buf *b, const char *name, const char *label, const char *value)
{
        int r = metrics_appendf(b, "%s{%s=\"", name, label);

        if (r >= 0)
                r = append_label_value(b, value);
        if (r >= 0)
                r = pinlet_buf_append(b, "\"", 1);
        return r;
}

/* One histogram's samples: cumulative buckets ending with +Inf, _sum, _count. The
 * buckets are read once, so _count equals the +Inf bucket even while observations land.
 * Writes nothing for a histogram without observations (returns 0). */
static int histogram_write(struct pinlet_buf *b, const char *name, const char *label,
                           const char *value, struct histogram *h, const struct bucket_bounds *bb)
{
        char sample[128];
        uint64_t counts[MAX_BUCKETS + 1], cumulative = 0, total = 0;
        int r = 0;

        for (size_t i = 0; i <= bb->n; i++)
                total += counts[i] = atomic_load_explicit(&h->buckets[i], relaxed);
        if (total == 0)
                return 0;
        snprintf(sample, sizeof(sample), "%s_bucket", name);
        for (size_t i = 0; i <= bb->n && r >= 0; i++) {
                cumulative += counts[i];
                r = sample_open(b, sample, label, value);
                if (r >= 0)
                        r = metrics_appendf(b, ",le=\"%s\"} %" PRIu64 "\n",
                                            i < bb->n ? bb->le[i] : "+Inf", cumulative);
        }
        snprintf(sample, sizeof(sample), "%s_sum", name);
        if (r >= 0)
                r = sample_open(b, sample, label, value);
        if (r >= 0)
                r = pinlet_buf_append(b, "} ", 2);
        if (r >= 0)
                r = metrics_append_ns_as_seconds(b, atomic_load_explicit(&h->sum_ns, relaxed));
        snprintf(sample, sizeof(sample), "%s_count", name);
        if (r >= 0)
                r = metrics_appendf(b, "\n");
        if (r >= 0)
                r = sample_open(b, sample, label, value);
        if (r >= 0)
                r = metrics_appendf(b, "} %" PRIu64 "\n", total);
        return r;
}

/* name{l1="v1",l2="v2"} value: n label pairs, values escaped. */
static int sample(struct pinlet_buf *b, const char *name, size_t n, const char *const *labels,
                  const char *const *values, uint64_t value)
{
        int r = pinlet_buf_append_str(b, name);

        for (size_t i = 0; i < n && r >= 0; i++) {
                r = metrics_appendf(b, "%s%s=\"", i == 0 ? "{" : ",", labels[i]);
                if (r >= 0)
                        r = append_label_value(b, values[i]);
                if (r >= 0)
                        r = pinlet_buf_append(b, "\"", 1);
        }
        if (r >= 0)
                r = metrics_appendf(b, "%s %" PRIu64 "\n", n ? "}" : "", value);
        return r;
}

static int sample1(struct pinlet_buf *b, const char *name, const char *label, const char *v,
                   uint64_t value)
{
        return sample(b, name, 1, &label, &v, value);
}

static const char *method_label(struct pinlet_metrics *m, size_t i)
{
        return i < m->n_methods ? m->method_names[i] : "other";
}

static int format_cri(struct pinlet_metrics *m, struct pinlet_buf *b)
{
        static const char *const l_mc[] = { "method", "code" };
        static const char *const l_mds[] = { "method", "decision", "source" };
        int r;

        r = metrics_header(b, "pinlet_cri_requests_total", "counter",
                           "CRI calls proxied, by method and gRPC status code.");
        for (size_t i = 0; i <= m->n_methods && r >= 0; i++)
                for (size_t c = 0; c < N_GRPC_CODES && r >= 0; c++) {
                        uint64_t v = atomic_load_explicit(&m->methods[i].codes[c], relaxed);

                        if (v)
                                r = sample(b, "pinlet_cri_requests_total", 2, l_mc,
                                           (const char *const[]){ method_label(m, i),
                                                                  pinlet_grpc_code_name((int)c) },
                                           v);
                }
        if (r >= 0)
                r = metrics_header(b, "pinlet_cri_request_duration_seconds", "histogram",
                                   "Time from accepting a CRI call to its status, by method.");
        for (size_t i = 0; i <= m->n_methods && r >= 0; i++)
                r = histogram_write(b, "pinlet_cri_request_duration_seconds", "method",
                                    method_label(m, i), &m->methods[i].duration, &cri_buckets);
        if (r >= 0)
                r = metrics_header(b, "pinlet_decisions_total", "counter",
                                   "Decisions on image references (one per audit record), by "
                                   "method, decision and the digest's source.");
        for (size_t i = 0; i <= m->n_methods && r >= 0; i++)
                for (size_t d = 0; d < N_DECISIONS && r >= 0; d++)
                        for (size_t s = 0; s < N_SOURCES && r >= 0; s++) {
                                uint64_t v = atomic_load_explicit(&m->methods[i].decisions[d][s],
                                                                  relaxed);

                                if (v)
                                        r = sample(b, "pinlet_decisions_total", 3, l_mds,
                                                   (const char *const[]){ method_label(m, i),
                                                                          decision_names[d],
                                                                          source_names[s] },
                                                   v);
                        }
        return r;
}

static int format_registries(struct pinlet_metrics *m, struct pinlet_buf *b)
{
        static const char *const l_ro[] = { "registry", "outcome" };
        int r;

        r = metrics_header(b, "pinlet_registry_requests_total", "counter",
                           "Registry resolutions (round trips), by registry and outcome.");
        for (size_t i = 0; i < m->n_registry_slots && r >= 0; i++) {
                const char *name =
                        atomic_load_explicit(&m->registries[i].name, memory_order_acquire);

                for (size_t o = 0; name && o < N_OUTCOMES && r >= 0; o++) {
                        uint64_t v = atomic_load_explicit(&m->registries[i].outcomes[o], relaxed);

                        if (v)
                                r = sample(b, "pinlet_registry_requests_total", 2, l_ro,
                                           (const char *const[]){ name, outcome_names[o] }, v);
                }
        }
        if (r >= 0)
                r = metrics_header(b, "pinlet_registry_request_duration_seconds", "histogram",
                                   "Duration of registry resolutions, by registry.");
        for (size_t i = 0; i < m->n_registry_slots && r >= 0; i++) {
                const char *name =
                        atomic_load_explicit(&m->registries[i].name, memory_order_acquire);

                if (name)
                        r = histogram_write(b, "pinlet_registry_request_duration_seconds",
                                            "registry", name, &m->registries[i].duration,
                                            &registry_buckets);
        }
        return r;
}

static uint64_t call_u64(uint64_t (*fn)(void *), void *userdata)
{
        return fn ? fn(userdata) : 0;
}

static int format_state(struct pinlet_metrics *m, struct pinlet_buf *b)
{
        struct pinlet_metrics_lock_stats ls = {};
        void *u = m->o.userdata;
        int r;

        if (m->o.lock_stats)
                m->o.lock_stats(u, &ls);

        r = metrics_header(b, "pinlet_cache_entries", "gauge", "Entries in the resolution cache.");
        if (r >= 0)
                r = sample(b, "pinlet_cache_entries", 0, NULL, NULL,
                           call_u64(m->o.cache_entries, u));
        if (r >= 0)
                r = metrics_header(b, "pinlet_cache_lookups_total", "counter",
                                   "Resolution cache lookups, by result (hit, miss, stale).");
        for (size_t i = 0; i < _PINLET_METRICS_CACHE_MAX && r >= 0; i++)
                r = sample1(b, "pinlet_cache_lookups_total", "result", cache_result_names[i],
                            atomic_load_explicit(&m->cache_lookups[i], relaxed));
        if (r >= 0)
                r = metrics_header(b, "pinlet_pins", "gauge", "Pins in the pin store.");
        if (r >= 0)
                r = sample(b, "pinlet_pins", 0, NULL, NULL, call_u64(m->o.pins, u));
        if (r >= 0)
                r = metrics_header(b, "pinlet_tag_moved_total", "counter",
                                   "Pulls that found a tag pointing to another digest than "
                                   "its pin.");
        if (r >= 0)
                r = sample(b, "pinlet_tag_moved_total", 0, NULL, NULL,
                           atomic_load_explicit(&m->tag_moved, relaxed));
        if (r >= 0)
                r = metrics_header(b, "pinlet_audit_write_errors_total", "counter",
                                   "Audit records that could not be written.");
        if (r >= 0)
                r = sample(b, "pinlet_audit_write_errors_total", 0, NULL, NULL,
                           call_u64(m->o.audit_write_errors, u));
        if (r >= 0)
                r = metrics_header(b, "pinlet_backend_up", "gauge",
                                   "Whether the CRI backend's connection is up (1) or not (0).");
        for (size_t i = 0; i < _PINLET_METRICS_BACKEND_MAX && r >= 0; i++)
                r = sample1(b, "pinlet_backend_up", "backend", backend_names[i],
                            m->o.backend_up && m->o.backend_up(u, i) ? 1 : 0);
        if (r >= 0)
                r = metrics_header(b, "pinlet_config_reloads_total", "counter",
                                   "Configuration reload attempts, by result.");
        if (r >= 0)
                r = sample1(b, "pinlet_config_reloads_total", "result", "success",
                            atomic_load_explicit(&m->config_reloads_ok, relaxed));
        if (r >= 0)
                r = sample1(b, "pinlet_config_reloads_total", "result", "failure",
                            atomic_load_explicit(&m->config_reloads_failed, relaxed));
        if (r >= 0)
                r = metrics_header(b, "pinlet_config_last_reload_success_timestamp_seconds",
                                   "gauge",
                                   "When the configuration in force was loaded (Unix time).");
        if (r >= 0)
                r = pinlet_buf_append_str(b,
                                          "pinlet_config_last_reload_success_timestamp_seconds ");
        if (r >= 0)
                r = metrics_append_ns_as_seconds(
                        b, (uint64_t)atomic_load_explicit(&m->config_last_success_ns, relaxed));
        if (r >= 0)
                r = pinlet_buf_append(b, "\n", 1);
        if (r >= 0)
                r = metrics_header(b, "pinlet_lock_entries", "gauge",
                                   "Entries of the lock set in force.");
        if (r >= 0)
                r = sample(b, "pinlet_lock_entries", 0, NULL, NULL, ls.entries);
        if (r >= 0)
                r = metrics_header(b, "pinlet_lock_reloads_total", "counter",
                                   "Lock file reloads, by result (a failure keeps the previous "
                                   "set).");
        if (r >= 0)
                r = sample1(b, "pinlet_lock_reloads_total", "result", "success", ls.reloads_ok);
        if (r >= 0)
                r = sample1(b, "pinlet_lock_reloads_total", "result", "failure", ls.reloads_failed);
        return r;
}

int pinlet_metrics_format(struct pinlet_metrics *m, char **ret_text, size_t *ret_len)
{
        _cleanup_buf_ struct pinlet_buf b;
        int r;

        if (!m)
                return -EINVAL;
        pinlet_buf_init(&b, PINLET_METRICS_EXPOSITION_MAX);
        r = metrics_header(&b, "pinlet_build_info", "gauge",
                           "Always 1; the version label says which pinlet runs.");
        if (r >= 0)
                r = sample1(&b, "pinlet_build_info", "version", m->version, 1);
        if (r >= 0)
                r = metrics_format_process(&b);
        if (r >= 0)
                r = format_cri(m, &b);
        if (r >= 0)
                r = format_registries(m, &b);
        if (r >= 0)
                r = format_state(m, &b);
        if (r < 0)
                return r;
        *ret_text = pinlet_buf_steal(&b, ret_len);
        return 0;
}

/* ---- lifetime ---- */

static char *strdup_lower(const char *s)
{
        char *d = strdup(s);

        for (char *p = d; p && *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p - 'A' + 'a');
        return d;
}

static int init_methods(struct pinlet_metrics *m, const char *const *names)
{
        size_t n = 0, k = 0;

        for (const char *const *p = names; p && *p; p++)
                n++;
        m->method_names = calloc(n + 1, sizeof(char *));
        if (!m->method_names)
                return -ENOMEM;
        for (const char *const *p = names; p && *p; p++) {
                const char *name = path_method(*p);

                if (!*name)
                        continue;
                m->method_names[k] = strdup(name);
                if (!m->method_names[k])
                        return -ENOMEM;
                k++;
        }
        qsort(m->method_names, k, sizeof(char *), pinlet_strcmp_ptr);
        /* Unique: v1 and v1alpha2 paths name the same methods. */
        m->n_methods = 0;
        for (size_t i = 0; i < k; i++) {
                if (m->n_methods > 0 &&
                    strcmp(m->method_names[m->n_methods - 1], m->method_names[i]) == 0) {
                        free(m->method_names[i]);
                        m->method_names[i] = NULL;
                        continue;
                }
                m->method_names[m->n_methods++] = m->method_names[i];
                if (m->n_methods - 1 != i)
                        m->method_names[i] = NULL;
        }
        m->methods = calloc(m->n_methods + 1, sizeof(*m->methods));
        return m->methods ? 0 : -ENOMEM;
}

static int init_registries(struct pinlet_metrics *m, const char *const *configured)
{
        size_t n = 0;

        for (const char *const *p = configured; p && *p; p++)
                n++;
        m->n_registry_slots = n + m->max_other + 1;
        m->registries = calloc(m->n_registry_slots, sizeof(*m->registries));
        if (!m->registries)
                return -ENOMEM;
        for (const char *const *p = configured; p && *p; p++) {
                _cleanup_free_ char *name = strdup_lower(*p);
                bool dup = false;

                if (!name)
                        return -ENOMEM;
                for (size_t i = 0; i < m->n_configured && !dup; i++)
                        dup = strcmp(atomic_load(&m->registries[i].name), name) == 0;
                if (!dup && *name) {
                        atomic_store(&m->registries[m->n_configured].hash, host_hash(name));
                        atomic_store(&m->registries[m->n_configured++].name, TAKE_PTR(name));
                }
        }
        /* Duplicates (in any case) took no slot: the bound counts distinct hosts. The
         * array keeps its unused tail. */
        m->n_registry_slots = m->n_configured + m->max_other + 1;
        atomic_store(&m->registries[m->n_registry_slots - 1].name, strdup("other"));
        return atomic_load(&m->registries[m->n_registry_slots - 1].name) ? 0 : -ENOMEM;
}

int pinlet_metrics_new(const struct pinlet_metrics_options *opts, struct pinlet_metrics **ret,
                       struct pinlet_error **err)
{
        _cleanup_metrics_ struct pinlet_metrics *m = NULL;
        int r;

        if (!opts || !ret)
                return pinlet_error_set(err, -EINVAL, "metrics: no options");
        m = calloc(1, sizeof(*m));
        if (!m)
                return pinlet_error_set(err, -ENOMEM, "metrics: out of memory");
        m->o = *opts;
        m->o.listen = NULL;
        m->o.version = NULL;
        m->o.cri_methods = NULL;
        m->o.registries = NULL;
        if (!m->o.clock)
                m->o.clock = clock_coarse_ms;
        if (m->o.heartbeat_max_age_ms <= 0)
                m->o.heartbeat_max_age_ms = PINLET_METRICS_DEFAULT_HEARTBEAT_MAX_AGE_MS;
        m->max_other = opts->max_other_registries ? opts->max_other_registries
                                                  : PINLET_METRICS_DEFAULT_MAX_OTHER_REGISTRIES;
        atomic_init(&m->heartbeat_ms, INT64_MIN);
        atomic_init(&m->config_last_success_ns, realtime_ns());

        m->version = strdup(opts->version ? opts->version : PINLET_VERSION);
        if (!m->version || init_methods(m, opts->cri_methods) < 0 ||
            init_registries(m, opts->registries) < 0)
                return pinlet_error_set(err, -ENOMEM, "metrics: out of memory");

        if (opts->listen && *opts->listen) {
                r = metrics_http_start(m, opts->listen, err);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(m);
        return 0;
}

void pinlet_metrics_free(struct pinlet_metrics *m)
{
        if (!m)
                return;
        metrics_http_stop(m);
        for (size_t i = 0; m->method_names && m->method_names[i]; i++)
                free(m->method_names[i]);
        free(m->method_names);
        free(m->methods);
        for (size_t i = 0; m->registries && i < m->n_registry_slots; i++)
                free(atomic_load(&m->registries[i].name));
        free(m->registries);
        free(m->version);
        free(m);
}

const char *pinlet_metrics_address(struct pinlet_metrics *m)
{
        return m ? m->address : NULL;
}

unsigned pinlet_metrics_port(struct pinlet_metrics *m)
{
        return m ? m->port : 0;
}
