#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# A real Prometheus (2.42, Debian's package) scrapes pinlet's /metrics every second:
# pinlet_it_metrics serves a fully populated struct pinlet_metrics on 127.0.0.1:0, and
# the test waits (with a deadline) until Prometheus answers pinlet_build_info = 1, the
# target is up and its last scrape had no error (so Prometheus' own parser took every
# line). Both processes are stopped by PID, also when an assertion fails.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$PINLET_IT_LIB/common.sh"
command -v prometheus >/dev/null ||
        { echo "FAIL: prometheus not found (packaging/install-deps.sh test installs it)" >&2; exit 1; }
command -v jq >/dev/null || { echo "FAIL: jq not found" >&2; exit 1; }
it_setup
D=$PINLET_IT_DIR

start_bg metrics "$PINLET_IT_METRICS" serve 127.0.0.1:0 "$D/metrics.addr"
wait_until 10 test -s "$D/metrics.addr" || it_fail "pinlet_it_metrics did not start"
target=$(cat "$D/metrics.addr")
it_log "metrics on $target"
curl -fsS -o "$D/scrape.txt" "http://$target/metrics" || it_fail "GET http://$target/metrics"
grep -q '^pinlet_build_info{version="' "$D/scrape.txt" || it_fail "no pinlet_build_info in the scrape"

cat >"$D/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pinlet
    static_configs:
      - targets: ["$target"]
YAML
promtool check config "$D/prometheus.yml" >/dev/null || it_fail "promtool rejects the config"

# free_port may race another process for the port: retry with a new one if Prometheus
# does not come up listening.
prom=
for attempt in 1 2 3; do
        port=$(free_port)
        start_bg prometheus prometheus --config.file="$D/prometheus.yml" \
                --storage.tsdb.path="$D/tsdb" --web.listen-address="127.0.0.1:$port"
        if wait_for_tcp 127.0.0.1 "$port" 30 && bg_running prometheus; then
                prom=127.0.0.1:$port
                break
        fi
        it_log "prometheus did not listen on $port (attempt $attempt)"
        stop_bg prometheus
done
[ -n "$prom" ] || it_fail "prometheus did not start"

query() { # query EXPR -> the first result's value, or nothing
        curl -fsS --get "http://$prom/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
                jq -r '.data.result[0].value[1] // empty'
}
build_info_is_1() { [ "$(query 'pinlet_build_info')" = 1 ]; }
wait_until 60 build_info_is_1 || it_fail "pinlet_build_info never became 1 in Prometheus"
[ "$(query 'up{job="pinlet"}')" = 1 ] || it_fail "target not up"
[ "$(query 'pinlet_lock_entries')" = 3 ] || it_fail "pinlet_lock_entries: $(query pinlet_lock_entries)"
[ "$(query 'sum(pinlet_cri_requests_total)')" = 20 ] ||
        it_fail "sum(pinlet_cri_requests_total): $(query 'sum(pinlet_cri_requests_total)')"
curl -fsS "http://$prom/api/v1/targets" >"$D/targets.json"
jq -e '.data.activeTargets | length == 1 and .[0].health == "up" and .[0].lastError == ""' \
        "$D/targets.json" >/dev/null || it_fail "target state: $(cat "$D/targets.json")"
it_log "Prometheus scraped pinlet_build_info = 1 from $target"
