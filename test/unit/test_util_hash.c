/* SPDX-License-Identifier: Apache-2.0 */
/* util/hash against the FIPS 180-2 "abc" vectors and the empty input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/hash.h"

#define SHA256_ABC   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void test_sha256_hex(void **state)
{
        char out[PINLET_SHA256_HEX_SIZE];

        assert_int_equal(pinlet_sha256_hex("abc", 3, out), 0);
        assert_string_equal(out, SHA256_ABC);
        assert_int_equal(pinlet_sha256_hex("", 0, out), 0);
        assert_string_equal(out, SHA256_EMPTY);
        assert_int_equal(pinlet_sha256_hex(NULL, 0, out), 0);
        assert_string_equal(out, SHA256_EMPTY);
}

static void test_sha256_hex_iov(void **state)
{
        const struct iovec parts[] = {
                { .iov_base = "a", .iov_len = 1 },
                { .iov_base = NULL, .iov_len = 0 },
                { .iov_base = "bc", .iov_len = 2 },
        };
        char out[PINLET_SHA256_HEX_SIZE];

        /* the parts hash as their concatenation */
        assert_int_equal(pinlet_sha256_hex_iov(parts, 3, out), 0);
        assert_string_equal(out, SHA256_ABC);
        assert_int_equal(pinlet_sha256_hex_iov(NULL, 0, out), 0);
        assert_string_equal(out, SHA256_EMPTY);
}

static void test_digest(void **state)
{
        static const struct {
                const char *algo, *want;
        } cases[] = {
                { "sha256", "sha256:" SHA256_ABC },
                { "sha384", "sha384:cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5"
                            "bed8086072ba1e7cc2358baeca134c825a7" },
                { "sha512", "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d"
                            "39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f" },
        };
        char *d = (char *)"untouched";

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                assert_int_equal(pinlet_hash_digest(cases[i].algo, "abc", 3, &d), 0);
                assert_string_equal(d, cases[i].want);
                free(d);
        }
        /* algorithms OpenSSL knows but a digest must not use, and case variants */
        d = (char *)"untouched";
        assert_int_equal(pinlet_hash_digest("md5", "abc", 3, &d), -EOPNOTSUPP);
        assert_int_equal(pinlet_hash_digest("sha1", "abc", 3, &d), -EOPNOTSUPP);
        assert_int_equal(pinlet_hash_digest("SHA256", "abc", 3, &d), -EOPNOTSUPP);
        assert_int_equal(pinlet_hash_digest("", "abc", 3, &d), -EOPNOTSUPP);
        assert_string_equal(d, "untouched");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sha256_hex),
                cmocka_unit_test(test_sha256_hex_iov),
                cmocka_unit_test(test_digest),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
