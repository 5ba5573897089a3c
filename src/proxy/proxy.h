/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A generic gRPC pass-through proxy on gRPC core: it accepts calls on a unix socket and
 * forwards each to a backend channel, byte for byte, with metadata, deadline,
 * cancellation, every message in order, trailing metadata and status carried through.
 * It knows nothing of CRI: the caller hands it a method table.
 *
 * A method in the table may be marked unary (the proxy then sends initial metadata,
 * message and close in one batch each way) and may carry an interceptor that sees the
 * request message and may replace it or fail the call, and a responder that sees the
 * backend's answer and may replace the response message. A method not in the table is
 * forwarded as a bidirectional stream and never decoded.
 *
 * Threads: one completion-queue thread drives all calls. An interceptor is first called
 * on that thread with info->may_block false: it must then not block (no network, no
 * fsync) and either decides at once or answers PINLET_DEFER. A deferred call is queued
 * for a pool of worker threads, where the interceptor is called again with may_block
 * true (it may then block on the network). So calls that need no round trip (a cache
 * hit, a digest reference) never wait behind slow ones in the worker queue.
 *
 * A responder runs the same way: first on the completion-queue thread (may_block false),
 * where it either decides or answers PINLET_DEFER to be called again on a worker (without
 * a queue name limit). Its result is FORWARD_ORIGINAL (the backend's response goes to the
 * client unchanged) or FORWARD_REWRITTEN (result->data replaces the response message);
 * status, metadata and trailers are always the backend's.
 *
 * Worker queues: a deferred call names a queue (result->queue, e.g. the registry host
 * it must ask). At most opts.queue_limit jobs of one queue run at once; the others wait
 * in the queue WITHOUT holding a worker, so one slow queue (a tarpit registry) cannot
 * take the whole pool from the others. A job without a queue name has no such limit.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

enum pinlet_intercept_action {
        PINLET_FORWARD_ORIGINAL,  /* forward the request bytes exactly as received */
        PINLET_FORWARD_REWRITTEN, /* forward result->data instead */
        PINLET_FAIL,              /* end the call with result->status / result->message */
        PINLET_DEFER,             /* (may_block false only) call me again on a worker */
};

struct pinlet_call_info {
        const char *method;  /* ":path", e.g. "/runtime.v1.ImageService/PullImage" */
        int64_t deadline_ms; /* CLOCK_MONOTONIC milliseconds; INT64_MAX when none */
        bool may_block;      /* false: on the completion-queue thread, see above */
        void *state;         /* may_block true: what the first call left in result->state */
};

struct pinlet_intercept_result {
        enum pinlet_intercept_action action;
        uint8_t *data; /* FORWARD_REWRITTEN: owned by the proxy afterwards (free()) */
        size_t len;
        int status;    /* FAIL: a grpc_status_code */
        char *message; /* FAIL: status message, owned by the proxy afterwards (free()) */
        char *queue;   /* DEFER: worker queue name or NULL, owned by the proxy (free()) */
        /* DEFER: handed to the second call as info->state (a call keeps what it decided
         * with, e.g. its configuration), then released with opts.state_free when the call
         * ends, whether or not the second call ran. */
        void *state;
        /* Optional, with any action but DEFER: work the decision does not wait for (the
         * call's audit records). The proxy calls after(after_arg) exactly once, on the
         * thread that applies the result, right after it has started the forward (or
         * sent the failure): the backend is at work on the call meanwhile, so this work
         * adds nothing to the call's latency. Also called, at the latest when the call is
         * freed, when the call ended before the result could be applied. */
        void (*after)(void *arg);
        void *after_arg;
};

/* Must fill *ret. With info->may_block false it runs on the completion-queue thread and
 * must not block; with true it runs on a worker, may block (network) and should honour
 * info->deadline_ms (it must not answer PINLET_DEFER then). */
typedef void (*pinlet_intercept_fn)(void *userdata, const struct pinlet_call_info *info,
                                    const uint8_t *request, size_t len,
                                    struct pinlet_intercept_result *ret);

/* Called once the backend answered a unary call, before the answer goes to the client.
 * request is what the CLIENT sent (before any interceptor rewrote it), status the
 * backend's grpc_status_code, response the backend's message (NULL and 0 when it sent
 * none, as with a non-OK status). Must fill *ret: FORWARD_ORIGINAL, FORWARD_REWRITTEN
 * (ret->data replaces the response, the proxy frees it), or (may_block false only)
 * PINLET_DEFER; PINLET_FAIL is not allowed and forwards the original answer. info->state
 * is always NULL. Threads and blocking: as pinlet_intercept_fn. */
