/* SPDX-License-Identifier: Apache-2.0 */
/* cosign-compatible signatures: policy, signature manifest, payload and signature
 * checks. See sigstore.h. */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <yaml.h>

#include "ref/ref.h"
#include "sigstore.h"
#include "util/io.h"

/* ---- keys ---- */

int sigstore_key_load(const char *path, EVP_PKEY **ret, struct pinlet_error **err)
{
        _cleanup_free_ char *pem = NULL;
        size_t len = 0;
        EVP_PKEY *k;
        BIO *b;
        int r, id;

        r = pinlet_io_read_file(path, SIGSTORE_KEY_FILE_MAX, 0, &pem, &len, err);
        if (r < 0)
                return r;
        b = BIO_new_mem_buf(pem, (int)len);
        if (!b)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
        BIO_free(b);
        ERR_clear_error();
        if (!k)
                return pinlet_error_set(err, -EINVAL, "%s: not a PEM public key", path);
        id = EVP_PKEY_get_base_id(k);
        if (id != EVP_PKEY_EC && id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
                EVP_PKEY_free(k);
                return pinlet_error_set(err, -EINVAL,
                                        "%s: unsupported key type (ECDSA, RSA or Ed25519)", path);
        }
        *ret = k;
        return 0;
}

/* ---- policy ---- */

static void rule_done(struct sigstore_rule *r)
{
        for (char **p = r->repositories; p && *p; p++)
                free(*p);
        free(r->repositories);
        for (size_t i = 0; i < r->n_keys; i++)
                EVP_PKEY_free(r->keys[i]);
        free(r->keys);
}

void sigstore_policy_free(struct sigstore_policy *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->n_rules; i++)
                rule_done(&p->rules[i]);
        free(p->rules);
        free(p);
}

struct loader {
        const char *name;
        yaml_document_t *doc;
        struct pinlet_error **err;
};

_printf_(4, 5) static int fail(struct loader *l, const yaml_node_t *n, const char *key,
                               const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        return pinlet_error_set(l->err, -EINVAL, "%s:%lu: key '%s': %s", l->name,
                                (unsigned long)n->start_mark.line + 1, key, strempty(msg));
}

