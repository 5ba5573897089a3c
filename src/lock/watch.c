/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The live lock: the set in force behind a tiny mutex (held only to swap or to take a
 * reference, never while loading), and a watcher thread that reloads on inotify events.
 *
 * Why a mutex rather than a bare atomic pointer: a reader must take its reference before
 * the swapper can drop the last one, and an atomic load followed by an increment leaves a
 * window where the set is freed between the two. Holding the mutex for one increment is
 * far cheaper than the request it serves.
 */
#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "lock/lock.h"
#include "util/log.h"

/* Events come in bursts (a ConfigMap update is a handful of creates, renames and
 * deletes; an editor writes, renames, chmods): reload once the directory has been quiet
 * this long, but never later than DEBOUNCE_MAX_MS after the first event, so a change is
 * in force within a second even under a steady trickle of unrelated events. */
#define DEBOUNCE_QUIET_MS 100
#define DEBOUNCE_MAX_MS   500

/* The directory entry changes that can change what a path reads: contents written
 * (close after write, or a write without close), entries created, removed, renamed in or
 * out (the ConfigMap "..data" swap is a rename), and mode changes (a file made
 * unreadable or readable again). */
#define WATCH_MASK                                                                          \
        (IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | \
         IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct watch {
        char *dir;  /* watched directory */
        char *name; /* for a configured file: its name in dir; NULL: every event counts */
        int wd;     /* -1 while not watched */
};

struct pinlet_lock {
        char **paths; /* owned copy, NULL-terminated */
        struct pinlet_lock_options opts;

        pthread_mutex_t mutex; /* guards current */
        struct pinlet_lock_set *current;

        pthread_mutex_t reload_mutex; /* one reload at a time (watcher and callers) */
        atomic_uint_fast64_t reloads_ok, reloads_failed;

        struct watch *watches;
        size_t n_watches;
        int inotify_fd, wake_fd;
        pthread_t thread;
        bool thread_started;
};

static void strv_free(char **v)
{
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

static int strv_copy(char *const *v, char ***ret)
{
        size_t n = 0;
        char **c;

        while (v && v[n])
                n++;
        c = calloc(n + 1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                c[i] = strdup(v[i]);
                if (!c[i]) {
                        strv_free(c);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}

static void swap_set(struct pinlet_lock *l, struct pinlet_lock_set *s)
{
        struct pinlet_lock_set *old;

        pthread_mutex_lock(&l->mutex);
        old = l->current;
        l->current = s;
        pthread_mutex_unlock(&l->mutex);
        pinlet_lock_set_unref(old); /* freed here, or by the last request holding it */
}

struct pinlet_lock_set *pinlet_lock_get(struct pinlet_lock *l)
{
        struct pinlet_lock_set *s;

        pthread_mutex_lock(&l->mutex);
        s = pinlet_lock_set_ref(l->current);
        pthread_mutex_unlock(&l->mutex);
        return s;
}

void pinlet_lock_get_stats(struct pinlet_lock *l, struct pinlet_lock_stats *ret)
{
        struct pinlet_lock_set *s = pinlet_lock_get(l);

        ret->reloads_ok = atomic_load(&l->reloads_ok);
        ret->reloads_failed = atomic_load(&l->reloads_failed);
        ret->entries = pinlet_lock_set_size(s);
        pinlet_lock_set_unref(s);
}

int pinlet_lock_reload(struct pinlet_lock *l, struct pinlet_error **err)
{
        _cleanup_error_ struct pinlet_error *e = NULL;
        struct pinlet_lock_set *s = NULL;
        size_t n;
        int r;

        pthread_mutex_lock(&l->reload_mutex);
        r = pinlet_lock_set_load(l->paths, &l->opts, &s, &e);
        if (r < 0) {
                struct pinlet_lock_set *cur = pinlet_lock_get(l);

                log_error("lock: reload refused, the previous lock (%zu entries) stays in "
                          "force: %s",
                          pinlet_lock_set_size(cur), pinlet_error_message(e, r));
                pinlet_lock_set_unref(cur);
                /* Counted after logging: a test waiting on the counter then sees the log. */
                atomic_fetch_add(&l->reloads_failed, 1);
                pthread_mutex_unlock(&l->reload_mutex);
                if (err && !*err)
                        *err = TAKE_PTR(e);
                return r;
        }
        n = pinlet_lock_set_size(s);
        swap_set(l, s);
        log_info("lock: reloaded, %zu entries", n);
        atomic_fetch_add(&l->reloads_ok, 1);
        pthread_mutex_unlock(&l->reload_mutex);
        return 0;
}

/* ---- what to watch ----------------------------------------------------------------------- */

static int add_watch_spec(struct pinlet_lock *l, const char *dir, const char *name)
{
        struct watch *v = realloc(l->watches, (l->n_watches + 1) * sizeof(*v));
        struct watch *w;

        if (!v)
                return -ENOMEM;
        l->watches = v;
        w = &v[l->n_watches];
        *w = (struct watch){ .wd = -1 };
        w->dir = strdup(dir);
        w->name = name ? strdup(name) : NULL;
        if (!w->dir || (name && !w->name)) {
                free(w->dir);
                free(w->name);
                return -ENOMEM;
        }
        l->n_watches++;
        return 0;
}

/* A configured directory is watched itself; a configured file through its directory, so
 * that a rename over it, its deletion and re-creation, and the ConfigMap "..data" swap
 * behind a symlink all show up (a watch on the file would follow one inode only). */
static int plan_watches(struct pinlet_lock *l)
{
        for (size_t i = 0; l->paths[i]; i++) {
                _cleanup_free_ char *c1 = strdup(l->paths[i]), *c2 = strdup(l->paths[i]);
                struct stat st;
                int r;

                if (!c1 || !c2)
                        return -ENOMEM;
                if (stat(l->paths[i], &st) == 0 && S_ISDIR(st.st_mode))
                        r = add_watch_spec(l, l->paths[i], NULL);
                else
                        r = add_watch_spec(l, dirname(c1), basename(c2));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* (Re-)adds every watch: cheap for directories already watched (the kernel returns the
 * same descriptor), and picks up a directory that was removed and created again. */
static void arm_watches(struct pinlet_lock *l)
{
        for (size_t i = 0; i < l->n_watches; i++) {
                struct watch *w = &l->watches[i];

                w->wd = inotify_add_watch(l->inotify_fd, w->dir, WATCH_MASK);
                if (w->wd < 0)
                        log_debug("lock: cannot watch %s: %s", w->dir, strerror(errno));
        }
}

static bool event_relevant(const struct pinlet_lock *l, const struct inotify_event *ev)
{
        if (ev->mask & IN_Q_OVERFLOW)
                return true; /* events were lost: assume the worst */
        for (size_t i = 0; i < l->n_watches; i++) {
                const struct watch *w = &l->watches[i];

                if (w->wd != ev->wd)
                        continue;
                if (!w->name || ev->len == 0)
                        return true;
                /* The file itself, or a ConfigMap's "..data"/"..<timestamp>" entry that the
                 * file's symlink resolves through. */
                if (strcmp(ev->name, w->name) == 0 || strncmp(ev->name, "..", 2) == 0)
                        return true;
        }
        return false;
}

/* Reads every queued event; returns 1 if any of them matters, 0 if none, -errno. */
static int drain(struct pinlet_lock *l)
{
        char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
        int relevant = 0;

        for (;;) {
                ssize_t n = read(l->inotify_fd, buf, sizeof(buf));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return relevant;
                if (n <= 0)
                        return n < 0 ? -errno : relevant;
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)p;

                        if (event_relevant(l, ev))
                                relevant = 1;
                        p += sizeof(*ev) + ev->len;
                }
        }
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for an inotify event or the stop signal; timeout_ms < 0 waits forever. Returns 1
 * for events, 0 on timeout, -ECANCELED when asked to stop. */
static int wait_events(struct pinlet_lock *l, int timeout_ms)
{
        struct pollfd fds[2] = {
                { .fd = l->wake_fd, .events = POLLIN },
                { .fd = l->inotify_fd, .events = POLLIN },
        };
        int n;

        do
                n = poll(fds, 2, timeout_ms);
        while (n < 0 && errno == EINTR);
        if (n < 0 || fds[0].revents)
                return -ECANCELED;
        return n > 0;
}

static void *watch_thread(void *userdata)
{
        struct pinlet_lock *l = userdata;

        for (;;) {
                int64_t first;
                int r;

                r = wait_events(l, -1);
                if (r < 0)
                        return NULL;
                r = drain(l);
                if (r <= 0)
                        continue;

                first = now_ms();
                for (;;) {
                        int64_t left = first + DEBOUNCE_MAX_MS - now_ms();

                        if (left <= 0)
                                break;
                        r = wait_events(l,
                                        (int)(left < DEBOUNCE_QUIET_MS ? left : DEBOUNCE_QUIET_MS));
                        if (r < 0)
                                return NULL;
                        if (r == 0)
                                break; /* quiet */
                        drain(l);
                }
                pinlet_lock_reload(l, NULL);
                arm_watches(l);
        }
}

/* ---- lifetime ---------------------------------------------------------------------------- */

int pinlet_lock_new(char *const *paths, const struct pinlet_lock_options *opts,
                    struct pinlet_lock **ret, struct pinlet_error **err)
{
        _cleanup_lock_ struct pinlet_lock *l = NULL;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        l->inotify_fd = l->wake_fd = -1;
        pthread_mutex_init(&l->mutex, NULL);
        pthread_mutex_init(&l->reload_mutex, NULL);
        atomic_init(&l->reloads_ok, 0);
        atomic_init(&l->reloads_failed, 0);
        if (opts)
                l->opts = *opts;
        if (strv_copy(paths, &l->paths) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        r = pinlet_lock_set_load(l->paths, &l->opts, &l->current, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

int pinlet_lock_watch_start(struct pinlet_lock *l, struct pinlet_error **err)
{
        int r;

        if (l->thread_started)
                return 0;
        l->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (l->inotify_fd < 0)
                return pinlet_error_set(err, -errno, "lock: inotify: %s", strerror(errno));
        l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (l->wake_fd < 0)
                return pinlet_error_set(err, -errno, "lock: eventfd: %s", strerror(errno));
        r = plan_watches(l);
        if (r < 0)
                return pinlet_error_set(err, r, "out of memory");
        arm_watches(l);
        r = -pthread_create(&l->thread, NULL, watch_thread, l);
        if (r < 0)
                return pinlet_error_set(err, r, "lock: watcher thread: %s", strerror(-r));
        l->thread_started = true;
        return 0;
}

void pinlet_lock_free(struct pinlet_lock *l)
{
        if (!l)
                return;
        if (l->thread_started) {
                uint64_t one = 1;

                /* An eventfd counter write of 8 bytes cannot fail short of overflow. */
                if (write(l->wake_fd, &one, sizeof(one)) != sizeof(one))
                        log_debug("lock: waking the watcher: %s", strerror(errno));
                pthread_join(l->thread, NULL);
        }
        if (l->inotify_fd >= 0)
                close(l->inotify_fd);
        if (l->wake_fd >= 0)
                close(l->wake_fd);
        for (size_t i = 0; i < l->n_watches; i++) {
                free(l->watches[i].dir);
                free(l->watches[i].name);
        }
        free(l->watches);
        pinlet_lock_set_unref(l->current);
        strv_free(l->paths);
        pthread_mutex_destroy(&l->mutex);
        pthread_mutex_destroy(&l->reload_mutex);
        free(l);
}
