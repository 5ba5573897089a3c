/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containers' registries.conf (v2 format) and its drop-ins: the selection rules CRI-O
 * applies through containers/image (pkg/sysregistriesv2). See hosts.h for what is
 * supported; the v1 format ([registries.search] ...) is refused with a message.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hosts/hosts.h"
#include "hosts/internal.h"
#include "ref/ref.h"
#include "util/io.h"

#define REGCONF_REGISTRIES_MAX 1024
#define REGCONF_ALIASES_MAX    4096

enum pull_from {
        PULL_FROM_ALL,
        PULL_FROM_DIGEST_ONLY,
        PULL_FROM_TAG_ONLY,
};

struct rc_mirror {
        char *location;
        bool insecure;
        enum pull_from pull_from;
};

struct rc_registry {
        char *prefix; /* "host[/path]" or "*.domain" */
        char *location;
        bool insecure;
        bool blocked;
        bool mirror_by_digest_only;
        struct rc_mirror *mirrors;
        size_t n_mirrors;
};

struct pinlet_regconf {
        struct rc_registry *regs; /* in the order their prefix first appeared */
        size_t n_regs;
        char **search; /* unqualified-search-registries (strv; NULL: empty) */
        char **alias_names;
        char **alias_values;
        size_t n_aliases;
};

static void strv_free(char **v)
{
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

static void registry_done(struct rc_registry *r)
{
        free(r->prefix);
        free(r->location);
        for (size_t i = 0; i < r->n_mirrors; i++)
                free(r->mirrors[i].location);
        free(r->mirrors);
        *r = (struct rc_registry){ 0 };
}

int pinlet_regconf_new(struct pinlet_regconf **ret)
{
        *ret = calloc(1, sizeof(**ret));
        return *ret ? 0 : -ENOMEM;
}

void pinlet_regconf_free(struct pinlet_regconf *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->n_regs; i++)
                registry_done(&c->regs[i]);
        free(c->regs);
        strv_free(c->search);
        for (size_t i = 0; i < c->n_aliases; i++) {
                free(c->alias_names[i]);
                free(c->alias_values[i]);
        }
        free(c->alias_names);
        free(c->alias_values);
        free(c);
}

struct pctx {
        const char *name;
        struct pinlet_error **err;
};

static int type_error(struct pctx *c, const struct pinlet_toml_value *v, const char *key,
                      const char *want)
{
        return pinlet_error_set(c->err, PINLET_EINVAL, "%s:%u: '%s' must be %s, not a %s", c->name,
                                v->line, key, want, pinlet_toml_type_name(v->type));
}

static int get_string(struct pctx *c, const struct pinlet_toml_value *t, const char *key,
                      char **ret)
{
        const struct pinlet_toml_value *v = pinlet_toml_get(t, key);

        *ret = NULL;
        if (!v)
                return 0;
        if (v->type != PINLET_TOML_STRING)
                return type_error(c, v, key, "a string");
        *ret = strdup(v->string);
        return *ret ? 0 : pinlet_error_set(c->err, -ENOMEM, "out of memory");
}

static int get_bool(struct pctx *c, const struct pinlet_toml_value *t, const char *key, bool *ret)
{
        const struct pinlet_toml_value *v = pinlet_toml_get(t, key);

        if (!v)
                return 0;
        if (v->type != PINLET_TOML_BOOL)
                return type_error(c, v, key, "a boolean");
        *ret = v->boolean;
        return 0;
}

/* A location: "host[:port][/path]" without scheme, without a trailing '/'. */
static bool location_valid(const char *s)
{
        size_t hl = strcspn(s, "/");

        return *s && hl > 0 && !strstr(s, "://") && s[strlen(s) - 1] != '/' &&
               !strpbrk(s, " \t\r\n@");
}

