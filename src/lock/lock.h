/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Lock files: a deploy-time mapping from tag references to the digests they must mean,
 * written by `pinlet lock` in a pipeline and shared by every node (a ConfigMap volume, a
 * file shipped with the node image). Any number of files may be loaded together.
 *
 *   # written by `pinlet lock`
 *   version: 1
 *   images:
 *     docker.io/library/nginx:1.25: sha256:6a59…
 *     registry.corp.example/team/app:v3: sha256:0b4c…
 *
 * JSON with the same structure is accepted too ({"version": 1, "images": {…}}): it is read
 * by the same YAML parser, since the JSON a lock holds is YAML flow syntax.
 *
 * Keys are references with a tag in any form users write ("nginx:1.25"), normalized at
 * load exactly as requests are (pinlet_ref_parse + pinlet_ref_string), so lookups take the
 * normalized form. A key with a digest or without a tag is an error; values are digests
 * as pinlet_ref_digest_valid() accepts them.
 *
 * Errors name the file and the line ("/etc/pinlet/lock/app.yaml:7: …"): invalid YAML, an
 * unknown key, a missing or unsupported version, a key without a tag or with a digest, a
 * bad digest, a string holding a NUL byte, nesting deeper than the schema (anything below
 * `images` is refused as soon as it starts), YAML aliases, and one reference locked to two
 * different digests, in one file or across files (both places named). The same digest
 * twice is fine. Bounds: a file of at most max_file_size bytes, at most max_entries
 * entries over all files, keys of at most PINLET_LOCK_KEY_MAX bytes.
 *
 * Paths are files or directories. A directory stands for every regular file in it (or
 * symlink to one) whose name ends in ".yaml", ".yml" or ".json" and does not start with
 * '.', in byte order of the names. That is the layout of a Kubernetes ConfigMap volume:
 *
 *   lock/..2026_12_03_10_00_00.123/app.yaml   the data, in a timestamped directory
 *   lock/..data -> ..2026_12_03_10_00_00.123  swapped atomically (rename) on update
 *   lock/app.yaml -> ..data/app.yaml          what we read
 *
 * Error classes: -EINVAL for content (message "file:line: …"), -E2BIG for a bound,
 * -ENOENT/-EACCES/… (the -errno) when a path cannot be read, -ENOMEM.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define PINLET_LOCK_DEFAULT_MAX_ENTRIES   100000
#define PINLET_LOCK_DEFAULT_MAX_FILE_SIZE (64u * 1024 * 1024)
#define PINLET_LOCK_KEY_MAX               1024 /* a key as written, before normalization */
#define PINLET_LOCK_VERSION               1

/* Zero-initialized means the defaults. */
struct pinlet_lock_options {
        size_t max_entries;   /* over all files of one set; 0: PINLET_LOCK_DEFAULT_MAX_ENTRIES */
        size_t max_file_size; /* per file, bytes; 0: PINLET_LOCK_DEFAULT_MAX_FILE_SIZE */
};

/* ---- the set: what a group of lock files says ------------------------------------------- */

/*
 * Immutable once loaded, reference counted (atomically): any thread may look up, ref and
 * unref at any time. The strings it hands out are borrowed and live as long as the caller
 * holds a reference.
 */
struct pinlet_lock_set;

/* Loads every path (NULL-terminated; NULL or empty gives an empty set). On error nothing
 * is returned: a set with any error is refused whole. */
int pinlet_lock_set_load(char *const *paths, const struct pinlet_lock_options *opts,
                         struct pinlet_lock_set **ret, struct pinlet_error **err);

/* Parses one lock document from memory, named name in messages (for tests, the fuzzer and
 * `pinlet lock --merge`-style callers that already hold the bytes). */
int pinlet_lock_set_load_data(const char *name, const void *data, size_t len,
                              const struct pinlet_lock_options *opts, struct pinlet_lock_set **ret,
                              struct pinlet_error **err);

struct pinlet_lock_set *pinlet_lock_set_ref(struct pinlet_lock_set *s);
/* Drops a reference; the last one frees the set. Accepts NULL. */
void pinlet_lock_set_unref(struct pinlet_lock_set *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_lock_set *, pinlet_lock_set_unref)
#define _cleanup_lock_set_ _cleanup_(pinlet_lock_set_unrefp)

