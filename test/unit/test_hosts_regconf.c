/* SPDX-License-Identifier: Apache-2.0 */
/*
 * registries.conf (CRI-O is not packaged for Debian 12, so this suite stands in for a
 * run against it): the parser, the selection rules (longest prefix, wildcards, location
 * rewrite, mirrors and pull-from-mirror, mirror-by-digest-only, insecure, blocked), drop-in
 * order, short names (search registries and aliases), and the cache re-reading a drop-in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hosts/hosts.h"

static const char conf[] = "unqualified-search-registries = [\"docker.io\", \"quay.io\"]\n"
                           "\n"
                           "[[registry]]\n"
                           "prefix = \"docker.io\"\n"
                           "location = \"docker.io\"\n"
                           "[[registry.mirror]]\n"
                           "location = \"mirror-all.local:5000/hub\"\n"
                           "[[registry.mirror]]\n"
                           "location = \"mirror-digest.local\"\n"
                           "pull-from-mirror = \"digest-only\"\n"
                           "[[registry.mirror]]\n"
                           "location = \"mirror-tag.local\"\n"
                           "pull-from-mirror = \"tag-only\"\n"
                           "insecure = true\n"
                           "\n"
                           "[[registry]]\n"
                           "prefix = \"docker.io/library/busybox\"\n"
                           "location = \"busy.local/mirrored/busybox\"\n"
                           "\n"
                           "[[registry]]\n"
                           "prefix = \"*.example.com\"\n"
                           "insecure = true\n"
                           "\n"
                           "[[registry]]\n"
                           "prefix = \"blocked.example.org\"\n"
                           "blocked = true\n"
                           "\n"
                           "[[registry]]\n"
                           "location = \"quay.io\"\n"
                           "mirror-by-digest-only = true\n"
                           "[[registry.mirror]]\n"
                           "location = \"quay-mirror.local\"\n"
                           "\n"
                           "[aliases]\n"
                           "\"app\" = \"quay.io/team/app\"\n";

static struct pinlet_regconf *load(const char *text)
{
        struct pinlet_regconf *c = NULL;
        struct pinlet_error *err = NULL;
        int r;

        assert_int_equal(pinlet_regconf_new(&c), 0);
        r = pinlet_regconf_add(c, "registries.conf", text, strlen(text), &err);
        if (r < 0)
                fail_msg("%s", pinlet_error_message(err, r));
        return c;
}

struct sel_case {
        const char *registry, *path;
        bool blocked;
        const char *endpoints; /* "url/repo skip_verify?" joined by " | " */
};

static const struct sel_case sel[] = {
        /* mirrors in order, "digest-only" for content only (pull, no resolve); then
         * location */
        { "docker.io", "library/nginx", false,
          "https://mirror-all.local:5000 hub/library/nginx | https://mirror-digest.local "
          "library/nginx pull-only | https://mirror-tag.local "
          "library/nginx insecure | http://mirror-tag.local library/nginx insecure | "
          "https://registry-1.docker.io library/nginx" },
        /* the longest prefix wins; the repository path is rewritten */
        { "docker.io", "library/busybox", false, "https://busy.local mirrored/busybox" },
        /* a prefix matches at a path boundary only */
        { "docker.io", "library/busyboxes", false,
          "https://mirror-all.local:5000 hub/library/busyboxes | https://mirror-digest.local "
          "library/busyboxes pull-only | https://mirror-tag.local "
          "library/busyboxes insecure | http://mirror-tag.local library/busyboxes insecure | "
          "https://registry-1.docker.io library/busyboxes" },
        /* wildcard: subdomains, the host kept, insecure tries https unverified then http */
        { "a.b.example.com", "x/y", false,
          "https://a.b.example.com x/y insecure | http://a.b.example.com x/y insecure" },
        { "example.com", "x/y", false, "https://example.com (ref)" }, /* no match: default */
        { "EXAMPLE.org", "x", false, "https://example.org (ref)" },
        { "blocked.example.org", "x", true, "https://blocked.example.org x" },
        /* mirror-by-digest-only: its mirrors serve content only */
        { "quay.io", "team/app", false,
          "https://quay-mirror.local team/app pull-only | https://quay.io team/app" },
};

