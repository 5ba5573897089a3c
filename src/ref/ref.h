/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image references, parsed and normalized as the distribution reference grammar does
 * (and so as containerd and kubelet do):
 *
 *   nginx                     -> docker.io/library/nginx:latest
 *   nginx:1.25                -> docker.io/library/nginx:1.25
 *   index.docker.io/foo/bar   -> docker.io/foo/bar:latest
 *   localhost/app             -> localhost/app:latest
 *   [::1]:5000/app:v1@sha256:…  keeps both tag and digest
 *
 * Image IDs ("sha256:<64 hex>" and bare 64 hex) are not references: callers check
 * pinlet_ref_is_image_id() first and leave them alone.
 *
 * Pure code: no I/O, no globals; safe from any thread.
 */
#pragma once

#include <stdbool.h>

#include "util/error.h"

#define PINLET_REF_NAME_MAX 255 /* repository name, domain included */
#define PINLET_REF_TAG_MAX  128

struct pinlet_ref {
        char *domain; /* "docker.io", "127.0.0.1:5000", "[::1]:5000", "localhost" */
        char *path;   /* "library/nginx"; never starts or ends with '/' */
        char *tag;    /* NULL when none was given and a digest was; else set ("latest"
                       * applied when neither tag nor digest was given) */
        char *digest; /* "sha256:<64 hex>" or NULL */
        bool tag_defaulted; /* tag is "latest" because the input named neither */
};

/* Parses and normalizes s. Errors (-EINVAL) say what is wrong: "invalid reference
 * 'Nginx': repository name must be lowercase". */
int pinlet_ref_parse(const char *s, struct pinlet_ref **ret, struct pinlet_error **err);

void pinlet_ref_free(struct pinlet_ref *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_ref *, pinlet_ref_free)
#define _cleanup_ref_ _cleanup_(pinlet_ref_freep)

/* "sha256:<64 lowercase hex>" or 64 lowercase hex alone. */
bool pinlet_ref_is_image_id(const char *s);

/* Validates "algorithm:hex" (sha256: 64 hex, sha384: 96, sha512: 128). */
bool pinlet_ref_digest_valid(const char *digest);

/* Newly allocated strings; NULL only on allocation failure. */
char *pinlet_ref_name(const struct pinlet_ref *r);       /* domain/path */
char *pinlet_ref_string(const struct pinlet_ref *r);     /* name[:tag][@digest] */
char *pinlet_ref_familiar(const struct pinlet_ref *r);   /* short form: "nginx:1.25" */
/* name@digest: the pinned form, with the given digest (r's own when digest is NULL). */
char *pinlet_ref_with_digest(const struct pinlet_ref *r, const char *digest);
