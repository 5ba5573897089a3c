/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A misbehaving registry for the client's tests (libmicrohttpd; the stall mode uses a
 * bare socket). Serves one fixed manifest for /v2/<any>/manifests/<any> and behaves per
 * --mode:
 *   ok          HEAD and GET answer 200 with the right Docker-Content-Digest
 *   head405     HEAD answers 405; GET answers 200 with the digest header
 *   nodigest    HEAD and GET answer 200 without the digest header
 *   lie         HEAD 405; GET answers the manifest with a wrong digest header
 *   baddigest   HEAD answers 200 with a malformed digest header
 *   bigmanifest HEAD 405; GET answers a 5 MiB body
 *   bigheaders  HEAD answers 200 with ~100 KiB of headers
 *   longheader  HEAD answers 200 with one 150 KiB header line (past curl's per-line limit)
 *   redirect    manifests answer 307 to --redirect-to (a URL prefix) + the same path
 *   loop        manifests answer 302 to themselves, forever
 *   status:N    manifests answer status N (with a registry error body)
 *   stall       accepts connections and never answers
 * --require-basic U:P  answers 401 with a Basic challenge unless these credentials come.
 * GET /stats answers "connections=N requests=M authorization=K manifest_digest=D".
 * Binds 127.0.0.1 on a free port and writes it to --port-file; runs until SIGTERM.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <sys/socket.h>

static const char manifest[] =
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":"
        "\"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\",\"size\":2},"
        "\"layers\":[]}";

static struct {
        const char *mode;
        const char *redirect_to;
        const char *basic; /* "user:pass" */
        char digest[80];
        atomic_long connections, requests, authorization;
} srv;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        (void)sig;
        stop = 1;
}

/* extra headers of a reply: false/true for none/many (~100 KiB), or EXTRA_LONG_LINE */
#define EXTRA_LONG_LINE 2

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             size_t len, const char *digest, int big_headers)
{
        struct MHD_Response *r =
                MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result ret;

        MHD_add_response_header(r, "Content-Type", "application/vnd.oci.image.manifest.v1+json");
        if (digest)
                MHD_add_response_header(r, "Docker-Content-Digest", digest);
        if (big_headers == EXTRA_LONG_LINE) {
                char *value = malloc(150 * 1024 + 1);

                if (value) {
                        memset(value, 'x', 150 * 1024);
                        value[150 * 1024] = 0;
                        MHD_add_response_header(r, "X-Long", value);
                        free(value);
                }
        } else if (big_headers) {
                char name[32], value[1001];

                memset(value, 'x', 1000);
                value[1000] = 0;
                for (int i = 0; i < 100; i++) {
                        snprintf(name, sizeof(name), "X-Filler-%d", i);
                        MHD_add_response_header(r, name, value);
                }
        }
        if (status == 401)
                MHD_add_response_header(r, "WWW-Authenticate", "Basic realm=\"fake\"");
        ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *code)
{
        char body[256];

        snprintf(body, sizeof(body), "{\"errors\":[{\"code\":\"%s\",\"message\":\"%s\"}]}", code,
                 status == 404 ? "manifest unknown" : "fake registry error");
        return reply(c, status, body, strlen(body), NULL, false);
}

