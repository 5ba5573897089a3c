# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# A private docker-registry and a private containerd (CRI plugin, runc, overlayfs) for
# integration tests, each in its own directory below the test's $PINLET_IT_DIR, on
# loopback only. Needs common.sh (sourced first) and root. Source this file; it only
# defines functions.
#
#   start_registry DIR [PORT] [NAME]
#           docker-registry (distribution 2.8) on 127.0.0.1:PORT, storage in DIR.
#           PORT empty or omitted: picked with free_port (and picked again, up to 5
#           times, if another process took it first). NAME defaults to "registry" (the
#           start_bg name; use another for a second registry). Sets REGISTRY_ADDR
#           ("127.0.0.1:PORT") and REGISTRY_PORT. Optional environment:
#             PINLET_REGISTRY_TLS_CERT / PINLET_REGISTRY_TLS_KEY  serve HTTPS
#             PINLET_REGISTRY_AUTH_YAML  YAML mapping placed under `auth:` (one line,
#                                        flow style: {htpasswd: {realm: r, path: F}})
#   start_containerd DIR [REGISTRY_HOSTPORT...]
#           containerd with the config below in DIR; sandbox_image is
#           $PINLET_SANDBOX_IMAGE or REGISTRY_HOSTPORT/tiny/pause:v1 (push it before
#           the first RunPodSandbox). Every REGISTRY_HOSTPORT given gets a plain-HTTP
#           certs.d entry. Waits until containerd serves (socket listening and the boot
#           message logged, 20 s at most). Sets CONTAINERD_DIR, CONTAINERD_SOCK (a path)
#           and CONTAINERD_ENDPOINT ("unix://" + path), and registers the cleanup of
#           containers, shims, mounts and shim sockets with on_cleanup.
#   start_containerd_named NAME DIR [REGISTRY_HOSTPORT...]
#           start_containerd under the start_bg name NAME (log: logs/NAME.log), for a
#           second "node" next to the first: everything else (config, cleanup steps, the
#           variables it sets) is as start_containerd. restart_containerd does not apply
#           to it (that one restarts the instance named "containerd").
#   containerd_add_registry DIR HOSTPORT [CA_FILE]
#           certs.d/HOSTPORT/hosts.toml: plain HTTP, or HTTPS trusting CA_FILE. containerd
#           reads certs.d at each pull: this works before or after start_containerd.
#   containerd_add_mirror HOSTS_DIR HOST SERVER_URL MIRROR_URL [CAPABILITIES]
#           HOSTS_DIR/HOST/hosts.toml: MIRROR_URL (plain HTTP or HTTPS as written) tried
#           first, with CAPABILITIES (a TOML list, default ["pull", "resolve"]: pulls and
#           tags), then SERVER_URL, the upstream. HOSTS_DIR is a containerd config_path
#           (DIR/certs.d for start_containerd's instance) and pinlet's hosts_dir.
#   restart_containerd [DIR]
#           start containerd again with the same config (after kill_bg containerd or a
#           crash); the running shims and containers are adopted by the new instance.
#           DIR defaults to $CONTAINERD_DIR; callable from another process (a test
#           program) with DIR given, since all state is in files.
#   containerd_shim_pids DIR
#           PIDs of containerd-shim-runc-v2 processes serving DIR's containerd, found by
#           their -address argument (never by process name).
#   containerd_cleanup DIR
#           the pre-stop cleanup step (registered by start_containerd): kill and delete
#           every runc container under DIR's runc root, stop the shims by PID.
#   containerd_cleanup_post DIR
#           the post-stop step: unmount everything under DIR, remove the shim sockets
#           under /run/containerd/s that belong to DIR's containerd.
#
# Layout of DIR: config.toml, root/, state/, opt/, runc/ (runc --root for each
# namespace: runc/k8s.io), cni/ (empty: pods use the host network), certs.d/,
# containerd.sock, containerd.sock.ttrpc, shims (the shim command lines seen, for
# cleanup).
#
# Facts this relies on (containerd 1.6, see docs/env.md):
# - restrict_oom_score_adj = true is required where root lacks CAP_SYS_RESOURCE (else
#   RunPodSandbox fails with "can't get final child's PID from pipe: EOF").
# - With no CNI config the log says "failed to load cni during init"; harmless, pods
#   use namespace_options.network = NODE and Status reports NetworkReady=false.
# - The runc shim puts its socket at /run/containerd/s/<sha256(address/namespace/id)>,
#   outside DIR; the shim removes it when it exits normally.

