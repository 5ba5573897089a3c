/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fake_backend: a fake CRI backend for the proxy tests. A generic gRPC core server on a
 * unix socket that answers ANY method (grpc_server_request_call, nothing registered), so
 * real CRI paths, runtime.v1alpha2 paths and made-up ones are all served alike. What it
 * does for a call is chosen by the call's request metadata, so one fake serves every case:
 *
 *   x-fake-mode: echo (default) | stream | client-stream | bidi-echo | fail | stall
 *   x-fake-size: N        echo: answer N pattern bytes instead of the request;
 *                         stream: each message is N pattern bytes
 *   x-fake-count: N       stream: messages to send (default 3; -1: until cancelled)
 *   x-fake-delay-ms: N    echo/client-stream/fail: wait before answering;
 *                         stream: pause before each message
 *   x-fake-status: N      fail: grpc status code (default 2, UNKNOWN)
 *   x-fake-message: S     fail: status message (x-fake-message-bin: the same, any bytes)
 *   x-fake-initial: 1     fail: send initial metadata before the status (default: a
 *                         trailers-only response, as grpc-go servers send on errors)
 *   x-fake-id: S          copied into the log records so the test can find its call
 *   x-fake-no-echo: 1     send no metadata back at all (a bare trailers-only status, as a
 *                         runtime that sets no metadata of its own answers)
 *
 * Modes:
 *   echo          read every request message until half-close, then answer the first one
 *                 back (or x-fake-size bytes) and OK.
 *   stream        speak first: initial metadata and the messages "stream-message-<i>" (or
 *                 x-fake-size pattern bytes) are sent before any client message is read;
 *                 then OK once the client half-closed.
 *   client-stream read all messages, answer "count=<n> sha256=<hex of all bytes>" and OK.
 *   bidi-echo     initial metadata first, then every message echoed as it arrives; OK at
 *                 half-close.
 *   fail          read all, then end with x-fake-status / x-fake-message.
 *   stall         read all, never answer: the call ends only by deadline or cancellation.
 * Every answer carries the request metadata back, each key prefixed with "echo-", both
 * as initial metadata and as trailing metadata (binary "-bin" keys stay binary).
 *
 * --runtime-name NAME: a RuntimeService/Version call in echo mode (any API version) is
 * answered with a VersionResponse naming NAME as runtime_name (version "0.1.0",
 * runtime_version "fake", runtime_api_version "v1"), so a proxy in front takes the fake
 * for that runtime ("cri-o", "containerd").
 *
 * Log (--log FILE): one JSON object per line, flushed at once:
 *   {"event":"start", "seq", "id", "method", "host", "deadline_ms"} when a call arrives
 *     (deadline_ms: time left until the call's deadline at arrival; null: no deadline);
 *   {"event":"call", ... the above, "mode", "metadata":[[key,value],...] (values of
 *     "-bin" keys base64), "messages", "sizes":[...], "sha256" (of all request bytes),
 *     "first" (the first request message, base64, when at most 4 KiB), "status",
 *     "cancelled"} when the call ended: written just before the status is sent
 *     (so it is in the file before the client sees the status), or when the call was
 *     cancelled (deadline, client cancel, server shutdown) before any status.
 *
 * Caveat: gRPC core completes a pending receive with end-of-stream before it reports a
 * client's cancellation, so a cancel can look like a half-close here: a finite stream or
 * an echo may then still send its OK status (logged "cancelled": false). Tests that
 * assert a cancellation reached the backend use stall or an endless stream (count -1).
 *
 * Ready: the socket exists and --ready FILE (if given) is created after the server started.
 * SIGTERM/SIGINT: cancel all calls, shut down, remove the socket, exit 0.
 * Max message size 20 MiB both ways.
 *
 * Threads: one thread drives the completion queue and owns every call (no locks); a
 * signal thread only calls the thread-safe grpc_server_shutdown_and_notify.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <jansson.h>
#include <openssl/evp.h>

#define MAX_MESSAGE      (20 * 1024 * 1024)
#define FIRST_LOGGED_MAX 4096 /* the first request message is logged up to this size */

enum mode { M_ECHO, M_STREAM, M_CLIENT_STREAM, M_BIDI_ECHO, M_FAIL, M_STALL };
static const char *const mode_names[] = { "echo",      "stream", "client-stream",
                                          "bidi-echo", "fail",   "stall" };

enum tag_kind { T_NEW_CALL, T_SHUTDOWN, T_CLOSE, T_RECV, T_SEND, T_FINAL };

struct call;

/* Completion-queue tag: which call and which of its operations completed. */
struct tag {
        enum tag_kind kind;
        struct call *c;
};

struct call {
        unsigned refs; /* outstanding batches + pending timer + the owner while handling */
        uint64_t seq;
        grpc_call *call;
        grpc_call_details details;
        grpc_metadata_array req_md;
        struct tag t_close, t_recv, t_send, t_final;
        int cancelled; /* RECV_CLOSE_ON_SERVER's out value */
        bool closed;   /* RECV_CLOSE_ON_SERVER completed */
        bool logged;   /* the "call" record was written */
        bool final_sent;
        bool md_sent; /* initial metadata sent */
        bool recv_done;
        bool send_busy;
        bool timer_pending;

        /* the request, as the metadata asked */
        enum mode mode;
        char *id;
        size_t size;
        long long count;
        long delay_ms;
        int status;
        char *message;
        bool with_initial;
        int64_t deadline_ms; /* left at arrival; -1: none */

        /* what arrived */
        size_t n_messages;
        size_t *sizes;
        EVP_MD_CTX *sha;
        grpc_slice first; /* first request message (echo) */
        bool have_first;
        grpc_byte_buffer *recv_bb;

        /* what we send */
        grpc_metadata *echo_md; /* "echo-<key>" for every request key */
        size_t n_echo_md;
        grpc_byte_buffer *send_bb;
        grpc_slice status_details;
        long long next_out;             /* stream: next message index */
        grpc_byte_buffer *pending_echo; /* bidi: message waiting to be echoed */
};

/* A timer, on the completion-queue thread only: gRPC core has no public alarm, so the
 * loop waits with a deadline and fires due timers itself. */
struct timer {
        int64_t due;
        struct call *c;
        struct timer *next;
};

static grpc_server *server;
static grpc_completion_queue *cq;
static FILE *log_file;
static const char *server_name = "fake";
static const char *runtime_name; /* --runtime-name: answer Version as this runtime */
static struct timer *timers;
static struct tag t_new_call = { T_NEW_CALL, NULL };
static struct tag t_shutdown = { T_SHUTDOWN, NULL };
static bool shutting_down;
static uint64_t next_seq;
static unsigned live_calls;

/* the pending grpc_server_request_call */
static grpc_call *new_call;
static grpc_call_details new_details;
static grpc_metadata_array new_md;

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
        fprintf(stderr, "fake_backend: %s\n", what);
        exit(1);
}

