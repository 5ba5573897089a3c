/* SPDX-License-Identifier: Apache-2.0 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lock/lock.h"
#include "registry/credprov.h"
#include "util/log.h"

static const char usage[] =
        "Usage: pinlet [COMMAND] [OPTIONS]\n"
        "\n"
        "pinlet sits between kubelet and the container runtime on the CRI socket and pins\n"
        "image tags to the digests they mean, for the pull and the run alike.\n"
        "\n"
        "Commands:\n"
        "  serve                  run the CRI proxy (the default)\n"
        "  check-config [FILE]    validate a configuration file and exit\n"
        "  ref REF...             parse and normalize image references, one JSON per line\n"
        "                         (exit 1 if any is invalid)\n"
        "  resolve REF...         resolve tags to digests with the daemon's own code\n"
        "  pins [--json]          list the pin store\n"
        "  lock IMAGE...          write a lock file (tags -> digests); also --check FILE...,\n"
        "                         --from-pins\n"
        "\n"
        "Options:\n"
        "  -h, --help             show this help\n"
        "  -V, --version          show the version\n"
        "\n"
        "Run 'pinlet COMMAND --help' for the options of a command.\n";

int pinlet_cli_override(struct pinlet_cli_overrides *ov, int opt, const char *arg)
{
        if (opt == PINLET_OPT_CONFIG) {
                ov->config = arg;
                return 1;
        }
        if (opt > PINLET_OPT_CONFIG && opt < PINLET_OPT_LAST_COMMON) {
                ov->values[opt - PINLET_OPT_CONFIG] = arg;
                return 1;
        }
        return 0;
}

static int replace_string(char **field, const char *value)
{
        char *s = strdup(value);

        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

static int apply_overrides(const struct pinlet_cli_overrides *ov, struct pinlet_config *cfg,
                           struct pinlet_error **err)
{
        const char *v;
        int r = 0;

#define OV(opt) ov->values[(opt)-PINLET_OPT_CONFIG]
        if ((v = OV(PINLET_OPT_LISTEN)))
                r = r ?: replace_string(&cfg->listen, v);
        if ((v = OV(PINLET_OPT_RUNTIME_ENDPOINT)))
                r = r ?: replace_string(&cfg->runtime_endpoint, v);
        if ((v = OV(PINLET_OPT_IMAGE_ENDPOINT)))
                r = r ?: replace_string(&cfg->image_endpoint, v);
        if ((v = OV(PINLET_OPT_STATE_DIR)))
                r = r ?: replace_string(&cfg->state_dir, v);
        if ((v = OV(PINLET_OPT_AUDIT_LOG)))
                r = r ?: replace_string(&cfg->audit_file, v);
        if (r < 0)
                return pinlet_error_set(err, r, "out of memory");
        if ((v = OV(PINLET_OPT_LOG_LEVEL))) {
                enum pinlet_log_level l;
                if (pinlet_log_level_from_string(v, &l) < 0)
                        return pinlet_error_set(err, -EINVAL,
                                                "--log-level: invalid level '%s' (expected "
                                                "error, warn, info or debug)",
                                                v);
                cfg->log_level = (int)l;
        }
        if ((v = OV(PINLET_OPT_LOG_FORMAT))) {
                enum pinlet_log_format f;
                if (pinlet_log_format_from_string(v, &f) < 0)
                        return pinlet_error_set(err, -EINVAL,
                                                "--log-format: invalid format '%s' (expected "
                                                "text or json)",
                                                v);
                cfg->log_format = (int)f;
        }
        if ((v = OV(PINLET_OPT_MODE))) {
                if (pinlet_mode_from_string(v, &cfg->mode) < 0)
                        return pinlet_error_set(err, -EINVAL,
                                                "--mode: invalid mode '%s' (expected enforce, "
                                                "audit or off)",
                                                v);
        }
#undef OV
        return 0;
}

int pinlet_cli_load(const struct pinlet_cli_overrides *ov, struct pinlet_config *cfg)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        const char *path = ov->config ? ov->config : PINLET_DEFAULT_CONFIG;
        int r;

        r = pinlet_config_init(cfg);
        if (r < 0) {
                fprintf(stderr, "pinlet: out of memory\n");
                return PINLET_EXIT_FAILURE;
        }
        r = pinlet_config_load(cfg, path, !ov->config, &err);
        if (r >= 0)
                r = apply_overrides(ov, cfg, &err);
        if (r >= 0)
                r = pinlet_config_validate(cfg, &err);
        if (r < 0) {
                fprintf(stderr, "pinlet: %s\n", pinlet_error_message(err, r));
                return PINLET_EXIT_USAGE;
        }
        pinlet_log_setup((enum pinlet_log_level)cfg->log_level,
                         (enum pinlet_log_format)cfg->log_format);
        return PINLET_EXIT_OK;
}

void pinlet_cli_registry_options_free(struct pinlet_registry_options *o)
{
        free((struct pinlet_registry_host *)o->hosts);
        *o = (struct pinlet_registry_options){ 0 };
}

int pinlet_cli_registry_options(const struct pinlet_config *cfg,
                                struct pinlet_registry_options *ret, struct pinlet_error **err)
{
        struct pinlet_registry_host *hosts = NULL;

        if (cfg->n_registries > 0) {
                hosts = calloc(cfg->n_registries, sizeof(*hosts));
                if (!hosts)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        /* mirror and on_failure are policy, not transport: they stay in the config */
        for (size_t i = 0; i < cfg->n_registries; i++) {
                const struct pinlet_registry_config *rc = &cfg->registries[i];

                hosts[i] = (struct pinlet_registry_host){
                        .host = rc->host,
                        .ca_file = rc->ca_file,
                        .cert_file = rc->cert_file,
                        .key_file = rc->key_file,
                        .insecure = rc->insecure,
                        .skip_verify = rc->skip_verify,
                };
        }
        *ret = (struct pinlet_registry_options){
                .connect_timeout_ms = cfg->connect_timeout_ms,
                .resolve_timeout_ms = cfg->resolve_timeout_ms,
                .docker_config_paths = cfg->docker_config_paths,
                .hosts = hosts,
                .n_hosts = cfg->n_registries,
                .credential_provider_config = cfg->provider_config,
                .credential_provider_bin_dir = cfg->provider_bin_dir,
        };
        return 0;
}

