/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRI request rewriting on protobuf-c: decode against the minimal schema, expose the image
 * slots, re-encode only when a slot changed. See rewrite.h for the guarantees.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cri.pb-c.h"
#include "intercept/rewrite.h"

static const ProtobufCMessageDescriptor *const kind_descriptor[_PINLET_INTERCEPT_KIND_MAX] = {
        [PINLET_INTERCEPT_PULL_IMAGE] = &pinlet__cri__pull_image_request__descriptor,
        [PINLET_INTERCEPT_IMAGE_STATUS] = &pinlet__cri__image_status_request__descriptor,
        [PINLET_INTERCEPT_CREATE_CONTAINER] = &pinlet__cri__create_container_request__descriptor,
};

static const char *const kind_message[_PINLET_INTERCEPT_KIND_MAX] = {
        [PINLET_INTERCEPT_PULL_IMAGE] = "PullImageRequest",
        [PINLET_INTERCEPT_IMAGE_STATUS] = "ImageStatusRequest",
        [PINLET_INTERCEPT_CREATE_CONTAINER] = "CreateContainerRequest",
};

static const char *const kind_method[_PINLET_INTERCEPT_KIND_MAX] = {
        [PINLET_INTERCEPT_PULL_IMAGE] = "PullImage",
        [PINLET_INTERCEPT_IMAGE_STATUS] = "ImageStatus",
        [PINLET_INTERCEPT_CREATE_CONTAINER] = "CreateContainer",
};

static bool kind_valid(enum pinlet_intercept_kind kind)
{
        return (unsigned)kind < _PINLET_INTERCEPT_KIND_MAX;
}

const char *pinlet_intercept_kind_message(enum pinlet_intercept_kind kind)
{
        return kind_valid(kind) ? kind_message[kind] : "request";
}

const char *pinlet_intercept_kind_method(enum pinlet_intercept_kind kind)
{
        return kind_valid(kind) ? kind_method[kind] : "unknown";
}

/* The decoded AuthConfig's secrets do not outlive the call in freed memory. */
static void zero_auth(Pinlet__Cri__AuthConfig *a)
{
        ProtobufCBinaryData *secrets[] = { &a->username, &a->password, &a->auth, &a->identity_token,
                                           &a->registry_token };

        for (size_t i = 0; i < ELEMENTSOF(secrets); i++)
                if (secrets[i]->data)
                        explicit_bzero(secrets[i]->data, secrets[i]->len);
}

void pinlet_intercept_request_free(struct pinlet_intercept_request *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n_slots; i++) {
                free(r->slots[i].where);
                free(r->slots[i].replacement);
        }
        free(r->slots);
        for (size_t i = 0; i < r->n_strings; i++) {
                explicit_bzero(r->strings[i], strlen(r->strings[i]));
                free(r->strings[i]);
        }
        free(r->strings);
        if (r->msg && r->kind == PINLET_INTERCEPT_PULL_IMAGE &&
            ((Pinlet__Cri__PullImageRequest *)r->msg)->auth)
                zero_auth(((Pinlet__Cri__PullImageRequest *)r->msg)->auth);
        if (r->msg)
                protobuf_c_message_free_unpacked(r->msg, NULL);
        free(r);
}

/* A NUL-terminated copy of a text field, owned by the request (r->strings, sized for
 * every text field of the message beforehand). The field was checked to hold no NUL. */
static const char *text(struct pinlet_intercept_request *r, const ProtobufCBinaryData *b)
{
        char *s = malloc(b->len + 1);

        if (!s)
                return NULL;
        if (b->len)
                memcpy(s, b->data, b->len);
        s[b->len] = '\0';
        r->strings[r->n_strings++] = s;
        return s;
}

