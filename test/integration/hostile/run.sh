#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The resolver against hostile registries: `pinlet serve` in enforce mode in front of real
# containerd and docker-registry, plus hostile_tarpit (tarpit.c) playing a registry that
# holds connections (one byte per second), closes them unanswered, or is not there. One
# case per invocation (one ctest each, see ../hostile.cmake):
#
#   hol           resolver.workers 2, four ImageStatus calls for tags on the tarpit hold
#                 both workers; meanwhile ImageStatus of a cached tag, ImageStatus by
#                 digest and CreateContainer of a pinned tag (a whole `run`) each complete,
#                 correctly, while the tarpit still holds its connections
#   per_registry  resolver.per_registry 2, resolver.workers 4, six calls for the tarpit:
#                 a cold resolution against the healthy registry completes while the
#                 tarpit holds its connections, and the tarpit never saw more than 2 at once
#   error_ttl     cache.error_ttl 30s: a registry that closed the connection unanswered,
#                 or refused it, fails the next calls at once with NO new connection (the
#                 tarpit's accept count does not move; for the refusing port a listener is
#                 started there after the first failure and must see nothing); with
#                 on_failure open the calls pass through, pinlet itself asking only once;
#                 ImageStatus of a pinned tag, registry down, answers from the pin and the
#                 fallback is logged as a warning, rate-limited (fewer lines than calls)
#   load1000      1000 concurrent calls (Version, ListImages, ImageStatus of a cached tag
#                 and by digest, PullImage of a tag) through pinlet: every one answers OK
#
# The assertions are about order and counts, never about time: "completed while the
# tarpit holds N connections open" (the tarpit answers one byte per second for 120 s and
# pinlet's resolver timeout is longer than that), "accept count unchanged". Each call has
# a deadline (10 s for calls that must not wait for the tarpit) only so that a broken
# build fails instead of hanging. The measured latencies are printed ("latency: ...").
#
# resolver.per_registry and cache.error_ttl are new keys: when the pinlet under test does
# not accept one (`pinlet check-config`), the case runs without it and says so; it then
# fails on the behaviour the key is meant to give, which is the point.
#
# Needs root, containerd, runc, docker-registry, skopeo, jq, gcc.
# Environment (ctest sets it): PINLET_BIN, PINLET_IT_CRI, PINLET_IT_LIB,
# PINLET_IT_FREE_PORT (optional), HOSTILE_TARPIT, HOSTILE_CROWD. PINLET_IT_KEEP=1 keeps
# the work directory.
# jq filters are single-quoted on purpose ($vars are jq variables given with --arg).
# shellcheck disable=SC2016,SC2154 # jq $vars; *_ADDR are set by start_tarpit
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
case_name=${1:-}
case $case_name in
hol | per_registry | error_ttl | load1000) ;;
*)
	echo "usage: $0 hol|per_registry|error_ttl|load1000" >&2
	exit 2
	;;
esac

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

it_require run.sh "containerd runc docker-registry skopeo gcc jq ss" \
	"PINLET_BIN PINLET_IT_CRI HOSTILE_TARPIT HOSTILE_CROWD"

it_setup
D=$PINLET_IT_DIR
it_log "case $case_name"

# The tarpit answers one byte per second for this long; pinlet's resolver may wait longer
# (RESOLVE_TIMEOUT) and the background calls longer still, so nothing but the end of the
# test ends a held connection.
HOLD_S=120
RESOLVE_TIMEOUT=200s
SLOW_CALL_S=300
# The deadline of a call that must not wait for the tarpit: only a guard against hanging.
FAST_CALL_S=10

# ---- helpers ---------------------------------------------------------------------------

# expect (a jq assertion) comes from lib/cri_assert.sh.

