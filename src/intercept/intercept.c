/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CRI interceptors: decide, per image slot of a request, whether and to what digest
 * it is rewritten, and leave one audit record per decision. The behaviour is specified in
 * intercept.h; the byte-level rewriting is rewrite.c's.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>
#include <openssl/evp.h>
#include <sys/random.h>

#include "audit/audit.h"
#include "cache/cache.h"
#include "intercept/intercept.h"
#include "intercept/rewrite.h"
#include "pins/pins.h"
#include "policy/policy.h"
#include "registry/registry.h"
#include "util/log.h"

/* Time kept for forwarding the call itself: a quarter of what is left, at most this. */
#define FORWARD_MARGIN_MAX_MS 2000

struct pinlet_interceptor {
        const struct pinlet_config *cfg;
        struct pinlet_registry *registry;
        struct pinlet_cache *cache;
        struct pinlet_pins *pins;
        struct pinlet_audit *audit;
        pinlet_interceptor_resolve_fn resolve;
        void *resolve_ctx;
        uint8_t salt[32]; /* per process: credential identities in cache keys */
};

/* Adapts pinlet_registry_resolve() to the resolve step. */
static int registry_resolve(void *ctx, const struct pinlet_ref *ref,
                            const struct pinlet_registry_auth *auth, int64_t deadline_ms,
                            char **ret_digest, struct pinlet_error **err)
{
        struct pinlet_resolution res = { 0 };
        int r;

        r = pinlet_registry_resolve(ctx, ref, auth, deadline_ms, &res, err);
        if (r < 0)
                return r;
        *ret_digest = TAKE_PTR(res.digest);
        pinlet_resolution_done(&res);
        return 0;
}

int pinlet_interceptor_new(const struct pinlet_interceptor_options *o,
                           struct pinlet_interceptor **ret, struct pinlet_error **err)
{
        struct pinlet_interceptor *ic;

        if (!o || !o->cfg)
                return pinlet_error_set(err, PINLET_EINVAL, "interceptor needs a configuration");
        if (!o->resolve && !o->registry)
                return pinlet_error_set(err, PINLET_EINVAL,
                                        "interceptor needs a registry client or a resolver");
        ic = calloc(1, sizeof(*ic));
        if (!ic)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        *ic = (struct pinlet_interceptor){
                .cfg = o->cfg,
                .registry = o->registry,
                .cache = o->cache,
                .pins = o->pins,
                .audit = o->audit,
                .resolve = o->resolve ? o->resolve : registry_resolve,
                .resolve_ctx = o->resolve ? o->resolve_ctx : o->registry,
        };
        if (getrandom(ic->salt, sizeof(ic->salt), 0) != (ssize_t)sizeof(ic->salt)) {
                free(ic);
                return pinlet_error_set(err, PINLET_EINVAL, "getrandom failed");
        }
        *ret = ic;
        return 0;
}

void pinlet_interceptor_free(struct pinlet_interceptor *ic)
{
        free(ic);
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
        const char *source; /* static */
        int64_t registry_ms;
        const char *decision;
};

struct call {
        struct pinlet_interceptor *ic;
        struct pinlet_intercept_request *req;
        const char *method;    /* "PullImage" */
        const char *mode;      /* "enforce", "audit" */
        const char *namespace; /* pod namespace, NULL when unknown or empty */
        char *pod;             /* "ns/name/uid" for the pin store, NULL when unknown */
        int64_t deadline_ms;   /* for resolutions */
        bool enforce;
        struct pinlet_registry_auth auth; /* PullImage's AuthConfig, "" mapped to NULL */
        bool has_auth;

        /* a closed failure ends the call */
        int fail_status;
        char *fail_message;

        struct pending *pending; /* audit records of this call, written at its end */
        size_t n_pending;
};

/* How one slot was resolved. */
struct outcome {
        char *digest;
        const char *source;       /* "pin", "cache", "registry", "stale" */
        int64_t registry_ms;      /* < 0: no registry round trip */
        struct pinlet_error *err; /* failure, or (stale) why the cache fell back */
};

static void outcome_done(struct outcome *o)
{
        free(o->digest);
        pinlet_error_free(o->err);
        *o = (struct outcome){ .registry_ms = -1 };
}

static const char *nonempty(const char *s)
{
        return s && *s ? s : NULL;
}

