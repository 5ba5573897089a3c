/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side: /metrics, /healthz and /readyz on libmicrohttpd's internal polling thread
 * (one thread, epoll, non-blocking sockets), so scrapes never run on, or wait for, the
 * gRPC completion-queue thread.
 *
 * pinlet binds the socket itself and hands it to libmicrohttpd (MHD_OPTION_LISTEN_SOCKET):
 * one code path for "host:port" (any address family getaddrinfo gives) and "unix:/path",
 * and the chosen port is known for port 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "metrics/metrics-internal.h"
#include "util/log.h"

/* A scraper, a prober or two, a human with curl: a few connections are plenty, and the
 * limit keeps a misbehaving client from taking descriptors the CRI proxy needs. */
#define HTTP_CONNECTION_LIMIT 32
#define HTTP_TIMEOUT_S        10 /* an idle or trickling connection is closed */
#define UNIX_SOCKET_MODE      0660

#define CONTENT_TYPE_EXPOSITION "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT       "text/plain; charset=utf-8"

static enum MHD_Result queue_text(struct MHD_Connection *c, unsigned status, const char *type,
                                  char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
        struct MHD_Response *resp;
        enum MHD_Result ret;

        resp = MHD_create_response_from_buffer(len, body, mode);
        if (!resp) {
                if (mode == MHD_RESPMEM_MUST_FREE)
                        free(body);
                return MHD_NO; /* MHD closes the connection */
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        /* Health answers and scrapes are about now: no proxy may serve an old one. */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        ret = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result queue_static(struct MHD_Connection *c, unsigned status, const char *text)
{
        return queue_text(c, status, CONTENT_TYPE_TEXT, (char *)text, strlen(text),
                          MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
        struct pinlet_metrics *m = cls;
        char reason[256];
        bool ok;

        /* Every answer is decided by the path and method alone, so it is queued on the
         * first call; a request body (none is expected) is then discarded by MHD. */
        if (strcmp(url, "/metrics") != 0 && strcmp(url, "/healthz") != 0 &&
            strcmp(url, "/readyz") != 0)
                return queue_static(c, MHD_HTTP_NOT_FOUND, "not found\n");
        /* HEAD is answered as GET: MHD sends the headers (Content-Length included) and
         * leaves the body out. */
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
                return queue_static(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");

        if (strcmp(url, "/metrics") == 0) {
                char *text = NULL;
                size_t len = 0;
                int r = pinlet_metrics_format(m, &text, &len);

                if (r < 0) {
                        log_debug("metrics: cannot render the exposition: %s", strerror(-r));
                        return queue_static(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                            "cannot render the metrics\n");
                }
                return queue_text(c, MHD_HTTP_OK, CONTENT_TYPE_EXPOSITION, text, len,
                                  MHD_RESPMEM_MUST_FREE);
        }
        if (strcmp(url, "/healthz") == 0)
                ok = metrics_healthy(m, reason, sizeof(reason));
        else
                ok = metrics_ready(m, reason, sizeof(reason));
        return queue_text(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, CONTENT_TYPE_TEXT,
                          reason, strlen(reason), MHD_RESPMEM_MUST_COPY);
}

/* Library code logs at debug at most (style.md): a client that went away mid-response is
 * no news for the operator. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
        char line[512];

        if (!pinlet_log_enabled(PINLET_LOG_DEBUG))
                return;
        vsnprintf(line, sizeof(line), fmt, ap);
        line[strcspn(line, "\n")] = '\0';
        log_debug("metrics http: %s", line);
}

static int listen_unix(struct pinlet_metrics *m, const char *path, struct pinlet_error **err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (!*path || strlen(path) >= sizeof(sa.sun_path))
                return pinlet_error_set(err, -EINVAL, "metrics.listen unix:%s: path %s", path,
                                        *path ? "too long" : "empty");
        memcpy(sa.sun_path, path, strlen(path));
        /* A socket left by an earlier run is replaced; anything else is not ours to
         * remove. */
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return pinlet_error_set(err, -EEXIST,
                                                "metrics.listen unix:%s: exists and is not a "
                                                "socket",
                                                path);
                if (unlink(path) < 0)
                        return pinlet_error_set(err, -errno, "metrics.listen unix:%s: %s", path,
                                                strerror(errno));
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return pinlet_error_set(err, -errno, "metrics.listen: socket: %s", strerror(errno));
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
                return pinlet_error_set(err, -errno, "metrics.listen unix:%s: %s", path,
                                        strerror(errno));
        m->unix_path = strdup(path);
        if (!m->unix_path || asprintf(&m->address, "unix:%s", path) < 0) {
                unlink(path);
                return pinlet_error_set(err, -ENOMEM, "metrics: out of memory");
        }
        if (chmod(path, UNIX_SOCKET_MODE) < 0)
                return pinlet_error_set(err, -errno, "metrics.listen unix:%s: chmod: %s", path,
                                        strerror(errno));
        return TAKE_FD(fd);
}

/* "host:port" or "[v6]:port" -> host and port (pointers into buf). */
static int split_host_port(char *buf, char **ret_host, char **ret_port)
{
        char *colon;

        if (buf[0] == '[') {
                char *end = strchr(buf, ']');

                if (!end || end[1] != ':')
                        return -EINVAL;
                *end = '\0';
                *ret_host = buf + 1;
                *ret_port = end + 2;
        } else {
                colon = strrchr(buf, ':');
                if (!colon || strchr(buf, ':') != colon)
                        return -EINVAL; /* no port, or an IPv6 address without brackets */
                *colon = '\0';
                *ret_host = buf;
                *ret_port = colon + 1;
        }
        if (!**ret_host || !**ret_port || strspn(*ret_port, "0123456789") != strlen(*ret_port) ||
            strlen(*ret_port) > 5 || atoi(*ret_port) > 65535)
                return -EINVAL;
        return 0;
}

/* The addresses "host:port" / "[v6]:port" stands for (caller frees *ret). */
static int resolve_tcp(const char *listen_addr, struct addrinfo **ret, struct pinlet_error **err)
{
        const struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_NUMERICSERV | AI_PASSIVE | AI_ADDRCONFIG,
        };
        _cleanup_free_ char *buf = strdup(listen_addr);
        char *host, *port;
        int r;

        if (!buf)
                return pinlet_error_set(err, -ENOMEM, "metrics: out of memory");
        if (split_host_port(buf, &host, &port) < 0)
                return pinlet_error_set(err, -EINVAL,
                                        "metrics.listen '%s': want HOST:PORT, [IPV6]:PORT or "
                                        "unix:/PATH",
                                        listen_addr);
        r = getaddrinfo(host, port, &hints, ret);
        if (r != 0)
                return pinlet_error_set(err, -EINVAL, "metrics.listen '%s': %s", listen_addr,
                                        gai_strerror(r));
        return 0;
}

static int listen_tcp(struct pinlet_metrics *m, const char *listen_addr, struct pinlet_error **err)
{
        struct addrinfo *res = NULL;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char ip[INET6_ADDRSTRLEN];
        int fd = -1, r, saved = 0;

        r = resolve_tcp(listen_addr, &res, err);
        if (r < 0)
                return r;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                const int one = 1;

                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                            ai->ai_protocol);
                if (fd < 0) {
                        saved = errno;
                        continue;
                }
                /* A restarted daemon rebinds at once despite connections in TIME_WAIT. */
                (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
                        break;
                saved = errno;
                close(fd);
                fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0)
                return pinlet_error_set(err, -(saved ? saved : EADDRNOTAVAIL),
                                        "metrics.listen '%s': %s", listen_addr,
                                        strerror(saved ? saved : EADDRNOTAVAIL));

        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
                saved = errno;
                close(fd);
                return pinlet_error_set(err, -saved, "metrics.listen: getsockname: %s",
                                        strerror(saved));
        }
        if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

                inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
                m->port = ntohs(s6->sin6_port);
                r = asprintf(&m->address, "[%s]:%u", ip, m->port);
        } else {
                struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

                inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
                m->port = ntohs(s4->sin_port);
                r = asprintf(&m->address, "%s:%u", ip, m->port);
        }
        if (r < 0) {
                m->address = NULL;
                close(fd);
                return pinlet_error_set(err, -ENOMEM, "metrics: out of memory");
        }
        return fd;
}

