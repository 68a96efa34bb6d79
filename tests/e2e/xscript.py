# SPDX-License-Identifier: MIT
"""Raw-XML protocol scripts: files of send/expect steps run against a whole
deployment. A step is one line (a trailing backslash continues it):

    # comment
    user NAME PASSWORD            create an account before the clients start
    open C                        client C: TCP to the c2s, stream header, features
    login C NAME [RESOURCE]       PLAIN over the plaintext test port, restart, bind
    send C XML                    write raw bytes (${DOMAIN} and ${JID:C} expand)
    expect C XML                  the next element C reads must match XML
    expect-any C XML              some element within the timeout must match
    expect-none C TAG             nothing with that tag arrives for 0.5 s
    stream-error C CONDITION      C gets <stream:error> with that condition, then the close
    sleep SECONDS

XML matching: the element must have the expected name and namespace; every
expected attribute must be present with that value ('*' matches any); every
expected child must match some child of the actual element; expected text
must equal the actual text (stripped). Attributes and children not in the
expectation are ignored."""

import base64
import re
import time
import xml.etree.ElementTree as ET

from harness import NS_STREAM, Stream, q

NS_CLIENT = "jabber:client"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"


def parse_expected(text):
    """Parses an expectation; stanzas default to jabber:client and the
    stream: prefix is declared."""
    wrapped = (f"<w xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>{text}</w>")
    root = ET.fromstring(wrapped)
    return list(root)[0]


def matches(want, got):
    if want.tag != got.tag:
        return False
    for k, v in want.attrib.items():
        if v == "*":
            if k not in got.attrib:
                return False
        elif got.attrib.get(k) != v:
            return False
    if want.text and want.text.strip() and (got.text or "").strip() != want.text.strip():
        return False
    return all(any(matches(c, g) for g in got) for c in want)


class ScriptError(AssertionError):
    pass


class Runner:
    def __init__(self, suite, domain):
        self.suite = suite
        self.domain = domain
        self.clients = {}
        self.backlog = {}  # elements read while looking for another one
        self.jids = {}

    def expand(self, text):
        text = text.replace("${DOMAIN}", self.domain)
        return re.sub(r"\$\{JID:(\w+)\}", lambda m: self.jids[m.group(1)], text)

    def open(self, name):
        s = Stream.connect(self.suite.ports["c2s"])
        s.send(f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' "
               f"xmlns:stream='{NS_STREAM}' to='{self.domain}' version='1.0'>")
        s.wait_header()
        s.expect(q("features", NS_STREAM))
        self.clients[name] = s
        self.backlog[name] = []
        return s

    def login(self, name, user, resource="script"):
        s = self.open(name)
        cred = base64.b64encode(f"\0{user}\0{self.suite.password(user)}".encode()).decode()
        s.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{cred}</auth>")
        s.expect(q("success", NS_SASL))
        fresh = Stream(s.sock)  # the stream restarts after SASL
        self.clients[name] = fresh
        fresh.send(f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' "
                   f"to='{self.domain}' version='1.0'>")
        fresh.wait_header()
        fresh.expect(q("features", NS_STREAM))
        fresh.send(f"<iq type='set' id='bind'><bind xmlns='{NS_BIND}'>"
                   f"<resource>{resource}</resource></bind></iq>")
        res = fresh.expect(q("iq", NS_CLIENT), pred=lambda e: e.get("id") == "bind")
        if res.get("type") != "result":
            raise ScriptError(f"bind failed for {user}: {ET.tostring(res)}")
        self.jids[name] = res.find(f"{q('bind', NS_BIND)}/{q('jid', NS_BIND)}").text

    def next(self, name, timeout):
        backlog = self.backlog.setdefault(name, [])
        return backlog.pop(0) if backlog else self.clients[name].read(timeout)

    def find(self, name, want, text, timeout=10):
        """The first element (kept or new) matching want; the others stay
        kept, in order, for later steps."""
        backlog = self.backlog.setdefault(name, [])
        for i, el in enumerate(backlog):
            if matches(want, el):
                return backlog.pop(i)
        deadline = time.time() + timeout
        while time.time() < deadline:
            el = self.clients[name].read(max(0.0, deadline - time.time()))
            if el is None:
                break
            if matches(want, el):
                return el
            backlog.append(el)
        raise ScriptError(f"{name}: nothing matched {text}; seen "
                          f"{[ET.tostring(e)[:160] for e in backlog]}")

    def step(self, line):
        verb, _, rest = line.partition(" ")
        if verb == "sleep":
            time.sleep(float(rest))
            return
        if verb == "user":
            return  # handled before the clients start
        name, _, arg = rest.partition(" ")
        arg = self.expand(arg.strip())
        if verb == "open":
            self.open(name)
        elif verb == "login":
            parts = arg.split()
            self.login(name, *parts)
        elif verb == "send":
            self.clients[name].send(arg)
        elif verb == "expect":
            want = parse_expected(arg)
            got = self.next(name, 10)
            if got is None or not matches(want, got):
                raise ScriptError(f"{name}: expected {arg}\n got "
                                  f"{ET.tostring(got) if got is not None else None}")
        elif verb == "expect-any":
            want = parse_expected(arg)
            self.find(name, want, arg)
        elif verb == "expect-none":
            tag = parse_expected(f"<{arg}/>").tag
            deadline = time.time() + 0.5
            while time.time() < deadline:
                el = self.clients[name].read(0.1)
                if el is not None:
                    self.backlog.setdefault(name, []).append(el)
            for el in self.backlog.get(name, []):
                if el.tag == tag:
                    raise ScriptError(f"{name}: unexpected {ET.tostring(el)}")
        elif verb == "stream-error":
            self.clients[name].expect_stream_error(arg)
        else:
            raise ScriptError(f"unknown step '{verb}'")

    def close(self):
        for s in self.clients.values():
            s.close()


def read_script(path):
    """The steps of a script file, continuation lines joined."""
    steps, cur = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if cur:
                line = cur + " " + line.strip()
                cur = ""
            if line.endswith("\\"):
                cur = line[:-1].rstrip()
                continue
            line = line.strip()
            if line and not line.startswith("#"):
                steps.append(line)
    return steps
