/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only protobuf wire writer and canonicalizer, independent of protobuf-c, so that the
 * intercept tests build requests full of fields pinlet's schema does not model and compare
 * what protobuf-c wrote back against what was sent.
 *
 * Canonical form: a message's fields sorted by field number (stably: repeated fields keep
 * their order), nested messages named by a schema canonicalized recursively, everything
 * else as raw bytes. Two encodings with the same canonical form are the same message to
 * any protobuf parser: the wire format is order-free across field numbers.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PBW_VARINT = 0, PBW_I64 = 1, PBW_LEN = 2, PBW_I32 = 5 };

struct pbw {
        uint8_t *d;
        size_t len, cap;
};

static inline void pbw_raw(struct pbw *b, const void *p, size_t n)
{
        if (b->len + n > b->cap) {
                b->cap = (b->len + n) * 2 + 16;
                b->d = realloc(b->d, b->cap);
                if (!b->d)
                        abort();
        }
        if (n)
                memcpy(b->d + b->len, p, n);
        b->len += n;
}

static inline void pbw_varint(struct pbw *b, uint64_t v)
{
        uint8_t c;

        do {
                c = v & 0x7f;
                v >>= 7;
                if (v)
                        c |= 0x80;
                pbw_raw(b, &c, 1);
        } while (v);
}

static inline void pbw_tag(struct pbw *b, uint32_t field, int wt)
{
        pbw_varint(b, ((uint64_t)field << 3) | (unsigned)wt);
}

static inline void pbw_uint(struct pbw *b, uint32_t field, uint64_t v)
{
        pbw_tag(b, field, PBW_VARINT);
        pbw_varint(b, v);
}

static inline void pbw_bytes(struct pbw *b, uint32_t field, const void *p, size_t n)
{
        pbw_tag(b, field, PBW_LEN);
        pbw_varint(b, n);
        pbw_raw(b, p, n);
}

static inline void pbw_str(struct pbw *b, uint32_t field, const char *s)
{
        pbw_bytes(b, field, s, strlen(s));
}

static inline void pbw_fixed64(struct pbw *b, uint32_t field, uint64_t v)
{
        pbw_tag(b, field, PBW_I64);
        for (int i = 0; i < 8; i++) {
                uint8_t c = (uint8_t)(v >> (8 * i));
                pbw_raw(b, &c, 1);
        }
}

static inline void pbw_fixed32(struct pbw *b, uint32_t field, uint32_t v)
{
        pbw_tag(b, field, PBW_I32);
        for (int i = 0; i < 4; i++) {
                uint8_t c = (uint8_t)(v >> (8 * i));
                pbw_raw(b, &c, 1);
        }
}

/* Appends sub as a length-delimited field and frees sub. */
static inline void pbw_msg(struct pbw *b, uint32_t field, struct pbw *sub)
{
        pbw_bytes(b, field, sub->d, sub->len);
        free(sub->d);
        *sub = (struct pbw){ 0 };
}

/* A map<string,string> entry: key = 1, value = 2. */
static inline void pbw_map(struct pbw *b, uint32_t field, const char *k, const char *v)
{
        struct pbw e = { 0 };

        pbw_str(&e, 1, k);
        pbw_str(&e, 2, v);
        pbw_msg(b, field, &e);
}

/* Which fields of a message are messages to canonicalize recursively. */
struct pbw_schema {
        uint32_t field;
        const struct pbw_schema *sub; /* array ending with field 0 */
};

struct pbw_field {
        uint32_t num;
        int wt;
        const uint8_t *p; /* payload (LEN: content; others: the encoded value) */
        size_t n;
};

/* Reads a varint; returns bytes used or 0 when malformed. */
static inline size_t pbw_read_varint(const uint8_t *p, size_t n, uint64_t *v)
{
        uint64_t r = 0;

        for (size_t i = 0; i < n && i < 10; i++) {
                r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
                if (!(p[i] & 0x80)) {
                        *v = r;
                        return i + 1;
                }
        }
        return 0;
}

