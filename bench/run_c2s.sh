#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Client benchmark: the same c2s_bench workloads (idle sessions, logins, messages, a fixed rate)
# against Parley (parleyd: router, sm, c2s) and then jabberd2 (Debian package: router, sm, c2s),
# servers pinned to CPU 0 and the generator to CPU 1; prints both and the ratios.
set -euo pipefail

usage() {
    cat <<EOF
usage: bench/run_c2s.sh [options]
  --users N         users for messages and rate, in pairs (1000)
  --window W        messages in flight per user (8)
  --rate R          the fixed rate, messages/s in total (5000)
  --seconds S       measured seconds of messages and of the fixed rate (20)
  --idle N          idle sessions for the memory measurement (5000)
  --login-users N   users logging in per round (5000)
  --rounds N        measured login rounds, after a warm-up round (3)
  --concurrency K   logins in flight (400)
  --only NAME       run only parley or only jabberd2
  --keep            keep the temporary directory (configs, databases, logs, outputs)
environment: PARLEY_BUILD (build/release), C2S_BENCH, JABBERD2_SBIN (/usr/sbin) override paths.
EOF
}

users=1000
window=8
rate=5000
secs=20
idle=5000
login_users=5000
rounds=3
conc=400
only=""
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
    --users) users=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --seconds) secs=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --login-users) login_users=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --concurrency) conc=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
case "$only" in "" | parley | jabberd2) ;; *) usage >&2; exit 2 ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
build=${PARLEY_BUILD:-$root/build/release}
c2s_bench=${C2S_BENCH:-$build/bench/c2s_bench}
jsbin=${JABBERD2_SBIN:-/usr/sbin}
domain=bench.test
password=benchpass
nusers=$users
for n in "$idle" "$login_users"; do
    [ "$n" -gt "$nusers" ] && nusers=$n
done

need_build=0
for f in "$c2s_bench" "$build/tools/parleyd" "$build/tools/parleyctl" "$build/router/parley-router" \
    "$build/sm/parley-sm" "$build/c2s/parley-c2s"; do
    [ -x "$f" ] || need_build=1
done
if [ "$need_build" = 1 ] && [ "$only" != jabberd2 ]; then
    echo "# building the release tree ($build)" >&2
    (cd "$root" && cmake --preset release >/dev/null && cmake --build build/release -j2 >/dev/null)
fi

# Both servers and the generator get the same descriptor limit (5000 sessions need more than
# the default 1024).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle + login_users / 2 + 200)) ]; then
    echo "run_c2s.sh: the open files limit ($(ulimit -n)) is too low for --idle $idle" >&2
    exit 1
fi

bench_tmp c2s

# stop PID: SIGTERM, then wait for it, and forget it.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local p rest=()
    for p in "${pids[@]}"; do
        [ "$p" = "$1" ] || rest+=("$p")
    done
    pids=("${rest[@]+"${rest[@]}"}")
}

# load LABEL PORT PIDS c2s_bench-options...: the generator on CPU 1; output in $tmp/LABEL.out.
load() {
    local label=$1 port=$2 pidopts=() p rc=0
    for p in $3; do
        pidopts+=(--pid "$p")
    done
    shift 3
    echo "-- $label: c2s_bench $*"
    taskset -c 1 "$c2s_bench" --port "$port" --domain "$domain" --password "$password" \
        "${pidopts[@]}" "$@" >"$tmp/$label.out" 2>&1 &
    local gen=$!
    pids+=("$gen")
    wait "$gen" || rc=$?
    pids=("${pids[@]:0:${#pids[@]}-1}")
    sed 's/^/   /' "$tmp/$label.out"
    echo "$rc" >"$tmp/$label.rc"
}

# workloads NAME PORT PIDS: the same sequence for every server. Idle sessions first, while the
# servers are fresh, so that the RSS growth is not hidden by memory freed by earlier work.
workloads() {
    local n=$1 port=$2 srv=$3
    load "$n-idle" "$port" "$srv" --mode idle --users "$idle" --concurrency "$conc" --settle 3
    sleep 3
    load "$n-login-plain" "$port" "$srv" --mode logins --users "$login_users" \
        --concurrency "$conc" --rounds "$rounds" --settle 3
    load "$n-login-scram" "$port" "$srv" --mode logins --users "$login_users" \
        --concurrency "$conc" --rounds "$rounds" --settle 3 --mech SCRAM-SHA-1
    load "$n-messages" "$port" "$srv" --mode messages --users "$users" --window "$window" \
        --seconds "$secs" --archive never
    load "$n-rate" "$port" "$srv" --mode rate --users "$users" --rate "$rate" --seconds "$secs" \
        --archive never
}

