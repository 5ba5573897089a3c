/* SPDX-License-Identifier: Apache-2.0 */
/* Docker config.json credentials: the first line is the registry domain, the rest the
 * file. Also feeds the first line to the base64 user:pass decoder and the host matcher. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/creds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *p = (const char *)data;
        const char *nl = memchr(p, '\n', size);
        struct pinlet_creds c = { 0 };
        struct pinlet_error *err = NULL;
        char *domain, *u = NULL, *pw = NULL;
        int r;

        if (!nl)
                return 0;
        domain = strndup(p, (size_t)(nl - p));
        if (!domain)
                return 0;
        r = pinlet_creds_from_docker_config(nl + 1, size - (size_t)(nl - p) - 1, domain, &c, &err);
        if (r > 0 && pinlet_creds_empty(&c))
                abort();
        if (r < 0 && !err)
                abort();
        pinlet_creds_clear(&c);
        pinlet_error_free(err);
        if (pinlet_creds_decode_auth(domain, &u, &pw) == 0) {
                free(u);
                free(pw);
        }
        (void)pinlet_creds_key_matches(domain, "docker.io");
        free(domain);
        return 0;
}
