#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Signatures through a mirror: the image's registry UP is a loopback address where nothing
# listens (an air-gapped upstream); a second docker-registry MIR is its mirror, named in
# UP's hosts.toml under the directory that is both containerd's config_path and pinlet's
# hosts_dir. MIR holds the sandbox image, tiny/signed (signed with key A, the signature
# naming UP/tiny/signed) and tiny/unsigned. Through pinlet (enforce) with
# pinlet-verify-sigstore in verifiers.bin_dir and a policy requiring key A for UP/tiny/*:
#   UP/tiny/signed:v1    pulls and runs; its signature tag, manifest and payload were
#                        fetched from MIR (its access log), never from UP (nothing listens)
#   UP/tiny/unsigned:v1  PERMISSION_DENIED with the reason: a registry error naming the
#                        mirror's "manifest unknown" and the upstream's refused connection
#                        (the upstream might hold a signature); with the server's
#                        capabilities emptied in hosts.toml, "no signature"; the audit
#                        record says rejected with the verifier's reason
#   with a pull-only mirror MIR2 first: the signature tag is asked of MIR only, the
#   signature manifest and payload come from MIR2 (containerd's capability semantics)
# Needs root, containerd, runc, docker-registry, skopeo, jq, openssl.
# Environment (verify.cmake): PINLET_BIN, PINLET_IT_CRI, PINLET_IT_LIB, PINLET_IT_SIGN,
# PINLET_VERIFY_SIGSTORE.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

verify_start mirror.sh "containerd runc docker-registry skopeo gcc jq openssl" \
	"PINLET_BIN PINLET_IT_CRI PINLET_IT_SIGN PINLET_VERIFY_SIGSTORE"

# ---- the mirror, the images, the signature ---------------------------------------------
verify_images
start_registry "$D/mirror" "" mirror || it_fail "mirror registry"
MIR=$REGISTRY_ADDR
# a port that was free a moment ago and that nobody is told about
UP=127.0.0.1:$(free_port)
it_log "upstream $UP (nothing listens), mirror $MIR"
push_image "$D/img/pause" "$MIR" tiny/pause:v1 || it_fail "push pause"
for repo in signed unsigned; do
	push_image "$D/img/app" "$MIR" "tiny/$repo:v1" || it_fail "push tiny/$repo"
done
sigstore_setup "$UP/tiny/*"
# the payload names the image as the node knows it: the upstream's repository
sign_push_image "$D/keys/a.key" "$DIG" "$UP/tiny/signed" "$D/img/sig-signed" "$MIR" \
	tiny/signed || it_fail "sign and push the signature of tiny/signed"
it_log "signature pushed to the mirror as tiny/signed:$SIG_TAG"

# containerd pulls the sandbox from the mirror directly, and UP through its hosts.toml
PINLET_SANDBOX_IMAGE=$MIR/tiny/pause:v1 start_containerd "$D/containerd" "$MIR" ||
	it_fail "containerd"
containerd_add_mirror "$CONTAINERD_DIR/certs.d" "$UP" "http://$UP" "http://$MIR"
HOSTS=$CONTAINERD_DIR/certs.d

verify_pinlet "hosts_dir: \"$HOSTS\""

# ---- signed: pulls and runs, the signature came from the mirror -------------------------
out=$(cri_answer pull "$UP/tiny/signed:v1") || it_fail "pull signed: $out $(cat "$D/cri.stderr")"
expect "the signed image pulls through the mirror" "$out" '.status == "OK"'
ID=$(jq -r .image_ref <<<"$out")
expect "its record carries the verifier's allow" \
	"$(jq -sc --arg i "$UP/tiny/signed:v1" '[.[] | select(.image == $i)] | last' "$AUDIT")" \
	'.decision == "substituted" and .verifiers[0].name == "pinlet-verify-sigstore" and
	 .verifiers[0].result == "allow"'
for path in "/v2/tiny/signed/manifests/$SIG_TAG" "/v2/tiny/signed/manifests/sha256:" \
	"/v2/tiny/signed/blobs/sha256:"; do
	grep -Eq "\"(HEAD|GET) $path" "$D/logs/mirror.log" ||
		it_fail "the mirror's access log has no request for $path: the plugin did not ask it"
done
it_log "ok: the signature tag, its manifest and its payload were fetched from the mirror"

out=$(cri_answer run "$ID" -U "$UP/tiny/signed:v1" -n verify -N signed -I uid-signed) ||
	it_fail "run signed: $out"
expect "the signed image runs" "$out" '.status == "OK" and .step == "StartContainer"'

