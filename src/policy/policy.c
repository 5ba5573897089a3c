/* SPDX-License-Identifier: Apache-2.0 */
#include <fnmatch.h>
#include <strings.h>

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

bool pinlet_policy_in_scope(const struct pinlet_config *cfg, const char *registry,
                            const char *repository, const char *namespace)
{
        const struct pinlet_scope *ex = &cfg->exclude, *in = &cfg->include;

        if (any_match(ex->registries, registry, FNM_CASEFOLD) ||
            any_match(ex->repositories, repository, 0) || any_match(ex->namespaces, namespace, 0))
                return false;

        if (!strv_empty(in->registries) && !any_match(in->registries, registry, FNM_CASEFOLD))
                return false;
        if (!strv_empty(in->repositories) && !any_match(in->repositories, repository, 0))
                return false;
        /* Unknown namespace: see the header, such calls follow the pull's decision. */
        if (namespace && !strv_empty(in->namespaces) && !any_match(in->namespaces, namespace, 0))
                return false;
        return true;
}

enum pinlet_on_failure pinlet_policy_on_failure(const struct pinlet_config *cfg,
                                                const char *registry)
{
        if (registry)
                for (size_t i = 0; i < cfg->n_registries; i++) {
                        const struct pinlet_registry_config *r = &cfg->registries[i];

                        /* Hosts are DNS names plus a port: case does not matter. */
                        if (r->host && strcasecmp(r->host, registry) == 0 &&
                            r->on_failure != PINLET_FAIL_UNSET)
                                return r->on_failure;
                }
        return cfg->on_failure == PINLET_FAIL_OPEN ? PINLET_FAIL_OPEN : PINLET_FAIL_CLOSED;
}
