/* SPDX-License-Identifier: Apache-2.0 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "cri.pb-c.h"

#include "cli/cli.h"
#include "lock/lock.h"
#include "proxy/socket.h"
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
        /* on_failure is policy, not transport: it stays in the config */
        for (size_t i = 0; i < cfg->n_registries; i++) {
                const struct pinlet_registry_config *rc = &cfg->registries[i];

                hosts[i] = (struct pinlet_registry_host){
                        .host = rc->host,
                        .ca_file = rc->ca_file,
                        .cert_file = rc->cert_file,
                        .key_file = rc->key_file,
                        .insecure = rc->insecure,
                        .skip_verify = rc->skip_verify,
                        .mirrors = rc->mirrors,
                };
        }
        *ret = (struct pinlet_registry_options){
                .connect_timeout_ms = cfg->connect_timeout_ms,
                .resolve_timeout_ms = cfg->resolve_timeout_ms,
                .docker_config_paths = cfg->docker_config_paths,
                .hosts = hosts,
                .n_hosts = cfg->n_registries,
                /* explicit paths only: the runtime's defaults need to know the runtime
                 * (pinlet_cli_registry_new_for) */
                .hosts_dir = cfg->hosts_dir && *cfg->hosts_dir ? cfg->hosts_dir : NULL,
                .registries_conf =
                        cfg->registries_conf && *cfg->registries_conf ? cfg->registries_conf : NULL,
        };
        return 0;
}

static bool exists(const char *path)
{
        struct stat st;

        return stat(path, &st) == 0;
}

void pinlet_cli_hosts_files(const struct pinlet_config *cfg, const char *runtime_name,
                            struct pinlet_cli_hosts_files *ret)
{
        bool containerd = runtime_name && strcasecmp(runtime_name, "containerd") == 0;
        /* CRI-O answers "cri-o" */
        bool crio = runtime_name && (strcasecmp(runtime_name, "cri-o") == 0 ||
                                     strcasecmp(runtime_name, "crio") == 0);

        *ret = (struct pinlet_cli_hosts_files){ 0 };
        if (cfg->hosts_dir)
                ret->hosts_dir = *cfg->hosts_dir ? cfg->hosts_dir : NULL;
        else if (containerd && exists(PINLET_DEFAULT_HOSTS_DIR))
                ret->hosts_dir = PINLET_DEFAULT_HOSTS_DIR;
        if (cfg->registries_conf)
                ret->registries_conf = *cfg->registries_conf ? cfg->registries_conf : NULL;
        else if (crio && exists(PINLET_DEFAULT_REGISTRIES_CONF))
                ret->registries_conf = PINLET_DEFAULT_REGISTRIES_CONF;
}

#define RUNTIME_VERSION_METHOD "/runtime.v1.RuntimeService/Version"
#define RUNTIME_VERSION_MAX    (64 * 1024) /* bytes of a VersionResponse we read */

