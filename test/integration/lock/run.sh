#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Lock files end to end (issue "Lock files: the deploy-time tag->digest mapping"): real
# docker-registry, containerd (CRI plugin, runc, overlayfs) and `pinlet serve` on loopback
# in a private directory, driven by the test CRI client (pinlet_it_cri) through pinlet and
# checked on containerd directly, in the audit log, in pinlet's log and in the registry's
# access log. Lock files are written with `pinlet lock` itself. One case per invocation
# (one ctest each, see ../lock.cmake):
#
#   locked           tiny/app:v1 locked to A while the registry's tag means B: PullImage
#                    pulls A, ImageStatus(tag) finds A, a container created with the tag
#                    runs A; audit source "lock" + the file; the registry's access log
#                    holds no manifest request for the tag (but does for A's digest)
#   registry_down    a locked tag pulled, the registry stopped: ImageStatus(tag) still
#                    answers the image, a container runs from the tag
#   require_enforce  lock.require enforce: an unlocked tag is refused at PullImage
#                    (PERMISSION_DENIED, exact message, audited rejected); a digest is
#                    allowed; a kubelet CreateContainer (image ID + unlocked
#                    user_specified_image) is refused; a locked tag passes (also kubelet
#                    style)
#   configmap_swap   ConfigMap volume layout, ..data swapped with rename(2) like kubelet:
#                    ImageStatus(tag) turns absent, PullImage pulls the new digest
#                    (substituted from the lock, then tag_moved)
#   broken_edit      a bad digest written into the lock leaves the previous lock in force
#                    and pinlet logs an error naming file:line; a valid edit then works
#   two_nodes        two containerd + pinlet pairs, one lock directory, one registry: the
#                    tag moves between the two pulls and both nodes run A; the control
#                    without lock.paths gets A on one node and B on the other
#   startup          a bad lock at start: `pinlet serve` exits 2 naming file:line, and so
#                    does `pinlet check-config`; a good one: "lock files: ok, N images"
#
# Needs root, containerd, runc, docker-registry, skopeo, gcc, jq, curl, ss.
# Environment (ctest sets it, see ../lock.cmake and lib/harness.cmake): PINLET_BIN,
# PINLET_IT_CRI, PINLET_IT_LIB, PINLET_IT_FREE_PORT (optional). PINLET_IT_KEEP=1 keeps
# the work directory.
# jq filters are single-quoted on purpose ($vars are jq variables given with --arg).
# shellcheck disable=SC2016,SC2154 # jq $vars; $rec is set by wait_audit (lib/cri_assert.sh)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CASES="locked registry_down require_enforce configmap_swap broken_edit two_nodes startup"
case_name=${1:-}
case " $CASES " in
*" $case_name "*) [ -n "$case_name" ] ;;
*)
	echo "usage: $0 ${CASES// /|}" >&2
	exit 2
	;;
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
# shellcheck source=../lib/cri_assert.sh
. "$lib/cri_assert.sh"

if [ "$case_name" = startup ]; then
	it_require --no-root run.sh "" "PINLET_BIN PINLET_IT_CRI"
else
	it_require run.sh "containerd containerd-shim-runc-v2 runc docker-registry skopeo gcc jq curl ss" \
		"PINLET_BIN PINLET_IT_CRI"
fi

it_setup
D=$PINLET_IT_DIR
it_log "case $case_name"

# ---- helpers ---------------------------------------------------------------------------

# cri, cri_status, expect, audit_find, wait_audit, audit_none, _status_absent and
# container_is come from lib/cri_assert.sh: P is $PINLET_ENDPOINT, C is
# $CONTAINERD_ENDPOINT, the audit log is $AUDIT. two_nodes switches them per node.

# Three images from one static pause binary (lib/images.sh): the sandbox image and two
# app images whose binaries differ by a few trailing bytes (different layers, configs,
# digests, IDs).
build_images() {
	build_app_images "$D/img" pinlet-lock
	DA=$(layout_digest "$D/img/app1")
	DB=$(layout_digest "$D/img/app2")
	[ "$DA" != "$DB" ] || it_fail "the two app images have one digest"
}

