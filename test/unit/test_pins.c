/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "pins/pins.h"

#define D1    "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2    "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3    "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define NGINX "docker.io/library/nginx:1.25"
#define REDIS "docker.io/library/redis:7"
#define APP   "registry.example:5000/team/app:v1"

static char tmpdir[64];

static int setup(void **state)
{
        strcpy(tmpdir, "/tmp/pinlet-pins-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd);
}

static char *in_tmp(const char *fmt, const char *name)
{
        char *p;

        assert_int_not_equal(asprintf(&p, "%s/%s%s", tmpdir, name, fmt), -1);
        return p;
}

static void write_file(const char *path, const char *content)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
        fclose(f);
}

static size_t count_lines(const char *path)
{
        FILE *f = fopen(path, "r");
        size_t n = 0;
        int c;

        assert_non_null(f);
        while ((c = fgetc(f)) != EOF)
                n += c == '\n';
        fclose(f);
        return n;
}

static void expect_pin(struct pinlet_pins *p, const char *ref, const char *digest)
{
        _cleanup_free_ char *d = NULL;

        assert_int_equal(pinlet_pins_lookup(p, ref, &d), 0);
        assert_string_equal(d, digest);
}

static void expect_none(struct pinlet_pins *p, const char *ref)
{
        char *d = NULL;

        assert_int_equal(pinlet_pins_lookup(p, ref, &d), -ENOENT);
        assert_null(d);
}

static void record(struct pinlet_pins *p, const char *ref, const char *digest, const char *pod,
                   const char *expect_previous)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        static char sentinel[] = "sentinel";
        char *prev = sentinel;

        assert_int_equal(pinlet_pins_record(p, ref, digest, pod, &prev, &err), 0);
        assert_null(err);
        assert_ptr_not_equal(prev, sentinel); /* always written on success */
        if (expect_previous)
                assert_string_equal(prev, expect_previous);
        else
                assert_null(prev);
        free(prev);
}

/* list() collector: "ref digest pod,pod" per pin, oldest first. */
struct collected {
        char lines[64][1024];
        int64_t first[64], last[64];
        size_t n;
};

static int collect(void *userdata, const struct pinlet_pin *pin)
{
        struct collected *c = userdata;
        char *s = c->lines[c->n];
        int k = snprintf(s, 1024, "%s %s ", pin->reference, pin->digest);

        for (size_t i = 0; i < pin->n_pods; i++)
                k += snprintf(s + k, 1024 - (size_t)k, "%s%s", i ? "," : "", pin->pods[i]);
        c->first[c->n] = pin->first_used;
        c->last[c->n] = pin->last_used;
        c->n++;
        return 0;
}

static void test_record_lookup(void **state)
{
        _cleanup_pins_ struct pinlet_pins *p = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct collected c = {};
        char *prev;
        time_t t0 = time(NULL);

        assert_int_equal(pinlet_pins_open(NULL, 0, &p, &err), 0); /* memory only */
        expect_none(p, NGINX);
        record(p, NGINX, D1, "prod/web-0/uid-0", NULL);
        expect_pin(p, NGINX, D1);
        record(p, NGINX, D1, "prod/web-1/uid-1", NULL); /* same digest: not a move */
        record(p, NGINX, D1, NULL, NULL);
        expect_none(p, REDIS);
        assert_int_equal(pinlet_pins_size(p), 1);
        assert_int_equal(pinlet_pins_list(p, collect, &c), 1);
        assert_string_equal(c.lines[0], NGINX " " D1 " prod/web-0/uid-0,prod/web-1/uid-1");
        assert_true(c.first[0] >= t0 && c.first[0] <= c.last[0] && c.last[0] <= time(NULL));

        /* invalid input */
        assert_int_equal(pinlet_pins_record(p, "", D1, NULL, &prev, &err), -EINVAL);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_pins_record(p, NGINX, "nocolon", NULL, &prev, &err), -EINVAL);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_pins_record(p, NGINX, D1, "bad pod", &prev, &err), -EINVAL);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_pins_record(p, "a\nb", D1, NULL, &prev, &err), -EINVAL);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_pins_lookup(p, "", &prev), -EINVAL);
        assert_int_equal(pinlet_pins_touch(p, REDIS, NULL, &err), -ENOENT);
}

