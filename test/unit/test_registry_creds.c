/* SPDX-License-Identifier: Apache-2.0 */
/* Credentials: AuthConfig, Docker config.json, host matching, lookup order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "registry/creds.h"

static void test_host_key(void **state)
{
        static const struct {
                const char *in, *out;
        } t[] = {
                { "https://index.docker.io/v1/", "docker.io" },
                { "index.docker.io", "docker.io" },
                { "registry-1.docker.io", "docker.io" },
                { "docker.io", "docker.io" },
                { "http://127.0.0.1:5000/v2/", "127.0.0.1:5000" },
                { "Registry.Example:443", "registry.example:443" },
                { "[::1]:5000", "[::1]:5000" },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                char *k = pinlet_creds_host_key(t[i].in);

                assert_string_equal(k, t[i].out);
                free(k);
        }
        assert_true(pinlet_creds_key_matches("https://index.docker.io/v1/", "docker.io"));
        assert_true(pinlet_creds_key_matches("127.0.0.1:5000", "127.0.0.1:5000"));
        assert_false(pinlet_creds_key_matches("127.0.0.1:5000", "127.0.0.1:5001"));
        assert_false(pinlet_creds_key_matches("127.0.0.1", "127.0.0.1:5000"));
        assert_true(pinlet_creds_key_matches("*.example.com", "reg.example.com"));
        assert_false(pinlet_creds_key_matches("*.example.com", "a.reg.example.com"));
        assert_false(pinlet_creds_key_matches("", "docker.io"));
}

static void test_decode_auth(void **state)
{
        char *u = NULL, *p = NULL;

        assert_int_equal(pinlet_creds_decode_auth("YWxpY2U6czNjcjp0", &u, &p),
                         0); /* alice:s3cr:t */
        assert_string_equal(u, "alice");
        assert_string_equal(p, "s3cr:t");
        free(u);
        free(p);
        assert_int_equal(pinlet_creds_decode_auth("YTo=", &u, &p), 0); /* a: */
        assert_string_equal(u, "a");
        assert_string_equal(p, "");
        free(u);
        free(p);
        assert_int_equal(pinlet_creds_decode_auth("YWxpY2U=", &u, &p), PINLET_EINVAL); /* no ':' */
        assert_int_equal(pinlet_creds_decode_auth("not base64!", &u, &p), PINLET_EINVAL);
        assert_int_equal(pinlet_creds_decode_auth("YW=x", &u, &p), PINLET_EINVAL);
        assert_int_equal(pinlet_creds_decode_auth("", &u, &p), PINLET_EINVAL);
        assert_int_equal(pinlet_creds_decode_auth("YQBiOmM=", &u, &p), PINLET_EINVAL); /* NUL */
}

static int from_config_err(const char *json, const char *domain)
{
        struct pinlet_creds c = { 0 };
        struct pinlet_error *err = NULL;
        int r = pinlet_creds_from_docker_config(json, strlen(json), domain, &c, &err);

        pinlet_creds_clear(&c);
        pinlet_error_free(err);
        return r;
}

