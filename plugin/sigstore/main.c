/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pinlet-verify-sigstore: an image verifier (include/pinlet/verifier.h, containerd's
 * bindir contract) that allows an image when a cosign-compatible signature of its digest
 * verifies with a key the policy names for its repository (sigstore.h).
 *
 *   pinlet-verify-sigstore -name REF -digest DIGEST -stdin-media-type MT < descriptor
 *
 * It reaches registries exactly as pinlet does: the registry client, credentials, TLS
 * settings and mirrors come from pinlet's configuration (PINLET_CONFIG, else
 * /etc/pinlet/config.yaml), and the registry host files (containerd's hosts_dir, CRI-O's
 * registries.conf) are the ones pinlet uses in front of its runtime (PINLET_RUNTIME). The
 * signature tag is resolved through the endpoints with "pull" and "resolve", its manifest
 * and payloads fetched by digest from those with "pull" (containerd's semantics), so an
 * air-gapped registry's signatures come from its mirrors, as its images do.
 * Exit 0 allows; 1 denies (the reason on stdout: no signature, signature does not verify
 * with the configured keys, digest mismatch, identity mismatch, no rule); 2 could not
 * check (registry error, bad policy or configuration, bad arguments), which denies too.
 *
 *   pinlet-verify-sigstore --check-policy [FILE]
 *
 * checks a policy file (default: PINLET_SIGSTORE_POLICY, else /etc/pinlet/sigstore.yaml)
 * as a verification would load it, key files included, and touches no registry: exit 0
 * with a summary on stdout, or 2 with the error on stderr ("FILE:LINE: key '...': ...").
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "pinlet/verifier.h"
#include "ref/ref.h"
#include "registry/registry.h"
#include "sigstore.h"
#include "util/log.h"
#include "util/time.h"

/* a verification runs under pinlet's verifiers.timeout; this only bounds a registry that
 * accepts connections and never answers when pinlet's own budget is larger */
#define REGISTRY_BUDGET_MS 30000

_printf_(2, 3) static int verdict(int code, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        return code;
}

static int usage(void)
{
        return verdict(PINLET_VERIFIER_EXIT_ERROR,
                       "usage: pinlet-verify-sigstore " PINLET_VERIFIER_ARG_NAME
                       " REF " PINLET_VERIFIER_ARG_DIGEST
                       " DIGEST " PINLET_VERIFIER_ARG_STDIN_MEDIA_TYPE
                       " " PINLET_VERIFIER_STDIN_MEDIA_TYPE);
}

/* --check-policy: the policy loads, or the error (file:line) on stderr. */
static int check_policy(const char *path)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_(sigstore_policy_freep) struct sigstore_policy *policy = NULL;
        size_t keys = 0;
        int r;

        r = sigstore_policy_load(path, &policy, &err);
        if (r < 0) {
                fprintf(stderr, "pinlet-verify-sigstore: policy: %s\n",
                        pinlet_error_message(err, r));
                return PINLET_VERIFIER_EXIT_ERROR;
        }
        for (size_t i = 0; i < policy->n_rules; i++)
                keys += policy->rules[i].n_keys;
        printf("%s: %zu rule%s, %zu key%s, default %s\n", path, policy->n_rules,
               policy->n_rules == 1 ? "" : "s", keys, keys == 1 ? "" : "s",
               policy->default_allow ? "allow" : "deny");
        return 0;
}

