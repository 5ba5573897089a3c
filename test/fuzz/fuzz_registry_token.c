/* SPDX-License-Identifier: Apache-2.0 */
/* Token server responses: a parsed token is non-empty, printable, has a positive
 * lifetime; any other input is an error with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct pinlet_error *err = NULL;
        struct pinlet_token t = { 0 };
        int r;

        r = pinlet_token_parse((const char *)data, size, &t, &err);
        if (r >= 0) {
                if (err || !t.token || !*t.token || t.expires_in <= 0)
                        abort();
                for (const char *p = t.token; *p; p++)
                        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                                abort();
                pinlet_token_clear(&t);
        } else if (!err) {
                abort();
        }
        pinlet_error_free(err);
        return 0;
}
