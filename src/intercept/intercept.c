/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CRI interceptors: decide, per image slot of a request, whether and to what digest
 * it is rewritten, and leave one audit record per decision. The behaviour is specified in
 * intercept.h; where a digest comes from is the resolver's (src/resolve); the byte-level
 * rewriting is rewrite.c's.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

#include "audit/audit.h"
#include "cache/cache.h"
#include "hosts/hosts.h"
#include "intercept/intercept.h"
#include "intercept/rewrite.h"
#include "lock/lock.h"
#include "metrics/metrics.h"
#include "pins/pins.h"
#include "policy/policy.h"
#include "registry/registry.h"
#include "resolve/resolve.h"
#include "util/log.h"
#include "util/ratelimit.h"
#include "util/str.h"
#include "util/time.h"
#include "verify/verify.h"

/* Time kept for forwarding the call itself: a quarter of what is left, at most this. */
#define FORWARD_MARGIN_MAX_MS 2000

/* handle_slot(): the slot needs what only a worker may do (a registry round trip, an
 * fsync'ed pin store write). */
#define SLOT_DEFER 1
/* record_pin(): the pin could not be recorded, the slot passes through (on_failure open). */
#define SLOT_UNPINNED 2

struct pinlet_interceptor {
        const struct pinlet_config *cfg;
        struct pinlet_resolver *resolver;
        struct pinlet_pins *pins;
        struct pinlet_audit *audit;
        struct pinlet_lock *lock;
        struct pinlet_metrics *metrics;
        struct pinlet_verify *verify;     /* NULL or disabled: no verifiers */
        struct pinlet_hosts *short_names; /* NULL: short names get docker.io */
        /* warnings that every call against a failing registry would repeat */
        struct pinlet_ratelimit fallback_log;
};

int pinlet_interceptor_new(const struct pinlet_interceptor_options *o,
                           struct pinlet_interceptor **ret, struct pinlet_error **err)
{
        struct pinlet_interceptor *ic;

        if (!o || !o->cfg || !o->resolver)
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "interceptor needs a configuration and a resolver");
        ic = calloc(1, sizeof(*ic));
        if (!ic)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        *ic = (struct pinlet_interceptor){
                .cfg = o->cfg,
                .resolver = o->resolver,
                .pins = o->pins,
                .audit = o->audit,
                .lock = o->lock,
                .metrics = o->metrics,
                .verify = o->verify,
                .short_names = o->short_names,
                .fallback_log = PINLET_RATELIMIT_INIT(10000, 5),
        };
        *ret = ic;
        return 0;
}

void pinlet_interceptor_free(struct pinlet_interceptor *ic)
{
        if (!ic)
                return;
        pthread_mutex_destroy(&ic->fallback_log.lock);
        free(ic);
}

const struct pinlet_config *pinlet_interceptor_config(const struct pinlet_interceptor *ic)
{
        return ic ? ic->cfg : NULL;
}

struct pinlet_pins *pinlet_interceptor_pins(const struct pinlet_interceptor *ic)
{
        return ic ? ic->pins : NULL;
}

struct pinlet_hosts *pinlet_interceptor_short_names(const struct pinlet_interceptor *ic)
{
        return ic ? ic->short_names : NULL;
}

int pinlet_interceptor_parse_image(struct pinlet_hosts *short_names, const char *image,
                                   struct pinlet_ref **ret, char **ret_reason,
                                   struct pinlet_error **err)
{
        _cleanup_ref_ struct pinlet_ref *ref = NULL;
        _cleanup_free_ char *short_name = NULL, *qualified = NULL, *reason = NULL;
        _cleanup_error_ struct pinlet_error *qerr = NULL;
        int r;

        *ret = NULL;
        *ret_reason = NULL;
        r = pinlet_ref_parse(image, &ref, err);
        if (r < 0)
                return r;
        if (!short_names || !(short_name = pinlet_ref_short_name(image))) {
                *ret = TAKE_PTR(ref);
                return 0;
        }
        r = pinlet_hosts_short_name(short_names, short_name, &qualified, &reason, &qerr);
        if (r == -ENOMEM)
                return pinlet_error_set(err, r, "out of memory");
        if (r < 0) {
                /* the runtime reads the same file and fails the same way */
                if (asprintf(ret_reason, "short name '%s': %s", short_name,
                             pinlet_error_message(qerr, r)) < 0)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                return PINLET_INTERCEPT_UNQUALIFIED;
        }
        if (r == 0) {
                *ret_reason = TAKE_PTR(reason);
                return PINLET_INTERCEPT_UNQUALIFIED;
        }
        r = pinlet_ref_requalify(ref, qualified, &qerr);
        if (r == -ENOMEM)
                return pinlet_error_set(err, r, "out of memory");
        if (r < 0) {
                /* containers/image refuses such an alias: so does the runtime */
                if (asprintf(ret_reason, "short name '%s': alias %s", short_name,
                             pinlet_error_message(qerr, r)) < 0)
                        return pinlet_error_set(err, -ENOMEM, "out of memory");
                return PINLET_INTERCEPT_UNQUALIFIED;
        }
        *ret = TAKE_PTR(ref);
        *ret_reason = TAKE_PTR(reason);
        return 0;
}

int pinlet_interceptor_status_for_error(int code)
{
        switch (code) {
        case PINLET_ENOTFOUND:
                return GRPC_STATUS_NOT_FOUND;
        case PINLET_EUNAUTH:
                return GRPC_STATUS_PERMISSION_DENIED;
        case PINLET_EUNAVAIL:
        case PINLET_ETIMEOUT:
        case PINLET_ETLS:
        case PINLET_EPROTO:
                return GRPC_STATUS_UNAVAILABLE;
        case PINLET_EINVAL:
        case PINLET_INTERCEPT_ENUL:
                return GRPC_STATUS_INVALID_ARGUMENT;
        default:
                return GRPC_STATUS_INTERNAL;
        }
}

