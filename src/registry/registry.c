/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Registry API V2 client on libcurl: manifest HEAD/GET, WWW-Authenticate driven auth,
 * manual redirects (so the Authorization header never leaves its origin), bounded
 * responses, and error classification. See registry.h for the contract.
 */
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "registry/challenge.h"
#include "registry/credprov.h"
#include "registry/registry.h"
#include "registry/token.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/io.h"
#include "util/log.h"
#include "util/lru.h"

#define WWW_AUTH_MAX   16
#define ERROR_BODY_MAX (64 * 1024) /* error bodies are read this far, then dropped */

DEFINE_TRIVIAL_CLEANUP_FUNC(CURLU *, curl_url_cleanup)

enum auth_scheme {
        AUTH_NONE,
        AUTH_BASIC,
        AUTH_BEARER,
};

/* What a registry asked for last time, so the next resolution can authenticate up front
 * instead of paying a 401 round trip. Keyed by the lowercased reference domain. */
struct auth_hint {
        struct pinlet_lru_node node; /* key: host */
        char *host;
        enum auth_scheme scheme;
        char *realm;   /* bearer only */
        char *service; /* bearer only, may be NULL */
};

struct pinlet_registry {
        /* Owned deep copy of the creation options (options_copy()); hosts lowercased. */
        struct pinlet_registry_options o;
        CURLSH *share; /* DNS cache and TLS sessions */
        pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

        pthread_mutex_t pool_lock;
        CURL *pool[PINLET_REGISTRY_POOL_MAX]; /* idle handles with their live connections */
        size_t n_pool;

        struct pinlet_token_cache tokens;

        struct pinlet_hosts *hostsrc; /* hosts_dir / registries_conf, stat-validated */

        pthread_mutex_t hints_lock;
        struct pinlet_lru hints; /* of struct auth_hint, at most o.auth_hints_max */

        struct pinlet_credprov *credprov; /* owned; NULL without provider config */

        atomic_uint_fast64_t st_requests, st_manifest, st_token, st_resolutions;
};

