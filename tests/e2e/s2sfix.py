# SPDX-License-Identifier: MIT
"""Fixtures for federation tests: a whole Parley deployment per domain
(parleyctl init, run by parleyd, its parley-resolver pointed at a test DNS
server), SRV records published by a real dnsmasq (dnsfix.py), certificates
from a test CA made with certtool, and a raw server-to-server peer
(STARTTLS, SASL and dialback by hand)."""

import hashlib
import hmac
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

from harness import Daemon, Stream, TestCA, binary, free_ports, q

NS_RESOLVER = "urn:parley:resolver:1"
NS_SERVER = "jabber:server"
NS_DB = "jabber:server:dialback"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STREAM = "http://etherx.jabber.org/streams"


class Server:
    """One Parley deployment serving domain, on 127.0.0.1 with free ports."""

    def __init__(self, domain):
        self.domain = domain
        self.dir = tempfile.mkdtemp(prefix=f"parley-s2s-{domain}-")
        self.ports = free_ports(("c2s", "c2s_tls", "router", "http", "s2s", "s2s_tls"))
        subprocess.run([binary("parleyctl"), "init", self.dir, "--domain", domain,
                        "--c2s-port", str(self.ports["c2s"]),
                        "--c2s-tls-port", str(self.ports["c2s_tls"]),
                        "--router-port", str(self.ports["router"]),
                        "--http-port", str(self.ports["http"]),
                        "--s2s-port", str(self.ports["s2s"]),
                        "--s2s-tls-port", str(self.ports["s2s_tls"])],
                       check=True, capture_output=True, timeout=60)
        self.config = os.path.join(self.dir, "parley.xml")
        self.cert = os.path.join(self.dir, "tls", f"{domain}.pem")  # what c2s presents
        self.parleyd = None
        text = self.text()
        self.secrets = dict(re.findall(r"<component name='(\w+)' secret='(\w+)'", text))
        self.dialback_secret = re.search(r"<dialback-secret>(\w+)<", text).group(1)

    def text(self):
        with open(self.config) as f:
            return f.read()

    def edit_s2s(self, extra="", old=None, new=None):
        """Adds extra at the end of <s2s>, and/or replaces old with new."""
        text = self.text()
        start, end = text.index("  <s2s>"), text.index("  </s2s>")
        section = text[start:end]
        if old is not None:
            assert old in section, old
            section = section.replace(old, new)
        text = text[:start] + section + f"    {extra}\n" + text[end:]
        with open(self.config, "w") as f:
            f.write(text)

    def rewrite_s2s(self, fn):
        """Replaces the <s2s> section's text with fn(text)."""
        text = self.text()
        start, end = text.index("  <s2s>"), text.index("  </s2s>")
        with open(self.config, "w") as f:
            f.write(text[:start] + fn(text[start:end]) + text[end:])

    def use_nameserver(self, address, port):
        """Points this deployment's parley-resolver at a test DNS server: it
        must never ask the machine's own (nothing resolves off the machine)."""
        text = self.text()
        assert "  <resolver>\n  </resolver>" in text
        text = text.replace("  <resolver>\n  </resolver>",
                            f"  <resolver>\n    <nameserver address='{address}' port='{port}'/>"
                            "\n  </resolver>")
        with open(self.config, "w") as f:
            f.write(text)

    def add_component(self, name, binds):
        """Allows an external component (before start); returns its secret."""
        secret = os.urandom(16).hex()
        bind = "".join(f"<bind>{b}</bind>" for b in binds)
        text = self.text().replace("  <data-dir>", f"  <component name='{name}' "
                                   f"secret='{secret}'>{bind}</component>\n  <data-dir>", 1)
        with open(self.config, "w") as f:
            f.write(text)
        return secret

    def add_user(self, user, password="secret"):
        subprocess.run([binary("parleyctl"), "--config", self.config, "user", "add",
                        f"{user}@{self.domain}", password], check=True, capture_output=True,
                       timeout=60)
        return f"{user}@{self.domain}", password

    def start(self, expect_errors=()):
        self.parleyd = Daemon("parleyd", self.config, self.dir, args=["--foreground"],
                              expect_errors=expect_errors).start(timeout=90)
        return self

    def log(self):
        return self.parleyd.logtext() if self.parleyd else ""

    def s2s_pid(self):
        return self.child_pid("parley-s2s")

    def child_pid(self, comm_wanted):
        """The pid of the daemon parleyd runs under that program name."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().split(") ", 1)[1].split()[1])
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if ppid == self.parleyd.proc.pid and comm == comm_wanted:
                return int(pid)
        return None

    def stop(self):
        try:
            if self.parleyd is not None:
                self.parleyd.stop()
        finally:
            self.parleyd = None
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_for_log(server, pattern, timeout=15):
    rx = re.compile(pattern)
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = rx.search(server.log())
        if m:
            return m
        time.sleep(0.05)
    raise AssertionError(f"{server.domain}: no log line matching {pattern!r}:\n"
                         + server.log()[-4000:])


def make_ca_certs(directory, domains):
    """A test CA and, per domain, a certificate for it (DNS-ID and CN)
    usable both as TLS server and client, signed by the CA, with certtool.
    Returns {"ca": path, domain: (cert, key)}."""
    ca = TestCA(directory, "Parley federation test CA")
    out = {"ca": ca.ca}
    for d in domains:
        out[d] = ca.issue(d, f'cn = "{d}"\ndns_name = "{d}"\n'
                          "tls_www_server\ntls_www_client\nsigning_key\n")
    return out


def federation_dns(table):
    """A real DNS server (dnsmasq, dnsfix.DnsServer) publishing table
    {domain: [(host, port, tls, address)]}: an _xmpps-server._tcp SRV record
    for tls 'direct', _xmpp-server._tcp for 'starttls', and the host's A
    record. Every other .test name is NXDOMAIN. Started; the caller stops it."""
    from dnsfix import DnsServer, Srv
    srv, hosts = [], {}
    for domain, targets in table.items():
        for host, port, tls, address in targets:
            service = "_xmpps-server" if tls == "direct" else "_xmpp-server"
            srv.append(Srv(f"{service}._tcp.{domain}", host, port))
            hosts.setdefault(host, [])
            if address not in hosts[host]:
                hosts[host].append(address)
    dns = DnsServer(srv=srv, hosts=hosts, ttl=60)
    dns.start()
    return dns


def dialback_key(secret, receiving, originating, stream_id):
    """XEP-0185: HMAC-SHA256 keyed with the hex SHA-256 of the secret."""
    k = hashlib.sha256(secret.encode()).hexdigest().encode()
    return hmac.new(k, f"{receiving} {originating} {stream_id}".encode(),
                    hashlib.sha256).hexdigest()


class RawPeer:
    """A hand-driven server-to-server stream to a Parley s2s: header,
    STARTTLS (certificate not checked: the test is about what follows),
    then whatever the test sends."""

    def __init__(self, port, origin, target):
        self.origin, self.target = origin, target
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.stream = Stream(self.sock)
        self.features = self.open()

    def open(self):
        self.stream.send(f"<?xml version='1.0'?><stream:stream xmlns='{NS_SERVER}' "
                         f"xmlns:stream='{NS_STREAM}' xmlns:db='{NS_DB}' "
                         f"from='{self.origin}' to='{self.target}' version='1.0'>")
        self.header = self.stream.wait_header()
        return self.stream.expect(q("features", NS_STREAM))

    def starttls(self, cert=None):
        """cert: (certfile, keyfile) presented as the client certificate."""
        self.stream.send(f"<starttls xmlns='{NS_TLS}'/>")
        self.stream.expect(q("proceed", NS_TLS))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cert is not None:
            ctx.load_cert_chain(*cert)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.target)
        self.stream = Stream(self.sock)
        self.features = self.open()
        return self.features

    def send(self, data):
        self.stream.send(data)

    def restart(self):
        """A new stream on the same connection (after SASL success)."""
        self.stream = Stream(self.sock)
        self.features = self.open()
        return self.features

    def close(self):
        self.stream.close()


class RawServer:
    """A hand-driven receiving server that a Parley s2s connects to: it
    offers STARTTLS (required), then the features the test gives, with
    the certificate cert = (certfile, keyfile)."""

    def __init__(self, domain, cert):
        self.domain, self.cert = domain, cert
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.sock = self.stream = None

    def _open(self, stream_id, features):
        self.header = self.stream.wait_header()
        self.stream.send(f"<?xml version='1.0'?><stream:stream xmlns='{NS_SERVER}' "
                         f"xmlns:stream='{NS_STREAM}' xmlns:db='{NS_DB}' from='{self.domain}' "
                         f"to='{self.header.get('from')}' id='{stream_id}' version='1.0'>"
                         f"<stream:features>{features}</stream:features>")

    def accept(self, features, timeout=20):
        """Takes the next connection through STARTTLS up to the features
        after TLS."""
        self.listener.settimeout(timeout)
        self.sock, _ = self.listener.accept()
        self.stream = Stream(self.sock)
        self._open("raw-1", f"<starttls xmlns='{NS_TLS}'><required/></starttls>")
        self.stream.expect(f"{{{NS_TLS}}}starttls")
        self.stream.send(f"<proceed xmlns='{NS_TLS}'/>")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.cert)
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.stream = Stream(self.sock)
        self._open("raw-2", features)

    def send(self, data):
        self.stream.send(data)

    def close(self):
        if self.stream is not None:
            self.stream.close()
        self.listener.close()
