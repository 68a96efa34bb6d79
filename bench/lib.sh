# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shell helpers shared by the bench/run_*.sh scripts (sourced, not run).

# A free port below the ephemeral range (32768 and up on Linux): a port the kernel hands out
# for connect() could be taken again by an outgoing connection before the server binds it.
free_port() {
    python3 -c '
import random, socket
while True:
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        print(p)
        break
    except OSError:
        pass
    finally:
        s.close()'
}

secret() {
    od -An -tx1 -N12 /dev/urandom | tr -d ' \n'
}

# jabberd2_conf DIR DOMAIN ROUTER-PORT C2S-PORT SECRET: router.xml, c2s.xml and sm.xml for a
# jabberd2 serving DOMAIN, logging to /dev/null, limits off, SQLite in DIR.
jabberd2_conf() {
    local d=$1 domain=$2 rport=$3 cport=$4 s=$5
    local router="<router><ip>127.0.0.1</ip><port>$rport</port><user>jabberd</user><pass>$s</pass>
    <retry><init>10</init><lost>3</lost><sleep>1</sleep></retry></router>"
    local sqlite="<dbname>$d/jabberd2.db</dbname><busy-timeout>2000</busy-timeout>
      <sql>PRAGMA synchronous = NORMAL;</sql>"
    cat >"$d/router.xml" <<EOF
<router><id>router</id><pidfile>$d/router.pid</pidfile>
  <log type='file'><file>/dev/null</file></log>
  <local><ip>127.0.0.1</ip><port>$rport</port><users>$d/router-users.xml</users></local>
  <check><interval>60</interval><keepalive>0</keepalive></check>
  <io><max_fds>1024</max_fds><limits><bytes>0</bytes><connects>0</connects></limits>
    <access><order>allow,deny</order></access></io>
  <aci><acl type='all'><user>jabberd</user></acl><filter>$d/no-router-filter.xml</filter></aci>
</router>
EOF
    echo "<users><user><name>jabberd</name><secret>$s</secret></user></users>" \
        >"$d/router-users.xml"
    cat >"$d/c2s.xml" <<EOF
<c2s><id>c2s</id><pidfile>$d/c2s.pid</pidfile>
  $router
  <log type='file'><file>/dev/null</file></log>
  <local><id>$domain</id><ip>127.0.0.1</ip><port>$cport</port></local>
  <io><max_fds>20000</max_fds>
    <limits><bytes>0</bytes><stanzas>0</stanzas><connects>0</connects>
      <stanzasize>65535</stanzasize></limits>
    <access><order>allow,deny</order></access>
    <check><interval>0</interval><idle>0</idle><keepalive>0</keepalive></check></io>
  <authreg><path>/usr/lib/x86_64-linux-gnu/jabberd2</path><module>sqlite</module>
    <mechanisms><traditional><plain/></traditional>
      <sasl><plain/><scram-sha-1/></sasl></mechanisms>
    <sqlite>$sqlite<password_type><plaintext/></password_type></sqlite></authreg>
</c2s>
EOF
    # The module chains are those of the package's /etc/jabberd2/sm.xml.
    cat >"$d/sm.xml" <<EOF
<sm><id>$domain</id><pidfile>$d/sm.pid</pidfile>
  $router
  <log type='file'><file>/dev/null</file></log>
  <local><id>$domain</id></local>
  <storage><path>/usr/lib/x86_64-linux-gnu/jabberd2</path><driver>sqlite</driver>
    <sqlite>$sqlite</sqlite></storage>
  <modules><path>/usr/lib/x86_64-linux-gnu/jabberd2</path>
    <chain id='sess-start'><module>status</module></chain>
    <chain id='sess-end'><module>status</module><module>iq-last</module></chain>
    <chain id='in-sess'><module>validate</module><module>status</module><module>privacy</module>
      <module>roster</module><module>vacation</module><module>iq-vcard</module>
      <module>iq-ping</module><module>iq-private</module><module>disco</module>
      <module>amp</module><module>offline</module><module>announce</module>
      <module>presence</module><module>deliver</module></chain>
    <chain id='out-sess'></chain>
    <chain id='in-router'><module>session</module><module>validate</module>
      <module>presence</module><module>privacy</module></chain>
    <chain id='out-router'><module>privacy</module></chain>
    <chain id='pkt-sm'><module>iq-last</module><module>iq-ping</module><module>iq-time</module>
      <module>iq-version</module><module>amp</module><module>disco</module>
      <module>announce</module><module>help</module><module>echo</module>
      <module>status</module><module>presence</module></chain>
    <chain id='pkt-user'><module>roster</module><module>presence</module><module>disco</module>
      <module>iq-vcard</module><module>amp</module><module>deliver</module>
      <module>vacation</module><module>offline</module><module>iq-last</module></chain>
    <chain id='pkt-router'><module>session</module><module>disco</module></chain>
    <chain id='user-load'><module>active</module><module>roster</module>
      <module>roster-publish</module><module>privacy</module><module>vacation</module></chain>
    <chain id='user-unload'></chain>
    <chain id='user-create'><module>active</module><module>template-roster</module></chain>
    <chain id='user-delete'><module>active</module><module>announce</module>
      <module>offline</module><module>privacy</module><module>roster</module>
      <module>vacation</module><module>status</module><module>iq-last</module>
      <module>iq-private</module><module>iq-vcard</module></chain>
    <chain id='disco-extend'><module>iq-version</module><module>help</module></chain>
  </modules>
  <discovery><identity><category>server</category><type>im</type>
    <name>Jabber IM server</name></identity></discovery>
</sm>
EOF
}

