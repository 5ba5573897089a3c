/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pure CRI rewrite functions: requests full of fields pinlet's schema does not model
 * are built by hand (test_intercept_pbw.h), one image is replaced, and the output is
 * compared field by field (canonical form) with the same request built with the new
 * image: only the image may differ.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "cri.pb-c.h"
#include "intercept/rewrite.h"
#include "test_intercept_pbw.h"

/* The decoder's size limit in these tests: the configured default. */
#define MAX_LEN PINLET_DEFAULT_MAX_MESSAGE

/* Text fields are `bytes` in pinlet's schema (proto/cri.proto): compare the wire value,
 * length included, with a C string. */
#define assert_bin_equal(b, s) assert_bin_equal_at((b), (s), __FILE__, __LINE__)
static void assert_bin_equal_at(ProtobufCBinaryData b, const char *s, const char *file, int line)
{
        size_t n = strlen(s);

        if (b.len != n || (n && memcmp(b.data, s, n) != 0)) {
                print_error("bytes '%.*s' (%zu) != '%s' (%zu)\n", (int)b.len,
                            b.data ? (const char *)b.data : "", b.len, s, n);
                _fail(file, line);
        }
}

#define DIGEST_REF                        \
        "docker.io/library/nginx@sha256:" \
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- request builders: every field the schema does not model, at every level ---- */

static void sandbox_config(struct pbw *b, uint32_t field)
{
        struct pbw sc = { 0 }, md = { 0 }, dns = { 0 }, pm = { 0 }, lx = { 0 }, sec = { 0 };

        pbw_str(&md, 1, "web-0");
        pbw_str(&md, 2, "5c1d6c7e-uid");
        pbw_str(&md, 3, "prod");
        pbw_uint(&md, 4, 2);
        pbw_str(&md, 9, "unknown-in-metadata");
        pbw_msg(&sc, 1, &md);
        pbw_str(&sc, 2, "web-0");                  /* hostname */
        pbw_str(&sc, 3, "/var/log/pods/prod_web"); /* log_directory */
        pbw_str(&dns, 1, "10.96.0.10");
        pbw_str(&dns, 2, "prod.svc.cluster.local");
        pbw_str(&dns, 3, "ndots:5");
        pbw_msg(&sc, 4, &dns);
        pbw_uint(&pm, 1, 1);
        pbw_uint(&pm, 2, 80);
        pbw_uint(&pm, 3, 8080);
        pbw_str(&pm, 4, "0.0.0.0");
        pbw_msg(&sc, 5, &pm);
        pbw_map(&sc, 6, "app", "web");
        pbw_map(&sc, 6, "tier", "frontend");
        pbw_map(&sc, 7, "kubernetes.io/config.seen", "2026-11-26T10:00:00Z");
        pbw_map(&sc, 7, "kubernetes.io/config.source", "api");
        pbw_str(&lx, 1, "/kubepods/burstable/pod5c1d");
        pbw_uint(&sec, 3, 1);    /* run_as_user wrapper-ish */
        pbw_uint(&sec, 6, 1000); /* something numeric */
        pbw_msg(&lx, 2, &sec);
        pbw_map(&lx, 3, "net.core.somaxconn", "1024");
        pbw_msg(&sc, 8, &lx);
        pbw_fixed64(&sc, 200, 0x1122334455667788ull);
        pbw_msg(b, field, &sc);
}

static void image_spec(struct pbw *b, uint32_t field, const char *image, const char *user)
{
        struct pbw is = { 0 };

        if (image)
                pbw_str(&is, 1, image);
        pbw_map(&is, 2, "io.kubernetes.cri.image-annotation", "x");
        pbw_map(&is, 2, "second", "y");
        if (user)
                pbw_str(&is, 18, user);
        pbw_str(&is, 19, "kata");
        pbw_fixed32(&is, 77, 0xdeadbeef);
        pbw_msg(b, field, &is);
}

static void build_pull(struct pbw *b, const char *image)
{
        struct pbw auth = { 0 };

        pbw_fixed64(b, 1000, 42); /* unknown, before the known fields */
        image_spec(b, 1, image, "nginx:1.25");
        pbw_str(&auth, 1, "alice");
        pbw_str(&auth, 2, "s3cret");
        pbw_str(&auth, 3, "YWxpY2U6czNjcmV0");
        pbw_str(&auth, 4, "registry.example");
        pbw_str(&auth, 5, "id-token");
        pbw_str(&auth, 6, "reg-token");
        pbw_uint(&auth, 50, 7);
        pbw_msg(b, 2, &auth);
        sandbox_config(b, 3);
        pbw_uint(b, 4, 300);
        pbw_str(b, 5000, "far away field");
}

static void build_status(struct pbw *b, const char *image)
{
        image_spec(b, 1, image, NULL);
        pbw_uint(b, 2, 1); /* verbose */
        pbw_str(b, 99, "unknown");
        pbw_fixed32(b, 98, 1);
}

