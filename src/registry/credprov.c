/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kubelet credential provider plugins: the config parser, the matchImages matcher, the
 * response parser (all pure), and the provider set that runs the plugins and caches their
 * answers. See credprov.h for the contract; kubelet's pkg/credentialprovider/plugin is the
 * behaviour this follows.
 */
#include <ctype.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <yaml.h>

#include "registry/credprov.h"
#include "util/buf.h"
#include "util/io.h"
#include "util/log.h"
#include "util/spawn.h"
#include "util/lru.h"
#include "util/time.h"

extern char **environ;

#define CONFIG_DEPTH_MAX 32 /* nesting of the config document; kubelet's needs 4 */

static const char *const config_api_versions[] = {
        "kubelet.config.k8s.io/v1",
        "kubelet.config.k8s.io/v1beta1",
};
static const char *const provider_api_versions[] = {
        "credentialprovider.kubelet.k8s.io/v1",
        "credentialprovider.kubelet.k8s.io/v1beta1",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (streq_ptr(s, list[i]))
                        return true;
        return false;
}

static void strv_free(char **v)
{
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

/* ---- Go durations ---------------------------------------------------------------------- */

int pinlet_credprov_parse_duration(const char *s, uint64_t *ret)
{
        static const struct {
                const char *unit;
                uint64_t ns;
        } units[] = {
                /* longer units first where one is a prefix of another ("ms" before "m") */
                { "ns", 1ULL },           { "us", 1000ULL },
                { "\xc2\xb5s", 1000ULL }, /* U+00B5 micro sign, as Go accepts */
                { "\xce\xbcs", 1000ULL }, /* U+03BC Greek mu */
                { "ms", 1000000ULL },     { "s", 1000000000ULL },
                { "m", 60000000000ULL },  { "h", 3600000000000ULL },
        };
        uint64_t total = 0;
        const char *p = s;

        if (!s || !*s)
                return -EINVAL;
        if (*p == '+')
                p++;
        else if (*p == '-')
                return -EINVAL; /* kubelet refuses negative cache durations */
        /* Go: "0" alone needs no unit */
        if (strcmp(p, "0") == 0) {
                *ret = 0;
                return 0;
        }
        if (!*p)
                return -EINVAL;
        while (*p) {
                uint64_t whole = 0, frac = 0, scale = 1, add;
                bool digits = false;
                size_t i;

                for (; isdigit((unsigned char)*p); p++, digits = true) {
                        if (whole > (UINT64_MAX - 9) / 10)
                                return -ERANGE;
                        whole = whole * 10 + (uint64_t)(*p - '0');
                }
                if (*p == '.') {
                        p++;
                        for (; isdigit((unsigned char)*p); p++, digits = true)
                                /* digits past nanosecond precision of an hour are noise */
                                if (scale < 1000000000000000ULL) {
                                        frac = frac * 10 + (uint64_t)(*p - '0');
                                        scale *= 10;
                                }
                }
                if (!digits)
                        return -EINVAL;
                for (i = 0; i < ELEMENTSOF(units); i++)
                        if (strncmp(p, units[i].unit, strlen(units[i].unit)) == 0)
                                break;
                if (i == ELEMENTSOF(units))
                        return -EINVAL;
                p += strlen(units[i].unit);
                if (whole > UINT64_MAX / units[i].ns)
                        return -ERANGE;
                add = whole * units[i].ns;
                /* frac < scale <= 1e15 and ns <= 3.6e12: compute in long double, exact
                 * enough for milliseconds */
                add += (uint64_t)((long double)frac * (long double)units[i].ns /
                                  (long double)scale);
                if (add > UINT64_MAX - total)
                        return -ERANGE;
                total += add;
        }
        *ret = total / 1000000ULL;
        return 0;
}

/* ---- the config file -------------------------------------------------------------------- */

/* YAML to a jansson tree, so that YAML and JSON files are read by one schema walk. Every
 * scalar becomes a string (the schema holds only strings). Aliases, a second document,
 * NUL bytes and nesting past CONFIG_DEPTH_MAX are refused. */
struct yconv {
        yaml_parser_t parser;
        yaml_event_t ev;
        bool have_ev;
        const char *name;
};

static int ynext(struct yconv *y, struct pinlet_error **err)
{
        if (y->have_ev)
                yaml_event_delete(&y->ev);
        y->have_ev = false;
        if (!yaml_parser_parse(&y->parser, &y->ev))
                return pinlet_error_set(err, PINLET_EINVAL, "%s:%lu: %s", y->name,
                                        (unsigned long)y->parser.problem_mark.line + 1,
                                        y->parser.problem ? y->parser.problem : "YAML error");
        y->have_ev = true;
        return 0;
}

static int yline(const struct yconv *y)
{
        return (int)y->ev.start_mark.line + 1;
}

static int yvalue(struct yconv *y, unsigned depth, json_t **ret, struct pinlet_error **err)
{
        _cleanup_(json_decrefp) json_t *v = NULL;
        int r;

        if (depth > CONFIG_DEPTH_MAX)
                return pinlet_error_set(err, PINLET_EINVAL, "%s:%d: nested too deeply", y->name,
                                        yline(y));
        switch (y->ev.type) {
        case YAML_SCALAR_EVENT:
                if (memchr(y->ev.data.scalar.value, 0, y->ev.data.scalar.length))
                        return pinlet_error_set(err, PINLET_EINVAL, "%s:%d: NUL byte in a value",
                                                y->name, yline(y));
                v = json_stringn((const char *)y->ev.data.scalar.value, y->ev.data.scalar.length);
                break;
        case YAML_SEQUENCE_START_EVENT:
                v = json_array();
                for (;;) {
                        json_t *item = NULL;

                        if ((r = ynext(y, err)) < 0)
                                return r;
                        if (y->ev.type == YAML_SEQUENCE_END_EVENT)
                                break;
                        if ((r = yvalue(y, depth + 1, &item, err)) < 0)
                                return r;
                        if (!v || json_array_append_new(v, item) < 0)
                                return pinlet_error_set(err, -ENOMEM, "out of memory");
                }
                break;
        case YAML_MAPPING_START_EVENT:
                v = json_object();
                for (;;) {
                        _cleanup_free_ char *key = NULL;
                        json_t *item = NULL;
                        int line;

                        if ((r = ynext(y, err)) < 0)
                                return r;
                        if (y->ev.type == YAML_MAPPING_END_EVENT)
                                break;
                        line = yline(y);
                        if (y->ev.type != YAML_SCALAR_EVENT ||
                            memchr(y->ev.data.scalar.value, 0, y->ev.data.scalar.length))
                                return pinlet_error_set(err, PINLET_EINVAL,
                                                        "%s:%d: a key must be a plain string",
                                                        y->name, line);
                        key = strndup((const char *)y->ev.data.scalar.value,
                                      y->ev.data.scalar.length);
                        if (!key)
                                return pinlet_error_set(err, -ENOMEM, "out of memory");
                        if ((r = ynext(y, err)) < 0 || (r = yvalue(y, depth + 1, &item, err)) < 0)
                                return r;
                        if (v && json_object_get(v, key)) {
                                json_decref(item);
                                return pinlet_error_set(err, PINLET_EINVAL,
                                                        "%s:%d: key '%s' given twice", y->name,
                                                        line, key);
                        }
                        if (!v || json_object_set_new(v, key, item) < 0)
                                return pinlet_error_set(err, -ENOMEM, "out of memory");
                }
                break;
        case YAML_ALIAS_EVENT:
                return pinlet_error_set(err, PINLET_EINVAL, "%s:%d: YAML aliases are not supported",
                                        y->name, yline(y));
        default:
                return pinlet_error_set(err, PINLET_EINVAL, "%s:%d: unexpected YAML event", y->name,
                                        yline(y));
        }
        if (!v)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        *ret = TAKE_PTR(v);
        return 0;
}

static int yaml_to_json(const char *data, size_t len, const char *name, json_t **ret,
                        struct pinlet_error **err)
{
        struct yconv y = { .name = name };
        json_t *root = NULL;
        int r;

        if (!yaml_parser_initialize(&y.parser))
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        yaml_parser_set_input_string(&y.parser, (const unsigned char *)data, len);
        r = ynext(&y, err); /* stream start */
        if (r >= 0)
                r = ynext(&y, err);
        if (r >= 0 && y.ev.type == YAML_STREAM_END_EVENT)
                r = pinlet_error_set(err, PINLET_EINVAL, "%s: empty document", name);
        if (r >= 0 && (r = ynext(&y, err)) >= 0) /* past document start */
                r = yvalue(&y, 0, &root, err);
        if (r >= 0 && (r = ynext(&y, err)) >= 0 && (r = ynext(&y, err)) >= 0 &&
            y.ev.type != YAML_STREAM_END_EVENT)
                r = pinlet_error_set(err, PINLET_EINVAL, "%s:%d: a second YAML document", name,
                                     yline(&y));
        if (y.have_ev)
                yaml_event_delete(&y.ev);
        yaml_parser_delete(&y.parser);
        if (r < 0) {
                json_decref(root);
                return r;
        }
        *ret = root;
        return 0;
}

static int get_string(json_t *o, const char *key, bool required, const char **ret,
                      const char *where, struct pinlet_error **err)
{
        json_t *v = json_object_get(o, key);

        if (!v || json_is_null(v)) {
                if (required)
                        return pinlet_error_set(err, PINLET_EINVAL, "%s: '%s' is required", where,
                                                key);
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                return pinlet_error_set(err, PINLET_EINVAL, "%s: '%s' must be a string", where,
                                        key);
        *ret = json_string_value(v);
        return 0;
}

/* A list of strings into a strv (NULL for an absent or empty list). */
static int get_strv(json_t *o, const char *key, char ***ret, const char *where,
                    struct pinlet_error **err)
{
        json_t *v = json_object_get(o, key), *item;
        char **out = NULL;
        size_t i;

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return pinlet_error_set(err, PINLET_EINVAL, "%s: '%s' must be a list", where, key);
        out = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!out)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        json_array_foreach(v, i, item)
        {
                if (!json_is_string(item) ||
                    strlen(json_string_value(item)) != json_string_length(item)) {
                        strv_free(out);
                        return pinlet_error_set(err, PINLET_EINVAL,
                                                "%s: '%s[%zu]' must be a string", where, key, i);
                }
                if (!(out[i] = strdup(json_string_value(item)))) {
                        strv_free(out);
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                }
        }
        if (!out[0]) {
                free(out);
                out = NULL;
        }
        *ret = out;
        return 0;
}

static void provider_clear(struct pinlet_credprov_provider *pv)
{
        free(pv->name);
        strv_free(pv->match_images);
        free(pv->api_version);
        strv_free(pv->args);
        /* env values may be secrets (API keys for the provider): erase them */
        for (char **e = pv->env; e && *e; e++)
                erase_and_free(*e);
        free(pv->env);
        free(pv->source);
        *pv = (struct pinlet_credprov_provider){ 0 };
}

void pinlet_credprov_config_free(struct pinlet_credprov_config *c)
{
        for (size_t i = 0; i < c->n_providers; i++)
                provider_clear(&c->providers[i]);
        free(c->providers);
        *c = (struct pinlet_credprov_config){ 0 };
}

static int parse_env(json_t *o, const char *where, char ***ret, struct pinlet_error **err)
{
        json_t *v = json_object_get(o, "env"), *item;
        char **out;
        size_t i;

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return pinlet_error_set(err, PINLET_EINVAL, "%s: 'env' must be a list", where);
        out = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!out)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        json_array_foreach(v, i, item)
        {
                const char *name = NULL, *value = NULL;
                char w[64];
                int r;

                snprintf(w, sizeof(w), "env[%zu]", i);
                r = json_is_object(item) ? 0
                                         : pinlet_error_set(err, PINLET_EINVAL,
                                                            "%s: '%s' must be a mapping", where, w);
                if (r >= 0)
                        r = get_string(item, "name", true, &name, where, err);
                if (r >= 0)
                        r = get_string(item, "value", true, &value, where, err);
                if (r >= 0 && (!*name || strchr(name, '=')))
                        r = pinlet_error_set(err, PINLET_EINVAL,
                                             "%s: '%s.name' must be a non-empty name without '='",
                                             where, w);
                if (r >= 0 && asprintf(&out[i], "%s=%s", name, value) < 0) {
                        out[i] = NULL;
                        r = pinlet_error_set(err, -ENOMEM, "out of memory");
                }
                if (r < 0) {
                        for (char **e = out; *e; e++)
                                erase_and_free(*e);
                        free(out);
                        return r;
                }
        }
        *ret = out;
        return 0;
}