# timed_cri OK|FAIL LABEL SECONDS ARGS...: one pinlet_it_cri call through pinlet with
# deadline SECONDS. The JSON answer lands in $out and the wall time in $ms; OK: the call
# must answer OK, FAIL: it must answer another status.
timed_cri() {
	local want=$1 label=$2 t=$3 rc=0 t0
	shift 3
	t0=$(date +%s%N)
	out=$("$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" -t "$t" "$@" 2>"$D/cri.stderr") || rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	if [ "$want" = OK ] && [ $rc -ne 0 ]; then
		it_fail "$label: expected OK, exit $rc after $ms ms: $out $(cat "$D/cri.stderr")"
	elif [ "$want" = FAIL ] && [ $rc -ne 1 ]; then
		it_fail "$label: expected a non-OK gRPC status, exit $rc after $ms ms: $out $(cat "$D/cri.stderr")"
	fi
	it_log "$label ($ms ms): $out"
}

# Latencies go to stdout as "latency: WHAT MS ms (CONTEXT)" for docs/PERFORMANCE.md.
latency() {
	printf 'latency: %s %s ms (%s)\n' "$1" "$2" "$3"
}

# start_tarpit NAME MODE [PORT]: hostile_tarpit in MODE; sets ${NAME}_ADDR (host:port).
start_tarpit() {
	local name=$1 mode=$2 port=${3:-} args=()
	[ -z "$port" ] || args=(--port "$port")
	rm -f "$D/$name.port"
	start_bg "$name" "$HOSTILE_TARPIT" --mode "$mode" --port-file "$D/$name.port" \
		--state "$D/$name.state" --hold "$HOLD_S" "${args[@]}"
	wait_until 10 test -s "$D/$name.port" || it_fail "$name did not start"
	# shellcheck disable=SC2229 # sets tarpit_ADDR, closer_ADDR, ... by name
	printf -v "${name}_ADDR" '127.0.0.1:%s' "$(cat "$D/$name.port")"
	it_log "$name ($mode) listens on 127.0.0.1:$(cat "$D/$name.port")"
}

# tp NAME KEY: one of the tarpit's counters (accepted, open, max_open, requests,
# pinlet_requests).
tp() {
	tr ' ' '\n' <"$D/$1.state" | awk -F= -v k="$2" '$1 == k { print $2 }'
}
tp_at_least() { [ "$(tp "$1" "$2")" -ge "$3" ]; }

# supports KEY VALUE: true when this pinlet accepts the dotted config KEY (two levels).
supports() {
	local key=$1 value=$2 f=$D/probe-config.yaml
	printf '%s:\n  %s: %s\n' "${key%%.*}" "${key#*.}" "$value" >"$f"
	"$PINLET_BIN" check-config "$f" >/dev/null 2>&1
}

# pinlet_config FILE WORKERS PER_REGISTRY ERROR_TTL REGISTRY_ENTRY...: enforce, fail
# closed, a cache that outlives the test, no credential files. PER_REGISTRY / ERROR_TTL
# "" leave the key out; so does a pinlet that does not know it (logged). Each
# REGISTRY_ENTRY is `"host:port": {...}`.
pinlet_config() {
	local file=$1 workers=$2 per_registry=$3 error_ttl=$4 e
	shift 4
	{
		echo "mode: enforce"
		echo "on_failure: closed"
		echo "cache:"
		echo "  ttl: 10m"
		echo "  negative_ttl: 1s"
		if [ -n "$error_ttl" ]; then
			if supports cache.error_ttl "$error_ttl"; then
				echo "  error_ttl: $error_ttl"
			else
				it_log "NOTE: this pinlet does not know cache.error_ttl: running without it (expect this case to fail)" >&2
			fi
		fi
		echo "resolver:"
		echo "  workers: $workers"
		echo "  timeout: $RESOLVE_TIMEOUT"
		if [ -n "$per_registry" ]; then
			if supports resolver.per_registry "$per_registry"; then
				echo "  per_registry: $per_registry"
			else
				it_log "NOTE: this pinlet does not know resolver.per_registry: running without it (expect this case to fail)" >&2
			fi
		fi
		echo "credentials: {docker_config: [\"$D/no-such-docker-config.json\"]}"
		echo "registries:"
		for e in "$@"; do
			echo "  $e"
		done
	} >"$file"
	"$PINLET_BIN" check-config "$file" >/dev/null || it_fail "pinlet check-config: $(cat "$file")"
}

