/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Command line: `pinlet [serve] | check-config | ref | resolve | pins | --version | --help`.
 * Commands return a process exit code; only main() exits.
 *
 * Exit codes shared by all commands:
 *   0 success, 1 runtime failure, 2 usage or configuration error;
 *   resolve also: 3 not found, 4 unauthorized, 5 registry unavailable (or timeout),
 *   6 protocol or TLS failure.
 */
#pragma once

#include <getopt.h>

#include "config/config.h"
#include "registry/registry.h"

#define PINLET_EXIT_OK          0
#define PINLET_EXIT_FAILURE     1
#define PINLET_EXIT_USAGE       2
#define PINLET_EXIT_NOT_FOUND   3
#define PINLET_EXIT_UNAUTH      4
#define PINLET_EXIT_UNAVAILABLE 5
#define PINLET_EXIT_PROTOCOL    6

int pinlet_cli_main(int argc, char **argv);

/* One file per command. argv[0] is the command name; getopt state is reset. */
int pinlet_cmd_serve(int argc, char **argv);        /* cli/serve.c */
int pinlet_cmd_check_config(int argc, char **argv); /* cli/cli.c */
int pinlet_cmd_ref(int argc, char **argv);          /* cli/ref_cmd.c */
int pinlet_cmd_resolve(int argc, char **argv);      /* cli/resolve_cmd.c */
int pinlet_cmd_pins(int argc, char **argv);         /* cli/pins_cmd.c */
int pinlet_cmd_lock(int argc, char **argv);         /* cli/lock_cmd.c */

/*
 * Resolving for the commands (cli/resolve_cmd.c), shared by resolve and lock so both
 * answer with the daemon's registry client, configuration and credentials.
 */
struct pinlet_registry;
struct pinlet_registry_auth;
struct pinlet_ref;
/* ref's tag to a digest (caller frees *ret_digest); timeout_ms 0: resolver.timeout only. */
int pinlet_cli_resolve_digest(struct pinlet_registry *reg, const struct pinlet_ref *ref,
                              const struct pinlet_registry_auth *auth, uint64_t timeout_ms,
                              char **ret_digest, struct pinlet_error **err);
/* --username with --password-stdin (the password read into *ret_password, which the
 * caller erases and frees) into *ret_auth; PINLET_EXIT_USAGE with a message for cmd. */
int pinlet_cli_auth_flags(const char *cmd, const char *username, bool password_stdin,
                          char **ret_password, struct pinlet_registry_auth *ret_auth);
/* The exit code (PINLET_EXIT_*) for an error class. */
int pinlet_cli_exit_code(int code);
/* The first line of stdin without its line ending (caller erases and frees). */
int pinlet_cli_read_password(char **ret);

/*
 * Options every command that reads the configuration accepts. Put PINLET_CONFIG_OPTIONS
 * in a getopt_long() table and hand unknown option values to pinlet_cli_override();
 * then pinlet_cli_load() reads the file and applies the overrides on top.
 */
enum {
        PINLET_OPT_CONFIG = 0x100,
        PINLET_OPT_LISTEN,
        PINLET_OPT_RUNTIME_ENDPOINT,
        PINLET_OPT_IMAGE_ENDPOINT,
        PINLET_OPT_LOG_LEVEL,
        PINLET_OPT_LOG_FORMAT,
        PINLET_OPT_MODE,
        PINLET_OPT_STATE_DIR,
        PINLET_OPT_AUDIT_LOG,
        PINLET_OPT_LAST_COMMON,
};

#define PINLET_CONFIG_OPTIONS                                                                 \
        { "config", required_argument, NULL, PINLET_OPT_CONFIG },                             \
                { "listen", required_argument, NULL, PINLET_OPT_LISTEN },                     \
                { "runtime-endpoint", required_argument, NULL, PINLET_OPT_RUNTIME_ENDPOINT }, \
                { "image-endpoint", required_argument, NULL, PINLET_OPT_IMAGE_ENDPOINT },     \
                { "log-level", required_argument, NULL, PINLET_OPT_LOG_LEVEL },               \
                { "log-format", required_argument, NULL, PINLET_OPT_LOG_FORMAT },             \
                { "mode", required_argument, NULL, PINLET_OPT_MODE },                         \
                { "state-dir", required_argument, NULL, PINLET_OPT_STATE_DIR },               \
        {                                                                                     \
                "audit-log", required_argument, NULL, PINLET_OPT_AUDIT_LOG                    \
        }

