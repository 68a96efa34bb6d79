#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Router benchmark: the same router_bench load against parley-router and then jabberd2's router
# (Debian package), each pinned to CPU 0 with the generator on CPU 1; prints both and the ratio.
set -euo pipefail

usage() {
    cat <<EOF
usage: bench/run_router.sh [--seconds S] [--pairs N] [--keep] [-- router_bench options]
  --seconds S   measured seconds per router (30)
  --pairs N     component pairs (1)
  --keep        keep the temporary directory (configs, logs, outputs)
environment: PARLEY_ROUTER, JABBERD2_ROUTER, ROUTER_BENCH override the binaries.
EOF
}

secs=30
pairs=1
keep=0
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) secs=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) usage >&2; exit 2 ;;
    esac
done

for a in ${extra[@]+"${extra[@]}"}; do
    case "$a" in
    --port* | --router-pid* | --secret-* | --name-* | --pairs* | --seconds*)
        echo "run_router.sh: $a is set by the script; use its own options" >&2
        exit 2
        ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
build=$root/build/release
parley_router=${PARLEY_ROUTER:-$build/router/parley-router}
jabberd2_router=${JABBERD2_ROUTER:-/usr/sbin/jabberd2-router}
router_bench=${ROUTER_BENCH:-$build/bench/router_bench}

if [ ! -x "$parley_router" ] || [ ! -x "$router_bench" ]; then
    echo "# building the release tree (build/release)" >&2
    (cd "$root" && cmake --preset release >/dev/null && cmake --build build/release -j2 >/dev/null)
fi

bench_tmp router

# Component names, as router_bench derives them for --pairs.
names() {
    local base=$1 i
    if [ "$pairs" = 1 ]; then
        echo "$base"
        return
    fi
    for ((i = 1; i <= pairs; i++)); do
        echo "${base%%.*}$i.${base#*.}"
    done
}

# wait_listen PID PORT: until PID listens on PORT (10 s), or fail if PID is gone.
wait_listen() {
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$1" 2>/dev/null || return 1
        if ss -Hltn "sport = :$2" | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# stop PID: SIGTERM, then wait for it.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local p rest=()
    for p in "${pids[@]}"; do
        [ "$p" = "$1" ] || rest+=("$p")
    done
    pids=("${rest[@]+"${rest[@]}"}")
}

# run_load LABEL PID PORT SECRET_A SECRET_B: the generator on CPU 1; output in $tmp/LABEL.out.
# It runs in the background so that a signal reaches the trap at once.
run_load() {
    local rc=0 gen
    : >"$tmp/$1.out"
    taskset -c 1 "$router_bench" --port "$3" --router-pid "$2" --pairs "$pairs" \
        --seconds "$secs" --secret-a "$4" --secret-b "$5" ${extra[@]+"${extra[@]}"} \
        >"$tmp/$1.out" 2>&1 &
    gen=$!
    pids+=("$gen")
    tail -n +1 -f --pid="$gen" "$tmp/$1.out" &
    pids+=("$!")
    wait "$gen" || rc=$?
    wait "$!" || true
    return "$rc"
}

parley_run() {
    local port s1 s2 n conf=$tmp/parley.xml
    port=$(free_port)
    s1=$(secret)
    s2=$(secret)
    {
        echo "<parley><log><level>warn</level></log>"
        echo "<router-link><address>127.0.0.1</address><port>$port</port></router-link>"
        for n in $(names a.bench); do echo "<component name='$n' secret='$s1'/>"; done
        for n in $(names b.bench); do echo "<component name='$n' secret='$s2'/>"; done
        echo "<router><output-limit>4M</output-limit></router></parley>"
    } >"$conf"
    taskset -c 0 "$parley_router" -f -c "$conf" >"$tmp/parley.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    if ! wait_listen "$pid" "$port"; then
        echo "parley-router did not start:" >&2
        cat "$tmp/parley.log" >&2
        return 1
    fi
    echo "== parley-router ($parley_router), pid $pid, port $port"
    local rc=0
    run_load parley "$pid" "$port" "$s1" "$s2" || rc=$?
    stop "$pid"
    if [ -s "$tmp/parley.log" ]; then
        echo "parley-router log (level warn):"
        head -20 "$tmp/parley.log" | sed 's/^/  /'
    fi
    return $rc
}

