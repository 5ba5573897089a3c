#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The proxy benchmark: unary CRI calls against a backend directly, through pinlet and
# through nginx (grpc_pass, upstream keepalive), alternating targets in rounds, against the
# fake backend and against a real containerd. See docs/PERFORMANCE.md for how to read it.
#
#   test/bench/run.sh [--quick | --smoke] [--no-build] [--build-dir DIR] [--out DIR]
#                     [--backends fake,containerd] [--rounds N] [--measure-ms N]
#                     [--profile N] [--compare PINLET_BINARY]
#
#   (default)     3 rounds, 2.5 s per run, concurrency 1,16,64, both backends (~6 min)
#   --quick       1 round, 1 s per run (~2 min)
#   --smoke       fake backend only, 1 round, 0.2 s per run, concurrency 1,4: proves
#                 the whole chain works (ctest label bench-smoke); numbers mean nothing
#   --no-build    use the binaries already in --build-dir
#   --build-dir   default: build-bench-release in the repository (a Release build)
#   --out         results directory (default: BUILD_DIR/bench-results/<UTC time>)
#   --profile N   afterwards, run pinlet under valgrind --tool=callgrind for N Version
#                 calls at concurrency 16 against the fake backend and keep the
#                 annotated top functions (callgrind.txt) in the results
#   --compare B   also benchmark another pinlet binary B as target `pinlet-b`, in the
#                 same rounds (A/B of a proxy change: build the change elsewhere)
#   --scrape      also benchmark target `pinlet-scraped`: the same pinlet with
#                 metrics.listen on, and a scraper fetching its /metrics every 100 ms
#                 during the whole run (containerd backend), in the same rounds
#
# Needs root (nginx workers run as root to reach containerd's socket; containerd needs
# it anyway), nginx, containerd, runc, docker-registry, skopeo. Everything runs in a
# private /tmp/pinlet-it-XXXX directory and is stopped by PID on exit, also on failure.
#
# Results: machine.md (nproc, CPU, kernel, versions), <backend>-raw.{csv,json} (one row per
# run), <backend>-summary.{md,json} (medians over rounds, ratios vs direct paired by
# round), idle.md/idle-*.json (CPU while idle), results.md (all of it in one file).
# shellcheck source-path=SCRIPTDIR
set -o pipefail
cmdline="test/bench/run.sh${*:+ $*}"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
lib=$repo/test/integration/lib

mode=full
build=1
build_dir=$repo/build-bench-release
out=""
backends=""
rounds=""
measure_ms=""
profile_calls=0
compare=""
scrape=0

usage() {
	awk 'NR > 2 && /^#/ && !/shellcheck/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$0" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) mode=quick ;;
	--smoke) mode=smoke ;;
	--no-build) build=0 ;;
	--build-dir) build_dir=$2; shift ;;
	--out) out=$2; shift ;;
	--backends) backends=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--measure-ms) measure_ms=$2; shift ;;
	--profile) profile_calls=$2; shift ;;
	--compare) compare=$2; shift ;;
	--scrape) scrape=1 ;;
	-h | --help) usage ;;
	*) echo "unknown argument: $1" >&2; usage ;;
	esac
	shift
done

case $mode in
full) def_rounds=3 def_measure=2500 warmup=300 conc=1,16,64 containers=100 idle_s=5
	def_backends=fake,containerd ;;
quick) def_rounds=1 def_measure=1000 warmup=200 conc=1,16,64 containers=100 idle_s=5
	def_backends=fake,containerd ;;
smoke) def_rounds=1 def_measure=200 warmup=50 conc=1,4 containers=10 idle_s=1
	def_backends=fake ;;
esac
rounds=${rounds:-$def_rounds}
measure_ms=${measure_ms:-$def_measure}
backends=${backends:-$def_backends}
# ListContainers answers of similar size from both backends: the fake sends this many
# bytes; containerd lists $containers containers with 4 labels each (about 64 KiB).
fake_list_size=65536

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (nginx, containerd)" >&2; exit 1; }
needs=(nginx)
[[ ,$backends, != *,containerd,* ]] || needs+=(containerd runc docker-registry skopeo)
[ "$profile_calls" = 0 ] || needs+=(valgrind callgrind_annotate)
for c in "${needs[@]}"; do
	command -v "$c" >/dev/null || { echo "run.sh: $c not installed" >&2; exit 1; }
