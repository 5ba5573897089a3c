/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The runtime's answers keep the tags.
 *
 * In enforce mode pinlet pulls `repo:tag` as `repo@sha256:…`, so the runtime records no
 * tag: containerd answers ImageStatus and ListImages with `repo_tags: []` for every pinned
 * image (crictl shows `<none>`, kubelet reports the node's images without their names, and
 * the scheduler's image-locality scoring matches on those names). pinlet mends the
 * ANSWERS, not the runtime's store:
 *
 *   ImageStatusResponse.image, ListImagesResponse.images[i]: repo_tags lists every tag
 *     whose current pin is that image (the pin's "name@digest" is one of the image's
 *     repo_digests), plus what the runtime reports, without duplicates. A runtime-reported
 *     tag that is pinned to a digest NOT among this image's repo_digests is removed: the
 *     tag has moved, and is listed only on its new image. When the list changes it is
 *     sorted as containerd sorts it (pkg/cri/store/image sortReferences: tags rank alike,
 *     then byte order of the string), so the answer is exactly what the runtime would
 *     have given after pulling those tags by tag.
 *   RemoveImageRequest by a pinned tag: the image becomes the pinned "name@digest" (the
 *     runtime has no image under the tag), and once the runtime answered OK the pin is
 *     forgotten.
 *
 * Only these messages are decoded (proto/cri.proto); every other field survives as a
 * protobuf-c unknown field, and a message is re-encoded only when something changed, so
 * "unchanged" is byte-identical. A message that does not decode, or holds a NUL byte in a
 * name, passes unchanged (the answer is the runtime's; pinlet only adds names it knows).
 * Names are compared as pinlet_ref_key() gives them (registry host in lower case), which is
 * how the pin store keys tags; an added tag is the pin's key, the runtime's own entries are
 * kept byte for byte.
 *
 * Pure part: the index and the rewriting functions take no globals and do no I/O beyond
 * the pin store given. Hooks: the proxy calls them (proxy.h) with userdata = the struct
 * pinlet_interceptor; they act only in mode enforce (in audit mode the runtime pulled the
 * tags itself). The answer hooks never block; the RemoveImage responder defers to a worker
 * to forget the pin (an fdatasync'ed write).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "proxy/proxy.h"
#include "util/error.h"
#include "util/macro.h"

struct pinlet_pins;
struct pinlet_hosts;

enum pinlet_answers_kind {
        PINLET_ANSWERS_IMAGE_STATUS, /* ImageService/ImageStatus: ImageStatusResponse */
        PINLET_ANSWERS_LIST_IMAGES,  /* ImageService/ListImages: ListImagesResponse */
};

/* The pins indexed both ways: built in one pass over the pin store, then every image of
 * an answer costs a hash lookup per name. Reference counted; read-only once built, so
 * shared by concurrent answers (pinlet_answers_index_get); _add is for one owner only. */
struct pinlet_answers_index;

int pinlet_answers_index_new(struct pinlet_answers_index **ret);
/* Drops one reference. */
void pinlet_answers_index_free(struct pinlet_answers_index *idx);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_answers_index *, pinlet_answers_index_free)
#define _cleanup_answers_index_ _cleanup_(pinlet_answers_index_freep)

/* Adds one pin: reference is a pin store key ("host/path:tag", no digest), digest
 * "algo:hex". -EINVAL for a reference without a tag or with a digest, -EEXIST for a
 * reference already added (a tag has one pin, and the answers list it once), -ENOMEM. */
int pinlet_answers_index_add(struct pinlet_answers_index *idx, const char *reference,
                             const char *digest);

/* Adds every pin of the store (one pinlet_pins_list pass, under its shared lock). Returns
 * the number of pins indexed or -ENOMEM. Pins that are not tags are skipped. */
int pinlet_answers_index_load(struct pinlet_answers_index *idx, struct pinlet_pins *pins);

/* A reference to the index of the pins as they are now: the one built for the current
 * pinlet_pins_generation() when there is one (any pin store of the process), else a new
 * one that replaces it. 0 or -ENOMEM. Thread-safe. */
int pinlet_answers_index_get(struct pinlet_pins *pins, struct pinlet_answers_index **ret);

/*
 * Rewrites an ImageStatusResponse or ListImagesResponse (see above). Returns
 * PINLET_INTERCEPT_UNCHANGED (rewrite.h: forward the original bytes; ret_* untouched),
 * PINLET_INTERCEPT_REWRITTEN with *ret_data (malloc'ed) and *ret_len, or a negative error:
 * PINLET_E2BIG when len or the rewritten message exceed max_len, PINLET_EINVAL "malformed
 * <Message>", -ENOMEM. The caller forwards the original answer on any error.
 */
int pinlet_answers_rewrite(enum pinlet_answers_kind kind, const struct pinlet_answers_index *idx,
                           const uint8_t *data, size_t len, size_t max_len, uint8_t **ret_data,
                           size_t *ret_len, struct pinlet_error **err);

/*
 * The tag a RemoveImageRequest names, as a pin store key (pinlet_ref_key()), a short name
 * qualified as the runtime does (short_names: intercept.h, pinlet_interceptor_parse_image();
 * NULL: docker.io): 1 with *ret_key (caller frees); 0 when the image is empty, an image ID,
 * a digest reference, not a valid reference, a short name the runtime would not qualify to
 * one registry, or holds a NUL byte (nothing to do with pins); PINLET_EINVAL "malformed
 * RemoveImageRequest", PINLET_E2BIG, -ENOMEM.
 */
int pinlet_answers_remove_key(const uint8_t *data, size_t len, size_t max_len,
                              struct pinlet_hosts *short_names, char **ret_key,
                              struct pinlet_error **err);

/*
 * A RemoveImageRequest by a pinned tag, rewritten to the pinned "name@digest" (the name
 * normalized, a short name qualified as remove_key() does). PINLET_INTERCEPT_UNCHANGED when it
 * names no tag or the tag has no pin; PINLET_INTERCEPT_REWRITTEN with *ret_data and *ret_len;
 * errors as remove_key().
 */
int pinlet_answers_remove_rewrite(const uint8_t *data, size_t len, size_t max_len,
                                  struct pinlet_hosts *short_names, struct pinlet_pins *pins,
                                  uint8_t **ret_data, size_t *ret_len, struct pinlet_error **err);

/* Hooks for the method table (intercept/methods.h); userdata is the struct
 * pinlet_interceptor (its configuration and pin store are used):
 *
 *     { "ImageService/ImageStatus", pinlet_interceptor_image_status,
 *       pinlet_answers_image_status },
 *     { "ImageService/ListImages", NULL, pinlet_answers_list_images },
 *     { "ImageService/RemoveImage", pinlet_answers_remove_image_request,
 *       pinlet_answers_remove_image },
 */
void pinlet_answers_image_status(void *userdata, const struct pinlet_call_info *info,
                                 const uint8_t *request, size_t request_len, int status,
                                 const uint8_t *response, size_t response_len,
                                 struct pinlet_intercept_result *ret);
void pinlet_answers_list_images(void *userdata, const struct pinlet_call_info *info,
                                const uint8_t *request, size_t request_len, int status,
                                const uint8_t *response, size_t response_len,
                                struct pinlet_intercept_result *ret);
/* The request side of RemoveImage (a pinlet_intercept_fn): never blocks, never fails. */
void pinlet_answers_remove_image_request(void *userdata, const struct pinlet_call_info *info,
                                         const uint8_t *request, size_t len,
                                         struct pinlet_intercept_result *ret);
/* The answer side: an OK answer to a RemoveImage by a pinned tag forgets the pin (on a
 * worker); the answer itself always passes unchanged. */
void pinlet_answers_remove_image(void *userdata, const struct pinlet_call_info *info,
                                 const uint8_t *request, size_t request_len, int status,
                                 const uint8_t *response, size_t response_len,
                                 struct pinlet_intercept_result *ret);
