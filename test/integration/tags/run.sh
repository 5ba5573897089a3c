#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The runtime's answers keep the tags, end to end: docker-registry, two containerd
# instances and `pinlet serve` (mode enforce) on loopback in a private directory.
# containerd P sits behind pinlet (it is asked for name@digest and records no tag);
# containerd D gets the same pulls BY TAG, directly. After each step the answers through
# pinlet must equal D's: ImageStatus (id, repo_tags, repo_digests) of every tag pulled, and
# ListImages (the same per image). crictl is not packaged in Debian: pinlet_it_cri asks.
#
#   1. pull a tag                       (tiny/app:v1)
#   2. three more tags of one image     (tiny/app:a, :b, :c: the same digest as v1)
#   3. a tag pulled again after it moved in the registry (v1 now a second image): v1 is
#      listed only on the new image
#   4. RemoveImage by a pinned tag through pinlet: the pinned image is gone from P, the pin
#      is forgotten (`pinlet pins`); the other tags' pins stay; D after the same RemoveImage
#      by tag agrees again.
#
# Needs root, containerd, runc, docker-registry, skopeo, jq, curl. Environment (ctest
# sets it, see ../tags.cmake): PINLET_BIN, PINLET_IT_CRI, PINLET_IT_LIB,
# PINLET_IT_FREE_PORT (optional). PINLET_IT_KEEP=1 keeps the work directory.
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lib=${PINLET_IT_LIB:-$here/../lib}
# shellcheck source=../lib/common.sh
. "$lib/common.sh"
# shellcheck source=../lib/containerd.sh
. "$lib/containerd.sh"
# shellcheck source=../lib/images.sh
. "$lib/images.sh"
# shellcheck source=../lib/pinlet.sh
. "$lib/pinlet.sh"
# shellcheck source=../lib/cri_assert.sh
. "$lib/cri_assert.sh"

it_require run.sh "containerd containerd-shim-runc-v2 runc docker-registry skopeo gcc jq curl" \
	"PINLET_BIN PINLET_IT_CRI"

it_setup
D=$PINLET_IT_DIR

# ---- helpers ---------------------------------------------------------------------------

# cri P|ENDPOINT LABEL ARGS... (lib/cri_assert.sh): one pinlet_it_cri call through pinlet
# (P) or to the direct containerd ("$DIRECT_ENDPOINT"); must answer OK; the JSON lands in
# $out.

# The second containerd ("direct"): its own directory, socket, log and start_bg name;
# cleaned up like the first (containerd.sh's steps, by its directory).
start_direct_containerd() {
	local dir=$1 from i
	mkdir -p "$dir/root" "$dir/state" "$dir/opt" "$dir/runc" "$dir/cni" "$dir/certs.d"
	dir=$(cd "$dir" && pwd)
	containerd_add_registry "$dir" "$REG"
	_containerd_write_config "$dir" "$REG/tiny/app:v1"
	DIRECT_ENDPOINT=unix://$dir/containerd.sock
	on_cleanup pre containerd_cleanup "$dir"
	on_cleanup post containerd_cleanup_post "$dir"
	from=$(($(stat -c %s "$D/logs/containerd-direct.log" 2>/dev/null || echo 0) + 1))
	start_bg containerd-direct containerd --config "$dir/config.toml"
	for ((i = 0; i < 200; i++)); do
		bg_running containerd-direct || it_fail "the direct containerd exited during start"
		if _it_socket_listening "$dir/containerd.sock" &&
			tail -c +"$from" "$D/logs/containerd-direct.log" |
			grep -q 'containerd successfully booted'; then
			return 0
		fi
		sleep 0.1
	done
	it_fail "the direct containerd is not ready after 20 s"
}

# What a client sees of one image: id, repo_tags, repo_digests.
IMAGE_VIEW='{id, repo_tags, repo_digests}'

# same_status IMAGE...: ImageStatus of each IMAGE through pinlet equals the direct one.
same_status() {
	local img p d
	for img in "$@"; do
		cri P "ImageStatus $img through pinlet" image-status "$img"
		p=$(jq -cS ".image | if . == null then null else $IMAGE_VIEW end" <<<"$out")
		cri "$DIRECT_ENDPOINT" "ImageStatus $img directly" image-status "$img"
		d=$(jq -cS ".image | if . == null then null else $IMAGE_VIEW end" <<<"$out")
		[ "$p" = "$d" ] || it_fail "ImageStatus $img: through pinlet $p, directly $d"
		it_log "ok: ImageStatus $img: $p"
	done
}

# same_list: ListImages through pinlet equals the direct one (as a set of images; each
# image's lists in the runtime's order).
same_list() {
	local p d
	cri P "ListImages through pinlet" images
	p=$(jq -cS "[.images[] | $IMAGE_VIEW] | sort_by(.id)" <<<"$out")
	cri "$DIRECT_ENDPOINT" "ListImages directly" images
	d=$(jq -cS "[.images[] | $IMAGE_VIEW] | sort_by(.id)" <<<"$out")
	[ "$p" = "$d" ] || it_fail "ListImages: through pinlet $p, directly $d"
	it_log "ok: ListImages: $p"
}

# pull_both IMAGE: PullImage by tag through pinlet and directly; the same image ID.
pull_both() {
	local p
	cri P "PullImage $1 through pinlet" pull "$1" -n default -N tags-pod -I tags-uid
	p=$(jq -r .image_ref <<<"$out")
	cri "$DIRECT_ENDPOINT" "PullImage $1 directly" pull "$1"
	[ "$p" = "$(jq -r .image_ref <<<"$out")" ] ||
		it_fail "PullImage $1: image $p through pinlet, $(jq -r .image_ref <<<"$out") directly"
}