static const char *scalar(const yaml_node_t *n)
{
        return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A list of strings (or one string) -> each item to add(). */
static int each_string(struct loader *l, yaml_node_t *n, const char *key,
                       int (*add)(struct loader *, yaml_node_t *, const char *, const char *,
                                  void *),
                       void *userdata)
{
        if (n->type == YAML_SCALAR_NODE)
                return add(l, n, key, scalar(n), userdata);
        if (n->type != YAML_SEQUENCE_NODE)
                return fail(l, n, key, "expected a list of strings");
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
             i++) {
                yaml_node_t *item = yaml_document_get_node(l->doc, *i);
                int r;

                if (!scalar(item))
                        return fail(l, item ? item : n, key, "expected a list of strings");
                r = add(l, item, key, scalar(item), userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int add_repository(struct loader *l, yaml_node_t *n, const char *key, const char *s,
                          void *userdata)
{
        struct sigstore_rule *r = userdata;
        size_t k = 0;
        char **v;

        if (!*s)
                return fail(l, n, key, "empty pattern");
        while (r->repositories && r->repositories[k])
                k++;
        v = realloc(r->repositories, (k + 2) * sizeof(char *));
        if (!v)
                return pinlet_error_set(l->err, -ENOMEM, "out of memory");
        r->repositories = v;
        v[k] = strdup(s);
        v[k + 1] = NULL;
        return v[k] ? 0 : pinlet_error_set(l->err, -ENOMEM, "out of memory");
}

static int add_key(struct loader *l, yaml_node_t *n, const char *key, const char *s, void *userdata)
{
        struct sigstore_rule *r = userdata;
        _cleanup_error_ struct pinlet_error *kerr = NULL;
        EVP_PKEY **v, *k = NULL;
        int rc;

        rc = sigstore_key_load(s, &k, &kerr);
        if (rc < 0)
                return fail(l, n, key, "cannot load %s: %s", s, pinlet_error_message(kerr, rc));
        v = realloc(r->keys, (r->n_keys + 1) * sizeof(*v));
        if (!v) {
                EVP_PKEY_free(k);
                return pinlet_error_set(l->err, -ENOMEM, "out of memory");
        }
        r->keys = v;
        r->keys[r->n_keys++] = k;
        return 0;
}

static int load_rule(struct loader *l, yaml_node_t *n, size_t index, struct sigstore_rule *r)
{
        char key[64];

        snprintf(key, sizeof(key), "rules[%zu]", index);
        if (n->type != YAML_MAPPING_NODE)
                return fail(l, n, key, "expected a mapping with repositories and keys");
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
                yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
                const char *name = scalar(k);
                char sub[96];
                int rc;

                if (!name || !v)
                        return fail(l, n, key, "expected a mapping");
                snprintf(sub, sizeof(sub), "%s.%s", key, name);
                if (strcmp(name, "repositories") == 0)
                        rc = each_string(l, v, sub, add_repository, r);
                else if (strcmp(name, "keys") == 0)
                        rc = each_string(l, v, sub, add_key, r);
                else
                        rc = fail(l, k, sub, "unknown key");
                if (rc < 0)
                        return rc;
        }
        if (!r->repositories)
                return fail(l, n, key, "no repositories");
        /* a rule without keys would deny its repositories silently: say so at load */
        if (r->n_keys == 0)
                return fail(l, n, key, "no keys");
        return 0;
}

int sigstore_policy_parse(const char *name, const char *data, size_t len,
                          struct sigstore_policy **ret, struct pinlet_error **err)
{
        _cleanup_(sigstore_policy_freep) struct sigstore_policy *p = NULL;
        yaml_parser_t parser;
        yaml_document_t doc;
        yaml_node_t *root;
        struct loader l = { .name = name, .doc = &doc, .err = err };
        int r = 0;

        if (memchr(data, 0, len))
                return pinlet_error_set(err, -EINVAL, "%s: contains a NUL byte", name);
        p = calloc(1, sizeof(*p));
        if (!p || !yaml_parser_initialize(&parser))
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
        if (!yaml_parser_load(&parser, &doc)) {
                r = pinlet_error_set(err, -EINVAL, "%s:%lu: invalid YAML: %s", name,
                                     (unsigned long)parser.problem_mark.line + 1,
                                     strempty(parser.problem));
                yaml_parser_delete(&parser);
                return r;
        }
        yaml_parser_delete(&parser);
        root = yaml_document_get_root_node(&doc);
        if (!root || root->type != YAML_MAPPING_NODE) {
                yaml_document_delete(&doc);
                return pinlet_error_set(err, -EINVAL, "%s: expected a mapping with rules", name);
        }
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
             r == 0 && pr < root->data.mapping.pairs.top; pr++) {
                yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
                yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
                const char *key = scalar(k);

                if (!key || !v) {
                        r = fail(&l, root, "?", "expected a mapping");
                } else if (strcmp(key, "default") == 0) {
                        const char *s = scalar(v);

                        if (s && strcmp(s, "deny") == 0)
                                p->default_allow = false;
                        else if (s && strcmp(s, "allow") == 0)
                                p->default_allow = true;
                        else
                                r = fail(&l, v, "default", "expected deny or allow");
                } else if (strcmp(key, "rules") == 0) {
                        size_t n;

                        if (v->type != YAML_SEQUENCE_NODE) {
                                r = fail(&l, v, "rules", "expected a list of rules");
                                break;
                        }
                        n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
                        p->rules = calloc(n ? n : 1, sizeof(*p->rules));
                        if (!p->rules) {
                                r = pinlet_error_set(err, -ENOMEM, "out of memory");
                                break;
                        }
                        for (size_t i = 0; r == 0 && i < n; i++) {
                                yaml_node_t *item = yaml_document_get_node(
                                        &doc, v->data.sequence.items.start[i]);

                                p->n_rules++;
                                r = item ? load_rule(&l, item, i, &p->rules[i])
                                         : fail(&l, v, "rules", "bad item");
                        }
                } else {
                        r = fail(&l, k, key, "unknown key");
                }
        }
        yaml_document_delete(&doc);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

int sigstore_policy_load(const char *path, struct sigstore_policy **ret, struct pinlet_error **err)
{
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r;

        r = pinlet_io_read_file(path, SIGSTORE_POLICY_MAX, 0, &data, &len, err);
        if (r < 0)
                return r;
        return sigstore_policy_parse(path, data, len, ret, err);
}

const struct sigstore_rule *sigstore_policy_match(const struct sigstore_policy *p,
                                                  const char *repository)
{
        for (size_t i = 0; i < p->n_rules; i++)
                for (char **g = p->rules[i].repositories; g && *g; g++)
                        if (fnmatch(*g, repository, 0) == 0)
                                return &p->rules[i];
        return NULL;
}

/* ---- the signature manifest ---- */

void sigstore_layers_done(struct sigstore_layers *l)
{
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].digest);
                free(l->v[i].signature);
        }
        free(l->v);
        *l = (struct sigstore_layers){ 0 };
}

int sigstore_manifest_parse(const char *data, size_t len, struct sigstore_layers *ret,
                            struct pinlet_error **err)
{
        struct sigstore_layers out = { 0 };
        json_t *m, *layers, *layer;
        size_t i;

