#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Tag-to-digest substitution end to end: docker-registry, containerd (CRI plugin, runc,
# overlayfs) and `pinlet serve` on loopback in a private directory, driven by the test
# CRI client (pinlet_it_cri) through pinlet, and checked on containerd directly, in the
# audit log and in the registry. One case per invocation (one ctest each):
#
#   pull          PullImage by tag -> containerd holds only the digest the registry serves
#   run           RunPodSandbox + CreateContainer by tag -> the container runs the digest
#   tag_moved     the tag moves in the registry -> ImageStatus(tag) says absent, PullImage
#                 pulls the new digest (tag_moved record), a new container runs it
#   kubelet_flow  kubelet's sequence: CreateContainer with the image ID returned by
#                 PullImage passes through untouched
#   auth_basic    htpasswd registry: the request's credentials resolve; none or wrong ones
#                 give a "pinlet: ..." error naming image, registry and cause
#   auth_bearer   the same behind a token server (test/integration/registry/token_server)
#   registry_down mode audit never rewrites; registry stopped: on_failure closed rejects,
#                 on_failure open passes the tag through
#   restart       pinlet restarted with the registry stopped: CreateContainer by tag still
#                 gets the pinned digest (pin store in --state-dir)
#   scope         excluded namespace and excluded registry are untouched
#
# Every case also checks that no credential appears in pinlet's log, the audit log,
# containerd's log or the test's own output (the whole transcript is captured by an outer
# invocation of this script and searched after the case ends, also on failure).
#
# Needs root, containerd, runc, docker-registry, skopeo, jq, curl, htpasswd, openssl.
# Environment (ctest sets it, see substitution.cmake): PINLET_BIN, PINLET_IT_CRI,
# PINLET_IT_LIB, PINLET_IT_FREE_PORT (optional), REGISTRY_TOKEN_SERVER (auth_bearer).
# PINLET_IT_KEEP=1 keeps the work directory.
# jq filters are single-quoted on purpose ($vars are jq variables given with --arg).
# shellcheck disable=SC2016,SC2015,SC2154 # $rec is set by wait_audit (lib/cri_assert.sh)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
case_name=${1:-}
case $case_name in
pull | run | tag_moved | kubelet_flow | auth_basic | auth_bearer | registry_down | restart | scope) ;;
*)
	echo "usage: $0 pull|run|tag_moved|kubelet_flow|auth_basic|auth_bearer|registry_down|restart|scope" >&2
	exit 2
	;;
esac

lib=${PINLET_IT_LIB:-$here/../lib}

# ---- outer invocation: capture the transcript, then search it for credentials ----------
# The password is made here so the outer process knows what to look for; the inner one
# gets it through the environment (never on a command line that is logged).
# A JWT is base64url('{"...') "." base64url('{"...') ".": both parts start "eyJ".
JWT_RE='eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.'
if [ -z "${_PINLET_SUBST_INNER:-}" ]; then
	export _PINLET_SUBST_INNER=1
	PINLET_SUBST_PASSWORD=$(openssl rand -hex 12)
	export PINLET_SUBST_PASSWORD
	# shellcheck source=../lib/transcript.sh
	. "$lib/transcript.sh"
	rc=0
	transcript_check subst alice "$PINLET_SUBST_PASSWORD" "the test password" \
		"$JWT_RE" "a bearer token (JWT)" -- bash "$0" "$@" || rc=$?
	exit "$rc"
fi

# shellcheck source=../lib/common.sh
. "$lib/common.sh"
# shellcheck source=../lib/containerd.sh
. "$lib/containerd.sh"
# shellcheck source=../lib/images.sh
. "$lib/images.sh"
# shellcheck source=../lib/cri_assert.sh
. "$lib/cri_assert.sh"

it_require run.sh "containerd containerd-shim-runc-v2 runc docker-registry skopeo gcc jq curl htpasswd openssl ss" \
	"PINLET_BIN PINLET_IT_CRI"
