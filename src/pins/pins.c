/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Memory: a util/lru table by reference (hash plus recency list), under a rwlock. Disk:
 * see pins.h. Writers hold `io` for the whole change (memory update, then append) so that
 * the log's order is the order of the changes in memory; readers only ever wait for the
 * memory update.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pins/pins.h"
#include "util/buf.h"
#include "util/io.h"
#include "util/json.h"
#include "util/log.h"
#include "util/lru.h"

#define TMP_PREFIX  "." PINLET_PINS_FILE ".tmp."
#define LOCK_FILE   "pins.lock"
#define CORRUPT_EXT ".corrupt"

/* Space kept allocated past the end of pins.jsonl (fallocate FALLOC_FL_KEEP_SIZE) for
 * deletion lines: forget() must still work on a full disk, or a pin the caller needs gone
 * would come back after a restart. Records and touches never eat into it (they fail with
 * -ENOSPC instead); 64 KiB holds several hundred deletion lines. */
#define RESERVE ((off_t)64 * 1024)

struct pin {
        char *ref; /* owned; node.key points to it */
        char *digest;
        int64_t first_used, last_used;
        int64_t written_used;             /* last_used as the log holds it (see quiet_touch) */
        char *pods[PINLET_PINS_MAX_PODS]; /* oldest first */
        size_t n_pods;
        struct pinlet_lru_node node; /* in pinlet_pins.lru */
};

#define PIN(n) PINLET_LRU_ENTRY(n, struct pin, node)

struct pinlet_pins {
        pthread_rwlock_t mem;        /* the table and every pin in it */
        _Atomic uint64_t generation; /* see pinlet_pins_generation(); changed under mem */
        pthread_mutex_t io;          /* writers: serializes changes and their appends */
        size_t max;
        struct pinlet_lru lru; /* of struct pin */

        char *dir;  /* NULL: memory only */
        char *path; /* dir/pins.jsonl */
        bool read_only;
        int lock_fd;
        int log_fd;               /* append descriptor; -1 when none */
        size_t log_lines;         /* lines in the log file now */
        off_t log_size;           /* bytes in the log file: where the next append lands */
        bool need_compact;        /* an append failed and could not be undone: rewrite instead */
        bool no_fallocate;        /* the file system cannot reserve space: no reserve there */
        uint64_t loaded_complete; /* load_file: bytes of the file up to its last '\n' */
        uint64_t loaded_size;     /* load_file: bytes read */

        struct pinlet_pins_load_report report;
        char *first_problem;
};

/* Line splitter state while loading. */
struct loader {
        struct pinlet_pins *p;
        char *line; /* PINLET_PINS_LINE_MAX + 1 bytes */
        size_t len;
        bool overflow; /* the current line is too long: skip to its end */
        size_t lineno;
        uint64_t fed;      /* bytes fed so far */
        uint64_t complete; /* bytes up to and including the last '\n' */
};

/* Printable ASCII without spaces, 1..max bytes: references, digests and pod keys are all
 * ASCII by their grammars, and nothing else may reach the file or a terminal. */
