# SPDX-License-Identifier: MIT
"""Protocol-level access to parley-sm: the test plays the c2s side of the
session link (docs/protocol.md §8) through the real router. Shared by the
sm feature tests."""

import os
import secrets
import subprocess
import time
import unittest
import xml.etree.ElementTree as ET

from harness import NS_ROUTER, Deployment, binary, component, q, secret
from store_access import Store

NS_SESSION = "urn:parley:session:1"
NS_CLIENT = "jabber:client"
NS_ROSTER = "jabber:iq:roster"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
DOMAIN = "example.test"


class Link:
    """One client session as a c2s would run it over the router."""

    def __init__(self, case, stream, name, jid):
        self.case, self.s, self.c2s, self.jid = case, stream, name, jid
        self.sid = secrets.token_hex(12)
        self.seq = 0
        self.acked = 0  # highest sm seq we handled
        self.inbox = []
        self.origins = {}  # id(stanza) -> (stanza, its envelope's o)
        self.sm_ack = 0  # highest of our seqs the sm acknowledged

    def send(self, inner, seq=None):
        if seq is None:
            self.seq += 1
            seq = self.seq
        self.s.send(f"<route xmlns='{NS_ROUTER}' from='{self.c2s}' to='{self.jid}' "
                    f"sid='{self.sid}' seq='{seq}' ack='{self.acked}'>{inner}</route>")

    def start(self):
        self.send(f"<start xmlns='{NS_SESSION}' jid='{self.jid}'/>")
        st = self.expect(q("started", NS_SESSION))
        self.jid = st.get("jid")
        return st

    def stanza(self, xml):
        self.send(xml)

    def origin(self, el):
        """The o of the envelope that carried el (protocol.md §8), or None."""
        entry = self.origins.get(id(el))
        return entry[1] if entry is not None and entry[0] is el else None

    def wait_acked(self, seq, timeout=5):
        """Until the sm has acknowledged our envelope seq (it handled it)."""
        deadline = time.time() + timeout
        while self.sm_ack < seq:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"{self.jid}: seq {seq} not acknowledged "
                                     f"(ack {self.sm_ack})")
            self._pull(min(left, 0.2))

    def resume(self, next_seq):
        """protocol.md §8 "Resuming": a start outside the sequence; the
        started it gets back is the new base of the sm's numbering."""
        self.acked = 0
        self.sm_ack = next_seq - 1
        self.s.send(f"<route xmlns='{NS_ROUTER}' from='{self.c2s}' to='{self.jid}' "
                    f"sid='{self.sid}' ack='0'><start xmlns='{NS_SESSION}' jid='{self.jid}' "
                    f"resume='1' next='{next_seq}'/></route>")
        return self.expect(q("started", NS_SESSION))

    def _pull(self, timeout):
        el = self.s.read(timeout)
        if el is None:
            return False
        if el.tag != q("route", NS_ROUTER):
            return True
        sid = el.get("sid")
        for link in self.case.links:
            if link.sid == sid:
                link.sm_ack = max(link.sm_ack, int(el.get("ack", "0")))
                seq = int(el.get("seq", "0"))
                if seq:
                    self.case.assertEqual(seq, link.acked + 1, "sm seq must grow by one")
                    link.acked = seq
                link.inbox.extend(list(el))
                if el.get("o") is not None:
                    for child in el:
                        link.origins[id(child)] = (child, el.get("o"))
        return True

    def expect(self, tag, timeout=10, pred=None):
        deadline = time.time() + timeout
        while True:
            for i, el in enumerate(self.inbox):
                if el.tag == tag and (pred is None or pred(el)):
                    return self.inbox.pop(i)
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"{self.jid}: no <{tag}>; inbox "
                                     f"{[ET.tostring(e)[:200] for e in self.inbox]}")
            self._pull(min(left, 0.5))

    def expect_none(self, tag, wait=0.5, pred=None):
        deadline = time.time() + wait
        while time.time() < deadline:
            self._pull(0.1)
        for el in self.inbox:
            if el.tag == tag and (pred is None or pred(el)):
                raise AssertionError(f"unexpected {ET.tostring(el)}")

    def iq(self, typ, payload, to=None, iid=None):
        iid = iid or secrets.token_hex(4)
        t = f" to='{to}'" if to else ""
        self.stanza(f"<iq xmlns='{NS_CLIENT}' type='{typ}' id='{iid}' from='{self.jid}'{t}>"
                    f"{payload}</iq>")
        return self.expect(q("iq", NS_CLIENT), pred=lambda e: e.get("id") == iid)