/* Appends a slot for spec; r->slots was sized for the maximum beforehand. */
static int add_slot(struct pinlet_intercept_request *r, Pinlet__Cri__ImageSpec *spec,
                    const char *where)
{
        struct pinlet_intercept_slot *s = &r->slots[r->n_slots];

        s->where = strdup(where);
        s->image = text(r, &spec->image);
        s->user_specified = text(r, &spec->user_specified_image);
        if (!s->where || !s->image || !s->user_specified)
                return -ENOMEM;
        s->spec = spec;
        s->replacement = NULL;
        r->n_slots++;
        return 0;
}

static int set_pod(struct pinlet_intercept_request *r, const Pinlet__Cri__PodSandboxConfig *sc)
{
        if (!sc || !sc->metadata)
                return 0;
        r->pod_namespace = text(r, &sc->metadata->namespace_);
        r->pod_name = text(r, &sc->metadata->name);
        r->pod_uid = text(r, &sc->metadata->uid);
        return r->pod_namespace && r->pod_name && r->pod_uid ? 0 : -ENOMEM;
}

static int expose_pull(struct pinlet_intercept_request *r, Pinlet__Cri__PullImageRequest *m)
{
        int ret;

        r->slots = calloc(1, sizeof(*r->slots));
        if (!r->slots)
                return -ENOMEM;
        if (m->image) {
                ret = add_slot(r, m->image, "image");
                if (ret < 0)
                        return ret;
        }
        if (m->auth) {
                struct pinlet_intercept_auth *a = &r->auth_storage;

                *a = (struct pinlet_intercept_auth){
                        .username = text(r, &m->auth->username),
                        .password = text(r, &m->auth->password),
                        .auth = text(r, &m->auth->auth),
                        .server_address = text(r, &m->auth->server_address),
                        .identity_token = text(r, &m->auth->identity_token),
                        .registry_token = text(r, &m->auth->registry_token),
                };
                if (!a->username || !a->password || !a->auth || !a->server_address ||
                    !a->identity_token || !a->registry_token)
                        return -ENOMEM;
                r->auth = a;
        }
        return set_pod(r, m->sandbox_config);
}

static int expose_status(struct pinlet_intercept_request *r, Pinlet__Cri__ImageStatusRequest *m)
{
        r->slots = calloc(1, sizeof(*r->slots));
        if (!r->slots)
                return -ENOMEM;
        if (m->image)
                return add_slot(r, m->image, "image");
        return 0;
}

static int expose_create(struct pinlet_intercept_request *r, Pinlet__Cri__CreateContainerRequest *m)
{
        Pinlet__Cri__ContainerConfig *c = m->config;
        int ret;

        r->pod_sandbox_id = text(r, &m->pod_sandbox_id);
        if (!r->pod_sandbox_id)
                return -ENOMEM;
        ret = set_pod(r, m->sandbox_config);
        if (ret < 0)
                return ret;
        if (!c)
                return 0;
        if (c->metadata && !(r->container_name = text(r, &c->metadata->name)))
                return -ENOMEM;
        /* n_mounts is bounded by the input size (each mount costs at least two bytes). */
        r->slots = calloc(c->n_mounts + 1, sizeof(*r->slots));
        if (!r->slots)
                return -ENOMEM;
        if (c->image) {
                ret = add_slot(r, c->image, "config.image");
                if (ret < 0)
                        return ret;
        }
        for (size_t i = 0; i < c->n_mounts; i++) {
                char where[64];

                if (!c->mounts[i]->image)
                        continue;
                snprintf(where, sizeof(where), "config.mounts[%zu].image", i);
                ret = add_slot(r, c->mounts[i]->image, where);
                if (ret < 0)
                        return ret;
        }
        return 0;
}

/* Largest field number protobuf allows (2^29 - 1). */
#define FIELD_NUMBER_MAX 536870911u

/*
 * protobuf-c 1.4 accepts field number 0 when the tag is spelled as an overlong varint
 * ("85 00") and keeps it as an unknown field, then writes it back as the single byte that
 * its own parser (and Go's) rejects; numbers past 2^29 - 1 would overflow on re-encoding.
 * Both are invalid protobuf: refuse them so every accepted request re-encodes to bytes
 * that decode again. Walks every modelled message of the tree through its descriptor.
 */
