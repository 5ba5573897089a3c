/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "intercept/methods.h"
#include "util/macro.h"

/* Unary RPCs of runtime.v1 RuntimeService (v1alpha2 has a subset with the same names; an
 * entry for a method a runtime does not implement costs nothing: the runtime answers
 * UNIMPLEMENTED, passed through). Exec, Attach and PortForward are unary: they return a
 * streaming-server URL. */
#define RUNTIME_METHODS(V)                              \
        M(V, RuntimeService, Version)                   \
        M(V, RuntimeService, RunPodSandbox)             \
        M(V, RuntimeService, StopPodSandbox)            \
        M(V, RuntimeService, RemovePodSandbox)          \
        M(V, RuntimeService, PodSandboxStatus)          \
        M(V, RuntimeService, ListPodSandbox)            \
        M(V, RuntimeService, CreateContainer)           \
        M(V, RuntimeService, StartContainer)            \
        M(V, RuntimeService, StopContainer)             \
        M(V, RuntimeService, RemoveContainer)           \
        M(V, RuntimeService, ListContainers)            \
        M(V, RuntimeService, ContainerStatus)           \
        M(V, RuntimeService, UpdateContainerResources)  \
        M(V, RuntimeService, ReopenContainerLog)        \
        M(V, RuntimeService, ExecSync)                  \
        M(V, RuntimeService, Exec)                      \
        M(V, RuntimeService, Attach)                    \
        M(V, RuntimeService, PortForward)               \
        M(V, RuntimeService, ContainerStats)            \
        M(V, RuntimeService, ListContainerStats)        \
        M(V, RuntimeService, PodSandboxStats)           \
        M(V, RuntimeService, ListPodSandboxStats)       \
        M(V, RuntimeService, UpdateRuntimeConfig)       \
        M(V, RuntimeService, Status)                    \
        M(V, RuntimeService, CheckpointContainer)       \
        M(V, RuntimeService, ListMetricDescriptors)     \
        M(V, RuntimeService, ListPodSandboxMetrics)     \
        M(V, RuntimeService, RuntimeConfig)             \
        M(V, RuntimeService, UpdatePodSandboxResources) \
        M(V, ImageService, ListImages)                  \
        M(V, ImageService, ImageStatus)                 \
        M(V, ImageService, PullImage)                   \
        M(V, ImageService, RemoveImage)                 \
        M(V, ImageService, ImageFsInfo)

#define M(version, service, method) \
        { .path = "/runtime." version "." #service "/" #method, .unary = true },

static const struct pinlet_method cri_methods[] = { RUNTIME_METHODS("v1")
                                                            RUNTIME_METHODS("v1alpha2") };

#undef M

const char *const pinlet_cri_image_prefixes[] = {
        "/runtime.v1.ImageService/",
        "/runtime.v1alpha2.ImageService/",
        NULL,
};

const struct pinlet_method *pinlet_cri_methods(size_t *ret_n)
{
        *ret_n = ELEMENTSOF(cri_methods);
        return cri_methods;
}

/* Whether path ("/runtime.<version>.<Service>/<Method>") is service_method in some
 * version. */
static bool path_is(const char *path, const char *service_method)
{
        const char *dot = strchr(path + strlen("/runtime."), '.');

        return dot && strcmp(dot + 1, service_method) == 0;
}

int pinlet_cri_methods_build(const struct pinlet_cri_binding *bindings, size_t n_bindings,
                             struct pinlet_method **ret, size_t *ret_n, struct pinlet_error **err)
{
        _cleanup_free_ struct pinlet_method *t = NULL;

        t = malloc(sizeof(cri_methods));
        if (!t)
                return pinlet_error_set(err, -ENOMEM, "out of memory");
        memcpy(t, cri_methods, sizeof(cri_methods));
        for (size_t b = 0; b < n_bindings; b++) {
                size_t matched = 0;

                for (size_t i = 0; i < ELEMENTSOF(cri_methods); i++)
                        if (path_is(t[i].path, bindings[b].service_method)) {
                                if (bindings[b].fn)
                                        t[i].intercept = bindings[b].fn;
                                if (bindings[b].respond)
                                        t[i].respond = bindings[b].respond;
                                matched++;
                        }
                if (matched == 0)
                        return pinlet_error_set(err, -EINVAL,
                                                "interceptor for '%s': no such unary CRI method",
                                                bindings[b].service_method);
        }
        *ret_n = ELEMENTSOF(cri_methods);
        *ret = TAKE_PTR(t);
        return 0;
}
