/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pinlet_bench: unary CRI load against several targets in one run, so that proxies are
 * compared with the backend they front as ratios measured minutes apart at most (absolute
 * rates drift by up to 50% between rounds on the shared 2-core machines this runs on).
 *
 *   pinlet_bench run --name NAME --out DIR --target direct=unix:/a --target pinlet=unix:/b
 *                    [--pid pinlet=PID]... [--backend-pid PID] [--workload W]...
 *                    [--md W:key=value]... [--concurrency 1,16,64] [--rounds 3]
 *                    [--warmup-ms 300] [--measure-ms 2000] [--threads 1] [--calls N]
 *   pinlet_bench idle --pid PID [--seconds 5] [--out FILE.json]
 *   pinlet_bench setup --target unix:/sock --image REF [--containers 100] [--labels 4]
 *   pinlet_bench teardown --target unix:/sock --pod-id ID
 *
 * Workloads: version (RuntimeService/Version, VersionRequest{version: "v1"}),
 * list (RuntimeService/ListContainers, empty request), image-status=REF
 * (ImageService/ImageStatus by reference), pull=REF (ImageService/PullImage).
 *
 * Order of a run: for each round, for each workload, for each concurrency, every target
 * in turn (the first target is the baseline, "direct"), so the runs compared with each
 * other are seconds apart. Each target has one channel for the whole process.
 *
 * For every run: OK calls/s, p50/p99 latency, the CPU (utime+stime) of the target's
 * processes (--pid; children included: nginx's workers) and of the backend per 1000 calls,
 * VmRSS/VmHWM. Output: NAME-raw.csv, NAME-raw.json, NAME-summary.md, NAME-summary.json.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <jansson.h>

#include "cri_setup.h"
#include "loadgen.h"
#include "procstat.h"

#define MAX_TARGETS   8
#define MAX_WORKLOADS 8
#define MAX_CONC      8
#define MAX_ROUNDS    20
#define MAX_MD        8

struct target {
        char name[32];
        const char *uri;
        struct proc_set procs;
        grpc_channel *ch;
};

struct workload {
        struct lg_workload lg;
        char name[32];
        char method[128];
        uint8_t req[1024];
        struct lg_md md[MAX_MD];
        size_t resp_len; /* size of the baseline's answer, checked before running */
};

/* One measured run. */
struct sample {
        bool done;
        struct lg_result r;
        double rate;                         /* OK calls per second */
        double proxy_cpu_ms, backend_cpu_ms; /* inside the window */
        uint64_t rss_kib, hwm_kib;
        size_t n_procs;
};

struct bench {
        const char *name, *out;
        struct target t[MAX_TARGETS];
        size_t n_t;
        struct workload w[MAX_WORKLOADS];
        size_t n_w;
        unsigned conc[MAX_CONC];
        size_t n_conc;
        unsigned rounds, threads;
        int64_t warmup_ms, measure_ms;
        uint64_t max_calls;
        struct proc_set backend;
        struct sample s[MAX_WORKLOADS][MAX_CONC][MAX_TARGETS][MAX_ROUNDS];
};

/* Window callback state: samples of the target's and the backend's processes. */
struct window_state {
        const struct proc_set *target, *backend;
        struct proc_sample t0, t1, b0, b1;
};

static void on_window(void *userdata, int at_end)
{
        struct window_state *ws = userdata;

        proc_set_sample(ws->target, false, at_end ? &ws->t1 : &ws->t0);
        proc_set_sample(ws->backend, false, at_end ? &ws->b1 : &ws->b0);
}

/* Protobuf string field 1 of a message wrapped in field 1: ImageSpec inside a request. */
static size_t encode_image_spec(uint8_t *buf, size_t size, const char *ref)
{
        size_t n = strlen(ref);

        if (n > 120 || n + 4 > size)
                return 0;
        buf[0] = 0x0a;             /* field 1 (image), length-delimited */
        buf[1] = (uint8_t)(n + 2); /* ImageSpec length */
        buf[2] = 0x0a;             /* ImageSpec.image */
        buf[3] = (uint8_t)n;
        memcpy(buf + 4, ref, n);
        return n + 4;
}

static int add_workload(struct bench *b, const char *spec)
{
        struct workload *w;
        const char *arg = strchr(spec, '=');
        size_t nlen = arg ? (size_t)(arg - spec) : strlen(spec);

        if (b->n_w >= MAX_WORKLOADS || nlen == 0 || nlen >= sizeof(w->name))
                return -EINVAL;
        w = &b->w[b->n_w];
        memset(w, 0, sizeof(*w));
        memcpy(w->name, spec, nlen);
        if (strcmp(w->name, "version") == 0 && !arg) {
                snprintf(w->method, sizeof(w->method), "/runtime.v1.RuntimeService/Version");
                memcpy(w->req, "\x0a\x02v1", 4); /* VersionRequest.version = "v1" */
                w->lg.request_len = 4;
        } else if (strcmp(w->name, "list") == 0 && !arg) {
                /* ListContainersRequest{}: an empty message, every container. */
                snprintf(w->method, sizeof(w->method), "/runtime.v1.RuntimeService/ListContainers");
        } else if (strcmp(w->name, "image-status") == 0 && arg) {
                snprintf(w->method, sizeof(w->method), "/runtime.v1.ImageService/ImageStatus");
                w->lg.request_len = encode_image_spec(w->req, sizeof(w->req), arg + 1);
                if (!w->lg.request_len)
                        return -EINVAL;
        } else if (strcmp(w->name, "pull") == 0 && arg) {
                snprintf(w->method, sizeof(w->method), "/runtime.v1.ImageService/PullImage");
                w->lg.request_len = encode_image_spec(w->req, sizeof(w->req), arg + 1);
                if (!w->lg.request_len)
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        w->lg.name = w->name;
        w->lg.method = w->method;
        w->lg.request = w->req;
        w->lg.md = w->md;
        b->n_w++;
        return 0;
}

/* --md WORKLOAD:key=value */
static int add_md(struct bench *b, char *spec)
{
        char *colon = strchr(spec, ':'), *eq;

        if (!colon)
                return -EINVAL;
        *colon = 0;
        eq = strchr(colon + 1, '=');
        if (!eq)
                return -EINVAL;
        *eq = 0;
        for (size_t i = 0; i < b->n_w; i++) {
                struct workload *w = &b->w[i];
                if (strcmp(w->name, spec) != 0)
                        continue;
                if (w->lg.n_md >= MAX_MD)
                        return -E2BIG;
                w->md[w->lg.n_md].key = colon + 1;
                w->md[w->lg.n_md].value = eq + 1;
                w->lg.n_md++;
                return 0;
        }
        return -ENOENT;
}

static struct target *find_target(struct bench *b, const char *name)
{
        for (size_t i = 0; i < b->n_t; i++)
                if (strcmp(b->t[i].name, name) == 0)
                        return &b->t[i];
        return NULL;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
        if (n == 0)
                return NAN;
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double per_1000(double ms, uint64_t calls)
{
        return calls ? ms * 1000.0 / (double)calls : NAN;
}

static void run_one(struct bench *b, size_t wi, size_t ci, size_t ti, size_t round)
{
        struct target *t = &b->t[ti];
        struct sample *s = &b->s[wi][ci][ti][round];
        struct window_state ws = { .target = &t->procs, .backend = &b->backend };
        struct proc_sample after;
        int ret;

        ret = lg_run(t->ch, &b->w[wi].lg, b->conc[ci], b->threads, b->warmup_ms, b->measure_ms,
                     b->max_calls, on_window, &ws, &s->r);
        if (ret < 0)
                fprintf(stderr, "%s: run failed: %s\n", t->name, strerror(-ret));
        s->done = ret == 0;
        s->rate = s->r.seconds > 0 ? (double)s->r.calls / s->r.seconds : 0;
        s->proxy_cpu_ms = proc_ticks_ms(ws.t1.cpu_ticks - ws.t0.cpu_ticks);
        s->backend_cpu_ms = proc_ticks_ms(ws.b1.cpu_ticks - ws.b0.cpu_ticks);
        proc_set_sample(&t->procs, false, &after);
        s->rss_kib = after.rss_kib;
        s->hwm_kib = after.hwm_kib;
        s->n_procs = after.n_alive;
        if (t->procs.n && after.n_alive != t->procs.n)
                fprintf(stderr, "WARNING: %s: %zu of %zu processes gone\n", t->name,
                        t->procs.n - after.n_alive, t->procs.n);
        {
                char cpu[32] = "-";

                if (t->procs.n)
                        snprintf(cpu, sizeof(cpu), "%.1f", per_1000(s->proxy_cpu_ms, s->r.calls));
                fprintf(stderr,
                        "[%s r%zu] %-7s c=%-3u %-8s %8.0f calls/s p50 %6.0f us p99 %7.0f us"
                        " cpu %6s ms/1k backend %6.1f ms/1k client %5.1f ms/1k%s\n",
                        b->name, round + 1, b->w[wi].name, b->conc[ci], t->name, s->rate,
                        s->r.p50_us, s->r.p99_us, cpu, per_1000(s->backend_cpu_ms, s->r.calls),
                        per_1000(s->r.client_cpu_ms, s->r.calls), s->r.errors ? " ERRORS" : "");
        }
        if (s->r.errors)
                fprintf(stderr, "  %" PRIu64 " errors, first: status %d %s\n", s->r.errors,
                        s->r.first_error, s->r.first_error_msg);
}

static FILE *open_out(const struct bench *b, const char *suffix)
{
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s-%s", b->out, b->name, suffix);
        f = fopen(path, "we");
        if (!f)
                fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        return f;
}

static void write_raw(const struct bench *b)
{
        FILE *csv = open_out(b, "raw.csv");
        json_t *arr = json_array();

        if (csv)
                fprintf(csv, "backend,round,workload,concurrency,target,calls,errors,seconds,"
                             "calls_per_s,p50_us,p99_us,mean_us,resp_bytes,proxy_cpu_ms,"
                             "proxy_cpu_ms_per_1000,backend_cpu_ms_per_1000,"
                             "client_cpu_ms_per_1000,rss_kib,hwm_kib,procs\n");
        for (size_t r = 0; r < b->rounds; r++)
                for (size_t wi = 0; wi < b->n_w; wi++)
                        for (size_t ci = 0; ci < b->n_conc; ci++)
                                for (size_t ti = 0; ti < b->n_t; ti++) {
                                        const struct sample *s = &b->s[wi][ci][ti][r];
                                        double pc = per_1000(s->proxy_cpu_ms, s->r.calls);
                                        double bc = per_1000(s->backend_cpu_ms, s->r.calls);
                                        double cc = per_1000(s->r.client_cpu_ms, s->r.calls);
                                        bool has_procs = b->t[ti].procs.n > 0;

                                        if (!s->done)
                                                continue;
                                        if (csv)
                                                fprintf(csv,
                                                        "%s,%zu,%s,%u,%s,%" PRIu64 ",%" PRIu64
                                                        ",%.3f,%.1f,%.0f,%.0f,%.1f,%.0f,%.1f,"
                                                        "%.2f,%.2f,%.2f,%" PRIu64 ",%" PRIu64
                                                        ",%zu\n",
                                                        b->name, r + 1, b->w[wi].name, b->conc[ci],
                                                        b->t[ti].name, s->r.calls, s->r.errors,
                                                        s->r.seconds, s->rate, s->r.p50_us,
                                                        s->r.p99_us, s->r.mean_us, s->r.resp_bytes,
                                                        s->proxy_cpu_ms, has_procs ? pc : NAN, bc,
                                                        cc, s->rss_kib, s->hwm_kib, s->n_procs);
                                        json_array_append_new(
                                                arr,
                                                json_pack("{s:s,s:I,s:s,s:I,s:s,s:I,s:I,s:f,"
                                                          "s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,"
                                                          "s:I,s:I,s:I}",
                                                          "backend", b->name, "round",
                                                          (json_int_t)r + 1, "workload",
                                                          b->w[wi].name, "concurrency",
                                                          (json_int_t)b->conc[ci], "target",
                                                          b->t[ti].name, "calls",
                                                          (json_int_t)s->r.calls, "errors",
                                                          (json_int_t)s->r.errors, "seconds",
                                                          s->r.seconds, "calls_per_s", s->rate,
                                                          "p50_us", s->r.p50_us, "p99_us",
                                                          s->r.p99_us, "mean_us", s->r.mean_us,
                                                          "resp_bytes", s->r.resp_bytes,
                                                          "proxy_cpu_ms", s->proxy_cpu_ms,
                                                          "proxy_cpu_ms_per_1000",
                                                          has_procs && isfinite(pc) ? pc : -1.0,
                                                          "backend_cpu_ms_per_1000",
                                                          isfinite(bc) ? bc : -1.0,
                                                          "client_cpu_ms_per_1000",
                                                          isfinite(cc) ? cc : -1.0, "rss_kib",
                                                          (json_int_t)s->rss_kib, "hwm_kib",
                                                          (json_int_t)s->hwm_kib, "procs",
                                                          (json_int_t)s->n_procs));
                                }
        if (csv)
                fclose(csv);
        {
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s-raw.json", b->out, b->name);
                if (json_dump_file(arr, path, JSON_INDENT(1)) < 0)
                        fprintf(stderr, "cannot write %s\n", path);
        }
        json_decref(arr);
}

/* Medians over rounds for one (workload, concurrency, target). */
struct summary {
        double rate, ratio, p50, p99, p50_added, cpu, backend_cpu, client_cpu;
        double rss_mib, hwm_mib; /* maxima over rounds */
        uint64_t errors;
        size_t n;
};

static void summarize(const struct bench *b, size_t wi, size_t ci, size_t ti, struct summary *sum)
{
        double rate[MAX_ROUNDS], ratio[MAX_ROUNDS], p50[MAX_ROUNDS], p99[MAX_ROUNDS],
                add[MAX_ROUNDS], cpu[MAX_ROUNDS], bcpu[MAX_ROUNDS], ccpu[MAX_ROUNDS];
        size_t n = 0, nr = 0;

        memset(sum, 0, sizeof(*sum));
        for (size_t r = 0; r < b->rounds; r++) {
                const struct sample *s = &b->s[wi][ci][ti][r];
                const struct sample *base = &b->s[wi][ci][0][r];

                if (!s->done || s->r.calls == 0)
                        continue;
                rate[n] = s->rate;
                p50[n] = s->r.p50_us;
                p99[n] = s->r.p99_us;
                cpu[n] = per_1000(s->proxy_cpu_ms, s->r.calls);
                bcpu[n] = per_1000(s->backend_cpu_ms, s->r.calls);
                ccpu[n] = per_1000(s->r.client_cpu_ms, s->r.calls);
                sum->errors += s->r.errors;
                if ((double)s->rss_kib / 1024.0 > sum->rss_mib)
                        sum->rss_mib = (double)s->rss_kib / 1024.0;
                if ((double)s->hwm_kib / 1024.0 > sum->hwm_mib)
                        sum->hwm_mib = (double)s->hwm_kib / 1024.0;
                /* Ratios pair runs of the same round: seconds apart, same drift. */
                if (base->done && base->rate > 0) {
                        ratio[nr] = s->rate / base->rate;
                        add[nr] = s->r.p50_us - base->r.p50_us;
                        nr++;
                }
                n++;
        }
        sum->n = n;
        sum->rate = median(rate, n);
        sum->p50 = median(p50, n);
        sum->p99 = median(p99, n);
        sum->cpu = median(cpu, n);
        sum->backend_cpu = median(bcpu, n);
        sum->client_cpu = median(ccpu, n);
        sum->ratio = median(ratio, nr);
        sum->p50_added = median(add, nr);
}

static void fmt(char *buf, size_t size, const char *f, double v)
{
        if (isfinite(v))
                snprintf(buf, size, f, v);
        else
                snprintf(buf, size, "-");
}

static void write_summary(const struct bench *b)
{
        FILE *md = open_out(b, "summary.md");
        json_t *arr = json_array();
        char path[4096];

        if (md) {
                fprintf(md, "### Backend `%s`\n\n", b->name);
                fprintf(md,
                        "%u round(s) x %zu target(s), %" PRId64 " ms measured after %" PRId64
                        " ms warm-up per run, %u client thread(s), one channel per target. "
                        "Medians over rounds; ratios and added latency are paired with the "
                        "baseline (`%s`) of the same round. CPU is utime+stime per 1000 OK "
                        "calls; RSS/HWM are the largest seen (nginx: master + workers).\n\n",
                        b->rounds, b->n_t, b->measure_ms, b->warmup_ms, b->threads, b->t[0].name);
        }
        for (size_t wi = 0; wi < b->n_w; wi++) {
                if (md) {
                        fprintf(md, "#### `%s` (%s, response %zu bytes)\n\n", b->w[wi].name,
                                b->w[wi].method, b->w[wi].resp_len);
                        fprintf(md,
                                "| conc | target | calls/s | x %s | p50 us | +p50 us | "
                                "p99 us | proxy CPU ms/1k | backend CPU ms/1k | "
                                "client CPU ms/1k | RSS MiB | HWM MiB | errors |\n",
                                b->t[0].name);
                        fprintf(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                                    "---:|---:|\n");
                }
                for (size_t ci = 0; ci < b->n_conc; ci++)
                        for (size_t ti = 0; ti < b->n_t; ti++) {
                                struct summary s;
                                bool procs = b->t[ti].procs.n > 0;
                                char rate[32], ratio[32], p50[32], add[32], p99[32], cpu[32],
                                        bcpu[32], ccpu[32], rss[32], hwm[32];

                                summarize(b, wi, ci, ti, &s);
                                fmt(rate, sizeof(rate), "%.0f", s.rate);
                                fmt(ratio, sizeof(ratio), "%.2f", s.ratio);
                                fmt(p50, sizeof(p50), "%.0f", s.p50);
                                fmt(add, sizeof(add), "%+.0f", ti ? s.p50_added : NAN);
                                fmt(p99, sizeof(p99), "%.0f", s.p99);
                                fmt(cpu, sizeof(cpu), "%.1f", procs ? s.cpu : NAN);
                                fmt(bcpu, sizeof(bcpu), "%.1f", b->backend.n ? s.backend_cpu : NAN);
                                fmt(ccpu, sizeof(ccpu), "%.1f", s.client_cpu);
                                fmt(rss, sizeof(rss), "%.1f", procs ? s.rss_mib : NAN);
                                fmt(hwm, sizeof(hwm), "%.1f", procs ? s.hwm_mib : NAN);
                                if (md)
                                        fprintf(md,
                                                "| %u | %s | %s | %s | %s | %s | %s | %s | %s "
                                                "| %s | %s | %s | %" PRIu64 " |\n",
                                                b->conc[ci], b->t[ti].name, rate, ratio, p50, add,
                                                p99, cpu, bcpu, ccpu, rss, hwm, s.errors);
                                json_array_append_new(
                                        arr,
                                        json_pack("{s:s,s:s,s:s,s:I,s:s,s:I,s:f,s:f,s:f,s:f,"
                                                  "s:f,s:f,s:f,s:f,s:f,s:f,s:I,s:I}",
                                                  "backend", b->name, "workload", b->w[wi].name,
                                                  "method", b->w[wi].method, "resp_bytes",
                                                  (json_int_t)b->w[wi].resp_len, "target",
                                                  b->t[ti].name, "concurrency",
                                                  (json_int_t)b->conc[ci], "calls_per_s",
                                                  isfinite(s.rate) ? s.rate : -1.0,
                                                  "ratio_vs_baseline",
                                                  isfinite(s.ratio) ? s.ratio : -1.0, "p50_us",
                                                  isfinite(s.p50) ? s.p50 : -1.0, "p99_us",
                                                  isfinite(s.p99) ? s.p99 : -1.0, "p50_added_us",
                                                  isfinite(s.p50_added) ? s.p50_added : 0.0,
                                                  "proxy_cpu_ms_per_1000",
                                                  procs && isfinite(s.cpu) ? s.cpu : -1.0,
                                                  "backend_cpu_ms_per_1000",
                                                  isfinite(s.backend_cpu) ? s.backend_cpu : -1.0,
                                                  "client_cpu_ms_per_1000",
                                                  isfinite(s.client_cpu) ? s.client_cpu : -1.0,
                                                  "rss_mib", procs ? s.rss_mib : -1.0, "hwm_mib",
                                                  procs ? s.hwm_mib : -1.0, "errors",
                                                  (json_int_t)s.errors, "rounds", (json_int_t)s.n));
                        }
                if (md)
                        fprintf(md, "\n");
        }
        if (md)
                fclose(md);
        snprintf(path, sizeof(path), "%s/%s-summary.json", b->out, b->name);
        if (json_dump_file(arr, path, JSON_INDENT(1)) < 0)
                fprintf(stderr, "cannot write %s\n", path);
        json_decref(arr);
}

static int parse_conc(struct bench *b, const char *s)
{
        char *copy = strdup(s), *save = NULL;

        b->n_conc = 0;
        if (!copy)
                return -ENOMEM;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                long v = strtol(tok, NULL, 10);
                if (v < 1 || v > 4096 || b->n_conc >= MAX_CONC) {
                        free(copy);
                        return -EINVAL;
                }
                b->conc[b->n_conc++] = (unsigned)v;
        }
        free(copy);
        return b->n_conc ? 0 : -EINVAL;
}

static int usage(void)
{
        fprintf(stderr,
                "usage: pinlet_bench run --name NAME --out DIR --target NAME=URI... "
                "[--pid NAME=PID]... [--backend-pid PID]\n"
                "                        [--workload version|list|image-status=REF|pull=REF]... "
                "[--md WORKLOAD:key=value]...\n"
                "                        [--concurrency 1,16,64] [--rounds 3] "
                "[--warmup-ms 300] [--measure-ms 2000] [--threads 1]\n"
                "                        [--calls N (instead of a duration)]\n"
                "       pinlet_bench idle --pid PID [--seconds 5] [--out FILE.json]\n"
                "       pinlet_bench setup --target URI --image REF [--containers 100] "
                "[--labels 4]\n"
                "       pinlet_bench teardown --target URI --pod-id ID\n");
        return 2;
}

static int cmd_run(int argc, char **argv)
{
        static const struct option opts[] = {
                { "name", required_argument, NULL, 'n' },
                { "out", required_argument, NULL, 'o' },
                { "target", required_argument, NULL, 't' },
                { "pid", required_argument, NULL, 'p' },
                { "backend-pid", required_argument, NULL, 'b' },
                { "workload", required_argument, NULL, 'w' },
                { "md", required_argument, NULL, 'm' },
                { "concurrency", required_argument, NULL, 'c' },
                { "rounds", required_argument, NULL, 'r' },
                { "warmup-ms", required_argument, NULL, 'W' },
                { "measure-ms", required_argument, NULL, 'M' },
                { "threads", required_argument, NULL, 'T' },
                { "calls", required_argument, NULL, 'C' },
                {},
        };
        struct bench *b = calloc(1, sizeof(*b));
        char *md_specs[32];
        size_t n_md = 0;
        int c, rc = 1;

        if (!b)
                return 1;
        b->rounds = 3;
        b->threads = 1;
        b->warmup_ms = 300;
        b->measure_ms = 2000;
        parse_conc(b, "1,16,64");
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'n':
                        b->name = optarg;
                        break;
                case 'o':
                        b->out = optarg;
                        break;
                case 't': {
                        char *eq = strchr(optarg, '=');
                        struct target *t;
                        if (!eq || b->n_t >= MAX_TARGETS ||
                            (size_t)(eq - optarg) >= sizeof(t->name))
                                goto usage;
                        t = &b->t[b->n_t++];
                        memcpy(t->name, optarg, (size_t)(eq - optarg));
                        t->uri = eq + 1;
                        break;
                }
                case 'p': {
                        char *eq = strchr(optarg, '=');
                        struct target *t;
                        if (!eq)
                                goto usage;
                        *eq = 0;
                        t = find_target(b, optarg);
                        if (!t) {
                                fprintf(stderr,
                                        "--pid %s: no such target (give --target "
                                        "first)\n",
                                        optarg);
                                goto out;
                        }
                        if (proc_set_add(&t->procs, (pid_t)atoi(eq + 1), true) < 0) {
                                fprintf(stderr, "--pid %s=%s: no such process\n", optarg, eq + 1);
                                goto out;
                        }
                        break;
                }
                case 'b':
                        if (proc_set_add(&b->backend, (pid_t)atoi(optarg), false) < 0) {
                                fprintf(stderr, "--backend-pid %s: no such process\n", optarg);
                                goto out;
                        }
                        break;
                case 'w':
                        if (add_workload(b, optarg) < 0) {
                                fprintf(stderr, "bad --workload %s\n", optarg);
                                goto out;
                        }
                        break;
                case 'm':
                        if (n_md >= 32)
                                goto usage;
                        md_specs[n_md++] = optarg;
                        break;
                case 'c':
                        if (parse_conc(b, optarg) < 0)
                                goto usage;
                        break;
                case 'r':
                        b->rounds = (unsigned)atoi(optarg);
                        break;
                case 'W':
                        b->warmup_ms = atoll(optarg);
                        break;
                case 'M':
                        b->measure_ms = atoll(optarg);
                        break;
                case 'T':
                        b->threads = (unsigned)atoi(optarg);
                        break;
                case 'C':
                        /* A fixed number of calls (profiling): the window ends with the
                         * last call, 10 minutes at most. */
                        b->max_calls = strtoull(optarg, NULL, 10);
                        b->measure_ms = 600000;
                        break;
                default:
                        goto usage;
                }
        }
        if (!b->name || !b->out || b->n_t == 0 || b->rounds < 1 || b->rounds > MAX_ROUNDS ||
            b->measure_ms < 100 || b->warmup_ms < 0 || b->threads < 1)
                goto usage;
        if (b->n_w == 0)
                add_workload(b, "version");
        for (size_t i = 0; i < n_md; i++)
                if (add_md(b, md_specs[i]) < 0) {
                        fprintf(stderr, "bad --md (WORKLOAD:key=value, after --workload)\n");
                        goto out;
                }
        mkdir(b->out, 0755);

        grpc_init();
        for (size_t ti = 0; ti < b->n_t; ti++) {
                char err[512];

                for (size_t wi = 0; wi < b->n_w; wi++) {
                        size_t len = 0;
                        grpc_channel *ch = lg_connect(b->t[ti].uri, &b->w[wi].lg, 10000, err,
                                                      sizeof(err), &len);
                        if (!ch) {
                                fprintf(stderr, "target %s: %s\n", b->t[ti].name, err);
                                goto out_grpc;
                        }
                        if (wi == 0) {
                                b->t[ti].ch = ch;
                        } else {
                                grpc_channel_destroy(ch);
                        }
                        if (ti == 0)
                                b->w[wi].resp_len = len;
                        else if (len != b->w[wi].resp_len)
                                fprintf(stderr,
                                        "WARNING: %s via %s answers %zu bytes, baseline %zu\n",
                                        b->w[wi].name, b->t[ti].name, len, b->w[wi].resp_len);
                }
        }
        for (size_t wi = 0; wi < b->n_w; wi++)
                fprintf(stderr, "[%s] workload %s: %s, response %zu bytes\n", b->name,
                        b->w[wi].name, b->w[wi].method, b->w[wi].resp_len);

        for (size_t r = 0; r < b->rounds; r++)
                for (size_t wi = 0; wi < b->n_w; wi++)
                        for (size_t ci = 0; ci < b->n_conc; ci++)
                                for (size_t ti = 0; ti < b->n_t; ti++)
                                        run_one(b, wi, ci, ti, r);
        write_raw(b);
        write_summary(b);
        rc = 0;
        /* A benchmark that saw failed calls measured something else: say so loudly. */
        for (size_t r = 0; r < b->rounds; r++)
                for (size_t wi = 0; wi < b->n_w; wi++)
                        for (size_t ci = 0; ci < b->n_conc; ci++)
                                for (size_t ti = 0; ti < b->n_t; ti++)
                                        if (!b->s[wi][ci][ti][r].done ||
                                            b->s[wi][ci][ti][r].r.errors)
                                                rc = 3;
        if (rc)
                fprintf(stderr, "[%s] some runs failed or had failed calls\n", b->name);
out_grpc:
        for (size_t ti = 0; ti < b->n_t; ti++)
                if (b->t[ti].ch)
                        grpc_channel_destroy(b->t[ti].ch);
        grpc_shutdown();
out:
        free(b);
        return rc;
usage:
        free(b);
        return usage();
}

