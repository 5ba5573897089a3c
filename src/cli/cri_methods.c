/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "cli/cri_methods.h"
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
        { .path = "/runtime." version "." #service "/" #method, .unary = true, .intercept = NULL },

/* Writable: interceptors are plugged in at start (see the header). */
static struct pinlet_method cri_methods[] = { RUNTIME_METHODS("v1") RUNTIME_METHODS("v1alpha2") };

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

size_t pinlet_cri_methods_set_interceptor(const char *service_method, pinlet_intercept_fn fn)
{
        size_t n = 0, len = strlen(service_method);

        for (size_t i = 0; i < ELEMENTSOF(cri_methods); i++) {
                /* "/runtime.<version>." then "<Service>/<Method>" */
                const char *path = cri_methods[i].path;
                const char *dot = strchr(path + strlen("/runtime."), '.');

                if (dot && strlen(dot + 1) == len && memcmp(dot + 1, service_method, len) == 0) {
                        cri_methods[i].intercept = fn;
                        n++;
                }
        }
        return n;
}
