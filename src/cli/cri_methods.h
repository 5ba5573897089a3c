/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CRI knowledge the daemon hands to the generic proxy (src/proxy knows nothing of
 * CRI): which methods are unary, which paths go to the image endpoint, and where the
 * interceptors plug in.
 *
 * The table holds the unary methods of RuntimeService and ImageService, for runtime.v1 and
 * runtime.v1alpha2 (same method names, same field numbers). Streaming methods
 * (GetContainerEvents, any Stream*) and methods unknown today are deliberately NOT in the
 * table: the proxy forwards them as generic bidirectional streams, never decoded.
 *
 * Plugging in an interceptor (single-threaded, before pinlet_proxy_new(); the table is
 * then read without locks by the proxy):
 *
 *     pinlet_cri_methods_set_interceptor("ImageService/PullImage", pull_image_fn);
 *
 * sets fn on "/runtime.v1.ImageService/PullImage" and "/runtime.v1alpha2.ImageService/
 * PullImage" alike. The interceptor's userdata is pinlet_proxy_options.userdata.
 */
#pragma once

#include <stddef.h>

#include "proxy/proxy.h"

/* The method table (static storage, lives for the whole process). */
const struct pinlet_method *pinlet_cri_methods(size_t *ret_n);

/* Sets (or with fn NULL clears) the interceptor of "<Service>/<Method>" in every CRI
 * version. Returns how many table entries matched: 0 means the name is not a known unary
 * method (a typo, or a streaming method, which cannot be intercepted). */
size_t pinlet_cri_methods_set_interceptor(const char *service_method, pinlet_intercept_fn fn);

/* NULL-terminated list of path prefixes routed to the image endpoint. */
extern const char *const pinlet_cri_image_prefixes[];
