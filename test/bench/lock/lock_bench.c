/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Lock file benchmark: writes a lock of N entries (default 100000) with the real writer,
 * then measures loading it (best and median of R runs), the resident memory the loaded
 * set adds, and the cost of a lookup (hits and misses) and of get + lookup + unref on the
 * live holder, as a request pays it.
 *
 *   pinlet_lock_bench [--entries N] [--runs R]
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lock/lock.h"

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VmRSS of this process in KiB, or 0. */
static long rss_kib(void)
{
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        long kib = 0;

        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static void die(const char *what, struct pinlet_error *err, int r)
{
        fprintf(stderr, "lock_bench: %s: %s\n", what, pinlet_error_message(err, r));
        exit(1);
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                { "entries", required_argument, NULL, 'n' },
                { "runs", required_argument, NULL, 'r' },
                {},
        };
        struct pinlet_error *err = NULL;
        struct pinlet_lock_entry *e;
        char **refs, **digests, dir[] = "/tmp/pinlet-lock-bench-XXXXXX", path[64];
        char *paths[] = { path, NULL };
        size_t n = 100000, runs = 5, len, lookups = 2000000, found = 0;
        struct pinlet_lock_set *s;
        struct pinlet_lock *live;
        double *t, t0, t_hit, t_miss, t_live;
        char *text;
        long rss0, rss1;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                if (c == 'n')
                        n = strtoul(optarg, NULL, 10);
                else if (c == 'r')
                        runs = strtoul(optarg, NULL, 10);
                else
                        return 2;
        }
        if (n == 0 || runs == 0 || !mkdtemp(dir))
                return 2;
        snprintf(path, sizeof(path), "%s/lock.yaml", dir);

        /* Realistic keys: a few registries, team/app paths, version tags. */
        e = calloc(n, sizeof(*e));
        refs = calloc(n, sizeof(*refs));
        digests = calloc(n, sizeof(*digests));
        t = calloc(runs, sizeof(*t));
        if (!e || !refs || !digests || !t)
                return 1;
        for (size_t i = 0; i < n; i++) {
                static const char *const hosts[] = { "docker.io/library", "registry.corp.example",
                                                     "ghcr.io", "quay.io" };
                if (asprintf(&refs[i], "%s/team%zu/app%zu:v%zu.%zu", hosts[i % 4], i % 97, i,
                             i % 13, i % 7) < 0 ||
                    asprintf(&digests[i], "sha256:%064zx", i * 2654435761u) < 0)
                        return 1;
                e[i] = (struct pinlet_lock_entry){ refs[i], digests[i] };
        }
        r = pinlet_lock_format(e, n, &text, &len, &err);
        if (r < 0)
                die("format", err, r);
        r = pinlet_lock_write_file(path, text, len, &err);
        if (r < 0)
                die("write", err, r);
        free(text);

        rss0 = rss_kib();
        for (size_t i = 0; i < runs; i++) {
                t0 = now_s();
                r = pinlet_lock_set_load(paths, NULL, &s, &err);
                if (r < 0)
                        die("load", err, r);
                t[i] = now_s() - t0;
                if (i + 1 < runs)
                        pinlet_lock_set_unref(s);
        }
        rss1 = rss_kib();
        qsort(t, runs, sizeof(*t), cmp_double);

        t0 = now_s();
        for (size_t i = 0; i < lookups; i++) {
                const char *d;

                found += pinlet_lock_set_lookup(s, refs[(i * 7919) % n], &d, NULL) == 0;
        }
        t_hit = now_s() - t0;
        t0 = now_s();
        for (size_t i = 0; i < lookups; i++) {
                const char *d;

                found += pinlet_lock_set_lookup(s, "docker.io/library/absent:1", &d, NULL) == 0;
        }
        t_miss = now_s() - t0;
        if (found != lookups) {
                fprintf(stderr, "lock_bench: %zu of %zu lookups found\n", found, lookups);
                return 1;
        }

        r = pinlet_lock_new(paths, NULL, &live, &err);
        if (r < 0)
                die("new", err, r);
        t0 = now_s();
        for (size_t i = 0; i < lookups; i++) {
                struct pinlet_lock_set *cur = pinlet_lock_get(live);
                const char *d;

                found += pinlet_lock_set_lookup(cur, refs[(i * 7919) % n], &d, NULL) == 0;
                pinlet_lock_set_unref(cur);
        }
        t_live = now_s() - t0;

        printf("entries            %zu\n", n);
        printf("file size          %zu bytes\n", len);
        printf("load (best/median) %.1f ms / %.1f ms over %zu runs\n", t[0] * 1e3,
               t[runs / 2] * 1e3, runs);
        printf("set RSS            %.1f MiB (VmRSS after the loads minus before; one set kept)\n",
               (double)(rss1 - rss0) / 1024.0);
        printf("lookup hit         %.0f ns\n", t_hit / (double)lookups * 1e9);
        printf("lookup miss        %.0f ns\n", t_miss / (double)lookups * 1e9);
        printf("get+lookup+unref   %.0f ns\n", t_live / (double)lookups * 1e9);

        pinlet_lock_free(live);
        pinlet_lock_set_unref(s);
        unlink(path);
        rmdir(dir);
        for (size_t i = 0; i < n; i++) {
                free(refs[i]);
                free(digests[i]);
        }
        free(refs);
        free(digests);
        free(e);
        free(t);
        return 0;
}
