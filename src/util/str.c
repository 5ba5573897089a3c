/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/str.h"

/* n bytes at s, then every string of ap up to NULL. */
static char *vjoin(const char *s, size_t n, va_list ap)
{
        size_t total = n;
        const char *p;
        char *out, *q;
        va_list aq;

        va_copy(aq, ap);
        while ((p = va_arg(aq, const char *))) {
                size_t k = strlen(p);

                if (k > SIZE_MAX - 1 - total) {
                        va_end(aq);
                        errno = ENOMEM;
                        return NULL;
                }
                total += k;
        }
        va_end(aq);
        out = malloc(total + 1);
        if (!out)
                return NULL;
        memcpy(out, s, n);
        q = out + n;
        while ((p = va_arg(ap, const char *))) {
                size_t k = strlen(p);

                memcpy(q, p, k);
                q += k;
        }
        *q = '\0';
        return out;
}

char *pinlet_strjoin_internal(const char *first, ...)
{
        va_list ap;
        char *s;

        va_start(ap, first);
        s = vjoin(first, strlen(first), ap);
        va_end(ap);
        return s;
}

int pinlet_strcmp_ptr(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}