done

if [ "$build" = 1 ]; then
	echo "building (Release) in $build_dir" >&2
	cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
	cmake --build "$build_dir" -j2 --target pinlet pinlet_bench fake_backend >/dev/null ||
		{ echo "run.sh: build failed" >&2; exit 1; }
	# The free-port helper exists when the integration harness is configured.
	cmake --build "$build_dir" -j2 --target pinlet_it_free_port >/dev/null 2>&1 || true
fi
PINLET=$build_dir/src/pinlet
BENCH=$build_dir/test/bench/pinlet_bench
FAKE=$build_dir/test/fake/fake_backend
bins=("$PINLET" "$BENCH" "$FAKE")
[ -z "$compare" ] || { compare=$(realpath "$compare") && bins+=("$compare"); }
for b in "${bins[@]}"; do
	[ -x "$b" ] || { echo "run.sh: $b missing (build first or drop --no-build)" >&2; exit 1; }
done
if [ -z "${PINLET_IT_FREE_PORT:-}" ] && [ -x "$build_dir/test/integration/pinlet_it_free_port" ]; then
	export PINLET_IT_FREE_PORT=$build_dir/test/integration/pinlet_it_free_port
fi

# shellcheck source=../integration/lib/common.sh
. "$lib/common.sh"
# shellcheck source=../integration/lib/containerd.sh
. "$lib/containerd.sh"
# shellcheck source=../integration/lib/images.sh
. "$lib/images.sh"

it_setup
dir=$PINLET_IT_DIR
if [ -z "$out" ]; then
	if [ "$mode" = smoke ]; then
		out=$dir/results
	else
		out=$build_dir/bench-results/$(date -u +%Y%m%d-%H%M%S)
	fi
fi
mkdir -p "$out" || it_fail "cannot create $out"
out=$(cd "$out" && pwd)
it_log "mode $mode: $rounds round(s), ${measure_ms} ms per run, concurrency $conc, backends $backends"
it_log "results in $out"

# --- machine ------------------------------------------------------------------------------
{
	echo "| | |"
	echo "|---|---|"
	echo "| date (UTC) | $(date -u '+%Y-%m-%d %H:%M') |"
	echo "| nproc | $(nproc) |"
	echo "| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') |"
	echo "| kernel | $(uname -srm) |"
	echo "| OS | $(. /etc/os-release && echo "$PRETTY_NAME") |"
	echo "| memory | $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |"
	echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
	echo "| pinlet | $("$PINLET" --version 2>&1 | head -1), git $(git -C "$repo" rev-parse --short HEAD 2>/dev/null)$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo '+local changes'), Release build |"
	echo "| gRPC core | $(pkg-config --modversion grpc) |"
	echo "| nginx | $(nginx -v 2>&1 | sed 's/^nginx version: //') |"
	echo "| containerd | $(containerd --version 2>/dev/null | cut -d' ' -f3) |"
	echo "| runc | $(runc --version 2>/dev/null | head -1 | cut -d' ' -f3) |"
	echo "| compiler | $(cc --version | head -1) |"
	echo "| mode | $mode: $rounds round(s), ${warmup} ms warm-up + ${measure_ms} ms per run, concurrency $conc |"
} >"$out/machine.md"

# --- helpers ------------------------------------------------------------------------------

# start_pinlet NAME BACKEND_SOCKET [BINARY [CONFIG_TEXT]]: pinlet serving $dir/NAME.sock.
# Without CONFIG_TEXT the configuration is empty (defaults: enforce mode, no registry
# settings); Version and ListContainers are never intercepted either way.
start_pinlet() {
	local name=$1 backend=$2 bin=${3:-$PINLET} config=${4:-}
	mkdir -p "$dir/$name"
	printf '%s\n' "$config" >"$dir/$name/config.yaml"
	start_bg "$name" "$bin" serve --config "$dir/$name/config.yaml" \
		--listen "$dir/$name.sock" --runtime-endpoint "unix://$backend" \
		--state-dir "$dir/$name/state" --audit-log "$dir/$name/audit.jsonl" \
		--log-level warn
	wait_for_socket "$dir/$name.sock" 10 || it_fail "$name did not start"
}

