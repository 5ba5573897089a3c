/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cri.pb-c.h"

#include "cli/cli.h"
#include "lock/lock.h"
#include "metrics/metrics.h"
#include "proxy/socket.h"
#include "registry/credprov.h"
#include "registry/creds.h"
#include "util/io.h"
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

int pinlet_cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
                      const struct option *longopts)
{
        const char *arg;
        bool needs_arg = false;
        int c;

        /* getopt's own messages start with argv[0], which is the binary's path for `pinlet`
         * alone and the bare command name after pinlet_cli_main() shifted argv. */
        opterr = 0;
        c = getopt_long(argc, argv, shortopts, longopts, NULL);
        if (c != '?')
                return c;
        arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
        /* glibc sets optopt to the option's value when only its argument is missing, and
         * to the unknown character (or 0 for an unknown long option) otherwise. */
        if (optopt != 0) {
                if (optopt < 0x100 && strchr(shortopts, optopt))
                        needs_arg = true;
                for (const struct option *o = longopts; o->name && !needs_arg; o++)
                        needs_arg = o->val == optopt && !o->flag;
        }
        if (needs_arg)
                fprintf(stderr, "pinlet %s: option '%s' needs an argument\n", cmd, arg);
        else if (optopt != 0 && optopt < 0x100 && strncmp(arg, "--", 2) != 0)
                fprintf(stderr, "pinlet %s: unknown option '-%c'\n", cmd, optopt);
        else
                fprintf(stderr, "pinlet %s: unknown option '%s'\n", cmd, arg);
        fprintf(stderr, "Try 'pinlet %s --help'.\n", cmd);
        return '?';
}

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

int pinlet_cli_load_config(const struct pinlet_cli_overrides *ov, struct pinlet_config *cfg,
                           struct pinlet_error **err)
{
        const char *path = ov->config ? ov->config : PINLET_DEFAULT_CONFIG;
        int r;

        r = pinlet_config_init(cfg);
        if (r < 0)
                return pinlet_error_set(err, r, "out of memory");
        r = pinlet_config_load(cfg, path, !ov->config, err);
        if (r >= 0)
                r = apply_overrides(ov, cfg, err);
        if (r >= 0)
                r = pinlet_config_validate(cfg, err);
        return r;
}

