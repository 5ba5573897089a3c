/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"

/* Scope lists as they come from the YAML: NULL-terminated, NULL meaning empty. */
struct scope_lists {
        const char *registries[4];
        const char *repositories[4];
        const char *namespaces[4];
};

static char **strv(const char *const *v)
{
        char **out = NULL;

        for (size_t i = 0; i < 4 && v[i]; i++)
                assert_int_equal(pinlet_strv_push(&out, v[i]), 0);
        return out;
}

static void set_scope(struct pinlet_scope *s, const struct scope_lists *l)
{
        s->registries = strv(l->registries);
        s->repositories = strv(l->repositories);
        s->namespaces = strv(l->namespaces);
}

static const struct {
        const char *name;
        struct scope_lists include, exclude;
        const char *registry, *repository, *namespace;
        bool in_scope;
} scope_cases[] = {
        { "no lists: everything", {}, {}, "docker.io", "docker.io/library/nginx", "default", true },
        { "no lists, unknown namespace",
          {},
          {},
          "docker.io",
          "docker.io/library/nginx",
          NULL,
          true },
        { "exclude registry",
          {},
          { .registries = { "docker.io" } },
          "docker.io",
          "docker.io/library/nginx",
          "default",
          false },
        { "exclude registry glob with port",
          {},
          { .registries = { "*.corp.example:*" } },
          "registry.corp.example:5000",
          "registry.corp.example:5000/team/app",
          NULL,
          false },
        { "exclude registry: case-insensitive host",
          {},
          { .registries = { "Quay.IO" } },
          "quay.io",
          "quay.io/org/app",
          NULL,
          false },
        { "exclude registry: other host",
          {},
          { .registries = { "docker.io" } },
          "quay.io",
          "quay.io/org/app",
          "default",
          true },
        { "exclude repository, '*' crosses '/'",
          {},
          { .repositories = { "docker.io/*" } },
          "docker.io",
          "docker.io/library/nginx",
          "default",
          false },
        { "exclude repository exact",
          {},
          { .repositories = { "docker.io/library/nginx" } },
          "docker.io",
          "docker.io/library/nginx-extra",
          "default",
          true },
        { "exclude namespace",
          {},
          { .namespaces = { "kube-*" } },
          "docker.io",
          "docker.io/library/nginx",
          "kube-system",
          false },
        { "exclude namespace: unknown namespace cannot match",
          {},
          { .namespaces = { "*" } },
          "docker.io",
          "docker.io/library/nginx",
          NULL,
          true },
        { "include registry matches",
          { .registries = { "ghcr.io", "docker.io" } },
          {},
          "docker.io",
          "docker.io/library/nginx",
          "default",
          true },
        { "include registry misses",
          { .registries = { "ghcr.io" } },
          {},
          "docker.io",
          "docker.io/library/nginx",
          "default",
          false },
        { "include repository",
          { .repositories = { "docker.io/library/*" } },
          {},
          "docker.io",
          "docker.io/library/redis",
          "default",
          true },
        { "include repository misses",
          { .repositories = { "docker.io/library/*" } },
          {},
          "docker.io",
          "docker.io/bitnami/redis",
          "default",
          false },
        { "include namespace",
          { .namespaces = { "prod", "staging-*" } },
          {},
          "docker.io",
          "docker.io/library/nginx",
          "staging-eu",
          true },
        { "include namespace misses",
          { .namespaces = { "prod" } },
          {},
          "docker.io",
          "docker.io/library/nginx",
          "dev",
          false },
        { "include namespace, unknown namespace: in scope",
          { .namespaces = { "prod" } },
          {},
          "docker.io",
          "docker.io/library/nginx",
          NULL,
          true },
        { "every non-empty include list must match",
          { .registries = { "docker.io" }, .namespaces = { "prod" } },
          {},
          "docker.io",
          "docker.io/library/nginx",
          "dev",
          false },
        { "every non-empty include list matches",
          { .registries = { "docker.io" },
            .repositories = { "*/nginx" },
            .namespaces = { "prod" } },
          {},
          "docker.io",
          "docker.io/library/nginx",
          "prod",
          true },
        { "exclude wins over include",
          { .registries = { "*" } },
          { .repositories = { "*/library/nginx" } },
          "docker.io",
          "docker.io/library/nginx",
          "prod",
          false },
        { "exclude namespace wins over include",
          { .namespaces = { "*" } },
          { .namespaces = { "kube-system" } },
          "docker.io",
          "docker.io/library/nginx",
          "kube-system",
          false },
        /* Registry hosts are case-insensitive, in the registries and the repositories
         * lists alike; the reference keeps its domain as written (what gets pulled). */
        { "include registry: glob in upper case",
          { .registries = { "*.Corp.Example" } },
          {},
          "reg.corp.example",
          "reg.corp.example/app",
          NULL,
          true },
        { "include repository: host written in upper case",
          { .repositories = { "reg.example/team/*" } },
          {},
          "Reg.Example",
          "Reg.Example/team/app",
          NULL,
          true },
        { "include repository: host case differs, path still must match",
          { .repositories = { "reg.example/team/*" } },
          {},
          "Reg.Example",
          "Reg.Example/other/app",
          NULL,
          false },
        { "exclude repository: glob host in upper case",
          {},
          { .repositories = { "Reg.Example:5000/*" } },
          "reg.example:5000",
          "reg.example:5000/team/app",
          NULL,
          false },
        { "exclude repository: reference host in mixed case",
          {},
          { .repositories = { "docker.io/library/*" } },
          "Docker.io",
          "Docker.io/library/nginx",
          "default",
          false },
        { "character class glob",
          { .registries = { "registry[0-9].example" } },
          {},
          "registry7.example",
          "registry7.example/app",
          NULL,
          true },
};

