#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# kubelet credential provider plugins end to end: an htpasswd docker-registry holding a
# private image, containerd, and `pinlet serve` configured with credentials.provider_config
# and provider_bin_dir naming the test provider (provider.sh, kubelet's exec protocol,
# counting its runs). No credentials anywhere else: no Docker config file, none in the
# requests. Checks:
#   - ImageStatus of the tag through pinlet resolves with the provider's credentials (the
#     image, pulled directly into containerd by digest, is found);
#   - ten ImageStatus calls spread over several resolution-cache periods (cache.ttl 1s:
#     the registry sees pinlet resolve more than once) run the provider once; after the
#     provider's cacheDuration it runs once more;
#   - `pinlet resolve` uses the provider too; a failing provider fails the resolution
#     with a message naming it (exit 5);
#   - the provider's stderr is in pinlet's debug log, and its password is in no file of
#     the test directory (logs, audit log, state) nor in this script's output.
#
# Needs root, containerd, runc, docker-registry, skopeo, jq, htpasswd, openssl.
# Environment (ctest sets it, see credprov.cmake): PINLET_BIN, PINLET_IT_CRI, PINLET_IT_LIB.
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lib=${PINLET_IT_LIB:-$here/../lib}

# ---- outer invocation: capture the transcript, then search it for the password -------
if [ -z "${_PINLET_CREDPROV_INNER:-}" ]; then
	export _PINLET_CREDPROV_INNER=1
	PINLET_CREDPROV_PASSWORD=$(openssl rand -hex 12)
	export PINLET_CREDPROV_PASSWORD
	# shellcheck source=../lib/transcript.sh
	. "$lib/transcript.sh"
	rc=0
	transcript_check credprov alice "$PINLET_CREDPROV_PASSWORD" "the provider's password" \
		-- bash "$0" "$@" || rc=$?
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

it_require run.sh "containerd containerd-shim-runc-v2 runc docker-registry skopeo gcc jq htpasswd openssl ss" \
	"PINLET_BIN PINLET_IT_CRI"
PW=${PINLET_CREDPROV_PASSWORD:?}

it_setup
D=$PINLET_IT_DIR
AUDIT=$D/audit.jsonl

# expect (a jq assertion) comes from lib/cri_assert.sh.
runs() { [ -f "$D/provider/runs" ] && wc -l <"$D/provider/runs" || echo 0; }
status_via_pinlet() {
	"$PINLET_IT_CRI" -e "unix://$D/pinlet.sock" -t 30 image-status "$IMG" 2>"$D/cri.stderr"
}
# pinlet's manifest requests for the tag, from the registry's access log
pinlet_manifest_requests() {
	grep -c "/v2/tiny/private/manifests/v1.*pinlet/" "$D/logs/regauth.log" || true
}

# ---- registry with htpasswd, the private image, containerd -----------------------------
mkdir -p "$D/img" "$D/auth" "$D/provider/bin"
printf '%s' "$PW" >"$D/auth/password"
htpasswd -Bbn alice "$PW" >"$D/auth/htpasswd" 2>/dev/null || it_fail "htpasswd"
build_pause_binary "$D/img/pause.bin" || it_fail "build_pause_binary"
build_pause_image "$D/img/app" app "$D/img/pause.bin" || it_fail "image"
PINLET_REGISTRY_AUTH_YAML="{htpasswd: {realm: pinlet-test, path: \"$D/auth/htpasswd\"}}" \
	start_registry "$D/regauth" "" regauth || it_fail "registry with htpasswd"
REG=$REGISTRY_ADDR
IMG=$REG/tiny/private:v1
push_image "$D/img/app" "$REG" tiny/private:v1 --dest-creds "alice:$PW" ||
	it_fail "push to $REG with credentials"
DIG=$(registry_digest "$REG" tiny/private:v1 --creds "alice:$PW")
[ "$DIG" = "$(layout_digest "$D/img/app")" ] || it_fail "private digest $DIG"
curl -sf -o /dev/null "http://$REG/v2/tiny/private/manifests/v1" &&
	it_fail "$REG serves without credentials"
start_containerd "$D/containerd" "$REG" || it_fail "containerd"
# The image is in containerd by digest (pulled directly, with the password from its file),
# so ImageStatus of the tag through pinlet finds it exactly when pinlet resolved the tag.
out=$("$PINLET_IT_CRI" -e "$CONTAINERD_ENDPOINT" -t 120 pull "$REG/tiny/private@$DIG" \
	-u alice -P "$D/auth/password") || it_fail "direct pull by digest: $out"
ID=$(jq -r .image_ref <<<"$out")
it_log "containerd holds $REG/tiny/private@$DIG as $ID"

# ---- the provider and pinlet ----------------------------------------------------------
install -m 0755 "$here/provider.sh" "$D/provider/bin/pinlet-test-provider"
install -m 0755 "$here/provider.sh" "$D/provider/bin/pinlet-test-provider-fail"
provider_config() {
	cat <<YAML
apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: $1
    matchImages: ["127.0.0.*:$REGISTRY_PORT"]
    defaultCacheDuration: 1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [get-credentials]
    env:
      - {name: PROVIDER_RUNS, value: "$D/provider/runs"}
      - {name: PROVIDER_PASSWORD_FILE, value: "$D/auth/password"}
      - {name: PROVIDER_MATCH, value: "$REG"}
      - {name: PROVIDER_CACHE_DURATION, value: "20s"}
$2
YAML
}
provider_config pinlet-test-provider "" >"$D/provider/config.yaml"
provider_config pinlet-test-provider-fail "      - {name: PROVIDER_FAIL, value: '1'}" \
	>"$D/provider/config-fail.yaml"
