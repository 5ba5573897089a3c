/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A CRI-level test client: protobuf-c messages of the test-only schema
 * (test/support/cri_test.proto, C names Critest__*) sent over the byte-level gRPC test
 * client (grpc_client.h). It drives a real runtime (containerd) directly or through
 * pinlet, and reports every call's gRPC status and message so tests can compare the two.
 *
 * Ownership: requests are borrowed; everything in a reply or an event stream result
 * belongs to it and is released by the matching _free(), which accepts a zeroed struct.
 * Threads: one client may be used from several threads at once (the channel is shared,
 * each call has its own completion queue).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "cri_test.pb-c.h"

/* Method path prefixes of CRI runtime.v1. */
#define CRI_RUNTIME_SERVICE "/runtime.v1.RuntimeService/"
#define CRI_IMAGE_SERVICE   "/runtime.v1.ImageService/"

struct pinlet_cri_client;

/* The outcome of one unary CRI call. */
struct pinlet_cri_reply {
        int status;             /* grpc_status_code; GRPC_STATUS_OK == 0 */
        char *message;          /* status message, "" when none; never NULL after a call */
        ProtobufCMessage *resp; /* decoded response when status is OK, else NULL */
        uint8_t *raw;           /* the response message as received (status OK), or NULL */
        size_t raw_len;
        int64_t elapsed_ms; /* call start to status */
        bool timed_out;     /* the client's own wait limit ended the call */
};

/* The outcome of a server-streaming GetContainerEvents call. */
struct pinlet_cri_events {
        int status;
        char *message;
        Critest__ContainerEventResponse **events; /* in arrival order */
        size_t n_events;
        bool cancelled; /* ended by the client (cancel_after_*) */
        int64_t elapsed_ms;
};

/*
 * Connects (lazily) to endpoint, "unix:///path" or "unix:/path". timeout_ms is the
 * deadline sent with every call (and the client waits at most 2 s longer for the
 * status before it gives up and reports timed_out). NULL on failure.
 */
struct pinlet_cri_client *pinlet_cri_client_new(const char *endpoint, int64_t timeout_ms);
void pinlet_cri_client_free(struct pinlet_cri_client *c);
const char *pinlet_cri_client_endpoint(const struct pinlet_cri_client *c);

/*
 * One unary call: packs req, calls method (a full path such as
 * CRI_RUNTIME_SERVICE "Version"), and when the status is OK decodes the response as
 * resp_desc. Returns 0 when the call ran to a status (look at ret->status), negative
 * errno when it could not run or an OK response did not decode (ret->message says why).
 * *ret is zeroed first; free it with pinlet_cri_reply_free() in every case.
 */
int pinlet_cri_call(struct pinlet_cri_client *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, struct pinlet_cri_reply *ret);
void pinlet_cri_reply_free(struct pinlet_cri_reply *r);

/*
 * RuntimeService/GetContainerEvents: receives events until the server ends the stream,
 * or the client cancels it cancel_after_ms after the start, or once cancel_after_events
 * events arrived (each 0: not used). Returns as pinlet_cri_call(); free the result with
 * pinlet_cri_events_free().
 */
int pinlet_cri_get_events(struct pinlet_cri_client *c, int64_t cancel_after_ms,
                          size_t cancel_after_events, struct pinlet_cri_events *ret);
void pinlet_cri_events_free(struct pinlet_cri_events *e);

/* "CONTAINER_RUNNING", "CONTAINER_STARTED_EVENT", ...: names for assertion messages. */
const char *pinlet_cri_container_state_name(int state);
const char *pinlet_cri_event_type_name(int type);