/* ---- one intercepted call ---- */

/* An audit record waiting for the call's outcome; image borrows from the request. */
struct pending {
        const char *image;
        char *resolved, *previous, *error;
        char *endpoint;     /* source registry: the endpoint that answered */
        const char *source; /* static */
        const char *lock;   /* borrowed from the call's lock set */
        int64_t registry_ms;
        const char *decision;
        struct pinlet_verify_verdict verdict; /* the verifiers' results, owned */
};

struct call {
        struct pinlet_interceptor *ic; /* NULL in a call's records written later (after) */
        /* where records go: the daemon's, which outlive the interceptor's generation */
        struct pinlet_audit *audit;
        struct pinlet_metrics *metrics;
        struct pinlet_intercept_request *req;
        const char *method;         /* "PullImage" */
        const char *mode;           /* "enforce", "audit" */
        const char *namespace;      /* pod namespace, NULL when unknown or empty */
        char *pod;                  /* "ns/name/uid" for the pin store, NULL when unknown */
        int64_t deadline_ms;        /* for resolutions */
        int64_t verify_deadline_ms; /* for verifier runs: the call's, minus the margin; 0:
                                     * none (the per-verifier timeouts bound them) */
        char api[48];               /* "runtime.v1", from the call's method path */
        bool enforce;
        bool may_block;                   /* false: on the completion-queue thread */
        struct pinlet_lock_set *lock;     /* the lock set of the whole call, or NULL */
        struct pinlet_registry_auth auth; /* PullImage's AuthConfig, "" mapped to NULL */
        bool has_auth;

        /* a closed failure ends the call */
        int fail_status;
        char *fail_message;
        /* SLOT_DEFER: the worker queue the call goes to (owned), NULL: any */
        char *queue;

        struct pending *pending; /* audit records of this call, written at its end */
        size_t n_pending;
};

static const char *nonempty(const char *s)
{
        return s && *s ? s : NULL;
}

static int64_t resolve_deadline(const struct pinlet_config *cfg,
                                const struct pinlet_call_info *info)
{
        int64_t now = pinlet_now_ms();
        uint64_t timeout = cfg->resolve_timeout_ms;
        int64_t d;

        if (timeout > (uint64_t)(INT64_MAX - now))
                d = INT64_MAX;
        else
                d = now + (int64_t)timeout;
        if (info && info->deadline_ms > 0 && info->deadline_ms != INT64_MAX) {
                int64_t left = info->deadline_ms - now, margin = 0, call_d;

                if (left > 0)
                        margin =
                                left / 4 < FORWARD_MARGIN_MAX_MS ? left / 4 : FORWARD_MARGIN_MAX_MS;
                call_d = info->deadline_ms - margin;
                if (call_d < d)
                        d = call_d;
        }
        return d;
}

/* Verifier runs may take longer than a resolution (verifiers.timeout per verifier): they
 * are bounded by the call's deadline minus the forwarding margin, else by their own
 * timeouts only (0). */
static int64_t verify_deadline(const struct pinlet_call_info *info)
{
        int64_t now = pinlet_now_ms(), left, margin;

        if (!info || info->deadline_ms <= 0 || info->deadline_ms == INT64_MAX)
                return 0;
        left = info->deadline_ms - now;
        margin = left > 0 ? (left / 4 < FORWARD_MARGIN_MAX_MS ? left / 4 : FORWARD_MARGIN_MAX_MS)
                          : 0;
        return info->deadline_ms - margin;
}

/* "/runtime.v1.RuntimeService/CreateContainer" -> "runtime.v1": the API version the
 * client speaks, for the runtime calls pinlet makes on its behalf */
static void method_api(const struct pinlet_call_info *info, char *buf, size_t size)
{
        const char *m = info && info->method ? info->method : NULL;
        const char *svc = m ? strstr(m, ".RuntimeService/") : NULL;

        if (!svc && m)
                svc = strstr(m, ".ImageService/");
        if (m && *m == '/' && svc && (size_t)(svc - m - 1) < size) {
                memcpy(buf, m + 1, (size_t)(svc - m - 1));
                buf[svc - m - 1] = 0;
        } else {
                snprintf(buf, size, "runtime.v1");
        }
}

static void write_record(const struct call *c, const struct pending *p)
{
        const struct pinlet_intercept_request *req = c->req;
        size_t nv = p->verdict.n_results;
        struct pinlet_audit_verifier vs[nv ? nv : 1];

        for (size_t i = 0; i < nv; i++)
                vs[i] = (struct pinlet_audit_verifier){
                        .name = p->verdict.results[i].name,
                        .allow = p->verdict.results[i].allow,
                        .reason = p->verdict.results[i].reason,
                        .ms = p->verdict.results[i].ms,
                };
        struct pinlet_audit_record rec = {
                .method = c->method,
                .pod_namespace = req ? req->pod_namespace : NULL,
                .pod_name = req ? req->pod_name : NULL,
                .pod_uid = req ? req->pod_uid : NULL,
                .container = req ? req->container_name : NULL,
                .image = p->image,
                .resolved = p->resolved,
                .previous = p->previous,
                .source = p->source,
                .lock = p->lock,
                .endpoint = p->endpoint,
                .registry_ms = p->registry_ms,
                .decision = p->decision,
                .mode = c->mode,
                .error = p->error,
                .verifiers = nv ? vs : NULL,
                .n_verifiers = nv,
        };

        (void)pinlet_audit_write(c->audit, &rec);
        /* pinlet_decisions_total counts exactly the audit records */
        (void)pinlet_metrics_decision(c->metrics, rec.method, rec.decision, rec.source);
}

static void pending_done(struct pending *p)
{
        pinlet_verify_verdict_done(&p->verdict);
        free(p->resolved);
        free(p->previous);
        free(p->error);
        free(p->endpoint);
}

