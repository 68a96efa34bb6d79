# SPDX-License-Identifier: MIT
"""The sm's IM features at the protocol level (raw XML over the c2s side of
the session link, docs/protocol.md §8): vcard-temp with avatar hashes
(XEP-0054, XEP-0153), private XML storage (XEP-0049), last activity
(XEP-0012), first activation, announcements and the MOTD, and vacation
messages. Each success path and each error the specifications name."""

import base64
import hashlib
import time
import unittest
from datetime import datetime, timedelta, timezone

from harness import parleyctl, q
from smproto import DOMAIN, NS_CLIENT, NS_SESSION, NS_STANZAS, SmCase

NS_VCARD = "vcard-temp"
NS_UPDATE = "vcard-temp:x:update"
NS_PRIVATE = "jabber:iq:private"
NS_LAST = "jabber:iq:last"
NS_VACATION = "http://jabber.org/protocol/vacation"
NS_DELAY = "urn:xmpp:delay"
NS_INFO = "http://jabber.org/protocol/disco#info"

MAX_VALUE = 4096  # <storage><max-value> of these tests: larger values are refused

# a tiny PNG, base64 with line breaks as clients send it (XEP-0153 §5.5)
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
PNG_B64 = base64.encodebytes(PNG).decode()
PNG_SHA1 = hashlib.sha1(PNG).hexdigest()


def cond(el):
    """The stanza error condition of el, or None for a non-error."""
    if el.get("type") != "error":
        return None
    err = el.find(q("error", NS_CLIENT))
    for c in err:
        name = c.tag.split("}")[1]
        if c.tag.startswith("{%s}" % NS_STANZAS) and name != "text":
            return name
    return "?"


def stamp(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class FeatureCase(SmCase):
    SM_SECTION = ("<offline-quota>3</offline-quota><session-grace>2s</session-grace>"
                  f"<admin>alice@{DOMAIN}</admin>")
    STORAGE_EXTRA = f"<max-value>{MAX_VALUE}</max-value>"

    def restart_sm(self):
        self.sm.stop()
        self.sm = self.dep.start("parley-sm")
        self.wait_sm_bound()

    def info(self, user):
        """parleyctl user info, as a dict."""
        out = parleyctl(self.dep.config, "user", "info", f"{user}@{DOMAIN}").stdout
        return dict(line.split(": ", 1) for line in out.splitlines())

    def follow(self, follower, followed):
        """follower subscribes to followed's presence; followed approves."""
        user = followed.jid.split("/")[0]
        follower.stanza(f"<presence xmlns='{NS_CLIENT}' from='{follower.jid}' to='{user}' "
                        "type='subscribe'/>")
        followed.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribe")
        followed.stanza(f"<presence xmlns='{NS_CLIENT}' from='{followed.jid}' "
                        f"to='{follower.jid.split('/')[0]}' type='subscribed'/>")
        follower.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("type") == "subscribed")

    def message(self, link, to, body="hi", typ="chat", iid="m"):
        b = f"<body>{body}</body>" if body is not None else ""
        link.stanza(f"<message xmlns='{NS_CLIENT}' from='{link.jid}' to='{to}' type='{typ}' "
                    f"id='{iid}'>{b}</message>")


