#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Live reload under load, against real containerd and docker-registry: `pinlet serve`
# reads its configuration file again on SIGHUP while hundreds of CRI calls are in flight.
#
#   stress  rounds of 400 concurrent calls (hostile_crowd: Version, ListImages and
#           ImageStatus of a tag) run back to back while the configuration file is
#           replaced (rename over it) and SIGHUP sent 50 times, cycling through a valid
#           enforce configuration, a valid audit configuration and an invalid one. Checks:
#           every call answered OK (zero failed calls); one audit record per ImageStatus
#           call (zero lost records); every record's decision matches its mode
#           (substituted in enforce, would_substitute in audit) and both modes occur;
#           every valid reload logged "configuration reloaded", every invalid one
#           "reload failed" with the file and line; after the last (valid) reload the
#           next call follows it.
#   keys    a reload that changes keys which cannot change live (socket.mode,
#           max_message_size, resolver.workers) keeps them and names each in the log; an
#           invalid file keeps the old configuration; SIGHUP reopens the audit log after a
#           rename. (listen and state_dir come from flags here, which win over the file.)
#
# Needs root, containerd, runc, docker-registry, skopeo, jq. Environment (reload.cmake):
# PINLET_BIN, PINLET_IT_CRI, PINLET_IT_LIB, HOSTILE_CROWD.
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
case_name=${1:-}
case $case_name in
stress | keys) ;;
*) echo "usage: $0 stress|keys" >&2; exit 2 ;;
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

it_require run.sh "" "PINLET_BIN PINLET_IT_CRI HOSTILE_CROWD"

it_setup
D=$PINLET_IT_DIR
P=$D/pinlet
AUDIT=$P/audit.jsonl
LOG=$D/logs/pinlet.log
it_log "case $case_name"

mkdir -p "$D/img"
build_pause_binary "$D/img/pause.bin" || it_fail "build_pause_binary"
build_pause_image "$D/img/app" app "$D/img/pause.bin" || it_fail "image"
start_registry "$D/registry" || it_fail "registry"
REG=$REGISTRY_ADDR
push_image "$D/img/app" "$REG" tiny/app:v1 || it_fail "push"
PINLET_SANDBOX_IMAGE=$REG/tiny/app:v1 start_containerd "$D/containerd" "$REG" ||
	it_fail "containerd"
IMAGE=$REG/tiny/app:v1

# config NAME MODE [EXTRA YAML]: a configuration file in $D/conf/NAME.yaml
mkdir -p "$D/conf" "$P"
config() {
	printf 'mode: %s\nregistries:\n  "%s":\n    insecure: true\n%s' "$2" "$REG" "${3:-}" \
		>"$D/conf/$1.yaml"
}
config enforce enforce
config audit audit
printf 'mode: enforce\ncache:\n  ttl: [not, a, duration\n' >"$D/conf/broken.yaml"
cp "$D/conf/enforce.yaml" "$P/config.yaml"

# install NAME: replace the configuration file the way an operator (or a ConfigMap) does
install_config() {
	cp "$D/conf/$1.yaml" "$P/config.yaml.tmp"
	mv "$P/config.yaml.tmp" "$P/config.yaml"
}

count_lines() { grep -c -- "$1" "$LOG" 2>/dev/null || true; }

# reload: SIGHUP, then wait until the log shows its outcome (one more line of either kind)
reload() {
	local before after
	before=$(($(count_lines 'configuration reloaded') + $(count_lines 'reload failed')))
	kill -HUP "$(bg_pid pinlet)"
	for _ in $(seq 1 200); do
		after=$(($(count_lines 'configuration reloaded') + $(count_lines 'reload failed')))
		[ "$after" -gt "$before" ] && return 0
		sleep 0.05
	done
	it_fail "no reload outcome logged within 10 s"
}

start_pinlet "$P" "$CONTAINERD_ENDPOINT" || it_fail "pinlet"
# The image by tag directly (so ImageStatus of the tag finds it in audit mode too) and
# through pinlet (so it finds the digest in enforce mode).
"$PINLET_IT_CRI" -e "$CONTAINERD_ENDPOINT" pull "$IMAGE" >/dev/null || it_fail "direct pull"
"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" pull "$IMAGE" >/dev/null || it_fail "pull via pinlet"

