# SPDX-License-Identifier: MIT
"""Personal eventing (XEP-0163) on the sm's pubsub service (XEP-0060 subset)
at the protocol level: entity capabilities (XEP-0115) learnt by the server's
disco#info query and verified, +notify filtering, notifications and the
access models, publish-options preconditions, persistence, the last item on
presence, and the flows real clients run: avatars (XEP-0084), bookmarks
(XEP-0402) and OMEMO device lists (XEP-0384)."""

import base64
import hashlib
import time
import unittest
from xml.sax.saxutils import escape, quoteattr

from harness import q
from smproto import DOMAIN, NS_CLIENT, NS_STANZAS, SmCase

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = NS_PUBSUB + "#owner"
NS_EVENT = NS_PUBSUB + "#event"
NS_ERRORS = NS_PUBSUB + "#errors"
NS_PUBOPT = NS_PUBSUB + "#publish-options"
NS_CONFIG = NS_PUBSUB + "#node_config"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_XDATA = "jabber:x:data"
NS_TUNE = "http://jabber.org/protocol/tune"
NS_MOOD = "http://jabber.org/protocol/mood"
NS_AVATAR_DATA = "urn:xmpp:avatar:data"
NS_AVATAR_META = "urn:xmpp:avatar:metadata"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"
NS_BUNDLES = "eu.siacs.conversations.axolotl.bundles"
CAPS_NODE = "https://parley.example/client"

ALICE, BOB, CAROL = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def caps_ver(identities, features, forms=()):
    """XEP-0115 §5.1 with SHA-1. identities: (category, type, lang, name);
    forms: (FORM_TYPE, {var: [values]})."""
    s = "".join("/".join(i) + "<" for i in sorted(identities))
    s += "".join(f + "<" for f in sorted(features))
    for form_type, fields in sorted(forms):
        s += form_type + "<"
        for var in sorted(fields):
            s += var + "<" + "".join(v + "<" for v in sorted(fields[var]))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


def disco_query(node, identities, features, forms=()):
    out = f"<query xmlns='{NS_INFO}' node={quoteattr(node)}>"
    for cat, typ, lang, name in identities:
        lang_attr = f" xml:lang={quoteattr(lang)}" if lang else ""
        out += (f"<identity category={quoteattr(cat)} type={quoteattr(typ)}"
                f" name={quoteattr(name)}{lang_attr}/>")
    out += "".join(f"<feature var={quoteattr(f)}/>" for f in features)
    for form_type, fields in forms:
        out += (f"<x xmlns='{NS_XDATA}' type='result'><field var='FORM_TYPE' type='hidden'>"
                f"<value>{escape(form_type)}</value></field>")
        for var, values in fields.items():
            out += f"<field var={quoteattr(var)}>"
            out += "".join(f"<value>{escape(v)}</value>" for v in values)
            out += "</field>"
        out += "</x>"
    return out + "</query>"


def form(form_type, fields, typ="submit"):
    out = (f"<x xmlns='{NS_XDATA}' type='{typ}'><field var='FORM_TYPE' type='hidden'>"
           f"<value>{form_type}</value></field>")
    for var, value in fields.items():
        out += f"<field var='{var}'><value>{escape(value)}</value></field>"
    return out + "</x>"


def cond(el):
    """The stanza error condition of el and its pubsub#errors condition."""
    if el.get("type") != "error":
        return None, None
    err = el.find(q("error", NS_CLIENT))
    base = app = None
    for c in err:
        ns, name = c.tag[1:].split("}")
        if ns == NS_STANZAS and name != "text":
            base = name
        elif ns == NS_ERRORS:
            app = name
    return base, app


def profile(res, notify=(), features=(), forms=()):
    """The identities, features and ver of a test client's session."""
    idents = [("client", "pc", "", f"Parley test {res}")]
    feats = [NS_INFO, NS_CAPS] + list(features) + [n + "+notify" for n in notify]
    return idents, feats, caps_ver(idents, feats, forms)


def caps_element(ver):
    return f"<c xmlns='{NS_CAPS}' hash='sha-1' node='{CAPS_NODE}' ver='{ver}'/>"


def tune(title):
    return f"<tune xmlns='{NS_TUNE}'><title>{escape(title)}</title></tune>"


