/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `pinlet serve` (also `pinlet` with no command): the CRI proxy daemon.
 *
 * Signals: SIGTERM, SIGINT, SIGUSR1 and SIGHUP are blocked in every thread before gRPC
 * starts its own threads, and one thread takes them with sigwait(): no async-signal-safety
 * puzzles, and gRPC threads never see them.
 *   SIGTERM, SIGINT  graceful shutdown (streams end at once, unary calls get the grace)
 *   SIGUSR1          runs the on_sigusr1 hooks (reopen the audit log after rotation)
 *   SIGHUP           ignored with a notice (configuration is read at start only)
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "cli/cli.h"
#include "cli/cri_methods.h"
#include "proxy/proxy.h"
#include "util/log.h"

/* Hooks run on SIGUSR1, in order, on the signal thread (they may block briefly). The list
 * ends with a NULL fn. Empty for now: the audit log's reopen function goes here, e.g.
 * { pinlet_audit_reopen_hook, &audit }. */
struct signal_hook {
        void (*fn)(void *userdata);
        void *userdata;
};
static const struct signal_hook on_sigusr1[] = {
        { NULL, NULL },
};

struct signal_thread {
        pthread_t thread;
        sigset_t set;
        struct pinlet_proxy *proxy;
        atomic_bool done; /* set by the main thread after pinlet_proxy_run() returned */
};

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
                        log_info("SIGUSR1: reopening log files");
                        for (const struct signal_hook *h = on_sigusr1; h->fn; h++)
                                h->fn(h->userdata);
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
                .userdata = NULL,
        };
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct signal_thread st = { .set = *set };
        struct pinlet_proxy *p = NULL;
        int r;

        opts.methods = pinlet_cri_methods(&opts.n_methods);
        r = pinlet_proxy_new(&opts, &p, &err);
        if (r < 0) {
                log_error("cannot start: %s", pinlet_error_message(err, r));
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
        r = pthread_create(&st.thread, NULL, signal_main, &st);
        if (r != 0) {
                log_error("cannot start the signal thread: %s", strerror(r));
                pinlet_proxy_free(p);
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
