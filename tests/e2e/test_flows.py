# SPDX-License-Identifier: MIT
"""Whole flows with a real client library (slixmpp) against the whole
suite run by parleyd: two users add each other, see presence, chat, go
offline and get their messages back."""

import asyncio
import unittest

from flows import Client, Suite, next_item, run


class Flows(unittest.TestCase):
    def setUp(self):
        self.suite = Suite().start()
        self.alice = self.suite.add_user("alice")
        self.bob = self.suite.add_user("bob")

    def tearDown(self):
        self.suite.stop()

    def test_add_each_other_presence_chat_offline(self):
        async def flow():
            a = await Client(self.suite, *self.alice).online()
            b = await Client(self.suite, *self.bob).online()
            # alice asks bob; bob's client approves automatically
            a.send_presence_subscription(pto=self.bob[0])
            await next_item(a.subscriptions)
            pres = await next_item(a.presences, pred=lambda p: p["from"].bare == self.bob[0])
            self.assertEqual(pres["type"], "available")
            self.assertEqual(a.client_roster[self.bob[0]]["subscription"], "to")
            # chat both ways
            a.send_message(mto=self.bob[0], mbody="hi bob", mtype="chat")
            m = await next_item(b.messages)
            self.assertEqual((m["body"], m["from"].bare), ("hi bob", self.alice[0]))
            m.reply("hi alice").send()
            m = await next_item(a.messages)
            self.assertEqual(m["body"], "hi alice")
            # bob goes offline: alice sees it, and her messages wait for him
            await b.offline()
            pres = await next_item(a.presences, pred=lambda p: p["type"] == "unavailable")
            self.assertEqual(pres["from"].bare, self.bob[0])
            for i in range(3):
                a.send_message(mto=self.bob[0], mbody=f"while away {i}", mtype="chat")
            await asyncio.sleep(0.5)
            b2 = await Client(self.suite, *self.bob).online()
            got = [await next_item(b2.messages) for _ in range(3)]
            self.assertEqual([g["body"] for g in got], [f"while away {i}" for i in range(3)])
            self.assertTrue(all(g["delay"]["stamp"] for g in got))
            await a.offline()
            await b2.offline()

        run(flow())


if __name__ == "__main__":
    unittest.main()
