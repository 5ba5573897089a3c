/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rate limiting for log lines that input from outside can repeat at will (a failing
 * registry named by every pod of a node): at most `burst` lines per `interval_ms`, then
 * silence until the interval ends, when the next allowed line reports how many were
 * suppressed meanwhile.
 *
 *     static struct pinlet_ratelimit rl = PINLET_RATELIMIT_INIT(10000, 5);
 *     unsigned dropped;
 *     if (pinlet_ratelimit_allow(&rl, &dropped))
 *             log_warn("...%s", ...);   // mention dropped when > 0
 *
 * Thread-safe (a mutex held for a few instructions).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct pinlet_ratelimit {
        pthread_mutex_t lock;
        int64_t interval_ms;
        unsigned burst;
        int64_t begin_ms; /* start of the current interval; 0: none yet */
        unsigned allowed; /* lines allowed in the current interval */
        unsigned suppressed;
};

#define PINLET_RATELIMIT_INIT(interval, n)                                                  \
        {                                                                                   \
                .lock = PTHREAD_MUTEX_INITIALIZER, .interval_ms = (interval), .burst = (n), \
        }

/* True when a line may be logged now; *ret_suppressed (may be NULL) then receives the
 * number of lines suppressed since the previous allowed one. */
bool pinlet_ratelimit_allow(struct pinlet_ratelimit *rl, unsigned *ret_suppressed);
