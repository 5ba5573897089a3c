/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pure CRI request rewriting: request bytes in, rewritten bytes or "unchanged" out.
 *
 * pinlet rewrites image references in three CRI requests and nothing else:
 *
 *   PullImage        image.image                                   (+ auth, sandbox_config)
 *   ImageStatus      image.image
 *   CreateContainer  config.image.image, config.mounts[i].image.image (+ sandbox_config)
 *
 * A request is decoded with protobuf-c against pinlet's minimal schema (proto/cri.proto).
 * Every field the schema does not model is kept by protobuf-c as an unknown field and
 * written back byte for byte when the request is re-encoded, so nothing kubelet sends is
 * lost. A request is re-encoded only when a slot actually changed; otherwise the caller
 * forwards the original bytes, which makes "unchanged" byte-identical by construction.
 *
 * Re-encoding is semantically, not byte-wise, identical: protobuf-c writes the modelled
 * fields in field-number order followed by the unknown ones (in their original order), and
 * drops modelled proto3 fields that hold their default value. Protobuf parsers do not care
 * (the wire format is order-free and defaults are implicit).
 *
 * ImageSpec.user_specified_image is never touched: it records what the user wrote.
 *
 * Pure code: no I/O, no globals; a request object is used by one thread at a time.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* A request with a NUL byte in a text field (the class of that decode error). */
#define PINLET_INTERCEPT_ENUL (-EILSEQ)
/* A replacement image reference longer than this is refused (a reference is at most a
 * 255-byte name, a 128-byte tag and a sha512 digest). */
#define PINLET_INTERCEPT_MAX_IMAGE 1024

enum pinlet_intercept_kind {
        PINLET_INTERCEPT_PULL_IMAGE,       /* ImageService/PullImage */
        PINLET_INTERCEPT_IMAGE_STATUS,     /* ImageService/ImageStatus */
        PINLET_INTERCEPT_CREATE_CONTAINER, /* RuntimeService/CreateContainer */
        _PINLET_INTERCEPT_KIND_MAX,
};

/* "PullImageRequest", "ImageStatusRequest", "CreateContainerRequest". */
const char *pinlet_intercept_kind_message(enum pinlet_intercept_kind kind);
/* "PullImage", "ImageStatus", "CreateContainer". */
const char *pinlet_intercept_kind_method(enum pinlet_intercept_kind kind);

/* One image reference in a request that may be replaced. */
struct pinlet_intercept_slot {
        const char *image; /* current value, borrowed from the decoded request; may be "" */
        const char *user_specified; /* ImageSpec.user_specified_image; may be "" */
        char *where;                /* owned: "image", "config.image", "config.mounts[2].image" */
        char *replacement;          /* owned; NULL while the slot is unchanged */
        void *spec;                 /* private: the decoded ImageSpec holding image */
};

/*
 * Credentials kubelet sent with a PullImage (AuthConfig). Borrowed strings, never NULL
 * (protobuf's absent string is ""). Secrets: never log, audit or put in an error.
 */
struct pinlet_intercept_auth {
        const char *username;
        const char *password;
        const char *auth; /* base64("username:password") */
        const char *server_address;
        const char *identity_token;
        const char *registry_token;
};

/* A decoded request. All borrowed strings live as long as the request. */
struct pinlet_intercept_request {
        enum pinlet_intercept_kind kind;

        /* Slots in wire order: PullImage/ImageStatus: image (when the ImageSpec is present);
         * CreateContainer: config.image, then every mount that carries an ImageSpec. */
        struct pinlet_intercept_slot *slots;
        size_t n_slots;

        /* sandbox_config.metadata (PullImage, CreateContainer); NULL when absent. */
        const char *pod_namespace;
        const char *pod_name;
        const char *pod_uid;
        /* config.metadata.name (CreateContainer); NULL when absent. */
        const char *container_name;
        /* CreateContainer pod_sandbox_id; NULL for the other kinds. */
        const char *pod_sandbox_id;
        /* PullImage auth; NULL when absent. Points into this struct. */
        const struct pinlet_intercept_auth *auth;

        /* private */
        struct pinlet_intercept_auth auth_storage;
        char **strings; /* owned NUL-terminated copies of the text fields read */
        size_t n_strings;
        void *msg; /* ProtobufCMessage *, owned */
};

/*
 * Decodes request bytes of the given kind. len above max_len (the configured
 * max_message_size) fails with PINLET_E2BIG; bytes that are not a valid encoding of the
 * message fail with PINLET_EINVAL and the message "malformed <Message>" (the caller
 * prefixes "pinlet: " and maps it to INVALID_ARGUMENT). A text field holding a NUL byte
 * (valid protobuf, but its C string would mean another name) fails with
 * PINLET_INTERCEPT_ENUL: "<Message> field <path> contains a NUL byte". Every string the
 * request exposes is NUL-free and exactly its wire value. data is not referenced after the
 * call.
 */
int pinlet_intercept_request_decode(enum pinlet_intercept_kind kind, const uint8_t *data,
                                    size_t len, size_t max_len,
                                    struct pinlet_intercept_request **ret,
                                    struct pinlet_error **err);

/*
 * Sets the replacement for slots[index] (copied). Setting the value the slot already holds
 * clears the replacement: nothing changed. -EINVAL for a bad index, an empty image or one
 * longer than PINLET_INTERCEPT_MAX_IMAGE.
 */
int pinlet_intercept_request_set_image(struct pinlet_intercept_request *r, size_t index,
                                       const char *image, struct pinlet_error **err);

/* True when at least one slot has a replacement. */
bool pinlet_intercept_request_changed(const struct pinlet_intercept_request *r);

#define PINLET_INTERCEPT_UNCHANGED 0 /* forward the original bytes; ret_* untouched */
#define PINLET_INTERCEPT_REWRITTEN 1 /* *ret_data (malloc'ed, caller frees) holds the request */

/*
 * Encodes the request with the replacements applied. Returns PINLET_INTERCEPT_UNCHANGED
 * when no slot has a replacement, PINLET_INTERCEPT_REWRITTEN with the new bytes, or a
 * negative error (-ENOMEM). The request itself is not modified and may be encoded again.
 */
int pinlet_intercept_request_encode(const struct pinlet_intercept_request *r, uint8_t **ret_data,
                                    size_t *ret_len, struct pinlet_error **err);

/* Whether a message protobuf-c decoded (a ProtobufCMessage *) re-encodes to bytes that
 * decode again: false when it kept an unknown field with number 0 or above 2^29 - 1
 * (protobuf-c 1.4 accepts both). Every decoder that may re-encode checks this. */
bool pinlet_intercept_message_valid(const void *msg);

void pinlet_intercept_request_free(struct pinlet_intercept_request *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_intercept_request *, pinlet_intercept_request_free)
#define _cleanup_intercept_request_ _cleanup_(pinlet_intercept_request_freep)
