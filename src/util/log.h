/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process-wide logging to stderr (journald picks it up under systemd). One write() per
 * line so concurrent threads never interleave. Text: "LEVEL message"; JSON: one object per
 * line with time (RFC 3339, UTC, nanoseconds), level and msg.
 *
 * Library code logs at debug at most; the caller that decides logs above that. Never pass
 * a credential to these functions.
 */
#pragma once

#include <stdbool.h>

#include "util/macro.h"

enum pinlet_log_level {
        PINLET_LOG_ERROR,
        PINLET_LOG_WARN,
        PINLET_LOG_INFO,
        PINLET_LOG_DEBUG,
};

enum pinlet_log_format {
        PINLET_LOG_TEXT,
        PINLET_LOG_JSON,
};

void pinlet_log_setup(enum pinlet_log_level level, enum pinlet_log_format format);
bool pinlet_log_enabled(enum pinlet_log_level level);
void pinlet_log(enum pinlet_log_level level, const char *fmt, ...) _printf_(2, 3);

/* "error" | "warn" | "info" | "debug" <-> level; returns < 0 for an unknown name. */
int pinlet_log_level_from_string(const char *s, enum pinlet_log_level *ret);
int pinlet_log_format_from_string(const char *s, enum pinlet_log_format *ret);

/* Formats now as RFC 3339 UTC with nanoseconds into buf (at least 40 bytes). */
void pinlet_format_rfc3339_now(char *buf, size_t size);

#define log_error(...) pinlet_log(PINLET_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  pinlet_log(PINLET_LOG_WARN, __VA_ARGS__)
#define log_info(...)  pinlet_log(PINLET_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                             \
        do {                                                       \
                if (pinlet_log_enabled(PINLET_LOG_DEBUG))          \
                        pinlet_log(PINLET_LOG_DEBUG, __VA_ARGS__); \
        } while (0)
