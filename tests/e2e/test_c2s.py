# SPDX-License-Identifier: MIT
"""parley-c2s over sockets, as a client sees it: stream headers and every
stream error, STARTTLS and direct TLS, each SASL mechanism (SCRAM with and
without channel binding, PLAIN, EXTERNAL, ANONYMOUS) and its failures,
per-stream and per-address failure limits, resource binding held until the
sm answers, stanza forwarding with the real sm, in-band registration
(XEP-0077), the idle timeout, keepalives, rate limits, max-connections, and
15,000 connections held by one process."""

import base64
import ctypes
import ctypes.util
import hashlib
import hmac
import os
import sqlite3
import re
import resource
import secrets as pysecrets
import select
import shutil
import signal
import tempfile
import selectors
import socket
import ssl
import subprocess
import sys
import time
import unittest

from harness import (NS_CLIENT, NS_ROUTER, NS_STANZAS, NS_STREAM, NS_STREAMS, Deployment, Stream,
                     binary, component, free_port, make_certs, parleyctl, q, secret, wait_log)

DOMAIN = "example.test"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_REGISTER = "jabber:iq:register"
NS_REG_FEATURE = "http://jabber.org/features/iq-register"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
NS_SM_LINK = "urn:parley:session:1"
ALICE_PLAIN = base64.b64encode(b"\0alice\0secret").decode()
PLAINTEXT = "<require-tls>false</require-tls><allow-plaintext-auth>true</allow-plaintext-auth>"


def b64(data):
    return base64.b64encode(data).decode()


def sm_built():
    try:
        binary("parley-sm")
        return True
    except FileNotFoundError:
        return False


# ---- a deployment: router, c2s and optionally the sm ------------------------------


class Env:
    """A router and a c2s (and the sm on demand) in a temp directory, with
    users created by parleyctl. c2s is extra XML for the <c2s> section."""

    def __init__(self, c2s="", users=(("alice", "secret"),), tls=False, client_certs=(),
                 sm=False, expect_errors=(), domains=()):
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.dep = Deployment({"c2s": (secret(), []), "sm": (secret(), [DOMAIN]),
                               "gw": (secret(), [])})
        tls_xml = ""
        if tls:
            self.certs = make_certs(os.path.join(self.dep.dir, "tls"), DOMAIN, client_certs)
            tls_xml = (f"<tls><cert domain='{DOMAIN}'><certfile>{self.certs['cert']}</certfile>"
                       f"<keyfile>{self.certs['key']}</keyfile></cert>"
                       f"<ca-file>{self.certs['ca']}</ca-file></tls>")
        more = "".join(f"<domain>{d}</domain>" for d in domains)
        self.dep.extra = (f"  <domain>{DOMAIN}</domain>{more}\n"
                          f"  <data-dir>{self.dep.dir}</data-dir>\n"
                          f"  <c2s><port>{self.port}</port><tls-port>{self.tls_port}</tls-port>"
                          f"<http-port>0</http-port>{tls_xml}{c2s}</c2s>\n")
        self.dep.write_config()
        parleyctl(self.dep.config, "db", "init")
        for user, password in users:
            parleyctl(self.dep.config, "user", "add", f"{user}@{DOMAIN}", password)
        self.sm = None
        try:
            self.router = self.dep.start("parley-router")
            self.c2s = self.dep.start("parley-c2s", expect_errors=expect_errors)
            wait_log(self.c2s, "connected to the router as c2s")
            if sm:
                self.start_sm()
        except BaseException:
            for d in self.dep.daemons:
                d.kill()
            raise

    def start_sm(self):
        ups = len(re.findall("component sm is up", self.c2s.logtext()))
        self.sm = self.dep.start("parley-sm")
        deadline = time.time() + 10
        while len(re.findall("component sm is up", self.c2s.logtext())) <= ups:
            if time.time() > deadline:
                raise AssertionError("the c2s did not see the sm come up:\n" + self.c2s.logtext())
            time.sleep(0.05)

    def tls_ctx(self, version=None, cert=None):
        ctx = ssl.create_default_context(cafile=self.certs["ca"])
        if version == "1.2":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if cert is not None:
            ctx.load_cert_chain(*self.certs[cert])
        return ctx

    def cleanup(self):
        self.dep.cleanup()


# ---- a raw XML client ------------------------------------------------------------------


