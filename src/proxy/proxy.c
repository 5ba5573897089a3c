/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pass-through proxy on gRPC core.
 *
 * Every completion-queue tag is a struct tag: a function and the proxied call it belongs
 * to. Each proxied call (struct pcall) holds the server-side call (from the client) and the
 * backend call, and a reference count: one reference per batch in flight, one per queued
 * interceptor job, and one held by the dispatcher while it starts the first batches. The
 * count only changes on the completion-queue thread, so it needs no atomics; workers never
 * touch it (their job's reference is dropped when their wake-up tag is processed).
 *
 * State machine of one call (see also pinlet_proxy_run):
 *
 *   request_call ok -> RECV_CLOSE_ON_SERVER (always) -> method table lookup
 *   unary:  server RECV_MESSAGE -> [interceptor on the CQ thread (may_block false):
 *             decided -> go on at once; PINLET_DEFER -> job on its worker queue ->
 *             interceptor on a worker (may_block true) -> zero-op batch wakes CQ]
 *           -> ONE backend batch (send md+msg+close, recv md+msg+status)
 *           -> [responder on the CQ thread: decided -> go on at once; PINLET_DEFER ->
 *             job on a worker -> responder there -> zero-op batch wakes CQ]
 *           -> ONE server batch (send md+msg+status) -> done
 *   stream: backend SEND_INITIAL_METADATA, RECV_INITIAL_METADATA, RECV_STATUS_ON_CLIENT;
 *           c2b pump: server RECV_MESSAGE -> backend SEND_MESSAGE -> ... -> NULL: close;
 *           b2c pump (starts after the backend's initial metadata was passed on, never
 *           waits for a client message): backend RECV_MESSAGE -> server SEND_MESSAGE -> ...;
 *           server SEND_STATUS once the backend status arrived AND the b2c pump hit NULL.
 *   client cancel (RECV_CLOSE cancelled=1) -> cancel backend call; every op then ends.
 *   backend gone: its ops end with UNAVAILABLE, annotated with the endpoint when nothing
 *           (no initial, no trailing metadata) came from the backend and the channel is
 *           not connected: a status the backend itself sent passes unchanged.
 *   accept: one grpc_server_request_call is always outstanding; when one cannot be
 *           started (memory, gRPC refusal) it is retried with backoff (10 ms doubling to
 *           1 s) from the CQ loop's timeout, so pinlet never stops accepting.
 *   shutdown: server shutdown_and_notify (fails the pending request_call: wakes the CQ),
 *           streams cancelled at once, unary calls get shutdown_grace_ms, then a status
 *           "pinlet: shutting down"; once no call is left, 200 ms linger, then the idle
 *           connections are dropped and pinlet_proxy_run() returns.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "proxy/proxy.h"
#include "proxy/socket.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/time.h"

struct pcall;

struct tag {
        void (*fn)(struct pcall *c, bool ok);
        struct pcall *c;
};

/* One backend endpoint: one persistent channel, multiplexing every call. */
struct backend {
        char *endpoint; /* as configured, for messages */
        grpc_channel *channel;
};

struct pcall {
        struct pinlet_proxy *p;
        struct pcall *prev, *next; /* p->live, once accepted */
        struct pcall *job_next;    /* worker queue */
        char *queue;               /* deferred: the worker queue's name, NULL: none; owned */
        void *istate;              /* deferred: the interceptor's state (opts.state_free) */
        unsigned refs;
        bool accepted;

        const struct pinlet_method *method; /* NULL: not in the table */
        struct backend *backend_ep;
        int64_t deadline_ms; /* CLOCK_MONOTONIC ms, INT64_MAX: none */
        int64_t start_ns;    /* when accepted (CLOCK_MONOTONIC ns), for on_call_done */
        bool reported;       /* on_call_done ran */

        grpc_call *server;  /* from the client; owned */
        grpc_call *backend; /* to the backend; owned */
        grpc_call_details details;
        grpc_metadata_array req_md;      /* client initial metadata */
        grpc_metadata_array resp_md;     /* backend initial metadata */
        grpc_metadata_array trailing_md; /* backend trailing metadata */
        grpc_status_code status;
        grpc_slice status_details; /* owned; written by gRPC while RECV_STATUS is in flight */
        /* Our own status message (send_local_status). Separate from status_details: the
         * shutdown may end a call while the backend's RECV_STATUS_ON_CLIENT is still in
         * flight, and gRPC then stores into status_details from a transport thread, which
         * would race with (and leak) a message written there by the CQ thread. */
        grpc_slice local_details; /* owned */
        int server_cancelled;     /* RECV_CLOSE_ON_SERVER output */

        grpc_byte_buffer *c2b; /* client -> backend message in flight; owned */
        /* The client's own request when an interceptor replaced c2b and the method has a
         * responder (which is promised the request as the client sent it); owned. */
        grpc_byte_buffer *req_orig;
        bool responding;       /* the worker job out is the responder's, not the interceptor's */
        grpc_byte_buffer *b2c; /* backend -> client message in flight; owned */

        bool closed;          /* RECV_CLOSE_ON_SERVER completed */
        bool server_md_sent;  /* SEND_INITIAL_METADATA started on the server call */
        bool status_received; /* backend RECV_STATUS_ON_CLIENT completed */
        bool b2c_done;        /* the b2c pump reached the end */
        bool status_sent;     /* SEND_STATUS_FROM_SERVER started */
        bool shutdown_cancel; /* already cancelled by the shutdown */

        struct pinlet_intercept_result ires; /* written by the interceptor */
        /* Set by the CQ thread once the shutdown has ended the call: a worker that has not
         * started the interceptor yet skips it (nobody waits for its result, and queued
         * resolutions would otherwise hold the exit well past the grace period). */
        atomic_bool abandoned;

        struct tag t_request, t_close, t_unary_req, t_intercepted, t_unary_resp, t_status_sent,
                t_backend_md_sent, t_backend_md, t_backend_status, t_server_md_sent, t_c2b_recv,
                t_c2b_sent, t_c2b_close, t_b2c_recv, t_b2c_sent;
};

struct pinlet_proxy {
        struct pinlet_proxy_options opts; /* strings below are our copies */
        char *listen_path;
        char **image_prefixes;               /* NULL-terminated copies */
        const struct pinlet_method **sorted; /* methods sorted by path, for lookup */

        grpc_completion_queue *cq;
        grpc_server *server;
        bool server_started;
        struct backend runtime, image; /* image.channel NULL: same as runtime */
        dev_t sock_dev;
        ino_t sock_ino;
        bool sock_created;

        /* CQ thread only */
        struct pcall *live;    /* accepted calls */
        struct pcall *pending; /* the outstanding grpc_server_request_call */
        bool draining;         /* shutdown seen by the CQ thread */
        bool grace_over;
        bool server_shut_down; /* the shutdown_and_notify tag arrived */
        bool cancel_all_sent;  /* grpc_server_cancel_all_calls done */
        bool lingering;        /* every call done, waiting for the server to finish */
        gpr_timespec grace_deadline, linger_deadline;
        struct tag t_shutdown;
        int64_t accept_retry_ms;   /* when no request is pending: retry at (monotonic ms) */
        int64_t accept_backoff_ms; /* next retry delay */

        /* statistics, relaxed atomics */
        atomic_uint_fast64_t n_calls, n_intercepted, n_deferred, n_accept_retries, n_responded,
                n_respond_deferred;
        atomic_uint inject_accept_failures;

        /* lock protects everything below */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool shutdown_called;
        bool workers_stop;
        struct pcall *jobs, **jobs_tail;
        /* Named queues with jobs running now: at most one slot per worker. */
        struct running {
                char *name; /* owned; NULL: free slot */
                unsigned n;
        } * running;
        unsigned queue_limit;
        pthread_t *threads;
        unsigned n_threads;
        bool grpc_inited;
};

/* ---------------------------------------------------------------------------------------- */
/* call lifetime */

static void ref(struct pcall *c)
{
        c->refs++;
}

static int64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The call's outcome for the on_call_done observer, once. */
static void report_call(struct pcall *c, int status)
{
        char path[256];
        size_t n = GRPC_SLICE_LENGTH(c->details.method);

        if (c->reported || !c->p->opts.on_call_done)
                return;
        c->reported = true;
        if (n >= sizeof(path))
                n = sizeof(path) - 1; /* no known method is that long */
        memcpy(path, GRPC_SLICE_START_PTR(c->details.method), n);
        path[n] = '\0';
        c->p->opts.on_call_done(c->p->opts.userdata, path, status, now_ns() - c->start_ns);
}

/* The result's after-work (see pinlet_intercept_result), once. */
static void run_after(struct pinlet_intercept_result *r)
{
        void (*after)(void *) = r->after;

        r->after = NULL;
        if (after)
                after(TAKE_PTR(r->after_arg));
}

/* Releases what the last interceptor or responder result holds, its after-work run,
 * and leaves an empty FORWARD_ORIGINAL result. */
static void result_clear(struct pinlet_intercept_result *r)
{
        run_after(r);
        free(r->data);
        free(r->message);
        free(r->queue);
        *r = (struct pinlet_intercept_result){ .action = PINLET_FORWARD_ORIGINAL };
}

static void pcall_free(struct pcall *c)
{
        struct pinlet_proxy *p = c->p;

        if (c->accepted)
                report_call(c, GRPC_STATUS_CANCELLED); /* ended without a status of ours */

        if (c->accepted) {
                if (c->prev)
                        c->prev->next = c->next;
                else
                        p->live = c->next;
                if (c->next)
                        c->next->prev = c->prev;
        }
        if (c->server)
                grpc_call_unref(c->server);
        if (c->backend)
                grpc_call_unref(c->backend);
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->req_md);
        grpc_metadata_array_destroy(&c->resp_md);
        grpc_metadata_array_destroy(&c->trailing_md);
        grpc_slice_unref(c->status_details);
        grpc_slice_unref(c->local_details);
        if (c->c2b)
                grpc_byte_buffer_destroy(c->c2b);
        if (c->b2c)
                grpc_byte_buffer_destroy(c->b2c);
        if (c->req_orig)
                grpc_byte_buffer_destroy(c->req_orig);
        result_clear(&c->ires);
        free(c->queue);
        if (c->istate && p->opts.state_free)
                p->opts.state_free(c->istate);
        free(c);
}

