/* SPDX-License-Identifier: Apache-2.0 */
#include "procstat.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads a whole small /proc file into buf (NUL-terminated). Returns bytes or -errno. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
        FILE *f = fopen(path, "re");
        size_t n;

        if (!f)
                return -errno;
        n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = 0;
        return (ssize_t)n;
}

/* Fields of /proc/PID/stat after the command name, which may itself contain spaces and
 * parentheses: everything after the LAST ')' is space-separated, starting at field 3. */
static int stat_fields(pid_t pid, const char *task, long *ret_ppid, uint64_t *ret_ticks)
{
        char path[384], buf[2048], *p;
        unsigned long long utime = 0, stime = 0;
        long ppid = 0;

        if (task)
                snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, task);
        else
                snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (read_small(path, buf, sizeof(buf)) < 0)
                return -ESRCH;
        p = strrchr(buf, ')');
        if (!p)
                return -EIO;
        /* field 3 state, 4 ppid, ... 14 utime, 15 stime */
        if (sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ppid, &utime,
                   &stime) != 3)
                return -EIO;
        if (ret_ppid)
                *ret_ppid = ppid;
        if (ret_ticks)
                *ret_ticks = utime + stime;
        return 0;
}

int proc_set_add(struct proc_set *s, pid_t pid, bool children)
{
        DIR *d;
        struct dirent *de;

        if (stat_fields(pid, NULL, NULL, NULL) < 0)
                return -ESRCH;
        if (s->n >= sizeof(s->pids) / sizeof(s->pids[0]))
                return -E2BIG;
        s->pids[s->n++] = pid;
        if (!children)
                return 0;
        d = opendir("/proc");
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char *end;
                long ppid;
                long v = strtol(de->d_name, &end, 10);

                if (*end || v <= 0 || v == pid)
                        continue;
                if (stat_fields((pid_t)v, NULL, &ppid, NULL) < 0 || ppid != pid)
                        continue;
                if (s->n >= sizeof(s->pids) / sizeof(s->pids[0])) {
                        closedir(d);
                        return -E2BIG;
                }
                s->pids[s->n++] = (pid_t)v;
        }
        closedir(d);
        return 0;
}

/* Value in kB of one "Key:   123 kB" line of /proc/PID/status, 0 when absent. */
static uint64_t status_kib(const char *status, const char *key)
{
        const char *p = strstr(status, key);

        if (!p)
                return 0;
        return strtoull(p + strlen(key), NULL, 10);
}

static uint64_t task_ctxsw(pid_t pid)
{
        char path[384], buf[4096];
        uint64_t sum = 0;
        DIR *d;
        struct dirent *de;

        snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
        d = opendir(path);
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, de->d_name);
                if (read_small(path, buf, sizeof(buf)) < 0)
                        continue;
                sum += status_kib(buf, "\nvoluntary_ctxt_switches:");
                sum += status_kib(buf, "\nnonvoluntary_ctxt_switches:");
        }
        closedir(d);
        return sum;
}

void proc_set_sample(const struct proc_set *s, bool with_ctxsw, struct proc_sample *ret)
{
        memset(ret, 0, sizeof(*ret));
        for (size_t i = 0; i < s->n; i++) {
                char path[64], buf[4096];
                uint64_t ticks;

                if (stat_fields(s->pids[i], NULL, NULL, &ticks) < 0)
                        continue;
                ret->cpu_ticks += ticks;
                ret->n_alive++;
                snprintf(path, sizeof(path), "/proc/%d/status", (int)s->pids[i]);
                if (read_small(path, buf, sizeof(buf)) >= 0) {
                        ret->rss_kib += status_kib(buf, "\nVmRSS:");
                        ret->hwm_kib += status_kib(buf, "\nVmHWM:");
                        ret->anon_kib += status_kib(buf, "\nRssAnon:");
                        ret->file_kib += status_kib(buf, "\nRssFile:");
                        ret->threads += status_kib(buf, "\nThreads:");
                }
                if (with_ctxsw)
                        ret->ctxsw += task_ctxsw(s->pids[i]);
        }
}

double proc_ticks_ms(uint64_t ticks)
{
        static long hz;

        if (!hz)
                hz = sysconf(_SC_CLK_TCK);
        if (hz <= 0)
                hz = 100;
        return (double)ticks * 1000.0 / (double)hz;
}