static bool unknown_fields_valid(const ProtobufCMessage *m)
{
        const char *base = (const char *)m;

        if (!m)
                return true;
        for (unsigned i = 0; i < m->n_unknown_fields; i++)
                if (m->unknown_fields[i].tag == 0 || m->unknown_fields[i].tag > FIELD_NUMBER_MAX)
                        return false;
        for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];

                if (f->type != PROTOBUF_C_TYPE_MESSAGE)
                        continue;
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t n = *(const size_t *)(base + f->quantifier_offset);
                        ProtobufCMessage *const *items =
                                *(ProtobufCMessage *const *const *)(base + f->offset);

                        for (size_t j = 0; j < n; j++)
                                if (!unknown_fields_valid(items[j]))
                                        return false;
                } else if (!unknown_fields_valid(*(ProtobufCMessage *const *)(base + f->offset))) {
                        return false;
                }
        }
        return true;
}

bool pinlet_intercept_message_valid(const void *msg)
{
        return unknown_fields_valid(msg);
}

/*
 * Walks every text (bytes) field of the message tree: counts them into *n and finds the
 * first that holds a NUL byte, whose dotted path (relative to m) goes into path. Returns
 * false at such a field.
 */
static bool text_fields_valid(const ProtobufCMessage *m, char *path, size_t size, size_t *n)
{
        const char *base = (const char *)m;

        if (!m)
                return true;
        for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];

                if (f->type == PROTOBUF_C_TYPE_BYTES && f->label != PROTOBUF_C_LABEL_REPEATED) {
                        const ProtobufCBinaryData *b =
                                (const ProtobufCBinaryData *)(base + f->offset);

                        (*n)++;
                        if (b->len && memchr(b->data, 0, b->len)) {
                                snprintf(path, size, "%s", f->name);
                                return false;
                        }
                } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                        size_t count = 1;
                        ProtobufCMessage *const *items =
                                (ProtobufCMessage *const *)(base + f->offset);

                        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                                count = *(const size_t *)(base + f->quantifier_offset);
                                items = *(ProtobufCMessage *const *const *)(base + f->offset);
                        }
                        for (size_t j = 0; j < count; j++) {
                                char sub[256];

                                if (text_fields_valid(items[j], sub, sizeof(sub), n))
                                        continue;
                                /* a path cut short still names the field well enough */
                                if ((f->label == PROTOBUF_C_LABEL_REPEATED
                                             ? snprintf(path, size, "%s[%zu].%s", f->name, j, sub)
                                             : snprintf(path, size, "%s.%s", f->name, sub)) < 0)
                                        path[0] = '\0';
                                return false;
                        }
                }
        }
        return true;
}

int pinlet_intercept_request_decode(enum pinlet_intercept_kind kind, const uint8_t *data,
                                    size_t len, size_t max_len,
                                    struct pinlet_intercept_request **ret,
                                    struct pinlet_error **err)
{
        static const uint8_t empty[1];
        struct pinlet_intercept_request *r = NULL;
        char path[256];
        size_t n_text = 0;
        int k;

        if (!kind_valid(kind))
                return pinlet_error_set(err, PINLET_EINVAL, "unknown request kind %d", (int)kind);
        if (len > max_len)
                return pinlet_error_set(err, PINLET_E2BIG, "%s of %zu bytes exceeds %zu bytes",
                                        kind_message[kind], len, max_len);

        r = calloc(1, sizeof(*r));
        if (!r)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        r->kind = kind;
        /* protobuf-c cannot tell malformed input from an allocation failure (both NULL);
         * the input is the likelier culprit. */
        r->msg = protobuf_c_message_unpack(kind_descriptor[kind], NULL, len, data ? data : empty);
        if (!r->msg || !unknown_fields_valid(r->msg)) {
                pinlet_intercept_request_free(r);
                return pinlet_error_set(err, PINLET_EINVAL, "malformed %s", kind_message[kind]);
        }
        if (!text_fields_valid(r->msg, path, sizeof(path), &n_text)) {
                pinlet_intercept_request_free(r);
                return pinlet_error_set(err, PINLET_INTERCEPT_ENUL,
                                        "%s field %s contains a NUL byte", kind_message[kind],
                                        path);
        }
        r->strings = calloc(n_text ? n_text : 1, sizeof(*r->strings));
        if (!r->strings) {
                pinlet_intercept_request_free(r);
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        }