/* The signatures of the image: its ".sig" manifest, then each payload. */
static int check(struct pinlet_registry *reg, const struct pinlet_ref *ref, const char *repo,
                 const char *digest, const struct sigstore_rule *rule, int64_t deadline)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_(pinlet_fetched_done) struct pinlet_fetched man = { 0 };
        _cleanup_free_ char *sig_tag = NULL, *found = NULL;
        struct pinlet_resolution res = { 0 };
        struct sigstore_layers layers = { 0 };
        struct pinlet_ref sig_ref = *ref;
        enum sigstore_payload_result worst = SIGSTORE_PAYLOAD_OK;
        size_t verified = 0;
        int r, code = PINLET_VERIFIER_EXIT_DENY;

        /* cosign's tag: the digest with ':' replaced, plus ".sig" */
        if (asprintf(&sig_tag, "%.*s-%s.sig", (int)strcspn(digest, ":"), digest,
                     strchr(digest, ':') + 1) < 0)
                return verdict(PINLET_VERIFIER_EXIT_ERROR, "out of memory");
        sig_ref.tag = sig_tag;
        sig_ref.digest = NULL;
        r = pinlet_registry_resolve(reg, &sig_ref, NULL, deadline, &res, &err);
        if (r == PINLET_ENOTFOUND)
                return verdict(PINLET_VERIFIER_EXIT_DENY, "no signature: %s:%s not found", repo,
                               sig_tag);
        if (r < 0)
                return verdict(PINLET_VERIFIER_EXIT_ERROR, "registry error: %s",
                               pinlet_error_message(err, r));
        r = pinlet_registry_fetch(reg, &sig_ref, "manifests", res.digest, SIGSTORE_MANIFEST_MAX,
                                  NULL, deadline, &man, &err);
        pinlet_resolution_done(&res);
        if (r < 0)
                return verdict(PINLET_VERIFIER_EXIT_ERROR, "registry error: %s",
                               pinlet_error_message(err, r));
        r = sigstore_manifest_parse(man.data, man.len, &layers, &err);
        if (r < 0)
                return verdict(PINLET_VERIFIER_EXIT_ERROR, "registry error: %s",
                               pinlet_error_message(err, r));
        if (layers.n == 0) {
                sigstore_layers_done(&layers);
                return verdict(PINLET_VERIFIER_EXIT_DENY,
                               "no signature: %s:%s holds no simple-signing layer", repo, sig_tag);
        }
        for (size_t i = 0; i < layers.n; i++) {
                _cleanup_(pinlet_fetched_done) struct pinlet_fetched payload = { 0 };
                _cleanup_free_ char *what = NULL;
                enum sigstore_payload_result pr;

                if (!layers.v[i].signature)
                        continue;
                r = pinlet_registry_fetch(reg, &sig_ref, "blobs", layers.v[i].digest,
                                          SIGSTORE_PAYLOAD_MAX, NULL, deadline, &payload, &err);
                if (r < 0) {
                        code = verdict(PINLET_VERIFIER_EXIT_ERROR, "registry error: %s",
                                       pinlet_error_message(err, r));
                        goto out;
                }
                r = sigstore_signature_verify(rule->keys, rule->n_keys, payload.data, payload.len,
                                              layers.v[i].signature);
                if (r < 0) {
                        code = verdict(PINLET_VERIFIER_EXIT_ERROR, "out of memory");
                        goto out;
                }
                if (r == 0)
                        continue;
                verified++;
                /* the signature is good: what it says must be about this image */
                pr = sigstore_payload_check(payload.data, payload.len, digest, repo, &what);
                if (pr == SIGSTORE_PAYLOAD_OK) {
                        code = verdict(PINLET_VERIFIER_EXIT_ALLOW,
                                       "signed: %s@%s verifies with a key of the policy", repo,
                                       digest);
                        goto out;
                }
                if (pr > worst || !found) {
                        worst = pr;
                        free(found);
                        found = TAKE_PTR(what);
                }
        }
        if (verified == 0)
                code = verdict(PINLET_VERIFIER_EXIT_DENY,
                               "signature does not verify with the configured keys (%zu "
                               "signature%s)",
                               layers.n, layers.n == 1 ? "" : "s");
        else if (worst == SIGSTORE_PAYLOAD_DIGEST_MISMATCH)
                code = verdict(PINLET_VERIFIER_EXIT_DENY,
                               "digest mismatch: the signed payload names %s, not %s",
                               strempty(found), digest);
        else if (worst == SIGSTORE_PAYLOAD_IDENTITY_MISMATCH)
                code = verdict(PINLET_VERIFIER_EXIT_DENY,
                               "identity mismatch: the signed payload names %s, not %s",
                               strempty(found), repo);
        else
                code = verdict(PINLET_VERIFIER_EXIT_DENY,
                               "the signed payload is not a cosign simple-signing payload");
out:
        sigstore_layers_done(&layers);
        return code;
}