const char *pinlet_registry_api_host(const char *domain)
{
        /* Docker Hub's API lives on registry-1.docker.io; "docker.io" itself redirects to
         * the website. */
        if (strcmp(domain, "docker.io") == 0 || strcmp(domain, "index.docker.io") == 0)
                return "registry-1.docker.io";
        return domain;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userp)
{
        struct pinlet_registry *r = userp;

        if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
                pthread_mutex_lock(&r->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userp)
{
        struct pinlet_registry *r = userp;

        if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
                pthread_mutex_unlock(&r->share_locks[data]);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
        curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int check_readable(const char *host, const char *what, const char *path,
                          struct pinlet_error **err)
{
        if (path && access(path, R_OK) < 0)
                return pinlet_error_set(err, PINLET_EINVAL, "registry %s: %s %s: %s", host, what,
                                        path, strerror(errno));
        return 0;
}

const struct pinlet_registry_host *
pinlet_registry_options_host(const struct pinlet_registry_options *o, const char *host)
{
        /* Registry hosts are case-insensitive (RFC 3986 3.2.2), and a port is digits: one
         * strcasecmp compares "host:port" correctly. */
        for (size_t i = 0; i < o->n_hosts; i++)
                if (o->hosts[i].host && strcasecmp(o->hosts[i].host, host) == 0)
                        return &o->hosts[i];
        return NULL;
}

static char *lowercase_dup(const char *s)
{
        char *d = strdup(s);

        for (char *p = d; p && *p; p++)
                *p = (char)tolower((unsigned char)*p);
        return d;
}

static int dup_or_null(const char *s, const char **ret)
{
        *ret = s ? strdup(s) : NULL;
        return s && !*ret ? -ENOMEM : 0;
}

/* A copy of the NULL-terminated src in *ret (NULL for NULL). */
static int strv_copy(char *const *src, char ***ret)
{
        size_t n = 0;
        char **v;

        *ret = NULL;
        for (char *const *p = src; p && *p; p++)
                n++;
        if (!src)
                return 0;
        v = calloc(n + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        *ret = v;
        for (size_t i = 0; i < n; i++)
                if (!(v[i] = strdup(src[i])))
                        return -ENOMEM;
        return 0;
}

/* Frees what options_copy() allocated (the const pointers are ours there). */
static void options_free_copy(struct pinlet_registry_options *o)
{
        struct pinlet_registry_host *hosts = (struct pinlet_registry_host *)o->hosts;

        for (size_t i = 0; i < o->n_hosts; i++) {
                free((char *)hosts[i].host);
                free((char *)hosts[i].ca_file);
                free((char *)hosts[i].cert_file);
                free((char *)hosts[i].key_file);
                for (char *const *m = hosts[i].mirrors; m && *m; m++)
                        free(*m);
                free((char **)hosts[i].mirrors);
        }
        free(hosts);
        free((char *)o->hosts_dir);
        free((char *)o->registries_conf);
        free((char *)o->short_name_aliases);
        for (char *const *p = o->docker_config_paths; p && *p; p++)
                free(*p);
        free((char **)o->docker_config_paths);
        *o = (struct pinlet_registry_options){ 0 };
}

/* A deep copy of src in *dst, hosts lowercased (normalized where they enter), defaults
 * filled in. On failure *dst holds what was copied so far: free it with
 * options_free_copy(). */
static int options_copy(const struct pinlet_registry_options *src,
                        struct pinlet_registry_options *dst)
{
        struct pinlet_registry_host *hosts;
        char **paths;
        size_t n = 0;

        *dst = (struct pinlet_registry_options){
                .connect_timeout_ms = src->connect_timeout_ms,
                .resolve_timeout_ms = src->resolve_timeout_ms,
                .token_cache_max = src->token_cache_max ?: PINLET_TOKEN_CACHE_MAX,
                .auth_hints_max = src->auth_hints_max ?: PINLET_REGISTRY_HINTS_MAX,
        };
        if (src->n_hosts > 0) {
                hosts = calloc(src->n_hosts, sizeof(*hosts));
                if (!hosts)
                        return -ENOMEM;
                dst->hosts = hosts;
                for (size_t i = 0; i < src->n_hosts; i++, dst->n_hosts++) {
                        const struct pinlet_registry_host *h = &src->hosts[i];

                        hosts[i] = (struct pinlet_registry_host){ .insecure = h->insecure,
                                                                  .skip_verify = h->skip_verify };
                        hosts[i].host = lowercase_dup(strempty(h->host));
                        if (!hosts[i].host || dup_or_null(h->ca_file, &hosts[i].ca_file) < 0 ||
                            dup_or_null(h->cert_file, &hosts[i].cert_file) < 0 ||
                            dup_or_null(h->key_file, &hosts[i].key_file) < 0 ||
                            strv_copy(h->mirrors, (char ***)&hosts[i].mirrors) < 0) {
                                dst->n_hosts++; /* so that the partial entry is freed */
                                return -ENOMEM;
                        }
                }
        }
        if (dup_or_null(src->hosts_dir, &dst->hosts_dir) < 0 ||
            dup_or_null(src->registries_conf, &dst->registries_conf) < 0 ||
            dup_or_null(src->short_name_aliases, &dst->short_name_aliases) < 0)
                return -ENOMEM;
        for (char *const *p = src->docker_config_paths; p && *p; p++)
                n++;
        if (n > 0) {
                paths = calloc(n + 1, sizeof(*paths));
                if (!paths)
                        return -ENOMEM;
                dst->docker_config_paths = paths;
                for (size_t i = 0; i < n; i++)
                        if (!(paths[i] = strdup(src->docker_config_paths[i])))
                                return -ENOMEM;
        }
        return 0;
}

static int check_options(const struct pinlet_registry_options *o, struct pinlet_error **err)
{
        int e;

        for (size_t i = 0; i < o->n_hosts; i++) {
                const struct pinlet_registry_host *h = &o->hosts[i];

                if (!h->host || !*h->host)
                        return pinlet_error_set(err, PINLET_EINVAL, "registry entry without host");
                if (pinlet_registry_options_host(o, h->host) != h)
                        return pinlet_error_set(err, PINLET_EINVAL,
                                                "registry %s is listed twice (host names "
                                                "compare case-insensitively)",
                                                h->host);
                if (h->mirrors) {
                        struct pinlet_hosts_list *l = NULL;

                        e = pinlet_hosts_from_urls(h->host, h->mirrors, &l, err);
                        pinlet_hosts_list_unref(l);
                        if (e < 0)
                                return e;
                }
                if ((e = check_readable(h->host, "ca_file", h->ca_file, err)) < 0 ||
                    (e = check_readable(h->host, "cert_file", h->cert_file, err)) < 0 ||
                    (e = check_readable(h->host, "key_file", h->key_file, err)) < 0)
                        return e;
        }
        return 0;
}

int pinlet_registry_new(const struct pinlet_registry_options *o, struct pinlet_registry **ret,
                        struct pinlet_error **err)
{
        struct pinlet_registry *r;
        int e;

        pthread_once(&curl_once, curl_init_once);
        if (curl_init_result != CURLE_OK)
                return pinlet_error_set(err, -EIO, "curl_global_init: %s",
                                        curl_easy_strerror(curl_init_result));
        e = check_options(o, err);
        if (e < 0)
                return e;
        r = calloc(1, sizeof(*r));
        if (!r)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_init(&r->share_locks[i], NULL);
        pthread_mutex_init(&r->pool_lock, NULL);
        pthread_mutex_init(&r->hints_lock, NULL);
        if (options_copy(o, &r->o) < 0 ||
            pinlet_token_cache_init(&r->tokens, r->o.token_cache_max) < 0 ||
            pinlet_lru_init(&r->hints, r->o.auth_hints_max) < 0) {
                pinlet_registry_free(r);
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        {
                struct pinlet_hosts_options ho = {
                        .hosts_dir = r->o.hosts_dir,
                        .registries_conf = r->o.registries_conf,
                        .short_name_aliases = r->o.short_name_aliases,
                };

                e = pinlet_hosts_new(&ho, &r->hostsrc, err);
                if (e < 0) {
                        pinlet_registry_free(r);
                        return e;
                }
        }
        r->share = curl_share_init();
        if (!r->share) {
                pinlet_registry_free(r);
                return pinlet_error_set(err, -ENOMEM, "curl_share_init failed");
        }
        /* Connections are not shared: libcurl documents sharing the connection cache
         * between concurrent threads as unsafe. Each pooled handle keeps its own. */
        curl_share_setopt(r->share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(r->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(r->share, CURLSHOPT_USERDATA, r);
        curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        if (o->credential_provider_config || o->credential_provider_bin_dir) {
                const struct pinlet_credprov_options co = {
                        .config_path = o->credential_provider_config,
                        .bin_dir = o->credential_provider_bin_dir,
                };

                e = pinlet_credprov_new(&co, &r->credprov, err);
                if (e < 0) {
                        pinlet_registry_free(r);
                        return e;
                }
        }
        *ret = r;
        return 0;
}

static void hint_clear(struct auth_hint *h)
{
        free(h->host);
        free(h->realm);
        free(h->service);
        *h = (struct auth_hint){ 0 };
}

static void hint_free(struct auth_hint *h)
{
        if (!h)
                return;
        hint_clear(h);
        free(h);
}

static struct auth_hint *hint_of(struct pinlet_lru_node *n)
{
        return PINLET_LRU_ENTRY(n, struct auth_hint, node);
}

struct pinlet_hosts *pinlet_registry_hosts(struct pinlet_registry *r)
{
        return r ? r->hostsrc : NULL;
}

void pinlet_registry_free(struct pinlet_registry *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n_pool; i++)
                curl_easy_cleanup(r->pool[i]);
        if (r->share)
                curl_share_cleanup(r->share);
        pinlet_token_cache_done(&r->tokens);
        pinlet_hosts_free(r->hostsrc);
        for (struct pinlet_lru_node *n = pinlet_lru_oldest(&r->hints), *next; n; n = next) {
                next = pinlet_lru_newer(n);
                pinlet_lru_remove(&r->hints, n);
                hint_free(hint_of(n));
        }
        pinlet_lru_done(&r->hints);
        pinlet_credprov_free(r->credprov);
        options_free_copy(&r->o);
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_destroy(&r->share_locks[i]);
        pthread_mutex_destroy(&r->pool_lock);
        pthread_mutex_destroy(&r->hints_lock);
        free(r);
}

void pinlet_resolution_done(struct pinlet_resolution *res)
{
        free(res->digest);
        free(res->media_type);
        free(res->endpoint);
        res->digest = res->media_type = res->endpoint = NULL;
}

void pinlet_registry_get_stats(struct pinlet_registry *r, struct pinlet_registry_stats *ret)
{
        *ret = (struct pinlet_registry_stats){
                .requests = atomic_load_explicit(&r->st_requests, memory_order_relaxed),
                .manifest_requests = atomic_load_explicit(&r->st_manifest, memory_order_relaxed),
                .token_requests = atomic_load_explicit(&r->st_token, memory_order_relaxed),
                .resolutions = atomic_load_explicit(&r->st_resolutions, memory_order_relaxed),
        };
}

/* ---- easy handle pool ---- */

static CURL *handle_get(struct pinlet_registry *r)
{
        CURL *h = NULL;

        pthread_mutex_lock(&r->pool_lock);
        if (r->n_pool > 0)
                h = r->pool[--r->n_pool];
        pthread_mutex_unlock(&r->pool_lock);
        if (h)
                curl_easy_reset(h); /* keeps live connections, drops options */
        else
                h = curl_easy_init();
        return h;
}

static void handle_put(struct pinlet_registry *r, CURL *h)
{
        if (!h)
                return;
        pthread_mutex_lock(&r->pool_lock);
        if (r->n_pool < PINLET_REGISTRY_POOL_MAX) {
                r->pool[r->n_pool++] = h;
                h = NULL;
        }
        pthread_mutex_unlock(&r->pool_lock);
        if (h)
                curl_easy_cleanup(h);
}

/* ---- auth hints ---- */

/* A copy of the hint for host (a lowercased domain) in *ret; scheme AUTH_NONE when there
 * is none. Marks it recently used. */
static void hint_get(struct pinlet_registry *r, const char *host, struct auth_hint *ret)
{
        struct auth_hint *h;

        *ret = (struct auth_hint){ 0 };
        pthread_mutex_lock(&r->hints_lock);
        h = hint_of(pinlet_lru_find(&r->hints, host));
        if (h) {
                pinlet_lru_touch(&r->hints, &h->node);
                ret->scheme = h->scheme;
                ret->realm = h->realm ? strdup(h->realm) : NULL;
                ret->service = h->service ? strdup(h->service) : NULL;
                if ((h->realm && !ret->realm) || (h->service && !ret->service))
                        ret->scheme = AUTH_NONE; /* out of memory: no hint */
        }
        pthread_mutex_unlock(&r->hints_lock);
}

/* Remembers what host asked for, replacing an older hint; beyond o.auth_hints_max the
 * least recently used hint goes (a hint is only a hint: losing one costs a 401). */
static void hint_set(struct pinlet_registry *r, const char *host, enum auth_scheme scheme,
                     const char *realm, const char *service)
{
        struct auth_hint *h = calloc(1, sizeof(*h)), *old;

        if (!h)
                return;
        h->host = strdup(host);
        h->scheme = scheme;
        h->realm = realm ? strdup(realm) : NULL;
        h->service = service ? strdup(service) : NULL;
        if (!h->host || (realm && !h->realm) || (service && !h->service)) {
                hint_free(h);
                return;
        }
        h->node.key = h->host;
        pthread_mutex_lock(&r->hints_lock);
        old = hint_of(pinlet_lru_find(&r->hints, host));
        if (old)
                pinlet_lru_remove(&r->hints, &old->node);
        else if (pinlet_lru_size(&r->hints) >= r->o.auth_hints_max)
                pinlet_lru_remove(&r->hints, &(old = hint_of(pinlet_lru_oldest(&r->hints)))->node);
        pinlet_lru_insert(&r->hints, &h->node);
        pthread_mutex_unlock(&r->hints_lock);
        hint_free(old);
}

/* ---- one HTTP exchange ---- */

enum req_kind {
        REQ_MANIFEST,
        REQ_TOKEN,
};

struct request {
        enum req_kind kind;
        const char *method; /* "HEAD", "GET", "POST" */
        const char *url;
        const char *accept;      /* NULL: none */
        const char *authz;       /* full "Authorization" value or NULL; secret */
        const char *auth_origin; /* the only origin authz is sent to */
        const char *post_body;   /* form body for POST; secret */
        size_t body_max;
        /* TLS settings for the origin the request starts at, and used for hops that stay
         * there; other origins use their own entry in the options' hosts. */
        const struct pinlet_registry_host *tls;
        const char *tls_origin;
};

struct response {
        long status;
        struct pinlet_buf body;
        bool body_wanted;    /* status is 2xx: the body must fit, else it is dropped */
        CURL *h;             /* the handle of the transfer in progress, for on_body */
        bool status_known;   /* on_body read the status of this transfer */
        size_t header_bytes; /* of the whole exchange, 1xx responses included */
        bool headers_too_big;
        bool body_started;
        bool body_too_big;
        char *digest;       /* Docker-Content-Digest */
        char *content_type; /* Content-Type without parameters */
        int64_t content_length;
        char *www_auth[WWW_AUTH_MAX];
        size_t n_www_auth;
        char *origin; /* origin of the final hop (after redirects) */
};

static void response_reset_headers(struct response *s)
{
        free(s->digest);
        free(s->content_type);
        s->digest = s->content_type = NULL;
        s->content_length = -1;
        for (size_t i = 0; i < s->n_www_auth; i++)
                free(s->www_auth[i]);
        s->n_www_auth = 0;
        s->header_bytes = 0;
        s->status = 0;
        s->status_known = false;
        s->body_started = false;
}

static void response_init(struct response *s, size_t body_max)
{
        *s = (struct response){ .content_length = -1 };
        pinlet_buf_init(&s->body, body_max);
}

static void response_done(struct response *s)
{
        response_reset_headers(s);
        pinlet_buf_free(&s->body);
        free(s->origin);
        s->origin = NULL;
}

/* For buffers that held secrets: what realloc left behind is out of reach, the final
 * copy at least is not left in freed memory. */
static void buf_erase_free(struct pinlet_buf *b)
{
        if (b->data)
                explicit_bzero(b->data, b->len);
        pinlet_buf_free(b);
}

static void response_erase_done(struct response *s)
{
        buf_erase_free(&s->body);
        response_done(s);
}

/* Context of one resolution: shared by its requests. */
struct resolve_ctx {
        struct pinlet_registry *r;
        const char *domain; /* as in the reference */
        char *hint_key;     /* domain lowercased: the auth hints' key */
        /* TLS of the endpoint being asked: its registries entry, else what the hosts files
         * say (built by endpoint_tls()); never NULL while resolving */
        const struct pinlet_registry_host *regopt;
        const struct curl_blob *ca_blob; /* several CA files, concatenated; or NULL */
        char *const *ep_headers;         /* "Name: value" for the endpoint's origin */
        const struct pinlet_hosts_endpoint *ep;
        const char *ep_url;  /* ep->url, or its http:// form for an `insecure` entry */
        int64_t deadline_ms; /* absolute, monotonic */
        int64_t timeout_ms;  /* the whole budget, for messages */
        unsigned round_trips;
};

/*
 * Counts header bytes and nothing else: the headers themselves are read after the
 * transfer with curl_easy_header(), which parses, unfolds and trims them. One cap covers
 * every header line of the exchange, 1xx interim responses included, so no sequence of
 * lines can grow the total past PINLET_REGISTRY_HEADERS_MAX. (A single line longer than
 * curl's own per-line limit never gets here: curl fails the transfer itself, see
 * classify_curl().)
 */
static size_t on_header(char *line, size_t size, size_t nitems, void *userp)
{
        struct response *s = userp;
        size_t n = size * nitems;

        s->header_bytes += n;
        if (s->header_bytes > PINLET_REGISTRY_HEADERS_MAX) {
                s->headers_too_big = true;
                return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        return n;
}

/* The value of the last header called name in the final response, or NULL. */
static const char *header_last(CURL *h, const char *name)
{
        struct curl_header *hd;

        if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hd) != CURLHE_OK)
                return NULL;
        /* a repeated header: the last one wins, as when we parsed them ourselves */
        if (hd->amount > 1 &&
            curl_easy_header(h, name, hd->amount - 1, CURLH_HEADER, -1, &hd) != CURLHE_OK)
                return NULL;
        return hd->value;
}

/* Reads what the client needs of the final response's headers into s, after the
 * transfer. Returns 0 or -ENOMEM. */
static int response_collect(struct response *s, CURL *h)
{
        struct curl_header *hd;
        curl_off_t cl = -1;
        const char *v;
        size_t n;

        response_reset_headers(s);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->status);
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK)
                s->content_length = cl; /* -1 when the response had none */
        if ((v = header_last(h, "Docker-Content-Digest")) && !(s->digest = strdup(v)))
                return -ENOMEM;
        if ((v = header_last(h, "Content-Type"))) {
                /* the media type without parameters ("; charset=...") */
                n = strcspn(v, ";");
                while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                        n--;
                if (!(s->content_type = strndup(v, n)))
                        return -ENOMEM;
        }
        /* every WWW-Authenticate header: a registry may offer Basic and Bearer apart */
        for (size_t i = 0; i < WWW_AUTH_MAX; i++) {
                if (curl_easy_header(h, "WWW-Authenticate", i, CURLH_HEADER, -1, &hd) != CURLHE_OK)
                        break;
                if (!(s->www_auth[s->n_www_auth] = strdup(hd->value)))
                        return -ENOMEM;
                s->n_www_auth++;
                if (i + 1 >= hd->amount)
                        break;
        }
        return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
        struct response *s = userp;
        size_t n = size * nmemb;

        s->body_started = true;
        if (!s->status_known) {
                /* the body belongs to the final response: its status decides whether
                 * the body must fit (2xx) or is an error text to keep the start of */
                long status = 0;

                curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
                s->body_wanted = status >= 200 && status < 300;
                s->status_known = true;
        }
        if (!s->body_wanted) {
                /* error bodies: keep the start for the message, drop the rest */
                if (s->body.len < ERROR_BODY_MAX)
                        (void)pinlet_buf_append(&s->body, data,
                                                n < ERROR_BODY_MAX - s->body.len
                                                        ? n
                                                        : ERROR_BODY_MAX - s->body.len);
                return n;
        }
        if (pinlet_buf_append(&s->body, data, n) < 0) {
                s->body_too_big = true;
                return 0;
        }
        return n;
}

/* "scheme://host[:port]" of url, lowercased, port made explicit. */
static int url_origin(const char *url, char **ret_origin, char **ret_scheme, char **ret_hostport)
{
        _cleanup_(curl_url_cleanupp) CURLU *u = curl_url();
        _cleanup_free_ char *scheme = NULL, *host = NULL, *port = NULL;
        char *origin = NULL, *hostport = NULL;

        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
                return PINLET_EPROTO;
        /* scheme and host are case-insensitive (RFC 3986 3.1, 3.2.2): one spelling */
        for (char *p = scheme; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        for (char *p = host; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        if (asprintf(&origin, "%s://%s:%s", scheme, host, port) < 0)
                return -ENOMEM;
        /* the config key form: default ports are left out, as in a reference domain */
        if ((strcmp(scheme, "https") == 0 && strcmp(port, "443") == 0) ||
            (strcmp(scheme, "http") == 0 && strcmp(port, "80") == 0)) {
                hostport = strdup(host);
        } else if (asprintf(&hostport, "%s:%s", host, port) < 0) {
                hostport = NULL;
        }
        if (!hostport) {
                free(origin);
                return -ENOMEM;
        }
        *ret_origin = origin;
        if (ret_scheme)
                *ret_scheme = TAKE_PTR(scheme);
        if (ret_hostport)
                *ret_hostport = hostport;
        else
                free(hostport);
        return 0;
}

/*
 * Whether two origins from url_origin() ("scheme://host:port") are the same origin
 * (RFC 6454): the scheme and the port exactly, the host case-insensitively. url_origin()
 * already lowercases, but this is the one comparison every credential decision goes
 * through, so it does not rely on every origin string having been made that way.
 */
static bool origin_same(const char *a, const char *b)
{
        const char *ha, *hb, *pa, *pb;

        if (!a || !b)
                return false;
        ha = strstr(a, "://");
        hb = strstr(b, "://");
        pa = strrchr(a, ':'); /* the port's colon: an IPv6 host is in brackets before it */
        pb = strrchr(b, ':');
        if (!ha || !hb || !pa || !pb || pa <= ha || pb <= hb)
                return false;
        return ha - a == hb - b && strncmp(a, b, (size_t)(ha - a)) == 0 &&          /* scheme */
               pa - ha == pb - hb && strncasecmp(ha, hb, (size_t)(pa - ha)) == 0 && /* host */
               strcmp(pa, pb) == 0;                                                 /* port */
}

static void apply_tls(CURL *h, const struct pinlet_registry_host *tls, const struct curl_blob *ca)
{
        if (!tls)
                return;
        /* several CAs (hosts.toml `ca = [...]`, a certificate directory): one PEM blob */
        if (ca)
                curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, ca);
        /* With OpenSSL, CAINFO adds to curl's CA directory (Debian: /etc/ssl/certs), so the
         * registry's CA is trusted in addition to the system store. */
        if (tls->ca_file)
                curl_easy_setopt(h, CURLOPT_CAINFO, tls->ca_file);
        if (tls->cert_file)
                curl_easy_setopt(h, CURLOPT_SSLCERT, tls->cert_file);
        if (tls->key_file)
                curl_easy_setopt(h, CURLOPT_SSLKEY, tls->key_file);
        if (tls->skip_verify) {
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }
}

/* Whether curl failed because one header line passed its own limit (CURL_MAX_HTTP_HEADER,
 * 100 KiB): curl 7.88's dynbuf reports that as CURLE_OUT_OF_MEMORY, 8.6 and later as
 * CURLE_TOO_LARGE. Out of memory while still reading headers is taken for that: a real
 * allocation failure there is far less likely than a hostile or broken peer. */
static bool header_line_too_long(CURLcode cc, const struct response *s)
{
#if LIBCURL_VERSION_NUM >= 0x080600
        if (cc == CURLE_TOO_LARGE)
                return true;
#endif
        return cc == CURLE_OUT_OF_MEMORY && !s->body_started;
}

/* A failed transfer to host (the hop's "host[:port]") as an error of our classes. */
static int classify_curl(struct resolve_ctx *ctx, CURLcode cc, const char *errbuf,
                         const struct response *s, const char *what, const char *host,
                         struct pinlet_error **err)
{
        const char *detail = errbuf && *errbuf ? errbuf : curl_easy_strerror(cc);

        /* Oversized headers are the peer breaking the protocol, not our memory running
         * out: say so, and say who. */
        if (s->headers_too_big)
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "%s to %s: response headers exceed %d bytes", what, host,
                                        PINLET_REGISTRY_HEADERS_MAX);
        if (header_line_too_long(cc, s))
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "%s to %s: a response header line exceeds curl's limit "
                                        "(%d bytes for all headers)",
                                        what, host, PINLET_REGISTRY_HEADERS_MAX);
        if (s->body_too_big || cc == CURLE_FILESIZE_EXCEEDED)
                return pinlet_error_set(err, PINLET_EPROTO, "%s: response body exceeds %zu bytes",
                                        what, s->body.max);
        switch (cc) {
        case CURLE_OPERATION_TIMEDOUT:
                if (pinlet_now_ms() + 50 >= ctx->deadline_ms)
                        return pinlet_error_set(err, PINLET_ETIMEOUT,
                                                "%s: timed out (budget %" PRId64 " ms)", what,
                                                ctx->timeout_ms);
                return pinlet_error_set(err, PINLET_EUNAVAIL, "%s: %s", what, detail);
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_ENGINE_INITFAILED:
        case CURLE_USE_SSL_FAILED:
                return pinlet_error_set(err, PINLET_ETLS, "%s: TLS: %s", what, detail);
        case CURLE_OUT_OF_MEMORY:
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
                return pinlet_error_set(err, PINLET_EPROTO, "%s: %s", what, detail);
        default:
                return pinlet_error_set(err, PINLET_EUNAVAIL, "%s: %s", what, detail);
        }
}

static bool is_redirect(long status)
{
        return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/*
 * Performs q, following redirects by hand. On return (0) s holds the final response.
 * Errors are transport-level only; HTTP statuses are for the caller to judge.
 */
static int http_do(struct resolve_ctx *ctx, const struct request *q, struct response *s,
                   struct pinlet_error **err)
{
        struct pinlet_registry *r = ctx->r;
        _cleanup_free_ char *url = strdup(q->url);
        const char *method = q->method;
        const char *what = q->kind == REQ_TOKEN ? "token request" : "manifest request";

        if (!url)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        for (int hop = 0;; hop++) {
                _cleanup_free_ char *origin = NULL, *scheme = NULL, *hostport = NULL;
                struct curl_slist *hdrs = NULL;
                char errbuf[CURL_ERROR_SIZE] = "";
                _cleanup_free_ char *authz_line = NULL, *accept_line = NULL;
                const struct pinlet_registry_host *tls;
                bool collect_failed;
                char *next = NULL;
                int64_t left;
                CURLcode cc;
                CURL *h;
                int ret;

                ret = url_origin(url, &origin, &scheme, &hostport);
                if (ret < 0)
                        return pinlet_error_set(err, ret, "%s: bad URL", what);
                left = ctx->deadline_ms - pinlet_now_ms();
                if (left <= 0)
                        return pinlet_error_set(err, PINLET_ETIMEOUT,
                                                "%s: timed out (budget %" PRId64 " ms)", what,
                                                ctx->timeout_ms);
                /* A POST body holds the identity token: it goes to its own origin only,
                 * never along a redirect to another host. */
                if (hop > 0 && strcmp(method, "POST") == 0 && !origin_same(origin, q->tls_origin))
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "%s: refusing to send the request body along "
                                                "a redirect to another host",
                                                what);
                tls = origin_same(origin, q->tls_origin)
                              ? q->tls
                              : pinlet_registry_options_host(&r->o, hostport);

                h = handle_get(r);
                if (!h)
                        return pinlet_error_set(err, -ENOMEM, "curl_easy_init failed");
                curl_easy_setopt(h, CURLOPT_URL, url);
                curl_easy_setopt(h, CURLOPT_SHARE, r->share);
                curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM */
                curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
                curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
                curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
                curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left);
                curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                                 (long)((int64_t)r->o.connect_timeout_ms < left &&
                                                        r->o.connect_timeout_ms > 0
                                                ? (int64_t)r->o.connect_timeout_ms
                                                : left));
                curl_easy_setopt(h, CURLOPT_USERAGENT, "pinlet/" PINLET_VERSION);
                curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
                curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
                curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
                curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
                curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
                curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s->body.max);
                apply_tls(h, tls, tls == ctx->regopt ? ctx->ca_blob : NULL);
