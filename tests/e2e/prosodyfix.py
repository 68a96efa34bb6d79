# SPDX-License-Identifier: MIT
"""A real Prosody (Debian's package) as a federation peer for interop tests.

The test gives it a domain, a loopback address, the DNS server it must use
and its users; this writes a private configuration into a temp folder and
runs Prosody in the foreground. Prosody reads /etc/resolv.conf (through
libunbound), and resolv.conf cannot name a port, so the DNS server must
listen on port 53 of its own loopback address; Prosody alone sees a private
resolv.conf, bind-mounted in a mount namespace of its own (the machine's
file is never touched)."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import die_with_parent

PROSODY = "/usr/bin/prosody"


def make_self_signed(dirpath, domain):
    """A self-signed certificate for domain made with GnuTLS's certtool:
    (certfile, keyfile)."""
    key = os.path.join(dirpath, f"{domain}.key")
    crt = os.path.join(dirpath, f"{domain}.crt")
    tmpl = os.path.join(dirpath, f"{domain}.tmpl")
    with open(tmpl, "w") as f:
        f.write(f"cn = {domain}\ndns_name = {domain}\nexpiration_days = 2\n"
                "tls_www_server\ntls_www_client\nsigning_key\nencryption_key\n")
    subprocess.run(["certtool", "--generate-privkey", "--outfile", key],
                   check=True, capture_output=True)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key,
                    "--template", tmpl, "--outfile", crt], check=True, capture_output=True)
    return crt, key


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Prosody:
    def __init__(self, domain, address, dns_address, users=None, bidi=False, tls=None):
        """bidi: load mod_s2s_bidi (XEP-0288) and mod_smacks (XEP-0198,
        which Prosody then uses between servers too), else keep bidi off. tls:
        (certfile, keyfile, cafile) instead of a self-signed certificate;
        peers' certificates are then checked against cafile."""
        self.bidi = bidi
        self.tls = tls
        self.domain = domain
        self.address = address
        self.dns_address = dns_address
        self.users = dict(users or {})
        self.dir = tempfile.mkdtemp(prefix="parley-prosody-")
        self.c2s_port = self._free_port()
        self.s2s_port = self._free_port()
        self.proc = None

    def _free_port(self):
        with socket.socket() as s:
            s.bind((self.address, 0))
            return s.getsockname()[1]

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _write_config(self):
        if self.tls is None:
            crt, key = make_self_signed(self.dir, self.domain)
            ssl = f"certificate = {lua_str(crt)}, key = {lua_str(key)}"
        else:
            ssl = (f"certificate = {lua_str(self.tls[0])}, key = {lua_str(self.tls[1])}, "
                   f"cafile = {lua_str(self.tls[2])}")
        modules = ('"s2s_bidi", "smacks"' if self.bidi else "")
        disabled = ("" if self.bidi else '"s2s_bidi"')
        with open(self.path("resolv.conf"), "w") as f:
            f.write(f"nameserver {self.dns_address}\n")
        # internal_plain keeps one Lua table per account under
        # data/<escaped host>/accounts/.
        accounts = self.path("data", self.domain.replace(".", "%2e"), "accounts")
        os.makedirs(accounts)
        for user, password in self.users.items():
            with open(os.path.join(accounts, f"{user}.dat"), "w") as f:
                f.write(f"return {{ [\"password\"] = {lua_str(password)}; }};\n")
        cfg = f"""-- written by tests/e2e/prosodyfix.py
run_as_root = true
pidfile = {lua_str(self.path("prosody.pid"))}
data_path = {lua_str(self.path("data"))}
admin_socket = {lua_str(self.path("admin.sock"))}
interfaces = {{ {lua_str(self.address)} }}
c2s_ports = {{ {self.c2s_port} }}
s2s_ports = {{ {self.s2s_port} }}
c2s_direct_tls_ports = {{}}
s2s_direct_tls_ports = {{}}
http_ports = {{}}
https_ports = {{}}
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = {lua_str(self.path("prosody.log"))} }} }}
modules_enabled = {{ "roster", "saslauth", "tls", "dialback", "disco", "ping",
                    "presence", "message", "iq", "vcard_legacy", "posix", {modules} }}
modules_disabled = {{ {disabled} }}
authentication = "internal_plain"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = true
s2s_secure_auth = false
-- libunbound answers every .test name with NXDOMAIN itself unless told
-- the zone is an ordinary one.
unbound = {{ options = {{ ["local-zone:"] = "test. transparent" }} }}
VirtualHost {lua_str(self.domain)}
  ssl = {{ {ssl} }}
"""
        with open(self.path("prosody.cfg.lua"), "w") as f:
            f.write(cfg)

    def start(self, timeout=20):
        self._write_config()
        script = (f"mount --bind {self.path('resolv.conf')} /etc/resolv.conf && "
                  f"exec {PROSODY} -F --config {self.path('prosody.cfg.lua')}")
        self.out = open(self.path("prosody.out"), "w")
        self.proc = subprocess.Popen(["unshare", "--mount", "sh", "-c", script],
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=die_with_parent)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prosody exited ({self.proc.returncode}):\n"
                                     + self.logtext())
            try:
                socket.create_connection((self.address, self.s2s_port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("prosody did not open its s2s port:\n" + self.logtext())

    def logtext(self):
        text = ""
        for name in ("prosody.out", "prosody.log"):
            try:
                with open(self.path(name), errors="replace") as f:
                    text += f"--- {name}\n" + f.read()
            except OSError:
                pass
        return text

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self.out.close()
        self.proc = None

    def cleanup(self):
        self.stop()
        if not os.environ.get("PARLEY_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