typedef void (*pinlet_respond_fn)(void *userdata, const struct pinlet_call_info *info,
                                  const uint8_t *request, size_t request_len, int status,
                                  const uint8_t *response, size_t response_len,
                                  struct pinlet_intercept_result *ret);

struct pinlet_method {
        const char *path;              /* full method path */
        bool unary;                    /* known to be unary: coalesce batches */
        pinlet_intercept_fn intercept; /* NULL: never decoded; used only when unary */
        pinlet_respond_fn respond;     /* NULL: the answer passes as bytes; only when unary */
};

struct pinlet_proxy_options {
        const char *listen_path; /* unix socket path */
        mode_t socket_mode;
        uid_t socket_uid; /* (uid_t)-1: unchanged */
        gid_t socket_gid; /* (gid_t)-1: unchanged */
        const char *runtime_endpoint;
        const char *image_endpoint;        /* NULL: use runtime_endpoint */
        const char *const *image_prefixes; /* NULL-terminated; paths routed to image */
        size_t max_message_size;           /* required (> 0): the configured limit, both ways */
        uint64_t shutdown_grace_ms;
        unsigned workers;     /* worker threads for deferred interceptor calls (>= 1) */
        unsigned queue_limit; /* jobs of one named queue running at once; 0: workers */
        const struct pinlet_method *methods; /* not copied: must outlive the proxy */
        size_t n_methods;
        void *userdata;                  /* passed to interceptors */
        void (*state_free)(void *state); /* releases pinlet_intercept_result.state */

        /* Observers for metrics, called on the completion-queue thread (must be cheap and
         * must not block). on_call_done: once per accepted call, with its method path, the
         * gRPC status the client got (CANCELLED for a call that ended without one) and
         * its duration. on_wake: at every turn of the loop; with it set the loop turns at
         * least every 500 ms (a liveness heartbeat). */
        void (*on_call_done)(void *userdata, const char *path, int status, int64_t duration_ns);
        void (*on_wake)(void *userdata);
};

struct pinlet_proxy;

/* Creates the listening socket (directory, stale socket, mode, owner) and the backend
 * channels. Nothing is served until pinlet_proxy_run(). */
int pinlet_proxy_new(const struct pinlet_proxy_options *opts, struct pinlet_proxy **ret,
                     struct pinlet_error **err);

/* Serves until pinlet_proxy_shutdown() and the graceful drain finish; returns 0. */
int pinlet_proxy_run(struct pinlet_proxy *p);

/* Thread-safe (not async-signal-safe): stop accepting, give in-flight unary calls up to
 * shutdown_grace_ms, cancel streams, then make pinlet_proxy_run() return. */
void pinlet_proxy_shutdown(struct pinlet_proxy *p);

/* Whether the backend channel (image: the image endpoint's, which is the runtime's when
 * there is none) is connected; an idle channel is asked to connect. Thread-safe. */
bool pinlet_proxy_backend_ready(struct pinlet_proxy *p, bool image);

/* Changes opts.queue_limit for jobs picked from now on (0: workers). Thread-safe. */
void pinlet_proxy_set_queue_limit(struct pinlet_proxy *p, unsigned limit);

/* Counters for tests and metrics (read with relaxed atomics, from any thread). */
struct pinlet_proxy_stats {
        uint64_t calls;            /* calls accepted */
        uint64_t intercepted;      /* interceptor decided on the completion-queue thread */
        uint64_t deferred;         /* interceptor deferred to a worker */
        uint64_t responded;        /* responder decided on the completion-queue thread */
        uint64_t respond_deferred; /* responder deferred to a worker */
        uint64_t accept_retries;   /* failed attempts to accept the next call, retried */
};
void pinlet_proxy_get_stats(struct pinlet_proxy *p, struct pinlet_proxy_stats *ret);

/* For tests: the next n attempts to accept a call fail as if memory or gRPC refused them
 * (the accept loop must survive that). Thread-safe. */
void pinlet_proxy_inject_accept_failures(struct pinlet_proxy *p, unsigned n);

/* Removes the socket and frees everything. NULL is fine. */
void pinlet_proxy_free(struct pinlet_proxy *p);