#if LIBCURL_VERSION_NUM >= 0x075700
                /* curl 7.87+ keeps a parsed CA store for 24 hours by default, keyed by the
                 * file name only: a CA replaced under hosts_dir (same name, new content)
                 * would go unseen for a day. A minute bounds that and still spares the
                 * parse on most new connections. */
                curl_easy_setopt(h, CURLOPT_CA_CACHE_TIMEOUT, 60L);
#endif
                if (strcmp(method, "HEAD") == 0) {
                        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
                } else if (strcmp(method, "POST") == 0) {
                        curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->post_body);
                        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(q->post_body));
                        hdrs = curl_slist_append(hdrs,
                                                 "Content-Type: application/x-www-form-urlencoded");
                } else {
                        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
                }
                if (q->accept && asprintf(&accept_line, "Accept: %s", q->accept) >= 0)
                        hdrs = curl_slist_append(hdrs, accept_line);
                /* hosts.toml [header]s: to the endpoint itself, as containerd sends them
                 * with its requests to that host, not to token realms or redirect targets */
                if (q->kind == REQ_MANIFEST && origin_same(origin, q->tls_origin))
                        for (char *const *x = ctx->ep_headers; x && *x; x++)
                                hdrs = curl_slist_append(hdrs, *x);
                /* Credentials only to their own origin: a redirect to blob storage or any
                 * other host goes without them. */
                if (q->authz && origin_same(origin, q->auth_origin) &&
                    asprintf(&authz_line, "Authorization: %s", q->authz) >= 0)
                        hdrs = curl_slist_append(hdrs, authz_line);
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

                response_reset_headers(s);
                pinlet_buf_reset(&s->body);
                s->headers_too_big = s->body_too_big = false;
                s->body_wanted = false;
                s->h = h;
                cc = curl_easy_perform(h);
                s->h = NULL;
                collect_failed = cc == CURLE_OK && response_collect(s, h) < 0;
                free(s->origin);
                s->origin = TAKE_PTR(origin);
                ctx->round_trips++;
                atomic_fetch_add_explicit(&r->st_requests, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(q->kind == REQ_TOKEN ? &r->st_token : &r->st_manifest, 1,
                                          memory_order_relaxed);
                if (cc == CURLE_OK && is_redirect(s->status)) {
                        char *loc = NULL;

                        if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
                                next = strdup(loc);
                }
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
                curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
                for (struct curl_slist *l = hdrs; l; l = l->next) /* curl's copy of authz */
                        explicit_bzero(l->data, strlen(l->data));
                curl_slist_free_all(hdrs);
                if (authz_line)
                        explicit_bzero(authz_line, strlen(authz_line));
                if (cc != CURLE_OK) {
                        /* a handle that failed mid-transfer may hold a dead connection;
                         * curl discards it, but do not keep a handle whose state is odd */
                        curl_easy_cleanup(h);
                        return classify_curl(ctx, cc, errbuf, s, what, hostport, err);
                }
                handle_put(r, h);
                if (collect_failed) {
                        free(next);
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                }
                if (!is_redirect(s->status))
                        return 0;
                if (!next)
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "%s: HTTP %ld redirect without Location", what,
                                                s->status);
                free(url);
                url = next;
                if (hop + 1 >= PINLET_REGISTRY_MAX_REDIRECTS)
                        return pinlet_error_set(err, PINLET_EPROTO, "%s: more than %d redirects",
                                                what, PINLET_REGISTRY_MAX_REDIRECTS);
                if (strcmp(scheme, "https") == 0 && strncasecmp(url, "https://", 8) != 0)
                        return pinlet_error_set(
                                err, PINLET_EPROTO, "%s: refusing redirect from https to %s", what,
                                strncasecmp(url, "http://", 7) == 0 ? "plain http"
                                                                    : "another scheme");
                /* RFC 7231: a 303 answer is fetched with GET */
                if (s->status == 303 && strcmp(method, "POST") == 0)
                        method = "GET";
        }
}

