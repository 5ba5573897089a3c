/* SPDX-License-Identifier: Apache-2.0 */
#include <time.h>

#include "util/ratelimit.h"

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool pinlet_ratelimit_allow(struct pinlet_ratelimit *rl, unsigned *ret_suppressed)
{
        int64_t now = now_ms();
        bool ok;

        pthread_mutex_lock(&rl->lock);
        if (rl->begin_ms == 0 || now - rl->begin_ms >= rl->interval_ms) {
                rl->begin_ms = now;
                rl->allowed = 0;
        }
        ok = rl->allowed < rl->burst;
        if (ok) {
                rl->allowed++;
                if (ret_suppressed)
                        *ret_suppressed = rl->suppressed;
                rl->suppressed = 0;
        } else {
                rl->suppressed++;
        }
        pthread_mutex_unlock(&rl->lock);
        return ok;
}
