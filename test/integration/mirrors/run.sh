#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Where the runtime pulls: containerd with config_path = the hosts_dir pinlet reads, two
# docker-registry instances, pinlet in front (enforce). One case per invocation:
#
#   airgap       the image's registry is a loopback address where nothing listens; a
#                mirror in hosts.toml holds the image: PullImage by tag is pinned through
#                the mirror and the container runs
#   lagging      the mirror holds the tag on another digest than the upstream: pinlet
#                pins exactly what a second containerd (same hosts_dir, no pinlet) pulls
#                for the tag directly
#   fallthrough  the mirror lacks the repository (404): upstream answers, pinlet and the
#                second containerd agree
#   tls_certdir  a TLS registry whose CA is only in Docker's certificate layout under
#                hosts_dir (<hosts_dir>/<host>/ca.crt, no hosts.toml): pinlet resolves it,
#                and an empty hosts_dir makes it fail (the CA is nowhere else)
#   default      _default/hosts.toml sends every registry without a directory to the
#                mirror
#   reload       hosts.toml changes while pinlet runs: the next resolution follows it, no
#                restart
#   endpoints    the endpoint rules without containerd (pinlet resolve --endpoint): a
#                pull-only mirror is never asked for a tag, a 5xx mirror is skipped, a
#                [header] reaches its host (a fake registry that wants Basic credentials
#                gets them only from the header), override_path, and when every endpoint
#                fails the first non-404 failure is the error
#   regconf      registries.conf with pinlet resolve --runtime cri-o (CRI-O is not
#                packaged for Debian 12): a tag-only insecure mirror answers, a drop-in's
#                mirror-by-digest-only leaves the tag to the upstream, blocked refuses
#   crio_short   short names in front of CRI-O: the daemon in front of test/fake's backend
#                answering Version as "cri-o" (no containerd), registries.conf with an
#                alias to a loopback registry and quay.io, docker.io as search registries:
#                the alias is pinned under its qualified name and the backend gets
#                "REG/tiny/app@digest"; an ambiguous short name reaches the backend as
#                written, audited passed_through with the reason; `pinlet resolve
#                --runtime cri-o` and `pinlet lock --runtime cri-o` qualify (and refuse)
#                the same names
#
# Needs root, containerd, runc, docker-registry, skopeo, jq, openssl.
# Environment (ctest sets it, see mirrors.cmake): PINLET_BIN, PINLET_IT_CRI, PINLET_IT_LIB,
# REGISTRY_FAKE (test/integration/registry/fake_registry.c; endpoints case), FAKE_BACKEND
# (test/fake/fake_backend.c; crio_short case).
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
case_name=${1:-}
case $case_name in
airgap | lagging | fallthrough | tls_certdir | default | reload | endpoints | regconf | crio_short) ;;
*)
	echo "usage: $0 airgap|lagging|fallthrough|tls_certdir|default|reload|endpoints|regconf|crio_short" >&2
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
# shellcheck source=../lib/cri_assert.sh
. "$lib/cri_assert.sh"

it_require run.sh "containerd containerd-shim-runc-v2 runc docker-registry skopeo gcc jq openssl" \
	"PINLET_BIN PINLET_IT_CRI"

it_setup
D=$PINLET_IT_DIR
AUDIT=$D/audit.jsonl
it_log "case $case_name"

# ---- helpers ---------------------------------------------------------------------------

# cri and expect come from lib/cri_assert.sh: cri P is pinlet (PINLET_ENDPOINT, the socket
# start_pinlet and case_crio_short listen on), cri C the containerd behind it
# (CONTAINERD_ENDPOINT); the second containerd (start_containerd2) is passed as "$C2".
PINLET_ENDPOINT=unix://$D/pinlet.sock
C2=unix://$D/containerd2/containerd.sock

# repo_digest_of P|C|ENDPOINT IMAGE: the manifest digest a containerd recorded for IMAGE
# (after a pull): the digest part of its repo_digests entry for IMAGE's repository.
repo_digest_of() {
	local via=$1 image=$2 repo
	case $image in
	*@*) repo=${image%@*} ;;
	*) repo=${image%:*} ;;
	esac
	cri "$via" "ImageStatus $image" image-status "$image"
	jq -r --arg repo "$repo" '.image.repo_digests[]? | select(startswith($repo + "@")) |
		sub("^[^@]*@"; "")' <<<"$out" | head -n 1
}