/* Drops the records of a call that is handed to a worker: the worker decides again. */
static void discard_audit(struct call *c)
{
        for (size_t i = 0; i < c->n_pending; i++)
                pending_done(&c->pending[i]);
        free(c->pending);
        c->pending = NULL;
        c->n_pending = 0;
}

/*
 * Records a decision. Records are held until the call's outcome is known (flush_audit):
 * when one slot of a CreateContainer fails closed, the others were never substituted,
 * so only the rejection is written. Without memory the record is written at once.
 */
static void audit(struct call *c, const char *image, const char *resolved, const char *previous,
                  const struct pinlet_resolve_answer *a, const char *decision, const char *error)
{
        struct pending p = {
                .image = image,
                .source = a ? pinlet_resolve_source_to_string(a->source) : NULL,
                .lock = a && a->source == PINLET_SOURCE_LOCK ? a->lock_file : NULL,
                .registry_ms = a ? a->registry_ms : -1,
                .decision = decision,
        };
        /* only a registry answer names the endpoint that answered (a cached one does not
         * say which mirror it came from) */
        const char *endpoint = a && a->source == PINLET_SOURCE_REGISTRY ? a->endpoint : NULL;
        struct pending *grown;

        if (!c->audit)
                return;
        p.resolved = resolved ? strdup(resolved) : NULL;
        p.previous = previous ? strdup(previous) : NULL;
        p.error = error ? strdup(error) : NULL;
        p.endpoint = endpoint ? strdup(endpoint) : NULL;
        grown = reallocarray(c->pending, c->n_pending + 1, sizeof(*grown));
        if (!grown || (resolved && !p.resolved) || (previous && !p.previous) ||
            (error && !p.error) || (endpoint && !p.endpoint)) {
                struct pending direct = p;

                direct.resolved = (char *)resolved;
                direct.previous = (char *)previous;
                direct.error = (char *)error;
                direct.endpoint = (char *)endpoint;
                write_record(c, &direct);
                pending_done(&p);
                if (grown)
                        c->pending = grown;
                return;
        }
        c->pending = grown;
        c->pending[c->n_pending++] = p;
}

static void flush_audit(struct call *c, bool failed)
{
        for (size_t i = 0; i < c->n_pending; i++) {
                if (!failed || streq_ptr(c->pending[i].decision, PINLET_AUDIT_REJECTED))
                        write_record(c, &c->pending[i]);
                pending_done(&c->pending[i]);
        }
        free(c->pending);
        c->pending = NULL;
        c->n_pending = 0;
}

/* A call's records, written once the proxy has forwarded the call (or sent its failure):
 * what the records borrow (the request, the lock set) goes with them. */
struct later {
        struct call c; /* audit, metrics, method, mode, req (owned), lock (a reference) */
        bool failed;
};

static void write_later(void *arg)
{
        struct later *l = arg;

        flush_audit(&l->c, l->failed);
        pinlet_intercept_request_free(l->c.req);
        pinlet_lock_set_unref(l->c.lock);
        free(l);
}

/*
 * On the completion-queue thread the records wait for the forward: formatting and writing
 * them (a JSON line and a write(2), about as much CPU as the rest of the decision) then
 * overlaps with the runtime's work on the call instead of adding to its latency. On a
 * worker, or without memory, they are written now. Takes *req and the lock reference when
 * it defers them.
 */
static void flush_audit_after(struct call *c, struct pinlet_intercept_request **req,
                              struct pinlet_intercept_result *ret)
{
        bool failed = ret->action == PINLET_FAIL;
        struct later *l;

        if (c->may_block || c->n_pending == 0 || !(l = malloc(sizeof(*l)))) {
                flush_audit(c, failed);
                return;
        }
        *l = (struct later){ .c = *c, .failed = failed };
        l->c.ic = NULL;
        l->c.pod = l->c.fail_message = l->c.queue = NULL; /* the call frees its own */
        l->c.req = TAKE_PTR(*req);
        c->lock = NULL;
        c->pending = NULL;
        c->n_pending = 0;
        ret->after = write_later;
        ret->after_arg = l;
}

/* A PullImage passed through unpinned: the runtime pulls whatever the tag is now, which
 * need not be the pinned digest. Drop the pin so CreateContainer resolves the tag (or
 * passes it through) instead of running an image that was not what was pulled. */
static void forget_pin(struct call *c, const char *key)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        int r = pinlet_pins_forget(c->ic->pins, key, &err);

        if (r < 0)
                log_warn("%s: forgetting the pin of %s: %s", c->method, key,
                         pinlet_error_message(err, r));
        else if (r > 0)
                log_warn("%s: pin of %s forgotten: the pull went through unpinned", c->method, key);
}

static void fail_call(struct call *c, int code, const char *image, const char *registry,
                      const struct pinlet_error *err)
{
        const char *cause = pinlet_error_message(err, code);
        _cleanup_free_ char *named = NULL;
        int r;

        c->fail_status = pinlet_interceptor_status_for_error(code);
        /* The registry client's messages already name the registry ("…: registry R: …");
         * say it once. */
        if (asprintf(&named, "registry %s", registry) >= 0 && strstr(cause, named))
                r = asprintf(&c->fail_message, "pinlet: cannot resolve %s: %s", image, cause);
        else
                r = asprintf(&c->fail_message, "pinlet: cannot resolve %s (registry %s): %s", image,
                             registry, cause);
        if (r < 0)
                c->fail_message = NULL;
}

static void log_fallback(struct call *c, const char *image, const struct pinlet_resolve_answer *a)
{
        unsigned dropped = 0;

        if (!pinlet_ratelimit_allow(&c->ic->fallback_log, &dropped))
                return;
        log_warn("%s: %s served from the %s (registry %s failing: %s)%s", c->method, image,
                 a->source == PINLET_SOURCE_PIN ? "pin store" : "expired cache entry",
                 a->endpoint ? a->endpoint : "?", pinlet_error_message(a->err, PINLET_EUNAVAIL),
                 dropped ? " [similar messages suppressed]" : "");
}

