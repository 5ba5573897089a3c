#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian package's life cycle on this machine, as an operator lives it:
#   cpack -G DEB (twice: v1, and v2 whose config.yaml differs, as a new release's would)
#   apt-get install ./v1.deb     files, modes, `pinlet --version`, `pinlet check-config`,
#                                systemd-analyze verify, nothing enabled, kubelet untouched
#   edit the config, apt-get install ./v2.deb with --force-confold: the edit survives
#   apt-get remove               config, state and logs kept, binary gone
#   apt-get purge                config, state and logs gone
#   the list of files under the system's roots equals the one taken before installing.
# Needs root, dpkg, apt-get and cpack (exit 77: skipped). Refuses to run when a pinlet
# package is on the machine already: it was not installed by this test.
#
# usage: run.sh BUILD_DIR PROJECT_VERSION
set -euo pipefail
build=$1
version=$2

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

[ "$(id -u)" = 0 ] || skip "needs root (installs a package)"
for c in dpkg dpkg-deb apt-get cmake cpack systemd-analyze; do
        command -v "$c" >/dev/null || skip "$c not installed"
done

# The package's state as dpkg knows it: "not-installed" when it never was (or was purged).
pkg_status() {
        dpkg-query -W -f='${db:Status-Status}' pinlet 2>/dev/null || echo not-installed
}

# Guard: a pinlet that is installed, or removed with its configuration left, belongs to
# somebody; the test would upgrade and then purge it.
st=$(pkg_status)
if [ "$st" != not-installed ]; then
        fail "a pinlet package is on this machine (dpkg status '$st') and was not installed" \
                "by this test; refusing to touch it (purge it yourself: dpkg --purge pinlet)"
fi

tmp=$(mktemp -d /tmp/pinlet-package-XXXXXX)
installed=0
cleanup() {
        local rc=$?
        # Restore the machine even when an assertion failed half way.
        if [ "$installed" = 1 ] && [ "$(pkg_status)" != not-installed ]; then
                echo "cleanup: purging the test's pinlet package" >&2
                dpkg --purge pinlet >&2 || rc=1
        fi
        rm -rf "$tmp"
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

apt_get() {
        DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 \
                -o Dpkg::Options::=--force-confold "$@"
}

# Everything a package or its scripts could create, without the package managers' own
# bookkeeping (which records the installation by design).
# Roots that do not exist (/run/pinlet before the test) make find exit 1: not an error.
snapshot() {
        local r roots=()

        for r in /etc /usr /lib/systemd /var/lib /var/log /var/cache/pinlet /run/pinlet \
                /run/systemd; do
                [ -e "$r" ] && roots+=("$r")
        done
        find "${roots[@]}" -xdev \
                \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/log/apt \
                -o -path /var/cache/apt -o -path /var/cache/debconf \
                -o -path /var/cache/ldconfig -o -path /var/log/journal \) -prune \
                -o -print | LC_ALL=C sort
}

step "cmake --install: the unit runs the installed binary; an existing config is kept"
dest=$tmp/destdir
DESTDIR=$dest cmake --install "$build" --prefix /opt/pinlet-it >"$tmp/install.log" 2>&1 ||
        { cat "$tmp/install.log"; fail "cmake --install"; }
unit=$dest/opt/pinlet-it/lib/systemd/system/pinlet.service
[ -x "$dest/opt/pinlet-it/sbin/pinlet" ] || fail "cmake --install: no sbin/pinlet"
grep -qx 'ExecStart=/opt/pinlet-it/sbin/pinlet serve --config /etc/pinlet/config.yaml' "$unit" ||
        fail "cmake --install: the unit does not run the installed binary: $(grep Exec "$unit")"
[ -f "$dest/etc/logrotate.d/pinlet" ] || fail "cmake --install: no logrotate file"
cmp -s "$dest/etc/pinlet/config.yaml" "$(dirname "$0")/../../../packaging/config.yaml" ||
        fail "cmake --install: /etc/pinlet/config.yaml is not packaging/config.yaml"
