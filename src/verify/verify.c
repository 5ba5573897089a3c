/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Running image verifiers and keeping their verdicts; the behaviour is specified in
 * verify.h, the contract in include/pinlet/verifier.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "pinlet/verifier.h"
#include "registry/registry.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/lru.h"
#include "util/spawn.h"
#include "util/time.h"
#include "verify/verify.h"

extern char **environ;

struct verdict_entry {
        struct pinlet_lru_node node;
        char *key;
        bool pending;     /* a run is deciding it; waiters sleep on pinlet_verify.done */
        unsigned waiters; /* threads waiting on (or about to read) it: never evicted then */
        bool allow;
        char *message;
        int64_t expires_ms;
};

struct pinlet_verify {
        char *bin_dir; /* NULL: disabled */
        unsigned max;
        uint64_t timeout_ms;
        enum pinlet_on_failure on_failure;
        uint64_t allow_ttl_ms, deny_ttl_ms;
        size_t cache_max;
        char **envp; /* owned strings: pinlet's environment at creation plus PINLET_CONFIG and
                      * PINLET_RUNTIME */
        struct pinlet_registry *registry;
        atomic_uint_fast64_t runs;

        pthread_mutex_t lock; /* cache */
        pthread_cond_t done;  /* a pending entry was decided */
        struct pinlet_lru cache;
};

void pinlet_verify_descriptor_done(struct pinlet_verify_descriptor *d)
{
        free(d->media_type);
        free(d->digest);
        *d = (struct pinlet_verify_descriptor){ 0 };
}

void pinlet_verify_verdict_done(struct pinlet_verify_verdict *v)
{
        for (size_t i = 0; i < v->n_results; i++) {
                free(v->results[i].name);
                free(v->results[i].reason);
        }
        free(v->results);
        free(v->message);
        *v = (struct pinlet_verify_verdict){ 0 };
}

static void strv_free(char **v)
{
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

/* Whether environ entry e sets name ("NAME=..."). */
static bool env_sets(const char *e, const char *name)
{
        size_t n = strlen(name);

        return strncmp(e, name, n) == 0 && e[n] == '=';
}

/* pinlet's environment, with PINLET_CONFIG = config_path and PINLET_RUNTIME = runtime
 * (each when not NULL) replacing inherited values. */
static char **build_envp(const char *config_path, const char *runtime)
{
        const char *names[] = { PINLET_VERIFIER_ENV_CONFIG, PINLET_VERIFIER_ENV_RUNTIME };
        const char *values[] = { config_path, runtime };
        size_t n = 0, k = 0;
        char **envp;

        while (environ && environ[n])
                n++;
        envp = calloc(n + 3, sizeof(char *));
        if (!envp)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                bool ours = false;

                /* pinlet's own value replaces an inherited one */
                for (size_t j = 0; j < 2; j++)
                        ours = ours || (values[j] && env_sets(environ[i], names[j]));
                if (ours)
                        continue;
                if (!(envp[k++] = strdup(environ[i])))
                        goto oom;
        }
        for (size_t j = 0; j < 2; j++)
                if (values[j] && asprintf(&envp[k++], "%s=%s", names[j], values[j]) < 0) {
                        envp[k - 1] = NULL;
                        goto oom;
                }
        return envp;
oom:
        strv_free(envp);
        return NULL;
}

int pinlet_verify_new(const struct pinlet_verify_options *o, struct pinlet_verify **ret,
                      struct pinlet_error **err)
{
        _cleanup_(pinlet_verify_freep) struct pinlet_verify *v = NULL;

