/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How the proxy carries out interceptor results.
 *
 * An interceptor's after-work (pinlet_intercept_result.after: the audit records) runs
 * exactly once per call, on the completion-queue thread, whether the call was forwarded
 * or refused.
 *
 * The proxy's shutdown with interceptor jobs still queued: once the grace period has ended
 * a call (the client got "pinlet: shutting down"), a queued interceptor for it must not
 * run any more. One worker, an interceptor held at a gate and several calls: before the
 * fix every queued interceptor still ran once the gate opened, one after the other,
 * holding the exit for all of them.
 *
 * No sleeps: the test knows every call reached the proxy from the proxy's own debug line
 * for it ("proxy: call /test.Svc/Slow", stderr captured into a file), and the gate is
 * opened only after every client got its status, so the order is fixed, not timed.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "proxy/proxy.h"
#include "util/log.h"
#include "util/macro.h"

#define N_CALLS 4

static atomic_int intercepted;

/* The gate the first interceptor waits at; opened by the test. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void slow_intercept(void *userdata, const struct pinlet_call_info *info,
                           const uint8_t *request, size_t len, struct pinlet_intercept_result *ret)
{
        if (!info->may_block) { /* the completion-queue phase: to the worker */
                ret->action = PINLET_DEFER;
                return;
        }
        atomic_fetch_add(&intercepted, 1);
        pthread_mutex_lock(&gate_lock);
        while (!gate_open)
                pthread_cond_wait(&gate_cond, &gate_lock);
        pthread_mutex_unlock(&gate_lock);
        ret->action = PINLET_FAIL;
        ret->status = GRPC_STATUS_PERMISSION_DENIED;
        ret->message = strdup("refused by the test");
}

/* ---- after-work ---- */

static atomic_int afters, after_other_thread;
static pthread_t icept_thread;

static void count_after(void *arg)
{
        if (!pthread_equal(pthread_self(), icept_thread))
                atomic_fetch_add(&after_other_thread, 1);
        atomic_fetch_add(&afters, 1);
        free(arg);
}

/* Decides on the completion-queue thread, with after-work that owns memory (a leak or a
 * double run shows under the sanitizers). */
static void decide_with_after(struct pinlet_intercept_result *ret)
{
        icept_thread = pthread_self();
        ret->after = count_after;
        ret->after_arg = strdup("record");
}

static void refuse_intercept(void *userdata, const struct pinlet_call_info *info,
                             const uint8_t *request, size_t len,
                             struct pinlet_intercept_result *ret)
{
        ret->action = PINLET_FAIL;
        ret->status = GRPC_STATUS_PERMISSION_DENIED;
        ret->message = strdup("refused by the test");
        decide_with_after(ret);
}

static void forward_intercept(void *userdata, const struct pinlet_call_info *info,
                              const uint8_t *request, size_t len,
                              struct pinlet_intercept_result *ret)
{
        ret->action = PINLET_FORWARD_ORIGINAL;
        decide_with_after(ret);
}

struct client {
        pthread_t thread;
        const char *target;
        const char *method; /* NULL: /test.Svc/Slow */
        grpc_status_code status;
        char details[128];
};

