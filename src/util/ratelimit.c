/* SPDX-License-Identifier: Apache-2.0 */
#include "util/ratelimit.h"
#include "util/time.h"

bool pinlet_ratelimit_allow(struct pinlet_ratelimit *rl, unsigned *ret_suppressed)
{
        int64_t now = pinlet_now_ms();
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