/* The resolution failed: pass the slot through or fail the call, per mode and policy.
 * Returns 0, -1 (call fails) or SLOT_DEFER (forgetting the pin needs a worker). */
static int resolution_failed(struct call *c, const struct pinlet_ref *ref, const char *image,
                             const char *key, int code, struct pinlet_resolve_answer *a,
                             const char *fallback)
{
        _cleanup_free_ char *why = NULL;
        const char *msg = pinlet_error_message(a->err, code);
        enum pinlet_intercept_kind kind = c->req->kind;
        bool forget = kind == PINLET_INTERCEPT_PULL_IMAGE && c->enforce && c->ic->pins;

        /* A short name the runtime would look up elsewhere too (fallback: why) when this
         * registry has no answer: what it pulls is not pinlet's to say. */
        if (fallback && asprintf(&why, "%s: %s", fallback, msg) >= 0)
                msg = why;
        /* A registry registries.conf blocks is the runtime's to refuse: the reference goes
         * on as written, whatever on_failure says. */
        if (fallback || code == PINLET_REGISTRY_EBLOCKED || kind == PINLET_INTERCEPT_IMAGE_STATUS ||
            !c->enforce || pinlet_policy_on_failure(c->ic->cfg, ref->domain) == PINLET_FAIL_OPEN) {
                if (forget && !c->may_block)
                        return SLOT_DEFER; /* an fsync'ed write */
                if (kind != PINLET_INTERCEPT_IMAGE_STATUS && c->enforce && !fallback)
                        log_warn("%s: %s forwarded unpinned (on_failure: open): %s", c->method,
                                 image, msg);
                else
                        log_debug("%s: %s forwarded unpinned: %s", c->method, image, msg);
                if (forget)
                        forget_pin(c, key);
                a->source = PINLET_SOURCE_NONE;
                audit(c, image, NULL, NULL, a, PINLET_AUDIT_PASSED_THROUGH, msg);
                return 0;
        }
        log_warn("%s: %s rejected (on_failure: closed): %s", c->method, image, msg);
        a->source = PINLET_SOURCE_NONE;
        audit(c, image, NULL, NULL, a, PINLET_AUDIT_REJECTED, msg);
        fail_call(c, code, image, ref->domain, a->err);
        return -1;
}

/*
 * A PullImage in enforce mode records the pin before the request is rewritten: a pin that
 * cannot be recorded must never leave an older one behind. Returns 0 (recorded; *previous
 * set when the pin moved), SLOT_UNPINNED (not recorded, and the tag's pin forgotten: the
 * slot passes through, on_failure open), -1 (the call fails: closed) or SLOT_DEFER (a
 * write that may fsync, off the completion-queue thread).
 */
static int record_pin(struct call *c, const struct pinlet_ref *ref, const char *image,
                      const char *key, struct pinlet_resolve_answer *a, char **previous)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_free_ char *pinned = NULL;
        const char *state_dir = c->ic->cfg->state_dir;
        const char *msg;
        int r;

        if (!c->may_block) {
                /* The same digest again only updates last_used: done here when the store is
                 * free at once. A new or moved pin is fsync'ed: a worker's job. */
                if (pinlet_pins_lookup(c->ic->pins, key, &pinned) < 0 ||
                    !streq_ptr(pinned, a->digest) ||
                    pinlet_pins_touch_nowait(c->ic->pins, key, c->pod) < 0)
                        return SLOT_DEFER;
                return 0;
        }
        r = pinlet_pins_record(c->ic->pins, key, a->digest, c->pod, previous, &err);
        if (r >= 0)
                return 0;

        msg = pinlet_error_message(err, r);
        if (pinlet_policy_on_failure(c->ic->cfg, ref->domain) == PINLET_FAIL_OPEN) {
                _cleanup_free_ char *why = NULL;

                log_warn("%s: %s forwarded unpinned: cannot record its pin in %s: %s", c->method,
                         image, state_dir, msg);
                forget_pin(c, key);
                if (asprintf(&why, "cannot record the pin in %s: %s", state_dir, msg) < 0)
                        why = NULL;
                a->source = PINLET_SOURCE_NONE;
                audit(c, image, NULL, NULL, a, PINLET_AUDIT_PASSED_THROUGH, why ? why : msg);
                return SLOT_UNPINNED;
        }
        log_warn("%s: %s rejected: cannot record its pin in %s: %s", c->method, image, state_dir,
                 msg);
        c->fail_status = GRPC_STATUS_UNAVAILABLE;
        if (asprintf(&c->fail_message, "pinlet: cannot record the pin of %s in %s: %s", image,
                     state_dir, msg) < 0)
                c->fail_message = NULL;
        a->source = PINLET_SOURCE_NONE;
        audit(c, image, NULL, NULL, a, PINLET_AUDIT_REJECTED, msg);
        return -1;
}

/* lock.require for an in-scope tag (key; NULL: a short name that names no one registry,
 * never in the lock) of a PullImage or CreateContainer: 0 to go on (locked; require off;
 * audit, which records "unlocked"), -1 when the call fails. */
static int check_lock_required(struct call *c, const char *image, const char *key)
{
        enum pinlet_lock_require req = c->ic->cfg->lock_require;
        const char *digest, *file;

        if (req == PINLET_LOCK_REQUIRE_OFF || c->req->kind == PINLET_INTERCEPT_IMAGE_STATUS)
                return 0;
        if (c->lock && key && pinlet_lock_set_lookup(c->lock, key, &digest, &file) == 0)
                return 0;
        if (req == PINLET_LOCK_REQUIRE_ENFORCE && c->enforce) {
                log_warn("%s: %s rejected: not in the lock (lock.require: enforce)", c->method,
                         image);
                c->fail_status = GRPC_STATUS_PERMISSION_DENIED;
                if (asprintf(&c->fail_message,
                             "pinlet: %s is not in the lock (lock.require: enforce)", image) < 0)
                        c->fail_message = NULL;
                audit(c, image, NULL, NULL, NULL, PINLET_AUDIT_REJECTED,
                      "not in the lock (lock.require: enforce)");
                return -1;
        }
        audit(c, image, NULL, NULL, NULL, PINLET_AUDIT_UNLOCKED,
              req == PINLET_LOCK_REQUIRE_ENFORCE ? "not in the lock (lock.require: enforce)"
                                                 : "not in the lock (lock.require: audit)");
        return 0;
}