int pinlet_cli_load(const struct pinlet_cli_overrides *ov, struct pinlet_config *cfg)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        int r;

        r = pinlet_cli_load_config(ov, cfg, &err);
        if (r == -ENOMEM) {
                fprintf(stderr, "pinlet: out of memory\n");
                return PINLET_EXIT_FAILURE;
        }
        if (r < 0) {
                fprintf(stderr, "pinlet%s%s: %s\n", ov->cmd ? " " : "", ov->cmd ? ov->cmd : "",
                        pinlet_error_message(err, r));
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
                .credential_provider_config = cfg->provider_config,
                .credential_provider_bin_dir = cfg->provider_bin_dir,
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

bool pinlet_cli_runtime_is_crio(const char *runtime_name)
{
        /* CRI-O answers "cri-o" */
        return runtime_name &&
               (strcasecmp(runtime_name, "cri-o") == 0 || strcasecmp(runtime_name, "crio") == 0);
}

void pinlet_cli_hosts_files(const struct pinlet_config *cfg, const char *runtime_name,
                            struct pinlet_cli_hosts_files *ret)
{
        bool containerd = runtime_name && strcasecmp(runtime_name, "containerd") == 0;
        bool crio = pinlet_cli_runtime_is_crio(runtime_name);

        *ret = (struct pinlet_cli_hosts_files){ 0 };
        if (cfg->hosts_dir)
                ret->hosts_dir = *cfg->hosts_dir ? cfg->hosts_dir : NULL;
        else if (containerd && exists(PINLET_DEFAULT_HOSTS_DIR))
                ret->hosts_dir = PINLET_DEFAULT_HOSTS_DIR;
        if (cfg->registries_conf)
                ret->registries_conf = *cfg->registries_conf ? cfg->registries_conf : NULL;
        else if (crio && exists(PINLET_DEFAULT_REGISTRIES_CONF))
                ret->registries_conf = PINLET_DEFAULT_REGISTRIES_CONF;
        if (streq_ptr(ret->registries_conf, PINLET_DEFAULT_REGISTRIES_CONF) && crio)
                ret->short_name_aliases = PINLET_DEFAULT_SHORT_NAME_ALIASES;
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
                        if (!v || (v->runtime_name.len &&
                                   memchr(v->runtime_name.data, 0, v->runtime_name.len)))
                                r = pinlet_error_set(err, PINLET_EPROTO,
                                                     "runtime %s: Version: bad answer", endpoint);
                        else if (!(*ret_name = v->runtime_name.len
                                                       ? strndup((const char *)v->runtime_name.data,
                                                                 v->runtime_name.len)
                                                       : strdup("")))
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

char *pinlet_cli_detect_runtime(const struct pinlet_config *cfg)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        const char *sock = cfg->runtime_endpoint;
        char *name = NULL;

        if (!sock)
                return NULL;
        if (strncmp(sock, "unix://", 7) == 0)
                sock += 7;
        else if (strncmp(sock, "unix:", 5) == 0)
                sock += 5;
        if (sock[0] == '/' && access(sock, F_OK) != 0)
                return NULL;
        (void)pinlet_cli_runtime_name(cfg->runtime_endpoint, 1000, &name, &err);
        return name;
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
        o.short_name_aliases = f.short_name_aliases;
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

/*
 * Preflight: what serve needs from the files and directories the configuration names,
 * checked before anything binds or starts a thread. check-config, serve (and a reload)
 * run this one function, so "check-config says ok" means "serve starts". Every message
 * names the configuration key first, then the path, then the cause.
 */

DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)

/* The last OpenSSL error as text (the queue is cleared), or fallback when there is none. */
static const char *openssl_reason(char *buf, size_t size, const char *fallback)
{
        unsigned long e = ERR_peek_last_error();

        ERR_clear_error();
        if (!e)
                return fallback;
        ERR_error_string_n(e, buf, size);
        return buf;
}

/* Opens path for a TLS file check; fopen's errno names the usual cause (missing, denied). */
static int open_pem(const char *key, const char *path, BIO **ret, struct pinlet_error **err)
{
        BIO *b;

        ERR_clear_error();
        b = BIO_new_file(path, "r");
        if (!b) {
                int e = errno ? errno : EIO;

                ERR_clear_error();
                return pinlet_error_set(err, PINLET_EINVAL, "%s: %s: %s", key, path, strerror(e));
        }
        *ret = b;
        return 0;
}

/* ca_file: curl hands it to OpenSSL as a PEM bundle; it must hold one certificate at
 * least (an empty or DER file makes every TLS handshake fail much later instead). */
static int check_ca_file(const char *key, const char *path, struct pinlet_error **err)
{
        _cleanup_(BIO_freep) BIO *b = NULL;
        _cleanup_(X509_freep) X509 *x = NULL;
        char buf[256];
        int r;

        r = open_pem(key, path, &b, err);
        if (r < 0)
                return r;
        x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!x)
                return pinlet_error_set(err, PINLET_EINVAL, "%s: %s: no PEM certificate (%s)", key,
                                        path, openssl_reason(buf, sizeof(buf), "empty or not PEM"));
        return 0;
}

static int read_cert(const char *key, const char *path, X509 **ret, struct pinlet_error **err)
{
        _cleanup_(BIO_freep) BIO *b = NULL;
        char buf[256];
        X509 *x;
        int r;

        r = open_pem(key, path, &b, err);
        if (r < 0)
                return r;
        x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!x)
                return pinlet_error_set(err, PINLET_EINVAL, "%s: %s: no PEM certificate (%s)", key,
                                        path, openssl_reason(buf, sizeof(buf), "empty or not PEM"));
        *ret = x;
        return 0;
}

