/* SPDX-License-Identifier: Apache-2.0 */
#include <stddef.h>

#include "util/grpc_names.h"

const char *pinlet_grpc_code_name(int code)
{
        static const char *const names[PINLET_GRPC_N_CODES] = {
                "OK",
                "CANCELLED",
                "UNKNOWN",
                "INVALID_ARGUMENT",
                "DEADLINE_EXCEEDED",
                "NOT_FOUND",
                "ALREADY_EXISTS",
                "PERMISSION_DENIED",
                "RESOURCE_EXHAUSTED",
                "FAILED_PRECONDITION",
                "ABORTED",
                "OUT_OF_RANGE",
                "UNIMPLEMENTED",
                "INTERNAL",
                "UNAVAILABLE",
                "DATA_LOSS",
                "UNAUTHENTICATED",
        };

        if (code < 0 || code >= PINLET_GRPC_N_CODES)
                return NULL;
        return names[code];
}