static void test_move(void **state)
{
        _cleanup_pins_ struct pinlet_pins *p = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct collected c = {};

        assert_int_equal(pinlet_pins_open(NULL, 0, &p, &err), 0);
        record(p, NGINX, D1, "prod/web-0/uid-0", NULL);
        record(p, NGINX, D2, "prod/web-1/uid-1", D1);
        expect_pin(p, NGINX, D2);
        record(p, NGINX, D2, NULL, NULL);
        record(p, NGINX, D3, NULL, D2);
        record(p, NGINX, D1, "prod/web-2/uid-2", D3); /* moving back is a move too */
        assert_int_equal(pinlet_pins_list(p, collect, &c), 1);
        /* the pods of the old digest are not the pods of the new one */
        assert_string_equal(c.lines[0], NGINX " " D1 " prod/web-2/uid-2");
        /* the previous digest output is optional */
        assert_int_equal(pinlet_pins_record(p, NGINX, D2, NULL, NULL, &err), 0);
        expect_pin(p, NGINX, D2);
}

static void test_pods_bounded(void **state)
{
        _cleanup_pins_ struct pinlet_pins *p = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct collected c = {};
        char pod[32];

        assert_int_equal(pinlet_pins_open(NULL, 0, &p, &err), 0);
        for (int i = 0; i < 10; i++) {
                snprintf(pod, sizeof(pod), "ns/p%d/u%d", i, i);
                record(p, NGINX, D1, pod, NULL);
        }
        assert_int_equal(pinlet_pins_touch(p, NGINX, "ns/p3/u3", &err), 0); /* to the end */
        assert_int_equal(pinlet_pins_list(p, collect, &c), 1);
        assert_string_equal(c.lines[0], NGINX " " D1 " ns/p2/u2,ns/p4/u4,ns/p5/u5,ns/p6/u6,"
                                              "ns/p7/u7,ns/p8/u8,ns/p9/u9,ns/p3/u3");
}