        switch (kind) {
        case PINLET_INTERCEPT_PULL_IMAGE:
                k = expose_pull(r, r->msg);
                break;
        case PINLET_INTERCEPT_IMAGE_STATUS:
                k = expose_status(r, r->msg);
                break;
        default:
                k = expose_create(r, r->msg);
                break;
        }
        if (k < 0) {
                pinlet_intercept_request_free(r);
                return pinlet_error_set(err, k, "out of memory");
        }
        *ret = r;
        return 0;
}

int pinlet_intercept_request_set_image(struct pinlet_intercept_request *r, size_t index,
                                       const char *image, struct pinlet_error **err)
{
        struct pinlet_intercept_slot *s;
        size_t n;
        char *copy;

        if (!r || index >= r->n_slots)
                return pinlet_error_set(err, PINLET_EINVAL, "no image slot %zu", index);
        s = &r->slots[index];
        n = image ? strnlen(image, PINLET_INTERCEPT_MAX_IMAGE + 1) : 0;
        if (n == 0)
                return pinlet_error_set(err, PINLET_EINVAL, "empty replacement for %s", s->where);
        if (n > PINLET_INTERCEPT_MAX_IMAGE)
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "replacement for %s longer than %d bytes", s->where,
                                        PINLET_INTERCEPT_MAX_IMAGE);
        if (streq_ptr(image, s->image)) {
                free(s->replacement);
                s->replacement = NULL;
                return 0;
        }
        copy = strdup(image);
        if (!copy)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        free(s->replacement);
        s->replacement = copy;
        return 0;
}

bool pinlet_intercept_request_changed(const struct pinlet_intercept_request *r)
{
        for (size_t i = 0; r && i < r->n_slots; i++)
                if (r->slots[i].replacement)
                        return true;
        return false;
}

/* Swaps the replacement strings into (restore=false) or out of (restore=true) the decoded
 * message. The message keeps ownership of its own data throughout. */
static void swap_slots(const struct pinlet_intercept_request *r, ProtobufCBinaryData *saved,
                       bool restore)
{
        for (size_t i = 0; i < r->n_slots; i++) {
                Pinlet__Cri__ImageSpec *spec = r->slots[i].spec;
                char *repl = r->slots[i].replacement;

                if (!repl)
                        continue;
                if (restore) {
                        spec->image = saved[i];
                } else {
                        saved[i] = spec->image;
                        spec->image = (ProtobufCBinaryData){ .len = strlen(repl),
                                                             .data = (uint8_t *)repl };
                }
        }
}

int pinlet_intercept_request_encode(const struct pinlet_intercept_request *r, uint8_t **ret_data,
                                    size_t *ret_len, struct pinlet_error **err)
{
        _cleanup_free_ ProtobufCBinaryData *saved = NULL;
        uint8_t *out;
        size_t size, packed;

        if (!pinlet_intercept_request_changed(r))
                return PINLET_INTERCEPT_UNCHANGED;

        saved = calloc(r->n_slots, sizeof(*saved));
        if (!saved)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        swap_slots(r, saved, false);
        size = protobuf_c_message_get_packed_size(r->msg);
        out = malloc(size ? size : 1);
        if (!out) {
                swap_slots(r, saved, true);
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        packed = protobuf_c_message_pack(r->msg, out);
        swap_slots(r, saved, true);
        if (packed != size) {
                free(out);
                return pinlet_error_set(err, -EPROTO, "%s: packed %zu bytes, expected %zu",
                                        kind_message[r->kind], packed, size);
        }
        *ret_data = out;
        *ret_len = size;
        return PINLET_INTERCEPT_REWRITTEN;
}
