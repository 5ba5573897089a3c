/* SPDX-License-Identifier: Apache-2.0 */
/* kubelet credential provider plugins: matchImages, Go durations, the config file, the
 * response, and running real provider programs (shell scripts written to a temporary
 * directory) with the cache, timeouts, failures and the environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/credprov.h"
#include "util/time.h"

/* kubelet's URLsMatchStr cases (pkg/credentialprovider keyring tests), plus ports. */
static void test_match(void **state)
{
        static const struct {
                const char *glob, *image;
                bool want;
        } t[] = {
                { "registry.io", "registry.io/foo", true },
                { "registry.io", "registry.io", true },
                { "registry.io", "other.io/foo", false },
                { "*.registry.io", "a.registry.io/foo", true },
                { "*.registry.io", "registry.io/foo", false },     /* '*' is one label */
                { "*.registry.io", "a.b.registry.io/foo", false }, /* ... exactly one */
                { "*.*.registry.io", "a.b.registry.io/foo", true },
                { "registry.*", "registry.io/foo", true },
                { "*.io", "registry.io/foo", true },
                { "*", "localhost/foo", true },
                { "*", "registry.io/foo", false },
                { "reg?stry.io", "registry.io/foo", true },
                { "registry.io:5000", "registry.io:5000/foo", true },
                { "registry.io:5000", "registry.io/foo", false }, /* port must match */
                { "registry.io", "registry.io:5000/foo", false }, /* absent == absent */
                { "registry.io:5000", "registry.io:5001/foo", false },
                { "*.registry.io:5000", "a.registry.io:5000/x", true },
                { "registry.io/foo", "registry.io/foo/bar", true }, /* path prefix */
                { "registry.io/foo", "registry.io/foobar", true },  /* kubelet: a string prefix */
                { "registry.io/foo/bar", "registry.io/foo", false },
                { "registry.io/foo", "registry.io/bar", false },
                { "https://registry.io", "registry.io/foo", true }, /* scheme ignored */
                { "Registry.IO", "registry.io/foo", true },         /* hosts: any case */
                { "127.0.0.1:5000", "127.0.0.1:5000/tiny/app", true },
                { "127.0.0.*:5000", "127.0.0.1:5000/tiny/app", true },
                { "[::1]:5000", "[::1]:5000/tiny/app", true },
                { "[::1]:5000", "[::1]:5001/tiny/app", false },
                { "", "registry.io/foo", false },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                bool got = pinlet_credprov_match(t[i].glob, t[i].image);

                if (got != t[i].want)
                        fail_msg("match(%s, %s) = %d, want %d", t[i].glob, t[i].image, got,
                                 t[i].want);
        }
}

