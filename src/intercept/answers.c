/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The runtime's answers keep the tags: ImageStatus and ListImages answers list the tags
 * pinned to each image, RemoveImage by a pinned tag removes the pinned image. See
 * answers.h for the rules; the request side of the other methods is intercept.c's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>
#include <jansson.h>

#include "config/config.h"
#include "cri.pb-c.h"
#include "intercept/answers.h"
#include "intercept/intercept.h"
#include "intercept/rewrite.h"
#include "pins/pins.h"
#include "ref/ref.h"
#include "util/log.h"
#include "util/str.h"

/* jansson's objects are the hash tables here: keys are NUL-terminated, which every name
 * used as a key is (a name from the wire with a NUL byte is never looked up). */
struct pinlet_answers_index {
        atomic_int refs;
        uint64_t generation; /* of the pins it was loaded from (pinlet_answers_index_get) */
        json_t *by_digest;   /* "name@digest" -> array of pin keys "name:tag", owned */
        json_t *by_tag;      /* pin key "name:tag" -> "name@digest", owned */
};

int pinlet_answers_index_new(struct pinlet_answers_index **ret)
{
        struct pinlet_answers_index *idx = calloc(1, sizeof(*idx));

        if (!idx)
                return -ENOMEM;
        atomic_init(&idx->refs, 1);
        idx->by_digest = json_object();
        idx->by_tag = json_object();
        if (!idx->by_digest || !idx->by_tag) {
                pinlet_answers_index_free(idx);
                return -ENOMEM;
        }
        *ret = idx;
        return 0;
}

void pinlet_answers_index_free(struct pinlet_answers_index *idx)
{
        if (!idx || atomic_fetch_sub(&idx->refs, 1) > 1)
                return;
        json_decref(idx->by_digest);
        json_decref(idx->by_tag);
        free(idx);
}

/* The position of ":tag" in a pin key. A key is pinlet_ref_key()'s normalized form without
 * a digest ("host[:port]/path:tag"; the store holds nothing else), so the tag's colon is
 * the last one after the last slash: a port's colon comes before the path's first slash.
 * Parsing every pin again would cost far more on the completion-queue thread. */
static const char *tag_colon(const char *key)
{
        const char *slash = strrchr(key, '/'), *colon = strrchr(key, ':');

        if (!slash || !colon || colon < slash || strchr(key, '@'))
                return NULL;
        return colon;
}

int pinlet_answers_index_add(struct pinlet_answers_index *idx, const char *reference,
                             const char *digest)
{
        const char *colon = tag_colon(reference);
        _cleanup_free_ char *pinned = NULL;
        json_t *tags;

        if (!colon || !digest || !*digest)
                return -EINVAL;
        if (json_object_get(idx->by_tag, reference))
                return -EEXIST;
        if (asprintf(&pinned, "%.*s@%s", (int)(colon - reference), reference, digest) < 0)
                return -ENOMEM;
        /* Keys come from the pin store (validated references and digests): ASCII, so
         * jansson's UTF-8 check is skipped. */
        if (json_object_set_new_nocheck(idx->by_tag, reference, json_string_nocheck(pinned)) < 0)
                return -ENOMEM;
        tags = json_object_get(idx->by_digest, pinned);
        if (!tags) {
                tags = json_array();
                if (!tags || json_object_set_new_nocheck(idx->by_digest, pinned, tags) < 0)
                        return -ENOMEM;
        }
        if (json_array_append_new(tags, json_string_nocheck(reference)) < 0)
                return -ENOMEM;
        return 0;
}

static int index_one(void *userdata, const struct pinlet_pin *pin)
{
        int r = pinlet_answers_index_add(userdata, pin->reference, pin->digest);

        return r == -EINVAL || r == -EEXIST ? 0 : r; /* not a tag: nothing to list */
}

