/* SPDX-License-Identifier: Apache-2.0 */
/*
 * singleflight_burst: fires N concurrent ImageStatus or PullImage calls for one image
 * reference through pinlet (one shared gRPC channel, N threads released together by a
 * barrier) and checks what came back. Behind pinlet sits test/fake/fake_backend in echo
 * mode, which answers every call with the request bytes it received: the response of each
 * call is therefore the request as pinlet forwarded it, and its image field shows what
 * pinlet rewrote the tag to.
 *
 *   singleflight_burst TARGET status|pull N IMAGE EXPECT
 *
 * Exit 0 when all N calls ended OK and every echoed request names exactly EXPECT
 * (e.g. "127.0.0.1:PORT/tiny/app@sha256:..."); 1 otherwise, with one line per problem.
 * Prints "ok N calls in T ms" (T: from the barrier to the last status), which the driver
 * uses to check that the burst fitted well inside the cache TTL.
 *
 * Both requests are encoded by hand: ImageStatusRequest and PullImageRequest both carry
 * ImageSpec as field 1, and ImageSpec carries the image string as field 1 (runtime.v1 and
 * runtime.v1alpha2 alike). The echoed message is decoded the same way; other fields are
 * skipped by wire type so an echo of a richer request would still decode.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc_client.h"

#define MAX_CALLS 1024

struct shared {
        struct pinlet_tgrpc_channel *ch;
        const char *method;
        const uint8_t *request;
        size_t request_len;
        const char *expect;
        pthread_barrier_t barrier;
        atomic_int failures;
};

struct worker {
        struct shared *s;
        int index;
        pthread_t thread;
};

/* Appends a varint; returns the new length (buffers here are sized by the caller). */
static size_t put_varint(uint8_t *out, size_t n, uint64_t v)
{
        while (v >= 0x80) {
                out[n++] = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        out[n++] = (uint8_t)v;
        return n;
}

/* field 1 (length-delimited) { field 1 (string) image }: ImageStatusRequest and
 * PullImageRequest alike. Returns the length or 0 if out is too small. */
static size_t encode_request(const char *image, uint8_t *out, size_t size)
{
        size_t ilen = strlen(image), n = 0;
        uint8_t spec[16];
        size_t slen;

        if (ilen + 40 > size)
                return 0;
        /* ImageSpec = tag 0x0a, len(image), image */
        slen = put_varint(spec, 0, 0x0a);
        slen = put_varint(spec, slen, ilen);
        n = put_varint(out, n, 0x0a);
        n = put_varint(out, n, slen + ilen);
        memcpy(out + n, spec, slen);
        n += slen;
        memcpy(out + n, image, ilen);
        return n + ilen;
}

static bool get_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *ret)
{
        uint64_t v = 0;
        for (unsigned shift = 0; shift < 64 && *pos < len; shift += 7) {
                uint8_t b = p[(*pos)++];
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return true;
                }
        }
        return false;
}

/* Finds length-delimited field 1 in p[0..len); false if absent or malformed. Skips other
 * fields by wire type. */
static bool find_field1(const uint8_t *p, size_t len, const uint8_t **ret, size_t *ret_len)
{
        size_t pos = 0;
        while (pos < len) {
                uint64_t key, v;
                if (!get_varint(p, len, &pos, &key))
                        return false;
                switch (key & 7) {
                case 0:
                        if (!get_varint(p, len, &pos, &v))
                                return false;
                        break;
                case 1:
                        pos += 8;
                        break;
                case 5:
                        pos += 4;
                        break;
                case 2:
                        if (!get_varint(p, len, &pos, &v) || v > len - pos)
                                return false;
                        if ((key >> 3) == 1) {
                                *ret = p + pos;
                                *ret_len = (size_t)v;
                                return true;
                        }
                        pos += (size_t)v;
                        break;
                default:
                        return false;
                }
                if (pos > len)
                        return false;
        }
        return false;
}