/* A kubelet CreateContainer names the image ID it got from the pull: lock.require checks
 * what the user wrote (user_specified_image) instead. */
static int check_lock_required_for_id(struct call *c, const char *user_specified)
{
        _cleanup_ref_ struct pinlet_ref *ref = NULL;
        _cleanup_free_ char *key = NULL, *name = NULL;

        _cleanup_free_ char *why = NULL;
        int r;

        if (c->ic->cfg->lock_require == PINLET_LOCK_REQUIRE_OFF ||
            c->req->kind != PINLET_INTERCEPT_CREATE_CONTAINER || !user_specified ||
            !*user_specified)
                return 0;
        r = pinlet_interceptor_parse_image(c->ic->short_names, user_specified, &ref, &why, NULL);
        if (r == PINLET_INTERCEPT_UNQUALIFIED && !strchr(user_specified, '@') &&
            pinlet_policy_in_scope(c->ic->cfg, NULL, NULL, c->namespace))
                return check_lock_required(c, user_specified, NULL);
        if (r != 0 || ref->digest || !ref->tag)
                return 0;
        key = pinlet_ref_key(ref);
        name = pinlet_ref_name(ref);
        if (!key || !name || !pinlet_policy_in_scope(c->ic->cfg, ref->domain, name, c->namespace))
                return 0;
        return check_lock_required(c, user_specified, key);
}

/* ---- verifiers (verify.h) ---- */

static bool verifying(const struct call *c)
{
        return pinlet_verify_enabled(c->ic->verify) &&
               c->req->kind != PINLET_INTERCEPT_IMAGE_STATUS;
}

/* audit() that hands the verifiers' results (moved out of *vd) to the record. */
static void audit_verdict(struct call *c, const char *image, const char *resolved,
                          const struct pinlet_resolve_answer *a, const char *decision,
                          const char *error, struct pinlet_verify_verdict *vd)
{
        size_t n = c->n_pending;

        audit(c, image, resolved, NULL, a, decision, error);
        if (vd && c->n_pending == n + 1) {
                c->pending[n].verdict = *vd;
                *vd = (struct pinlet_verify_verdict){ 0 };
        }
}

/* Nothing could be verified (no digest, no descriptor, the directory unreadable):
 * verifiers.on_failure decides. Returns 0 or -1 (the call fails). */
static int verify_failed(struct call *c, const char *image, const char *what, int code,
                         const char *cause)
{
        if (c->ic->cfg->verifiers_on_failure == PINLET_FAIL_OPEN) {
                log_warn("%s: cannot verify %s: %s; passed (verifiers.on_failure: open)", c->method,
                         what, cause);
                return 0;
        }
        if (!c->enforce) {
                log_warn("%s: cannot verify %s: %s (would reject)", c->method, what, cause);
                audit(c, image, NULL, NULL, NULL, PINLET_AUDIT_WOULD_REJECT, cause);
                return 0;
        }
        log_warn("%s: %s rejected: cannot verify: %s (verifiers.on_failure: closed)", c->method,
                 what, cause);
        c->fail_status = code == PINLET_EINVAL || code == -ENOMEM ? GRPC_STATUS_INTERNAL
                                                                  : GRPC_STATUS_UNAVAILABLE;
        if (asprintf(&c->fail_message, "pinlet: cannot verify %s: %s", what, cause) < 0)
                c->fail_message = NULL;
        audit(c, image, NULL, NULL, NULL, PINLET_AUDIT_REJECTED, cause);
        return -1;
}

/*
 * Verifies digest for name (the -name argument: the image as requested). ref: its
 * repository, for the descriptor; image: the slot's image, for records. Returns 0 to go
 * on (*vd holds the verifiers' results when they ran; in mode audit a deny is recorded
 * would_reject), -1 when the call fails, SLOT_DEFER when the verifiers must run.
 */
static int verify_digest(struct call *c, const struct pinlet_ref *ref, const char *name,
                         const char *image, const char *digest, struct pinlet_verify_verdict *vd)
{
        struct pinlet_interceptor *ic = c->ic;
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_(pinlet_verify_descriptor_done) struct pinlet_verify_descriptor desc = { 0 };
        _cleanup_free_ char *what = NULL, *repo = ref ? pinlet_ref_name(ref) : NULL;
        int r;

        if (!verifying(c))
                return 0;
        if (asprintf(&what, "%s@%s", repo ? repo : name, digest) < 0)
                what = NULL;
        if (pinlet_verify_lookup(ic->verify, name, digest, vd) == 0) {
                if (!c->may_block) {
                        free(c->queue);
                        c->queue = strdup(PINLET_VERIFY_QUEUE);
                        return SLOT_DEFER;
                }
                if (!ref)
                        return verify_failed(c, image, strempty(what), PINLET_ENOTFOUND,
                                             "no repository to fetch the descriptor from");
                r = pinlet_verify_describe(ic->verify, ref, digest, c->has_auth ? &c->auth : NULL,
                                           c->deadline_ms, &desc, &err);
                if (r >= 0)
                        r = pinlet_verify_run(ic->verify, name, &desc, c->verify_deadline_ms, vd,
                                              &err);
                if (r < 0)
                        return verify_failed(c, image, strempty(what), r,
                                             pinlet_error_message(err, r));
        }
        if (vd->allow)
                return 0;
        if (!c->enforce) {
                log_info("%s: %s %s (mode audit: forwarded)", c->method, strempty(what),
                         strempty(vd->message));
                audit_verdict(c, image, NULL, NULL, PINLET_AUDIT_WOULD_REJECT, vd->message, vd);
                return 0;
        }
        log_warn("%s: %s %s", c->method, strempty(what), strempty(vd->message));
        c->fail_status = GRPC_STATUS_PERMISSION_DENIED;
        if (asprintf(&c->fail_message, "pinlet: %s %s", strempty(what), strempty(vd->message)) < 0)
                c->fail_message = NULL;
        audit_verdict(c, image, NULL, NULL, PINLET_AUDIT_REJECTED, vd->message, vd);
        return -1;
}

