/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Credentials, redirects and digests, against two scripted HTTP servers on 127.0.0.1 (plain HTTP:
 * the registry is marked insecure). "reg" is the registry, "other" a host it redirects to.
 * Each server answers from a table of (method, path) -> raw response and logs every
 * request it got, headers and body, so a test can check what reached which host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "registry/registry.h"

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct route {
        const char *method, *path; /* path without the query */
        char response[1024];
        const char *big; /* when set, served instead of response */
};

struct server {
        int fd, port;
        pthread_t thread;
        volatile int stop;
        struct route routes[4];
        char *big;
        size_t n_routes;
        pthread_mutex_t lock;
        char log[64 * 1024];
        size_t log_len;
};

static void log_append(struct server *s, const char *p, size_t n)
{
        pthread_mutex_lock(&s->lock);
        if (n > sizeof(s->log) - 1 - s->log_len)
                n = sizeof(s->log) - 1 - s->log_len;
        memcpy(s->log + s->log_len, p, n);
        s->log_len += n;
        s->log[s->log_len] = 0;
        pthread_mutex_unlock(&s->lock);
}

static void serve_one(struct server *s, int c)
{
        char req[16384];
        size_t len = 0;
        char *end = NULL, *cl;
        size_t want;
        const char *answer = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n";

        while (!end && len < sizeof(req) - 1) {
                ssize_t k = read(c, req + len, sizeof(req) - 1 - len);

                if (k <= 0)
                        return;
                len += (size_t)k;
                req[len] = 0;
                end = strstr(req, "\r\n\r\n");
        }
        if (!end)
                return;
        cl = strcasestr(req, "\r\nContent-Length:");
        want = (size_t)(end + 4 - req) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
        while (len < want && len < sizeof(req) - 1) {
                ssize_t k = read(c, req + len, sizeof(req) - 1 - len);

                if (k <= 0)
                        break;
                len += (size_t)k;
                req[len] = 0;
        }
        log_append(s, req, len);
        log_append(s, "\n----\n", 6);
        for (size_t i = 0; i < s->n_routes; i++) {
                size_t ml = strlen(s->routes[i].method), pl = strlen(s->routes[i].path);

                if (strncmp(req, s->routes[i].method, ml) == 0 && req[ml] == ' ' &&
                    strncmp(req + ml + 1, s->routes[i].path, pl) == 0 &&
                    (req[ml + 1 + pl] == ' ' || req[ml + 1 + pl] == '?')) {
                        answer = s->routes[i].big ? s->routes[i].big : s->routes[i].response;
                        break;
                }
        }
        (void)!write(c, answer, strlen(answer));
}

static void *server_main(void *userdata)
{
        struct server *s = userdata;

        while (!s->stop) {
                struct pollfd p = { .fd = s->fd, .events = POLLIN };
                int c;

                if (poll(&p, 1, 50) <= 0)
                        continue;
                c = accept(s->fd, NULL, NULL);
                if (c < 0)
                        continue;
                serve_one(s, c);
                close(c);
        }
        return NULL;
}

static void server_start(struct server *s)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof(a);

        memset(s, 0, sizeof(*s));
        pthread_mutex_init(&s->lock, NULL);
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->fd >= 0);
        assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(s->fd, 16), 0);
        assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
        s->port = ntohs(a.sin_port);
}

static void server_run(struct server *s)
{
        assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
        s->stop = 1;
        pthread_join(s->thread, NULL);
        close(s->fd);
        pthread_mutex_destroy(&s->lock);
}

static void route(struct server *s, const char *method, const char *path, const char *fmt, ...)
{
        struct route *r = &s->routes[s->n_routes++];
        va_list ap;

        r->method = method;
        r->path = path;
        va_start(ap, fmt);
        vsnprintf(r->response, sizeof(r->response), fmt, ap);
        va_end(ap);
}

struct fixture {
        struct server reg, other;
        struct pinlet_registry_host rh;
        char host[64], entry[64];
        struct pinlet_registry *r;
};

/* The registry is reached as domain:port ("127.0.0.1" unless a test needs a name); its
 * options entry is spelled entry_domain:port (NULL: the same). */
static void fixture_start_as(struct fixture *f, const char *domain, const char *entry_domain)
{
        struct pinlet_error *err = NULL;

        server_start(&f->reg);
        server_start(&f->other);
        snprintf(f->host, sizeof(f->host), "%s:%d", domain, f->reg.port);
        snprintf(f->entry, sizeof(f->entry), "%s:%d", entry_domain ? entry_domain : domain,
                 f->reg.port);
        f->rh = (struct pinlet_registry_host){ .host = f->entry, .insecure = true };
        /* no docker_config_paths: never read the machine's files */
        assert_int_equal(
                pinlet_registry_new(
                        &(const struct pinlet_registry_options){ .hosts = &f->rh, .n_hosts = 1 },
                        &f->r, &err),
                0);
}

