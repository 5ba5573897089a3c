/* SPDX-License-Identifier: Apache-2.0 */
/* util/str: joining strings as asprintf("%s%s…") would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/macro.h"
#include "util/str.h"

static void test_join(void **state)
{
        _cleanup_free_ char *one = pinlet_strjoin("docker.io"),
                            *many = pinlet_strjoin("docker.io", "/", "library/nginx", ":", "1.25"),
                            *empties = pinlet_strjoin("", "a", "", "", "b", ""),
                            *none = pinlet_strjoin("");

        assert_string_equal(one, "docker.io");
        assert_string_equal(many, "docker.io/library/nginx:1.25");
        assert_string_equal(empties, "ab");
        assert_string_equal(none, "");
}

/* The same bytes as asprintf for long parts too (no fixed buffer inside). */
static void test_long(void **state)
{
        size_t n = 1 << 20;
        _cleanup_free_ char *a = malloc(n + 1), *joined = NULL, *printed = NULL;

        assert_non_null(a);
        memset(a, 'x', n);
        a[n] = '\0';
        joined = pinlet_strjoin(a, "@", a);
        assert_non_null(joined);
        assert_int_equal(asprintf(&printed, "%s@%s", a, a), (int)(2 * n + 1));
        assert_string_equal(joined, printed);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_join),
                cmocka_unit_test(test_long),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
