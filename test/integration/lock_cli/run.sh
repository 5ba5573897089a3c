#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# `pinlet lock` against a real docker-registry on 127.0.0.1 (a private temporary
# directory; every process is stopped by PID on exit): the output is sorted and stable
# (byte-identical on a second run), written atomically to --output, --merge keeps the
# other entries and replaces these, nothing is written when one image fails (exit codes as
# `pinlet resolve`), --check validates, and --from-pins turns a pin store into a lock.
#
# Needs (from ctest's environment, see lib/harness.cmake): PINLET_BIN, PINLET_IT_LIB.
# Uses docker-registry, skopeo, jq.
set -euo pipefail

lib=${PINLET_IT_LIB:?}
# shellcheck source=../lib/common.sh
. "$lib/common.sh"
# shellcheck source=../lib/containerd.sh
. "$lib/containerd.sh"
# shellcheck source=../lib/images.sh
. "$lib/images.sh"
: "${PINLET_BIN:?}"

it_setup
w=$PINLET_IT_DIR

start_registry "$w/registry"
reg=$REGISTRY_ADDR
build_oci_image "$w/img1" app seed-one
build_oci_image "$w/img2" app seed-two
push_image "$w/img1" "$reg" tiny/app:v1
push_image "$w/img2" "$reg" tiny/app:v2
push_image "$w/img2" "$reg" tiny/zeta:v1
d1=$(layout_digest "$w/img1")
d2=$(layout_digest "$w/img2")

cat >"$w/config.yaml" <<EOC
log: {level: error}
state_dir: $w/state
resolver: {timeout: 10s, connect_timeout: 3s}
credentials: {docker_config: [$w/no-docker-config.json]}
registries:
  $reg: {insecure: true}
EOC
lock() { "$PINLET_BIN" lock --config "$w/config.yaml" "$@"; }
expect_rc() { # expect_rc RC WHAT CMD...
	local want=$1 what=$2 rc=0
	shift 2
	"$@" >"$w/out" 2>"$w/err" || rc=$?
	[ "$rc" = "$want" ] || it_fail "$what: exit $rc, expected $want: $(cat "$w/err")"
}

header='# written by `pinlet lock`; any number of files may be loaded together'

# Sorted, normalized, stable: the arguments in any order give the same bytes.
lock "$reg/tiny/zeta:v1" "$reg/tiny/app:v2" "$reg/tiny/app:v1" >"$w/a.yaml"
printf '%s\nversion: 1\nimages:\n  %s/tiny/app:v1: %s\n  %s/tiny/app:v2: %s\n  %s/tiny/zeta:v1: %s\n' \
	"$header" "$reg" "$d1" "$reg" "$d2" "$reg" "$d2" >"$w/want.yaml"
cmp "$w/a.yaml" "$w/want.yaml" || it_fail "stdout lock: $(diff "$w/want.yaml" "$w/a.yaml")"
lock "$reg/tiny/app:v1" "$reg/tiny/app:v2" "$reg/tiny/zeta:v1" -o "$w/b.yaml" 2>/dev/null
cmp "$w/a.yaml" "$w/b.yaml" || it_fail "--output differs from stdout"
[ "$(stat -c %a "$w/b.yaml")" = 644 ] || it_fail "--output mode $(stat -c %a "$w/b.yaml")"
ls -A "$w" | grep -q '^\.b\.yaml\.tmp' && it_fail "temporary file left behind"
it_log "ok: sorted, stable, atomic output"

# --check: ok with the count; a broken lock names file:line, exit 2.
expect_rc 0 "--check ok" lock --check "$w/a.yaml"
[ "$(cat "$w/out")" = "$w/a.yaml: ok, 3 images" ] || it_fail "--check: $(cat "$w/out")"
printf 'version: 1\nimages:\n  nginx:1.25: sha256:nope\n' >"$w/bad.yaml"
expect_rc 2 "--check bad" lock --check "$w/a.yaml" "$w/bad.yaml"
grep -qF "pinlet lock: $w/bad.yaml:3: 'nginx:1.25': invalid digest 'sha256:nope'" "$w/err" ||
	it_fail "--check message: $(cat "$w/err")"
it_log "ok: --check"

# --merge: the other entries stay, the given ones are replaced or added; a tag moved in
# the registry is seen.
push_image "$w/img1" "$reg" tiny/zeta:v1 # zeta:v1 now means d1
cp "$w/b.yaml" "$w/m.yaml"
lock --merge "$w/m.yaml" -o "$w/m.yaml" "$reg/tiny/zeta:v1" "nginx:1.25@$d2" 2>/dev/null
printf '%s\nversion: 1\nimages:\n  %s/tiny/app:v1: %s\n  %s/tiny/app:v2: %s\n  %s/tiny/zeta:v1: %s\n  docker.io/library/nginx:1.25: %s\n' \
	"$header" "$reg" "$d1" "$reg" "$d2" "$reg" "$d1" "$d2" >"$w/want.yaml"
cmp "$w/m.yaml" "$w/want.yaml" || it_fail "--merge: $(diff "$w/want.yaml" "$w/m.yaml")"
expect_rc 2 "--merge of a bad lock" lock --merge "$w/bad.yaml" "$reg/tiny/app:v1"
it_log "ok: --merge"

# One failure: the exit code of `pinlet resolve`, and the existing file is untouched.
sum=$(cksum <"$w/m.yaml")
expect_rc 3 "unknown tag" lock -o "$w/m.yaml" "$reg/tiny/app:v1" "$reg/tiny/app:v9"
[ "$(cksum <"$w/m.yaml")" = "$sum" ] || it_fail "a failed lock rewrote the file"
expect_rc 2 "no tag" lock "nginx@$d1"
expect_rc 2 "no IMAGE" lock
it_log "ok: failures write nothing"

# --from-pins: the node's pin store (the on-disk format of src/pins/pins.h) as a lock.
mkdir -p "$w/state"
cat >"$w/state/pins.jsonl" <<JSON
{"ref":"docker.io/library/redis:7","digest":"$d1","first_used":1764172179,"last_used":1764172179}
{"ref":"$reg/tiny/app:v1","digest":"$d2","first_used":1764172179,"last_used":1764172200,"pods":["ns/p/u"]}
{"ref":"docker.io/library/redis:7","digest":"$d2","first_used":1764172300,"last_used":1764172301}
JSON
lock --from-pins >"$w/p.yaml"
printf '%s\nversion: 1\nimages:\n  %s/tiny/app:v1: %s\n  docker.io/library/redis:7: %s\n' \
	"$header" "$reg" "$d2" "$d2" >"$w/want.yaml"
cmp "$w/p.yaml" "$w/want.yaml" || it_fail "--from-pins: $(diff "$w/want.yaml" "$w/p.yaml")"
expect_rc 2 "--from-pins with IMAGE" lock --from-pins "$reg/tiny/app:v1"
it_log "ok: --from-pins"