static void build_create(struct pbw *b, const char *config_image, const char *mount_image)
{
        struct pbw cc = { 0 }, md = { 0 }, kv = { 0 }, m = { 0 }, dev = { 0 }, lx = { 0 },
                   res = { 0 }, cdi = { 0 };

        pbw_str(b, 1, "4f2a9e0c5b1d");
        pbw_str(&md, 1, "app");
        pbw_uint(&md, 2, 1);
        pbw_str(&md, 3, "unknown-in-container-metadata");
        pbw_msg(&cc, 1, &md);
        image_spec(&cc, 2, config_image, "registry.example/team/app:v1");
        pbw_str(&cc, 3, "/bin/sh");
        pbw_str(&cc, 4, "-c");
        pbw_str(&cc, 4, "sleep 1");
        pbw_str(&cc, 5, "/srv");
        pbw_str(&kv, 1, "A");
        pbw_str(&kv, 2, "1");
        pbw_msg(&cc, 6, &kv);
        pbw_str(&kv, 1, "B");
        pbw_str(&kv, 2, "2");
        pbw_msg(&cc, 6, &kv);
        /* a host-path mount, an image volume, another host-path mount */
        pbw_str(&m, 1, "/data");
        pbw_str(&m, 2, "/var/lib/data");
        pbw_uint(&m, 3, 1);
        pbw_uint(&m, 4, 1);
        pbw_uint(&m, 5, 2);
        pbw_msg(&cc, 7, &m);
        pbw_str(&m, 1, "/models");
        pbw_uint(&m, 3, 1);
        image_spec(&m, 9, mount_image, "models:v3");
        pbw_uint(&m, 10, 1); /* recursive_read_only-like, after the image */
        pbw_msg(&cc, 7, &m);
        pbw_str(&m, 1, "/tmp");
        pbw_str(&m, 2, "/tmp");
        pbw_msg(&cc, 7, &m);
        pbw_str(&dev, 1, "/dev/fuse");
        pbw_str(&dev, 2, "/dev/fuse");
        pbw_str(&dev, 3, "rwm");
        pbw_msg(&cc, 8, &dev);
        pbw_map(&cc, 9, "io.kubernetes.container.name", "app");
        pbw_map(&cc, 10, "io.kubernetes.container.hash", "abc123");
        pbw_str(&cc, 11, "app/0.log");
        pbw_uint(&cc, 12, 1);
        pbw_uint(&cc, 13, 1);
        pbw_uint(&cc, 14, 1);
        pbw_uint(&res, 1, 100000);
        pbw_uint(&res, 2, 50000);
        pbw_uint(&res, 3, 512);
        pbw_uint(&res, 4, 1u << 28);
        pbw_msg(&lx, 1, &res);
        pbw_msg(&cc, 15, &lx);
        pbw_str(&cdi, 1, "vendor.example/gpu=0");
        pbw_msg(&cc, 17, &cdi);
        pbw_fixed64(&cc, 99, 5);
        pbw_msg(b, 2, &cc);
        sandbox_config(b, 3);
        pbw_str(b, 4, "top-level unknown");
}

/* ---- helpers ---- */

static struct pinlet_intercept_request *decode_ok(enum pinlet_intercept_kind kind,
                                                  const struct pbw *b)
{
        struct pinlet_intercept_request *r = NULL;
        struct pinlet_error *err = NULL;

        assert_int_equal(pinlet_intercept_request_decode(kind, b->d, b->len, MAX_LEN, &r, &err), 0);
        assert_null(err);
        assert_non_null(r);
        return r;
}

/* Encodes r (which must have a change) and checks the output is `expected` field for field
 * and differs from `input`. */
static void assert_encodes_to(struct pinlet_intercept_request *r, const struct pbw *input,
                              const struct pbw *expected, const struct pbw_schema *schema)
{
        uint8_t *out = NULL;
        size_t len = 0;
        char *c_out, *c_exp, *c_in;

        assert_int_equal(pinlet_intercept_request_encode(r, &out, &len, NULL),
                         PINLET_INTERCEPT_REWRITTEN);
        assert_non_null(out);
        c_out = pbw_canon(out, len, schema);
        c_exp = pbw_canon(expected->d, expected->len, schema);
        c_in = pbw_canon(input->d, input->len, schema);
        assert_non_null(c_out);
        assert_non_null(c_exp);
        assert_non_null(c_in);
        assert_string_equal(c_out, c_exp);
        assert_string_not_equal(c_out, c_in);
        free(c_out);
        free(c_exp);
        free(c_in);
        free(out);
}

static void assert_unchanged(struct pinlet_intercept_request *r)
{
        uint8_t *out = (uint8_t *)"sentinel";
        size_t len = 12345;

        assert_int_equal(pinlet_intercept_request_encode(r, &out, &len, NULL),
                         PINLET_INTERCEPT_UNCHANGED);
        assert_string_equal((char *)out, "sentinel"); /* ret_* untouched */
        assert_int_equal(len, 12345);
}

/* ---- tests ---- */