static void unref(struct pcall *c)
{
        if (--c->refs == 0)
                pcall_free(c);
}

/* Starts a batch holding a reference for it. gRPC refuses a batch only on a programming
 * error; the tag then runs at once with ok=false, so the state machine still ends. */
static void start(struct pcall *c, grpc_call *call, const grpc_op *ops, size_t n, struct tag *t)
{
        grpc_call_error e;

        ref(c);
        e = grpc_call_start_batch(call, ops, n, t, NULL);
        if (e != GRPC_CALL_OK) {
                log_debug("proxy: grpc_call_start_batch refused (%d) for %s", (int)e,
                          c->method ? c->method->path : "(unknown method)");
                grpc_call_cancel(call, NULL);
                t->fn(c, false);
        }
}

/* ---------------------------------------------------------------------------------------- */
/* helpers */

/* The server call's deadline as CLOCK_MONOTONIC ms. gpr's clocks may use another epoch, so
 * convert through the remaining time rather than the absolute value. */
static int64_t deadline_to_ms(gpr_timespec deadline)
{
        gpr_timespec now, left;

        if (deadline.tv_sec == INT64_MAX ||
            gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) == 0)
                return INT64_MAX;
        deadline = gpr_convert_clock_type(deadline, GPR_CLOCK_MONOTONIC);
        now = gpr_now(GPR_CLOCK_MONOTONIC);
        left = gpr_time_sub(deadline, now);
        return pinlet_now_ms() + gpr_time_to_millis(left);
}

static int slice_cmp_str(grpc_slice s, const char *str)
{
        size_t n = GRPC_SLICE_LENGTH(s), m = strlen(str);
        int r = memcmp(GRPC_SLICE_START_PTR(s), str, n < m ? n : m);

        if (r != 0)
                return r;
        return n < m ? -1 : n > m ? 1 : 0;
}

