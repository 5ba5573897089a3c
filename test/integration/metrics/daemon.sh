#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# `pinlet serve` with metrics.listen, in front of real containerd and docker-registry,
# scraped by a real Prometheus (1 s interval), all on loopback in a private directory:
#   - the exposition of the running daemon passes `promtool check metrics` (no output);
#   - after pulls, ImageStatus and CreateContainer-free traffic through pinlet,
#     Prometheus reports pinlet_decisions_total per (method, decision, source) equal to
#     the audit log's counts of the same values;
#   - pinlet_backend_up{backend="runtime"} goes 0 when containerd is stopped and 1 after
#     it restarts, and /readyz answers 503 (with the reason) and then 200;
#   - /healthz answers 200 (the completion-queue loop beats), a reload is counted in
#     pinlet_config_reloads_total;
#   - pinlet_lock_reloads_total counts a lock file edit and keeps its count across a
#     configuration reload (a new generation with a watcher of its own).
# Needs root, containerd, runc, docker-registry, skopeo, jq, curl and prometheus (the
# test fails, never skips, without them). Environment (metrics.cmake): PINLET_BIN,
# PINLET_IT_CRI, PINLET_IT_LIB.
# shellcheck disable=SC2016
set -euo pipefail
lib=${PINLET_IT_LIB:?}
# shellcheck source=../lib/common.sh
. "$lib/common.sh"
# shellcheck source=../lib/containerd.sh
. "$lib/containerd.sh"
# shellcheck source=../lib/images.sh
. "$lib/images.sh"
# shellcheck source=../lib/pinlet.sh
. "$lib/pinlet.sh"
[ "$(id -u)" = 0 ] || { echo "daemon.sh: must run as root" >&2; exit 1; }
for tool in prometheus promtool jq curl; do
	command -v "$tool" >/dev/null || { echo "FAIL: $tool not found" >&2; exit 1; }
done

it_setup
D=$PINLET_IT_DIR
mkdir -p "$D/img" "$D/pinlet"
build_pause_binary "$D/img/pause.bin" || it_fail "build_pause_binary"
build_pause_image "$D/img/app" app "$D/img/pause.bin" || it_fail "image"
start_registry "$D/registry" || it_fail "registry"
REG=$REGISTRY_ADDR
push_image "$D/img/app" "$REG" tiny/app:v1 || it_fail "push"
push_image "$D/img/app" "$REG" tiny/app:v2 || it_fail "push"
PINLET_SANDBOX_IMAGE=$REG/tiny/app:v1 start_containerd "$D/containerd" "$REG" ||
	it_fail "containerd"

mport=$(free_port)
cat >"$D/pinlet/config.yaml" <<YAML
mode: enforce
registries:
  "$REG":
    insecure: true
metrics:
  listen: 127.0.0.1:$mport
lock:
  paths: ["$D/lock"]
YAML
mkdir -p "$D/lock"
"$PINLET_BIN" lock --config "$D/pinlet/config.yaml" --output "$D/lock/images.lock" \
	"$REG/tiny/app:v1" || it_fail "pinlet lock"
start_pinlet "$D/pinlet" "$CONTAINERD_ENDPOINT" || it_fail "pinlet"
M=http://127.0.0.1:$mport
AUDIT=$D/pinlet/audit.jsonl
wait_until 10 curl -fsS -o /dev/null "$M/readyz" || it_fail "/readyz never 200"
wait_until 10 curl -fsS -o /dev/null "$M/healthz" || it_fail "/healthz never 200"

# traffic: pulls, ImageStatus of pulled and unknown tags, pass-through calls
cri() { "$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" "$@" >/dev/null 2>&1 || true; }
cri pull "$REG/tiny/app:v1"
cri pull "$REG/tiny/app:v2"
for _ in 1 2 3; do
	cri image-status "$REG/tiny/app:v1"
	cri image-status "$REG/tiny/app:v2"
	cri image-status "$REG/tiny/app:nope"
	cri version
	cri images
done

curl -fsS "$M/metrics" >"$D/scrape.txt" || it_fail "GET /metrics"
out=$(promtool check metrics <"$D/scrape.txt" 2>&1) || it_fail "promtool: $out"
[ -z "$out" ] || it_fail "promtool reports: $out"

cat >"$D/prometheus.yml" <<YAML
global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: pinlet
    static_configs: [{targets: ["127.0.0.1:$mport"]}]
