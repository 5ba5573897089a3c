/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hostile_tarpit: an HTTP "registry" on 127.0.0.1 that never answers usefully, for the
 * resolver hardening tests (hostile/run.sh). Every connection is accepted and its
 * request read (up to the blank line); then, per --mode:
 *
 *   tarpit  answers a valid-looking 200 (manifest media type, a Docker-Content-Digest)
 *           ONE BYTE PER SECOND, padded so that the whole answer takes --hold seconds
 *           (default 120); the connection stays open until then or until the peer
 *           closes it
 *   close   closes the connection without answering (curl: "Empty reply from server")
 *   reset   closes with SO_LINGER 0, so the kernel sends RST (curl: "Connection reset")
 *   500     answers 500 with a registry error body and closes
 *
 * The counters are written to --state FILE after every change, replaced atomically
 * (write to FILE.tmp, rename), one line:
 *     accepted=N open=N max_open=N requests=N pinlet_requests=N
 * accepted: connections accepted so far; open: connections held now; max_open: the most
 * held at once; requests: complete requests read; pinlet_requests: those whose
 * User-Agent is pinlet's ("pinlet/VERSION"), to tell pinlet's requests from the
 * runtime's when both talk to the same address. A test reads them with awk while the
 * tarpit runs, without a client of its own that would change the counts.
 *
 *   hostile_tarpit --mode MODE --port-file FILE --state FILE [--hold SECONDS] [--port N]
 *
 * Binds 127.0.0.1:PORT (default 0: the kernel picks a free port; a given port lets a test
 * start listening where nothing listened before) and writes the port to --port-file
 * (also atomically, so a reader never sees half a number). Runs until SIGTERM/SIGINT.
 * One thread per connection: a tarpit holds few connections, and a thread that sleeps
 * between bytes is the plainest way to hold each one independently.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define REQUEST_MAX 16384

enum mode { MODE_TARPIT, MODE_CLOSE, MODE_RESET, MODE_500 };

static struct {
        enum mode mode;
        const char *state_path;
        unsigned hold_s;
        pthread_mutex_t lock; /* guards the counters and the state file */
        unsigned long accepted, open, max_open, requests, pinlet_requests;
} srv = { .hold_s = 120, .lock = PTHREAD_MUTEX_INITIALIZER };

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        (void)sig;
        stop = 1;
}

/* Writes text to path through path.tmp and rename(): readers see the old or the new
 * content, never a partial one. */
static int write_atomic(const char *path, const char *text)
{
        char tmp[4096];
        FILE *f;

        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
                return -ENAMETOOLONG;
        f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fputs(text, f);
        if (fclose(f) != 0)
                return -errno;
        return rename(tmp, path) < 0 ? -errno : 0;
}

/* Applies a change to the counters and publishes them; called from any thread. */
static void count(int d_accepted, int d_open, int d_requests, int d_pinlet)
{
        char line[200];

        pthread_mutex_lock(&srv.lock);
        srv.accepted += (unsigned long)d_accepted;
        srv.open = (unsigned long)((long)srv.open + d_open);
        srv.requests += (unsigned long)d_requests;
        srv.pinlet_requests += (unsigned long)d_pinlet;
        if (srv.open > srv.max_open)
                srv.max_open = srv.open;
        snprintf(line, sizeof(line),
                 "accepted=%lu open=%lu max_open=%lu requests=%lu pinlet_requests=%lu\n",
                 srv.accepted, srv.open, srv.max_open, srv.requests, srv.pinlet_requests);
        if (write_atomic(srv.state_path, line) < 0)
                fprintf(stderr, "tarpit: cannot write %s: %m\n", srv.state_path);
        pthread_mutex_unlock(&srv.lock);
}

/* Reads until the end of the request headers (a client that sends a body gets it
 * ignored: registries are asked with HEAD and GET). Returns true on a complete request;
 * *ret_pinlet tells whether pinlet sent it. */
static bool read_request(int fd, bool *ret_pinlet)
{
        char buf[REQUEST_MAX + 1];
        size_t n = 0;

        while (n < REQUEST_MAX) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t k;

                /* A client that connects and sends nothing is held for the hold time too. */
                if (poll(&p, 1, (int)srv.hold_s * 1000) <= 0)
                        return false;
                k = recv(fd, buf + n, REQUEST_MAX - n, 0);
                if (k <= 0)
                        return false;
                n += (size_t)k;
                buf[n] = '\0';
                if (strstr(buf, "\r\n\r\n")) {
                        *ret_pinlet = strcasestr(buf, "\r\nUser-Agent: pinlet/") != NULL;
                        return true;
                }
        }
        return false;
}

static bool send_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t)k;
        }
        return true;
}