int pinlet_answers_index_load(struct pinlet_answers_index *idx, struct pinlet_pins *pins)
{
        return pinlet_pins_list(pins, index_one, idx);
}

/* The index of the pins' current generation, shared by every answer until the pins
 * change: kubelet asks ImageStatus far more often than pins move. */
static struct {
        pthread_mutex_t lock;
        struct pinlet_answers_index *idx; /* one reference held here */
} last = { .lock = PTHREAD_MUTEX_INITIALIZER };

int pinlet_answers_index_get(struct pinlet_pins *pins, struct pinlet_answers_index **ret)
{
        _cleanup_answers_index_ struct pinlet_answers_index *idx = NULL;
        uint64_t generation = pinlet_pins_generation(pins);
        int r;

        pthread_mutex_lock(&last.lock);
        if (last.idx && last.idx->generation == generation) {
                atomic_fetch_add(&last.idx->refs, 1);
                *ret = last.idx;
                pthread_mutex_unlock(&last.lock);
                return 0;
        }
        pthread_mutex_unlock(&last.lock);

        /* Built outside the lock (one pass over the pins); labelled with the generation
         * read before the pass, so it is reused only while nothing changed since. */
        r = pinlet_answers_index_new(&idx);
        if (r < 0)
                return r;
        idx->generation = generation;
        r = pinlet_answers_index_load(idx, pins);
        if (r < 0)
                return r;
        atomic_fetch_add(&idx->refs, 1);
        pthread_mutex_lock(&last.lock);
        pinlet_answers_index_free(last.idx);
        last.idx = idx;
        pthread_mutex_unlock(&last.lock);
        *ret = TAKE_PTR(idx);
        return 0;
}

/* ---- names on the wire ---- */

/* A NUL-terminated copy of a wire name, or NULL when it holds a NUL byte (a name the
 * runtime cannot mean as its C string) or on allocation failure (*oom set). */
static char *wire_string(const ProtobufCBinaryData *b, bool *oom)
{
        char *s;

        if (b->len && memchr(b->data, 0, b->len))
                return NULL;
        s = strndup(b->len ? (const char *)b->data : "", b->len);
        if (!s)
                *oom = true;
        return s;
}

/* A name from the runtime in the form pins are keyed by (pinlet_ref_key(): host in lower
 * case, docker.io and library/ spelled out); a name pinlet cannot parse is compared as
 * written and *ret_bad is set. NULL: a NUL byte in the name (*ret_bad set), or no memory
 * (*oom). */
static char *wire_key_bad(const ProtobufCBinaryData *b, bool *oom, bool *ret_bad)
{
        _cleanup_free_ char *s = wire_string(b, oom);
        _cleanup_(pinlet_ref_freep) struct pinlet_ref *ref = NULL;
        char *key;

        *ret_bad = true;
        if (!s)
                return NULL;
        if (pinlet_ref_parse(s, &ref, NULL) < 0)
                return TAKE_PTR(s);
        *ret_bad = false;
        key = pinlet_ref_key(ref);
        if (!key)
                *oom = true;
        return key;
}

static char *wire_key(const ProtobufCBinaryData *b, bool *oom)
{
        bool bad;

        return wire_key_bad(b, oom, &bad);
}

/* A tag of the new list and whether it is no valid reference. */
struct tag_entry {
        ProtobufCBinaryData name;
        bool bad;
};

/* containerd's order of repo_tags (pkg/cri/store/image sortReferences): valid references
 * by rank (every tag ranks alike) then as strings, byte by byte; names that do not parse
 * after them, as strings too. */
static int cmp_tag(const void *a, const void *b)
{
        const struct tag_entry *x = a, *y = b;
        size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
        int r;

        if (x->bad != y->bad)
                return x->bad ? 1 : -1;
        r = n ? memcmp(x->name.data, y->name.data, n) : 0;
        if (r != 0)
                return r;
        return x->name.len < y->name.len ? -1 : x->name.len > y->name.len ? 1 : 0;
}

