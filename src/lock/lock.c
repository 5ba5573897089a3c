/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Lock files: loading (an event-driven YAML parser, so a document deeper than the schema
 * is refused at its first extra level, before anything below it is built), the immutable
 * set with its hash table, and writing. See lock.h for the format and the rules.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "lock/lock.h"
#include "ref/ref.h"
#include "util/buf.h"
#include "util/lru.h"

/* How much of a key or value an error message quotes: lock files come from a pipeline,
 * but a message must stay one readable line whatever they hold. */
#define SHOWN_MAX 200

struct lock_entry {
        struct pinlet_lru_node node; /* node.key = ref */
        const char *file;            /* borrowed from the set's files */
        unsigned long line;
        const char *digest; /* points into ref's allocation, after ref */
        char ref[];         /* normalized tag reference, then the digest */
};

/* Owns its files (names), entries and table; immutable after load. */
struct pinlet_lock_set {
        atomic_uint refs;
        struct pinlet_lru table;
        struct lock_entry **entries; /* load order */
        size_t n_entries, cap_entries;
        char **files;
        size_t n_files;
        size_t max_entries;
};

static size_t opt_max_entries(const struct pinlet_lock_options *o)
{
        return o && o->max_entries ? o->max_entries : PINLET_LOCK_DEFAULT_MAX_ENTRIES;
}

static size_t opt_max_file_size(const struct pinlet_lock_options *o)
{
        return o && o->max_file_size ? o->max_file_size : PINLET_LOCK_DEFAULT_MAX_FILE_SIZE;
}

/* ---- the set ---------------------------------------------------------------------------- */