static void test_from_auth(void **state)
{
        struct pinlet_creds c = { 0 };
        struct pinlet_registry_auth a = { .username = "u", .password = "p" };

        assert_int_equal(pinlet_creds_from_auth(&a, "reg:5000", &c, NULL), 1);
        assert_string_equal(c.username, "u");
        assert_string_equal(c.password, "p");
        pinlet_creds_clear(&c);
        assert_null(c.username);

        a.server_address = "https://reg:5000";
        assert_int_equal(pinlet_creds_from_auth(&a, "reg:5000", &c, NULL), 1);
        pinlet_creds_clear(&c);
        a.server_address = "other:5000";
        assert_int_equal(pinlet_creds_from_auth(&a, "reg:5000", &c, NULL), 0);
        assert_int_equal(pinlet_creds_from_auth(NULL, "reg:5000", &c, NULL), 0);

        /* `auth` beats username/password, as docker does */
        a = (struct pinlet_registry_auth){ .username = "x", .auth = "YTpi" }; /* a:b */
        assert_int_equal(pinlet_creds_from_auth(&a, "reg", &c, NULL), 1);
        assert_string_equal(c.username, "a");
        assert_string_equal(c.password, "b");
        pinlet_creds_clear(&c);

        a = (struct pinlet_registry_auth){ .identity_token = "it", .registry_token = "rt" };
        assert_int_equal(pinlet_creds_from_auth(&a, "reg", &c, NULL), 1);
        assert_string_equal(c.identity_token, "it");
        assert_string_equal(c.registry_token, "rt");
        pinlet_creds_clear(&c);

        a = (struct pinlet_registry_auth){ .username = "" };
        assert_int_equal(pinlet_creds_from_auth(&a, "reg", &c, NULL), 0);
        a = (struct pinlet_registry_auth){ .auth = "!!!!" };
        {
                struct pinlet_error *err = NULL;

                assert_int_equal(pinlet_creds_from_auth(&a, "reg", &c, &err), PINLET_EINVAL);
                assert_null(strstr(pinlet_error_message(err, -1), "!!!!"));
                pinlet_error_free(err);
        }

        /* a registry token goes verbatim into a header: CR/LF would inject headers */
        a = (struct pinlet_registry_auth){ .registry_token = "rt\r\nX-Injected: 1" };
        {
                struct pinlet_error *err = NULL;

                assert_int_equal(pinlet_creds_from_auth(&a, "reg", &c, &err), PINLET_EINVAL);
                assert_null(strstr(pinlet_error_message(err, -1), "Injected"));
                pinlet_error_free(err);
                assert_int_equal(from_config_err("{\"auths\":{\"reg\":{\"registrytoken\":"
                                                 "\"a\\nb\"}}}",
                                                 "reg"),
                                 PINLET_EINVAL);
        }
}

static int from_config(const char *json, const char *domain, struct pinlet_creds *c)
{
        struct pinlet_error *err = NULL;
        int r = pinlet_creds_from_docker_config(json, strlen(json), domain, c, &err);

        if (r < 0)
                assert_null(strstr(pinlet_error_message(err, r), "c2VjcmV0"));
        pinlet_error_free(err);
        return r;
}

