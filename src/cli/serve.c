/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `pinlet serve` (also `pinlet` with no command): the CRI proxy daemon.
 *
 * What lives how long:
 *   - for the whole run: the proxy (socket, backend channels, workers), the pin store, the
 *     resolution cache and the audit log;
 *   - per configuration, a generation (struct gen): the configuration itself, the
 *     registry client, the lock files and their watcher, the resolver and the
 *     interceptor. A reload (SIGHUP) builds a new generation and makes it current; every
 *     CRI call holds a reference to the generation current when it started, across both
 *     interceptor phases (the proxy keeps it as the call's state), so calls in flight
 *     finish under the configuration they started with. A generation is freed when its
 *     last call ends.
 *
 * Reload: the file is read and validated, and the new generation built, before anything
 * changes: an invalid file (or one naming files that cannot be read) changes nothing and
 * is logged with its file:line error. Keys that cannot change while running (the socket,
 * the endpoints, the state directory, the message size, the worker count, the pin store
 * bound) keep their old value, and the log names each. Settings of the long-lived parts
 * change in place: the cache's windows and bound, the per-registry queue limit, the log
 * level and format, and the audit log's destinations (which are also reopened).
 *
 * Mode off: nothing is decoded (the interceptors answer at once, without decoding); the
 * pin store and the audit log are still opened, so a reload can turn pinning on.
 *
 * Signals: SIGTERM, SIGINT, SIGUSR1 and SIGHUP are blocked in every thread before gRPC
 * starts its own threads, and one thread takes them with sigwait(): no async-signal-safety
 * puzzles, and gRPC threads never see them.
 *   SIGTERM, SIGINT  graceful shutdown (streams end at once, unary calls get the grace)
 *   SIGUSR1          reopens the audit log (after logrotate moved it)
 *   SIGHUP           reloads the configuration (and reopens the audit log)
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "audit/audit.h"
#include "cache/cache.h"
#include "cli/cli.h"
#include "intercept/answers.h"
#include "intercept/intercept.h"
#include "intercept/methods.h"
#include "lock/lock.h"
#include "metrics/metrics.h"
#include "pins/pins.h"
#include "proxy/proxy.h"
#include "registry/registry.h"
#include "resolve/resolve.h"
#include "util/log.h"
#include "verify/verify.h"

/* Everything built from one configuration. */
struct gen {
        atomic_uint refs;
        struct pinlet_config cfg; /* owned */
        struct pinlet_registry *registry;
        struct pinlet_lock *lock; /* NULL without lock.paths */
        struct pinlet_resolver *resolver;
        struct pinlet_verify *verify; /* verifiers.*: its verdict cache lives as long */
        struct pinlet_interceptor *interceptor;
};

struct daemon {
        struct pinlet_cli_overrides ov; /* to read the configuration again */
        char *runtime_name;             /* the backend's Version answer; NULL: unknown */

        /* for the whole run */
        struct pinlet_cache *cache;
        struct pinlet_pins *pins;
        struct pinlet_audit *audit;
        struct pinlet_proxy *proxy;
        struct pinlet_metrics *metrics;             /* NULL without metrics.listen */
        _Atomic(struct pinlet_proxy *) proxy_ready; /* for the metrics thread: set while
                                                     * the proxy exists */
        struct pinlet_method *methods; /* the CRI method table with the interceptors bound */
        size_t n_methods;

        pthread_mutex_t lock; /* protects current */
        struct gen *current;

        atomic_uint_fast64_t reloads_ok, reloads_failed;
        atomic_int_fast64_t last_reload_ok; /* unix seconds */

        /* lock file reloads by the watchers of retired generations (each generation
         * watches with a lock of its own): pinlet_lock_reloads_total counts on across
         * configuration reloads. Under lock. */
        uint64_t lock_reloads_ok, lock_reloads_failed;
};

struct signal_thread {
        pthread_t thread;
        sigset_t set;
        struct daemon *d;
        atomic_bool done; /* set by the main thread after pinlet_proxy_run() returned */
};

/* ---- generations ---- */

static void gen_free(struct gen *g)
{
        if (!g)
                return;
        pinlet_interceptor_free(g->interceptor);
        pinlet_verify_free(g->verify);
        pinlet_resolver_free(g->resolver);
        pinlet_lock_free(g->lock);
        pinlet_registry_free(g->registry);
        pinlet_config_free(&g->cfg);
        free(g);
}

static void gen_unref(void *p)
{
        struct gen *g = p;

        if (g && atomic_fetch_sub(&g->refs, 1) == 1)
                gen_free(g);
}

static struct gen *gen_get(struct daemon *d)
{
        struct gen *g;

        pthread_mutex_lock(&d->lock);
        g = d->current;
        atomic_fetch_add(&g->refs, 1);
        pthread_mutex_unlock(&d->lock);
        return g;
}

static void warn_skip_verify(const struct pinlet_config *cfg)
{
        char **hosts = NULL;

        if (pinlet_cli_skip_verify_hosts(cfg, &hosts) < 0 || !hosts)
                return;
        for (char **h = hosts; *h; h++)
                log_warn("TLS CERTIFICATE VERIFICATION IS OFF for registry %s (skip_verify): "
                         "anyone on the network path can forge its digests",
                         *h);
        pinlet_strv_free(hosts);
}

/* The verifier runner of a generation. Its verifiers get PINLET_CONFIG = the file this
 * generation was read from, as an absolute path (the plugins read the same registries,
 * credentials and TLS settings); none when no file was read; and PINLET_RUNTIME = the
 * runtime's name when known (the plugins then apply the same default hosts files). */
static int gen_verify_new(const struct daemon *d, struct gen *g, struct pinlet_error **err)
{
        _cleanup_free_ char *abs = NULL;
        int r;

        if (g->cfg.path)
                abs = realpath(g->cfg.path, NULL);
        r = pinlet_verify_new(
                &(const struct pinlet_verify_options){
                        .bin_dir = g->cfg.verifiers_bin_dir,
                        .max = g->cfg.verifiers_max,
                        .timeout_ms = g->cfg.verifiers_timeout_ms,
                        .on_failure = g->cfg.verifiers_on_failure,
                        .allow_ttl_ms = g->cfg.verifiers_cache_ttl_ms,
                        .config_path = abs ? abs : g->cfg.path,
                        .runtime_name = d->runtime_name,
                        .registry = g->registry,
                },
                &g->verify, err);
        if (r < 0)
                return pinlet_error_wrap(err, r, "verifiers");
        if (g->cfg.verifiers_bin_dir)
                log_info("verifiers: %s (first %u, %" PRIu64 " ms each, on_failure %s)",
                         g->cfg.verifiers_bin_dir, g->cfg.verifiers_max,
                         g->cfg.verifiers_timeout_ms,
                         pinlet_on_failure_to_string(g->cfg.verifiers_on_failure));
        return 0;
}

/*
 * The runtime behind us, by one RuntimeService/Version call at start (waiting up to the
 * connect timeout for a runtime that starts after pinlet): its name decides which
 * registry configuration files (containerd's hosts_dir, CRI-O's registries.conf) apply
 * by default. Without an answer only the paths set in pinlet's configuration apply, and
 * the log says so. NULL when unknown.
 */
static char *runtime_name(const struct pinlet_config *cfg)
{
        _cleanup_error_ struct pinlet_error *verr = NULL;
        char *name = NULL;
        int r;

        r = pinlet_cli_runtime_name(cfg->runtime_endpoint, cfg->connect_timeout_ms, &name, &verr);
        if (r < 0) {
                log_warn("cannot tell which runtime this is (%s): only the hosts_dir and "
                         "registries_conf set in the configuration apply",
                         pinlet_error_message(verr, r));
                return NULL;
        }
        log_info("runtime: %s", name);
        return name;
}

/*
 * Builds a generation from cfg (taken: owned by the generation, also on failure). Every
 * failure here is a configuration error (a file the configuration names that cannot be
 * read or parsed).
 */
static int gen_new(struct daemon *d, struct pinlet_config *cfg, struct gen **ret,
                   struct pinlet_error **err)
{
        struct gen *g;
        int r;

        g = calloc(1, sizeof(*g));
        if (!g) {
                pinlet_config_free(cfg);
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        atomic_init(&g->refs, 1);
        g->cfg = *cfg;
        *cfg = (struct pinlet_config){};

        r = pinlet_cli_registry_new_for(&g->cfg, d->runtime_name, &g->registry, err);
        if (r < 0) {
                pinlet_error_wrap(err, r, "registry client");
                goto fail;
        }
        if (g->cfg.lock_paths) {
                r = pinlet_lock_new(g->cfg.lock_paths, NULL, &g->lock, err);
                if (r < 0) {
                        pinlet_error_wrap(err, r, "lock files");
                        goto fail;
                }
                r = pinlet_lock_watch_start(g->lock, err);
                if (r < 0) {
                        pinlet_error_wrap(err, r, "lock files: watching for changes");
                        goto fail;
                }
        }
        r = pinlet_resolver_new(
                &(const struct pinlet_resolver_options){
                        .registry = g->registry,
                        .cache = d->cache,
                        .pins = d->pins,
                        .error_ttl_ms = g->cfg.cache_error_ttl_ms,
                        .metrics = d->metrics,
                },
                &g->resolver, err);
        if (r < 0)
                goto fail;
        r = gen_verify_new(d, g, err);
        if (r < 0)
                goto fail;
        r = pinlet_interceptor_new(
                &(const struct pinlet_interceptor_options){
                        .cfg = &g->cfg,
                        .resolver = g->resolver,
                        .pins = d->pins,
                        .audit = d->audit,
                        .lock = g->lock,
                        .metrics = d->metrics,
                        .verify = g->verify,
                        /* CRI-O qualifies short names from registries.conf; containerd
                         * (and a runtime pinlet could not name) with docker.io */
                        .short_names = pinlet_cli_runtime_is_crio(d->runtime_name)
                                               ? pinlet_registry_hosts(g->registry)
                                               : NULL,
                },
                &g->interceptor, err);
        if (r < 0)
                goto fail;
        *ret = g;
        return 0;
fail:
        gen_free(g);
        return r;
}

static void log_gen(const struct daemon *d, const struct gen *g)
{
        const struct pinlet_config *cfg = &g->cfg;
        struct pinlet_cli_hosts_files f;

        if (cfg->mode == PINLET_MODE_OFF)
                log_info("mode off: every call passes through untouched");
        else
                log_info("mode %s, on_failure %s, audit log %s", pinlet_mode_to_string(cfg->mode),
                         pinlet_on_failure_to_string(cfg->on_failure),
                         cfg->audit_file && *cfg->audit_file ? cfg->audit_file : "(none)");
        for (char **p = cfg->lock_paths; p && *p; p++)
                log_info("lock files: %s", *p);
        pinlet_cli_hosts_files(cfg, d->runtime_name, &f);
        log_info("registry hosts: hosts_dir %s, registries_conf %s; short names: %s%s%s",
                 f.hosts_dir ? f.hosts_dir : "(none)",
                 f.registries_conf ? f.registries_conf : "(none)",
                 pinlet_cli_runtime_is_crio(d->runtime_name) ? "registries.conf (CRI-O)"
                                                             : "docker.io",
                 f.short_name_aliases ? ", aliases also from " : "",
                 strempty(f.short_name_aliases));
        warn_skip_verify(cfg);
}

/* ---- the interceptors, through the current generation ---- */

/*
 * The call's generation: on the first (completion-queue) phase the current one, held
 * until the call ends (handed to the proxy as the call's state when it defers); on the
 * second phase the one the first left.
 */
static void through_gen(pinlet_intercept_fn fn, void *userdata, const struct pinlet_call_info *info,
                        const uint8_t *request, size_t len, struct pinlet_intercept_result *ret)
{
        struct gen *g = info->state ? info->state : gen_get(userdata);

        fn(g->interceptor, info, request, len, ret);
        if (info->state)
                return; /* the proxy releases it with the call */
        if (ret->action == PINLET_DEFER)
                ret->state = g;
        else
                gen_unref(g);
}

/* The same for the responders (answers.h): the call's generation when its request phase
 * left one, else the current one. */
static void respond_through_gen(pinlet_respond_fn fn, void *userdata,
                                const struct pinlet_call_info *info, const uint8_t *request,
                                size_t request_len, int status, const uint8_t *response,
                                size_t response_len, struct pinlet_intercept_result *ret)
{
        struct gen *g = info->state ? info->state : gen_get(userdata);

        fn(g->interceptor, info, request, request_len, status, response, response_len, ret);
        if (info->state)
                return;
        if (ret->action == PINLET_DEFER)
                ret->state = g;
        else
                gen_unref(g);
}

#define RESPONDER(name, fn)                                                                     \
        static void name(void *userdata, const struct pinlet_call_info *info,                   \
                         const uint8_t *request, size_t request_len, int status,                \
                         const uint8_t *response, size_t response_len,                          \
                         struct pinlet_intercept_result *ret)                                   \
        {                                                                                       \
                respond_through_gen(fn, userdata, info, request, request_len, status, response, \
                                    response_len, ret);                                         \
        }
RESPONDER(image_status_answer, pinlet_answers_image_status)
RESPONDER(list_images_answer, pinlet_answers_list_images)
RESPONDER(remove_image_answer, pinlet_answers_remove_image)

static void remove_image(void *userdata, const struct pinlet_call_info *info,
                         const uint8_t *request, size_t len, struct pinlet_intercept_result *ret)
{
        through_gen(pinlet_answers_remove_image_request, userdata, info, request, len, ret);
}

static void pull_image(void *userdata, const struct pinlet_call_info *info, const uint8_t *request,
                       size_t len, struct pinlet_intercept_result *ret)
{
        through_gen(pinlet_interceptor_pull_image, userdata, info, request, len, ret);
}

static void image_status(void *userdata, const struct pinlet_call_info *info,
                         const uint8_t *request, size_t len, struct pinlet_intercept_result *ret)
{
        through_gen(pinlet_interceptor_image_status, userdata, info, request, len, ret);
}

static void create_container(void *userdata, const struct pinlet_call_info *info,
                             const uint8_t *request, size_t len,
                             struct pinlet_intercept_result *ret)
{
        through_gen(pinlet_interceptor_create_container, userdata, info, request, len, ret);
}

/* ---- the long-lived parts ---- */

static struct pinlet_cache_options cache_options(const struct pinlet_config *cfg)
{
        return (struct pinlet_cache_options){
                .ttl_ms = cfg->cache_ttl_ms,
                .stale_if_error_ms = cfg->cache_stale_if_error_ms,
                .negative_ttl_ms = cfg->cache_negative_ttl_ms,
                .max_entries = cfg->cache_max_entries,
        };
}

/* Opens the pin store, the cache and the audit log. A failure is a configuration error
 * (a state or audit directory that cannot be used) unless memory ran out. */
static int daemon_open(struct daemon *d, const struct pinlet_config *cfg, struct pinlet_error **err)
{
        static const struct pinlet_cri_binding bindings[] = {
                { "ImageService/PullImage", pull_image },
                { "ImageService/ImageStatus", image_status, image_status_answer },
                { "ImageService/ListImages", NULL, list_images_answer },
                { "ImageService/RemoveImage", remove_image, remove_image_answer },
                { "RuntimeService/CreateContainer", create_container },
        };
        const struct pinlet_cache_options co = cache_options(cfg);
        const struct pinlet_pins_load_report *report;
        int r;

        r = pinlet_cache_new(&co, &d->cache);
        if (r < 0)
                return pinlet_error_set(err, r, "resolution cache: %s", strerror(-r));
        r = pinlet_pins_open(cfg->state_dir, cfg->pins_max_entries, &d->pins, err);
        if (r < 0)
                return r;
        report = pinlet_pins_load_report(d->pins);
        if (report && (report->skipped || report->truncated))
                log_warn("pin store %s: skipped %zu damaged and %zu truncated lines (%s); "
                         "kept %zu pins, the damaged file is saved as pins.jsonl.corrupt",
                         cfg->state_dir, report->skipped, report->truncated,
                         report->first_problem ? report->first_problem : "no detail",
                         report->entries);
        else if (report)
                log_info("pin store %s: %zu pins", cfg->state_dir, report->entries);
        r = pinlet_audit_open(
                &(const struct pinlet_audit_options){
                        .path = cfg->audit_file,
                        .also_stderr = cfg->audit_stderr,
                },
                &d->audit, err);
        if (r < 0)
                return pinlet_error_wrap(err, r, "audit log");
        return pinlet_cri_methods_build(bindings, ELEMENTSOF(bindings), &d->methods, &d->n_methods,
                                        err);
}

static void daemon_close(struct daemon *d)
{
        pinlet_metrics_free(d->metrics); /* stops its thread: no callback runs after this */
        d->metrics = NULL;
        gen_unref(d->current);
        d->current = NULL;
        free(d->methods);
        free(d->runtime_name);
        pinlet_audit_close(d->audit);
        pinlet_pins_close(d->pins);
        pinlet_cache_free(d->cache);
        pthread_mutex_destroy(&d->lock);
}

/* ---- metrics: scrape-time callbacks (HTTP thread) and proxy observers (CQ thread) ---- */

static uint64_t m_cache_entries(void *userdata)
{
        struct daemon *d = userdata;

        return d->cache ? pinlet_cache_size(d->cache) : 0;
}

static uint64_t m_pins(void *userdata)
{
        struct daemon *d = userdata;

        return d->pins ? pinlet_pins_size(d->pins) : 0;
}

/* The lock of the configuration in force (its counters start again when a reload builds
 * a new one: Prometheus treats that as a counter reset). */
static void m_lock_stats(void *userdata, struct pinlet_metrics_lock_stats *ret)
{
        struct daemon *d = userdata;
        struct pinlet_lock_stats st = {};
        uint64_t ok, failed;

        /* under d->lock: a configuration reload moves the counts to the base at once */
        pthread_mutex_lock(&d->lock);
        if (d->current && d->current->lock)
                pinlet_lock_get_stats(d->current->lock, &st);
        ok = d->lock_reloads_ok;
        failed = d->lock_reloads_failed;
        pthread_mutex_unlock(&d->lock);
        *ret = (struct pinlet_metrics_lock_stats){
                .entries = st.entries,
                .reloads_ok = ok + st.reloads_ok,
                .reloads_failed = failed + st.reloads_failed,
        };
}

static uint64_t m_audit_write_errors(void *userdata)
{
        struct daemon *d = userdata;
        uint64_t written = 0, failed = 0;

        if (d->audit)
                pinlet_audit_stats(d->audit, &written, &failed);
        return failed;
}

static bool m_backend_up(void *userdata, enum pinlet_metrics_backend b)
{
        struct daemon *d = userdata;
        struct pinlet_proxy *p = atomic_load(&d->proxy_ready);

        return p && pinlet_proxy_backend_ready(p, b == PINLET_METRICS_BACKEND_IMAGE);
}

static void on_call_done(void *userdata, const char *path, int status, int64_t duration_ns)
{
        struct daemon *d = userdata;

        pinlet_metrics_cri_request(d->metrics, path, status,
                                   duration_ns > 0 ? (uint64_t)duration_ns : 0);
}

static void on_wake(void *userdata)
{
        struct daemon *d = userdata;

        pinlet_metrics_heartbeat(d->metrics);
}

/* metrics.listen set: the endpoint, started before the proxy (signals are blocked, so its
 * thread never takes them). Configuration errors (a bad address, a port in use) exit 2. */
static int metrics_open(struct daemon *d, const struct pinlet_config *cfg,
                        struct pinlet_error **err)
{
        _cleanup_free_ const char **methods = NULL, **registries = NULL;
        const struct pinlet_method *table;
        size_t n, k = 0;
        int r;

        if (!cfg->metrics_listen || !*cfg->metrics_listen)
                return 0;
        table = pinlet_cri_methods(&n);
        methods = calloc(n + 2, sizeof(*methods));
        registries = calloc(cfg->n_registries + 1, sizeof(*registries));
        if (!methods || !registries)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
                methods[k++] = table[i].path;
        methods[k] = "GetContainerEvents"; /* streaming, so not in the table */
        for (size_t i = 0; i < cfg->n_registries; i++)
                registries[i] = cfg->registries[i].host;
        r = pinlet_metrics_new(
                &(const struct pinlet_metrics_options){
                        .listen = cfg->metrics_listen,
                        .cri_methods = methods,
                        .registries = registries,
                        .max_other_registries = cfg->metrics_max_other_registries,
                        .userdata = d,
                        .cache_entries = m_cache_entries,
                        .pins = m_pins,
                        .lock_stats = m_lock_stats,
                        .audit_write_errors = m_audit_write_errors,
                        .backend_up = m_backend_up,
                },
                &d->metrics, err);
        if (r < 0)
                return pinlet_error_wrap(err, r, "metrics.listen");
        log_info("metrics and health on %s", pinlet_metrics_address(d->metrics));
        return 0;
}

/* ---- reload ---- */

#define KEEP(field, name, fmt, ...)                                                         \
        do {                                                                                \
                if (changed_##fmt(old->field, new->field)) {                                \
                        log_warn("reload: %s cannot change while pinlet runs: keeping the " \
                                 "old value (restart pinlet to apply the new one)",         \
                                 name);                                                     \
                        keep_##fmt(&new->field, old->field);                                \
                }                                                                           \
        } while (0)

static bool changed_str(const char *a, const char *b)
{
        return !streq_ptr(a && *a ? a : NULL, b && *b ? b : NULL);
}

static void keep_str(char **field, const char *old)
{
        char *copy = old ? strdup(old) : NULL;

        if (old && !copy)
                return; /* out of memory: the new value stays, it is only unused */
        free(*field);
        *field = copy;
}

static bool changed_num(uint64_t a, uint64_t b)
{
        return a != b;
}

#define keep_num(field, old) (*(field) = (old))

/* The keys that only take effect at start keep their running value in new. */
static void keep_immutable(const struct pinlet_config *old, struct pinlet_config *new)
{
        KEEP(listen, "listen", str);
        KEEP(socket_mode, "socket.mode", num);
        KEEP(socket_uid, "socket.owner", num);
        KEEP(socket_gid, "socket.group", num);
        KEEP(runtime_endpoint, "runtime_endpoint", str);
        KEEP(image_endpoint, "image_endpoint", str);
        KEEP(state_dir, "state_dir", str);
        KEEP(max_message_size, "max_message_size", num);
        KEEP(shutdown_grace_ms, "shutdown_grace", num);
        KEEP(workers, "resolver.workers", num);
        KEEP(pins_max_entries, "pins.max_entries", num);
        KEEP(metrics_listen, "metrics.listen", str);
        KEEP(metrics_max_other_registries, "metrics.max_other_registries", num);
}

static int daemon_reload(struct daemon *d)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_config cfg;
        struct pinlet_cache_options co;
        struct gen *old, *g = NULL;
        int r;

        r = pinlet_cli_load_config(&d->ov, &cfg, &err);
        if (r >= 0)
                r = pinlet_cli_preflight(&cfg, NULL, &err); /* what serve checks at start */
        if (r >= 0) {
                old = gen_get(d);
                keep_immutable(&old->cfg, &cfg);
                gen_unref(old);
                r = gen_new(d, &cfg, &g, &err); /* takes cfg */
        } else {
                pinlet_config_free(&cfg);
        }
        if (r >= 0)
                r = pinlet_audit_reconfigure(d->audit,
                                             &(const struct pinlet_audit_options){
                                                     .path = g->cfg.audit_file,
                                                     .also_stderr = g->cfg.audit_stderr,
                                             },
                                             &err);
        pinlet_metrics_config_reload(d->metrics, r >= 0);
        if (r < 0) {
                gen_unref(g);
                atomic_fetch_add(&d->reloads_failed, 1);
                log_error("reload failed, the configuration in force is unchanged: %s",
                          pinlet_error_message(err, r));
                return r;
        }

        /* the long-lived parts: settings that change in place */
        co = cache_options(&g->cfg);
        pinlet_cache_set_options(d->cache, &co);
        pinlet_proxy_set_queue_limit(d->proxy, g->cfg.resolver_per_registry);
        pinlet_log_setup((enum pinlet_log_level)g->cfg.log_level,
                         (enum pinlet_log_format)g->cfg.log_format);

        pthread_mutex_lock(&d->lock);
        old = d->current;
        if (old && old->lock) {
                struct pinlet_lock_stats st = {};

                /* the retired watcher's count so far; a reload it still makes while its
                 * last calls end is not counted */
                pinlet_lock_get_stats(old->lock, &st);
                d->lock_reloads_ok += st.reloads_ok;
                d->lock_reloads_failed += st.reloads_failed;
        }
        d->current = g;
        pthread_mutex_unlock(&d->lock);
        gen_unref(old); /* freed when its last call ends */

        atomic_fetch_add(&d->reloads_ok, 1);
        atomic_store(&d->last_reload_ok, (int_fast64_t)time(NULL));
        log_info("configuration reloaded from %s", g->cfg.path ? g->cfg.path : "(defaults)");
        log_gen(d, g);
        return 0;
}

/* ---- signals ---- */

static void *signal_main(void *arg)
{
        struct signal_thread *st = arg;
        struct daemon *d = st->d;
        bool stopping = false;

        for (;;) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                int sig, r;

                if (sigwait(&st->set, &sig) != 0)
                        continue;
                if (atomic_load(&st->done))
                        return NULL;
                switch (sig) {
                case SIGTERM:
                case SIGINT:
                        if (stopping) {
                                log_info("already stopping (%s)", strsignal(sig));
                                break;
                        }
                        stopping = true;
                        log_info("stopping (%s)", strsignal(sig));
                        sd_notify(0, "STOPPING=1");
                        pinlet_metrics_set_ready(d->metrics, false);
                        pinlet_proxy_shutdown(d->proxy);
                        break;
                case SIGUSR1:
                        r = pinlet_audit_reopen(d->audit, &err);
                        if (r < 0)
                                log_error("SIGUSR1: reopening the audit log: %s",
                                          pinlet_error_message(err, r));
                        else
                                log_info("SIGUSR1: audit log reopened");
                        break;
                case SIGHUP:
                        if (stopping)
                                break;
                        sd_notify(0, "RELOADING=1");
                        (void)daemon_reload(d); /* also reopens the audit log */
                        sd_notify(0, "READY=1");
                        break;
                default:
                        break;
                }
        }
}

