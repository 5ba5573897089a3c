/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pure answer rewriting (intercept/answers.h): ImageStatus and ListImages answers are
 * built by hand (test_intercept_pbw.h) with every field pinlet's schema does not model,
 * rewritten against a set of pins, and compared field by field (canonical form) with the
 * same answer built with the expected repo_tags: only repo_tags may differ. RemoveImage
 * requests the same way, against a memory-only pin store.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "hosts/hosts.h"
#include "cri.pb-c.h"
#include "intercept/answers.h"
#include "intercept/rewrite.h"
#include "pins/pins.h"
#include "test_intercept_pbw.h"

#define MAX_LEN PINLET_DEFAULT_MAX_MESSAGE

#define HEX64(c)                                                                                  \
        c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
                c c c c c c c c c c c c c c c c c c c
#define D1  "sha256:" HEX64("1")
#define D2  "sha256:" HEX64("2")
#define D3  "sha256:" HEX64("3")
#define REG "127.0.0.1:5000"

/* ---- answer builders ---- */

/* An Image (runtime.v1) with the given names and every other field set: id=1,
 * repo_tags=2, repo_digests=3, size=4, uid=5 (Int64Value), username=6, spec=7 (ImageSpec
 * with annotations), pinned=8, and an unknown field 99. */
static void image(struct pbw *b, uint32_t field, const char *id, const char *const *tags,
                  const char *const *digests)
{
        struct pbw img = { 0 }, uid = { 0 }, spec = { 0 };

        pbw_str(&img, 1, id);
        for (; tags && *tags; tags++)
                pbw_str(&img, 2, *tags);
        for (; digests && *digests; digests++)
                pbw_str(&img, 3, *digests);
        pbw_uint(&img, 4, 1234567);
        pbw_uint(&uid, 1, 65534);
        pbw_msg(&img, 5, &uid);
        pbw_str(&img, 6, "nobody");
        pbw_str(&spec, 1, "ignored");
        pbw_map(&spec, 2, "k", "v");
        pbw_msg(&img, 7, &spec);
        pbw_uint(&img, 8, 1);
        pbw_str(&img, 99, "from-the-future");
        pbw_msg(b, field, &img);
}

/* ImageStatusResponse: image=1, info=2 (map). */
static struct pbw status_answer(const char *id, const char *const *tags, const char *const *digests)
{
        struct pbw b = { 0 };

        if (id)
                image(&b, 1, id, tags, digests);
        pbw_map(&b, 2, "info", "{\"chainID\":\"x\"}");
        return b;
}

static const struct pbw_schema pbw_image[] = { { 0, NULL } };
static const struct pbw_schema status_schema[] = { { 1, pbw_image }, { 0, NULL } };
static const struct pbw_schema list_schema[] = { { 1, pbw_image }, { 0, NULL } };

#define S(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE   ((const char *const[]){ NULL })

static struct pinlet_answers_index *index_of(const char *const *pins)
{
        struct pinlet_answers_index *idx = NULL;

        assert_int_equal(pinlet_answers_index_new(&idx), 0);
        for (; pins && pins[0]; pins += 2)
                assert_int_equal(pinlet_answers_index_add(idx, pins[0], pins[1]), 0);
        return idx;
}

/* Rewrites input; expected NULL: must be unchanged; else canonically equal to expected. */
static void check(enum pinlet_answers_kind kind, const struct pinlet_answers_index *idx,
                  struct pbw *input, struct pbw *expected)
{
        const struct pbw_schema *schema =
                kind == PINLET_ANSWERS_IMAGE_STATUS ? status_schema : list_schema;
        struct pinlet_error *err = NULL;
        uint8_t *out = NULL;
        size_t len = 0;
        int r;

        r = pinlet_answers_rewrite(kind, idx, input->d, input->len, MAX_LEN, &out, &len, &err);
        if (!expected) {
                assert_int_equal(r, PINLET_INTERCEPT_UNCHANGED);
                assert_null(out);
        } else {
                char *c_out, *c_exp;

                assert_int_equal(r, PINLET_INTERCEPT_REWRITTEN);
                c_out = pbw_canon(out, len, schema);
                c_exp = pbw_canon(expected->d, expected->len, schema);
                assert_non_null(c_out);
                assert_non_null(c_exp);
                assert_string_equal(c_out, c_exp);
                free(c_out);
                free(c_exp);
                free(expected->d);
        }
        assert_null(err);
        free(out);
        free(input->d);
}

