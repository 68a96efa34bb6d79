# SPDX-License-Identifier: MIT
"""parley-sm at the protocol level: the test speaks the c2s side of the
session link (docs/protocol.md §8) to the real sm through the real router,
and checks sessions, roster, subscriptions, presence, delivery, offline
storage, iq rules and the link's sequence numbers and acks."""

import time
import time
import unittest

from harness import NS_ROUTER, q
from smproto import DOMAIN, NS_CLIENT, NS_ROSTER, NS_SESSION, NS_STANZAS, Link, SmCase


class SmCore(SmCase):
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

    def kill_and_restart_sm(self):
        self.sm.kill()  # SIGKILL: nothing it owed goes out
        self.sm = self.dep.start("parley-sm")
        self.wait_sm_bound()

    def replay_after_sm_restart(self, receiver_first):
        """protocol.md §8: the sm acknowledges up to 20 ms late, so when it
        dies the c2s still holds, and replays to its successor, stanzas the
        dead sm had already delivered. The successor has no memory of them;
        the receiver's c2s drops the copy by its origin, so the copy must
        come with the origin the first delivery had, whether the receiver's
        session is back first (delivered at once) or not (through the
        offline queue)."""
        a = self.online("alice")
        b = self.online("bob")
        msg = (f"<message xmlns='{NS_CLIENT}' from='{a.jid}' to='bob@{DOMAIN}' "
               "type='chat' id='r1'><body>once</body></message>")
        a.stanza(msg)
        seq = a.seq
        first = b.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "r1")
        self.assertEqual(b.origin(first), f"{a.sid}:{seq}")
        self.kill_and_restart_sm()
        presence = f"<presence xmlns='{NS_CLIENT}' from='{b.jid}'/>"
        if receiver_first:
            self.assertEqual(b.resume(b.seq + 1).get("fresh"), "1")
            b.stanza(presence)
            b.wait_acked(b.seq)
        self.assertEqual(a.resume(seq).get("fresh"), "1")
        a.send(msg, seq=seq)  # the replay: the dead sm's ack never came
        a.wait_acked(seq)
        if not receiver_first:
            self.assertEqual(b.resume(b.seq + 1).get("fresh"), "1")
            b.stanza(presence)
        again = b.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "r1")
        self.assertEqual(b.origin(again), f"{a.sid}:{seq}",
                         "the replayed copy must carry the first delivery's origin")
        offline = again.find(q("delay", "urn:xmpp:delay")) is not None
        self.assertEqual(offline, not receiver_first)
        b.expect_none(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "r1")

    def test_replay_after_sm_restart_delivered_at_once_keeps_origin(self):
        self.replay_after_sm_restart(receiver_first=True)

    def test_replay_after_sm_restart_through_offline_keeps_origin(self):
        self.replay_after_sm_restart(receiver_first=False)

    def test_acks_are_coalesced_within_the_delay(self):
        """protocol.md §8: acks ride on the next envelope or go alone within
        20 ms, so a burst of stanzas gets a few acks, not one each."""
        a = self.online("alice")
        b = self.online("bob")
        a.expect_none("-", wait=0.3)  # let the presence's ack go first
        n = 10
        burst = "".join(
            f"<route xmlns='{NS_ROUTER}' from='{a.c2s}' to='{a.jid}' sid='{a.sid}' "
            f"seq='{a.seq + i + 1}' ack='{a.acked}'><message xmlns='{NS_CLIENT}' "
            f"from='{a.jid}' to='{b.jid}' id='burst{i}'><body>{i}</body></message></route>"
            for i in range(n))
        a.seq += n
        a.s.send(burst)  # one write: the sm reads the burst at once
        pure, last_ack = 0, 0
        deadline = time.time() + 3
        while time.time() < deadline and last_ack < a.seq:
            el = a.s.read(0.2)
            if el is None or el.tag != q("route", NS_ROUTER) or el.get("sid") != a.sid:
                continue
            last_ack = max(last_ack, int(el.get("ack", "0")))
            if el.get("seq") is None and len(el) == 0:
                pure += 1
        self.assertEqual(last_ack, a.seq, "every stanza of the burst acknowledged")
        self.assertLessEqual(pure, 3, f"{pure} lone acks for a burst of {n}")


if __name__ == "__main__":
    unittest.main()
