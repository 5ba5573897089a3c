/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entries live in a util/lru table (hash by key plus recency list, sized for max_entries)
 * under one mutex. In-flight resolutions ("flights") live in a separate short list: there
 * are at most as many as resolution workers, so a linear scan costs less than a second
 * table.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "util/log.h"
#include "util/lru.h"

struct entry {
        char *key;     /* owned; node.key points to it */
        char *value;   /* positive entry; NULL for a negative one */
        int err_code;  /* negative entry: the not-found class */
        char *err_msg; /* negative entry: the message to repeat */
        int64_t stored_ms;
        struct pinlet_lru_node node;
};

/* One resolution in progress. Freed by whoever drops the last reference: the leader holds
 * one, each waiting follower one. */
struct flight {
        char *key;
        unsigned refs;
        bool done;
        int code;      /* result: >= 0 value, < 0 error */
        char *value;   /* result value (REGISTRY or STALE) */
        char *message; /* result error message (also the STALE cause) */
        int cause;     /* STALE: the class of the failure that made us fall back */
        enum pinlet_cache_source source;
        pthread_cond_t cond;
        struct flight *next;
};

struct pinlet_cache {
        pthread_mutex_t lock;
        struct pinlet_cache_options o;
        struct pinlet_lru lru; /* of struct entry */
        struct flight *flights;
};

static int64_t now_ms(struct pinlet_cache *c)
{
        return c->o.clock ? c->o.clock(c->o.clock_ctx) : pinlet_now_ms();
}

const char *pinlet_cache_source_to_string(enum pinlet_cache_source s)
{
        switch (s) {
        case PINLET_CACHE_SOURCE_CACHE:
                return "cache";
        case PINLET_CACHE_SOURCE_REGISTRY:
                return "registry";
        case PINLET_CACHE_SOURCE_STALE:
                return "stale";
        }
        return "unknown";
}

int pinlet_cache_new(const struct pinlet_cache_options *o, struct pinlet_cache **ret)
{
        struct pinlet_cache *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->o = *o;
        if (c->o.max_entries == 0)
                c->o.max_entries = PINLET_CACHE_DEFAULT_MAX_ENTRIES;
        if (pinlet_lru_init(&c->lru, c->o.max_entries) < 0) {
                free(c);
                return -ENOMEM;
        }
        pthread_mutex_init(&c->lock, NULL);
        *ret = c;
        return 0;
}

static void entry_free(struct entry *e)
{
        free(e->key);
        free(e->value);
        free(e->err_msg);
        free(e);
}

