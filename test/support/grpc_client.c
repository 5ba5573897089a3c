/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Byte-oriented gRPC test client on gRPC core. See grpc_client.h.
 *
 * Each call owns a private completion queue (grpc_completion_queue_create_for_next): only
 * this call's batches complete on it, so the calling thread can drive it with
 * grpc_completion_queue_next() without any locking, and many threads can run calls on the
 * same channel at once. Unary calls use one batch carrying all six ops (the cheapest
 * shape, as kubelet's grpc-go client effectively does); streams use the classic layout
 * of gRPC core's own fixtures: one batch for initial metadata, one for the status, one
 * outstanding receive and one outstanding send at a time.
 */
#include "grpc_client.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "util/grpc_names.h"

struct pinlet_tgrpc_channel {
        grpc_channel *channel;
};

/* Completion tags of one call; the call's queue sees only these. */
enum {
        TAG_UNARY = 1,
        TAG_START,  /* send initial metadata + receive initial metadata */
        TAG_STATUS, /* receive status on client */
        TAG_SEND,   /* one message or the half-close */
        TAG_RECV,   /* one message */
};

#define TAG(t) ((void *)(intptr_t)(t))

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct pinlet_tgrpc_channel *pinlet_tgrpc_connect(const char *target, size_t max_message_size,
                                                  const char *authority)
{
        struct pinlet_tgrpc_channel *ch;
        grpc_channel_credentials *creds;
        grpc_arg args[3];
        size_t n = 0;
        int max = max_message_size > INT_MAX ? INT_MAX : (int)max_message_size;

        if (!target)
                return NULL;
        ch = calloc(1, sizeof(*ch));
        if (!ch)
                return NULL;
        grpc_init();
        if (max_message_size > 0) {
                args[n].type = GRPC_ARG_INTEGER;
                args[n].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
                args[n].value.integer = max;
                n++;
                args[n].type = GRPC_ARG_INTEGER;
                args[n].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
                args[n].value.integer = max;
                n++;
        }
        if (authority) {
                args[n].type = GRPC_ARG_STRING;
                args[n].key = (char *)GRPC_ARG_DEFAULT_AUTHORITY;
                args[n].value.string = (char *)authority;
                n++;
        }
        grpc_channel_args cargs = { .num_args = n, .args = args };
        creds = grpc_insecure_credentials_create();
        ch->channel = grpc_channel_create(target, creds, &cargs);
        grpc_channel_credentials_release(creds);
        if (!ch->channel) {
                grpc_shutdown();
                free(ch);
                return NULL;
        }
        return ch;
}

void pinlet_tgrpc_channel_free(struct pinlet_tgrpc_channel *ch)
{
        if (!ch)
                return;
        grpc_channel_destroy(ch->channel);
        free(ch);
        grpc_shutdown();
}

/* Copies a slice into a fresh NUL-terminated buffer. */
static uint8_t *slice_dup(grpc_slice s, size_t *ret_len)
{
        size_t len = GRPC_SLICE_LENGTH(s);
        uint8_t *p = malloc(len + 1);

        if (!p)
                return NULL;
        memcpy(p, GRPC_SLICE_START_PTR(s), len);
        p[len] = 0;
        if (ret_len)
                *ret_len = len;
        return p;
}

static int md_copy(const grpc_metadata_array *in, struct pinlet_tgrpc_md **ret, size_t *ret_n)
{
        struct pinlet_tgrpc_md *md;

        if (in->count == 0)
                return 0;
        md = calloc(in->count, sizeof(*md));
        if (!md)
                return -ENOMEM;
        for (size_t i = 0; i < in->count; i++) {
                md[i].key = (const char *)slice_dup(in->metadata[i].key, NULL);
                md[i].value = slice_dup(in->metadata[i].value, &md[i].value_len);
                if (!md[i].key || !md[i].value) {
                        *ret = md;
                        *ret_n = i + 1;
                        return -ENOMEM;
                }
        }
        *ret = md;
        *ret_n = in->count;
        return 0;
}

/* Takes the message out of *bb (destroying it) and appends it to the result. */
static int result_add_message(struct pinlet_tgrpc_result *r, grpc_byte_buffer **bb)
{
        grpc_byte_buffer_reader reader;
        struct pinlet_tgrpc_msg *msgs;
        grpc_slice s;
        uint8_t *data;
        size_t len;

        if (!grpc_byte_buffer_reader_init(&reader, *bb)) {
                grpc_byte_buffer_destroy(*bb);
                *bb = NULL;
                return -EIO;
        }
        s = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
        grpc_byte_buffer_destroy(*bb);
        *bb = NULL;
        data = slice_dup(s, &len);
        grpc_slice_unref(s);
        if (!data)
                return -ENOMEM;
        msgs = realloc(r->messages, (r->n_messages + 1) * sizeof(*msgs));
        if (!msgs) {
                free(data);
                return -ENOMEM;
        }
        r->messages = msgs;
        r->messages[r->n_messages].data = data;
        r->messages[r->n_messages].len = len;
        r->n_messages++;
        return 0;
}

static grpc_byte_buffer *make_buffer(const struct pinlet_tgrpc_msg *m)
{
        grpc_slice s = grpc_slice_from_copied_buffer((const char *)m->data, m->len);
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);

        grpc_slice_unref(s);
        return bb;
}

