/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes sigstore_manifest_parse (plugin/sigstore) with arbitrary signature manifests and
 * checks its caps (abort() otherwise): on success at most SIGSTORE_LAYERS_MAX layers, each
 * with a valid digest, a size within SIGSTORE_PAYLOAD_MAX and a signature within
 * SIGSTORE_SIG_B64_MAX; on failure nothing is returned and the message says "signature
 * manifest" (or the allocation failed).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"
#include "sigstore.h"

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "fuzz_sigstore_manifest: %s:%d: %s\n", __FILE__, __LINE__, \
                                #cond);                                                            \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct sigstore_layers l = { 0 };
        struct pinlet_error *err = NULL;
        int r = sigstore_manifest_parse((const char *)data, size, &l, &err);

        if (r < 0) {
                CHECK(l.v == NULL && l.n == 0);
                CHECK(r == -ENOMEM || (err && strstr(err->message, "signature manifest")));
                pinlet_error_free(err);
                return 0;
        }
        CHECK(!err);
        CHECK(l.n <= SIGSTORE_LAYERS_MAX);
        for (size_t i = 0; i < l.n; i++) {
                CHECK(pinlet_ref_digest_valid(l.v[i].digest));
                CHECK(l.v[i].size <= SIGSTORE_PAYLOAD_MAX);
                CHECK(!l.v[i].signature || strlen(l.v[i].signature) <= SIGSTORE_SIG_B64_MAX);
        }
        sigstore_layers_done(&l);
        return 0;
}
