# SPDX-License-Identifier: MIT
"""Crash tests: while two slixmpp clients exchange a numbered stream of
messages, a daemon is SIGKILLed; parleyd restarts it, the clients keep
their connections (when it is not their c2s that died), and every message
sent ends delivered exactly once or in the offline queue — counted."""

import asyncio
import time
import unittest

from flows import Client, Suite, next_item, run

COUNT = 200


class Crash(unittest.TestCase):
    def setUp(self):
        self.suite = Suite(sm_section="    <session-grace>3s</session-grace>").start()
        self.alice = self.suite.add_user("alice")
        self.bob = self.suite.add_user("bob")

    def tearDown(self):
        self.suite.stop()

    async def stream(self, victim):
        a = await Client(self.suite, *self.alice).online()
        b = await Client(self.suite, *self.bob).online()
        received = []
        disconnected = []
        a.add_event_handler("disconnected", lambda e: disconnected.append("alice"))
        b.add_event_handler("disconnected", lambda e: disconnected.append("bob"))

        async def collect(client):
            while True:
                m = await client.messages.get()
                if m["type"] in ("chat", "normal") and m["body"].startswith("n"):
                    received.append(int(m["body"][1:]))

        collector = asyncio.ensure_future(collect(b))
        for i in range(COUNT):
            a.send_message(mto=self.bob[0], mbody=f"n{i}", mtype="chat")
            await asyncio.sleep(0.01)
            if i == COUNT // 3:
                await asyncio.get_running_loop().run_in_executor(None, self.suite.kill_child,
                                                                 victim)
        deadline = time.monotonic() + 30
        while len(set(received)) < COUNT and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        collector.cancel()
        return received, disconnected, a, b

    def check(self, received, disconnected):
        missing = sorted(set(range(COUNT)) - set(received))
        dups = len(received) - len(set(received))
        self.assertEqual(missing, [], f"{len(missing)} messages lost")
        self.assertEqual(dups, 0, f"{dups} messages delivered twice")
        self.assertEqual(disconnected, [], "clients must keep their c2s connections")

    def test_sm_killed(self):
        async def flow():
            received, disconnected, a, b = await self.stream("parley-sm")
            self.check(received, disconnected)
            await a.offline()
            await b.offline()

        run(flow())

    def test_router_killed(self):
        async def flow():
            received, disconnected, a, b = await self.stream("parley-router")
            self.check(received, disconnected)
            await a.offline()
            await b.offline()

        run(flow())


if __name__ == "__main__":
    unittest.main()
