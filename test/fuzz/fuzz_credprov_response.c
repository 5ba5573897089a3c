/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A credential provider's stdout (CredentialProviderResponse): the first line is the
 * image the request named, the rest the response. Properties checked:
 *   - a failure always carries a message, and the message never quotes the response
 *     (responses hold passwords): no auth value of the input shows up in it;
 *   - a success has its auth entries in reverse lexicographic order (kubelet's), each
 *     with username and password strings, and the entry chosen for the image matches
 *     it and is the first that does;
 *   - the matcher agrees with itself for the image against each key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/credprov.h"

#define API "credentialprovider.kubelet.k8s.io/v1"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *p = (const char *)data;
        const char *nl = memchr(p, '\n', size);
        struct pinlet_credprov_response r = { 0 };
        struct pinlet_error *err = NULL;
        const struct pinlet_credprov_auth *best;
        char *image;
        int k;

        if (!nl)
                return 0;
        image = strndup(p, (size_t)(nl - p));
        if (!image)
                return 0;
        k = pinlet_credprov_response_parse(nl + 1, size - (size_t)(nl - p) - 1, API, &r, &err);
        if (k < 0) {
                const char *m;

                if (!err)
                        abort();
                m = pinlet_error_message(err, k);
                /* the marker the corpus uses for passwords must never reach a message */
                if (strstr(m, "FUZZSECRET"))
                        abort();
                pinlet_error_free(err);
                free(image);
                return 0;
        }
        if (err)
                abort();
        for (size_t i = 0; i < r.n_auth; i++) {
                if (!r.auth[i].match || !r.auth[i].username || !r.auth[i].password)
                        abort();
                if (i > 0 && strcmp(r.auth[i - 1].match, r.auth[i].match) <= 0)
                        abort();
        }
        best = pinlet_credprov_response_best(&r, image);
        for (size_t i = 0; i < r.n_auth; i++) {
                bool m = pinlet_credprov_match(r.auth[i].match, image);

                if (m != pinlet_credprov_match(r.auth[i].match, image))
                        abort();
                if (m) {
                        if (best != &r.auth[i])
                                abort(); /* the first match is the one chosen */
                        break;
                }
                if (best == &r.auth[i])
                        abort();
        }
        if (best && !pinlet_credprov_match(best->match, image))
                abort();
        pinlet_credprov_response_free(&r);
        free(image);
        return 0;
}
