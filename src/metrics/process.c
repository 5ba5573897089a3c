/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The standard process_* metrics, with the names, types and meanings of the Prometheus
 * client libraries' process collector (so dashboards built for any exporter work), read
 * from /proc/self at scrape time: proc(5) for the fields of /proc/self/stat and the
 * "btime" line of /proc/stat.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics/metrics-internal.h"
#include "util/io.h"

#define PROC_FILE_MAX (64u << 10) /* /proc/self/stat is < 1 KiB; /proc/stat grows per CPU */

struct proc_stat {
        uint64_t utime, stime; /* clock ticks */
        uint64_t starttime;    /* clock ticks after boot */
        uint64_t vsize;        /* bytes */
        uint64_t rss;          /* pages */
};

/* proc(5): "pid (comm) state ppid ...". comm may hold spaces and parentheses, so the
 * fields start after the LAST ')'. Counting from state as field 3: utime 14, stime 15,
 * starttime 22, vsize 23, rss 24. */
static int read_self_stat(struct proc_stat *ret)
{
        _cleanup_free_ char *data = NULL;
        struct proc_stat st = {};
        char *p, *save = NULL;
        int r, field = 3;

        r = pinlet_io_read_file("/proc/self/stat", PROC_FILE_MAX, 0, &data, NULL, NULL);
        if (r < 0)
                return r;
        p = strrchr(data, ')');
        if (!p)
                return -EINVAL;
        for (char *t = strtok_r(p + 1, " \n", &save); t;
             t = strtok_r(NULL, " \n", &save), field++) {
                uint64_t v = strtoull(t, NULL, 10);

                switch (field) {
                case 14:
                        st.utime = v;
                        break;
                case 15:
                        st.stime = v;
                        break;
                case 22:
                        st.starttime = v;
                        break;
                case 23:
                        st.vsize = v;
                        break;
                case 24:
                        st.rss = v;
                        *ret = st;
                        return 0;
                default:
                        break;
                }
        }
        return -EINVAL;
}

/* Boot time (Unix seconds): the "btime" line of /proc/stat. */
static int read_btime(uint64_t *ret)
{
        _cleanup_free_ char *data = NULL;
        const char *p;
        int r;

        r = pinlet_io_read_file("/proc/stat", PROC_FILE_MAX, 0, &data, NULL, NULL);
        if (r < 0)
                return r;
        p = strstr(data, "\nbtime ");
        if (!p)
                return -EINVAL;
        *ret = strtoull(p + strlen("\nbtime "), NULL, 10);
        return 0;
}

static int count_open_fds(uint64_t *ret)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        uint64_t n = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        /* Less the descriptor opendir() itself held. */
        *ret = n > 0 ? n - 1 : 0;
        return 0;
}

static int gauge_u64(struct pinlet_buf *b, const char *name, const char *type, const char *help,
                     uint64_t v)
{
        int r = metrics_header(b, name, type, help);

        return r < 0 ? r : metrics_appendf(b, "%s %" PRIu64 "\n", name, v);
}

static int gauge_ns(struct pinlet_buf *b, const char *name, const char *type, const char *help,
                    uint64_t ns)
{
        int r = metrics_header(b, name, type, help);

        if (r >= 0)
                r = metrics_appendf(b, "%s ", name);
        if (r >= 0)
                r = metrics_append_ns_as_seconds(b, ns);
        return r < 0 ? r : pinlet_buf_append(b, "\n", 1);
}

int metrics_format_process(struct pinlet_buf *b)
{
        long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
        struct proc_stat st;
        struct rlimit rl;
        uint64_t btime = 0, fds = 0;
        int r = 0;

        if (tck <= 0)
                tck = 100;
        if (read_self_stat(&st) >= 0) {
                r = gauge_ns(b, "process_cpu_seconds_total", "counter",
                             "Total user and system CPU time spent in seconds.",
                             (st.utime + st.stime) * (1000000000u / (uint64_t)tck));
                if (r >= 0)
                        r = gauge_u64(b, "process_virtual_memory_bytes", "gauge",
                                      "Virtual memory size in bytes.", st.vsize);
                if (r >= 0)
                        r = gauge_u64(b, "process_resident_memory_bytes", "gauge",
                                      "Resident memory size in bytes.",
                                      st.rss * (uint64_t)(page > 0 ? page : 4096));
                if (r >= 0 && read_btime(&btime) >= 0)
                        r = gauge_ns(b, "process_start_time_seconds", "gauge",
                                     "Start time of the process since unix epoch in seconds.",
                                     btime * 1000000000u +
                                             st.starttime * (1000000000u / (uint64_t)tck));
        }
        if (r >= 0 && count_open_fds(&fds) >= 0)
                r = gauge_u64(b, "process_open_fds", "gauge", "Number of open file descriptors.",
                              fds);
        if (r >= 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0)
                r = gauge_u64(b, "process_max_fds", "gauge",
                              "Maximum number of open file descriptors.",
                              rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur);
        return r;
}
