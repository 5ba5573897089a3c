/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Drives src/registry directly for the integration tests, where `pinlet resolve` cannot
 * show enough: request counters (token reuse, redirect hops), several threads at once,
 * an explicit deadline.
 *
 * Usage: registry_probe --config FILE [--threads N] [--repeat K [--pause-ms P]] [--deadline-ms D]
 *          [--server-address S] [--username U --password P] [--auth B64]
 *          [--identity-token T] [--registry-token T] REF
 * Each of N threads resolves REF K times in sequence (P ms apart) with one shared client.
 * Prints
 *   ok DIGEST MEDIA_TYPE SIZE                      (once, if every resolution agreed)
 *   error CLASS MESSAGE                            (each failure)
 *   stats requests=R manifest=M token=T resolutions=X elapsed_ms=E
 * Exit: 0 all resolved to one digest; else 3 not found, 4 unauthorized, 5 unavailable,
 * 6 protocol/TLS, 7 timeout, 1 anything else (the first failure decides).
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "config/config.h"
#include "ref/ref.h"
#include "registry/registry.h"

static struct pinlet_registry *reg;
static struct pinlet_ref *ref;
static struct pinlet_registry_auth auth;
static bool use_auth;
static int64_t deadline_rel_ms = -1;
static int repeat = 1;
static int pause_ms;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *first_digest, *first_mt;
static uint64_t first_size;
static int first_error, inconsistent;

static int exit_for(int code)
{
        switch (code) {
        case PINLET_ENOTFOUND:
                return 3;
        case PINLET_EUNAUTH:
                return 4;
        case PINLET_EUNAVAIL:
                return 5;
        case PINLET_EPROTO:
        case PINLET_ETLS:
                return 6;
        case PINLET_ETIMEOUT:
                return 7;
        default:
                return 1;
        }
}

static void *worker(void *arg)
{
        for (int i = 0; i < repeat; i++) {
                struct pinlet_error *err = NULL;
                struct timespec ts = { pause_ms / 1000, (long)(pause_ms % 1000) * 1000000 };

                if (i > 0 && pause_ms > 0)
                        nanosleep(&ts, NULL);
                struct pinlet_resolution res = { 0 };
                int64_t deadline = deadline_rel_ms >= 0 ? pinlet_now_ms() + deadline_rel_ms : 0;
                int r = pinlet_registry_resolve(reg, ref, use_auth ? &auth : NULL, deadline, &res,
                                                &err);

                pthread_mutex_lock(&lock);
                if (r < 0) {
                        printf("error %s %s\n", pinlet_error_class(r),
                               pinlet_error_message(err, r));
                        if (!first_error)
                                first_error = exit_for(r);
                } else if (!first_digest) {
                        first_digest = strdup(res.digest);
                        first_mt = strdup(res.media_type ? res.media_type : "-");
                        first_size = res.size;
                } else if (strcmp(first_digest, res.digest) != 0) {
                        printf("error inconsistent %s != %s\n", res.digest, first_digest);
                        inconsistent = 1;
                }
                pthread_mutex_unlock(&lock);
                pinlet_resolution_done(&res);
                pinlet_error_free(err);
        }
        return NULL;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "threads", required_argument, NULL, 't' },
                { "repeat", required_argument, NULL, 'k' },
                { "deadline-ms", required_argument, NULL, 'd' },
                { "pause-ms", required_argument, NULL, 'w' },
                { "server-address", required_argument, NULL, 's' },
                { "username", required_argument, NULL, 'u' },
                { "password", required_argument, NULL, 'p' },
                { "auth", required_argument, NULL, 'a' },
                { "identity-token", required_argument, NULL, 'i' },
                { "registry-token", required_argument, NULL, 'r' },
                {},
        };
        struct pinlet_config cfg;
        struct pinlet_error *err = NULL;
        struct pinlet_registry_stats st;
        const char *config = NULL;
        int threads = 1, c, r;
        pthread_t tid[64];
        int64_t t0;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 't':
                        threads = atoi(optarg);
                        break;
                case 'k':
                        repeat = atoi(optarg);
                        break;
                case 'd':
                        deadline_rel_ms = atoll(optarg);
                        break;
                case 'w':
                        pause_ms = atoi(optarg);
                        break;
                case 's':
                        auth.server_address = optarg;
                        break;
                case 'u':
                        auth.username = optarg, use_auth = true;
                        break;
                case 'p':
                        auth.password = optarg, use_auth = true;
                        break;
                case 'a':
                        auth.auth = optarg, use_auth = true;
                        break;
                case 'i':
                        auth.identity_token = optarg, use_auth = true;
                        break;
                case 'r':
                        auth.registry_token = optarg, use_auth = true;
                        break;
                default:
                        return 2;
                }
        }
        if (!config || optind + 1 != argc || threads < 1 || threads > 64 || repeat < 1) {
                fprintf(stderr, "usage: registry_probe --config FILE [options] REF\n");
                return 2;
        }
        if (pinlet_config_init(&cfg) < 0 || pinlet_config_load(&cfg, config, false, &err) < 0 ||
            pinlet_cli_registry_new(&cfg, &reg, &err) < 0 ||
            pinlet_ref_parse(argv[optind], &ref, &err) < 0) {
                fprintf(stderr, "registry_probe: %s\n", pinlet_error_message(err, -EINVAL));
                return 2;
        }
        t0 = pinlet_now_ms();
        for (int i = 0; i < threads; i++)
                pthread_create(&tid[i], NULL, worker, NULL);
        for (int i = 0; i < threads; i++)
                pthread_join(tid[i], NULL);
        if (first_digest && !first_error && !inconsistent)
                printf("ok %s %s %llu\n", first_digest, first_mt, (unsigned long long)first_size);
        pinlet_registry_get_stats(reg, &st);
        printf("stats requests=%llu manifest=%llu token=%llu resolutions=%llu elapsed_ms=%lld\n",
               (unsigned long long)st.requests, (unsigned long long)st.manifest_requests,
               (unsigned long long)st.token_requests, (unsigned long long)st.resolutions,
               (long long)(pinlet_now_ms() - t0));
        r = inconsistent ? 1 : first_error;
        pinlet_registry_free(reg);
        pinlet_ref_free(ref);
        pinlet_config_free(&cfg);
        free(first_digest);
        free(first_mt);
        return r;
}