# The healthy side: docker-registry REG with tiny/pause:v1, tiny/app:v1 (D1) and
# tiny/app:v2 (D2), and containerd. IMG is REG/tiny/app:v1. The images: the sandbox and
# two app images from one static pause binary (lib/images.sh).
setup_base() {
	build_app_images "$D/img" pinlet-hostile
	start_registry "$D/registry" || it_fail "registry"
	REG=$REGISTRY_ADDR
	push_image "$D/img/pause" "$REG" tiny/pause:v1 || it_fail "push pause"
	push_image "$D/img/app1" "$REG" tiny/app:v1 || it_fail "push app1"
	push_image "$D/img/app2" "$REG" tiny/app:v2 || it_fail "push app2"
	D1=$(layout_digest "$D/img/app1")
	D2=$(layout_digest "$D/img/app2")
	IMG=$REG/tiny/app:v1
	PINLET_SANDBOX_IMAGE=$REG/tiny/pause:v1 start_containerd "$D/containerd" "$REG" ||
		it_fail "containerd"
}

# start N background ImageStatus calls for distinct tags on the tarpit, named slow1..N
start_slow_calls() {
	local n=$1 i
	for i in $(seq 1 "$n"); do
		start_bg "slow$i" "$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" -t "$SLOW_CALL_S" \
			image-status "$tarpit_ADDR/slow/app:t$i"
	done
}

# The background calls must still be waiting (none answered: the tarpit holds them).
slow_calls_waiting() {
	local n=$1 i
	for i in $(seq 1 "$n"); do
		bg_running "slow$i" || it_fail "background call slow$i ended: $(cat "$D/logs/slow$i.log")"
	done
}

# Fails unless the tarpit still holds at least N connections and the N_SLOW background
# calls are still waiting: what was measured before this completed while they were stuck.
still_held() {
	local n=$1 n_slow=$2 label=$3 open
	open=$(tp tarpit open)
	[ "$open" -ge "$n" ] ||
		it_fail "$label: the tarpit holds $open connections, want >= $n (did the call wait for them?)"
	slow_calls_waiting "$n_slow"
	it_log "ok: $label completed while the tarpit held $open connections"
}

# pinlet's debug line for each call it accepted (proxy.c: "proxy: call METHOD (unary)").
calls_seen() {
	grep -c "proxy: call /runtime.v1.ImageService/$1 " "$D/logs/pinlet.log" || true
}

# ---- cases -----------------------------------------------------------------------------

