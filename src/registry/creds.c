/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <fnmatch.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "registry/creds.h"
#include "util/hash.h"
#include "util/io.h"
#include "util/log.h"

bool pinlet_creds_empty(const struct pinlet_creds *c)
{
        return !c->username && !c->password && !c->identity_token && !c->registry_token;
}

void pinlet_creds_clear(struct pinlet_creds *c)
{
        erase_and_free(c->username);
        erase_and_free(c->password);
        erase_and_free(c->identity_token);
        erase_and_free(c->registry_token);
        *c = (struct pinlet_creds){ 0 };
}

static void creds_clearp(struct pinlet_creds *c)
{
        pinlet_creds_clear(c);
}

char *pinlet_creds_host_key(const char *s)
{
        const char *p = s;
        size_t n;
        char *r;

        if (strncasecmp(p, "https://", 8) == 0)
                p += 8;
        else if (strncasecmp(p, "http://", 7) == 0)
                p += 7;
        n = strcspn(p, "/");
        r = strndup(p, n);
        if (!r)
                return NULL;
        for (char *q = r; *q; q++)
                *q = (char)tolower((unsigned char)*q);
        if (streq_ptr(r, "index.docker.io") || streq_ptr(r, "registry-1.docker.io") ||
            streq_ptr(r, "registry.hub.docker.com")) {
                free(r);
                r = strdup("docker.io");
        }
        return r;
}

bool pinlet_creds_key_matches(const char *key, const char *domain)
{
        _cleanup_free_ char *k = pinlet_creds_host_key(key);
        _cleanup_free_ char *d = pinlet_creds_host_key(domain);

        if (!k || !d || !*k)
                return false;
        if (strcmp(k, d) == 0)
                return true;
        /* kubelet's config.json accepts host globs ("*.example.com"); '*' never spans a
         * dot there, which FNM_PERIOD does not give, so check the label count too. */
        if (strchr(k, '*') || strchr(k, '?') || strchr(k, '[')) {
                size_t dk = 0, dd = 0;

                for (const char *q = k; *q; q++)
                        dk += *q == '.';
                for (const char *q = d; *q; q++)
                        dd += *q == '.';
                return dk == dd && fnmatch(k, d, 0) == 0;
        }
        return false;
}

int pinlet_creds_decode_auth(const char *b64, char **ret_user, char **ret_pass)
{
        size_t len = strlen(b64), pad = 0;
        _cleanup_erase_ char *out = NULL;
        char *colon, *u, *p;
        int n;

        /* EVP_DecodeBlock wants a multiple of 4 and no whitespace. */
        if (len == 0 || len % 4 != 0 || len > 64 * 1024)
                return PINLET_EINVAL;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)b64[i];

                if (c == '=') {
                        if (i < len - 2)
                                return PINLET_EINVAL;
                        pad++;
                } else if (pad || !(isalnum(c) || c == '+' || c == '/')) {
                        return PINLET_EINVAL;
                }
        }
        out = calloc(1, len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)b64, (int)len);
        if (n < 0 || (size_t)n < pad)
                return PINLET_EINVAL;
        n -= (int)pad;
        out[n] = 0;
        if (memchr(out, 0, (size_t)n))
                return PINLET_EINVAL;
        colon = strchr(out, ':');
        if (!colon)
                return PINLET_EINVAL;
        u = strndup(out, (size_t)(colon - out));
        p = strdup(colon + 1);
        if (!u || !p) {
                erase_and_free(u);
                erase_and_free(p);
                return -ENOMEM;
        }
        *ret_user = u;
        *ret_pass = p;
        return 0;
}

