/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes sigstore_payload_check (plugin/sigstore) with arbitrary payload bytes against a
 * fixed image, and checks what pinlet-verify-sigstore relies on (abort() otherwise):
 *  - the result is one of the four values; OK is only answered when the payload's
 *    critical.image.docker-manifest-digest is byte-equal to the digest asked about (so a
 *    payload naming another digest never passes);
 *  - what the payload names is reported for a mismatch and only then;
 *  - the check is deterministic (a second call answers the same).
 * A signature check over the same bytes with no key must say "no".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sigstore.h"

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define REPO   "127.0.0.1:5000/tiny/app"

#define CHECK(cond)                                                                               \
        do {                                                                                      \
                if (!(cond)) {                                                                    \
                        fprintf(stderr, "fuzz_sigstore_payload: %s:%d: %s\n", __FILE__, __LINE__, \
                                #cond);                                                           \
                        abort();                                                                  \
                }                                                                                 \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *p = (const char *)data;
        char *found = NULL, *again = NULL;
        enum sigstore_payload_result r = sigstore_payload_check(p, size, DIGEST, REPO, &found);
        enum sigstore_payload_result r2 = sigstore_payload_check(p, size, DIGEST, REPO, &again);

        CHECK(r == r2);
        CHECK(r >= SIGSTORE_PAYLOAD_OK && r <= SIGSTORE_PAYLOAD_IDENTITY_MISMATCH);
        CHECK((found == NULL) == (r == SIGSTORE_PAYLOAD_OK || r == SIGSTORE_PAYLOAD_MALFORMED));
        CHECK(streq_ptr(found, again));
        if (r == SIGSTORE_PAYLOAD_OK) {
                json_t *j = json_loadb(p, size, 0, NULL);
                const char *d = json_string_value(
                        json_object_get(json_object_get(json_object_get(j, "critical"), "image"),
                                        "docker-manifest-digest"));

                CHECK(d && strcmp(d, DIGEST) == 0);
                json_decref(j);
        }
        if (r == SIGSTORE_PAYLOAD_DIGEST_MISMATCH)
                CHECK(strcmp(found, DIGEST) != 0);
        CHECK(sigstore_signature_verify(NULL, 0, p, size, "MEUCIQ==") == 0);
        free(found);
        free(again);
        return 0;
}
