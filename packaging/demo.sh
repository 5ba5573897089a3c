#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# pinlet's demo: the product's main job, on private components, on one Debian 12 machine
# (as root). It
#   1. installs what it needs from Debian packages (packaging/install-deps.sh run),
#   2. builds pinlet and a small CRI client (cmake Release into $PINLET_BUILD_DIR,
#      default build/demo),
#   3. starts a private docker-registry, a private containerd and pinlet under a
#      temporary directory, on loopback only,
#   4. pushes a tiny image as demo/app:v1, pulls and runs it BY TAG through pinlet,
#   5. moves the tag to a second image, pulls and runs it again by the same tag,
#   6. prints the audit trail (both digests, the tag_moved record) and the two digests
#      side by side,
#   7. stops everything it started, by PID, also when a step fails.
# Exit status 0 when pinlet pinned both runs to the digests the registry served.
# PINLET_DEMO_KEEP=1 keeps the temporary directory; PINLET_DEMO_VERBOSE=1 shows every
# daemon start and stop.
# shellcheck source-path=SCRIPTDIR disable=SC2015
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${PINLET_BUILD_DIR:-$top/build/demo}
lib=$top/test/integration/lib

if [ -t 1 ]; then
	B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'
else
	B='' G='' R='' N=''
fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
say() { printf '    %s\n' "$*"; }
die() {
	printf '\n%sdemo failed: %s%s\n' "$R" "$*" "$N" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "run me as root (containerd and runc need it)"

# ---- 1. dependencies -------------------------------------------------------------------
step "Checking Debian packages (packaging/install-deps.sh run)"
"$top/packaging/install-deps.sh" run
# The CRI client is built in the test tree, whose CMake needs cmocka.
if ! pkg-config --exists cmocka; then
	say "installing libcmocka-dev (the test tree's CMake needs it)"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 \
		--no-install-recommends libcmocka-dev >/dev/null
fi
say "ok"

# ---- 2. build --------------------------------------------------------------------------
step "Building pinlet and the demo's CRI client (Release, $build)"
mkdir -p "$build"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPINLET_TESTS=ON >"$build/demo-build.log" 2>&1 ||
	{ tail -n 40 "$build/demo-build.log" >&2; die "cmake configure failed (log: $build/demo-build.log)"; }
cmake --build "$build" -j"$(nproc)" --target pinlet pinlet_it_cri pinlet_it_free_port \
	>>"$build/demo-build.log" 2>&1 ||
	{ tail -n 40 "$build/demo-build.log" >&2; die "build failed (log: $build/demo-build.log)"; }
PINLET=$build/src/pinlet
CRI=$(find "$build" -type f -name pinlet_it_cri -perm -u+x | head -n 1)
PINLET_IT_FREE_PORT=$(find "$build" -type f -name pinlet_it_free_port -perm -u+x | head -n 1)
export PINLET_IT_FREE_PORT
[ -x "$PINLET" ] && [ -x "$CRI" ] || die "built binaries not found under $build"
say "pinlet:     $PINLET ($("$PINLET" --version 2>/dev/null | head -n 1))"
say "CRI client: $CRI"

# ---- 3. private components -------------------------------------------------------------
# The integration-test harness starts, tracks and stops every daemon by PID.
# shellcheck source=../test/integration/lib/common.sh
. "$lib/common.sh"
# shellcheck source=../test/integration/lib/containerd.sh
. "$lib/containerd.sh"
# shellcheck source=../test/integration/lib/images.sh
. "$lib/images.sh"

# The harness's progress lines go to logs/harness.log unless asked for (on failure every
# log under logs/ is printed).
pinlet_tmpdir() { mktemp -d /tmp/pinlet-demo-XXXX; }
it_log() {
	if [ "${PINLET_DEMO_VERBOSE:-0}" = 1 ] || [ ! -d "${PINLET_IT_DIR:-}/logs" ]; then
		printf '    [harness] %s\n' "$*" >&2
	else
		printf '%s\n' "$*" >>"$PINLET_IT_DIR/logs/harness.log"
	fi
}
it_fail() { die "$*"; }
# shellcheck disable=SC2034 # read by common.sh's it_finish
PINLET_IT_KEEP=${PINLET_DEMO_KEEP:-0}

it_setup
D=$PINLET_IT_DIR
step "Working in $D (removed at the end)"

say "building two tiny images (a static binary that sleeps; the second differs by a few bytes)"
mkdir -p "$D/img"
build_pause_binary "$D/img/pause.bin" || die "cannot build the static pause binary"
for v in 1 2; do
	cp "$D/img/pause.bin" "$D/img/app$v.bin"
	printf '\npinlet demo app, build %s\n' "$v" >>"$D/img/app$v.bin"
	build_pause_image "$D/img/app$v" "app$v" "$D/img/app$v.bin" || die "image app$v"
done
build_pause_image "$D/img/pause" pause "$D/img/pause.bin" || die "pause image"

step "Starting a private registry"
start_registry "$D/registry" || die "docker-registry did not start"
REG=$REGISTRY_ADDR
push_image "$D/img/pause" "$REG" demo/pause:v1 || die "push demo/pause:v1"
push_image "$D/img/app1" "$REG" demo/app:v1 || die "push demo/app:v1"
IMG=$REG/demo/app:v1
D1=$(registry_digest "$REG" demo/app:v1)
say "registry:  http://$REG (pid $(bg_pid registry))"
say "pushed:    $IMG"
say "           the registry serves it as $D1"

step "Starting a private containerd (CRI plugin, runc)"
PINLET_SANDBOX_IMAGE=$REG/demo/pause:v1 start_containerd "$D/containerd" "$REG" ||
	die "containerd did not start"
say "containerd: $CONTAINERD_SOCK (pid $(bg_pid containerd))"

step "Starting pinlet in front of it"
cat >"$D/pinlet.yaml" <<EOF
mode: enforce
on_failure: closed
cache: {ttl: 1s}      # short, so the demo sees the moved tag at once
credentials: {docker_config: []}
registries:
  "$REG": {insecure: true}
EOF
start_bg pinlet "$PINLET" serve --config "$D/pinlet.yaml" --listen "$D/pinlet.sock" \
	--runtime-endpoint "$CONTAINERD_ENDPOINT" --state-dir "$D/state" \
	--audit-log "$D/audit.jsonl" --log-level debug
wait_for_socket "$D/pinlet.sock" 10 || die "pinlet does not listen on $D/pinlet.sock"
"$CRI" -e "unix://$D/pinlet.sock" wait 10 >/dev/null || die "pinlet does not answer CRI"
say "pinlet:    $D/pinlet.sock -> containerd (pid $(bg_pid pinlet))"
say "audit log: $D/audit.jsonl"

# ---- 4. and 5. the job -------------------------------------------------------------------
# cri P|C ARGS: pinlet_it_cri through pinlet (P, as kubelet would) or straight to
# containerd (C, to see what the runtime really got). The JSON answer lands in $out.
cri() {
	local via=$1 ep
	shift
	if [ "$via" = P ]; then ep=unix://$D/pinlet.sock; else ep=$CONTAINERD_ENDPOINT; fi
	out=$("$CRI" -e "$ep" -t 60 "$@" 2>&1) || die "$* ($via): $out"
}
field() { jq -r "$1" <<<"$out"; }

# run_by_tag LABEL DIGEST: ImageStatus, PullImage and a pod + container, all by tag
# through pinlet, then what containerd says about the container: it must have been
# given DIGEST (ContainerStatus.image is the reference CreateContainer carried when the
# image has no tag in containerd) and run it. Sets CID.
run_by_tag() {
	local label=$1 want=$2 image image_ref state
	cri P image-status "$IMG"
	if [ "$(field .image)" = null ]; then
		say "ImageStatus($IMG): absent (the node has no image for what the tag means now)"
	else
		say "ImageStatus($IMG): present ($(field .image.id))"
	fi
	cri P pull "$IMG" -n demo -N "app-$label" -I "demo-$label-uid"
	say "PullImage($IMG) -> image ID $(field .image_ref)"
	cri P run "$IMG" -n demo -N "app-$label" -I "demo-$label-uid" -l "$D/pod-logs"
	CID=$(field .container_id)
	say "RunPodSandbox + CreateContainer($IMG) + StartContainer -> container ${CID:0:12}"
	cri C container-status "$CID"
	state=$(field .state) image=$(field .image) image_ref=$(field .image_ref)
	say "containerd got: $image"
	say "containerd runs: $image_ref ($state)"
	[ "$state" = CONTAINER_RUNNING ] || die "the container is $state, not running"
	[ "$image" = "$REG/demo/app@$want" ] && [ "$image_ref" = "$REG/demo/app@$want" ] ||
		die "containerd was not given $REG/demo/app@$want (is pinlet in enforce mode?)"
	say "${G}pinned:${N} the tag became $want on its way to containerd"
}

step "Running $IMG by tag through pinlet"
run_by_tag first "$D1"
CID_first=$CID

step "Moving the tag: pushing a different image as demo/app:v1"
push_image "$D/img/app2" "$REG" demo/app:v1 || die "push the second image"
D2=$(registry_digest "$REG" demo/app:v1)
[ "$D2" != "$D1" ] || die "the tag did not move"
say "the registry now serves $IMG as $D2"
sleep 1.2 # past pinlet's 1 s cache TTL (production default: 30 s)

step "Running $IMG by tag again"
run_by_tag second "$D2"
CID_second=$CID
cri C container-status "$CID_first"
[ "$(field .image_ref)" = "$REG/demo/app@$D1" ] && [ "$(field .state)" = CONTAINER_RUNNING ] ||
	die "the first container changed: $out"
say "the first container still runs $D1, untouched"

# ---- 6. the record ---------------------------------------------------------------------
step "The audit trail ($D/audit.jsonl)"
sleep 0.3 # the last record is written right after the reply
[ -s "$D/audit.jsonl" ] || die "the audit log is empty"
# One line per decision: time, method, decision, pod, resolved digest (and the previous one).
jq -r '[.time[11:19], .method, .decision, (.pod.name // "-"),
	((.resolved // "-") | sub("^.*@"; "")), ((.previous // "") | sub("^.*@"; ""))] | @tsv' \
	"$D/audit.jsonl" |
	awk -F'\t' '{ printf "    %s  %-15s %-16s %-10s %s%s\n", $1, $2, $3, $4, $5,
		($6 == "" ? "" : "  (was " $6 ")") }'
moved=$(jq -c 'select(.decision == "tag_moved")' "$D/audit.jsonl" | tail -n 1)
[ -n "$moved" ] || die "no tag_moved record in the audit log"
printf '\n    %sthe tag_moved record:%s\n' "$B" "$N"
if [ -t 1 ]; then jq -C . <<<"$moved"; else jq . <<<"$moved"; fi | sed 's/^/    /'
jq -e --arg d1 "$D1" --arg d2 "$D2" '(.previous | contains($d1)) and (.resolved | endswith($d2))' \
	<<<"$moved" >/dev/null || die "the tag_moved record does not name $D1 -> $D2"

step "Summary: one tag, two digests, each run pinned to what the tag meant at the time"
say "tag: $IMG"
printf '    %-16s %-72s %s\n' "run" "digest containerd was given" "container"
printf '    %-16s %-72s %s\n' "first" "$D1" "${CID_first:0:12}"
printf '    %-16s %-72s %s\n' "after the move" "$D2" "${CID_second:0:12}"

# ---- 7. teardown -----------------------------------------------------------------------
step "Cleaning up"
cri P ps
for pod in $(jq -r '.containers[].pod_sandbox_id' <<<"$out" | sort -u); do
	cri P rm-pod "$pod"
done
say "pods removed; stopping pinlet, containerd and the registry by PID"
stop_all
printf '\n%sdemo finished: pinlet pinned %s to %s, then to %s.%s\n' "$G" "$IMG" "$D1" "$D2" "$N"
