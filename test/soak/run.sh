#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Soak test (not part of CI): `pinlet serve` in enforce mode in front of real containerd
# and docker-registry for SOAK_MINUTES (default 10), under a steady mixed load while the
# world around it misbehaves:
#   load     rounds of hostile_crowd (SOAK_ROUND calls at once, default 40, then a pause
#            of SOAK_PAUSE s, default 1): Version and ListImages (pass-through), ImageStatus
#            of a cached tag, PullImage of a moving tag
#   moving   tiny/moving:latest is pushed again, alternately as two different images,
#            twice a minute (while the registry is up)
#   registry stopped at second 20 of every minute, started again (same port) at second 30
#   runtime  containerd restarted at second 45 of every second minute
# Every minute it prints pinlet's RSS, open descriptors and threads, and the calls made
# and failed per class in that minute. At the end it checks:
#   - RSS grew by less than 1 MiB from the end of the first minute to the end
#   - open descriptors and threads are flat (the end value at most SOAK_SLACK, default 2,
#     above the end of the first minute)
#   - every failed call is explained by a fault: a round that overlapped a registry outage
#     (plus SOAK_GRACE_S, default 10 s: cache.error_ttl and reconnection) may fail pulls
#     and tag lookups; one that overlapped a containerd restart (plus the same grace) may
#     fail anything
# and exits non-zero when one does not hold.
#
#   sudo test/soak/run.sh                    # 10 minutes
#   sudo SOAK_MINUTES=2 test/soak/run.sh     # a quick proof
# Binaries come from BUILD_DIR (default build/main in the repository); the harness of
# test/integration/lib provides the daemons (root, containerd, runc, docker-registry,
# skopeo, jq, gcc). PINLET_IT_KEEP=1 keeps the work directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build/main}
MINUTES=${SOAK_MINUTES:-10}
ROUND=${SOAK_ROUND:-40}
PAUSE=${SOAK_PAUSE:-1}
SLACK=${SOAK_SLACK:-2}
GRACE_S=${SOAK_GRACE_S:-10}