/* The real function: see the TRANSITIONAL macro in cli.h. */
#undef pinlet_registry_new

int pinlet_cli_registry_new(const struct pinlet_config *cfg, struct pinlet_registry **ret,
                            struct pinlet_error **err)
{
        _cleanup_(pinlet_cli_registry_options_free) struct pinlet_registry_options o = { 0 };
        int r;

        r = pinlet_cli_registry_options(cfg, &o, err);
        if (r < 0)
                return r;
        return pinlet_registry_new(&o, ret, err);
}

int pinlet_cli_skip_verify_hosts(const struct pinlet_config *cfg, char ***ret)
{
        char **v = NULL;

        for (size_t i = 0; i < cfg->n_registries; i++)
                if (cfg->registries[i].skip_verify &&
                    pinlet_strv_push(&v, cfg->registries[i].host) < 0) {
                        pinlet_strv_free(v);
                        return -ENOMEM;
                }
        *ret = v;
        return 0;
}

int pinlet_cmd_check_config(int argc, char **argv)
{
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                PINLET_CONFIG_OPTIONS,
                {},
        };
        struct pinlet_cli_overrides ov = {};
        struct pinlet_config cfg;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: pinlet check-config [FILE] [OPTIONS]\n\n"
                               "Validates the configuration (FILE or --config) and the "
                               "overrides, prints the\nresult and exits 0, or 2 on the first "
                               "error, naming the file, line and "
                               "key.\n\n" PINLET_CONFIG_OPTIONS_HELP);
                        return PINLET_EXIT_OK;
                }
                if (!pinlet_cli_override(&ov, c, optarg))
                        return PINLET_EXIT_USAGE;
        }
        if (optind < argc) {
                if (argc - optind > 1 || ov.config) {
                        fprintf(stderr, "pinlet check-config: expected one FILE\n");
                        return PINLET_EXIT_USAGE;
                }
                ov.config = argv[optind];
        }
        r = pinlet_cli_load(&ov, &cfg);
        if (r == PINLET_EXIT_OK && cfg.lock_paths) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                struct pinlet_lock_set *set = NULL;
                int k = pinlet_lock_set_load(cfg.lock_paths, NULL, &set, &err);

                if (k < 0) {
                        fprintf(stderr, "pinlet check-config: lock files: %s\n",
                                pinlet_error_message(err, k));
                        r = PINLET_EXIT_USAGE;
                } else {
                        printf("lock files: ok, %zu images\n", pinlet_lock_set_size(set));
                        pinlet_lock_set_unref(set);
                }
        }
        if (r == PINLET_EXIT_OK && cfg.provider_config) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                _cleanup_(pinlet_credprov_freep) struct pinlet_credprov *cp = NULL;
                const struct pinlet_credprov_options co = {
                        .config_path = cfg.provider_config,
                        .bin_dir = cfg.provider_bin_dir,
                };
                int k = pinlet_credprov_new(&co, &cp, &err);

                if (k < 0) {
                        fprintf(stderr, "pinlet check-config: credential providers: %s\n",
                                pinlet_error_message(err, k));
                        r = PINLET_EXIT_USAGE;
                } else {
                        printf("credential providers: ok\n");
                }
        }
        if (r == PINLET_EXIT_OK)
                printf("%s: ok\n", cfg.path ? cfg.path : "(defaults, no file)");
        pinlet_config_free(&cfg);
        return r;
}

int pinlet_cli_main(int argc, char **argv)
{
        static const struct {
                const char *name;
                int (*run)(int argc, char **argv);
        } commands[] = {
                { "serve", pinlet_cmd_serve }, { "check-config", pinlet_cmd_check_config },
                { "ref", pinlet_cmd_ref },     { "resolve", pinlet_cmd_resolve },
                { "pins", pinlet_cmd_pins },   { "lock", pinlet_cmd_lock },
        };

        if (argc >= 2) {
                const char *a = argv[1];

                if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0) {
                        fputs(usage, stdout);
                        return PINLET_EXIT_OK;
                }
                if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0 ||
                    strcmp(a, "version") == 0) {
                        printf("pinlet %s\n", PINLET_VERSION);
                        return PINLET_EXIT_OK;
                }
                for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                        if (strcmp(a, commands[i].name) == 0)
                                return commands[i].run(argc - 1, argv + 1);
                if (a[0] != '-') {
                        fprintf(stderr, "pinlet: unknown command '%s'\n\n%s", a, usage);
                        return PINLET_EXIT_USAGE;
                }
        }
        /* No command, or options only: `pinlet --config F` runs the daemon. */
        return pinlet_cmd_serve(argc, argv);
}