# The digest pinlet substituted for IMAGE in a PullImage (the audit record).
pinned_digest() {
	local image=$1
	jq -r --arg img "$image" 'select(.method == "PullImage" and .image == $img and
		.decision == "substituted") | .resolved | sub("^[^@]*@"; "")' "$AUDIT" | tail -n 1
}

# Three images from one static pause binary (lib/images.sh): the sandbox and two app
# variants, A1 and A2 their digests.
build_images() {
	build_app_images "$D/img" pinlet-mirrors
	A1=$(layout_digest "$D/img/app1")
	A2=$(layout_digest "$D/img/app2")
	[ "$A1" != "$A2" ] || it_fail "app1 and app2 have the same digest"
}

# UP: the upstream registry (real, or a loopback port where nothing listens: DOWN=1);
# MIR: the mirror. Both plain HTTP. HOSTS=$D/containerd/certs.d is containerd's
# config_path and pinlet's hosts_dir.
setup_registries() {
	build_images
	start_registry "$D/mirror" "" mirror || it_fail "mirror registry"
	MIR=$REGISTRY_ADDR
	push_image "$D/img/pause" "$MIR" tiny/pause:v1 || it_fail "push pause"
	if [ "${DOWN:-0}" = 1 ]; then
		# a port that was free a moment ago and that nobody is told about
		UP=127.0.0.1:$(free_port)
	else
		start_registry "$D/upstream" "" upstream || it_fail "upstream registry"
		UP=$REGISTRY_ADDR
	fi
	it_log "upstream $UP, mirror $MIR"
	# the sandbox image from the mirror, through its own plain-HTTP entry
	PINLET_SANDBOX_IMAGE=$MIR/tiny/pause:v1 start_containerd "$D/containerd" "$MIR" ||
		it_fail "containerd"
	HOSTS=$CONTAINERD_DIR/certs.d
}

# hosts.toml for the upstream: the mirror first (pull, resolve), then the server.
mirror_hosts_toml() {
	containerd_add_mirror "$HOSTS" "$UP" "http://$UP" "http://$MIR"
}

# pinlet_config FILE [EXTRA_YAML]: enforce, fail closed, 1 s cache, hosts_dir = HOSTS,
# no credential files.
pinlet_config() {
	local file=$1 extra=${2:-}
	{
		echo "mode: enforce"
		echo "on_failure: closed"
		echo "cache: {ttl: 1s, negative_ttl: 1s, error_ttl: 1s}"
		echo "credentials: {docker_config: [\"$D/no-such-docker-config.json\"]}"
		echo "hosts_dir: \"$HOSTS\""
		[ -z "$extra" ] || printf '%s\n' "$extra"
	} >"$file"
	"$PINLET_BIN" check-config "$file" >/dev/null || it_fail "pinlet check-config $file: $(cat "$file")"
}

start_pinlet() {
	start_bg pinlet "$PINLET_BIN" serve --config "$D/pinlet.yaml" --listen "$D/pinlet.sock" \
		--runtime-endpoint "$CONTAINERD_ENDPOINT" --state-dir "$D/state" \
		--audit-log "$AUDIT" --log-level debug
	wait_for_socket "$D/pinlet.sock" 10 || it_fail "pinlet does not listen on $D/pinlet.sock"
	"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" wait 10 >/dev/null ||
		it_fail "no CRI Version through pinlet"
	# the runtime was recognized and its files are named in the log
	wait_until 5 grep -q "registry hosts: hosts_dir $HOSTS" "$D/logs/pinlet.log" ||
		it_fail "pinlet's log does not name hosts_dir $HOSTS"
	grep -q "runtime: containerd" "$D/logs/pinlet.log" ||
		it_fail "pinlet did not recognize containerd"
}

