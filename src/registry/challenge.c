/* SPDX-License-Identifier: Apache-2.0 */
/*
 * WWW-Authenticate parsing. Registries send things like
 *   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."
 *   Basic realm="Registry Realm"
 * and some proxies put several challenges in one header ("Basic realm=x, Bearer ...").
 * The grammar is ambiguous only at one place: after "scheme SP", a lone token followed by
 * "=" signs and then the end or a comma is a token68 ("Negotiate abc==") ; a token
 * followed by "=" and a value is the first auth-param. Inside a challenge's list, an
 * element that is a token not followed by "=" starts the next challenge.
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "registry/challenge.h"

static bool is_tchar(unsigned char c)
{
        if (isalnum(c) && c < 0x80)
                return true;
        return c && strchr("!#$%&'*+-.^_`|~", c);
}

static bool is_token68_char(unsigned char c)
{
        if (isalnum(c) && c < 0x80)
                return true;
        return c && strchr("-._~+/", c);
}

static bool is_ows(unsigned char c)
{
        return c == ' ' || c == '\t';
}

struct cursor {
        const char *s;
        size_t len;
        size_t p;
};

static void skip_ows(struct cursor *c)
{
        while (c->p < c->len && is_ows(c->s[c->p]))
                c->p++;
}

/* Skips OWS and commas (empty list elements); returns whether a comma was crossed. */
static bool skip_list_sep(struct cursor *c)
{
        bool comma = false;

        while (c->p < c->len && (is_ows(c->s[c->p]) || c->s[c->p] == ',')) {
                if (c->s[c->p] == ',')
                        comma = true;
                c->p++;
        }
        return comma;
}

static size_t token_len(const struct cursor *c, size_t from)
{
        size_t q = from;

        while (q < c->len && is_tchar(c->s[q]))
                q++;
        return q - from;
}

static char *dup_lower(const char *s, size_t n)
{
        char *r = strndup(s, n);

        if (r)
                for (size_t i = 0; i < n; i++)
                        r[i] = (char)tolower((unsigned char)r[i]);
        return r;
}

/* Reads a quoted-string starting at the opening DQUOTE; returns the unescaped value. */
static int read_quoted(struct cursor *c, char **ret, struct pinlet_error **err)
{
        _cleanup_free_ char *v = NULL;
        size_t n = 0, start = c->p;

        v = malloc(c->len - c->p + 1);
        if (!v)
                return -ENOMEM;
        c->p++; /* opening quote */
        for (;;) {
                unsigned char ch;

                if (c->p >= c->len)
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "unterminated quoted string at offset %zu", start);
                ch = (unsigned char)c->s[c->p++];
                if (ch == '"')
                        break;
                if (ch == '\\') {
                        if (c->p >= c->len)
                                return pinlet_error_set(err, PINLET_EPROTO,
                                                        "unterminated quoted string at offset %zu",
                                                        start);
                        ch = (unsigned char)c->s[c->p++];
                        /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
                        if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
                                return pinlet_error_set(
                                        err, PINLET_EPROTO,
                                        "control character in quoted string at offset %zu",
                                        c->p - 1);
                } else if (ch != '\t' && (ch < 0x20 || ch == 0x7f)) {
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "control character in quoted string at offset %zu",
                                                c->p - 1);
                }
                v[n++] = (char)ch;
        }
        v[n] = 0;
        *ret = TAKE_PTR(v);
        return 0;
}

static void challenge_clear(struct pinlet_auth_challenge *ch)
{
        free(ch->scheme);
        free(ch->token68);
        for (size_t i = 0; i < ch->n_params; i++) {
                free(ch->params[i].name);
                free(ch->params[i].value);
        }
        free(ch->params);
        memset(ch, 0, sizeof(*ch));
}

static int add_param(struct pinlet_auth_challenge *ch, char *name, char *value)
{
        struct pinlet_auth_param *np;

        if (ch->n_params >= PINLET_CHALLENGE_PARAMS_MAX)
                return PINLET_E2BIG;
        np = realloc(ch->params, (ch->n_params + 1) * sizeof(*np));
        if (!np)
                return -ENOMEM;
        ch->params = np;
        ch->params[ch->n_params++] = (struct pinlet_auth_param){ name, value };
        return 0;
}

/* Parses the token68 or auth-param list after a scheme into ch. Stops before the scheme of
 * the next challenge (or at the end). */
static int parse_challenge_body(struct cursor *c, struct pinlet_auth_challenge *ch,
                                struct pinlet_error **err)
{
        size_t q, n;
        bool first = true;

        /* token68 directly after "scheme 1*SP": t68 chars, '=' padding, then end or ',' */
        if (c->p < c->len && is_ows(c->s[c->p])) {
                skip_ows(c);
                q = c->p;
                while (q < c->len && is_token68_char(c->s[q]))
                        q++;
                if (q > c->p) {
                        size_t end;

                        while (q < c->len && c->s[q] == '=')
                                q++;
                        end = q;
                        while (q < c->len && is_ows(c->s[q]))
                                q++;
                        if (q == c->len || c->s[q] == ',') {
                                ch->token68 = strndup(c->s + c->p, end - c->p);
                                if (!ch->token68)
                                        return -ENOMEM;
                                c->p = q;
                                return 0;
                        }
                }
        } else if (c->p < c->len && c->s[c->p] != ',') {
                return pinlet_error_set(err, PINLET_EPROTO,
                                        "unexpected character after auth-scheme at offset %zu",
                                        c->p);
        }

