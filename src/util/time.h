/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one clock pinlet measures time with: CLOCK_MONOTONIC in milliseconds. Deadlines
 * travel between modules as absolute values on this clock (the CRI call's deadline, the
 * cache's single-flight waits, the registry's resolution budget), so every module must
 * read the same clock; wall time would jump with NTP or an operator's `date`.
 */
#pragma once

#include <stdint.h>

/* CLOCK_MONOTONIC now, in ms. Only differences and comparisons with other values of this
 * clock mean anything. Thread-safe, never fails (the clock exists on every Linux). */
int64_t pinlet_now_ms(void);