# A second containerd with the same config_path and no pinlet: what containerd itself
# resolves a tag to. Only pulls are made on it (no containers, no mounts to clean up).
start_containerd2() {
	local dir=$D/containerd2
	mkdir -p "$dir/root" "$dir/state" "$dir/opt" "$dir/runc" "$dir/cni"
	_containerd_write_config "$dir" "$MIR/tiny/pause:v1"
	sed -i "s|config_path = .*|config_path = \"$HOSTS\"|" "$dir/config.toml"
	start_bg containerd2 containerd --config "$dir/config.toml"
	wait_for_socket "$dir/containerd.sock" 20 || it_fail "second containerd does not listen"
	"$PINLET_IT_CRI" -e "$C2" wait 20 >/dev/null || it_fail "second containerd does not answer"
}

# resolve_cli REF [RUNTIME]: pinlet resolve with the daemon's configuration, in front of
# RUNTIME (default containerd): REF -> "digest endpoint".
resolve_cli() {
	"$PINLET_BIN" resolve --config "$D/pinlet.yaml" --runtime "${2:-containerd}" --endpoint "$1" |
		awk -F'\t' '{ sub(/^[^@]*@/, "", $2); print $2, $3 }'
}

# ---- cases -----------------------------------------------------------------------------

case_airgap() {
	DOWN=1 setup_registries
	push_image "$D/img/app1" "$MIR" tiny/app:v1 || it_fail "push app1 to the mirror"
	mirror_hosts_toml
	pinlet_config "$D/pinlet.yaml"
	start_pinlet

	local img=$UP/tiny/app:v1 got
	got=$(resolve_cli "$img")
	[ "$got" = "$A1 http://$MIR" ] || it_fail "pinlet resolve: '$got', want '$A1 http://$MIR'"
	it_log "ok: pinlet resolve names the mirror"

	cri P "PullImage $img" pull "$img"
	[ "$(pinned_digest "$img")" = "$A1" ] ||
		it_fail "pinned '$(pinned_digest "$img")', want the mirror's $A1; audit: $(cat "$AUDIT")"
	grep -q "resolved $img to $A1 at http://$MIR" "$D/logs/pinlet.log" ||
		it_fail "pinlet's log does not name the mirror as the endpoint"
	[ "$(repo_digest_of C "$UP/tiny/app@$A1")" = "$A1" ] ||
		it_fail "containerd does not hold $UP/tiny/app@$A1"

	# and it runs: RunPodSandbox + CreateContainer by tag through pinlet
	cri P "run $img" run "$img" -n default -N airgap -I airgap-uid
	local cid
	cid=$(jq -r '.container_id // empty' <<<"$out")
	[ -n "$cid" ] || it_fail "run: no container id: $out"
	cri C "ContainerStatus" container-status "$cid"
	expect "container runs the mirror's digest" "$out" \
		'.state == "CONTAINER_RUNNING" and (.image_ref | endswith($d))' --arg d "$A1"
}

# lagging and fallthrough share the setup: UP has tiny/app:v1 = app2 and tiny/other:v1 =
# app1; MIR has tiny/app:v1 = app1 (lagging) and no tiny/other.
setup_two() {
	setup_registries
	push_image "$D/img/app2" "$UP" tiny/app:v1 || it_fail "push app2 upstream"
	push_image "$D/img/app1" "$UP" tiny/other:v1 || it_fail "push other upstream"
	push_image "$D/img/app1" "$MIR" tiny/app:v1 || it_fail "push app1 to the mirror"
	mirror_hosts_toml
	pinlet_config "$D/pinlet.yaml"
	start_pinlet
	start_containerd2
}

# compare IMAGE WANT_DIGEST WANT_ENDPOINT: pinlet's pin == second containerd's pull.
compare() {
	local img=$1 want=$2 endpoint=$3 direct got
	cri "$C2" "direct PullImage $img" pull "$img"
	direct=$(repo_digest_of "$C2" "$img")
	[ "$direct" = "$want" ] || it_fail "containerd pulled $img as '$direct', expected $want"
	cri P "PullImage $img through pinlet" pull "$img"
	got=$(pinned_digest "$img")
	[ "$got" = "$direct" ] || it_fail "pinlet pinned $img to '$got', containerd pulls '$direct'"
	it_log "ok: pinlet and containerd agree on $img = $got"
	got=$(resolve_cli "$img")
	[ "$got" = "$want $endpoint" ] || it_fail "pinlet resolve $img: '$got', want '$want $endpoint'"
}

