# SPDX-License-Identifier: MIT
"""parley-router over sockets: handshake, binds and ACLs, routing by domain
and by envelope, bounces, shared names, notices, malformed streams, reload
and shutdown."""

import os
import signal
import subprocess
import time
import unittest

from harness import (NS_COMP, NS_ROUTER, NS_STANZAS, NS_STREAM, Daemon, Deployment,
                     RouterCase, Stream, binary, component, free_port, q, secret)

MSG = q("message", NS_COMP)


def message(frm, to, body="hi", mid="m1", typ=None):
    t = f" type='{typ}'" if typ else ""
    return f"<message from='{frm}' to='{to}' id='{mid}'{t}><body>{body}</body></message>"


class Handshake(RouterCase):
    COMPONENTS = {"a.test": [], "b.test": []}
    EXPECT_ERRORS = ()

    def test_handshake_and_routing_by_domain_keeps_raw_bytes(self):
        a = self.connect("a.test")
        b = self.connect("b.test")
        raw = ("<message from='alice@a.test/x' to='bob@b.test' id='r1' xml:lang='en'>"
               "<body>caf\u00e9 &amp; &lt;tea&gt;</body><x xmlns='urn:example'/></message>")
        a.send(raw)
        got = b.expect(MSG)
        self.assertEqual(got.get("id"), "r1")
        self.assertEqual(got.find(q("body", NS_COMP)).text, "caf\u00e9 & <tea>")
        self.assertIn(raw.encode(), b.raw, "router must forward the bytes as they came")
        # and back
        b.send(message("bob@b.test", "alice@a.test/x", mid="r2"))
        self.assertEqual(a.expect(MSG).get("id"), "r2")

    def test_domain_lookup_is_case_insensitive(self):
        a = self.connect("a.test")
        b = self.connect("b.test")
        a.send(message("alice@A.TEST", "bob@B.Test", mid="c1"))
        self.assertEqual(b.expect(MSG).get("id"), "c1")

    def test_wrong_secret_is_not_authorized(self):
        s = self.connect("a.test", ok=False, secret_override="wrong")
        s.expect_stream_error("not-authorized")
        # and the right one still works afterwards
        self.connect("a.test")

    def test_unknown_component_is_host_unknown(self):
        s = Stream.connect(self.dep.router_port)
        self.streams.append(s)
        s.send(f"<?xml version='1.0'?><stream:stream xmlns:stream='{NS_STREAM}' "
               f"xmlns='{NS_COMP}' to='nobody.test'>")
        s.expect_stream_error("host-unknown")

    def test_wrong_namespace(self):
        s = Stream.connect(self.dep.router_port)
        self.streams.append(s)
        s.send(f"<stream:stream xmlns:stream='{NS_STREAM}' xmlns='jabber:client' to='a.test'>")
        s.expect_stream_error("invalid-namespace")

    def test_second_connection_with_same_name_conflicts(self):
        a = self.connect("a.test")
        s = self.connect("a.test", ok=False)
        s.expect_stream_error("conflict")
        b = self.connect("b.test")
        b.send(message("bob@b.test", "x@a.test", mid="still"))
        self.assertEqual(a.expect(MSG).get("id"), "still")

    def test_stanza_before_handshake(self):
        s = Stream.connect(self.dep.router_port)
        self.streams.append(s)
        s.send(f"<stream:stream xmlns:stream='{NS_STREAM}' xmlns='{NS_COMP}' to='a.test'>"
               + message("a.test", "b.test"))
        s.expect_stream_error("not-authorized")

    def test_spoofed_from_is_invalid_from(self):
        a = self.connect("a.test")
        b = self.connect("b.test")
        a.send(message("mallory@b.test", "bob@b.test"))
        a.expect_stream_error("invalid-from")
        b.expect_nothing(0.3)

    def test_missing_to_is_improper_addressing(self):
        a = self.connect("a.test")
        a.send("<message from='a.test'><body>x</body></message>")
        a.expect_stream_error("improper-addressing")

    def test_handshake_timeout(self):
        self.dep.router_section = "<handshake-timeout>300ms</handshake-timeout>"
        self.dep.write_config()
        self.router.signal(signal.SIGHUP)
        time.sleep(0.3)
        s = Stream.connect(self.dep.router_port)
        self.streams.append(s)
        s.expect_stream_error("connection-timeout", timeout=5)