static void test_persistence(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "persist/state");
        _cleanup_free_ char *file = in_tmp("/" PINLET_PINS_FILE, "persist/state");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL;
        struct collected before = {}, after = {};
        struct stat st;

        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        record(p, NGINX, D1, "prod/web-0/uid-0", NULL);
        record(p, REDIS, D2, NULL, NULL);
        record(p, APP, D3, "dev/app-0/uid-9", NULL);
        record(p, NGINX, D2, "prod/web-1/uid-1", D1);
        assert_int_equal(pinlet_pins_touch(p, REDIS, "cache/redis-0/uid-7", &err), 0);
        assert_int_equal(pinlet_pins_list(p, collect, &before), 3);
        pinlet_pins_close(p);
        assert_int_equal(stat(file, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        assert_int_equal(pinlet_pins_load_report(p)->skipped, 0);
        assert_int_equal(pinlet_pins_load_report(p)->entries, 3);
        assert_null(pinlet_pins_load_report(p)->first_problem);
        assert_int_equal(pinlet_pins_list(p, collect, &after), 3);
        for (size_t i = 0; i < 3; i++) {
                assert_string_equal(before.lines[i], after.lines[i]); /* same order too */
                assert_int_equal(before.first[i], after.first[i]);
                assert_int_equal(before.last[i], after.last[i]);
        }
        assert_string_equal(after.lines[0], APP " " D3 " dev/app-0/uid-9");
        assert_string_equal(after.lines[1], NGINX " " D2 " prod/web-1/uid-1");
        assert_string_equal(after.lines[2], REDIS " " D2 " cache/redis-0/uid-7");
        /* the open compacted the log: one line per pin */
        assert_int_equal(count_lines(file), 3);
        pinlet_pins_close(p);
}

static void test_crash_safety(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "crash");
        _cleanup_free_ char *file = in_tmp("/" PINLET_PINS_FILE, "crash");
        _cleanup_free_ char *tmp = in_tmp("/.pins.jsonl.tmp.Ab12Cd", "crash");
        _cleanup_free_ char *corrupt = in_tmp("/" PINLET_PINS_FILE ".corrupt", "crash");
        _cleanup_error_ struct pinlet_error *err = NULL;
        const struct pinlet_pins_load_report *rep;
        struct pinlet_pins *p = NULL;
        char *longline, *content;

        assert_int_equal(mkdir(dir, 0700), 0);
        /* A temp file from a compaction that died before its rename: never loaded. */
        write_file(tmp, "{\"ref\":\"" APP "\",\"digest\":\"" D3 "\",\"first_used\":1,"
                        "\"last_used\":2,\"pods\":[]}\n");
        /* A log cut short by a crash in the middle of an append. */
        write_file(file, "{\"ref\":\"" NGINX "\",\"digest\":\"" D1 "\",\"first_used\":1,"
                         "\"last_used\":2,\"pods\":[\"a/b/c\"]}\n"
                         "{\"ref\":\"" REDIS "\",\"digest\":\"" D2 "\",\"first_used\":3,"
                         "\"last_used\":4}\n"
                         "{\"ref\":\"" NGINX "\",\"digest\":\"" D3 "\",\"first_us");
        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        rep = pinlet_pins_load_report(p);
        assert_int_equal(rep->entries, 2);
        assert_int_equal(rep->truncated, 1);
        assert_int_equal(rep->skipped, 0);
        expect_pin(p, NGINX, D1); /* the torn update did not happen */
        expect_pin(p, REDIS, D2);
        expect_none(p, APP);
        assert_int_equal(access(tmp, F_OK), -1); /* the leftover was removed */
        assert_int_equal(access(corrupt, F_OK), -1);
        /* appending after the repaired file works */
        record(p, APP, D3, NULL, NULL);
        pinlet_pins_close(p);
        assert_int_equal(count_lines(file), 3);

        /* Damaged lines in the middle: skipped, counted, the good ones kept. */
        longline = malloc(PINLET_PINS_LINE_MAX + 100);
        assert_non_null(longline);
        memset(longline, 'x', PINLET_PINS_LINE_MAX + 99);
        longline[PINLET_PINS_LINE_MAX + 99] = '\0';
        assert_int_not_equal(
                asprintf(&content,
                         "{\"ref\":\"" NGINX "\",\"digest\":\"" D1 "\",\"first_used\":1,"
                         "\"last_used\":2}\n"
                         "\x01\x02 garbage\n"
                         "{\"ref\":\"" APP "\",\"first_used\":1,\"last_used\":2}\n"
                         "{\"ref\":\"" APP "\",\"digest\":\"" D2 "\",\"first_used\":-1,"
                         "\"last_used\":2}\n"
                         "[1,2,3]\n"
                         "%s\n"
                         "\n"
                         "{\"ref\":\"" REDIS "\",\"digest\":\"" D2 "\",\"first_used\":3,"
                         "\"last_used\":4,\"pods\":[\"x/y/z\"],\"future_field\":true}\n",
                         longline),
                -1);
        write_file(file, content);
        free(content);
        free(longline);
        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        rep = pinlet_pins_load_report(p);
        assert_int_equal(rep->lines, 8);
        assert_int_equal(rep->skipped, 5);
        assert_int_equal(rep->truncated, 0);
        assert_int_equal(rep->entries, 2);
        assert_non_null(rep->first_problem);
        assert_string_equal(rep->first_problem, "line 2: not JSON");
        expect_pin(p, NGINX, D1);
        expect_pin(p, REDIS, D2);
        expect_none(p, APP);
        pinlet_pins_close(p);
        assert_int_equal(count_lines(corrupt), 8); /* the damaged file, kept for a human */
        assert_int_equal(count_lines(file), 2);

        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        assert_int_equal(pinlet_pins_load_report(p)->skipped, 0);
        pinlet_pins_close(p);
}

static void test_bound(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "bound");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL;

        assert_int_equal(pinlet_pins_open(dir, 3, &p, &err), 0);
        record(p, "r/a:1", D1, NULL, NULL);
        record(p, "r/b:1", D1, NULL, NULL);
        record(p, "r/c:1", D1, NULL, NULL);
        assert_int_equal(pinlet_pins_touch(p, "r/a:1", NULL, &err), 0);
        record(p, "r/d:1", D1, NULL, NULL);
        assert_int_equal(pinlet_pins_size(p), 3);
        expect_none(p, "r/b:1"); /* the least recently used */
        record(p, "r/c:1", D2, NULL, D1);
        record(p, "r/e:1", D1, NULL, NULL);
        expect_none(p, "r/a:1");
        pinlet_pins_close(p);

        /* the same set comes back */
        assert_int_equal(pinlet_pins_open(dir, 3, &p, &err), 0);
        assert_int_equal(pinlet_pins_size(p), 3);
        expect_pin(p, "r/c:1", D2);
        expect_pin(p, "r/d:1", D1);
        expect_pin(p, "r/e:1", D1);
        pinlet_pins_close(p);

        /* a smaller bound at load keeps the most recent */
        assert_int_equal(pinlet_pins_open(dir, 2, &p, &err), 0);
        assert_int_equal(pinlet_pins_load_report(p)->evicted, 1);
        expect_none(p, "r/d:1");
        expect_pin(p, "r/c:1", D2);
        expect_pin(p, "r/e:1", D1);
        pinlet_pins_close(p);
}

