/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Lock files: the parser (a table of good and bad documents with their exact file:line
 * messages, YAML and JSON), directories as ConfigMaps lay them out (real symlinks in a
 * temporary directory), conflicts across files, bounds, NUL bytes, and the writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lock/lock.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D384                                                                                 \
        "sha384:333333333333333333333333333333333333333333333333333333333333333333333333333" \
        "333333333333333333333"

struct good_case {
        const char *text;
        size_t size;
        const char *ref; /* looked up (normalized) */
        const char *digest;
};

static const struct good_case good[] = {
        { "version: 1\nimages:\n  nginx:1.25: " D1 "\n", 1, "docker.io/library/nginx:1.25", D1 },
        { "# c\nversion: 1\nimages:\n  docker.io/library/nginx:1.25: " D1 "\n  nginx:1.25: " D1
          "\n",
          1, "docker.io/library/nginx:1.25", D1 },
        { "images:\n  index.docker.io/foo/bar:v1: " D384 "\nversion: 1\n", 1,
          "docker.io/foo/bar:v1", D384 },
        { "version: 1\nimages:\n  \"[::1]:5000/app:v1\": " D1 "\n  localhost/x:latest: " D2 "\n", 2,
          "[::1]:5000/app:v1", D1 },
        { "version: 1\nimages: {}\n", 0, NULL, NULL },
        { "version: 1\nimages:\n", 0, NULL, NULL },
        { "version: 1\n", 0, NULL, NULL },
        /* JSON, compact and pretty, with a JSON escape. */
        { "{\"version\":1,\"images\":{\"nginx:1.25\":\"" D1 "\"}}", 1,
          "docker.io/library/nginx:1.25", D1 },
        { "{\n  \"version\": 1,\n  \"images\": {\n    \"registry.corp.example\\/team/app:v3\": "
          "\"" D2 "\",\n    \"redis:7\": \"" D1 "\"\n  }\n}\n",
          2, "registry.corp.example/team/app:v3", D2 },
};

static void test_good(void **state)
{
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                _cleanup_lock_set_ struct pinlet_lock_set *s = NULL;
                const char *digest = NULL, *file = NULL;
                int r;

                r = pinlet_lock_set_load_data("t.yaml", good[i].text, strlen(good[i].text), NULL,
                                              &s, &err);
                if (r < 0)
                        fail_msg("case %zu: %s", i, pinlet_error_message(err, r));
                assert_int_equal(pinlet_lock_set_size(s), good[i].size);
                if (!good[i].ref)
                        continue;
                assert_int_equal(pinlet_lock_set_lookup(s, good[i].ref, &digest, &file), 0);
                assert_string_equal(digest, good[i].digest);
                assert_string_equal(file, "t.yaml");
        }
}

struct bad_case {
        const char *text;
        const char *message; /* exact */
};

static const struct bad_case bad[] = {
        { "", "t.yaml:1: empty: expected 'version: 1' and 'images'" },
        { "images: {}\n", "t.yaml:1: missing 'version: 1'" },
        { "version: 2\nimages: {}\n",
          "t.yaml:1: unsupported version '2' (this pinlet reads version 1)" },
        { "version: 1\nversion: 1\n", "t.yaml:2: duplicate key 'version'" },
        { "version: 1\nimages: {}\nimages: {}\n", "t.yaml:3: duplicate key 'images'" },
        { "version: 1\nextra: x\n",
          "t.yaml:2: unknown key 'extra' (expected 'version' or 'images')" },
        { "- a\n", "t.yaml:1: the top level must be a mapping" },
        { "version: 1\nimages: [a]\n",
          "t.yaml:2: 'images' must be a mapping of references to digests" },
        { "version: 1\nimages:\n  nginx:1.25: " D1 "\n  redis: " D1 "\n",
          "t.yaml:4: 'redis' has no tag (write the tag, e.g. ':latest', explicitly)" },
        { "version: 1\nimages:\n  nginx@" D1 ": " D1 "\n",
          "t.yaml:3: 'nginx@" D1 "' holds a digest: a lock maps tags to digests" },
        { "version: 1\nimages:\n  Nginx:1: " D1 "\n",
          "t.yaml:3: invalid reference 'Nginx:1': repository name must be lowercase" },
        { "version: 1\nimages:\n  nginx:1: sha256:abc\n",
          "t.yaml:3: 'nginx:1': invalid digest 'sha256:abc'" },
        { "version: 1\nimages:\n  nginx:1:\n", "t.yaml:3: 'nginx:1': invalid digest ''" },
        { "version: 1\nimages:\n  nginx:1: " D1 "\n\n  docker.io/library/nginx:1: " D2 "\n",
          "t.yaml:5: docker.io/library/nginx:1 is locked to " D2 " here and to " D1
          " at t.yaml:3" },
        { "version: 1\nimages:\n  nginx:1:\n    deeper: x\n",
          "t.yaml:4: nginx:1: nested deeper than the lock schema" },
        { "version: 1\nimages:\n  nginx:1: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
          "t.yaml:3: nginx:1: nested deeper than the lock schema" },
        { "version: 1\nimages:\n  ? {a: b}\n  : x\n",
          "t.yaml:3: images: nested deeper than the lock schema" },
        { "version: 1\nimages:\n  nginx:1: &a " D1 "\n  nginx:2: *a\n",
          "t.yaml:4: YAML aliases are not allowed" },
        { "version: 1\nimages:\n  \"nginx:1\\0x\": " D1 "\n", "t.yaml:3: key holds a NUL byte" },
        { "{\"version\": 1, \"images\": {\"nginx:1\": \"sha256:\\u0000\"}}",
          "t.yaml:1: digest holds a NUL byte" },
        { "version: 1\nimages:\n  nginx:1: \"" D1 "\"\n  x:1: \"abc\n",
          "t.yaml:5: invalid YAML: found unexpected end of stream while scanning a quoted scalar" },
        { "version: 1\nimages:\n  a:1: x\n\tb: y\n",
          "t.yaml:4: invalid YAML: found a tab character that violates indentation while "
          "scanning a plain scalar" },
        { "version: 1\n---\nversion: 1\n", "t.yaml:2: more than one YAML document" },
        { "{\"version\": 1, \"images\": {\"nginx:1\": \"" D1 "\",\n \"nginx:1\": \"" D2 "\"}}",
          "t.yaml:2: docker.io/library/nginx:1 is locked to " D2 " here and to " D1
          " at t.yaml:1" },
};