# start_nginx NAME BACKEND_SOCKET: nginx grpc_pass on $dir/NAME.sock.
start_nginx() {
	local name=$1 backend=$2 prefix=$dir/$1
	mkdir -p "$prefix"
	sed -e "s|@PREFIX@|$prefix|g" -e "s|@LISTEN@|$dir/$name.sock|g" \
		-e "s|@BACKEND@|$backend|g" "$here/nginx.conf.in" >"$prefix/nginx.conf"
	nginx -t -q -c "$prefix/nginx.conf" -p "$prefix/" -e "$prefix/error.log" ||
		it_fail "nginx config test failed"
	start_bg "$name" nginx -c "$prefix/nginx.conf" -p "$prefix/" -e "$prefix/error.log"
	wait_for_socket "$dir/$name.sock" 10 || it_fail "$name did not start"
}

# run_bench NAME ARGS...: one pinlet_bench run over direct/pinlet/nginx. It runs as a
# recorded background process so that a signal interrupts the `wait` at once and the EXIT
# trap stops it with everything else (a foreground command would delay the trap until it
# finished).
run_bench() {
	local name=$1 pid tailpid rc
	shift
	it_log "benchmark $name"
	start_bg "bench-$name" "$BENCH" run --name "$name" --out "$out" --rounds "$rounds" \
		--measure-ms "$measure_ms" --warmup-ms "$warmup" --concurrency "$conc" "$@"
	pid=$(bg_pid "bench-$name")
	tail -n +1 --pid="$pid" -f "$dir/logs/bench-$name.log" >&2 &
	tailpid=$!
	wait "$pid"
	rc=$?
	wait "$tailpid"
	cp "$dir/logs/bench-$name.log" "$out/$name.log"
	[ "$rc" = 0 ] || it_fail "pinlet_bench $name failed (status $rc)"
}

# measure_idle: pinlet's (and for reference nginx's) CPU over idle_s quiet seconds, both at
# once. Called right after a benchmark: the connections are open, as in production.
measure_idle() {
	local tag=$1 p n
	it_log "idle measurement ($idle_s s)"
	sleep 1 # let the last calls' teardown finish
	"$BENCH" idle --pid "$(bg_pid "pinlet-$tag")" --seconds "$idle_s" \
		--out "$out/idle-pinlet-$tag.json" >"$out/idle-pinlet-$tag.txt" &
	p=$!
	"$BENCH" idle --pid "$(bg_pid "nginx-$tag")" --seconds "$idle_s" \
		--out "$out/idle-nginx-$tag.json" >"$out/idle-nginx-$tag.txt" &
	n=$!
	wait "$p" || it_fail "idle measurement failed"
	wait "$n" || it_fail "idle measurement failed"
	{
		echo "- pinlet ($tag): $(cat "$out/idle-pinlet-$tag.txt")"
		echo "- nginx ($tag): $(cat "$out/idle-nginx-$tag.txt")"
	} >>"$out/idle.md"
}