static void set_error(struct pinlet_tgrpc_result *r, const char *what)
{
        free(r->details);
        r->details = strdup(what);
        r->status = GRPC_STATUS_INTERNAL;
}

/* State of one running call, on the caller's stack. */
struct call_state {
        const struct pinlet_tgrpc_call_opts *o;
        struct pinlet_tgrpc_result *r;
        grpc_call *call;
        grpc_completion_queue *cq;
        grpc_metadata *send_md;
        grpc_metadata_array initial_md;
        grpc_metadata_array trailing_md;
        grpc_slice details;
        grpc_status_code status;
        grpc_byte_buffer *recv_bb;
        grpc_byte_buffer *send_bb;
        size_t outstanding; /* batches started and not completed */
        bool status_done;
        bool recv_done;   /* the server ended its stream of messages */
        bool send_done;   /* no more sends will be started */
        bool send_busy;   /* a send batch is in flight */
        bool closed;      /* half-close sent */
        size_t next_send; /* index of the next message to send */
        int64_t cancel_at;
        int64_t limit_at;
        int err;
};

static int start(struct call_state *s, grpc_op *ops, size_t n, int tag)
{
        grpc_call_error e = grpc_call_start_batch(s->call, ops, n, TAG(tag), NULL);

        if (e != GRPC_CALL_OK) {
                char buf[160];
                snprintf(buf, sizeof(buf), "grpc_call_start_batch (tag %d): %s", tag,
                         grpc_call_error_to_string(e));
                set_error(s->r, buf);
                s->err = -EPROTO;
                return -EPROTO;
        }
        s->outstanding++;
        return 0;
}

static int start_recv(struct call_state *s)
{
        grpc_op op = { .op = GRPC_OP_RECV_MESSAGE };

        op.data.recv_message.recv_message = &s->recv_bb;
        return start(s, &op, 1, TAG_RECV);
}

/* Starts the next send (message or half-close) if one is due. */
static int maybe_send(struct call_state *s)
{
        const struct pinlet_tgrpc_call_opts *o = s->o;
        grpc_op op = { 0 };

        if (s->send_done || s->send_busy)
                return 0;
        if (s->next_send < o->n_messages) {
                /* lockstep: message i+1 waits for response i */
                if (o->kind == PINLET_TGRPC_BIDI && o->lockstep && s->r->n_messages < s->next_send)
                        return 0;
                s->send_bb = make_buffer(&o->messages[s->next_send]);
                if (!s->send_bb)
                        return -ENOMEM;
                op.op = GRPC_OP_SEND_MESSAGE;
                op.data.send_message.send_message = s->send_bb;
                s->next_send++;
        } else if (!o->no_half_close && !s->closed) {
                op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
                s->closed = true;
                s->send_done = true;
        } else {
                s->send_done = true;
                return 0;
        }
        s->send_busy = true;
        return start(s, &op, 1, TAG_SEND);
}

static void do_cancel(struct call_state *s)
{
        if (!s->r->cancelled) {
                s->r->cancelled = true;
                grpc_call_cancel(s->call, NULL);
        }
}

static void on_received(struct call_state *s)
{
        size_t n = s->o->cancel_after_messages;

        if (n > 0 && s->r->n_messages >= n)
                do_cancel(s);
}

static int start_unary(struct call_state *s)
{
        grpc_op ops[6];
        memset(ops, 0, sizeof(ops));

        s->send_bb = make_buffer(&s->o->messages[0]);
        if (!s->send_bb)
                return -ENOMEM;
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[0].data.send_initial_metadata.count = s->o->n_metadata;
        ops[0].data.send_initial_metadata.metadata = s->send_md;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = s->send_bb;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &s->recv_bb;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
        ops[5].data.recv_status_on_client.status = &s->status;
        ops[5].data.recv_status_on_client.status_details = &s->details;
        s->send_done = s->closed = true;
        return start(s, ops, 6, TAG_UNARY);
}

