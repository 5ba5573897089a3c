/* SPDX-License-Identifier: Apache-2.0 */
#include "loadgen.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

/* The deadline each call carries (kubelet sends one on every CRI call; a proxy has to
 * propagate it, so leaving it out would flatter the proxy). */
#define CALL_TIMEOUT_S 60

int64_t lg_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
        struct timespec ts = { .tv_sec = t / 1000000000, .tv_nsec = t % 1000000000 };

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

static double process_cpu_ms(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

/* What every call of one run shares, read-only while the run lasts. */
struct shared {
        grpc_channel *ch;
        grpc_slice method;
        grpc_slice request;
        grpc_metadata *md;
        size_t n_md;
        int64_t warm_end_ns, end_ns;
        uint64_t max_calls; /* 0: run until end_ns */
        atomic_uint_fast64_t started;
        pthread_mutex_t lock; /* guards finished, for the coordinator's wait */
        pthread_cond_t cond;
        unsigned finished; /* worker threads done */
};

/* Claims the right to start one more call (always granted without a call limit). */
static bool may_start(struct shared *sh)
{
        return sh->max_calls == 0 || atomic_fetch_add(&sh->started, 1) < sh->max_calls;
}

struct worker;

/* One call in flight; reused for the next call when it completes. */
struct slot {
        struct worker *w;
        grpc_call *call;
        grpc_byte_buffer *req;
        grpc_byte_buffer *resp;
        grpc_metadata_array initial_md, trailing_md;
        grpc_status_code status;
        grpc_slice details;
        int64_t start_ns;
};

struct worker {
        pthread_t thread;
        struct shared *sh;
        grpc_completion_queue *cq;
        struct slot *slots;
        size_t n_slots;
        uint32_t *lat_us; /* latencies of calls completed inside the window */
        size_t n_lat, cap_lat;
        uint64_t ok, errors, resp_bytes;
        int first_error;
        char first_error_msg[200];
        int rc;
};

static int slot_start(struct slot *s)
{
        const struct shared *sh = s->w->sh;
        grpc_op ops[6];
        gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                             gpr_time_from_seconds(CALL_TIMEOUT_S, GPR_TIMESPAN));
        grpc_slice req = sh->request;

        s->call = grpc_channel_create_call(sh->ch, NULL, GRPC_PROPAGATE_DEFAULTS, s->w->cq,
                                           sh->method, NULL, deadline, NULL);
        if (!s->call)
                return -EIO;
        /* A byte buffer per call: it only takes a reference on the shared request slice. */
        s->req = grpc_raw_byte_buffer_create(&req, 1);
        s->resp = NULL;
        grpc_metadata_array_init(&s->initial_md);
        grpc_metadata_array_init(&s->trailing_md);
        s->details = grpc_empty_slice();
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[0].data.send_initial_metadata.count = sh->n_md;
        ops[0].data.send_initial_metadata.metadata = sh->md;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = s->req;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &s->resp;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
        ops[5].data.recv_status_on_client.status = &s->status;
        ops[5].data.recv_status_on_client.status_details = &s->details;
        s->start_ns = lg_now_ns();
        if (grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK) {
                grpc_call_unref(s->call);
                grpc_byte_buffer_destroy(s->req);
                s->call = NULL;
                return -EIO;
        }
        return 0;
}

static void slot_finish(struct slot *s, int64_t now)
{
        struct worker *w = s->w;
        bool in_window = now >= w->sh->warm_end_ns && now <= w->sh->end_ns;

        if (in_window) {
                if (s->status == GRPC_STATUS_OK) {
                        w->ok++;
                        if (s->resp)
                                w->resp_bytes += grpc_byte_buffer_length(s->resp);
                        if (w->n_lat == w->cap_lat) {
                                size_t cap = w->cap_lat ? w->cap_lat * 2 : 4096;
                                uint32_t *l = realloc(w->lat_us, cap * sizeof(*l));
                                if (l) {
                                        w->lat_us = l;
                                        w->cap_lat = cap;
                                }
                        }
                        if (w->n_lat < w->cap_lat)
                                w->lat_us[w->n_lat++] = (uint32_t)((now - s->start_ns) / 1000);
                } else {
                        w->errors++;
                }
        }
        if (s->status != GRPC_STATUS_OK && !w->first_error) {
                char *d = grpc_slice_to_c_string(s->details);
                w->first_error = s->status;
                snprintf(w->first_error_msg, sizeof(w->first_error_msg), "%s", d);
                gpr_free(d);
        }
        if (s->resp)
                grpc_byte_buffer_destroy(s->resp);
        grpc_byte_buffer_destroy(s->req);
        grpc_metadata_array_destroy(&s->initial_md);
        grpc_metadata_array_destroy(&s->trailing_md);
        grpc_slice_unref(s->details);
        grpc_call_unref(s->call);
        s->call = NULL;
}

