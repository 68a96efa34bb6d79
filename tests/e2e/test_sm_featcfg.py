# SPDX-License-Identifier: MIT
"""Features switched off in <sm><features> (docs/configuration.md): an sm
with several features disabled, driven over the session link as a c2s
would. A disabled feature is missing from disco#info (and only it), its iqs
get service-unavailable, and its hooks do nothing: MAM archives nothing,
carbons copy nothing, vacation sends no auto-reply, the MOTD is not shown,
its ad-hoc commands are not listed. Bad <disable> values stop the sm with
an error naming file, line and key."""

import os
import re
import signal
import subprocess
import unittest
from datetime import datetime, timedelta, timezone

from harness import binary, q, wait_log
from smproto import DOMAIN, NS_CLIENT, NS_STANZAS, SmCase
from test_sm_pep import NS_CAPS, NS_TUNE, PepCase, caps_element, profile, tune

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_VCARD = "vcard-temp"
NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_VACATION = "http://jabber.org/protocol/vacation"
NS_PRIVACY = "jabber:iq:privacy"
NS_BLOCKING = "urn:xmpp:blocking"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PRIVATE = "jabber:iq:private"
NS_LAST = "jabber:iq:last"
NS_CMD = "http://jabber.org/protocol/commands"
NS_ADMIN = "http://jabber.org/protocol/admin"
MESSAGE = q("message", NS_CLIENT)
ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"

DISABLED = ("vcard", "mam", "carbons", "vacation", "motd", "pep", "privacy", "blocking")
ON_SECTION = ("<offline-quota>3</offline-quota><session-grace>2s</session-grace>"
              f"<admin>{ALICE}</admin>")


def features_xml(names):
    inner = "".join(f"<disable>{n}</disable>" for n in names)
    return f"<features>{inner}</features>"


def cond(el):
    if el.get("type") != "error":
        return None
    for c in el.find(q("error", NS_CLIENT)):
        name = c.tag.split("}")[1]
        if c.tag.startswith("{%s}" % NS_STANZAS) and name != "text":
            return name
    return "?"