/* The digest a normalized tag reference ("docker.io/library/nginx:1.25") is locked to,
 * and the file that says so (both borrowed from s; ret_file may be NULL). O(1): a hash
 * table. Returns 0, or -ENOENT when s is NULL or does not name ref. */
int pinlet_lock_set_lookup(const struct pinlet_lock_set *s, const char *ref,
                           const char **ret_digest, const char **ret_file);

size_t pinlet_lock_set_size(const struct pinlet_lock_set *s);

/* Calls fn for every entry in load order (file by file, line by line; a reference named
 * twice with the same digest appears once, where first named). Stops at and returns the
 * first negative value fn returns; else returns 0. Borrowed strings, as for lookup. */
typedef int (*pinlet_lock_set_foreach_fn)(void *userdata, const char *ref, const char *digest,
                                          const char *file, unsigned long line);
int pinlet_lock_set_foreach(const struct pinlet_lock_set *s, pinlet_lock_set_foreach_fn fn,
                            void *userdata);

/* ---- writing ---------------------------------------------------------------------------- */

struct pinlet_lock_entry {
        const char *ref;    /* normalized tag reference */
        const char *digest; /* pinlet_ref_digest_valid() */
};

/*
 * The lock file text for entries: the header comment, "version: 1", and the images
 * sorted by reference (byte order), one per line, so the same answers always give the
 * same bytes. Refuses (-EINVAL, naming it) an entry that the loader would refuse, and two
 * entries for one reference (a duplicate with the same digest is written once). entries
 * is sorted in place. *ret_text is NUL-terminated and the caller's.
 */
int pinlet_lock_format(struct pinlet_lock_entry *entries, size_t n, char **ret_text,
                       size_t *ret_len, struct pinlet_error **err);

/* Replaces path atomically with data: a temporary file in the same directory, fsync,
 * rename over path, fsync of the directory. Readers see the old file or the new one,
 * never a part. The file is created 0644 (a lock holds no secret). */
int pinlet_lock_write_file(const char *path, const void *data, size_t len,
                           struct pinlet_error **err);

/* ---- the live lock: the current set, reloaded when the files change ---------------------- */

/*
 * Holds the current set for the daemon. pinlet_lock_get() returns a reference to ONE set:
 * a caller that uses it for a whole request never sees a mix of an old and a new set.
 * The watcher thread reloads the whole set when a watched file or directory changes
 * (debounced ~100 ms, so a ConfigMap update or an editor's burst is one reload; in force
 * within a second). A set with any error is refused whole: the previous one stays, and
 * the error (file:line) is logged at error level; a success is logged at info with the
 * entry count.
 *
 * Watched with inotify: every configured directory, and the directory of every configured
 * file (only events naming that file, or a ".."-prefixed ConfigMap entry, count there).
 *
 * Thread-safety: get, reload and get_stats may be called from any thread at any time;
 * new, watch_start and free from one owner thread.
 */
struct pinlet_lock;

struct pinlet_lock_stats {
        uint64_t reloads_ok;     /* successful reloads (the initial load not counted) */
        uint64_t reloads_failed; /* refused reloads: the previous set stayed in force */
        size_t entries;          /* entries of the set in force */
};

/* Copies paths and opts and loads the set once; fails (nothing returned) when that load
 * fails, so a daemon starts only with a lock it could read. */
int pinlet_lock_new(char *const *paths, const struct pinlet_lock_options *opts,
                    struct pinlet_lock **ret, struct pinlet_error **err);

/* Starts the watcher thread. -errno with *err when inotify or the thread cannot start. */
int pinlet_lock_watch_start(struct pinlet_lock *l, struct pinlet_error **err);

/* Reloads now, as the watcher does (logs and counts likewise). Returns 0 when the new set
 * took effect, else the error (the previous set stays). */
int pinlet_lock_reload(struct pinlet_lock *l, struct pinlet_error **err);

/* A new reference to the current set (never NULL); the caller unrefs it. */
struct pinlet_lock_set *pinlet_lock_get(struct pinlet_lock *l);

void pinlet_lock_get_stats(struct pinlet_lock *l, struct pinlet_lock_stats *ret);

/* Stops the watcher (wakes it through an eventfd and joins it) and frees. Accepts NULL. */
void pinlet_lock_free(struct pinlet_lock *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_lock *, pinlet_lock_free)
#define _cleanup_lock_ _cleanup_(pinlet_lock_freep)