        v = calloc(1, sizeof(*v));
        if (!v)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        pthread_mutex_init(&v->lock, NULL);
        pthread_cond_init(&v->done, NULL);
        v->max = o->max ? o->max : 10;
        v->timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
        v->on_failure = o->on_failure == PINLET_FAIL_OPEN ? PINLET_FAIL_OPEN : PINLET_FAIL_CLOSED;
        v->allow_ttl_ms = o->allow_ttl_ms;
        v->deny_ttl_ms = o->deny_ttl_ms && o->deny_ttl_ms < PINLET_VERIFY_DENY_TTL_MAX_MS
                                 ? o->deny_ttl_ms
                                 : PINLET_VERIFY_DENY_TTL_MAX_MS;
        v->cache_max = o->cache_max ? o->cache_max : PINLET_VERIFY_CACHE_MAX;
        v->registry = o->registry;
        if (o->bin_dir && *o->bin_dir && !(v->bin_dir = strdup(o->bin_dir)))
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        v->envp = build_envp(o->config_path, o->runtime_name);
        if (!v->envp || pinlet_lru_init(&v->cache, 64) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        *ret = TAKE_PTR(v);
        return 0;
}

static void entry_free(struct verdict_entry *e)
{
        if (!e)
                return;
        free(e->key);
        free(e->message);
        free(e);
}

void pinlet_verify_free(struct pinlet_verify *v)
{
        struct pinlet_lru_node *n, *next;

        if (!v)
                return;
        for (n = pinlet_lru_oldest(&v->cache); n; n = next) {
                next = pinlet_lru_newer(n);
                pinlet_lru_remove(&v->cache, n);
                entry_free(PINLET_LRU_ENTRY(n, struct verdict_entry, node));
        }
        pinlet_lru_done(&v->cache);
        pthread_mutex_destroy(&v->lock);
        pthread_cond_destroy(&v->done);
        strv_free(v->envp);
        free(v->bin_dir);
        free(v);
}

bool pinlet_verify_enabled(const struct pinlet_verify *v)
{
        return v && v->bin_dir;
}

uint64_t pinlet_verify_runs(const struct pinlet_verify *v)
{
        return v ? atomic_load_explicit(&((struct pinlet_verify *)v)->runs, memory_order_relaxed)
                 : 0;
}

/* ---- the verifier set ------------------------------------------------------------------ */

/* containerd lists the directory with os.ReadDir: names in byte order */
static int name_cmp(const struct dirent **a, const struct dirent **b)
{
        return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_dots(const struct dirent *d)
{
        return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

struct verifier_set {
        char **names; /* the first max entries, owned */
        size_t n;
        char identity[PINLET_SHA256_HEX_SIZE]; /* "" when n == 0 */
};

static void set_done(struct verifier_set *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->names[i]);
        free(s->names);
        *s = (struct verifier_set){ 0 };
}

/*
 * Lists the set and hashes what identifies it: each entry's name, device, inode, size and
 * modification time (following symbolic links). An entry replaced in place (same inode,
 * new content) changes its mtime. A missing directory is an empty set.
 */
static int load_set(struct pinlet_verify *v, struct verifier_set *ret, struct pinlet_error **err)
{
        struct dirent **list = NULL;
        _cleanup_buf_ struct pinlet_buf id = { 0 };
        struct verifier_set s = { 0 };
        int n, r = 0;

        pinlet_buf_init(&id, 1024 * 1024);
        n = scandir(v->bin_dir, &list, not_dots, name_cmp);
        if (n < 0) {
                if (errno == ENOENT || errno == ENOTDIR) {
                        *ret = s;
                        return 0;
                }
                return pinlet_error_set(err, -errno, "verifiers.bin_dir %s: %s", v->bin_dir,
                                        strerror(errno));
        }
        s.names = calloc((size_t)n + 1, sizeof(char *));
        if (!s.names)
                r = -ENOMEM;
        for (int i = 0; i < n; i++) {
                if (r == 0 && s.n < v->max) {
                        _cleanup_free_ char *path = NULL, *line = NULL;
                        struct stat st = { 0 };

                        if (asprintf(&path, "%s/%s", v->bin_dir, list[i]->d_name) < 0)
                                r = -ENOMEM;
                        /* an entry that cannot be stat'ed still runs (and fails): hash it
                         * as such */
                        else if (stat(path, &st) < 0)
                                st = (struct stat){ 0 };
                        if (r == 0 &&
                            (asprintf(&line, "%s\n%ju %ju %jd %jd.%09ld\n", list[i]->d_name,
                                      (uintmax_t)st.st_dev, (uintmax_t)st.st_ino,
                                      (intmax_t)st.st_size, (intmax_t)st.st_mtim.tv_sec,
                                      st.st_mtim.tv_nsec) < 0 ||
                             pinlet_buf_append_str(&id, line) < 0 ||
                             !(s.names[s.n++] = strdup(list[i]->d_name))))
                                r = -ENOMEM;
                }
                free(list[i]);
        }
        free(list);
        if (r == 0 && s.n > 0 && pinlet_sha256_hex(id.data, id.len, s.identity) < 0)
                r = -ENOMEM;
        if (r < 0) {
                set_done(&s);
                return pinlet_error_set(err, r, "out of memory");
        }
        *ret = s;
        return 0;
}

static char *cache_key(const struct verifier_set *s, const char *name, const char *digest)
{
        char *key = NULL;

        /* NUL-free parts: the separator cannot occur in a digest or a reference */
        if (asprintf(&key, "%s %s %s", digest, s->identity, name) < 0)
                return NULL;
        return key;
}

/* ---- the cache (v->lock held) ---------------------------------------------------------- */

static bool entry_fresh(const struct verdict_entry *e, int64_t now)
{
        return !e->pending && e->expires_ms > now;
}

static int verdict_from_entry(const struct verdict_entry *e, struct pinlet_verify_verdict *ret)
{
        *ret = (struct pinlet_verify_verdict){ .allow = e->allow, .cached = true };
        if (e->message && !(ret->message = strdup(e->message)))
                return -ENOMEM;
        return 0;
}

static void evict(struct pinlet_verify *v, int64_t now)
{
        struct pinlet_lru_node *n, *next;

        for (n = pinlet_lru_oldest(&v->cache); n && pinlet_lru_size(&v->cache) > v->cache_max;
             n = next) {
                struct verdict_entry *e = PINLET_LRU_ENTRY(n, struct verdict_entry, node);

                next = pinlet_lru_newer(n);
                if (e->pending || e->waiters)
                        continue;
                pinlet_lru_remove(&v->cache, n);
                entry_free(e);
        }
        (void)now;
}

int pinlet_verify_lookup(struct pinlet_verify *v, const char *name, const char *digest,
                         struct pinlet_verify_verdict *ret)
{
        _cleanup_(set_done) struct verifier_set set = { 0 };
        _cleanup_free_ char *key = NULL;
        struct verdict_entry *e;
        int r = 0;

        if (!pinlet_verify_enabled(v)) {
                *ret = (struct pinlet_verify_verdict){ .allow = true };
                return 1;
        }
        if (load_set(v, &set, NULL) < 0)
                return 0; /* the worker reports it */
        if (set.n == 0) {
                *ret = (struct pinlet_verify_verdict){ .allow = true };
                return 1;
        }
        key = cache_key(&set, name, digest);
        if (!key)
                return 0;
        pthread_mutex_lock(&v->lock);
        e = PINLET_LRU_ENTRY(pinlet_lru_find(&v->cache, key), struct verdict_entry, node);
        if (e && entry_fresh(e, pinlet_now_ms()) && verdict_from_entry(e, ret) == 0) {
                pinlet_lru_touch(&v->cache, &e->node);
                r = 1;
        }
        pthread_mutex_unlock(&v->lock);
        return r;
}

/* ---- one verifier run ------------------------------------------------------------------ */

/* Output made fit for one log line or status message: control characters (newlines
 * included) become spaces, trailing space is dropped. Bytes >= 0x80 stay (UTF-8). */
static char *printable(const struct pinlet_buf *b)
{
        size_t n = b->len;
        char *s;

        while (n > 0 && (unsigned char)b->data[n - 1] <= ' ')
                n--;
        s = malloc(n + 1);
        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++)
                s[i] = (unsigned char)b->data[i] < 0x20 || b->data[i] == 0x7f ? ' ' : b->data[i];
        s[n] = 0;
        return s;
}

struct run_outcome {
        bool failed;
        int status; /* waitpid status when !failed */
        char *what; /* failed: why */
        struct pinlet_buf out, err;
};

static void outcome_done(struct run_outcome *o)
{
        free(o->what);
        pinlet_buf_free(&o->out);
        pinlet_buf_free(&o->err);
}

_printf_(2, 3) static void outcome_fail(struct run_outcome *o, const char *fmt, ...)
{
        va_list ap;

        o->failed = true;
        free(o->what);
        va_start(ap, fmt);
        if (vasprintf(&o->what, fmt, ap) < 0)
                o->what = NULL;
        va_end(ap);
}

static void run_child(struct pinlet_verify *v, const char *path, char *const argv[],
                      const char *input, int64_t deadline_ms, struct run_outcome *o)
{
        struct pinlet_spawn_result res;
        int r;

        r = pinlet_spawn_run(
                &(const struct pinlet_spawn){
                        .path = path,
                        .argv = argv,
                        .envp = v->envp,
                        .input = input,
                        .input_len = strlen(input),
                        .deadline_ms = deadline_ms,
                        .out_max = o->out.max,
                        .err_max = o->err.max,
                },
                &res);
        if (res.started)
                atomic_fetch_add_explicit(&v->runs, 1, memory_order_relaxed);
        /* the outcome keeps the output (truncated at its caps) */
        pinlet_buf_free(&o->out);
        pinlet_buf_free(&o->err);
        o->out = res.out;
        o->err = res.err;
        if (!res.started)
                outcome_fail(o, "cannot run: %s", strerror(-r));
        else if (r == -ETIMEDOUT)
                outcome_fail(o, "timed out (killed)");
        else if (r < 0)
                outcome_fail(o, "reading its output: %s", strerror(-r));
        else if (WIFSIGNALED(res.status))
                outcome_fail(o, "killed by signal %d", WTERMSIG(res.status));
        else
                o->status = res.status;
}

char *pinlet_verify_descriptor_json(const struct pinlet_verify_descriptor *d)
{
        json_t *o = json_pack("{s:s?, s:s?, s:I}", "mediaType", d->media_type, "digest", d->digest,
                              "size", (json_int_t)d->size);
        char *s;

        if (!o)
                return NULL;
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        return s;
}

/* Runs the set in order until one denies. Fills ret->results and ret->allow/message. */
static int run_set(struct pinlet_verify *v, const struct verifier_set *set, const char *name,
                   const struct pinlet_verify_descriptor *desc, int64_t deadline_ms,
                   struct pinlet_verify_verdict *ret, bool *ret_skipped_failure)
{
        _cleanup_free_ char *input = pinlet_verify_descriptor_json(desc);

