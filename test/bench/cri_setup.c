/* SPDX-License-Identifier: Apache-2.0 */
#include "cri_setup.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc_client.h"

#define RUNTIME "/runtime.v1.RuntimeService/"
#define IMAGE   "/runtime.v1.ImageService/"

/* A growable protobuf writer; on allocation failure it sets oom and writes nothing more. */
struct pb {
        uint8_t *d;
        size_t n, cap;
        bool oom;
};

static void pb_raw(struct pb *b, const void *p, size_t len)
{
        if (b->oom)
                return;
        if (b->n + len > b->cap) {
                size_t cap = (b->n + len) * 2 + 64;
                uint8_t *d = realloc(b->d, cap);
                if (!d) {
                        b->oom = true;
                        return;
                }
                b->d = d;
                b->cap = cap;
        }
        memcpy(b->d + b->n, p, len);
        b->n += len;
}

static void pb_varint(struct pb *b, uint64_t v)
{
        uint8_t tmp[10];
        size_t n = 0;

        do {
                tmp[n] = (uint8_t)(v & 0x7f);
                v >>= 7;
                if (v)
                        tmp[n] |= 0x80;
                n++;
        } while (v);
        pb_raw(b, tmp, n);
}

static void pb_uint(struct pb *b, unsigned field, uint64_t v)
{
        pb_varint(b, (uint64_t)field << 3);
        pb_varint(b, v);
}

static void pb_bytes(struct pb *b, unsigned field, const void *p, size_t len)
{
        pb_varint(b, (uint64_t)field << 3 | 2);
        pb_varint(b, len);
        pb_raw(b, p, len);
}

static void pb_str(struct pb *b, unsigned field, const char *s)
{
        pb_bytes(b, field, s, strlen(s));
}

/* Appends sub as a nested message and frees it. */
static void pb_msg(struct pb *b, unsigned field, struct pb *sub)
{
        if (sub->oom)
                b->oom = true;
        pb_bytes(b, field, sub->d ? sub->d : (const uint8_t *)"", sub->n);
        free(sub->d);
        memset(sub, 0, sizeof(*sub));
}

/* The first top-level field 1 (length-delimited) of a message, copied NUL-terminated. All
 * responses read here (RunPodSandbox, CreateContainer, PullImage) put their id there. */
static int pb_field1_string(const uint8_t *p, size_t len, char *out, size_t size)
{
        size_t i = 0;

        while (i < len) {
                uint64_t key = 0, v = 0;
                int shift = 0;

                while (i < len) {
                        key |= (uint64_t)(p[i] & 0x7f) << shift;
                        shift += 7;
                        if (!(p[i++] & 0x80))
                                break;
                }
                if ((key & 7) != 2 && (key & 7) != 0)
                        return -EBADMSG;
                shift = 0;
                while (i < len) {
                        v |= (uint64_t)(p[i] & 0x7f) << shift;
                        shift += 7;
                        if (!(p[i++] & 0x80))
                                break;
                }
                if ((key & 7) == 0)
                        continue;
                if (v > len - i)
                        return -EBADMSG;
                if (key >> 3 == 1) {
                        if (v + 1 > size)
                                return -ENOBUFS;
                        memcpy(out, p + i, v);
                        out[v] = 0;
                        return 0;
                }
                i += v;
        }
        return -ENOENT;
}

/* One unary call; on success optionally extracts field 1 of the response. */
static int call(struct pinlet_tgrpc_channel *ch, const char *method, const struct pb *req,
                char *ret_id, size_t id_size)
{
        struct pinlet_tgrpc_result r;
        int ret;

        if (req->oom)
                return -ENOMEM;
        ret = pinlet_tgrpc_unary(ch, method, req->d ? req->d : (const uint8_t *)"", req->n, NULL, 0,
                                 120000, &r);
        if (ret == 0 && r.status != 0) {
                fprintf(stderr, "%s: %s: %s\n", method, pinlet_tgrpc_status_name(r.status),
                        r.details);
                ret = -EIO;
        } else if (ret < 0) {
                fprintf(stderr, "%s: %s\n", method, r.details ? r.details : "failed");
        } else if (ret_id) {
                ret = r.n_messages == 1 ? pb_field1_string(r.messages[0].data, r.messages[0].len,
                                                           ret_id, id_size)
                                        : -EBADMSG;
                if (ret < 0)
                        fprintf(stderr, "%s: no id in the response\n", method);
        }
        pinlet_tgrpc_result_free(&r);
        return ret;
}