static int parse_provider(json_t *o, const char *where, struct pinlet_credprov_provider *pv,
                          struct pinlet_error **err)
{
        const char *name, *dur, *api;
        int r;

        if (!json_is_object(o))
                return pinlet_error_set(err, PINLET_EINVAL, "%s: must be a mapping", where);
        if ((r = get_string(o, "name", true, &name, where, err)) < 0 ||
            (r = get_string(o, "defaultCacheDuration", true, &dur, where, err)) < 0 ||
            (r = get_string(o, "apiVersion", true, &api, where, err)) < 0)
                return r;
        /* kubelet: the name is a file in the bin dir, never a path */
        if (!*name || strchr(name, '/') || streq_ptr(name, ".") || streq_ptr(name, ".."))
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "%s: 'name' must be a file name in the bin dir", where);
        if (!in_list(api, provider_api_versions, ELEMENTSOF(provider_api_versions)))
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "%s: unsupported 'apiVersion' '%s' (expected "
                                        "credentialprovider.kubelet.k8s.io/v1 or v1beta1)",
                                        where, api);
        if (pinlet_credprov_parse_duration(dur, &pv->default_cache_ms) < 0)
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "%s: invalid 'defaultCacheDuration' '%s'", where, dur);
        if (json_object_get(o, "tokenAttributes"))
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "%s: 'tokenAttributes' (service account tokens) is not "
                                        "supported by pinlet",
                                        where);
        pv->name = strdup(name);
        pv->api_version = strdup(api);
        if (!pv->name || !pv->api_version ||
            asprintf(&pv->source, "credential provider %s", name) < 0) {
                pv->source = NULL;
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        if ((r = get_strv(o, "matchImages", &pv->match_images, where, err)) < 0 ||
            (r = get_strv(o, "args", &pv->args, where, err)) < 0 ||
            (r = parse_env(o, where, &pv->env, err)) < 0)
                return r;
        if (!pv->match_images)
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "%s: 'matchImages' must list at least one image", where);
        for (char **m = pv->match_images; *m; m++)
                if (!**m)
                        return pinlet_error_set(err, PINLET_EINVAL,
                                                "%s: 'matchImages' holds an empty pattern", where);
        return 0;
}

