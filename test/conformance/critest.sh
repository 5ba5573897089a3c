#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# CRI conformance through pinlet (issue 9, "Proof, on real components"), by hand: not
# part of CI or ctest, because it needs crictl and critest, which are not packaged for
# Debian and which this script never builds or downloads.
#
#   test/conformance/critest.sh CRICTL CRITEST [PINLET]
#
# CRICTL and CRITEST: cri-tools v1.26.1 binaries you built yourself (also taken from the
# environment variables of those names). PINLET: the pinlet binary (default $PINLET_BIN,
# else build/main/src/pinlet of this checkout).
#
# Building cri-tools v1.26.1 without network access: the release vendors every Go
# dependency, and Debian 12's Go 1.19 (package golang-go) builds it. From a copy of the
# repository at tag v1.26.1 (outside this repository; never commit it):
#     export GOFLAGS=-mod=vendor GOPROXY=off CGO_ENABLED=0
#     go build -o /tmp/cri-bin/crictl ./cmd/crictl
#     go test -c -o /tmp/cri-bin/critest ./cmd/critest     # critest is a test binary
# (docs/CONFORMANCE.md has the details and the results of the last run).
#
# What it does, in a private directory /tmp/pinlet-it-XXXX, loopback only:
#   - a docker-registry holding stand-ins for every image critest pulls, built here from
#     Debian's static busybox and two small C programs (webserver.c, nonewprivs.c), under
#     the repository names critest uses (gcr.io/k8s-staging-cri-tools/..., registry.k8s.io/
#     e2e-test-images/...), plus the images of the crictl comparison;
#   - two containerd instances, D (asked directly) and P (behind pinlet), each with a CNI
#     bridge network of its own (bridge + host-local + portmap) and the same registry host
#     directory: hosts.toml files that send gcr.io, registry.k8s.io and docker.io to the
#     loopback registry as a mirror (the upstream servers stay unreachable: air-gapped);
#   - pinlet serve in mode enforce in front of P, with hosts_dir = P's config_path, so it
#     resolves every tag through the same mirror containerd pulls from.
# Then:
#   (a) crictl: pull a tag, pull three tags of one image, move a tag in the registry and
#       pull it again, each by tag, against D directly and against pinlet; after each step
#       `crictl images --digests --no-trunc` and `crictl inspecti` of every reference must
#       print the same on both sides;
#   (b) critest against D directly, then against pinlet (both endpoints), ginkgo JSON
#       reports saved; the outcome of every spec is compared. The script fails when a spec
#       passes directly but not through pinlet (or the other way round).
# A summary is printed at the end; results (reports, per-spec tables, crictl outputs) are
# copied to $PINLET_CONFORMANCE_OUT (default ./conformance-results) before the private
# directory is removed. Every process started is stopped by PID on exit, also on failure;
# the CNI bridges are deleted by name (they are named for this run).
#
# `packaging/install-deps.sh conformance` installs what it needs from Debian.
# Needs root, containerd (1.6), runc, docker-registry, skopeo, jq, gcc, busybox-static,
# containernetworking-plugins (in /usr/lib/cni), iptables, ipcmk/ipcrm. Host ports
# 12000-12003 must be free (critest's port-mapping specs use them). PINLET_IT_KEEP=1
# keeps the private directory. CRITEST_ARGS: extra critest arguments (e.g.
# --ginkgo.focus=...). About 4 minutes on 2 cores (two critest runs of about 85 s each).
# shellcheck disable=SC2016 source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lib=$top/test/integration/lib
# shellcheck source=../integration/lib/common.sh
. "$lib/common.sh"
# shellcheck source=../integration/lib/containerd.sh
. "$lib/containerd.sh"
# shellcheck source=../integration/lib/images.sh
. "$lib/images.sh"
# shellcheck source=../integration/lib/pinlet.sh
. "$lib/pinlet.sh"