static int parse_mirror(struct pctx *c, const struct pinlet_toml_value *t, struct rc_mirror *m)
{
        _cleanup_free_ char *pull = NULL;
        int r;

        if (t->type != PINLET_TOML_TABLE)
                return type_error(c, t, "registry.mirror", "a table");
        if ((r = get_string(c, t, "location", &m->location)) < 0 ||
            (r = get_bool(c, t, "insecure", &m->insecure)) < 0 ||
            (r = get_string(c, t, "pull-from-mirror", &pull)) < 0)
                return r;
        if (!m->location || !location_valid(m->location))
                return pinlet_error_set(c->err, PINLET_EINVAL,
                                        "%s:%u: a [[registry.mirror]] needs a location "
                                        "(\"host[:port][/path]\")",
                                        c->name, t->line);
        if (!pull || strcmp(pull, "all") == 0 || !*pull)
                m->pull_from = PULL_FROM_ALL;
        else if (strcmp(pull, "digest-only") == 0)
                m->pull_from = PULL_FROM_DIGEST_ONLY;
        else if (strcmp(pull, "tag-only") == 0)
                m->pull_from = PULL_FROM_TAG_ONLY;
        else
                return pinlet_error_set(c->err, PINLET_EINVAL,
                                        "%s:%u: pull-from-mirror must be all, digest-only or "
                                        "tag-only, not '%s'",
                                        c->name, t->line, pull);
        return 0;
}

static int parse_registry(struct pctx *c, const struct pinlet_toml_value *t,
                          struct rc_registry *reg)
{
        const struct pinlet_toml_value *ms;
        int r;

        if (t->type != PINLET_TOML_TABLE)
                return type_error(c, t, "registry", "a table");
        if ((r = get_string(c, t, "prefix", &reg->prefix)) < 0 ||
            (r = get_string(c, t, "location", &reg->location)) < 0 ||
            (r = get_bool(c, t, "insecure", &reg->insecure)) < 0 ||
            (r = get_bool(c, t, "blocked", &reg->blocked)) < 0 ||
            (r = get_bool(c, t, "mirror-by-digest-only", &reg->mirror_by_digest_only)) < 0)
                return r;
        if (reg->location && !*reg->location) {
                free(reg->location);
                reg->location = NULL;
        }
        if (!reg->prefix || !*reg->prefix) {
                free(reg->prefix);
                reg->prefix = reg->location ? strdup(reg->location) : NULL;
                if (!reg->location)
                        return pinlet_error_set(c->err, PINLET_EINVAL,
                                                "%s:%u: a [[registry]] needs a prefix or a "
                                                "location",
                                                c->name, t->line);
                if (!reg->prefix)
                        return pinlet_error_set(c->err, -ENOMEM, "out of memory");
        }
        if (reg->prefix[0] == '*') {
                /* "*.example.com": subdomains only, no path, and no location (the
                 * matched host is kept: containers-registries.conf(5)) */
                if (reg->prefix[1] != '.' || !reg->prefix[2] || strpbrk(reg->prefix + 1, "/*"))
                        return pinlet_error_set(c->err, PINLET_EINVAL,
                                                "%s:%u: wildcard prefix '%s' must be "
                                                "\"*.domain\"",
                                                c->name, t->line, reg->prefix);
                if (reg->location)
                        return pinlet_error_set(c->err, PINLET_EINVAL,
                                                "%s:%u: a wildcard prefix takes no location",
                                                c->name, t->line);
        } else if (!location_valid(reg->prefix) ||
                   (reg->location && !location_valid(reg->location))) {
                return pinlet_error_set(c->err, PINLET_EINVAL,
                                        "%s:%u: prefix and location are \"host[:port][/path]\"",
                                        c->name, t->line);
        } else if (!reg->location && !(reg->location = strdup(reg->prefix))) {
                return pinlet_error_set(c->err, -ENOMEM, "out of memory");
        }
        ms = pinlet_toml_get(t, "mirror");
        if (!ms)
                return 0;
        if (ms->type != PINLET_TOML_ARRAY)
                return type_error(c, ms, "mirror", "an array of tables ([[registry.mirror]])");
        reg->mirrors = calloc(ms->n ?: 1, sizeof(*reg->mirrors));
        if (!reg->mirrors)
                return pinlet_error_set(c->err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < ms->n; i++, reg->n_mirrors++)
                if ((r = parse_mirror(c, ms->items[i], &reg->mirrors[i])) < 0) {
                        reg->n_mirrors++;
                        return r;
                }
        return 0;
}