static void render(const struct pinlet_hosts_list *l, char *out, size_t n)
{
        size_t o = 0;

        out[0] = 0;
        for (size_t i = 0; i < l->n && o < n; i++)
                o += (size_t)snprintf(out + o, n - o, "%s%s %s%s%s", i ? " | " : "", l->v[i].url,
                                      l->v[i].repo ? l->v[i].repo : "(ref)",
                                      l->v[i].skip_verify ? " insecure" : "",
                                      l->v[i].caps == PINLET_HOSTS_CAP_PULL ? " pull-only" : "");
}

static void test_selection(void **state)
{
        _cleanup_(pinlet_regconf_freep) struct pinlet_regconf *c = load(conf);

        for (size_t i = 0; i < sizeof(sel) / sizeof(sel[0]); i++) {
                struct pinlet_hosts_list *l = NULL;
                struct pinlet_error *err = NULL;
                char got[2048];
                int r = pinlet_regconf_endpoints(c, sel[i].registry, sel[i].path, &l, &err);

                if (r < 0)
                        fail_msg("case %zu: %s", i, pinlet_error_message(err, r));
                render(l, got, sizeof(got));
                if (strcmp(got, sel[i].endpoints) != 0)
                        fail_msg("case %zu:\n got  %s\n want %s", i, got, sel[i].endpoints);
                assert_int_equal(l->blocked, sel[i].blocked);
                pinlet_hosts_list_unref(l);
        }
}

static void test_short_names(void **state)
{
        _cleanup_(pinlet_regconf_freep) struct pinlet_regconf *c = load(conf);
        _cleanup_(pinlet_regconf_freep) struct pinlet_regconf *q =
                load("unqualified-search-registries = [\"quay.io\", \"docker.io\"]\n");
        _cleanup_(pinlet_regconf_freep) struct pinlet_regconf *one =
                load("unqualified-search-registries = [\"registry.corp\"]\n");
        _cleanup_(pinlet_regconf_freep) struct pinlet_regconf *none = load("");
        char *name = NULL, *reason = NULL;

        assert_int_equal(pinlet_regconf_short_name(c, "app", &name, &reason), 1);
        assert_string_equal(name, "quay.io/team/app");
        free(TAKE_PTR(name));
        /* docker.io ahead of quay.io: qualified, with the reason to pass it through when
         * docker.io has no answer */
        assert_int_equal(pinlet_regconf_short_name(c, "nginx", &name, &reason), 1);
        assert_string_equal(name, "docker.io/library/nginx");
        assert_non_null(strstr(reason, "(quay.io)"));
        free(TAKE_PTR(name));
        free(TAKE_PTR(reason));
        assert_int_equal(pinlet_regconf_short_name(c, "team/x", &name, &reason), 1);
        assert_string_equal(name, "docker.io/team/x");
        assert_non_null(reason);
        free(TAKE_PTR(name));
        free(TAKE_PTR(reason));
        assert_int_equal(pinlet_regconf_short_name(one, "x", &name, &reason), 1);
        assert_string_equal(name, "registry.corp/x");
        free(TAKE_PTR(name));
        assert_null(reason);
        assert_int_equal(pinlet_regconf_short_name(q, "nginx", &name, &reason), 0);
        assert_null(name);
        assert_string_equal(reason, "short name 'nginx' is ambiguous: "
                                    "unqualified-search-registries has quay.io, docker.io");
        free(TAKE_PTR(reason));
        assert_int_equal(pinlet_regconf_short_name(none, "nginx", &name, &reason), 0);
        assert_non_null(strstr(reason, "no unqualified-search-registries"));
        free(TAKE_PTR(reason));
        assert_int_equal(pinlet_regconf_short_name(NULL, "nginx", &name, &reason), 0);
        assert_non_null(strstr(reason, "no unqualified-search-registries"));
        free(TAKE_PTR(reason));
}

