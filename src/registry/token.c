/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include "registry/token.h"
#include "util/lru.h"

/* A token goes into "Authorization: Bearer <token>": it must be a printable header value
 * without spaces (token68-ish; JWTs are base64url with dots). */
static bool token_printable(const char *t)
{
        for (const unsigned char *p = (const unsigned char *)t; *p; p++)
                if (*p <= 0x20 || *p >= 0x7f)
                        return false;
        return true;
}

int pinlet_token_parse(const char *json, size_t len, struct pinlet_token *ret,
                       struct pinlet_error **err)
{
        _cleanup_(json_decrefp) json_t *root = NULL;
        json_error_t jerr;
        json_t *tok, *exp;
        const char *t;
        int64_t expires_in = PINLET_TOKEN_DEFAULT_TTL;
        char *copy;

        if (len > PINLET_TOKEN_RESPONSE_MAX)
                return pinlet_error_set(err, PINLET_E2BIG, "token response larger than %d bytes",
                                        PINLET_TOKEN_RESPONSE_MAX);
        root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                /* jerr.text may quote the input ("near '...'"), which is a secret here */
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "token response is not valid JSON (line %d, column %d)",
                                        jerr.line, jerr.column);
        if (!json_is_object(root))
                return pinlet_error_set(err, PINLET_EPROTO, "token response is not an object");
        tok = json_object_get(root, "token");
        if (!tok || json_is_null(tok) || (json_is_string(tok) && json_string_length(tok) == 0))
                tok = json_object_get(root, "access_token");
        if (!tok || !json_is_string(tok))
                return pinlet_error_set(err, PINLET_EPROTO, "token response holds no token");
        t = json_string_value(tok);
        if (json_string_length(tok) == 0 || json_string_length(tok) > PINLET_TOKEN_MAX ||
            strlen(t) != json_string_length(tok) || !token_printable(t))
                return pinlet_error_set(err, PINLET_EPROTO, "token response holds a bad token");

        exp = json_object_get(root, "expires_in");
        if (exp && !json_is_null(exp)) {
                if (!json_is_integer(exp))
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "token expires_in is not an integer");
                if (json_integer_value(exp) > 0)
                        expires_in = json_integer_value(exp);
        }
        /* Cap absurd lifetimes: a year is plenty, and keeps ms arithmetic far from
         * overflow. */
        if (expires_in > 365LL * 24 * 3600)
                expires_in = 365LL * 24 * 3600;
        /* "issued_at" is not read: the cache counts a token's lifetime from when the
         * request was sent (never later than the issue time, and no clock to trust). */

        copy = strdup(t);
        if (!copy)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        *ret = (struct pinlet_token){ .token = copy, .expires_in = expires_in };
        return 0;
}

void pinlet_token_clear(struct pinlet_token *t)
{
        erase_and_free(t->token);
        t->token = NULL;
}

/* One cached token. The LRU node's key points at key. */
struct pinlet_token_cache_entry {
        struct pinlet_lru_node node;
        char *key;
        char *token; /* secret: erased when freed */
        int64_t valid_until_ms;
};

static void entry_free(struct pinlet_token_cache_entry *e)
{
        if (!e)
                return;
        free(e->key);
        erase_and_free(e->token);
        free(e);
}

static struct pinlet_token_cache_entry *entry_of(struct pinlet_lru_node *n)
{
        return PINLET_LRU_ENTRY(n, struct pinlet_token_cache_entry, node);
}

/* Unlinks and frees. Lock held. */
static void entry_drop(struct pinlet_token_cache *c, struct pinlet_token_cache_entry *e)
{
        pinlet_lru_remove(&c->lru, &e->node);
        entry_free(e);
}

int pinlet_token_cache_init(struct pinlet_token_cache *c, size_t max)
{
        int r;

        *c = (struct pinlet_token_cache){ 0 };
        r = pinlet_lru_init(&c->lru, max > 0 ? max : PINLET_TOKEN_CACHE_MAX);
        if (r < 0)
                return r;
        pthread_mutex_init(&c->lock, NULL);
        c->max = max > 0 ? max : PINLET_TOKEN_CACHE_MAX; /* marks the cache initialised */
        return 0;
}

void pinlet_token_cache_done(struct pinlet_token_cache *c)
{
        struct pinlet_lru_node *n, *next;

        if (c->max == 0)
                return; /* zeroed, or init failed */
        for (n = pinlet_lru_oldest(&c->lru); n; n = next) {
                next = pinlet_lru_newer(n);
                entry_drop(c, entry_of(n));
        }
        pinlet_lru_done(&c->lru);
        pthread_mutex_destroy(&c->lock);
        c->max = 0;
}

size_t pinlet_token_cache_size(struct pinlet_token_cache *c)
{
        size_t n;

        pthread_mutex_lock(&c->lock);
        n = pinlet_lru_size(&c->lru);
        pthread_mutex_unlock(&c->lock);
        return n;
}

int pinlet_token_cache_get(struct pinlet_token_cache *c, const char *key, int64_t now_ms,
                           char **ret)
{
        struct pinlet_token_cache_entry *e;
        int r = 0;

        pthread_mutex_lock(&c->lock);
        e = entry_of(pinlet_lru_find(&c->lru, key));
        if (e && e->valid_until_ms > now_ms) {
                char *copy = strdup(e->token);

                if (copy) {
                        *ret = copy;
                        r = 1;
                }
                pinlet_lru_touch(&c->lru, &e->node);
        } else if (e) {
                entry_drop(c, e);
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}

int pinlet_token_cache_put(struct pinlet_token_cache *c, const char *key, const char *token,
                           int64_t now_ms, int64_t lifetime_ms)
{
        struct pinlet_token_cache_entry *e, *old;
        struct pinlet_lru_node *n, *next;
        int64_t keep;

        keep = lifetime_ms > 2 * PINLET_TOKEN_MARGIN_MS ? lifetime_ms - PINLET_TOKEN_MARGIN_MS
                                                        : lifetime_ms / 2;
        if (keep <= 0)
                return 0;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->key = strdup(key);
        e->token = strdup(token);
        if (!e->key || !e->token) {
                entry_free(e);
                return -ENOMEM;
        }
        e->node.key = e->key;
        e->valid_until_ms = now_ms + keep;

        pthread_mutex_lock(&c->lock);
        old = entry_of(pinlet_lru_find(&c->lru, key));
        if (old)
                entry_drop(c, old);
        /* Expired tokens go first (at most max entries to look at), then the least
         * recently used ones while full. */
        for (n = pinlet_lru_oldest(&c->lru); n; n = next) {
                next = pinlet_lru_newer(n);
                if (entry_of(n)->valid_until_ms <= now_ms)
                        entry_drop(c, entry_of(n));
        }
        while (pinlet_lru_size(&c->lru) >= c->max)
                entry_drop(c, entry_of(pinlet_lru_oldest(&c->lru)));
        pinlet_lru_insert(&c->lru, &e->node);
        pthread_mutex_unlock(&c->lock);
        return 0;
}

void pinlet_token_cache_drop(struct pinlet_token_cache *c, const char *key)
{
        struct pinlet_token_cache_entry *e;

        pthread_mutex_lock(&c->lock);
        e = entry_of(pinlet_lru_find(&c->lru, key));
        if (e)
                entry_drop(c, e);
        pthread_mutex_unlock(&c->lock);
}
