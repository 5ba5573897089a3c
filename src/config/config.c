/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <yaml.h>

#include "config/config.h"
#include "util/log.h"

void pinlet_strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

size_t pinlet_strv_length(char *const *v)
{
        size_t n = 0;

        while (v && v[n])
                n++;
        return n;
}

int pinlet_strv_push(char ***v, const char *s)
{
        size_t n = pinlet_strv_length(*v);
        char **nv, *copy;

        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        nv = realloc(*v, (n + 2) * sizeof(char *));
        if (!nv) {
                free(copy);
                return -ENOMEM;
        }
        nv[n] = copy;
        nv[n + 1] = NULL;
        *v = nv;
        return 0;
}

int pinlet_config_init(struct pinlet_config *cfg)
{
        const char *home = getenv("HOME");
        _cleanup_free_ char *user_creds = NULL;

        *cfg = (struct pinlet_config){
                .socket_mode = 0660,
                .socket_uid = (uid_t)-1,
                .socket_gid = (gid_t)-1,
                .max_message_size = PINLET_DEFAULT_MAX_MESSAGE,
                .shutdown_grace_ms = 10000,
                .log_level = PINLET_LOG_INFO,
                .log_format = PINLET_LOG_TEXT,
                .mode = PINLET_MODE_ENFORCE,
                .on_failure = PINLET_FAIL_CLOSED,
                .cache_ttl_ms = 30000,
                .cache_stale_if_error_ms = 600000,
                .cache_negative_ttl_ms = 5000,
                .cache_error_ttl_ms = 5000,
                .cache_max_entries = 10000,
                .pins_max_entries = 10000,
                .connect_timeout_ms = 5000,
                .resolve_timeout_ms = 15000,
                .workers = 8,
                .resolver_per_registry = 4,
                .metrics_max_other_registries = 50,
                .lock_require = PINLET_LOCK_REQUIRE_OFF,
                .verifiers_max = 10,
                .verifiers_timeout_ms = 10000,
                .verifiers_on_failure = PINLET_FAIL_CLOSED,
                .verifiers_cache_ttl_ms = 600000,
        };
        cfg->listen = strdup(PINLET_DEFAULT_LISTEN);
        cfg->runtime_endpoint = strdup(PINLET_DEFAULT_RUNTIME);
        cfg->state_dir = strdup(PINLET_DEFAULT_STATE_DIR);
        cfg->audit_file = strdup(PINLET_DEFAULT_AUDIT_LOG);
        if (!cfg->listen || !cfg->runtime_endpoint || !cfg->state_dir || !cfg->audit_file)
                return -ENOMEM;
        if (pinlet_strv_push(&cfg->docker_config_paths, PINLET_DEFAULT_KUBELET_CREDS) < 0)
                return -ENOMEM;
        if (home && *home) {
                if (asprintf(&user_creds, "%s/.docker/config.json", home) < 0)
                        return -ENOMEM;
                if (pinlet_strv_push(&cfg->docker_config_paths, user_creds) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static void scope_free(struct pinlet_scope *s)
{
        pinlet_strv_free(s->registries);
        pinlet_strv_free(s->repositories);
        pinlet_strv_free(s->namespaces);
        *s = (struct pinlet_scope){};
}

static void registry_config_free(struct pinlet_registry_config *r)
{
        free(r->host);
        free(r->ca_file);
        free(r->cert_file);
        free(r->key_file);
        pinlet_strv_free(r->mirrors);
}

void pinlet_config_free(struct pinlet_config *cfg)
{
        free(cfg->path);
        free(cfg->listen);
        free(cfg->runtime_endpoint);
        free(cfg->image_endpoint);
        free(cfg->state_dir);
        free(cfg->audit_file);
        scope_free(&cfg->include);
        scope_free(&cfg->exclude);
        pinlet_strv_free(cfg->docker_config_paths);
        free(cfg->provider_config);
        free(cfg->provider_bin_dir);
        for (size_t i = 0; i < cfg->n_registries; i++)
                registry_config_free(&cfg->registries[i]);
        free(cfg->registries);
        pinlet_strv_free(cfg->lock_paths);
        free(cfg->metrics_listen);
        free(cfg->hosts_dir);
        free(cfg->registries_conf);
        free(cfg->verifiers_bin_dir);
        *cfg = (struct pinlet_config){};
}

const struct pinlet_registry_config *pinlet_config_registry(const struct pinlet_config *cfg,
                                                            const char *host)
{
        /* Hosts are stored lower-case (load_registries); the one asking may hold a domain as
         * written in a reference ("Reg.Example"). pinlet never calls setlocale(3), so this
         * folds ASCII only, as DNS does. */
        for (size_t i = 0; i < cfg->n_registries; i++)
                if (strcasecmp(cfg->registries[i].host, host) == 0)
                        return &cfg->registries[i];
        return NULL;
}

/* ---- scalar parsers ------------------------------------------------------------------ */

int pinlet_parse_duration_ms(const char *s, uint64_t *ret)
{
        static const struct {
                const char *unit;
                uint64_t ms;
        } units[] = {
                /* longest first so "ms" is not read as "m" followed by junk */
                { "ms", 1 },
                { "s", 1000 },
                { "m", 60000 },
                { "h", 3600000 },
        };
        uint64_t total = 0;
        const char *p = s;

        if (!s || !*s)
                return -EINVAL;
        /* A bare number is seconds. */
        if (strspn(s, "0123456789") == strlen(s)) {
                errno = 0;
                unsigned long long v = strtoull(s, NULL, 10);
                if (errno || v > UINT64_MAX / 1000)
                        return -ERANGE;
                *ret = (uint64_t)v * 1000;
                return 0;
        }
        while (*p) {
                char *end;
                size_t i;

                if (!isdigit((unsigned char)*p))
                        return -EINVAL;
                errno = 0;
                unsigned long long v = strtoull(p, &end, 10);
                if (errno)
                        return -ERANGE;
                for (i = 0; i < ELEMENTSOF(units); i++)
                        if (strncmp(end, units[i].unit, strlen(units[i].unit)) == 0)
                                break;
                if (i == ELEMENTSOF(units))
                        return -EINVAL;
                if (v > (UINT64_MAX - total) / units[i].ms)
                        return -ERANGE;
                total += (uint64_t)v * units[i].ms;
                p = end + strlen(units[i].unit);
        }
        *ret = total;
        return 0;
}

int pinlet_parse_size(const char *s, size_t *ret)
{
        static const struct {
                const char *suffix;
                size_t factor;
        } suffixes[] = {
                { "", 1 },           { "B", 1 },    { "KiB", 1u << 10 }, { "MiB", 1u << 20 },
                { "GiB", 1u << 30 }, { "K", 1000 }, { "M", 1000000 },    { "G", 1000000000 },
        };
        char *end;

        if (!s || !isdigit((unsigned char)*s))
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno)
                return -ERANGE;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
                if (strcmp(end, suffixes[i].suffix) == 0) {
                        if (v > SIZE_MAX / suffixes[i].factor)
                                return -ERANGE;
                        *ret = (size_t)v * suffixes[i].factor;
                        return 0;
                }
        return -EINVAL;
}

static const char *const mode_names[] = {
        [PINLET_MODE_ENFORCE] = "enforce",
        [PINLET_MODE_AUDIT] = "audit",
        [PINLET_MODE_OFF] = "off",
};

const char *pinlet_mode_to_string(enum pinlet_mode m)
{
        return (unsigned)m < ELEMENTSOF(mode_names) ? mode_names[m] : "unknown";
}

int pinlet_mode_from_string(const char *s, enum pinlet_mode *ret)
{
        for (size_t i = 0; i < ELEMENTSOF(mode_names); i++)
                if (strcmp(s, mode_names[i]) == 0) {
                        *ret = (enum pinlet_mode)i;
                        return 0;
                }
        return -EINVAL;
}

const char *pinlet_on_failure_to_string(enum pinlet_on_failure f)
{
        switch (f) {
        case PINLET_FAIL_CLOSED:
                return "closed";
        case PINLET_FAIL_OPEN:
                return "open";
        default:
                return "unset";
        }
}

int pinlet_on_failure_from_string(const char *s, enum pinlet_on_failure *ret)
{
        if (strcmp(s, "closed") == 0)
                *ret = PINLET_FAIL_CLOSED;
        else if (strcmp(s, "open") == 0)
                *ret = PINLET_FAIL_OPEN;
        else
                return -EINVAL;
        return 0;
}

static const char *const lock_require_names[] = {
        [PINLET_LOCK_REQUIRE_OFF] = "off",
        [PINLET_LOCK_REQUIRE_AUDIT] = "audit",
        [PINLET_LOCK_REQUIRE_ENFORCE] = "enforce",
};

const char *pinlet_lock_require_to_string(enum pinlet_lock_require r)
{
        return (unsigned)r < ELEMENTSOF(lock_require_names) ? lock_require_names[r] : "unknown";
}

int pinlet_lock_require_from_string(const char *s, enum pinlet_lock_require *ret)
{
        for (size_t i = 0; i < ELEMENTSOF(lock_require_names); i++)
                if (strcmp(s, lock_require_names[i]) == 0) {
                        *ret = (enum pinlet_lock_require)i;
                        return 0;
                }
        return -EINVAL;
}

static int parse_bool(const char *s, bool *ret)
{
        /* The YAML 1.1 spellings people write in config files; nothing more exotic. */
        static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "on" };
        static const char *const no[] = { "false", "False", "FALSE", "no", "No", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *ret)
{
        char *end;

        if (!isdigit((unsigned char)*s))
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

/* ---- the schema ---------------------------------------------------------------------- */

enum key_type {
        K_STRING,       /* char *; an empty value stores NULL */
        K_PATH_OR_OFF,  /* char *; NULL when unset (or null), "" when set to "" (off) */
        K_BOOL,         /* bool */
        K_DURATION,     /* uint64_t milliseconds */
        K_SIZE,         /* size_t bytes */
        K_COUNT,        /* size_t, 1 .. 100000000 */
        K_UINT,         /* unsigned, key.min .. key.max */
        K_FILE_MODE,    /* mode_t, octal */
        K_USER,         /* uid_t, name or number */
        K_GROUP,        /* gid_t, name or number */
        K_LOG_LEVEL,    /* int */
        K_LOG_FORMAT,   /* int */
        K_MODE,         /* enum pinlet_mode */
        K_ON_FAILURE,   /* enum pinlet_on_failure */
        K_LOCK_REQUIRE, /* enum pinlet_lock_require */
        K_STRV,         /* char **: a sequence of strings (or one string) */
        K_SECTION,      /* a mapping described by children */
        K_REGISTRIES,   /* the registries map */
};

struct key {
        const char *name;
        enum key_type type;
        size_t offset; /* into struct pinlet_config, or pinlet_registry_config for those keys */
        const struct key *children;
        unsigned min, max; /* K_UINT's range */
};

#define CFG(field) offsetof(struct pinlet_config, field)
#define REG(field) offsetof(struct pinlet_registry_config, field)

static const struct key socket_keys[] = {
        { "mode", K_FILE_MODE, CFG(socket_mode) },
        { "owner", K_USER, CFG(socket_uid) },
        { "group", K_GROUP, CFG(socket_gid) },
        {},
};
static const struct key log_keys[] = {
        { "level", K_LOG_LEVEL, CFG(log_level) },
        { "format", K_LOG_FORMAT, CFG(log_format) },
        {},
};
static const struct key include_keys[] = {
        { "registries", K_STRV, CFG(include.registries) },
        { "repositories", K_STRV, CFG(include.repositories) },
        { "namespaces", K_STRV, CFG(include.namespaces) },
        {},
};
static const struct key exclude_keys[] = {
        { "registries", K_STRV, CFG(exclude.registries) },
        { "repositories", K_STRV, CFG(exclude.repositories) },
        { "namespaces", K_STRV, CFG(exclude.namespaces) },
        {},
};
static const struct key scope_keys[] = {
        { "include", K_SECTION, 0, include_keys },
        { "exclude", K_SECTION, 0, exclude_keys },
        {},
};
static const struct key audit_keys[] = {
        { "file", K_STRING, CFG(audit_file) },
        { "stderr", K_BOOL, CFG(audit_stderr) },
        {},
};
static const struct key cache_keys[] = {
        { "ttl", K_DURATION, CFG(cache_ttl_ms) },
        { "stale_if_error", K_DURATION, CFG(cache_stale_if_error_ms) },
        { "negative_ttl", K_DURATION, CFG(cache_negative_ttl_ms) },
        { "error_ttl", K_DURATION, CFG(cache_error_ttl_ms) },
        { "max_entries", K_COUNT, CFG(cache_max_entries) },
        {},
};
static const struct key pins_keys[] = {
        { "max_entries", K_COUNT, CFG(pins_max_entries) },
        {},
};
static const struct key resolver_keys[] = {
        { "connect_timeout", K_DURATION, CFG(connect_timeout_ms) },
        { "timeout", K_DURATION, CFG(resolve_timeout_ms) },
        { "workers", K_UINT, CFG(workers), .min = 1, .max = 256 },
        { "per_registry", K_UINT, CFG(resolver_per_registry), .min = 1, .max = 1024 },
        {},
};
static const struct key credentials_keys[] = {
        { "docker_config", K_STRV, CFG(docker_config_paths) },
        { "provider_config", K_STRING, CFG(provider_config) },
        { "provider_bin_dir", K_STRING, CFG(provider_bin_dir) },
        {},
};
static const struct key metrics_keys[] = {
        { "listen", K_STRING, CFG(metrics_listen) },
        { "max_other_registries", K_UINT, CFG(metrics_max_other_registries), .min = 1,
          .max = 10000 },
        {},
};
static const struct key lock_keys[] = {
        { "paths", K_STRV, CFG(lock_paths) },
        { "require", K_LOCK_REQUIRE, CFG(lock_require) },
        {},
};
/* containerd's image_verifier bindir settings, under pinlet's names (README, Verifiers) */
static const struct key verifiers_keys[] = {
        { "bin_dir", K_STRING, CFG(verifiers_bin_dir) },
        { "max", K_UINT, CFG(verifiers_max), .min = 1, .max = 1000 },
        { "timeout", K_DURATION, CFG(verifiers_timeout_ms) },
        { "on_failure", K_ON_FAILURE, CFG(verifiers_on_failure) },
        { "cache_ttl", K_DURATION, CFG(verifiers_cache_ttl_ms) },
        {},
};
static const struct key registry_keys[] = {
        { "ca_file", K_STRING, REG(ca_file) },           { "cert_file", K_STRING, REG(cert_file) },
        { "key_file", K_STRING, REG(key_file) },         { "insecure", K_BOOL, REG(insecure) },
        { "skip_verify", K_BOOL, REG(skip_verify) },     { "mirrors", K_STRV, REG(mirrors) },
        { "on_failure", K_ON_FAILURE, REG(on_failure) }, {},
};
static const struct key root_keys[] = {
        { "listen", K_STRING, CFG(listen) },
        { "socket", K_SECTION, 0, socket_keys },
        { "runtime_endpoint", K_STRING, CFG(runtime_endpoint) },
        { "image_endpoint", K_STRING, CFG(image_endpoint) },
        { "max_message_size", K_SIZE, CFG(max_message_size) },
        { "shutdown_grace", K_DURATION, CFG(shutdown_grace_ms) },
        { "log", K_SECTION, 0, log_keys },
        { "mode", K_MODE, CFG(mode) },
        { "on_failure", K_ON_FAILURE, CFG(on_failure) },
        { "scope", K_SECTION, 0, scope_keys },
        { "state_dir", K_STRING, CFG(state_dir) },
        { "audit", K_SECTION, 0, audit_keys },
        { "cache", K_SECTION, 0, cache_keys },
        { "pins", K_SECTION, 0, pins_keys },
        { "resolver", K_SECTION, 0, resolver_keys },
        { "credentials", K_SECTION, 0, credentials_keys },
        { "registries", K_REGISTRIES, 0 },
        { "hosts_dir", K_PATH_OR_OFF, CFG(hosts_dir) },
        { "registries_conf", K_PATH_OR_OFF, CFG(registries_conf) },
        { "lock", K_SECTION, 0, lock_keys },
        { "metrics", K_SECTION, 0, metrics_keys },
        { "verifiers", K_SECTION, 0, verifiers_keys },
        {},
};

/* ---- walking the YAML document --------------------------------------------------------- */

struct loader {
        const char *path;
        yaml_document_t *doc;
        struct pinlet_error **err;
};

static unsigned long node_line(const yaml_node_t *n)
{
        return (unsigned long)n->start_mark.line + 1;
}

_printf_(5, 6) static int fail(struct loader *l, const yaml_node_t *n, int code, const char *key,
                               const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (key)
                return pinlet_error_set(l->err, code, "%s:%lu: key '%s': %s", l->path, node_line(n),
                                        key, strempty(msg));
        return pinlet_error_set(l->err, code, "%s:%lu: %s", l->path, node_line(n), strempty(msg));
}

static const char *scalar(const yaml_node_t *n)
{
        return (const char *)n->data.scalar.value;
}

static bool scalar_is_null(const yaml_node_t *n)
{
        const char *s = scalar(n);

        /* An unquoted empty value, "~" or "null" is YAML's null. */
        return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
               (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0);
}

static int set_string(char **field, const char *v)
{
        char *c = NULL;

        if (v && *v) {
                c = strdup(v);
                if (!c)
                        return -ENOMEM;
        }
        free(*field);
        *field = c;
        return 0;
}

static int load_strv(struct loader *l, const yaml_node_t *n, const char *key, char ***field)
{
        char **v = NULL;

        if (n->type == YAML_SCALAR_NODE) {
                if (!scalar_is_null(n) && pinlet_strv_push(&v, scalar(n)) < 0)
                        return -ENOMEM;
        } else if (n->type == YAML_SEQUENCE_NODE) {
                for (yaml_node_item_t *i = n->data.sequence.items.start;
                     i < n->data.sequence.items.top; i++) {
                        yaml_node_t *item = yaml_document_get_node(l->doc, *i);

                        if (!item || item->type != YAML_SCALAR_NODE) {
                                pinlet_strv_free(v);
                                return fail(l, item ? item : n, -EINVAL, key,
                                            "expected a list of strings");
                        }
                        if (pinlet_strv_push(&v, scalar(item)) < 0) {
                                pinlet_strv_free(v);
                                return -ENOMEM;
                        }
                }
        } else
                return fail(l, n, -EINVAL, key, "expected a list of strings");
        pinlet_strv_free(*field);
        *field = v;
        return 0;
}

static int load_scalar(struct loader *l, const yaml_node_t *n, const struct key *k, const char *key,
                       void *base)
{
        void *field = (char *)base + k->offset;
        const char *v;
        int r = 0;

        if (n->type != YAML_SCALAR_NODE)
                return fail(l, n, -EINVAL, key, "expected a single value");
        v = scalar(n);

        switch (k->type) {
        case K_STRING:
                r = set_string(field, scalar_is_null(n) ? NULL : v);
                if (r < 0)
                        return pinlet_error_set(l->err, r, "out of memory");
                return 0;
        case K_PATH_OR_OFF: {
                /* "" is a setting of its own here: "use no file", unlike unset */
                char *c = scalar_is_null(n) ? NULL : strdup(v);

                if (!scalar_is_null(n) && !c)
                        return pinlet_error_set(l->err, -ENOMEM, "out of memory");
                free(*(char **)field);
                *(char **)field = c;
                return 0;
        }
        case K_BOOL:
                if (parse_bool(v, field) < 0)
                        return fail(l, n, -EINVAL, key,
                                    "invalid boolean '%s' (expected true "
                                    "or false)",
                                    v);
                return 0;
        case K_DURATION:
                if (pinlet_parse_duration_ms(v, field) < 0)
                        return fail(l, n, -EINVAL, key,
                                    "invalid duration '%s' (expected e.g. 500ms, 30s, 5m, 1h)", v);
                return 0;
        case K_SIZE:
                if (pinlet_parse_size(v, field) < 0)
                        return fail(l, n, -EINVAL, key,
                                    "invalid size '%s' (expected bytes or e.g. 16MiB)", v);
                return 0;
        case K_COUNT: {
                unsigned long long c;
                if (parse_uint(v, 100000000, &c) < 0 || c == 0)
                        return fail(l, n, -EINVAL, key,
                                    "invalid count '%s' (expected 1 to 100000000)", v);
                *(size_t *)field = (size_t)c;
                return 0;
        }
        case K_UINT: {
                unsigned long long c;
                if (parse_uint(v, k->max, &c) < 0 || c < k->min)
                        return fail(l, n, -EINVAL, key, "invalid number '%s' (expected %u to %u)",
                                    v, k->min, k->max);
                *(unsigned *)field = (unsigned)c;
                return 0;
        }
        case K_FILE_MODE: {
                char *end;
                errno = 0;
                unsigned long m = strtoul(v, &end, 8);
                if (!*v || *end || errno || m > 07777)
                        return fail(l, n, -EINVAL, key,
                                    "invalid file mode '%s' (expected octal, e.g. \"0660\")", v);
                *(mode_t *)field = (mode_t)m;
                return 0;
        }
        case K_USER: {
                unsigned long long id;
                struct passwd *pw;
                if (parse_uint(v, (uid_t)-2, &id) == 0) {
                        *(uid_t *)field = (uid_t)id;
                        return 0;
                }
                pw = getpwnam(v);
                if (!pw)
                        return fail(l, n, -EINVAL, key, "unknown user '%s'", v);
                *(uid_t *)field = pw->pw_uid;
                return 0;
        }
        case K_GROUP: {
                unsigned long long id;
                struct group *gr;
                if (parse_uint(v, (gid_t)-2, &id) == 0) {
                        *(gid_t *)field = (gid_t)id;
                        return 0;
                }
                gr = getgrnam(v);
                if (!gr)
                        return fail(l, n, -EINVAL, key, "unknown group '%s'", v);
                *(gid_t *)field = gr->gr_gid;
                return 0;
        }
        case K_LOG_LEVEL: {
                enum pinlet_log_level lv;
                if (pinlet_log_level_from_string(v, &lv) < 0)
                        return fail(l, n, -EINVAL, key,
                                    "invalid log level '%s' (expected "
                                    "error, warn, info or debug)",
                                    v);
                *(int *)field = (int)lv;
                return 0;
        }
        case K_LOG_FORMAT: {
                enum pinlet_log_format f;
                if (pinlet_log_format_from_string(v, &f) < 0)
                        return fail(l, n, -EINVAL, key,
                                    "invalid log format '%s' (expected text or json)", v);
                *(int *)field = (int)f;
                return 0;
        }
        case K_MODE:
                if (pinlet_mode_from_string(v, field) < 0)
                        return fail(l, n, -EINVAL, key,
                                    "invalid mode '%s' (expected enforce, audit or off)", v);
                return 0;
        case K_ON_FAILURE:
                if (pinlet_on_failure_from_string(v, field) < 0)
                        return fail(l, n, -EINVAL, key,
                                    "invalid on_failure '%s' (expected closed or open)", v);
                return 0;
        case K_LOCK_REQUIRE:
                if (pinlet_lock_require_from_string(v, field) < 0)
                        return fail(l, n, -EINVAL, key,
                                    "invalid lock requirement '%s' (expected off, audit or "
                                    "enforce)",
                                    v);
                return 0;
        default:
                return fail(l, n, -EINVAL, key, "internal error: unexpected key type");
        }
}

static int load_mapping(struct loader *l, const yaml_node_t *n, const struct key *table,
                        const char *prefix, void *base);

static int load_registries(struct loader *l, const yaml_node_t *n, const char *key,
                           struct pinlet_config *cfg)
{
        if (n->type == YAML_SCALAR_NODE && scalar_is_null(n))
                return 0;
        if (n->type != YAML_MAPPING_NODE)
                return fail(l, n, -EINVAL, key, "expected a map of registry hosts");

        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
                yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
                _cleanup_free_ char *path = NULL, *lower = NULL;
                struct pinlet_registry_config *regs, *reg;
                const char *host;
                int r;

                if (!k || !v || k->type != YAML_SCALAR_NODE)
                        return fail(l, n, -EINVAL, key, "registry hosts must be strings");
                host = scalar(k);
                if (!*host || strpbrk(host, "/ \t") || strstr(host, "://"))
                        return fail(l, k, -EINVAL, key,
                                    "invalid registry host '%s' (expected host[:port], no "
                                    "scheme or path)",
                                    host);
                lower = strdup(host);
                if (!lower)
                        return pinlet_error_set(l->err, -ENOMEM, "out of memory");
                /* Stored lower-case: the form registry.c derives from URLs, and what
                 * pinlet_ref_host_key() gives for a reference. */
                for (char *c = lower; *c; c++)
                        *c = (char)tolower((unsigned char)*c);
                /* Registry hosts are case-insensitive (DNS names), so two keys differing
                 * only in case would be two entries for one host, and which one a lookup
                 * finds would depend on their order. Refuse them, naming both lines. */
                for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
                        yaml_node_t *qk = yaml_document_get_node(l->doc, q->key);

                        if (!qk || qk->type != YAML_SCALAR_NODE ||
                            strcasecmp(scalar(qk), host) != 0)
                                continue;
                        if (strcmp(scalar(qk), host) == 0)
                                return fail(l, k, -EINVAL, key,
                                            "duplicate key '%s' (line %lu and line %lu)", host,
                                            node_line(k), node_line(qk));
                        return fail(l, k, -EINVAL, key,
                                    "duplicate keys after normalization: '%s' (line %lu) and "
                                    "'%s' (line %lu) are both registry '%s'",
                                    host, node_line(k), scalar(qk), node_line(qk), lower);
                }
                /* Also across files loaded one over the other. */
                if (pinlet_config_registry(cfg, lower))
                        return fail(l, k, -EINVAL, key, "registry '%s' is listed twice", lower);
                if (asprintf(&path, "%s.%s", key, lower) < 0)
                        return pinlet_error_set(l->err, -ENOMEM, "out of memory");

                regs = realloc(cfg->registries, (cfg->n_registries + 1) * sizeof(*regs));
                if (!regs)
                        return pinlet_error_set(l->err, -ENOMEM, "out of memory");
                cfg->registries = regs;
                reg = &regs[cfg->n_registries];
                *reg = (struct pinlet_registry_config){ .on_failure = PINLET_FAIL_UNSET };
                reg->host = TAKE_PTR(lower);
                cfg->n_registries++;
                if (v->type == YAML_SCALAR_NODE && scalar_is_null(v))
                        continue;
                r = load_mapping(l, v, registry_keys, path, reg);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int load_mapping(struct loader *l, const yaml_node_t *n, const struct key *table,
                        const char *prefix, void *base)
{
        if (n->type == YAML_SCALAR_NODE && scalar_is_null(n))
                return 0; /* "cache:" with nothing under it */
        if (n->type != YAML_MAPPING_NODE)
                return prefix ? fail(l, n, -EINVAL, prefix, "expected a mapping")
                              : fail(l, n, -EINVAL, NULL, "expected a mapping at the top level");

        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
                yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
                _cleanup_free_ char *key = NULL;
                const struct key *d = NULL;
                int r;

                if (!k || !v || k->type != YAML_SCALAR_NODE)
                        return fail(l, k ? k : n, -EINVAL, prefix, "keys must be strings");
                if (asprintf(&key, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", scalar(k)) <
                    0)
                        return pinlet_error_set(l->err, -ENOMEM, "out of memory");

                /* Duplicate keys: YAML forbids them and libyaml does not check. */
                for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
                        yaml_node_t *qk = yaml_document_get_node(l->doc, q->key);
                        if (qk && qk->type == YAML_SCALAR_NODE &&
                            strcmp(scalar(qk), scalar(k)) == 0)
                                return fail(l, k, -EINVAL, key, "duplicate key");
                }

                for (const struct key *t = table; t->name; t++)
                        if (strcmp(t->name, scalar(k)) == 0) {
                                d = t;
                                break;
                        }
                if (!d && table == registry_keys && strcmp(scalar(k), "mirror") == 0)
                        return pinlet_error_set(l->err, -EINVAL,
                                                "%s:%lu: unknown key '%s' (replaced by "
                                                "'mirrors: [URL, ...]')",
                                                l->path, node_line(k), key);
                if (!d)
                        return pinlet_error_set(l->err, -EINVAL, "%s:%lu: unknown key '%s'",
                                                l->path, node_line(k), key);

                switch (d->type) {
                case K_SECTION:
                        r = load_mapping(l, v, d->children, key, base);
                        break;
                case K_REGISTRIES:
                        r = load_registries(l, v, key, base);
                        break;
                case K_STRV:
                        r = load_strv(l, v, key, (char ***)((char *)base + d->offset));
                        if (r == -ENOMEM)
                                r = pinlet_error_set(l->err, r, "out of memory");
                        break;
                default:
                        r = load_scalar(l, v, d, key, base);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

#define CONFIG_MAX_SIZE (1024 * 1024) /* a config file is small; refuse anything huge */
/* pinlet's own schema nests 4 levels (scope.include.registries[]); 64 leaves room for any
 * honest file and refuses the pathological ones early. */
#define CONFIG_MAX_DEPTH 64

/* libyaml gives reader errors (invalid UTF-8, control characters such as a raw NUL byte)
 * a byte offset and leaves problem_mark at zero; the other errors carry a mark. */
static unsigned long problem_line(const yaml_parser_t *parser, const char *data, size_t len)
{
        unsigned long line = 1;
        size_t end;

        if (parser->error != YAML_READER_ERROR)
                return (unsigned long)parser->problem_mark.line + 1;
        end = parser->problem_offset < len ? parser->problem_offset : len;
        for (const char *c = data; (c = memchr(c, '\n', end - (size_t)(c - data))); c++)
                line++;
        return line;
}

static int yaml_failed(const yaml_parser_t *parser, const char *name, const char *data, size_t len,
                       struct pinlet_error **err)
{
        if (parser->error == YAML_MEMORY_ERROR)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        return pinlet_error_set(err, -EINVAL, "%s:%lu: invalid YAML: %s", name,
                                problem_line(parser, data, len),
                                parser->problem ? parser->problem : "parse error");
}

/*
 * A first pass over the event stream, before yaml_parser_load builds the document, for
 * what the tree cannot tell or would tell too late:
 *  - depth: libyaml sets no limit, and its scanner spends time quadratic in the nesting
 *    (100000 '[' took 37 s) before the loader builds one node per level. Counting here
 *    stops at the 65th level, having read a few hundred bytes.
 *  - NUL bytes: the "\0", "\x00" and "\u0000" escapes of quoted scalars decode to NUL; the
 *    value would silently end there as a C string ("/tmp/a\0b" read as "/tmp/a"). libyaml
 *    reports each scalar's length, so compare it with strlen(), for keys and values alike.
 *  - a second document: yaml_parser_load reads one and would silently ignore the rest.
 * Parsing twice costs little for a file capped at CONFIG_MAX_SIZE.
 */
static int check_events(const char *name, const char *data, size_t len, struct pinlet_error **err)
{
        yaml_parser_t parser;
        unsigned depth = 0, documents = 0;
        bool done = false;
        int r = 0;

        if (!yaml_parser_initialize(&parser))
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
        while (!done && r == 0) {
                yaml_event_t ev;
                unsigned long line;

                if (!yaml_parser_parse(&parser, &ev)) {
                        r = yaml_failed(&parser, name, data, len, err);
                        break;
                }
                line = (unsigned long)ev.start_mark.line + 1;
                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        if (++documents > 1)
                                r = pinlet_error_set(err, -EINVAL,
                                                     "%s:%lu: a second YAML document (the "
                                                     "configuration is exactly one)",
                                                     name, line);
                        break;
                case YAML_SEQUENCE_START_EVENT:
                case YAML_MAPPING_START_EVENT:
                        if (++depth > CONFIG_MAX_DEPTH)
                                r = pinlet_error_set(err, -EINVAL,
                                                     "%s:%lu: nesting deeper than %d levels", name,
                                                     line, CONFIG_MAX_DEPTH);
                        break;
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT:
                        depth--;
                        break;
                case YAML_SCALAR_EVENT:
                        if (strlen((const char *)ev.data.scalar.value) != ev.data.scalar.length)
                                r = pinlet_error_set(err, -EINVAL,
                                                     "%s:%lu: NUL byte in a string (from an "
                                                     "escape such as \\0)",
                                                     name, line);
                        break;
                default:
                        break;
                }
                yaml_event_delete(&ev);
        }
        yaml_parser_delete(&parser);
        return r;
}

int pinlet_config_load_buffer(struct pinlet_config *cfg, const char *name, const char *data,
                              size_t len, struct pinlet_error **err)
{
        yaml_parser_t parser;
        yaml_document_t doc;
        yaml_node_t *root;
        struct loader l = { .path = name, .doc = &doc, .err = err };
        int r;

        if (len > CONFIG_MAX_SIZE)
                return pinlet_error_set(err, -E2BIG, "%s: larger than %d bytes", name,
                                        CONFIG_MAX_SIZE);
        r = check_events(name, data, len, err);
        if (r < 0)
                return r;
        if (!yaml_parser_initialize(&parser))
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
        if (!yaml_parser_load(&parser, &doc)) {
                r = yaml_failed(&parser, name, data, len, err);
                yaml_parser_delete(&parser);
                return r;
        }
        yaml_parser_delete(&parser);

        root = yaml_document_get_root_node(&doc);
        r = root ? load_mapping(&l, root, root_keys, NULL, cfg) : 0; /* empty file: defaults */
        yaml_document_delete(&doc);
        if (r < 0)
                return r;
        if (set_string(&cfg->path, name) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        return 0;
}

int pinlet_config_load(struct pinlet_config *cfg, const char *path, bool missing_ok,
                       struct pinlet_error **err)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *data = NULL;
        struct stat st;
        size_t len = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT && missing_ok)
                        return 0;
                return pinlet_error_set(err, -errno, "%s: %s", path, strerror(errno));
        }
        if (fstat(fd, &st) < 0)
                return pinlet_error_set(err, -errno, "%s: %s", path, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return pinlet_error_set(err, -EINVAL, "%s: not a regular file", path);
        if (st.st_size > CONFIG_MAX_SIZE)
                return pinlet_error_set(err, -E2BIG, "%s: larger than %d bytes", path,
                                        CONFIG_MAX_SIZE);
        data = malloc((size_t)st.st_size + 1);
        if (!data)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        while (len < (size_t)st.st_size) {
                ssize_t n = read(fd, data + len, (size_t)st.st_size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return pinlet_error_set(err, -errno, "%s: %s", path, strerror(errno));
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        return pinlet_config_load_buffer(cfg, path, data, len, err);
}

static bool endpoint_valid(const char *e)
{
        /* gRPC targets pinlet supports for the runtime: unix sockets (as kubelet writes
         * them) and plain host:port for tests and remote runtimes. */
        return e && *e && !strpbrk(e, " \t\n");
}

int pinlet_config_validate(const struct pinlet_config *cfg, struct pinlet_error **err)
{
        const char *where = cfg->path ? cfg->path : "configuration";

        if (!cfg->listen || cfg->listen[0] != '/')
                return pinlet_error_set(err, -EINVAL,
                                        "%s: key 'listen': must be an absolute socket path", where);
        if (strlen(cfg->listen) >= 108) /* sizeof(sockaddr_un.sun_path) */
                return pinlet_error_set(
                        err, -EINVAL, "%s: key 'listen': socket path longer than 107 bytes", where);
        if (!endpoint_valid(cfg->runtime_endpoint))
                return pinlet_error_set(err, -EINVAL,
                                        "%s: key 'runtime_endpoint': invalid endpoint '%s'", where,
                                        strempty(cfg->runtime_endpoint));
        if (cfg->image_endpoint && !endpoint_valid(cfg->image_endpoint))
                return pinlet_error_set(err, -EINVAL,
                                        "%s: key 'image_endpoint': invalid endpoint '%s'", where,
                                        cfg->image_endpoint);
        if (cfg->max_message_size < PINLET_MAX_MESSAGE_MIN ||
            cfg->max_message_size > PINLET_MAX_MESSAGE_MAX)
                return pinlet_error_set(err, -EINVAL,
                                        "%s: key 'max_message_size': must be between 4MiB and "
                                        "1GiB",
                                        where);
        if (!cfg->state_dir || cfg->state_dir[0] != '/')
                return pinlet_error_set(err, -EINVAL,
                                        "%s: key 'state_dir': must be an absolute path", where);
        if (cfg->resolve_timeout_ms == 0 || cfg->connect_timeout_ms == 0)
                return pinlet_error_set(
                        err, -EINVAL, "%s: key 'resolver': timeouts must be greater than 0", where);
        /* The loader checks these ranges; command-line flags come after it. */
        if (cfg->workers == 0 || cfg->workers > 256)
                return pinlet_error_set(err, -EINVAL,
                                        "%s: key 'resolver.workers': must be between 1 and 256",
                                        where);
        if (cfg->resolver_per_registry == 0 || cfg->resolver_per_registry > 1024)
                return pinlet_error_set(
                        err, -EINVAL, "%s: key 'resolver.per_registry': must be between 1 and 1024",
                        where);
        /* kubelet needs both flags for plugins; one alone is a half-done configuration */
        if (!!cfg->provider_config != !!cfg->provider_bin_dir)
                return pinlet_error_set(err, -EINVAL,
                                        "%s: keys 'credentials.provider_config' and "
                                        "'credentials.provider_bin_dir' must be given together",
                                        where);
        if (cfg->provider_config &&
            (cfg->provider_config[0] != '/' || cfg->provider_bin_dir[0] != '/'))
                return pinlet_error_set(err, -EINVAL,
                                        "%s: keys 'credentials.provider_config' and "
                                        "'credentials.provider_bin_dir' must be absolute paths",
                                        where);
        for (char **p = cfg->lock_paths; p && *p; p++)
                if (**p != '/')
                        return pinlet_error_set(err, -EINVAL,
                                                "%s: key 'lock.paths': '%s' is not an absolute "
                                                "path",
                                                where, *p);
        if (cfg->hosts_dir && *cfg->hosts_dir && cfg->hosts_dir[0] != '/')
                return pinlet_error_set(err, -EINVAL,
                                        "%s: key 'hosts_dir': must be an absolute path", where);
        if (cfg->registries_conf && *cfg->registries_conf && cfg->registries_conf[0] != '/')
                return pinlet_error_set(
                        err, -EINVAL, "%s: key 'registries_conf': must be an absolute path", where);
        /* Requiring lock files without naming any would refuse (or flag) every image. */
        if (cfg->lock_require != PINLET_LOCK_REQUIRE_OFF &&
            pinlet_strv_length(cfg->lock_paths) == 0)
                return pinlet_error_set(err, -EINVAL,
                                        "%s: key 'lock.require': '%s' needs lock files in "
                                        "lock.paths",
                                        where, pinlet_lock_require_to_string(cfg->lock_require));
        /* verifiers run as root from this directory: a relative path would depend on the
         * daemon's working directory */
        if (cfg->verifiers_bin_dir && cfg->verifiers_bin_dir[0] != '/')
                return pinlet_error_set(err, -EINVAL,
                                        "%s: key 'verifiers.bin_dir': must be an absolute path",
                                        where);
        if (cfg->verifiers_timeout_ms == 0)
                return pinlet_error_set(
                        err, -EINVAL, "%s: key 'verifiers.timeout': must be greater than 0", where);
        if (cfg->verifiers_max == 0 || cfg->verifiers_max > 1000)
                return pinlet_error_set(
                        err, -EINVAL, "%s: key 'verifiers.max': must be between 1 and 1000", where);
        for (size_t i = 0; i < cfg->n_registries; i++) {
                const struct pinlet_registry_config *r = &cfg->registries[i];

                if (!!r->cert_file != !!r->key_file)
                        return pinlet_error_set(err, -EINVAL,
                                                "%s: key 'registries.%s': cert_file and "
                                                "key_file must be given together",
                                                where, r->host);
                for (char **m = r->mirrors; m && *m; m++)
                        if (!**m || strpbrk(*m, " \t\r\n"))
                                return pinlet_error_set(err, -EINVAL,
                                                        "%s: key 'registries.%s.mirrors': '%s' "
                                                        "is not a URL",
                                                        where, r->host, *m);
                if (r->insecure && r->skip_verify)
                        return pinlet_error_set(err, -EINVAL,
                                                "%s: key 'registries.%s': insecure (plain "
                                                "HTTP) and skip_verify (TLS) exclude each "
                                                "other",
                                                where, r->host);
        }
        return 0;
}