PW=${PINLET_SUBST_PASSWORD:?}

it_setup
D=$PINLET_IT_DIR
AUDIT=$D/audit.jsonl
# cri P, _status_absent (lib/cri_assert.sh): start_pinlet below listens here.
PINLET_ENDPOINT=unix://$D/pinlet.sock
it_log "case $case_name"

# ---- helpers ---------------------------------------------------------------------------
# cri, cri_status, expect, audit_find, wait_audit, audit_none, _status_absent and
# container_is come from lib/cri_assert.sh.

# Records that change (or would change, or refuse) a request.
SUBST_DECISIONS='(.decision == "substituted" or .decision == "would_substitute" or .decision == "tag_moved" or .decision == "rejected")'

# The digest a registry serves for REPO:TAG, asked with HEAD and all four manifest types
# in Accept (distribution 2.8 answers differently otherwise): head_digest HOSTPORT REPO TAG
head_digest() {
	curl -sfI --max-time 10 \
		-H 'Accept: application/vnd.oci.image.index.v1+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"http://$1/v2/$2/manifests/$3" |
		tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

# Registry (REG), images pushed (tiny/pause:v1, tiny/app:v1 = app1), containerd.
# D1 is app1's digest, checked three ways: the layout, skopeo inspect --raw, HEAD. The
# images: the sandbox and two app images from one static pause binary (lib/images.sh).
setup_base() {
	build_app_images "$D/img" pinlet-substitution
	start_registry "$D/registry" || it_fail "registry"
	REG=$REGISTRY_ADDR
	push_image "$D/img/pause" "$REG" tiny/pause:v1 || it_fail "push pause"
	push_image "$D/img/app1" "$REG" tiny/app:v1 || it_fail "push app1"
	D1=$(registry_digest "$REG" tiny/app:v1)
	[ "$D1" = "$(layout_digest "$D/img/app1")" ] ||
		it_fail "registry digest $D1 differs from the pushed layout's $(layout_digest "$D/img/app1")"
	[ "$(head_digest "$REG" tiny/app v1)" = "$D1" ] ||
		it_fail "HEAD digest '$(head_digest "$REG" tiny/app v1)' differs from skopeo's $D1"
	IMG=$REG/tiny/app:v1
	it_log "pushed $IMG = $D1"
	PINLET_SANDBOX_IMAGE=$REG/tiny/pause:v1 start_containerd "$D/containerd" "$REG" ||
		it_fail "containerd"
}

# pinlet_config FILE [EXTRA_YAML]: enforce, fail closed (or $ON_FAILURE), 1 s cache (a
# moved tag is seen at once), no credential files (the request's credentials are the only
# ones), the registries in $REGISTRIES as plain HTTP. EXTRA_YAML (top-level keys) is
# appended.
pinlet_config() {
	local file=$1 extra=${2:-} hp
	{
		echo "mode: enforce"
		echo "on_failure: ${ON_FAILURE:-closed}"
		echo "cache: {ttl: 1s, negative_ttl: 1s}"
		echo "credentials: {docker_config: [\"$D/no-such-docker-config.json\"]}"
		echo "registries:"
		for hp in $REGISTRIES; do
			echo "  \"$hp\": {insecure: true}"
		done
		[ -z "$extra" ] || printf '%s\n' "$extra"
	} >"$file"
	"$PINLET_BIN" check-config "$file" >/dev/null || it_fail "pinlet check-config $file: $(cat "$file")"
}

# start_pinlet CONFIG STATE_DIR [serve args...]: pinlet on $D/pinlet.sock, audit log $AUDIT.
start_pinlet() {
	local cfg=$1 state=$2
	shift 2
	start_bg pinlet "$PINLET_BIN" serve --config "$cfg" --listen "$D/pinlet.sock" \
		--runtime-endpoint "$CONTAINERD_ENDPOINT" --state-dir "$state" \
		--audit-log "$AUDIT" --log-level debug "$@"
	wait_for_socket "$D/pinlet.sock" 10 || it_fail "pinlet does not listen on $D/pinlet.sock"
	"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" wait 10 >/dev/null ||
		it_fail "no CRI Version through pinlet"
}
restart_pinlet() {
	stop_bg pinlet 10
	start_pinlet "$@"
}

# No credential in what pinlet and containerd wrote (the outer invocation checks the
# test's own output). Tokens are JWTs (JWT_RE).
check_no_secrets() {
	local b64 f
	b64=$(printf 'alice:%s' "$PW" | base64 -w0)
	for f in "$D/logs/pinlet.log" "$D/logs/containerd.log" "$AUDIT"; do
		[ -f "$f" ] || continue
		if grep -qF -e "$PW" -e "$b64" "$f"; then
			it_fail "the test password appears in ${f##*/}"
		fi
	done
	for f in "$D/logs/pinlet.log" "$AUDIT"; do
		[ -f "$f" ] || continue
		grep -qE "$JWT_RE" "$f" && it_fail "a bearer token (JWT) appears in ${f##*/}"
	done
	it_log "ok: no credential in pinlet's log, containerd's log or the audit log"
}

# ---- cases -----------------------------------------------------------------------------

case_pull() {
	setup_base
	REGISTRIES=$REG pinlet_config "$D/pinlet.yaml"
	start_pinlet "$D/pinlet.yaml" "$D/state"

	cri P "PullImage $IMG" pull "$IMG" -n default -N pull-pod -I pull-pod-uid
	local id
	id=$(jq -r .image_ref <<<"$out")
	[ -n "$id" ] && [ "$id" != null ] || it_fail "PullImage returned no image_ref"
	wait_audit "audit: PullImage substituted" \
		'.method == "PullImage" and .decision == "substituted" and .image == $img' --arg img "$IMG"
	expect "audit: resolved is the registry's digest" "$rec" \
		'.resolved == $r and .mode == "enforce" and (has("error") | not) and
		 .pod.namespace == "default" and .pod.name == "pull-pod" and .pod.uid == "pull-pod-uid"' \
		--arg r "$REG/tiny/app@$D1"

	# containerd was asked for the digest, never for the tag: it holds no tag.
	cri C "containerd: ImageStatus by digest" image-status "$REG/tiny/app@$D1"
	expect "containerd holds $REG/tiny/app@$D1 (the pulled image)" "$out" \
		'.image.id == $id and (.image.repo_digests | index($r)) != null and .image.repo_tags == []' \
		--arg id "$id" --arg r "$REG/tiny/app@$D1"
	cri C "containerd: ImageStatus by tag" image-status "$IMG"
	expect "containerd has no image under the tag" "$out" '.image == null'

	# ImageStatus through pinlet agrees with the pull (rewritten the same way).
	cri P "ImageStatus $IMG through pinlet" image-status "$IMG"
	expect "pinlet: ImageStatus(tag) finds the pulled image" "$out" '.image.id == $id' --arg id "$id"
}

case_run() {
	setup_base
	REGISTRIES=$REG pinlet_config "$D/pinlet.yaml"
	start_pinlet "$D/pinlet.yaml" "$D/state"

	cri P "PullImage $IMG" pull "$IMG" -n default -N run-pod -I run-pod-uid
	cri P "run $IMG (RunPodSandbox, CreateContainer, StartContainer)" \
		run "$IMG" -n default -N run-pod -I run-pod-uid -l "$D/pod-logs"
	local cid
	cid=$(jq -r .container_id <<<"$out")
	container_is "container by tag" "$cid" "$REG/tiny/app@$D1" "$REG/tiny/app@$D1"
	wait_audit "audit: CreateContainer substituted" \
		'.method == "CreateContainer" and .decision == "substituted" and .pod.name == "run-pod"'
	expect "audit: CreateContainer record" "$rec" \
		'.image == $img and .resolved == $r and .container == "app"' \
		--arg img "$IMG" --arg r "$REG/tiny/app@$D1"
}

case_tag_moved() {
	setup_base
	REGISTRIES=$REG pinlet_config "$D/pinlet.yaml"
	start_pinlet "$D/pinlet.yaml" "$D/state"

	cri P "PullImage $IMG (first)" pull "$IMG" -n default -N pod-a
	local id1 id2 cid1 cid2 d2
	id1=$(jq -r .image_ref <<<"$out")
	cri P "run $IMG (first)" run "$IMG" -n default -N pod-a -l "$D/pod-logs"
	cid1=$(jq -r .container_id <<<"$out")
	container_is "first container" "$cid1" "$REG/tiny/app@$D1" "$REG/tiny/app@$D1"

	# Move the tag: push the second image to the same tag.
	push_image "$D/img/app2" "$REG" tiny/app:v1 || it_fail "push app2 to tiny/app:v1"
	d2=$(registry_digest "$REG" tiny/app:v1)
	[ "$d2" = "$(layout_digest "$D/img/app2")" ] && [ "$d2" != "$D1" ] ||
		it_fail "the tag did not move: $d2"
	it_log "moved $IMG from $D1 to $d2"
	# The cache (ttl 1 s) answers the old digest until its entry expires: wait for the
	# condition itself, pinlet resolving the tag to the new digest, which the node lacks.
	wait_until 10 _status_absent "$IMG" ||
		it_fail "pinlet still resolves $IMG to the old digest 10 s after the move (cache ttl 1 s)"

	# kubelet asks first: the tag now means an image the node does not have.
	cri P "ImageStatus $IMG after the move" image-status "$IMG"
	expect "ImageStatus(tag) says absent" "$out" '.image == null'
	cri P "PullImage $IMG (moved)" pull "$IMG" -n default -N pod-b
	id2=$(jq -r .image_ref <<<"$out")
	[ "$id2" != "$id1" ] || it_fail "PullImage after the move returned the old image $id1"
	cri C "containerd: ImageStatus of the new digest" image-status "$REG/tiny/app@$d2"
	expect "containerd holds the new digest" "$out" '.image.id == $id' --arg id "$id2"
	wait_audit "audit: tag_moved" '.decision == "tag_moved"'
	expect "audit: tag_moved names both digests" "$rec" \
		'.image == $img and (.resolved | endswith("@" + $d2)) and (.previous | contains($d1))' \
		--arg img "$IMG" --arg d1 "$D1" --arg d2 "$d2"

	cri P "run $IMG (after the move)" run "$IMG" -n default -N pod-b -l "$D/pod-logs"
	cid2=$(jq -r .container_id <<<"$out")
	container_is "new container" "$cid2" "$REG/tiny/app@$d2" "$REG/tiny/app@$d2"
	container_is "first container, untouched" "$cid1" "$REG/tiny/app@$D1" "$REG/tiny/app@$D1"
}

case_kubelet_flow() {
	setup_base
	REGISTRIES=$REG pinlet_config "$D/pinlet.yaml"
	start_pinlet "$D/pinlet.yaml" "$D/state"

	# kubelet: ImageStatus(tag) -> absent -> PullImage(tag) -> image ID ->
	# CreateContainer(image = ID, user_specified_image = tag).
	cri P "kubelet: ImageStatus $IMG" image-status "$IMG"
	expect "ImageStatus(tag) before the pull: absent" "$out" '.image == null'
	cri P "kubelet: PullImage $IMG" pull "$IMG" -n kube-ns -N kubelet-pod -I kubelet-uid
	local id cid
	id=$(jq -r .image_ref <<<"$out")
	[[ $id == sha256:* ]] || it_fail "PullImage image_ref is not an image ID: $id"
	wait_audit "audit: PullImage substituted" \
		'.method == "PullImage" and .decision == "substituted" and .pod.name == "kubelet-pod" and .resolved == $r' \
		--arg r "$REG/tiny/app@$D1"
	cri P "kubelet: ImageStatus by image ID" image-status "$id"
	expect "ImageStatus(ID) passes through and finds the image" "$out" '.image.id == $id' --arg id "$id"

	cri P "kubelet: run with image = $id, user_specified_image = $IMG" \
		run "$id" -U "$IMG" -n kube-ns -N kubelet-pod -I kubelet-uid -l "$D/pod-logs"
	cid=$(jq -r .container_id <<<"$out")
	# containerd reports the reference CreateContainer carried: the ID, not a digest
	# reference pinlet would have written.
	container_is "container created from the image ID" "$cid" "$id" "$REG/tiny/app@$D1"
	audit_none "no substitution record for kubelet's CreateContainer" \
		'.method == "CreateContainer" and '"$SUBST_DECISIONS"
	audit_none "no CreateContainer record resolving anything" \
		'.method == "CreateContainer" and has("resolved")'
}

# case_auth KIND (basic | bearer): a second registry that requires credentials.
case_auth() {
	local kind=$1 areg tport img d cid
	setup_base
	mkdir -p "$D/auth"
	printf '%s' "$PW" >"$D/auth/password"
	printf 'wrong-%s' "$PW" >"$D/auth/wrong-password"
	if [ "$kind" = basic ]; then
		htpasswd -Bbn alice "$PW" >"$D/auth/htpasswd" 2>/dev/null || it_fail "htpasswd"
		PINLET_REGISTRY_AUTH_YAML="{htpasswd: {realm: pinlet-test, path: \"$D/auth/htpasswd\"}}" \
			start_registry "$D/regauth" "" regauth || it_fail "registry with htpasswd"
	else
		[ -x "${REGISTRY_TOKEN_SERVER:-}" ] || it_fail "REGISTRY_TOKEN_SERVER must name the test token server"
		# The signing certificate is its own root: the registry's rootcertbundle.
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$D/auth/signer.key" \
			-out "$D/auth/signer.crt" -subj /CN=pinlet-subst-token-signer 2>/dev/null ||
			it_fail "openssl signer certificate"
		# bash -c reads the password from its file, so the logged command line holds none.
		# shellcheck disable=SC2016
		start_bg token bash -c 'exec "$0" --port-file "$1" --key "$2" --cert "$3" \
			--issuer pinlet-subst --service pinlet-subst --user "alice:$(cat "$4")"' \
			"$REGISTRY_TOKEN_SERVER" "$D/auth/token.port" "$D/auth/signer.key" \
			"$D/auth/signer.crt" "$D/auth/password"
		wait_until 10 test -s "$D/auth/token.port" || it_fail "token server did not start"
		tport=$(cat "$D/auth/token.port")
		PINLET_REGISTRY_AUTH_YAML="{token: {realm: \"http://127.0.0.1:$tport/token\", service: pinlet-subst, issuer: pinlet-subst, rootcertbundle: \"$D/auth/signer.crt\"}}" \
			start_registry "$D/regauth" "" regauth || it_fail "registry with token auth"
	fi
	areg=$REGISTRY_ADDR
	img=$areg/tiny/private:v1
	push_image "$D/img/app2" "$areg" tiny/private:v1 --dest-creds "alice:$PW" ||
		it_fail "push to $areg with credentials"
	d=$(registry_digest "$areg" tiny/private:v1 --creds "alice:$PW")
	[ "$d" = "$(layout_digest "$D/img/app2")" ] || it_fail "private digest $d"
	curl -sf -o /dev/null "http://$areg/v2/tiny/private/manifests/v1" &&
		it_fail "$areg serves without credentials"
	containerd_add_registry "$CONTAINERD_DIR" "$areg"
	REGISTRIES="$REG $areg" pinlet_config "$D/pinlet.yaml"
	start_pinlet "$D/pinlet.yaml" "$D/state"

	# Wrong and missing credentials first, before any resolution could be cached.
	local cause='(401|[Uu]nauthori[sz]ed|UNAUTHORIZED|denied|credential|authentication)'
	cri_status P "PullImage $img without credentials" pull "$img" -n default -N auth-pod
	expect "no credentials: pinlet names image, registry and cause" "$out" \
		'.status == "PERMISSION_DENIED" and (.message | startswith("pinlet:") and contains("tiny/private:v1") and contains($reg) and test($cause))' \
		--arg reg "$areg" --arg cause "$cause"
	cri_status P "PullImage $img with a wrong password" pull "$img" -n default -N auth-pod \
		-u alice -P "$D/auth/wrong-password"
	expect "wrong password: pinlet names image, registry and cause" "$out" \
		'.status == "PERMISSION_DENIED" and (.message | startswith("pinlet:") and contains("tiny/private:v1") and contains($reg) and test($cause))' \
		--arg reg "$areg" --arg cause "$cause"
	wait_audit "audit: rejected" '.method == "PullImage" and .decision == "rejected" and .image == $img' \
		--arg img "$img"
	cri C "containerd: nothing pulled" image-status "$areg/tiny/private@$d"
	expect "containerd has not pulled the private image" "$out" '.image == null'

	local tokens_before=0 tokens_after
	[ "$kind" = basic ] || tokens_before=$(curl -sf "http://127.0.0.1:$tport/count")
	cri P "PullImage $img with the right credentials" pull "$img" -n default -N auth-pod \
		-u alice -P "$D/auth/password"
	if [ "$kind" = bearer ]; then
		# pinlet and containerd each asked the token server (the Bearer flow was used).
		tokens_after=$(curl -sf "http://127.0.0.1:$tport/count")
		[ "$tokens_after" -ge $((tokens_before + 2)) ] ||
			it_fail "token server saw $tokens_before then $tokens_after requests, want 2 more at least"
		it_log "ok: token requests $tokens_before -> $tokens_after"
	fi
	wait_audit "audit: substituted with the request's credentials" \
		'.method == "PullImage" and .decision == "substituted" and .image == $img and .resolved == $r' \
		--arg img "$img" --arg r "$areg/tiny/private@$d"
	cri C "containerd: ImageStatus by digest" image-status "$areg/tiny/private@$d"
	expect "containerd holds the private digest" "$out" \
		'(.image.repo_digests | index($r)) != null and .image.repo_tags == []' \
		--arg r "$areg/tiny/private@$d"
	cri P "run $img" run "$img" -n default -N auth-pod -l "$D/pod-logs"
	cid=$(jq -r .container_id <<<"$out")
	container_is "private container" "$cid" "$areg/tiny/private@$d" "$areg/tiny/private@$d"
}

case_registry_down() {
	local id cid
	setup_base
	push_image "$D/img/app2" "$REG" tiny/app:v2 || it_fail "push app2 as tiny/app:v2"
	REGISTRIES=$REG pinlet_config "$D/enforce.yaml"
	REGISTRIES=$REG ON_FAILURE=open pinlet_config "$D/open.yaml"

	# mode audit, registry up: resolved and recorded, never rewritten.
	start_pinlet "$D/enforce.yaml" "$D/state-audit" --mode audit
	cri P "audit mode: PullImage $IMG" pull "$IMG" -n default -N audit-pod
	wait_audit "audit mode: would_substitute" \
		'.method == "PullImage" and .decision == "would_substitute" and .image == $img' --arg img "$IMG"
	expect "audit mode: record" "$rec" '.mode == "audit" and .resolved == $r' --arg r "$REG/tiny/app@$D1"
	cri C "containerd: ImageStatus by tag" image-status "$IMG"
	expect "audit mode: containerd pulled the tag itself" "$out" \
		'(.image.repo_tags | index($img)) != null' --arg img "$IMG"
	cri P "audit mode: run $IMG" run "$IMG" -n default -N audit-pod -l "$D/pod-logs"
	cid=$(jq -r .container_id <<<"$out")
	cri C "audit mode: ContainerStatus" container-status "$cid"
	expect "audit mode: container runs" "$out" '.state == "CONTAINER_RUNNING" and .image_ref == $r' \
		--arg r "$REG/tiny/app@$D1"
	wait_audit "audit mode: CreateContainer would_substitute" \
		'.method == "CreateContainer" and .decision == "would_substitute" and .pod.name == "audit-pod"'
	audit_none "audit mode: nothing substituted" '.decision == "substituted"'

	stop_bg registry
	curl -s -o /dev/null --max-time 2 "http://$REG/v2/" && it_fail "registry still answers"
	it_log "registry $REG stopped"

	# on_failure closed, registry down, tag never resolved: rejected with pinlet's reason.
	restart_pinlet "$D/enforce.yaml" "$D/state-closed"
	cri_status P "closed: PullImage $REG/tiny/app:v2" pull "$REG/tiny/app:v2" -n default -N closed-pod
	expect "closed: pinlet names image, registry and cause" "$out" \
		'.status == "UNAVAILABLE" and (.message | startswith("pinlet:") and contains("tiny/app:v2") and contains($reg) and test($cause; "i"))' \
		--arg reg "$REG" --arg cause '(refused|connect|unreachable|unavailable|timeout|timed out)'
	wait_audit "closed: audit rejected" \
		'.method == "PullImage" and .decision == "rejected" and .image == $img and (.error | length) > 0' \
		--arg img "$REG/tiny/app:v2"
	# CreateContainer by a tag containerd has (from the audit-mode pull) is refused too.
	cri_status P "closed: run $IMG" run "$IMG" -n default -N closed-pod -l "$D/pod-logs"
	expect "closed: CreateContainer refused by pinlet" "$out" \
		'.step == "CreateContainer" and (.message | startswith("pinlet:"))'
	wait_audit "closed: CreateContainer rejected" \
		'.method == "CreateContainer" and .decision == "rejected" and .pod.name == "closed-pod"'

	# on_failure open: the original request goes to containerd.
	restart_pinlet "$D/open.yaml" "$D/state-open"
	cri_status P "open: PullImage $REG/tiny/app:v2" pull "$REG/tiny/app:v2" -n default -N open-pod
	expect "open: containerd's own error about the tag" "$out" \
		'(.message | startswith("pinlet:") | not) and (.message | contains("tiny/app:v2"))'
	wait_audit "open: audit passed_through" \
		'.method == "PullImage" and .decision == "passed_through" and .image == $img' \
		--arg img "$REG/tiny/app:v2"
	cri P "open: run $IMG" run "$IMG" -n default -N open-pod -l "$D/pod-logs"
	cid=$(jq -r .container_id <<<"$out")
	cri C "open: ContainerStatus" container-status "$cid"
	expect "open: the tag went through and the container runs" "$out" \
		'.state == "CONTAINER_RUNNING" and .image == $img' --arg img "$IMG"
	wait_audit "open: CreateContainer passed_through" \
		'.method == "CreateContainer" and .decision == "passed_through" and .pod.name == "open-pod"'
}

case_restart() {
	local cid
	setup_base
	REGISTRIES=$REG pinlet_config "$D/pinlet.yaml"
	start_pinlet "$D/pinlet.yaml" "$D/state"
	cri P "PullImage $IMG" pull "$IMG" -n default -N before-pod
	cri P "run $IMG" run "$IMG" -n default -N before-pod -l "$D/pod-logs"
	container_is "before the restart" "$(jq -r .container_id <<<"$out")" \
		"$REG/tiny/app@$D1" "$REG/tiny/app@$D1"

	stop_bg pinlet 10
	stop_bg registry
	curl -s -o /dev/null --max-time 2 "http://$REG/v2/" && it_fail "registry still answers"
	it_log "pinlet and registry $REG stopped"
	out=$("$PINLET_BIN" pins --json --config "$D/pinlet.yaml" --state-dir "$D/state") ||
		it_fail "pinlet pins: $out"
	expect "pin store holds the pin" "$out" 'select(.reference == $img and .digest == $d)' \
		--arg img "$IMG" --arg d "$D1"

	start_pinlet "$D/pinlet.yaml" "$D/state"
	cri P "run $IMG after the restart, registry down" run "$IMG" -n default -N after-pod \
		-l "$D/pod-logs"
	cid=$(jq -r .container_id <<<"$out")
	container_is "after the restart" "$cid" "$REG/tiny/app@$D1" "$REG/tiny/app@$D1"
	wait_audit "audit: CreateContainer from the pin store" \
		'.method == "CreateContainer" and .pod.name == "after-pod"'
	expect "audit: substituted from the pin" "$rec" \
		'.decision == "substituted" and .source == "pin" and .resolved == $r' \
		--arg r "$REG/tiny/app@$D1"
}

case_scope() {
	local reg2 cid
	setup_base
	start_registry "$D/registry2" "" registry2 || it_fail "second registry"
	reg2=$REGISTRY_ADDR
	push_image "$D/img/app2" "$reg2" tiny/app:v1 || it_fail "push to $reg2"
	containerd_add_registry "$CONTAINERD_DIR" "$reg2"
	REGISTRIES="$REG $reg2" pinlet_config "$D/pinlet.yaml" "$(printf 'scope:\n  exclude:\n    namespaces: [excluded-ns]\n    registries: ["%s"]' "$reg2")"
	start_pinlet "$D/pinlet.yaml" "$D/state"

	# Excluded namespace: PullImage and CreateContainer reach containerd as written.
	cri P "excluded namespace: PullImage $IMG" pull "$IMG" -n excluded-ns -N ex-pod
	cri C "containerd: ImageStatus by tag" image-status "$IMG"
	expect "excluded namespace: containerd pulled the tag" "$out" \
		'(.image.repo_tags | index($img)) != null' --arg img "$IMG"
	cri P "excluded namespace: run $IMG" run "$IMG" -n excluded-ns -N ex-pod -l "$D/pod-logs"
	cid=$(jq -r .container_id <<<"$out")
	container_is "excluded namespace container" "$cid" "$IMG" "$REG/tiny/app@$D1"
	audit_none "excluded namespace: no substitution record" \
		'.pod.namespace == "excluded-ns" and '"$SUBST_DECISIONS"

	# Excluded registry, in a namespace that is in scope.
	cri P "excluded registry: PullImage $reg2/tiny/app:v1" pull "$reg2/tiny/app:v1" -n default -N reg-pod
	cri C "containerd: ImageStatus by tag ($reg2)" image-status "$reg2/tiny/app:v1"
	expect "excluded registry: containerd pulled the tag" "$out" \
		'(.image.repo_tags | index($img)) != null' --arg img "$reg2/tiny/app:v1"
	cri P "excluded registry: run $reg2/tiny/app:v1" run "$reg2/tiny/app:v1" -n default -N reg-pod \
		-l "$D/pod-logs"
	audit_none "excluded registry: no substitution record" \
		'(.image | tostring | contains($reg)) and '"$SUBST_DECISIONS" --arg reg "$reg2"

	# Control: the same tag in a namespace in scope is substituted (the config is live).
	cri P "in scope: PullImage $IMG" pull "$IMG" -n default -N ctl-pod
	wait_audit "in scope: substituted" \
		'.method == "PullImage" and .decision == "substituted" and .pod.name == "ctl-pod" and .resolved == $r' \
		--arg r "$REG/tiny/app@$D1"
}

case $case_name in
auth_basic) case_auth basic ;;
auth_bearer) case_auth bearer ;;
*) "case_$case_name" ;;
esac
check_no_secrets
it_log "PASS $case_name"
