/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRI-level test client on top of the byte-level gRPC test client. See cri_client.h.
 *
 * Only packing and unpacking happen here: the transport, deadlines and cancellation are
 * grpc_client.c's. The client's own wait limit is the deadline plus a margin, so a
 * server (or proxy) that ignores the deadline shows up as timed_out instead of a hang.
 */
#include "cri_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_client.h"

/* Responses larger than this are a test bug (ListImages on a test node is a few KiB). */
#define CRI_MAX_MESSAGE (16u * 1024 * 1024)

struct pinlet_cri_client {
        struct pinlet_tgrpc_channel *ch;
        char *endpoint;
        int64_t timeout_ms;
};

struct pinlet_cri_client *pinlet_cri_client_new(const char *endpoint, int64_t timeout_ms)
{
        struct pinlet_cri_client *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->endpoint = strdup(endpoint);
        c->ch = pinlet_tgrpc_connect(endpoint, CRI_MAX_MESSAGE, NULL);
        c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
        if (!c->endpoint || !c->ch) {
                pinlet_cri_client_free(c);
                return NULL;
        }
        return c;
}

void pinlet_cri_client_free(struct pinlet_cri_client *c)
{
        if (!c)
                return;
        pinlet_tgrpc_channel_free(c->ch);
        free(c->endpoint);
        free(c);
}

const char *pinlet_cri_client_endpoint(const struct pinlet_cri_client *c)
{
        return c->endpoint;
}

static char *dup_or_empty(const char *s)
{
        return strdup(s ? s : "");
}

/* Packs a message into a fresh buffer; *ret_len may be 0 (an empty message is valid). */
static uint8_t *pack(const ProtobufCMessage *m, size_t *ret_len)
{
        size_t len = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(len ? len : 1);

        if (!buf)
                return NULL;
        protobuf_c_message_pack(m, buf);
        *ret_len = len;
        return buf;
}

int pinlet_cri_call(struct pinlet_cri_client *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, struct pinlet_cri_reply *ret)
{
        struct pinlet_tgrpc_result res = { 0 };
        struct pinlet_tgrpc_call_opts opts = { 0 };
        struct pinlet_tgrpc_msg msg;
        uint8_t *buf;
        size_t len = 0;
        int r;

        memset(ret, 0, sizeof(*ret));
        buf = pack(req, &len);
        if (!buf) {
                ret->status = -1;
                ret->message = dup_or_empty("out of memory packing the request");
                return -ENOMEM;
        }
        msg.data = buf;
        msg.len = len;
        opts.kind = PINLET_TGRPC_UNARY;
        opts.method = method;
        opts.messages = &msg;
        opts.n_messages = 1;
        opts.timeout_ms = c->timeout_ms;
        opts.wait_limit_ms = c->timeout_ms + 2000;
        r = pinlet_tgrpc_call(c->ch, &opts, &res);
        free(buf);

        ret->status = res.status;
        ret->message = dup_or_empty(res.details);
        ret->elapsed_ms = res.elapsed_ms;
        ret->timed_out = res.timed_out;
        if (r < 0) {
                pinlet_tgrpc_result_free(&res);
                return r;
        }
        if (res.status == 0) {
                if (res.n_messages != 1) {
                        free(ret->message);
                        ret->message = NULL;
                        if (asprintf(&ret->message, "%s: OK with %zu response messages", method,
                                     res.n_messages) < 0)
                                ret->message = NULL;
                        pinlet_tgrpc_result_free(&res);
                        return -EBADMSG;
                }
                ret->raw = malloc(res.messages[0].len ? res.messages[0].len : 1);
                if (!ret->raw) {
                        pinlet_tgrpc_result_free(&res);
                        return -ENOMEM;
                }
                memcpy(ret->raw, res.messages[0].data, res.messages[0].len);
                ret->raw_len = res.messages[0].len;
                ret->resp = protobuf_c_message_unpack(resp_desc, NULL, res.messages[0].len,
                                                      res.messages[0].data);
                if (!ret->resp) {
                        free(ret->message);
                        if (asprintf(&ret->message, "%s: response of %zu bytes is not a %s", method,
                                     res.messages[0].len, resp_desc->name) < 0)
                                ret->message = NULL;
                        pinlet_tgrpc_result_free(&res);
                        return -EBADMSG;
                }
        }
        pinlet_tgrpc_result_free(&res);
        return 0;
}

