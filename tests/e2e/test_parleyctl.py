# SPDX-License-Identifier: MIT
"""parleyctl end to end, against SQLite and (with the ctest PostgreSQL
fixture) PostgreSQL: schema init and status, user add / duplicate refused /
passwd / SCRAM keys verified independently / del, and bad input."""

import base64
import hashlib
import hmac
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

from harness import binary

PG_DIR = os.environ.get("PL_PG_DIR")
PG_PORT = os.environ.get("PL_PG_PORT")


def scram_keys(hash_name, password, salt_b64, iterations):
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), base64.b64decode(salt_b64),
                                 iterations)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored = hashlib.new(hash_name, client_key).digest()
    server = hmac.new(salted, b"Server Key", hash_name).digest()
    return base64.b64encode(stored).decode(), base64.b64encode(server).decode()


class Ctl:
    def __init__(self, storage):
        self.dir = tempfile.mkdtemp(prefix="parley-ctl-")
        self.config = os.path.join(self.dir, "parley.xml")
        with open(self.config, "w") as f:
            f.write("<parley>\n  <domain>example.test</domain>\n"
                    f"  <data-dir>{self.dir}</data-dir>\n{storage}\n</parley>\n")

    def run(self, *args, stdin=None):
        return subprocess.run([binary("parleyctl"), "--config", self.config, *args],
                              input=stdin, capture_output=True, text=True, timeout=60)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class ParleyctlCases:
    """Mixed into one TestCase per driver."""

    def setUp(self):
        self.ctl = Ctl(self.storage())
        self.user = f"u{secrets.token_hex(4)}@example.test"

    def tearDown(self):
        self.ctl.cleanup()

    def ok(self, *args, stdin=None):
        p = self.ctl.run(*args, stdin=stdin)
        self.assertEqual(p.returncode, 0, f"{args}: {p.stderr}")
        return p

    def test_user_lifecycle(self):
        p = self.ok("db", "init")
        self.assertIn("schema version 1", p.stdout)
        self.assertIn("up to date", self.ok("db", "status").stdout)
        self.ok("user", "add", self.user, "s3cret")
        dup = self.ctl.run("user", "add", self.user, "other")
        self.assertEqual(dup.returncode, 1)
        self.assertIn("already exists", dup.stderr)
        self.assertEqual(self.ok("user", "exists", self.user).stdout.strip(), "yes")
        self.ok("user", "check", self.user, "s3cret")
        self.assertEqual(self.ctl.run("user", "check", self.user, "S3cret").returncode, 1)
        # a new password from stdin, with SQL metacharacters and non-ASCII
        new = "n3w p\u00e4ss'); DROP TABLE authreg;--"
        self.ok("user", "passwd", self.user, stdin=new + "\n")
        self.assertEqual(self.ctl.run("user", "check", self.user, "s3cret").returncode, 1)
        self.ok("user", "check", self.user, new)
        self.verify_scram(self.user, new)
        self.assertIn(self.user, self.ok("user", "list").stdout.split())
        self.assertIn(self.user, self.ok("user", "list", "example.test").stdout.split())
        self.ok("user", "del", self.user)
        gone = self.ctl.run("user", "exists", self.user)
        self.assertEqual((gone.returncode, gone.stdout.strip()), (1, "no"))
        again = self.ctl.run("user", "del", self.user)
        self.assertEqual(again.returncode, 1)
        self.assertIn("no user", again.stderr)

    def verify_scram(self, user, password):
        row = self.authreg_row(user)
        for name, prefix in (("sha1", "scram1"), ("sha256", "scram256")):
            salt, it, stored, server = (row[f"{prefix}_salt"], row[f"{prefix}_iter"],
                                        row[f"{prefix}_stored"], row[f"{prefix}_server"])
            self.assertGreaterEqual(int(it), 4096)
            self.assertEqual((stored, server), scram_keys(name, password, salt, int(it)),
                             f"{name} keys do not derive from the password")
            self.assertNotIn(password, str(row))

    def test_bad_input(self):
        self.ok("db", "init")
        for jid, code, msg in (("not a jid@", 65, "not a valid JID"),
                               ("a@b@example.test", 65, "not a valid JID"),
                               ("example.test", 65, "not a user JID"),
                               ("u@other.test", 65, "not a domain of this server"),
                               ("u@example.test/res", 65, "not a user JID")):
            p = self.ctl.run("user", "add", jid, "pw")
            self.assertEqual(p.returncode, code, (jid, p.stderr))
            self.assertIn(msg, p.stderr)
        p = self.ctl.run("user", "add", self.user, stdin="\n")
        self.assertEqual(p.returncode, 65)
        self.assertIn("empty password", p.stderr)
        p = self.ctl.run("user", "frobnicate", self.user)
        self.assertEqual(p.returncode, 64)
        p = self.ctl.run("--iterations", "100", "user", "add", self.user, "pw")
        self.assertEqual(p.returncode, 65)
        self.assertIn("4096", p.stderr)
        # a JID is normalised before it is stored
        self.ok("user", "add", "Mixed.Case@EXAMPLE.test", "pw")
        self.ok("user", "exists", "mixed.case@example.test")


