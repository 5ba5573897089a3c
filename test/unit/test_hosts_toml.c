/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TOML subset reader: a table of accepted documents with the tree they give (dumped
 * in a compact canonical form that keeps key order), and a table of refused documents
 * with their exact "file:line: message".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hosts/toml.h"
#include "util/buf.h"

static void dump(const struct pinlet_toml_value *v, struct pinlet_buf *b)
{
        char num[32];

        switch (v->type) {
        case PINLET_TOML_STRING:
                pinlet_buf_append_str(b, "\"");
                pinlet_buf_append_str(b, v->string);
                pinlet_buf_append_str(b, "\"");
                break;
        case PINLET_TOML_INTEGER:
                snprintf(num, sizeof(num), "%lld", (long long)v->integer);
                pinlet_buf_append_str(b, num);
                break;
        case PINLET_TOML_BOOL:
                pinlet_buf_append_str(b, v->boolean ? "true" : "false");
                break;
        case PINLET_TOML_ARRAY:
                pinlet_buf_append_str(b, "[");
                for (size_t i = 0; i < v->n; i++) {
                        if (i)
                                pinlet_buf_append_str(b, ",");
                        dump(v->items[i], b);
                }
                pinlet_buf_append_str(b, "]");
                break;
        case PINLET_TOML_TABLE:
                pinlet_buf_append_str(b, "{");
                for (size_t i = 0; i < v->n; i++) {
                        if (i)
                                pinlet_buf_append_str(b, ",");
                        pinlet_buf_append_str(b, v->keys[i]);
                        pinlet_buf_append_str(b, "=");
                        dump(v->items[i], b);
                }
                pinlet_buf_append_str(b, "}");
                break;
        }
}

struct good_case {
        const char *text;
        const char *tree;
};

static const struct good_case good[] = {
        { "", "{}" },
        { "# only a comment\n\n", "{}" },
        { "a = 1\nb = -2\nc = +3\nd = 1_000\n", "{a=1,b=-2,c=3,d=1000}" },
        { "x = true\ny = false # c\n", "{x=true,y=false}" },
        { "s = \"a\\tb\\n\\\"q\\\"\\\\ \\u00e9\\U0001F600\"\n",
          "{s=\"a\tb\n\"q\"\\ \xc3\xa9\xf0\x9f\x98\x80\"}" },
        { "s = 'C:\\path\\no escapes'\n", "{s=\"C:\\path\\no escapes\"}" },
        { "\"quoted key\" = 1\n'lit.key' = 2\nbare-key_1 = 3\n",
          "{quoted key=1,lit.key=2,bare-key_1=3}" },
        { "a.b.c = 1\na.b.d = 2\n", "{a={b={c=1,d=2}}}" },
        { "arr = [ \"a\", 'b', ]\nnest = [[\"c\", \"k\"], [\"d\"]]\n",
          "{arr=[\"a\",\"b\"],nest=[[\"c\",\"k\"],[\"d\"]]}" },
        { "arr = [\n  1, # one\n  2,\n\n]\n", "{arr=[1,2]}" },
        { "server = \"https://r\"\n[host.\"https://m1:5000\"]\n  capabilities = [\"pull\"]\n"
          "[host.\"https://m0\"]\n  skip_verify = true\n[host.\"https://m1:5000\".header]\n"
          "  x-a = \"1\"\n",
          "{server=\"https://r\",host={https://m1:5000={capabilities=[\"pull\"],header={x-a="
          "\"1\"}},https://m0={skip_verify=true}}}" },
        { "[[registry]]\nprefix = \"a\"\n[[registry.mirror]]\nlocation = \"m\"\n"
          "[[registry.mirror]]\nlocation = \"n\"\n[[registry]]\nprefix = \"b\"\n",
          "{registry=[{prefix=\"a\",mirror=[{location=\"m\"},{location=\"n\"}]},{prefix=\"b\"}]}" },
        { "[a.b]\nx = 1\n[a]\ny = 2\n", "{a={b={x=1},y=2}}" },
        { "t = { k = \"v\", n = { m = 1 } }\ne = {}\n", "{t={k=\"v\",n={m=1}},e={}}" },
        { "\xef\xbb\xbfk = 1\r\nl = 2\r\n", "{k=1,l=2}" },
        { "big = 9223372036854775807\nsmall = -9223372036854775808\n",
          "{big=9223372036854775807,small=-9223372036854775808}" },
        { "[ spaced . \"x y\" ]\nk = 0\n", "{spaced={x y={k=0}}}" },
};

struct bad_case {
        const char *text;
        const char *msg;
};

