#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The verifier contract end to end (pinlet in front of real containerd and
# docker-registry), with shell verifiers in verifiers.bin_dir:
#   - a recorder proves argv byte for byte and the descriptor on stdin: mediaType right
#     for an OCI index, an OCI manifest and a Docker schema2 manifest, digest, and size
#     equal to the manifest's size in the registry;
#   - verdict cache: ten pulls of one digest run the verifiers once;
#   - AND: a second verifier denies (PERMISSION_DENIED naming it, both results audited);
#   - a slow verifier: timed out and killed; on_failure closed refuses, open passes;
#   - a crashing verifier (SIGSEGV) refuses under closed;
#   - verifiers.max 1: only the first runs;
#   - mode audit: a deny is recorded would_reject and the pull goes through.
# Verifiers decide by their -name argument ("...deny...", "...slow...", "...crash...").
# Needs root, containerd, runc, docker-registry, skopeo, jq.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

verify_start contract.sh "containerd runc docker-registry skopeo jq" "PINLET_BIN PINLET_IT_CRI"
V=$D/verifiers
mkdir -p "$D/img" "$V" "$D/rec"

pull() { cri_answer pull "$REG/$1" || true; }
runs() { find "$D/rec" -name '*.argv' | wc -l; }
last_record() { jq -sc --arg i "$REG/$1" '[.[] | select(.image == $i)] | last' "$D/pinlet/audit.jsonl"; }
config() { # EXTRA_VERIFIERS_YAML [MODE]
	cat >"$D/pinlet/config.yaml" <<YAML
mode: ${2:-enforce}
credentials: {docker_config: ["$D/no-docker-config.json"]}
registries:
  "$REG": {insecure: true}
verifiers:
  bin_dir: "$V"
  $1
YAML
}

# ---- images: an index, an OCI manifest, a Docker schema2 manifest, one per case ---------
start_registry "$D/registry" || it_fail "registry"
REG=$REGISTRY_ADDR
build_oci_index "$D/img/idx" v1 index || it_fail "index"
push_image "$D/img/idx" "$REG" t/idx:v1 || it_fail "push index"
for c in oci cache and-deny slow-closed slow-open crash max-deny audit-deny; do
	build_oci_image "$D/img/$c" v1 "$c" || it_fail "image $c"
	push_image "$D/img/$c" "$REG" "t/$c:v1" || it_fail "push $c"
done
build_oci_image "$D/img/v2s2" v1 docker || it_fail "image v2s2"
push_image "$D/img/v2s2" "$REG" t/v2s2:v1 --format v2s2 || it_fail "push v2s2"

# ---- verifiers ---------------------------------------------------------------------------
cat >"$V/10-record" <<EOF
#!/bin/sh
# records argv (one per line) and stdin, then decides by the name
n=\$(date +%s%N)-\$\$
for a in "\$0" "\$@"; do printf '%s\n' "\$a"; done >"$D/rec/\$n.argv"
cat >"$D/rec/\$n.stdin"
case "\$2" in *slow*) exec sleep 30 ;; *crash*) kill -SEGV \$\$ ;; esac
echo "recorded"
EOF
cat >"$V/20-deny" <<'EOF'
#!/bin/sh
case "$2" in *deny*) echo "denied by the test policy"; echo "stderr line" >&2; exit 1 ;; esac
exit 0
EOF
chmod 0755 "$V/10-record" "$V/20-deny"

start_containerd "$D/containerd" "$REG" || it_fail "containerd"
mkdir -p "$D/pinlet"
config "timeout: 2s"
start_pinlet "$D/pinlet" "$CONTAINERD_ENDPOINT" || it_fail "pinlet"

