/* SPDX-License-Identifier: Apache-2.0 */
/* The client's offline behaviour: setup checks, argument errors, deadlines. The network
 * paths are covered by test/integration/registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "registry/registry.h"

static void test_api_host(void **state)
{
        assert_string_equal(pinlet_registry_api_host("docker.io"), "registry-1.docker.io");
        assert_string_equal(pinlet_registry_api_host("index.docker.io"), "registry-1.docker.io");
        assert_string_equal(pinlet_registry_api_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_string_equal(pinlet_registry_api_host("quay.io"), "quay.io");
}

static void test_new_checks_files(void **state)
{
        struct pinlet_config cfg;
        struct pinlet_registry_config rc = { .host = "reg:5000",
                                             .ca_file = "/nonexistent/ca.pem",
                                             .on_failure = PINLET_FAIL_UNSET };
        struct pinlet_registry *r = NULL;
        struct pinlet_error *err = NULL;

        assert_int_equal(pinlet_config_init(&cfg), 0);
        cfg.registries = &rc;
        cfg.n_registries = 1;
        assert_int_equal(pinlet_registry_new(&cfg, &r, &err), PINLET_EINVAL);
        assert_non_null(strstr(err->message, "reg:5000"));
        assert_non_null(strstr(err->message, "/nonexistent/ca.pem"));
        pinlet_error_free(err);
        cfg.registries = NULL;
        cfg.n_registries = 0;
        pinlet_config_free(&cfg);
}

static void test_skip_verify_hosts(void **state)
{
        struct pinlet_config cfg;
        struct pinlet_registry_config rc[3] = {
                { .host = "a:1", .skip_verify = true },
                { .host = "b:2" },
                { .host = "c:3", .skip_verify = true },
        };
        char **v = NULL;

        assert_int_equal(pinlet_config_init(&cfg), 0);
        assert_int_equal(pinlet_registry_skip_verify_hosts(&cfg, &v), 0);
        assert_null(v);
        cfg.registries = rc;
        cfg.n_registries = 3;
        assert_int_equal(pinlet_registry_skip_verify_hosts(&cfg, &v), 0);
        assert_int_equal(pinlet_strv_length(v), 2);
        assert_string_equal(v[0], "a:1");
        assert_string_equal(v[1], "c:3");
        pinlet_strv_free(v);
        cfg.registries = NULL;
        cfg.n_registries = 0;
        pinlet_config_free(&cfg);
}

static void test_resolve_offline(void **state)
{
        struct pinlet_config cfg;
        struct pinlet_registry *r = NULL;
        struct pinlet_error *err = NULL;
        struct pinlet_resolution res = { 0 };
        struct pinlet_ref ref = { .domain = "127.0.0.1:1", .path = "tiny/app" };
        struct pinlet_registry_stats st;

        assert_int_equal(pinlet_config_init(&cfg), 0);
        pinlet_strv_free(cfg.docker_config_paths); /* never read the machine's files */
        cfg.docker_config_paths = NULL;
        assert_int_equal(pinlet_registry_new(&cfg, &r, &err), 0);

        /* no tag */
        assert_int_equal(pinlet_registry_resolve(r, &ref, NULL, 0, &res, &err), PINLET_EINVAL);
        pinlet_error_free(err);
        err = NULL;

        /* a deadline already past: no request is made */
        ref.tag = "v1";
        assert_int_equal(pinlet_registry_resolve(r, &ref, NULL, pinlet_now_ms() - 1, &res, &err),
                         PINLET_ETIMEOUT);
        assert_non_null(strstr(err->message, "127.0.0.1:1/tiny/app:v1: registry 127.0.0.1:1: "));
        pinlet_error_free(err);
        err = NULL;
        assert_null(res.digest);
        pinlet_registry_get_stats(r, &st);
        assert_int_equal(st.requests, 0);
        assert_int_equal(st.resolutions, 2);

        pinlet_registry_free(r);
        pinlet_config_free(&cfg);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_api_host),
                cmocka_unit_test(test_new_checks_files),
                cmocka_unit_test(test_skip_verify_hosts),
                cmocka_unit_test(test_resolve_offline),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