case $case_name in
stress)
	base=$(wc -l <"$AUDIT")
	stop_flag=$D/stop-crowd
	# Rounds of 400 calls in flight at once, back to back, until told to stop.
	(
		round=0
		while [ ! -e "$stop_flag" ]; do
			round=$((round + 1))
			"$HOSTILE_CROWD" -e "$PINLET_ENDPOINT" -n 400 -t 60 version list \
				"status=$IMAGE" >"$D/crowd.$round.out" 2>&1 ||
				{ echo "round $round failed" >>"$D/crowd.failed"; }
		done
		echo "$round" >"$D/crowd.rounds"
	) &
	crowd_pid=$!
	on_cleanup pre stop_pid "$crowd_pid" 5
	# Let the first round get going, then 50 reloads cycling enforce, audit, broken.
	wait_until 30 test -e "$D/crowd.1.out" || it_fail "the crowd did not start"
	names=(audit broken enforce)
	for i in $(seq 0 49); do
		install_config "${names[$((i % 3))]}"
		reload
	done
	# the last one (i = 49: 49 % 3 = 1) was broken: end on a valid configuration
	install_config audit
	reload
	touch "$stop_flag"
	wait "$crowd_pid" || true
	rounds=$(cat "$D/crowd.rounds")
	it_log "$rounds rounds of 400 calls during 51 reloads"
	[ ! -e "$D/crowd.failed" ] || it_fail "failed calls: $(cat "$D/crowd.failed"): $(cat "$D"/crowd.*.out | grep -v ' 0 failed' | head -20)"
	grep -h '^total' "$D"/crowd.*.out | sed 's/^/  /' | head -3
	# ImageStatus calls made: a third of each round (mix of three, 400 calls: 133 or 134)
	status_calls=$(grep -h '^status=' "$D"/crowd.*.out | awk '{ n += $2 } END { print n }')
	records=$(($(wc -l <"$AUDIT") - base))
	it_log "ImageStatus calls: $status_calls, new audit records: $records"
	[ "$records" -eq "$status_calls" ] || it_fail "audit records $records != ImageStatus calls $status_calls"
	bad=$(tail -n "$records" "$AUDIT" | jq -c 'select((.mode == "enforce" and .decision != "substituted") or (.mode == "audit" and .decision != "would_substitute"))' | head -3)
	[ -z "$bad" ] || it_fail "records whose decision does not match their mode: $bad"
	n_enf=$(tail -n "$records" "$AUDIT" | jq -r '.mode' | grep -c '^enforce$' || true)
	n_aud=$(tail -n "$records" "$AUDIT" | jq -r '.mode' | grep -c '^audit$' || true)
	it_log "records: $n_enf enforce, $n_aud audit"
	[ "$n_enf" -gt 0 ] && [ "$n_aud" -gt 0 ] || it_fail "both modes must occur"
	ok=$(count_lines 'configuration reloaded')
	failed=$(count_lines 'reload failed')
	[ "$ok" -eq 34 ] || it_fail "valid reloads logged: $ok (want 34)"
	[ "$failed" -eq 17 ] || it_fail "invalid reloads logged: $failed (want 17)"
	grep -qE "reload failed.*config\.yaml:[0-9]+: " "$LOG" || it_fail "the failure names file and line"
	# after the last reload (audit) a call is decided in audit mode
	"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" image-status "$IMAGE" >/dev/null || it_fail "status"
	[ "$(tail -n 1 "$AUDIT" | jq -r .decision)" = would_substitute ] ||
		it_fail "the call after the last reload: $(tail -n 1 "$AUDIT")"
	;;
keys)
	mode_before=$(stat -c %a "$P/pinlet.sock")
	config moved enforce "socket:
  mode: \"0600\"
max_message_size: 32MiB
resolver:
  workers: 3
cache:
  ttl: 1s
"
	install_config moved
	reload
	for key in socket.mode max_message_size resolver.workers; do
		grep -q "reload: $key cannot change while pinlet runs" "$LOG" ||
			it_fail "the log does not name $key"
	done
	grep -q "reload: cache.ttl" "$LOG" && it_fail "cache.ttl can change live"
	[ "$(stat -c %a "$P/pinlet.sock")" = "$mode_before" ] || it_fail "the socket mode changed"
	"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" image-status "$IMAGE" >/dev/null || it_fail "status"
	# an invalid file changes nothing: still enforce
	cp "$D/conf/broken.yaml" "$P/config.yaml"
	reload
	grep -qE 'reload failed, the configuration in force is unchanged: .*config\.yaml:[0-9]+: ' "$LOG" ||
		it_fail "no file:line error for the broken file"
	"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" image-status "$IMAGE" >/dev/null || it_fail "status"
	[ "$(tail -n 1 "$AUDIT" | jq -r .decision)" = substituted ] || it_fail "mode changed"
	# SIGHUP reopens the audit log (logrotate's rename, then reload)
	mv "$AUDIT" "$AUDIT.1"
	install_config enforce
	reload
	"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" image-status "$IMAGE" >/dev/null || it_fail "status"
	[ -s "$AUDIT" ] || it_fail "no record in the reopened audit log"
	;;
esac
it_log "ok"