static void *xcalloc(size_t n, size_t s)
{
        void *p = calloc(n, s);
        if (!p)
                die("out of memory");
        return p;
}

static bool key_is_bin(grpc_slice key)
{
        size_t n = GRPC_SLICE_LENGTH(key);
        return n >= 4 && memcmp(GRPC_SLICE_START_PTR(key) + n - 4, "-bin", 4) == 0;
}

static char *slice_str(grpc_slice s)
{
        size_t n = GRPC_SLICE_LENGTH(s);
        char *p = xcalloc(1, n + 1);
        memcpy(p, GRPC_SLICE_START_PTR(s), n);
        return p;
}

static bool slice_eq(grpc_slice s, const char *str)
{
        size_t n = strlen(str);
        return GRPC_SLICE_LENGTH(s) == n && memcmp(GRPC_SLICE_START_PTR(s), str, n) == 0;
}

static const grpc_slice *md_get(const grpc_metadata_array *md, const char *key)
{
        for (size_t i = 0; i < md->count; i++)
                if (slice_eq(md->metadata[i].key, key))
                        return &md->metadata[i].value;
        return NULL;
}

static long long md_num(const grpc_metadata_array *md, const char *key, long long dflt)
{
        const grpc_slice *v = md_get(md, key);
        char *s, *end;
        long long n;

        if (!v)
                return dflt;
        s = slice_str(*v);
        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno || end == s || *end)
                n = dflt;
        free(s);
        return n;
}