pins_json() {
	"$PINLET_BIN" pins --json --state-dir "$PINLET_DIR/state"
}
# has_pin REF [DIGEST]: the pin store holds REF (pinned to DIGEST). jq -s: one verdict for
# all lines (jq -e alone judges only the last line's output).
has_pin() {
	pins_json | jq -s -e --arg r "$1" --arg d "${2:-}" \
		'any(.[]; .reference == $r and ($d == "" or .digest == $d))' >/dev/null
}

# ---- setup -----------------------------------------------------------------------------

build_app_images "$D/img" pinlet-tags
start_registry "$D/registry" || it_fail "registry"
REG=$REGISTRY_ADDR
for t in v1 a b c; do
	push_image "$D/img/app1" "$REG" "tiny/app:$t" || it_fail "push app1 as tiny/app:$t"
done
D1=$(registry_digest "$REG" tiny/app:v1)
it_log "pushed $REG/tiny/app:{v1,a,b,c} = $D1"

start_containerd "$D/containerd" "$REG" || it_fail "containerd"
start_direct_containerd "$D/containerd-direct"
mkdir -p "$D/pinlet"
cat >"$D/pinlet/config.yaml" <<EOF
mode: enforce
on_failure: closed
cache: {ttl: 1s, negative_ttl: 1s}
credentials: {docker_config: ["$D/no-such-docker-config.json"]}
registries:
  "$REG": {insecure: true}
EOF
start_pinlet "$D/pinlet" "$CONTAINERD_ENDPOINT" || it_fail "pinlet"
"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" wait 10 >/dev/null || it_fail "no CRI Version through pinlet"

# ---- 1. one tag --------------------------------------------------------------------------

pull_both "$REG/tiny/app:v1"
# The premise: behind pinlet, containerd itself holds no tag.
out=$("$PINLET_IT_CRI" -e "$CONTAINERD_ENDPOINT" -t 10 image-status "$REG/tiny/app@$D1")
jq -e '.image.repo_tags == []' <<<"$out" >/dev/null ||
	it_fail "containerd behind pinlet was expected to hold no tag: $out"
same_status "$REG/tiny/app:v1" "$REG/tiny/app@$D1"
same_list

# ---- 2. three more tags of one image ----------------------------------------------------

for t in a b c; do
	pull_both "$REG/tiny/app:$t"
done
same_status "$REG/tiny/app:v1" "$REG/tiny/app:a" "$REG/tiny/app:b" "$REG/tiny/app:c"
same_list
cri P "ImageStatus $REG/tiny/app:b through pinlet" image-status "$REG/tiny/app:b"
jq -e --arg r "$REG/tiny/app" '.image.repo_tags == [$r+":a", $r+":b", $r+":c", $r+":v1"]' \
	<<<"$out" >/dev/null || it_fail "four tags expected on the image: $out"

# ---- 3. the tag moves, and is pulled again ------------------------------------------------

push_image "$D/img/app2" "$REG" tiny/app:v1 || it_fail "push app2 as tiny/app:v1"
D2=$(registry_digest "$REG" tiny/app:v1)
[ "$D2" != "$D1" ] || it_fail "the tag did not move"
it_log "moved $REG/tiny/app:v1 to $D2"
# pinlet's cache (ttl 1 s) answers the old digest until it expires: wait for pinlet to
# resolve the tag to the new digest, which the node lacks.
wait_until 10 _status_absent "$REG/tiny/app:v1" ||
	it_fail "pinlet still resolves $REG/tiny/app:v1 to the old digest after 10 s"
pull_both "$REG/tiny/app:v1"
same_status "$REG/tiny/app:v1" "$REG/tiny/app:a" "$REG/tiny/app@$D1" "$REG/tiny/app@$D2"
same_list
cri P "ImageStatus of the old image" image-status "$REG/tiny/app@$D1"
jq -e --arg t "$REG/tiny/app:v1" '.image.repo_tags | index($t) == null' <<<"$out" >/dev/null ||
	it_fail "the moved tag is still listed on its old image: $out"

# ---- 4. RemoveImage by a pinned tag --------------------------------------------------------

has_pin "$REG/tiny/app:v1" "$D2" ||
	it_fail "no pin $REG/tiny/app:v1 -> $D2: $(pins_json)"
cri P "RemoveImage $REG/tiny/app:v1 through pinlet" rmi "$REG/tiny/app:v1"
out=$("$PINLET_IT_CRI" -e "$CONTAINERD_ENDPOINT" -t 10 image-status "$REG/tiny/app@$D2")
jq -e '.image == null' <<<"$out" >/dev/null ||
	it_fail "the pinned image $REG/tiny/app@$D2 is still in containerd: $out"
_pin_gone() { ! has_pin "$REG/tiny/app:v1"; }
# forgotten on a worker after the answer: normally done before the client got it
wait_until 5 _pin_gone || it_fail "the pin of $REG/tiny/app:v1 is still there: $(pins_json)"
has_pin "$REG/tiny/app:a" "$D1" ||
	it_fail "the pin of $REG/tiny/app:a went too: $(pins_json)"
cri "$DIRECT_ENDPOINT" "RemoveImage $REG/tiny/app:v1 directly" rmi "$REG/tiny/app:v1"
same_list
same_status "$REG/tiny/app:a" "$REG/tiny/app:v1"

it_log "PASS"