class VCard(FeatureCase):
    def vcard(self, fn, photo=True):
        p = (f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{PNG_B64}</BINVAL></PHOTO>"
             if photo else "")
        return f"<vCard xmlns='{NS_VCARD}'><FN>{fn}</FN>{p}</vCard>"

    def test_own_vcard_empty_set_get_replace(self):
        a = self.login("alice")
        r = a.iq("get", f"<vCard xmlns='{NS_VCARD}'/>")
        self.assertEqual(r.get("type"), "result")
        v = r.find(q("vCard", NS_VCARD))
        self.assertIsNotNone(v, "no vCard: an empty <vCard/> (XEP-0054 §3.1)")
        self.assertEqual(len(v), 0)
        self.assertEqual(a.iq("set", self.vcard("Alice")).get("type"), "result")
        r = a.iq("get", f"<vCard xmlns='{NS_VCARD}'/>")
        self.assertEqual(r.find(f"{q('vCard', NS_VCARD)}/{q('FN', NS_VCARD)}").text, "Alice")
        # to one's own bare JID is the same as no 'to'; a set replaces the whole vCard
        self.assertEqual(a.iq("set", self.vcard("Alice L.", photo=False),
                              to=f"alice@{DOMAIN}").get("type"), "result")
        r = a.iq("get", f"<vCard xmlns='{NS_VCARD}'/>", to=f"alice@{DOMAIN}")
        v = r.find(q("vCard", NS_VCARD))
        self.assertEqual(v.find(q("FN", NS_VCARD)).text, "Alice L.")
        self.assertIsNone(v.find(q("PHOTO", NS_VCARD)))

    def test_other_users_vcard(self):
        a = self.login("alice")
        b = self.login("bob")
        a.iq("set", self.vcard("Alice"))
        r = b.iq("get", f"<vCard xmlns='{NS_VCARD}'/>", to=f"alice@{DOMAIN}")
        self.assertEqual(r.get("from"), f"alice@{DOMAIN}")
        self.assertEqual(r.find(f"{q('vCard', NS_VCARD)}/{q('FN', NS_VCARD)}").text, "Alice")
        # no vCard and no account: the same answer (XEP-0054 §3.3)
        self.assertEqual(cond(b.iq("get", f"<vCard xmlns='{NS_VCARD}'/>",
                                   to=f"carol@{DOMAIN}")), "service-unavailable")
        self.assertEqual(cond(b.iq("get", f"<vCard xmlns='{NS_VCARD}'/>",
                                   to=f"ghost@{DOMAIN}")), "service-unavailable")
        # nobody changes another's vCard (XEP-0054 §3.2)
        self.assertEqual(cond(b.iq("set", self.vcard("Mallory"), to=f"alice@{DOMAIN}")),
                         "forbidden")
        r = b.iq("get", f"<vCard xmlns='{NS_VCARD}'/>", to=f"alice@{DOMAIN}")
        self.assertEqual(r.find(f"{q('vCard', NS_VCARD)}/{q('FN', NS_VCARD)}").text, "Alice")

    def test_refused_vcards(self):
        a = self.login("alice")
        bad = f"<vCard xmlns='{NS_VCARD}'><PHOTO><BINVAL>***not base64***</BINVAL></PHOTO></vCard>"
        self.assertEqual(cond(a.iq("set", bad)), "bad-request")
        big = f"<vCard xmlns='{NS_VCARD}'><DESC>{'x' * (MAX_VALUE + 10)}</DESC></vCard>"
        self.assertEqual(cond(a.iq("set", big)), "not-acceptable")
        self.assertEqual(cond(a.iq("get", f"<query xmlns='{NS_VCARD}'/>")), "bad-request")
        # nothing was stored
        v = a.iq("get", f"<vCard xmlns='{NS_VCARD}'/>").find(q("vCard", NS_VCARD))
        self.assertEqual(len(v), 0)

    def photo_of(self, pres):
        x = pres.find(q("x", NS_UPDATE))
        if x is None:
            return None
        p = x.find(q("photo", NS_UPDATE))
        return p.text or "" if p is not None else None

    def test_avatar_hash_in_presence(self):
        a = self.online("alice")
        b = self.online("bob")
        self.follow(b, a)
        b.expect(q("presence", NS_CLIENT), pred=lambda e: e.get("from") == a.jid)
        self.assertEqual(a.iq("set", self.vcard("Alice")).get("type"), "result")
        a.stanza(f"<presence xmlns='{NS_CLIENT}' from='{a.jid}'><show>away</show></presence>")
        pres = b.expect(q("presence", NS_CLIENT),
                        pred=lambda e: e.find(q("show", NS_CLIENT)) is not None)
        self.assertEqual(self.photo_of(pres), PNG_SHA1)
        # the client's own update element is left as it is
        a.stanza(f"<presence xmlns='{NS_CLIENT}' from='{a.jid}'><show>xa</show>"
                 f"<x xmlns='{NS_UPDATE}'><photo>0123abcd</photo></x></presence>")
        pres = b.expect(q("presence", NS_CLIENT),
                        pred=lambda e: e.findtext(q("show", NS_CLIENT)) == "xa")
        self.assertEqual(self.photo_of(pres), "0123abcd")
        self.assertEqual(len(pres.findall(q("x", NS_UPDATE))), 1)
        # a vCard without a photo: an empty <photo/>
        a.iq("set", self.vcard("Alice", photo=False))
        a.stanza(f"<presence xmlns='{NS_CLIENT}' from='{a.jid}'><show>dnd</show></presence>")
        pres = b.expect(q("presence", NS_CLIENT),
                        pred=lambda e: e.findtext(q("show", NS_CLIENT)) == "dnd")
        self.assertEqual(self.photo_of(pres), "")

    def test_avatar_hash_survives_sm_restart(self):
        a = self.online("alice")
        b = self.online("bob")
        self.follow(b, a)
        a.iq("set", self.vcard("Alice"))
        self.restart_sm()
        b2 = self.online("bob", "again")
        a2 = self.online("alice", "again")
        # (when the store answers after alice's presence went out, the sm
        # sends her presence once more with the hash)
        b2.expect(q("presence", NS_CLIENT),
                  pred=lambda e: e.get("from") == a2.jid and self.photo_of(e) == PNG_SHA1)

    def test_no_vcard_no_update_element(self):
        a = self.online("alice")
        b = self.online("bob")
        self.follow(b, a)
        a.stanza(f"<presence xmlns='{NS_CLIENT}' from='{a.jid}'><show>away</show></presence>")
        pres = b.expect(q("presence", NS_CLIENT),
                        pred=lambda e: e.find(q("show", NS_CLIENT)) is not None)
        self.assertIsNone(pres.find(q("x", NS_UPDATE)))