# push_tag app1|app2 TAG: point REG/tiny/app:TAG at A or B (checked with skopeo).
push_tag() {
	local img=$1 tag=$2 want
	want=$(layout_digest "$D/img/$img")
	push_image "$D/img/$img" "$REG" "tiny/app:$tag" || it_fail "push $img to tiny/app:$tag"
	[ "$(registry_digest "$REG" "tiny/app:$tag")" = "$want" ] ||
		it_fail "tiny/app:$tag is not $want after the push"
	it_log "$REG/tiny/app:$tag = $want"
}

# Registry (REG) with tiny/pause:v1, A as tiny/app:a and B as tiny/app:b (so both digests
# can be pulled whatever tiny/app:v1 means); IMG is the tag the cases lock.
setup_registry() {
	build_images
	start_registry "$D/registry" || it_fail "registry"
	REG=$REGISTRY_ADDR
	REGLOG=$D/logs/registry.log
	push_image "$D/img/pause" "$REG" tiny/pause:v1 || it_fail "push pause"
	push_tag app1 a
	push_tag app2 b
	IMG=$REG/tiny/app:v1
	RA=$REG/tiny/app@$DA
	RB=$REG/tiny/app@$DB
	# Configuration for `pinlet lock` (it resolves with the daemon's registry client).
	cat >"$D/lockcmd.yaml" <<EOF
log: {level: error}
state_dir: $D/lockcmd-state
credentials: {docker_config: ["$D/no-such-docker-config.json"]}
registries: {"$REG": {insecure: true}}
EOF
}

# containerd for one node (start_containerd_named NAME, which sets CONTAINERD_ENDPOINT).
setup_containerd() {
	local name=${1:-containerd}
	PINLET_SANDBOX_IMAGE=$REG/tiny/pause:v1 start_containerd_named "$name" "$D/$name" "$REG" ||
		it_fail "$name"
}

# write_lock FILE IMAGE...: `pinlet lock -o FILE` (IMAGE as name:tag resolves now,
# name:tag@digest locks without asking), then the file must say what was asked.
write_lock() {
	local file=$1
	shift
	mkdir -p "$(dirname "$file")"
	"$PINLET_BIN" lock --config "$D/lockcmd.yaml" -o "$file" "$@" 2>"$D/lock.stderr" ||
		it_fail "pinlet lock -o $file $*: $(cat "$D/lock.stderr")"
	"$PINLET_BIN" lock --check "$file" >/dev/null || it_fail "pinlet lock --check $file"
	it_log "lock $file: $(grep -v '^#' "$file" | tr '\n' ' ')"
}

# pinlet_config DIR LOCK_YAML: DIR/config.yaml for lib/pinlet.sh's start_pinlet: enforce,
# fail closed, 1 s cache, no credential files, REG as plain HTTP, then LOCK_YAML (a `lock:`
# section, or nothing); checked with `pinlet check-config`.
pinlet_config() {
	local dir=$1 lock=${2:-}
	mkdir -p "$dir"
	{
		echo "mode: enforce"
		echo "on_failure: closed"
		echo "cache: {ttl: 1s, negative_ttl: 1s}"
		echo "credentials: {docker_config: [\"$D/no-such-docker-config.json\"]}"
		echo "registries: {\"$REG\": {insecure: true}}"
		[ -z "$lock" ] || printf '%s\n' "$lock"
	} >"$dir/config.yaml"
	"$PINLET_BIN" check-config "$dir/config.yaml" >"$D/check.out" 2>&1 ||
		it_fail "pinlet check-config $dir/config.yaml: $(cat "$D/check.out")"
}

# run_pinlet NAME DIR: pinlet NAME (lib/pinlet.sh) in DIR in front of $CONTAINERD_ENDPOINT;
# sets PINLET_ENDPOINT (start_pinlet), AUDIT, PLOG (its log).
# shellcheck disable=SC2034 # AUDIT is read by lib/cri_assert.sh
run_pinlet() {
	local name=$1 dir=$2
	PINLET_NAME=$name start_pinlet "$dir" "$CONTAINERD_ENDPOINT" || it_fail "$name did not start"
	AUDIT=$PINLET_DIR/audit.jsonl
	PLOG=$D/logs/$name.log
	"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" wait 10 >/dev/null || it_fail "no CRI Version through $name"
}