/* The message distribution puts in an error body ({"errors":[{"code","message"}]}). */
static char *registry_error_message(const struct response *s)
{
        _cleanup_(json_decrefp) json_t *root = NULL;
        json_t *e0, *m;

        if (s->body.len == 0)
                return NULL;
        root = json_loadb(s->body.data, s->body.len, 0, NULL);
        e0 = json_array_get(json_object_get(root, "errors"), 0);
        m = json_object_get(e0, "message");
        if (!json_is_string(m) || json_string_length(m) == 0 || json_string_length(m) > 200)
                return NULL;
        for (const char *p = json_string_value(m); *p; p++)
                if ((unsigned char)*p < 0x20)
                        return NULL;
        return strdup(json_string_value(m));
}

/* Classifies a final non-success HTTP status. fallback: the text for a manifest 404 when
 * the body has no message; NULL for requests where 404 is not "not found". */
static int status_error(const struct response *s, const char *what, const char *fallback,
                        const struct pinlet_creds *creds, struct pinlet_error **err)
{
        _cleanup_free_ char *msg = registry_error_message(s);
        const char *m = msg ? msg : fallback;
        const char *src = creds->source ? creds->source : "anonymous";

        /* 404 means "no such tag" only for a manifest; a token endpoint that is missing
         * is the registry's misconfiguration */
        if (s->status == 404 && fallback)
                return pinlet_error_set(err, PINLET_ENOTFOUND, "%s (HTTP 404)", m);
        if (s->status == 401 || s->status == 403)
                return pinlet_error_set(err, PINLET_EUNAUTH, "%s: %s (HTTP %ld, credentials: %s)",
                                        what, msg ? msg : "unauthorized", s->status, src);
        if (s->status == 429)
                return pinlet_error_set(err, PINLET_EUNAVAIL, "%s: rate limited (HTTP 429)", what);
        if (s->status >= 500)
                return pinlet_error_set(err, PINLET_EUNAVAIL, "%s: %s (HTTP %ld)", what,
                                        msg ? msg : "server error", s->status);
        return pinlet_error_set(err, PINLET_EPROTO, "%s: unexpected HTTP status %ld%s%s", what,
                                s->status, msg ? ": " : "", strempty(msg));
}

