/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRI end-to-end against real containerd, directly and through pinlet.
 *
 * 1. The same CRI sequence runs against containerd directly and then through pinlet:
 *    Version, Status, an unknown method, PullImage (a tag of the local registry, and a
 *    missing tag), ImageStatus, ListImages, RunPodSandbox (host network),
 *    PodSandboxStatus, CreateContainer, StartContainer, ContainerStatus, ListContainers,
 *    GetContainerEvents (open across the pod's life), StopContainer, RemoveContainer,
 *    StopPodSandbox, RemovePodSandbox, RemoveImage. Each sequence writes a transcript of
 *    what it saw (status codes, messages, image ids and refs, states, event types, and a
 *    hash of the raw bytes of the responses that do not vary between runs; run-specific
 *    IDs and timestamps left out) and the two transcripts must be equal line for line.
 *    Each sequence also checks what containerd must answer (OK, RUNNING, EXITED...), so
 *    two equally broken runs do not pass.
 * 2. Crash: with a pod running (created through pinlet), containerd is killed with
 *    SIGKILL by PID. A call through pinlet must fail UNAVAILABLE, quickly, with a message
 *    naming the backend; pinlet must stay up. containerd is restarted (--restart-cmd);
 *    pinlet must serve again within 10 s without being restarted, and the pod started
 *    before the crash must be reachable through it and removable.
 *
 * Run by run.sh, which starts registry, containerd and pinlet and pushes the images.
 * Exit status 0 when everything held, 1 at the first failed check (with a message
 * saying what was expected and what came), 2 on bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cri_client.h"
#include "grpc_client.h"

/* gRPC status codes used here (grpc/status.h is not needed for a few constants). */
enum {
        ST_OK = 0,
        ST_NOT_FOUND = 5,
        ST_UNIMPLEMENTED = 12,
        ST_UNAVAILABLE = 14,
};

/* Deadline of every CRI call: a pull from the loopback registry takes well under 1 s. */
#define CALL_TIMEOUT_MS 30000
/* GetContainerEvents stays open this long across the pod's life (containerd 1.6 answers
 * UNIMPLEMENTED at once; a runtime that streams is cancelled by the client). */
#define EVENTS_WINDOW_MS 8000
/* A call to a dead backend must fail faster than this (it fails on connect). */
#define DEAD_BACKEND_MAX_MS 5000
/* After containerd restarts, pinlet must serve again within this. */
#define RECOVERY_MAX_MS 10000

struct options {
        const char *direct;       /* containerd's CRI endpoint, unix:///... */
        const char *proxy;        /* pinlet's endpoint */
        const char *image;        /* app image tag in the local registry */
        const char *missing;      /* a tag the registry does not have */
        const char *pause;        /* the sandbox image, pulled before the sequences */
        const char *log_dir;      /* PodSandboxConfig.log_directory */
        const char *ctrd_pidfile; /* containerd's PID file (written by the harness) */
        const char *pinlet_pidfile;
        const char *restart_cmd; /* shell command restarting containerd */
        const char *backend;     /* what pinlet's UNAVAILABLE message must name */
};

static struct options opt;

/* ---- reporting ------------------------------------------------------------------ */

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t t0;

__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...)
{
        va_list ap;

        printf("[e2e +%5.1fs] ", (double)(now_ms() - t0) / 1000.0);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

/* Prints "FAIL: <what>" and returns false, for `if (!check(...)) goto out;`. */
__attribute__((format(printf, 2, 3))) static bool check(bool cond, const char *fmt, ...)
{
        va_list ap;

        if (cond)
                return true;
        fflush(stdout);
        fprintf(stderr, "[e2e +%5.1fs] FAIL: ", (double)(now_ms() - t0) / 1000.0);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        fflush(stderr);
        return false;
}

static const char *sn(int status)
{
        return pinlet_tgrpc_status_name(status);
}

/* ---- one sequence ---------------------------------------------------------------- */

/* A CRI sequence against one endpoint. The transcript holds what must be equal between
 * the direct and the proxied run. */
struct seq {
        const char *label; /* "direct" or "pinlet" */
        struct pinlet_cri_client *c;
        FILE *tx;
        char *tx_buf;
        size_t tx_len;
        char *sandbox_id;
        char *container_id;
        bool removed; /* the pod is gone (no cleanup needed) */
};

/* Runs one unary call and records "STEP: STATUS message" in the transcript. Returns
 * false (after printing why) when the call could not run at all or did not end as
 * expect_status. */
static bool call(struct seq *s, const char *step, const char *method, const void *req,
                 const ProtobufCMessageDescriptor *desc, int expect_status,
                 struct pinlet_cri_reply *r)
{
        int ret = pinlet_cri_call(s->c, method, req, desc, r);

        note("%-7s %-22s %s%s%s (%lld ms)", s->label, step, sn(r->status),
             r->message[0] ? ": " : "", r->message, (long long)r->elapsed_ms);
        fprintf(s->tx, "%s: %s \"%s\"\n", step, sn(r->status), r->message);
        if (!check(ret >= 0, "%s %s: the call did not run: %s (%s)", s->label, step, r->message,
                   strerror(-ret)))
                return false;
        return check(!r->timed_out, "%s %s: no status within %d ms", s->label, step,
                     CALL_TIMEOUT_MS + 2000) &&
               check(r->status == expect_status, "%s %s: expected %s, got %s \"%s\"", s->label,
                     step, sn(expect_status), sn(r->status), r->message);
}

/* For responses that must be identical byte for byte (same runtime state, no IDs or
 * timestamps): their length and FNV-1a hash go into the transcript, so a proxy that
 * re-encodes, drops unknown fields or reorders them fails the comparison. */
static void tx_raw(FILE *tx, const struct pinlet_cri_reply *r)
{
        uint64_t h = 0xcbf29ce484222325ull;
        size_t i;

        for (i = 0; i < r->raw_len; i++) {
                h ^= r->raw[i];
                h *= 0x100000001b3ull;
        }
        fprintf(tx, "  response: %zu bytes, fnv1a64 %016llx\n", r->raw_len, (unsigned long long)h);
}

static void tx_strings(FILE *tx, const char *what, char **v, size_t n)
{
        size_t i;

        fprintf(tx, "  %s: [", what);
        for (i = 0; i < n; i++)
                fprintf(tx, "%s%s", i ? " " : "", v[i]);
        fprintf(tx, "]\n");
}

static void tx_image(FILE *tx, const Critest__Image *img)
{
        if (!img || !img->id[0]) {
                fprintf(tx, "  image: (none)\n");
                return;
        }
        fprintf(tx, "  image: id=%s size=%llu pinned=%d\n", img->id, (unsigned long long)img->size,
                img->pinned);
        tx_strings(tx, "repo_tags", img->repo_tags, img->n_repo_tags);
        tx_strings(tx, "repo_digests", img->repo_digests, img->n_repo_digests);
}

static int cmp_image_id(const void *a, const void *b)
{
        const Critest__Image *const *x = a, *const *y = b;

        return strcmp((*x)->id, (*y)->id);
}

/* The pod both sequences create: host network (no CNI here), the same names each time
 * (each sequence removes its pod before the next one starts). */
struct pod_config {
        Critest__PodSandboxConfig cfg;
        Critest__PodSandboxMetadata md;
        Critest__LinuxPodSandboxConfig linux_;
        Critest__LinuxSandboxSecurityContext sc;
        Critest__NamespaceOption ns;
};

static void pod_config_init(struct pod_config *p, const char *name, const char *uid)
{
        critest__pod_sandbox_config__init(&p->cfg);
        critest__pod_sandbox_metadata__init(&p->md);
        critest__linux_pod_sandbox_config__init(&p->linux_);
        critest__linux_sandbox_security_context__init(&p->sc);
        critest__namespace_option__init(&p->ns);
        p->md.name = (char *)name;
        p->md.uid = (char *)uid;
        p->md.namespace_ = (char *)"pinlet-e2e";
        p->ns.network = CRITEST__NAMESPACE_MODE__NODE;
        p->sc.namespace_options = &p->ns;
        p->linux_.security_context = &p->sc;
        p->cfg.metadata = &p->md;
        p->cfg.log_directory = (char *)opt.log_dir;
        p->cfg.linux = &p->linux_;
}

struct container_config {
        Critest__ContainerConfig cfg;
        char *command[1], *args[1];
        Critest__KeyValue env;
        Critest__KeyValue *envs[1];
        Critest__ContainerMetadata md;
        Critest__ImageSpec image;
        Critest__LinuxContainerConfig linux_;
        Critest__LinuxContainerSecurityContext sc;
        Critest__NamespaceOption ns;
};

static void container_config_init(struct container_config *c, const char *name)
{
        critest__container_config__init(&c->cfg);
        critest__container_metadata__init(&c->md);
        critest__image_spec__init(&c->image);
        critest__linux_container_config__init(&c->linux_);
        critest__linux_container_security_context__init(&c->sc);
        critest__namespace_option__init(&c->ns);
        c->md.name = (char *)name;
        c->image.image = (char *)opt.image;
        /* What kubelet sets for a container of a host-network pod. */
        c->ns.network = CRITEST__NAMESPACE_MODE__NODE;
        c->ns.pid = CRITEST__NAMESPACE_MODE__CONTAINER;
        c->ns.ipc = CRITEST__NAMESPACE_MODE__POD;
        c->sc.namespace_options = &c->ns;
        c->linux_.security_context = &c->sc;
        c->cfg.metadata = &c->md;
        c->cfg.image = &c->image;
        c->cfg.log_path = (char *)"app_0.log";
        c->cfg.linux = &c->linux_;
        /* The image's entrypoint, spelled out as kubelet does for `command:`; the program
         * ignores its arguments and environment, they only travel through. */
        c->command[0] = (char *)"/pause";
        c->args[0] = (char *)"--pinlet-e2e";
        c->cfg.command = c->command;
        c->cfg.n_command = 1;
        c->cfg.args = c->args;
        c->cfg.n_args = 1;
        critest__key_value__init(&c->env);
        c->env.key = (char *)"PINLET_E2E";
        c->env.value = (char *)"1";
        c->envs[0] = &c->env;
        c->cfg.envs = c->envs;
        c->cfg.n_envs = 1;
}

/* Creates and starts a pod with one container; fills s->sandbox_id, s->container_id. */
static bool start_pod(struct seq *s, struct pod_config *pod, struct container_config *ctr)
{
        Critest__RunPodSandboxRequest run = CRITEST__RUN_POD_SANDBOX_REQUEST__INIT;
        Critest__CreateContainerRequest create = CRITEST__CREATE_CONTAINER_REQUEST__INIT;
        Critest__StartContainerRequest start = CRITEST__START_CONTAINER_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        bool ok = false;

        run.config = &pod->cfg;
        if (!call(s, "RunPodSandbox", CRI_RUNTIME_SERVICE "RunPodSandbox", &run,
                  &critest__run_pod_sandbox_response__descriptor, ST_OK, &r))
                goto out;
        s->sandbox_id = strdup(((Critest__RunPodSandboxResponse *)r.resp)->pod_sandbox_id);
        if (!check(s->sandbox_id && s->sandbox_id[0], "%s RunPodSandbox: empty sandbox id",
                   s->label))
                goto out;
        pinlet_cri_reply_free(&r);

        create.pod_sandbox_id = s->sandbox_id;
        create.config = &ctr->cfg;
        create.sandbox_config = &pod->cfg;
        if (!call(s, "CreateContainer", CRI_RUNTIME_SERVICE "CreateContainer", &create,
                  &critest__create_container_response__descriptor, ST_OK, &r))
                goto out;
        s->container_id = strdup(((Critest__CreateContainerResponse *)r.resp)->container_id);
        if (!check(s->container_id && s->container_id[0], "%s CreateContainer: empty container id",
                   s->label))
                goto out;
        pinlet_cri_reply_free(&r);

        start.container_id = s->container_id;
        if (!call(s, "StartContainer", CRI_RUNTIME_SERVICE "StartContainer", &start,
                  &critest__start_container_response__descriptor, ST_OK, &r))
                goto out;
        ok = true;
out:
        pinlet_cri_reply_free(&r);
        return ok;
}

/* ContainerStatus of s->container_id, expecting state; records the comparable fields. */
static bool container_status(struct seq *s, const char *step, int state)
{
        Critest__ContainerStatusRequest req = CRITEST__CONTAINER_STATUS_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        Critest__ContainerStatus *st;
        bool ok = false;

        req.container_id = s->container_id;
        if (!call(s, step, CRI_RUNTIME_SERVICE "ContainerStatus", &req,
                  &critest__container_status_response__descriptor, ST_OK, &r))
                goto out;
        st = ((Critest__ContainerStatusResponse *)r.resp)->status;
        if (!check(st != NULL, "%s %s: no status in the response", s->label, step))
                goto out;
        fprintf(s->tx, "  state=%s exit_code=%d reason=\"%s\" message=\"%s\"\n",
                pinlet_cri_container_state_name(st->state), st->exit_code, st->reason, st->message);
        fprintf(s->tx, "  name=%s attempt=%u image=%s image_ref=%s\n",
                st->metadata ? st->metadata->name : "(none)",
                st->metadata ? st->metadata->attempt : 0, st->image ? st->image->image : "",
                st->image_ref);
        if (!check(strcmp(st->id, s->container_id) == 0, "%s %s: status of %s, asked for %s",
                   s->label, step, st->id, s->container_id) ||
            !check((int)st->state == state, "%s %s: container is %s, expected %s", s->label, step,
                   pinlet_cri_container_state_name(st->state),
                   pinlet_cri_container_state_name(state)))
                goto out;
        ok = true;
out:
        pinlet_cri_reply_free(&r);
        return ok;
}

static bool workload_ready(const char *container_id);

/* Stops and removes s's container and pod. Each step must succeed. */
static bool remove_pod(struct seq *s)
{
        Critest__StopContainerRequest stop = CRITEST__STOP_CONTAINER_REQUEST__INIT;
        Critest__RemoveContainerRequest rm = CRITEST__REMOVE_CONTAINER_REQUEST__INIT;
        Critest__StopPodSandboxRequest stopp = CRITEST__STOP_POD_SANDBOX_REQUEST__INIT;
        Critest__RemovePodSandboxRequest rmp = CRITEST__REMOVE_POD_SANDBOX_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        bool ok = false;

        /* The workload is PID 1 of its PID namespace: a SIGTERM that arrives before its
         * handler is installed is dropped (pid_namespaces(7)) and the stop ends in
         * SIGKILL after the timeout, exit code 137. Stop it only once it can hear. */
        if (!check(workload_ready(s->container_id),
                   "%s: the workload of %s has no SIGTERM handler after 10 s", s->label,
                   s->container_id))
                goto out;
        stop.container_id = s->container_id;
        stop.timeout = 10;
        if (!call(s, "StopContainer", CRI_RUNTIME_SERVICE "StopContainer", &stop,
                  &critest__stop_container_response__descriptor, ST_OK, &r))
                goto out;
        pinlet_cri_reply_free(&r);
        /* The workload exits 0 on SIGTERM. */
        if (!container_status(s, "ContainerStatus(exited)",
                              CRITEST__CONTAINER_STATE__CONTAINER_EXITED))
                goto out;
        rm.container_id = s->container_id;
        if (!call(s, "RemoveContainer", CRI_RUNTIME_SERVICE "RemoveContainer", &rm,
                  &critest__remove_container_response__descriptor, ST_OK, &r))
                goto out;
        pinlet_cri_reply_free(&r);
        stopp.pod_sandbox_id = s->sandbox_id;
        if (!call(s, "StopPodSandbox", CRI_RUNTIME_SERVICE "StopPodSandbox", &stopp,
                  &critest__stop_pod_sandbox_response__descriptor, ST_OK, &r))
                goto out;
        pinlet_cri_reply_free(&r);
        rmp.pod_sandbox_id = s->sandbox_id;
        if (!call(s, "RemovePodSandbox", CRI_RUNTIME_SERVICE "RemovePodSandbox", &rmp,
                  &critest__remove_pod_sandbox_response__descriptor, ST_OK, &r))
                goto out;
        s->removed = true;
        ok = true;
out:
        pinlet_cri_reply_free(&r);
        return ok;
}

/* After a failure: remove the pod (best effort, status ignored) so that the harness
 * finds nothing left; the harness still cleans up by runc root and shim PID. */
static void cleanup_pod(struct seq *s)
{
        Critest__RemovePodSandboxRequest rmp = CRITEST__REMOVE_POD_SANDBOX_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };

        if (!s->sandbox_id || s->removed)
                return;
        rmp.pod_sandbox_id = s->sandbox_id;
        pinlet_cri_call(s->c, CRI_RUNTIME_SERVICE "RemovePodSandbox", &rmp.base,
                        &critest__remove_pod_sandbox_response__descriptor, &r);
        note("%-7s cleanup RemovePodSandbox(%s): %s %s", s->label, s->sandbox_id, sn(r.status),
             r.message ? r.message : "");
        pinlet_cri_reply_free(&r);
        s->removed = true;
}

