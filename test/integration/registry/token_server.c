/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only token server for docker-registry's `auth: token` (distribution's token
 * authentication spec), on libmicrohttpd:
 *
 *   GET  /token?service=S&scope=repository:NAME:pull[&scope=...]   optional Basic auth
 *   POST /token  grant_type=refresh_token&refresh_token=T | grant_type=password&username=
 *                U&password=P, plus service, scope, client_id
 *   GET  /count  number of /token requests so far (plain text)
 *
 * Tokens are RS256 JWTs whose header carries the signing certificate (x5c), which the
 * registry chains to its rootcertbundle. Pull access is granted on every requested
 * repository to an authenticated caller, and on the --public repository to anyone.
 * Wrong credentials get 401; no credentials get a token without access for private
 * repositories (the registry then answers 401 insufficient_scope), as real servers do.
 *
 * Usage: token_server --port-file F --key K --cert C --issuer I --service S
 *          [--user U:P]... [--refresh-token T]... [--public REPO]...
 *          [--tls-cert F --tls-key F] [--expires-in SECONDS]
 * Binds 127.0.0.1 on a free port, writes the port to F, serves until SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#define MAX_LIST 16

static struct {
        EVP_PKEY *key;
        char *x5c; /* base64 DER of the signing cert */
        const char *issuer, *service;
        const char *users[MAX_LIST];
        int n_users;
        const char *refresh[MAX_LIST];
        int n_refresh;
        const char *public_repos[MAX_LIST];
        int n_public;
        long expires_in;
        atomic_long count;
} srv = { .expires_in = 300 };

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        (void)sig;
        stop = 1;
}

static char *read_file(const char *path)
{
        FILE *f = fopen(path, "re");
        char *buf;
        long n;

        if (!f)
                return NULL;
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = calloc(1, (size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
        }
        fclose(f);
        return buf;
}

static char *b64(const unsigned char *p, size_t n, bool url)
{
        char *out = malloc(4 * ((n + 2) / 3) + 1);
        int len;

        if (!out)
                return NULL;
        len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
        if (url) {
                while (len > 0 && out[len - 1] == '=')
                        out[--len] = 0;
                for (int i = 0; i < len; i++)
                        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
        }
        return out;
}

static char *json_b64(json_t *j)
{
        char *s = json_dumps(j, JSON_COMPACT);
        char *r = b64((const unsigned char *)s, strlen(s), true);

        free(s);
        return r;
}

static char *make_jwt(const char *sub, json_t *access)
{
        json_t *hdr = json_pack("{s:s,s:s,s:[s]}", "alg", "RS256", "typ", "JWT", "x5c", srv.x5c);
        unsigned char jti[12], sig[1024];
        char jti_hex[25], *h, *c, *input, *s64, *jwt = NULL;
        size_t siglen = sizeof(sig);
        time_t now = time(NULL);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        json_t *claims;

        RAND_bytes(jti, sizeof(jti));
        for (int i = 0; i < 12; i++)
                sprintf(jti_hex + 2 * i, "%02x", jti[i]);
        claims = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:O}", "iss", srv.issuer, "sub", sub,
                           "aud", srv.service, "exp", (json_int_t)(now + srv.expires_in), "nbf",
                           (json_int_t)(now - 10), "iat", (json_int_t)now, "jti", jti_hex, "access",
                           access);
        h = json_b64(hdr);
        c = json_b64(claims);
        if (asprintf(&input, "%s.%s", h, c) < 0)
                abort();
        if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, srv.key) != 1 ||
            EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, strlen(input)) != 1)
                abort();
        s64 = b64(sig, siglen, true);
        if (asprintf(&jwt, "%s.%s", input, s64) < 0)
                abort();
        EVP_MD_CTX_free(md);
        json_decref(hdr);
        json_decref(claims);
        free(h);
        free(c);
        free(input);
        free(s64);
        return jwt;
}

static bool user_ok(const char *user, const char *pass)
{
        char buf[512];

        snprintf(buf, sizeof(buf), "%s:%s", user ? user : "", pass ? pass : "");
        for (int i = 0; i < srv.n_users; i++)
                if (strcmp(srv.users[i], buf) == 0)
                        return true;
        return false;
}

static bool refresh_ok(const char *t)
{
        for (int i = 0; t && i < srv.n_refresh; i++)
                if (strcmp(srv.refresh[i], t) == 0)
                        return true;
        return false;
}

static bool is_public(const char *repo)
{
        for (int i = 0; i < srv.n_public; i++)
                if (strcmp(srv.public_repos[i], repo) == 0)
                        return true;
        return false;
}

/* Grants the actions of a "repository:NAME:ACTIONS" scope the caller may have: pull and
 * push when authenticated (the tests push through this server too), pull alone on a
 * public repository. */
