# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# A test's whole output searched for a secret: the driver runs itself a second time (the
# "inner" invocation, which does the work) with its stdout and stderr captured, shows that
# output as it comes, and afterwards fails if the secret appears in it. Needs nothing else
# from the harness (it runs before it_setup). Source this file; it only defines functions.
#
#   transcript_check NAME USER PASSWORD WHAT [ERE ERE_WHAT] -- CMD [ARGS...]
#           runs CMD in the background, its stdout+stderr into a temporary file
#           (/tmp/pinlet-NAME-out-XXXXXX, removed afterwards) followed live with tail -f;
#           TERM, INT and HUP (ctest's timeout, ^C) are handed on to CMD, so its EXIT trap
#           stops its daemons. Returns CMD's status, or 1 when PASSWORD or the base64 of
#           "USER:PASSWORD" (an Authorization: Basic value) appears in the output
#           (message "FAIL: WHAT (or its base64 form) appears in the test output" on
#           stderr), or when the extended regex ERE matches a line ("FAIL: ERE_WHAT
#           appears in the test output").
#
# Typical use, before common.sh's it_setup (the password reaches the inner invocation in
# the environment, never on a command line that is logged):
#       if [ -z "${_MY_INNER:-}" ]; then
#               export _MY_INNER=1
#               MY_PASSWORD=$(openssl rand -hex 12)
#               export MY_PASSWORD
#               rc=0
#               transcript_check my alice "$MY_PASSWORD" "the password" -- bash "$0" "$@" ||
#                       rc=$?
#               exit "$rc"
#       fi

transcript_check() {
	local name=$1 user=$2 password=$3 what=$4 ere='' ere_what='' transcript tailer rc b64
	shift 4
	if [ "${1:-}" != -- ]; then
		ere=$1 ere_what=$2
		shift 2
	fi
	[ "${1:-}" = -- ] || {
		echo "usage: transcript_check NAME USER PASSWORD WHAT [ERE ERE_WHAT] -- CMD..." >&2
		return 2
	}
	shift
	transcript=$(mktemp "/tmp/pinlet-$name-out-XXXXXX") || return 1
	"$@" >"$transcript" 2>&1 &
	_transcript_inner=$!
	# ctest's timeout (or ^C) reaches this process: hand it on so the inner EXIT trap
	# stops every daemon by PID.
	trap 'kill -TERM "$_transcript_inner" 2>/dev/null || true' TERM INT HUP
	tail -n +1 -f --pid="$_transcript_inner" "$transcript" &
	tailer=$!
	rc=0
	while :; do
		wait "$_transcript_inner" && rc=0 || rc=$?
		kill -0 "$_transcript_inner" 2>/dev/null || break
	done
	wait "$tailer" 2>/dev/null || true
	b64=$(printf '%s:%s' "$user" "$password" | base64 -w0)
	if grep -qF -e "$password" -e "$b64" "$transcript"; then
		echo "FAIL: $what (or its base64 form) appears in the test output" >&2
		rc=1
	fi
	if [ -n "$ere" ] && grep -qE "$ere" "$transcript"; then
		echo "FAIL: $ere_what appears in the test output" >&2
		rc=1
	fi
	rm -f "$transcript"
	return "$rc"
}
