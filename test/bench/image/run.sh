#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The image-path benchmark: what pinlet adds to PullImage and ImageStatus against a real
# containerd 1.6 and a local docker-registry, and how many registry requests it makes.
#
#   test/bench/image/run.sh [--quick | --smoke] [--no-build] [--build-dir DIR] [--out DIR]
#                           [--calls N] [--rounds N] [--cold N] [--no-token]
#
#   (default)   warm: 200 calls per run at concurrency 1 and 16, 3 rounds; 30 cold calls
#   --quick     50 calls per run, 1 round, 10 cold calls
#   --smoke     10 calls, 1 round, 3 cold calls, results in the private directory (ctest
#               label bench-smoke: proves the chain works; the numbers mean nothing)
#   --no-build  use the binaries already in --build-dir
#   --build-dir default: build-bench-release in the repository (a Release build)
#   --out       results directory (default: BUILD_DIR/bench-results/image-<UTC time>)
#   --no-token  skip the token-auth registry part
#   --lock      the warm tag is in a lock file (written by `pinlet lock`): the warm
#               ImageStatus and PullImage through pinlet are lock hits instead of cache
#               hits (compare with a run without it)
#   --verify M  a verifier in verifiers.bin_dir (a shell script that allows): M cached
#               (verifiers.cache_ttl 1h: the warm pulls are verdict-cache hits) or run
#               (cache_ttl 0: every pull runs the verifier)
#   --compare B also a second pinlet, binary B (another build: an A/B of a change), with
#               the same configuration: warm ImageStatus/PullImage rounds alternate
#               between the two (each paired with direct runs), compare-warm.md
#   --scrape    pinlet serves metrics (metrics.listen) and a scraper fetches /metrics
#               every 100 ms during the whole run: compare with a run without it
#   --profile N afterwards, pinlet (and B with --compare) under valgrind --tool=callgrind:
#               N warm ImageStatus calls of pulled (pinned) tags, then N Version calls
#               (passed through), one at a
#               time; instructions per call in pinlet's process, counters zeroed before
#               and dumped after each phase (callgrind_control). Instruction counts do not
#               depend on what else the machine runs: profile.md, and the dumps in
#               callgrind-a/ (-b/) for callgrind_annotate (.1 ImageStatus, .2 Version)
#
# Steps, all in one private /tmp/pinlet-it-XXXX directory, every daemon stopped by PID on
# exit (also on failure):
#   1. docker-registry (plain HTTP, log level info) with tiny/app:v1 and more tags of the
#      same image; containerd (CRI, runc, overlayfs); pinlet in front of containerd
#      (enforce, cache.ttl 1h, log level info, audit log on).
#   2. warm: tiny/app:v1 pulled once directly and once through pinlet (so containerd holds
#      both the tag and the digest reference), then PullImage and ImageStatus, direct vs
#      through pinlet, CALLS calls per run at concurrency 1 and 16, targets alternating
#      inside each round. Median over rounds; ratios pinlet/direct paired in the same run.
#   3. cold: ImageStatus of COLD tags nobody resolved (each a cold resolution through
#      pinlet), the same tags again (warm), and directly; PullImage of fresh tags through
#      pinlet and directly. Registry requests per call from the registry's access log, by
#      user agent (pinlet/..., containerd/...).
#   4. burst: 64 concurrent PullImage of a fresh tag through pinlet: pinlet's manifest
#      requests for that tag (want 1).
#   5. token: a second docker-registry on the same storage with `auth: token` behind the
#      test token server (test/integration/registry/token_server.c, anonymous pull of
#      tiny/app), cold ImageStatus through pinlet: token requests and manifest requests
#      per cold call.
#
# Results in OUT: machine.md, warm-raw.jsonl, warm.md, cold.md, compare-warm.md (--compare),
# profile.md (--profile), results.md (all of it).
# The benchmark asserts nothing about time; it fails only when a call fails or a count it
# relies on cannot be read.
# jq filters are single-quoted on purpose.
# shellcheck disable=SC2016
set -o pipefail
cmdline="test/bench/image/run.sh${*:+ $*}"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)

build=1
build_dir=$repo/build-bench-release
out=""
calls=200
rounds=3
cold=30
conc=1,16
burst_n=64
token=1
smoke=0
scrape=0
lock=0
verify=""
compare=""
profile=0

