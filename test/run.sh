#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# pinlet's whole test suite, as README documents it and CI runs it (as root, Debian 12):
#   1. installs what the suite needs from Debian packages (idempotent),
#   2. checks formatting (clang-format),
#   3. builds and runs every test: unit, fuzz corpus replay, proxy against the fake
#      backend, and integration tests against real containerd, runc and docker-registry,
#   4. rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer and runs the unit,
#      fuzz-replay and fake-backend tests again,
#   5. builds the libFuzzer harnesses with clang and runs each briefly.
# Build trees go to $PINLET_BUILD_DIR (default ./build); nothing outside it is written
# except the Debian packages and the tests' own temporary directories.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=${PINLET_BUILD_DIR:-$top/build}
jobs=$(nproc)

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
packaging/install-deps.sh test

step "clang-format"
mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null || find src include test plugin -name '*.[ch]')
clang-format --dry-run --Werror "${sources[@]}"

step "build"
cmake -S . -B "$out/main" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$out/main" -j"$jobs"

step "tests"
ctest --test-dir "$out/main" --output-on-failure -j"$jobs"

step "sanitizers (ASan + UBSan): unit, fuzz-replay, fake backend"
cmake -S . -B "$out/asan" -DCMAKE_BUILD_TYPE=Debug -DPINLET_SANITIZE=ON >/dev/null
cmake --build "$out/asan" -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir "$out/asan" --output-on-failure -j"$jobs" -L 'unit|fuzz-replay|fake'

step "libFuzzer (clang), ${PINLET_FUZZ_SECONDS:=15} s per harness"
CC=clang cmake -S . -B "$out/fuzz" -DCMAKE_BUILD_TYPE=Debug -DPINLET_FUZZ=ON \
        -DPINLET_WERROR=OFF >/dev/null
cmake --build "$out/fuzz" -j"$jobs"
for f in "$out"/fuzz/test/fuzz/fuzz_*; do
        [ -x "$f" ] || continue
        case "$f" in *_replay) continue ;; esac
        name=$(basename "$f")
        corpus="$top/test/fuzz/corpus/${name#fuzz_}"
        work=$(mktemp -d)
        cp -r "$corpus/." "$work/" 2>/dev/null || true
        echo "fuzz $name"
        "$f" -max_total_time="$PINLET_FUZZ_SECONDS" -rss_limit_mb=2048 "$work" 2>"$work.log" ||
                { tail -50 "$work.log"; rm -rf "$work" "$work.log"; exit 1; }
        rm -rf "$work" "$work.log"
done

step "all tests passed"