static bool valid_text(const char *s, size_t max)
{
        size_t n = 0;

        if (!s)
                return false;
        for (; s[n]; n++)
                if (n >= max || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
                        return false;
        return n > 0;
}

static bool valid_digest(const char *s)
{
        const char *colon;

        if (!valid_text(s, PINLET_PINS_DIGEST_MAX))
                return false;
        colon = strchr(s, ':');
        return colon && colon != s && colon[1];
}

static void pin_free(struct pin *pin)
{
        if (!pin)
                return;
        free(pin->ref);
        free(pin->digest);
        for (size_t i = 0; i < pin->n_pods; i++)
                free(pin->pods[i]);
        free(pin);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pin *, pin_free)

static void pin_clear_pods(struct pin *pin)
{
        for (size_t i = 0; i < pin->n_pods; i++)
                free(pin->pods[i]);
        pin->n_pods = 0;
}

/* Adds pod (taking it) as the most recent; an existing equal entry moves to the end. */
static void pin_add_pod(struct pin *pin, char *pod)
{
        size_t i;

        for (i = 0; i < pin->n_pods && strcmp(pin->pods[i], pod) != 0; i++)
                ;
        if (i < pin->n_pods) {
                free(pin->pods[i]);
        } else if (pin->n_pods == PINLET_PINS_MAX_PODS) {
                free(pin->pods[0]);
                i = 0;
        } else {
                pin->pods[pin->n_pods++] = pod;
                return;
        }
        memmove(&pin->pods[i], &pin->pods[i + 1], (pin->n_pods - i - 1) * sizeof(char *));
        pin->pods[pin->n_pods - 1] = pod;
}

static struct pin *find(struct pinlet_pins *p, const char *ref)
{
        return PIN(pinlet_lru_find(&p->lru, ref));
}

/* Every store's every content gets a number of its own: a process-wide counter. */
static _Atomic uint64_t generations;

/* The set of (reference, digest) pairs changed: called with mem held for writing (or
 * before the store is shared), after the change. */
static void changed(struct pinlet_pins *p)
{
        atomic_store(&p->generation, atomic_fetch_add(&generations, 1) + 1);
}

/* Inserts a new pin (the caller checked it is absent) as the most recent one. */
static void insert(struct pinlet_pins *p, struct pin *pin)
{
        pin->node.key = pin->ref;
        pinlet_lru_insert(&p->lru, &pin->node);
        changed(p);
}

static void remove_pin(struct pinlet_pins *p, struct pin *pin)
{
        pinlet_lru_remove(&p->lru, &pin->node);
        changed(p);
}

/* Evicts least recently used pins beyond the bound; returns how many. */
static size_t evict(struct pinlet_pins *p)
{
        size_t k = 0;

        while (pinlet_lru_size(&p->lru) > p->max && pinlet_lru_oldest(&p->lru)) {
                struct pin *victim = PIN(pinlet_lru_oldest(&p->lru));

                remove_pin(p, victim);
                log_debug("pins: evicted %s", victim->ref);
                pin_free(victim);
                k++;
        }
        return k;
}

/* One pin as a log line, '\n' included. NULL on allocation failure. */
static char *pin_to_line(const struct pin *pin)
{
        json_t *o, *pods = json_array();
        char *line;

        if (!pods)
                return NULL;
        for (size_t i = 0; i < pin->n_pods; i++)
                if (json_array_append_new(pods, json_string(pin->pods[i])) < 0) {
                        json_decref(pods);
                        return NULL;
                }
        o = json_pack("{s:s, s:s, s:I, s:I, s:o}", "ref", pin->ref, "digest", pin->digest,
                      "first_used", (json_int_t)pin->first_used, "last_used",
                      (json_int_t)pin->last_used, "pods", pods);
        if (!o)
                return NULL;
        line = pinlet_json_line(o);
        json_decref(o);
        return line;
}

/* ---- loading ---------------------------------------------------------------------- */

static void problem(struct pinlet_pins *p, size_t lineno, const char *what)
{
        p->report.skipped++;
        log_debug("pins: %s: line %zu skipped: %s", strempty(p->path), lineno, what);
        if (!p->first_problem && asprintf(&p->first_problem, "line %zu: %s", lineno, what) < 0)
                p->first_problem = NULL;
        p->report.first_problem = p->first_problem;
}

static bool json_time(json_t *v, int64_t *ret)
{
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return false;
        *ret = json_integer_value(v);
        return true;
}

/* A forget() as a log line, '\n' included: {"ref":R,"forgotten":true}. NULL on allocation
 * failure. */
static char *forgotten_line(const char *ref)
{
        json_t *o = json_pack("{s:s, s:b}", "ref", ref, "forgotten", 1);
        char *line;

        if (!o)
                return NULL;
        line = pinlet_json_line(o);
        json_decref(o);
        return line;
}

/* Parses one line into a pin, or for a deletion line into a pin with digest NULL. Returns
 * NULL with *ret_why set when the line is unusable (or on allocation failure, *ret_why then
 * says so). */
static struct pin *parse_line(const char *line, size_t len, const char **ret_why)
{
        _cleanup_(pin_freep) struct pin *pin = NULL;
        json_t *o, *v, *pods, *forgotten;
        json_error_t e;
        const char *why = NULL;

        o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &e);
        if (!o) {
                *ret_why = "not JSON";
                return NULL;
        }
        pin = calloc(1, sizeof(*pin));
        if (!pin) {
                why = "out of memory";
                goto out;
        }
        if (!json_is_object(o)) {
                why = "not a JSON object";
                goto out;
        }
        v = json_object_get(o, "ref");
        if (!valid_text(json_string_value(v), PINLET_PINS_REF_MAX)) {
                why = "missing or invalid \"ref\"";
                goto out;
        }
        forgotten = json_object_get(o, "forgotten");
        if (forgotten) {
                /* a deletion: only the reference matters */
                if (!json_is_true(forgotten))
                        why = "invalid \"forgotten\"";
                else if (!(pin->ref = strdup(json_string_value(v))))
                        why = "out of memory";
                goto out;
        }
        v = json_object_get(o, "digest");
        if (!valid_digest(json_string_value(v))) {
                why = "missing or invalid \"digest\"";
                goto out;
        }
        if (!json_time(json_object_get(o, "first_used"), &pin->first_used) ||
            !json_time(json_object_get(o, "last_used"), &pin->last_used)) {
                why = "missing or invalid \"first_used\" or \"last_used\"";
                goto out;
        }
        pin->written_used = pin->last_used;
        pods = json_object_get(o, "pods");
        if (pods && !json_is_array(pods)) {
                why = "\"pods\" is not an array";
                goto out;
        }
        pin->ref = strdup(json_string_value(json_object_get(o, "ref")));
        pin->digest = strdup(json_string_value(json_object_get(o, "digest")));
        if (!pin->ref || !pin->digest) {
                why = "out of memory";
                goto out;
        }
        /* Keep the last PINLET_PINS_MAX_PODS valid entries, as record() would have. */
        for (size_t i = 0; pods && i < json_array_size(pods); i++) {
                const char *s = json_string_value(json_array_get(pods, i));
                char *copy;

                if (!valid_text(s, PINLET_PINS_POD_MAX)) {
                        why = "invalid entry in \"pods\"";
                        goto out;
                }
                copy = strdup(s);
                if (!copy) {
                        why = "out of memory";
                        goto out;
                }
                pin_add_pod(pin, copy);
        }
out:
        json_decref(o);
        if (why) {
                *ret_why = why;
                return NULL;
        }
        return TAKE_PTR(pin);
}