# GET/HEAD requests for /v2/tiny/app/manifests/REF in the registry's access log.
manifest_requests() {
	grep -cE "\"(GET|HEAD) /v2/tiny/app/manifests/$1 HTTP/" "$REGLOG" || true
}

# A locked pull, checked: pull_locked LABEL DIGEST_REF POD LOCK_FILE: PullImage(IMG)
# through pinlet answers the image containerd holds under DIGEST_REF, and the audit record
# says source "lock" and names LOCK_FILE. The image ID is left in PULLED_ID.
pull_locked() {
	local label=$1 want=$2 pod=$3 lockfile=$4 id
	cri P "$label: PullImage $IMG" pull "$IMG" -n default -N "$pod" -I "$pod-uid"
	id=$(jq -r .image_ref <<<"$out")
	[[ $id == sha256:* ]] || it_fail "$label: PullImage image_ref is not an image ID: $id"
	cri C "$label: containerd ImageStatus $want" image-status "$want"
	expect "$label: containerd holds $want as the pulled image" "$out" \
		'.image.id == $id and (.image.repo_digests | index($r)) != null' --arg id "$id" --arg r "$want"
	wait_audit "$label: audit PullImage from the lock" \
		'.method == "PullImage" and .pod.name == $pod and .decision == "substituted"' --arg pod "$pod"
	expect "$label: audit record names the lock file" "$rec" \
		'.image == $img and .resolved == $r and .source == "lock" and .lock == $f and .mode == "enforce"' \
		--arg img "$IMG" --arg r "$want" --arg f "$lockfile"
	PULLED_ID=$id
}

# ---- cases -----------------------------------------------------------------------------

case_locked() {
	local before_tag before_digest after_tag cid
	setup_registry
	# Deploy time: the tag means A, `pinlet lock` resolves it into the lock.
	push_tag app1 v1
	write_lock "$D/lock/app.yaml" "$IMG"
	grep -qxF "  $IMG: $DA" "$D/lock/app.yaml" || it_fail "pinlet lock did not lock $IMG to $DA"
	# Later: the tag moves to B in the registry.
	push_tag app2 v1
	setup_containerd
	pinlet_config "$D/pinlet" "lock: {paths: [\"$D/lock/app.yaml\"]}"
	run_pinlet pinlet "$D/pinlet"
	grep -q "lock files: $D/lock/app.yaml" "$PLOG" || it_fail "pinlet did not log its lock file"

	before_tag=$(manifest_requests v1)
	before_digest=$(manifest_requests "$DA")
	it_log "registry: $before_tag request(s) for manifests/v1 so far (pushes, skopeo, pinlet lock)"
	[ "$before_tag" -gt 0 ] || it_fail "the registry's access log shows no manifest request at all"

	pull_locked "locked" "$RA" pod-locked "$D/lock/app.yaml"
	cri C "containerd: ImageStatus $RB" image-status "$RB"
	expect "containerd did not pull B (the tag's current digest)" "$out" '.image == null'

	cri P "ImageStatus $IMG through pinlet" image-status "$IMG"
	expect "ImageStatus(tag) finds A" "$out" \
		'.image.id == $id and (.image.repo_digests | index($r)) != null' --arg id "$PULLED_ID" --arg r "$RA"
	wait_audit "audit: ImageStatus from the lock" \
		'.method == "ImageStatus" and .source == "lock" and .lock == $f and .resolved == $r' \
		--arg f "$D/lock/app.yaml" --arg r "$RA"

	cri P "run $IMG" run "$IMG" -n default -N pod-locked -I pod-locked-uid -l "$D/pod-logs"
	cid=$(jq -r .container_id <<<"$out")
	container_is "container created with the tag" "$cid" "$RA" "$RA"
	wait_audit "audit: CreateContainer from the lock" \
		'.method == "CreateContainer" and .pod.name == "pod-locked" and .decision == "substituted"'
	expect "audit: CreateContainer record" "$rec" \
		'.image == $img and .resolved == $r and .source == "lock" and .lock == $f' \
		--arg img "$IMG" --arg r "$RA" --arg f "$D/lock/app.yaml"
	audit_none "no record from another source for the tag" \
		'.image == $img and has("source") and .source != "lock"' --arg img "$IMG"

	# The registry log: containerd fetched A by digest (so the log does record requests),
	# and nobody asked for the tag. The access line is written when the response ends,
	# after containerd got it, so a short wait for the digest's line covers both.
	wait_until 5 bash -c '[ "$(grep -cE "\"(GET|HEAD) /v2/tiny/app/manifests/$1 HTTP/" "$2")" -gt "$3" ]' \
		_ "$DA" "$REGLOG" "$before_digest" ||
		it_fail "the registry's access log shows no request for manifests/$DA after the pull"
	after_tag=$(manifest_requests v1)
	[ "$after_tag" = "$before_tag" ] ||
		it_fail "the registry saw $((after_tag - before_tag)) manifest request(s) for tag v1 after pinlet started: $(grep -E '/v2/tiny/app/manifests/v1 ' "$REGLOG" | tail -n 5)"
	it_log "ok: registry: manifests/$DA $before_digest -> $(manifest_requests "$DA"), manifests/v1 unchanged ($after_tag)"
}

