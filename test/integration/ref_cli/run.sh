#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The contract of `pinlet ref REF...`: one JSON object per input and line, in input order,
# with the documented fields; exit 0 when all parsed, 1 when any failed, 2 on usage errors.
set -euo pipefail
pinlet=$1
tmp=$(mktemp -d /tmp/pinlet-ref-cli-XXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
H=b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7

run() { # run EXPECTED_RC ARGS... ; output in $tmp/out
        local want=$1 rc
        shift
        set +e
        "$pinlet" ref "$@" >"$tmp/out" 2>"$tmp/err"
        rc=$?
        set -e
        [ "$rc" = "$want" ] || fail "pinlet ref $* exited $rc, expected $want: $(cat "$tmp/out" "$tmp/err")"
}

# line N (1-based) of the output, field F, compared with jq -e
field() { # field LINE JQ_FILTER
        sed -n "$1p" "$tmp/out" | jq -e "$2" >/dev/null ||
                fail "line $1 fails '$2': $(sed -n "$1p" "$tmp/out")"
}

run 0 nginx "localhost:5000/app:v1@sha256:$H" "[::1]:5000/x@sha256:$H"
[ "$(wc -l <"$tmp/out")" = 3 ] || fail "expected 3 lines: $(cat "$tmp/out")"
field 1 '.input == "nginx" and .ok == true and .name == "docker.io/library/nginx"
        and .domain == "docker.io" and .path == "library/nginx" and .tag == "latest"
        and .tag_defaulted == true and .digest == null
        and .normalized == "docker.io/library/nginx:latest" and .familiar == "nginx:latest"
        and (has("error") | not)'
field 2 '.ok and .domain == "localhost:5000" and .path == "app" and .tag == "v1"
        and .tag_defaulted == false and .digest == "sha256:'$H'"
        and .normalized == "localhost:5000/app:v1@sha256:'$H'"
        and .familiar == .normalized'
field 3 '.ok and .domain == "[::1]:5000" and .tag == null and .name == "[::1]:5000/x"'
echo "ok: valid references"

# one bad reference makes the exit status 1; the others are still printed, in order
run 1 nginx:1.25 Nginx "sha256:$H" "nginx@sha256:abc"
[ "$(wc -l <"$tmp/out")" = 4 ] || fail "expected 4 lines: $(cat "$tmp/out")"
field 1 '.ok and .familiar == "nginx:1.25"'
field 2 '.ok == false and .input == "Nginx" and (.error | test("must be lowercase"))
        and (has("name") | not)'
field 3 '.ok == false and (.error | test("is an image ID, not a reference"))'
field 4 '.ok == false and (.error | test("digest"))'
echo "ok: invalid references"

# bytes that are not UTF-8 still give valid JSON
run 1 "$(printf 'a\377b')"
field 1 '.ok == false and .input == "a?b"'
echo "ok: non-UTF-8 input"

run 2
grep -q "no reference given" "$tmp/err" || fail "no message for missing REF"
run 2 --frobnicate
run 0 --help
grep -q "Exit status: 0 if every reference parsed, 1 if any did not" "$tmp/out" ||
        fail "--help lacks the exit status"
echo "ok: usage"
