# SPDX-License-Identifier: MIT
"""parley-resolver through the real router, asking a real DNS server
(dnsmasq, or a Python responder for SERVFAIL and silence) on loopback: SRV
order and weights, both services, the A/AAAA fallback, ".", nxdomain,
servfail, timeout, nameserver failover, the cache (positive and negative,
TTL clamps and expiry, shared lookups), static overrides and their reload,
a router restart, and bad requests that leave the daemon serving."""

import os
import secrets
import signal
import subprocess
import time
import unittest

from dnsfix import DnsServer, NxdomainServer, ServfailServer, SilentServer, Srv
from harness import (NS_COMP, NS_STANZAS, Daemon, Deployment, binary, component, q, secret,
                     wait_log)

NS_RES = "urn:parley:resolver:1"
IQ = q("iq", NS_COMP)

RECORDS = dict(
    srv=[
        # b.test: direct TLS at priority 0, STARTTLS at 10 and 20
        Srv("_xmpps-server._tcp.b.test", "tls.b.test", 5270, 0, 0),
        Srv("_xmpp-server._tcp.b.test", "x2.b.test", 5269, 20, 0),
        Srv("_xmpp-server._tcp.b.test", "x1.b.test", 5269, 10, 0),
        # e.test: both services at the same priority: direct TLS first
        Srv("_xmpp-server._tcp.e.test", "plain.e.test", 5269, 5, 0),
        Srv("_xmpps-server._tcp.e.test", "tls.e.test", 5223, 5, 0),
        # w.test: two targets of equal priority and weight
        Srv("_xmpp-server._tcp.w.test", "wa.w.test", 5269, 0, 50),
        Srv("_xmpp-server._tcp.w.test", "wb.w.test", 5269, 0, 50),
        # dot.test: "no service here"
        Srv("_xmpp-server._tcp.dot.test", None),
        # gone.test: a target that does not resolve
        Srv("_xmpp-server._tcp.gone.test", "nowhere.gone.test", 5269),
        # c.test: for the shared lookup
        Srv("_xmpp-server._tcp.c.test", "xmpp.c.test", 5269),
    ],
    hosts={
        "tls.b.test": ["127.0.0.2", "::2"],
        "x1.b.test": ["127.0.0.3"],
        "x2.b.test": ["127.0.0.4"],
        "plain.e.test": ["127.0.0.6"],
        "tls.e.test": ["127.0.0.7"],
        "wa.w.test": ["127.0.0.8"],
        "wb.w.test": ["127.0.0.9"],
        "plain.test": ["127.0.0.5", "::5"],
        "xmpp.c.test": ["127.0.0.10"],
    },
    ttl=300)


def targets(resolved):
    return [(t.get("host"), int(t.get("port")), t.get("tls"),
             [a.text for a in t.findall(q("address", NS_RES))])
            for t in resolved.findall(q("target", NS_RES))]


class ResolverCase(unittest.TestCase):
    """A router, a resolver configured with RESOLVER (XML inside
    <resolver>, {ns} replaced by the nameserver element) and a component
    's2s' that asks it."""

    RESOLVER = "{ns}"
    DNS = None  # a callable returning the server to start, or None
    EXPECT_ERRORS = ()

    def setUp(self):
        self.dns = self.DNS() if self.DNS else None
        ns = ""
        if self.dns is not None:
            self.dns.start()
            self.addCleanup(self.dns.stop)  # runs even when setUp fails below
            ns = self.dns.nameserver_xml()
        self.comps = {"resolver": (secret(), []), "s2s": (secret(), [])}
        self.ns = ns
        extra = "  <resolver>" + self.RESOLVER.format(ns=ns) + "</resolver>\n"
        self.dep = Deployment(self.comps, extra=extra)
        self.addCleanup(self.dep.cleanup)
        self.dep.start("parley-router")
        self.resolver = self.dep.start("parley-resolver", expect_errors=self.EXPECT_ERRORS)
        wait_log(self.resolver, "connected to the router")
        self.s2s = component(self.dep.router_port, "s2s", self.comps["s2s"][0])

    def tearDown(self):
        self.s2s.close()

    def ask(self, payload, typ="get"):
        iid = secrets.token_hex(4)
        self.s2s.send(f"<iq type='{typ}' id='{iid}' from='s2s' to='resolver'>{payload}</iq>")
        return self.s2s.expect(IQ, timeout=15, pred=lambda e: e.get("id") == iid)

    def resolve(self, domain):
        iq = self.ask(f"<resolve xmlns='{NS_RES}' domain='{domain}'/>")
        self.assertEqual(iq.get("type"), "result")
        self.assertEqual(iq.get("from"), "resolver")
        self.assertEqual(iq.get("to"), "s2s")
        res = iq.find(q("resolved", NS_RES))
        self.assertIsNotNone(res)
        self.assertEqual(res.get("domain"), domain.lower())
        return res

    def assert_error(self, iq, cond):
        self.assertEqual(iq.get("type"), "error")
        err = iq.find(q("error", NS_COMP))
        self.assertIsNotNone(err.find(q(cond, NS_STANZAS)), f"no <{cond}/> in the error")