echo "# operator's edit" >>"$dest/etc/pinlet/config.yaml"
DESTDIR=$dest cmake --install "$build" --prefix /opt/pinlet-it >"$tmp/install.log" 2>&1 ||
        { cat "$tmp/install.log"; fail "cmake --install (again)"; }
grep -qx "# operator's edit" "$dest/etc/pinlet/config.yaml" ||
        fail "cmake --install overwrote an existing /etc/pinlet/config.yaml"

step "building v1 and v2 with cpack"
v1=${version}+pkgtest1
v2=${version}+pkgtest2
( cd "$build" && cpack -G DEB -B "$tmp/v1" -D CPACK_DEBIAN_PACKAGE_VERSION="$v1" ) \
        >"$tmp/cpack1.log" 2>&1 || { cat "$tmp/cpack1.log"; fail "cpack v1"; }
( cd "$build" && cpack -G DEB -B "$tmp/v2" -D CPACK_DEBIAN_PACKAGE_VERSION="$v2" ) \
        >"$tmp/cpack2.log" 2>&1 || { cat "$tmp/cpack2.log"; fail "cpack v2"; }
arch=$(dpkg --print-architecture)
deb1=$tmp/v1/pinlet_${v1}_${arch}.deb
deb2=$tmp/v2/pinlet_${v2}_${arch}.deb
[ -f "$deb1" ] || fail "cpack did not write pinlet_<version>_<arch>.deb: $(ls "$tmp/v1")"
[ -f "$deb2" ] || fail "cpack did not write $deb2"
# A new release ships a changed example configuration: v2's config.yaml gets one more
# comment line, so that the upgrade meets a conffile both sides changed (dpkg's prompt,
# answered by --force-confold).
dpkg-deb -R "$deb2" "$tmp/v2/root"
echo "# pinlet package test: v2's example" >>"$tmp/v2/root/etc/pinlet/config.yaml"
( cd "$tmp/v2/root" && find etc usr lib -type f -exec md5sum {} + >DEBIAN/md5sums )
dpkg-deb --root-owner-group -b "$tmp/v2/root" "$deb2" >/dev/null

step "the package's metadata"
dpkg-deb -f "$deb1" Depends | grep -q 'libgrpc' || fail "Depends lacks shlibdeps: $(dpkg-deb -f "$deb1" Depends)"
dpkg-deb -f "$deb1" Depends | grep -q 'init-system-helpers' || fail "Depends lacks init-system-helpers"
conffiles=$(dpkg-deb --ctrl-tarfile "$deb1" | tar -xO ./conffiles)
grep -qx /etc/pinlet/config.yaml <<<"$conffiles" || fail "config.yaml is not a conffile"
contents=$(dpkg-deb -c "$deb1")
for f in ./usr/sbin/pinlet ./lib/systemd/system/pinlet.service ./etc/pinlet/config.yaml \
        ./etc/logrotate.d/pinlet ./usr/share/doc/pinlet/copyright \
        ./usr/share/doc/pinlet/README.md ./usr/share/doc/pinlet/changelog.gz; do
        grep -q " $f\$" <<<"$contents" || fail "package lacks $f"
done
if grep -qi kubelet <<<"$(awk '{print $6}' <<<"$contents")"; then
        fail "the package ships a kubelet file: installing must not point kubelet at pinlet"
fi

before=$tmp/files.before
snapshot >"$before"

