#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The CreateContainer benchmark: what pinlet, and its image verifiers, add to
# CreateContainer against a real containerd 1.6, as ratios against baselines measured in
# the same run.
#
#   test/bench/create/run.sh [--quick | --smoke] [--no-build] [--build-dir DIR] [--out DIR]
#                            [--calls N] [--rounds N]
#
#   (default)   50 creates per run, 5 rounds
#   --quick     20 creates per run, 2 rounds
#   --smoke     3 creates, 1 round, results in the private directory (ctest label
#               bench-smoke: proves the chain works; the numbers mean nothing)
#   --no-build  use the binaries already in --build-dir
#   --build-dir default: build-bench-release in the repository (a Release build)
#   --out       results directory (default: BUILD_DIR/bench-results/create-<UTC time>)
#
# Four targets in front of one containerd, in one private /tmp/pinlet-it-XXXX directory,
# every daemon stopped by PID on exit (also on failure):
#   direct   containerd's socket
#   plain    pinlet (enforce, cache.ttl 1h) without verifiers
#   cached   pinlet with one verifier (a shell script that allows) and
#            verifiers.cache_ttl 1h: every create is a verdict-cache hit
#   run      the same verifier with verifiers.cache_ttl 0: every create runs it
# The image is pulled once through each pinlet (the pin, and the cached verdict, exist)
# and one pod sandbox (host network) is run directly; each target gets 3 unrecorded
# warm-up creates. Each run makes CALLS
# CreateContainer calls in that pod, kubelet's form (ImageSpec.image = the image ID,
# user_specified_image = the tag), one after another, each timed alone and followed by an
# untimed RemoveContainer so the pod never grows. Targets alternate inside each round
# (the order rotates every round); medians over rounds; ratios paired by round.
# The verifier appends a line to a file per run: the benchmark checks that `run` ran it
# once per create and `cached` never.
#
# Results in OUT: machine.md, create-raw.jsonl, results.md. The benchmark asserts nothing
# about time; it fails only when a call fails or a verifier count is off.
# shellcheck disable=SC2016
set -o pipefail
cmdline="test/bench/create/run.sh${*:+ $*}"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)

build=1
build_dir=$repo/build-bench-release
out=""
calls=50
rounds=5
smoke=0

usage() {
	sed -n "8,18p" "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) calls=20 rounds=2 ;;
	--smoke) calls=3 rounds=1 smoke=1 ;;
	--no-build) build=0 ;;
	--build-dir) build_dir=$2; shift ;;
	--out) out=$2; shift ;;
	--calls) calls=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	-h | --help) usage ;;
	*) echo "unknown argument: $1" >&2; usage ;;
	esac
	shift
done

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (containerd)" >&2; exit 1; }
for c in containerd runc docker-registry skopeo jq gcc; do
	command -v "$c" >/dev/null || { echo "run.sh: $c not installed" >&2; exit 1; }
done

targets=(pinlet pinlet_bench_create pinlet_it_cri pinlet_it_free_port)
if [ "$build" = 1 ]; then
	echo "building (Release) in $build_dir" >&2
	cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
	cmake --build "$build_dir" -j2 --target "${targets[@]}" >/dev/null ||
		{ echo "run.sh: build failed" >&2; exit 1; }
fi
BENCH=$build_dir/test/bench/create/pinlet_bench_create
# shellcheck source=../lib.sh
. "$repo/test/bench/lib.sh"
bench_binaries "$build_dir" "$BENCH"

it_setup
dir=$PINLET_IT_DIR
bench_out "$smoke" "$build_dir" create
it_log "$calls creates per run, $rounds round(s); results in $out"

bench_machine "$cmdline" "$build_dir" >"$out/machine.md"

# --- registry, image, containerd, the three pinlets ----------------------------------------
start_registry "$dir/registry" || it_fail "registry"
reg=$REGISTRY_ADDR
mkdir -p "$dir/img"
build_pause_binary "$dir/img/pause.bin" || it_fail "build_pause_binary"
build_pause_image "$dir/img/pause" pause "$dir/img/pause.bin" || it_fail "pause image"
build_pause_image "$dir/img/app" v1 "$dir/img/pause.bin" || it_fail "app image"
push_image "$dir/img/pause" "$reg" tiny/pause:v1 || it_fail "push pause"
push_image "$dir/img/app" "$reg" tiny/app:v1 || it_fail "push app"
image=$reg/tiny/app:v1
start_containerd "$dir/containerd" "$reg" || it_fail "containerd"

mkdir -p "$dir/verifiers"
runs=$dir/verifier-runs
: >"$runs"
printf '#!/bin/sh\ncat >/dev/null\necho run >>"%s"\necho allowed\nexit 0\n' "$runs" \
	>"$dir/verifiers/10-allow"
chmod 755 "$dir/verifiers/10-allow"

