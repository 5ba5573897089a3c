/* SPDX-License-Identifier: Apache-2.0 */
/*
 * WWW-Authenticate parser (RFC 7235 section 4.1, with RFC 7230 list rules):
 *
 *   WWW-Authenticate = 1#challenge
 *   challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   auth-param       = token BWS "=" BWS ( token / quoted-string )
 *   token68          = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
 *
 * One header may hold several challenges, and a response may hold several headers: call
 * pinlet_challenge_parse() once per header value on the same list. Scheme and parameter
 * names compare case-insensitively; quoted strings are unescaped (backslash pairs), and a
 * comma inside quotes is data. Empty list elements (", ,") are allowed, as the list rule
 * says.
 *
 * Pure code: no I/O, no globals.
 */
#pragma once

#include <stddef.h>

#include "util/error.h"

#define PINLET_CHALLENGE_MAX        16 /* challenges kept per response */
#define PINLET_CHALLENGE_PARAMS_MAX 32 /* parameters per challenge */

struct pinlet_auth_param {
        char *name; /* lowercased */
        char *value;
};

struct pinlet_auth_challenge {
        char *scheme;  /* lowercased: "basic", "bearer" */
        char *token68; /* NULL unless the challenge carried a token68 instead of params */
        struct pinlet_auth_param *params;
        size_t n_params;
};

/* Owns its challenges. Zero-initialise before first use. */
struct pinlet_auth_challenges {
        struct pinlet_auth_challenge *v;
        size_t n;
};

/*
 * Parses one header value of len bytes (no NUL needed) and appends its challenges to
 * list. On a syntax error returns PINLET_EPROTO with *err describing where; list then
 * keeps the challenges of earlier headers only. More than PINLET_CHALLENGE_MAX challenges
 * or PINLET_CHALLENGE_PARAMS_MAX params in one is PINLET_E2BIG.
 */
int pinlet_challenge_parse(const char *value, size_t len, struct pinlet_auth_challenges *list,
                           struct pinlet_error **err);

/* The first challenge with this scheme (case-insensitive), or NULL. */
const struct pinlet_auth_challenge *pinlet_challenge_find(const struct pinlet_auth_challenges *list,
                                                          const char *scheme);

/* The value of a parameter (name case-insensitive), or NULL. */
const char *pinlet_challenge_param(const struct pinlet_auth_challenge *c, const char *name);

void pinlet_challenges_clear(struct pinlet_auth_challenges *list);