/* GetContainerEvents runs on its own thread while the main thread drives the pod. */
struct events_job {
        struct pinlet_cri_client *c;
        struct pinlet_cri_events ev;
        int ret;
};

static void *events_thread(void *arg)
{
        struct events_job *j = arg;

        j->ret = pinlet_cri_get_events(j->c, EVENTS_WINDOW_MS, 0, &j->ev);
        return NULL;
}

/* Records the stream's outcome: status, message, and the types of the events about this
 * sequence's pod (other pods' events and the IDs themselves are left out). */
static bool events_record(struct seq *s, struct events_job *j)
{
        size_t i;

        note("%-7s %-22s %s%s%s, %zu event(s) (%lld ms)", s->label, "GetContainerEvents",
             sn(j->ev.status), j->ev.message[0] ? ": " : "", j->ev.message, j->ev.n_events,
             (long long)j->ev.elapsed_ms);
        if (!check(j->ret >= 0, "%s GetContainerEvents did not run: %s", s->label,
                   j->ev.message ? j->ev.message : strerror(-j->ret)))
                return false;
        /* A stream the client cancelled ends CANCELLED: that is how it is meant to end. */
        fprintf(s->tx, "GetContainerEvents: %s \"%s\"\n",
                j->ev.cancelled ? "(cancelled)" : sn(j->ev.status),
                j->ev.cancelled ? "" : j->ev.message);
        for (i = 0; i < j->ev.n_events; i++) {
                const Critest__ContainerEventResponse *e = j->ev.events[i];
                const char *who = NULL;

                if (s->sandbox_id && strcmp(e->container_id, s->sandbox_id) == 0)
                        who = "sandbox";
                else if (s->container_id && strcmp(e->container_id, s->container_id) == 0)
                        who = "container";
                if (who)
                        fprintf(s->tx, "  event %s %s\n", who,
                                pinlet_cri_event_type_name(e->container_event_type));
        }
        return true;
}