/* Retries Version until the runtime answers (it may still be starting). */
static int wait_ready(struct pinlet_tgrpc_channel *ch)
{
        struct pb req = { 0 };

        pb_str(&req, 1, "v1");
        for (int i = 0; i < 100; i++) {
                struct pinlet_tgrpc_result r;
                int ret =
                        pinlet_tgrpc_unary(ch, RUNTIME "Version", req.d, req.n, NULL, 0, 5000, &r);
                bool ok = ret == 0 && r.status == 0;

                pinlet_tgrpc_result_free(&r);
                if (ok) {
                        free(req.d);
                        return 0;
                }
                nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
        }
        free(req.d);
        fprintf(stderr, "runtime did not answer Version\n");
        return -ETIMEDOUT;
}

/* PodSandboxConfig: metadata, and the host network (NamespaceMode NODE = 2) so no CNI is
 * needed. */
static void pod_config(struct pb *cfg)
{
        struct pb md = { 0 }, ns = { 0 }, sec = { 0 }, lnx = { 0 };

        pb_str(&md, 1, "pinlet-bench");     /* name */
        pb_str(&md, 2, "pinlet-bench-uid"); /* uid */
        pb_str(&md, 3, "bench");            /* namespace */
        pb_uint(&md, 4, 0);                 /* attempt */
        pb_msg(cfg, 1, &md);
        pb_uint(&ns, 1, 2);    /* NamespaceOption.network = NODE */
        pb_msg(&sec, 1, &ns);  /* LinuxSandboxSecurityContext.namespace_options */
        pb_msg(&lnx, 2, &sec); /* LinuxPodSandboxConfig.security_context */
        pb_msg(cfg, 8, &lnx);  /* PodSandboxConfig.linux */
}

int cri_pod_new(const char *target, const char *image, char *ret_pod, size_t pod_size,
                char *ret_image_ref, size_t ref_size)
{
        struct pinlet_tgrpc_channel *ch = pinlet_tgrpc_connect(target, 64 << 20, NULL);
        struct pb req = { 0 }, sub = { 0 };
        char pod[256], ref[512];
        int ret;

        if (!ch)
                return -ENOMEM;
        ret = wait_ready(ch);
        if (ret < 0)
                goto out;

        /* PullImageRequest.image(1).image(1) */
        pb_str(&sub, 1, image);
        pb_msg(&req, 1, &sub);
        ret = call(ch, IMAGE "PullImage", &req, ref, sizeof(ref));
        free(req.d);
        req = (struct pb){ 0 };
        if (ret < 0)
                goto out;

        /* RunPodSandboxRequest.config(1) */
        pod_config(&sub);
        pb_msg(&req, 1, &sub);
        ret = call(ch, RUNTIME "RunPodSandbox", &req, pod, sizeof(pod));
        free(req.d);
        if (ret < 0)
                goto out;
        if (strlen(pod) + 1 > pod_size || (ret_image_ref && strlen(ref) + 1 > ref_size)) {
                ret = -ENOBUFS;
                goto out;
        }
        memcpy(ret_pod, pod, strlen(pod) + 1);
        if (ret_image_ref)
                memcpy(ret_image_ref, ref, strlen(ref) + 1);
        ret = 0;
out:
        pinlet_tgrpc_channel_free(ch);
        return ret;
}

/* CreateContainerRequest for a container called name in pod, from image (user_image:
 * ImageSpec.user_specified_image, or NULL), with n_labels labels. */
