/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `pinlet lock`: writes lock files (src/lock) for the pipeline that deploys, and checks
 * them.
 *
 *   pinlet lock [--output FILE] [--merge FILE] IMAGE...   resolve tags now, write a lock
 *   pinlet lock --from-pins [--output FILE] [--merge FILE] the node's pin store as a lock
 *   pinlet lock --check FILE...                             validate lock files
 *
 * Resolving goes through the same code as `pinlet resolve` (pinlet_cli_resolve_digest), so
 * the lock says what the daemon would have pinned. Nothing is written unless every IMAGE
 * resolved: a lock missing one image would look complete. The output is sorted and
 * byte-identical for the same answers, and replaces FILE atomically.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "intercept/intercept.h"
#include "lock/lock.h"
#include "pins/pins.h"
#include "ref/ref.h"
#include "registry/registry.h"

enum {
        OPT_OUTPUT = PINLET_OPT_LAST_COMMON + 1,
        OPT_MERGE,
        OPT_CHECK,
        OPT_FROM_PINS,
        OPT_USERNAME,
        OPT_PASSWORD_STDIN,
        OPT_TIMEOUT,
        OPT_RUNTIME,
};

static const char usage[] =
        "Usage: pinlet lock [OPTIONS] IMAGE...\n"
        "       pinlet lock --from-pins [OPTIONS]\n"
        "       pinlet lock --check FILE...\n"
        "\n"
        "Resolves each image's tag to the digest it points at now, with the daemon's own\n"
        "registry client, configuration and credentials (as 'pinlet resolve'), and writes a\n"
        "lock file: sorted, the same bytes for the same answers. Nothing is written unless\n"
        "every IMAGE resolved. An IMAGE written name:tag@digest is locked to that digest\n"
        "without asking the registry.\n"
        "\n"
        "Options:\n"
        "  -h, --help               show this help\n"
        "  -o, --output FILE        write FILE atomically (default: stdout)\n"
        "  --merge FILE             keep the other entries of the lock FILE (missing: empty);\n"
        "                           the images given replace or add theirs\n"
        "  --from-pins              lock what the node's pin store (state_dir) holds\n"
        "  --check                  validate the FILEs (files or directories) instead:\n"
        "                           prints 'FILE: ok, N images' or the error\n"
        "  --username USER          registry user name\n"
        "  --password-stdin         read the password from the first line of stdin\n"
        "  --timeout DURATION       deadline per image (default: resolver.timeout)\n"
        "  --runtime NAME           apply the registry files (and, for cri-o, the short\n"
        "                           names) of this runtime as the daemon does; default:\n"
        "                           ask the runtime at runtime_endpoint, none if it does\n"
        "                           not answer\n"
        "" PINLET_HELP_CONFIG PINLET_HELP_RUNTIME PINLET_HELP_STATE_DIR PINLET_HELP_LOG "\n"
        "Exit codes: 0 written, 1 failure, 2 usage error, bad lock file or configuration,\n"
        "3 not found, 4 unauthorized, 5 registry unavailable or timeout,\n"
        "6 protocol or TLS error (the first failure decides).\n";

/* What will be written: owned copies, so sources (a merged set, the pin store) can go. */
struct entries {
        struct pinlet_lock_entry *v;
        size_t n, cap;
};

static void entries_done(struct entries *e)
{
        for (size_t i = 0; i < e->n; i++) {
                free((char *)e->v[i].ref);
                free((char *)e->v[i].digest);
        }
        free(e->v);
}

