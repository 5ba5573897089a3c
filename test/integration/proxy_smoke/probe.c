/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proxy_probe: the quick self-check of `pinlet serve` (the full fake CRI backend and the
 * comparison suite live in test/fake).
 *
 *   proxy_probe backend SOCKET NAME   a generic gRPC backend on gRPC core, until killed
 *   proxy_probe stale-socket PATH     leaves a socket file nobody accepts on
 *   proxy_probe client TARGET CASE [ARG]   runs one case against pinlet, exit 0 = pass
 *   proxy_probe proxy SOCKET BACKEND  the proxy library in-process, with test interceptors
 *                                     and a 1 s shutdown grace; SIGTERM stops it
 *
 * The backend's behaviour is chosen by the request metadata "x-probe-mode":
 *   echo (default)  receive one message, answer it back
 *   stream          answer every message as it arrives, status at half-close
 *   server-first    send three messages before reading anything
 *   hang            never answer; print "cancelled PATH" when the call is cancelled
 * Every answer carries initial metadata x-backend=NAME (and x-echo-md = the client's
 * x-test-md), trailing metadata x-backend-trailer=t and x-deadline-left-ms, and the status
 * asked for in x-want-status / x-want-message. x-delay-ms=N delays the echo by N ms. x-reply-size=N
 * answers N bytes instead of the echo.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "grpc_client.h"
#include "proxy/proxy.h"
#include "util/macro.h"

/* ---------------------------------------------------------------------------------------- */
/* backend */

static const char *backend_name;

struct bcall {
        grpc_call *call;
        grpc_completion_queue *cq; /* pluck queue of this call only */
        grpc_call_details details;
        grpc_metadata_array md;
};