void pinlet_cri_reply_free(struct pinlet_cri_reply *r)
{
        if (!r)
                return;
        if (r->resp)
                protobuf_c_message_free_unpacked(r->resp, NULL);
        free(r->raw);
        free(r->message);
        memset(r, 0, sizeof(*r));
}

int pinlet_cri_get_events(struct pinlet_cri_client *c, int64_t cancel_after_ms,
                          size_t cancel_after_events, struct pinlet_cri_events *ret)
{
        Critest__GetEventsRequest req = CRITEST__GET_EVENTS_REQUEST__INIT;
        struct pinlet_tgrpc_result res = { 0 };
        struct pinlet_tgrpc_call_opts opts = { 0 };
        struct pinlet_tgrpc_msg msg;
        uint8_t *buf;
        size_t len = 0, i;
        int r;

        memset(ret, 0, sizeof(*ret));
        buf = pack(&req.base, &len);
        if (!buf)
                return -ENOMEM;
        msg.data = buf;
        msg.len = len;
        opts.kind = PINLET_TGRPC_SERVER_STREAM;
        opts.method = CRI_RUNTIME_SERVICE "GetContainerEvents";
        opts.messages = &msg;
        opts.n_messages = 1;
        /* A stream has no deadline of its own (kubelet's has none either); the client
         * ends it by cancelling, and waits at most a little longer than that. */
        opts.cancel_after_ms = cancel_after_ms;
        opts.cancel_after_messages = cancel_after_events;
        opts.wait_limit_ms = (cancel_after_ms > 0 ? cancel_after_ms : c->timeout_ms) + 5000;
        r = pinlet_tgrpc_call(c->ch, &opts, &res);
        free(buf);

        ret->status = res.status;
        ret->message = dup_or_empty(res.details);
        ret->cancelled = res.cancelled;
        ret->elapsed_ms = res.elapsed_ms;
        if (r < 0) {
                pinlet_tgrpc_result_free(&res);
                return r;
        }
        if (res.n_messages > 0) {
                ret->events = calloc(res.n_messages, sizeof(*ret->events));
                if (!ret->events) {
                        pinlet_tgrpc_result_free(&res);
                        return -ENOMEM;
                }
        }
        for (i = 0; i < res.n_messages; i++) {
                ret->events[i] = critest__container_event_response__unpack(
                        NULL, res.messages[i].len, res.messages[i].data);
                if (!ret->events[i]) {
                        free(ret->message);
                        if (asprintf(&ret->message, "event %zu (%zu bytes) does not decode", i,
                                     res.messages[i].len) < 0)
                                ret->message = NULL;
                        pinlet_tgrpc_result_free(&res);
                        return -EBADMSG;
                }
                ret->n_events++;
        }
        pinlet_tgrpc_result_free(&res);
        return 0;
}

void pinlet_cri_events_free(struct pinlet_cri_events *e)
{
        size_t i;

        if (!e)
                return;
        for (i = 0; i < e->n_events; i++)
                critest__container_event_response__free_unpacked(e->events[i], NULL);
        free(e->events);
        free(e->message);
        memset(e, 0, sizeof(*e));
}

const char *pinlet_cri_container_state_name(int state)
{
        const ProtobufCEnumValue *v =
                protobuf_c_enum_descriptor_get_value(&critest__container_state__descriptor, state);
        return v ? v->name : "(unknown state)";
}

const char *pinlet_cri_event_type_name(int type)
{
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
                &critest__container_event_type__descriptor, type);
        return v ? v->name : "(unknown event type)";
}