static void test_pull_full(void **state)
{
        struct pbw in = { 0 }, exp = { 0 };
        struct pinlet_intercept_request *r;

        build_pull(&in, "nginx:1.25");
        build_pull(&exp, DIGEST_REF);
        r = decode_ok(PINLET_INTERCEPT_PULL_IMAGE, &in);
        assert_int_equal(r->kind, PINLET_INTERCEPT_PULL_IMAGE);
        assert_int_equal(r->n_slots, 1);
        assert_string_equal(r->slots[0].image, "nginx:1.25");
        assert_string_equal(r->slots[0].where, "image");
        assert_string_equal(r->pod_namespace, "prod");
        assert_string_equal(r->pod_name, "web-0");
        assert_string_equal(r->pod_uid, "5c1d6c7e-uid");
        assert_null(r->container_name);
        assert_null(r->pod_sandbox_id);
        assert_non_null(r->auth);
        assert_string_equal(r->auth->username, "alice");
        assert_string_equal(r->auth->password, "s3cret");
        assert_string_equal(r->auth->auth, "YWxpY2U6czNjcmV0");
        assert_string_equal(r->auth->server_address, "registry.example");
        assert_string_equal(r->auth->identity_token, "id-token");
        assert_string_equal(r->auth->registry_token, "reg-token");
        assert_false(pinlet_intercept_request_changed(r));
        assert_unchanged(r);

        assert_int_equal(pinlet_intercept_request_set_image(r, 0, DIGEST_REF, NULL), 0);
        assert_true(pinlet_intercept_request_changed(r));
        assert_encodes_to(r, &in, &exp, pbw_pull_request);
        /* the request itself still shows the original value */
        assert_string_equal(r->slots[0].image, "nginx:1.25");
        pinlet_intercept_request_free(r);
        free(in.d);
        free(exp.d);
}

static void test_pull_output_decodes(void **state)
{
        struct pbw in = { 0 };
        struct pinlet_intercept_request *r, *r2 = NULL;
        uint8_t *out = NULL, *out2 = NULL;
        size_t len = 0, len2 = 0;

        build_pull(&in, "nginx:1.25");
        r = decode_ok(PINLET_INTERCEPT_PULL_IMAGE, &in);
        assert_int_equal(pinlet_intercept_request_set_image(r, 0, DIGEST_REF, NULL), 0);
        assert_int_equal(pinlet_intercept_request_encode(r, &out, &len, NULL), 1);
        /* encoding again gives the same bytes: the request is not consumed */
        assert_int_equal(pinlet_intercept_request_encode(r, &out2, &len2, NULL), 1);
        assert_int_equal(len, len2);
        assert_memory_equal(out, out2, len);

        assert_int_equal(pinlet_intercept_request_decode(PINLET_INTERCEPT_PULL_IMAGE, out, len,
                                                         MAX_LEN, &r2, NULL),
                         0);
        assert_string_equal(r2->slots[0].image, DIGEST_REF);
        assert_string_equal(r2->auth->password, "s3cret");
        assert_string_equal(r2->pod_uid, "5c1d6c7e-uid");
        pinlet_intercept_request_free(r2);
        pinlet_intercept_request_free(r);
        free(out);
        free(out2);
        free(in.d);
}

static void test_status_full(void **state)
{
        struct pbw in = { 0 }, exp = { 0 };
        struct pinlet_intercept_request *r;

        build_status(&in, "registry.example:5000/team/app:v1");
        build_status(&exp, "registry.example:5000/team/app@sha256:"
                           "abababababababababababababababababababababababababababababababab");
        r = decode_ok(PINLET_INTERCEPT_IMAGE_STATUS, &in);
        assert_int_equal(r->n_slots, 1);
        assert_string_equal(r->slots[0].image, "registry.example:5000/team/app:v1");
        assert_null(r->auth);
        assert_null(r->pod_namespace);
        assert_unchanged(r);
        assert_int_equal(pinlet_intercept_request_set_image(
                                 r, 0,
                                 "registry.example:5000/team/app@sha256:"
                                 "abababababababababababababababababababababababababababababababab",
                                 NULL),
                         0);
        assert_encodes_to(r, &in, &exp, pbw_status_request);
        pinlet_intercept_request_free(r);
        free(in.d);
        free(exp.d);
}

