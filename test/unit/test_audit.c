/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "audit/audit.h"

static char tmpdir[64];

static int setup(void **state)
{
        strcpy(tmpdir, "/tmp/pinlet-audit-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd);
}

static char *path_in_tmp(const char *name)
{
        char *p;

        assert_int_not_equal(asprintf(&p, "%s/%s", tmpdir, name), -1);
        return p;
}

/* Reads a file as lines; every line must parse as one JSON object. Returns line count. */
static size_t read_lines(const char *path, json_t ***ret)
{
        FILE *f = fopen(path, "r");
        json_t **v = NULL;
        char *line = NULL;
        size_t cap = 0, n = 0;
        ssize_t len;

        assert_non_null(f);
        while ((len = getline(&line, &cap, f)) >= 0) {
                json_error_t e;
                json_t *o;

                assert_true(len > 0 && line[len - 1] == '\n');
                o = json_loads(line, 0, &e);
                if (!o)
                        fail_msg("line %zu does not parse: %s: %.80s", n + 1, e.text, line);
                assert_true(json_is_object(o));
                v = realloc(v, (n + 1) * sizeof(*v));
                assert_non_null(v);
                v[n++] = o;
        }
        free(line);
        fclose(f);
        *ret = v;
        return n;
}

static void free_lines(json_t **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                json_decref(v[i]);
        free(v);
}

static void test_format(void **state)
{
        const struct pinlet_audit_record rec = {
                .method = "CreateContainer",
                .pod_namespace = "prod",
                .pod_name = "web-0",
                .pod_uid = "6c1f0b8e-1111-2222-3333-444455556666",
                .container = "app",
                .image = "nginx:1.25",
                .resolved = "docker.io/library/nginx@sha256:0123",
                .previous = "sha256:4567",
                .source = "pin",
                .registry_ms = 84,
                .decision = PINLET_AUDIT_TAG_MOVED,
                .mode = "enforce",
                .error = "boom \"quoted\"",
        };
        static const char *const order[] = { "time",        "method",   "pod",      "container",
                                             "image",       "resolved", "previous", "source",
                                             "registry_ms", "decision", "mode",     "error" };
        _cleanup_free_ char *line = pinlet_audit_format(&rec);
        json_t *o, *pod;
        const char *key;
        json_t *val;
        regex_t re;
        size_t i = 0;

        assert_non_null(line);
        assert_int_equal(line[strlen(line) - 1], '\n');
        assert_null(strstr(line, "\": ")); /* compact: no space after a key */
        assert_null(strchr(line, '\n') + 1 == line + strlen(line) ? NULL : line); /* one line */
        o = json_loads(line, 0, NULL);
        assert_non_null(o);
        json_object_foreach(o, key, val)
        {
                assert_true(i < 12);
                assert_string_equal(key, order[i]);
                i++;
        }
        assert_int_equal(i, 12);
        /* and in the text itself, which is what a reader of the file sees */
        assert_true(strstr(line, "\"time\"") < strstr(line, "\"method\""));
        assert_true(strstr(line, "\"decision\"") < strstr(line, "\"mode\""));

        assert_int_equal(regcomp(&re,
                                 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                                 "\\.[0-9]{9}Z$",
                                 REG_EXTENDED | REG_NOSUB),
                         0);
        assert_int_equal(regexec(&re, json_string_value(json_object_get(o, "time")), 0, NULL, 0),
                         0);
        regfree(&re);
        assert_string_equal(json_string_value(json_object_get(o, "method")), "CreateContainer");
        pod = json_object_get(o, "pod");
        assert_string_equal(json_string_value(json_object_get(pod, "namespace")), "prod");
        assert_string_equal(json_string_value(json_object_get(pod, "name")), "web-0");
        assert_string_equal(json_string_value(json_object_get(pod, "uid")),
                            "6c1f0b8e-1111-2222-3333-444455556666");
        assert_string_equal(json_string_value(json_object_get(o, "container")), "app");
        assert_string_equal(json_string_value(json_object_get(o, "image")), "nginx:1.25");
        assert_string_equal(json_string_value(json_object_get(o, "resolved")),
                            "docker.io/library/nginx@sha256:0123");
        assert_string_equal(json_string_value(json_object_get(o, "previous")), "sha256:4567");
        assert_string_equal(json_string_value(json_object_get(o, "source")), "pin");
        assert_true(json_is_integer(json_object_get(o, "registry_ms")));
        assert_int_equal(json_integer_value(json_object_get(o, "registry_ms")), 84);
        assert_string_equal(json_string_value(json_object_get(o, "decision")), "tag_moved");
        assert_string_equal(json_string_value(json_object_get(o, "mode")), "enforce");
        assert_string_equal(json_string_value(json_object_get(o, "error")), "boom \"quoted\"");
        json_decref(o);
}

static void test_format_omits(void **state)
{
        const struct pinlet_audit_record rec = {
                .method = "ImageStatus",
                .image = "app\xff\xfe:v1", /* not UTF-8: kept, with '?' */
                .registry_ms = -1,
                .decision = PINLET_AUDIT_PASSED_THROUGH,
                .mode = "audit",
        };
        const struct pinlet_audit_record only_ns = {
                .pod_namespace = "kube-system",
                .registry_ms = 0,
        };
        _cleanup_free_ char *line = pinlet_audit_format(&rec);
        _cleanup_free_ char *line2 = pinlet_audit_format(&only_ns);
        json_t *o;

        assert_non_null(line);
        o = json_loads(line, 0, NULL);
        assert_non_null(o);
        assert_int_equal(json_object_size(o), 5); /* time method image decision mode */
        assert_null(json_object_get(o, "pod"));
        assert_null(json_object_get(o, "registry_ms"));
        assert_null(json_object_get(o, "error"));
        assert_string_equal(json_string_value(json_object_get(o, "image")), "app??:v1");
        json_decref(o);

        o = json_loads(line2, 0, NULL);
        assert_non_null(o);
        assert_int_equal(json_object_size(json_object_get(o, "pod")), 1);
        assert_int_equal(json_integer_value(json_object_get(o, "registry_ms")), 0);
        json_decref(o);
}

#define N_WRITERS 8
#define N_RECORDS 400

struct writer {
        struct pinlet_audit *a;
        int id;
};

static void *writer_run(void *p)
{
        struct writer *w = p;
        char image[PINLET_AUDIT_FIELD_MAX + 1], pod[16];

        /* Long lines (5 fields of 1 KiB, the most one field keeps): more than a pipe's
         * atomic size (4 KiB), so interleaving would show. */
        memset(image, 'a' + w->id, sizeof(image) - 1);
        image[sizeof(image) - 1] = '\0';
        snprintf(pod, sizeof(pod), "w%d", w->id);
        for (int i = 0; i < N_RECORDS; i++) {
                const struct pinlet_audit_record rec = {
                        .method = "PullImage",
                        .pod_name = pod,
                        .container = image,
                        .image = image,
                        .resolved = image,
                        .previous = image,
                        .registry_ms = i,
                        .decision = PINLET_AUDIT_SUBSTITUTED,
                        .error = image,
                };
                assert_int_equal(pinlet_audit_write(w->a, &rec), 0);
        }
        return NULL;
}

static void test_concurrent(void **state)
{
        _cleanup_free_ char *path = path_in_tmp("deep/er/audit.jsonl");
        _cleanup_audit_ struct pinlet_audit *a = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        const struct pinlet_audit_options o = { .path = path };
        struct writer w[N_WRITERS];
        pthread_t t[N_WRITERS];
        int counts[N_WRITERS] = { 0 };
        uint64_t written, failed;
        json_t **lines;
        struct stat st;
        size_t n;

        umask(022);
        assert_int_equal(pinlet_audit_open(&o, &a, &err), 0);
        for (int i = 0; i < N_WRITERS; i++) {
                w[i] = (struct writer){ .a = a, .id = i };
                assert_int_equal(pthread_create(&t[i], NULL, writer_run, &w[i]), 0);
        }
        for (int i = 0; i < N_WRITERS; i++)
                pthread_join(t[i], NULL);

        n = read_lines(path, &lines);
        assert_int_equal(n, N_WRITERS * N_RECORDS);
        for (size_t i = 0; i < n; i++) {
                const char *pod = json_string_value(
                        json_object_get(json_object_get(lines[i], "pod"), "name"));
                const char *image = json_string_value(json_object_get(lines[i], "image"));
                int id;

                assert_non_null(pod);
                id = pod[1] - '0';
                assert_true(id >= 0 && id < N_WRITERS);
                assert_int_equal(strlen(image), PINLET_AUDIT_FIELD_MAX);
                assert_int_equal(image[0], 'a' + id);
                assert_int_equal(image[PINLET_AUDIT_FIELD_MAX - 1], 'a' + id);
                assert_string_equal(json_string_value(json_object_get(lines[i], "error")), image);
                counts[id]++;
        }
        for (int i = 0; i < N_WRITERS; i++)
                assert_int_equal(counts[i], N_RECORDS);
        free_lines(lines, n);
        pinlet_audit_stats(a, &written, &failed);
        assert_int_equal(written, N_WRITERS * N_RECORDS);
        assert_int_equal(failed, 0);

        /* file 0640, created directories 0750 */
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0640);
        {
                _cleanup_free_ char *dir = path_in_tmp("deep/er");
                assert_int_equal(stat(dir, &st), 0);
        }
        assert_int_equal(st.st_mode & 0777, 0750);
}

