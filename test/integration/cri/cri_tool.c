/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pinlet_it_cri: a small CRI command-line client for shell tests and demos (crictl is
 * not packaged in Debian). Every command prints exactly one JSON object on stdout with
 * "status" (the gRPC status name, "OK" on success) and "message", plus what the response
 * held; read it with jq.
 *
 *   pinlet_it_cri [-e ENDPOINT] [-t SECONDS] COMMAND [ARGS]
 *     -e ENDPOINT   unix:///path (default: $PINLET_IT_CRI_ENDPOINT)
 *     -t SECONDS    deadline of each call (default 30)
 *
 *   version                          RuntimeService/Version
 *   status                           RuntimeService/Status (conditions)
 *   wait SECONDS                     Version until it answers OK (retry every 0.1 s)
 *   pull IMAGE [POD OPTIONS] [-u USER (-p PASSWORD | -P PASSWORD_FILE)]
 *                                    ImageService/PullImage -> image_ref
 *   image-status IMAGE               ImageService/ImageStatus -> image (null: absent)
 *   images                           ImageService/ListImages
 *   rmi IMAGE                        ImageService/RemoveImage
 *   run IMAGE [POD OPTIONS] [-U USER_SPECIFIED_IMAGE] [-l LOG_DIR]
 *                                    RunPodSandbox (host network) + CreateContainer
 *                                    (config.image.image = IMAGE, as kubelet passes an
 *                                    image ID, and user_specified_image) + StartContainer
 *                                    -> pod_sandbox_id, container_id
 *   container-status ID              RuntimeService/ContainerStatus
 *   ps [POD_ID]                      RuntimeService/ListContainers
 *   rm-pod POD_ID                    StopPodSandbox + RemovePodSandbox
 *   call METHOD                      any method with an empty request message (for
 *                                    unknown or unmodelled methods): status only
 *   POD OPTIONS: -n NAMESPACE -N POD_NAME -I POD_UID (PodSandboxConfig.metadata; pull
 *                sends it as sandbox_config like kubelet does)
 *
 * Exit status: 0 when the call answered OK, 1 when it answered another status (the JSON
 * still says which), 2 on bad usage or when the call could not be made.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cri_client.h"
#include "grpc_client.h"

struct pod_opts {
        const char *ns, *name, *uid, *log_dir, *user_image, *username, *password;
};

static struct pinlet_cri_client *client;