# ---- unsigned: denied with the reason --------------------------------------------------
# The mirror answers "manifest unknown" for its signature tag and the upstream is down: as
# containerd's resolver does, the failure that was not a 404 is the error (the upstream
# might hold a signature), and the 404 is named beside it. Refused either way.
out=$(cri_answer pull "$UP/tiny/unsigned:v1") || true
expect "the unsigned image is refused, the reason naming both endpoints' answers" "$out" \
	'.status == "PERMISSION_DENIED" and (.message | startswith($p)) and
	 (.message | contains($sig)) and (.message | contains("endpoint http://" + $up)) and
	 (.message | contains("endpoint http://" + $mir + ": manifest unknown"))' \
	--arg p "pinlet: $UP/tiny/unsigned@$DIG blocked by verifier pinlet-verify-sigstore: registry error: " \
	--arg sig "$UP/tiny/unsigned:$SIG_TAG" --arg up "$UP" --arg mir "$MIR"
expect "the audit log says rejected, with the verifier's reason" \
	"$(jq -sc --arg i "$UP/tiny/unsigned:v1" '[.[] | select(.image == $i)] | last' "$AUDIT")" \
	'.decision == "rejected" and .verifiers[0].result == "deny" and
	 (.verifiers[0].reason | contains("manifest unknown"))'

# With the upstream out of the list for content and tags (hosts.toml `capabilities = []`
# on the server, as an air-gapped node may say), the mirror's 404 is the whole answer:
# "no signature". (Pulled by digest: another -name, so not the deny verdict just cached.)
sed -i '1a capabilities = []' "$HOSTS/$UP/hosts.toml"
out=$(cri_answer pull "$UP/tiny/unsigned@$DIG") || true
expect "the unsigned image is refused: no signature" "$out" \
	'.status == "PERMISSION_DENIED" and (.message | startswith($p))' \
	--arg p "pinlet: $UP/tiny/unsigned@$DIG blocked by verifier pinlet-verify-sigstore: no signature: "
out=$(cri_answer pull "$UP/tiny/signed@$DIG") || it_fail "pull signed again: $out"
expect "the signed image still pulls" "$out" '.status == "OK"'

# ---- containerd's capabilities: a pull-only host serves content, never a tag --------------
# MIR2 (pull only) comes first in hosts.toml and holds the image and its signature too:
# the signature tag is asked of MIR (pull + resolve) only, the signature manifest and
# payload (content by digest) of MIR2 first. A new tag (v2) of the signed image, so the
# verifier runs again rather than answer from the verdict cache.
start_registry "$D/mirror2" "" mirror2 || it_fail "second mirror"
MIR2=$REGISTRY_ADDR
push_image "$D/img/app" "$MIR" tiny/signed:v2 || it_fail "push tiny/signed:v2"
push_image "$D/img/app" "$MIR2" tiny/signed:v1 || it_fail "push the image to the second mirror"
push_image "$D/img/sig-signed" "$MIR2" "tiny/signed:$SIG_TAG" ||
	it_fail "push the signature to the second mirror"
cat >"$HOSTS/$UP/hosts.toml" <<EOF
server = "http://$UP"

[host."http://$MIR2"]
  capabilities = ["pull"]

[host."http://$MIR"]
  capabilities = ["pull", "resolve"]
EOF
sig_tag_asks() { grep -cE "\"(HEAD|GET) /v2/tiny/signed/manifests/$SIG_TAG .*\"pinlet/" "$1" || true; }
before=$(sig_tag_asks "$D/logs/mirror.log")
out=$(cri_answer pull "$UP/tiny/signed:v2") || it_fail "pull signed:v2: $out"
expect "tiny/signed:v2 pulls" "$out" '.status == "OK"'
[ "$(sig_tag_asks "$D/logs/mirror.log")" -gt "$before" ] ||
	it_fail "the signature tag was not asked of the pull+resolve mirror"
[ "$(sig_tag_asks "$D/logs/mirror2.log")" = 0 ] ||
	it_fail "the signature tag was asked of the pull-only mirror"
for path in "/v2/tiny/signed/manifests/sha256:" "/v2/tiny/signed/blobs/sha256:"; do
	grep -qE "\"GET ${path}[0-9a-f]+ .*\"pinlet/" "$D/logs/mirror2.log" ||
		it_fail "pinlet fetched no $path... from the pull-only mirror (first in the list)"
done
it_log "ok: the tag from the pull+resolve mirror, the content from the pull-only one"
it_log "ok: signatures through a mirror of an air-gapped registry"