static void test_compaction(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "compact");
        _cleanup_free_ char *file = in_tmp("/" PINLET_PINS_FILE, "compact");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL;

        assert_int_equal(pinlet_pins_open(dir, 10, &p, &err), 0);
        record(p, NGINX, D1, NULL, NULL);
        /* two pods taking turns: each use changes the pod order, so each writes a line */
        for (int i = 0; i < 2000; i++)
                assert_int_equal(pinlet_pins_touch(p, NGINX, i % 2 ? "ns/a/u" : "ns/b/u", &err), 0);
        /* without compaction the log would hold 2001 lines */
        assert_true(count_lines(file) <= 2 * 1 + 1024 + 1);
        pinlet_pins_close(p);
        assert_int_equal(pinlet_pins_open(dir, 10, &p, &err), 0);
        expect_pin(p, NGINX, D1);
        pinlet_pins_close(p);
}

/* A use that changes nothing but last_used writes no line; everything else does. */
static void test_quiet_touch(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "quiet");
        _cleanup_free_ char *file = in_tmp("/" PINLET_PINS_FILE, "quiet");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL, *m = NULL;
        uint64_t gen;
        size_t lines;

        assert_int_equal(pinlet_pins_open(dir, 10, &p, &err), 0);
        record(p, NGINX, D1, "ns/a/u", NULL);
        record(p, REDIS, D1, NULL, NULL);
        lines = count_lines(file);
        gen = pinlet_pins_generation(p);
        for (int i = 0; i < 100; i++) {
                assert_int_equal(pinlet_pins_touch(p, NGINX, NULL, &err), 0);
                assert_int_equal(pinlet_pins_touch_nowait(p, NGINX, "ns/a/u"), 0);
                record(p, NGINX, D1, "ns/a/u", NULL);
        }
        assert_int_equal(count_lines(file), lines);
        assert_int_equal(pinlet_pins_generation(p), gen); /* last_used is no content */

        /* a new pod, another pod first, a move: a line each */
        assert_int_equal(pinlet_pins_touch(p, NGINX, "ns/b/u", &err), 0);
        assert_int_equal(count_lines(file), lines + 1);
        assert_int_equal(pinlet_pins_touch(p, NGINX, "ns/a/u", &err), 0);
        assert_int_equal(count_lines(file), lines + 2);
        assert_int_equal(pinlet_pins_generation(p), gen);
        record(p, NGINX, D2, NULL, D1);
        assert_int_equal(count_lines(file), lines + 3);
        assert_true(pinlet_pins_generation(p) != gen);
        gen = pinlet_pins_generation(p);
        assert_int_equal(pinlet_pins_forget(p, REDIS, &err), 1);
        assert_true(pinlet_pins_generation(p) != gen);
        pinlet_pins_close(p);

        assert_int_equal(pinlet_pins_open(dir, 10, &p, &err), 0);
        expect_pin(p, NGINX, D2);
        expect_none(p, REDIS);
        pinlet_pins_close(p);

        /* recency follows quiet uses all the same: the pin not used is the one evicted */
        assert_int_equal(pinlet_pins_open(NULL, 2, &m, &err), 0);
        record(m, NGINX, D1, NULL, NULL);
        record(m, REDIS, D1, NULL, NULL);
        assert_int_equal(pinlet_pins_touch_nowait(m, NGINX, NULL), 0);
        record(m, APP, D1, NULL, NULL);
        expect_pin(m, NGINX, D1);
        expect_none(m, REDIS);
        pinlet_pins_close(m);
}

/* Generations are unique across stores: equal numbers mean the same content. */
static void test_generation(void **state)
{
        _cleanup_pins_ struct pinlet_pins *a = NULL, *b = NULL;
        uint64_t ga, gb;

        assert_int_equal(pinlet_pins_open(NULL, 0, &a, NULL), 0);
        assert_int_equal(pinlet_pins_open(NULL, 0, &b, NULL), 0);
        ga = pinlet_pins_generation(a);
        gb = pinlet_pins_generation(b);
        assert_true(ga != gb);
        record(a, NGINX, D1, NULL, NULL);
        assert_true(pinlet_pins_generation(a) != ga && pinlet_pins_generation(a) != gb);
        assert_int_equal(pinlet_pins_generation(b), gb);
}

