/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pinlet_it_free_port [N]: prints N (default 1) distinct free TCP ports on 127.0.0.1, one
 * per line. Each comes from binding 127.0.0.1:0 (the kernel picks an unused port); all N
 * sockets stay bound until every port is chosen so the N are distinct. The sockets are
 * closed before exit: another process may take a port before the daemon binds it, so the
 * harness checks that the daemon really listens (see common.sh).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PORTS 64

int main(int argc, char **argv)
{
        int fds[MAX_PORTS];
        int n = argc > 1 ? atoi(argv[1]) : 1, i;

        if (n < 1 || n > MAX_PORTS) {
                fprintf(stderr, "usage: %s [N (1..%d)]\n", argv[0], MAX_PORTS);
                return 2;
        }
        for (i = 0; i < n; i++) {
                struct sockaddr_in sa = { .sin_family = AF_INET };
                socklen_t len = sizeof(sa);

                sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
                    getsockname(fds[i], (struct sockaddr *)&sa, &len) < 0) {
                        perror("pinlet_it_free_port");
                        return 1;
                }
                printf("%u\n", ntohs(sa.sin_port));
        }
        for (i = 0; i < n; i++)
                close(fds[i]);
        return fflush(stdout) == 0 ? 0 : 1;
}
