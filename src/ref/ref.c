/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image references: a hand-written, deterministic parser for the distribution reference
 * grammar (distribution/reference regexp.go and normalize.go: ParseNormalizedNamed,
 * TagNameOnly, FamiliarString), which containerd and kubelet use. No regex engine, no
 * allocation except the output strings. Each check below quotes the grammar line it
 * implements:
 *
 *   reference        := name [ ":" tag ] [ "@" digest ]
 *   name             := [domain '/'] remote-name
 *   domain           := host [':' port-number]
 *   host             := domain-name | '[' IPv6address ']'
 *   domain-name      := domain-component ['.' domain-component]*
 *   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
 *   port-number      := /[0-9]+/
 *   remote-name      := path-component ['/' path-component]*
 *   path-component   := alpha-numeric [separator alpha-numeric]*
 *   alpha-numeric    := /[a-z0-9]+/
 *   separator        := /[_.]|__|[-]+/
 *   tag              := /[\w][\w.-]{0,127}/
 *   digest           := algorithm ":" hex
 *   algorithm        := component ([-_+.] component)*; component := alpha alnum*
 *   hex              := /[0-9a-fA-F]{32,}/
 *   identifier       := /[a-f0-9]{64}/
 *
 * Where pinlet departs from ParseNormalizedNamed, on purpose:
 *  - "sha256:<64 hex>" is rejected as an image ID (distribution reads it as the repository
 *    docker.io/library/sha256 with a 64-character tag; kubelet and containerd hand image IDs
 *    around in exactly that form, so treating it as a tag to pin would be wrong).
 *  - A first element that is taken for a domain (it has '.' or ':', is "localhost", or has
 *    an uppercase letter) but is not a valid domain, e.g. "my_reg.local/app", is rejected.
 *    distribution then falls back to reading the whole name as a path with an empty domain,
 *    a reference no runtime can pull.
 *  - Digests: only the algorithms containerd registers (go-digest with crypto/sha256 and
 *    crypto/sha512) are accepted: sha256 (64 hex), sha384 (96), sha512 (128), lowercase hex.
 *    Other well-formed algorithms fail with "unsupported digest algorithm", as in go-digest.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ref/ref.h"
#include "util/str.h"

#define DEFAULT_DOMAIN        "docker.io"       /* normalize.go defaultDomain */
#define LEGACY_DEFAULT_DOMAIN "index.docker.io" /* folded into docker.io */
#define OFFICIAL_REPO_PREFIX  "library/"        /* single-component Docker Hub names */
#define DEFAULT_TAG           "latest"
#define LOCALHOST             "localhost" /* always a domain when it is the first element */

/* How much of the input an error message quotes: inputs come from outside and end up in
 * logs, so they are cut and stripped of control characters. */
#define SHOWN_MAX 200

struct digest_algorithm {
        const char *name;
        size_t hex_len;
        const char *wrong_length; /* the error when the hex has another length */
};

/* go-digest's registered algorithms (crypto.SHA256, SHA384, SHA512): hex is size * 2. */
static const struct digest_algorithm digest_algorithms[] = {
        { "sha256", 64, "a sha256 digest has 64 hex digits" },
        { "sha384", 96, "a sha384 digest has 96 hex digits" },
        { "sha512", 128, "a sha512 digest has 128 hex digits" },
};

static bool is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_upper(char c)
{
        return c >= 'A' && c <= 'Z';
}

static bool is_alpha(char c)
{
        return (c >= 'a' && c <= 'z') || is_upper(c);
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
        return is_alpha(c) || is_digit(c);
}

/* Go's \w: ASCII word characters only. */
static bool is_word(char c)
{
        return is_alnum(c) || c == '_';
}