class PepCase(SmCase):
    def setUp(self):
        super().setUp()
        self.known_vers = set()  # vers the sm has verified (kept across restarts)

    # ---- sessions with capabilities ------------------------------------------------------

    def caps_online(self, user, res="r", notify=(), features=(), forms=(), lie=False,
                    priority=0):
        """A session whose presence carries caps; answers the server's
        disco#info query for them (lie: with features that do not hash to
        the advertised ver)."""
        idents, feats, ver = profile(res, notify, features, forms)
        link = self.login(user, res)
        link.stanza(f"<presence xmlns='{NS_CLIENT}' from='{link.jid}'><priority>{priority}"
                    f"</priority>{caps_element(ver)}</presence>")
        if ver not in self.known_vers:
            self.answer_caps(link, ver, idents, feats + ["urn:example:extra"] if lie else feats,
                             forms)
            if not lie:
                self.known_vers.add(ver)
        self.sync(link)
        return link

    def answer_caps(self, link, ver, idents, feats, forms=()):
        iq = link.expect(q("iq", NS_CLIENT), pred=lambda e: e.get("type") == "get" and
                         e.find(q("query", NS_INFO)) is not None)
        self.assertEqual(iq.find(q("query", NS_INFO)).get("node"), f"{CAPS_NODE}#{ver}")
        self.assertEqual(iq.get("to"), link.jid)
        self.assertEqual(iq.get("from"), f"{DOMAIN}/parley-pep-caps")  # the server asks
        link.stanza(f"<iq xmlns='{NS_CLIENT}' type='result' id={quoteattr(iq.get('id'))} "
                    f"from='{link.jid}' to={quoteattr(iq.get('from'))}>"
                    f"{disco_query(f'{CAPS_NODE}#{ver}', idents, feats, forms)}</iq>")

    def sync(self, link):
        """A round trip through the sm: what was sent before is handled."""
        r = link.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)
        self.assertEqual(r.get("type"), "result")

    def settle(self, *links, wait=0.3):
        for link in links:
            link.expect_none("nothing", wait=wait)
            link.inbox.clear()

    def mutual(self, a, b, settle=True):
        """A mutual presence subscription between two online users; b
        approves first, then a."""
        for x, y in ((a, b), (b, a)):
            x.stanza(f"<presence xmlns='{NS_CLIENT}' from='{x.jid}' to='{y.jid.split('/')[0]}' "
                     "type='subscribe'/>")
            y.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribe")
            y.stanza(f"<presence xmlns='{NS_CLIENT}' from='{y.jid}' "
                     f"to='{x.jid.split('/')[0]}' type='subscribed'/>")
            x.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribed")
        if settle:
            self.settle(a, b)

    def restart_sm(self):
        self.sm.stop()
        self.sm = self.dep.start("parley-sm")
        self.wait_sm_bound()

    # ---- pubsub --------------------------------------------------------------------------

    def publish(self, link, node, payload, item_id=None, options=None, to=None):
        item = f"<item id={quoteattr(item_id)}>" if item_id else "<item>"
        opts = (f"<publish-options>{form(NS_PUBOPT, options)}</publish-options>"
                if options else "")
        return link.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><publish node={quoteattr(node)}>"
                              f"{item}{payload}</item></publish>{opts}</pubsub>", to=to)

    def published_id(self, r):
        self.assertEqual(r.get("type"), "result", cond(r))
        pub = r.find(f"{q('pubsub', NS_PUBSUB)}/{q('publish', NS_PUBSUB)}")
        return pub.find(q("item", NS_PUBSUB)).get("id")

    def items(self, link, node, to=None, max_items=None, ids=()):
        m = f" max_items='{max_items}'" if max_items else ""
        inner = "".join(f"<item id={quoteattr(i)}/>" for i in ids)
        return link.iq("get", f"<pubsub xmlns='{NS_PUBSUB}'><items node={quoteattr(node)}{m}>"
                              f"{inner}</items></pubsub>", to=to)

    def item_list(self, r):
        """(id, payload element) of an items result."""
        self.assertEqual(r.get("type"), "result", cond(r))
        items = r.find(f"{q('pubsub', NS_PUBSUB)}/{q('items', NS_PUBSUB)}")
        return [(i.get("id"), next(iter(i), None)) for i in items.findall(q("item", NS_PUBSUB))]

    def retract(self, link, node, item_id, notify=True):
        n = " notify='true'" if notify else ""
        return link.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><retract node={quoteattr(node)}{n}>"
                              f"<item id={quoteattr(item_id)}/></retract></pubsub>")

    def owner_iq(self, link, typ, inner):
        return link.iq(typ, f"<pubsub xmlns='{NS_OWNER}'>{inner}</pubsub>")

    def expect_event(self, link, node, timeout=10):
        """The next notification for node; returns its <items/> (or other child)."""
        def pred(e):
            ev = e.find(q("event", NS_EVENT))
            return ev is not None and any(c.get("node") == node for c in ev)
        msg = link.expect(q("message", NS_CLIENT), timeout=timeout, pred=pred)
        self.assertEqual(msg.get("type"), "headline")
        return msg, next(iter(msg.find(q("event", NS_EVENT))))

    def no_event(self, link, node=None, wait=0.8):
        def pred(e):
            ev = e.find(q("event", NS_EVENT))
            return ev is not None and (node is None or any(c.get("node") == node for c in ev))
        link.expect_none(q("message", NS_CLIENT), wait=wait, pred=pred)


class CapsVectors(unittest.TestCase):
    def test_xep0115_examples(self):
        """The test's own ver computation against XEP-0115 §5.2 and §5.3."""
        self.assertEqual(caps_ver([("client", "pc", "", "Exodus 0.9.1")],
                                  ["http://jabber.org/protocol/caps", NS_INFO, NS_ITEMS,
                                   "http://jabber.org/protocol/muc"]),
                         "QgayPKawpkPSDYmwT/WM94uAlu0=")
        self.assertEqual(caps_ver(
            [("client", "pc", "en", "Psi 0.11"), ("client", "pc", "el", "\u03a8 0.11")],
            ["http://jabber.org/protocol/caps", NS_INFO, NS_ITEMS,
             "http://jabber.org/protocol/muc"],
            [("urn:xmpp:dataforms:softwareinfo",
              {"ip_version": ["ipv4", "ipv6"], "os": ["Mac"], "os_version": ["10.5.1"],
               "software": ["Psi"], "software_version": ["0.11"]})]),
            "q07IKJEyjvHSyhy//CH0CxmKi8w=")