start_registry() {
	local dir=$1 port=${2:-} name=${3:-registry} attempt scheme=http tls="" auth=""
	[ -n "$dir" ] || { echo "usage: start_registry DIR [PORT] [NAME]" >&2; return 2; }
	mkdir -p "$dir/data"
	if [ -n "${PINLET_REGISTRY_TLS_CERT:-}" ]; then
		scheme=https
		tls=", tls: {certificate: \"$PINLET_REGISTRY_TLS_CERT\", key: \"$PINLET_REGISTRY_TLS_KEY\"}"
	fi
	[ -z "${PINLET_REGISTRY_AUTH_YAML:-}" ] || auth="auth: $PINLET_REGISTRY_AUTH_YAML"
	for attempt in 1 2 3 4 5; do
		local p=$port
		[ -n "$p" ] || p=$(free_port) || return 1
		cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: "$dir/data"}, delete: {enabled: true}}
http: {addr: "127.0.0.1:$p"$tls}
$auth
EOF
		start_bg "$name" docker-registry serve "$dir/config.yml"
		if wait_for_tcp 127.0.0.1 "$p" 10 && bg_running "$name"; then
			REGISTRY_PORT=$p
			REGISTRY_ADDR=127.0.0.1:$p
			export REGISTRY_PORT REGISTRY_ADDR
			it_log "$name serves $scheme://$REGISTRY_ADDR"
			return 0
		fi
		stop_bg "$name" 2
		# A fixed PORT that does not work is the caller's problem: no retry.
		[ -z "$port" ] || break
		it_log "$name did not come up on port $p (attempt $attempt), trying another port"
	done
	it_log "$name failed to start"
	return 1
}

containerd_add_registry() {
	local dir=$1 hostport=$2 ca=${3:-} d
	d="$dir/certs.d/$hostport"
	mkdir -p "$d"
	if [ -n "$ca" ]; then
		cat >"$d/hosts.toml" <<EOF
server = "https://$hostport"
[host."https://$hostport"]
  capabilities = ["pull", "resolve"]
  ca = "$ca"
EOF
	else
		cat >"$d/hosts.toml" <<EOF
server = "http://$hostport"
[host."http://$hostport"]
  capabilities = ["pull", "resolve"]
EOF
	fi
}

containerd_add_mirror() {
	local hosts=$1 host=$2 server=$3 mirror=$4 caps=${5:-'["pull", "resolve"]'}
	mkdir -p "$hosts/$host"
	cat >"$hosts/$host/hosts.toml" <<EOF
server = "$server"

[host."$mirror"]
  capabilities = $caps
EOF
}

_containerd_write_config() {
	local dir=$1 sandbox=$2
	cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  level = "${PINLET_CONTAINERD_LOG_LEVEL:-info}"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$dir/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    restrict_oom_score_adj = true
    sandbox_image = "$sandbox"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          Root = "$dir/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$dir/cni"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$dir/certs.d"
EOF
}

# _containerd_start_named NAME DIR: start DIR's containerd under the start_bg name NAME
# (its own log, logs/NAME.log) and wait until it serves: the socket listens and
# containerd logged, in this start, the line it writes once every plugin is loaded and
# the servers listen.
_containerd_start_named() {
	local name=$1 dir=$2 log from i
	log=$PINLET_IT_DIR/logs/$name.log
	# Only log lines written by this start count.
	from=$(($(stat -c %s "$log" 2>/dev/null || echo 0) + 1))
	# A killed containerd leaves its socket behind; containerd removes a stale one
	# itself, but waiting on it would succeed too early.
	rm -f "$dir/containerd.sock" "$dir/containerd.sock.ttrpc"
	start_bg "$name" containerd --config "$dir/config.toml"
	for ((i = 0; i < 200; i++)); do
		if ! bg_running "$name"; then
			it_log "$name exited during start"
			return 1
		fi
		if _it_socket_listening "$dir/containerd.sock" &&
			tail -c +"$from" "$log" 2>/dev/null | grep -q 'containerd successfully booted'; then
			it_log "$name serves $dir/containerd.sock"
			return 0
		fi
		sleep 0.1
	done
	it_log "$name not ready after 20s"
	return 1
}

start_containerd() {
	[ -n "${1:-}" ] || { echo "usage: start_containerd DIR [REGISTRY_HOSTPORT...]" >&2; return 2; }
	start_containerd_named containerd "$@"
}

restart_containerd() {
	local dir=${1:-${CONTAINERD_DIR:-}}
	if [ -z "$dir" ] || [ ! -f "$dir/config.toml" ]; then
		echo "restart_containerd: no containerd config in '$dir'" >&2
		return 2
	fi
	if bg_running containerd; then
		stop_bg containerd 10
	fi
	_containerd_start_named containerd "$dir"
}