/* Deterministic payload bytes: the test can recompute them. */
static uint8_t pattern_byte(size_t seed, size_t j)
{
        return (uint8_t)((seed * 131 + j * 31 + 7) & 0xff);
}

static grpc_byte_buffer *buffer_from(const void *p, size_t n)
{
        grpc_slice s = grpc_slice_from_copied_buffer(p, n);
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        return bb;
}

static grpc_byte_buffer *pattern_buffer(size_t seed, size_t n)
{
        grpc_slice s = grpc_slice_malloc(n);
        uint8_t *p = GRPC_SLICE_START_PTR(s);
        grpc_byte_buffer *bb;

        for (size_t j = 0; j < n; j++)
                p[j] = pattern_byte(seed, j);
        bb = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        return bb;
}

/* ---- logging ------------------------------------------------------------------------ */

static json_t *md_json(const grpc_metadata_array *md)
{
        json_t *a = json_array();

        for (size_t i = 0; i < md->count; i++) {
                char *k = slice_str(md->metadata[i].key);
                size_t vn = GRPC_SLICE_LENGTH(md->metadata[i].value);
                json_t *v;

                if (key_is_bin(md->metadata[i].key)) {
                        char *b64 = xcalloc(1, 4 * ((vn + 2) / 3) + 1);
                        EVP_EncodeBlock((unsigned char *)b64,
                                        GRPC_SLICE_START_PTR(md->metadata[i].value), (int)vn);
                        v = json_string(b64);
                        free(b64);
                } else {
                        v = json_stringn((const char *)GRPC_SLICE_START_PTR(md->metadata[i].value),
                                         vn);
                }
                json_array_append_new(a, json_pack("[s o]", k, v ? v : json_null()));
                free(k);
        }
        return a;
}

static json_t *base_record(struct call *c, const char *event)
{
        char *method = slice_str(c->details.method);
        char *host = slice_str(c->details.host);
        json_t *o = json_pack("{s:s s:s s:I s:s s:s s:s s:s}", "event", event, "server",
                              server_name, "seq", (json_int_t)c->seq, "id", c->id ? c->id : "",
                              "method", method, "host", host, "mode", mode_names[c->mode]);

        json_object_set_new(o, "deadline_ms",
                            c->deadline_ms < 0 ? json_null() : json_integer(c->deadline_ms));
        free(method);
        free(host);
        return o;
}

static void write_record(json_t *o)
{
        char *line;

        if (!log_file) {
                json_decref(o);
                return;
        }
        line = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!line)
                die("json_dumps");
        fprintf(log_file, "%s\n", line);
        fflush(log_file);
        free(line);
}

static void log_call(struct call *c, int status)
{
        json_t *o, *sizes;
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int dn = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];

        if (c->logged)
                return;
        c->logged = true;
        o = base_record(c, "call");
        json_object_set_new(o, "metadata", md_json(&c->req_md));
        json_object_set_new(o, "messages", json_integer((json_int_t)c->n_messages));
        sizes = json_array();
        for (size_t i = 0; i < c->n_messages; i++)
                json_array_append_new(sizes, json_integer((json_int_t)c->sizes[i]));
        json_object_set_new(o, "sizes", sizes);
        EVP_MD_CTX *copy = EVP_MD_CTX_new();
        EVP_MD_CTX_copy_ex(copy, c->sha);
        EVP_DigestFinal_ex(copy, digest, &dn);
        EVP_MD_CTX_free(copy);
        for (unsigned i = 0; i < dn; i++)
                snprintf(hex + 2 * i, 3, "%02x", digest[i]);
        hex[2 * dn] = 0;
        json_object_set_new(o, "sha256", json_string(hex));
        if (c->have_first && GRPC_SLICE_LENGTH(c->first) <= FIRST_LOGGED_MAX) {
                char b64[4 * ((FIRST_LOGGED_MAX + 2) / 3) + 1];

                EVP_EncodeBlock((unsigned char *)b64, GRPC_SLICE_START_PTR(c->first),
                                (int)GRPC_SLICE_LENGTH(c->first));
                json_object_set_new(o, "first", json_string(b64));
        }
        json_object_set_new(o, "status", status < 0 ? json_null() : json_integer(status));
        json_object_set_new(o, "cancelled", json_boolean(c->closed && c->cancelled));
        write_record(o);
}