static int dup_nonempty(const char *s, char **ret)
{
        if (!s || !*s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static bool header_value_ok(const char *v)
{
        for (const unsigned char *p = (const unsigned char *)v; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

/* Fills c from the individual fields; `auth` (when set) overrides username/password as
 * docker does. */
static int creds_fill(struct pinlet_creds *c, const char *username, const char *password,
                      const char *auth, const char *identity_token, const char *registry_token)
{
        int ret;

        if (auth && *auth) {
                ret = pinlet_creds_decode_auth(auth, &c->username, &c->password);
                if (ret < 0)
                        return ret;
        } else {
                if ((ret = dup_nonempty(username, &c->username)) < 0 ||
                    (ret = dup_nonempty(password, &c->password)) < 0)
                        return ret;
        }
        /* The registry token goes verbatim into "Authorization: Bearer <token>": a CR or
         * LF there would add headers of the sender's choosing to the request. */
        if (registry_token && !header_value_ok(registry_token))
                return PINLET_EINVAL;
        if ((ret = dup_nonempty(identity_token, &c->identity_token)) < 0 ||
            (ret = dup_nonempty(registry_token, &c->registry_token)) < 0)
                return ret;
        return 0;
}

int pinlet_creds_from_auth(const struct pinlet_registry_auth *a, const char *domain,
                           struct pinlet_creds *ret, struct pinlet_error **err)
{
        _cleanup_(creds_clearp) struct pinlet_creds c = { 0 };
        int r;

        if (!a)
                return 0;
        if (a->server_address && *a->server_address &&
            !pinlet_creds_key_matches(a->server_address, domain))
                return 0;
        r = creds_fill(&c, a->username, a->password, a->auth, a->identity_token, a->registry_token);
        if (r == -ENOMEM)
                return pinlet_error_set(err, r, "out of memory");
        if (r < 0)
                return pinlet_error_set(err, r,
                                        "auth config: `auth` is not base64 of user:pass, or "
                                        "the registry token is not a valid header value");
        if (pinlet_creds_empty(&c))
                return 0;
        c.source = "pull request";
        *ret = c;
        c = (struct pinlet_creds){ 0 };
        return 1;
}

static const char *json_str(json_t *o, const char *key)
{
        json_t *v = json_object_get(o, key);

        return json_is_string(v) ? json_string_value(v) : NULL;
}

int pinlet_creds_from_docker_config(const char *json, size_t len, const char *domain,
                                    struct pinlet_creds *ret, struct pinlet_error **err)
{
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(creds_clearp) struct pinlet_creds c = { 0 };
        json_t *auths, *entry = NULL, *v;
        json_error_t jerr;
        const char *key;
        int r;

        if (len > PINLET_DOCKER_CONFIG_MAX)
                return pinlet_error_set(err, PINLET_E2BIG, "docker config larger than %d bytes",
                                        PINLET_DOCKER_CONFIG_MAX);
        root = json_loadb(json, len, 0, &jerr);
        if (!root)
                /* not jerr.text: it may quote the input ("near '...'"), credentials here */
                return pinlet_error_set(err, PINLET_EINVAL, "not valid JSON (line %d, column %d)",
                                        jerr.line, jerr.column);
        if (!json_is_object(root))
                return pinlet_error_set(err, PINLET_EINVAL, "not a JSON object");
        auths = json_object_get(root, "auths");
        if (!auths)
                return 0;
        if (!json_is_object(auths))
                return pinlet_error_set(err, PINLET_EINVAL, "\"auths\" is not an object");
        /* An exact key wins over a normalized or glob match. */
        entry = json_object_get(auths, domain);
        if (!entry)
                json_object_foreach(auths, key, v) if (pinlet_creds_key_matches(key, domain))
                {
                        entry = v;
                        break;
                }
        if (!entry)
                return 0;
        if (!json_is_object(entry))
                return pinlet_error_set(err, PINLET_EINVAL, "auths entry is not an object");
        r = creds_fill(&c, json_str(entry, "username"), json_str(entry, "password"),
                       json_str(entry, "auth"), json_str(entry, "identitytoken"),
                       json_str(entry, "registrytoken"));
        if (r == -ENOMEM)
                return pinlet_error_set(err, r, "out of memory");
        if (r < 0)
                return pinlet_error_set(err, r,
                                        "auths entry: `auth` is not base64 of user:pass, or "
                                        "the registry token is not a valid header value");
        if (pinlet_creds_empty(&c))
                return 0;
        c.source = "docker config";
        *ret = c;
        c = (struct pinlet_creds){ 0 };
        return 1;
}

int pinlet_creds_lookup(char *const *paths, const struct pinlet_registry_auth *a,
                        const char *domain, struct pinlet_creds *ret, struct pinlet_error **err)
{
        struct pinlet_creds c = { 0 };
        int r;

        r = pinlet_creds_from_auth(a, domain, &c, err);
        if (r < 0)
                return r;
        if (r > 0) {
                *ret = c;
                return 0;
        }
        for (char *const *p = paths; p && *p; p++) {
                _cleanup_free_ char *expanded = NULL;
                _cleanup_error_ struct pinlet_error *e = NULL;
                const char *path = *p;
                char *data = NULL;
                size_t size = 0;

                if (strncmp(path, "~/", 2) == 0) {
                        const char *home = getenv("HOME");

                        if (!home)
                                continue;
                        if (asprintf(&expanded, "%s/%s", home, path + 2) < 0)
                                return pinlet_error_set(err, -ENOMEM, "out of memory");
                        path = expanded;
                }
                /* Symbolic links are followed: Kubernetes mounts secrets (and kubelet's
                 * config.json with them) through links. */
                r = pinlet_io_read_file(path, PINLET_DOCKER_CONFIG_MAX, 0, &data, &size, NULL);
                if (r == -ENOENT || r == -ENOTDIR)
                        continue;
                if (r < 0) {
                        log_debug("registry credentials: skipping %s: %s", path, strerror(-r));
                        continue;
                }
                r = pinlet_creds_from_docker_config(data, size, domain, &c, &e);
                /* the file holds passwords: do not leave them in freed memory */
                explicit_bzero(data, size);
                free(data);
                if (r < 0) {
                        log_debug("registry credentials: skipping %s: %s", path,
                                  pinlet_error_message(e, r));
                        continue;
                }
                if (r > 0) {
                        *ret = c;
                        return 0;
                }
        }
        *ret = (struct pinlet_creds){ .source = "anonymous" };
        return 0;
}

int pinlet_creds_fingerprint(const struct pinlet_creds *c, char ret[static PINLET_SHA256_HEX_SIZE])
{
        const char *parts[4] = { c->username, c->password, c->identity_token, c->registry_token };
        unsigned char tags[ELEMENTSOF(parts)];
        struct iovec iov[2 * ELEMENTSOF(parts)];
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
                /* a tag byte per field, and each present field with its NUL: ("ab", "")
                 * and ("a", "b") and a password moved to the user name all differ */
                tags[i] = parts[i] ? (unsigned char)(1 + i) : 0;
                iov[n++] = (struct iovec){ .iov_base = &tags[i], .iov_len = 1 };
                if (parts[i])
                        iov[n++] = (struct iovec){ .iov_base = (void *)parts[i],
                                                   .iov_len = strlen(parts[i]) + 1 };
        }
        return pinlet_sha256_hex_iov(iov, n, ret);
}