class Private(FeatureCase):
    def test_set_get_replace(self):
        a = self.login("alice")
        r = a.iq("set", f"<query xmlns='{NS_PRIVATE}'><prefs xmlns='exodus:prefs'>"
                        "<nick>Hamlet</nick></prefs></query>")
        self.assertEqual(r.get("type"), "result")
        r = a.iq("get", f"<query xmlns='{NS_PRIVATE}'><prefs xmlns='exodus:prefs'/></query>")
        self.assertEqual(r.findtext(f"{q('query', NS_PRIVATE)}/{q('prefs', 'exodus:prefs')}/"
                                    f"{q('nick', 'exodus:prefs')}"), "Hamlet")
        # nothing stored in a namespace: the empty element comes back
        r = a.iq("get", f"<query xmlns='{NS_PRIVATE}'><storage xmlns='storage:bookmarks'/>"
                        "</query>")
        s = r.find(f"{q('query', NS_PRIVATE)}/{q('storage', 'storage:bookmarks')}")
        self.assertIsNotNone(s)
        self.assertEqual(len(s), 0)
        # several elements: one slot per namespace, several elements in one slot
        a.iq("set", f"<query xmlns='{NS_PRIVATE}'><prefs xmlns='exodus:prefs'><nick>A</nick>"
                    "</prefs><prefs xmlns='exodus:prefs'><nick>B</nick></prefs>"
                    "<storage xmlns='storage:bookmarks'><url name='x' url='http://x/'/>"
                    "</storage></query>")
        r = a.iq("get", f"<query xmlns='{NS_PRIVATE}'><prefs xmlns='exodus:prefs'/></query>")
        nicks = [n.text for n in r.iter(q("nick", "exodus:prefs"))]
        self.assertEqual(nicks, ["A", "B"])
        r = a.iq("get", f"<query xmlns='{NS_PRIVATE}'><storage xmlns='storage:bookmarks'/>"
                        "</query>")
        self.assertEqual(len(list(r.iter(q("url", "storage:bookmarks")))), 1)

    def test_survives_sm_restart(self):
        a = self.login("alice")
        a.iq("set", f"<query xmlns='{NS_PRIVATE}'><p xmlns='urn:example:p'>kept</p></query>")
        self.restart_sm()
        a2 = self.login("alice", "again")
        r = a2.iq("get", f"<query xmlns='{NS_PRIVATE}'><p xmlns='urn:example:p'/></query>")
        self.assertEqual(r.findtext(f"{q('query', NS_PRIVATE)}/{q('p', 'urn:example:p')}"),
                         "kept")

    def test_errors(self):
        a = self.login("alice")
        # another user's storage (XEP-0049 §3)
        for typ in ("get", "set"):
            r = a.iq(typ, f"<query xmlns='{NS_PRIVATE}'><p xmlns='urn:example:p'/></query>",
                     to=f"bob@{DOMAIN}")
            self.assertEqual(cond(r), "forbidden")
        # reserved namespaces
        for ns in ("vcard-temp", "jabber:iq:roster", "http://jabber.org/protocol/muc"):
            for typ in ("get", "set"):
                r = a.iq(typ, f"<query xmlns='{NS_PRIVATE}'><x xmlns='{ns}'/></query>")
                self.assertEqual(cond(r), "not-acceptable", (ns, typ))
        # an element of the private namespace itself is reserved too
        r = a.iq("set", f"<query xmlns='{NS_PRIVATE}'><x/></query>")
        self.assertEqual(cond(r), "not-acceptable")
        # wrong shapes
        self.assertEqual(cond(a.iq("get", f"<query xmlns='{NS_PRIVATE}'/>")), "bad-request")
        self.assertEqual(cond(a.iq("set", f"<query xmlns='{NS_PRIVATE}'/>")), "bad-request")
        r = a.iq("get", f"<query xmlns='{NS_PRIVATE}'><a xmlns='urn:a'/><b xmlns='urn:b'/>"
                        "</query>")
        self.assertEqual(cond(r), "bad-request")
        self.assertEqual(cond(a.iq("get", f"<other xmlns='{NS_PRIVATE}'/>")), "bad-request")
        # too large for the store
        r = a.iq("set", f"<query xmlns='{NS_PRIVATE}'><p xmlns='urn:example:p'>"
                        f"{'y' * (MAX_VALUE + 10)}</p></query>")
        self.assertEqual(cond(r), "not-acceptable")


