/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where the runtime pulls an image's tags from: the ordered list of endpoints that
 * containerd (its registry host directory, hosts.toml) or CRI-O (containers'
 * registries.conf) would try for a registry host, so that pinlet asks the same endpoints
 * with the same TLS settings, in the same order, and pins what the runtime would pull.
 *
 * containerd (docs/hosts.md, containerd 1.6 and 1.7), for a registry R ("host[:port]",
 * Docker Hub "docker.io"): the first directory that exists of <hosts_dir>/R and
 * <hosts_dir>/_default is used. In it, hosts.toml when present and not empty:
 *   server = "https://R"           (default; docker.io: https://registry-1.docker.io)
 *   capabilities = ["pull", "resolve", "push"]   (absent: all)
 *   ca = "file" | ["file", ...]    (relative paths are relative to the directory)
 *   client = "cert" | ["cert", ...] | [["cert", "key"], ...]  (no key: the cert file)
 *   skip_verify = bool, override_path = bool, [header] name = "v" | ["v", ...]
 *   [host."https://mirror:5000"] with the same keys, tried in file order before server.
 * A URL without a scheme gets https://; its path (default none) gets "/v2" appended
 * unless override_path is set. Without hosts.toml the directory is read as Docker's
 * certificate layout: *.crt are CAs, X.cert + X.key a client pair (one without the
 * other is an error, as in containerd). No directory at all: https://R alone.
 * The registry client filters the list by capability as containerd does: a tag is asked
 * only of endpoints with "pull" and "resolve", content by digest of those with "pull".
 *
 * registries.conf (containers-registries.conf(5), v2 format only) plus the drop-ins
 * registries.conf.d/ *.conf in lexical order (a [[registry]] with the same prefix
 * replaces the earlier one; unqualified-search-registries is replaced when set; aliases
 * merge): the [[registry]] whose prefix matches "R/repo" longest ("*.example.com"
 * matches hosts under example.com) gives its mirrors in file order, then location
 * (default: the prefix). Mirrors whose pull-from-mirror is "digest-only", and every
 * mirror when mirror-by-digest-only = true, have the "pull" capability only (content by
 * digest, never a tag); the others, and location, "pull" and "resolve". (A "tag-only"
 * mirror thus also serves content by digest to pinlet's fetches: the signature of an
 * image resolved there comes from there, as CRI-O's pull by tag would take it.)
 * `insecure` is https without verification, then plain http (as containers' docker
 * transport falls back). `blocked` marks the list blocked.
 *
 * Change detection: pinlet_hosts_lookup() re-reads a file only when the stat(2) signature
 * (device, inode, size, mtime) of one of the files and directories involved changed, so
 * an edit, a rename over, a new or deleted file all apply to the next resolution, with no
 * restart and no inotify.
 *
 * Thread-safety: a struct pinlet_hosts serves any number of threads (one mutex around its
 * cache); a struct pinlet_hosts_list is immutable and reference counted.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "hosts/toml.h"
#include "util/error.h"

#define PINLET_HOSTS_CAP_PULL    (1u << 0)
#define PINLET_HOSTS_CAP_RESOLVE (1u << 1)
#define PINLET_HOSTS_CAP_PUSH    (1u << 2)
#define PINLET_HOSTS_CAP_ALL \
        (PINLET_HOSTS_CAP_PULL | PINLET_HOSTS_CAP_RESOLVE | PINLET_HOSTS_CAP_PUSH)

#define PINLET_HOSTS_ENDPOINTS_MAX 64  /* endpoints of one registry */
#define PINLET_HOSTS_CACHE_MAX     256 /* registries whose lists are kept */
#define PINLET_HOSTS_DIR_FILES_MAX 256 /* files read in a certificate directory */

/* One endpoint: all strings owned by the list. */
struct pinlet_hosts_endpoint {
        char *url;  /* "scheme://host[:port]", scheme and host lowercased, no path */
        char *host; /* "host[:port]" of url, the default port left out */
        char *path; /* API root: "/v2", "/prefix/v2", or an override_path as written */
        char *repo; /* repository path at this endpoint (registries.conf may rewrite it),
                     * NULL: the reference's own */
        unsigned caps;
        char **ca_files; /* strv of absolute paths, NULL: none */
        char **cert_files;
        char **key_files; /* same length as cert_files */
        bool skip_verify;
        char **headers; /* strv of "Name: value" lines */
};

/* The endpoints for one registry, in the order they are tried. */
struct pinlet_hosts_list {
        atomic_uint refs;
        struct pinlet_hosts_endpoint *v;
        size_t n;
        char *source; /* the file or directory they came from; NULL: the default */
        bool blocked; /* registries.conf blocked = true: do not resolve */
};

struct pinlet_hosts_list *pinlet_hosts_list_ref(struct pinlet_hosts_list *l);
void pinlet_hosts_list_unref(struct pinlet_hosts_list *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_hosts_list *, pinlet_hosts_list_unref)

/* The endpoint a registry is served by when nothing is configured: "https://R", Docker
 * Hub's API host for docker.io. *ret is a list of one. */
int pinlet_hosts_default(const char *registry, struct pinlet_hosts_list **ret,
                         struct pinlet_error **err);

/* pinlet's own `registries.<host>.mirrors`: each URL as a [host."URL"] entry (all
 * capabilities), then the registry's default server. PINLET_EINVAL naming a bad URL. */
int pinlet_hosts_from_urls(const char *registry, char *const *urls, struct pinlet_hosts_list **ret,
                           struct pinlet_error **err);

/*
 * containerd: parses one hosts.toml (data, len; name for messages) for registry
 * ("host[:port]"); base_dir makes relative file names absolute. Unknown keys are ignored
 * as containerd ignores them; keys of the wrong type are errors naming file and line.
 */
int pinlet_hosts_containerd_parse(const char *name, const char *data, size_t len,
                                  const char *registry, const char *base_dir,
                                  struct pinlet_hosts_list **ret, struct pinlet_error **err);

/* containerd: the list for registry under hosts_dir, read now (no cache). */
int pinlet_hosts_containerd_read(const char *hosts_dir, const char *registry,
                                 struct pinlet_hosts_list **ret, struct pinlet_error **err);

/* ---- registries.conf ---- */

struct pinlet_regconf;

/* An empty configuration; add files with pinlet_regconf_add(). */
int pinlet_regconf_new(struct pinlet_regconf **ret);
void pinlet_regconf_free(struct pinlet_regconf *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_regconf *, pinlet_regconf_free)

/* Merges one file's content over c (drop-in semantics). */
int pinlet_regconf_add(struct pinlet_regconf *c, const char *name, const char *data, size_t len,
                       struct pinlet_error **err);

/* Merges only the [aliases] of one file over c, as containers reads its machine-written
 * short-name-aliases.conf (other keys are ignored). */
int pinlet_regconf_add_aliases(struct pinlet_regconf *c, const char *name, const char *data,
                               size_t len, struct pinlet_error **err);

/* Reads path (may be missing when dropin_dir holds files) then dropin_dir/ *.conf. */
int pinlet_regconf_read(const char *path, const char *dropin_dir, struct pinlet_regconf **ret,
                        struct pinlet_error **err);

/* The list for the repository "R/path" (registry and repository path apart). */
int pinlet_regconf_endpoints(const struct pinlet_regconf *c, const char *registry, const char *path,
                             struct pinlet_hosts_list **ret, struct pinlet_error **err);

/*
 * A short name ("nginx", "library/nginx", "team/app": the repository as written, without
 * registry, tag or digest) as CRI-O qualifies it for a CRI call. CRI-O resolves short names
 * with containers' short-name-mode forced to "disabled" whatever registries.conf says: an
 * alias (the [aliases] table, drop-ins merged, the last file naming it wins, "" erases it;
 * short-name-aliases.conf, when read, wins over them all) is used alone; otherwise every
 * unqualified-search-registries entry is tried in order and the first that has the image wins.
 * pinlet follows that where the outcome is one registry:
 *   - an alias: returns 1, *ret_name the alias ("registry/path", as written);
 *   - docker.io first, or a single search registry: returns 1, *ret_name
 *     "docker.io/library/nginx", "docker.io/team/app", "registry.corp/nginx". When other
 *     search registries follow docker.io, *ret_reason is set too: docker.io's answer is
 *     the runtime's, but a failure there is not (the runtime would go on to the next), so
 *     the caller passes the name through with that reason when docker.io does not answer;
 *   - otherwise (several search registries, docker.io not first; none at all): returns 0
 *     with *ret_reason ("short name 'nginx' is ambiguous: unqualified-search-registries
 *     has quay.io, docker.io").
 * -ENOMEM. *ret_name and *ret_reason are set to NULL first; the caller frees both.
 */
int pinlet_regconf_short_name(const struct pinlet_regconf *c, const char *name, char **ret_name,
                              char **ret_reason);

/* ---- the cached source the registry client asks ---- */

struct pinlet_hosts_options {
        const char *hosts_dir;         /* containerd's config_path; NULL: not used */
        const char *registries_conf;   /* NULL: not used */
        const char *registries_conf_d; /* NULL: registries_conf + ".d" */
        /* containers' machine-written aliases (root: /var/cache/containers/
         * short-name-aliases.conf), whose [aliases] win over registries.conf's; may be
         * missing. NULL: not used. Only with registries_conf. */
        const char *short_name_aliases;
};

struct pinlet_hosts;

int pinlet_hosts_new(const struct pinlet_hosts_options *o, struct pinlet_hosts **ret,
                     struct pinlet_error **err);
void pinlet_hosts_free(struct pinlet_hosts *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_hosts *, pinlet_hosts_free)

/*
 * The endpoints for the repository path of registry: hosts_dir when set, else
 * registries_conf when set, else the default. A configuration error (a bad file) is an
 * error naming the file: the runtime would fail the same pull. *ret: a reference the
 * caller drops with pinlet_hosts_list_unref().
 */
int pinlet_hosts_lookup(struct pinlet_hosts *h, const char *registry, const char *path,
                        struct pinlet_hosts_list **ret, struct pinlet_error **err);

/*
 * pinlet_regconf_short_name() against h's registries.conf as it is now (re-read when one
 * of its files changed, as for pinlet_hosts_lookup()). Without registries_conf: no alias
 * and no search registries (returns 0: CRI-O refuses short names then). A file that does
 * not parse is an error naming it (the runtime would fail the pull too).
 */
int pinlet_hosts_short_name(struct pinlet_hosts *h, const char *name, char **ret_name,
                            char **ret_reason, struct pinlet_error **err);
