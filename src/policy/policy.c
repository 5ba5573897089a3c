/* SPDX-License-Identifier: Apache-2.0 */
#include <fnmatch.h>

#include "policy/policy.h"

static bool strv_empty(char *const *v)
{
        return !v || !v[0];
}

/* True when any glob of v matches s (never when s is NULL). */
static bool any_match(char *const *v, const char *s, int flags)
{
        if (!s)
                return false;
        for (size_t i = 0; v && v[i]; i++)
                if (fnmatch(v[i], s, flags) == 0)
                        return true;
        return false;
}

/*
 * Flags for each list. Registry hosts are DNS names plus a port, so they fold case. A
 * repository is "domain/path": its path is lower-case by the reference grammar, so folding
 * case over the whole string compares exactly the host part case-insensitively (a glob's
 * upper-case path letters then match their lower-case, which nothing else could match).
 * Namespaces are DNS labels that the API server keeps lower-case: exact.
 */
#define REGISTRY_FLAGS   FNM_CASEFOLD
#define REPOSITORY_FLAGS FNM_CASEFOLD
#define NAMESPACE_FLAGS  0

bool pinlet_policy_in_scope(const struct pinlet_config *cfg, const char *registry,
                            const char *repository, const char *namespace)
{
        const struct pinlet_scope *ex = &cfg->exclude, *in = &cfg->include;

        if (any_match(ex->registries, registry, REGISTRY_FLAGS) ||
            any_match(ex->repositories, repository, REPOSITORY_FLAGS) ||
            any_match(ex->namespaces, namespace, NAMESPACE_FLAGS))
                return false;

        if (!strv_empty(in->registries) && !any_match(in->registries, registry, REGISTRY_FLAGS))
                return false;
        if (!strv_empty(in->repositories) &&
            !any_match(in->repositories, repository, REPOSITORY_FLAGS))
                return false;
        /* Unknown namespace: see the header, such calls follow the pull's decision. */
        if (namespace && !strv_empty(in->namespaces) &&
            !any_match(in->namespaces, namespace, NAMESPACE_FLAGS))
                return false;
        return true;
}

enum pinlet_on_failure pinlet_policy_on_failure(const struct pinlet_config *cfg,
                                                const char *registry)
{
        const struct pinlet_registry_config *r =
                registry ? pinlet_config_registry(cfg, registry) : NULL;

        /* pinlet_config_registry compares hosts case-insensitively, as everything keyed by
         * registry host does. */
        if (r && r->on_failure != PINLET_FAIL_UNSET)
                return r->on_failure;
        return cfg->on_failure == PINLET_FAIL_OPEN ? PINLET_FAIL_OPEN : PINLET_FAIL_CLOSED;
}