static void test_bad(void **state)
{
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                struct pinlet_lock_set *s = NULL;
                int r;

                r = pinlet_lock_set_load_data("t.yaml", bad[i].text, strlen(bad[i].text), NULL, &s,
                                              &err);
                if (r >= 0)
                        fail_msg("case %zu: accepted", i);
                assert_null(s);
                if (strcmp(pinlet_error_message(err, r), bad[i].message) != 0)
                        fail_msg("case %zu:\n got  %s\n want %s", i, pinlet_error_message(err, r),
                                 bad[i].message);
        }
}

/* A NUL byte in the raw input (not an escape) is refused by the YAML reader. */
static void test_nul_in_input(void **state)
{
        static const char text[] = "version: 1\nimages:\n  nginx:1: " D1 "\0\n";
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_lock_set *s = NULL;

        (void)state;
        assert_int_equal(
                pinlet_lock_set_load_data("t.yaml", text, sizeof(text) - 1, NULL, &s, &err),
                -EINVAL);
        assert_non_null(strstr(pinlet_error_message(err, -EINVAL), "t.yaml:3: invalid YAML"));
}

static void test_bounds(void **state)
{
        _cleanup_free_ char *big_key = NULL, *text = NULL;
        struct pinlet_lock_options opts = { .max_entries = 2 };
        int r;

        (void)state;
        {
                _cleanup_error_ struct pinlet_error *err = NULL;
                struct pinlet_lock_set *s = NULL;
                const char *t = "version: 1\nimages:\n  a:1: " D1 "\n  b:1: " D1 "\n  a:1: " D1
                                "\n  c:1: " D1 "\n";

                /* The repeated a:1 with the same digest does not count. */
                r = pinlet_lock_set_load_data("t.yaml", t, strlen(t), &opts, &s, &err);
                assert_int_equal(r, -E2BIG);
                assert_string_equal(pinlet_error_message(err, r), "t.yaml:6: more than 2 entries");
        }
        {
                _cleanup_error_ struct pinlet_error *err = NULL;
                struct pinlet_lock_set *s = NULL;

                opts = (struct pinlet_lock_options){ .max_file_size = 10 };
                r = pinlet_lock_set_load_data("t.yaml", "version: 1\n", 11, &opts, &s, &err);
                assert_int_equal(r, -E2BIG);
                assert_string_equal(pinlet_error_message(err, r), "t.yaml: larger than 10 bytes");
        }
        {
                _cleanup_error_ struct pinlet_error *err = NULL;
                struct pinlet_lock_set *s = NULL;

                big_key = malloc(PINLET_LOCK_KEY_MAX + 2);
                assert_non_null(big_key);
                memset(big_key, 'a', PINLET_LOCK_KEY_MAX + 1);
                big_key[PINLET_LOCK_KEY_MAX + 1] = 0;
                assert_true(asprintf(&text, "version: 1\nimages:\n  ? %s\n  : %s\n", big_key, D1) >
                            0);
                r = pinlet_lock_set_load_data("t.yaml", text, strlen(text), NULL, &s, &err);
                assert_int_equal(r, -E2BIG);
                assert_non_null(strstr(pinlet_error_message(err, r),
                                       "t.yaml:3: key longer than 1024 bytes: 'aaaa"));
        }
}

