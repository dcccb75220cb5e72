# SPDX-License-Identifier: MIT
"""mtactl start/stop/reload/abort: the systemctl calls they make, seen through a stand-in systemctl
found first on PATH (the real one needs systemd as PID 1)."""

import os
import shutil
import subprocess
import tempfile
import unittest

import mtatest

SOCKETS = ["mta.socket", "mta-submit.socket", "mta-local.socket"]
TRIGGERS = ["mta-queue.path", "mta-queue.timer"]
SERVICES = ["mta-smtpd.service", "mta-queue.service", "mta-local@*.service"]


@unittest.skipUnless(mtatest.have_program("mtactl"), "mtactl not built")
class SystemdVerbs(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mtactl-systemd-")
        self.log = os.path.join(self.dir, "calls")
        fake = os.path.join(self.dir, "systemctl")
        with open(fake, "w") as f:
            f.write('#!/bin/sh\nfor a in "$@"; do printf "%s " "$a"; done >> "$FAKE_LOG"\n'
                    'echo >> "$FAKE_LOG"\nexit "${FAKE_RC:-0}"\n')
        os.chmod(fake, 0o755)
        os.makedirs(os.path.join(self.dir, "etc"))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def ctl(self, *args, rc=0):
        env = dict(os.environ, PATH=self.dir + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
                   FAKE_LOG=self.log, FAKE_RC=str(rc))
        return subprocess.run([mtatest.program("mtactl"), "-c", os.path.join(self.dir, "etc"), *args],
                              capture_output=True, text=True, env=env, timeout=60)

    def calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [line.split() for line in f.read().splitlines()]

    def test_start(self):
        r = self.ctl("start")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(self.calls(), [["start", *SOCKETS, *TRIGGERS]])

    def test_stop(self):
        r = self.ctl("stop")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.calls(), [["stop", *SOCKETS, *TRIGGERS, *SERVICES]])

    def test_reload(self):
        r = self.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.calls(), [["try-reload-or-restart", "mta-smtpd.service"]])

    def test_abort(self):
        r = self.ctl("abort")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.calls(), [["kill", "--signal=SIGKILL", *SERVICES],
                                        ["stop", *SOCKETS, *TRIGGERS, *SERVICES]])

    def test_failure(self):
        r = self.ctl("start", rc=5)
        self.assertEqual(r.returncode, 1)
        self.assertIn("mtactl: start failed", r.stderr)

    def test_usage(self):
        r = self.ctl("stop", "now")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(self.calls(), [])


if __name__ == "__main__":
    mtatest.main()
