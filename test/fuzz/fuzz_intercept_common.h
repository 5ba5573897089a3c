/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared body of the three intercept harnesses (fuzz_intercept_{pull,status,create}.c):
 * arbitrary bytes are decoded as one CRI request kind; then
 *   - a malformed input fails cleanly with an error (never a crash); a NUL byte in a text
 *     field fails with PINLET_INTERCEPT_ENUL naming the field;
 *   - every string the decoded request exposes is exactly its wire value (its strlen is
 *     the wire length: no NUL cut it short);
 *   - encoding without a change reports "unchanged" (the proxy forwards the original);
 *   - replacing one slot, then every slot, gives bytes that decode again with the new
 *     images, the same metadata, the same number of unknown fields at every level, and,
 *     with the old images put back, the same encoding as the original request.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "cri.pb-c.h"
#include "intercept/rewrite.h"

/* The decoder's limit: the configured default max_message_size. */
#define FUZZ_MAX_LEN PINLET_DEFAULT_MAX_MESSAGE

#define FUZZ_CHECK(c)                                                                         \
        do {                                                                                  \
                if (!(c)) {                                                                   \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
                        abort();                                                              \
                }                                                                             \
        } while (0)

/* Unknown fields in a decoded message tree, counted through the descriptors. */
static size_t fuzz_count_unknown(const ProtobufCMessage *m)
{
        size_t n;

        if (!m)
                return 0;
        n = m->n_unknown_fields;
        for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
                const char *base = (const char *)m;

                if (f->type != PROTOBUF_C_TYPE_MESSAGE)
                        continue;
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t count = *(const size_t *)(base + f->quantifier_offset);
                        ProtobufCMessage *const *items =
                                *(ProtobufCMessage *const *const *)(base + f->offset);

                        for (size_t j = 0; j < count; j++)
                                n += fuzz_count_unknown(items[j]);
                } else {
                        n += fuzz_count_unknown(*(ProtobufCMessage *const *)(base + f->offset));
                }
        }
        return n;
}

/* Packs r's message with the images of its slots as given (NULL: as decoded). */
static uint8_t *fuzz_pack_with(struct pinlet_intercept_request *r, const char *const *images,
                               size_t *ret_len)
{
        ProtobufCBinaryData *saved = calloc(r->n_slots + 1, sizeof(*saved));
        uint8_t *out;
        size_t len;

        FUZZ_CHECK(saved);
        for (size_t i = 0; images && i < r->n_slots; i++) {
                Pinlet__Cri__ImageSpec *spec = r->slots[i].spec;

                saved[i] = spec->image;
                spec->image = (ProtobufCBinaryData){ .len = strlen(images[i]),
                                                     .data = (uint8_t *)images[i] };
        }
        len = protobuf_c_message_get_packed_size(r->msg);
        out = malloc(len + 1);
        FUZZ_CHECK(out);
        FUZZ_CHECK(protobuf_c_message_pack(r->msg, out) == len);
        for (size_t i = 0; images && i < r->n_slots; i++)
                ((Pinlet__Cri__ImageSpec *)r->slots[i].spec)->image = saved[i];
        free(saved);
        *ret_len = len;
        return out;
}

static void fuzz_same_str(const char *a, const char *b)
{
        FUZZ_CHECK((a == NULL) == (b == NULL));
        FUZZ_CHECK(!a || strcmp(a, b) == 0);
}

/* Sets the slots selected by `mask` (bit i%64 for slot i, all when all is set), encodes,
 * and checks the output as described at the top. */
