# SPDX-License-Identifier: MIT
"""Interop with a real peer: Parley serves a.test, Debian's Prosody serves
b.test, both found through a real DNS server (dnsmasq with SRV records).
A user on each side, with ordinary slixmpp clients: they subscribe to each
other across the federation, see each other's presence and chat both ways.
Both sides have self-signed certificates, so they authenticate with
dialback, and each verifies the other by a connection back (db:verify)."""

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
import unittest

from flows import Client, next_item, run
from prosodyfix import Prosody
from s2sfix import Server, make_ca_certs, wait_for_log


def dns_address():
    """A loopback address whose port 53 is free: resolv.conf, which is how
    Prosody is told its nameserver, has no syntax for a port."""
    for last in range(2, 250):
        addr = f"127.0.53.{last}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((addr, 53))
            except OSError:
                continue
        return addr
    raise AssertionError("no loopback address with port 53 free")


class Dnsmasq:
    """dnsmasq on addr:53, authoritative for .test (it never forwards)."""

    def __init__(self, addr, srv, hosts):
        args = ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
                f"--listen-address={addr}", "--port=53", "--local=/test/", "--local-ttl=60",
                "--log-queries"]
        args += [f"--srv-host={name},{target},{port}" for name, target, port in srv]
        args += [f"--host-record={name},{ip}" for name, ip in hosts]
        self.log = []
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            if "cleared cache" in line or "using only locally-known" in line:
                return
        raise AssertionError("dnsmasq did not start:\n" + "".join(self.log))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        self.proc.stderr.close()


class ProsodyClient(Client):
    """A slixmpp client of the Prosody side (c2s on Prosody's address)."""

    def __init__(self, prosody, jid, password):
        self.prosody = prosody
        super().__init__(prosody, jid, password)

    async def online(self, timeout=20):
        self.connect(address=(self.prosody.address, self.prosody.c2s_port))
        await asyncio.wait_for(self.started.wait(), timeout)
        return self


class ProsodyInterop(unittest.TestCase):
    def setUp(self):
        self.a = Server("a.test")
        self.alice = self.a.add_user("alice")
        self.prosody = Prosody("b.test", "127.0.0.2", dns_address(), {"bob": "bobpass"})
        # What the Prosody client checks its server's certificate against.
        self.prosody.cert = os.path.join(self.prosody.dir, "b.test.crt")
        self.dns = Dnsmasq(self.prosody.dns_address,
                           srv=[("_xmpp-server._tcp.a.test", "a.test", self.a.ports["s2s"]),
                                ("_xmpp-server._tcp.b.test", "b.test", self.prosody.s2s_port)],
                           hosts=[("a.test", "127.0.0.1"), ("b.test", "127.0.0.2")])
        # Parley's resolver asks the same DNS server as Prosody.
        self.a.use_nameserver(self.prosody.dns_address, 53)

    def tearDown(self):
        try:
            self.a.stop()
        finally:
            self.prosody.cleanup()
            self.dns.stop()

    def test_presence_and_messages_both_ways(self):
        self.prosody.start()
        self.a.start()
        bob = ("bob@b.test", "bobpass")

        async def flow():
            a = await Client(self.a, *self.alice).online()
            b = await ProsodyClient(self.prosody, *bob).online()
            # alice (Parley) asks bob (Prosody); his client approves
            a.send_presence_subscription(pto=bob[0])
            await next_item(a.subscriptions, timeout=30)
            pres = await next_item(a.presences, timeout=30,
                                   pred=lambda p: p["from"].bare == bob[0])
            self.assertEqual(pres["type"], "available")
            self.assertEqual(a.client_roster[bob[0]]["subscription"], "to")
            # bob asks alice the other way round
            b.send_presence_subscription(pto=self.alice[0])
            await next_item(b.subscriptions, timeout=30)
            pres = await next_item(b.presences, timeout=30,
                                   pred=lambda p: p["from"].bare == self.alice[0])
            self.assertEqual(pres["type"], "available")
            self.assertEqual(b.client_roster[self.alice[0]]["subscription"], "both")
            # chat both ways, several messages each, in order
            for i in range(5):
                a.send_message(mto=bob[0], mbody=f"a->b {i}", mtype="chat")
            for i in range(5):
                m = await next_item(b.messages, timeout=20)
                self.assertEqual((m["body"], m["from"].bare), (f"a->b {i}", self.alice[0]))
            for i in range(5):
                b.send_message(mto=self.alice[0], mbody=f"b->a {i}", mtype="chat")
            for i in range(5):
                m = await next_item(a.messages, timeout=20)
                self.assertEqual((m["body"], m["from"].bare), (f"b->a {i}", bob[0]))
            # bob leaves: Parley's user sees it through Prosody
            await b.offline()
            pres = await next_item(a.presences, timeout=20,
                                   pred=lambda p: p["type"] == "unavailable")
            self.assertEqual(pres["from"].bare, bob[0])
            await a.offline()

        run(flow())
        # Both directions were authenticated with dialback, each checked by
        # the other side (Parley's log for its part, Prosody's for its).
        wait_for_log(self.a, r"authenticated as a\.test to b\.test with dialback")
        wait_for_log(self.a, r"b\.test authenticated with dialback")
        plog = self.prosody.logtext()
        self.assertTrue(re.search(r"_xmpp-server\._tcp\.a\.test", plog),
                        "Prosody did not look a.test up in DNS:\n" + plog[-3000:])


