/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy's file-system helpers: listening socket path preparation, endpoint targets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "proxy/socket.h"

static char *tmpdir(void)
{
        char *d = strdup("/tmp/pinlet-XXXXXX");

        assert_non_null(mkdtemp(d));
        return d;
}

static void rmtree(const char *d)
{
        char cmd[512];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
        assert_int_equal(system(cmd), 0);
}

/* A socket bound at path; listening or not (a stale socket: its process died). */
static int bind_socket(const char *path, bool listening)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);

        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        if (listening)
                assert_int_equal(listen(fd, 1), 0);
        return fd;
}

static bool is_socket(const char *path)
{
        struct stat st;

        return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void test_missing_creates_parents(void **state)
{
        char *d = tmpdir(), path[256], parent[256];
        struct pinlet_error *err = NULL;
        struct stat st;

        snprintf(path, sizeof(path), "%s/a/b/pinlet.sock", d);
        snprintf(parent, sizeof(parent), "%s/a/b", d);
        assert_int_equal(pinlet_proxy_prepare_socket_path(path, &err), 0);
        assert_null(err);
        assert_int_equal(stat(parent, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(access(path, F_OK), -1);
        rmtree(d);
        free(d);
}

static void test_regular_file_refused(void **state)
{
        char *d = tmpdir(), path[256];
        struct pinlet_error *err = NULL;
        FILE *f;

        snprintf(path, sizeof(path), "%s/pinlet.sock", d);
        f = fopen(path, "w");
        fputs("precious", f);
        fclose(f);
        assert_int_equal(pinlet_proxy_prepare_socket_path(path, &err), -EEXIST);
        assert_non_null(err);
        assert_non_null(strstr(err->message, "not a socket"));
        assert_int_equal(access(path, F_OK), 0);
        pinlet_error_free(err);

        /* a directory is not a socket either */
        unlink(path);
        assert_int_equal(mkdir(path, 0700), 0);
        err = NULL;
        assert_int_equal(pinlet_proxy_prepare_socket_path(path, &err), -EEXIST);
        pinlet_error_free(err);
        rmtree(d);
        free(d);
}

static void test_stale_socket_removed(void **state)
{
        char *d = tmpdir(), path[256];
        struct pinlet_error *err = NULL;
        int fd;

        snprintf(path, sizeof(path), "%s/pinlet.sock", d);
        fd = bind_socket(path, false); /* bound, never listening: connect() is refused */
        close(fd);
        assert_true(is_socket(path));
        assert_int_equal(pinlet_proxy_prepare_socket_path(path, &err), 0);
        assert_null(err);
        assert_false(is_socket(path));
        rmtree(d);
        free(d);
}

static void test_live_socket_refused(void **state)
{
        char *d = tmpdir(), path[256];
        struct pinlet_error *err = NULL;
        int fd;

        snprintf(path, sizeof(path), "%s/pinlet.sock", d);
        fd = bind_socket(path, true);
        assert_int_equal(pinlet_proxy_prepare_socket_path(path, &err), -EADDRINUSE);
        assert_non_null(err);
        assert_non_null(strstr(err->message, "another process"));
        assert_true(is_socket(path));
        pinlet_error_free(err);
        close(fd);
        rmtree(d);
        free(d);
}

static void test_too_long(void **state)
{
        char path[300];
        struct pinlet_error *err = NULL;

        memset(path, 'a', sizeof(path) - 1);
        path[0] = '/';
        path[sizeof(path) - 1] = '\0';
        assert_int_equal(pinlet_proxy_prepare_socket_path(path, &err), -ENAMETOOLONG);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_proxy_prepare_socket_path("", &err), -EINVAL);
        pinlet_error_free(err);
}

static void test_endpoint_target(void **state)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "unix:///run/containerd/containerd.sock",
                  "unix:///run/containerd/containerd.sock" },
                { "unix:/run/crio/crio.sock", "unix:/run/crio/crio.sock" },
                { "/run/containerd/containerd.sock", "unix:/run/containerd/containerd.sock" },
                { "localhost:1234", "localhost:1234" },
        };
        char *t = NULL;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                assert_int_equal(pinlet_proxy_endpoint_target(cases[i].in, &t), 0);
                assert_string_equal(t, cases[i].out);
                free(t);
        }
        assert_int_equal(pinlet_proxy_endpoint_target("", &t), -EINVAL);
        assert_int_equal(pinlet_proxy_endpoint_target(NULL, &t), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_missing_creates_parents),
                cmocka_unit_test(test_regular_file_refused),
                cmocka_unit_test(test_stale_socket_removed),
                cmocka_unit_test(test_live_socket_refused),
                cmocka_unit_test(test_too_long),
                cmocka_unit_test(test_endpoint_target),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