case_lagging() {
	setup_two
	compare "$UP/tiny/app:v1" "$A1" "http://$MIR"
}

case_fallthrough() {
	setup_two
	compare "$UP/tiny/other:v1" "$A1" "http://$UP"
	# the mirror was asked first and said 404
	grep -q "endpoint http://$MIR: .*404" "$D/logs/pinlet.log" ||
		it_fail "pinlet's log does not show the mirror's 404"
}

case_tls_certdir() {
	build_images
	local ca=$D/tls
	mkdir -p "$ca"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pinlet test CA" \
		-keyout "$ca/ca.key" -out "$ca/ca.crt" 2>/dev/null || it_fail "CA"
	openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$ca/reg.key" \
		-out "$ca/reg.csr" 2>/dev/null || it_fail "CSR"
	printf 'subjectAltName=IP:127.0.0.1\n' >"$ca/ext"
	openssl x509 -req -in "$ca/reg.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
		-CAcreateserial -days 2 -extfile "$ca/ext" -out "$ca/reg.crt" 2>/dev/null ||
		it_fail "certificate"
	PINLET_REGISTRY_TLS_CERT=$ca/reg.crt PINLET_REGISTRY_TLS_KEY=$ca/reg.key \
		start_registry "$D/tlsreg" "" tlsreg || it_fail "TLS registry"
	local reg=$REGISTRY_ADDR
	# skopeo reads a certificate directory as containerd does: the CA alone
	mkdir -p "$D/skopeo-certs"
	cp "$ca/ca.crt" "$D/skopeo-certs/"
	push_image "$D/img/app1" "$reg" tiny/app:v1 --dest-cert-dir "$D/skopeo-certs" || it_fail "push"
	HOSTS=$D/certs.d
	mkdir -p "$HOSTS/$reg"
	cp "$ca/ca.crt" "$HOSTS/$reg/ca.crt"
	# a second, unrelated CA sorted first: several CAs are all trusted, not just one
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=other CA" \
		-keyout "$ca/other.key" -out "$HOSTS/$reg/0-other.crt" 2>/dev/null || it_fail "other CA"
	pinlet_config "$D/pinlet.yaml"
	local got
	got=$(resolve_cli "$reg/tiny/app:v1")
	[ "$got" = "$A1 https://$reg" ] || it_fail "TLS via the certificate directory: '$got'"
	it_log "ok: the CA in <hosts_dir>/$reg/ca.crt is trusted"
	# without it the CA is unknown: a TLS error (exit 6)
	rm "$HOSTS/$reg/ca.crt"
	local rc=0
	"$PINLET_BIN" resolve --config "$D/pinlet.yaml" --runtime containerd "$reg/tiny/app:v1" \
		>/dev/null 2>"$D/err" || rc=$?
	[ $rc -eq 6 ] || it_fail "without the CA: exit $rc, want 6: $(cat "$D/err")"
	it_log "ok: without the CA file the registry is not trusted"
}

case_default() {
	DOWN=1 setup_registries
	push_image "$D/img/app1" "$MIR" tiny/app:v1 || it_fail "push app1 to the mirror"
	mkdir -p "$HOSTS/_default"
	cat >"$HOSTS/_default/hosts.toml" <<EOF
[host."http://$MIR"]
  capabilities = ["pull", "resolve"]
EOF
	pinlet_config "$D/pinlet.yaml"
	start_pinlet
	start_containerd2
	compare "$UP/tiny/app:v1" "$A1" "http://$MIR"
}