step "install v1"
installed=1
apt_get install "$deb1" >"$tmp/install1.log" 2>&1 || { cat "$tmp/install1.log"; fail "apt-get install v1"; }
[ "$(pkg_status)" = installed ] || fail "status after install: $(pkg_status)"
[ "$(dpkg-query -W -f='${Version}' pinlet)" = "$v1" ] || fail "installed version is not $v1"
[ "$(stat -c %a /var/lib/pinlet)" = 700 ] || fail "/var/lib/pinlet mode $(stat -c %a /var/lib/pinlet)"
[ "$(stat -c %a /var/log/pinlet)" = 750 ] || fail "/var/log/pinlet mode $(stat -c %a /var/log/pinlet)"
out=$(/usr/sbin/pinlet --version)
[ "$out" = "pinlet $version" ] || fail "pinlet --version says '$out'"
out=$(/usr/sbin/pinlet check-config 2>&1) || fail "check-config of the installed config: $out"
[ "$out" = "/etc/pinlet/config.yaml: ok" ] || fail "check-config says '$out'"
grep -qx 'ExecStart=/usr/sbin/pinlet serve --config /etc/pinlet/config.yaml' \
        /lib/systemd/system/pinlet.service || fail "the unit does not run /usr/sbin/pinlet"
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' /lib/systemd/system/pinlet.service ||
        fail "the unit's ExecReload does not send SIGHUP"
grep -qx 'RestartPreventExitStatus=2' /lib/systemd/system/pinlet.service ||
        fail "the unit restarts on configuration errors"
out=$(systemd-analyze verify /lib/systemd/system/pinlet.service 2>&1) ||
        fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify complains: $out"
# Installed, not enabled: the operator enables pinlet and points kubelet at it.
if ls /etc/systemd/system/*.wants/pinlet.service >/dev/null 2>&1; then
        fail "installing enabled pinlet.service"
fi

step "edit the config, upgrade to v2 (--force-confold)"
sed -i 's/^  level: info /  level: debug/' /etc/pinlet/config.yaml
grep -q '^  level: debug' /etc/pinlet/config.yaml || fail "the test's edit did not apply"
/usr/sbin/pinlet check-config >/dev/null || fail "check-config of the edited config"
apt_get install "$deb2" >"$tmp/install2.log" 2>&1 || { cat "$tmp/install2.log"; fail "apt-get install v2"; }
[ "$(dpkg-query -W -f='${Version}' pinlet)" = "$v2" ] || fail "upgrade did not install $v2"
grep -q '^  level: debug' /etc/pinlet/config.yaml || fail "the upgrade lost the local edit"
[ -f /etc/pinlet/config.yaml.dpkg-dist ] || fail "dpkg did not keep v2's config as .dpkg-dist"
/usr/sbin/pinlet check-config >/dev/null || fail "check-config after the upgrade"

# What a running daemon leaves: a pin store and an audit log (and logrotate's output).
echo '{}' >/var/lib/pinlet/pins.jsonl
echo '{}' >/var/log/pinlet/audit.jsonl
echo '{}' >/var/log/pinlet/audit.jsonl.1

step "remove: config, state and logs stay"
apt_get remove pinlet >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log"; fail "apt-get remove"; }
[ "$(pkg_status)" = config-files ] || fail "status after remove: $(pkg_status)"
[ ! -e /usr/sbin/pinlet ] || fail "remove left /usr/sbin/pinlet"
[ ! -e /lib/systemd/system/pinlet.service ] || fail "remove left the unit"
grep -q '^  level: debug' /etc/pinlet/config.yaml || fail "remove lost the edited config"
[ -f /var/lib/pinlet/pins.jsonl ] || fail "remove deleted the pin store"
[ -f /var/log/pinlet/audit.jsonl ] || fail "remove deleted the audit log"

step "purge: config, state and logs gone"
apt_get purge pinlet >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; fail "apt-get purge"; }
[ "$(pkg_status)" = not-installed ] || fail "status after purge: $(pkg_status)"
for p in /etc/pinlet /var/lib/pinlet /var/log/pinlet /etc/logrotate.d/pinlet; do
        [ ! -e "$p" ] || fail "purge left $p"
done
installed=0

step "no file left behind"
snapshot >"$tmp/files.after"
if ! diff -u "$before" "$tmp/files.after" >"$tmp/files.diff"; then
        cat "$tmp/files.diff" >&2
        fail "the file list differs from before the installation"
fi
echo "package: all passed"
