/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pinlet_bench_create: the measuring half of the CreateContainer benchmark
 * (test/bench/create/run.sh starts the registry, containerd and the pinlet instances; see
 * docs/PERFORMANCE.md, "CreateContainer with verifiers").
 *
 *   pinlet_bench_create pod TARGET IMAGE
 *        pulls IMAGE through TARGET and runs one pod sandbox (host network); prints
 *        {"pod": ID, "image_ref": IMAGE_ID}
 *   pinlet_bench_create run LABEL TARGET POD IMAGE USER_IMAGE CALLS
 *        CALLS times, strictly one after another: CreateContainer in POD (ImageSpec.image
 *        IMAGE, user_specified_image USER_IMAGE, "-" for none: kubelet sends the image ID
 *        and what the pod spec says), timed alone, then RemoveContainer (not timed), so
 *        the pod never grows. Each container has a name of its own (LABEL-<pid>-<i>).
 *        One JSON object on stdout: target LABEL, calls, p50_us, p99_us, mean_us and rate
 *        (creates per second of create time).
 *   pinlet_bench_create teardown TARGET POD
 *        stops and removes the pod sandbox
 *
 * Exit status 0 when every call ended OK, 1 otherwise; it never judges times.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cri_setup.h"
#include "grpc_client.h"

#define CALLS_MAX 100000

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of the sorted v[0..n), nearest rank. */
static double quantile(const double *v, size_t n, double q)
{
        size_t k = (size_t)ceil(q * (double)n);

        return v[k > 0 ? k - 1 : 0];
}

static int cmd_run(const char *label, const char *target, const char *pod, const char *image,
                   const char *user_image, const char *calls_s)
{
        struct pinlet_tgrpc_channel *ch;
        char *end = NULL;
        long calls = strtol(calls_s, &end, 10);
        double *us, sum = 0;
        int ret = 0;

        if (!end || *end || calls < 1 || calls > CALLS_MAX) {
                fprintf(stderr, "CALLS must be 1..%d\n", CALLS_MAX);
                return 2;
        }
        us = calloc((size_t)calls, sizeof(*us));
        ch = pinlet_tgrpc_connect(target, 64 << 20, NULL);
        if (!us || !ch) {
                fprintf(stderr, "out of memory or no channel to %s\n", target);
                free(us);
                pinlet_tgrpc_channel_free(ch);
                return 1;
        }
        for (long i = 0; i < calls && ret == 0; i++) {
                char name[128];

                snprintf(name, sizeof(name), "%s-%ld-%ld", label, (long)getpid(), i);
                ret = cri_create_remove(ch, pod, name, image,
                                        strcmp(user_image, "-") == 0 ? NULL : user_image, &us[i]);
                sum += us[i];
        }
        pinlet_tgrpc_channel_free(ch);
        if (ret < 0) {
                fprintf(stderr, "%s: a CreateContainer/RemoveContainer failed: %s\n", label,
                        strerror(-ret));
                free(us);
                return 1;
        }
        qsort(us, (size_t)calls, sizeof(*us), cmp_double);
        printf("{\"target\":\"%s\",\"calls\":%ld,\"p50_us\":%.1f,\"p99_us\":%.1f,"
               "\"mean_us\":%.1f,\"rate\":%.2f}\n",
               label, calls, quantile(us, (size_t)calls, 0.5), quantile(us, (size_t)calls, 0.99),
               sum / (double)calls, (double)calls / (sum / 1e6));
        free(us);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc == 4 && strcmp(argv[1], "pod") == 0) {
                char pod[256], ref[512];

                if (cri_pod_new(argv[2], argv[3], pod, sizeof(pod), ref, sizeof(ref)) < 0)
                        return 1;
                printf("{\"pod\":\"%s\",\"image_ref\":\"%s\"}\n", pod, ref);
                return 0;
        }
        if (argc == 8 && strcmp(argv[1], "run") == 0)
                return cmd_run(argv[2], argv[3], argv[4], argv[5], argv[6], argv[7]);
        if (argc == 4 && strcmp(argv[1], "teardown") == 0)
                return cri_teardown(argv[2], argv[3]) < 0 ? 1 : 0;
        fprintf(stderr, "usage: pinlet_bench_create pod TARGET IMAGE\n"
                        "       pinlet_bench_create run LABEL TARGET POD IMAGE USER_IMAGE|- CALLS\n"
                        "       pinlet_bench_create teardown TARGET POD\n");
        return 2;
}
