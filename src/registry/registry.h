/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Registry API V2 client: resolves name:tag to the digest the tag points at now.
 *
 *   HEAD /v2/<path>/manifests/<tag>   Accept: the four manifest media types
 *     200 + Docker-Content-Digest     -> that digest (validated)
 *     405/501, or 200 without digest  -> GET the manifest (at most 4 MiB), SHA-256 it, and
 *                                        check it against the header when one came
 *     401 + WWW-Authenticate          -> authenticate (Basic, or Bearer via the token
 *                                        realm) and retry once
 * A multi-arch tag resolves to the index (manifest list) digest: that is what containerd
 * records for the tag.
 *
 * Transport: https, verified against the system trust store or the host's ca_file,
 * with an optional client certificate; `insecure: true` registries are spoken to over
 * plain http:// (as containerd does for a host configured with an http server), and only
 * then may credentials travel unencrypted. `skip_verify` keeps https but does not verify.
 * Docker Hub ("docker.io") is served by registry-1.docker.io.
 *
 * Endpoints: a registry is asked through the ordered endpoints the runtime would use
 * (src/hosts: a host's `mirrors`, containerd's hosts_dir, containers' registries.conf),
 * each with its own URL, API root path, CAs, client certificate, skip_verify and extra
 * headers. Tag resolution and content by digest (pinlet_registry_fetch) go through the
 * same endpoint loop, filtered by containerd's capabilities: a tag needs "pull" and
 * "resolve", content "pull"; see pinlet_registry_resolve() for the fall-through rules.
 * Redirects are followed (at most PINLET_REGISTRY_MAX_REDIRECTS); the Authorization
 * header goes only to the registry's own origin (scheme, host, port) or, for token
 * requests, the realm's; an https -> http redirect is refused.
 *
 * Threads: one struct pinlet_registry serves any number of threads at once. Easy handles
 * are pooled (each keeps its own live connections, so sequential resolutions reuse them);
 * DNS and TLS sessions are shared through a locked CURLSH; tokens and the auth scheme each
 * registry asked for are kept in bounded LRUs (util/lru), each under its own mutex
 * (token_cache_max and auth_hints_max in the options).
 *
 * Response headers are read with curl_easy_header(); all of one exchange's header lines
 * together are capped at PINLET_REGISTRY_HEADERS_MAX, and a response past the cap (or a
 * single line past curl's own limit) is PINLET_EPROTO naming the host. Registry hosts
 * compare case-insensitively everywhere: option lookups and redirect origins.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hosts/hosts.h"
#include "ref/ref.h"
#include "registry/creds.h"
#include "util/error.h"
#include "util/time.h"

#define PINLET_MANIFEST_MAX           (4 * 1024 * 1024) /* bytes of manifest body */
#define PINLET_REGISTRY_HEADERS_MAX   (64 * 1024)       /* bytes of one response's headers */
#define PINLET_REGISTRY_MAX_REDIRECTS 5
#define PINLET_REGISTRY_POOL_MAX      16  /* idle easy handles kept */
#define PINLET_REGISTRY_HINTS_MAX     256 /* registries whose auth scheme is remembered */

/* The four manifest types, in the Accept header of every manifest request: without the
 * OCI ones distribution 2.8 answers 404 for OCI images, without the list types it answers
 * a child manifest for multi-arch tags, and without any it converts schema2 to schema1. */
#define PINLET_MT_OCI_INDEX    "application/vnd.oci.image.index.v1+json"
#define PINLET_MT_DOCKER_LIST  "application/vnd.docker.distribution.manifest.list.v2+json"
#define PINLET_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define PINLET_MT_DOCKER_V2    "application/vnd.docker.distribution.manifest.v2+json"

struct pinlet_registry;

/* Result of one resolution; free the strings with pinlet_resolution_done(). */
struct pinlet_resolution {
        char *digest;         /* "sha256:<hex>" (or sha384/sha512 when the registry says so) */
        char *media_type;     /* Content-Type of the manifest, NULL if the registry sent none */
        uint64_t size;        /* manifest size in bytes, 0 if unknown */
        char *endpoint;       /* the endpoint that answered: "https://mirror.example:5000" */
        unsigned round_trips; /* HTTP requests made (manifest, token, redirects) */
        double registry_ms;   /* wall time spent, milliseconds */
};

/* Counters since creation (monotonic, relaxed atomics): for tests and metrics. */
struct pinlet_registry_stats {
        uint64_t requests;          /* every HTTP request, redirects included */
        uint64_t manifest_requests; /* HEAD/GET of a manifest (each redirect hop counts) */
        uint64_t token_requests;    /* requests to a token realm */
        uint64_t resolutions;       /* pinlet_registry_resolve() calls */
};

/* Transport settings of one registry host (or token realm host). Borrowed strings. */
struct pinlet_registry_host {
        const char *host;      /* "host[:port]" as in a reference domain, default port left
                                * out; compared case-insensitively (hosts are) */
        const char *ca_file;   /* PEM CA trusted in addition to the system store, or NULL */
        const char *cert_file; /* PEM client certificate, or NULL */
        const char *key_file;  /* its private key, or NULL */
        bool insecure;         /* plain http:// (as containerd does for an http server) */
        bool skip_verify;      /* https without certificate verification */
        /* Mirrors of this registry, tried in order before it, with the semantics of
         * containerd's [host."URL"] entries (no scheme: https; "/v2" appended to a path).
         * NULL-terminated; NULL: the hosts files (hosts_dir, registries_conf) decide. */
        char *const *mirrors;
};

/*
 * What the client needs to know, and nothing else of the daemon's configuration (the
 * CLI builds it from struct pinlet_config: pinlet_cli_registry_options()). Plain data
 * with borrowed pointers: pinlet_registry_new() copies what it keeps, so the options
 * may be freed right after it returns.
 */
struct pinlet_registry_options {
        uint64_t connect_timeout_ms;      /* per connection; 0: bounded by the resolution only */
        uint64_t resolve_timeout_ms;      /* one whole resolution; 0: the caller's deadline only */
        char *const *docker_config_paths; /* NULL-terminated, "~/" is $HOME; NULL: none */
        const struct pinlet_registry_host *hosts; /* at most one entry per host */
        size_t n_hosts;
        size_t token_cache_max; /* bearer tokens kept; 0: PINLET_TOKEN_CACHE_MAX */
        size_t auth_hints_max;  /* 0: PINLET_REGISTRY_HINTS_MAX */
        /* kubelet credential provider plugins (registry/credprov.h): consulted when
         * neither the request nor the Docker config files have credentials for the
         * registry. Both or neither; NULL: none. */
        const char *credential_provider_config; /* CredentialProviderConfig file */
        const char *credential_provider_bin_dir;
        /* Where the runtime pulls from (src/hosts): containerd's registry host directory
         * and containers' registries.conf (+ ".d" drop-ins). Re-read whenever they change.
         * NULL: not used. A host's `mirrors` above win over both. */
        const char *hosts_dir;
        const char *registries_conf;
        const char *short_name_aliases; /* hosts.h; only with registries_conf */
};

/* The entry of o for host ("host[:port]"), compared case-insensitively: "Reg.Example"
 * finds the entry of "reg.example". NULL when there is none. */
const struct pinlet_registry_host *
pinlet_registry_options_host(const struct pinlet_registry_options *o, const char *host);

/*
 * Creates a client with a copy of o. Checks that the ca/cert/key files named by o->hosts
 * are readable (PINLET_EINVAL naming the host and the file) and that no host is listed
 * twice, case aside (PINLET_EINVAL). Loads the credential provider config, when o names
 * one (its errors name the file and the provider).
 */
int pinlet_registry_new(const struct pinlet_registry_options *o, struct pinlet_registry **ret,
                        struct pinlet_error **err);
void pinlet_registry_free(struct pinlet_registry *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_registry *, pinlet_registry_free)

/* The client's registry host configuration (hosts_dir, registries_conf), for callers that
 * qualify short names as the runtime does (pinlet_hosts_short_name()). Lives as long as
 * the client. */
struct pinlet_hosts *pinlet_registry_hosts(struct pinlet_registry *r);

/* A registry that registries.conf marks `blocked`: not resolved, the runtime refuses it. */
#define PINLET_REGISTRY_EBLOCKED (-EPERM)

/*
 * Resolves ref's tag (ref->tag must be set; a digest in ref is ignored) to a digest.
 * auth: the caller's credentials (CRI AuthConfig), or NULL. Credentials are, in this order:
 * the AuthConfig when it applies to the registry, the node's Docker config files, the
 * credential providers whose matchImages match "<domain>/<path>", anonymous. A provider
 * that fails fails the resolution (PINLET_EUNAVAIL, PINLET_ETIMEOUT or PINLET_EPROTO, the
 * message naming the provider). deadline_ms: absolute pinlet_now_ms() time (<= 0: none);
 * the whole resolution also stops after the resolve_timeout_ms of the options.
 *
 * Errors (the message names the image, the registry and the cause, never a secret):
 *   PINLET_ENOTFOUND tag or repository unknown      PINLET_EUNAUTH  credentials refused
 *   PINLET_EUNAVAIL  network error, 5xx, 429        PINLET_ETIMEOUT out of time
 *   PINLET_EPROTO    bad/mismatching digest, bad JSON, oversized response, bad redirect
 *   PINLET_ETLS      certificate or handshake failure   PINLET_EINVAL ref without tag
 *   PINLET_REGISTRY_EBLOCKED  registries.conf blocks the registry
 * *ret is written only on success.
 *
 * Endpoints (one loop for every request, shared with pinlet_registry_fetch()): the
 * registry's endpoints in order (its `mirrors`, else hosts_dir's hosts.toml, else
 * registries.conf, else https://<registry>). A tag is asked only of endpoints with both
 * the "pull" and the "resolve" capability, as containerd's resolver filters hosts for a
 * tag. Like containerd's resolver, an endpoint that fails (connection refused, timeout,
 * TLS, any HTTP error status, 404 for the manifest) is skipped for the next and the first
 * answer wins; ret->endpoint names it. When all fail, the error is the first failure that
 * was not a 404, else PINLET_ENOTFOUND. The settings of a `hosts` entry (ca_file, client
 * certificate, insecure, skip_verify) win over the file's for the endpoint host it names;
 * hosts.toml [header]s go to their endpoint. Credentials: the request's, or the Docker
 * config's for the endpoint host (the registry's own domain for its own server).
 */
int pinlet_registry_resolve(struct pinlet_registry *r, const struct pinlet_ref *ref,
                            const struct pinlet_registry_auth *auth, int64_t deadline_ms,
                            struct pinlet_resolution *ret, struct pinlet_error **err);

void pinlet_resolution_done(struct pinlet_resolution *res);

/* Content fetched by digest; release with pinlet_fetched_done(). */
struct pinlet_fetched {
        char *data; /* the body, NUL-terminated (len excludes it) */
        size_t len;
        char *media_type; /* Content-Type without parameters, NULL when none was sent */
        char *endpoint;   /* the endpoint that answered: "http://mirror.example:5000" */
};

/*
 * GET <endpoint>/v2/<path>/<kind>/<digest>, kind "manifests" or "blobs", through the same
 * endpoints, credentials, TLS settings, headers, redirect rules and token handling as
 * pinlet_registry_resolve() (ref's tag and digest are ignored: only its domain and path
 * count), with containerd's fetcher's filter: content by digest comes from every endpoint
 * with the "pull" capability (a pull-only mirror serves it; a resolve-only one does not).
 * So a fetch reaches an air-gapped registry's mirrors exactly as the runtime's pull does.
 * The body must hold at most max bytes (PINLET_EPROTO past it) and hash to digest
 * (PINLET_EPROTO "digest mismatch"): content by digest is what the digest names or
 * nothing, from whichever endpoint. Manifests are asked for with the four manifest types
 * in Accept. Errors as pinlet_registry_resolve(), plus PINLET_EINVAL for a kind or digest
 * that is not valid. *ret is written only on success.
 */
int pinlet_registry_fetch(struct pinlet_registry *r, const struct pinlet_ref *ref, const char *kind,
                          const char *digest, size_t max, const struct pinlet_registry_auth *auth,
                          int64_t deadline_ms, struct pinlet_fetched *ret,
                          struct pinlet_error **err);
void pinlet_fetched_done(struct pinlet_fetched *f);

void pinlet_registry_get_stats(struct pinlet_registry *r, struct pinlet_registry_stats *ret);

/* The host that serves a reference domain's API: "docker.io" -> "registry-1.docker.io",
 * others unchanged. Static or borrowed string. */
const char *pinlet_registry_api_host(const char *domain);
