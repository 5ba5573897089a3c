# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# pinlet itself for integration tests and demos: `pinlet serve` in a private directory,
# in front of a CRI runtime (usually start_containerd's). Needs common.sh (sourced first).
# Source this file; it only defines functions.
#
#   start_pinlet DIR BACKEND_ENDPOINT [SERVE_ARGS...]
#           runs "$PINLET_BIN serve" (PINLET_BIN: the binary under test, default
#           `pinlet` from PATH) with --config DIR/config.yaml, --listen DIR/pinlet.sock,
#           --runtime-endpoint BACKEND_ENDPOINT, --state-dir DIR/state, --audit-log
#           DIR/audit.jsonl, --log-level debug, then SERVE_ARGS (later options win, e.g.
#           --mode enforce). DIR/config.yaml is the caller's if it exists, else an empty
#           mapping is written ("{}"). Nothing outside DIR is read or written. Waits until
#           the socket listens (10 s; $PINLET_START_TIMEOUT to change it, e.g. for a
#           pinlet under valgrind). Sets PINLET_DIR, PINLET_SOCK and PINLET_ENDPOINT
#           ("unix://" + socket). The start_bg name is "pinlet" ($PINLET_NAME to change
#           it, e.g. for a second instance).
#   restart_pinlet [DIR]
#           stops the instance (SIGTERM, by PID) and starts it again with the same
#           arguments (saved in DIR/serve.args).

start_pinlet() {
	local dir=$1 backend=$2 name=${PINLET_NAME:-pinlet} bin=${PINLET_BIN:-pinlet}
	if [ -z "$dir" ] || [ -z "$backend" ]; then
		echo "usage: start_pinlet DIR BACKEND_ENDPOINT [SERVE_ARGS...]" >&2
		return 2
	fi
	shift 2
	mkdir -p "$dir/state"
	dir=$(cd "$dir" && pwd)
	[ -f "$dir/config.yaml" ] || echo '{}' >"$dir/config.yaml"
	# Saved one argument per line (NUL-free, newline-free arguments only) for restarts.
	printf '%s\n' "$bin" serve --config "$dir/config.yaml" --listen "$dir/pinlet.sock" \
		--runtime-endpoint "$backend" --state-dir "$dir/state" \
		--audit-log "$dir/audit.jsonl" --log-level debug "$@" >"$dir/serve.args"
	echo "$name" >"$dir/name"
	PINLET_DIR=$dir
	PINLET_SOCK=$dir/pinlet.sock
	PINLET_ENDPOINT=unix://$dir/pinlet.sock
	export PINLET_DIR PINLET_SOCK PINLET_ENDPOINT
	_pinlet_start "$dir"
}

_pinlet_start() {
	local dir=$1 name args=()
	name=$(cat "$dir/name")
	mapfile -t args <"$dir/serve.args"
	rm -f "$dir/pinlet.sock"
	start_bg "$name" "${args[@]}"
	wait_for_socket "$dir/pinlet.sock" "${PINLET_START_TIMEOUT:-10}" ||
		{ it_log "$name did not start"; return 1; }
	bg_running "$name" || { it_log "$name exited after start"; return 1; }
}

restart_pinlet() {
	local dir=${1:-${PINLET_DIR:-}}
	if [ -z "$dir" ] || [ ! -f "$dir/serve.args" ]; then
		echo "restart_pinlet: no pinlet started in '$dir'" >&2
		return 2
	fi
	stop_bg "$(cat "$dir/name")" 10
	_pinlet_start "$dir"
}
