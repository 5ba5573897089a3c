/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A generic gRPC pass-through proxy on gRPC core: it accepts calls on a unix socket and
 * forwards each to a backend channel, byte for byte, with metadata, deadline,
 * cancellation, every message in order, trailing metadata and status carried through.
 * It knows nothing of CRI: the caller hands it a method table.
 *
 * A method in the table may be marked unary (the proxy then sends initial metadata,
 * message and close in one batch each way) and may carry an interceptor that sees the
 * request message and may replace it or fail the call. A method not in the table is
 * forwarded as a bidirectional stream and never decoded.
 *
 * Threads: one completion-queue thread drives all calls; interceptors run on a pool of
 * worker threads (they may block on the network) and never on the completion-queue
 * thread.
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
};

struct pinlet_call_info {
        const char *method;  /* ":path", e.g. "/runtime.v1.ImageService/PullImage" */
        int64_t deadline_ms; /* CLOCK_MONOTONIC milliseconds; INT64_MAX when none */
};

struct pinlet_intercept_result {
        enum pinlet_intercept_action action;
        uint8_t *data; /* FORWARD_REWRITTEN: owned by the proxy afterwards (free()) */
        size_t len;
        int status;    /* FAIL: a grpc_status_code */
        char *message; /* FAIL: status message, owned by the proxy afterwards (free()) */
};

/* Runs on a worker thread. Must fill *ret; may block (network), but should honour
 * info->deadline_ms. */
typedef void (*pinlet_intercept_fn)(void *userdata, const struct pinlet_call_info *info,
                                    const uint8_t *request, size_t len,
                                    struct pinlet_intercept_result *ret);

struct pinlet_method {
        const char *path;              /* full method path */
        bool unary;                    /* known to be unary: coalesce batches */
        pinlet_intercept_fn intercept; /* NULL: never decoded; used only when unary */
};

struct pinlet_proxy_options {
        const char *listen_path; /* unix socket path */
        mode_t socket_mode;
        uid_t socket_uid; /* (uid_t)-1: unchanged */
        gid_t socket_gid; /* (gid_t)-1: unchanged */
        const char *runtime_endpoint;
        const char *image_endpoint;        /* NULL: use runtime_endpoint */
        const char *const *image_prefixes; /* NULL-terminated; paths routed to image */
        size_t max_message_size;
        uint64_t shutdown_grace_ms;
        unsigned workers;
        const struct pinlet_method *methods; /* not copied: must outlive the proxy */
        size_t n_methods;
        void *userdata; /* passed to interceptors */
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

/* Removes the socket and frees everything. NULL is fine. */
void pinlet_proxy_free(struct pinlet_proxy *p);