pinlet_config() {
	cat <<YAML
mode: enforce
on_failure: closed
cache: {ttl: 1s, negative_ttl: 1s}
credentials:
  docker_config: ["$D/no-such-docker-config.json"]
  provider_config: "$1"
  provider_bin_dir: "$D/provider/bin"
registries:
  "$REG": {insecure: true}
YAML
}
pinlet_config "$D/provider/config.yaml" >"$D/pinlet.yaml"
pinlet_config "$D/provider/config-fail.yaml" >"$D/pinlet-fail.yaml"
"$PINLET_BIN" check-config "$D/pinlet.yaml" || it_fail "check-config"
[ "$(runs)" = 0 ] || it_fail "check-config ran the provider"

start_bg pinlet "$PINLET_BIN" serve --config "$D/pinlet.yaml" --listen "$D/pinlet.sock" \
	--runtime-endpoint "$CONTAINERD_ENDPOINT" --state-dir "$D/state" \
	--audit-log "$AUDIT" --log-level debug
wait_for_socket "$D/pinlet.sock" 10 || it_fail "pinlet does not listen"
"$PINLET_IT_CRI" -e "unix://$D/pinlet.sock" wait 10 >/dev/null || it_fail "no CRI Version through pinlet"

# ---- ImageStatus resolves with the provider's credentials, once per cache period ------
before=$(pinlet_manifest_requests)
t_first=$(date +%s%N)
for i in $(seq 1 10); do
	out=$(status_via_pinlet) || it_fail "ImageStatus $IMG ($i): $out $(cat "$D/cri.stderr")"
	expect "ImageStatus $IMG ($i) finds the image the tag resolves to" "$out" \
		'.status == "OK" and .image.id == $id' --arg id "$ID"
	# spread over several resolution-cache periods (cache.ttl 1s)
	[ "$i" = 10 ] || sleep 0.25
done
t_last=$(date +%s%N)
[ $(((t_last - t_first) / 1000000)) -lt 20000 ] ||
	it_fail "the ten calls took longer than the provider's cacheDuration: inconclusive"
after=$(pinlet_manifest_requests)
[ $((after - before)) -ge 2 ] ||
	it_fail "pinlet asked the registry $((after - before)) times: the resolution cache hid the provider cache"
[ "$(runs)" = 1 ] || it_fail "the provider ran $(runs) times for ten ImageStatus calls, want 1"
it_log "ok: ten ImageStatus calls, $((after - before)) registry resolutions, 1 provider run"
[ "$(head -n 1 "$D/provider/runs")" = "$REG/tiny/private" ] ||
	it_fail "the provider was asked for '$(head -n 1 "$D/provider/runs")', want $REG/tiny/private"
grep -q "credential provider pinlet-test-provider: stderr: pinlet-test-provider: answering for" \
	"$D/logs/pinlet.log" || it_fail "the provider's stderr is not in pinlet's debug log"

# after the provider's cacheDuration (20s from its run) the next resolution runs it again
_second_run() {
	status_via_pinlet >/dev/null || return 1
	[ "$(runs)" -ge 2 ]
}
wait_until 40 _second_run || it_fail "the provider did not run again after its cacheDuration"
[ "$(runs)" = 2 ] || it_fail "the provider ran $(runs) times, want 2"
it_log "ok: one more run after the cacheDuration"

# ---- pinlet resolve with the same configuration; a failing provider -------------------
out=$("$PINLET_BIN" resolve --config "$D/pinlet.yaml" "$IMG" 2>"$D/resolve.stderr") ||
	it_fail "pinlet resolve: $(cat "$D/resolve.stderr")"
[ "$out" = "$IMG	$REG/tiny/private@$DIG" ] || it_fail "pinlet resolve printed '$out'"
[ "$(runs)" = 3 ] || it_fail "pinlet resolve: the provider ran $(runs) times in all, want 3"
it_log "ok: pinlet resolve: $out"
rc=0
"$PINLET_BIN" resolve --config "$D/pinlet-fail.yaml" "$IMG" >/dev/null 2>"$D/resolve-fail.stderr" || rc=$?
[ "$rc" = 5 ] || it_fail "failing provider: pinlet resolve exit $rc, want 5: $(cat "$D/resolve-fail.stderr")"
grep -q "credential provider pinlet-test-provider-fail: exited with status 1" "$D/resolve-fail.stderr" ||
	it_fail "failing provider: message does not name it: $(cat "$D/resolve-fail.stderr")"
grep -q "tiny/private:v1" "$D/resolve-fail.stderr" ||
	it_fail "failing provider: message does not name the image: $(cat "$D/resolve-fail.stderr")"
it_log "ok: failing provider: $(cat "$D/resolve-fail.stderr")"

# ---- the password is in no file of the test directory but its own -----------------------
b64=$(printf 'alice:%s' "$PW" | base64 -w0)
leaks=$(grep -rlF -D skip -e "$PW" -e "$b64" "$D" --exclude=password 2>/dev/null | grep -v "^$D/regauth/data/" || true)
[ -z "$leaks" ] || it_fail "the provider's password appears in: $leaks"
[ -s "$AUDIT" ] || it_fail "no audit log written"
it_log "ok: the password is in no log, audit record or state file"
