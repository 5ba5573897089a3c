#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Image verifiers end to end: docker-registry, containerd and `pinlet serve` with
# verifiers.bin_dir holding pinlet-verify-sigstore and a policy requiring key A for
# REG/tiny/*. One runnable image is pushed under five repositories; the project's test
# signer (sign.c, cosign's format) signs
#   tiny/signed    with key A                          -> pulls and runs
#   tiny/unsigned  not at all                          -> "no signature"
#   tiny/keyb      with key B                          -> "does not verify with the keys"
#   tiny/wrong     with key A, payload names another digest -> "digest mismatch"
#   tiny/imported  with key A, then imported with ctr (not pulled through pinlet) and
#                  started by CreateContainer naming its image ID: verified at create
# and tiny/unsigned pulled straight into containerd is refused at CreateContainer.
# Checks the status messages, the audit records (decision rejected, the verifier's name,
# result and reason) and that ten pulls of one digest fetch its signature once (verdict
# cache). Needs root, containerd, ctr, runc, docker-registry, skopeo, jq, openssl.
# Environment (verify.cmake): PINLET_BIN, PINLET_IT_CRI, PINLET_IT_LIB, PINLET_IT_SIGN,
# PINLET_VERIFY_SIGSTORE.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

verify_start run.sh "containerd ctr runc docker-registry skopeo gcc jq openssl" \
	"PINLET_BIN PINLET_IT_CRI PINLET_IT_SIGN PINLET_VERIFY_SIGSTORE"

# ---- registry, images, signatures ------------------------------------------------------
verify_images
start_registry "$D/registry" || it_fail "registry"
REG=$REGISTRY_ADDR
push_image "$D/img/pause" "$REG" tiny/pause:v1 || it_fail "push pause"
for repo in signed unsigned keyb wrong imported; do
	push_image "$D/img/app" "$REG" "tiny/$repo:v1" || it_fail "push tiny/$repo"
done
sigstore_setup "$REG/tiny/*"
sign_push() { # REPO KEY [PAYLOAD_DIGEST]
	sign_push_image "$D/keys/$2.key" "$DIG" "$REG/tiny/$1" "$D/img/sig-$1" "$REG" "tiny/$1" \
		${3:+"$3"} || it_fail "sign and push the signature of tiny/$1"
}
sign_push signed a
sign_push keyb b
# a digest that is not the image's (the pause image has the same digest: same binary)
sign_push wrong a "sha256:$(printf other | sha256sum | cut -d" " -f1)"
sign_push imported a
it_log "signatures pushed as $SIG_TAG"

start_containerd "$D/containerd" "$REG" || it_fail "containerd"
verify_pinlet "registries:
  \"$REG\": {insecure: true}"

# ---- pulls through pinlet ---------------------------------------------------------------
out=$(cri_answer pull "$REG/tiny/signed:v1") || it_fail "pull signed: $out"
expect "the image signed with key A pulls" "$out" '.status == "OK"'
ID=$(jq -r .image_ref <<<"$out")

deny() { # REPO REASON
	local out
	out=$(cri_answer pull "$REG/tiny/$1:v1") || true
	expect "tiny/$1 is refused: $2" "$out" \
		'.status == "PERMISSION_DENIED" and (.message | startswith($p)) and (.message | contains($r))' \
		--arg p "pinlet: $REG/tiny/$1@$DIG blocked by verifier pinlet-verify-sigstore: " \
		--arg r "$2"
	expect "tiny/$1: the audit log says rejected, with the verifier's result" \
		"$(jq -sc --arg i "$REG/tiny/$1:v1" '[.[] | select(.image == $i)] | last' "$AUDIT")" \
		'.decision == "rejected" and .method == "PullImage" and
		 .verifiers[0].name == "pinlet-verify-sigstore" and .verifiers[0].result == "deny" and
		 (.verifiers[0].reason | contains($r)) and (.verifiers[0].ms >= 0)' --arg r "$2"
}
deny unsigned "no signature"
deny keyb "signature does not verify with the configured keys"
deny wrong "digest mismatch"
expect "the allowed pull's record carries the allow" \
	"$(jq -sc --arg i "$REG/tiny/signed:v1" '[.[] | select(.image == $i)] | first' "$AUDIT")" \
	'.decision == "substituted" and .verifiers[0].result == "allow"'