# --- fake backend -------------------------------------------------------------------------
if [[ ,$backends, == *,fake,* ]]; then
	start_bg fake "$FAKE" --socket "$dir/fake.sock"
	wait_for_socket "$dir/fake.sock" 10 || it_fail "fake backend did not start"
	start_pinlet pinlet-fake "$dir/fake.sock"
	start_nginx nginx-fake "$dir/fake.sock"
	extra=()
	if [ -n "$compare" ]; then
		start_pinlet pinlet-b-fake "$dir/fake.sock" "$compare"
		extra=(--target "pinlet-b=unix:$dir/pinlet-b-fake.sock"
			--pid "pinlet-b=$(bg_pid pinlet-b-fake)")
	fi
	run_bench fake \
		--target "direct=unix:$dir/fake.sock" \
		--target "pinlet=unix:$dir/pinlet-fake.sock" \
		--target "nginx=unix:$dir/nginx-fake.sock" \
		--pid "pinlet=$(bg_pid pinlet-fake)" --pid "nginx=$(bg_pid nginx-fake)" \
		--backend-pid "$(bg_pid fake)" \
		--workload version --workload list --md "list:x-fake-size=$fake_list_size" \
		"${extra[@]}"
	measure_idle fake
	if [ "$profile_calls" -gt 0 ]; then
		# pinlet under callgrind: the same pass-through, a fixed number of calls.
		command -v valgrind >/dev/null || it_fail "--profile needs valgrind"
		stop_bg pinlet-fake
		it_log "profiling pinlet with callgrind ($profile_calls Version calls, c=16)"
		mkdir -p "$dir/cg"
		start_bg pinlet-cg valgrind --tool=callgrind \
			--callgrind-out-file="$out/callgrind.out" \
			"$PINLET" serve --config "$dir/pinlet-fake/config.yaml" \
			--listen "$dir/pinlet-cg.sock" --runtime-endpoint "unix://$dir/fake.sock" \
			--state-dir "$dir/cg/state" --audit-log "$dir/cg/audit.jsonl" --log-level warn
		wait_for_socket "$dir/pinlet-cg.sock" 60 || it_fail "pinlet under valgrind did not start"
		"$BENCH" run --name profile --out "$dir/cg" --rounds 1 --concurrency 16 \
			--warmup-ms 0 --calls "$profile_calls" \
			--target "pinlet=unix:$dir/pinlet-cg.sock" --workload version \
			>/dev/null 2>"$out/profile.log" || it_fail "profile run failed"
		stop_bg pinlet-cg 30
		callgrind_annotate --inclusive=no "$out/callgrind.out" 2>/dev/null |
			head -60 >"$out/callgrind.txt"
		callgrind_annotate --inclusive=yes "$out/callgrind.out" 2>/dev/null |
			head -80 >"$out/callgrind-inclusive.txt"
		# The call paths docs/PERFORMANCE.md discusses: pinlet's own handlers and the
		# per-call cancellation gRPC core propagates to the finished backend call.
		callgrind_annotate --inclusive=yes "$out/callgrind.out" 2>/dev/null |
			grep -E 'PROGRAM TOTALS|pinlet_proxy_run|on_request|on_unary_req|on_unary_resp|on_status_sent|on_close|forward_unary|pcall_free|grpc_chttp2_cancel_stream|grpc_status_create\(|PropagateCancellation|GraphCycles|__tls_get_addr|grpc_chttp2_perform_read|grpc_chttp2_begin_write' |
			sed -E 's/ \[[^]]*\]$//' >"$out/callgrind-focus.txt"
	fi
	stop_bg nginx-fake
	stop_bg pinlet-b-fake
	stop_bg pinlet-fake
	stop_bg fake
fi

# --- containerd ---------------------------------------------------------------------------
if [[ ,$backends, == *,containerd,* ]]; then
	start_registry "$dir/registry" || it_fail "registry did not start"
	build_pause_image "$dir/pause-layout" v1 >/dev/null || it_fail "pause image build failed"
	push_image "$dir/pause-layout" "$REGISTRY_ADDR" tiny/pause:v1 || it_fail "push failed"
	start_containerd "$dir/containerd" "$REGISTRY_ADDR" || it_fail "containerd did not start"
	image=$REGISTRY_ADDR/tiny/pause:v1
	it_log "creating a pod with $containers containers"
	pod=$("$BENCH" setup --target "unix:$CONTAINERD_SOCK" --image "$image" \
		--containers "$containers" --labels 4) || it_fail "CRI setup failed"
	# Registered after containerd's own cleanup: pre steps run in reverse, so the pod is
	# removed through CRI while containerd still runs.
	on_cleanup pre "$BENCH" teardown --target "unix:$CONTAINERD_SOCK" --pod-id "$pod"
	# The deployment configuration (enforce, the local registry over plain HTTP, no
	# credentials), as test/bench/image/run.sh uses for the calls pinlet rewrites; Version
	# and ListContainers pass through untouched either way.
	pinlet_config="mode: enforce