/* ---- calls -------------------------------------------------------------------------- */

static void call_unref(struct call *c)
{
        if (--c->refs > 0)
                return;
        grpc_call_unref(c->call);
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->req_md);
        for (size_t i = 0; i < c->n_echo_md; i++) {
                grpc_slice_unref(c->echo_md[i].key);
                grpc_slice_unref(c->echo_md[i].value);
        }
        free(c->echo_md);
        free(c->sizes);
        free(c->id);
        free(c->message);
        EVP_MD_CTX_free(c->sha);
        if (c->have_first)
                grpc_slice_unref(c->first);
        if (c->recv_bb)
                grpc_byte_buffer_destroy(c->recv_bb);
        if (c->send_bb)
                grpc_byte_buffer_destroy(c->send_bb);
        if (c->pending_echo)
                grpc_byte_buffer_destroy(c->pending_echo);
        grpc_slice_unref(c->status_details);
        free(c);
        live_calls--;
}

static void start_batch(struct call *c, const grpc_op *ops, size_t n, struct tag *t)
{
        grpc_call_error e = grpc_call_start_batch(c->call, ops, n, t, NULL);

        if (e != GRPC_CALL_OK) {
                fprintf(stderr, "fake_backend: start_batch: %s\n", grpc_call_error_to_string(e));
                abort(); /* a bug in this program, not a test outcome */
        }
        c->refs++;
}

static void add_timer(struct call *c, int64_t delay)
{
        struct timer *t = xcalloc(1, sizeof(*t));

        t->due = now_ms() + delay;
        t->c = c;
        t->next = timers;
        timers = t;
        c->timer_pending = true;
        c->refs++;
}

static void start_recv(struct call *c)
{
        grpc_op op = { .op = GRPC_OP_RECV_MESSAGE };
        op.data.recv_message.recv_message = &c->recv_bb;
        start_batch(c, &op, 1, &c->t_recv);
}

static void fill_md_op(struct call *c, grpc_op *op)
{
        op->op = GRPC_OP_SEND_INITIAL_METADATA;
        op->data.send_initial_metadata.count = c->n_echo_md;
        op->data.send_initial_metadata.metadata = c->echo_md;
        c->md_sent = true;
}

/* The last batch: [initial metadata] [message] status with trailing metadata. */
static void send_final(struct call *c, grpc_byte_buffer *msg, int status, const char *details)
{
        grpc_op ops[3];
        size_t n = 0;

        if (c->final_sent || c->closed)
                return;
        c->final_sent = true;
        log_call(c, status);
        memset(ops, 0, sizeof(ops));
        if (!c->md_sent) {
                fill_md_op(c, &ops[n]);
                /* gRPC core needs SEND_INITIAL_METADATA with the status; when it is empty
                 * chttp2 sends a trailers-only response (one HEADERS frame with
                 * END_STREAM), as grpc-go servers do for errors. */
                if (!msg && status != GRPC_STATUS_OK && !c->with_initial)
                        ops[n].data.send_initial_metadata.count = 0;
                n++;
        }
        if (msg) {
                c->send_bb = msg;
                ops[n].op = GRPC_OP_SEND_MESSAGE;
                ops[n].data.send_message.send_message = msg;
                n++;
        }
        grpc_slice_unref(c->status_details);
        c->status_details = grpc_slice_from_copied_string(details ? details : "");
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = (grpc_status_code)status;
        ops[n].data.send_status_from_server.status_details = &c->status_details;
        ops[n].data.send_status_from_server.trailing_metadata_count = c->n_echo_md;
        ops[n].data.send_status_from_server.trailing_metadata = c->echo_md;
        n++;
        start_batch(c, ops, n, &c->t_final);
}

/* Appends protobuf field `field` (length-delimited) holding s to buf at *n. */
static void put_string_field(uint8_t *buf, size_t *n, unsigned field, const char *s)
{
        size_t len = strlen(s);

        buf[(*n)++] = (uint8_t)(field << 3 | 2);
        buf[(*n)++] = (uint8_t)len; /* short strings only: one length byte */
        memcpy(buf + *n, s, len);
        *n += len;
}