/* The whole comparable sequence against one endpoint. */
static bool run_sequence(struct seq *s)
{
        Critest__VersionRequest version = CRITEST__VERSION_REQUEST__INIT;
        Critest__StatusRequest status = CRITEST__STATUS_REQUEST__INIT;
        Critest__ImageSpec spec = CRITEST__IMAGE_SPEC__INIT;
        Critest__ImageSpec missing = CRITEST__IMAGE_SPEC__INIT;
        Critest__PullImageRequest pull = CRITEST__PULL_IMAGE_REQUEST__INIT;
        Critest__ImageStatusRequest istat = CRITEST__IMAGE_STATUS_REQUEST__INIT;
        Critest__ListImagesRequest limg = CRITEST__LIST_IMAGES_REQUEST__INIT;
        Critest__RemoveImageRequest rmi = CRITEST__REMOVE_IMAGE_REQUEST__INIT;
        Critest__PodSandboxStatusRequest pstat = CRITEST__POD_SANDBOX_STATUS_REQUEST__INIT;
        Critest__ListContainersRequest lc = CRITEST__LIST_CONTAINERS_REQUEST__INIT;
        Critest__ContainerFilter filter = CRITEST__CONTAINER_FILTER__INIT;
        Critest__ContainerStatusRequest cstat = CRITEST__CONTAINER_STATUS_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        struct pod_config pod;
        struct container_config ctr;
        struct events_job ev = { .c = s->c };
        pthread_t ev_thread;
        bool ev_started = false, ok = false;
        char *image_ref = NULL;
        size_t i;

        s->tx = open_memstream(&s->tx_buf, &s->tx_len);
        if (!check(s->tx != NULL, "open_memstream: %s", strerror(errno)))
                return false;
        pod_config_init(&pod, "e2e-pod", "e2e-pod-uid");
        container_config_init(&ctr, "app");
        spec.image = (char *)opt.image;
        missing.image = (char *)opt.missing;

        /* Runtime identity and conditions. */
        version.version = (char *)"v1";
        if (!call(s, "Version", CRI_RUNTIME_SERVICE "Version", &version,
                  &critest__version_response__descriptor, ST_OK, &r))
                goto out;
        {
                Critest__VersionResponse *v = (Critest__VersionResponse *)r.resp;

                tx_raw(s->tx, &r);
                fprintf(s->tx, "  version=%s runtime=%s %s api=%s\n", v->version, v->runtime_name,
                        v->runtime_version, v->runtime_api_version);
                if (!check(strcmp(v->runtime_name, "containerd") == 0,
                           "%s Version: runtime_name \"%s\", expected containerd", s->label,
                           v->runtime_name))
                        goto out;
        }
        pinlet_cri_reply_free(&r);

        if (!call(s, "Status", CRI_RUNTIME_SERVICE "Status", &status,
                  &critest__status_response__descriptor, ST_OK, &r))
                goto out;
        {
                Critest__StatusResponse *st = (Critest__StatusResponse *)r.resp;
                bool runtime_ready = false;

                tx_raw(s->tx, &r);
                for (i = 0; st->status && i < st->status->n_conditions; i++) {
                        Critest__RuntimeCondition *c = st->status->conditions[i];

                        fprintf(s->tx, "  condition %s=%d reason=\"%s\" message=\"%s\"\n", c->type,
                                c->status, c->reason, c->message);
                        if (strcmp(c->type, "RuntimeReady") == 0 && c->status)
                                runtime_ready = true;
                }
                if (!check(runtime_ready, "%s Status: RuntimeReady is not true", s->label))
                        goto out;
        }
        pinlet_cri_reply_free(&r);

        /* A method no CRI version has: a pass-through forwards it and containerd answers
         * UNIMPLEMENTED. */
        if (!call(s, "NoSuchMethod", CRI_RUNTIME_SERVICE "PinletE2eNoSuchMethod", &version,
                  &critest__version_response__descriptor, ST_UNIMPLEMENTED, &r))
                goto out;
        pinlet_cri_reply_free(&r);

        /* Images: a tag that exists, one that does not. */
        pull.image = &spec;
        if (!call(s, "PullImage", CRI_IMAGE_SERVICE "PullImage", &pull,
                  &critest__pull_image_response__descriptor, ST_OK, &r))
                goto out;
        image_ref = strdup(((Critest__PullImageResponse *)r.resp)->image_ref);
        tx_raw(s->tx, &r);
        fprintf(s->tx, "  image_ref=%s\n", image_ref);
        if (!check(image_ref && strncmp(image_ref, "sha256:", 7) == 0,
                   "%s PullImage: image_ref \"%s\" is not an image ID", s->label, image_ref))
                goto out;
        pinlet_cri_reply_free(&r);

        pull.image = &missing;
        if (!call(s, "PullImage(missing)", CRI_IMAGE_SERVICE "PullImage", &pull,
                  &critest__pull_image_response__descriptor, ST_NOT_FOUND, &r))
                goto out;
        pinlet_cri_reply_free(&r);

        istat.image = &spec;
        if (!call(s, "ImageStatus", CRI_IMAGE_SERVICE "ImageStatus", &istat,
                  &critest__image_status_response__descriptor, ST_OK, &r))
                goto out;
        {
                Critest__Image *img = ((Critest__ImageStatusResponse *)r.resp)->image;

                tx_raw(s->tx, &r);
                tx_image(s->tx, img);
                if (!check(img && strcmp(img->id, image_ref) == 0,
                           "%s ImageStatus: image id \"%s\", PullImage said \"%s\"", s->label,
                           img ? img->id : "(none)", image_ref) ||
                    !check(img->n_repo_tags == 1 && strcmp(img->repo_tags[0], opt.image) == 0,
                           "%s ImageStatus: repo_tags do not hold exactly %s", s->label, opt.image))
                        goto out;
        }
        pinlet_cri_reply_free(&r);

        istat.image = &missing;
        if (!call(s, "ImageStatus(missing)", CRI_IMAGE_SERVICE "ImageStatus", &istat,
                  &critest__image_status_response__descriptor, ST_OK, &r))
                goto out;
        tx_raw(s->tx, &r);
        tx_image(s->tx, ((Critest__ImageStatusResponse *)r.resp)->image);
        if (!check(!((Critest__ImageStatusResponse *)r.resp)->image,
                   "%s ImageStatus(missing): an image came back", s->label))
                goto out;
        pinlet_cri_reply_free(&r);

        if (!call(s, "ListImages", CRI_IMAGE_SERVICE "ListImages", &limg,
                  &critest__list_images_response__descriptor, ST_OK, &r))
                goto out;
        {
                Critest__ListImagesResponse *l = (Critest__ListImagesResponse *)r.resp;
                bool found = false;

                /* containerd lists in map order: sort for the comparison. */
                qsort(l->images, l->n_images, sizeof(*l->images), cmp_image_id);
                for (i = 0; i < l->n_images; i++) {
                        tx_image(s->tx, l->images[i]);
                        found = found || strcmp(l->images[i]->id, image_ref) == 0;
                }
                if (!check(found, "%s ListImages: %s is not listed", s->label, image_ref))
                        goto out;
        }
        pinlet_cri_reply_free(&r);

        /* The pod's life, with the event stream open across it. */
        if (!check(pthread_create(&ev_thread, NULL, events_thread, &ev) == 0,
                   "pthread_create failed"))
                goto out;
        ev_started = true;
        if (!start_pod(s, &pod, &ctr))
                goto out;

        pstat.pod_sandbox_id = s->sandbox_id;
        if (!call(s, "PodSandboxStatus", CRI_RUNTIME_SERVICE "PodSandboxStatus", &pstat,
                  &critest__pod_sandbox_status_response__descriptor, ST_OK, &r))
                goto out;
        {
                Critest__PodSandboxStatus *ps =
                        ((Critest__PodSandboxStatusResponse *)r.resp)->status;

                if (!check(ps && ps->state == CRITEST__POD_SANDBOX_STATE__SANDBOX_READY,
                           "%s PodSandboxStatus: sandbox is not READY", s->label))
                        goto out;
                fprintf(s->tx, "  state=READY name=%s namespace=%s\n",
                        ps->metadata ? ps->metadata->name : "",
                        ps->metadata ? ps->metadata->namespace_ : "");
        }
        pinlet_cri_reply_free(&r);

        if (!container_status(s, "ContainerStatus", CRITEST__CONTAINER_STATE__CONTAINER_RUNNING))
                goto out;

        filter.pod_sandbox_id = s->sandbox_id;
        lc.filter = &filter;
        if (!call(s, "ListContainers", CRI_RUNTIME_SERVICE "ListContainers", &lc,
                  &critest__list_containers_response__descriptor, ST_OK, &r))
                goto out;
        {
                Critest__ListContainersResponse *l = (Critest__ListContainersResponse *)r.resp;

                fprintf(s->tx, "  %zu container(s)\n", l->n_containers);
                if (!check(l->n_containers == 1 &&
                                   strcmp(l->containers[0]->id, s->container_id) == 0,
                           "%s ListContainers: expected exactly the container %s, got %zu",
                           s->label, s->container_id, l->n_containers))
                        goto out;
                fprintf(s->tx, "  state=%s image=%s image_ref=%s\n",
                        pinlet_cri_container_state_name(l->containers[0]->state),
                        l->containers[0]->image ? l->containers[0]->image->image : "",
                        l->containers[0]->image_ref);
        }
        pinlet_cri_reply_free(&r);

        /* An error that names what was asked for: the message must pass unchanged. */
        cstat.container_id = (char *)"pinlet-e2e-no-such-container";
        if (!call(s, "ContainerStatus(missing)", CRI_RUNTIME_SERVICE "ContainerStatus", &cstat,
                  &critest__container_status_response__descriptor, ST_NOT_FOUND, &r))
                goto out;
        pinlet_cri_reply_free(&r);

        if (!remove_pod(s))
                goto out;

        pthread_join(ev_thread, NULL);
        ev_started = false;
        if (!events_record(s, &ev))
                goto out;

        /* Remove the app image so the next sequence pulls it for real. */
        rmi.image = &spec;
        if (!call(s, "RemoveImage", CRI_IMAGE_SERVICE "RemoveImage", &rmi,
                  &critest__remove_image_response__descriptor, ST_OK, &r))
                goto out;
        pinlet_cri_reply_free(&r);
        istat.image = &spec;
        if (!call(s, "ImageStatus(removed)", CRI_IMAGE_SERVICE "ImageStatus", &istat,
                  &critest__image_status_response__descriptor, ST_OK, &r))
                goto out;
        if (!check(!((Critest__ImageStatusResponse *)r.resp)->image,
                   "%s ImageStatus after RemoveImage: the image is still there", s->label))
                goto out;
        ok = true;
out:
        pinlet_cri_reply_free(&r);
        if (!ok)
                cleanup_pod(s);
        if (ev_started)
                pthread_join(ev_thread, NULL);
        pinlet_cri_events_free(&ev.ev);
        free(image_ref);
        fclose(s->tx);
        s->tx = NULL;
        return ok;
}

