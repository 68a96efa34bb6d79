#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Storage benchmark: store_bench's workloads through the store API on SQLite (a temp file) and on
# PostgreSQL (a private server from tests/pg_fixture.sh), plus the synchronous SQLite baseline;
# prints one table.
set -euo pipefail

usage() {
    cat <<EOF
usage: bench/run_store.sh [--ops N] [--owners N] [--inflight N] [--keep] [-- store_bench options]
  --ops N        operations per workload (50000)
  --owners N     distinct owners (1000)
  --inflight N   operations outstanding at once (256)
  --keep         keep the temporary directory (databases, outputs)
Runs as root or as postgres (tests/pg_fixture.sh starts PostgreSQL as the postgres user).
environment: STORE_BENCH overrides the binary; PG_BINDIR is passed to tests/pg_fixture.sh.
EOF
}

ops=50000
owners=1000
inflight=256
keep=0
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --ops) ops=$2; shift 2 ;;
    --owners) owners=$2; shift 2 ;;
    --inflight) inflight=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) usage >&2; exit 2 ;;
    esac
done

for a in ${extra[@]+"${extra[@]}"}; do
    case "$a" in
    --driver* | --sqlite* | --pg* | --ops* | --owners* | --inflight*)
        echo "run_store.sh: $a is set by the script; use its own options" >&2
        exit 2
        ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
store_bench=${STORE_BENCH:-$root/build/release/bench/store_bench}

if [ -z "${STORE_BENCH:-}" ]; then
    # Only this target: the rest of the tree need not build for the storage numbers.
    echo "# building store_bench in the release tree (build/release)" >&2
    (
        cd "$root"
        [ -f build/release/CMakeCache.txt ] || cmake --preset release >/dev/null
        cmake --build build/release -j2 --target store_bench >/dev/null ||
            { cmake --preset release >/dev/null && cmake --build build/release -j2 --target store_bench >/dev/null; }
    )
fi

tmp=$(mktemp -d /tmp/parley-store-bench.XXXXXX)
pgdir=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [ -n "$pgdir" ]; then
        "$root/tests/pg_fixture.sh" stop "$pgdir" || true
    fi
    if [ "$keep" = 1 ]; then
        echo "# kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run LABEL store_bench-options...: output shown and kept in $tmp/LABEL.out. Returns its status.
run() {
    local label=$1 rc=0
    shift
    echo "== $label"
    "$store_bench" --ops "$ops" --owners "$owners" --inflight "$inflight" "$@" \
        ${extra[@]+"${extra[@]}"} 2>&1 | tee "$tmp/$label.out" || rc=${PIPESTATUS[0]}
    echo
    return "$rc"
}

# field LABEL TEST KEY: a value from LABEL's "RESULT ... test=TEST ..." line, or "-".
field() {
    local v=""
    if [ -f "$tmp/$1.out" ]; then
        v=$(awk -v t="test=$2" -v k="$3" '$1 == "RESULT" {
                hit = 0
                for (i = 2; i <= NF; i++) if ($i == t) hit = 1
                if (!hit) next
                for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2)
            }' "$tmp/$1.out")
    fi
    echo "${v:--}"
}

# ms VALUE_IN_US: milliseconds with two decimals, or "-".
ms() {
    if [ "$1" = - ]; then
        echo -
    else
        awk -v v="$1" 'BEGIN { printf "%.2f", v / 1000 }'
    fi
}

verdict() {
    case "$1" in
    0) echo "ok" ;;
    2) echo "FAILED: an operation failed or returned wrong rows (see above)" ;;
    *) echo "NOT MEASURED: setup failed (see above)" ;;
    esac
}

echo "# storage benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, ops=$ops owners=$owners inflight=$inflight"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

src=0 prc=0 yrc=0
run sqlite --driver sqlite --sqlite "$tmp/store.db" || src=$?

pgdir=$(mktemp -d /tmp/parley-store-pg.XXXXXX)
if conninfo=$("$root/tests/pg_fixture.sh" start "$pgdir" "$(free_port)"); then
    run pgsql --driver pgsql --pg "$conninfo" || prc=$?
else
    echo "PostgreSQL did not start; no pgsql numbers" >&2
    prc=1
fi

run sqlite-sync --driver sqlite-sync --sqlite "$tmp/sync.db" || yrc=$?

echo "# load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== result: ops/s, and completion latency p50 / p99 in ms (sqlite-sync: the call's duration)"
printf '%-16s | %29s | %29s | %29s\n' "" "sqlite (store API)" "pgsql (store API)" "sqlite-sync (baseline)"
printf '%-16s | %9s %9s %9s | %9s %9s %9s | %9s %9s %9s\n' workload ops/s p50 p99 ops/s p50 p99 ops/s p50 p99
for t in queue_put queue_take_all roster_get archive_append; do
    printf '%-16s' "$t"
    for label in sqlite pgsql sqlite-sync; do
        printf ' | %9s %9s %9s' "$(field "$label" "$t" ops_per_s)" \
            "$(ms "$(field "$label" "$t" p50_us)")" "$(ms "$(field "$label" "$t" p99_us)")"
    done
    echo
done
echo
echo "== the 1 ms timer's lateness in ms (p50 / p99 / max)"
printf '%-36s | %26s | %26s\n' "" sqlite pgsql
for t in timer_idle timer_busy timer_locked timer_after; do
    case $t in
    timer_idle) what="idle (no database work)" ;;
    timer_busy) what="appends outstanding all the time" ;;
    timer_locked) what="archive locked by another session" ;;
    timer_after) what="after the unlock, until drained" ;;
    esac
    printf '%-36s' "$what"
    for label in sqlite pgsql; do
        printf ' | %8s %8s %8s' "$(ms "$(field "$label" "$t" p50_us)")" \
            "$(ms "$(field "$label" "$t" p99_us)")" "$(ms "$(field "$label" "$t" max_us)")"
    done
    echo
done
printf '%-36s | %26s | %26s\n' "appends/s meanwhile (busy)" \
    "$(field sqlite timer_busy_appends ops_per_s)" "$(field pgsql timer_busy_appends ops_per_s)"
echo "lock test (pgsql): queued $(field pgsql lock queued), completed $(field pgsql lock completed)" \
    "($(field pgsql lock completed_during_lock) during the lock), failed $(field pgsql lock failed)," \
    "rows $(field pgsql lock rows), drained $(field pgsql lock drain_ms) ms after the unlock"
echo
echo "sqlite:      $(verdict "$src")"
echo "pgsql:       $(verdict "$prc")"
echo "sqlite-sync: $(verdict "$yrc")"
[ "$src" = 0 ] && [ "$prc" = 0 ] && [ "$yrc" = 0 ]
