#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shellcheck source-path=SCRIPTDIR/../lib
#
# CRI end-to-end driver: docker-registry, containerd (runc, overlayfs) and pinlet on
# loopback in a private directory, two tiny images pushed, then cri_e2e compares the
# same CRI sequence directly and through pinlet and crashes/restarts containerd under
# pinlet. Everything is stopped by PID when the script exits, also on failure (logs are
# printed then). Must run as root. ctest runs it (integration/cri_e2e) with:
#   PINLET_BIN            the pinlet binary
#   PINLET_CRI_E2E        the cri_e2e test program
#   PINLET_IT_FREE_PORT   the free-port helper (optional)
#   PINLET_IT_LIB         test/integration/lib (optional: found next to this script)
# Optional: PINLET_E2E_SERVE_ARGS (extra `pinlet serve` arguments, word-split),
#           PINLET_IT_KEEP=1 (keep the work directory).
#
#   run.sh --restart-containerd DIR
#       internal: restarts the containerd in DIR (cri_e2e's --restart-cmd); needs the
#       PINLET_IT_DIR of the running test in the environment.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lib=${PINLET_IT_LIB:-$here/../lib}
. "$lib/common.sh"
. "$lib/containerd.sh"
. "$lib/images.sh"
. "$lib/pinlet.sh"

if [ "${1:-}" = --restart-containerd ]; then
	[ -n "${PINLET_IT_DIR:-}" ] || { echo "PINLET_IT_DIR not set" >&2; exit 2; }
	restart_containerd "$2"
	exit
fi

it_require run.sh "containerd containerd-shim-runc-v2 runc docker-registry skopeo gcc jq ss" \
	"PINLET_BIN PINLET_CRI_E2E"

it_setup
D=$PINLET_IT_DIR

start_registry "$D/registry" || it_fail "registry"

# Two different images: the pause image (sandbox) and the app (a copy of the same
# static program with a few bytes appended, so its layer, config and ID differ:
# RemoveImage of the app must not remove the sandbox image).
it_log "building images"
mkdir -p "$D/img"
build_pause_binary "$D/img/pause.bin" || it_fail "build_pause_binary"
cp "$D/img/pause.bin" "$D/img/app.bin"
printf '\npinlet-e2e-app\n' >>"$D/img/app.bin"
build_pause_image "$D/img/pause" pause "$D/img/pause.bin" || it_fail "pause image"
build_pause_image "$D/img/app" app "$D/img/app.bin" || it_fail "app image"
push_image "$D/img/pause" "$REGISTRY_ADDR" tiny/pause:v1 || it_fail "push pause"
push_image "$D/img/app" "$REGISTRY_ADDR" tiny/app:v1 || it_fail "push app"
it_log "pushed $REGISTRY_ADDR/tiny/pause:v1 and $REGISTRY_ADDR/tiny/app:v1"

PINLET_SANDBOX_IMAGE=$REGISTRY_ADDR/tiny/pause:v1 \
	start_containerd "$D/containerd" "$REGISTRY_ADDR" || it_fail "containerd"

# Pass-through (mode off): this test holds pinlet to forwarding every call unchanged.
# shellcheck disable=SC2086 # PINLET_E2E_SERVE_ARGS is a list of words on purpose
start_pinlet "$D/pinlet" "$CONTAINERD_ENDPOINT" --mode off ${PINLET_E2E_SERVE_ARGS:-} ||
	it_fail "pinlet did not start"
pinlet_pid=$(bg_pid pinlet)

mkdir -p "$D/pod-logs"
"$PINLET_CRI_E2E" \
	--direct "$CONTAINERD_ENDPOINT" \
	--proxy "$PINLET_ENDPOINT" \
	--image "$REGISTRY_ADDR/tiny/app:v1" \
	--missing-image "$REGISTRY_ADDR/tiny/app:no-such-tag" \
	--pause-image "$REGISTRY_ADDR/tiny/pause:v1" \
	--log-dir "$D/pod-logs" \
	--containerd-pid-file "$D/pids/containerd.pid" \
	--pinlet-pid-file "$D/pids/pinlet.pid" \
	--restart-cmd "bash '$here/run.sh' --restart-containerd '$CONTAINERD_DIR'" \
	--backend "$CONTAINERD_SOCK" ||
	it_fail "cri_e2e failed"

# pinlet outlived the crash as the same process.
if ! bg_running pinlet || [ "$(bg_pid pinlet)" != "$pinlet_pid" ]; then
	it_fail "pinlet (pid $pinlet_pid) is not running any more"
fi
# Every pod was removed through CRI: the shims exit by themselves.
no_shims() { [ -z "$(containerd_shim_pids "$CONTAINERD_DIR")" ]; }
wait_until 10 no_shims ||
	it_fail "shims still running after every pod was removed: $(containerd_shim_pids "$CONTAINERD_DIR")"
it_log "PASS"