/* CPU and context switches of a process over an idle period. */
static int cmd_idle(int argc, char **argv)
{
        static const struct option opts[] = {
                { "pid", required_argument, NULL, 'p' },
                { "seconds", required_argument, NULL, 's' },
                { "out", required_argument, NULL, 'o' },
                {},
        };
        struct proc_set set = { 0 };
        struct proc_sample a, z;
        const char *out = NULL;
        double seconds = 5, cpu_ms;
        pid_t pid = 0;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'p':
                        pid = (pid_t)atoi(optarg);
                        break;
                case 's':
                        seconds = atof(optarg);
                        break;
                case 'o':
                        out = optarg;
                        break;
                default:
                        return usage();
                }
        }
        if (pid <= 0 || seconds <= 0 || proc_set_add(&set, pid, true) < 0)
                return usage();
        proc_set_sample(&set, true, &a);
        nanosleep(
                &(struct timespec){ .tv_sec = (time_t)seconds,
                                    .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9) },
                NULL);
        proc_set_sample(&set, true, &z);
        cpu_ms = proc_ticks_ms(z.cpu_ticks - a.cpu_ticks);
        printf("idle pid %d: %.1f ms CPU and %" PRIu64
               " context switches in %.1f s (%.1f wakeups/s); RSS %.1f MiB (anonymous %.1f, "
               "files %.1f), %zu processes, %" PRIu64 " threads\n",
               (int)pid, cpu_ms, z.ctxsw - a.ctxsw, seconds, (double)(z.ctxsw - a.ctxsw) / seconds,
               (double)z.rss_kib / 1024.0, (double)z.anon_kib / 1024.0, (double)z.file_kib / 1024.0,
               set.n, z.threads);
        if (out) {
                json_t *j = json_pack("{s:I,s:f,s:f,s:I,s:f,s:I,s:I,s:I,s:I}", "pid",
                                      (json_int_t)pid, "seconds", seconds, "cpu_ms", cpu_ms,
                                      "context_switches", (json_int_t)(z.ctxsw - a.ctxsw),
                                      "wakeups_per_s", (double)(z.ctxsw - a.ctxsw) / seconds,
                                      "rss_kib", (json_int_t)z.rss_kib, "rss_anon_kib",
                                      (json_int_t)z.anon_kib, "rss_file_kib",
                                      (json_int_t)z.file_kib, "threads", (json_int_t)z.threads);
                int ret = json_dump_file(j, out, JSON_INDENT(1));
                json_decref(j);
                if (ret < 0)
                        return 1;
        }
        return 0;
}