class ProsodyBidi(unittest.TestCase):
    """XEP-0288 with Prosody's mod_s2s_bidi: both sides hold certificates
    from one test CA, so Parley's stream to Prosody is authenticated by
    certificate with no dialback connection back, and Prosody's replies
    come over that same stream. mod_smacks is on, so acknowledgements run
    on the bidirectional stream too."""

    def setUp(self):
        self.a = Server("a.test")
        self.alice = self.a.add_user("alice")
        certs = make_ca_certs(os.path.join(self.a.dir, "ca"), ["a.test", "b.test"])
        cert, key = certs["a.test"]
        self.a.edit_s2s("<!-- test CA -->",
                        old="<certfile>tls/a.test.pem</certfile>"
                            "<keyfile>tls/a.test.key</keyfile></cert>\n    </tls>",
                        new=f"<certfile>{cert}</certfile><keyfile>{key}</keyfile></cert>\n"
                            f"      <ca-file>{certs['ca']}</ca-file>\n    </tls>")
        self.prosody = Prosody("b.test", "127.0.0.2", dns_address(), {"bob": "bobpass"},
                               bidi=True, tls=(*certs["b.test"], certs["ca"]))
        self.prosody.cert = certs["ca"]  # what bob's client checks Prosody's certificate with
        self.dns = Dnsmasq(self.prosody.dns_address,
                           srv=[("_xmpp-server._tcp.a.test", "a.test", self.a.ports["s2s"]),
                                ("_xmpp-server._tcp.b.test", "b.test", self.prosody.s2s_port)],
                           hosts=[("a.test", "127.0.0.1"), ("b.test", "127.0.0.2")])
        self.a.use_nameserver(self.prosody.dns_address, 53)

    def tearDown(self):
        try:
            self.a.stop()
        finally:
            self.prosody.cleanup()
            self.dns.stop()

    def s2s_connections(self):
        """Established TCP connections to either side's s2s port."""
        ports = {self.a.ports["s2s"], self.a.ports["s2s_tls"], self.prosody.s2s_port}
        n = 0
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(path) as f:
                for line in list(f)[1:]:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) in ports:
                        n += 1
        return n

    def test_messages_both_ways_over_one_bidi_stream(self):
        self.prosody.start()
        self.a.start()
        bob = ("bob@b.test", "bobpass")

        async def flow():
            a = await Client(self.a, *self.alice).online()
            b = await ProsodyClient(self.prosody, *bob).online()
            # alice writes first: Parley opens the one stream
            for i in range(3):
                a.send_message(mto=bob[0], mbody=f"a->b {i}", mtype="chat")
            for i in range(3):
                m = await next_item(b.messages, timeout=30)
                self.assertEqual((m["body"], m["from"].bare), (f"a->b {i}", self.alice[0]))
            for i in range(3):
                b.send_message(mto=self.alice[0], mbody=f"b->a {i}", mtype="chat")
            for i in range(3):
                m = await next_item(a.messages, timeout=20)
                self.assertEqual((m["body"], m["from"].bare), (f"b->a {i}", bob[0]))
            await b.offline()
            await a.offline()

        run(flow())
        self.assertEqual(self.s2s_connections(), 1)
        wait_for_log(self.a, r"a\.test->b\.test .*bidi: b\.test may send its stanzas to us")
        self.assertNotIn("s2s in", self.a.log())  # Prosody never connected to us

    def test_prosody_opens_the_bidi_stream(self):
        """The other way round: bob (Prosody) writes first, so Prosody opens
        the stream and asks for bidi; alice's replies go back on it, with
        stanza acknowledgements both ways."""
        self.prosody.start()
        self.a.start()
        bob = ("bob@b.test", "bobpass")

        async def flow():
            a = await Client(self.a, *self.alice).online()
            b = await ProsodyClient(self.prosody, *bob).online()
            for i in range(3):
                b.send_message(mto=self.alice[0], mbody=f"b->a {i}", mtype="chat")
            for i in range(3):
                m = await next_item(a.messages, timeout=30)
                self.assertEqual((m["body"], m["from"].bare), (f"b->a {i}", bob[0]))
            for i in range(12):
                a.send_message(mto=bob[0], mbody=f"a->b {i}", mtype="chat")
            for i in range(12):
                m = await next_item(b.messages, timeout=20)
                self.assertEqual((m["body"], m["from"].bare), (f"a->b {i}", self.alice[0]))
            # Prosody enabled acks (mod_smacks) on its stream; a.test asks
            # for them too (once a second while some wait)
            a.send_message(mto=bob[0], mbody="acked?", mtype="chat")
            m = await next_item(b.messages, timeout=20)
            self.assertEqual(m["body"], "acked?")
            await asyncio.sleep(2.5)
            await b.offline()
            await a.offline()

        run(flow())
        self.assertEqual(self.s2s_connections(), 1)
        wait_for_log(self.a, r"b\.test->a\.test: the peer asked for a bidirectional stream")
        wait_for_log(self.a, r"bidi: route a\.test->b\.test uses this incoming stream")
        self.assertNotIn("s2s out", self.a.log())  # Parley never connected to Prosody
        self.assertNotIn("stream error", self.a.log())
        plog = self.prosody.logtext()
        # (Prosody writes attributes in no fixed order)
        self.assertRegex(plog, r"Received\[s2sout\]: <r [^>]*xmlns='urn:xmpp:sm:3'")
        self.assertRegex(plog, r"Sending\[s2sout\]: <a [^>]*h='[1-9]")


if __name__ == "__main__":
    unittest.main()
