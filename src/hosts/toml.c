/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TOML subset reader: a recursive-descent parser over one buffer. See toml.h for what
 * is accepted. The recursion is bounded by PINLET_TOML_DEPTH_MAX and the input by
 * PINLET_TOML_SIZE_MAX, so a hostile file costs at most a bounded amount of stack and
 * memory (every value needs at least one input byte).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hosts/toml.h"
#include "util/buf.h"
#include "util/io.h"

struct parser {
        const char *name;
        const char *p, *end;
        unsigned line;
        struct pinlet_error **err;
};

static int fail(struct parser *ps, const char *what)
{
        return pinlet_error_set(ps->err, PINLET_EINVAL, "%s:%u: %s", ps->name, ps->line, what);
}

static int oom(struct parser *ps)
{
        return pinlet_error_set(ps->err, -ENOMEM, "out of memory");
}

const char *pinlet_toml_type_name(enum pinlet_toml_type t)
{
        switch (t) {
        case PINLET_TOML_STRING:
                return "string";
        case PINLET_TOML_INTEGER:
                return "integer";
        case PINLET_TOML_BOOL:
                return "boolean";
        case PINLET_TOML_ARRAY:
                return "array";
        case PINLET_TOML_TABLE:
                return "table";
        }
        return "?";
}

void pinlet_toml_free(struct pinlet_toml_value *v)
{
        if (!v)
                return;
        for (size_t i = 0; i < v->n; i++) {
                pinlet_toml_free(v->items[i]);
                if (v->keys)
                        free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
        free(v->string);
        free(v);
}

static struct pinlet_toml_value *value_new(enum pinlet_toml_type t, unsigned line)
{
        struct pinlet_toml_value *v = calloc(1, sizeof(*v));

        if (v) {
                v->type = t;
                v->line = line;
        }
        return v;
}

/* Appends item (and key, for tables) to c, taking ownership of both on success. */
static int append(struct pinlet_toml_value *c, char *key, struct pinlet_toml_value *item)
{
        if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 4;
                struct pinlet_toml_value **items = realloc(c->items, cap * sizeof(*items));

                if (!items)
                        return -ENOMEM;
                c->items = items;
                if (c->type == PINLET_TOML_TABLE) {
                        char **keys = realloc(c->keys, cap * sizeof(*keys));

                        if (!keys)
                                return -ENOMEM;
                        c->keys = keys;
                }
                c->cap = cap;
        }
        if (c->type == PINLET_TOML_TABLE)
                c->keys[c->n] = key;
        c->items[c->n++] = item;
        return 0;
}

const struct pinlet_toml_value *pinlet_toml_get(const struct pinlet_toml_value *table,
                                                const char *key)
{
        if (!table || table->type != PINLET_TOML_TABLE)
                return NULL;
        for (size_t i = 0; i < table->n; i++)
                if (strcmp(table->keys[i], key) == 0)
                        return table->items[i];
        return NULL;
}

static struct pinlet_toml_value *get_mut(struct pinlet_toml_value *table, const char *key)
{
        return (struct pinlet_toml_value *)pinlet_toml_get(table, key);
}

/* ---- lexing ---- */

/* Skips spaces and tabs (not newlines). */
static void skip_ws(struct parser *ps)
{
        while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
                ps->p++;
}

static void skip_comment(struct parser *ps)
{
        if (ps->p < ps->end && *ps->p == '#')
                while (ps->p < ps->end && *ps->p != '\n')
                        ps->p++;
}

/* Skips whitespace, comments and newlines (inside arrays). */
static void skip_ws_nl(struct parser *ps)
{
        for (;;) {
                skip_ws(ps);
                skip_comment(ps);
                if (ps->p < ps->end && *ps->p == '\n') {
                        ps->p++;
                        ps->line++;
                } else if (ps->end - ps->p >= 2 && ps->p[0] == '\r' && ps->p[1] == '\n') {
                        ps->p += 2;
                        ps->line++;
                } else {
                        return;
                }
        }
}