/* A slot that names a digest itself (reference by digest): verified when in scope. */
static int verify_reference(struct call *c, const struct pinlet_ref *ref, const char *image)
{
        _cleanup_(pinlet_verify_verdict_done) struct pinlet_verify_verdict vd = { 0 };
        _cleanup_free_ char *name = NULL;
        int r;

        if (!verifying(c) || !ref->digest)
                return 0;
        name = pinlet_ref_name(ref);
        if (!name)
                return verify_failed(c, image, image, -ENOMEM, "out of memory");
        if (!pinlet_policy_in_scope(c->ic->cfg, ref->domain, name, c->namespace))
                return 0;
        r = verify_digest(c, ref, image, image, ref->digest, &vd);
        if (r == 0 && vd.allow && (vd.n_results > 0 || vd.cached))
                audit_verdict(c, image, NULL, NULL, PINLET_AUDIT_VERIFIED, NULL, &vd);
        return r;
}

/*
 * A CreateContainer naming an image ID (kubelet): the manifest digest is the
 * user_specified_image's own, else its tag's pin, else what the runtime's ImageStatus
 * lists for the ID. -name is the user_specified_image.
 */
static int verify_image_id(struct call *c, const char *image, const char *user_specified)
{
        struct pinlet_interceptor *ic = c->ic;
        _cleanup_(pinlet_verify_verdict_done) struct pinlet_verify_verdict vd = { 0 };
        _cleanup_ref_ struct pinlet_ref *ref = NULL;
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_free_ char *name = NULL, *key = NULL, *digest = NULL, *why = NULL;
        const char *endpoint =
                ic->cfg->image_endpoint ? ic->cfg->image_endpoint : ic->cfg->runtime_endpoint;
        int r;

        if (!verifying(c) || c->req->kind != PINLET_INTERCEPT_CREATE_CONTAINER)
                return 0;
        if (user_specified && *user_specified &&
            pinlet_interceptor_parse_image(ic->short_names, user_specified, &ref, &why, NULL) ==
                    0) {
                name = pinlet_ref_name(ref);
                key = pinlet_ref_key(ref);
                if (!name || !key)
                        return verify_failed(c, image, image, -ENOMEM, "out of memory");
                if (!pinlet_policy_in_scope(ic->cfg, ref->domain, name, c->namespace))
                        return 0;
                if (ref->digest)
                        digest = strdup(ref->digest);
                else if (ic->pins)
                        (void)pinlet_pins_lookup(ic->pins, key, &digest);
        }
        if (!digest) {
                if (!c->may_block) {
                        free(c->queue);
                        c->queue = strdup(PINLET_VERIFY_QUEUE);
                        return SLOT_DEFER;
                }
                r = pinlet_verify_runtime_digest(endpoint, c->api, image, name,
                                                 ic->cfg->max_message_size, c->deadline_ms, &digest,
                                                 &err);
                if (r <= 0)
                        return verify_failed(c, image, image, r < 0 ? r : PINLET_ENOTFOUND,
                                             r < 0 ? pinlet_error_message(err, r)
                                                   : "the runtime lists no manifest digest for "
                                                     "the image");
        }
        r = verify_digest(c, ref, user_specified && *user_specified ? user_specified : image, image,
                          digest, &vd);
        if (r == 0 && vd.allow && (vd.n_results > 0 || vd.cached))
                audit_verdict(c, image, NULL, NULL, PINLET_AUDIT_VERIFIED, NULL, &vd);
        return r;
}

/*
 * A short name the runtime would not resolve to one registry (why): never resolved, the
 * slot goes on as written. Only namespace scope can apply; lock.require still holds (it
 * cannot be in the lock), and a digest it carries still needs the verifiers' verdict,
 * which cannot be had without a repository. Returns 0 or -1 (the call fails).
 */
static int unqualified(struct call *c, const char *image, const char *why)
{
        if (!pinlet_policy_in_scope(c->ic->cfg, NULL, NULL, c->namespace)) {
                log_debug("%s: %s is out of scope", c->method, image);
                return 0;
        }
        if (strchr(image, '@'))
                return verifying(c) ? verify_failed(c, image, image, PINLET_EINVAL, why) : 0;
        if (check_lock_required(c, image, NULL) < 0)
                return -1;
        log_debug("%s: %s forwarded unresolved: %s", c->method, image, why);
        audit(c, image, NULL, NULL, NULL, PINLET_AUDIT_PASSED_THROUGH, why);
        return 0;
}

static enum pinlet_resolve_purpose purpose_of(enum pinlet_intercept_kind kind)
{
        switch (kind) {
        case PINLET_INTERCEPT_PULL_IMAGE:
                return PINLET_RESOLVE_PULL;
        case PINLET_INTERCEPT_CREATE_CONTAINER:
                return PINLET_RESOLVE_CREATE;
        default:
                return PINLET_RESOLVE_STATUS;
        }
}

/*
 * Decides one slot. Returns 0 (slot done: rewritten, left alone or passed through), -1
 * when the call must fail (c->fail_* set), or SLOT_DEFER (c->queue set) when the decision
 * needs a worker.
 */