on_failure: closed
cache: {ttl: 1h}
credentials: {docker_config: []}
registries:
  \"$REGISTRY_ADDR\": {insecure: true}"
	start_pinlet pinlet-ctr "$CONTAINERD_SOCK" "$PINLET" "$pinlet_config"
	start_nginx nginx-ctr "$CONTAINERD_SOCK"
	extra=()
	if [ "$scrape" = 1 ]; then
		mport=$(free_port)
		start_pinlet pinlet-m-ctr "$CONTAINERD_SOCK" "$PINLET" "$pinlet_config
metrics: {listen: \"127.0.0.1:$mport\"}"
		# ten times as eager as a 1 s Prometheus scrape
		start_bg scraper bash -c "while :; do curl -fsS -o /dev/null http://127.0.0.1:$mport/metrics; sleep 0.1; done"
		extra+=(--target "pinlet-scraped=unix:$dir/pinlet-m-ctr.sock"
			--pid "pinlet-scraped=$(bg_pid pinlet-m-ctr)")
	fi
	if [ -n "$compare" ]; then
		start_pinlet pinlet-b-ctr "$CONTAINERD_SOCK" "$compare" "$pinlet_config"
		extra=(--target "pinlet-b=unix:$dir/pinlet-b-ctr.sock"
			--pid "pinlet-b=$(bg_pid pinlet-b-ctr)")
	fi
	run_bench containerd \
		--target "direct=unix:$CONTAINERD_SOCK" \
		--target "pinlet=unix:$dir/pinlet-ctr.sock" \
		--target "nginx=unix:$dir/nginx-ctr.sock" \
		--pid "pinlet=$(bg_pid pinlet-ctr)" --pid "nginx=$(bg_pid nginx-ctr)" \
		--backend-pid "$(bg_pid containerd)" \
		--workload version --workload list "${extra[@]}"
	measure_idle ctr
fi

# --- one report ---------------------------------------------------------------------------
{
	echo "# pinlet proxy benchmark ($mode)"
	echo
	echo "Command: \`$cmdline\`"
	echo
	echo "## Machine"
	echo
	cat "$out/machine.md"
	echo "| load average at end | $(cut -d' ' -f1-3 /proc/loadavg) |"
	echo
	for b in fake containerd; do
		[ -f "$out/$b-summary.md" ] || continue
		echo "## $b"
		echo
		cat "$out/$b-summary.md"
	done
	if [ -f "$out/idle.md" ]; then
		echo "## Idle"
		echo
		cat "$out/idle.md"
		echo
	fi
	if [ -f "$out/callgrind.txt" ]; then
		echo "## callgrind (pinlet, $profile_calls Version calls at c=16 against the fake)"
		echo
		echo "Selected inclusive costs:"
		echo
		echo '```'
		cat "$out/callgrind-focus.txt"
		echo '```'
		echo
		echo "Top self costs:"
		echo
		echo '```'
		grep -E '^ *[0-9,]+ +\( *[0-9.]+%\) ' "$out/callgrind.txt" | grep -v 'PROGRAM TOTALS' |
			head -20 | sed -E 's/ \[[^]]*\]$//' | cut -c1-160
		echo '```'
	fi
} >"$out/results.md"

# The smoke run asserts only that everything answered and the files exist.
for f in machine.md results.md idle.md; do
	[ -s "$out/$f" ] || it_fail "missing $out/$f"
done
for b in ${backends//,/ }; do
	for f in "$b-raw.csv" "$b-raw.json" "$b-summary.md" "$b-summary.json"; do
		[ -s "$out/$f" ] || it_fail "missing $out/$f"
	done
done
it_log "done: $out/results.md"
[ "$mode" = smoke ] || cat "$out/results.md"
