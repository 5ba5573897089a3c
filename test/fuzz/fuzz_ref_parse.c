/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes pinlet_ref_parse with arbitrary bytes (as a NUL-terminated string) and checks
 * what the rest of pinlet relies on; abort() on any violation:
 *  - failure: -EINVAL or -ENOMEM with a message, nothing written to the output; image IDs
 *    always fail;
 *  - success: the fields obey the grammar's limits, the normalized form
 *    (pinlet_ref_string) parses back to identical fields and prints identically (stable),
 *    the familiar form parses back to the same reference, and the pinned form
 *    (pinlet_ref_with_digest) parses back to the same name and digest without a tag.
 * tag_defaulted is not compared: it is true only when the input itself named no tag.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "fuzz_ref_parse: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

static struct pinlet_ref *parse_ok(const char *s)
{
        struct pinlet_error *err = NULL;
        struct pinlet_ref *r = NULL;

        if (pinlet_ref_parse(s, &r, &err) < 0) {
                fprintf(stderr, "fuzz_ref_parse: '%s' does not parse back: %s\n", s,
                        pinlet_error_message(err, 0));
                abort();
        }
        CHECK(r && !err);
        return r;
}

static void same_ref(const struct pinlet_ref *a, const struct pinlet_ref *b)
{
        CHECK(streq_ptr(a->domain, b->domain));
        CHECK(streq_ptr(a->path, b->path));
        CHECK(streq_ptr(a->tag, b->tag));
        CHECK(streq_ptr(a->digest, b->digest));
}

static void check_fields(const struct pinlet_ref *r)
{
        size_t plen;

        CHECK(r->domain && r->domain[0]);
        CHECK(r->path && r->path[0]);
        plen = strlen(r->path);
        CHECK(r->path[0] != '/' && r->path[plen - 1] != '/');
        CHECK(strlen(r->domain) + 1 + plen <= PINLET_REF_NAME_MAX);
        CHECK(r->tag || r->digest);
        CHECK(!r->tag || (r->tag[0] && strlen(r->tag) <= PINLET_REF_TAG_MAX));
        CHECK(!r->digest || pinlet_ref_digest_valid(r->digest));
        CHECK(!r->tag_defaulted || (streq_ptr(r->tag, "latest") && !r->digest));
        CHECK(strcmp(r->domain, "index.docker.io") != 0);
        /* Docker Hub single-component names always get library/ */
        CHECK(strcmp(r->domain, "docker.io") != 0 || strchr(r->path, '/'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct pinlet_error *err = NULL;
        struct pinlet_ref *r = NULL, *r2, *r3, *r4;
        char *s, *str, *str2, *fam, *pinned;
        int ret;

        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';

        ret = pinlet_ref_parse(s, &r, &err);
        if (ret < 0) {
                CHECK(ret == -EINVAL || ret == -ENOMEM);
                CHECK(!r);
                CHECK(err && err->code == ret && err->message);
                pinlet_error_free(err);
                free(s);
                return 0;
        }
        CHECK(ret == 0 && r && !err);
        CHECK(!pinlet_ref_is_image_id(s));
        check_fields(r);

        /* normalized form: identical fields, and printing again gives the same text */
        str = pinlet_ref_string(r);
        CHECK(str);
        r2 = parse_ok(str);
        check_fields(r2);
        same_ref(r, r2);
        str2 = pinlet_ref_string(r2);
        CHECK(str2 && strcmp(str, str2) == 0);
        CHECK(!r2->tag_defaulted || r->tag_defaulted);

        /* familiar form: the same reference */
        fam = pinlet_ref_familiar(r);
        CHECK(fam);
        r3 = parse_ok(fam);
        same_ref(r, r3);

        /* pinned form */
        pinned = pinlet_ref_with_digest(r, NULL);
        if (r->digest) {
                CHECK(pinned);
                r4 = parse_ok(pinned);
                CHECK(streq_ptr(r4->domain, r->domain) && streq_ptr(r4->path, r->path));
                CHECK(streq_ptr(r4->digest, r->digest) && !r4->tag);
                pinlet_ref_free(r4);
        } else {
                CHECK(!pinned);
        }

        free(pinned);
        pinlet_ref_free(r3);
        free(fam);
        free(str2);
        pinlet_ref_free(r2);
        free(str);
        pinlet_ref_free(r);
        free(s);
        return 0;
}