/* Normalized names of one answer (malloc'ed), sorted for bsearch: a few per image, where
 * a hash table (one per image, per call) cost more than the rest of the answer. */
struct keys {
        char **v;
        size_t n;
};

static void keys_done(struct keys *k)
{
        for (size_t i = 0; i < k->n; i++)
                free(k->v[i]);
        free(k->v);
}

/* Sorts the keys and drops repeated ones. */
static void keys_sort(struct keys *k)
{
        size_t n = 0;

        if (k->n > 1)
                qsort(k->v, k->n, sizeof(*k->v), pinlet_strcmp_ptr);
        for (size_t i = 0; i < k->n; i++) {
                if (n > 0 && strcmp(k->v[n - 1], k->v[i]) == 0)
                        free(k->v[i]);
                else
                        k->v[n++] = k->v[i];
        }
        k->n = n;
}

static bool keys_has(const struct keys *k, const char *s)
{
        return k->n > 0 && bsearch(&s, k->v, k->n, sizeof(*k->v), pinlet_strcmp_ptr);
}

/* The repo_tags one image should have. *ret_tags is NULL when they are the runtime's own;
 * otherwise a malloc'ed array (*ret_n entries) whose data borrow from img and idx. */
static int fix_image(const struct pinlet_answers_index *idx, const Pinlet__Cri__Image *img,
                     ProtobufCBinaryData **ret_tags, size_t *ret_n)
{
        _cleanup_(keys_done) struct keys digests = { 0 }, own = { 0 };
        _cleanup_free_ struct tag_entry *tags = NULL;
        ProtobufCBinaryData *out;
        bool oom = false, changed = false;
        size_t n = 0, cap = img->n_repo_tags;

        digests.v = calloc(img->n_repo_digests ? img->n_repo_digests : 1, sizeof(*digests.v));
        own.v = calloc(img->n_repo_tags ? img->n_repo_tags : 1, sizeof(*own.v));
        if (!digests.v || !own.v)
                return -ENOMEM;
        for (size_t i = 0; i < img->n_repo_digests; i++) {
                char *key = wire_key(&img->repo_digests[i], &oom);

                if (oom)
                        return -ENOMEM;
                if (key)
                        digests.v[digests.n++] = key;
        }
        /* unique: two spellings of one digest reference must not list its tags twice (the
         * index lists each pinned tag under one digest reference only) */
        keys_sort(&digests);
        for (size_t i = 0; i < digests.n; i++)
                cap += json_array_size(json_object_get(idx->by_digest, digests.v[i]));
        tags = calloc(cap ? cap : 1, sizeof(*tags));
        if (!tags)
                return -ENOMEM;

        /* The runtime's own tags stay, byte for byte, unless pinned to another image. */
        for (size_t i = 0; i < img->n_repo_tags; i++) {
                bool bad;
                char *key = wire_key_bad(&img->repo_tags[i], &oom, &bad);
                const char *pinned;

                if (oom)
                        return -ENOMEM;
                pinned = key ? json_string_value(json_object_get(idx->by_tag, key)) : NULL;
                if (pinned && !keys_has(&digests, pinned)) {
                        free(key);
                        changed = true; /* the tag moved: it belongs to its new image */
                        continue;
                }
                if (key)
                        own.v[own.n++] = key;
                tags[n++] = (struct tag_entry){ .name = img->repo_tags[i], .bad = bad };
        }
        keys_sort(&own);
        /* Then every tag pinned to one of this image's digests. */
        for (size_t i = 0; i < digests.n; i++) {
                json_t *pinned = json_object_get(idx->by_digest, digests.v[i]), *tag;
                size_t j;

                json_array_foreach(pinned, j, tag)
                {
                        const char *t = json_string_value(tag);

                        if (!t || keys_has(&own, t))
                                continue;
                        tags[n++] = (struct tag_entry){
                                .name = { .len = strlen(t), .data = (uint8_t *)t },
                        };
                        changed = true;
                }
        }
        if (!changed) {
                *ret_tags = NULL;
                *ret_n = 0;
                return 0;
        }
        qsort(tags, n, sizeof(*tags), cmp_tag);
        out = calloc(n ? n : 1, sizeof(*out));
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                out[i] = tags[i].name;
        *ret_tags = out;
        *ret_n = n;
        return 0;
}