class SqliteCtl(ParleyctlCases, unittest.TestCase):
    def storage(self):
        return "  <storage><driver>sqlite</driver></storage>"

    def authreg_row(self, user):
        db = sqlite3.connect(os.path.join(self.ctl.dir, "parley.db"))
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM authreg WHERE owner = ?", (user,)).fetchone()
        db.close()
        return dict(row)

    def test_empty_database_is_refused_until_init(self):
        p = self.ctl.run("user", "add", self.user, "pw")
        self.assertEqual(p.returncode, 69)
        self.assertIn("parleyctl db init", p.stderr)

    def test_unreachable_database(self):
        ctl = Ctl("  <storage><sqlite><path>/nonexistent/dir/parley.db</path></sqlite></storage>")
        p = ctl.run("db", "status")
        ctl.cleanup()
        self.assertEqual(p.returncode, 69)
        self.assertIn("/nonexistent/dir/parley.db", p.stderr)

    def test_newer_schema_is_refused(self):
        self.ok("db", "init")
        db = sqlite3.connect(os.path.join(self.ctl.dir, "parley.db"))
        db.execute("UPDATE schema_version SET version = 42")
        db.commit()
        db.close()
        p = self.ctl.run("user", "list")
        self.assertEqual(p.returncode, 69)
        self.assertIn("newer", p.stderr)

    def test_config_error(self):
        with open(self.ctl.config, "w") as f:
            f.write("<parley>\n<storage>\n<driver>oracle</driver>\n</storage>\n</parley>\n")
        p = self.ctl.run("db", "status")
        self.assertEqual(p.returncode, 78)
        self.assertRegex(p.stderr, r"parley\.xml:3: <storage><driver>")


class PgsqlCtl(ParleyctlCases, unittest.TestCase):
    """Run by ctest with its PostgreSQL fixture (PL_PG_DIR, PL_PG_PORT)."""

    def setUp(self):
        if not (PG_DIR and PG_PORT):
            self.fail("PL_PG_DIR and PL_PG_PORT must name the test PostgreSQL server")
        super().setUp()

    def conninfo(self):
        return f"host={PG_DIR} port={PG_PORT} user=parley dbname=parley"

    def storage(self):
        return (f"  <storage><driver>pgsql</driver>"
                f"<pgsql><conninfo>{self.conninfo()}</conninfo></pgsql></storage>")

    def authreg_row(self, user):
        cols = ["scram1_salt", "scram1_iter", "scram1_stored", "scram1_server",
                "scram256_salt", "scram256_iter", "scram256_stored", "scram256_server"]
        out = subprocess.run(["psql", self.conninfo(), "-At", "-F", "\t", "-c",
                              f"SELECT {', '.join(cols)} FROM authreg WHERE owner = '{user}'"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return dict(zip(cols, out.split("\t")))

    def test_unreachable_database(self):
        ctl = Ctl("  <storage><driver>pgsql</driver><pgsql>"
                  f"<conninfo>host={PG_DIR} port=1 user=parley dbname=parley "
                  "connect_timeout=2</conninfo></pgsql></storage>")
        p = ctl.run("db", "status")
        ctl.cleanup()
        self.assertEqual(p.returncode, 69)
        self.assertIn("cannot connect to PostgreSQL", p.stderr)


if __name__ == "__main__":
    unittest.main()
