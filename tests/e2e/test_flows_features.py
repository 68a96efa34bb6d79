# SPDX-License-Identifier: MIT
"""The sm's IM features as a real client uses them: slixmpp clients with
slixmpp's own plugins, through parley-c2s, against a deployment made by
parleyctl init and run by parleyd (flows.py). vCard and its avatar hash
(XEP-0054, XEP-0153), private storage with bookmarks (XEP-0049, XEP-0048,
and as private PEP data, XEP-0223), blocking (XEP-0191), carbons
(XEP-0280), the message archive with RSM paging and preferences
(XEP-0313, XEP-0059, XEP-0359, XEP-0441), last activity (XEP-0012), PEP
avatars with +notify from entity capabilities (XEP-0163, XEP-0084,
XEP-0115), and service administration over ad-hoc commands (XEP-0050,
XEP-0133).

A test class shares one deployment; each test makes its own accounts, so
the tests share no state. With PARLEY_STORE=pgsql the deployment stores in
PostgreSQL (flows.py)."""

import asyncio
import hashlib
import itertools
import unittest

from slixmpp import JID
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0048.stanza import Bookmarks
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

from flows import DOMAIN, Client, Suite, next_item, run

# a 1x1 PNG
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
PNG_SHA1 = hashlib.sha1(PNG).hexdigest()
PNG2 = PNG[:-1] + b"\x83"  # other bytes, another hash
PNG2_SHA1 = hashlib.sha1(PNG2).hexdigest()
NS_ADMIN = "http://jabber.org/protocol/admin"
NS_BLOCK_ERRORS = "urn:xmpp:blocking:errors"


class Notes(ElementBase):
    """A client's own private data (XEP-0049), in its own namespace."""
    name = "notes"
    namespace = "urn:example:parley:notes"
    plugin_attrib = "notes"
    interfaces = {"text"}
    sub_interfaces = interfaces


class VCardInPrivate(ElementBase):
    """An element of a namespace private storage must refuse."""
    name = "vCard"
    namespace = "vcard-temp"
    plugin_attrib = "vcard_in_private"
    interfaces = {"FN"}
    sub_interfaces = interfaces


class FClient(Client):
    """flows.Client with slixmpp plugins, and a queue per watched event."""

    def __init__(self, suite, jid, password, plugins=(), events=()):
        super().__init__(suite, jid, password)
        for p in plugins:
            self.register_plugin(p)
        self.errors = asyncio.Queue()
        self.add_event_handler("message_error", self.errors.put_nowait)
        self.events = {}
        for name in events:
            self.events[name] = asyncio.Queue()
            self.add_event_handler(name, self.events[name].put_nowait)


def is_body(text):
    return lambda m: m["body"] == text


class FeatureFlows(unittest.TestCase):
    SM_SECTION = None
    serial = itertools.count(1)

    @classmethod
    def setUpClass(cls):
        cls.suite = Suite(sm_section=cls.SM_SECTION).start()

    @classmethod
    def tearDownClass(cls):
        cls.suite.stop()

    def account(self, name):
        """A new account for this test alone: (bare JID, password)."""
        return self.suite.add_user(f"{name}{next(self.serial)}")

    def flow(self, coro_fn):
        """Runs one test's flow; every client it made goes offline after."""
        self.clients = []

        async def wrapped():
            try:
                await coro_fn()
            finally:
                for c in self.clients:
                    try:
                        await c.offline()
                    except Exception:
                        pass

        run(wrapped())

    async def online(self, account, res="r", plugins=(), events=()):
        jid, password = account
        c = FClient(self.suite, f"{jid}/{res}", password, plugins, events)
        self.clients.append(c)
        return await c.online()

    async def follow(self, follower, followed):
        """follower subscribes to followed's presence; followed's client
        approves on its own (flows.Client auto_authorize)."""
        follower.send_presence_subscription(pto=followed.boundjid.bare)
        await next_item(follower.subscriptions)
        await next_item(follower.presences, pred=lambda p: p["from"] == followed.boundjid)

    async def nothing_more(self, queue, marker_queue, send_marker, pred=None):
        """Nothing matching pred reached queue before a marker sent now
        reaches marker_queue (stanzas to one client keep their order)."""
        send_marker()
        await next_item(marker_queue, pred=is_body("marker"))
        while not queue.empty():
            item = queue.get_nowait()
            if pred is None or pred(item):
                raise AssertionError(f"unexpected: {item}")


