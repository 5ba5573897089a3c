/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/io.h"
#include "util/json.h"
#include "util/log.h"

static _Atomic int log_level = PINLET_LOG_INFO;
static _Atomic int log_format = PINLET_LOG_TEXT;

static const char *const level_names[] = {
        [PINLET_LOG_ERROR] = "error",
        [PINLET_LOG_WARN] = "warn",
        [PINLET_LOG_INFO] = "info",
        [PINLET_LOG_DEBUG] = "debug",
};

void pinlet_log_setup(enum pinlet_log_level level, enum pinlet_log_format format)
{
        log_level = level;
        log_format = format;
}

bool pinlet_log_enabled(enum pinlet_log_level level)
{
        return (int)level <= log_level;
}

int pinlet_log_level_from_string(const char *s, enum pinlet_log_level *ret)
{
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcmp(s, level_names[i]) == 0) {
                        *ret = (enum pinlet_log_level)i;
                        return 0;
                }
        if (strcmp(s, "warning") == 0) {
                *ret = PINLET_LOG_WARN;
                return 0;
        }
        return -EINVAL;
}

int pinlet_log_format_from_string(const char *s, enum pinlet_log_format *ret)
{
        if (strcmp(s, "text") == 0)
                *ret = PINLET_LOG_TEXT;
        else if (strcmp(s, "json") == 0)
                *ret = PINLET_LOG_JSON;
        else
                return -EINVAL;
        return 0;
}

void pinlet_format_rfc3339_now(char *buf, size_t size)
{
        struct timespec ts;
        struct tm tm;
        char base[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, size, "%s.%09ldZ", base, ts.tv_nsec);
}

void pinlet_log(enum pinlet_log_level level, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL, *line = NULL;
        va_list ap;
        int n;

        if (!pinlet_log_enabled(level))
                return;
        va_start(ap, fmt);
        n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;

        if (log_format == PINLET_LOG_JSON) {
                char now[48];
                json_t *o;

                pinlet_format_rfc3339_now(now, sizeof(now));
                o = json_pack("{s:s, s:s, s:s}", "time", now, "level", level_names[level], "msg",
                              msg);
                if (!o)
                        return;
                line = pinlet_json_line(o);
                json_decref(o);
                if (!line)
                        return;
        } else if (asprintf(&line, "pinlet %s: %s\n", level_names[level], msg) < 0)
                return;
        /* nowhere left to report a failure to write the log */
        (void)pinlet_io_write_all(STDERR_FILENO, line, strlen(line));
}