/* ---- ImageStatus ---- */

static void test_status_pinned_tag_added(void **state)
{
        struct pinlet_answers_index *idx = index_of(S(REG "/tiny/app:v1", D1));
        struct pbw in = status_answer("sha256:aaaa", NONE, S(REG "/tiny/app@" D1));
        struct pbw want =
                status_answer("sha256:aaaa", S(REG "/tiny/app:v1"), S(REG "/tiny/app@" D1));

        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, &want);
        pinlet_answers_index_free(idx);
}

static void test_status_three_tags_sorted_no_duplicates(void **state)
{
        struct pinlet_answers_index *idx =
                index_of(S(REG "/tiny/app:v3", D1, REG "/tiny/app:v1", D1, REG "/tiny/app:v2", D1,
                           REG "/tiny/other:x", D2));
        /* the runtime already holds v2 (pulled by tag once): listed once; containerd's
         * order: byte order of the strings */
        struct pbw in = status_answer("sha256:aaaa", S(REG "/tiny/app:v2"), S(REG "/tiny/app@" D1));
        struct pbw want = status_answer(
                "sha256:aaaa", S(REG "/tiny/app:v1", REG "/tiny/app:v2", REG "/tiny/app:v3"),
                S(REG "/tiny/app@" D1));

        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, &want);
        pinlet_answers_index_free(idx);
}

/* Two spellings of one digest reference (the runtime's answer is not pinlet's to
 * trust): the tags pinned to it are listed once. */
static void test_status_digest_spellings(void **state)
{
        struct pinlet_answers_index *idx = index_of(S("docker.io/library/busybox:1", D3));
        struct pbw in = status_answer("sha256:cccc", NONE,
                                      S("docker.io/library/busybox@" D3, "busybox@" D3));
        struct pbw want = status_answer("sha256:cccc", S("docker.io/library/busybox:1"),
                                        S("docker.io/library/busybox@" D3, "busybox@" D3));

        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, &want);
        pinlet_answers_index_free(idx);
}

static void test_status_unchanged(void **state)
{
        struct pinlet_answers_index *idx = index_of(S(REG "/tiny/app:v1", D1));
        struct pbw in;

        /* no image */
        in = status_answer(NULL, NULL, NULL);
        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, NULL);
        /* an image no pin names */
        in = status_answer("sha256:bbbb", S(REG "/tiny/app:old"), S(REG "/tiny/app@" D2));
        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, NULL);
        /* already complete */
        in = status_answer("sha256:aaaa", S(REG "/tiny/app:v1"), S(REG "/tiny/app@" D1));
        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, NULL);
        /* same digest, other repository: not this pin's image name */
        in = status_answer("sha256:aaaa", NONE, S(REG "/tiny/copy@" D1));
        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, NULL);
        /* an empty answer (no field at all) */
        in = (struct pbw){ 0 };
        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, NULL);
        pinlet_answers_index_free(idx);
}

static void test_status_moved_tag_removed(void **state)
{
        /* v1 now pinned to D2: a runtime-reported v1 on the D1 image goes, unpinned tags
         * stay */
        struct pinlet_answers_index *idx = index_of(S(REG "/tiny/app:v1", D2));
        struct pbw in = status_answer("sha256:aaaa", S(REG "/tiny/app:keep", REG "/tiny/app:v1"),
                                      S(REG "/tiny/app@" D1));
        struct pbw want =
                status_answer("sha256:aaaa", S(REG "/tiny/app:keep"), S(REG "/tiny/app@" D1));

        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, &want);
        pinlet_answers_index_free(idx);
}

static void test_status_host_case_and_docker_hub(void **state)
{
        struct pinlet_answers_index *idx =
                index_of(S("reg.example:5000/app:v1", D1, "docker.io/library/nginx:1.25", D2));
        struct pbw in, want;

        /* the runtime's name with the host as written: matched through pinlet_ref_key() */
        in = status_answer("sha256:aaaa", NONE, S("Reg.Example:5000/app@" D1));
        want = status_answer("sha256:aaaa", S("reg.example:5000/app:v1"),
                             S("Reg.Example:5000/app@" D1));
        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, &want);

        in = status_answer("sha256:cccc", NONE, S("docker.io/library/nginx@" D2));
        want = status_answer("sha256:cccc", S("docker.io/library/nginx:1.25"),
                             S("docker.io/library/nginx@" D2));
        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, &want);
        pinlet_answers_index_free(idx);
}

