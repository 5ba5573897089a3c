/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Lock files come from a pipeline and a ConfigMap: feeds arbitrary bytes to the lock
 * parser and checks properties of what it accepts:
 *  - every entry is a normalized tag reference (parses back to itself, no digest, a tag)
 *    with a valid digest, found by lookup with the same digest;
 *  - the writer's output for those entries loads back to the same set (round trip);
 *  - a refusal returns no set and names the file with a line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lock/lock.h"
#include "ref/ref.h"

#define NAME        "fuzz.yaml"
#define MAX_ENTRIES 256

static void check(int ok)
{
        if (!ok)
                abort();
}

struct collected {
        struct pinlet_lock_entry v[MAX_ENTRIES];
        size_t n;
        const struct pinlet_lock_set *set;
};

static int collect(void *userdata, const char *ref, const char *digest, const char *file,
                   unsigned long line)
{
        struct collected *c = userdata;
        struct pinlet_ref *r = NULL;
        const char *d = NULL, *f = NULL;
        char *s;

        check(c->n < MAX_ENTRIES);
        check(strcmp(file, NAME) == 0 && line >= 1);
        check(pinlet_ref_parse(ref, &r, NULL) == 0);
        check(!r->digest && r->tag && !r->tag_defaulted);
        s = pinlet_ref_string(r);
        check(s && strcmp(s, ref) == 0);
        free(s);
        pinlet_ref_free(r);
        check(pinlet_ref_digest_valid(digest));
        check(pinlet_lock_set_lookup(c->set, ref, &d, &f) == 0);
        check(strcmp(d, digest) == 0 && strcmp(f, NAME) == 0);
        c->v[c->n++] = (struct pinlet_lock_entry){ .ref = ref, .digest = digest };
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct pinlet_lock_options opts = { .max_entries = MAX_ENTRIES };
        struct pinlet_lock_set *s = NULL, *again = NULL;
        struct pinlet_error *err = NULL;
        struct collected c = { .n = 0 };
        char *text = NULL;
        size_t len;
        int r;

        r = pinlet_lock_set_load_data(NAME, data, size, &opts, &s, &err);
        if (r < 0) {
                const char *msg = pinlet_error_message(err, r);

                check(s == NULL);
                check(r == -ENOMEM || strncmp(msg, NAME ":", strlen(NAME ":")) == 0);
                pinlet_error_free(err);
                return 0;
        }
        check(pinlet_lock_set_size(s) <= MAX_ENTRIES);
        c.set = s;
        check(pinlet_lock_set_foreach(s, collect, &c) == 0);
        check(c.n == pinlet_lock_set_size(s));

        check(pinlet_lock_format(c.v, c.n, &text, &len, NULL) == 0);
        check(pinlet_lock_set_load_data(NAME, text, len, &opts, &again, NULL) == 0);
        check(pinlet_lock_set_size(again) == c.n);
        for (size_t i = 0; i < c.n; i++) {
                const char *d = NULL;

                check(pinlet_lock_set_lookup(again, c.v[i].ref, &d, NULL) == 0);
                check(strcmp(d, c.v[i].digest) == 0);
        }
        free(text);
        pinlet_lock_set_unref(again);
        pinlet_lock_set_unref(s);
        return 0;
}