static void test_in_scope(void **state)
{
        for (size_t i = 0; i < sizeof(scope_cases) / sizeof(scope_cases[0]); i++) {
                struct pinlet_config cfg;
                bool got;

                assert_int_equal(pinlet_config_init(&cfg), 0);
                set_scope(&cfg.include, &scope_cases[i].include);
                set_scope(&cfg.exclude, &scope_cases[i].exclude);
                got = pinlet_policy_in_scope(&cfg, scope_cases[i].registry,
                                             scope_cases[i].repository, scope_cases[i].namespace);
                if (got != scope_cases[i].in_scope)
                        fail_msg("case '%s': expected %s", scope_cases[i].name,
                                 scope_cases[i].in_scope ? "in scope" : "out of scope");
                pinlet_config_free(&cfg);
        }
}

static void add_registry(struct pinlet_config *cfg, const char *host, enum pinlet_on_failure f)
{
        cfg->registries =
                realloc(cfg->registries, (cfg->n_registries + 1) * sizeof(*cfg->registries));
        assert_non_null(cfg->registries);
        cfg->registries[cfg->n_registries++] = (struct pinlet_registry_config){
                .host = strdup(host),
                .on_failure = f,
        };
}

static void test_on_failure(void **state)
{
        static const struct {
                enum pinlet_on_failure global;
                const char *registry;
                enum pinlet_on_failure expected;
        } cases[] = {
                { PINLET_FAIL_CLOSED, "docker.io", PINLET_FAIL_CLOSED },
                { PINLET_FAIL_OPEN, "docker.io", PINLET_FAIL_OPEN },
                { PINLET_FAIL_CLOSED, "flaky.example", PINLET_FAIL_OPEN }, /* override */
                { PINLET_FAIL_CLOSED, "FLAKY.example", PINLET_FAIL_OPEN }, /* host case */
                { PINLET_FAIL_OPEN, "strict.example:5000", PINLET_FAIL_CLOSED },
                { PINLET_FAIL_OPEN, "strict.example", PINLET_FAIL_OPEN }, /* port differs */
                { PINLET_FAIL_OPEN, "unset.example", PINLET_FAIL_OPEN },  /* UNSET: global */
                { PINLET_FAIL_CLOSED, "unset.example", PINLET_FAIL_CLOSED },
                { PINLET_FAIL_OPEN, NULL, PINLET_FAIL_OPEN },
                { PINLET_FAIL_OPEN, "Strict.Example:5000", PINLET_FAIL_CLOSED },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct pinlet_config cfg;

                assert_int_equal(pinlet_config_init(&cfg), 0);
                cfg.on_failure = cases[i].global;
                add_registry(&cfg, "flaky.example", PINLET_FAIL_OPEN);
                add_registry(&cfg, "strict.example:5000", PINLET_FAIL_CLOSED);
                add_registry(&cfg, "unset.example", PINLET_FAIL_UNSET);
                if (pinlet_policy_on_failure(&cfg, cases[i].registry) != cases[i].expected)
                        fail_msg("case %zu (%s)", i, cases[i].registry ?: "(null)");
                pinlet_config_free(&cfg);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_in_scope),
                cmocka_unit_test(test_on_failure),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
