# SPDX-License-Identifier: MIT
"""Privacy lists (XEP-0016) and the blocking command (XEP-0191) in
parley-sm, at the protocol level: the test plays the c2s side of the
session link (smproto.py) and the s2s side for remote peers, and checks
list management, every item type and stanza kind, default and active
lists with their conflict rules, pushes, the errors blocked peers and
blocking users get, presence suppression, and that both protocols see
the same lists."""

import time
import unittest
import xml.etree.ElementTree as ET

from harness import q, wait_log
from smproto import DOMAIN, NS_CLIENT, NS_ROSTER, NS_SESSION, NS_STANZAS, SmCase

NS_PRIV = "jabber:iq:privacy"
NS_BLOCK = "urn:xmpp:blocking"
NS_BLOCK_ERR = "urn:xmpp:blocking:errors"
NS_INFO = "http://jabber.org/protocol/disco#info"
ALICE, BOB, CAROL = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))


def is_error(el):
    return el.get("type") == "error"


class PrivacyCase(SmCase):
    # ---- helpers --------------------------------------------------------------------

    def priv(self, link, typ, inner=""):
        return link.iq(typ, f"<query xmlns='{NS_PRIV}'>{inner}</query>")

    def ok(self, el):
        self.assertEqual(el.get("type"), "result", ET.tostring(el))
        return el

    def fails(self, el, cond):
        self.assertEqual(el.get("type"), "error", ET.tostring(el))
        err = el.find(q("error", NS_CLIENT))
        self.assertIsNotNone(err.find(q(cond, NS_STANZAS)), ET.tostring(el))
        return err

    def set_list(self, link, name, items):
        return self.ok(self.priv(link, "set", f"<list name='{name}'>{items}</list>"))

    def activate(self, link, name=None):
        attr = f" name='{name}'" if name else ""
        self.ok(self.priv(link, "set", f"<active{attr}/>"))

    def make_default(self, link, name=None):
        attr = f" name='{name}'" if name else ""
        self.ok(self.priv(link, "set", f"<default{attr}/>"))

    def names(self, link):
        query = self.ok(self.priv(link, "get")).find(q("query", NS_PRIV))
        out = {"active": None, "default": None, "lists": []}
        for c in query:
            name = c.tag.split("}")[1]
            if name == "list":
                out["lists"].append(c.get("name"))
            else:
                out[name] = c.get("name")
        return out

    def get_list(self, link, name):
        r = self.ok(self.priv(link, "get", f"<list name='{name}'/>"))
        return list(r.find(f"{q('query', NS_PRIV)}/{q('list', NS_PRIV)}"))

    def privacy_push(self, link, name):
        def pred(e):
            ls = e.find(f"{q('query', NS_PRIV)}/{q('list', NS_PRIV)}")
            return e.get("type") == "set" and ls is not None and ls.get("name") == name
        return link.expect(q("iq", NS_CLIENT), pred=pred)

    def blocking_push(self, link, verb):
        el = link.expect(q("iq", NS_CLIENT), pred=lambda e: e.get("type") == "set" and
                         e.find(q(verb, NS_BLOCK)) is not None)
        return sorted(i.get("jid") for i in el.find(q(verb, NS_BLOCK)))

    def blocklist(self, link):
        r = self.ok(link.iq("get", f"<blocklist xmlns='{NS_BLOCK}'/>"))
        return sorted(i.get("jid") for i in r.find(q("blocklist", NS_BLOCK)))

    def message(self, link, to, iid, typ="chat"):
        link.stanza(f"<message xmlns='{NS_CLIENT}' from='{link.jid}' to='{to}' id='{iid}' "
                    f"type='{typ}'><body>{iid}</body></message>")

    def ping(self, link, to, iid, typ="get"):
        body = "<ping xmlns='urn:xmpp:ping'/>" if typ == "get" else ""
        link.stanza(f"<iq xmlns='{NS_CLIENT}' from='{link.jid}' to='{to}' id='{iid}' "
                    f"type='{typ}'>{body}</iq>")

    def presence(self, link, show=None, to=None, typ=None):
        t = f" to='{to}'" if to else ""
        ty = f" type='{typ}'" if typ else ""
        s = f"<show>{show}</show>" if show else ""
        link.stanza(f"<presence xmlns='{NS_CLIENT}' from='{link.jid}'{t}{ty}>{s}</presence>")

    def delivered(self, link, iid, tag="message"):
        return link.expect(q(tag, NS_CLIENT), pred=lambda e: e.get("id") == iid and
                           not is_error(e))

    def bounced(self, link, iid, cond, tag="message"):
        el = link.expect(q(tag, NS_CLIENT), pred=lambda e: e.get("id") == iid and is_error(e))
        return self.fails(el, cond)

    def not_delivered(self, link, iid, tag="message", wait=0.5):
        link.expect_none(q(tag, NS_CLIENT), wait=wait, pred=lambda e: e.get("id") == iid)

    def shows(self, link, frm, show):
        def pred(e):
            s = e.find(q("show", NS_CLIENT))
            return e.get("from") == frm and s is not None and s.text == show
        return link.expect(q("presence", NS_CLIENT), pred=pred)

    def hides(self, link, frm, show):
        def pred(e):
            s = e.find(q("show", NS_CLIENT))
            return e.get("from") == frm and s is not None and s.text == show
        link.expect_none(q("presence", NS_CLIENT), pred=pred)

    def settle(self, *links):
        """Lets what is in flight arrive, then forgets it."""
        for link in links:
            link.expect_none("nothing", wait=0.3)
            link.inbox.clear()

    def remote(self, stanza):
        self.s2s.send(stanza)

    def remote_results(self, ids, timeout=10):
        """Reads the s2s stand-in until a stanza with each id came back."""
        got, deadline = {}, time.time() + timeout
        while set(ids) - set(got):
            el = self.s2s.read(max(0.0, deadline - time.time()))
            if el is None:
                raise AssertionError(f"no reply for {sorted(set(ids) - set(got))}")
            if el.get("id") in ids:
                got[el.get("id")] = el
        return got

    def mutual(self, a, b):
        """A mutual subscription between two online local users."""
        for x, y in ((a, b), (b, a)):
            x.stanza(f"<presence xmlns='{NS_CLIENT}' from='{x.jid}' to='{y.jid.split('/')[0]}' "
                     "type='subscribe'/>")
            y.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribe")
            y.stanza(f"<presence xmlns='{NS_CLIENT}' from='{y.jid}' "
                     f"to='{x.jid.split('/')[0]}' type='subscribed'/>")
            x.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribed")
        self.settle(a, b)

    def roster(self, link):
        r = link.iq("get", f"<query xmlns='{NS_ROSTER}'/>")
        return {i.get("jid"): i.get("subscription") for i in r.find(q("query", NS_ROSTER))}

    def wait_roster(self, link, want):
        deadline = time.time() + 10
        while True:
            have = self.roster(link)
            if all(have.get(k) == v for k, v in want.items()):
                return
            if time.time() > deadline:
                raise AssertionError(f"roster {have}, expected {want}")
            time.sleep(0.1)