usage() {
	sed -n "7,18p" "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) calls=50 rounds=1 cold=10 ;;
	--smoke) calls=10 rounds=1 cold=3 smoke=1 ;;
	--no-build) build=0 ;;
	--build-dir) build_dir=$2; shift ;;
	--out) out=$2; shift ;;
	--calls) calls=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--cold) cold=$2; shift ;;
	--no-token) token=0 ;;
	--scrape) scrape=1 ;;
	--lock) lock=1 ;;
	--verify) verify=$2; shift ;;
	--compare) compare=$(realpath "$2"); shift ;;
	--profile) profile=$2; shift ;;
	-h | --help) usage ;;
	*) echo "unknown argument: $1" >&2; usage ;;
	esac
	shift
done

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (containerd)" >&2; exit 1; }
[[ $profile =~ ^[0-9]+$ ]] || { echo "run.sh: --profile wants a number of calls" >&2; exit 2; }
needs=(containerd runc docker-registry skopeo jq curl openssl)
[ "$profile" = 0 ] || needs+=(valgrind callgrind_control)
for c in "${needs[@]}"; do
	command -v "$c" >/dev/null || { echo "run.sh: $c not installed" >&2; exit 1; }
done

targets=(pinlet pinlet_bench_image pinlet_it_cri pinlet_it_free_port registry_token_server)
if [ "$build" = 1 ]; then
	echo "building (Release) in $build_dir" >&2
	cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
	if ! cmake --build "$build_dir" -j2 --target "${targets[@]}" >/dev/null; then
		grep -q 'add_subdirectory(image)' "$repo/test/bench/CMakeLists.txt" ||
			echo "run.sh: test/bench/CMakeLists.txt lacks add_subdirectory(image)" >&2
		echo "run.sh: build failed" >&2
		exit 1
	fi
fi
BENCH=$build_dir/test/bench/image/pinlet_bench_image
TOKEN_SERVER=$build_dir/test/integration/registry_token_server
# shellcheck source=../lib.sh
. "$repo/test/bench/lib.sh"
bench_binaries "$build_dir" "$BENCH" "$TOKEN_SERVER"

it_setup
dir=$PINLET_IT_DIR
bench_out "$smoke" "$build_dir" image
it_log "calls $calls per run, concurrency $conc, $rounds round(s), $cold cold calls; results in $out"

# --- machine ------------------------------------------------------------------------------
bench_machine "$cmdline" "$build_dir" >"$out/machine.md"

# --- 1. registry, images, containerd, pinlet ---------------------------------------------
# distribution reads REGISTRY_LOG_LEVEL over the harness's config (warn): info logs every
# request; the access log (always on) is what is counted below.
export REGISTRY_LOG_LEVEL=info
start_registry "$dir/registry" || it_fail "registry"
reg=$REGISTRY_ADDR
reglog=$dir/logs/registry.log
build_oci_image "$dir/img" tiny/app:v1 "image bench" || it_fail "build image"
push_image "$dir/img" "$reg" tiny/app:v1 || it_fail "push tiny/app:v1"
digest=$(layout_digest "$dir/img")
[ "$(registry_digest "$reg" tiny/app:v1)" = "$digest" ] || it_fail "registry digest differs"
manifest=$dir/img/blobs/sha256/${digest#sha256:}

# More tags for the same manifest: a PUT of the manifest bytes (every blob is there).
tag_image() {
	curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
		--data-binary "@$manifest" "http://$reg/v2/tiny/app/manifests/$1" >/dev/null
}
it_log "tagging $((3 * cold + 1)) more tags"
for ((i = 0; i < cold; i++)); do
	{ tag_image "cold-$i" && tag_image "pcold-$i" && tag_image "dcold-$i"; } || it_fail "tag $i"
done
tag_image burst || it_fail "tag burst"

start_containerd "$dir/containerd" "$reg" || it_fail "containerd"
mkdir -p "$dir/pinlet"
cat >"$dir/pinlet/config.yaml" <<EOF
registries: {"$reg": {insecure: true}}
cache: {ttl: 1h}
EOF
if [ "$scrape" = 1 ]; then
	mport=$(free_port)
	printf 'metrics: {listen: "127.0.0.1:%s"}\n' "$mport" >>"$dir/pinlet/config.yaml"
fi
if [ -n "$verify" ]; then
	mkdir -p "$dir/verifiers"
	printf '#!/bin/sh\ncat >/dev/null\necho allowed\nexit 0\n' >"$dir/verifiers/10-allow"
	chmod 755 "$dir/verifiers/10-allow"
	case $verify in
	cached) ttl=1h ;;
	run) ttl=0s ;;
	*) echo "--verify: cached or run" >&2; exit 2 ;;
	esac
	printf 'verifiers: {bin_dir: "%s", cache_ttl: %s}\n' "$dir/verifiers" "$ttl" \
		>>"$dir/pinlet/config.yaml"
	it_log "verifier: 10-allow, verdicts cached $ttl"