int pinlet_credprov_config_parse(const char *data, size_t len, const char *name,
                                 struct pinlet_credprov_config *ret, struct pinlet_error **err)
{
        _cleanup_(json_decrefp) json_t *root = NULL;
        struct pinlet_credprov_config c = { 0 };
        const char *kind, *api;
        json_t *providers, *item;
        size_t i, skip = 0;
        int r;

        if (len > PINLET_CREDPROV_CONFIG_MAX)
                return pinlet_error_set(err, PINLET_E2BIG, "%s: larger than %d bytes", name,
                                        PINLET_CREDPROV_CONFIG_MAX);
        if (memchr(data, 0, len))
                return pinlet_error_set(err, PINLET_EINVAL, "%s: holds a NUL byte", name);
        while (skip < len && isspace((unsigned char)data[skip]))
                skip++;
        if (skip < len && data[skip] == '{') {
                json_error_t jerr;

                /* JSON, read as JSON (YAML 1.1 differs on some escapes) */
                root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
                if (!root)
                        return pinlet_error_set(err, PINLET_EINVAL, "%s:%d: %s", name, jerr.line,
                                                jerr.text);
        } else {
                r = yaml_to_json(data, len, name, &root, err);
                if (r < 0)
                        return r;
        }
        if (!json_is_object(root))
                return pinlet_error_set(err, PINLET_EINVAL, "%s: not a mapping", name);
        if ((r = get_string(root, "kind", true, &kind, name, err)) < 0 ||
            (r = get_string(root, "apiVersion", true, &api, name, err)) < 0)
                return r;
        if (!streq_ptr(kind, "CredentialProviderConfig"))
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "%s: 'kind' is '%s', not CredentialProviderConfig", name,
                                        kind);
        if (!in_list(api, config_api_versions, ELEMENTSOF(config_api_versions)))
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "%s: unsupported 'apiVersion' '%s' (expected "
                                        "kubelet.config.k8s.io/v1 or v1beta1)",
                                        name, api);
        providers = json_object_get(root, "providers");
        if (!json_is_array(providers) || json_array_size(providers) == 0)
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "%s: 'providers' must list at least one provider", name);
        c.providers = calloc(json_array_size(providers), sizeof(*c.providers));
        if (!c.providers)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        json_array_foreach(providers, i, item)
        {
                _cleanup_free_ char *where = NULL;

                c.n_providers++;
                if (asprintf(&where, "%s: providers[%zu]", name, i) < 0) {
                        where = NULL;
                        r = pinlet_error_set(err, -ENOMEM, "out of memory");
                } else {
                        r = parse_provider(item, where, &c.providers[i], err);
                }
                for (size_t j = 0; r >= 0 && j < i; j++)
                        if (streq_ptr(c.providers[j].name, c.providers[i].name))
                                r = pinlet_error_set(err, PINLET_EINVAL,
                                                     "%s: duplicate provider name '%s'", where,
                                                     c.providers[i].name);
                if (r < 0) {
                        pinlet_credprov_config_free(&c);
                        return r;
                }
        }
        *ret = c;
        return 0;
}

