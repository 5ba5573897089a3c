#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Single-flight through the real daemon against a real docker-registry. `pinlet serve`
# runs in front of the fake CRI backend (test/fake/fake_backend, echo mode: it answers each
# call with the request bytes it received, so no containerd is needed), and
# singleflight_burst fires concurrent calls for one tag through pinlet on one shared
# channel. docker-registry's own request log (level info: one "response completed" line
# per request, with http.request.uri; plus the access log, counted separately as a cross
# check) is the witness of how many manifest requests reached the registry.
#
#   1. 50 concurrent ImageStatus(tiny/app:v1), cold cache: all OK, the backend received
#      127.0.0.1:PORT/tiny/app@<registry's digest> in every call, exactly ONE request for
#      /v2/tiny/app/manifests/v1, 50 audit records of which exactly one has source
#      "registry" (the rest "cache").
#   2. 64 concurrent PullImage(tiny/app:v2), a tag nobody resolved yet: the same, one
#      request for /v2/tiny/app/manifests/v2.
#   3. After the cache TTL expired: 50 more ImageStatus(tiny/app:v1) make exactly one more
#      request for manifests/v1, and one more "registry" audit record.
#
# cache.ttl is 2 s, not 1 s: each burst must end well inside the TTL for "exactly one" to
# be the right expectation, and on 2 busy shared cores 50 threads plus a resolution can
# take a few hundred milliseconds. The burst's own duration is checked against it so a
# too-slow burst fails with that reason instead of a confusing count.
#
# Environment (ctest sets it, see ../singleflight.cmake): PINLET_BIN, PINLET_IT_LIB,
# PINLET_IT_FREE_PORT (optional), SINGLEFLIGHT_BURST, FAKE_BACKEND. PINLET_IT_KEEP=1
# keeps the work directory. Needs docker-registry, skopeo, jq.
# jq filters are single-quoted on purpose ($vars are jq variables given with --arg).
# shellcheck disable=SC2016
set -euo pipefail

lib=${PINLET_IT_LIB:?PINLET_IT_LIB is not set}
: "${SINGLEFLIGHT_BURST:?SINGLEFLIGHT_BURST is not set}"
: "${FAKE_BACKEND:?FAKE_BACKEND is not set}"
: "${PINLET_BIN:?PINLET_BIN is not set}"
# shellcheck source=../lib/common.sh
. "$lib/common.sh"
# shellcheck source=../lib/containerd.sh
. "$lib/containerd.sh"
# shellcheck source=../lib/images.sh
. "$lib/images.sh"
# shellcheck source=../lib/pinlet.sh
. "$lib/pinlet.sh"

TTL_S=2
it_setup
dir=$PINLET_IT_DIR

# distribution reads any configuration key from REGISTRY_<PATH>: the harness config logs
# at warn, and the per-request "response completed" lines are info.
export REGISTRY_LOG_LEVEL=info
start_registry "$dir/registry"
reglog=$dir/logs/registry.log

build_oci_image "$dir/img-v1" tiny/app:v1 "singleflight v1"
build_oci_image "$dir/img-v2" tiny/app:v2 "singleflight v2"
push_image "$dir/img-v1" "$REGISTRY_ADDR" tiny/app:v1 || it_fail "push tiny/app:v1"
push_image "$dir/img-v2" "$REGISTRY_ADDR" tiny/app:v2 || it_fail "push tiny/app:v2"
d1=$(registry_digest "$REGISTRY_ADDR" tiny/app:v1)
d2=$(registry_digest "$REGISTRY_ADDR" tiny/app:v2)
[ "$d1" = "$(layout_digest "$dir/img-v1")" ] || it_fail "registry digest $d1 is not the layout's"
[ "$d1" != "$d2" ] || it_fail "v1 and v2 have the same digest"
it_log "tiny/app:v1 = $d1, tiny/app:v2 = $d2"

start_bg fake "$FAKE_BACKEND" --socket "$dir/fake.sock" --log "$dir/fake.jsonl"
wait_for_socket "$dir/fake.sock" 10 || it_fail "fake backend did not start"

mkdir -p "$dir/pinlet"
cat >"$dir/pinlet/config.yaml" <<EOF
registries: {"$REGISTRY_ADDR": {insecure: true}}
cache: {ttl: ${TTL_S}s}
EOF
start_pinlet "$dir/pinlet" "unix://$dir/fake.sock" --mode enforce || it_fail "pinlet did not start"
audit=$PINLET_DIR/audit.jsonl

# GET/HEAD requests for /v2/tiny/app/manifests/TAG in the registry's log: "response completed"
# lines (info; "response completed with error" for failures) and access-log lines. The
# two are written by different layers of the registry, so they must agree.
manifest_requests() {
	local tag=$1 a b
	a=$(grep -E 'msg="response completed' "$reglog" |
		grep -E 'http\.request\.method=(GET|HEAD) ' |
		grep -cE "http\.request\.uri=\"?/v2/tiny/app/manifests/$tag\"?( |\$)" || true)
	b=$(grep -cE "\"(GET|HEAD) /v2/tiny/app/manifests/$tag HTTP/" "$reglog" || true)
	if [ "$a" != "$b" ]; then
		it_log "registry log disagrees with its access log for $tag: $a vs $b"
		echo "mismatch"
		return
	fi
	echo "$a"
}

