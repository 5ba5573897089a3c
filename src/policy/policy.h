/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy: pure decisions taken from the configuration (struct pinlet_config). No I/O, no
 * globals, no allocation: any thread may call these at any time, since the configuration
 * is read-only once loaded. Nothing here fails; there are no error codes.
 *
 * Scope (include / exclude globs, fnmatch(3) without FNM_PATHNAME so '*' crosses '/'):
 *   - A reference is OUT of scope when any exclude glob matches: exclude.registries against
 *     the registry host, exclude.repositories against the normalized repository,
 *     exclude.namespaces against the pod namespace (only when the namespace is known).
 *   - Otherwise, each NON-EMPTY include list must have one matching glob. An empty include
 *     list constrains nothing, so with no include lists everything is in scope.
 *   - Unknown namespace (NULL): ImageStatus and some CreateContainer calls carry no pod.
 *     Namespace excludes cannot apply, and a non-empty include.namespaces list is NOT
 *     checked: the call is in scope. Why: such calls must agree with the pull that had a
 *     namespace (principle "the pull and the run agree"). If pinlet pulled nginx:1.25 by
 *     digest for a pod in an included namespace, containerd stored no tag, and an
 *     ImageStatus(nginx:1.25) left alone would report the image missing, making kubelet
 *     pull again on every start. Whether anything is rewritten for such a call is then
 *     decided by the pin store: only references that were pulled pinned have a pin.
 *   - Registry hosts compare case-insensitively (DNS names are), in registry globs and
 *     in the host part of repository globs alike: a reference keeps its domain as
 *     written ("Reg.Example/team/app"), and the glob "reg.example/team/app" matches it.
 *     Repository paths are lower-case by the reference grammar; namespaces compare
 *     exactly.
 */
#pragma once

#include <stdbool.h>

#include "config/config.h"

/* registry: normalized host[:port] ("docker.io"); repository: normalized name with the
 * domain ("docker.io/library/nginx"); namespace: pod namespace or NULL when unknown.
 * NULL registry or repository never match a glob (they are then only excluded/included
 * through the other lists). */
bool pinlet_policy_in_scope(const struct pinlet_config *cfg, const char *registry,
                            const char *repository, const char *namespace);

/* What to do when resolution fails for this registry: the per-registry setting
 * (registries[host].on_failure) when set, else the global cfg->on_failure. Never returns
 * PINLET_FAIL_UNSET. registry may be NULL (global setting). */
enum pinlet_on_failure pinlet_policy_on_failure(const struct pinlet_config *cfg,
                                                const char *registry);