int pinlet_credprov_config_load(const char *path, struct pinlet_credprov_config *ret,
                                struct pinlet_error **err)
{
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        int r;

        r = pinlet_io_read_file(path, PINLET_CREDPROV_CONFIG_MAX, 0, &data, &size, NULL);
        if (r == PINLET_E2BIG)
                return pinlet_error_set(err, r, "%s: larger than %d bytes", path,
                                        PINLET_CREDPROV_CONFIG_MAX);
        if (r < 0)
                return pinlet_error_set(err, r, "cannot read %s: %s", path, strerror(-r));
        return pinlet_credprov_config_parse(data, size, path, ret, err);
}

/* ---- matching (kubelet's URLsMatchStr) ------------------------------------------------ */

struct url_parts {
        const char *host; /* host without port, borrowed, host_len bytes */
        size_t host_len;
        const char *port; /* after ':', port_len bytes (0: none) */
        size_t port_len;
        const char *path; /* from the first '/', "" if none */
};

static void split_url(const char *s, struct url_parts *ret)
{
        const char *scheme = strstr(s, "://"), *hp, *colon;
        size_t hp_len;

        /* kubelet parses both as URLs after prefixing "https://" when there is no scheme,
         * and ignores the scheme */
        hp = scheme ? scheme + 3 : s;
        hp_len = strcspn(hp, "/");
        ret->path = hp + hp_len;
        ret->host = hp;
        ret->port = NULL;
        ret->port_len = 0;
        if (hp[0] == '[') { /* IPv6 literal: the port follows ']' */
                const char *close = memchr(hp, ']', hp_len);

                colon = close && (size_t)(close + 1 - hp) < hp_len && close[1] == ':' ? close + 1
                                                                                      : NULL;
        } else {
                colon = memchr(hp, ':', hp_len);
        }
        if (colon) {
                ret->host_len = (size_t)(colon - hp);
                ret->port = colon + 1;
                ret->port_len = hp_len - ret->host_len - 1;
        } else {
                ret->host_len = hp_len;
        }
        /* Go's net.SplitHostPort drops the brackets of an IPv6 literal: "[::1]" is
         * compared as "::1", not as a glob character class */
        if (ret->host_len >= 2 && ret->host[0] == '[' && ret->host[ret->host_len - 1] == ']') {
                ret->host++;
                ret->host_len -= 2;
        }
}