void pinlet_cache_free(struct pinlet_cache *c)
{
        struct pinlet_lru_node *n, *next;

        if (!c)
                return;
        for (n = pinlet_lru_newest(&c->lru); n; n = next) {
                next = pinlet_lru_older(n);
                entry_free(PINLET_LRU_ENTRY(n, struct entry, node));
        }
        /* No flight can be left: callers must not race with free (see the header). */
        pinlet_lru_done(&c->lru);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

static void entry_remove(struct pinlet_cache *c, struct entry *e)
{
        pinlet_lru_remove(&c->lru, &e->node);
        entry_free(e);
}

static struct entry *entry_find(struct pinlet_cache *c, const char *key)
{
        return PINLET_LRU_ENTRY(pinlet_lru_find(&c->lru, key), struct entry, node);
}

/* Age of an entry; a clock that went backwards counts as age 0. */
static uint64_t age_ms(int64_t now, const struct entry *e)
{
        return now > e->stored_ms ? (uint64_t)(now - e->stored_ms) : 0;
}

static bool entry_fresh(struct pinlet_cache *c, const struct entry *e, int64_t now)
{
        return age_ms(now, e) < (e->value ? c->o.ttl_ms : c->o.negative_ttl_ms);
}

/* An entry that can serve nothing any more: neither fresh nor usable as stale. */
static bool entry_dead(struct pinlet_cache *c, const struct entry *e, int64_t now)
{
        if (!e->value)
                return !entry_fresh(c, e, now);
        return age_ms(now, e) >= c->o.ttl_ms + c->o.stale_if_error_ms;
}

/* Stores a positive (value set) or negative (code, msg) result, replacing any old entry
 * for key, and evicts the least recently used entries beyond the bound. Takes value and
 * msg. On allocation failure the result is simply not cached. */
static void entry_store(struct pinlet_cache *c, const char *key, char *value, int code, char *msg,
                        int64_t now)
{
        struct entry *e = entry_find(c, key);
        struct pinlet_lru_node *oldest;

        if (e) {
                free(e->value);
                free(e->err_msg);
                pinlet_lru_touch(&c->lru, &e->node);
        } else {
                e = calloc(1, sizeof(*e));
                if (!e || !(e->key = strdup(key))) {
                        free(e);
                        free(value);
                        free(msg);
                        return;
                }
                e->node.key = e->key;
                pinlet_lru_insert(&c->lru, &e->node);
        }
        e->value = value;
        e->err_code = code;
        e->err_msg = msg;
        e->stored_ms = now;

        while (pinlet_lru_size(&c->lru) > c->o.max_entries &&
               (oldest = pinlet_lru_oldest(&c->lru)) && oldest != &e->node)
                entry_remove(c, PINLET_LRU_ENTRY(oldest, struct entry, node));
}

static struct flight *flight_find(struct pinlet_cache *c, const char *key)
{
        for (struct flight *f = c->flights; f; f = f->next)
                if (strcmp(f->key, key) == 0)
                        return f;
        return NULL;
}

static void flight_unlink(struct pinlet_cache *c, struct flight *f)
{
        for (struct flight **p = &c->flights; *p; p = &(*p)->next)
                if (*p == f) {
                        *p = f->next;
                        return;
                }
}

static void flight_unref(struct flight *f)
{
        if (--f->refs > 0)
                return;
        pthread_cond_destroy(&f->cond);
        free(f->key);
        free(f->value);
        free(f->message);
        free(f);
}

static struct flight *flight_new(const char *key)
{
        struct flight *f = calloc(1, sizeof(*f));
        pthread_condattr_t attr;

        if (!f)
                return NULL;
        f->key = strdup(key);
        if (!f->key) {
                free(f);
                return NULL;
        }
        /* Deadlines are CLOCK_MONOTONIC: so must the condition variable's timeouts be. */
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&f->cond, &attr);
        pthread_condattr_destroy(&attr);
        f->refs = 1;
        return f;
}

/* Copies a finished flight's result out to the caller. Called with the lock held. */
static int flight_result(const struct flight *f, char **ret_value,
                         enum pinlet_cache_source *ret_source, struct pinlet_error **err)
{
        char *v;

        if (f->code < 0)
                return pinlet_error_set(err, f->code, "%s",
                                        f->message ? f->message : "out of memory");
        v = strdup(f->value);
        if (!v)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        if (f->source == PINLET_CACHE_SOURCE_STALE && f->message)
                pinlet_error_set(err, f->cause, "%s", f->message);
        *ret_value = v;
        *ret_source = f->source;
        return 0;
}

static int follow(struct pinlet_cache *c, struct flight *f, const char *key, int64_t deadline_ms,
                  char **ret_value, enum pinlet_cache_source *ret_source, struct pinlet_error **err)
{
        struct timespec ts = {
                .tv_sec = deadline_ms / 1000,
                .tv_nsec = (deadline_ms % 1000) * 1000000,
        };
        int r = 0;

        f->refs++;
        /* Any error (ETIMEDOUT, or EINVAL for a deadline before the epoch) ends the wait. */
        while (!f->done && r == 0)
                r = pthread_cond_timedwait(&f->cond, &c->lock, &ts);
        if (f->done) {
                r = flight_result(f, ret_value, ret_source, err);
                /* Only the leader asked the registry: a follower got the shared answer from
                 * the cache layer, and the audit log must not count it as registry traffic. */
                if (r >= 0 && *ret_source == PINLET_CACHE_SOURCE_REGISTRY)
                        *ret_source = PINLET_CACHE_SOURCE_CACHE;
        } else {
                /* Out of time is an outage for this caller: stale-if-error applies as it
                 * would have to its own resolution timing out. */
                struct entry *e = entry_find(c, key);
                int64_t now = now_ms(c);

                r = pinlet_error_set(err, PINLET_ETIMEOUT,
                                     "%s: deadline exceeded while waiting for a resolution "
                                     "in progress",
                                     key);
                if (e && e->value && !entry_dead(c, e, now)) {
                        char *v = strdup(e->value);

                        if (v) {
                                *ret_value = v;
                                *ret_source = PINLET_CACHE_SOURCE_STALE;
                                r = 0;
                        }
                }
        }
        flight_unref(f);
        return r;
}