case_hol() {
	local id cid l_cached l_digest l_run
	setup_base
	start_tarpit tarpit tarpit
	mkdir -p "$D/pinlet"
	# per_registry above the worker count: the workers, not the per-registry bound, are
	# what the tarpit fills here.
	pinlet_config "$D/pinlet/config.yaml" 2 8 "" \
		"\"$REG\": {insecure: true}" "\"$tarpit_ADDR\": {insecure: true}"
	start_pinlet "$D/pinlet" "$CONTAINERD_ENDPOINT" --mode enforce || it_fail "pinlet"

	# Before the tarpit is touched: pull (pin), ImageStatus (cache), one pod (the sandbox
	# image is pulled by containerd itself, not measured below).
	timed_cri OK "PullImage $IMG" 60 pull "$IMG" -n default -N warm-pod
	id=$(jq -r .image_ref <<<"$out")
	timed_cri OK "ImageStatus $IMG (fills the cache)" 60 image-status "$IMG"
	expect "ImageStatus(tag) finds the pulled image" "$out" '.image.id == $id' --arg id "$id"
	timed_cri OK "run $IMG (warm-up pod)" 60 run "$IMG" -n default -N warm-pod -l "$D/pod-logs"

	# Four calls for tarpit tags: two hold the two workers, two wait behind them.
	start_slow_calls 4
	wait_until 30 tp_at_least tarpit open 2 ||
		it_fail "the tarpit never held 2 connections: $(cat "$D/tarpit.state")"
	it_log "tarpit: $(cat "$D/tarpit.state")"
	slow_calls_waiting 4

	timed_cri OK "ImageStatus $IMG (cached tag) during the tarpit" $FAST_CALL_S image-status "$IMG"
	l_cached=$ms
	expect "cached tag: the digest was substituted and the image found" "$out" \
		'.image.id == $id' --arg id "$id"
	still_held 2 4 "ImageStatus of a cached tag"

	timed_cri OK "ImageStatus $REG/tiny/app@$D1 (digest) during the tarpit" $FAST_CALL_S \
		image-status "$REG/tiny/app@$D1"
	l_digest=$ms
	expect "digest: the image found" "$out" '.image.id == $id' --arg id "$id"
	still_held 2 4 "ImageStatus by digest"

	timed_cri OK "run $IMG (CreateContainer of a pinned tag) during the tarpit" $FAST_CALL_S \
		run "$IMG" -n default -N during-pod -l "$D/pod-logs"
	l_run=$ms
	cid=$(jq -r .container_id <<<"$out")
	still_held 2 4 "RunPodSandbox + CreateContainer (pinned tag) + StartContainer"
	"$PINLET_IT_CRI" -e "$CONTAINERD_ENDPOINT" container-status "$cid" >"$D/cs.json" ||
		it_fail "ContainerStatus $cid: $(cat "$D/cs.json")"
	expect "the container runs the pinned digest" "$(cat "$D/cs.json")" \
		'.state == "CONTAINER_RUNNING" and .image_ref == $r' --arg r "$REG/tiny/app@$D1"
	jq -e -s --arg p during-pod '[.[] | select(.method == "CreateContainer" and .pod.name == $p
		and .decision == "substituted")] | length == 1' "$PINLET_DIR/audit.jsonl" >/dev/null ||
		it_fail "no substituted CreateContainer record for during-pod"

	local ctx
	ctx="resolver.workers 2, tarpit holding $(tp tarpit open) connections"
	latency "ImageStatus(cached tag)" "$l_cached" "$ctx"
	latency "ImageStatus(digest)" "$l_digest" "$ctx"
	latency "run(pinned tag): RunPodSandbox+CreateContainer+StartContainer" "$l_run" "$ctx"
}