static void test_forget(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "forget");
        _cleanup_free_ char *file = in_tmp("/" PINLET_PINS_FILE, "forget");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL, *ro = NULL;
        struct collected c = {};

        /* in memory */
        assert_int_equal(pinlet_pins_open(NULL, 0, &p, &err), 0);
        record(p, NGINX, D1, NULL, NULL);
        assert_int_equal(pinlet_pins_forget(p, NGINX, &err), 1);
        expect_none(p, NGINX);
        assert_int_equal(pinlet_pins_size(p), 0);
        assert_int_equal(pinlet_pins_forget(p, NGINX, &err), 0); /* unknown: fine */
        assert_int_equal(pinlet_pins_forget(p, "", &err), -EINVAL);
        pinlet_error_free(err);
        err = NULL;
        record(p, NGINX, D2, NULL, NULL); /* a new pin, not a move */
        expect_pin(p, NGINX, D2);
        pinlet_pins_close(p);

        /* persisted: a deletion line, synced, understood by both loaders */
        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        record(p, NGINX, D1, NULL, NULL);
        record(p, REDIS, D2, NULL, NULL);
        record(p, APP, D3, NULL, NULL);
        assert_int_equal(pinlet_pins_forget(p, NGINX, &err), 1);
        assert_null(err);
        assert_int_equal(pinlet_pins_forget(p, "docker.io/library/unknown:1", &err), 0);
        assert_int_equal(count_lines(file), 4); /* 3 pins + 1 deletion; unknown wrote none */
        assert_int_equal(pinlet_pins_open_readonly(dir, 0, &ro, &err), 0);
        assert_int_equal(pinlet_pins_load_report(ro)->skipped, 0);
        assert_int_equal(pinlet_pins_load_report(ro)->entries, 2);
        expect_none(ro, NGINX);
        expect_pin(ro, REDIS, D2);
        assert_int_equal(pinlet_pins_forget(ro, REDIS, &err), -EROFS);
        pinlet_error_free(err);
        err = NULL;
        pinlet_pins_close(ro);
        pinlet_pins_close(p);

        /* reopen: still gone, and compaction dropped the deletion */
        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        assert_int_equal(pinlet_pins_load_report(p)->skipped, 0);
        expect_none(p, NGINX);
        assert_int_equal(pinlet_pins_list(p, collect, &c), 2);
        assert_string_equal(c.lines[0], REDIS " " D2 " ");
        assert_string_equal(c.lines[1], APP " " D3 " ");
        assert_int_equal(count_lines(file), 2);
        /* a forgotten then re-recorded pin survives a reopen */
        record(p, NGINX, D3, NULL, NULL);
        pinlet_pins_close(p);
        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        expect_pin(p, NGINX, D3);
        pinlet_pins_close(p);
}

static void test_forget_compaction(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "forget-compact");
        _cleanup_free_ char *file = in_tmp("/" PINLET_PINS_FILE, "forget-compact");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL;

        /* record/forget cycles: the deletions count towards compaction like any line */
        assert_int_equal(pinlet_pins_open(dir, 10, &p, &err), 0);
        record(p, REDIS, D2, NULL, NULL);
        for (int i = 0; i < 700; i++) {
                record(p, NGINX, D1, NULL, NULL);
                assert_int_equal(pinlet_pins_forget(p, NGINX, &err), 1);
        }
        assert_true(count_lines(file) <= 2 * 1 + 1024 + 1);
        pinlet_pins_close(p);
        assert_int_equal(pinlet_pins_open(dir, 10, &p, &err), 0);
        expect_none(p, NGINX);
        expect_pin(p, REDIS, D2);
        assert_int_equal(count_lines(file), 1);
        pinlet_pins_close(p);
}