static int handle_slot(struct call *c, size_t index)
{
        struct pinlet_interceptor *ic = c->ic;
        struct pinlet_intercept_slot *slot = &c->req->slots[index];
        const char *image = slot->image;
        enum pinlet_intercept_kind kind = c->req->kind;
        _cleanup_ref_ struct pinlet_ref *ref = NULL;
        _cleanup_error_ struct pinlet_error *perr = NULL;
        _cleanup_free_ char *key = NULL, *name = NULL, *resolved = NULL, *previous = NULL,
                            *fallback = NULL;
        _cleanup_(pinlet_resolve_answer_done) struct pinlet_resolve_answer a = { .registry_ms =
                                                                                         -1 };
        _cleanup_(pinlet_verify_verdict_done) struct pinlet_verify_verdict vd = { 0 };
        int r;

        if (!image || !*image)
                return 0;
        if (pinlet_ref_is_image_id(image)) {
                r = check_lock_required_for_id(c, slot->user_specified);
                if (r != 0)
                        return r;
                return verify_image_id(c, image, slot->user_specified);
        }
        r = pinlet_interceptor_parse_image(ic->short_names, image, &ref, &fallback, &perr);
        if (r < 0) {
                /* the runtime owns the grammar and will answer with its own error */
                log_debug("%s: %s: not a reference, forwarded: %s", c->method, slot->where,
                          pinlet_error_message(perr, r));
                audit(c, image, NULL, NULL, NULL, PINLET_AUDIT_PASSED_THROUGH,
                      pinlet_error_message(perr, r));
                return 0;
        }
        if (r == PINLET_INTERCEPT_UNQUALIFIED)
                return unqualified(c, image, fallback);
        if (ref->digest || !ref->tag) {
                log_debug("%s: %s already carries a digest", c->method, image);
                return verify_reference(c, ref, image);
        }
        key = pinlet_ref_key(ref);
        name = pinlet_ref_name(ref);
        if (!key || !name)
                goto oom;
        if (!pinlet_policy_in_scope(ic->cfg, ref->domain, name, c->namespace)) {
                log_debug("%s: %s is out of scope", c->method, image);
                return 0;
        }
        if (check_lock_required(c, image, key) < 0)
                return -1;

        r = pinlet_resolver_resolve(ic->resolver,
                                    &(const struct pinlet_resolve_query){
                                            .ref = ref,
                                            .key = key,
                                            .purpose = purpose_of(kind),
                                            .auth = c->has_auth ? &c->auth : NULL,
                                            .deadline_ms = c->deadline_ms,
                                            .may_block = c->may_block,
                                            .lock = c->lock,
                                    },
                                    &a);
        if (r == PINLET_RESOLVE_DEFER) {
                c->queue = TAKE_PTR(a.queue);
                return SLOT_DEFER;
        }
        if (r < 0) {
                r = resolution_failed(c, ref, image, key, r, &a, fallback);
                if (r == SLOT_DEFER) /* any worker: the registry is not asked */
                        return SLOT_DEFER;
                return r;
        }
        if (a.fallback)
                log_fallback(c, image, &a);

        resolved = pinlet_ref_with_digest(ref, a.digest);
        if (!resolved)
                goto oom;
        /* before the pin is recorded: a denied image is never pinned */
        r = verify_digest(c, ref, image, image, a.digest, &vd);
        if (r != 0)
                return r;
        if (!c->enforce) {
                audit_verdict(c, image, resolved, &a, PINLET_AUDIT_WOULD_SUBSTITUTE,
                              a.err ? pinlet_error_message(a.err, 0) : NULL, &vd);
                return 0;
        }
        if (ic->pins && kind == PINLET_INTERCEPT_PULL_IMAGE) {
                r = record_pin(c, ref, image, key, &a, &previous);
                if (r == SLOT_UNPINNED)
                        return 0;
                if (r != 0)
                        return r;
        } else if (ic->pins && a.source == PINLET_SOURCE_PIN) {
                /* last_used only: on the completion-queue thread it is skipped rather than
                 * waited for while another change holds the store */
                if (c->may_block)
                        (void)pinlet_pins_touch(ic->pins, key, c->pod, NULL);
                else
                        (void)pinlet_pins_touch_nowait(ic->pins, key, c->pod);
        }
        r = pinlet_intercept_request_set_image(c->req, index, resolved, &perr);
        if (r < 0)
                goto internal;

        log_debug("%s: %s -> %s (%s)", c->method, image, resolved,
                  pinlet_resolve_source_to_string(a.source));
        audit_verdict(c, image, resolved, &a, PINLET_AUDIT_SUBSTITUTED,
                      a.err ? pinlet_error_message(a.err, 0) : NULL, &vd);
        if (previous && !streq_ptr(previous, a.digest)) {
                log_info("%s: tag %s moved from %s to %s", c->method, key, previous, a.digest);
                audit(c, image, resolved, previous, &a, PINLET_AUDIT_TAG_MOVED, NULL);
        }
        return 0;

oom:
        r = -ENOMEM;
internal:
        c->fail_status = GRPC_STATUS_INTERNAL;
        if (asprintf(&c->fail_message, "pinlet: rewriting %s: %s", image,
                     pinlet_error_message(perr, r)) < 0)
                c->fail_message = NULL;
        /* the call fails: that decision needs its record too */
        audit(c, image, NULL, NULL, NULL, PINLET_AUDIT_REJECTED, pinlet_error_message(perr, r));
        return -1;
}

static void set_fail(struct pinlet_intercept_result *ret, int status, char *message)
{
        ret->action = PINLET_FAIL;
        ret->status = status;
        ret->message = message ? message : strdup("pinlet: internal error");
}

/* A request pinlet cannot decode. enforce: the call fails (INVALID_ARGUMENT for malformed
 * input or a NUL byte). audit: forwarded as received; a NUL byte (a request that means
 * something else to pinlet than to the runtime) is recorded. */