static json_t *strv(char **v, size_t n)
{
        json_t *a = json_array();
        size_t i;

        for (i = 0; i < n; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}

static json_t *image_json(const Critest__Image *img)
{
        if (!img)
                return json_null();
        return json_pack("{s:s, s:o, s:o, s:I, s:b}", "id", img->id, "repo_tags",
                         strv(img->repo_tags, img->n_repo_tags), "repo_digests",
                         strv(img->repo_digests, img->n_repo_digests), "size",
                         (json_int_t)img->size, "pinned", img->pinned);
}

/* Prints {"status", "message", ...extra} and returns the exit status. extra is stolen. */
static int report(const struct pinlet_cri_reply *r, json_t *extra)
{
        json_t *o = extra ? extra : json_object();

        json_object_set_new(o, "status", json_string(pinlet_tgrpc_status_name(r->status)));
        json_object_set_new(o, "message", json_string(r->message ? r->message : ""));
        json_dumpf(o, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(o);
        return r->status == 0 ? 0 : 1;
}

static int do_call(const char *method, const void *req, const ProtobufCMessageDescriptor *desc,
                   struct pinlet_cri_reply *r)
{
        int ret = pinlet_cri_call(client, method, req, desc, r);

        if (ret < 0) {
                fprintf(stderr, "pinlet_it_cri: %s: %s\n", method, r->message);
                return 2;
        }
        return 0;
}

static void pod_config(Critest__PodSandboxConfig *cfg, Critest__PodSandboxMetadata *md,
                       Critest__LinuxPodSandboxConfig *lx, Critest__LinuxSandboxSecurityContext *sc,
                       Critest__NamespaceOption *ns, const struct pod_opts *po)
{
        critest__pod_sandbox_config__init(cfg);
        critest__pod_sandbox_metadata__init(md);
        critest__linux_pod_sandbox_config__init(lx);
        critest__linux_sandbox_security_context__init(sc);
        critest__namespace_option__init(ns);
        md->name = (char *)(po->name ? po->name : "pinlet-it-pod");
        md->uid = (char *)(po->uid ? po->uid : "pinlet-it-pod-uid");
        md->namespace_ = (char *)(po->ns ? po->ns : "default");
        /* No CNI in the test environment: the pod uses the node's network. */
        ns->network = CRITEST__NAMESPACE_MODE__NODE;
        sc->namespace_options = ns;
        lx->security_context = sc;
        cfg->metadata = md;
        cfg->log_directory = (char *)(po->log_dir ? po->log_dir : "");
        cfg->linux = lx;
}

static int cmd_version(void)
{
        Critest__VersionRequest req = CRITEST__VERSION_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        json_t *o = NULL;
        int ret;

        req.version = (char *)"v1";
        ret = do_call(CRI_RUNTIME_SERVICE "Version", &req.base,
                      &critest__version_response__descriptor, &r);
        if (ret == 0) {
                if (r.resp) {
                        Critest__VersionResponse *v = (Critest__VersionResponse *)r.resp;

                        o = json_pack("{s:s, s:s, s:s, s:s}", "version", v->version, "runtime_name",
                                      v->runtime_name, "runtime_version", v->runtime_version,
                                      "runtime_api_version", v->runtime_api_version);
                }
                ret = report(&r, o);
        }
        pinlet_cri_reply_free(&r);
        return ret;
}

static int cmd_status(void)
{
        Critest__StatusRequest req = CRITEST__STATUS_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        json_t *o = NULL;
        int ret;
        size_t i;

        ret = do_call(CRI_RUNTIME_SERVICE "Status", &req.base,
                      &critest__status_response__descriptor, &r);
        if (ret == 0) {
                if (r.resp) {
                        Critest__StatusResponse *s = (Critest__StatusResponse *)r.resp;
                        json_t *conds = json_array();

                        for (i = 0; s->status && i < s->status->n_conditions; i++) {
                                Critest__RuntimeCondition *c = s->status->conditions[i];

                                json_array_append_new(
                                        conds, json_pack("{s:s, s:b, s:s, s:s}", "type", c->type,
                                                         "status", c->status, "reason", c->reason,
                                                         "message", c->message));
                        }
                        o = json_pack("{s:o}", "conditions", conds);
                }
                ret = report(&r, o);
        }
        pinlet_cri_reply_free(&r);
        return ret;
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmd_wait(double seconds)
{
        Critest__VersionRequest req = CRITEST__VERSION_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        int64_t end = now_ms() + (int64_t)(seconds * 1000);
        int ret;

        for (;;) {
                ret = do_call(CRI_RUNTIME_SERVICE "Version", &req.base,
                              &critest__version_response__descriptor, &r);
                if (ret != 0)
                        break;
                if (r.status == 0 || now_ms() >= end) {
                        ret = report(&r, NULL);
                        break;
                }
                pinlet_cri_reply_free(&r);
                usleep(100 * 1000);
        }
        pinlet_cri_reply_free(&r);
        return ret;
}

static int cmd_pull(const char *image, const struct pod_opts *po)
{
        Critest__PullImageRequest req = CRITEST__PULL_IMAGE_REQUEST__INIT;
        Critest__ImageSpec spec = CRITEST__IMAGE_SPEC__INIT;
        Critest__AuthConfig auth = CRITEST__AUTH_CONFIG__INIT;
        Critest__PodSandboxConfig cfg;
        Critest__PodSandboxMetadata md;
        Critest__LinuxPodSandboxConfig lx;
        Critest__LinuxSandboxSecurityContext sc;
        Critest__NamespaceOption ns;
        struct pinlet_cri_reply r = { 0 };
        json_t *o = NULL;
        int ret;

        spec.image = (char *)image;
        req.image = &spec;
        if (po->username || po->password) {
                auth.username = (char *)(po->username ? po->username : "");
                auth.password = (char *)(po->password ? po->password : "");
                req.auth = &auth;
        }
        /* kubelet sends the pod's config with every pull; so do we when a pod is named. */
        if (po->ns || po->name || po->uid) {
                pod_config(&cfg, &md, &lx, &sc, &ns, po);
                req.sandbox_config = &cfg;
        }
        ret = do_call(CRI_IMAGE_SERVICE "PullImage", &req.base,
                      &critest__pull_image_response__descriptor, &r);
        if (ret == 0) {
                if (r.resp)
                        o = json_pack("{s:s}", "image_ref",
                                      ((Critest__PullImageResponse *)r.resp)->image_ref);
                ret = report(&r, o);
        }
        pinlet_cri_reply_free(&r);
        return ret;
}

static int cmd_image_status(const char *image)
{
        Critest__ImageStatusRequest req = CRITEST__IMAGE_STATUS_REQUEST__INIT;
        Critest__ImageSpec spec = CRITEST__IMAGE_SPEC__INIT;
        struct pinlet_cri_reply r = { 0 };
        json_t *o = NULL;
        int ret;

        spec.image = (char *)image;
        req.image = &spec;
        ret = do_call(CRI_IMAGE_SERVICE "ImageStatus", &req.base,
                      &critest__image_status_response__descriptor, &r);
        if (ret == 0) {
                if (r.resp)
                        o = json_pack("{s:o}", "image",
                                      image_json(((Critest__ImageStatusResponse *)r.resp)->image));
                ret = report(&r, o);
        }
        pinlet_cri_reply_free(&r);
        return ret;
}

static int cmd_images(void)
{
        Critest__ListImagesRequest req = CRITEST__LIST_IMAGES_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        json_t *o = NULL;
        int ret;
        size_t i;

        ret = do_call(CRI_IMAGE_SERVICE "ListImages", &req.base,
                      &critest__list_images_response__descriptor, &r);
        if (ret == 0) {
                if (r.resp) {
                        Critest__ListImagesResponse *l = (Critest__ListImagesResponse *)r.resp;
                        json_t *a = json_array();

                        for (i = 0; i < l->n_images; i++)
                                json_array_append_new(a, image_json(l->images[i]));
                        o = json_pack("{s:o}", "images", a);
                }
                ret = report(&r, o);
        }
        pinlet_cri_reply_free(&r);
        return ret;
}

static int cmd_rmi(const char *image)
{
        Critest__RemoveImageRequest req = CRITEST__REMOVE_IMAGE_REQUEST__INIT;
        Critest__ImageSpec spec = CRITEST__IMAGE_SPEC__INIT;
        struct pinlet_cri_reply r = { 0 };
        int ret;

        spec.image = (char *)image;
        req.image = &spec;
        ret = do_call(CRI_IMAGE_SERVICE "RemoveImage", &req.base,
                      &critest__remove_image_response__descriptor, &r);
        if (ret == 0)
                ret = report(&r, NULL);
        pinlet_cri_reply_free(&r);
        return ret;
}

/* Runs a pod and a container; on a failure after RunPodSandbox, the pod is removed
 * again so that nothing is left behind, and the JSON names the step that failed. */
static int cmd_run(const char *image, const struct pod_opts *po)
{
        Critest__RunPodSandboxRequest run = CRITEST__RUN_POD_SANDBOX_REQUEST__INIT;
        Critest__CreateContainerRequest create = CRITEST__CREATE_CONTAINER_REQUEST__INIT;
        Critest__StartContainerRequest start = CRITEST__START_CONTAINER_REQUEST__INIT;
        Critest__RemovePodSandboxRequest rm = CRITEST__REMOVE_POD_SANDBOX_REQUEST__INIT;
        Critest__ContainerConfig cc = CRITEST__CONTAINER_CONFIG__INIT;
        Critest__ContainerMetadata cmd = CRITEST__CONTAINER_METADATA__INIT;
        Critest__ImageSpec spec = CRITEST__IMAGE_SPEC__INIT;
        Critest__LinuxContainerConfig clx = CRITEST__LINUX_CONTAINER_CONFIG__INIT;
        Critest__LinuxContainerSecurityContext csc =
                CRITEST__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
        Critest__NamespaceOption cns = CRITEST__NAMESPACE_OPTION__INIT;
        Critest__PodSandboxConfig cfg;
        Critest__PodSandboxMetadata md;
        Critest__LinuxPodSandboxConfig lx;
        Critest__LinuxSandboxSecurityContext sc;
        Critest__NamespaceOption ns;
        struct pinlet_cri_reply r = { 0 }, rr = { 0 };
        char *pod_id = NULL, *ctr_id = NULL;
        const char *step;
        json_t *o;
        int ret;

        pod_config(&cfg, &md, &lx, &sc, &ns, po);
        run.config = &cfg;
        step = "RunPodSandbox";
        ret = do_call(CRI_RUNTIME_SERVICE "RunPodSandbox", &run.base,
                      &critest__run_pod_sandbox_response__descriptor, &r);
        if (ret != 0 || r.status != 0)
                goto done;
        pod_id = strdup(((Critest__RunPodSandboxResponse *)r.resp)->pod_sandbox_id);
        pinlet_cri_reply_free(&r);

        cmd.name = (char *)"app";
        spec.image = (char *)image;
        spec.user_specified_image = (char *)(po->user_image ? po->user_image : "");
        cns.network = CRITEST__NAMESPACE_MODE__NODE;
        cns.pid = CRITEST__NAMESPACE_MODE__CONTAINER;
        csc.namespace_options = &cns;
        clx.security_context = &csc;
        cc.metadata = &cmd;
        cc.image = &spec;
        cc.log_path = (char *)"app_0.log";
        cc.linux = &clx;
        create.pod_sandbox_id = pod_id;
        create.config = &cc;
        create.sandbox_config = &cfg;
        step = "CreateContainer";
        ret = do_call(CRI_RUNTIME_SERVICE "CreateContainer", &create.base,
                      &critest__create_container_response__descriptor, &r);
        if (ret != 0 || r.status != 0)
                goto done;
        ctr_id = strdup(((Critest__CreateContainerResponse *)r.resp)->container_id);
        pinlet_cri_reply_free(&r);

        start.container_id = ctr_id;
        step = "StartContainer";
        ret = do_call(CRI_RUNTIME_SERVICE "StartContainer", &start.base,
                      &critest__start_container_response__descriptor, &r);
done:
        if (ret == 0) {
                o = json_pack("{s:s, s:s?, s:s?}", "step", step, "pod_sandbox_id", pod_id,
                              "container_id", ctr_id);
                ret = report(&r, o);
        }
        if (ret != 0 && pod_id) {
                rm.pod_sandbox_id = pod_id;
                pinlet_cri_call(client, CRI_RUNTIME_SERVICE "RemovePodSandbox", &rm.base,
                                &critest__remove_pod_sandbox_response__descriptor, &rr);
                pinlet_cri_reply_free(&rr);
        }
        pinlet_cri_reply_free(&r);
        free(pod_id);
        free(ctr_id);
        return ret;
}

static int cmd_container_status(const char *id)
{
        Critest__ContainerStatusRequest req = CRITEST__CONTAINER_STATUS_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        json_t *o = NULL;
        int ret;

        req.container_id = (char *)id;
        ret = do_call(CRI_RUNTIME_SERVICE "ContainerStatus", &req.base,
                      &critest__container_status_response__descriptor, &r);
        if (ret == 0) {
                Critest__ContainerStatus *s =
                        r.resp ? ((Critest__ContainerStatusResponse *)r.resp)->status : NULL;

                if (s)
                        o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s}", "id", s->id, "state",
                                      pinlet_cri_container_state_name(s->state), "exit_code",
                                      s->exit_code, "image", s->image ? s->image->image : "",
                                      "image_ref", s->image_ref, "reason", s->reason, "log_path",
                                      s->log_path);
                ret = report(&r, o);
        }
        pinlet_cri_reply_free(&r);
        return ret;
}

static int cmd_ps(const char *pod)
{
        Critest__ListContainersRequest req = CRITEST__LIST_CONTAINERS_REQUEST__INIT;
        Critest__ContainerFilter filter = CRITEST__CONTAINER_FILTER__INIT;
        struct pinlet_cri_reply r = { 0 };
        json_t *o = NULL;
        int ret;
        size_t i;

        if (pod) {
                filter.pod_sandbox_id = (char *)pod;
                req.filter = &filter;
        }
        ret = do_call(CRI_RUNTIME_SERVICE "ListContainers", &req.base,
                      &critest__list_containers_response__descriptor, &r);
        if (ret == 0) {
                if (r.resp) {
                        Critest__ListContainersResponse *l =
                                (Critest__ListContainersResponse *)r.resp;
                        json_t *a = json_array();

                        for (i = 0; i < l->n_containers; i++) {
                                Critest__Container *c = l->containers[i];

                                json_array_append_new(
                                        a, json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", c->id,
                                                     "pod_sandbox_id", c->pod_sandbox_id, "state",
                                                     pinlet_cri_container_state_name(c->state),
                                                     "image", c->image ? c->image->image : "",
                                                     "image_ref", c->image_ref));
                        }
                        o = json_pack("{s:o}", "containers", a);
                }
                ret = report(&r, o);
        }
        pinlet_cri_reply_free(&r);
        return ret;
}