fi
if [ "$lock" = 1 ]; then
	mkdir -p "$dir/lock"
	"$PINLET_BIN" lock --config "$dir/pinlet/config.yaml" --output "$dir/lock/images.lock" \
		"$reg/tiny/app:v1" >/dev/null || it_fail "pinlet lock"
	printf 'lock: {paths: ["%s"]}\n' "$dir/lock" >>"$dir/pinlet/config.yaml"
	it_log "the warm tag is locked: $(grep -c sha256 "$dir/lock/images.lock") entry"
fi
# start_pinlet passes --log-level debug; later options win: info, as on a node.
start_pinlet "$dir/pinlet" "$CONTAINERD_ENDPOINT" --mode enforce --log-level info ||
	it_fail "pinlet"
if [ "$scrape" = 1 ]; then
	# A scraper ten times as eager as a 1 s Prometheus: the timer is the point here.
	start_bg scraper bash -c "while :; do curl -fsS -o /dev/null http://127.0.0.1:$mport/metrics; sleep 0.1; done"
	wait_until 10 curl -fsS -o /dev/null "http://127.0.0.1:$mport/metrics" || it_fail "no metrics"
	it_log "scraping http://127.0.0.1:$mport/metrics every 100 ms"
fi

# Access-log lines (GET/HEAD) for manifests matching PATH_RE from user agents matching
# UA_RE, so far.
reg_count() { # LOG PATH_RE UA_RE
	grep -cE "\"(GET|HEAD) /v2/$2 HTTP/[0-9.]+\" [0-9]+ [0-9]+ \"[^\"]*\" \"$3" "$1" || true
}
# Registry requests are logged just after the response: let the last ones land.
settle() { sleep 0.3; }

# --- 2. warm ------------------------------------------------------------------------------
image=$reg/tiny/app:v1
"$CRI" -e "$CONTAINERD_ENDPOINT" pull "$image" >/dev/null || it_fail "direct pull"
"$CRI" -e "$PINLET_ENDPOINT" pull "$image" >/dev/null || it_fail "pull through pinlet"
for ep in "$CONTAINERD_ENDPOINT" "$PINLET_ENDPOINT"; do
	"$CRI" -e "$ep" image-status "$image" | jq -e '.image != null' >/dev/null ||
		it_fail "ImageStatus($image) via $ep finds no image"
done
settle
w_pin0=$(reg_count "$reglog" 'tiny/app/manifests/.*' pinlet)
w_ctd0=$(reg_count "$reglog" 'tiny/app/manifests/.*' containerd)
it_log "warm: PullImage and ImageStatus, direct vs pinlet"
"$BENCH" warm "$CONTAINERD_ENDPOINT" "$PINLET_ENDPOINT" "$image" "$calls" "$conc" "$rounds" \
	>"$out/warm-raw.jsonl" || it_fail "warm runs had errors"
settle
w_pin=$(($(reg_count "$reglog" 'tiny/app/manifests/.*' pinlet) - w_pin0))
w_ctd=$(($(reg_count "$reglog" 'tiny/app/manifests/.*' containerd) - w_ctd0))
w_pulls=$(jq -s '[.[] | select(.workload == "pull") | .calls] | add' "$out/warm-raw.jsonl")

