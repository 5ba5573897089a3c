/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Puts state into a real CRI runtime so that ListContainers has a large answer: one pod
 * on the host network and N created (not started) containers carrying labels. Uses the
 * shared test client (test/support/grpc_client.h): setup is not timed, so its per-call
 * completion queue does not matter here.
 *
 * The few CRI messages needed are encoded by hand with the upstream runtime.v1 field
 * numbers: pinlet's own schema (proto/cri.proto) only models what pinlet rewrites, and the
 * benchmark should not grow it.
 */
#pragma once

#include <stddef.h>

struct pinlet_tgrpc_channel;

/* Pulls image through target and runs one pod sandbox (host network). Writes the pod
 * sandbox id to ret_pod and, when ret_image_ref is not NULL, the PullImage answer's
 * image_ref (the image ID kubelet then puts in CreateContainer). Returns 0 or a negative
 * errno; prints what failed to stderr. */
int cri_pod_new(const char *target, const char *image, char *ret_pod, size_t pod_size,
                char *ret_image_ref, size_t ref_size);

/* One CreateContainer of a container called name in pod (kubelet's form: image is the
 * image ID or reference, user_image ImageSpec.user_specified_image or NULL), timed alone
 * (*ret_create_us: its wall time), then RemoveContainer, so a loop never grows the pod.
 * Returns 0 or a negative errno (a non-OK status prints it to stderr). */
int cri_create_remove(struct pinlet_tgrpc_channel *ch, const char *pod, const char *name,
                      const char *image, const char *user_image, double *ret_create_us);

/* Pulls image, runs one pod sandbox and creates n_containers containers in it, each with
 * n_labels labels. Writes the pod sandbox id to ret_pod (NUL-terminated). Returns 0 or a
 * negative errno; prints what failed to stderr. */
int cri_setup(const char *target, const char *image, unsigned n_containers, unsigned n_labels,
              char *ret_pod, size_t pod_size);

/* Stops and removes the pod sandbox (which removes its containers). */
int cri_teardown(const char *target, const char *pod_id);