static int parse_strv(struct pctx *c, const struct pinlet_toml_value *v, const char *key,
                      char ***ret)
{
        char **s = NULL;

        if (v->type != PINLET_TOML_ARRAY)
                return type_error(c, v, key, "an array of strings");
        for (size_t i = 0; i < v->n; i++) {
                if (v->items[i]->type != PINLET_TOML_STRING) {
                        strv_free(s);
                        return type_error(c, v->items[i], key, "a string");
                }
                if (pinlet_hosts_strv_push(&s, v->items[i]->string) < 0) {
                        strv_free(s);
                        return pinlet_error_set(c->err, -ENOMEM, "out of memory");
                }
        }
        /* an explicitly empty list is still "set": it replaces the earlier one */
        if (!s && !(s = calloc(1, sizeof(*s))))
                return pinlet_error_set(c->err, -ENOMEM, "out of memory");
        *ret = s;
        return 0;
}

/* Merges the [aliases] table v over conf's: the later file wins for a name. */
static int merge_aliases(struct pinlet_regconf *conf, struct pctx *pc,
                         const struct pinlet_toml_value *v, struct pinlet_error **err)
{
        if (v->type != PINLET_TOML_TABLE)
                return type_error(pc, v, "aliases", "a table");
        for (size_t i = 0; i < v->n; i++) {
                size_t j;
                char *val;

                if (v->items[i]->type != PINLET_TOML_STRING)
                        return type_error(pc, v->items[i], v->keys[i], "a string");
                if (!(val = strdup(v->items[i]->string)))
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                for (j = 0; j < conf->n_aliases; j++)
                        if (strcmp(conf->alias_names[j], v->keys[i]) == 0)
                                break;
                if (j < conf->n_aliases) {
                        free(conf->alias_values[j]);
                        conf->alias_values[j] = val;
                        continue;
                }
                if (conf->n_aliases >= REGCONF_ALIASES_MAX) {
                        free(val);
                        return pinlet_error_set(err, PINLET_E2BIG, "%s: too many aliases",
                                                pc->name);
                }
                {
                        char **nn = realloc(conf->alias_names, (conf->n_aliases + 1) * sizeof(*nn));
                        char **nv = nn ? realloc(conf->alias_values,
                                                 (conf->n_aliases + 1) * sizeof(*nv))
                                       : NULL;
                        char *k = strdup(v->keys[i]);

                        if (nn)
                                conf->alias_names = nn;
                        if (nv)
                                conf->alias_values = nv;
                        if (!nn || !nv || !k) {
                                free(k);
                                free(val);
                                return pinlet_error_set(err, -ENOMEM, "out of memory");
                        }
                        conf->alias_names[conf->n_aliases] = k;
                        conf->alias_values[conf->n_aliases++] = val;
                }
        }
        return 0;
}