class Dns(ResolverCase):
    DNS = staticmethod(lambda: DnsServer(**RECORDS))

    def test_srv_by_priority_with_both_services_and_addresses(self):
        res = self.resolve("b.test")
        self.assertEqual(res.get("status"), "ok")
        self.assertEqual(res.get("source"), "dns")
        self.assertEqual(res.get("ttl"), "300")
        self.assertEqual(targets(res), [
            ("tls.b.test", 5270, "direct", ["127.0.0.2", "::2"]),
            ("x1.b.test", 5269, "starttls", ["127.0.0.3"]),
            ("x2.b.test", 5269, "starttls", ["127.0.0.4"]),
        ])

    def test_equal_priority_puts_direct_tls_first(self):
        res = self.resolve("e.test")
        self.assertEqual([(h, p, t) for h, p, t, _ in targets(res)],
                         [("tls.e.test", 5223, "direct"), ("plain.e.test", 5269, "starttls")])

    def test_no_srv_falls_back_to_the_domain_on_5269(self):
        res = self.resolve("plain.test")
        self.assertEqual(res.get("status"), "ok")
        self.assertEqual(targets(res), [("plain.test", 5269, "starttls", ["127.0.0.5", "::5"])])

    def test_dot_target_is_no_service(self):
        res = self.resolve("dot.test")
        self.assertEqual(res.get("status"), "no-service")
        self.assertEqual(targets(res), [])

    def test_target_that_does_not_resolve_is_left_out(self):
        res = self.resolve("gone.test")
        self.assertEqual(res.get("status"), "no-service")
        self.assertEqual(targets(res), [])

    def test_unknown_domain_is_nxdomain_and_cached(self):
        res = self.resolve("nothere.test")
        self.assertEqual(res.get("status"), "nxdomain")
        self.assertEqual(res.get("source"), "dns")
        self.assertEqual(res.get("ttl"), "60")  # the default negative-ttl
        again = self.resolve("nothere.test")
        self.assertEqual(again.get("status"), "nxdomain")
        self.assertEqual(again.get("source"), "cache")

    def test_cache_answers_while_the_dns_server_is_gone(self):
        first = self.resolve("B.Test")  # names are case-insensitive
        self.assertEqual(first.get("source"), "dns")
        self.dns.stop()
        again = self.resolve("b.test")
        self.assertEqual(again.get("source"), "cache")
        self.assertEqual(again.get("status"), "ok")
        self.assertLessEqual(int(again.get("ttl")), 300)
        self.assertGreater(int(again.get("ttl")), 290)
        self.assertEqual(targets(again), targets(first))

    def test_concurrent_requests_share_one_lookup(self):
        ids = [secrets.token_hex(4) for _ in range(5)]
        for iid in ids:
            self.s2s.send(f"<iq type='get' id='{iid}' from='s2s' to='resolver'>"
                          f"<resolve xmlns='{NS_RES}' domain='c.test'/></iq>")
        for iid in ids:
            iq = self.s2s.expect(IQ, timeout=15, pred=lambda e, i=iid: e.get("id") == i)
            res = iq.find(q("resolved", NS_RES))
            self.assertEqual(res.get("status"), "ok")
            self.assertEqual(targets(res), [("xmpp.c.test", 5269, "starttls", ["127.0.0.10"])])
        asked = self.dns.logtext().count("query[SRV] _xmpp-server._tcp.c.test")
        self.assertEqual(asked, 1, self.dns.logtext())

    def test_bad_requests_get_errors_and_the_daemon_keeps_serving(self):
        self.assert_error(self.ask(f"<resolve xmlns='{NS_RES}'/>"), "bad-request")
        self.assert_error(self.ask(f"<resolve xmlns='{NS_RES}' domain='b\u00fccher.test'/>"),
                          "bad-request")
        self.assert_error(self.ask(f"<resolve xmlns='{NS_RES}' domain='{'a' * 250}.test'/>"),
                          "bad-request")
        self.assert_error(self.ask(f"<resolve xmlns='{NS_RES}' domain='{'a' * 64}.test'/>"),
                          "bad-request")
        self.assert_error(self.ask(f"<resolve xmlns='{NS_RES}' domain='a..test'/>"),
                          "bad-request")
        self.assert_error(self.ask("<query xmlns='jabber:iq:version'/>"), "service-unavailable")
        self.assert_error(self.ask(f"<resolve xmlns='{NS_RES}' domain='b.test'/>", typ="set"),
                          "service-unavailable")
        wait_log(self.resolver, r"warn: .*bad request from s2s: the domain is not ASCII")
        wait_log(self.resolver, r"warn: .*unsupported request from s2s: <query")
        self.assertEqual(self.resolve("b.test").get("status"), "ok")

    def test_router_restart(self):
        """The resolver reconnects to a new router and answers again."""
        self.assertEqual(self.resolve("b.test").get("status"), "ok")
        self.s2s.close()
        router = self.dep.daemons[0]
        router.stop()
        wait_log(self.resolver, "router link down")
        self.dep.daemons.remove(router)
        self.dep.daemons.insert(0, Daemon("parley-router", self.dep.config, self.dep.dir).start())
        deadline = time.time() + 15
        while self.resolver.logtext().count("connected to the router") < 2:
            self.assertLess(time.time(), deadline, self.resolver.logtext())
            time.sleep(0.05)
        self.s2s = component(self.dep.router_port, "s2s", self.comps["s2s"][0])
        self.assertEqual(self.resolve("b.test").get("source"), "cache")
        self.assertEqual(self.resolve("c.test").get("status"), "ok")


