/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "util/json.h"

static void test_line(void **state)
{
        json_t *o = json_pack("{s:s, s:I, s:[s, s], s:{s:b}}", "zeta", "a \"q\"", "alpha",
                              (json_int_t)42, "list", "x", "y", "obj", "k", 1);
        char *line;

        assert_non_null(o);
        line = pinlet_json_line(o);
        /* compact, insertion order (not sorted), one newline at the end */
        assert_string_equal(line, "{\"zeta\":\"a \\\"q\\\"\",\"alpha\":42,\"list\":[\"x\",\"y\"],"
                                  "\"obj\":{\"k\":true}}\n");
        free(line);
        /* not stolen: still ours, still intact */
        assert_int_equal(o->refcount, 1);
        assert_int_equal(json_object_size(o), 4);
        json_decref(o);

        o = json_array();
        line = pinlet_json_line(o);
        assert_string_equal(line, "[]\n");
        free(line);
        json_decref(o);
}

static void test_failure(void **state)
{
        json_t *s = json_string("bare");

        /* a bare string is not a JSON text jansson encodes without JSON_ENCODE_ANY */
        assert_null(pinlet_json_line(s));
        json_decref(s);
        assert_null(pinlet_json_line(NULL));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_line),
                cmocka_unit_test(test_failure),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