class PrivacyLists(PrivacyCase):
    def test_disco_advertises_privacy_and_blocking(self):
        a = self.login("alice")
        info = a.iq("get", f"<query xmlns='{NS_INFO}'/>", to=DOMAIN)
        feats = [f.get("var") for f in info.iter(q("feature", NS_INFO))]
        self.assertIn(NS_PRIV, feats)
        self.assertIn(NS_BLOCK, feats)

    def test_list_get_set_replace_remove_with_pushes(self):
        a1 = self.login("alice", "one")
        a2 = self.login("alice", "two")
        self.assertEqual(self.names(a1), {"active": None, "default": None, "lists": []})
        self.set_list(a1, "public",
                      "<item type='jid' value='Tybalt@Example.COM' action='deny' order='3'>"
                      "<message/><presence-in/></item>"
                      "<item action='allow' order='68'/>")
        for link in (a1, a2):  # §2.6: a push naming the list to every resource
            push = self.privacy_push(link, "public")
            self.assertEqual(len(push.find(f"{q('query', NS_PRIV)}/{q('list', NS_PRIV)}")), 0)
        items = self.get_list(a1, "public")
        self.assertEqual([(i.get("type"), i.get("value"), i.get("action"), i.get("order"))
                          for i in items],
                         [("jid", "tybalt@example.com", "deny", "3"), (None, None, "allow", "68")])
        self.assertEqual([c.tag for c in items[0]], [q("message", NS_PRIV),
                                                     q("presence-in", NS_PRIV)])
        self.assertEqual(self.names(a2)["lists"], ["public"])
        # a set replaces the whole list (not a delta)
        self.set_list(a1, "public", "<item type='subscription' value='none' action='deny' "
                                    "order='1'/>")
        self.privacy_push(a2, "public")
        self.assertEqual([i.get("value") for i in self.get_list(a1, "public")], ["none"])
        self.set_list(a1, "second", "<item action='deny' order='0'><iq/></item>")
        self.assertEqual(sorted(self.names(a1)["lists"]), ["public", "second"])
        # an empty <list/> removes it
        self.ok(self.priv(a1, "set", "<list name='public'/>"))
        self.privacy_push(a2, "public")
        self.fails(self.priv(a1, "get", "<list name='public'/>"), "item-not-found")
        self.fails(self.priv(a1, "set", "<list name='public'/>"), "item-not-found")
        self.assertEqual(self.names(a1)["lists"], ["second"])

    def test_malformed_requests(self):
        a = self.login("alice")
        bad = [
            ("set", ""),
            ("set", "<active name='x'/><default name='x'/>"),
            ("set", "<list><item action='deny' order='1'/></list>"),
            ("set", "<list name='l'><item order='1'/></list>"),
            ("set", "<list name='l'><item action='block' order='1'/></list>"),
            ("set", "<list name='l'><item action='deny'/></list>"),
            ("set", "<list name='l'><item action='deny' order='-1'/></list>"),
            ("set", "<list name='l'><item action='deny' order='one'/></list>"),
            ("set", "<list name='l'><item action='deny' order='4294967296'/></list>"),
            ("set", "<list name='l'><item action='deny' order='1'/>"
                    "<item action='allow' order='1'/></list>"),
            ("set", "<list name='l'><item type='colour' value='red' action='deny' "
                    "order='1'/></list>"),
            ("set", "<list name='l'><item type='jid' action='deny' order='1'/></list>"),
            ("set", "<list name='l'><item type='jid' value='a@@b' action='deny' "
                    "order='1'/></list>"),
            ("set", "<list name='l'><item type='subscription' value='maybe' action='deny' "
                    "order='1'/></list>"),
            ("set", "<list name='l'><item action='deny' order='1'><chat/></item></list>"),
            ("get", "<list name='a'/><list name='b'/>"),
            ("get", "<default/>"),
        ]
        for typ, inner in bad:
            with self.subTest(inner=inner):
                self.fails(self.priv(a, typ, inner), "bad-request")
        # §2.1: a group that is not in the roster
        self.fails(self.priv(a, "set", "<list name='l'><item type='group' value='Nobody' "
                                       "action='deny' order='1'/></list>"), "item-not-found")
        self.assertEqual(self.names(a), {"active": None, "default": None, "lists": []})

    def test_active_and_default_management(self):
        a = self.login("alice")
        self.fails(self.priv(a, "set", "<active name='nope'/>"), "item-not-found")
        self.fails(self.priv(a, "set", "<default name='nope'/>"), "item-not-found")
        self.set_list(a, "A", "<item action='allow' order='1'/>")
        self.set_list(a, "D", "<item action='deny' order='1'><iq/></item>")
        self.activate(a, "A")
        self.make_default(a, "D")
        self.assertEqual(self.names(a), {"active": "A", "default": "D", "lists": ["A", "D"]})
        self.activate(a)  # decline the active list
        self.assertEqual(self.names(a)["active"], None)
        self.make_default(a)  # decline the default list
        self.assertEqual(self.names(a), {"active": None, "default": None, "lists": ["A", "D"]})

    def test_default_versus_active(self):
        a = self.online("alice")
        b = self.online("bob")
        self.set_list(a, "no-bob", f"<item type='jid' value='{BOB}' action='deny' order='1'>"
                                   "<message/></item>")
        self.set_list(a, "open", "<item action='allow' order='1'/>")
        self.make_default(a, "no-bob")
        # the default list applies to a session without an active list
        self.message(b, a.jid, "m1")
        self.bounced(b, "m1", "service-unavailable")
        self.message(b, ALICE, "m1b")
        self.bounced(b, "m1b", "service-unavailable")
        self.not_delivered(a, "m1")
        # an active list replaces it for that session: no layering (§2.2)
        self.activate(a, "open")
        self.message(b, a.jid, "m2")
        self.delivered(a, "m2")
        self.message(b, ALICE, "m3")
        self.delivered(a, "m3")
        # another resource without an active list still has the default
        a2 = self.online("alice", "two")
        self.message(b, a2.jid, "m4")
        self.bounced(b, "m4", "service-unavailable")
        self.activate(a)
        self.message(b, a.jid, "m5")
        self.bounced(b, "m5", "service-unavailable")
        # with no session at all the default list applies: refused, not stored offline
        for link in (a, a2):
            link.send(f"<end xmlns='{NS_SESSION}'/>")
        time.sleep(0.3)
        self.message(b, ALICE, "m6", typ="normal")
        self.bounced(b, "m6", "service-unavailable")
        a3 = self.online("alice", "three")
        self.not_delivered(a3, "m6")

    def test_conflict_rules(self):
        a1 = self.login("alice", "one")
        a2 = self.login("alice", "two")
        self.set_list(a1, "d", f"<item type='jid' value='{CAROL}' action='deny' order='1'/>")
        self.set_list(a1, "x", "<item action='allow' order='1'/>")
        self.make_default(a1, "d")
        # §2.2 rule 11: the default applies to a2 (it has no active list)
        self.fails(self.priv(a1, "set", "<default name='x'/>"), "conflict")
        self.fails(self.priv(a1, "set", "<default/>"), "conflict")
        self.fails(self.priv(a1, "set", "<list name='d'/>"), "conflict")
        self.assertEqual(self.names(a1)["default"], "d")
        # a2 takes an active list: the default now applies to a1 alone
        self.activate(a2, "x")
        self.fails(self.priv(a1, "set", "<list name='x'/>"), "conflict")  # active on a2
        self.make_default(a1, "x")
        self.ok(self.priv(a1, "set", "<list name='d'/>"))
        # a2 drops its active list; x (the default) applies to a1 again
        self.activate(a2)
        self.fails(self.priv(a2, "set", "<list name='x'/>"), "conflict")
        # once a1 is gone, a2 alone may remove it, which clears the default
        a1.send(f"<end xmlns='{NS_SESSION}'/>")
        time.sleep(0.3)
        self.ok(self.priv(a2, "set", "<list name='x'/>"))
        self.assertEqual(self.names(a2), {"active": None, "default": None, "lists": []})

    def test_removing_own_active_list(self):
        a = self.login("alice")
        self.set_list(a, "mine", "<item action='deny' order='1'><iq/></item>")
        self.activate(a, "mine")
        self.make_default(a, "mine")
        self.ok(self.priv(a, "set", "<list name='mine'/>"))
        self.assertEqual(self.names(a), {"active": None, "default": None, "lists": []})

    def test_jid_matching_rules(self):
        a = self.online("alice")
        self.set_list(a, "jids", "".join(
            f"<item type='jid' value='{v}' action='deny' order='{i}'><message/></item>"
            for i, v in enumerate(("eve@evil.test/phone", "mallory@evil.test",
                                   "other.test/res", "bad.test"), 1)))
        self.activate(a, "jids")
        cases = [("eve@evil.test/phone", True), ("eve@evil.test/laptop", False),
                 ("mallory@evil.test/x", True), ("mallory@evil.test", True),
                 ("other.test/res", True), ("other.test/else", False),
                 ("u@other.test/res", False), ("other.test", False),
                 ("bad.test", True), ("x@bad.test/y", True), ("bad.test/z", True),
                 ("x@sub.bad.test", False)]
        for i, (frm, _) in enumerate(cases):
            self.remote(f"<message from='{frm}' to='{a.jid}' id='j{i}' type='chat'>"
                        "<body>hi</body></message>")
        blocked = [f"j{i}" for i, (_, b) in enumerate(cases) if b]
        errors = self.remote_results(blocked)
        for iid in blocked:
            self.fails(errors[iid], "service-unavailable")
        for i, (frm, b) in enumerate(cases):
            if not b:
                self.assertEqual(self.delivered(a, f"j{i}").get("from"), frm)
        for iid in blocked:
            self.not_delivered(a, iid, wait=0.05)

    def setup_subscriptions(self, a):
        """alice's roster: to@ (she sees them), from@ (they see her), both@,
        grp@ (group Enemies, no subscription); none@ is not in it."""
        a.iq("get", f"<query xmlns='{NS_ROSTER}'/>")
        r = "remote.test"
        for c in ("to", "both"):
            self.presence(a, to=f"{c}@{r}", typ="subscribe")
            self.s2s.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribe"
                            and e.get("to") == f"{c}@{r}")
            self.remote(f"<presence from='{c}@{r}' to='{ALICE}' type='subscribed'/>")
        for c in ("from", "both"):
            self.remote(f"<presence from='{c}@{r}' to='{ALICE}' type='subscribe'/>")
            a.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribe" and
                     e.get("from") == f"{c}@{r}")
            self.presence(a, to=f"{c}@{r}", typ="subscribed")
        a.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='grp@{r}'><group>Enemies</group>"
                    "</item></query>")
        self.wait_roster(a, {f"to@{r}": "to", f"from@{r}": "from", f"both@{r}": "both",
                             f"grp@{r}": "none"})
        self.settle(a)

    def test_group_and_subscription_items(self):
        a = self.online("alice")
        self.setup_subscriptions(a)
        senders = ("none", "to", "from", "both", "grp")
        rules = [("subscription", v, {v} | ({"grp"} if v == "none" else set()))
                 for v in ("none", "to", "from", "both")]
        rules.append(("group", "Enemies", {"grp"}))
        for n, (typ, value, hit) in enumerate(rules):
            with self.subTest(type=typ, value=value):
                self.set_list(a, "l", f"<item type='{typ}' value='{value}' action='deny' "
                                      "order='1'><message/></item>")
                self.activate(a, "l")
                for s in senders:
                    self.remote(f"<message from='{s}@remote.test/x' to='{a.jid}' "
                                f"id='{n}-{s}' type='chat'><body/></message>")
                errors = self.remote_results([f"{n}-{s}" for s in senders if s in hit])
                for e in errors.values():
                    self.fails(e, "service-unavailable")
                for s in senders:
                    if s not in hit:
                        self.delivered(a, f"{n}-{s}")
                self.settle(a)

    def test_stanza_kinds(self):
        a = self.online("alice")
        b = self.online("bob")
        c = self.online("carol")
        self.mutual(a, b)

        def use(name, children):
            self.settle(a, b, c)
            self.set_list(a, name, f"<item type='jid' value='{BOB}' action='deny' order='1'>"
                                   f"{children}</item>"
                                   f"<item type='jid' value='{CAROL}' action='deny' order='2'>"
                                   f"{children}</item>")
            self.activate(a, name)

        use("msg", "<message/>")
        self.message(b, a.jid, "k1")
        self.bounced(b, "k1", "service-unavailable")
        self.ping(b, a.jid, "k2")
        self.delivered(a, "k2", "iq")
        self.presence(b, show="away")
        self.shows(a, b.jid, "away")
        self.message(a, b.jid, "k3")  # <message/> is inbound only
        self.delivered(b, "k3")

        use("iq", "<iq/>")
        self.ping(b, a.jid, "k4")
        self.bounced(b, "k4", "service-unavailable", "iq")
        self.not_delivered(a, "k4", "iq")
        self.ping(b, a.jid, "k5", typ="result")  # not get/set: dropped, no error
        self.not_delivered(a, "k5", "iq")
        b.expect_none(q("iq", NS_CLIENT), pred=lambda e: e.get("id") == "k5")
        self.message(b, a.jid, "k6")
        self.delivered(a, "k6")

        use("pin", "<presence-in/>")
        self.presence(b, show="xa")
        self.hides(a, b.jid, "xa")
        self.message(b, a.jid, "k7")
        self.delivered(a, "k7")
        # subscriptions are not presence notifications
        self.presence(c, to=ALICE, typ="subscribe")
        a.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribe")

        use("pout", "<presence-out/>")  # §2.11: blocking it sends unavailable
        b.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("from") == a.jid and
                 e.get("type") == "unavailable")
        self.presence(a, show="dnd")
        self.hides(b, a.jid, "dnd")
        self.message(a, b.jid, "k8")
        self.delivered(b, "k8")
        self.presence(b, show="chat")
        self.shows(a, b.jid, "chat")

        use("all", "")  # no child: everything, both ways
        self.message(b, a.jid, "k9")
        self.bounced(b, "k9", "service-unavailable")
        self.message(a, b.jid, "k10")
        err = self.bounced(a, "k10", "not-acceptable")
        self.assertIsNone(err.find(q("blocked", NS_BLOCK_ERR)), "not a blocklist item")
        self.not_delivered(b, "k10")
        self.ping(a, b.jid, "k11")
        self.bounced(a, "k11", "not-acceptable", "iq")
        self.presence(b, show="away")
        self.hides(a, b.jid, "away")
        self.presence(a, show="xa")
        self.hides(b, a.jid, "xa")
        self.presence(c, to=ALICE, typ="unsubscribe")
        self.presence(c, to=ALICE, typ="subscribe")
        a.expect_none(q("presence", NS_CLIENT), pred=lambda e: e.get("from") == CAROL)

    def test_own_resources_and_server_never_blocked(self):
        a1 = self.online("alice", "one")
        a2 = self.online("alice", "two")
        b = self.online("bob")
        self.set_list(a1, "nobody", "<item action='deny' order='1'/>")
        self.make_default(a1, "nobody")
        self.settle(a1, a2)
        self.message(a2, a1.jid, "o1")
        self.delivered(a1, "o1")
        self.message(a1, ALICE, "o2")
        self.delivered(a2, "o2")
        self.ok(a1.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN))
        self.ok(a1.iq("get", f"<query xmlns='{NS_ROSTER}'/>"))
        self.message(b, a1.jid, "o3")
        self.bounced(b, "o3", "service-unavailable")
        self.message(a1, BOB, "o4")
        self.bounced(a1, "o4", "not-acceptable")

    def test_lists_survive_restart(self):
        a = self.login("alice")
        self.set_list(a, "keep", f"<item type='jid' value='{BOB}' action='deny' order='5'>"
                                 "<message/><iq/></item>"
                                 "<item type='subscription' value='both' action='allow' "
                                 "order='7'/><item action='deny' order='9'>"
                                 "<presence-out/></item>")
        self.make_default(a, "keep")
        self.sm.stop()
        self.sm = self.dep.start("parley-sm")
        self.wait_sm_bound()
        # alice is not loaded: bob's message waits for her lists, then her default applies
        b = self.online("bob")
        self.message(b, ALICE, "r0", typ="normal")
        self.bounced(b, "r0", "service-unavailable")
        wait_log(self.sm, f"<message/> waits for the lists of {ALICE}")
        a2 = self.online("alice", "again")
        self.assertEqual(self.names(a2), {"active": None, "default": "keep", "lists": ["keep"]})
        items = self.get_list(a2, "keep")
        self.assertEqual([(i.get("type"), i.get("value"), i.get("action"), i.get("order"),
                           [c.tag.split("}")[1] for c in i]) for i in items],
                         [("jid", BOB, "deny", "5", ["message", "iq"]),
                          ("subscription", "both", "allow", "7", []),
                          (None, None, "deny", "9", ["presence-out"])])
        self.not_delivered(a2, "r0")
        self.message(b, a2.jid, "r1")
        self.bounced(b, "r1", "service-unavailable")


