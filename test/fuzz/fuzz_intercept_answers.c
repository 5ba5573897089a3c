/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Arbitrary bytes as a runtime's answer (or a RemoveImage request) against a fixed set of
 * pins (intercept/answers.h). The first byte picks the message: 0 ImageStatusResponse,
 * 1 ListImagesResponse, 2 RemoveImageRequest; the rest is the message. Checks:
 *   - malformed input fails cleanly with an error, never a crash;
 *   - a rewritten answer decodes again with the same images in the same order, the same
 *     ids and repo_digests, the same number of unknown fields at every level, and every
 *     tag pinned to one of an image's digests listed on it exactly once;
 *   - rewriting is idempotent: the rewritten answer is left unchanged by a second pass
 *     (nothing the first pass wrote is "moved" or "missing" to the second);
 *   - a rewritten RemoveImageRequest names the pinned digest and no tag any more, with the
 *     same unknown fields.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* for fuzz_count_unknown(); the request harness's other helpers are unused here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "fuzz_intercept_common.h"
#pragma GCC diagnostic pop
#include "intercept/answers.h"
#include "pins/pins.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

/* reference, digest */
static const char *const pins_table[][2] = {
        { "127.0.0.1:5000/tiny/app:v1", D1 },  { "127.0.0.1:5000/tiny/app:v2", D1 },
        { "127.0.0.1:5000/tiny/app:v3", D2 },  { "docker.io/library/nginx:1.25", D1 },
        { "reg.example:5000/a/b:latest", D2 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_binary(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
        return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static bool has_name(const ProtobufCBinaryData *names, size_t n, const char *s, size_t *count)
{
        *count = 0;
        for (size_t i = 0; i < n; i++)
                if (names[i].len == strlen(s) && memcmp(names[i].data, s, names[i].len) == 0)
                        (*count)++;
        return *count > 0;
}

static void check_image(const Pinlet__Cri__Image *in, const Pinlet__Cri__Image *out)
{
        FUZZ_CHECK(same_binary(&in->id, &out->id));
        FUZZ_CHECK(in->n_repo_digests == out->n_repo_digests);
        for (size_t i = 0; i < in->n_repo_digests; i++)
                FUZZ_CHECK(same_binary(&in->repo_digests[i], &out->repo_digests[i]));
        /* a pin whose name@digest is literally among the digests is listed once */
        for (size_t p = 0; p < ELEMENTSOF(pins_table); p++) {
                const char *ref = pins_table[p][0];
                const char *colon = strrchr(ref, ':');
                char pinned[256];
                size_t count;

                snprintf(pinned, sizeof(pinned), "%.*s@%s", (int)(colon - ref), ref,
                         pins_table[p][1]);
                if (!has_name(out->repo_digests, out->n_repo_digests, pinned, &count))
                        continue;
                has_name(out->repo_tags, out->n_repo_tags, ref, &count);
                FUZZ_CHECK(count >= 1);
                /* the runtime's own duplicates aside, pinlet adds none */
                if (!has_name(in->repo_tags, in->n_repo_tags, ref, &count))
                        FUZZ_CHECK(has_name(out->repo_tags, out->n_repo_tags, ref, &count) &&
                                   count == 1);
        }
}

static void fuzz_answer(enum pinlet_answers_kind kind, const struct pinlet_answers_index *idx,
                        const uint8_t *data, size_t size)
{
        const ProtobufCMessageDescriptor *d =
                kind == PINLET_ANSWERS_IMAGE_STATUS
                        ? &pinlet__cri__image_status_response__descriptor
                        : &pinlet__cri__list_images_response__descriptor;
        struct pinlet_error *err = NULL;
        uint8_t *out = NULL, *again = NULL;
        size_t len = 0, again_len = 0;
        ProtobufCMessage *a, *b;
        int r;

        r = pinlet_answers_rewrite(kind, idx, data, size, FUZZ_MAX_LEN, &out, &len, &err);
        if (r < 0) {
                FUZZ_CHECK(pinlet_error_message(err, r) != NULL);
                pinlet_error_free(err);
                return;
        }
        FUZZ_CHECK(!err);
        if (r == PINLET_INTERCEPT_UNCHANGED) {
                FUZZ_CHECK(!out);
                return;
        }
        a = protobuf_c_message_unpack(d, NULL, size, data);
        b = protobuf_c_message_unpack(d, NULL, len, out);
        FUZZ_CHECK(a && b);
        FUZZ_CHECK(fuzz_count_unknown(a) == fuzz_count_unknown(b));
        if (kind == PINLET_ANSWERS_IMAGE_STATUS) {
                const Pinlet__Cri__ImageStatusResponse *x = (void *)a, *y = (void *)b;

                FUZZ_CHECK(x->image && y->image);
                check_image(x->image, y->image);
        } else {
                const Pinlet__Cri__ListImagesResponse *x = (void *)a, *y = (void *)b;

                FUZZ_CHECK(x->n_images == y->n_images);
                for (size_t i = 0; i < x->n_images; i++)
                        check_image(x->images[i], y->images[i]);
        }
        r = pinlet_answers_rewrite(kind, idx, out, len, FUZZ_MAX_LEN, &again, &again_len, &err);
        FUZZ_CHECK(r == PINLET_INTERCEPT_UNCHANGED);
        protobuf_c_message_free_unpacked(a, NULL);
        protobuf_c_message_free_unpacked(b, NULL);
        free(out);
}

static void fuzz_remove(struct pinlet_pins *pins, const uint8_t *data, size_t size)
{
        struct pinlet_error *err = NULL;
        uint8_t *out = NULL;
        size_t len = 0;
        char *key = NULL;
        ProtobufCMessage *a, *b;
        int r;

        r = pinlet_answers_remove_rewrite(data, size, FUZZ_MAX_LEN, NULL, pins, &out, &len, &err);
        if (r < 0) {
                FUZZ_CHECK(pinlet_error_message(err, r) != NULL);
                pinlet_error_free(err);
                return;
        }
        if (r == PINLET_INTERCEPT_UNCHANGED)
                return;
        a = protobuf_c_message_unpack(&pinlet__cri__remove_image_request__descriptor, NULL, size,
                                      data);
        b = protobuf_c_message_unpack(&pinlet__cri__remove_image_request__descriptor, NULL, len,
                                      out);
        FUZZ_CHECK(a && b);
        FUZZ_CHECK(fuzz_count_unknown(a) == fuzz_count_unknown(b));
        {
                const Pinlet__Cri__RemoveImageRequest *y = (void *)b;
                const ProtobufCBinaryData *img = &y->image->image;

                FUZZ_CHECK(img->len > strlen(D1) && (memmem(img->data, img->len, D1, strlen(D1)) ||
                                                     memmem(img->data, img->len, D2, strlen(D2))));
        }
        FUZZ_CHECK(pinlet_answers_remove_key(out, len, FUZZ_MAX_LEN, NULL, &key, &err) == 0);
        FUZZ_CHECK(!key && !err);
        protobuf_c_message_free_unpacked(a, NULL);
        protobuf_c_message_free_unpacked(b, NULL);
        free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct pinlet_answers_index *idx;
        static struct pinlet_pins *pins;

        if (!idx) {
                struct pinlet_error *err = NULL;

                FUZZ_CHECK(pinlet_answers_index_new(&idx) == 0);
                FUZZ_CHECK(pinlet_pins_open(NULL, 0, &pins, &err) == 0);
                for (size_t i = 0; i < ELEMENTSOF(pins_table); i++) {
                        FUZZ_CHECK(pinlet_answers_index_add(idx, pins_table[i][0],
                                                            pins_table[i][1]) == 0);
                        FUZZ_CHECK(pinlet_pins_record(pins, pins_table[i][0], pins_table[i][1],
                                                      NULL, NULL, &err) == 0);
                }
        }
        if (size < 1)
                return 0;
        switch (data[0] % 3) {
        case 0:
                fuzz_answer(PINLET_ANSWERS_IMAGE_STATUS, idx, data + 1, size - 1);
                break;
        case 1:
                fuzz_answer(PINLET_ANSWERS_LIST_IMAGES, idx, data + 1, size - 1);
                break;
        default:
                fuzz_remove(pins, data + 1, size - 1);
                break;
        }
        return 0;
}