static const char *kind_message(enum pinlet_answers_kind kind)
{
        return kind == PINLET_ANSWERS_IMAGE_STATUS ? "ImageStatusResponse" : "ListImagesResponse";
}

/* A decoded message that may be re-encoded, or NULL. */
static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *d, const uint8_t *data,
                                size_t len)
{
        static const uint8_t empty[1];
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data ? data : empty);

        if (m && !pinlet_intercept_message_valid(m)) {
                protobuf_c_message_free_unpacked(m, NULL);
                return NULL;
        }
        return m;
}

static void free_message(ProtobufCMessage **m)
{
        if (*m)
                protobuf_c_message_free_unpacked(*m, NULL);
}

/* Packs m into a new buffer of at most max_len bytes. */
static int pack(const ProtobufCMessage *m, const char *what, size_t max_len, uint8_t **ret_data,
                size_t *ret_len, struct pinlet_error **err)
{
        size_t size = protobuf_c_message_get_packed_size(m), packed;
        uint8_t *out;

        if (size > max_len)
                return pinlet_error_set(err, PINLET_E2BIG, "%s would grow to %zu bytes, over %zu",
                                        what, size, max_len);
        out = malloc(size ? size : 1);
        if (!out)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        packed = protobuf_c_message_pack(m, out);
        if (packed != size) {
                free(out);
                return pinlet_error_set(err, -EPROTO, "%s: packed %zu bytes, expected %zu", what,
                                        packed, size);
        }
        *ret_data = out;
        *ret_len = size;
        return PINLET_INTERCEPT_REWRITTEN;
}

int pinlet_answers_rewrite(enum pinlet_answers_kind kind, const struct pinlet_answers_index *idx,
                           const uint8_t *data, size_t len, size_t max_len, uint8_t **ret_data,
                           size_t *ret_len, struct pinlet_error **err)
{
        _cleanup_(free_message) ProtobufCMessage *msg = NULL;
        Pinlet__Cri__Image **images, *one;
        size_t n_images;
        /* per image: the new tags (NULL: unchanged) and the decoded ones, swapped back */
        _cleanup_free_ ProtobufCBinaryData **fixed = NULL, **saved = NULL;
        _cleanup_free_ size_t *fixed_n = NULL, *saved_n = NULL;
        bool changed = false;
        int r = 0;

        if (len > max_len)
                return pinlet_error_set(err, PINLET_E2BIG, "%s of %zu bytes exceeds %zu bytes",
                                        kind_message(kind), len, max_len);
        if (kind == PINLET_ANSWERS_IMAGE_STATUS) {
                msg = decode(&pinlet__cri__image_status_response__descriptor, data, len);
                one = msg ? ((Pinlet__Cri__ImageStatusResponse *)msg)->image : NULL;
                images = &one;
                n_images = one ? 1 : 0;
        } else {
                msg = decode(&pinlet__cri__list_images_response__descriptor, data, len);
                images = msg ? ((Pinlet__Cri__ListImagesResponse *)msg)->images : NULL;
                n_images = msg ? ((Pinlet__Cri__ListImagesResponse *)msg)->n_images : 0;
        }
        if (!msg)
                return pinlet_error_set(err, PINLET_EINVAL, "malformed %s", kind_message(kind));
        if (n_images == 0)
                return PINLET_INTERCEPT_UNCHANGED;

        fixed = calloc(n_images, sizeof(*fixed));
        saved = calloc(n_images, sizeof(*saved));
        fixed_n = calloc(n_images, sizeof(*fixed_n));
        saved_n = calloc(n_images, sizeof(*saved_n));
        if (!fixed || !saved || !fixed_n || !saved_n)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n_images && r >= 0; i++) {
                r = fix_image(idx, images[i], &fixed[i], &fixed_n[i]);
                changed = changed || fixed[i];
        }
        if (r >= 0 && changed) {
                /* The message keeps ownership of its own arrays: swap ours in for the
                 * pack, then back before it is freed. */
                for (size_t i = 0; i < n_images; i++)
                        if (fixed[i]) {
                                saved[i] = images[i]->repo_tags;
                                saved_n[i] = images[i]->n_repo_tags;
                                images[i]->repo_tags = fixed[i];
                                images[i]->n_repo_tags = fixed_n[i];
                        }
                r = pack(msg, kind_message(kind), max_len, ret_data, ret_len, err);
                for (size_t i = 0; i < n_images; i++)
                        if (fixed[i]) {
                                images[i]->repo_tags = saved[i];
                                images[i]->n_repo_tags = saved_n[i];
                        }
        } else if (r < 0) {
                r = pinlet_error_set(err, r, "out of memory");
        } else {
                r = PINLET_INTERCEPT_UNCHANGED;
        }
        for (size_t i = 0; i < n_images; i++)
                free(fixed[i]);
        return r;
}