static void seq_free(struct seq *s)
{
        if (s->tx)
                fclose(s->tx);
        free(s->tx_buf);
        free(s->sandbox_id);
        free(s->container_id);
        pinlet_cri_client_free(s->c);
}

/* Compares the transcripts line by line; prints both when they differ. */
static bool compare_transcripts(const struct seq *a, const struct seq *b)
{
        const char *pa = a->tx_buf, *pb = b->tx_buf;
        unsigned line = 1;

        while (*pa || *pb) {
                size_t la = strcspn(pa, "\n"), lb = strcspn(pb, "\n");

                if (la != lb || memcmp(pa, pb, la) != 0) {
                        fprintf(stderr,
                                "FAIL: direct and pinlet differ at transcript line %u:\n"
                                "  direct: %.*s\n  pinlet: %.*s\n"
                                "----- direct transcript -----\n%s"
                                "----- pinlet transcript -----\n%s-----\n",
                                line, (int)la, pa, (int)lb, pb, a->tx_buf, b->tx_buf);
                        return false;
                }
                pa += la + (pa[la] == '\n');
                pb += lb + (pb[lb] == '\n');
                line++;
        }
        note("transcripts equal (%u lines)", line - 1);
        return true;
}

/* ---- crash and recovery ---------------------------------------------------------- */