static void fuzz_rewrite(enum pinlet_intercept_kind kind, struct pinlet_intercept_request *r,
                         uint64_t mask, bool all)
{
        struct pinlet_intercept_request *r2 = NULL;
        const char **orig = calloc(r->n_slots + 1, sizeof(char *));
        char **want = calloc(r->n_slots + 1, sizeof(char *));
        uint8_t *out = NULL, *a, *b;
        size_t len = 0, alen, blen;
        bool any = false;
        int ret;

        FUZZ_CHECK(orig && want);
        for (size_t i = 0; i < r->n_slots; i++) {
                orig[i] = r->slots[i].image;
                if (!all && !(mask & (1ull << (i % 64))))
                        continue;
                FUZZ_CHECK(asprintf(&want[i], "fuzz.example/slot%zu@sha256:%064zx", i, i) > 0);
                FUZZ_CHECK(pinlet_intercept_request_set_image(r, i, want[i], NULL) == 0);
                /* setting the value a slot already holds is no change */
                any = any || r->slots[i].replacement;
        }
        FUZZ_CHECK(pinlet_intercept_request_changed(r) == any);
        ret = pinlet_intercept_request_encode(r, &out, &len, NULL);
        if (!any) {
                FUZZ_CHECK(ret == PINLET_INTERCEPT_UNCHANGED);
                goto done;
        }
        FUZZ_CHECK(ret == PINLET_INTERCEPT_REWRITTEN);
        FUZZ_CHECK(pinlet_intercept_request_decode(kind, out, len, FUZZ_MAX_LEN, &r2, NULL) == 0);

        /* the new images, nothing else moved */
        FUZZ_CHECK(r2->n_slots == r->n_slots);
        for (size_t i = 0; i < r->n_slots; i++) {
                FUZZ_CHECK(strcmp(r2->slots[i].where, r->slots[i].where) == 0);
                FUZZ_CHECK(strcmp(r2->slots[i].image, want[i] ? want[i] : orig[i]) == 0);
        }
        fuzz_same_str(r2->pod_namespace, r->pod_namespace);
        fuzz_same_str(r2->pod_name, r->pod_name);
        fuzz_same_str(r2->pod_uid, r->pod_uid);
        fuzz_same_str(r2->container_name, r->container_name);
        fuzz_same_str(r2->pod_sandbox_id, r->pod_sandbox_id);
        FUZZ_CHECK((r2->auth == NULL) == (r->auth == NULL));
        if (r->auth) {
                fuzz_same_str(r2->auth->username, r->auth->username);
                fuzz_same_str(r2->auth->password, r->auth->password);
                fuzz_same_str(r2->auth->auth, r->auth->auth);
                fuzz_same_str(r2->auth->server_address, r->auth->server_address);
                fuzz_same_str(r2->auth->identity_token, r->auth->identity_token);
                fuzz_same_str(r2->auth->registry_token, r->auth->registry_token);
        }
        FUZZ_CHECK(fuzz_count_unknown(r2->msg) == fuzz_count_unknown(r->msg));

        /* with the old images put back, the rewritten request encodes exactly as the
         * original one does: every other field survived */
        a = fuzz_pack_with(r, NULL, &alen);
        b = fuzz_pack_with(r2, orig, &blen);
        FUZZ_CHECK(alen == blen && memcmp(a, b, alen) == 0);
        free(a);
        free(b);

        /* the re-decoded request, untouched, is "unchanged" again */
        FUZZ_CHECK(pinlet_intercept_request_encode(r2, &a, &alen, NULL) ==
                   PINLET_INTERCEPT_UNCHANGED);
done:
        /* undo, so the next round starts from the decoded request */
        for (size_t i = 0; i < r->n_slots; i++) {
                free(r->slots[i].replacement);
                r->slots[i].replacement = NULL;
                free(want[i]);
        }
        pinlet_intercept_request_free(r2);
        free(out);
        free(orig);
        free(want);
}

static int fuzz_intercept(enum pinlet_intercept_kind kind, const uint8_t *data, size_t size)
{
        struct pinlet_intercept_request *r = NULL;
        struct pinlet_error *err = NULL;
        uint64_t mask = 0;
        int ret;

        ret = pinlet_intercept_request_decode(kind, data, size, FUZZ_MAX_LEN, &r, &err);
        if (ret < 0) {
                FUZZ_CHECK(ret == PINLET_EINVAL || ret == PINLET_E2BIG ||
                           ret == PINLET_INTERCEPT_ENUL);
                FUZZ_CHECK(err && err->message && !r);
                FUZZ_CHECK((ret == PINLET_INTERCEPT_ENUL) ==
                           (strstr(err->message, " contains a NUL byte") != NULL));
                pinlet_error_free(err);
                return 0;
        }
        FUZZ_CHECK(r && !err && r->kind == kind);
        for (size_t i = 0; i < r->n_slots; i++) {
                const Pinlet__Cri__ImageSpec *spec = r->slots[i].spec;

                FUZZ_CHECK(strlen(r->slots[i].image) == spec->image.len);
                FUZZ_CHECK(!spec->image.len ||
                           memcmp(r->slots[i].image, spec->image.data, spec->image.len) == 0);
        }
        if (kind == PINLET_INTERCEPT_PULL_IMAGE && r->auth) {
                const Pinlet__Cri__PullImageRequest *m = r->msg;

                FUZZ_CHECK(strlen(r->auth->username) == m->auth->username.len);
                FUZZ_CHECK(strlen(r->auth->password) == m->auth->password.len);
                FUZZ_CHECK(strlen(r->auth->server_address) == m->auth->server_address.len);
        }
        FUZZ_CHECK(pinlet_intercept_request_encode(r, NULL, NULL, NULL) ==
                   PINLET_INTERCEPT_UNCHANGED);
        for (size_t i = 0; i < size && i < 8; i++)
                mask |= (uint64_t)data[size - 1 - i] << (8 * i);
        fuzz_rewrite(kind, r, mask, false);
        fuzz_rewrite(kind, r, 0, true);
        pinlet_intercept_request_free(r);
        return 0;
}