/* ---- files and directories -------------------------------------------------------------- */

static char tmpdir[] = "/tmp/pinlet-test-lock-XXXXXX";

static void write_text(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

static char *path_in(const char *fmt, ...) _printf_(1, 2);
static char *path_in(const char *fmt, ...)
{
        _cleanup_free_ char *rel = NULL;
        char *p = NULL;
        va_list ap;

        va_start(ap, fmt);
        assert_true(vasprintf(&rel, fmt, ap) > 0);
        va_end(ap);
        assert_true(asprintf(&p, "%s/%s", tmpdir, rel) > 0);
        return p;
}

static int setup_dir(void **state)
{
        (void)state;
        strcpy(tmpdir, "/tmp/pinlet-test-lock-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
        _cleanup_free_ char *cmd = NULL;

        (void)state;
        if (asprintf(&cmd, "rm -rf '%s'", tmpdir) < 0)
                return -1;
        return system(cmd) == 0 ? 0 : -1;
}

/* A ConfigMap volume: data in a timestamped directory, "..data" pointing at it, the keys
 * as symlinks through "..data". Hidden entries, other suffixes and a dangling symlink are
 * not read; the files are read in name order. */
static void test_configmap_layout(void **state)
{
        _cleanup_free_ char *cm = path_in("cm"), *ts = path_in("cm/..2026_12_03_10_00_00.1"),
                            *a = path_in("cm/..2026_12_03_10_00_00.1/a.yaml"),
                            *b = path_in("cm/..2026_12_03_10_00_00.1/b.json"),
                            *n = path_in("cm/..2026_12_03_10_00_00.1/notes.txt"),
                            *data = path_in("cm/..data"), *la = path_in("cm/a.yaml"),
                            *lb = path_in("cm/b.json"), *ln = path_in("cm/notes.txt"),
                            *dangling = path_in("cm/gone.yaml"), *sub = path_in("cm/sub.yaml"),
                            *hidden = path_in("cm/.hidden.yaml");
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_lock_set_ struct pinlet_lock_set *s = NULL;
        char *paths[] = { cm, NULL };
        const char *digest, *file;
        _cleanup_free_ char *expect_b = path_in("cm/b.json");
        int r;

        (void)state;
        assert_int_equal(mkdir(cm, 0755), 0);
        assert_int_equal(mkdir(ts, 0755), 0);
        write_text(a, "version: 1\nimages:\n  nginx:1.25: " D1 "\n");
        write_text(b, "{\"version\": 1, \"images\": {\"redis:7\": \"" D2 "\", \"nginx:1.25\": \"" D1
                      "\"}}\n");
        write_text(n, "not a lock\n");
        assert_int_equal(symlink("..2026_12_03_10_00_00.1", data), 0);
        assert_int_equal(symlink("..data/a.yaml", la), 0);
        assert_int_equal(symlink("..data/b.json", lb), 0);
        assert_int_equal(symlink("..data/notes.txt", ln), 0);
        assert_int_equal(symlink("..data/gone.yaml", dangling), 0);
        assert_int_equal(mkdir(sub, 0755), 0); /* a directory with a lock's name */
        write_text(hidden, "garbage: [\n");

        r = pinlet_lock_set_load(paths, NULL, &s, &err);
        if (r < 0)
                fail_msg("%s", pinlet_error_message(err, r));
        assert_int_equal(pinlet_lock_set_size(s), 2);
        assert_int_equal(pinlet_lock_set_lookup(s, "docker.io/library/nginx:1.25", &digest, &file),
                         0);
        assert_string_equal(digest, D1);
        assert_string_equal(file, la); /* a.yaml came first: it holds the entry */
        assert_int_equal(pinlet_lock_set_lookup(s, "docker.io/library/redis:7", &digest, &file), 0);
        assert_string_equal(digest, D2);
        assert_string_equal(file, expect_b);
        assert_int_equal(pinlet_lock_set_lookup(s, "docker.io/library/redis:8", &digest, &file),
                         -ENOENT);
        assert_int_equal(pinlet_lock_set_lookup(NULL, "docker.io/library/redis:7", &digest, &file),
                         -ENOENT);
}

/* One reference, two digests, two files: both places named. */
static void test_conflict_across_files(void **state)
{
        _cleanup_free_ char *f1 = path_in("one.yaml"), *f2 = path_in("two.yaml"), *want = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_lock_set *s = NULL;
        char *paths[] = { f1, f2, NULL };
        int r;

        (void)state;
        write_text(f1, "version: 1\nimages:\n  a:1: " D1 "\n  nginx:1.25: " D1 "\n");
        write_text(f2, "version: 1\n\nimages:\n  docker.io/library/nginx:1.25: " D2 "\n");
        r = pinlet_lock_set_load(paths, NULL, &s, &err);
        assert_int_equal(r, -EINVAL);
        assert_null(s);
        assert_true(asprintf(&want,
                             "%s:4: docker.io/library/nginx:1.25 is locked to " D2
                             " here and to " D1 " at %s:4",
                             f2, f1) > 0);
        assert_string_equal(pinlet_error_message(err, r), want);
}

static void test_missing_path(void **state)
{
        _cleanup_free_ char *f = path_in("nope.yaml"), *want = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_lock_set *s = NULL;
        char *paths[] = { f, NULL };
        int r;

        (void)state;
        r = pinlet_lock_set_load(paths, NULL, &s, &err);
        assert_int_equal(r, -ENOENT);
        assert_true(asprintf(&want, "%s: No such file or directory", f) > 0);
        assert_string_equal(pinlet_error_message(err, r), want);
}

/* ---- writing ---------------------------------------------------------------------------- */

static void test_format_round_trip(void **state)
{
        struct pinlet_lock_entry e[] = {
                { "docker.io/library/redis:7", D2 },
                { "[::1]:5000/app:v1", D1 },
                { "docker.io/library/nginx:1.25", D1 },
                { "docker.io/library/redis:7", D2 },
        };
        _cleanup_free_ char *text = NULL, *f = path_in("out.yaml");
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_lock_set_ struct pinlet_lock_set *s = NULL;
        char *paths[] = { f, NULL };
        const char *digest;
        size_t len;

        (void)state;
        assert_int_equal(pinlet_lock_format(e, ELEMENTSOF(e), &text, &len, &err), 0);
        assert_string_equal(text, "# written by `pinlet lock`; any number of files may be loaded "
                                  "together\nversion: 1\nimages:\n"
                                  "  \"[::1]:5000/app:v1\": " D1 "\n"
                                  "  docker.io/library/nginx:1.25: " D1 "\n"
                                  "  docker.io/library/redis:7: " D2 "\n");
        assert_int_equal(len, strlen(text));
        assert_int_equal(pinlet_lock_write_file(f, text, len, &err), 0);
        assert_int_equal(pinlet_lock_set_load(paths, NULL, &s, &err), 0);
        assert_int_equal(pinlet_lock_set_size(s), 3);
        assert_int_equal(pinlet_lock_set_lookup(s, "[::1]:5000/app:v1", &digest, NULL), 0);
        assert_string_equal(digest, D1);
}

static void test_format_refuses(void **state)
{
        struct pinlet_lock_entry notnorm[] = { { "nginx:1.25", D1 } };
        struct pinlet_lock_entry baddigest[] = { { "docker.io/library/nginx:1.25", "sha256:1" } };
        struct pinlet_lock_entry twice[] = { { "docker.io/library/nginx:1.25", D1 },
                                             { "docker.io/library/nginx:1.25", D2 } };
        char *text = NULL;
        size_t len;

        (void)state;
        {
                _cleanup_error_ struct pinlet_error *err = NULL;
                assert_int_equal(pinlet_lock_format(notnorm, 1, &text, &len, &err), -EINVAL);
        }
        {
                _cleanup_error_ struct pinlet_error *err = NULL;
                assert_int_equal(pinlet_lock_format(baddigest, 1, &text, &len, &err), -EINVAL);
        }
        {
                _cleanup_error_ struct pinlet_error *err = NULL;
                assert_int_equal(pinlet_lock_format(twice, 2, &text, &len, &err), -EINVAL);
                assert_string_equal(pinlet_error_message(err, -EINVAL),
                                    "docker.io/library/nginx:1.25: two digests, " D1 " and " D2);
        }
        assert_null(text);
        {
                _cleanup_error_ struct pinlet_error *err = NULL;
                _cleanup_free_ char *empty = NULL;
                assert_int_equal(pinlet_lock_format(NULL, 0, &empty, &len, &err), 0);
                assert_non_null(strstr(empty, "version: 1\nimages: {}\n"));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good),
                cmocka_unit_test(test_bad),
                cmocka_unit_test(test_nul_in_input),
                cmocka_unit_test(test_bounds),
                cmocka_unit_test_setup_teardown(test_configmap_layout, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_conflict_across_files, setup_dir,
                                                teardown_dir),
                cmocka_unit_test_setup_teardown(test_missing_path, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_format_round_trip, setup_dir, teardown_dir),
                cmocka_unit_test(test_format_refuses),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
