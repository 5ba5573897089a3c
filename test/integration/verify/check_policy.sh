#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# pinlet-verify-sigstore --check-policy [FILE]: a good policy (keys of three kinds) passes
# with a summary; a policy file that does not exist, invalid YAML, a key of the wrong type
# and a key file that is not a PEM public key each exit 2 with the error on stderr naming
# the file (and the line, for what is in the file). The default file is
# PINLET_SIGSTORE_POLICY. Needs openssl; no root, no registry, no runtime.
# Environment (verify.cmake): PINLET_IT_LIB, PINLET_VERIFY_SIGSTORE.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lib=${PINLET_IT_LIB:-$here/../lib}
# shellcheck source=../lib/common.sh
. "$lib/common.sh"

[ -x "${PINLET_VERIFY_SIGSTORE:-}" ] ||
	{ echo "check_policy.sh: PINLET_VERIFY_SIGSTORE must name an executable" >&2; exit 1; }
command -v openssl >/dev/null || { echo "check_policy.sh: openssl is not installed" >&2; exit 1; }

it_setup
D=$PINLET_IT_DIR
V=$PINLET_VERIFY_SIGSTORE

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/ec.key" 2>/dev/null
openssl pkey -in "$D/ec.key" -pubout -out "$D/ec.pub"
openssl genpkey -algorithm ED25519 -out "$D/ed.key" 2>/dev/null
openssl pkey -in "$D/ed.key" -pubout -out "$D/ed.pub"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$D/rsa.key" 2>/dev/null
openssl pkey -in "$D/rsa.key" -pubout -out "$D/rsa.pub"
echo "not a key" >"$D/junk.pub"

# check NAME WANT_EXIT WANT_TEXT [ARGS...]: runs --check-policy ARGS; WANT_TEXT must be in
# stdout (exit 0) or stderr (otherwise)
check() {
	local name=$1 want=$2 text=$3 rc=0
	shift 3
	"$V" --check-policy "$@" >"$D/out" 2>"$D/err" || rc=$?
	[ "$rc" = "$want" ] ||
		it_fail "$name: exit $rc, want $want; stdout: $(cat "$D/out"); stderr: $(cat "$D/err")"
	if [ "$want" = 0 ]; then
		grep -qF -- "$text" "$D/out" || it_fail "$name: stdout lacks '$text': $(cat "$D/out")"
	else
		grep -qF -- "$text" "$D/err" || it_fail "$name: stderr lacks '$text': $(cat "$D/err")"
	fi
	it_log "ok: $name: $(cat "$D/out" "$D/err")"
}

cat >"$D/good.yaml" <<YAML
rules:
  - repositories: ["registry.example/team/*"]
    keys: ["$D/ec.pub", "$D/ed.pub"]
  - repositories: ["registry.example/other/*"]
    keys: ["$D/rsa.pub"]
default: deny
YAML
check "a good policy" 0 "$D/good.yaml: 2 rules, 3 keys, default deny" "$D/good.yaml"
PINLET_SIGSTORE_POLICY=$D/good.yaml check "the default file is PINLET_SIGSTORE_POLICY" 0 \
	"$D/good.yaml: 2 rules"

check "a missing file" 2 "$D/none.yaml" "$D/none.yaml"

printf 'rules:\n  - repositories: ["a/*"\n    keys: []\n' >"$D/yaml.yaml"
check "invalid YAML" 2 "$D/yaml.yaml:" "$D/yaml.yaml"

cat >"$D/type.yaml" <<YAML
rules:
  - repositories: ["registry.example/team/*"]
    keys: {file: "$D/ec.pub"}
default: deny
YAML
check "keys of the wrong type: file and line" 2 "$D/type.yaml:3:" "$D/type.yaml"

cat >"$D/junk.yaml" <<YAML
rules:
  - repositories: ["registry.example/team/*"]
    keys: ["$D/junk.pub"]
YAML
check "a key file that is not a public key" 2 "$D/junk.pub" "$D/junk.yaml"
it_log "ok: --check-policy"
