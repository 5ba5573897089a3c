/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small, byte-oriented gRPC client for tests and benchmarks, on gRPC core (insecure
 * credentials, unix socket targets "unix:/path" or "unix:///path"). It knows no protobuf:
 * requests and responses are opaque byte strings, so the same client drives real CRI
 * runtimes (with bytes from protobuf-c), the fake backend, and methods that do not exist.
 *
 * Threads: a channel is one persistent HTTP/2 connection (gRPC multiplexes calls on it) and
 * may be shared by any number of threads. Every call uses its own private completion queue,
 * created and destroyed inside the call, so calls on the same channel from many threads
 * never see each other's events. Nothing here keeps global state besides grpc_init().
 *
 * Ownership: every input (target, method, metadata, messages) is borrowed for the duration
 * of the call only. Everything in a struct pinlet_tgrpc_result belongs to the result and
 * is freed by pinlet_tgrpc_result_free(), which also accepts a zeroed result.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One metadata entry. As input it is borrowed; in a result it is owned by the result.
 * value is not NUL-terminated in general (binary "-bin" keys carry raw bytes; gRPC does
 * the base64 on the wire), but results always add a NUL after value_len for convenience. */
struct pinlet_tgrpc_md {
        const char *key; /* lower-case, e.g. "x-fake-mode", "trace-bin" */
        const uint8_t *value;
        size_t value_len;
};

/* One message. As input borrowed; in a result owned by the result. */
struct pinlet_tgrpc_msg {
        const uint8_t *data;
        size_t len;
};

enum pinlet_tgrpc_kind {
        PINLET_TGRPC_UNARY,         /* exactly one request message; one batch each way */
        PINLET_TGRPC_SERVER_STREAM, /* one request message, any number of responses */
        PINLET_TGRPC_CLIENT_STREAM, /* n_messages requests, then half-close */
        PINLET_TGRPC_BIDI,          /* requests sent while responses are received */
};

struct pinlet_tgrpc_call_opts {
        enum pinlet_tgrpc_kind kind;
        const char *method; /* full path, "/runtime.v1.RuntimeService/Version" */
        const struct pinlet_tgrpc_md *metadata;
        size_t n_metadata;
        const struct pinlet_tgrpc_msg *messages; /* UNARY/SERVER_STREAM: exactly 1 */
        size_t n_messages;
        int64_t timeout_ms; /* deadline sent to the server; <= 0: no deadline */

        /* Client-side cancellation (grpc_call_cancel), to test that it propagates. The call
         * still runs to its status (CANCELLED, normally) and the result is complete. */
        int64_t cancel_after_ms;      /* > 0: cancel this long after the call started */
        size_t cancel_after_messages; /* > 0: cancel once this many responses arrived */

        /* BIDI only: send message i+1 only after response i arrived (proves the messages
         * really interleave: a proxy that buffers until half-close would stall; the call
         * then ends at its deadline). false: send everything, receiving concurrently. */
        bool lockstep;
        /* CLIENT_STREAM/BIDI: do not half-close after the last message (the call then ends
         * only by the server, the deadline or cancellation). */
        bool no_half_close;

        /* Safety net for the test itself: the longest the client waits for the status
         * (monotonic, from the start) before it cancels the call locally and reports
         * result.timed_out. <= 0: 60 s. Independent of timeout_ms (which the server sees). */
        int64_t wait_limit_ms;
};

struct pinlet_tgrpc_result {
        int status;    /* grpc_status_code (GRPC_STATUS_OK == 0) */
        char *details; /* status message, NUL-terminated, "" when none */
        struct pinlet_tgrpc_md *initial_md;
        size_t n_initial_md;
        struct pinlet_tgrpc_md *trailing_md;
        size_t n_trailing_md;
        struct pinlet_tgrpc_msg *messages; /* responses in arrival order */
        size_t n_messages;
        size_t n_sent;      /* request messages the transport accepted */
        bool cancelled;     /* the client cancelled (cancel_after_* or wait_limit) */
        bool timed_out;     /* wait_limit_ms reached: the status above is local */
        int64_t elapsed_ms; /* from call start to status */
};

struct pinlet_tgrpc_channel;

/*
 * Opens a channel to target (any gRPC target; tests use "unix:/path" or "unix:///path")
 * with max send and receive message size max_message_size (0: gRPC's defaults: 4 MiB
 * receive, unlimited send). authority: NULL for gRPC's default (the target), or a value
 * sent as :authority (GRPC_ARG_DEFAULT_AUTHORITY), e.g. the socket path as old grpc-go
 * clients do. The connection is made lazily and reconnected by gRPC after failures
 * (wait_for_ready is not set: a call with no connection fails with UNAVAILABLE).
 * Calls grpc_init(); returns NULL on failure. Free with pinlet_tgrpc_channel_free().
 */
struct pinlet_tgrpc_channel *pinlet_tgrpc_connect(const char *target, size_t max_message_size,
                                                  const char *authority);

/* Closes the channel (in-flight calls on it must have finished) and calls grpc_shutdown().
 * NULL is fine. */
void pinlet_tgrpc_channel_free(struct pinlet_tgrpc_channel *ch);

/*
 * Runs one call to its end and fills *ret (zeroed first; free with pinlet_tgrpc_result_free
 * whatever the return value). Returns 0 when the call ran to a status (any status, also
 * errors: look at ret->status); negative errno when it could not be run at all (bad
 * options, out of memory, gRPC refused a batch), ret->details then says why.
 * Thread-safe: any number of threads may call this on the same channel at once.
 */
int pinlet_tgrpc_call(struct pinlet_tgrpc_channel *ch, const struct pinlet_tgrpc_call_opts *opts,
                      struct pinlet_tgrpc_result *ret);

/* Shorthand for a UNARY call with one request and no cancellation. */
int pinlet_tgrpc_unary(struct pinlet_tgrpc_channel *ch, const char *method, const void *request,
                       size_t len, const struct pinlet_tgrpc_md *metadata, size_t n_metadata,
                       int64_t timeout_ms, struct pinlet_tgrpc_result *ret);

/* Frees everything the result owns and zeroes it. NULL is fine. */
void pinlet_tgrpc_result_free(struct pinlet_tgrpc_result *r);

/* The first entry with this key (exact, case-sensitive as gRPC lower-cases keys), or NULL.
 * The pointer is into md and lives as long as it. */
const struct pinlet_tgrpc_md *pinlet_tgrpc_md_find(const struct pinlet_tgrpc_md *md, size_t n,
                                                   const char *key);

/* Human-readable name of a grpc_status_code ("UNAVAILABLE"), for assertion messages. */
const char *pinlet_tgrpc_status_name(int status);