case_per_registry() {
	local l_cold max
	setup_base
	start_tarpit tarpit tarpit
	mkdir -p "$D/pinlet"
	pinlet_config "$D/pinlet/config.yaml" 4 2 "" \
		"\"$REG\": {insecure: true}" "\"$tarpit_ADDR\": {insecure: true}"
	start_pinlet "$D/pinlet" "$CONTAINERD_ENDPOINT" --mode enforce || it_fail "pinlet"

	start_slow_calls 6
	wait_until 30 tp_at_least tarpit open 2 ||
		it_fail "the tarpit never held 2 connections: $(cat "$D/tarpit.state")"
	# All six reached pinlet (so the bound, not a slow client, is what keeps the count).
	wait_until 30 bash -c '[ "$(grep -c "proxy: call /runtime.v1.ImageService/ImageStatus " "$1")" -ge 6 ]' \
		_ "$D/logs/pinlet.log" || it_fail "pinlet did not receive the six tarpit calls"
	it_log "tarpit: $(cat "$D/tarpit.state")"

	timed_cri OK "ImageStatus $REG/tiny/app:v2 (never resolved) during the tarpit" $FAST_CALL_S \
		image-status "$REG/tiny/app:v2"
	l_cold=$ms
	expect "cold tag, not pulled: the image is absent" "$out" '.image == null'
	jq -e -s --arg i "$REG/tiny/app:v2" --arg r "$REG/tiny/app@$D2" \
		'[.[] | select(.method == "ImageStatus" and .image == $i and .decision == "substituted"
		  and .resolved == $r and .source == "registry")] | length == 1' \
		"$PINLET_DIR/audit.jsonl" >/dev/null ||
		it_fail "no audit record of the cold resolution: $(cat "$PINLET_DIR/audit.jsonl")"
	still_held 2 6 "cold resolution against the healthy registry"
	max=$(tp tarpit max_open)
	[ "$max" -le 2 ] ||
		it_fail "the tarpit saw $max concurrent connections from pinlet, want <= resolver.per_registry (2)"
	it_log "ok: the tarpit never saw more than $max concurrent connections"
	latency "ImageStatus(cold tag, healthy registry)" "$l_cold" \
		"resolver.workers 4, per_registry 2, 6 calls on the tarpit holding $(tp tarpit open)"
}

