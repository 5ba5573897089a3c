# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Tiny container images for integration tests, built without Docker or network access,
# and pushed to a local docker-registry with skopeo. Source this file; it only defines
# functions (no side effects at source time).
#
#   build_oci_image OUTDIR NAME SEED        single-platform OCI image (one layer holding
#                                           /seed.txt with SEED) in an OCI layout OUTDIR
#   build_pause_image OUTDIR NAME [BINARY]  OCI image whose only file is a static /pause
#                                           (built with build_pause_binary if not given)
#   build_rootfs_image OUTDIR NAME ROOTFS CONFIG
#                                           single-platform OCI image of the directory
#                                           ROOTFS (one layer, owners 0:0, modes kept, so
#                                           a setuid bit survives); CONFIG is the image
#                                           config's "config" object as JSON, e.g.
#                                           '{"Cmd":["sh"],"Env":["PATH=/bin"],"User":"1002"}'
#   build_oci_index OUTDIR NAME SEED        OCI index with two platforms (linux/amd64 and
#                                           linux/arm64), each a tiny image as above
#   build_pause_binary OUT                  gcc -static -Os -s of a program that sleeps
#                                           until SIGTERM/SIGINT and exits 0
#   build_app_images DIR MARKER [VARIANT...]
#                                           from one static pause binary DIR/pause.bin:
#                                           DIR/pause (the sandbox image) and, for each
#                                           VARIANT (default: app1 app2), DIR/VARIANT
#                                           whose binary ends in a line "MARKER-VARIANT"
#                                           (its own layer, config and digest). Needs
#                                           common.sh: a failure is it_fail
#   layout_digest OUTDIR                    digest of the top descriptor of a layout (the
#                                           manifest or index digest a pushed tag gets
#                                           with --preserve-digests)
#   push_image LAYOUT REGISTRY REPO:TAG [skopeo copy args...]
#                                           push the layout's single image. Defaults:
#                                           --preserve-digests and --all; without any TLS
#                                           argument --dest-tls-verify=false is added.
#                                           Pass --format v2s2 for a Docker schema2 image
#                                           (then the digest differs from the layout's;
#                                           read it back with registry_digest).
#   registry_digest REGISTRY REPO:TAG [skopeo inspect args...]
#                                           sha256 of `skopeo inspect --raw` (the digest a
#                                           client must resolve the tag to)
#   sign_push_image KEY DIGEST IDENTITY WORKDIR REGISTRY REPO [PAYLOAD_DIGEST]
#                                           a cosign-format signature of DIGEST for the
#                                           repository IDENTITY, by $PINLET_IT_SIGN
#                                           (verify/sign.c) with the private key KEY, as
#                                           an OCI layout in WORKDIR, pushed to
#                                           REGISTRY/REPO:sha256-<hex>.sig; sets SIG_TAG.
#                                           PAYLOAD_DIGEST: sign a payload naming another
#                                           digest
#
# Every image is deterministic: the same SEED gives the same digests (tar with sorted
# names, fixed mtime and owners; gzip -n; JSON written byte for byte here).

# Internal: sha256 hex of a file.
_img_sha256() { sha256sum "$1" | cut -d' ' -f1; }

# Internal: move FILE into LAYOUT/blobs/sha256/<hex>, print "<hex> <size>".
_img_add_blob() {
	local layout=$1 file=$2 hex size
	hex=$(_img_sha256 "$file")
	size=$(stat -c %s "$file")
	mkdir -p "$layout/blobs/sha256"
	mv -f "$file" "$layout/blobs/sha256/$hex"
	echo "$hex $size"
}

# The image config every tiny image of this file runs: the static /pause.
_img_pause_config='{"Entrypoint":["/pause"],"Env":["PATH=/"]}'

