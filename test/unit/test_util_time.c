/* SPDX-License-Identifier: Apache-2.0 */
/* util/time: pinlet_now_ms() is CLOCK_MONOTONIC in ms and never goes back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "util/time.h"

static int64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_now_is_monotonic_ms(void **state)
{
        int64_t before = mono_ms(), now = pinlet_now_ms(), after = mono_ms();
        int64_t prev = now;

        /* the same clock and unit: bracketed by direct reads of CLOCK_MONOTONIC */
        assert_true(before <= now);
        assert_true(now <= after);
        for (int i = 0; i < 100000; i++) {
                int64_t t = pinlet_now_ms();

                assert_true(t >= prev);
                prev = t;
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_now_is_monotonic_ms),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