case_registry_down() {
	local cid
	setup_registry
	push_tag app2 v1 # the registry's tag is not what is locked: nothing may ask it
	write_lock "$D/lock/app.yaml" "$IMG@$DA"
	setup_containerd
	pinlet_config "$D/pinlet" "lock: {paths: [\"$D/lock\"]}"
	run_pinlet pinlet "$D/pinlet"
	# The sandbox image, pulled from containerd directly while the registry is up.
	cri C "containerd: PullImage $REG/tiny/pause:v1" pull "$REG/tiny/pause:v1"

	pull_locked "registry up" "$RA" pod-up "$D/lock/app.yaml"

	stop_bg registry
	curl -s -o /dev/null --max-time 2 "http://$REG/v2/" && it_fail "registry still answers"
	it_log "registry $REG stopped"

	cri P "registry down: ImageStatus $IMG" image-status "$IMG"
	expect "registry down: ImageStatus(tag) answers A" "$out" \
		'.image.id == $id and (.image.repo_digests | index($r)) != null' --arg id "$PULLED_ID" --arg r "$RA"
	wait_audit "registry down: audit ImageStatus from the lock" \
		'.method == "ImageStatus" and .source == "lock" and .resolved == $r' --arg r "$RA"

	cri P "registry down: run $IMG" run "$IMG" -n default -N pod-down -I pod-down-uid -l "$D/pod-logs"
	cid=$(jq -r .container_id <<<"$out")
	container_is "registry down: container from the tag" "$cid" "$RA" "$RA"
	wait_audit "registry down: audit CreateContainer from the lock" \
		'.method == "CreateContainer" and .pod.name == "pod-down" and .decision == "substituted" and .source == "lock" and .resolved == $r' \
		--arg r "$RA"
	# No PullImage here: containerd 1.6 asks the registry (HEAD manifests/<digest>) on
	# every pull, even of an image it holds, so a pull fails whatever pinlet does; kubelet
	# (IfNotPresent) does not pull an image that ImageStatus reports present.
}