static int start_stream(struct call_state *s)
{
        grpc_op ops[2];
        int ret;

        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[0].data.send_initial_metadata.count = s->o->n_metadata;
        ops[0].data.send_initial_metadata.metadata = s->send_md;
        ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[1].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
        ret = start(s, ops, 2, TAG_START);
        if (ret < 0)
                return ret;

        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[0].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
        ops[0].data.recv_status_on_client.status = &s->status;
        ops[0].data.recv_status_on_client.status_details = &s->details;
        ret = start(s, ops, 1, TAG_STATUS);
        if (ret < 0)
                return ret;

        ret = start_recv(s);
        if (ret < 0)
                return ret;
        return maybe_send(s);
}

static void on_event(struct call_state *s, int tag, bool ok)
{
        int ret = 0;

        switch (tag) {
        case TAG_UNARY:
                if (s->send_bb) {
                        grpc_byte_buffer_destroy(s->send_bb);
                        s->send_bb = NULL;
                }
                /* A unary batch completes only once the status is in, whatever ok says. */
                if (ok)
                        s->r->n_sent = 1;
                if (s->recv_bb)
                        ret = result_add_message(s->r, &s->recv_bb);
                s->status_done = s->recv_done = true;
                break;
        case TAG_START:
                break;
        case TAG_STATUS:
                s->status_done = true;
                break;
        case TAG_SEND:
                s->send_busy = false;
                if (s->send_bb) {
                        grpc_byte_buffer_destroy(s->send_bb);
                        s->send_bb = NULL;
                        if (ok)
                                s->r->n_sent++;
                }
                if (!ok)
                        s->send_done = true; /* the call is over for sending */
                else
                        ret = maybe_send(s);
                break;
        case TAG_RECV:
                if (!ok || !s->recv_bb) {
                        s->recv_done = true;
                        break;
                }
                ret = result_add_message(s->r, &s->recv_bb);
                if (ret == 0) {
                        on_received(s);
                        ret = start_recv(s);
                }
                if (ret == 0)
                        ret = maybe_send(s); /* lockstep waits on receives */
                break;
        }
        if (ret < 0 && s->err == 0) {
                s->err = ret;
                do_cancel(s);
        }
}

static int run_loop(struct call_state *s)
{
        while (s->outstanding > 0) {
                int64_t now = now_ms();
                int64_t wake = s->limit_at;
                grpc_event ev;

                if (!s->r->cancelled && s->cancel_at > 0 && s->cancel_at < wake)
                        wake = s->cancel_at;
                if (!s->r->cancelled && now >= wake) {
                        if (now >= s->limit_at)
                                s->r->timed_out = true;
                        do_cancel(s);
                        continue;
                }
                /* After cancelling, gRPC completes every batch promptly. */
                gpr_timespec deadline =
                        s->r->cancelled
                                ? gpr_inf_future(GPR_CLOCK_MONOTONIC)
                                : gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                               gpr_time_from_millis(wake - now, GPR_TIMESPAN));
                ev = grpc_completion_queue_next(s->cq, deadline, NULL);
                if (ev.type == GRPC_QUEUE_TIMEOUT)
                        continue;
                if (ev.type != GRPC_OP_COMPLETE)
                        return -EPROTO; /* the queue shut down under us: cannot happen */
                s->outstanding--;
                on_event(s, (int)(intptr_t)ev.tag, ev.success != 0);
        }
        return 0;
}

int pinlet_tgrpc_call(struct pinlet_tgrpc_channel *ch, const struct pinlet_tgrpc_call_opts *o,
                      struct pinlet_tgrpc_result *ret)
{
        struct call_state s = { .o = o, .r = ret };
        grpc_slice method;
        gpr_timespec deadline;
        int64_t t0 = now_ms();
        int rc;

        memset(ret, 0, sizeof(*ret));
        if (!ch || !o || !o->method) {
                set_error(ret, "pinlet_tgrpc_call: missing channel or method");
                return -EINVAL;
        }
        if ((o->kind == PINLET_TGRPC_UNARY || o->kind == PINLET_TGRPC_SERVER_STREAM) &&
            o->n_messages != 1) {
                set_error(ret, "pinlet_tgrpc_call: unary and server-streaming need 1 message");
                return -EINVAL;
        }
        if (o->n_messages > 0 && !o->messages) {
                set_error(ret, "pinlet_tgrpc_call: messages is NULL");
                return -EINVAL;
        }

        s.cancel_at = o->cancel_after_ms > 0 ? t0 + o->cancel_after_ms : 0;
        s.limit_at = t0 + (o->wait_limit_ms > 0 ? o->wait_limit_ms : 60000);
        grpc_metadata_array_init(&s.initial_md);
        grpc_metadata_array_init(&s.trailing_md);
        s.details = grpc_empty_slice();