static void write_one(struct pinlet_audit *a, const char *image)
{
        const struct pinlet_audit_record rec = {
                .method = "PullImage",
                .image = image,
                .registry_ms = -1,
        };
        assert_int_equal(pinlet_audit_write(a, &rec), 0);
}

static void expect_images(const char *path, const char *const *images, size_t n_images)
{
        json_t **lines;
        size_t n = read_lines(path, &lines);

        assert_int_equal(n, n_images);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(json_string_value(json_object_get(lines[i], "image")),
                                    images[i]);
        free_lines(lines, n);
}

static void test_reopen(void **state)
{
        _cleanup_free_ char *path = path_in_tmp("rot/audit.jsonl");
        _cleanup_free_ char *rotated = path_in_tmp("rot/audit.jsonl.1");
        _cleanup_audit_ struct pinlet_audit *a = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        const struct pinlet_audit_options o = { .path = path };
        static const char *const old[] = { "one", "two" }, *const fresh[] = { "three", "four" };

        assert_int_equal(pinlet_audit_open(&o, &a, &err), 0);
        write_one(a, "one");
        assert_int_equal(rename(path, rotated), 0); /* logrotate */
        write_one(a, "two");                        /* still the old file until reopen */
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(pinlet_audit_reopen(a, &err), 0);
        write_one(a, "three");
        write_one(a, "four");
        expect_images(rotated, old, 2);
        expect_images(path, fresh, 2);

        /* reopen without rotation appends to the same file */
        assert_int_equal(pinlet_audit_reopen(a, &err), 0);
        write_one(a, "five");
        {
                static const char *const all[] = { "three", "four", "five" };
                expect_images(path, all, 3);
        }
}

