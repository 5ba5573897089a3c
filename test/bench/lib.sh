# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# What the benchmark drivers around the real runtime (image/run.sh, create/run.sh) share.
# Source it with `repo` set (the repository root): it sources the integration harness
# (test/integration/lib: common.sh, containerd.sh, images.sh, pinlet.sh) and defines:
#
#   bench_binaries BUILD_DIR BINARY...
#           PINLET_BIN and PINLET_IT_FREE_PORT (exported) and CRI (pinlet_it_cri) from
#           BUILD_DIR; exits when one of them or of the BINARYs is not executable; warns
#           when BUILD_DIR is not a Release build
#   (after it_setup:)
#   bench_out SMOKE BUILD_DIR NAME
#           the results directory: $out when set, else PINLET_IT_DIR/results for a smoke
#           run (SMOKE = 1), else BUILD_DIR/bench-results/NAME-<UTC time>; created, and
#           made absolute in $out
#   bench_machine CMDLINE BUILD_DIR
#           the machine table (Markdown) on stdout: command, date, cores, CPU, kernel,
#           containerd, docker-registry, the pinlet commit and build type, load average

# shellcheck source=../integration/lib/common.sh
. "$repo/test/integration/lib/common.sh"
# shellcheck source=../integration/lib/containerd.sh
. "$repo/test/integration/lib/containerd.sh"
# shellcheck source=../integration/lib/images.sh
. "$repo/test/integration/lib/images.sh"
# shellcheck source=../integration/lib/pinlet.sh
. "$repo/test/integration/lib/pinlet.sh"

bench_binaries() {
	local build_dir=$1 b
	shift
	PINLET_BIN=$build_dir/src/pinlet
	PINLET_IT_FREE_PORT=$build_dir/test/integration/pinlet_it_free_port
	CRI=$build_dir/test/integration/cri/pinlet_it_cri
	export PINLET_BIN PINLET_IT_FREE_PORT
	for b in "$PINLET_BIN" "$PINLET_IT_FREE_PORT" "$CRI" "$@"; do
		[ -x "$b" ] || { echo "run.sh: $b missing (build first or drop --no-build)" >&2; exit 1; }
	done
	grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$build_dir/CMakeCache.txt" ||
		echo "run.sh: warning: $build_dir is not a Release build" >&2
}

bench_out() {
	local smoke=$1 build_dir=$2 name=$3
	if [ -z "${out:-}" ]; then
		if [ "$smoke" = 1 ]; then
			out=$PINLET_IT_DIR/results
		else
			out=$build_dir/bench-results/$name-$(date -u +%Y%m%d-%H%M%S)
		fi
	fi
	mkdir -p "$out" || it_fail "cannot create $out"
	out=$(cd "$out" && pwd)
}

bench_machine() {
	local cmdline=$1 build_dir=$2
	echo "| | |"
	echo "|---|---|"
	echo "| command | \`$cmdline\` |"
	echo "| date (UTC) | $(date -u '+%Y-%m-%d %H:%M') |"
	echo "| nproc | $(nproc) |"
	echo "| CPU | $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1) |"
	echo "| kernel | $(uname -r) |"
	echo "| containerd | $(containerd --version | awk '{print $3}') |"
	echo "| docker-registry | $(docker-registry --version | awk '{print $3}') |"
	echo "| pinlet | $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet 2>/dev/null || echo ' + uncommitted changes'), $(grep '^CMAKE_BUILD_TYPE:' "$build_dir/CMakeCache.txt" | cut -d= -f2) |"
	echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
}
