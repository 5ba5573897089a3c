/* SPDX-License-Identifier: Apache-2.0 */
/* The client's offline behaviour: setup checks, argument errors, deadlines. The network
 * paths are covered by test/integration/registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

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
        const struct pinlet_registry_host h = { .host = "reg:5000",
                                                .ca_file = "/nonexistent/ca.pem" };
        const struct pinlet_registry_options o = { .hosts = &h, .n_hosts = 1 };
        struct pinlet_registry *r = NULL;
        struct pinlet_error *err = NULL;

        assert_int_equal(pinlet_registry_new(&o, &r, &err), PINLET_EINVAL);
        assert_null(r);
        assert_non_null(strstr(err->message, "reg:5000"));
        assert_non_null(strstr(err->message, "/nonexistent/ca.pem"));
        pinlet_error_free(err);
}

/* Registry hosts are case-insensitive: "Reg.Example" gets the entry of "reg.example",
 * and the other way round; the port must match exactly. */
static void test_options_host_case_insensitive(void **state)
{
        const struct pinlet_registry_host hosts[] = {
                { .host = "reg.example", .insecure = true },
                { .host = "Other.Example:5000", .skip_verify = true },
        };
        const struct pinlet_registry_options o = { .hosts = hosts, .n_hosts = 2 };

        assert_ptr_equal(pinlet_registry_options_host(&o, "reg.example"), &hosts[0]);
        assert_ptr_equal(pinlet_registry_options_host(&o, "Reg.Example"), &hosts[0]);
        assert_ptr_equal(pinlet_registry_options_host(&o, "REG.EXAMPLE"), &hosts[0]);
        assert_ptr_equal(pinlet_registry_options_host(&o, "other.example:5000"), &hosts[1]);
        assert_null(pinlet_registry_options_host(&o, "other.example:500"));
        assert_null(pinlet_registry_options_host(&o, "other.example"));
        assert_null(pinlet_registry_options_host(&o, "reg.example.org"));
        assert_null(pinlet_registry_options_host(&(struct pinlet_registry_options){ 0 }, "x"));
}

/* Two entries that differ only in case are one host listed twice. */
static void test_new_rejects_case_duplicates(void **state)
{
        const struct pinlet_registry_host hosts[] = {
                { .host = "reg.example", .insecure = true },
                { .host = "REG.example" },
        };
        const struct pinlet_registry_options o = { .hosts = hosts, .n_hosts = 2 };
        struct pinlet_registry *r = NULL;
        struct pinlet_error *err = NULL;

        assert_int_equal(pinlet_registry_new(&o, &r, &err), PINLET_EINVAL);
        assert_non_null(strstr(err->message, "REG.example"));
        assert_non_null(strstr(err->message, "twice"));
        pinlet_error_free(err);
}

/* The client copies its options: they may go away right after creation. */
static void test_new_copies_options(void **state)
{
        char host[] = "127.0.0.1:1";
        char path[] = "/nonexistent/config.json";
        char *paths[] = { path, NULL };
        struct pinlet_registry_host h = { .host = host, .insecure = true };
        struct pinlet_registry_options o = {
                .hosts = &h, .n_hosts = 1, .docker_config_paths = paths, .connect_timeout_ms = 1
        };
        struct pinlet_ref ref = { .domain = "127.0.0.1:1", .path = "tiny/app", .tag = "v1" };
        struct pinlet_resolution res = { 0 };
        struct pinlet_registry *r = NULL;
        struct pinlet_error *err = NULL;

        assert_int_equal(pinlet_registry_new(&o, &r, &err), 0);
        memset(host, 'x', sizeof(host) - 1);
        memset(path, 'x', sizeof(path) - 1);
        h.insecure = false;
        /* port 1 on loopback refuses: with the copied entry (insecure) that is a plain
         * connection failure, with the scribbled one it would be another host */
        assert_int_equal(pinlet_registry_resolve(r, &ref, NULL, pinlet_now_ms() + 5000, &res, &err),
                         PINLET_EUNAVAIL);
        assert_non_null(strstr(err->message, "registry 127.0.0.1:1"));
        pinlet_error_free(err);
        pinlet_registry_free(r);
}

static void test_resolve_offline(void **state)
{
        const struct pinlet_registry_options o = { 0 }; /* never reads the machine's files */
        struct pinlet_registry *r = NULL;
        struct pinlet_error *err = NULL;
        struct pinlet_resolution res = { 0 };
        struct pinlet_ref ref = { .domain = "127.0.0.1:1", .path = "tiny/app" };
        struct pinlet_registry_stats st;

        assert_int_equal(pinlet_registry_new(&o, &r, &err), 0);

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
}

static void test_fetch_offline(void **state)
{
        static const char digest[] =
                "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        const struct pinlet_registry_options o = { 0 };
        struct pinlet_registry *r = NULL;
        struct pinlet_error *err = NULL;
        struct pinlet_fetched f = { 0 };
        struct pinlet_ref ref = { .domain = "127.0.0.1:1", .path = "tiny/app" };
        struct pinlet_registry_stats st;

        assert_int_equal(pinlet_registry_new(&o, &r, &err), 0);
        /* neither manifests nor blobs; not a digest; no room for a body */
        assert_int_equal(pinlet_registry_fetch(r, &ref, "tags", digest, 1024, NULL, 0, &f, &err),
                         PINLET_EINVAL);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(
                pinlet_registry_fetch(r, &ref, "blobs", "sha256:abc", 1024, NULL, 0, &f, &err),
                PINLET_EINVAL);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_registry_fetch(r, &ref, "blobs", digest, 0, NULL, 0, &f, &err),
                         PINLET_EINVAL);
        pinlet_error_free(err);
        err = NULL;
        /* a deadline already past: no request, and the message names image and registry */
        assert_int_equal(pinlet_registry_fetch(r, &ref, "manifests", digest, 1024, NULL,
                                               pinlet_now_ms() - 1, &f, &err),
                         PINLET_ETIMEOUT);
        assert_non_null(strstr(err->message, "127.0.0.1:1/tiny/app@sha256:0123"));
        assert_non_null(strstr(err->message, "registry 127.0.0.1:1"));
        pinlet_error_free(err);
        assert_null(f.data);
        pinlet_registry_get_stats(r, &st);
        assert_int_equal(st.requests, 0);
        pinlet_fetched_done(&f);
        pinlet_registry_free(r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_api_host),
                cmocka_unit_test(test_new_checks_files),
                cmocka_unit_test(test_options_host_case_insensitive),
                cmocka_unit_test(test_new_rejects_case_duplicates),
                cmocka_unit_test(test_new_copies_options),
                cmocka_unit_test(test_resolve_offline),
                cmocka_unit_test(test_fetch_offline),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
