#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shellcheck source-path=SCRIPTDIR/../lib
#
# Checks the harness's promise that every integration test relies on: whatever state a
# test dies in, nothing it started survives it. An inner test (this script with
# --inner) starts a registry, containerd and a running pod, SIGKILLs containerd (so the
# shim and the pod are orphaned) and fails. Afterwards this script checks that no
# process mentions the inner test's directory, nothing is mounted below it, the shim's
# socket under /run/containerd/s is gone and the directory itself was removed.
# Environment as for run.sh: PINLET_IT_CRI (the CRI command-line client), optional
# PINLET_IT_FREE_PORT and PINLET_IT_LIB. Must run as root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lib=${PINLET_IT_LIB:-$here/../lib}
. "$lib/common.sh"
. "$lib/containerd.sh"
. "$lib/images.sh"

if [ "${1:-}" = --inner ]; then
	report=$2
	it_setup
	echo "dir $PINLET_IT_DIR" >"$report"
	start_registry "$PINLET_IT_DIR/registry" || it_fail "registry"
	build_pause_image "$PINLET_IT_DIR/img" pause || it_fail "image"
	push_image "$PINLET_IT_DIR/img" "$REGISTRY_ADDR" tiny/pause:v1 || it_fail "push"
	start_containerd "$PINLET_IT_DIR/containerd" "$REGISTRY_ADDR" || it_fail "containerd"
	"$PINLET_IT_CRI" -e "$CONTAINERD_ENDPOINT" wait 10 >/dev/null || it_fail "CRI not ready"
	out=$("$PINLET_IT_CRI" -e "$CONTAINERD_ENDPOINT" run "$REGISTRY_ADDR/tiny/pause:v1") ||
		it_fail "run: $out"
	jq -r '"ctr " + .pod_sandbox_id, "ctr " + .container_id' <<<"$out" >>"$report"
	_containerd_shims "$CONTAINERD_DIR" | while read -r pid ns id; do
		echo "shim $pid $(_containerd_shim_socket "$CONTAINERD_SOCK" "$ns" "$id")" >>"$report"
	done
	grep -q '^shim ' "$report" || it_fail "no shim found for the running pod"
	kill_bg containerd
	it_log "failing on purpose with a pod running and containerd killed"
	exit 3
fi

[ "$(id -u)" = 0 ] || { echo "cleanup_check.sh: must run as root" >&2; exit 1; }
[ -x "${PINLET_IT_CRI:-}" ] || { echo "cleanup_check.sh: PINLET_IT_CRI not set" >&2; exit 1; }

it_setup
report=$PINLET_IT_DIR/report
rc=0
# PINLET_IT_DIR is this script's; the inner test makes its own.
env -u PINLET_IT_DIR bash "$here/cleanup_check.sh" --inner "$report" || rc=$?
[ "$rc" = 3 ] || it_fail "the inner test ended with $rc, expected its own failure (3)"
inner=$(awk '$1 == "dir" { print $2 }' "$report")
[ -n "$inner" ] || it_fail "the inner test did not report its directory"
it_log "inner test used $inner"

failed=0
# Processes whose command line mentions the inner directory (containerd, registry, the
# shim). Found by that unique path, stopped by PID so this check leaves nothing behind.
leaked=$({ grep -lsaF -- "$inner" /proc/[0-9]*/cmdline 2>/dev/null || true; } | cut -d/ -f3 |
	grep -vx "$$" || true)
for pid in $leaked; do
	_it_pid_alive "$pid" || continue
	it_log "LEAKED process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
	stop_pid "$pid" 2
	failed=1
done
while read -r tag pid sock; do
	[ "$tag" = shim ] || continue
	if _it_pid_alive "$pid"; then
		it_log "LEAKED shim $pid"
		stop_pid "$pid" 2
		failed=1
	fi
	if [ -e "$sock" ]; then
		it_log "LEAKED shim socket $sock"
		rm -f "$sock"
		failed=1
	fi
done <"$report"
# The pod's processes (pause) do not mention the directory: they are found by their
# container IDs in /proc/PID/cgroup. Their cgroups must be gone too (runc removes them).
while read -r tag id; do
	[ "$tag" = ctr ] || continue
	pids=$({ grep -lsF -- "$id" /proc/[0-9]*/cgroup 2>/dev/null || true; } | cut -d/ -f3)
	for pid in $pids; do
		_it_pid_alive "$pid" || continue
		it_log "LEAKED container process $pid of $id"
		kill -KILL "$pid" 2>/dev/null || true
		failed=1
	done
	for cg in /sys/fs/cgroup/*/k8s.io/"$id" /sys/fs/cgroup/k8s.io/"$id"; do
		[ -d "$cg" ] || continue
		it_log "LEAKED cgroup $cg"
		rmdir "$cg" 2>/dev/null || true
		failed=1
	done
done <"$report"
if _it_mounts_under "$inner" | grep -q .; then
	it_log "LEAKED mounts: $(_it_mounts_under "$inner" | tr '\n' ' ')"
	umount_under "$inner" || true
	failed=1
fi
if [ -e "$inner" ]; then
	it_log "LEAKED directory $inner"
	rm -rf --one-file-system "$inner"
	failed=1
fi
[ "$failed" = 0 ] || it_fail "the harness left state behind"
it_log "PASS: nothing left behind"