/* True when the peer closed (or reset) its side: a readable socket with nothing to read. */
static bool peer_gone(int fd, int wait_ms)
{
        struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
        char c;

        if (poll(&p, 1, wait_ms) <= 0)
                return false;
        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
                return true;
        return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* The tarpit's answer, hold_s bytes long: a status line and headers a registry client
 * accepts as the start of a manifest answer, padded with one long header. */
static char *tarpit_answer(size_t *ret_len)
{
        static const char head[] =
                "HTTP/1.1 200 OK\r\n"
                "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                "Docker-Content-Digest: "
                "sha256:0000000000000000000000000000000000000000000000000000000000000000\r\n"
                "Docker-Distribution-Api-Version: registry/2.0\r\n"
                "X-Tarpit: ";
        static const char tail[] = "\r\nContent-Length: 0\r\n\r\n";
        size_t len =
                srv.hold_s > sizeof(head) + sizeof(tail) ? srv.hold_s : sizeof(head) + sizeof(tail);
        size_t pad = len - (sizeof(head) - 1) - (sizeof(tail) - 1);
        char *a = malloc(len + 1);

        if (!a)
                return NULL;
        memcpy(a, head, sizeof(head) - 1);
        memset(a + sizeof(head) - 1, 'z', pad);
        memcpy(a + sizeof(head) - 1 + pad, tail, sizeof(tail));
        *ret_len = len;
        return a;
}

static void serve_tarpit(int fd)
{
        size_t len = 0;
        char *a = tarpit_answer(&len);

        if (!a)
                return;
        for (size_t i = 0; i < len && !stop; i++) {
                if (!send_all(fd, a + i, 1))
                        break;
                /* The second between bytes is spent watching for the peer's close, so the
                 * open count drops as soon as the client gives up. */
                if (peer_gone(fd, 1000))
                        break;
        }
        free(a);
}

static void *serve(void *arg)
{
        static const char body500[] =
                "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"tarpit: internal error\"}]}";
        int fd = (int)(intptr_t)arg;
        bool from_pinlet = false;
        char head[256];

        if (read_request(fd, &from_pinlet)) {
                count(0, 0, 1, from_pinlet);
                switch (srv.mode) {
                case MODE_TARPIT:
                        serve_tarpit(fd);
                        break;
                case MODE_CLOSE:
                        break;
                case MODE_RESET: {
                        struct linger l = { .l_onoff = 1, .l_linger = 0 };

                        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
                        break;
                }
                case MODE_500:
                        snprintf(head, sizeof(head),
                                 "HTTP/1.1 500 Internal Server Error\r\n"
                                 "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                                 "Connection: close\r\n\r\n",
                                 sizeof(body500) - 1);
                        if (send_all(fd, head, strlen(head)))
                                send_all(fd, body500, sizeof(body500) - 1);
                        break;
                }
        }
        close(fd);
        count(0, -1, 0, 0);
        return NULL;
}

static int parse_mode(const char *s, enum mode *ret)
{
        static const struct {
                const char *name;
                enum mode mode;
        } modes[] = {
                { "tarpit", MODE_TARPIT },
                { "close", MODE_CLOSE },
                { "reset", MODE_RESET },
                { "500", MODE_500 },
        };

        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
                if (strcmp(s, modes[i].name) == 0) {
                        *ret = modes[i].mode;
                        return 0;
                }
        return -EINVAL;
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "mode", required_argument, NULL, 'm' },
                { "port-file", required_argument, NULL, 'p' },
                { "state", required_argument, NULL, 's' },
                { "hold", required_argument, NULL, 'h' },
                { "port", required_argument, NULL, 'P' },
                {},
        };
        struct sockaddr_in sa = { .sin_family = AF_INET };
        socklen_t salen = sizeof(sa);
        const char *port_file = NULL, *mode = NULL;
        struct sigaction sig = { .sa_handler = on_signal };
        pthread_attr_t attr;
        char line[32];
        int lfd, o, one = 1;

        while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (o) {
                case 'm':
                        mode = optarg;
                        break;
                case 'p':
                        port_file = optarg;
                        break;
                case 's':
                        srv.state_path = optarg;
                        break;
                case 'h':
                        srv.hold_s = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'P':
                        sa.sin_port = htons((uint16_t)strtoul(optarg, NULL, 10));
                        break;
                default:
                        return 2;
                }
        }
        if (!mode || !port_file || !srv.state_path || parse_mode(mode, &srv.mode) < 0 ||
            srv.hold_s == 0) {
                fprintf(stderr,
                        "usage: %s --mode tarpit|close|reset|500 --port-file FILE --state FILE "
                        "[--hold SECONDS] [--port N]\n",
                        argv[0]);
                return 2;
        }
        /* No SA_RESTART: accept() and poll() return EINTR so the loop sees the flag. */
        sigaction(SIGTERM, &sig, NULL);
        sigaction(SIGINT, &sig, NULL);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 128) < 0 ||
            getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0) {
                perror("tarpit: listen");
                return 1;
        }
        count(0, 0, 0, 0); /* the state file exists (all zero) before the port is published */
        snprintf(line, sizeof(line), "%u\n", ntohs(sa.sin_port));
        if (write_atomic(port_file, line) < 0) {
                perror("tarpit: port file");
                return 1;
        }
        fprintf(stderr, "tarpit: mode %s on 127.0.0.1:%u, hold %u s\n", mode, ntohs(sa.sin_port),
                srv.hold_s);

        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        while (!stop) {
                pthread_t t;
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

                if (fd < 0) {
                        if (errno != EINTR)
                                perror("tarpit: accept");
                        continue;
                }
                count(1, 1, 0, 0);
                if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd) != 0) {
                        close(fd);
                        count(0, -1, 0, 0);
                }
        }
        /* Held connections end with the process: the kernel closes them. */
        close(lfd);
        return 0;
}