jq -s -r '
  def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                     else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r1: . * 10 | round / 10;
  def r3: . * 1000 | round / 1000;
  group_by([.workload, .concurrency]) | .[] |
  (map(select(.target == "direct"))) as $d | (map(select(.target == "pinlet"))) as $p |
  # ratios paired by round, then the median
  ([range(0; $d | length) as $i | $p[$i].rate / $d[$i].rate] | median) as $rr |
  ([range(0; $d | length) as $i | $p[$i].p50_us - $d[$i].p50_us] | median) as $add50 |
  ([range(0; $d | length) as $i | $p[$i].p99_us - $d[$i].p99_us] | median) as $add99 |
  "| \(.[0].workload) | \(.[0].concurrency) | \($d | map(.p50_us) | median | r1) | \($p | map(.p50_us) | median | r1) | \($add50 | r1) | \($d | map(.p99_us) | median | r1) | \($p | map(.p99_us) | median | r1) | \($add99 | r1) | \($d | map(.rate) | median | r1) | \($p | map(.rate) | median | r1) | \($rr | r3) |"
' "$out/warm-raw.jsonl" >"$out/warm-rows.md" || it_fail "summarising warm runs"
{
	echo "| call | conc. | direct p50 µs | pinlet p50 µs | added p50 µs | direct p99 µs | pinlet p99 µs | added p99 µs | direct calls/s | pinlet calls/s | rate pinlet/direct |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	cat "$out/warm-rows.md"
	echo
	echo "$calls calls per run, $rounds round(s) (medians; added and ratio paired by round)."
	echo "Registry manifest requests during the warm runs: pinlet $w_pin, containerd $w_ctd (for $w_pulls PullImage calls in all, warm-up runs included)."
} >"$out/warm.md"
rm -f "$out/warm-rows.md"
cat "$out/warm.md" >&2