# ---- the verdict cache: ten pulls, one signature fetch -----------------------------------
sig_fetches() { grep -c "/v2/tiny/signed/manifests/$SIG_TAG" "$D/logs/registry.log" || true; }
before=$(sig_fetches)
for i in $(seq 1 10); do
	out=$(cri_answer pull "$REG/tiny/signed:v1") || it_fail "pull $i: $out"
	[ "$(jq -r .status <<<"$out")" = OK ] || it_fail "pull $i: $out"
done
[ "$(sig_fetches)" = "$before" ] ||
	it_fail "ten pulls fetched the signature $(($(sig_fetches) - before)) more times, want 0"
[ "$before" -ge 1 ] || it_fail "the first pull never fetched the signature"
it_log "ok: ten more pulls of one digest, no verifier run (signature fetched $before time(s) in all)"

# ---- CreateContainer ------------------------------------------------------------------
out=$(cri_answer run "$ID" -U "$REG/tiny/signed:v1" -n verify -N signed -I uid-signed) ||
	it_fail "run signed: $out"
expect "the signed image runs (CreateContainer by image ID, cached verdict)" "$out" \
	'.status == "OK" and .step == "StartContainer"'

# pre-pulled: tiny/unsigned straight into containerd; started through pinlet -> refused
out=$("$PINLET_IT_CRI" -e "$CONTAINERD_ENDPOINT" -t 60 pull "$REG/tiny/unsigned@$DIG") ||
	it_fail "direct pull: $out"
out=$(cri_answer run "$ID" -U "$REG/tiny/unsigned:v1" -n verify -N unsigned -I uid-unsigned) || true
expect "a pre-pulled unsigned image never starts" "$out" \
	'.status == "PERMISSION_DENIED" and .step == "CreateContainer" and (.message | contains("no signature"))'

# imported with ctr (never pulled through pinlet, no pin): verified at create
skopeo --insecure-policy copy --quiet "oci:$D/img/app:v1" "oci-archive:$D/img/app.tar:$REG/tiny/imported:v1" ||
	it_fail "oci-archive"
ctr -a "$CONTAINERD_SOCK" -n k8s.io images import "$D/img/app.tar" >"$D/ctr.out" 2>&1 ||
	it_fail "ctr import: $(cat "$D/ctr.out")"
_imported_known() {
	"$PINLET_IT_CRI" -e "$CONTAINERD_ENDPOINT" -t 10 image-status "$REG/tiny/imported:v1" 2>/dev/null |
		jq -e '.image.id != null' >/dev/null
}
wait_until 20 _imported_known || it_fail "containerd's CRI does not list the imported image"
before=$(grep -c "/v2/tiny/imported/manifests/$SIG_TAG" "$D/logs/registry.log" || true)
out=$(cri_answer run "$ID" -U "$REG/tiny/imported:v1" -n verify -N imported -I uid-imported) ||
	it_fail "run imported: $out"
expect "the ctr-imported, signed image starts" "$out" '.status == "OK" and .step == "StartContainer"'
[ "$(grep -c "/v2/tiny/imported/manifests/$SIG_TAG" "$D/logs/registry.log")" -gt "$before" ] ||
	it_fail "the imported image was not verified at create (its signature was not fetched)"
expect "the create's record says verified" \
	"$(jq -sc '[.[] | select(.method == "CreateContainer" and .decision == "verified")] | last' "$AUDIT")" \
	'.verifiers[0].name == "pinlet-verify-sigstore" and .verifiers[0].result == "allow"'
it_log "ok: all verifier cases"