int pinlet_metrics_check_listen(const char *listen_addr, struct pinlet_error **err)
{
        struct sockaddr_un sa;
        struct addrinfo *res = NULL;
        int r;

        if (!listen_addr || !*listen_addr)
                return 0;
        if (strncmp(listen_addr, "unix:", 5) == 0) {
                const char *path = listen_addr + 5;

                if (path[0] != '/' || strlen(path) >= sizeof(sa.sun_path))
                        return pinlet_error_set(err, -EINVAL,
                                                "metrics.listen '%s': want an absolute socket "
                                                "path of at most %zu bytes",
                                                listen_addr, sizeof(sa.sun_path) - 1);
                return 0;
        }
        r = resolve_tcp(listen_addr, &res, err);
        if (res)
                freeaddrinfo(res);
        return r;
}

int metrics_http_start(struct pinlet_metrics *m, const char *listen_addr, struct pinlet_error **err)
{
        int fd;

        if (strncmp(listen_addr, "unix:", 5) == 0)
                fd = listen_unix(m, listen_addr + 5, err);
        else
                fd = listen_tcp(m, listen_addr, err);
        if (fd < 0)
                return fd;

        /* MHD_USE_AUTO: epoll on Linux. The daemon owns fd from here (closed at stop). */
        m->daemon =
                MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG,
                                 0, NULL, NULL, handle, m, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_END);
        if (!m->daemon) {
                close(fd);
                return pinlet_error_set(err, -EIO,
                                        "metrics.listen %s: cannot start the HTTP "
                                        "server (libmicrohttpd)",
                                        m->address);
        }
        return 0;
}

void metrics_http_stop(struct pinlet_metrics *m)
{
        if (m->daemon) {
                /* Joins the polling thread and closes the listening socket. */
                MHD_stop_daemon(m->daemon);
                m->daemon = NULL;
        }
        if (m->unix_path) {
                unlink(m->unix_path);
                free(m->unix_path);
                m->unix_path = NULL;
        }
        free(m->address);
        m->address = NULL;
}
