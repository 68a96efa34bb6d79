# SPDX-License-Identifier: MIT
"""End-to-end harness: runs the real Parley daemons on loopback in a temp
directory, waits for their readiness notification, and speaks XML to them
over sockets. A test fails on any sanitizer report, and on any error or
panic log line it did not declare."""

import ctypes
import hashlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("PARLEY_BUILD_DIR") or os.path.join(ROOT, "build", "dev")

NS_STREAM = "http://etherx.jabber.org/streams"
NS_COMP = "jabber:component:accept"
NS_ROUTER = "urn:parley:router:1"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

SANITIZER_PATTERNS = re.compile(
    r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"SUMMARY: UndefinedBehaviorSanitizer|: panic: )")
ERROR_LINE = re.compile(r"^[\w-]+: error: ", re.M)


def binary(name):
    for sub in ("router", "tests/e2e", "tools", name.replace("parley-", "")):
        p = os.path.join(BUILD, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name} not built under {BUILD}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(names):
    """{name: port} with distinct free ports below the kernel's ephemeral
    range, for daemons' listeners: free_port's ephemeral ports can be taken
    by any outgoing connection (the daemons' own, too) before the daemon
    binds them, and two calls can return the same port."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError):
        pass
    ports = {}
    names = list(names)
    while len(ports) < len(names):
        p = random.randint(max(1024, low - 12000), low - 1)
        if p in ports.values():
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        ports[names[len(ports)]] = p
    return ports


def die_with_parent():
    """For preexec_fn: the child gets SIGTERM when the test process dies, so
    a killed test (a ctest timeout) leaves no server behind. It survives
    exec, so it holds for what a wrapper (unshare, sh) execs too."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def q(name, ns):
    return "{%s}%s" % (ns, name)