static pid_t read_pid(const char *path)
{
        FILE *f = fopen(path, "re");
        long pid = 0;

        if (!f)
                return -1;
        if (fscanf(f, "%ld", &pid) != 1)
                pid = -1;
        fclose(f);
        return (pid_t)pid;
}

/* Alive: /proc/PID exists and the process is not a zombie (a killed child of the
 * driver script stays a zombie until the script reaps it). */
static bool pid_alive(pid_t pid)
{
        char path[64], buf[512], *p;
        FILE *f;
        size_t n;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        p = strrchr(buf, ')');
        return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Number of live processes in the cgroup of a container (its ID is part of the cgroup
 * path under containerd, with cgroup v1 and v2 alike). */
static int container_procs(const char *id)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        int n = 0;

        if (!d)
                return -1;
        while ((de = readdir(d))) {
                char path[300], line[1024];
                FILE *f;
                bool in = false;

                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/cgroup", de->d_name);
                f = fopen(path, "re");
                if (!f)
                        continue;
                while (!in && fgets(line, sizeof(line), f))
                        in = strstr(line, id) != NULL;
                fclose(f);
                if (in && pid_alive((pid_t)atoi(de->d_name)))
                        n++;
        }
        closedir(d);
        return n;
}

/* True once some process in the container's cgroup catches SIGTERM (SigCgt in
 * /proc/PID/status) and sleeps: the workload installed its handler and waits in
 * sigsuspend(). As PID 1 of its namespace it ignores a SIGTERM that arrives before the
 * handler exists, so the stop waits until then. Polls for up to 10 s. */