        if (len > SIGSTORE_MANIFEST_MAX)
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "signature manifest: larger than %d bytes",
                                        SIGSTORE_MANIFEST_MAX);
        m = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
        layers = m ? json_object_get(m, "layers") : NULL;
        if (!json_is_array(layers)) {
                json_decref(m);
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "signature manifest: not a manifest with layers");
        }
        out.v = calloc(SIGSTORE_LAYERS_MAX, sizeof(*out.v));
        if (!out.v) {
                json_decref(m);
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        json_array_foreach(layers, i, layer)
        {
                const char *mt = json_string_value(json_object_get(layer, "mediaType"));
                const char *digest = json_string_value(json_object_get(layer, "digest"));
                json_t *size = json_object_get(layer, "size");
                const char *sig = json_string_value(json_object_get(
                        json_object_get(layer, "annotations"), SIGSTORE_ANNOTATION_SIG));
                struct sigstore_layer *l;

                if (!mt || strcmp(mt, SIGSTORE_MT_SIMPLESIGNING) != 0 || !digest ||
                    !pinlet_ref_digest_valid(digest) || !json_is_integer(size) ||
                    json_integer_value(size) < 0 ||
                    json_integer_value(size) > SIGSTORE_PAYLOAD_MAX ||
                    (sig && strlen(sig) > SIGSTORE_SIG_B64_MAX) || out.n == SIGSTORE_LAYERS_MAX) {
                        out.skipped++;
                        continue;
                }
                l = &out.v[out.n];
                l->digest = strdup(digest);
                l->size = (size_t)json_integer_value(size);
                l->signature = sig ? strdup(sig) : NULL;
                out.n++;
                if (!l->digest || (sig && !l->signature)) {
                        json_decref(m);
                        sigstore_layers_done(&out);
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                }
        }
        json_decref(m);
        *ret = out;
        return 0;
}

/* ---- payloads ---- */

static char *normalized_name(const char *reference)
{
        _cleanup_ref_ struct pinlet_ref *ref = NULL;

        if (pinlet_ref_parse(reference, &ref, NULL) < 0)
                return NULL;
        return pinlet_ref_name(ref);
}

enum sigstore_payload_result sigstore_payload_check(const char *payload, size_t len,
                                                    const char *digest, const char *repository,
                                                    char **ret_found)
{
        enum sigstore_payload_result res = SIGSTORE_PAYLOAD_MALFORMED;
        json_t *p = NULL, *critical;
        const char *type, *d, *ident;
        _cleanup_free_ char *name = NULL;

        if (ret_found)
                *ret_found = NULL;
        if (len > SIGSTORE_PAYLOAD_MAX)
                return SIGSTORE_PAYLOAD_MALFORMED;
        p = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
        critical = p ? json_object_get(p, "critical") : NULL;
        type = json_string_value(json_object_get(critical, "type"));
        d = json_string_value(
                json_object_get(json_object_get(critical, "image"), "docker-manifest-digest"));
        ident = json_string_value(
                json_object_get(json_object_get(critical, "identity"), "docker-reference"));
        if (!type || strcmp(type, SIGSTORE_PAYLOAD_TYPE) != 0 || !d || !ident)
                goto out;
        if (strcmp(d, digest) != 0) {
                res = SIGSTORE_PAYLOAD_DIGEST_MISMATCH;
                if (ret_found)
                        *ret_found = strdup(d);
                goto out;
        }
        name = normalized_name(ident);
        if (!name || !repository || strcmp(name, repository) != 0) {
                res = SIGSTORE_PAYLOAD_IDENTITY_MISMATCH;
                if (ret_found)
                        *ret_found = strdup(ident);
                goto out;
        }
        res = SIGSTORE_PAYLOAD_OK;
out:
        json_decref(p);
        return res;
}

int sigstore_signature_verify(EVP_PKEY *const *keys, size_t n_keys, const char *payload, size_t len,
                              const char *signature_b64)
{
        size_t b64len = signature_b64 ? strlen(signature_b64) : 0;
        _cleanup_free_ unsigned char *sig = NULL;
        EVP_ENCODE_CTX *dec;
        int siglen = 0, fin = 0, ok = 0;

        if (b64len == 0 || b64len > SIGSTORE_SIG_B64_MAX)
                return 0;
        sig = malloc(b64len);
        dec = EVP_ENCODE_CTX_new();
        if (!sig || !dec) {
                EVP_ENCODE_CTX_free(dec);
                return -ENOMEM;
        }
        /* the streaming decoder ignores the padding bytes EVP_DecodeBlock would count */
        EVP_DecodeInit(dec);
        if (EVP_DecodeUpdate(dec, sig, &siglen, (const unsigned char *)signature_b64, (int)b64len) <
                    0 ||
            EVP_DecodeFinal(dec, sig + siglen, &fin) < 0) {
                EVP_ENCODE_CTX_free(dec);
                ERR_clear_error();
                return 0;
        }
        EVP_ENCODE_CTX_free(dec);
        siglen += fin;

        for (size_t i = 0; i < n_keys && !ok; i++) {
                EVP_MD_CTX *ctx = EVP_MD_CTX_new();
                /* Ed25519 signs the message itself; cosign's ECDSA and RSA keys SHA-256 */
                const EVP_MD *md =
                        EVP_PKEY_get_base_id(keys[i]) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();

                if (!ctx)
                        return -ENOMEM;
                if (EVP_DigestVerifyInit(ctx, NULL, md, NULL, keys[i]) == 1 &&
                    EVP_DigestVerify(ctx, sig, (size_t)siglen, (const unsigned char *)payload,
                                     len) == 1)
                        ok = 1;
                EVP_MD_CTX_free(ctx);
        }
        ERR_clear_error();
        return ok;
}
