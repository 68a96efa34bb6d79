#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what is missing, builds Parley, writes a deployment for the
# domain "localhost" under ./run (once: configuration with random component
# secrets, a self-signed certificate, the SQLite database) and runs the
# whole suite in the foreground under parleyd. Ctrl-C stops it.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake --preset release >/dev/null
cmake --build build/release -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

bin=build/release/tools
if [ ! -f run/parley.xml ]; then
    "$bin/parleyctl" init run --domain localhost >/dev/null
fi
cat <<MSG
Parley is starting on localhost (client port 5222, direct TLS 5223).
  add a user:        $bin/parleyctl --config run/parley.xml user add alice@localhost
  connect a client:  alice@localhost on 127.0.0.1:5222 (self-signed certificate: run/tls/localhost.pem)
Ctrl-C stops it.
MSG
exec "$bin/parleyd" --config run/parley.xml --foreground