/* The key must be unencrypted: the daemon has nobody to ask for a passphrase (a NULL
 * callback with a NULL password makes OpenSSL fail instead of prompting on a tty). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
        return -1;
}

static int read_key(const char *key, const char *path, EVP_PKEY **ret, struct pinlet_error **err)
{
        _cleanup_(BIO_freep) BIO *b = NULL;
        char buf[256];
        EVP_PKEY *k;
        int r;

        r = open_pem(key, path, &b, err);
        if (r < 0)
                return r;
        k = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
        if (!k)
                return pinlet_error_set(
                        err, PINLET_EINVAL, "%s: %s: no unencrypted PEM private key (%s)", key,
                        path, openssl_reason(buf, sizeof(buf), "empty, encrypted or not PEM"));
        *ret = k;
        return 0;
}

static int check_registry_tls(const struct pinlet_registry_config *rc, struct pinlet_error **err)
{
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        _cleanup_free_ char *k_ca = NULL, *k_cert = NULL, *k_key = NULL;
        int r;

        if (asprintf(&k_ca, "registries.%s.ca_file", rc->host) < 0 ||
            asprintf(&k_cert, "registries.%s.cert_file", rc->host) < 0 ||
            asprintf(&k_key, "registries.%s.key_file", rc->host) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        if (rc->ca_file) {
                r = check_ca_file(k_ca, rc->ca_file, err);
                if (r < 0)
                        return r;
        }
        if (rc->cert_file) {
                r = read_cert(k_cert, rc->cert_file, &cert, err);
                if (r < 0)
                        return r;
        }
        if (rc->key_file) {
                r = read_key(k_key, rc->key_file, &pkey, err);
                if (r < 0)
                        return r;
        }
        /* A pair that does not match fails every handshake with an opaque alert. */
        if (cert && pkey && X509_check_private_key(cert, pkey) != 1) {
                ERR_clear_error();
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "%s: %s does not match the certificate in %s (%s)", k_key,
                                        rc->key_file, k_cert, rc->cert_file);
        }
        return 0;
}

/* credentials.docker_config: the same search the registry client does at each pull
 * ("~/" is $HOME, a missing file is skipped), but a file that exists and cannot be read
 * or parsed is an error here: at pull time it would be skipped quietly and the pull
 * would fail as unauthorized, far from the cause. */
static int check_docker_configs(char *const *paths, struct pinlet_error **err)
{
        for (char *const *p = paths; p && *p; p++) {
                _cleanup_free_ char *expanded = NULL, *data = NULL;
                _cleanup_error_ struct pinlet_error *e = NULL;
                struct pinlet_creds creds = {};
                const char *path = *p;
                size_t size = 0;
                int r;

                if (strncmp(path, "~/", 2) == 0) {
                        const char *home = getenv("HOME");

                        if (!home)
                                continue; /* the client skips it the same way */
                        if (asprintf(&expanded, "%s/%s", home, path + 2) < 0)
                                return pinlet_error_set(err, -ENOMEM, "out of memory");
                        path = expanded;
                }
                r = pinlet_io_read_file(path, PINLET_DOCKER_CONFIG_MAX, 0, &data, &size, &e);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return pinlet_error_set(err, PINLET_EINVAL, "credentials.docker_config: %s",
                                                pinlet_error_message(e, r));
                /* Any host: only the parse matters; a match is cleared at once. */
                r = pinlet_creds_from_docker_config(data, size, "pinlet.invalid", &creds, &e);
                pinlet_creds_clear(&creds);
                explicit_bzero(data, size);
                if (r < 0)
                        return pinlet_error_set(err, PINLET_EINVAL,
                                                "credentials.docker_config: %s: %s", path,
                                                pinlet_error_message(e, r));
        }
        return 0;
}

/*
 * A directory serve creates with mkdir -p (state_dir, the audit log's, the socket's): if
 * it exists it must be a directory (and pass pinlet_io_check_dir when check_mode is
 * set, as the pin store and the audit log demand); otherwise its nearest existing parent
 * must be a directory pinlet can write into. Nothing is created: check-config changes
 * nothing on the machine.
 */