static bool blank(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
                        return false;
        return true;
}

/* Applies a parsed pin: the later line for a reference replaces the earlier one and makes
 * it the most recent; a deletion (digest NULL) removes it. Called single-threaded (open)
 * or with mem held. */
static void apply(struct pinlet_pins *p, struct pin *pin)
{
        struct pin *old = find(p, pin->ref);

        if (old) {
                remove_pin(p, old);
                pin_free(old);
        }
        if (!pin->digest) {
                pin_free(pin);
                return;
        }
        insert(p, pin);
        p->report.evicted += evict(p);
}

static void loader_end_line(struct loader *l, bool terminated)
{
        struct pinlet_pins *p = l->p;
        const char *why = NULL;
        struct pin *pin;

        l->lineno++;
        p->report.lines++;
        if (l->overflow)
                problem(p, l->lineno, "line too long");
        else if (!blank(l->line, l->len)) {
                pin = parse_line(l->line, l->len, &why);
                if (pin)
                        apply(p, pin);
                else if (!terminated) {
                        /* cut short by a crash, or by a writer we are reading under */
                        p->report.truncated = 1;
                        log_debug("pins: %s: last line %zu incomplete: %s", strempty(p->path),
                                  l->lineno, why);
                } else
                        problem(p, l->lineno, why);
        }
        l->len = 0;
        l->overflow = false;
}

static void loader_feed(struct loader *l, const char *data, size_t n)
{
        while (n > 0) {
                const char *nl = memchr(data, '\n', n);
                size_t k = nl ? (size_t)(nl - data) : n;

                if (!l->overflow) {
                        if (l->len + k > PINLET_PINS_LINE_MAX)
                                l->overflow = true;
                        else {
                                memcpy(l->line + l->len, data, k);
                                l->len += k;
                        }
                }
                if (nl) {
                        loader_end_line(l, true);
                        k++;
                }
                data += k;
                n -= k;
                l->fed += k;
                if (nl)
                        l->complete = l->fed;
        }
}

static void loader_finish(struct loader *l)
{
        if (l->len > 0 || l->overflow)
                loader_end_line(l, false);
        l->p->report.entries = pinlet_lru_size(&l->p->lru);
}

static int loader_init(struct loader *l, struct pinlet_pins *p)
{
        *l = (struct loader){ .p = p };
        l->line = malloc(PINLET_PINS_LINE_MAX + 1);
        return l->line ? 0 : -ENOMEM;
}

int pinlet_pins_load_data(struct pinlet_pins *p, const void *data, size_t size)
{
        struct loader l;

        if (loader_init(&l, p) < 0)
                return -ENOMEM;
        pthread_mutex_lock(&p->io); /* changes assume nothing but writers touches memory */
        pthread_rwlock_wrlock(&p->mem);
        loader_feed(&l, data, size);
        loader_finish(&l);
        pthread_rwlock_unlock(&p->mem);
        pthread_mutex_unlock(&p->io);
        free(l.line);
        return 0;
}

/* Loads p->path. A missing file is an empty store; an unreadable one is an error (the
 * read-write open would otherwise compact it away). */
static int load_file(struct pinlet_pins *p, struct pinlet_error **err)
{
        _cleanup_error_ struct pinlet_error *e = NULL;
        _cleanup_close_ int fd = -1;
        struct loader l;
        char buf[65536];
        ssize_t k;
        int r = 0;

        fd = pinlet_io_open(p->path, O_RDONLY, 0, &e);
        if (fd == -ENOENT)
                return 0;
        if (fd < 0)
                return pinlet_error_set(err, fd, "pin store: %s", pinlet_error_message(e, fd));
        if (loader_init(&l, p) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        for (;;) {
                k = read(fd, buf, sizeof(buf));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = pinlet_error_set(err, -errno, "pin store %s: read: %s", p->path,
                                             strerror(errno));
                        break;
                }
                if (k == 0)
                        break;
                loader_feed(&l, buf, (size_t)k);
        }
        p->loaded_complete = l.complete;
        p->loaded_size = l.fed;
        loader_finish(&l);
        free(l.line);
        return r;
}