static bool is_xdigit(char c)
{
        return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_lower_xdigit(char c)
{
        return is_digit(c) || (c >= 'a' && c <= 'f');
}

static bool has_char(const char *s, size_t n, char c)
{
        return memchr(s, c, n) != NULL;
}

static bool has_upper(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (is_upper(s[i]))
                        return true;
        return false;
}

static bool span_eq(const char *s, size_t n, const char *lit)
{
        return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Copies at most SHOWN_MAX bytes of s into buf with non-printable bytes as '?'. */
static const char *shown(const char *s, char buf[static SHOWN_MAX + 4])
{
        size_t i;

        for (i = 0; s[i] && i < SHOWN_MAX; i++)
                buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
        if (s[i]) {
                memcpy(buf + i, "...", 3);
                i += 3;
        }
        buf[i] = '\0';
        return buf;
}

/* Sets "invalid reference '<input>': <reason>" and returns -EINVAL. The reason may quote
 * parts of the input with %.*s; those parts passed the caller's own checks or are cut to
 * printable characters by the caller. */
_printf_(3, 4) static int fail(struct pinlet_error **err, const char *input, const char *fmt, ...)
{
        char in[SHOWN_MAX + 4], reason[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        for (char *p = reason; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        *p = '?';
        return pinlet_error_set(err, -EINVAL, "invalid reference '%s': %s", shown(input, in),
                                reason);
}

/* A part of the input quoted in a message, cut short: "%.*s" with (int)quote_len(n). */
static int quote_len(size_t n)
{
        return n > 64 ? 64 : (int)n;
}

/*
 * domain := host [':' port-number]; host := domain-name | '[' IPv6address ']'.
 * IPv6address is regexp.go's loose `[a-fA-F0-9:]+` (no zone identifiers, no IPv4-mapped
 * dotted forms); port-number is `[0-9]+` with no numeric bound, as in the grammar.
 * Returns NULL when s[0..n) is a valid domain, else why not.
 */
static const char *check_domain(const char *s, size_t n)
{
        size_t i = 0;

        if (n > 0 && s[0] == '[') {
                /* ipv6address := `\[(?:[a-fA-F0-9:]+)\]` */
                for (i = 1; i < n && (is_xdigit(s[i]) || s[i] == ':'); i++)
                        ;
                if (i == 1 || i >= n || s[i] != ']')
                        return "an IPv6 address must be hex digits and ':' in brackets";
                i++;
        } else {
                /* domain-name := domain-component ('.' domain-component)* */
                for (;;) {
                        size_t start = i;

                        /* domain-component: alphanumerics with inner dashes */
                        while (i < n && (is_alnum(s[i]) || s[i] == '-'))
                                i++;
                        if (i == start)
                                return "empty domain component";
                        if (s[start] == '-' || s[i - 1] == '-')
                                return "a domain component must not start or end with '-'";
                        if (i < n && s[i] == '.') {
                                i++;
                                continue;
                        }
                        break;
                }
        }
        if (i == n)
                return NULL;
        if (s[i] != ':')
                return "a domain is host names, IPv4 or [IPv6] with an optional :port";
        /* optionalPort := `(?::[0-9]+)?` */
        i++;
        if (i == n)
                return "empty port";
        for (; i < n; i++)
                if (!is_digit(s[i]))
                        return "the port must be decimal digits";
        return NULL;
}

/*
 * remote-name := path-component ('/' path-component)*
 * path-component := [a-z0-9]+ ((?:[._]|__|[-]+) [a-z0-9]+)*
 * So: no empty components (no leading, trailing or doubled '/'), separators only between
 * alphanumerics, one '.', one or two '_', any number of '-'; never mixed.
 */
static const char *check_path(const char *s, size_t n)
{
        size_t i = 0;

        if (n == 0)
                return "empty repository name";
        for (;;) {
                /* alpha-numeric first */
                if (i == n || s[i] == '/')
                        return i == n ? "the repository name ends with '/'"
                                      : "empty path component (leading or doubled '/')";
                if (!is_lower_alnum(s[i]))
                        return is_upper(s[i]) ? "repository name must be lowercase"
                                              : "a path component must start with a lowercase "
                                                "letter or digit";
                while (i < n && is_lower_alnum(s[i]))
                        i++;
                if (i == n)
                        return NULL;
                if (s[i] == '/') {
                        i++;
                        continue;
                }
                /* separator := [._] | __ | [-]+ */
                if (s[i] == '.')
                        i++;
                else if (s[i] == '_')
                        i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
                else if (s[i] == '-')
                        while (i < n && s[i] == '-')
                                i++;
                else
                        return is_upper(s[i]) ? "repository name must be lowercase"
                                              : "invalid character in repository name (allowed: "
                                                "a-z 0-9 . _ __ - /)";
                /* ... and an alpha-numeric after every separator */
                if (i == n || !is_lower_alnum(s[i]))
                        return (i < n && is_upper(s[i]))
                                       ? "repository name must be lowercase"
                                       : "a separator ('.', '_', '__', '-') must sit between "
                                         "lowercase letters or digits";
        }
}

/* tag := [\w][\w.-]{0,127} */
static const char *check_tag(const char *s, size_t n)
{
        if (n == 0)
                return "empty tag after ':'";
        if (n > PINLET_REF_TAG_MAX)
                return "tag longer than 128 characters";
        if (!is_word(s[0]))
                return "a tag must start with a letter, digit or '_'";
        for (size_t i = 1; i < n; i++)
                if (!is_word(s[i]) && s[i] != '.' && s[i] != '-')
                        return "invalid character in tag (allowed: A-Z a-z 0-9 _ . -)";
        return NULL;
}

/*
 * digest := algorithm ':' hex (regexp.go digestPat), then go-digest's Validate: the
 * algorithm must be registered and the hex lowercase and exactly the hash's size * 2.
 */
static const char *check_digest(const char *s, size_t n)
{
        const char *colon = memchr(s, ':', n);
        size_t alen, hlen, i;
        const char *hex;

        if (n == 0)
                return "empty digest after '@'";
        if (!colon)
                return "a digest is algorithm:hex";
        alen = (size_t)(colon - s);
        hex = colon + 1;
        hlen = n - alen - 1;

        /* algorithm := [A-Za-z][A-Za-z0-9]* ([-_+.] [A-Za-z][A-Za-z0-9]*)* */
        for (i = 0;;) {
                if (i == alen || !is_alpha(s[i]))
                        return "invalid digest algorithm";
                while (i < alen && is_alnum(s[i]))
                        i++;
                if (i == alen)
                        break;
                if (s[i] != '-' && s[i] != '_' && s[i] != '+' && s[i] != '.')
                        return "invalid digest algorithm";
                i++;
        }
        /* hex := [0-9a-fA-F]{32,} */
        for (i = 0; i < hlen; i++)
                if (!is_xdigit(s[alen + 1 + i]))
                        return "a digest's value must be hex digits";
        if (hlen < 32)
                return "a digest's value must have at least 32 hex digits";

        for (i = 0; i < ELEMENTSOF(digest_algorithms); i++) {
                const struct digest_algorithm *a = &digest_algorithms[i];

                if (!span_eq(s, alen, a->name))
                        continue;
                if (hlen != a->hex_len)
                        return a->wrong_length;
                for (size_t j = 0; j < hlen; j++)
                        if (!is_lower_xdigit(hex[j]))
                                return "a digest's hex must be lowercase";
                return NULL;
        }
        return "unsupported digest algorithm (accepted: sha256, sha384, sha512)";
}

bool pinlet_ref_digest_valid(const char *digest)
{
        return digest && check_digest(digest, strlen(digest)) == NULL;
}

/* identifier := [a-f0-9]{64}, alone or as "sha256:<identifier>" (an image's config digest,
 * which is what kubelet and containerd call the image ID). */
bool pinlet_ref_is_image_id(const char *s)
{
        size_t n;

        if (!s)
                return false;
        if (strncmp(s, "sha256:", 7) == 0)
                s += 7;
        n = strlen(s);
        if (n != 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_lower_xdigit(s[i]))
                        return false;
        return true;
}

void pinlet_ref_free(struct pinlet_ref *r)
{
        if (!r)
                return;
        free(r->domain);
        free(r->path);
        free(r->tag);
        free(r->digest);
        free(r);
}

/* splitDockerDomain's test of the first '/'-separated element (n bytes at s). */
static bool names_domain(const char *s, size_t n)
{
        return span_eq(s, n, LOCALHOST) || has_char(s, n, '.') || has_char(s, n, ':') ||
               has_upper(s, n);
}

int pinlet_ref_parse(const char *s, struct pinlet_ref **ret, struct pinlet_error **err)
{
        _cleanup_ref_ struct pinlet_ref *r = NULL;
        const char *domain, *rest, *slash, *at, *colon, *problem;
        size_t n, domain_len, rest_len, name_len, path_len;
        bool library;

        if (!s)
                return pinlet_error_set(err, -EINVAL, "invalid reference: NULL");
        n = strlen(s);
        if (n == 0)
                return pinlet_error_set(err, -EINVAL, "invalid reference '': empty");

        /* ParseNormalizedNamed: "cannot specify 64-byte hexadecimal strings"; pinlet also
         * refuses "sha256:<64 hex>" (see the top of this file). */
        if (pinlet_ref_is_image_id(s))
                return fail(err, s, "is an image ID, not a reference");

        /*
         * splitDockerDomain: without a '/' the whole input is a Docker Hub name. With one,
         * the first element is the domain when it is "localhost", contains '.' or ':', or
         * contains an uppercase letter (Docker Hub namespaces are lowercase, so such an
         * element can only be a registry host); otherwise the domain is docker.io.
         */
        slash = memchr(s, '/', n);
        if (slash && names_domain(s, (size_t)(slash - s))) {
                domain = s;
                domain_len = (size_t)(slash - s);
                rest = slash + 1;
        } else {
                domain = DEFAULT_DOMAIN;
                domain_len = strlen(DEFAULT_DOMAIN);
                rest = s;
        }
        rest_len = n - (size_t)(rest - s);
        /* "index.docker.io" is Docker Hub's legacy name: fold it (only this exact spelling;
         * "registry-1.docker.io" or "INDEX.docker.io" stay what they are). */
        if (span_eq(domain, domain_len, LEGACY_DEFAULT_DOMAIN)) {
                domain = DEFAULT_DOMAIN;
                domain_len = strlen(DEFAULT_DOMAIN);
        }
        /* Single-component Docker Hub names live under "library/". */
        library = span_eq(domain, domain_len, DEFAULT_DOMAIN) && !has_char(rest, rest_len, '/');

        /* ParseNormalizedNamed checks case before the grammar, on everything up to the first
         * ':' of the remainder, so that "Nginx" says "must be lowercase" rather than only
         * "invalid reference format". */
        colon = memchr(rest, ':', rest_len);
        if (has_upper(rest, colon ? (size_t)(colon - rest) : rest_len))
                return fail(err, s, "repository name must be lowercase");

        problem = check_domain(domain, domain_len);
        if (problem)
                return fail(err, s, "registry host '%.*s': %s", quote_len(domain_len), domain,
                            problem);

        /* reference := name [":" tag] ["@" digest]: neither a path nor a tag may hold '@',
         * and a path holds no ':', so the first '@' starts the digest and the first ':'
         * before it starts the tag. */
        at = memchr(rest, '@', rest_len);
        path_len = at ? (size_t)(at - rest) : rest_len;
        colon = memchr(rest, ':', path_len);
        if (colon)
                path_len = (size_t)(colon - rest);

        problem = check_path(rest, path_len);
        if (problem)
                return fail(err, s, "%s", problem);

        if (colon) {
                const char *tag = colon + 1;
                size_t tag_len = (at ? (size_t)(at - tag) : rest_len - (size_t)(tag - rest));

                problem = check_tag(tag, tag_len);
                if (problem)
                        return fail(err, s, "%s", problem);
        }
        if (at) {
                problem = check_digest(at + 1, rest_len - (size_t)(at + 1 - rest));
                if (problem)
                        return fail(err, s, "%s", problem);
        }

        /* NameTotalLengthMax: the whole normalized name, domain and "library/" included. */
        name_len = domain_len + 1 + (library ? strlen(OFFICIAL_REPO_PREFIX) : 0) + path_len;
        if (name_len > PINLET_REF_NAME_MAX)
                return fail(err, s, "repository name longer than %d characters (%zu)",
                            PINLET_REF_NAME_MAX, name_len);

        r = calloc(1, sizeof(*r));
        if (!r)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        r->domain = strndup(domain, domain_len);
        r->path = strndup(rest, path_len);
        if (r->path && library) {
                _cleanup_free_ char *bare = TAKE_PTR(r->path);

                r->path = pinlet_strjoin(OFFICIAL_REPO_PREFIX, bare);
        }
        if (colon)
                r->tag = strndup(colon + 1, (size_t)((at ? at : rest + rest_len) - colon - 1));
        else if (!at) {
                /* TagNameOnly: a bare name means ":latest". */
                r->tag = strdup(DEFAULT_TAG);
                r->tag_defaulted = true;
        }
        if (at)
                r->digest = strdup(at + 1);
        if (!r->domain || !r->path || ((colon || !at) && !r->tag) || (at && !r->digest))
                return pinlet_error_set(err, -ENOMEM, "out of memory");

        *ret = TAKE_PTR(r);
        return 0;
}

char *pinlet_ref_name(const struct pinlet_ref *r)
{
        return pinlet_strjoin(r->domain, "/", r->path);
}

char *pinlet_ref_key(const struct pinlet_ref *r)
{
        char *key = pinlet_ref_string(r);
        size_t n = strlen(r->domain);

        /* pinlet_ref_string() starts with the domain; ASCII lower case as below. A first
         * element is a domain because of its '.', its ':', "localhost", or an upper-case
         * letter: a single-label host that is one only by its capitals ("MyReg/app:1")
         * keeps them, or the key would parse as docker.io/myreg/app:1 (a lock file
         * written with the key must read back as the same reference). So does a host that
         * lower-cased is Docker Hub's name: "Docker.io/nx" is a registry called Docker.io,
         * "docker.io/nx" is Docker Hub's library/nx (distribution compares exactly). */
        if (key && strncmp(key, r->domain, n) == 0 &&
            (memchr(r->domain, '.', n) || memchr(r->domain, ':', n) ||
             strcasecmp(r->domain, LOCALHOST) == 0) &&
            strcasecmp(r->domain, DEFAULT_DOMAIN) != 0 &&
            strcasecmp(r->domain, LEGACY_DEFAULT_DOMAIN) != 0)
                for (size_t i = 0; i < n; i++)
                        if (is_upper(key[i]))
                                key[i] = (char)(key[i] - 'A' + 'a');
        return key;
}

char *pinlet_ref_host_key(const struct pinlet_ref *r)
{
        char *key = strdup(r->domain);

        if (!key)
                return NULL;
        /* ASCII only, whatever the locale: a domain is letters, digits, '-', '.', ':' and
         * IPv6 brackets by grammar (check_domain), and tolower(3) under a Turkish locale
         * would map 'I' to something else than 'i'. */
        for (char *c = key; *c; c++)
                if (is_upper(*c))
                        *c = (char)(*c - 'A' + 'a');
        return key;
}

/* prefix + [":" tag] + ["@" digest]; prefix is the name in whichever form. */
static char *with_suffix(const char *prefix, const char *tag, const char *digest)
{
        return pinlet_strjoin(prefix, tag ? ":" : "", strempty(tag), digest ? "@" : "",
                              strempty(digest));
}

char *pinlet_ref_string(const struct pinlet_ref *r)
{
        _cleanup_free_ char *name = pinlet_ref_name(r);

        return name ? with_suffix(name, r->tag, r->digest) : NULL;
}

/* Would this first path element be read back as a registry host (splitDockerDomain)? A
 * path component holds no ':' and no uppercase, so '.' and "localhost" are what is left. */
static bool looks_like_domain(const char *path)
{
        const char *slash = strchr(path, '/');
        size_t n = slash ? (size_t)(slash - path) : strlen(path);

        return slash && (has_char(path, n, '.') || span_eq(path, n, LOCALHOST));
}

char *pinlet_ref_familiar(const struct pinlet_ref *r)
{
        _cleanup_free_ char *full = NULL;
        const char *name;

        if (!streq_ptr(r->domain, DEFAULT_DOMAIN) || looks_like_domain(r->path)) {
                /* Another registry, or a Docker Hub path whose first element would be taken
                 * for a host ("docker.io/foo.bar/app"): the short form would name another
                 * repository, so the domain stays. */
                full = pinlet_ref_name(r);
                return full ? with_suffix(full, r->tag, r->digest) : NULL;
        }
        name = r->path;
        /* familiarizeName: "library/x" becomes "x", but not "library/x/y" (that would read
         * back as docker.io/x/y) and not when "x[:tag]" alone would be an image ID
         * ("library/sha256:<64 hex>"). */
        if (strncmp(name, OFFICIAL_REPO_PREFIX, strlen(OFFICIAL_REPO_PREFIX)) == 0 &&
            !strchr(name + strlen(OFFICIAL_REPO_PREFIX), '/')) {
                _cleanup_free_ char *shortened =
                        with_suffix(name + strlen(OFFICIAL_REPO_PREFIX), r->tag, r->digest);

                if (!shortened)
                        return NULL;
                if (!pinlet_ref_is_image_id(shortened))
                        return TAKE_PTR(shortened);
        }
        return with_suffix(name, r->tag, r->digest);
}

char *pinlet_ref_with_digest(const struct pinlet_ref *r, const char *digest)
{
        _cleanup_free_ char *name = NULL;

        if (!digest)
                digest = r->digest;
        if (!pinlet_ref_digest_valid(digest)) {
                errno = EINVAL;
                return NULL;
        }
        name = pinlet_ref_name(r);
        return name ? with_suffix(name, NULL, digest) : NULL;
}

char *pinlet_ref_short_name(const char *s)
{
        const char *slash = strchr(s, '/');

        if (slash && names_domain(s, (size_t)(slash - s)))
                return NULL;
        /* no domain: the first ':' starts the tag, the first '@' the digest */
        return strndup(s, strcspn(s, ":@"));
}

int pinlet_ref_requalify(struct pinlet_ref *r, const char *name, struct pinlet_error **err)
{
        _cleanup_ref_ struct pinlet_ref *q = NULL;
        _cleanup_free_ char *short_name = NULL;
        int k;

        k = pinlet_ref_parse(name, &q, err);
        if (k < 0)
                return k;
        if (!q->tag_defaulted || q->digest)
                return pinlet_error_set(err, -EINVAL, "'%s' is not a repository: it carries a %s",
                                        name, q->digest ? "digest" : "tag");
        short_name = pinlet_ref_short_name(name);
        if (short_name)
                return pinlet_error_set(err, -EINVAL, "'%s' names no registry", name);
        free(r->domain);
        free(r->path);
        r->domain = TAKE_PTR(q->domain);
        r->path = TAKE_PTR(q->path);
        return 0;
}