        if (o->n_metadata > 0) {
                s.send_md = calloc(o->n_metadata, sizeof(*s.send_md));
                if (!s.send_md) {
                        set_error(ret, "out of memory");
                        rc = -ENOMEM;
                        goto out;
                }
                /* Static slices: the keys and values outlive the call (borrowed from o). */
                for (size_t i = 0; i < o->n_metadata; i++) {
                        s.send_md[i].key = grpc_slice_from_static_string(o->metadata[i].key);
                        s.send_md[i].value = grpc_slice_from_static_buffer(
                                o->metadata[i].value, o->metadata[i].value_len);
                }
        }

        s.cq = grpc_completion_queue_create_for_next(NULL);
        deadline = o->timeout_ms > 0
                           ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                          gpr_time_from_millis(o->timeout_ms, GPR_TIMESPAN))
                           : gpr_inf_future(GPR_CLOCK_REALTIME);
        method = grpc_slice_from_static_string(o->method);
        s.call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s.cq, method,
                                          NULL, deadline, NULL);
        if (!s.call) {
                set_error(ret, "grpc_channel_create_call failed");
                rc = -EPROTO;
                goto out;
        }

        rc = o->kind == PINLET_TGRPC_UNARY ? start_unary(&s) : start_stream(&s);
        if (rc < 0) {
                if (s.err == 0)
                        set_error(ret, "out of memory");
                s.err = rc;
                /* Whatever was started must still complete: cancel and drain. */
                if (s.outstanding > 0)
                        do_cancel(&s);
        }
        rc = run_loop(&s);
        if (rc == 0 && s.err < 0)
                rc = s.err;
        if (rc == 0) {
                ret->status = s.status;
                free(ret->details);
                ret->details = (char *)slice_dup(s.details, NULL);
                if (!ret->details)
                        rc = -ENOMEM;
        }
        if (rc == 0)
                rc = md_copy(&s.initial_md, &ret->initial_md, &ret->n_initial_md);
        if (rc == 0)
                rc = md_copy(&s.trailing_md, &ret->trailing_md, &ret->n_trailing_md);
        ret->elapsed_ms = now_ms() - t0;

out:
        if (s.send_bb)
                grpc_byte_buffer_destroy(s.send_bb);
        if (s.recv_bb)
                grpc_byte_buffer_destroy(s.recv_bb);
        if (s.call)
                grpc_call_unref(s.call);
        if (s.cq) {
                grpc_completion_queue_shutdown(s.cq);
                while (grpc_completion_queue_next(s.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                               .type != GRPC_QUEUE_SHUTDOWN)
                        ;
                grpc_completion_queue_destroy(s.cq);
        }
        grpc_metadata_array_destroy(&s.initial_md);
        grpc_metadata_array_destroy(&s.trailing_md);
        grpc_slice_unref(s.details);
        free(s.send_md);
        if (!ret->details)
                ret->details = strdup("");
        return rc;
}

int pinlet_tgrpc_unary(struct pinlet_tgrpc_channel *ch, const char *method, const void *request,
                       size_t len, const struct pinlet_tgrpc_md *metadata, size_t n_metadata,
                       int64_t timeout_ms, struct pinlet_tgrpc_result *ret)
{
        struct pinlet_tgrpc_msg msg = { .data = request, .len = len };
        struct pinlet_tgrpc_call_opts o = {
                .kind = PINLET_TGRPC_UNARY,
                .method = method,
                .metadata = metadata,
                .n_metadata = n_metadata,
                .messages = &msg,
                .n_messages = 1,
                .timeout_ms = timeout_ms,
        };

        return pinlet_tgrpc_call(ch, &o, ret);
}

static void md_free(struct pinlet_tgrpc_md *md, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free((char *)md[i].key);
                free((uint8_t *)md[i].value);
        }
        free(md);
}

void pinlet_tgrpc_result_free(struct pinlet_tgrpc_result *r)
{
        if (!r)
                return;
        free(r->details);
        md_free(r->initial_md, r->n_initial_md);
        md_free(r->trailing_md, r->n_trailing_md);
        for (size_t i = 0; i < r->n_messages; i++)
                free((uint8_t *)r->messages[i].data);
        free(r->messages);
        memset(r, 0, sizeof(*r));
}

const struct pinlet_tgrpc_md *pinlet_tgrpc_md_find(const struct pinlet_tgrpc_md *md, size_t n,
                                                   const char *key)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(md[i].key, key) == 0)
                        return &md[i];
        return NULL;
}

const char *pinlet_tgrpc_status_name(int status)
{
        const char *name = pinlet_grpc_code_name(status);

        return name ? name : "?";
}
