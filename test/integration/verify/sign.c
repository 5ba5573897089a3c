/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test signer in cosign's signature format (OpenSSL only; cosign is not packaged):
 *
 *   pinlet_it_sign KEY.pem IMAGE_DIGEST IDENTITY OUTDIR [PAYLOAD_DIGEST]
 *
 * writes OUTDIR as an OCI image layout holding the signature artifact cosign would push
 * as REPO:sha256-<hex>.sig: a simple-signing payload naming IDENTITY (the repository) and
 * PAYLOAD_DIGEST (default IMAGE_DIGEST: another value makes a signature over the wrong
 * digest), signed with KEY (ECDSA and RSA over SHA-256, Ed25519 over the payload), the
 * base64 signature in the layer annotation dev.cosignproject.cosign/signature, and a
 * config in cosign's shape. Push it with skopeo (push_image, --preserve-digests).
 * Prints the tag to push to ("sha256-<hex>.sig").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

static void die(const char *what)
{
        fprintf(stderr, "pinlet_it_sign: %s\n", what);
        exit(1);
}

/* Writes data as OUT/blobs/sha256/<hex>; hex gets the digest's hex. */
static void blob(const char *out, const char *data, size_t len, char hex[65])
{
        unsigned char md[32];
        char path[4096];
        FILE *f;

        SHA256((const unsigned char *)data, len, md);
        for (int i = 0; i < 32; i++)
                sprintf(hex + 2 * i, "%02x", md[i]);
        snprintf(path, sizeof(path), "%s/blobs/sha256/%s", out, hex);
        f = fopen(path, "wb");
        if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
                die("cannot write a blob");
}

static void file(const char *out, const char *name, const char *data)
{
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", out, name);
        f = fopen(path, "w");
        if (!f || fputs(data, f) < 0 || fclose(f) != 0)
                die("cannot write the layout");
}

int main(int argc, char **argv)
{
        const char *keyfile, *digest, *identity, *out, *payload_digest;
        char payload[2048], config[2048], manifest[4096], index[1024], path[4096];
        char phex[65], chex[65], mhex[65];
        unsigned char sig[1024];
        char b64[2048];
        size_t siglen = sizeof(sig);
        EVP_PKEY *key;
        EVP_MD_CTX *ctx;
        FILE *f;

        if (argc < 5 || argc > 6)
                die("usage: pinlet_it_sign KEY.pem IMAGE_DIGEST IDENTITY OUTDIR "
                    "[PAYLOAD_DIGEST]");
        keyfile = argv[1], digest = argv[2], identity = argv[3], out = argv[4];
        payload_digest = argc == 6 ? argv[5] : digest;
        if (strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 71)
                die("IMAGE_DIGEST must be sha256:<64 hex>");

        f = fopen(keyfile, "r");
        key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
        if (f)
                fclose(f);
        if (!key)
                die("cannot read the private key");

        /* cosign's simple-signing payload (optional: null, as `cosign sign` without -a) */
        snprintf(payload, sizeof(payload),
                 "{\"critical\":{\"identity\":{\"docker-reference\":\"%s\"},\"image\":{\"docker-"
                 "manifest-digest\":\"%s\"},\"type\":\"cosign container image "
                 "signature\"},\"optional\":null}",
                 identity, payload_digest);
        ctx = EVP_MD_CTX_new();
        if (!ctx ||
            EVP_DigestSignInit(ctx, NULL,
                               EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256(),
                               NULL, key) != 1 ||
            EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)payload, strlen(payload)) != 1)
                die("signing failed");
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(key);
        EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);

        snprintf(path, sizeof(path), "%s/blobs/sha256", out);
        mkdir(out, 0755);
        snprintf(path, sizeof(path), "%s/blobs", out);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/blobs/sha256", out);
        mkdir(path, 0755);
        blob(out, payload, strlen(payload), phex);
        snprintf(config, sizeof(config),
                 "{\"architecture\":\"\",\"created\":\"0001-01-01T00:00:00Z\",\"history\":[{"
                 "\"created\":\"0001-01-01T00:00:00Z\"}],\"os\":\"\",\"rootfs\":{\"type\":"
                 "\"layers\",\"diff_ids\":[\"sha256:%s\"]},\"config\":{}}",
                 phex);
        blob(out, config, strlen(config), chex);
        snprintf(manifest, sizeof(manifest),
                 "{\"schemaVersion\":2,\"mediaType\":\"application/"
                 "vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/"
                 "vnd.oci.image.config.v1+json\",\"size\":%zu,\"digest\":\"sha256:%s\"},"
                 "\"layers\":[{\"mediaType\":\"application/"
                 "vnd.dev.cosign.simplesigning.v1+json\",\"size\":%zu,\"digest\":\"sha256:%s\","
                 "\"annotations\":{\"dev.cosignproject.cosign/signature\":\"%s\"}}]}",
                 strlen(config), chex, strlen(payload), phex, b64);
        blob(out, manifest, strlen(manifest), mhex);
        file(out, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
        snprintf(index, sizeof(index),
                 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/"
                 "vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:%s\",\"size\":%zu,"
                 "\"annotations\":{\"org.opencontainers.image.ref.name\":\"sig\"}}]}",
                 mhex, strlen(manifest));
        file(out, "index.json", index);
        printf("sha256-%s.sig\n", digest + 7);
        return 0;
}