static void test_create_full(void **state)
{
        struct pbw in = { 0 }, exp_cfg = { 0 }, exp_mount = { 0 }, exp_both = { 0 };
        struct pinlet_intercept_request *r;

        build_create(&in, "app:v1", "models:v3");
        build_create(&exp_cfg, DIGEST_REF, "models:v3");
        build_create(&exp_mount, "app:v1", DIGEST_REF);
        build_create(&exp_both, DIGEST_REF, DIGEST_REF);
        r = decode_ok(PINLET_INTERCEPT_CREATE_CONTAINER, &in);
        assert_int_equal(r->n_slots, 2); /* config.image and the one image mount */
        assert_string_equal(r->slots[0].image, "app:v1");
        assert_string_equal(r->slots[0].where, "config.image");
        assert_string_equal(r->slots[1].image, "models:v3");
        assert_string_equal(r->slots[1].where, "config.mounts[1].image");
        assert_string_equal(r->container_name, "app");
        assert_string_equal(r->pod_sandbox_id, "4f2a9e0c5b1d");
        assert_string_equal(r->pod_namespace, "prod");
        assert_string_equal(r->pod_name, "web-0");
        assert_string_equal(r->pod_uid, "5c1d6c7e-uid");
        assert_null(r->auth);
        assert_unchanged(r);

        assert_int_equal(pinlet_intercept_request_set_image(r, 0, DIGEST_REF, NULL), 0);
        assert_encodes_to(r, &in, &exp_cfg, pbw_create_request);
        /* back to the original value: nothing changed any more */
        assert_int_equal(pinlet_intercept_request_set_image(r, 0, "app:v1", NULL), 0);
        assert_unchanged(r);
        assert_int_equal(pinlet_intercept_request_set_image(r, 1, DIGEST_REF, NULL), 0);
        assert_encodes_to(r, &in, &exp_mount, pbw_create_request);
        assert_int_equal(pinlet_intercept_request_set_image(r, 0, DIGEST_REF, NULL), 0);
        assert_encodes_to(r, &in, &exp_both, pbw_create_request);
        pinlet_intercept_request_free(r);
        free(in.d);
        free(exp_cfg.d);
        free(exp_mount.d);
        free(exp_both.d);
}

/* kubelet's CreateContainer: config.image.image is the image ID; user_specified_image is
 * the tag and must never be what gets rewritten. */
static void test_create_user_specified_untouched(void **state)
{
        const char *id = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        struct pbw in = { 0 }, exp = { 0 };
        struct pinlet_intercept_request *r;
        Pinlet__Cri__CreateContainerRequest *m;
        uint8_t *out = NULL;
        size_t len = 0;

        build_create(&in, id, "models:v3");
        build_create(&exp, id, DIGEST_REF);
        r = decode_ok(PINLET_INTERCEPT_CREATE_CONTAINER, &in);
        assert_string_equal(r->slots[0].image, id);
        assert_int_equal(pinlet_intercept_request_set_image(r, 1, DIGEST_REF, NULL), 0);
        assert_int_equal(pinlet_intercept_request_encode(r, &out, &len, NULL), 1);
        m = pinlet__cri__create_container_request__unpack(NULL, len, out);
        assert_non_null(m);
        assert_bin_equal(m->config->image->image, id);
        assert_bin_equal(m->config->image->user_specified_image, "registry.example/team/app:v1");
        assert_bin_equal(m->config->mounts[1]->image->image, DIGEST_REF);
        assert_bin_equal(m->config->mounts[1]->image->user_specified_image, "models:v3");
        assert_null(m->config->mounts[0]->image);
        assert_null(m->config->mounts[2]->image);
        pinlet__cri__create_container_request__free_unpacked(m, NULL);
        assert_encodes_to(r, &in, &exp, pbw_create_request);
        pinlet_intercept_request_free(r);
        free(out);
        free(in.d);
        free(exp.d);
}

static void test_mounts_without_image(void **state)
{
        struct pbw b = { 0 }, cc = { 0 }, m = { 0 }, is = { 0 };
        struct pinlet_intercept_request *r;

        /* no config.image at all; mounts 0 and 2 are host paths, mount 1 an image */
        pbw_str(&m, 1, "/a");
        pbw_msg(&cc, 7, &m);
        pbw_str(&is, 1, "busybox");
        pbw_str(&m, 1, "/b");
        pbw_msg(&m, 9, &is);
        pbw_msg(&cc, 7, &m);
        pbw_str(&m, 2, "/host");
        pbw_msg(&cc, 7, &m);
        pbw_msg(&b, 2, &cc);
        r = decode_ok(PINLET_INTERCEPT_CREATE_CONTAINER, &b);
        assert_int_equal(r->n_slots, 1);
        assert_string_equal(r->slots[0].image, "busybox");
        assert_string_equal(r->slots[0].where, "config.mounts[1].image");
        assert_null(r->container_name);
        assert_null(r->pod_namespace);
        assert_string_equal(r->pod_sandbox_id, "");
        pinlet_intercept_request_free(r);
        free(b.d);
}

static void test_empty_messages(void **state)
{
        for (int k = 0; k < _PINLET_INTERCEPT_KIND_MAX; k++) {
                struct pinlet_intercept_request *r = NULL;

                assert_int_equal(pinlet_intercept_request_decode(k, NULL, 0, MAX_LEN, &r, NULL), 0);
                assert_int_equal(r->n_slots, 0);
                assert_null(r->auth);
                assert_null(r->pod_namespace);
                assert_null(r->pod_name);
                assert_null(r->pod_uid);
                assert_null(r->container_name);
                assert_unchanged(r);
                assert_int_equal(pinlet_intercept_request_set_image(r, 0, "x", NULL),
                                 PINLET_EINVAL);
                pinlet_intercept_request_free(r);
        }
}

