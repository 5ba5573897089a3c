/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "registry/token.h"

int pinlet_parse_rfc3339(const char *s, int64_t *ret)
{
        struct tm tm = { 0 };
        const char *p = s;
        int64_t off = 0;
        time_t t;
        int n[6];
        /* digits per field and the separator after it */
        static const struct {
                int digits;
                char sep;
        } f[6] = { { 4, '-' }, { 2, '-' }, { 2, 'T' }, { 2, ':' }, { 2, ':' }, { 2, 0 } };

        for (int i = 0; i < 6; i++) {
                n[i] = 0;
                for (int d = 0; d < f[i].digits; d++, p++) {
                        if (!isdigit((unsigned char)*p))
                                return -EINVAL;
                        n[i] = n[i] * 10 + (*p - '0');
                }
                if (f[i].sep) {
                        if (f[i].sep == 'T' ? (*p != 'T' && *p != 't' && *p != ' ')
                                            : *p != f[i].sep)
                                return -EINVAL;
                        p++;
                }
        }
        if (n[1] < 1 || n[1] > 12 || n[2] < 1 || n[2] > 31 || n[3] > 23 || n[4] > 59 || n[5] > 60)
                return -EINVAL;
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                        return -EINVAL;
                while (isdigit((unsigned char)*p))
                        p++;
        }
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1;

                if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) || p[3] != ':' ||
                    !isdigit((unsigned char)p[4]) || !isdigit((unsigned char)p[5]))
                        return -EINVAL;
                off = sign * (((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
                              ((p[4] - '0') * 10 + (p[5] - '0')) * 60);
                p += 6;
        } else {
                return -EINVAL;
        }
        if (*p)
                return -EINVAL;
        tm.tm_year = n[0] - 1900;
        tm.tm_mon = n[1] - 1;
        tm.tm_mday = n[2];
        tm.tm_hour = n[3];
        tm.tm_min = n[4];
        tm.tm_sec = n[5];
        t = timegm(&tm);
        *ret = (int64_t)t - off;
        return 0;
}

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
        json_t *tok, *exp, *iat;
        const char *t;
        int64_t expires_in = PINLET_TOKEN_DEFAULT_TTL, issued_at = -1;
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
        iat = json_object_get(root, "issued_at");
        if (iat && json_is_string(iat))
                if (pinlet_parse_rfc3339(json_string_value(iat), &issued_at) < 0)
                        issued_at = -1; /* docker ignores a bad issued_at too */

        copy = strdup(t);
        if (!copy)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        *ret = (struct pinlet_token){ copy, expires_in, issued_at };
        return 0;
}

void pinlet_token_clear(struct pinlet_token *t)
{
        erase_and_free(t->token);
        t->token = NULL;
}

struct pinlet_token_cache_entry {
        struct pinlet_token_cache_entry *next;
        char *key;
        char *token;
        int64_t valid_until_ms;
};

static void entry_free(struct pinlet_token_cache_entry *e)
{
        free(e->key);
        erase_and_free(e->token);
        free(e);
}

void pinlet_token_cache_init(struct pinlet_token_cache *c)
{
        pthread_mutex_init(&c->lock, NULL);
        c->head = NULL;
        c->n = 0;
}

void pinlet_token_cache_done(struct pinlet_token_cache *c)
{
        while (c->head) {
                struct pinlet_token_cache_entry *e = c->head;

                c->head = e->next;
                entry_free(e);
        }
        c->n = 0;
        pthread_mutex_destroy(&c->lock);
}

/* Unlinks and returns the entry for key, or NULL. Lock held. */
static struct pinlet_token_cache_entry *unlink_key(struct pinlet_token_cache *c, const char *key)
{
        for (struct pinlet_token_cache_entry **pp = &c->head; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->key, key) == 0) {
                        struct pinlet_token_cache_entry *e = *pp;

                        *pp = e->next;
                        c->n--;
                        return e;
                }
        return NULL;
}

int pinlet_token_cache_get(struct pinlet_token_cache *c, const char *key, int64_t now_ms,
                           char **ret)
{
        struct pinlet_token_cache_entry *e;
        int r = 0;

        pthread_mutex_lock(&c->lock);
        e = unlink_key(c, key);
        if (e && e->valid_until_ms > now_ms) {
                char *copy = strdup(e->token);

                if (copy) {
                        *ret = copy;
                        r = 1;
                }
                e->next = c->head; /* move to front */
                c->head = e;
                c->n++;
        } else if (e) {
                entry_free(e);
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}

int pinlet_token_cache_put(struct pinlet_token_cache *c, const char *key, const char *token,
                           int64_t now_ms, int64_t lifetime_ms)
{
        struct pinlet_token_cache_entry *e, *old;
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
        e->valid_until_ms = now_ms + keep;

        pthread_mutex_lock(&c->lock);
        old = unlink_key(c, key);
        if (old)
                entry_free(old);
        /* drop expired entries, then the least recently used while full */
        for (struct pinlet_token_cache_entry **pp = &c->head; *pp;) {
                if ((*pp)->valid_until_ms <= now_ms) {
                        struct pinlet_token_cache_entry *x = *pp;

                        *pp = x->next;
                        entry_free(x);
                        c->n--;
                } else {
                        pp = &(*pp)->next;
                }
        }
        while (c->n >= PINLET_TOKEN_CACHE_MAX) {
                struct pinlet_token_cache_entry **pp = &c->head;

                while ((*pp)->next)
                        pp = &(*pp)->next;
                entry_free(*pp);
                *pp = NULL;
                c->n--;
        }
        e->next = c->head;
        c->head = e;
        c->n++;
        pthread_mutex_unlock(&c->lock);
        return 0;
}

void pinlet_token_cache_drop(struct pinlet_token_cache *c, const char *key)
{
        struct pinlet_token_cache_entry *e;

        pthread_mutex_lock(&c->lock);
        e = unlink_key(c, key);
        pthread_mutex_unlock(&c->lock);
        if (e)
                entry_free(e);
}
