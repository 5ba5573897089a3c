/* SPDX-License-Identifier: Apache-2.0 */
/* The registry client's options built from the configuration (src/cli/cli.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/cli.h"

static const char yaml[] = "resolver:\n"
                           "  timeout: 7s\n"
                           "  connect_timeout: 2s\n"
                           "registries:\n"
                           "  Reg.Example:\n"
                           "    insecure: true\n"
                           "  tls.example:5000:\n"
                           "    skip_verify: true\n"
                           "    on_failure: open\n";

static void load(struct pinlet_config *cfg)
{
        struct pinlet_error *err = NULL;

        assert_int_equal(pinlet_config_init(cfg), 0);
        if (pinlet_config_load_buffer(cfg, "test.yaml", yaml, strlen(yaml), &err) < 0)
                fail_msg("%s", err->message);
}

static void test_options_from_config(void **state)
{
        struct pinlet_registry_options o = { 0 };
        const struct pinlet_registry_host *h;
        struct pinlet_config cfg;

        load(&cfg);
        assert_int_equal(pinlet_cli_registry_options(&cfg, &o, NULL), 0);
        assert_int_equal(o.resolve_timeout_ms, cfg.resolve_timeout_ms);
        assert_int_equal(o.connect_timeout_ms, cfg.connect_timeout_ms);
        assert_ptr_equal(o.docker_config_paths, cfg.docker_config_paths);
        assert_int_equal(o.n_hosts, 2);
        /* the client looks hosts up case-insensitively, whatever the file's spelling */
        h = pinlet_registry_options_host(&o, "reg.example");
        assert_non_null(h);
        assert_true(h->insecure);
        assert_false(h->skip_verify);
        h = pinlet_registry_options_host(&o, "TLS.example:5000");
        assert_non_null(h);
        assert_true(h->skip_verify);
        assert_false(h->insecure);
        pinlet_cli_registry_options_free(&o);
        assert_null(o.hosts);
        pinlet_cli_registry_options_free(&o); /* a zeroed struct is fine */
        pinlet_config_free(&cfg);
}

static void test_registry_new_from_config(void **state)
{
        struct pinlet_registry *r = NULL;
        struct pinlet_config cfg;

        load(&cfg);
        assert_int_equal(pinlet_cli_registry_new(&cfg, &r, NULL), 0);
        pinlet_config_free(&cfg); /* the client keeps its own copy */
        pinlet_registry_free(r);
}

static void test_skip_verify_hosts(void **state)
{
        struct pinlet_config cfg;
        char **v = NULL;

        assert_int_equal(pinlet_config_init(&cfg), 0);
        assert_int_equal(pinlet_cli_skip_verify_hosts(&cfg, &v), 0);
        assert_null(v);
        pinlet_config_free(&cfg);

        load(&cfg);
        assert_int_equal(pinlet_cli_skip_verify_hosts(&cfg, &v), 0);
        assert_int_equal(pinlet_strv_length(v), 1);
        assert_string_equal(v[0], "tls.example:5000");
        pinlet_strv_free(v);
        pinlet_config_free(&cfg);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_options_from_config),
                cmocka_unit_test(test_registry_new_from_config),
                cmocka_unit_test(test_skip_verify_hosts),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
