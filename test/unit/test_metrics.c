/* SPDX-License-Identifier: Apache-2.0 */
/* The counters and the exposition text of src/metrics (no HTTP: test_metrics_http.c). */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "metrics/metrics.h"
#include "util/error.h"

static const char *const test_methods[] = {
        "/runtime.v1.ImageService/PullImage",
        "/runtime.v1alpha2.ImageService/PullImage", /* same name: one label value */
        "/runtime.v1.ImageService/ImageStatus",
        "CreateContainer",
        NULL,
};

static struct pinlet_metrics *new_metrics(const struct pinlet_metrics_options *extra)
{
        struct pinlet_metrics_options o = extra ? *extra : (struct pinlet_metrics_options){};
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_metrics *m = NULL;

        if (!o.cri_methods)
                o.cri_methods = test_methods;
        if (!o.version)
                o.version = "1.2.3";
        assert_int_equal(pinlet_metrics_new(&o, &m, &err), 0);
        assert_non_null(m);
        return m;
}

static char *scrape(struct pinlet_metrics *m)
{
        char *text = NULL;
        size_t len = 0;

        assert_int_equal(pinlet_metrics_format(m, &text, &len), 0);
        assert_int_equal(strlen(text), len);
        return text;
}

/* The lines of one family: its HELP and TYPE lines and the samples named fam, fam_bucket,
 * fam_sum or fam_count, in the order of the text. */
static char *family(const char *text, const char *fam)
{
        static const char *const suffixes[] = { "", "_bucket", "_sum", "_count" };
        size_t flen = strlen(fam), cap = strlen(text) + 1, n = 0;
        char *out = calloc(1, cap);

        assert_non_null(out);
        for (const char *line = text; *line;) {
                const char *end = strchr(line, '\n');
                size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
                const char *name = line;
                bool match = false;

                if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0)
                        match = strncmp(line + 7, fam, flen) == 0 && line[7 + flen] == ' ';
                else
                        for (size_t i = 0; i < ELEMENTSOF(suffixes) && !match; i++) {
                                size_t slen = strlen(suffixes[i]);

                                match = strncmp(name, fam, flen) == 0 &&
                                        strncmp(name + flen, suffixes[i], slen) == 0 &&
                                        (name[flen + slen] == '{' || name[flen + slen] == ' ');
                        }
                if (match) {
                        memcpy(out + n, line, len);
                        n += len;
                }
                line += len;
        }
        return out;
}

static void assert_family(const char *text, const char *fam, const char *want)
{
        _cleanup_free_ char *got = family(text, fam);

        if (strcmp(got, want) != 0)
                fail_msg("family %s:\n--- got ---\n%s--- want ---\n%s", fam, got, want);
}

/* The value of the sample whose line starts with prefix + ' ' (prefix: name and labels);
 * UINT64_MAX when there is none. */
