#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The command line's contract: --version, --help, check-config on the shipped example
# and on malformed files (exit 2, message names file, line and key), bad flags.
set -euo pipefail
pinlet=$1
top=$2
tmp=$(mktemp -d /tmp/pinlet-cli-XXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

expect() { # expect CODE PATTERN -- CMD...
        local code=$1 pattern=$2 out rc
        shift 3
        set +e
        out=$("$@" 2>&1)
        rc=$?
        set -e
        [ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code: $out"
        grep -qE -- "$pattern" <<<"$out" || fail "'$*' output lacks /$pattern/: $out"
        echo "ok: $* -> $rc"
}

expect 0 '^pinlet [0-9]+\.[0-9]+\.[0-9]+$' -- "$pinlet" --version
expect 0 'check-config' -- "$pinlet" --help
expect 0 'ok$' -- "$pinlet" check-config "$top/packaging/config.yaml"
expect 2 "unknown command 'frobnicate'" -- "$pinlet" frobnicate

printf 'listen: /run/p.sock\ncache:\n  ttl: 3 parsecs\n' >"$tmp/bad1.yaml"
expect 2 "$tmp/bad1.yaml:3: key 'cache.ttl': invalid duration '3 parsecs'" -- \
        "$pinlet" check-config "$tmp/bad1.yaml"
printf 'mode: enforce\nregistries:\n  r.example:\n    insecure: true\n    verfy: false\n' \
        >"$tmp/bad2.yaml"
expect 2 "$tmp/bad2.yaml:5: unknown key 'registries.r.example.verfy'" -- \
        "$pinlet" check-config "$tmp/bad2.yaml"
printf 'mode: [a\n' >"$tmp/bad3.yaml"
expect 2 "$tmp/bad3.yaml:[0-9]+: invalid YAML" -- "$pinlet" check-config "$tmp/bad3.yaml"
expect 2 "/nonexistent/p.yaml: No such file" -- "$pinlet" check-config /nonexistent/p.yaml
# The daemon refuses a bad file the same way, before touching anything.
expect 2 "$tmp/bad1.yaml:3: key 'cache.ttl'" -- "$pinlet" serve --config "$tmp/bad1.yaml"
# Flags override the file and are validated too.
expect 2 "--log-format: invalid format 'xml'" -- \
        "$pinlet" check-config "$top/packaging/config.yaml" --log-format xml
expect 2 "--mode: invalid mode 'strict'" -- "$pinlet" check-config --mode strict \
        "$top/packaging/config.yaml"
expect 0 'ok$' -- "$pinlet" check-config "$top/packaging/config.yaml" --mode audit \
        --log-level debug --listen /tmp/x.sock
echo "cli: all passed"