static void *run_one(void *arg)
{
        struct worker *w = arg;
        struct shared *s = w->s;
        struct pinlet_tgrpc_result r = { 0 };
        const uint8_t *spec, *image;
        size_t spec_len, image_len;
        int ret;

        pthread_barrier_wait(&s->barrier);
        ret = pinlet_tgrpc_unary(s->ch, s->method, s->request, s->request_len, NULL, 0, 30000, &r);
        if (ret < 0 || r.status != 0) {
                fprintf(stderr, "call %d: %s %s: %s\n", w->index, ret < 0 ? "not run" : "status",
                        pinlet_tgrpc_status_name(r.status), r.details ? r.details : "");
                goto fail;
        }
        if (r.n_messages != 1) {
                fprintf(stderr, "call %d: %zu response messages, want 1\n", w->index, r.n_messages);
                goto fail;
        }
        if (!find_field1(r.messages[0].data, r.messages[0].len, &spec, &spec_len) ||
            !find_field1(spec, spec_len, &image, &image_len)) {
                fprintf(stderr, "call %d: echoed request has no image field\n", w->index);
                goto fail;
        }
        if (image_len != strlen(s->expect) || memcmp(image, s->expect, image_len) != 0) {
                fprintf(stderr, "call %d: backend received image '%.*s', want '%s'\n", w->index,
                        (int)image_len, (const char *)image, s->expect);
                goto fail;
        }
        pinlet_tgrpc_result_free(&r);
        return NULL;
fail:
        atomic_fetch_add(&s->failures, 1);
        pinlet_tgrpc_result_free(&r);
        return NULL;
}

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
        static uint8_t request[4096];
        static struct worker workers[MAX_CALLS];
        struct shared s = { 0 };
        const char *kind;
        long n;
        int64_t t0, t1;

        if (argc != 6) {
                fprintf(stderr, "usage: %s TARGET status|pull N IMAGE EXPECT\n", argv[0]);
                return 2;
        }
        kind = argv[2];
        if (strcmp(kind, "status") == 0)
                s.method = "/runtime.v1.ImageService/ImageStatus";
        else if (strcmp(kind, "pull") == 0)
                s.method = "/runtime.v1.ImageService/PullImage";
        else {
                fprintf(stderr, "unknown kind '%s'\n", kind);
                return 2;
        }
        n = strtol(argv[3], NULL, 10);
        if (n < 1 || n > MAX_CALLS) {
                fprintf(stderr, "N must be 1..%d\n", MAX_CALLS);
                return 2;
        }
        s.request_len = encode_request(argv[4], request, sizeof(request));
        if (s.request_len == 0) {
                fprintf(stderr, "image reference too long\n");
                return 2;
        }
        s.request = request;
        s.expect = argv[5];
        s.ch = pinlet_tgrpc_connect(argv[1], 0, NULL);
        if (!s.ch) {
                fprintf(stderr, "cannot open a channel to %s\n", argv[1]);
                return 1;
        }
        /* The N workers plus this thread: t0 is taken when everyone is released. */
        if (pthread_barrier_init(&s.barrier, NULL, (unsigned)n + 1) != 0) {
                fprintf(stderr, "pthread_barrier_init failed\n");
                return 1;
        }
        for (long i = 0; i < n; i++) {
                workers[i].s = &s;
                workers[i].index = (int)i;
                if (pthread_create(&workers[i].thread, NULL, run_one, &workers[i]) != 0) {
                        /* The barrier can never open now: nothing sensible to unwind. */
                        fprintf(stderr, "pthread_create failed\n");
                        return 1;
                }
        }
        pthread_barrier_wait(&s.barrier);
        t0 = now_ms();
        for (long i = 0; i < n; i++)
                pthread_join(workers[i].thread, NULL);
        t1 = now_ms();
        pthread_barrier_destroy(&s.barrier);
        pinlet_tgrpc_channel_free(s.ch);

        if (atomic_load(&s.failures) > 0) {
                fprintf(stderr, "%d of %ld %s calls failed\n", atomic_load(&s.failures), n, kind);
                return 1;
        }
        printf("ok %ld calls in %" PRId64 " ms\n", n, t1 - t0);
        return 0;
}
