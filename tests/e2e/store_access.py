# SPDX-License-Identifier: MIT
"""The test's view of a deployment's store, whichever driver it runs on:
SQLite (the file under the data directory) or, with PARLEY_STORE=pgsql, a
fresh database on the ctest fixture's PostgreSQL server (PL_PG_DIR,
PL_PG_PORT). Tests that check what the daemons wrote go through sql(),
never through one driver's own module."""

import os
import secrets
import sqlite3
import subprocess

NULL = "\x01null\x01"  # how psql prints NULL here (never a stored value)
SEP = "\x1f"


def pgsql_wanted():
    return os.environ.get("PARLEY_STORE") == "pgsql"


def pg_base():
    try:
        return (f"host={os.environ['PL_PG_DIR']} port={os.environ['PL_PG_PORT']} "
                "user=parley")
    except KeyError:
        raise AssertionError("PARLEY_STORE=pgsql needs PL_PG_DIR and PL_PG_PORT "
                             "(the ctest fixture pg.start)") from None


def pg_create():
    """A fresh database on the fixture's server; returns its conninfo."""
    name = "t" + secrets.token_hex(6)
    subprocess.run(["psql", f"{pg_base()} dbname=parley", "-qc", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    return f"{pg_base()} dbname={name}"


def pg_drop(conninfo):
    name = conninfo.rsplit("dbname=", 1)[1]
    subprocess.run(["psql", f"{pg_base()} dbname=parley", "-qc",
                    f"DROP DATABASE {name} WITH (FORCE)"], capture_output=True)


def literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


class Store:
    """Runs SQL on the deployment's database. Rows are dicts of column name
    to value; values are str (or None), whatever the column type, so a
    check reads the same on both drivers."""

    def __init__(self, sqlite_path=None, conninfo=None):
        self.sqlite_path = sqlite_path
        self.conninfo = conninfo

    @property
    def driver(self):
        return "pgsql" if self.conninfo else "sqlite"

    def sql(self, query, params=()):
        """query uses ? for params. Returns the rows of a SELECT, [] else."""
        if self.conninfo is None:
            db = sqlite3.connect(self.sqlite_path)
            db.row_factory = sqlite3.Row
            try:
                cur = db.execute(query, params)
                rows = [{k: (None if r[k] is None else str(r[k])) for k in r.keys()}
                        for r in cur.fetchall()]
                db.commit()
                return rows
            finally:
                db.close()
        parts = query.split("?")
        if len(parts) != len(params) + 1:
            raise ValueError("one ? a parameter")
        text = parts[0] + "".join(literal(p) + rest for p, rest in zip(params, parts[1:]))
        out = subprocess.run(["psql", self.conninfo, "-X", "-q", "-A", "-F", SEP,
                              "-P", "footer=off", "-P", f"null={NULL}",
                              "-v", "ON_ERROR_STOP=1", "-c", text],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise AssertionError(f"psql: {text}: {out.stderr}")
        lines = out.stdout.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines:
            return []
        cols = lines[0].split(SEP)
        return [{c: (None if v == NULL else v) for c, v in zip(cols, ln.split(SEP))}
                for ln in lines[1:]]

    def count(self, table, owner):
        return int(self.sql(f"SELECT COUNT(*) AS n FROM {table} WHERE owner = ?",
                            (owner,))[0]["n"])