static void test_duration(void **state)
{
        static const struct {
                const char *in;
                int ret;
                uint64_t ms;
        } t[] = {
                { "0", 0, 0 },
                { "0s", 0, 0 },
                { "5m", 0, 300000 },
                { "1h0m0s", 0, 3600000 },
                { "1.5h", 0, 5400000 },
                { "300ms", 0, 300 },
                { "2h45m", 0, 9900000 },
                { "1500us", 0, 1 },
                { "10s", 0, 10000 },
                { "+10s", 0, 10000 },
                { ".5s", 0, 500 },
                { "-1s", -EINVAL, 0 },
                { "", -EINVAL, 0 },
                { "5", -EINVAL, 0 },
                { "5 m", -EINVAL, 0 },
                { "1d", -EINVAL, 0 },
                { "s", -EINVAL, 0 },
                { ".s", -EINVAL, 0 },
                { "99999999999999999999h", -ERANGE, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                uint64_t ms = 12345;
                int r = pinlet_credprov_parse_duration(t[i].in, &ms);

                if (r != t[i].ret || (r == 0 && ms != t[i].ms))
                        fail_msg("duration '%s': %d %llu, want %d %llu", t[i].in, r,
                                 (unsigned long long)ms, t[i].ret, (unsigned long long)t[i].ms);
        }
}

static const char config_yaml[] = "apiVersion: kubelet.config.k8s.io/v1\n"
                                  "kind: CredentialProviderConfig\n"
                                  "providers:\n"
                                  "  - name: ecr-credential-provider\n"
                                  "    matchImages:\n"
                                  "      - \"*.dkr.ecr.*.amazonaws.com\"\n"
                                  "      - \"*.dkr.ecr.*.amazonaws.com.cn\"\n"
                                  "    defaultCacheDuration: \"12h\"\n"
                                  "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"
                                  "    args:\n"
                                  "      - get-credentials\n"
                                  "    env:\n"
                                  "      - name: AWS_PROFILE\n"
                                  "        value: temp\n"
                                  "  - name: other\n"
                                  "    matchImages: [\"registry.example:5000/team\"]\n"
                                  "    defaultCacheDuration: 0s\n"
                                  "    apiVersion: credentialprovider.kubelet.k8s.io/v1beta1\n";

static void test_config_yaml(void **state)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_credprov_config c = { 0 };
        const struct pinlet_credprov_provider *p;

        assert_int_equal(
                pinlet_credprov_config_parse(config_yaml, strlen(config_yaml), "cp.yaml", &c, &err),
                0);
        assert_int_equal(c.n_providers, 2);
        p = &c.providers[0];
        assert_string_equal(p->name, "ecr-credential-provider");
        assert_string_equal(p->match_images[0], "*.dkr.ecr.*.amazonaws.com");
        assert_string_equal(p->match_images[1], "*.dkr.ecr.*.amazonaws.com.cn");
        assert_null(p->match_images[2]);
        assert_int_equal(p->default_cache_ms, 12 * 3600 * 1000ULL);
        assert_string_equal(p->api_version, "credentialprovider.kubelet.k8s.io/v1");
        assert_string_equal(p->args[0], "get-credentials");
        assert_null(p->args[1]);
        assert_string_equal(p->env[0], "AWS_PROFILE=temp");
        assert_null(p->env[1]);
        assert_string_equal(p->source, "credential provider ecr-credential-provider");
        p = &c.providers[1];
        assert_int_equal(p->default_cache_ms, 0);
        assert_null(p->args);
        assert_null(p->env);
        pinlet_credprov_config_free(&c);
}

static void test_config_json(void **state)
{
        static const char json[] =
                "  {\"apiVersion\": \"kubelet.config.k8s.io/v1beta1\",\n"
                "   \"kind\": \"CredentialProviderConfig\",\n"
                "   \"providers\": [{\"name\": \"p\", \"matchImages\": [\"127.0.0.1:5000\"],\n"
                "     \"defaultCacheDuration\": \"1m\",\n"
                "     \"apiVersion\": \"credentialprovider.kubelet.k8s.io/v1\",\n"
                "     \"env\": [{\"name\": \"A\", \"value\": \"b=c\"}]}]}\n";
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_credprov_config c = { 0 };

        assert_int_equal(pinlet_credprov_config_parse(json, strlen(json), "cp.json", &c, &err), 0);
        assert_int_equal(c.n_providers, 1);
        assert_string_equal(c.providers[0].env[0], "A=b=c");
        assert_int_equal(c.providers[0].default_cache_ms, 60000);
        pinlet_credprov_config_free(&c);
}

#define HEAD "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\n"
#define PROV(extra)                                                \
        HEAD "providers:\n- name: p\n  matchImages: [a.example]\n" \
             "  defaultCacheDuration: 1m\n"                        \
             "  apiVersion: credentialprovider.kubelet.k8s.io/v1\n" extra

