/* SPDX-License-Identifier: Apache-2.0 */
/*
 * String joining for the per-call paths (reference keys, cache keys): asprintf(3) runs
 * the whole vfprintf machinery, about ten times the cost of measuring and copying, and
 * the completion-queue thread builds several such strings per call.
 */
#pragma once

#include <stddef.h>

/* The concatenation of the strings up to the terminating NULL, malloc'ed; NULL without
 * memory (errno ENOMEM, also when the total would overflow size_t). */
char *pinlet_strjoin_internal(const char *first, ...);
#define pinlet_strjoin(...) pinlet_strjoin_internal(__VA_ARGS__, (const char *)NULL)

/* strcmp for qsort(3) and bsearch(3) over arrays of char *. */
int pinlet_strcmp_ptr(const void *a, const void *b);