static const struct pinlet_method *lookup_method(struct pinlet_proxy *p, grpc_slice path)
{
        size_t lo = 0, hi = p->opts.n_methods;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int r = slice_cmp_str(path, p->sorted[mid]->path);

                if (r == 0)
                        return p->sorted[mid];
                if (r < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}

static struct backend *route(struct pinlet_proxy *p, grpc_slice path)
{
        if (!p->image.channel || !p->image_prefixes)
                return &p->runtime;
        for (char **pre = p->image_prefixes; *pre; pre++) {
                size_t n = strlen(*pre);

                if (GRPC_SLICE_LENGTH(path) >= n &&
                    memcmp(GRPC_SLICE_START_PTR(path), *pre, n) == 0)
                        return &p->image;
        }
        return &p->runtime;
}

static void set_details(struct pcall *c, const char *msg)
{
        grpc_slice_unref(c->status_details);
        c->status_details = grpc_slice_from_copied_string(msg);
}

/* A failure that never reached the backend (no initial and no trailing metadata came back)
 * says which endpoint was unreachable; a status the backend itself sent passes unchanged. */
static void annotate_local_failure(struct pcall *c)
{
        _cleanup_free_ char *msg = NULL;

        if (c->status != GRPC_STATUS_UNAVAILABLE || c->resp_md.count > 0 ||
            c->trailing_md.count > 0)
                return;
        /* A trailers-only UNAVAILABLE from a backend we are connected to is the backend's
         * own answer (containerd sends those): pass it unchanged. Only a channel that is
         * not (or no longer) connected makes it pinlet's "backend unavailable". */
        if (grpc_channel_check_connectivity_state(c->backend_ep->channel, 0) == GRPC_CHANNEL_READY)
                return;
        if (asprintf(&msg, "pinlet: backend %s unavailable: %.*s", c->backend_ep->endpoint,
                     (int)GRPC_SLICE_LENGTH(c->status_details),
                     (const char *)GRPC_SLICE_START_PTR(c->status_details)) < 0)
                return;
        set_details(c, msg);
}

static bool create_backend_call(struct pcall *c)
{
        /* No parent call: with one, gRPC core cancels the finished child on every call
         * (measured 18% of pinlet's instructions, docs/PERFORMANCE.md). The deadline is
         * copied instead, and a client cancel reaches the backend through on_close(); a
         * cancel that came while an interceptor ran is applied here. host NULL: the
         * channel's default authority, whatever the client sent. */
        c->backend = grpc_channel_create_call(c->backend_ep->channel, NULL, GRPC_PROPAGATE_DEFAULTS,
                                              c->p->cq, c->details.method, NULL,
                                              c->details.deadline, NULL);
        if (c->backend && c->closed && c->server_cancelled)
                grpc_call_cancel(c->backend, NULL);
        return c->backend != NULL;
}

/* The op that passes the backend's status, message and trailers on to the client. */
static void backend_status_op(struct pcall *c, grpc_op *op)
{
        op->op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        op->data.send_status_from_server.trailing_metadata_count = c->trailing_md.count;
        op->data.send_status_from_server.trailing_metadata = c->trailing_md.metadata;
        op->data.send_status_from_server.status = c->status;
        op->data.send_status_from_server.status_details = &c->status_details;
}

/* Ends the server call with a status of our own (interceptor failure, no backend call). */
static void send_local_status(struct pcall *c, grpc_status_code code, const char *msg)
{
        grpc_op ops[2] = {};
        size_t n = 0;

        if (c->status_sent)
                return;
        c->status_sent = true;
        report_call(c, code);
        /* Neither c->status nor c->status_details: a backend RECV_STATUS_ON_CLIENT may still
         * be in flight and gRPC writes those when it completes. */
        grpc_slice_unref(c->local_details);
        c->local_details = grpc_slice_from_copied_string(msg);
        if (!c->server_md_sent) {
                c->server_md_sent = true;
                ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        }
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = code;
        ops[n].data.send_status_from_server.status_details = &c->local_details;
        n++;
        start(c, c->server, ops, n, &c->t_status_sent);
}

/* ---------------------------------------------------------------------------------------- */
/* unary: one batch per direction */

static void on_status_sent(struct pcall *c, bool ok)
{
        unref(c);
}

static void enqueue_job(struct pcall *c);
static void call_responder(struct pcall *c, bool may_block);

/* Sends the backend's answer (c->b2c, possibly replaced by the responder) to the client. */
static void send_unary_answer(struct pcall *c)
{
        grpc_op ops[3] = {};
        size_t n = 0;

        if (c->status_sent) /* ended by the shutdown meanwhile */
                return;
        annotate_local_failure(c);
        c->status_sent = true;
        report_call(c, c->status);
        c->server_md_sent = true;
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = c->resp_md.count;
        ops[n].data.send_initial_metadata.metadata = c->resp_md.metadata;
        n++;
        if (c->b2c) {
                ops[n].op = GRPC_OP_SEND_MESSAGE;
                ops[n].data.send_message.send_message = c->b2c;
                n++;
        }
        backend_status_op(c, &ops[n++]);
        start(c, c->server, ops, n, &c->t_status_sent);
        run_after(&c->ires);
}

/* Carries out the responder's decision (CQ thread): the original answer, or a new
 * message in its place. */
static void apply_respond_result(struct pcall *c)
{
        struct pinlet_intercept_result *r = &c->ires;

        if (r->action == PINLET_FORWARD_REWRITTEN) {
                grpc_slice s;

                if (c->b2c)
                        grpc_byte_buffer_destroy(c->b2c);
                if (r->len > 0) {
                        s = grpc_slice_new(r->data, r->len, free);
                } else {
                        free(r->data);
                        s = grpc_empty_slice();
                }
                r->data = NULL;
                c->b2c = grpc_raw_byte_buffer_create(&s, 1);
                grpc_slice_unref(s);
        } else if (r->action != PINLET_FORWARD_ORIGINAL) {
                log_error("proxy: responder of %s answered %d: the original answer is sent",
                          c->method->path, (int)r->action);
        }
}

static void on_unary_resp(struct pcall *c, bool ok)
{
        /* Without a responder nobody needs the request any more: free it early. */
        if (c->c2b && !c->method->respond) {
                grpc_byte_buffer_destroy(c->c2b);
                c->c2b = NULL;
        }
        if (c->status_sent) { /* ended by the shutdown meanwhile */
                unref(c);
                return;
        }
        if (!ok) /* only on a refused batch: status fields are unset */
                c->status = GRPC_STATUS_INTERNAL;
        if (ok && c->method->respond) {
                call_responder(c, false);
                if (c->ires.action == PINLET_DEFER) {
                        atomic_fetch_add_explicit(&c->p->n_respond_deferred, 1,
                                                  memory_order_relaxed);
                        /* No queue limit: the request's queue named a registry, a
                         * responder asks none. */
                        free(c->queue);
                        c->queue = NULL;
                        c->responding = true;
                        enqueue_job(c);
                        unref(c);
                        return;
                }
                atomic_fetch_add_explicit(&c->p->n_responded, 1, memory_order_relaxed);
                apply_respond_result(c);
        }
        send_unary_answer(c);
        unref(c);
}

static void forward_unary(struct pcall *c)
{
        grpc_op ops[6] = {};
        size_t n = 0;

        if ((c->closed && c->server_cancelled) || c->status_sent)
                return; /* the client is gone, or the shutdown ended the call */
        if (!create_backend_call(c)) {
                send_local_status(c, GRPC_STATUS_INTERNAL, "pinlet: cannot create backend call");
                return;
        }
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = c->req_md.count;
        ops[n].data.send_initial_metadata.metadata = c->req_md.metadata;
        n++;
        if (c->c2b) {
                ops[n].op = GRPC_OP_SEND_MESSAGE;
                ops[n].data.send_message.send_message = c->c2b;
                n++;
        }
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n].data.recv_initial_metadata.recv_initial_metadata = &c->resp_md;
        n++;
        ops[n].op = GRPC_OP_RECV_MESSAGE;
        ops[n].data.recv_message.recv_message = &c->b2c;
        n++;
        ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[n].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
        ops[n].data.recv_status_on_client.status = &c->status;
        ops[n].data.recv_status_on_client.status_details = &c->status_details;
        n++;
        start(c, c->backend, ops, n, &c->t_unary_resp);
}