class Daemon:
    """One daemon process in the foreground, with its stderr in a file."""

    def __init__(self, prog, config, workdir, args=(), expect_errors=()):
        self.prog = prog
        self.config = config
        self.workdir = workdir
        self.args = list(args)
        self.expect_errors = [re.compile(p) for p in expect_errors]
        self.logpath = os.path.join(workdir, f"{prog}-{secrets.token_hex(3)}.log")
        self.proc = None

    def start(self, wait_ready=True, timeout=15):
        sock_path = os.path.join(self.workdir, f"notify-{secrets.token_hex(4)}")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(sock_path)
        env = dict(os.environ, NOTIFY_SOCKET=sock_path)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=99")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=99")
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            [binary(self.prog), "-f", "-c", self.config] + self.args,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env)
        try:
            if wait_ready:
                ns.settimeout(timeout)
                deadline = time.time() + timeout
                while True:
                    try:
                        msg = ns.recv(256)
                    except socket.timeout:
                        raise AssertionError(f"{self.prog} not ready in {timeout}s:\n"
                                             + self.logtext())
                    if b"READY=1" in msg:
                        break
                    if time.time() > deadline:
                        raise AssertionError(f"{self.prog} not ready")
        finally:
            ns.close()
            os.unlink(sock_path)
        return self

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        """SIGTERM; the daemon must exit 0 with a clean log."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.prog} did not stop on SIGTERM:\n" + self.logtext())
        finally:
            self.log.close()
        self.proc = None
        self.check_log()
        if rc != 0:
            raise AssertionError(f"{self.prog} exited {rc}:\n" + self.logtext())

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.log.close()
            self.proc = None

    def check_log(self):
        text = self.logtext()
        m = SANITIZER_PATTERNS.search(text)
        if m:
            raise AssertionError(f"sanitizer report or panic in {self.prog}:\n{text}")
        for line in ERROR_LINE.findall(text) and text.splitlines():
            if not ERROR_LINE.match(line):
                continue
            if not any(p.search(line) for p in self.expect_errors):
                raise AssertionError(f"undeclared error line in {self.prog}: {line}")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


class Stream:
    """An XML stream over a socket: send bytes, read top-level elements."""

    def __init__(self, sock):
        self.sock = sock
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.header = None
        self.pending = []
        self.raw = b""
        self.closed = False

    @classmethod
    def connect(cls, port, host="127.0.0.1"):
        return cls(socket.create_connection((host, port), timeout=10))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _pump(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.raw += data
        self.parser.feed(data)
        for ev, el in self.parser.read_events():
            if ev == "start":
                if self.depth == 0:
                    self.header = el
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.pending.append(el)
                    self.header.remove(el) if el in list(self.header) else None
                elif self.depth == 0:
                    self.closed = True
        return True

    def wait_header(self, timeout=10):
        deadline = time.time() + timeout
        while self.header is None:
            left = deadline - time.time()
            if left <= 0 or (not self._pump(left) and self.header is None and
                             (self.closed or time.time() >= deadline)):
                break
        if self.header is None:
            raise AssertionError("no stream header; got %r" % self.raw)
        return self.header

    def read(self, timeout=10):
        """The next top-level element, or None on timeout or close."""
        deadline = time.time() + timeout
        while not self.pending:
            left = deadline - time.time()
            if left <= 0 or self.closed:
                return None
            self._pump(left)
        return self.pending.pop(0)

    def expect(self, tag, timeout=10, pred=None):
        """Reads until an element with this tag (and pred) arrives."""
        deadline = time.time() + timeout
        seen = []
        while True:
            el = self.read(max(0.0, deadline - time.time()))
            if el is None:
                raise AssertionError(f"expected <{tag}>, got {[e.tag for e in seen]} "
                                     f"closed={self.closed} raw={self.raw[-400:]!r}")
            if el.tag == tag and (pred is None or pred(el)):
                return el
            seen.append(el)

    def expect_nothing(self, timeout=0.5):
        el = self.read(timeout)
        if el is not None:
            raise AssertionError("unexpected element %s" % ET.tostring(el))

    def expect_stream_error(self, cond, timeout=10):
        el = self.expect(q("error", NS_STREAM), timeout)
        conds = [c.tag for c in el if c.tag != q("text", NS_STREAMS)]
        if conds != [q(cond, NS_STREAMS)]:
            raise AssertionError(f"stream error {conds}, expected {cond}")
        self.wait_closed()
        return el

    def wait_closed(self, timeout=10):
        deadline = time.time() + timeout
        while not self.closed and time.time() < deadline:
            self._pump(deadline - time.time())
        if not self.closed:
            raise AssertionError("stream not closed")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def component(port, name, secret, ok=True):
    """Connects as an XEP-0114 component and completes the handshake."""
    s = Stream.connect(port)
    s.send(f"<?xml version='1.0'?><stream:stream xmlns:stream='{NS_STREAM}' "
           f"xmlns='{NS_COMP}' to='{name}'>")
    hdr = s.wait_header()
    sid = hdr.get("id")
    digest = hashlib.sha1((sid + secret).encode()).hexdigest()
    s.send(f"<handshake>{digest}</handshake>")
    if ok:
        s.expect(q("handshake", NS_COMP))
    return s


class Deployment:
    """A temp directory with a parley.xml; daemons started from it."""

    def __init__(self, components, extra="", router_section=""):
        self.dir = tempfile.mkdtemp(prefix="parley-e2e-")
        self.router_port = free_port()
        self.components = components  # name -> (secret, [binds])
        self.extra = extra
        self.router_section = router_section
        self.daemons = []
        self.write_config()

    def write_config(self):
        comps = []
        for name, (secret, binds) in self.components.items():
            b = "".join(f"<bind>{x}</bind>" for x in binds)
            comps.append(f"  <component name='{name}' secret='{secret}'>{b}</component>")
        text = (f"<?xml version='1.0'?>\n<parley>\n"
                f"  <log><level>debug</level></log>\n"
                f"  <router-link><address>127.0.0.1</address>"
                f"<port>{self.router_port}</port></router-link>\n"
                + "\n".join(comps) + "\n" + self.extra +
                f"  <router>{self.router_section}</router>\n</parley>\n")
        self.config = os.path.join(self.dir, "parley.xml")
        with open(self.config, "w") as f:
            f.write(text)

    def start(self, prog, expect_errors=(), args=()):
        d = Daemon(prog, self.config, self.dir, args=args, expect_errors=expect_errors).start()
        self.daemons.append(d)
        return d

    def testcomp(self, name, binds=(), watch=False):
        args = [binary("pl_testcomp"), "--port", str(self.router_port), "--name", name,
                "--secret", self.components[name][0]]
        for b in binds:
            args += ["--bind", b]
        if watch:
            args.append("--watch")
        return TestComp(args, self.dir)

    def cleanup(self):
        errors = []
        for d in reversed(self.daemons):
            try:
                d.stop()
            except AssertionError as e:
                errors.append(str(e))
        if not errors and not os.environ.get("PARLEY_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))


class TestComp:
    """tests/e2e/pl_testcomp: a component built on libcommon's comp_client."""

    def __init__(self, args, workdir):
        self.errpath = os.path.join(workdir, f"testcomp-{secrets.token_hex(3)}.log")
        self.err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, bufsize=0)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def event(self, prefix, timeout=10):
        deadline = time.time() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                line = line.decode()
                if line.startswith(prefix):
                    return line
            if time.time() > deadline:
                raise AssertionError(f"pl_testcomp: no {prefix!r} event in {timeout}s")
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("pl_testcomp exited")
                self.buf += chunk
            except BlockingIOError:
                time.sleep(0.02)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        rc = self.proc.wait(10)
        self.err.close()
        with open(self.errpath, "rb") as f:
            text = f.read().decode(errors="replace")
        if SANITIZER_PATTERNS.search(text):
            raise AssertionError("sanitizer report in pl_testcomp:\n" + text)
        if rc != 0:
            raise AssertionError(f"pl_testcomp exited {rc}:\n{text}")