        if (!input)
                return -ENOMEM;
        ret->results = calloc(set->n, sizeof(*ret->results));
        if (!ret->results)
                return -ENOMEM;
        ret->allow = true;
        for (size_t i = 0; i < set->n && ret->allow; i++) {
                struct pinlet_verify_result *res = &ret->results[i];
                _cleanup_(outcome_done) struct run_outcome o = { 0 };
                _cleanup_free_ char *path = NULL, *errtext = NULL;
                int64_t t0 = pinlet_now_ms(), d = t0 + (int64_t)v->timeout_ms;
                char *argv[] = {
                        NULL,
                        (char *)PINLET_VERIFIER_ARG_NAME,
                        (char *)name,
                        (char *)PINLET_VERIFIER_ARG_DIGEST,
                        desc->digest,
                        (char *)PINLET_VERIFIER_ARG_STDIN_MEDIA_TYPE,
                        (char *)PINLET_VERIFIER_STDIN_MEDIA_TYPE,
                        NULL,
                };

                if (deadline_ms > 0 && deadline_ms < d)
                        d = deadline_ms;
                pinlet_buf_init(&o.out, PINLET_VERIFIER_OUTPUT_MAX);
                pinlet_buf_init(&o.err, PINLET_VERIFIER_OUTPUT_MAX);
                if (asprintf(&path, "%s/%s", v->bin_dir, set->names[i]) < 0)
                        return -ENOMEM;
                argv[0] = path;
                res->name = strdup(set->names[i]);
                if (!res->name)
                        return -ENOMEM;
                ret->n_results++;

                run_child(v, path, argv, input, d, &o);
                res->ms = pinlet_now_ms() - t0;
                errtext = printable(&o.err);
                if (errtext && *errtext)
                        log_debug("verifier %s: stderr: %s", res->name, errtext);
                if (o.failed) {
                        res->failed = true;
                        res->reason = strdup(o.what ? o.what : "failed");
                        res->allow = v->on_failure == PINLET_FAIL_OPEN;
                        if (res->allow) {
                                *ret_skipped_failure = true;
                                log_warn("verifier %s for %s@%s: %s; skipped (verifiers."
                                         "on_failure: open)",
                                         res->name, name, desc->digest, strempty(res->reason));
                        }
                } else {
                        res->reason = printable(&o.out);
                        res->allow = WIFEXITED(o.status) &&
                                     WEXITSTATUS(o.status) == PINLET_VERIFIER_EXIT_ALLOW;
                        if (res->reason && !res->allow && !*res->reason) {
                                free(res->reason);
                                if (asprintf(&res->reason, "exit status %d",
                                             WEXITSTATUS(o.status)) < 0)
                                        res->reason = NULL;
                        }
                }
                if (!res->reason)
                        return -ENOMEM;
                log_debug("verifier %s: %s@%s: %s in %" PRId64 " ms%s%s", res->name, name,
                          desc->digest, res->allow ? "allow" : "deny", res->ms,
                          *res->reason ? ": " : "", res->reason);
                if (!res->allow) {
                        ret->allow = false;
                        if (asprintf(&ret->message, "blocked by verifier %s: %s", res->name,
                                     res->reason) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

int pinlet_verify_run(struct pinlet_verify *v, const char *name,
                      const struct pinlet_verify_descriptor *desc, int64_t deadline_ms,
                      struct pinlet_verify_verdict *ret, struct pinlet_error **err)
{
        _cleanup_(set_done) struct verifier_set set = { 0 };
        _cleanup_free_ char *key = NULL;
        struct pinlet_verify_verdict verdict = { 0 };
        struct verdict_entry *e, *mine = NULL;
        bool skipped = false;
        int r;

        if (!pinlet_verify_enabled(v)) {
                *ret = (struct pinlet_verify_verdict){ .allow = true };
                return 0;
        }
        if (!name || !desc || !desc->digest)
                return pinlet_error_set(err, PINLET_EINVAL, "verify: needs a name and a digest");
        r = load_set(v, &set, err);
        if (r < 0)
                return r;
        if (set.n == 0) {
                *ret = (struct pinlet_verify_verdict){ .allow = true };
                return 0;
        }
        key = cache_key(&set, name, desc->digest);
        if (!key)
                return pinlet_error_set(err, -ENOMEM, "out of memory");

        pthread_mutex_lock(&v->lock);
        for (;;) {
                e = PINLET_LRU_ENTRY(pinlet_lru_find(&v->cache, key), struct verdict_entry, node);
                if (!e)
                        break;
                if (entry_fresh(e, pinlet_now_ms())) {
                        r = verdict_from_entry(e, ret);
                        pinlet_lru_touch(&v->cache, &e->node);
                        pthread_mutex_unlock(&v->lock);
                        return r < 0 ? pinlet_error_set(err, r, "out of memory") : 0;
                }
                if (!e->pending)
                        break; /* expired: decide again in this entry */
                /* single flight: another thread runs this set for this image now */
                {
                        int64_t d = deadline_ms > 0
                                            ? deadline_ms
                                            : pinlet_now_ms() + (int64_t)(v->timeout_ms * v->max);
                        struct timespec ts;
                        bool decided;

                        clock_gettime(CLOCK_REALTIME, &ts);
                        {
                                int64_t left = d - pinlet_now_ms();
                                if (left <= 0) {
                                        pthread_mutex_unlock(&v->lock);
                                        return pinlet_error_set(err, PINLET_ETIMEOUT,
                                                                "verifying %s@%s: out of time "
                                                                "waiting for the verifiers",
                                                                name, desc->digest);
                                }
                                ts.tv_sec += left / 1000;
                                ts.tv_nsec += (left % 1000) * 1000000;
                                if (ts.tv_nsec >= 1000000000) {
                                        ts.tv_sec++;
                                        ts.tv_nsec -= 1000000000;
                                }
                        }
                        e->waiters++;
                        pthread_cond_timedwait(&v->done, &v->lock, &ts);
                        e->waiters--;
                        decided = !e->pending;
                        if (decided) {
                                /* the verdict this thread waited for, whatever its TTL */
                                r = verdict_from_entry(e, ret);
                                pthread_mutex_unlock(&v->lock);
                                return r < 0 ? pinlet_error_set(err, r, "out of memory") : 0;
                        }
                }
        }
        if (!e) {
                mine = calloc(1, sizeof(*mine));
                if (!mine || !(mine->key = strdup(key))) {
                        pthread_mutex_unlock(&v->lock);
                        entry_free(mine);
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                }
                mine->node.key = mine->key;
                pinlet_lru_insert(&v->cache, &mine->node);
                e = mine;
        }
        e->pending = true;
        pthread_mutex_unlock(&v->lock);

        r = run_set(v, &set, name, desc, deadline_ms, &verdict, &skipped);

        pthread_mutex_lock(&v->lock);
        e->pending = false;
        free(e->message);
        e->message = NULL;
        e->allow = verdict.allow;
        e->expires_ms = pinlet_now_ms();
        if (r < 0) {
                /* nothing decided: waiters get a deny they did not cache */
                e->allow = false;
                e->message = strdup("verification failed: out of memory");
        } else if (verdict.allow) {
                if (!skipped)
                        e->expires_ms += (int64_t)v->allow_ttl_ms;
        } else {
                e->expires_ms += (int64_t)v->deny_ttl_ms;
                e->message = verdict.message ? strdup(verdict.message) : NULL;
        }
        pinlet_lru_touch(&v->cache, &e->node);
        evict(v, pinlet_now_ms());
        pthread_cond_broadcast(&v->done);
        pthread_mutex_unlock(&v->lock);

        if (r < 0) {
                pinlet_verify_verdict_done(&verdict);
                return pinlet_error_set(err, r, "verifying %s@%s: out of memory", name,
                                        desc->digest);
        }
        *ret = verdict;
        return 0;
}

/* ---- descriptors ----------------------------------------------------------------------- */

int pinlet_verify_describe(struct pinlet_verify *v, const struct pinlet_ref *ref,
                           const char *digest, const struct pinlet_registry_auth *auth,
                           int64_t deadline_ms, struct pinlet_verify_descriptor *ret,
                           struct pinlet_error **err)
{
        _cleanup_(pinlet_fetched_done) struct pinlet_fetched f = { 0 };
        struct pinlet_verify_descriptor d = { .size = 0 };
        int r;

        if (!v || !v->registry)
                return pinlet_error_set(err, PINLET_EINVAL, "verify: no registry client");
        r = pinlet_registry_fetch(v->registry, ref, "manifests", digest, PINLET_MANIFEST_MAX, auth,
                                  deadline_ms, &f, err);
        if (r < 0)
                return r;
        d.size = f.len;
        if (f.media_type && *f.media_type && strcmp(f.media_type, "application/json") != 0 &&
            strcmp(f.media_type, "application/octet-stream") != 0) {
                d.media_type = TAKE_PTR(f.media_type);
        } else {
                /* no useful Content-Type: the manifest says what it is (OCI and Docker
                 * schema2 manifests and indexes carry mediaType) */
                json_t *m = json_loadb(f.data, f.len, 0, NULL);
                const char *mt = m ? json_string_value(json_object_get(m, "mediaType")) : NULL;

                d.media_type = strdup(mt ? mt : PINLET_MT_OCI_MANIFEST);
                json_decref(m);
        }
        d.digest = strdup(digest);
        if (!d.media_type || !d.digest) {
                pinlet_verify_descriptor_done(&d);
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        *ret = d;
        return 0;
}