static bool basic_ok(struct MHD_Connection *c)
{
        char *pass = NULL, *user = MHD_basic_auth_get_username_password(c, &pass);
        char buf[512];
        bool ok;

        snprintf(buf, sizeof(buf), "%s:%s", user ? user : "", pass ? pass : "");
        ok = user && strcmp(buf, srv.basic) == 0;
        if (user)
                MHD_free(user);
        if (pass)
                MHD_free(pass);
        return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
        static int marker;
        bool head = strcmp(method, "HEAD") == 0;
        const char *m = srv.mode;

        /* Answer on the second call only: libmicrohttpd closes the connection after a
         * response queued before the request was fully received, and keep-alive is part
         * of what the tests look at. */
        if (!*con_cls) {
                *con_cls = &marker;
                return MHD_YES;
        }

        if (strcmp(url, "/stats") == 0) {
                char buf[256];

                snprintf(buf, sizeof(buf),
                         "connections=%ld requests=%ld authorization=%ld "
                         "manifest_digest=%s\n",
                         atomic_load(&srv.connections), atomic_load(&srv.requests),
                         atomic_load(&srv.authorization), srv.digest);
                return reply(c, 200, buf, strlen(buf), NULL, false);
        }
        atomic_fetch_add(&srv.requests, 1);
        if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"))
                atomic_fetch_add(&srv.authorization, 1);
        if (srv.basic && !basic_ok(c))
                return reply_error(c, 401, "UNAUTHORIZED");
        if (strncmp(url, "/v2/", 4) != 0 || !strstr(url, "/manifests/"))
                return reply_error(c, 404, "NAME_UNKNOWN");

        if (strcmp(m, "ok") == 0)
                return reply(c, 200, manifest, strlen(manifest), srv.digest, false);
        if (strcmp(m, "head405") == 0 || strcmp(m, "lie") == 0 || strcmp(m, "bigmanifest") == 0) {
                if (head)
                        return reply_error(c, 405, "UNSUPPORTED");
                if (strcmp(m, "head405") == 0)
                        return reply(c, 200, manifest, strlen(manifest), srv.digest, false);
                if (strcmp(m, "lie") == 0)
                        return reply(c, 200, manifest, strlen(manifest),
                                     "sha256:0000000000000000000000000000000000000000000000000000"
                                     "000000000000",
                                     false);
                {
                        size_t n = 5 * 1024 * 1024;
                        char *big = malloc(n);
                        enum MHD_Result ret;

                        memset(big, ' ', n);
                        big[0] = '{';
                        big[n - 1] = '}';
                        ret = reply(c, 200, big, n, NULL, false);
                        free(big);
                        return ret;
                }
        }
        if (strcmp(m, "nodigest") == 0)
                return reply(c, 200, manifest, strlen(manifest), NULL, false);
        if (strcmp(m, "baddigest") == 0)
                return reply(c, 200, manifest, strlen(manifest), "sha256:not-hex", false);
        if (strcmp(m, "bigheaders") == 0)
                return reply(c, 200, manifest, strlen(manifest), srv.digest, true);
        if (strcmp(m, "longheader") == 0)
                return reply(c, 200, manifest, strlen(manifest), srv.digest, EXTRA_LONG_LINE);
        if (strcmp(m, "redirect") == 0 || strcmp(m, "loop") == 0) {
                struct MHD_Response *r =
                        MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
                char loc[1024];
                enum MHD_Result ret;

                snprintf(loc, sizeof(loc), "%s%s", strcmp(m, "loop") == 0 ? "" : srv.redirect_to,
                         url);
                MHD_add_response_header(r, "Location", loc);
                ret = MHD_queue_response(c, strcmp(m, "loop") == 0 ? 302 : 307, r);
                MHD_destroy_response(r);
                return ret;
        }
        if (strncmp(m, "status:", 7) == 0)
                return reply_error(c, (unsigned)atoi(m + 7),
                                   atoi(m + 7) == 404 ? "MANIFEST_UNKNOWN" : "FAKE");
        return reply_error(c, 500, "BAD_MODE");
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
        if (code == MHD_CONNECTION_NOTIFY_STARTED)
                atomic_fetch_add(&srv.connections, 1);
}

static int write_port(const char *path, unsigned port)
{
        FILE *f = fopen(path, "we");

        if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0)
                return -1;
        return 0;
}

/* Accepts and holds connections without ever answering. */
static int stall(const char *port_file)
{
        struct sockaddr_in sa = { .sin_family = AF_INET };
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), held[256], n = 0;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
            write_port(port_file, ntohs(sa.sin_port)) < 0) {
                perror("fake_registry: stall");
                return 1;
        }
        while (!stop) {
                struct pollfd p = { .fd = fd, .events = POLLIN };

                if (poll(&p, 1, 200) > 0) {
                        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

                        if (c >= 0 && n < (int)(sizeof(held) / sizeof(held[0])))
                                held[n++] = c;
                        else if (c >= 0)
                                close(c);
                }
        }
        while (n > 0)
                close(held[--n]);
        close(fd);
        return 0;
}

int main(int argc, char **argv)
{
        const char *port_file = NULL;
        struct sockaddr_in sa = { .sin_family = AF_INET };
        struct sigaction sig = { .sa_handler = on_signal };
        unsigned char md[32];
        unsigned int mdlen = 0;
        const union MHD_DaemonInfo *info;
        struct MHD_Daemon *d;

        srv.mode = "ok";
        for (int i = 1; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--port-file") == 0)
                        port_file = argv[i + 1];
                else if (strcmp(argv[i], "--mode") == 0)
                        srv.mode = argv[i + 1];
                else if (strcmp(argv[i], "--redirect-to") == 0)
                        srv.redirect_to = argv[i + 1];
                else if (strcmp(argv[i], "--require-basic") == 0)
                        srv.basic = argv[i + 1];
                else
                        port_file = NULL, i = argc;
        }
        if (!port_file || (strcmp(srv.mode, "redirect") == 0 && !srv.redirect_to)) {
                fprintf(stderr, "usage: fake_registry --port-file F [--mode MODE] "
                                "[--redirect-to URL] [--require-basic U:P]\n");
                return 2;
        }
        sigaction(SIGTERM, &sig, NULL);
        sigaction(SIGINT, &sig, NULL);
        if (strcmp(srv.mode, "stall") == 0)
                return stall(port_file);

        EVP_Digest(manifest, strlen(manifest), md, &mdlen, EVP_sha256(), NULL);
        strcpy(srv.digest, "sha256:");
        for (unsigned i = 0; i < mdlen; i++)
                sprintf(srv.digest + 7 + 2 * i, "%02x", md[i]);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        d = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                handle, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_CONNECTION,
                on_connection, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                /* room for the bigheaders mode's 100 KiB of headers */
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(1024 * 1024), MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "fake_registry: cannot start\n");
                return 1;
        }
        info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        if (write_port(port_file, info->port) < 0) {
                fprintf(stderr, "fake_registry: cannot write %s\n", port_file);
                return 1;
        }
        while (!stop)
                pause();
        MHD_stop_daemon(d);
        return 0;
}