/* After a key/value or header: optional comment, then a newline or the end. */
static int expect_eol(struct parser *ps)
{
        skip_ws(ps);
        skip_comment(ps);
        if (ps->p == ps->end)
                return 0;
        if (*ps->p == '\n') {
                ps->p++;
                ps->line++;
                return 0;
        }
        if (ps->end - ps->p >= 2 && ps->p[0] == '\r' && ps->p[1] == '\n') {
                ps->p += 2;
                ps->line++;
                return 0;
        }
        return fail(ps, "expected the end of the line");
}

static bool is_bare(char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
}

static int utf8_encode(struct pinlet_buf *b, uint32_t cp)
{
        char u[4];
        size_t n;

        if (cp < 0x80) {
                u[0] = (char)cp;
                n = 1;
        } else if (cp < 0x800) {
                u[0] = (char)(0xc0 | (cp >> 6));
                u[1] = (char)(0x80 | (cp & 0x3f));
                n = 2;
        } else if (cp < 0x10000) {
                u[0] = (char)(0xe0 | (cp >> 12));
                u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                u[2] = (char)(0x80 | (cp & 0x3f));
                n = 3;
        } else {
                u[0] = (char)(0xf0 | (cp >> 18));
                u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
                u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
                u[3] = (char)(0x80 | (cp & 0x3f));
                n = 4;
        }
        return pinlet_buf_append(b, u, n);
}

/* A "basic" or 'literal' string at ps->p (on the quote). *ret is malloc'ed. */
static int parse_string(struct parser *ps, char **ret)
{
        struct pinlet_buf b;
        char q = *ps->p;
        int r = 0;

        if (ps->end - ps->p >= 3 && ps->p[1] == q && ps->p[2] == q)
                return fail(ps, "multi-line strings are not supported");
        pinlet_buf_init(&b, PINLET_TOML_SIZE_MAX);
        r = pinlet_buf_append(&b, "", 0); /* an empty string is "" too, not NULL */
        ps->p++;
        while (r >= 0) {
                char c;

                if (ps->p == ps->end || *ps->p == '\n' || *ps->p == '\r') {
                        r = fail(ps, "unterminated string");
                        break;
                }
                c = *ps->p++;
                if (c == q)
                        break;
                if (c == '\0') {
                        r = fail(ps, "NUL byte in a string");
                        break;
                }
                if ((unsigned char)c < 0x20 && c != '\t') {
                        r = fail(ps, "control character in a string");
                        break;
                }
                if (c != '\\' || q == '\'') {
                        r = pinlet_buf_append(&b, &c, 1);
                        continue;
                }
                if (ps->p == ps->end) {
                        r = fail(ps, "unterminated string");
                        break;
                }
                c = *ps->p++;
                switch (c) {
                case 'b':
                        r = pinlet_buf_append(&b, "\b", 1);
                        break;
                case 't':
                        r = pinlet_buf_append(&b, "\t", 1);
                        break;
                case 'n':
                        r = pinlet_buf_append(&b, "\n", 1);
                        break;
                case 'f':
                        r = pinlet_buf_append(&b, "\f", 1);
                        break;
                case 'r':
                        r = pinlet_buf_append(&b, "\r", 1);
                        break;
                case '"':
                        r = pinlet_buf_append(&b, "\"", 1);
                        break;
                case '\\':
                        r = pinlet_buf_append(&b, "\\", 1);
                        break;
                case 'u':
                case 'U': {
                        size_t digits = c == 'u' ? 4 : 8;
                        uint32_t cp = 0;

                        if ((size_t)(ps->end - ps->p) < digits) {
                                r = fail(ps, "short \\u escape");
                                break;
                        }
                        for (size_t i = 0; i < digits && r >= 0; i++) {
                                char h = *ps->p++;
                                int v = h >= '0' && h <= '9'   ? h - '0'
                                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                               : -1;
                                if (v < 0)
                                        r = fail(ps, "bad hex digit in a \\u escape");
                                cp = cp << 4 | (uint32_t)v;
                        }
                        if (r < 0)
                                break;
                        /* TOML: a Unicode scalar value; a NUL would cut the C string */
                        if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                                r = fail(ps, "\\u escape is not a Unicode scalar value (or NUL)");
                                break;
                        }
                        r = utf8_encode(&b, cp);
                        break;
                }
                default:
                        r = fail(ps, "unknown escape in a string");
                }
        }
        if (r < 0) {
                pinlet_buf_free(&b);
                return r == -ENOMEM ? oom(ps) : r;
        }
        *ret = pinlet_buf_steal(&b, NULL);
        return 0;
}

