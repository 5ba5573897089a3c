/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Registry credentials, in the order pinlet tries them for a request to one registry:
 *   1. the caller's AuthConfig (CRI PullImageRequest.auth: kubelet's pull secrets or
 *      credential provider), when its server_address is empty or names that registry;
 *   2. the node's Docker config files (kubelet's /var/lib/kubelet/config.json, then
 *      ~/.docker/config.json): the first "auths" entry that names the registry;
 *   3. none (anonymous).
 * Credential helpers (credsStore/credHelpers) are not run: they are programs, and the
 * daemon does not execute programs named by a config file.
 *
 * Everything here is secret: never log a struct pinlet_creds, and free it with
 * pinlet_creds_clear(), which overwrites the strings.
 *
 * Parsing functions are pure (no I/O); pinlet_creds_lookup() reads files.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"
#include "util/hash.h"

#define PINLET_DOCKER_CONFIG_MAX (4 * 1024 * 1024) /* bytes of a config.json */

/* What a CRI client passed (runtime.v1 AuthConfig). Borrowed strings, any may be NULL. */
struct pinlet_registry_auth {
        const char *server_address; /* "host[:port]" or a URL; empty: any registry */
        const char *username;
        const char *password;
        const char *auth;           /* base64("user:pass") */
        const char *identity_token; /* OAuth2 refresh token for the realm */
        const char *registry_token; /* bearer token sent to the registry as is */
};

/* Owned strings, NULL when absent; all NULL means anonymous. */
struct pinlet_creds {
        char *username;
        char *password;
        char *identity_token;
        char *registry_token;
        const char *source; /* static text for messages: "pull request", "docker config" */
};

bool pinlet_creds_empty(const struct pinlet_creds *c);
void pinlet_creds_clear(struct pinlet_creds *c);

/*
 * The registry host a credential key names, normalized for comparison: scheme and path
 * dropped, lowercased, Docker Hub's aliases (index.docker.io, registry-1.docker.io,
 * registry.hub.docker.com) folded to "docker.io". "https://index.docker.io/v1/" ->
 * "docker.io"; "http://127.0.0.1:5000/v2" -> "127.0.0.1:5000". NULL on allocation failure.
 */
char *pinlet_creds_host_key(const char *s);

/* Whether a credential key (host, URL, or a host glob like "*.example.com") names the
 * registry domain (a normalized reference domain: "docker.io", "host:port"). */
bool pinlet_creds_key_matches(const char *key, const char *domain);

/* Decodes base64("user:pass"). PINLET_EINVAL if not base64 or without ':'. */
int pinlet_creds_decode_auth(const char *b64, char **ret_user, char **ret_pass);

/* Credentials from an AuthConfig for domain: 1 (and *ret filled) if it applies and holds
 * something, 0 if not, < 0 on a malformed `auth`. */
int pinlet_creds_from_auth(const struct pinlet_registry_auth *a, const char *domain,
                           struct pinlet_creds *ret, struct pinlet_error **err);

/* Credentials for domain from a Docker config.json text: 1 found, 0 none, < 0 malformed
 * (PINLET_EINVAL; the message names no secret). */
int pinlet_creds_from_docker_config(const char *json, size_t len, const char *domain,
                                    struct pinlet_creds *ret, struct pinlet_error **err);

/*
 * The full lookup: a (may be NULL), then each file of paths (NULL-terminated; "~/" is
 * $HOME; missing files are skipped, unreadable or malformed ones are skipped too and
 * reported at debug level), else anonymous. Always fills *ret on success.
 */
int pinlet_creds_lookup(char *const *paths, const struct pinlet_registry_auth *a,
                        const char *domain, struct pinlet_creds *ret, struct pinlet_error **err);

/* Hex SHA-256 over the credential: a cache key part that never reveals the secret.
 * Anonymous gives the hash of the empty credential. Returns 0, or -ENOMEM when the hash
 * could not be computed: the caller must fail then, because any fixed fallback value
 * would be a key shared by different credentials (one user's token served to another). */
int pinlet_creds_fingerprint(const struct pinlet_creds *c, char ret[static PINLET_SHA256_HEX_SIZE]);
