/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "util/hash.h"
#include "util/macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free)

static const EVP_MD *md_by_name(const char *algo)
{
        /* Not EVP_get_digestbyname(): that knows md5, sha1, sm3 ... and a registry must
         * not be able to pick a weak algorithm for the digest we then pin. */
        if (strcmp(algo, "sha256") == 0)
                return EVP_sha256();
        if (strcmp(algo, "sha384") == 0)
                return EVP_sha384();
        if (strcmp(algo, "sha512") == 0)
                return EVP_sha512();
        return NULL;
}

static void hex(const unsigned char *md, unsigned n, char *out)
{
        static const char digits[] = "0123456789abcdef";

        for (unsigned i = 0; i < n; i++) {
                out[2 * i] = digits[md[i] >> 4];
                out[2 * i + 1] = digits[md[i] & 0xf];
        }
        out[2 * n] = 0;
}

/* md = digest of the parts; *ret_n its length. */
static int digest_iov(const EVP_MD *type, const struct iovec *iov, size_t n,
                      unsigned char md[static EVP_MAX_MD_SIZE], unsigned *ret_n)
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned len = 0;

        if (!ctx || !EVP_DigestInit_ex(ctx, type, NULL))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (iov[i].iov_len > 0 && !EVP_DigestUpdate(ctx, iov[i].iov_base, iov[i].iov_len))
                        return -ENOMEM;
        if (!EVP_DigestFinal_ex(ctx, md, &len) || len != (unsigned)EVP_MD_get_size(type))
                return -ENOMEM;
        *ret_n = len;
        return 0;
}

int pinlet_sha256_hex_iov(const struct iovec *iov, size_t n,
                          char out[static PINLET_SHA256_HEX_SIZE])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len;
        int r;

        r = digest_iov(EVP_sha256(), iov, n, md, &len);
        if (r < 0)
                return r;
        hex(md, len, out);
        return 0;
}

int pinlet_sha256_hex(const void *data, size_t len, char out[static PINLET_SHA256_HEX_SIZE])
{
        const struct iovec iov = { .iov_base = (void *)data, .iov_len = len };

        return pinlet_sha256_hex_iov(&iov, 1, out);
}

int pinlet_hash_digest(const char *algo, const void *data, size_t len, char **ret_digest)
{
        const struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
        const EVP_MD *type = md_by_name(algo);
        unsigned char md[EVP_MAX_MD_SIZE];
        size_t prefix;
        unsigned n;
        char *s;
        int r;

        if (!type)
                return -EOPNOTSUPP;
        r = digest_iov(type, &iov, 1, md, &n);
        if (r < 0)
                return r;
        prefix = strlen(algo) + 1;
        s = malloc(prefix + 2 * (size_t)n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, algo, prefix - 1);
        s[prefix - 1] = ':';
        hex(md, n, s + prefix);
        *ret_digest = s;
        return 0;
}