def stamp(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def restart_sm(case, disabled):
    """case's sm again, with these features disabled (() for all on)."""
    case.sm.stop()
    case.dep.extra = re.sub(r"<features>.*?</features>", "", case.dep.extra)
    case.dep.extra = case.dep.extra.replace("</sm>", features_xml(disabled) + "</sm>", 1)
    case.dep.write_config()
    case.sm = case.dep.start("parley-sm")
    case.wait_sm_bound()


class FeatCfgCase(SmCase):
    SM_SECTION = ON_SECTION + features_xml(DISABLED)

    def restart_sm(self, disabled):
        restart_sm(self, disabled)

    def vars(self, link, to):
        info = link.iq("get", f"<query xmlns='{NS_INFO}'/>", to=to)
        self.assertEqual(info.get("type"), "result")
        return {f.get("var") for f in info.iter(q("feature", NS_INFO))}, info

    def send(self, link, to, body, mid, typ="chat"):
        link.stanza(f"<message xmlns='{NS_CLIENT}' from='{link.jid}' to='{to}' type='{typ}' "
                    f"id='{mid}'><body>{body}</body></message>")


class Disabled(FeatCfgCase):
    def test_disco_lacks_exactly_the_disabled_vars(self):
        a = self.login("alice", "off")
        server_off, _ = self.vars(a, DOMAIN)
        account_off, info = self.vars(a, ALICE)
        identities = {(i.get("category"), i.get("type")) for i in info.iter(q("identity", NS_INFO))}
        self.assertNotIn(("pubsub", "pep"), identities)
        # the same sm with every feature on
        self.restart_sm(())
        a = self.login("alice", "on")
        server_on, _ = self.vars(a, DOMAIN)
        account_on, info = self.vars(a, ALICE)
        identities = {(i.get("category"), i.get("type")) for i in info.iter(q("identity", NS_INFO))}
        self.assertIn(("pubsub", "pep"), identities)
        pep_vars = {v for v in account_on if v == NS_PUBSUB or v.startswith(NS_PUBSUB + "#")}
        self.assertGreater(len(pep_vars), 10)
        gone_server = {NS_VCARD, NS_CARBONS, NS_VACATION, NS_PRIVACY, NS_BLOCKING}
        gone_account = {NS_VCARD, NS_VACATION, NS_MAM, NS_MAM + "#extended", NS_SID} | pep_vars
        self.assertEqual(server_off, server_on - gone_server)
        self.assertEqual(account_off, account_on - gone_account)
        self.assertTrue(gone_server <= server_on and gone_account <= account_on)
        for still in (NS_INFO, NS_ITEMS, NS_PRIVATE, NS_LAST, NS_CMD, "urn:xmpp:ping"):
            self.assertIn(still, server_off)

    def test_disabled_iqs_are_service_unavailable(self):
        a = self.login("alice")
        self.login("bob")
        asks = [
            ("get", f"<vCard xmlns='{NS_VCARD}'/>", None),
            ("get", f"<vCard xmlns='{NS_VCARD}'/>", BOB),
            ("set", f"<query xmlns='{NS_MAM}' queryid='x'/>", None),
            ("set", f"<enable xmlns='{NS_CARBONS}'/>", None),
            ("get", f"<query xmlns='{NS_VACATION}'/>", None),
            ("get", f"<query xmlns='{NS_PRIVACY}'/>", None),
            ("get", f"<blocklist xmlns='{NS_BLOCKING}'/>", None),
            ("set", f"<pubsub xmlns='{NS_PUBSUB}'><publish node='n'><item id='1'>"
                    "<x xmlns='urn:test'/></item></publish></pubsub>", None),
            ("get", f"<pubsub xmlns='{NS_PUBSUB}#owner'><configure node='n'/></pubsub>", None),
        ]
        for typ, payload, to in asks:
            self.assertEqual(cond(a.iq(typ, payload, to=to)), "service-unavailable", payload)
        # features left on answer
        r = a.iq("get", f"<query xmlns='{NS_PRIVATE}'><x xmlns='urn:test'/></query>")
        self.assertEqual(r.get("type"), "result")
        self.assertEqual(a.iq("get", f"<query xmlns='{NS_LAST}'/>", to=DOMAIN).get("type"),
                         "result")

    def test_no_carbons_no_archive(self):
        a1 = self.online("alice", "one", priority=5)
        a2 = self.online("alice", "two", priority=1)
        b = self.online("bob")
        self.send(b, ALICE, "to alice", "c1")
        got = a1.expect(MESSAGE, pred=lambda m: m.get("id") == "c1")
        self.assertIsNone(got.find(q("stanza-id", NS_SID)), "no archive: no stanza-id")
        self.send(a1, BOB, "to bob", "c2")
        b.expect(MESSAGE, pred=lambda m: m.get("id") == "c2")
        a2.expect_none(MESSAGE, wait=1.0)  # neither a received nor a sent copy
        self.assertEqual(self.store.count("archive", ALICE), 0)
        self.assertEqual(self.store.count("archive", BOB), 0)
        # MAM on again: nothing from before, and it does archive now
        self.restart_sm([n for n in DISABLED if n != "mam"])
        a = self.online("alice", "three")
        b = self.online("bob", "again")
        r = a.iq("set", f"<query xmlns='{NS_MAM}' queryid='q1'/>")
        self.assertEqual(r.get("type"), "result")
        a.expect_none(MESSAGE, pred=lambda m: m.find(q("result", NS_MAM)) is not None)
        self.send(b, ALICE, "archived", "c3")
        got = a.expect(MESSAGE, pred=lambda m: m.get("id") == "c3")
        self.assertIsNotNone(got.find(q("stanza-id", NS_SID)))
        self.assertEqual(self.store.count("archive", ALICE), 1)

    def test_carbons_without_mam(self):
        self.restart_sm(("mam",))
        a1 = self.online("alice", "one", priority=5)
        a2 = self.online("alice", "two", priority=1)
        b = self.online("bob")
        self.assertEqual(a2.iq("set", f"<enable xmlns='{NS_CARBONS}'/>").get("type"), "result")
        self.send(b, ALICE, "copied", "k1")
        a1.expect(MESSAGE, pred=lambda m: m.get("id") == "k1")
        cc = a2.expect(MESSAGE, pred=lambda m: m.find(q("received", NS_CARBONS)) is not None)
        self.assertEqual(cc.get("from"), ALICE)
        self.assertEqual(list(cc.iter(q("stanza-id", NS_SID))), [])
        self.assertEqual(self.store.count("archive", ALICE), 0)

    def test_no_vacation_reply(self):
        # set while the feature is on, then switched off
        self.restart_sm([n for n in DISABLED if n != "vacation"])
        a = self.login("alice")
        now = datetime.now(timezone.utc)
        r = a.iq("set", f"<query xmlns='{NS_VACATION}'><start>"
                        f"{stamp(now - timedelta(hours=1))}</start><end/>"
                        "<message>Away</message></query>")
        self.assertEqual(r.get("type"), "result")
        self.restart_sm(DISABLED)
        a = self.online("alice", "back")
        b = self.online("bob")
        self.send(b, ALICE, "there?", "v1")
        a.expect(MESSAGE, pred=lambda m: m.get("id") == "v1")
        b.expect_none(MESSAGE, wait=1.0)
        # on again: the same settings answer (so the silence above was the switch)
        self.restart_sm(())
        a = self.online("alice", "later")
        b = self.online("bob", "later")
        self.send(b, ALICE, "there now?", "v2")
        a.expect(MESSAGE, pred=lambda m: m.get("id") == "v2")
        reply = b.expect(MESSAGE, pred=lambda m: m.get("from") == ALICE)
        self.assertIn("Away", reply.findtext(q("body", NS_CLIENT)))

    def test_no_motd_and_its_commands_unlisted(self):
        self.restart_sm([n for n in DISABLED if n != "motd"])
        a = self.online("alice")
        a.stanza(f"<message xmlns='{NS_CLIENT}' from='{a.jid}' to='{DOMAIN}/announce/motd' "
                 "id='m'><body>Read me</body></message>")
        a.expect(MESSAGE, pred=lambda m: m.get("from") == DOMAIN)
        self.restart_sm(DISABLED)
        b = self.online("bob")
        b.expect_none(MESSAGE, wait=1.0)  # the stored MOTD is not shown
        a = self.online("alice", "admin")
        items = a.iq("get", f"<query xmlns='{NS_ITEMS}' node='{NS_CMD}'/>", to=DOMAIN)
        nodes = {i.get("node").split("#", 1)[1] for i in items.iter(q("item", NS_ITEMS))}
        self.assertIn("add-user", nodes)
        self.assertIn("get-online-users-num", nodes)
        for gone in ("announce", "set-motd", "edit-motd", "delete-motd"):
            self.assertNotIn(gone, nodes)
            r = a.iq("set", f"<command xmlns='{NS_CMD}' node='{NS_ADMIN}#{gone}'/>", to=DOMAIN)
            self.assertEqual(cond(r), "item-not-found", gone)
        # an announcement to the online users reaches nobody
        a.stanza(f"<message xmlns='{NS_CLIENT}' from='{a.jid}' to='{DOMAIN}/announce/online' "
                 "id='o'><body>Hello all</body></message>")
        b.expect_none(MESSAGE, wait=1.0)

    def test_no_avatar_hash(self):
        p = self.presence_after_restart(DISABLED)
        self.assertIsNone(p.find(q("x", "vcard-temp:x:update")), "vcard off: no hash stamped")

    def presence_after_restart(self, off):
        """Alice sets a vCard with a photo with every feature on; the sm
        restarts with off disabled; her directed presence as bob gets it."""
        self.restart_sm(())
        a = self.login("alice")
        photo = "<PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO>"
        r = a.iq("set", f"<vCard xmlns='{NS_VCARD}'><FN>A</FN>{photo}</vCard>")
        self.assertEqual(r.get("type"), "result")
        self.restart_sm(off)
        b = self.online("bob")
        a = self.online("alice", "again")
        a.stanza(f"<presence xmlns='{NS_CLIENT}' from='{a.jid}' to='{b.jid}'/>")
        return b.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("from") == a.jid)

    def test_adhoc_off(self):
        self.restart_sm(DISABLED + ("adhoc",))
        a = self.login("alice")
        server, _ = self.vars(a, DOMAIN)
        self.assertNotIn(NS_CMD, server)
        r = a.iq("get", f"<query xmlns='{NS_ITEMS}' node='{NS_CMD}'/>", to=DOMAIN)
        self.assertEqual(cond(r), "item-not-found")
        r = a.iq("set", f"<command xmlns='{NS_CMD}' node='{NS_ADMIN}#add-user'/>", to=DOMAIN)
        self.assertEqual(cond(r), "service-unavailable")

    def test_sighup_keeps_the_features_until_restart(self):
        a = self.login("alice")
        self.dep.extra = re.sub(r"<features>.*?</features>", "", self.dep.extra)
        self.dep.write_config()
        self.sm.signal(signal.SIGHUP)
        wait_log(self.sm, r"reload: this daemon applies configuration only at start")
        self.assertEqual(cond(a.iq("get", f"<vCard xmlns='{NS_VCARD}'/>")), "service-unavailable")