static void test_config_errors(void **state)
{
        static const struct {
                const char *text, *want;
        } t[] = {
                { "", "empty" },
                { "[]", "not a mapping" },
                { "apiVersion: kubelet.config.k8s.io/v1\nproviders: []\n", "'kind' is required" },
                { "apiVersion: v2\nkind: CredentialProviderConfig\n", "unsupported 'apiVersion'" },
                { "apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n",
                  "not CredentialProviderConfig" },
                { HEAD "providers: []\n", "at least one provider" },
                { HEAD "providers:\n- matchImages: [a]\n", "providers[0]: 'name' is required" },
                { HEAD "providers:\n- name: ../sh\n  matchImages: [a]\n"
                       "  defaultCacheDuration: 1m\n"
                       "  apiVersion: credentialprovider.kubelet.k8s.io/v1\n",
                  "file name in the bin dir" },
                { HEAD "providers:\n- name: p\n  matchImages: []\n  defaultCacheDuration: 1m\n"
                       "  apiVersion: credentialprovider.kubelet.k8s.io/v1\n",
                  "'matchImages' must list" },
                { HEAD "providers:\n- name: p\n  matchImages: [a]\n"
                       "  apiVersion: credentialprovider.kubelet.k8s.io/v1\n",
                  "'defaultCacheDuration' is required" },
                { HEAD "providers:\n- name: p\n  matchImages: [a]\n  defaultCacheDuration: -1m\n"
                       "  apiVersion: credentialprovider.kubelet.k8s.io/v1\n",
                  "invalid 'defaultCacheDuration'" },
                { HEAD "providers:\n- name: p\n  matchImages: [a]\n  defaultCacheDuration: 1m\n"
                       "  apiVersion: credentialprovider.kubelet.k8s.io/v1alpha0\n",
                  "unsupported 'apiVersion'" },
                { PROV("  tokenAttributes: {serviceAccountTokenAudience: x}\n"),
                  "'tokenAttributes'" },
                { PROV("  env: [{name: A}]\n"), "'value' is required" },
                { PROV("  env: [{name: 'A=B', value: c}]\n"), "without '='" },
                { PROV("  args: [a, [b]]\n"), "'args[1]' must be a string" },
                { PROV("- name: p\n  matchImages: [b]\n  defaultCacheDuration: 1m\n"
                       "  apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
                  "duplicate provider name 'p'" },
                { PROV("  args: &x [a]\n  env: *x\n"), "aliases" },
                { HEAD "kind: again\n", "given twice" },
                { PROV("---\nkind: x\n"), "second YAML document" },
                { "{\"kind\": \"CredentialProviderConfig\", ", "cp.yaml:1" },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                struct pinlet_credprov_config c = { 0 };
                int r = pinlet_credprov_config_parse(t[i].text, strlen(t[i].text), "cp.yaml", &c,
                                                     &err);

                if (r >= 0)
                        fail_msg("case %zu parsed: %s", i, t[i].text);
                assert_non_null(err);
                if (!strstr(err->message, t[i].want) || !strstr(err->message, "cp.yaml"))
                        fail_msg("case %zu: message '%s' lacks '%s'", i, err->message, t[i].want);
        }
}

#define RESP_HEAD                                   \
        "{\"kind\":\"CredentialProviderResponse\"," \
        "\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1\","

static void test_response(void **state)
{
        static const char ok[] = RESP_HEAD
                "\"cacheKeyType\":\"Registry\",\"cacheDuration\":\"5m\","
                "\"auth\":{"
                "\"*.example.com\":{\"username\":\"glob\",\"password\":\"pw-glob\"},"
                "\"reg.example.com\":{\"username\":\"host\",\"password\":\"pw-host\"},"
                "\"reg.example.com/team\":{\"username\":\"team\",\"password\":\"pw-team\"},"
                "\"reg.example.com/team/app\":{\"username\":\"app\",\"password\":\"pw-app\"}"
                "}}";
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_credprov_response r = { 0 };
        const struct pinlet_credprov_auth *a;

        assert_int_equal(pinlet_credprov_response_parse(
                                 ok, strlen(ok), "credentialprovider.kubelet.k8s.io/v1", &r, &err),
                         0);
        assert_int_equal(r.key_type, PINLET_CREDPROV_KEY_REGISTRY);
        assert_true(r.has_duration);
        assert_int_equal(r.duration_ms, 300000);
        assert_int_equal(r.n_auth, 4);
        /* the most specific key wins (kubelet: reverse lexicographic order) */
        a = pinlet_credprov_response_best(&r, "reg.example.com/team/app");
        assert_string_equal(a->username, "app");
        assert_string_equal(a->password, "pw-app");
        a = pinlet_credprov_response_best(&r, "reg.example.com/team/other");
        assert_string_equal(a->username, "team");
        a = pinlet_credprov_response_best(&r, "reg.example.com/elsewhere");
        assert_string_equal(a->username, "host");
        a = pinlet_credprov_response_best(&r, "other.example.com/x");
        assert_string_equal(a->username, "glob");
        assert_null(pinlet_credprov_response_best(&r, "example.com/x"));
        assert_null(pinlet_credprov_response_best(&r, "reg.example.com:5000/team/app"));
        pinlet_credprov_response_free(&r);

        /* no cacheDuration, no auth: valid, nothing matches */
        static const char empty[] = RESP_HEAD "\"cacheKeyType\":\"Global\"}";
        assert_int_equal(pinlet_credprov_response_parse(empty, strlen(empty),
                                                        "credentialprovider.kubelet.k8s.io/v1", &r,
                                                        &err),
                         0);
        assert_false(r.has_duration);
        assert_int_equal(r.key_type, PINLET_CREDPROV_KEY_GLOBAL);
        assert_null(pinlet_credprov_response_best(&r, "a/b"));
        pinlet_credprov_response_free(&r);
}

static void test_response_errors(void **state)
{
        static const struct {
                const char *text, *want;
        } t[] = {
                { "not json SECRET", "not valid JSON" },
                { "[\"SECRET\"]", "not a JSON object" },
                { "{\"kind\":\"X\"}", "'kind'" },
                { "{\"kind\":\"CredentialProviderResponse\",\"apiVersion\":\"v9\"}",
                  "does not match the request's credentialprovider.kubelet.k8s.io/v1" },
                { RESP_HEAD "\"auth\":{}}", "no 'cacheKeyType'" },
                { RESP_HEAD "\"cacheKeyType\":\"Pod\"}", "not Image, Registry or Global" },
                { RESP_HEAD "\"cacheKeyType\":\"Image\",\"cacheDuration\":\"soon\"}",
                  "not a duration" },
                { RESP_HEAD "\"cacheKeyType\":\"Image\",\"cacheDuration\":300}", "not a string" },
                { RESP_HEAD "\"cacheKeyType\":\"Image\",\"auth\":[]}", "'auth' is not a mapping" },
                { RESP_HEAD "\"cacheKeyType\":\"Image\",\"auth\":{\"a\":\"SECRET\"}}",
                  "not {username, password}" },
                { RESP_HEAD "\"cacheKeyType\":\"Image\",\"auth\":{\"a\":{\"password\":7}}}",
                  "not {username, password}" },
                { RESP_HEAD
                  "\"cacheKeyType\":\"Image\",\"auth\":{\"a\":{\"password\":\"S\\u0000ECRET\"}}}",
                  "not valid JSON" }, /* jansson refuses \u0000 */
                { RESP_HEAD "\"cacheKeyType\":\"Image\",\"auth\":{\"a\":{\"password\":\"SECRET\"},"
                            "\"a\":{\"password\":\"SECRET\"}}}",
                  "not valid JSON" },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                struct pinlet_credprov_response r = { 0 };
                int k = pinlet_credprov_response_parse(t[i].text, strlen(t[i].text),
                                                       "credentialprovider.kubelet.k8s.io/v1", &r,
                                                       &err);

                if (k != PINLET_EPROTO)
                        fail_msg("case %zu: %d, want PINLET_EPROTO", i, k);
                if (!strstr(err->message, t[i].want))
                        fail_msg("case %zu: message '%s' lacks '%s'", i, err->message, t[i].want);
                /* a response's text is never quoted: it may hold a password */
                if (strstr(err->message, "SECRET"))
                        fail_msg("case %zu: message quotes the response: %s", i, err->message);
        }
}

/* ---- running providers ---- */

struct fixture {
        char dir[64];
        char config[128];
        char bin[128];
        char count[128];
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        strcpy(f->dir, "/tmp/pinlet-test-credprov-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->config, sizeof(f->config), "%s/config.yaml", f->dir);
        snprintf(f->bin, sizeof(f->bin), "%s/bin", f->dir);
        snprintf(f->count, sizeof(f->count), "%s/runs", f->dir);
        assert_int_equal(mkdir(f->bin, 0755), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char cmd[256];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
        FILE *fp = fopen(path, "w");

        assert_non_null(fp);
        fputs(text, fp);
        assert_int_equal(fclose(fp), 0);
        assert_int_equal(chmod(path, mode), 0);
}

/* A provider script named name in the bin dir: it appends a line to the runs file, saves
 * its stdin to <dir>/<name>.request, then runs body. */
static void write_provider(struct fixture *f, const char *name, const char *body)
{
        char path[256], *script;

        snprintf(path, sizeof(path), "%s/%s", f->bin, name);
        assert_true(asprintf(&script,
                             "#!/bin/sh\n"
                             "echo run >>'%s'\n"
                             "cat >'%s/%s.request'\n"
                             "%s\n",
                             f->count, f->dir, name, body) > 0);
        write_file(path, script, 0755);
        free(script);
}

static void write_config(struct fixture *f, const char *providers)
{
        char *text;

        assert_true(asprintf(&text,
                             "apiVersion: kubelet.config.k8s.io/v1\n"
                             "kind: CredentialProviderConfig\n"
                             "providers:\n%s",
                             providers) > 0);
        write_file(f->config, text, 0644);
        free(text);
}

static struct pinlet_credprov *new_set(struct fixture *f, uint64_t timeout_ms)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_credprov_options o = {
                .config_path = f->config,
                .bin_dir = f->bin,
                .timeout_ms = timeout_ms,
        };
        struct pinlet_credprov *p = NULL;
        int r = pinlet_credprov_new(&o, &p, &err);

        if (r < 0)
                fail_msg("pinlet_credprov_new: %s", pinlet_error_message(err, r));
        return p;
}

#define RESPONSE(type, dur, auth)                                  \
        "printf '%s' '{\"kind\":\"CredentialProviderResponse\","   \
        "\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1\"," \
        "\"cacheKeyType\":\"" type "\"" dur ",\"auth\":{" auth "}}'"

#define PROVIDER(name, match, dur)                                                       \
        "- name: " name "\n  matchImages: [\"" match "\"]\n  defaultCacheDuration: " dur \
        "\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n"

static void expect_creds(struct pinlet_credprov *p, const char *image, const char *user,
                         const char *pass)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_creds c = { 0 };
        int r = pinlet_credprov_lookup(p, image, 0, &c, &err);

        if (r != 1)
                fail_msg("lookup %s: %d %s", image, r, pinlet_error_message(err, r));
        assert_string_equal(c.username, user);
        assert_string_equal(c.password, pass);
        assert_non_null(strstr(c.source, "credential provider"));
        pinlet_creds_clear(&c);
}

static void test_run_and_cache(void **state)
{
        struct fixture *f = *state;
        struct pinlet_credprov *p;
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_creds c = { 0 };
        char path[256], *req = NULL;
        FILE *fp;

        write_provider(f, "reg",
                       RESPONSE("Registry", "",
                                "\"127.0.0.1:5000\":{\"username\":\"alice\","
                                "\"password\":\"s3cret\"}"));
        write_config(f, PROVIDER("reg", "127.0.0.1:5000", "1h"));
        p = new_set(f, 0);

        expect_creds(p, "127.0.0.1:5000/tiny/app", "alice", "s3cret");
        assert_int_equal(pinlet_credprov_runs(p), 1);
        /* the request: kind, the provider's apiVersion, the image without tag */
        snprintf(path, sizeof(path), "%s/reg.request", f->dir);
        fp = fopen(path, "r");
        assert_non_null(fp);
        assert_int_equal(fscanf(fp, "%m[^\n]", &req), 1);
        fclose(fp);
        assert_non_null(strstr(req, "\"kind\":\"CredentialProviderRequest\""));
        assert_non_null(strstr(req, "\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1\""));
        assert_non_null(strstr(req, "\"image\":\"127.0.0.1:5000/tiny/app\""));
        free(req);

        /* Registry key: every image of the registry is answered from the cache */
        for (int i = 0; i < 10; i++)
                expect_creds(p, i % 2 ? "127.0.0.1:5000/tiny/app" : "127.0.0.1:5000/other", "alice",
                             "s3cret");
        assert_int_equal(pinlet_credprov_runs(p), 1);

        /* an image no matchImages names: no provider runs */
        assert_int_equal(pinlet_credprov_lookup(p, "127.0.0.1:5001/tiny/app", 0, &c, &err), 0);
        assert_int_equal(pinlet_credprov_lookup(p, "docker.io/library/nginx", 0, &c, &err), 0);
        assert_int_equal(pinlet_credprov_runs(p), 1);
        pinlet_credprov_free(p);
}

static void test_cache_key_types(void **state)
{
        struct fixture *f = *state;
        struct pinlet_credprov *p;

        /* Image: one run per image */
        write_provider(
                f, "img",
                RESPONSE("Image", "", "\"*.example\":{\"username\":\"u\",\"password\":\"p\"}"));
        /* Global: one run for everything */
        write_provider(
                f, "glob",
                RESPONSE("Global", "", "\"*.test\":{\"username\":\"g\",\"password\":\"q\"}"));
        /* cacheDuration 0s: not cached, one run per lookup */
        write_provider(f, "nocache",
                       RESPONSE("Global", ",\"cacheDuration\":\"0s\"",
                                "\"*.nc\":{\"username\":\"n\",\"password\":\"c\"}"));
        write_config(f, PROVIDER("img", "*.example", "1h") PROVIDER("glob", "*.test", "1h")
                                PROVIDER("nocache", "*.nc", "1h"));
        p = new_set(f, 0);

        expect_creds(p, "a.example/x", "u", "p");
        expect_creds(p, "a.example/x", "u", "p");
        assert_int_equal(pinlet_credprov_runs(p), 1);
        expect_creds(p, "a.example/y", "u", "p");
        assert_int_equal(pinlet_credprov_runs(p), 2);

        expect_creds(p, "a.test/x", "g", "q");
        expect_creds(p, "b.test/y", "g", "q");
        assert_int_equal(pinlet_credprov_runs(p), 3);

        expect_creds(p, "a.nc/x", "n", "c");
        expect_creds(p, "a.nc/x", "n", "c");
        assert_int_equal(pinlet_credprov_runs(p), 5);
        pinlet_credprov_free(p);
}

static void test_expiry(void **state)
{
        struct fixture *f = *state;
        struct pinlet_credprov *p;
        int64_t deadline;

        write_provider(f, "short",
                       RESPONSE("Global", ",\"cacheDuration\":\"200ms\"",
                                "\"*.ex\":{\"username\":\"u\",\"password\":\"p\"}"));
        write_config(f, PROVIDER("short", "*.ex", "1h"));
        p = new_set(f, 0);
        expect_creds(p, "a.ex/x", "u", "p");
        assert_int_equal(pinlet_credprov_runs(p), 1);
        /* wait until the entry has expired, by the clock the cache reads */
        deadline = pinlet_now_ms() + 250;
        while (pinlet_now_ms() < deadline)
                usleep(20 * 1000);
        expect_creds(p, "a.ex/x", "u", "p");
        assert_int_equal(pinlet_credprov_runs(p), 2);
        pinlet_credprov_free(p);
}

static void test_args_env(void **state)
{
        struct fixture *f = *state;
        struct pinlet_credprov *p;

        setenv("PINLET_TEST_INHERITED", "inherited", 1);
        setenv("PINLET_TEST_REPLACED", "old", 1);
        /* the username carries what the provider saw: args and environment */
        write_provider(f, "envp",
                       "printf '{\"kind\":\"CredentialProviderResponse\","
                       "\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1\","
                       "\"cacheKeyType\":\"Image\",\"cacheDuration\":\"0s\",\"auth\":{\"*.ex\":"
                       "{\"username\":\"%s %s %s %s\",\"password\":\"p\"}}}' \"$1\" \"$2\" "
                       "\"$PINLET_TEST_INHERITED\" \"$PINLET_TEST_REPLACED\"");
        write_config(f, "- name: envp\n  matchImages: ['*.ex']\n  defaultCacheDuration: 1h\n"
                        "  apiVersion: credentialprovider.kubelet.k8s.io/v1\n"
                        "  args: [get-credentials, 'a b']\n"
                        "  env: [{name: PINLET_TEST_REPLACED, value: new}]\n");
        p = new_set(f, 0);
        expect_creds(p, "a.ex/x", "get-credentials a b inherited new", "p");
        pinlet_credprov_free(p);
        unsetenv("PINLET_TEST_INHERITED");
        unsetenv("PINLET_TEST_REPLACED");
}

static void expect_failure(struct pinlet_credprov *p, const char *image, int code, const char *want)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_creds c = { 0 };
        int r = pinlet_credprov_lookup(p, image, 0, &c, &err);

        if (r != code)
                fail_msg("lookup %s: %d (%s), want %d", image, r, pinlet_error_message(err, r),
                         code);
        if (!strstr(err->message, want))
                fail_msg("lookup %s: message '%s' lacks '%s'", image, err->message, want);
        if (strstr(err->message, "SECRET"))
                fail_msg("lookup %s: message quotes the output: %s", image, err->message);
}