class Failover(ResolverCase):
    """The first nameserver never answers: udns moves on to the second."""
    DNS = SilentServer
    RESOLVER = "{ns}{ns2}<timeout>2s</timeout><attempts>1</attempts>"

    def setUp(self):
        self.real = DnsServer(**RECORDS)
        self.real.start()
        self.addCleanup(self.real.stop)
        self.RESOLVER = self.RESOLVER.replace("{ns2}", self.real.nameserver_xml())
        super().setUp()

    def test_second_nameserver_answers(self):
        res = self.resolve("b.test")
        self.assertEqual(res.get("status"), "ok")
        self.assertEqual(len(targets(res)), 3)
        self.assertGreater(self.dns.queries, 0, "the silent server was asked first")


class Ttl(ResolverCase):
    """TTLs are clamped by min-ttl/max-ttl; negative answers get negative-ttl;
    an answer leaves the cache when its TTL is over."""
    DNS = staticmethod(lambda: DnsServer(**dict(RECORDS, ttl=2)))
    RESOLVER = ("{ns}<cache><min-ttl>0s</min-ttl><max-ttl>100s</max-ttl>"
                "<negative-ttl>200s</negative-ttl></cache>")

    def test_expiry_and_clamps(self):
        first = self.resolve("b.test")
        self.assertEqual((first.get("source"), first.get("ttl")), ("dns", "2"))
        again = self.resolve("b.test")
        self.assertEqual(again.get("source"), "cache")
        self.assertIn(again.get("ttl"), ("1", "2"))
        time.sleep(3)
        self.assertEqual(self.resolve("b.test").get("source"), "dns")
        neg = self.resolve("nothere.test")
        self.assertEqual((neg.get("status"), neg.get("ttl")), ("nxdomain", "100"))