class LastActivity(FeatureCase):
    def last(self, link, to=None):
        return link.iq("get", f"<query xmlns='{NS_LAST}'/>", to=to)

    def test_server_uptime_and_own_account(self):
        a = self.login("alice")
        r = self.last(a, DOMAIN)
        self.assertEqual(r.get("type"), "result")
        qe = r.find(q("query", NS_LAST))
        self.assertGreaterEqual(int(qe.get("seconds")), 0)
        self.assertLess(int(qe.get("seconds")), 120)
        self.assertFalse(qe.text)
        r = self.last(a)
        self.assertEqual(r.find(q("query", NS_LAST)).get("seconds"), "0")
        self.assertEqual(cond(a.iq("set", f"<query xmlns='{NS_LAST}'/>", to=DOMAIN)),
                         "bad-request")

    def test_contact_online_then_logged_out_with_status(self):
        a = self.online("alice")
        b = self.online("bob")
        self.follow(b, a)
        r = self.last(b, f"alice@{DOMAIN}")
        self.assertEqual(r.find(q("query", NS_LAST)).get("seconds"), "0")
        a.stanza(f"<presence xmlns='{NS_CLIENT}' from='{a.jid}' type='unavailable'>"
                 "<status>Heading Home</status></presence>")
        a.send(f"<end xmlns='{NS_SESSION}'/>")
        time.sleep(1.2)
        r = self.last(b, f"alice@{DOMAIN}")
        qe = r.find(q("query", NS_LAST))
        self.assertEqual(r.get("type"), "result")
        self.assertGreaterEqual(int(qe.get("seconds")), 1)
        self.assertLess(int(qe.get("seconds")), 60)
        self.assertEqual(qe.text, "Heading Home")
        info = self.info("alice")
        self.assertEqual(info["last-status"], "Heading Home")
        logout = datetime.fromisoformat(info["last-logout"].replace("Z", "+00:00"))
        self.assertLess(abs((datetime.now(timezone.utc) - logout).total_seconds()), 60)
        # kept in the store: the same after an sm restart
        self.restart_sm()
        b2 = self.login("bob", "again")
        qe = self.last(b2, f"alice@{DOMAIN}").find(q("query", NS_LAST))
        self.assertEqual(qe.text, "Heading Home")

    def test_not_subscribed_is_forbidden(self):
        a = self.online("alice")
        c = self.online("carol")
        self.assertEqual(cond(self.last(c, f"alice@{DOMAIN}")), "forbidden")
        # a full JID: not delivered either (XEP-0012 §5)
        self.assertEqual(cond(self.last(c, a.jid)), "forbidden")
        a.expect_none(q("iq", NS_CLIENT))
        # no such account
        self.assertEqual(cond(self.last(c, f"ghost@{DOMAIN}")), "service-unavailable")

    def test_full_jid_delivered_to_a_contact(self):
        a = self.online("alice")
        b = self.online("bob")
        self.follow(b, a)
        b.stanza(f"<iq xmlns='{NS_CLIENT}' type='get' id='l1' from='{b.jid}' to='{a.jid}'>"
                 f"<query xmlns='{NS_LAST}'/></iq>")
        got = a.expect(q("iq", NS_CLIENT), pred=lambda e: e.get("id") == "l1")
        self.assertEqual(got.get("from"), b.jid)