static void test_failures(void **state)
{
        struct fixture *f = *state;
        struct pinlet_credprov *p;
        int64_t t0;

        write_provider(f, "fails", "echo SECRET-on-stderr >&2; exit 3");
        write_provider(f, "hangs", "exec sleep 30");
        write_provider(f, "closes", "exec >&- 2>&-; exec sleep 30");
        write_provider(f, "garbage", "echo SECRET not json");
        write_provider(f, "huge", "head -c 2000000 /dev/zero");
        write_provider(
                f, "wrongapi",
                "printf '{\"kind\":\"CredentialProviderResponse\",\"apiVersion\":"
                "\"credentialprovider.kubelet.k8s.io/v1beta1\",\"cacheKeyType\":\"Image\"}'");
        write_provider(f, "noread", "exec </dev/null; " RESPONSE("Image", "", ""));
        write_config(f, PROVIDER("fails", "fails.ex", "1h") PROVIDER("hangs", "hangs.ex", "1h")
                                PROVIDER("closes", "closes.ex", "1h") PROVIDER("garbage",
                                                                               "garbage.ex", "1h")
                                        PROVIDER("huge", "huge.ex", "1h")
                                                PROVIDER("wrongapi", "wrongapi.ex", "1h")
                                                        PROVIDER("noread", "noread.ex", "1h"));
        p = new_set(f, 500);

        expect_failure(p, "fails.ex/x", PINLET_EUNAVAIL,
                       "credential provider fails: exited with status 3");
        t0 = pinlet_now_ms();
        expect_failure(p, "hangs.ex/x", PINLET_ETIMEOUT,
                       "credential provider hangs: no answer in time");
        assert_true(pinlet_now_ms() - t0 < 5000);
        t0 = pinlet_now_ms();
        expect_failure(p, "closes.ex/x", PINLET_ETIMEOUT,
                       "credential provider closes: no answer in time");
        assert_true(pinlet_now_ms() - t0 < 5000);
        expect_failure(p, "garbage.ex/x", PINLET_EPROTO,
                       "credential provider garbage: response is not valid JSON");
        expect_failure(p, "huge.ex/x", PINLET_EPROTO,
                       "credential provider huge: response larger than");
        expect_failure(p, "wrongapi.ex/x", PINLET_EPROTO,
                       "credential provider wrongapi: response 'apiVersion'");
        /* failures are not cached: the next lookup runs the provider again */
        expect_failure(p, "fails.ex/x", PINLET_EUNAVAIL, "exited with status 3");
        assert_int_equal(pinlet_credprov_runs(p), 7);
        /* a provider that answers nothing for the image: no credentials, no error */
        {
                _cleanup_error_ struct pinlet_error *err = NULL;
                struct pinlet_creds c = { 0 };

                assert_int_equal(pinlet_credprov_lookup(p, "noread.ex/x", 0, &c, &err), 0);
        }
        pinlet_credprov_free(p);
}