class CapsOff(PepCase):
    """PEP without entity capabilities: publishing works; the server asks
    no client for its caps (so only explicit subscribers are notified)."""

    SM_SECTION = ON_SECTION + features_xml(["caps"])

    def test_pep_works_without_caps(self):
        a = self.online("alice")
        b = self.login("bob")
        _, _, ver = profile("r", notify=[NS_TUNE])
        b.stanza(f"<presence xmlns='{NS_CLIENT}' from='{b.jid}'>{caps_element(ver)}</presence>")
        b.expect_none(q("iq", NS_CLIENT), wait=1.0)  # no disco#info query for the caps
        r = self.publish(a, NS_TUNE, tune("Song"))
        self.assertEqual(r.get("type"), "result")
        got = self.item_list(self.items(a, NS_TUNE))
        self.assertEqual(len(got), 1)
        info = a.iq("get", f"<query xmlns='{NS_INFO}'/>", to=ALICE)
        self.assertIn(NS_PUBSUB, {f.get("var") for f in info.iter(q("feature", NS_INFO))})
        self.assertNotIn(NS_CAPS, {f.get("var") for f in info.iter(q("feature", NS_INFO))})


class PepOff(PepCase):
    """Entity capabilities without PEP: the caps are still verified and
    cached, and learning them (which would send PEP's last items) is safe."""

    SM_SECTION = ON_SECTION + features_xml(["pep"])

    def test_caps_without_pep(self):
        a = self.caps_online("alice", "one", notify=[NS_TUNE])
        self.caps_online("bob", "two", notify=[NS_TUNE])  # the same kind of client: cached
        self.sync(a)
        r = self.publish(a, NS_TUNE, tune("Song"))
        self.assertEqual(r.get("type"), "error")
        self.assertEqual(r.find(q("error", NS_CLIENT))[0].tag, q("service-unavailable", NS_STANZAS))

    def test_nodes_hidden_while_off(self):
        restart_sm(self, ())
        a = self.login("alice")
        self.published_id(self.publish(a, NS_TUNE, tune("Song"), item_id="t1"))
        for ns in (NS_INFO, NS_ITEMS):
            r = a.iq("get", f"<query xmlns='{ns}' node='{NS_TUNE}'/>", to=ALICE)
            self.assertEqual(r.get("type"), "result")
        restart_sm(self, ["pep"])
        a = self.login("alice", "again")
        for ns in (NS_INFO, NS_ITEMS):
            r = a.iq("get", f"<query xmlns='{ns}' node='{NS_TUNE}'/>", to=ALICE)
            self.assertEqual(r.find(q("error", NS_CLIENT))[0].tag, q("item-not-found", NS_STANZAS))


    def test_no_events_while_off(self):
        b2 = self.last_item_after_restart(("pep",))
        # with PEP on, b2's presence would bring it alice's last tune
        b2.expect_none(q("message", NS_CLIENT), wait=1.0)

    def last_item_after_restart(self, off):
        """Alice publishes a tune to bob with PEP on; the sm restarts with
        off disabled and bob comes online with another resource."""
        restart_sm(self, ())
        a = self.caps_online("alice", "desk", notify=[NS_TUNE])
        b = self.caps_online("bob", "desk", notify=[NS_TUNE])
        self.mutual(a, b)
        self.published_id(self.publish(a, NS_TUNE, tune("Song"), item_id="t1"))
        self.expect_event(b, NS_TUNE)
        restart_sm(self, off)
        self.caps_online("alice", "phone", notify=[NS_TUNE])
        return self.caps_online("bob", "phone", notify=[NS_TUNE])


