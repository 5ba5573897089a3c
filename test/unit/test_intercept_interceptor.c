/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The interceptors end to end minus the network: a fake registry step stands in for the
 * registry; the real resolver, cache, a real pin store in a temporary state directory and
 * a real audit file are used, and every test reads the audit file back.
 *
 * run() calls an interceptor as the proxy's worker does (may_block true), run_fast() as
 * the completion-queue thread does (may_block false: decide at once or PINLET_DEFER).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <grpc/status.h>
#include <jansson.h>

#include "audit/audit.h"
#include "cache/cache.h"
#include "util/time.h"
#include "config/config.h"
#include "hosts/hosts.h"
#include "cri.pb-c.h"
#include "intercept/intercept.h"
#include "intercept/rewrite.h"
#include "lock/lock.h"
#include "pins/pins.h"
#include "policy/policy.h"
#include "registry/registry.h"
#include "resolve/resolve.h"
#include "util/log.h"

#define D1       "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2       "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3       "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define IMAGE_ID "sha256:abababababababababababababababababababababababababababababababab"
#define SECRET   "s3cret-pa55"
#define MIB      (1024u * 1024u)

/* Text fields are `bytes` in pinlet's schema (proto/cri.proto). */
static ProtobufCBinaryData bin(const char *s)
{
        return (ProtobufCBinaryData){ .len = s ? strlen(s) : 0, .data = (uint8_t *)s };
}

#define assert_bin_equal(b, s) assert_bin_equal_at((b), (s), __FILE__, __LINE__)
static void assert_bin_equal_at(ProtobufCBinaryData b, const char *s, const char *file, int line)
{
        size_t n = strlen(s);

        if (b.len != n || (n && memcmp(b.data, s, n) != 0)) {
                print_error("bytes '%.*s' (%zu) != '%s' (%zu)\n", (int)b.len,
                            b.data ? (const char *)b.data : "", b.len, s, n);
                _fail(file, line);
        }
}

/* ---- fake registry step (pinlet_resolve_registry_fn) ---- */

struct fake {
        atomic_int calls;
        useconds_t delay;   /* per resolution */
        const char *digest; /* answer */
        int fail;           /* < 0: fail with this class */
        char last_ref[256];
        bool last_auth;
        char last_user[64];
        int64_t last_deadline;
};

static int fake_resolve(void *ctx, const struct pinlet_ref *ref,
                        const struct pinlet_registry_auth *auth, int64_t deadline_ms,
                        struct pinlet_resolution *ret, struct pinlet_error **err)
{
        struct fake *f = ctx;
        char *s = pinlet_ref_string(ref);

        f->calls++;
        if (f->delay)
                usleep(f->delay);
        snprintf(f->last_ref, sizeof(f->last_ref), "%s", s);
        free(s);
        f->last_auth = auth != NULL;
        snprintf(f->last_user, sizeof(f->last_user), "%s",
                 auth && auth->username ? auth->username : "");
        f->last_deadline = deadline_ms;
        if (f->fail < 0)
                return pinlet_error_set(err, f->fail, "resolve %s: %s: fake failure %s", ref->path,
                                        ref->domain, pinlet_error_class(f->fail));
        ret->digest = strdup(f->digest);
        return 0;
}

/* ---- fixture ---- */

static int64_t fake_now;
static int64_t fake_clock(void *ctx)
{
        return fake_now;
}

struct fx {
        char dir[64];
        char audit_path[128];
        struct pinlet_config cfg;
        struct pinlet_cache *cache;
        struct pinlet_pins *pins;
        struct pinlet_audit *audit;
        struct pinlet_resolver *resolver;
        struct pinlet_interceptor *ic;
        struct fake fake;
};

/* (Re)creates the resolver and the interceptor over fx's cache, pins and audit log, with
 * the given failing-registry memory (0: off, as most tests want every call to reach the
 * fake). */
static void fx_resolver(struct fx *fx, uint64_t error_ttl_ms)
{
        pinlet_interceptor_free(fx->ic);
        pinlet_resolver_free(fx->resolver);
        fx->ic = NULL;
        fx->resolver = NULL;
        assert_int_equal(pinlet_resolver_new(
                                 &(const struct pinlet_resolver_options){
                                         .registry_fn = fake_resolve,
                                         .registry_ctx = &fx->fake,
                                         .cache = fx->cache,
                                         .pins = fx->pins,
                                         .error_ttl_ms = error_ttl_ms,
                                 },
                                 &fx->resolver, NULL),
                         0);
        assert_int_equal(pinlet_interceptor_new(
                                 &(const struct pinlet_interceptor_options){
                                         .cfg = &fx->cfg,
                                         .resolver = fx->resolver,
                                         .pins = fx->pins,
                                         .audit = fx->audit,
                                 },
                                 &fx->ic, NULL),
                         0);
}

static const char config_yaml[] = "scope:\n"
                                  "  exclude:\n"
                                  "    namespaces: [kube-system]\n"
                                  "    registries: [internal.example]\n"
                                  "registries:\n"
                                  "  open.example:\n"
                                  "    on_failure: open\n";

