/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `pinlet pins [--json]`: lists the pin store, sorted by reference. Opens the
 * store read-only: it takes no lock and writes nothing, so it runs beside the daemon, and
 * it reads the file as the daemon's last rename or append left it.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/json.h"
#include "pins/pins.h"

enum {
        OPT_JSON = PINLET_OPT_LAST_COMMON + 1,
};

static const char usage[] =
        "Usage: pinlet pins [--json] [OPTIONS]\n"
        "\n"
        "Lists the pin store: for each tag reference the digest pinlet pulled for it, when\n"
        "that digest was first and last used, and the last pods that used it. A table for\n"
        "humans, or one JSON object per line with --json. Safe to run beside the daemon.\n"
        "\n"
        "Options:\n"
        "  --json                   JSON lines: reference, digest, first_used, last_used\n"
        "                           (RFC 3339 UTC), pods\n"
        "  -h, --help               show this help\n" PINLET_HELP_CONFIG PINLET_HELP_STATE_DIR;

/* An owned copy of one pin: list() lends its strings only during the callback. */
struct row {
        char *reference;
        char *digest;
        char first[32], last[32];
        json_t *pods;    /* array of strings */
        char *pods_text; /* "a, b" or "-" */
};

struct rows {
        struct row *v;
        size_t n;
};

static void format_time(int64_t t, char *buf, size_t size)
{
        time_t tt = (time_t)t;
        struct tm tm;

        if (!gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "%lld", (long long)t);
}

static int collect(void *userdata, const struct pinlet_pin *pin)
{
        struct rows *rows = userdata;
        struct row *v, *r;
        size_t len = 2;

        v = realloc(rows->v, (rows->n + 1) * sizeof(*v));
        if (!v)
                return -ENOMEM;
        rows->v = v;
        r = &v[rows->n];
        *r = (struct row){};
        r->reference = strdup(pin->reference);
        r->digest = strdup(pin->digest);
        r->pods = json_array();
        for (size_t i = 0; i < pin->n_pods; i++)
                len += strlen(pin->pods[i]) + 2;
        r->pods_text = calloc(1, len);
        rows->n++; /* counted now, so that cleanup frees what was allocated */
        if (!r->reference || !r->digest || !r->pods || !r->pods_text)
                return -ENOMEM;
        format_time(pin->first_used, r->first, sizeof(r->first));
        format_time(pin->last_used, r->last, sizeof(r->last));
        for (size_t i = 0; i < pin->n_pods; i++) {
                if (json_array_append_new(r->pods, json_string(pin->pods[i])) < 0)
                        return -ENOMEM;
                if (i > 0)
                        strcat(r->pods_text, ", ");
                strcat(r->pods_text, pin->pods[i]);
        }
        if (pin->n_pods == 0)
                strcpy(r->pods_text, "-");
        return 0;
}

static void rows_free(struct rows *rows)
{
        for (size_t i = 0; i < rows->n; i++) {
                free(rows->v[i].reference);
                free(rows->v[i].digest);
                json_decref(rows->v[i].pods);
                free(rows->v[i].pods_text);
        }
        free(rows->v);
}

static int row_cmp(const void *a, const void *b)
{
        return strcmp(((const struct row *)a)->reference, ((const struct row *)b)->reference);
}

static int print_json(const struct rows *rows)
{
        for (size_t i = 0; i < rows->n; i++) {
                const struct row *r = &rows->v[i];
                json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:O}", "reference", r->reference,
                                      "digest", r->digest, "first_used", r->first, "last_used",
                                      r->last, "pods", r->pods);
                char *s = pinlet_json_line(o);

                json_decref(o);
                if (!s)
                        return -ENOMEM;
                fputs(s, stdout);
                free(s);
        }
        return 0;
}

