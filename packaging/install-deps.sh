#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs what pinlet needs from Debian 12 packages, idempotently: nothing is fetched
# when everything is already present.
#   packaging/install-deps.sh build   # to build pinlet
#   packaging/install-deps.sh run     # + containerd, runc, docker-registry, skopeo (demo)
#   packaging/install-deps.sh test    # + everything the test suite and benchmarks use
#   packaging/install-deps.sh conformance  # + what test/conformance/critest.sh needs
#                                          # (cri-tools itself is built by you: see there)
set -euo pipefail

what=${1:-build}
build=(build-essential cmake pkg-config libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
       libcurl4-openssl-dev libssl-dev libyaml-dev libjansson-dev libsystemd-dev
       libmicrohttpd-dev)
run=(containerd runc docker-registry skopeo jq openssl curl apache2-utils iproute2 libcmocka-dev)
# dpkg-dev: dpkg-shlibdeps for `cpack -G DEB`; lintian and systemd (systemd-analyze) for
# the package checks (docs/PACKAGING.md); prometheus: promtool and a server for the
# metrics tests.
test=(libcmocka-dev clang libclang-rt-14-dev clang-format nginx dpkg-dev lintian systemd
      prometheus)
conformance=(busybox-static containernetworking-plugins iptables util-linux golang-go)

pkgs=("${build[@]}")
case "$what" in
build) ;;
run) pkgs+=("${run[@]}") ;;
test) pkgs+=("${run[@]}" "${test[@]}") ;;
conformance) pkgs+=("${run[@]}" "${test[@]}" "${conformance[@]}") ;;
*) echo "usage: $0 build|run|test|conformance" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
                missing+=("$p")
        fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages: ${missing[*]}; run as root" >&2
        exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# policy-rc.d keeps Debian's init scripts from starting system-wide docker-registry,
# nginx or prometheus instances: pinlet's tests start their own on free loopback ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"