class Active(FeatureCase):
    def rows(self, want=1):
        """The active table once it has want rows (the sm writes it after
        the session has started)."""
        deadline = time.time() + 10
        while True:
            rows = [(r["owner"], int(r["time"]))
                    for r in self.store.sql("SELECT owner, time FROM active")]
            if len(rows) >= want or time.time() > deadline:
                return rows
            time.sleep(0.05)

    def test_first_activation_recorded_once(self):
        a = self.login("alice")
        rows = self.rows()
        self.assertEqual([r[0] for r in rows], [f"alice@{DOMAIN}"])
        a.send(f"<end xmlns='{NS_SESSION}'/>")
        a2 = self.login("alice", "again")
        b = self.login("bob")
        again = self.rows(2)
        self.assertEqual(sorted(again)[0], rows[0], "the first time is kept")
        self.assertEqual(sorted(r[0] for r in again), [f"alice@{DOMAIN}", f"bob@{DOMAIN}"])
        # parleyctl shows it (UTC, to the second)
        info = self.info("alice")
        first = datetime.fromtimestamp(rows[0][1] // 1000000, timezone.utc)
        self.assertEqual(info["first-activation"], stamp(first))
        self.assertGreaterEqual(info["last-logout"], info["first-activation"])
        self.assertEqual(self.info("bob")["last-logout"], "never")  # still online
        self.assertEqual(self.info("carol")["first-activation"], "never")
        a2.send(f"<end xmlns='{NS_SESSION}'/>")
        b.send(f"<end xmlns='{NS_SESSION}'/>")


class Announce(FeatureCase):
    def announce(self, link, what, body="Maintenance at noon", subject=None, iid="an"):
        s = f"<subject>{subject}</subject>" if subject else ""
        b = f"<body>{body}</body>" if body else ""
        link.stanza(f"<message xmlns='{NS_CLIENT}' from='{link.jid}' "
                    f"to='{DOMAIN}/announce/{what}' id='{iid}'>{s}{b}</message>")

    def from_domain(self, e):
        return e.get("from") == DOMAIN and e.get("type") != "error"

    def test_only_admins(self):
        b = self.online("bob")
        for what in ("online", "motd", "motd/update", "motd/delete"):
            self.announce(b, what, iid=what)
            err = b.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == what)
            self.assertEqual(cond(err), "forbidden", what)
        c = self.online("carol")
        c.expect_none(q("message", NS_CLIENT))

    def test_online_announcement(self):
        a = self.online("alice")
        b = self.online("bob")
        c = self.login("carol")  # a session without presence: not "online"
        self.announce(a, "online", subject="Notice")
        m = b.expect(q("message", NS_CLIENT), pred=self.from_domain)
        self.assertEqual(m.findtext(q("body", NS_CLIENT)), "Maintenance at noon")
        self.assertEqual(m.findtext(q("subject", NS_CLIENT)), "Notice")
        self.assertEqual(m.get("to"), b.jid)
        a.expect(q("message", NS_CLIENT), pred=self.from_domain)
        c.expect_none(q("message", NS_CLIENT))
        # not an MOTD: nobody sees it at login
        c2 = self.online("carol", "later")
        c2.expect_none(q("message", NS_CLIENT), wait=1.0)
        # unknown announce resource
        self.announce(a, "nothing", iid="x")
        err = a.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "x")
        self.assertEqual(cond(err), "service-unavailable")
        # no body, no subject
        self.announce(a, "online", body=None, iid="empty")
        err = a.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "empty")
        self.assertEqual(cond(err), "bad-request")

    def test_motd_sent_now_and_once_at_login(self):
        a = self.online("alice")
        b = self.online("bob")
        self.announce(a, "motd", body="Welcome back")
        m = b.expect(q("message", NS_CLIENT), pred=self.from_domain)
        self.assertEqual(m.findtext(q("body", NS_CLIENT)), "Welcome back")
        # carol was offline: she gets it at her initial presence, stamped
        c = self.online("carol")
        m = c.expect(q("message", NS_CLIENT), pred=self.from_domain)
        self.assertEqual(m.findtext(q("body", NS_CLIENT)), "Welcome back")
        self.assertEqual(m.get("to"), c.jid)
        self.assertEqual(m.find(q("delay", NS_DELAY)).get("from"), DOMAIN)
        # and never again, nor does bob, who saw it live
        c.send(f"<end xmlns='{NS_SESSION}'/>")
        c2 = self.online("carol", "again")
        b2 = self.online("bob", "again")
        c2.expect_none(q("message", NS_CLIENT), wait=1.0)
        b2.expect_none(q("message", NS_CLIENT), wait=0.2)

    def test_motd_update_and_delete(self):
        a = self.online("alice")
        b = self.online("bob")
        self.announce(a, "motd/update", body="Read the rules")
        b.expect_none(q("message", NS_CLIENT), wait=1.0)
        c = self.online("carol")
        m = c.expect(q("message", NS_CLIENT), pred=self.from_domain)
        self.assertEqual(m.findtext(q("body", NS_CLIENT)), "Read the rules")
        # a new MOTD is shown again to who saw the old one; it survives a restart
        self.announce(a, "motd/update", body="New rules")
        time.sleep(0.3)
        self.restart_sm()
        c2 = self.online("carol", "again")
        m = c2.expect(q("message", NS_CLIENT), pred=self.from_domain)
        self.assertEqual(m.findtext(q("body", NS_CLIENT)), "New rules")
        a2 = self.online("alice", "again")
        a2.expect(q("message", NS_CLIENT), pred=self.from_domain)
        self.announce(a2, "motd/delete", body=None)
        time.sleep(0.3)
        b2 = self.online("bob", "again")
        b2.expect_none(q("message", NS_CLIENT), wait=1.0)


