#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The daemon's audit log and logrotate: records go to the file with one line each;
# after the file is renamed, SIGUSR1 makes pinlet reopen the path, new records land in
# the new file, none are lost, and pinlet keeps serving. Uses the fake CRI backend (the
# image path needs no runtime here) and a registry address nothing listens on, so every
# ImageStatus by tag is audited passed_through, which is the record this test counts.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$PINLET_IT_LIB/common.sh"
it_setup
D=$PINLET_IT_DIR
dead_port=$(free_port)

start_bg fake "$FAKE_BACKEND" --socket "$D/fake.sock" --log "$D/fake.jsonl"
wait_for_socket "$D/fake.sock" 10 || it_fail "fake backend did not start"
cat >"$D/config.yaml" <<YAML
registries:
  "127.0.0.1:$dead_port": {insecure: true}
resolver: {connect_timeout: 1s, timeout: 2s}
YAML
start_bg pinlet "$PINLET_BIN" serve --config "$D/config.yaml" --listen "$D/pinlet.sock" \
        --runtime-endpoint "unix://$D/fake.sock" --state-dir "$D/state" \
        --audit-log "$D/audit.jsonl" --log-level debug
wait_for_socket "$D/pinlet.sock" 10 || it_fail "pinlet did not start"
cri() { "$PINLET_IT_CRI" -e "unix://$D/pinlet.sock" -t 10 "$@"; }

status_call() { # the fake echoes the request: any answer is fine, the record is the point
        cri image-status "127.0.0.1:$dead_port/tiny/app:$1" >/dev/null || true
}
records() { [ -f "$1" ] && grep -c . "$1" || echo 0; }
# has_records FILE N: FILE holds N records (waited for, not assumed: the order of the steps
# below must not depend on when a record reaches the file).
has_records() { [ "$(records "$1")" = "$2" ]; }

status_call r1
status_call r2
wait_until 5 has_records "$D/audit.jsonl" 2 || it_fail "want 2 records: $(cat "$D/audit.jsonl")"
jq -e -s 'all(.decision == "passed_through" and .method == "ImageStatus"
             and (.error | test("127.0.0.1:'"$dead_port"'")))' "$D/audit.jsonl" >/dev/null ||
        it_fail "unexpected records: $(cat "$D/audit.jsonl")"

# logrotate: rename, then SIGUSR1 (postrotate). Records written between the two still go
# to the renamed file (same descriptor), never lost.
mv "$D/audit.jsonl" "$D/audit.jsonl.1"
status_call r3
# r3's record must be in the renamed file before the signal, or the reopen could race it
# into the new file.
wait_until 5 has_records "$D/audit.jsonl.1" 3 || it_fail "rotated file: $(cat "$D/audit.jsonl.1")"
kill -USR1 "$(bg_pid pinlet)"
wait_until 5 grep -q "audit log reopened" "$D/logs/pinlet.log" || it_fail "no reopen logged"
status_call r4
status_call r5
wait_until 5 has_records "$D/audit.jsonl" 2 || it_fail "new file: $(cat "$D/audit.jsonl" 2>&1)"
[ "$(records "$D/audit.jsonl.1")" = 3 ] || it_fail "rotated file: $(cat "$D/audit.jsonl.1")"
grep -q ':r4"' "$D/audit.jsonl" && grep -q ':r5"' "$D/audit.jsonl" ||
        it_fail "r4/r5 not in the new file"
[ "$(stat -c %a "$D/audit.jsonl")" = 640 ] || it_fail "new audit file mode $(stat -c %a "$D/audit.jsonl")"
cri version >/dev/null || it_fail "pinlet stopped serving after SIGUSR1"
bg_running pinlet || it_fail "pinlet exited"
it_log "audit reopen: ok"
