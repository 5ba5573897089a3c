/* SPDX-License-Identifier: Apache-2.0 */
/* Token server responses: a parsed token is non-empty, printable, has a positive
 * lifetime; and RFC 3339 timestamps (the input as a string) never crash the parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct pinlet_error *err = NULL;
        struct pinlet_token t = { 0 };
        char *s;
        int64_t ts;
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

        s = strndup((const char *)data, size);
        if (s) {
                (void)pinlet_parse_rfc3339(s, &ts);
                free(s);
        }
        return 0;
}