static void fixture_start(struct fixture *f)
{
        fixture_start_as(f, "127.0.0.1", NULL);
}

static void fixture_stop(struct fixture *f)
{
        server_stop(&f->reg);
        server_stop(&f->other);
        pinlet_registry_free(f->r);
}

static int resolve(struct fixture *f, const struct pinlet_registry_auth *auth,
                   struct pinlet_error **err)
{
        struct pinlet_ref ref = { .domain = f->host, .path = "tiny/app", .tag = "v1" };
        struct pinlet_resolution res = { 0 };
        int r;

        r = pinlet_registry_resolve(f->r, &ref, auth, pinlet_now_ms() + 10000, &res, err);
        pinlet_resolution_done(&res);
        return r;
}

/* The OAuth2 refresh-token POST carries the identity token in its body: a redirect of
 * the token request to another host must not take the body along. */
static void test_token_post_not_redirected_elsewhere(void **state)
{
        struct fixture f;
        struct pinlet_registry_auth auth = { .identity_token = "SECRET-REFRESH-TOKEN" };
        struct pinlet_error *err = NULL;
        int r;

        fixture_start(&f);
        route(&f.reg, "HEAD", "/v2/tiny/app/manifests/v1",
              "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer "
              "realm=\"http://127.0.0.1:%d/token\",service=\"reg\"\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n",
              f.reg.port);
        route(&f.reg, "POST", "/token",
              "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:%d/token\r\n"
              "Content-Length: 0\r\nConnection: close\r\n\r\n",
              f.other.port);
        route(&f.other, "POST", "/token",
              "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n"
              "Connection: close\r\n\r\n{\"token\":\"tok\"}");
        server_run(&f.reg);
        server_run(&f.other);

        r = resolve(&f, &auth, &err);
        fixture_stop(&f);
        assert_non_null(strstr(f.reg.log, "SECRET-REFRESH-TOKEN")); /* its own realm got it */
        assert_null(strstr(f.other.log, "SECRET"));
        assert_int_equal(r, PINLET_EPROTO);
        assert_null(strstr(err->message, "SECRET"));
        pinlet_error_free(err);
}

/* A registry that redirects the manifest request to another host: a challenge from
 * there is not answered, else the credentials would go to that host or a realm it
 * names. */
static void test_challenge_after_redirect_not_answered(void **state)
{
        struct fixture f;
        struct pinlet_registry_auth auth = { .username = "alice", .password = "SECRET-PASSWORD" };
        struct pinlet_error *err = NULL;
        int r;

        fixture_start(&f);
        route(&f.reg, "HEAD", "/v2/tiny/app/manifests/v1",
              "HTTP/1.1 307 Temporary Redirect\r\n"
              "Location: http://127.0.0.1:%d/v2/tiny/app/manifests/v1\r\n"
              "Content-Length: 0\r\nConnection: close\r\n\r\n",
              f.other.port);
        route(&f.other, "HEAD", "/v2/tiny/app/manifests/v1",
              "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer "
              "realm=\"http://127.0.0.1:%d/token\",service=\"x\"\r\nWWW-Authenticate: Basic "
              "realm=\"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
              f.other.port);
        route(&f.other, "GET", "/token",
              "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n"
              "Connection: close\r\n\r\n{\"token\":\"tok\"}");
        server_run(&f.reg);
        server_run(&f.other);

        r = resolve(&f, &auth, &err);
        fixture_stop(&f);
        assert_int_equal(r, PINLET_EUNAUTH);
        assert_null(strstr(err->message, "SECRET"));
        pinlet_error_free(err);
        assert_null(strstr(f.other.log, "Authorization"));
        assert_null(strstr(f.reg.log, "Authorization"));
}

/* The control: the fixture resolves when nothing is refused. */
static void test_plain_resolve_still_works(void **state)
{
        struct fixture f;
        struct pinlet_registry_auth auth = { .username = "alice", .password = "pw" };
        struct pinlet_error *err = NULL;

        fixture_start(&f);
        route(&f.reg, "HEAD", "/v2/tiny/app/manifests/v1",
              "HTTP/1.1 200 OK\r\nDocker-Content-Digest: " DIGEST "\r\n"
              "Content-Length: 0\r\nConnection: close\r\n\r\n");
        server_run(&f.reg);
        server_run(&f.other);
        assert_int_equal(resolve(&f, &auth, &err), 0);
        fixture_stop(&f);
        assert_null(err);
}

