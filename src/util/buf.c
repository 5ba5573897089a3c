/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

void pinlet_buf_init(struct pinlet_buf *b, size_t max)
{
        *b = (struct pinlet_buf){ .max = max };
}

int pinlet_buf_append(struct pinlet_buf *b, const void *p, size_t n)
{
        size_t need;

        if (n > b->max || b->len > b->max - n)
                return -E2BIG;
        need = b->len + n + 1;
        if (need > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                char *d;

                while (cap < need)
                        cap *= 2;
                if (cap > b->max + 1)
                        cap = b->max + 1;
                d = realloc(b->data, cap);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->cap = cap;
        }
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int pinlet_buf_append_str(struct pinlet_buf *b, const char *s)
{
        return pinlet_buf_append(b, s, strlen(s));
}

void pinlet_buf_reset(struct pinlet_buf *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

char *pinlet_buf_steal(struct pinlet_buf *b, size_t *ret_len)
{
        char *d = b->data;

        if (!d)
                d = strdup("");
        if (ret_len)
                *ret_len = b->len;
        b->data = NULL;
        b->len = b->cap = 0;
        return d;
}

void pinlet_buf_free(struct pinlet_buf *b)
{
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}
