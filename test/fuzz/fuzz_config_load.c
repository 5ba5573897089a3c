/* SPDX-License-Identifier: Apache-2.0 */
/* The YAML configuration loader: arbitrary bytes never crash it, an error always names
 * the file, and a loaded configuration keeps its promises: registry hosts are lower-case
 * and unique, and each is found by pinlet_config_registry in upper case as well. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct pinlet_error *err = NULL;
        struct pinlet_config cfg;
        int r;

        if (pinlet_config_init(&cfg) < 0)
                abort();
        r = pinlet_config_load_buffer(&cfg, "fuzz.yaml", (const char *)data, size, &err);
        if (r < 0 && (!err || strncmp(err->message, "fuzz.yaml", 9) != 0))
                abort();
        if (r >= 0) {
                for (size_t i = 0; i < cfg.n_registries; i++) {
                        const char *host = cfg.registries[i].host;
                        char upper[256];
                        size_t n = strlen(host);

                        for (size_t j = 0; j < n; j++)
                                if (host[j] >= 'A' && host[j] <= 'Z')
                                        abort();
                        for (size_t j = 0; j < i; j++)
                                if (strcmp(cfg.registries[j].host, host) == 0)
                                        abort();
                        if (n < sizeof(upper)) {
                                for (size_t j = 0; j <= n; j++)
                                        upper[j] = (char)toupper((unsigned char)host[j]);
                                if (pinlet_config_registry(&cfg, upper) != &cfg.registries[i])
                                        abort();
                        }
                }
                (void)pinlet_config_validate(&cfg, &err);
        }
        pinlet_error_free(err);
        pinlet_config_free(&cfg);
        return 0;
}