static int cmd_rm_pod(const char *id)
{
        Critest__StopPodSandboxRequest stop = CRITEST__STOP_POD_SANDBOX_REQUEST__INIT;
        Critest__RemovePodSandboxRequest rm = CRITEST__REMOVE_POD_SANDBOX_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        int ret;

        stop.pod_sandbox_id = (char *)id;
        ret = do_call(CRI_RUNTIME_SERVICE "StopPodSandbox", &stop.base,
                      &critest__stop_pod_sandbox_response__descriptor, &r);
        if (ret == 0 && r.status == 0) {
                pinlet_cri_reply_free(&r);
                rm.pod_sandbox_id = (char *)id;
                ret = do_call(CRI_RUNTIME_SERVICE "RemovePodSandbox", &rm.base,
                              &critest__remove_pod_sandbox_response__descriptor, &r);
        }
        if (ret == 0)
                ret = report(&r, NULL);
        pinlet_cri_reply_free(&r);
        return ret;
}

static int cmd_call(const char *method)
{
        Critest__GetEventsRequest empty = CRITEST__GET_EVENTS_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        int ret;

        /* Any response decodes as an empty message with unknown fields. */
        ret = do_call(method, &empty.base, &critest__get_events_request__descriptor, &r);
        if (ret == 0)
                ret = report(&r, NULL);
        pinlet_cri_reply_free(&r);
        return ret;
}

