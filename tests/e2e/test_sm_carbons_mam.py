# SPDX-License-Identifier: MIT
"""Message Carbons (XEP-0280) and Message Archive Management (XEP-0313,
with XEP-0059 paging, XEP-0359 stanza ids and XEP-0441 preferences) at the
protocol level: raw XML through the session link to the real sm."""

import time
import unittest

from harness import NS_ROUTER, q
from smproto import DOMAIN, NS_CLIENT, NS_ROSTER, NS_SESSION, NS_STANZAS, Link, SmCase

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"
NS_XDATA = "jabber:x:data"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"

ALICE, BOB, CAROL = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))
MESSAGE = q("message", NS_CLIENT)
IQ = q("iq", NS_CLIENT)


def send(link, to, body=None, typ="chat", mid=None, extra=""):
    t = f" type='{typ}'" if typ else ""
    i = f" id='{mid}'" if mid else ""
    b = f"<body>{body}</body>" if body is not None else ""
    link.stanza(f"<message xmlns='{NS_CLIENT}' from='{link.jid}' to='{to}'{t}{i}>"
                f"{b}{extra}</message>")


def body_of(msg):
    b = msg.find(q("body", NS_CLIENT))
    return None if b is None else b.text


def cond_of(iq):
    err = iq.find(q("error", NS_CLIENT))
    if err is None:
        return None
    return [c.tag.split("}")[1] for c in err if c.tag.startswith(f"{{{NS_STANZAS}}}")
            and not c.tag.endswith("}text")][0]


def is_carbon(direction):
    return lambda m: m.find(q(direction, NS_CARBONS)) is not None


def carbon_inner(msg, direction):
    return msg.find(f"{q(direction, NS_CARBONS)}/{q('forwarded', NS_FORWARD)}/{MESSAGE}")


def stanza_ids(msg, by):
    return [s.get("id") for s in msg.findall(q("stanza-id", NS_SID)) if s.get("by") == by]


