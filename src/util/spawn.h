/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Running a helper program pinlet does not trust to behave (an image verifier, a kubelet
 * credential provider), the one way both need it:
 *   - posix_spawn, no shell; the child gets stdin, stdout and stderr and no other
 *     descriptor (closefrom(3) in the child: pinlet's own descriptors are O_CLOEXEC, but
 *     gRPC's, curl's, OpenSSL's and libmicrohttpd's need not be), no blocked signal and
 *     every handler at its default, whatever the calling thread blocks;
 *   - the input is written to stdin (a socket, so a child that exits without reading it
 *     cannot raise SIGPIPE in the daemon), then stdin is closed;
 *   - stdout and stderr are read with poll() into bounded buffers until the child exits;
 *     the child is killed (SIGKILL) at the deadline and always reaped; the exit is watched
 *     through a pidfd, and never waited for while output is pending, so a child that
 *     closes its output and keeps running is still bound by the deadline.
 * Thread-safe: touches no global state.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct pinlet_spawn {
        const char *path;  /* the program, executed directly */
        char *const *argv; /* argv[0] included, NULL-terminated */
        char *const *envp; /* the child's environment, NULL-terminated */
        const void *input; /* written to stdin; may be NULL */
        size_t input_len;
        int64_t deadline_ms; /* absolute pinlet_now_ms() time */
        size_t out_max;      /* bytes of stdout kept */
        size_t err_max;      /* bytes of stderr kept (the rest is dropped) */
        bool out_strict;     /* more stdout than out_max is -E2BIG (the child killed);
                              * otherwise the rest is dropped */
};

struct pinlet_spawn_result {
        bool started; /* posix_spawn succeeded */
        int status;   /* the waitpid() status when the call returned 0 */
        struct pinlet_buf out, err;
};

/*
 * Runs s. Returns 0 when the child exited on its own (ret->status), -ETIMEDOUT when it was
 * killed at the deadline, -E2BIG when it wrote more than out_max with out_strict (killed),
 * or the negative errno of what failed (pipes, posix_spawn: ret->started is false, or
 * reading its output). ret is filled in every case (the output read so far); release it
 * with pinlet_spawn_result_done().
 */
int pinlet_spawn_run(const struct pinlet_spawn *s, struct pinlet_spawn_result *ret);

void pinlet_spawn_result_done(struct pinlet_spawn_result *r);