class Errors(FeatCfgCase):
    """parley-sm -t on bad <disable> values: exit 78, one line naming the
    file, the line and the key."""

    SM_SECTION = ON_SECTION

    def check(self, features, want):
        path = os.path.join(self.dep.dir, "bad.xml")
        with open(self.dep.config) as f:
            text = f.read()
        text = text.replace("</sm>", "\n" + features + "</sm>", 1)
        line = text[:text.index("<features>")].count("\n") + 1
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([binary("parley-sm"), "-t", "-c", path], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(want.format(path=path, line=line).replace(f":{line}+1:", f":{line + 1}:"),
                      r.stderr)

    def test_unknown_name(self):
        self.check("<features><disable>vcrad</disable></features>",
                   '{path}:{line}: <sm><features><disable>: "vcrad": unknown feature; '
                   "one of: active, adhoc, basic, blocking, caps, carbons, last, mam, motd, pep, "
                   "privacy, private, vacation, vcard")

    def test_core_features(self):
        for core in ("roster", "presence", "subscription", "disco", "offline"):
            self.check(f"<features><disable>{core}</disable></features>",
                       f'{{path}}:{{line}}: <sm><features><disable>: "{core}": core '
                       "(RFC 6120/6121), always on")

    def test_part_of_pep(self):
        self.check("<features><disable>pep_publish</disable></features>",
                   '{path}:{line}: <sm><features><disable>: "pep_publish": a part of pep: '
                   "disable pep")

    def test_line_of_the_bad_value(self):
        # the bad value is on the line below <features>
        self.check("<features><disable>vcard</disable>\n<disable>bogus</disable></features>",
                   '{path}:{line}+1: <sm><features><disable>: "bogus": unknown feature')

    def test_blocking_needs_privacy(self):
        self.check("<features><disable>privacy</disable></features>",
                   '{path}:{line}: <sm><features><disable>: "privacy": blocking, which is on, '
                   "needs it: disable blocking too, or keep privacy")
        # whatever the order of the values
        self.check("<features><disable>privacy</disable><disable>vcard</disable></features>",
                   '{path}:{line}: <sm><features><disable>: "privacy": blocking, which is on')
        # both off is fine, and so is blocking alone
        for ok in (("privacy", "blocking"), ("blocking",)):
            path = os.path.join(self.dep.dir, "ok.xml")
            with open(self.dep.config) as f:
                text = f.read().replace("</sm>", features_xml(ok) + "</sm>", 1)
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run([binary("parley-sm"), "-t", "-c", path], capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            for n in ok:
                self.assertIn(f"<disable>{n}</disable>", r.stdout)


if __name__ == "__main__":
    unittest.main()