class Carbons(SmCase):
    def setUp(self):
        super().setUp()
        # alice/a ranks first for her bare JID; alice/b and alice/c are below
        self.a = self.online("alice", "a", priority=5)
        self.b = self.online("alice", "b", priority=1)
        self.c = self.online("alice", "c", priority=1)
        self.bob = self.online("bob", "r")
        for link in (self.a, self.b):
            self.assertEqual(self.enable(link).get("type"), "result")

    def enable(self, link, what="enable"):
        return link.iq("set", f"<{what} xmlns='{NS_CARBONS}'/>")

    def test_disco_advertises_carbons(self):
        info = self.a.iq("get", f"<query xmlns='{NS_INFO}'/>", to=DOMAIN)
        feats = [f.get("var") for f in info.iter(q("feature", NS_INFO))]
        self.assertIn(NS_CARBONS, feats)

    def test_enable_disable_and_errors(self):
        self.assertEqual(self.enable(self.a).get("type"), "result", "enable twice is no error")
        self.assertEqual(self.enable(self.c, "disable").get("type"), "result",
                         "disable when disabled is no error")
        got = self.a.iq("get", f"<enable xmlns='{NS_CARBONS}'/>")
        self.assertEqual(cond_of(got), "bad-request")
        got = self.a.iq("set", f"<private xmlns='{NS_CARBONS}'/>")
        self.assertEqual(cond_of(got), "bad-request")
        # another account cannot switch alice's carbons
        got = self.bob.iq("set", f"<enable xmlns='{NS_CARBONS}'/>", to=ALICE)
        self.assertEqual(cond_of(got), "not-allowed")
        # disabled: b gets no more copies
        self.assertEqual(self.enable(self.b, "disable").get("type"), "result")
        send(self.bob, self.a.jid, "after disable", mid="d1")
        self.a.expect(MESSAGE, pred=lambda m: m.get("id") == "d1")
        self.b.expect_none(MESSAGE)

    def test_received_copy_to_other_enabled_resources(self):
        send(self.bob, ALICE, "to the bare JID", mid="r1")
        got = self.a.expect(MESSAGE, pred=lambda m: m.get("id") == "r1")
        self.assertEqual(body_of(got), "to the bare JID")
        cc = self.b.expect(MESSAGE, pred=is_carbon("received"))
        self.assertEqual((cc.get("from"), cc.get("to"), cc.get("type")),
                         (ALICE, self.b.jid, "chat"))
        inner = carbon_inner(cc, "received")
        self.assertEqual((inner.get("from"), inner.get("to"), inner.get("id"), body_of(inner)),
                         (self.bob.jid, ALICE, "r1", "to the bare JID"))
        self.c.expect_none(MESSAGE)  # not enabled
        self.a.expect_none(MESSAGE, pred=is_carbon("received"))  # got the original
        # to a full JID: the other enabled resource gets the copy
        send(self.bob, self.b.jid, "to b", mid="r2", typ="normal")
        self.b.expect(MESSAGE, pred=lambda m: m.get("id") == "r2")
        cc = self.a.expect(MESSAGE, pred=is_carbon("received"))
        self.assertEqual(cc.get("type"), "normal")
        self.assertEqual(carbon_inner(cc, "received").get("id"), "r2")

    def test_sent_copy(self):
        send(self.a, BOB, "hi bob", mid="s1")
        self.bob.expect(MESSAGE, pred=lambda m: m.get("id") == "s1")
        cc = self.b.expect(MESSAGE, pred=is_carbon("sent"))
        self.assertEqual((cc.get("from"), cc.get("to")), (ALICE, self.b.jid))
        inner = carbon_inner(cc, "sent")
        self.assertEqual((inner.get("from"), inner.get("to"), body_of(inner)),
                         (self.a.jid, BOB, "hi bob"))
        self.a.expect_none(MESSAGE)  # never a copy to the sender
        self.c.expect_none(MESSAGE)
        # a disabled sender's messages are copied all the same (XEP-0280 §8)
        send(self.c, BOB, "from c", mid="s2")
        cc = self.a.expect(MESSAGE, pred=is_carbon("sent"))
        self.assertEqual(carbon_inner(cc, "sent").get("id"), "s2")
        self.b.expect(MESSAGE, pred=is_carbon("sent"))

    def test_private_and_no_copy(self):
        for i, hint in enumerate((f"<private xmlns='{NS_CARBONS}'/>",
                                  f"<no-copy xmlns='{NS_HINTS}'/>")):
            send(self.a, self.bob.jid, "secret", mid=f"p{i}", extra=hint)
            self.bob.expect(MESSAGE, pred=lambda m, i=i: m.get("id") == f"p{i}")
            send(self.bob, self.a.jid, "secret back", mid=f"q{i}", extra=hint)
            self.a.expect(MESSAGE, pred=lambda m, i=i: m.get("id") == f"q{i}")
        self.b.expect_none(MESSAGE)

    def test_error_groupchat_and_bodiless_normal_not_copied(self):
        room = "room@muc.remote.test"
        self.s2s.send(f"<message from='{room}/nick' to='{self.a.jid}' type='groupchat' id='g'>"
                      "<body>in the room</body></message>")
        self.a.expect(MESSAGE, pred=lambda m: m.get("id") == "g")
        self.s2s.send(f"<message from='dan@remote.test/x' to='{self.a.jid}' type='error' id='e'>"
                      "<error type='cancel'><item-not-found "
                      f"xmlns='{NS_STANZAS}'/></error></message>")
        self.a.expect(MESSAGE, pred=lambda m: m.get("id") == "e")
        send(self.bob, self.a.jid, None, typ="normal", mid="n",
             extra="<x xmlns='urn:example:nothing-im'/>")
        self.a.expect(MESSAGE, pred=lambda m: m.get("id") == "n")
        # a private message from a room occupant: the room copies those itself
        self.s2s.send(f"<message from='{room}/nick' to='{self.a.jid}' type='chat' id='pm'>"
                      f"<body>psst</body><x xmlns='{NS_MUC_USER}'/></message>")
        self.a.expect(MESSAGE, pred=lambda m: m.get("id") == "pm")
        self.b.expect_none(MESSAGE)
        # while a chat state alone is copied (XEP-0280 §6.1)
        send(self.bob, self.a.jid, None, mid="cs",
             extra="<composing xmlns='http://jabber.org/protocol/chatstates'/>")
        cc = self.b.expect(MESSAGE, pred=is_carbon("received"))
        self.assertEqual(carbon_inner(cc, "received").get("id"), "cs")

    def test_messages_to_self_not_duplicated(self):
        send(self.a, self.b.jid, "note to self", mid="me1")
        got = self.b.expect(MESSAGE, pred=lambda m: m.get("id") == "me1")
        self.assertIsNone(got.find(q("received", NS_CARBONS)))
        self.assertEqual(self.enable(self.c).get("type"), "result")
        send(self.a, self.b.jid, "again", mid="me2")
        self.b.expect(MESSAGE, pred=lambda m: m.get("id") == "me2")
        cc = self.c.expect(MESSAGE, pred=is_carbon("received"))
        self.assertEqual(carbon_inner(cc, "received").get("id"), "me2")
        self.b.expect_none(MESSAGE)  # the original only, no copy on top
        self.c.expect_none(MESSAGE)  # one copy, not a sent and a received one
        self.a.expect_none(MESSAGE)  # nothing back to the sender

    def test_unavailable_resource_gets_no_copy(self):
        self.b.stanza(f"<presence xmlns='{NS_CLIENT}' from='{self.b.jid}' type='unavailable'/>")
        time.sleep(0.2)
        send(self.bob, self.a.jid, "hello", mid="u1")
        self.a.expect(MESSAGE, pred=lambda m: m.get("id") == "u1")
        self.b.expect_none(MESSAGE)