bool pinlet_credprov_match(const char *glob, const char *image)
{
        struct url_parts g, t;
        const char *gp, *tp, *gend, *tend;

        if (!glob || !image)
                return false;
        split_url(glob, &g);
        split_url(image, &t);
        if (g.port_len != t.port_len ||
            strncmp(g.port ? g.port : "", t.port ? t.port : "", g.port_len) != 0)
                return false;
        /* label by label, the same number of labels: '*' never spans a dot */
        gp = g.host, gend = g.host + g.host_len;
        tp = t.host, tend = t.host + t.host_len;
        for (;;) {
                const char *gdot = memchr(gp, '.', (size_t)(gend - gp));
                const char *tdot = memchr(tp, '.', (size_t)(tend - tp));
                size_t gl = (size_t)((gdot ? gdot : gend) - gp);
                size_t tl = (size_t)((tdot ? tdot : tend) - tp);
                char gbuf[256], tbuf[256];

                if (gl >= sizeof(gbuf) || tl >= sizeof(tbuf))
                        return false; /* a DNS label has at most 63 bytes */
                for (size_t i = 0; i < gl; i++)
                        gbuf[i] = (char)tolower((unsigned char)gp[i]);
                for (size_t i = 0; i < tl; i++)
                        tbuf[i] = (char)tolower((unsigned char)tp[i]);
                gbuf[gl] = tbuf[tl] = 0;
                if (fnmatch(gbuf, tbuf, FNM_PATHNAME) != 0)
                        return false;
                gp += gl, tp += tl;
                if (gp == gend || tp == tend)
                        break;
                gp++, tp++;
        }
        if (gp != gend || tp != tend)
                return false;
        /* a string prefix, as kubelet's strings.HasPrefix: "reg/app" also matches
         * "reg/app2" */
        return strncmp(t.path, g.path, strlen(g.path)) == 0;
}

/* ---- the response ----------------------------------------------------------------------- */

static void auth_clear(struct pinlet_credprov_auth *a)
{
        free(a->match);
        erase_and_free(a->username);
        erase_and_free(a->password);
        *a = (struct pinlet_credprov_auth){ 0 };
}

void pinlet_credprov_response_free(struct pinlet_credprov_response *r)
{
        for (size_t i = 0; i < r->n_auth; i++)
                auth_clear(&r->auth[i]);
        free(r->auth);
        *r = (struct pinlet_credprov_response){ 0 };
}

static int auth_cmp_desc(const void *a, const void *b)
{
        const struct pinlet_credprov_auth *x = a, *y = b;

        return strcmp(y->match, x->match);
}

/* A response string: a JSON string without NUL, or absent. */
static int resp_string(json_t *o, const char *key, const char **ret)
{
        json_t *v = json_object_get(o, key);

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                return PINLET_EPROTO;
        *ret = json_string_value(v);
        return 0;
}

int pinlet_credprov_response_parse(const char *json, size_t len, const char *api_version,
                                   struct pinlet_credprov_response *ret, struct pinlet_error **err)
{
        _cleanup_(json_decrefp) json_t *root = NULL;
        struct pinlet_credprov_response r = { 0 };
        const char *kind, *api, *ktype, *dur;
        json_t *auth, *v;
        json_error_t jerr;
        const char *key;

        if (len > PINLET_CREDPROV_RESPONSE_MAX)
                return pinlet_error_set(err, PINLET_E2BIG, "response larger than %d bytes",
                                        PINLET_CREDPROV_RESPONSE_MAX);
        root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                /* not jerr.text: it may quote the input, and the input holds passwords */
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "response is not valid JSON (line %d, column %d)",
                                        jerr.line, jerr.column);
        if (!json_is_object(root))
                return pinlet_error_set(err, PINLET_EPROTO, "response is not a JSON object");
        if (resp_string(root, "kind", &kind) < 0 || !streq_ptr(kind, "CredentialProviderResponse"))
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "response 'kind' is not CredentialProviderResponse");
        if (resp_string(root, "apiVersion", &api) < 0 || !streq_ptr(api, api_version))
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "response 'apiVersion' does not match the request's %s",
                                        api_version);
        if (resp_string(root, "cacheKeyType", &ktype) < 0 || !ktype)
                return pinlet_error_set(err, PINLET_EPROTO, "response has no 'cacheKeyType'");
        if (streq_ptr(ktype, "Image"))
                r.key_type = PINLET_CREDPROV_KEY_IMAGE;
        else if (streq_ptr(ktype, "Registry"))
                r.key_type = PINLET_CREDPROV_KEY_REGISTRY;
        else if (streq_ptr(ktype, "Global"))
                r.key_type = PINLET_CREDPROV_KEY_GLOBAL;
        else
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "response 'cacheKeyType' is not Image, Registry or Global");
        if (resp_string(root, "cacheDuration", &dur) < 0)
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "response 'cacheDuration' is not a string");
        if (dur) {
                if (pinlet_credprov_parse_duration(dur, &r.duration_ms) < 0)
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "response 'cacheDuration' is not a duration");
                r.has_duration = true;
        }
        auth = json_object_get(root, "auth");
        if (auth && !json_is_null(auth) && !json_is_object(auth))
                return pinlet_error_set(err, PINLET_EPROTO, "response 'auth' is not a mapping");
        if (auth && json_object_size(auth) > 0) {
                r.auth = calloc(json_object_size(auth), sizeof(*r.auth));
                if (!r.auth)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        json_object_foreach(auth, key, v)
        {
                struct pinlet_credprov_auth *a = &r.auth[r.n_auth];
                const char *user = NULL, *pass = NULL;

                if (!json_is_object(v) || resp_string(v, "username", &user) < 0 ||
                    resp_string(v, "password", &pass) < 0) {
                        pinlet_credprov_response_free(&r);
                        /* the key is not secret (an image glob), the entry is */
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "response auth entry is not {username, password}");
                }
                if (!*key || strlen(key) > 4096) {
                        pinlet_credprov_response_free(&r);
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "response auth key is empty or too long");
                }
                r.n_auth++;
                a->match = strdup(key);
                a->username = strdup(strempty(user));
                a->password = strdup(strempty(pass));
                if (!a->match || !a->username || !a->password) {
                        pinlet_credprov_response_free(&r);
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                }
        }
        /* kubelet's BasicDockerKeyring: keys in reverse lexicographic order, so that the
         * longer, more specific key of two that share a prefix comes first */
        if (r.n_auth > 1)
                qsort(r.auth, r.n_auth, sizeof(*r.auth), auth_cmp_desc);
        *ret = r;
        return 0;
}

