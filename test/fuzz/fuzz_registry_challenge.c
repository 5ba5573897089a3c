/* SPDX-License-Identifier: Apache-2.0 */
/* WWW-Authenticate parser: each '\n'-separated line of the input is one header value,
 * parsed into one list, as for a response with several WWW-Authenticate headers. Checks
 * the parser's promises: lowercased schemes and names, no NUL inside values' lengths. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/challenge.h"

static void check_lower(const char *s)
{
        if (!s || !*s)
                abort();
        for (; *s; s++)
                if (isupper((unsigned char)*s))
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct pinlet_auth_challenges list = { 0 };
        const char *p = (const char *)data, *end = p + size;

        while (p <= end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
                struct pinlet_error *err = NULL;
                size_t before = list.n;
                int r = pinlet_challenge_parse(p, n, &list, &err);

                if (r < 0 && (!err || list.n != before))
                        abort();
                if (r >= 0 && err)
                        abort();
                pinlet_error_free(err);
                if (!nl)
                        break;
                p = nl + 1;
        }
        for (size_t i = 0; i < list.n; i++) {
                const struct pinlet_auth_challenge *c = &list.v[i];

                check_lower(c->scheme);
                if (c->token68 && c->n_params)
                        abort();
                for (size_t k = 0; k < c->n_params; k++) {
                        check_lower(c->params[k].name);
                        if (!c->params[k].value)
                                abort();
                        if (pinlet_challenge_param(c, c->params[k].name) == NULL)
                                abort();
                }
                if (pinlet_challenge_find(&list, c->scheme) == NULL)
                        abort();
        }
        if (list.n > PINLET_CHALLENGE_MAX)
                abort();
        pinlet_challenges_clear(&list);
        return 0;
}
