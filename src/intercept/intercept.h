/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The interceptors the proxy calls for the three CRI methods pinlet rewrites (runtime.v1
 * and runtime.v1alpha2 alike: same field numbers). Plug them into the method table with
 * userdata = the struct pinlet_interceptor:
 *
 *     pinlet_cri_methods_set_interceptor("ImageService/PullImage",
 *                                        pinlet_interceptor_pull_image);
 *     pinlet_cri_methods_set_interceptor("ImageService/ImageStatus",
 *                                        pinlet_interceptor_image_status);
 *     pinlet_cri_methods_set_interceptor("RuntimeService/CreateContainer",
 *                                        pinlet_interceptor_create_container);
 *
 * For each image reference in a request (rewrite.h's "slots"):
 *   - empty, an image ID, a reference that already carries a digest, or out of scope
 *     (policy.h) -> left alone, no audit record (nothing was decided);
 *   - not a valid reference -> left alone (the runtime gives its own error), audit
 *     passed_through with the parse error;
 *   - a tag -> a digest, from:
 *       PullImage        the registry with the request's own AuthConfig, cache in front;
 *                        in enforce mode the pin store records it with the pod
 *                        ("ns/name/uid"); a pin that held another digest adds a
 *                        tag_moved record (previous and new digest).
 *       ImageStatus      the registry with the node's credentials, cache in front. When
 *                        that fails the request goes through unchanged and is audited
 *                        passed_through: the call never fails. Exception: on an outage
 *                        (unavailable/timeout) a pinned tag uses its pin (source "pin"),
 *                        so a node cut off from its registry still finds what it pulled
 *                        (containerd stores no tag for a pull by digest).
 *       CreateContainer  the pin store (what was pulled); the cache/registry (node
 *                        credentials) only when the tag has no pin.
 *     and the slot becomes "name@digest" (normalized name, pinlet_ref_with_digest()).
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
 * Cache keys: "<normalized ref> node" for the node's credentials (ImageStatus,
 * CreateContainer, PullImage without an applicable AuthConfig) and "<normalized ref>
 * auth:<salted sha256 of the credential>" when a PullImage carries credentials for the
 * registry: the cache shares one resolution among concurrent callers, and a caller whose
 * credentials the registry would refuse must get that refusal, not a digest resolved with
 * someone else's secret. The fingerprint never leaves memory.
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
 * Threads: the three functions run concurrently on the proxy's workers; the interceptor
 * holds no mutable state of its own (cache, pins and audit are thread-safe).
 */
#pragma once

#include <stdint.h>

#include "config/config.h"
#include "proxy/proxy.h"
#include "ref/ref.h"
#include "registry/creds.h"
#include "util/error.h"

struct pinlet_cache;
struct pinlet_pins;
struct pinlet_audit;
struct pinlet_registry;

/*
 * The resolution step: ref's tag -> digest ("sha256:..."), with auth (NULL: the node's
 * credentials), before deadline_ms (absolute CLOCK_MONOTONIC ms). Same contract as
 * pinlet_registry_resolve(): a negative class from util/error.h with *err on failure.
 * Injectable so tests need no network.
 */
typedef int (*pinlet_interceptor_resolve_fn)(void *ctx, const struct pinlet_ref *ref,
                                             const struct pinlet_registry_auth *auth,
                                             int64_t deadline_ms, char **ret_digest,
                                             struct pinlet_error **err);

struct pinlet_interceptor_options {
        const struct pinlet_config *cfg;       /* required; must outlive the interceptor */
        struct pinlet_registry *registry;      /* used when resolve is NULL */
        struct pinlet_cache *cache;            /* NULL: every resolution asks the registry */
        struct pinlet_pins *pins;              /* NULL: no pins (CreateContainer always resolves) */
        struct pinlet_audit *audit;            /* NULL: no audit records */
        pinlet_interceptor_resolve_fn resolve; /* NULL: pinlet_registry_resolve(registry) */
        void *resolve_ctx;
};

struct pinlet_interceptor;

/* Borrows everything in o (none of it is freed by the interceptor). -EINVAL without cfg, or
 * without both registry and resolve. */
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

/* The gRPC status code (grpc_status_code) pinlet answers a failed resolution with. */
int pinlet_interceptor_status_for_error(int code);