declare -A ep
ep[direct]=$CONTAINERD_ENDPOINT
for t in plain cached run; do
	mkdir -p "$dir/$t"
	printf 'registries: {"%s": {insecure: true}}\ncache: {ttl: 1h}\n' "$reg" >"$dir/$t/config.yaml"
	case $t in
	cached) printf 'verifiers: {bin_dir: "%s", cache_ttl: 1h}\n' "$dir/verifiers" ;;
	run) printf 'verifiers: {bin_dir: "%s", cache_ttl: 0s}\n' "$dir/verifiers" ;;
	esac >>"$dir/$t/config.yaml"
	# start_pinlet passes --log-level debug; later options win: info, as on a node.
	PINLET_NAME=pinlet-$t start_pinlet "$dir/$t" "$CONTAINERD_ENDPOINT" --mode enforce \
		--log-level info || it_fail "pinlet $t"
	ep[$t]=$PINLET_ENDPOINT
done

# The pod (directly: RunPodSandbox is not what is measured), and the image pulled through
# every pinlet: the pin exists, and `cached` holds an allow verdict.
pod_json=$("$BENCH" pod "${ep[direct]}" "$image") || it_fail "pod"
pod=$(jq -r .pod <<<"$pod_json")
image_id=$(jq -r .image_ref <<<"$pod_json")
for t in plain cached run; do
	"$CRI" -e "${ep[$t]}" pull "$image" >/dev/null || it_fail "pull through $t"
done
it_log "pod $pod, image $image = $image_id; verifier runs so far: $(wc -l <"$runs")"

# --- the runs -----------------------------------------------------------------------------
order=(direct plain cached run)
# warm-up, not recorded: the first creates of a pod and of a channel cost more
for t in "${order[@]}"; do
	"$BENCH" run "$t-warmup" "${ep[$t]}" "$pod" "$image_id" "$image" 3 >/dev/null ||
		it_fail "warm-up $t: calls failed"
done
: >"$out/create-raw.jsonl"
for ((r = 0; r < rounds; r++)); do
	for ((k = 0; k < 4; k++)); do
		t=${order[$(((k + r) % 4))]}
		before=$(wc -l <"$runs")
		res=$("$BENCH" run "$t" "${ep[$t]}" "$pod" "$image_id" "$image" "$calls") ||
			it_fail "round $r, $t: calls failed"
		n=$(($(wc -l <"$runs") - before))
		case $t in
		run) [ "$n" = "$calls" ] || it_fail "round $r: $n verifier runs for $calls creates, want $calls" ;;
		*) [ "$n" = 0 ] || it_fail "round $r, $t: $n verifier runs, want 0" ;;
		esac
		jq -c --argjson r "$r" --argjson v "$n" '. + {round: $r, verifier_runs: $v}' <<<"$res" \
			>>"$out/create-raw.jsonl"
		it_log "round $r $t: $res (verifier runs $n)"
	done
done

# --- results ------------------------------------------------------------------------------
jq -s -r '
  def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                     else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r1: . * 10 | round / 10;
  def r3: . * 1000 | round / 1000;
  (map(select(.target == "direct")) | sort_by(.round)) as $d |
  (map(select(.target == "plain")) | sort_by(.round)) as $b |
  ["direct", "plain", "cached", "run"][] as $t |
  (map(select(.target == $t)) | sort_by(.round)) as $x |
  "| \($t) | \($x | map(.p50_us) | median | r1) | \($x | map(.p99_us) | median | r1) | \($x | map(.mean_us) | median | r1) | \([range(0; $x | length) as $i | $x[$i].p50_us - $d[$i].p50_us] | median | r1) | \([range(0; $x | length) as $i | $x[$i].rate / $d[$i].rate] | median | r3) | \([range(0; $x | length) as $i | $x[$i].rate / $b[$i].rate] | median | r3) | \($x | map(.verifier_runs) | add) |"
' "$out/create-raw.jsonl" >"$out/rows.md" || it_fail "summarising"
{
	echo "# CreateContainer: direct vs through pinlet, with verifiers"
	echo
	cat "$out/machine.md"
	echo
	echo "| target | p50 µs | p99 µs | mean µs | added p50 µs vs direct | rate / direct | rate / plain pinlet | verifier runs |"
	echo "|---|---|---|---|---|---|---|---|"
	cat "$out/rows.md"
	echo
	echo "$calls creates per run, $rounds round(s), targets alternating (medians; added and ratios paired by round)."
	echo "Rate: creates per second of create time (RemoveContainer between creates is not counted)."
} >"$out/results.md"
rm -f "$out/rows.md"
cat "$out/results.md" >&2
for t in plain cached run; do
	bg_running "pinlet-$t" || it_fail "pinlet $t exited during the benchmark"
done
it_log "done: $out/results.md"