const struct pinlet_credprov_auth *
pinlet_credprov_response_best(const struct pinlet_credprov_response *r, const char *image)
{
        for (size_t i = 0; i < r->n_auth; i++)
                if (pinlet_credprov_match(r->auth[i].match, image))
                        return &r->auth[i];
        return NULL;
}

/* ---- running a provider ----------------------------------------------------------------- */

struct cache_entry {
        struct pinlet_lru_node node; /* key: key */
        char *key;
        int64_t expires_ms;
        struct pinlet_credprov_response resp;
};

struct pinlet_credprov {
        struct pinlet_credprov_config cfg;
        char *bin_dir;
        uint64_t timeout_ms;
        size_t cache_max;
        /* One per provider: held while that provider runs, so concurrent lookups wait for
         * its answer instead of starting their own child. */
        pthread_mutex_t *run_locks;
        pthread_mutex_t cache_lock;
        struct pinlet_lru cache; /* of struct cache_entry, at most cache_max */
        atomic_uint_fast64_t runs;
};

static void cache_entry_free(struct cache_entry *e)
{
        if (!e)
                return;
        pinlet_credprov_response_free(&e->resp);
        free(e->key);
        free(e);
}

void pinlet_credprov_free(struct pinlet_credprov *p)
{
        struct pinlet_lru_node *n, *next;

        if (!p)
                return;
        for (n = pinlet_lru_oldest(&p->cache); n; n = next) {
                next = pinlet_lru_newer(n);
                pinlet_lru_remove(&p->cache, n);
                cache_entry_free(PINLET_LRU_ENTRY(n, struct cache_entry, node));
        }
        pinlet_lru_done(&p->cache);
        if (p->run_locks)
                for (size_t i = 0; i < p->cfg.n_providers; i++)
                        pthread_mutex_destroy(&p->run_locks[i]);
        free(p->run_locks);
        pthread_mutex_destroy(&p->cache_lock);
        pinlet_credprov_config_free(&p->cfg);
        free(p->bin_dir);
        free(p);
}

int pinlet_credprov_new(const struct pinlet_credprov_options *o, struct pinlet_credprov **ret,
                        struct pinlet_error **err)
{
        _cleanup_(pinlet_credprov_freep) struct pinlet_credprov *p = NULL;
        struct stat st;
        int r;

        if (!o->config_path || !o->bin_dir)
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "credential providers need both a config file and a "
                                        "bin dir");
        p = calloc(1, sizeof(*p));
        if (!p)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        pthread_mutex_init(&p->cache_lock, NULL);
        p->timeout_ms = o->timeout_ms ?: PINLET_CREDPROV_TIMEOUT_MS;
        p->cache_max = o->cache_max ?: PINLET_CREDPROV_CACHE_MAX;
        r = pinlet_credprov_config_load(o->config_path, &p->cfg, err);
        if (r < 0)
                return r;
        p->bin_dir = strdup(o->bin_dir);
        p->run_locks = calloc(p->cfg.n_providers, sizeof(*p->run_locks));
        if (!p->bin_dir || !p->run_locks || pinlet_lru_init(&p->cache, p->cache_max) < 0) {
                free(p->run_locks);
                p->run_locks = NULL;
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < p->cfg.n_providers; i++)
                pthread_mutex_init(&p->run_locks[i], NULL);
        /* kubelet checks the executables at start too: a typo is a configuration error,
         * not a failure of every pull that matches */
        for (size_t i = 0; i < p->cfg.n_providers; i++) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/%s", p->bin_dir, p->cfg.providers[i].name) < 0)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0)
                        return pinlet_error_set(err, PINLET_EINVAL,
                                                "%s: credential provider %s: %s is not an "
                                                "executable file",
                                                o->config_path, p->cfg.providers[i].name, path);
        }
        *ret = TAKE_PTR(p);
        return 0;
}

uint64_t pinlet_credprov_runs(struct pinlet_credprov *p)
{
        return atomic_load_explicit(&p->runs, memory_order_relaxed);
}

/* The environment of a provider: ours, then the configured entries (which replace ours
 * of the same name, as Go's exec does with duplicate names: the last wins). */
static char **provider_envp(const struct pinlet_credprov_provider *pv)
{
        size_t n = 0, k = 0;
        char **envp;

        for (char **e = environ; e && *e; e++)
                n++;
        for (char **e = pv->env; e && *e; e++)
                n++;
        envp = calloc(n + 1, sizeof(char *));
        if (!envp)
                return NULL;
        for (char **e = environ; e && *e; e++) {
                size_t nl = strcspn(*e, "=");
                bool replaced = false;

                for (char **c = pv->env; c && *c && !replaced; c++)
                        replaced = strncmp(*c, *e, nl) == 0 && (*c)[nl] == '=';
                if (!replaced)
                        envp[k++] = *e;
        }
        for (char **e = pv->env; e && *e; e++)
                envp[k++] = *e;
        return envp; /* borrowed strings: free the array only */
}