/* A Docker-Content-Digest that the reference grammar takes but no runtime does (upper
 * case, 32 digits, an unknown algorithm) is not put into a request. */
static void test_head_digest_checked(void **state)
{
        static const char *const bad[] = {
                "sha256:0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
                "sha256:0123456789abcdef0123456789abcdef",
                "md5:0123456789abcdef0123456789abcdef",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct fixture f;
                struct pinlet_error *err = NULL;

                fixture_start(&f);
                route(&f.reg, "HEAD", "/v2/tiny/app/manifests/v1",
                      "HTTP/1.1 200 OK\r\nDocker-Content-Digest: %s\r\n"
                      "Content-Length: 0\r\nConnection: close\r\n\r\n",
                      bad[i]);
                server_run(&f.reg);
                server_run(&f.other);
                assert_int_equal(resolve(&f, NULL, &err), PINLET_EPROTO);
                fixture_stop(&f);
                pinlet_error_free(err);
        }
}

/* The header bound holds for header lines that look like a status line too. */
static void test_header_bound(void **state)
{
        struct fixture f;
        struct pinlet_error *err = NULL;
        struct route *rt;
        char *p;

        fixture_start(&f);
        /* a route's response is too short for this one: serve it from a bigger buffer */
        route(&f.reg, "HEAD", "/v2/tiny/app/manifests/v1", "");
        rt = &f.reg.routes[f.reg.n_routes - 1];
        f.reg.big = malloc(200 * 1024);
        assert_non_null(f.reg.big);
        p = f.reg.big +
            sprintf(f.reg.big, "HTTP/1.1 200 OK\r\nDocker-Content-Digest: " DIGEST "\r\n");
        for (int i = 0; i < 2000; i++)                         /* 2000 * 50 bytes > 64 KiB */
                p += sprintf(p, "HTTP/1.1 200: %039d\r\n", i); /* curl wants a colon */
        sprintf(p, "Content-Length: 0\r\nConnection: close\r\n\r\n");
        rt->big = f.reg.big;
        server_run(&f.reg);
        server_run(&f.other);
        assert_int_equal(resolve(&f, NULL, &err), PINLET_EPROTO);
        fixture_stop(&f);
        assert_non_null(strstr(err->message, "headers exceed"));
        pinlet_error_free(err);
        free(f.reg.big);
}

