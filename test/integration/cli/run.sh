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

# Every error starts "pinlet:" or "pinlet COMMAND:", never the binary's path, and an
# unknown option points at --help.
expect_msg() { # expect_msg PATTERN -- CMD...: exit 2, first line matches, no argv[0] path
        local pattern=$1 out rc
        shift 2
        set +e
        out=$("$@" 2>&1 >/dev/null)
        rc=$?
        set -e
        [ "$rc" = 2 ] || fail "'$*' exited $rc, expected 2: $out"
        grep -qE -- "$pattern" <<<"$(head -n1 <<<"$out")" || fail "'$*' first line lacks /$pattern/: $out"
        ! grep -qF -- "$pinlet" <<<"$out" || fail "'$*' names the binary's path: $out"
        grep -qE '^pinlet( [a-z-]+)?: ' <<<"$(head -n1 <<<"$out")" ||
                fail "'$*' does not start with 'pinlet:' or 'pinlet COMMAND:': $out"
        echo "ok: $* -> 2"
}
for cmd in check-config serve ref resolve pins lock; do
        expect_msg "^pinlet $cmd: unknown option '--frobnicate'" -- "$pinlet" "$cmd" --frobnicate
        out=$("$pinlet" "$cmd" --frobnicate 2>&1 || true)
        grep -qx "Try 'pinlet $cmd --help'." <<<"$out" ||
                fail "pinlet $cmd --frobnicate does not suggest --help: $out"
done
expect_msg "^pinlet serve: unknown option '--frobnicate'" -- "$pinlet" --frobnicate
expect_msg "^pinlet check-config: unknown option '-q'" -- "$pinlet" check-config -q
expect_msg "^pinlet check-config: option '--config' needs an argument" -- \
        "$pinlet" check-config --config
expect_msg "^pinlet: unknown command 'frobnicate'" -- "$pinlet" frobnicate
out=$("$pinlet" frobnicate 2>&1 || true)
grep -qx "Try 'pinlet --help'." <<<"$out" || fail "unknown command: no --help hint: $out"
expect_msg "^pinlet check-config: --mode: invalid mode 'strict'" -- \
        "$pinlet" check-config --mode strict "$top/packaging/config.yaml"
expect_msg "^pinlet resolve: --timeout: invalid duration '3 parsecs'" -- \
        "$pinlet" resolve --timeout "3 parsecs" docker.io/library/busybox:1
expect_msg "^pinlet check-config: expected one FILE" -- \
        "$pinlet" check-config --config "$top/packaging/config.yaml" "$top/packaging/config.yaml"

# Options before the command, and after it, are the same.
expect 0 'config.yaml: ok$' -- "$pinlet" --config "$top/packaging/config.yaml" check-config
expect 0 'config.yaml: ok$' -- "$pinlet" --mode audit check-config "$top/packaging/config.yaml"
expect_msg "^pinlet check-config: --log-format: invalid format 'xml'" -- \
        "$pinlet" --log-format xml check-config "$top/packaging/config.yaml"
expect 0 '^Usage: pinlet check-config' -- "$pinlet" --help check-config
expect 0 '^pinlet [0-9]' -- "$pinlet" --config /nonexistent --version

# --help shows the defaults.
help=$("$pinlet" serve --help)
for d in /etc/pinlet/config.yaml /run/pinlet/pinlet.sock /var/lib/pinlet /var/log/pinlet/audit.jsonl \
        'default info' 'default text' 'default enforce'; do
        grep -qF -- "$d" <<<"$help" || fail "serve --help does not show the default '$d'"
done
# ... and each command lists only the options that act for it.
for c in pins resolve lock; do
        h=$("$pinlet" "$c" --help)
        for o in --listen --image-endpoint --mode --audit-log; do
                ! grep -qF -- "$o" <<<"$h" || fail "$c --help lists $o, which does nothing there"
        done
        grep -qF -- --config <<<"$h" || fail "$c --help does not list --config"
done

# The shipped example is the defaults: no example is switched on (kube-system's exclude
# turned pinning off for static pods).
! grep -qE '^[[:space:]]+namespaces:' "$top/packaging/config.yaml" ||
        fail "packaging/config.yaml sets scope namespaces"
! grep -qE '^[[:space:]]*docker_config:' "$top/packaging/config.yaml" ||
        fail "packaging/config.yaml sets credentials.docker_config"