# --- 2b. A/B against another pinlet binary -----------------------------------------------
if [ -n "$compare" ]; then
	mkdir -p "$dir/pinlet-b"
	cp "$dir/pinlet/config.yaml" "$dir/pinlet-b/config.yaml"
	a_ep=$PINLET_ENDPOINT
	a_dir=$PINLET_DIR
	PINLET_NAME=pinlet-b PINLET_BIN=$compare start_pinlet "$dir/pinlet-b" "$CONTAINERD_ENDPOINT" \
		--mode enforce --log-level info || it_fail "pinlet-b"
	b_ep=unix://$dir/pinlet-b/pinlet.sock
	PINLET_ENDPOINT=$a_ep PINLET_DIR=$a_dir PINLET_SOCK=$a_dir/pinlet.sock
	"$CRI" -e "$b_ep" pull "$image" >/dev/null || it_fail "pull through pinlet-b"
	: >"$out/compare-a.jsonl"
	: >"$out/compare-b.jsonl"
	for i in $(seq 1 "$rounds"); do
		# the order flips every round
		for t in $([ $((i % 2)) = 1 ] && echo "a b" || echo "b a"); do
			ep=$a_ep
			[ "$t" = b ] && ep=$b_ep
			"$BENCH" warm "$CONTAINERD_ENDPOINT" "$ep" "$image" "$calls" "$conc" 1 \
				>>"$out/compare-$t.jsonl" || it_fail "compare warm runs had errors"
		done
	done
	{
		echo "| call | conc. | this pinlet: added p50 µs | B: added p50 µs | this: rate/direct | B: rate/direct |"
		echo "|---|---|---|---|---|---|"
		for wl in status pull; do
			for c in ${conc//,/ }; do
				row() { # FILE -> "added_p50 ratio" medians over rounds (paired with direct)
					jq -s -r --arg w "$wl" --argjson c "$c" '
					  def median: sort | if length % 2 == 1 then .[length / 2 | floor]
					                     else (.[length / 2 - 1] + .[length / 2]) / 2 end;
					  [.[] | select(.workload == $w and .concurrency == $c)] as $r |
					  ($r | map(select(.target == "direct"))) as $d |
					  ($r | map(select(.target == "pinlet"))) as $p |
					  "\([range(0; $d | length) as $i | $p[$i].p50_us - $d[$i].p50_us] | median | . * 10 | round / 10) \([range(0; $d | length) as $i | $p[$i].rate / $d[$i].rate] | median | . * 1000 | round / 1000)"' "$1"
				}
				read -r aa ar < <(row "$out/compare-a.jsonl")
				read -r ba br < <(row "$out/compare-b.jsonl")
				echo "| $wl | $c | $aa | $ba | $ar | $br |"
			done
		done
		echo
		echo "B: $compare. $rounds rounds of $calls calls, A and B alternating, each paired with direct runs."
	} >"$out/compare-warm.md"
	cat "$out/compare-warm.md" >&2
	stop_bg pinlet-b
fi

# --- 2c. instructions per call, under callgrind ------------------------------------------
# One pinlet under valgrind at a time, the same configuration, the tags cold-0.. (already
# tagged): pulled through it first (each tag pinned, as kubelet pulls before it asks
# ImageStatus), so the measured passes are cache and pin hits whose answers list the
# pinned tags.
profile_phase() { # ENDPOINT status|version CALLS
	local n=0 k
	while [ "$n" -lt "$3" ]; do
		k=$(($3 - n))
		[ "$k" -gt "$cold" ] && k=$cold
		"$BENCH" seq "$1" "$2" "$reg/tiny/app:cold-" 0 $((k - 1)) >/dev/null || return 1
		n=$((n + k))
	done
}
profile_pinlet() { # LABEL BINARY -> "status_instr version_instr" per call
	local label=$1 bin=$2 pd=$dir/profile-$1 ep pid
	mkdir -p "$pd"
	cp "$dir/pinlet/config.yaml" "$pd/config.yaml"
	printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s "%s" "$@"\n' \
		"$pd/callgrind.out" "$bin" >"$pd/valgrind.sh"
	chmod +x "$pd/valgrind.sh"
	PINLET_NAME=profile-$label PINLET_BIN=$pd/valgrind.sh PINLET_START_TIMEOUT=180 \
		start_pinlet "$pd" "$CONTAINERD_ENDPOINT" --mode enforce --log-level info >&2 ||
		it_fail "pinlet under valgrind ($label)"
	ep=unix://$pd/pinlet.sock
	pid=$(bg_pid "profile-$label")
	# pulled through it, as kubelet does before it asks ImageStatus: each tag pinned
	profile_phase "$ep" pull "$cold" || it_fail "profile warm-up ($label)"
	profile_phase "$ep" status "$cold" || it_fail "profile warm-up ($label)"
	profile_phase "$ep" version "$cold" || it_fail "profile warm-up ($label)"
	for phase in status version; do
		callgrind_control -z "$pid" >/dev/null || it_fail "callgrind_control -z"
		profile_phase "$ep" "$phase" "$profile" || it_fail "profile $phase ($label)"
		callgrind_control -d "$phase" "$pid" >/dev/null || it_fail "callgrind_control -d"
	done
	stop_bg "profile-$label" 60
	# kept for callgrind_annotate: callgrind.out.1 is the ImageStatus phase, .2 Version
	mkdir -p "$out/callgrind-$label"
	cp "$pd"/callgrind.out.[12] "$out/callgrind-$label/"
	for phase in 1 2; do
		# each dump holds the costs since the zeroing before its phase
		awk '/^(summary|totals):/ { print $2; exit }' "$pd/callgrind.out.$phase"
	done | tr '\n' ' '
}
if [ "$profile" -gt 0 ]; then
	a_ep=$PINLET_ENDPOINT a_dir=$PINLET_DIR
	it_log "profile: $profile ImageStatus and $profile Version calls under callgrind"
	read -r a_s a_v < <(profile_pinlet a "$PINLET_BIN")
	if [ -n "$compare" ]; then
		read -r b_s b_v < <(profile_pinlet b "$compare")
	fi
	export PINLET_ENDPOINT=$a_ep PINLET_DIR=$a_dir PINLET_SOCK=$a_dir/pinlet.sock
	{
		echo "| pinlet | ImageStatus (warm) instr./call | Version (pass-through) instr./call | ImageStatus / Version |"
		echo "|---|---|---|---|"
		row() { echo "| $1 | $(($2 / profile)) | $(($3 / profile)) | $(jq -n "$2 / $3 * 1000 | round / 1000") |"; }
		row "this ($PINLET_BIN)" "$a_s" "$a_v"
		if [ -n "$compare" ]; then
			row "B ($compare)" "$b_s" "$b_v"
			echo
			echo "this/B: ImageStatus $(jq -n "$a_s / $b_s * 1000 | round / 1000"), Version $(jq -n "$a_v / $b_v * 1000 | round / 1000")."
		fi
		echo
		echo "valgrind --tool=callgrind, $profile calls per phase, one at a time; every thread of pinlet's process counted."
	} >"$out/profile.md"
	cat "$out/profile.md" >&2
fi

# --- 3. cold ------------------------------------------------------------------------------
last=$((cold - 1))
# seq_phase NAME TARGET KIND PREFIX: runs the calls, records latency and registry requests.
seq_phase() {
	local name=$1 target=$2 kind=$3 prefix=$4 p0 c0 res p c
	settle
	p0=$(reg_count "$reglog" 'tiny/app/manifests/.*' pinlet)
	c0=$(reg_count "$reglog" 'tiny/app/manifests/.*' containerd)
	res=$("$BENCH" seq "$target" "$kind" "$prefix" 0 "$last") || it_fail "$name: calls failed"
	settle
	p=$(($(reg_count "$reglog" 'tiny/app/manifests/.*' pinlet) - p0))
	c=$(($(reg_count "$reglog" 'tiny/app/manifests/.*' containerd) - c0))
	jq -r --arg n "$name" --argjson p "$p" --argjson c "$c" \
		'"| \($n) | \(.calls) | \(.p50_us) | \(.p99_us) | \(.mean_us) | \($p / .calls) | \($c / .calls) |"' \
		<<<"$res" >>"$out/cold-rows.md"
	it_log "$name: $res, registry manifest requests: pinlet $p, containerd $c"
}
: >"$out/cold-rows.md"
it_log "cold: $cold calls per phase"
seq_phase "ImageStatus, pinlet, cold (new tag each call)" "$PINLET_ENDPOINT" status "$reg/tiny/app:cold-"
seq_phase "ImageStatus, pinlet, warm (same tags again)" "$PINLET_ENDPOINT" status "$reg/tiny/app:cold-"
seq_phase "ImageStatus, direct (same tags)" "$CONTAINERD_ENDPOINT" status "$reg/tiny/app:cold-"
seq_phase "PullImage, pinlet, cold (new tag each call)" "$PINLET_ENDPOINT" pull "$reg/tiny/app:pcold-"
seq_phase "PullImage, pinlet, warm (same tags again)" "$PINLET_ENDPOINT" pull "$reg/tiny/app:pcold-"
seq_phase "PullImage, direct (new tag each call)" "$CONTAINERD_ENDPOINT" pull "$reg/tiny/app:dcold-"

# --- 4. burst -----------------------------------------------------------------------------
settle
b_pin0=$(reg_count "$reglog" 'tiny/app/manifests/burst' pinlet)
b_any0=$(reg_count "$reglog" 'tiny/app/manifests/.*' '')
b_res=$("$BENCH" burst "$PINLET_ENDPOINT" pull "$burst_n" "$reg/tiny/app:burst") ||
	it_fail "burst: calls failed"
settle
b_pin=$(($(reg_count "$reglog" 'tiny/app/manifests/burst' pinlet) - b_pin0))
b_any=$(($(reg_count "$reglog" 'tiny/app/manifests/.*' '') - b_any0))
it_log "burst: $b_res; pinlet manifest requests for the tag: $b_pin; all manifest requests: $b_any"
[ "$b_pin" = 1 ] || it_log "WARNING: the burst made $b_pin manifest requests for its tag, want 1"

# --- 5. token registry --------------------------------------------------------------------
tok_rows=""
if [ "$token" = 1 ]; then
	p=$dir/pki
	mkdir -p "$p"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$p/signer.key" \
		-out "$p/signer.crt" -subj /CN=pinlet-bench-token-signer 2>/dev/null ||
		it_fail "token signing key"
	start_bg token "$TOKEN_SERVER" --port-file "$dir/token.port" --key "$p/signer.key" \
		--cert "$p/signer.crt" --issuer pinlet-bench --service pinlet-bench --public tiny/app
	wait_until 10 test -s "$dir/token.port" || it_fail "token server did not start"
	tport=$(cat "$dir/token.port")
	# Same storage as the plain registry: the images are already there (pushing would
	# need push access, which the test token server never grants).
	mkdir -p "$dir/registry-token"
	ln -s "$dir/registry/data" "$dir/registry-token/data"
	PINLET_REGISTRY_AUTH_YAML="{token: {realm: \"http://127.0.0.1:$tport/token\", service: pinlet-bench, issuer: pinlet-bench, rootcertbundle: \"$p/signer.crt\"}}" \
		start_registry "$dir/registry-token" "" registry-token || it_fail "token registry"
	treg=$REGISTRY_ADDR
	treglog=$dir/logs/registry-token.log
	# pinlet learns about the second registry: restart with it in the config.
	cat >"$dir/pinlet/config.yaml" <<EOF
registries: {"$reg": {insecure: true}, "$treg": {insecure: true}}
cache: {ttl: 1h}
EOF
	restart_pinlet "$dir/pinlet" || it_fail "pinlet restart"
	tok_count() { curl -sf "http://127.0.0.1:$tport/count"; }
	tok_phase() { # NAME FROM TO
		local t0 m0 u0 res t m u
		settle
		t0=$(tok_count) || it_fail "token count"
		m0=$(reg_count "$treglog" 'tiny/app/manifests/.*' pinlet)
		u0=$(grep -cE '"(GET|HEAD) /v2/tiny/app/manifests/[^ ]* HTTP/[0-9.]+" 401 ' "$treglog" || true)
		res=$("$BENCH" seq "$PINLET_ENDPOINT" status "$treg/tiny/app:cold-" "$2" "$3") ||
			it_fail "token: calls failed"
		settle
		t=$(($(tok_count) - t0))
		m=$(($(reg_count "$treglog" 'tiny/app/manifests/.*' pinlet) - m0))
		u=$(($(grep -cE '"(GET|HEAD) /v2/tiny/app/manifests/[^ ]* HTTP/[0-9.]+" 401 ' "$treglog" || true) - u0))
		tok_rows+=$(jq -r --arg name "$1" --argjson t "$t" --argjson m "$m" --argjson u "$u" \
			'"| \($name) | \(.calls) | \(.p50_us) | \(.p99_us) | \($t / .calls) | \($m / .calls) | \($u / .calls) |"' <<<"$res")$'\n'
		it_log "token $1: $res; token requests $t, manifest requests $m (of which 401: $u)"
	}
	tok_phase "first cold call (no token yet)" 0 0
	tok_phase "further cold calls (token cached)" 1 "$last"
fi

# --- results ------------------------------------------------------------------------------
{
	echo "| phase | calls | p50 µs | p99 µs | mean µs | manifest req./call by pinlet | by containerd |"
	echo "|---|---|---|---|---|---|---|"
	cat "$out/cold-rows.md"
	echo
	echo "Burst: $burst_n concurrent PullImage(tiny/app:burst) through pinlet, fresh tag: $(jq -r '"\(.calls) OK, wall \(.wall_ms) ms, p50 \(.p50_us) µs, max \(.max_us) µs"' <<<"$b_res"); manifest requests for the tag by pinlet: **$b_pin**; manifest requests by everyone (containerd pulling the digest included): $b_any."
	if [ -n "$tok_rows" ]; then
		echo
		echo "Token registry (docker-registry \`auth: token\`, test token server, anonymous pull), cold ImageStatus through pinlet:"
		echo
		echo "| phase | calls | p50 µs | p99 µs | token req./call | manifest req./call | of which 401/call |"
		echo "|---|---|---|---|---|---|---|"
		printf '%s' "$tok_rows"
	fi
} >"$out/cold.md"
rm -f "$out/cold-rows.md"
cat "$out/cold.md" >&2
{
	echo "# Image path: direct vs through pinlet"
	echo
	cat "$out/machine.md"
	echo
	echo "## Warm cache"
	echo
	cat "$out/warm.md"
	echo
	echo "## Cold resolutions, registry requests"
	echo
	cat "$out/cold.md"
	if [ -f "$out/compare-warm.md" ]; then
		echo
		echo "## A/B"
		echo
		cat "$out/compare-warm.md"
	fi
	if [ -f "$out/profile.md" ]; then
		echo
		echo "## Instructions per call"
		echo
		cat "$out/profile.md"
	fi
} >"$out/results.md"
bg_running pinlet || it_fail "pinlet exited during the benchmark"
it_log "done: $out/results.md"