static void undecodable(struct pinlet_interceptor *ic, enum pinlet_intercept_kind kind, int r,
                        const struct pinlet_error *err, struct pinlet_intercept_result *ret)
{
        const char *method = pinlet_intercept_kind_method(kind);
        const char *msg = pinlet_error_message(err, r);
        char *status_msg = NULL;

        if (r == PINLET_INTERCEPT_ENUL) {
                struct call c = {
                        .ic = ic,
                        .audit = ic->audit,
                        .metrics = ic->metrics,
                        .method = method,
                        .mode = pinlet_mode_to_string(ic->cfg->mode),
                };

                log_warn("%s: %s", method, msg);
                audit(&c, NULL, NULL, NULL, NULL,
                      ic->cfg->mode == PINLET_MODE_ENFORCE ? PINLET_AUDIT_REJECTED
                                                           : PINLET_AUDIT_PASSED_THROUGH,
                      msg);
                flush_audit(&c, false);
        } else if (ic->cfg->mode != PINLET_MODE_ENFORCE) {
                log_warn("%s: forwarded undecoded: %s", method, msg);
        }
        if (ic->cfg->mode != PINLET_MODE_ENFORCE)
                return;
        if (asprintf(&status_msg, "pinlet: %s", msg) < 0)
                status_msg = NULL;
        /* over max_message_size is what gRPC itself answers RESOURCE_EXHAUSTED for */
        set_fail(ret,
                 r == -ENOMEM || r == PINLET_E2BIG ? GRPC_STATUS_RESOURCE_EXHAUSTED
                                                   : GRPC_STATUS_INVALID_ARGUMENT,
                 status_msg);
}

static void intercept(struct pinlet_interceptor *ic, enum pinlet_intercept_kind kind,
                      const struct pinlet_call_info *info, const uint8_t *request, size_t len,
                      struct pinlet_intercept_result *ret)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_intercept_request_ struct pinlet_intercept_request *req = NULL;
        struct call c = { 0 };
        uint8_t *out = NULL;
        size_t out_len = 0;
        int r;

        *ret = (struct pinlet_intercept_result){ .action = PINLET_FORWARD_ORIGINAL };
        if (!ic || ic->cfg->mode == PINLET_MODE_OFF)
                return;

        r = pinlet_intercept_request_decode(kind, request, len, ic->cfg->max_message_size, &req,
                                            &err);
        if (r < 0) {
                undecodable(ic, kind, r, err, ret);
                return;
        }

        c = (struct call){
                .ic = ic,
                .audit = ic->audit,
                .metrics = ic->metrics,
                .req = req,
                .method = pinlet_intercept_kind_method(kind),
                .mode = pinlet_mode_to_string(ic->cfg->mode),
                .namespace = nonempty(req->pod_namespace),
                .enforce = ic->cfg->mode == PINLET_MODE_ENFORCE,
                .may_block = !info || info->may_block,
                .deadline_ms = resolve_deadline(ic->cfg, info),
                .lock = ic->lock ? pinlet_lock_get(ic->lock) : NULL,
                .verify_deadline_ms = verify_deadline(info),
        };
        method_api(info, c.api, sizeof(c.api));
        if (nonempty(req->pod_namespace) || nonempty(req->pod_name)) {
                c.pod = pinlet_strjoin(strempty(req->pod_namespace), "/", strempty(req->pod_name),
                                       "/", strempty(req->pod_uid));
        }
        if (req->auth) {
                c.auth = (struct pinlet_registry_auth){
                        .server_address = nonempty(req->auth->server_address),
                        .username = nonempty(req->auth->username),
                        .password = nonempty(req->auth->password),
                        .auth = nonempty(req->auth->auth),
                        .identity_token = nonempty(req->auth->identity_token),
                        .registry_token = nonempty(req->auth->registry_token),
                };
                c.has_auth = true;
        }

        for (size_t i = 0; i < req->n_slots; i++) {
                r = handle_slot(&c, i);
                if (r == SLOT_DEFER) {
                        /* a worker decides the whole call again; nothing was written */
                        discard_audit(&c);
                        ret->action = PINLET_DEFER;
                        ret->queue = TAKE_PTR(c.queue);
                        goto done;
                }
                if (r < 0) {
                        set_fail(ret, c.fail_status, TAKE_PTR(c.fail_message));
                        goto done;
                }
        }
        if (!c.enforce)
                goto done;
        r = pinlet_intercept_request_encode(req, &out, &out_len, &err);
        if (r < 0) {
                char *msg = NULL;

                if (asprintf(&msg, "pinlet: encoding %s: %s", pinlet_intercept_kind_message(kind),
                             pinlet_error_message(err, r)) < 0)
                        msg = NULL;
                set_fail(ret, GRPC_STATUS_INTERNAL, msg);
                goto done;
        }
        if (r == PINLET_INTERCEPT_REWRITTEN) {
                ret->action = PINLET_FORWARD_REWRITTEN;
                ret->data = out;
                ret->len = out_len;
        }
done:
        flush_audit_after(&c, &req, ret);
        free(c.pod);
        free(c.fail_message);
        free(c.queue);
        pinlet_lock_set_unref(c.lock);
}

void pinlet_interceptor_pull_image(void *userdata, const struct pinlet_call_info *info,
                                   const uint8_t *request, size_t len,
                                   struct pinlet_intercept_result *ret)
{
        intercept(userdata, PINLET_INTERCEPT_PULL_IMAGE, info, request, len, ret);
}

void pinlet_interceptor_image_status(void *userdata, const struct pinlet_call_info *info,
                                     const uint8_t *request, size_t len,
                                     struct pinlet_intercept_result *ret)
{
        intercept(userdata, PINLET_INTERCEPT_IMAGE_STATUS, info, request, len, ret);
}

void pinlet_interceptor_create_container(void *userdata, const struct pinlet_call_info *info,
                                         const uint8_t *request, size_t len,
                                         struct pinlet_intercept_result *ret)
{
        intercept(userdata, PINLET_INTERCEPT_CREATE_CONTAINER, info, request, len, ret);
}