# jabberd2_db DIR DOMAIN NUSERS PASSWORD: jabberd2's schema, and users u1..uNUSERS straight into
# authreg (plaintext passwords, as the package's sqlite authreg is configured) and active (as if
# created by registration).
jabberd2_db() {
    local db=$1/jabberd2.db domain=$2 nusers=$3 password=$4 i
    zcat /usr/share/doc/jabberd2/db-setup.sqlite.gz | sqlite3 "$db" >/dev/null
    {
        echo "BEGIN;"
        for ((i = 1; i <= nusers; i++)); do
            echo "INSERT INTO authreg VALUES('u$i','$domain','$password');"
            echo "INSERT INTO active(\"collection-owner\", time) VALUES('u$i@$domain', 0);"
        done
        echo "COMMIT;"
    } | sqlite3 "$db"
}


# jabberd2_s2s_conf DIR ROUTER-PORT SECRET S2S-PORT PEMFILE: s2s.xml for the jabberd2 in DIR,
# listening on 127.0.0.1:S2S-PORT, STARTTLS with PEMFILE (certificate and key), dialback with a
# random secret, resolving through /etc/resolv.conf (the only way jabberd2 takes a nameserver).
jabberd2_s2s_conf() {
    local d=$1 rport=$2 s=$3 port=$4 pem=$5
    cat >"$d/s2s.xml" <<EOX
<s2s><id>s2s</id><pidfile>$d/s2s.pid</pidfile>
  <router><ip>127.0.0.1</ip><port>$rport</port><user>jabberd</user><pass>$s</pass>
    <retry><init>10</init><lost>3</lost><sleep>1</sleep></retry></router>
  <log type='file'><file>/dev/null</file></log>
  <local><ip>127.0.0.1</ip><port>$port</port><secret>$(secret)</secret>
    <pemfile>$pem</pemfile></local>
  <io><max_fds>1024</max_fds><limits><stanzasize>65535</stanzasize></limits></io>
  <check><interval>60</interval><queue>60</queue><retry>300</retry><idle>86400</idle>
    <keepalive>0</keepalive><dnscache>300</dnscache></check>
  <lookup><srv>xmpp-server</srv><min-ttl>30</min-ttl><max-ttl>86400</max-ttl>
    <bad-host-timeout>0</bad-host-timeout></lookup>
  <out-conn-reuse/>
</s2s>
EOX
}

# self_signed DIR DOMAIN: DIR/DOMAIN.pem, a self-signed certificate followed by its key (the
# shape jabberd2's pemfile wants), made with GnuTLS's certtool.
self_signed() {
    local d=$1 name=$2
    printf 'cn = %s\ndns_name = %s\nexpiration_days = 2\ntls_www_server\ntls_www_client\nsigning_key\nencryption_key\n' \
        "$name" "$name" >"$d/$name.tmpl"
    certtool --generate-privkey --outfile "$d/$name.key" 2>/dev/null
    certtool --generate-self-signed --load-privkey "$d/$name.key" --template "$d/$name.tmpl" \
        --outfile "$d/$name.crt" 2>/dev/null
    cat "$d/$name.crt" "$d/$name.key" >"$d/$name.pem"
}

# bench_tmp NAME: a temporary folder in $tmp, and an EXIT trap that stops every process in $pids
# (last started first) and removes the folder, unless $keep is 1.
bench_tmp() {
    tmp=$(mktemp -d "/tmp/parley-$1-bench.XXXXXX")
    pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# shellcheck disable=SC2317 # called by the EXIT trap
bench_cleanup() {
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    if [ "${keep:-0}" = 1 ]; then
        echo "# kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}

# Side-by-side results: each workload LABEL wrote $tmp/LABEL.out (with a RESULT line of
# key=value words) and $tmp/LABEL.rc (its exit code).
# field LABEL KEY: a value from the RESULT line of LABEL's output.
field() {
    [ -f "$tmp/$1.out" ] || return 0
    sed -n 's/^RESULT //p' "$tmp/$1.out" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

# ok LABEL: the run finished with exit code 0.
ok() {
    [ -f "$tmp/$1.rc" ] && [ "$(cat "$tmp/$1.rc")" = 0 ]
}

ratio() {
    if [ -n "$1" ] && [ -n "$2" ]; then
        awk -v p="$1" -v j="$2" 'BEGIN { if (j > 0) printf "%.2f", p / j; else print "-" }'
    else
        echo "-"
    fi
}

# row TITLE WORKLOAD KEY: Parley, jabberd2 and the ratio; a run that failed is marked with "!".
row() {
    local p j pm="" jm=""
    p=$(field "parley-$2" "$3")
    j=$(field "jabberd2-$2" "$3")
    ok "parley-$2" || pm="!"
    ok "jabberd2-$2" || jm="!"
    printf '%-44s %12s %12s %8s\n' "$1" "${p:--}$pm" "${j:--}$jm" "$(ratio "$p" "$j")"
}


# wait_ready PORT DOMAIN PID...: until two users of DOMAIN (u1, u2; $password) can log in on
# PORT with $c2s_bench (60 s); fails at once if one of the PIDs is gone.
# shellcheck disable=SC2154 # c2s_bench and password are set by the sourcing script
wait_ready() {
    local port=$1 dom=$2 i p
    shift 2
    for ((i = 0; i < 120; i++)); do
        for p in "$@"; do
            kill -0 "$p" 2>/dev/null || return 1
        done
        if "$c2s_bench" --port "$port" --domain "$dom" --password "$password" --mode idle \
            --users 2 --settle 0 >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}
