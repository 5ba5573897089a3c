/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proxy/socket.h"
#include "util/io.h"
#include "util/macro.h"

/* 1: somebody accepts on the socket at path, 0: nobody does (stale), <0: cannot tell. */
static int socket_is_alive(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;

        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                return 1;
        /* ECONNREFUSED: the file exists but no process listens; ENOENT: gone meanwhile. */
        if (errno == ECONNREFUSED || errno == ENOENT)
                return 0;
        return -errno;
}

int pinlet_proxy_prepare_socket_path(const char *path, struct pinlet_error **err)
{
        struct sockaddr_un sa;
        struct stat st;
        int r;

        if (!path || path[0] == '\0')
                return pinlet_error_set(err, -EINVAL, "listen socket path is empty");
        if (strlen(path) >= sizeof(sa.sun_path))
                return pinlet_error_set(err, -ENAMETOOLONG,
                                        "listen socket path %s is too long (at most %zu bytes)",
                                        path, sizeof(sa.sun_path) - 1);
        r = pinlet_io_mkdir_parents(path, 0755);
        if (r < 0)
                return pinlet_error_set(err, r, "cannot create the directory of %s: %s", path,
                                        strerror(-r));
        if (lstat(path, &st) < 0) {
                if (errno == ENOENT)
                        return 0;
                return pinlet_error_set(err, -errno, "cannot stat %s: %s", path, strerror(errno));
        }
        if (!S_ISSOCK(st.st_mode))
                return pinlet_error_set(err, -EEXIST,
                                        "%s exists and is not a socket: refusing to replace it",
                                        path);
        r = socket_is_alive(path);
        if (r > 0)
                return pinlet_error_set(err, -EADDRINUSE,
                                        "another process is accepting connections on %s "
                                        "(is pinlet already running?)",
                                        path);
        if (r < 0)
                return pinlet_error_set(err, r, "cannot check the existing socket %s: %s", path,
                                        strerror(-r));
        if (unlink(path) < 0 && errno != ENOENT)
                return pinlet_error_set(err, -errno, "cannot remove the stale socket %s: %s", path,
                                        strerror(errno));
        return 0;
}

int pinlet_proxy_endpoint_target(const char *endpoint, char **ret)
{
        char *t;

        if (!endpoint || endpoint[0] == '\0')
                return -EINVAL;
        if (endpoint[0] == '/') {
                if (asprintf(&t, "unix:%s", endpoint) < 0)
                        return -ENOMEM;
        } else {
                t = strdup(endpoint);
                if (!t)
                        return -ENOMEM;
        }
        *ret = t;
        return 0;
}