static int64_t resolve_deadline(const struct pinlet_config *cfg,
                                const struct pinlet_call_info *info)
{
        int64_t now = pinlet_cache_now_ms();
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

static void write_record(const struct call *c, const struct pending *p)
{
        struct pinlet_audit_record rec = {
                .method = c->method,
                .pod_namespace = c->req->pod_namespace,
                .pod_name = c->req->pod_name,
                .pod_uid = c->req->pod_uid,
                .container = c->req->container_name,
                .image = p->image,
                .resolved = p->resolved,
                .previous = p->previous,
                .source = p->source,
                .registry_ms = p->registry_ms,
                .decision = p->decision,
                .mode = c->mode,
                .error = p->error,
        };

        (void)pinlet_audit_write(c->ic->audit, &rec);
}

static void pending_done(struct pending *p)
{
        free(p->resolved);
        free(p->previous);
        free(p->error);
}

/*
 * Records a decision. Records are held until the call's outcome is known (flush_audit):
 * when one slot of a CreateContainer fails closed, the others were never substituted,
 * so only the rejection is written. Without memory the record is written at once.
 */
static void audit(struct call *c, const char *image, const char *resolved, const char *previous,
                  const struct outcome *o, const char *decision, const char *error)
{
        struct pending p = {
                .image = image,
                .source = o ? o->source : NULL,
                .registry_ms = o ? o->registry_ms : -1,
                .decision = decision,
        };
        struct pending *grown;

        if (!c->ic->audit)
                return;
        p.resolved = resolved ? strdup(resolved) : NULL;
        p.previous = previous ? strdup(previous) : NULL;
        p.error = error ? strdup(error) : NULL;
        grown = reallocarray(c->pending, c->n_pending + 1, sizeof(*grown));
        if (!grown || (resolved && !p.resolved) || (previous && !p.previous) ||
            (error && !p.error)) {
                struct pending direct = p;

                direct.resolved = (char *)resolved;
                direct.previous = (char *)previous;
                direct.error = (char *)error;
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

/* What the cache's single-flight leader runs. */
struct resolve_ctx {
        struct pinlet_interceptor *ic;
        const struct pinlet_ref *ref;
        const struct pinlet_registry_auth *auth;
        int64_t registry_ms; /* set when this caller's resolver ran */
};

static int resolve_now(void *userdata, const char *key, int64_t deadline_ms, char **ret_value,
                       struct pinlet_error **err)
{
        struct resolve_ctx *rc = userdata;
        _cleanup_free_ char *digest = NULL;
        int64_t t0 = pinlet_cache_now_ms();
        int r;

        r = rc->ic->resolve(rc->ic->resolve_ctx, rc->ref, rc->auth, deadline_ms, &digest, err);
        rc->registry_ms = pinlet_cache_now_ms() - t0;
        if (r < 0)
                return r;
        /* never let a broken resolver put something into a request that is not a digest */
        if (!digest || !pinlet_ref_digest_valid(digest))
                return pinlet_error_set(err, PINLET_EPROTO, "resolver returned an invalid digest");
        *ret_value = TAKE_PTR(digest);
        return 0;
}

/* hex(SHA-256(salt || fingerprint)): the credential identity in a cache key. Salted per
 * process so that the key (which the cache may log at debug level) cannot be used to
 * test password guesses against an unsalted hash of the credential. */
static int salted_identity(const struct pinlet_interceptor *ic, const char *fp, char ret[65])
{
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int ok;

        if (!ctx)
                return -ENOMEM;
        ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, ic->salt, sizeof(ic->salt)) &&
             EVP_DigestUpdate(ctx, fp, strlen(fp)) && EVP_DigestFinal_ex(ctx, md, &md_len);
        EVP_MD_CTX_free(ctx);
        if (!ok || md_len != 32)
                return -ENOMEM;
        for (unsigned i = 0; i < md_len; i++)
                snprintf(ret + 2 * i, 3, "%02x", md[i]);
        return 0;
}

/*
 * The cache key: the normalized reference plus whose credentials resolve it (see
 * intercept.h). The credential identity is used only when the request's AuthConfig
 * applies to this registry, exactly as the registry client will decide.
 */
static int cache_key(const struct call *c, const struct pinlet_ref *ref, const char *refstr,
                     bool with_auth, char **ret, struct pinlet_error **err)
{
        struct pinlet_creds creds = { 0 };
        char fp[65], id[65];
        char *key = NULL;
        int r;

        if (with_auth && c->has_auth) {
                r = pinlet_creds_from_auth(&c->auth, ref->domain, &creds, err);
                if (r < 0)
                        return r;
                if (r > 0) {
                        pinlet_creds_fingerprint(&creds, fp);
                        pinlet_creds_clear(&creds);
                        r = salted_identity(c->ic, fp, id);
                        explicit_bzero(fp, sizeof(fp));
                        if (r < 0 || asprintf(&key, "%s auth:%s", refstr, id) < 0)
                                return pinlet_error_set(err, -ENOMEM, "out of memory");
                        *ret = key;
                        return 0;
                }
        }
        if (asprintf(&key, "%s node", refstr) < 0)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        *ret = key;
        return 0;
}

/* Resolves ref's tag through the cache (when there is one) and the resolver. */
static int resolve_tag(struct call *c, const struct pinlet_ref *ref, const char *refstr,
                       bool with_auth, struct outcome *o)
{
        struct pinlet_interceptor *ic = c->ic;
        struct resolve_ctx rc = {
                .ic = ic,
                .ref = ref,
                .auth = with_auth && c->has_auth ? &c->auth : NULL,
                .registry_ms = -1,
        };
        _cleanup_free_ char *key = NULL;
        enum pinlet_cache_source src;
        int64_t t0 = pinlet_cache_now_ms();
        int r;

        if (!ic->cache) {
                r = resolve_now(&rc, refstr, c->deadline_ms, &o->digest, &o->err);
                if (r < 0)
                        return r;
                o->source = "registry";
                o->registry_ms = rc.registry_ms;
                return 0;
        }
        r = cache_key(c, ref, refstr, with_auth, &key, &o->err);
        if (r < 0)
                return r;
        r = pinlet_cache_get(ic->cache, key, c->deadline_ms, resolve_now, &rc, &o->digest, &src,
                             &o->err);
        if (r < 0)
                return r;
        o->source = pinlet_cache_source_to_string(src);
        if (src != PINLET_CACHE_SOURCE_CACHE)
                /* a follower of another caller's resolution waited about as long */
                o->registry_ms = rc.registry_ms >= 0 ? rc.registry_ms : pinlet_cache_now_ms() - t0;
        if (!pinlet_ref_digest_valid(o->digest))
                return pinlet_error_set(&o->err, PINLET_EPROTO, "cache held an invalid digest");
        return 0;
}

/* Looks the tag up in the pin store. 1 found (o filled), 0 none. */
static int from_pin(struct call *c, const char *refstr, struct outcome *o)
{
        char *digest = NULL;

        if (!c->ic->pins || pinlet_pins_lookup(c->ic->pins, refstr, &digest) < 0)
                return 0;
        if (!pinlet_ref_digest_valid(digest)) {
                free(digest);
                return 0;
        }
        o->digest = digest;
        o->source = "pin";
        o->registry_ms = -1;
        return 1;
}

/* A PullImage passed through unpinned: the runtime pulls whatever the tag is now, which
 * need not be the pinned digest. Drop the pin so CreateContainer resolves the tag (or
 * passes it through) instead of running an image that was not what was pulled. */
static void forget_pin(struct call *c, const char *refstr)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        int r = pinlet_pins_forget(c->ic->pins, refstr, &err);

        if (r < 0)
                log_warn("%s: forgetting the pin of %s: %s", c->method, refstr,
                         pinlet_error_message(err, r));
        else if (r > 0)
                log_warn("%s: pin of %s forgotten: the pull went through unpinned", c->method,
                         refstr);
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

/*
 * Decides one slot. Returns 0 (slot done: rewritten, left alone or passed through) or
 * -1 when the call must fail (c->fail_* set).
 */
static int handle_slot(struct call *c, size_t index)
{
        struct pinlet_interceptor *ic = c->ic;
        const struct pinlet_config *cfg = ic->cfg;
        struct pinlet_intercept_slot *slot = &c->req->slots[index];
        const char *image = slot->image;
        enum pinlet_intercept_kind kind = c->req->kind;
        _cleanup_ref_ struct pinlet_ref *ref = NULL;
        _cleanup_error_ struct pinlet_error *perr = NULL;
        _cleanup_free_ char *refstr = NULL, *name = NULL, *resolved = NULL, *previous = NULL;
        _cleanup_(outcome_done) struct outcome o = { .registry_ms = -1 };
        int r;

        if (!image || !*image || pinlet_ref_is_image_id(image))
                return 0;
        r = pinlet_ref_parse(image, &ref, &perr);
        if (r < 0) {
                /* the runtime owns the grammar and will answer with its own error */
                log_debug("%s: %s: not a reference, forwarded: %s", c->method, slot->where,
                          pinlet_error_message(perr, r));
                audit(c, image, NULL, NULL, NULL, PINLET_AUDIT_PASSED_THROUGH,
                      pinlet_error_message(perr, r));
                return 0;
        }
        if (ref->digest || !ref->tag) {
                log_debug("%s: %s already carries a digest", c->method, image);
                return 0;
        }
        refstr = pinlet_ref_string(ref);
        name = pinlet_ref_name(ref);
        if (!refstr || !name)
                goto oom;
        if (!pinlet_policy_in_scope(cfg, ref->domain, name, c->namespace)) {
                log_debug("%s: %s is out of scope", c->method, image);
                return 0;
        }

        switch (kind) {
        case PINLET_INTERCEPT_PULL_IMAGE:
                r = resolve_tag(c, ref, refstr, true, &o);
                break;
        case PINLET_INTERCEPT_CREATE_CONTAINER:
                r = from_pin(c, refstr, &o) ? 0 : resolve_tag(c, ref, refstr, false, &o);
                break;
        default:
                r = resolve_tag(c, ref, refstr, false, &o);
                if (r == PINLET_EUNAVAIL || r == PINLET_ETIMEOUT) {
                        /* an outage: what was pulled is still what the node has; the
                         * failure stays in the record */
                        struct pinlet_error *why = TAKE_PTR(o.err);

                        if (from_pin(c, refstr, &o))
                                r = 0;
                        o.err = why;
                }
                break;
        }

        if (r < 0) {
                const char *msg = pinlet_error_message(o.err, r);

                if (kind == PINLET_INTERCEPT_IMAGE_STATUS || !c->enforce ||
                    pinlet_policy_on_failure(cfg, ref->domain) == PINLET_FAIL_OPEN) {
                        if (kind != PINLET_INTERCEPT_IMAGE_STATUS && c->enforce)
                                log_warn("%s: %s forwarded unpinned (on_failure: open): %s",
                                         c->method, image, msg);
                        else
                                log_debug("%s: %s forwarded unpinned: %s", c->method, image, msg);
                        if (kind == PINLET_INTERCEPT_PULL_IMAGE && c->enforce && ic->pins)
                                forget_pin(c, refstr);
                        o.source = NULL;
                        audit(c, image, NULL, NULL, &o, PINLET_AUDIT_PASSED_THROUGH, msg);
                        return 0;
                }
                log_warn("%s: %s rejected (on_failure: closed): %s", c->method, image, msg);
                o.source = NULL;
                audit(c, image, NULL, NULL, &o, PINLET_AUDIT_REJECTED, msg);
                fail_call(c, r, image, ref->domain, o.err);
                return -1;
        }

        resolved = pinlet_ref_with_digest(ref, o.digest);
        if (!resolved)
                goto oom;
        if (!c->enforce) {
                audit(c, image, resolved, NULL, &o, PINLET_AUDIT_WOULD_SUBSTITUTE,
                      o.err ? pinlet_error_message(o.err, 0) : NULL);
                return 0;
        }
        r = pinlet_intercept_request_set_image(c->req, index, resolved, &perr);
        if (r < 0)
                goto internal;

        if (ic->pins && kind == PINLET_INTERCEPT_PULL_IMAGE) {
                _cleanup_error_ struct pinlet_error *serr = NULL;

                r = pinlet_pins_record(ic->pins, refstr, o.digest, c->pod, &previous, &serr);
                if (r < 0)
                        log_warn("%s: recording the pin of %s: %s", c->method, refstr,
                                 pinlet_error_message(serr, r));
        } else if (ic->pins && streq_ptr(o.source, "pin")) {
                (void)pinlet_pins_touch(ic->pins, refstr, c->pod, NULL);
        }
        log_debug("%s: %s -> %s (%s)", c->method, image, resolved, o.source);
        audit(c, image, resolved, NULL, &o, PINLET_AUDIT_SUBSTITUTED,
              o.err ? pinlet_error_message(o.err, 0) : NULL);
        if (previous && !streq_ptr(previous, o.digest)) {
                log_info("%s: tag %s moved from %s to %s", c->method, refstr, previous, o.digest);
                audit(c, image, resolved, previous, &o, PINLET_AUDIT_TAG_MOVED, NULL);
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

        r = pinlet_intercept_request_decode(kind, request, len, &req, &err);
        if (r < 0) {
                char *msg = NULL;

                if (ic->cfg->mode != PINLET_MODE_ENFORCE) {
                        log_warn("%s: forwarded undecoded: %s", pinlet_intercept_kind_method(kind),
                                 pinlet_error_message(err, r));
                        return;
                }
                if (asprintf(&msg, "pinlet: %s", pinlet_error_message(err, r)) < 0)
                        msg = NULL;
                set_fail(ret,
                         r == -ENOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED
                                      : GRPC_STATUS_INVALID_ARGUMENT,
                         msg);
                return;
        }

        c = (struct call){
                .ic = ic,
                .req = req,
                .method = pinlet_intercept_kind_method(kind),
                .mode = pinlet_mode_to_string(ic->cfg->mode),
                .namespace = nonempty(req->pod_namespace),
                .enforce = ic->cfg->mode == PINLET_MODE_ENFORCE,
                .deadline_ms = resolve_deadline(ic->cfg, info),
        };
        if (nonempty(req->pod_namespace) || nonempty(req->pod_name)) {
                if (asprintf(&c.pod, "%s/%s/%s", strempty(req->pod_namespace),
                             strempty(req->pod_name), strempty(req->pod_uid)) < 0)
                        c.pod = NULL;
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
                if (handle_slot(&c, i) < 0) {
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
        flush_audit(&c, ret->action == PINLET_FAIL);
        free(c.pod);
        free(c.fail_message);
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