static void batch(struct bcall *b, grpc_op *ops, size_t n, void *tag)
{
        if (grpc_call_start_batch(b->call, ops, n, tag, NULL) != GRPC_CALL_OK)
                abort();
        grpc_completion_queue_pluck(b->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
}

static const char *md_get(grpc_metadata_array *md, const char *key, char *buf, size_t size)
{
        for (size_t i = 0; i < md->count; i++)
                if (grpc_slice_str_cmp(md->metadata[i].key, key) == 0) {
                        size_t n = GRPC_SLICE_LENGTH(md->metadata[i].value);
                        if (n >= size)
                                n = size - 1;
                        memcpy(buf, GRPC_SLICE_START_PTR(md->metadata[i].value), n);
                        buf[n] = '\0';
                        return buf;
                }
        return NULL;
}

static void *bcall_main(void *arg)
{
        struct bcall *b = arg;
        char size[32];
        size_t reply_size = 0;
        int delay_ms = 0;
        char mode[64] = "echo", echo[256] = "", want[32] = "0", wantmsg[256] = "", left[32];
        grpc_metadata initial[2], trailing[2];
        size_t n_initial = 0;
        int cancelled = 0;
        grpc_byte_buffer *msg = NULL;
        grpc_op ops[4];
        grpc_slice details;
        gpr_timespec dl;
        int tag_close;

        md_get(&b->md, "x-probe-mode", mode, sizeof(mode));
        md_get(&b->md, "x-want-status", want, sizeof(want));
        md_get(&b->md, "x-want-message", wantmsg, sizeof(wantmsg));
        if (md_get(&b->md, "x-delay-ms", size, sizeof(size)))
                delay_ms = atoi(size);
        if (md_get(&b->md, "x-reply-size", size, sizeof(size)))
                reply_size = (size_t)atol(size);
        dl = b->details.deadline;
        if (gpr_time_cmp(dl, gpr_inf_future(dl.clock_type)) == 0)
                snprintf(left, sizeof(left), "inf");
        else
                snprintf(left, sizeof(left), "%d",
                         gpr_time_to_millis(
                                 gpr_time_sub(gpr_convert_clock_type(dl, GPR_CLOCK_MONOTONIC),
                                              gpr_now(GPR_CLOCK_MONOTONIC))));
        initial[n_initial++] =
                (grpc_metadata){ .key = grpc_slice_from_static_string("x-backend"),
                                 .value = grpc_slice_from_static_string(backend_name) };
        if (md_get(&b->md, "x-test-md", echo, sizeof(echo)))
                initial[n_initial++] =
                        (grpc_metadata){ .key = grpc_slice_from_static_string("x-echo-md"),
                                         .value = grpc_slice_from_static_string(echo) };
        trailing[0] = (grpc_metadata){ .key = grpc_slice_from_static_string("x-backend-trailer"),
                                       .value = grpc_slice_from_static_string("t") };
        trailing[1] = (grpc_metadata){ .key = grpc_slice_from_static_string("x-deadline-left-ms"),
                                       .value = grpc_slice_from_static_string(left) };

        /* Close notification runs alongside everything else. */
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[0].data.recv_close_on_server.cancelled = &cancelled;
        if (grpc_call_start_batch(b->call, ops, 1, &tag_close, NULL) != GRPC_CALL_OK)
                abort();

        if (strcmp(mode, "hang") == 0) {
                grpc_completion_queue_pluck(b->cq, &tag_close, gpr_inf_future(GPR_CLOCK_REALTIME),
                                            NULL);
                if (cancelled)
                        printf("cancelled %.*s\n", (int)GRPC_SLICE_LENGTH(b->details.method),
                               (const char *)GRPC_SLICE_START_PTR(b->details.method));
                goto out;
        }

        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[0].data.send_initial_metadata.count = n_initial;
        ops[0].data.send_initial_metadata.metadata = initial;
        batch(b, ops, 1, &ops);

        if (strcmp(mode, "server-first") == 0) {
                static const char *const words[] = { "first", "second", "third" };
                for (int i = 0; i < 3; i++) {
                        grpc_slice s = grpc_slice_from_static_string(words[i]);
                        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
                        memset(ops, 0, sizeof(ops));
                        ops[0].op = GRPC_OP_SEND_MESSAGE;
                        ops[0].data.send_message.send_message = bb;
                        batch(b, ops, 1, &ops);
                        grpc_byte_buffer_destroy(bb);
                }
        }
        for (;;) {
                memset(ops, 0, sizeof(ops));
                ops[0].op = GRPC_OP_RECV_MESSAGE;
                ops[0].data.recv_message.recv_message = &msg;
                batch(b, ops, 1, &ops);
                if (!msg)
                        break;
                if (delay_ms > 0)
                        usleep((useconds_t)delay_ms * 1000);
                if (reply_size > 0) {
                        grpc_slice s = grpc_slice_malloc(reply_size);
                        grpc_byte_buffer *bb;

                        memset(GRPC_SLICE_START_PTR(s), 'r', reply_size);
                        bb = grpc_raw_byte_buffer_create(&s, 1);
                        grpc_slice_unref(s);
                        memset(ops, 0, sizeof(ops));
                        ops[0].op = GRPC_OP_SEND_MESSAGE;
                        ops[0].data.send_message.send_message = bb;
                        batch(b, ops, 1, &ops);
                        grpc_byte_buffer_destroy(bb);
                } else if (strcmp(mode, "server-first") != 0) {
                        memset(ops, 0, sizeof(ops));
                        ops[0].op = GRPC_OP_SEND_MESSAGE;
                        ops[0].data.send_message.send_message = msg;
                        batch(b, ops, 1, &ops);
                }
                grpc_byte_buffer_destroy(msg);
                msg = NULL;
                if (strcmp(mode, "echo") == 0)
                        break;
        }
        details = grpc_slice_from_copied_string(wantmsg);
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[0].data.send_status_from_server.status = (grpc_status_code)atoi(want);
        ops[0].data.send_status_from_server.status_details = &details;
        ops[0].data.send_status_from_server.trailing_metadata_count = 2;
        ops[0].data.send_status_from_server.trailing_metadata = trailing;
        batch(b, ops, 1, &ops);
        grpc_slice_unref(details);
        grpc_completion_queue_pluck(b->cq, &tag_close, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
out:
        fflush(stdout);
        grpc_call_unref(b->call);
        grpc_call_details_destroy(&b->details);
        grpc_metadata_array_destroy(&b->md);
        grpc_completion_queue_shutdown(b->cq);
        grpc_completion_queue_pluck(b->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        grpc_completion_queue_destroy(b->cq);
        free(b);
        return NULL;
}

static int run_backend(const char *sock, const char *name)
{
        grpc_arg a[] = {
                { .type = GRPC_ARG_INTEGER,
                  .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                  .value.integer = 64 << 20 },
                { .type = GRPC_ARG_INTEGER,
                  .key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
                  .value.integer = 64 << 20 },
        };
        grpc_channel_args args = { .num_args = 2, .args = a };
        grpc_completion_queue *cq;
        grpc_server *server;
        grpc_server_credentials *creds;
        char addr[200];

        setvbuf(stdout, NULL, _IOLBF, 0);
        backend_name = name;
        grpc_init();
        cq = grpc_completion_queue_create_for_next(NULL);
        server = grpc_server_create(&args, NULL);
        grpc_server_register_completion_queue(server, cq, NULL);
        snprintf(addr, sizeof(addr), "unix:%s", sock);
        creds = grpc_insecure_server_credentials_create();
        if (!grpc_server_add_http2_port(server, addr, creds)) {
                fprintf(stderr, "backend: cannot listen on %s\n", sock);
                return 1;
        }
        grpc_server_credentials_release(creds);
        grpc_server_start(server);
        printf("ready\n");
        for (;;) {
                struct bcall *b = calloc(1, sizeof(*b));
                pthread_t t;
                grpc_event ev;

                b->cq = grpc_completion_queue_create_for_pluck(NULL);
                grpc_call_details_init(&b->details);
                grpc_metadata_array_init(&b->md);
                if (grpc_server_request_call(server, &b->call, &b->details, &b->md, b->cq, cq, b) !=
                    GRPC_CALL_OK)
                        abort();
                ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (ev.type != GRPC_OP_COMPLETE || !ev.success)
                        abort();
                pthread_create(&t, NULL, bcall_main, b);
                pthread_detach(t);
        }
}

static int stale_socket(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                perror("stale-socket");
                return 1;
        }
        return 0; /* exits without listening or unlinking: a stale socket */
}

/* ---------------------------------------------------------------------------------------- */
/* the proxy library in-process, with interceptors */

static pthread_t cq_thread;

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The "/Slow" jobs: they run on the "slow" worker queue and block until an
 * "/InlineRelease" call (decided on the completion-queue thread) releases them. */
static pthread_mutex_t slow_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slow_cond = PTHREAD_COND_INITIALIZER;
static unsigned slow_running, slow_max;
static bool slow_released;

static void answer_text(struct pinlet_intercept_result *ret, const char *text)
{
        ret->action = PINLET_FORWARD_REWRITTEN;
        ret->data = (uint8_t *)strdup(text);
        ret->len = strlen(text);
}

/* The completion-queue phase: "/Inline*" methods are decided here, the others go to a
 * worker ("/Slow" on the "slow" queue). */
static void test_intercept_inline(const struct pinlet_call_info *info,
                                  struct pinlet_intercept_result *ret)
{
        char buf[64];

        if (!strstr(info->method, "/Inline")) {
                ret->action = PINLET_DEFER;
                ret->queue = strstr(info->method, "/Slow") ? strdup("slow") : NULL;
                return;
        }
        pthread_mutex_lock(&slow_lock);
        if (strstr(info->method, "/InlineRelease")) {
                slow_released = true;
                pthread_cond_broadcast(&slow_cond);
        }
        snprintf(buf, sizeof(buf), "running=%u max=%u", slow_running, slow_max);
        pthread_mutex_unlock(&slow_lock);
        answer_text(ret, buf);
}

static void slow_job(void)
{
        struct timespec until;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10; /* never hang the test */
        pthread_mutex_lock(&slow_lock);
        if (++slow_running > slow_max)
                slow_max = slow_running;
        while (!slow_released && pthread_cond_timedwait(&slow_cond, &slow_lock, &until) == 0)
                ;
        slow_running--;
        pthread_mutex_unlock(&slow_lock);
}

/* Body of every test interceptor: checks the thread for the phase, then acts by method
 * name. */
static void test_intercept(void *userdata, const struct pinlet_call_info *info, const uint8_t *req,
                           size_t len, struct pinlet_intercept_result *ret)
{
        bool on_cq = pthread_equal(pthread_self(), cq_thread);
        char buf[128];

        if (userdata != (void *)&cq_thread || on_cq == info->may_block) {
                ret->action = PINLET_FAIL;
                ret->status = 13;
                ret->message = strdup(on_cq ? "blocking phase on the completion-queue thread"
                                            : "inline phase off the completion-queue thread");
                return;
        }
        if (!info->may_block) {
                test_intercept_inline(info, ret);
                return;
        }
        if (strstr(info->method, "/Slow")) {
                slow_job();
                ret->action = PINLET_FORWARD_ORIGINAL;
                return;
        }
        if (strstr(info->method, "/Original")) {
                ret->action = PINLET_FORWARD_ORIGINAL;
        } else if (strstr(info->method, "/Rewrite")) {
                ret->action = PINLET_FORWARD_REWRITTEN;
                ret->len = len + 10;
                ret->data = malloc(ret->len);
                memcpy(ret->data, "rewritten:", 10);
                memcpy(ret->data + 10, req, len);
        } else if (strstr(info->method, "/Deadline")) {
                /* answers with the milliseconds left as the interceptor saw them */
                ret->action = PINLET_FORWARD_REWRITTEN;
                if (info->deadline_ms == INT64_MAX)
                        snprintf(buf, sizeof(buf), "inf");
                else
                        snprintf(buf, sizeof(buf), "%" PRId64, info->deadline_ms - now_ms());
                ret->data = (uint8_t *)strdup(buf);
                ret->len = strlen(buf);
        } else {
                ret->action = PINLET_FAIL;
                ret->status = 9;
                ret->message = strdup("refused by test");
        }
}

static void *shutdown_on_sigterm(void *arg)
{
        sigset_t set;
        int sig;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigwait(&set, &sig);
        pinlet_proxy_shutdown(arg);
        return NULL;
}

static int run_proxy(const char *sock, const char *backend)
{
        static const struct pinlet_method methods[] = {
                { "/probe.Intercept/Original", true, test_intercept },
                { "/probe.Intercept/Rewrite", true, test_intercept },
                { "/probe.Intercept/Fail", true, test_intercept },
                { "/probe.Intercept/Deadline", true, test_intercept },
                { "/probe.Intercept/Slow", true, test_intercept },
                { "/probe.Intercept/InlineStatus", true, test_intercept },
                { "/probe.Intercept/InlineRelease", true, test_intercept },
                { "/runtime.v1.RuntimeService/Version", true, NULL },
        };
        struct pinlet_proxy_options o = {
                .listen_path = sock,
                .socket_mode = 0600,
                .socket_uid = (uid_t)-1,
                .socket_gid = (gid_t)-1,
                .runtime_endpoint = backend,
                .max_message_size = 16u << 20,
                .shutdown_grace_ms = 1000,
                .workers = 2,
                .queue_limit = 1, /* one "/Slow" job at a time: the other worker stays free */
                .methods = methods,
                .n_methods = ELEMENTSOF(methods),
                .userdata = &cq_thread,
        };
        struct pinlet_error *err = NULL;
        struct pinlet_proxy *p;
        sigset_t set;
        pthread_t t;
        int r;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        cq_thread = pthread_self();
        r = pinlet_proxy_new(&o, &p, &err);
        if (r < 0) {
                fprintf(stderr, "proxy: %s\n", pinlet_error_message(err, r));
                pinlet_error_free(err);
                return 1;
        }
        /* The first attempts to accept a call fail (as an allocation or
         * grpc_server_request_call failure would): the accept loop must retry, or no case
         * below gets an answer. */
        pinlet_proxy_inject_accept_failures(p, 3);
        pthread_create(&t, NULL, shutdown_on_sigterm, p);
        r = pinlet_proxy_run(p);
        pthread_join(t, NULL);
        pinlet_proxy_free(p);
        fprintf(stderr, "proxy: run returned %d\n", r);
        return r;
}

/* ---------------------------------------------------------------------------------------- */
/* client cases */

static int failures;

#define CHECK(cond, ...)                                                                \
        do {                                                                            \
                if (!(cond)) {                                                          \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __func__, __LINE__, #cond); \
                        fprintf(stderr, __VA_ARGS__);                                   \
                        fprintf(stderr, "\n");                                          \
                        failures++;                                                     \
                }                                                                       \
        } while (0)

#define MD(k, v)                                                                  \
        {                                                                         \
                .key = (k), .value = (const uint8_t *)(v), .value_len = strlen(v) \
        }

static const char *md_str(const struct pinlet_tgrpc_md *md, size_t n, const char *key)
{
        const struct pinlet_tgrpc_md *m = pinlet_tgrpc_md_find(md, n, key);
        return m ? (const char *)m->value : NULL;
}

static bool streq_n(const char *a, const char *b)
{
        return a && b && strcmp(a, b) == 0;
}

static void show(const char *what, const struct pinlet_tgrpc_result *r)
{
        fprintf(stderr, "%s: status %s '%s', %zu messages, %" PRId64 " ms\n", what,
                pinlet_tgrpc_status_name(r->status), r->details, r->n_messages, r->elapsed_ms);
}

static void case_unary(struct pinlet_tgrpc_channel *ch, const char *path, const char *want_backend)
{
        struct pinlet_tgrpc_md md[] = { MD("x-test-md", "abc") };
        struct pinlet_tgrpc_result r;

        pinlet_tgrpc_unary(ch, path, "hello", 5, md, 1, 5000, &r);
        show(path, &r);
        CHECK(r.status == 0, "status %d", r.status);
        CHECK(r.n_messages == 1 && r.messages[0].len == 5 &&
                      memcmp(r.messages[0].data, "hello", 5) == 0,
              "echo");
        CHECK(streq_n(md_str(r.initial_md, r.n_initial_md, "x-echo-md"), "abc"), "x-echo-md");
        CHECK(streq_n(md_str(r.trailing_md, r.n_trailing_md, "x-backend-trailer"), "t"), "trailer");
        if (want_backend)
                CHECK(streq_n(md_str(r.initial_md, r.n_initial_md, "x-backend"), want_backend),
                      "routed to %s", want_backend);
        /* the client sent a 5 s deadline: the backend must see most of it */
        {
                const char *left = md_str(r.trailing_md, r.n_trailing_md, "x-deadline-left-ms");
                CHECK(left && strcmp(left, "inf") != 0 && atoi(left) > 3000 &&
                              atoi(left) <= 5100, /* grpc-timeout rounds up */
                      "deadline propagated: %s", left ? left : "(none)");
        }
        pinlet_tgrpc_result_free(&r);
}

static void case_status(struct pinlet_tgrpc_channel *ch, const char *path)
{
        struct pinlet_tgrpc_md md[] = { MD("x-want-status", "5"),
                                        MD("x-want-message", "no such thing") };
        struct pinlet_tgrpc_result r;

        pinlet_tgrpc_unary(ch, path, "x", 1, md, 2, 5000, &r);
        show("status", &r);
        CHECK(r.status == 5 && strcmp(r.details, "no such thing") == 0, "status passed through");
        CHECK(streq_n(md_str(r.trailing_md, r.n_trailing_md, "x-backend-trailer"), "t"),
              "trailer with error status");
        pinlet_tgrpc_result_free(&r);
}

static void case_streams(struct pinlet_tgrpc_channel *ch)
{
        struct pinlet_tgrpc_md stream[] = { MD("x-probe-mode", "stream") };
        struct pinlet_tgrpc_md first[] = { MD("x-probe-mode", "server-first") };
        struct pinlet_tgrpc_msg msgs[] = { { (const uint8_t *)"a", 1 },
                                           { (const uint8_t *)"bb", 2 },
                                           { (const uint8_t *)"ccc", 3 } };
        struct pinlet_tgrpc_call_opts o = {
                .kind = PINLET_TGRPC_BIDI,
                .method = "/probe.Test/Bidi",
                .metadata = stream,
                .n_metadata = 1,
                .messages = msgs,
                .n_messages = 3,
                .timeout_ms = 5000,
                .lockstep = true,
        };
        struct pinlet_tgrpc_result r;

        pinlet_tgrpc_call(ch, &o, &r);
        show("bidi lockstep", &r);
        CHECK(r.status == 0 && r.n_messages == 3 && r.messages[2].len == 3, "bidi");
        pinlet_tgrpc_result_free(&r);

        o.kind = PINLET_TGRPC_CLIENT_STREAM;
        o.lockstep = false;
        pinlet_tgrpc_call(ch, &o, &r);
        show("client stream", &r);
        CHECK(r.status == 0 && r.n_messages == 3, "client stream");
        pinlet_tgrpc_result_free(&r);

        o.kind = PINLET_TGRPC_SERVER_STREAM;
        o.messages = msgs;
        o.n_messages = 1;
        o.metadata = first;
        pinlet_tgrpc_call(ch, &o, &r);
        show("server stream", &r);
        CHECK(r.status == 0 && r.n_messages == 3, "server stream");
        pinlet_tgrpc_result_free(&r);

        /* Server speaks first and the client never sends: must not stall. */
        o.kind = PINLET_TGRPC_BIDI;
        o.n_messages = 0;
        o.no_half_close = true;
        o.cancel_after_messages = 3;
        o.wait_limit_ms = 4000;
        pinlet_tgrpc_call(ch, &o, &r);
        show("server first", &r);
        CHECK(r.n_messages == 3 && !r.timed_out && r.status == 1, "server-first stream");
        pinlet_tgrpc_result_free(&r);
}

static void case_big(struct pinlet_tgrpc_channel *ch)
{
        size_t ok_len = (16u << 20) - 64, big_len = (16u << 20) + 1024;
        uint8_t *buf = malloc(big_len);
        struct pinlet_tgrpc_result r;

        memset(buf, 'x', big_len);
        pinlet_tgrpc_unary(ch, "/runtime.v1.RuntimeService/ListContainers", buf, ok_len, NULL, 0,
                           10000, &r);
        show("16 MiB unary", &r);
        CHECK(r.status == 0 && r.n_messages == 1 && r.messages[0].len == ok_len, "16 MiB");
        pinlet_tgrpc_result_free(&r);

        pinlet_tgrpc_unary(ch, "/runtime.v1.RuntimeService/ListContainers", buf, big_len, NULL, 0,
                           10000, &r);
        show("too big unary", &r);
        CHECK(r.status == 8, "over 16 MiB refused with RESOURCE_EXHAUSTED");
        pinlet_tgrpc_result_free(&r);

        /* backend -> client: a 16 MiB answer passes, a bigger one is refused */
        {
                char n[32] = "";
                struct pinlet_tgrpc_md md[] = { MD("x-reply-size", n) };

                snprintf(n, sizeof(n), "%zu", ok_len);
                md[0].value_len = strlen(n);
                pinlet_tgrpc_unary(ch, "/runtime.v1.RuntimeService/ListContainers", "x", 1, md, 1,
                                   10000, &r);
                show("16 MiB reply", &r);
                CHECK(r.status == 0 && r.n_messages == 1 && r.messages[0].len == ok_len,
                      "16 MiB reply");
                pinlet_tgrpc_result_free(&r);

                snprintf(n, sizeof(n), "%zu", big_len);
                md[0].value_len = strlen(n);
                pinlet_tgrpc_unary(ch, "/runtime.v1.RuntimeService/ListContainers", "x", 1, md, 1,
                                   10000, &r);
                show("too big reply (unary)", &r);
                CHECK(r.status == 8 && r.n_messages == 0, "reply over 16 MiB refused");
                pinlet_tgrpc_result_free(&r);

                pinlet_tgrpc_unary(ch, "/probe.Test/BigReply", "x", 1, md, 1, 10000, &r);
                show("too big reply (stream)", &r);
                CHECK(r.status == 8 && r.n_messages == 0, "reply over 16 MiB refused");
                pinlet_tgrpc_result_free(&r);
        }
        free(buf);
}

static void case_deadline(struct pinlet_tgrpc_channel *ch)
{
        struct pinlet_tgrpc_md hang[] = { MD("x-probe-mode", "hang") };
        struct pinlet_tgrpc_call_opts o = {
                .kind = PINLET_TGRPC_BIDI,
                .method = "/probe.Test/Hang",
                .metadata = hang,
                .n_metadata = 1,
                .no_half_close = true,
                .cancel_after_ms = 300,
                .wait_limit_ms = 5000,
        };
        struct pinlet_tgrpc_result r;

        pinlet_tgrpc_unary(ch, "/runtime.v1.RuntimeService/Version", "", 0, hang, 1, 300, &r);
        show("deadline", &r);
        CHECK(r.status == 4 && !r.timed_out && r.elapsed_ms < 2000, "DEADLINE_EXCEEDED in time");
        pinlet_tgrpc_result_free(&r);

        pinlet_tgrpc_call(ch, &o, &r);
        show("cancel", &r);
        CHECK(r.status == 1 && !r.timed_out, "cancelled");
        pinlet_tgrpc_result_free(&r);
}

static void case_unavailable(struct pinlet_tgrpc_channel *ch, const char *endpoint)
{
        struct pinlet_tgrpc_result r;

        pinlet_tgrpc_unary(ch, "/runtime.v1.RuntimeService/Version", "", 0, NULL, 0, 5000, &r);
        show("backend down (unary)", &r);
        CHECK(r.status == 14 && strstr(r.details, endpoint), "UNAVAILABLE naming %s", endpoint);
        pinlet_tgrpc_result_free(&r);

        pinlet_tgrpc_unary(ch, "/probe.Test/Unknown", "", 0, NULL, 0, 5000, &r);
        show("backend down (stream)", &r);
        CHECK(r.status == 14 && strstr(r.details, endpoint), "UNAVAILABLE naming %s", endpoint);
        pinlet_tgrpc_result_free(&r);
}

static void case_intercept(struct pinlet_tgrpc_channel *ch)
{
        struct pinlet_tgrpc_md md[] = { MD("x-test-md", "abc") };
        struct pinlet_tgrpc_result r;

        pinlet_tgrpc_unary(ch, "/probe.Intercept/Original", "hello", 5, md, 1, 5000, &r);
        show("intercept original", &r);
        CHECK(r.status == 0 && r.n_messages == 1 && r.messages[0].len == 5 &&
                      memcmp(r.messages[0].data, "hello", 5) == 0,
              "original forwarded");
        CHECK(streq_n(md_str(r.initial_md, r.n_initial_md, "x-echo-md"), "abc"), "metadata");
        pinlet_tgrpc_result_free(&r);

        pinlet_tgrpc_unary(ch, "/probe.Intercept/Rewrite", "hello", 5, md, 1, 5000, &r);
        show("intercept rewrite", &r);
        CHECK(r.status == 0 && r.n_messages == 1 && r.messages[0].len == 15 &&
                      memcmp(r.messages[0].data, "rewritten:hello", 15) == 0,
              "rewritten forwarded");
        pinlet_tgrpc_result_free(&r);

        pinlet_tgrpc_unary(ch, "/probe.Intercept/Fail", "hello", 5, md, 1, 5000, &r);
        show("intercept fail", &r);
        CHECK(r.status == 9 && strcmp(r.details, "refused by test") == 0, "failed by interceptor");
        CHECK(!md_str(r.initial_md, r.n_initial_md, "x-backend"), "no backend call");
        pinlet_tgrpc_result_free(&r);

        pinlet_tgrpc_unary(ch, "/probe.Intercept/Deadline", "", 0, NULL, 0, 3000, &r);
        show("intercept deadline", &r);
        CHECK(r.status == 0 && r.n_messages == 1, "deadline call");
        if (r.n_messages == 1) {
                char buf[32] = "";
                memcpy(buf, r.messages[0].data, r.messages[0].len < 31 ? r.messages[0].len : 31);
                CHECK(atoi(buf) > 2000 && atoi(buf) <= 3100, "deadline_ms seen: %s", buf);
        }
        pinlet_tgrpc_result_free(&r);

        pinlet_tgrpc_unary(ch, "/probe.Intercept/Deadline", "", 0, NULL, 0, 0, &r);
        CHECK(r.status == 0 && r.n_messages == 1 && r.messages[0].len == 3 &&
                      memcmp(r.messages[0].data, "inf", 3) == 0,
              "no deadline: INT64_MAX");
        pinlet_tgrpc_result_free(&r);
}

struct bg_call {
        struct pinlet_tgrpc_channel *ch;
        struct pinlet_tgrpc_call_opts o;
        struct pinlet_tgrpc_result r;
        pthread_t t;
};

static void *bg_call_main(void *arg)
{
        struct bg_call *b = arg;

        pinlet_tgrpc_call(b->ch, &b->o, &b->r);
        return NULL;
}

/* "running=R max=M" from an /InlineStatus or /InlineRelease call; false on failure. */
static bool slow_status(struct pinlet_tgrpc_channel *ch, const char *method, unsigned *running,
                        unsigned *max)
{
        struct pinlet_tgrpc_result r;
        char buf[64] = "";
        bool ok;

        pinlet_tgrpc_unary(ch, method, "", 0, NULL, 0, 5000, &r);
        if (r.status == 0 && r.n_messages == 1)
                memcpy(buf, r.messages[0].data,
                       r.messages[0].len < sizeof(buf) - 1 ? r.messages[0].len : sizeof(buf) - 1);
        ok = sscanf(buf, "running=%u max=%u", running, max) == 2;
        pinlet_tgrpc_result_free(&r);
        return ok;
}

/* Worker queues: with queue_limit 1, three jobs of the "slow" queue hold ONE worker while
 * they wait; a job of another queue still gets the second worker, and calls decided on
 * the completion-queue thread are answered meanwhile. Nothing here waits on a timer: the
 * slow jobs end when /InlineRelease says so. */
static void case_queues(struct pinlet_tgrpc_channel *ch)
{
        struct pinlet_tgrpc_msg msg = { (const uint8_t *)"s", 1 };
        struct bg_call slow[3];
        struct pinlet_tgrpc_result r;
        unsigned running = 0, max = 0;
        int64_t until = now_ms() + 10000;

        for (int i = 0; i < 3; i++) {
                slow[i] = (struct bg_call){ .ch = ch,
                                            .o = { .kind = PINLET_TGRPC_UNARY,
                                                   .method = "/probe.Intercept/Slow",
                                                   .messages = &msg,
                                                   .n_messages = 1,
                                                   .wait_limit_ms = 20000 } };
                pthread_create(&slow[i].t, NULL, bg_call_main, &slow[i]);
        }
        while (now_ms() < until &&
               !(slow_status(ch, "/probe.Intercept/InlineStatus", &running, &max) && running == 1))
                ;
        CHECK(running == 1, "a slow job runs (running=%u)", running);

        pinlet_tgrpc_unary(ch, "/probe.Intercept/Original", "hello", 5, NULL, 0, 5000, &r);
        show("other queue while slow is saturated", &r);
        CHECK(r.status == 0 && r.n_messages == 1, "a job of another queue ran meanwhile");
        pinlet_tgrpc_result_free(&r);
        CHECK(slow_status(ch, "/probe.Intercept/InlineStatus", &running, &max) && running == 1,
              "slow jobs still waiting (running=%u)", running);

        CHECK(slow_status(ch, "/probe.Intercept/InlineRelease", &running, &max), "release");
        for (int i = 0; i < 3; i++) {
                pthread_join(slow[i].t, NULL);
                CHECK(slow[i].r.status == 0, "slow job %d completed", i);
                pinlet_tgrpc_result_free(&slow[i].r);
        }
        CHECK(slow_status(ch, "/probe.Intercept/InlineStatus", &running, &max) && max == 1,
              "never more than queue_limit slow jobs at once (max=%u)", max);
}

/* In-flight calls at SIGTERM: streams end at once, a unary call that finishes within the
 * grace (1 s in proxy mode) succeeds, one that does not is cancelled at the grace. */
static void case_shutdown(struct pinlet_tgrpc_channel *ch, pid_t pid)
{
        static const uint8_t one[] = "x";
        struct pinlet_tgrpc_md hang[] = { MD("x-probe-mode", "hang") };
        struct pinlet_tgrpc_md slow[] = { MD("x-delay-ms", "500") };
        struct pinlet_tgrpc_msg msg = { one, 1 };
        struct bg_call calls[3] = {
                { .o = { .kind = PINLET_TGRPC_BIDI,
                         .method = "/probe.Test/Stream",
                         .metadata = hang,
                         .n_metadata = 1,
                         .no_half_close = true,
                         .wait_limit_ms = 10000 } },
                { .o = { .kind = PINLET_TGRPC_UNARY,
                         .method = "/runtime.v1.RuntimeService/Version",
                         .metadata = slow,
                         .n_metadata = 1,
                         .messages = &msg,
                         .n_messages = 1,
                         .wait_limit_ms = 10000 } },
                { .o = { .kind = PINLET_TGRPC_UNARY,
                         .method = "/runtime.v1.RuntimeService/Version",
                         .metadata = hang,
                         .n_metadata = 1,
                         .messages = &msg,
                         .n_messages = 1,
                         .wait_limit_ms = 10000 } },
        };

        for (int i = 0; i < 3; i++) {
                calls[i].ch = ch;
                pthread_create(&calls[i].t, NULL, bg_call_main, &calls[i]);
        }
        usleep(200 * 1000);
        kill(pid, SIGTERM);
        for (int i = 0; i < 3; i++)
                pthread_join(calls[i].t, NULL);
        show("stream at shutdown", &calls[0].r);
        show("short unary at shutdown", &calls[1].r);
        show("hung unary at shutdown", &calls[2].r);
        CHECK(calls[0].r.status == 14 && calls[0].r.elapsed_ms < 800, "stream ended at once");
        CHECK(calls[1].r.status == 0 && calls[1].r.n_messages == 1, "unary finished in grace");
        CHECK(calls[2].r.status == 14 && strcmp(calls[2].r.details, "pinlet: shutting down") == 0 &&
                      calls[2].r.elapsed_ms >= 1000 && calls[2].r.elapsed_ms < 3000,
              "unary cancelled after the grace");
        for (int i = 0; i < 3; i++)
                pinlet_tgrpc_result_free(&calls[i].r);
}

/* The backend dies with calls in flight: they end with a status, they never hang. */
static void case_dying(struct pinlet_tgrpc_channel *ch, pid_t backend)
{
        static const uint8_t one[] = "x";
        struct pinlet_tgrpc_md hang[] = { MD("x-probe-mode", "hang") };
        struct pinlet_tgrpc_msg msg = { one, 1 };
        struct bg_call calls[2] = {
                { .o = { .kind = PINLET_TGRPC_BIDI,
                         .method = "/probe.Test/Stream",
                         .metadata = hang,
                         .n_metadata = 1,
                         .no_half_close = true,
                         .wait_limit_ms = 10000 } },
                { .o = { .kind = PINLET_TGRPC_UNARY,
                         .method = "/runtime.v1.RuntimeService/Version",
                         .metadata = hang,
                         .n_metadata = 1,
                         .messages = &msg,
                         .n_messages = 1,
                         .wait_limit_ms = 10000 } },
        };

        for (int i = 0; i < 2; i++) {
                calls[i].ch = ch;
                pthread_create(&calls[i].t, NULL, bg_call_main, &calls[i]);
        }
        usleep(300 * 1000);
        kill(backend, SIGKILL);
        for (int i = 0; i < 2; i++) {
                pthread_join(calls[i].t, NULL);
                show(i == 0 ? "stream, backend killed" : "unary, backend killed", &calls[i].r);
                CHECK(calls[i].r.status == 14 && !calls[i].r.timed_out &&
                              calls[i].r.elapsed_ms < 3000,
                      "ended with UNAVAILABLE");
                pinlet_tgrpc_result_free(&calls[i].r);
        }
}

/* Against a real CRI runtime (manual check, not in the smoke): Version answers, an unknown
 * method passes UNIMPLEMENTED through, the event stream stays open until cancelled. */
static void case_cri(struct pinlet_tgrpc_channel *ch)
{
        struct pinlet_tgrpc_call_opts o = {
                .kind = PINLET_TGRPC_SERVER_STREAM,
                .method = "/runtime.v1.RuntimeService/GetContainerEvents",
                .messages = &(struct pinlet_tgrpc_msg){ (const uint8_t *)"", 0 },
                .n_messages = 1,
                .cancel_after_ms = 500,
                .wait_limit_ms = 5000,
        };
        struct pinlet_tgrpc_result r;

        pinlet_tgrpc_unary(ch, "/runtime.v1.RuntimeService/Version", "", 0, NULL, 0, 5000, &r);
        show("CRI Version", &r);
        CHECK(r.status == 0 && r.n_messages == 1 && r.messages[0].len > 0, "Version");
        pinlet_tgrpc_result_free(&r);

        pinlet_tgrpc_unary(ch, "/runtime.v1.ImageService/ListImages", "", 0, NULL, 0, 5000, &r);
        show("CRI ListImages", &r);
        CHECK(r.status == 0 && r.n_messages == 1, "ListImages");
        pinlet_tgrpc_result_free(&r);

        pinlet_tgrpc_unary(ch, "/runtime.v1.RuntimeService/NoSuchMethod", "", 0, NULL, 0, 5000, &r);
        show("CRI unknown method", &r);
        CHECK(r.status == 12, "UNIMPLEMENTED passed through");
        pinlet_tgrpc_result_free(&r);

        pinlet_tgrpc_call(ch, &o, &r);
        show("CRI GetContainerEvents", &r);
        /* containerd 1.6 may answer UNIMPLEMENTED (passed through); if it streams, the
         * stream must stay open until the client cancels. */
        CHECK(r.status == 12 || (r.status == 1 && r.elapsed_ms >= 400), "event stream");
        pinlet_tgrpc_result_free(&r);
}

int main(int argc, char **argv)
{
        struct pinlet_tgrpc_channel *ch;
        const char *c;

        if (argc >= 4 && strcmp(argv[1], "backend") == 0)
                return run_backend(argv[2], argv[3]);
        if (argc >= 4 && strcmp(argv[1], "proxy") == 0)
                return run_proxy(argv[2], argv[3]);
        if (argc >= 3 && strcmp(argv[1], "stale-socket") == 0)
                return stale_socket(argv[2]);
        if (argc < 4 || strcmp(argv[1], "client") != 0) {
                fprintf(stderr, "usage: proxy_probe backend SOCK NAME | stale-socket PATH | "
                                "client TARGET CASE [ARG]\n");
                return 2;
        }
        c = argv[3];
        /* The authority is the socket path, as old grpc-go clients send it. */
        ch = pinlet_tgrpc_connect(argv[2], 64u << 20, strcmp(c, "authority") == 0 ? argv[4] : NULL);
        if (!ch)
                return 2;
        if (strcmp(c, "unary") == 0 || strcmp(c, "authority") == 0) {
                case_unary(ch, "/runtime.v1.RuntimeService/Version",
                           argc > 4 && strcmp(c, "unary") == 0 ? argv[4] : NULL);
                case_unary(ch, "/probe.Test/NotInTable", NULL);
        } else if (strcmp(c, "image") == 0) {
                case_unary(ch, "/runtime.v1.ImageService/ListImages", argv[4]);
                case_unary(ch, "/runtime.v1alpha2.ImageService/ImageFsInfo", argv[4]);
        } else if (strcmp(c, "status") == 0) {
                case_status(ch, "/runtime.v1.RuntimeService/Version");
                case_status(ch, "/probe.Test/NotInTable");
        } else if (strcmp(c, "streams") == 0) {
                case_streams(ch);
        } else if (strcmp(c, "intercept") == 0) {
                case_intercept(ch);
                case_queues(ch);
        } else if (strcmp(c, "shutdown") == 0) {
                case_shutdown(ch, (pid_t)atoi(argv[4]));
        } else if (strcmp(c, "dying") == 0) {
                case_dying(ch, (pid_t)atoi(argv[4]));
        } else if (strcmp(c, "repeat") == 0) {
                /* N sequential unary calls (for strace / CPU checks by hand) */
                for (int i = 0; i < atoi(argv[4]); i++) {
                        struct pinlet_tgrpc_result r;
                        pinlet_tgrpc_unary(ch, "/runtime.v1.RuntimeService/Version", "v", 1, NULL,
                                           0, 5000, &r);
                        CHECK(r.status == 0, "call %d: %s", i, r.details);
                        pinlet_tgrpc_result_free(&r);
                }
        } else if (strcmp(c, "cri") == 0) {
                case_cri(ch);
        } else if (strcmp(c, "big") == 0) {
                case_big(ch);
        } else if (strcmp(c, "deadline") == 0) {
                case_deadline(ch);
        } else if (strcmp(c, "unavailable") == 0) {
                case_unavailable(ch, argv[4]);
        } else {
                fprintf(stderr, "unknown case %s\n", c);
                failures++;
        }
        pinlet_tgrpc_channel_free(ch);
        return failures ? 1 : 0;
}