static void usage(void)
{
        printf("Usage: pinlet [serve] [OPTIONS]\n"
               "\n"
               "Runs the CRI proxy: serves CRI on a unix socket and forwards every call to the\n"
               "container runtime, pinning image tags to digests on the way. SIGHUP reloads\n"
               "the configuration, SIGUSR1 reopens the audit log.\n"
               "\n"
               "Options:\n"
               "  -h, --help               show this help\n" PINLET_CONFIG_OPTIONS_HELP);
}

static int serve(struct daemon *d, struct pinlet_config *cfg, sigset_t *set)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct signal_thread st = { .set = *set, .d = d };
        struct pinlet_proxy_options opts;
        const struct pinlet_config *c;
        int r;

        /* Everything check-config checks, before anything binds: a configuration error
         * exits 2, which the unit does not restart (RestartPreventExitStatus=2). */
        r = pinlet_cli_preflight(cfg, NULL, &err);
        if (r < 0) {
                log_error("cannot start: configuration %s: %s",
                          cfg->path ? cfg->path : "(defaults)", pinlet_error_message(err, r));
                pinlet_config_free(cfg);
                return r == -ENOMEM ? PINLET_EXIT_FAILURE : PINLET_EXIT_USAGE;
        }
        d->runtime_name = runtime_name(cfg);
        r = metrics_open(d, cfg, &err);
        if (r >= 0)
                r = daemon_open(d, cfg, &err);
        if (r < 0)
                pinlet_config_free(cfg);
        else
                r = gen_new(d, cfg, &d->current, &err); /* takes cfg */
        if (r < 0) {
                log_error("cannot start: %s", pinlet_error_message(err, r));
                return r == -ENOMEM ? PINLET_EXIT_FAILURE : PINLET_EXIT_USAGE;
        }
        c = &d->current->cfg;
        log_gen(d, d->current);

        opts = (struct pinlet_proxy_options){
                .listen_path = c->listen,
                .socket_mode = c->socket_mode,
                .socket_uid = c->socket_uid,
                .socket_gid = c->socket_gid,
                .runtime_endpoint = c->runtime_endpoint,
                .image_endpoint = c->image_endpoint,
                .image_prefixes = pinlet_cri_image_prefixes,
                .max_message_size = c->max_message_size,
                .shutdown_grace_ms = c->shutdown_grace_ms,
                .workers = c->workers,
                .queue_limit = c->resolver_per_registry,
                .methods = d->methods,
                .n_methods = d->n_methods,
                .userdata = d,
                .state_free = gen_unref,
                .on_call_done = d->metrics ? on_call_done : NULL,
                .on_wake = d->metrics ? on_wake : NULL,
        };
        r = pinlet_proxy_new(&opts, &d->proxy, &err);
        if (r < 0) {
                log_error("cannot start: %s", pinlet_error_message(err, r));
                return PINLET_EXIT_FAILURE;
        }
        atomic_store(&d->proxy_ready, d->proxy);
        pinlet_metrics_set_ready(d->metrics, true); /* listening; /readyz also asks the backend */
        log_info("listening on %s (mode %04o)", c->listen, (unsigned)c->socket_mode);
        if (c->image_endpoint && c->image_endpoint[0] &&
            strcmp(c->image_endpoint, c->runtime_endpoint) != 0)
                log_info("forwarding to %s, images to %s", c->runtime_endpoint, c->image_endpoint);
        else
                log_info("forwarding to %s", c->runtime_endpoint);

        r = pthread_create(&st.thread, NULL, signal_main, &st);
        if (r != 0) {
                log_error("cannot start the signal thread: %s", strerror(r));
                atomic_store(&d->proxy_ready, NULL);
                pinlet_proxy_free(TAKE_PTR(d->proxy));
                return PINLET_EXIT_FAILURE;
        }
        sd_notify(0, "READY=1");
        log_info("ready");

        pinlet_proxy_run(d->proxy);

        /* Wake the signal thread (the signal stays blocked, sigwait takes it) and join. */
        atomic_store(&st.done, true);
        pthread_kill(st.thread, SIGTERM);
        pthread_join(st.thread, NULL);
        atomic_store(&d->proxy_ready, NULL);
        pinlet_proxy_free(TAKE_PTR(d->proxy)); /* joins the workers: no call is left */
        log_info("stopped");
        return PINLET_EXIT_OK;
}

