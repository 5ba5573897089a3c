/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON lines: the one format of pinlet's line-oriented JSON outputs (the audit log, the
 * pin store's log, JSON-format logging).
 */
#pragma once

#include <jansson.h>

/* o as compact JSON, keys in insertion order, '\n' appended: a malloc'ed string the
 * caller frees. NULL when o cannot be encoded or on allocation failure. o stays the
 * caller's (not stolen, not changed). */
char *pinlet_json_line(const json_t *o);