case_error_ttl() {
	local a1 p1 dead id l_first l_again off i lines n_calls=10
	setup_base
	start_tarpit closer close
	start_tarpit opener close
	# The runtime talks plain HTTP to the on_failure: open registry when the tag passes
	# through (else it would try TLS first).
	containerd_add_registry "$CONTAINERD_DIR" "$opener_ADDR"
	dead=$(free_port)
	mkdir -p "$D/pinlet"
	pinlet_config "$D/pinlet/config.yaml" 4 "" 30s \
		"\"$REG\": {insecure: true}" "\"$closer_ADDR\": {insecure: true}" \
		"\"$opener_ADDR\": {insecure: true, on_failure: open}" \
		"\"127.0.0.1:$dead\": {insecure: true}"
	start_pinlet "$D/pinlet" "$CONTAINERD_ENDPOINT" --mode enforce || it_fail "pinlet"

	# 1. closed without an answer: the first call fails naming image and registry.
	timed_cri FAIL "PullImage $closer_ADDR/tiny/app:v1 (closes unanswered)" 60 \
		pull "$closer_ADDR/tiny/app:v1" -n default -N ttl-pod
	l_first=$ms
	expect "first failure: UNAVAILABLE naming image and registry" "$out" \
		'.status == "UNAVAILABLE" and (.message | startswith("pinlet:") and contains("tiny/app:v1") and contains($reg))' \
		--arg reg "$closer_ADDR"
	a1=$(tp closer accepted)
	[ "$a1" -ge 1 ] || it_fail "pinlet never connected to $closer_ADDR"
	# 2. within error_ttl: another tag, the same tag, an ImageStatus: no new connection.
	timed_cri FAIL "PullImage $closer_ADDR/tiny/app:v2 within error_ttl" $FAST_CALL_S \
		pull "$closer_ADDR/tiny/app:v2" -n default -N ttl-pod
	l_again=$ms
	expect "second failure: UNAVAILABLE naming image and registry" "$out" \
		'.status == "UNAVAILABLE" and (.message | startswith("pinlet:") and contains("tiny/app:v2") and contains($reg))' \
		--arg reg "$closer_ADDR"
	[ "$(tp closer accepted)" = "$a1" ] ||
		it_fail "a call within error_ttl connected again: accepted $a1 -> $(tp closer accepted)"
	timed_cri FAIL "PullImage $closer_ADDR/tiny/app:v1 again" $FAST_CALL_S \
		pull "$closer_ADDR/tiny/app:v1" -n default -N ttl-pod
	timed_cri OK "ImageStatus $closer_ADDR/tiny/other:v3 within error_ttl" $FAST_CALL_S \
		image-status "$closer_ADDR/tiny/other:v3"
	[ "$(tp closer accepted)" = "$a1" ] ||
		it_fail "a call within error_ttl connected again: accepted $a1 -> $(tp closer accepted)"
	it_log "ok: $closer_ADDR accepted $a1 connection(s) in all, none within error_ttl"
	latency "PullImage, registry closes unanswered: first call" "$l_first" "connects"
	latency "PullImage, same registry within error_ttl" "$l_again" "no connection"

	# 3. connection refused: remembered too. A listener started on the port after the
	# first failure must see nothing within error_ttl.
	timed_cri FAIL "PullImage 127.0.0.1:$dead/tiny/app:v1 (refused)" 60 \
		pull "127.0.0.1:$dead/tiny/app:v1" -n default -N ttl-pod
	l_first=$ms
	expect "refused: UNAVAILABLE naming image and registry" "$out" \
		'.status == "UNAVAILABLE" and (.message | startswith("pinlet:") and contains("tiny/app:v1") and contains($reg))' \
		--arg reg "127.0.0.1:$dead"
	start_tarpit late tarpit "$dead"
	timed_cri FAIL "PullImage 127.0.0.1:$dead/tiny/app:v2 within error_ttl" $FAST_CALL_S \
		pull "127.0.0.1:$dead/tiny/app:v2" -n default -N ttl-pod
	l_again=$ms
	expect "refused, remembered: UNAVAILABLE naming image and registry" "$out" \
		'.status == "UNAVAILABLE" and (.message | startswith("pinlet:") and contains("tiny/app:v2") and contains($reg))' \
		--arg reg "127.0.0.1:$dead"
	[ "$(tp late accepted)" = 0 ] ||
		it_fail "a call within error_ttl connected to 127.0.0.1:$dead again: $(cat "$D/late.state")"
	it_log "ok: no connection to 127.0.0.1:$dead within error_ttl"
	latency "PullImage, connection refused: first call" "$l_first" "connects"
	latency "PullImage, refusing registry within error_ttl" "$l_again" "no connection"

	# 4. on_failure open: passed through (containerd's own error), pinlet asked once.
	timed_cri FAIL "PullImage $opener_ADDR/tiny/app:v1 (on_failure open)" 60 \
		pull "$opener_ADDR/tiny/app:v1" -n default -N open-pod
	expect "open: the runtime's own error, not pinlet's" "$out" \
		'(.message | startswith("pinlet:") | not)'
	p1=$(tp opener pinlet_requests)
	[ "$p1" -ge 1 ] || it_fail "pinlet never asked $opener_ADDR: $(cat "$D/opener.state")"
	timed_cri FAIL "PullImage $opener_ADDR/tiny/app:v2 (on_failure open) within error_ttl" 60 \
		pull "$opener_ADDR/tiny/app:v2" -n default -N open-pod
	expect "open, within error_ttl: the runtime's own error" "$out" \
		'(.message | startswith("pinlet:") | not)'
	[ "$(tp opener pinlet_requests)" = "$p1" ] ||
		it_fail "pinlet asked $opener_ADDR again within error_ttl: $p1 -> $(tp opener pinlet_requests)"
	[ "$(jq -s --arg a "$opener_ADDR/" '[.[] | select(.method == "PullImage" and .decision == "passed_through"
		and (.image | startswith($a)))] | length' "$PINLET_DIR/audit.jsonl")" = 2 ] ||
		it_fail "want 2 passed_through records for $opener_ADDR: $(cat "$PINLET_DIR/audit.jsonl")"
	it_log "ok: on_failure open passed both through, pinlet asked $opener_ADDR $p1 time(s)"

	# 5. the pin: pulled while the registry was up; registry stopped; pinlet restarted (an
	# empty cache, the pin store kept): ImageStatus of the tag answers from the pin.
	timed_cri OK "PullImage $IMG" 60 pull "$IMG" -n default -N pin-pod
	id=$(jq -r .image_ref <<<"$out")
	stop_bg registry
	restart_pinlet "$D/pinlet" || it_fail "pinlet restart"
	off=$(stat -c %s "$D/logs/pinlet.log")
	for i in $(seq 1 $n_calls); do
		timed_cri OK "ImageStatus $IMG, registry down ($i)" $FAST_CALL_S image-status "$IMG"
		expect "ImageStatus($IMG) answered from the pin" "$out" '.image.id == $id' --arg id "$id"
	done
	[ "$(jq -s --arg i "$IMG" '[.[] | select(.method == "ImageStatus" and .image == $i
		and .source == "pin")] | length' "$PINLET_DIR/audit.jsonl")" = $n_calls ] ||
		it_fail "want $n_calls ImageStatus records with source pin: $(cat "$PINLET_DIR/audit.jsonl")"
	# A warning (or error) line about this tag that mentions the pin; the "pinlet LEVEL: "
	# prefix is cut first so that "pinlet" itself does not count as "pin".
	lines=$(tail -c +"$((off + 1))" "$D/logs/pinlet.log" | sed -nE 's/^pinlet (warn|error): //p' |
		grep -F "tiny/app:v1" | grep -ciE '\<pin(ned|s)?\>' || true)
	[ "$lines" -ge 1 ] ||
		it_fail "no warning logged for the fallback to the pin: $(tail -c +"$((off + 1))" "$D/logs/pinlet.log" | grep -v ' debug: ')"
	[ "$lines" -lt $n_calls ] ||
		it_fail "$lines warning lines for $n_calls fallbacks: the warning is not rate-limited"
	it_log "ok: $lines warning line(s) for $n_calls fallbacks to the pin"
}