static uint64_t value_of(const char *text, const char *prefix)
{
        size_t plen = strlen(prefix);

        for (const char *line = text; line && *line;) {
                if (strncmp(line, prefix, plen) == 0 && line[plen] == ' ')
                        return strtoull(line + plen + 1, NULL, 10);
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return UINT64_MAX;
}

static size_t count_lines(const char *text, const char *prefix)
{
        size_t n = 0, plen = strlen(prefix);

        for (const char *line = text; line && *line;) {
                if (strncmp(line, prefix, plen) == 0)
                        n++;
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return n;
}

/* The sum of every sample whose line starts with prefix (a family and its "{"). */
/* noinline: gcc 12 inlines it and then warns (-Wdangling-pointer) about the caller's
 * cleanup-freed buffer, wrongly: the pointer does not outlive this function */
__attribute__((noinline)) static uint64_t sum_of(const char *text, const char *prefix)
{
        uint64_t total = 0;

        for (const char *line = strstr(text, prefix); line; line = strstr(line + 1, prefix))
                total += strtoull(strchr(line, '}') + 2, NULL, 10);
        return total;
}

static void test_null_is_noop(void **state)
{
        pinlet_metrics_cri_request(NULL, "/x/y", 0, 1);
        assert_int_equal(pinlet_metrics_decision(NULL, "PullImage", "substituted", "pin"), 0);
        pinlet_metrics_registry_request(NULL, "docker.io", 0, 1);
        pinlet_metrics_cache_lookup(NULL, PINLET_METRICS_CACHE_HIT);
        pinlet_metrics_config_reload(NULL, true);
        pinlet_metrics_heartbeat(NULL);
        pinlet_metrics_set_ready(NULL, true);
        assert_null(pinlet_metrics_address(NULL));
        pinlet_metrics_free(NULL);
}

static void test_build_info_and_cri(void **state)
{
        _cleanup_metrics_ struct pinlet_metrics *m = new_metrics(NULL);
        _cleanup_free_ char *text = NULL;

        pinlet_metrics_cri_request(m, "/runtime.v1.ImageService/PullImage", 0, 1000);
        pinlet_metrics_cri_request(m, "/runtime.v1alpha2.ImageService/PullImage", 0, 1000);
        pinlet_metrics_cri_request(m, "/runtime.v1.ImageService/PullImage", 5, 1000);
        pinlet_metrics_cri_request(m, "/runtime.v1.ImageService/ImageStatus", 16, 1000);
        /* Unknown methods and codes are bounded: "other", "UNKNOWN". */
        pinlet_metrics_cri_request(m, "/runtime.v1.RuntimeService/Version", 99, 1000);
        pinlet_metrics_cri_request(m, "/grpc.health.v1.Health/Check", -1, 1000);
        pinlet_metrics_cri_request(m, NULL, 0, 1000);
        text = scrape(m);

        assert_family(text, "pinlet_build_info",
                      "# HELP pinlet_build_info Always 1; the version label says which pinlet "
                      "runs.\n"
                      "# TYPE pinlet_build_info gauge\n"
                      "pinlet_build_info{version=\"1.2.3\"} 1\n");
        assert_family(text, "pinlet_cri_requests_total",
                      "# HELP pinlet_cri_requests_total CRI calls proxied, by method and gRPC "
                      "status code.\n"
                      "# TYPE pinlet_cri_requests_total counter\n"
                      "pinlet_cri_requests_total{method=\"ImageStatus\",code=\"UNAUTHENTICATED\"}"
                      " 1\n"
                      "pinlet_cri_requests_total{method=\"PullImage\",code=\"OK\"} 2\n"
                      "pinlet_cri_requests_total{method=\"PullImage\",code=\"NOT_FOUND\"} 1\n"
                      "pinlet_cri_requests_total{method=\"other\",code=\"OK\"} 1\n"
                      "pinlet_cri_requests_total{method=\"other\",code=\"UNKNOWN\"} 2\n");
}

static void test_decisions(void **state)
{
        _cleanup_metrics_ struct pinlet_metrics *m = new_metrics(NULL);
        _cleanup_free_ char *text = NULL;

        assert_int_equal(pinlet_metrics_decision(m, "PullImage", "substituted", "registry"), 0);
        assert_int_equal(pinlet_metrics_decision(m, "PullImage", "substituted", "registry"), 0);
        assert_int_equal(pinlet_metrics_decision(m, "PullImage", "tag_moved", "registry"), 0);
        assert_int_equal(pinlet_metrics_decision(m, "ImageStatus", "passed_through", NULL), 0);
        assert_int_equal(pinlet_metrics_decision(m, "CreateContainer", "unlocked", ""), 0);
        assert_int_equal(pinlet_metrics_decision(m, "Frobnicate", "rejected", "lock"), 0);
        /* Not in the lists: nothing counted. */
        assert_int_equal(pinlet_metrics_decision(m, "PullImage", "bogus", "pin"), -EINVAL);
        assert_int_equal(pinlet_metrics_decision(m, "PullImage", "substituted", "none"), -EINVAL);
        assert_int_equal(pinlet_metrics_decision(m, "PullImage", NULL, "pin"), -EINVAL);
        text = scrape(m);

        assert_family(text, "pinlet_decisions_total",
                      "# HELP pinlet_decisions_total Decisions on image references (one per "
                      "audit record), by method, decision and the digest's source.\n"
                      "# TYPE pinlet_decisions_total counter\n"
                      "pinlet_decisions_total{method=\"CreateContainer\",decision=\"unlocked\","
                      "source=\"none\"} 1\n"
                      "pinlet_decisions_total{method=\"ImageStatus\",decision=\"passed_through\","
                      "source=\"none\"} 1\n"
                      "pinlet_decisions_total{method=\"PullImage\",decision=\"substituted\","
                      "source=\"registry\"} 2\n"
                      "pinlet_decisions_total{method=\"PullImage\",decision=\"tag_moved\","
                      "source=\"registry\"} 1\n"
                      "pinlet_decisions_total{method=\"other\",decision=\"rejected\","
                      "source=\"lock\"} 1\n");
        assert_family(text, "pinlet_tag_moved_total",
                      "# HELP pinlet_tag_moved_total Pulls that found a tag pointing to another "
                      "digest than its pin.\n"
                      "# TYPE pinlet_tag_moved_total counter\n"
                      "pinlet_tag_moved_total 1\n");
}

/* Buckets are cumulative, le is inclusive (an observation exactly on a bound counts in
 * it), +Inf holds everything, _sum is exact, _count equals +Inf. */
static void test_histogram(void **state)
{
        _cleanup_metrics_ struct pinlet_metrics *m = new_metrics(NULL);
        _cleanup_free_ char *text = NULL;

        pinlet_metrics_registry_request(m, "Registry.Example", 0, 5000000);              /* 0.005 */
        pinlet_metrics_registry_request(m, "registry.example", -ENOENT, 7000000);        /* 0.01 */
        pinlet_metrics_registry_request(m, "registry.example", -ETIMEDOUT, 40000000001); /* +Inf */
        text = scrape(m);

        assert_family(
                text, "pinlet_registry_request_duration_seconds",
                "# HELP pinlet_registry_request_duration_seconds Duration of registry "
                "resolutions, by registry.\n"
                "# TYPE pinlet_registry_request_duration_seconds histogram\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"0.005\"} 1\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"0.01\"} 2\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"0.025\"} 2\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"0.05\"} 2\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"0.1\"} 2\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"0.25\"} 2\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"0.5\"} 2\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"1\"} 2\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"2.5\"} 2\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"5\"} 2\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"10\"} 2\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"30\"} 2\n"
                "pinlet_registry_request_duration_seconds_bucket{registry=\"registry.example\","
                "le=\"+Inf\"} 3\n"
                "pinlet_registry_request_duration_seconds_sum{registry=\"registry.example\"} "
                "40.012000001\n"
                "pinlet_registry_request_duration_seconds_count{registry=\"registry.example\"} "
                "3\n");
        assert_family(text, "pinlet_registry_requests_total",
                      "# HELP pinlet_registry_requests_total Registry resolutions (round trips), "
                      "by registry and outcome.\n"
                      "# TYPE pinlet_registry_requests_total counter\n"
                      "pinlet_registry_requests_total{registry=\"registry.example\","
                      "outcome=\"ok\"} 1\n"
                      "pinlet_registry_requests_total{registry=\"registry.example\","
                      "outcome=\"not_found\"} 1\n"
                      "pinlet_registry_requests_total{registry=\"registry.example\","
                      "outcome=\"timeout\"} 1\n");
        /* The CRI histogram: a method without calls has no series at all. */
        assert_int_equal(count_lines(text, "pinlet_cri_request_duration_seconds_"), 0);
}

static void test_registry_outcomes_and_escaping(void **state)
{
        static const struct {
                int code;
                const char *outcome;
        } table[] = {
                { 0, "ok" },
                { PINLET_ENOTFOUND, "not_found" },
                { PINLET_EUNAUTH, "unauthorized" },
                { PINLET_EUNAVAIL, "unavailable" },
                { PINLET_ETIMEOUT, "timeout" },
                { PINLET_EPROTO, "protocol" },
                { PINLET_ETLS, "tls" },
                { PINLET_EINVAL, "other" },
                { PINLET_E2BIG, "other" },
                { -ENOMEM, "other" },
        };
        _cleanup_metrics_ struct pinlet_metrics *m = new_metrics(NULL);
        _cleanup_free_ char *text = NULL;
        char prefix[256];

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                pinlet_metrics_registry_request(m, "r.example", table[i].code, 1);
        pinlet_metrics_registry_request(m, "a\"b\\c\nd", 0, 1);
        text = scrape(m);
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                snprintf(prefix, sizeof(prefix),
                         "pinlet_registry_requests_total{registry=\"r.example\",outcome=\"%s\"}",
                         table[i].outcome);
                assert_int_equal(value_of(text, prefix), strcmp(table[i].outcome, "other") ? 1 : 3);
        }
        assert_int_equal(value_of(text,
                                  "pinlet_registry_requests_total{registry=\"a\\\"b\\\\c\\nd\","
                                  "outcome=\"ok\"}"),
                         1);
}

/* 60 hosts nobody configured: the first 50 get their own label value, the rest "other";
 * configured registries have theirs in addition, matched in any case. */
static void test_registry_label_bound(void **state)
{
        static const char *const configured[] = { "Registry.Corp:5000", "registry.corp:5000",
                                                  NULL };
        _cleanup_metrics_ struct pinlet_metrics *m =
                new_metrics(&(struct pinlet_metrics_options){ .registries = configured });
        _cleanup_free_ char *text = NULL;
        char host[64], prefix[128];

        for (int i = 0; i < 60; i++) {
                snprintf(host, sizeof(host), "h%02d.example", i);
                pinlet_metrics_registry_request(m, host, 0, 1000000);
        }
        /* Seen again later: still its own slot, and still not a 51st. */
        pinlet_metrics_registry_request(m, "H07.EXAMPLE", 0, 1000000);
        pinlet_metrics_registry_request(m, "h55.example", 0, 1000000);
        pinlet_metrics_registry_request(m, "REGISTRY.CORP:5000", 0, 1000000);
        pinlet_metrics_registry_request(m, "", 0, 1000000);
        text = scrape(m);

        /* configured + 50 + other */
        assert_int_equal(count_lines(text, "pinlet_registry_requests_total{"), 52);
        assert_int_equal(count_lines(text, "pinlet_registry_request_duration_seconds_count{"), 52);
        for (int i = 0; i < 50; i++) {
                snprintf(prefix, sizeof(prefix),
                         "pinlet_registry_requests_total{registry=\"h%02d.example\",outcome="
                         "\"ok\"}",
                         i);
                assert_int_equal(value_of(text, prefix), i == 7 ? 2 : 1);
        }
        assert_int_equal(count_lines(text, "pinlet_registry_requests_total{registry=\"h5"), 0);
        /* h50..h59, h55 again, and the empty host. */
        assert_int_equal(value_of(text, "pinlet_registry_requests_total{registry=\"other\","
                                        "outcome=\"ok\"}"),
                         12);
        assert_int_equal(value_of(text, "pinlet_registry_requests_total{registry=\"registry.corp:"
                                        "5000\",outcome=\"ok\"}"),
                         1);

        /* A smaller bound, as configured. */
        _cleanup_metrics_ struct pinlet_metrics *small =
                new_metrics(&(struct pinlet_metrics_options){ .max_other_registries = 2 });
        _cleanup_free_ char *t2 = NULL;

        pinlet_metrics_registry_request(small, "a.example", 0, 1);
        pinlet_metrics_registry_request(small, "b.example", 0, 1);
        pinlet_metrics_registry_request(small, "c.example", 0, 1);
        t2 = scrape(small);
        assert_int_equal(count_lines(t2, "pinlet_registry_requests_total{"), 3);
        assert_int_equal(value_of(t2, "pinlet_registry_requests_total{registry=\"other\","
                                      "outcome=\"ok\"}"),
                         1);
}

struct fake_sources {
        uint64_t cache, pins, audit;
        struct pinlet_metrics_lock_stats lock;
        bool runtime_up, image_up;
};

static uint64_t cb_cache(void *u)
{
        return ((struct fake_sources *)u)->cache;
}
static uint64_t cb_pins(void *u)
{
        return ((struct fake_sources *)u)->pins;
}
static uint64_t cb_audit(void *u)
{
        return ((struct fake_sources *)u)->audit;
}
static void cb_lock(void *u, struct pinlet_metrics_lock_stats *ret)
{
        *ret = ((struct fake_sources *)u)->lock;
}
static bool cb_up(void *u, enum pinlet_metrics_backend b)
{
        struct fake_sources *f = u;

        return b == PINLET_METRICS_BACKEND_RUNTIME ? f->runtime_up : f->image_up;
}

static void test_scrape_time_callbacks(void **state)
{
        struct fake_sources f = {
                .cache = 12,
                .pins = 34,
                .audit = 5,
                .lock = { 6, 7, 8 },
                .runtime_up = true,
        };
        _cleanup_metrics_ struct pinlet_metrics *m = new_metrics(&(struct pinlet_metrics_options){
                .userdata = &f,
                .cache_entries = cb_cache,
                .pins = cb_pins,
                .lock_stats = cb_lock,
                .audit_write_errors = cb_audit,
                .backend_up = cb_up,
        });
        _cleanup_free_ char *text = NULL, *t2 = NULL;

        pinlet_metrics_cache_lookup(m, PINLET_METRICS_CACHE_HIT);
        pinlet_metrics_cache_lookup(m, PINLET_METRICS_CACHE_HIT);
        pinlet_metrics_cache_lookup(m, PINLET_METRICS_CACHE_STALE);
        pinlet_metrics_cache_lookup(m, (enum pinlet_metrics_cache_result)77); /* ignored */
        pinlet_metrics_config_reload(m, false);
        text = scrape(m);
        assert_family(text, "pinlet_cache_entries",
                      "# HELP pinlet_cache_entries Entries in the resolution cache.\n"
                      "# TYPE pinlet_cache_entries gauge\n"
                      "pinlet_cache_entries 12\n");
        assert_family(text, "pinlet_cache_lookups_total",
                      "# HELP pinlet_cache_lookups_total Resolution cache lookups, by result "
                      "(hit, miss, stale).\n"
                      "# TYPE pinlet_cache_lookups_total counter\n"
                      "pinlet_cache_lookups_total{result=\"hit\"} 2\n"
                      "pinlet_cache_lookups_total{result=\"miss\"} 0\n"
                      "pinlet_cache_lookups_total{result=\"stale\"} 1\n");
        assert_family(text, "pinlet_pins",
                      "# HELP pinlet_pins Pins in the pin store.\n"
                      "# TYPE pinlet_pins gauge\n"
                      "pinlet_pins 34\n");
        assert_family(text, "pinlet_audit_write_errors_total",
                      "# HELP pinlet_audit_write_errors_total Audit records that could not be "
                      "written.\n"
                      "# TYPE pinlet_audit_write_errors_total counter\n"
                      "pinlet_audit_write_errors_total 5\n");
        assert_family(text, "pinlet_backend_up",
                      "# HELP pinlet_backend_up Whether the CRI backend's connection is up (1) "
                      "or not (0).\n"
                      "# TYPE pinlet_backend_up gauge\n"
                      "pinlet_backend_up{backend=\"runtime\"} 1\n"
                      "pinlet_backend_up{backend=\"image\"} 0\n");
        assert_family(text, "pinlet_config_reloads_total",
                      "# HELP pinlet_config_reloads_total Configuration reload attempts, by "
                      "result.\n"
                      "# TYPE pinlet_config_reloads_total counter\n"
                      "pinlet_config_reloads_total{result=\"success\"} 0\n"
                      "pinlet_config_reloads_total{result=\"failure\"} 1\n");
        assert_family(text, "pinlet_lock_entries",
                      "# HELP pinlet_lock_entries Entries of the lock set in force.\n"
                      "# TYPE pinlet_lock_entries gauge\n"
                      "pinlet_lock_entries 6\n");
        assert_family(text, "pinlet_lock_reloads_total",
                      "# HELP pinlet_lock_reloads_total Lock file reloads, by result (a failure "
                      "keeps the previous set).\n"
                      "# TYPE pinlet_lock_reloads_total counter\n"
                      "pinlet_lock_reloads_total{result=\"success\"} 7\n"
                      "pinlet_lock_reloads_total{result=\"failure\"} 8\n");

        /* Read at scrape time: a change shows in the next scrape, nothing pushed. */
        f.pins = 35;
        f.runtime_up = false;
        t2 = scrape(m);
        assert_int_equal(value_of(t2, "pinlet_pins"), 35);
        assert_int_equal(value_of(t2, "pinlet_backend_up{backend=\"runtime\"}"), 0);
}

/* The reload timestamp starts at creation (the daemon starts with a valid configuration)
 * and moves on a successful reload only. */
static void test_config_reload_timestamp(void **state)
{
        _cleanup_metrics_ struct pinlet_metrics *m = new_metrics(NULL);
        _cleanup_free_ char *t1 = NULL, *t2 = NULL;
        const char *name = "pinlet_config_last_reload_success_timestamp_seconds";
        time_t now = time(NULL);
        uint64_t v1, v2;

        t1 = scrape(m);
        v1 = value_of(t1, name);
        assert_true(v1 + 5 >= (uint64_t)now && v1 <= (uint64_t)now + 5);
        pinlet_metrics_config_reload(m, false);
        pinlet_metrics_config_reload(m, true);
        t2 = scrape(m);
        v2 = value_of(t2, name);
        assert_true(v2 >= v1);
        assert_int_equal(value_of(t2, "pinlet_config_reloads_total{result=\"success\"}"), 1);
}

/* process_* come from /proc/self: present, plausible. */
static void test_process_metrics(void **state)
{
        _cleanup_metrics_ struct pinlet_metrics *m = new_metrics(NULL);
        _cleanup_free_ char *text = scrape(m);
        uint64_t rss = value_of(text, "process_resident_memory_bytes");
        uint64_t vsz = value_of(text, "process_virtual_memory_bytes");
        uint64_t fds = value_of(text, "process_open_fds");
        uint64_t max = value_of(text, "process_max_fds");
        uint64_t start = value_of(text, "process_start_time_seconds");

        assert_true(rss > 100000 && rss != UINT64_MAX);
        assert_true(vsz >= rss && vsz != UINT64_MAX);
        assert_true(fds >= 3 && fds < max && max != UINT64_MAX);
        assert_true(start + 3600 > (uint64_t)time(NULL) && start <= (uint64_t)time(NULL));
        assert_true(value_of(text, "process_cpu_seconds_total") != UINT64_MAX);
        assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
}

/* ---- concurrency: threads increment while a scraper scrapes ---- */

#define WRITERS    4
#define ITERATIONS 100000

struct race {
        struct pinlet_metrics *m;
        _Atomic bool stop;
        size_t scrapes;
        size_t bad; /* scrapes that broke an invariant (cmocka asserts only on main) */
        int id;
};

static void *writer(void *arg)
{
        struct race *r = arg;
        char host[32];

        for (int i = 0; i < ITERATIONS; i++) {
                pinlet_metrics_cri_request(r->m, "/runtime.v1.ImageService/PullImage", 0,
                                           (uint64_t)(i % 1000) * 1000000);
                pinlet_metrics_decision(r->m, "ImageStatus", "substituted", "cache");
                /* 70 hosts shared by all writers: slots are claimed concurrently. */
                snprintf(host, sizeof(host), "h%02d.example", (i + r->id * 17) % 70);
                pinlet_metrics_registry_request(r->m, host, 0, 1000);
                pinlet_metrics_heartbeat(r->m);
        }
        return NULL;
}

static void *scraper(void *arg)
{
        struct race *r = arg;
        uint64_t last = 0;

        while (!atomic_load(&r->stop)) {
                _cleanup_free_ char *text = scrape(r->m);
                uint64_t ok = value_of(
                        text, "pinlet_cri_requests_total{method=\"PullImage\",code=\"OK\"}");
                uint64_t inf = value_of(text, "pinlet_cri_request_duration_seconds_bucket{method="
                                              "\"PullImage\",le=\"+Inf\"}");
                uint64_t count = value_of(
                        text, "pinlet_cri_request_duration_seconds_count{method=\"PullImage\"}");

                if (ok != UINT64_MAX) {
                        /* Counters never go backwards; a histogram's count is its +Inf. */
                        if (ok < last || inf != count)
                                r->bad++;
                        last = ok;
                }
                r->scrapes++;
        }
        return NULL;
}

static void test_concurrent_updates_and_scrapes(void **state)
{
        _cleanup_metrics_ struct pinlet_metrics *m = new_metrics(NULL);
        struct race w[WRITERS], s = { .m = m };
        pthread_t tw[WRITERS], ts;
        _cleanup_free_ char *text = NULL;
        uint64_t total = 0;

        assert_int_equal(pthread_create(&ts, NULL, scraper, &s), 0);
        for (int i = 0; i < WRITERS; i++) {
                w[i] = (struct race){ .m = m, .id = i };
                assert_int_equal(pthread_create(&tw[i], NULL, writer, &w[i]), 0);
        }
        for (int i = 0; i < WRITERS; i++)
                pthread_join(tw[i], NULL);
        atomic_store(&s.stop, true);
        pthread_join(ts, NULL);
        assert_true(s.scrapes > 0);
        assert_int_equal(s.bad, 0);

        text = scrape(m);
        assert_int_equal(value_of(text, "pinlet_cri_requests_total{method=\"PullImage\","
                                        "code=\"OK\"}"),
                         WRITERS * ITERATIONS);
        assert_int_equal(value_of(text, "pinlet_cri_request_duration_seconds_count{method="
                                        "\"PullImage\"}"),
                         WRITERS * ITERATIONS);
        assert_int_equal(value_of(text, "pinlet_decisions_total{method=\"ImageStatus\","
                                        "decision=\"substituted\",source=\"cache\"}"),
                         WRITERS * ITERATIONS);
        /* Every registry request landed exactly once, no host got two slots: 50 hosts
         * with their own label value plus "other". */
        assert_int_equal(count_lines(text, "pinlet_registry_requests_total{"), 51);
        total = sum_of(text, "pinlet_registry_requests_total{");
        assert_int_equal(total, WRITERS * ITERATIONS);
        /* The _sum is exact: each writer observed 0..999 ms ITERATIONS/1000 times. */
        {
                char want[128];
                uint64_t ms = (uint64_t)WRITERS * (ITERATIONS / 1000) * (999 * 1000 / 2);

                snprintf(want, sizeof(want),
                         "pinlet_cri_request_duration_seconds_sum{method=\"PullImage\"} "
                         "%" PRIu64 "\n",
                         ms / 1000);
                assert_non_null(strstr(text, want));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_null_is_noop),
                cmocka_unit_test(test_build_info_and_cri),
                cmocka_unit_test(test_decisions),
                cmocka_unit_test(test_histogram),
                cmocka_unit_test(test_registry_outcomes_and_escaping),
                cmocka_unit_test(test_registry_label_bound),
                cmocka_unit_test(test_scrape_time_callbacks),
                cmocka_unit_test(test_config_reload_timestamp),
                cmocka_unit_test(test_process_metrics),
                cmocka_unit_test(test_concurrent_updates_and_scrapes),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