class MinTtl(ResolverCase):
    DNS = staticmethod(lambda: DnsServer(**dict(RECORDS, ttl=2)))
    RESOLVER = "{ns}<cache><min-ttl>20s</min-ttl></cache>"

    def test_short_ttl_raised_to_min_ttl(self):
        self.assertEqual(self.resolve("b.test").get("ttl"), "20")
        time.sleep(3)  # past the records' own TTL, within min-ttl
        self.assertEqual(self.resolve("b.test").get("source"), "cache")


class NoCache(ResolverCase):
    DNS = staticmethod(lambda: DnsServer(**RECORDS))
    RESOLVER = "{ns}<cache><size>0</size></cache>"

    def test_equal_weights_spread_over_both_targets(self):
        first = {"wa.w.test": 0, "wb.w.test": 0}
        for _ in range(60):
            res = self.resolve("w.test")
            self.assertEqual(res.get("source"), "dns")  # no cache: asked every time
            got = targets(res)
            self.assertEqual(sorted(h for h, _, _, _ in got), ["wa.w.test", "wb.w.test"])
            first[got[0][0]] += 1
        self.assertGreaterEqual(first["wa.w.test"], 5, first)
        self.assertGreaterEqual(first["wb.w.test"], 5, first)


class Servfail(ResolverCase):
    DNS = ServfailServer

    def test_servfail_is_its_own_status_and_not_cached(self):
        t0 = time.time()
        res = self.resolve("b.test")
        self.assertEqual(res.get("status"), "servfail")
        self.assertEqual(targets(res), [])
        self.assertLess(time.time() - t0, 3, "a SERVFAIL must not wait for the timeout")
        self.assertEqual(self.resolve("b.test").get("source"), "dns")
        self.assertGreater(self.dns.queries, 0)


class NegativeSoa(ResolverCase):
    DNS = staticmethod(lambda: NxdomainServer(ttl=600, minimum=45))

    def test_nxdomain_ttl_comes_from_the_soa(self):
        res = self.resolve("gone.test")
        self.assertEqual((res.get("status"), res.get("ttl")), ("nxdomain", "45"))
        again = self.resolve("gone.test")
        self.assertEqual(again.get("source"), "cache")


class ServfailCached(ResolverCase):
    DNS = ServfailServer
    RESOLVER = "{ns}<cache><failure-ttl>30s</failure-ttl></cache>"

    def test_failure_ttl_keeps_servfail_briefly(self):
        first = self.resolve("b.test")
        self.assertEqual((first.get("status"), first.get("ttl")), ("servfail", "30"))
        asked = self.dns.queries
        again = self.resolve("b.test")
        self.assertEqual((again.get("status"), again.get("source")), ("servfail", "cache"))
        self.assertEqual(self.dns.queries, asked)


class Timeout(ResolverCase):
    DNS = SilentServer
    RESOLVER = "{ns}<timeout>1s</timeout><attempts>1</attempts>"

    def test_no_answer_is_timeout(self):
        t0 = time.time()
        res = self.resolve("b.test")
        self.assertEqual(res.get("status"), "timeout")
        self.assertEqual(targets(res), [])
        self.assertLess(time.time() - t0, 8)
        self.assertGreater(self.dns.queries, 0)
        self.assertEqual(self.resolve("b.test").get("source"), "dns")  # not cached

    def test_stop_with_a_lookup_in_flight(self):
        """SIGTERM while udns still waits: a clean exit (no leak under ASan)."""
        self.s2s.send(f"<iq type='get' id='w1' from='s2s' to='resolver'>"
                      f"<resolve xmlns='{NS_RES}' domain='slow.test'/></iq>")
        wait_log(self.resolver, "slow.test: new lookup")
        self.resolver.stop()  # requires exit code 0 and a clean log


