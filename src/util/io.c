/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/io.h"

int pinlet_io_write_all(int fd, const void *data, size_t n)
{
        const char *p = data;

        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                /* write(2) returns 0 only for n == 0; never spin on a device that misbehaves */
                if (k == 0)
                        return -EIO;
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

/* An open(2) that failed with ELOOP under O_NOFOLLOW: the final component is a link (the
 * other cause, too many links in the directories on the way, is reported as it is). */
static int open_failed(const char *path, int e, struct pinlet_error **err)
{
        struct stat st;

        if (e == ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
                return pinlet_error_set(err, -ELOOP, "refusing to open %s: it is a symbolic link",
                                        path);
        return pinlet_error_set(err, -e, "%s: %s", path, strerror(e));
}

int pinlet_io_open(const char *path, int flags, mode_t mode, struct pinlet_error **err)
{
        int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);

        if (fd < 0)
                return open_failed(path, errno, err);
        return fd;
}

int pinlet_io_read_file(const char *path, size_t max, unsigned flags, char **ret_data,
                        size_t *ret_size, struct pinlet_error **err)
{
        _cleanup_buf_ struct pinlet_buf b;
        _cleanup_close_ int fd = -1;
        char chunk[8192];
        struct stat st;
        int r;

        pinlet_buf_init(&b, max);
        fd = open(path,
                  O_RDONLY | O_CLOEXEC | O_NOCTTY | (flags & PINLET_IO_NOFOLLOW ? O_NOFOLLOW : 0));
        if (fd < 0)
                return open_failed(path, errno, err);
        /* A regular file says its size: refuse a big one before reading any of it. The cap
         * on the buffer catches the rest (a file growing meanwhile, a pipe, /proc). */
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max)
                return pinlet_error_set(err, -E2BIG, "%s is larger than %zu bytes", path, max);
        for (;;) {
                ssize_t k = read(fd, chunk, sizeof(chunk));

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return pinlet_error_set(err, -errno, "%s: read: %s", path, strerror(errno));
                if (k == 0)
                        break;
                r = pinlet_buf_append(&b, chunk, (size_t)k);
                if (r == -E2BIG)
                        return pinlet_error_set(err, r, "%s is larger than %zu bytes", path, max);
                if (r < 0)
                        return pinlet_error_set(err, r, "%s: out of memory", path);
        }
        *ret_data = pinlet_buf_steal(&b, ret_size);
        return *ret_data ? 0 : pinlet_error_set(err, -ENOMEM, "%s: out of memory", path);
}

/* mkdir(2) that accepts an existing directory (and only a directory). */
static int mkdir_one(const char *path, mode_t mode)
{
        struct stat st;

        if (mkdir(path, mode) == 0)
                return 0;
        if (errno != EEXIST)
                return -errno;
        if (stat(path, &st) < 0)
                return -errno;
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int pinlet_io_mkdir_p(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);
        size_t n;

        if (!p)
                return -ENOMEM;
        if (!*p)
                return -ENOENT; /* as mkdir("") answers */
        /* "a//b/" is "a/b": trailing slashes would create the last directory twice */
        n = strlen(p);
        while (n > 1 && p[n - 1] == '/')
                p[--n] = '\0';
        for (char *s = p + 1; *s; s++) {
                int r;

                if (*s != '/' || s[-1] == '/')
                        continue;
                *s = '\0';
                r = mkdir_one(p, mode);
                *s = '/';
                if (r < 0)
                        return r;
        }
        return *p ? mkdir_one(p, mode) : -ENOENT;
}

int pinlet_io_mkdir_parents(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);
        char *slash;

        if (!p)
                return -ENOMEM;
        slash = strrchr(p, '/');
        if (!slash || slash == p)
                return 0;
        *slash = '\0';
        return pinlet_io_mkdir_p(p, mode);
}

int pinlet_io_check_dir(const char *dir, const char *what, mode_t fix_mode,
                        struct pinlet_error **err)
{
        uid_t me = geteuid();
        struct stat st;

        if (stat(dir, &st) < 0)
                return pinlet_error_set(err, -errno, "%s %s: %s", what, dir, strerror(errno));
        if (!S_ISDIR(st.st_mode))
                return pinlet_error_set(err, -ENOTDIR, "%s %s is not a directory", what, dir);
        if (st.st_uid != me && st.st_uid != 0)
                return pinlet_error_set(err, -EPERM,
                                        "%s %s is owned by uid %u, pinlet runs as uid %u: "
                                        "chown %u %s",
                                        what, dir, (unsigned)st.st_uid, (unsigned)me, (unsigned)me,
                                        dir);
        /* The sticky bit (/tmp) does not help: anyone may still create a link there. */
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return pinlet_error_set(err, -EPERM,
                                        "%s %s is writable by group or others (mode %04o): "
                                        "chmod %04o %s",
                                        what, dir, (unsigned)(st.st_mode & 07777),
                                        (unsigned)fix_mode, dir);
        return 0;
}