# Prints "PID NAMESPACE ID" for every runc shim whose -address is DIR's socket. The shim
# runs as `containerd-shim-runc-v2 -namespace NS -id ID -address ADDR` (the start
# helper adds -publish-binary and `start`; it exits at once and is skipped here).
_containerd_shims() {
	local dir=$1
	# One grep over every command line narrows the scan to processes that mention our
	# socket (grep exits 2 when a process vanished while it read: expected here).
	{ grep -lsaF -- "$dir/containerd.sock" /proc/[0-9]*/cmdline 2>/dev/null || true; } |
		while read -r f; do
			_containerd_shim_of "${f%/cmdline}" "$dir/containerd.sock"
		done
	return 0
}

# Prints "PID NAMESPACE ID" if /proc/PID (argument 1) is a runc shim daemon serving the
# containerd socket SOCK (argument 2), nothing otherwise.
_containerd_shim_of() {
	local p=$1 sock=$2
	# The process may be gone by now (grep itself matched): no output, no error.
	{ tr '\0' '\n' <"$p/cmdline" || true; } 2>/dev/null |
		awk -v sock="$sock" -v pid="${p#/proc/}" '
			NR == 1 { if ($0 !~ /containerd-shim/) exit }
			prev == "-namespace" { ns = $0 }
			prev == "-id" { id = $0 }
			prev == "-address" { addr = $0 }
			$0 == "start" || $0 == "delete" { helper = 1 }
			{ prev = $0 }
			END { if (addr == sock && !helper && id != "") print pid, ns, id }'
}

containerd_shim_pids() {
	_containerd_shims "$1" | cut -d' ' -f1
}

# sha256 of "ADDRESS/NAMESPACE/ID", the name containerd 1.6 gives the shim's socket.
_containerd_shim_socket() {
	printf '%s' "$1/$2/$3" | sha256sum | cut -d' ' -f1 | sed 's|^|/run/containerd/s/|'
}

containerd_cleanup() {
	local dir=$1 root ns id pid
	[ -d "$dir" ] || return 0
	# Remember which shims served us, for the shim sockets (post step).
	_containerd_shims "$dir" | while read -r pid ns id; do
		grep -qx "$ns $id" "$dir/shims" 2>/dev/null || echo "$ns $id" >>"$dir/shims"
	done
	# Containers first: `runc delete --force` kills the container's processes. By
	# container ID under our private runc root, never by process name.
	for root in "$dir"/runc/*/; do
		[ -d "$root" ] || continue
		for id in $(runc --root "$root" list -q 2>/dev/null); do
			it_log "runc delete --force $id (root $root)"
			runc --root "$root" delete --force "$id" >/dev/null 2>&1 ||
				it_log "runc delete $id failed"
		done
	done
	for pid in $(containerd_shim_pids "$dir"); do
		it_log "stopping shim pid $pid"
		stop_pid "$pid" 3
	done
}

containerd_cleanup_post() {
	local dir=$1 ns id s
	[ -d "$dir" ] || return 0
	umount_under "$dir" || it_log "mounts left under $dir"
	if [ -f "$dir/shims" ]; then
		while read -r ns id; do
			s=$(_containerd_shim_socket "$dir/containerd.sock" "$ns" "$id")
			[ -e "$s" ] && rm -f "$s" && it_log "removed stale shim socket $s"
		done <"$dir/shims"
	fi
	return 0
}

start_containerd_named() {
	local name=$1 dir=$2 hp sandbox
	if [ -z "$name" ] || [ -z "$dir" ]; then
		echo "usage: start_containerd_named NAME DIR [REGISTRY_HOSTPORT...]" >&2
		return 2
	fi
	shift 2
	mkdir -p "$dir/root" "$dir/state" "$dir/opt" "$dir/runc" "$dir/cni" "$dir/certs.d"
	dir=$(cd "$dir" && pwd)
	for hp in "$@"; do
		containerd_add_registry "$dir" "$hp"
	done
	sandbox=${PINLET_SANDBOX_IMAGE:-${1:-127.0.0.1:0}/tiny/pause:v1}
	_containerd_write_config "$dir" "$sandbox"
	CONTAINERD_DIR=$dir
	CONTAINERD_SOCK=$dir/containerd.sock
	CONTAINERD_ENDPOINT=unix://$dir/containerd.sock
	export CONTAINERD_DIR CONTAINERD_SOCK CONTAINERD_ENDPOINT
	# Registered before the start so a half-started instance is cleaned up too.
	on_cleanup pre containerd_cleanup "$dir"
	on_cleanup post containerd_cleanup_post "$dir"
	_containerd_start_named "$name" "$dir"
}
