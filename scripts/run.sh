#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what is missing, builds Parley, writes a configuration for
# localhost under ./run (once; random secrets) and starts the suite in the
# foreground. Ctrl-C stops it.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake --preset release >/dev/null
cmake --build build/release -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

conf=run/parley.xml
if [ ! -f "$conf" ]; then
    mkdir -p run
    rnd() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
    cat >"$conf" <<XML
<?xml version='1.0'?>
<!-- Parley on localhost, written by scripts/run.sh. docs/configuration.md
     explains every key. -->
<parley>
  <domain>localhost</domain>
  <log><level>info</level></log>
  <router-link><address>127.0.0.1</address><port>5347</port></router-link>
  <!-- Each component that may connect to the router, its secret, and the
       further names it may bind. -->
  <component name='sm' secret='$(rnd)'><bind>localhost</bind></component>
  <component name='c2s' secret='$(rnd)'/>
  <component name='s2s' secret='$(rnd)'><bind>*</bind></component>
  <router/>
</parley>
XML
    echo "wrote $conf"
fi
echo "starting parley-router on 127.0.0.1:5347 (Ctrl-C stops it)"
exec build/release/router/parley-router -f -c "$conf"
