/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pure part of pinlet-verify-sigstore: cosign-compatible key-based signatures.
 *
 * cosign's format (github.com/sigstore/cosign, specs/SIGNATURE_SPEC.md): the signatures of
 * image repo@sha256:HEX live in the same repository under the tag "sha256-HEX.sig", an
 * OCI manifest whose layers of media type application/vnd.dev.cosign.simplesigning.v1+json
 * each hold one "simple signing" payload
 *
 *   {"critical":{"identity":{"docker-reference":"REPO"},
 *                "image":{"docker-manifest-digest":"sha256:HEX"},
 *                "type":"cosign container image signature"},"optional":{...}}
 *
 * with the base64 signature of the payload's bytes in the layer annotation
 * dev.cosignproject.cosign/signature. Signatures: ECDSA (ASN.1 DER) and RSA PKCS#1 v1.5
 * over SHA-256 (what cosign's key-based signing uses for every key type it generates or
 * imports), Ed25519 over the payload itself.
 *
 * Policy file (YAML):
 *   rules:                       # first rule whose repositories match wins
 *     - repositories: ["registry.corp.example/team/app-*"]
 *       keys: [/etc/pinlet/keys/team.pub]   # PEM public keys; any one suffices
 *   default: deny                # images no rule matches: deny | allow
 * Globs are fnmatch(3) without flags on the normalized repository ("docker.io/library/x"):
 * '*' crosses '/', as pinlet's scope globs do.
 *
 * Every size from outside is capped (SIGSTORE_*_MAX). No globals; thread-safe as long as
 * a policy is not freed while in use.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "util/error.h"
#include "util/macro.h"

#define SIGSTORE_MT_SIMPLESIGNING "application/vnd.dev.cosign.simplesigning.v1+json"
#define SIGSTORE_ANNOTATION_SIG   "dev.cosignproject.cosign/signature"
#define SIGSTORE_PAYLOAD_TYPE     "cosign container image signature"
#define SIGSTORE_DEFAULT_POLICY   "/etc/pinlet/sigstore.yaml"
#define SIGSTORE_ENV_POLICY       "PINLET_SIGSTORE_POLICY"

#define SIGSTORE_MANIFEST_MAX (256 * 1024) /* bytes of the signature manifest */
#define SIGSTORE_LAYERS_MAX   32           /* signature layers looked at */
#define SIGSTORE_PAYLOAD_MAX  (64 * 1024)  /* bytes of one payload */
#define SIGSTORE_SIG_B64_MAX  8192         /* bytes of one base64 signature */
#define SIGSTORE_POLICY_MAX   (1024 * 1024)
#define SIGSTORE_KEY_FILE_MAX (64 * 1024)

/* ---- policy ---- */

struct sigstore_rule {
        char **repositories; /* NULL-terminated globs */
        EVP_PKEY **keys;     /* n_keys loaded public keys */
        size_t n_keys;
};

struct sigstore_policy {
        struct sigstore_rule *rules;
        size_t n_rules;
        bool default_allow;
};

/* Parses a policy from memory; key files are read from disk. Errors name the file (name),
 * the line and the key, or the key file: "policy.yaml:3: key 'rules[0].keys': cannot load
 * /k.pub: ...". Returns 0 or a negative code. */
int sigstore_policy_parse(const char *name, const char *data, size_t len,
                          struct sigstore_policy **ret, struct pinlet_error **err);
int sigstore_policy_load(const char *path, struct sigstore_policy **ret, struct pinlet_error **err);
void sigstore_policy_free(struct sigstore_policy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct sigstore_policy *, sigstore_policy_free)

/* The first rule matching repository, or NULL (the default applies). */
const struct sigstore_rule *sigstore_policy_match(const struct sigstore_policy *p,
                                                  const char *repository);

/* A PEM public key (ECDSA P-256/P-384, RSA, Ed25519). */
int sigstore_key_load(const char *path, EVP_PKEY **ret, struct pinlet_error **err);

/* ---- the signature manifest ---- */

struct sigstore_layer {
        char *digest;    /* "sha256:..." of the payload blob */
        size_t size;     /* as the manifest says (<= SIGSTORE_PAYLOAD_MAX) */
        char *signature; /* the annotation, base64; NULL when missing */
};

struct sigstore_layers {
        struct sigstore_layer *v;
        size_t n;       /* simple-signing layers kept (at most SIGSTORE_LAYERS_MAX) */
        size_t skipped; /* layers of another media type or over a cap */
};
void sigstore_layers_done(struct sigstore_layers *l);

/* Parses a signature manifest. PINLET_EPROTO "signature manifest: ..." for anything that
 * is not a JSON object with a layers array; layers that are not simple-signing or break a
 * cap are skipped (counted), not errors. */
int sigstore_manifest_parse(const char *data, size_t len, struct sigstore_layers *ret,
                            struct pinlet_error **err);

/* ---- payloads and signatures ---- */

enum sigstore_payload_result {
        SIGSTORE_PAYLOAD_OK = 0,
        SIGSTORE_PAYLOAD_MALFORMED,         /* not a simple-signing payload */
        SIGSTORE_PAYLOAD_DIGEST_MISMATCH,   /* names another manifest digest */
        SIGSTORE_PAYLOAD_IDENTITY_MISMATCH, /* names another repository */
};

/*
 * Checks a payload against the image: critical.type is cosign's, critical.image.
 * docker-manifest-digest equals digest, and critical.identity.docker-reference names
 * repository (both normalized: "127.0.0.1:5000/tiny/app" and "tiny/app" on Docker Hub
 * compare as the registry would resolve them; a tag or digest in the reference is
 * ignored). *ret_found (may be NULL) gets what the payload names, for the reason
 * (malloc'ed, NULL when malformed).
 */
enum sigstore_payload_result sigstore_payload_check(const char *payload, size_t len,
                                                    const char *digest, const char *repository,
                                                    char **ret_found);

/* Whether the base64 signature over payload verifies with one of keys. 1 yes, 0 no
 * (including a signature that is not base64), -ENOMEM. */
int sigstore_signature_verify(EVP_PKEY *const *keys, size_t n_keys, const char *payload, size_t len,
                              const char *signature_b64);
