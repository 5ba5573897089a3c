/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pinlet's configuration: the YAML file (default /etc/pinlet/config.yaml) with command-line
 * flags applied on top. Plain data, filled once at start and read-only afterwards, so any
 * thread may read it without locking.
 *
 * Every field has a default (pinlet_config_init); the file only overrides. A string list
 * (strv) is a NULL-terminated array of owned strings; NULL means empty.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

#define PINLET_DEFAULT_CONFIG    "/etc/pinlet/config.yaml"
#define PINLET_DEFAULT_LISTEN    "/run/pinlet/pinlet.sock"
#define PINLET_DEFAULT_RUNTIME   "unix:///run/containerd/containerd.sock"
#define PINLET_DEFAULT_STATE_DIR "/var/lib/pinlet"
#define PINLET_DEFAULT_AUDIT_LOG "/var/log/pinlet/audit.jsonl"
/* The one default for max_message_size, kubelet's own CRI limit; every module takes the
 * configured value (cfg->max_message_size) rather than a copy of this. */
#define PINLET_DEFAULT_MAX_MESSAGE     (16u * 1024 * 1024)
#define PINLET_MAX_MESSAGE_MIN         (4u * 1024 * 1024) /* gRPC's own default */
#define PINLET_MAX_MESSAGE_MAX         (1024u * 1024 * 1024)
#define PINLET_DEFAULT_KUBELET_CREDS   "/var/lib/kubelet/config.json"
#define PINLET_DEFAULT_HOSTS_DIR       "/etc/containerd/certs.d"
#define PINLET_DEFAULT_REGISTRIES_CONF "/etc/containers/registries.conf"
/* containers' machine-written short-name aliases (root's), read beside the default
 * registries.conf in front of CRI-O */
#define PINLET_DEFAULT_SHORT_NAME_ALIASES "/var/cache/containers/short-name-aliases.conf"

enum pinlet_mode {
        PINLET_MODE_ENFORCE, /* rewrite tags to digests */
        PINLET_MODE_AUDIT,   /* resolve and record what would change; forward unchanged */
        PINLET_MODE_OFF,     /* pure pass-through */
};

enum pinlet_on_failure {
        PINLET_FAIL_UNSET = -1, /* per-registry only: use the global setting */
        PINLET_FAIL_CLOSED = 0, /* the CRI call fails with a "pinlet: ..." status */
        PINLET_FAIL_OPEN = 1,   /* the original request goes through, warned and audited */
};

/* lock.require: what happens to an in-scope image that no lock file (lock.paths) pins.
 * The lock files themselves are read by the resolution chain (design: lock files -> pin
 * store -> cache -> registry); this is only the setting. */
enum pinlet_lock_require {
        PINLET_LOCK_REQUIRE_OFF,     /* lock files pin what they name; others resolve as usual */
        PINLET_LOCK_REQUIRE_AUDIT,   /* as off, and each image missing from them is audited */
        PINLET_LOCK_REQUIRE_ENFORCE, /* an image missing from them is refused (enforce mode) */
};

/* Globs (fnmatch(3) without FNM_PATHNAME, so '*' crosses '/') matched against the
 * normalized registry host ("docker.io", "registry.corp.example:5000"), the normalized
 * repository ("docker.io/library/nginx") and the pod namespace. */
struct pinlet_scope {
        char **registries;
        char **repositories;
        char **namespaces;
};

struct pinlet_registry_config {
        char *host; /* map key "host[:port]" as in a reference's domain, lower-cased at
                     * load (hosts are case-insensitive; keys equal after that are an
                     * error naming both lines) */
        char *ca_file;
        char *cert_file;
        char *key_file;
        bool insecure;    /* plain HTTP (http://) instead of https, as containerd does */
        bool skip_verify; /* TLS without certificate verification: warned about at start */
        char **mirrors;   /* endpoints tried before the registry, in order, with containerd's
                           * [host."URL"] semantics (no scheme: https); NULL: the hosts
                           * files decide (hosts_dir, registries_conf) */
        enum pinlet_on_failure on_failure;
};

struct pinlet_config {
        char *path; /* file the settings came from, NULL when none was read */

        /* proxy */
        char *listen;           /* unix socket path */
        mode_t socket_mode;     /* default 0660 */
        uid_t socket_uid;       /* (uid_t)-1: leave as created */
        gid_t socket_gid;       /* (gid_t)-1: leave as created */
        char *runtime_endpoint; /* "unix:///path" or "unix:/path" or a gRPC target */
        char *image_endpoint;   /* NULL: same as runtime_endpoint */
        size_t max_message_size;
        uint64_t shutdown_grace_ms; /* in-flight unary calls get this long on SIGTERM */

        /* logging */
        int log_level;  /* enum pinlet_log_level */
        int log_format; /* enum pinlet_log_format */

        /* policy */
        enum pinlet_mode mode;
        enum pinlet_on_failure on_failure; /* never UNSET here */
        struct pinlet_scope include;       /* empty: everything is in scope */
        struct pinlet_scope exclude;

        /* state and audit */
        char *state_dir;
        char *audit_file;  /* NULL or "" disables the file; "-" means stderr */
        bool audit_stderr; /* also write audit records to stderr */

