/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers of the proxy that touch the file system but not gRPC: preparing the listening
 * socket's path and turning a CRI endpoint into a gRPC target. Separate so that unit tests
 * can exercise them without a server.
 */
#pragma once

#include "util/error.h"

/*
 * Makes path ready for a new listening unix socket:
 *  - creates the missing parent directories (mode 0755);
 *  - nothing there: fine;
 *  - a socket that nobody accepts on (connect() fails with ECONNREFUSED: a previous run
 *    died without cleaning up): removed;
 *  - a socket somebody accepts on: -EADDRINUSE (another instance is running);
 *  - anything that is not a socket: -EEXIST, left alone.
 * Also rejects paths that do not fit in sockaddr_un (-ENAMETOOLONG).
 */
int pinlet_proxy_prepare_socket_path(const char *path, struct pinlet_error **err);

/*
 * CRI endpoint -> gRPC target. "unix:///p", "unix:/p" and other gRPC targets pass
 * through; a bare absolute path "/p" becomes "unix:/p". *ret is malloc'ed.
 */
int pinlet_proxy_endpoint_target(const char *endpoint, char **ret);