static int setup(void **state)
{
        struct fx *fx = calloc(1, sizeof(*fx));
        struct pinlet_cache_options co = {
                .ttl_ms = 30000,
                .stale_if_error_ms = 600000,
                .clock = fake_clock,
        };
        struct pinlet_audit_options ao = { 0 };
        char path[128], state_dir[128];
        FILE *f;

        assert_non_null(fx);
        strcpy(fx->dir, "/tmp/pinlet-ic-test-XXXXXX");
        assert_non_null(mkdtemp(fx->dir));
        snprintf(fx->audit_path, sizeof(fx->audit_path), "%s/audit.jsonl", fx->dir);
        snprintf(path, sizeof(path), "%s/config.yaml", fx->dir);
        snprintf(state_dir, sizeof(state_dir), "%s/state", fx->dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(config_yaml, f);
        fclose(f);
        assert_int_equal(pinlet_config_init(&fx->cfg), 0);
        assert_int_equal(pinlet_config_load(&fx->cfg, path, false, NULL), 0);
        fake_now = 1000000;
        assert_int_equal(pinlet_cache_new(&co, &fx->cache), 0);
        assert_int_equal(pinlet_pins_open(state_dir, 0, &fx->pins, NULL), 0);
        ao.path = fx->audit_path;
        assert_int_equal(pinlet_audit_open(&ao, &fx->audit, NULL), 0);
        fx->fake.digest = D1;
        fx_resolver(fx, 0);
        *state = fx;
        return 0;
}

static int teardown(void **state)
{
        struct fx *fx = *state;
        char cmd[128];

        pinlet_interceptor_free(fx->ic);
        pinlet_resolver_free(fx->resolver);
        pinlet_audit_close(fx->audit);
        pinlet_pins_close(fx->pins);
        pinlet_cache_free(fx->cache);
        pinlet_config_free(&fx->cfg);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
        assert_int_equal(system(cmd), 0);
        free(fx);
        return 0;
}

/* ---- requests ---- */

struct pod {
        const char *ns, *name, *uid;
};
static const struct pod WEB = { "prod", "web-0", "uid-1" };

/* Request bytes (malloc'ed, freed by run()). */
struct blob {
        uint8_t *d;
        size_t len;
};

static struct blob pack(const ProtobufCMessage *m)
{
        struct blob b = { malloc(protobuf_c_message_get_packed_size(m) + 1), 0 };

        assert_non_null(b.d);
        b.len = protobuf_c_message_pack(m, b.d);
        return b;
}

static struct blob raw(const char *bytes, size_t len)
{
        struct blob b = { malloc(len + 1), len };

        assert_non_null(b.d);
        memcpy(b.d, bytes, len);
        return b;
}

/* PullImage(image) with optional basic credentials (user, password) and pod. */
static struct blob pull_request_pw(const char *image, const char *user, const char *password,
                                   const char *server, const struct pod *pod)
{
        Pinlet__Cri__PullImageRequest m = PINLET__CRI__PULL_IMAGE_REQUEST__INIT;
        Pinlet__Cri__ImageSpec spec = PINLET__CRI__IMAGE_SPEC__INIT;
        Pinlet__Cri__AuthConfig auth = PINLET__CRI__AUTH_CONFIG__INIT;
        Pinlet__Cri__PodSandboxConfig sc = PINLET__CRI__POD_SANDBOX_CONFIG__INIT;
        Pinlet__Cri__PodSandboxMetadata md = PINLET__CRI__POD_SANDBOX_METADATA__INIT;

        spec.image = bin(image);
        spec.user_specified_image = bin(image);
        m.image = &spec;
        if (user) {
                auth.username = bin(user);
                auth.password = bin(password);
                if (server)
                        auth.server_address = bin(server);
                m.auth = &auth;
        }
        if (pod) {
                md.namespace_ = bin(pod->ns);
                md.name = bin(pod->name);
                md.uid = bin(pod->uid);
                sc.metadata = &md;
                m.sandbox_config = &sc;
        }
        return pack(&m.base);
}

static struct blob pull_request(const char *image, const char *user, const char *server,
                                const struct pod *pod)
{
        return pull_request_pw(image, user, SECRET, server, pod);
}

static struct blob status_request(const char *image)
{
        Pinlet__Cri__ImageStatusRequest m = PINLET__CRI__IMAGE_STATUS_REQUEST__INIT;
        Pinlet__Cri__ImageSpec spec = PINLET__CRI__IMAGE_SPEC__INIT;

        spec.image = bin(image);
        m.image = &spec;
        m.verbose = 1;
        return pack(&m.base);
}

/* CreateContainer(config.image = image, mounts with the given images; NULL: host path). */
static struct blob create_request(const char *image, const char *const *mounts, size_t n_mounts,
                                  const struct pod *pod)
{
        Pinlet__Cri__CreateContainerRequest m = PINLET__CRI__CREATE_CONTAINER_REQUEST__INIT;
        Pinlet__Cri__ContainerConfig cc = PINLET__CRI__CONTAINER_CONFIG__INIT;
        Pinlet__Cri__ContainerMetadata cm = PINLET__CRI__CONTAINER_METADATA__INIT;
        Pinlet__Cri__ImageSpec spec = PINLET__CRI__IMAGE_SPEC__INIT;
        Pinlet__Cri__PodSandboxConfig sc = PINLET__CRI__POD_SANDBOX_CONFIG__INIT;
        Pinlet__Cri__PodSandboxMetadata md = PINLET__CRI__POD_SANDBOX_METADATA__INIT;
        Pinlet__Cri__Mount mnt[4];
        Pinlet__Cri__Mount *mp[4];
        Pinlet__Cri__ImageSpec ms[4];

        assert_true(n_mounts <= 4);
        m.pod_sandbox_id = bin("sandbox-1");
        cm.name = bin("app");
        cc.metadata = &cm;
        spec.image = bin(image);
        spec.user_specified_image = bin("app:user-wrote-this");
        cc.image = &spec;
        for (size_t i = 0; i < n_mounts; i++) {
                pinlet__cri__mount__init(&mnt[i]);
                pinlet__cri__image_spec__init(&ms[i]);
                mnt[i].container_path = bin("/mnt");
                if (mounts[i]) {
                        ms[i].image = bin(mounts[i]);
                        mnt[i].image = &ms[i];
                }
                mp[i] = &mnt[i];
        }
        cc.n_mounts = n_mounts;
        cc.mounts = mp;
        m.config = &cc;
        if (pod) {
                md.namespace_ = bin(pod->ns);
                md.name = bin(pod->name);
                md.uid = bin(pod->uid);
                sc.metadata = &md;
                m.sandbox_config = &sc;
        }
        return pack(&m.base);
}

/* Turns the first byte of every NUL_MARK in a request into a NUL byte: valid protobuf
 * whose C strings would be other names. (A single marker byte could also be a length.) The
 * decoder names the first such field in field-number order. */
#define NUL_MARK "N@L!"
static struct blob with_nul(struct blob b)
{
        uint8_t *p = b.d;
        size_t n = 0;

        while ((p = memmem(p, b.len - (size_t)(p - b.d), NUL_MARK, strlen(NUL_MARK)))) {
                *p++ = 0;
                n++;
        }
        assert_true(n > 0);
        return b;
}

/* Appends an unknown length-delimited field of n bytes (field 4000: not in the schema). */
static struct blob with_padding(struct blob b, size_t n)
{
        uint8_t hdr[16];
        size_t h = 0;
        uint8_t *d;

        for (uint64_t v = (4000u << 3) | 2;; v >>= 7) {
                hdr[h++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                if (v <= 0x7f)
                        break;
        }
        for (uint64_t v = n;; v >>= 7) {
                hdr[h++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                if (v <= 0x7f)
                        break;
        }
        d = realloc(b.d, b.len + h + n);
        assert_non_null(d);
        memcpy(d + b.len, hdr, h);
        memset(d + b.len + h, 'p', n);
        b.d = d;
        b.len += h + n;
        return b;
}

/* ---- running an interceptor ---- */

typedef void (*icept_fn)(void *, const struct pinlet_call_info *, const uint8_t *, size_t,
                         struct pinlet_intercept_result *);

static struct pinlet_intercept_result run_info_after(struct fx *fx, icept_fn fn, struct blob req,
                                                     bool may_block, bool after)
{
        struct pinlet_call_info info = {
                .method = "/runtime.v1.X/Y",
                .deadline_ms = INT64_MAX,
                .may_block = may_block,
        };
        struct pinlet_intercept_result r;

        memset(&r, 0x5a, sizeof(r)); /* the interceptor must fill everything it uses */
        fn(fx->ic, &info, req.d, req.len, &r);
        free(req.d);
        if (may_block)
                assert_int_not_equal(r.action, PINLET_DEFER);
        /* records wait for the forward only on the completion-queue thread, never with a
         * deferral; the proxy runs them right after the forward */
        if (r.after && after) {
                assert_false(may_block);
                assert_int_not_equal(r.action, PINLET_DEFER);
                r.after(r.after_arg);
                r.after = NULL;
        }
        return r;
}

static struct pinlet_intercept_result run_info(struct fx *fx, icept_fn fn, struct blob req,
                                               bool may_block)
{
        return run_info_after(fx, fn, req, may_block, true);
}

/* On a worker (may_block true): the call is decided, never deferred. */
static struct pinlet_intercept_result run(struct fx *fx, icept_fn fn, struct blob req)
{
        return run_info(fx, fn, req, true);
}

/* On the completion-queue thread (may_block false). */
static struct pinlet_intercept_result run_fast(struct fx *fx, icept_fn fn, struct blob req)
{
        return run_info(fx, fn, req, false);
}

static void result_done(struct pinlet_intercept_result *r)
{
        if (r->action == PINLET_FORWARD_REWRITTEN)
                free(r->data);
        if (r->action == PINLET_FAIL)
                free(r->message);
        if (r->action == PINLET_DEFER)
                free(r->queue);
}

/* The audit file as a JSON array of records. */
static json_t *audit_records(struct fx *fx)
{
        json_t *a = json_array();
        FILE *f = fopen(fx->audit_path, "r");
        char *line = NULL;
        size_t cap = 0;

        if (!f)
                return a;
        while (getline(&line, &cap, f) > 0) {
                json_t *rec = json_loads(line, 0, NULL);

                assert_non_null(rec);
                json_array_append_new(a, rec);
        }
        free(line);
        fclose(f);
        return a;
}

static const char *rec_str(json_t *recs, size_t i, const char *key)
{
        return json_string_value(json_object_get(json_array_get(recs, i), key));
}

static void assert_file_lacks(const char *path, const char *needle)
{
        FILE *f = fopen(path, "r");
        char buf[65536];
        size_t n;

        if (!f)
                return;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        fclose(f);
        assert_null(strstr(buf, needle));
}

static int pin_pods(void *userdata, const struct pinlet_pin *pin)
{
        char *out = userdata;

        for (size_t i = 0; i < pin->n_pods; i++) {
                strcat(out, pin->pods[i]);
                strcat(out, ";");
        }
        return 0;
}

/* ---- PullImage ---- */

static void test_pull_enforce(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        Pinlet__Cri__PullImageRequest *m;
        json_t *recs, *pod;
        char *digest = NULL;

        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("nginx:1.25", "alice", "docker.io", &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__pull_image_request__unpack(NULL, r.len, r.data);
        assert_non_null(m);
        assert_bin_equal(m->image->image, "docker.io/library/nginx@" D1);
        assert_bin_equal(m->image->user_specified_image, "nginx:1.25");
        assert_bin_equal(m->auth->username, "alice");
        assert_bin_equal(m->auth->password, SECRET);
        assert_bin_equal(m->sandbox_config->metadata->uid, "uid-1");
        pinlet__cri__pull_image_request__free_unpacked(m, NULL);
        result_done(&r);

        /* the request's own credentials went to the resolver */
        assert_int_equal(fx->fake.calls, 1);
        assert_true(fx->fake.last_auth);
        assert_string_equal(fx->fake.last_user, "alice");
        assert_string_equal(fx->fake.last_ref, "docker.io/library/nginx:1.25");

        assert_int_equal(pinlet_pins_lookup(fx->pins, "docker.io/library/nginx:1.25", &digest), 0);
        assert_string_equal(digest, D1);
        free(digest);
        {
                char pods[256] = "";

                assert_int_equal(pinlet_pins_list(fx->pins, pin_pods, pods), 1);
                assert_string_equal(pods, "prod/web-0/uid-1;");
        }

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 1);
        assert_string_equal(rec_str(recs, 0, "method"), "PullImage");
        assert_string_equal(rec_str(recs, 0, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 0, "image"), "nginx:1.25");
        assert_string_equal(rec_str(recs, 0, "resolved"), "docker.io/library/nginx@" D1);
        assert_string_equal(rec_str(recs, 0, "source"), "registry");
        assert_string_equal(rec_str(recs, 0, "mode"), "enforce");
        assert_true(json_is_integer(json_object_get(json_array_get(recs, 0), "registry_ms")));
        pod = json_object_get(json_array_get(recs, 0), "pod");
        assert_string_equal(json_string_value(json_object_get(pod, "namespace")), "prod");
        assert_string_equal(json_string_value(json_object_get(pod, "name")), "web-0");
        assert_string_equal(json_string_value(json_object_get(pod, "uid")), "uid-1");
        assert_null(json_object_get(json_array_get(recs, 0), "error"));
        json_decref(recs);
        assert_file_lacks(fx->audit_path, SECRET);
}

static void test_pull_cache_keys(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        json_t *recs;

        /* same credentials twice: one resolution, then the cache */
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", "alice", NULL, &WEB));
        result_done(&r);
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("docker.io/library/nginx:1.25", "alice", NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 1);
        /* other credentials: their own resolution (the registry may refuse them) */
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", "bob", NULL, &WEB));
        result_done(&r);
        assert_int_equal(fx->fake.calls, 2);
        /* credentials for another registry do not apply: the node's, another key */
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("nginx:1.25", "bob", "quay.io", &WEB));
        result_done(&r);
        assert_int_equal(fx->fake.calls, 3);
        /* no credentials at all: the node's, same key as the previous one */
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        result_done(&r);
        assert_int_equal(fx->fake.calls, 3);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 5);
        assert_string_equal(rec_str(recs, 0, "source"), "registry");
        assert_string_equal(rec_str(recs, 1, "source"), "cache");
        assert_null(json_object_get(json_array_get(recs, 1), "registry_ms"));
        assert_string_equal(rec_str(recs, 2, "source"), "registry");
        assert_string_equal(rec_str(recs, 3, "source"), "registry");
        assert_string_equal(rec_str(recs, 4, "source"), "cache");
        json_decref(recs);
}

static void test_pull_tag_moved(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        json_t *recs;
        char *digest = NULL;

        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        result_done(&r);
        fx->fake.digest = D2;
        fake_now += 31000; /* past the cache's ttl */
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        assert_int_equal(pinlet_pins_lookup(fx->pins, "docker.io/library/nginx:1.25", &digest), 0);
        assert_string_equal(digest, D2);
        free(digest);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 3);
        assert_string_equal(rec_str(recs, 0, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 1, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 1, "resolved"), "docker.io/library/nginx@" D2);
        assert_string_equal(rec_str(recs, 2, "decision"), "tag_moved");
        assert_string_equal(rec_str(recs, 2, "previous"), D1);
        assert_string_equal(rec_str(recs, 2, "resolved"), "docker.io/library/nginx@" D2);
        json_decref(recs);
}

/* The registry is down after the ttl: the cache serves the old digest (stale). */
static void test_pull_stale(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        Pinlet__Cri__PullImageRequest *m;
        json_t *recs;

        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        result_done(&r);
        fx->fake.fail = PINLET_EUNAVAIL;
        fake_now += 60000;
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__pull_image_request__unpack(NULL, r.len, r.data);
        assert_bin_equal(m->image->image, "docker.io/library/nginx@" D1);
        pinlet__cri__pull_image_request__free_unpacked(m, NULL);
        result_done(&r);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 2);
        assert_string_equal(rec_str(recs, 1, "source"), "stale");
        assert_string_equal(rec_str(recs, 1, "decision"), "substituted");
        assert_non_null(strstr(rec_str(recs, 1, "error"), "fake failure"));
        json_decref(recs);
}

