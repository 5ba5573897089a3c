#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `pinlet pins`: lists a pin store written in the on-disk format (src/pins/pins.h) as a
# table and as JSON lines, reports damaged lines on stderr, and never writes to the store.
set -euo pipefail
pinlet=$1
tmp=$(mktemp -d /tmp/pinlet-pinscli-XXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

d1=sha256:1111111111111111111111111111111111111111111111111111111111111111
d2=sha256:2222222222222222222222222222222222222222222222222222222222222222
d3=sha256:3333333333333333333333333333333333333333333333333333333333333333
state=$tmp/state
mkdir -m 0700 "$state"
# 1764172179 = 2025-11-26T15:49:39Z. The second nginx line moves the pin (last one wins);
# line 3 is damaged; the last line is torn (a writer mid-append), which is not reported.
cat >"$state/pins.jsonl" <<JSON
{"ref":"docker.io/library/nginx:1.25","digest":"$d1","first_used":1764172179,"last_used":1764172179,"pods":["prod/web-0/u0"]}
{"ref":"127.0.0.1:5000/tiny/app:v1","digest":"$d2","first_used":1764172179,"last_used":1764172200}
this line is damaged
{"ref":"docker.io/library/nginx:1.25","digest":"$d3","first_used":1764172300,"last_used":1764172301,"pods":["prod/web-1/u1","prod/web-2/u2"]}
JSON
printf '{"ref":"docker.io/library/redis:7","digest":"%s","first_us' "$d1" >>"$state/pins.jsonl"
sum_before=$(cksum <"$state/pins.jsonl")

# Table: header, sorted by reference, the moved pin shows its new digest and pods.
out=$("$pinlet" pins --state-dir "$state" 2>"$tmp/err")
[ "$(wc -l <<<"$out")" = 3 ] || fail "table: expected 3 lines: $out"
head -1 <<<"$out" | grep -qE '^REFERENCE +DIGEST +FIRST USED +LAST USED +PODS$' ||
        fail "table header: $out"
sed -n 2p <<<"$out" | grep -qE "^127\.0\.0\.1:5000/tiny/app:v1 +$d2 +2025-11-26T15:49:39Z +2025-11-26T15:50:00Z +-$" ||
        fail "table row 1: $out"
sed -n 3p <<<"$out" | grep -qE "^docker\.io/library/nginx:1\.25 +$d3 +2025-11-26T15:51:40Z +2025-11-26T15:51:41Z +prod/web-1/u1, prod/web-2/u2$" ||
        fail "table row 2: $out"
grep -q "1 damaged line(s) skipped (first: line 3: not JSON)" "$tmp/err" ||
        fail "damaged line not reported: $(cat "$tmp/err")"
echo "ok: table"

# JSON lines: each parses, fields and types as documented.
out=$("$pinlet" pins --json --state-dir "$state" 2>/dev/null)
[ "$(wc -l <<<"$out")" = 2 ] || fail "json: expected 2 lines: $out"
jq -e -s '
  length == 2 and
  .[0] == {"reference":"127.0.0.1:5000/tiny/app:v1","digest":"'"$d2"'",
           "first_used":"2025-11-26T15:49:39Z","last_used":"2025-11-26T15:50:00Z","pods":[]} and
  .[1] == {"reference":"docker.io/library/nginx:1.25","digest":"'"$d3"'",
           "first_used":"2025-11-26T15:51:40Z","last_used":"2025-11-26T15:51:41Z",
           "pods":["prod/web-1/u1","prod/web-2/u2"]}' <<<"$out" >/dev/null ||
        fail "json content: $out"
echo "ok: json"

# Read-only: the file is unchanged and no lock file was created.
[ "$(cksum <"$state/pins.jsonl")" = "$sum_before" ] || fail "pins.jsonl was modified"
[ ! -e "$state/pins.lock" ] || fail "a read-only listing created pins.lock"
echo "ok: read-only"

# --config: state_dir and pins.max_entries come from the file (the bound keeps the most
# recently used pin: nginx, whose line came last).
printf 'state_dir: %s\npins:\n  max_entries: 1\n' "$state" >"$tmp/config.yaml"
out=$("$pinlet" pins --json --config "$tmp/config.yaml" 2>/dev/null)
[ "$(jq -r .reference <<<"$out")" = "docker.io/library/nginx:1.25" ] || fail "--config: $out"
echo "ok: --config"

# An empty or missing store lists nothing and says so on stderr, exit 0.
out=$("$pinlet" pins --state-dir "$tmp/none" 2>"$tmp/err")
[ "$out" = "$(printf 'REFERENCE  DIGEST  FIRST USED  LAST USED   PODS')" ] ||
        fail "empty store: $out"
grep -q "no pin store at $tmp/none/pins.jsonl" "$tmp/err" || fail "missing store not reported"
[ ! -e "$tmp/none" ] || fail "a read-only listing created the state directory"
out=$("$pinlet" pins --json --state-dir "$tmp/none" 2>/dev/null)
[ -z "$out" ] || fail "empty store, json: $out"
echo "ok: empty store"

# Usage errors exit 2.
set +e
"$pinlet" pins --state-dir "$state" extra >/dev/null 2>&1
rc1=$?
"$pinlet" pins --no-such-flag >/dev/null 2>&1
rc2=$?
"$pinlet" pins --help >"$tmp/help" 2>&1
rc3=$?
set -e
[ "$rc1" = 2 ] && [ "$rc2" = 2 ] || fail "usage errors exited $rc1, $rc2 (expected 2)"
[ "$rc3" = 0 ] && grep -q -- '--json' "$tmp/help" || fail "--help exited $rc3"
echo "ok: usage"
echo "all pins cli checks passed"
