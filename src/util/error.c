/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

static char *vformat(const char *fmt, va_list ap)
{
        char *s = NULL;

        if (vasprintf(&s, fmt, ap) < 0)
                return NULL;
        return s;
}

int pinlet_error_set(struct pinlet_error **err, int code, const char *fmt, ...)
{
        struct pinlet_error *e;
        va_list ap;

        if (!err || *err)
                return code;
        e = calloc(1, sizeof(*e));
        if (!e)
                return code;
        va_start(ap, fmt);
        e->message = vformat(fmt, ap);
        va_end(ap);
        if (!e->message) {
                free(e);
                return code;
        }
        e->code = code;
        *err = e;
        return code;
}

int pinlet_error_wrap(struct pinlet_error **err, int code, const char *fmt, ...)
{
        _cleanup_free_ char *ctx = NULL;
        char *joined = NULL;
        va_list ap;

        if (!err)
                return code;
        va_start(ap, fmt);
        ctx = vformat(fmt, ap);
        va_end(ap);
        if (!ctx)
                return code;
        if (!*err)
                return pinlet_error_set(err, code, "%s", ctx);
        if (asprintf(&joined, "%s: %s", ctx, (*err)->message) < 0)
                return code;
        free((*err)->message);
        (*err)->message = joined;
        (*err)->code = code;
        return code;
}

void pinlet_error_free(struct pinlet_error *e)
{
        if (!e)
                return;
        free(e->message);
        free(e);
}

const char *pinlet_error_message(const struct pinlet_error *e, int code)
{
        if (e && e->message)
                return e->message;
        return strerror(code < 0 ? -code : code);
}

const char *pinlet_error_class(int code)
{
        switch (code) {
        case PINLET_ENOTFOUND:
                return "not_found";
        case PINLET_EUNAUTH:
                return "unauthorized";
        case PINLET_EUNAVAIL:
                return "unavailable";
        case PINLET_ETIMEOUT:
                return "timeout";
        case PINLET_EPROTO:
                return "protocol";
        case PINLET_ETLS:
                return "tls";
        case PINLET_EINVAL:
                return "invalid";
        case PINLET_E2BIG:
                return "too_big";
        default:
                return "internal";
        }
}
