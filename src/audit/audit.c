/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "util/io.h"
#include "util/json.h"
#include "util/log.h"

struct pinlet_audit {
        /* Writers hold it shared while they write to fd; reopen holds it exclusive to swap
         * fd, so the old descriptor is never closed under a write in progress. */
        pthread_rwlock_t lock;
        char *path; /* NULL: no file */
        int fd;     /* -1: no file */
        bool to_stderr;
        atomic_uint_fast64_t written;
        atomic_uint_fast64_t failed;
        atomic_uint_fast64_t reopen_failed;
};

#define AUDIT_DIR_MODE 0750 /* directories pinlet creates for the log: group may read */

/* The directory that holds path ("." for a bare file name), malloc'ed; NULL without memory. */
static char *dir_of(const char *path)
{
        const char *slash = strrchr(path, '/');

        if (!slash)
                return strdup(".");
        if (slash == path)
                return strdup("/");
        return strndup(path, (size_t)(slash - path));
}

/* Creates the directory of path when missing, refuses one that others could plant a link
 * in, and opens the file without following a link (see util/io.h for why). */
static int open_file(const char *path, int *ret_fd, struct pinlet_error **err)
{
        _cleanup_free_ char *dir = dir_of(path);
        int fd, r;

        if (!dir)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        r = pinlet_io_mkdir_parents(path, AUDIT_DIR_MODE);
        if (r < 0)
                return pinlet_error_set(err, r, "audit log %s: cannot create directory: %s", path,
                                        strerror(-r));
        r = pinlet_io_check_dir(dir, "audit log directory", AUDIT_DIR_MODE, err);
        if (r < 0)
                return r;
        /* the message names the path; the caller says it is the audit log */
        fd = pinlet_io_open(path, O_WRONLY | O_APPEND | O_CREAT, 0640, err);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}

int pinlet_audit_open(const struct pinlet_audit_options *o, struct pinlet_audit **ret,
                      struct pinlet_error **err)
{
        struct pinlet_audit *a;
        int r;

        a = calloc(1, sizeof(*a));
        if (!a)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        a->fd = -1;
        a->to_stderr = o->also_stderr;
        pthread_rwlock_init(&a->lock, NULL);
        if (o->path && strcmp(o->path, "-") == 0)
                a->to_stderr = true;
        else if (o->path && *o->path) {
                a->path = strdup(o->path);
                if (!a->path) {
                        pinlet_audit_close(a);
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                }
                r = open_file(a->path, &a->fd, err);
                if (r < 0) {
                        pinlet_audit_close(a);
                        return r;
                }
        }
        *ret = a;
        return 0;
}

void pinlet_audit_close(struct pinlet_audit *a)
{
        if (!a)
                return;
        if (a->fd >= 0)
                close(a->fd);
        free(a->path);
        pthread_rwlock_destroy(&a->lock);
        free(a);
}

/* Longest marker appended to a cut field: "...(truncated, " + 20 digits + " bytes)". */
#define MARKER_MAX 48

/*
 * The JSON string for a field of n bytes at v, as the record shows it:
 *   - at most PINLET_AUDIT_FIELD_MAX bytes of v, then "...(truncated, N bytes)" naming the
 *     original size, so that a client sending a megabyte image name cannot make a
 *     megabyte audit line. The cut never splits a UTF-8 sequence.
 *   - NUL bytes are kept (jansson writes them as \u0000): the record shows what the
 *     client sent, not the C string that stops at the first NUL.
 *   - bytes that are not UTF-8, which json_stringn() refuses, become '?': the record is
 *     not lost for them.
 * NULL on allocation failure.
 */
static json_t *field_string(const char *v, size_t n)
{
        _cleanup_free_ char *copy = NULL;
        size_t keep = n, len;
        json_t *s;

        if (n <= PINLET_AUDIT_FIELD_MAX && (s = json_stringn(v, n)))
                return s; /* the usual case: short and UTF-8, no copy */
        if (n > PINLET_AUDIT_FIELD_MAX) {
                keep = PINLET_AUDIT_FIELD_MAX;
                /* v[keep] is the first byte dropped: if it continues a sequence (10xxxxxx),
                 * drop the sequence's earlier bytes too (at most 3 of them). */
                for (int i = 0; i < 3 && keep > 0 && ((unsigned char)v[keep] & 0xc0) == 0x80; i++)
                        keep--;
        }
        copy = malloc(keep + MARKER_MAX);
        if (!copy)
                return NULL;
        memcpy(copy, v, keep);
        len = keep;
        if (keep < n)
                len += (size_t)snprintf(copy + keep, MARKER_MAX, "...(truncated, %zu bytes)", n);
        s = json_stringn(copy, len);
        if (!s) {
                for (size_t i = 0; i < len; i++)
                        if ((unsigned char)copy[i] >= 0x80)
                                copy[i] = '?';
                s = json_stringn(copy, len);
        }
        return s;
}

/* Sets key (a literal: ASCII, so jansson's UTF-8 check of it is skipped) to the n bytes at
 * v (see field_string), or does nothing when v is NULL. */
static int set_strn(json_t *o, const char *key, const char *v, size_t n)
{
        if (!v)
                return 0;
        return json_object_set_new_nocheck(o, key, field_string(v, n));
}

static int set_str(json_t *o, const char *key, const char *v)
{
        return set_strn(o, key, v, v ? strlen(v) : 0);
}