def secret():
    return secrets.token_hex(16)


class RouterCase(unittest.TestCase):
    """Base class: a deployment with a running router."""

    COMPONENTS = {}
    ROUTER_SECTION = ""
    EXPECT_ERRORS = ()

    def setUp(self):
        self.comps = {n: (secret(), list(b)) for n, b in self.COMPONENTS.items()}
        self.dep = Deployment(self.comps, router_section=self.ROUTER_SECTION)
        self.router = self.dep.start("parley-router", expect_errors=self.EXPECT_ERRORS)
        self.streams = []
        self.testcomps = []

    def tearDown(self):
        for s in self.streams:
            s.close()
        for t in self.testcomps:
            t.close()
        self.dep.cleanup()

    def connect(self, name, ok=True, secret_override=None):
        s = component(self.dep.router_port, name,
                      secret_override or self.comps[name][0], ok=ok)
        self.streams.append(s)
        return s

    def start_testcomp(self, name, binds=(), watch=False):
        t = self.dep.testcomp(name, binds, watch)
        self.testcomps.append(t)
        t.event("UP")
        return t


# ---- added for the c2s tests (test_c2s.py) -------------------------------------

NS_CLIENT = "jabber:client"


def parleyctl(config, *args, check=True):
    """Runs parleyctl on a configuration; raises with its stderr on failure."""
    p = subprocess.run([binary("parleyctl"), "--config", config, *args],
                       capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"parleyctl {' '.join(args)}: {p.stderr}")
    return p


class TestCA:
    """A certificate authority made with certtool in directory (ECDSA keys,
    everything valid two days); issue() signs certificates with it."""

    def __init__(self, directory, cn):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca = os.path.join(directory, "ca.pem")
        self.ca_key = self._key("ca.key")
        self._run("--generate-self-signed", "--load-privkey", self.ca_key, "--outfile", self.ca,
                  "--template", self._template("ca.tmpl", f'cn = "{cn}"\nca\ncert_signing_key\n'))

    def _run(self, *args):
        subprocess.run(["certtool", *args], check=True, capture_output=True, timeout=60)

    def _template(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text + "expiration_days = 2\n")
        return path

    def _key(self, name):
        path = os.path.join(self.dir, name)
        self._run("--generate-privkey", "--key-type=ecdsa", "--outfile", path)
        return path

    def issue(self, name, template):
        """A certificate from certtool template text (its subject and
        usages), signed by this CA: (cert path, key path)."""
        key = self._key(f"{name}.key")
        cert = os.path.join(self.dir, f"{name}.pem")
        self._run("--generate-certificate", "--load-privkey", key, "--outfile", cert,
                  "--load-ca-certificate", self.ca, "--load-ca-privkey", self.ca_key,
                  "--template", self._template(f"{name}.tmpl", template))
        return cert, key


def make_certs(directory, domain, client_jids=()):
    """With certtool: a CA, a server certificate for domain, and one client
    certificate per JID carrying it as id-on-xmppAddr (SASL EXTERNAL), all
    ECDSA and valid two days. Returns {"ca", "cert", "key", jid: (cert, key)}."""
    ca = TestCA(directory, "Parley test CA")
    out = {"ca": ca.ca}
    out["cert"], out["key"] = ca.issue("server", f'cn = "{domain}"\ndns_name = "{domain}"\n'
                                       "tls_www_server\nsigning_key\n")
    for i, jid in enumerate(client_jids):
        out[jid] = ca.issue(f"client{i}", f'cn = "{jid}"\nxmpp_name = "{jid}"\n'
                            "tls_www_client\nsigning_key\n")
    return out


def wait_log(daemon, pattern, timeout=10):
    """Waits until a line of the daemon's log matches pattern (a regex)."""
    rx = re.compile(pattern)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if rx.search(daemon.logtext()):
            return
        time.sleep(0.05)
    raise AssertionError(f"{daemon.prog}: no log line matching {pattern!r} in {timeout}s:\n"
                         + daemon.logtext()[-3000:])