/* One key part: bare, "basic" or 'literal'. */
static int parse_key_part(struct parser *ps, char **ret)
{
        const char *s = ps->p;

        skip_ws(ps);
        if (ps->p < ps->end && (*ps->p == '"' || *ps->p == '\''))
                return parse_string(ps, ret);
        s = ps->p;
        while (ps->p < ps->end && is_bare(*ps->p))
                ps->p++;
        if (ps->p == s)
                return fail(ps, "expected a key");
        *ret = strndup(s, (size_t)(ps->p - s));
        return *ret ? 0 : oom(ps);
}

#define KEY_PARTS_MAX 16

struct key {
        char *part[KEY_PARTS_MAX];
        size_t n;
};

static void key_done(struct key *k)
{
        for (size_t i = 0; i < k->n; i++)
                free(k->part[i]);
        k->n = 0;
}

/* A dotted key: part(.part)*. Stops after the last part and its trailing spaces. */
static int parse_key(struct parser *ps, struct key *k)
{
        int r;

        for (;;) {
                if (k->n == KEY_PARTS_MAX)
                        return fail(ps, "dotted key has too many parts");
                r = parse_key_part(ps, &k->part[k->n]);
                if (r < 0)
                        return r;
                k->n++;
                skip_ws(ps);
                if (ps->p < ps->end && *ps->p == '.') {
                        ps->p++;
                        continue;
                }
                return 0;
        }
}

/* ---- values ---- */

static int parse_value(struct parser *ps, unsigned depth, struct pinlet_toml_value **ret);
static int set_key(struct parser *ps, struct pinlet_toml_value *table, struct key *k,
                   struct pinlet_toml_value *v);