/* Splits a message into fields; returns the count or -1 when malformed. */
static inline int pbw_split(const uint8_t *p, size_t n, struct pbw_field **ret)
{
        struct pbw_field *f = NULL;
        int count = 0;
        size_t i = 0;

        while (i < n) {
                uint64_t key, v;
                size_t k = pbw_read_varint(p + i, n - i, &key), vl;
                struct pbw_field x;

                if (!k)
                        goto bad;
                i += k;
                x.num = (uint32_t)(key >> 3);
                x.wt = (int)(key & 7);
                switch (x.wt) {
                case PBW_VARINT:
                        vl = pbw_read_varint(p + i, n - i, &v);
                        if (!vl)
                                goto bad;
                        x.p = p + i;
                        x.n = vl;
                        break;
                case PBW_I64:
                case PBW_I32:
                        vl = x.wt == PBW_I64 ? 8 : 4;
                        if (n - i < vl)
                                goto bad;
                        x.p = p + i;
                        x.n = vl;
                        break;
                case PBW_LEN:
                        k = pbw_read_varint(p + i, n - i, &v);
                        if (!k || v > n - i - k)
                                goto bad;
                        i += k;
                        x.p = p + i;
                        x.n = (size_t)v;
                        vl = (size_t)v;
                        break;
                default:
                        goto bad;
                }
                i += vl;
                f = realloc(f, sizeof(*f) * (size_t)(count + 1));
                f[count++] = x;
        }
        *ret = f;
        return count;
bad:
        free(f);
        return -1;
}

/* Canonical text of a message (malloc'ed), NULL when malformed. */
static inline char *pbw_canon(const uint8_t *p, size_t n, const struct pbw_schema *schema)
{
        struct pbw_field *f = NULL;
        int count = pbw_split(p, n, &f);
        char *out = NULL;
        size_t outlen = 0;
        FILE *m;

        if (count < 0)
                return NULL;
        /* stable insertion sort by field number */
        for (int i = 1; i < count; i++) {
                struct pbw_field x = f[i];
                int j = i - 1;

                while (j >= 0 && f[j].num > x.num) {
                        f[j + 1] = f[j];
                        j--;
                }
                f[j + 1] = x;
        }
        m = open_memstream(&out, &outlen);
        for (int i = 0; i < count; i++) {
                const struct pbw_schema *sub = NULL;

                for (const struct pbw_schema *s = schema; s && s->field; s++)
                        if (s->field == f[i].num && f[i].wt == PBW_LEN)
                                sub = s->sub;
                fprintf(m, "%u/%d=", f[i].num, f[i].wt);
                if (sub) {
                        char *c = pbw_canon(f[i].p, f[i].n, sub);

                        if (!c) {
                                fclose(m);
                                free(out);
                                free(f);
                                return NULL;
                        }
                        fprintf(m, "{%s}", c);
                        free(c);
                } else {
                        for (size_t j = 0; j < f[i].n; j++)
                                fprintf(m, "%02x", f[i].p[j]);
                }
                fputc(';', m);
        }
        fclose(m);
        free(f);
        return out;
}

/* The parts of pinlet's schema that protobuf-c re-encodes (and so may reorder). */
static const struct pbw_schema __attribute__((unused)) pbw_leaf[] = { { 0, NULL } };
static const struct pbw_schema __attribute__((unused)) pbw_image_spec[] = { { 0, NULL } };
static const struct pbw_schema __attribute__((unused))
pbw_sandbox_config[] = { { 1, pbw_leaf }, { 0, NULL } };
static const struct pbw_schema __attribute__((unused))
pbw_mount[] = { { 9, pbw_image_spec }, { 0, NULL } };
static const struct pbw_schema __attribute__((unused))
pbw_container_config[] = { { 1, pbw_leaf }, { 2, pbw_image_spec }, { 7, pbw_mount }, { 0, NULL } };
static const struct pbw_schema __attribute__((unused)) pbw_pull_request[] = {
        { 1, pbw_image_spec }, { 2, pbw_leaf }, { 3, pbw_sandbox_config }, { 0, NULL }
};
static const struct pbw_schema __attribute__((unused))
pbw_status_request[] = { { 1, pbw_image_spec }, { 0, NULL } };
static const struct pbw_schema __attribute__((unused))
pbw_create_request[] = { { 2, pbw_container_config }, { 3, pbw_sandbox_config }, { 0, NULL } };
