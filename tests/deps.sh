#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs everything the build, the tests and the demo need on Debian 12 (run as root).
set -eu
packages="meson ninja-build pkg-config gcc libsystemd-dev libgdbm-dev libgnutls28-dev systemd
systemd-container python3 python3-aiosmtpd swaks bsd-mailx mutt procmail scdoc gnutls-bin
dnsmasq-base iproute2 groff-base man-db time strace passwd clang libclang-rt-14-dev
debhelper dpkg-dev lintian fakeroot openssl"
missing=""
for p in $packages; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
        echo "Installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $missing
fi
