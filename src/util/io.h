/* SPDX-License-Identifier: Apache-2.0 */
/*
 * File helpers every module that touches the disk shares, one copy each: writing a whole
 * buffer, reading a file with a cap, mkdir -p, opening the files pinlet writes without
 * following a symbolic link someone planted, and checking that the directory holding them
 * belongs to pinlet alone.
 *
 * Why the last two matter: pinlet runs as root and writes to fixed paths (the audit log,
 * the pin store). Whoever can create a file in such a directory could plant a symbolic
 * link there and have pinlet append to, or replace, any file on the node. Refusing
 * symbolic links at the final path component (O_NOFOLLOW) closes that for the files;
 * refusing directories that somebody else can write to closes it for everything else in
 * them (temporary files, renames, hard links).
 *
 * All functions return a negative errno on failure; those taking err also set a message
 * naming the path. Thread-safe: no state of their own.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/*
 * Writes all n bytes of data to fd, retrying after EINTR and short writes. Returns 0, or
 * the -errno of the failed write(2) (-EIO if write(2) returns 0 for a non-empty buffer).
 * On failure part of the data may have been written.
 */
int pinlet_io_write_all(int fd, const void *data, size_t n);

/* Flags of pinlet_io_read_file(). */
#define PINLET_IO_NOFOLLOW (1u << 0) /* refuse a symbolic link at path (see pinlet_io_open) */

/*
 * Reads the whole file at path, which must hold at most max bytes. On success
 * *ret_data is a malloc'ed copy with a NUL appended (the content may hold NULs itself:
 * use *ret_size) and *ret_size its length (ret_size may be NULL). Errors: -E2BIG
 * (PINLET_E2BIG) when the file is larger than max, -ELOOP for a symbolic link with
 * PINLET_IO_NOFOLLOW, -ENOMEM, or the -errno of open/read (-ENOENT for a missing file).
 */
int pinlet_io_read_file(const char *path, size_t max, unsigned flags, char **ret_data,
                        size_t *ret_size, struct pinlet_error **err);

/*
 * Creates path and every missing parent with mode (reduced by the umask, as mkdir(2)
 * does). Existing directories are left as they are. Returns 0, -ENOTDIR when path or a
 * parent exists and is not a directory, -ENOMEM, or the -errno of mkdir(2).
 */
int pinlet_io_mkdir_p(const char *path, mode_t mode);

/* pinlet_io_mkdir_p() of the directory that holds the file path ("a/b/c" creates
 * "a/b"); nothing for a name without a directory ("c", "/c"). */
int pinlet_io_mkdir_parents(const char *path, mode_t mode);

/*
 * Opens a file pinlet reads or writes itself: open(2) with O_NOFOLLOW, O_CLOEXEC and
 * O_NOCTTY added to flags. Returns the descriptor, or a negative errno with *err set;
 * a symbolic link at path gives -ELOOP and "refusing to open PATH: it is a symbolic
 * link" (directories on the way to path may be symbolic links: an operator's
 * /var/lib/pinlet -> /data/pinlet is fine, and who can change those is what
 * pinlet_io_check_dir() is for).
 */
int pinlet_io_open(const char *path, int flags, mode_t mode, struct pinlet_error **err);

/*
 * Checks that nobody but pinlet can add, remove or replace files in the existing
 * directory dir: it must be a directory, owned by pinlet's effective uid (or by root,
 * who can do anything anyway), and not writable by group or others. what names the
 * directory in messages ("state directory"); fix_mode is the mode the message suggests
 * (the mode pinlet creates that directory with). Returns 0, or a negative errno with
 * *err saying what is wrong and how to fix it:
 *   -EPERM    "state directory /x is writable by group or others (mode 0775): chmod 0700 /x"
 *   -EPERM    "state directory /x is owned by uid 1000, pinlet runs as uid 0: chown 0 /x"
 *   -ENOTDIR  "state directory /x is not a directory"
 *   or the -errno of stat(2).
 * Only dir itself is checked, not its parents (a private directory under /tmp is fine).
 */
int pinlet_io_check_dir(const char *dir, const char *what, mode_t fix_mode,
                        struct pinlet_error **err);