/* logrotate while writers run: every record lands whole in one of the two files. */
static void test_reopen_under_load(void **state)
{
        _cleanup_free_ char *path = path_in_tmp("busy/audit.jsonl");
        _cleanup_free_ char *rotated = path_in_tmp("busy/audit.jsonl.1");
        _cleanup_audit_ struct pinlet_audit *a = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        const struct pinlet_audit_options o = { .path = path };
        struct writer w[4];
        pthread_t t[4];
        json_t **lines;
        size_t n1, n2;

        assert_int_equal(pinlet_audit_open(&o, &a, &err), 0);
        for (int i = 0; i < 4; i++) {
                w[i] = (struct writer){ .a = a, .id = i };
                assert_int_equal(pthread_create(&t[i], NULL, writer_run, &w[i]), 0);
        }
        usleep(20000);
        assert_int_equal(rename(path, rotated), 0);
        assert_int_equal(pinlet_audit_reopen(a, &err), 0);
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        n1 = read_lines(rotated, &lines); /* every line parses */
        free_lines(lines, n1);
        n2 = read_lines(path, &lines);
        free_lines(lines, n2);
        print_message("rotated %zu, new %zu\n", n1, n2);
        assert_int_equal(n1 + n2, 4 * N_RECORDS);
}

static void test_stderr(void **state)
{
        _cleanup_free_ char *path = path_in_tmp("stderr.out");
        _cleanup_free_ char *file = path_in_tmp("both.jsonl");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_audit *a = NULL;
        int saved = dup(STDERR_FILENO), fd;

        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0 && saved >= 0);
        assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
        close(fd);

        {
                const struct pinlet_audit_options o = { .path = "-" };
                assert_int_equal(pinlet_audit_open(&o, &a, &err), 0);
                write_one(a, "to-stderr");
                assert_int_equal(pinlet_audit_reopen(a, &err), 0); /* no file: no-op */
                pinlet_audit_close(a);
        }
        {
                const struct pinlet_audit_options o = { .path = file, .also_stderr = true };
                assert_int_equal(pinlet_audit_open(&o, &a, &err), 0);
                write_one(a, "both");
                pinlet_audit_close(a);
        }
        dup2(saved, STDERR_FILENO);
        close(saved);
        {
                static const char *const s[] = { "to-stderr", "both" }, *const f[] = { "both" };
                expect_images(path, s, 2);
                expect_images(file, f, 1);
        }
}