/* Serves one header line of line_len bytes with the HEAD answer. */
static void serve_long_header(struct fixture *f, size_t line_len)
{
        struct route *rt;
        char *p;

        route(&f->reg, "HEAD", "/v2/tiny/app/manifests/v1", "");
        rt = &f->reg.routes[f->reg.n_routes - 1];
        f->reg.big = malloc(line_len + 1024);
        assert_non_null(f->reg.big);
        p = f->reg.big +
            sprintf(f->reg.big, "HTTP/1.1 200 OK\r\nDocker-Content-Digest: " DIGEST "\r\nX-Big: ");
        memset(p, 'a', line_len - 7);
        p += line_len - 7;
        sprintf(p, "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        rt->big = f->reg.big;
}

/* One header line longer than curl's own per-line limit (100 KiB): curl fails the
 * transfer (7.88 says "out of memory"); we report the peer's protocol error, naming the
 * registry. */
static void test_header_line_over_curl_limit(void **state)
{
        struct fixture f;
        struct pinlet_error *err = NULL;

        fixture_start(&f);
        serve_long_header(&f, 150 * 1024);
        server_run(&f.reg);
        server_run(&f.other);
        assert_int_equal(resolve(&f, NULL, &err), PINLET_EPROTO);
        fixture_stop(&f);
        assert_non_null(strstr(err->message, "header line exceeds"));
        assert_non_null(strstr(err->message, f.host));
        assert_null(strstr(err->message, "memory"));
        pinlet_error_free(err);
        free(f.reg.big);
}

/* One line over our cap (64 KiB) but within curl's: our callback's bound. */
static void test_header_line_over_our_cap(void **state)
{
        struct fixture f;
        struct pinlet_error *err = NULL;

        fixture_start(&f);
        serve_long_header(&f, 80 * 1024);
        server_run(&f.reg);
        server_run(&f.other);
        assert_int_equal(resolve(&f, NULL, &err), PINLET_EPROTO);
        fixture_stop(&f);
        assert_non_null(strstr(err->message, "headers exceed 65536 bytes"));
        assert_non_null(strstr(err->message, f.host));
        pinlet_error_free(err);
        free(f.reg.big);
}

/* Headers come from curl: the digest, the media type without parameters, and every
 * WWW-Authenticate header (here the second one is the Basic challenge we answer). */
static void test_headers_read_through_curl(void **state)
{
        struct fixture f;
        struct pinlet_registry_auth auth = { .username = "alice", .password = "pw" };
        struct pinlet_ref ref = { .path = "tiny/app", .tag = "v1" };
        struct pinlet_resolution res = { 0 };
        struct pinlet_error *err = NULL;
        int r;

        fixture_start(&f);
        ref.domain = f.host;
        route(&f.reg, "HEAD", "/v2/tiny/app/manifests/v1",
              "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Foo realm=\"x\"\r\n"
              "www-authenticate:   Basic realm=\"r\"  \r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n");
        server_run(&f.reg);
        server_run(&f.other);
        /* the 401 answer is static: the retry with credentials gets it again */
        r = pinlet_registry_resolve(f.r, &ref, &auth, pinlet_now_ms() + 10000, &res, &err);
        fixture_stop(&f);
        assert_int_equal(r, PINLET_EUNAUTH);
        assert_non_null(strstr(f.reg.log, "Authorization: Basic YWxpY2U6cHc="));
        pinlet_error_free(err);
        err = NULL;

        fixture_start(&f);
        ref.domain = f.host;
        route(&f.reg, "HEAD", "/v2/tiny/app/manifests/v1",
              "HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:%064d\r\n"
              "docker-content-digest:  " DIGEST " \r\n"
              "Content-Type: " PINLET_MT_OCI_INDEX "; charset=utf-8\r\n"
              "Content-Length: 321\r\nConnection: close\r\n\r\n",
              0);
        server_run(&f.reg);
        server_run(&f.other);
        r = pinlet_registry_resolve(f.r, &ref, NULL, pinlet_now_ms() + 10000, &res, &err);
        fixture_stop(&f);
        assert_int_equal(r, 0);
        assert_string_equal(res.digest, DIGEST); /* the last of repeated headers wins */
        assert_string_equal(res.media_type, PINLET_MT_OCI_INDEX);
        assert_int_equal(res.size, 321);
        pinlet_resolution_done(&res);
}

/* A redirect to the registry's own origin spelled in other case keeps the credentials
 * (hosts are case-insensitive), and the options entry spelled in upper case still
 * applies to the lower-case domain (insecure: plain http). */
static void test_redirect_origin_case_insensitive(void **state)
{
        struct fixture f;
        struct pinlet_registry_auth auth = { .username = "alice", .password = "pw" };
        struct pinlet_error *err = NULL;
        int r;

        fixture_start_as(&f, "localhost", "LOCALHOST");
        route(&f.reg, "HEAD", "/v2/tiny/app/manifests/v1",
              "HTTP/1.1 307 Temporary Redirect\r\n"
              "Location: http://LocalHost:%d/v2/tiny/app/manifests/moved\r\n"
              "Content-Length: 0\r\nConnection: close\r\n\r\n",
              f.reg.port);
        route(&f.reg, "HEAD", "/v2/tiny/app/manifests/moved",
              "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\n"
              "Content-Length: 0\r\nConnection: close\r\n\r\n");
        server_run(&f.reg);
        server_run(&f.other);
        r = resolve(&f, &auth, &err);
        fixture_stop(&f);
        /* the challenge after the redirect came from the registry itself: answered, and
         * the answer followed the redirect to the same origin */
        assert_int_equal(r, PINLET_EUNAUTH);
        assert_null(strstr(err->message, "after a redirect"));
        assert_non_null(strstr(f.reg.log, "HEAD /v2/tiny/app/manifests/moved HTTP/1.1\r\n"));
        assert_non_null(strstr(f.reg.log, "Authorization: Basic YWxpY2U6cHc="));
        pinlet_error_free(err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_token_post_not_redirected_elsewhere),
                cmocka_unit_test(test_challenge_after_redirect_not_answered),
                cmocka_unit_test(test_plain_resolve_still_works),
                cmocka_unit_test(test_head_digest_checked),
                cmocka_unit_test(test_header_bound),
                cmocka_unit_test(test_header_line_over_curl_limit),
                cmocka_unit_test(test_header_line_over_our_cap),
                cmocka_unit_test(test_headers_read_through_curl),
                cmocka_unit_test(test_redirect_origin_case_insensitive),
        };

        /* a server thread writing to a connection the client gave up on must not kill
         * the test */
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