/* A VersionResponse naming runtime_name (fields 1-4: version, runtime_name,
 * runtime_version, runtime_api_version). */
static grpc_byte_buffer *version_response(void)
{
        uint8_t buf[4 * 130];
        size_t n = 0;

        put_string_field(buf, &n, 1, "0.1.0");
        put_string_field(buf, &n, 2, runtime_name);
        put_string_field(buf, &n, 3, "fake");
        put_string_field(buf, &n, 4, "v1");
        return buffer_from(buf, n);
}

static bool is_version_call(const struct call *c)
{
        static const char suffix[] = ".RuntimeService/Version";
        size_t n = GRPC_SLICE_LENGTH(c->details.method), k = strlen(suffix);

        return n >= k && memcmp(GRPC_SLICE_START_PTR(c->details.method) + n - k, suffix, k) == 0;
}

static void answer(struct call *c)
{
        char buf[200];

        switch (c->mode) {
        case M_ECHO:
                if (runtime_name && is_version_call(c))
                        send_final(c, version_response(), GRPC_STATUS_OK, NULL);
                else if (c->size > 0)
                        send_final(c, pattern_buffer(0, c->size), GRPC_STATUS_OK, NULL);
                else if (c->have_first)
                        send_final(c, grpc_raw_byte_buffer_create(&c->first, 1), GRPC_STATUS_OK,
                                   NULL);
                else
                        send_final(c, NULL, GRPC_STATUS_OK, NULL);
                break;
        case M_CLIENT_STREAM: {
                unsigned char digest[EVP_MAX_MD_SIZE];
                unsigned int dn = 0;
                int off;
                EVP_MD_CTX *copy = EVP_MD_CTX_new();

                EVP_MD_CTX_copy_ex(copy, c->sha);
                EVP_DigestFinal_ex(copy, digest, &dn);
                EVP_MD_CTX_free(copy);
                off = snprintf(buf, sizeof(buf), "count=%zu sha256=", c->n_messages);
                for (unsigned i = 0; i < dn; i++)
                        off += snprintf(buf + off, sizeof(buf) - off, "%02x", digest[i]);
                send_final(c, buffer_from(buf, (size_t)off), GRPC_STATUS_OK, NULL);
                break;
        }
        case M_FAIL:
                send_final(c, NULL, c->status, c->message);
                break;
        case M_STREAM:
        case M_BIDI_ECHO:
                send_final(c, NULL, GRPC_STATUS_OK, NULL);
                break;
        case M_STALL:
                break;
        }
}

/* stream mode: the next message, or the status once all are sent and the client closed */
static void stream_next(struct call *c)
{
        grpc_op op = { 0 };
        char buf[64];

        if (c->send_busy || c->final_sent || c->closed || c->timer_pending)
                return;
        if (c->count >= 0 && c->next_out >= c->count) {
                if (c->recv_done)
                        answer(c);
                return;
        }
        if (c->size > 0) {
                c->send_bb = pattern_buffer((size_t)c->next_out, c->size);
        } else {
                int n = snprintf(buf, sizeof(buf), "stream-message-%lld", c->next_out);
                c->send_bb = buffer_from(buf, (size_t)n);
        }
        c->next_out++;
        op.op = GRPC_OP_SEND_MESSAGE;
        op.data.send_message.send_message = c->send_bb;
        c->send_busy = true;
        start_batch(c, &op, 1, &c->t_send);
}

