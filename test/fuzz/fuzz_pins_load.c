/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pin store's loader reads DIR/pins.jsonl at start: a file that a crash may have cut
 * short, a disk may have damaged, or a human may have edited. Feeds arbitrary bytes to it
 * (the same line splitter and parser the file goes through) and checks what it keeps.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pins/pins.h"

#define MAX_ENTRIES 16

static void check(int ok)
{
        if (!ok)
                abort();
}

static int check_pin(void *userdata, const struct pinlet_pin *pin)
{
        size_t *n = userdata;

        check(pin->reference && *pin->reference && strlen(pin->reference) <= PINLET_PINS_REF_MAX);
        check(pin->digest && strchr(pin->digest, ':') &&
              strlen(pin->digest) <= PINLET_PINS_DIGEST_MAX);
        check(pin->first_used >= 0 && pin->last_used >= 0);
        check(pin->n_pods <= PINLET_PINS_MAX_PODS);
        for (size_t i = 0; i < pin->n_pods; i++) {
                check(pin->pods[i] && *pin->pods[i] && strlen(pin->pods[i]) <= PINLET_PINS_POD_MAX);
                for (size_t j = 0; j < i; j++)
                        check(strcmp(pin->pods[i], pin->pods[j]) != 0);
        }
        (*n)++;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct pinlet_pins *p = NULL;
        const struct pinlet_pins_load_report *rep;
        char *prev = NULL, *digest = NULL;
        size_t n = 0;

        if (pinlet_pins_open(NULL, MAX_ENTRIES, &p, NULL) < 0)
                return 0;
        if (pinlet_pins_load_data(p, data, size) < 0) {
                pinlet_pins_close(p);
                return 0;
        }
        rep = pinlet_pins_load_report(p);
        check(rep->entries == pinlet_pins_size(p) && rep->entries <= MAX_ENTRIES);
        check(rep->skipped + rep->truncated <= rep->lines);
        check((rep->skipped == 0) == (rep->first_problem == NULL));
        check(pinlet_pins_list(p, check_pin, &n) == (int)rep->entries && n == rep->entries);

        /* The store stays usable after any input. */
        check(pinlet_pins_record(p, "fuzz.example/app:v1", "sha256:00", "ns/pod/uid", &prev,
                                 NULL) == 0);
        check(pinlet_pins_lookup(p, "fuzz.example/app:v1", &digest) == 0);
        check(strcmp(digest, "sha256:00") == 0);
        free(prev);
        free(digest);
        digest = NULL;
        check(pinlet_pins_forget(p, "fuzz.example/app:v1", NULL) == 1);
        check(pinlet_pins_lookup(p, "fuzz.example/app:v1", &digest) == -ENOENT);
        check(pinlet_pins_forget(p, "fuzz.example/app:v1", NULL) == 0);
        pinlet_pins_close(p);
        return 0;
}