        /* resolution cache */
        uint64_t cache_ttl_ms;            /* default 30 s */
        uint64_t cache_stale_if_error_ms; /* default 10 min */
        uint64_t cache_negative_ttl_ms;   /* tag-not-found, default 5 s */
        uint64_t cache_error_ttl_ms;      /* a registry that failed to answer is remembered
                                           * as failing this long, default 5 s; 0: never */
        size_t cache_max_entries;         /* default 10000 */
        size_t pins_max_entries;          /* default 10000 */

        /* registry client */
        uint64_t connect_timeout_ms;    /* default 5 s */
        uint64_t resolve_timeout_ms;    /* default 15 s; never exceeds the CRI call's deadline */
        unsigned workers;               /* resolution worker threads, default 8 */
        unsigned resolver_per_registry; /* concurrent resolutions per registry host (compared
                                         * case-insensitively), default 4, 1 .. 1024 */
        char **docker_config_paths;     /* default kubelet's, then ~/.docker/config.json */
        /* kubelet credential provider plugins (credentials.provider_config, kubelet's
         * --image-credential-provider-config, and credentials.provider_bin_dir, its
         * --image-credential-provider-bin-dir): both absolute paths, or neither (NULL).
         * The file itself is read by the registry client (registry/credprov.h). */
        char *provider_config;
        char *provider_bin_dir;
        /* Where the runtime pulls from. NULL: not set, so the runtime's own default applies
         * when it exists (containerd: /etc/containerd/certs.d, CRI-O:
         * /etc/containers/registries.conf; see PINLET_DEFAULT_HOSTS_DIR); "": off. */
        char *hosts_dir;
        char *registries_conf;
        struct pinlet_registry_config *registries;
        size_t n_registries;

        /* lock files */
        /* metrics and health endpoint: "HOST:PORT" or "unix:/PATH"; NULL: off */
        char *metrics_listen;
        unsigned metrics_max_other_registries; /* registry label values beyond the configured
                                                * ones (default 50), then "other" */

        char **lock_paths; /* absolute paths of lock files, or of directories holding them;
                            * default none */
        enum pinlet_lock_require lock_require; /* default off; audit and enforce need
                                                * lock_paths */

        /* image verifiers (include/pinlet/verifier.h, src/verify) */
        char *verifiers_bin_dir;                     /* absolute; NULL: nothing is verified */
        unsigned verifiers_max;                      /* first N entries run, default 10 */
        uint64_t verifiers_timeout_ms;               /* per verifier run, default 10 s */
        enum pinlet_on_failure verifiers_on_failure; /* a verifier that cannot run, crashes
                                                      * or times out; default closed */
        uint64_t verifiers_cache_ttl_ms; /* allow verdicts, default 10 min (deny verdicts:
                                          * at most PINLET_VERIFY_DENY_TTL_MAX_MS) */
};

/* Fills cfg with defaults; cfg must later be released with pinlet_config_free(). */
int pinlet_config_init(struct pinlet_config *cfg);

/*
 * Reads a YAML file over the current values. Errors name the file, line and key:
 * "/etc/pinlet/config.yaml:12: key 'cache.ttl': invalid duration '3 parsecs'". Besides the
 * schema, the file is refused when it nests deeper than 64 levels, holds a NUL byte in any
 * key or value (the "\0" escapes), holds a second YAML document, or names one registry
 * host twice (also in different case). When missing_ok is set, a file that does not
 * exist is not an error (the default path).
 * Returns 0, or a negative code with *err set; cfg may then hold a partial update.
 */
int pinlet_config_load(struct pinlet_config *cfg, const char *path, bool missing_ok,
                       struct pinlet_error **err);

/* The same, from memory; name is used in messages (and for cfg->path). */
int pinlet_config_load_buffer(struct pinlet_config *cfg, const char *name, const char *data,
                              size_t len, struct pinlet_error **err);

/* Validates cross-field constraints after flags were applied (for example cert_file
 * without key_file). */
int pinlet_config_validate(const struct pinlet_config *cfg, struct pinlet_error **err);

void pinlet_config_free(struct pinlet_config *cfg);

/* The registry entry for a host ("host[:port]"), or NULL. The host compares
 * case-insensitively: "Reg.Example" finds the entry written "reg.example" (or
 * "REG.example"); the port must be the same ("r.example" is not "r.example:443"). */
const struct pinlet_registry_config *pinlet_config_registry(const struct pinlet_config *cfg,
                                                            const char *host);

/* "10s", "500ms", "2m", "1h", "1h30m" or a bare number of seconds -> milliseconds. */
int pinlet_parse_duration_ms(const char *s, uint64_t *ret);
/* "16777216", "16MiB", "64KiB", "1GiB" -> bytes. */
int pinlet_parse_size(const char *s, size_t *ret);

const char *pinlet_mode_to_string(enum pinlet_mode m);
int pinlet_mode_from_string(const char *s, enum pinlet_mode *ret);
const char *pinlet_on_failure_to_string(enum pinlet_on_failure f);
int pinlet_on_failure_from_string(const char *s, enum pinlet_on_failure *ret);
const char *pinlet_lock_require_to_string(enum pinlet_lock_require r);
int pinlet_lock_require_from_string(const char *s, enum pinlet_lock_require *ret);

/* strv helpers */
void pinlet_strv_free(char **v);
size_t pinlet_strv_length(char *const *v);
int pinlet_strv_push(char ***v, const char *s); /* copies s */
