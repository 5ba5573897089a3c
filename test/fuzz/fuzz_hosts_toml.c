/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hosts.toml and registries.conf are written by administrators and tools: feeds arbitrary
 * bytes to the TOML reader, then to the hosts.toml and registries.conf semantics, and
 * checks properties of what is accepted:
 *  - every string is a C string as long as the tree says (no NUL inside), keys in one
 *    table are unique, line numbers lie within the input;
 *  - a refusal names the file and a line ("fuzz.toml:<n>: ") or the file alone;
 *  - every endpoint list has at least one endpoint, each with a scheme, host and path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hosts/hosts.h"

#define NAME "fuzz.toml"

static void check(int ok)
{
        if (!ok)
                abort();
}

static void walk(const struct pinlet_toml_value *v, unsigned max_line)
{
        check(v->line >= 1 && v->line <= max_line);
        if (v->type == PINLET_TOML_STRING)
                check(v->string != NULL);
        for (size_t i = 0; i < v->n; i++) {
                walk(v->items[i], max_line);
                if (v->type == PINLET_TOML_TABLE)
                        for (size_t j = 0; j < i; j++)
                                check(strcmp(v->keys[i], v->keys[j]) != 0);
        }
}

static void check_error(struct pinlet_error *err, int r)
{
        const char *m = pinlet_error_message(err, r);

        check(r < 0);
        if (r != -ENOMEM)
                check(strncmp(m, NAME ":", strlen(NAME ":")) == 0);
}

static void check_list(const struct pinlet_hosts_list *l)
{
        check(l->n >= 1);
        for (size_t i = 0; i < l->n; i++) {
                const struct pinlet_hosts_endpoint *e = &l->v[i];

                check(e->url &&
                      (strncmp(e->url, "https://", 8) == 0 || strncmp(e->url, "http://", 7) == 0));
                check(e->host && *e->host && e->path);
                check(!strpbrk(e->host, "/@"));
        }
}

/* CRI-O's qualification of short names: a name with its registry, or a reason. */
static void check_short_names(const struct pinlet_regconf *c)
{
        static const char *const names[] = { "nginx", "library/nginx", "team/app", "app" };

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                char *name = NULL, *reason = NULL;
                int r = pinlet_regconf_short_name(c, names[i], &name, &reason);

                if (r == 1) /* reason: docker.io first of several search registries */
                        check(name && *name && strchr(name, '/'));
                else if (r == 0)
                        check(!name && reason && *reason);
                else
                        check(r == -ENOMEM);
                free(name);
                free(reason);
        }
}

typedef int (*regconf_add_fn)(struct pinlet_regconf *c, const char *name, const char *data,
                              size_t len, struct pinlet_error **err);

/* The bytes merged by add into an empty registries.conf set; NULL when refused (the
 * error checked). */
static struct pinlet_regconf *regconf_from(regconf_add_fn add, const uint8_t *data, size_t size)
{
        struct pinlet_regconf *c = NULL;
        struct pinlet_error *err = NULL;
        int r;

        check(pinlet_regconf_new(&c) == 0);
        r = add(c, NAME, (const char *)data, size, &err);
        if (r >= 0)
                return c;
        check_error(err, r);
        pinlet_error_free(err);
        pinlet_regconf_free(c);
        return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct pinlet_toml_value *root = NULL;
        struct pinlet_hosts_list *l = NULL;
        struct pinlet_regconf *c = NULL;
        struct pinlet_error *err = NULL;
        unsigned lines = 1;
        int r;

        for (size_t i = 0; i < size; i++)
                lines += data[i] == '\n';
        r = pinlet_toml_parse(NAME, (const char *)data, size, &root, &err);
        if (r < 0) {
                check(root == NULL);
                check_error(err, r);
                pinlet_error_free(err);
                return 0;
        }
        walk(root, lines);
        pinlet_toml_free(root);

        r = pinlet_hosts_containerd_parse(NAME, (const char *)data, size, "reg.example:5000",
                                          "/etc/containerd/certs.d/reg.example:5000", &l, &err);
        if (r < 0) {
                check_error(err, r);
                pinlet_error_free(TAKE_PTR(err));
        } else {
                check_list(l);
                pinlet_hosts_list_unref(TAKE_PTR(l));
        }

        c = regconf_from(pinlet_regconf_add, data, size);
        if (c) {
                static const char *const refs[][2] = {
                        { "docker.io", "library/nginx" },
                        { "a.example.com", "x/y" },
                        { "reg.example:5000", "team/app" },
                };
                for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
                        r = pinlet_regconf_endpoints(c, refs[i][0], refs[i][1], &l, &err);
                        if (r < 0) {
                                pinlet_error_free(TAKE_PTR(err));
                                continue;
                        }
                        check_list(l);
                        pinlet_hosts_list_unref(TAKE_PTR(l));
                }
                check_short_names(c);
        }
        pinlet_regconf_free(c);

        /* the same bytes as containers' short-name-aliases.conf, over an empty set */
        c = regconf_from(pinlet_regconf_add_aliases, data, size);
        if (c)
                check_short_names(c);
        pinlet_regconf_free(c);
        return 0;
}