case_reload() {
	setup_registries
	push_image "$D/img/app2" "$UP" tiny/app:v1 || it_fail "push app2 upstream"
	push_image "$D/img/app1" "$MIR" tiny/app:v1 || it_fail "push app1 to the mirror"
	mkdir -p "$HOSTS/$UP"
	echo "server = \"http://$UP\"" >"$HOSTS/$UP/hosts.toml"
	pinlet_config "$D/pinlet.yaml"
	start_pinlet
	local img=$UP/tiny/app:v1
	cri P "PullImage $img (no mirror)" pull "$img"
	[ "$(pinned_digest "$img")" = "$A2" ] || it_fail "without a mirror: pinned '$(pinned_digest "$img")', want $A2"

	# the mirror appears in hosts.toml (written in place, as an editor does); the 1 s
	# cache expires, and the next pull goes through the mirror: no restart
	local pid
	pid=$(bg_pid pinlet)
	mirror_hosts_toml
	_pulled_from_mirror() {
		"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" -t 30 pull "$img" >/dev/null 2>&1 &&
			[ "$(pinned_digest "$img")" = "$A1" ]
	}
	wait_until 15 _pulled_from_mirror || it_fail "the hosts.toml change was not applied: $(tail -n 3 "$AUDIT")"
	[ "$(bg_pid pinlet)" = "$pid" ] && bg_running pinlet || it_fail "pinlet restarted"
	it_log "ok: the new mirror applies without a restart"

	# and back: the mirror leaves hosts.toml (replaced by rename, as tools do)
	echo "server = \"http://$UP\"" >"$HOSTS/$UP/hosts.toml.new"
	mv "$HOSTS/$UP/hosts.toml.new" "$HOSTS/$UP/hosts.toml"
	_pulled_from_upstream() {
		"$PINLET_IT_CRI" -e "$PINLET_ENDPOINT" -t 30 pull "$img" >/dev/null 2>&1 &&
			[ "$(pinned_digest "$img")" = "$A2" ]
	}
	wait_until 15 _pulled_from_upstream || it_fail "the second change was not applied: $(tail -n 3 "$AUDIT")"
	[ "$(bg_pid pinlet)" = "$pid" ] || it_fail "pinlet restarted"
	it_log "ok: removing the mirror applies without a restart"
}

# start_fake NAME ARGS...: a registry_fake on a free port, its address in $FAKE.
start_fake() {
	local name=$1
	shift
	start_bg "$name" "$REGISTRY_FAKE" --port-file "$D/$name.port" "$@"
	wait_until 10 test -s "$D/$name.port" || it_fail "fake $name did not start"
	FAKE=127.0.0.1:$(cat "$D/$name.port")
}

fake_stat() { # fake_stat HOSTPORT KEY
	curl -sf --max-time 5 "http://$1/stats" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}