case_require_enforce() {
	local unlocked id_b cid msg
	setup_registry
	push_tag app1 v1
	push_tag app2 v2
	unlocked=$REG/tiny/app:v2
	write_lock "$D/lock/app.yaml" "$IMG"
	setup_containerd
	pinlet_config "$D/pinlet" "lock: {paths: [\"$D/lock\"], require: enforce}"
	run_pinlet pinlet "$D/pinlet"

	# An unlocked tag: refused before any resolution.
	cri_status P "unlocked: PullImage $unlocked" pull "$unlocked" -n default -N pod-unlocked
	msg="pinlet: $unlocked is not in the lock (lock.require: enforce)"
	expect "unlocked: PERMISSION_DENIED with pinlet's message" "$out" \
		'.status == "PERMISSION_DENIED" and .message == $m' --arg m "$msg"
	wait_audit "unlocked: audited rejected" \
		'.method == "PullImage" and .image == $img and .decision == "rejected"' --arg img "$unlocked"
	expect "unlocked: audit record" "$rec" \
		'(.error | contains("not in the lock")) and .pod.name == "pod-unlocked" and (has("resolved") | not)'
	cri C "containerd: ImageStatus $RB" image-status "$RB"
	expect "unlocked: containerd pulled nothing" "$out" '.image == null'

	# A reference by digest is always allowed (nothing to lock).
	cri P "digest: PullImage $RB" pull "$RB" -n default -N pod-digest
	id_b=$(jq -r .image_ref <<<"$out")
	[[ $id_b == sha256:* ]] || it_fail "digest: PullImage image_ref is not an image ID: $id_b"
	audit_none "digest: no rejection" '.image == $img and .decision == "rejected"' --arg img "$RB"

	# kubelet: CreateContainer with the image ID, user_specified_image the unlocked tag.
	cri_status P "kubelet: run $id_b as $unlocked" run "$id_b" -U "$unlocked" -n default \
		-N pod-kubelet -I pod-kubelet-uid -l "$D/pod-logs"
	expect "kubelet: CreateContainer refused by pinlet" "$out" \
		'.step == "CreateContainer" and .status == "PERMISSION_DENIED" and .message == $m' --arg m "$msg"
	wait_audit "kubelet: CreateContainer audited rejected" \
		'.method == "CreateContainer" and .decision == "rejected" and .pod.name == "pod-kubelet" and .image == $img' \
		--arg img "$unlocked"
	cri C "containerd: containers" ps
	expect "kubelet: no container was created" "$out" '(.containers // []) | length == 0'

	# The locked tag passes, by tag and kubelet style.
	pull_locked "locked" "$RA" pod-locked "$D/lock/app.yaml"
	cri P "locked: run $IMG" run "$IMG" -n default -N pod-locked -I pod-locked-uid -l "$D/pod-logs"
	cid=$(jq -r .container_id <<<"$out")
	container_is "locked: container by tag" "$cid" "$RA" "$RA"
	cri P "locked, kubelet: run $PULLED_ID as $IMG" run "$PULLED_ID" -U "$IMG" -n default \
		-N pod-locked-k -I pod-locked-k-uid -l "$D/pod-logs"
	cid=$(jq -r .container_id <<<"$out")
	container_is "locked, kubelet: container by image ID" "$cid" "$PULLED_ID" "$RA"
	audit_none "locked: never rejected" '.image == $img and .decision == "rejected"' --arg img "$IMG"
}

# ConfigMap volume layout, as kubelet's atomic writer makes it.
configmap_dir() { # configmap_dir DIR TS: DIR/..TS/app.yaml written, nothing swapped yet
	mkdir -p "$1/..$2"
	write_lock "$1/..$2/app.yaml" "$3"
}
configmap_swap() { # configmap_swap DIR TS: ..data -> ..TS by rename(2), the old dir removed
	local dir=$1 ts=$2 old
	old=$(readlink "$dir/..data" 2>/dev/null || true)
	ln -s "..$ts" "$dir/..data_tmp"
	mv -T "$dir/..data_tmp" "$dir/..data"
	[ -e "$dir/app.yaml" ] || ln -s ..data/app.yaml "$dir/app.yaml"
	[ -z "$old" ] || rm -rf "${dir:?}/$old"
	it_log "configmap: $dir/..data -> ..$ts"
}