static bool workload_ready(const char *container_id)
{
        int tries;

        for (tries = 0; tries < 200; tries++) {
                DIR *d = opendir("/proc");
                struct dirent *de;
                bool ready = false;

                if (!d)
                        return false;
                while (!ready && (de = readdir(d))) {
                        char path[300], line[1024];
                        unsigned long long caught = 0;
                        bool in = false, sleeping = false;
                        char state = 0;
                        FILE *f;

                        if (de->d_name[0] < '1' || de->d_name[0] > '9')
                                continue;
                        snprintf(path, sizeof(path), "/proc/%s/cgroup", de->d_name);
                        f = fopen(path, "re");
                        if (!f)
                                continue;
                        while (!in && fgets(line, sizeof(line), f))
                                in = strstr(line, container_id) != NULL;
                        fclose(f);
                        if (!in)
                                continue;
                        snprintf(path, sizeof(path), "/proc/%s/status", de->d_name);
                        f = fopen(path, "re");
                        if (!f)
                                continue;
                        while (fgets(line, sizeof(line), f)) {
                                if (sscanf(line, "State: %c", &state) == 1)
                                        sleeping = state == 'S';
                                if (sscanf(line, "SigCgt: %llx", &caught) == 1)
                                        break;
                        }
                        fclose(f);
                        ready = sleeping && (caught & (1ull << (SIGTERM - 1)));
                }
                closedir(d);
                if (ready)
                        return true;
                usleep(50 * 1000);
        }
        return false;
}

/* An ExecSync that runs until the backend dies: the in-flight call through pinlet. */
struct exec_job {
        struct pinlet_cri_client *c;
        const char *container_id;
        struct pinlet_cri_reply r;
        int ret;
        int64_t end_ms;
};

