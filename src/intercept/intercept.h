/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The interceptors the proxy calls for the three CRI methods pinlet rewrites (runtime.v1
 * and runtime.v1alpha2 alike: same field numbers). Bind them into the method table
 * (intercept/methods.h) with userdata = the struct pinlet_interceptor:
 *
 *     { "ImageService/PullImage", pinlet_interceptor_pull_image },
 *     { "ImageService/ImageStatus", pinlet_interceptor_image_status },
 *     { "RuntimeService/CreateContainer", pinlet_interceptor_create_container },
 *
 * For each image reference in a request (rewrite.h's "slots"):
 *   - empty, an image ID, a reference that already carries a digest, or out of scope
 *     (policy.h) -> left alone, no audit record (nothing was decided);
 *   - not a valid reference -> left alone (the runtime gives its own error), audit
 *     passed_through with the parse error;
 *   - a tag -> a digest from the resolver (src/resolve: pin store, cache, registry, in the
 *     order resolve.h gives per method), and the slot becomes "name@digest" (normalized
 *     name, pinlet_ref_with_digest()). Per method:
 *       PullImage        the request's own AuthConfig; in enforce mode the pin store
 *                        records the digest with the pod ("ns/name/uid") BEFORE the
 *                        request is rewritten; a pin that held another digest adds a
 *                        tag_moved record (previous and new digest). A pin that cannot
 *                        be recorded (disk full, I/O error) never leaves the older one
 *                        in force: on_failure closed fails the pull ("pinlet: cannot
 *                        record the pin of IMAGE in STATE_DIR: cause", UNAVAILABLE);
 *                        open forgets the tag's pin and passes the pull through, audited
 *                        passed_through with that cause.
 *       ImageStatus      the node's credentials. When resolution fails the request goes
 *                        through unchanged and is audited passed_through: the call never
 *                        fails. On an outage the resolver answers from an expired cache
 *                        entry or the pin (so a node cut off from its registry still
 *                        finds what it pulled: containerd stores no tag for a pull by
 *                        digest); such a fallback is logged, rate-limited.
 *       CreateContainer  the pin store (what was pulled) first.
 *   A tag in the lock files (cfg->lock_paths) gets the locked digest for all three, with
 *   no registry round trip (source "lock", the file in the record's "lock"). Each call
 *   holds one lock set for all its slots. lock.require (PullImage and CreateContainer,
 *   in-scope tags only; references by digest are always allowed):
 *     enforce  a tag not in the lock is refused: PERMISSION_DENIED "pinlet: IMAGE is not
 *              in the lock (lock.require: enforce)", audited rejected. A CreateContainer
 *              naming an image ID (kubelet) is checked through its user_specified_image.
 *     audit    resolved as usual, plus a record with decision "unlocked".
 *   In mode audit an enforce refusal is only recorded ("unlocked"), never applied.
 * Short names (options.short_names set: in front of CRI-O). CRI-O does not qualify a
 * name without registry ("nginx:1.25", "team/app:v1") with docker.io as containerd does,
 * but from registries.conf (hosts.h, pinlet_regconf_short_name()). Every slot, the
 * user_specified_image checked for lock.require and verifiers, and RemoveImage's tag are
 * qualified the same way, so the rewritten reference, the pin store, the cache, lock
 * lookups and the answers' repo_tags all use the qualified name ("docker.io/library/nginx",
 * "registry.corp/team/app"), which is also the name CRI-O records. A short name the
 * runtime would not resolve to one registry (several search registries, docker.io not
 * first; none; registries.conf unreadable) is not resolved: the slot goes to the runtime
 * as written, audited passed_through with the reason, whatever on_failure says (with
 * lock.require: enforce a PullImage or CreateContainer of it is refused: it cannot be in
 * the lock). Only namespace scope applies to it (no registry or repository glob matches
 * it; a non-empty include list of registries or repositories leaves it out of scope). A
 * name qualified to docker.io ahead of other search registries is resolved there; when
 * docker.io gives no digest the runtime would try the next registry, so the slot passes
 * through (passed_through, that reason) instead of failing.
 *
 * Modes: enforce rewrites; audit resolves and records would_substitute but forwards the
 * original request (and writes no pins); off forwards without decoding anything and
 * records nothing.
 *
 * When resolution fails (PullImage, CreateContainer) the registry's on_failure policy
 * decides: closed -> the call fails with a "pinlet: ..." status naming image, registry and
 * cause, audit rejected; open -> the original request goes through, a warning is logged,
 * audit passed_through. In audit mode a failure never fails the call. A PullImage passed
 * through in enforce mode also forgets the tag's pin (pinlet_pins_forget): the runtime
 * pulls whatever the tag is now, so a later CreateContainer must resolve the tag (or pass
 * it through) rather than use an older pinned digest that may not be what was pulled. The
 * audit record is the ordinary passed_through one (its error is the resolution failure);
 * the forgetting is logged as a warning.
 * gRPC status codes for closed failures:
 *   not found -> NOT_FOUND (what containerd answers for an unknown tag),
 *   credentials refused -> PERMISSION_DENIED (the pull is not permitted with these
 *     credentials; kubelet's caller is authenticated to pinlet, so not UNAUTHENTICATED),
 *   unavailable, timeout, TLS, protocol -> UNAVAILABLE (the registry cannot be used now),
 *   an AuthConfig that is not valid -> INVALID_ARGUMENT, anything else -> INTERNAL.
 * A request pinlet cannot decode: enforce -> INVALID_ARGUMENT "pinlet: malformed
 * <Message>"; audit -> forwarded as received (audit mode never changes an outcome).
 *
 * A request whose text fields hold a NUL byte (rewrite.h) is never decided under a
 * truncated name: enforce -> INVALID_ARGUMENT "pinlet: <Message> field <path> contains a
 * NUL byte", audited rejected; audit -> forwarded, audited passed_through with that error.
 *
 * Deadlines: a resolution ends at the earliest of now + cfg->resolve_timeout_ms and the
 * call's deadline minus a margin (a quarter of the time left, at most 2 s) kept for
 * forwarding the call itself.
 *
 * Every decision writes one audit record (method, pod, container, image, resolved,
 * source pin/cache/registry/stale, registry_ms, decision, mode, error), written when the
 * call's outcome is known: when one slot of a call fails closed, only the rejection is
 * written (the other slots were never substituted). No credential is ever logged, audited
 * or put in a status message; the cache may log its keys, which is why the credential
 * identity in them is salted per process.
 *
 * Verifiers (verify.h, verifiers.*; in scope, PullImage and CreateContainer, modes enforce
 * and audit): every slot's manifest digest needs an allow verdict before the call goes on.
 *   PullImage        after resolution, before the pin is recorded and the request
 *                    rewritten; references by digest too. -name is the image as requested.
 *   CreateContainer  the digest of a tag or digest reference as above; for an image ID
 *                    (kubelet), the user_specified_image's digest, else its pin, else
 *                    the runtime's ImageStatus of the ID (repo_digests, the one naming
 *                    the user_specified_image's repository first); -name is the
 *                    user_specified_image (or the image ID when there is none).
 *   The descriptor comes from the registry (pinlet_verify_describe, a GET by digest) only
 *   when the verifiers must run: a cached verdict needs neither. A deny fails the call
 *   PERMISSION_DENIED "pinlet: NAME@DIGEST blocked by verifier V: REASON", audited
 *   rejected with the verifiers' results; in mode audit it is recorded would_reject and
 *   the call goes on. When no digest or no descriptor can be had, or the verifiers cannot
 *   be run at all, verifiers.on_failure decides (closed: UNAVAILABLE "pinlet: cannot
 *   verify ..."; open: warned and passed). A slot that passed verification and has no
 *   other record (a digest, an image ID) is audited "verified". On the completion-queue
 *   thread only cached verdicts answer; otherwise the call defers to the worker queue
 *   PINLET_VERIFY_QUEUE.
 *
 * Threads: the three functions run concurrently: first on the proxy's completion-queue
 * thread (info->may_block false), where they decide every slot that needs no registry
 * round trip and no fsync'ed write (a digest, an image ID, out of scope, a pin, a fresh
 * cache entry, a registry remembered as failing) and otherwise answer PINLET_DEFER with
 * the registry host as the worker queue; then, when deferred, on a worker (may_block
 * true), where the whole call is decided again. Nothing is written (audit records, pins)
 * by an attempt that defers. The interceptor's only mutable state is a rate limiter;
 * resolver, pins and audit are thread-safe.
 */
#pragma once

#include <stdint.h>

#include "config/config.h"
#include "proxy/proxy.h"
#include "util/error.h"

struct pinlet_resolver;
struct pinlet_pins;
struct pinlet_audit;
struct pinlet_lock;
struct pinlet_metrics;
struct pinlet_verify;
struct pinlet_hosts;
struct pinlet_ref;

struct pinlet_interceptor_options {
        const struct pinlet_config *cfg;  /* required; must outlive the interceptor */
        struct pinlet_resolver *resolver; /* required */
        struct pinlet_pins *pins;         /* NULL: no pins recorded */
        struct pinlet_audit *audit;       /* NULL: no audit records */
        struct pinlet_lock *lock;         /* NULL: no lock files (lock.paths empty) */
        struct pinlet_metrics *metrics;   /* NULL: none; counts every audit record */
        struct pinlet_verify *verify;     /* NULL: no image verifiers (see below) */
        /* In front of CRI-O: the registries.conf that qualifies short names (see "Short
         * names" above). NULL: short names are qualified as containerd and kubelet do
         * (docker.io, library/). */
        struct pinlet_hosts *short_names;
};

struct pinlet_interceptor;

/* Borrows everything in o (none of it is freed by the interceptor). -EINVAL without cfg or
 * resolver. */
int pinlet_interceptor_new(const struct pinlet_interceptor_options *o,
                           struct pinlet_interceptor **ret, struct pinlet_error **err);
void pinlet_interceptor_free(struct pinlet_interceptor *ic);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_interceptor *, pinlet_interceptor_free)

/* pinlet_intercept_fn implementations; userdata is the struct pinlet_interceptor. */
void pinlet_interceptor_pull_image(void *userdata, const struct pinlet_call_info *info,
                                   const uint8_t *request, size_t len,
                                   struct pinlet_intercept_result *ret);
void pinlet_interceptor_image_status(void *userdata, const struct pinlet_call_info *info,
                                     const uint8_t *request, size_t len,
                                     struct pinlet_intercept_result *ret);
void pinlet_interceptor_create_container(void *userdata, const struct pinlet_call_info *info,
                                         const uint8_t *request, size_t len,
                                         struct pinlet_intercept_result *ret);

/*
 * Parses an image reference as the runtime reads it (see "Short names" above): a short
 * name is qualified through short_names when it is set (pinlet_hosts_short_name()), else
 * pinlet_ref_parse()'s docker.io normalization applies. Returns:
 *   0  *ret is the reference; *ret_reason is NULL, or, for a name qualified to docker.io
 *      ahead of other search registries, the reason to pass it through when docker.io
 *      gives no answer;
 *   PINLET_INTERCEPT_UNQUALIFIED  *ret NULL, *ret_reason why the runtime would not
 *      resolve the short name to one registry (or why its registries.conf cannot say);
 *   < 0  not a valid reference (err says why), -ENOMEM.
 * The caller frees *ret and *ret_reason.
 */
#define PINLET_INTERCEPT_UNQUALIFIED 1
int pinlet_interceptor_parse_image(struct pinlet_hosts *short_names, const char *image,
                                   struct pinlet_ref **ret, char **ret_reason,
                                   struct pinlet_error **err);

/* For the responders (answers.h), which get the interceptor as the proxy's userdata: the
 * configuration and the pin store (NULL: none) it was created with. */
const struct pinlet_config *pinlet_interceptor_config(const struct pinlet_interceptor *ic);
struct pinlet_pins *pinlet_interceptor_pins(const struct pinlet_interceptor *ic);
struct pinlet_hosts *pinlet_interceptor_short_names(const struct pinlet_interceptor *ic);

/* The gRPC status code (grpc_status_code) pinlet answers a failed resolution with. */
int pinlet_interceptor_status_for_error(int code);