/* ---- authentication ---- */

static char *basic_authz(const struct pinlet_creds *c)
{
        _cleanup_erase_ char *plain = NULL;
        char *out;
        size_t n;

        if (asprintf(&plain, "%s:%s", strempty(c->username), strempty(c->password)) < 0)
                return NULL;
        n = strlen(plain);
        out = malloc(6 + 4 * ((n + 2) / 3) + 1);
        if (!out)
                return NULL;
        memcpy(out, "Basic ", 6);
        EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)plain, (int)n);
        return out;
}

/* The token cache key: realm, service, scope and whose credentials (a fingerprint, never
 * the secret). NULL when out of memory: a key without the credential part would hand one
 * user's token to another, so there is no fallback. */
static char *token_cache_key(const char *realm, const char *service, const char *scope,
                             const struct pinlet_creds *c)
{
        char fp[PINLET_SHA256_HEX_SIZE];
        char *k = NULL;

        if (pinlet_creds_fingerprint(c, fp) < 0)
                return NULL;
        if (asprintf(&k, "%s\n%s\n%s\n%s", realm, strempty(service), scope, fp) < 0)
                return NULL;
        return k;
}

/* Appends "&name=value" (URL-encoded) to *q. */
static int form_add(struct pinlet_buf *b, const char *name, const char *value)
{
        char *esc;
        int ret;

        if (!value)
                return 0;
        esc = curl_easy_escape(NULL, value, 0);
        if (!esc)
                return -ENOMEM;
        ret = pinlet_buf_append_str(b, b->len ? "&" : "");
        if (ret >= 0)
                ret = pinlet_buf_append_str(b, name);
        if (ret >= 0)
                ret = pinlet_buf_append_str(b, "=");
        if (ret >= 0)
                ret = pinlet_buf_append_str(b, esc);
        explicit_bzero(esc, strlen(esc));
        curl_free(esc);
        return ret;
}

/*
 * Gets a bearer token for scope from realm: from the cache, or from the token server.
 * With an identity token: OAuth2 POST (grant_type=refresh_token); with username and
 * password: GET with Basic credentials; else anonymous GET.
 */
static int fetch_token(struct resolve_ctx *ctx, const char *realm, const char *service,
                       const char *scope, const struct pinlet_creds *creds, char **ret_token,
                       struct pinlet_error **err)
{
        struct pinlet_registry *r = ctx->r;
        _cleanup_free_ char *key = NULL, *origin = NULL, *scheme = NULL, *hostport = NULL;
        _cleanup_free_ char *url = NULL, *basic = NULL;
        _cleanup_(curl_url_cleanupp) CURLU *u = NULL;
        _cleanup_(buf_erase_free) struct pinlet_buf form; /* may hold the identity token */
        _cleanup_(response_erase_done) struct response s; /* holds the token */
        struct pinlet_token tok = { 0 };
        const struct pinlet_registry_host *tls;
        struct request q = { .kind = REQ_TOKEN };
        int64_t t0;
        int ret;

        pinlet_buf_init(&form, 128 * 1024);
        response_init(&s, PINLET_TOKEN_RESPONSE_MAX);
        key = token_cache_key(realm, service, scope, creds);
        if (!key)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        if (pinlet_token_cache_get(&r->tokens, key, pinlet_now_ms(), ret_token) > 0)
                return 0;

        ret = url_origin(realm, &origin, &scheme, &hostport);
        if (ret < 0 || (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0))
                return pinlet_error_set(err, PINLET_EPROTO, "token realm is not a valid URL");
        /* The realm comes from the registry; without TLS a token (and the credentials
         * sent to get it) would travel in clear. Only an explicitly insecure registry may
         * name a plain http realm. */
        if (strcmp(scheme, "https") != 0 && !(ctx->regopt && ctx->regopt->insecure))
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "token realm %s is not https (mark the registry "
                                        "insecure to allow it)",
                                        origin);
        /* TLS settings for the realm: its own registries entry, else the registry's (the
         * realm is run by the registry's operator, typically under the same CA). */
        tls = pinlet_registry_options_host(&r->o, hostport);
        if (!tls)
                tls = ctx->regopt;

        if ((ret = form_add(&form, "service", service)) < 0 ||
            (ret = form_add(&form, "scope", scope)) < 0)
                return pinlet_error_set(err, ret, "out of memory");
        if (creds->identity_token) {
                if ((ret = form_add(&form, "grant_type", "refresh_token")) < 0 ||
                    (ret = form_add(&form, "refresh_token", creds->identity_token)) < 0 ||
                    (ret = form_add(&form, "client_id", "pinlet")) < 0)
                        return pinlet_error_set(err, ret, "out of memory");
                q.method = "POST";
                q.url = realm;
                q.post_body = form.data;
        } else {
                u = curl_url();
                if (!u || curl_url_set(u, CURLUPART_URL, realm, 0) != CURLUE_OK ||
                    curl_url_set(u, CURLUPART_QUERY, form.data, CURLU_APPENDQUERY) != CURLUE_OK ||
                    curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "token realm is not a valid URL");
                q.method = "GET";
                q.url = url;
                if (creds->username || creds->password) {
                        basic = basic_authz(creds);
                        if (!basic)
                                return pinlet_error_set(err, -ENOMEM, "out of memory");
                        q.authz = basic;
                        q.auth_origin = origin;
                }
        }
        q.accept = "application/json";
        q.body_max = PINLET_TOKEN_RESPONSE_MAX;
        q.tls = tls;
        q.tls_origin = origin;

        t0 = pinlet_now_ms();
        ret = http_do(ctx, &q, &s, err);
        if (basic)
                explicit_bzero(basic, strlen(basic));
        if (ret < 0)
                return ret;
        if (s.status != 200)
                return status_error(&s, "token server", NULL, creds, err);
        ret = pinlet_token_parse(s.body.data ? s.body.data : "", s.body.len, &tok, err);
        if (ret < 0)
                return pinlet_error_wrap(err, ret == PINLET_E2BIG ? PINLET_EPROTO : ret,
                                         "token server");
        /* The lifetime counts from when the request was sent, not from issued_at: that
         * is never later than the server's issue time, and needs no synchronized clock. */
        (void)pinlet_token_cache_put(&r->tokens, key, tok.token, t0, tok.expires_in * 1000);
        *ret_token = TAKE_PTR(tok.token);
        return 0;
}

/*
 * Builds the Authorization value answering the challenges of a 401. Prefers Bearer, then
 * Basic. Returns 0 with *ret set (NULL when anonymous access is all there is).
 */
static int authenticate(struct resolve_ctx *ctx, const struct response *s, const char *scope,
                        const struct pinlet_creds *creds, char **ret, struct pinlet_error **err)
{
        _cleanup_(pinlet_challenges_clear) struct pinlet_auth_challenges list = { 0 };
        const struct pinlet_auth_challenge *c;
        _cleanup_erase_ char *token = NULL;
        char *authz = NULL;
        int r;

        for (size_t i = 0; i < s->n_www_auth; i++) {
                r = pinlet_challenge_parse(s->www_auth[i], strlen(s->www_auth[i]), &list, err);
                if (r < 0)
                        return pinlet_error_wrap(err, PINLET_EPROTO, "bad WWW-Authenticate");
        }
        c = pinlet_challenge_find(&list, "bearer");
        if (c) {
                const char *realm = pinlet_challenge_param(c, "realm");
                const char *service = pinlet_challenge_param(c, "service");

                if (creds->registry_token) {
                        /* a registry token is a bearer token for the registry itself */
                        hint_set(ctx->r, ctx->hint_key, AUTH_BEARER, realm, service);
                        if (asprintf(&authz, "Bearer %s", creds->registry_token) < 0)
                                return pinlet_error_set(err, -ENOMEM, "out of memory");
                        *ret = authz;
                        return 0;
                }
                if (!realm || !*realm)
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "Bearer challenge without realm");
                r = fetch_token(ctx, realm, service, scope, creds, &token, err);
                if (r < 0)
                        return r;
                hint_set(ctx->r, ctx->hint_key, AUTH_BEARER, realm, service);
                if (asprintf(&authz, "Bearer %s", token) < 0)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                *ret = authz;
                return 0;
        }
        c = pinlet_challenge_find(&list, "basic");
        if (c) {
                hint_set(ctx->r, ctx->hint_key, AUTH_BASIC, NULL, NULL);
                if (!creds->username && !creds->password)
                        return pinlet_error_set(err, PINLET_EUNAUTH,
                                                "registry requires credentials (Basic) and "
                                                "none were found");
                authz = basic_authz(creds);
                if (!authz)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                *ret = authz;
                return 0;
        }
        return pinlet_error_set(err, PINLET_EUNAUTH,
                                "HTTP 401 without a supported challenge (Basic or Bearer)");
}