static void *worker_main(void *arg)
{
        struct worker *w = arg;
        size_t active = 0;

        for (size_t i = 0; i < w->n_slots; i++) {
                w->slots[i].w = w;
                if (!may_start(w->sh))
                        break;
                if (slot_start(&w->slots[i]) < 0) {
                        w->rc = -EIO;
                        break;
                }
                active++;
        }
        while (active > 0) {
                grpc_event ev = grpc_completion_queue_next(
                        w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
                struct slot *s;
                int64_t now;

                if (ev.type != GRPC_OP_COMPLETE)
                        break;
                s = ev.tag;
                now = lg_now_ns();
                slot_finish(s, now);
                /* One batch with RECV_STATUS_ON_CLIENT always succeeds once started. */
                if (now < w->sh->end_ns && w->rc == 0 && may_start(w->sh) && slot_start(s) == 0)
                        continue;
                active--;
        }
        pthread_mutex_lock(&w->sh->lock);
        w->sh->finished++;
        pthread_cond_signal(&w->sh->cond);
        pthread_mutex_unlock(&w->sh->lock);
        return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const uint32_t *v, size_t n, double p)
{
        size_t k;

        if (n == 0)
                return 0;
        k = (size_t)(p / 100.0 * (double)n + 0.999999);
        if (k < 1)
                k = 1;
        if (k > n)
                k = n;
        return v[k - 1];
}

static void shared_init(struct shared *sh, grpc_channel *ch, const struct lg_workload *w)
{
        memset(sh, 0, sizeof(*sh));
        sh->ch = ch;
        sh->method = grpc_slice_from_copied_string(w->method);
        sh->request = grpc_slice_from_copied_buffer((const char *)w->request, w->request_len);
        sh->n_md = w->n_md;
        sh->md = w->n_md ? calloc(w->n_md, sizeof(*sh->md)) : NULL;
        for (size_t i = 0; i < w->n_md && sh->md; i++) {
                sh->md[i].key = grpc_slice_from_copied_string(w->md[i].key);
                sh->md[i].value = grpc_slice_from_copied_string(w->md[i].value);
        }
        if (!sh->md)
                sh->n_md = 0;
        atomic_init(&sh->started, 0);
        pthread_mutex_init(&sh->lock, NULL);
        {
                pthread_condattr_t a;
                pthread_condattr_init(&a);
                pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
                pthread_cond_init(&sh->cond, &a);
                pthread_condattr_destroy(&a);
        }
}

static void shared_done(struct shared *sh)
{
        for (size_t i = 0; i < sh->n_md; i++) {
                grpc_slice_unref(sh->md[i].key);
                grpc_slice_unref(sh->md[i].value);
        }
        free(sh->md);
        grpc_slice_unref(sh->method);
        grpc_slice_unref(sh->request);
        pthread_mutex_destroy(&sh->lock);
        pthread_cond_destroy(&sh->cond);
}

static void drain_cq(grpc_completion_queue *cq)
{
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
                ;
        grpc_completion_queue_destroy(cq);
}

int lg_run(grpc_channel *ch, const struct lg_workload *wl, unsigned concurrency, unsigned threads,
           int64_t warmup_ms, int64_t measure_ms, uint64_t max_calls, lg_window_fn window,
           void *userdata, struct lg_result *ret)
{
        int64_t end_ns;
        struct shared sh;
        struct worker *ws;
        struct slot *slots;
        size_t n_lat = 0, k = 0;
        uint32_t *all;
        double cpu0, cpu1, sum = 0;
        uint64_t bytes = 0;
        int rc = 0;

        if (concurrency == 0)
                return -EINVAL;
        if (threads == 0)
                threads = 1;
        if (threads > concurrency)
                threads = concurrency;
        memset(ret, 0, sizeof(*ret));
        shared_init(&sh, ch, wl);
        ws = calloc(threads, sizeof(*ws));
        slots = calloc(concurrency, sizeof(*slots));
        if (!ws || !slots) {
                free(ws);
                free(slots);
                shared_done(&sh);
                return -ENOMEM;
        }
        sh.warm_end_ns = lg_now_ns() + warmup_ms * 1000000;
        sh.end_ns = sh.warm_end_ns + measure_ms * 1000000;
        sh.max_calls = max_calls;
        for (unsigned t = 0, off = 0; t < threads; t++) {
                unsigned n = concurrency / threads + (t < concurrency % threads);

                ws[t].sh = &sh;
                ws[t].cq = grpc_completion_queue_create_for_next(NULL);
                ws[t].slots = slots + off;
                ws[t].n_slots = n;
                off += n;
        }
        for (unsigned t = 0; t < threads; t++)
                if (pthread_create(&ws[t].thread, NULL, worker_main, &ws[t]) != 0)
                        abort(); /* a benchmark without its threads is meaningless */
        sleep_until_ns(sh.warm_end_ns);
        cpu0 = process_cpu_ms();
        if (window)
                window(userdata, 0);
        /* Until the window ends, or earlier when every thread is done (call limit). */
        pthread_mutex_lock(&sh.lock);
        while (sh.finished < threads) {
                struct timespec ts = { .tv_sec = sh.end_ns / 1000000000,
                                       .tv_nsec = sh.end_ns % 1000000000 };
                if (pthread_cond_timedwait(&sh.cond, &sh.lock, &ts) == ETIMEDOUT)
                        break;
        }
        pthread_mutex_unlock(&sh.lock);
        end_ns = lg_now_ns() < sh.end_ns ? lg_now_ns() : sh.end_ns;
        if (window)
                window(userdata, 1);
        cpu1 = process_cpu_ms();
        for (unsigned t = 0; t < threads; t++) {
                pthread_join(ws[t].thread, NULL);
                drain_cq(ws[t].cq);
                n_lat += ws[t].n_lat;
                ret->calls += ws[t].ok;
                ret->errors += ws[t].errors;
                bytes += ws[t].resp_bytes;
                if (ws[t].rc < 0)
                        rc = ws[t].rc;
                if (ws[t].first_error && !ret->first_error) {
                        ret->first_error = ws[t].first_error;
                        memcpy(ret->first_error_msg, ws[t].first_error_msg,
                               sizeof(ret->first_error_msg));
                }
        }
        all = malloc((n_lat ? n_lat : 1) * sizeof(*all));
        for (unsigned t = 0; t < threads; t++) {
                if (all && ws[t].n_lat)
                        memcpy(all + k, ws[t].lat_us, ws[t].n_lat * sizeof(*all));
                k += ws[t].n_lat;
                free(ws[t].lat_us);
        }
        if (all) {
                qsort(all, n_lat, sizeof(*all), cmp_u32);
                for (size_t i = 0; i < n_lat; i++)
                        sum += all[i];
                ret->p50_us = percentile(all, n_lat, 50);
                ret->p99_us = percentile(all, n_lat, 99);
                ret->mean_us = n_lat ? sum / (double)n_lat : 0;
        }
        free(all);
        ret->seconds = (double)(end_ns - sh.warm_end_ns) / 1e9;
        ret->resp_bytes = ret->calls ? (double)bytes / (double)ret->calls : 0;
        ret->client_cpu_ms = cpu1 - cpu0;
        free(ws);
        free(slots);
        shared_done(&sh);
        return rc;
}

grpc_channel *lg_connect(const char *target, const struct lg_workload *w, int64_t wait_ms,
                         char *ret_err, size_t err_size, size_t *ret_resp_len)
{
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        grpc_arg args[1] = { { .type = GRPC_ARG_INTEGER,
                               .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                               .value.integer = 64 << 20 } };
        grpc_channel_args cargs = { .num_args = 1, .args = args };
        grpc_channel *ch = grpc_channel_create(target, creds, &cargs);
        int64_t until = lg_now_ns() + wait_ms * 1000000;
        struct lg_result r;

        grpc_channel_credentials_release(creds);
        if (!ch) {
                snprintf(ret_err, err_size, "cannot create a channel to %s", target);
                return NULL;
        }
        for (;;) {
                /* A very short run proves the target answers; retried while it starts. */
                if (lg_run(ch, w, 1, 1, 0, 50, 0, NULL, NULL, &r) == 0 && r.calls > 0 &&
                    r.errors == 0) {
                        if (ret_resp_len)
                                *ret_resp_len = (size_t)r.resp_bytes;
                        return ch;
                }
                if (lg_now_ns() > until)
                        break;
                sleep_until_ns(lg_now_ns() + 100000000);
        }
        snprintf(ret_err, err_size, "%s: %s %s (%d)", target, w->method,
                 r.first_error ? r.first_error_msg : "no successful call", r.first_error);
        grpc_channel_destroy(ch);
        return NULL;
}