case_configmap_swap() {
	local L=$D/configmap id_a id_b cid cid_a
	setup_registry
	push_tag app1 v1
	configmap_dir "$L" 2026_01_01_00_00_00.000000001 "$IMG@$DA"
	configmap_swap "$L" 2026_01_01_00_00_00.000000001
	setup_containerd
	pinlet_config "$D/pinlet" "lock: {paths: [\"$L\"]}"
	run_pinlet pinlet "$D/pinlet"

	pull_locked "before the swap" "$RA" pod-a "$L/app.yaml"
	id_a=$PULLED_ID
	cri P "run $IMG" run "$IMG" -n default -N pod-a -I pod-a-uid -l "$D/pod-logs"
	cid_a=$(jq -r .container_id <<<"$out")
	container_is "before the swap: container" "$cid_a" "$RA" "$RA"

	# The new lock (B) lands as kubelet writes a ConfigMap update.
	configmap_dir "$L" 2026_01_01_00_05_00.000000002 "$IMG@$DB"
	configmap_swap "$L" 2026_01_01_00_05_00.000000002
	# kubelet learns that it must pull from ImageStatus(tag): absent once B is in force.
	wait_until 10 _status_absent "$IMG" ||
		it_fail "ImageStatus($IMG) still finds an image 10 s after the swap: $("$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" image-status "$IMG")"
	it_log "ok: ImageStatus($IMG) reports the image absent after the swap"
	# Logged right after the new set took effect: it may trail the ImageStatus answer.
	wait_until 5 grep -q 'lock: reloaded, 1 entries' "$PLOG" || it_fail "pinlet did not log the reload"

	pull_locked "after the swap" "$RB" pod-b "$L/app.yaml"
	id_b=$PULLED_ID
	[ "$id_a" != "$id_b" ] || it_fail "the pull after the swap answered the old image $id_a"
	wait_audit "audit: tag_moved" \
		'.method == "PullImage" and .decision == "tag_moved" and .image == $img' --arg img "$IMG"
	# "previous" is the digest the pin held (audit.h), "resolved" the new reference.
	expect "audit: tag_moved from A to B" "$rec" \
		'.previous == $a and .resolved == $b and .source == "lock" and .lock == $f' \
		--arg a "$DA" --arg b "$RB" --arg f "$L/app.yaml"
	cri P "run $IMG after the swap" run "$IMG" -n default -N pod-b -I pod-b-uid -l "$D/pod-logs"
	cid=$(jq -r .container_id <<<"$out")
	container_is "after the swap: new container" "$cid" "$RB" "$RB"
	container_is "after the swap: the first container, untouched" "$cid_a" "$RA" "$RA"
}

case_broken_edit() {
	local F=$D/lock/app.yaml line
	setup_registry
	push_tag app1 v1
	write_lock "$F" "$IMG@$DA"
	setup_containerd
	pinlet_config "$D/pinlet" "lock: {paths: [\"$F\"]}"
	run_pinlet pinlet "$D/pinlet"
	pull_locked "before the edit" "$RA" pod-before "$F"

	# The edit: B's digest with a typo (one hex digit short), as an editor saves it.
	line=$(grep -nF "$IMG:" "$F" | cut -d: -f1)
	[ -n "$line" ] || it_fail "no line for $IMG in $F"
	sed -i "s|$DA|${DB%?}|" "$F"
	it_log "edited $F line $line: $(sed -n "${line}p" "$F")"
	"$PINLET_BIN" lock --check "$F" >/dev/null 2>&1 && it_fail "the broken lock passes --check"
	wait_until 10 grep -qF "$F:$line:" "$PLOG" ||
		it_fail "pinlet's log has no line naming $F:$line within 10 s"
	grep -F "$F:$line:" "$PLOG" | grep -q 'reload refused' ||
		it_fail "the line naming $F:$line is not the refused reload: $(grep -F "$F:$line:" "$PLOG")"
	grep -F "$F:$line:" "$PLOG" | grep -q '^pinlet error: ' ||
		it_fail "the line naming $F:$line is not at error level: $(grep -F "$F:$line:" "$PLOG")"
	it_log "ok: pinlet logged: $(grep -F "$F:$line:" "$PLOG" | tail -n 1)"
	bg_running pinlet || it_fail "pinlet exited on a broken lock edit"

	# The previous lock is in force: the tag still means A.
	cri P "after the broken edit: ImageStatus $IMG" image-status "$IMG"
	expect "after the broken edit: ImageStatus(tag) finds A" "$out" '.image.id == $id' --arg id "$PULLED_ID"
	pull_locked "after the broken edit" "$RA" pod-after "$F"

	# Control: a valid edit (B) takes effect, so the file was watched all along.
	write_lock "$F" "$IMG@$DB"
	wait_until 10 _status_absent "$IMG" ||
		it_fail "a valid edit to $F did not take effect within 10 s"
	pull_locked "after a valid edit" "$RB" pod-fixed "$F"
}

