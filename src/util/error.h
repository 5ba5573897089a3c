/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Errors travel up as a negative errno-style return code plus an optional error object
 * carrying a human-readable message (crun's model). Each layer may wrap the message with
 * its own context: "resolve docker.io/library/nginx:1.25: registry-1.docker.io: timeout".
 *
 * The classes below are what callers branch on; they map onto errno values so that plain
 * `ret < 0` checks keep working.
 */
#pragma once

#include <errno.h>

#include "util/macro.h"

#define PINLET_ENOTFOUND (-ENOENT)       /* tag, repository or manifest unknown */
#define PINLET_EUNAUTH   (-EACCES)       /* registry refused our credentials */
#define PINLET_EUNAVAIL  (-EHOSTUNREACH) /* network, 5xx, connection refused */
#define PINLET_ETIMEOUT  (-ETIMEDOUT)    /* ran out of time (also "unavailable") */
#define PINLET_EPROTO    (-EPROTO)       /* peer broke the protocol: bad digest, bad JSON */
#define PINLET_ETLS      (-EKEYREJECTED) /* certificate verification or handshake failed */
#define PINLET_EINVAL    (-EINVAL)       /* bad input from our caller */
#define PINLET_E2BIG     (-E2BIG)        /* a bounded input exceeded its limit */

struct pinlet_error {
        int code;      /* negative errno-style class, one of the above or any -errno */
        char *message; /* owned, never NULL once set */
};

/*
 * Sets *err (if err is not NULL and *err is NULL) to a new error and returns code, so that
 * `return pinlet_error_set(err, -EINVAL, "bad tag %s", t);` reads naturally. If *err is
 * already set the first error wins and this only returns code.
 */
int pinlet_error_set(struct pinlet_error **err, int code, const char *fmt, ...) _printf_(3, 4);

/* Prefixes the message of *err with "<context>: " and returns code. Creates the error with
 * just the context if none was set. */
int pinlet_error_wrap(struct pinlet_error **err, int code, const char *fmt, ...) _printf_(3, 4);

void pinlet_error_free(struct pinlet_error *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_error *, pinlet_error_free)
#define _cleanup_error_ _cleanup_(pinlet_error_freep)

/* The message of an error, or a static text describing code when there is none. */
const char *pinlet_error_message(const struct pinlet_error *e, int code);

/* Short stable name of an error class ("not_found", "unauthorized", "unavailable",
 * "timeout", "protocol", "tls", "invalid", "too_big", "internal"). */
const char *pinlet_error_class(int code);