/* --help text of the common options, in pieces: each command lists only those that act
 * for it (serve and check-config all of them). */
#define PINLET_HELP_CONFIG \
        "  --config FILE            configuration file (default " PINLET_DEFAULT_CONFIG ")\n"
#define PINLET_HELP_RUNTIME                                                            \
        "  --runtime-endpoint URI   backend CRI runtime endpoint (runtime_endpoint;\n" \
        "                           default " PINLET_DEFAULT_RUNTIME ")\n"
#define PINLET_HELP_PROXY                                                             \
        "  --listen PATH            unix socket to serve CRI on (listen; default\n"   \
        "                           " PINLET_DEFAULT_LISTEN ")\n" PINLET_HELP_RUNTIME \
        "  --image-endpoint URI     backend CRI image endpoint (image_endpoint;\n"    \
        "                           default: the runtime endpoint)\n"
#define PINLET_HELP_LOG                                                                     \
        "  --log-level LEVEL        error, warn, info or debug (log.level; default info)\n" \
        "  --log-format FORMAT      text or json (log.format; default text)\n"
#define PINLET_HELP_MODE \
        "  --mode MODE              enforce, audit or off (mode; default enforce)\n"
#define PINLET_HELP_STATE_DIR                                                  \
        "  --state-dir DIR          pin store directory (state_dir; default\n" \
        "                           " PINLET_DEFAULT_STATE_DIR ")\n"
#define PINLET_HELP_AUDIT_LOG                                                            \
        "  --audit-log FILE|-       audit log file, - for stderr (audit.file; default\n" \
        "                           " PINLET_DEFAULT_AUDIT_LOG ")\n"
#define PINLET_CONFIG_OPTIONS_HELP                                            \
        PINLET_HELP_CONFIG PINLET_HELP_PROXY PINLET_HELP_LOG PINLET_HELP_MODE \
                PINLET_HELP_STATE_DIR PINLET_HELP_AUDIT_LOG

struct pinlet_cli_overrides {
        const char
                *cmd; /* "check-config": messages start "pinlet check-config:"; NULL: "pinlet:" */
        const char *config;
        const char *values[PINLET_OPT_LAST_COMMON - PINLET_OPT_CONFIG]; /* by option - base */
};

/*
 * getopt_long() for command cmd with pinlet's messages instead of getopt's (which start
 * with argv[0]): "pinlet CMD: unknown option '--x'" or "pinlet CMD: option '--config'
 * needs an argument", then "Try 'pinlet CMD --help'.", on stderr. Returns what
 * getopt_long() returns; '?' after such a message (exit PINLET_EXIT_USAGE then).
 */
int pinlet_cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
                      const struct option *longopts);

/* Records a common option; returns 1 if opt was one, 0 otherwise. */
int pinlet_cli_override(struct pinlet_cli_overrides *ov, int opt, const char *arg);

/* The configuration the overrides name (file, then flags, then validation), for callers
 * that report errors themselves (a reload). cfg is initialised either way. */
int pinlet_cli_load_config(const struct pinlet_cli_overrides *ov, struct pinlet_config *cfg,
                           struct pinlet_error **err);

/*
 * Reads the configuration (the --config file, which must exist, or the default path, which
 * may be missing), applies the overrides, validates, and sets up logging. On error prints
 * the message to stderr and returns PINLET_EXIT_USAGE; cfg is initialised either way and
 * must be freed by the caller.
 */
int pinlet_cli_load(const struct pinlet_cli_overrides *ov, struct pinlet_config *cfg);

/*
 * Every check serve runs on what the configuration names before it binds, so that
 * check-config (and a reload) refuse what serve would refuse:
 *   registries.HOST.ca_file    readable, at least one PEM certificate
 *   registries.HOST.cert_file  readable PEM certificate; key_file an unencrypted PEM key
 *                              that matches it
 *   credentials.docker_config  each file that exists is readable and parses
 *   lock.paths                 the lock files load (as pinlet_lock_set_load)
 *   state_dir, the audit.file directory, the listen socket's directory: a directory
 *                              (state_dir and the audit directory as pinlet_io_check_dir
 *                              demands), or creatable under their nearest existing parent
 * Creates and changes nothing. Returns 0 (*ret_lock_images, when not NULL, is the number
 * of images the lock files pin) or PINLET_EINVAL with *err naming the key and the path
 * ("registries.r.example.ca_file: /etc/pinlet/ca.pem: No such file or directory"), or
 * -ENOMEM. Any failure is a configuration error: exit PINLET_EXIT_USAGE.
 */