class Vacation(FeatureCase):
    def settings(self, start, end, message="Away until Monday"):
        s = stamp(start) if start else ""
        e = stamp(end) if end else ""
        return (f"<query xmlns='{NS_VACATION}'><start>{s}</start><end>{e}</end>"
                f"<message>{message}</message></query>")

    def now(self):
        return datetime.now(timezone.utc).replace(microsecond=0)

    def is_reply(self, e):
        return e.get("from") == f"alice@{DOMAIN}" and e.get("type") != "error"

    def test_get_set_delete(self):
        a = self.login("alice")
        r = a.iq("get", f"<query xmlns='{NS_VACATION}'/>")
        self.assertEqual(r.get("type"), "result")
        self.assertEqual(len(r.find(q("query", NS_VACATION))), 0)
        start, end = self.now() - timedelta(hours=1), self.now() + timedelta(days=3)
        self.assertEqual(a.iq("set", self.settings(start, end)).get("type"), "result")
        qe = a.iq("get", f"<query xmlns='{NS_VACATION}'/>").find(q("query", NS_VACATION))
        got = {c.tag.split("}")[1]: c.text for c in qe}
        self.assertEqual(got["message"], "Away until Monday")
        self.assertEqual(datetime.fromisoformat(got["start"].replace("Z", "+00:00")), start)
        self.assertEqual(datetime.fromisoformat(got["end"].replace("Z", "+00:00")), end)
        # time zones are converted; open ends are empty
        a.iq("set", f"<query xmlns='{NS_VACATION}'><start>2030-01-01T12:00:00+02:00</start>"
                    "<end/><message>x</message></query>")
        qe = a.iq("get", f"<query xmlns='{NS_VACATION}'/>").find(q("query", NS_VACATION))
        self.assertEqual(qe.findtext(q("start", NS_VACATION)), "2030-01-01T10:00:00.000Z")
        self.assertFalse(qe.findtext(q("end", NS_VACATION)))
        self.assertEqual(a.iq("set", f"<query xmlns='{NS_VACATION}'/>").get("type"), "result")
        r = a.iq("get", f"<query xmlns='{NS_VACATION}'/>")
        self.assertEqual(len(r.find(q("query", NS_VACATION))), 0)

    def test_errors(self):
        a = self.login("alice")
        now = self.now()
        bad = [
            f"<query xmlns='{NS_VACATION}'><start>tomorrow</start><message>m</message></query>",
            f"<query xmlns='{NS_VACATION}'><end>2030-13-01T00:00:00Z</end>"
            "<message>m</message></query>",
            f"<query xmlns='{NS_VACATION}'><end>2030-01-01T00:00:00</end>"
            "<message>m</message></query>",
            self.settings(now + timedelta(days=2), now + timedelta(days=1)),
            f"<query xmlns='{NS_VACATION}'><start/><end/></query>",
        ]
        for payload in bad:
            self.assertEqual(cond(a.iq("set", payload)), "bad-request", payload)
        r = a.iq("get", f"<query xmlns='{NS_VACATION}'/>", to=f"bob@{DOMAIN}")
        self.assertEqual(cond(r), "forbidden")
        r = a.iq("set", self.settings(None, None, "z" * (MAX_VALUE + 10)))
        self.assertEqual(cond(r), "not-acceptable")

    def test_one_reply_per_sender_and_delivery(self):
        a = self.online("alice")
        b = self.online("bob")
        c = self.online("carol")
        a.iq("set", self.settings(self.now() - timedelta(minutes=5), None))
        self.message(b, f"alice@{DOMAIN}", "are you there?", iid="b1")
        got = a.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "b1")
        self.assertEqual(got.findtext(q("body", NS_CLIENT)), "are you there?")
        r = b.expect(q("message", NS_CLIENT), pred=self.is_reply)
        self.assertEqual((r.get("type"), r.findtext(q("body", NS_CLIENT))),
                         ("chat", "Away until Monday"))
        self.assertEqual(r.get("to"), b.jid)
        # once per sender, whatever resource
        self.message(b, f"alice@{DOMAIN}", "hello?", iid="b2")
        a.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "b2")
        b.expect_none(q("message", NS_CLIENT), pred=self.is_reply)
        # another sender, a normal message: a reply with a subject
        self.message(c, f"alice@{DOMAIN}", "re: report", typ="normal", iid="c1")
        r = c.expect(q("message", NS_CLIENT), pred=self.is_reply)
        self.assertEqual(r.findtext(q("subject", NS_CLIENT)), "Automated reply")
        # a message without a body (a chat state) or a headline gets none
        c.stanza(f"<message xmlns='{NS_CLIENT}' from='{c.jid}' to='alice@{DOMAIN}' type='chat'>"
                 "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        self.message(c, f"alice@{DOMAIN}", "news", typ="headline", iid="h")
        c.expect_none(q("message", NS_CLIENT), pred=self.is_reply)
        # new settings are a new period: bob is answered again
        a.iq("set", self.settings(None, None, "Back soon"))
        self.message(b, f"alice@{DOMAIN}", "and now?", iid="b3")
        r = b.expect(q("message", NS_CLIENT), pred=self.is_reply)
        self.assertEqual(r.findtext(q("body", NS_CLIENT)), "Back soon")

    def test_outside_the_period_and_offline(self):
        a = self.online("alice")
        b = self.online("bob")
        a.iq("set", self.settings(self.now() + timedelta(days=1), self.now() + timedelta(days=2)))
        self.message(b, f"alice@{DOMAIN}", "early", iid="e")
        a.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "e")
        b.expect_none(q("message", NS_CLIENT), pred=self.is_reply)
        # in the period, alice offline, after an sm restart: the message is
        # kept offline and bob is answered
        a.iq("set", self.settings(self.now() - timedelta(days=1), self.now() + timedelta(days=1)))
        a.send(f"<end xmlns='{NS_SESSION}'/>")
        self.restart_sm()
        b2 = self.online("bob", "again")
        self.message(b2, f"alice@{DOMAIN}", "while away", iid="w")
        r = b2.expect(q("message", NS_CLIENT), pred=self.is_reply)
        self.assertEqual(r.findtext(q("body", NS_CLIENT)), "Away until Monday")
        # the reply can go out before the message reaches the offline queue
        # (it may still wait on the store): alice comes back once it is there
        deadline = time.time() + 10
        while (self.store.count("queue", f"alice@{DOMAIN}") == 0 and
               time.time() < deadline):
            time.sleep(0.05)
        a2 = self.online("alice", "back")
        m = a2.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "w")
        self.assertIsNotNone(m.find(q("delay", NS_DELAY)))