class MamCase(SmCase):
    def query(self, link, form=(), rsm="", queryid="q1", to=None, extra="", expect="result"):
        """Runs a query; returns (results in arrival order, the final iq)."""
        fields = ""
        for var, values in form:
            values = values if isinstance(values, list) else [values]
            fields += (f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values)
                       + "</field>")
        x = (f"<x xmlns='{NS_XDATA}' type='submit'><field var='FORM_TYPE' type='hidden'>"
             f"<value>{NS_MAM}</value></field>{fields}</x>") if form else ""
        s = f"<set xmlns='{NS_RSM}'>{rsm}</set>" if rsm else ""
        qid = f" queryid='{queryid}'" if queryid else ""
        iq = link.iq("set", f"<query xmlns='{NS_MAM}'{qid}>{x}{s}{extra}</query>", to=to)
        self.assertEqual(iq.get("type"), expect, f"iq: {iq.attrib} {cond_of(iq)}")
        results = []
        for m in list(link.inbox):
            r = m.find(q("result", NS_MAM))
            if m.tag == MESSAGE and r is not None and r.get("queryid") == queryid:
                link.inbox.remove(m)
                results.append(m)
        return results, iq

    def ids(self, results):
        return [m.find(q("result", NS_MAM)).get("id") for m in results]

    def bodies(self, results):
        return [body_of(self.forwarded(m)) for m in results]

    def forwarded(self, m):
        return m.find(f"{q('result', NS_MAM)}/{q('forwarded', NS_FORWARD)}/{MESSAGE}")

    def fin(self, iq):
        fin = iq.find(q("fin", NS_MAM))
        s = fin.find(q("set", NS_RSM))
        first, last = s.find(q("first", NS_RSM)), s.find(q("last", NS_RSM))
        return (fin.get("complete"), first.text if first is not None else None,
                last.text if last is not None else None)

    def converse(self, sender, receiver, n, prefix="m", gap=0.0):
        for i in range(n):
            send(sender, receiver.jid.split("/")[0], f"{prefix}{i}", mid=f"{prefix}{i}")
            receiver.expect(MESSAGE, pred=lambda m, i=i: m.get("id") == f"{prefix}{i}")
            if gap:
                time.sleep(gap)


