/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pin store: for each normalized tag reference ("docker.io/library/nginx:1.25") the
 * digest pinlet pulled for it, when that digest was first and last used, and the last few
 * pods that used it ("namespace/name/uid"). CreateContainer and ImageStatus use it so that
 * the run uses what the pull fetched; operators read it with `pinlet pins`.
 *
 * On disk: DIR/pins.jsonl, an append-only log of JSON lines, one line per change holding
 * the entry's whole new state; the last line for a reference wins:
 *
 *   {"ref":"docker.io/library/nginx:1.25","digest":"sha256:…","first_used":1764172179,
 *    "last_used":1764172201,"pods":["prod/web-0/6c1f…"]}
 *
 * (times in unix seconds). A forgotten pin (pinlet_pins_forget) is a deletion line,
 *
 *   {"ref":"docker.io/library/nginx:1.25","forgotten":true}
 *
 * which removes the reference's earlier lines; compaction drops it with them. Why a log
 * rather than rewriting one file per change: a record costs one small append instead of
 * rewriting up to max_entries entries. Crash safety:
 *   - a new, moved or forgotten pin is appended and fdatasync'ed before record() or
 *     forget() returns; touches and same-digest records are appended without a sync
 *     (losing a last_used update in a crash is harmless), and only when they change
 *     more than last_used, or last_used by PINLET_PINS_TOUCH_WRITE_S or more;
 *   - a torn last line (crash mid-append) is not valid JSON: the loader skips it;
 *   - compaction writes the live entries to DIR/.pins.jsonl.tmp.XXXXXX, fsyncs it, renames
 *     it over pins.jsonl and fsyncs DIR, so the file is always either the old or the new
 *     log. It runs at every read-write open and when the log holds more than twice the
 *     live entries (plus 1024) lines. Leftover temp files are ignored by the loader and
 *     removed by the next read-write open.
 * Disk full: record() and touch() append only when the line fits with a reserve of
 * 64 KiB still allocated past the end of pins.jsonl (fallocate FALLOC_FL_KEEP_SIZE, made
 * at every compaction and topped up after use); otherwise they fail with -ENOSPC and
 * change nothing. forget() may write into that reserve, so a deletion still reaches the
 * file on a full disk. A failed append is cut off again (ftruncate), so no part of it
 * comes back after a restart. A read-write open on a full disk, where compaction finds no
 * room, appends to the existing file instead (unless it holds damaged lines).
 *
 * The guarantee this gives callers: after a restart, the store never returns a digest
 * for a tag other than the last one record() returned success for, and never one whose
 * forget() returned success. (A record() that fails leaves the previous pin in place: a
 * caller whose pull went ahead with the new digest calls forget(), which works on a full
 * disk, so that no older pin is left behind.)
 *
 * Files: pins.jsonl, pins.lock and the temporary files are opened with O_NOFOLLOW: a
 * symbolic link planted at any of them makes open fail with -ELOOP ("refusing to open X:
 * it is a symbolic link"). An existing DIR must be owned by pinlet's user (or root) and
 * not writable by group or others, or the read-write open fails with -EPERM saying what
 * to fix (see pinlet_io_check_dir); directories it creates are 0700.
 *
 * Loading never fails on content: lines that are not JSON, lack fields, carry invalid
 * values, or exceed PINLET_PINS_LINE_MAX bytes are skipped and counted (see
 * pinlet_pins_load_report; the caller logs it). When anything was skipped, the read-write
 * open keeps a copy of the damaged file as DIR/pins.jsonl.corrupt before compacting.
 *
 * Bound: at most max_entries pins; the least recently recorded or touched pin is evicted
 * (recency follows last_used, and at load the order of the log).
 *
 * Exclusive writer: a read-write open creates DIR (0700, parents too), checks it, and holds an
 * exclusive flock on DIR/pins.lock; a second one fails with -EBUSY. A read-only open
 * (`pinlet pins`) takes no lock, writes nothing and tolerates a concurrent writer: it reads
 * the file a rename last put in place, and a torn last line is skipped.
 *
 * Thread-safety: every function except close may be called from any thread at any time.
 * Readers (lookup, list) take a shared lock that writers hold only while they update
 * memory, never during disk I/O; writers serialize among themselves on a second lock held
 * during the append (and fsync). list() calls its callback under the shared lock: it must
 * not call back into the store.
 *
 * Errors: -EINVAL for invalid arguments (empty or oversized reference, digest or pod
 * strings, or control characters), -ENOENT when a reference has no pin, -EROFS for writes
 * to a read-only store, -EBUSY when another writer holds the store, -ELOOP for a
 * symbolic link and -EPERM for an unsafe directory (at open), -ENOSPC when a change does
 * not fit (see "Disk full"), -ENOMEM, or the -errno of a failed file operation with *err
 * naming the file.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define PINLET_PINS_FILE        "pins.jsonl"
#define PINLET_PINS_DEFAULT_MAX 10000
#define PINLET_PINS_MAX_PODS    8 /* pods kept per pin, most recent last */
/* A use that changes only last_used reaches the log at most once per this many seconds
 * per pin (see pinlet_pins_touch). */
#define PINLET_PINS_TOUCH_WRITE_S 60
#define PINLET_PINS_REF_MAX       512
#define PINLET_PINS_DIGEST_MAX    160   /* "sha512:" + 128 hex fits */
#define PINLET_PINS_POD_MAX       512   /* "namespace/name/uid": 63 + 253 + 36 + 2 fits */
#define PINLET_PINS_LINE_MAX      16384 /* a longer line is skipped at load */

struct pinlet_pins;

/* One pin, as list() shows it. Borrowed: valid only during the callback. */
struct pinlet_pin {
        const char *reference;
        const char *digest;
        int64_t first_used; /* unix seconds: the first use of this digest for the reference */
        int64_t last_used;
        const char *const *pods; /* n_pods "namespace/name/uid", oldest first */
        size_t n_pods;
};

/* What the load found. Owned by the store. */
struct pinlet_pins_load_report {
        size_t lines;              /* lines read */
        size_t skipped;            /* lines skipped as damaged */
        size_t truncated;          /* 1 when the last line was cut short and unusable: a crash, or
                                    * (read-only) a writer in the middle of an append */
        size_t evicted;            /* entries dropped by the bound while loading */
        size_t entries;            /* pins held after the load */
        const char *first_problem; /* "line 12: not JSON: …", or NULL when nothing skipped */
};

/*
 * Opens the store in dir for reading and writing (see above: creates dir, locks it, loads,
 * compacts). dir NULL gives a memory-only store (nothing persisted; used by tests, the
 * fuzzer, and a daemon without state). max_entries 0 means PINLET_PINS_DEFAULT_MAX.
 */
int pinlet_pins_open(const char *dir, size_t max_entries, struct pinlet_pins **ret,
                     struct pinlet_error **err);

/* Opens the store for reading only: no lock, no writes, no directory creation. A missing
 * directory or file gives an empty store. */
int pinlet_pins_open_readonly(const char *dir, size_t max_entries, struct pinlet_pins **ret,
                              struct pinlet_error **err);

void pinlet_pins_close(struct pinlet_pins *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_pins *, pinlet_pins_close)
#define _cleanup_pins_ _cleanup_(pinlet_pins_closep)

const struct pinlet_pins_load_report *pinlet_pins_load_report(struct pinlet_pins *p);

/* A number that changes whenever the set of (reference, digest) pairs does (a new,
 * moved, forgotten or evicted pin; a load), never when only last_used or pods do. Numbers
 * are unique across every store of the process: a caller may keep something derived from
 * the pins and reuse it while the number it read before deriving it is still current. */
uint64_t pinlet_pins_generation(struct pinlet_pins *p);

/* The pinned digest of ref: 0 with *ret_digest (caller owns), -ENOENT, -ENOMEM. */
int pinlet_pins_lookup(struct pinlet_pins *p, const char *ref, char **ret_digest);

/*
 * Records that ref was pulled as digest, by pod (NULL when unknown). A new pin starts its
 * first_used now; the same digest again updates last_used and adds the pod; a different
 * digest moves the pin: *ret_previous_digest (when not NULL) receives the old digest
 * (caller owns) and first_used restarts with the pod list reset to this pod. Otherwise
 * *ret_previous_digest is set to NULL.
 * Atomic: the line is written (and, for a new or moved pin, fdatasync'ed) before memory
 * changes. When it cannot be (invalid arguments, -ENOSPC, -EIO...), the call returns the
 * -errno with *err set, memory and file are as before, and *ret_previous_digest is not
 * written.
 */
int pinlet_pins_record(struct pinlet_pins *p, const char *ref, const char *digest, const char *pod,
                       char **ret_previous_digest, struct pinlet_error **err);

/* Marks an existing pin as used now (by pod, when not NULL). -ENOENT when ref has none.
 * Atomic like record(); not synced (a lost last_used is harmless). A use that changes
 * nothing but last_used (no pod, or the pod already the most recent one) within
 * PINLET_PINS_TOUCH_WRITE_S of the last_used the log holds changes memory only (recency
 * and last_used) and writes no line: after a restart last_used may be up to that much
 * older. The same holds for a record() of the digest the pin already has. */
int pinlet_pins_touch(struct pinlet_pins *p, const char *ref, const char *pod,
                      struct pinlet_error **err);

/* touch() for a thread that must not block (the gRPC completion-queue thread): -EAGAIN at
 * once when another change holds the store (one that may be fsync'ing), and never
 * compacts. The append itself is a write(2) to the page cache, without a sync. */
int pinlet_pins_touch_nowait(struct pinlet_pins *p, const char *ref, const char *pod);

/*
 * Removes ref's pin, so the store no longer claims a digest for it: used when the tag was
 * pulled without pinlet knowing what it resolved to. Returns 1 when a pin was removed
 * (the deletion is appended and fdatasync'ed), 0 when ref had none (nothing is written).
 * It works on a full disk (see "Disk full"). If the deletion nevertheless cannot be
 * written, the call returns the -errno with *err set (the caller logs it), yet the pin is
 * gone from memory (and a later compaction leaves it out of the file); after a restart
 * before such a compaction the pin may be back.
 */
int pinlet_pins_forget(struct pinlet_pins *p, const char *ref, struct pinlet_error **err);

/* Calls fn for every pin, least recently used first; stops at and returns the first
 * negative value fn returns; else returns the number of pins visited. */
typedef int (*pinlet_pins_list_fn)(void *userdata, const struct pinlet_pin *pin);
int pinlet_pins_list(struct pinlet_pins *p, pinlet_pins_list_fn fn, void *userdata);

size_t pinlet_pins_size(struct pinlet_pins *p);

/* Loads data (the content of a pins.jsonl) into a store, as open does with the file:
 * never fails on content, updates the load report. Returns 0 or -ENOMEM. For the fuzzer
 * and tests; use it on a memory-only store. */
int pinlet_pins_load_data(struct pinlet_pins *p, const void *data, size_t size);