case_endpoints() {
	[ -x "${REGISTRY_FAKE:-}" ] || it_fail "REGISTRY_FAKE must name the fake registry"
	build_images
	start_registry "$D/mirror" "" mirror || it_fail "mirror registry"
	MIR=$REGISTRY_ADDR
	push_image "$D/img/app2" "$MIR" tiny/app:v1 || it_fail "push app2 to the mirror"
	start_fake fake500 --mode status:500
	local f500=$FAKE
	start_fake fakeauth --mode ok --require-basic "mirror-user:mirror-pass"
	local fauth=$FAKE fdigest
	fdigest=$(fake_stat "$fauth" manifest_digest)
	[ -n "$fdigest" ] || it_fail "no digest from the fake's /stats"
	UP=127.0.0.1:$(free_port) # nothing listens
	HOSTS=$D/certs.d
	mkdir -p "$HOSTS/$UP"
	cat >"$HOSTS/$UP/hosts.toml" <<EOT
server = "http://$UP"

# pull only: never asked for a tag, although it holds one
[host."http://$MIR"]
  capabilities = ["pull"]

[host."http://$f500"]
  capabilities = ["pull", "resolve"]

[host."http://$fauth"]
  capabilities = ["pull", "resolve"]
  [host."http://$fauth".header]
    Authorization = "Basic $(printf 'mirror-user:mirror-pass' | base64 -w0)"
EOT
	pinlet_config "$D/pinlet.yaml"
	local got
	got=$(resolve_cli "$UP/tiny/app:v1")
	[ "$got" = "$fdigest http://$fauth" ] || it_fail "endpoints: '$got', want '$fdigest http://$fauth'"
	[ "$(fake_stat "$f500" requests)" -ge 1 ] || it_fail "the 5xx mirror was not asked"
	[ "$(fake_stat "$fauth" authorization)" -ge 1 ] || it_fail "the header did not reach the fake"
	if grep -q 'pinlet/' "$D/logs/mirror.log"; then
		it_fail "the pull-only mirror was asked: $(grep pinlet/ "$D/logs/mirror.log")"
	fi
	it_log "ok: pull-only skipped, 5xx skipped, [header] sent, the third endpoint answered"

	# without the header the fake refuses (401, no credentials), the upstream is down:
	# the error is the first failure that was not a 404, the 5xx (exit 5)
	sed -i '/header\]/d; /Authorization/d' "$HOSTS/$UP/hosts.toml"
	local rc=0
	"$PINLET_BIN" resolve --config "$D/pinlet.yaml" --runtime containerd "$UP/tiny/app:v1" \
		>/dev/null 2>"$D/err" || rc=$?
	[ $rc -eq 5 ] || it_fail "all endpoints failing: exit $rc, want 5: $(cat "$D/err")"
	grep -q "endpoint http://$f500: .*HTTP 500" "$D/err" ||
		it_fail "the error does not name the 5xx endpoint: $(cat "$D/err")"
	it_log "ok: $(cat "$D/err")"

	# override_path: the URL's path is the API root as written
	cat >"$HOSTS/$UP/hosts.toml" <<EOT
server = "http://$UP"
[host."http://$MIR/v2"]
  override_path = true
EOT
	got=$(resolve_cli "$UP/tiny/app:v1")
	[ "$got" = "$A2 http://$MIR" ] || it_fail "override_path: '$got', want '$A2 http://$MIR'"
	it_log "ok: override_path"

	# pinlet's own registries.<host>.mirrors: the files are not read for that host
	cat >"$HOSTS/$UP/hosts.toml" <<EOT
[host."http://$f500"]
EOT
	local before
	before=$(fake_stat "$f500" requests)
	pinlet_config "$D/pinlet.yaml" "registries:
  \"$UP\": {mirrors: [\"http://$MIR\"]}"
	got=$(resolve_cli "$UP/tiny/app:v1")
	[ "$got" = "$A2 http://$MIR" ] || it_fail "registries.mirrors: '$got', want '$A2 http://$MIR'"
	[ "$(fake_stat "$f500" requests)" = "$before" ] || it_fail "hosts.toml was used despite mirrors:"
	it_log "ok: registries.<host>.mirrors wins over hosts.toml"

	# pinlet's registries.<endpoint host> wins over the file's settings for that endpoint:
	# hosts.toml says https, pinlet's entry for the mirror says insecure (plain http)
	cat >"$HOSTS/$UP/hosts.toml" <<EOT
[host."https://$MIR"]
EOT
	pinlet_config "$D/pinlet.yaml"
	rc=0
	"$PINLET_BIN" resolve --config "$D/pinlet.yaml" --runtime containerd "$UP/tiny/app:v1" \
		>/dev/null 2>"$D/err" || rc=$?
	[ $rc -ne 0 ] || it_fail "https to a plain-HTTP mirror answered"
	pinlet_config "$D/pinlet.yaml" "registries:
  \"$MIR\": {insecure: true}"
	got=$(resolve_cli "$UP/tiny/app:v1")
	[ "$got" = "$A2 http://$MIR" ] || it_fail "registries.<mirror> insecure: '$got'"
	it_log "ok: registries.<endpoint host> wins over the file for that endpoint"
}

