/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pinlet_bench_image: the measuring half of the image-path benchmark (test/bench/image/
 * run.sh starts containerd, the registry and pinlet, and counts registry requests in the
 * registry's log between the steps below; see docs/PERFORMANCE.md ("The image path")).
 *
 *   pinlet_bench_image warm DIRECT PINLET IMAGE CALLS CONCURRENCY[,C...] ROUNDS
 *        PullImage(IMAGE) and ImageStatus(IMAGE) against DIRECT (the runtime's socket) and
 *        PINLET, CALLS calls per run at each concurrency, alternating the two targets in
 *        each round (the order flips every round). One persistent channel per target, the
 *        benchmark load generator (../loadgen.h: one completion queue per client thread,
 *        one batch per call). One JSON object per run on stdout.
 *   pinlet_bench_image seq TARGET status|pull|version PREFIX FROM TO
 *        one call per image PREFIX<i>, i = FROM..TO, strictly one after another, each
 *        timed alone (the client of test/support/grpc_client.h, the same for every target
 *        so that cold, warm and direct compare like for like). One JSON summary on stdout.
 *        With tags nobody resolved yet, every call through pinlet is a cold resolution.
 *        version: RuntimeService/Version with an empty request (PREFIX unused), a call
 *        pinlet passes through untouched: the baseline of the instruction profile.
 *   pinlet_bench_image burst TARGET status|pull N IMAGE
 *        N concurrent calls for IMAGE released together by a barrier on one shared
 *        channel; every one must end OK. One JSON summary on stdout.
 *
 * Exit status 0 when every call ended OK, 1 otherwise (the benchmark never judges times:
 * run.sh only reports them). Requests are encoded by hand: PullImageRequest and
 * ImageStatusRequest both carry ImageSpec as field 1, whose field 1 is the image string.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>

#include "grpc_client.h"
#include "loadgen.h"

#define PULL_METHOD    "/runtime.v1.ImageService/PullImage"
#define STATUS_METHOD  "/runtime.v1.ImageService/ImageStatus"
#define VERSION_METHOD "/runtime.v1.RuntimeService/Version"
#define MAX_REQUEST    2048
#define MAX_BURST      1024
#define CALL_TIMEOUT   120000 /* ms; a pull through a cold path on busy cores stays well below */

static size_t put_varint(uint8_t *out, size_t n, uint64_t v)
{
        while (v >= 0x80) {
                out[n++] = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        out[n++] = (uint8_t)v;
        return n;
}

/* field 1 { field 1: image }. Returns the length, 0 if it does not fit. */
static size_t encode_image_request(const char *image, uint8_t *out, size_t size)
{
        size_t ilen = strlen(image), n = 0, inner;

        if (ilen + 24 > size)
                return 0;
        inner = 1 + put_varint(out, 0, ilen) + ilen; /* measure the ImageSpec length */
        n = put_varint(out, 0, 0x0a);
        n = put_varint(out, n, inner);
        n = put_varint(out, n, 0x0a);
        n = put_varint(out, n, ilen);
        memcpy(out + n, image, ilen);
        return n + ilen;
}

static const char *method_for(const char *kind)
{
        if (strcmp(kind, "status") == 0)
                return STATUS_METHOD;
        if (strcmp(kind, "pull") == 0)
                return PULL_METHOD;
        if (strcmp(kind, "version") == 0)
                return VERSION_METHOD; /* a pass-through call: the request is empty */
        return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static int64_t pct(const int64_t *v, size_t n, double p)
{
        size_t i;

        if (n == 0)
                return 0;
        i = (size_t)(p / 100.0 * (double)n + 0.999999);
        if (i < 1)
                i = 1;
        if (i > n)
                i = n;
        return v[i - 1];
}

/* ---- warm: the load generator, direct vs pinlet ------------------------------------- */

static int parse_list(const char *s, unsigned *out, size_t max, size_t *ret_n)
{
        size_t n = 0;
        char *end;

        while (*s && n < max) {
                unsigned long v = strtoul(s, &end, 10);
                if (end == s || v == 0 || v > 4096)
                        return -EINVAL;
                out[n++] = (unsigned)v;
                s = *end == ',' ? end + 1 : end;
                if (*end && *end != ',')
                        return -EINVAL;
        }
        *ret_n = n;
        return n ? 0 : -EINVAL;
}

static int cmd_warm(int argc, char **argv)
{
        const char *targets[2] = { argv[0], argv[1] }, *names[2] = { "direct", "pinlet" };
        const char *image = argv[2];
        long calls = strtol(argv[3], NULL, 10), rounds = strtol(argv[5], NULL, 10);
        unsigned conc[8];
        size_t n_conc;
        static uint8_t req[MAX_REQUEST];
        size_t req_len = encode_image_request(image, req, sizeof(req));
        struct lg_workload wl[2] = {
                { .name = "pull", .method = PULL_METHOD, .request = req, .request_len = req_len },
                { .name = "status",
                  .method = STATUS_METHOD,
                  .request = req,
                  .request_len = req_len },
        };
        grpc_channel *ch[2] = { NULL, NULL };
        int rc = 0;

        (void)argc;
        if (calls < 1 || rounds < 1 || req_len == 0 || parse_list(argv[4], conc, 8, &n_conc) < 0) {
                fprintf(stderr, "warm: bad arguments\n");
                return 2;
        }
        for (int t = 0; t < 2; t++) {
                char err[300];
                /* lg_connect runs calls for ~50 ms until one succeeds: it also warms
                 * pinlet's cache for IMAGE, so the measured runs see a warm cache. */
                ch[t] = lg_connect(targets[t], &wl[0], 20000, err, sizeof(err), NULL);
                if (!ch[t]) {
                        fprintf(stderr, "warm: %s\n", err);
                        rc = 1;
                        goto out;
                }
        }
        for (int w = 0; w < 2; w++) {
                for (size_t c = 0; c < n_conc; c++) {
                        /* One unmeasured run per target first: connections, containerd's
                         * own caches and page cache reach a steady state. */
                        for (int t = 0; t < 2; t++) {
                                struct lg_result r;
                                lg_run(ch[t], &wl[w], conc[c], conc[c] > 1 ? 2 : 1, 0, 120000,
                                       (uint64_t)(calls / 4 + 1), NULL, NULL, &r);
                        }
                        for (long round = 0; round < rounds; round++) {
                                for (int k = 0; k < 2; k++) {
                                        int t = (int)((k + round) % 2);
                                        struct lg_result r;
                                        int ret =
                                                lg_run(ch[t], &wl[w], conc[c], conc[c] > 1 ? 2 : 1,
                                                       0, 600000, (uint64_t)calls, NULL, NULL, &r);
                                        if (ret < 0 || r.errors > 0 || r.calls == 0) {
                                                fprintf(stderr,
                                                        "warm: %s %s c=%u: %" PRIu64
                                                        " errors, first %d %s\n",
                                                        names[t], wl[w].name, conc[c], r.errors,
                                                        r.first_error, r.first_error_msg);
                                                rc = 1;
                                        }
                                        printf("{\"workload\":\"%s\",\"target\":\"%s\","
                                               "\"concurrency\":%u,\"round\":%ld,\"calls\":%" PRIu64
                                               ",\"errors\":%" PRIu64 ",\"seconds\":%.4f,"
                                               "\"p50_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f,"
                                               "\"rate\":%.1f,\"client_cpu_ms\":%.1f}\n",
                                               wl[w].name, names[t], conc[c], round, r.calls,
                                               r.errors, r.seconds, r.p50_us, r.p99_us, r.mean_us,
                                               r.seconds > 0 ? (double)r.calls / r.seconds : 0,
                                               r.client_cpu_ms);
                                        fflush(stdout);
                                }
                        }
                }
        }
out:
        for (int t = 0; t < 2; t++)
                if (ch[t])
                        grpc_channel_destroy(ch[t]);
        return rc;
}

/* ---- seq: one call per image, each timed alone ---------------------------------------- */

static int cmd_seq(char **argv)
{
        const char *target = argv[0], *method = method_for(argv[1]), *prefix = argv[2];
        long from = strtol(argv[3], NULL, 10), to = strtol(argv[4], NULL, 10);
        struct pinlet_tgrpc_channel *ch;
        int64_t *lat;
        size_t n = 0;
        int failures = 0;
        int64_t sum = 0;

        if (!method || from < 0 || to < from) {
                fprintf(stderr, "seq: bad arguments\n");
                return 2;
        }
        lat = calloc((size_t)(to - from + 1), sizeof(*lat));
        ch = pinlet_tgrpc_connect(target, 0, NULL);
        if (!lat || !ch) {
                fprintf(stderr, "seq: cannot connect to %s\n", target);
                free(lat);
                pinlet_tgrpc_channel_free(ch);
                return 1;
        }
        for (long i = from; i <= to; i++) {
                char image[1024];
                uint8_t req[MAX_REQUEST];
                size_t len;
                struct pinlet_tgrpc_result r = { 0 };
                int64_t t0, t1;

                snprintf(image, sizeof(image), "%s%ld", prefix, i);
                len = strcmp(method, VERSION_METHOD) == 0
                              ? 0
                              : encode_image_request(image, req, sizeof(req));
                t0 = lg_now_ns();
                if (pinlet_tgrpc_unary(ch, method, req, len, NULL, 0, CALL_TIMEOUT, &r) < 0 ||
                    r.status != 0) {
                        fprintf(stderr, "seq: %s: %s %s\n", image,
                                pinlet_tgrpc_status_name(r.status), r.details ? r.details : "");
                        failures++;
                }
                t1 = lg_now_ns();
                pinlet_tgrpc_result_free(&r);
                lat[n++] = (t1 - t0) / 1000;
                sum += (t1 - t0) / 1000;
        }
        qsort(lat, n, sizeof(*lat), cmp_i64);
        printf("{\"calls\":%zu,\"failures\":%d,\"p50_us\":%" PRId64 ",\"p99_us\":%" PRId64
               ",\"min_us\":%" PRId64 ",\"max_us\":%" PRId64 ",\"mean_us\":%" PRId64 "}\n",
               n, failures, pct(lat, n, 50), pct(lat, n, 99), lat[0], lat[n - 1], sum / (int64_t)n);
        free(lat);
        pinlet_tgrpc_channel_free(ch);
        return failures ? 1 : 0;
}

/* ---- burst: N concurrent calls released by a barrier ---------------------------------- */

struct burst {
        struct pinlet_tgrpc_channel *ch;
        const char *method;
        uint8_t req[MAX_REQUEST];
        size_t req_len;
        pthread_barrier_t barrier;
        atomic_int failures;
        int64_t lat_us[MAX_BURST];
};

struct burst_worker {
        struct burst *b;
        int index;
        pthread_t thread;
};

static void *burst_one(void *arg)
{
        struct burst_worker *w = arg;
        struct burst *b = w->b;
        struct pinlet_tgrpc_result r = { 0 };
        int64_t t0;

        pthread_barrier_wait(&b->barrier);
        t0 = lg_now_ns();
        if (pinlet_tgrpc_unary(b->ch, b->method, b->req, b->req_len, NULL, 0, CALL_TIMEOUT, &r) <
                    0 ||
            r.status != 0) {
                fprintf(stderr, "burst call %d: %s %s\n", w->index,
                        pinlet_tgrpc_status_name(r.status), r.details ? r.details : "");
                atomic_fetch_add(&b->failures, 1);
        }
        b->lat_us[w->index] = (lg_now_ns() - t0) / 1000;
        pinlet_tgrpc_result_free(&r);
        return NULL;
}

static int cmd_burst(char **argv)
{
        static struct burst b;
        static struct burst_worker ws[MAX_BURST];
        long n = strtol(argv[2], NULL, 10);
        int64_t t0, t1;

        b.method = method_for(argv[1]);
        b.req_len = encode_image_request(argv[3], b.req, sizeof(b.req));
        if (!b.method || n < 1 || n > MAX_BURST || b.req_len == 0) {
                fprintf(stderr, "burst: bad arguments\n");
                return 2;
        }
        b.ch = pinlet_tgrpc_connect(argv[0], 0, NULL);
        if (!b.ch || pthread_barrier_init(&b.barrier, NULL, (unsigned)n + 1) != 0) {
                fprintf(stderr, "burst: cannot set up\n");
                return 1;
        }
        for (long i = 0; i < n; i++) {
                ws[i].b = &b;
                ws[i].index = (int)i;
                if (pthread_create(&ws[i].thread, NULL, burst_one, &ws[i]) != 0)
                        abort(); /* the barrier could never open */
        }
        pthread_barrier_wait(&b.barrier);
        t0 = lg_now_ns();
        for (long i = 0; i < n; i++)
                pthread_join(ws[i].thread, NULL);
        t1 = lg_now_ns();
        qsort(b.lat_us, (size_t)n, sizeof(b.lat_us[0]), cmp_i64);
        printf("{\"calls\":%ld,\"failures\":%d,\"wall_ms\":%.1f,\"p50_us\":%" PRId64
               ",\"max_us\":%" PRId64 "}\n",
               n, atomic_load(&b.failures), (double)(t1 - t0) / 1e6, pct(b.lat_us, (size_t)n, 50),
               b.lat_us[n - 1]);
        pthread_barrier_destroy(&b.barrier);
        pinlet_tgrpc_channel_free(b.ch);
        return atomic_load(&b.failures) ? 1 : 0;
}

static void usage(void)
{
        fprintf(stderr,
                "usage: pinlet_bench_image warm DIRECT PINLET IMAGE CALLS CONC[,C...] ROUNDS\n"
                "       pinlet_bench_image seq TARGET status|pull|version PREFIX FROM TO\n"
                "       pinlet_bench_image burst TARGET status|pull N IMAGE\n");
        exit(2);
}

int main(int argc, char **argv)
{
        int rc;

        if (argc < 2)
                usage();
        grpc_init();
        if (strcmp(argv[1], "warm") == 0 && argc == 8)
                rc = cmd_warm(argc - 2, argv + 2);
        else if (strcmp(argv[1], "seq") == 0 && argc == 7)
                rc = cmd_seq(argv + 2);
        else if (strcmp(argv[1], "burst") == 0 && argc == 6)
                rc = cmd_burst(argv + 2);
        else
                usage();
        grpc_shutdown();
        return rc;
}