class MaxPending(ResolverCase):
    DNS = SilentServer
    RESOLVER = "{ns}<timeout>1s</timeout><attempts>1</attempts><max-pending>1</max-pending>"

    def test_requests_beyond_max_pending_get_resource_constraint(self):
        self.s2s.send(f"<iq type='get' id='p1' from='s2s' to='resolver'>"
                      f"<resolve xmlns='{NS_RES}' domain='one.test'/></iq>")
        wait_log(self.resolver, "one.test: new lookup")
        refused = self.ask(f"<resolve xmlns='{NS_RES}' domain='two.test'/>")
        self.assert_error(refused, "resource-constraint")
        first = self.s2s.expect(IQ, timeout=15, pred=lambda e: e.get("id") == "p1")
        self.assertEqual(first.find(q("resolved", NS_RES)).get("status"), "timeout")
        # the slot is free again
        self.assertEqual(self.resolve("two.test").get("status"), "timeout")
        wait_log(self.resolver, r"warn: .*requests wait for DNS already; refused the one from s2s")


class Static(ResolverCase):
    DNS = SilentServer  # any DNS query would time out
    EXPECT_ERRORS = (r"reload: .*static domain='x\.\.test'.*keeping the running",)
    RESOLVER = ("{ns}<timeout>1s</timeout><attempts>1</attempts>"
                "<static domain='b.test'><target host='127.0.0.2' port='5269' tls='starttls'/>"
                "<target host='xmpp.b.test' port='5270' tls='direct'>"
                "<address>127.0.0.3</address><address>::3</address></target></static>"
                "<static domain='closed.test'/>")

    def test_static_override_answers_without_dns(self):
        res = self.resolve("B.test")
        self.assertEqual(res.get("status"), "ok")
        self.assertEqual(res.get("source"), "static")
        self.assertEqual(targets(res), [("127.0.0.2", 5269, "starttls", ["127.0.0.2"]),
                                        ("xmpp.b.test", 5270, "direct", ["127.0.0.3", "::3"])])
        closed = self.resolve("closed.test")
        self.assertEqual((closed.get("status"), closed.get("source")), ("no-service", "static"))
        literal = self.resolve("192.0.2.1")
        self.assertEqual(targets(literal), [("192.0.2.1", 5269, "starttls", ["192.0.2.1"])])
        self.assertEqual(self.dns.queries, 0)

    def test_reload_applies_overrides_and_keeps_a_bad_file_out(self):
        self.dep.extra = ("  <resolver>" + self.ns + "<timeout>1s</timeout><attempts>1</attempts>"
                          "<static domain='b.test'><target host='127.0.0.9'/></static>"
                          "</resolver>\n")
        self.dep.write_config()
        self.resolver.signal(signal.SIGHUP)
        wait_log(self.resolver, "configuration reloaded")
        self.assertEqual(targets(self.resolve("b.test")),
                         [("127.0.0.9", 5269, "starttls", ["127.0.0.9"])])
        self.assertEqual(self.resolve("closed.test").get("status"), "timeout")  # gone: DNS
        self.dep.extra = "  <resolver><static domain='x..test'/></resolver>\n"
        self.dep.write_config()
        self.resolver.signal(signal.SIGHUP)
        wait_log(self.resolver, "keeping the running configuration")
        self.assertEqual(targets(self.resolve("b.test")),
                         [("127.0.0.9", 5269, "starttls", ["127.0.0.9"])])

    def test_other_domains_still_use_dns(self):
        self.assertEqual(self.resolve("other.test").get("status"), "timeout")