static int cmd_setup(int argc, char **argv, bool teardown)
{
        static const struct option opts[] = {
                { "target", required_argument, NULL, 't' },
                { "image", required_argument, NULL, 'i' },
                { "containers", required_argument, NULL, 'c' },
                { "labels", required_argument, NULL, 'l' },
                { "pod-id", required_argument, NULL, 'p' },
                {},
        };
        const char *target = NULL, *image = NULL, *pod_id = NULL;
        unsigned containers = 100, labels = 4;
        char pod[256];
        int c, ret;

        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 't':
                        target = optarg;
                        break;
                case 'i':
                        image = optarg;
                        break;
                case 'c':
                        containers = (unsigned)atoi(optarg);
                        break;
                case 'l':
                        labels = (unsigned)atoi(optarg);
                        break;
                case 'p':
                        pod_id = optarg;
                        break;
                default:
                        return usage();
                }
        }
        if (!target || (teardown ? !pod_id : !image))
                return usage();
        if (teardown) {
                ret = cri_teardown(target, pod_id);
                return ret < 0 ? 1 : 0;
        }
        ret = cri_setup(target, image, containers, labels, pod, sizeof(pod));
        if (ret < 0)
                return 1;
        printf("%s\n", pod);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc < 2)
                return usage();
        if (strcmp(argv[1], "run") == 0)
                return cmd_run(argc - 1, argv + 1);
        if (strcmp(argv[1], "idle") == 0)
                return cmd_idle(argc - 1, argv + 1);
        if (strcmp(argv[1], "setup") == 0)
                return cmd_setup(argc - 1, argv + 1, false);
        if (strcmp(argv[1], "teardown") == 0)
                return cmd_setup(argc - 1, argv + 1, true);
        return usage();
}