case_two_nodes() {
	local L=$D/lock n cid
	setup_registry
	# One lock directory for both nodes (as one ConfigMap mounted on every node).
	push_tag app1 v1
	write_lock "$L/app.yaml" "$IMG"
	grep -qxF "  $IMG: $DA" "$L/app.yaml" || it_fail "pinlet lock did not lock $IMG to $DA"
	for n in a b; do
		setup_containerd "containerd-$n"
		eval "CEP_$n=\$CONTAINERD_ENDPOINT"
		pinlet_config "$D/node-$n/pinlet" "lock: {paths: [\"$L\"]}"
		pinlet_config "$D/node-$n/pinlet-nolock"
	done

	# node_use a|b [nolock]: cri P/C and the audit helpers talk to that node.
	# shellcheck disable=SC2034 # AUDIT is read by lib/cri_assert.sh
	node_use() {
		local n=$1 kind=${2:-pinlet}
		eval "CONTAINERD_ENDPOINT=\$CEP_$n"
		PINLET_ENDPOINT=unix://$D/node-$n/$kind/pinlet.sock
		AUDIT=$D/node-$n/$kind/audit.jsonl
	}
	node_run() { # node_run a|b LABEL POD: run IMG on the node, print the container ID
		cri P "node $1: run $IMG" run "$IMG" -n default -N "$3" -I "$3-uid" -l "$D/pod-logs-$1"
		CID=$(jq -r .container_id <<<"$out")
	}

	for n in a b; do
		node_use "$n"
		run_pinlet "pinlet-$n" "$D/node-$n/pinlet"
	done

	# With the lock: A pulls while the tag means A, B after it moved to B.
	node_use a
	pull_locked "locked, node a" "$RA" pod-a "$L/app.yaml"
	push_tag app2 v1
	node_use b
	pull_locked "locked, node b" "$RA" pod-b "$L/app.yaml"
	for n in a b; do
		node_use "$n"
		node_run "$n" "locked" "pod-$n"
		container_is "locked, node $n" "$CID" "$RA" "$RA"
	done

	# Control: the same without lock.paths (new pinlets, fresh state) gives a mixed fleet.
	for n in a b; do
		stop_bg "pinlet-$n" 10
		node_use "$n" pinlet-nolock
		run_pinlet "pinlet-$n-nolock" "$D/node-$n/pinlet-nolock"
	done
	push_tag app1 v1
	node_use a pinlet-nolock
	cri P "control, node a: PullImage $IMG" pull "$IMG" -n default -N ctl-a
	wait_audit "control, node a: audit" \
		'.method == "PullImage" and .pod.name == "ctl-a" and .decision == "substituted"'
	expect "control, node a: resolved A at the registry" "$rec" \
		'.resolved == $r and .source == "registry" and (has("lock") | not)' --arg r "$RA"
	push_tag app2 v1
	node_use b pinlet-nolock
	cri P "control, node b: PullImage $IMG" pull "$IMG" -n default -N ctl-b
	wait_audit "control, node b: audit" \
		'.method == "PullImage" and .pod.name == "ctl-b" and .decision == "substituted"'
	expect "control, node b: resolved B at the registry" "$rec" \
		'.resolved == $r and .source == "registry"' --arg r "$RB"
	node_use a pinlet-nolock
	node_run a "control" ctl-a
	container_is "control, node a runs A" "$CID" "$RA" "$RA"
	node_use b pinlet-nolock
	node_run b "control" ctl-b
	container_is "control, node b runs B" "$CID" "$RB" "$RB"
}