case_load1000() {
	local id out_p
	setup_base
	mkdir -p "$D/pinlet"
	pinlet_config "$D/pinlet/config.yaml" 8 "" "" "\"$REG\": {insecure: true}"
	start_pinlet "$D/pinlet" "$CONTAINERD_ENDPOINT" --mode enforce || it_fail "pinlet"
	timed_cri OK "PullImage $IMG" 60 pull "$IMG" -n default -N load-pod
	id=$(jq -r .image_ref <<<"$out")
	timed_cri OK "ImageStatus $IMG (fills the cache)" 60 image-status "$IMG"

	# 200 calls of each kind; tiny/app:v2 was never pulled: its 200 PullImage calls share
	# one resolution and containerd pulls it once.
	local mix=(version list "status=$IMG=$id" "status=$REG/tiny/app@$D1=$id"
		"pull=$REG/tiny/app:v2")
	out_p=$("$HOSTILE_CROWD" -e "$PINLET_ENDPOINT" -n 1000 -c 4 -t 120 "${mix[@]}") ||
		it_fail "1000 concurrent calls through pinlet: not all OK:
$out_p"
	printf '%s\n' "$out_p" | sed 's/^/through pinlet: /'
	grep -q '^total 1000 calls, 1000 ok, 0 failed' <<<"$out_p" || it_fail "crowd summary: $out_p"
	bg_running pinlet || it_fail "pinlet exited"
	[ "$(jq -s --arg i "$REG/tiny/app:v2" '[.[] | select(.method == "PullImage" and .image == $i
		and .decision == "substituted")] | length' "$PINLET_DIR/audit.jsonl")" = 200 ] ||
		it_fail "want 200 substituted PullImage records for tiny/app:v2"
	# The same crowd straight to containerd, for the latency comparison only.
	# (containerd holds the images by digest only: no tag lookups, no pulls there.)
	"$HOSTILE_CROWD" -e "$CONTAINERD_ENDPOINT" -n 1000 -c 4 -t 120 version list \
		"status=$REG/tiny/app@$D1=$id" | sed 's/^/direct to containerd: /' || true
}

"case_$case_name"
it_log "PASS $case_name"
