/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration keys of issue 9: hosts_dir, registries_conf (unset, set, "" = off),
 * registries.<host>.mirrors (a list, replacing the reserved `mirror`, which now names its
 * replacement in the error), and their validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"

static int load(struct pinlet_config *cfg, const char *text, struct pinlet_error **err)
{
        int r;

        assert_int_equal(pinlet_config_init(cfg), 0);
        r = pinlet_config_load_buffer(cfg, "c.yaml", text, strlen(text), err);
        if (r >= 0)
                r = pinlet_config_validate(cfg, err);
        return r;
}

static void test_defaults(void **state)
{
        struct pinlet_config cfg;
        struct pinlet_error *err = NULL;

        assert_int_equal(load(&cfg, "{}\n", &err), 0);
        /* unset: the runtime's own default decides (cli: pinlet_cli_hosts_files) */
        assert_null(cfg.hosts_dir);
        assert_null(cfg.registries_conf);
        pinlet_config_free(&cfg);
}

static void test_keys(void **state)
{
        struct pinlet_config cfg;
        struct pinlet_error *err = NULL;
        const struct pinlet_registry_config *rc;

        assert_int_equal(
                load(&cfg,
                     "hosts_dir: /etc/containerd/certs.d\n"
                     "registries_conf: \"\"\n"
                     "registries:\n"
                     "  Reg.Example:5000:\n"
                     "    mirrors: [\"https://m1.example\", \"http://127.0.0.1:5001/v2/x\"]\n"
                     "  other.example: {insecure: true}\n",
                     &err),
                0);
        assert_string_equal(cfg.hosts_dir, "/etc/containerd/certs.d");
        assert_string_equal(cfg.registries_conf, ""); /* explicitly off */
        rc = pinlet_config_registry(&cfg, "reg.example:5000");
        assert_non_null(rc);
        assert_string_equal(rc->mirrors[0], "https://m1.example");
        assert_string_equal(rc->mirrors[1], "http://127.0.0.1:5001/v2/x");
        assert_null(rc->mirrors[2]);
        rc = pinlet_config_registry(&cfg, "other.example");
        assert_non_null(rc);
        assert_null(rc->mirrors);
        pinlet_config_free(&cfg);
}

static void test_errors(void **state)
{
        static const struct {
                const char *text, *msg;
        } cases[] = {
                { "registries:\n  r.example:\n    mirror: m.example\n",
                  "c.yaml:3: unknown key 'registries.r.example.mirror' (replaced by 'mirrors: "
                  "[URL, ...]')" },
                { "hosts_dir: relative/dir\n",
                  "c.yaml: key 'hosts_dir': must be an absolute path" },
                { "registries_conf: registries.conf\n",
                  "c.yaml: key 'registries_conf': must be an absolute path" },
                { "registries:\n  r.example:\n    mirrors: [\"has space\"]\n",
                  "c.yaml: key 'registries.r.example.mirrors': 'has space' is not a URL" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct pinlet_config cfg;
                struct pinlet_error *err = NULL;
                int r = load(&cfg, cases[i].text, &err);

                if (r >= 0)
                        fail_msg("case %zu accepted", i);
                if (strcmp(pinlet_error_message(err, r), cases[i].msg) != 0)
                        fail_msg("case %zu:\n got  %s\n want %s", i, pinlet_error_message(err, r),
                                 cases[i].msg);
                pinlet_error_free(err);
                pinlet_config_free(&cfg);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_keys),
                cmocka_unit_test(test_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