/* Present but empty submessages: the ImageSpec is a slot holding "". */
static void test_empty_submessages(void **state)
{
        static const uint8_t pull[] = { 0x0a, 0x00, 0x12, 0x00, 0x1a, 0x02, 0x0a, 0x00 };
        static const uint8_t create[] = { 0x12, 0x06, 0x0a, 0x00, 0x12, 0x00, 0x3a, 0x00 };
        struct pinlet_intercept_request *r = NULL;
        Pinlet__Cri__PullImageRequest *m;
        uint8_t *out = NULL;
        size_t len = 0;

        assert_int_equal(pinlet_intercept_request_decode(PINLET_INTERCEPT_PULL_IMAGE, pull,
                                                         sizeof(pull), MAX_LEN, &r, NULL),
                         0);
        assert_int_equal(r->n_slots, 1);
        assert_string_equal(r->slots[0].image, "");
        assert_non_null(r->auth);
        assert_string_equal(r->auth->username, "");
        assert_string_equal(r->pod_namespace, "");
        assert_int_equal(pinlet_intercept_request_set_image(r, 0, "busybox", NULL), 0);
        assert_int_equal(pinlet_intercept_request_encode(r, &out, &len, NULL), 1);
        m = pinlet__cri__pull_image_request__unpack(NULL, len, out);
        assert_non_null(m);
        assert_bin_equal(m->image->image, "busybox");
        assert_non_null(m->auth); /* presence of the empty messages survives */
        assert_non_null(m->sandbox_config);
        assert_non_null(m->sandbox_config->metadata);
        pinlet__cri__pull_image_request__free_unpacked(m, NULL);
        free(out);
        pinlet_intercept_request_free(r);

        /* config{metadata{}, image{}, mounts{}}: a mount without ImageSpec is no slot */
        assert_int_equal(pinlet_intercept_request_decode(PINLET_INTERCEPT_CREATE_CONTAINER, create,
                                                         sizeof(create), MAX_LEN, &r, NULL),
                         0);
        assert_int_equal(r->n_slots, 1);
        assert_string_equal(r->slots[0].where, "config.image");
        assert_string_equal(r->container_name, "");
        pinlet_intercept_request_free(r);
}

/* Unknown fields of every wire type, at every level protobuf-c re-encodes. */
static void test_unknown_fields_preserved(void **state)
{
        struct pbw in = { 0 }, exp = { 0 };
        struct pinlet_intercept_request *r;
        Pinlet__Cri__CreateContainerRequest *m;
        uint8_t *out = NULL;
        size_t len = 0;

        for (int pass = 0; pass < 2; pass++) {
                struct pbw *b = pass ? &exp : &in;
                struct pbw cc = { 0 }, is = { 0 }, mnt = { 0 };

                pbw_uint(&is, 3, 0); /* unknown varint holding 0 */
                pbw_str(&is, 1, pass ? "b@sha256:x" : "b:1");
                pbw_fixed64(&is, 4, UINT64_MAX);
                pbw_bytes(&is, 5, "", 0);       /* unknown empty bytes */
                pbw_fixed32(&is, 536870911, 1); /* the largest field number */
                pbw_uint(&mnt, 8, UINT64_MAX);  /* 10-byte varint */
                pbw_msg(&mnt, 9, &is);
                pbw_msg(&cc, 7, &mnt);
                pbw_str(&cc, 16, "windows");
                pbw_msg(b, 2, &cc);
                pbw_uint(b, 5, 1);
                pbw_uint(b, 5, 2); /* a repeated unknown keeps its order */
                pbw_uint(b, 5, 3);
        }
        r = decode_ok(PINLET_INTERCEPT_CREATE_CONTAINER, &in);
        assert_int_equal(r->n_slots, 1);
        assert_int_equal(pinlet_intercept_request_set_image(r, 0, "b@sha256:x", NULL), 0);
        assert_encodes_to(r, &in, &exp, pbw_create_request);
        assert_int_equal(pinlet_intercept_request_encode(r, &out, &len, NULL), 1);
        m = pinlet__cri__create_container_request__unpack(NULL, len, out);
        assert_non_null(m);
        assert_int_equal(m->base.n_unknown_fields, 3);
        assert_int_equal(m->config->base.n_unknown_fields, 1);
        assert_int_equal(m->config->mounts[0]->base.n_unknown_fields, 1);
        assert_int_equal(m->config->mounts[0]->image->base.n_unknown_fields, 4);
        pinlet__cri__create_container_request__free_unpacked(m, NULL);
        free(out);
        pinlet_intercept_request_free(r);
        free(in.d);
        free(exp.d);
}

