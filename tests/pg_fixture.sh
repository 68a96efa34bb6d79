#!/bin/sh
# SPDX-License-Identifier: MIT
# A throwaway PostgreSQL server for tests: initdb in a directory the caller
# picks, listening only on a Unix socket in that directory, with a "parley"
# user and database. Prints the libpq conninfo on start.
#
#   tests/pg_fixture.sh start DIR PORT   # prints host=DIR port=PORT user=parley dbname=parley
#   tests/pg_fixture.sh restart DIR      # fast restart (for reconnection tests)
#   tests/pg_fixture.sh stop DIR         # fast stop, then removes DIR
#
# Runs as root (the server runs as the postgres system user) or as postgres
# itself. PG_BINDIR overrides /usr/lib/postgresql/15/bin.
set -eu

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PG_USER=postgres

usage() {
    echo "usage: $0 start DIR PORT | restart DIR | stop DIR" >&2
    exit 64
}

die() {
    echo "pg_fixture: $*" >&2
    exit 1
}

# Runs a command as the postgres user.
as_pg() {
    if [ "$(id -un)" = "$PG_USER" ]; then
        "$@"
    else
        runuser -u "$PG_USER" -- "$@"
    fi
}

# Prints the server log to stderr and fails.
fail_with_log() {
    echo "pg_fixture: $1" >&2
    if [ -f "$dir/pg.log" ]; then
        echo "---- $dir/pg.log ----" >&2
        cat "$dir/pg.log" >&2
        echo "----" >&2
    fi
    exit 1
}

# Runs a command quietly; on failure shows its output and the server log.
quiet() {
    what=$1
    shift
    if ! out=$("$@" 2>&1); then
        [ -z "$out" ] || echo "$out" >&2
        fail_with_log "$what failed"
    fi
}

running() {
    [ -f "$dir/data/postmaster.pid" ] && as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

cmd_start() {
    case $port in
    '' | *[!0-9]*) die "port must be a number: '$port'" ;;
    esac
    [ -x "$PG_BINDIR/initdb" ] || die "$PG_BINDIR/initdb not found (set PG_BINDIR)"
    if [ -d "$dir/data" ] && running; then
        die "a server is already running in $dir"
    fi
    mkdir -p "$dir"
    chmod 755 "$dir"
    if [ "$(id -un)" != "$PG_USER" ]; then
        chown "$PG_USER" "$dir"
    fi
    as_pg test -w "$dir" -a -x "$dir" ||
        die "$dir is not reachable by the $PG_USER user (check the permissions of its parents)"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        quiet initdb as_pg "$PG_BINDIR/initdb" -D "$dir/data" -A trust -U parley --no-sync -E UTF8
    fi
    quiet "pg_ctl start" as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/pg.log" \
        -o "-k $dir -p $port -c listen_addresses='' -c fsync=off" -w start
    if ! as_pg "$PG_BINDIR/psql" -h "$dir" -p "$port" -U parley -d postgres -tAq \
        -c "SELECT 1 FROM pg_database WHERE datname = 'parley'" | grep -q 1; then
        quiet createdb as_pg "$PG_BINDIR/createdb" -h "$dir" -p "$port" -U parley parley
    fi
    echo "host=$dir port=$port user=parley dbname=parley"
}

cmd_restart() {
    [ -d "$dir/data" ] || die "no server in $dir"
    quiet "pg_ctl restart" as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/pg.log" \
        -m fast -w restart
}

cmd_stop() {
    if [ -d "$dir/data" ] && running; then
        quiet "pg_ctl stop" as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w stop
    fi
    # Refuse to remove anything that does not look like a fixture.
    if [ -d "$dir" ]; then
        if [ -e "$dir/data" ] || [ -z "$(ls -A "$dir")" ] || [ -e "$dir/pg.log" ]; then
            rm -rf "$dir"
        else
            die "$dir does not look like a pg_fixture directory; not removing it"
        fi
    fi
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
case $dir in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac
case $cmd in
start)
    [ $# -eq 3 ] || usage
    port=$3
    cmd_start
    ;;
restart)
    [ $# -eq 2 ] || usage
    cmd_restart
    ;;
stop)
    [ $# -eq 2 ] || usage
    cmd_stop
    ;;
*) usage ;;
esac