static void enqueue_job(struct pcall *c)
{
        struct pinlet_proxy *p = c->p;

        ref(c); /* dropped by on_intercepted */
        pthread_mutex_lock(&p->lock);
        c->job_next = NULL;
        *p->jobs_tail = c;
        p->jobs_tail = &c->job_next;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

/* A byte buffer as one contiguous slice (a reference when gRPC holds it in one piece). */
static grpc_slice buffer_slice(grpc_byte_buffer *bb)
{
        grpc_byte_buffer_reader reader;
        grpc_slice flat = grpc_empty_slice();

        if (bb && grpc_byte_buffer_reader_init(&reader, bb)) {
                flat = grpc_byte_buffer_reader_readall(&reader);
                grpc_byte_buffer_reader_destroy(&reader);
        }
        return flat;
}

static void call_responder(struct pcall *c, bool may_block)
{
        struct pinlet_call_info info = {
                .method = c->method->path,
                .deadline_ms = c->deadline_ms,
                .may_block = may_block,
                .state = c->istate, /* what the request phase (or the first call) left */
        };
        grpc_slice req = buffer_slice(c->req_orig ? c->req_orig : c->c2b);
        grpc_slice resp = buffer_slice(c->b2c);

        result_clear(&c->ires);
        c->method->respond(c->p->opts.userdata, &info, GRPC_SLICE_START_PTR(req),
                           GRPC_SLICE_LENGTH(req), (int)c->status,
                           c->b2c ? GRPC_SLICE_START_PTR(resp) : NULL, GRPC_SLICE_LENGTH(resp),
                           &c->ires);
        grpc_slice_unref(req);
        grpc_slice_unref(resp);
        if (c->ires.state) {
                /* kept for the second call when the call has none yet, else released */
                if (!c->istate && c->ires.action == PINLET_DEFER && !may_block)
                        c->istate = TAKE_PTR(c->ires.state);
                else if (c->p->opts.state_free)
                        c->p->opts.state_free(TAKE_PTR(c->ires.state));
                c->ires.state = NULL;
        }
        if (may_block && c->ires.action == PINLET_DEFER) {
                log_error("proxy: responder of %s deferred on a worker", c->method->path);
                c->ires.action = PINLET_FORWARD_ORIGINAL;
        }
}

static void call_interceptor(struct pcall *c, bool may_block)
{
        struct pinlet_call_info info = {
                .method = c->method->path,
                .deadline_ms = c->deadline_ms,
                .may_block = may_block,
                .state = may_block ? c->istate : NULL,
        };
        grpc_slice flat = buffer_slice(c->c2b);

        result_clear(&c->ires);
        c->method->intercept(c->p->opts.userdata, &info, GRPC_SLICE_START_PTR(flat),
                             GRPC_SLICE_LENGTH(flat), &c->ires);
        grpc_slice_unref(flat);
        if (may_block && c->ires.action == PINLET_DEFER) {
                /* a contract violation: never loop */
                log_error("proxy: interceptor of %s deferred on a worker", c->method->path);
                c->ires.action = PINLET_FAIL;
                c->ires.status = GRPC_STATUS_INTERNAL;
        }
}

static void apply_intercept_result(struct pcall *c);

static void on_unary_req(struct pcall *c, bool ok)
{
        if (ok && !(c->closed && c->server_cancelled)) {
                if (!c->method->intercept) {
                        forward_unary(c);
                } else {
                        call_interceptor(c, false);
                        if (c->ires.action == PINLET_DEFER) {
                                atomic_fetch_add_explicit(&c->p->n_deferred, 1,
                                                          memory_order_relaxed);
                                c->queue = TAKE_PTR(c->ires.queue);
                                c->istate = TAKE_PTR(c->ires.state);
                                enqueue_job(c);
                        } else {
                                atomic_fetch_add_explicit(&c->p->n_intercepted, 1,
                                                          memory_order_relaxed);
                                apply_intercept_result(c);
                        }
                }
        }
        unref(c);
}

/* Runs on the CQ thread after the worker's zero-op batch completed. */
static void on_intercepted(struct pcall *c, bool ok)
{
        if (c->responding) {
                apply_respond_result(c);
                send_unary_answer(c);
        } else {
                apply_intercept_result(c);
        }
        unref(c);
}

/* Carries out the interceptor's decision (CQ thread). */
static void apply_intercept_result(struct pcall *c)
{
        struct pinlet_intercept_result *r = &c->ires;

        switch (r->action) {
        case PINLET_FORWARD_ORIGINAL:
                forward_unary(c);
                break;
        case PINLET_FORWARD_REWRITTEN: {
                grpc_slice s;

                if (c->c2b && c->method->respond && !c->req_orig)
                        c->req_orig = c->c2b; /* the responder gets the client's request */
                else if (c->c2b)
                        grpc_byte_buffer_destroy(c->c2b);
                if (r->len > 0) {
                        s = grpc_slice_new(r->data, r->len, free);
                } else {
                        free(r->data);
                        s = grpc_empty_slice();
                }
                r->data = NULL;
                c->c2b = grpc_raw_byte_buffer_create(&s, 1);
                grpc_slice_unref(s);
                forward_unary(c);
                break;
        }
        case PINLET_FAIL:
        default: {
                grpc_status_code code = (grpc_status_code)r->status;

                if (code <= GRPC_STATUS_OK || code > GRPC_STATUS_UNAUTHENTICATED)
                        code = GRPC_STATUS_INTERNAL;
                send_local_status(c, code, r->message ? r->message : "pinlet: request refused");
                break;
        }
        }
        run_after(r);
}

/* ---------------------------------------------------------------------------------------- */
/* streaming: the generic bidirectional pump */

static void maybe_send_status(struct pcall *c)
{
        grpc_op ops[2] = {};
        size_t n = 0;

        if (!c->status_received || !c->b2c_done || c->status_sent)
                return;
        c->status_sent = true;
        report_call(c, c->status);
        annotate_local_failure(c);
        if (!c->server_md_sent) {
                c->server_md_sent = true;
                ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
                ops[n].data.send_initial_metadata.count = c->resp_md.count;
                ops[n].data.send_initial_metadata.metadata = c->resp_md.metadata;
                n++;
        }
        backend_status_op(c, &ops[n++]);
        start(c, c->server, ops, n, &c->t_status_sent);
}

static void b2c_recv(struct pcall *c)
{
        grpc_op op = { .op = GRPC_OP_RECV_MESSAGE };

        op.data.recv_message.recv_message = &c->b2c;
        start(c, c->backend, &op, 1, &c->t_b2c_recv);
}

static void c2b_recv(struct pcall *c)
{
        grpc_op op = { .op = GRPC_OP_RECV_MESSAGE };

        op.data.recv_message.recv_message = &c->c2b;
        start(c, c->server, &op, 1, &c->t_c2b_recv);
}

static void on_backend_md(struct pcall *c, bool ok)
{
        if (ok) {
                grpc_op op = { .op = GRPC_OP_SEND_INITIAL_METADATA };

                op.data.send_initial_metadata.count = c->resp_md.count;
                op.data.send_initial_metadata.metadata = c->resp_md.metadata;
                c->server_md_sent = true;
                start(c, c->server, &op, 1, &c->t_server_md_sent);
                /* gRPC orders sends on a call: the messages follow the metadata. */
                b2c_recv(c);
        } else {
                c->b2c_done = true;
                maybe_send_status(c);
        }
        unref(c);
}

static void on_b2c_recv(struct pcall *c, bool ok)
{
        if (ok && c->b2c) {
                grpc_op op = { .op = GRPC_OP_SEND_MESSAGE };

                op.data.send_message.send_message = c->b2c;
                start(c, c->server, &op, 1, &c->t_b2c_sent);
        } else {
                c->b2c_done = true;
                maybe_send_status(c);
        }
        unref(c);
}

static void on_b2c_sent(struct pcall *c, bool ok)
{
        grpc_byte_buffer_destroy(c->b2c);
        c->b2c = NULL;
        if (ok) {
                b2c_recv(c);
        } else {
                /* The client is gone: stop the backend too. */
                grpc_call_cancel(c->backend, NULL);
                c->b2c_done = true;
                maybe_send_status(c);
        }
        unref(c);
}

static void on_c2b_recv(struct pcall *c, bool ok)
{
        if (ok && c->c2b) {
                grpc_op op = { .op = GRPC_OP_SEND_MESSAGE };

                op.data.send_message.send_message = c->c2b;
                start(c, c->backend, &op, 1, &c->t_c2b_sent);
        } else if (ok) {
                /* The client half-closed. */
                grpc_op op = { .op = GRPC_OP_SEND_CLOSE_FROM_CLIENT };

                start(c, c->backend, &op, 1, &c->t_c2b_close);
        }
        unref(c);
}

static void on_c2b_sent(struct pcall *c, bool ok)
{
        grpc_byte_buffer_destroy(c->c2b);
        c->c2b = NULL;
        if (ok)
                c2b_recv(c);
        unref(c);
}

static void on_unref_only(struct pcall *c, bool ok)
{
        unref(c);
}

static void on_backend_status(struct pcall *c, bool ok)
{
        if (!ok)
                c->status = GRPC_STATUS_INTERNAL;
        c->status_received = true;
        maybe_send_status(c);
        unref(c);
}

static void start_stream(struct pcall *c)
{
        grpc_op op;

        if (!create_backend_call(c)) {
                send_local_status(c, GRPC_STATUS_INTERNAL, "pinlet: cannot create backend call");
                return;
        }
        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_SEND_INITIAL_METADATA;
        op.data.send_initial_metadata.count = c->req_md.count;
        op.data.send_initial_metadata.metadata = c->req_md.metadata;
        start(c, c->backend, &op, 1, &c->t_backend_md_sent);

        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_RECV_INITIAL_METADATA;
        op.data.recv_initial_metadata.recv_initial_metadata = &c->resp_md;
        start(c, c->backend, &op, 1, &c->t_backend_md);

        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        op.data.recv_status_on_client.trailing_metadata = &c->trailing_md;
        op.data.recv_status_on_client.status = &c->status;
        op.data.recv_status_on_client.status_details = &c->status_details;
        start(c, c->backend, &op, 1, &c->t_backend_status);

        c2b_recv(c);
}

/* ---------------------------------------------------------------------------------------- */
/* accepting calls */

static void on_close(struct pcall *c, bool ok)
{
        c->closed = true;
        if (c->server_cancelled && c->backend)
                grpc_call_cancel(c->backend, NULL);
        unref(c);
}

static void request_next(struct pinlet_proxy *p);

#define ACCEPT_BACKOFF_MIN_MS 10
#define ACCEPT_BACKOFF_MAX_MS 1000

/* No request is pending and none could be started: the CQ loop retries at
 * accept_retry_ms (see next_deadline). */
static void schedule_accept_retry(struct pinlet_proxy *p)
{
        p->accept_backoff_ms =
                p->accept_backoff_ms ? p->accept_backoff_ms * 2 : ACCEPT_BACKOFF_MIN_MS;
        if (p->accept_backoff_ms > ACCEPT_BACKOFF_MAX_MS)
                p->accept_backoff_ms = ACCEPT_BACKOFF_MAX_MS;
        p->accept_retry_ms = pinlet_now_ms() + p->accept_backoff_ms;
        atomic_fetch_add_explicit(&p->n_accept_retries, 1, memory_order_relaxed);
}

/* A test hook standing for calloc or grpc_server_request_call failing. */
static bool injected_accept_failure(struct pinlet_proxy *p)
{
        unsigned n = atomic_load(&p->inject_accept_failures);

        while (n > 0)
                if (atomic_compare_exchange_weak(&p->inject_accept_failures, &n, n - 1))
                        return true;
        return false;
}

static void on_request(struct pcall *c, bool ok)
{
        struct pinlet_proxy *p = c->p;
        grpc_op op = { .op = GRPC_OP_RECV_CLOSE_ON_SERVER };

        p->pending = NULL;
        if (!ok) {
                /* The server is shutting down: the pending request was failed. Otherwise
                 * gRPC failed it for a reason of its own: accept again, with backoff. */
                unref(c);
                if (!p->draining)
                        schedule_accept_retry(p);
                return;
        }
        p->accept_backoff_ms = 0;
        atomic_fetch_add_explicit(&p->n_calls, 1, memory_order_relaxed);
        c->start_ns = now_ns();
        c->accepted = true;
        c->next = p->live;
        if (p->live)
                p->live->prev = c;
        p->live = c;
        request_next(p);

        c->method = lookup_method(p, c->details.method);
        c->backend_ep = route(p, c->details.method);
        c->deadline_ms = deadline_to_ms(c->details.deadline);
        log_debug("proxy: call %.*s (%s)", (int)GRPC_SLICE_LENGTH(c->details.method),
                  (const char *)GRPC_SLICE_START_PTR(c->details.method),
                  c->method && c->method->unary ? "unary" : "stream");

        op.data.recv_close_on_server.cancelled = &c->server_cancelled;
        start(c, c->server, &op, 1, &c->t_close);

        if (c->method && c->method->unary) {
                grpc_op rm = { .op = GRPC_OP_RECV_MESSAGE };

                rm.data.recv_message.recv_message = &c->c2b;
                start(c, c->server, &rm, 1, &c->t_unary_req);
        } else {
                start_stream(c);
        }
        if (p->draining && !(c->method && c->method->unary))
                grpc_call_cancel_with_status(c->server, GRPC_STATUS_UNAVAILABLE,
                                             "pinlet: shutting down", NULL);
        unref(c);
}

#define LINGER_MS 200

#define TAG(c, name, f) ((c)->name = (struct tag){ .fn = (f), .c = (c) })

static void request_next(struct pinlet_proxy *p)
{
        struct pcall *c;
        grpc_call_error e;

        if (p->draining || p->pending)
                return;
        c = injected_accept_failure(p) ? NULL : calloc(1, sizeof(*c));
        if (!c) {
                log_error("proxy: out of memory accepting a call: retrying in %lld ms",
                          (long long)(p->accept_backoff_ms ? p->accept_backoff_ms * 2
                                                           : ACCEPT_BACKOFF_MIN_MS));
                schedule_accept_retry(p);
                return;
        }
        c->p = p;
        c->refs = 1;
        c->status_details = grpc_empty_slice();
        c->local_details = grpc_empty_slice();
        grpc_call_details_init(&c->details);
        grpc_metadata_array_init(&c->req_md);
        grpc_metadata_array_init(&c->resp_md);
        grpc_metadata_array_init(&c->trailing_md);
        TAG(c, t_request, on_request);
        TAG(c, t_close, on_close);
        TAG(c, t_unary_req, on_unary_req);
        TAG(c, t_intercepted, on_intercepted);
        TAG(c, t_unary_resp, on_unary_resp);
        TAG(c, t_status_sent, on_status_sent);
        TAG(c, t_backend_md_sent, on_unref_only);
        TAG(c, t_backend_md, on_backend_md);
        TAG(c, t_backend_status, on_backend_status);
        TAG(c, t_server_md_sent, on_unref_only);
        TAG(c, t_c2b_recv, on_c2b_recv);
        TAG(c, t_c2b_sent, on_c2b_sent);
        TAG(c, t_c2b_close, on_unref_only);
        TAG(c, t_b2c_recv, on_b2c_recv);
        TAG(c, t_b2c_sent, on_b2c_sent);
        e = grpc_server_request_call(p->server, &c->server, &c->details, &c->req_md, p->cq, p->cq,
                                     &c->t_request);
        if (e != GRPC_CALL_OK) {
                log_error("proxy: grpc_server_request_call failed (%d): retrying", (int)e);
                pcall_free(c);
                schedule_accept_retry(p);
                return;
        }
        p->pending = c;
        p->accept_retry_ms = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* interceptor workers */

static struct running *running_find(struct pinlet_proxy *p, const char *name)
{
        for (unsigned i = 0; i < p->n_threads; i++)
                if (p->running[i].name && strcmp(p->running[i].name, name) == 0)
                        return &p->running[i];
        return NULL;
}

/* Takes the first job whose queue is below its limit off the list and counts it as
 * running; NULL when every queued job waits for its queue. Under p->lock. The list is
 * short in practice; with many jobs waiting for one saturated queue a pick scans them,
 * which costs microseconds next to the registry round trip each job makes. */
static struct pcall *pick_job(struct pinlet_proxy *p)
{
        for (struct pcall **pp = &p->jobs; *pp; pp = &(*pp)->job_next) {
                struct pcall *c = *pp;
                struct running *q = NULL;

                if (c->queue) {
                        q = running_find(p, c->queue);
                        if (q && q->n >= p->queue_limit)
                                continue;
                        if (!q) {
                                char *name = strdup(c->queue);

                                for (unsigned i = 0; !q && i < p->n_threads; i++)
                                        if (!p->running[i].name)
                                                q = &p->running[i];
                                if (!name || !q) { /* cannot count it: run it unlimited */
                                        free(name);
                                        q = NULL;
                                } else {
                                        q->name = name;
                                }
                        }
                        if (q)
                                q->n++;
                }
                *pp = c->job_next;
                if (!*pp)
                        p->jobs_tail = pp;
                c->job_next = NULL;
                return c;
        }
        return NULL;
}

/* A job of queue name ended (under p->lock): jobs waiting for it may run now. */
static void job_done(struct pinlet_proxy *p, const char *name)
{
        struct running *q = name ? running_find(p, name) : NULL;

        if (!q)
                return;
        if (--q->n == 0) {
                free(q->name);
                q->name = NULL;
        }
        if (p->jobs)
                pthread_cond_broadcast(&p->cond);
}

static void *worker_main(void *arg)
{
        struct pinlet_proxy *p = arg;

        for (;;) {
                struct pcall *c;
                grpc_call_error e;

                pthread_mutex_lock(&p->lock);
                while (!p->workers_stop && !(c = pick_job(p)))
                        pthread_cond_wait(&p->cond, &p->lock);
                if (p->workers_stop) {
                        pthread_mutex_unlock(&p->lock);
                        return NULL;
                }
                pthread_mutex_unlock(&p->lock);

                /* The CQ thread does not touch c2b, b2c, ires or queue while the job is out.
                 * FORWARD_ORIGINAL on an abandoned call forwards nothing: on_intercepted
                 * finds its status already sent. */
                if (atomic_load(&c->abandoned))
                        c->ires.action = PINLET_FORWARD_ORIGINAL;
                else if (c->responding)
                        call_responder(c, true);
                else
                        call_interceptor(c, true);

                pthread_mutex_lock(&p->lock);
                job_done(p, c->queue);
                pthread_mutex_unlock(&p->lock);

                /* A batch with no ops completes at once: it wakes the CQ thread, which then
                 * continues the call in on_intercepted. */
                e = grpc_call_start_batch(c->server, NULL, 0, &c->t_intercepted, NULL);
                if (e != GRPC_CALL_OK)
                        log_error("proxy: cannot wake the completion queue (%d)", (int)e);
        }
}

static void stop_workers(struct pinlet_proxy *p)
{
        pthread_mutex_lock(&p->lock);
        p->workers_stop = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        p->n_threads = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* setup */

static int cmp_method(const void *a, const void *b)
{
        const struct pinlet_method *const *x = a, *const *y = b;

        return strcmp((*x)->path, (*y)->path);
}

/* Channel and server arguments. Measured on this kind of machine: the minimal stack and
 * no retries / channelz / BDP probing saved ~12% CPU per call.
 *
 * GRPC_ARG_MINIMAL_STACK is set on the backend channels only. In gRPC core 1.51 it drops
 * the message-size filter and the deadline filter from whichever stack it is set on.
 * Tested (test/integration/proxy_smoke): on the server as well, a 16 MiB + 1 KiB request
 * went through despite GRPC_ARG_MAX_*_MESSAGE_LENGTH. On the backend channels alone
 * nothing is lost: the server stack still enforces the limits both ways (receive from the
 * client, send to the client) and the call deadline (expiry cancels the server call, and
 * on_close() then cancels the backend call: there is no parent link), and the deadline,
 * copied into the backend call, is still sent to the backend as grpc-timeout. Retries,
 * channelz and BDP probing are off everywhere: they change neither deadlines nor limits. */
#define MAX_ARGS 10
static size_t fill_args(grpc_arg *a, size_t max_msg, bool client)
{
        size_t n = 0;
        int msg = max_msg > INT_MAX ? INT_MAX : (int)max_msg;

#define INT_ARG(k, v) \
        a[n++] = (grpc_arg){ .type = GRPC_ARG_INTEGER, .key = (char *)(k), .value.integer = (v) }
        INT_ARG(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, msg);
        INT_ARG(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, msg);
        INT_ARG(GRPC_ARG_ENABLE_CHANNELZ, 0);
        INT_ARG(GRPC_ARG_HTTP2_BDP_PROBE, 0);
        if (client) {
                INT_ARG(GRPC_ARG_MINIMAL_STACK, 1);
                INT_ARG(GRPC_ARG_ENABLE_RETRIES, 0);
                /* Unix sockets: a restarted runtime is back within a second. */
                INT_ARG(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
                INT_ARG(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
                INT_ARG(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
        }
#undef INT_ARG
        return n;
}

static int open_backend(struct backend *b, const char *endpoint, size_t max_msg,
                        struct pinlet_error **err)
{
        _cleanup_free_ char *target = NULL;
        grpc_arg a[MAX_ARGS];
        grpc_channel_args args = { .args = a };
        grpc_channel_credentials *creds;
        int r;

        b->endpoint = strdup(endpoint);
        if (!b->endpoint)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        r = pinlet_proxy_endpoint_target(endpoint, &target);
        if (r < 0)
                return pinlet_error_set(err, r, "invalid backend endpoint '%s'", endpoint);
        args.num_args = fill_args(a, max_msg, true);
        creds = grpc_insecure_credentials_create();
        b->channel = grpc_channel_create(target, creds, &args);
        grpc_channel_credentials_release(creds);
        if (!b->channel)
                return pinlet_error_set(err, -EINVAL, "cannot create a channel to %s", endpoint);
        /* Connect now rather than on the first call. */
        grpc_channel_check_connectivity_state(b->channel, 1);
        return 0;
}

static int listen_socket(struct pinlet_proxy *p, struct pinlet_error **err)
{
        const struct pinlet_proxy_options *o = &p->opts;
        _cleanup_free_ char *addr = NULL;
        grpc_server_credentials *creds;
        struct stat st;
        mode_t old;
        int port, r;

        r = pinlet_proxy_prepare_socket_path(p->listen_path, err);
        if (r < 0)
                return r;
        if (asprintf(&addr, "unix:%s", p->listen_path) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        /* gRPC binds inside add_http2_port. Create the socket owner-only (0600) and widen it
         * only after the owner is set, so it is never more open than configured. umask is
         * process-wide: this runs at start, before any call is served. */
        creds = grpc_insecure_server_credentials_create();
        old = umask(0177);
        port = grpc_server_add_http2_port(p->server, addr, creds);
        umask(old);
        grpc_server_credentials_release(creds);
        if (port <= 0)
                return pinlet_error_set(err, -EADDRNOTAVAIL, "cannot listen on %s", p->listen_path);
        if (lstat(p->listen_path, &st) < 0 || !S_ISSOCK(st.st_mode))
                return pinlet_error_set(err, -EIO, "socket %s missing after bind", p->listen_path);
        p->sock_created = true;
        p->sock_dev = st.st_dev;
        p->sock_ino = st.st_ino;
        if ((o->socket_uid != (uid_t)-1 || o->socket_gid != (gid_t)-1) &&
            lchown(p->listen_path, o->socket_uid, o->socket_gid) < 0)
                return pinlet_error_set(err, -errno, "cannot chown %s to %d:%d: %s", p->listen_path,
                                        (int)o->socket_uid, (int)o->socket_gid, strerror(errno));
        if (chmod(p->listen_path, o->socket_mode & 07777) < 0)
                return pinlet_error_set(err, -errno, "cannot chmod %s to %04o: %s", p->listen_path,
                                        (unsigned)o->socket_mode, strerror(errno));
        return 0;
}

int pinlet_proxy_new(const struct pinlet_proxy_options *opts, struct pinlet_proxy **ret,
                     struct pinlet_error **err)
{
        struct pinlet_proxy *p;
        grpc_arg a[MAX_ARGS];
        grpc_channel_args args = { .args = a };
        size_t n_prefixes = 0;
        int r;

        if (!opts->listen_path || !opts->runtime_endpoint)
                return pinlet_error_set(err, -EINVAL, "listen path and runtime endpoint needed");
        p = calloc(1, sizeof(*p));
        if (!p)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        p->opts = *opts;
        if (p->opts.max_message_size == 0) {
                free(p);
                return pinlet_error_set(err, -EINVAL, "max_message_size must be set");
        }
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        p->jobs_tail = &p->jobs;
        grpc_init();
        p->grpc_inited = true;

        p->listen_path = strdup(opts->listen_path);
        if (opts->image_prefixes)
                while (opts->image_prefixes[n_prefixes])
                        n_prefixes++;
        p->image_prefixes = calloc(n_prefixes + 1, sizeof(char *));
        p->sorted = calloc(opts->n_methods + 1, sizeof(*p->sorted));
        if (!p->listen_path || !p->image_prefixes || !p->sorted) {
                r = pinlet_error_set(err, -ENOMEM, "out of memory");
                goto fail;
        }
        for (size_t i = 0; i < n_prefixes; i++)
                if (!(p->image_prefixes[i] = strdup(opts->image_prefixes[i]))) {
                        r = pinlet_error_set(err, -ENOMEM, "out of memory");
                        goto fail;
                }
        for (size_t i = 0; i < opts->n_methods; i++)
                p->sorted[i] = &opts->methods[i];
        qsort(p->sorted, opts->n_methods, sizeof(*p->sorted), cmp_method);

        r = open_backend(&p->runtime, opts->runtime_endpoint, p->opts.max_message_size, err);
        if (r < 0)
                goto fail;
        if (opts->image_endpoint && opts->image_endpoint[0] &&
            strcmp(opts->image_endpoint, opts->runtime_endpoint) != 0) {
                r = open_backend(&p->image, opts->image_endpoint, p->opts.max_message_size, err);
                if (r < 0)
                        goto fail;
        }

        p->cq = grpc_completion_queue_create_for_next(NULL);
        args.num_args = fill_args(a, p->opts.max_message_size, false);
        p->server = grpc_server_create(&args, NULL);
        grpc_server_register_completion_queue(p->server, p->cq, NULL);
        r = listen_socket(p, err);
        if (r < 0)
                goto fail;
        grpc_server_start(p->server);
        p->server_started = true;

        p->threads = calloc(opts->workers ? opts->workers : 1, sizeof(pthread_t));
        p->running = calloc(opts->workers ? opts->workers : 1, sizeof(*p->running));
        p->queue_limit =
                opts->queue_limit ? opts->queue_limit : (opts->workers ? opts->workers : 1);
        if (!p->threads || !p->running) {
                r = pinlet_error_set(err, -ENOMEM, "out of memory");
                goto fail;
        }
        for (unsigned i = 0; i < (opts->workers ? opts->workers : 1); i++) {
                r = -pthread_create(&p->threads[i], NULL, worker_main, p);
                if (r < 0) {
                        pinlet_error_set(err, r, "cannot start worker threads: %s", strerror(-r));
                        goto fail;
                }
                p->n_threads++;
        }
        *ret = p;
        return 0;
fail:
        pinlet_proxy_free(p);
        return r;
}

/* ---------------------------------------------------------------------------------------- */
/* running and stopping */

static void on_server_shutdown(struct pcall *c, bool ok)
{
        /* c is NULL: this tag belongs to the proxy (see pinlet_proxy_shutdown). */
}

/* On the CQ thread, once pinlet_proxy_shutdown() was called: streams are cancelled at once
 * (a watch or a log follow would otherwise keep us forever); unary calls get the grace. */
static void begin_drain(struct pinlet_proxy *p)
{
        p->draining = true;
        p->grace_deadline = gpr_time_add(
                gpr_now(GPR_CLOCK_MONOTONIC),
                gpr_time_from_millis((int64_t)p->opts.shutdown_grace_ms, GPR_TIMESPAN));
        for (struct pcall *c = p->live; c; c = c->next) {
                if (c->method && c->method->unary)
                        continue;
                c->shutdown_cancel = true;
                grpc_call_cancel_with_status(c->server, GRPC_STATUS_UNAVAILABLE,
                                             "pinlet: shutting down", NULL);
                if (c->backend)
                        grpc_call_cancel(c->backend, NULL);
        }
}

/* The grace is over: end whatever is left. A unary call still waiting for the backend (or
 * an interceptor) gets a real status batch rather than a cancellation: when the last stream
 * of a connection that was sent GOAWAY ends, gRPC may close it before a cancellation's
 * trailers are written, and the client would see "Socket closed" instead of our message. */
static void cancel_everything(struct pinlet_proxy *p)
{
        p->grace_over = true;
        for (struct pcall *c = p->live; c; c = c->next) {
                if (c->shutdown_cancel)
                        continue;
                c->shutdown_cancel = true;
                atomic_store(&c->abandoned, true);
                if (c->backend)
                        grpc_call_cancel(c->backend, NULL);
                if (!c->status_sent)
                        send_local_status(c, GRPC_STATUS_UNAVAILABLE, "pinlet: shutting down");
                else
                        grpc_call_cancel_with_status(c->server, GRPC_STATUS_UNAVAILABLE,
                                                     "pinlet: shutting down", NULL);
        }
}

/* How long the CQ thread waits for the next event: forever while serving; while draining,
 * until the grace ends, and once every call is done, a short linger so that the statuses
 * just written reach the clients before idle connections are dropped. */
#define WAKE_MAX_MS 500 /* with an on_wake observer: the longest sleep of the loop */

static gpr_timespec state_deadline(struct pinlet_proxy *p)
{
        if (p->draining && p->lingering && !p->cancel_all_sent)
                return p->linger_deadline;
        if (p->draining && !p->grace_over)
                return p->grace_deadline;
        if (!p->draining && !p->pending && p->accept_retry_ms > 0) {
                int64_t left = p->accept_retry_ms - pinlet_now_ms();

                return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                    gpr_time_from_millis(left > 0 ? left : 0, GPR_TIMESPAN));
        }
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
}

static gpr_timespec next_deadline(struct pinlet_proxy *p)
{
        gpr_timespec d = state_deadline(p), wake;

        if (!p->opts.on_wake)
                return d;
        wake = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                            gpr_time_from_millis(WAKE_MAX_MS, GPR_TIMESPAN));
        return gpr_time_cmp(wake, d) < 0 ? wake : d;
}

/* The loop woke without an event: whichever deadline of the state has passed. */
static void on_timeout(struct pinlet_proxy *p)
{
        gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);

        if (!p->draining) {
                if (!p->pending && p->accept_retry_ms > 0 && pinlet_now_ms() >= p->accept_retry_ms)
                        request_next(p);
        } else if (p->lingering && !p->cancel_all_sent) {
                /* Idle client connections (kubelet keeps one open) hold the server's
                 * shutdown: every call is done, drop them now. */
                if (gpr_time_cmp(now, p->linger_deadline) >= 0) {
                        p->cancel_all_sent = true;
                        grpc_server_cancel_all_calls(p->server);
                }
        } else if (!p->grace_over && gpr_time_cmp(now, p->grace_deadline) >= 0) {
                cancel_everything(p);
        }
}

int pinlet_proxy_run(struct pinlet_proxy *p)
{
        bool shutdown_seen;

        p->t_shutdown = (struct tag){ .fn = on_server_shutdown, .c = NULL };
        request_next(p);
        if (p->opts.on_wake)
                p->opts.on_wake(p->opts.userdata); /* alive from the start */
        for (;;) {
                grpc_event ev = grpc_completion_queue_next(p->cq, next_deadline(p), NULL);

                if (p->opts.on_wake)
                        p->opts.on_wake(p->opts.userdata);

                if (ev.type == GRPC_OP_COMPLETE) {
                        struct tag *t = ev.tag;

                        if (t == &p->t_shutdown)
                                p->server_shut_down = true;
                        else
                                t->fn(t->c, ev.success != 0);
                } else if (ev.type == GRPC_QUEUE_TIMEOUT) {
                        on_timeout(p);
                } else {
                        break; /* GRPC_QUEUE_SHUTDOWN: not reached before we ask */
                }

                pthread_mutex_lock(&p->lock);
                shutdown_seen = p->shutdown_called;
                pthread_mutex_unlock(&p->lock);
                if (shutdown_seen && !p->draining)
                        begin_drain(p);
                if (p->draining && !p->live && !p->pending) {
                        if (p->server_shut_down)
                                break;
                        if (!p->lingering) {
                                p->lingering = true;
                                p->linger_deadline =
                                        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                                     gpr_time_from_millis(LINGER_MS, GPR_TIMESPAN));
                        }
                }
        }
        stop_workers(p);
        return 0;
}

bool pinlet_proxy_backend_ready(struct pinlet_proxy *p, bool image)
{
        struct backend *b = image && p->image.channel ? &p->image : &p->runtime;

        return b->channel &&
               grpc_channel_check_connectivity_state(b->channel, 1) == GRPC_CHANNEL_READY;
}

void pinlet_proxy_set_queue_limit(struct pinlet_proxy *p, unsigned limit)
{
        unsigned workers = p->opts.workers ? p->opts.workers : 1;

        pthread_mutex_lock(&p->lock);
        p->queue_limit = limit ? limit : workers;
        /* a higher limit may let waiting jobs run */
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

void pinlet_proxy_get_stats(struct pinlet_proxy *p, struct pinlet_proxy_stats *ret)
{
        *ret = (struct pinlet_proxy_stats){
                .calls = atomic_load_explicit(&p->n_calls, memory_order_relaxed),
                .intercepted = atomic_load_explicit(&p->n_intercepted, memory_order_relaxed),
                .deferred = atomic_load_explicit(&p->n_deferred, memory_order_relaxed),
                .accept_retries = atomic_load_explicit(&p->n_accept_retries, memory_order_relaxed),
                .responded = atomic_load_explicit(&p->n_responded, memory_order_relaxed),
                .respond_deferred =
                        atomic_load_explicit(&p->n_respond_deferred, memory_order_relaxed),
        };
}

void pinlet_proxy_inject_accept_failures(struct pinlet_proxy *p, unsigned n)
{
        atomic_store(&p->inject_accept_failures, n);
}

void pinlet_proxy_shutdown(struct pinlet_proxy *p)
{
        bool first;

        pthread_mutex_lock(&p->lock);
        first = !p->shutdown_called;
        p->shutdown_called = true;
        pthread_mutex_unlock(&p->lock);
        /* Stops accepting and fails the pending grpc_server_request_call, which wakes the
         * CQ thread; the tag itself arrives when every server call has ended. */
        if (first && p->server_started)
                grpc_server_shutdown_and_notify(p->server, p->cq, &p->t_shutdown);
}

static void drain_cq(grpc_completion_queue *cq)
{
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
                ;
}

void pinlet_proxy_free(struct pinlet_proxy *p)
{
        struct stat st;

        if (!p)
                return;
        stop_workers(p);
        if (p->server) {
                if (p->server_started && !p->server_shut_down) {
                        /* run() never finished the shutdown: do it here, blocking. */
                        bool called;

                        pthread_mutex_lock(&p->lock);
                        called = p->shutdown_called;
                        p->shutdown_called = true;
                        pthread_mutex_unlock(&p->lock);
                        if (!called)
                                grpc_server_shutdown_and_notify(p->server, p->cq, &p->t_shutdown);
                        grpc_server_cancel_all_calls(p->server);
                        for (;;) {
                                grpc_event ev = grpc_completion_queue_next(
                                        p->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
                                if (ev.type != GRPC_OP_COMPLETE)
                                        break;
                                if (ev.tag == &p->t_shutdown)
                                        break;
                                /* a pending request failed by the shutdown */
                                ((struct tag *)ev.tag)->fn(((struct tag *)ev.tag)->c, false);
                        }
                } else if (!p->server_started) {
                        grpc_server_shutdown_and_notify(p->server, p->cq, &p->t_shutdown);
                        grpc_completion_queue_next(p->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC),
                                                   NULL);
                }
                grpc_server_destroy(p->server);
        }
        if (p->runtime.channel)
                grpc_channel_destroy(p->runtime.channel);
        if (p->image.channel)
                grpc_channel_destroy(p->image.channel);
        if (p->cq) {
                drain_cq(p->cq);
                grpc_completion_queue_destroy(p->cq);
        }
        /* Remove the socket we created, and only that one (gRPC may have removed it). */
        if (p->sock_created && lstat(p->listen_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
            st.st_dev == p->sock_dev && st.st_ino == p->sock_ino)
                unlink(p->listen_path);
        free(p->runtime.endpoint);
        free(p->image.endpoint);
        if (p->image_prefixes)
                for (char **s = p->image_prefixes; *s; s++)
                        free(*s);
        free(p->image_prefixes);
        free(p->sorted);
        free(p->threads);
        if (p->running)
                for (unsigned i = 0; i < (p->opts.workers ? p->opts.workers : 1); i++)
                        free(p->running[i].name);
        free(p->running);
        free(p->listen_path);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
        if (p->grpc_inited)
                grpc_shutdown();
        free(p);
}