static void create_request(struct pb *req, const char *pod, const char *name, const char *image,
                           const char *user_image, unsigned n_labels)
{
        struct pb c = { 0 }, md = { 0 }, img = { 0 }, sbx = { 0 };

        pb_str(&md, 1, name);
        pb_msg(&c, 1, &md); /* ContainerConfig.metadata */
        pb_str(&img, 1, image);
        if (user_image)
                pb_str(&img, 18, user_image); /* ImageSpec.user_specified_image */
        pb_msg(&c, 2, &img);                  /* ContainerConfig.image */
        for (unsigned l = 0; l < n_labels; l++) {
                /* map<string,string> labels = 9: entries {key = 1, value = 2} */
                struct pb e = { 0 };
                char k[64], v[128];

                snprintf(k, sizeof(k), "bench.pinlet.io/label-%02u", l);
                snprintf(v, sizeof(v), "value-%s-%02u-padding-to-make-list-responses-large", name,
                         l);
                pb_str(&e, 1, k);
                pb_str(&e, 2, v);
                pb_msg(&c, 9, &e);
        }
        pb_str(req, 1, pod); /* pod_sandbox_id */
        pb_msg(req, 2, &c);  /* config */
        pod_config(&sbx);
        pb_msg(req, 3, &sbx); /* sandbox_config */
}

int cri_setup(const char *target, const char *image, unsigned n_containers, unsigned n_labels,
              char *ret_pod, size_t pod_size)
{
        struct pinlet_tgrpc_channel *ch;
        char pod[256];
        int ret;

        ret = cri_pod_new(target, image, pod, sizeof(pod), NULL, 0);
        if (ret < 0)
                return ret;
        ch = pinlet_tgrpc_connect(target, 64 << 20, NULL);
        if (!ch)
                return -ENOMEM;
        for (unsigned i = 0; i < n_containers; i++) {
                struct pb req = { 0 };
                char name[64], id[256];

                snprintf(name, sizeof(name), "bench-%04u", i);
                create_request(&req, pod, name, image, NULL, n_labels);
                ret = call(ch, RUNTIME "CreateContainer", &req, id, sizeof(id));
                free(req.d);
                if (ret < 0)
                        goto out;
        }
        if (strlen(pod) + 1 > pod_size) {
                ret = -ENOBUFS;
                goto out;
        }
        memcpy(ret_pod, pod, strlen(pod) + 1);
        ret = 0;
out:
        pinlet_tgrpc_channel_free(ch);
        return ret;
}

int cri_create_remove(struct pinlet_tgrpc_channel *ch, const char *pod, const char *name,
                      const char *image, const char *user_image, double *ret_create_us)
{
        struct pb req = { 0 };
        struct timespec t0, t1;
        char id[256];
        int ret;

        create_request(&req, pod, name, image, user_image, 0);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ret = call(ch, RUNTIME "CreateContainer", &req, id, sizeof(id));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        free(req.d);
        if (ret < 0)
                return ret;
        *ret_create_us =
                (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
        /* RemoveContainerRequest.container_id(1): the pod never grows */
        req = (struct pb){ 0 };
        pb_str(&req, 1, id);
        ret = call(ch, RUNTIME "RemoveContainer", &req, NULL, 0);
        free(req.d);
        return ret;
}

int cri_teardown(const char *target, const char *pod_id)
{
        struct pinlet_tgrpc_channel *ch = pinlet_tgrpc_connect(target, 0, NULL);
        struct pb req = { 0 };
        int ret, ret2;

        if (!ch)
                return -ENOMEM;
        pb_str(&req, 1, pod_id);
        ret = call(ch, RUNTIME "StopPodSandbox", &req, NULL, 0);
        ret2 = call(ch, RUNTIME "RemovePodSandbox", &req, NULL, 0);
        free(req.d);
        pinlet_tgrpc_channel_free(ch);
        return ret < 0 ? ret : ret2;
}