/* An alias whose value names no registry (found by fuzz_hosts_toml): containers refuses
 * such a file, so nothing is qualified; the reason says which alias. */
static void test_short_name_alias_without_registry(void **state)
{
        _cleanup_(pinlet_regconf_freep) struct pinlet_regconf *c =
                load("unqualified-search-registries = [\"docker.io\"]\n"
                     "[aliases]\n\"nginx\" = \"dinx\"\n\"app\" = \"team/app\"\n"
                     "\"db\" = \"localhost/db\"\n");
        char *name = NULL, *reason = NULL;

        assert_int_equal(pinlet_regconf_short_name(c, "nginx", &name, &reason), 0);
        assert_null(name);
        assert_string_equal(reason, "short name 'nginx': its alias 'dinx' names no registry");
        free(TAKE_PTR(reason));
        assert_int_equal(pinlet_regconf_short_name(c, "app", &name, &reason), 0);
        assert_string_equal(reason, "short name 'app': its alias 'team/app' names no registry");
        free(TAKE_PTR(reason));
        assert_int_equal(pinlet_regconf_short_name(c, "db", &name, &reason), 1);
        assert_string_equal(name, "localhost/db");
        free(TAKE_PTR(name));
}

/* docker.io ahead of other search registries: qualified there, with the reason to pass
 * the name through when docker.io has no answer; aliases merge over drop-ins and "" erases
 * one. */
static void test_short_names_more(void **state)
{
        _cleanup_(pinlet_regconf_freep) struct pinlet_regconf *c =
                load("unqualified-search-registries = [\"docker.io\", \"quay.io\", \"r.corp\"]\n"
                     "[aliases]\n\"app\" = \"r.corp/team/app\"\n\"db\" = \"r.corp/db\"\n");
        static const char dropin[] = "[aliases]\n\"app\" = \"\"\n\"db\" = \"q.io/db\"\n";
        char *name = NULL, *reason = NULL;

        assert_int_equal(pinlet_regconf_short_name(c, "nginx", &name, &reason), 1);
        assert_string_equal(name, "docker.io/library/nginx");
        assert_string_equal(reason, "short name 'nginx': docker.io did not answer for it, and "
                                    "the runtime would try the next "
                                    "unqualified-search-registries (quay.io, r.corp)");
        free(TAKE_PTR(name));
        free(TAKE_PTR(reason));
        assert_int_equal(pinlet_regconf_add(c, "drop-in.conf", dropin, strlen(dropin), NULL), 0);
        assert_int_equal(pinlet_regconf_short_name(c, "db", &name, &reason), 1);
        assert_string_equal(name, "q.io/db");
        assert_null(reason);
        free(TAKE_PTR(name));
        /* erased: the search registries apply again */
        assert_int_equal(pinlet_regconf_short_name(c, "app", &name, &reason), 1);
        assert_string_equal(name, "docker.io/library/app");
        assert_non_null(reason);
        free(TAKE_PTR(name));
        free(TAKE_PTR(reason));
}

