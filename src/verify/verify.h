/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image verifiers: running the executables of verifiers.bin_dir on containerd's bindir
 * contract (include/pinlet/verifier.h) and keeping their verdicts.
 *
 * One verification of (reference, digest):
 *   - the directory is listed in lexical (byte) order, as containerd's os.ReadDir does,
 *     and the first `max` entries are the verifier set; a missing or empty directory
 *     allows everything (nothing to run, nothing cached);
 *   - the verifiers run one after the other, as containerd runs them, so never more than
 *     one (and so never more than `max`) runs at once for an image; the first deny ends
 *     the verification (all must allow: AND);
 *   - each runs through posix_spawn (no shell) with stdin, stdout and stderr on pipes and
 *     every other descriptor closed in the child (posix_spawn_file_actions_addclosefrom_np,
 *     so a descriptor some library opened without O_CLOEXEC cannot leak either); the
 *     environment is pinlet's plus PINLET_CONFIG and PINLET_RUNTIME; stdout and stderr are read
 * with poll() up to PINLET_VERIFIER_OUTPUT_MAX bytes each (the rest is read and dropped); at the
 *     timeout (per verifier, and never past the caller's deadline) it is killed with
 *     SIGKILL; it is always reaped;
 *   - exit 0 allows; another exit status denies with stdout as the reason; a verifier that
 *     cannot be run, is killed by a signal or times out is a failure, which on_failure
 *     decides: closed denies, open skips it (logged as a warning).
 *
 * Verdict cache: keyed by (digest, reference as passed to -name, verifier set identity),
 * where the identity is a hash of the set's names, inodes, sizes and modification times:
 * installing, removing or replacing a verifier changes the key, so an old verdict is never
 * served for another set. Allow verdicts live allow_ttl_ms, deny verdicts at most
 * PINLET_VERIFY_DENY_TTL_MAX_MS (a fixed policy or registry hiccup must not block an image
 * for long); an allow that skipped a failed verifier (on_failure open) is not kept.
 * Concurrent verifications of one key run the verifiers once: the others wait for that
 * verdict (single flight), bounded by their own deadline.
 *
 * Threads: every function may be called from any thread. pinlet_verify_lookup() never
 * blocks (a directory listing and a hash lookup): the completion-queue thread uses it;
 * pinlet_verify_run() and pinlet_verify_describe() block (children, network): workers
 * only. Library code: logs at debug level, except the on_failure-open warning.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "ref/ref.h"
#include "registry/creds.h"
#include "util/error.h"
#include "util/macro.h"

struct pinlet_registry;

#define PINLET_VERIFY_DENY_TTL_MAX_MS 30000 /* deny verdicts are kept at most this long */
#define PINLET_VERIFY_CACHE_MAX       4096  /* verdicts kept (least recently used dropped) */
/* The proxy's worker queue for verifications: at most resolver.per_registry of them hold
 * a worker at once, so slow verifiers cannot take the pool from registry resolutions. */
#define PINLET_VERIFY_QUEUE "pinlet-verifiers"

struct pinlet_verify_options {
        const char *bin_dir; /* NULL or "": nothing is verified */
        unsigned max;        /* first N entries; 0: 10 */
        uint64_t timeout_ms; /* per verifier; 0: 10 s */
        enum pinlet_on_failure on_failure;
        uint64_t allow_ttl_ms;    /* 0: allow verdicts are not kept */
        uint64_t deny_ttl_ms;     /* capped at PINLET_VERIFY_DENY_TTL_MAX_MS; 0: the cap */
        size_t cache_max;         /* 0: PINLET_VERIFY_CACHE_MAX */
        const char *config_path;  /* PINLET_CONFIG in the verifiers' environment; NULL: unset */
        const char *runtime_name; /* PINLET_RUNTIME in it (the runtime's Version name, which
                                   * decides the default registry host files); NULL: unset */
        struct pinlet_registry *registry; /* for pinlet_verify_describe(); may be NULL */
};

/* What a verifier reads on stdin: the image's OCI descriptor, as the registry reported it. */
struct pinlet_verify_descriptor {
        char *media_type; /* owned */
        char *digest;     /* owned */
        uint64_t size;
};
void pinlet_verify_descriptor_done(struct pinlet_verify_descriptor *d);

/* One verifier's run. */
struct pinlet_verify_result {
        char *name;   /* the entry's file name */
        bool allow;   /* what it counted as (a failure under on_failure open: true) */
        bool failed;  /* could not run, killed by a signal, timed out */
        char *reason; /* deny: its stdout (printable, trimmed); failure: what happened;
                       * allow: its stdout, possibly "" */
        int64_t ms;   /* wall time of the run */
};

struct pinlet_verify_verdict {
        bool allow;
        bool cached; /* answered from the verdict cache (results empty then) */
        struct pinlet_verify_result *results; /* the runs, in order */
        size_t n_results;
        /* deny: "blocked by verifier NAME: REASON" (cached verdicts keep it) */
        char *message;
};
void pinlet_verify_verdict_done(struct pinlet_verify_verdict *v);

struct pinlet_verify;

/* Copies what it keeps of o (strings, the environment at this moment); borrows
 * o->registry. */
int pinlet_verify_new(const struct pinlet_verify_options *o, struct pinlet_verify **ret,
                      struct pinlet_error **err);
void pinlet_verify_free(struct pinlet_verify *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_verify *, pinlet_verify_free)

/* Whether a directory is configured (v may be NULL: false). */
bool pinlet_verify_enabled(const struct pinlet_verify *v);

/*
 * Never blocks. 1 with *ret filled when the directory holds no verifier (allow, not
 * cached) or a current verdict is cached for (name, digest) and today's verifier set;
 * 0 when the verifiers must run (pinlet_verify_run on a worker). *ret must be zeroed.
 */
int pinlet_verify_lookup(struct pinlet_verify *v, const char *name, const char *digest,
                         struct pinlet_verify_verdict *ret);

/*
 * Blocks. Answers from the cache like lookup, else runs the verifier set for (name, desc)
 * bounded by deadline_ms (absolute pinlet_now_ms(); <= 0: the per-verifier timeouts
 * only) and caches the verdict. Returns 0 with *ret (allow or deny), or a negative code
 * with *err when nothing could be decided (out of memory, the directory unreadable for
 * another reason than missing). *ret must be zeroed.
 */
int pinlet_verify_run(struct pinlet_verify *v, const char *name,
                      const struct pinlet_verify_descriptor *desc, int64_t deadline_ms,
                      struct pinlet_verify_verdict *ret, struct pinlet_error **err);

/*
 * Blocks. The descriptor of ref's manifest digest, for a caller that has only the digest
 * (a resolution served from the cache, the pin store or a lock file, a reference by
 * digest): the manifest is fetched by digest through the registry client (GET, at most
 * PINLET_MANIFEST_MAX bytes, hash-checked), its size is the body's length and its media
 * type the Content-Type, else the manifest's own mediaType field. A GET rather than a
 * HEAD so the size is that of the bytes that hash to the digest, not a header's claim.
 * Errors as pinlet_registry_fetch(); PINLET_EINVAL without a registry.
 */
int pinlet_verify_describe(struct pinlet_verify *v, const struct pinlet_ref *ref,
                           const char *digest, const struct pinlet_registry_auth *auth,
                           int64_t deadline_ms, struct pinlet_verify_descriptor *ret,
                           struct pinlet_error **err);

/* The descriptor as the JSON a verifier reads ({"mediaType","digest","size"}, compact).
 * Malloc'ed, NULL on allocation failure. */
char *pinlet_verify_descriptor_json(const struct pinlet_verify_descriptor *d);

/*
 * Blocks (a gRPC call). The manifest digest the runtime at endpoint ("unix:///..." as in
 * the configuration) records for image_id: ImageStatus on the API api ("runtime.v1" or
 * "runtime.v1alpha2", as the client's call used), then from the image's repo_digests the
 * entry whose repository is repository (normalized, e.g. "docker.io/library/nginx"; NULL:
 * any), else the first. 1 with *ret_digest; 0 when the runtime does not have the image or
 * lists no digest for it; negative (PINLET_EUNAVAIL, PINLET_ETIMEOUT, PINLET_EPROTO) with
 * *err naming the endpoint.
 */
int pinlet_verify_runtime_digest(const char *endpoint, const char *api, const char *image_id,
                                 const char *repository, size_t max_message, int64_t deadline_ms,
                                 char **ret_digest, struct pinlet_error **err);

/* Verifier processes started since creation (for tests and metrics). */
uint64_t pinlet_verify_runs(const struct pinlet_verify *v);