YAML
pport=$(free_port)
start_bg prometheus prometheus --config.file="$D/prometheus.yml" \
	--storage.tsdb.path="$D/tsdb" --web.listen-address="127.0.0.1:$pport"
wait_for_tcp 127.0.0.1 "$pport" 30 || it_fail "prometheus did not listen"
P=http://127.0.0.1:$pport
query() { # EXPR -> the first result's value, or nothing
	curl -fsS --get "$P/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
		jq -r '.data.result[0].value[1] // empty'
}

# Prometheus's view of every decision series must equal the audit log's counts. Wait
# until a scrape after the traffic has landed (the last sample of the total).
total=$(wc -l <"$AUDIT")
total_seen() { [ "$(query 'sum(pinlet_decisions_total)')" = "$total" ]; }
wait_until 60 total_seen || it_fail "sum(pinlet_decisions_total) $(query 'sum(pinlet_decisions_total)') != $total audit records"
jq -r '[.method, .decision, (.source // "none")] | @tsv' "$AUDIT" | sort | uniq -c |
	while read -r n method decision source; do
		got=$(query "pinlet_decisions_total{method=\"$method\",decision=\"$decision\",source=\"$source\"}")
		[ "$got" = "$n" ] || it_fail "decisions $method/$decision/$source: Prometheus $got, audit log $n"
		it_log "decisions $method/$decision/$source = $n (audit) = $got (Prometheus)"
	done
[ "$(query 'pinlet_backend_up{backend="runtime"}')" = 1 ] || it_fail "backend_up not 1"

# the runtime goes away: backend_up 0, /readyz 503 with the reason
stop_bg containerd
backend_down() { [ "$(query 'pinlet_backend_up{backend="runtime"}')" = 0 ]; }
wait_until 60 backend_down || it_fail "pinlet_backend_up never went 0"
code=$(curl -s -o "$D/readyz.body" -w '%{http_code}' "$M/readyz")
[ "$code" = 503 ] || it_fail "/readyz with the runtime down: $code"
it_log "/readyz with the runtime down: $code $(cat "$D/readyz.body")"
curl -fsS -o /dev/null "$M/healthz" || it_fail "/healthz must stay 200 (the loop is alive)"

# and comes back
restart_containerd "$D/containerd" || it_fail "containerd restart"
backend_up() { [ "$(query 'pinlet_backend_up{backend="runtime"}')" = 1 ]; }
wait_until 60 backend_up || it_fail "pinlet_backend_up never went back to 1"
wait_until 10 curl -fsS -o /dev/null "$M/readyz" || it_fail "/readyz not 200 after the restart"

# a reload is counted
kill -HUP "$(bg_pid pinlet)"
reloaded() { [ "$(query 'pinlet_config_reloads_total{result="success"}')" = 1 ]; }
wait_until 30 reloaded || it_fail "pinlet_config_reloads_total{result=\"success\"} never 1"

# lock reloads count on across configuration reloads (each configuration generation
# watches the lock files with a watcher of its own)
lock_reloads() { # -> pinlet_lock_reloads_total{result="success"} from /metrics
	curl -fsS "$M/metrics" | awk '/^pinlet_lock_reloads_total\{result="success"\}/ { print $2 }'
}
lock_edit() { # the same lock, one more entry: a valid change the watcher reloads
	"$PINLET_BIN" lock --config "$D/pinlet/config.yaml" --merge "$D/lock/images.lock" \
		--output "$D/lock/images.lock" "$REG/tiny/app:$1" || it_fail "pinlet lock --merge"
}
n0=$(lock_reloads)
lock_edit v2
lock_reloaded() { [ "$(lock_reloads)" -gt "$1" ]; }
wait_until 30 lock_reloaded "$n0" || it_fail "a lock edit was not counted ($n0 before, $(lock_reloads) after)"
n1=$(lock_reloads)
kill -HUP "$(bg_pid pinlet)"
reloaded2() { [ "$(query 'pinlet_config_reloads_total{result="success"}')" = 2 ]; }
wait_until 30 reloaded2 || it_fail "the second configuration reload was not counted"
[ "$(lock_reloads)" -ge "$n1" ] ||
	it_fail "pinlet_lock_reloads_total went back from $n1 to $(lock_reloads) at a configuration reload"
it_log "lock reloads: $n0 at start, $n1 after an edit, $(lock_reloads) after a configuration reload"
it_log "ok"
