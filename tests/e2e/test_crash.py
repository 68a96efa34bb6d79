# SPDX-License-Identifier: MIT
"""Crash tests: while two slixmpp clients exchange a numbered stream of
messages, a daemon is SIGKILLed; parleyd restarts it, the clients keep
their connections (when it is not their c2s that died), and every message
sent ends delivered exactly once or in the offline queue — counted."""

import asyncio
import os
import re
import secrets
import time
import unittest

from flows import Client, Suite, next_item, run
from harness import Daemon, free_port

COUNT = 200


class Crash(unittest.TestCase):
    def setUp(self):
        # at debug level, so that a failure shows what the daemons did
        self.suite = Suite(sm_section="    <session-grace>3s</session-grace>",
                           log_level="debug").start()
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

    def log_excerpt(self, numbers):
        """The daemons' lines about the session links, and those naming the
        messages numbered in numbers: what a failure in CI leaves to read."""
        bodies = tuple(f"<body>n{n}</body>" for n in numbers)
        link = re.compile(r"resum|replay|unreachable|duplicate|killed|restart|started|ended|"
                          r"component|offline|went down")
        with open(self.suite.parleyd.logpath, errors="replace") as f:
            lines = [ln.rstrip()[:400] for ln in f
                     if link.search(ln) or any(b in ln for b in bodies)]
        return "\n".join(lines[-300:])

    def check(self, received, disconnected):
        missing = sorted(set(range(COUNT)) - set(received))
        twice = sorted(n for n in set(received) if received.count(n) > 1)
        dups = len(received) - len(set(received))
        if missing or dups:
            print(self.log_excerpt(missing + twice))
        self.assertEqual(missing, [], f"{len(missing)} messages lost")
        self.assertEqual(dups, 0, f"{dups} messages delivered twice: {twice}")
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


class ReceiverC2sCrash(unittest.TestCase):
    """The receiver's c2s dies: the receiver is cut off, parleyd restarts
    that c2s, and once the sm's grace period is over the messages it could
    not deliver are in the offline queue. The sender is on a second c2s that
    stays up. Nothing is lost; the receiver gets every message once it is
    back (a message written to its socket just before the crash may arrive
    twice: only XEP-0198 on the client link could tell, and it is counted)."""

    def setUp(self):
        self.suite = Suite(sm_section="    <session-grace>2s</session-grace>")
        # A second c2s for the sender: the same file with its own name and ports.
        with open(self.suite.config) as f:
            text = f.read()
        secret2 = secrets.token_hex(16)
        text = text.replace("<component name='c2s' ",
                            f"<component name='c2s-b' secret='{secret2}'/>\n  "
                            "<component name='c2s' ")
        with open(self.suite.config, "w") as f:
            f.write(text)
        self.port_b = free_port()
        conf_b = os.path.join(self.suite.dir, "parley-b.xml")
        text_b = re.sub(r"<port>\d+</port>(\s*<tls-port>)\d+</tls-port>",
                        f"<port>{self.port_b}</port>\\g<1>{free_port()}</tls-port>", text)
        with open(conf_b, "w") as f:
            f.write(text_b)
        self.suite.start()
        self.c2s_b = Daemon("parley-c2s", conf_b, self.suite.dir, args=["-n", "c2s-b"]).start()
        self.alice = self.suite.add_user("alice")
        self.bob = self.suite.add_user("bob")

    def tearDown(self):
        self.c2s_b.stop()
        self.suite.stop()

    def test_receivers_c2s_killed(self):
        async def flow():
            a = Client(self.suite, *self.alice)
            a.connect(address=("127.0.0.1", self.port_b))
            await asyncio.wait_for(a.started.wait(), 20)
            b = await Client(self.suite, *self.bob).online()
            received = []

            async def collect(client):
                while True:
                    m = await client.messages.get()
                    if m["body"].startswith("n"):
                        received.append(int(m["body"][1:]))

            col = asyncio.ensure_future(collect(b))
            for i in range(COUNT):
                a.send_message(mto=self.bob[0], mbody=f"n{i}", mtype="chat")
                await asyncio.sleep(0.01)
                if i == COUNT // 3:
                    await asyncio.get_running_loop().run_in_executor(
                        None, self.suite.kill_child, "parley-c2s")
            col.cancel()
            await asyncio.sleep(3)  # the sm's grace period: the rest goes offline
            b2 = await Client(self.suite, *self.bob).online()
            col2 = asyncio.ensure_future(collect(b2))
            deadline = time.monotonic() + 30
            while len(set(received)) < COUNT and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            col2.cancel()
            missing = sorted(set(range(COUNT)) - set(received))
            self.assertEqual(missing, [], f"{len(missing)} messages lost")
            dups = len(received) - len(set(received))
            print(f"receiver c2s crash: {COUNT} sent, {len(set(received))} received, "
                  f"{dups} twice")
            self.assertLessEqual(dups, 8, "more duplicates than one write window")
            await a.offline()
            await b2.offline()

        run(flow())


if __name__ == "__main__":
    unittest.main()
