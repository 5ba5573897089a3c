/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pinlet-verify-sigstore's checks (plugin/sigstore/sigstore.h) with keys generated here:
 * signatures for each key type cosign uses, payload checks, policy files and the
 * signature manifest parser.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sigstore.h"

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OTHER  "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static char dir[128];

static int setup(void **state)
{
        char tmpl[] = "/tmp/pinlet-test-sigstore-XXXXXX";

        assert_non_null(mkdtemp(tmpl));
        snprintf(dir, sizeof(dir), "%s", tmpl);
        return 0;
}

static int teardown(void **state)
{
        char cmd[256];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static EVP_PKEY *keygen(const char *type)
{
        EVP_PKEY *k;

        if (strcmp(type, "P-256") == 0 || strcmp(type, "P-384") == 0)
                k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", type);
        else if (strcmp(type, "RSA") == 0)
                k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        else
                k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        assert_non_null(k);
        return k;
}

/* cosign's signing: SHA-256 for ECDSA and RSA, the message itself for Ed25519; base64 */
static char *sign(EVP_PKEY *k, const char *payload)
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        const EVP_MD *md = EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
        unsigned char sig[1024];
        size_t n = sizeof(sig);
        char *b64 = malloc(2048);

        assert_int_equal(EVP_DigestSignInit(ctx, NULL, md, NULL, k), 1);
        assert_int_equal(
                EVP_DigestSign(ctx, sig, &n, (const unsigned char *)payload, strlen(payload)), 1);
        EVP_MD_CTX_free(ctx);
        EVP_EncodeBlock((unsigned char *)b64, sig, (int)n);
        return b64;
}

static void write_pub(EVP_PKEY *k, const char *name, char *path, size_t size)
{
        FILE *f;

        snprintf(path, size, "%s/%s", dir, name);
        f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(PEM_write_PUBKEY(f, k), 1);
        fclose(f);
}

static const char payload_ok[] =
        "{\"critical\":{\"identity\":{\"docker-reference\":\"127.0.0.1:5000/tiny/app\"},"
        "\"image\":{\"docker-manifest-digest\":\"" DIGEST "\"},"
        "\"type\":\"cosign container image signature\"},\"optional\":null}";

static void test_signatures(void **state)
{
        static const char *const types[] = { "P-256", "P-384", "RSA", "ED25519" };

        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
                EVP_PKEY *k = keygen(types[i]), *other = keygen("P-256");
                EVP_PKEY *keys[2] = { other, k };
                char *sig = sign(k, payload_ok), path[256];
                EVP_PKEY *loaded = NULL;
                char tampered[sizeof(payload_ok)];

                /* any one key of the rule suffices */
                assert_int_equal(
                        sigstore_signature_verify(keys, 2, payload_ok, strlen(payload_ok), sig), 1);
                assert_int_equal(
                        sigstore_signature_verify(keys, 1, payload_ok, strlen(payload_ok), sig), 0);
                memcpy(tampered, payload_ok, sizeof(payload_ok));
                tampered[20] ^= 1;
                assert_int_equal(
                        sigstore_signature_verify(keys, 2, tampered, strlen(tampered), sig), 0);
                assert_int_equal(sigstore_signature_verify(keys, 2, payload_ok, strlen(payload_ok),
                                                           "%%not base64"),
                                 0);
                assert_int_equal(
                        sigstore_signature_verify(keys, 2, payload_ok, strlen(payload_ok), ""), 0);
                /* the PEM file round trip the policy uses */
                write_pub(k, types[i], path, sizeof(path));
                assert_int_equal(sigstore_key_load(path, &loaded, NULL), 0);
                assert_int_equal(
                        sigstore_signature_verify(&loaded, 1, payload_ok, strlen(payload_ok), sig),
                        1);
                EVP_PKEY_free(loaded);
                EVP_PKEY_free(k);
                EVP_PKEY_free(other);
                free(sig);
        }
}

