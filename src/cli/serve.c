/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `pinlet serve` (also `pinlet` with no command): the CRI proxy daemon.
 *
 * Signals: SIGTERM, SIGINT, SIGUSR1 and SIGHUP are blocked in every thread before gRPC
 * starts its own threads, and one thread takes them with sigwait(): no async-signal-safety
 * puzzles, and gRPC threads never see them.
 *   SIGTERM, SIGINT  graceful shutdown (streams end at once, unary calls get the grace)
 *   SIGUSR1          reopens the audit log (after logrotate moved it)
 *   SIGHUP           ignored with a notice (configuration is read at start only)
 */
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "audit/audit.h"
#include "cache/cache.h"
#include "cli/cli.h"
#include "intercept/intercept.h"
#include "intercept/methods.h"
#include "lock/lock.h"
#include "pins/pins.h"
#include "proxy/proxy.h"
#include "registry/registry.h"
#include "resolve/resolve.h"
#include "util/log.h"

struct signal_thread {
        pthread_t thread;
        sigset_t set;
        struct pinlet_proxy *proxy;
        struct pinlet_audit *audit; /* reopened on SIGUSR1; NULL when none */
        atomic_bool done;           /* set by the main thread after pinlet_proxy_run() returned */
};

/* Everything the interceptors use, created before the proxy and freed after it (the
 * proxy's workers are joined by then). */
struct pipeline {
        struct pinlet_registry *registry;
        struct pinlet_cache *cache;
        struct pinlet_pins *pins;
        struct pinlet_audit *audit;
        struct pinlet_lock *lock; /* NULL without lock.paths */
        struct pinlet_resolver *resolver;
        struct pinlet_interceptor *interceptor;
        struct pinlet_method *methods; /* the CRI method table with the interceptors bound */
        size_t n_methods;
        bool config_error; /* pipeline_init failed on the configuration: exit 2 */
};

