/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/spawn.h"
#include "util/time.h"

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* Reads what fd has into b. Returns 1 at EOF, 0 when it would block, -E2BIG past b's max
 * when strict (else the rest is dropped), another negative errno on errors. */
static int drain(int fd, struct pinlet_buf *b, bool strict)
{
        char chunk[16384];

        for (;;) {
                ssize_t n = read(fd, chunk, sizeof(chunk));
                size_t room = b->max - b->len;

                if (n == 0)
                        return 1;
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return 0;
                        return -errno;
                }
                if ((size_t)n > room && strict)
                        return -E2BIG;
                if (room > 0 &&
                    pinlet_buf_append(b, chunk, (size_t)n < room ? (size_t)n : room) == -ENOMEM)
                        return -ENOMEM;
        }
}

void pinlet_spawn_result_done(struct pinlet_spawn_result *r)
{
        pinlet_buf_free(&r->out);
        pinlet_buf_free(&r->err);
}

int pinlet_spawn_run(const struct pinlet_spawn *s, struct pinlet_spawn_result *ret)
{
        int in[2] = { -1, -1 }, outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, pidfd = -1;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        bool out_eof = false, err_eof = false, exited = false;
        int status = 0, r = 0, e;
        pid_t pid;

        *ret = (struct pinlet_spawn_result){};
        pinlet_buf_init(&ret->out, s->out_max);
        pinlet_buf_init(&ret->err, s->err_max);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 ||
            pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
                e = -errno;
                close_fd(&in[0]), close_fd(&in[1]), close_fd(&outp[0]), close_fd(&outp[1]);
                return e;
        }
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[1], 0);
        posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
        posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
        posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* glibc >= 2.34: close_range */
        posix_spawnattr_init(&attr);
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        e = posix_spawn(&pid, s->path, &fa, &attr, s->argv, s->envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        close_fd(&in[1]), close_fd(&outp[1]), close_fd(&errp[1]);
        if (e != 0) {
                close_fd(&in[0]), close_fd(&outp[0]), close_fd(&errp[0]);
                return -e;
        }
        ret->started = true;

        /* the input is small (a descriptor, a request): the socket buffer takes it at once */
        for (size_t off = 0; s->input && off < s->input_len;) {
                ssize_t n = send(in[0], (const char *)s->input + off, s->input_len - off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break; /* it did not read it: its exit status says what that means */
                off += (size_t)n;
        }
        close_fd(&in[0]);
        (void)fcntl(outp[0], F_SETFL, O_NONBLOCK);
        (void)fcntl(errp[0], F_SETFL, O_NONBLOCK);
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

        while (!exited) {
                struct pollfd pfd[3];
                int64_t left = s->deadline_ms - pinlet_now_ms();
                nfds_t n = 0;
                int ip = -1;

                if (left <= 0) {
                        r = -ETIMEDOUT;
                        break;
                }
                if (!out_eof)
                        pfd[n++] = (struct pollfd){ .fd = outp[0], .events = POLLIN };
                if (!err_eof)
                        pfd[n++] = (struct pollfd){ .fd = errp[0], .events = POLLIN };
                if (pidfd >= 0) {
                        ip = (int)n;
                        pfd[n++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
                }
                /* without a pidfd (kernel < 5.3) the exit is polled for every 10 ms */
                if (poll(pfd, n,
                         (int)(pidfd >= 0 ? (left > 1000 ? 1000 : left)
                                          : (left > 10 ? 10 : left))) < 0 &&
                    errno != EINTR) {
                        r = -errno;
                        break;
                }
                if (!out_eof && (r = drain(outp[0], &ret->out, s->out_strict)) > 0)
                        out_eof = true;
                if (r >= 0 && !err_eof && (r = drain(errp[0], &ret->err, false)) > 0)
                        err_eof = true;
                if (r < 0)
                        break;
                r = 0;
                if ((ip >= 0 && (pfd[ip].revents & POLLIN)) || pidfd < 0 || (out_eof && err_eof)) {
                        /* never a blocking wait: a child that closed its output and keeps
                         * running is still bound by the deadline */
                        if (waitpid(pid, &status, WNOHANG) == pid) {
                                exited = true;
                                /* what it wrote before exiting is in the pipes now; a
                                 * grandchild holding them open is not waited for */
                                if (!out_eof)
                                        r = drain(outp[0], &ret->out, s->out_strict);
                                if (!err_eof)
                                        (void)drain(errp[0], &ret->err, false);
                                if (r > 0)
                                        r = 0;
                        }
                }
        }
        if (!exited) {
                kill(pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
        }
        close_fd(&outp[0]), close_fd(&errp[0]), close_fd(&pidfd);
        ret->status = status;
        return r == -E2BIG || r == -ETIMEDOUT || r < 0 ? r : 0;
}