static int set_new(size_t max_entries, struct pinlet_lock_set **ret)
{
        struct pinlet_lock_set *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        atomic_init(&s->refs, 1);
        s->max_entries = max_entries;
        if (pinlet_lru_init(&s->table, 64) < 0) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

struct pinlet_lock_set *pinlet_lock_set_ref(struct pinlet_lock_set *s)
{
        if (s)
                atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
        return s;
}

void pinlet_lock_set_unref(struct pinlet_lock_set *s)
{
        if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
                return;
        for (size_t i = 0; i < s->n_entries; i++)
                free(s->entries[i]);
        free(s->entries);
        for (size_t i = 0; i < s->n_files; i++)
                free(s->files[i]);
        free(s->files);
        pinlet_lru_done(&s->table);
        free(s);
}

int pinlet_lock_set_lookup(const struct pinlet_lock_set *s, const char *ref,
                           const char **ret_digest, const char **ret_file)
{
        struct lock_entry *e;

        if (!s || !ref)
                return -ENOENT;
        e = PINLET_LRU_ENTRY(pinlet_lru_find(&s->table, ref), struct lock_entry, node);
        if (!e)
                return -ENOENT;
        if (ret_digest)
                *ret_digest = e->digest;
        if (ret_file)
                *ret_file = e->file;
        return 0;
}

size_t pinlet_lock_set_size(const struct pinlet_lock_set *s)
{
        return s ? s->n_entries : 0;
}

int pinlet_lock_set_foreach(const struct pinlet_lock_set *s, pinlet_lock_set_foreach_fn fn,
                            void *userdata)
{
        for (size_t i = 0; s && i < s->n_entries; i++) {
                const struct lock_entry *e = s->entries[i];
                int r = fn(userdata, e->ref, e->digest, e->file, e->line);

                if (r < 0)
                        return r;
        }
        return 0;
}

/* Remembers a file name for the entries that come from it; returns the set's copy. */
static const char *set_add_file(struct pinlet_lock_set *s, const char *name)
{
        char **files = realloc(s->files, (s->n_files + 1) * sizeof(*files));
        char *copy;

        if (!files)
                return NULL;
        s->files = files;
        copy = strdup(name);
        if (!copy)
                return NULL;
        s->files[s->n_files++] = copy;
        return copy;
}

/* ---- parsing ---------------------------------------------------------------------------- */

struct parser {
        struct pinlet_lock_set *set;
        const char *file; /* the set's copy */
        const char *data; /* the document, for positions libyaml reports as offsets */
        size_t len;
        yaml_parser_t yaml;
        yaml_event_t ev;
        bool have_event;
        struct pinlet_error **err;
};

static unsigned long ev_line(const struct parser *p)
{
        return (unsigned long)p->ev.start_mark.line + 1;
}

_printf_(4, 5) static int fail_at(struct parser *p, unsigned long line, int code, const char *fmt,
                                  ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        return pinlet_error_set(p->err, code, "%s:%lu: %s", p->file, line, strempty(msg));
}

/* Copies at most SHOWN_MAX bytes of s into buf (SHOWN_MAX + 4 bytes) for a message, with
 * non-printable bytes as '?' and "..." when cut. */
static const char *shown(const char *s, size_t len, char *buf)
{
        size_t n = len < SHOWN_MAX ? len : SHOWN_MAX, i;

        for (i = 0; i < n; i++)
                buf[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
        if (n < len)
                memcpy(buf + i, "...", 3), i += 3;
        buf[i] = 0;
        return buf;
}

/* The next event into p->ev (the previous one is released). */
static int next(struct parser *p)
{
        if (p->have_event) {
                yaml_event_delete(&p->ev);
                p->have_event = false;
        }
        if (!yaml_parser_parse(&p->yaml, &p->ev)) {
                unsigned long line = (unsigned long)p->yaml.problem_mark.line + 1;

                if (p->yaml.error == YAML_MEMORY_ERROR)
                        return pinlet_error_set(p->err, -ENOMEM, "out of memory");
                /* The reader (bad UTF-8, control characters such as NUL) reports a byte
                 * offset, not a mark: count the lines up to it. */
                if (p->yaml.error == YAML_READER_ERROR) {
                        line = 1;
                        for (size_t i = 0; i < p->yaml.problem_offset && i < p->len; i++)
                                line += p->data[i] == '\n';
                }
                return fail_at(p, line, -EINVAL, "invalid YAML: %s%s%s",
                               p->yaml.problem ? p->yaml.problem : "parse error",
                               p->yaml.context ? " " : "", strempty(p->yaml.context));
        }
        p->have_event = true;
        /* Refused wherever they appear: an alias would let a small file stand for a big
         * tree, and the schema has no use for one. */
        if (p->ev.type == YAML_ALIAS_EVENT)
                return fail_at(p, ev_line(p), -EINVAL, "YAML aliases are not allowed");
        return 0;
}

static const char *ev_scalar(const struct parser *p)
{
        return (const char *)p->ev.data.scalar.value;
}

static size_t ev_scalar_len(const struct parser *p)
{
        return p->ev.data.scalar.length;
}

static bool ev_is_null(const struct parser *p)
{
        const char *s = ev_scalar(p);

        return p->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
               (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0);
}

/* A scalar is a C string only if it holds no NUL: YAML's "\0" and JSON's "\u0000"
 * escapes can put one there, and everything after it would silently vanish. */
static int check_scalar(struct parser *p, const char *what)
{
        if (memchr(ev_scalar(p), 0, ev_scalar_len(p)))
                return fail_at(p, ev_line(p), -EINVAL, "%s holds a NUL byte", what);
        return 0;
}

static int fail_structure(struct parser *p, const char *where)
{
        switch (p->ev.type) {
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
                return fail_at(p, ev_line(p), -EINVAL, "%s: nested deeper than the lock schema",
                               where);
        default:
                return fail_at(p, ev_line(p), -EINVAL, "%s: unexpected YAML structure", where);
        }
}

static int add_entry(struct parser *p, const char *key, unsigned long key_line, const char *digest,
                     unsigned long digest_line)
{
        _cleanup_error_ struct pinlet_error *rerr = NULL;
        _cleanup_ref_ struct pinlet_ref *ref = NULL;
        _cleanup_free_ char *norm = NULL;
        struct pinlet_lock_set *s = p->set;
        struct lock_entry *e, *old;
        char buf[SHOWN_MAX + 4];
        size_t rl, dl;
        int r;

        r = pinlet_ref_parse(key, &ref, &rerr);
        if (r < 0)
                return fail_at(p, key_line, r, "%s", pinlet_error_message(rerr, r));
        if (ref->digest)
                return fail_at(p, key_line, -EINVAL,
                               "'%s' holds a digest: a lock maps tags to digests",
                               shown(key, strlen(key), buf));
        if (ref->tag_defaulted)
                return fail_at(p, key_line, -EINVAL,
                               "'%s' has no tag (write the tag, e.g. ':latest', explicitly)",
                               shown(key, strlen(key), buf));
        if (!pinlet_ref_digest_valid(digest))
                return fail_at(p, digest_line, -EINVAL, "'%s': invalid digest '%s'",
                               shown(key, strlen(key), buf), digest);
        norm = pinlet_ref_key(ref);
        if (!norm)
                return pinlet_error_set(p->err, -ENOMEM, "out of memory");

        old = PINLET_LRU_ENTRY(pinlet_lru_find(&s->table, norm), struct lock_entry, node);
        if (old) {
                if (strcmp(old->digest, digest) == 0)
                        return 0; /* said twice, meaning the same: fine */
                return fail_at(p, key_line, -EINVAL, "%s is locked to %s here and to %s at %s:%lu",
                               norm, digest, old->digest, old->file, old->line);
        }
        if (s->n_entries >= s->max_entries)
                return fail_at(p, key_line, -E2BIG, "more than %zu entries", s->max_entries);

        if (s->n_entries == s->cap_entries) {
                size_t cap = s->cap_entries ? s->cap_entries * 2 : 64;
                struct lock_entry **v = realloc(s->entries, cap * sizeof(*v));

                if (!v)
                        return pinlet_error_set(p->err, -ENOMEM, "out of memory");
                s->entries = v;
                s->cap_entries = cap;
        }
        rl = strlen(norm);
        dl = strlen(digest);
        e = malloc(sizeof(*e) + rl + 1 + dl + 1);
        if (!e)
                return pinlet_error_set(p->err, -ENOMEM, "out of memory");
        memcpy(e->ref, norm, rl + 1);
        memcpy(e->ref + rl + 1, digest, dl + 1);
        e->digest = e->ref + rl + 1;
        e->file = p->file;
        e->line = key_line;
        e->node.key = e->ref;
        s->entries[s->n_entries++] = e;
        pinlet_lru_insert(&s->table, &e->node);
        return 0;
}

/* images: the events after its MAPPING_START, up to and including its MAPPING_END. */
static int parse_images(struct parser *p)
{
        int r;

        for (;;) {
                _cleanup_free_ char *key = NULL;
                unsigned long key_line;
                char buf[SHOWN_MAX + 4], buf2[SHOWN_MAX + 4];

                r = next(p);
                if (r < 0)
                        return r;
                if (p->ev.type == YAML_MAPPING_END_EVENT)
                        return 0;
                if (p->ev.type != YAML_SCALAR_EVENT)
                        return fail_structure(p, "images");
                key_line = ev_line(p);
                if (ev_scalar_len(p) > PINLET_LOCK_KEY_MAX)
                        return fail_at(p, key_line, -E2BIG, "key longer than %d bytes: '%s'",
                                       PINLET_LOCK_KEY_MAX,
                                       shown(ev_scalar(p), ev_scalar_len(p), buf));
                r = check_scalar(p, "key");
                if (r < 0)
                        return r;
                key = strdup(ev_scalar(p));
                if (!key)
                        return pinlet_error_set(p->err, -ENOMEM, "out of memory");

                r = next(p);
                if (r < 0)
                        return r;
                if (p->ev.type != YAML_SCALAR_EVENT)
                        return fail_structure(p, shown(key, strlen(key), buf));
                r = check_scalar(p, "digest");
                if (r < 0)
                        return r;
                /* A digest is short: anything longer is refused before it is quoted. */
                if (ev_scalar_len(p) > 7 + 128)
                        return fail_at(p, ev_line(p), -EINVAL, "'%s': invalid digest '%s'",
                                       shown(key, strlen(key), buf),
                                       shown(ev_scalar(p), ev_scalar_len(p), buf2));
                r = add_entry(p, key, key_line, ev_scalar(p), ev_line(p));
                if (r < 0)
                        return r;
        }
}

static int parse_document(struct parser *p)
{
        bool seen_version = false, seen_images = false;
        char buf[SHOWN_MAX + 4];
        int r;

        r = next(p); /* STREAM_START */
        if (r < 0)
                return r;
        r = next(p);
        if (r < 0)
                return r;
        if (p->ev.type == YAML_STREAM_END_EVENT)
                return fail_at(p, 1, -EINVAL, "empty: expected 'version: %d' and 'images'",
                               PINLET_LOCK_VERSION);
        r = next(p); /* after DOCUMENT_START: the root */
        if (r < 0)
                return r;
        if (p->ev.type != YAML_MAPPING_START_EVENT)
                return fail_at(p, ev_line(p), -EINVAL, "the top level must be a mapping");

        for (;;) {
                r = next(p);
                if (r < 0)
                        return r;
                if (p->ev.type == YAML_MAPPING_END_EVENT)
                        break;
                if (p->ev.type != YAML_SCALAR_EVENT)
                        return fail_structure(p, "top level");
                r = check_scalar(p, "key");
                if (r < 0)
                        return r;
                if (strcmp(ev_scalar(p), "version") == 0) {
                        if (seen_version)
                                return fail_at(p, ev_line(p), -EINVAL, "duplicate key 'version'");
                        seen_version = true;
                        r = next(p);
                        if (r < 0)
                                return r;
                        if (p->ev.type != YAML_SCALAR_EVENT)
                                return fail_structure(p, "version");
                        if (strcmp(ev_scalar(p), "1") != 0 || ev_scalar_len(p) != 1)
                                return fail_at(p, ev_line(p), -EINVAL,
                                               "unsupported version '%s' (this pinlet reads "
                                               "version %d)",
                                               shown(ev_scalar(p), ev_scalar_len(p), buf),
                                               PINLET_LOCK_VERSION);
                } else if (strcmp(ev_scalar(p), "images") == 0) {
                        if (seen_images)
                                return fail_at(p, ev_line(p), -EINVAL, "duplicate key 'images'");
                        seen_images = true;
                        r = next(p);
                        if (r < 0)
                                return r;
                        if (p->ev.type == YAML_MAPPING_START_EVENT)
                                r = parse_images(p);
                        else if (p->ev.type == YAML_SCALAR_EVENT && ev_is_null(p))
                                r = 0; /* "images:" with nothing: an empty lock */
                        else
                                r = fail_at(p, ev_line(p), -EINVAL,
                                            "'images' must be a mapping of references to "
                                            "digests");
                        if (r < 0)
                                return r;
                } else {
                        return fail_at(p, ev_line(p), -EINVAL,
                                       "unknown key '%s' (expected 'version' or 'images')",
                                       shown(ev_scalar(p), ev_scalar_len(p), buf));
                }
        }
        if (!seen_version)
                return fail_at(p, 1, -EINVAL, "missing 'version: %d'", PINLET_LOCK_VERSION);

        r = next(p); /* DOCUMENT_END */
        if (r < 0)
                return r;
        r = next(p);
        if (r < 0)
                return r;
        if (p->ev.type != YAML_STREAM_END_EVENT)
                return fail_at(p, ev_line(p), -EINVAL, "more than one YAML document");
        return 0;
}

/* Parses one document into s, its entries named file. */
static int load_data(struct pinlet_lock_set *s, const char *name, const void *data, size_t len,
                     struct pinlet_error **err)
{
        struct parser p = { .set = s, .data = data, .len = len, .err = err };
        int r;

        p.file = set_add_file(s, name);
        if (!p.file)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        if (!yaml_parser_initialize(&p.yaml))
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        yaml_parser_set_input_string(&p.yaml, data, len);
        r = parse_document(&p);
        if (p.have_event)
                yaml_event_delete(&p.ev);
        yaml_parser_delete(&p.yaml);
        return r;
}

int pinlet_lock_set_load_data(const char *name, const void *data, size_t len,
                              const struct pinlet_lock_options *opts, struct pinlet_lock_set **ret,
                              struct pinlet_error **err)
{
        _cleanup_lock_set_ struct pinlet_lock_set *s = NULL;
        int r;

        if (len > opt_max_file_size(opts))
                return pinlet_error_set(err, -E2BIG, "%s: larger than %zu bytes", name,
                                        opt_max_file_size(opts));
        if (set_new(opt_max_entries(opts), &s) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        r = load_data(s, name, data, len, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- files and directories -------------------------------------------------------------- */

/* Reads path (following symlinks) whole, if it is a regular file of at most max bytes. */
static int read_file(const char *path, size_t max, struct pinlet_buf *ret,
                     struct pinlet_error **err)
{
        _cleanup_close_ int fd = -1;
        char chunk[65536];
        struct stat st;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return pinlet_error_set(err, -errno, "%s: %s", path, strerror(errno));
        if (fstat(fd, &st) < 0)
                return pinlet_error_set(err, -errno, "%s: %s", path, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return pinlet_error_set(err, -EINVAL, "%s: not a regular file", path);
        /* The size is checked up front so a huge file costs no read; the buffer's own
         * limit catches one that grows while we read it. */
        if ((uint64_t)st.st_size > max)
                return pinlet_error_set(err, -E2BIG, "%s: larger than %zu bytes", path, max);
        pinlet_buf_init(ret, max);
        for (;;) {
                ssize_t n = read(fd, chunk, sizeof(chunk));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return pinlet_error_set(err, -errno, "%s: %s", path, strerror(errno));
                if (n == 0)
                        return 0;
                r = pinlet_buf_append(ret, chunk, (size_t)n);
                if (r == -E2BIG)
                        return pinlet_error_set(err, r, "%s: larger than %zu bytes", path, max);
                if (r < 0)
                        return pinlet_error_set(err, r, "out of memory");
        }
}

static int load_file(struct pinlet_lock_set *s, const char *path, size_t max_size,
                     struct pinlet_error **err)
{
        _cleanup_buf_ struct pinlet_buf b = {};
        int r;

        r = read_file(path, max_size, &b, err);
        if (r < 0)
                return r;
        return load_data(s, path, b.data ? b.data : "", b.len, err);
}

static bool has_suffix(const char *s, const char *suffix)
{
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Hidden entries are skipped: a ConfigMap's "..data" and "..2026_…" directories hold the
 * same files again, and editors leave ".name.swp" behind. */
static int lock_name_filter(const struct dirent *d)
{
        return d->d_name[0] != '.' &&
               (has_suffix(d->d_name, ".yaml") || has_suffix(d->d_name, ".yml") ||
                has_suffix(d->d_name, ".json"));
}

/* Byte order, not the locale's collation: every node reads files in the same order. */
static int name_cmp(const struct dirent **a, const struct dirent **b)
{
        return strcmp((*a)->d_name, (*b)->d_name);
}

/* One directory entry that passed the name filter. stat follows symlinks:
 * "app.yaml -> ..data/app.yaml" counts as the regular file it points at. A dangling one (a
 * key kubelet is about to remove after a ..data swap) and a file gone since the listing are
 * skipped, as are directories and other non-regular files. */
static int load_dir_entry(struct pinlet_lock_set *s, const char *dir, const char *name,
                          size_t max_size, struct pinlet_error **err)
{
        _cleanup_free_ char *path = NULL;
        struct stat st;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        if (stat(path, &st) < 0) {
                if (errno == ENOENT)
                        return 0;
                return pinlet_error_set(err, -errno, "%s: %s", path, strerror(errno));
        }
        if (!S_ISREG(st.st_mode))
                return 0;
        return load_file(s, path, max_size, err);
}

static int load_dir(struct pinlet_lock_set *s, const char *dir, size_t max_size,
                    struct pinlet_error **err)
{
        struct dirent **names = NULL;
        int n, r = 0;

        n = scandir(dir, &names, lock_name_filter, name_cmp);
        if (n < 0)
                return pinlet_error_set(err, -errno, "%s: %s", dir, strerror(errno));
        for (int i = 0; i < n; i++) {
                if (r >= 0)
                        r = load_dir_entry(s, dir, names[i]->d_name, max_size, err);
                free(names[i]);
        }
        free(names);
        return r;
}

int pinlet_lock_set_load(char *const *paths, const struct pinlet_lock_options *opts,
                         struct pinlet_lock_set **ret, struct pinlet_error **err)
{
        _cleanup_lock_set_ struct pinlet_lock_set *s = NULL;
        size_t max_size = opt_max_file_size(opts);
        int r;

        if (set_new(opt_max_entries(opts), &s) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; paths && paths[i]; i++) {
                struct stat st;

                if (stat(paths[i], &st) < 0)
                        return pinlet_error_set(err, -errno, "%s: %s", paths[i], strerror(errno));
                if (S_ISDIR(st.st_mode))
                        r = load_dir(s, paths[i], max_size, err);
                else
                        r = load_file(s, paths[i], max_size, err);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- writing ---------------------------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
        const struct pinlet_lock_entry *x = a, *y = b;

        return strcmp(x->ref, y->ref);
}

/* A normalized reference is a YAML plain scalar unless it starts with '[' (an IPv6
 * registry, "[::1]:5000/app:v1"), a flow-sequence indicator. The reference grammar allows
 * no other character YAML treats specially at the start, and no space, '#' or quote
 * anywhere, so double quotes without escapes suffice for that case. */
static bool needs_quotes(const char *ref)
{
        return ref[0] == '[';
}

int pinlet_lock_format(struct pinlet_lock_entry *entries, size_t n, char **ret_text,
                       size_t *ret_len, struct pinlet_error **err)
{
        _cleanup_buf_ struct pinlet_buf b = {};
        int r = 0;

        for (size_t i = 0; i < n; i++) {
                _cleanup_error_ struct pinlet_error *rerr = NULL;
                _cleanup_ref_ struct pinlet_ref *ref = NULL;
                _cleanup_free_ char *norm = NULL;

                r = pinlet_ref_parse(entries[i].ref, &ref, &rerr);
                if (r < 0)
                        return pinlet_error_set(err, r, "%s", pinlet_error_message(rerr, r));
                norm = pinlet_ref_key(ref);
                if (!norm)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                if (ref->digest || ref->tag_defaulted || strcmp(norm, entries[i].ref) != 0)
                        return pinlet_error_set(err, -EINVAL,
                                                "%s: not a normalized tag reference (%s)",
                                                entries[i].ref, norm);
                if (!pinlet_ref_digest_valid(entries[i].digest))
                        return pinlet_error_set(err, -EINVAL, "%s: invalid digest '%s'",
                                                entries[i].ref, entries[i].digest);
        }
        if (n > 0)
                qsort(entries, n, sizeof(*entries), entry_cmp);

        pinlet_buf_init(&b, SIZE_MAX / 2); /* bounded by n entries of bounded size */
        r = pinlet_buf_append_str(&b, "# written by `pinlet lock`; any number of files may be "
                                      "loaded together\nversion: 1\n");
        if (r >= 0)
                r = pinlet_buf_append_str(&b, n > 0 ? "images:\n" : "images: {}\n");
        for (size_t i = 0; i < n && r >= 0; i++) {
                const char *q;

                if (i > 0 && strcmp(entries[i - 1].ref, entries[i].ref) == 0) {
                        if (strcmp(entries[i - 1].digest, entries[i].digest) == 0)
                                continue;
                        return pinlet_error_set(err, -EINVAL, "%s: two digests, %s and %s",
                                                entries[i].ref, entries[i - 1].digest,
                                                entries[i].digest);
                }
                q = needs_quotes(entries[i].ref) ? "\"" : "";
                r = pinlet_buf_append_str(&b, "  ");
                r = r ?: pinlet_buf_append_str(&b, q);
                r = r ?: pinlet_buf_append_str(&b, entries[i].ref);
                r = r ?: pinlet_buf_append_str(&b, q);
                r = r ?: pinlet_buf_append_str(&b, ": ");
                r = r ?: pinlet_buf_append_str(&b, entries[i].digest);
                r = r ?: pinlet_buf_append_str(&b, "\n");
        }
        if (r < 0)
                return pinlet_error_set(err, r, "out of memory");
        *ret_text = pinlet_buf_steal(&b, ret_len);
        return 0;
}

static int write_all(int fd, const char *s, size_t n)
{
        while (n > 0) {
                ssize_t k = write(fd, s, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                s += k;
                n -= (size_t)k;
        }
        return 0;
}

int pinlet_lock_write_file(const char *path, const void *data, size_t len,
                           struct pinlet_error **err)
{
        _cleanup_free_ char *copy1 = strdup(path), *copy2 = strdup(path), *tmp = NULL;
        _cleanup_close_ int fd = -1, dfd = -1;
        const char *dir, *base;
        int r;

        if (!copy1 || !copy2)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        dir = dirname(copy1);
        base = basename(copy2);
        if (asprintf(&tmp, "%s/.%s.tmp.XXXXXX", dir, base) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return pinlet_error_set(err, -errno, "%s: %s", tmp, strerror(errno));
        r = fchmod(fd, 0644) < 0 ? -errno : 0;
        r = r ?: write_all(fd, data, len);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return pinlet_error_set(err, r, "%s: %s", path, strerror(-r));
        }
        /* The rename is durable only once the directory is on disk too. */
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0)
                return pinlet_error_set(err, -errno, "%s: fsync: %s", dir, strerror(errno));
        return 0;
}