static void pipeline_done(struct pipeline *pl)
{
        free(pl->methods);
        pinlet_interceptor_free(pl->interceptor);
        pinlet_resolver_free(pl->resolver);
        pinlet_lock_free(pl->lock);
        pinlet_audit_close(pl->audit);
        pinlet_pins_close(pl->pins);
        pinlet_cache_free(pl->cache);
        pinlet_registry_free(pl->registry);
        *pl = (struct pipeline){};
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

/* Creates the resolution pipeline and binds the interceptors into the method table. Mode
 * off decodes nothing: no interceptor, no pin store, no audit records. */
/*
 * The registry client, with the registry configuration files of the runtime behind us:
 * its name comes from one RuntimeService/Version call (waiting up to the connect timeout
 * for a runtime that starts after pinlet). Without an answer only the paths set in
 * pinlet's configuration apply, and the log says so.
 */
static int runtime_registry_new(const struct pinlet_config *cfg, struct pinlet_registry **ret,
                                struct pinlet_error **err)
{
        _cleanup_error_ struct pinlet_error *verr = NULL;
        _cleanup_free_ char *name = NULL;
        struct pinlet_cli_hosts_files f;
        int r;

        r = pinlet_cli_runtime_name(cfg->runtime_endpoint, cfg->connect_timeout_ms, &name, &verr);
        if (r < 0)
                log_warn("cannot tell which runtime this is (%s): only the hosts_dir and "
                         "registries_conf set in the configuration apply",
                         pinlet_error_message(verr, r));
        else
                log_info("runtime: %s", name);
        pinlet_cli_hosts_files(cfg, name, &f);
        log_info("registry hosts: hosts_dir %s, registries_conf %s",
                 f.hosts_dir ? f.hosts_dir : "(none)",
                 f.registries_conf ? f.registries_conf : "(none)");
        return pinlet_cli_registry_new_for(cfg, name, ret, err);
}

static int pipeline_init(struct pipeline *pl, const struct pinlet_config *cfg,
                         struct pinlet_error **err)
{
        const struct pinlet_cache_options co = {
                .ttl_ms = cfg->cache_ttl_ms,
                .stale_if_error_ms = cfg->cache_stale_if_error_ms,
                .negative_ttl_ms = cfg->cache_negative_ttl_ms,
                .max_entries = cfg->cache_max_entries,
        };
        const struct pinlet_audit_options ao = {
                .path = cfg->audit_file,
                .also_stderr = cfg->audit_stderr,
        };
        const struct pinlet_pins_load_report *report;
        int r;

        static const struct pinlet_cri_binding bindings[] = {
                { "ImageService/PullImage", pinlet_interceptor_pull_image },
                { "ImageService/ImageStatus", pinlet_interceptor_image_status },
                { "RuntimeService/CreateContainer", pinlet_interceptor_create_container },
        };

        if (cfg->mode == PINLET_MODE_OFF) {
                log_info("mode off: every call passes through untouched");
                return pinlet_cri_methods_build(NULL, 0, &pl->methods, &pl->n_methods, err);
        }
        warn_skip_verify(cfg);
        r = runtime_registry_new(cfg, &pl->registry, err);
        if (r < 0)
                return pinlet_error_wrap(err, r, "registry client");
        r = pinlet_cache_new(&co, &pl->cache);
        if (r < 0)
                return pinlet_error_set(err, r, "resolution cache: %s", strerror(-r));
        r = pinlet_pins_open(cfg->state_dir, cfg->pins_max_entries, &pl->pins, err);
        if (r < 0)
                return r;
        report = pinlet_pins_load_report(pl->pins);
        if (report && (report->skipped || report->truncated))
                log_warn("pin store %s: skipped %zu damaged and %zu truncated lines (%s); "
                         "kept %zu pins, the damaged file is saved as pins.jsonl.corrupt",
                         cfg->state_dir, report->skipped, report->truncated,
                         report->first_problem ? report->first_problem : "no detail",
                         report->entries);
        else if (report)
                log_info("pin store %s: %zu pins", cfg->state_dir, report->entries);
        r = pinlet_audit_open(&ao, &pl->audit, err);
        if (r < 0)
                return pinlet_error_wrap(err, r, "audit log");
        if (cfg->lock_paths) {
                r = pinlet_lock_new(cfg->lock_paths, NULL, &pl->lock, err);
                if (r < 0) {
                        pl->config_error = true;
                        return pinlet_error_wrap(err, r, "lock files");
                }
                r = pinlet_lock_watch_start(pl->lock, err);
                if (r < 0)
                        return pinlet_error_wrap(err, r, "lock files: watching for changes");
                for (char **p = cfg->lock_paths; *p; p++)
                        log_info("lock files: %s", *p);
        }
        r = pinlet_resolver_new(
                &(const struct pinlet_resolver_options){
                        .registry = pl->registry,
                        .cache = pl->cache,
                        .pins = pl->pins,
                        .error_ttl_ms = cfg->cache_error_ttl_ms,
                },
                &pl->resolver, err);
        if (r < 0)
                return r;
        r = pinlet_interceptor_new(
                &(const struct pinlet_interceptor_options){
                        .cfg = cfg,
                        .resolver = pl->resolver,
                        .pins = pl->pins,
                        .audit = pl->audit,
                        .lock = pl->lock,
                },
                &pl->interceptor, err);
        if (r < 0)
                return r;
        r = pinlet_cri_methods_build(bindings, ELEMENTSOF(bindings), &pl->methods, &pl->n_methods,
                                     err);
        if (r < 0)
                return r;
        log_info("mode %s, on_failure %s, audit log %s", pinlet_mode_to_string(cfg->mode),
                 pinlet_on_failure_to_string(cfg->on_failure),
                 cfg->audit_file && *cfg->audit_file ? cfg->audit_file : "(none)");
        return 0;
}

static void *signal_main(void *arg)
{
        struct signal_thread *st = arg;
        bool stopping = false;

        for (;;) {
                int sig;

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
                        pinlet_proxy_shutdown(st->proxy);
                        break;
                case SIGUSR1:
                        if (st->audit) {
                                _cleanup_error_ struct pinlet_error *err = NULL;
                                int r = pinlet_audit_reopen(st->audit, &err);

                                if (r < 0)
                                        log_error("SIGUSR1: reopening the audit log: %s",
                                                  pinlet_error_message(err, r));
                                else
                                        log_info("SIGUSR1: audit log reopened");
                        }
                        break;
                case SIGHUP:
                        log_info("SIGHUP ignored: the configuration is read at start only, "
                                 "restart pinlet to apply changes");
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
               "container runtime, pinning image tags to digests on the way.\n"
               "\n"
               "Options:\n"
               "  -h, --help               show this help\n" PINLET_CONFIG_OPTIONS_HELP);
}

static int serve(const struct pinlet_config *cfg, sigset_t *set)
{
        struct pinlet_proxy_options opts = {
                .listen_path = cfg->listen,
                .socket_mode = cfg->socket_mode,
                .socket_uid = cfg->socket_uid,
                .socket_gid = cfg->socket_gid,
                .runtime_endpoint = cfg->runtime_endpoint,
                .image_endpoint = cfg->image_endpoint,
                .image_prefixes = pinlet_cri_image_prefixes,
                .max_message_size = cfg->max_message_size,
                .shutdown_grace_ms = cfg->shutdown_grace_ms,
                .workers = cfg->workers,
                .queue_limit = cfg->resolver_per_registry,
        };
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct signal_thread st = { .set = *set };
        struct pipeline pl = {};
        struct pinlet_proxy *p = NULL;
        int r;

        r = pipeline_init(&pl, cfg, &err);
        if (r < 0) {
                log_error("cannot start: %s", pinlet_error_message(err, r));
                r = pl.config_error ? PINLET_EXIT_USAGE : PINLET_EXIT_FAILURE;
                pipeline_done(&pl);
                return r;
        }
        opts.userdata = pl.interceptor;
        opts.methods = pl.methods;
        opts.n_methods = pl.n_methods;
        r = pinlet_proxy_new(&opts, &p, &err);
        if (r < 0) {
                log_error("cannot start: %s", pinlet_error_message(err, r));
                pipeline_done(&pl);
                return PINLET_EXIT_FAILURE;
        }
        log_info("listening on %s (mode %04o)", cfg->listen, (unsigned)cfg->socket_mode);
        if (cfg->image_endpoint && cfg->image_endpoint[0] &&
            strcmp(cfg->image_endpoint, cfg->runtime_endpoint) != 0)
                log_info("forwarding to %s, images to %s", cfg->runtime_endpoint,
                         cfg->image_endpoint);
        else
                log_info("forwarding to %s", cfg->runtime_endpoint);

        st.proxy = p;
        st.audit = pl.audit;
        r = pthread_create(&st.thread, NULL, signal_main, &st);
        if (r != 0) {
                log_error("cannot start the signal thread: %s", strerror(r));
                pinlet_proxy_free(p);
                pipeline_done(&pl);
                return PINLET_EXIT_FAILURE;
        }
        sd_notify(0, "READY=1");
        log_info("ready");

        pinlet_proxy_run(p);

        /* Wake the signal thread (the signal stays blocked, sigwait takes it) and join. */
        atomic_store(&st.done, true);
        pthread_kill(st.thread, SIGTERM);
        pthread_join(st.thread, NULL);
        pinlet_proxy_free(p);
        pipeline_done(&pl);
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
        struct pinlet_cli_overrides ov = {};
        struct pinlet_config cfg;
        sigset_t set;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == 'h') {
                        usage();
                        return PINLET_EXIT_OK;
                }
                if (!pinlet_cli_override(&ov, c, optarg))
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

        r = pinlet_cli_load(&ov, &cfg);
        if (r == PINLET_EXIT_OK)
                r = serve(&cfg, &set);
        pinlet_config_free(&cfg);
        return r;
}