static void test_pull_audit_mode(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        json_t *recs;
        char *digest = NULL;

        fx->cfg.mode = PINLET_MODE_AUDIT;
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        assert_int_equal(fx->fake.calls, 1);
        assert_int_equal(pinlet_pins_lookup(fx->pins, "docker.io/library/nginx:1.25", &digest),
                         -ENOENT);
        /* a failure in audit mode never fails the call */
        fx->fake.fail = PINLET_ENOTFOUND;
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:404", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        /* nor does a request pinlet cannot decode */
        r = run(fx, pinlet_interceptor_pull_image, raw("\x0a\x05x", 3));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 2);
        assert_string_equal(rec_str(recs, 0, "decision"), "would_substitute");
        assert_string_equal(rec_str(recs, 0, "resolved"), "docker.io/library/nginx@" D1);
        assert_string_equal(rec_str(recs, 0, "mode"), "audit");
        assert_string_equal(rec_str(recs, 1, "decision"), "passed_through");
        assert_non_null(rec_str(recs, 1, "error"));
        json_decref(recs);
}

static void test_off_mode(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        json_t *recs;

        fx->cfg.mode = PINLET_MODE_OFF;
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run(fx, pinlet_interceptor_image_status, status_request("nginx:1.25"));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run(fx, pinlet_interceptor_create_container,
                create_request("nginx:1.25", NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run(fx, pinlet_interceptor_pull_image, raw("\x0a\x05x", 3));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        assert_int_equal(fx->fake.calls, 0);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 0);
        json_decref(recs);
}

/* Lock files: a locked tag gets the locked digest with no registry round trip (source and
 * file in the record); lock.require audit records "unlocked" and resolves as usual;
 * enforce refuses an unlocked tag at PullImage and a kubelet CreateContainer whose
 * user_specified_image is unlocked, and always allows references by digest. */
static void test_lock_files(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        struct pinlet_interceptor *ic = NULL, *saved;
        struct pinlet_lock *lock = NULL;
        char path[192], *paths[] = { path, NULL };
        Pinlet__Cri__PullImageRequest *m;
        json_t *recs;
        FILE *f;

        snprintf(path, sizeof(path), "%s/images.lock", fx->dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "version: 1\nimages:\n  registry.example/team/app:v1: %s\n", D2);
        fclose(f);
        assert_int_equal(pinlet_lock_new(paths, NULL, &lock, NULL), 0);
        assert_int_equal(pinlet_interceptor_new(
                                 &(const struct pinlet_interceptor_options){
                                         .cfg = &fx->cfg,
                                         .resolver = fx->resolver,
                                         .pins = fx->pins,
                                         .audit = fx->audit,
                                         .lock = lock,
                                 },
                                 &ic, NULL),
                         0);
        saved = fx->ic;
        fx->ic = ic;

        /* a locked tag: the lock's digest, the registry never asked, decided inline */
        fx->cfg.lock_require = PINLET_LOCK_REQUIRE_AUDIT;
        r = run_fast(fx, pinlet_interceptor_pull_image,
                     pull_request("Registry.Example/team/app:v1", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_DEFER); /* recording a new pin is fsync'ed */
        result_done(&r);
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("Registry.Example/team/app:v1", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__pull_image_request__unpack(NULL, r.len, r.data);
        assert_bin_equal(m->image->image, "Registry.Example/team/app@" D2);
        pinlet__cri__pull_image_request__free_unpacked(m, NULL);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 0);

        /* audit: an unlocked tag is resolved as usual and also recorded "unlocked" */
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 1);

        /* enforce: refused, digest references allowed, kubelet's image ID checked through
         * user_specified_image ("app:user-wrote-this", not in the lock) */
        fx->cfg.lock_require = PINLET_LOCK_REQUIRE_ENFORCE;
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FAIL);
        assert_int_equal(r.status, GRPC_STATUS_PERMISSION_DENIED);
        assert_string_equal(r.message,
                            "pinlet: nginx:1.25 is not in the lock (lock.require: enforce)");
        result_done(&r);
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx@" D3, NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        result_done(&r);
        r = run(fx, pinlet_interceptor_create_container, create_request(IMAGE_ID, NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FAIL);
        assert_int_equal(r.status, GRPC_STATUS_PERMISSION_DENIED);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 1);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 5);
        assert_string_equal(rec_str(recs, 0, "source"), "lock");
        assert_string_equal(rec_str(recs, 0, "lock"), path);
        assert_string_equal(rec_str(recs, 1, "decision"), "unlocked");
        assert_string_equal(rec_str(recs, 2, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 2, "source"), "registry");
        assert_string_equal(rec_str(recs, 3, "decision"), "rejected");
        assert_string_equal(rec_str(recs, 4, "decision"), "rejected");
        json_decref(recs);

        fx->ic = saved;
        pinlet_interceptor_free(ic);
        pinlet_lock_free(lock);
}

/* A registry registries.conf blocks: the reference goes to the runtime as written (which
 * refuses it), even with on_failure closed, and the record says why. */
static void test_blocked_registry(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        json_t *recs;

        fx->fake.fail = PINLET_REGISTRY_EBLOCKED;
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("blocked.example/team/app:v1", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        result_done(&r);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 1);
        assert_string_equal(rec_str(recs, 0, "decision"), "passed_through");
        assert_non_null(strstr(rec_str(recs, 0, "error"), "fake failure"));
        json_decref(recs);
}

static void test_closed_failures(void **state)
{
        static const struct {
                int code;
                int status;
        } cases[] = {
                { PINLET_ENOTFOUND, GRPC_STATUS_NOT_FOUND },
                { PINLET_EUNAUTH, GRPC_STATUS_PERMISSION_DENIED },
                { PINLET_EUNAVAIL, GRPC_STATUS_UNAVAILABLE },
                { PINLET_ETIMEOUT, GRPC_STATUS_UNAVAILABLE },
                { PINLET_ETLS, GRPC_STATUS_UNAVAILABLE },
                { PINLET_EPROTO, GRPC_STATUS_UNAVAILABLE },
        };
        struct fx *fx = *state;
        json_t *recs;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct pinlet_intercept_result r;

                fx->fake.fail = cases[i].code;
                r = run(fx, pinlet_interceptor_pull_image,
                        pull_request("registry.example/team/app:v1", "alice", NULL, &WEB));
                assert_int_equal(r.action, PINLET_FAIL);
                assert_int_equal(r.status, cases[i].status);
                assert_non_null(r.message);
                assert_true(strncmp(r.message, "pinlet: ", 8) == 0);
                assert_non_null(strstr(r.message, "registry.example/team/app:v1"));
                assert_non_null(strstr(r.message, "registry registry.example"));
                assert_non_null(strstr(r.message, "fake failure"));
                assert_null(strstr(r.message, SECRET));
                result_done(&r);
        }
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), ELEMENTSOF(cases));
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                assert_string_equal(rec_str(recs, i, "decision"), "rejected");
                assert_non_null(strstr(rec_str(recs, i, "error"), "fake failure"));
                assert_null(rec_str(recs, i, "resolved"));
        }
        json_decref(recs);
        assert_file_lacks(fx->audit_path, SECRET);
}

