/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hostile_crowd: N CRI calls started at once through pinlet (all in flight together, not
 * a closed loop), a mix of pass-through and intercepted methods, each checked, with the
 * latencies reported per kind. The load case of hostile/run.sh (1000 calls against real
 * containerd) and the soak test use it.
 *
 *   hostile_crowd -e TARGET -n N [-c CHANNELS] [-t SECONDS] MIX...
 *     -e TARGET    unix:///path of pinlet (or of the runtime, for a comparison)
 *     -n N         calls in total (1..100000); call i is of kind MIX[i % #MIX]
 *     -c CHANNELS  connections the calls are spread over (default 4; kubelet uses one,
 *                  but several keep one HTTP/2 connection's stream limit out of the
 *                  measurement)
 *     -t SECONDS   deadline of every call (default 120)
 *   MIX entries:
 *     version                 RuntimeService/Version, must answer OK
 *     list                    ImageService/ListImages, OK with at least one image
 *     status=IMAGE[=ID]       ImageService/ImageStatus, OK with an image (whose id is ID)
 *     pull=IMAGE[=REF]        ImageService/PullImage, OK (with image_ref REF)
 *
 * Prints one line per MIX entry ("status=...: 250 calls, 250 ok, 0 failed, p50 12 ms,
 * p99 80 ms, max 95 ms"), the first failures (status and message), and a summary line
 * "total N calls, N ok, N failed in T ms". Exit 0 when every call answered OK and passed
 * its check, 1 when any did not, 2 on bad usage.
 *
 * Why not test/support/grpc_client or singleflight/burst.c: both run one thread per call
 * with a private completion queue, which is right for tens of calls; for a thousand
 * concurrent ones this drives every call from one completion queue on one thread, so the
 * client's own cost stays small on the 2 shared cores. Requests are packed with the
 * test-only CRI schema (test/support/cri_test.proto), as pinlet_it_cri does.
 */
#include <errno.h>
#include <inttypes.h>
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

#include "cri_test.pb-c.h"

#define MAX_CALLS     100000
#define MAX_CHANNELS  64
#define MAX_MIX       16
#define SHOW_FAILURES 5
#define MAX_MESSAGE   (16 << 20)
#define PATH_VERSION  "/runtime.v1.RuntimeService/Version"
#define PATH_LIST     "/runtime.v1.ImageService/ListImages"
#define PATH_STATUS   "/runtime.v1.ImageService/ImageStatus"
#define PATH_PULL     "/runtime.v1.ImageService/PullImage"

enum kind { KIND_VERSION, KIND_LIST, KIND_STATUS, KIND_PULL };

/* One MIX entry: what its calls send and expect, and what they got. */
struct mix {
        const char *spec; /* as given, for the report */
        enum kind kind;
        const char *image;  /* status, pull */
        const char *expect; /* status: image id; pull: image_ref; NULL: not checked */
        grpc_slice method;
        grpc_slice request;
        unsigned calls, ok, failed;
        int64_t *lat_us; /* one per OK call */
};

/* One call in flight. */
struct call {
        struct mix *m;
        grpc_call *call;
        grpc_byte_buffer *req, *resp;
        grpc_metadata_array initial_md, trailing_md;
        grpc_status_code status;
        grpc_slice details;
        int64_t start_us;
};

static int64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static grpc_slice pack(const ProtobufCMessage *msg)
{
        grpc_slice s = grpc_slice_malloc(protobuf_c_message_get_packed_size(msg));

        protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
        return s;
}

/* "kind[=image[=expect]]" -> m; the strings stay in argv. */
static int parse_mix(char *spec, struct mix *m)
{
        char *image = strchr(spec, '='), *expect = NULL;

        *m = (struct mix){ .spec = strdup(spec) };
        if (image) {
                *image++ = '\0';
                expect = strchr(image, '=');
                if (expect)
                        *expect++ = '\0';
        }
        if (strcmp(spec, "version") == 0 && !image) {
                Critest__VersionRequest r = CRITEST__VERSION_REQUEST__INIT;

                m->kind = KIND_VERSION;
                m->method = grpc_slice_from_static_string(PATH_VERSION);
                m->request = pack(&r.base);
        } else if (strcmp(spec, "list") == 0 && !image) {
                Critest__ListImagesRequest r = CRITEST__LIST_IMAGES_REQUEST__INIT;

                m->kind = KIND_LIST;
                m->method = grpc_slice_from_static_string(PATH_LIST);
                m->request = pack(&r.base);
        } else if (strcmp(spec, "status") == 0 && image && *image) {
                Critest__ImageSpec is = CRITEST__IMAGE_SPEC__INIT;
                Critest__ImageStatusRequest r = CRITEST__IMAGE_STATUS_REQUEST__INIT;

                is.image = image;
                r.image = &is;
                m->kind = KIND_STATUS;
                m->method = grpc_slice_from_static_string(PATH_STATUS);
                m->request = pack(&r.base);
        } else if (strcmp(spec, "pull") == 0 && image && *image) {
                Critest__ImageSpec is = CRITEST__IMAGE_SPEC__INIT;
                Critest__PullImageRequest r = CRITEST__PULL_IMAGE_REQUEST__INIT;

                is.image = image;
                r.image = &is;
                m->kind = KIND_PULL;
                m->method = grpc_slice_from_static_string(PATH_PULL);
                m->request = pack(&r.base);
        } else {
                return -EINVAL;
        }
        m->image = image;
        m->expect = expect && *expect ? expect : NULL;
        return 0;
}

/* Checks an OK answer against its MIX entry; NULL when it passes, else why not. */
static const char *check_answer(const struct mix *m, const uint8_t *p, size_t len, char *why,
                                size_t why_size)
{
        switch (m->kind) {
        case KIND_VERSION:
                return NULL;
        case KIND_LIST: {
                Critest__ListImagesResponse *r =
                        critest__list_images_response__unpack(NULL, len, p);
                size_t n = r ? r->n_images : 0;

                if (r)
                        critest__list_images_response__free_unpacked(r, NULL);
                if (n > 0)
                        return NULL;
                snprintf(why, why_size, "ListImages answered %s", r ? "no image" : "garbage");
                return why;
        }
        case KIND_STATUS: {
                Critest__ImageStatusResponse *r =
                        critest__image_status_response__unpack(NULL, len, p);
                const char *bad = NULL;

                if (!r)
                        bad = "an undecodable ImageStatusResponse";
                else if (!r->image)
                        bad = "no image";
                else if (m->expect && strcmp(r->image->id, m->expect) != 0)
                        bad = r->image->id;
                if (bad)
                        snprintf(why, why_size, "ImageStatus(%s) answered %s, want %s", m->image,
                                 bad, m->expect ? m->expect : "an image");
                if (r)
                        critest__image_status_response__free_unpacked(r, NULL);
                return bad ? why : NULL;
        }
        case KIND_PULL: {
                Critest__PullImageResponse *r = critest__pull_image_response__unpack(NULL, len, p);
                const char *bad = NULL;

                if (!r)
                        bad = "an undecodable PullImageResponse";
                else if (m->expect && strcmp(r->image_ref, m->expect) != 0)
                        bad = r->image_ref;
                if (bad)
                        snprintf(why, why_size, "PullImage(%s) answered %s, want %s", m->image, bad,
                                 m->expect ? m->expect : "an image_ref");
                if (r)
                        critest__pull_image_response__free_unpacked(r, NULL);
                return bad ? why : NULL;
        }
        }
        return "unknown kind";
}

static int start_call(struct call *c, grpc_channel *ch, grpc_completion_queue *cq,
                      int64_t timeout_s)
{
        gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                             gpr_time_from_seconds(timeout_s, GPR_TIMESPAN));
        grpc_op ops[6] = {};

        c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, c->m->method,
                                           NULL, deadline, NULL);
        if (!c->call)
                return -EIO;
        c->req = grpc_raw_byte_buffer_create(&c->m->request, 1);
        grpc_metadata_array_init(&c->initial_md);
        grpc_metadata_array_init(&c->trailing_md);
        c->details = grpc_empty_slice();
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = c->req;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &c->resp;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
        ops[5].data.recv_status_on_client.status = &c->status;
        ops[5].data.recv_status_on_client.status_details = &c->details;
        c->start_us = now_us();
        if (grpc_call_start_batch(c->call, ops, 6, c, NULL) != GRPC_CALL_OK)
                return -EIO;
        return 0;
}