export PINLET_BIN=${PINLET_BIN:-$build/src/pinlet}
export PINLET_IT_CRI=${PINLET_IT_CRI:-$build/test/integration/cri/pinlet_it_cri}
export PINLET_IT_FREE_PORT=${PINLET_IT_FREE_PORT:-$build/test/integration/pinlet_it_free_port}
export PINLET_IT_LIB=${PINLET_IT_LIB:-$root/test/integration/lib}
CROWD=${HOSTILE_CROWD:-$build/test/integration/hostile_crowd}
for f in "$PINLET_BIN" "$PINLET_IT_CRI" "$CROWD"; do
	[ -x "$f" ] || { echo "soak: $f is missing (build first, or set BUILD_DIR)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "soak: must run as root (containerd, runc)" >&2; exit 2; }
[[ $MINUTES =~ ^[1-9][0-9]*$ ]] || { echo "soak: SOAK_MINUTES must be a positive integer" >&2; exit 2; }

# shellcheck source=../integration/lib/common.sh
. "$PINLET_IT_LIB/common.sh"
# shellcheck source=../integration/lib/containerd.sh
. "$PINLET_IT_LIB/containerd.sh"
# shellcheck source=../integration/lib/images.sh
. "$PINLET_IT_LIB/images.sh"
# shellcheck source=../integration/lib/pinlet.sh
. "$PINLET_IT_LIB/pinlet.sh"

it_setup
D=$PINLET_IT_DIR

now_ns() { date +%s%N; }

# ---- setup -----------------------------------------------------------------------------
mkdir -p "$D/img"
build_pause_binary "$D/img/pause.bin" || it_fail "build_pause_binary"
for v in a b; do
	cp "$D/img/pause.bin" "$D/img/$v.bin"
	printf '\npinlet-soak-%s\n' "$v" >>"$D/img/$v.bin"
	build_pause_image "$D/img/$v" "$v" "$D/img/$v.bin" || it_fail "image $v"
done
start_registry "$D/registry" || it_fail "registry"
REG=$REGISTRY_ADDR
REG_PORT=$REGISTRY_PORT
push_image "$D/img/a" "$REG" tiny/app:v1 || it_fail "push tiny/app:v1"
push_image "$D/img/a" "$REG" tiny/moving:latest || it_fail "push tiny/moving:latest"
moving=a
start_containerd "$D/containerd" "$REG" || it_fail "containerd"
mkdir -p "$D/pinlet"
cat >"$D/pinlet/config.yaml" <<EOF
mode: enforce
on_failure: closed
cache: {ttl: 5s}
credentials: {docker_config: ["$D/no-such-docker-config.json"]}
registries: {"$REG": {insecure: true}}
EOF
start_pinlet "$D/pinlet" "$CONTAINERD_ENDPOINT" --mode enforce --log-level info ||
	it_fail "pinlet"
PID=$(bg_pid pinlet)
"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" -t 60 pull "$REG/tiny/app:v1" >/dev/null ||
	it_fail "first pull of $REG/tiny/app:v1"
MIX=(version list "status=$REG/tiny/app:v1" "pull=$REG/tiny/moving:latest")
CLASSES=(pass-through pass-through cache-hit moving-pull)

# ---- faults, recorded as "KIND START_NS END_NS" ----------------------------------------
faults=$D/faults
: >"$faults"
registry_down_since=0

registry_stop() {
	stop_bg registry
	registry_down_since=$(now_ns)
	it_log "fault: registry stopped"
}
registry_start() {
	start_registry "$D/registry" "$REG_PORT" || it_fail "registry restart on port $REG_PORT"
	echo "registry $registry_down_since $(now_ns)" >>"$faults"
	registry_down_since=0
}
containerd_bounce() {
	local t0
	t0=$(now_ns)
	it_log "fault: restarting containerd"
	restart_containerd "$CONTAINERD_DIR" || it_fail "containerd restart"
	echo "containerd $t0 $(now_ns)" >>"$faults"
}
repush_moving() {
	[ "$moving" = a ] && moving=b || moving=a
	push_image "$D/img/$moving" "$REG" tiny/moving:latest || it_fail "re-push tiny/moving:latest"
	it_log "tiny/moving:latest is now image $moving"
}

# explained START_NS END_NS CLASS: true when a failure of CLASS in a round that ran from
# START to END is explained by a fault (an open registry outage counts as one too).
explained() {
	local s=$1 e=$2 class=$3 grace=$((GRACE_S * 1000000000))
	if [ "$registry_down_since" != 0 ] && [ "$class" != pass-through ]; then
		return 0
	fi
	awk -v s="$s" -v e="$e" -v g="$grace" -v c="$class" '
		$1 == "containerd" && $2 <= e && $3 + g >= s { found = 1 }
		$1 == "registry" && c != "pass-through" && $2 <= e && $3 + g >= s { found = 1 }
		END { exit !found }' "$faults"
}

# ---- the run ---------------------------------------------------------------------------
proc_field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PID/status"; }
sample() { # "RSS_KIB FDS THREADS"
	echo "$(proc_field VmRSS) $(find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 | wc -l) $(proc_field Threads)"
}

declare -A made failed shown
total_failed=0 unexplained=0
samples=()
printf '%-6s %10s %5s %7s  %s\n' minute rss_kib fds threads "calls made/failed by class" >&2
for ((m = 0; m < MINUTES; m++)); do
	for c in pass-through cache-hit moving-pull; do made[$c]=0 failed[$c]=0; done
	m0=$(now_ns)
	did_reg_stop=0 did_reg_start=0 did_cd=0 did_push1=0 did_push2=0
	while :; do
		t=$((($(now_ns) - m0) / 1000000000))
		[ "$t" -lt 60 ] || break
		if [ $did_push1 = 0 ] && [ "$t" -ge 5 ]; then repush_moving; did_push1=1; fi
		if [ $did_reg_stop = 0 ] && [ "$t" -ge 20 ]; then registry_stop; did_reg_stop=1; fi
		if [ $did_reg_start = 0 ] && [ "$t" -ge 30 ]; then registry_start; did_reg_start=1; fi
		if [ $did_push2 = 0 ] && [ "$t" -ge 40 ]; then repush_moving; did_push2=1; fi
		if [ $((m % 2)) = 1 ] && [ $did_cd = 0 ] && [ "$t" -ge 45 ]; then
			containerd_bounce
			did_cd=1
		fi
		bg_running pinlet || it_fail "pinlet exited"
		rs=$(now_ns)
		out=$("$CROWD" -e "$PINLET_ENDPOINT" -n "$ROUND" -c 1 -t 30 "${MIX[@]}" 2>&1) || true
		re=$(now_ns)
		for i in "${!MIX[@]}"; do
			c=${CLASSES[$i]}
			read -r n f < <(awk -v s="${MIX[$i]}:" '$1 == s { print $2, $6 }' <<<"$out")
			[ -n "${n:-}" ] || { it_log "round output without ${MIX[$i]}: $out"; n=0 f=0; }
			made[$c]=$((made[$c] + n))
			failed[$c]=$((failed[$c] + f))
			total_failed=$((total_failed + f))
			if [ "$f" -gt 0 ] && ! explained "$rs" "$re" "$c"; then
				unexplained=$((unexplained + f))
				it_log "UNEXPLAINED: $f failed ${MIX[$i]} calls: $(grep '^FAILED' <<<"$out" | head -n 3)"
			elif [ "$f" -gt 0 ] && [ "${shown[$c]:-}" != "$m" ]; then
				# One sample per class and minute of what a fault did to the calls.
				shown[$c]=$m
				it_log "explained by a fault: $f failed ${MIX[$i]}: $(grep -m 1 "^FAILED ${MIX[$i]}:" <<<"$out")"
			fi
		done
		sleep "$PAUSE" # pacing between rounds, not synchronisation
	done
	s=$(sample)
	samples+=("$s")
	read -r rss fds thr <<<"$s"
	printf '%-6s %10s %5s %7s  pass-through %d/%d, cache-hit %d/%d, moving-pull %d/%d\n' \
		$((m + 1)) "$rss" "$fds" "$thr" "${made[pass-through]}" "${failed[pass-through]}" \
		"${made[cache-hit]}" "${failed[cache-hit]}" "${made[moving-pull]}" \
		"${failed[moving-pull]}" | tee -a "$D/report" >&2
done

# ---- checks ----------------------------------------------------------------------------
rc=0
read -r rss1 fds1 thr1 <<<"${samples[0]}"
read -r rssN fdsN thrN <<<"${samples[-1]}"
echo "faults: $(awk '{ n[$1]++ } END { for (k in n) printf "%s %d ", k, n[k] }' "$faults")" >&2
echo "failed calls: $total_failed, unexplained: $unexplained" >&2
if [ "$MINUTES" -lt 2 ]; then
	echo "check: 1 minute only, no growth to compare" >&2
else
	if [ $((rssN - rss1)) -ge 1024 ]; then
		echo "FAIL: RSS grew by $((rssN - rss1)) KiB after the first minute (limit 1024)" >&2
		rc=1
	fi
	if [ "$fdsN" -gt $((fds1 + SLACK)) ]; then
		echo "FAIL: open descriptors $fds1 -> $fdsN" >&2
		rc=1
	fi
	if [ "$thrN" -gt $((thr1 + SLACK)) ]; then
		echo "FAIL: threads $thr1 -> $thrN" >&2
		rc=1
	fi
	echo "check: RSS $rss1 -> $rssN KiB, fds $fds1 -> $fdsN, threads $thr1 -> $thrN" >&2
fi
if [ "$unexplained" -gt 0 ]; then
	echo "FAIL: $unexplained failed calls no fault explains" >&2
	rc=1
fi
[ $rc = 0 ] && it_log "soak: PASS ($MINUTES minutes)" || it_log "soak: FAIL"
exit $rc