static void test_status_odd_names_kept(void **state)
{
        struct pinlet_answers_index *idx = index_of(S(REG "/tiny/app:v1", D1));
        static const char nul_tag[] = REG "/tiny/app:v\0"
                                          "1";
        struct pbw in = { 0 }, want = { 0 }, img = { 0 };

        /* a tag with a NUL byte and one that is no reference survive byte for byte */
        pbw_str(&img, 1, "sha256:aaaa");
        pbw_bytes(&img, 2, nul_tag, sizeof(nul_tag) - 1);
        pbw_str(&img, 2, "NOT A REFERENCE");
        pbw_str(&img, 3, REG "/tiny/app@" D1);
        pbw_msg(&in, 1, &img);
        /* containerd's order: references first, then names that do not parse */
        pbw_str(&img, 1, "sha256:aaaa");
        pbw_str(&img, 2, REG "/tiny/app:v1");
        pbw_bytes(&img, 2, nul_tag, sizeof(nul_tag) - 1);
        pbw_str(&img, 2, "NOT A REFERENCE");
        pbw_str(&img, 3, REG "/tiny/app@" D1);
        pbw_msg(&want, 1, &img);
        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, &want);
        pinlet_answers_index_free(idx);
}

/* ---- ListImages ---- */

static void test_list_images(void **state)
{
        struct pinlet_answers_index *idx =
                index_of(S(REG "/tiny/app:v1", D2, REG "/tiny/app:v2", D1, REG "/tiny/app:v3", D1,
                           REG "/tiny/gone:v1", D3));
        struct pbw in = { 0 }, want = { 0 };

        /* A: D1, pulled by tag v1 before the tag moved -> loses v1, gains v2, v3.
         * B: D2, pinned -> gains v1. C: unrelated, untouched. An unknown top-level field. */
        image(&in, 1, "sha256:aaaa", S(REG "/tiny/app:v1"), S(REG "/tiny/app@" D1));
        image(&in, 1, "sha256:bbbb", NONE, S(REG "/tiny/app@" D2));
        image(&in, 1, "sha256:cccc", S("docker.io/library/busybox:1"),
              S("docker.io/library/busybox@" D3));
        pbw_str(&in, 7, "top-level-unknown");
        image(&want, 1, "sha256:aaaa", S(REG "/tiny/app:v2", REG "/tiny/app:v3"),
              S(REG "/tiny/app@" D1));
        image(&want, 1, "sha256:bbbb", S(REG "/tiny/app:v1"), S(REG "/tiny/app@" D2));
        image(&want, 1, "sha256:cccc", S("docker.io/library/busybox:1"),
              S("docker.io/library/busybox@" D3));
        pbw_str(&want, 7, "top-level-unknown");
        check(PINLET_ANSWERS_LIST_IMAGES, idx, &in, &want);

        in = (struct pbw){ 0 };
        check(PINLET_ANSWERS_LIST_IMAGES, idx, &in, NULL);
        pinlet_answers_index_free(idx);
}

