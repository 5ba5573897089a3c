# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Process and directory lifecycle for integration tests: one private temporary directory
# per run, daemons started in the background with their PIDs and logs recorded in it, and
# everything stopped by PID (never by name) when the test ends, also on failure.
# Source this file first; it only defines functions (and notes the start time for it_log).
# The other pieces of the harness, each documented at its top:
#   containerd.sh  private docker-registry and containerd (CRI, runc, overlayfs)
#   images.sh      tiny OCI images built offline, pushed with skopeo
#   pinlet.sh      `pinlet serve` in front of a runtime
#   cri_assert.sh  CRI calls that must answer OK (or not), jq and audit-log assertions
#   transcript.sh  a test's whole output captured and searched for a secret
# and the programs lib/harness.cmake builds: pinlet_it_free_port, pinlet_it_cri (a CRI
# command-line client printing JSON; crictl is not in Debian).
#
# Typical driver:
#       . "$lib/common.sh"
#       it_setup                      # tmpdir in $PINLET_IT_DIR, trap it_finish EXIT
#       start_registry "$PINLET_IT_DIR/registry"          # containerd.sh
#       start_containerd "$PINLET_IT_DIR/containerd" "$REGISTRY_ADDR"
#       start_pinlet "$PINLET_IT_DIR/pinlet" "$CONTAINERD_ENDPOINT" --mode enforce
#       "$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" pull "$REGISTRY_ADDR/tiny/app:v1" | jq .
#       ...                           # exit status != 0: logs are printed, all stopped
#
#   pinlet_tmpdir                  create /tmp/pinlet-it-XXXX, print its path
#   it_require [--no-root] NAME TOOLS VARS
#                                  before it_setup: root (unless --no-root), each of
#                                  TOOLS (space-separated commands) installed, each of
#                                  VARS (names of environment variables) naming an
#                                  executable; else "NAME: ..." on stderr and exit 1
#   it_setup                       pinlet_tmpdir into $PINLET_IT_DIR (exported) and
#                                  `trap it_finish EXIT` (INT/TERM/HUP/PIPE -> exit)
#   it_finish [RC]                 the EXIT trap: on failure print the logs, stop_all,
#                                  remove $PINLET_IT_DIR (kept if PINLET_IT_KEEP=1)
#   it_log MSG...                  "[it +S.s] MSG" on stderr
#   it_fail MSG...                 it_log and exit 1
#   free_port                      a free TCP port on 127.0.0.1 (picked at run time)
#   start_bg NAME CMD [ARGS...]    run CMD in the background; stdout+stderr go to
#                                  $PINLET_IT_DIR/logs/NAME.log, the PID to
#                                  $PINLET_IT_DIR/pids/NAME.pid (a NAME may be started
#                                  again after it stopped: the new PID replaces the old)
#   bg_pid NAME                    the recorded PID of NAME (fails if none)
#   bg_running NAME                true while NAME's recorded process is alive
#   stop_bg NAME [GRACE_S]         SIGTERM, wait up to GRACE_S (default 5), then SIGKILL
#   stop_pid PID [GRACE_S]         the same for a PID that is not a recorded daemon
#   kill_bg NAME                   SIGKILL and reap; the PID file stays (restartable)
#   wait_for_socket PATH TIMEOUT_S true once PATH is a socket that accepts connections
#   wait_for_tcp HOST PORT TIMEOUT_S  true once HOST:PORT accepts TCP connections
#   wait_until TIMEOUT_S CMD...    retry CMD every 0.1 s until it succeeds or time is up
#   on_cleanup PHASE FUNC [ARGS]   register a cleanup step: PHASE "pre" runs before the
#                                  recorded processes are stopped, "post" after
#                                  (e.g. unmounting); steps run in reverse order
#   stop_all                       pre steps, every recorded process (reverse start
#                                  order), post steps; idempotent
#   dump_logs                      print every log in $PINLET_IT_DIR/logs
#   umount_under DIR               unmount every mount point at or below DIR (deepest
#                                  first); it_finish never removes a directory that
#                                  still holds a mount point
#
# State lives in files under $PINLET_IT_DIR, not in shell variables, so a helper started
# from another process (a C test calling a restart script) records its daemons where
# stop_all finds them.
#
# free_port uses the helper named by $PINLET_IT_FREE_PORT (built by CMake:
# pinlet_it_free_port binds 127.0.0.1:0 and prints the port the kernel chose) and
# otherwise probes random ports below the ephemeral range with `ss`. Either way another
# process may take the port before the daemon binds it: start functions check that the
# daemon really listens and retry with a new port.

_it_t0=${_it_t0:-$(date +%s%N)}

it_log() {
	local now
	now=$(date +%s%N)
	printf '[it +%d.%01ds] %s\n' $(((now - _it_t0) / 1000000000)) \
		$((((now - _it_t0) / 100000000) % 10)) "$*" >&2
}

