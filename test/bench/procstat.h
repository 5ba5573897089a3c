/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPU time and memory of other processes, read from /proc, for the benchmark.
 *
 * CPU is utime + stime from /proc/PID/stat (fields 14 and 15, in clock ticks, 10 ms
 * each with the usual USER_HZ of 100): it covers every thread of the process, also threads
 * that already exited. /proc/PID/schedstat would be finer, but it reads 0 on kernels
 * built without schedstats (as here). Memory is VmRSS and VmHWM from /proc/PID/status.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A set of processes measured together (nginx: the master and its workers). */
struct proc_set {
        pid_t pids[64];
        size_t n;
};

struct proc_sample {
        uint64_t cpu_ticks; /* utime + stime summed over the set */
        uint64_t rss_kib;   /* VmRSS summed over the set */
        uint64_t hwm_kib;   /* VmHWM summed over the set */
        uint64_t anon_kib;  /* RssAnon: the process's own heap and stacks */
        uint64_t file_kib;  /* RssFile: mapped files, mostly shared libraries' code */
        uint64_t threads;   /* Threads, summed */
        uint64_t ctxsw;     /* voluntary + involuntary switches of every thread */
        size_t n_alive;     /* processes of the set that could be read */
};

/* Adds pid and (when children is true) every process whose parent is pid. Returns 0, or
 * -ESRCH when pid does not exist, -E2BIG when the set is full. */
int proc_set_add(struct proc_set *s, pid_t pid, bool children);

/* Samples the set now. with_ctxsw also walks /proc/PID/task/ (slower; for idle checks). */
void proc_set_sample(const struct proc_set *s, bool with_ctxsw, struct proc_sample *ret);

/* Milliseconds of CPU in a number of ticks. */
double proc_ticks_ms(uint64_t ticks);