static int entries_add(struct entries *e, const char *ref, const char *digest)
{
        char *r, *d;

        if (e->n == e->cap) {
                size_t cap = e->cap ? e->cap * 2 : 16;
                struct pinlet_lock_entry *v = realloc(e->v, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                e->v = v;
                e->cap = cap;
        }
        r = strdup(ref);
        d = strdup(digest);
        if (!r || !d) {
                free(r);
                free(d);
                return -ENOMEM;
        }
        e->v[e->n++] = (struct pinlet_lock_entry){ .ref = r, .digest = d };
        return 0;
}

static int check(char **files, int n)
{
        int rc = PINLET_EXIT_OK;

        for (int i = 0; i < n; i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                _cleanup_lock_set_ struct pinlet_lock_set *s = NULL;
                char *paths[] = { files[i], NULL };
                int r;

                r = pinlet_lock_set_load(paths, NULL, &s, &err);
                if (r < 0) {
                        fprintf(stderr, "pinlet lock: %s\n", pinlet_error_message(err, r));
                        rc = r == -ENOMEM ? PINLET_EXIT_FAILURE : PINLET_EXIT_USAGE;
                        continue;
                }
                printf("%s: ok, %zu images\n", files[i], pinlet_lock_set_size(s));
        }
        return rc;
}

/* Resolves one IMAGE into e. Returns an exit code; errors are printed. */
/* short_names: in front of CRI-O, registries.conf qualifies short names (NULL: docker.io),
 * so the entry's key is the name the daemon looks up there. */
static int lock_one(struct pinlet_registry *reg, struct pinlet_hosts *short_names,
                    const char *input, const struct pinlet_registry_auth *auth, uint64_t timeout_ms,
                    struct entries *e)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_ref_ struct pinlet_ref *ref = NULL;
        _cleanup_free_ char *digest = NULL, *name = NULL, *reason = NULL;
        int r;

        r = pinlet_interceptor_parse_image(short_names, input, &ref, &reason, &err);
        if (r < 0) {
                fprintf(stderr, "pinlet lock: %s\n", pinlet_error_message(err, r));
                return r == -ENOMEM ? PINLET_EXIT_FAILURE : PINLET_EXIT_USAGE;
        }
        if (r == PINLET_INTERCEPT_UNQUALIFIED) {
                /* the daemon never resolves it, so no lock entry could apply to it */
                fprintf(stderr, "pinlet lock: %s: %s\n", input, reason);
                return PINLET_EXIT_USAGE;
        }
        if (!ref->tag) {
                fprintf(stderr, "pinlet lock: %s: no tag to lock (a lock maps tags to digests)\n",
                        input);
                return PINLET_EXIT_USAGE;
        }
        if (ref->digest) {
                digest = strdup(ref->digest);
                free(ref->digest);
                ref->digest = NULL; /* the key is the tag reference */
        } else {
                r = pinlet_cli_resolve_digest(reg, ref, auth, timeout_ms, &digest, &err);
                if (r < 0) {
                        fprintf(stderr, "pinlet lock: %s\n", pinlet_error_message(err, r));
                        return pinlet_cli_exit_code(r);
                }
        }
        name = pinlet_ref_string(ref);
        if (!digest || !name || entries_add(e, name, digest) < 0) {
                fprintf(stderr, "pinlet lock: out of memory\n");
                return PINLET_EXIT_FAILURE;
        }
        return PINLET_EXIT_OK;
}

static int pin_to_entry(void *userdata, const struct pinlet_pin *pin)
{
        return entries_add(userdata, pin->reference, pin->digest);
}

static int from_pins(const struct pinlet_config *cfg, struct entries *e)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_pins_ struct pinlet_pins *p = NULL;
        int r;

        r = pinlet_pins_open_readonly(cfg->state_dir, cfg->pins_max_entries, &p, &err);
        if (r < 0) {
                fprintf(stderr, "pinlet lock: %s\n", pinlet_error_message(err, r));
                return PINLET_EXIT_FAILURE;
        }
        if (pinlet_pins_load_report(p)->skipped > 0)
                fprintf(stderr, "pinlet lock: pin store %s: %zu damaged line(s) skipped\n",
                        cfg->state_dir, pinlet_pins_load_report(p)->skipped);
        r = pinlet_pins_list(p, pin_to_entry, e);
        if (r < 0) {
                fprintf(stderr, "pinlet lock: out of memory\n");
                return PINLET_EXIT_FAILURE;
        }
        return PINLET_EXIT_OK;
}