static int check_dir_creatable(const char *key, const char *dir, const char *what,
                               mode_t check_mode, struct pinlet_error **err)
{
        _cleanup_free_ char *p = strdup(dir);
        struct stat st;

        if (!p)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        if (stat(dir, &st) == 0) {
                if (!S_ISDIR(st.st_mode))
                        return pinlet_error_set(err, PINLET_EINVAL, "%s: %s is not a directory",
                                                key, dir);
                if (check_mode) {
                        _cleanup_error_ struct pinlet_error *e = NULL;
                        int r = pinlet_io_check_dir(dir, what, check_mode, &e);

                        if (r < 0)
                                return pinlet_error_set(err, PINLET_EINVAL, "%s: %s", key,
                                                        pinlet_error_message(e, r));
                }
                return 0;
        }
        if (errno != ENOENT)
                return pinlet_error_set(err, PINLET_EINVAL, "%s: %s: %s", key, dir,
                                        strerror(errno));
        for (;;) {
                char *slash = strrchr(p, '/');

                if (!slash)
                        return 0; /* relative, no existing parent named: the cwd */
                if (slash == p)
                        slash[1] = '\0';
                else
                        *slash = '\0';
                if (stat(p, &st) == 0)
                        break;
                if (errno != ENOENT)
                        return pinlet_error_set(err, PINLET_EINVAL, "%s: cannot create %s: %s: %s",
                                                key, dir, p, strerror(errno));
        }
        if (!S_ISDIR(st.st_mode))
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "%s: cannot create %s: %s is not a directory", key, dir, p);
        /* access() also reports EROFS for a read-only file system, which root meets too. */
        if (access(p, W_OK | X_OK) < 0)
                return pinlet_error_set(err, PINLET_EINVAL, "%s: cannot create %s in %s: %s", key,
                                        dir, p, strerror(errno));
        return 0;
}