int pinlet_cli_runtime_name(const char *endpoint, uint64_t timeout_ms, char **ret_name,
                            struct pinlet_error **err)
{
        _cleanup_free_ char *target = NULL;
        grpc_channel_credentials *creds;
        grpc_channel *ch;
        grpc_completion_queue *cq;
        grpc_call *call;
        grpc_metadata_array initial_md, trailing_md;
        grpc_byte_buffer *send = NULL, *recv = NULL;
        grpc_slice details = grpc_empty_slice(), req;
        grpc_status_code status = GRPC_STATUS_UNKNOWN;
        grpc_op ops[6] = { 0 };
        gpr_timespec deadline =
                gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                             gpr_time_from_millis((int64_t)timeout_ms, GPR_TIMESPAN));
        /* an empty VersionRequest ("version" is the kubelet's API version, optional) */
        uint8_t empty = 0;
        grpc_event ev;
        int r = 0;

        /* the same target the proxy dials */
        r = pinlet_proxy_endpoint_target(endpoint, &target);
        if (r < 0)
                return pinlet_error_set(err, r == -ENOMEM ? r : PINLET_EINVAL,
                                        "invalid runtime endpoint '%s'", strempty(endpoint));
        grpc_init();
        creds = grpc_insecure_credentials_create();
        ch = grpc_channel_create(target, creds, NULL);
        grpc_channel_credentials_release(creds);
        cq = grpc_completion_queue_create_for_pluck(NULL);
        call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                        grpc_slice_from_static_string(RUNTIME_VERSION_METHOD), NULL,
                                        deadline, NULL);
        grpc_metadata_array_init(&initial_md);
        grpc_metadata_array_init(&trailing_md);
        req = grpc_slice_from_copied_buffer((const char *)&empty, 0);
        send = grpc_raw_byte_buffer_create(&req, 1);
        grpc_slice_unref(req);

        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        /* wait for the runtime's socket to come up rather than failing at once: pinlet
         * may start before the runtime does */
        ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = send;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &recv;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
        ops[5].data.recv_status_on_client.status = &status;
        ops[5].data.recv_status_on_client.status_details = &details;

        if (!call || grpc_call_start_batch(call, ops, 6, (void *)1, NULL) != GRPC_CALL_OK) {
                r = pinlet_error_set(err, PINLET_EUNAVAIL, "runtime %s: cannot start a call",
                                     endpoint);
        } else {
                /* the call's deadline bounds this wait; the extra second is slack */
                ev = grpc_completion_queue_pluck(
                        cq, (void *)1,
                        gpr_time_add(deadline, gpr_time_from_seconds(1, GPR_TIMESPAN)), NULL);
                if (ev.type != GRPC_OP_COMPLETE || !ev.success)
                        r = pinlet_error_set(err, PINLET_EUNAVAIL, "runtime %s: no answer",
                                             endpoint);
        }
        if (r >= 0 && status != GRPC_STATUS_OK) {
                char *d = grpc_slice_to_c_string(details);

                r = pinlet_error_set(err, PINLET_EUNAVAIL,
                                     "runtime %s: Version: gRPC status %d%s%s", endpoint,
                                     (int)status, d && *d ? ": " : "", d ? d : "");
                gpr_free(d);
        }
        if (r >= 0) {
                grpc_byte_buffer_reader rd;
                grpc_slice all;
                Pinlet__Cri__VersionResponse *v = NULL;

                if (!recv || grpc_byte_buffer_length(recv) > RUNTIME_VERSION_MAX ||
                    !grpc_byte_buffer_reader_init(&rd, recv)) {
                        r = pinlet_error_set(err, PINLET_EPROTO,
                                             "runtime %s: Version: no or an oversized answer",
                                             endpoint);
                } else {
                        all = grpc_byte_buffer_reader_readall(&rd);
                        grpc_byte_buffer_reader_destroy(&rd);
                        v = pinlet__cri__version_response__unpack(NULL, GRPC_SLICE_LENGTH(all),
                                                                  GRPC_SLICE_START_PTR(all));
                        grpc_slice_unref(all);
                        /* a name from the wire: bytes, and no NUL inside */
                        if (!v || memchr(v->runtime_name.data, 0, v->runtime_name.len))
                                r = pinlet_error_set(err, PINLET_EPROTO,
                                                     "runtime %s: Version: bad answer", endpoint);
                        else if (!(*ret_name = strndup((const char *)v->runtime_name.data,
                                                       v->runtime_name.len)))
                                r = pinlet_error_set(err, -ENOMEM, "out of memory");
                        if (v)
                                pinlet__cri__version_response__free_unpacked(v, NULL);
                }
        }
        if (recv)
                grpc_byte_buffer_destroy(recv);
        grpc_byte_buffer_destroy(send);
        grpc_slice_unref(details);
        grpc_metadata_array_destroy(&initial_md);
        grpc_metadata_array_destroy(&trailing_md);
        if (call)
                grpc_call_unref(call);
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                       .type != GRPC_QUEUE_SHUTDOWN)
                ;
        grpc_completion_queue_destroy(cq);
        grpc_channel_destroy(ch);
        grpc_shutdown();
        return r;
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

int pinlet_cli_registry_new_for(const struct pinlet_config *cfg, const char *runtime_name,
                                struct pinlet_registry **ret, struct pinlet_error **err)
{
        _cleanup_(pinlet_cli_registry_options_free) struct pinlet_registry_options o = { 0 };
        struct pinlet_cli_hosts_files f;
        int r;

        r = pinlet_cli_registry_options(cfg, &o, err);
        if (r < 0)
                return r;
        pinlet_cli_hosts_files(cfg, runtime_name, &f);
        o.hosts_dir = f.hosts_dir;
        o.registries_conf = f.registries_conf;
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