static void test_payload(void **state)
{
        static const struct {
                const char *payload;
                const char *digest, *repo;
                enum sigstore_payload_result want;
                const char *found;
        } cases[] = {
                { payload_ok, DIGEST, "127.0.0.1:5000/tiny/app", SIGSTORE_PAYLOAD_OK, NULL },
                { payload_ok, OTHER, "127.0.0.1:5000/tiny/app", SIGSTORE_PAYLOAD_DIGEST_MISMATCH,
                  DIGEST },
                { payload_ok, DIGEST, "127.0.0.1:5000/tiny/other",
                  SIGSTORE_PAYLOAD_IDENTITY_MISMATCH, "127.0.0.1:5000/tiny/app" },
                /* Docker Hub's short names normalize; a tag in the identity is ignored */
                { "{\"critical\":{\"identity\":{\"docker-reference\":\"nginx:1.25\"},"
                  "\"image\":{\"docker-manifest-digest\":\"" DIGEST "\"},"
                  "\"type\":\"cosign container image signature\"}}",
                  DIGEST, "docker.io/library/nginx", SIGSTORE_PAYLOAD_OK, NULL },
                /* another type of payload, missing fields, not JSON, not an object */
                { "{\"critical\":{\"identity\":{\"docker-reference\":\"a/b\"},"
                  "\"image\":{\"docker-manifest-digest\":\"" DIGEST "\"},"
                  "\"type\":\"atomic container signature\"}}",
                  DIGEST, "docker.io/a/b", SIGSTORE_PAYLOAD_MALFORMED, NULL },
                { "{\"critical\":{\"type\":\"cosign container image signature\"}}", DIGEST,
                  "docker.io/a/b", SIGSTORE_PAYLOAD_MALFORMED, NULL },
                { "not json", DIGEST, "docker.io/a/b", SIGSTORE_PAYLOAD_MALFORMED, NULL },
                { "[]", DIGEST, "docker.io/a/b", SIGSTORE_PAYLOAD_MALFORMED, NULL },
                /* an identity that is not a reference is no match */
                { "{\"critical\":{\"identity\":{\"docker-reference\":\"UPPER/Case\"},"
                  "\"image\":{\"docker-manifest-digest\":\"" DIGEST "\"},"
                  "\"type\":\"cosign container image signature\"}}",
                  DIGEST, "docker.io/upper/case", SIGSTORE_PAYLOAD_IDENTITY_MISMATCH,
                  "UPPER/Case" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *found = NULL;
                enum sigstore_payload_result r =
                        sigstore_payload_check(cases[i].payload, strlen(cases[i].payload),
                                               cases[i].digest, cases[i].repo, &found);

                if (r != cases[i].want)
                        fail_msg("case %zu: got %d", i, (int)r);
                if (cases[i].found)
                        assert_string_equal(found, cases[i].found);
                else
                        assert_null(found);
                free(found);
        }
}

static void test_policy(void **state)
{
        EVP_PKEY *a = keygen("P-256"), *b = keygen("ED25519");
        char pa[256], pb[256], yaml[2048];
        struct sigstore_policy *p = NULL;
        struct pinlet_error *err = NULL;
        const struct sigstore_rule *r;

        write_pub(a, "a.pub", pa, sizeof(pa));
        write_pub(b, "b.pub", pb, sizeof(pb));
        snprintf(yaml, sizeof(yaml),
                 "rules:\n"
                 "  - repositories: [\"127.0.0.1:*/tiny/app\", docker.io/library/nginx]\n"
                 "    keys: [%s]\n"
                 "  - repositories: \"127.0.0.1:*\"\n"
                 "    keys: [%s, %s]\n"
                 "default: allow\n",
                 pa, pa, pb);
        assert_int_equal(sigstore_policy_parse("p.yaml", yaml, strlen(yaml), &p, &err), 0);
        assert_int_equal(p->n_rules, 2);
        assert_true(p->default_allow);
        /* first match wins; '*' crosses '/' */
        r = sigstore_policy_match(p, "127.0.0.1:5000/tiny/app");
        assert_ptr_equal(r, &p->rules[0]);
        assert_int_equal(r->n_keys, 1);
        assert_ptr_equal(sigstore_policy_match(p, "127.0.0.1:5000/tiny/other"), &p->rules[1]);
        assert_ptr_equal(sigstore_policy_match(p, "docker.io/library/nginx"), &p->rules[0]);
        assert_null(sigstore_policy_match(p, "quay.io/x/y"));
        sigstore_policy_free(p);
        p = NULL;

        /* default is deny when not given */
        snprintf(yaml, sizeof(yaml), "rules:\n  - {repositories: [a/*], keys: [%s]}\n", pa);
        assert_int_equal(sigstore_policy_parse("p.yaml", yaml, strlen(yaml), &p, &err), 0);
        assert_false(p->default_allow);
        sigstore_policy_free(p);

        static const struct {
                const char *yaml;
                const char *message;
        } bad[] = {
                { "rules:\n  - repositories: [a]\n    keys: [/nonexistent.pub]\n",
                  "p.yaml:3: key 'rules[0].keys': cannot load /nonexistent.pub" },
                { "rules:\n  - repositories: [a]\n", "p.yaml:2: key 'rules[0]': no keys" },
                { "rules:\n  - keys: []\n", "p.yaml:2: key 'rules[0]': no repositories" },
                { "rules:\n  - repositories: [a]\n    key: [x]\n",
                  "p.yaml:3: key 'rules[0].key': unknown key" },
                { "default: maybe\n", "p.yaml:1: key 'default': expected deny or allow" },
                { "rule: []\n", "p.yaml:1: key 'rule': unknown key" },
                { "rules: {a: b}\n", "p.yaml:1: key 'rules': expected a list of rules" },
                { "- a\n", "p.yaml: expected a mapping with rules" },
                { "rules: [\n", "p.yaml:2: invalid YAML" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                p = NULL;
                assert_true(sigstore_policy_parse("p.yaml", bad[i].yaml, strlen(bad[i].yaml), &p,
                                                  &err) < 0);
                if (!strstr(err->message, bad[i].message))
                        fail_msg("case %zu: got \"%s\"", i, err->message);
                assert_null(p);
                pinlet_error_free(err);
                err = NULL;
        }
        /* a file that is not a key */
        {
                EVP_PKEY *none = NULL;
                char path[256];
                FILE *f;

                snprintf(path, sizeof(path), "%s/not-a-key.pub", dir);
                f = fopen(path, "w");
                assert_non_null(f);
                fputs("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", f);
                fclose(f);
                assert_int_equal(sigstore_key_load(path, &none, &err), -EINVAL);
                assert_non_null(strstr(err->message, "not a PEM public key"));
                assert_null(none);
                pinlet_error_free(err);
        }
        EVP_PKEY_free(a);
        EVP_PKEY_free(b);
}

static void test_manifest(void **state)
{
        static const char m[] =
                "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                "\"size\":233,\"digest\":\"" OTHER "\"},\"layers\":["
                "{\"mediaType\":\"application/vnd.dev.cosign.simplesigning.v1+json\","
                "\"size\":250,\"digest\":\"" DIGEST "\",\"annotations\":"
                "{\"dev.cosignproject.cosign/signature\":\"MEUCIQ==\"}},"
                "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"size\":1,"
                "\"digest\":\"" DIGEST "\"},"
                "{\"mediaType\":\"application/vnd.dev.cosign.simplesigning.v1+json\","
                "\"size\":99999999,\"digest\":\"" DIGEST "\"},"
                "{\"mediaType\":\"application/vnd.dev.cosign.simplesigning.v1+json\","
                "\"size\":10,\"digest\":\"" OTHER "\"}]}";
        struct sigstore_layers l = { 0 };
        struct pinlet_error *err = NULL;

        assert_int_equal(sigstore_manifest_parse(m, strlen(m), &l, &err), 0);
        assert_int_equal(l.n, 2);
        assert_int_equal(l.skipped, 2); /* another type; a payload over the cap */
        assert_string_equal(l.v[0].digest, DIGEST);
        assert_int_equal(l.v[0].size, 250);
        assert_string_equal(l.v[0].signature, "MEUCIQ==");
        assert_null(l.v[1].signature);
        sigstore_layers_done(&l);

        assert_int_equal(sigstore_manifest_parse("{}", 2, &l, &err), PINLET_EPROTO);
        assert_non_null(strstr(err->message, "not a manifest with layers"));
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(sigstore_manifest_parse("x", 1, &l, &err), PINLET_EPROTO);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(sigstore_manifest_parse(m, SIGSTORE_MANIFEST_MAX + 1, &l, &err),
                         PINLET_EPROTO);
        pinlet_error_free(err);
}

/* more simple-signing layers than the cap: the first SIGSTORE_LAYERS_MAX are kept */
static void test_manifest_layer_cap(void **state)
{
        char *m = malloc(64 * 1024);
        size_t off = 0;
        struct sigstore_layers l = { 0 };

        off += (size_t)sprintf(m + off, "{\"layers\":[");
        for (int i = 0; i < SIGSTORE_LAYERS_MAX + 5; i++)
                off += (size_t)sprintf(m + off,
                                       "%s{\"mediaType\":\"" SIGSTORE_MT_SIMPLESIGNING
                                       "\",\"size\":1,\"digest\":\"" DIGEST "\"}",
                                       i ? "," : "");
        off += (size_t)sprintf(m + off, "]}");
        assert_int_equal(sigstore_manifest_parse(m, off, &l, NULL), 0);
        assert_int_equal(l.n, SIGSTORE_LAYERS_MAX);
        assert_int_equal(l.skipped, 5);
        sigstore_layers_done(&l);
        free(m);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_signatures),
                cmocka_unit_test(test_payload),
                cmocka_unit_test(test_policy),
                cmocka_unit_test(test_manifest),
                cmocka_unit_test(test_manifest_layer_cap),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