class Flows(FeatureFlows):
    def test_vcard_and_avatar_hash(self):
        """XEP-0054 and XEP-0153: alice publishes her vCard and sets an
        avatar with slixmpp's plugins; bob sees the hash in her presence and
        reads her vCard; a second client of alice that knows nothing of
        avatars gets the hash put in its presence by the server; bob cannot
        change alice's vCard."""
        alice, bob = self.account("alice"), self.account("bob")

        async def flow():
            a = await self.online(alice, "desk", ("xep_0054", "xep_0153"))
            b = await self.online(bob, "r", ("xep_0054", "xep_0153"), ("vcard_avatar_update",))
            await self.follow(b, a)
            vcard = a["xep_0054"].make_vcard()
            vcard["FN"] = "Alice Liddell"
            vcard["NICKNAME"] = "alice"
            await a["xep_0054"].publish_vcard(vcard)
            # xep_0153 reads the vCard back, adds the photo, publishes it and
            # sends presence again with the hash
            await a["xep_0153"].set_avatar(avatar=PNG, mtype="image/png")
            upd = await next_item(b.events["vcard_avatar_update"],
                                  pred=lambda p: p["vcard_temp_update"]["photo"] == PNG_SHA1)
            self.assertEqual(upd["from"], a.boundjid)
            got = (await b["xep_0054"].get_vcard(alice[0]))["vcard_temp"]
            self.assertEqual(got["FN"], "Alice Liddell")
            self.assertEqual(got["NICKNAME"], ["alice"])
            self.assertEqual(got["PHOTO"]["TYPE"], "image/png")
            self.assertEqual(got["PHOTO"]["BINVAL"], PNG)
            # a client without avatar support: the server adds the hash
            plain = await self.online(alice, "plain")
            pres = await next_item(b.presences, pred=lambda p: p["from"] == plain.boundjid)
            self.assertEqual(pres["vcard_temp_update"]["photo"], PNG_SHA1)
            # a new avatar: the new hash; a vCard without a photo: an empty
            # <photo/> (XEP-0153 §4.1), in the presence the server stamps
            await a["xep_0153"].set_avatar(avatar=PNG2, mtype="image/png")
            plain.send_presence(pstatus="new avatar")
            pres = await next_item(b.presences, pred=lambda p: p["status"] == "new avatar")
            self.assertEqual(pres["vcard_temp_update"]["photo"], PNG2_SHA1)
            vcard = a["xep_0054"].make_vcard()
            vcard["FN"] = "Alice Liddell"
            await a["xep_0054"].publish_vcard(vcard)
            plain.send_presence(pstatus="no avatar")
            pres = await next_item(b.presences, pred=lambda p: p["status"] == "no avatar")
            photo = pres.xml.find("{vcard-temp:x:update}x/{vcard-temp:x:update}photo")
            self.assertIsNotNone(photo)
            self.assertFalse(photo.text)
            # nobody else writes alice's vCard
            other = b["xep_0054"].make_vcard()
            other["FN"] = "Mallory"
            with self.assertRaises(IqError) as e:
                await b["xep_0054"].publish_vcard(other, jid=JID(alice[0]))
            self.assertEqual(e.exception.condition, "forbidden")
            got = (await b["xep_0054"].get_vcard(alice[0]))["vcard_temp"]
            self.assertEqual(got["FN"], "Alice Liddell")

        self.flow(flow)

    def test_private_storage_and_bookmarks(self):
        """XEP-0049 with slixmpp's plugin, and XEP-0048 bookmarks kept
        there: stored by one session, read back by a later one; the
        reserved namespaces and other users' storage are refused."""
        alice, bob = self.account("alice"), self.account("bob")

        async def flow():
            a = await self.online(alice, "one", ("xep_0049", "xep_0048"))
            register_stanza_plugin(a["xep_0049"].stanza.PrivateXML, Notes)
            register_stanza_plugin(a["xep_0049"].stanza.PrivateXML, VCardInPrivate)
            marks = Bookmarks()
            marks.add_conference("tea@muc.example.test", "Alice", name="Tea party",
                                 autojoin=True)
            marks.add_url("https://example.test/wonderland", name="Wonderland")
            await a["xep_0048"].set_bookmarks(marks)
            notes = Notes()
            notes["text"] = "Curiouser and curiouser"
            await a["xep_0049"].store(notes)
            # a reserved namespace (XEP-0049 §3)
            bad = VCardInPrivate()
            bad["FN"] = "not here"
            with self.assertRaises(IqError) as e:
                await a["xep_0049"].store(bad)
            self.assertEqual(e.exception.condition, "not-acceptable")
            await a.offline()
            a2 = await self.online(alice, "two", ("xep_0049", "xep_0048", "xep_0223"))
            register_stanza_plugin(a2["xep_0049"].stanza.PrivateXML, Notes)
            got = (await a2["xep_0048"].get_bookmarks())["private"]["bookmarks"]
            confs = [c for c in got if c.name == "conference"]
            urls = [u for u in got if u.name == "url"]
            self.assertEqual([(c["jid"], c["nick"], c["name"], c["autojoin"]) for c in confs],
                             [("tea@muc.example.test", "Alice", "Tea party", True)])
            self.assertEqual([(u["url"], u["name"]) for u in urls],
                             [("https://example.test/wonderland", "Wonderland")])
            got = await a2["xep_0049"].retrieve("notes")
            self.assertEqual(got["private"]["notes"]["text"], "Curiouser and curiouser")
            # bob may not read alice's storage
            b = await self.online(bob, "r", ("xep_0049", "xep_0048", "xep_0060"))
            iq = b.make_iq_get(ito=alice[0])
            iq["private"].enable("bookmarks")
            with self.assertRaises(IqError) as e:
                await iq.send()
            self.assertEqual(e.exception.condition, "forbidden")
            # the same bookmarks as private PEP data (XEP-0223: slixmpp
            # publishes with persist_items and the whitelist access model)
            await a2["xep_0048"].set_bookmarks(marks, method="xep_0223")
            got = await a2["xep_0048"].get_bookmarks(method="xep_0223")
            item = got["pubsub"]["items"]["item"]
            confs = [c for c in item["bookmarks"] if c.name == "conference"]
            self.assertEqual([c["jid"] for c in confs], [JID("tea@muc.example.test")])
            with self.assertRaises(IqError) as e:
                await b["xep_0060"].get_items(JID(alice[0]), "storage:bookmarks")
            self.assertEqual(e.exception.condition, "not-allowed")

        self.flow(flow)

    def test_blocking(self):
        """XEP-0191 with slixmpp's plugin: alice blocks bob from one
        resource, the other resource (which asked for the blocklist) gets
        the push, bob's messages bounce with service-unavailable, alice's to
        bob with not-acceptable and <blocked/>; unblocking lets them through
        again."""
        alice, bob = self.account("alice"), self.account("bob")

        async def flow():
            a1 = await self.online(alice, "one", ("xep_0191",), ("blocked", "unblocked"))
            a2 = await self.online(alice, "two", ("xep_0191",), ("blocked", "unblocked"))
            b = await self.online(bob)
            self.assertEqual((await a2["xep_0191"].get_blocked())["blocklist"]["items"], set())
            b.send_message(mto=alice[0], mbody="before", mtype="chat")
            await next_item(a1.messages, pred=is_body("before"))
            await a1["xep_0191"].block(JID(bob[0]))
            push = await next_item(a2.events["blocked"])
            self.assertEqual(push["block"]["items"], {JID(bob[0])})
            self.assertEqual((await a1["xep_0191"].get_blocked())["blocklist"]["items"],
                             {JID(bob[0])})
            # bob's messages are refused, to the bare and to a full JID
            for to in (alice[0], a1.boundjid.full):
                b.send_message(mto=to, mbody="let me in", mtype="chat")
                err = await next_item(b.errors)
                self.assertEqual(err["error"]["condition"], "service-unavailable")
                self.assertEqual(err["from"].bare, alice[0])
            # alice cannot write to bob either
            a2.send_message(mto=bob[0], mbody="hello?", mtype="chat")
            err = await next_item(a2.errors)
            self.assertEqual(err["error"]["condition"], "not-acceptable")
            self.assertIsNotNone(err.xml.find(f"{{{err.namespace}}}error/"
                                              f"{{{NS_BLOCK_ERRORS}}}blocked"))
            await a1["xep_0191"].unblock(JID(bob[0]))
            push = await next_item(a2.events["unblocked"])
            self.assertEqual(push["unblock"]["items"], {JID(bob[0])})
            # nothing bob sent while blocked arrives; what he sends now does
            b.send_message(mto=alice[0], mbody="after", mtype="chat")
            m = await next_item(a1.messages, pred=lambda m: m["body"] != "before")
            self.assertEqual((m["body"], m["from"].bare), ("after", bob[0]))
            a2.send_message(mto=bob[0], mbody="welcome back", mtype="chat")
            await next_item(b.messages, pred=is_body("welcome back"))

        self.flow(flow)

    def test_carbons(self):
        """XEP-0280 with slixmpp's plugin: with carbons enabled, alice's
        phone gets a copy of what her desk receives and of what her desk
        sends; a private message is not copied; after disabling, nothing."""
        alice, bob = self.account("alice"), self.account("bob")
        events = ("carbon_received", "carbon_sent")

        async def flow():
            desk = await self.online(alice, "desk", ("xep_0280",), events)
            phone = await self.online(alice, "phone", ("xep_0280",), events)
            b = await self.online(bob)
            await desk["xep_0280"].enable()
            await phone["xep_0280"].enable()
            b.send_message(mto=desk.boundjid, mbody="to the desk", mtype="chat")
            await next_item(desk.messages, pred=is_body("to the desk"))
            c = await next_item(phone.events["carbon_received"])
            inner = c["carbon_received"]
            self.assertEqual((inner["body"], inner["from"], inner["to"]),
                             ("to the desk", b.boundjid, desk.boundjid))
            self.assertEqual(c["from"], JID(alice[0]))
            desk.send_message(mto=bob[0], mbody="from the desk", mtype="chat")
            await next_item(b.messages, pred=is_body("from the desk"))
            c = await next_item(phone.events["carbon_sent"])
            inner = c["carbon_sent"]
            self.assertEqual((inner["body"], inner["from"], inner["to"]),
                             ("from the desk", desk.boundjid, JID(bob[0])))
            # the desk got no copy of its own message
            self.assertTrue(desk.events["carbon_sent"].empty())
            # a private message (XEP-0280 §7) is not copied
            m = desk.make_message(mto=bob[0], mbody="just between us", mtype="chat")
            m.enable("carbon_private")
            m.send()
            await next_item(b.messages, pred=is_body("just between us"))
            desk.send_message(mto=bob[0], mbody="public again", mtype="chat")
            c = await next_item(phone.events["carbon_sent"])
            self.assertEqual(c["carbon_sent"]["body"], "public again")
            # disabled: no more copies
            await phone["xep_0280"].disable()
            b.send_message(mto=desk.boundjid, mbody="after disable", mtype="chat")
            await next_item(desk.messages, pred=is_body("after disable"))
            await self.nothing_more(phone.events["carbon_received"], phone.messages,
                                    lambda: b.send_message(mto=phone.boundjid, mbody="marker",
                                                           mtype="chat"))

        self.flow(flow)

    def test_message_archive(self):
        """XEP-0313 with slixmpp's plugin: seven messages both ways, then
        alice pages through her archive three at a time (RSM) forwards and
        backwards; the result ids are the stanza-ids (XEP-0359) stamped on
        what she received; bob's archive holds the same conversation."""
        alice, bob = self.account("alice"), self.account("bob")

        async def flow():
            plugins = ("xep_0313", "xep_0359")
            a = await self.online(alice, "r", plugins)
            b = await self.online(bob, "r", plugins)
            bodies = [f"line {i}" for i in range(7)]
            stanza_ids = {}
            for i, body in enumerate(bodies):
                sender, receiver = (a, b) if i % 2 == 0 else (b, a)
                sender.send_message(mto=receiver.boundjid.bare, mbody=body, mtype="chat")
                m = await next_item(receiver.messages, pred=is_body(body))
                if receiver is a:
                    self.assertEqual(m["stanza_id"]["by"], JID(alice[0]))
                    stanza_ids[body] = m["stanza_id"]["id"]
            pages = []
            results = a["xep_0313"].retrieve(with_jid=JID(bob[0]), iterator=True,
                                             rsm={"max": 3})
            async for page in results:
                pages.append([(r["mam_result"]["id"], r["mam_result"]["forwarded"]["stanza"])
                              for r in page["mam"]["results"]])
            self.assertEqual([len(p) for p in pages], [3, 3, 1])
            got = [m for p in pages for _, m in p]
            self.assertEqual([m["body"] for m in got], bodies)
            self.assertEqual([m["from"].bare for m in got],
                             [alice[0] if i % 2 == 0 else bob[0] for i in range(7)])
            for rid, m in (r for p in pages for r in p):
                if m["body"] in stanza_ids:
                    self.assertEqual(rid, stanza_ids[m["body"]])
            self.assertEqual(len(stanza_ids), 3)
            # backwards: the newest page first
            back = [m["mam_result"]["forwarded"]["stanza"]["body"] async for m in
                    a["xep_0313"].iterate(with_jid=JID(bob[0]), reverse=True, rsm={"max": 3})]
            self.assertEqual(back, bodies[::-1])
            # bob's own archive
            mine = [m["mam_result"]["forwarded"]["stanza"]["body"] async for m in
                    b["xep_0313"].iterate(rsm={"max": 5})]
            self.assertEqual(mine, bodies)

        self.flow(flow)

    def test_archive_preferences(self):
        """XEP-0441 (the MAM preferences) with slixmpp's plugin: default
        never with bob always archived keeps bob's message and not carol's."""
        alice, bob, carol = self.account("alice"), self.account("bob"), self.account("carol")

        async def flow():
            a = await self.online(alice, "r", ("xep_0313", "xep_0441"))
            b, c = await self.online(bob), await self.online(carol)
            self.assertEqual(await a["xep_0441"].get_preferences(), ("always", set(), set()))
            await a["xep_0441"].set_preferences(default="never", always=[JID(bob[0])], never=[])
            self.assertEqual(await a["xep_0441"].get_preferences(),
                             ("never", {JID(bob[0])}, set()))
            c.send_message(mto=alice[0], mbody="from carol", mtype="chat")
            b.send_message(mto=alice[0], mbody="from bob", mtype="chat")
            # two senders: either may arrive first
            got = {(await next_item(a.messages))["body"] for _ in range(2)}
            self.assertEqual(got, {"from carol", "from bob"})
            got = [m["mam_result"]["forwarded"]["stanza"]["body"] async for m in
                   a["xep_0313"].iterate(rsm={"max": 10})]
            self.assertEqual(got, ["from bob"])

        self.flow(flow)

    def test_last_activity(self):
        """XEP-0012 with slixmpp's plugin: the server's uptime; a contact's
        last logout with its status, for a subscribed contact only."""
        alice, bob, carol = self.account("alice"), self.account("bob"), self.account("carol")

        async def flow():
            a = await self.online(alice)
            b = await self.online(bob, "r", ("xep_0012",))
            c = await self.online(carol, "r", ("xep_0012",))
            up = await b["xep_0012"].get_last_activity(JID(DOMAIN))
            self.assertGreaterEqual(int(up["last_activity"]["seconds"]), 0)
            await self.follow(b, a)
            now = await b["xep_0012"].get_last_activity(JID(alice[0]))
            self.assertEqual(int(now["last_activity"]["seconds"]), 0)
            a.send_presence(ptype="unavailable", pstatus="Down the rabbit hole")
            await next_item(b.presences, pred=lambda p: p["type"] == "unavailable")
            await a.offline()
            await asyncio.sleep(1.1)
            last = (await b["xep_0012"].get_last_activity(JID(alice[0])))["last_activity"]
            self.assertGreaterEqual(int(last["seconds"]), 1)
            self.assertLess(int(last["seconds"]), 60)
            self.assertEqual(last["status"], "Down the rabbit hole")
            with self.assertRaises(IqError) as e:
                await c["xep_0012"].get_last_activity(JID(alice[0]))
            self.assertEqual(e.exception.condition, "forbidden")

        self.flow(flow)

    def test_pep_avatar(self):
        """XEP-0163/XEP-0084 with slixmpp's plugins: bob's client announces
        +notify for avatar metadata in its entity capabilities (XEP-0115),
        which the sm verifies by asking bob's client (disco#info); alice
        publishes her avatar; bob gets the event and fetches the data;
        carol, also a contact but without the interest, gets nothing."""
        alice, bob, carol = self.account("alice"), self.account("bob"), self.account("carol")

        async def flow():
            a = await self.online(alice, "r", ("xep_0084",))
            b = await self.online(bob, "r", ("xep_0084",), ("avatar_metadata_publish",))
            c = await self.online(carol, "r", ("xep_0060",), ("pubsub_publish",))
            # mutual subscriptions: the sm learns a contact's interests from
            # the presence (with caps) alice's account receives
            for x, y in ((b, a), (a, b), (c, a), (a, c)):
                await self.follow(x, y)
            await a["xep_0084"].publish_avatar(PNG)
            await a["xep_0084"].publish_avatar_metadata(
                {"id": PNG_SHA1, "type": "image/png", "bytes": len(PNG)})
            ev = await next_item(b.events["avatar_metadata_publish"])
            self.assertEqual(ev["from"], JID(alice[0]))
            item = ev["pubsub_event"]["items"]["item"]
            self.assertEqual(item["id"], PNG_SHA1)
            info = item["avatar_metadata"]["info"]
            self.assertEqual((info["id"], info["type"], info["bytes"]),
                             (PNG_SHA1, "image/png", len(PNG)))
            data = await b["xep_0084"].retrieve_avatar(JID(alice[0]), PNG_SHA1)
            self.assertEqual(data["pubsub"]["items"]["item"]["avatar_data"]["value"], PNG)
            await self.nothing_more(c.events["pubsub_publish"], c.messages,
                                    lambda: a.send_message(mto=carol[0], mbody="marker",
                                                           mtype="chat"))
            # the last item comes to a session that shows its interest later
            # (XEP-0163 §6.1.2), a contact's and the owner's own
            late = await self.online(bob, "late", ("xep_0084",), ("avatar_metadata_publish",))
            own = await self.online(alice, "late", ("xep_0084",), ("avatar_metadata_publish",))
            for session in (late, own):
                ev = await next_item(session.events["avatar_metadata_publish"])
                self.assertEqual(ev["pubsub_event"]["items"]["item"]["id"], PNG_SHA1)

        self.flow(flow)


