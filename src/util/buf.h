/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A growable byte buffer that carries its own limit (curl's dynbuf idea): everything that
 * comes from outside (a response body, a header block, a token, a config file) is read
 * into one of these and an input past the limit is an error, never an allocation.
 */
#pragma once

#include <stddef.h>

#include "util/macro.h"

struct pinlet_buf {
        char *data; /* owned; always NUL-terminated after a successful append */
        size_t len;
        size_t cap;
        size_t max; /* hard limit on len */
};

void pinlet_buf_init(struct pinlet_buf *b, size_t max);
/* Returns 0, -E2BIG past the limit (the buffer keeps what it had), or -ENOMEM. */
int pinlet_buf_append(struct pinlet_buf *b, const void *p, size_t n);
int pinlet_buf_append_str(struct pinlet_buf *b, const char *s);
void pinlet_buf_reset(struct pinlet_buf *b);
/* Hands out data (never NULL: an empty buffer yields "") and resets the buffer. */
char *pinlet_buf_steal(struct pinlet_buf *b, size_t *ret_len);
void pinlet_buf_free(struct pinlet_buf *b);
#define _cleanup_buf_ _cleanup_(pinlet_buf_free)