/* ---- RemoveImage ---- */

/* The request's image.image as a C string (NULL when absent, empty or holding a NUL). */
static int remove_image_name(Pinlet__Cri__RemoveImageRequest *m, char **ret)
{
        bool oom = false;

        *ret = NULL;
        if (!m->image || m->image->image.len == 0)
                return 0;
        *ret = wire_string(&m->image->image, &oom);
        return oom ? -ENOMEM : 0;
}

/* The tag the request names as parsed reference and pin key; 0 when it names none. */
static int remove_tag(Pinlet__Cri__RemoveImageRequest *m, struct pinlet_hosts *short_names,
                      struct pinlet_ref **ret_ref, char **ret_key)
{
        _cleanup_free_ char *image = NULL, *why = NULL;
        _cleanup_(pinlet_ref_freep) struct pinlet_ref *ref = NULL;
        int r;

        r = remove_image_name(m, &image);
        if (r < 0 || !image)
                return r;
        /* An image ID ("sha256:…", or the bare hex kubelet's GC sends) is no tag, nor is a
         * short name the runtime would not qualify to one registry. */
        if (pinlet_ref_is_image_id(image))
                return 0;
        r = pinlet_interceptor_parse_image(short_names, image, &ref, &why, NULL);
        if (r == -ENOMEM)
                return r;
        if (r != 0)
                return 0;
        if (ref->digest || !ref->tag)
                return 0;
        *ret_key = pinlet_ref_key(ref);
        if (!*ret_key)
                return -ENOMEM;
        *ret_ref = TAKE_PTR(ref);
        return 1;
}

static Pinlet__Cri__RemoveImageRequest *decode_remove(const uint8_t *data, size_t len,
                                                      size_t max_len, struct pinlet_error **err)
{
        ProtobufCMessage *m;

        if (len > max_len) {
                pinlet_error_set(err, PINLET_E2BIG, "RemoveImageRequest of %zu bytes exceeds %zu",
                                 len, max_len);
                return NULL;
        }
        m = decode(&pinlet__cri__remove_image_request__descriptor, data, len);
        if (!m)
                pinlet_error_set(err, PINLET_EINVAL, "malformed RemoveImageRequest");
        return (Pinlet__Cri__RemoveImageRequest *)m;
}

int pinlet_answers_remove_key(const uint8_t *data, size_t len, size_t max_len,
                              struct pinlet_hosts *short_names, char **ret_key,
                              struct pinlet_error **err)
{
        _cleanup_(free_message) ProtobufCMessage *msg = NULL;
        _cleanup_(pinlet_ref_freep) struct pinlet_ref *ref = NULL;
        char *key = NULL;
        int r;