static void test_lock_and_readonly(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "lock");
        _cleanup_free_ char *file = in_tmp("/" PINLET_PINS_FILE, "lock");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL, *p2 = NULL, *ro = NULL;
        char *prev = NULL;
        struct stat before, after;

        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        record(p, NGINX, D1, NULL, NULL);
        assert_int_equal(pinlet_pins_open(dir, 0, &p2, &err), -EBUSY);
        assert_null(p2);
        assert_non_null(strstr(err->message, "in use"));
        pinlet_error_free(err);
        err = NULL;

        /* a reader needs no lock, sees the writer's pins and writes nothing */
        assert_int_equal(stat(file, &before), 0);
        assert_int_equal(pinlet_pins_open_readonly(dir, 0, &ro, &err), 0);
        expect_pin(ro, NGINX, D1);
        assert_int_equal(pinlet_pins_record(ro, REDIS, D2, NULL, &prev, &err), -EROFS);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_pins_touch(ro, NGINX, NULL, &err), -EROFS);
        pinlet_error_free(err);
        err = NULL;
        pinlet_pins_close(ro);
        assert_int_equal(stat(file, &after), 0);
        assert_int_equal(before.st_ino, after.st_ino);
        assert_int_equal(before.st_size, after.st_size);

        pinlet_pins_close(p);
        assert_int_equal(pinlet_pins_open(dir, 0, &p2, &err), 0); /* lock released */
        pinlet_pins_close(p2);

        /* a missing directory is an empty store for a reader, and is not created */
        {
                _cleanup_free_ char *none = in_tmp("", "does-not-exist");
                assert_int_equal(pinlet_pins_open_readonly(none, 0, &ro, &err), 0);
                assert_int_equal(pinlet_pins_size(ro), 0);
                pinlet_pins_close(ro);
                assert_int_equal(access(none, F_OK), -1);
        }
}

#define N_THREADS 8
#define N_OPS     300

struct worker {
        struct pinlet_pins *p;
        int id;
};

static const char *const digests[] = { D1, D2, D3 };

static void *worker_run(void *arg)
{
        struct worker *w = arg;
        char ref[64], pod[64];

        for (int i = 0; i < N_OPS; i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                _cleanup_free_ char *prev = NULL, *d = NULL;
                int r;

                snprintf(ref, sizeof(ref), "docker.io/t/app%d:v1", (i * 7 + w->id) % 20);
                snprintf(pod, sizeof(pod), "ns/w%d/%d", w->id, i);
                assert_int_equal(
                        pinlet_pins_record(w->p, ref, digests[(i + w->id) % 3], pod, &prev, &err),
                        0);
                r = pinlet_pins_lookup(w->p, ref, &d);
                assert_int_equal(r, 0);
                /* with a new pod, so that the touch is written: a quiet touch (no pod)
                 * moves the pin in memory only, and the reload below compares order */
                snprintf(pod, sizeof(pod), "ns/w%d/t%d", w->id, i);
                if (i % 5 == 0)
                        assert_int_equal(pinlet_pins_touch(w->p, ref, pod, &err), 0);
        }
        return NULL;
}

static void test_concurrent(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "threads");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL;
        struct collected before = {}, after = {};
        struct worker w[N_THREADS];
        pthread_t t[N_THREADS];

        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        for (int i = 0; i < N_THREADS; i++) {
                w[i] = (struct worker){ .p = p, .id = i };
                assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
        }
        for (int i = 0; i < N_THREADS; i++)
                pthread_join(t[i], NULL);
        assert_int_equal(pinlet_pins_size(p), 20);
        assert_int_equal(pinlet_pins_list(p, collect, &before), 20);
        pinlet_pins_close(p);

        /* the log's order matched the order of the changes: reloading gives the same state */
        assert_int_equal(pinlet_pins_open_readonly(dir, 0, &p, &err), 0);
        assert_int_equal(pinlet_pins_load_report(p)->skipped, 0);
        assert_int_equal(pinlet_pins_list(p, collect, &after), 20);
        for (size_t i = 0; i < 20; i++)
                assert_string_equal(before.lines[i], after.lines[i]);
        pinlet_pins_close(p);
}