static void test_malformed(void **state)
{
        static const struct {
                const char *name;
                uint8_t b[8];
                size_t n;
        } cases[] = {
                { "truncated varint tag", { 0x80 }, 1 },
                { "length past the end", { 0x0a, 0x05, 'a' }, 3 },
                { "nested length past the end", { 0x0a, 0x03, 0x0a, 0x09, 'a', 'b', 'c' }, 5 },
                { "string field as varint", { 0x0a, 0x02, 0x08, 0x01 }, 4 },
                { "message field as varint", { 0x08, 0x01 }, 2 },
                { "group wire type", { 0x0b, 0x0c }, 2 },
                { "wire type 7", { 0x0f }, 1 },
                { "field number 0", { 0x02, 0x00 }, 2 },
                /* protobuf-c alone accepts these two (and writes back what it rejects) */
                { "overlong field number 0", { 0x85, 0x00, 1, 2, 3, 4 }, 6 },
                { "nested overlong field number 0", { 0x0a, 0x03, 0x80, 0x00, 0x01 }, 5 },
                { "field number 2^29", { 0x80, 0x80, 0x80, 0x80, 0x10, 0x00 }, 6 },
                { "truncated fixed64", { 0x21, 1, 2, 3 }, 4 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                for (int k = 0; k < _PINLET_INTERCEPT_KIND_MAX; k++) {
                        struct pinlet_intercept_request *r = NULL;
                        struct pinlet_error *err = NULL;
                        char want[64];
                        int ret;

                        /* field 1 is a message in PullImage/ImageStatus, a string in
                         * CreateContainer: skip the cases that are valid there */
                        if (k == PINLET_INTERCEPT_CREATE_CONTAINER && cases[i].b[0] == 0x0a &&
                            i != 1)
                                continue;
                        ret = pinlet_intercept_request_decode(k, cases[i].b, cases[i].n, MAX_LEN,
                                                              &r, &err);
                        if (ret != PINLET_EINVAL)
                                fail_msg("%s (kind %d): decode returned %d", cases[i].name, k, ret);
                        assert_null(r);
                        assert_non_null(err);
                        snprintf(want, sizeof(want), "malformed %s",
                                 pinlet_intercept_kind_message(k));
                        assert_string_equal(err->message, want);
                        pinlet_error_free(err);
                }
        }
}

static void test_too_big(void **state)
{
        static const uint8_t b[1];
        struct pbw in = { 0 };
        struct pinlet_intercept_request *r = NULL;
        struct pinlet_error *err = NULL;

        /* the size is checked against the caller's limit before a byte is read */
        assert_int_equal(pinlet_intercept_request_decode(PINLET_INTERCEPT_PULL_IMAGE, b,
                                                         MAX_LEN + 1, MAX_LEN, &r, &err),
                         PINLET_E2BIG);
        assert_null(r);
        assert_non_null(strstr(err->message, "PullImageRequest"));
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_intercept_request_decode(_PINLET_INTERCEPT_KIND_MAX, b, 0, MAX_LEN,
                                                         &r, NULL),
                         PINLET_EINVAL);

        /* the limit is the caller's (the configured max_message_size), not a constant:
         * exactly the limit decodes, one byte less of limit refuses */
        build_pull(&in, "nginx:1.25");
        assert_int_equal(pinlet_intercept_request_decode(PINLET_INTERCEPT_PULL_IMAGE, in.d, in.len,
                                                         in.len, &r, NULL),
                         0);
        pinlet_intercept_request_free(r);
        r = NULL;
        assert_int_equal(pinlet_intercept_request_decode(PINLET_INTERCEPT_PULL_IMAGE, in.d, in.len,
                                                         in.len - 1, &r, &err),
                         PINLET_E2BIG);
        assert_null(r);
        assert_non_null(strstr(err->message, "exceeds"));
        pinlet_error_free(err);
        free(in.d);
}

/* ---- NUL bytes in text fields ---- */

/* Requests with a NUL byte in one text field; the field's path as the error names it. */
enum nul_case {
        NUL_PULL_IMAGE,
        NUL_PULL_PASSWORD,
        NUL_PULL_POD_NAME,
        NUL_PULL_POD_NAMESPACE,
        NUL_STATUS_IMAGE,
        NUL_STATUS_USER_SPECIFIED,
        NUL_CREATE_IMAGE,
        NUL_CREATE_MOUNT_IMAGE,
        NUL_CREATE_MOUNT_PATH,
        NUL_CREATE_CONTAINER_NAME,
        NUL_CREATE_SANDBOX_ID,
};

static const struct {
        enum nul_case c;
        enum pinlet_intercept_kind kind;
        const char *path;
} nul_cases[] = {
        { NUL_PULL_IMAGE, PINLET_INTERCEPT_PULL_IMAGE, "image.image" },
        { NUL_PULL_PASSWORD, PINLET_INTERCEPT_PULL_IMAGE, "auth.password" },
        { NUL_PULL_POD_NAME, PINLET_INTERCEPT_PULL_IMAGE, "sandbox_config.metadata.name" },
        { NUL_PULL_POD_NAMESPACE, PINLET_INTERCEPT_PULL_IMAGE,
          "sandbox_config.metadata.namespace" },
        { NUL_STATUS_IMAGE, PINLET_INTERCEPT_IMAGE_STATUS, "image.image" },
        { NUL_STATUS_USER_SPECIFIED, PINLET_INTERCEPT_IMAGE_STATUS, "image.user_specified_image" },
        { NUL_CREATE_IMAGE, PINLET_INTERCEPT_CREATE_CONTAINER, "config.image.image" },
        { NUL_CREATE_MOUNT_IMAGE, PINLET_INTERCEPT_CREATE_CONTAINER,
          "config.mounts[1].image.image" },
        { NUL_CREATE_MOUNT_PATH, PINLET_INTERCEPT_CREATE_CONTAINER,
          "config.mounts[0].container_path" },
        { NUL_CREATE_CONTAINER_NAME, PINLET_INTERCEPT_CREATE_CONTAINER, "config.metadata.name" },
        { NUL_CREATE_SANDBOX_ID, PINLET_INTERCEPT_CREATE_CONTAINER, "pod_sandbox_id" },
};