# ---- the contract, byte for byte ----------------------------------------------------------
check_contract() { # REPO MEDIATYPE
	local before out f size
	before=$(runs)
	out=$(pull "t/$1:v1")
	expect "pull t/$1" "$out" '.status == "OK"'
	[ "$(runs)" = $((before + 1)) ] || it_fail "t/$1: $(($(runs) - before)) verifier runs, want 1"
	f=$(ls -t "$D"/rec/*.argv | head -n 1)
	dig=$(registry_digest "$REG" "t/$1:v1")
	printf '%s\n' "$V/10-record" -name "$REG/t/$1:v1" -digest "$dig" -stdin-media-type \
		application/vnd.oci.descriptor.v1+json >"$D/want.argv"
	cmp -s "$f" "$D/want.argv" || it_fail "t/$1: argv $(cat "$f") want $(cat "$D/want.argv")"
	size=$(skopeo inspect --raw --tls-verify=false "docker://$REG/t/$1:v1" | wc -c)
	expect "t/$1: the descriptor on stdin ($2, size $size)" "$(cat "${f%.argv}.stdin")" \
		'.mediaType == $mt and .digest == $d and .size == ($s | tonumber) and (keys | length) == 3' \
		--arg mt "$2" --arg d "$dig" --arg s "$size"
}
check_contract idx application/vnd.oci.image.index.v1+json
check_contract oci application/vnd.oci.image.manifest.v1+json
check_contract v2s2 application/vnd.docker.distribution.manifest.v2+json

# ---- verdict cache --------------------------------------------------------------------------
before=$(runs)
for i in $(seq 1 10); do
	out=$(pull t/cache:v1)
	[ "$(jq -r .status <<<"$out")" = OK ] || it_fail "cache pull $i: $out"
done
[ "$(runs)" = $((before + 1)) ] || it_fail "ten pulls ran the verifiers $(($(runs) - before)) times, want 1"
it_log "ok: ten pulls of one digest, one verifier run"

# ---- AND -------------------------------------------------------------------------------------
out=$(pull t/and-deny:v1)
expect "the second verifier's deny fails the pull" "$out" \
	'.status == "PERMISSION_DENIED" and (.message | endswith("blocked by verifier 20-deny: denied by the test policy"))'
expect "both results are audited" "$(last_record t/and-deny:v1)" \
	'.decision == "rejected" and [.verifiers[].result] == ["allow", "deny"] and .verifiers[1].name == "20-deny"'
grep -q "verifier 20-deny: stderr: stderr line" "$D/logs/pinlet.log" || it_fail "stderr not in the debug log"

# ---- timeout and crash, on_failure closed ----------------------------------------------------
t0=$(date +%s)
out=$(pull t/slow-closed:v1)
expect "a slow verifier is killed at the timeout and refuses (closed)" "$out" \
	'.status == "PERMISSION_DENIED" and (.message | endswith("blocked by verifier 10-record: timed out (killed)"))'
[ $(($(date +%s) - t0)) -lt 15 ] || it_fail "the slow verifier was not cut at 2s"
pgrep -f "sleep 30" -P "$(bg_pid pinlet)" >/dev/null 2>&1 && it_fail "the slow verifier was not reaped"
out=$(pull t/crash:v1)
expect "a crashing verifier refuses (closed)" "$out" \
	'.status == "PERMISSION_DENIED" and (.message | endswith("killed by signal 11"))'

# ---- on_failure open; max; mode audit --------------------------------------------------------
config "timeout: 2s
  on_failure: open"
restart_pinlet "$D/pinlet" || it_fail "restart (open)"
out=$(pull t/slow-open:v1)
expect "a slow verifier is skipped (open)" "$out" '.status == "OK"'
grep -q "skipped (verifiers.on_failure: open)" "$D/logs/pinlet.log" || it_fail "no warning for the skip"

config "max: 1"
restart_pinlet "$D/pinlet" || it_fail "restart (max)"
out=$(pull t/max-deny:v1)
expect "verifiers.max 1: the denying second verifier never runs" "$out" '.status == "OK"'
expect "one result audited" "$(last_record t/max-deny:v1)" '(.verifiers | length) == 1'

config "timeout: 2s" audit
restart_pinlet "$D/pinlet" || it_fail "restart (audit)"
out=$(pull t/audit-deny:v1)
expect "mode audit: a deny forwards the pull" "$out" '.status == "OK"'
expect "mode audit: recorded would_reject" "$(jq -sc --arg i "$REG/t/audit-deny:v1" \
	'[.[] | select(.image == $i and .decision == "would_reject")] | last' "$D/pinlet/audit.jsonl")" \
	'.verifiers[1].result == "deny" and .mode == "audit"'
it_log "ok: all contract cases"
