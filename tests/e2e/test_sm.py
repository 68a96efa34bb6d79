# SPDX-License-Identifier: MIT
"""parley-sm at the protocol level: the test speaks the c2s side of the
session link (docs/protocol.md §8) to the real sm through the real router,
and checks sessions, roster, subscriptions, presence, delivery, offline
storage, iq rules and the link's sequence numbers and acks."""

import os
import secrets
import subprocess
import time
import unittest
import xml.etree.ElementTree as ET

from harness import (NS_ROUTER, Deployment, binary, component, q, secret)

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

    def _pull(self, timeout):
        el = self.s.read(timeout)
        if el is None:
            return False
        if el.tag != q("route", NS_ROUTER):
            return True
        sid = el.get("sid")
        for link in self.case.links:
            if link.sid == sid:
                seq = int(el.get("seq", "0"))
                if seq:
                    self.case.assertEqual(seq, link.acked + 1, "sm seq must grow by one")
                    link.acked = seq
                link.inbox.extend(list(el))
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
    USERS = ("alice", "bob", "carol")

    def setUp(self):
        self.comps = {"c2s-t": (secret(), []), "sm": (secret(), [DOMAIN]),
                      "s2s": (secret(), ["*"])}
        self.dep = Deployment(self.comps, extra=(
            f"  <domain>{DOMAIN}</domain>\n  <data-dir>{{dir}}</data-dir>\n"
            "  <sm><name>sm</name><offline-quota>3</offline-quota>"
            "<session-grace>2s</session-grace></sm>\n"))
        self.dep.extra = self.dep.extra.replace("{dir}", self.dep.dir)
        self.dep.write_config()
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
        self.dep.cleanup()

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

    # ---- sessions ----------------------------------------------------------

    def test_start_and_conflict_replaces_old_session(self):
        a1 = self.login("alice", "phone")
        self.assertEqual(a1.jid, f"alice@{DOMAIN}/phone")
        a2 = Link(self, self.c2s, "c2s-t", f"alice@{DOMAIN}/phone")
        self.links.append(a2)
        a2.start()
        end = a1.expect(q("end", NS_SESSION))
        self.assertEqual(end.get("reason"), "conflict")

    def test_unknown_user_is_refused(self):
        link = Link(self, self.c2s, "c2s-t", f"nobody@{DOMAIN}/r")
        self.links.append(link)
        link.send(f"<start xmlns='{NS_SESSION}' jid='{link.jid}'/>")
        f = link.expect(q("failed", NS_SESSION))
        self.assertEqual(f.get("cond"), "not-authorized")

    # ---- roster ---------------------------------------------------------------

    def test_roster_set_push_and_versioning(self):
        a = self.login("alice")
        r = a.iq("get", f"<query xmlns='{NS_ROSTER}'/>")
        ver0 = r.find(q("query", NS_ROSTER)).get("ver")
        self.assertEqual(len(r.find(q("query", NS_ROSTER))), 0)
        a.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='Bob@{DOMAIN}' name='Bob'>"
                    "<group>Friends</group><group>Work</group></item></query>")
        push = a.expect(q("iq", NS_CLIENT), pred=lambda e: e.get("type") == "set")
        item = push.find(f"{q('query', NS_ROSTER)}/{q('item', NS_ROSTER)}")
        self.assertEqual((item.get("jid"), item.get("name"), item.get("subscription")),
                         (f"bob@{DOMAIN}", "Bob", "none"))
        self.assertEqual(sorted(g.text for g in item), ["Friends", "Work"])
        ver1 = push.find(q("query", NS_ROSTER)).get("ver")
        self.assertNotEqual(ver0, ver1)
        same = a.iq("get", f"<query xmlns='{NS_ROSTER}' ver='{ver1}'/>")
        self.assertIsNone(same.find(q("query", NS_ROSTER)), "unchanged roster: empty result")
        full = a.iq("get", f"<query xmlns='{NS_ROSTER}' ver='{ver0}'/>")
        self.assertEqual(len(full.find(q("query", NS_ROSTER))), 1)
        bad = a.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='x@{DOMAIN}'>"
                          "<group>A</group><group>A</group></item></query>")
        self.assertEqual(bad.get("type"), "error")
        rm = a.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='bob@{DOMAIN}' "
                         "subscription='remove'/></query>")
        self.assertEqual(rm.get("type"), "result")

    def test_roster_survives_sm_restart(self):
        a = self.login("alice")
        a.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='carol@{DOMAIN}'/></query>")
        self.sm.stop()
        self.sm = self.dep.start("parley-sm")
        self.wait_sm_bound()
        a2 = self.login("alice", "again")
        r = a2.iq("get", f"<query xmlns='{NS_ROSTER}'/>")
        self.assertEqual([i.get("jid") for i in r.find(q("query", NS_ROSTER))],
                         [f"carol@{DOMAIN}"])

    # ---- subscriptions and presence -------------------------------------------

    def subscribe_both(self, a, b):
        a.stanza(f"<presence xmlns='{NS_CLIENT}' from='{a.jid}' to='bob@{DOMAIN}' "
                 "type='subscribe'/>")
        req = b.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribe")
        self.assertEqual(req.get("from"), f"alice@{DOMAIN}")
        b.stanza(f"<presence xmlns='{NS_CLIENT}' from='{b.jid}' to='alice@{DOMAIN}' "
                 "type='subscribed'/>")
        ok = a.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribed")
        self.assertEqual(ok.get("from"), f"bob@{DOMAIN}")

    def test_subscription_and_presence_broadcast(self):
        a = self.online("alice")
        b = self.online("bob")
        a.iq("get", f"<query xmlns='{NS_ROSTER}'/>")
        self.subscribe_both(a, b)
        pushes = []
        while len(pushes) < 2:
            p = a.expect(q("iq", NS_CLIENT), pred=lambda e: e.get("type") == "set")
            pushes.append(p.find(f"{q('query', NS_ROSTER)}/{q('item', NS_ROSTER)}"))
        self.assertEqual(pushes[0].get("ask"), "subscribe")
        self.assertEqual(pushes[1].get("subscription"), "to")
        # bob's presence reaches alice once approved (subscribed => current presence)
        pres = a.expect(q("presence", NS_CLIENT),
                        pred=lambda e: e.get("type") is None and e.get("from") == b.jid)
        # a change of bob's presence is broadcast to alice
        b.stanza(f"<presence xmlns='{NS_CLIENT}' from='{b.jid}'><show>away</show></presence>")
        pres = a.expect(q("presence", NS_CLIENT),
                        pred=lambda e: e.find(q("show", NS_CLIENT)) is not None)
        self.assertEqual(pres.get("from"), b.jid)
        # bob goes away: alice sees unavailable
        b.send(f"<end xmlns='{NS_SESSION}'/>")
        gone = a.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "unavailable")
        self.assertEqual(gone.get("from"), b.jid)
        # and alice's new login probes bob's (now offline) presence without errors;
        # carol, not subscribed, never sees alice's presence
        c = self.online("carol")
        a.stanza(f"<presence xmlns='{NS_CLIENT}' from='{a.jid}'><show>dnd</show></presence>")
        c.expect_none(q("presence", NS_CLIENT), pred=lambda e: e.get("from") == a.jid)

    def test_subscription_request_kept_while_offline(self):
        a = self.online("alice")
        a.stanza(f"<presence xmlns='{NS_CLIENT}' from='{a.jid}' to='carol@{DOMAIN}' "
                 "type='subscribe'/>")
        time.sleep(0.3)
        c = self.online("carol")
        req = c.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribe")
        self.assertEqual(req.get("from"), f"alice@{DOMAIN}")

    def test_pre_approval(self):
        b = self.online("bob")
        b.stanza(f"<presence xmlns='{NS_CLIENT}' from='{b.jid}' to='alice@{DOMAIN}' "
                 "type='subscribed'/>")
        time.sleep(0.3)
        a = self.online("alice")
        a.stanza(f"<presence xmlns='{NS_CLIENT}' from='{a.jid}' to='bob@{DOMAIN}' "
                 "type='subscribe'/>")
        a.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribed")
        b.expect_none(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribe")

    # ---- messages ------------------------------------------------------------

    def test_message_delivery_and_offline_with_delay(self):
        a = self.online("alice")
        b = self.online("bob", priority=5)
        a.stanza(f"<message xmlns='{NS_CLIENT}' from='{a.jid}' to='bob@{DOMAIN}' "
                 "type='chat' id='m1'><body>hello</body></message>")
        m = b.expect(q("message", NS_CLIENT))
        self.assertEqual((m.get("id"), m.find(q("body", NS_CLIENT)).text), ("m1", "hello"))
        # to carol, offline: stored, then delivered at her initial presence, in order
        for i in range(3):
            a.stanza(f"<message xmlns='{NS_CLIENT}' from='{a.jid}' to='carol@{DOMAIN}' "
                     f"type='chat' id='o{i}'><body>n{i}</body></message>")
        a.stanza(f"<message xmlns='{NS_CLIENT}' from='{a.jid}' to='carol@{DOMAIN}' "
                 "type='headline' id='h'><body>not stored</body></message>")
        time.sleep(0.5)
        # over the quota of 3: an error comes back
        a.stanza(f"<message xmlns='{NS_CLIENT}' from='{a.jid}' to='carol@{DOMAIN}' "
                 "type='chat' id='o3'><body>full</body></message>")
        err = a.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "o3")
        self.assertEqual(err.get("type"), "error")
        self.assertIsNotNone(err.find(f"{q('error', NS_CLIENT)}/"
                                      f"{q('service-unavailable', NS_STANZAS)}"))
        c = self.online("carol")
        got = [c.expect(q("message", NS_CLIENT)) for _ in range(3)]
        self.assertEqual([m.get("id") for m in got], ["o0", "o1", "o2"])
        for m in got:
            delay = m.find(q("delay", "urn:xmpp:delay"))
            self.assertIsNotNone(delay)
            self.assertEqual(delay.get("from"), DOMAIN)
        c.expect_none(q("message", NS_CLIENT))

    def test_message_to_unknown_user_and_remote_domain(self):
        a = self.online("alice")
        a.stanza(f"<message xmlns='{NS_CLIENT}' from='{a.jid}' to='ghost@{DOMAIN}' "
                 "id='g'><body>?</body></message>")
        err = a.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "g")
        self.assertEqual(err.get("type"), "error")
        a.stanza(f"<message xmlns='{NS_CLIENT}' from='{a.jid}' to='dan@remote.test' "
                 "id='r'><body>far</body></message>")
        out = self.s2s.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "r")
        self.assertEqual(out.get("from"), a.jid)

    # ---- iq rules --------------------------------------------------------------

    def test_iq_rules(self):
        a = self.login("alice")
        self.assertEqual(a.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN).get("type"),
                         "result")
        v = a.iq("get", "<query xmlns='jabber:iq:version'/>", to=DOMAIN)
        self.assertEqual(v.find(f"{q('query', 'jabber:iq:version')}/"
                                f"{q('name', 'jabber:iq:version')}").text, "Parley")
        t = a.iq("get", "<time xmlns='urn:xmpp:time'/>", to=DOMAIN)
        self.assertTrue(t.find(f"{q('time', 'urn:xmpp:time')}/{q('utc', 'urn:xmpp:time')}")
                        .text.endswith("Z"))
        info = a.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=DOMAIN)
        feats = [f.get("var") for f in info.iter(q("feature",
                                                   "http://jabber.org/protocol/disco#info"))]
        self.assertIn("urn:xmpp:ping", feats)
        unknown = a.iq("get", "<query xmlns='urn:example:nothing'/>", to=DOMAIN)
        self.assertEqual(unknown.get("type"), "error")
        self.assertIsNotNone(unknown.find(f"{q('error', NS_CLIENT)}/"
                                          f"{q('service-unavailable', NS_STANZAS)}"))
        # a result sent to the server is never answered
        a.stanza(f"<iq xmlns='{NS_CLIENT}' type='result' id='x' from='{a.jid}' to='{DOMAIN}'/>")
        a.expect_none(q("iq", NS_CLIENT), pred=lambda e: e.get("id") == "x")
        # an iq to an unavailable full JID
        e = a.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=f"bob@{DOMAIN}/none")
        self.assertEqual(e.get("type"), "error")

    # ---- the link ------------------------------------------------------------------

    def test_replayed_envelope_is_dropped(self):
        a = self.online("alice")
        b = self.online("bob")
        msg = (f"<message xmlns='{NS_CLIENT}' from='{a.jid}' to='{b.jid}' id='once'>"
               "<body>1</body></message>")
        a.stanza(msg)
        b.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "once")
        a.send(msg, seq=a.seq)  # the same seq again, as after a replay
        b.expect_none(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "once")


if __name__ == "__main__":
    unittest.main()