static void test_open_failures(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        json_t *recs;

        fx->fake.fail = PINLET_EUNAVAIL;
        /* per registry: open.example fails open while the global setting is closed */
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("open.example/app:v1", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run(fx, pinlet_interceptor_create_container,
                create_request("open.example/app:v1", NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        /* globally open */
        fx->cfg.on_failure = PINLET_FAIL_OPEN;
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 3);
        for (size_t i = 0; i < 3; i++) {
                assert_string_equal(rec_str(recs, i, "decision"), "passed_through");
                assert_non_null(strstr(rec_str(recs, i, "error"), "fake failure"));
        }
        assert_string_equal(rec_str(recs, 1, "method"), "CreateContainer");
        assert_string_equal(rec_str(recs, 1, "container"), "app");
        json_decref(recs);
}

/* A pull that fell open fetched whatever the tag is now: the old pin must not be used for
 * the run. */
static void test_open_pull_forgets_pin(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        Pinlet__Cri__CreateContainerRequest *m;
        char *d = NULL, path[160], buf[4096];
        json_t *recs;
        FILE *f;
        size_t n;

        assert_int_equal(pinlet_pins_record(fx->pins, "open.example/app:v1", D2, NULL, NULL, NULL),
                         0);
        assert_int_equal(
                pinlet_pins_record(fx->pins, "docker.io/library/nginx:1.25", D2, NULL, NULL, NULL),
                0);
        fx->fake.fail = PINLET_EUNAVAIL;
        /* closed: the call fails, nothing was pulled, the pin stays */
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FAIL);
        result_done(&r);
        assert_int_equal(pinlet_pins_lookup(fx->pins, "docker.io/library/nginx:1.25", &d), 0);
        assert_string_equal(d, D2);
        free(d);
        d = NULL;

        /* open: the original tag goes through and its pin is forgotten, on disk too */
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("open.example/app:v1", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        assert_int_equal(pinlet_pins_lookup(fx->pins, "open.example/app:v1", &d), -ENOENT);
        snprintf(path, sizeof(path), "%s/state/" PINLET_PINS_FILE, fx->dir);
        f = fopen(path, "r");
        assert_non_null(f);
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        fclose(f);
        assert_non_null(strstr(buf, "{\"ref\":\"open.example/app:v1\",\"forgotten\":true}"));

        /* the run does not use the old digest: still failing -> passed through ... */
        r = run(fx, pinlet_interceptor_create_container,
                create_request("open.example/app:v1", NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        /* ... and once the registry answers, what it says now */
        fx->fake.fail = 0;
        fx->fake.digest = D3;
        r = run(fx, pinlet_interceptor_create_container,
                create_request("open.example/app:v1", NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__create_container_request__unpack(NULL, r.len, r.data);
        assert_non_null(m);
        assert_bin_equal(m->config->image->image, "open.example/app@" D3);
        pinlet__cri__create_container_request__free_unpacked(m, NULL);
        result_done(&r);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 4);
        assert_string_equal(rec_str(recs, 0, "decision"), "rejected");
        assert_string_equal(rec_str(recs, 1, "method"), "PullImage");
        assert_string_equal(rec_str(recs, 1, "decision"), "passed_through");
        assert_non_null(strstr(rec_str(recs, 1, "error"), "fake failure"));
        assert_string_equal(rec_str(recs, 2, "decision"), "passed_through");
        assert_string_equal(rec_str(recs, 3, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 3, "source"), "registry");
        json_decref(recs);
}

static void test_pull_bad_auth(void **state)
{
        struct fx *fx = *state;
        Pinlet__Cri__PullImageRequest m = PINLET__CRI__PULL_IMAGE_REQUEST__INIT;
        Pinlet__Cri__ImageSpec spec = PINLET__CRI__IMAGE_SPEC__INIT;
        Pinlet__Cri__AuthConfig auth = PINLET__CRI__AUTH_CONFIG__INIT;
        struct pinlet_intercept_result r;

        spec.image = bin("nginx:1.25");
        m.image = &spec;
        auth.auth = bin("!!!not base64 " SECRET);
        m.auth = &auth;
        r = run(fx, pinlet_interceptor_pull_image, pack(&m.base));
        assert_int_equal(r.action, PINLET_FAIL);
        assert_int_equal(r.status, GRPC_STATUS_INVALID_ARGUMENT);
        assert_null(strstr(r.message, SECRET));
        result_done(&r);
        assert_int_equal(fx->fake.calls, 0);
        assert_file_lacks(fx->audit_path, SECRET);
}

static void test_skips(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        json_t *recs;
        const struct pod system = { "kube-system", "coredns", "uid-9" };

        /* digest references, image IDs, empty images: nothing to decide */
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx@" D3, NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("nginx:1.25@" D3, NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run(fx, pinlet_interceptor_image_status, status_request(IMAGE_ID));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run(fx, pinlet_interceptor_image_status, status_request(""));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        /* out of scope: excluded namespace, excluded registry */
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("coredns:1.11", NULL, NULL, &system));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("internal.example/tool:1", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        assert_int_equal(fx->fake.calls, 0);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 0);
        json_decref(recs);

        /* not a valid reference: the runtime answers it; pinlet records it went through */
        r = run(fx, pinlet_interceptor_pull_image, pull_request("Nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        assert_int_equal(fx->fake.calls, 0);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 1);
        assert_string_equal(rec_str(recs, 0, "decision"), "passed_through");
        assert_non_null(rec_str(recs, 0, "error"));
        json_decref(recs);
}

static void test_malformed(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        static const struct {
                icept_fn fn;
                const char *msg;
        } cases[] = {
                { pinlet_interceptor_pull_image, "pinlet: malformed PullImageRequest" },
                { pinlet_interceptor_image_status, "pinlet: malformed ImageStatusRequest" },
                { pinlet_interceptor_create_container, "pinlet: malformed CreateContainerRequest" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                r = run(fx, cases[i].fn, raw("\x12\x7f", 2));
                assert_int_equal(r.action, PINLET_FAIL);
                assert_int_equal(r.status, GRPC_STATUS_INVALID_ARGUMENT);
                assert_string_equal(r.message, cases[i].msg);
                result_done(&r);
        }
}

/* ---- ImageStatus ---- */

static void test_status(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        Pinlet__Cri__ImageStatusRequest *m;
        json_t *recs;

        r = run(fx, pinlet_interceptor_image_status, status_request("nginx:1.25"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__image_status_request__unpack(NULL, r.len, r.data);
        assert_bin_equal(m->image->image, "docker.io/library/nginx@" D1);
        assert_true(m->verbose);
        pinlet__cri__image_status_request__free_unpacked(m, NULL);
        result_done(&r);
        assert_false(fx->fake.last_auth); /* node credentials */

        /* registry unreachable, no pin: forwarded unchanged, never failed */
        fx->fake.fail = PINLET_EUNAVAIL;
        r = run(fx, pinlet_interceptor_image_status, status_request("redis:7"));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        /* not found (an answer, not an outage), also with closed on_failure */
        fx->fake.fail = PINLET_ENOTFOUND;
        r = run(fx, pinlet_interceptor_image_status, status_request("redis:8"));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 3);
        assert_string_equal(rec_str(recs, 0, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 0, "method"), "ImageStatus");
        assert_null(json_object_get(json_array_get(recs, 0), "pod"));
        assert_string_equal(rec_str(recs, 1, "decision"), "passed_through");
        assert_non_null(strstr(rec_str(recs, 1, "error"), "fake failure unavailable"));
        assert_string_equal(rec_str(recs, 2, "decision"), "passed_through");
        json_decref(recs);
}

/* An outage with a pin: ImageStatus asks about what was pulled. */
static void test_status_outage_uses_pin(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        Pinlet__Cri__ImageStatusRequest *m;
        json_t *recs;

        assert_int_equal(
                pinlet_pins_record(fx->pins, "docker.io/library/redis:7", D2, NULL, NULL, NULL), 0);
        fx->fake.fail = PINLET_ETIMEOUT;
        r = run(fx, pinlet_interceptor_image_status, status_request("redis:7"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__image_status_request__unpack(NULL, r.len, r.data);
        assert_bin_equal(m->image->image, "docker.io/library/redis@" D2);
        pinlet__cri__image_status_request__free_unpacked(m, NULL);
        result_done(&r);
        /* refused credentials are not an outage: the pin is not used */
        fx->fake.fail = PINLET_EUNAUTH;
        r = run(fx, pinlet_interceptor_image_status, status_request("redis:7"));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 2);
        assert_string_equal(rec_str(recs, 0, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 0, "source"), "pin");
        assert_non_null(rec_str(recs, 0, "error"));
        assert_string_equal(rec_str(recs, 1, "decision"), "passed_through");
        json_decref(recs);
}

/* ---- CreateContainer ---- */

static void test_create_uses_pin(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        Pinlet__Cri__CreateContainerRequest *m;
        const char *mounts[] = { "registry.example/data:v1", NULL, "busybox@" D3, IMAGE_ID };
        json_t *recs;

        /* what PullImage recorded; the registry now fails (or would say otherwise) */
        assert_int_equal(pinlet_pins_record(fx->pins, "registry.example/team/app:v1", D1,
                                            "prod/web-0/uid-1", NULL, NULL),
                         0);
        assert_int_equal(pinlet_pins_record(fx->pins, "registry.example/data:v1", D2,
                                            "prod/web-0/uid-1", NULL, NULL),
                         0);
        fx->fake.fail = PINLET_EUNAVAIL;
        r = run(fx, pinlet_interceptor_create_container,
                create_request("registry.example/team/app:v1", mounts, 4, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        assert_int_equal(fx->fake.calls, 0);
        m = pinlet__cri__create_container_request__unpack(NULL, r.len, r.data);
        assert_non_null(m);
        assert_bin_equal(m->config->image->image, "registry.example/team/app@" D1);
        assert_bin_equal(m->config->image->user_specified_image, "app:user-wrote-this");
        assert_bin_equal(m->config->mounts[0]->image->image, "registry.example/data@" D2);
        assert_null(m->config->mounts[1]->image);
        assert_bin_equal(m->config->mounts[2]->image->image, "busybox@" D3);
        assert_bin_equal(m->config->mounts[3]->image->image, IMAGE_ID);
        assert_bin_equal(m->pod_sandbox_id, "sandbox-1");
        pinlet__cri__create_container_request__free_unpacked(m, NULL);
        result_done(&r);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 2);
        for (size_t i = 0; i < 2; i++) {
                assert_string_equal(rec_str(recs, i, "method"), "CreateContainer");
                assert_string_equal(rec_str(recs, i, "source"), "pin");
                assert_string_equal(rec_str(recs, i, "decision"), "substituted");
                assert_string_equal(rec_str(recs, i, "container"), "app");
                assert_null(json_object_get(json_array_get(recs, i), "registry_ms"));
        }
        assert_string_equal(rec_str(recs, 1, "image"), "registry.example/data:v1");
        json_decref(recs);
}

static void test_create_without_pin(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        Pinlet__Cri__CreateContainerRequest *m;
        json_t *recs;

        /* no pin: resolved with the node's credentials */
        r = run(fx, pinlet_interceptor_create_container,
                create_request("nginx:1.25", NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__create_container_request__unpack(NULL, r.len, r.data);
        assert_bin_equal(m->config->image->image, "docker.io/library/nginx@" D1);
        pinlet__cri__create_container_request__free_unpacked(m, NULL);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 1);
        assert_false(fx->fake.last_auth);

        /* kubelet's form: an image ID, untouched, nothing resolved or recorded */
        r = run(fx, pinlet_interceptor_create_container, create_request(IMAGE_ID, NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        assert_int_equal(fx->fake.calls, 1);

        /* closed failure of one mount fails the whole call; only that is recorded */
        {
                const char *mounts[] = { "quay.io/org/models:v3" };

                /* config.image would be substituted from its pin, but the call fails */
                assert_int_equal(pinlet_pins_record(fx->pins, "registry.example/pinned:v1", D2,
                                                    NULL, NULL, NULL),
                                 0);
                fx->fake.fail = PINLET_ENOTFOUND;
                fake_now += 31000;
                r = run(fx, pinlet_interceptor_create_container,
                        create_request("registry.example/pinned:v1", mounts, 1, &WEB));
                assert_int_equal(r.action, PINLET_FAIL);
                assert_int_equal(r.status, GRPC_STATUS_NOT_FOUND);
                assert_non_null(strstr(r.message, "quay.io/org/models:v3"));
                result_done(&r);
        }
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 2);
        assert_string_equal(rec_str(recs, 0, "source"), "registry");
        assert_string_equal(rec_str(recs, 1, "decision"), "rejected");
        assert_string_equal(rec_str(recs, 1, "image"), "quay.io/org/models:v3");
        json_decref(recs);
}

static void test_create_audit_mode(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        json_t *recs;

        fx->cfg.mode = PINLET_MODE_AUDIT;
        assert_int_equal(
                pinlet_pins_record(fx->pins, "docker.io/library/nginx:1.25", D2, NULL, NULL, NULL),
                0);
        r = run(fx, pinlet_interceptor_create_container,
                create_request("nginx:1.25", NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 1);
        assert_string_equal(rec_str(recs, 0, "decision"), "would_substitute");
        assert_string_equal(rec_str(recs, 0, "resolved"), "docker.io/library/nginx@" D2);
        assert_string_equal(rec_str(recs, 0, "source"), "pin");
        json_decref(recs);
}

/* ---- deadlines and secrets ---- */

static void test_deadline(void **state)
{
        struct fx *fx = *state;
        struct pinlet_call_info info = { .method = "/runtime.v1.ImageService/PullImage",
                                         .may_block = true };
        struct pinlet_intercept_result r;
        int64_t now = pinlet_now_ms();
        struct blob req;

        /* the call's deadline, less a quarter kept for forwarding */
        info.deadline_ms = now + 4000;
        req = pull_request("nginx:1.25", NULL, NULL, &WEB);
        pinlet_interceptor_pull_image(fx->ic, &info, req.d, req.len, &r);
        free(req.d);
        result_done(&r);
        /* (a quarter of what was left when the interceptor looked: slack for a slow box) */
        assert_true(fx->fake.last_deadline <= info.deadline_ms - 900);
        assert_true(fx->fake.last_deadline >= now + 2900);

        /* no deadline: the configured resolve timeout */
        fx->cfg.resolve_timeout_ms = 5000;
        info.deadline_ms = INT64_MAX;
        now = pinlet_now_ms();
        req = pull_request("nginx:1.26", NULL, NULL, &WEB);
        pinlet_interceptor_pull_image(fx->ic, &info, req.d, req.len, &r);
        free(req.d);
        result_done(&r);
        assert_true(fx->fake.last_deadline >= now + 5000);
        assert_true(fx->fake.last_deadline <= pinlet_now_ms() + 5000);
}

static void test_no_secret_in_logs(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        char path[160];
        int fd, saved;

        snprintf(path, sizeof(path), "%s/stderr.log", fx->dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        saved = dup(STDERR_FILENO);
        dup2(fd, STDERR_FILENO);
        pinlet_log_setup(PINLET_LOG_DEBUG, PINLET_LOG_TEXT);

        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", "alice", NULL, &WEB));
        result_done(&r);
        fx->fake.fail = PINLET_EUNAUTH;
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:2", "alice", NULL, &WEB));
        result_done(&r);
        fx->cfg.on_failure = PINLET_FAIL_OPEN;
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:3", "alice", NULL, &WEB));
        result_done(&r);

        pinlet_log_setup(PINLET_LOG_ERROR, PINLET_LOG_TEXT);
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(fd);
        {
                char cmd[256];

                snprintf(cmd, sizeof(cmd), "cat '%s' >&2", path);
                if (getenv("PINLET_TEST_VERBOSE"))
                        (void)!system(cmd);
        }
        assert_file_lacks(path, SECRET);
        assert_file_lacks(fx->audit_path, SECRET);
        {
                /* the log did say something (the test would be empty otherwise) */
                struct stat st;

                assert_int_equal(stat(path, &st), 0);
                assert_true(st.st_size > 0);
        }
}

/* Concurrent pulls of one tag share one resolution (the cache's single flight) and each
 * leaves its own complete audit line. */
#define N_THREADS 8
#define N_CALLS   25

static void *pull_thread(void *arg)
{
        struct fx *fx = arg;

        for (int i = 0; i < N_CALLS; i++) {
                struct pinlet_intercept_result r =
                        run(fx, pinlet_interceptor_pull_image,
                            pull_request("nginx:1.25", NULL, NULL, &WEB));

                if (r.action != PINLET_FORWARD_REWRITTEN)
                        return (void *)1;
                result_done(&r);
        }
        return NULL;
}

static void test_concurrent_pulls(void **state)
{
        struct fx *fx = *state;
        pthread_t t[N_THREADS];
        json_t *recs;

        fx->fake.delay = 50000;
        for (int i = 0; i < N_THREADS; i++)
                assert_int_equal(pthread_create(&t[i], NULL, pull_thread, fx), 0);
        for (int i = 0; i < N_THREADS; i++) {
                void *ret;

                assert_int_equal(pthread_join(t[i], &ret), 0);
                assert_null(ret);
        }
        assert_int_equal(fx->fake.calls, 1);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), N_THREADS * N_CALLS);
        for (size_t i = 0; i < json_array_size(recs); i++)
                assert_string_equal(rec_str(recs, i, "decision"), "substituted");
        json_decref(recs);
}

/* ---- the completion-queue thread (may_block false) ---- */

/* ImageStatus: a fresh cache entry is decided at once; a miss defers to the registry's
 * queue (its host in lower case) and writes nothing. */
static void test_fast_status(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        Pinlet__Cri__ImageStatusRequest *m;
        json_t *recs;

        r = run(fx, pinlet_interceptor_image_status, status_request("nginx:1.25"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 1);
        r = run_fast(fx, pinlet_interceptor_image_status, status_request("nginx:1.25"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__image_status_request__unpack(NULL, r.len, r.data);
        assert_non_null(m);
        assert_bin_equal(m->image->image, "docker.io/library/nginx@" D1);
        pinlet__cri__image_status_request__free_unpacked(m, NULL);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 1);

        r = run_fast(fx, pinlet_interceptor_image_status,
                     status_request("Reg.Example:5000/app:v1"));
        assert_int_equal(r.action, PINLET_DEFER);
        assert_non_null(r.queue);
        assert_string_equal(r.queue, "reg.example:5000");
        result_done(&r);
        assert_int_equal(fx->fake.calls, 1);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 2); /* nothing for the deferred attempt */
        assert_string_equal(rec_str(recs, 1, "source"), "cache");
        json_decref(recs);

        /* the worker then decides it */
        r = run(fx, pinlet_interceptor_image_status, status_request("Reg.Example:5000/app:v1"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 2);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 3);
        assert_string_equal(rec_str(recs, 2, "image"), "Reg.Example:5000/app:v1");
        assert_string_equal(rec_str(recs, 2, "source"), "registry");
        json_decref(recs);
}

/* On the completion-queue thread the records wait for the forward: they are in the
 * result's after-work, which the proxy runs once it has forwarded the call; on a worker
 * they are written before the result returns. */
static void test_fast_audit_after(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        json_t *recs;

        r = run(fx, pinlet_interceptor_image_status, status_request("nginx:1.25"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        assert_null(r.after);
        result_done(&r);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 1);
        json_decref(recs);

        r = run_info_after(fx, pinlet_interceptor_image_status, status_request("nginx:1.25"), false,
                           false);
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        assert_non_null(r.after);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 1); /* not yet */
        json_decref(recs);
        r.after(r.after_arg); /* what the proxy does after the forward */
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 2);
        /* the record borrows from the request, which went with it */
        assert_string_equal(rec_str(recs, 1, "image"), "nginx:1.25");
        assert_string_equal(rec_str(recs, 1, "source"), "cache");
        assert_string_equal(rec_str(recs, 1, "decision"), "substituted");
        json_decref(recs);
        result_done(&r);

        /* so do the records of a call forwarded as it came (a name that is no reference) */
        r = run_info_after(fx, pinlet_interceptor_image_status, status_request("Bad Name:1"), false,
                           false);
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        assert_non_null(r.after);
        r.after(r.after_arg);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 3);
        assert_string_equal(rec_str(recs, 2, "image"), "Bad Name:1");
        assert_string_equal(rec_str(recs, 2, "decision"), "passed_through");
        json_decref(recs);
        result_done(&r);
}

/* CreateContainer: a pin, a digest reference, an image ID, an out-of-scope image and mode
 * off need no registry: decided at once. */
static void test_fast_create(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        Pinlet__Cri__CreateContainerRequest *m;
        const struct pod system = { "kube-system", "coredns", "uid-9" };
        const char *mounts[] = { "busybox@" D3, IMAGE_ID };
        const char *unpinned_mount[] = { "registry.example/data:v1" };
        json_t *recs;

        assert_int_equal(
                pinlet_pins_record(fx->pins, "registry.example/team/app:v1", D1, NULL, NULL, NULL),
                0);
        r = run_fast(fx, pinlet_interceptor_create_container,
                     create_request("registry.example/team/app:v1", mounts, 2, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__create_container_request__unpack(NULL, r.len, r.data);
        assert_non_null(m);
        assert_bin_equal(m->config->image->image, "registry.example/team/app@" D1);
        assert_bin_equal(m->config->mounts[0]->image->image, "busybox@" D3);
        assert_bin_equal(m->config->mounts[1]->image->image, IMAGE_ID);
        pinlet__cri__create_container_request__free_unpacked(m, NULL);
        result_done(&r);

        r = run_fast(fx, pinlet_interceptor_create_container,
                     create_request("nginx@" D3, NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run_fast(fx, pinlet_interceptor_create_container,
                     create_request(IMAGE_ID, NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run_fast(fx, pinlet_interceptor_create_container,
                     create_request("coredns:1.11", NULL, 0, &system));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        /* excluded registry, whatever the case of its name */
        r = run_fast(fx, pinlet_interceptor_create_container,
                     create_request("Internal.Example/tool:1", NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        fx->cfg.mode = PINLET_MODE_OFF;
        r = run_fast(fx, pinlet_interceptor_create_container,
                     create_request("nginx:1.25", NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        fx->cfg.mode = PINLET_MODE_ENFORCE;
        assert_int_equal(fx->fake.calls, 0);

        /* control: no pin and no cache entry needs the registry; one such slot defers the
         * whole call (the pinned config.image is decided again on the worker) */
        r = run_fast(fx, pinlet_interceptor_create_container,
                     create_request("registry.example/team/app:v1", unpinned_mount, 1, &WEB));
        assert_int_equal(r.action, PINLET_DEFER);
        assert_string_equal(r.queue, "registry.example");
        result_done(&r);
        assert_int_equal(fx->fake.calls, 0);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 1);
        assert_string_equal(rec_str(recs, 0, "source"), "pin");
        assert_string_equal(rec_str(recs, 0, "decision"), "substituted");
        json_decref(recs);
}

/* PullImage: a cache hit whose pin already holds the digest is decided at once; one that
 * would move or create a pin (an fsync'ed write) goes to a worker, any worker (no registry
 * is asked: queue NULL); a cache miss goes to the registry's queue. */
static void test_fast_pull(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        char *d = NULL;
        json_t *recs;

        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        r = run_fast(fx, pinlet_interceptor_pull_image,
                     pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 1);

        /* the cache says D1 (an ImageStatus resolved it), the pin says D2: moving it */
        assert_int_equal(
                pinlet_pins_record(fx->pins, "docker.io/library/redis:7", D2, NULL, NULL, NULL), 0);
        r = run(fx, pinlet_interceptor_image_status, status_request("redis:7"));
        result_done(&r);
        assert_int_equal(fx->fake.calls, 2);
        r = run_fast(fx, pinlet_interceptor_pull_image, pull_request("redis:7", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_DEFER);
        assert_null(r.queue);
        result_done(&r);
        assert_int_equal(pinlet_pins_lookup(fx->pins, "docker.io/library/redis:7", &d), 0);
        assert_string_equal(d, D2); /* nothing written by the deferred attempt */
        free(d);
        d = NULL;

        /* cached, no pin yet: creating it */
        r = run(fx, pinlet_interceptor_image_status, status_request("alpine:3"));
        result_done(&r);
        r = run_fast(fx, pinlet_interceptor_pull_image, pull_request("alpine:3", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_DEFER);
        assert_null(r.queue);
        result_done(&r);
        assert_int_equal(pinlet_pins_lookup(fx->pins, "docker.io/library/alpine:3", &d), -ENOENT);

        /* not cached: the registry's queue */
        r = run_fast(fx, pinlet_interceptor_pull_image,
                     pull_request("Quay.IO/org/tool:2", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_DEFER);
        assert_string_equal(r.queue, "quay.io");
        result_done(&r);
        assert_int_equal(fx->fake.calls, 3);

        /* the worker moves the pin */
        r = run(fx, pinlet_interceptor_pull_image, pull_request("redis:7", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        assert_int_equal(pinlet_pins_lookup(fx->pins, "docker.io/library/redis:7", &d), 0);
        assert_string_equal(d, D1);
        free(d);

        recs = audit_records(fx);
        /* pull, fast pull, status redis, status alpine, pull redis + tag_moved */
        assert_int_equal(json_array_size(recs), 6);
        assert_string_equal(rec_str(recs, 1, "method"), "PullImage");
        assert_string_equal(rec_str(recs, 1, "source"), "cache");
        assert_string_equal(rec_str(recs, 1, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 4, "image"), "redis:7");
        assert_string_equal(rec_str(recs, 4, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 5, "decision"), "tag_moved");
        assert_string_equal(rec_str(recs, 5, "previous"), D2);
        json_decref(recs);
}

/* ---- NUL bytes ---- */

static struct blob nul_request(size_t i, icept_fn *ret_fn, const char **ret_path)
{
        const struct pod nul_pod = { "prod", "web" NUL_MARK "0", "uid-1" };
        const char *mounts[] = { "busybox:1", "registry.example/data:v" NUL_MARK "1" };

        switch (i) {
        case 0:
                *ret_fn = pinlet_interceptor_pull_image;
                *ret_path = "PullImageRequest field image.image";
                return with_nul(pull_request("nginx:1.25" NUL_MARK "evil", NULL, NULL, &WEB));
        case 1:
                *ret_fn = pinlet_interceptor_pull_image;
                *ret_path = "PullImageRequest field sandbox_config.metadata.name";
                return with_nul(pull_request("nginx:1.25", NULL, NULL, &nul_pod));
        case 2:
                *ret_fn = pinlet_interceptor_pull_image;
                *ret_path = "PullImageRequest field auth.password";
                return with_nul(
                        pull_request_pw("nginx:1.25", "alice", SECRET NUL_MARK "tail", NULL, &WEB));
        case 3:
                *ret_fn = pinlet_interceptor_create_container;
                *ret_path = "CreateContainerRequest field config.mounts[1].image.image";
                return with_nul(create_request("nginx:1.25", mounts, 2, &WEB));
        case 4:
                *ret_fn = pinlet_interceptor_image_status;
                *ret_path = "ImageStatusRequest field image.image";
                return with_nul(status_request("nginx:1.25" NUL_MARK "evil"));
        default:
                *ret_fn = pinlet_interceptor_create_container;
                *ret_path = "CreateContainerRequest field sandbox_config.metadata.name";
                return with_nul(create_request("nginx:1.25", NULL, 0, &nul_pod));
        }
}
#define N_NUL_CASES 6

/* A NUL in any text field: never decided under a truncated name. enforce: INVALID_ARGUMENT
 * naming the field, audited rejected; audit: forwarded, audited passed_through. Decided at
 * once on the completion-queue thread, no resolution. */
static void test_nul(void **state)
{
        struct fx *fx = *state;
        json_t *recs;

        for (int mode = 0; mode < 2; mode++) {
                fx->cfg.mode = mode ? PINLET_MODE_AUDIT : PINLET_MODE_ENFORCE;
                for (size_t i = 0; i < N_NUL_CASES; i++) {
                        struct pinlet_intercept_result r;
                        const char *path;
                        icept_fn fn;
                        struct blob req = nul_request(i, &fn, &path);
                        char want[192];

                        r = mode ? run(fx, fn, req) : run_fast(fx, fn, req);
                        if (mode) {
                                assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
                                continue;
                        }
                        assert_int_equal(r.action, PINLET_FAIL);
                        assert_int_equal(r.status, GRPC_STATUS_INVALID_ARGUMENT);
                        snprintf(want, sizeof(want), "pinlet: %s contains a NUL byte", path);
                        assert_string_equal(r.message, want);
                        result_done(&r);
                }
        }
        assert_int_equal(fx->fake.calls, 0);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 2 * N_NUL_CASES);
        for (size_t i = 0; i < 2 * N_NUL_CASES; i++) {
                bool audit_mode = i >= N_NUL_CASES;

                assert_string_equal(rec_str(recs, i, "decision"),
                                    audit_mode ? "passed_through" : "rejected");
                assert_string_equal(rec_str(recs, i, "mode"), audit_mode ? "audit" : "enforce");
                assert_non_null(strstr(rec_str(recs, i, "error"), "contains a NUL byte"));
        }
        json_decref(recs);
        assert_file_lacks(fx->audit_path, SECRET);
}

/* ---- message size: the configured max_message_size reaches the decoder ---- */

static void test_message_size(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        Pinlet__Cri__CreateContainerRequest *m;
        json_t *recs;

        /* 20 MiB (an unknown field pinlet must carry through) under a 32 MiB limit */
        fx->cfg.max_message_size = 32 * MIB;
        r = run(fx, pinlet_interceptor_create_container,
                with_padding(create_request("nginx:1.25", NULL, 0, &WEB), 20 * MIB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        assert_true(r.len > 20 * MIB);
        m = pinlet__cri__create_container_request__unpack(NULL, r.len, r.data);
        assert_non_null(m);
        assert_bin_equal(m->config->image->image, "docker.io/library/nginx@" D1);
        assert_int_equal(m->base.n_unknown_fields, 1);
        assert_int_equal(m->base.unknown_fields[0].tag, 4000);
        /* protobuf-c keeps the field's length prefix (4 bytes) with its data */
        assert_int_equal(m->base.unknown_fields[0].len, 20 * MIB + 4);
        pinlet__cri__create_container_request__free_unpacked(m, NULL);
        result_done(&r);

        /* the same request over a 16 MiB limit: refused (enforce), forwarded (audit) */
        fx->cfg.max_message_size = 16 * MIB;
        r = run_fast(fx, pinlet_interceptor_create_container,
                     with_padding(create_request("nginx:1.25", NULL, 0, &WEB), 20 * MIB));
        assert_int_equal(r.action, PINLET_FAIL);
        assert_true(r.status == GRPC_STATUS_INVALID_ARGUMENT ||
                    r.status == GRPC_STATUS_RESOURCE_EXHAUSTED);
        assert_non_null(strstr(r.message, "CreateContainerRequest"));
        assert_non_null(strstr(r.message, "exceeds"));
        result_done(&r);
        fx->cfg.mode = PINLET_MODE_AUDIT;
        r = run(fx, pinlet_interceptor_create_container,
                with_padding(create_request("nginx:1.25", NULL, 0, &WEB), 20 * MIB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        assert_int_equal(fx->fake.calls, 1);
        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 1);
        assert_string_equal(rec_str(recs, 0, "decision"), "substituted");
        json_decref(recs);
}

/* ---- a failing registry is remembered ---- */

/* Waits (bounded) until the resolver forgets host's failure. */
static bool wait_not_failing(struct fx *fx, const char *host, int64_t timeout_ms)
{
        int64_t deadline = pinlet_now_ms() + timeout_ms;

        while (pinlet_resolver_registry_failing(fx->resolver, host)) {
                if (pinlet_now_ms() > deadline)
                        return false;
                usleep(20000);
        }
        return true;
}

static void test_failing_registry(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        Pinlet__Cri__ImageStatusRequest *m;
        json_t *recs;

        fx_resolver(fx, 3000);
        assert_int_equal(
                pinlet_pins_record(fx->pins, "registry.example/pinned:v1", D2, NULL, NULL, NULL),
                0);
        fx->fake.fail = PINLET_EUNAVAIL;
        r = run(fx, pinlet_interceptor_image_status, status_request("registry.example/app:v1"));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        assert_int_equal(fx->fake.calls, 1);
        assert_true(pinlet_resolver_registry_failing(fx->resolver, "Registry.Example"));
        assert_false(pinlet_resolver_registry_failing(fx->resolver, "other.example"));

        /* within error_ttl: decided at once on the completion-queue thread, the registry is
         * not asked again */
        r = run_fast(fx, pinlet_interceptor_image_status,
                     status_request("registry.example/app:v2"));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run_fast(fx, pinlet_interceptor_image_status,
                     status_request("registry.example/pinned:v1"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__image_status_request__unpack(NULL, r.len, r.data);
        assert_non_null(m);
        assert_bin_equal(m->image->image, "registry.example/pinned@" D2);
        pinlet__cri__image_status_request__free_unpacked(m, NULL);
        result_done(&r);
        r = run_fast(fx, pinlet_interceptor_pull_image,
                     pull_request("registry.example/app:v3", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FAIL);
        assert_int_equal(r.status, GRPC_STATUS_UNAVAILABLE);
        assert_non_null(strstr(r.message, "fake failure"));
        result_done(&r);
        assert_int_equal(fx->fake.calls, 1);

        /* after error_ttl the registry is asked again */
        assert_true(wait_not_failing(fx, "registry.example", 20000));
        fx->fake.fail = 0;
        r = run_fast(fx, pinlet_interceptor_image_status,
                     status_request("registry.example/app:v2"));
        assert_int_equal(r.action, PINLET_DEFER);
        assert_string_equal(r.queue, "registry.example");
        result_done(&r);
        r = run(fx, pinlet_interceptor_image_status, status_request("registry.example/app:v2"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 2);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 5);
        assert_string_equal(rec_str(recs, 0, "decision"), "passed_through");
        assert_string_equal(rec_str(recs, 1, "decision"), "passed_through");
        assert_non_null(strstr(rec_str(recs, 1, "error"), "fake failure"));
        assert_string_equal(rec_str(recs, 2, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 2, "source"), "pin");
        assert_string_equal(rec_str(recs, 3, "decision"), "rejected");
        assert_string_equal(rec_str(recs, 4, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 4, "source"), "registry");
        json_decref(recs);
}

/* ---- registry hosts are case-insensitive ---- */

static void test_host_case(void **state)
{
        struct fx *fx = *state;
        struct pinlet_intercept_result r;
        char *d = NULL;

        r = run(fx, pinlet_interceptor_image_status, status_request("Reg.Example/app:v1"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        r = run(fx, pinlet_interceptor_image_status, status_request("reg.example/app:v1"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        r = run_fast(fx, pinlet_interceptor_image_status, status_request("REG.EXAMPLE/app:v1"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 1);

        /* the pin store too: pulled in one spelling, run in another */
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("Reg.Example/app:v2", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 2);
        assert_int_equal(pinlet_pins_lookup(fx->pins, "reg.example/app:v2", &d), 0);
        assert_string_equal(d, D1);
        free(d);
        fx->fake.fail = PINLET_EUNAVAIL;
        r = run_fast(fx, pinlet_interceptor_create_container,
                     create_request("reg.example/app:v2", NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        result_done(&r);
        assert_int_equal(fx->fake.calls, 2);

        /* per-registry policy: "Open.Example" is open.example (on_failure: open) */
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("Open.Example/app:v1", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
}

/* ---- the real registry client, against a minimal Registry API V2 on loopback ---- */

struct mini_registry {
        int fd;
        int port;
        pthread_t thread;
        atomic_int requests;
};

/* Answers HEAD/GET /v2/team/app/manifests/v1 with D1, everything else 404; one request
 * per connection. Enough for the client's HEAD path; no external component needed. */
static void *mini_registry_run(void *arg)
{
        struct mini_registry *m = arg;

        for (;;) {
                char req[4096], resp[512];
                size_t n = 0;
                int c = accept(m->fd, NULL, NULL);

                if (c < 0)
                        return NULL; /* shut down */
                while (n < sizeof(req) - 1) {
                        ssize_t k = read(c, req + n, sizeof(req) - 1 - n);

                        if (k <= 0)
                                break;
                        n += (size_t)k;
                        req[n] = 0;
                        if (strstr(req, "\r\n\r\n"))
                                break;
                }
                req[n] = 0;
                m->requests++;
                if (strstr(req, " /v2/team/app/manifests/v1 HTTP/"))
                        snprintf(resp, sizeof(resp),
                                 "HTTP/1.1 200 OK\r\n"
                                 "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                                 "Docker-Content-Digest: %s\r\n"
                                 "Content-Length: 0\r\nConnection: close\r\n\r\n",
                                 D1);
                else
                        snprintf(resp, sizeof(resp),
                                 "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n");
                (void)!write(c, resp, strlen(resp));
                close(c);
        }
}

static void mini_registry_start(struct mini_registry *m)
{
        struct sockaddr_in a = { .sin_family = AF_INET };
        socklen_t al = sizeof(a);

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        m->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(m->fd >= 0);
        assert_int_equal(bind(m->fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(m->fd, 16), 0);
        assert_int_equal(getsockname(m->fd, (struct sockaddr *)&a, &al), 0);
        m->port = ntohs(a.sin_port);
        assert_int_equal(pthread_create(&m->thread, NULL, mini_registry_run, m), 0);
}

static void mini_registry_stop(struct mini_registry *m)
{
        shutdown(m->fd, SHUT_RDWR); /* wakes accept() */
        pthread_join(m->thread, NULL);
        close(m->fd);
}

static void test_real_registry(void **state)
{
        struct fx *fx = *state;
        struct mini_registry mr = { .fd = -1 };
        struct pinlet_config cfg;
        struct pinlet_registry *reg = NULL;
        struct pinlet_resolver *resolver = NULL;
        struct pinlet_interceptor *ic = NULL;
        struct pinlet_interceptor_options io = { 0 };
        struct pinlet_call_info info = { .method = "/runtime.v1.ImageService/PullImage",
                                         .deadline_ms = INT64_MAX,
                                         .may_block = true };
        struct pinlet_intercept_result r;
        Pinlet__Cri__PullImageRequest *m;
        char path[160], image[128], want[256], host[32];
        struct blob req;
        json_t *recs;
        FILE *f;

        mini_registry_start(&mr);
        snprintf(host, sizeof(host), "127.0.0.1:%d", mr.port);
        snprintf(path, sizeof(path), "%s/registry.yaml", fx->dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "resolver:\n  timeout: 5s\nregistries:\n  \"%s\":\n    insecure: true\n", host);
        fclose(f);
        assert_int_equal(pinlet_config_init(&cfg), 0);
        assert_int_equal(pinlet_config_load(&cfg, path, false, NULL), 0);
        {
                const struct pinlet_registry_host h = { .host = host, .insecure = true };
                const struct pinlet_registry_options ro = { .connect_timeout_ms = 5000,
                                                            .resolve_timeout_ms = 5000,
                                                            .hosts = &h,
                                                            .n_hosts = 1 };

                assert_int_equal(pinlet_registry_new(&ro, &reg, NULL), 0);
        }
        assert_int_equal(pinlet_resolver_new(
                                 &(const struct pinlet_resolver_options){
                                         .registry = reg,
                                         .cache = fx->cache,
                                         .pins = fx->pins,
                                 },
                                 &resolver, NULL),
                         0);
        io = (struct pinlet_interceptor_options){
                .cfg = &cfg,
                .resolver = resolver,
                .pins = fx->pins,
                .audit = fx->audit,
        };
        assert_int_equal(pinlet_interceptor_new(&io, &ic, NULL), 0);

        /* the tag resolves through HEAD */
        snprintf(image, sizeof(image), "%s/team/app:v1", host);
        req = pull_request(image, NULL, NULL, &WEB);
        pinlet_interceptor_pull_image(ic, &info, req.d, req.len, &r);
        free(req.d);
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__pull_image_request__unpack(NULL, r.len, r.data);
        snprintf(want, sizeof(want), "%s/team/app@%s", host, D1);
        assert_bin_equal(m->image->image, want);
        pinlet__cri__pull_image_request__free_unpacked(m, NULL);
        result_done(&r);
        assert_true(mr.requests >= 1);

        /* an unknown tag: NOT_FOUND naming image and registry */
        snprintf(image, sizeof(image), "%s/team/app:missing", host);
        req = pull_request(image, NULL, NULL, &WEB);
        pinlet_interceptor_pull_image(ic, &info, req.d, req.len, &r);
        free(req.d);
        assert_int_equal(r.action, PINLET_FAIL);
        assert_int_equal(r.status, GRPC_STATUS_NOT_FOUND);
        assert_non_null(strstr(r.message, image));
        assert_non_null(strstr(r.message, host));
        result_done(&r);

        /* the registry goes away: UNAVAILABLE */
        mini_registry_stop(&mr);
        snprintf(image, sizeof(image), "%s/team/app:v2", host);
        req = pull_request(image, NULL, NULL, &WEB);
        pinlet_interceptor_pull_image(ic, &info, req.d, req.len, &r);
        free(req.d);
        assert_int_equal(r.action, PINLET_FAIL);
        assert_int_equal(r.status, GRPC_STATUS_UNAVAILABLE);
        result_done(&r);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 3);
        assert_string_equal(rec_str(recs, 0, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 0, "source"), "registry");
        /* the endpoint that answered: the registry itself, over plain http (insecure) */
        snprintf(want, sizeof(want), "http://%s", host);
        assert_non_null(rec_str(recs, 0, "endpoint"));
        assert_int_equal(strncmp(rec_str(recs, 0, "endpoint"), want, strlen(want)), 0);
        assert_string_equal(rec_str(recs, 1, "decision"), "rejected");
        assert_null(rec_str(recs, 1, "endpoint")); /* no answer, no endpoint */
        assert_string_equal(rec_str(recs, 2, "decision"), "rejected");
        json_decref(recs);

        pinlet_interceptor_free(ic);
        pinlet_resolver_free(resolver);
        pinlet_registry_free(reg);
        pinlet_config_free(&cfg);
}

static void test_new_errors(void **state)
{
        struct pinlet_interceptor *ic = NULL;
        struct pinlet_interceptor_options o = { 0 };
        struct pinlet_config cfg;
        struct pinlet_error *err = NULL;

        assert_int_equal(pinlet_interceptor_new(&o, &ic, &err), PINLET_EINVAL);
        pinlet_error_free(err);
        err = NULL;
        assert_int_equal(pinlet_config_init(&cfg), 0);
        o.cfg = &cfg;
        assert_int_equal(pinlet_interceptor_new(&o, &ic, &err), PINLET_EINVAL);
        pinlet_error_free(err);
        assert_null(ic);
        pinlet_config_free(&cfg);
        pinlet_interceptor_free(NULL);
        assert_int_equal(pinlet_interceptor_status_for_error(-ENOMEM), GRPC_STATUS_INTERNAL);
        assert_int_equal(pinlet_interceptor_status_for_error(PINLET_INTERCEPT_ENUL),
                         GRPC_STATUS_INVALID_ARGUMENT);
}

/* ---- short names in front of CRI-O (options.short_names) ---- */

/* Writes DIR/registries.conf with text and (re)creates the interceptor with short names
 * qualified from it (crio true, as serve does in front of CRI-O) or not (containerd). */
static struct pinlet_hosts *fx_short_names(struct fx *fx, const char *text, bool crio)
{
        struct pinlet_hosts *h = NULL;
        char path[160];
        FILE *f;

        snprintf(path, sizeof(path), "%s/registries.conf", fx->dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        assert_int_equal(pinlet_hosts_new(
                                 &(const struct pinlet_hosts_options){
                                         .registries_conf = path,
                                 },
                                 &h, NULL),
                         0);
        pinlet_interceptor_free(fx->ic);
        assert_int_equal(pinlet_interceptor_new(
                                 &(const struct pinlet_interceptor_options){
                                         .cfg = &fx->cfg,
                                         .resolver = fx->resolver,
                                         .pins = fx->pins,
                                         .audit = fx->audit,
                                         .short_names = crio ? h : NULL,
                                 },
                                 &fx->ic, NULL),
                         0);
        return h;
}

static const char crio_conf[] = "unqualified-search-registries = [\"quay.io\", \"docker.io\"]\n"
                                "[aliases]\n"
                                "\"app\" = \"127.0.0.1:5000/tiny/app\"\n"
                                "\"team/tool\" = \"docker.io/team/tool\"\n";

/* The image a rewritten request carries (PullImage). */
static void assert_pulled(struct pinlet_intercept_result *r, const char *want)
{
        Pinlet__Cri__PullImageRequest *m;

        assert_int_equal(r->action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__pull_image_request__unpack(NULL, r->len, r->data);
        assert_non_null(m);
        assert_bin_equal(m->image->image, want);
        pinlet__cri__pull_image_request__free_unpacked(m, NULL);
        result_done(r);
}

static void assert_pin(struct fx *fx, const char *key, const char *want)
{
        char *digest = NULL;

        if (!want) {
                assert_int_equal(pinlet_pins_lookup(fx->pins, key, &digest), -ENOENT);
                return;
        }
        assert_int_equal(pinlet_pins_lookup(fx->pins, key, &digest), 0);
        assert_string_equal(digest, want);
        free(digest);
}

/* An alias: resolved, pinned, rewritten and audited under the qualified name. */
static void test_short_alias(void **state)
{
        struct fx *fx = *state;
        struct pinlet_hosts *h = fx_short_names(fx, crio_conf, true);
        struct pinlet_intercept_result r;
        Pinlet__Cri__ImageStatusRequest *m;
        json_t *recs;

        r = run(fx, pinlet_interceptor_pull_image, pull_request("app:v1", NULL, NULL, &WEB));
        assert_pulled(&r, "127.0.0.1:5000/tiny/app@" D1);
        assert_string_equal(fx->fake.last_ref, "127.0.0.1:5000/tiny/app:v1");
        assert_pin(fx, "127.0.0.1:5000/tiny/app:v1", D1);
        assert_pin(fx, "docker.io/library/app:v1", NULL);
        /* an alias of a Docker Hub name with a namespace keeps it */
        r = run(fx, pinlet_interceptor_pull_image, pull_request("team/tool", NULL, NULL, &WEB));
        assert_pulled(&r, "docker.io/team/tool@" D1);
        assert_pin(fx, "docker.io/team/tool:latest", D1);
        /* ImageStatus of the short name: the same pin, no registry round trip */
        fx->fake.fail = PINLET_EUNAVAIL;
        r = run(fx, pinlet_interceptor_image_status, status_request("app:v1"));
        assert_int_equal(r.action, PINLET_FORWARD_REWRITTEN);
        m = pinlet__cri__image_status_request__unpack(NULL, r.len, r.data);
        assert_bin_equal(m->image->image, "127.0.0.1:5000/tiny/app@" D1);
        pinlet__cri__image_status_request__free_unpacked(m, NULL);
        result_done(&r);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 3);
        assert_string_equal(rec_str(recs, 0, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 0, "image"), "app:v1");
        assert_string_equal(rec_str(recs, 0, "resolved"), "127.0.0.1:5000/tiny/app@" D1);
        assert_string_equal(rec_str(recs, 2, "resolved"), "127.0.0.1:5000/tiny/app@" D1);
        json_decref(recs);
        pinlet_interceptor_free(TAKE_PTR(fx->ic));
        pinlet_hosts_free(h);
}

/* Several search registries, docker.io not first: not resolved, whatever on_failure says. */
static void test_short_ambiguous(void **state)
{
        struct fx *fx = *state;
        struct pinlet_hosts *h = fx_short_names(fx, crio_conf, true);
        struct pinlet_intercept_result r;
        const char *why = "short name 'nginx' is ambiguous: unqualified-search-registries has "
                          "quay.io, docker.io";
        json_t *recs;

        assert_int_equal(pinlet_policy_on_failure(&fx->cfg, "docker.io"), PINLET_FAIL_CLOSED);
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run_fast(fx, pinlet_interceptor_image_status, status_request("nginx:1.25"));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run(fx, pinlet_interceptor_create_container,
                create_request("nginx:1.25", NULL, 0, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        /* a qualified name is the runtime's own: resolved as ever */
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("docker.io/library/nginx:1.25", NULL, NULL, &WEB));
        assert_pulled(&r, "docker.io/library/nginx@" D1);
        assert_int_equal(fx->fake.calls, 1);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 4);
        for (size_t i = 0; i < 3; i++) {
                assert_string_equal(rec_str(recs, i, "decision"), "passed_through");
                assert_string_equal(rec_str(recs, i, "image"), "nginx:1.25");
                assert_string_equal(rec_str(recs, i, "error"), why);
                assert_null(json_object_get(json_array_get(recs, i), "resolved"));
        }
        assert_string_equal(rec_str(recs, 0, "method"), "PullImage");
        assert_string_equal(rec_str(recs, 1, "method"), "ImageStatus");
        assert_string_equal(rec_str(recs, 2, "method"), "CreateContainer");
        assert_string_equal(rec_str(recs, 3, "decision"), "substituted");
        json_decref(recs);

        /* no search registries at all: CRI-O refuses short names; so no registries.conf */
        pinlet_hosts_free(h);
        h = fx_short_names(fx, "", true);
        r = run(fx, pinlet_interceptor_pull_image, pull_request("redis:7", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        recs = audit_records(fx);
        assert_string_equal(rec_str(recs, 4, "decision"), "passed_through");
        assert_non_null(strstr(rec_str(recs, 4, "error"), "no unqualified-search-registries"));
        json_decref(recs);
        assert_int_equal(fx->fake.calls, 1);
        pinlet_interceptor_free(TAKE_PTR(fx->ic));
        pinlet_hosts_free(h);
}

/* docker.io first, or the only search registry: qualified there. */
static void test_short_search(void **state)
{
        struct fx *fx = *state;
        struct pinlet_hosts *h = fx_short_names(
                fx, "unqualified-search-registries = [\"docker.io\", \"quay.io\"]\n", true);
        struct pinlet_intercept_result r;
        char path[160];
        FILE *f;
        json_t *recs;

        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_pulled(&r, "docker.io/library/nginx@" D1);
        assert_pin(fx, "docker.io/library/nginx:1.25", D1);
        /* docker.io has no such tag: the runtime would try quay.io next, so the pull goes
         * through unresolved even with on_failure closed */
        fx->fake.fail = PINLET_ENOTFOUND;
        r = run(fx, pinlet_interceptor_pull_image, pull_request("only-quay:1", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        /* a qualified name fails closed as ever */
        r = run(fx, pinlet_interceptor_pull_image,
                pull_request("docker.io/library/only-quay:1", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FAIL);
        assert_int_equal(r.status, GRPC_STATUS_NOT_FOUND);
        result_done(&r);
        fx->fake.fail = 0;

        /* one search registry; registries.conf edited while running applies at once */
        snprintf(path, sizeof(path), "%s/registries.conf", fx->dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs("unqualified-search-registries = [\"registry.corp\"]\n", f);
        fclose(f);
        r = run(fx, pinlet_interceptor_pull_image, pull_request("team/app:v1", NULL, NULL, &WEB));
        assert_pulled(&r, "registry.corp/team/app@" D1);
        assert_string_equal(fx->fake.last_ref, "registry.corp/team/app:v1");
        assert_pin(fx, "registry.corp/team/app:v1", D1);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 4);
        assert_string_equal(rec_str(recs, 0, "decision"), "substituted");
        assert_string_equal(rec_str(recs, 1, "decision"), "passed_through");
        assert_non_null(strstr(rec_str(recs, 1, "error"),
                               "short name 'only-quay': docker.io did not answer for it, and "
                               "the runtime would try the next unqualified-search-registries "
                               "(quay.io): "));
        assert_string_equal(rec_str(recs, 2, "decision"), "rejected");
        assert_string_equal(rec_str(recs, 3, "resolved"), "registry.corp/team/app@" D1);
        json_decref(recs);
        pinlet_interceptor_free(TAKE_PTR(fx->ic));
        pinlet_hosts_free(h);
}

/* Mode audit: the same qualification, recorded, nothing rewritten or pinned. */
static void test_short_audit_mode(void **state)
{
        struct fx *fx = *state;
        struct pinlet_hosts *h = fx_short_names(fx, crio_conf, true);
        struct pinlet_intercept_result r;
        json_t *recs;

        fx->cfg.mode = PINLET_MODE_AUDIT;
        r = run(fx, pinlet_interceptor_pull_image, pull_request("app:v1", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        assert_pin(fx, "127.0.0.1:5000/tiny/app:v1", NULL);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 2);
        assert_string_equal(rec_str(recs, 0, "decision"), "would_substitute");
        assert_string_equal(rec_str(recs, 0, "resolved"), "127.0.0.1:5000/tiny/app@" D1);
        assert_string_equal(rec_str(recs, 0, "mode"), "audit");
        assert_string_equal(rec_str(recs, 1, "decision"), "passed_through");
        assert_non_null(strstr(rec_str(recs, 1, "error"), "is ambiguous"));
        assert_string_equal(rec_str(recs, 1, "mode"), "audit");
        json_decref(recs);
        pinlet_interceptor_free(TAKE_PTR(fx->ic));
        pinlet_hosts_free(h);
}

/* In front of containerd the same registries.conf changes nothing: docker.io. */
static void test_short_containerd(void **state)
{
        struct fx *fx = *state;
        struct pinlet_hosts *h = fx_short_names(fx, crio_conf, false);
        struct pinlet_intercept_result r;

        r = run(fx, pinlet_interceptor_pull_image, pull_request("app:v1", NULL, NULL, &WEB));
        assert_pulled(&r, "docker.io/library/app@" D1);
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_pulled(&r, "docker.io/library/nginx@" D1);
        assert_pin(fx, "docker.io/library/app:v1", D1);
        assert_pin(fx, "127.0.0.1:5000/tiny/app:v1", NULL);
        pinlet_interceptor_free(TAKE_PTR(fx->ic));
        pinlet_hosts_free(h);
}

/* lock.require: enforce: a short name that names no one registry cannot be in the lock. */
static void test_short_lock_require(void **state)
{
        struct fx *fx = *state;
        struct pinlet_hosts *h = fx_short_names(fx, crio_conf, true);
        struct pinlet_intercept_result r;
        json_t *recs;

        fx->cfg.lock_require = PINLET_LOCK_REQUIRE_ENFORCE;
        r = run(fx, pinlet_interceptor_pull_image, pull_request("nginx:1.25", NULL, NULL, &WEB));
        assert_int_equal(r.action, PINLET_FAIL);
        assert_int_equal(r.status, GRPC_STATUS_PERMISSION_DENIED);
        result_done(&r);
        /* ImageStatus is not subject to lock.require */
        r = run(fx, pinlet_interceptor_image_status, status_request("nginx:1.25"));
        assert_int_equal(r.action, PINLET_FORWARD_ORIGINAL);
        assert_int_equal(fx->fake.calls, 0);

        recs = audit_records(fx);
        assert_int_equal(json_array_size(recs), 2);
        assert_string_equal(rec_str(recs, 0, "decision"), "rejected");
        assert_string_equal(rec_str(recs, 1, "decision"), "passed_through");
        json_decref(recs);
        pinlet_interceptor_free(TAKE_PTR(fx->ic));
        pinlet_hosts_free(h);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        const struct CMUnitTest tests[] = {
                T(test_pull_enforce),
                T(test_pull_cache_keys),
                T(test_pull_tag_moved),
                T(test_pull_stale),
                T(test_pull_audit_mode),
                T(test_off_mode),
                T(test_blocked_registry),
                T(test_lock_files),
                T(test_closed_failures),
                T(test_open_failures),
                T(test_open_pull_forgets_pin),
                T(test_pull_bad_auth),
                T(test_skips),
                T(test_malformed),
                T(test_status),
                T(test_status_outage_uses_pin),
                T(test_create_uses_pin),
                T(test_create_without_pin),
                T(test_create_audit_mode),
                T(test_deadline),
                T(test_no_secret_in_logs),
                T(test_concurrent_pulls),
                T(test_fast_status),
                T(test_fast_audit_after),
                T(test_fast_create),
                T(test_fast_pull),
                T(test_nul),
                T(test_message_size),
                T(test_failing_registry),
                T(test_host_case),
                T(test_real_registry),
                T(test_short_alias),
                T(test_short_ambiguous),
                T(test_short_search),
                T(test_short_audit_mode),
                T(test_short_containerd),
                T(test_short_lock_require),
                cmocka_unit_test(test_new_errors),
        };

        pinlet_log_setup(PINLET_LOG_ERROR, PINLET_LOG_TEXT);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
