/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The gRPC status codes (grpc/status.h, the gRPC protocol's numbering), 0..16. */
#define PINLET_GRPC_N_CODES 17

/* The canonical name of a gRPC status code ("OK", "DEADLINE_EXCEEDED", ...), or NULL for
 * a number outside 0..16. */
const char *pinlet_grpc_code_name(int code);