char *pinlet_audit_format(const struct pinlet_audit_record *rec)
{
        json_t *o = json_object(), *pod = NULL;
        char now[48], *line = NULL;
        int r = 0;

        if (!o)
                return NULL;
        pinlet_format_rfc3339_now(now, sizeof(now));
        r |= set_str(o, "time", now);
        r |= set_str(o, "method", rec->method);
        if (rec->pod_namespace || rec->pod_name || rec->pod_uid) {
                pod = json_object();
                if (!pod)
                        r = -1;
                else {
                        r |= set_str(pod, "namespace", rec->pod_namespace);
                        r |= set_str(pod, "name", rec->pod_name);
                        r |= set_str(pod, "uid", rec->pod_uid);
                        r |= json_object_set_new(o, "pod", pod);
                }
        }
        r |= set_str(o, "container", rec->container);
        if (rec->image)
                r |= set_strn(o, "image", rec->image,
                              rec->image_len ? rec->image_len : strlen(rec->image));
        r |= set_str(o, "resolved", rec->resolved);
        r |= set_str(o, "previous", rec->previous);
        r |= set_str(o, "source", rec->source);
        r |= set_str(o, "lock", rec->lock);
        r |= set_str(o, "endpoint", rec->endpoint);
        if (rec->registry_ms >= 0)
                r |= json_object_set_new_nocheck(o, "registry_ms", json_integer(rec->registry_ms));
        r |= set_str(o, "decision", rec->decision);
        r |= set_str(o, "mode", rec->mode);
        r |= set_str(o, "error", rec->error);
        if (rec->n_verifiers > 0) {
                json_t *arr = json_array();

                if (!arr)
                        r = -1;
                for (size_t i = 0; arr && i < rec->n_verifiers; i++) {
                        const struct pinlet_audit_verifier *v = &rec->verifiers[i];
                        json_t *e = json_object();

                        if (!e) {
                                r = -1;
                                break;
                        }
                        r |= set_str(e, "name", v->name);
                        r |= set_str(e, "result", v->allow ? "allow" : "deny");
                        if (v->reason && *v->reason)
                                r |= set_str(e, "reason", v->reason);
                        r |= json_object_set_new(e, "ms", json_integer(v->ms));
                        r |= json_array_append_new(arr, e);
                }
                if (arr)
                        r |= json_object_set_new(o, "verifiers", arr);
        }
        if (r == 0)
                line = pinlet_json_line(o);
        json_decref(o);
        return line;
}

static void count_failure(struct pinlet_audit *a, const char *where, int r)
{
        uint64_t n = ++a->failed;

        if (n == 1 || n % 100 == 0)
                log_warn("audit: cannot write record to %s: %s (%" PRIu64 " records lost so far)",
                         where, strerror(-r), n);
}

int pinlet_audit_write(struct pinlet_audit *a, const struct pinlet_audit_record *rec)
{
        _cleanup_free_ char *line = pinlet_audit_format(rec);
        int r = 0, k;
        size_t n;

        if (!line) {
                /* Format failed (memory, or text that is not UTF-8): still leave a trace. */
                count_failure(a, "(format)", -ENOMEM);
                return -ENOMEM;
        }
        n = strlen(line);
        /* One write(2) for the whole line: a regular file opened O_APPEND takes it whole, so
         * lines from concurrent writers never interleave. A short write (disk full mid-way,
         * a signal on a pipe) is finished by write_all, the best that can be done for the
         * rest of the line. */
        if (a->path) {
                pthread_rwlock_rdlock(&a->lock);
                k = a->fd >= 0 ? pinlet_io_write_all(a->fd, line, n) : -EBADF;
                pthread_rwlock_unlock(&a->lock);
                if (k < 0) {
                        count_failure(a, a->path, k);
                        r = k;
                }
        }
        if (a->to_stderr) {
                k = pinlet_io_write_all(STDERR_FILENO, line, n);
                if (k < 0) {
                        count_failure(a, "stderr", k);
                        r = r ?: k;
                }
        }
        if (r == 0)
                a->written++;
        return r;
}

int pinlet_audit_reopen(struct pinlet_audit *a, struct pinlet_error **err)
{
        int fd = -1, old, r;

        if (!a->path)
                return 0;
        r = open_file(a->path, &fd, err);
        if (r < 0) {
                a->reopen_failed++;
                return r;
        }
        pthread_rwlock_wrlock(&a->lock);
        old = a->fd;
        a->fd = fd;
        pthread_rwlock_unlock(&a->lock);
        if (old >= 0)
                close(old);
        return 0;
}

void pinlet_audit_stats(struct pinlet_audit *a, uint64_t *ret_written, uint64_t *ret_failed)
{
        *ret_written = a->written;
        *ret_failed = a->failed;
}

int pinlet_audit_reconfigure(struct pinlet_audit *a, const struct pinlet_audit_options *o,
                             struct pinlet_error **err)
{
        bool to_stderr = o->also_stderr || (o->path && strcmp(o->path, "-") == 0);
        bool has_file = o->path && *o->path && strcmp(o->path, "-") != 0;
        _cleanup_free_ char *path = NULL;
        char *old_path;
        int fd = -1, old_fd, r;

        if (has_file) {
                path = strdup(o->path);
                if (!path)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                /* the new file first: a path that cannot be opened changes nothing */
                r = open_file(path, &fd, err);
                if (r < 0)
                        return r;
        }
        pthread_rwlock_wrlock(&a->lock);
        old_fd = a->fd;
        old_path = a->path;
        a->fd = fd;
        a->path = TAKE_PTR(path);
        a->to_stderr = to_stderr;
        pthread_rwlock_unlock(&a->lock);
        if (old_fd >= 0)
                close(old_fd);
        free(old_path);
        return 0;
}

uint64_t pinlet_audit_reopen_failures(struct pinlet_audit *a)
{
        return a->reopen_failed;
}