/* The leader's side once the resolver returned: decide the outcome, update the table,
 * publish the result to followers. Called with the lock held; takes value and msg. */
static void lead_finish(struct pinlet_cache *c, struct flight *f, int code, char *value, char *msg)
{
        int64_t now = now_ms(c);
        struct entry *e = entry_find(c, f->key);

        if (code < 0 && !msg)
                msg = strdup(pinlet_error_message(NULL, code));
        f->code = code;
        f->source = PINLET_CACHE_SOURCE_REGISTRY;
        if (code >= 0) {
                f->value = value;
                value = strdup(value);
                if (value)
                        entry_store(c, f->key, value, 0, NULL, now);
        } else if (code == PINLET_ENOTFOUND) {
                f->message = msg;
                if (c->o.negative_ttl_ms > 0 && msg) {
                        char *copy = strdup(msg);
                        if (copy)
                                entry_store(c, f->key, NULL, code, copy, now);
                } else if (e)
                        entry_remove(c, e); /* the tag is gone: forget the old value */
        } else if ((code == PINLET_EUNAVAIL || code == PINLET_ETIMEOUT) && e && e->value &&
                   !entry_dead(c, e, now)) {
                /* stale-if-error: the registry is down, the old answer is the best we have.
                 * The entry keeps its age, so the window ends when it was meant to. */
                f->value = strdup(e->value);
                if (f->value) {
                        f->code = 0;
                        f->cause = code;
                        f->source = PINLET_CACHE_SOURCE_STALE;
                } else
                        f->code = -ENOMEM;
                f->message = msg;
        } else
                f->message = msg;
        if (f->code < 0 && !f->message)
                f->message = strdup(pinlet_error_message(NULL, f->code));
        if (f->code < 0 && !f->message)
                f->code = -ENOMEM; /* flight_result needs a message for errors */
        f->done = true;
        flight_unlink(c, f);
        pthread_cond_broadcast(&f->cond);
}

int pinlet_cache_get(struct pinlet_cache *c, const char *key, int64_t deadline_ms,
                     pinlet_cache_fill_fn fn, void *ctx, char **ret_value,
                     enum pinlet_cache_source *ret_source, struct pinlet_error **err)
{
        _cleanup_error_ struct pinlet_error *rerr = NULL;
        char *value = NULL, *msg = NULL;
        struct flight *f;
        struct entry *e;
        int64_t now;
        int r;

        if (!key || !*key || strlen(key) > PINLET_CACHE_KEY_MAX)
                return pinlet_error_set(err, PINLET_EINVAL, "invalid cache key");

        pthread_mutex_lock(&c->lock);
        now = now_ms(c);
        e = entry_find(c, key);
        if (e && entry_dead(c, e, now)) {
                entry_remove(c, e);
                e = NULL;
        }
        if (e && entry_fresh(c, e, now)) {
                pinlet_lru_touch(&c->lru, &e->node);
                if (!e->value)
                        r = pinlet_error_set(err, e->err_code, "%s", e->err_msg);
                else if (!(value = strdup(e->value)))
                        r = pinlet_error_set(err, -ENOMEM, "out of memory");
                else {
                        *ret_value = value;
                        *ret_source = PINLET_CACHE_SOURCE_CACHE;
                        r = 0;
                }
                pthread_mutex_unlock(&c->lock);
                return r;
        }

        f = flight_find(c, key);
        if (f) {
                r = follow(c, f, key, deadline_ms, ret_value, ret_source, err);
                pthread_mutex_unlock(&c->lock);
                return r;
        }

        f = flight_new(key);
        if (!f) {
                pthread_mutex_unlock(&c->lock);
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        }
        f->next = c->flights;
        c->flights = f;
        pthread_mutex_unlock(&c->lock);