static void grant(json_t *access, const char *scope, bool authed)
{
        char name[256], actions[64];
        const char *p, *q;
        json_t *granted;

        if (!scope || strncmp(scope, "repository:", 11) != 0)
                return;
        p = scope + 11;
        q = strrchr(p, ':');
        if (!q || (size_t)(q - p) >= sizeof(name) || strlen(q + 1) >= sizeof(actions))
                return;
        memcpy(name, p, (size_t)(q - p));
        name[q - p] = 0;
        strcpy(actions, q + 1);
        granted = json_array();
        for (char *save = NULL, *a = strtok_r(actions, ",", &save); a;
             a = strtok_r(NULL, ",", &save)) {
                if (strcmp(a, "pull") == 0 && (authed || is_public(name)))
                        json_array_append_new(granted, json_string("pull"));
                else if (strcmp(a, "push") == 0 && authed)
                        json_array_append_new(granted, json_string("push"));
        }
        if (json_array_size(granted) > 0)
                json_array_append_new(access, json_pack("{s:s,s:s,s:o}", "type", "repository",
                                                        "name", name, "actions", granted));
        else
                json_decref(granted);
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 const char *body)
{
        struct MHD_Response *r =
                MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result ret;

        MHD_add_response_header(r, "Content-Type", ctype);
        if (status == 401)
                MHD_add_response_header(r, "WWW-Authenticate", "Basic realm=\"token\"");
        ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

struct post_state {
        char body[16384];
        size_t len;
        bool overflow;
};

static enum MHD_Result collect_scope(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
        json_t *scopes = cls;

        if (key && strcmp(key, "scope") == 0 && value)
                json_array_append_new(scopes, json_string(value));
        return MHD_YES;
}

/* Decodes one application/x-www-form-urlencoded value in place. */
static void url_decode(char *s)
{
        char *o = s;

        for (; *s; s++) {
                if (*s == '+') {
                        *o++ = ' ';
                } else if (*s == '%' && s[1] && s[2]) {
                        char hex[3] = { s[1], s[2], 0 };

                        *o++ = (char)strtol(hex, NULL, 16);
                        s += 2;
                } else {
                        *o++ = *s;
                }
        }
        *o = 0;
}

static const char *form_get(json_t *form, const char *k)
{
        return json_string_value(json_object_get(form, k));
}

static json_t *parse_form(char *body, json_t *scopes)
{
        json_t *form = json_object();

        for (char *save = NULL, *kv = strtok_r(body, "&", &save); kv;
             kv = strtok_r(NULL, "&", &save)) {
                char *eq = strchr(kv, '=');

                if (!eq)
                        continue;
                *eq = 0;
                url_decode(kv);
                url_decode(eq + 1);
                if (strcmp(kv, "scope") == 0)
                        json_array_append_new(scopes, json_string(eq + 1));
                else
                        json_object_set_new(form, kv, json_string(eq + 1));
        }
        return form;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
        json_t *scopes, *access, *resp, *form = NULL;
        const char *sub = "anonymous";
        bool authed = false, post = strcmp(method, "POST") == 0;
        char *jwt, *out, *user = NULL, *pass = NULL, ts[32];
        enum MHD_Result ret;
        time_t now;

        /* Every request is answered on a later call than the first: libmicrohttpd closes
         * the connection after a response queued before the request was fully read. */
        if (!*con_cls) {
                *con_cls = calloc(1, sizeof(struct post_state));
                return *con_cls ? MHD_YES : MHD_NO;
        }
        if (post) {
                struct post_state *ps = *con_cls;

                if (*upload_size) {
                        if (ps->len + *upload_size < sizeof(ps->body)) {
                                memcpy(ps->body + ps->len, upload, *upload_size);
                                ps->len += *upload_size;
                        } else {
                                ps->overflow = true;
                        }
                        *upload_size = 0;
                        return MHD_YES;
                }
        }
        if (strcmp(url, "/count") == 0 && !post) {
                char buf[32];

                snprintf(buf, sizeof(buf), "%ld\n", atomic_load(&srv.count));
                return send_text(c, 200, "text/plain", buf);
        }
        if (strcmp(url, "/token") != 0)
                return send_text(c, 404, "text/plain", "not found\n");
        atomic_fetch_add(&srv.count, 1);

        scopes = json_array();
        if (post) {
                struct post_state *ps = *con_cls;
                const char *gt;

                if (ps->overflow) {
                        json_decref(scopes);
                        return send_text(c, 400, "application/json", "{\"error\":\"too big\"}");
                }
                form = parse_form(ps->body, scopes);
                gt = form_get(form, "grant_type");
                if (gt && strcmp(gt, "refresh_token") == 0) {
                        authed = refresh_ok(form_get(form, "refresh_token"));
                        sub = "refresh";
                } else if (gt && strcmp(gt, "password") == 0) {
                        authed = user_ok(form_get(form, "username"), form_get(form, "password"));
                        sub = form_get(form, "username");
                }
                if (!authed || !form_get(form, "client_id")) {
                        json_decref(form);
                        json_decref(scopes);
                        return send_text(c, 401, "application/json",
                                         "{\"error\":\"invalid_grant\"}");
                }
        } else {
                MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_scope, scopes);
                user = MHD_basic_auth_get_username_password(c, &pass);
                if (user) {
                        if (!user_ok(user, pass)) {
                                MHD_free(user);
                                MHD_free(pass);
                                json_decref(scopes);
                                return send_text(c, 401, "application/json",
                                                 "{\"details\":\"bad credentials\"}");
                        }
                        authed = true;
                        sub = user;
                }
        }
        access = json_array();
        for (size_t i = 0; i < json_array_size(scopes); i++)
                grant(access, json_string_value(json_array_get(scopes, i)), authed);
        jwt = make_jwt(sub, access);
        now = time(NULL);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        if (post)
                resp = json_pack("{s:s,s:I,s:s}", "access_token", jwt, "expires_in",
                                 (json_int_t)srv.expires_in, "issued_at", ts);
        else
                resp = json_pack("{s:s,s:s,s:I,s:s}", "token", jwt, "access_token", jwt,
                                 "expires_in", (json_int_t)srv.expires_in, "issued_at", ts);
        out = json_dumps(resp, JSON_COMPACT);
        ret = send_text(c, 200, "application/json", out);
        free(out);
        free(jwt);
        json_decref(resp);
        json_decref(access);
        json_decref(scopes);
        json_decref(form);
        if (user) {
                MHD_free(user);
                MHD_free(pass);
        }
        return ret;
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        free(*con_cls);
        *con_cls = NULL;
}

