/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kubelet credential provider plugins, run the way kubelet runs them, so that pinlet
 * resolves a tag with the credentials kubelet would pull it with.
 *
 * Configuration: kubelet's --image-credential-provider-config file (CredentialProviderConfig,
 * apiVersion kubelet.config.k8s.io/v1 or v1beta1; YAML, or JSON when the text starts with
 * '{') and --image-credential-provider-bin-dir. Per provider: name, matchImages,
 * defaultCacheDuration, apiVersion (credentialprovider.kubelet.k8s.io/v1 or v1beta1), args,
 * env. Not supported: v1's tokenAttributes (service account tokens: pinlet has no pod
 * identity to ask a token for): a provider that sets it is refused.
 *
 * matchImages (kubelet's URLsMatchStr): "[scheme://]host[:port][/path]" globs. The host is
 * compared label by label with a glob per label ("*.example.com" matches "a.example.com",
 * not "a.b.example.com" nor "example.com"), the port must be the same (absent == absent),
 * and the glob's path must be a string prefix of the image's path. The same rule picks the
 * response's auth entries.
 *
 * Execution (kubelet's exec plugin): $bin_dir/<name> directly (no shell), the configured
 * args, the daemon's environment plus the configured env (a configured name replaces the
 * inherited one), a CredentialProviderRequest
 *   {"kind":"CredentialProviderRequest","apiVersion":<provider's>,"image":<image>}
 * on stdin. The image is the repository without tag, as kubelet passes it
 * ("registry.example:5000/team/app"). stdout is the response (at most
 * PINLET_CREDPROV_RESPONSE_MAX bytes), stderr is kept to PINLET_CREDPROV_STDERR_MAX bytes
 * and only shown at debug level (providers print tokens there sometimes). The child is
 * killed (SIGKILL) and reaped when the deadline passes; a non-zero exit, a signal, a
 * timeout or a bad response is an error naming the provider.
 *
 * Response (CredentialProviderResponse, same apiVersion as the request): cacheKeyType
 * Image|Registry|Global, cacheDuration (a Go duration; absent: the provider's
 * defaultCacheDuration; "0s": not cached), auth: match key -> {username, password}. Of the
 * keys that match the image, the first in reverse lexicographic order is used: kubelet's
 * keyring sorts its keys that way so that the longest, most specific one comes first.
 *
 * Cache: one answer per provider and cache key ("image", the registry host, or one global
 * entry), looked up in that order as kubelet does, until it expires; bounded (LRU,
 * PINLET_CREDPROV_CACHE_MAX entries). One provider runs one child at a time (the others
 * wait and then find its answer in the cache), so a provider runs once per cache period,
 * not once per call.
 *
 * Which provider: the first in the file whose matchImages match and whose answer has an
 * auth entry for the image.
 *
 * Secrets: responses hold passwords. They are never logged (not even at debug level),
 * erased when freed, and error messages quote no response text.
 *
 * Threads: a struct pinlet_credprov may be used from any number of threads. The parsers
 * and the matcher are pure (no I/O, no state).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/creds.h"
#include "util/error.h"

#define PINLET_CREDPROV_CONFIG_MAX   (1024 * 1024) /* bytes of the provider config file */
#define PINLET_CREDPROV_RESPONSE_MAX (1024 * 1024) /* bytes a provider may write to stdout */
#define PINLET_CREDPROV_STDERR_MAX   4096          /* bytes of stderr kept for debug logs */
#define PINLET_CREDPROV_CACHE_MAX    1024          /* cached answers (all providers) */
#define PINLET_CREDPROV_TIMEOUT_MS           \
        60000 /* kubelet's exec timeout; the \
               * resolution's deadline may be shorter */

/* One provider of the config file. Owned strings. */
struct pinlet_credprov_provider {
        char *name;
        char **match_images; /* NULL-terminated, at least one */
        uint64_t default_cache_ms;
        char *api_version;
        char **args;  /* NULL-terminated, may be NULL */
        char **env;   /* "NAME=value", NULL-terminated, may be NULL */
        char *source; /* "credential provider <name>": the creds' source text */
};

struct pinlet_credprov_config {
        struct pinlet_credprov_provider *providers;
        size_t n_providers;
};

/* Parses a CredentialProviderConfig. name is used in messages ("FILE: providers[1]: ...").
 * PINLET_EINVAL for anything kubelet's validation refuses, PINLET_E2BIG past
 * PINLET_CREDPROV_CONFIG_MAX. *ret is written only on success. */
int pinlet_credprov_config_parse(const char *data, size_t len, const char *name,
                                 struct pinlet_credprov_config *ret, struct pinlet_error **err);
/* Reads and parses path (symbolic links followed: kubelet's file is often one). */
int pinlet_credprov_config_load(const char *path, struct pinlet_credprov_config *ret,
                                struct pinlet_error **err);
void pinlet_credprov_config_free(struct pinlet_credprov_config *c);

/* Whether a matchImages glob (or a response auth key) matches image ("host[:port]/path",
 * a scheme allowed on either). Hosts compare case-insensitively. */
bool pinlet_credprov_match(const char *glob, const char *image);

enum pinlet_credprov_key_type {
        PINLET_CREDPROV_KEY_IMAGE,
        PINLET_CREDPROV_KEY_REGISTRY,
        PINLET_CREDPROV_KEY_GLOBAL,
};

/* One auth entry of a response; owned, erased when freed. */
struct pinlet_credprov_auth {
        char *match;
        char *username;
        char *password;
};

struct pinlet_credprov_response {
        enum pinlet_credprov_key_type key_type;
        bool has_duration; /* cacheDuration was given */
        uint64_t duration_ms;
        struct pinlet_credprov_auth *auth; /* in reverse lexicographic order of match */
        size_t n_auth;
};

/* Parses a CredentialProviderResponse; api_version is the one the request used (the
 * response must echo it). PINLET_EPROTO on anything malformed (the message quotes no
 * value), PINLET_E2BIG past PINLET_CREDPROV_RESPONSE_MAX. */
int pinlet_credprov_response_parse(const char *json, size_t len, const char *api_version,
                                   struct pinlet_credprov_response *ret, struct pinlet_error **err);
void pinlet_credprov_response_free(struct pinlet_credprov_response *r);

/* The entry of r that kubelet would use for image, or NULL. Borrowed from r. */
const struct pinlet_credprov_auth *
pinlet_credprov_response_best(const struct pinlet_credprov_response *r, const char *image);

/* A Go time.Duration string ("1h0m0s", "1.5h", "300ms", "0s") in milliseconds (rounded
 * down). -EINVAL when malformed or negative, -ERANGE when too large. */
int pinlet_credprov_parse_duration(const char *s, uint64_t *ret);

/* ---- the provider set: config, execution, cache ---- */

struct pinlet_credprov_options {
        const char *config_path; /* kubelet's CredentialProviderConfig file */
        const char *bin_dir;     /* where the provider executables are */
        size_t cache_max;        /* 0: PINLET_CREDPROV_CACHE_MAX */
        uint64_t timeout_ms;     /* per execution; 0: PINLET_CREDPROV_TIMEOUT_MS */
};

struct pinlet_credprov;

/* Loads the config (errors name the file) and checks that every provider's executable
 * exists in bin_dir (PINLET_EINVAL naming it otherwise). Copies what it keeps. */
int pinlet_credprov_new(const struct pinlet_credprov_options *o, struct pinlet_credprov **ret,
                        struct pinlet_error **err);
void pinlet_credprov_free(struct pinlet_credprov *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_credprov *, pinlet_credprov_free)

/*
 * Credentials for image ("host[:port]/path", no tag) from the providers: 1 with *ret
 * filled (source "credential provider <name>", valid while p lives), 0 when no provider
 * matches the image or none answered an auth entry for it, < 0 when a provider failed
 * (the message names the provider and the cause, never a secret). deadline_ms: absolute
 * pinlet_now_ms() time (<= 0: the provider timeout only).
 */
int pinlet_credprov_lookup(struct pinlet_credprov *p, const char *image, int64_t deadline_ms,
                           struct pinlet_creds *ret, struct pinlet_error **err);

/* Provider executions since creation (for tests and metrics). */
uint64_t pinlet_credprov_runs(struct pinlet_credprov *p);