CRICTL=${1:-${CRICTL:-}}
CRITEST=${2:-${CRITEST:-}}
PINLET_BIN=${3:-${PINLET_BIN:-$top/build/main/src/pinlet}}
out_dir=${PINLET_CONFORMANCE_OUT:-$PWD/conformance-results}
export PINLET_BIN

die() { echo "critest.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (containerd, runc, CNI)"
for v in CRICTL CRITEST PINLET_BIN; do
	[ -x "${!v}" ] || die "$v ('${!v}') is not an executable (usage: critest.sh CRICTL CRITEST [PINLET])"
done
for tool in containerd containerd-shim-runc-v2 runc docker-registry skopeo jq gcc iptables ip \
	ipcmk ipcrm; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done
for p in bridge host-local portmap loopback; do
	[ -x "/usr/lib/cni/$p" ] || die "/usr/lib/cni/$p missing (apt-get install containernetworking-plugins)"
done
busybox=$(command -v busybox) || die "busybox is not installed (apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox is dynamically linked: install busybox-static"
fi
for port in 12000 12001 12002 12003; do
	[ -z "$(ss -Htan "( sport = :$port )" 2>/dev/null)" ] || die "host port $port is in use"
done
CRICTL=$(realpath "$CRICTL")
CRITEST=$(realpath "$CRITEST")
PINLET_BIN=$(realpath "$PINLET_BIN")
mkdir -p "$out_dir"
out_dir=$(realpath "$out_dir")

it_setup
W=$PINLET_IT_DIR
# Bridges are named for this run, so parallel runs and the host's own do not collide.
run_id=$(printf '%s' "$W" | sha256sum | cut -c1-6)
on_cleanup post delete_bridges

delete_bridges() {
	local br
	for br in "pcD$run_id" "pcP$run_id"; do
		ip link show "$br" >/dev/null 2>&1 || continue
		ip link del "$br" && it_log "deleted bridge $br"
	done
}

# The portmap plugin creates shared nat chains (CNI-HOSTPORT-*) on first use and leaves
# them when the last mapping is gone. When this run created them and they hold no mapping,
# they are removed again; otherwise they are left alone (another user's).
cni_chains_before=0
iptables -t nat -S CNI-HOSTPORT-DNAT >/dev/null 2>&1 && cni_chains_before=1
delete_cni_chains() {
	local c
	[ "$cni_chains_before" = 0 ] || return 0
	[ "$(iptables -t nat -S CNI-HOSTPORT-DNAT 2>/dev/null | wc -l)" = 1 ] || return 0
	iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
	iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
	iptables -t nat -D POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" \
		-j CNI-HOSTPORT-MASQ
	for c in CNI-HOSTPORT-DNAT CNI-HOSTPORT-MASQ CNI-HOSTPORT-SETMARK; do
		iptables -t nat -F "$c" && iptables -t nat -X "$c"
	done
	it_log "removed the CNI-HOSTPORT-* nat chains this run created"
}
on_cleanup post delete_cni_chains

# Results survive the private directory.
save_results() {
	[ -d "$W/results" ] && cp -r "$W/results/." "$out_dir/"
	return 0
}
on_cleanup pre save_results
mkdir -p "$W/results"

# ---- the registry and the stand-in images ---------------------------------------------

start_registry "$W/registry" || it_fail "docker-registry"
REG=$REGISTRY_ADDR

it_log "building stand-in images"
gcc -static -Os -s -o "$W/webserver" "$here/webserver.c" || it_fail "gcc webserver.c"
gcc -static -Os -s -o "$W/nonewprivs" "$here/nonewprivs.c" || it_fail "gcc nonewprivs.c"
build_pause_image "$W/img/pause" pause || it_fail "pause image"
push_image "$W/img/pause" "$REG" tiny/pause:v1 || it_fail "push pause"

bb_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# rootfs DIR [EXTRA_PASSWD_LINE EXTRA_GROUP_LINE]: the busybox image's file system: every
# applet a hard link to /bin/busybox as upstream (a symlink would make critest's MaskedPaths
# spec mask busybox itself), the users the upstream image has, and shell stand-ins for the
# two applets Debian's busybox-static lacks (pgrep, ipcs -m) in the form critest reads.
rootfs() {
	local d=$1 a
	rm -rf "$d" && mkdir -p "$d/bin" "$d/etc" "$d/tmp" "$d/var/run" "$d/root" \
		"$d/usr/sbin" "$d/usr/local/bin" || return 1
	chmod 1777 "$d/tmp"
	cp "$busybox" "$d/bin/busybox"
	for a in $("$busybox" --list); do
		[ "$a" = busybox ] || ln -f "$d/bin/busybox" "$d/bin/$a"
	done
	cat >"$d/bin/pgrep" <<'SH'
#!/bin/sh
# pgrep NAME: the PIDs whose command name is NAME; status 1 when there is none.
rc=1
for p in /proc/[0-9]*; do
	read -r comm <"$p/comm" 2>/dev/null || continue
	[ "$comm" = "$1" ] && echo "${p#/proc/}" && rc=0
done
exit $rc
SH
	cat >"$d/bin/ipcs" <<'SH'
#!/bin/sh
# ipcs -m: key and shmid of each System V shared memory segment of this IPC namespace.
awk 'NR > 1 { printf "0x%08x %s\n", $1, $2 }' /proc/sysvipc/shm
SH
	chmod 0755 "$d/bin/pgrep" "$d/bin/ipcs"
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'daemon:x:1:1:daemon:/usr/sbin:/bin/false' \
		'www-data:x:33:33:www-data:/var/www:/bin/false' \
		'nobody:x:65534:65534:nobody:/home:/bin/false' ${2:+"$2"} >"$d/etc/passwd"
	printf '%s\n' 'root:x:0:' 'daemon:x:1:' 'www-data:x:33:' 'nogroup:x:65534:' \
		${3:+"$3"} >"$d/etc/group"
}
# image NAME CONFIG ROOTFS REPO:TAG...: build once, push under every name (on the loopback
# registry the host part is dropped: the mirror is asked for the path).
image() {
	local name=$1 config=$2 fs=$3 ref
	shift 3
	build_rootfs_image "$W/img/$name" "$name" "$fs" "$config" || it_fail "build $name"
	for ref in "$@"; do
		push_image "$W/img/$name" "$REG" "$ref" || it_fail "push $ref"
	done
}
bbcfg() { printf '{"Cmd":%s,"Env":["PATH=%s"]%s}' "$1" "$bb_path" "${2:+,$2}"; }

s=k8s-staging-cri-tools
e=e2e-test-images
rootfs "$W/fs/busybox"
image busybox "$(bbcfg '["sh"]')" "$W/fs/busybox" "$e/busybox:1.29-2"
for u in "test-image-user-uid 1002" "test-image-user-username www-data" \
	"test-image-user-uid-group 1003:1004" "test-image-user-username-group www-data:1004"; do
	read -r name user <<<"$u"
	image "$name" "$(bbcfg '["sh"]' "\"User\":\"$user\"")" "$W/fs/busybox" "$s/$name:latest"
