# SPDX-License-Identifier: MIT
"""A fast sender and a receiver that does not read: the router stops
reading from the sender instead of buffering without bound, and once the
receiver reads again every stanza arrives, in order."""

import socket
import time
import unittest

from harness import NS_COMP, RouterCase, component


class Backpressure(RouterCase):
    COMPONENTS = {"fast.test": [], "slow.test": []}
    ROUTER_SECTION = "<output-limit>256k</output-limit>"

    def test_memory_stays_flat_and_nothing_is_lost(self):
        slow = self.connect("slow.test")
        fast = self.connect("fast.test")
        # Stop draining the receiver, and keep its kernel buffer small.
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        rss0 = self.router.rss_kib()
        stanza = ("<message from='a@fast.test' to='b@slow.test' id='%08d'>"
                  "<body>" + "x" * 900 + "</body></message>")
        total = 100 * 1024 * 1024 // len(stanza)  # 100 MiB offered
        fast.sock.setblocking(False)
        sent = 0
        pending = b""
        deadline = time.time() + 20
        stalled_since = None
        while sent < total and time.time() < deadline:
            if not pending:
                pending = (stanza % sent).encode()
            try:
                n = fast.sock.send(pending)
                pending = pending[n:]
                if not pending:
                    sent += 1
                stalled_since = None
            except BlockingIOError:
                if stalled_since is None:
                    stalled_since = time.time()
                elif time.time() - stalled_since > 1.0:
                    break  # the router stopped reading from us
                time.sleep(0.01)
        rss1 = self.router.rss_kib()
        self.assertLess(sent, total, "the router never pushed back")
        self.assertLess(rss1 - rss0, 32 * 1024,
                        f"router grew from {rss0} to {rss1} KiB while the receiver slept")
        # Now the receiver reads: every stanza the router accepted arrives, in
        # order. A partly sent stanza is finished as the router drains.
        seen = 0
        deadline = time.time() + 60
        while (seen < sent or pending) and time.time() < deadline:
            if pending:
                try:
                    pending = pending[fast.sock.send(pending):]
                    if not pending:
                        sent += 1
                except BlockingIOError:
                    pass
            el = slow.read(5)
            if el is None:
                break
            self.assertEqual(el.get("id"), "%08d" % seen)
            seen += 1
            slow.raw = b""  # keep the test's own memory flat
        self.assertEqual(seen, sent, "stanzas lost under back-pressure")


if __name__ == "__main__":
    unittest.main()
