# SPDX-License-Identifier: MIT
"""Runs every raw-XML protocol script in tests/e2e/scripts/ (format in
xscript.py) against a fresh deployment made by parleyctl init and run by
parleyd, with plaintext authentication allowed on loopback."""

import glob
import os
import unittest

from flows import DOMAIN, Suite
from xscript import Runner, read_script

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = sorted(glob.glob(os.path.join(HERE, "scripts", "*.xs")))


class ScriptSuite(Suite):
    def __init__(self):
        super().__init__(extra_init=("--allow-plaintext",))
        self.passwords = {}

    def password(self, user):
        return self.passwords[user]


class Scripts(unittest.TestCase):
    def test_every_script(self):
        self.assertTrue(SCRIPTS, "no scripts found")
        for path in SCRIPTS:
            with self.subTest(script=os.path.basename(path)):
                self.run_script(path)

    def run_script(self, path):
        steps = read_script(path)
        suite = ScriptSuite()
        for s in steps:
            if s.startswith("user "):
                _, name, password = s.split()
                suite.passwords[name] = password
                suite.add_user(name, password)
        suite.start()
        runner = Runner(suite, DOMAIN)
        try:
            for i, s in enumerate(steps, 1):
                try:
                    runner.step(s)
                except AssertionError as e:
                    raise AssertionError(f"{os.path.basename(path)} step {i}: {s}\n{e}")
        finally:
            runner.close()
            suite.stop()


if __name__ == "__main__":
    unittest.main()