static void test_failures_counted(void **state)
{
        _cleanup_audit_ struct pinlet_audit *a = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        const struct pinlet_audit_options o = { .path = "/dev/full" };
        const struct pinlet_audit_record rec = { .method = "PullImage", .registry_ms = -1 };
        uint64_t written, failed;

        assert_int_equal(pinlet_audit_open(&o, &a, &err), 0);
        assert_int_equal(pinlet_audit_write(a, &rec), -ENOSPC);
        assert_int_equal(pinlet_audit_write(a, &rec), -ENOSPC);
        pinlet_audit_stats(a, &written, &failed);
        assert_int_equal(written, 0);
        assert_int_equal(failed, 2);
}

static void test_open_error(void **state)
{
        _cleanup_free_ char *blocker = path_in_tmp("file");
        _cleanup_free_ char *path = path_in_tmp("file/audit.jsonl");
        _cleanup_error_ struct pinlet_error *err = NULL;
        const struct pinlet_audit_options o = { .path = path };
        struct pinlet_audit *a = NULL;
        FILE *f = fopen(blocker, "w");

        assert_non_null(f);
        fclose(f);
        assert_true(pinlet_audit_open(&o, &a, &err) < 0);
        assert_null(a);
        assert_non_null(err);
        assert_non_null(strstr(err->message, path));
}

/* A megabyte from a client makes a record of about a kilobyte per field, with a marker. */
static void test_bounded_fields(void **state)
{
        const size_t big = 1u << 20;
        char *image = malloc(big + 1), *error = malloc(big + 1), *utf8 = malloc(2002);
        _cleanup_free_ char *line = NULL, *want = NULL, *marker = NULL;
        struct pinlet_audit_record rec = {
                .method = "PullImage",
                .registry_ms = -1,
        };
        const char *got;
        json_t *o;

        assert_true(image && error && utf8);
        memset(image, 'i', big);
        image[big] = '\0';
        memset(error, 'e', big);
        error[big] = '\0';
        rec.image = image;
        rec.error = error;
        rec.pod_uid = image;
        rec.resolved = image;
        line = pinlet_audit_format(&rec);
        assert_non_null(line);
        assert_true(strlen(line) < 8 * 1024); /* never megabytes: a few KiB */
        o = json_loads(line, 0, NULL);
        assert_non_null(o);
        assert_int_not_equal(asprintf(&marker, "...(truncated, %zu bytes)", big), -1);
        got = json_string_value(json_object_get(o, "image"));
        assert_int_equal(strlen(got), PINLET_AUDIT_FIELD_MAX + strlen(marker));
        assert_int_equal(strspn(got, "i"), PINLET_AUDIT_FIELD_MAX);
        assert_string_equal(got + PINLET_AUDIT_FIELD_MAX, marker);
        got = json_string_value(json_object_get(o, "error"));
        assert_int_equal(strspn(got, "e"), PINLET_AUDIT_FIELD_MAX);
        assert_string_equal(got + PINLET_AUDIT_FIELD_MAX, marker);
        got = json_string_value(json_object_get(json_object_get(o, "pod"), "uid"));
        assert_string_equal(got + PINLET_AUDIT_FIELD_MAX, marker);
        json_decref(o);
        free(line);

        /* exactly at the limit: kept whole, no marker */
        image[PINLET_AUDIT_FIELD_MAX] = '\0';
        rec = (struct pinlet_audit_record){ .image = image, .registry_ms = -1 };
        line = pinlet_audit_format(&rec);
        o = json_loads(line, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(o, "image")), image);
        json_decref(o);
        free(line);

        /* the cut never splits a UTF-8 character: "x" then 1000 two-byte "é"; byte 1024 is
         * the second byte of an "é", so the cut keeps 1023 bytes (x + 511 é) */
        utf8[0] = 'x';
        for (int i = 0; i < 1000; i++)
                memcpy(utf8 + 1 + 2 * i, "\xc3\xa9", 2);
        utf8[2001] = '\0';
        rec.image = utf8;
        line = pinlet_audit_format(&rec);
        assert_non_null(line);
        o = json_loads(line, 0, NULL);
        assert_non_null(o);
        got = json_string_value(json_object_get(o, "image"));
        assert_int_not_equal(asprintf(&want, "%.1023s...(truncated, 2001 bytes)", utf8), -1);
        assert_string_equal(got, want);
        json_decref(o);
        free(image);
        free(error);
        free(utf8);
}

