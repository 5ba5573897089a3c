# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Assertions for end-to-end cases that drive pinlet and containerd with the test CRI
# client and check the answers and pinlet's audit log. Needs common.sh (sourced first:
# it_log, it_fail, wait_until, $PINLET_IT_DIR) and jq. Source this file; it only defines
# functions. What each one reads is named below; the driver sets those variables (and may
# change them between calls, e.g. to talk to a second node).
#
#   cri VIA LABEL ARGS...   one "$PINLET_IT_CRI -e ENDPOINT -t 60 ARGS..." call; the JSON
#                           answer lands in $out and is logged ("LABEL: $out"); the call
#                           must answer OK. VIA: P is $PINLET_ENDPOINT (lib/pinlet.sh's
#                           start_pinlet sets it), C is $CONTAINERD_ENDPOINT
#                           (start_containerd sets it), anything with "://" is the
#                           endpoint itself. The client's stderr goes to
#                           $PINLET_IT_DIR/cri.stderr and into the failure message.
#   cri_status VIA LABEL ARGS...
#                           the same, but the call must answer a non-OK gRPC status
#   expect LABEL JSON JQ_FILTER [jq args...]
#                           the filter must be true for JSON (jq -e); logs "ok: LABEL"
#   audit_find COND [jq args...]
#                           the records of $AUDIT (pinlet's audit log) matching the jq
#                           condition COND, one compact JSON a line (none: no output)
#   wait_audit LABEL COND [jq args...]
#                           waits (5 s) for a record of $AUDIT matching COND; the last
#                           one lands in $rec
#   audit_none LABEL COND [jq args...]
#                           no record of $AUDIT matches COND, now. No wait for "late
#                           writes": pinlet writes a call's audit record in the
#                           interceptor, before the call is forwarded, so every call that
#                           already answered has its record in the file (one write(2) each)
#   _status_absent IMAGE    ImageStatus(IMAGE) through $PINLET_ENDPOINT answers OK without
#                           an image (for wait_until)
#   container_is LABEL ID IMAGE IMAGE_REF
#                           ContainerStatus(ID) on $CONTAINERD_ENDPOINT: running, .image
#                           is IMAGE and .image_ref is IMAGE_REF. containerd 1.6 reports
#                           .image as the image's first repo tag or, when it has none
#                           (pulled by digest), the reference CreateContainer was given;
#                           .image_ref is the first repo digest.
#
# jq filters are single-quoted on purpose ($vars are jq variables given with --arg).
# shellcheck disable=SC2016

_cri() {
	local want=$1 via=$2 label=$3 ep rc=0 err=$PINLET_IT_DIR/cri.stderr
	shift 3
	case $via in
	P) ep=${PINLET_ENDPOINT:-} ;;
	C) ep=${CONTAINERD_ENDPOINT:-} ;;
	*://*) ep=$via ;;
	*) it_fail "cri: P, C or an endpoint, not $via" ;;
	esac
	out=$("$PINLET_IT_CRI" -e "$ep" -t 60 "$@" 2>"$err") || rc=$?
	if [ "$want" = ok ] && [ $rc -ne 0 ]; then
		it_fail "$label: expected OK, exit $rc: $out $(cat "$err")"
	elif [ "$want" = status ] && [ $rc -ne 1 ]; then
		it_fail "$label: expected a non-OK gRPC status, exit $rc: $out $(cat "$err")"
	fi
	it_log "$label: $out"
}
cri() { _cri ok "$@"; }
cri_status() { _cri status "$@"; }

expect() {
	local label=$1 json=$2 filter=$3
	shift 3
	jq -e "$@" "$filter" <<<"$json" >/dev/null 2>&1 ||
		it_fail "$label: expected ($filter) [$*]; got: $json"
	it_log "ok: $label"
}

audit_find() {
	local cond=$1
	shift
	[ -s "$AUDIT" ] || return 0
	jq -c "$@" "select($cond)" "$AUDIT"
}
_audit_has() { audit_find "$@" | grep -q .; }

wait_audit() {
	local label=$1
	shift
	wait_until 5 _audit_has "$@" ||
		it_fail "$label: no audit record matching ($1); audit log: $(cat "$AUDIT" 2>/dev/null)"
	rec=$(audit_find "$@" | tail -n 1)
	it_log "ok: $label: $rec"
}

audit_none() {
	local label=$1 found
	shift
	found=$(audit_find "$@")
	[ -z "$found" ] || it_fail "$label: unexpected audit record(s): $found"
	it_log "ok: $label"
}

_status_absent() {
	"$PINLET_IT_CRI" -e "${PINLET_ENDPOINT:-}" -t 10 image-status "$1" 2>/dev/null |
		jq -e '.status == "OK" and .image == null' >/dev/null
}

container_is() {
	local label=$1 id=$2 image=$3 image_ref=$4
	cri C "$label: ContainerStatus" container-status "$id"
	expect "$label: running $image ($image_ref)" "$out" \
		'.state == "CONTAINER_RUNNING" and .image == $i and .image_ref == $r' \
		--arg i "$image" --arg r "$image_ref"
}
