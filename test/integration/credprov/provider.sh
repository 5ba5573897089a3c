#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# A test kubelet credential provider (the exec plugin protocol of
# credentialprovider.kubelet.k8s.io): reads a CredentialProviderRequest on stdin, checks
# it, counts its run (one line appended to $PROVIDER_RUNS), and answers a
# CredentialProviderResponse on stdout with the user alice and the password read from
# $PROVIDER_PASSWORD_FILE for the key $PROVIDER_MATCH, cacheKeyType Registry and
# cacheDuration $PROVIDER_CACHE_DURATION. One line on stderr that names the image (never
# the password). $PROVIDER_FAIL set: exits 1 after counting.
# Expects the single argument "get-credentials" (the config's args). Needs jq.
set -eu
[ "${1:-}" = get-credentials ] && [ $# -eq 1 ] || { echo "provider: bad arguments: $*" >&2; exit 2; }
req=$(cat)
kind=$(printf '%s' "$req" | jq -r .kind)
api=$(printf '%s' "$req" | jq -r .apiVersion)
image=$(printf '%s' "$req" | jq -r .image)
[ "$kind" = CredentialProviderRequest ] || { echo "provider: bad kind $kind" >&2; exit 2; }
echo "$image" >>"$PROVIDER_RUNS"
echo "pinlet-test-provider: answering for $image"  >&2
[ -z "${PROVIDER_FAIL:-}" ] || { echo "pinlet-test-provider: failing on purpose" >&2; exit 1; }
jq -cn --arg api "$api" --arg key "$PROVIDER_MATCH" --arg dur "$PROVIDER_CACHE_DURATION" \
	--rawfile pw "$PROVIDER_PASSWORD_FILE" \
	'{kind: "CredentialProviderResponse", apiVersion: $api, cacheKeyType: "Registry",
	  cacheDuration: $dur, auth: {($key): {username: "alice", password: $pw}}}'