case_startup() {
	local L=$D/lock d1 d2 rc none
	# No registry: `pinlet lock` with name:tag@digest never asks one.
	d1=sha256:$(printf one | sha256sum | cut -d' ' -f1)
	d2=sha256:$(printf two | sha256sum | cut -d' ' -f1)
	REG=127.0.0.1:1
	cat >"$D/lockcmd.yaml" <<EOF
log: {level: error}
state_dir: $D/lockcmd-state
EOF
	write_lock "$L/apps.yaml" "nginx:1.25@$d1" "$REG/team/app:v3@$d2"
	write_lock "$L/other.yml" "$REG/team/worker:v1@$d2"
	pinlet_config "$D/pinlet" "lock: {paths: [\"$L\"], require: enforce}"

	out=$("$PINLET_BIN" check-config "$D/pinlet/config.yaml" 2>&1) || it_fail "check-config of a good lock: $out"
	grep -qxF "lock files: ok, 3 images" <<<"$out" || it_fail "check-config of a good lock printed: $out"
	it_log "ok: check-config: $(grep -F 'lock files' <<<"$out")"

	# A good lock: serve starts (no runtime behind it is needed to listen).
	none=unix://$D/no-runtime.sock
	PINLET_NAME=pinlet start_pinlet "$D/pinlet" "$none" || it_fail "pinlet did not start with a good lock"
	grep -q "lock files: $L" "$D/logs/pinlet.log" || it_fail "pinlet did not log its lock path"
	stop_bg pinlet 10

	# A bad one: a third file with a digest cut short on its line 4.
	printf '# hand-written\nversion: 1\nimages:\n  %s/team/batch:v2: %s\n' "$REG" "${d1%?}" >"$L/zz-bad.yaml"
	rc=0
	"$PINLET_BIN" check-config "$D/pinlet/config.yaml" >"$D/check.out" 2>"$D/check.err" || rc=$?
	[ "$rc" = 2 ] || it_fail "check-config of a bad lock: exit $rc, want 2: $(cat "$D/check.out" "$D/check.err")"
	grep -qF "$L/zz-bad.yaml:4:" "$D/check.err" ||
		it_fail "check-config does not name $L/zz-bad.yaml:4: $(cat "$D/check.err")"
	grep -q 'lock files: ok' "$D/check.out" && it_fail "check-config printed ok for a bad lock"
	it_log "ok: check-config exit 2: $(cat "$D/check.err")"

	# serve in the foreground: it must exit by itself (timeout is the safety net, by the
	# PID of the timeout process we start).
	rc=0
	timeout -k 5 30 "$PINLET_BIN" serve --config "$D/pinlet/config.yaml" \
		--listen "$D/bad.sock" --runtime-endpoint "$none" --state-dir "$D/bad-state" \
		--audit-log "$D/bad-audit.jsonl" >"$D/serve.out" 2>"$D/serve.err" || rc=$?
	[ "$rc" = 2 ] || it_fail "serve with a bad lock: exit $rc, want 2: $(cat "$D/serve.err")"
	grep -qF "$L/zz-bad.yaml:4:" "$D/serve.err" ||
		it_fail "serve's stderr does not name $L/zz-bad.yaml:4: $(cat "$D/serve.err")"
	[ ! -S "$D/bad.sock" ] || it_fail "serve left a socket behind"
	it_log "ok: serve exit 2: $(grep -F "$L/zz-bad.yaml:4:" "$D/serve.err")"

	# A conflict across files: both places are named.
	rm -f "$L/zz-bad.yaml"
	printf 'version: 1\nimages:\n  nginx:1.25: %s\n' "$d2" >"$L/zz-conflict.yaml"
	rc=0
	timeout -k 5 30 "$PINLET_BIN" serve --config "$D/pinlet/config.yaml" \
		--listen "$D/bad.sock" --runtime-endpoint "$none" --state-dir "$D/bad-state" \
		--audit-log "$D/bad-audit.jsonl" >"$D/serve.out" 2>"$D/serve.err" || rc=$?
	[ "$rc" = 2 ] || it_fail "serve with conflicting locks: exit $rc, want 2: $(cat "$D/serve.err")"
	grep -F "$L/zz-conflict.yaml:3" "$D/serve.err" | grep -qF "$L/apps.yaml:" ||
		it_fail "serve does not name both places of the conflict: $(cat "$D/serve.err")"
	it_log "ok: conflict: $(cat "$D/serve.err")"
}

"case_$case_name"
it_log "PASS $case_name"
