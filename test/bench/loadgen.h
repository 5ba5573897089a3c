/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The benchmark's own unary call loop on gRPC core.
 *
 * Why not test/support/grpc_client (pinlet_test_grpc)? It creates and destroys a
 * completion queue per call and copies every response into fresh memory: right for tests,
 * but on these 2 shared cores the client's own CPU competes with the proxy and the runtime,
 * so every microsecond the client wastes compresses the measured ratios. Here each client
 * thread owns ONE completion queue for the whole run and keeps `concurrency / threads`
 * calls in flight on the shared channel; a call is one batch of all six unary ops (the
 * cheapest shape, what grpc-go's unary path amounts to), the response is only measured and
 * dropped. The channel is one persistent HTTP/2 connection per target, made once and
 * reused by every run: never a dial per call.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

struct lg_md {
        const char *key;
        const char *value;
};

struct lg_workload {
        const char *name;   /* "version", "list" */
        const char *method; /* full path */
        const uint8_t *request;
        size_t request_len;
        const struct lg_md *md;
        size_t n_md;
};

struct lg_result {
        uint64_t calls;  /* OK calls completed inside the measuring window */
        uint64_t errors; /* non-OK calls completed inside the window */
        double seconds;  /* length of the window */
        double p50_us, p99_us, mean_us;
        double resp_bytes;    /* mean response message size */
        double client_cpu_ms; /* this process's CPU inside the window (all threads) */
        int first_error;      /* grpc_status_code of the first error, 0 if none */
        char first_error_msg[200];
};

/* Called at the start and at the end of the measuring window, on the coordinating thread
 * (which otherwise sleeps), so process samples line up with the window. */
typedef void (*lg_window_fn)(void *userdata, int at_end);

/* Opens a channel (insecure, unix target) and waits until one call of w succeeds, up to
 * wait_ms. Returns the channel or NULL (then *ret_err says why). */
grpc_channel *lg_connect(const char *target, const struct lg_workload *w, int64_t wait_ms,
                         char *ret_err, size_t err_size, size_t *ret_resp_len);

/*
 * Runs w on ch with `concurrency` calls in flight, driven by `threads` client threads, for
 * warmup_ms (not measured) and then measure_ms, or until max_calls calls were started and
 * have finished (max_calls > 0; then the window ends when the last one does). window is
 * called at both window edges.
 */
int lg_run(grpc_channel *ch, const struct lg_workload *w, unsigned concurrency, unsigned threads,
           int64_t warmup_ms, int64_t measure_ms, uint64_t max_calls, lg_window_fn window,
           void *userdata, struct lg_result *ret);

int64_t lg_now_ns(void);