static void *exec_thread(void *arg)
{
        Critest__ExecSyncRequest req = CRITEST__EXEC_SYNC_REQUEST__INIT;
        struct exec_job *j = arg;
        char *cmd[] = { (char *)"/pause" }; /* runs until killed */

        req.container_id = (char *)j->container_id;
        req.cmd = cmd;
        req.n_cmd = 1;
        req.timeout = 25;
        j->ret = pinlet_cri_call(j->c, CRI_RUNTIME_SERVICE "ExecSync", &req.base,
                                 &critest__exec_sync_response__descriptor, &j->r);
        j->end_ms = now_ms();
        return NULL;
}

static bool version_via(struct pinlet_cri_client *c, struct pinlet_cri_reply *r)
{
        Critest__VersionRequest v = CRITEST__VERSION_REQUEST__INIT;

        return pinlet_cri_call(c, CRI_RUNTIME_SERVICE "Version", &v.base,
                               &critest__version_response__descriptor, r) >= 0;
}

static bool crash_and_recover(void)
{
        struct seq s = { .label = "crash" };
        Critest__ImageSpec spec = CRITEST__IMAGE_SPEC__INIT;
        Critest__PullImageRequest pull = CRITEST__PULL_IMAGE_REQUEST__INIT;
        struct pod_config pod;
        struct container_config ctr;
        struct pinlet_cri_reply r = { 0 };
        struct exec_job exec = { 0 };
        pthread_t exec_tid;
        bool exec_started = false;
        pid_t ctrd, pinlet;
        int64_t start, killed_ms = 0;
        bool ok = false;
        int rc, i;

        s.c = pinlet_cri_client_new(opt.proxy, CALL_TIMEOUT_MS);
        s.tx = fopen("/dev/null", "we");
        if (!check(s.c && s.tx, "cannot create the client for %s", opt.proxy))
                goto out;
        pinlet = read_pid(opt.pinlet_pidfile);
        ctrd = read_pid(opt.ctrd_pidfile);
        if (!check(pinlet > 0 && pid_alive(pinlet), "pinlet (pid file %s) is not running",
                   opt.pinlet_pidfile) ||
            !check(ctrd > 0 && pid_alive(ctrd), "containerd (pid file %s) is not running",
                   opt.ctrd_pidfile))
                goto out;

        /* A pod is running when the runtime dies, as on a real node. (The sequences
         * removed the app image: pull it again.) */
        spec.image = (char *)opt.image;
        pull.image = &spec;
        if (!call(&s, "PullImage", CRI_IMAGE_SERVICE "PullImage", &pull,
                  &critest__pull_image_response__descriptor, ST_OK, &r))
                goto out;
        pinlet_cri_reply_free(&r);
        pod_config_init(&pod, "e2e-crash-pod", "e2e-crash-uid");
        container_config_init(&ctr, "app");
        if (!start_pod(&s, &pod, &ctr))
                goto out;

        /* A call in flight when the runtime dies: ExecSync of a command that never ends.
         * It is in flight once the exec'd process runs in the container's cgroup. */
        exec.c = s.c;
        exec.container_id = s.container_id;
        if (!check(pthread_create(&exec_tid, NULL, exec_thread, &exec) == 0,
                   "pthread_create failed"))
                goto out;
        exec_started = true;
        for (i = 0; i < 200 && container_procs(s.container_id) < 2; i++)
                usleep(50 * 1000);
        if (!check(container_procs(s.container_id) >= 2,
                   "ExecSync via pinlet: the exec'd process did not start within 10 s"))
                goto out;
        note("crash   ExecSync in flight (the exec'd process runs)");

        note("killing containerd (pid %d) with SIGKILL", (int)ctrd);
        killed_ms = now_ms();
        if (!check(kill(ctrd, SIGKILL) == 0, "kill(%d): %s", (int)ctrd, strerror(errno)))
                goto out;
        for (i = 0; i < 100 && pid_alive(ctrd); i++)
                usleep(50 * 1000);
        if (!check(!pid_alive(ctrd), "containerd %d still alive 5 s after SIGKILL", (int)ctrd))
                goto out;

        /* The in-flight call ends with the backend, not at its deadline. */
        pthread_join(exec_tid, NULL);
        exec_started = false;
        note("crash   ExecSync (in flight)   %s: %s (%lld ms after the kill)", sn(exec.r.status),
             exec.r.message ? exec.r.message : "", (long long)(exec.end_ms - killed_ms));
        if (!check(exec.ret >= 0, "ExecSync via pinlet did not run: %s", exec.r.message) ||
            !check(exec.end_ms - killed_ms < DEAD_BACKEND_MAX_MS,
                   "ExecSync in flight via pinlet ended %lld ms after containerd died (limit "
                   "%d): the broken backend call was not propagated",
                   (long long)(exec.end_ms - killed_ms), DEAD_BACKEND_MAX_MS) ||
            !check(exec.r.status == ST_UNAVAILABLE,
                   "ExecSync in flight via pinlet when containerd died: expected UNAVAILABLE, "
                   "got %s \"%s\"",
                   sn(exec.r.status), exec.r.message))
                goto out;

        /* Through pinlet: UNAVAILABLE, fast, naming the backend. Twice: the first call
         * may meet the broken connection, the second a refused reconnect. */
        for (i = 0; i < 2; i++) {
                if (!check(version_via(s.c, &r), "Version via pinlet did not run: %s", r.message))
                        goto out;
                note("crash   Version (backend down)  %s: %s (%lld ms)", sn(r.status), r.message,
                     (long long)r.elapsed_ms);
                if (!check(!r.timed_out && r.elapsed_ms < DEAD_BACKEND_MAX_MS,
                           "Version via pinlet with containerd down took %lld ms (limit %d)",
                           (long long)r.elapsed_ms, DEAD_BACKEND_MAX_MS) ||
                    !check(r.status == ST_UNAVAILABLE,
                           "Version via pinlet with containerd down: expected UNAVAILABLE, got "
                           "%s \"%s\"",
                           sn(r.status), r.message) ||
                    !check(strstr(r.message, opt.backend) != NULL,
                           "UNAVAILABLE message \"%s\" does not name the backend \"%s\"", r.message,
                           opt.backend))
                        goto out;
                pinlet_cri_reply_free(&r);
        }
        if (!check(pid_alive(pinlet), "pinlet (pid %d) died with its backend", (int)pinlet))
                goto out;

        note("restarting containerd: %s", opt.restart_cmd);
        rc = system(opt.restart_cmd);
        if (!check(rc == 0, "restart command failed (status %d)", rc))
                goto out;

        /* pinlet reconnects by itself. */
        start = now_ms();
        for (;;) {
                if (!check(version_via(s.c, &r), "Version via pinlet did not run: %s", r.message))
                        goto out;
                if (r.status == ST_OK)
                        break;
                if (!check(now_ms() - start < RECOVERY_MAX_MS,
                           "pinlet does not serve %d ms after containerd restarted: last %s "
                           "\"%s\"",
                           RECOVERY_MAX_MS, sn(r.status), r.message))
                        goto out;
                pinlet_cri_reply_free(&r);
                usleep(200 * 1000);
        }
        note("pinlet serves again %lld ms after the restart", (long long)(now_ms() - start));
        pinlet_cri_reply_free(&r);
        if (!check(pid_alive(pinlet) && read_pid(opt.pinlet_pidfile) == pinlet,
                   "pinlet was restarted (pid %d before the crash)", (int)pinlet))
                goto out;

        /* The pod survived in its shim; containerd recovered it; pinlet reaches it. */
        if (!container_status(&s, "ContainerStatus", CRITEST__CONTAINER_STATE__CONTAINER_RUNNING) ||
            !remove_pod(&s))
                goto out;
        ok = true;
out:
        pinlet_cri_reply_free(&r);
        if (!ok && s.c)
                cleanup_pod(&s);
        if (exec_started)
                pthread_join(exec_tid, NULL);
        pinlet_cri_reply_free(&exec.r);
        seq_free(&s);
        return ok;
}

