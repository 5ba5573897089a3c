/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The interceptors on arbitrary requests, with a fake registry step (no network), the real
 * resolver, cache and a memory-only pin store. Input: one control byte, then the request
 * bytes.
 *   bits 0-1: method (PullImage, ImageStatus, CreateContainer; 3 = CreateContainer)
 *   bits 2-3: mode (enforce, audit, off; 3 = enforce)
 *   bit 4:    on_failure open
 *   bits 5-7: the resolver's answer (0-3: a digest; 4..7: not found, unavailable,
 *             timeout, unauthorized)
 * Each request goes through the proxy's two steps: first with may_block false (the
 * completion-queue thread), then, when that answers PINLET_DEFER, with may_block true.
 * Checks: the call never crashes; only the first step defers, and its queue is NULL or a
 * lower-case registry host; a failure carries a "pinlet: " message; a NUL byte in a text
 * field fails (enforce) with INVALID_ARGUMENT; audit and off never fail a well-formed call
 * nor rewrite; a rewritten request decodes as the same kind with the same number of
 * slots, each slot either unchanged or pinned by digest.
 */
#include <ctype.h>
#include <grpc/status.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "config/config.h"
#include "intercept/intercept.h"
#include "intercept/rewrite.h"
#include "pins/pins.h"
#include "resolve/resolve.h"
#include "util/log.h"

#define CHECK(c)                                                                              \
        do {                                                                                  \
                if (!(c)) {                                                                   \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
                        abort();                                                              \
                }                                                                             \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int answer;

static int fake_resolve(void *ctx, const struct pinlet_ref *ref,
                        const struct pinlet_registry_auth *auth, int64_t deadline_ms,
                        struct pinlet_resolution *ret, struct pinlet_error **err)
{
        static const int fails[] = { PINLET_ENOTFOUND, PINLET_EUNAVAIL, PINLET_ETIMEOUT,
                                     PINLET_EUNAUTH };
        char *d = NULL;

        if (answer >= 4)
                return pinlet_error_set(err, fails[answer - 4], "fake failure");
        if (asprintf(&d, "sha256:%064x", answer) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        ret->digest = d;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const pinlet_intercept_fn fns[] = {
                pinlet_interceptor_pull_image,
                pinlet_interceptor_image_status,
                pinlet_interceptor_create_container,
                pinlet_interceptor_create_container,
        };
        static const enum pinlet_intercept_kind kinds[] = {
                PINLET_INTERCEPT_PULL_IMAGE,
                PINLET_INTERCEPT_IMAGE_STATUS,
                PINLET_INTERCEPT_CREATE_CONTAINER,
                PINLET_INTERCEPT_CREATE_CONTAINER,
        };
        static const enum pinlet_mode modes[] = { PINLET_MODE_ENFORCE, PINLET_MODE_AUDIT,
                                                  PINLET_MODE_OFF, PINLET_MODE_ENFORCE };
        static struct pinlet_config cfg;
        static struct pinlet_cache *cache;
        static struct pinlet_pins *pins;
        static struct pinlet_resolver *resolver;
        static struct pinlet_interceptor *ic;
        struct pinlet_call_info info = { .method = "/runtime.v1.X/Y", .deadline_ms = INT64_MAX };
        struct pinlet_intercept_result r;
        struct pinlet_intercept_request *in = NULL, *out = NULL;
        struct pinlet_error *derr = NULL;
        bool well_formed;
        int dk;
        unsigned ctl, m;

        if (!pins) {
                /* process-wide, like the daemon's; the pins accumulate across inputs */
                pinlet_log_setup(PINLET_LOG_ERROR, PINLET_LOG_TEXT); /* fail-open warns */
                CHECK(pinlet_config_init(&cfg) == 0);
                CHECK(pinlet_pins_open(NULL, 64, &pins, NULL) == 0);
        }
        if (size < 1)
                return 0;
        ctl = data[0];
        data++;
        size--;
        m = ctl & 3;
        cfg.mode = modes[(ctl >> 2) & 3];
        cfg.on_failure = ctl & 0x10 ? PINLET_FAIL_OPEN : PINLET_FAIL_CLOSED;
        answer = (int)(ctl >> 5);
        /* a fresh cache and resolver per input: they would otherwise repeat an earlier
         * input's answer (or its failing registry) */
        pinlet_interceptor_free(ic);
        pinlet_resolver_free(resolver);
        pinlet_cache_free(cache);
        {
                struct pinlet_cache_options co = { .ttl_ms = 1000, .stale_if_error_ms = 1000 };
                struct pinlet_resolver_options ro = { .registry_fn = fake_resolve,
                                                      .pins = pins,
                                                      .error_ttl_ms = 1000 };
                struct pinlet_interceptor_options io = { .cfg = &cfg, .pins = pins };

                CHECK(pinlet_cache_new(&co, &cache) == 0);
                ro.cache = cache;
                CHECK(pinlet_resolver_new(&ro, &resolver, NULL) == 0);
                io.resolver = resolver;
                CHECK(pinlet_interceptor_new(&io, &ic, NULL) == 0);
        }

        dk = pinlet_intercept_request_decode(kinds[m], data, size, cfg.max_message_size, &in,
                                             &derr);
        well_formed = dk == 0;
        pinlet_error_free(derr);

        /* the completion-queue step, then (deferred) the worker step */
        memset(&r, 0, sizeof(r));
        info.may_block = false;
        fns[m](ic, &info, data, size, &r);
        if (r.action == PINLET_DEFER) {
                CHECK(cfg.mode != PINLET_MODE_OFF && well_formed);
                for (const char *q = r.queue; q && *q; q++)
                        CHECK(!isupper((unsigned char)*q));
                free(r.queue);
                memset(&r, 0, sizeof(r));
                info.may_block = true;
                fns[m](ic, &info, data, size, &r);
                CHECK(r.action != PINLET_DEFER);
        }
        /* the records written after the forward, as the proxy does */
        if (r.after) {
                CHECK(r.action != PINLET_DEFER && !info.may_block);
                r.after(r.after_arg);
        }

        switch (r.action) {
        case PINLET_FORWARD_ORIGINAL:
                break;
        case PINLET_FAIL:
                CHECK(cfg.mode == PINLET_MODE_ENFORCE);
                CHECK(r.message && strncmp(r.message, "pinlet: ", 8) == 0);
                if (dk == PINLET_INTERCEPT_ENUL)
                        CHECK(r.status == GRPC_STATUS_INVALID_ARGUMENT &&
                              strstr(r.message, "contains a NUL byte"));
                free(r.message);
                break;
        case PINLET_FORWARD_REWRITTEN:
                CHECK(cfg.mode == PINLET_MODE_ENFORCE && well_formed);
                CHECK(pinlet_intercept_request_decode(kinds[m], r.data, r.len, cfg.max_message_size,
                                                      &out, NULL) == 0);
                CHECK(out->n_slots == in->n_slots);
                for (size_t i = 0; i < in->n_slots; i++) {
                        const char *a = in->slots[i].image, *b = out->slots[i].image;

                        CHECK(strcmp(a, b) == 0 || strstr(b, "@sha256:") != NULL);
                }
                pinlet_intercept_request_free(out);
                free(r.data);
                break;
        default:
                CHECK(!"unknown action");
        }
        /* off never decodes, so a malformed request goes through there too */
        if (cfg.mode == PINLET_MODE_OFF)
                CHECK(r.action == PINLET_FORWARD_ORIGINAL);
        pinlet_intercept_request_free(in);
        return 0;
}
