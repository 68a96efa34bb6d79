# SPDX-License-Identifier: MIT
"""A whole Parley deployment for client-level tests: parleyctl init writes
it, parleyd runs it, parleyctl adds users; slixmpp clients connect over
STARTTLS and verify the deployment's own certificate. With
PARLEY_STORE=pgsql the deployment stores in a fresh database on the ctest
fixture's PostgreSQL server (a <storage> block, then parleyctl db init, as
docs/deployment.md tells an operator)."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import slixmpp

from harness import Daemon, binary, free_ports
from store_access import Store, pg_create, pg_drop, pgsql_wanted

DOMAIN = "example.test"


class Suite:
    def __init__(self, extra_init=(), sm_section=None, log_level=None):
        self.dir = tempfile.mkdtemp(prefix="parley-flow-")
        self.ports = free_ports(("c2s", "c2s_tls", "router", "http", "s2s", "s2s_tls"))
        args = [binary("parleyctl"), "init", self.dir, "--domain", DOMAIN,
                "--c2s-port", str(self.ports["c2s"]),
                "--c2s-tls-port", str(self.ports["c2s_tls"]),
                "--router-port", str(self.ports["router"]),
                "--http-port", str(self.ports["http"]),
                "--s2s-port", str(self.ports["s2s"]),
                "--s2s-tls-port", str(self.ports["s2s_tls"]), *extra_init]
        subprocess.run(args, check=True, capture_output=True)
        self.config = os.path.join(self.dir, "parley.xml")
        self.parleyd = None
        self.conninfo = pg_create() if pgsql_wanted() else None
        with open(self.config) as f:
            text = f.read()
        # PARLEY_LOG_LEVEL=debug (with PARLEY_KEEP=1) to study a failure
        level = os.environ.get("PARLEY_LOG_LEVEL") or log_level
        if level:
            text = text.replace("<level>info</level>", f"<level>{level}</level>", 1)
        if sm_section is not None:
            # after the sm's name (parleyctl init writes comments after it)
            head = "<sm>\n    <name>sm</name>\n"
            assert head in text, "parleyctl init wrote no <sm><name>sm</name>"
            text = text.replace(head, f"{head}{sm_section}\n", 1)
        if self.conninfo:
            text = text.replace("  <data-dir>", "  <storage><driver>pgsql</driver><pgsql>"
                                f"<conninfo>{self.conninfo}</conninfo></pgsql></storage>\n"
                                "  <data-dir>", 1)
        with open(self.config, "w") as f:
            f.write(text)
        if self.conninfo:
            self.ctl("db", "init")
            self.store = Store(conninfo=self.conninfo)
        else:
            self.store = Store(sqlite_path=os.path.join(self.dir, "data", "parley.db"))
        self.cert = os.path.join(self.dir, "tls", f"{DOMAIN}.pem")

    def ctl(self, *args, check=True):
        return subprocess.run([binary("parleyctl"), "--config", self.config, *args],
                              capture_output=True, text=True, check=check)

    def add_user(self, user, password="secret"):
        self.ctl("user", "add", f"{user}@{DOMAIN}", password)
        return f"{user}@{DOMAIN}", password

    def start(self):
        self.parleyd = Daemon("parleyd", self.config, self.dir,
                              args=["--foreground"]).start(timeout=30)
        return self

    def children(self):
        """pid of each daemon parleyd runs, by program name."""
        out = {}
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
            if ppid == self.parleyd.proc.pid:
                out[comm] = int(pid)
        return out

    def kill_child(self, name):
        pid = self.children()[name]
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 20
        while time.time() < deadline:
            time.sleep(0.1)
            now = self.children().get(name)
            if now and now != pid:
                return now
        raise AssertionError(f"parleyd did not restart {name}")

    def stop(self):
        try:
            if self.parleyd is not None:
                self.parleyd.stop()
        finally:
            if self.conninfo:
                pg_drop(self.conninfo)
            if os.environ.get("PARLEY_KEEP"):
                print(f"kept {self.dir}")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that records what it receives."""

    def __init__(self, suite, jid, password):
        super().__init__(jid, password)
        self.suite = suite
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.subscriptions = asyncio.Queue()
        self.started = asyncio.Event()
        self.ca_certs = suite.cert
        self.register_plugin("xep_0203")  # delayed delivery stamps
        self.roster.auto_authorize = True
        self.roster.auto_subscribe = False
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("presence_available", lambda p: self.presences.put_nowait(p))
        self.add_event_handler("presence_unavailable", lambda p: self.presences.put_nowait(p))
        self.add_event_handler("presence_subscribed",
                               lambda p: self.subscriptions.put_nowait(p))

    async def on_start(self, event):
        await self.get_roster()
        self.send_presence()
        self.started.set()

    async def online(self, timeout=20):
        self.connect(address=("127.0.0.1", self.suite.ports["c2s"]))
        await asyncio.wait_for(self.started.wait(), timeout)
        return self

    async def offline(self):
        await asyncio.wait_for(self.disconnect(wait=1.0), 10)


async def next_item(queue, timeout=10, pred=None):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("nothing arrived in time")
        item = await asyncio.wait_for(queue.get(), left)
        if pred is None or pred(item):
            return item


def run(coro):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro)
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