static void test_first_matching_provider(void **state)
{
        struct fixture *f = *state;
        struct pinlet_credprov *p;

        /* the first provider matches the image but has no entry for it: the second's
         * answer is used */
        write_provider(
                f, "first",
                RESPONSE("Global", "", "\"other.ex\":{\"username\":\"x\",\"password\":\"y\"}"));
        write_provider(
                f, "second",
                RESPONSE("Global", "", "\"*.ex\":{\"username\":\"two\",\"password\":\"p2\"}"));
        write_config(f, PROVIDER("first", "*.ex", "1h") PROVIDER("second", "*.ex", "1h"));
        p = new_set(f, 0);
        expect_creds(p, "a.ex/x", "two", "p2");
        expect_creds(p, "a.ex/x", "two", "p2");
        assert_int_equal(pinlet_credprov_runs(p), 2);
        pinlet_credprov_free(p);
}

static void test_new_errors(void **state)
{
        struct fixture *f = *state;
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_credprov_options o = { .config_path = f->config, .bin_dir = f->bin };
        struct pinlet_credprov *p = NULL;
        char path[256];

        write_config(f, PROVIDER("missing", "*.ex", "1h"));
        assert_int_equal(pinlet_credprov_new(&o, &p, &err), PINLET_EINVAL);
        assert_non_null(strstr(err->message, "credential provider missing"));
        assert_non_null(strstr(err->message, "not an executable file"));
        pinlet_error_free(err);
        err = NULL;
        snprintf(path, sizeof(path), "%s/missing", f->bin);
        write_file(path, "not executable", 0644);
        assert_int_equal(pinlet_credprov_new(&o, &p, &err), PINLET_EINVAL);
        pinlet_error_free(err);
        err = NULL;
        o.config_path = "/nonexistent/cp.yaml";
        assert_true(pinlet_credprov_new(&o, &p, &err) < 0);
        assert_non_null(strstr(err->message, "/nonexistent/cp.yaml"));
        assert_null(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_match),
                cmocka_unit_test(test_duration),
                cmocka_unit_test(test_config_yaml),
                cmocka_unit_test(test_config_json),
                cmocka_unit_test(test_config_errors),
                cmocka_unit_test(test_response),
                cmocka_unit_test(test_response_errors),
                cmocka_unit_test_setup_teardown(test_run_and_cache, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cache_key_types, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
                cmocka_unit_test_setup_teardown(test_args_env, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
                cmocka_unit_test_setup_teardown(test_first_matching_provider, setup, teardown),
                cmocka_unit_test_setup_teardown(test_new_errors, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