it_fail() {
	it_log "FAIL: $*"
	exit 1
}

pinlet_tmpdir() {
	mktemp -d /tmp/pinlet-it-XXXX
}

it_require() {
	local root=1 name tool var
	[ "${1:-}" != --no-root ] || { root=0; shift; }
	name=$1
	if [ $root -eq 1 ] && [ "$(id -u)" != 0 ]; then
		echo "$name: must run as root (containerd, runc)" >&2
		exit 1
	fi
	for tool in $2; do
		command -v "$tool" >/dev/null || { echo "$name: $tool is not installed" >&2; exit 1; }
	done
	for var in $3; do
		[ -x "${!var:-}" ] || { echo "$name: $var must name an executable" >&2; exit 1; }
	done
}

it_setup() {
	PINLET_IT_DIR=$(pinlet_tmpdir) || { echo "mktemp failed" >&2; return 1; }
	export PINLET_IT_DIR
	mkdir -p "$PINLET_IT_DIR/pids" "$PINLET_IT_DIR/logs" "$PINLET_IT_DIR/cleanup"
	trap 'it_finish $?' EXIT
	# A signal becomes a normal exit so the EXIT trap runs exactly once.
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	# Output piped into a reader that quit (| head) must not kill us before cleanup.
	trap 'exit 141' PIPE
	it_log "work directory $PINLET_IT_DIR"
}

it_finish() {
	local rc=${1:-$?}
	trap - EXIT INT TERM HUP PIPE
	# Cleanup tries every step: a failing one must not end it early.
	set +e
	[ -n "${PINLET_IT_DIR:-}" ] && [ -d "$PINLET_IT_DIR" ] || exit "$rc"
	if [ "$rc" -ne 0 ]; then
		it_log "failed with status $rc; logs follow"
		dump_logs
	fi
	stop_all
	if [ "${PINLET_IT_KEEP:-0}" = 1 ]; then
		it_log "kept $PINLET_IT_DIR (PINLET_IT_KEEP=1)"
	elif _it_mounts_under "$PINLET_IT_DIR" | grep -q .; then
		# Never rm -rf through a mount point: report it instead.
		it_log "NOT removing $PINLET_IT_DIR: still mounted:"
		_it_mounts_under "$PINLET_IT_DIR" >&2
		[ "$rc" -ne 0 ] || rc=1
	else
		rm -rf --one-file-system "$PINLET_IT_DIR"
	fi
	exit "$rc"
}

dump_logs() {
	local f
	for f in "$PINLET_IT_DIR"/logs/*.log; do
		[ -f "$f" ] || continue
		printf '\n----- %s (last 200 lines) -----\n' "${f##*/}" >&2
		tail -n 200 "$f" >&2
	done
	printf -- '----- end of logs -----\n' >&2
}