static void parse_request(struct call *c)
{
        const grpc_slice *v = md_get(&c->req_md, "x-fake-mode");
        size_t n = 0;
        bool no_echo;

        c->mode = M_ECHO;
        if (v) {
                for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
                        if (slice_eq(*v, mode_names[i]))
                                c->mode = (enum mode)i;
        }
        v = md_get(&c->req_md, "x-fake-id");
        c->id = v ? slice_str(*v) : NULL;
        /* the -bin form carries any bytes (UTF-8 messages): ASCII-only in plain keys */
        v = md_get(&c->req_md, "x-fake-message-bin");
        if (!v)
                v = md_get(&c->req_md, "x-fake-message");
        c->message = v ? slice_str(*v) : NULL;
        c->size = (size_t)md_num(&c->req_md, "x-fake-size", 0);
        if (c->size > MAX_MESSAGE)
                c->size = MAX_MESSAGE;
        c->count = md_num(&c->req_md, "x-fake-count", 3);
        c->delay_ms = (long)md_num(&c->req_md, "x-fake-delay-ms", 0);
        c->status = (int)md_num(&c->req_md, "x-fake-status", GRPC_STATUS_UNKNOWN);
        c->with_initial = md_num(&c->req_md, "x-fake-initial", 0) != 0;
        no_echo = md_num(&c->req_md, "x-fake-no-echo", 0) != 0;

        /* Echo every request key with an "echo-" prefix (so gRPC reserved keys such as
         * user-agent cannot collide with anything gRPC sets on the response). */
        c->echo_md = xcalloc(c->req_md.count + 1, sizeof(*c->echo_md));
        for (size_t i = 0; !no_echo && i < c->req_md.count; i++) {
                char *k = slice_str(c->req_md.metadata[i].key);
                char *ek = xcalloc(1, strlen(k) + 6);

                sprintf(ek, "echo-%s", k);
                c->echo_md[n].key = grpc_slice_from_copied_string(ek);
                c->echo_md[n].value = grpc_slice_ref(c->req_md.metadata[i].value);
                n++;
                free(k);
                free(ek);
        }
        c->n_echo_md = n;

        if (gpr_time_cmp(c->details.deadline, gpr_inf_future(c->details.deadline.clock_type)) ==
            0) {
                c->deadline_ms = -1;
        } else {
                gpr_timespec left = gpr_time_sub(
                        gpr_convert_clock_type(c->details.deadline, GPR_CLOCK_MONOTONIC),
                        gpr_now(GPR_CLOCK_MONOTONIC));
                c->deadline_ms = (int64_t)gpr_time_to_millis(left);
        }
}

static void request_next_call(void)
{
        grpc_call_error e;

        grpc_call_details_init(&new_details);
        grpc_metadata_array_init(&new_md);
        e = grpc_server_request_call(server, &new_call, &new_details, &new_md, cq, cq, &t_new_call);
        if (e != GRPC_CALL_OK)
                die("grpc_server_request_call failed");
}

static void on_new_call(bool ok)
{
        struct call *c;
        grpc_op op = { 0 };

        if (!ok) {
                /* server shutting down: the request is over */
                grpc_call_details_destroy(&new_details);
                grpc_metadata_array_destroy(&new_md);
                return;
        }
        c = xcalloc(1, sizeof(*c));
        live_calls++;
        c->refs = 1;
        c->seq = ++next_seq;
        c->call = new_call;
        c->details = new_details;
        c->req_md = new_md;
        c->status_details = grpc_empty_slice();
        c->t_close = (struct tag){ T_CLOSE, c };
        c->t_recv = (struct tag){ T_RECV, c };
        c->t_send = (struct tag){ T_SEND, c };
        c->t_final = (struct tag){ T_FINAL, c };
        c->sha = EVP_MD_CTX_new();
        if (!c->sha || !EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL))
                die("EVP_DigestInit_ex");
        new_call = NULL;
        if (!shutting_down)
                request_next_call();

        parse_request(c);
        write_record(base_record(c, "start"));

        op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        op.data.recv_close_on_server.cancelled = &c->cancelled;
        start_batch(c, &op, 1, &c->t_close);

        if (c->mode == M_STREAM || c->mode == M_BIDI_ECHO) {
                /* speak first: initial metadata before reading anything */
                grpc_op md = { 0 };
                fill_md_op(c, &md);
                c->send_busy = true;
                start_batch(c, &md, 1, &c->t_send);
        }
        start_recv(c);
        call_unref(c);
}