/* Authorization for the first request, from what the registry asked last time. Never
 * contacts the token server: only cached tokens are used. */
static char *authz_from_hint(struct resolve_ctx *ctx, const char *scope,
                             const struct pinlet_creds *creds, char **ret_token_key)
{
        struct auth_hint h;
        char *authz = NULL;

        hint_get(ctx->r, ctx->hint_key, &h);
        if (h.scheme == AUTH_BASIC && (creds->username || creds->password)) {
                authz = basic_authz(creds);
        } else if (h.scheme == AUTH_BEARER && creds->registry_token) {
                if (asprintf(&authz, "Bearer %s", creds->registry_token) < 0)
                        authz = NULL;
        } else if (h.scheme == AUTH_BEARER && h.realm) {
                _cleanup_free_ char *key = token_cache_key(h.realm, h.service, scope, creds);
                _cleanup_erase_ char *token = NULL;

                if (key &&
                    pinlet_token_cache_get(&ctx->r->tokens, key, pinlet_now_ms(), &token) > 0 &&
                    asprintf(&authz, "Bearer %s", token) >= 0)
                        *ret_token_key = TAKE_PTR(key);
        }
        hint_clear(&h);
        return authz;
}

/* ---- resolution ---- */

static int finish_from_get(const struct response *s, struct pinlet_resolution *res,
                           struct pinlet_error **err)
{
        _cleanup_free_ char *computed = NULL;
        const char *algo = "sha256";
        char algo_buf[16];
        int ret;

        if (s->digest && *s->digest) {
                const char *colon = strchr(s->digest, ':');

                if (!pinlet_ref_digest_valid(s->digest) || !colon ||
                    (size_t)(colon - s->digest) >= sizeof(algo_buf))
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "registry sent an invalid Docker-Content-Digest");
                memcpy(algo_buf, s->digest, (size_t)(colon - s->digest));
                algo_buf[colon - s->digest] = 0;
                algo = algo_buf;
        }
        ret = pinlet_hash_digest(algo, s->body.data, s->body.len, &computed);
        if (ret == -ENOMEM)
                return pinlet_error_set(err, ret, "out of memory");
        if (ret < 0)
                return pinlet_error_set(err, PINLET_EPROTO, "cannot verify a %s digest", algo);
        if (s->digest && *s->digest && strcmp(computed, s->digest) != 0)
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "manifest digest mismatch: registry says %s, content "
                                        "is %s",
                                        s->digest, computed);
        res->digest = TAKE_PTR(computed);
        res->size = s->body.len;
        return 0;
}

static int resolve_tag(struct resolve_ctx *ctx, const struct pinlet_ref *ref,
                       const struct pinlet_creds *creds, struct pinlet_resolution *res,
                       struct pinlet_error **err)
{
        struct pinlet_registry *r = ctx->r;
        const char *repo = ctx->ep->repo ? ctx->ep->repo : ref->path;
        _cleanup_free_ char *url = NULL, *scope = NULL, *origin = NULL, *token_key = NULL;
        _cleanup_erase_ char *authz = NULL;
        _cleanup_(response_done) struct response s;
        struct request q = { .kind = REQ_MANIFEST };
        bool fresh_auth = false, use_get = false;
        int ret;