class Mam(MamCase):
    def setUp(self):
        super().setUp()
        self.alice = self.online("alice")
        self.bob = self.online("bob")

    def test_disco_advertises_mam(self):
        info = self.alice.iq("get", f"<query xmlns='{NS_INFO}'/>", to=ALICE)
        feats = [f.get("var") for f in info.iter(q("feature", NS_INFO))]
        for var in (NS_MAM, NS_MAM + "#extended", NS_SID):
            self.assertIn(var, feats)

    def test_archived_on_both_sides_with_stanza_id(self):
        forged = (f"<stanza-id xmlns='{NS_SID}' by='{BOB}' id='forged'/>"
                  f"<stanza-id xmlns='{NS_SID}' by='Alice@{DOMAIN}' id='mine'/>"
                  f"<stanza-id xmlns='{NS_SID}' by='muc.remote.test' id='kept'/>")
        send(self.alice, BOB, "hello bob", mid="h1", extra=forged)
        got = self.bob.expect(MESSAGE, pred=lambda m: m.get("id") == "h1")
        ids = stanza_ids(got, BOB)
        self.assertEqual(len(ids), 1, "one stanza-id of bob's archive, the forged one gone")
        self.assertNotEqual(ids[0], "forged")
        self.assertEqual(stanza_ids(got, ALICE), [], "alice's archive id stays with alice")
        self.assertEqual(stanza_ids(got, f"Alice@{DOMAIN}"), [])
        self.assertEqual(stanza_ids(got, "muc.remote.test"), ["kept"])
        res, iq = self.query(self.bob)
        self.assertEqual(self.ids(res), ids)
        self.assertEqual(self.fin(iq), ("true", ids[0], ids[0]))
        m = res[0]
        self.assertEqual((m.get("from"), m.get("to")), (BOB, self.bob.jid))
        fwd = self.forwarded(m)
        self.assertEqual((fwd.get("from"), fwd.get("to"), body_of(fwd)),
                         (self.alice.jid, BOB, "hello bob"))
        delay = m.find(f"{q('result', NS_MAM)}/{q('forwarded', NS_FORWARD)}/{q('delay', NS_DELAY)}")
        self.assertTrue(delay.get("stamp").endswith("Z"))
        res, iq = self.query(self.alice)
        self.assertEqual(self.bodies(res), ["hello bob"])
        self.assertEqual(self.forwarded(res[0]).get("to"), BOB)

    def test_sent_carbon_carries_the_senders_stanza_id(self):
        other = self.online("alice", "other")
        other.iq("set", f"<enable xmlns='{NS_CARBONS}'/>")
        send(self.alice, BOB, "copied", mid="c1")
        self.bob.expect(MESSAGE, pred=lambda m: m.get("id") == "c1")
        cc = other.expect(MESSAGE, pred=is_carbon("sent"))
        sid = stanza_ids(carbon_inner(cc, "sent"), ALICE)
        res, _ = self.query(self.alice)
        self.assertEqual(self.ids(res), sid)

    def test_what_is_not_archived(self):
        send(self.alice, BOB, "stored", mid="ok")
        send(self.alice, BOB, "err", typ="error", mid="e")
        send(self.alice, BOB, "gc", typ="groupchat", mid="g")
        send(self.alice, BOB, "news", typ="headline", mid="h")
        send(self.alice, BOB, "no", mid="ns", extra=f"<no-store xmlns='{NS_HINTS}'/>")
        send(self.alice, BOB, "no", mid="np", extra=f"<no-permanent-store xmlns='{NS_HINTS}'/>")
        send(self.alice, BOB, None, mid="cs",
             extra="<composing xmlns='http://jabber.org/protocol/chatstates'/>")
        send(self.alice, BOB, None, typ="normal", mid="st", extra=f"<store xmlns='{NS_HINTS}'/>")
        self.bob.expect(MESSAGE, pred=lambda m: m.get("id") == "st")
        for who in (self.alice, self.bob):
            res, _ = self.query(who)
            self.assertEqual([self.forwarded(m).get("id") for m in res], ["ok", "st"])

    def test_paging_forwards(self):
        self.converse(self.alice, self.bob, 5)
        res, iq = self.query(self.bob, rsm="<max>2</max>")
        self.assertEqual(self.bodies(res), ["m0", "m1"])
        complete, first, last = self.fin(iq)
        self.assertEqual((complete, first, last), ("false", self.ids(res)[0], self.ids(res)[1]))
        res, iq = self.query(self.bob, rsm=f"<max>2</max><after>{last}</after>")
        self.assertEqual(self.bodies(res), ["m2", "m3"])
        self.assertEqual(self.fin(iq)[0], "false")
        res, iq = self.query(self.bob, rsm=f"<max>2</max><after>{self.fin(iq)[2]}</after>")
        self.assertEqual(self.bodies(res), ["m4"])
        self.assertEqual(self.fin(iq)[0], "true")
        res, iq = self.query(self.bob, rsm=f"<max>2</max><after>{self.fin(iq)[2]}</after>")
        self.assertEqual((res, self.fin(iq)), ([], ("true", None, None)))
        res, iq = self.query(self.bob, rsm="<max>0</max>")
        self.assertEqual((res, self.fin(iq)), ([], ("false", None, None)))

    def test_paging_backwards(self):
        self.converse(self.alice, self.bob, 5)
        res, iq = self.query(self.bob, rsm="<max>2</max><before/>")
        self.assertEqual(self.bodies(res), ["m3", "m4"], "the last page, in time order")
        complete, first, last = self.fin(iq)
        self.assertEqual((complete, first, last), ("false", self.ids(res)[0], self.ids(res)[1]))
        res, iq = self.query(self.bob, rsm=f"<max>2</max><before>{first}</before>")
        self.assertEqual(self.bodies(res), ["m1", "m2"])
        res, iq = self.query(self.bob, rsm=f"<max>2</max><before>{self.fin(iq)[1]}</before>")
        self.assertEqual(self.bodies(res), ["m0"])
        self.assertEqual(self.fin(iq)[0], "true")
        res, iq = self.query(self.bob, rsm="<max>10</max><before/>")
        self.assertEqual(self.bodies(res), [f"m{i}" for i in range(5)])
        self.assertEqual(self.fin(iq)[0], "true")

    def test_filter_with_start_end(self):
        carol = self.online("carol")
        self.converse(self.alice, self.bob, 3, "a", gap=0.02)
        self.converse(carol, self.bob, 2, "c", gap=0.02)
        send(self.bob, ALICE, "reply", mid="b0")
        self.alice.expect(MESSAGE, pred=lambda m: m.get("id") == "b0")
        res, iq = self.query(self.bob, form=[("with", CAROL)])
        self.assertEqual(self.bodies(res), ["c0", "c1"])
        self.assertEqual(self.fin(iq)[0], "true")
        res, _ = self.query(self.bob, form=[("with", ALICE)])
        self.assertEqual(self.bodies(res), ["a0", "a1", "a2", "reply"], "to and from alice")
        res, _ = self.query(self.bob, form=[("with", self.alice.jid)])
        self.assertEqual(self.bodies(res), ["a0", "a1", "a2"], "a full JID matches exactly")
        res, _ = self.query(self.bob, form=[("with", f"{ALICE}/elsewhere")])
        self.assertEqual(res, [])
        res, _ = self.query(self.bob, form=[("with", self.alice.jid)], rsm="<max>1</max><before/>")
        self.assertEqual(self.bodies(res), ["a2"])
        everything, _ = self.query(self.bob)
        stamps = [m.find(f".//{q('delay', NS_DELAY)}").get("stamp") for m in everything]
        res, iq = self.query(self.bob, form=[("start", stamps[2]), ("end", stamps[3])])
        self.assertEqual(self.bodies(res), ["a2", "c0"])
        res, _ = self.query(self.bob, form=[("start", stamps[4])])
        self.assertEqual(self.bodies(res), ["c1", "reply"])
        res, _ = self.query(self.bob, form=[("end", stamps[0].replace("Z", "+00:00"))])
        self.assertEqual(self.bodies(res), ["a0"])
        res, _ = self.query(self.bob, form=[("with", CAROL), ("start", stamps[4])])
        self.assertEqual(self.bodies(res), ["c1"])

    def test_unknown_ids_are_item_not_found(self):
        self.converse(self.alice, self.bob, 1)
        for rsm, form in (("<after>nope</after>", ()), ("<before>nope</before>", ()),
                          ("", [("after-id", "nope")]), ("", [("before-id", "nope")]),
                          ("", [("ids", ["nope"])])):
            _, iq = self.query(self.bob, form=form, rsm=rsm, expect="error")
            self.assertEqual(cond_of(iq), "item-not-found", (rsm, form))

    def test_bad_queries(self):
        x = f"<x xmlns='{NS_XDATA}' type='submit'>"
        t = f"<field var='FORM_TYPE'><value>{NS_MAM}</value></field>"
        for payload, cond in (
                (f"{x}<field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x>",
                 "bad-request"),
                (f"{x}<field var='with'><value>{ALICE}</value></field></x>", "bad-request"),
                (f"{x}{t}<field var='start'><value>yesterday</value></field></x>", "bad-request"),
                (f"{x}{t}<field var='end'><value>2020-13-01T00:00:00Z</value></field></x>",
                 "bad-request"),
                (f"{x}{t}<field var='with'><value>a@b@c</value></field></x>", "bad-request"),
                (f"{x}{t}<field var='with'><value>{ALICE}</value><value>{BOB}</value></field>"
                 "</x>", "bad-request"),
                (f"{x}{t}<field var='{{urn:example}}text'><value>x</value></field></x>",
                 "feature-not-implemented"),
                (f"<x xmlns='{NS_XDATA}' type='form'>{t}</x>", "bad-request"),
                (f"<set xmlns='{NS_RSM}'><max>ten</max></set>", "bad-request"),
                (f"<set xmlns='{NS_RSM}'><after/></set>", "bad-request"),
                (f"<set xmlns='{NS_RSM}'><index>3</index></set>", "feature-not-implemented")):
            iq = self.bob.iq("set", f"<query xmlns='{NS_MAM}'>{payload}</query>")
            self.assertEqual((iq.get("type"), cond_of(iq)), ("error", cond), payload)

    def test_only_the_owner_queries(self):
        iq = self.alice.iq("set", f"<query xmlns='{NS_MAM}'/>", to=BOB)
        self.assertEqual(cond_of(iq), "forbidden")
        iq = self.alice.iq("get", f"<prefs xmlns='{NS_MAM}'/>", to=BOB)
        self.assertEqual(cond_of(iq), "forbidden")

    def test_extended_ids_flip_form_metadata(self):
        empty = self.bob.iq("get", f"<metadata xmlns='{NS_MAM}'/>")
        self.assertEqual(len(empty.find(q("metadata", NS_MAM))), 0)
        self.converse(self.alice, self.bob, 6)
        res, _ = self.query(self.bob)
        ids = self.ids(res)
        res, iq = self.query(self.bob, form=[("after-id", ids[1]), ("before-id", ids[4])])
        self.assertEqual(self.bodies(res), ["m2", "m3"])
        self.assertEqual(self.fin(iq), ("true", ids[2], ids[3]))
        res, iq = self.query(self.bob, form=[("after-id", ids[1]), ("before-id", ids[5])],
                             rsm="<max>2</max>")
        self.assertEqual((self.bodies(res), self.fin(iq)[0]), (["m2", "m3"], "false"))
        res, iq = self.query(self.bob, form=[("after-id", ids[0])],
                             rsm=f"<max>2</max><after>{ids[2]}</after>")
        self.assertEqual(self.bodies(res), ["m3", "m4"], "the tighter of two lower bounds")
        res, iq = self.query(self.bob, form=[("before-id", ids[4])], rsm="<max>2</max><before/>")
        self.assertEqual(self.bodies(res), ["m2", "m3"])
        res, iq = self.query(self.bob, form=[("after-id", ids[4]), ("before-id", ids[1])])
        self.assertEqual((res, self.fin(iq)[0]), ([], "true"))
        res, iq = self.query(self.bob, form=[("ids", [ids[3], ids[0]])])
        self.assertEqual(self.bodies(res), ["m0", "m3"])
        self.assertEqual(self.fin(iq), ("true", ids[0], ids[3]))
        res, iq = self.query(self.bob, rsm="<max>3</max><before/>",
                             extra=f"<flip-page xmlns='{NS_MAM}'/>")
        self.assertEqual(self.bodies(res), ["m5", "m4", "m3"], "newest first")
        self.assertEqual(self.fin(iq), ("false", ids[3], ids[5]))
        form = self.bob.iq("get", f"<query xmlns='{NS_MAM}'/>")
        vars_ = [f.get("var") for f in form.iter(q("field", NS_XDATA))]
        self.assertEqual(vars_, ["FORM_TYPE", "with", "start", "end", "before-id", "after-id",
                                 "ids"])
        md = self.bob.iq("get", f"<metadata xmlns='{NS_MAM}'/>").find(q("metadata", NS_MAM))
        self.assertEqual(md.find(q("start", NS_MAM)).get("id"), ids[0])
        self.assertEqual(md.find(q("end", NS_MAM)).get("id"), ids[5])
        self.assertTrue(md.find(q("end", NS_MAM)).get("timestamp").endswith("Z"))

    def test_messages_sent_at_login_wait_for_prefs_in_order(self):
        """The start and the first messages in one write: the sm reads the
        preferences while the messages wait, then sends them in order."""
        # carol's account is loaded (a message to her, offline) but she has
        # no session, so her preferences are not known yet
        send(self.bob, CAROL, "while you were out", mid="x")
        time.sleep(0.3)
        link = Link(self, self.c2s, "c2s-t", f"{CAROL}/fast")
        self.links.append(link)
        inner = [f"<start xmlns='{NS_SESSION}' jid='{link.jid}'/>"]
        for i, extra in enumerate(("<body>f0</body>",
                                   "<active xmlns='http://jabber.org/protocol/chatstates'/>",
                                   "<body>f2</body>")):
            inner.append(f"<message xmlns='{NS_CLIENT}' from='{link.jid}' to='{BOB}' "
                         f"type='chat' id='f{i}'>{extra}</message>")
        envelopes = []
        for x in inner:
            link.seq += 1
            envelopes.append(f"<route xmlns='{NS_ROUTER}' from='c2s-t' to='{link.jid}' "
                             f"sid='{link.sid}' seq='{link.seq}' ack='0'>{x}</route>")
        self.c2s.send("".join(envelopes))
        link.expect(q("started", NS_SESSION))
        got = [self.bob.expect(MESSAGE, pred=lambda m: m.get("id", "").startswith("f"))
               for _ in range(3)]
        self.assertEqual([m.get("id") for m in got], ["f0", "f1", "f2"])
        self.assertEqual(len(stanza_ids(got[0], BOB)), 1)
        res, _ = self.query(link)
        self.assertEqual(self.bodies(res), ["while you were out", "f0", "f2"])

    def test_page_size_limited_by_server(self):
        self.converse(self.alice, self.bob, 3)
        res, iq = self.query(self.bob, rsm="<max>100000</max>")
        self.assertEqual((len(res), self.fin(iq)[0]), (3, "true"))