static int usage(void)
{
        fprintf(stderr,
                "usage: pinlet_it_cri [-e ENDPOINT] [-t SECONDS] COMMAND [ARGS]\n"
                "commands: version | status | wait SECONDS | pull IMAGE | image-status IMAGE |\n"
                "  images | rmi IMAGE | run IMAGE | container-status ID | ps [POD_ID] |\n"
                "  rm-pod POD_ID | call METHOD\n"
                "options after the command: -n NAMESPACE -N POD_NAME -I POD_UID -l LOG_DIR\n"
                "  -U USER_SPECIFIED_IMAGE -u USER -p PASSWORD (or -P FILE)\n");
        return 2;
}

/* Reads the first line of path (without its newline) into buf. */
static int read_secret(const char *path, char *buf, size_t size)
{
        FILE *f = fopen(path, "re");

        if (!f || !fgets(buf, (int)size, f)) {
                fprintf(stderr, "pinlet_it_cri: cannot read %s\n", path);
                if (f)
                        fclose(f);
                return -1;
        }
        fclose(f);
        buf[strcspn(buf, "\n")] = '\0';
        return 0;
}

int main(int argc, char **argv)
{
        const char *endpoint = getenv("PINLET_IT_CRI_ENDPOINT");
        struct pod_opts po = { 0 };
        double timeout = 30;
        const char *cmd, *arg = NULL;
        char password[512];
        int c, ret, base;

        /* "+": stop at the command; its own options are parsed below. */
        while ((c = getopt(argc, argv, "+e:t:h")) != -1) {
                switch (c) {
                case 'e':
                        endpoint = optarg;
                        break;
                case 't':
                        timeout = atof(optarg);
                        break;
                default:
                        return usage();
                }
        }
        if (optind >= argc || !endpoint || timeout <= 0)
                return usage();
        cmd = argv[optind++];
        if (optind < argc && argv[optind][0] != '-')
                arg = argv[optind++];
        /* The command's options: a second getopt() run over the rest, with the slot
         * before them as its "program name" (optind = 0 makes GNU getopt start over). */
        base = optind - 1;
        argv[base] = (char *)cmd;
        optind = 0;
        while ((c = getopt(argc - base, argv + base, "+n:N:I:l:U:u:p:P:")) != -1) {
                switch (c) {
                case 'n':
                        po.ns = optarg;
                        break;
                case 'N':
                        po.name = optarg;
                        break;
                case 'I':
                        po.uid = optarg;
                        break;
                case 'l':
                        po.log_dir = optarg;
                        break;
                case 'U':
                        po.user_image = optarg;
                        break;
                case 'u':
                        po.username = optarg;
                        break;
                case 'p':
                        po.password = optarg;
                        break;
                case 'P':
                        /* From a file, so the secret is not in /proc/PID/cmdline. */
                        if (read_secret(optarg, password, sizeof(password)) < 0)
                                return 2;
                        po.password = password;
                        break;
                default:
                        return usage();
                }
        }
        if (optind != argc - base)
                return usage();

        client = pinlet_cri_client_new(endpoint, (int64_t)(timeout * 1000));
        if (!client) {
                fprintf(stderr, "pinlet_it_cri: cannot create a channel to %s\n", endpoint);
                return 2;
        }
        if (strcmp(cmd, "version") == 0)
                ret = cmd_version();
        else if (strcmp(cmd, "status") == 0)
                ret = cmd_status();
        else if (strcmp(cmd, "wait") == 0 && arg)
                ret = cmd_wait(atof(arg));
        else if (strcmp(cmd, "pull") == 0 && arg)
                ret = cmd_pull(arg, &po);
        else if (strcmp(cmd, "image-status") == 0 && arg)
                ret = cmd_image_status(arg);
        else if (strcmp(cmd, "images") == 0)
                ret = cmd_images();
        else if (strcmp(cmd, "rmi") == 0 && arg)
                ret = cmd_rmi(arg);
        else if (strcmp(cmd, "run") == 0 && arg)
                ret = cmd_run(arg, &po);
        else if (strcmp(cmd, "container-status") == 0 && arg)
                ret = cmd_container_status(arg);
        else if (strcmp(cmd, "ps") == 0)
                ret = cmd_ps(arg);
        else if (strcmp(cmd, "rm-pod") == 0 && arg)
                ret = cmd_rm_pod(arg);
        else if (strcmp(cmd, "call") == 0 && arg)
                ret = cmd_call(arg);
        else
                ret = usage();
        pinlet_cri_client_free(client);
        return ret;
}
