/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pinlet_it_metrics: a struct pinlet_metrics with every family populated (several CRI
 * methods and codes, every decision and source, registries with every outcome, a label
 * value that needs escaping, every callback), for the tests that check the exposition
 * with promtool and scrape it with a real Prometheus.
 *
 *   pinlet_it_metrics dump                      print the exposition on stdout
 *   pinlet_it_metrics serve ADDR [ADDR_FILE]    serve on ADDR ("127.0.0.1:0", "unix:/p")
 *                                               until SIGTERM/SIGINT; the bound address
 *                                               goes to ADDR_FILE (written, then renamed)
 *   pinlet_it_metrics bench [N]                 ns per update of each hot-path function
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "util/error.h"

static const char *const methods[] = {
        "/runtime.v1.ImageService/PullImage",
        "/runtime.v1.ImageService/ImageStatus",
        "/runtime.v1.RuntimeService/CreateContainer",
        "/runtime.v1alpha2.ImageService/PullImage",
        "/runtime.v1.RuntimeService/Version",
        "GetContainerEvents",
        NULL,
};
static const char *const registries[] = { "registry.corp.example:5000", "Docker.io", NULL };

static uint64_t cb_cache_entries(void *u)
{
        return 42;
}
static uint64_t cb_pins(void *u)
{
        return 7;
}
static void cb_lock_stats(void *u, struct pinlet_metrics_lock_stats *ret)
{
        *ret = (struct pinlet_metrics_lock_stats){ .entries = 3,
                                                   .reloads_ok = 2,
                                                   .reloads_failed = 1 };
}
static uint64_t cb_audit_errors(void *u)
{
        return 1;
}
static bool cb_backend_up(void *u, enum pinlet_metrics_backend b)
{
        return b == PINLET_METRICS_BACKEND_RUNTIME;
}

static void populate(struct pinlet_metrics *m)
{
        static const char *const decisions[] = { "substituted",    "would_substitute",
                                                 "passed_through", "rejected",
                                                 "tag_moved",      "unlocked" };
        static const char *const sources[] = { "", "lock", "pin", "cache", "registry", "stale" };
        static const int codes[] = { 0,          -ENOENT, -EACCES,       -EHOSTUNREACH,
                                     -ETIMEDOUT, -EPROTO, -EKEYREJECTED, -EINVAL };

        for (int c = 0; c <= 16; c++)
                pinlet_metrics_cri_request(m, "/runtime.v1.ImageService/PullImage", c,
                                           (uint64_t)c * 7000000);
        pinlet_metrics_cri_request(m, "/runtime.v1.RuntimeService/Version", 0, 180000);
        pinlet_metrics_cri_request(m, "/runtime.v1.RuntimeService/GetContainerEvents", 1,
                                   3600000000000);
        pinlet_metrics_cri_request(m, "/some.Other/Method", 12, 1000);
        for (size_t d = 0; d < ELEMENTSOF(decisions); d++)
                for (size_t s = 0; s < ELEMENTSOF(sources); s++)
                        pinlet_metrics_decision(m, "PullImage", decisions[d], sources[s]);
        pinlet_metrics_decision(m, "CreateContainer", "substituted", "pin");
        for (size_t i = 0; i < ELEMENTSOF(codes); i++) {
                pinlet_metrics_registry_request(m, "registry.corp.example:5000", codes[i],
                                                (i + 1) * 20000000);
                pinlet_metrics_registry_request(m, "docker.io", codes[i], 80000000);
        }
        /* A host that needs escaping (the registry label comes from pods). */
        pinlet_metrics_registry_request(m, "we\"ird\\host", 0, 1000000);
        for (int i = 0; i < 60; i++) {
                char host[64];

                snprintf(host, sizeof(host), "r%02d.example", i);
                pinlet_metrics_registry_request(m, host, 0, 5000000);
        }
        pinlet_metrics_cache_lookup(m, PINLET_METRICS_CACHE_HIT);
        pinlet_metrics_cache_lookup(m, PINLET_METRICS_CACHE_MISS);
        pinlet_metrics_cache_lookup(m, PINLET_METRICS_CACHE_STALE);
        pinlet_metrics_config_reload(m, true);
        pinlet_metrics_config_reload(m, false);
        pinlet_metrics_heartbeat(m);
        pinlet_metrics_set_ready(m, true);
}