# registries.conf end to end with pinlet resolve (CRI-O is not packaged for Debian 12:
# the selection rules themselves are unit-tested in test_hosts_regconf.c).
case_regconf() {
	setup_registries_plain
	push_image "$D/img/app2" "$UP" tiny/app:v1 || it_fail "push app2 upstream"
	push_image "$D/img/app1" "$MIR" tiny/app:v1 || it_fail "push app1 to the mirror"
	local conf=$D/registries.conf got rc
	mkdir -p "$conf.d"
	cat >"$conf" <<EOT
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "$UP/tiny"
location = "$UP/tiny"
insecure = true
[[registry.mirror]]
location = "$MIR/tiny"
insecure = true
pull-from-mirror = "tag-only"
EOT
	{
		echo "credentials: {docker_config: [\"$D/no-such-docker-config.json\"]}"
		echo "registries_conf: \"$conf\""
	} >"$D/pinlet.yaml"
	got=$(resolve_cli "$UP/tiny/app:v1" cri-o)
	[ "$got" = "$A1 http://$MIR" ] || it_fail "tag-only mirror: '$got', want '$A1 http://$MIR'"
	it_log "ok: the tag-only mirror answers for a tag (https refused, then plain http)"

	# a drop-in makes the mirror digest-only: the upstream answers
	cat >"$conf.d/50-digest-only.conf" <<EOT
[[registry]]
prefix = "$UP/tiny"
location = "$UP/tiny"
insecure = true
mirror-by-digest-only = true
[[registry.mirror]]
location = "$MIR/tiny"
insecure = true
EOT
	got=$(resolve_cli "$UP/tiny/app:v1" cri-o)
	[ "$got" = "$A2 http://$UP" ] || it_fail "mirror-by-digest-only: '$got', want '$A2 http://$UP'"
	it_log "ok: a drop-in's mirror-by-digest-only leaves tags to the upstream"

	# blocked: not resolved (exit 1, the message says why)
	cat >"$conf.d/60-blocked.conf" <<EOT
[[registry]]
prefix = "$UP/tiny"
blocked = true
EOT
	rc=0
	"$PINLET_BIN" resolve --config "$D/pinlet.yaml" --runtime cri-o "$UP/tiny/app:v1" \
		>/dev/null 2>"$D/err" || rc=$?
	[ $rc -eq 1 ] && grep -q "blocked by registries.conf" "$D/err" ||
		it_fail "blocked: exit $rc: $(cat "$D/err")"
	it_log "ok: $(cat "$D/err")"
}