int pinlet_cmd_serve(int argc, char **argv)
{
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                PINLET_CONFIG_OPTIONS,
                {},
        };
        struct daemon d = { .ov = { .cmd = "serve" }, .lock = PTHREAD_MUTEX_INITIALIZER };
        struct pinlet_config cfg;
        sigset_t set;
        int c, r;

        optind = 0;
        while ((c = pinlet_cli_getopt("serve", argc, argv, "h", options)) >= 0) {
                if (c == 'h') {
                        usage();
                        return PINLET_EXIT_OK;
                }
                if (!pinlet_cli_override(&d.ov, c, optarg))
                        return PINLET_EXIT_USAGE;
        }
        if (optind < argc) {
                fprintf(stderr, "pinlet serve: unexpected argument '%s'\n", argv[optind]);
                return PINLET_EXIT_USAGE;
        }

        /* One malloc arena: glibc gives each thread that allocates its own (gRPC's, the CQ
         * thread, every resolver worker), which kept ~2.5 MiB more resident after load
         * for no throughput gain (docs/PERFORMANCE.md, "Memory"). */
        mallopt(M_ARENA_MAX, 1);

        /* Before anything starts a thread (gRPC does in grpc_init): every thread inherits
         * this mask, so only the signal thread ever receives these signals. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGUSR1);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL);

        r = pinlet_cli_load(&d.ov, &cfg);
        if (r == PINLET_EXIT_OK)
                r = serve(&d, &cfg, &set); /* takes cfg */
        else
                pinlet_config_free(&cfg);
        daemon_close(&d);
        return r;
}