class Pep(PepCase):
    def test_disco_identity_and_features(self):
        a = self.login("alice")
        r = a.iq("get", f"<query xmlns='{NS_INFO}'/>", to=ALICE)
        query = r.find(q("query", NS_INFO))
        idents = {(i.get("category"), i.get("type")) for i in query.findall(q("identity", NS_INFO))}
        self.assertIn(("pubsub", "pep"), idents)
        self.assertIn(("account", "registered"), idents)
        feats = {f.get("var") for f in query.findall(q("feature", NS_INFO))}
        for f in ("", "#publish", "#publish-options", "#auto-create", "#persistent-items",
                  "#retract-items", "#retrieve-items", "#access-presence", "#access-open",
                  "#access-whitelist", "#subscribe", "#filtered-notifications",
                  "#last-published", "#config-node", "#delete-nodes"):
            self.assertIn(NS_PUBSUB + f, feats)
        # a node's own disco#info and items
        self.published_id(self.publish(a, NS_TUNE, tune("x"), item_id="t1"))
        r = a.iq("get", f"<query xmlns='{NS_INFO}' node='{NS_TUNE}'/>", to=ALICE)
        idents = {(i.get("category"), i.get("type"))
                  for i in r.find(q("query", NS_INFO)).findall(q("identity", NS_INFO))}
        self.assertEqual(idents, {("pubsub", "leaf")})
        r = a.iq("get", f"<query xmlns='{NS_ITEMS}' node='{NS_TUNE}'/>", to=ALICE)
        self.assertEqual([i.get("name") for i in r.find(q("query", NS_ITEMS))], ["t1"])

    def test_publish_notifies_interested_contact_and_own_resources(self):
        a = self.caps_online("alice", "desk", notify=[NS_TUNE])
        a2 = self.caps_online("alice", "phone", notify=[NS_MOOD])
        b = self.caps_online("bob", notify=[NS_TUNE])
        self.mutual(a, b)
        self.settle(a2)
        r = self.publish(a, NS_TUNE, tune("Soliloquy"))
        item_id = self.published_id(r)
        self.assertTrue(item_id)
        for link in (a, b):
            msg, items = self.expect_event(link, NS_TUNE)
            self.assertEqual(msg.get("from"), ALICE)
            self.assertEqual(msg.get("to"), link.jid)
            item = items.find(q("item", NS_EVENT))
            self.assertEqual(item.get("id"), item_id)
            self.assertEqual(item.find(f"{q('tune', NS_TUNE)}/{q('title', NS_TUNE)}").text,
                             "Soliloquy")
        self.no_event(a2, NS_TUNE)  # no tune+notify in its caps

    def test_no_notification_without_interest_or_subscription(self):
        a = self.caps_online("alice")
        b = self.caps_online("bob", notify=[NS_MOOD])  # not tune
        c = self.caps_online("carol", notify=[NS_TUNE])  # not subscribed
        self.mutual(a, b)
        # carol shares presence directly; the presence model still keeps her out
        c.stanza(f"<presence xmlns='{NS_CLIENT}' from='{c.jid}' to='{ALICE}'>"
                 f"{caps_element(profile('r', [NS_TUNE])[2])}</presence>")
        self.sync(c)
        self.settle(a, b, c)
        self.published_id(self.publish(a, NS_TUNE, tune("quiet")))
        self.no_event(b)
        self.no_event(c)
        # bob asks for it now (new caps): the last item comes at once
        b2 = self.caps_online("bob", "second", notify=[NS_TUNE])
        self.expect_event(b2, NS_TUNE)

    def test_approval_sends_last_items(self):
        """XEP-0163 §7.1: access is recalculated when the owner approves a
        subscription: the new contact's resources get the last items."""
        a = self.caps_online("alice")
        b = self.caps_online("bob", notify=[NS_TUNE])
        self.published_id(self.publish(a, NS_TUNE, tune("before we met")))
        self.no_event(b, NS_TUNE)
        self.mutual(a, b, settle=False)  # alice approves bob last
        self.expect_event(b, NS_TUNE)

    def test_blocked_contact_gets_nothing(self):
        a = self.caps_online("alice")
        b = self.caps_online("bob", notify=[NS_TUNE])
        self.mutual(a, b)
        self.settle(b)
        r = a.iq("set", f"<block xmlns='urn:xmpp:blocking'><item jid='{BOB}'/></block>")
        self.assertEqual(r.get("type"), "result")
        self.published_id(self.publish(a, NS_TUNE, tune("not for bob")))
        self.no_event(b, NS_TUNE)

    def test_retract_notifies(self):
        a = self.caps_online("alice")
        b = self.caps_online("bob", notify=[NS_TUNE])
        self.mutual(a, b)
        item_id = self.published_id(self.publish(a, NS_TUNE, tune("one"), item_id="i1"))
        self.expect_event(b, NS_TUNE)
        r = self.retract(a, NS_TUNE, item_id)
        self.assertEqual(r.get("type"), "result")
        _, items = self.expect_event(b, NS_TUNE)
        self.assertEqual(items.find(q("retract", NS_EVENT)).get("id"), "i1")
        self.assertEqual(self.item_list(self.items(a, NS_TUNE)), [])
        self.assertEqual(cond(self.retract(a, NS_TUNE, "i1")), ("item-not-found", None))
        self.assertEqual(cond(self.retract(a, "no-such-node", "i1")), ("item-not-found", None))
        r = a.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><retract node='{NS_TUNE}'/></pubsub>")
        self.assertEqual(cond(r), ("bad-request", "item-required"))

    def test_items_retrieval(self):
        a = self.caps_online("alice")
        b = self.caps_online("bob")
        c = self.login("carol")
        self.mutual(a, b)
        node = "urn:example:journal"
        opts = {"pubsub#max_items": "10"}
        for i in range(4):
            self.published_id(self.publish(a, node, f"<entry xmlns='urn:example'>{i}</entry>",
                                           item_id=f"e{i}", options=opts))
        self.assertEqual([i for i, _ in self.item_list(self.items(a, node))],
                         ["e0", "e1", "e2", "e3"])
        self.assertEqual([i for i, _ in self.item_list(self.items(b, node, to=ALICE,
                                                                  max_items=2))],
                         ["e2", "e3"])
        got = self.item_list(self.items(b, node, to=ALICE, ids=["e1", "nope"]))
        self.assertEqual([i for i, _ in got], ["e1"])
        self.assertEqual(got[0][1].text, "1")
        # republishing an id replaces it and makes it the newest
        self.published_id(self.publish(a, node, "<entry xmlns='urn:example'>again</entry>",
                                       item_id="e0", options=opts))
        self.assertEqual([i for i, _ in self.item_list(self.items(a, node))],
                         ["e1", "e2", "e3", "e0"])
        # the default node keeps one item
        for t in ("a", "b"):
            self.published_id(self.publish(a, NS_TUNE, tune(t)))
        self.assertEqual(len(self.item_list(self.items(a, NS_TUNE))), 1)
        # errors
        self.assertEqual(cond(self.items(c, node, to=ALICE)),
                         ("not-authorized", "presence-subscription-required"))
        self.assertEqual(cond(self.items(a, "no-such-node")), ("item-not-found", None))
        r = a.iq("get", f"<pubsub xmlns='{NS_PUBSUB}'><items/></pubsub>")
        self.assertEqual(cond(r), ("bad-request", "nodeid-required"))
        r = c.iq("get", f"<pubsub xmlns='{NS_PUBSUB}'><items node='x'/></pubsub>",
                 to=f"nobody@{DOMAIN}")
        self.assertEqual(cond(r)[0], "service-unavailable")

    def test_node_holds_max_items_right_after_publish(self):
        """Publications sent back to back, then items at once: the node
        shows its newest max_items even before the store has dropped the
        older ones."""
        a = self.caps_online("alice")
        node = "urn:example:log"
        opts = form(NS_PUBOPT, {"pubsub#max_items": "2"})
        for k in range(3):
            for t in ("a", "b", "c"):
                a.stanza(f"<iq xmlns='{NS_CLIENT}' type='set' id='t{k}{t}' from='{a.jid}'>"
                         f"<pubsub xmlns='{NS_PUBSUB}'><publish node='{NS_TUNE}'>"
                         f"<item>{tune(t)}</item></publish></pubsub></iq>")
                a.stanza(f"<iq xmlns='{NS_CLIENT}' type='set' id='l{k}{t}' from='{a.jid}'>"
                         f"<pubsub xmlns='{NS_PUBSUB}'><publish node='{node}'><item id='{t}'>"
                         f"<entry xmlns='urn:example'>{k}{t}</entry></item></publish>"
                         f"<publish-options>{opts}</publish-options></pubsub></iq>")
            got = self.item_list(self.items(a, NS_TUNE))
            self.assertEqual(len(got), 1, k)
            self.assertEqual(got[0][1].findtext(q("title", NS_TUNE)), "c")
            self.assertEqual([i for i, _ in self.item_list(self.items(a, node))], ["b", "c"])

    def test_persistence_across_sm_restart(self):
        a = self.login("alice")
        self.published_id(self.publish(a, NS_TUNE, tune("kept"), item_id="k"))
        self.published_id(self.publish(a, NS_DEVICELIST, "<list xmlns='eu.siacs.conversations."
                                       "axolotl'><device id='7'/></list>", item_id="current",
                                       options={"pubsub#access_model": "open"}))
        self.restart_sm()
        a = self.login("alice", "again")
        got = self.item_list(self.items(a, NS_TUNE))
        self.assertEqual(got[0][0], "k")
        self.assertEqual(got[0][1].find(q("title", NS_TUNE)).text, "kept")
        c = self.login("carol")
        self.assertEqual([i for i, _ in self.item_list(self.items(c, NS_DEVICELIST, to=ALICE))],
                         ["current"])
        # the caps cache persists too: a known ver is not asked again
        b = self.caps_online("bob", notify=[NS_TUNE])
        self.restart_sm()
        self.links.clear()
        b = self.caps_online("bob", "next", notify=[NS_TUNE])  # same ver: no query expected
        b.expect_none(q("iq", NS_CLIENT), pred=lambda e: e.get("type") == "get")

    def test_access_models(self):
        a = self.caps_online("alice")
        b = self.caps_online("bob", notify=["urn:example:open", "urn:example:wl"])
        c = self.caps_online("carol", notify=["urn:example:open"])
        self.mutual(a, b)
        self.published_id(self.publish(a, "urn:example:open", "<p xmlns='urn:example'/>",
                                       options={"pubsub#access_model": "open"}))
        self.published_id(self.publish(a, "urn:example:wl", "<p xmlns='urn:example'/>",
                                       options={"pubsub#access_model": "whitelist"}))
        self.expect_event(b, "urn:example:open")
        self.no_event(b, "urn:example:wl")
        # open: anyone retrieves and subscribes
        self.assertEqual(len(self.item_list(self.items(c, "urn:example:open", to=ALICE))), 1)
        # whitelist: even a contact is kept out until made a member
        self.assertEqual(cond(self.items(b, "urn:example:wl", to=ALICE)),
                         ("not-allowed", "closed-node"))
        r = self.owner_iq(a, "set", "<affiliations node='urn:example:wl'>"
                                    f"<affiliation jid='{BOB}' affiliation='member'/>"
                                    "</affiliations>")
        self.assertEqual(r.get("type"), "result")
        r = self.owner_iq(a, "get", "<affiliations node='urn:example:wl'/>")
        affs = {x.get("jid"): x.get("affiliation")
                for x in r.find(q("pubsub", NS_OWNER)).find(q("affiliations", NS_OWNER))}
        self.assertEqual(affs, {ALICE: "owner", BOB: "member"})
        self.assertEqual(len(self.item_list(self.items(b, "urn:example:wl", to=ALICE))), 1)
        self.published_id(self.publish(a, "urn:example:wl", "<p xmlns='urn:example'/>"))
        self.expect_event(b, "urn:example:wl")
        # node configuration: the owner turns the open node to presence
        r = self.owner_iq(a, "get", "<configure node='urn:example:open'/>")
        x = r.find(q("pubsub", NS_OWNER)).find(q("configure", NS_OWNER)).find(q("x", NS_XDATA))
        fields = {f.get("var"): f.findtext(q("value", NS_XDATA)) for f in x}
        self.assertEqual(fields["pubsub#access_model"], "open")
        self.assertEqual(fields["FORM_TYPE"], NS_CONFIG)
        r = self.owner_iq(a, "set", "<configure node='urn:example:open'>" +
                          form(NS_CONFIG, {"pubsub#access_model": "presence"}) + "</configure>")
        self.assertEqual(r.get("type"), "result")
        self.assertEqual(cond(self.items(c, "urn:example:open", to=ALICE)),
                         ("not-authorized", "presence-subscription-required"))
        r = self.owner_iq(a, "set", "<configure node='urn:example:open'>" +
                          form(NS_CONFIG, {"pubsub#access_model": "roster"}) + "</configure>")
        self.assertEqual(cond(r), ("not-acceptable", "unsupported-access-model"))
        # only the owner configures
        r = b.iq("get", f"<pubsub xmlns='{NS_OWNER}'><configure node='urn:example:open'/>"
                        "</pubsub>", to=ALICE)
        self.assertEqual(cond(r)[0], "forbidden")

    def test_publish_options_and_publish_errors(self):
        a = self.login("alice")
        b = self.login("bob")
        node = "urn:example:prefs"
        self.published_id(self.publish(a, node, "<p xmlns='urn:example'/>",
                                       options={"pubsub#access_model": "open",
                                                "pubsub#persist_items": "true"}))
        r = self.publish(a, node, "<p xmlns='urn:example'/>",
                         options={"pubsub#access_model": "whitelist"})
        self.assertEqual(cond(r), ("conflict", "precondition-not-met"))
        r = self.publish(a, node, "<p xmlns='urn:example'/>",
                         options={"pubsub#access_model": "open", "pubsub#persist_items": "1"})
        self.published_id(r)
        r = self.publish(a, node, "<p xmlns='urn:example'/>",
                         options={"pubsub#unheard_of": "1"})
        self.assertEqual(cond(r), ("conflict", "precondition-not-met"))
        # options the service has but does not let change: their value holds
        self.published_id(self.publish(a, node, "<p xmlns='urn:example'/>",
                                       options={"pubsub#notification_type": "headline",
                                                "pubsub#subscribe": "true"}))
        r = self.publish(a, node, "<p xmlns='urn:example'/>",
                         options={"pubsub#notification_type": "normal"})
        self.assertEqual(cond(r), ("conflict", "precondition-not-met"))
        r = self.publish(a, "urn:example:other", "<p xmlns='urn:example'/>",
                         options={"pubsub#unheard_of": "1"})
        self.assertEqual(cond(r), ("conflict", "precondition-not-met"))
        r = self.owner_iq(a, "set", f"<configure node='{node}'>" +
                          form(NS_CONFIG, {"pubsub#subscribe": "0"}) + "</configure>")
        self.assertEqual(cond(r), ("not-acceptable", None))
        # a client that finds the preconditions unmet configures, then publishes
        r = self.publish(a, node, "<p xmlns='urn:example'/>",
                         options={"pubsub#max_items": "max"})
        self.assertEqual(cond(r), ("conflict", "precondition-not-met"))
        r = self.owner_iq(a, "set", f"<configure node='{node}'>" +
                          form(NS_CONFIG, {"pubsub#max_items": "max"}) + "</configure>")
        self.assertEqual(r.get("type"), "result")
        self.published_id(self.publish(a, node, "<p xmlns='urn:example'/>",
                                       options={"pubsub#max_items": "max"}))
        r = self.publish(a, "urn:example:new", "<p xmlns='urn:example'/>",
                         options={"pubsub#access_model": "authorize"})
        self.assertEqual(cond(r), ("not-acceptable", "unsupported-access-model"))
        # the item and its payload
        r = a.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><publish node='{node}'/></pubsub>")
        self.assertEqual(cond(r), ("bad-request", "item-required"))
        r = self.publish(a, node, "")
        self.assertEqual(cond(r), ("bad-request", "payload-required"))
        r = self.publish(a, node, "<p xmlns='urn:example'/><p xmlns='urn:example'/>")
        self.assertEqual(cond(r), ("bad-request", "invalid-payload"))
        r = a.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><publish><item><p xmlns='urn:x'/>"
                        "</item></publish></pubsub>")
        self.assertEqual(cond(r), ("bad-request", "nodeid-required"))
        # only the owner publishes
        r = self.publish(b, node, "<p xmlns='urn:example'/>", to=ALICE)
        self.assertEqual(cond(r)[0], "forbidden")
        # what is not implemented says so
        r = b.iq("get", f"<pubsub xmlns='{NS_PUBSUB}'><options node='{node}' jid='{BOB}'/>"
                        "</pubsub>", to=ALICE)
        self.assertEqual(cond(r), ("feature-not-implemented", "unsupported"))
        # create: explicit, with configuration, then a conflict
        r = a.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><create node='urn:example:made'/>"
                        "<configure>" + form(NS_CONFIG, {"pubsub#max_items": "5"}) +
                 "</configure></pubsub>")
        self.assertEqual(r.get("type"), "result")
        r = a.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><create node='urn:example:made'/>"
                        "</pubsub>")
        self.assertEqual(cond(r)[0], "conflict")
        r = self.publish(a, "urn:example:made", "<p xmlns='urn:example'/>",
                         options={"pubsub#max_items": "5"})
        self.published_id(r)

    def test_last_item_sent_when_contact_comes_online(self):
        a = self.caps_online("alice", "desk", notify=[NS_TUNE])
        b = self.caps_online("bob")
        self.mutual(a, b)
        self.published_id(self.publish(a, NS_TUNE, tune("While you were out")))
        # bob's client goes away, then another one comes with tune+notify
        b.send("<end xmlns='urn:parley:session:1'/>")
        self.settle(a)
        b2 = self.caps_online("bob", "laptop", notify=[NS_TUNE])
        _, items = self.expect_event(b2, NS_TUNE)
        self.assertEqual(items.find(f"{q('item', NS_EVENT)}/{q('tune', NS_TUNE)}/"
                                    f"{q('title', NS_TUNE)}").text, "While you were out")
        # a later presence of the same session does not send it again
        b2.stanza(f"<presence xmlns='{NS_CLIENT}' from='{b2.jid}'><show>away</show>"
                  f"{caps_element(profile('laptop', [NS_TUNE])[2])}</presence>")
        self.no_event(b2, NS_TUNE)
        # the owner's own new resource gets it too
        a2 = self.caps_online("alice", "tablet", notify=[NS_TUNE])
        self.expect_event(a2, NS_TUNE)
        # a node whose send_last_published_item is never is not sent
        self.published_id(self.publish(a, NS_MOOD, f"<mood xmlns='{NS_MOOD}'><happy/></mood>",
                                       options={"pubsub#send_last_published_item": "never"}))
        b3 = self.caps_online("bob", "watch", notify=[NS_MOOD])
        self.no_event(b3, NS_MOOD)

    def test_avatar_flow(self):
        a = self.caps_online("alice", notify=[NS_AVATAR_META])
        b = self.caps_online("bob", notify=[NS_AVATAR_META])
        self.mutual(a, b)
        sha1 = hashlib.sha1(PNG).hexdigest()
        data = base64.b64encode(PNG).decode()
        self.published_id(self.publish(a, NS_AVATAR_DATA,
                                       f"<data xmlns='{NS_AVATAR_DATA}'>{data}</data>",
                                       item_id=sha1))
        self.no_event(b, NS_AVATAR_DATA)  # data is fetched, never pushed
        self.published_id(self.publish(
            a, NS_AVATAR_META, f"<metadata xmlns='{NS_AVATAR_META}'><info bytes='{len(PNG)}' "
                               f"id='{sha1}' height='1' width='1' type='image/png'/></metadata>",
            item_id=sha1))
        for link in (a, b):
            _, items = self.expect_event(link, NS_AVATAR_META)
            info = items.find(f"{q('item', NS_EVENT)}/{q('metadata', NS_AVATAR_META)}/"
                              f"{q('info', NS_AVATAR_META)}")
            self.assertEqual(info.get("id"), sha1)
        got = self.item_list(self.items(b, NS_AVATAR_DATA, to=ALICE, ids=[sha1]))
        self.assertEqual(got[0][0], sha1)
        self.assertEqual(base64.b64decode(got[0][1].text), PNG)
        # no avatar any more: empty metadata
        self.published_id(self.publish(a, NS_AVATAR_META, f"<metadata xmlns='{NS_AVATAR_META}'/>",
                                       item_id="current"))
        _, items = self.expect_event(b, NS_AVATAR_META)
        self.assertEqual(items.find(q("item", NS_EVENT)).get("id"), "current")

    def test_bookmarks_with_whitelist(self):
        opts = {"pubsub#persist_items": "true", "pubsub#max_items": "max",
                "pubsub#send_last_published_item": "never", "pubsub#access_model": "whitelist"}
        a = self.caps_online("alice", "desk", notify=[NS_BOOKMARKS])
        a2 = self.caps_online("alice", "phone", notify=[NS_BOOKMARKS])
        b = self.caps_online("bob", notify=[NS_BOOKMARKS])
        self.mutual(a, b)
        self.settle(a2)
        for room in ("theplay", "orchard"):
            r = self.publish(a, NS_BOOKMARKS,
                             f"<conference xmlns='{NS_BOOKMARKS}' name='{room}' autojoin='true'>"
                             "<nick>JC</nick></conference>",
                             item_id=f"{room}@conference.{DOMAIN}", options=opts)
            self.published_id(r)
            _, items = self.expect_event(a2, NS_BOOKMARKS)
            self.assertEqual(items.find(q("item", NS_EVENT)).get("id"),
                             f"{room}@conference.{DOMAIN}")
        self.no_event(b, NS_BOOKMARKS)
        got = self.item_list(self.items(a2, NS_BOOKMARKS))
        self.assertEqual(sorted(i for i, _ in got),
                         [f"orchard@conference.{DOMAIN}", f"theplay@conference.{DOMAIN}"])
        self.assertEqual(cond(self.items(b, NS_BOOKMARKS, to=ALICE)),
                         ("not-allowed", "closed-node"))
        r = self.retract(a, NS_BOOKMARKS, f"theplay@conference.{DOMAIN}")
        self.assertEqual(r.get("type"), "result")
        _, items = self.expect_event(a2, NS_BOOKMARKS)
        self.assertEqual(items.find(q("retract", NS_EVENT)).get("id"),
                         f"theplay@conference.{DOMAIN}")
        self.no_event(b, NS_BOOKMARKS)
        # a client that checks for an open configuration finds it does not hold
        r = self.publish(a, NS_BOOKMARKS, f"<conference xmlns='{NS_BOOKMARKS}'/>",
                         item_id=f"x@conference.{DOMAIN}",
                         options=dict(opts, **{"pubsub#access_model": "open"}))
        self.assertEqual(cond(r), ("conflict", "precondition-not-met"))
        # new sessions are not sent the last bookmark (send_last_published_item never)
        a3 = self.caps_online("alice", "tablet", notify=[NS_BOOKMARKS])
        self.no_event(a3, NS_BOOKMARKS)

    def test_omemo_devicelist_open_to_strangers(self):
        a = self.caps_online("alice", notify=[NS_DEVICELIST])
        devlist = "<list xmlns='eu.siacs.conversations.axolotl'><device id='1234'/></list>"
        self.published_id(self.publish(a, NS_DEVICELIST, devlist, item_id="current",
                                       options={"pubsub#access_model": "open"}))
        self.expect_event(a, NS_DEVICELIST)
        self.published_id(self.publish(
            a, f"{NS_BUNDLES}:1234", "<bundle xmlns='eu.siacs.conversations.axolotl'>"
                                     "<identityKey>AAAA</identityKey></bundle>",
            item_id="current", options={"pubsub#access_model": "open"}))
        # carol is no contact of alice and fetches both
        c = self.login("carol")
        got = self.item_list(self.items(c, NS_DEVICELIST, to=ALICE))
        self.assertEqual(got[0][0], "current")
        self.assertEqual(got[0][1].find(q("device", "eu.siacs.conversations.axolotl"))
                         .get("id"), "1234")
        self.assertEqual(len(self.item_list(self.items(c, f"{NS_BUNDLES}:1234", to=ALICE,
                                                       max_items=1))), 1)
        # she may subscribe explicitly: notifications then come to her bare JID
        c.stanza(f"<presence xmlns='{NS_CLIENT}' from='{c.jid}'/>")  # available for headlines
        self.sync(c)
        r = c.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><subscribe node='{NS_DEVICELIST}' "
                        f"jid='{CAROL}'/></pubsub>", to=ALICE)
        sub = r.find(q("pubsub", NS_PUBSUB)).find(q("subscription", NS_PUBSUB))
        self.assertEqual((sub.get("jid"), sub.get("subscription")), (CAROL, "subscribed"))
        _, items = self.expect_event(c, NS_DEVICELIST)  # the last item, on subscription
        devlist2 = ("<list xmlns='eu.siacs.conversations.axolotl'><device id='1234'/>"
                    "<device id='99'/></list>")
        self.published_id(self.publish(a, NS_DEVICELIST, devlist2, item_id="current",
                                       options={"pubsub#access_model": "open"}))
        msg, items = self.expect_event(c, NS_DEVICELIST)
        self.assertEqual(len(items.find(q("item", NS_EVENT)).find(
            q("list", "eu.siacs.conversations.axolotl"))), 2)
        r = c.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><unsubscribe node='{NS_DEVICELIST}' "
                        f"jid='{CAROL}'/></pubsub>", to=ALICE)
        self.assertEqual(r.get("type"), "result")
        r = c.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><unsubscribe node='{NS_DEVICELIST}' "
                        f"jid='{CAROL}'/></pubsub>", to=ALICE)
        self.assertEqual(cond(r), ("unexpected-request", "not-subscribed"))
        r = c.iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><subscribe node='{NS_DEVICELIST}' "
                        f"jid='{BOB}'/></pubsub>", to=ALICE)
        self.assertEqual(cond(r), ("bad-request", "invalid-jid"))
        self.published_id(self.publish(a, NS_DEVICELIST, devlist, item_id="current",
                                       options={"pubsub#access_model": "open"}))
        self.no_event(c, NS_DEVICELIST)

    def test_caps_verification(self):
        a = self.caps_online("alice")
        # a client whose answer does not hash to its ver gets nothing
        b = self.caps_online("bob", notify=[NS_TUNE], lie=True)
        # one with an extended form (XEP-0128) and non-ASCII names is verified
        forms = [("urn:xmpp:dataforms:softwareinfo",
                  {"software": ["Parley test"], "os": ["\u03a8OS"],
                   "ip_version": ["ipv6", "ipv4"]})]
        c = self.caps_online("carol", notify=[NS_TUNE], forms=forms)
        self.mutual(a, b)
        self.mutual(a, c)
        self.published_id(self.publish(a, NS_TUNE, tune("checked")))
        self.expect_event(c, NS_TUNE)
        self.no_event(b, NS_TUNE)

    def remote_read(self, tag, pred, timeout=10):
        """The next stanza named tag (the sm writes them in jabber:client) that
        the s2s stand-in receives and pred accepts."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            el = self.s2s.read(max(0.0, deadline - time.time()))
            if el is not None and el.tag.split("}")[1] == tag and pred(el):
                return el
        raise AssertionError(f"no <{tag}/> through the s2s stand-in")

    def test_remote_entity_caps_through_router(self):
        """A remote entity's caps are asked through the router (from the
        account's JID, where the answer can come back) and its notifications
        go there too."""
        a = self.caps_online("alice")
        node = "urn:example:open-remote"
        self.published_id(self.publish(a, node, "<p xmlns='urn:example'>1</p>",
                                       options={"pubsub#access_model": "open"}))
        remote = "dave@remote.test/home"
        idents, feats = [("client", "pc", "", "Remote")], [NS_INFO, NS_CAPS, node + "+notify"]
        ver = caps_ver(idents, feats)
        self.s2s.send(f"<presence from='{remote}' to='{ALICE}'>{caps_element(ver)}</presence>")
        iq = self.remote_read("iq", lambda e: e.get("type") == "get" and e.get("to") == remote)
        self.assertEqual(iq.get("from"), f"{ALICE}/parley-pep-caps")
        self.s2s.send(f"<iq type='result' id='{iq.get('id')}' from='{remote}' "
                      f"to='{iq.get('from')}'>{disco_query(f'{CAPS_NODE}#{ver}', idents, feats)}"
                      "</iq>")
        def event(e):
            return e.find(q("event", NS_EVENT)) is not None and e.get("to") == remote
        self.remote_read("message", event)  # the last item, on presence
        self.published_id(self.publish(a, node, "<p xmlns='urn:example'>2</p>"))
        msg = self.remote_read("message", event)
        self.assertEqual(msg.get("from"), ALICE)
        self.assertEqual(msg.get("type"), "headline")
        # unavailable: no more
        self.s2s.send(f"<presence from='{remote}' to='{ALICE}' type='unavailable'/>")
        self.sync(a)
        self.published_id(self.publish(a, node, "<p xmlns='urn:example'>3</p>"))
        self.sync(a)
        deadline = time.time() + 0.8
        while time.time() < deadline:
            el = self.s2s.read(0.2)
            self.assertFalse(el is not None and el.tag.endswith("}message") and event(el))

    def test_delete_and_purge(self):
        a = self.caps_online("alice")
        b = self.caps_online("bob", notify=["urn:example:n"])
        self.mutual(a, b)
        opts = {"pubsub#max_items": "10"}
        for i in range(3):
            self.published_id(self.publish(a, "urn:example:n", "<p xmlns='urn:example'/>",
                                           options=opts))
            self.expect_event(b, "urn:example:n")
        r = self.owner_iq(a, "set", "<purge node='urn:example:n'/>")
        self.assertEqual(r.get("type"), "result")
        _, purge = self.expect_event(b, "urn:example:n")
        self.assertEqual(purge.tag, q("purge", NS_EVENT))
        self.assertEqual(self.item_list(self.items(a, "urn:example:n")), [])
        r = self.owner_iq(a, "set", "<delete node='urn:example:n'/>")
        self.assertEqual(r.get("type"), "result")
        _, delete = self.expect_event(b, "urn:example:n")
        self.assertEqual(delete.tag, q("delete", NS_EVENT))
        self.assertEqual(cond(self.items(a, "urn:example:n")), ("item-not-found", None))
        r = self.owner_iq(a, "set", "<delete node='urn:example:n'/>")
        self.assertEqual(cond(r), ("item-not-found", None))
        r = self.owner_iq(a, "get", "<default/>")
        x = r.find(q("pubsub", NS_OWNER)).find(q("default", NS_OWNER)).find(q("x", NS_XDATA))
        fields = {f.get("var"): f.findtext(q("value", NS_XDATA)) for f in x}
        self.assertEqual(fields["pubsub#access_model"], "presence")
        self.assertEqual(fields["pubsub#send_last_published_item"], "on_sub_and_presence")


if __name__ == "__main__":
    unittest.main()