# Runs one burst and checks that it ended well inside the TTL.
burst() {
	local kind=$1 n=$2 image=$3 expect=$4 out ms
	out=$("$SINGLEFLIGHT_BURST" "$PINLET_ENDPOINT" "$kind" "$n" "$image" "$expect") ||
		it_fail "$n concurrent $kind($image) through pinlet failed"
	it_log "$kind burst: $out"
	ms=$(sed -n 's/^ok [0-9]* calls in \([0-9]*\) ms$/\1/p' <<<"$out")
	[ -n "$ms" ] || it_fail "burst output '$out'"
	[ "$ms" -lt $((TTL_S * 1000 / 2)) ] ||
		it_fail "the burst took ${ms} ms, too close to the ${TTL_S}s TTL to count on one resolution"
}

# The log line is written after the response: wait until the registry logged at least
# WANT requests, then a moment longer so that a late extra request would show.
expect_manifest_requests() {
	local tag=$1 want=$2 what=$3 got
	wait_until 5 bash -c '[ "$(grep -cE "\"(GET|HEAD) /v2/tiny/app/manifests/'"$tag"' HTTP/" "$1")" -ge '"$want"' ]' _ "$reglog" || true
	sleep 0.5
	got=$(manifest_requests "$tag")
	[ "$got" = "$want" ] || it_fail "$what: registry saw $got requests for manifests/$tag, want $want"
	it_log "$what: registry saw $got request(s) for manifests/$tag (as expected)"
}

audit_count() { # METHOD_SUBSTRING IMAGE [SOURCE]
	jq -s --arg m "$1" --arg i "$2" --arg s "${3:-}" \
		'[.[] | select((.method | test($m)) and .image == $i and ($s == "" or .source == $s))] | length' \
		"$audit"
}

repo=$REGISTRY_ADDR/tiny/app
base_v1=$(manifest_requests v1)
base_v2=$(manifest_requests v2)
it_log "manifest requests before the bursts (pushes, skopeo inspect): v1=$base_v1 v2=$base_v2"

# ---- 1. 50 concurrent ImageStatus, cold cache ------------------------------------------
burst status 50 "$repo:v1" "$repo@$d1"
expect_manifest_requests v1 $((base_v1 + 1)) "ImageStatus burst"
[ "$(audit_count ImageStatus "$repo:v1")" = 50 ] ||
	it_fail "audit: $(audit_count ImageStatus "$repo:v1") ImageStatus records, want 50"
# One registry request, so one record may say "registry": callers that waited on that
# resolution (single-flight followers) did not ask the registry and must not say so, or
# the audit log overstates registry traffic.
[ "$(audit_count ImageStatus "$repo:v1" registry)" = 1 ] ||
	it_fail "audit: $(audit_count ImageStatus "$repo:v1" registry) records with source registry, want 1 (followers of the single flight must not be recorded as 'registry')"
[ "$(audit_count ImageStatus "$repo:v1" cache)" = 49 ] ||
	it_fail "audit: $(audit_count ImageStatus "$repo:v1" cache) records with source cache, want 49"
jq -e -s --arg r "$repo@$d1" '[.[] | select(.resolved != $r or .decision != "substituted")] | length == 0' \
	"$audit" >/dev/null || it_fail "audit: a record that is not 'substituted' to $repo@$d1"
# The fake saw 50 ImageStatus calls, all of them OK.
[ "$(jq -s '[.[] | select(.event == "call" and (.method | test("ImageStatus$")) and .status == 0)] | length' "$dir/fake.jsonl")" = 50 ] ||
	it_fail "the fake backend did not log 50 OK ImageStatus calls"

# ---- 2. 64 concurrent PullImage of a tag nobody resolved yet ---------------------------
burst pull 64 "$repo:v2" "$repo@$d2"
expect_manifest_requests v2 $((base_v2 + 1)) "PullImage burst"
[ "$(audit_count PullImage "$repo:v2")" = 64 ] ||
	it_fail "audit: $(audit_count PullImage "$repo:v2") PullImage records, want 64"
[ "$(audit_count PullImage "$repo:v2" registry)" = 1 ] ||
	it_fail "audit: $(audit_count PullImage "$repo:v2" registry) PullImage records with source registry, want 1"
# v1 was not asked for again meanwhile.
[ "$(manifest_requests v1)" = $((base_v1 + 1)) ] || it_fail "manifests/v1 requested during the PullImage burst"

# ---- 3. after the TTL: exactly one more request ----------------------------------------
sleep $((TTL_S + 1))
burst status 50 "$repo:v1" "$repo@$d1"
expect_manifest_requests v1 $((base_v1 + 2)) "ImageStatus burst after the TTL"
[ "$(audit_count ImageStatus "$repo:v1")" = 100 ] ||
	it_fail "audit: $(audit_count ImageStatus "$repo:v1") ImageStatus records, want 100"
[ "$(audit_count ImageStatus "$repo:v1" registry)" = 2 ] ||
	it_fail "audit: $(audit_count ImageStatus "$repo:v1" registry) records with source registry, want 2"

bg_running pinlet || it_fail "pinlet exited"
it_log "PASS"
