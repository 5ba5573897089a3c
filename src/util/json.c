/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include "util/json.h"

char *pinlet_json_line(const json_t *o)
{
        char *s, *line;
        size_t n;

        if (!o)
                return NULL;
        /* jansson allocates with malloc unless json_set_alloc_funcs says otherwise, which
         * pinlet never does: the result can be realloc'ed and free'd as ours. */
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s)
                return NULL;
        n = strlen(s);
        line = realloc(s, n + 2);
        if (!line) {
                free(s);
                return NULL;
        }
        line[n] = '\n';
        line[n + 1] = '\0';
        return line;
}
