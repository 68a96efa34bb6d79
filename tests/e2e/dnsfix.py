# SPDX-License-Identifier: MIT
"""DNS servers for tests, on a loopback address and a free port, that never
send anything off the machine.

    from dnsfix import DnsServer, Srv, ServfailServer, SilentServer, NxdomainServer

    dns = DnsServer(srv=[Srv("_xmpp-server._tcp.b.test", "xmpp.b.test", 5269)],
                    hosts={"xmpp.b.test": ["127.0.0.2", "::2"]}, ttl=300)
    address, port = dns.start()        # a real dnsmasq, in the foreground
    ...  <nameserver address='{address}' port='{port}'/>  (dns.nameserver_xml())
    dns.stop()

DnsServer runs Debian's dnsmasq (dnsmasq-base) authoritative for .test:
every .test name it was not given answers NXDOMAIN, any other name REFUSED
(it has no upstream server). Srv(name, None) publishes the "." target (no
service). ttl is the TTL of every record. stop() and start() again keep the
same address and port, so a test can take the server away and bring it back.

ServfailServer answers SERVFAIL to every query; SilentServer reads queries
and never answers; NxdomainServer(ttl, minimum) answers NXDOMAIN with an SOA
of that TTL and MINIMUM in the authority section (dnsmasq's --local answers
carry none). All have the same start() -> (address, port) / stop()."""

import os
import random
import socket
import struct
import subprocess
import tempfile
import threading
import time

from harness import die_with_parent


class Srv:
    """One SRV record: name is the full owner (_service._proto.domain);
    target None means the service is not available ("." target)."""

    def __init__(self, name, target, port=5269, priority=0, weight=0):
        self.name, self.target, self.port = name, target, port
        self.priority, self.weight = priority, weight

    def option(self):
        if self.target is None:
            return f"--srv-host={self.name}"
        return (f"--srv-host={self.name},{self.target},{self.port},{self.priority},"
                f"{self.weight}")


def _loopback_and_port():
    """A random 127.0.0.x (so parallel tests do not meet) and a UDP port free
    on it."""
    address = f"127.0.{random.randint(1, 254)}.{random.randint(2, 254)}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return address, s.getsockname()[1]


def _wait_answering(address, port, timeout=10):
    """Waits until something answers a DNS query on address:port."""
    query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
             b"\x05probe\x04test\x00\x00\x01\x00\x01")
    deadline = time.time() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.time() < deadline:
            try:
                s.sendto(query, (address, port))
                if s.recv(512)[:2] == b"\x12\x34":
                    return
            except OSError:
                time.sleep(0.05)
    raise AssertionError(f"no DNS server answering on {address}:{port}")


class DnsServer:
    """dnsmasq with the given records (see the module's docstring)."""

    def __init__(self, srv=(), hosts=None, ttl=60):
        self.srv = list(srv)
        self.hosts = dict(hosts or {})
        self.ttl = ttl
        self.address = self.port = None
        self.proc = None
        self.log = None

    def argv(self):
        args = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--no-poll", "--pid-file=", "--user=root", "--log-facility=-", "--log-queries",
                f"--port={self.port}", f"--listen-address={self.address}",
                "--bind-interfaces", "--local=/test/", f"--local-ttl={self.ttl}",
                f"--auth-ttl={self.ttl}", "--cache-size=0"]
        args += [s.option() for s in self.srv]
        for name, addrs in self.hosts.items():
            args.append(f"--host-record={name},{','.join(addrs)},{self.ttl}")
        return args

    def start(self):
        if self.address is None:
            self.address, self.port = _loopback_and_port()
        self.log = tempfile.NamedTemporaryFile(prefix="dnsmasq-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, preexec_fn=die_with_parent)
        try:
            _wait_answering(self.address, self.port)
        except AssertionError:
            self.stop()
            raise
        return self.address, self.port

    def nameserver_xml(self):
        return f"<nameserver address='{self.address}' port='{self.port}'/>"

    def logtext(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.log is not None:
            self.log.close()
            os.unlink(self.log.name)
            self.log = None


class _UdpServer:
    """A UDP socket on a loopback address served by a thread."""

    def __init__(self):
        self.address = self.port = None
        self.sock = None
        self.thread = None
        self.queries = 0

    def start(self):
        self.address, _ = _loopback_and_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.address, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self.address, self.port

    def nameserver_xml(self):
        return f"<nameserver address='{self.address}' port='{self.port}'/>"

    def _serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries += 1
            reply = self.answer(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def answer(self, data):
        return None

    def stop(self):
        self.running = False
        if self.thread is not None:
            self.thread.join(5)
        if self.sock is not None:
            self.sock.close()


class ServfailServer(_UdpServer):
    """Answers every query with SERVFAIL, echoing the question."""

    def answer(self, data):
        if len(data) < 12:
            return None
        end = 12
        while end < len(data) and data[end] != 0:
            end += data[end] + 1
        question = data[12:end + 5]
        flags = bytes([0x80 | (data[2] & 0x79), 0x80 | 2])  # QR, opcode+RD kept; RA, SERVFAIL
        return data[:2] + flags + b"\x00\x01\x00\x00\x00\x00\x00\x00" + question


class SilentServer(_UdpServer):
    """Reads queries and never answers: the resolver times out."""


def _name(text):
    return b"".join(bytes([len(label)]) + label.encode() for label in text.split(".")) + b"\0"


class NxdomainServer(_UdpServer):
    """Answers every query NXDOMAIN, with an SOA (RFC 2308 negative caching)."""

    def __init__(self, ttl=600, minimum=45):
        super().__init__()
        self.ttl, self.minimum = ttl, minimum

    def answer(self, data):
        if len(data) < 12:
            return None
        end = 12
        while end < len(data) and data[end] != 0:
            end += data[end] + 1
        question = data[12:end + 5]
        rdata = (_name("ns.test") + _name("hostmaster.test")
                 + struct.pack("!IIIII", 1, 3600, 600, 86400, self.minimum))
        soa = (_name("test") + struct.pack("!HHIH", 6, 1, self.ttl, len(rdata)) + rdata)
        flags = bytes([0x80 | (data[2] & 0x79), 0x80 | 3])  # QR, RA, NXDOMAIN
        return data[:2] + flags + b"\x00\x01\x00\x00\x00\x01\x00\x00" + question + soa