class MamPrefs(MamCase):
    def prefs(self, link, default=None, always=(), never=()):
        if default is None:
            return link.iq("get", f"<prefs xmlns='{NS_MAM}'/>")
        a = "".join(f"<jid>{j}</jid>" for j in always)
        n = "".join(f"<jid>{j}</jid>" for j in never)
        return link.iq("set", f"<prefs xmlns='{NS_MAM}' default='{default}'>"
                              f"<always>{a}</always><never>{n}</never></prefs>")

    def read(self, iq):
        p = iq.find(q("prefs", NS_MAM))
        lists = [[j.text for j in p.find(q(k, NS_MAM))] for k in ("always", "never")]
        return p.get("default"), lists[0], lists[1]

    def test_defaults_set_and_errors(self):
        bob = self.online("bob")
        self.assertEqual(self.read(self.prefs(bob)), ("always", [], []))
        got = self.prefs(bob, "never", always=[f"Carol@{DOMAIN}"], never=[f"{ALICE}/phone"])
        self.assertEqual(self.read(got), ("never", [CAROL], [f"{ALICE}/phone"]))
        self.assertEqual(self.read(self.prefs(bob)), ("never", [CAROL], [f"{ALICE}/phone"]))
        bad = bob.iq("set", f"<prefs xmlns='{NS_MAM}' default='sometimes'/>")
        self.assertEqual(cond_of(bad), "bad-request")
        bad = bob.iq("set", f"<prefs xmlns='{NS_MAM}'/>")
        self.assertEqual(cond_of(bad), "bad-request")
        bad = self.prefs(bob, "always", never=["a@b@c"])
        self.assertEqual(cond_of(bad), "jid-malformed")
        self.assertEqual(self.read(self.prefs(bob))[0], "never", "a refused set changes nothing")

    def test_never_always_and_roster(self):
        alice, bob, carol = self.online("alice"), self.online("bob"), self.online("carol")
        self.prefs(bob, "never", always=[CAROL])
        send(alice, BOB, "not kept", mid="n1")
        got = bob.expect(MESSAGE, pred=lambda m: m.get("id") == "n1")
        self.assertEqual(stanza_ids(got, BOB), [], "no stanza-id when not archived")
        send(carol, BOB, "kept", mid="k1")
        got = bob.expect(MESSAGE, pred=lambda m: m.get("id") == "k1")
        self.assertEqual(len(stanza_ids(got, BOB)), 1)
        res, _ = self.query(bob)
        self.assertEqual(self.bodies(res), ["kept"])
        res, _ = self.query(alice)
        self.assertEqual(self.bodies(res), ["not kept"], "alice's own archive is hers")
        # roster: only contacts; a listed full JID beats it
        bob.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='{ALICE}'/></query>")
        self.prefs(bob, "roster", never=[f"{ALICE}/r"])
        send(alice, BOB, "never from r", mid="n2")
        bob.expect(MESSAGE, pred=lambda m: m.get("id") == "n2")
        alice2 = self.online("alice", "r2")
        send(alice2, BOB, "contact", mid="k2")
        bob.expect(MESSAGE, pred=lambda m: m.get("id") == "k2")
        send(carol, BOB, "stranger", mid="n3")
        bob.expect(MESSAGE, pred=lambda m: m.get("id") == "n3")
        send(bob, CAROL, "to a stranger", mid="n4")
        carol.expect(MESSAGE, pred=lambda m: m.get("id") == "n4")
        res, _ = self.query(bob)
        self.assertEqual(self.bodies(res), ["kept", "contact"])

    def test_prefs_apply_while_offline_and_after_restart(self):
        bob = self.online("bob")
        self.prefs(bob, "never")
        bob.send("<end xmlns='urn:parley:session:1'/>")
        time.sleep(0.3)
        alice = self.online("alice")
        send(alice, BOB, "offline, not archived", mid="o1")
        time.sleep(0.3)
        self.sm.stop()
        self.sm = self.dep.start("parley-sm")
        self.wait_sm_bound()
        bob = self.online("bob", "again")
        got = bob.expect(MESSAGE, pred=lambda m: m.get("id") == "o1")
        self.assertEqual(stanza_ids(got, BOB), [])
        self.assertEqual(self.read(self.prefs(bob))[0], "never")
        res, _ = self.query(bob)
        self.assertEqual(res, [])


