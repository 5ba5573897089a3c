/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd's registry host directory (hosts.toml and the Docker certificate layout),
 * endpoint lists, and the stat-validated cache in front of both file formats. See
 * hosts.h for the semantics; the quirks below name the containerd code they follow
 * (remotes/docker/config/hosts.go, 1.6 and 1.7).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "hosts/hosts.h"
#include "hosts/internal.h"
#include "util/io.h"

/* ---- lists ---- */

static void strv_free(char **v)
{
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

int pinlet_hosts_strv_push(char ***v, const char *s)
{
        size_t n = 0;
        char **nv, *d;

        for (char **p = *v; p && *p; p++)
                n++;
        d = strdup(s);
        if (!d)
                return -ENOMEM;
        nv = realloc(*v, (n + 2) * sizeof(*nv));
        if (!nv) {
                free(d);
                return -ENOMEM;
        }
        nv[n] = d;
        nv[n + 1] = NULL;
        *v = nv;
        return 0;
}

static void endpoint_done(struct pinlet_hosts_endpoint *e)
{
        free(e->url);
        free(e->host);
        free(e->path);
        free(e->repo);
        strv_free(e->ca_files);
        strv_free(e->cert_files);
        strv_free(e->key_files);
        strv_free(e->headers);
        *e = (struct pinlet_hosts_endpoint){ 0 };
}

struct pinlet_hosts_list *pinlet_hosts_list_new(void)
{
        struct pinlet_hosts_list *l = calloc(1, sizeof(*l));

        if (l)
                atomic_init(&l->refs, 1);
        return l;
}

struct pinlet_hosts_list *pinlet_hosts_list_ref(struct pinlet_hosts_list *l)
{
        if (l)
                atomic_fetch_add(&l->refs, 1);
        return l;
}

void pinlet_hosts_list_unref(struct pinlet_hosts_list *l)
{
        if (!l || atomic_fetch_sub(&l->refs, 1) != 1)
                return;
        for (size_t i = 0; i < l->n; i++)
                endpoint_done(&l->v[i]);
        free(l->v);
        free(l->source);
        free(l);
}

/* A new zeroed endpoint at the end of l. */
struct pinlet_hosts_endpoint *pinlet_hosts_list_add(struct pinlet_hosts_list *l)
{
        struct pinlet_hosts_endpoint *v;

        if (l->n >= PINLET_HOSTS_ENDPOINTS_MAX)
                return NULL;
        v = realloc(l->v, (l->n + 1) * sizeof(*v));
        if (!v)
                return NULL;
        l->v = v;
        v[l->n] = (struct pinlet_hosts_endpoint){ 0 };
        return &v[l->n++];
}

/* "host[:port]" (host: letters, digits, '.', '-', '_', or an [IPv6] literal; port: 1 to
 * 5 digits): nothing that could smuggle a path, user info or a second URL. */
static bool host_valid(const char *s, size_t n)
{
        size_t i = 0;

        if (n > 0 && s[0] == '[') {
                while (i < n && s[i] != ']')
                        i++;
                if (i == n)
                        return false;
                for (size_t j = 1; j < i; j++)
                        if (!isxdigit((unsigned char)s[j]) && s[j] != ':' && s[j] != '.')
                                return false;
                i++;
        } else {
                while (i < n &&
                       (isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '-' || s[i] == '_'))
                        i++;
                if (i == 0)
                        return false;
        }
        if (i == n)
                return true;
        if (s[i] != ':' || n - i < 2 || n - i > 6)
                return false;
        for (i++; i < n; i++)
                if (!isdigit((unsigned char)s[i]))
                        return false;
        return true;
}

/*
 * Sets e's url, host and path from a server or host key, as containerd's
 * parseHostConfig: no "http" prefix means https://; the path is cleaned and "/v2"
 * appended unless it ends with it or override_path is set.
 */
int pinlet_hosts_endpoint_set_url(struct pinlet_hosts_endpoint *e, const char *url,
                                  bool override_path)
{
        _cleanup_free_ char *full = NULL;
        const char *p, *hs, *he;
        size_t plen;

        if (strncasecmp(url, "http", 4) != 0) {
                if (asprintf(&full, "https://%s", url) < 0)
                        return -ENOMEM;
        } else if (!(full = strdup(url))) {
                return -ENOMEM;
        }
        p = strstr(full, "://");
        if (!p)
                return -EINVAL;
        for (char *c = full; c < p; c++)
                *c = (char)tolower((unsigned char)*c);
        if (strncmp(full, "https://", 8) != 0 && strncmp(full, "http://", 7) != 0)
                return -EINVAL;
        hs = p + 3;
        he = hs + strcspn(hs, "/?#");
        if (!host_valid(hs, (size_t)(he - hs)))
                return -EINVAL; /* no host, user info, a bad port: not a registry URL */
        for (char *c = (char *)hs; c < he; c++)
                *c = (char)tolower((unsigned char)*c);
        if (asprintf(&e->url, "%.*s", (int)(he - full), full) < 0)
                return -ENOMEM;
        /* the config key form of the host: default port left out */
        plen = (size_t)(he - hs);
        if (strncmp(full, "https", 5) == 0 && plen > 4 && memcmp(he - 4, ":443", 4) == 0)
                plen -= 4;
        else if (strncmp(full, "http:", 5) == 0 && plen > 3 && memcmp(he - 3, ":80", 3) == 0)
                plen -= 3;
        e->host = strndup(hs, plen);
        if (!e->host)
                return -ENOMEM;
        {
                /* path.Clean, enough of it: collapse "//" and drop a trailing '/' */
                char path[1024];
                size_t n = 0;

                for (const char *c = he; *c && *c != '?' && *c != '#'; c++) {
                        if (*c == '/' && n > 0 && path[n - 1] == '/')
                                continue;
                        if (n + 1 >= sizeof(path) - 4)
                                return -EINVAL;
                        path[n++] = *c;
                }
                while (n > 0 && path[n - 1] == '/')
                        n--;
                path[n] = 0;
                if (!override_path && !(n >= 3 && strcmp(path + n - 3, "/v2") == 0))
                        strcat(path, "/v2");
                e->path = strdup(path);
        }
        return e->path ? 0 : -ENOMEM;
}

int pinlet_hosts_default(const char *registry, struct pinlet_hosts_list **ret,
                         struct pinlet_error **err)
{
        _cleanup_(pinlet_hosts_list_unrefp) struct pinlet_hosts_list *l = pinlet_hosts_list_new();
        struct pinlet_hosts_endpoint *e;
        const char *api =
                strcasecmp(registry, "docker.io") == 0 ? "registry-1.docker.io" : registry;
        int r;

        if (!l || !(e = pinlet_hosts_list_add(l)))
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        e->caps = PINLET_HOSTS_CAP_ALL;
        r = pinlet_hosts_endpoint_set_url(e, api, false);
        if (r < 0)
                return pinlet_error_set(err, r == -ENOMEM ? r : PINLET_EINVAL,
                                        "registry %s: not a valid host", registry);
        *ret = TAKE_PTR(l);
        return 0;
}

int pinlet_hosts_from_urls(const char *registry, char *const *urls, struct pinlet_hosts_list **ret,
                           struct pinlet_error **err)
{
        _cleanup_(pinlet_hosts_list_unrefp) struct pinlet_hosts_list *l = NULL;
        struct pinlet_hosts_list *def = NULL;
        struct pinlet_hosts_endpoint *e;
        int r;

        r = pinlet_hosts_default(registry, &def, err);
        if (r < 0)
                return r;
        l = pinlet_hosts_list_new();
        if (!l) {
                pinlet_hosts_list_unref(def);
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        for (char *const *u = urls; u && *u; u++) {
                if (!(e = pinlet_hosts_list_add(l))) {
                        pinlet_hosts_list_unref(def);
                        return pinlet_error_set(err, PINLET_E2BIG, "registry %s: too many mirrors",
                                                registry);
                }
                e->caps = PINLET_HOSTS_CAP_ALL;
                r = pinlet_hosts_endpoint_set_url(e, *u, false);
                if (r < 0) {
                        pinlet_hosts_list_unref(def);
                        return pinlet_error_set(err, r == -ENOMEM ? r : PINLET_EINVAL,
                                                "registry %s: mirror '%s' is not a registry URL",
                                                registry, *u);
                }
        }
        /* the server: moved over from the default list */
        if (!(e = pinlet_hosts_list_add(l))) {
                pinlet_hosts_list_unref(def);
                return pinlet_error_set(err, PINLET_E2BIG, "registry %s: too many mirrors",
                                        registry);
        }
        *e = def->v[0];
        def->n = 0;
        pinlet_hosts_list_unref(def);
        *ret = TAKE_PTR(l);
        return 0;
}

/* ---- hosts.toml ---- */

struct tctx {
        const char *name; /* the file, for messages */
        const char *base_dir;
        struct pinlet_error **err;
};

static int type_error(struct tctx *c, const struct pinlet_toml_value *v, const char *key,
                      const char *want)
{
        return pinlet_error_set(c->err, PINLET_EINVAL, "%s:%u: '%s' must be %s, not a %s", c->name,
                                v->line, key, want, pinlet_toml_type_name(v->type));
}

static int abs_path(struct tctx *c, const char *p, char **ret)
{
        if (p[0] == '/')
                *ret = strdup(p);
        else if (asprintf(ret, "%s/%s", c->base_dir, p) < 0)
                *ret = NULL;
        return *ret ? 0 : pinlet_error_set(c->err, -ENOMEM, "out of memory");
}

static int push_path(struct tctx *c, char ***v, const char *p)
{
        _cleanup_free_ char *a = NULL;
        int r = abs_path(c, p, &a);

        if (r >= 0 && pinlet_hosts_strv_push(v, a) < 0)
                r = pinlet_error_set(c->err, -ENOMEM, "out of memory");
        return r;
}

static int read_ca(struct tctx *c, const struct pinlet_toml_value *v,
                   struct pinlet_hosts_endpoint *e)
{
        int r;

        if (v->type == PINLET_TOML_STRING)
                return push_path(c, &e->ca_files, v->string);
        if (v->type != PINLET_TOML_ARRAY)
                return type_error(c, v, "ca", "a string or an array of strings");
        for (size_t i = 0; i < v->n; i++) {
                if (v->items[i]->type != PINLET_TOML_STRING)
                        return type_error(c, v->items[i], "ca", "a string");
                if ((r = push_path(c, &e->ca_files, v->items[i]->string)) < 0)
                        return r;
        }
        return 0;
}

/* client: "cert" | ["cert", ...] | [["cert", "key"], ...]; a pair's key may be "" (the
 * key is in the cert file, as containerd then reads it). */
static int read_client(struct tctx *c, const struct pinlet_toml_value *v,
                       struct pinlet_hosts_endpoint *e)
{
        int r;

        if (v->type == PINLET_TOML_STRING) {
                if ((r = push_path(c, &e->cert_files, v->string)) < 0)
                        return r;
                return push_path(c, &e->key_files, v->string);
        }
        if (v->type != PINLET_TOML_ARRAY)
                return type_error(c, v, "client", "a string or an array");
        for (size_t i = 0; i < v->n; i++) {
                const struct pinlet_toml_value *it = v->items[i];
                const char *cert, *key;

                if (it->type == PINLET_TOML_STRING) {
                        cert = key = it->string;
                } else if (it->type == PINLET_TOML_ARRAY && it->n >= 1 && it->n <= 2 &&
                           it->items[0]->type == PINLET_TOML_STRING &&
                           (it->n == 1 || it->items[1]->type == PINLET_TOML_STRING)) {
                        cert = it->items[0]->string;
                        key = it->n == 2 && *it->items[1]->string ? it->items[1]->string : cert;
                } else {
                        return type_error(c, it, "client", "a string or a [cert, key] pair");
                }
                if ((r = push_path(c, &e->cert_files, cert)) < 0 ||
                    (r = push_path(c, &e->key_files, key)) < 0)
                        return r;
        }
        return 0;
}

static int read_headers(struct tctx *c, const struct pinlet_toml_value *v,
                        struct pinlet_hosts_endpoint *e)
{
        if (v->type != PINLET_TOML_TABLE)
                return type_error(c, v, "header", "a table");
        for (size_t i = 0; i < v->n; i++) {
                const struct pinlet_toml_value *hv = v->items[i];
                const char *name = v->keys[i];
                size_t nv = hv->type == PINLET_TOML_ARRAY ? hv->n : 1;

                /* a header name is a token; CR/LF in a value would split the request */
                if (!*name || strpbrk(name, " \t:\r\n"))
                        return pinlet_error_set(c->err, PINLET_EINVAL,
                                                "%s:%u: '%s' is not a header name", c->name,
                                                hv->line, name);
                if (hv->type != PINLET_TOML_STRING && hv->type != PINLET_TOML_ARRAY)
                        return type_error(c, hv, name, "a string or an array of strings");
                for (size_t j = 0; j < nv; j++) {
                        const struct pinlet_toml_value *s =
                                hv->type == PINLET_TOML_ARRAY ? hv->items[j] : hv;
                        _cleanup_free_ char *line = NULL;

                        if (s->type != PINLET_TOML_STRING)
                                return type_error(c, s, name, "a string");
                        if (strpbrk(s->string, "\r\n"))
                                return pinlet_error_set(c->err, PINLET_EINVAL,
                                                        "%s:%u: header '%s' holds a line break",
                                                        c->name, s->line, name);
                        if (asprintf(&line, "%s: %s", name, s->string) < 0 ||
                            pinlet_hosts_strv_push(&e->headers, line) < 0)
                                return pinlet_error_set(c->err, -ENOMEM, "out of memory");
                }
        }
        return 0;
}

/* The keys shared by the root (server) and [host."..."] tables. */
static int read_host_table(struct tctx *c, const struct pinlet_toml_value *t, const char *url,
                           unsigned line, struct pinlet_hosts_endpoint *e)
{
        const struct pinlet_toml_value *v;
        bool override_path = false;
        int r;

        if ((v = pinlet_toml_get(t, "override_path"))) {
                if (v->type != PINLET_TOML_BOOL)
                        return type_error(c, v, "override_path", "a boolean");
                override_path = v->boolean;
        }
        r = pinlet_hosts_endpoint_set_url(e, url, override_path);
        if (r == -ENOMEM)
                return pinlet_error_set(c->err, r, "out of memory");
        if (r < 0)
                return pinlet_error_set(c->err, PINLET_EINVAL, "%s:%u: '%s' is not a registry URL",
                                        c->name, line, url);
        if ((v = pinlet_toml_get(t, "capabilities"))) {
                if (v->type != PINLET_TOML_ARRAY)
                        return type_error(c, v, "capabilities", "an array of strings");
                for (size_t i = 0; i < v->n; i++) {
                        const struct pinlet_toml_value *s = v->items[i];

                        if (s->type != PINLET_TOML_STRING)
                                return type_error(c, s, "capabilities", "a string");
                        /* containerd lowercases them and ignores unknown ones */
                        if (strcasecmp(s->string, "pull") == 0)
                                e->caps |= PINLET_HOSTS_CAP_PULL;
                        else if (strcasecmp(s->string, "resolve") == 0)
                                e->caps |= PINLET_HOSTS_CAP_RESOLVE;
                        else if (strcasecmp(s->string, "push") == 0)
                                e->caps |= PINLET_HOSTS_CAP_PUSH;
                }
        } else {
                e->caps = PINLET_HOSTS_CAP_ALL;
        }
        if ((v = pinlet_toml_get(t, "ca")) && (r = read_ca(c, v, e)) < 0)
                return r;
        if ((v = pinlet_toml_get(t, "client")) && (r = read_client(c, v, e)) < 0)
                return r;
        if ((v = pinlet_toml_get(t, "skip_verify"))) {
                if (v->type != PINLET_TOML_BOOL)
                        return type_error(c, v, "skip_verify", "a boolean");
                e->skip_verify = v->boolean;
        }
        if ((v = pinlet_toml_get(t, "header")) && (r = read_headers(c, v, e)) < 0)
                return r;
        return 0;
}

int pinlet_hosts_containerd_parse(const char *name, const char *data, size_t len,
                                  const char *registry, const char *base_dir,
                                  struct pinlet_hosts_list **ret, struct pinlet_error **err)
{
        _cleanup_(pinlet_toml_freep) struct pinlet_toml_value *root = NULL;
        _cleanup_(pinlet_hosts_list_unrefp) struct pinlet_hosts_list *l = pinlet_hosts_list_new();
        struct tctx c = { .name = name, .base_dir = base_dir, .err = err };
        const struct pinlet_toml_value *hosts, *server;
        struct pinlet_hosts_endpoint *e;
        const char *server_url;
        int r;

        if (!l || !(l->source = strdup(name)))
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        r = pinlet_toml_parse(name, data, len, &root, err);
        if (r < 0)
                return r;
        /* [host."URL"] in file order (containerd sorts them by line: getSortedHosts) */
        hosts = pinlet_toml_get(root, "host");
        if (hosts && hosts->type != PINLET_TOML_TABLE)
                return type_error(&c, hosts, "host", "a table of [host.\"URL\"] tables");
        for (size_t i = 0; hosts && i < hosts->n; i++) {
                if (hosts->items[i]->type != PINLET_TOML_TABLE)
                        return type_error(&c, hosts->items[i], "host", "a table");
                if (!(e = pinlet_hosts_list_add(l)))
                        return pinlet_error_set(
                                err, l->n >= PINLET_HOSTS_ENDPOINTS_MAX ? PINLET_E2BIG : -ENOMEM,
                                "%s: more than %d hosts", name, PINLET_HOSTS_ENDPOINTS_MAX);
                r = read_host_table(&c, hosts->items[i], hosts->keys[i], hosts->items[i]->line, e);
                if (r < 0)
                        return r;
        }
        /* the server last, with the root-level settings */
        server = pinlet_toml_get(root, "server");
        if (server && server->type != PINLET_TOML_STRING)
                return type_error(&c, server, "server", "a string");
        server_url = server                                   ? server->string
                     : strcasecmp(registry, "docker.io") == 0 ? "registry-1.docker.io"
                                                              : registry;
        if (!(e = pinlet_hosts_list_add(l)))
                return pinlet_error_set(err, -ENOMEM, "%s: too many hosts", name);
        r = read_host_table(&c, root, server_url, server ? server->line : 1, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *s, const char *suffix)
{
        size_t n = strlen(s), m = strlen(suffix);

        return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Docker's certificate layout in dir (containerd's loadCertFiles): one endpoint, the
 * registry's default server, with the CAs and client pairs found. */
static int read_cert_dir(const char *dir, const char *registry, struct pinlet_hosts_list **ret,
                         struct pinlet_error **err)
{
        _cleanup_(pinlet_hosts_list_unrefp) struct pinlet_hosts_list *l = NULL;
        _cleanup_(closedirp) DIR *d = opendir(dir);
        char *names[PINLET_HOSTS_DIR_FILES_MAX];
        size_t n = 0;
        struct dirent *de;
        struct pinlet_hosts_endpoint *e;
        int r = 0;

        if (!d)
                return pinlet_error_set(err, -errno, "%s: %s", dir, strerror(errno));
        while ((de = readdir(d))) {
                if (!has_suffix(de->d_name, ".crt") && !has_suffix(de->d_name, ".cert") &&
                    !has_suffix(de->d_name, ".key"))
                        continue;
                if (n == PINLET_HOSTS_DIR_FILES_MAX) {
                        r = pinlet_error_set(err, PINLET_E2BIG,
                                             "%s: more than %d certificate files", dir,
                                             PINLET_HOSTS_DIR_FILES_MAX);
                        goto out;
                }
                if (!(names[n] = strdup(de->d_name))) {
                        r = pinlet_error_set(err, -ENOMEM, "out of memory");
                        goto out;
                }
                n++;
        }
        qsort(names, n, sizeof(*names), name_cmp); /* os.ReadDir sorts by name */
        r = pinlet_hosts_default(registry, &l, err);
        if (r < 0)
                goto out;
        free(l->source);
        if (!(l->source = strdup(dir))) {
                r = pinlet_error_set(err, -ENOMEM, "out of memory");
                goto out;
        }
        e = &l->v[0];
        for (size_t i = 0; i < n && r >= 0; i++) {
                _cleanup_free_ char *path = NULL, *other = NULL, *base = NULL;
                const char *nm = names[i];

                if (asprintf(&path, "%s/%s", dir, nm) < 0) {
                        r = pinlet_error_set(err, -ENOMEM, "out of memory");
                        break;
                }
                if (has_suffix(nm, ".crt")) {
                        if (pinlet_hosts_strv_push(&e->ca_files, path) < 0)
                                r = pinlet_error_set(err, -ENOMEM, "out of memory");
                        continue;
                }
                base = strndup(nm, strlen(nm) - (has_suffix(nm, ".key") ? 4 : 5));
                if (!base || asprintf(&other, "%s/%s%s", dir, base,
                                      has_suffix(nm, ".key") ? ".cert" : ".key") < 0) {
                        r = pinlet_error_set(err, -ENOMEM, "out of memory");
                        break;
                }
                if (access(other, F_OK) < 0) {
                        r = pinlet_error_set(err, PINLET_EINVAL, "%s: %s has no matching %s", dir,
                                             nm, strrchr(other, '/') + 1);
                        break;
                }
                if (has_suffix(nm, ".cert") && (pinlet_hosts_strv_push(&e->cert_files, path) < 0 ||
                                                pinlet_hosts_strv_push(&e->key_files, other) < 0))
                        r = pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        if (r >= 0)
                *ret = TAKE_PTR(l);
out:
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        return r;
}

/* The directory containerd would use for registry: <dir>/R, else <dir>/_default, else
 * none (containerd's hostPaths + HostDirFromRoot: the first that exists). */
int pinlet_hosts_containerd_dirs(const char *hosts_dir, const char *registry, char **ret_dirs)
{
        if (strchr(registry, '/') || strcmp(registry, ".") == 0 || strcmp(registry, "..") == 0 ||
            !*registry)
                return -EINVAL; /* never a path outside hosts_dir */
        if (asprintf(&ret_dirs[0], "%s/%s", hosts_dir, registry) < 0)
                return -ENOMEM;
        if (asprintf(&ret_dirs[1], "%s/_default", hosts_dir) < 0) {
                free(ret_dirs[0]);
                return -ENOMEM;
        }
        return 0;
}

int pinlet_hosts_containerd_read(const char *hosts_dir, const char *registry,
                                 struct pinlet_hosts_list **ret, struct pinlet_error **err)
{
        char *dirs[2] = { 0 };
        int r;

        r = pinlet_hosts_containerd_dirs(hosts_dir, registry, dirs);
        if (r < 0)
                return pinlet_error_set(err, r == -ENOMEM ? r : PINLET_EINVAL,
                                        "registry %s: not a valid host", registry);
        r = 1;
        for (size_t i = 0; i < 2 && r > 0; i++) {
                _cleanup_free_ char *file = NULL, *data = NULL;
                struct stat st;
                size_t n = 0;

                if (stat(dirs[i], &st) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                if (asprintf(&file, "%s/hosts.toml", dirs[i]) < 0) {
                        r = pinlet_error_set(err, -ENOMEM, "out of memory");
                        break;
                }
                r = pinlet_io_read_file(file, PINLET_TOML_SIZE_MAX, 0, &data, &n, err);
                if (r == -ENOENT || (r >= 0 && n == 0)) {
                        /* no (or an empty) hosts.toml: the certificate layout */
                        pinlet_error_free(err ? TAKE_PTR(*err) : NULL);
                        r = read_cert_dir(dirs[i], registry, ret, err);
                } else if (r >= 0) {
                        r = pinlet_hosts_containerd_parse(file, data, n, registry, dirs[i], ret,
                                                          err);
                }
        }
        free(dirs[0]);
        free(dirs[1]);
        if (r > 0)
                return pinlet_hosts_default(registry, ret, err);
        return r;
}

/* ---- the cache ---- */

/* What a file or directory looked like: any change of these means "read again". */
struct sig {
        bool exists;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime;
        struct timespec ctime;
};

static void sig_of(const char *path, struct sig *s)
{
        struct stat st;

        *s = (struct sig){ 0 };
        if (stat(path, &st) < 0)
                return;
        *s = (struct sig){ .exists = true,
                           .dev = st.st_dev,
                           .ino = st.st_ino,
                           .size = st.st_size,
                           .mtime = st.st_mtim,
                           .ctime = st.st_ctim };
}

static bool sig_eq(const struct sig *a, const struct sig *b)
{
        return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
               a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
               a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
               a->ctime.tv_nsec == b->ctime.tv_nsec;
}

#define SIGS_MAX 4 /* <dir>/R, its hosts.toml, <dir>/_default, its hosts.toml */

struct entry {
        char *registry; /* lowercased */
        struct sig sigs[SIGS_MAX];
        struct pinlet_hosts_list *list;
        unsigned long used; /* for eviction: the least recently used goes */
};

/* registries.conf, its drop-in directory, short-name-aliases.conf, each drop-in */
#define REGCONF_SIGS_MAX (3 + PINLET_HOSTS_DIR_FILES_MAX)

struct pinlet_hosts {
        char *hosts_dir;
        char *registries_conf;
        char *registries_conf_d;
        char *short_name_aliases;

        pthread_mutex_t lock;
        struct entry entries[PINLET_HOSTS_CACHE_MAX];
        size_t n_entries;
        unsigned long clock;

        /* registries.conf: one parsed configuration, checked against every file's sig */
        struct pinlet_regconf *regconf;
        struct sig regconf_sigs[REGCONF_SIGS_MAX];
        char *regconf_files[PINLET_HOSTS_DIR_FILES_MAX];
        size_t n_regconf_files;
};

int pinlet_hosts_new(const struct pinlet_hosts_options *o, struct pinlet_hosts **ret,
                     struct pinlet_error **err)
{
        _cleanup_(pinlet_hosts_freep) struct pinlet_hosts *h = calloc(1, sizeof(*h));

        if (!h)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        pthread_mutex_init(&h->lock, NULL);
        if ((o->hosts_dir && !(h->hosts_dir = strdup(o->hosts_dir))) ||
            (o->registries_conf && !(h->registries_conf = strdup(o->registries_conf))) ||
            (o->short_name_aliases && !(h->short_name_aliases = strdup(o->short_name_aliases))))
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        if (o->registries_conf_d) {
                h->registries_conf_d = strdup(o->registries_conf_d);
        } else if (o->registries_conf &&
                   asprintf(&h->registries_conf_d, "%s.d", o->registries_conf) < 0) {
                h->registries_conf_d = NULL;
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        if (o->registries_conf && !h->registries_conf_d)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        *ret = TAKE_PTR(h);
        return 0;
}

void pinlet_hosts_free(struct pinlet_hosts *h)
{
        if (!h)
                return;
        for (size_t i = 0; i < h->n_entries; i++) {
                free(h->entries[i].registry);
                pinlet_hosts_list_unref(h->entries[i].list);
        }
        for (size_t i = 0; i < h->n_regconf_files; i++)
                free(h->regconf_files[i]);
        pinlet_regconf_free(h->regconf);
        free(h->hosts_dir);
        free(h->registries_conf);
        free(h->registries_conf_d);
        free(h->short_name_aliases);
        pthread_mutex_destroy(&h->lock);
        free(h);
}

static void containerd_sigs(const char *hosts_dir, const char *registry, struct sig *s)
{
        char *dirs[2] = { 0 };

        for (size_t i = 0; i < SIGS_MAX; i++)
                s[i] = (struct sig){ 0 };
        if (pinlet_hosts_containerd_dirs(hosts_dir, registry, dirs) < 0)
                return;
        for (size_t i = 0; i < 2; i++) {
                _cleanup_free_ char *f = NULL;

                sig_of(dirs[i], &s[2 * i]);
                if (asprintf(&f, "%s/hosts.toml", dirs[i]) >= 0)
                        sig_of(f, &s[2 * i + 1]);
                free(dirs[i]);
        }
}

static int lookup_containerd(struct pinlet_hosts *h, const char *registry,
                             struct pinlet_hosts_list **ret, struct pinlet_error **err)
{
        _cleanup_free_ char *key = strdup(registry);
        struct sig now[SIGS_MAX];
        struct pinlet_hosts_list *l = NULL;
        struct entry *e = NULL;
        int r;

        if (!key)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        for (char *p = key; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        containerd_sigs(h->hosts_dir, key, now);

        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < h->n_entries; i++)
                if (strcmp(h->entries[i].registry, key) == 0) {
                        e = &h->entries[i];
                        break;
                }
        if (e) {
                bool same = true;

                for (size_t i = 0; i < SIGS_MAX && same; i++)
                        same = sig_eq(&e->sigs[i], &now[i]);
                if (same) {
                        e->used = ++h->clock;
                        *ret = pinlet_hosts_list_ref(e->list);
                        pthread_mutex_unlock(&h->lock);
                        return 0;
                }
        }
        pthread_mutex_unlock(&h->lock);

        /* read outside the lock: file I/O must not serialize every registry */
        r = pinlet_hosts_containerd_read(h->hosts_dir, key, &l, err);
        if (r < 0)
                return r;

        pthread_mutex_lock(&h->lock);
        e = NULL;
        for (size_t i = 0; i < h->n_entries; i++)
                if (strcmp(h->entries[i].registry, key) == 0)
                        e = &h->entries[i];
        if (!e && h->n_entries < PINLET_HOSTS_CACHE_MAX) {
                e = &h->entries[h->n_entries++];
                *e = (struct entry){ .registry = TAKE_PTR(key) };
        } else if (!e) {
                e = &h->entries[0];
                for (size_t i = 1; i < h->n_entries; i++)
                        if (h->entries[i].used < e->used)
                                e = &h->entries[i];
                free(e->registry);
                *e = (struct entry){ .registry = TAKE_PTR(key), .list = e->list };
        }
        pinlet_hosts_list_unref(e->list);
        e->list = pinlet_hosts_list_ref(l);
        memcpy(e->sigs, now, sizeof(now));
        e->used = ++h->clock;
        pthread_mutex_unlock(&h->lock);
        *ret = l;
        return 0;
}

/* The signatures of registries.conf, its drop-in directory, short-name-aliases.conf and
 * each drop-in (sorted by name, as read). Returns how many were taken. */
static size_t regconf_sigs(struct pinlet_hosts *h, struct sig *s, char **files, size_t *n_files)
{
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        size_t n = 0;

        sig_of(h->registries_conf, &s[0]);
        sig_of(h->registries_conf_d, &s[1]);
        if (h->short_name_aliases)
                sig_of(h->short_name_aliases, &s[2]);
        else
                s[2] = (struct sig){ 0 };
        d = opendir(h->registries_conf_d);
        while (d && (de = readdir(d)) && n < PINLET_HOSTS_DIR_FILES_MAX)
                if (has_suffix(de->d_name, ".conf") && de->d_name[0] != '.' &&
                    asprintf(&files[n], "%s/%s", h->registries_conf_d, de->d_name) >= 0)
                        n++;
        qsort(files, n, sizeof(*files), name_cmp);
        for (size_t i = 0; i < n; i++)
                sig_of(files[i], &s[3 + i]);
        *n_files = n;
        return 3 + n;
}

/* containers' short-name-aliases.conf over c (a missing file is no alias). */
static int add_short_name_aliases(struct pinlet_regconf *c, const char *path,
                                  struct pinlet_error **err)
{
        _cleanup_free_ char *data = NULL;
        size_t n = 0;
        int r;

        r = pinlet_io_read_file(path, PINLET_TOML_SIZE_MAX, 0, &data, &n, err);
        if (r == -ENOENT) {
                pinlet_error_free(err ? TAKE_PTR(*err) : NULL);
                return 0;
        }
        if (r < 0)
                return pinlet_error_wrap(err, r, "%s", path);
        return pinlet_regconf_add_aliases(c, path, data, n, err);
}

/* Calls fn with h's registries.conf as it is now (re-read when one of its files changed),
 * under h's lock. */
static int with_regconf(struct pinlet_hosts *h,
                        int (*fn)(const struct pinlet_regconf *c, void *userdata,
                                  struct pinlet_error **err),
                        void *userdata, struct pinlet_error **err)
{
        struct sig *now = calloc(REGCONF_SIGS_MAX, sizeof(*now));
        char *files[PINLET_HOSTS_DIR_FILES_MAX];
        size_t n_files = 0, n;
        bool same;
        int r = 0;

        if (!now)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        n = regconf_sigs(h, now, files, &n_files);
        pthread_mutex_lock(&h->lock);
        same = h->regconf && n_files == h->n_regconf_files;
        for (size_t i = 0; i < n_files && same; i++)
                same = strcmp(files[i], h->regconf_files[i]) == 0;
        for (size_t i = 0; i < n && same; i++)
                same = sig_eq(&now[i], &h->regconf_sigs[i]);
        if (!same) {
                /* read under the lock: one configuration for every registry, and a
                 * re-read is rare (a file changed) */
                struct pinlet_regconf *c = NULL;

                r = pinlet_regconf_read(h->registries_conf, h->registries_conf_d, &c, err);
                if (r >= 0 && h->short_name_aliases)
                        r = add_short_name_aliases(c, h->short_name_aliases, err);
                if (r < 0) {
                        pinlet_regconf_free(c);
                } else {
                        pinlet_regconf_free(h->regconf);
                        h->regconf = c;
                        for (size_t i = 0; i < h->n_regconf_files; i++)
                                free(h->regconf_files[i]);
                        memcpy(h->regconf_files, files, n_files * sizeof(*files));
                        h->n_regconf_files = n_files;
                        n_files = 0;
                        memcpy(h->regconf_sigs, now, n * sizeof(*now));
                }
        }
        if (r >= 0)
                r = fn(h->regconf, userdata, err);
        pthread_mutex_unlock(&h->lock);
        for (size_t i = 0; i < n_files; i++)
                free(files[i]);
        free(now);
        return r;
}

struct endpoints_args {
        const char *registry, *path;
        struct pinlet_hosts_list **ret;
};

static int regconf_endpoints(const struct pinlet_regconf *c, void *userdata,
                             struct pinlet_error **err)
{
        struct endpoints_args *a = userdata;

        return pinlet_regconf_endpoints(c, a->registry, a->path, a->ret, err);
}

static int lookup_regconf(struct pinlet_hosts *h, const char *registry, const char *path,
                          struct pinlet_hosts_list **ret, struct pinlet_error **err)
{
        struct endpoints_args a = { .registry = registry, .path = path, .ret = ret };

        return with_regconf(h, regconf_endpoints, &a, err);
}

struct short_name_args {
        const char *name;
        char **ret_name, **ret_reason;
};

static int regconf_short_name(const struct pinlet_regconf *c, void *userdata,
                              struct pinlet_error **err)
{
        struct short_name_args *a = userdata;
        int r = pinlet_regconf_short_name(c, a->name, a->ret_name, a->ret_reason);

        return r < 0 ? pinlet_error_set(err, r, "out of memory") : r;
}

int pinlet_hosts_short_name(struct pinlet_hosts *h, const char *name, char **ret_name,
                            char **ret_reason, struct pinlet_error **err)
{
        struct short_name_args a = { .name = name, .ret_name = ret_name, .ret_reason = ret_reason };

        if (!h || !h->registries_conf)
                return regconf_short_name(NULL, &a, err);
        return with_regconf(h, regconf_short_name, &a, err);
}

int pinlet_hosts_lookup(struct pinlet_hosts *h, const char *registry, const char *path,
                        struct pinlet_hosts_list **ret, struct pinlet_error **err)
{
        if (h && h->hosts_dir)
                return lookup_containerd(h, registry, ret, err);
        if (h && h->registries_conf)
                return lookup_regconf(h, registry, path, ret, err);
        return pinlet_hosts_default(registry, ret, err);
}