class Blocking(PrivacyCase):
    def test_block_pushes_and_blocklist(self):
        a1 = self.login("alice", "one")
        a2 = self.login("alice", "two")
        a3 = self.login("alice", "three")
        self.assertEqual(self.blocklist(a1), [])
        self.assertEqual(self.blocklist(a2), [])
        self.ok(a1.iq("set", f"<block xmlns='{NS_BLOCK}'><item jid='{BOB}'/>"
                             f"<item jid='Carol@{DOMAIN.upper()}'/></block>"))
        for link in (a1, a2):  # every resource that asked for the blocklist
            self.assertEqual(self.blocking_push(link, "block"), [BOB, CAROL])
        a3.expect_none(q("iq", NS_CLIENT), pred=lambda e: e.find(q("block", NS_BLOCK)) is not None)
        self.assertEqual(self.blocklist(a3), [BOB, CAROL])
        # the same data seen as privacy lists: the default list's jid/deny items
        self.assertEqual(self.names(a3), {"active": None, "default": "urn:xmpp:blocking",
                                          "lists": ["urn:xmpp:blocking"]})
        items = self.get_list(a3, "urn:xmpp:blocking")
        self.assertEqual(sorted((i.get("type"), i.get("value"), i.get("action"), len(i))
                                for i in items),
                         [("jid", BOB, "deny", 0), ("jid", CAROL, "deny", 0)])
        # blocking again is harmless
        self.ok(a1.iq("set", f"<block xmlns='{NS_BLOCK}'><item jid='{BOB}'/></block>"))
        self.assertEqual(self.blocklist(a1), [BOB, CAROL])

    def test_block_errors(self):
        a = self.login("alice")
        self.fails(a.iq("set", f"<block xmlns='{NS_BLOCK}'/>"), "bad-request")
        self.fails(a.iq("set", f"<block xmlns='{NS_BLOCK}'><item/></block>"), "bad-request")
        self.fails(a.iq("set", f"<block xmlns='{NS_BLOCK}'><item jid='a@@b'/></block>"),
                   "jid-malformed")
        self.fails(a.iq("set", f"<block xmlns='{NS_BLOCK}'><item jid='{BOB}'/>"
                               "<item jid='@nobody'/></block>"), "jid-malformed")
        self.fails(a.iq("set", f"<unblock xmlns='{NS_BLOCK}'><item jid='x@/y'/></unblock>"),
                   "jid-malformed")
        self.fails(a.iq("set", f"<blocklist xmlns='{NS_BLOCK}'/>"), "bad-request")
        self.fails(a.iq("get", f"<block xmlns='{NS_BLOCK}'><item jid='{BOB}'/></block>"),
                   "bad-request")
        self.assertEqual(self.blocklist(a), [])

    def test_blocked_contact_errors_and_presence_both_ways(self):
        a = self.online("alice")
        b = self.online("bob")
        self.mutual(a, b)
        self.assertEqual(self.blocklist(a), [])
        self.ok(a.iq("set", f"<block xmlns='{NS_BLOCK}'><item jid='{BOB}'/></block>"))
        # §3.3: the blocked contact sees the user go offline
        b.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("from") == a.jid and
                 e.get("type") == "unavailable")
        # what bob sends: messages and iq get/set bounce, the rest vanishes
        self.message(b, a.jid, "b1")
        self.bounced(b, "b1", "service-unavailable")
        self.message(b, ALICE, "b2", typ="normal")
        self.bounced(b, "b2", "service-unavailable")
        self.ping(b, a.jid, "b3")
        self.bounced(b, "b3", "service-unavailable", "iq")
        self.ping(b, a.jid, "b4", typ="result")
        for iid in ("b1", "b2", "b3"):
            self.not_delivered(a, iid, wait=0.05)
        self.not_delivered(a, "b4", "iq")
        b.expect_none(q("iq", NS_CLIENT), pred=lambda e: e.get("id") == "b4")
        # presence is not delivered either way
        self.presence(b, show="away")
        self.hides(a, b.jid, "away")
        self.presence(a, show="dnd")
        self.hides(b, a.jid, "dnd")
        # what alice sends to bob: not-acceptable with <blocked/>
        self.message(a, b.jid, "b5")
        err = self.bounced(a, "b5", "not-acceptable")
        self.assertIsNotNone(err.find(q("blocked", NS_BLOCK_ERR)))
        self.ping(a, BOB, "b6")
        err = self.bounced(a, "b6", "not-acceptable", "iq")
        self.assertIsNotNone(err.find(q("blocked", NS_BLOCK_ERR)))
        self.not_delivered(b, "b5")
        # unblocking: bob gets alice's current presence and messages flow again
        self.ok(a.iq("set", f"<unblock xmlns='{NS_BLOCK}'><item jid='{BOB}'/></unblock>"))
        self.shows(b, a.jid, "dnd")
        self.message(b, a.jid, "b7")
        self.delivered(a, "b7")
        self.presence(b, show="chat")
        self.shows(a, b.jid, "chat")

    def test_blocked_remote_domain(self):
        a = self.online("alice")
        self.ok(a.iq("set", f"<block xmlns='{NS_BLOCK}'><item jid='evil.test'/></block>"))
        self.remote(f"<message from='x@evil.test/y' to='{a.jid}' id='d1'><body/></message>")
        self.remote(f"<iq from='evil.test' to='{a.jid}' id='d2' type='get'>"
                    "<ping xmlns='urn:xmpp:ping'/></iq>")
        self.remote(f"<message from='x@good.test/y' to='{a.jid}' id='d3'><body/></message>")
        got = self.remote_results(["d1", "d2"])
        self.fails(got["d1"], "service-unavailable")
        self.fails(got["d2"], "service-unavailable")
        self.delivered(a, "d3")
        self.message(a, "someone@evil.test", "d4")
        self.bounced(a, "d4", "not-acceptable")

    def test_unblock_items_and_all(self):
        a = self.online("alice")
        c = self.online("carol")
        self.assertEqual(self.blocklist(a), [])
        self.ok(a.iq("set", f"<block xmlns='{NS_BLOCK}'><item jid='{BOB}'/><item jid='{CAROL}'/>"
                            "<item jid='evil.test'/></block>"))
        self.blocking_push(a, "block")
        self.ok(a.iq("set", f"<unblock xmlns='{NS_BLOCK}'><item jid='{BOB}'/>"
                            "<item jid='nobody@nowhere.test'/></unblock>"))
        self.assertIn(BOB, self.blocking_push(a, "unblock"))
        self.assertEqual(self.blocklist(a), [CAROL, "evil.test"])
        self.message(c, a.jid, "u1")
        self.bounced(c, "u1", "service-unavailable")
        self.ok(a.iq("set", f"<unblock xmlns='{NS_BLOCK}'/>"))
        self.assertEqual(self.blocking_push(a, "unblock"), [])  # §3.5: an empty unblock
        self.assertEqual(self.blocklist(a), [])
        # the blocking list was all the default list had: it is gone
        self.assertEqual(self.names(a), {"active": None, "default": None, "lists": []})
        self.message(c, a.jid, "u2")
        self.delivered(a, "u2")

    def test_blocking_and_privacy_lists_share_the_default_list(self):
        a1 = self.login("alice", "privacy")
        a2 = self.login("alice", "blocking")
        self.set_list(a1, "mine", f"<item type='jid' value='{CAROL}' action='deny' order='10'/>"
                                  "<item action='allow' order='20'/>")
        self.make_default(a1, "mine")
        # the default list's jid/deny items are the blocklist
        self.assertEqual(self.blocklist(a2), [CAROL])
        # blocking adds to that list, in front (XEP-0191 §5), and pushes the list's name
        # to the session using privacy lists
        self.settle(a1, a2)
        self.ok(a2.iq("set", f"<block xmlns='{NS_BLOCK}'><item jid='{BOB}'/></block>"))
        self.assertEqual(self.blocking_push(a2, "block"), [BOB])
        self.privacy_push(a1, "mine")
        a2.expect_none(q("iq", NS_CLIENT), pred=lambda e: e.find(q("query", NS_PRIV)) is not None)
        self.assertEqual([(i.get("value"), i.get("order")) for i in self.get_list(a1, "mine")],
                         [(BOB, "9"), (CAROL, "10"), (None, "20")])
        # a privacy list edit of the default list shows as block/unblock pushes
        self.set_list(a1, "mine", f"<item type='jid' value='{BOB}' action='deny' order='1'/>"
                                  f"<item type='jid' value='{DOMAIN}/x' action='deny' "
                                  "order='2'/>"
                                  f"<item type='jid' value='{CAROL}' action='deny' order='3'>"
                                  "<message/></item>")
        self.assertEqual(self.blocking_push(a2, "unblock"), [CAROL])
        self.assertEqual(self.blocking_push(a2, "block"), [f"{DOMAIN}/x"])
        self.assertEqual(self.blocklist(a2), [BOB, f"{DOMAIN}/x"])
        # another default list, another blocklist; a1 cannot switch it while a2 relies on it
        self.set_list(a1, "other", f"<item type='jid' value='{CAROL}' action='deny' order='1'/>")
        self.fails(self.priv(a1, "set", "<default name='other'/>"), "conflict")
        self.activate(a1, "mine")
        self.make_default(a2, "other")
        self.assertEqual(self.blocking_push(a2, "unblock"), [BOB, f"{DOMAIN}/x"])
        self.assertEqual(self.blocking_push(a2, "block"), [CAROL])
        # each session has its list: a1 the active 'mine', a2 the default 'other'
        b = self.online("bob")
        c = self.online("carol")
        self.message(b, a1.jid, "s1")
        self.bounced(b, "s1", "service-unavailable")
        self.message(b, a2.jid, "s2")
        self.delivered(a2, "s2")
        self.message(c, a2.jid, "s3")
        self.bounced(c, "s3", "service-unavailable")
        self.ping(c, a1.jid, "s4")  # 'mine' refuses only carol's messages
        self.delivered(a1, "s4", "iq")


if __name__ == "__main__":
    unittest.main()
