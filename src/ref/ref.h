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
 * pinlet_ref_is_image_id() first and leave them alone; pinlet_ref_parse() rejects them
 * ("is an image ID, not a reference").
 *
 * Rules (distribution/reference ParseNormalizedNamed + TagNameOnly; ref.c quotes the
 * grammar line by line and lists where pinlet is stricter):
 *  - The first '/'-separated element is the domain when it is "localhost", contains '.' or
 *    ':' (hosts, IPv4, "[IPv6]:port"), or contains an uppercase letter; otherwise the domain
 *    is docker.io. Without any '/' the domain is docker.io ("localhost:5000" is the image
 *    docker.io/library/localhost with tag 5000, as in docker).
 *  - "index.docker.io" becomes "docker.io"; single-component Docker Hub paths get
 *    "library/". Other spellings (registry-1.docker.io, Docker.io) are kept as given.
 *  - Domains may contain uppercase letters; paths must be lowercase.
 *  - domain/path is at most 255 characters (after normalization), a tag at most 128.
 *  - Digests: sha256 (64 hex), sha384 (96), sha512 (128), lowercase hex only; other
 *    algorithms are refused as unsupported (containerd registers only these).
 *  - "name:tag@digest" keeps both.
 *
 * Pure code: no I/O, no globals; safe from any thread.
 */
#pragma once

#include <stdbool.h>

#include "util/error.h"

#define PINLET_REF_NAME_MAX 255 /* repository name, domain included */
#define PINLET_REF_TAG_MAX  128

struct pinlet_ref {
        char *domain;       /* "docker.io", "127.0.0.1:5000", "[::1]:5000", "localhost" */
        char *path;         /* "library/nginx"; never starts or ends with '/' */
        char *tag;          /* NULL when none was given and a digest was; else set ("latest"
                             * applied when neither tag nor digest was given) */
        char *digest;       /* "sha256:<64 hex>" (or sha384/sha512) or NULL */
        bool tag_defaulted; /* tag is "latest" because the input named neither */
};

/* Parses and normalizes s. Errors (-EINVAL; -ENOMEM) say what is wrong: "invalid reference
 * 'Nginx': repository name must be lowercase" (the input is quoted cut to 200 bytes, with
 * non-printable bytes shown as '?'). */
int pinlet_ref_parse(const char *s, struct pinlet_ref **ret, struct pinlet_error **err);

void pinlet_ref_free(struct pinlet_ref *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_ref *, pinlet_ref_free)
#define _cleanup_ref_ _cleanup_(pinlet_ref_freep)

/* "sha256:<64 lowercase hex>" or 64 lowercase hex alone. */
bool pinlet_ref_is_image_id(const char *s);

/* Validates "algorithm:hex" (sha256: 64 hex, sha384: 96, sha512: 128). */
bool pinlet_ref_digest_valid(const char *digest);

/*
 * Newly allocated strings; NULL only on allocation failure.
 *
 * pinlet_ref_string() is the normalized form, and parses back to the same fields:
 * "docker.io/library/nginx:latest", "docker.io/library/nginx:1.25@sha256:…",
 * "docker.io/library/nginx@sha256:…".
 *
 * pinlet_ref_familiar() is docker's FamiliarString of the same reference (tag included,
 * also a defaulted "latest"): "nginx:1.25", "nginx:latest", "foo/bar:latest",
 * "library/a/b:v1", "127.0.0.1:5000/app:v1", "nginx@sha256:…", "nginx:1.25@sha256:…".
 * It drops "docker.io/" and, for single-component paths, "library/". Where docker's short
 * form would parse back as a different reference, pinlet keeps the longer one: a Docker Hub
 * path whose first element looks like a host keeps "docker.io/" ("docker.io/foo.bar/app:v1",
 * "docker.io/localhost/app:v1"), and "library/sha256:<64 hex>" keeps "library/" (else an
 * image ID). So parsing the familiar form always gives back the same reference.
 */
char *pinlet_ref_name(const struct pinlet_ref *r);     /* domain/path */
char *pinlet_ref_string(const struct pinlet_ref *r);   /* name[:tag][@digest] */
char *pinlet_ref_familiar(const struct pinlet_ref *r); /* short form: "nginx:1.25" */
/* The key of a reference wherever pinlet remembers tags (cache, pin store, lock files):
 * pinlet_ref_string() with the registry host in lower case (hosts are case-insensitive,
 * the repository path is lower case by grammar). The reference sent to the runtime keeps
 * the domain as written. Caller frees; NULL on allocation failure. */
char *pinlet_ref_key(const struct pinlet_ref *r);

/*
 * The domain lower-cased, for lookups keyed by registry host (the registries map of the
 * configuration, policy, caches, per-host limits): "Reg.Example:5000" -> "reg.example:5000".
 * r->domain itself keeps the case as written, because it is what the runtime pulls:
 * distribution sends only the exact lower-case "docker.io" to Docker Hub's endpoint
 * (registry-1.docker.io), so changing "Docker.io" would change the image pulled. Use this key to
 * find settings, never to build what is pulled.
 */
char *pinlet_ref_host_key(const struct pinlet_ref *r);
/* name@digest: the pinned form, with the given digest (r's own when digest is NULL); the
 * tag is dropped. NULL with errno EINVAL when there is no digest or it is not valid
 * (pinlet_ref_digest_valid), NULL with ENOMEM on allocation failure. */
char *pinlet_ref_with_digest(const struct pinlet_ref *r, const char *digest);

/*
 * Short names, for runtimes that qualify them from their own configuration (CRI-O's
 * registries.conf) rather than with docker.io. s must be a valid reference
 * (pinlet_ref_parse()).
 *
 * pinlet_ref_short_name(): the repository s names as written, tag and digest cut off,
 * when s names no registry ("nginx" of "nginx:1.25", "team/app" of "team/app@sha256:…",
 * "library/nginx"); NULL when its first element is a registry host ("docker.io/nginx",
 * "localhost/app", "reg:5000/app") or no memory.
 *
 * pinlet_ref_requalify(): r's domain and path become those of name, a fully qualified
 * repository without tag or digest ("quay.io/team/app", "docker.io/nginx" normalized to
 * docker.io/library/nginx); r's tag and digest stay. -EINVAL (r unchanged) when name is
 * no valid reference, names no registry, or carries a tag or digest.
 */
char *pinlet_ref_short_name(const char *s);
int pinlet_ref_requalify(struct pinlet_ref *r, const char *name, struct pinlet_error **err);