static bool pull_pause(struct pinlet_cri_client *c)
{
        Critest__ImageSpec spec = CRITEST__IMAGE_SPEC__INIT;
        Critest__PullImageRequest pull = CRITEST__PULL_IMAGE_REQUEST__INIT;
        struct pinlet_cri_reply r = { 0 };
        bool ok;

        spec.image = (char *)opt.pause;
        pull.image = &spec;
        ok = check(pinlet_cri_call(c, CRI_IMAGE_SERVICE "PullImage", &pull.base,
                                   &critest__pull_image_response__descriptor, &r) >= 0 &&
                           r.status == ST_OK,
                   "setup: PullImage(%s) directly: %s \"%s\"", opt.pause, sn(r.status),
                   r.message ? r.message : "");
        if (ok)
                note("setup   PullImage(%s) OK (%lld ms)", opt.pause, (long long)r.elapsed_ms);
        pinlet_cri_reply_free(&r);
        return ok;
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
        fprintf(f, "usage: cri_e2e --direct EP --proxy EP --image REF --missing-image REF\n"
                   "               --pause-image REF --log-dir DIR\n"
                   "               --containerd-pid-file F --pinlet-pid-file F\n"
                   "               --restart-cmd CMD --backend STR\n"
                   "  EP: unix:///path. STR: text pinlet's UNAVAILABLE message must contain\n"
                   "  (the backend socket path).\n");
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "direct", required_argument, NULL, 'd' },
                { "proxy", required_argument, NULL, 'p' },
                { "image", required_argument, NULL, 'i' },
                { "missing-image", required_argument, NULL, 'm' },
                { "pause-image", required_argument, NULL, 'a' },
                { "log-dir", required_argument, NULL, 'l' },
                { "containerd-pid-file", required_argument, NULL, 'c' },
                { "pinlet-pid-file", required_argument, NULL, 'P' },
                { "restart-cmd", required_argument, NULL, 'r' },
                { "backend", required_argument, NULL, 'b' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        struct seq direct = { .label = "direct" }, proxied = { .label = "pinlet" };
        int c, ret = 1;

        t0 = now_ms();
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case 'd':
                        opt.direct = optarg;
                        break;
                case 'p':
                        opt.proxy = optarg;
                        break;
                case 'i':
                        opt.image = optarg;
                        break;
                case 'm':
                        opt.missing = optarg;
                        break;
                case 'a':
                        opt.pause = optarg;
                        break;
                case 'l':
                        opt.log_dir = optarg;
                        break;
                case 'c':
                        opt.ctrd_pidfile = optarg;
                        break;
                case 'P':
                        opt.pinlet_pidfile = optarg;
                        break;
                case 'r':
                        opt.restart_cmd = optarg;
                        break;
                case 'b':
                        opt.backend = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!opt.direct || !opt.proxy || !opt.image || !opt.missing || !opt.pause || !opt.log_dir ||
            !opt.ctrd_pidfile || !opt.pinlet_pidfile || !opt.restart_cmd || !opt.backend ||
            optind != argc) {
                usage(stderr);
                return 2;
        }

        direct.c = pinlet_cri_client_new(opt.direct, CALL_TIMEOUT_MS);
        proxied.c = pinlet_cri_client_new(opt.proxy, CALL_TIMEOUT_MS);
        if (!check(direct.c && proxied.c, "cannot create gRPC channels"))
                goto out;

        /* The sandbox image is on the node before either sequence, so both list the
         * same images (kubelet's nodes have it too). */
        if (!pull_pause(direct.c))
                goto out;
        note("sequence 1: directly against containerd (%s)", opt.direct);
        if (!run_sequence(&direct))
                goto out;
        note("sequence 2: through pinlet (%s)", opt.proxy);
        if (!run_sequence(&proxied))
                goto out;
        if (!compare_transcripts(&direct, &proxied))
                goto out;

        note("crash: containerd killed under a running pod");
        if (!crash_and_recover())
                goto out;
        note("PASS");
        ret = 0;
out:
        seq_free(&direct);
        seq_free(&proxied);
        return ret;
}