/* Bounded stderr text for a debug line: control characters replaced. */
static void log_stderr(const char *name, struct pinlet_buf *b)
{
        if (b->len == 0)
                return;
        for (size_t i = 0; i < b->len; i++)
                if ((unsigned char)b->data[i] < 0x20 || b->data[i] == 0x7f)
                        b->data[i] = ' ';
        log_debug("credential provider %s: stderr: %.*s", name, (int)b->len, b->data);
}

/* Runs pv for image; *ret_out gets stdout (erase it after use). */
static int run_provider(struct pinlet_credprov *p, const struct pinlet_credprov_provider *pv,
                        const char *image, int64_t deadline_ms, char **ret_out, size_t *ret_len,
                        struct pinlet_error **err)
{
        _cleanup_(json_decrefp) json_t *req = NULL;
        _cleanup_free_ char *path = NULL, *body = NULL;
        _cleanup_free_ char **argv = NULL, **envp = NULL;
        _cleanup_(pinlet_spawn_result_done) struct pinlet_spawn_result res = {};
        size_t nargs = 0;
        int r;

        req = json_pack("{s:s, s:s, s:s}", "kind", "CredentialProviderRequest", "apiVersion",
                        pv->api_version, "image", image);
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        if (!body || asprintf(&path, "%s/%s", p->bin_dir, pv->name) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        for (char **a = pv->args; a && *a; a++)
                nargs++;
        argv = calloc(nargs + 2, sizeof(char *));
        envp = provider_envp(pv);
        if (!argv || !envp)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        argv[0] = path;
        for (size_t i = 0; i < nargs; i++)
                argv[i + 1] = pv->args[i];

        r = pinlet_spawn_run(
                &(const struct pinlet_spawn){
                        .path = path,
                        .argv = argv,
                        .envp = envp,
                        .input = body,
                        .input_len = strlen(body),
                        .deadline_ms = deadline_ms,
                        .out_max = PINLET_CREDPROV_RESPONSE_MAX,
                        .err_max = PINLET_CREDPROV_STDERR_MAX,
                        .out_strict = true, /* a truncated answer would be wrong */
                },
                &res);
        if (!res.started)
                return pinlet_error_set(err, PINLET_EUNAVAIL, "cannot run %s: %s", path,
                                        strerror(-r));
        atomic_fetch_add_explicit(&p->runs, 1, memory_order_relaxed);
        log_stderr(pv->name, &res.err);
        if (r == -ETIMEDOUT)
                return pinlet_error_set(err, PINLET_ETIMEOUT, "%s: no answer in time (killed)",
                                        pv->source);
        if (r == -E2BIG)
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "%s: response larger than %d bytes (killed)", pv->source,
                                        PINLET_CREDPROV_RESPONSE_MAX);
        if (r < 0)
                return pinlet_error_set(err, r, "%s: reading its output: %s", pv->source,
                                        strerror(-r));
        if (WIFSIGNALED(res.status))
                return pinlet_error_set(err, PINLET_EUNAVAIL, "%s: killed by signal %d", pv->source,
                                        WTERMSIG(res.status));
        if (!WIFEXITED(res.status) || WEXITSTATUS(res.status) != 0)
                return pinlet_error_set(err, PINLET_EUNAVAIL, "%s: exited with status %d",
                                        pv->source, WEXITSTATUS(res.status));
        *ret_out = pinlet_buf_steal(&res.out, ret_len);
        return 0;
}

/* ---- the cache and the lookup ----------------------------------------------------------- */

enum { CACHE_MISS, CACHE_NO_AUTH, CACHE_FOUND };