int main(int argc, char **argv)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_(sigstore_policy_freep) struct sigstore_policy *policy = NULL;
        _cleanup_(pinlet_registry_freep) struct pinlet_registry *reg = NULL;
        _cleanup_ref_ struct pinlet_ref *ref = NULL;
        _cleanup_free_ char *repo = NULL;
        struct pinlet_config cfg;
        const char *name = NULL, *digest = NULL, *mt = NULL;
        const char *policy_path = getenv(SIGSTORE_ENV_POLICY);
        const char *config_path = getenv(PINLET_VERIFIER_ENV_CONFIG);
        const char *runtime = getenv(PINLET_VERIFIER_ENV_RUNTIME);
        const struct sigstore_rule *rule;
        char sink[4096];
        int r, code;

        /* stderr goes to pinlet's debug log */
        pinlet_log_setup(PINLET_LOG_WARN, PINLET_LOG_TEXT);
        if (argc >= 2 && argc <= 3 && strcmp(argv[1], "--check-policy") == 0)
                return check_policy(argc == 3                     ? argv[2]
                                    : policy_path && *policy_path ? policy_path
                                                                  : SIGSTORE_DEFAULT_POLICY);
        for (int i = 1; i < argc; i++) {
                const char **slot = NULL;

                if (strcmp(argv[i], PINLET_VERIFIER_ARG_NAME) == 0)
                        slot = &name;
                else if (strcmp(argv[i], PINLET_VERIFIER_ARG_DIGEST) == 0)
                        slot = &digest;
                else if (strcmp(argv[i], PINLET_VERIFIER_ARG_STDIN_MEDIA_TYPE) == 0)
                        slot = &mt;
                if (!slot || i + 1 >= argc)
                        return usage();
                *slot = argv[++i];
        }
        if (!name || !digest || !pinlet_ref_digest_valid(digest))
                return usage();
        /* the descriptor is not needed (the digest is the argument); read it so the
         * writer never blocks, bounded */
        for (size_t total = 0; total < (1 << 20);) {
                ssize_t n = read(STDIN_FILENO, sink, sizeof(sink));

                if (n <= 0)
                        break;
                total += (size_t)n;
        }

        r = pinlet_ref_parse(name, &ref, &err);
        if (r < 0)
                return verdict(PINLET_VERIFIER_EXIT_ERROR, "invalid image name %s: %s", name,
                               pinlet_error_message(err, r));
        repo = pinlet_ref_name(ref);
        if (!repo)
                return verdict(PINLET_VERIFIER_EXIT_ERROR, "out of memory");

        r = sigstore_policy_load(
                policy_path && *policy_path ? policy_path : SIGSTORE_DEFAULT_POLICY, &policy, &err);
        if (r < 0)
                return verdict(PINLET_VERIFIER_EXIT_ERROR, "policy: %s",
                               pinlet_error_message(err, r));
        rule = sigstore_policy_match(policy, repo);
        if (!rule)
                return policy->default_allow ? verdict(PINLET_VERIFIER_EXIT_ALLOW,
                                                       "no rule for %s (default: allow)", repo)
                                             : verdict(PINLET_VERIFIER_EXIT_DENY,
                                                       "no rule for %s (default: deny)", repo);

        if (pinlet_config_init(&cfg) < 0)
                return verdict(PINLET_VERIFIER_EXIT_ERROR, "out of memory");
        r = pinlet_config_load(&cfg,
                               config_path && *config_path ? config_path : PINLET_DEFAULT_CONFIG,
                               !(config_path && *config_path), &err);
        /* the same client pinlet's daemon builds: its registries (TLS, mirrors), and the
         * hosts files that apply in front of its runtime */
        if (r >= 0)
                r = pinlet_cli_registry_new_for(&cfg, runtime && *runtime ? runtime : NULL, &reg,
                                                &err);
        pinlet_config_free(&cfg);
        if (r < 0)
                return verdict(PINLET_VERIFIER_EXIT_ERROR, "configuration: %s",
                               pinlet_error_message(err, r));
        code = check(reg, ref, repo, digest, rule, pinlet_now_ms() + REGISTRY_BUDGET_MS);
        return code;
}