static void test_errors(void **state)
{
        struct pinlet_answers_index *idx = index_of(S(REG "/tiny/app:v1", D1));
        static const uint8_t bad[] = { 0x0a, 0x05, 0x01 }; /* length past the end */
        struct pinlet_error *err = NULL;
        struct pbw in = status_answer("sha256:aaaa", NONE, S(REG "/tiny/app@" D1));
        uint8_t *out = NULL;
        size_t len = 0;

        assert_int_equal(pinlet_answers_rewrite(PINLET_ANSWERS_LIST_IMAGES, idx, bad, sizeof(bad),
                                                MAX_LEN, &out, &len, &err),
                         PINLET_EINVAL);
        assert_string_equal(pinlet_error_message(err, 0), "malformed ListImagesResponse");
        pinlet_error_free(err);
        err = NULL;
        /* over the limit as received */
        assert_int_equal(pinlet_answers_rewrite(PINLET_ANSWERS_IMAGE_STATUS, idx, in.d, in.len,
                                                in.len - 1, &out, &len, &err),
                         PINLET_E2BIG);
        pinlet_error_free(err);
        err = NULL;
        /* under the limit, but the added tag would cross it */
        assert_int_equal(pinlet_answers_rewrite(PINLET_ANSWERS_IMAGE_STATUS, idx, in.d, in.len,
                                                in.len + 4, &out, &len, &err),
                         PINLET_E2BIG);
        pinlet_error_free(err);
        assert_null(out);
        free(in.d);

        /* index keys must be tags without digest */
        assert_int_equal(pinlet_answers_index_add(idx, REG "/tiny/app@" D1, D1), -EINVAL);
        assert_int_equal(pinlet_answers_index_add(idx, REG "/tiny/app", D1), -EINVAL);
        assert_int_equal(pinlet_answers_index_add(idx, REG "/tiny/app:v1", ""), -EINVAL);
        /* a tag is listed once: a second pin of it is refused */
        assert_int_equal(pinlet_answers_index_add(idx, REG "/tiny/app:v9", D1), 0);
        assert_int_equal(pinlet_answers_index_add(idx, REG "/tiny/app:v9", D1), -EEXIST);
        assert_int_equal(pinlet_answers_index_add(idx, REG "/tiny/app:v9", D2), -EEXIST);
        pinlet_answers_index_free(idx);
}

static void test_index_load(void **state)
{
        struct pinlet_pins *pins = NULL;
        struct pinlet_answers_index *idx = NULL;
        struct pinlet_error *err = NULL;
        struct pbw in = status_answer("sha256:aaaa", NONE, S(REG "/tiny/app@" D1));
        struct pbw want = status_answer("sha256:aaaa", S(REG "/tiny/app:a", REG "/tiny/app:b"),
                                        S(REG "/tiny/app@" D1));

        assert_int_equal(pinlet_pins_open(NULL, 0, &pins, &err), 0);
        assert_int_equal(pinlet_pins_record(pins, REG "/tiny/app:b", D1, NULL, NULL, &err), 0);
        assert_int_equal(pinlet_pins_record(pins, REG "/tiny/app:a", D1, "ns/p/u", NULL, &err), 0);
        assert_int_equal(pinlet_pins_record(pins, REG "/tiny/app:c", D2, NULL, NULL, &err), 0);
        assert_int_equal(pinlet_answers_index_new(&idx), 0);
        assert_int_equal(pinlet_answers_index_load(idx, pins), 3);
        check(PINLET_ANSWERS_IMAGE_STATUS, idx, &in, &want);
        pinlet_answers_index_free(idx);
        pinlet_pins_close(pins);
}

/* The shared index: reused while the pins keep their content, rebuilt when they change,
 * never shared between two stores. */
static void test_index_get(void **state)
{
        struct pinlet_pins *pins = NULL, *other = NULL;
        struct pinlet_answers_index *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        struct pinlet_error *err = NULL;
#define IN  status_answer("sha256:aaaa", NONE, S(REG "/tiny/app@" D1))
#define ONE status_answer("sha256:aaaa", S(REG "/tiny/app:a"), S(REG "/tiny/app@" D1))
#define TWO                                                                   \
        status_answer("sha256:aaaa", S(REG "/tiny/app:a", REG "/tiny/app:b"), \
                      S(REG "/tiny/app@" D1))
        struct pbw in1 = IN, in2 = IN, in3 = IN, one1 = ONE, one2 = ONE, two = TWO;

        assert_int_equal(pinlet_pins_open(NULL, 0, &pins, &err), 0);
        assert_int_equal(pinlet_pins_open(NULL, 0, &other, &err), 0);
        assert_int_equal(pinlet_pins_record(pins, REG "/tiny/app:a", D1, NULL, NULL, &err), 0);
        assert_int_equal(pinlet_answers_index_get(pins, &a), 0);
        check(PINLET_ANSWERS_IMAGE_STATUS, a, &in1, &one1);
        /* a use changes no content: the same index */
        assert_int_equal(pinlet_pins_touch(pins, REG "/tiny/app:a", "ns/p/u", &err), 0);
        assert_int_equal(pinlet_answers_index_get(pins, &b), 0);
        assert_ptr_equal(a, b);
        /* a new pin: a new index, with it; the old one stays valid for its holder */
        assert_int_equal(pinlet_pins_record(pins, REG "/tiny/app:b", D1, NULL, NULL, &err), 0);
        assert_int_equal(pinlet_answers_index_get(pins, &c), 0);
        assert_ptr_not_equal(a, c);
        check(PINLET_ANSWERS_IMAGE_STATUS, c, &in2, &two);
        check(PINLET_ANSWERS_IMAGE_STATUS, a, &in3, &one2);
        /* another store: its own index */
        assert_int_equal(pinlet_answers_index_get(other, &d), 0);
        assert_ptr_not_equal(c, d);
        pinlet_answers_index_free(a);
        pinlet_answers_index_free(b);
        pinlet_answers_index_free(c);
        pinlet_answers_index_free(d);
        pinlet_pins_close(pins);
        pinlet_pins_close(other);
#undef IN
#undef ONE
#undef TWO
}