/* One unary call with grpc core; records the status the client saw. */
static void *client_main(void *arg)
{
        struct client *cl = arg;
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        grpc_channel *ch = grpc_channel_create(cl->target, creds, NULL);
        grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
        grpc_slice method =
                grpc_slice_from_static_string(cl->method ? cl->method : "/test.Svc/Slow");
        gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                             gpr_time_from_millis(20000, GPR_TIMESPAN));
        grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method,
                                                   NULL, deadline, NULL);
        grpc_slice msg = grpc_slice_from_static_string("request");
        grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&msg, 1), *resp = NULL;
        grpc_metadata_array md, trailing;
        grpc_slice details = grpc_empty_slice();
        grpc_op ops[6] = {};
        grpc_event ev;

        grpc_channel_credentials_release(creds);
        grpc_metadata_array_init(&md);
        grpc_metadata_array_init(&trailing);
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = req;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &md;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &resp;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
        ops[5].data.recv_status_on_client.status = &cl->status;
        ops[5].data.recv_status_on_client.status_details = &details;
        assert_int_equal(grpc_call_start_batch(call, ops, 6, cl, NULL), GRPC_CALL_OK);
        ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        assert_int_equal(ev.type, GRPC_OP_COMPLETE);
        snprintf(cl->details, sizeof(cl->details), "%.*s", (int)GRPC_SLICE_LENGTH(details),
                 (const char *)GRPC_SLICE_START_PTR(details));

        grpc_slice_unref(details);
        grpc_metadata_array_destroy(&md);
        grpc_metadata_array_destroy(&trailing);
        if (resp)
                grpc_byte_buffer_destroy(resp);
        grpc_byte_buffer_destroy(req);
        grpc_call_unref(call);
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
                ;
        grpc_completion_queue_destroy(cq);
        grpc_channel_destroy(ch);
        return NULL;
}

/* Occurrences of needle in the file at path (0 when it cannot be read). */
static int count_in_file(const char *path, const char *needle)
{
        char buf[65536];
        FILE *f = fopen(path, "re");
        size_t n;
        int count = 0;

        if (!f)
                return 0;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        for (const char *p = buf; (p = strstr(p, needle)); p += strlen(needle))
                count++;
        return count;
}