static void test_docker_config(void **state)
{
        struct pinlet_creds c = { 0 };
        const char *cfg =
                "{\"auths\":{"
                "\"https://index.docker.io/v1/\":{\"auth\":\"aHViOmh1YnB3\"},"
                "\"reg.example:5000\":{\"username\":\"alice\",\"password\":\"pw\"},"
                "\"http://reg.example:5000\":{\"username\":\"second\",\"password\":\"x\"},"
                "\"tok.example\":{\"identitytoken\":\"refresh\"},"
                "\"*.glob.example\":{\"auth\":\"Zzpn\"}"
                "},\"credsStore\":\"desktop\"}";

        assert_int_equal(from_config(cfg, "docker.io", &c), 1);
        assert_string_equal(c.username, "hub");
        assert_string_equal(c.password, "hubpw");
        pinlet_creds_clear(&c);
        /* the exact key wins */
        assert_int_equal(from_config(cfg, "reg.example:5000", &c), 1);
        assert_string_equal(c.username, "alice");
        pinlet_creds_clear(&c);
        assert_int_equal(from_config(cfg, "tok.example", &c), 1);
        assert_string_equal(c.identity_token, "refresh");
        assert_null(c.username);
        pinlet_creds_clear(&c);
        assert_int_equal(from_config(cfg, "a.glob.example", &c), 1);
        assert_string_equal(c.username, "g");
        pinlet_creds_clear(&c);
        assert_int_equal(from_config(cfg, "unknown.example", &c), 0);
        assert_int_equal(from_config("{}", "docker.io", &c), 0);
        assert_int_equal(from_config("{\"auths\":{\"r\":{}}}", "r", &c), 0);

        assert_int_equal(from_config("", "r", &c), PINLET_EINVAL);
        /* a syntax error right after a secret: the message must not quote it */
        assert_int_equal(from_config("{\"auths\":{\"r\":{\"auth\":\"c2VjcmV0\" x}}}", "r", &c),
                         PINLET_EINVAL);
        assert_int_equal(from_config("[1]", "r", &c), PINLET_EINVAL);
        assert_int_equal(from_config("{\"auths\":[]}", "r", &c), PINLET_EINVAL);
        assert_int_equal(from_config("{\"auths\":{\"r\":\"c2VjcmV0\"}}", "r", &c), PINLET_EINVAL);
        assert_int_equal(from_config("{\"auths\":{\"r\":{\"auth\":\"c2VjcmV0\"}}}", "r", &c),
                         PINLET_EINVAL); /* "secret" has no ':' */
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_lookup_order(void **state)
{
        char dir[] = "/tmp/pinlet-creds-XXXXXX", a[64], b[64], missing[64];
        char *paths[4];
        struct pinlet_creds c = { 0 };
        struct pinlet_registry_auth auth = { .username = "caller", .password = "pw" };

        assert_non_null(mkdtemp(dir));
        snprintf(a, sizeof(a), "%s/a.json", dir);
        snprintf(b, sizeof(b), "%s/b.json", dir);
        snprintf(missing, sizeof(missing), "%s/none.json", dir);
        write_file(a, "{ not json");
        write_file(b, "{\"auths\":{\"reg\":{\"username\":\"node\",\"password\":\"x\"}}}");
        paths[0] = missing;
        paths[1] = a;
        paths[2] = b;
        paths[3] = NULL;

        assert_int_equal(pinlet_creds_lookup(paths, &auth, "reg", &c, NULL), 0);
        assert_string_equal(c.username, "caller");
        assert_string_equal(c.source, "pull request");
        pinlet_creds_clear(&c);
        /* missing and malformed files are skipped */
        assert_int_equal(pinlet_creds_lookup(paths, NULL, "reg", &c, NULL), 0);
        assert_string_equal(c.username, "node");
        assert_string_equal(c.source, "docker config");
        pinlet_creds_clear(&c);
        auth.server_address = "elsewhere";
        assert_int_equal(pinlet_creds_lookup(paths, &auth, "reg", &c, NULL), 0);
        assert_string_equal(c.username, "node");
        pinlet_creds_clear(&c);
        assert_int_equal(pinlet_creds_lookup(paths, NULL, "other", &c, NULL), 0);
        assert_true(pinlet_creds_empty(&c));
        assert_string_equal(c.source, "anonymous");
        assert_int_equal(pinlet_creds_lookup(NULL, NULL, "other", &c, NULL), 0);
        assert_true(pinlet_creds_empty(&c));

        unlink(a);
        unlink(b);
        rmdir(dir);
}

static void test_fingerprint(void **state)
{
        struct pinlet_creds x = { .username = "ab", .password = "" };
        struct pinlet_creds y = { .username = "a", .password = "b" };
        struct pinlet_creds swapped = { .username = "", .password = "ab" };
        struct pinlet_creds anon = { 0 };
        char fx[65], fy[65], fs[65], fa[65], fa2[65];

        assert_int_equal(pinlet_creds_fingerprint(&x, fx), 0);
        assert_int_equal(pinlet_creds_fingerprint(&y, fy), 0);
        assert_int_equal(pinlet_creds_fingerprint(&swapped, fs), 0);
        assert_int_equal(pinlet_creds_fingerprint(&anon, fa), 0);
        assert_int_equal(pinlet_creds_fingerprint(&anon, fa2), 0);
        assert_int_equal(strlen(fx), 64);
        assert_string_not_equal(fx, fy);
        assert_string_not_equal(fx, fs);
        assert_string_not_equal(fx, fa);
        assert_string_equal(fa, fa2);
        /* anonymous is SHA-256 of the four absent-field tags, a real hash: never a
         * constant such as all zeros that other credentials could share */
        assert_string_equal(fa, "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_host_key),     cmocka_unit_test(test_decode_auth),
                cmocka_unit_test(test_from_auth),    cmocka_unit_test(test_docker_config),
                cmocka_unit_test(test_lookup_order), cmocka_unit_test(test_fingerprint),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
