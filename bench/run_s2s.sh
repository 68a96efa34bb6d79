#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Federation benchmark: two servers, a.test and b.test, on this machine, each a whole
# deployment (Parley: parleyd with router, sm, c2s, s2s and resolver; jabberd2: router, sm, c2s
# and s2s), found through a real DNS server (dnsmasq, SRV records). c2s_bench pairs every user
# of a.test with one of b.test, so every message crosses an s2s stream (STARTTLS and dialback
# with self-signed certificates on both). Servers pinned to CPU 0, the generator to CPU 1;
# prints both and the ratios.
set -euo pipefail

usage() {
    cat <<EOF
usage: bench/run_s2s.sh [options]
  --users N         users in all, half on each server, in pairs across them (1000)
  --window W        messages in flight per user (8)
  --seconds S       measured seconds (20)
  --only NAME       run only parley or only jabberd2
  --keep            keep the temporary directory (configs, databases, logs, outputs)
environment: PARLEY_BUILD (build/release), C2S_BENCH, JABBERD2_SBIN (/usr/sbin) override paths.
EOF
}

users=1000
window=8
secs=20
only=""
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
    --users) users=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --seconds) secs=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
case "$only" in "" | parley | jabberd2) ;; *) usage >&2; exit 2 ;; esac
[ "$((users % 2))" = 0 ] || { echo "run_s2s.sh: --users must be even" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run_s2s.sh: needs root (DNS on port 53, mount namespaces)" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
build=${PARLEY_BUILD:-$root/build/release}
c2s_bench=${C2S_BENCH:-$build/bench/c2s_bench}
jsbin=${JABBERD2_SBIN:-/usr/sbin}
password=benchpass
domains=(a.test b.test)

if [ "$only" != jabberd2 ]; then
    for f in "$c2s_bench" "$build/tools/parleyd" "$build/tools/parleyctl" \
        "$build/s2s/parley-s2s" "$build/resolver/parley-resolver"; do
        if [ ! -x "$f" ]; then
            echo "# building the release tree ($build)" >&2
            (cd "$root" && cmake --preset release >/dev/null && cmake --build build/release -j2 >/dev/null)
            break
        fi
    done
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bench_tmp s2s

stop_all() {
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    pids=()
}

# A loopback address with port 53 free, for a DNS server that resolv.conf can name (it has no
# port syntax).
dns_address() {
    python3 -c '
import random, socket
for _ in range(200):
    a = "127.0.53.%d" % random.randint(2, 250)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((a, 53))
        print(a)
        break
    except OSError:
        pass
    finally:
        s.close()'
}

# dns_start ADDR PORT-A PORT-B: dnsmasq on ADDR:53, authoritative for .test (never forwarding
# anywhere), with _xmpp-server._tcp SRV records of a.test and b.test on 127.0.0.1.
dns_start() {
    local addr=$1
    dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces --listen-address="$addr" \
        --port=53 --local=/test/ --local-ttl=300 \
        --srv-host="_xmpp-server._tcp.a.test,a.test,$2" --host-record=a.test,127.0.0.1 \
        --srv-host="_xmpp-server._tcp.b.test,b.test,$3" --host-record=b.test,127.0.0.1 \
        >"$tmp/dnsmasq.log" 2>&1 &
    pids+=("$!")
    echo "nameserver $addr" >"$tmp/resolv.conf"
}

# private_resolv CMD...: exec CMD with $tmp/resolv.conf over /etc/resolv.conf, in a mount
# namespace of its own (the machine's file is not touched). Run it in the background (&): it
# replaces the shell it runs in.
private_resolv() {
    # shellcheck disable=SC2016 # $0 and $@ are for the inner sh
    exec unshare --mount sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$tmp/resolv.conf" "$@"
}

# load LABEL PORT-A PORT-B PIDS: the messages workload across the two servers.
load() {
    local label=$1 pidopts=() p rc=0
    for p in $4; do
        pidopts+=(--pid "$p")
    done
    echo "-- $label: c2s_bench --mode messages --users $users --window $window --seconds $secs"
    taskset -c 1 "$c2s_bench" --port "$2" --domain a.test --peer-port "$3" --peer-domain b.test \
        --password "$password" --mode messages --users "$users" --window "$window" \
        --seconds "$secs" --warmup 3 --archive never "${pidopts[@]}" >"$tmp/$label.out" 2>&1 || rc=$?
    sed 's/^/   /' "$tmp/$label.out"
    echo "$rc" >"$tmp/$label.rc"
}

# Users u1..uN on each side: c2s_bench logs user 2i+1 in on a.test and 2i+2 on b.test.
parley_run() {
    local addr port_a port_b i d dom srv="" ppids=()
    addr=$(dns_address)
    declare -A port
    for dom in "${domains[@]}"; do
        d=$tmp/parley-$dom
        local p=()
        for i in 0 1 2 3 4 5; do p+=("$(free_port)"); done
        port[$dom]=${p[0]}
        port[$dom.s2s]=${p[4]}
        "$build/tools/parleyctl" init "$d" --domain "$dom" --address 127.0.0.1 \
            --c2s-port "${p[0]}" --c2s-tls-port "${p[1]}" --router-port "${p[2]}" \
            --http-port "${p[3]}" --s2s-port "${p[4]}" --s2s-tls-port "${p[5]}" \
            --allow-plaintext >"$tmp/parley-init-$dom.out"
        sed -i 's|<level>info</level>|<level>warn</level>|' "$d/parley.xml"
        sed -i "s|<resolver>|<resolver>\n    <nameserver address='$addr' port='53'/>|" "$d/parley.xml"
        echo "# adding $users Parley users to $dom"
        for ((i = 1; i <= users; i++)); do
            "$build/tools/parleyctl" --config "$d/parley.xml" user add "u$i@$dom" "$password"
        done
    done
    port_a=${port[a.test]}
    port_b=${port[b.test]}
    dns_start "$addr" "${port[a.test.s2s]}" "${port[b.test.s2s]}"
    for dom in "${domains[@]}"; do
        taskset -c 0 "$build/tools/parleyd" --config "$tmp/parley-$dom/parley.xml" --foreground \
            >"$tmp/parley-$dom.log" 2>&1 &
        pids+=("$!")
        ppids+=("$!")
    done
    if ! wait_ready "$port_a" a.test "${ppids[@]}" || ! wait_ready "$port_b" b.test "${ppids[@]}"; then
        echo "Parley did not start:" >&2
        cat "$tmp"/parley-*.log >&2
        return 1
    fi
    for p in "${ppids[@]}"; do
        for c in $(pgrep -P "$p"); do
            srv="$srv $c"
        done
    done
    echo "== Parley (a.test c2s $port_a, b.test c2s $port_b; processes:$srv)"
    load parley-messages "$port_a" "$port_b" "$srv"
    stop_all
    if grep -q -E ': (error|warn|panic)' "$tmp"/parley-*.log; then
        echo "Parley's logs (level warn):"
        grep -h -E ': (error|warn|panic)' "$tmp"/parley-*.log | sort | uniq -c | sort -rn | head -10
    fi
}

jabberd2_run() {
    local addr dom d rport cport sport s p srv="" port_a port_b
    addr=$(dns_address)
    declare -A port
    for dom in "${domains[@]}"; do
        d=$tmp/jabberd2-$dom
        mkdir -p "$d"
        rport=$(free_port)
        cport=$(free_port)
        sport=$(free_port)
        s=$(secret)
        port[$dom]=$cport
        port[$dom.s2s]=$sport
        port[$dom.router]=$rport
        jabberd2_conf "$d" "$dom" "$rport" "$cport" "$s"
        self_signed "$d" "$dom"
        jabberd2_s2s_conf "$d" "$rport" "$s" "$sport" "$d/$dom.pem"
        echo "# adding $users jabberd2 users to $dom (SQL into authreg and active)"
        jabberd2_db "$d" "$dom" "$users" "$password"
    done
    dns_start "$addr" "${port[a.test.s2s]}" "${port[b.test.s2s]}"
    for dom in "${domains[@]}"; do
        d=$tmp/jabberd2-$dom
        for p in router sm c2s s2s; do
            if [ "$p" = s2s ]; then
                # unshare and sh exec what follows: $! is jabberd2-s2s itself.
                private_resolv taskset -c 0 "$jsbin/jabberd2-s2s" -c "$d/s2s.xml" \
                    >"$tmp/jabberd2-$dom-$p.stdout" 2>&1 &
            else
                taskset -c 0 "$jsbin/jabberd2-$p" -c "$d/$p.xml" >"$tmp/jabberd2-$dom-$p.stdout" 2>&1 &
            fi
            pids+=("$!")
            srv="$srv $!"
            [ "$p" = router ] && sleep 0.5
        done
    done
    port_a=${port[a.test]}
    port_b=${port[b.test]}
    # shellcheck disable=SC2086 # a list of PIDs
    if ! wait_ready "$port_a" a.test $srv || ! wait_ready "$port_b" b.test $srv; then
        echo "jabberd2 did not start:" >&2
        cat "$tmp"/jabberd2-*.stdout >&2
        return 1
    fi
    echo "== jabberd2 (a.test c2s $port_a, b.test c2s $port_b; processes:$srv)"
    load jabberd2-messages "$port_a" "$port_b" "$srv"
    stop_all
}

echo "# s2s benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs; servers on CPU 0, c2s_bench on CPU 1"
echo "# $users users ($((users / 2)) pairs across a.test and b.test) x $window in flight for ${secs} s;" \
    "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$only" = jabberd2 ] || parley_run || echo "Parley: setup failed"
echo
[ "$only" = parley ] || jabberd2_run || echo "jabberd2: setup failed"
echo
echo "# load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== result (ratio = Parley / jabberd2; ! = that run reported errors or lost messages)"
printf '%-44s %12s %12s %8s\n' "" Parley jabberd2 ratio
row "messages/s across s2s ($users users, $window in flight)" messages rate
row "  p50 ms" messages p50_ms
row "  p99 ms" messages p99_ms
row "  servers' CPU (cores)" messages servers_cpu