static const struct bad_case bad[] = {
        { "a = 1\na = 2\n", "t.toml:2: duplicate key 'a' (first on line 1)" },
        { "[t]\n[t]\n", "t.toml:2: table 't' is already defined (line 1)" },
        { "a = 1\n[a]\n", "t.toml:2: table 'a' is already defined (line 1)" },
        { "a = 1\n[a.b]\n", "t.toml:2: key 'a' is already a integer (line 1), not a table" },
        { "[[a]]\n[a]\n", "t.toml:2: table 'a' is already defined (line 1)" },
        { "[a]\n[[a]]\n", "t.toml:2: 'a' is already a table (line 1), not an array of tables" },
        { "s = \"abc\n", "t.toml:1: unterminated string" },
        { "s = \"\"\"multi\"\"\"\n", "t.toml:1: multi-line strings are not supported" },
        { "s = \"\\x\"\n", "t.toml:1: unknown escape in a string" },
        { "s = \"\\u0000\"\n", "t.toml:1: \\u escape is not a Unicode scalar value (or NUL)" },
        { "s = \"\\ud800\"\n", "t.toml:1: \\u escape is not a Unicode scalar value (or NUL)" },
        { "s = \"\\u12\"\n", "t.toml:1: bad hex digit in a \\u escape" },
        { "f = 1.5\n", "t.toml:1: floats, dates and times are not supported" },
        { "d = 1979-05-27\n", "t.toml:1: floats, dates and times are not supported" },
        { "h = 0x1f\n", "t.toml:1: hexadecimal, octal and binary integers are not supported" },
        { "n = 007\n", "t.toml:1: integer with a leading zero" },
        { "n = 1__0\n", "t.toml:1: '_' must be between digits" },
        { "n = 9223372036854775808\n", "t.toml:1: integer out of range" },
        { "x = inf\n", "t.toml:1: floats are not supported" },
        { "x = tru\n", "t.toml:1: expected a value" },
        { "x =\n", "t.toml:1: expected a value" },
        { "a = 1 b = 2\n", "t.toml:1: expected the end of the line" },
        { "= 1\n", "t.toml:1: expected a key" },
        { "k 1\n", "t.toml:1: expected '=' after a key" },
        { "\n\n[t\n", "t.toml:3: expected ']' after the table name" },
        { "[[t]\n", "t.toml:1: expected ']]' after the table name" },
        { "a = [1, 2\n", "t.toml:2: unterminated array" },
        { "a = [1 2]\n", "t.toml:1: expected ',' or ']' in an array" },
        { "t = {a = 1}\n[t.b]\n", "t.toml:2: inline table 't' (line 1) cannot be extended" },
        { "t = {a = 1, a = 2}\n", "t.toml:1: duplicate key 'a' (first on line 1)" },
        { "s = \"a\tb\x01\"\n", "t.toml:1: control character in a string" },
        { "x = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
          "t.toml:1: values nest too deeply" },
};

static void test_good(void **state)
{
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                struct pinlet_toml_value *root = NULL;
                struct pinlet_error *err = NULL;
                struct pinlet_buf b;
                int r;

                r = pinlet_toml_parse("t.toml", good[i].text, strlen(good[i].text), &root, &err);
                if (r < 0)
                        fail_msg("case %zu: %s", i, pinlet_error_message(err, r));
                pinlet_buf_init(&b, 1 << 16);
                dump(root, &b);
                if (strcmp(b.data, good[i].tree) != 0)
                        fail_msg("case %zu:\n got  %s\n want %s", i, b.data, good[i].tree);
                pinlet_buf_free(&b);
                pinlet_toml_free(root);
        }
}

static void test_bad(void **state)
{
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct pinlet_toml_value *root = NULL;
                struct pinlet_error *err = NULL;
                int r;

                r = pinlet_toml_parse("t.toml", bad[i].text, strlen(bad[i].text), &root, &err);
                if (r >= 0)
                        fail_msg("case %zu accepted: %s", i, bad[i].text);
                assert_int_equal(r, PINLET_EINVAL);
                assert_null(root);
                if (strcmp(pinlet_error_message(err, r), bad[i].msg) != 0)
                        fail_msg("case %zu:\n got  %s\n want %s", i, pinlet_error_message(err, r),
                                 bad[i].msg);
                pinlet_error_free(err);
        }
}

static void test_nul_and_size(void **state)
{
        struct pinlet_toml_value *root = NULL;
        struct pinlet_error *err = NULL;
        static const char nul[] = "a = \"x\0y\"\n";
        char *big;
        int r;

        r = pinlet_toml_parse("t.toml", nul, sizeof(nul) - 1, &root, &err);
        assert_int_equal(r, PINLET_EINVAL);
        assert_string_equal(pinlet_error_message(err, r), "t.toml: holds a NUL byte");
        pinlet_error_free(TAKE_PTR(err));

        big = malloc(PINLET_TOML_SIZE_MAX + 1);
        assert_non_null(big);
        memset(big, '#', PINLET_TOML_SIZE_MAX + 1);
        r = pinlet_toml_parse("t.toml", big, PINLET_TOML_SIZE_MAX + 1, &root, &err);
        assert_int_equal(r, PINLET_E2BIG);
        pinlet_error_free(TAKE_PTR(err));
        /* exactly the limit is fine */
        r = pinlet_toml_parse("t.toml", big, PINLET_TOML_SIZE_MAX, &root, &err);
        assert_int_equal(r, 0);
        pinlet_toml_free(root);
        free(big);
}

static void test_get_and_lines(void **state)
{
        _cleanup_(pinlet_toml_freep) struct pinlet_toml_value *root = NULL;
        struct pinlet_error *err = NULL;
        const char *text = "a = 1\n\n[t]\nk = 'v'\n";
        const struct pinlet_toml_value *t, *k;

        assert_int_equal(pinlet_toml_parse("t.toml", text, strlen(text), &root, &err), 0);
        t = pinlet_toml_get(root, "t");
        assert_non_null(t);
        assert_int_equal(t->line, 3);
        k = pinlet_toml_get(t, "k");
        assert_non_null(k);
        assert_int_equal(k->line, 4);
        assert_string_equal(k->string, "v");
        assert_null(pinlet_toml_get(root, "missing"));
        assert_null(pinlet_toml_get(k, "k")); /* not a table */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good),
                cmocka_unit_test(test_bad),
                cmocka_unit_test(test_nul_and_size),
                cmocka_unit_test(test_get_and_lines),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