static void test_errors(void **state)
{
        static const struct {
                const char *text, *msg;
        } cases[] = {
                { "[[registry]]\ninsecure = true\n",
                  "r.conf:1: a [[registry]] needs a prefix or a location" },
                { "[[registry]]\nprefix = \"*.a.com\"\nlocation = \"b.com\"\n",
                  "r.conf:1: a wildcard prefix takes no location" },
                { "[[registry]]\nprefix = \"*a.com\"\n",
                  "r.conf:1: wildcard prefix '*a.com' must be \"*.domain\"" },
                { "[[registry]]\nprefix = \"https://a.com\"\n",
                  "r.conf:1: prefix and location are \"host[:port][/path]\"" },
                { "[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\nlocation = \"m\"\n"
                  "pull-from-mirror = \"sometimes\"\n",
                  "r.conf:3: pull-from-mirror must be all, digest-only or tag-only, not "
                  "'sometimes'" },
                { "[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\ninsecure = true\n",
                  "r.conf:3: a [[registry.mirror]] needs a location (\"host[:port][/path]\")" },
                { "[registries.search]\nregistries = [\"docker.io\"]\n",
                  "r.conf:1: the v1 format ([registries.search] ...) is not supported; use the "
                  "v2 format ([[registry]])" },
                { "unqualified-search-registries = \"docker.io\"\n",
                  "r.conf:1: 'unqualified-search-registries' must be an array of strings, not "
                  "a string" },
                { "[[registry]]\nlocation = \"a\"\nblocked = \"yes\"\n",
                  "r.conf:3: 'blocked' must be a boolean, not a string" },
                { "[registry]\nlocation = \"a\"\n",
                  "r.conf:1: 'registry' must be an array of tables ([[registry]]), not a table" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_(pinlet_regconf_freep) struct pinlet_regconf *c = NULL;
                struct pinlet_error *err = NULL;
                int r;

                assert_int_equal(pinlet_regconf_new(&c), 0);
                r = pinlet_regconf_add(c, "r.conf", cases[i].text, strlen(cases[i].text), &err);
                if (r >= 0)
                        fail_msg("case %zu accepted", i);
                if (strcmp(pinlet_error_message(err, r), cases[i].msg) != 0)
                        fail_msg("case %zu:\n got  %s\n want %s", i, pinlet_error_message(err, r),
                                 cases[i].msg);
                pinlet_error_free(err);
        }
}

static char dir[] = "/tmp/pinlet-regconf-XXXXXX";

static void put(const char *rel, const char *content)
{
        char path[512], tmp[600];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        f = fopen(tmp, "w");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(rename(tmp, path), 0);
}

static void test_dropins_and_cache(void **state)
{
        _cleanup_(pinlet_hosts_freep) struct pinlet_hosts *h = NULL;
        char main_conf[600], d[600];
        struct pinlet_hosts_options o = { .registries_conf = main_conf };
        struct pinlet_hosts_list *l = NULL;
        struct pinlet_error *err = NULL;
        char got[2048];

        strcpy(dir, "/tmp/pinlet-regconf-XXXXXX");
        assert_non_null(mkdtemp(dir));
        snprintf(main_conf, sizeof(main_conf), "%s/registries.conf", dir);
        snprintf(d, sizeof(d), "%s/registries.conf.d", dir);
        assert_int_equal(mkdir(d, 0755), 0);
        put("registries.conf", "[[registry]]\nprefix = \"r.io\"\nlocation = \"main.local\"\n");
        /* drop-ins in lexical order: 20 replaces 10's entry for the same prefix */
        put("registries.conf.d/20-b.conf",
            "[[registry]]\nprefix = \"r.io\"\nlocation = \"twenty.local\"\n");
        put("registries.conf.d/10-a.conf",
            "[[registry]]\nprefix = \"r.io\"\nlocation = \"ten.local\"\n");
        put("registries.conf.d/ignored.txt", "not toml [");

        assert_int_equal(pinlet_hosts_new(&o, &h, &err), 0);
        assert_int_equal(pinlet_hosts_lookup(h, "r.io", "a/b", &l, &err), 0);
        render(l, got, sizeof(got));
        assert_string_equal(got, "https://twenty.local a/b");
        pinlet_hosts_list_unref(TAKE_PTR(l));

        /* a new drop-in applies to the next lookup */
        put("registries.conf.d/30-c.conf",
            "[[registry]]\nprefix = \"r.io\"\nlocation = \"thirty.local\"\n");
        assert_int_equal(pinlet_hosts_lookup(h, "r.io", "a/b", &l, &err), 0);
        render(l, got, sizeof(got));
        assert_string_equal(got, "https://thirty.local a/b");
        pinlet_hosts_list_unref(TAKE_PTR(l));

        /* a broken drop-in is an error naming it */
        put("registries.conf.d/30-c.conf", "[[registry]]\nprefix = 1\n");
        assert_true(pinlet_hosts_lookup(h, "r.io", "a/b", &l, &err) < 0);
        assert_non_null(strstr(pinlet_error_message(err, PINLET_EINVAL), "30-c.conf:2:"));
        pinlet_error_free(TAKE_PTR(err));

        /* removed: back to 20 */
        snprintf(got, sizeof(got), "%s/registries.conf.d/30-c.conf", dir);
        assert_int_equal(unlink(got), 0);
        assert_int_equal(pinlet_hosts_lookup(h, "r.io", "a/b", &l, &err), 0);
        render(l, got, sizeof(got));
        assert_string_equal(got, "https://twenty.local a/b");
        pinlet_hosts_list_unref(TAKE_PTR(l));

        snprintf(got, sizeof(got), "rm -rf '%s'", dir);
        assert_int_equal(system(got), 0);
}

/* short-name-aliases.conf: its [aliases] win over registries.conf's, it may be missing,
 * and a change to it applies at once. */
static void test_short_name_aliases_file(void **state)
{
        _cleanup_(pinlet_hosts_freep) struct pinlet_hosts *h = NULL;
        char main_conf[600], cache[600];
        struct pinlet_hosts_options o = { .registries_conf = main_conf,
                                          .short_name_aliases = cache };
        struct pinlet_error *err = NULL;
        char *name = NULL, *reason = NULL, cmd[700];

        strcpy(dir, "/tmp/pinlet-regconf-XXXXXX");
        assert_non_null(mkdtemp(dir));
        snprintf(main_conf, sizeof(main_conf), "%s/registries.conf", dir);
        snprintf(cache, sizeof(cache), "%s/short-name-aliases.conf", dir);
        put("registries.conf", "unqualified-search-registries = [\"quay.io\", \"docker.io\"]\n"
                               "[aliases]\n\"app\" = \"r.corp/app\"\n\"db\" = \"r.corp/db\"\n");
        assert_int_equal(pinlet_hosts_new(&o, &h, &err), 0);
        /* missing: registries.conf alone */
        assert_int_equal(pinlet_hosts_short_name(h, "app", &name, &reason, &err), 1);
        assert_string_equal(name, "r.corp/app");
        free(TAKE_PTR(name));
        /* written (other keys ignored): it wins; "" there erases the alias */
        put("short-name-aliases.conf", "unqualified-search-registries = [\"docker.io\"]\n"
                                       "[aliases]\n\"app\" = \"cache.corp/app\"\n\"db\" = \"\"\n");
        assert_int_equal(pinlet_hosts_short_name(h, "app", &name, &reason, &err), 1);
        assert_string_equal(name, "cache.corp/app");
        free(TAKE_PTR(name));
        assert_int_equal(pinlet_hosts_short_name(h, "db", &name, &reason, &err), 0);
        assert_non_null(strstr(reason, "is ambiguous"));
        free(TAKE_PTR(reason));
        /* a broken one is an error naming it */
        put("short-name-aliases.conf", "[aliases]\n\"app\" = 1\n");
        assert_true(pinlet_hosts_short_name(h, "app", &name, &reason, &err) < 0);
        assert_non_null(
                strstr(pinlet_error_message(err, PINLET_EINVAL), "short-name-aliases.conf:2:"));
        pinlet_error_free(TAKE_PTR(err));
        /* no registries.conf at all: nothing qualifies a short name */
        assert_int_equal(pinlet_hosts_short_name(NULL, "app", &name, &reason, &err), 0);
        assert_non_null(strstr(reason, "no unqualified-search-registries"));
        free(TAKE_PTR(reason));

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_selection),
                cmocka_unit_test(test_short_names),
                cmocka_unit_test(test_short_name_alias_without_registry),
                cmocka_unit_test(test_short_names_more),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_dropins_and_cache),
                cmocka_unit_test(test_short_name_aliases_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