#define NUL_TEXT "nginx\0:evil"
#define NUL_PASS "s3cret\0tail"

static void text_or_nul(struct pbw *b, uint32_t field, const char *s, bool nul)
{
        if (nul)
                pbw_bytes(b, field, NUL_TEXT, sizeof(NUL_TEXT) - 1);
        else
                pbw_str(b, field, s);
}

/* The request of case c; with nul false the same request with that field NUL-free. */
static void build_nul(struct pbw *b, enum nul_case c, bool nul)
{
        struct pbw is = { 0 }, auth = { 0 }, sc = { 0 }, md = { 0 }, cc = { 0 }, cm = { 0 },
                   m0 = { 0 }, m1 = { 0 }, mis = { 0 };

        switch (c) {
        case NUL_PULL_IMAGE:
        case NUL_PULL_PASSWORD:
        case NUL_PULL_POD_NAME:
        case NUL_PULL_POD_NAMESPACE:
                text_or_nul(&is, 1, "nginx:1.25", nul && c == NUL_PULL_IMAGE);
                pbw_msg(b, 1, &is);
                pbw_str(&auth, 1, "alice");
                if (nul && c == NUL_PULL_PASSWORD)
                        pbw_bytes(&auth, 2, NUL_PASS, sizeof(NUL_PASS) - 1);
                else
                        pbw_str(&auth, 2, "s3cret");
                pbw_msg(b, 2, &auth);
                text_or_nul(&md, 1, "web-0", nul && c == NUL_PULL_POD_NAME);
                pbw_str(&md, 2, "uid-1");
                text_or_nul(&md, 3, "prod", nul && c == NUL_PULL_POD_NAMESPACE);
                pbw_msg(&sc, 1, &md);
                pbw_msg(b, 3, &sc);
                break;
        case NUL_STATUS_IMAGE:
        case NUL_STATUS_USER_SPECIFIED:
                text_or_nul(&is, 1, "nginx:1.25", nul && c == NUL_STATUS_IMAGE);
                text_or_nul(&is, 18, "nginx:1.25", nul && c == NUL_STATUS_USER_SPECIFIED);
                pbw_msg(b, 1, &is);
                break;
        default:
                text_or_nul(b, 1, "sandbox-1", nul && c == NUL_CREATE_SANDBOX_ID);
                text_or_nul(&cm, 1, "app", nul && c == NUL_CREATE_CONTAINER_NAME);
                pbw_msg(&cc, 1, &cm);
                text_or_nul(&is, 1, "app:v1", nul && c == NUL_CREATE_IMAGE);
                pbw_msg(&cc, 2, &is);
                text_or_nul(&m0, 1, "/data", nul && c == NUL_CREATE_MOUNT_PATH);
                pbw_msg(&cc, 7, &m0);
                pbw_str(&m1, 1, "/models");
                text_or_nul(&mis, 1, "models:v3", nul && c == NUL_CREATE_MOUNT_IMAGE);
                pbw_msg(&m1, 9, &mis);
                pbw_msg(&cc, 7, &m1);
                pbw_msg(b, 2, &cc);
                break;
        }
}

/* A NUL in any text field is refused with the field's path: its C string would be another
 * name than the runtime sees. The secret's value never appears in the message. */
static void test_nul_refused(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(nul_cases); i++) {
                struct pbw b = { 0 };
                struct pinlet_intercept_request *r = NULL;
                struct pinlet_error *err = NULL;
                char want[160];
                int ret;

                build_nul(&b, nul_cases[i].c, true);
                ret = pinlet_intercept_request_decode(nul_cases[i].kind, b.d, b.len, MAX_LEN, &r,
                                                      &err);
                if (ret != PINLET_INTERCEPT_ENUL)
                        fail_msg("case %zu (%s): decode returned %d", i, nul_cases[i].path, ret);
                assert_null(r);
                assert_non_null(err);
                snprintf(want, sizeof(want), "%s field %s contains a NUL byte",
                         pinlet_intercept_kind_message(nul_cases[i].kind), nul_cases[i].path);
                assert_string_equal(err->message, want);
                assert_null(strstr(err->message, "s3cret"));
                pinlet_error_free(err);
                free(b.d);
        }
}

/* The same requests without the NUL decode (the builder puts the NUL where the case says,
 * nothing else is wrong with them), and their strings are the wire values. */