free_port() {
	if [ -n "${PINLET_IT_FREE_PORT:-}" ] && [ -x "$PINLET_IT_FREE_PORT" ]; then
		"$PINLET_IT_FREE_PORT"
		return
	fi
	# Below Linux's default ephemeral range (32768-60999), so outgoing connections
	# never hold the port; `ss` shows whether anything listens on it now.
	local i p
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		if [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then
			echo "$p"
			return 0
		fi
	done
	echo "free_port: no free port found" >&2
	return 1
}

# Everything below keeps its state in $PINLET_IT_DIR: refuse to run without it (else
# paths like "/pids" would be written).
_it_need_dir() {
	if [ -z "${PINLET_IT_DIR:-}" ] || [ ! -d "$PINLET_IT_DIR" ]; then
		echo "${FUNCNAME[1]}: PINLET_IT_DIR is not set up (call it_setup first)" >&2
		return 1
	fi
}

start_bg() {
	local name=$1
	_it_need_dir || return 1
	shift
	if [ -z "$name" ] || [ $# -lt 1 ]; then
		echo "usage: start_bg NAME CMD [ARGS...]" >&2
		return 2
	fi
	mkdir -p "$PINLET_IT_DIR/pids" "$PINLET_IT_DIR/logs"
	# The child gets its own stdin (/dev/null) so it never competes for the test's.
	"$@" </dev/null >>"$PINLET_IT_DIR/logs/$name.log" 2>&1 &
	local pid=$!
	# Out of the job table: bash would otherwise report "Killed" when a test kills a
	# daemon on purpose. It is still reaped; stop_bg waits by polling /proc.
	disown "$pid" 2>/dev/null || true
	echo "$pid" >"$PINLET_IT_DIR/pids/$name.pid"
	# Start order for stop_all (reverse order on the way down).
	grep -qx "$name" "$PINLET_IT_DIR/pids/order" 2>/dev/null ||
		echo "$name" >>"$PINLET_IT_DIR/pids/order"
	it_log "started $name (pid $pid): $*"
}

bg_pid() {
	local f="$PINLET_IT_DIR/pids/$1.pid"
	[ -s "$f" ] || { echo "bg_pid: no PID recorded for $1" >&2; return 1; }
	cat "$f"
}

# A PID is ours while /proc/PID exists and is not a zombie.
_it_pid_alive() {
	local pid=$1 state
	[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
	# The process may exit between the test above and the read: that is "not alive".
	state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

bg_running() {
	local pid
	pid=$(bg_pid "$1" 2>/dev/null) || return 1
	_it_pid_alive "$pid"
}

# Reaps PID if it is a child of this shell (no-op otherwise).
_it_reap() {
	wait "$1" 2>/dev/null || true
}

stop_pid() {
	local pid=$1 grace=${2:-5} i
	_it_pid_alive "$pid" || { _it_reap "$pid"; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		_it_pid_alive "$pid" || { _it_reap "$pid"; return 0; }
		sleep 0.1
	done
	it_log "pid $pid ignored SIGTERM for ${grace}s: SIGKILL"
	_it_kill "$pid"
}

# SIGKILL PID, wait (5 s at most) until it is gone, reap it.
_it_kill() {
	local pid=$1 i
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		_it_pid_alive "$pid" || break
		sleep 0.1
	done
	_it_reap "$pid"
}

stop_bg() {
	local name=$1 grace=${2:-5} pid
	pid=$(bg_pid "$name" 2>/dev/null) || return 0
	if _it_pid_alive "$pid"; then
		it_log "stopping $name (pid $pid)"
		stop_pid "$pid" "$grace"
	fi
	_it_reap "$pid"
}

kill_bg() {
	local name=$1 pid
	pid=$(bg_pid "$name") || return 1
	_it_kill "$pid"
	it_log "killed $name (pid $pid) with SIGKILL"
}

wait_until() {
	local timeout=$1 deadline
	shift
	deadline=$(($(date +%s%N) + timeout * 1000000000))
	while :; do
		"$@" && return 0
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

# A unix socket accepts connections when `ss` lists it as listening (no client needed).
_it_socket_listening() {
	[ -S "$1" ] || return 1
	ss -Hxl 2>/dev/null | awk -v p="$1" '$5 == p { found = 1 } END { exit !found }'
}

wait_for_socket() {
	local path=$1 timeout=${2:-10}
	wait_until "$timeout" _it_socket_listening "$path" ||
		{ it_log "socket $path not listening after ${timeout}s"; return 1; }
}

_it_tcp_open() {
	# bash's /dev/tcp: the connect succeeds only if something listens.
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_for_tcp() {
	local host=$1 port=$2 timeout=${3:-10}
	wait_until "$timeout" _it_tcp_open "$host" "$port" ||
		{ it_log "$host:$port not accepting connections after ${timeout}s"; return 1; }
}

on_cleanup() {
	local phase=$1
	_it_need_dir || return 1
	shift
	case $phase in pre | post) ;; *) echo "on_cleanup: phase is pre or post" >&2; return 2 ;; esac
	mkdir -p "$PINLET_IT_DIR/cleanup"
	# One line per step, shell-quoted, so other processes can add steps too.
	printf '%q ' "$@" >>"$PINLET_IT_DIR/cleanup/$phase"
	printf '\n' >>"$PINLET_IT_DIR/cleanup/$phase"
}

_it_run_cleanup() {
	local f="$PINLET_IT_DIR/cleanup/$1" line
	[ -f "$f" ] || return 0
	# Reverse order: the last registered step undoes the last thing set up. Steps are
	# removed from the file once run, so stop_all is idempotent.
	tac "$f" | while IFS= read -r line; do
		[ -n "$line" ] || continue
		eval "$line" || it_log "cleanup step failed: $line"
	done
	rm -f "$f"
}

stop_all() {
	[ -n "${PINLET_IT_DIR:-}" ] && [ -d "$PINLET_IT_DIR" ] || return 0
	local name
	_it_run_cleanup pre
	if [ -f "$PINLET_IT_DIR/pids/order" ]; then
		for name in $(tac "$PINLET_IT_DIR/pids/order"); do
			stop_bg "$name"
		done
	fi
	_it_run_cleanup post
}

# Mount points at or below DIR, deepest first (mountinfo field 5 is the mount point;
# octal escapes such as \040 only appear for names our tmpdirs never have).
_it_mounts_under() {
	local dir=$1
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
		awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

# Unmounts everything at or below DIR (deepest first; lazily if busy).
umount_under() {
	local dir=$1 m i
	for ((i = 0; i < 3; i++)); do
		for m in $(_it_mounts_under "$dir"); do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
				it_log "cannot unmount $m"
		done
		_it_mounts_under "$dir" | grep -q . || return 0
	done
	return 1
}