class Bounces(RouterCase):
    COMPONENTS = {"a.test": [], "b.test": [], "s2s": ["*"]}

    def test_unknown_domain_without_default_route(self):
        a = self.connect("a.test")
        a.send(message("alice@a.test", "bob@nowhere.test", mid="u1"))
        err = a.expect(MSG)
        self.assertEqual(err.get("type"), "error")
        self.assertEqual(err.get("id"), "u1")
        self.assertEqual(err.get("from"), "bob@nowhere.test")
        self.assertEqual(err.get("to"), "alice@a.test")
        e = err.find(q("error", NS_COMP))
        self.assertIsNotNone(e.find(q("remote-server-not-found", NS_STANZAS)))
        self.assertEqual(e.get("type"), "cancel")

    def test_errors_are_never_bounced(self):
        a = self.connect("a.test")
        a.send(message("alice@a.test", "bob@nowhere.test", mid="e1", typ="error"))
        a.expect_nothing(0.5)
        a.send(message("alice@a.test", "bob@nowhere.test", mid="e2"))
        self.assertEqual(a.expect(MSG).get("id"), "e2")

    def test_default_route_takes_unknown_domains(self):
        a = self.connect("a.test")
        s2s = self.connect("s2s")
        s2s.send(f"<bind xmlns='{NS_ROUTER}' name='*' id='b1'/>")
        r = s2s.expect(q("bind", NS_ROUTER))
        self.assertEqual((r.get("type"), r.get("id")), ("result", "b1"))
        a.send(message("alice@a.test", "bob@remote.example", mid="d1"))
        self.assertEqual(s2s.expect(MSG).get("id"), "d1")
        # the default route may send from remote domains to local ones
        s2s.send(message("bob@remote.example", "alice@a.test", mid="d2"))
        self.assertEqual(a.expect(MSG).get("id"), "d2")
        # but not as a locally served domain
        s2s.send(message("eve@a.test", "alice@a.test", mid="d3"))
        s2s.expect_stream_error("invalid-from")

    def test_default_route_to_unknown_domain_is_item_not_found(self):
        s2s = self.connect("s2s")
        s2s.send(f"<bind xmlns='{NS_ROUTER}' name='*'/>")
        s2s.expect(q("bind", NS_ROUTER))
        s2s.send(message("bob@remote.example", "x@other.example", mid="l1"))
        err = s2s.expect(MSG)
        self.assertEqual(err.get("type"), "error")
        self.assertIsNotNone(err.find(f"{q('error', NS_COMP)}/{q('item-not-found', NS_STANZAS)}"))

    def test_iq_bounce_keeps_id_and_swaps_addresses(self):
        a = self.connect("a.test")
        a.send("<iq type='get' id='q1' from='a.test' to='c.test'><ping xmlns='urn:xmpp:ping'/></iq>")
        err = a.expect(q("iq", NS_COMP))
        self.assertEqual((err.get("type"), err.get("id"), err.get("to"), err.get("from")),
                         ("error", "q1", "a.test", "c.test"))


