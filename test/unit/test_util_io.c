/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/io.h"

static char tmpdir[64];

static int setup(void **state)
{
        strcpy(tmpdir, "/tmp/pinlet-io-XXXXXX");
        umask(022);
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd);
}

static char *in_tmp(const char *name)
{
        char *p;

        assert_int_not_equal(asprintf(&p, "%s/%s", tmpdir, name), -1);
        return p;
}

static void put_file(const char *path, const void *data, size_t n)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, n), (ssize_t)n);
        close(fd);
}

static mode_t mode_of(const char *path)
{
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return st.st_mode & 07777;
}

/* ---- write_all --------------------------------------------------------------------- */

#define BIG (4u << 20)

struct reader {
        int fd;
        unsigned char *got;
        size_t n;
};

static void *reader_run(void *arg)
{
        struct reader *r = arg;

        for (;;) {
                /* small reads keep the pipe full, so the writer blocks and gets interrupted */
                ssize_t k = read(r->fd, r->got + r->n, r->n + 4096 <= BIG ? 4096 : BIG - r->n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return NULL;
                r->n += (size_t)k;
        }
}

static void on_alarm(int sig)
{
        (void)sig;
}

static void test_write_all(void **state)
{
        struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART: EINTR, short writes */
        struct itimerval every_ms = { { 0, 1000 }, { 0, 1000 } }, off = {};
        struct reader r = {};
        unsigned char *data = malloc(BIG);
        pthread_t t;
        int fds[2], fd;

        assert_non_null(data);
        for (size_t i = 0; i < BIG; i++)
                data[i] = (unsigned char)(i * 7 + i / 4099);
        r.got = malloc(BIG);
        assert_non_null(r.got);
        assert_int_equal(pipe(fds), 0);
        r.fd = fds[0];
        assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
        assert_int_equal(pthread_create(&t, NULL, reader_run, &r), 0);
        assert_int_equal(setitimer(ITIMER_REAL, &every_ms, NULL), 0);
        assert_int_equal(pinlet_io_write_all(fds[1], data, BIG), 0);
        assert_int_equal(setitimer(ITIMER_REAL, &off, NULL), 0);
        close(fds[1]);
        pthread_join(t, NULL);
        close(fds[0]);
        assert_int_equal(r.n, BIG);
        assert_memory_equal(r.got, data, BIG);
        free(r.got);
        free(data);

        /* errors come back as -errno */
        fd = open("/dev/full", O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(pinlet_io_write_all(fd, "x", 1), -ENOSPC);
        close(fd);
        signal(SIGPIPE, SIG_IGN);
        assert_int_equal(pipe(fds), 0);
        close(fds[0]);
        assert_int_equal(pinlet_io_write_all(fds[1], "x", 1), -EPIPE);
        close(fds[1]);
        assert_int_equal(pinlet_io_write_all(-1, "x", 1), -EBADF);
        assert_int_equal(pinlet_io_write_all(-1, "", 0), 0); /* nothing to write */
}

/* ---- read_file --------------------------------------------------------------------- */

static void test_read_file(void **state)
{
        _cleanup_free_ char *path = in_tmp("data"), *link = in_tmp("data.link");
        _cleanup_free_ char *missing = in_tmp("missing");
        static const char content[] = "ab\0cd"; /* a NUL inside: the size says where it ends */
        struct pinlet_error *err = NULL;
        char *data = NULL;
        size_t size = 0;

        put_file(path, content, 5);
        assert_int_equal(pinlet_io_read_file(path, 5, 0, &data, &size, &err), 0);
        assert_int_equal(size, 5);
        assert_memory_equal(data, content, 5);
        assert_int_equal(data[5], '\0');
        free(data);
        data = NULL;

        /* one byte over the cap */
        assert_int_equal(pinlet_io_read_file(path, 4, 0, &data, &size, &err), -E2BIG);
        assert_null(data);
        assert_non_null(err);
        assert_non_null(strstr(err->message, path));
        pinlet_error_free(err);
        err = NULL;
        /* a file whose stat size is 0 (procfs) is still bounded while reading */
        assert_int_equal(pinlet_io_read_file("/proc/self/maps", 16, 0, &data, NULL, &err), -E2BIG);
        pinlet_error_free(err);
        err = NULL;

        /* an empty file is an empty string */
        put_file(path, "", 0);
        assert_int_equal(pinlet_io_read_file(path, 0, 0, &data, &size, NULL), 0);
        assert_int_equal(size, 0);
        assert_string_equal(data, "");
        free(data);
        data = NULL;

        assert_int_equal(pinlet_io_read_file(missing, 10, 0, &data, &size, NULL), -ENOENT);

        /* symbolic links: followed unless refused */
        put_file(path, "xyz", 3);
        assert_int_equal(symlink(path, link), 0);
        assert_int_equal(pinlet_io_read_file(link, 10, 0, &data, NULL, NULL), 0);
        assert_string_equal(data, "xyz");
        free(data);
        data = NULL;
        assert_int_equal(pinlet_io_read_file(link, 10, PINLET_IO_NOFOLLOW, &data, NULL, &err),
                         -ELOOP);
        assert_null(data);
        assert_non_null(err);
        assert_non_null(strstr(err->message, "it is a symbolic link"));
        pinlet_error_free(err);
}

/* ---- mkdir_p ----------------------------------------------------------------------- */

static void test_mkdir_p(void **state)
{
        _cleanup_free_ char *deep = in_tmp("m/a//b/c/"), *a = in_tmp("m/a"), *c = in_tmp("m/a/b/c");
        _cleanup_free_ char *file = in_tmp("m/file"), *under = in_tmp("m/file/x");
        _cleanup_free_ char *sock = in_tmp("s/t/pinlet.sock"), *sdir = in_tmp("s/t");

        assert_int_equal(pinlet_io_mkdir_p(deep, 0700), 0);
        assert_int_equal(mode_of(a), 0700);
        assert_int_equal(mode_of(c), 0700);
        /* existing directories are fine, and not changed */
        assert_int_equal(chmod(a, 0755), 0);
        assert_int_equal(pinlet_io_mkdir_p(c, 0700), 0);
        assert_int_equal(mode_of(a), 0755);
        /* the umask applies, as with mkdir(2) */
        umask(077);
        assert_int_equal(pinlet_io_mkdir_parents(sock, 0755), 0);
        umask(022);
        assert_int_equal(mode_of(sdir), 0700);
        assert_int_equal(access(sock, F_OK), -1); /* only its directory */
        /* a file in the way */
        put_file(file, "", 0);
        assert_int_equal(pinlet_io_mkdir_p(file, 0700), -ENOTDIR);
        assert_int_equal(pinlet_io_mkdir_p(under, 0700), -ENOTDIR);
        /* names without a directory part need nothing */
        assert_int_equal(pinlet_io_mkdir_parents("relative-name", 0700), 0);
        assert_int_equal(pinlet_io_mkdir_parents("/root-level", 0700), 0);
        assert_int_equal(pinlet_io_mkdir_p("", 0700), -ENOENT);
}

/* ---- open -------------------------------------------------------------------------- */

static void test_open_nofollow(void **state)
{
        _cleanup_free_ char *target = in_tmp("o-target"), *link = in_tmp("o-link");
        _cleanup_free_ char *dangling = in_tmp("o-dangling"), *nowhere = in_tmp("o-nowhere");
        _cleanup_free_ char *plain = in_tmp("o-plain"), *expect = NULL;
        struct pinlet_error *err = NULL;
        char buf[16] = {};
        int fd;

        put_file(target, "precious", 8);
        assert_int_equal(symlink(target, link), 0);
        fd = pinlet_io_open(link, O_WRONLY | O_APPEND | O_CREAT, 0640, &err);
        assert_int_equal(fd, -ELOOP);
        assert_non_null(err);
        assert_int_not_equal(asprintf(&expect, "refusing to open %s: it is a symbolic link", link),
                             -1);
        assert_string_equal(err->message, expect);
        pinlet_error_free(err);
        err = NULL;
        /* the target is untouched */
        fd = open(target, O_RDONLY);
        assert_int_equal(read(fd, buf, sizeof(buf)), 8);
        close(fd);
        assert_string_equal(buf, "precious");

        /* a dangling link is not a way to create a file elsewhere either */
        assert_int_equal(symlink(nowhere, dangling), 0);
        assert_int_equal(pinlet_io_open(dangling, O_WRONLY | O_CREAT, 0600, &err), -ELOOP);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(access(nowhere, F_OK), -1);

        /* a regular file opens, close-on-exec */
        fd = pinlet_io_open(plain, O_WRONLY | O_CREAT | O_EXCL, 0600, &err);
        assert_true(fd >= 0);
        assert_null(err);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
        assert_int_equal(mode_of(plain), 0600);
        /* other errors name the path */
        assert_int_equal(pinlet_io_open(plain, O_WRONLY | O_CREAT | O_EXCL, 0600, &err), -EEXIST);
        assert_non_null(strstr(err->message, plain));
        pinlet_error_free(err);
}

/* ---- check_dir --------------------------------------------------------------------- */

static void expect_refused(const char *dir, int code, const char *message)
{
        struct pinlet_error *err = NULL;

        assert_int_equal(pinlet_io_check_dir(dir, "state directory", 0700, &err), code);
        assert_non_null(err);
        assert_string_equal(err->message, message);
        pinlet_error_free(err);
}

static void test_check_dir(void **state)
{
        _cleanup_free_ char *d = in_tmp("c"), *file = in_tmp("c-file"), *none = in_tmp("c-none");
        _cleanup_free_ char *msg = NULL;

        assert_int_equal(mkdir(d, 0700), 0);
        assert_int_equal(pinlet_io_check_dir(d, "state directory", 0700, NULL), 0);
        assert_int_equal(chmod(d, 0755), 0); /* readable by others: their business */
        assert_int_equal(pinlet_io_check_dir(d, "state directory", 0700, NULL), 0);

        assert_int_equal(chmod(d, 0775), 0);
        assert_int_not_equal(asprintf(&msg,
                                      "state directory %s is writable by group or others "
                                      "(mode 0775): chmod 0700 %s",
                                      d, d),
                             -1);
        expect_refused(d, -EPERM, msg);
        free(msg);
        assert_int_equal(chmod(d, 01777), 0); /* like /tmp: the sticky bit does not help */
        assert_int_not_equal(asprintf(&msg,
                                      "state directory %s is writable by group or others "
                                      "(mode 1777): chmod 0700 %s",
                                      d, d),
                             -1);
        expect_refused(d, -EPERM, msg);
        free(msg);
        msg = NULL;
        assert_int_equal(chmod(d, 0700), 0);

        if (geteuid() == 0) {
                /* somebody else's directory (root can make one to test with) */
                assert_int_equal(chown(d, 1000, 1000), 0);
                assert_int_not_equal(asprintf(&msg,
                                              "state directory %s is owned by uid 1000, pinlet "
                                              "runs as uid 0: chown 0 %s",
                                              d, d),
                                     -1);
                expect_refused(d, -EPERM, msg);
                free(msg);
                msg = NULL;
                assert_int_equal(chown(d, 0, 0), 0);
        } else {
                /* a root-owned directory is trusted by everyone */
                assert_int_equal(pinlet_io_check_dir("/", "state directory", 0700, NULL), 0);
        }

        put_file(file, "", 0);
        assert_int_not_equal(asprintf(&msg, "state directory %s is not a directory", file), -1);
        expect_refused(file, -ENOTDIR, msg);
        free(msg);
        assert_int_not_equal(asprintf(&msg, "state directory %s: No such file or directory", none),
                             -1);
        expect_refused(none, -ENOENT, msg);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_write_all), cmocka_unit_test(test_read_file),
                cmocka_unit_test(test_mkdir_p),   cmocka_unit_test(test_open_nofollow),
                cmocka_unit_test(test_check_dir),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
