/* SPDX-License-Identifier: Apache-2.0 */
/* The YAML configuration loader: arbitrary bytes never crash it, and an error always names
 * the file. */
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
        if (r >= 0)
                (void)pinlet_config_validate(&cfg, &err);
        pinlet_error_free(err);
        pinlet_config_free(&cfg);
        return 0;
}