class Envelopes(RouterCase):
    COMPONENTS = {"c2s-1": [], "sm-1": ["example.test"], "sm-2": ["example.test"],
                  "watcher": []}

    def test_parley_components_exchange_by_domain_and_envelope(self):
        c2s = self.start_testcomp("c2s-1")
        sm = self.start_testcomp("sm-1", binds=["example.test"])
        env = (f"<route xmlns='{NS_ROUTER}' from='c2s-1' to='alice@example.test' seq='1'>"
               "<message xmlns='jabber:client' to='bob@example.test'><body>x</body></message>"
               "</route>")
        c2s.send(env)
        got = sm.event("RECV")
        self.assertIn("seq='1'", got)
        self.assertIn("<body>x</body>", got)
        back = (f"<route xmlns='{NS_ROUTER}' from='sm-1' to='c2s-1' sid='7'>"
                "<message xmlns='jabber:client' to='alice@example.test/r'/></route>")
        sm.send(back)
        self.assertIn("sid='7'", c2s.event("RECV"))
        # a plain stanza by domain, from a libcommon component
        sm.send("<message xmlns='jabber:component:accept' from='example.test' to='c2s-1' "
                "id='p1'/>")
        self.assertIn("id='p1'", c2s.event("RECV"))

    def test_envelope_to_missing_component_bounces(self):
        c2s = self.connect("c2s-1")
        inner = "<message xmlns='jabber:client' to='x@y'><body>lost?</body></message>"
        c2s.send(f"<route xmlns='{NS_ROUTER}' from='c2s-1' to='c2s-9' sid='3'>{inner}</route>")
        r = c2s.expect(q("route", NS_ROUTER))
        self.assertEqual((r.get("type"), r.get("cond"), r.get("to"), r.get("from"), r.get("sid")),
                         ("error", "service-unavailable", "c2s-1", "c2s-9", "3"))
        self.assertIn(inner.encode(), c2s.raw, "the payload comes back unchanged")

    def test_bind_acl(self):
        sm = self.connect("sm-1")
        sm.send(f"<bind xmlns='{NS_ROUTER}' name='other.test' id='x'/>")
        r = sm.expect(q("bind", NS_ROUTER))
        self.assertEqual(r.get("type"), "error")
        self.assertIsNotNone(r.find(f"{q('error', NS_ROUTER)}/{q('not-allowed', NS_STANZAS)}"))
        sm.send(f"<bind xmlns='{NS_ROUTER}' name='Example.TEST' id='y'/>")
        r = sm.expect(q("bind", NS_ROUTER))
        self.assertEqual((r.get("type"), r.get("name")), ("result", "example.test"))
        sm.send(f"<unbind xmlns='{NS_ROUTER}' name='example.test'/>")
        self.assertEqual(sm.expect(q("unbind", NS_ROUTER)).get("type"), "result")
        sm.send(f"<unbind xmlns='{NS_ROUTER}' name='sm-1'/>")
        r = sm.expect(q("unbind", NS_ROUTER))
        self.assertIsNotNone(r.find(f"{q('error', NS_ROUTER)}/{q('not-allowed', NS_STANZAS)}"))

    def test_refused_bind_reaches_libcommon_client(self):
        t = self.dep.testcomp("c2s-1", binds=["example.test"])
        self.testcomps.append(t)
        self.assertEqual(t.event("BINDERR"), "BINDERR example.test not-allowed")
        t.event("UP")

    def _spread(self, first, second):
        """Connects two sms in the given order; returns user -> sm name."""
        socks = {n: self.connect(n) for n in (first, second)}
        for s in socks.values():
            s.send(f"<bind xmlns='{NS_ROUTER}' name='example.test'/>")
            s.expect(q("bind", NS_ROUTER))
        c2s = self.connect("c2s-1")
        users = [f"user{i}@example.test" for i in range(60)]
        for i, u in enumerate(users):
            for res in ("a", "b"):  # two resources of one user: same sm
                c2s.send(f"<route xmlns='{NS_ROUTER}' from='c2s-1' to='{u}/{res}' n='{i}'/>")
        owner = {}
        for name, s in socks.items():
            deadline = time.time() + 10
            while time.time() < deadline:
                el = s.read(0.3)
                if el is None:
                    if sum(1 for v in owner.values()) >= len(users):
                        break
                    continue
                u = el.get("to").split("/")[0]
                prev = owner.setdefault(u, name)
                self.assertEqual(prev, name, f"{u} split across components")
        self.assertEqual(len(owner), len(users))
        for s in list(socks.values()) + [c2s]:
            s.close()
        self.streams.clear()
        return owner

    def test_shared_name_spreads_by_bare_jid_deterministically(self):
        first = self._spread("sm-1", "sm-2")
        counts = {n: list(first.values()).count(n) for n in ("sm-1", "sm-2")}
        self.assertGreater(counts["sm-1"], 10, counts)
        self.assertGreater(counts["sm-2"], 10, counts)
        time.sleep(0.3)  # let the router notice the closes
        second = self._spread("sm-2", "sm-1")
        self.assertEqual(first, second, "the choice must not depend on connection order")

    def test_connect_and_disconnect_are_announced(self):
        w = self.connect("watcher")
        sm = self.connect("sm-1")
        w.send(f"<watch xmlns='{NS_ROUTER}'/>")
        up = w.expect(q("component", NS_ROUTER), pred=lambda e: e.get("name") == "sm-1")
        self.assertEqual(up.get("state"), "up")
        sm.send(f"<bind xmlns='{NS_ROUTER}' name='example.test'/>")
        up = w.expect(q("component", NS_ROUTER), pred=lambda e: e.get("name") == "sm-1")
        self.assertEqual(sorted(b.get("name") for b in up), ["example.test", "sm-1"])
        c2s = self.connect("c2s-1")
        self.assertEqual(w.expect(q("component", NS_ROUTER),
                                  pred=lambda e: e.get("name") == "c2s-1").get("state"), "up")
        sm.close()
        down = w.expect(q("component", NS_ROUTER), pred=lambda e: e.get("name") == "sm-1")
        self.assertEqual(down.get("state"), "down")
        # and the name is gone: an envelope to it bounces
        c2s.send(f"<route xmlns='{NS_ROUTER}' from='c2s-1' to='sm-1'/>")
        self.assertEqual(c2s.expect(q("route", NS_ROUTER)).get("cond"), "service-unavailable")

    def test_client_rebinds_after_router_restart(self):
        sm = self.start_testcomp("sm-1", binds=["example.test"])
        self.router.stop()
        sm.event("DOWN")
        self.router = self.dep.start("parley-router")
        sm.event("UP", timeout=15)
        c2s = self.connect("c2s-1")
        c2s.send(f"<route xmlns='{NS_ROUTER}' from='c2s-1' to='bob@example.test' k='again'/>")
        self.assertIn("k='again'", sm.event("RECV"))


