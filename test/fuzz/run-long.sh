#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Long libFuzzer runs of every harness (not part of CI: hours of CPU at the default).
#
#   test/fuzz/run-long.sh [-r RUNS] [-b BUILD_DIR] [-n] [HARNESS...]
#     -r RUNS       executions per harness (libFuzzer -runs=), default 10000000
#     -b BUILD_DIR  the clang build with -DPINLET_FUZZ=ON (default build/fuzz), configured
#                   and built here (CC=clang, -j2) when it does not exist yet
#     -n            do not merge new inputs into the committed corpus
#     HARNESS       e.g. fuzz_ref_parse or ref_parse (default: every test/fuzz/fuzz_*.c)
#
# Each harness starts from its committed corpus test/fuzz/corpus/<name>/ (read only while
# fuzzing; new inputs go to a scratch directory) and the run's new inputs are then merged
# back with -merge=1, which keeps only inputs that add coverage, so the corpus grows by
# what is new and stays small. Crashes, leaks, timeouts and OOMs land in
# BUILD_DIR/fuzz-artifacts/<name>/ and are counted. At the end a table:
#   harness, executions, seconds, exec/s, corpus files (before -> after), crashes
# Exit status 1 when any harness crashed (or libFuzzer failed), else 0.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=10000000
build=$root/build/fuzz
merge=1
while getopts r:b:n o; do
	case $o in
	r) runs=$OPTARG ;;
	b) build=$OPTARG ;;
	n) merge=0 ;;
	*) sed -n '4,12p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "run-long: -r wants a positive number" >&2; exit 2; }

harnesses=()
if [ $# -gt 0 ]; then
	for h in "$@"; do harnesses+=("fuzz_${h#fuzz_}"); done
else
	for f in "$here"/fuzz_*.c; do
		h=${f##*/}
		harnesses+=("${h%.c}")
	done
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
	CC=clang cmake -S "$root" -B "$build" -DPINLET_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j2 --target "${harnesses[@]}" >/dev/null

scratch=$(mktemp -d /tmp/pinlet-fuzz-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
table=$scratch/table
failed=0
for h in "${harnesses[@]}"; do
	name=${h#fuzz_}
	bin=$(find "$build" -type f -name "$h" -perm -u+x | head -n 1)
	corpus=$here/corpus/$name
	art=$build/fuzz-artifacts/$name
	[ -x "$bin" ] || { echo "run-long: $h was not built in $build" >&2; exit 1; }
	mkdir -p "$corpus" "$art" "$scratch/$name"
	before=$(find "$corpus" -maxdepth 1 -type f | wc -l)
	crashes_before=$(find "$art" -maxdepth 1 -type f | wc -l)
	echo "== $h: $runs runs from $before corpus files" >&2
	t0=$(date +%s%N)
	rc=0
	# New inputs go to the scratch directory (the first one); the corpus is only read.
	"$bin" -runs="$runs" -print_final_stats=1 -artifact_prefix="$art/" \
		"$scratch/$name" "$corpus" >"$scratch/$name.log" 2>&1 || rc=$?
	t1=$(date +%s%N)
	execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$scratch/$name.log" |
		tail -n 1)
	crashes=$(($(find "$art" -maxdepth 1 -type f | wc -l) - crashes_before))
	if [ $rc -ne 0 ] || [ "$crashes" -gt 0 ]; then
		failed=1
		echo "run-long: $h exited $rc with $crashes new artifact(s) in $art:" >&2
		tail -n 30 "$scratch/$name.log" >&2
	fi
	if [ $merge = 1 ]; then
		"$bin" -merge=1 -artifact_prefix="$art/" "$corpus" "$scratch/$name" \
			>"$scratch/$name.merge.log" 2>&1 ||
			{ echo "run-long: merge for $h failed:" >&2; tail -n 20 "$scratch/$name.merge.log" >&2; failed=1; }
	fi
	after=$(find "$corpus" -maxdepth 1 -type f | wc -l)
	awk -v h="$h" -v e="${execs:-0}" -v ns=$((t1 - t0)) -v b="$before" -v a="$after" -v c="$crashes" \
		'BEGIN { s = ns / 1e9; printf "%-28s %12d %9.1f %10.0f %6d -> %-6d %7d\n", h, e, s, (s > 0 ? e / s : 0), b, a, c }' \
		>>"$table"
done

printf '%-28s %12s %9s %10s %16s %7s\n' harness executions seconds exec/s "corpus files" crashes
cat "$table"
exit $failed