class SmCase(unittest.TestCase):
    """A router, an sm with users alice, bob and carol, a c2s link and a
    default-route component standing in for s2s."""

    USERS = ("alice", "bob", "carol")
    SM_SECTION = "<offline-quota>3</offline-quota><session-grace>2s</session-grace>"
    STORAGE_EXTRA = ""  # more <storage> keys for a test class

    def storage_xml(self):
        """SQLite in the test's folder, or, with PARLEY_STORE=pgsql, a fresh
        database on the ctest fixture's PostgreSQL server."""
        inner = self.STORAGE_EXTRA
        self.pg_db = None
        if os.environ.get("PARLEY_STORE") == "pgsql":
            self.pg_db = "t" + secrets.token_hex(6)
            self.pg_base = (f"host={os.environ['PL_PG_DIR']} port={os.environ['PL_PG_PORT']} "
                            "user=parley")
            subprocess.run(["psql", f"{self.pg_base} dbname=parley", "-qc",
                            f"CREATE DATABASE {self.pg_db}"], check=True, capture_output=True)
            inner += (f"<driver>pgsql</driver><pgsql><conninfo>{self.pg_base} "
                      f"dbname={self.pg_db}</conninfo></pgsql>")
        return f"  <storage>{inner}</storage>\n" if inner else ""

    def drop_pg_db(self):
        if getattr(self, "pg_db", None):
            subprocess.run(["psql", f"{self.pg_base} dbname=parley", "-qc",
                            f"DROP DATABASE {self.pg_db} WITH (FORCE)"], capture_output=True)

    def setUp(self):
        self.comps = {"c2s-t": (secret(), []), "sm": (secret(), [DOMAIN]),
                      "s2s": (secret(), ["*"])}
        self.dep = Deployment(self.comps, extra=(
            f"  <domain>{DOMAIN}</domain>\n  <data-dir>{{dir}}</data-dir>\n"
            f"  <sm><name>sm</name>{self.SM_SECTION}</sm>\n" + self.storage_xml()))
        self.dep.extra = self.dep.extra.replace("{dir}", self.dep.dir)
        self.dep.write_config()
        # what the daemons stored, on either driver (store_access.py)
        self.store = (Store(conninfo=f"{self.pg_base} dbname={self.pg_db}") if self.pg_db
                      else Store(sqlite_path=os.path.join(self.dep.dir, "parley.db")))
        ctl = [binary("parleyctl"), "--config", self.dep.config]
        subprocess.run(ctl + ["db", "init"], check=True, capture_output=True)
        for u in self.USERS:
            subprocess.run(ctl + ["user", "add", f"{u}@{DOMAIN}", "pw"], check=True,
                           capture_output=True)
        self.router = self.dep.start("parley-router")
        self.sm = self.dep.start("parley-sm")
        self.c2s = component(self.dep.router_port, "c2s-t", self.comps["c2s-t"][0])
        self.s2s = component(self.dep.router_port, "s2s", self.comps["s2s"][0])
        self.s2s.send(f"<bind xmlns='{NS_ROUTER}' name='*'/>")
        self.s2s.expect(q("bind", NS_ROUTER))
        self.links = []
        self.wait_sm_bound()

    def wait_sm_bound(self):
        """The sm binds the domain: a ping answered means it is there."""
        deadline = time.time() + 10
        while time.time() < deadline:
            self.s2s.send(f"<iq type='get' id='w' from='x@remote.test' to='{DOMAIN}'>"
                          "<ping xmlns='urn:xmpp:ping'/></iq>")
            el = self.s2s.read(0.5)
            if el is not None and el.get("type") == "result":
                return
        raise AssertionError("sm did not come up")

    def tearDown(self):
        self.c2s.close()
        self.s2s.close()
        try:
            self.dep.cleanup()
        finally:
            self.drop_pg_db()

    def login(self, user, res="r"):
        link = Link(self, self.c2s, "c2s-t", f"{user}@{DOMAIN}/{res}")
        self.links.append(link)
        link.start()
        return link

    def online(self, user, res="r", priority=0):
        link = self.login(user, res)
        link.stanza(f"<presence xmlns='{NS_CLIENT}' from='{link.jid}'>"
                    f"<priority>{priority}</priority></presence>")
        return link