struct merge_ctx {
        struct entries *e;
        size_t n_new; /* e->v[0..n_new) are the new answers, sorted by ref */
};

static int cmp_ref(const void *key, const void *elem)
{
        return strcmp(key, ((const struct pinlet_lock_entry *)elem)->ref);
}

static int cmp_entry(const void *a, const void *b)
{
        return strcmp(((const struct pinlet_lock_entry *)a)->ref,
                      ((const struct pinlet_lock_entry *)b)->ref);
}

static int keep_old(void *userdata, const char *ref, const char *digest, const char *file,
                    unsigned long line)
{
        struct merge_ctx *m = userdata;

        (void)file;
        (void)line;
        if (bsearch(ref, m->e->v, m->n_new, sizeof(*m->e->v), cmp_ref))
                return 0; /* replaced by a new answer */
        return entries_add(m->e, ref, digest);
}

/* Reads the lock at path for --merge, before any registry is asked, so a bad one costs
 * nothing. A missing file is an empty lock (the first run of a pipeline); a bad one is an
 * error (exit 2). */
static int merge_load(const char *path, struct pinlet_lock_set **ret)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        char *paths[] = { (char *)path, NULL };
        int r;

        if (access(path, F_OK) < 0 && errno == ENOENT)
                return PINLET_EXIT_OK;
        r = pinlet_lock_set_load(paths, NULL, ret, &err);
        if (r < 0) {
                fprintf(stderr, "pinlet lock: --merge: %s\n", pinlet_error_message(err, r));
                return r == -ENOMEM ? PINLET_EXIT_FAILURE : PINLET_EXIT_USAGE;
        }
        return PINLET_EXIT_OK;
}

/* Adds the entries of old that e does not replace. */
static int merge_apply(const struct pinlet_lock_set *old, struct entries *e)
{
        struct merge_ctx m = { .e = e, .n_new = e->n };

        if (e->n > 0)
                qsort(e->v, e->n, sizeof(*e->v), cmp_entry);
        if (pinlet_lock_set_foreach(old, keep_old, &m) < 0) {
                fprintf(stderr, "pinlet lock: out of memory\n");
                return PINLET_EXIT_FAILURE;
        }
        return PINLET_EXIT_OK;
}

static int emit(struct entries *e, const char *output)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_lock_set_ struct pinlet_lock_set *s = NULL;
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        r = pinlet_lock_format(e->v, e->n, &text, &len, &err);
        /* What we write must load: a last check with the daemon's own parser. */
        if (r >= 0)
                r = pinlet_lock_set_load_data(output ? output : "(stdout)", text, len, NULL, &s,
                                              &err);
        if (r < 0) {
                fprintf(stderr, "pinlet lock: %s\n", pinlet_error_message(err, r));
                return PINLET_EXIT_FAILURE;
        }
        if (!output) {
                if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
                        fprintf(stderr, "pinlet lock: stdout: %s\n", strerror(errno));
                        return PINLET_EXIT_FAILURE;
                }
                return PINLET_EXIT_OK;
        }
        r = pinlet_lock_write_file(output, text, len, &err);
        if (r < 0) {
                fprintf(stderr, "pinlet lock: %s\n", pinlet_error_message(err, r));
                return PINLET_EXIT_FAILURE;
        }
        fprintf(stderr, "pinlet lock: %s: %zu images\n", output, pinlet_lock_set_size(s));
        return PINLET_EXIT_OK;
}

