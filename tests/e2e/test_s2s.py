# SPDX-License-Identifier: MIT
"""Federation: two whole Parley deployments, a.test and b.test, each run
by parleyd, find each other through parley-resolver asking a real DNS
server (dnsmasq with SRV records, dnsfix.py) and talk through
parley-s2s: subscriptions, presence, messages and vCards across domains;
SASL EXTERNAL with certificates from one test CA, dialback with
self-signed ones; the require-valid-cert policy; bounces for a domain
that does not resolve, for a remote that never answers and for one that
dies; a raw peer that lies about its domain gets <invalid-from/>;
bidirectional streams (XEP-0288): one connection carries both ways."""

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
import unittest

from flows import Client, next_item, run
from harness import NS_ROUTER, NS_STANZAS, Stream, binary, component, q
from s2sfix import (NS_DB, NS_SASL, NS_STREAM, RawPeer, RawServer, Server, dialback_key,
                    federation_dns, make_ca_certs, wait_for_log)


NS_SM = "urn:xmpp:sm:3"


def send(client, to, body, mid):
    m = client.make_message(mto=to, mbody=body, mtype="chat")
    m["id"] = mid
    m.send()


class Federation(unittest.TestCase):
    """a.test and b.test; each case may change their <s2s> before start."""

    def setUp(self):
        self.a = Server("a.test")
        self.b = Server("b.test")
        self.dns = None

    def tearDown(self):
        try:
            self.a.stop()
        finally:
            try:
                self.b.stop()
            finally:
                if self.dns is not None:
                    self.dns.stop()

    def table(self, **extra):
        t = {"a.test": [("xmpp.a.test", self.a.ports["s2s"], "starttls", "127.0.0.1")],
             "b.test": [("xmpp.b.test", self.b.ports["s2s"], "starttls", "127.0.0.1")]}
        t.update(extra)
        return t

    def start(self, table=None, a_errors=(), b_errors=()):
        """Publishes table in a real DNS server that both deployments'
        parley-resolver ask, then starts them."""
        self.dns = federation_dns(table or self.table())
        for srv in (self.a, self.b):
            srv.use_nameserver(self.dns.address, self.dns.port)
        self.a.start(expect_errors=a_errors)
        self.b.start(expect_errors=b_errors)

    def use_ca(self):
        certs = make_ca_certs(os.path.join(self.a.dir, "ca"), ["a.test", "b.test"])
        for srv in (self.a, self.b):
            cert, key = certs[srv.domain]
            srv.edit_s2s("<!-- test CA -->",
                         old=f"<certfile>tls/{srv.domain}.pem</certfile>"
                             f"<keyfile>tls/{srv.domain}.key</keyfile></cert>\n    </tls>",
                         new=f"<certfile>{cert}</certfile><keyfile>{key}</keyfile></cert>\n"
                             f"      <ca-file>{certs['ca']}</ca-file>\n    </tls>")

    # ---- whole flows ----------------------------------------------------------------

    def chat_both_ways(self):
        alice = self.a.add_user("alice")
        bob = self.b.add_user("bob")

        async def flow():
            a = await Client(self.a, *alice).online()
            b = await Client(self.b, *bob).online()
            for c in (a, b):
                c.register_plugin("xep_0054")
            # alice asks bob; bob's client approves; she sees his presence
            a.send_presence_subscription(pto=bob[0])
            await next_item(a.subscriptions, timeout=20)
            pres = await next_item(a.presences, timeout=20,
                                   pred=lambda p: p["from"].bare == bob[0])
            self.assertEqual(pres["type"], "available")
            self.assertEqual(a.client_roster[bob[0]]["subscription"], "to")
            # and the other way round
            b.send_presence_subscription(pto=alice[0])
            await next_item(b.subscriptions, timeout=20)
            pres = await next_item(b.presences, timeout=20,
                                   pred=lambda p: p["from"].bare == alice[0])
            self.assertEqual(pres["type"], "available")
            self.assertEqual(b.client_roster[alice[0]]["subscription"], "both")
            # messages both ways
            a.send_message(mto=bob[0], mbody="hi bob", mtype="chat")
            m = await next_item(b.messages)
            self.assertEqual((m["body"], m["from"].bare), ("hi bob", alice[0]))
            m.reply("hi alice").send()
            m = await next_item(a.messages)
            self.assertEqual((m["body"], m["from"].bare), ("hi alice", bob[0]))
            # bob publishes his vCard; alice fetches it across the federation
            vc = b["xep_0054"].make_vcard()
            vc["FN"] = "Bob of b.test"
            await b["xep_0054"].publish_vcard(vc, timeout=10)
            got = await a["xep_0054"].get_vcard(bob[0], cached=False, timeout=15)
            self.assertEqual(got["vcard_temp"]["FN"], "Bob of b.test")
            # the remote server itself answers through the federation (its sm):
            # XEP-0199 ping and service discovery
            a.register_plugin("xep_0199")
            a.register_plugin("xep_0030")
            rtt = await a["xep_0199"].ping("b.test", timeout=15)
            self.assertIsNotNone(rtt)
            info = await a["xep_0030"].get_info(jid="b.test", timeout=15)
            self.assertIn("server", [i[0] for i in info["disco_info"]["identities"]])
            # bob goes offline: alice sees it
            await b.offline()
            pres = await next_item(a.presences, pred=lambda p: p["type"] == "unavailable")
            self.assertEqual(pres["from"].bare, bob[0])
            await a.offline()

        run(flow())

    def s2s_connections(self):
        """Established TCP connections to either deployment's s2s ports,
        each counted once (at its listening end), from /proc/net/tcp."""
        ports = {srv.ports[k] for srv in (self.a, self.b) for k in ("s2s", "s2s_tls")}
        n = 0
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(path) as f:
                for line in list(f)[1:]:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) in ports:
                        n += 1
        return n

    def test_bidi_one_connection_both_ways(self):
        """XEP-0288: a.test opens the only stream (SASL EXTERNAL, so b.test
        needs no dialback connection back); b.test's replies, presence and
        vCard answers travel back over it."""
        self.use_ca()
        self.start()
        self.chat_both_ways()
        self.assertEqual(self.s2s_connections(), 1)
        wait_for_log(self.a, r"a\.test->b\.test .*bidi: b\.test may send its stanzas to us")
        wait_for_log(self.b, r"a\.test->b\.test: the peer asked for a bidirectional stream")
        wait_for_log(self.b, r"bidi: route b\.test->a\.test uses this incoming stream")
        self.assertNotIn("connected to xmpp.a.test", self.b.log())
        # acks run both ways on it (XEP-0198) without a disagreement
        self.assertNotIn("stream error", self.a.log() + self.b.log())
        self.assertIn("<bidi>true</bidi>", subprocess.run(
            [binary("parley-s2s"), "-t", "-c", self.a.config], capture_output=True, text=True,
            timeout=60).stdout)

    def test_bidi_off_on_one_side_gives_two_connections(self):
        self.use_ca()
        self.b.edit_s2s("<bidi>false</bidi>")
        self.start()
        self.chat_both_ways()
        self.assertEqual(self.s2s_connections(), 2)
        wait_for_log(self.b, r"b\.test->a\.test .*: connected to xmpp\.a\.test")
        self.assertNotIn("bidi", self.a.log() + self.b.log())

    def test_bidi_raw_peer_gets_our_stanzas_and_cannot_spoof(self):
        """A raw peer with b.test's certificate asks for bidi and proves
        b.test with SASL EXTERNAL: alice's message to bob@b.test comes to it
        on its own stream; then a stanza from a domain it did not
        authenticate ends the stream with <invalid-from/>, and the route
        leaves it. A route on such a stream that must send a db:verify
        leaves it for a stream of its own to the authoritative server."""
        self.use_ca()
        self.start()
        cert = (os.path.join(self.a.dir, "ca", "b.test.pem"),
                os.path.join(self.a.dir, "ca", "b.test.key"))
        alice = self.a.add_user("alice")
        peer = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        self.assertIsNone(peer.features.find(q("bidi", "urn:xmpp:features:bidi")))  # TLS first
        feats = peer.starttls(cert)
        self.assertIsNotNone(feats.find(q("bidi", "urn:xmpp:features:bidi")))
        peer.send("<bidi xmlns='urn:xmpp:bidi'/>")
        peer.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        peer.stream.expect(q("success", NS_SASL))
        feats = peer.restart()
        self.assertIsNone(feats.find(q("bidi", "urn:xmpp:features:bidi")))  # authenticated
        peer.send(f"<enable xmlns='{NS_SM}'/>")
        peer.stream.expect(q("enabled", NS_SM))

        async def flow():
            a = await Client(self.a, *alice).online()
            send(a, "bob@b.test", "over bidi", "b1")
            m = await asyncio.get_event_loop().run_in_executor(
                None, lambda: peer.stream.expect(q("message", "jabber:server"), timeout=20))
            self.assertEqual((m.get("id"), m.get("from"), m.get("to")),
                             ("b1", str(a.boundjid), "bob@b.test"))
            # a asks for an ack of what it sent on the peer's stream (XEP-0198
            # both ways); acknowledged, it is not sent again elsewhere
            await asyncio.get_event_loop().run_in_executor(
                None, lambda: peer.stream.expect(q("r", NS_SM), timeout=5))
            peer.send(f"<a xmlns='{NS_SM}' h='1'/>")
            peer.send(f"<message from='bob@b.test/x' to='{alice[0]}' id='r1' type='chat'>"
                      "<body>back</body></message>")
            m = await next_item(a.messages, timeout=20)
            self.assertEqual((m["id"], m["body"]), ("r1", "back"))
            await a.offline()

        run(flow())
        peer.send(f"<message from='eve@evil.test/x' to='{alice[0]}'><body>2</body></message>")
        peer.stream.expect_stream_error("invalid-from")
        wait_for_log(self.a, r"stream error invalid-from: 'eve@evil\.test/x' is not of a "
                             r"domain this stream authenticated")
        wait_for_log(self.a, r"route a\.test->b\.test down")
        self.assertNotIn("connected to xmpp.b.test", self.a.log())
        # a new bidi peer carries the route again; then another stream
        # proves b.test by dialback: the db:verify must go to b's real
        # server, so the route leaves the bidi stream for one of its own
        peer = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        peer.starttls(cert)
        peer.send("<bidi xmlns='urn:xmpp:bidi'/>")
        peer.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        peer.stream.expect(q("success", NS_SASL))
        peer.restart()
        wait_for_log(self.a, r"bidi: route a\.test->b\.test uses this incoming stream(.|\n)*"
                             r"bidi: route a\.test->b\.test uses this incoming stream")
        peer2 = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        peer2.starttls()
        key = dialback_key(self.b.dialback_secret, "a.test", "b.test", peer2.header.get("id"))
        peer2.send(f"<db:result from='b.test' to='a.test'>{key}</db:result>")
        r = peer2.stream.expect(q("result", NS_DB), timeout=20)
        self.assertEqual(r.get("type"), "valid")
        wait_for_log(self.a, r"a\.test->b\.test leaves the incoming bidi stream to send a "
                             r"db:verify")
        wait_for_log(self.a, r"connected to xmpp\.b\.test")
        peer.close()
        peer2.close()

    def test_bidi_unacknowledged_stanza_goes_back_to_the_queue(self):
        """What a.test sent on a raw peer's bidirectional stream and the
        peer never acknowledged is sent again, to b.test's real server on
        a stream of a's own, when the peer closes: never lost silently."""
        self.use_ca()
        self.start()
        cert = (os.path.join(self.a.dir, "ca", "b.test.pem"),
                os.path.join(self.a.dir, "ca", "b.test.key"))
        alice = self.a.add_user("alice")
        bob = self.b.add_user("bob")
        peer = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        peer.starttls(cert)
        peer.send("<bidi xmlns='urn:xmpp:bidi'/>")
        peer.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        peer.stream.expect(q("success", NS_SASL))
        peer.restart()
        peer.send(f"<enable xmlns='{NS_SM}'/>")
        peer.stream.expect(q("enabled", NS_SM))

        async def flow():
            a = await Client(self.a, *alice).online()
            b = await Client(self.b, *bob).online()
            send(a, bob[0], "not acked", "u1")
            loop = asyncio.get_event_loop()
            m = await loop.run_in_executor(
                None, lambda: peer.stream.expect(q("message", "jabber:server"), timeout=20))
            self.assertEqual(m.get("id"), "u1")
            await loop.run_in_executor(
                None, lambda: peer.stream.expect(q("r", NS_SM), timeout=5))
            peer.send("</stream:stream>")
            m = await next_item(b.messages, timeout=20)
            self.assertEqual((m["id"], m["body"]), ("u1", "not acked"))
            await a.offline()
            await b.offline()

        run(flow())
        peer.close()
        wait_for_log(self.a, r"bytes of stanzas not acknowledged by b\.test go back to the queue")
        wait_for_log(self.a, r"a\.test->b\.test .*: connected to xmpp\.b\.test")

    def test_bidi_initiating_side_checks_the_peers_stanzas(self):
        """a.test connects to a raw receiving server for b.test that offers
        bidi: a sends <bidi/> before dialback, takes bob's reply on its own
        stream, refuses the peer's dialback piggybacking with a dialback
        error, and ends its stream with <invalid-from/> for a stanza from
        a domain the peer did not authenticate; on the next stream, with
        <improper-addressing/> for one to a local domain (a component's)
        that did not authenticate on it."""
        self.use_ca()
        secret = self.a.add_component("svc", ["svc.a.test"])
        raw = RawServer("b.test", (os.path.join(self.a.dir, "ca", "b.test.pem"),
                                   os.path.join(self.a.dir, "ca", "b.test.key")))
        self.start(self.table(**{"b.test": [("xmpp.b.test", raw.port, "starttls",
                                             "127.0.0.1")]}))
        svc = component(self.a.ports["router"], "svc", secret)
        svc.send(f"<bind xmlns='{NS_ROUTER}' name='svc.a.test'/>")
        svc.expect(q("bind", NS_ROUTER))
        alice = self.a.add_user("alice")

        def handshake():
            raw.accept("<bidi xmlns='urn:xmpp:features:bidi'/>"
                       "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>")
            raw.stream.expect(q("bidi", "urn:xmpp:bidi"))  # before authenticating
            r = raw.stream.expect(q("result", NS_DB))
            self.assertEqual((r.get("from"), r.get("to"), r.get("type")),
                             ("a.test", "b.test", None))
            raw.send("<db:result from='b.test' to='a.test' type='valid'/>")
            return raw.stream.expect(q("message", "jabber:server"))

        async def flow():
            a = await Client(self.a, *alice).online()
            send(a, "bob@b.test", "to a raw server", "i1")
            loop = asyncio.get_event_loop()
            m = await loop.run_in_executor(None, handshake)
            self.assertEqual(m.get("id"), "i1")
            raw.send(f"<message from='bob@b.test/x' to='{alice[0]}' id='r1' type='chat'>"
                     "<body>back on your stream</body></message>")
            m = await next_item(a.messages, timeout=20)
            self.assertEqual((m["id"], m["body"]), ("r1", "back on your stream"))
            await a.offline()

        run(flow())
        raw.send("<db:result from='svc.b.test' to='a.test'>00</db:result>")
        r = raw.stream.expect(q("result", NS_DB))
        self.assertEqual((r.get("from"), r.get("to"), r.get("type")),
                         ("a.test", "svc.b.test", "error"))
        self.assertIn(q("feature-not-implemented", NS_STANZAS), [e.tag for e in r.iter()])
        raw.send(f"<message from='eve@evil.test/x' to='{alice[0]}'><body>2</body></message>")
        raw.stream.expect_stream_error("invalid-from")
        wait_for_log(self.a, r"a\.test->b\.test .*stream error invalid-from: 'eve@evil\.test/x' "
                             r"is not of a domain this stream authenticated")
        wait_for_log(self.a, r"bidi: db:result from 'svc\.b\.test' on our stream refused")
        raw.stream.close()
        # a new stream for alice's next message; bob writes to svc.a.test,
        # which never authenticated to b.test on it
        run(self.alice_sends(alice, "again", "i2"))
        m = handshake()
        self.assertEqual(m.get("id"), "i2")
        raw.send("<message from='bob@b.test/x' to='svc.a.test' id='s1'><body>?</body></message>")
        raw.stream.expect_stream_error("improper-addressing")
        wait_for_log(self.a, r"stream error improper-addressing: 'svc\.a\.test': b\.test did not "
                             r"authenticate to it on this stream")
        raw.close()
        svc.close()

    async def alice_sends(self, alice, body, mid):
        a = await Client(self.a, *alice).online()
        send(a, "bob@b.test", body, mid)
        await a.offline()

    def test_dialback_with_self_signed_certificates(self):
        self.start()
        self.chat_both_ways()
        wait_for_log(self.a, r"parley-s2s: notice: .*authenticated as a\.test to b\.test "
                             r"with dialback")
        wait_for_log(self.b, r"parley-s2s: notice: .*authenticated as b\.test to a\.test "
                             r"with dialback")
        wait_for_log(self.b, r"a\.test authenticated with dialback")
        self.assertNotIn("SASL EXTERNAL", self.a.log() + self.b.log())

    def test_many_messages_in_order_both_ways(self):
        self.start()
        alice = self.a.add_user("alice")
        bob = self.b.add_user("bob")
        n = 300
        body = "x" * 2000  # 600 KB each way: more than one stream's output high-water mark

        async def flow():
            a = await Client(self.a, *alice).online()
            b = await Client(self.b, *bob).online()
            for i in range(n):
                send(a, bob[0], f"{i} {body}", f"a{i}")
                send(b, alice[0], f"{i} {body}", f"b{i}")
            got_b = [await next_item(b.messages, timeout=30) for _ in range(n)]
            got_a = [await next_item(a.messages, timeout=30) for _ in range(n)]
            self.assertEqual([m["id"] for m in got_b], [f"a{i}" for i in range(n)])
            self.assertEqual([m["id"] for m in got_a], [f"b{i}" for i in range(n)])
            self.assertTrue(all(m["type"] == "chat" for m in got_a + got_b))
            await a.offline()
            await b.offline()

        run(flow())

    def test_sasl_external_with_certificates_from_one_ca(self):
        self.use_ca()
        # each side authenticates its own stream (no bidi: b opens one too)
        self.a.edit_s2s("<bidi>false</bidi>")
        # b.test is reached over direct TLS (XEP-0368), a.test with STARTTLS
        self.start(self.table(**{"b.test": [("xmpp.b.test", self.b.ports["s2s_tls"], "direct",
                                             "127.0.0.1")]}))
        self.chat_both_ways()
        wait_for_log(self.a, r"a\.test->b\.test .*: connected to xmpp\.b\.test \(direct TLS\)")
        wait_for_log(self.b, r"b\.test->a\.test .*: connected to xmpp\.a\.test \(STARTTLS\)")
        wait_for_log(self.a, r"parley-s2s: notice: .*authenticated as a\.test to b\.test "
                             r"with SASL EXTERNAL")
        wait_for_log(self.b, r"parley-s2s: notice: .*authenticated as b\.test to a\.test "
                             r"with SASL EXTERNAL")
        wait_for_log(self.a, r"b\.test authenticated with SASL EXTERNAL")
        self.assertNotIn("with dialback", self.a.log() + self.b.log())

    def test_domain_of_a_local_component_federates(self):
        """A service on a.test's router (a MUC, a gateway) under its own
        domain is reachable from b.test and can answer."""
        secret = self.a.add_component("svc", ["svc.a.test"])
        self.start(self.table(**{"svc.a.test": [("xmpp.a.test", self.a.ports["s2s"],
                                                 "starttls", "127.0.0.1")]}))
        svc = component(self.a.ports["router"], "svc", secret)
        svc.send(f"<bind xmlns='{NS_ROUTER}' name='svc.a.test'/>")
        svc.expect(q("bind", NS_ROUTER))
        bob = self.b.add_user("bob")

        async def flow():
            b = await Client(self.b, *bob).online()
            send(b, "room@svc.a.test", "hello service", "s1")
            got = await asyncio.get_event_loop().run_in_executor(
                None, lambda: svc.expect(q("message", "jabber:server"), timeout=20))
            self.assertEqual((got.get("id"), got.get("to")), ("s1", "room@svc.a.test"))
            self.assertEqual(got.get("from").split("/")[0], bob[0])
            svc.send(f"<message from='room@svc.a.test/bot' to='{got.get('from')}' id='s2' "
                     "type='chat'><body>hello bob</body></message>")
            m = await next_item(b.messages, timeout=20)
            self.assertEqual((m["id"], m["body"]), ("s2", "hello bob"))
            await b.offline()

        run(flow())
        svc.close()

    def test_sasl_external_incoming_checks(self):
        """XEP-0178 on the receiving side, with a raw peer holding b.test's
        certificate from the test CA."""
        self.use_ca()
        self.start()
        cert = (os.path.join(self.a.dir, "ca", "b.test.pem"),
                os.path.join(self.a.dir, "ca", "b.test.key"))
        alice = self.a.add_user("alice")
        mechs = q("mechanisms", NS_SASL)
        # claiming another domain than the certificate's: EXTERNAL not offered
        peer = RawPeer(self.a.ports["s2s"], "c.test", "a.test")
        self.assertIsNone(peer.starttls(cert).find(mechs))
        peer.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        f = peer.stream.expect(q("failure", NS_SASL))
        self.assertIsNotNone(f.find(q("not-authorized", NS_SASL)))
        # b.test with its certificate, asking to act for c.test: refused
        peer = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        feats = peer.starttls(cert)
        self.assertEqual([m.text for m in feats.find(mechs)], ["EXTERNAL"])
        peer.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>Yy50ZXN0</auth>")  # c.test
        f = peer.stream.expect(q("failure", NS_SASL))
        self.assertIsNotNone(f.find(q("invalid-authzid", NS_SASL)))
        peer.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>AGEAYg==</auth>")
        f = peer.stream.expect(q("failure", NS_SASL))
        self.assertIsNotNone(f.find(q("invalid-mechanism", NS_SASL)))
        # and as itself: success, a new stream, stanzas for a.test accepted
        peer.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        peer.stream.expect(q("success", NS_SASL))
        feats = peer.restart()
        self.assertIsNone(feats.find(mechs))
        # stanza acknowledgements (XEP-0198, no resumption)
        self.assertIsNotNone(feats.find(q("sm", NS_SM)))
        peer.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        enabled = peer.stream.expect(q("enabled", NS_SM))
        self.assertIsNone(enabled.get("resume"))

        async def flow():
            a = await Client(self.a, *alice).online()
            peer.send(f"<message from='bob@b.test/x' to='{alice[0]}' id='e1' type='chat'>"
                      "<body>by certificate</body></message>")
            m = await next_item(a.messages, timeout=20)
            self.assertEqual((m["id"], m["body"], str(m["from"])),
                             ("e1", "by certificate", "bob@b.test/x"))
            await a.offline()

        run(flow())
        peer.send(f"<r xmlns='{NS_SM}'/>")
        self.assertEqual(peer.stream.expect(q("a", NS_SM)).get("h"), "1")
        # a stanza to a domain not served here ends the stream
        peer.send("<message from='bob@b.test/x' to='x@elsewhere.test'><body>?</body></message>")
        peer.stream.expect_stream_error("host-unknown")
        wait_for_log(self.a, r"b\.test authenticated with SASL EXTERNAL")

    def test_second_local_domain_rides_the_first_stream(self):
        """Dialback piggybacking outgoing: once a.test has a stream to
        b.test, a stanza from svc.a.test (a component domain of a's
        deployment) to b.test goes over the same stream after a db:result
        for svc.a.test, instead of a second connection."""
        secret = self.a.add_component("svc", ["svc.a.test"])
        self.start(self.table(**{"svc.a.test": [("xmpp.a.test", self.a.ports["s2s"],
                                                 "starttls", "127.0.0.1")]}))
        svc = component(self.a.ports["router"], "svc", secret)
        svc.send(f"<bind xmlns='{NS_ROUTER}' name='svc.a.test'/>")
        svc.expect(q("bind", NS_ROUTER))
        alice = self.a.add_user("alice")
        bob = self.b.add_user("bob")

        async def flow():
            a = await Client(self.a, *alice).online()
            b = await Client(self.b, *bob).online()
            send(a, bob[0], "from a.test", "d1")
            self.assertEqual((await next_item(b.messages, timeout=20))["id"], "d1")
            svc.send(f"<message from='room@svc.a.test/bot' to='{bob[0]}' id='d2' type='chat'>"
                     "<body>from svc.a.test</body></message>")
            m = await next_item(b.messages, timeout=20)
            self.assertEqual((m["id"], str(m["from"])), ("d2", "room@svc.a.test/bot"))
            await a.offline()
            await b.offline()

        run(flow())
        wait_for_log(self.a, r"svc\.a\.test->b\.test rides this stream")
        wait_for_log(self.a, r"authenticated as svc\.a\.test to b\.test with dialback "
                             r"\(piggybacked\)")
        self.assertEqual(self.a.log().count("connected to xmpp.b.test"), 1)
        # on b, both domains were proved on one incoming stream
        m = wait_for_log(self.b, r"s2s in (\S+) a\.test->b\.test: svc\.a\.test authenticated")
        self.assertIn(f"s2s in {m.group(1)} a.test->b.test: a.test authenticated", self.b.log())
        svc.close()

    def test_refused_rider_connects_on_its_own_then_bounces(self):
        secret = self.a.add_component("svc", ["svc.a.test"])
        self.b.edit_s2s("<remote domain='svc.a.test'><auth>require-valid-cert</auth></remote>")
        self.start(self.table(**{"svc.a.test": [("xmpp.a.test", self.a.ports["s2s"],
                                                 "starttls", "127.0.0.1")]}))
        svc = component(self.a.ports["router"], "svc", secret)
        svc.send(f"<bind xmlns='{NS_ROUTER}' name='svc.a.test'/>")
        svc.expect(q("bind", NS_ROUTER))
        alice = self.a.add_user("alice")
        bob = self.b.add_user("bob")

        async def flow():
            a = await Client(self.a, *alice).online()
            b = await Client(self.b, *bob).online()
            send(a, bob[0], "from a.test", "d1")
            self.assertEqual((await next_item(b.messages, timeout=20))["id"], "d1")
            await a.offline()
            await b.offline()

        run(flow())
        svc.send(f"<message from='room@svc.a.test/bot' to='{bob[0]}' id='d2' type='chat'>"
                 "<body>from svc.a.test</body></message>")
        err = svc.expect(q("message", "jabber:client"), timeout=30)
        self.assertEqual((err.get("id"), err.get("type")), ("d2", "error"))
        self.assertIsNotNone(err.find(f"{{jabber:client}}error/{{{NS_STANZAS}}}"
                                      "remote-server-not-found"))
        wait_for_log(self.a, r"svc\.a\.test->b\.test cannot ride a\.test's stream")
        self.assertEqual(self.a.log().count("connected to xmpp.b.test"), 2)
        svc.close()

    # ---- failures bounce, with the right condition -----------------------------------

    def send_and_bounce(self, to, cond, timeout=30, text_has=None):
        alice = self.a.add_user("alice")

        async def flow():
            a = await Client(self.a, *alice).online()
            send(a, to, "anyone?", "m1")
            m = await next_item(a.messages, timeout=timeout)
            self.assertEqual(m["type"], "error")
            self.assertEqual(m["id"], "m1")
            self.assertEqual(m["from"].bare, to)
            self.assertEqual(m["error"]["condition"], cond)
            if text_has:
                self.assertIn(text_has, m["error"]["text"])
            await a.offline()

        run(flow())

    def test_domain_without_dns_record_bounces(self):
        self.start()
        self.send_and_bounce("nobody@nowhere.test", "remote-server-not-found")
        self.assertIn("_xmpp-server._tcp.nowhere.test", self.dns.logtext())

    def test_unreachable_target_bounces(self):
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens there: connection refused
        self.start(self.table(**{"c.test": [("xmpp.c.test", port, "starttls", "127.0.0.1")]}))
        self.send_and_bounce("carol@c.test", "remote-server-not-found",
                             text_has="connect")

    def test_silent_remote_times_out(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts, never speaks
        self.a.edit_s2s("<connect-timeout>2s</connect-timeout>")
        try:
            self.start(self.table(**{"d.test": [("xmpp.d.test", silent.getsockname()[1],
                                                 "starttls", "127.0.0.1")]}))
            self.send_and_bounce("dave@d.test", "remote-server-timeout")
        finally:
            silent.close()

    def test_require_valid_cert_refuses_self_signed(self):
        self.a.edit_s2s("<remote domain='b.test'><auth>require-valid-cert</auth></remote>")
        self.start()
        bob = self.b.add_user("bob")
        self.send_and_bounce(bob[0], "remote-server-not-found", text_has="require-valid-cert")
        # b's dialback towards a is refused too: b's stanza bounces
        alice = self.a.add_user("alice2")

        async def flow():
            b = await Client(self.b, *bob).online()
            send(b, alice[0], "let me in", "m2")
            m = await next_item(b.messages, timeout=30)
            self.assertEqual((m["type"], m["id"]), ("error", "m2"))
            self.assertEqual(m["error"]["condition"], "remote-server-not-found")
            await b.offline()

        run(flow())
        wait_for_log(self.a, r"dialback from b\.test refused: the policy is require-valid-cert")

    def test_plaintext_refused_by_default_and_allowed_by_policy(self):
        """b.test has no certificate for s2s and allows plaintext; a.test
        refuses plaintext by default, and allows it for b.test by policy."""
        self.b.rewrite_s2s(lambda t: re.sub(
            r"    <tls-port>\d+</tls-port>\n    <tls>.*?</tls>\n", "    <tls-port>0</tls-port>\n",
            t, flags=re.S).replace("<require-tls>true", "<require-tls>false"))
        self.assertNotIn("<cert", self.b.text().split("  <s2s>")[1])
        self.start()
        bob = self.b.add_user("bob")
        self.send_and_bounce(bob[0], "remote-server-not-found",
                             text_has="offers no STARTTLS and TLS is required")
        # now with the policy for b.test: plaintext dialback both ways
        self.a.parleyd.stop()
        self.a.parleyd = None
        self.a.edit_s2s("<remote domain='b.test'><require-tls>false</require-tls></remote>")
        self.a.start()
        alice = ("alice@a.test", "secret")

        async def flow():
            a = await Client(self.a, *alice).online()
            b = await Client(self.b, *bob).online()
            send(a, bob[0], "in the clear", "p1")
            m = await next_item(b.messages, timeout=20)
            self.assertEqual((m["id"], m["body"]), ("p1", "in the clear"))
            send(b, alice[0], "back", "p2")
            m = await next_item(a.messages, timeout=20)
            self.assertEqual((m["id"], m["body"]), ("p2", "back"))
            await a.offline()
            await b.offline()

        run(flow())
        wait_for_log(self.a, r"authenticated as a\.test to b\.test with dialback")

    # ---- a peer that lies about its domain ----------------------------------------

    def test_stanza_from_an_unauthenticated_domain_gets_invalid_from(self):
        self.start()
        alice = self.a.add_user("alice")
        # a raw peer proves b.test by dialback: it knows b's secret, and a
        # checks the key with b's real s2s (the authoritative server)
        peer = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        feats = peer.features
        self.assertIsNotNone(feats.find(q("starttls", "urn:ietf:params:xml:ns:xmpp-tls")))
        peer.starttls()
        key = dialback_key(self.b.dialback_secret, "a.test", "b.test", peer.header.get("id"))
        peer.send(f"<db:result from='b.test' to='a.test'>{key}</db:result>")
        r = peer.stream.expect(q("result", NS_DB), timeout=20)
        self.assertEqual(r.get("type"), "valid")
        # an honest stanza passes; one from another domain ends the stream
        peer.send(f"<message from='bob@b.test/x' to='{alice[0]}' id='ok'><body>1</body>"
                  "</message>")
        peer.send(f"<message from='eve@evil.test/x' to='{alice[0]}' id='bad'><body>2</body>"
                  "</message>")
        peer.stream.expect_stream_error("invalid-from")
        wait_for_log(self.a, r"stream error invalid-from: 'eve@evil\.test/x' is not of a "
                             r"domain this stream authenticated")
        # a wrong key is refused by the authoritative server
        peer2 = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        peer2.starttls()
        peer2.send("<db:result from='b.test' to='a.test'>" + "0" * 64 + "</db:result>")
        r = peer2.stream.expect(q("result", NS_DB), timeout=20)
        self.assertEqual(r.get("type"), "invalid")
        peer2.send(f"<message from='bob@b.test/x' to='{alice[0]}'><body>3</body></message>")
        peer2.stream.expect_stream_error("not-authorized")

    def test_several_domains_on_one_incoming_stream(self):
        """Dialback piggybacking (XEP-0220 §2.5): a raw peer proves b.test and
        then svc.b.test (a component of b's deployment) on one stream; a.test
        checks each with b's real s2s and accepts stanzas from both."""
        secret = self.b.add_component("svc", ["svc.b.test"])
        self.start(self.table(**{"svc.b.test": [("xmpp.b.test", self.b.ports["s2s"],
                                                 "starttls", "127.0.0.1")]}))
        svc = component(self.b.ports["router"], "svc", secret)
        svc.send(f"<bind xmlns='{NS_ROUTER}' name='svc.b.test'/>")
        svc.expect(q("bind", NS_ROUTER))
        alice = self.a.add_user("alice")
        peer = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        peer.starttls()
        sid = peer.header.get("id")
        for domain in ("b.test", "svc.b.test"):
            key = dialback_key(self.b.dialback_secret, "a.test", domain, sid)
            peer.send(f"<db:result from='{domain}' to='a.test'>{key}</db:result>")
            r = peer.stream.expect(q("result", NS_DB), timeout=20)
            self.assertEqual((r.get("from"), r.get("to"), r.get("type")),
                             ("a.test", domain, "valid"))

        async def flow():
            a = await Client(self.a, *alice).online()
            peer.send(f"<message from='bob@b.test/x' to='{alice[0]}' id='p1'><body>1</body>"
                      f"</message><message from='room@svc.b.test/bot' to='{alice[0]}' id='p2'>"
                      "<body>2</body></message>")
            got = [await next_item(a.messages, timeout=20) for _ in range(2)]
            self.assertEqual([(m["id"], str(m["from"])) for m in got],
                             [("p1", "bob@b.test/x"), ("p2", "room@svc.b.test/bot")])
            await a.offline()

        run(flow())
        peer.send(f"<message from='x@other.b.test' to='{alice[0]}'><body>3</body></message>")
        peer.stream.expect_stream_error("invalid-from")
        svc.close()

    def test_plaintext_refused_and_db_verify_answered(self):
        self.start()
        peer = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        tls = peer.features.find(q("starttls", "urn:ietf:params:xml:ns:xmpp-tls"))
        self.assertIsNotNone(tls.find(q("required", "urn:ietf:params:xml:ns:xmpp-tls")))
        peer.send("<db:verify from='b.test' to='a.test' id='x'>00</db:verify>")
        peer.stream.expect_stream_error("policy-violation")
        # after STARTTLS, a.test answers db:verify with its own XEP-0185 key
        peer = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        feats = peer.starttls()
        self.assertIsNotNone(feats.find(q("dialback", "urn:xmpp:features:dialback")))
        self.assertIsNone(feats.find(q("mechanisms", NS_SASL)))  # self-signed: no EXTERNAL
        good = dialback_key(self.a.dialback_secret, "b.test", "a.test", "sid1")
        peer.send(f"<db:verify from='b.test' to='a.test' id='sid1'>{good}</db:verify>")
        peer.send("<db:verify from='b.test' to='a.test' id='sid2'>" + good + "</db:verify>")
        peer.send(f"<db:verify from='b.test' to='nothere.test' id='sid1'>{good}</db:verify>")
        got = [peer.stream.expect(q("verify", NS_DB)) for _ in range(3)]
        self.assertEqual([(v.get("id"), v.get("type")) for v in got],
                         [("sid1", "valid"), ("sid2", "invalid"), ("sid1", "error")])
        self.assertIsNotNone(got[2].find(f"{{jabber:server}}error/{{{NS_STANZAS}}}item-not-found"))
        # a header for a domain not served here
        bad = Stream.connect(self.a.ports["s2s"])
        bad.send(f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                        f"xmlns:stream='{NS_STREAM}' from='b.test' to='elsewhere.test' "
                        "version='1.0'>")
        bad.expect_stream_error("host-unknown")

    def test_peer_that_never_authenticates_is_closed(self):
        self.a.edit_s2s("<connect-timeout>1s</connect-timeout>")
        self.start()
        peer = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        peer.stream.expect_stream_error("connection-timeout", timeout=10)
        wait_for_log(self.a, r"stream error connection-timeout: no domain authenticated")

    def test_bad_input_gets_stream_errors_and_others_are_served(self):
        self.a.edit_s2s("<max-stanza>16K</max-stanza>")
        self.start()

        def header(ns="jabber:server", version=" version='1.0'"):
            return (f"<?xml version='1.0'?><stream:stream xmlns='{ns}' "
                    f"xmlns:stream='{NS_STREAM}' from='b.test' to='a.test'{version}>")

        cases = [
            (header() + "<message><body></message>", "not-well-formed"),
            (header(ns="jabber:client"), "invalid-namespace"),
            (header(version=""), "unsupported-version"),
            (header() + "<foo xmlns='urn:example:bar'/>", "policy-violation"),  # before TLS
        ]
        for data, cond in cases:
            s = Stream.connect(self.a.ports["s2s"])
            s.send(data)
            s.expect_stream_error(cond)
            s.close()
        # after TLS: an unknown element, and a stanza over <max-stanza>
        peer = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        peer.starttls()
        peer.send("<foo xmlns='urn:example:bar'/>")
        peer.stream.expect_stream_error("unsupported-stanza-type")
        peer = RawPeer(self.a.ports["s2s"], "b.test", "a.test")
        peer.starttls()
        peer.send("<message><body>" + "x" * 20000 + "</body></message>")
        peer.stream.expect_stream_error("policy-violation")
        # the daemon still federates
        alice = self.a.add_user("alice")
        bob = self.b.add_user("bob")

        async def flow():
            a = await Client(self.a, *alice).online()
            b = await Client(self.b, *bob).online()
            send(b, alice[0], "still here?", "h1")
            m = await next_item(a.messages, timeout=20)
            self.assertEqual((m["id"], m["body"]), ("h1", "still here?"))
            await a.offline()
            await b.offline()

        run(flow())

    # ---- lifecycle -----------------------------------------------------------------

    def test_idle_stream_closes_and_reconnects_on_demand(self):
        self.a.edit_s2s("<idle-timeout>2s</idle-timeout>")
        self.start()
        alice = self.a.add_user("alice")
        bob = self.b.add_user("bob")

        async def flow():
            a = await Client(self.a, *alice).online()
            b = await Client(self.b, *bob).online()
            a.send_message(mto=bob[0], mbody="one", mtype="chat")
            self.assertEqual((await next_item(b.messages, timeout=20))["body"], "one")
            await asyncio.get_event_loop().run_in_executor(
                None, wait_for_log, self.a, r"a\.test->b\.test.*idle for 2000 ms", 15)
            a.send_message(mto=bob[0], mbody="two", mtype="chat")
            self.assertEqual((await next_item(b.messages, timeout=20))["body"], "two")
            await a.offline()
            await b.offline()

        run(flow())
        self.assertEqual(self.a.log().count("route a.test->b.test up"), 2)

    def test_reload_applies_the_policy_to_new_streams(self):
        self.a.edit_s2s("<idle-timeout>2s</idle-timeout>")
        self.start()
        alice = self.a.add_user("alice")
        bob = self.b.add_user("bob")

        async def flow():
            a = await Client(self.a, *alice).online()
            b = await Client(self.b, *bob).online()
            send(a, bob[0], "before", "r1")
            self.assertEqual((await next_item(b.messages, timeout=20))["id"], "r1")
            # b.test now needs a valid certificate; SIGHUP through parleyd
            self.a.edit_s2s("<remote domain='b.test'><auth>require-valid-cert</auth></remote>")
            self.a.parleyd.signal(signal.SIGHUP)
            await asyncio.get_event_loop().run_in_executor(
                None, wait_for_log, self.a, r"parley-s2s: notice: configuration reloaded", 15)
            await asyncio.get_event_loop().run_in_executor(
                None, wait_for_log, self.a, r"a\.test->b\.test.*idle for 2000 ms", 15)
            send(a, bob[0], "after", "r2")
            m = await next_item(a.messages, timeout=30)
            self.assertEqual((m["id"], m["type"]), ("r2", "error"))
            self.assertIn("require-valid-cert", m["error"]["text"])
            await a.offline()
            await b.offline()

        run(flow())

    def test_local_router_killed_while_a_remote_sends(self):
        """a's router dies during a burst from b: a's s2s does not
        acknowledge what its router link lost, ends b's stream while the
        router is away, and b sends the rest again once it is back."""
        self.start()
        alice = self.a.add_user("alice")
        bob = self.b.add_user("bob")
        n = 100

        async def flow():
            a = await Client(self.a, *alice).online()
            b = await Client(self.b, *bob).online()
            send(b, alice[0], "warm-up", "w")
            self.assertEqual((await next_item(a.messages, timeout=20))["id"], "w")
            router = self.a.child_pid("parley-router")
            for i in range(n):
                send(b, alice[0], f"k{i}", f"k{i}")
                await asyncio.sleep(0.005)
                if i == n // 3:
                    os.kill(router, signal.SIGKILL)
            got, errors = set(), []
            deadline = time.monotonic() + 90
            while len(got) < n and time.monotonic() < deadline:
                try:
                    m = await next_item(a.messages, timeout=1)
                    got.add(m["id"])
                except (AssertionError, asyncio.TimeoutError):
                    pass
                while not b.messages.empty():
                    errors.append(b.messages.get_nowait()["id"])
            def s2s_lines(srv):
                return "\n".join(l for l in srv.log().splitlines() if "s2s" in l)[-6000:]

            self.assertEqual(sorted(set(f"k{i}" for i in range(n)) - got,
                                    key=lambda x: int(x[1:])), [],
                             f"\na:\n{s2s_lines(self.a)}\nb:\n{s2s_lines(self.b)}")
            self.assertEqual(errors, [])
            await a.offline()
            await b.offline()

        run(flow())

    def test_remote_killed_mid_stream_loses_nothing_silently(self):
        self.start()
        alice = self.a.add_user("alice")
        bob = self.b.add_user("bob")
        n = 200

        async def flow():
            a = await Client(self.a, *alice).online()
            b = await Client(self.b, *bob).online()
            a.send_message(mto=bob[0], mbody="warm-up", mtype="chat")
            self.assertEqual((await next_item(b.messages, timeout=20))["body"], "warm-up")
            # the remote s2s dies in the middle of a burst: what it had read
            # but not routed is not acknowledged, so a sends it again or
            # bounces it
            pid = self.b.s2s_pid()
            for i in range(n):
                send(a, bob[0], f"m{i}", f"m{i}")
                if i == n // 2:
                    await asyncio.sleep(0.01)
                    os.kill(pid, signal.SIGKILL)
            delivered, bounced = set(), set()
            deadline = time.monotonic() + 60
            while len(delivered | bounced) < n and time.monotonic() < deadline:
                for queue, seen in ((b.messages, delivered), (a.messages, bounced)):
                    try:
                        m = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        continue
                    if m["body"].startswith("m") or m["type"] == "error":
                        seen.add(m["id"] or m["body"])
                await asyncio.sleep(0.05)
            # every message arrived (parleyd restarts b's s2s at once, and a
            # retries within the queue's max-age) or came back as an error;
            # one that b routed just before dying, before acknowledging it,
            # arrives twice (a could not know)
            self.assertEqual(delivered | bounced, {f"m{i}" for i in range(n)},
                             f"delivered {sorted(delivered)}, bounced {sorted(bounced)}")
            self.assertEqual(bounced, set())
            # once parleyd has restarted b's s2s, the route comes back on demand
            await asyncio.get_event_loop().run_in_executor(
                None, wait_for_log, self.b, r"parley-s2s \(pid \d+\) is ready(.|\n)*"
                r"parley-s2s \(pid \d+\) is ready", 15)
            send(a, bob[0], "after", "after")
            m = await next_item(b.messages, timeout=20, pred=lambda m: m["id"] == "after")
            self.assertEqual(m["body"], "after")
            await a.offline()
            await b.offline()

        run(flow())


class Config(unittest.TestCase):
    """parley-s2s -t on what parleyctl init writes, and on bad <s2s> values:
    each error names the file, the line and the key; exit code 78."""

    def setUp(self):
        self.srv = Server("a.test")

    def tearDown(self):
        self.srv.stop()

    def check(self):
        return subprocess.run([binary("parley-s2s"), "-t", "-c", self.srv.config],
                              capture_output=True, text=True, timeout=60)

    def test_init_output_loads(self):
        p = self.check()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("<dialback-secret>(hidden)</dialback-secret>", p.stdout)
        self.assertIn("<auth>allow-dialback</auth>", p.stdout)

    def test_bad_values_name_the_line(self):
        original = self.srv.text()
        cases = [
            ("<auth>maybe</auth>", "<s2s><auth>"),
            ("<remote domain='a.test'><auth>allow-dialback</auth></remote>",
             "<s2s><remote domain='a.test'>: that is a hosted <domain>"),
            ("<queue><max-age>forever</max-age></queue>", "<s2s><queue><max-age>"),
            ("<colour>red</colour>", "<s2s><colour>: unknown element"),
        ]
        for extra, want in cases:
            with open(self.srv.config, "w") as f:
                f.write(original.replace("    <auth>allow-dialback</auth>\n", "")
                        .replace("  </s2s>", f"    {extra}\n  </s2s>"))
            p = self.check()
            self.assertEqual(p.returncode, 78, f"{extra}: {p.stderr}")
            self.assertIn(want, p.stderr)
        with open(self.srv.config, "w") as f:
            f.write(re.sub(r"<dialback-secret>\w+</dialback-secret>",
                           "<dialback-secret>short</dialback-secret>", original))
        p = self.check()
        self.assertEqual(p.returncode, 78)
        self.assertIn("<dialback-secret>: at least 16 characters", p.stderr)


if __name__ == "__main__":
    unittest.main()