# Internal: _img_build_manifest LAYOUT ROOTFS_DIR ARCH CONFIG_JSON
# Builds layer + config + manifest blobs from ROOTFS_DIR; CONFIG_JSON is the image config's
# "config" object. Prints "<hex> <size>" of the manifest.
_img_build_manifest() {
	local layout=$1 rootfs=$2 arch=$3 config=$4
	local tmp layer_hex layer_size diff_id cfg_hex cfg_size
	tmp=$(mktemp -d /tmp/pinlet-img-XXXXXX) || return 1
	tar --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner --format=gnu \
		-C "$rootfs" -cf "$tmp/layer.tar" . || { rm -rf "$tmp"; return 1; }
	diff_id=$(_img_sha256 "$tmp/layer.tar")
	gzip -n -9 -c "$tmp/layer.tar" >"$tmp/layer.tar.gz" || { rm -rf "$tmp"; return 1; }
	read -r layer_hex layer_size < <(_img_add_blob "$layout" "$tmp/layer.tar.gz")
	printf '{"architecture":"%s","config":%s,"created":"1970-01-01T00:00:00Z","os":"linux","rootfs":{"diff_ids":["sha256:%s"],"type":"layers"}}' \
		"$arch" "$config" "$diff_id" >"$tmp/config.json"
	read -r cfg_hex cfg_size < <(_img_add_blob "$layout" "$tmp/config.json")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
		"$cfg_hex" "$cfg_size" "$layer_hex" "$layer_size" >"$tmp/manifest.json"
	_img_add_blob "$layout" "$tmp/manifest.json"
	rm -rf "$tmp"
}

# Internal: _img_write_index LAYOUT NAME MEDIATYPE HEX SIZE
_img_write_index() {
	local layout=$1 name=$2 mt=$3 hex=$4 size=$5
	printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
		"$mt" "$hex" "$size" "$name" >"$layout/index.json"
}

_img_host_arch() {
	case $(uname -m) in
	x86_64) echo amd64 ;;
	aarch64) echo arm64 ;;
	*) uname -m ;;
	esac
}