/* The directory part of a file path ("/a/b/c" -> "/a/b", "/c" -> "/", "c" -> NULL). */
static int dir_of(const char *path, char **ret)
{
        const char *slash = strrchr(path, '/');
        char *d;

        if (!slash) {
                *ret = NULL;
                return 0;
        }
        d = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

int pinlet_cli_preflight(const struct pinlet_config *cfg, size_t *ret_lock_images,
                         struct pinlet_error **err)
{
        _cleanup_free_ char *listen_dir = NULL, *audit_dir = NULL;
        size_t lock_images = 0;
        int r;

        for (size_t i = 0; i < cfg->n_registries; i++) {
                r = check_registry_tls(&cfg->registries[i], err);
                if (r < 0)
                        return r;
        }
        r = check_docker_configs(cfg->docker_config_paths, err);
        if (r < 0)
                return r;
        if (cfg->lock_paths) {
                _cleanup_error_ struct pinlet_error *e = NULL;
                struct pinlet_lock_set *set = NULL;

                r = pinlet_lock_set_load(cfg->lock_paths, NULL, &set, &e);
                if (r < 0)
                        return pinlet_error_set(err, PINLET_EINVAL, "lock.paths: %s",
                                                pinlet_error_message(e, r));
                lock_images = pinlet_lock_set_size(set);
                pinlet_lock_set_unref(set);
        }
        if (cfg->provider_config) {
                /* parses the provider file and checks the executables; runs nothing */
                _cleanup_error_ struct pinlet_error *e = NULL;
                _cleanup_(pinlet_credprov_freep) struct pinlet_credprov *cp = NULL;
                const struct pinlet_credprov_options co = {
                        .config_path = cfg->provider_config,
                        .bin_dir = cfg->provider_bin_dir,
                };

                r = pinlet_credprov_new(&co, &cp, &e);
                if (r < 0)
                        return pinlet_error_set(err, PINLET_EINVAL,
                                                "credentials.provider_config: %s",
                                                pinlet_error_message(e, r));
        }
        r = pinlet_metrics_check_listen(cfg->metrics_listen, err);
        if (r < 0)
                return r;
        {
                /* the registry client as serve creates it: mirror URLs, per-host settings */
                _cleanup_(pinlet_registry_freep) struct pinlet_registry *reg = NULL;
                _cleanup_error_ struct pinlet_error *e = NULL;

                r = pinlet_cli_registry_new(cfg, &reg, &e);
                if (r < 0)
                        return pinlet_error_set(err, r == -ENOMEM ? r : PINLET_EINVAL,
                                                "registries: %s", pinlet_error_message(e, r));
        }
        /* The modes are the ones the pin store and the audit log create them with. */
        if (cfg->state_dir) {
                r = check_dir_creatable("state_dir", cfg->state_dir, "state directory", 0700, err);
                if (r < 0)
                        return r;
        }
        if (cfg->audit_file && *cfg->audit_file && strcmp(cfg->audit_file, "-") != 0) {
                if (dir_of(cfg->audit_file, &audit_dir) < 0)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                if (audit_dir) {
                        r = check_dir_creatable("audit.file", audit_dir, "audit log directory",
                                                0750, err);
                        if (r < 0)
                                return r;
                }
        }
        if (cfg->listen) {
                if (dir_of(cfg->listen, &listen_dir) < 0)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                if (listen_dir) {
                        r = check_dir_creatable("listen", listen_dir, NULL, 0, err);
                        if (r < 0)
                                return r;
                }
        }
        if (ret_lock_images)
                *ret_lock_images = lock_images;
        return 0;
}

int pinlet_cmd_check_config(int argc, char **argv)
{
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                PINLET_CONFIG_OPTIONS,
                {},
        };
        struct pinlet_cli_overrides ov = { .cmd = "check-config" };
        struct pinlet_config cfg;
        int c, r;

        optind = 0;
        while ((c = pinlet_cli_getopt("check-config", argc, argv, "h", options)) >= 0) {
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
                        fprintf(stderr, "pinlet check-config: expected one FILE (a positional "
                                        "FILE and --config exclude each other)\n"
                                        "Try 'pinlet check-config --help'.\n");
                        return PINLET_EXIT_USAGE;
                }
                ov.config = argv[optind];
        }
        r = pinlet_cli_load(&ov, &cfg);
        if (r == PINLET_EXIT_OK) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                size_t lock_images = 0;
                int k = pinlet_cli_preflight(&cfg, &lock_images, &err);

                if (k < 0) {
                        fprintf(stderr, "pinlet check-config: %s\n", pinlet_error_message(err, k));
                        r = PINLET_EXIT_USAGE;
                } else if (cfg.lock_paths) {
                        printf("lock files: ok, %zu images\n", lock_images);
                }
        }
        if (r == PINLET_EXIT_OK && cfg.provider_config)
                printf("credential providers: ok\n");
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

        static const struct option global_options[] = { PINLET_CONFIG_OPTIONS, {} };
        int cmd = 0;

        /*
         * Options are accepted before the command too (`pinlet --config F check-config`):
         * find the first word that is not an option or an option's value, and move it
         * to the front. Only the shared configuration options take a separate value
         * before a command; `--` ends the search.
         */
        for (int i = 1; i < argc && !cmd; i++) {
                const char *a = argv[i];

                if (strcmp(a, "--") == 0)
                        break;
                if (a[0] == '-' && a[1]) {
                        for (const struct option *o = global_options; o->name; o++)
                                if (a[1] == '-' && strcmp(a + 2, o->name) == 0 &&
                                    o->has_arg == required_argument)
                                        i++; /* "--config FILE": skip FILE */
                        continue;
                }
                cmd = i;
        }
        if (cmd > 1) {
                char *word = argv[cmd];

                memmove(argv + 2, argv + 1, sizeof(*argv) * (size_t)(cmd - 1));
                argv[1] = word;
        }
        if (argc >= 2 && cmd) {
                const char *a = argv[1];

                if (strcmp(a, "help") == 0) {
                        fputs(usage, stdout);
                        return PINLET_EXIT_OK;
                }
                if (strcmp(a, "version") == 0) {
                        printf("pinlet %s\n", PINLET_VERSION);
                        return PINLET_EXIT_OK;
                }
                for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                        if (strcmp(a, commands[i].name) == 0)
                                return commands[i].run(argc - 1, argv + 1);
                fprintf(stderr, "pinlet: unknown command '%s'\nTry 'pinlet --help'.\n", a);
                return PINLET_EXIT_USAGE;
        }
        /* No command: global --help and --version anywhere among the options. */
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                        fputs(usage, stdout);
                        return PINLET_EXIT_OK;
                }
                if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
                        printf("pinlet %s\n", PINLET_VERSION);
                        return PINLET_EXIT_OK;
                }
        }
        /* No command, or options only: `pinlet --config F` runs the daemon. */
        return pinlet_cmd_serve(argc, argv);
}