static void on_recv(struct call *c, bool ok)
{
        if (!ok || !c->recv_bb) {
                c->recv_done = true;
                if (!ok || c->closed)
                        return;
                switch (c->mode) {
                case M_ECHO:
                case M_CLIENT_STREAM:
                case M_FAIL:
                        if (c->delay_ms > 0)
                                add_timer(c, c->delay_ms);
                        else
                                answer(c);
                        break;
                case M_STREAM:
                        stream_next(c);
                        break;
                case M_BIDI_ECHO:
                        if (!c->send_busy)
                                answer(c);
                        break;
                case M_STALL:
                        break;
                }
                return;
        }

        grpc_byte_buffer_reader reader;
        grpc_slice s;

        if (!grpc_byte_buffer_reader_init(&reader, c->recv_bb))
                die("grpc_byte_buffer_reader_init");
        s = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
        c->sizes = realloc(c->sizes, (c->n_messages + 1) * sizeof(*c->sizes));
        if (!c->sizes)
                die("out of memory");
        c->sizes[c->n_messages++] = GRPC_SLICE_LENGTH(s);
        EVP_DigestUpdate(c->sha, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));

        if (c->mode == M_BIDI_ECHO) {
                /* echo now; the next receive starts when the echo was sent */
                c->pending_echo = c->recv_bb;
                c->recv_bb = NULL;
                grpc_slice_unref(s);
                if (!c->send_busy && !c->closed) {
                        grpc_op op = { .op = GRPC_OP_SEND_MESSAGE };
                        c->send_bb = c->pending_echo;
                        c->pending_echo = NULL;
                        op.data.send_message.send_message = c->send_bb;
                        c->send_busy = true;
                        start_batch(c, &op, 1, &c->t_send);
                }
                return;
        }
        if (!c->have_first) {
                c->first = s;
                c->have_first = true;
        } else {
                grpc_slice_unref(s);
        }
        grpc_byte_buffer_destroy(c->recv_bb);
        c->recv_bb = NULL;
        start_recv(c);
}

static void on_send(struct call *c, bool ok)
{
        c->send_busy = false;
        if (c->send_bb) {
                grpc_byte_buffer_destroy(c->send_bb);
                c->send_bb = NULL;
        }
        if (!ok || c->closed)
                return;
        if (c->mode == M_STREAM) {
                if (c->delay_ms > 0 && (c->count < 0 || c->next_out < c->count))
                        add_timer(c, c->delay_ms);
                else
                        stream_next(c);
        } else if (c->mode == M_BIDI_ECHO) {
                if (c->pending_echo) {
                        grpc_op op = { .op = GRPC_OP_SEND_MESSAGE };
                        c->send_bb = c->pending_echo;
                        c->pending_echo = NULL;
                        op.data.send_message.send_message = c->send_bb;
                        c->send_busy = true;
                        start_batch(c, &op, 1, &c->t_send);
                } else if (c->recv_done) {
                        answer(c);
                } else if (c->n_messages > 0 || c->md_sent) {
                        /* the initial metadata or an echo went out: read the next one */
                        if (c->n_messages > 0)
                                start_recv(c);
                }
        }
}

static void on_timer(struct call *c)
{
        c->timer_pending = false;
        if (!c->closed && !shutting_down) {
                if (c->mode == M_STREAM)
                        stream_next(c);
                else
                        answer(c);
        }
        call_unref(c);
}

static void on_close(struct call *c)
{
        c->closed = true;
        /* Cancelled before any status: deadline, client cancel, peer gone, shutdown. */
        if (!c->final_sent)
                log_call(c, -1);
}

static void fire_timers(bool all)
{
        int64_t now = now_ms();
        struct timer **pp = &timers;

        while (*pp) {
                struct timer *t = *pp;
                if (all || t->due <= now) {
                        *pp = t->next;
                        on_timer(t->c);
                        free(t);
                } else {
                        pp = &t->next;
                }
        }
}

static int64_t next_timer(void)
{
        int64_t due = INT64_MAX;
        for (struct timer *t = timers; t; t = t->next)
                if (t->due < due)
                        due = t->due;
        return due;
}

static void *signal_thread(void *arg)
{
        sigset_t *set = arg;
        int sig;

        sigwait(set, &sig);
        fprintf(stderr, "fake_backend(%s): signal %d, shutting down\n", server_name, sig);
        grpc_server_shutdown_and_notify(server, cq, &t_shutdown);
        grpc_server_cancel_all_calls(server);
        return NULL;
}