        for (;;) {
                _cleanup_free_ char *name = NULL, *value = NULL;
                size_t save = c->p;
                bool comma = skip_list_sep(c);
                int ret;

                if (c->p >= c->len)
                        return 0;
                if (!first && !comma)
                        return pinlet_error_set(err, PINLET_EPROTO, "expected ',' at offset %zu",
                                                c->p);
                n = token_len(c, c->p);
                if (n == 0)
                        return pinlet_error_set(err, PINLET_EPROTO,
                                                "expected a parameter name at offset %zu", c->p);
                q = c->p + n;
                while (q < c->len && is_ows(c->s[q]))
                        q++;
                if (q >= c->len || c->s[q] != '=') {
                        /* Not "name=": the scheme of the next challenge. A challenge list
                         * element needs a comma before it. */
                        if (!comma)
                                return pinlet_error_set(err, PINLET_EPROTO,
                                                        "expected '=' at offset %zu", q);
                        c->p = save;
                        return 0;
                }
                name = dup_lower(c->s + c->p, n);
                if (!name)
                        return -ENOMEM;
                c->p = q + 1;
                skip_ows(c);
                if (c->p < c->len && c->s[c->p] == '"') {
                        ret = read_quoted(c, &value, err);
                        if (ret < 0)
                                return ret;
                } else {
                        n = token_len(c, c->p);
                        if (n == 0)
                                return pinlet_error_set(
                                        err, PINLET_EPROTO,
                                        "expected a token or quoted string at offset %zu", c->p);
                        value = strndup(c->s + c->p, n);
                        if (!value)
                                return -ENOMEM;
                        c->p += n;
                }
                ret = add_param(ch, name, value);
                if (ret == PINLET_E2BIG)
                        return pinlet_error_set(err, ret, "more than %d parameters in a challenge",
                                                PINLET_CHALLENGE_PARAMS_MAX);
                if (ret < 0)
                        return ret;
                name = value = NULL;
                skip_ows(c);
                first = false;
        }
}

int pinlet_challenge_parse(const char *value, size_t len, struct pinlet_auth_challenges *list,
                           struct pinlet_error **err)
{
        struct cursor c = { value, len, 0 };
        size_t n0 = list->n;
        int ret = 0;

        for (;;) {
                struct pinlet_auth_challenge ch = { 0 }, *nv;
                size_t n;

                skip_list_sep(&c);
                if (c.p >= c.len)
                        break;
                n = token_len(&c, c.p);
                if (n == 0) {
                        ret = pinlet_error_set(err, PINLET_EPROTO,
                                               "expected an auth-scheme at offset %zu", c.p);
                        goto fail;
                }
                if (list->n >= PINLET_CHALLENGE_MAX) {
                        ret = pinlet_error_set(err, PINLET_E2BIG, "more than %d challenges",
                                               PINLET_CHALLENGE_MAX);
                        goto fail;
                }
                ch.scheme = dup_lower(c.s + c.p, n);
                if (!ch.scheme) {
                        ret = -ENOMEM;
                        goto fail;
                }
                c.p += n;
                ret = parse_challenge_body(&c, &ch, err);
                if (ret >= 0) {
                        nv = realloc(list->v, (list->n + 1) * sizeof(*nv));
                        if (!nv)
                                ret = -ENOMEM;
                        else
                                list->v = nv;
                }
                if (ret < 0) {
                        challenge_clear(&ch);
                        goto fail;
                }
                list->v[list->n++] = ch;
        }
        return 0;
fail:
        while (list->n > n0)
                challenge_clear(&list->v[--list->n]);
        if (list->n == 0) {
                free(list->v);
                list->v = NULL;
        }
        if (ret == -ENOMEM)
                return pinlet_error_set(err, ret, "out of memory");
        return ret;
}

const struct pinlet_auth_challenge *pinlet_challenge_find(const struct pinlet_auth_challenges *list,
                                                          const char *scheme)
{
        for (size_t i = 0; i < list->n; i++)
                if (strcasecmp(list->v[i].scheme, scheme) == 0)
                        return &list->v[i];
        return NULL;
}

const char *pinlet_challenge_param(const struct pinlet_auth_challenge *c, const char *name)
{
        for (size_t i = 0; i < c->n_params; i++)
                if (strcasecmp(c->params[i].name, name) == 0)
                        return c->params[i].value;
        return NULL;
}

void pinlet_challenges_clear(struct pinlet_auth_challenges *list)
{
        for (size_t i = 0; i < list->n; i++)
                challenge_clear(&list->v[i]);
        free(list->v);
        list->v = NULL;
        list->n = 0;
}