# check-config runs serve's checks on the files the configuration names, and serve exits
# 2 (a configuration error, not restarted by the unit) for each, before it binds.
base="listen: $tmp/run/p.sock
state_dir: $tmp/state
audit:
  file: $tmp/log/audit.jsonl
"
conf() { printf '%s%s\n' "$base" "$1" >"$tmp/$2.yaml"; }
conf "registries:
  r.example:
    ca_file: $tmp/missing-ca.pem" noca
expect 2 "registries.r.example.ca_file: $tmp/missing-ca.pem: No such file" -- \
        "$pinlet" check-config "$tmp/noca.yaml"
expect 2 "registries.r.example.ca_file: $tmp/missing-ca.pem: No such file" -- \
        "$pinlet" serve --config "$tmp/noca.yaml"
[ ! -e "$tmp/run/p.sock" ] || fail "serve bound its socket before refusing the configuration"
[ ! -e "$tmp/state" ] || fail "check-config or serve created state_dir for a refused configuration"
# keys checked when serve starts, not only when it reads the file: the metrics address and
# the registry client's mirrors
conf "metrics:
  listen: nonsense" badmetrics
expect 2 "metrics.listen 'nonsense': want HOST:PORT" -- "$pinlet" check-config "$tmp/badmetrics.yaml"
expect 2 "metrics.listen 'nonsense': want HOST:PORT" -- \
        "$pinlet" serve --config "$tmp/badmetrics.yaml"
conf "registries:
  r.example:
    mirrors: [\"ftp://mirror.example\"]" badmirror
expect 2 "mirror 'ftp://mirror.example' is not a registry URL" -- \
        "$pinlet" check-config "$tmp/badmirror.yaml"
expect 2 "mirror 'ftp://mirror.example' is not a registry URL" -- \
        "$pinlet" serve --config "$tmp/badmirror.yaml"
[ ! -e "$tmp/run/p.sock" ] || fail "serve bound its socket before refusing the configuration"
echo 'not a certificate' >"$tmp/garbage.pem"
conf "registries:
  r.example:
    ca_file: $tmp/garbage.pem" badca
expect 2 "registries.r.example.ca_file: $tmp/garbage.pem: no PEM certificate" -- \
        "$pinlet" check-config "$tmp/badca.yaml"
if command -v openssl >/dev/null; then
        for n in a b; do
                openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                        -keyout "$tmp/$n.key" -out "$tmp/$n.crt" -days 1 -subj "/CN=$n" 2>/dev/null
        done
        conf "registries:
  r.example:
    cert_file: $tmp/a.crt
    key_file: $tmp/b.key" mismatch
        expect 2 "registries.r.example.key_file: $tmp/b.key does not match" -- \
                "$pinlet" check-config "$tmp/mismatch.yaml"
        conf "registries:
  r.example:
    ca_file: $tmp/a.crt
    cert_file: $tmp/a.crt
    key_file: $tmp/a.key" tlsok
        expect 0 'tlsok.yaml: ok$' -- "$pinlet" check-config "$tmp/tlsok.yaml"
fi
printf '{"auths": {' >"$tmp/docker.json"
conf "credentials:
  docker_config: [$tmp/docker.json, $tmp/absent.json]" docker
expect 2 "credentials.docker_config: $tmp/docker.json: not valid JSON" -- \
        "$pinlet" check-config "$tmp/docker.yaml"
expect 2 "credentials.docker_config: $tmp/docker.json" -- "$pinlet" serve --config "$tmp/docker.yaml"
echo '{"auths": {}}' >"$tmp/docker.json"
expect 0 'docker.yaml: ok$' -- "$pinlet" check-config "$tmp/docker.yaml"
touch "$tmp/plainfile"
printf 'listen: %s/run/p.sock\nstate_dir: %s/plainfile/state\n' "$tmp" "$tmp" >"$tmp/statedir.yaml"
expect 2 "state_dir: $tmp/plainfile/state" -- "$pinlet" check-config "$tmp/statedir.yaml"
expect 2 "state_dir: $tmp/plainfile/state" -- "$pinlet" serve --config "$tmp/statedir.yaml"
printf 'listen: %s/plainfile/p.sock\nstate_dir: %s/state\n' "$tmp" "$tmp" >"$tmp/listen.yaml"
expect 2 "listen: .*$tmp/plainfile" -- "$pinlet" check-config "$tmp/listen.yaml"
echo "cli: all passed"
