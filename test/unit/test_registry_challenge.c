/* SPDX-License-Identifier: Apache-2.0 */
/* WWW-Authenticate parsing (RFC 7235), table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "registry/challenge.h"

struct expect_param {
        const char *name, *value;
};

struct expect_challenge {
        const char *scheme;
        const char *token68;
        struct expect_param params[4];
};

static const struct {
        const char *input;
        int ret;
        size_t n;
        struct expect_challenge ch[3];
} cases[] = {
        { "Basic realm=\"Registry Realm\"",
          0,
          1,
          { { "basic", NULL, { { "realm", "Registry Realm" } } } } },
        /* distribution's bearer challenge */
        { "Bearer "
          "realm=\"https://auth.example/"
          "token\",service=\"registry.example\",scope=\"repository:tiny/app:pull\"",
          0,
          1,
          { { "bearer",
              NULL,
              { { "realm", "https://auth.example/token" },
                { "service", "registry.example" },
                { "scope", "repository:tiny/app:pull" } } } } },
        /* case-insensitive scheme and names; BWS around '='; token values */
        { "BEARER Realm = \"r\" , SERVICE=svc",
          0,
          1,
          { { "bearer", NULL, { { "realm", "r" }, { "service", "svc" } } } } },
        /* two challenges in one header; commas inside quotes are data */
        { "Basic realm=\"a, b\", Bearer realm=\"https://x/t\",scope=\"repository:a:pull,push\"",
          0,
          2,
          { { "basic", NULL, { { "realm", "a, b" } } },
            { "bearer",
              NULL,
              { { "realm", "https://x/t" }, { "scope", "repository:a:pull,push" } } } } },
        /* backslash escapes in quoted strings */
        { "Basic realm=\"say \\\"hi\\\" \\\\ there\"",
          0,
          1,
          { { "basic", NULL, { { "realm", "say \"hi\" \\ there" } } } } },
        /* token68 */
        { "Negotiate abc+/def==", 0, 1, { { "negotiate", "abc+/def==" } } },
        { "Negotiate abc=, Basic realm=x",
          0,
          2,
          { { "negotiate", "abc=" }, { "basic", NULL, { { "realm", "x" } } } } },
        /* schemes without parameters, empty list elements */
        { "Basic, , Bearer", 0, 2, { { "basic" }, { "bearer" } } },
        { " ,Basic realm=x,, ", 0, 1, { { "basic", NULL, { { "realm", "x" } } } } },
        { "", 0, 0, {} },
        /* errors */
        { "Basic realm=\"unterminated", PINLET_EPROTO, 0, {} },
        { "Basic realm=\"bad\\", PINLET_EPROTO, 0, {} },
        /* "name=" alone is a token68 by the grammar (a param needs a value) */
        { "Basic realm=", 0, 1, { { "basic", "realm=" } } },
        { "Basic a=b, c=", PINLET_EPROTO, 0, {} },
        { "Basic realm=x y=z", PINLET_EPROTO, 0, {} },
        { "=x", PINLET_EPROTO, 0, {} },
        { "Basic realm=\"ctl\x01\"", PINLET_EPROTO, 0, {} },
        { "Basic@ realm=x", PINLET_EPROTO, 0, {} },
};

static void test_table(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct pinlet_auth_challenges list = { 0 };
                struct pinlet_error *err = NULL;
                int r = pinlet_challenge_parse(cases[i].input, strlen(cases[i].input), &list, &err);

                if (r != cases[i].ret)
                        fail_msg("case %zu '%s': ret %d, want %d", i, cases[i].input, r,
                                 cases[i].ret);
                if (r < 0) {
                        assert_non_null(err);
                        assert_int_equal(list.n, 0);
                        pinlet_error_free(err);
                        continue;
                }
                assert_null(err);
                if (list.n != cases[i].n)
                        fail_msg("case %zu '%s': %zu challenges, want %zu", i, cases[i].input,
                                 list.n, cases[i].n);
                for (size_t j = 0; j < list.n; j++) {
                        const struct expect_challenge *e = &cases[i].ch[j];
                        size_t np = 0;

                        assert_string_equal(list.v[j].scheme, e->scheme);
                        if (e->token68)
                                assert_string_equal(list.v[j].token68, e->token68);
                        else
                                assert_null(list.v[j].token68);
                        while (np < ELEMENTSOF(e->params) && e->params[np].name)
                                np++;
                        assert_int_equal(list.v[j].n_params, np);
                        for (size_t k = 0; k < np; k++) {
                                assert_string_equal(list.v[j].params[k].name, e->params[k].name);
                                assert_string_equal(list.v[j].params[k].value, e->params[k].value);
                        }
                }
                pinlet_challenges_clear(&list);
        }
}

static void test_several_headers_and_lookup(void **state)
{
        struct pinlet_auth_challenges list = { 0 };
        const char *h1 = "Basic realm=\"one\"";
        const char *h2 = "bEaReR REALM=\"https://auth/token\", Service=reg";
        const struct pinlet_auth_challenge *c;

        assert_int_equal(pinlet_challenge_parse(h1, strlen(h1), &list, NULL), 0);
        assert_int_equal(pinlet_challenge_parse(h2, strlen(h2), &list, NULL), 0);
        assert_int_equal(list.n, 2);
        c = pinlet_challenge_find(&list, "Bearer");
        assert_non_null(c);
        assert_string_equal(pinlet_challenge_param(c, "Realm"), "https://auth/token");
        assert_string_equal(pinlet_challenge_param(c, "service"), "reg");
        assert_null(pinlet_challenge_param(c, "scope"));
        assert_null(pinlet_challenge_find(&list, "digest"));

        /* a bad third header leaves the first two in place */
        assert_int_equal(pinlet_challenge_parse("Basic =", 7, &list, NULL), PINLET_EPROTO);
        assert_int_equal(list.n, 2);
        pinlet_challenges_clear(&list);
        assert_int_equal(list.n, 0);
}

static void test_not_nul_terminated(void **state)
{
        struct pinlet_auth_challenges list = { 0 };
        const char buf[] = { 'B', 'a', 's', 'i', 'c', ' ', 'r', '=', 'x', 'y' };

        /* only the first 9 bytes count: "Basic r=x" */
        assert_int_equal(pinlet_challenge_parse(buf, 9, &list, NULL), 0);
        assert_string_equal(pinlet_challenge_param(&list.v[0], "r"), "x");
        pinlet_challenges_clear(&list);
}

static void test_limits(void **state)
{
        struct pinlet_auth_challenges list = { 0 };
        struct pinlet_error *err = NULL;
        char buf[4096] = "";

        for (int i = 0; i < PINLET_CHALLENGE_MAX + 1; i++)
                strcat(buf, "Basic realm=x, ");
        assert_int_equal(pinlet_challenge_parse(buf, strlen(buf), &list, &err), PINLET_E2BIG);
        assert_int_equal(list.n, 0);
        pinlet_error_free(err);
        err = NULL;

        strcpy(buf, "Bearer ");
        for (int i = 0; i < PINLET_CHALLENGE_PARAMS_MAX + 1; i++)
                sprintf(buf + strlen(buf), "%sp%d=v", i ? "," : "", i);
        assert_int_equal(pinlet_challenge_parse(buf, strlen(buf), &list, &err), PINLET_E2BIG);
        pinlet_error_free(err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table),
                cmocka_unit_test(test_several_headers_and_lookup),
                cmocka_unit_test(test_not_nul_terminated),
                cmocka_unit_test(test_limits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