/* One file over conf; aliases_only: its [aliases] alone (short-name-aliases.conf). */
static int add(struct pinlet_regconf *conf, const char *name, const char *data, size_t len,
               bool aliases_only, struct pinlet_error **err)
{
        _cleanup_(pinlet_toml_freep) struct pinlet_toml_value *root = NULL;
        struct pctx c = { .name = name, .err = err };
        const struct pinlet_toml_value *v;
        int r;

        r = pinlet_toml_parse(name, data, len, &root, err);
        if (r < 0)
                return r;
        if (aliases_only) {
                v = pinlet_toml_get(root, "aliases");
                return v ? merge_aliases(conf, &c, v, err) : 0;
        }
        if ((v = pinlet_toml_get(root, "registries")) && v->type == PINLET_TOML_TABLE)
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "%s:%u: the v1 format ([registries.search] ...) is not "
                                        "supported; use the v2 format ([[registry]])",
                                        name, v->line);
        if ((v = pinlet_toml_get(root, "unqualified-search-registries"))) {
                char **s = NULL;

                if ((r = parse_strv(&c, v, "unqualified-search-registries", &s)) < 0)
                        return r;
                strv_free(conf->search);
                conf->search = s;
        }
        if ((v = pinlet_toml_get(root, "registry"))) {
                if (v->type != PINLET_TOML_ARRAY)
                        return type_error(&c, v, "registry", "an array of tables ([[registry]])");
                for (size_t i = 0; i < v->n; i++) {
                        struct rc_registry reg = { 0 };
                        size_t j;

                        r = parse_registry(&c, v->items[i], &reg);
                        if (r < 0) {
                                registry_done(&reg);
                                return r;
                        }
                        /* the same prefix again (a later drop-in): the later one wins */
                        for (j = 0; j < conf->n_regs; j++)
                                if (strcmp(conf->regs[j].prefix, reg.prefix) == 0)
                                        break;
                        if (j == conf->n_regs) {
                                struct rc_registry *n;

                                if (conf->n_regs >= REGCONF_REGISTRIES_MAX ||
                                    !(n = realloc(conf->regs, (conf->n_regs + 1) * sizeof(*n)))) {
                                        registry_done(&reg);
                                        return pinlet_error_set(err, PINLET_E2BIG,
                                                                "%s: too many registries", name);
                                }
                                conf->regs = n;
                                conf->n_regs++;
                        } else {
                                registry_done(&conf->regs[j]);
                        }
                        conf->regs[j] = reg;
                }
        }
        if ((v = pinlet_toml_get(root, "aliases")) && (r = merge_aliases(conf, &c, v, err)) < 0)
                return r;
        return 0;
}

int pinlet_regconf_add(struct pinlet_regconf *conf, const char *name, const char *data, size_t len,
                       struct pinlet_error **err)
{
        return add(conf, name, data, len, false, err);
}