build_oci_image() {
	local out=$1 name=$2 seed=$3 rootfs rc
	[ $# -eq 3 ] || { echo "usage: build_oci_image OUTDIR NAME SEED" >&2; return 2; }
	rootfs=$(mktemp -d /tmp/pinlet-rootfs-XXXXXX) || return 1
	printf '%s\n' "$seed" >"$rootfs/seed.txt"
	build_rootfs_image "$out" "$name" "$rootfs" "$_img_pause_config"
	rc=$?
	rm -rf "$rootfs"
	return $rc
}

build_rootfs_image() {
	local out=$1 name=$2 rootfs=$3 config=$4 hex size
	[ $# -eq 4 ] || { echo "usage: build_rootfs_image OUTDIR NAME ROOTFS CONFIG" >&2; return 2; }
	rm -rf "$out" && mkdir -p "$out" || return 1
	read -r hex size < <(_img_build_manifest "$out" "$rootfs" "$(_img_host_arch)" "$config")
	[ -n "$hex" ] || return 1
	_img_write_index "$out" "$name" application/vnd.oci.image.manifest.v1+json "$hex" "$size"
}

build_pause_binary() {
	local out=$1 src
	[ $# -eq 1 ] || { echo "usage: build_pause_binary OUT" >&2; return 2; }
	src=$(mktemp /tmp/pinlet-pause-XXXXXX.c) || return 1
	cat >"$src" <<'EOF'
/* Sleeps until SIGTERM or SIGINT, then exits 0: a pause container and a workload.
 * The signals stay blocked except inside sigsuspend(), so one arriving between the
 * check and the wait is not lost (as PID 1 of its namespace nothing else would end it). */
#include <signal.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }
int main(void)
{
        struct sigaction sa = {0};
        sigset_t block, wait;
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGINT);
        sigprocmask(SIG_BLOCK, &block, &wait);
        sigdelset(&wait, SIGTERM);
        sigdelset(&wait, SIGINT);
        sa.sa_handler = on_signal;
        sigaction(SIGTERM, &sa, 0);
        sigaction(SIGINT, &sa, 0);
        while (!stop)
                sigsuspend(&wait);
        return 0;
}
EOF
	gcc -static -Os -s -o "$out" "$src"
	local rc=$?
	rm -f "$src"
	return $rc
}

build_pause_image() {
	local out=$1 name=$2 bin=${3:-} rootfs rc
	[ $# -ge 2 ] || { echo "usage: build_pause_image OUTDIR NAME [BINARY]" >&2; return 2; }
	rootfs=$(mktemp -d /tmp/pinlet-rootfs-XXXXXX) || return 1
	if [ -n "$bin" ]; then
		cp "$bin" "$rootfs/pause" || { rm -rf "$rootfs"; return 1; }
	else
		build_pause_binary "$rootfs/pause" || { rm -rf "$rootfs"; return 1; }
	fi
	chmod 0755 "$rootfs/pause"
	touch -d @0 "$rootfs/pause"
	build_rootfs_image "$out" "$name" "$rootfs" "$_img_pause_config"
	rc=$?
	rm -rf "$rootfs"
	return $rc
}

build_app_images() {
	local dir=$1 marker=$2 v
	shift 2
	[ $# -gt 0 ] || set -- app1 app2
	mkdir -p "$dir"
	build_pause_binary "$dir/pause.bin" || it_fail "build_pause_binary"
	for v in "$@"; do
		cp "$dir/pause.bin" "$dir/$v.bin"
		printf '\n%s-%s\n' "$marker" "$v" >>"$dir/$v.bin"
		build_pause_image "$dir/$v" "$v" "$dir/$v.bin" || it_fail "image $v"
	done
	build_pause_image "$dir/pause" pause "$dir/pause.bin" || it_fail "pause image"
}

build_oci_index() {
	local out=$1 name=$2 seed=$3 rootfs arch hex size entries="" tmp ihex isize
	[ $# -eq 3 ] || { echo "usage: build_oci_index OUTDIR NAME SEED" >&2; return 2; }
	rm -rf "$out" && mkdir -p "$out" || return 1
	for arch in amd64 arm64; do
		rootfs=$(mktemp -d /tmp/pinlet-rootfs-XXXXXX) || return 1
		printf '%s %s\n' "$seed" "$arch" >"$rootfs/seed.txt"
		read -r hex size < <(_img_build_manifest "$out" "$rootfs" "$arch" "$_img_pause_config")
		rm -rf "$rootfs"
		[ -n "$hex" ] || return 1
		[ -z "$entries" ] || entries="$entries,"
		entries="$entries{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$hex\",\"size\":$size,\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"}}"
	done
	tmp=$(mktemp /tmp/pinlet-index-XXXXXX) || return 1
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' \
		"$entries" >"$tmp"
	read -r ihex isize < <(_img_add_blob "$out" "$tmp")
	_img_write_index "$out" "$name" application/vnd.oci.image.index.v1+json "$ihex" "$isize"
}

layout_digest() {
	jq -r '.manifests[0].digest' "$1/index.json"
}

push_image() {
	local layout=$1 registry=$2 repotag=$3 tls=0 fmt=0 a
	[ $# -ge 3 ] || { echo "usage: push_image LAYOUT REGISTRY REPO:TAG [skopeo args]" >&2; return 2; }
	shift 3
	for a in "$@"; do
		case $a in
		--dest-tls-verify* | --dest-cert-dir*) tls=1 ;;
		--format* | -f) fmt=1 ;;
		esac
	done
	local args=(--insecure-policy copy --quiet --all)
	[ $tls -eq 1 ] || args+=(--dest-tls-verify=false)
	# --preserve-digests refuses a format conversion; only ask for it without --format.
	[ $fmt -eq 1 ] || args+=(--preserve-digests)
	skopeo "${args[@]}" "$@" "oci:$layout" "docker://$registry/$repotag"
}

registry_digest() {
	local registry=$1 repotag=$2 tls=0 a
	shift 2
	for a in "$@"; do
		case $a in --tls-verify* | --cert-dir*) tls=1 ;; esac
	done
	local args=(--insecure-policy inspect --raw)
	[ $tls -eq 1 ] || args+=(--tls-verify=false)
	echo "sha256:$(skopeo "${args[@]}" "$@" "docker://$registry/$repotag" | sha256sum | cut -d' ' -f1)"
}

sign_push_image() {
	local key=$1 digest=$2 identity=$3 work=$4 registry=$5 repo=$6 tag
	[ $# -ge 6 ] || {
		echo "usage: sign_push_image KEY DIGEST IDENTITY WORKDIR REGISTRY REPO [PAYLOAD_DIGEST]" >&2
		return 2
	}
	tag=$("$PINLET_IT_SIGN" "$key" "$digest" "$identity" "$work" ${7:+"$7"}) || return 1
	push_image "$work" "$registry" "$repo:$tag" || return 1
	# shellcheck disable=SC2034 # read by the caller
	SIG_TAG=$tag
}