/* A protobuf string may hold a NUL: with image_len the record shows the bytes after it. */
static void test_image_with_nul(void **state)
{
        static const char image[] = "app\0evil:v1";
        const struct pinlet_audit_record rec = {
                .image = image,
                .image_len = sizeof(image) - 1,
                .registry_ms = -1,
        };
        const struct pinlet_audit_record c_string = { .image = image, .registry_ms = -1 };
        _cleanup_free_ char *line = pinlet_audit_format(&rec);
        _cleanup_free_ char *line2 = pinlet_audit_format(&c_string);
        json_t *o;

        assert_non_null(line);
        assert_non_null(strstr(line, "\"image\":\"app\\u0000evil:v1\""));
        o = json_loads(line, JSON_ALLOW_NUL, NULL);
        assert_non_null(o);
        assert_int_equal(json_string_length(json_object_get(o, "image")), sizeof(image) - 1);
        assert_memory_equal(json_string_value(json_object_get(o, "image")), image,
                            sizeof(image) - 1);
        json_decref(o);
        /* image_len 0 means strlen, as before */
        assert_non_null(strstr(line2, "\"image\":\"app\""));
}

static void put(const char *path, const char *content)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        fputs(content, f);
        fclose(f);
}

static void expect_content(const char *path, const char *content)
{
        char buf[256] = {};
        FILE *f = fopen(path, "r");

        assert_non_null(f);
        fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        assert_string_equal(buf, content);
}

/* A symbolic link planted at the path: refused at open, refused (and counted) at reopen. */
static void test_symlink_refused(void **state)
{
        _cleanup_free_ char *dir = path_in_tmp("sym");
        _cleanup_free_ char *path = path_in_tmp("sym/audit.jsonl");
        _cleanup_free_ char *target = path_in_tmp("precious");
        _cleanup_free_ char *want = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        const struct pinlet_audit_options o = { .path = path };
        struct pinlet_audit *a = NULL;

        put(target, "do not touch\n");
        assert_int_equal(mkdir(dir, 0700), 0);
        assert_int_equal(symlink(target, path), 0);
        assert_int_equal(pinlet_audit_open(&o, &a, &err), -ELOOP);
        assert_null(a);
        assert_int_not_equal(asprintf(&want, "refusing to open %s: it is a symbolic link", path),
                             -1);
        assert_string_equal(err->message, want);
        pinlet_error_free(err);
        err = NULL;
        expect_content(target, "do not touch\n");

        /* at reopen (after logrotate renamed the file and someone planted a link) */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(pinlet_audit_open(&o, &a, &err), 0);
        write_one(a, "one");
        assert_int_equal(unlink(path), 0);
        assert_int_equal(symlink(target, path), 0);
        assert_int_equal(pinlet_audit_reopen_failures(a), 0);
        assert_int_equal(pinlet_audit_reopen(a, &err), -ELOOP);
        assert_string_equal(err->message, want);
        assert_int_equal(pinlet_audit_reopen_failures(a), 1);
        write_one(a, "two"); /* still the old (unlinked) file, never the target */
        pinlet_audit_close(a);
        expect_content(target, "do not touch\n");
}

/* The directory holding the log must be pinlet's alone. */
static void test_unsafe_directory(void **state)
{
        _cleanup_free_ char *dir = path_in_tmp("shared");
        _cleanup_free_ char *path = path_in_tmp("shared/audit.jsonl");
        _cleanup_free_ char *want = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        const struct pinlet_audit_options o = { .path = path };
        struct pinlet_audit *a = NULL;

        assert_int_equal(mkdir(dir, 0700), 0);
        assert_int_equal(chmod(dir, 0770), 0);
        assert_int_equal(pinlet_audit_open(&o, &a, &err), -EPERM);
        assert_null(a);
        assert_int_not_equal(asprintf(&want,
                                      "audit log directory %s is writable by group or others "
                                      "(mode 0770): chmod 0750 %s",
                                      dir, dir),
                             -1);
        assert_string_equal(err->message, want);
        assert_int_equal(access(path, F_OK), -1); /* nothing created */
        assert_int_equal(chmod(dir, 0750), 0);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_audit_open(&o, &a, &err), 0);
        pinlet_audit_close(a);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_format_omits),
                cmocka_unit_test(test_concurrent),
                cmocka_unit_test(test_reopen),
                cmocka_unit_test(test_reopen_under_load),
                cmocka_unit_test(test_stderr),
                cmocka_unit_test(test_failures_counted),
                cmocka_unit_test(test_open_error),
                cmocka_unit_test(test_bounded_fields),
                cmocka_unit_test(test_image_with_nul),
                cmocka_unit_test(test_symlink_refused),
                cmocka_unit_test(test_unsafe_directory),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