done
for t in test-image-latest:latest test-image-tag:test test-image-tag:all \
	test-image-digest:latest test-image-1:latest test-image-2:latest test-image-3:latest; do
	rootfs "$W/fs/$t"
	echo "$t" >"$W/fs/$t/${t%%:*}"
	image "${t/:/-}" "$(bbcfg '["sh"]')" "$W/fs/$t" "$s/$t"
done
rootfs "$W/fs/tags"
echo tags >"$W/fs/tags/test-image-tags"
image test-image-tags "$(bbcfg '["sh"]')" "$W/fs/tags" "$s/test-image-tags:1" \
	"$s/test-image-tags:2" "$s/test-image-tags:3"
rootfs "$W/fs/group" 'default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh' \
	'group-defined-in-image:x:50000:default-user'
image test-image-predefined-group "$(bbcfg '["sh"]' '"User":"1000"')" "$W/fs/group" \
	"$s/test-image-predefined-group:latest"
rootfs "$W/fs/web"
cp "$W/webserver" "$W/fs/web/usr/sbin/nginx"
ln "$W/fs/web/usr/sbin/nginx" "$W/fs/web/usr/local/bin/httpd"
image nginx "$(bbcfg '["nginx","-g","daemon off; master process"]')" "$W/fs/web" "$e/nginx:1.14-2"
image httpd "$(bbcfg '["httpd","-D","FOREGROUND"]')" "$W/fs/web" "$e/httpd:2.4.39-4"
image hostnet-nginx "$(bbcfg '["nginx","--port=12003"]')" "$W/fs/web" \
	"$s/hostnet-nginx-$(_img_host_arch):latest"