        msg = (ProtobufCMessage *)decode_remove(data, len, max_len, err);
        if (!msg)
                return len > max_len ? PINLET_E2BIG : PINLET_EINVAL;
        r = remove_tag((Pinlet__Cri__RemoveImageRequest *)msg, short_names, &ref, &key);
        if (r < 0)
                return pinlet_error_set(err, r, "out of memory");
        if (r > 0)
                *ret_key = key;
        return r;
}

int pinlet_answers_remove_rewrite(const uint8_t *data, size_t len, size_t max_len,
                                  struct pinlet_hosts *short_names, struct pinlet_pins *pins,
                                  uint8_t **ret_data, size_t *ret_len, struct pinlet_error **err)
{
        _cleanup_(free_message) ProtobufCMessage *msg = NULL;
        _cleanup_(pinlet_ref_freep) struct pinlet_ref *ref = NULL;
        _cleanup_free_ char *key = NULL, *digest = NULL, *pinned = NULL;
        Pinlet__Cri__RemoveImageRequest *m;
        ProtobufCBinaryData saved;
        int r;

        m = decode_remove(data, len, max_len, err);
        if (!m)
                return len > max_len ? PINLET_E2BIG : PINLET_EINVAL;
        msg = &m->base;
        r = remove_tag(m, short_names, &ref, &key);
        if (r < 0)
                return pinlet_error_set(err, r, "out of memory");
        if (r == 0)
                return PINLET_INTERCEPT_UNCHANGED;
        r = pinlet_pins_lookup(pins, key, &digest);
        if (r == -ENOENT)
                return PINLET_INTERCEPT_UNCHANGED;
        if (r < 0)
                return pinlet_error_set(err, r, "pin of %s: %s", key, strerror(-r));
        pinned = pinlet_ref_with_digest(ref, digest);
        if (!pinned)
                return pinlet_error_set(err, errno == EINVAL ? PINLET_EINVAL : -ENOMEM,
                                        "pin of %s: cannot name %s", key, digest);
        saved = m->image->image;
        m->image->image = (ProtobufCBinaryData){ .len = strlen(pinned), .data = (uint8_t *)pinned };
        r = pack(msg, "RemoveImageRequest", max_len, ret_data, ret_len, err);
        m->image->image = saved;
        return r;
}

/* ---- hooks ---- */

/* The pin store when pinlet pins (mode enforce), else NULL: in audit mode the runtime
 * pulled the tags itself and its answers already hold them. */
static struct pinlet_pins *enforced_pins(void *userdata)
{
        const struct pinlet_config *cfg = pinlet_interceptor_config(userdata);

        if (!cfg || cfg->mode != PINLET_MODE_ENFORCE)
                return NULL;
        return pinlet_interceptor_pins(userdata);
}

static void respond(enum pinlet_answers_kind kind, void *userdata, int status,
                    const uint8_t *response, size_t response_len,
                    struct pinlet_intercept_result *ret)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_answers_index_ struct pinlet_answers_index *idx = NULL;
        struct pinlet_pins *pins = enforced_pins(userdata);
        uint8_t *out = NULL;
        size_t out_len = 0;
        int r;

        *ret = (struct pinlet_intercept_result){ .action = PINLET_FORWARD_ORIGINAL };
        if (!pins || status != GRPC_STATUS_OK || !response || pinlet_pins_size(pins) == 0)
                return;
        r = pinlet_answers_index_get(pins, &idx);
        if (r < 0) {
                log_warn("%s: cannot index the pins (%s): the runtime's answer passes unchanged",
                         kind_message(kind), strerror(-r));
                return;
        }
        r = pinlet_answers_rewrite(kind, idx, response, response_len,
                                   pinlet_interceptor_config(userdata)->max_message_size, &out,
                                   &out_len, &err);
        if (r < 0) {
                log_warn("%s: the runtime's answer passes unchanged: %s", kind_message(kind),
                         pinlet_error_message(err, r));
                return;
        }
        if (r == PINLET_INTERCEPT_REWRITTEN) {
                ret->action = PINLET_FORWARD_REWRITTEN;
                ret->data = out;
                ret->len = out_len;
        }
}

