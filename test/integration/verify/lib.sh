# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# What the verifier tests (run.sh, contract.sh, mirror.sh) share. Source it after setting
# `here` (the script's directory); it sources the harness (lib/common.sh, containerd.sh,
# images.sh, pinlet.sh, and cri_assert.sh for expect, the jq assertion) and defines:
#
#   verify_start NAME TOOLS VARS
#           it_require NAME TOOLS VARS (common.sh: root, the TOOLS installed, the VARS
#           naming executables), then it_setup; sets D (the work directory)
#   cri_answer ARGS...
#           pinlet_it_cri through pinlet ($PINLET_ENDPOINT), 60 s, stderr appended to
#           $D/cri.stderr; prints the JSON answer, returns the client's status (unlike
#           cri_assert.sh's cri, it neither logs nor asserts: the callers do)
#   verify_images
#           $D/img/pause (the sandbox image) and $D/img/app (tag v1), both the static
#           pause binary, as OCI layouts; sets DIG to the app's manifest digest
#   sigstore_setup REPO_GLOB
#           keys $D/keys/a.key (ECDSA P-256, the policy's key, a.pub) and b.key (Ed25519,
#           not in the policy), $D/sigstore.yaml requiring key A for REPO_GLOB (default
#           deny), and pinlet-verify-sigstore ($PINLET_VERIFY_SIGSTORE) installed in
#           $D/verifiers
#   verify_pinlet EXTRA_YAML
#           pinlet (lib/pinlet.sh) in $D/pinlet in front of $CONTAINERD_ENDPOINT: enforce,
#           no credentials, EXTRA_YAML (how to reach the registries), verifiers.bin_dir
#           $D/verifiers with a 20 s timeout, PINLET_SIGSTORE_POLICY=$D/sigstore.yaml in
#           its environment; sets AUDIT

lib=${PINLET_IT_LIB:-$here/../lib}
# shellcheck source=../lib/common.sh
. "$lib/common.sh"
# shellcheck source=../lib/containerd.sh
. "$lib/containerd.sh"
# shellcheck source=../lib/images.sh
. "$lib/images.sh"
# shellcheck source=../lib/pinlet.sh
. "$lib/pinlet.sh"
# shellcheck source=../lib/cri_assert.sh
. "$lib/cri_assert.sh"

verify_start() {
	it_require "$@"
	it_setup
	D=$PINLET_IT_DIR
}

cri_answer() { "$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" -t 60 "$@" 2>>"$D/cri.stderr"; }

verify_images() {
	mkdir -p "$D/img"
	build_pause_binary "$D/img/pause.bin" || it_fail "build_pause_binary"
	build_pause_image "$D/img/pause" pause "$D/img/pause.bin" || it_fail "pause image"
	build_pause_image "$D/img/app" v1 "$D/img/pause.bin" || it_fail "app image"
	# shellcheck disable=SC2034 # read by the scripts
	DIG=$(layout_digest "$D/img/app")
}

sigstore_setup() {
	mkdir -p "$D/keys" "$D/verifiers"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/keys/a.key" 2>/dev/null
	openssl pkey -in "$D/keys/a.key" -pubout -out "$D/keys/a.pub"
	openssl genpkey -algorithm ED25519 -out "$D/keys/b.key" 2>/dev/null
	cat >"$D/sigstore.yaml" <<YAML
rules:
  - repositories: ["$1"]
    keys: ["$D/keys/a.pub"]
default: deny
YAML
	install -m 0755 "$PINLET_VERIFY_SIGSTORE" "$D/verifiers/pinlet-verify-sigstore"
}

# shellcheck disable=SC2034 # AUDIT is read by the scripts
verify_pinlet() {
	mkdir -p "$D/pinlet"
	cat >"$D/pinlet/config.yaml" <<YAML
mode: enforce
credentials: {docker_config: ["$D/no-docker-config.json"]}
$1
verifiers:
  bin_dir: "$D/verifiers"
  timeout: 20s
YAML
	"$PINLET_BIN" check-config "$D/pinlet/config.yaml" || it_fail "check-config"
	# the verifiers inherit pinlet's environment: the policy path travels that way
	PINLET_SIGSTORE_POLICY=$D/sigstore.yaml start_pinlet "$D/pinlet" "$CONTAINERD_ENDPOINT" ||
		it_fail "pinlet"
	AUDIT=$D/pinlet/audit.jsonl
}
