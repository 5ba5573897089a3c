/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The live lock and its watcher: an edit in place, a rename over the file, a ConfigMap
 * "..data" swap, a file added to and removed from a directory, and a broken edit that
 * leaves the previous set in force. Every wait is for a condition (the reload counters,
 * the digest in force) with a deadline, never a fixed sleep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lock/lock.h"

#define D1    "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2    "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3    "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define NGINX "docker.io/library/nginx:1.25"

#define DEADLINE_MS 5000 /* generous: the watcher promises one second */

static char tmpdir[64];

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_briefly(void)
{
        struct timespec ts = { .tv_nsec = 5 * 1000 * 1000 };

        nanosleep(&ts, NULL);
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

static void write_text(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
}

static void write_lock(const char *path, const char *ref, const char *digest)
{
        _cleanup_free_ char *text = NULL;

        assert_true(asprintf(&text, "version: 1\nimages:\n  %s: %s\n", ref, digest) > 0);
        write_text(path, text);
}

/* The digest the lock holds for ref now, or "" when none. */
static bool digest_is(struct pinlet_lock *l, const char *ref, const char *want)
{
        _cleanup_lock_set_ struct pinlet_lock_set *s = pinlet_lock_get(l);
        const char *d = "";

        (void)pinlet_lock_set_lookup(s, ref, &d, NULL);
        return strcmp(d, want) == 0;
}

static void wait_digest(struct pinlet_lock *l, const char *ref, const char *want)
{
        int64_t deadline = now_ms() + DEADLINE_MS;

        while (!digest_is(l, ref, want)) {
                if (now_ms() > deadline)
                        fail_msg("%s: not locked to '%s' within %d ms", ref, want, DEADLINE_MS);
                pause_briefly();
        }
}

static void wait_failed(struct pinlet_lock *l, uint64_t more_than)
{
        int64_t deadline = now_ms() + DEADLINE_MS;
        struct pinlet_lock_stats st;

        for (;;) {
                pinlet_lock_get_stats(l, &st);
                if (st.reloads_failed > more_than)
                        return;
                if (now_ms() > deadline)
                        fail_msg("no failed reload within %d ms", DEADLINE_MS);
                pause_briefly();
        }
}

/* The counter follows the swap of the set: a reader may see the new set first. */
static void wait_ok(struct pinlet_lock *l, uint64_t at_least)
{
        int64_t deadline = now_ms() + DEADLINE_MS;
        struct pinlet_lock_stats st;

        for (;;) {
                pinlet_lock_get_stats(l, &st);
                if (st.reloads_ok >= at_least)
                        return;
                if (now_ms() > deadline)
                        fail_msg("%" PRIu64 " successful reloads, not %" PRIu64 ", after %d ms",
                                 (uint64_t)st.reloads_ok, at_least, DEADLINE_MS);
                pause_briefly();
        }
}

static void wait_size(struct pinlet_lock *l, size_t want)
{
        int64_t deadline = now_ms() + DEADLINE_MS;
        struct pinlet_lock_stats st;

        for (;;) {
                pinlet_lock_get_stats(l, &st);
                if (st.entries == want)
                        return;
                if (now_ms() > deadline)
                        fail_msg("lock holds %zu entries, not %zu, after %d ms", st.entries, want,
                                 DEADLINE_MS);
                pause_briefly();
        }
}

static int setup_dir(void **state)
{
        (void)state;
        strcpy(tmpdir, "/tmp/pinlet-test-lockw-XXXXXX");
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

/* A configured file: edited in place, replaced by a rename, broken (refused: the old set
 * stays), fixed again. A set taken before a reload keeps its own answers. */
static void test_file_edits(void **state)
{
        _cleanup_free_ char *f = path_in("app.yaml"), *tmp = path_in(".app.yaml.tmp");
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_lock_ struct pinlet_lock *l = NULL;
        _cleanup_lock_set_ struct pinlet_lock_set *held = NULL;
        char *paths[] = { f, NULL };
        struct pinlet_lock_stats st;
        const char *d;

        (void)state;
        write_lock(f, "nginx:1.25", D1);
        assert_int_equal(pinlet_lock_new(paths, NULL, &l, &err), 0);
        assert_int_equal(pinlet_lock_watch_start(l, &err), 0);
        assert_true(digest_is(l, NGINX, D1));
        held = pinlet_lock_get(l);

        write_lock(f, "nginx:1.25", D2); /* in place */
        wait_digest(l, NGINX, D2);
        assert_int_equal(pinlet_lock_set_lookup(held, NGINX, &d, NULL), 0);
        assert_string_equal(d, D1); /* the held set never changes */

        write_lock(tmp, "nginx:1.25", D3); /* rename over, as editors and `pinlet lock` do */
        assert_int_equal(rename(tmp, f), 0);
        wait_digest(l, NGINX, D3);

        pinlet_lock_get_stats(l, &st);
        write_text(f, "version: 1\nimages:\n  nginx:1.25: sha256:broken\n");
        wait_failed(l, st.reloads_failed);
        assert_true(digest_is(l, NGINX, D3)); /* refused whole: the old set is in force */
        assert_int_equal(pinlet_lock_reload(l, &err), -EINVAL);
        assert_non_null(strstr(pinlet_error_message(err, -EINVAL), "app.yaml:3: 'nginx:1.25': "
                                                                   "invalid digest"));

        write_lock(f, "nginx:1.25", D1); /* fixed */
        wait_digest(l, NGINX, D1);
        wait_ok(l, 3);
        pinlet_lock_get_stats(l, &st);
        assert_true(st.reloads_failed >= 1);
        assert_int_equal(st.entries, 1);
}

/* A ConfigMap volume configured as a directory: kubelet writes the new data into a new
 * timestamped directory, points "..data_tmp" at it and renames that over "..data". */
static void test_configmap_swap(void **state)
{
        _cleanup_free_ char *cm = path_in("cm"), *ts1 = path_in("cm/..ts1"),
                            *ts2 = path_in("cm/..ts2"), *f1 = path_in("cm/..ts1/app.yaml"),
                            *f2 = path_in("cm/..ts2/app.yaml"), *data = path_in("cm/..data"),
                            *data_tmp = path_in("cm/..data_tmp"), *link = path_in("cm/app.yaml"),
                            *added = path_in("cm/extra.yml");
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_lock_ struct pinlet_lock *l = NULL;
        char *paths[] = { cm, NULL };

        (void)state;
        assert_int_equal(mkdir(cm, 0755), 0);
        assert_int_equal(mkdir(ts1, 0755), 0);
        write_lock(f1, "nginx:1.25", D1);
        assert_int_equal(symlink("..ts1", data), 0);
        assert_int_equal(symlink("..data/app.yaml", link), 0);
        assert_int_equal(pinlet_lock_new(paths, NULL, &l, &err), 0);
        assert_int_equal(pinlet_lock_watch_start(l, &err), 0);
        assert_true(digest_is(l, NGINX, D1));

        assert_int_equal(mkdir(ts2, 0755), 0);
        write_lock(f2, "nginx:1.25", D2);
        assert_int_equal(symlink("..ts2", data_tmp), 0);
        assert_int_equal(rename(data_tmp, data), 0);
        wait_digest(l, NGINX, D2);

        /* A file added to the directory, then removed. */
        write_lock(added, "redis:7", D3);
        wait_size(l, 2);
        assert_true(digest_is(l, "docker.io/library/redis:7", D3));
        assert_int_equal(unlink(added), 0);
        wait_size(l, 1);
        assert_true(digest_is(l, "docker.io/library/redis:7", ""));
}

/* Free stops the watcher promptly, also with changes pending. */
static void test_stop(void **state)
{
        _cleanup_free_ char *f = path_in("a.yaml");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_lock *l = NULL;
        char *paths[] = { f, NULL };
        int64_t t0;

        (void)state;
        write_lock(f, "nginx:1.25", D1);
        assert_int_equal(pinlet_lock_new(paths, NULL, &l, &err), 0);
        assert_int_equal(pinlet_lock_watch_start(l, &err), 0);
        write_lock(f, "nginx:1.25", D2);
        t0 = now_ms();
        pinlet_lock_free(l);
        assert_true(now_ms() - t0 < 1000);
}

/* A lock that cannot be read at start is an error, not an empty lock. */
static void test_new_fails(void **state)
{
        _cleanup_free_ char *f = path_in("bad.yaml");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_lock *l = NULL;
        char *paths[] = { f, NULL };

        (void)state;
        write_text(f, "version: 3\n");
        assert_int_equal(pinlet_lock_new(paths, NULL, &l, &err), -EINVAL);
        assert_null(l);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_file_edits, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_configmap_swap, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_stop, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_new_fails, setup_dir, teardown_dir),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