void pinlet_answers_image_status(void *userdata, const struct pinlet_call_info *info,
                                 const uint8_t *request, size_t request_len, int status,
                                 const uint8_t *response, size_t response_len,
                                 struct pinlet_intercept_result *ret)
{
        respond(PINLET_ANSWERS_IMAGE_STATUS, userdata, status, response, response_len, ret);
}

void pinlet_answers_list_images(void *userdata, const struct pinlet_call_info *info,
                                const uint8_t *request, size_t request_len, int status,
                                const uint8_t *response, size_t response_len,
                                struct pinlet_intercept_result *ret)
{
        respond(PINLET_ANSWERS_LIST_IMAGES, userdata, status, response, response_len, ret);
}

void pinlet_answers_remove_image_request(void *userdata, const struct pinlet_call_info *info,
                                         const uint8_t *request, size_t len,
                                         struct pinlet_intercept_result *ret)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *pins = enforced_pins(userdata);
        uint8_t *out = NULL;
        size_t out_len = 0;
        int r;

        *ret = (struct pinlet_intercept_result){ .action = PINLET_FORWARD_ORIGINAL };
        if (!pins)
                return;
        /* The lookup takes the store's shared lock only: fine on the CQ thread. A request
         * pinlet cannot read goes to the runtime as it came, which answers it. */
        r = pinlet_answers_remove_rewrite(
                request, len, pinlet_interceptor_config(userdata)->max_message_size,
                pinlet_interceptor_short_names(userdata), pins, &out, &out_len, &err);
        if (r < 0) {
                log_debug("RemoveImage passes unchanged: %s", pinlet_error_message(err, r));
                return;
        }
        if (r == PINLET_INTERCEPT_REWRITTEN) {
                ret->action = PINLET_FORWARD_REWRITTEN;
                ret->data = out;
                ret->len = out_len;
        }
}

void pinlet_answers_remove_image(void *userdata, const struct pinlet_call_info *info,
                                 const uint8_t *request, size_t request_len, int status,
                                 const uint8_t *response, size_t response_len,
                                 struct pinlet_intercept_result *ret)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_free_ char *key = NULL, *digest = NULL;
        struct pinlet_pins *pins = enforced_pins(userdata);
        int r;

        *ret = (struct pinlet_intercept_result){ .action = PINLET_FORWARD_ORIGINAL };
        if (!pins || status != GRPC_STATUS_OK)
                return;
        r = pinlet_answers_remove_key(request, request_len,
                                      pinlet_interceptor_config(userdata)->max_message_size,
                                      pinlet_interceptor_short_names(userdata), &key, &err);
        if (r <= 0 || pinlet_pins_lookup(pins, key, &digest) < 0)
                return; /* no tag, or a tag without a pin: nothing to forget */
        if (!info->may_block) {
                /* forget() fdatasyncs: not on the completion-queue thread */
                ret->action = PINLET_DEFER;
                return;
        }
        /* The runtime removed the pinned image, so the pin would name an image the node no
         * longer has. (A PullImage of the same tag racing with this RemoveImage may have
         * moved the pin meanwhile; it is forgotten too, and the next pull pins again.) */
        r = pinlet_pins_forget(pins, key, &err);
        if (r < 0)
                log_warn("RemoveImage %s: cannot forget the pin: %s", key,
                         pinlet_error_message(err, r));
        else if (r > 0)
                log_info("RemoveImage %s: removed %s, pin forgotten", key, digest);
}
