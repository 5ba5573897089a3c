/* SPDX-License-Identifier: Apache-2.0 */
/* Arbitrary bytes as a CRI IMAGE_STATUS request; see fuzz_intercept_common.h for the checks. */
#include "fuzz_intercept_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        return fuzz_intercept(PINLET_INTERCEPT_IMAGE_STATUS, data, size);
}