int pinlet_cli_preflight(const struct pinlet_config *cfg, size_t *ret_lock_images,
                         struct pinlet_error **err);

/*
 * The registry client's options from the configuration: timeouts, the node's Docker
 * config files, and one host entry per `registries:` key (its TLS files, insecure,
 * skip_verify). *ret borrows cfg's strings, so it must not outlive cfg; free it with
 * pinlet_cli_registry_options_free(). Returns 0 or -ENOMEM (*err set).
 */
int pinlet_cli_registry_options(const struct pinlet_config *cfg,
                                struct pinlet_registry_options *ret, struct pinlet_error **err);
/* Frees what pinlet_cli_registry_options() allocated; accepts a zeroed struct. */
void pinlet_cli_registry_options_free(struct pinlet_registry_options *o);

/* pinlet_registry_new() with the options built from cfg (the client copies them: cfg
 * may be freed first). Errors as pinlet_registry_new(). */
int pinlet_cli_registry_new(const struct pinlet_config *cfg, struct pinlet_registry **ret,
                            struct pinlet_error **err);

/*
 * Which registry configuration files apply (issue 9, "Which file applies"): a path set in
 * cfg applies whatever the runtime ("" turns it off); otherwise the runtime's own default,
 * when it exists: PINLET_DEFAULT_HOSTS_DIR in front of containerd, and
 * PINLET_DEFAULT_REGISTRIES_CONF in front of CRI-O (a node often has both: Debian's skopeo
 * and podman install registries.conf). runtime_name: VersionResponse.runtime_name, NULL
 * when unknown (then only explicit paths apply). Borrowed strings (cfg's or static); NULL
 * when the file does not apply.
 */
struct pinlet_cli_hosts_files {
        const char *hosts_dir;
        const char *registries_conf;
        /* PINLET_DEFAULT_SHORT_NAME_ALIASES with the default registries_conf in front of
         * CRI-O (containers reads it as root), else NULL */
        const char *short_name_aliases;
};
void pinlet_cli_hosts_files(const struct pinlet_config *cfg, const char *runtime_name,
                            struct pinlet_cli_hosts_files *ret);

/* Whether runtime_name (VersionResponse.runtime_name, NULL when unknown) is CRI-O: then
 * short names are qualified from registries.conf (intercept.h, "Short names"). */
bool pinlet_cli_runtime_is_crio(const char *runtime_name);

/*
 * Asks the runtime at endpoint (cfg->runtime_endpoint syntax) for its name with one
 * RuntimeService/Version call, waiting for it up to timeout_ms. *ret_name: malloc'ed
 * ("containerd", "cri-o", ...). Errors: PINLET_EUNAVAIL (no answer in time, or a gRPC
 * status, named in the message), PINLET_EPROTO (an answer that does not decode).
 */
int pinlet_cli_runtime_name(const char *endpoint, uint64_t timeout_ms, char **ret_name,
                            struct pinlet_error **err);

/* The runtime's name for the CLI commands that resolve as the daemon does (resolve,
 * lock): asks cfg->runtime_endpoint with a short wait (1 s), and only when its socket
 * exists, so a command run where no runtime is never hangs. NULL when it does not answer
 * (then only explicit paths apply, as for the daemon). */
char *pinlet_cli_detect_runtime(const struct pinlet_config *cfg);

/* pinlet_cli_registry_new() with the hosts files that apply in front of runtime_name
 * (pinlet_cli_hosts_files()). */
int pinlet_cli_registry_new_for(const struct pinlet_config *cfg, const char *runtime_name,
                                struct pinlet_registry **ret, struct pinlet_error **err);

/* The registries cfg marks skip_verify (a NULL-terminated strv for pinlet_strv_free(),
 * NULL when there are none), so the daemon can warn about them loudly at start. Returns
 * 0 or -ENOMEM. */
int pinlet_cli_skip_verify_hosts(const struct pinlet_config *cfg, char ***ret);