static int new_metrics(const char *listen, struct pinlet_metrics **ret)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        const struct pinlet_metrics_options o = {
                .listen = listen,
                .cri_methods = methods,
                .registries = registries,
                .cache_entries = cb_cache_entries,
                .pins = cb_pins,
                .lock_stats = cb_lock_stats,
                .audit_write_errors = cb_audit_errors,
                .backend_up = cb_backend_up,
        };
        int r = pinlet_metrics_new(&o, ret, &err);

        if (r < 0)
                fprintf(stderr, "pinlet_it_metrics: %s\n", pinlet_error_message(err, r));
        return r;
}

static int dump(void)
{
        _cleanup_metrics_ struct pinlet_metrics *m = NULL;
        _cleanup_free_ char *text = NULL;
        size_t len;

        if (new_metrics(NULL, &m) < 0)
                return 1;
        populate(m);
        if (pinlet_metrics_format(m, &text, &len) < 0)
                return 1;
        return fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1;
}

static int serve(const char *listen, const char *addr_file)
{
        _cleanup_metrics_ struct pinlet_metrics *m = NULL;
        sigset_t set;
        int sig;

        /* Blocked before the HTTP thread starts, so only sigwait() below takes them. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        if (new_metrics(listen, &m) < 0)
                return 1;
        populate(m);
        if (addr_file) {
                _cleanup_free_ char *tmp = NULL;
                FILE *f;

                if (asprintf(&tmp, "%s.tmp", addr_file) < 0 || !(f = fopen(tmp, "we")))
                        return 1;
                fprintf(f, "%s\n", pinlet_metrics_address(m));
                if (fclose(f) != 0 || rename(tmp, addr_file) < 0)
                        return 1;
        }
        fprintf(stderr, "pinlet_it_metrics: serving on %s\n", pinlet_metrics_address(m));
        sigwait(&set, &sig);
        return 0;
}

static double elapsed_ns_per_op(uint64_t t0, long n)
{
        return (double)(pinlet_metrics_now_ns() - t0) / (double)n;
}

static int bench(long n)
{
        _cleanup_metrics_ struct pinlet_metrics *m = NULL;
        uint64_t t0;

        if (new_metrics(NULL, &m) < 0)
                return 1;
        populate(m);
        t0 = pinlet_metrics_now_ns();
        for (long i = 0; i < n; i++)
                pinlet_metrics_cri_request(m, "/runtime.v1.ImageService/PullImage", 0,
                                           (uint64_t)i & 0xffffff);
        printf("cri_request       %6.1f ns/op\n", elapsed_ns_per_op(t0, n));
        t0 = pinlet_metrics_now_ns();
        for (long i = 0; i < n; i++)
                pinlet_metrics_decision(m, "ImageStatus", "substituted", "cache");
        printf("decision          %6.1f ns/op\n", elapsed_ns_per_op(t0, n));
        t0 = pinlet_metrics_now_ns();
        for (long i = 0; i < n; i++)
                pinlet_metrics_registry_request(m, "r48.example", 0, 5000000);
        printf("registry_request  %6.1f ns/op (host in the last claimed slot of 53)\n",
               elapsed_ns_per_op(t0, n));
        t0 = pinlet_metrics_now_ns();
        for (long i = 0; i < n; i++)
                pinlet_metrics_cache_lookup(m, PINLET_METRICS_CACHE_HIT);
        printf("cache_lookup      %6.1f ns/op\n", elapsed_ns_per_op(t0, n));
        t0 = pinlet_metrics_now_ns();
        for (long i = 0; i < n; i++)
                pinlet_metrics_heartbeat(m);
        printf("heartbeat         %6.1f ns/op\n", elapsed_ns_per_op(t0, n));
        t0 = pinlet_metrics_now_ns();
        for (long i = 0; i < n / 1000; i++) {
                _cleanup_free_ char *text = NULL;

                if (pinlet_metrics_format(m, &text, NULL) < 0)
                        return 1;
        }
        printf("format (scrape)   %6.1f us/op\n", elapsed_ns_per_op(t0, n / 1000) / 1000);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc >= 2 && strcmp(argv[1], "dump") == 0)
                return dump();
        if (argc >= 3 && strcmp(argv[1], "serve") == 0)
                return serve(argv[2], argc >= 4 ? argv[3] : NULL);
        if (argc >= 2 && strcmp(argv[1], "bench") == 0)
                return bench(argc >= 3 ? atol(argv[2]) : 10000000);
        fprintf(stderr, "usage: %s dump | serve ADDR [ADDR_FILE] | bench [N]\n", argv[0]);
        return 2;
}