class Malformed(RouterCase):
    COMPONENTS = {"a.test": [], "b.test": []}
    ROUTER_SECTION = "<max-stanza>8k</max-stanza>"

    def check_others_served(self):
        a = self.connect("a.test")
        b = self.connect("b.test")
        a.send(message("a.test", "b.test", mid="alive"))
        self.assertEqual(b.expect(MSG).get("id"), "alive")

    def bad(self, data, cond, handshake=True):
        if handshake:
            s = self.connect("a.test")
        else:
            s = Stream.connect(self.dep.router_port)
            self.streams.append(s)
        s.send(data)
        s.expect_stream_error(cond)
        s.close()
        self.streams.remove(s)
        time.sleep(0.1)
        self.check_others_served()

    def test_bad_xml(self):
        self.bad("<message from='a.test' to='b.test'><body></message>", "not-well-formed")

    def test_doctype(self):
        self.bad("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
                 "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
                 f"<stream:stream xmlns:stream='{NS_STREAM}' xmlns='{NS_COMP}' to='a.test'>",
                 "restricted-xml", handshake=False)

    def test_oversize_stanza(self):
        big = "x" * 20000
        self.bad(message("a.test", "b.test", body=big), "policy-violation")

    def test_not_a_stanza(self):
        self.bad("<foo/>", "unsupported-stanza-type")


