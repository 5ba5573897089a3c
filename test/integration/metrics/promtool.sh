#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# `promtool check metrics` on the exposition of a fully populated struct pinlet_metrics
# (every family, every label value kind, an escaped label value): exit status 0 and NOT A
# SINGLE LINE of output (promtool prints lint findings, such as a counter without _total,
# and still exits 0 for some of them).
set -euo pipefail
command -v promtool >/dev/null ||
        { echo "FAIL: promtool not found (packaging/install-deps.sh test installs prometheus)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/pinlet-metrics-XXXX)
trap 'rm -rf "$tmp"' EXIT
"$PINLET_IT_METRICS" dump >"$tmp/exposition.txt"
# Sanity: the dump holds what the check is meant to cover.
for family in pinlet_build_info process_resident_memory_bytes process_cpu_seconds_total \
        process_open_fds process_max_fds process_start_time_seconds process_virtual_memory_bytes \
        pinlet_cri_requests_total pinlet_cri_request_duration_seconds_bucket \
        pinlet_decisions_total pinlet_registry_requests_total \
        pinlet_registry_request_duration_seconds_count pinlet_cache_entries \
        pinlet_cache_lookups_total pinlet_pins pinlet_tag_moved_total \
        pinlet_audit_write_errors_total pinlet_backend_up pinlet_config_reloads_total \
        pinlet_config_last_reload_success_timestamp_seconds pinlet_lock_entries \
        pinlet_lock_reloads_total; do
        grep -q "^$family[{ ]" "$tmp/exposition.txt" ||
                { echo "FAIL: no $family sample in the dump" >&2; exit 1; }
done
rc=0
promtool check metrics <"$tmp/exposition.txt" >"$tmp/promtool.out" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] || [ -s "$tmp/promtool.out" ]; then
        echo "FAIL: promtool check metrics exited $rc:" >&2
        cat "$tmp/promtool.out" >&2
        exit 1
fi
echo "promtool check metrics: clean ($(grep -vc '^#' "$tmp/exposition.txt") samples)"
