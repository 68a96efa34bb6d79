# SPDX-License-Identifier: MIT
"""A third-party XEP-0114 component (slixmpp's ComponentXMPP) connects to
parley-router unchanged and exchanges messages with a Parley component."""

import asyncio
import logging
import unittest

import slixmpp

from harness import RouterCase


class Gateway(slixmpp.ComponentXMPP):
    def __init__(self, jid, secret, port):
        super().__init__(jid, secret, "127.0.0.1", port)
        self.received = asyncio.Queue()
        self.started = asyncio.Event()
        self.add_event_handler("session_start", lambda ev: self.started.set())
        self.add_event_handler("message", self.on_message)

    def on_message(self, msg):
        self.received.put_nowait(msg)


class SlixmppComponent(RouterCase):
    COMPONENTS = {"gw.test": [], "bot.test": []}

    def test_slixmpp_component_exchanges_messages_both_ways(self):
        logging.basicConfig(level=logging.WARNING)
        bot = self.start_testcomp("bot.test")
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        gw = Gateway("gw.test", self.comps["gw.test"][0], self.dep.router_port)
        gw.connect()
        try:
            loop.run_until_complete(asyncio.wait_for(gw.started.wait(), 15))
            # Parley component -> slixmpp
            bot.send("<message xmlns='jabber:component:accept' from='alice@bot.test' "
                     "to='bob@gw.test' id='to-slix'><body>hello slixmpp</body></message>")
            msg = loop.run_until_complete(asyncio.wait_for(gw.received.get(), 10))
            self.assertEqual(msg["body"], "hello slixmpp")
            self.assertEqual(str(msg["from"]), "alice@bot.test")
            self.assertEqual(msg["id"], "to-slix")
            # slixmpp -> Parley component, as a reply
            reply = msg.reply("hello parley")
            reply["id"] = "from-slix"
            reply.send()
            # wait in a thread so that slixmpp's loop keeps running and sends
            got = loop.run_until_complete(loop.run_in_executor(None, bot.event, "RECV"))
            self.assertIn("from-slix", got)
            self.assertIn("hello parley", got)
            self.assertIn("from=\"bob@gw.test\"", got.replace("'", '"'))
        finally:
            loop.run_until_complete(asyncio.wait_for(gw.disconnect(wait=1.0), 5))
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()


if __name__ == "__main__":
    unittest.main()