# The image the fake backend received in its last METHOD call (a PullImageRequest or
# ImageStatusRequest: field 1, ImageSpec, whose field 1 is the image; short lengths, so
# the bytes are 0a L 0a N IMAGE...).
received_image() {
	local b64 len
	b64=$(jq -r --arg m "/$1" 'select(.event == "call" and (.method | endswith($m))) |
		.first // empty' "$D/fake.jsonl" | tail -n 1)
	[ -n "$b64" ] || it_fail "the fake backend logged no $1"
	len=$(base64 -d <<<"$b64" | od -An -tu1 -j3 -N1 | tr -d ' ')
	base64 -d <<<"$b64" | tail -c +5 | head -c "$len"
}

# The last audit record for IMAGE.
audit_of() {
	jq -c --arg img "$1" 'select(.image == $img)' "$AUDIT" | tail -n 1
}

case_crio_short() {
	[ -x "${FAKE_BACKEND:-}" ] || it_fail "FAKE_BACKEND must name test/fake's fake_backend"
	build_images
	start_registry "$D/reg" "" reg || it_fail "registry"
	local reg=$REGISTRY_ADDR conf=$D/registries.conf got rec
	push_image "$D/img/app1" "$reg" tiny/app:v1 || it_fail "push app1"
	cat >"$conf" <<EOT
unqualified-search-registries = ["quay.io", "docker.io"]

[[registry]]
prefix = "$reg"
insecure = true

[aliases]
"app" = "$reg/tiny/app"
EOT
	{
		echo "mode: enforce"
		echo "on_failure: closed"
		echo "credentials: {docker_config: [\"$D/no-such-docker-config.json\"]}"
		echo "registries_conf: \"$conf\""
	} >"$D/pinlet.yaml"
	"$PINLET_BIN" check-config "$D/pinlet.yaml" >/dev/null || it_fail "check-config"
	start_bg fake "$FAKE_BACKEND" --socket "$D/fake.sock" --log "$D/fake.jsonl" \
		--runtime-name cri-o
	wait_for_socket "$D/fake.sock" 10 || it_fail "the fake backend does not listen"
	start_bg pinlet "$PINLET_BIN" serve --config "$D/pinlet.yaml" --listen "$D/pinlet.sock" \
		--runtime-endpoint "unix://$D/fake.sock" --state-dir "$D/state" \
		--audit-log "$AUDIT" --log-level debug
	wait_for_socket "$D/pinlet.sock" 10 || it_fail "pinlet does not listen on $D/pinlet.sock"
	wait_until 5 grep -q "short names: registries.conf (CRI-O)" "$D/logs/pinlet.log" ||
		it_fail "pinlet does not qualify short names from registries.conf: $(cat "$D/logs/pinlet.log")"
	grep -q "runtime: cri-o" "$D/logs/pinlet.log" || it_fail "pinlet did not recognize CRI-O"

	# the alias: resolved at the loopback registry, pinned under the qualified name
	cri P "PullImage app:v1" pull app:v1 -n default -N web -I web-uid
	got=$(received_image PullImage)
	[ "$got" = "$reg/tiny/app@$A1" ] || it_fail "the backend got '$got', want '$reg/tiny/app@$A1'"
	rec=$(audit_of app:v1)
	expect "alias substituted" "$rec" '.decision == "substituted" and .resolved == $r' \
		--arg r "$reg/tiny/app@$A1"
	out=$("$PINLET_BIN" pins --json --config "$D/pinlet.yaml" --state-dir "$D/state")
	expect "pinned under the qualified name" "$out" \
		'select(.reference == $k) | .digest == $d' --arg k "$reg/tiny/app:v1" --arg d "$A1"

	# ambiguous: as written to the backend, never resolved (docker.io is not asked)
	cri P "PullImage nginx:1.25" pull nginx:1.25 -n default -N web -I web-uid
	got=$(received_image PullImage)
	[ "$got" = "nginx:1.25" ] || it_fail "the backend got '$got', want 'nginx:1.25'"
	rec=$(audit_of nginx:1.25)
	expect "ambiguous passed through" "$rec" '.decision == "passed_through" and .error == $e and
		(has("resolved") | not)' --arg e \
		"short name 'nginx' is ambiguous: unqualified-search-registries has quay.io, docker.io"
	! grep -q "docker.io/library/nginx" "$D/logs/pinlet.log" ||
		it_fail "pinlet qualified the ambiguous name: $(cat "$D/logs/pinlet.log")"

	# pinlet resolve, told the runtime is CRI-O, qualifies as the daemon does
	out=$("$PINLET_BIN" resolve --config "$D/pinlet.yaml" --runtime cri-o app:v1) ||
		it_fail "pinlet resolve app:v1 failed"
	[ "$out" = "app:v1	$reg/tiny/app@$A1" ] || it_fail "pinlet resolve app:v1: '$out'"
	local rc=0
	out=$("$PINLET_BIN" resolve --config "$D/pinlet.yaml" --runtime cri-o nginx:1.25 2>&1) ||
		rc=$?
	[ "$rc" = 2 ] && [[ $out == *"short name 'nginx' is ambiguous"* ]] ||
		it_fail "pinlet resolve nginx:1.25 in front of CRI-O: exit $rc: $out"
	it_log "ok: pinlet resolve qualifies short names as CRI-O does"

	# pinlet lock too: the entry's key is the name the daemon looks up in front of CRI-O
	out=$("$PINLET_BIN" lock --config "$D/pinlet.yaml" --runtime cri-o app:v1) ||
		it_fail "pinlet lock app:v1 failed"
	grep -qF "$reg/tiny/app:v1" <<<"$out" && grep -qF "$A1" <<<"$out" ||
		it_fail "pinlet lock app:v1 in front of CRI-O: $out"
	rc=0
	out=$("$PINLET_BIN" lock --config "$D/pinlet.yaml" --runtime cri-o nginx:1.25 2>&1) || rc=$?
	[ "$rc" = 2 ] && [[ $out == *"short name 'nginx' is ambiguous"* ]] ||
		it_fail "pinlet lock nginx:1.25 in front of CRI-O: exit $rc: $out"
	it_log "ok: pinlet lock qualifies short names as CRI-O does"
}

# Both registries, no containerd.
setup_registries_plain() {
	build_images
	start_registry "$D/mirror" "" mirror || it_fail "mirror registry"
	MIR=$REGISTRY_ADDR
	start_registry "$D/upstream" "" upstream || it_fail "upstream registry"
	UP=$REGISTRY_ADDR
}

"case_$case_name"
it_log "PASS: $case_name"