int pinlet_regconf_add_aliases(struct pinlet_regconf *conf, const char *name, const char *data,
                               size_t len, struct pinlet_error **err)
{
        return add(conf, name, data, len, true, err);
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_file(struct pinlet_regconf *c, const char *path, bool missing_ok,
                    struct pinlet_error **err)
{
        _cleanup_free_ char *data = NULL;
        size_t n = 0;
        int r;

        r = pinlet_io_read_file(path, PINLET_TOML_SIZE_MAX, 0, &data, &n, err);
        if (r == -ENOENT && missing_ok) {
                pinlet_error_free(err ? TAKE_PTR(*err) : NULL);
                return 0;
        }
        if (r < 0)
                return pinlet_error_wrap(err, r, "%s", path);
        return pinlet_regconf_add(c, path, data, n, err);
}

int pinlet_regconf_read(const char *path, const char *dropin_dir, struct pinlet_regconf **ret,
                        struct pinlet_error **err)
{
        _cleanup_(pinlet_regconf_freep) struct pinlet_regconf *c = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        char *files[PINLET_HOSTS_DIR_FILES_MAX];
        size_t n = 0;
        struct dirent *de;
        int r;

        if (pinlet_regconf_new(&c) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        r = add_file(c, path, true, err);
        if (r < 0)
                return r;
        d = dropin_dir ? opendir(dropin_dir) : NULL;
        while (d && (de = readdir(d)))
                if (de->d_name[0] != '.' && strlen(de->d_name) > 5 &&
                    strcmp(de->d_name + strlen(de->d_name) - 5, ".conf") == 0) {
                        if (n == PINLET_HOSTS_DIR_FILES_MAX) {
                                r = pinlet_error_set(err, PINLET_E2BIG, "%s: more than %d drop-ins",
                                                     dropin_dir, PINLET_HOSTS_DIR_FILES_MAX);
                                break;
                        }
                        if (asprintf(&files[n], "%s/%s", dropin_dir, de->d_name) < 0) {
                                r = pinlet_error_set(err, -ENOMEM, "out of memory");
                                break;
                        }
                        n++;
                }
        qsort(files, n, sizeof(*files), name_cmp);
        for (size_t i = 0; i < n; i++) {
                if (r >= 0)
                        r = add_file(c, files[i], true, err);
                free(files[i]);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* How much of ref ("host/path") prefix matches: 0 for none, else its length. */
static size_t match_len(const char *prefix, const char *ref)
{
        size_t n;

        if (prefix[0] == '*') {
                size_t hl = strcspn(ref, "/"), sl = strlen(prefix + 1);

                /* "*.example.com" matches "a.example.com", not "example.com" itself */
                if (hl > sl && strncasecmp(ref + hl - sl, prefix + 1, sl) == 0)
                        return hl;
                return 0;
        }
        n = strlen(prefix);
        if (strncmp(ref, prefix, n) == 0 && (ref[n] == '\0' || ref[n] == '/'))
                return n;
        return 0;
}

/* Appends the endpoint(s) for the rewritten reference "host/path" with caps: insecure
 * gives https without verification, then http. */
static int add_endpoint(struct pinlet_hosts_list *l, const char *rewritten, bool insecure,
                        unsigned caps, const char *ref_path, struct pinlet_error **err)
{
        size_t hl = strcspn(rewritten, "/");
        _cleanup_free_ char *host = strndup(rewritten, hl);
        const char *repo = rewritten[hl] ? rewritten + hl + 1 : ref_path;
        const char *api;

        if (!host)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        api = strcasecmp(host, "docker.io") == 0 ? "registry-1.docker.io" : host;
        for (int pass = 0; pass < (insecure ? 2 : 1); pass++) {
                struct pinlet_hosts_endpoint *e = pinlet_hosts_list_add(l);
                _cleanup_free_ char *url = NULL;
                int r;

                if (!e)
                        return pinlet_error_set(err, PINLET_E2BIG, "too many endpoints");
                if (asprintf(&url, "%s://%s", pass ? "http" : "https", api) < 0)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                r = pinlet_hosts_endpoint_set_url(e, url, false);
                if (r < 0)
                        return pinlet_error_set(err, r == -ENOMEM ? r : PINLET_EINVAL,
                                                "%s: not a valid location", rewritten);
                e->caps = caps;
                e->skip_verify = insecure;
                if (!(e->repo = strdup(repo)))
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        return 0;
}

int pinlet_regconf_endpoints(const struct pinlet_regconf *c, const char *registry, const char *path,
                             struct pinlet_hosts_list **ret, struct pinlet_error **err)
{
        _cleanup_(pinlet_hosts_list_unrefp) struct pinlet_hosts_list *l = NULL;
        _cleanup_free_ char *ref = NULL, *lower = NULL;
        const struct rc_registry *best = NULL;
        size_t best_len = 0, mlen;
        int r;

        if (asprintf(&ref, "%s/%s", registry, path) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        /* the host part compares case-insensitively: registries.conf hosts are written
         * in lower case, references may not be */
        for (char *p = ref; *p && *p != '/'; p++)
                *p = (char)tolower((unsigned char)*p);
        for (size_t i = 0; c && i < c->n_regs; i++) {
                size_t n = match_len(c->regs[i].prefix, ref);

                if (n > best_len) {
                        best_len = n;
                        best = &c->regs[i];
                }
        }
        if (!best)
                return pinlet_hosts_default(registry, ret, err);
        if (!(l = pinlet_hosts_list_new()) || !(l->source = strdup(best->prefix)))
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        l->blocked = best->blocked;
        mlen = best_len;
        for (size_t i = 0; i < best->n_mirrors; i++) {
                const struct rc_mirror *m = &best->mirrors[i];
                _cleanup_free_ char *rw = NULL;
                /* a digest-only mirror (and every mirror under mirror-by-digest-only) is
                 * never asked for a tag, only for content by digest: "pull" without
                 * "resolve", as containerd's capabilities say it */
                unsigned caps = best->mirror_by_digest_only || m->pull_from == PULL_FROM_DIGEST_ONLY
                                        ? PINLET_HOSTS_CAP_PULL
                                        : PINLET_HOSTS_CAP_PULL | PINLET_HOSTS_CAP_RESOLVE;

                if (asprintf(&rw, "%s%s", m->location, ref + mlen) < 0)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                if ((r = add_endpoint(l, rw, m->insecure, caps, path, err)) < 0)
                        return r;
        }
        {
                _cleanup_free_ char *rw = NULL;

                /* a wildcard keeps the matched host: the reference as it is */
                if (asprintf(&rw, "%s%s", best->location ? best->location : "",
                             best->location ? ref + mlen : ref) < 0)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                if ((r = add_endpoint(l, rw, best->insecure,
                                      PINLET_HOSTS_CAP_PULL | PINLET_HOSTS_CAP_RESOLVE, path,
                                      err)) < 0)
                        return r;
        }
        (void)lower;
        *ret = TAKE_PTR(l);
        return 0;
}

/* "a, b, c": the search registries for a message. */
static char *search_list(char *const *search)
{
        size_t len = 1;
        char *s;

        for (char *const *p = search; p && *p; p++)
                len += strlen(*p) + 2;
        s = calloc(1, len);
        for (char *const *p = search; s && p && *p; p++) {
                if (p != search)
                        strcat(s, ", ");
                strcat(s, *p);
        }
        return s;
}

int pinlet_regconf_short_name(const struct pinlet_regconf *c, const char *name, char **ret_name,
                              char **ret_reason)
{
        _cleanup_free_ char *list = NULL;
        size_t n = 0;
        bool hub;

        *ret_name = NULL;
        *ret_reason = NULL;
        /* the last file that names the alias decides; "" erases it (the search registries
         * apply again) */
        for (size_t i = 0; c && i < c->n_aliases; i++)
                if (strcmp(c->alias_names[i], name) == 0) {
                        _cleanup_free_ char *bare = NULL;

                        if (!*c->alias_values[i])
                                break;
                        /* containers refuses a value that is no fully qualified name (its
                         * first element a registry host), so the runtime resolves nothing */
                        bare = pinlet_ref_short_name(c->alias_values[i]);
                        if (bare || !strchr(c->alias_values[i], '/')) {
                                if (asprintf(ret_reason,
                                             "short name '%s': its alias '%s' names no registry",
                                             name, c->alias_values[i]) < 0) {
                                        *ret_reason = NULL;
                                        return -ENOMEM;
                                }
                                return 0;
                        }
                        *ret_name = strdup(c->alias_values[i]);
                        return *ret_name ? 1 : -ENOMEM;
                }
        for (char **p = c ? c->search : NULL; p && *p; p++)
                n++;
        if (n == 0) {
                if (asprintf(ret_reason,
                             "short name '%s': no alias and no unqualified-search-registries; "
                             "the runtime refuses it",
                             name) < 0) {
                        *ret_reason = NULL;
                        return -ENOMEM;
                }
                return 0;
        }
        hub = strcmp(c->search[0], "docker.io") == 0;
        if (!hub && n > 1) {
                if (!(list = search_list(c->search)) ||
                    asprintf(ret_reason,
                             "short name '%s' is ambiguous: unqualified-search-registries has %s",
                             name, list) < 0) {
                        *ret_reason = NULL;
                        return -ENOMEM;
                }
                return 0;
        }
        /* docker.io first: what containerd and kubelet make of the name too, and where the
         * runtime looks first; a single other registry: the only place it looks */
        if (asprintf(ret_name, "%s/%s%s", c->search[0], hub && !strchr(name, '/') ? "library/" : "",
                     name) < 0) {
                *ret_name = NULL;
                return -ENOMEM;
        }
        if (n > 1 && (!(list = search_list(c->search + 1)) ||
                      asprintf(ret_reason,
                               "short name '%s': docker.io did not answer for it, and the runtime "
                               "would try the next unqualified-search-registries (%s)",
                               name, list) < 0)) {
                free(TAKE_PTR(*ret_name));
                *ret_reason = NULL;
                return -ENOMEM;
        }
        return 1;
}
