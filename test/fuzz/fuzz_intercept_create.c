/* SPDX-License-Identifier: Apache-2.0 */
/* Arbitrary bytes as a CRI CREATE_CONTAINER request; see fuzz_intercept_common.h for the checks. */
#include "fuzz_intercept_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        return fuzz_intercept(PINLET_INTERCEPT_CREATE_CONTAINER, data, size);
}
