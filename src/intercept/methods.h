/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CRI knowledge the daemon hands to the generic proxy (src/proxy knows nothing of
 * CRI): which methods are unary, which paths go to the image endpoint, and where the
 * interceptors plug in.
 *
 * The table holds the unary methods of RuntimeService and ImageService, for runtime.v1 and
 * runtime.v1alpha2 (same method names, same field numbers). It is const: streaming methods
 * (GetContainerEvents, any Stream*) and methods unknown today are deliberately NOT in it,
 * so the proxy forwards them as generic bidirectional streams, never decoded.
 *
 * The daemon builds its own copy with the interceptors (request) and responders (answer)
 * bound:
 *
 *     static const struct pinlet_cri_binding b[] = {
 *             { "ImageService/PullImage", pull_image_fn },
 *             { "ImageService/ListImages", NULL, list_images_respond_fn },
 *     };
 *     r = pinlet_cri_methods_build(b, ELEMENTSOF(b), &methods, &n, &err);
 *
 * binds fn to "/runtime.v1.ImageService/PullImage" and "/runtime.v1alpha2.ImageService/
 * PullImage" alike. A binding that names no unary method of the table (a typo, or a
 * streaming method, which cannot be intercepted) is an error: the daemon refuses to start
 * rather than silently not intercepting.
 */
#pragma once

#include <stddef.h>

#include "proxy/proxy.h"
#include "util/error.h"

struct pinlet_cri_binding {
        const char *service_method; /* "<Service>/<Method>", e.g. "ImageService/PullImage" */
        pinlet_intercept_fn fn;     /* NULL: leaves the method's interceptor as it is */
        pinlet_respond_fn respond;  /* NULL: leaves the method's responder as it is */
};

/* The table without interceptors (static storage). */
const struct pinlet_method *pinlet_cri_methods(size_t *ret_n);

/* A malloc'ed copy of the table with the bindings applied (free() it after the proxy).
 * -EINVAL with *err naming the binding when one matches no method; -ENOMEM. */
int pinlet_cri_methods_build(const struct pinlet_cri_binding *bindings, size_t n_bindings,
                             struct pinlet_method **ret, size_t *ret_n, struct pinlet_error **err);

/* NULL-terminated list of path prefixes routed to the image endpoint. */
extern const char *const pinlet_cri_image_prefixes[];