class MamRetention(MamCase):
    """<sm><archive-days>: what is older is removed when its owner starts a
    session; younger messages stay."""
    SM_SECTION = MamCase.SM_SECTION + "<archive-days>7</archive-days>"
    DAY_US = 86400 * 1000000

    def test_old_messages_expire_at_login(self):
        alice, bob = self.online("alice"), self.online("bob")
        self.converse(alice, bob, 3)
        res, _ = self.query(bob)
        self.assertEqual(self.bodies(res), ["m0", "m1", "m2"])
        ids = self.ids(res)
        # m0 was archived ten days ago, m1 six days ago (as the store sees it)
        for mid, days in ((ids[0], 10), (ids[1], 6)):
            self.store.sql("UPDATE archive SET ts = ts - ? WHERE owner = ? AND id = ?",
                           (days * self.DAY_US, BOB, mid))
        bob.send(f"<end xmlns='{NS_SESSION}'/>")
        bob2 = self.online("bob", "again")
        res, _ = self.query(bob2)
        self.assertEqual(self.bodies(res), ["m1", "m2"])
        left = self.store.sql("SELECT id FROM archive WHERE owner = ? ORDER BY ts", (BOB,))
        self.assertEqual([r["id"] for r in left], ids[1:])
        # alice's own archive was not touched
        res, _ = self.query(alice)
        self.assertEqual(len(res), 3)


if __name__ == "__main__":
    unittest.main()
