/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bearer tokens (distribution's token authentication spec): the token server's JSON
 * answer, and a thread-safe cache of tokens keyed by (realm, service, scope, credential
 * fingerprint) so a second resolution of the same repository costs no token request.
 */
#pragma once

#include <pthread.h>
#include <stdint.h>

#include "util/error.h"
#include "util/lru.h"

#define PINLET_TOKEN_RESPONSE_MAX (1024 * 1024) /* bytes of token JSON accepted */
#define PINLET_TOKEN_MAX          (64 * 1024)   /* bytes of one token */
#define PINLET_TOKEN_DEFAULT_TTL  60            /* seconds, when expires_in is absent */
#define PINLET_TOKEN_MARGIN_MS    10000         /* tokens leave the cache this early */
#define PINLET_TOKEN_CACHE_MAX    256           /* entries */

struct pinlet_token {
        char *token;        /* owned, secret: freed with erase */
        int64_t expires_in; /* seconds; PINLET_TOKEN_DEFAULT_TTL when absent or < 1 */
};

/*
 * Parses a token response: {"token": T} or {"access_token": T} (token wins when both are
 * present, as docker does), "expires_in" (integer seconds). "issued_at" is not read (see token.c).
 * Errors are PINLET_EPROTO (not JSON, no token, wrong types, a token that is empty, too
 * long or holds characters that cannot go into an Authorization header) or
 * PINLET_E2BIG.
 */
int pinlet_token_parse(const char *json, size_t len, struct pinlet_token *ret,
                       struct pinlet_error **err);

void pinlet_token_clear(struct pinlet_token *t);

struct pinlet_token_cache_entry;

/* A bounded LRU of tokens (util/lru) under its own mutex: every function below may be
 * called from any thread, except init and done. */
struct pinlet_token_cache {
        pthread_mutex_t lock;
        struct pinlet_lru lru; /* of struct pinlet_token_cache_entry, owned */
        size_t max;            /* entries */
};

/* max 0 means PINLET_TOKEN_CACHE_MAX. Returns 0 or -ENOMEM. */
int pinlet_token_cache_init(struct pinlet_token_cache *c, size_t max);
/* Frees every token (erased). Accepts a zeroed cache and one whose init failed. */
void pinlet_token_cache_done(struct pinlet_token_cache *c);

/* Entries held now, expired ones not yet dropped included (for tests). */
size_t pinlet_token_cache_size(struct pinlet_token_cache *c);

/* Copies the cached token for key into *ret (caller frees with erase) if one exists that
 * is still valid at now_ms (CLOCK_MONOTONIC ms); returns 1 then, 0 on a miss. */
int pinlet_token_cache_get(struct pinlet_token_cache *c, const char *key, int64_t now_ms,
                           char **ret);

/* Stores token under key, valid until expires_at_ms minus the margin (or half the
 * lifetime when that is shorter than twice the margin). Evicts expired entries, then the
 * least recently used one when full. */
int pinlet_token_cache_put(struct pinlet_token_cache *c, const char *key, const char *token,
                           int64_t now_ms, int64_t lifetime_ms);

/* Forgets key (a token the registry refused). */
void pinlet_token_cache_drop(struct pinlet_token_cache *c, const char *key);