        /* The leader resolves without the lock: other keys and readers go on meanwhile. */
        r = fn(ctx, key, deadline_ms, &value, &rerr);
        if (r >= 0 && !value) {
                r = PINLET_EPROTO;
                pinlet_error_set(&rerr, r, "%s: resolver returned no value", key);
        }
        if (r < 0) {
                free(value);
                value = NULL;
                msg = strdup(pinlet_error_message(rerr, r));
        }

        pthread_mutex_lock(&c->lock);
        lead_finish(c, f, r < 0 ? r : 0, value, msg);
        r = flight_result(f, ret_value, ret_source, err);
        flight_unref(f);
        pthread_mutex_unlock(&c->lock);
        if (r < 0)
                log_debug("cache: %s: %s", key, pinlet_error_message(err ? *err : NULL, r));
        return r;
}

void pinlet_cache_set_options(struct pinlet_cache *c, const struct pinlet_cache_options *o)
{
        struct pinlet_lru_node *oldest;

        pthread_mutex_lock(&c->lock);
        c->o.ttl_ms = o->ttl_ms;
        c->o.stale_if_error_ms = o->stale_if_error_ms;
        c->o.negative_ttl_ms = o->negative_ttl_ms;
        c->o.max_entries = o->max_entries ? o->max_entries : PINLET_CACHE_DEFAULT_MAX_ENTRIES;
        while (pinlet_lru_size(&c->lru) > c->o.max_entries && (oldest = pinlet_lru_oldest(&c->lru)))
                entry_remove(c, PINLET_LRU_ENTRY(oldest, struct entry, node));
        pthread_mutex_unlock(&c->lock);
}

int pinlet_cache_lookup(struct pinlet_cache *c, const char *key, bool allow_stale, char **ret_value,
                        enum pinlet_cache_source *ret_source, struct pinlet_error **err)
{
        enum pinlet_cache_source src;
        struct entry *e;
        int64_t now;
        char *v;
        int r = -EAGAIN;

        pthread_mutex_lock(&c->lock);
        now = now_ms(c);
        e = entry_find(c, key);
        if (!e || entry_dead(c, e, now)) {
                pthread_mutex_unlock(&c->lock);
                return -EAGAIN;
        }
        if (entry_fresh(c, e, now)) {
                pinlet_lru_touch(&c->lru, &e->node);
                if (!e->value) {
                        r = pinlet_error_set(err, e->err_code, "%s", e->err_msg);
                        pthread_mutex_unlock(&c->lock);
                        return r;
                }
                src = PINLET_CACHE_SOURCE_CACHE;
        } else if (allow_stale && e->value) {
                src = PINLET_CACHE_SOURCE_STALE;
        } else {
                pthread_mutex_unlock(&c->lock);
                return -EAGAIN;
        }
        v = strdup(e->value);
        pthread_mutex_unlock(&c->lock);
        if (!v)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        *ret_value = v;
        *ret_source = src;
        return 0;
}

int pinlet_cache_peek(struct pinlet_cache *c, const char *key, char **ret_value)
{
        struct entry *e;
        int r = -ENOENT;

        pthread_mutex_lock(&c->lock);
        e = entry_find(c, key);
        if (e && e->value && entry_fresh(c, e, now_ms(c))) {
                char *v = strdup(e->value);
                if (v) {
                        *ret_value = v;
                        r = 0;
                } else
                        r = -ENOMEM;
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}

void pinlet_cache_invalidate(struct pinlet_cache *c, const char *key)
{
        struct entry *e;

        pthread_mutex_lock(&c->lock);
        e = entry_find(c, key);
        if (e)
                entry_remove(c, e);
        pthread_mutex_unlock(&c->lock);
}

size_t pinlet_cache_size(struct pinlet_cache *c)
{
        size_t n;

        pthread_mutex_lock(&c->lock);
        n = pinlet_lru_size(&c->lru);
        pthread_mutex_unlock(&c->lock);
        return n;
}

size_t pinlet_cache_waiters(struct pinlet_cache *c)
{
        size_t n = 0;

        pthread_mutex_lock(&c->lock);
        /* The leader holds one reference of its flight until it publishes the result; each
         * follower takes one (under this lock) before it waits. */
        for (const struct flight *f = c->flights; f; f = f->next)
                n += f->refs - 1;
        pthread_mutex_unlock(&c->lock);
        return n;
}