/* ---- writing ---------------------------------------------------------------------- */

/* Makes sure the n bytes from offset end, and RESERVE more after them, are allocated to
 * fd without changing its size. Returns 0, or -ENOSPC (-EDQUOT) when the space is not
 * there. A file system without fallocate (EOPNOTSUPP) has no reserve: 0, writes are tried
 * as they come. */
static int reserve(struct pinlet_pins *p, int fd, off_t end, size_t n)
{
        if (p->no_fallocate)
                return 0;
        for (;;) {
                if (fallocate(fd, FALLOC_FL_KEEP_SIZE, end, (off_t)n + RESERVE) == 0)
                        return 0;
                if (errno == EINTR)
                        continue;
                if (errno == EOPNOTSUPP || errno == ENOSYS) {
                        log_debug("pins: %s: no fallocate here, no reserve for deletions", p->path);
                        p->no_fallocate = true;
                        return 0;
                }
                return -errno;
        }
}

static int fsync_dir(const char *dir)
{
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

/*
 * Rewrites the log with the live pins, then pending (a change not yet in memory, or
 * NULL): temp file, reserve, fsync, rename, fsync dir; appends go to the new file from
 * then on. Called with io held (or single-threaded at open). On failure the old file
 * stays in use, unchanged.
 */
static int compact(struct pinlet_pins *p, const char *pending, struct pinlet_error **err)
{
        _cleanup_buf_ struct pinlet_buf b = {};
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        size_t count = 0;
        int r = 0;

        pinlet_buf_init(&b, SIZE_MAX / 2); /* bounded by max_entries pins of bounded size */
        pthread_rwlock_rdlock(&p->mem);
        for (struct pinlet_lru_node *n = pinlet_lru_oldest(&p->lru); n && r >= 0;
             n = pinlet_lru_newer(n)) {
                _cleanup_free_ char *line = pin_to_line(PIN(n));

                r = line ? pinlet_buf_append_str(&b, line) : -ENOMEM;
                count++;
        }
        pthread_rwlock_unlock(&p->mem);
        /* the last line for a reference wins: pending overrides its pin's line above */
        if (r >= 0 && pending) {
                r = pinlet_buf_append_str(&b, pending);
                count++;
        }
        if (r < 0)
                return pinlet_error_set(err, r, "pin store %s: out of memory", p->path);

        if (asprintf(&tmp, "%s/" TMP_PREFIX "XXXXXX", p->dir) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        /* mode 0600; O_EXCL already refuses an existing name, O_NOFOLLOW says so again.
         * O_APPEND: this descriptor becomes the log's after the rename. */
        fd = mkostemp(tmp, O_CLOEXEC | O_APPEND | O_NOFOLLOW);
        if (fd < 0)
                return pinlet_error_set(err, -errno, "pin store %s: %s", tmp, strerror(errno));
        r = pinlet_io_write_all(fd, b.data ? b.data : "", b.len);
        if (r >= 0) {
                /* Without the reserve the store still works; record() re-establishes it,
                 * or fails for lack of space. */
                int k = reserve(p, fd, (off_t)b.len, 0);
                if (k < 0)
                        log_debug("pins: %s: no room for the reserve: %s", p->path, strerror(-k));
        }
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, p->path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return pinlet_error_set(err, r, "pin store %s: compaction: %s", p->path,
                                        strerror(-r));
        }
        /* The renamed file is the log now, whatever happens below. */
        if (p->log_fd >= 0)
                close(p->log_fd);
        p->log_fd = TAKE_FD(fd);
        p->log_size = (off_t)b.len;
        p->log_lines = count;
        p->need_compact = false;
        r = fsync_dir(p->dir);
        if (r < 0)
                return pinlet_error_set(err, r, "pin store %s: fsync: %s", p->dir, strerror(-r));
        return 0;
}

/* Takes back a failed append: cuts the file to where it ended before, so that no part of
 * the line can come back after a restart. When even that fails, the next change rewrites
 * the file instead of appending after the remains. */
static void undo_append(struct pinlet_pins *p)
{
        if (ftruncate(p->log_fd, p->log_size) < 0 || fdatasync(p->log_fd) < 0) {
                log_debug("pins: %s: cannot undo a failed append: %s", p->path, strerror(errno));
                p->need_compact = true;
                return;
        }
        /* the truncation freed the reserve too (it lies past the end) */
        (void)reserve(p, p->log_fd, p->log_size, 0);
}

/*
 * Appends one change's line (io held); sync: fdatasync before returning. A record or touch
 * (use_reserve false) needs room for its line with the reserve intact after it, else it
 * fails with -ENOSPC before writing anything; a deletion (use_reserve true) may write into
 * the reserve, then tops it up if it can. On failure nothing of the line stays in the file.
 */
static int append(struct pinlet_pins *p, const char *line, bool sync, bool use_reserve,
                  struct pinlet_error **err)
{
        size_t n = strlen(line);
        int r;

        if (p->need_compact || p->log_fd < 0)
                return compact(p, line, err); /* includes the change, and syncs it */
        if (!use_reserve) {
                r = reserve(p, p->log_fd, p->log_size, n);
                if (r < 0)
                        return pinlet_error_set(err, r,
                                                "pin store %s: %s (the last %lld KiB are kept "
                                                "for forgetting pins)",
                                                p->path, strerror(-r), (long long)(RESERVE / 1024));
        }
        r = pinlet_io_write_all(p->log_fd, line, n);
        if (r >= 0 && sync && fdatasync(p->log_fd) < 0)
                r = -errno;
        if (r < 0) {
                undo_append(p);
                return pinlet_error_set(err, r, "pin store %s: %s", p->path, strerror(-r));
        }
        p->log_size += (off_t)n;
        p->log_lines++;
        if (use_reserve)
                (void)reserve(p, p->log_fd, p->log_size, 0);
        return 0;
}

/* Compacts when the log holds more than twice the live entries (plus 1024) lines (io
 * held). A failure is not the change's: its line is in the log already. */
static void maybe_compact(struct pinlet_pins *p)
{
        _cleanup_error_ struct pinlet_error *e = NULL;
        size_t n_live;
        int r;

        if (!p->dir)
                return;
        pthread_rwlock_rdlock(&p->mem);
        n_live = pinlet_lru_size(&p->lru);
        pthread_rwlock_unlock(&p->mem);
        if (p->log_lines <= 2 * n_live + 1024)
                return;
        r = compact(p, NULL, &e);
        if (r < 0)
                log_debug("pins: %s", pinlet_error_message(e, r));
}

/*
 * At open, when compaction found no room (a full disk is no reason to refuse to start):
 * append to the file as it is, its reserve included. Only for a file without damaged
 * lines (those must not stay in the log); a torn last line is cut off, an unterminated
 * valid one is terminated.
 */
static int keep_appending(struct pinlet_pins *p, struct pinlet_error **err)
{
        p->log_fd = pinlet_io_open(p->path, O_WRONLY | O_APPEND | O_CREAT, 0600, err);
        if (p->log_fd < 0)
                return pinlet_error_wrap(err, p->log_fd, "pin store");
        p->log_size = (off_t)p->loaded_size;
        p->log_lines = p->report.lines;
        if (p->loaded_complete < p->loaded_size) {
                int r = 0;

                if (p->report.truncated) {
                        if (ftruncate(p->log_fd, (off_t)p->loaded_complete) < 0)
                                r = -errno;
                        p->log_size = (off_t)p->loaded_complete;
                } else {
                        r = pinlet_io_write_all(p->log_fd, "\n", 1);
                        p->log_size++;
                }
                if (r < 0)
                        return pinlet_error_set(err, r, "pin store %s: %s", p->path, strerror(-r));
        }
        return 0;
}

/* ---- open / close ----------------------------------------------------------------- */

/* Temp files of an earlier process that died mid-compaction: we hold the lock, so no live
 * writer owns them. */
static void remove_temp_files(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
                        log_debug("pins: removing leftover %s/%s", dir, de->d_name);
                        unlinkat(dirfd(d), de->d_name, 0);
                }
        closedir(d);
}