int pinlet_cmd_lock(int argc, char **argv)
{
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "output", required_argument, NULL, 'o' },
                { "merge", required_argument, NULL, OPT_MERGE },
                { "check", no_argument, NULL, OPT_CHECK },
                { "from-pins", no_argument, NULL, OPT_FROM_PINS },
                { "username", required_argument, NULL, OPT_USERNAME },
                { "password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "runtime", required_argument, NULL, OPT_RUNTIME },
                PINLET_CONFIG_OPTIONS,
                {},
        };
        _cleanup_(pinlet_registry_freep) struct pinlet_registry *reg = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_erase_ char *password = NULL;
        _cleanup_free_ char *detected = NULL;
        const char *runtime = NULL; /* --runtime, else the runtime's answer */
        _cleanup_(entries_done) struct entries e = {};
        _cleanup_lock_set_ struct pinlet_lock_set *old = NULL;
        struct pinlet_cli_overrides ov = {};
        struct pinlet_registry_auth auth = { 0 };
        const char *output = NULL, *merge_path = NULL, *username = NULL;
        bool do_check = false, do_pins = false, password_stdin = false;
        uint64_t timeout_ms = 0;
        struct pinlet_config cfg;
        int c, r, rc = PINLET_EXIT_OK;

        optind = 0;
        while ((c = pinlet_cli_getopt("lock", argc, argv, "ho:", options)) >= 0) {
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return PINLET_EXIT_OK;
                case 'o':
                        output = optarg;
                        break;
                case OPT_MERGE:
                        merge_path = optarg;
                        break;
                case OPT_CHECK:
                        do_check = true;
                        break;
                case OPT_FROM_PINS:
                        do_pins = true;
                        break;
                case OPT_USERNAME:
                        username = optarg;
                        break;
                case OPT_PASSWORD_STDIN:
                        password_stdin = true;
                        break;
                case OPT_RUNTIME:
                        runtime = optarg;
                        break;
                case OPT_TIMEOUT:
                        if (pinlet_parse_duration_ms(optarg, &timeout_ms) < 0 || timeout_ms == 0) {
                                fprintf(stderr, "pinlet lock: --timeout: invalid duration '%s'\n",
                                        optarg);
                                return PINLET_EXIT_USAGE;
                        }
                        break;
                default:
                        if (!pinlet_cli_override(&ov, c, optarg))
                                return PINLET_EXIT_USAGE; /* pinlet_cli_getopt said why */
                }
        }
        if (do_check) {
                if (optind >= argc || do_pins || output || merge_path) {
                        fprintf(stderr, "pinlet lock: --check takes FILE... and nothing else\n");
                        return PINLET_EXIT_USAGE;
                }
                return check(argv + optind, argc - optind);
        }
        if (do_pins == (optind < argc)) {
                fprintf(stderr, "pinlet lock: expected IMAGE... or --from-pins\n");
                return PINLET_EXIT_USAGE;
        }
        rc = pinlet_cli_auth_flags("lock", username, password_stdin, &password, &auth);
        if (rc != PINLET_EXIT_OK)
                return rc;

        if (merge_path) {
                rc = merge_load(merge_path, &old);
                if (rc != PINLET_EXIT_OK)
                        return rc;
        }

        r = pinlet_cli_load(&ov, &cfg);
        if (r != PINLET_EXIT_OK) {
                pinlet_config_free(&cfg);
                return r;
        }
        if (do_pins) {
                rc = from_pins(&cfg, &e);
        } else {
                if (!runtime) /* as the daemon: the runtime's name picks the files */
                        runtime = detected = pinlet_cli_detect_runtime(&cfg);
                r = pinlet_cli_registry_new_for(&cfg, runtime, &reg, &err);
                if (r < 0) {
                        fprintf(stderr, "pinlet lock: %s\n", pinlet_error_message(err, r));
                        rc = PINLET_EXIT_USAGE;
                }
                for (int i = optind; i < argc && reg; i++) {
                        r = lock_one(reg,
                                     pinlet_cli_runtime_is_crio(runtime)
                                             ? pinlet_registry_hosts(reg)
                                             : NULL,
                                     argv[i], username ? &auth : NULL, timeout_ms, &e);
                        if (r != PINLET_EXIT_OK && rc == PINLET_EXIT_OK)
                                rc = r;
                }
        }
        pinlet_registry_free(TAKE_PTR(reg));
        pinlet_config_free(&cfg);
        if (rc != PINLET_EXIT_OK)
                return rc;
        rc = merge_apply(old, &e);
        if (rc != PINLET_EXIT_OK)
                return rc;
        return emit(&e, output);
}