rootfs "$W/fs/nnp"
cp "$W/nonewprivs" "$W/fs/nnp/usr/local/bin/nnp"
chmod 4755 "$W/fs/nnp/usr/local/bin/nnp"
image nonewprivs "$(bbcfg '["/usr/local/bin/nnp"]')" "$W/fs/nnp" "$e/nonewprivs:1.3"
# For the crictl comparison: a Docker Hub short name and three tags of one image.
build_oci_image "$W/img/app1" app1 "conformance app one" || it_fail "build app1"
build_oci_image "$W/img/app2" app2 "conformance app two" || it_fail "build app2"
push_image "$W/img/app1" "$REG" pinlet-conformance/app:v1 || it_fail "push app:v1"
for t in 1 2 3; do
	push_image "$W/img/app1" "$REG" "pinlet-conformance/multi:$t" || it_fail "push multi:$t"
done
it_log "images pushed to $REG"

# ---- hosts_dir, CNI, containerd D and P, pinlet --------------------------------------

# cni_conf DIR NAME BRIDGE SUBNET
cni_conf() {
	mkdir -p "$1/cni" "$1/cni-ipam"
	cat >"$1/cni/10-conformance.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "$2", "plugins": [
  {"type": "bridge", "bridge": "$3", "isGateway": true, "ipMasq": false,
   "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$1/cni-ipam",
            "ranges": [[{"subnet": "$4"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
}
# A /24 in 10.0.0.0/8 that no route of this host covers yet.
free_subnet() {
	local net
	for _ in $(seq 1 200); do
		net=10.$((100 + RANDOM % 150)).$((RANDOM % 250)).0
		ip route show | grep -q "^${net%.0}\." && continue
		ip -4 route get "$net" 2>/dev/null | grep -q " dev pc" && continue
		echo "$net/24"
		return 0
	done
	return 1
}
for side in D P; do
	dir=$W/containerd-$side
	mkdir -p "$dir"
	# The loopback registry as the mirror of each upstream critest pulls from, tried
	# first; the upstream servers themselves are unreachable here.
	containerd_add_mirror "$dir/certs.d" gcr.io https://gcr.io "http://$REG"
	containerd_add_mirror "$dir/certs.d" registry.k8s.io https://registry.k8s.io "http://$REG"
	containerd_add_mirror "$dir/certs.d" docker.io https://registry-1.docker.io "http://$REG"
	subnet=$(free_subnet) || it_fail "no free /24 for the CNI bridge"
	cni_conf "$dir" "conformance-$side" "pc$side$run_id" "$subnet"
	start_containerd_named "containerd-$side" "$dir" "$REG" || it_fail "containerd $side"
done
D_EP=unix://$W/containerd-D/containerd.sock
P_BACKEND=unix://$W/containerd-P/containerd.sock

mkdir -p "$W/pinlet"
cat >"$W/pinlet/config.yaml" <<EOF
mode: enforce
on_failure: closed
hosts_dir: "$W/containerd-P/certs.d"
cache: {ttl: 1s, negative_ttl: 1s}
credentials: {docker_config: ["$W/no-such-docker-config.json"]}
EOF
start_pinlet "$W/pinlet" "$P_BACKEND" || it_fail "pinlet"
P_EP=$PINLET_ENDPOINT

crictl_d() { "$CRICTL" --runtime-endpoint "$D_EP" --image-endpoint "$D_EP" --timeout 60s "$@"; }
crictl_p() { "$CRICTL" --runtime-endpoint "$P_EP" --image-endpoint "$P_EP" --timeout 60s "$@"; }
wait_until 10 crictl_p version >/dev/null 2>&1 || it_fail "no CRI Version through pinlet"

# ---- (a) crictl through pinlet against crictl directly ----------------------------------

A=$W/results/crictl
mkdir -p "$A"
a_diffs=0
# compare STEP REF...: `crictl images` and `crictl inspecti REF` on both sides.
compare() {
	local step=$1 ref n=0
	shift
	crictl_d images --digests --no-trunc >"$A/$step.images.direct"
	crictl_p images --digests --no-trunc >"$A/$step.images.pinlet"
	if ! diff -u "$A/$step.images.direct" "$A/$step.images.pinlet" >"$A/$step.images.diff"; then
		it_log "(a) $step: crictl images differ:"
		cat "$A/$step.images.diff" >&2
		a_diffs=$((a_diffs + 1))
	fi
	for ref in "$@"; do
		n=$((n + 1))
		crictl_d inspecti "$ref" >"$A/$step.inspecti$n.direct" 2>&1 || true
		crictl_p inspecti "$ref" >"$A/$step.inspecti$n.pinlet" 2>&1 || true
		if ! diff -u "$A/$step.inspecti$n.direct" "$A/$step.inspecti$n.pinlet" \
			>"$A/$step.inspecti$n.diff"; then
			it_log "(a) $step: crictl inspecti $ref differs:"
			cat "$A/$step.inspecti$n.diff" >&2
			a_diffs=$((a_diffs + 1))
		fi
	done
	it_log "(a) $step: compared crictl images and $n x crictl inspecti"
}
pull_both() {
	crictl_d pull "$1" >/dev/null || it_fail "crictl pull $1 (direct)"
	crictl_p pull "$1" >/dev/null || it_fail "crictl pull $1 (through pinlet)"
}
APP=pinlet-conformance/app:v1
MULTI=registry.k8s.io/pinlet-conformance/multi
D1=$(registry_digest "$REG" "$APP")
pull_both "$APP"
compare 1-tag "$APP" "docker.io/$APP" "docker.io/pinlet-conformance/app@$D1"
for t in 1 2 3; do
	pull_both "$MULTI:$t"
done
compare 2-three-tags "$MULTI:1" "$MULTI:2" "$MULTI:3" "$MULTI@$D1" "$APP"
push_image "$W/img/app2" "$REG" "$APP" || it_fail "push app2 as $APP"
D2=$(registry_digest "$REG" "$APP")
[ "$D2" != "$D1" ] || it_fail "the tag did not move"
# pinlet's cache (ttl 1 s) answers the old digest until it expires: wait until pinlet
# resolves the tag to the new digest, which P lacks.
wait_until 10 bash -c '! "$0" --runtime-endpoint "$1" --image-endpoint "$1" inspecti "$2" \
	>/dev/null 2>&1' "$CRICTL" "$P_EP" "$APP" || it_fail "pinlet still resolves $APP to $D1"
pull_both "$APP"
compare 3-moved "$APP" "docker.io/pinlet-conformance/app@$D1" \
	"docker.io/pinlet-conformance/app@$D2" "$MULTI:1"
# Remove what (a) pulled so critest starts from the same state on both sides.
for side in d p; do
	"crictl_$side" rmi "docker.io/pinlet-conformance/app@$D1" "docker.io/pinlet-conformance/app@$D2" \
		>/dev/null || it_fail "crictl rmi ($side)"
done

# ---- (b) critest directly and through pinlet ---------------------------------------------

B=$W/results/critest
mkdir -p "$B"
# critest's HostIpc specs create a 1 MiB System V shared memory segment on the host
# (`ipcmk -M 1048576`) and never remove it: remove the segments of that size, attached
# nowhere, that appeared while critest ran.
shm_ids() { awk 'NR > 1 && $4 == 1048576 && $7 == 0 { print $2 }' /proc/sysvipc/shm | sort; }
shm_cleanup() {
	local id
	for id in $(comm -13 "$1" <(shm_ids)); do
		ipcrm -m "$id" && it_log "removed shared memory segment $id left by critest"
	done
}
# run_critest SIDE ENDPOINT: critest's own exit status is not ours (specs fail on both
# sides); the JSON report is what is compared.
run_critest() {
	local side=$1 ep=$2 rc=0 extra=()
	read -ra extra <<<"${CRITEST_ARGS:-}"
	it_log "(b) critest against $side ($ep)"
	shm_ids >"$B/$side.shm-before"
	(cd "$B" && "$CRITEST" --runtime-endpoint "$ep" --image-endpoint "$ep" \
		--ginkgo.no-color --ginkgo.json-report="$B/$side.json" "${extra[@]}" \
		>"$B/$side.log" 2>&1) || rc=$?
	it_log "(b) critest against $side: exit $rc, log $B/$side.log"
	shm_cleanup "$B/$side.shm-before"
	[ -s "$B/$side.json" ] || it_fail "critest wrote no report for $side (see $B/$side.log)"
	# One line per spec: state TAB full name (container texts and the It text).
	jq -r '.[].SpecReports[] | select(.LeafNodeType == "It") |
		[.State, ((.ContainerHierarchyTexts + [.LeafNodeText]) | join(" "))] | @tsv' \
		"$B/$side.json" | sort -t "$(printf '\t')" -k2 >"$B/$side.tsv"
}
run_critest direct "$D_EP"
run_critest pinlet "$P_EP"

count() { awk -F '\t' -v s="$2" '$1 == s' "$B/$1.tsv" | wc -l; }
join -t "$(printf '\t')" -1 2 -2 2 -a 1 -a 2 -e missing -o 0,1.1,2.1 \
	"$B/direct.tsv" "$B/pinlet.tsv" >"$B/compare.tsv"
awk -F '\t' '$2 != $3' "$B/compare.tsv" >"$B/differ.tsv"

# What pinlet decided during the whole run (a and b), from its audit log: per method and
# decision, and which endpoints answered the registry round trips.
cp "$PINLET_DIR/audit.jsonl" "$W/results/pinlet-audit.jsonl"
jq -r '[.method, .decision] | @tsv' "$PINLET_DIR/audit.jsonl" | sort | uniq -c \
	>"$W/results/pinlet-decisions.txt"
jq -r 'select(.source == "registry") | .endpoint' "$PINLET_DIR/audit.jsonl" | sort |
	uniq -c >"$W/results/pinlet-endpoints.txt"

summary() {
	local s
	echo "== conformance summary (pinlet $("$PINLET_BIN" --version 2>/dev/null | head -1))"
	echo "(a) crictl images / inspecti after 3 steps: $a_diffs difference(s) (outputs in $out_dir/crictl)"
	printf '(b) critest %-8s' ""
	for s in passed failed skipped pending; do printf ' %8s' "$s"; done
	echo
	for side in direct pinlet; do
		printf '    %-15s' "$side"
		for s in passed failed skipped pending; do printf ' %8s' "$(count "$side" "$s")"; done
		echo
	done
	echo "    specs whose outcome differs: $(wc -l <"$B/differ.tsv")"
	sed 's/^/      /' "$B/differ.tsv"
	echo "    pinlet's audit records (count, method, decision):"
	sed 's/^/      /' "$W/results/pinlet-decisions.txt"
	echo "    registry round trips by endpoint that answered:"
	sed 's/^/      /' "$W/results/pinlet-endpoints.txt"
	echo "    failed on both sides:"
	awk -F '\t' '$2 == "failed" && $3 == "failed" { print "      " $1 }' "$B/compare.tsv"
}
summary | tee "$W/results/summary.txt"
[ "$a_diffs" -eq 0 ] || it_fail "(a) crictl outputs differ"
[ ! -s "$B/differ.tsv" ] || it_fail "(b) specs differ between direct and pinlet"
it_log "conformance: same crictl outputs, same critest outcomes"
