/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `pinlet resolve REF...`: resolves tags to digests with the daemon's registry client and
 * configuration (TLS, insecure registries, node credentials), one line per reference:
 *   REF<TAB>name@digest
 * Errors go to stderr, naming the image, the registry and the cause. The exit code is
 * that of the first failure (see cli.h); the other references are still resolved.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "intercept/intercept.h"
#include "ref/ref.h"
#include "registry/registry.h"

enum {
        OPT_USERNAME = PINLET_OPT_LAST_COMMON + 1,
        OPT_PASSWORD_STDIN,
        OPT_TIMEOUT,
        OPT_ENDPOINT,
        OPT_RUNTIME,
};

static const char usage[] =
        "Usage: pinlet resolve [OPTIONS] REF...\n"
        "\n"
        "Resolves each image reference's tag to the digest it points at now, with the\n"
        "daemon's own registry client and configuration, and prints REF<TAB>name@digest.\n"
        "A reference that already holds a digest is printed pinned as it is.\n"
        "\n"
        "Credentials: --username with --password-stdin (used for every REF), else the\n"
        "node's Docker config files from the configuration, else anonymous.\n"
        "\n"
        "Options:\n"
        "  -h, --help               show this help\n"
        "  --username USER          registry user name\n"
        "  --password-stdin         read the password from the first line of stdin\n"
        "  --timeout DURATION       deadline per reference (default: "
        "resolver.timeout)\n"
        "  --endpoint               add a third column: the endpoint that answered\n"
        "                           (a mirror, or the registry itself)\n"
        "  --runtime NAME           apply the registry files of this runtime (containerd,\n"
        "                           cri-o) as the daemon does, short names included;\n"
        "                           default: ask the runtime at runtime_endpoint, none\n"
        "                           if it does not answer\n" PINLET_HELP_CONFIG PINLET_HELP_RUNTIME
                PINLET_HELP_LOG "\n"
        "In front of CRI-O a short name is qualified from registries.conf; one that CRI-O\n"
        "would not resolve to one registry is an error (exit 2) saying why.\n"
        "\n"
        "Exit codes: 0 all resolved, 1 failure, 2 usage or configuration error,\n"
        "3 not found, 4 unauthorized, 5 registry unavailable or timeout,\n"
        "6 protocol or TLS error (the first failure decides).\n";

int pinlet_cli_exit_code(int code)
{
        switch (code) {
        case PINLET_ENOTFOUND:
                return PINLET_EXIT_NOT_FOUND;
        case PINLET_EUNAUTH:
                return PINLET_EXIT_UNAUTH;
        case PINLET_EUNAVAIL:
        case PINLET_ETIMEOUT:
                return PINLET_EXIT_UNAVAILABLE;
        case PINLET_EPROTO:
        case PINLET_ETLS:
                return PINLET_EXIT_PROTOCOL;
        case PINLET_EINVAL:
                return PINLET_EXIT_USAGE;
        default:
                return PINLET_EXIT_FAILURE;
        }
}

int pinlet_cli_read_password(char **ret)
{
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;

        n = getline(&line, &cap, stdin);
        if (n < 0) {
                free(line);
                return -EINVAL;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = 0;
        *ret = line;
        return 0;
}

int pinlet_cli_auth_flags(const char *cmd, const char *username, bool password_stdin,
                          char **ret_password, struct pinlet_registry_auth *ret_auth)
{
        if (!!username != password_stdin) {
                fprintf(stderr, "pinlet %s: --username and --password-stdin go together\n", cmd);
                return PINLET_EXIT_USAGE;
        }
        if (password_stdin && pinlet_cli_read_password(ret_password) < 0) {
                fprintf(stderr, "pinlet %s: no password on stdin\n", cmd);
                return PINLET_EXIT_USAGE;
        }
        ret_auth->username = username;
        ret_auth->password = password_stdin ? *ret_password : NULL;
        return PINLET_EXIT_OK;
}

int pinlet_cli_resolve_digest(struct pinlet_registry *reg, const struct pinlet_ref *ref,
                              const struct pinlet_registry_auth *auth, uint64_t timeout_ms,
                              char **ret_digest, struct pinlet_error **err)
{
        struct pinlet_resolution res = { 0 };
        int64_t deadline = 0;
        int r;

        if (timeout_ms > 0)
                deadline = pinlet_now_ms() + (int64_t)timeout_ms;
        r = pinlet_registry_resolve(reg, ref, auth, deadline, &res, err);
        if (r < 0)
                return r;
        *ret_digest = TAKE_PTR(res.digest);
        pinlet_resolution_done(&res);
        return 0;
}

/* short_names: CRI-O's registries.conf qualifies short names (NULL: docker.io, as
 * containerd), exactly as the daemon in front of that runtime would. */
static int resolve_one(struct pinlet_registry *reg, struct pinlet_hosts *short_names,
                       const char *input, const struct pinlet_registry_auth *auth,
                       uint64_t timeout_ms, bool show_endpoint)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_ref_ struct pinlet_ref *ref = NULL;
        _cleanup_free_ char *pinned = NULL, *digest = NULL, *endpoint = NULL, *reason = NULL;
        struct pinlet_resolution res = { 0 };
        int r;

        r = pinlet_interceptor_parse_image(short_names, input, &ref, &reason, &err);
        if (r < 0) {
                fprintf(stderr, "pinlet resolve: %s\n", pinlet_error_message(err, r));
                return pinlet_cli_exit_code(r);
        }
        if (r == PINLET_INTERCEPT_UNQUALIFIED) {
                /* the daemon would pass it through as written: nothing to pin */
                fprintf(stderr, "pinlet resolve: %s: %s\n", input, reason);
                return PINLET_EXIT_USAGE;
        }
        if (ref->digest) {
                pinned = pinlet_ref_with_digest(ref, NULL);
        } else {
                r = pinlet_registry_resolve(
                        reg, ref, auth, timeout_ms > 0 ? pinlet_now_ms() + (int64_t)timeout_ms : 0,
                        &res, &err);
                if (r < 0) {
                        /* reason: docker.io came first of several search registries */
                        fprintf(stderr, "pinlet resolve: %s%s%s\n", pinlet_error_message(err, r),
                                reason ? "; " : "", reason ? reason : "");
                        return pinlet_cli_exit_code(r);
                }
                digest = TAKE_PTR(res.digest);
                endpoint = TAKE_PTR(res.endpoint);
                pinlet_resolution_done(&res);
                pinned = pinlet_ref_with_digest(ref, digest);
        }
        if (!pinned) {
                fprintf(stderr, "pinlet resolve: out of memory\n");
                return PINLET_EXIT_FAILURE;
        }
        if (show_endpoint)
                /* a digest reference asked nobody: "-" */
                printf("%s\t%s\t%s\n", input, pinned, endpoint ? endpoint : "-");
        else
                printf("%s\t%s\n", input, pinned);
        fflush(stdout);
        return PINLET_EXIT_OK;
}