class Reload(RouterCase):
    COMPONENTS = {"a.test": [], "sm-1": ["example.test"]}

    def test_sighup_reloads_secrets_and_acls_keeping_connections(self):
        a = self.connect("a.test")
        sm = self.connect("sm-1")
        sm.send(f"<bind xmlns='{NS_ROUTER}' name='example.test'/>")
        sm.expect(q("bind", NS_ROUTER))
        old = self.comps["a.test"][0]
        self.comps["a.test"] = (secret(), [])
        self.comps["sm-1"] = (self.comps["sm-1"][0], [])  # may no longer bind example.test
        self.dep.components = self.comps
        self.dep.write_config()
        self.router.signal(signal.SIGHUP)
        deadline = time.time() + 5
        while "configuration reloaded" not in self.router.logtext() and time.time() < deadline:
            time.sleep(0.05)
        # existing connections stay
        a.send(message("a.test", "x@sm-1", mid="kept"))
        self.assertEqual(sm.expect(MSG).get("id"), "kept")
        # the binding is gone
        a.send(message("a.test", "x@example.test", mid="gone"))
        err = a.expect(MSG)
        self.assertEqual((err.get("id"), err.get("type")), ("gone", "error"))
        # the old secret is refused; the new one is accepted (once the name is free)
        s = self.connect("a.test", ok=False, secret_override=old)
        s.expect_stream_error("not-authorized")
        s = self.connect("a.test", ok=False)
        s.expect_stream_error("conflict")
        a.close()
        time.sleep(0.2)
        self.connect("a.test")

    def test_bad_config_on_reload_keeps_running(self):
        a = self.connect("a.test")
        with open(self.dep.config, "a") as f:
            f.write("<oops/>")
        self.router.expect_errors.append(__import__("re").compile("reload: .*parley.xml"))
        self.router.signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertIn("keeping the running configuration", self.router.logtext())
        sm = self.connect("sm-1")
        a.send(message("a.test", "sm-1", mid="alive"))
        self.assertEqual(sm.expect(MSG).get("id"), "alive")


class Config(unittest.TestCase):
    def run_router(self, text, *extra):
        d = Deployment({"a.test": (secret(), [])})
        with open(d.config, "w") as f:
            f.write(text.replace("PORT", str(d.router_port)))
        p = subprocess.run([binary("parley-router"), "-f", "-c", d.config, *extra],
                           capture_output=True, text=True, timeout=20)
        return d, p

    def test_bad_value_names_file_line_key_and_exits_before_listening(self):
        d, p = self.run_router("<parley>\n<router-link><port>PORT</port></router-link>\n"
                               "<component name='a' secret='s'/>\n"
                               "<router>\n  <max-stanza>lots</max-stanza>\n</router>\n</parley>\n")
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertRegex(p.stderr, r"parley\.xml:5: <router><max-stanza>")

    def test_unknown_key(self):
        d, p = self.run_router("<parley>\n<component name='a' secret='s'/>\n<router>\n"
                               "<colour>blue</colour></router></parley>")
        self.assertEqual(p.returncode, 78)
        self.assertRegex(p.stderr, r"parley\.xml:4: <router><colour>")

    def test_missing_required(self):
        d, p = self.run_router("<parley><component name='a'/></parley>")
        self.assertEqual(p.returncode, 78)
        self.assertIn("secret", p.stderr)

    def test_check_prints_effective_config(self):
        d, p = self.run_router("<parley><router-link><port>PORT</port></router-link>"
                               "<component name='a' secret='s'/></parley>", "-t")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("<output-limit>", p.stdout)
        self.assertIn('secret="(hidden)"', p.stdout)
        self.assertNotIn("secret='s'", p.stdout)

    def test_port_in_use_is_a_clear_error(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        d, p = self.run_router(f"<parley><router-link><port>{port}</port></router-link>"
                               "<component name='a' secret='s'/></parley>")
        s.close()
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot listen", p.stderr)


if __name__ == "__main__":
    unittest.main()