static void test_load_data(void **state)
{
        _cleanup_pins_ struct pinlet_pins *p = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        static const char data[] = "{\"ref\":\"a/b:c\",\"digest\":\"sha256:ab\",\"first_used\":5,"
                                   "\"last_used\":6,\"pods\":[\"1\",\"2\",\"1\"]}\n"
                                   "{\"ref\":\"a/b:c\",\"digest\":\"sha256:ab\",\"ref\":\"x\","
                                   "\"first_used\":5,\"last_used\":6}\n"
                                   "{\"ref\":\"a b\",\"digest\":\"sha256:ab\",\"first_used\":5,"
                                   "\"last_used\":6}\n"
                                   "{\"ref\":\"q\",\"digest\":\"sha256:\",\"first_used\":5,"
                                   "\"last_used\":6}\n"
                                   "{\"ref\":\"q\",\"digest\":\"sha256:1\",\"first_used\":5,"
                                   "\"last_used\":6,\"pods\":\"x\"}";
        static const char deletions[] =
                "{\"ref\":\"d/e:f\",\"digest\":\"sha256:cd\",\"first_used\":1,"
                "\"last_used\":2}\n"
                "{\"ref\":\"g/h:i\",\"digest\":\"sha256:cd\",\"first_used\":1,"
                "\"last_used\":2}\n"
                "{\"ref\":\"d/e:f\",\"forgotten\":true}\n"
                "{\"ref\":\"g/h:i\",\"forgotten\":false}\n"
                "{\"ref\":\"x y\",\"forgotten\":true}\n"
                "{\"forgotten\":true}\n"
                "{\"ref\":\"never/pinned:1\",\"forgotten\":true}\n";
        struct collected c = {};

        assert_int_equal(pinlet_pins_open(NULL, 0, &p, &err), 0);
        assert_int_equal(pinlet_pins_load_data(p, data, strlen(data)), 0);
        assert_int_equal(pinlet_pins_load_report(p)->skipped, 3);   /* duplicate key, space,
                                                                      empty hex */
        assert_int_equal(pinlet_pins_load_report(p)->truncated, 1); /* last: no '\n', bad */
        assert_int_equal(pinlet_pins_list(p, collect, &c), 1);
        assert_string_equal(c.lines[0], "a/b:c sha256:ab 2,1");
        assert_int_equal(c.first[0], 5);
        assert_int_equal(c.last[0], 6);

        /* deletion lines: "forgotten" must be true and "ref" valid; unknown refs are fine */
        assert_int_equal(pinlet_pins_load_data(p, deletions, strlen(deletions)), 0);
        assert_int_equal(pinlet_pins_load_report(p)->skipped, 3 + 3);
        c.n = 0;
        assert_int_equal(pinlet_pins_list(p, collect, &c), 2);
        assert_string_equal(c.lines[0], "a/b:c sha256:ab 2,1");
        assert_string_equal(c.lines[1], "g/h:i sha256:cd ");
}

static void expect_error(int got, int code, struct pinlet_error **err, const char *message)
{
        assert_int_equal(got, code);
        assert_non_null(*err);
        assert_string_equal((*err)->message, message);
        pinlet_error_free(*err);
        *err = NULL;
}

static void expect_content(const char *path, const char *content)
{
        char buf[256] = {};
        FILE *f = fopen(path, "r");

        assert_non_null(f);
        assert_true(fread(buf, 1, sizeof(buf) - 1, f) <= strlen(content));
        fclose(f);
        assert_string_equal(buf, content);
}

/* A symbolic link planted at pins.jsonl or pins.lock: the store does not open, and the
 * link's target is neither read as a store nor written. */
static void test_symlink_refused(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "sym");
        _cleanup_free_ char *file = in_tmp("/" PINLET_PINS_FILE, "sym");
        _cleanup_free_ char *lock = in_tmp("/pins.lock", "sym");
        _cleanup_free_ char *target = in_tmp("", "precious");
        _cleanup_free_ char *want = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL;

        assert_int_equal(mkdir(dir, 0700), 0);
        write_file(target, "do not touch\n");
        assert_int_equal(symlink(target, file), 0);
        assert_int_not_equal(
                asprintf(&want, "pin store: refusing to open %s: it is a symbolic link", file), -1);
        expect_error(pinlet_pins_open(dir, 0, &p, &err), -ELOOP, &err, want);
        assert_null(p);
        expect_error(pinlet_pins_open_readonly(dir, 0, &p, &err), -ELOOP, &err, want);
        expect_content(target, "do not touch\n");

        assert_int_equal(unlink(file), 0);
        assert_int_equal(unlink(lock), 0); /* the first attempt had created it */
        assert_int_equal(symlink(target, lock), 0);
        free(want);
        assert_int_not_equal(
                asprintf(&want, "pin store: refusing to open %s: it is a symbolic link", lock), -1);
        expect_error(pinlet_pins_open(dir, 0, &p, &err), -ELOOP, &err, want);
        expect_content(target, "do not touch\n");
        assert_int_equal(access(file, F_OK), -1); /* nothing written either */

        assert_int_equal(unlink(lock), 0);
        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        pinlet_pins_close(p);
}