static void test_nul_free_controls(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(nul_cases); i++) {
                struct pbw b = { 0 };
                struct pinlet_intercept_request *r;

                build_nul(&b, nul_cases[i].c, false);
                r = decode_ok(nul_cases[i].kind, &b);
                assert_true(r->n_slots >= 1);
                if (nul_cases[i].kind == PINLET_INTERCEPT_PULL_IMAGE) {
                        assert_string_equal(r->slots[0].image, "nginx:1.25");
                        assert_string_equal(r->auth->password, "s3cret");
                        assert_string_equal(r->pod_name, "web-0");
                        assert_string_equal(r->pod_namespace, "prod");
                } else if (nul_cases[i].kind == PINLET_INTERCEPT_CREATE_CONTAINER) {
                        assert_int_equal(r->n_slots, 2);
                        assert_string_equal(r->slots[1].image, "models:v3");
                        assert_string_equal(r->slots[1].where, "config.mounts[1].image");
                        assert_string_equal(r->container_name, "app");
                        assert_string_equal(r->pod_sandbox_id, "sandbox-1");
                }
                pinlet_intercept_request_free(r);
                free(b.d);
        }
}

/* A NUL in a field pinlet does not model (kept as an unknown field, never read) is none of
 * pinlet's business: the request decodes and re-encodes with it. */
static void test_nul_in_unknown_field(void **state)
{
        struct pbw in = { 0 }, is = { 0 };
        struct pinlet_intercept_request *r;
        uint8_t *out = NULL;
        size_t len = 0;

        pbw_str(&is, 1, "nginx:1.25");
        pbw_bytes(&is, 19, "ka\0ta", 5); /* runtime_handler */
        pbw_msg(&in, 1, &is);
        r = decode_ok(PINLET_INTERCEPT_IMAGE_STATUS, &in);
        assert_int_equal(pinlet_intercept_request_set_image(r, 0, DIGEST_REF, NULL), 0);
        assert_int_equal(pinlet_intercept_request_encode(r, &out, &len, NULL),
                         PINLET_INTERCEPT_REWRITTEN);
        assert_non_null(memmem(out, len, "ka\0ta", 5));
        free(out);
        pinlet_intercept_request_free(r);
        free(is.d);
        free(in.d);
}

static void test_set_image_errors(void **state)
{
        struct pbw in = { 0 };
        struct pinlet_intercept_request *r;
        struct pinlet_error *err = NULL;
        char *big;

        build_status(&in, "nginx");
        r = decode_ok(PINLET_INTERCEPT_IMAGE_STATUS, &in);
        assert_int_equal(pinlet_intercept_request_set_image(r, 1, "x", &err), PINLET_EINVAL);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_intercept_request_set_image(r, 0, "", &err), PINLET_EINVAL);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_intercept_request_set_image(r, 0, NULL, NULL), PINLET_EINVAL);
        big = malloc(PINLET_INTERCEPT_MAX_IMAGE + 2);
        memset(big, 'a', PINLET_INTERCEPT_MAX_IMAGE + 1);
        big[PINLET_INTERCEPT_MAX_IMAGE + 1] = 0;
        assert_int_equal(pinlet_intercept_request_set_image(r, 0, big, &err), PINLET_EINVAL);
        pinlet_error_free(err);
        big[PINLET_INTERCEPT_MAX_IMAGE] = 0; /* exactly the limit is fine */
        assert_int_equal(pinlet_intercept_request_set_image(r, 0, big, NULL), 0);
        free(big);
        assert_false(pinlet_intercept_request_changed(NULL));
        assert_true(pinlet_intercept_request_changed(r));
        pinlet_intercept_request_free(r);
        pinlet_intercept_request_free(NULL);
        free(in.d);
}

static void test_kind_names(void **state)
{
        assert_string_equal(pinlet_intercept_kind_message(PINLET_INTERCEPT_PULL_IMAGE),
                            "PullImageRequest");
        assert_string_equal(pinlet_intercept_kind_message(PINLET_INTERCEPT_IMAGE_STATUS),
                            "ImageStatusRequest");
        assert_string_equal(pinlet_intercept_kind_message(PINLET_INTERCEPT_CREATE_CONTAINER),
                            "CreateContainerRequest");
        assert_string_equal(pinlet_intercept_kind_method(PINLET_INTERCEPT_CREATE_CONTAINER),
                            "CreateContainer");
        assert_string_equal(pinlet_intercept_kind_method(_PINLET_INTERCEPT_KIND_MAX), "unknown");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pull_full),
                cmocka_unit_test(test_pull_output_decodes),
                cmocka_unit_test(test_status_full),
                cmocka_unit_test(test_create_full),
                cmocka_unit_test(test_create_user_specified_untouched),
                cmocka_unit_test(test_mounts_without_image),
                cmocka_unit_test(test_empty_messages),
                cmocka_unit_test(test_empty_submessages),
                cmocka_unit_test(test_unknown_fields_preserved),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_too_big),
                cmocka_unit_test(test_nul_refused),
                cmocka_unit_test(test_nul_free_controls),
                cmocka_unit_test(test_nul_in_unknown_field),
                cmocka_unit_test(test_set_image_errors),
                cmocka_unit_test(test_kind_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
