/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small strict TOML reader for the subset containerd's hosts.toml and containers'
 * registries.conf use. Debian 12 packages no TOML library for C, and these files are
 * written by administrators and configuration management: the reader is bounded and every
 * refusal names the file and line ("/etc/containerd/certs.d/r/hosts.toml:3: ...").
 *
 * Supported (TOML 1.0 where supported at all):
 *   comments (#), key = value, bare keys, "quoted" and 'literal' keys, dotted keys,
 *   [table] and [[array of tables]] headers (dotted, quoted parts), basic strings with
 *   the escapes \b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX, 'literal' strings, decimal
 *   integers (sign, '_' between digits), true/false, arrays (nested, multi-line, with
 *   comments and a trailing comma), inline tables { k = v, ... }.
 * Refused with a message: multi-line strings, floats, dates and times, hex/octal/binary
 * integers, duplicate keys, a table defined twice, a value that redefines a table, more
 * than PINLET_TOML_DEPTH_MAX nested arrays/inline tables, a file past PINLET_TOML_SIZE_MAX,
 * NUL bytes and invalid UTF-8 escapes.
 *
 * The tree keeps keys in file order (containerd tries [host."..."] entries in the order
 * they appear). Pure: no I/O besides pinlet_toml_load(), no globals; thread-safe on
 * distinct trees.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define PINLET_TOML_SIZE_MAX  (1024 * 1024) /* bytes of one file */
#define PINLET_TOML_DEPTH_MAX 32            /* nested arrays and inline tables */

enum pinlet_toml_type {
        PINLET_TOML_STRING,
        PINLET_TOML_INTEGER,
        PINLET_TOML_BOOL,
        PINLET_TOML_ARRAY,
        PINLET_TOML_TABLE,
};

/* One value; a table or an array owns its children. */
struct pinlet_toml_value {
        enum pinlet_toml_type type;
        unsigned line; /* where the value (or the table's header) starts */
        char *string;  /* STRING: NUL-terminated, never holds a NUL (refused) */
        int64_t integer;
        bool boolean;
        /* ARRAY: items; TABLE: items with their keys (same index), in file order */
        struct pinlet_toml_value **items;
        char **keys;
        size_t n;
        size_t cap;
        /* TABLE bookkeeping for the redefinition rules */
        bool defined;      /* by a [header], an inline table, or as a dotted-key parent */
        bool inline_table; /* closed: nothing may be added to it later */
        bool table_array;  /* ARRAY created by [[header]]: headers append to it */
};

/* Parses data (len bytes; need not be NUL-terminated). name is used in messages. *ret is
 * the root table, written only on success. Errors: PINLET_EINVAL "<name>:<line>: ...",
 * PINLET_E2BIG past PINLET_TOML_SIZE_MAX, -ENOMEM. */
int pinlet_toml_parse(const char *name, const char *data, size_t len,
                      struct pinlet_toml_value **ret, struct pinlet_error **err);

/* Reads and parses path. Errors as pinlet_toml_parse, or the -errno of reading
 * (-ENOENT for a missing file) with the path in the message. */
int pinlet_toml_load(const char *path, struct pinlet_toml_value **ret, struct pinlet_error **err);

void pinlet_toml_free(struct pinlet_toml_value *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pinlet_toml_value *, pinlet_toml_free)

/* The value of key in table (NULL when absent, or when table is not a table). */
const struct pinlet_toml_value *pinlet_toml_get(const struct pinlet_toml_value *table,
                                                const char *key);

/* "string", "integer", "boolean", "array", "table". */
const char *pinlet_toml_type_name(enum pinlet_toml_type t);