class Client:
    """One client stream, spoken as raw XML."""

    def __init__(self, port, tls_ctx=None):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls_ctx is not None:
            sock = tls_ctx.wrap_socket(sock, server_hostname=DOMAIN)
        self.s = Stream(sock)
        self.features = None
        self.header = None

    def send(self, data):
        self.s.send(data)

    def open(self, to=DOMAIN, version="1.0", xmlns=NS_CLIENT, extra=""):
        t = f" to='{to}'" if to is not None else ""
        v = f" version='{version}'" if version is not None else ""
        self.s.send(f"<?xml version='1.0'?><stream:stream xmlns='{xmlns}' "
                    f"xmlns:stream='{NS_STREAM}'{t}{v}{extra}>")
        self.header = self.s.wait_header()
        return self.header

    def open_features(self, **kw):
        self.open(**kw)
        self.features = self.s.expect(q("features", NS_STREAM))
        return self.features

    def restart(self, **kw):
        self.s = Stream(self.s.sock)
        return self.open_features(**kw)

    def mechanisms(self):
        m = self.features.find(q("mechanisms", NS_SASL))
        return [x.text for x in m] if m is not None else []

    def starttls(self, ctx):
        self.s.send(f"<starttls xmlns='{NS_TLS}'/>")
        self.s.expect(q("proceed", NS_TLS))
        self.s = Stream(ctx.wrap_socket(self.s.sock, server_hostname=DOMAIN))
        return self.open_features()

    def sasl(self, mech, data=None):
        """<auth/> with data (None: no initial response; b'': '='); returns
        the answer (challenge, success, failure or a stream error)."""
        text = "" if data is None else ("=" if data == b"" else b64(data))
        self.s.send(f"<auth xmlns='{NS_SASL}' mechanism='{mech}'>{text}</auth>")
        return self.next()

    def respond(self, data):
        text = "=" if data == b"" else b64(data)
        self.s.send(f"<response xmlns='{NS_SASL}'>{text}</response>")
        return self.next()

    def next(self, timeout=10):
        el = self.s.read(timeout)
        if el is None:
            raise AssertionError(f"no answer; closed={self.s.closed} raw={self.s.raw[-300:]!r}")
        return el

    def plain(self, user, password, authzid=""):
        return self.sasl("PLAIN", f"{authzid}\0{user}\0{password}".encode())

    def scram(self, user, password, mech="SCRAM-SHA-256", cb=None, flag="n", cb_data=None):
        """A SCRAM exchange (RFC 5802); cb is (type, data) for -PLUS. Returns
        (final element, server-first attributes)."""
        name = "sha1" if mech.startswith("SCRAM-SHA-1") else "sha256"
        gs2 = (f"p={cb[0]}" if cb else flag) + ",,"
        cnonce = b64(os.urandom(18))
        first_bare = f"n={user},r={cnonce}"
        el = self.sasl(mech, (gs2 + first_bare).encode())
        if el.tag != q("challenge", NS_SASL):
            return el, None
        server_first = base64.b64decode(el.text).decode()
        sf = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert sf["r"].startswith(cnonce)
        salted = hashlib.pbkdf2_hmac(name, password.encode(), base64.b64decode(sf["s"]),
                                     int(sf["i"]))
        client_key = hmac.new(salted, b"Client Key", name).digest()
        stored = hashlib.new(name, client_key).digest()
        binding = gs2.encode() + (cb_data if cb_data is not None else (cb[1] if cb else b""))
        without_proof = f"c={b64(binding)},r={sf['r']}"
        auth_msg = f"{first_bare},{server_first},{without_proof}".encode()
        sig = hmac.new(stored, auth_msg, name).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        el = self.respond(f"{without_proof},p={b64(proof)}".encode())
        if el.tag == q("success", NS_SASL):
            server_key = hmac.new(salted, b"Server Key", name).digest()
            want = "v=" + b64(hmac.new(server_key, auth_msg, name).digest())
            assert base64.b64decode(el.text).decode() == want, "bad server signature"
        return el, sf

    def login(self, user, password):
        el = self.plain(user, password)
        assert el.tag == q("success", NS_SASL), el.tag
        return self.restart()

    def bind(self, resource=None, timeout=10):
        r = f"<resource>{resource}</resource>" if resource is not None else ""
        self.s.send(f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'>{r}</bind></iq>")
        return self.s.read(timeout)

    def close(self):
        self.s.close()


def tls_exporter(sslsock):
    """RFC 9266 tls-exporter. Python 3.11's ssl has no export_keying_material,
    so OpenSSL's SSL_export_keying_material is called through ctypes on the
    SSL * of the _ssl socket object (checked against SSL_get_version)."""
    try:
        libssl = ctypes.CDLL(ctypes.util.find_library("ssl") or "libssl.so.3")
        ptr = ctypes.c_void_p.from_address(id(sslsock._sslobj) + 3 * ctypes.sizeof(ctypes.c_void_p))
        libssl.SSL_get_version.restype = ctypes.c_char_p
        libssl.SSL_get_version.argtypes = [ctypes.c_void_p]
        if libssl.SSL_get_version(ptr.value).decode() != sslsock.version():
            raise unittest.SkipTest("cannot reach OpenSSL's SSL object from Python")
        f = libssl.SSL_export_keying_material
        f.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                      ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        out = ctypes.create_string_buffer(32)
        label = b"EXPORTER-Channel-Binding"
        if f(ptr.value, out, 32, label, len(label), None, 0, 0) != 1:
            raise unittest.SkipTest("SSL_export_keying_material failed")
        return out.raw
    except (OSError, AttributeError) as e:
        raise unittest.SkipTest(f"no tls-exporter from Python: {e}")


class C2SCase(unittest.TestCase):
    """Base: one Env per class (ENV holds its arguments); clients closed
    after each test."""

    ENV = {}

    @classmethod
    def setUpClass(cls):
        cls.env = Env(**cls.ENV)

    @classmethod
    def tearDownClass(cls):
        cls.env.cleanup()

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def client(self, tls_ctx=None, port=None):
        c = Client(port or self.env.port, tls_ctx)
        self.clients.append(c)
        return c

    def opened(self, **kw):
        c = self.client()
        c.open_features(**kw)
        return c

    def assertFailure(self, el, cond):
        self.assertEqual(el.tag, q("failure", NS_SASL), f"{el.tag}")
        conds = [x.tag for x in el if x.tag != q("text", NS_SASL)]
        self.assertEqual(conds, [q(cond, NS_SASL)])

    def assertIqError(self, el, cond, typ=None):
        self.assertEqual((el.tag, el.get("type")), (q("iq", NS_CLIENT), "error"))
        err = el.find(q("error", NS_CLIENT))
        self.assertIsNotNone(err.find(q(cond, NS_STANZAS)), f"expected {cond}")
        if typ is not None:
            self.assertEqual(err.get("type"), typ)


# ---- stream headers and stream errors ----------------------------------------------------


class Streams(C2SCase):
    ENV = dict(c2s=PLAINTEXT +
               "<max-stanza>4K</max-stanza>", domains=("second.test",))

    def test_header_and_features(self):
        c = self.client()
        f = c.open_features()
        h = c.header
        self.assertEqual(h.get("from"), DOMAIN)
        self.assertEqual(h.get("version"), "1.0")
        self.assertGreaterEqual(len(h.get("id")), 32)
        self.assertEqual(h.get("{http://www.w3.org/XML/1998/namespace}lang"), "en")
        self.assertEqual(c.mechanisms(), ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
        self.assertIsNone(f.find(q("starttls", NS_TLS)), "no certificate: no STARTTLS")
        self.assertIsNone(f.find(q("register", NS_REG_FEATURE)), "registration is off")
        self.assertIn(b"xmlns='jabber:client'", c.s.raw)

    def test_header_echoes_lang_and_from(self):
        c = self.client()
        c.open(extra=f" xml:lang='de' from='alice@{DOMAIN}'")
        self.assertEqual(c.header.get("{http://www.w3.org/XML/1998/namespace}lang"), "de")
        self.assertEqual(c.header.get("to"), f"alice@{DOMAIN}")

    def test_higher_minor_version_is_answered_with_1_0(self):
        c = self.client()
        c.open_features(version="1.5")
        self.assertEqual(c.header.get("version"), "1.0")

    def test_bad_namespace(self):
        c = self.client()
        c.open(xmlns="jabber:server")
        c.s.expect_stream_error("invalid-namespace")

    def test_bad_stream_namespace(self):
        c = self.client()
        c.send(f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='urn:wrong' to='{DOMAIN}' "
               "version='1.0'>")
        c.s.wait_header()
        c.s.expect_stream_error("invalid-namespace")

    def test_unknown_host(self):
        c = self.client()
        c.open(to="nowhere.test")
        self.assertIsNone(c.header.get("from"))
        c.s.expect_stream_error("host-unknown")

    def test_restart_to_another_domain_is_host_unknown(self):
        c = self.client()
        c.open_features(to="SECOND.test")
        self.assertEqual(c.header.get("from"), "second.test")
        c = self.opened()
        self.assertEqual(c.plain("alice", "secret").tag, q("success", NS_SASL))
        c.s = Stream(c.s.sock)
        c.open(to="second.test")
        c.s.expect_stream_error("host-unknown")

    def test_client_sent_negotiation_answers_are_unsupported(self):
        for el in (f"<proceed xmlns='{NS_TLS}'/>", f"<success xmlns='{NS_SASL}'/>"):
            c = self.opened()
            c.send(el)
            c.s.expect_stream_error("unsupported-stanza-type")

    def test_missing_to(self):
        c = self.client()
        c.open(to=None)
        c.s.expect_stream_error("host-unknown")

    def test_unsupported_version(self):
        for version in ("2.0", None, "0.9"):
            c = self.client()
            c.open(version=version)
            c.s.expect_stream_error("unsupported-version")

    def test_not_well_formed(self):
        c = self.opened()
        c.send("<message><body>x</message>")
        el = c.s.expect_stream_error("not-well-formed")
        self.assertIn("mismatched", el.find(q("text", NS_STREAMS)).text)

    def test_restricted_xml(self):
        c = self.opened()
        c.send("<!-- a comment -->")
        c.s.expect_stream_error("restricted-xml")

    def test_stanza_before_auth_is_not_authorized(self):
        c = self.opened()
        c.send(f"<message to='bob@{DOMAIN}'><body>hi</body></message>")
        c.s.expect_stream_error("not-authorized")

    def test_unknown_element_is_unsupported_stanza_type(self):
        c = self.opened()
        c.send("<enable xmlns='urn:xmpp:sm:3'/>")
        c.s.expect_stream_error("unsupported-stanza-type")

    def test_oversize_stanza_is_policy_violation(self):
        c = self.opened()
        c.send("<iq type='get' id='x'><query xmlns='jabber:iq:version'>" + "a" * 5000)
        c.s.expect_stream_error("policy-violation")

    def test_registration_off_is_service_unavailable(self):
        c = self.opened()
        c.send(f"<iq type='get' id='r1'><query xmlns='{NS_REGISTER}'/></iq>")
        self.assertIqError(c.next(), "service-unavailable", "cancel")

    def test_stanza_before_bind_is_not_authorized(self):
        c = self.client()
        c.open_features()
        f = c.login("alice", "secret")
        self.assertIsNotNone(f.find(q("bind", NS_BIND)))
        session = f.find(q("session", NS_SESSION))
        self.assertIsNotNone(session.find(q("optional", NS_SESSION)))
        self.assertEqual(c.mechanisms(), [])
        c.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        self.assertEqual(c.next().get("type"), "result")
        c.send("<presence/>")
        c.s.expect_stream_error("not-authorized")

    def test_bind_without_sm_is_held(self):
        c = self.client()
        c.open_features()
        c.login("alice", "secret")
        self.assertIsNone(c.bind("phone", timeout=1.5), "bind must wait for the sm")
        self.assertFalse(c.s.closed)
        c.send("<presence/>")
        c.s.expect_stream_error("not-authorized")

    def test_bind_bad_resource_is_bad_request(self):
        c = self.client()
        c.open_features()
        c.login("alice", "secret")
        self.assertIqError(c.bind("r" * 1100), "bad-request", "modify")
        c.send("<iq type='get' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        self.assertIqError(c.next(), "bad-request")

    def test_errors_leave_others_served(self):
        good = self.client()
        good.open_features()
        good.login("alice", "secret")
        for junk in ("<a><b></a>", "\x00\x01", "<?pi x?>"):
            bad = self.opened()
            bad.send(junk)
            bad.s.wait_closed()
        good.send(f"<iq type='set' id='s2'><session xmlns='{NS_SESSION}'/></iq>")
        self.assertEqual(good.next().get("id"), "s2")

    def test_client_close_is_answered(self):
        c = self.opened()
        c.send("</stream:stream>")
        c.s.wait_closed()
        self.assertTrue(c.s.raw.endswith(b"</stream:stream>"))


# ---- SASL ------------------------------------------------------------------------------------


class Sasl(C2SCase):
    ENV = dict(c2s=PLAINTEXT +
               "<auth-fail-limit>1000</auth-fail-limit>"
               f"<anonymous>{DOMAIN}</anonymous>",
               users=(("alice", "secret"), ("bob", "p\u00e4ss w\u00f6rd")))

    def test_mechanisms_with_anonymous(self):
        c = self.opened()
        self.assertEqual(c.mechanisms(),
                         ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "ANONYMOUS"])

    def test_plain(self):
        c = self.opened()
        el = c.plain("alice", "secret")
        self.assertEqual(el.tag, q("success", NS_SASL))
        self.assertIsNone(el.text)
        f = c.restart()
        self.assertIsNotNone(f.find(q("bind", NS_BIND)))

    def test_plain_with_bare_jid_and_own_authzid(self):
        c = self.opened()
        el = c.plain(f"alice@{DOMAIN}", "secret", authzid=f"alice@{DOMAIN}")
        self.assertEqual(el.tag, q("success", NS_SASL))

    def test_plain_wrong_password_and_unknown_user_look_the_same(self):
        c = self.opened()
        wrong = c.plain("alice", "nope")
        self.assertFailure(wrong, "not-authorized")
        unknown = c.plain("nobody", "nope")
        self.assertFailure(unknown, "not-authorized")
        self.assertEqual(base64.b64encode(repr([(x.tag, x.text) for x in wrong]).encode()),
                         base64.b64encode(repr([(x.tag, x.text) for x in unknown]).encode()))
        # the client may retry on the same stream
        self.assertEqual(c.plain("alice", "secret").tag, q("success", NS_SASL))

    def test_scram_sha1_and_sha256(self):
        for mech, user, pw in (("SCRAM-SHA-1", "alice", "secret"),
                               ("SCRAM-SHA-256", "bob", "p\u00e4ss w\u00f6rd")):
            c = self.opened()
            el, sf = c.scram(user, pw, mech)
            self.assertEqual(el.tag, q("success", NS_SASL), mech)
            self.assertGreaterEqual(int(sf["i"]), 4096)
            c.restart()

    def test_scram_wrong_password(self):
        c = self.opened()
        el, _ = c.scram("alice", "wrong", "SCRAM-SHA-256")
        self.assertFailure(el, "not-authorized")

    def test_scram_unknown_user_looks_like_a_real_one(self):
        c = self.opened()
        el, sf1 = c.scram("nobody", "x", "SCRAM-SHA-256")
        self.assertFailure(el, "not-authorized")
        el, sf2 = c.scram("nobody", "x", "SCRAM-SHA-256")
        self.assertEqual(sf1["s"], sf2["s"], "the fake salt is stable per user")
        self.assertEqual(len(base64.b64decode(sf1["s"])), 16)
        self.assertEqual(sf1["i"], "4096")
        _, real = c.scram("alice", "wrong", "SCRAM-SHA-256")
        self.assertEqual(len(base64.b64decode(real["s"])), len(base64.b64decode(sf1["s"])))

    def test_no_initial_response_gets_empty_challenge(self):
        c = self.opened()
        el = c.sasl("PLAIN")
        self.assertEqual(el.tag, q("challenge", NS_SASL))
        self.assertIsNone(el.text)
        self.assertEqual(c.respond(b"\0alice\0secret").tag, q("success", NS_SASL))

    def test_invalid_mechanism(self):
        c = self.opened()
        self.assertFailure(c.sasl("DIGEST-MD5", b"x"), "invalid-mechanism")
        self.assertFailure(c.sasl("SCRAM-SHA-256-PLUS", b"p=tls-unique,,n=a,r=b"),
                           "invalid-mechanism")
        c.send(f"<auth xmlns='{NS_SASL}'>AAAA</auth>")
        self.assertFailure(c.next(), "invalid-mechanism")

    def test_incorrect_encoding(self):
        c = self.opened()
        c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>!!notbase64</auth>")
        self.assertFailure(c.next(), "incorrect-encoding")
        c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>AGFsaWNl AHNlY3JldA==</auth>")
        self.assertFailure(c.next(), "incorrect-encoding")

    def test_malformed_request(self):
        c = self.opened()
        self.assertFailure(c.sasl("PLAIN", b"no-nuls-here"), "malformed-request")
        self.assertFailure(c.sasl("SCRAM-SHA-1", b"x,,garbage"), "malformed-request")
        self.assertFailure(c.respond(b"out of the blue"), "malformed-request")

    def test_abort(self):
        c = self.opened()
        self.assertEqual(c.sasl("SCRAM-SHA-1", b"n,,n=alice,r=abc").tag, q("challenge", NS_SASL))
        c.send(f"<abort xmlns='{NS_SASL}'/>")
        self.assertFailure(c.next(), "aborted")
        self.assertEqual(c.plain("alice", "secret").tag, q("success", NS_SASL))

    def test_invalid_authzid(self):
        c = self.opened()
        self.assertFailure(c.plain("alice", "secret", authzid=f"bob@{DOMAIN}"), "invalid-authzid")

    def test_five_failures_close_the_stream(self):
        c = self.opened()
        for _ in range(4):
            self.assertFailure(c.plain("alice", "wrong"), "not-authorized")
        self.assertFailure(c.plain("alice", "wrong"), "not-authorized")
        c.s.expect_stream_error("policy-violation")

    def test_anonymous(self):
        c = self.opened()
        self.assertEqual(c.sasl("ANONYMOUS", b"").tag, q("success", NS_SASL))
        f = c.restart()
        self.assertIsNotNone(f.find(q("bind", NS_BIND)))

    def test_auth_after_success_is_refused(self):
        c = self.opened()
        c.login("alice", "secret")
        c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{ALICE_PLAIN}</auth>")
        c.s.expect_stream_error("policy-violation")


class AuthFailLimit(C2SCase):
    ENV = dict(c2s=PLAINTEXT +
               "<auth-fail-limit>3</auth-fail-limit>")

    def test_address_blocked_after_limit(self):
        for _ in range(3):
            c = self.opened()
            self.assertFailure(c.plain("alice", "wrong"), "not-authorized")
        c = self.opened()
        el = c.plain("alice", "secret")
        self.assertFailure(el, "temporary-auth-failure")
        self.assertIn("try again later", el.find(q("text", NS_SASL)).text)
        wait_log(self.env.c2s, "3 failed logins from 127.0.0.1")


# ---- TLS ------------------------------------------------------------------------------------


class Tls(C2SCase):
    ENV = dict(tls=True, client_certs=(f"alice@{DOMAIN}", "eve@other.test"),
               c2s="<registration>true</registration>")

    def test_features_before_tls(self):
        c = self.opened()
        st = c.features.find(q("starttls", NS_TLS))
        self.assertIsNotNone(st.find(q("required", NS_TLS)))
        self.assertEqual(c.mechanisms(), [])
        self.assertIsNone(c.features.find(q("register", NS_REG_FEATURE)))

    def test_auth_and_stanzas_before_tls(self):
        c = self.opened()
        self.assertFailure(c.plain("alice", "secret"), "encryption-required")
        c.send(f"<iq type='get' id='r'><query xmlns='{NS_REGISTER}'/></iq>")
        c.s.expect_stream_error("not-authorized")

    def test_features_after_starttls_tls13(self):
        c = self.opened()
        f = c.starttls(self.env.tls_ctx())
        self.assertEqual(c.s.sock.version(), "TLSv1.3")
        self.assertEqual(c.mechanisms(), ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                                          "SCRAM-SHA-1", "PLAIN"])
        cb = f.find(q("sasl-channel-binding", NS_SASL_CB))
        self.assertEqual([x.get("type") for x in cb], ["tls-exporter"])
        self.assertIsNotNone(f.find(q("register", NS_REG_FEATURE)))
        self.assertIsNone(f.find(q("starttls", NS_TLS)))

    def test_features_after_starttls_tls12(self):
        c = self.opened()
        f = c.starttls(self.env.tls_ctx("1.2"))
        self.assertEqual(c.s.sock.version(), "TLSv1.2")
        types = [x.get("type") for x in f.find(q("sasl-channel-binding", NS_SASL_CB))]
        self.assertIn("tls-unique", types)

    def test_scram_plus_tls_unique_on_tls12(self):
        c = self.opened()
        c.starttls(self.env.tls_ctx("1.2"))
        data = c.s.sock.get_channel_binding("tls-unique")
        el, _ = c.scram("alice", "secret", "SCRAM-SHA-256-PLUS", cb=("tls-unique", data))
        self.assertEqual(el.tag, q("success", NS_SASL))

    def test_scram_plus_tls_exporter_on_tls13(self):
        for mech in ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"):
            c = self.opened()
            c.starttls(self.env.tls_ctx())
            data = tls_exporter(c.s.sock)
            el, _ = c.scram("alice", "secret", mech, cb=("tls-exporter", data))
            self.assertEqual(el.tag, q("success", NS_SASL), mech)

    def test_scram_plus_wrong_binding_fails(self):
        c = self.opened()
        c.starttls(self.env.tls_ctx())
        el, _ = c.scram("alice", "secret", "SCRAM-SHA-256-PLUS", cb=("tls-exporter", b"\0" * 32))
        self.assertFailure(el, "not-authorized")
        el, _ = c.scram("alice", "secret", "SCRAM-SHA-256-PLUS", cb=("tls-unique", b"\0" * 12))
        self.assertFailure(el, "not-authorized")

    def test_downgrade_flag_y_is_refused(self):
        c = self.opened()
        c.starttls(self.env.tls_ctx())
        el, _ = c.scram("alice", "secret", "SCRAM-SHA-256", flag="y")
        self.assertFailure(el, "not-authorized")
        el, _ = c.scram("alice", "secret", "SCRAM-SHA-256", flag="n")
        self.assertEqual(el.tag, q("success", NS_SASL))

    def test_plain_over_tls(self):
        c = self.opened()
        c.starttls(self.env.tls_ctx())
        self.assertEqual(c.plain("alice", "secret").tag, q("success", NS_SASL))
        f = c.restart()
        self.assertIsNotNone(f.find(q("bind", NS_BIND)))

    def test_direct_tls(self):
        c = self.client(self.env.tls_ctx(), port=self.env.tls_port)
        f = c.open_features()
        self.assertIsNone(f.find(q("starttls", NS_TLS)))
        self.assertIn("SCRAM-SHA-256-PLUS", c.mechanisms())
        self.assertEqual(c.plain("alice", "secret").tag, q("success", NS_SASL))

    def test_external_with_client_certificate(self):
        c = self.opened()
        c.starttls(self.env.tls_ctx(cert=f"alice@{DOMAIN}"))
        self.assertIn("EXTERNAL", c.mechanisms())
        self.assertEqual(c.sasl("EXTERNAL", b"").tag, q("success", NS_SASL))
        c.restart()

    def test_external_not_offered_for_other_domain_or_without_cert(self):
        c = self.opened()
        c.starttls(self.env.tls_ctx(cert="eve@other.test"))
        self.assertNotIn("EXTERNAL", c.mechanisms())
        self.assertFailure(c.sasl("EXTERNAL", b""), "invalid-mechanism")

    def test_plaintext_after_starttls_is_discarded(self):
        c = self.opened()
        # an injected <auth/> in the same packet must never be parsed
        c.send(f"<starttls xmlns='{NS_TLS}'/><auth xmlns='{NS_SASL}' mechanism='PLAIN'>"
               f"{ALICE_PLAIN}</auth>")
        c.s.expect(q("proceed", NS_TLS))
        c.s = Stream(self.env.tls_ctx().wrap_socket(c.s.sock, server_hostname=DOMAIN))
        f = c.open_features()
        self.assertIn("PLAIN", c.mechanisms())
        self.assertIsNone(f.find(q("bind", NS_BIND)))

    def test_starttls_twice_fails(self):
        c = self.opened()
        c.starttls(self.env.tls_ctx())
        c.send(f"<starttls xmlns='{NS_TLS}'/>")
        c.s.expect(q("failure", NS_TLS))
        c.s.wait_closed()


# ---- in-band registration (XEP-0077) ----------------------------------------------------------


class Registration(C2SCase):
    ENV = dict(c2s=PLAINTEXT +
               "<registration>true</registration><auth-fail-limit>0</auth-fail-limit>")

    def register(self, c, user, password, iid="reg"):
        c.send(f"<iq type='set' id='{iid}'><query xmlns='{NS_REGISTER}'>"
               f"<username>{user}</username><password>{password}</password></query></iq>")
        return c.next()

    def test_form_create_and_login(self):
        c = self.opened()
        self.assertIsNotNone(c.features.find(q("register", NS_REG_FEATURE)))
        c.send(f"<iq type='get' id='f1'><query xmlns='{NS_REGISTER}'/></iq>")
        form = c.next().find(q("query", NS_REGISTER))
        self.assertIsNotNone(form.find(q("username", NS_REGISTER)))
        self.assertIsNotNone(form.find(q("password", NS_REGISTER)))
        el = self.register(c, "carol", "c4rol")
        self.assertEqual((el.get("type"), el.get("id")), ("result", "reg"))
        self.assertEqual(c.plain("carol", "c4rol").tag, q("success", NS_SASL))
        self.assertEqual(parleyctl(self.env.dep.config, "user", "exists",
                                   f"carol@{DOMAIN}").stdout.strip(), "yes")

    def test_conflict_bad_username_missing_password(self):
        c = self.opened()
        self.assertIqError(self.register(c, "alice", "x"), "conflict", "cancel")
        self.assertIqError(self.register(c, "a@b", "x"), "jid-malformed", "modify")
        self.assertIqError(self.register(c, "dave", ""), "not-acceptable", "modify")
        c.send(f"<iq type='set' id='x'><query xmlns='{NS_REGISTER}'><remove/></query></iq>")
        self.assertIqError(c.next(), "not-authorized")

    def test_change_password(self):
        parleyctl(self.env.dep.config, "user", "add", f"erin@{DOMAIN}", "old")
        c = self.opened()
        c.login("erin", "old")
        c.send(f"<iq type='get' id='g'><query xmlns='{NS_REGISTER}'/></iq>")
        q_el = c.next().find(q("query", NS_REGISTER))
        self.assertIsNotNone(q_el.find(q("registered", NS_REGISTER)))
        self.assertIqError(self.register(c, "alice", "mine"), "not-authorized")
        self.assertEqual(self.register(c, "erin", "new").get("type"), "result")
        d = self.opened()
        self.assertFailure(d.plain("erin", "old"), "not-authorized")
        self.assertEqual(d.plain("erin", "new").tag, q("success", NS_SASL))

    def test_cancel_removes_the_account(self):
        parleyctl(self.env.dep.config, "user", "add", f"frank@{DOMAIN}", "pw")
        c = self.opened()
        c.login("frank", "pw")
        c.send(f"<iq type='set' id='rm'><query xmlns='{NS_REGISTER}'><remove/></query></iq>")
        self.assertEqual(c.next().get("type"), "result")
        c.s.expect_stream_error("not-authorized")
        self.assertEqual(parleyctl(self.env.dep.config, "user", "exists", f"frank@{DOMAIN}",
                                   check=False).stdout.strip(), "no")
        d = self.opened()
        self.assertFailure(d.plain("frank", "pw"), "not-authorized")


# ---- limits ----------------------------------------------------------------------------------


class Limits(unittest.TestCase):
    """Each test gets its own configuration."""

    def setUp(self):
        self.env = None
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        if self.env is not None:
            self.env.cleanup()

    def start(self, c2s):
        self.env = Env(c2s="<require-tls>false</require-tls>"
                           "<allow-plaintext-auth>true</allow-plaintext-auth>" + c2s)

    def opened(self):
        c = Client(self.env.port)
        self.clients.append(c)
        c.open_features()
        return c

    def test_idle_timeout(self):
        self.start("<idle-timeout>1s</idle-timeout>")
        c = self.opened()
        t = time.time()
        el = c.s.expect_stream_error("connection-timeout", timeout=5)
        self.assertGreaterEqual(time.time() - t, 0.9)
        self.assertIn("no input", el.find(q("text", NS_STREAMS)).text)

    def test_keepalive(self):
        self.start("<keepalive>300ms</keepalive>")
        c = self.opened()
        n = len(c.s.raw)
        time.sleep(1.6)
        c.s._pump(0.5)
        self.assertTrue(c.s.raw[n:].strip(b" ") == b"" and len(c.s.raw) > n,
                        f"expected whitespace, got {c.s.raw[n:]!r}")
        self.assertFalse(c.s.closed)

    def test_rate_throttles_without_disconnecting(self):
        self.start("<rate>2K</rate>")
        c = self.opened()
        t = time.time()
        c.send(" " * 12000 + f"<iq type='get' id='r'><query xmlns='{NS_REGISTER}'/></iq>")
        el = c.next(timeout=20)
        self.assertEqual(el.get("id"), "r")
        self.assertGreaterEqual(time.time() - t, 2.5, "12 KB at 2 KB/s after a 4 KB burst")

    def test_reload_applies_to_new_streams(self):
        self.start("")
        self.assertIsNone(self.opened().features.find(q("register", NS_REG_FEATURE)))
        self.env.dep.extra = self.env.dep.extra.replace("<c2s>", "<c2s><registration>true"
                                                        "</registration>")
        self.env.dep.write_config()
        self.env.c2s.signal(signal.SIGHUP)
        wait_log(self.env.c2s, "configuration reloaded")
        self.assertIsNotNone(self.opened().features.find(q("register", NS_REG_FEATURE)))

    def test_shutdown_is_system_shutdown(self):
        self.start("")
        c = self.opened()
        self.env.c2s.stop()
        self.env.dep.daemons.remove(self.env.c2s)
        c.s.expect_stream_error("system-shutdown")

    def test_max_connections(self):
        self.start("<max-connections>2</max-connections>")
        self.opened()
        self.opened()
        c = Client(self.env.port)
        self.clients.append(c)
        c.s.wait_header()
        c.s.expect_stream_error("resource-constraint")
        wait_log(self.env.c2s, "new connection refused")


# ---- configuration -------------------------------------------------------------------------


class Config(unittest.TestCase):
    """What parleyctl init writes loads; bad values name file, line and key."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="parley-c2s-cfg-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def init(self, *extra):
        d = os.path.join(self.dir, "x" + pysecrets.token_hex(3))
        subprocess.run([binary("parleyctl"), "init", d, "--domain", DOMAIN, *extra], check=True,
                       capture_output=True, timeout=60)
        return os.path.join(d, "parley.xml")

    def check(self, config):
        return subprocess.run([binary("parley-c2s"), "-t", "-c", config], capture_output=True,
                              text=True, timeout=30)

    def test_parleyctl_init_loads(self):
        for extra in ((), ("--allow-plaintext", "--registration")):
            p = self.check(self.init(*extra))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("<require-tls>" + ("false" if extra else "true"), p.stdout)
            self.assertIn("<max-stanza>64K</max-stanza>", p.stdout)

    def test_bad_value_names_file_line_and_key(self):
        config = self.init()
        with open(config) as f:
            text = f.read()
        with open(config, "w") as f:
            f.write(text.replace("<registration>false", "<rate>lots</rate><registration>false"))
        p = self.check(config)
        self.assertEqual(p.returncode, 78)
        self.assertRegex(p.stderr, r"parley.xml:\d+: <c2s><rate>: \"lots\"")


# ---- the session link, against a scripted sm ------------------------------------------


class FakeSm(C2SCase):
    """The test plays the sm (a component binding the domain) to check the
    c2s side of docs/protocol.md §8 exactly. One deployment per test."""

    @classmethod
    def setUpClass(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        super().setUp()
        self.env = Env(c2s=PLAINTEXT)
        self.addCleanup(self.env.cleanup)
        self.sms = []
        self.sm = self.connect_sm()

    def tearDown(self):
        super().tearDown()
        for sm in self.sms:
            sm.close()

    def ups(self):
        return len(re.findall("component sm is up with 2 names", self.env.c2s.logtext()))

    def connect_sm(self):
        before = self.ups()
        sm = component(self.env.dep.router_port, "sm", self.env.dep.components["sm"][0])
        self.sms.append(sm)
        sm.send(f"<bind xmlns='{NS_ROUTER}' name='{DOMAIN}'/>")
        sm.expect(q("bind", NS_ROUTER))
        deadline = time.time() + 10
        while self.ups() <= before:
            self.assertLess(time.time(), deadline, "the c2s did not see the sm")
            time.sleep(0.02)
        return sm

    def route(self, timeout=10, acks=False):
        """The next envelope from the c2s; pure acks are skipped unless acks."""
        return self.sm.expect(q("route", NS_ROUTER), timeout, pred=lambda r: acks or len(r) > 0)

    def to_c2s(self, sid, inner="", seq=None, ack=None, o=None):
        attrs = f" seq='{seq}'" if seq is not None else ""
        attrs += f" ack='{ack}'" if ack is not None else ""
        attrs += f" o='{o}'" if o is not None else ""
        self.sm.send(f"<route xmlns='{NS_ROUTER}' from='sm' to='c2s' sid='{sid}'{attrs}>"
                     f"{inner}</route>")

    def bound(self, resource="phone", answer=None):
        c = self.client()
        c.open_features()
        c.login("alice", "secret")
        c.send(f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>{resource}"
               "</resource></bind></iq>")
        env = self.route()
        jid = f"alice@{DOMAIN}/{resource}"
        self.to_c2s(env.get("sid"), answer or f"<started xmlns='{NS_SM_LINK}' jid='{jid}'/>",
                    seq=1, ack=1)
        return c, env, c.next()

    def test_start_envelope_and_bind_result(self):
        c, env, result = self.bound(answer=f"<started xmlns='{NS_SM_LINK}' "
                                           f"jid='alice@{DOMAIN}/chosen'/>")
        self.assertEqual((env.get("from"), env.get("to"), env.get("seq"), env.get("ack")),
                         ("c2s", f"alice@{DOMAIN}/phone", "1", "0"))
        self.assertRegex(env.get("sid"), r"^[0-9a-f]{24}$")
        start = env.find(q("start", NS_SM_LINK))
        self.assertEqual((start.get("jid"), start.get("ip"), start.get("resume")),
                         (f"alice@{DOMAIN}/phone", "127.0.0.1", None))
        jid = result.find(q("bind", NS_BIND)).find(q("jid", NS_BIND)).text
        self.assertEqual((result.get("type"), jid), ("result", f"alice@{DOMAIN}/chosen"))

    def test_failed_start_is_the_bind_error(self):
        c, _, result = self.bound(
            answer=f"<failed xmlns='{NS_SM_LINK}' cond='resource-constraint'/>")
        self.assertIqError(result, "resource-constraint", "wait")
        self.assertFalse(c.s.closed)

    def test_stanzas_acks_and_duplicates(self):
        c, env, _ = self.bound()
        sid = env.get("sid")
        c.send(f"<message to='bob@{DOMAIN}' id='m1'><body>x</body></message>")
        out = self.route()
        self.assertEqual((out.get("sid"), out.get("seq"), out.get("ack")), (sid, "2", "1"))
        m = out.find(q("message", NS_CLIENT))
        self.assertEqual((m.get("from"), m.get("to")), (f"alice@{DOMAIN}/phone", f"bob@{DOMAIN}"))
        msg = "<message xmlns='jabber:server' from='bob@example.test/x' id='{}'><body>b</body>" \
              "</message>"
        self.sm.expect_nothing(0.2)  # the started was acked by the message
        self.to_c2s(sid, msg.format("in1"), seq=2, ack=2, o="bob:1")
        got = c.s.expect(q("message", NS_CLIENT))
        self.assertEqual((got.get("id"), got.find(q("body", NS_CLIENT)).text), ("in1", "b"))
        t = time.time()
        ack = self.route(acks=True)
        self.assertLess(time.time() - t, 1.0)
        self.assertEqual((ack.get("seq"), ack.get("ack"), len(ack)), (None, "2", 0))
        self.to_c2s(sid, msg.format("dup-seq"), seq=2, ack=2, o="bob:9")
        self.to_c2s(sid, msg.format("dup-origin"), seq=3, ack=2, o="bob:1")
        self.to_c2s(sid, msg.format("in2"), seq=4, ack=2, o="bob:2")
        self.assertEqual(c.s.expect(q("message", NS_CLIENT)).get("id"), "in2")
        c.s.expect_nothing(0.5)

    def test_end_from_the_sm(self):
        for reason, cond in (("conflict", "conflict"), ("not-authorized", "not-authorized"),
                             (None, "reset")):
            c, env, _ = self.bound(resource=f"r{cond}")
            r = f" reason='{reason}'" if reason else ""
            self.to_c2s(env.get("sid"), f"<end xmlns='{NS_SM_LINK}'{r}/>", seq=2, ack=1)
            c.s.expect_stream_error(cond)

    def test_client_close_sends_end(self):
        c, env, _ = self.bound()
        c.send("<presence/>")
        self.assertEqual(self.route().get("seq"), "2")
        c.send("</stream:stream>")
        c.s.wait_closed()
        end = self.route()
        self.assertEqual(end.get("seq"), "3")
        self.assertIsNotNone(end.find(q("end", NS_SM_LINK)))
        self.to_c2s(env.get("sid"), ack=3)
        wait_log(self.env.c2s, f"session {env.get('sid')} .* ended")

    def test_unknown_session_is_answered_with_end(self):
        self.to_c2s("0123456789abcdef01234567", "<message xmlns='jabber:client'/>", seq=5, ack=0)
        r = self.route()
        self.assertEqual((r.get("to"), r.get("sid"), r.get("seq")),
                         ("sm", "0123456789abcdef01234567", None))
        self.assertIsNotNone(r.find(q("end", NS_SM_LINK)))

    def test_other_component_going_down_stalls_nothing(self):
        c = self.client()
        c.open_features()
        c.login("alice", "secret")
        c.send(f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'/></iq>")
        env = self.route()
        component(self.env.dep.router_port, "gw", self.env.dep.components["gw"][0]).close()
        wait_log(self.env.c2s, "component gw is down")
        jid = env.find(q("start", NS_SM_LINK)).get("jid")
        self.to_c2s(env.get("sid"), f"<started xmlns='{NS_SM_LINK}' jid='{jid}'/>", seq=1, ack=1)
        self.assertEqual(c.next().get("type"), "result")
        c.send(f"<message to='bob@{DOMAIN}' id='after'/>")
        self.assertEqual(self.route()[0].get("id"), "after")

    def test_resume_replays_in_order(self):
        c, env, _ = self.bound()
        sid = env.get("sid")
        c.send(f"<message to='bob@{DOMAIN}' id='a'/>")
        self.assertEqual(self.route().get("seq"), "2")
        self.sm.close()
        wait_log(self.env.c2s, "component sm is down")
        c.send(f"<message to='bob@{DOMAIN}' id='b'/>")  # queued meanwhile
        time.sleep(0.2)
        self.sm = self.connect_sm()
        start = self.route()
        st = start.find(q("start", NS_SM_LINK))
        self.assertEqual((start.get("seq"), start.get("ack"), st.get("resume"), st.get("next")),
                         (None, "1", "1", "2"))
        # the replay waits for the answer, and so does anything new
        c.send("<presence/>")
        self.sm.expect_nothing(0.3)
        # a fresh sm counts from 1 again, and gets the last presence again
        self.to_c2s(sid, f"<started xmlns='{NS_SM_LINK}' jid='alice@{DOMAIN}/phone' fresh='1'/>",
                    seq=1, ack=1)
        replay = [self.route() for _ in range(4)]
        self.assertEqual([(r.get("seq"), r[0].tag, r[0].get("id")) for r in replay],
                         [("2", q("message", NS_CLIENT), "a"), ("3", q("message", NS_CLIENT), "b"),
                          ("4", q("presence", NS_CLIENT), None),
                          ("5", q("presence", NS_CLIENT), None)])
        self.to_c2s(sid, "<message xmlns='jabber:client' id='new'/>", seq=2, ack=5)
        self.assertEqual(c.s.expect(q("message", NS_CLIENT)).get("id"), "new")


# ---- with the session manager -----------------------------------------------------------------


@unittest.skipUnless(sm_built(), "parley-sm is not built")
class WithSm(C2SCase):
    ENV = dict(c2s=PLAINTEXT +
               "<auth-fail-limit>0</auth-fail-limit>",
               users=(("alice", "secret"), ("bob", "secret")), sm=True)

    def session(self, user, resource=None):
        c = self.client()
        c.open_features()
        c.login(user, "secret")
        el = c.bind(resource)
        self.assertEqual(el.get("type"), "result", el.tag)
        c.jid = el.find(q("bind", NS_BIND)).find(q("jid", NS_BIND)).text
        return c

    def test_bind_and_chat(self):
        a = self.session("alice", "phone")
        self.assertEqual(a.jid, f"alice@{DOMAIN}/phone")
        b = self.session("bob")
        self.assertTrue(b.jid.startswith(f"bob@{DOMAIN}/") and len(b.jid) > len(f"bob@{DOMAIN}/"))
        a.send(f"<message to='{b.jid}' type='chat' id='m1'><body>hi bob</body></message>")
        m = b.s.expect(q("message", NS_CLIENT))
        self.assertEqual((m.get("from"), m.get("id")), (a.jid, "m1"))
        self.assertEqual(m.find(q("body", NS_CLIENT)).text, "hi bob")
        # from may be the full JID itself
        b.send(f"<message from='{b.jid}' to='{a.jid}' type='chat' id='m2'>"
               "<body>hi</body></message>")
        self.assertEqual(a.s.expect(q("message", NS_CLIENT)).get("from"), b.jid)

    def test_spoofed_from_is_invalid_from(self):
        a = self.session("alice")
        b = self.session("bob")
        a.send(f"<message from='{b.jid}' to='{b.jid}'><body>spoof</body></message>")
        a.s.expect_stream_error("invalid-from")
        b.s.expect_nothing(0.5)

    def test_bare_from_only_on_subscription_presence(self):
        a = self.session("alice")
        a.send(f"<presence type='subscribe' from='alice@{DOMAIN}' to='bob@{DOMAIN}'/>")
        a.s.expect_nothing(0.5)
        self.assertFalse(a.s.closed)
        a.send(f"<message from='alice@{DOMAIN}' to='bob@{DOMAIN}'><body>x</body></message>")
        a.s.expect_stream_error("invalid-from")

    def test_second_bind_is_not_allowed(self):
        a = self.session("alice")
        self.assertIqError(a.bind("other"), "not-allowed", "cancel")

    def test_resource_conflict_replaces_old_session(self):
        old = self.session("alice", "same")
        new = self.session("alice", "same")
        self.assertEqual(new.jid, f"alice@{DOMAIN}/same")
        old.s.expect_stream_error("conflict")

    def test_client_close_ends_the_session_at_the_sm(self):
        a = self.session("alice", "leaving")
        a.send("</stream:stream>")
        a.s.wait_closed()
        wait_log(self.env.sm, f"session alice@{DOMAIN}/leaving ended")
        # the sm acknowledges the end: the c2s frees the session at once, not
        # after <sm-grace> (60 s)
        wait_log(self.env.c2s, rf"session \S+ \(alice@{DOMAIN}/leaving\) ended", timeout=5)

    def test_iq_to_server_is_answered(self):
        a = self.session("alice")
        a.send(f"<iq type='get' id='ping1' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
        el = a.s.expect(q("iq", NS_CLIENT))
        self.assertEqual((el.get("id"), el.get("type")), ("ping1", "result"))


class IdleParsers(C2SCase):
    """A client holds an XML parser only inside a stanza: at the end of each
    read it goes back to the c2s's pool, idle ones are freed on the next
    tick, and the next bytes continue the stream with a pooled or rebuilt
    parser. Prefixes declared on each client's own stream header must still
    resolve, and the header's own prefix must still close the stream."""
    ENV = dict(c2s=PLAINTEXT + "<auth-fail-limit>0</auth-fail-limit>",
               users=(("alice", "secret"), ("bob", "secret"), ("carol", "secret")), sm=True)

    def session(self, user, prefix, ns):
        c = self.client()
        header = (f"<?xml version='1.0'?><{prefix}:stream xmlns:{prefix}='{NS_STREAM}' "
                  f"xmlns='{NS_CLIENT}' xmlns:x='{ns}' to='{DOMAIN}' version='1.0'>")
        c.send(header)
        c.s.wait_header()
        c.s.expect(q("features", NS_STREAM))
        self.assertEqual(c.plain(user, "secret").tag, q("success", NS_SASL))
        c.s = Stream(c.s.sock)
        c.send(header)
        c.s.wait_header()
        c.s.expect(q("features", NS_STREAM))
        el = c.bind()
        self.assertEqual(el.get("type"), "result", el.tag)
        c.jid = el.find(q("bind", NS_BIND)).find(q("jid", NS_BIND)).text
        c.prefix = prefix
        return c

    def chat(self, frm, to, msg_id, ns, parts=None):
        """frm sends to a message with an x:data payload (x is declared only
        on frm's stream header); to must receive it in namespace ns."""
        stanza = (f"<message to='{to.jid}' type='chat' id='{msg_id}'><body>hello</body>"
                  f"<x:data x:n='{msg_id}'/></message>")
        if parts is None:
            frm.send(stanza)
        else:
            frm.send(stanza[:parts])
            time.sleep(1.5)  # past a tick, inside the stanza: the parser stays
            frm.send(stanza[parts:])
        m = to.s.expect(q("message", NS_CLIENT), pred=lambda e: e.get("id") == msg_id)
        self.assertEqual(m.find(q("body", NS_CLIENT)).text, "hello")
        data = m.find(q("data", ns))
        self.assertIsNotNone(data, to.s.raw[-400:])
        self.assertEqual(data.get(q("n", ns)), msg_id)

    def test_idle_clients_hold_no_parser(self):
        a = self.session("alice", "S", "urn:a")
        b = self.session("bob", "stream", "urn:b")
        idle = [self.session("carol", "stream", "urn:c") for _ in range(8)]
        # every client idle between stanzas: none holds a parser
        wait_log(self.env.c2s, r"parsers: 0 lent to 10 clients")
        for round_ in range(2):
            time.sleep(1.5)  # idle past the tick that frees unused parsers
            self.chat(a, b, f"a{round_}", "urn:a")
            self.chat(b, a, f"b{round_}", "urn:b")
        self.chat(a, b, "split", "urn:a", parts=60)
        for c in idle:
            c.send(f"<iq type='get' id='p' to='{DOMAIN}'><x:ping xmlns:x='urn:xmpp:ping'/></iq>")
            self.assertEqual(c.s.expect(q("iq", NS_CLIENT)).get("type"), "result")
        # the stream closes with the header's own prefix after a release
        time.sleep(1.5)
        a.send("</S:stream>")
        a.s.wait_closed()
        self.assertNotIn(b"stream:error", a.s.raw)
        wait_log(self.env.c2s, "client closed the stream")


class AnonymousWithSm(C2SCase):
    """SASL ANONYMOUS gets a real session at the sm, and nothing of it is
    kept after it ends."""

    ENV = dict(c2s=PLAINTEXT + f"<anonymous>{DOMAIN}</anonymous>",
               users=(("alice", "secret"),), sm=True)

    def test_anonymous_session_binds_chats_and_leaves_nothing(self):
        anon = self.client()
        anon.open_features()
        self.assertEqual(anon.sasl("ANONYMOUS", b"").tag, q("success", NS_SASL))
        anon.restart()
        el = anon.bind("r")
        self.assertEqual(el.get("type"), "result")
        jid = el.find(q("bind", NS_BIND)).find(q("jid", NS_BIND)).text
        alice = self.client()
        alice.open_features()
        alice.login("alice", "secret")
        ajid = alice.bind("a").find(q("bind", NS_BIND)).find(q("jid", NS_BIND)).text
        anon.send(f"<message to='{ajid}' type='chat' id='x1'><body>hello</body></message>")
        m = alice.s.expect(q("message", NS_CLIENT))
        self.assertEqual((m.get("from"), m.get("id")), (jid, "x1"))
        # a roster entry the anonymous user makes is gone once it leaves
        anon.send(f"<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
                  f"<item jid='alice@{DOMAIN}'/></query></iq>")
        anon.s.expect(q("iq", NS_CLIENT), pred=lambda e: e.get("id") == "r1")
        anon.send("</stream:stream>")
        anon.s.wait_closed()
        wait_log(self.env.sm, f"session {jid} ended")
        local = jid.split("@")[0]
        deadline = time.time() + 5
        rows = None
        while time.time() < deadline:
            db = sqlite3.connect(os.path.join(self.env.dep.dir, "parley.db"))
            rows = db.execute("SELECT count(*) FROM roster_items WHERE owner LIKE ?",
                              (local + "@%",)).fetchone()[0]
            db.close()
            if rows == 0:
                break
            time.sleep(0.1)
        self.assertEqual(rows, 0)


@unittest.skipUnless(sm_built(), "parley-sm is not built")
class SmOutage(unittest.TestCase):
    """Sessions across sm and router restarts (protocol.md §8 resuming)."""

    def setUp(self):
        self.env = Env(c2s=PLAINTEXT, users=(("alice", "secret"), ("bob", "secret")))
        self.addCleanup(lambda: self.env.cleanup())
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def login(self, user):
        c = Client(self.env.port)
        self.clients.append(c)
        c.open_features()
        c.login(user, "secret")
        return c

    def test_bind_held_until_the_sm_starts(self):
        c = self.login("alice")
        self.assertIsNone(c.bind("late", timeout=1))
        self.env.start_sm()
        el = c.s.read(10)
        self.assertEqual(el.get("type"), "result")

    def test_sm_gone_longer_than_grace_ends_streams(self):
        self.env.cleanup()
        self.env = Env(c2s="<require-tls>false</require-tls><allow-plaintext-auth>true"
                           "</allow-plaintext-auth><sm-grace>1s</sm-grace>",
                       users=(("alice", "secret"),))
        waiting = self.login("alice")
        self.assertIsNone(waiting.bind("w", timeout=0.5))
        self.env.start_sm()
        self.assertEqual(waiting.s.read(10).get("type"), "result")
        self.env.sm.kill()
        t = time.time()
        waiting.s.expect_stream_error("internal-server-error", timeout=10)
        self.assertGreaterEqual(time.time() - t, 0.9)

    def test_message_across_sm_restart(self):
        self.env.start_sm()
        a = self.login("alice")
        self.assertEqual(a.bind("a").get("type"), "result")
        b = self.login("bob")
        self.assertEqual(b.bind("b").get("type"), "result")
        b.send("<presence/>")  # re-sent to the restarted sm
        wait_log(self.env.sm, "presence|roster|session bob", timeout=5)
        time.sleep(0.3)
        self.env.sm.kill()
        self.env.dep.daemons.remove(self.env.sm)
        wait_log(self.env.c2s, "component sm is down")
        a.send(f"<message to='bob@{DOMAIN}/b' type='chat' id='lost?'><body>while the sm "
               "was away</body></message>")
        time.sleep(0.3)
        self.env.start_sm()
        m = b.s.expect(q("message", NS_CLIENT), timeout=20,
                       pred=lambda el: el.get("id") == "lost?")
        self.assertEqual(m.find(q("body", NS_CLIENT)).text, "while the sm was away")
        b.s.expect_nothing(1.0)  # and only once
        # bob's presence was given to the new sm again: bare-JID messages reach him
        a.send(f"<message to='bob@{DOMAIN}' type='chat' id='bare'><body>x</body></message>")
        self.assertEqual(b.s.expect(q("message", NS_CLIENT), timeout=10,
                                    pred=lambda el: el.get("id") == "bare").get("id"), "bare")

    def test_message_across_router_restart(self):
        self.env.start_sm()
        a = self.login("alice")
        self.assertEqual(a.bind("a").get("type"), "result")
        b = self.login("bob")
        self.assertEqual(b.bind("b").get("type"), "result")
        router = self.env.router
        router.stop()
        self.env.dep.daemons.remove(router)
        a.send(f"<message to='bob@{DOMAIN}/b' type='chat' id='during'><body>while the router "
               "was away</body></message>")
        time.sleep(0.3)
        self.env.router = self.env.dep.start("parley-router")
        m = b.s.expect(q("message", NS_CLIENT), timeout=20)
        self.assertEqual(m.get("id"), "during")
        b.s.expect_nothing(1.0)  # and only once


# ---- 15,000 connections ------------------------------------------------------------------


def hold_connections(port, n):
    """Helper process: opens n client streams with one epoll loop, reads
    each one's features, prints 'OPEN ok failed', holds them until a line
    arrives on stdin, then closes them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    header = (f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' "
              f"xmlns:stream='{NS_STREAM}' to='{DOMAIN}' version='1.0'>").encode()
    sel = selectors.DefaultSelector()
    held, got = [], {}
    opened = done = failed = 0
    last = time.time()
    while done + failed < n and time.time() - last < 30:
        while opened < n and len(got) < 200:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE, "connect")
            got[s] = b""
            opened += 1
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            last = time.time()
            if key.data == "connect":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    sel.unregister(s)
                    del got[s]
                    s.close()
                    failed += 1
                    continue
                s.send(header)
                sel.modify(s, selectors.EVENT_READ, "read")
                continue
            try:
                data = s.recv(4096)
            except (BlockingIOError, ConnectionError):
                data = None if sys.exc_info()[0] is BlockingIOError else b""
            if data is None:
                continue
            got[s] += data
            if not data or b"</stream:features>" in got[s]:
                sel.unregister(s)
                del got[s]
                if data:
                    held.append(s)
                    done += 1
                else:
                    s.close()
                    failed += 1
    print(f"OPEN {done} {failed + n - done - failed}", flush=True)
    sys.stdin.readline()
    for s in held:
        s.close()


class Scale(unittest.TestCase):
    N = 15000
    PROCS = 2

    def test_15000_connections(self):
        env = Env(c2s=PLAINTEXT)
        procs = []
        try:
            rss0 = env.c2s.rss_kib()
            t0 = time.time()
            for _ in range(self.PROCS):
                procs.append(subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "hold", str(env.port),
                     str(self.N // self.PROCS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    text=True))
            opened = 0
            for p in procs:
                ready, _, _ = select.select([p.stdout], [], [], 150)
                self.assertTrue(ready, "a helper did not report")
                line = p.stdout.readline().split()
                self.assertEqual(line[0], "OPEN", line)
                opened += int(line[1])
            elapsed = time.time() - t0
            self.assertEqual(opened, self.N)
            rss1 = env.c2s.rss_kib()
            per = (rss1 - rss0) * 1024 / self.N
            sys.stderr.write(f"\n{self.N} connections in {elapsed:.1f}s; c2s RSS {rss0} KiB -> "
                             f"{rss1} KiB: {per:.0f} bytes per connection\n")
            # a new client is still served, all the way to authentication
            c = Client(env.port)
            c.open_features()
            self.assertEqual(c.plain("alice", "secret").tag, q("success", NS_SASL))
            c.close()
        finally:
            for p in procs:
                try:
                    p.stdin.write("\n")
                    p.stdin.flush()
                except OSError:
                    pass
                p.wait(60)
                p.stdin.close()
                p.stdout.close()
            env.cleanup()


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "hold":
    hold_connections(int(sys.argv[2]), int(sys.argv[3]))