class OfflineRules(FeatureCase):
    def test_what_is_not_stored(self):
        """Offline storage keeps chat and normal messages only, and not
        those with the XEP-0334 storage hints; a groupchat message to an
        offline account bounces (RFC 6121 §8.5.2.1.1), the rest vanish."""
        a = self.online("alice")
        carol = f"carol@{DOMAIN}"
        hints = "urn:xmpp:hints"
        err = f"<error type='cancel'><item-not-found xmlns='{NS_STANZAS}'/></error>"
        for iid, typ, extra in (("ns", "chat", f"<no-store xmlns='{hints}'/>"),
                                ("nps", "normal", f"<no-permanent-store xmlns='{hints}'/>"),
                                ("hl", "headline", ""), ("er", "error", err),
                                ("gc", "groupchat", ""), ("kept", "chat", "")):
            a.stanza(f"<message xmlns='{NS_CLIENT}' from='{a.jid}' to='{carol}' type='{typ}' "
                     f"id='{iid}'><body>{iid}</body>{extra}</message>")
        bounce = a.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == "gc")
        self.assertEqual(cond(bounce), "service-unavailable")
        time.sleep(0.5)
        c = self.online("carol")
        m = c.expect(q("message", NS_CLIENT))
        self.assertEqual(m.get("id"), "kept")
        self.assertIsNotNone(m.find(q("delay", NS_DELAY)))
        c.expect_none(q("message", NS_CLIENT))
        a.expect_none(q("message", NS_CLIENT))


class Discovery(FeatureCase):
    def test_features_advertised(self):
        a = self.login("alice")
        server = a.iq("get", f"<query xmlns='{NS_INFO}'/>", to=DOMAIN)
        feats = {f.get("var") for f in server.iter(q("feature", NS_INFO))}
        for ns in (NS_VCARD, NS_PRIVATE, NS_LAST, NS_VACATION):
            self.assertIn(ns, feats)
        account = a.iq("get", f"<query xmlns='{NS_INFO}'/>")
        feats = {f.get("var") for f in account.iter(q("feature", NS_INFO))}
        for ns in (NS_VCARD, NS_PRIVATE, NS_LAST, NS_VACATION):
            self.assertIn(ns, feats)


if __name__ == "__main__":
    unittest.main()
