/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
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
};

/* Creates every missing parent directory of path with mode (like mkdir -p `dirname`). */
static int mkdir_parents(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

static int open_file(const char *path, int *ret_fd, struct pinlet_error **err)
{
        int fd, r;

        r = mkdir_parents(path, 0750);
        if (r < 0)
                return pinlet_error_set(err, r, "audit log %s: cannot create directory: %s", path,
                                        strerror(-r));
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd < 0)
                return pinlet_error_set(err, -errno, "audit log %s: %s", path, strerror(errno));
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

/* Sets key to v, or does nothing when v is NULL. A reference from a client may hold
 * bytes that are not UTF-8, which json_string() refuses: the record is not lost for that,
 * the non-ASCII bytes are written as '?' instead. */
static int set_str(json_t *o, const char *key, const char *v)
{
        json_t *s;

        if (!v)
                return 0;
        s = json_string(v);
        if (!s) {
                _cleanup_free_ char *copy = strdup(v);

                if (!copy)
                        return -1;
                for (char *p = copy; *p; p++)
                        if ((unsigned char)*p >= 0x80)
                                *p = '?';
                s = json_string(copy);
        }
        return json_object_set_new(o, key, s);
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
        r |= set_str(o, "image", rec->image);
        r |= set_str(o, "resolved", rec->resolved);
        r |= set_str(o, "previous", rec->previous);
        r |= set_str(o, "source", rec->source);
        if (rec->registry_ms >= 0)
                r |= json_object_set_new(o, "registry_ms", json_integer(rec->registry_ms));
        r |= set_str(o, "decision", rec->decision);
        r |= set_str(o, "mode", rec->mode);
        r |= set_str(o, "error", rec->error);
        if (r == 0)
                line = pinlet_json_line(o);
        json_decref(o);
        return line;
}

/* One write(2) for the whole line: a regular file opened O_APPEND takes it whole, so lines
 * never interleave. A short write (disk full mid-way, a signal on a pipe) is finished in a
 * loop, the best that can be done for the rest of the line. */
static int write_line(int fd, const char *line, size_t n)
{
        ssize_t k;

        for (;;) {
                k = write(fd, line, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if ((size_t)k == n)
                        return 0;
                line += k;
                n -= (size_t)k;
        }
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
        if (a->path) {
                pthread_rwlock_rdlock(&a->lock);
                k = a->fd >= 0 ? write_line(a->fd, line, n) : -EBADF;
                pthread_rwlock_unlock(&a->lock);
                if (k < 0) {
                        count_failure(a, a->path, k);
                        r = k;
                }
        }
        if (a->to_stderr) {
                k = write_line(STDERR_FILENO, line, n);
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
        if (r < 0)
                return r;
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