/* Records a finished call; prints it when it failed (the first SHOW_FAILURES only). */
static bool finish_call(struct call *c, unsigned *shown)
{
        struct mix *m = c->m;
        char why[512];
        const char *bad = NULL;

        if (c->status != GRPC_STATUS_OK) {
                snprintf(why, sizeof(why), "status %d: %.*s", (int)c->status,
                         (int)GRPC_SLICE_LENGTH(c->details),
                         (const char *)GRPC_SLICE_START_PTR(c->details));
                bad = why;
        } else if (!c->resp) {
                bad = "OK without a response message";
        } else {
                grpc_byte_buffer_reader rd;
                grpc_slice flat;

                grpc_byte_buffer_reader_init(&rd, c->resp);
                flat = grpc_byte_buffer_reader_readall(&rd);
                grpc_byte_buffer_reader_destroy(&rd);
                bad = check_answer(m, GRPC_SLICE_START_PTR(flat), GRPC_SLICE_LENGTH(flat), why,
                                   sizeof(why));
                grpc_slice_unref(flat);
        }
        if (bad) {
                m->failed++;
                if ((*shown)++ < SHOW_FAILURES)
                        printf("FAILED %s: %s\n", m->spec, bad);
        } else {
                m->lat_us[m->ok++] = now_us() - c->start_us;
        }
        grpc_slice_unref(c->details);
        grpc_metadata_array_destroy(&c->initial_md);
        grpc_metadata_array_destroy(&c->trailing_md);
        if (c->resp)
                grpc_byte_buffer_destroy(c->resp);
        grpc_byte_buffer_destroy(c->req);
        grpc_call_unref(c->call);
        return !bad;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return (x > y) - (x < y);
}