/* Polls until cond holds; the 10 s deadline only keeps a broken build from hanging. */
#define WAIT_FOR(cond)                                                         \
        do {                                                                   \
                int64_t wait_deadline_ = now_ms() + 10000;                     \
                while (!(cond)) {                                              \
                        if (now_ms() > wait_deadline_)                         \
                                fail_msg("still false after 10 s: %s", #cond); \
                        usleep(1000);                                          \
                }                                                              \
        } while (0)

static void *run_main(void *arg)
{
        pinlet_proxy_run(arg);
        return NULL;
}

/* A proxy on a socket in a private directory, run by a thread of its own; its backend
 * is a socket nobody listens on. */
struct fx {
        char dir[32];
        char listen[256], backend[256], target[300];
        struct pinlet_proxy *p;
        pthread_t runner;
};

static void fx_init(struct fx *f)
{
        snprintf(f->dir, sizeof(f->dir), "/tmp/pinlet-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->listen, sizeof(f->listen), "%s/pinlet.sock", f->dir);
        snprintf(f->backend, sizeof(f->backend), "%s/backend.sock", f->dir);
        snprintf(f->target, sizeof(f->target), "unix:%s", f->listen);
}

static void fx_start(struct fx *f, const struct pinlet_method *methods, size_t n)
{
        struct pinlet_proxy_options o = {
                .listen_path = f->listen,
                .socket_mode = 0600,
                .socket_uid = (uid_t)-1,
                .socket_gid = (gid_t)-1,
                .runtime_endpoint = f->backend,
                .max_message_size = 4u << 20,
                .shutdown_grace_ms = 200,
                .workers = 1,
                .methods = methods,
                .n_methods = n,
        };
        struct pinlet_error *err = NULL;

        assert_int_equal(pinlet_proxy_new(&o, &f->p, &err), 0);
        assert_int_equal(pthread_create(&f->runner, NULL, run_main, f->p), 0);
}

static void test_queued_interceptors_skipped_after_grace(void **state)
{
        static const struct pinlet_method methods[] = {
                { .path = "/test.Svc/Slow", .unary = true, .intercept = slow_intercept },
        };
        char logpath[300];
        struct fx f;
        struct client cl[N_CALLS] = {};
        int saved_stderr, logfd;

        fx_init(&f);
        /* The proxy logs each call it accepts at debug level, to stderr: captured in a file
         * for the time the calls arrive. */
        snprintf(logpath, sizeof(logpath), "%s/stderr.log", f.dir);
        logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(logfd >= 0);
        saved_stderr = dup(STDERR_FILENO);
        assert_true(saved_stderr >= 0);
        assert_int_equal(dup2(logfd, STDERR_FILENO), STDERR_FILENO);
        close(logfd);
        pinlet_log_setup(PINLET_LOG_DEBUG, PINLET_LOG_TEXT);
        /* the backend is never reached: every call is refused or ended by the shutdown */
        fx_start(&f, methods, ELEMENTSOF(methods));

        for (int i = 0; i < N_CALLS; i++) {
                cl[i].target = f.target;
                assert_int_equal(pthread_create(&cl[i].thread, NULL, client_main, &cl[i]), 0);
        }
        /* The first call is in its interceptor (held at the gate); the proxy accepted every
         * other one, and with the only worker busy they wait in its queue. */
        WAIT_FOR(atomic_load(&intercepted) == 1 &&
                 count_in_file(logpath, "proxy: call /test.Svc/Slow") == N_CALLS);
        pinlet_log_setup(PINLET_LOG_INFO, PINLET_LOG_TEXT);
        assert_int_equal(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
        close(saved_stderr);

        pinlet_proxy_shutdown(f.p);
        /* Every client is answered by the end of the grace period, while the first
         * interceptor is still held. */
        for (int i = 0; i < N_CALLS; i++) {
                assert_int_equal(pthread_join(cl[i].thread, NULL), 0);
                assert_int_equal(cl[i].status, GRPC_STATUS_UNAVAILABLE);
                assert_string_equal(cl[i].details, "pinlet: shutting down");
        }
        assert_int_equal(atomic_load(&intercepted), 1);
        /* Released now, the running interceptor finishes; the queued ones must not start. */
        pthread_mutex_lock(&gate_lock);
        gate_open = true;
        pthread_cond_broadcast(&gate_cond);
        pthread_mutex_unlock(&gate_lock);
        assert_int_equal(pthread_join(f.runner, NULL), 0);
        assert_int_equal(atomic_load(&intercepted), 1);
        pinlet_proxy_free(f.p);
        assert_int_equal(access(f.listen, F_OK), -1);
        assert_int_equal(unlink(logpath), 0);
        assert_int_equal(rmdir(f.dir), 0);
}

/* Refused calls and forwarded ones (to a backend that is not there: the forward fails,
 * the after-work still runs): one run each, on the completion-queue thread. */
static void test_after_runs_once(void **state)
{
        static const struct pinlet_method methods[] = {
                { .path = "/test.Svc/Forward", .unary = true, .intercept = forward_intercept },
                { .path = "/test.Svc/Refuse", .unary = true, .intercept = refuse_intercept },
        };
        struct client cl[2 * N_CALLS] = {};
        struct fx f;

        fx_init(&f);
        fx_start(&f, methods, ELEMENTSOF(methods));
        for (int i = 0; i < 2 * N_CALLS; i++) {
                cl[i].target = f.target;
                cl[i].method = i % 2 ? "/test.Svc/Refuse" : "/test.Svc/Forward";
                assert_int_equal(pthread_create(&cl[i].thread, NULL, client_main, &cl[i]), 0);
        }
        for (int i = 0; i < 2 * N_CALLS; i++) {
                assert_int_equal(pthread_join(cl[i].thread, NULL), 0);
                if (i % 2)
                        assert_int_equal(cl[i].status, GRPC_STATUS_PERMISSION_DENIED);
                else
                        assert_int_not_equal(cl[i].status, GRPC_STATUS_OK);
        }
        pinlet_proxy_shutdown(f.p);
        assert_int_equal(pthread_join(f.runner, NULL), 0);
        pinlet_proxy_free(f.p);
        assert_int_equal(atomic_load(&afters), 2 * N_CALLS);
        assert_int_equal(atomic_load(&after_other_thread), 0);
        assert_int_equal(rmdir(f.dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_after_runs_once),
                cmocka_unit_test(test_queued_interceptors_skipped_after_grace),
        };
        int rc;

        grpc_init();
        rc = cmocka_run_group_tests(tests, NULL, NULL);
        grpc_shutdown();
        return rc;
}
