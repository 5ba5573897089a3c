/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit trail: one JSON object per line per decision (jansson, compact, fields in a
 * fixed order), for example
 *
 *   {"time":"2026-11-26T15:49:39.123456789Z","method":"PullImage",
 *    "pod":{"namespace":"prod","name":"web-0","uid":"6c1f…"},"image":"nginx:1.25",
 *    "resolved":"docker.io/library/nginx@sha256:…","source":"registry","registry_ms":84,
 *    "decision":"substituted","mode":"enforce"}
 *
 * Destinations: a file, opened O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC|O_NOFOLLOW mode 0640
 * (its parent directories are created 0750), and/or stderr. The file is refused when it is
 * a symbolic link ("refusing to open X: it is a symbolic link") or when the directory that
 * holds it is writable by group or others or owned by another user than pinlet (or root):
 * anyone who can create files there could make pinlet append to any file on the node.
 * See pinlet_io_check_dir() for the messages. Each record is built in full first and
 * written with ONE write(2): with O_APPEND, lines from concurrent threads (and other
 * processes appending to the same file) never interleave.
 *
 * logrotate: rename the file, then call pinlet_audit_reopen() (the daemon does on
 * SIGUSR1); records written after it returns go to a new file at the configured path.
 * The swap happens under a write lock that waits for writes in progress on the old file.
 *
 * Failures: a failed write never crashes and is never silent: it is counted
 * (pinlet_audit_stats) and logged with log_warn (the first, then every 100th, so a full
 * disk does not flood the log). No record ever holds a credential: callers pass image
 * references, never auth fields.
 *
 * Bound: every string field is cut to PINLET_AUDIT_FIELD_MAX bytes (at a UTF-8 character
 * boundary) followed by "...(truncated, N bytes)" with N the field's full size, so that a
 * request cannot make a line longer than a few tens of KiB (13 fields, each at most
 * 6 times its bytes once JSON-escaped).
 *
 * Thread-safety: pinlet_audit_write, pinlet_audit_reopen and pinlet_audit_stats may be
 * called from any thread concurrently. pinlet_audit_close must not race with them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct pinlet_audit;

/* Decision values (the "decision" field). */
#define PINLET_AUDIT_SUBSTITUTED      "substituted"
#define PINLET_AUDIT_WOULD_SUBSTITUTE "would_substitute"
#define PINLET_AUDIT_PASSED_THROUGH   "passed_through"
#define PINLET_AUDIT_REJECTED         "rejected"
#define PINLET_AUDIT_TAG_MOVED        "tag_moved"
#define PINLET_AUDIT_UNLOCKED         "unlocked" /* lock.require audit: a tag not in the lock */
/* verifiers (src/verify): a deny in mode audit, and an image passed by the verifiers that
 * no other record of the call names (a reference by digest, an image ID) */
#define PINLET_AUDIT_WOULD_REJECT "would_reject"
#define PINLET_AUDIT_VERIFIED     "verified"

#define PINLET_AUDIT_FIELD_MAX 1024 /* bytes of a string field kept in a record */

/* One verifier's run, in the record's "verifiers" array:
 * {"name":..,"result":"allow"|"deny","reason":..,"ms":..} */
struct pinlet_audit_verifier {
        const char *name;
        bool allow;
        const char *reason; /* NULL or "": omitted */
        int64_t ms;
};

/* One decision. All strings are borrowed for the duration of the call; NULL (and, for
 * registry_ms, a negative value) omits the field. "time" is added by the writer. */
struct pinlet_audit_record {
        const char *method;        /* CRI method short name: "PullImage" */
        const char *pod_namespace; /* pod {namespace, name, uid}: omitted when all NULL */
        const char *pod_name;
        const char *pod_uid;
        const char *container; /* CreateContainer's container name */
        const char *image;     /* the reference as written by the client */
        size_t image_len;      /* bytes of image, which may hold NULs (a protobuf string is
                                * not a C string); 0: strlen(image) */
        const char *resolved;  /* "name@digest" */
        const char *previous;  /* tag_moved: the previous digest */
        const char *source;    /* "lock", "pin", "cache", "registry", "stale" */
        const char *lock;      /* source lock: the lock file that named the tag */
        const char *endpoint;  /* source registry: the endpoint that answered (a mirror's
                                * URL, or the registry's own) */
        int64_t registry_ms;   /* registry round trip; < 0: omitted */
        const char *decision;  /* PINLET_AUDIT_* */
        const char *mode;      /* "enforce", "audit", "off" */
        const char *error;     /* failure message, when any */
        /* the verifiers that ran for this decision (none: the field is omitted) */
        const struct pinlet_audit_verifier *verifiers;
        size_t n_verifiers;
};

struct pinlet_audit_options {
        const char *path; /* file; NULL or "" for none; "-" means stderr */
        bool also_stderr; /* write every record to stderr as well */
};

/*
 * Opens the destinations. Returns 0, or a negative errno with *err naming the path when
 * the directory or file cannot be created/opened (at start, that is a configuration
 * error worth failing on; later reopen failures are only counted).
 */
int pinlet_audit_open(const struct pinlet_audit_options *o, struct pinlet_audit **ret,
                      struct pinlet_error **err);
void pinlet_audit_close(struct pinlet_audit *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_audit *, pinlet_audit_close)
#define _cleanup_audit_ _cleanup_(pinlet_audit_closep)

/* Formats one record as a JSON line (with the trailing '\n'), time = now. Returns a
 * malloc'ed string or NULL on allocation failure. Exposed for tests and callers that
 * send the same line elsewhere. */
char *pinlet_audit_format(const struct pinlet_audit_record *rec);

/* Writes one record to every destination. Returns 0, or the negative errno of the first
 * failed destination (also counted and logged). Never blocks on another writer's I/O for
 * longer than one write(2) takes. */
int pinlet_audit_write(struct pinlet_audit *a, const struct pinlet_audit_record *rec);

/* Switches to other destinations (a configuration reload): the new file is opened first,
 * so on error (*err names it) nothing changes; otherwise the same as a reopen at the new
 * path. Thread-safe like reopen. Also reopens an unchanged path (logrotate). */
int pinlet_audit_reconfigure(struct pinlet_audit *a, const struct pinlet_audit_options *o,
                             struct pinlet_error **err);

/* Reopens the file at the configured path (after logrotate renamed it), with the same
 * checks as open. Returns 0, or a negative errno with *err set (the caller logs it); the
 * old file stays in use then, and the failure is counted (pinlet_audit_reopen_failures).
 * No-op without a file.
 * It allocates and locks: call it from a thread that saw SIGUSR1 (signalfd, sigwait, or
 * a flag polled by the main loop), never from inside a signal handler. */
int pinlet_audit_reopen(struct pinlet_audit *a, struct pinlet_error **err);

/* Records written (to all destinations) and failed since open. */
void pinlet_audit_stats(struct pinlet_audit *a, uint64_t *ret_written, uint64_t *ret_failed);

/* Failed pinlet_audit_reopen() calls since open (a symbolic link planted at the path, a
 * directory that became unsafe, a full disk...): the old file stayed in use each time. */
uint64_t pinlet_audit_reopen_failures(struct pinlet_audit *a);