static void print_table(const struct rows *rows)
{
        int w_ref = (int)strlen("REFERENCE"), w_digest = (int)strlen("DIGEST"),
            w_time = (int)strlen("FIRST USED");

        for (size_t i = 0; i < rows->n; i++) {
                int a = (int)strlen(rows->v[i].reference), b = (int)strlen(rows->v[i].digest),
                    c = (int)strlen(rows->v[i].first), d = (int)strlen(rows->v[i].last);

                w_ref = a > w_ref ? a : w_ref;
                w_digest = b > w_digest ? b : w_digest;
                w_time = c > w_time ? c : w_time;
                w_time = d > w_time ? d : w_time;
        }
        printf("%-*s  %-*s  %-*s  %-*s  %s\n", w_ref, "REFERENCE", w_digest, "DIGEST", w_time,
               "FIRST USED", w_time, "LAST USED", "PODS");
        for (size_t i = 0; i < rows->n; i++) {
                const struct row *r = &rows->v[i];

                printf("%-*s  %-*s  %-*s  %-*s  %s\n", w_ref, r->reference, w_digest, r->digest,
                       w_time, r->first, w_time, r->last, r->pods_text);
        }
}

static int list_pins(const struct pinlet_config *cfg, bool json)
{
        _cleanup_pins_ struct pinlet_pins *p = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_free_ char *path = NULL;
        const struct pinlet_pins_load_report *rep;
        struct rows rows = {};
        int r;

        if (asprintf(&path, "%s/" PINLET_PINS_FILE, cfg->state_dir) < 0)
                return PINLET_EXIT_FAILURE;
        r = pinlet_pins_open_readonly(cfg->state_dir, cfg->pins_max_entries, &p, &err);
        if (r < 0) {
                fprintf(stderr, "pinlet pins: %s\n", pinlet_error_message(err, r));
                return PINLET_EXIT_FAILURE;
        }
        if (access(path, F_OK) < 0)
                fprintf(stderr,
                        "pinlet pins: no pin store at %s (nothing pulled yet, or "
                        "another --state-dir)\n",
                        path);
        rep = pinlet_pins_load_report(p);
        if (rep->skipped > 0)
                fprintf(stderr, "pinlet pins: %s: %zu damaged line(s) skipped (first: %s)\n", path,
                        rep->skipped, strempty(rep->first_problem));

        r = pinlet_pins_list(p, collect, &rows);
        if (r >= 0) {
                if (rows.n > 0)
                        qsort(rows.v, rows.n, sizeof(*rows.v), row_cmp);
                if (json)
                        r = print_json(&rows);
                else
                        print_table(&rows);
        }
        rows_free(&rows);
        if (r < 0) {
                fprintf(stderr, "pinlet pins: out of memory\n");
                return PINLET_EXIT_FAILURE;
        }
        if (fflush(stdout) != 0) {
                perror("pinlet pins: stdout");
                return PINLET_EXIT_FAILURE;
        }
        return PINLET_EXIT_OK;
}

int pinlet_cmd_pins(int argc, char **argv)
{
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, OPT_JSON },
                PINLET_CONFIG_OPTIONS,
                {},
        };
        struct pinlet_cli_overrides ov = {};
        struct pinlet_config cfg;
        bool json = false;
        int c, r;

        optind = 0;
        while ((c = pinlet_cli_getopt("pins", argc, argv, "h", options)) >= 0) {
                if (c == 'h') {
                        fputs(usage, stdout);
                        return PINLET_EXIT_OK;
                }
                if (c == OPT_JSON) {
                        json = true;
                        continue;
                }
                if (!pinlet_cli_override(&ov, c, optarg))
                        return PINLET_EXIT_USAGE; /* getopt printed why */
        }
        if (optind < argc) {
                fprintf(stderr, "pinlet pins: unexpected argument '%s'\n", argv[optind]);
                return PINLET_EXIT_USAGE;
        }
        r = pinlet_cli_load(&ov, &cfg);
        if (r == PINLET_EXIT_OK)
                r = list_pins(&cfg, json);
        pinlet_config_free(&cfg);
        return r;
}
