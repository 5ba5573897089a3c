#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The files pinlet writes, through the real daemon and on a real full file system:
#   1. a symbolic link planted at the audit log path, then at pins.jsonl: `pinlet serve`
#      refuses to start, says "refusing to open PATH: it is a symbolic link", and the
#      link's target is untouched;
#   2. a group-writable state directory: refused with the chmod that fixes it;
#   3. (root) the pin store on a full 256 KiB tmpfs: full_disk.c. The tmpfs is mounted
#      in this run's private directory and unmounted on exit, also on failure.
# A control start with safe paths proves the refusals are about the files, nothing else.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$PINLET_IT_LIB/common.sh"
it_setup
D=$PINLET_IT_DIR

start_bg fake "$FAKE_BACKEND" --socket "$D/fake.sock" --log "$D/fake.jsonl"
wait_for_socket "$D/fake.sock" 10 || it_fail "fake backend did not start"
echo '{}' >"$D/config.yaml"

# serve NAME STATE_DIR AUDIT_LOG: runs pinlet in the foreground; a refusal exits at once.
# A pinlet that starts instead is stopped by timeout (status 124), which fails the test.
serve() {
	local name=$1 state=$2 audit=$3 rc=0
	timeout 15 "$PINLET_BIN" serve --config "$D/config.yaml" --listen "$D/$name.sock" \
		--runtime-endpoint "unix://$D/fake.sock" --state-dir "$state" \
		--audit-log "$audit" --log-level debug >"$D/logs/$name.log" 2>&1 || rc=$?
	echo "$rc"
}

# expect_refusal NAME STATE AUDIT MESSAGE: pinlet exits non-zero and logs MESSAGE.
expect_refusal() {
	local name=$1 state=$2 audit=$3 want=$4 rc
	rc=$(serve "$name" "$state" "$audit")
	[ "$rc" != 0 ] && [ "$rc" != 124 ] ||
		it_fail "$name: pinlet did not refuse to start (status $rc): $(cat "$D/logs/$name.log")"
	grep -qF -- "$want" "$D/logs/$name.log" ||
		it_fail "$name: no '$want' in: $(cat "$D/logs/$name.log")"
	it_log "$name: refused: $(grep -F -- "$want" "$D/logs/$name.log")"
}

untouched() {
	[ "$(cat "$D/precious")" = "do not touch" ] || it_fail "the link target changed: $(cat "$D/precious")"
	[ "$(stat -c %s "$D/precious")" = 13 ] || it_fail "the link target changed size"
}

echo "do not touch" >"$D/precious"
chmod 0644 "$D/precious"

# 1a. a link at the audit log path
mkdir -m 0700 "$D/a-state" "$D/a-log"
ln -s "$D/precious" "$D/a-log/audit.jsonl"
expect_refusal audit-link "$D/a-state" "$D/a-log/audit.jsonl" \
	"refusing to open $D/a-log/audit.jsonl: it is a symbolic link"
untouched

# 1b. a link at pins.jsonl (also a dangling one: it must not create the file elsewhere)
mkdir -m 0700 "$D/p-state"
ln -s "$D/precious" "$D/p-state/pins.jsonl"
expect_refusal pins-link "$D/p-state" "$D/p-audit.jsonl" \
	"refusing to open $D/p-state/pins.jsonl: it is a symbolic link"
untouched
mkdir -m 0700 "$D/d-state"
ln -s "$D/nowhere" "$D/d-state/pins.jsonl"
expect_refusal pins-dangling "$D/d-state" "$D/d-audit.jsonl" \
	"refusing to open $D/d-state/pins.jsonl: it is a symbolic link"
[ ! -e "$D/nowhere" ] || it_fail "a dangling link at pins.jsonl created its target"

# 2. a group-writable state directory (mkdir -m: no umask in the way)
mkdir -m 0770 "$D/g-state"
expect_refusal group-writable "$D/g-state" "$D/g-audit.jsonl" \
	"state directory $D/g-state is writable by group or others (mode 0770): chmod 0700 $D/g-state"
[ -z "$(ls -A "$D/g-state")" ] || it_fail "files written into the refused directory: $(ls -A "$D/g-state")"
# and a world-writable audit log directory
mkdir -m 0700 "$D/w-state"
mkdir -m 0777 "$D/w-log"
expect_refusal world-writable-log "$D/w-state" "$D/w-log/audit.jsonl" \
	"audit log directory $D/w-log is writable by group or others (mode 0777): chmod 0750 $D/w-log"

# control: the fixed directory is accepted and pinlet serves
chmod 0700 "$D/g-state"
start_bg pinlet "$PINLET_BIN" serve --config "$D/config.yaml" --listen "$D/ok.sock" \
	--runtime-endpoint "unix://$D/fake.sock" --state-dir "$D/g-state" \
	--audit-log "$D/g-audit.jsonl" --log-level debug
wait_for_socket "$D/ok.sock" 10 || it_fail "pinlet did not start with safe paths"
stop_bg pinlet
[ -f "$D/g-state/pins.jsonl" ] || it_fail "no pin store written in $D/g-state"
it_log "refusals: ok"

# 3. the pin store on a full disk (mounting needs root)
if [ "$(id -u)" != 0 ]; then
	it_log "SKIP: the full-disk part needs root (mount)"
	exit 77
fi
mkdir -m 0700 "$D/full"
on_cleanup post umount_under "$D/full"
mount -t tmpfs -o size=256k,mode=0700 pinlet-it-full "$D/full" ||
	it_fail "cannot mount a tmpfs on $D/full"
"$PINLET_IT_FULL_DISK" "$D/full" || it_fail "the pin store on a full disk"
it_log "full disk: ok"
