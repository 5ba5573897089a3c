/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stand-in for the web server images critest runs (registry.k8s.io/e2e-test-images/
 * nginx and httpd, gcr.io/k8s-staging-cri-tools/hostnet-nginx-<arch>): answers every
 * HTTP request on 0.0.0.0:PORT (an argument --port=PORT, default 80; other arguments are
 * ignored) with 200 and a short page. What critest looks for in the real images, it
 * finds here: like nginx it writes its PID to /var/run/nginx.pid (the HostPID spec reads
 * it, then looks for the process by the name "nginx": the image installs this program
 * under that name), and like Apache it logs its command line at start ("Command line:
 * 'httpd -D FOREGROUND'", which the multi-container log spec expects); the ContainerPID
 * spec looks for "master process" in /proc/1/cmdline, which the nginx image passes as an
 * argument. Exits 0 on SIGTERM or SIGINT. Built static by critest.sh; not part of pinlet.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_signal(int sig)
{
        (void)sig;
        _exit(0);
}

int main(int argc, char **argv)
{
        static const char page[] = "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n"
                                   "Content-Length: 20\r\nConnection: close\r\n\r\n"
                                   "<h1>stand-in</h1>\r\n";
        struct sockaddr_in addr = { .sin_family = AF_INET };
        int port = 80, one = 1, fd, i;
        FILE *pid;

        printf("Command line: '");
        for (i = 0; i < argc; i++) {
                printf("%s%s", i ? " " : "", argv[i]);
                if (strncmp(argv[i], "--port=", 7) == 0)
                        port = atoi(argv[i] + 7);
        }
        printf("'\n");
        fflush(stdout);

        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        signal(SIGPIPE, SIG_IGN);
        addr.sin_port = htons((unsigned short)port);
        addr.sin_addr.s_addr = htonl(INADDR_ANY);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
                perror("webserver");
                return 1;
        }
        pid = fopen("/var/run/nginx.pid", "w");
        if (pid) {
                fprintf(pid, "%d\n", (int)getpid());
                fclose(pid);
        }
        for (;;) {
                char buf[4096];
                int c = accept(fd, NULL, NULL);

                if (c < 0)
                        continue;
                /* One read is enough for the GET requests critest sends. */
                if (read(c, buf, sizeof(buf)) > 0 && write(c, page, sizeof(page) - 1) < 0)
                        perror("webserver: write");
                close(c);
        }
}
