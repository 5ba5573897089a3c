/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which registry configuration files apply (pinlet_cli_hosts_files): a path in the
 * configuration applies whatever the runtime, "" turns a file off, and without either the
 * runtime's own default applies only in front of that runtime (and only when it exists).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cli/cli.h"

static bool exists(const char *p)
{
        struct stat st;

        return stat(p, &st) == 0;
}

static void test_explicit_wins(void **state)
{
        struct pinlet_config cfg = { 0 };
        struct pinlet_cli_hosts_files f;

        cfg.hosts_dir = (char *)"/srv/certs.d";
        cfg.registries_conf = (char *)"/srv/registries.conf";
        pinlet_cli_hosts_files(&cfg, "cri-o", &f);
        assert_string_equal(f.hosts_dir, "/srv/certs.d");
        assert_string_equal(f.registries_conf, "/srv/registries.conf");
        assert_null(f.short_name_aliases); /* only beside the default registries.conf */
        pinlet_cli_hosts_files(&cfg, NULL, &f);
        assert_string_equal(f.hosts_dir, "/srv/certs.d");
        assert_string_equal(f.registries_conf, "/srv/registries.conf");
}

static void test_off(void **state)
{
        struct pinlet_config cfg = { 0 };
        struct pinlet_cli_hosts_files f;

        cfg.hosts_dir = (char *)"";
        cfg.registries_conf = (char *)"";
        pinlet_cli_hosts_files(&cfg, "containerd", &f);
        assert_null(f.hosts_dir);
        assert_null(f.registries_conf);
        pinlet_cli_hosts_files(&cfg, "cri-o", &f);
        assert_null(f.hosts_dir);
        assert_null(f.registries_conf);
}

static void test_runtime_defaults(void **state)
{
        struct pinlet_config cfg = { 0 };
        struct pinlet_cli_hosts_files f;

        /* unknown runtime: no default at all */
        pinlet_cli_hosts_files(&cfg, NULL, &f);
        assert_null(f.hosts_dir);
        assert_null(f.registries_conf);
        pinlet_cli_hosts_files(&cfg, "something-else", &f);
        assert_null(f.hosts_dir);
        assert_null(f.registries_conf);
        /* containerd: its hosts dir (when the node has it), never registries.conf */
        pinlet_cli_hosts_files(&cfg, "containerd", &f);
        assert_null(f.registries_conf);
        if (exists(PINLET_DEFAULT_HOSTS_DIR))
                assert_string_equal(f.hosts_dir, PINLET_DEFAULT_HOSTS_DIR);
        else
                assert_null(f.hosts_dir);
        /* CRI-O: registries.conf (when present), never containerd's dir */
        pinlet_cli_hosts_files(&cfg, "cri-o", &f);
        assert_null(f.hosts_dir);
        if (exists(PINLET_DEFAULT_REGISTRIES_CONF)) {
                assert_string_equal(f.registries_conf, PINLET_DEFAULT_REGISTRIES_CONF);
                assert_string_equal(f.short_name_aliases, PINLET_DEFAULT_SHORT_NAME_ALIASES);
        } else {
                assert_null(f.registries_conf);
                assert_null(f.short_name_aliases);
        }
        /* the default path named explicitly, in front of containerd: no CRI-O aliases */
        cfg.registries_conf = (char *)PINLET_DEFAULT_REGISTRIES_CONF;
        pinlet_cli_hosts_files(&cfg, "containerd", &f);
        assert_null(f.short_name_aliases);
        assert_true(pinlet_cli_runtime_is_crio("cri-o"));
        assert_true(pinlet_cli_runtime_is_crio("CRI-O"));
        assert_false(pinlet_cli_runtime_is_crio("containerd"));
        assert_false(pinlet_cli_runtime_is_crio(NULL));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_explicit_wins),
                cmocka_unit_test(test_off),
                cmocka_unit_test(test_runtime_defaults),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
