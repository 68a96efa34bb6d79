#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs every Debian 12 package Parley needs to build, run and test.
# Idempotent and quiet: when everything is present it prints nothing and
# touches nothing. Server packages (postgresql, jabberd2, prosody, dnsmasq)
# are installed with their services kept from starting: tests run their own
# instances on private ports. lua-unbound is Prosody's resolver in the
# federation interop test, as on a production Prosody (it is only a
# Recommends, and recommends are not installed here).
set -eu

PKGS="build-essential cmake pkg-config clang-format
libevent-dev libexpat1-dev libgnutls28-dev gnutls-bin libgsasl-dev libpq-dev
libsqlite3-dev sqlite3 libudns-dev libidn2-dev libunistring-dev libwslay-dev libsystemd-dev
libcmocka-dev python3-slixmpp postgresql jabberd2 prosody lua-unbound dnsmasq-base"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi

# Keep installed daemons from starting on their default ports.
rcd=/usr/sbin/policy-rc.d
if [ ! -e "$rcd" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$rcd"
    chmod 755 "$rcd"
    created_rcd=1
fi

echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