int main(int argc, char **argv)
{
        const char *port_file = NULL, *key_path = NULL, *cert_path = NULL, *tls_cert = NULL,
                   *tls_key = NULL;
        char *tls_cert_pem = NULL, *tls_key_pem = NULL;
        struct sockaddr_in sa = { .sin_family = AF_INET };
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
        const union MHD_DaemonInfo *info;
        struct MHD_Daemon *d;
        unsigned char *der = NULL;
        struct sigaction sig = { .sa_handler = on_signal };
        X509 *cert;
        FILE *f;
        int n;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

                if (!v)
                        goto usage;
                i++;
                if (strcmp(a, "--port-file") == 0)
                        port_file = v;
                else if (strcmp(a, "--key") == 0)
                        key_path = v;
                else if (strcmp(a, "--cert") == 0)
                        cert_path = v;
                else if (strcmp(a, "--issuer") == 0)
                        srv.issuer = v;
                else if (strcmp(a, "--service") == 0)
                        srv.service = v;
                else if (strcmp(a, "--user") == 0 && srv.n_users < MAX_LIST)
                        srv.users[srv.n_users++] = v;
                else if (strcmp(a, "--refresh-token") == 0 && srv.n_refresh < MAX_LIST)
                        srv.refresh[srv.n_refresh++] = v;
                else if (strcmp(a, "--public") == 0 && srv.n_public < MAX_LIST)
                        srv.public_repos[srv.n_public++] = v;
                else if (strcmp(a, "--tls-cert") == 0)
                        tls_cert = v;
                else if (strcmp(a, "--tls-key") == 0)
                        tls_key = v;
                else if (strcmp(a, "--expires-in") == 0)
                        srv.expires_in = atol(v);
                else
                        goto usage;
        }
        if (!port_file || !key_path || !cert_path || !srv.issuer || !srv.service)
                goto usage;

        f = fopen(key_path, "re");
        srv.key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
        if (f)
                fclose(f);
        f = fopen(cert_path, "re");
        cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        if (f)
                fclose(f);
        if (!srv.key || !cert) {
                fprintf(stderr, "token_server: cannot read key or cert\n");
                return 1;
        }
        n = i2d_X509(cert, &der);
        srv.x5c = b64(der, (size_t)n, false); /* x5c is standard base64, not base64url */
        OPENSSL_free(der);
        X509_free(cert);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (tls_cert) {
                tls_cert_pem = read_file(tls_cert);
                tls_key_pem = read_file(tls_key ? tls_key : "");
                if (!tls_cert_pem || !tls_key_pem) {
                        fprintf(stderr, "token_server: cannot read TLS cert or key\n");
                        return 1;
                }
                flags |= MHD_USE_TLS;
        }
        d = MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                             MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
                             tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, tls_cert_pem,
                             MHD_OPTION_HTTPS_MEM_KEY, tls_key_pem, MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "token_server: cannot start\n");
                return 1;
        }
        info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        f = fopen(port_file, "we");
        if (!f || fprintf(f, "%u\n", (unsigned)info->port) < 0 || fclose(f) != 0) {
                fprintf(stderr, "token_server: cannot write %s\n", port_file);
                return 1;
        }
        sigaction(SIGTERM, &sig, NULL);
        sigaction(SIGINT, &sig, NULL);
        while (!stop)
                pause();
        MHD_stop_daemon(d);
        return 0;
usage:
        fprintf(stderr, "usage: token_server --port-file F --key K --cert C --issuer I --service "
                        "S [--user U:P] [--refresh-token T] [--public REPO] [--tls-cert F "
                        "--tls-key F] [--expires-in S]\n");
        return 2;
}