/* The state directory must be pinlet's alone: an existing one is checked, not changed. */
static void test_unsafe_directory(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "shared");
        _cleanup_free_ char *file = in_tmp("/" PINLET_PINS_FILE, "shared");
        _cleanup_free_ char *want = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL;
        struct stat st;

        assert_int_equal(mkdir(dir, 0700), 0);
        assert_int_equal(chmod(dir, 0775), 0);
        assert_int_not_equal(asprintf(&want,
                                      "state directory %s is writable by group or others "
                                      "(mode 0775): chmod 0700 %s",
                                      dir, dir),
                             -1);
        expect_error(pinlet_pins_open(dir, 0, &p, &err), -EPERM, &err, want);
        assert_int_equal(access(file, F_OK), -1);
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0775); /* left for the operator to fix */
        assert_int_equal(chmod(dir, 0755), 0);
        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        pinlet_pins_close(p);
}

static off_t file_size(const char *path)
{
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return st.st_size;
}

/* A change whose line cannot be written changes nothing: the write failure is injected
 * with RLIMIT_FSIZE, which cuts a write(2) short at a byte offset and fails the next
 * one with EFBIG, the way a disk filling up mid-line would. */
static void test_failed_write(void **state)
{
        _cleanup_free_ char *dir = in_tmp("", "failing");
        _cleanup_free_ char *file = in_tmp("/" PINLET_PINS_FILE, "failing");
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL;
        struct rlimit saved, lim;
        char *prev = NULL;
        struct stat st;
        off_t size;

        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        record(p, NGINX, D1, "prod/web-0/uid-0", NULL);
        record(p, REDIS, D1, NULL, NULL);
        size = file_size(file);
        /* the reserve for deletions is allocated past the end of the file */
        assert_int_equal(stat(file, &st), 0);
        assert_true((off_t)st.st_blocks * 512 >= size + 64 * 1024);

        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
        lim = saved;
        lim.rlim_cur = (rlim_t)size + 10; /* 10 bytes of the next line fit */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

        /* a move that cannot be written: no move */
        assert_int_equal(pinlet_pins_record(p, NGINX, D2, "prod/web-1/uid-1", &prev, &err), -EFBIG);
        assert_non_null(err);
        assert_non_null(strstr(err->message, file));
        pinlet_error_free(err);
        err = NULL;
        assert_null(prev);
        expect_pin(p, NGINX, D1);
        assert_int_equal(file_size(file), size); /* the 10 bytes were taken back */
        /* nor a new pin, nor a touch */
        assert_int_equal(pinlet_pins_record(p, APP, D3, NULL, &prev, &err), -EFBIG);
        pinlet_error_free(err);
        err = NULL;
        expect_none(p, APP);
        assert_int_equal(pinlet_pins_touch(p, NGINX, "x/y/z", &err), -EFBIG);
        pinlet_error_free(err);
        err = NULL;
        {
                struct collected c = {};
                assert_int_equal(pinlet_pins_list(p, collect, &c), 2);
                assert_string_equal(c.lines[0], NGINX " " D1 " prod/web-0/uid-0");
        }
        /* a forget that cannot be written: memory forgets all the same, the error says so */
        assert_int_equal(pinlet_pins_forget(p, REDIS, &err), -EFBIG);
        pinlet_error_free(err);
        err = NULL;
        expect_none(p, REDIS);
        assert_int_equal(file_size(file), size);

        assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
        /* appending works again, after a whole file (no remains of the failed lines) */
        record(p, NGINX, D2, NULL, D1);
        pinlet_pins_close(p);
        assert_int_equal(count_lines(file), 3);
        assert_int_equal(pinlet_pins_open(dir, 0, &p, &err), 0);
        assert_int_equal(pinlet_pins_load_report(p)->skipped, 0);
        assert_int_equal(pinlet_pins_load_report(p)->truncated, 0);
        expect_pin(p, NGINX, D2);
        expect_none(p, APP);
        /* the forget that failed to reach the file: documented, the pin is back */
        expect_pin(p, REDIS, D1);
        pinlet_pins_close(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_record_lookup),   cmocka_unit_test(test_move),
                cmocka_unit_test(test_pods_bounded),    cmocka_unit_test(test_persistence),
                cmocka_unit_test(test_crash_safety),    cmocka_unit_test(test_bound),
                cmocka_unit_test(test_compaction),      cmocka_unit_test(test_quiet_touch),
                cmocka_unit_test(test_generation),      cmocka_unit_test(test_lock_and_readonly),
                cmocka_unit_test(test_concurrent),      cmocka_unit_test(test_load_data),
                cmocka_unit_test(test_forget),          cmocka_unit_test(test_forget_compaction),
                cmocka_unit_test(test_symlink_refused), cmocka_unit_test(test_unsafe_directory),
                cmocka_unit_test(test_failed_write),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
