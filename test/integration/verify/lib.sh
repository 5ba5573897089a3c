# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# What the verifier tests (run.sh, contract.sh, mirror.sh) share. Source it after setting
# `here` (the script's directory); it sources the harness (lib/common.sh, containerd.sh,
# images.sh, pinlet.sh) and defines:
#
#   verify_start NAME TOOLS VARS
#           root, the TOOLS (space-separated commands) installed, the VARS (names of
#           environment variables) naming executables, then it_setup; sets D (the work
#           directory). NAME prefixes the messages.
#   expect LABEL JSON FILTER [jq args...]
#           jq -e FILTER on JSON, or it_fail naming both; logs "ok: LABEL"
#   cri ARGS...
#           pinlet_it_cri through pinlet ($PINLET_ENDPOINT), 60 s, stderr to $D/cri.stderr
#   verify_images
#           $D/img/pause (the sandbox image) and $D/img/app (tag v1), both the static
#           pause binary, as OCI layouts; sets DIG to the app's manifest digest
#   sigstore_setup REPO_GLOB
#           keys $D/keys/a.key (ECDSA P-256, the policy's key, a.pub) and b.key (Ed25519,
#           not in the policy), $D/sigstore.yaml requiring key A for REPO_GLOB (default
#           deny), and pinlet-verify-sigstore ($PINLET_VERIFY_SIGSTORE) installed in
#           $D/verifiers

lib=${PINLET_IT_LIB:-$here/../lib}
# shellcheck source=../lib/common.sh
. "$lib/common.sh"
# shellcheck source=../lib/containerd.sh
. "$lib/containerd.sh"
# shellcheck source=../lib/images.sh
. "$lib/images.sh"
# shellcheck source=../lib/pinlet.sh
. "$lib/pinlet.sh"

verify_start() {
	local name=$1 tool var
	[ "$(id -u)" = 0 ] || { echo "$name: must run as root (containerd, runc)" >&2; exit 1; }
	for tool in $2; do
		command -v "$tool" >/dev/null || { echo "$name: $tool is not installed" >&2; exit 1; }
	done
	for var in $3; do
		[ -x "${!var:-}" ] || { echo "$name: $var must name an executable" >&2; exit 1; }
	done
	it_setup
	D=$PINLET_IT_DIR
}

expect() {
	local label=$1 json=$2 filter=$3
	shift 3
	jq -e "$@" "$filter" <<<"$json" >/dev/null 2>&1 ||
		it_fail "$label: expected ($filter) [$*]; got: $json"
	it_log "ok: $label"
}

cri() { "$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" -t 60 "$@" 2>>"$D/cri.stderr"; }

verify_images() {
	mkdir -p "$D/img"
	build_pause_binary "$D/img/pause.bin" || it_fail "build_pause_binary"
	build_pause_image "$D/img/pause" pause "$D/img/pause.bin" || it_fail "pause image"
	build_pause_image "$D/img/app" v1 "$D/img/pause.bin" || it_fail "app image"
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
