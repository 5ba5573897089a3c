/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The image verifier contract, shared by pinlet and the verifier plugins (plugin/), and
 * installed with the package for verifiers written elsewhere.
 *
 * It is containerd 2.x's "bindir" image verifier contract (containerd's
 * docs/image-verification.md), kept identical so that one executable serves both: each
 * executable in the verifier directory (lexical name order, the first verifiers.max) is
 * run without a shell as
 *
 *     VERIFIER -name REFERENCE -digest DIGEST -stdin-media-type MEDIA_TYPE
 *
 * REFERENCE is the image as the client requested it ("nginx:1.25", "repo@sha256:..."),
 * DIGEST the manifest (or index) digest it resolved to, and stdin holds the image's OCI
 * descriptor as JSON ({"mediaType":...,"digest":...,"size":...}, as the registry reported
 * them). Exit status 0 allows the image; anything else denies it. stdout is the reason
 * (pinlet keeps the first PINLET_VERIFIER_OUTPUT_MAX bytes), stderr goes to pinlet's debug
 * log (bounded the same way). The verifier inherits pinlet's environment, with
 * PINLET_CONFIG naming the configuration file pinlet runs with and PINLET_RUNTIME the
 * runtime behind it, and no descriptor other than stdin, stdout and stderr.
 */
#pragma once

/* argv, in this order: ARG_NAME REFERENCE ARG_DIGEST DIGEST ARG_STDIN_MEDIA_TYPE
 * PINLET_VERIFIER_STDIN_MEDIA_TYPE */
#define PINLET_VERIFIER_ARG_NAME             "-name"
#define PINLET_VERIFIER_ARG_DIGEST           "-digest"
#define PINLET_VERIFIER_ARG_STDIN_MEDIA_TYPE "-stdin-media-type"

/* What stdin holds: one OCI content descriptor. */
#define PINLET_VERIFIER_STDIN_MEDIA_TYPE "application/vnd.oci.descriptor.v1+json"

/* Exit statuses. Any status other than ALLOW denies; DENY is what pinlet's own plugins
 * use for "checked, and refused", ERROR for "could not check" (a registry error, a bad
 * policy file): both deny, the reason on stdout says which. */
#define PINLET_VERIFIER_EXIT_ALLOW 0
#define PINLET_VERIFIER_EXIT_DENY  1
#define PINLET_VERIFIER_EXIT_ERROR 2

/* Bytes of stdout (the reason) and of stderr pinlet keeps from each run; the rest is
 * read and dropped. containerd keeps the same amount (outputLimitBytes, 32 KiB). */
#define PINLET_VERIFIER_OUTPUT_MAX (32 * 1024)

/* The environment variable naming pinlet's configuration file, for plugins that reach
 * registries as pinlet does (credentials, TLS, mirrors). */
#define PINLET_VERIFIER_ENV_CONFIG "PINLET_CONFIG"

/* The runtime's name as it answered RuntimeService/Version ("containerd", "cri-o"), set
 * when pinlet knows it: which registry host files apply by default depends on it
 * (containerd's hosts directory, CRI-O's registries.conf), and a plugin that reaches
 * registries as pinlet does must use the same ones. */
#define PINLET_VERIFIER_ENV_RUNTIME "PINLET_RUNTIME"
