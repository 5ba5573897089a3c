/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Message digests as lowercase hex, on OpenSSL's EVP interface: content digests of
 * manifests ("sha256:<hex>", the OCI digest form) and fingerprints of credentials for
 * cache keys.
 *
 * Errors: -ENOMEM when OpenSSL fails (its only failure here is allocation; a FIPS
 * provider that refuses an algorithm also lands here), -EOPNOTSUPP for an algorithm
 * name this module does not know. Outputs are written only on success. Thread-safe.
 */
#pragma once

#include <stddef.h>
#include <sys/uio.h>

#define PINLET_SHA256_HEX_SIZE 65 /* 64 hex digits and the NUL */

/* out = hex(SHA-256(data)). */
int pinlet_sha256_hex(const void *data, size_t len, char out[static PINLET_SHA256_HEX_SIZE]);

/* out = hex(SHA-256(iov[0] || iov[1] || ... )): for inputs made of parts (a salt and a
 * secret, tagged fields) that should not be copied into one buffer first. */
int pinlet_sha256_hex_iov(const struct iovec *iov, size_t n,
                          char out[static PINLET_SHA256_HEX_SIZE]);

/*
 * The OCI digest of data with the named algorithm: "sha256", "sha384" or "sha512" (the
 * ones the OCI image spec registers or reserves), as "<algo>:<hex>" in *ret_digest
 * (malloc'ed). Any other name is -EOPNOTSUPP.
 */
int pinlet_hash_digest(const char *algo, const void *data, size_t len, char **ret_digest);