class AdminFlows(FeatureFlows):
    """Service administration: the admin is named in the sm's section of
    parley.xml."""
    SM_SECTION = f"    <admin>root@{DOMAIN}</admin>"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = cls.suite.add_user("root")

    async def command(self, client, name, fields=None):
        """Runs an XEP-0133 command with slixmpp's XEP-0050 session flow:
        execute, then complete with fields. Returns the last iq."""
        done = asyncio.get_running_loop().create_future()

        def finish(iq, session):
            if not done.done():
                done.set_result(iq)

        def on_form(iq, session):
            if iq["command"]["status"] == "completed" or fields is None:
                finish(iq, session)
                return
            form = client["xep_0004"].make_form(ftype="submit")
            form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_ADMIN)
            for var, value in fields.items():
                form.add_field(var=var, value=value)
            session["payload"] = form
            session["next"] = finish
            client["xep_0050"].complete_command(session)

        getattr(client["xep_0133"], name.replace("-", "_"))(
            session={"next": on_form, "error": finish})
        return await asyncio.wait_for(done, 10)

    async def online_count(self, client, want):
        """get-online-users-num, asked again for a while until it is want: a
        new session's presence may reach the sm after the command."""
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            iq = await self.command(client, "get-online-users-num")
            self.assertEqual(iq["command"]["status"], "completed")
            got = self.values(iq)["onlineusersnum"]
            if got == want or asyncio.get_running_loop().time() > deadline:
                return got
            await asyncio.sleep(0.1)

    def values(self, iq):
        return iq["command"]["form"].get_values()

    def test_admin_adds_a_user_and_counts_online_users(self):
        """An admin lists the commands, adds an account that can then log
        in, and counts the online users; a non-admin is refused."""
        root = self.root
        bob = self.account("bob")
        newbie = f"newbie{next(self.serial)}@{DOMAIN}"

        async def flow():
            r = await self.online(root, "console", ("xep_0133",))
            b = await self.online(bob, "r", ("xep_0133",))
            items = await r["xep_0133"].get_commands()
            nodes = {i[1] for i in items["disco_items"]["items"]}
            for cmd in ("add-user", "delete-user", "get-online-users-num", "announce"):
                self.assertIn(f"{NS_ADMIN}#{cmd}", nodes)
            self.assertEqual(await self.online_count(r, "2"), "2")
            iq = await self.command(r, "add-user", {
                "accountjid": newbie, "password": "hatter", "password-verify": "hatter"})
            self.assertEqual((iq["type"], iq["command"]["status"]), ("result", "completed"))
            # in the deployment's store (SQLite, or PostgreSQL with PARLEY_STORE=pgsql)
            rows = self.suite.store.sql("SELECT owner FROM authreg WHERE owner = ?", (newbie,))
            self.assertEqual(rows, [{"owner": newbie}])
            n = await self.online((newbie, "hatter"), "r")
            self.assertEqual(n.boundjid.bare, newbie)
            self.assertEqual(await self.online_count(r, "3"), "3")
            # bob is no admin: no commands listed, and refused
            items = await b["xep_0133"].get_commands()
            self.assertEqual(list(items["disco_items"]["items"]), [])
            for cmd in ("add-user", "get-online-users-num"):
                with self.assertRaises(IqError) as e:
                    await b["xep_0050"].send_command(DOMAIN, f"{NS_ADMIN}#{cmd}")
                self.assertEqual(e.exception.condition, "forbidden")

        self.flow(flow)

    async def login_fails(self, jid, password):
        c = FClient(self.suite, f"{jid}/r", password, events=("failed_all_auth",))
        c.connect(address=("127.0.0.1", self.suite.ports["c2s"]))
        try:
            await next_item(c.events["failed_all_auth"])
        finally:
            c.abort()
        self.assertFalse(c.started.is_set())

    def test_admin_password_announce_delete(self):
        """An admin changes a user's password (the old one stops working,
        the new one works), announces to the online users, and deletes an
        account: its session ends and it is gone from the store."""
        root = self.root
        bob, carol = self.account("bob"), self.account("carol")

        async def flow():
            r = await self.online(root, "console", ("xep_0133",))
            iq = await self.command(r, "change-user-password",
                                    {"accountjid": bob[0], "password": "looking-glass"})
            self.assertEqual((iq["type"], iq["command"]["status"]), ("result", "completed"))
            await self.login_fails(bob[0], bob[1])
            b = await self.online((bob[0], "looking-glass"))
            c = await self.online(carol, "r", (), ("disconnected",))
            iq = await self.command(r, "announce", {"subject": "Tea time",
                                                    "announcement": "at five"})
            self.assertEqual(iq["command"]["status"], "completed")
            for who in (b, c):
                m = await next_item(who.messages, pred=is_body("at five"))
                self.assertEqual((m["from"], m["subject"]), (JID(DOMAIN), "Tea time"))
            iq = await self.command(r, "delete-user", {"accountjids": [carol[0]]})
            self.assertEqual((iq["type"], iq["command"]["status"]), ("result", "completed"))
            await next_item(c.events["disconnected"])
            self.assertEqual(self.suite.store.sql("SELECT owner FROM authreg WHERE owner = ?",
                                                  (carol[0],)), [])
            await self.login_fails(*carol)

        self.flow(flow)


if __name__ == "__main__":
    unittest.main()