int pinlet_cmd_resolve(int argc, char **argv)
{
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "username", required_argument, NULL, OPT_USERNAME },
                { "password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "endpoint", no_argument, NULL, OPT_ENDPOINT },
                { "runtime", required_argument, NULL, OPT_RUNTIME },
                PINLET_CONFIG_OPTIONS,
                {},
        };
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_(pinlet_registry_freep) struct pinlet_registry *reg = NULL;
        _cleanup_erase_ char *password = NULL;
        struct pinlet_cli_overrides ov = {};
        struct pinlet_registry_auth auth = { 0 };
        const char *username = NULL;
        bool password_stdin = false, show_endpoint = false;
        _cleanup_free_ char *detected = NULL;
        const char *runtime = NULL; /* --runtime, else the runtime's answer */
        uint64_t timeout_ms = 0;
        struct pinlet_config cfg;
        int c, r, rc = PINLET_EXIT_OK;

        optind = 0;
        while ((c = pinlet_cli_getopt("resolve", argc, argv, "h", options)) >= 0) {
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return PINLET_EXIT_OK;
                case OPT_USERNAME:
                        username = optarg;
                        break;
                case OPT_PASSWORD_STDIN:
                        password_stdin = true;
                        break;
                case OPT_ENDPOINT:
                        show_endpoint = true;
                        break;
                case OPT_RUNTIME:
                        runtime = optarg;
                        break;
                case OPT_TIMEOUT:
                        if (pinlet_parse_duration_ms(optarg, &timeout_ms) < 0 || timeout_ms == 0) {
                                fprintf(stderr,
                                        "pinlet resolve: --timeout: invalid duration '%s'\n",
                                        optarg);
                                return PINLET_EXIT_USAGE;
                        }
                        break;
                default:
                        if (!pinlet_cli_override(&ov, c, optarg))
                                return PINLET_EXIT_USAGE; /* pinlet_cli_getopt said why */
                }
        }
        if (optind >= argc) {
                fprintf(stderr, "pinlet resolve: expected at least one REF\n");
                return PINLET_EXIT_USAGE;
        }
        r = pinlet_cli_auth_flags("resolve", username, password_stdin, &password, &auth);
        if (r != PINLET_EXIT_OK)
                return r;

        r = pinlet_cli_load(&ov, &cfg);
        if (r != PINLET_EXIT_OK) {
                pinlet_config_free(&cfg);
                return r;
        }
        if (!runtime) /* as the daemon: the runtime's name decides which files apply */
                runtime = detected = pinlet_cli_detect_runtime(&cfg);
        r = pinlet_cli_registry_new_for(&cfg, runtime, &reg, &err);
        if (r < 0) {
                fprintf(stderr, "pinlet resolve: %s\n", pinlet_error_message(err, r));
                pinlet_config_free(&cfg);
                return PINLET_EXIT_USAGE;
        }
        for (int i = optind; i < argc; i++) {
                r = resolve_one(reg,
                                pinlet_cli_runtime_is_crio(runtime) ? pinlet_registry_hosts(reg)
                                                                    : NULL,
                                argv[i], username ? &auth : NULL, timeout_ms, show_endpoint);
                if (r != PINLET_EXIT_OK && rc == PINLET_EXIT_OK)
                        rc = r;
        }
        pinlet_registry_free(TAKE_PTR(reg));
        pinlet_config_free(&cfg);
        return rc;
}