static int creds_from_auth(const struct pinlet_credprov_provider *pv,
                           const struct pinlet_credprov_auth *a, struct pinlet_creds *ret)
{
        struct pinlet_creds c = { .source = pv->source };

        if (*a->username && !(c.username = strdup(a->username)))
                return -ENOMEM;
        if (*a->password && !(c.password = strdup(a->password))) {
                pinlet_creds_clear(&c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

/* The three cache keys of image for pv, in kubelet's lookup order. */
static int cache_keys(const struct pinlet_credprov_provider *pv, const char *image,
                      char *ret[static 3])
{
        size_t hl = strcspn(image, "/");

        ret[0] = ret[1] = ret[2] = NULL;
        if (asprintf(&ret[0], "%s\nimage\n%s", pv->name, image) < 0 ||
            asprintf(&ret[1], "%s\nregistry\n%.*s", pv->name, (int)hl, image) < 0 ||
            asprintf(&ret[2], "%s\nglobal", pv->name) < 0) {
                for (int i = 0; i < 3; i++)
                        free(ret[i]), ret[i] = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* Under cache_lock. */
static int cache_find(struct pinlet_credprov *p, const struct pinlet_credprov_provider *pv,
                      char *const keys[static 3], const char *image, struct pinlet_creds *ret)
{
        int64_t now = pinlet_now_ms();

        for (int i = 0; i < 3; i++) {
                struct cache_entry *e = PINLET_LRU_ENTRY(pinlet_lru_find(&p->cache, keys[i]),
                                                         struct cache_entry, node);
                const struct pinlet_credprov_auth *a;

                if (!e)
                        continue;
                if (e->expires_ms <= now) {
                        pinlet_lru_remove(&p->cache, &e->node);
                        cache_entry_free(e);
                        continue;
                }
                pinlet_lru_touch(&p->cache, &e->node);
                a = pinlet_credprov_response_best(&e->resp, image);
                if (!a)
                        return CACHE_NO_AUTH;
                return creds_from_auth(pv, a, ret) < 0 ? -ENOMEM : CACHE_FOUND;
        }
        return CACHE_MISS;
}

/* Under cache_lock; takes resp. */
static void cache_insert(struct pinlet_credprov *p, char *key, uint64_t ttl_ms,
                         struct pinlet_credprov_response *resp)
{
        struct cache_entry *e, *old;

        old = PINLET_LRU_ENTRY(pinlet_lru_find(&p->cache, key), struct cache_entry, node);
        if (old) {
                pinlet_lru_remove(&p->cache, &old->node);
                cache_entry_free(old);
        }
        while (pinlet_lru_size(&p->cache) >= p->cache_max) {
                struct pinlet_lru_node *n = pinlet_lru_oldest(&p->cache);

                pinlet_lru_remove(&p->cache, n);
                cache_entry_free(PINLET_LRU_ENTRY(n, struct cache_entry, node));
        }
        e = calloc(1, sizeof(*e));
        if (!e || !(e->key = strdup(key))) {
                free(e);
                pinlet_credprov_response_free(resp); /* not cached: the next call runs it */
                return;
        }
        e->node.key = e->key;
        e->expires_ms =
                pinlet_now_ms() + (ttl_ms > INT64_MAX / 4 ? INT64_MAX / 4 : (int64_t)ttl_ms);
        e->resp = *resp;
        *resp = (struct pinlet_credprov_response){ 0 };
        pinlet_lru_insert(&p->cache, &e->node);
}

static void keys_free(char *(*keys)[3])
{
        for (int i = 0; i < 3; i++)
                free((*keys)[i]);
}

static int provider_creds(struct pinlet_credprov *p, size_t idx, const char *image,
                          int64_t deadline_ms, struct pinlet_creds *ret, struct pinlet_error **err)
{
        const struct pinlet_credprov_provider *pv = &p->cfg.providers[idx];
        _cleanup_(pinlet_credprov_response_free) struct pinlet_credprov_response resp = { 0 };
        _cleanup_(keys_free) char *keys[3] = { NULL, NULL, NULL };
        _cleanup_erase_ char *out = NULL;
        const struct pinlet_credprov_auth *a;
        int64_t deadline = pinlet_now_ms() + (int64_t)p->timeout_ms;
        size_t len = 0;
        int r;

        if (deadline_ms > 0 && deadline_ms < deadline)
                deadline = deadline_ms;
        if (cache_keys(pv, image, keys) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        pthread_mutex_lock(&p->cache_lock);
        r = cache_find(p, pv, keys, image, ret);
        pthread_mutex_unlock(&p->cache_lock);
        if (r != CACHE_MISS)
                goto found;

        /* One child per provider at a time; whoever waited here finds its answer. */
        pthread_mutex_lock(&p->run_locks[idx]);
        pthread_mutex_lock(&p->cache_lock);
        r = cache_find(p, pv, keys, image, ret);
        pthread_mutex_unlock(&p->cache_lock);
        if (r == CACHE_MISS) {
                r = run_provider(p, pv, image, deadline, &out, &len, err);
                if (r >= 0) {
                        r = pinlet_credprov_response_parse(out, len, pv->api_version, &resp, err);
                        if (r < 0)
                                r = pinlet_error_wrap(err, r, "%s", pv->source);
                }
                if (r >= 0) {
                        uint64_t ttl = resp.has_duration ? resp.duration_ms : pv->default_cache_ms;

                        a = pinlet_credprov_response_best(&resp, image);
                        r = !a                                ? CACHE_NO_AUTH
                            : creds_from_auth(pv, a, ret) < 0 ? -ENOMEM
                                                              : CACHE_FOUND;
                        /* kubelet caches nothing for a zero duration */
                        if (r >= 0 && ttl > 0) {
                                pthread_mutex_lock(&p->cache_lock);
                                cache_insert(p, keys[resp.key_type], ttl, &resp);
                                pthread_mutex_unlock(&p->cache_lock);
                        }
                        log_debug("%s: answered for %s (%zu auth entries, %s)", pv->source, image,
                                  resp.n_auth, r == CACHE_FOUND ? "one matches" : "none matches");
                }
        }
        pthread_mutex_unlock(&p->run_locks[idx]);
found:
        if (r == -ENOMEM)
                return pinlet_error_set(err, r, "out of memory");
        if (r < 0)
                return r;
        return r == CACHE_FOUND ? 1 : 0;
}

int pinlet_credprov_lookup(struct pinlet_credprov *p, const char *image, int64_t deadline_ms,
                           struct pinlet_creds *ret, struct pinlet_error **err)
{
        for (size_t i = 0; i < p->cfg.n_providers; i++) {
                const struct pinlet_credprov_provider *pv = &p->cfg.providers[i];
                bool match = false;
                int r;

                for (char **m = pv->match_images; *m && !match; m++)
                        match = pinlet_credprov_match(*m, image);
                if (!match)
                        continue;
                r = provider_creds(p, i, image, deadline_ms, ret, err);
                if (r != 0)
                        return r;
        }
        return 0;
}