/* ---- RemoveImage ---- */

/* RemoveImageRequest: image=1 (ImageSpec: image=1, annotations=2, user_specified=18),
 * and an unknown field 5. */
static struct pbw remove_request(const void *img, size_t n)
{
        struct pbw b = { 0 }, spec = { 0 };

        pbw_bytes(&spec, 1, img, n);
        pbw_map(&spec, 2, "a", "b");
        pbw_str(&spec, 18, "app:v1");
        pbw_msg(&b, 1, &spec);
        pbw_str(&b, 5, "unknown");
        return b;
}
#define REMOVE(s) remove_request((s), strlen(s))

static void test_remove_key(void **state)
{
        static const char nul_image[] = REG "/tiny/app:v\0"
                                            "1";
        static const struct {
                const char *image;
                const char *key; /* NULL: no tag */
        } cases[] = {
                { REG "/tiny/app:v1", REG "/tiny/app:v1" },
                { "Reg.Example:5000/app:v1", "reg.example:5000/app:v1" },
                { "nginx", "docker.io/library/nginx:latest" },
                { "nginx:1.25", "docker.io/library/nginx:1.25" },
                { REG "/tiny/app@" D1, NULL },
                { REG "/tiny/app:v1@" D1, NULL },
                { D1, NULL },
                { HEX64("a"), NULL },
                { "", NULL },
                { "UPPER/Case", NULL },
        };
        struct pinlet_error *err = NULL;
        struct pbw in;
        char *key;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                in = REMOVE(cases[i].image);
                key = NULL;
                assert_int_equal(pinlet_answers_remove_key(in.d, in.len, MAX_LEN, NULL, &key, &err),
                                 cases[i].key ? 1 : 0);
                if (cases[i].key)
                        assert_string_equal(key, cases[i].key);
                else
                        assert_null(key);
                free(key);
                free(in.d);
        }
        in = remove_request(nul_image, sizeof(nul_image) - 1);
        key = NULL;
        assert_int_equal(pinlet_answers_remove_key(in.d, in.len, MAX_LEN, NULL, &key, &err), 0);
        free(in.d);
        /* no ImageSpec at all */
        assert_int_equal(pinlet_answers_remove_key(NULL, 0, MAX_LEN, NULL, &key, &err), 0);
        assert_null(err);
}

static void test_remove_rewrite(void **state)
{
        static const struct pbw_schema schema[] = { { 1, pbw_image_spec }, { 0, NULL } };
        struct pinlet_pins *pins = NULL;
        struct pinlet_error *err = NULL;
        struct pbw in, want;
        uint8_t *out = NULL;
        size_t len = 0;
        char *c_out, *c_want;

        assert_int_equal(pinlet_pins_open(NULL, 0, &pins, &err), 0);
        assert_int_equal(pinlet_pins_record(pins, REG "/tiny/app:v1", D1, NULL, NULL, &err), 0);

        in = REMOVE(REG "/tiny/app:v1");
        want = REMOVE(REG "/tiny/app@" D1);
        assert_int_equal(
                pinlet_answers_remove_rewrite(in.d, in.len, MAX_LEN, NULL, pins, &out, &len, &err),
                PINLET_INTERCEPT_REWRITTEN);
        c_out = pbw_canon(out, len, schema);
        c_want = pbw_canon(want.d, want.len, schema);
        assert_string_equal(c_out, c_want);
        free(c_out);
        free(c_want);
        free(out);
        out = NULL;
        free(in.d);
        free(want.d);

        /* unpinned tag, digest reference, image ID: unchanged */
        const char *const unchanged[] = { REG "/tiny/app:v2", REG "/tiny/app@" D1, D1 };
        for (size_t i = 0; i < ELEMENTSOF(unchanged); i++) {
                in = REMOVE(unchanged[i]);
                assert_int_equal(pinlet_answers_remove_rewrite(in.d, in.len, MAX_LEN, NULL, pins,
                                                               &out, &len, &err),
                                 PINLET_INTERCEPT_UNCHANGED);
                assert_null(out);
                free(in.d);
        }
        /* malformed */
        static const uint8_t bad[] = { 0x0a, 0x09, 0x0a };
        assert_int_equal(pinlet_answers_remove_rewrite(bad, sizeof(bad), MAX_LEN, NULL, pins, &out,
                                                       &len, &err),
                         PINLET_EINVAL);
        pinlet_error_free(err);
        pinlet_pins_close(pins);
}

