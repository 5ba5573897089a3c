/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `pinlet ref REF...`: parses each reference with the daemon's own code (src/ref) and
 * prints one JSON object per input and line, in input order, so that scripts can see what
 * pinlet will make of a reference before it meets one on a node.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/json.h"
#include "ref/ref.h"

static const char usage[] =
        "Usage: pinlet ref [OPTIONS] REF...\n"
        "\n"
        "Parses and normalizes image references as containerd and kubelet do (the\n"
        "distribution reference grammar) and prints one JSON object per reference and line:\n"
        "  {\"input\", \"ok\": true, \"name\", \"domain\", \"path\", \"tag\", \"tag_defaulted\",\n"
        "   \"digest\", \"normalized\", \"familiar\"}\n"
        "or, when the reference is invalid (image IDs included):\n"
        "  {\"input\", \"ok\": false, \"error\"}\n"
        "name is domain/path; tag and digest are null when absent; normalized is the name\n"
        "with its tag (\"latest\" when neither tag nor digest was given) and digest;\n"
        "familiar is docker's short form (\"nginx:1.25\").\n"
        "\n"
        "Options:\n"
        "  -h, --help   show this help\n"
        "\n"
        "Exit status: 0 if every reference parsed, 1 if any did not, 2 on a usage error.\n";

/* json_string() refuses invalid UTF-8; the input is arbitrary bytes from the command line,
 * so fall back to a copy with every non-ASCII byte shown as '?'. */
static json_t *json_bytes(const char *s)
{
        _cleanup_free_ char *copy = NULL;
        json_t *j = json_string(s);

        if (j)
                return j;
        copy = strdup(s);
        if (!copy)
                return NULL;
        for (char *p = copy; *p; p++)
                if ((unsigned char)*p >= 0x80)
                        *p = '?';
        return json_string(copy);
}

static json_t *json_string_or_null(const char *s)
{
        return s ? json_string(s) : json_null();
}

/* Builds the line for one input; *ok tells whether it parsed. NULL on allocation failure. */
static json_t *describe(const char *input, bool *ok)
{
        _cleanup_(pinlet_error_freep) struct pinlet_error *err = NULL;
        _cleanup_ref_ struct pinlet_ref *ref = NULL;
        _cleanup_free_ char *name = NULL, *normalized = NULL, *familiar = NULL;
        json_t *o = json_object();
        int r;

        if (!o)
                return NULL;
        json_object_set_new(o, "input", json_bytes(input));
        r = pinlet_ref_parse(input, &ref, &err);
        *ok = r >= 0;
        if (r < 0) {
                json_object_set_new(o, "ok", json_false());
                json_object_set_new(o, "error", json_bytes(pinlet_error_message(err, r)));
                return o;
        }
        name = pinlet_ref_name(ref);
        normalized = pinlet_ref_string(ref);
        familiar = pinlet_ref_familiar(ref);
        if (!name || !normalized || !familiar) {
                json_decref(o);
                return NULL;
        }
        /* Every field below passed the grammar, so it is ASCII and json_string() cannot
         * fail on it. */
        json_object_set_new(o, "ok", json_true());
        json_object_set_new(o, "name", json_string(name));
        json_object_set_new(o, "domain", json_string(ref->domain));
        json_object_set_new(o, "path", json_string(ref->path));
        json_object_set_new(o, "tag", json_string_or_null(ref->tag));
        json_object_set_new(o, "tag_defaulted", json_boolean(ref->tag_defaulted));
        json_object_set_new(o, "digest", json_string_or_null(ref->digest));
        json_object_set_new(o, "normalized", json_string(normalized));
        json_object_set_new(o, "familiar", json_string(familiar));
        return o;
}

int pinlet_cmd_ref(int argc, char **argv)
{
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        bool all_ok = true;
        int c;

        while ((c = pinlet_cli_getopt("ref", argc, argv, "h", options)) != -1) {
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return PINLET_EXIT_OK;
                default:
                        return PINLET_EXIT_USAGE;
                }
        }
        if (optind >= argc) {
                fprintf(stderr, "pinlet ref: no reference given\n\n%s", usage);
                return PINLET_EXIT_USAGE;
        }

        for (int i = optind; i < argc; i++) {
                _cleanup_free_ char *line = NULL;
                json_t *o;
                bool ok = false;

                o = describe(argv[i], &ok);
                if (o)
                        line = pinlet_json_line(o);
                json_decref(o);
                if (!line) {
                        fprintf(stderr, "pinlet ref: out of memory\n");
                        return PINLET_EXIT_FAILURE;
                }
                fputs(line, stdout);
                if (!ok)
                        all_ok = false;
        }
        if (fflush(stdout) != 0) {
                perror("pinlet ref: stdout");
                return PINLET_EXIT_FAILURE;
        }
        return all_ok ? PINLET_EXIT_OK : PINLET_EXIT_FAILURE;
}