jabberd2_run() {
    local port s pid
    port=$(free_port)
    s=$(secret)
    # jabberd2 has one <local><secret> for every XEP-0114 component and binds each one's
    # stream 'to' as a route. No filter file (a missing one means no filtering), no limits.
    cat >"$tmp/router.xml" <<EOF
<router>
  <id>router</id>
  <pidfile>$tmp/jabberd2-router.pid</pidfile>
  <log type='file'><file>$tmp/jabberd2-router.log</file></log>
  <local>
    <ip>127.0.0.1</ip>
    <port>$port</port>
    <users>$tmp/router-users.xml</users>
    <secret>$s</secret>
  </local>
  <check><interval>60</interval><keepalive>0</keepalive></check>
  <io>
    <max_fds>4096</max_fds>
    <limits><bytes>0</bytes><connects>0</connects></limits>
    <access><order>allow,deny</order></access>
  </io>
  <aci>
    <acl type='all'><user>jabberd</user></acl>
    <filter>$tmp/no-router-filter.xml</filter>
  </aci>
</router>
EOF
    echo "<users><user><name>jabberd</name><secret>$(secret)</secret></user></users>" \
        >"$tmp/router-users.xml"
    taskset -c 0 "$jabberd2_router" -c "$tmp/router.xml" >"$tmp/jabberd2-router.stdout" 2>&1 &
    pid=$!
    pids+=("$pid")
    if ! wait_listen "$pid" "$port"; then
        echo "jabberd2's router did not start:" >&2
        cat "$tmp/jabberd2-router.stdout" "$tmp/jabberd2-router.log" >&2 2>/dev/null || true
        return 1
    fi
    echo "== jabberd2 router ($jabberd2_router), pid $pid, port $port"
    local rc=0
    run_load jabberd2 "$pid" "$port" "$s" "$s" || rc=$?
    stop "$pid"
    return $rc
}

# verdict LABEL RC: how far to trust LABEL's numbers.
verdict() {
    case "$2" in
    0) echo "ok" ;;
    2) echo "INVALID: stanzas lost or bounced, or a stream was closed (see above)" ;;
    *) echo "NOT MEASURED: setup failed (see above)" ;;
    esac
}

echo "# router benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, ${secs} s, $pairs pair(s)"
echo "# router under test on CPU 0, router_bench on CPU 1; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
prc=0
jrc=0
parley_run || prc=$?
echo
jabberd2_run || jrc=$?
echo

echo "# load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
pm=$(field parley mean)
jm=$(field jabberd2 mean)
echo "== result: ${secs} s measured, $pairs pair(s); CPU = cores the router used"
printf '%-10s %14s %10s %10s %10s %6s  %s\n' router "mean stanza/s" "min/s" \
    "RSS start" "RSS end" "CPU" verdict
for label in parley jabberd2; do
    rc=$prc
    [ "$label" = jabberd2 ] && rc=$jrc
    printf '%-10s %14s %10s %8s K %8s K %6s  %s\n' "$label" "$(field "$label" mean)" \
        "$(field "$label" min)" "$(field "$label" rss_start_kib)" "$(field "$label" rss_end_kib)" \
        "$(field "$label" router_cpu)" "$(verdict "$label" "$rc")"
done
if [ "$prc" = 0 ] && [ "$jrc" = 0 ] && [ -n "$pm" ] && [ -n "$jm" ]; then
    echo "ratio parley/jabberd2 (mean stanzas/s): $(awk -v p="$pm" -v j="$jm" 'BEGIN { printf "%.2f", p / j }')"
else
    echo "ratio parley/jabberd2: not available (a run did not complete cleanly)"
fi
exit "$prc"