/* In front of CRI-O: RemoveImage by a short name is keyed and rewritten by its qualified
 * name; a short name the runtime would not qualify names no pin. */
static void test_remove_short_names(void **state)
{
        static const struct pbw_schema schema[] = { { 1, pbw_image_spec }, { 0, NULL } };
        static const char conf[] = "unqualified-search-registries = [\"quay.io\", \"docker.io\"]\n"
                                   "[aliases]\n\"app\" = \"" REG "/tiny/app\"\n";
        char dir[] = "/tmp/pinlet-answers-test-XXXXXX", path[64];
        struct pinlet_hosts *h = NULL;
        struct pinlet_pins *pins = NULL;
        struct pinlet_error *err = NULL;
        struct pbw in, want;
        uint8_t *out = NULL;
        size_t len = 0;
        char *key = NULL, *c_out, *c_want;
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/registries.conf", dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(conf, f);
        fclose(f);
        assert_int_equal(
                pinlet_hosts_new(&(const struct pinlet_hosts_options){ .registries_conf = path },
                                 &h, NULL),
                0);
        assert_int_equal(pinlet_pins_open(NULL, 0, &pins, &err), 0);
        assert_int_equal(pinlet_pins_record(pins, REG "/tiny/app:v1", D1, NULL, NULL, &err), 0);

        in = REMOVE("app:v1");
        assert_int_equal(pinlet_answers_remove_key(in.d, in.len, MAX_LEN, h, &key, &err), 1);
        assert_string_equal(key, REG "/tiny/app:v1");
        free(key);
        want = REMOVE(REG "/tiny/app@" D1);
        assert_int_equal(
                pinlet_answers_remove_rewrite(in.d, in.len, MAX_LEN, h, pins, &out, &len, &err),
                PINLET_INTERCEPT_REWRITTEN);
        c_out = pbw_canon(out, len, schema);
        c_want = pbw_canon(want.d, want.len, schema);
        assert_string_equal(c_out, c_want);
        free(c_out);
        free(c_want);
        free(out);
        free(in.d);
        free(want.d);
        /* containerd (no short_names): docker.io, no pin */
        in = REMOVE("app:v1");
        key = NULL;
        assert_int_equal(pinlet_answers_remove_key(in.d, in.len, MAX_LEN, NULL, &key, &err), 1);
        assert_string_equal(key, "docker.io/library/app:v1");
        free(key);
        free(in.d);
        /* ambiguous */
        in = REMOVE("nginx:1.25");
        key = NULL;
        assert_int_equal(pinlet_answers_remove_key(in.d, in.len, MAX_LEN, h, &key, &err), 0);
        assert_null(key);
        free(in.d);
        assert_null(err);

        pinlet_pins_close(pins);
        pinlet_hosts_free(h);
        unlink(path);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_remove_short_names),
                cmocka_unit_test(test_status_pinned_tag_added),
                cmocka_unit_test(test_status_three_tags_sorted_no_duplicates),
                cmocka_unit_test(test_status_digest_spellings),
                cmocka_unit_test(test_status_unchanged),
                cmocka_unit_test(test_status_moved_tag_removed),
                cmocka_unit_test(test_status_host_case_and_docker_hub),
                cmocka_unit_test(test_status_odd_names_kept),
                cmocka_unit_test(test_list_images),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_index_load),
                cmocka_unit_test(test_index_get),
                cmocka_unit_test(test_remove_key),
                cmocka_unit_test(test_remove_rewrite),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