        response_init(&s, PINLET_MANIFEST_MAX);
        if (asprintf(&url, "%s%s/%s/manifests/%s", ctx->ep_url, ctx->ep->path, repo, ref->tag) <
                    0 ||
            asprintf(&scope, "repository:%s:pull", repo) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        ret = url_origin(url, &origin, NULL, NULL);
        if (ret < 0)
                return pinlet_error_set(err, ret, "bad registry URL");

        authz = authz_from_hint(ctx, scope, creds, &token_key);
        q.method = "HEAD";
        q.url = url;
        q.accept = PINLET_MT_OCI_INDEX ", " PINLET_MT_DOCKER_LIST ", " PINLET_MT_OCI_MANIFEST
                                       ", " PINLET_MT_DOCKER_V2;
        q.auth_origin = origin;
        q.body_max = PINLET_MANIFEST_MAX;
        q.tls = ctx->regopt;
        q.tls_origin = origin;

        for (;;) {
                q.authz = authz;
                ret = http_do(ctx, &q, &s, err);
                if (ret < 0)
                        return ret;
                if (s.status == 401 && !origin_same(s.origin, origin))
                        /* a challenge from a host the registry redirected to: answering it
                         * would hand the credentials to that host (or a realm it names) */
                        return pinlet_error_set(err, PINLET_EUNAUTH,
                                                "manifest request: HTTP 401 from %s after a "
                                                "redirect; credentials are only sent to the "
                                                "registry",
                                                s.origin);
                if (s.status == 401 && !fresh_auth) {
                        /* a cached token the registry no longer takes: forget it */
                        if (token_key)
                                pinlet_token_cache_drop(&r->tokens, token_key);
                        erase_and_free(TAKE_PTR(authz));
                        ret = authenticate(ctx, &s, scope, creds, &authz, err);
                        if (ret < 0)
                                return ret;
                        fresh_auth = true;
                        continue;
                }
                if (s.status == 200 && strcmp(q.method, "HEAD") == 0) {
                        if (s.digest && *s.digest) {
                                if (!pinlet_ref_digest_valid(s.digest))
                                        return pinlet_error_set(
                                                err, PINLET_EPROTO,
                                                "registry sent an invalid Docker-Content-Digest");
                                res->digest = TAKE_PTR(s.digest);
                                res->media_type = TAKE_PTR(s.content_type);
                                res->size = s.content_length > 0 ? (uint64_t)s.content_length : 0;
                                return 0;
                        }
                        use_get = true; /* no digest header: hash the manifest ourselves */
                } else if ((s.status == 405 || s.status == 501) && strcmp(q.method, "HEAD") == 0) {
                        use_get = true; /* HEAD refused */
                } else if (s.status == 200) {
                        ret = finish_from_get(&s, res, err);
                        if (ret < 0)
                                return ret;
                        res->media_type = TAKE_PTR(s.content_type);
                        return 0;
                } else {
                        return status_error(&s, "manifest request", "manifest unknown", creds, err);
                }
                if (use_get && strcmp(q.method, "GET") != 0) {
                        q.method = "GET";
                        continue;
                }
                return pinlet_error_set(err, PINLET_EPROTO, "unexpected manifest response");
        }
}

/* The credentials of one resolution at an endpoint whose Docker config entry is host
 * (the order is in registry.h): providers match the image, whichever endpoint asks. */
static int node_creds(struct pinlet_registry *r, const struct pinlet_ref *ref,
                      const struct pinlet_registry_auth *auth, const char *host,
                      int64_t deadline_ms, struct pinlet_creds *ret, struct pinlet_error **err)
{
        _cleanup_free_ char *image = NULL;
        struct pinlet_creds c = { 0 };
        int rc;

        rc = pinlet_creds_lookup(r->o.docker_config_paths, auth, host, &c, err);
        if (rc < 0)
                return rc;
        if (!pinlet_creds_empty(&c) || !r->credprov) {
                *ret = c;
                return 0;
        }
        /* kubelet hands providers the repository without tag or digest
         * (parsers.ParseImageName), normalized: "docker.io/library/nginx" */
        if (asprintf(&image, "%s/%s", ref->domain, ref->path) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        rc = pinlet_credprov_lookup(r->credprov, image, deadline_ms, &c, err);
        if (rc < 0)
                return rc;
        if (rc == 0)
                c = (struct pinlet_creds){ .source = "anonymous" };
        *ret = c;
        return 0;
}

/* The endpoints for ref: the registry entry's mirrors, else the hosts files. */
static int endpoints_for(struct pinlet_registry *r, const struct pinlet_ref *ref,
                         struct pinlet_hosts_list **ret, struct pinlet_error **err)
{
        const struct pinlet_registry_host *o = pinlet_registry_options_host(&r->o, ref->domain);

        if (o && o->mirrors)
                return pinlet_hosts_from_urls(ref->domain, o->mirrors, ret, err);
        return pinlet_hosts_lookup(r->hostsrc, ref->domain, ref->path, ret, err);
}

/* Reads and concatenates PEM files into b (each bounded by the token-size cap of a
 * config file). */
static int read_cas(char *const *files, struct pinlet_buf *b, struct pinlet_error **err)
{
        for (char *const *f = files; f && *f; f++) {
                _cleanup_free_ char *data = NULL;
                size_t n = 0;
                int ret;

                ret = pinlet_io_read_file(*f, PINLET_MANIFEST_MAX, 0, &data, &n, err);
                if (ret < 0)
                        return pinlet_error_wrap(err, ret, "CA file");
                if (pinlet_buf_append(b, data, n) < 0 || pinlet_buf_append_str(b, "\n") < 0)
                        return pinlet_error_set(err, PINLET_E2BIG, "CA files: more than %d bytes",
                                                PINLET_MANIFEST_MAX);
        }
        return 0;
}

/* Whether an endpoint's failure lets the next endpoint try, as containerd's resolver
 * goes on after any transport error or HTTP error status (remotes/docker/resolver.go):
 * everything but running out of time, memory, or our own bad input. */
static bool try_next(int code, int64_t deadline_ms)
{
        if (code == -ENOMEM || code == PINLET_EINVAL)
                return false;
        return pinlet_now_ms() < deadline_ms;
}

/*
 * One request (a tag resolution, a fetch by digest) at the endpoint ctx names: ctx carries
 * the endpoint's URL, API path, TLS settings and headers, creds its credentials. Fills the
 * caller's result (userdata) on success only.
 */
typedef int (*endpoint_fn)(struct resolve_ctx *ctx, const struct pinlet_ref *ref,
                           const struct pinlet_creds *creds, void *userdata,
                           struct pinlet_error **err);

/* What endpoints_try() asks for: which endpoints, and what to do at each. */
struct endpoints_job {
        const char *image; /* for messages: "reg/repo:tag", "reg/repo@digest" */
        const char *what;  /* the capability's name, for "no endpoint has ..." */
        unsigned caps;     /* an endpoint must have all of these (PINLET_HOSTS_CAP_*) */
        endpoint_fn fn;
        void *userdata;
};

/* What the endpoint that answered was: ep_url as asked (http:// for an `insecure` entry),
 * malloc'ed, and the requests of the whole attempt. */
struct endpoints_answer {
        char *endpoint;
        unsigned round_trips;
};

/*
 * The endpoint loop of every registry request, tag or digest, so that both reach a
 * registry the same way: the registry's endpoints in order (its `mirrors`, else hosts_dir's
 * hosts.toml, else registries.conf, else https://<registry>), only those with all of
 * job->caps. Each endpoint gets its own TLS settings (pinlet's `registries` entry for the
 * endpoint host wins over the file's), [header]s and credentials (the registry's own name
 * for its own server, the endpoint host for a mirror, as containerd asks per host). Like
 * containerd's resolver, an endpoint that fails (refused, timeout, TLS, any HTTP error,
 * 404) is skipped for the next and the first answer wins. When all fail, the error is the
 * first failure that was not a 404, else PINLET_ENOTFOUND; the message names the image
 * and the registry.
 */
static int endpoints_try(struct pinlet_registry *r, const struct pinlet_ref *ref,
                         const struct pinlet_registry_auth *auth, int64_t deadline_ms,
                         const struct endpoints_job *job, struct endpoints_answer *ret,
                         struct pinlet_error **err)
{
        _cleanup_(pinlet_hosts_list_unrefp) struct pinlet_hosts_list *eps = NULL;
        struct pinlet_error *first = NULL;    /* the first failure that was not a 404 */
        struct pinlet_error *notfound = NULL; /* the first 404 */
        struct resolve_ctx ctx = { .r = r, .domain = ref->domain };
        int64_t t0 = pinlet_now_ms(), budget;
        int first_code = 0, rc = 0;

        budget = r->o.resolve_timeout_ms > 0 ? (int64_t)r->o.resolve_timeout_ms : INT64_MAX / 4;
        ctx.deadline_ms = t0 + budget;
        if (deadline_ms > 0 && deadline_ms < ctx.deadline_ms)
                ctx.deadline_ms = deadline_ms;
        ctx.timeout_ms = ctx.deadline_ms - t0;

        rc = endpoints_for(r, ref, &eps, err);
        if (rc < 0)
                return pinlet_error_wrap(err, rc, "%s: registry %s: hosts configuration",
                                         job->image, ref->domain);
        if (eps->blocked)
                return pinlet_error_set(err, PINLET_REGISTRY_EBLOCKED,
                                        "%s: registry %s is blocked by registries.conf (%s)",
                                        job->image, ref->domain, strempty(eps->source));

        for (size_t i = 0; i < eps->n; i++) {
                const struct pinlet_hosts_endpoint *ep = &eps->v[i];
                const struct pinlet_registry_host *own =
                        pinlet_registry_options_host(&r->o, ep->host);
                _cleanup_(pinlet_buf_free) struct pinlet_buf ca;
                _cleanup_free_ char *hint_key = NULL, *http_url = NULL;
                struct pinlet_error *e = NULL;
                struct pinlet_creds creds = { 0 };
                struct pinlet_registry_host tls;
                struct curl_blob blob = { 0 };
                /* the registry itself (not a mirror): its Docker config entry and its
                 * `registries:` entry are under the registry's name ("docker.io" for
                 * registry-1.docker.io) */
                bool is_server = strcasecmp(ep->host, pinlet_registry_api_host(ref->domain)) == 0;

                pinlet_buf_init(&ca, PINLET_MANIFEST_MAX);
                if (!own && is_server)
                        own = pinlet_registry_options_host(&r->o, ref->domain);
                if ((ep->caps & job->caps) != job->caps)
                        continue; /* e.g. a pull-only mirror never answers for a tag */
                rc = 0;
                /* pinlet's own registries entry for this endpoint host wins over the file */
                if (own) {
                        tls = *own;
                } else {
                        size_t n_ca = 0;

                        for (char *const *f = ep->ca_files; f && *f; f++)
                                n_ca++;
                        tls = (struct pinlet_registry_host){
                                .host = ep->host,
                                .ca_file = n_ca == 1 ? ep->ca_files[0] : NULL,
                                /* curl takes one client pair: the first, which is the one
                                 * Go's TLS stack offers first as well */
                                .cert_file = ep->cert_files ? ep->cert_files[0] : NULL,
                                .key_file = ep->key_files ? ep->key_files[0] : NULL,
                                .skip_verify = ep->skip_verify,
                        };
                        if (n_ca > 1) {
                                rc = read_cas(ep->ca_files, &ca, &e);
                                blob = (struct curl_blob){ .data = ca.data,
                                                           .len = ca.len,
                                                           .flags = CURL_BLOB_NOCOPY };
                        }
                }
                tls.insecure = strncmp(ep->url, "http://", 7) == 0 || (own && own->insecure);
                ctx.ep = ep;
                ctx.ep_url = ep->url;
                if (tls.insecure && strncmp(ep->url, "https://", 8) == 0) {
                        if (asprintf(&http_url, "http://%s", ep->url + 8) < 0)
                                rc = pinlet_error_set(&e, -ENOMEM, "out of memory");
                        ctx.ep_url = http_url;
                }
                ctx.regopt = &tls;
                ctx.ca_blob = blob.data ? &blob : NULL;
                ctx.ep_headers = ep->headers;
                ctx.hint_key = hint_key = lowercase_dup(ep->host);
                if (!hint_key && rc >= 0)
                        rc = pinlet_error_set(&e, -ENOMEM, "out of memory");
                /* the Docker config is keyed by the registry's name for the registry
                 * itself ("docker.io", not registry-1.docker.io), by the mirror's host
                 * for a mirror, as containerd asks its credentials per host */
                if (rc >= 0)
                        rc = node_creds(r, ref, auth, is_server ? ref->domain : ep->host,
                                        ctx.deadline_ms, &creds, &e);
                if (rc >= 0)
                        rc = job->fn(&ctx, ref, &creds, job->userdata, &e);
                pinlet_creds_clear(&creds);
                if (rc >= 0) {
                        pinlet_error_free(first);
                        pinlet_error_free(notfound);
                        pinlet_error_free(e);
                        *ret = (struct endpoints_answer){ .endpoint = strdup(ctx.ep_url),
                                                          .round_trips = ctx.round_trips };
                        if (!ret->endpoint)
                                return pinlet_error_set(err, -ENOMEM, "out of memory");
                        return 0;
                }
                /* with one endpoint the message stays what it always was */
                if (eps->n > 1)
                        (void)pinlet_error_wrap(&e, rc, "endpoint %s", ep->url);
                log_debug("%s: %s", job->image, pinlet_error_message(e, rc));
                if (!try_next(rc, ctx.deadline_ms)) {
                        pinlet_error_free(first);
                        pinlet_error_free(notfound);
                        first = e;
                        first_code = rc;
                        notfound = NULL;
                        break;
                }
                if (rc == PINLET_ENOTFOUND && !notfound) {
                        notfound = e;
                } else if (rc != PINLET_ENOTFOUND && !first) {
                        first = e;
                        first_code = rc;
                } else {
                        pinlet_error_free(e);
                }
        }
        if (!first && notfound) {
                first = TAKE_PTR(notfound);
                first_code = PINLET_ENOTFOUND;
        } else if (first && notfound) {
                /* the failure decides, but an endpoint that answered "not found" is worth
                 * saying: a mirror without the content next to an upstream that is down
                 * (air-gapped) reads very differently from two endpoints down */
                struct pinlet_error *both = NULL;

                (void)pinlet_error_set(&both, first_code, "%s (and %s)",
                                       pinlet_error_message(first, first_code),
                                       pinlet_error_message(notfound, PINLET_ENOTFOUND));
                if (both) {
                        pinlet_error_free(first);
                        first = both;
                }
        }
        pinlet_error_free(notfound);
        if (!first)
                return pinlet_error_set(err, PINLET_ENOTFOUND,
                                        "%s: registry %s: no endpoint has the %s capability",
                                        job->image, ref->domain, job->what);
        if (err && !*err)
                *err = first;
        else
                pinlet_error_free(first);
        return pinlet_error_wrap(err, first_code, "%s: registry %s", job->image, ref->domain);
}

static int resolve_at(struct resolve_ctx *ctx, const struct pinlet_ref *ref,
                      const struct pinlet_creds *creds, void *userdata, struct pinlet_error **err)
{
        struct pinlet_resolution *res = userdata;
        int rc;

        rc = resolve_tag(ctx, ref, creds, res, err);
        if (rc < 0)
                pinlet_resolution_done(res);
        return rc;
}

int pinlet_registry_resolve(struct pinlet_registry *r, const struct pinlet_ref *ref,
                            const struct pinlet_registry_auth *auth, int64_t deadline_ms,
                            struct pinlet_resolution *ret, struct pinlet_error **err)
{
        _cleanup_free_ char *image = NULL;
        struct pinlet_resolution res = { 0 };
        struct endpoints_answer a;
        int64_t t0 = pinlet_now_ms();
        int rc;

        atomic_fetch_add_explicit(&r->st_resolutions, 1, memory_order_relaxed);
        if (!ref || !ref->domain || !ref->path || !ref->tag)
                return pinlet_error_set(err, PINLET_EINVAL, "resolve: reference has no tag");
        if (asprintf(&image, "%s/%s:%s", ref->domain, ref->path, ref->tag) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        /* containerd's resolver asks for a tag only hosts with both "pull" and "resolve"
         * (remotes/docker: HostCapabilityPull | HostCapabilityResolve) */
        rc = endpoints_try(r, ref, auth, deadline_ms,
                           &(const struct endpoints_job){
                                   .image = image,
                                   .what = "resolve",
                                   .caps = PINLET_HOSTS_CAP_PULL | PINLET_HOSTS_CAP_RESOLVE,
                                   .fn = resolve_at,
                                   .userdata = &res,
                           },
                           &a, err);
        if (rc < 0) {
                pinlet_resolution_done(&res);
                return rc;
        }
        res.endpoint = a.endpoint;
        res.round_trips = a.round_trips;
        res.registry_ms = (double)(pinlet_now_ms() - t0);
        log_debug("resolved %s to %s at %s in %u requests", image, res.digest, res.endpoint,
                  res.round_trips);
        *ret = res;
        return 0;
}

/* ---- content by digest ---- */

/* What one fetch asks for, and gets (fetch_at()'s userdata). */
struct fetch_job {
        const char *kind; /* "manifests" or "blobs" */
        const char *digest;
        size_t max;
        struct pinlet_fetched got;
};

static int fetch_at(struct resolve_ctx *ctx, const struct pinlet_ref *ref,
                    const struct pinlet_creds *creds, void *userdata, struct pinlet_error **err)
{
        struct fetch_job *job = userdata;
        struct pinlet_registry *r = ctx->r;
        const char *repo = ctx->ep->repo ? ctx->ep->repo : ref->path;
        const bool manifest = strcmp(job->kind, "manifests") == 0;
        _cleanup_free_ char *url = NULL, *scope = NULL, *origin = NULL, *token_key = NULL;
        _cleanup_free_ char *computed = NULL;
        _cleanup_erase_ char *authz = NULL;
        _cleanup_(response_done) struct response s;
        struct request q = { .kind = REQ_MANIFEST };
        bool fresh_auth = false;
        char algo[16];
        const char *colon = strchr(job->digest, ':');
        int ret;

        response_init(&s, job->max);
        if (!colon || (size_t)(colon - job->digest) >= sizeof(algo))
                return pinlet_error_set(err, PINLET_EINVAL, "invalid digest %s", job->digest);
        if (asprintf(&url, "%s%s/%s/%s/%s", ctx->ep_url, ctx->ep->path, repo, job->kind,
                     job->digest) < 0 ||
            asprintf(&scope, "repository:%s:pull", repo) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        ret = url_origin(url, &origin, NULL, NULL);
        if (ret < 0)
                return pinlet_error_set(err, ret, "bad registry URL");

        authz = authz_from_hint(ctx, scope, creds, &token_key);
        q.method = "GET";
        q.url = url;
        /* the same four types as a resolution: distribution 2.8 refuses OCI manifests to a
         * client that does not accept them, even by digest */
        q.accept = manifest ? PINLET_MT_OCI_INDEX ", " PINLET_MT_DOCKER_LIST
                                                  ", " PINLET_MT_OCI_MANIFEST
                                                  ", " PINLET_MT_DOCKER_V2
                            : NULL;
        q.auth_origin = origin;
        q.body_max = job->max;
        q.tls = ctx->regopt;
        q.tls_origin = origin;
        for (;;) {
                q.authz = authz;
                ret = http_do(ctx, &q, &s, err);
                if (ret < 0)
                        return ret;
                if (s.status == 401 && !origin_same(s.origin, origin))
                        return pinlet_error_set(err, PINLET_EUNAUTH,
                                                "%s request: HTTP 401 from %s after a redirect; "
                                                "credentials are only sent to the registry",
                                                job->kind, s.origin);
                if (s.status == 401 && !fresh_auth) {
                        if (token_key)
                                pinlet_token_cache_drop(&r->tokens, token_key);
                        erase_and_free(TAKE_PTR(authz));
                        ret = authenticate(ctx, &s, scope, creds, &authz, err);
                        if (ret < 0)
                                return ret;
                        fresh_auth = true;
                        continue;
                }
                if (s.status != 200)
                        return status_error(&s, manifest ? "manifest request" : "blob request",
                                            manifest ? "manifest unknown" : "blob unknown", creds,
                                            err);
                break;
        }
        /* content addressed: what came is what the digest names, or nothing */
        memcpy(algo, job->digest, (size_t)(colon - job->digest));
        algo[colon - job->digest] = 0;
        ret = pinlet_hash_digest(algo, s.body.data, s.body.len, &computed);
        if (ret == -ENOMEM)
                return pinlet_error_set(err, ret, "out of memory");
        if (ret < 0)
                return pinlet_error_set(err, PINLET_EPROTO, "cannot verify a %s digest", algo);
        if (strcmp(computed, job->digest) != 0)
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "%s digest mismatch: asked for %s, content is %s",
                                        job->kind, job->digest, computed);
        job->got.media_type = TAKE_PTR(s.content_type);
        job->got.data = pinlet_buf_steal(&s.body, &job->got.len);
        return 0;
}

int pinlet_registry_fetch(struct pinlet_registry *r, const struct pinlet_ref *ref, const char *kind,
                          const char *digest, size_t max, const struct pinlet_registry_auth *auth,
                          int64_t deadline_ms, struct pinlet_fetched *ret,
                          struct pinlet_error **err)
{
        _cleanup_free_ char *image = NULL;
        struct fetch_job job = { .kind = kind, .digest = digest, .max = max };
        struct endpoints_answer a;
        int rc;

        if (!ref || !ref->domain || !ref->path || !kind ||
            (strcmp(kind, "manifests") != 0 && strcmp(kind, "blobs") != 0) || !digest ||
            !pinlet_ref_digest_valid(digest) || max == 0)
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "fetch: needs a repository, manifests or blobs, and a "
                                        "digest");
        if (asprintf(&image, "%s/%s@%s", ref->domain, ref->path, digest) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        /* content by digest comes from hosts with "pull", as containerd's fetcher takes it
         * (a "resolve"-only host never serves content) */
        rc = endpoints_try(r, ref, auth, deadline_ms,
                           &(const struct endpoints_job){
                                   .image = image,
                                   .what = "pull",
                                   .caps = PINLET_HOSTS_CAP_PULL,
                                   .fn = fetch_at,
                                   .userdata = &job,
                           },
                           &a, err);
        if (rc < 0)
                return rc;
        log_debug("fetched %s %s (%zu bytes) at %s in %u requests", kind, image, job.got.len,
                  a.endpoint, a.round_trips);
        job.got.endpoint = a.endpoint;
        *ret = job.got;
        return 0;
}

void pinlet_fetched_done(struct pinlet_fetched *f)
{
        free(f->data);
        free(f->media_type);
        free(f->endpoint);
        *f = (struct pinlet_fetched){ 0 };
}