static int parse_integer(struct parser *ps, struct pinlet_toml_value **ret)
{
        const char *s = ps->p;
        bool neg = false, digit_before = false;
        uint64_t v = 0, lim;
        struct pinlet_toml_value *val;

        if (*ps->p == '+' || *ps->p == '-')
                neg = *ps->p++ == '-';
        if (ps->end - ps->p >= 2 && ps->p[0] == '0' &&
            (ps->p[1] == 'x' || ps->p[1] == 'o' || ps->p[1] == 'b'))
                return fail(ps, "hexadecimal, octal and binary integers are not supported");
        lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        while (ps->p < ps->end) {
                char c = *ps->p;

                if (c == '_') {
                        if (!digit_before || ps->p + 1 == ps->end || ps->p[1] < '0' ||
                            ps->p[1] > '9')
                                return fail(ps, "'_' must be between digits");
                        ps->p++;
                        continue;
                }
                if (c < '0' || c > '9')
                        break;
                if (v > (lim - (uint64_t)(c - '0')) / 10)
                        return fail(ps, "integer out of range");
                v = v * 10 + (uint64_t)(c - '0');
                digit_before = true;
                ps->p++;
        }
        if (!digit_before)
                return fail(ps, "expected a value");
        if (ps->p < ps->end &&
            (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E' || *ps->p == '-' || *ps->p == ':'))
                return fail(ps, "floats, dates and times are not supported");
        /* TOML: no leading zeros ("007") */
        if (ps->p - s > 1 + (neg || *s == '+') && s[neg || *s == '+'] == '0')
                return fail(ps, "integer with a leading zero");
        val = value_new(PINLET_TOML_INTEGER, ps->line);
        if (!val)
                return oom(ps);
        val->integer = neg ? (int64_t)(0 - v) : (int64_t)v;
        *ret = val;
        return 0;
}

static int parse_array(struct parser *ps, unsigned depth, struct pinlet_toml_value **ret)
{
        _cleanup_(pinlet_toml_freep) struct pinlet_toml_value *a =
                value_new(PINLET_TOML_ARRAY, ps->line);
        int r;

        if (!a)
                return oom(ps);
        ps->p++; /* '[' */
        for (;;) {
                struct pinlet_toml_value *item = NULL;

                skip_ws_nl(ps);
                if (ps->p == ps->end)
                        return fail(ps, "unterminated array");
                if (*ps->p == ']') {
                        ps->p++;
                        break;
                }
                r = parse_value(ps, depth + 1, &item);
                if (r < 0)
                        return r;
                if (append(a, NULL, item) < 0) {
                        pinlet_toml_free(item);
                        return oom(ps);
                }
                skip_ws_nl(ps);
                if (ps->p < ps->end && *ps->p == ',') {
                        ps->p++;
                        continue;
                }
                if (ps->p < ps->end && *ps->p == ']') {
                        ps->p++;
                        break;
                }
                return fail(ps, ps->p == ps->end ? "unterminated array"
                                                 : "expected ',' or ']' in an array");
        }
        *ret = TAKE_PTR(a);
        return 0;
}

static int parse_inline_table(struct parser *ps, unsigned depth, struct pinlet_toml_value **ret)
{
        _cleanup_(pinlet_toml_freep) struct pinlet_toml_value *t =
                value_new(PINLET_TOML_TABLE, ps->line);
        bool first = true;
        int r;

        if (!t)
                return oom(ps);
        t->defined = true;
        ps->p++; /* '{' */
        for (;;) {
                struct key k = { 0 };
                struct pinlet_toml_value *v = NULL;

                skip_ws(ps);
                if (first && ps->p < ps->end && *ps->p == '}') {
                        ps->p++;
                        break;
                }
                r = parse_key(ps, &k);
                if (r >= 0 && (ps->p == ps->end || *ps->p != '='))
                        r = fail(ps, "expected '=' after a key");
                if (r >= 0) {
                        ps->p++;
                        skip_ws(ps);
                        r = parse_value(ps, depth + 1, &v);
                }
                if (r >= 0)
                        r = set_key(ps, t, &k, v); /* owns v from here on */
                key_done(&k);
                if (r < 0)
                        return r;
                first = false;
                skip_ws(ps);
                if (ps->p < ps->end && *ps->p == ',') {
                        ps->p++;
                        continue;
                }
                if (ps->p < ps->end && *ps->p == '}') {
                        ps->p++;
                        break;
                }
                return fail(ps, "expected ',' or '}' in an inline table");
        }
        /* an inline table is complete: nothing may be added later, at any depth */
        t->inline_table = true;
        *ret = TAKE_PTR(t);
        return 0;
}

static int parse_value(struct parser *ps, unsigned depth, struct pinlet_toml_value **ret)
{
        struct pinlet_toml_value *v;
        char *s = NULL;
        int r;

        if (depth > PINLET_TOML_DEPTH_MAX)
                return fail(ps, "values nest too deeply");
        if (ps->p == ps->end)
                return fail(ps, "expected a value");
        switch (*ps->p) {
        case '"':
        case '\'':
                r = parse_string(ps, &s);
                if (r < 0)
                        return r;
                v = value_new(PINLET_TOML_STRING, ps->line);
                if (!v) {
                        free(s);
                        return oom(ps);
                }
                v->string = s;
                *ret = v;
                return 0;
        case '[':
                return parse_array(ps, depth, ret);
        case '{':
                return parse_inline_table(ps, depth, ret);
        case 't':
        case 'f': {
                bool b = *ps->p == 't';
                size_t n = b ? 4 : 5;

                if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, b ? "true" : "false", n) != 0 ||
                    (ps->p + n < ps->end && is_bare(ps->p[n])))
                        return fail(ps, "expected a value");
                ps->p += n;
                v = value_new(PINLET_TOML_BOOL, ps->line);
                if (!v)
                        return oom(ps);
                v->boolean = b;
                *ret = v;
                return 0;
        }
        default:
                if (*ps->p == '+' || *ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
                        return parse_integer(ps, ret);
                if (*ps->p == 'i' || *ps->p == 'n')
                        return fail(ps, "floats are not supported");
                return fail(ps, "expected a value");
        }
}

/* ---- tables ---- */

/* The table key names inside t, created (implicitly, not "defined") when missing. For
 * headers, an array of tables stands for its last table. */
static int descend(struct parser *ps, struct pinlet_toml_value *t, const char *key, bool dotted_kv,
                   struct pinlet_toml_value **ret)
{
        struct pinlet_toml_value *c = get_mut(t, key);
        char *k;

        if (!c) {
                c = value_new(PINLET_TOML_TABLE, ps->line);
                k = strdup(key);
                if (!c || !k || append(t, k, c) < 0) {
                        free(c);
                        free(k);
                        return oom(ps);
                }
                *ret = c;
                return 0;
        }
        if (c->type == PINLET_TOML_ARRAY && c->table_array && !dotted_kv && c->n > 0)
                c = c->items[c->n - 1];
        if (c->type != PINLET_TOML_TABLE)
                return pinlet_error_set(ps->err, PINLET_EINVAL,
                                        "%s:%u: key '%s' is already a %s (line %u), not a table",
                                        ps->name, ps->line, key, pinlet_toml_type_name(c->type),
                                        c->line);
        if (c->inline_table)
                return pinlet_error_set(ps->err, PINLET_EINVAL,
                                        "%s:%u: inline table '%s' (line %u) cannot be extended",
                                        ps->name, ps->line, key, c->line);
        /* [a.b] after a = {..} handled above; a dotted key may not extend a [header] table
         * defined elsewhere (TOML 1.0), but containerd's go-toml accepts it: so do we */
        *ret = c;
        return 0;
}

/* table.k = v, with k dotted: takes ownership of v in every case. */
static int set_key(struct parser *ps, struct pinlet_toml_value *table, struct key *k,
                   struct pinlet_toml_value *v)
{
        struct pinlet_toml_value *t = table;
        char *name;
        int r;

        for (size_t i = 0; i + 1 < k->n; i++) {
                r = descend(ps, t, k->part[i], true, &t);
                if (r < 0) {
                        pinlet_toml_free(v);
                        return r;
                }
                t->defined = true;
        }
        if (pinlet_toml_get(t, k->part[k->n - 1])) {
                const struct pinlet_toml_value *old = pinlet_toml_get(t, k->part[k->n - 1]);

                r = pinlet_error_set(ps->err, PINLET_EINVAL,
                                     "%s:%u: duplicate key '%s' (first on line %u)", ps->name,
                                     ps->line, k->part[k->n - 1], old->line);
                pinlet_toml_free(v);
                return r;
        }
        name = strdup(k->part[k->n - 1]);
        if (!name || append(t, name, v) < 0) {
                free(name);
                pinlet_toml_free(v);
                return oom(ps);
        }
        return 0;
}

/* [a.b.c] or [[a.b.c]] at ps->p; *cur becomes the table that key/values go to. */
static int parse_header(struct parser *ps, struct pinlet_toml_value *root,
                        struct pinlet_toml_value **cur)
{
        struct key k = { 0 };
        struct pinlet_toml_value *t = root, *last;
        bool array = ps->end - ps->p >= 2 && ps->p[1] == '[';
        const char *lastkey;
        int r;

        ps->p += array ? 2 : 1;
        r = parse_key(ps, &k);
        if (r < 0)
                goto out;
        if (array ? ps->end - ps->p < 2 || ps->p[0] != ']' || ps->p[1] != ']'
                  : ps->p == ps->end || *ps->p != ']') {
                r = fail(ps, array ? "expected ']]' after the table name"
                                   : "expected ']' after the table name");
                goto out;
        }
        ps->p += array ? 2 : 1;
        for (size_t i = 0; i + 1 < k.n; i++) {
                r = descend(ps, t, k.part[i], false, &t);
                if (r < 0)
                        goto out;
        }
        lastkey = k.part[k.n - 1];
        last = get_mut(t, lastkey);
        if (array) {
                struct pinlet_toml_value *nt;

                if (!last) {
                        char *name = strdup(lastkey);

                        last = value_new(PINLET_TOML_ARRAY, ps->line);
                        if (!name || !last || append(t, name, last) < 0) {
                                free(name);
                                free(last);
                                r = oom(ps);
                                goto out;
                        }
                        last->table_array = true;
                } else if (last->type != PINLET_TOML_ARRAY || !last->table_array) {
                        r = pinlet_error_set(ps->err, PINLET_EINVAL,
                                             "%s:%u: '%s' is already a %s (line %u), not an "
                                             "array of tables",
                                             ps->name, ps->line, lastkey,
                                             pinlet_toml_type_name(last->type), last->line);
                        goto out;
                }
                nt = value_new(PINLET_TOML_TABLE, ps->line);
                if (!nt || append(last, NULL, nt) < 0) {
                        free(nt);
                        r = oom(ps);
                        goto out;
                }
                nt->defined = true;
                *cur = nt;
        } else {
                if (!last) {
                        r = descend(ps, t, lastkey, false, &last);
                        if (r < 0)
                                goto out;
                } else if (last->type != PINLET_TOML_TABLE || last->defined || last->inline_table) {
                        r = pinlet_error_set(ps->err, PINLET_EINVAL,
                                             "%s:%u: table '%s' is already defined (line %u)",
                                             ps->name, ps->line, lastkey, last->line);
                        goto out;
                }
                last->defined = true;
                last->line = ps->line;
                *cur = last;
        }
        r = 0;
out:
        key_done(&k);
        return r;
}

int pinlet_toml_parse(const char *name, const char *data, size_t len,
                      struct pinlet_toml_value **ret, struct pinlet_error **err)
{
        _cleanup_(pinlet_toml_freep) struct pinlet_toml_value *root = NULL;
        struct parser ps = { .name = name, .p = data, .end = data + len, .line = 1, .err = err };
        struct pinlet_toml_value *cur;
        int r;

        if (len > PINLET_TOML_SIZE_MAX)
                return pinlet_error_set(err, PINLET_E2BIG, "%s: larger than %d bytes", name,
                                        PINLET_TOML_SIZE_MAX);
        if (len > 0 && memchr(data, '\0', len))
                return pinlet_error_set(err, PINLET_EINVAL, "%s: holds a NUL byte", name);
        root = value_new(PINLET_TOML_TABLE, 1);
        if (!root)
                return oom(&ps);
        root->defined = true;
        cur = root;
        /* a UTF-8 byte order mark is allowed at the start */
        if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
                ps.p += 3;
        for (;;) {
                skip_ws_nl(&ps);
                if (ps.p == ps.end)
                        break;
                if (*ps.p == '[') {
                        r = parse_header(&ps, root, &cur);
                } else {
                        struct key k = { 0 };
                        struct pinlet_toml_value *v = NULL;

                        r = parse_key(&ps, &k);
                        if (r >= 0 && (ps.p == ps.end || *ps.p != '='))
                                r = fail(&ps, "expected '=' after a key");
                        if (r >= 0) {
                                ps.p++;
                                skip_ws(&ps);
                                r = parse_value(&ps, 0, &v);
                        }
                        if (r >= 0)
                                r = set_key(&ps, cur, &k, v);
                        key_done(&k);
                }
                if (r >= 0)
                        r = expect_eol(&ps);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(root);
        return 0;
}

int pinlet_toml_load(const char *path, struct pinlet_toml_value **ret, struct pinlet_error **err)
{
        _cleanup_free_ char *data = NULL;
        size_t n = 0;
        int r;

        r = pinlet_io_read_file(path, PINLET_TOML_SIZE_MAX, 0, &data, &n, err);
        if (r < 0)
                return pinlet_error_wrap(err, r, "%s", path);
        return pinlet_toml_parse(path, data, n, ret, err);
}