static int64_t pct_ms(const int64_t *sorted, unsigned n, unsigned pct)
{
        if (n == 0)
                return 0;
        return sorted[(size_t)((uint64_t)(n - 1) * pct / 100)] / 1000;
}

static void usage(const char *argv0)
{
        fprintf(stderr,
                "usage: %s -e TARGET -n N [-c CHANNELS] [-t SECONDS] "
                "version|list|status=IMAGE[=ID]|pull=IMAGE[=REF]...\n",
                argv0);
}

int main(int argc, char **argv)
{
        static struct mix mix[MAX_MIX];
        grpc_channel *channels[MAX_CHANNELS];
        const char *target = NULL;
        long n = 0, n_channels = 4, timeout_s = 120;
        size_t n_mix = 0;
        unsigned shown = 0, ok = 0, failed = 0;
        struct call *calls;
        grpc_completion_queue *cq;
        grpc_channel_credentials *creds;
        int64_t t0, t1;
        int o;

        while ((o = getopt(argc, argv, "e:n:c:t:")) != -1) {
                switch (o) {
                case 'e':
                        target = optarg;
                        break;
                case 'n':
                        n = strtol(optarg, NULL, 10);
                        break;
                case 'c':
                        n_channels = strtol(optarg, NULL, 10);
                        break;
                case 't':
                        timeout_s = strtol(optarg, NULL, 10);
                        break;
                default:
                        usage(argv[0]);
                        return 2;
                }
        }
        if (!target || n < 1 || n > MAX_CALLS || n_channels < 1 || n_channels > MAX_CHANNELS ||
            timeout_s < 1 || optind >= argc || argc - optind > MAX_MIX) {
                usage(argv[0]);
                return 2;
        }
        for (int i = optind; i < argc; i++) {
                if (parse_mix(argv[i], &mix[n_mix]) < 0) {
                        fprintf(stderr, "bad MIX entry '%s'\n", argv[i]);
                        usage(argv[0]);
                        return 2;
                }
                mix[n_mix].lat_us = calloc((size_t)n, sizeof(int64_t));
                if (!mix[n_mix].lat_us)
                        return 1;
                n_mix++;
        }
        calls = calloc((size_t)n, sizeof(*calls));
        if (!calls)
                return 1;

        grpc_init();
        creds = grpc_insecure_credentials_create();
        for (long i = 0; i < n_channels; i++) {
                /* A private subchannel pool per channel: otherwise gRPC shares one
                 * connection between channels to the same target. */
                grpc_arg a[] = {
                        { .type = GRPC_ARG_INTEGER,
                          .key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
                          .value.integer = 1 },
                        { .type = GRPC_ARG_INTEGER,
                          .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                          .value.integer = MAX_MESSAGE },
                };
                grpc_channel_args args = { .num_args = 2, .args = a };

                channels[i] = grpc_channel_create(target, creds, &args);
        }
        grpc_channel_credentials_release(creds);
        cq = grpc_completion_queue_create_for_next(NULL);

        /* Every call is started before the first completion is read: all N are in flight
         * together. */
        t0 = now_us();
        for (long i = 0; i < n; i++) {
                calls[i].m = &mix[(size_t)i % n_mix];
                calls[i].m->calls++;
                if (start_call(&calls[i], channels[i % n_channels], cq, timeout_s) < 0) {
                        fprintf(stderr, "call %ld could not be started\n", i);
                        return 1;
                }
        }
        for (long done = 0; done < n;) {
                grpc_event ev = grpc_completion_queue_next(
                        cq,
                        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                     gpr_time_from_seconds(timeout_s + 30, GPR_TIMESPAN)),
                        NULL);

                if (ev.type != GRPC_OP_COMPLETE) {
                        /* Every call carries a deadline: this is gRPC itself stuck. */
                        fprintf(stderr, "no completion for %ld s with %ld calls open\n",
                                timeout_s + 30, n - done);
                        return 1;
                }
                if (finish_call(ev.tag, &shown))
                        ok++;
                else
                        failed++;
                done++;
        }
        t1 = now_us();

        for (size_t i = 0; i < n_mix; i++) {
                struct mix *m = &mix[i];

                qsort(m->lat_us, m->ok, sizeof(int64_t), cmp_i64);
                printf("%s: %u calls, %u ok, %u failed, p50 %" PRId64 " ms, p99 %" PRId64
                       " ms, max %" PRId64 " ms\n",
                       m->spec, m->calls, m->ok, m->failed, pct_ms(m->lat_us, m->ok, 50),
                       pct_ms(m->lat_us, m->ok, 99), pct_ms(m->lat_us, m->ok, 100));
        }
        printf("total %ld calls, %u ok, %u failed in %" PRId64 " ms\n", n, ok, failed,
               (t1 - t0) / 1000);

        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
                ;
        grpc_completion_queue_destroy(cq);
        for (long i = 0; i < n_channels; i++)
                grpc_channel_destroy(channels[i]);
        for (size_t i = 0; i < n_mix; i++) {
                grpc_slice_unref(mix[i].request);
                free(mix[i].lat_us);
                free((char *)mix[i].spec);
        }
        free(calls);
        grpc_shutdown();
        return failed == 0 ? 0 : 1;
}
