#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Quick self-check of `pinlet serve`: run.sh PINLET PROXY_PROBE
# Every process is started through lib/common.sh and stopped by PID, also on failure.
set -euo pipefail

pinlet=$1
probe=$2
lib=$(cd "$(dirname "$0")/../lib" && pwd)
# shellcheck source=../lib/common.sh
. "$lib/common.sh"
it_setup
d=$PINLET_IT_DIR
sock=$d/run/pinlet/pinlet.sock # parent directories do not exist yet
rt=$d/rt.sock
img=$d/img.sock

serve() { # NAME EXTRA_ARGS...: start pinlet in the background
	local name=$1
	shift
	start_bg "$name" "$pinlet" serve --listen "$sock" \
		--runtime-endpoint "unix://$rt" --state-dir "$d/state-$name" \
		--audit-log "$d/audit-$name.jsonl" --log-level debug "$@"
}
probe() { "$probe" client "unix:$sock" "$@"; }

# 1. Refuses to delete something that is not a socket; exit code 1, file untouched.
mkdir -p "$(dirname "$sock")"
echo precious >"$sock"
set +e
"$pinlet" serve --listen "$sock" --runtime-endpoint "unix://$rt" \
	--state-dir "$d/state-refuse" --audit-log "$d/audit-refuse.jsonl" >"$d/refuse.log" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || it_fail "non-socket: exit code $rc, want 1: $(cat "$d/refuse.log")"
grep -q "not a socket" "$d/refuse.log" || it_fail "non-socket: unclear message: $(cat "$d/refuse.log")"
[ "$(cat "$sock")" = precious ] || it_fail "non-socket file was modified"
rm -f "$sock"
rmdir "$(dirname "$sock")"

# 2. Replaces a stale socket (nobody accepts on it); creates the parent directory.
mkdir -p "$(dirname "$sock")"
"$probe" stale-socket "$sock"
[ -S "$sock" ] || it_fail "could not create the stale socket"

# Backend is down at start: pinlet must still start and answer UNAVAILABLE.
serve pinlet
wait_for_socket "$sock" 10 || it_fail "pinlet did not start (or did not replace the stale socket)"
[ "$(stat -c %a "$sock")" = 660 ] || it_fail "socket mode $(stat -c %a "$sock"), want 660"
grep -q "ready" "$d/logs/pinlet.log" || it_fail "no 'ready' log line"

# 3. A second instance refuses to start while the first accepts on the socket.
set +e
"$pinlet" serve --listen "$sock" --runtime-endpoint "unix://$rt" \
	--state-dir "$d/state-second" --audit-log "$d/audit-second.jsonl" >"$d/second.log" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || it_fail "second instance: exit code $rc, want 1"
grep -q "another process" "$d/second.log" || it_fail "second instance: $(cat "$d/second.log")"
[ -S "$sock" ] || it_fail "second instance removed the live socket"

probe unavailable "unix://$rt" || it_fail "backend down"

# 4. Backend comes up: served without restarting pinlet.
start_bg backend "$probe" backend "$rt" runtime
wait_for_socket "$rt" 10 || it_fail "backend did not start"
wait_until 5 probe unary runtime >/dev/null 2>&1 || true
probe unary runtime || it_fail "unary forwarding"
probe authority "$sock" || it_fail "socket path as :authority"
probe status || it_fail "status forwarding"
probe streams || it_fail "streams"
probe big || it_fail "16 MiB messages"
probe deadline || it_fail "deadline / cancellation"
wait_until 5 grep -q "cancelled /runtime.v1.RuntimeService/Version" "$d/logs/backend.log" ||
	it_fail "deadline did not cancel the backend call"
wait_until 5 grep -q "cancelled /probe.Test/Hang" "$d/logs/backend.log" ||
	it_fail "client cancellation did not reach the backend"

# 5. Backend dies: in-flight calls end with a status; served again after its restart.
probe dying "$(bg_pid backend)" || it_fail "calls in flight on a dying backend"
kill_bg backend
probe unavailable "unix://$rt" || it_fail "backend killed: not UNAVAILABLE"
start_bg backend "$probe" backend "$rt" runtime
wait_for_socket "$rt" 10 || it_fail "backend did not restart"
wait_until 5 probe unary runtime >/dev/null 2>&1 || it_fail "not served after backend restart"

# 6. SIGTERM: exit code 0, socket removed.
pid=$(bg_pid pinlet)
kill -TERM "$pid"
wait_until 15 bash -c "! kill -0 $pid 2>/dev/null" || it_fail "pinlet did not stop on SIGTERM"
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" = 0 ] || it_fail "exit code $rc after SIGTERM, want 0"
[ ! -e "$sock" ] || it_fail "socket left behind after SIGTERM"
grep -q "stopped" "$d/logs/pinlet.log" || it_fail "no 'stopped' log line"

# 7. Separate image endpoint: ImageService paths go there, the rest to the runtime.
start_bg imgbackend "$probe" backend "$img" image
wait_for_socket "$img" 10 || it_fail "image backend did not start"
# (also: the missing parent directories of the socket are created)
sock=$d/new/dir/pinlet.sock
serve pinlet2 --listen "$sock" --image-endpoint "unix://$img"
wait_for_socket "$sock" 10 || it_fail "pinlet did not start (image endpoint)"
wait_until 5 probe image image >/dev/null 2>&1 || true
probe image image || it_fail "image routing"
probe unary runtime || it_fail "runtime routing with an image endpoint"
stop_bg pinlet2 15
[ ! -e "$sock" ] || it_fail "socket left behind"

# 8. Socket mode and owner from the configuration file (the suite runs as root).
cat >"$d/config.yaml" <<YAML
socket:
  mode: "0640"
  owner: 65534
  group: 65534
YAML
sock=$d/owned.sock
serve pinlet3 --config "$d/config.yaml" --listen "$sock"
wait_for_socket "$sock" 10 || it_fail "pinlet did not start (socket owner)"
[ "$(stat -c '%a %u %g' "$sock")" = "640 65534 65534" ] ||
	it_fail "socket mode/owner: $(stat -c '%a %u %g' "$sock"), want 640 65534 65534"
stop_bg pinlet3 15

# 9. The library in-process: interceptors on workers (forward, rewrite, fail, deadline),
#    and shutdown with in-flight calls (1 s grace there).
psock=$d/lib.sock
start_bg libproxy "$probe" proxy "$psock" "unix:$rt"
wait_for_socket "$psock" 10 || it_fail "in-process proxy did not start"
"$probe" client "unix:$psock" intercept || it_fail "interceptors"
"$probe" client "unix:$psock" shutdown "$(bg_pid libproxy)" || it_fail "shutdown with calls in flight"
pid=$(bg_pid libproxy)
wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || it_fail "in-process proxy did not stop"
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" = 0 ] || it_fail "in-process proxy: exit code $rc"
[ ! -e "$psock" ] || it_fail "in-process proxy left its socket"

it_log "proxy smoke: all passed"