static int pins_new(const char *dir, size_t max_entries, bool read_only, struct pinlet_pins **ret)
{
        struct pinlet_pins *p = calloc(1, sizeof(*p));
        int r;

        if (!p)
                return -ENOMEM;
        p->max = max_entries ? max_entries : PINLET_PINS_DEFAULT_MAX;
        r = pinlet_lru_init(&p->lru, p->max);
        changed(p);
        p->read_only = read_only;
        p->lock_fd = p->log_fd = -1;
        pthread_rwlock_init(&p->mem, NULL);
        pthread_mutex_init(&p->io, NULL);
        if (dir) {
                p->dir = strdup(dir);
                if (p->dir && asprintf(&p->path, "%s/" PINLET_PINS_FILE, dir) < 0)
                        p->path = NULL;
        }
        if (r < 0 || (dir && (!p->dir || !p->path))) {
                pinlet_pins_close(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

static int take_lock(struct pinlet_pins *p, struct pinlet_error **err)
{
        _cleanup_free_ char *lock = NULL;

        if (asprintf(&lock, "%s/" LOCK_FILE, p->dir) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        p->lock_fd = pinlet_io_open(lock, O_RDWR | O_CREAT, 0600, err);
        if (p->lock_fd < 0)
                return pinlet_error_wrap(err, p->lock_fd, "pin store");
        if (flock(p->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return pinlet_error_set(err, -EBUSY,
                                                "pin store %s is in use by another pinlet", p->dir);
                return pinlet_error_set(err, -errno, "pin store %s: flock: %s", lock,
                                        strerror(errno));
        }
        return 0;
}

/* Keeps the damaged log for a human to look at before compaction drops its bad lines. */
static void keep_corrupt_copy(struct pinlet_pins *p)
{
        _cleanup_free_ char *copy = NULL;

        if (asprintf(&copy, "%s" CORRUPT_EXT, p->path) < 0)
                return;
        unlink(copy);
        if (link(p->path, copy) < 0)
                log_debug("pins: cannot keep %s: %s", copy, strerror(errno));
}

int pinlet_pins_open(const char *dir, size_t max_entries, struct pinlet_pins **ret,
                     struct pinlet_error **err)
{
        _cleanup_error_ struct pinlet_error *e = NULL;
        _cleanup_pins_ struct pinlet_pins *p = NULL;
        int r;

        if (dir && !*dir)
                return pinlet_error_set(err, -EINVAL, "pin store: empty directory name");
        r = pins_new(dir, max_entries, false, &p);
        if (r < 0)
                return pinlet_error_set(err, r, "out of memory");
        if (dir) {
                r = pinlet_io_mkdir_p(dir, 0700);
                if (r < 0)
                        return pinlet_error_set(err, r, "pin store %s: mkdir: %s", dir,
                                                strerror(-r));
                r = pinlet_io_check_dir(dir, "state directory", 0700, err);
                if (r < 0)
                        return r;
                r = take_lock(p, err);
                if (r < 0)
                        return r;
                remove_temp_files(dir);
                r = load_file(p, err);
                if (r < 0)
                        return r;
                if (p->report.skipped > 0)
                        keep_corrupt_copy(p);
                /* Start from a clean file: no damaged or torn line to append after. */
                r = compact(p, NULL, &e);
                if ((r == -ENOSPC || r == -EDQUOT) && p->report.skipped == 0) {
                        log_debug("pins: %s; appending to the file as it is",
                                  pinlet_error_message(e, r));
                        r = keep_appending(p, err);
                } else if (r < 0)
                        return pinlet_error_set(err, r, "%s", pinlet_error_message(e, r));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

int pinlet_pins_open_readonly(const char *dir, size_t max_entries, struct pinlet_pins **ret,
                              struct pinlet_error **err)
{
        _cleanup_pins_ struct pinlet_pins *p = NULL;
        int r;

        if (!dir || !*dir)
                return pinlet_error_set(err, -EINVAL, "pin store: no directory");
        r = pins_new(dir, max_entries, true, &p);
        if (r < 0)
                return pinlet_error_set(err, r, "out of memory");
        r = load_file(p, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

void pinlet_pins_close(struct pinlet_pins *p)
{
        struct pinlet_lru_node *n, *next;

        if (!p)
                return;
        for (n = pinlet_lru_newest(&p->lru); n; n = next) {
                next = pinlet_lru_older(n);
                pin_free(PIN(n));
        }
        pinlet_lru_done(&p->lru);
        if (p->log_fd >= 0)
                close(p->log_fd);
        if (p->lock_fd >= 0)
                close(p->lock_fd); /* releases the flock */
        free(p->dir);
        free(p->path);
        free(p->first_problem);
        pthread_rwlock_destroy(&p->mem);
        pthread_mutex_destroy(&p->io);
        free(p);
}

const struct pinlet_pins_load_report *pinlet_pins_load_report(struct pinlet_pins *p)
{
        return &p->report;
}

/* ---- queries and changes ---------------------------------------------------------- */

int pinlet_pins_lookup(struct pinlet_pins *p, const char *ref, char **ret_digest)
{
        struct pin *pin;
        int r = -ENOENT;

        if (!valid_text(ref, PINLET_PINS_REF_MAX))
                return -EINVAL;
        pthread_rwlock_rdlock(&p->mem);
        pin = find(p, ref);
        if (pin) {
                char *d = strdup(pin->digest);
                if (d) {
                        *ret_digest = d;
                        r = 0;
                } else
                        r = -ENOMEM;
        }
        pthread_rwlock_unlock(&p->mem);
        return r;
}

static int check_args(struct pinlet_pins *p, const char *ref, const char *digest, const char *pod,
                      struct pinlet_error **err)
{
        if (p->read_only)
                return pinlet_error_set(err, -EROFS, "pin store %s is open read-only",
                                        strempty(p->dir));
        if (!valid_text(ref, PINLET_PINS_REF_MAX))
                return pinlet_error_set(err, -EINVAL, "pin store: invalid reference");
        if (digest && !valid_digest(digest))
                return pinlet_error_set(err, -EINVAL, "pin store: invalid digest for %s", ref);
        if (pod && !valid_text(pod, PINLET_PINS_POD_MAX))
                return pinlet_error_set(err, -EINVAL, "pin store: invalid pod for %s", ref);
        return 0;
}

/* A copy of pin, for building its next state aside. NULL on allocation failure. */
static struct pin *pin_clone(const struct pin *pin)
{
        _cleanup_(pin_freep) struct pin *c = calloc(1, sizeof(*c));

        if (!c || !(c->ref = strdup(pin->ref)) || !(c->digest = strdup(pin->digest)))
                return NULL;
        c->first_used = pin->first_used;
        c->last_used = pin->last_used;
        c->written_used = pin->written_used;
        for (size_t i = 0; i < pin->n_pods; i++) {
                c->pods[i] = strdup(pin->pods[i]);
                if (!c->pods[i])
                        return NULL;
                c->n_pods++;
        }
        return TAKE_PTR(c);
}

/* Gives pin the state of next (same reference), and next the old state to be freed. */
static void pin_swap_state(struct pin *pin, struct pin *next)
{
        struct pin old = *pin;

        pin->digest = next->digest;
        pin->first_used = next->first_used;
        pin->last_used = next->last_used;
        pin->written_used = next->written_used;
        memcpy(pin->pods, next->pods, sizeof(pin->pods));
        pin->n_pods = next->n_pods;
        next->digest = old.digest;
        memcpy(next->pods, old.pods, sizeof(next->pods));
        next->n_pods = old.n_pods;
}

/*
 * A use that would change nothing on disk but last_used, by less than
 * PINLET_PINS_TOUCH_WRITE_S since the log last had it: the same digest, no pod or the pod
 * already the most recent one. kubelet asks ImageStatus for every image of every pod
 * every few seconds; a line each time would cost a write(2) and a JSON line per call and
 * make the log compact itself over and over, for a value only eviction order reads.
 */
static bool quiet_touch(const struct pin *pin, const char *digest, const char *pod, int64_t now)
{
        if (digest && strcmp(pin->digest, digest) != 0)
                return false;
        if (pod && (pin->n_pods == 0 || strcmp(pin->pods[pin->n_pods - 1], pod) != 0))
                return false;
        return now >= pin->written_used && now - pin->written_used < PINLET_PINS_TOUCH_WRITE_S;
}

/*
 * record() (digest set) and touch() (digest NULL). The pin's next state is built aside,
 * its line written, and only then put in memory: a change that cannot be written leaves
 * memory as it was. io serializes the writers (they alone change memory), so the pin
 * found at the start is still there, unchanged, when the new state goes in.
 */
/* nowait: give up with -EAGAIN rather than wait for another writer, and leave compaction
 * (a rewrite with fsync) to a later change. */
static int change(struct pinlet_pins *p, const char *ref, const char *digest, const char *pod,
                  bool nowait, char **ret_previous_digest, struct pinlet_error **err)
{
        _cleanup_free_ char *pod_copy = NULL, *previous = NULL, *line = NULL;
        _cleanup_(pin_freep) struct pin *next = NULL;
        struct pin *pin;
        bool sync = false;
        int64_t now;
        int r = 0;

        pod_copy = pod ? strdup(pod) : NULL;
        if (pod && !pod_copy)
                return pinlet_error_set(err, -ENOMEM, "out of memory");

        if (!nowait)
                pthread_mutex_lock(&p->io);
        else if (pthread_mutex_trylock(&p->io) != 0)
                return -EAGAIN;
        now = (int64_t)time(NULL);
        pthread_rwlock_rdlock(&p->mem);
        pin = find(p, ref);
        if (pin && quiet_touch(pin, digest, pod, now)) {
                pthread_rwlock_unlock(&p->mem);
                /* io is held: no other writer changes or removes pin meanwhile */
                pthread_rwlock_wrlock(&p->mem);
                pin->last_used = now;
                pinlet_lru_touch(&p->lru, &pin->node);
                pthread_rwlock_unlock(&p->mem);
                goto out;
        }
        if (pin)
                next = pin_clone(pin);
        else if (digest && (next = calloc(1, sizeof(*next))) && !(next->ref = strdup(ref))) {
                pin_free(next);
                next = NULL;
        }
        pthread_rwlock_unlock(&p->mem);
        if (!pin && !digest)
                r = pinlet_error_set(err, -ENOENT, "pin store: no pin for %s", ref);
        else if (!next)
                r = pinlet_error_set(err, -ENOMEM, "out of memory");
        if (r < 0)
                goto out;

        if (digest && (!pin || strcmp(pin->digest, digest) != 0)) {
                char *d = strdup(digest);

                if (!d) {
                        r = pinlet_error_set(err, -ENOMEM, "out of memory");
                        goto out;
                }
                /* new, or the tag moved: a new digest starts a new history */
                previous = next->digest;
                next->digest = d;
                next->first_used = now;
                pin_clear_pods(next);
                sync = true;
        }
        next->last_used = now;
        if (pod_copy)
                pin_add_pod(next, TAKE_PTR(pod_copy));
        if (p->dir) {
                line = pin_to_line(next);
                if (!line) {
                        r = pinlet_error_set(err, -ENOMEM, "out of memory");
                        goto out;
                }
                r = append(p, line, sync, false, err);
                if (r < 0)
                        goto out;
        }
        next->written_used = now;

        pthread_rwlock_wrlock(&p->mem);
        if (pin) {
                pin_swap_state(pin, next);
                pinlet_lru_touch(&p->lru, &pin->node);
                if (sync)
                        changed(p); /* the tag moved */
        } else
                insert(p, TAKE_PTR(next));
        evict(p);
        pthread_rwlock_unlock(&p->mem);
        if (!nowait)
                maybe_compact(p);
out:
        pthread_mutex_unlock(&p->io);
        if (r >= 0 && ret_previous_digest)
                *ret_previous_digest = pin ? TAKE_PTR(previous) : NULL;
        return r;
}

int pinlet_pins_record(struct pinlet_pins *p, const char *ref, const char *digest, const char *pod,
                       char **ret_previous_digest, struct pinlet_error **err)
{
        int r;

        r = check_args(p, ref, digest, pod, err);
        if (r < 0)
                return r;
        if (!digest)
                return pinlet_error_set(err, -EINVAL, "pin store: no digest for %s", ref);
        return change(p, ref, digest, pod, false, ret_previous_digest, err);
}

int pinlet_pins_touch(struct pinlet_pins *p, const char *ref, const char *pod,
                      struct pinlet_error **err)
{
        int r;

        r = check_args(p, ref, NULL, pod, err);
        if (r < 0)
                return r;
        return change(p, ref, NULL, pod, false, NULL, err);
}

int pinlet_pins_touch_nowait(struct pinlet_pins *p, const char *ref, const char *pod)
{
        int r = check_args(p, ref, NULL, pod, NULL);

        if (r < 0)
                return r;
        return change(p, ref, NULL, pod, true, NULL, NULL);
}

int pinlet_pins_forget(struct pinlet_pins *p, const char *ref, struct pinlet_error **err)
{
        _cleanup_free_ char *line = NULL;
        struct pin *pin;
        int r = 0;

        r = check_args(p, ref, NULL, NULL, err);
        if (r < 0)
                return r;
        /* Allocate before taking locks; with no pin the line is simply not used. */
        if (p->dir) {
                line = forgotten_line(ref);
                if (!line)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
        }

        pthread_mutex_lock(&p->io);
        pthread_rwlock_wrlock(&p->mem);
        pin = find(p, ref);
        if (pin)
                remove_pin(p, pin);
        pthread_rwlock_unlock(&p->mem);
        if (!pin) {
                /* memory and log agree already: nothing to write */
                pthread_mutex_unlock(&p->io);
                return 0;
        }
        log_debug("pins: forgot %s (was %s)", pin->ref, pin->digest);
        pin_free(pin);
        /* Memory forgets even when the line cannot be written: nothing in this process
         * uses the pin again. Synced like a moved pin (after a crash the old digest must
         * not come back), and allowed into the reserve: this must work on a full disk. */
        if (p->dir) {
                r = append(p, line, true, true, err);
                if (r >= 0)
                        maybe_compact(p);
        }
        pthread_mutex_unlock(&p->io);
        return r < 0 ? r : 1;
}

int pinlet_pins_list(struct pinlet_pins *p, pinlet_pins_list_fn fn, void *userdata)
{
        int r = 0, n = 0;

        pthread_rwlock_rdlock(&p->mem);
        for (struct pinlet_lru_node *node = pinlet_lru_oldest(&p->lru); node;
             node = pinlet_lru_newer(node)) {
                const struct pin *pin = PIN(node);
                const struct pinlet_pin view = {
                        .reference = pin->ref,
                        .digest = pin->digest,
                        .first_used = pin->first_used,
                        .last_used = pin->last_used,
                        .pods = (const char *const *)pin->pods,
                        .n_pods = pin->n_pods,
                };

                r = fn(userdata, &view);
                if (r < 0)
                        break;
                n++;
        }
        pthread_rwlock_unlock(&p->mem);
        return r < 0 ? r : n;
}

uint64_t pinlet_pins_generation(struct pinlet_pins *p)
{
        return atomic_load(&p->generation);
}

size_t pinlet_pins_size(struct pinlet_pins *p)
{
        size_t n;

        pthread_rwlock_rdlock(&p->mem);
        n = pinlet_lru_size(&p->lru);
        pthread_rwlock_unlock(&p->mem);
        return n;
}