class NameOverride(unittest.TestCase):
    def test_dash_n_names_the_component(self):
        comps = {"resolver-2": (secret(), []), "s2s": (secret(), [])}
        dep = Deployment(comps, extra="  <resolver><nameserver address='127.0.0.1' port='9'/>"
                                       "</resolver>\n")
        try:
            dep.start("parley-router")
            d = dep.start("parley-resolver", args=["-n", "resolver-2"])
            wait_log(d, "resolver resolver-2: connected to the router")
            s2s = component(dep.router_port, "s2s", comps["s2s"][0])
            s2s.send(f"<iq type='get' id='n1' from='s2s' to='resolver-2'>"
                     f"<resolve xmlns='{NS_RES}' domain='192.0.2.7'/></iq>")
            iq = s2s.expect(IQ, timeout=15)
            s2s.close()
            self.assertEqual(iq.get("from"), "resolver-2")
            res = iq.find(q("resolved", NS_RES))
            self.assertEqual((res.get("status"), res.get("source")), ("ok", "static"))
            self.assertEqual(targets(res), [("192.0.2.7", 5269, "starttls", ["192.0.2.7"])])
        finally:
            dep.cleanup()


class UnderParleyd(unittest.TestCase):
    """parleyd starts parley-resolver when the file has a <resolver> section."""

    def test_parleyd_starts_the_resolver(self):
        import shutil
        import tempfile
        import xml.etree.ElementTree as ET
        from test_parleyd import Parleyd, child_pids, init_with_free_ports, strip_sections
        tmp = tempfile.mkdtemp(prefix="parley-resolver-")
        d = None
        try:
            p, ports = init_with_free_ports(tmp)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(tmp, "parley.xml")) as f:
                text = strip_sections(f.read())
            secrets_by_name = {c.get("name"): c.get("secret")
                               for c in ET.fromstring(text).findall("component")}
            # port 9 (discard): nothing is asked there, a static answer needs no DNS
            text = text.replace("</parley>", "  <resolver><nameserver address='127.0.0.1' "
                                "port='9'/><static domain='x.test'/></resolver>\n</parley>")
            config = os.path.join(tmp, "with-resolver.xml")
            with open(config, "w") as f:
                f.write(text)
            d = Parleyd(config, tmp).start()
            self.assertEqual(len(child_pids(d.proc.pid)), 2, d.logtext())
            self.assertIn("started parley-resolver", d.logtext())
            self.assertIn("ready: 2 daemons running", d.logtext())
            s2s = component(ports["router-port"], "s2s", secrets_by_name["s2s"])
            s2s.send("<iq type='get' id='p1' from='s2s' to='resolver'>"
                     f"<resolve xmlns='{NS_RES}' domain='x.test'/></iq>")
            res = s2s.expect(IQ, timeout=15).find(q("resolved", NS_RES))
            s2s.close()
            self.assertEqual((res.get("status"), res.get("source")), ("no-service", "static"))
            self.assertEqual(d.stop(), 0, d.logtext())
            self.assertIn("parley-resolver: notice: stopped", d.logtext())
            d.check_log()
            d = None
        finally:
            if d is not None:
                d.kill()
            shutil.rmtree(tmp, ignore_errors=True)


class BadConfig(unittest.TestCase):
    def check(self, section, message):
        dep = Deployment({"resolver": (secret(), [])},
                         extra=f"  <resolver>{section}</resolver>\n")
        try:
            p = subprocess.run([binary("parley-resolver"), "-t", "-c", dep.config],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(p.returncode, 0)
            self.assertRegex(p.stderr, message)
        finally:
            dep.cleanup()

    def test_errors_name_the_key(self):
        self.check("<nameserver address='dns.example' port='53'/>",
                   r"<resolver><nameserver @address>: \"dns.example\" is not a numeric")
        self.check("<nameserver address='127.0.0.1' port='99999'/>",
                   r"parley.xml:\d+: <resolver><nameserver @port>")
        self.check("<static domain='x.test'><target host='xmpp.x.test'/></static>",
                   r"static domain='x.test'><target>: host 'xmpp.x.test' is a name")
        self.check("<cache><size>lots</size></cache>",
                   r"parley.xml:\d+: <resolver><cache><size>: \"lots\" is not an integer")


if __name__ == "__main__":
    unittest.main()