parley_run() {
    local d=$tmp/parley p=() port
    while [ ${#p[@]} -lt 6 ] || [ "$(printf '%s\n' "${p[@]}" | sort -u | wc -l)" -lt 6 ]; do
        p=()
        for i in 0 1 2 3 4 5; do p+=("$(free_port)"); done
    done
    port=${p[0]}
    "$build/tools/parleyctl" init "$d" --domain "$domain" --address 127.0.0.1 \
        --c2s-port "${p[0]}" --c2s-tls-port "${p[1]}" --router-port "${p[2]}" \
        --http-port "${p[3]}" --s2s-port "${p[4]}" --s2s-tls-port "${p[5]}" \
        --allow-plaintext >"$tmp/parley-init.out"
    # warn: nothing per connection or per login, as jabberd2 writing to /dev/null (see docs)
    sed -i 's|<level>info</level>|<level>warn</level>|' "$d/parley.xml"
    echo "# adding $nusers Parley users (parleyctl, PBKDF2 with 4096 iterations each)"
    for ((i = 1; i <= nusers; i++)); do
        "$build/tools/parleyctl" --config "$d/parley.xml" user add "u$i@$domain" "$password"
    done
    taskset -c 0 "$build/tools/parleyd" --config "$d/parley.xml" --foreground \
        >"$tmp/parley.log" 2>&1 &
    local ppid=$!
    pids+=("$ppid")
    if ! wait_ready "$port" "$domain" "$ppid"; then
        echo "Parley did not start:" >&2
        cat "$tmp/parley.log" >&2
        return 1
    fi
    local srv="" c
    for c in $(pgrep -P "$ppid"); do
        case "$(cat "/proc/$c/comm")" in
        parley-router | parley-sm | parley-c2s) srv="$srv $c" ;;
        esac
    done
    echo "== Parley (parleyd $ppid; router, sm, c2s:$srv), c2s port $port"
    workloads parley "$port" "$srv"
    # Parley as configured by parleyctl init archives every message (XEP-0313); jabberd2 has
    # no archive. The comparable runs above ask for none; these show the archive's cost.
    load parley-messages-archive "$port" "$srv" --mode messages --users "$users" \
        --window "$window" --seconds "$secs" --archive always
    load parley-rate-archive "$port" "$srv" --mode rate --users "$users" --rate "$rate" \
        --seconds "$secs" --archive always
    stop "$ppid"
    if grep -q -E ': (error|warn|panic)' "$tmp/parley.log"; then
        echo "Parley's log (level warn):"
        grep -E ': (error|warn|panic)' "$tmp/parley.log" | sort | uniq -c | sort -rn | head -10
    fi
}

jabberd2_run() {
    local d=$tmp/jabberd2 rport cport s p srv=""
    mkdir -p "$d"
    rport=$(free_port)
    cport=$(free_port)
    while [ "$cport" = "$rport" ]; do cport=$(free_port); done
    s=$(secret)
    jabberd2_conf "$d" "$domain" "$rport" "$cport" "$s"
    echo "# adding $nusers jabberd2 users (SQL into authreg and active)"
    jabberd2_db "$d" "$domain" "$nusers" "$password"
    for p in router sm c2s; do
        taskset -c 0 "$jsbin/jabberd2-$p" -c "$d/$p.xml" >"$tmp/jabberd2-$p.stdout" 2>&1 &
        pids+=("$!")
        srv="$srv $!"
        [ "$p" = router ] && sleep 0.5
    done
    # shellcheck disable=SC2086 # a list of PIDs
    if ! wait_ready "$cport" "$domain" $srv; then
        echo "jabberd2 did not start:" >&2
        cat "$tmp"/jabberd2-*.stdout >&2
        return 1
    fi
    echo "== jabberd2 (router, sm, c2s:$srv), c2s port $cport"
    workloads jabberd2 "$cport" "$srv"
    for p in $srv; do
        stop "$p"
    done
}

echo "# c2s benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs; servers on CPU 0, c2s_bench on CPU 1"
echo "# $users users x $window in flight for ${secs} s; $rate msgs/s for ${secs} s; $idle idle sessions;" \
    "$login_users logins x $rounds rounds, $conc in flight; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$only" = jabberd2 ] || parley_run || echo "Parley: setup failed"
echo
[ "$only" = parley ] || jabberd2_run || echo "jabberd2: setup failed"
echo
echo "# load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== result (ratio = Parley / jabberd2; ! = that run reported errors or lost messages)"
printf '%-44s %12s %12s %8s\n' "" Parley jabberd2 ratio
row "logins/s, PLAIN" login-plain rate
row "  login p99 ms" login-plain p99_ms
row "logins/s, SCRAM-SHA-1" login-scram rate
row "  login p99 ms" login-scram p99_ms
row "messages/s ($users users, $window in flight)" messages rate
row "  p50 ms" messages p50_ms
row "  p99 ms" messages p99_ms
row "  servers' CPU (cores)" messages servers_cpu
row "at $rate msgs/s: p50 ms" rate p50_ms
row "  p99 ms" rate p99_ms
row "  max ms" rate max_ms
row "RSS per idle session, KiB ($idle sessions)" idle kib_per_session
echo "  by daemon, KiB per session: Parley $(field parley-idle per_daemon | sed 's/,/, /g');" \
    "jabberd2 $(field jabberd2-idle per_daemon | sed 's/,/, /g')"
echo "SCRAM-SHA-1 iterations the servers asked for: Parley $(field parley-login-scram iterations)," \
    "jabberd2 $(field jabberd2-login-scram iterations)"
if [ -f "$tmp/parley-messages-archive.out" ]; then
    echo "Parley with its archive on (XEP-0313, as parleyctl init configures it; jabberd2 has none):"
    printf '%-44s %12s %12s %8s\n' "messages/s" "$(field parley-messages-archive rate)" \
        "$(field jabberd2-messages rate)" \
        "$(ratio "$(field parley-messages-archive rate)" "$(field jabberd2-messages rate)")"
    printf '%-44s %12s %12s\n' "at $rate msgs/s: p99 ms" "$(field parley-rate-archive p99_ms)" \
        "$(field jabberd2-rate p99_ms)"
fi