static void usage(void)
{
        fprintf(stderr, "usage: fake_backend --socket PATH [--log FILE] [--ready FILE] "
                        "[--name NAME] [--runtime-name NAME]\n");
        exit(2);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "log", required_argument, NULL, 'l' },
                { "ready", required_argument, NULL, 'r' },
                { "name", required_argument, NULL, 'n' },
                { "runtime-name", required_argument, NULL, 'R' },
                {},
        };
        const char *sock = NULL, *log_path = NULL, *ready = NULL;
        static sigset_t set;
        pthread_t sig_thread;
        char *addr;
        int c;
        bool server_done = false;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        sock = optarg;
                        break;
                case 'l':
                        log_path = optarg;
                        break;
                case 'r':
                        ready = optarg;
                        break;
                case 'n':
                        server_name = optarg;
                        break;
                case 'R':
                        if (strlen(optarg) > 127)
                                usage();
                        runtime_name = optarg;
                        break;
                default:
                        usage();
                }
        }
        if (!sock || optind != argc)
                usage();

        /* Signals go to the signal thread only (blocked before gRPC starts threads). */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);

        if (log_path) {
                log_file = fopen(log_path, "ae");
                if (!log_file)
                        die("cannot open log file");
        }

        grpc_init();
        grpc_arg args[2] = {
                { .type = GRPC_ARG_INTEGER,
                  .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                  .value.integer = MAX_MESSAGE },
                { .type = GRPC_ARG_INTEGER,
                  .key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
                  .value.integer = MAX_MESSAGE },
        };
        grpc_channel_args cargs = { .num_args = 2, .args = args };
        server = grpc_server_create(&cargs, NULL);
        cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(server, cq, NULL);
        unlink(sock); /* a stale socket from a killed instance */
        if (asprintf(&addr, "unix:%s", sock) < 0)
                die("out of memory");
        grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
        if (!grpc_server_add_http2_port(server, addr, creds))
                die("cannot listen on the socket");
        grpc_server_credentials_release(creds);
        free(addr);
        grpc_server_start(server);
        request_next_call();
        if (pthread_create(&sig_thread, NULL, signal_thread, &set) != 0)
                die("pthread_create");
        if (ready) {
                FILE *f = fopen(ready, "we");
                if (!f)
                        die("cannot create the ready file");
                fclose(f);
        }
        fprintf(stderr, "fake_backend(%s): serving on %s\n", server_name, sock);

        for (;;) {
                int64_t due = next_timer();
                gpr_timespec deadline =
                        due == INT64_MAX ? gpr_inf_future(GPR_CLOCK_MONOTONIC)
                                         : gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                                        gpr_time_from_millis(
                                                                due > now_ms() ? due - now_ms() : 0,
                                                                GPR_TIMESPAN));
                grpc_event ev = grpc_completion_queue_next(cq, deadline, NULL);

                if (ev.type == GRPC_QUEUE_SHUTDOWN)
                        break;
                if (ev.type == GRPC_OP_COMPLETE) {
                        struct tag *t = ev.tag;
                        bool ok = ev.success != 0;

                        switch (t->kind) {
                        case T_NEW_CALL:
                                on_new_call(ok);
                                break;
                        case T_SHUTDOWN:
                                shutting_down = true;
                                server_done = true;
                                break;
                        case T_CLOSE:
                                on_close(t->c);
                                call_unref(t->c);
                                break;
                        case T_RECV:
                                on_recv(t->c, ok);
                                call_unref(t->c);
                                break;
                        case T_SEND:
                                on_send(t->c, ok);
                                call_unref(t->c);
                                break;
                        case T_FINAL:
                                if (t->c->send_bb) {
                                        grpc_byte_buffer_destroy(t->c->send_bb);
                                        t->c->send_bb = NULL;
                                }
                                call_unref(t->c);
                                break;
                        }
                }
                fire_timers(shutting_down);
                /* After shutdown every call was cancelled; once they are all gone the
                 * queue can be shut down. */
                if (server_done && live_calls == 0 && !timers) {
                        server_done = false;
                        /* the signal thread may still be in grpc_server_cancel_all_calls */
                        pthread_join(sig_thread, NULL);
                        grpc_server_destroy(server);
                        server = NULL;
                        grpc_completion_queue_shutdown(cq);
                }
        }
        grpc_completion_queue_destroy(cq);
        if (log_file)
                fclose(log_file);
        unlink(sock);
        grpc_shutdown();
        fprintf(stderr, "fake_backend(%s): stopped\n", server_name);
        return 0;
}
