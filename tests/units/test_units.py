#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The hardening gate and a static check of everything units/ installs.

The units are taken from a staged install (meson install --destdir of the build under test), so
the files checked are the files a package ships. systemd-analyze security --offline=yes must rate
each service at or below its ceiling (issue 9: receiver 1.5, queue runner 2.0, local delivery
3.0); systemd-analyze verify must be silent, with every ExecStart= binary present in the stage
and every Documentation=man: page installed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import mtatest

CEILINGS = {
    "mta-smtpd.service": 1.5,
    "mta-queue.service": 2.0,
    "mta-local@.service": 3.0,
}

UNITS = ["mta.socket", "mta-submit.socket", "mta-smtpd.service", "mta-queue.service",
         "mta-queue.path", "mta-queue.timer", "mta-local.socket", "mta-local@.service"]


def build_prefix(build):
    out = subprocess.run(["meson", "introspect", "--buildoptions", build], check=True,
                         capture_output=True, text=True).stdout
    opts = {o["name"]: o["value"] for o in json.loads(out)}
    return opts["prefix"], opts["mandir"]


class Stage:
    """A meson install --destdir of the build under test, made once for all tests."""

    dir = None

    @classmethod
    def get(cls):
        if cls.dir is None:
            cls.dir = tempfile.mkdtemp(prefix="mta-units-stage-")
            subprocess.run(["meson", "install", "-C", mtatest.BUILD, "--destdir", cls.dir,
                            "--no-rebuild", "--quiet"], check=True, stdout=subprocess.DEVNULL)
        return cls.dir

    @classmethod
    def find(cls, name):
        for root, _dirs, files in os.walk(cls.get()):
            if name in files:
                return os.path.join(root, name)
        return None


def exposure(unit_path):
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", unit_path],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    if not m:
        raise AssertionError(f"no exposure figure for {unit_path}:\n{r.stdout}{r.stderr}")
    return float(m.group(1)), r.stdout


class TestUnits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which("systemd-analyze") is None:
            raise unittest.SkipTest("systemd-analyze is not installed")
        cls.stage = Stage.get()
        cls.prefix, cls.mandir = build_prefix(mtatest.BUILD)

    @classmethod
    def tearDownClass(cls):
        if Stage.dir:
            shutil.rmtree(Stage.dir, ignore_errors=True)
            Stage.dir = None

    def unit(self, name):
        path = Stage.find(name)
        self.assertIsNotNone(path, f"{name} is not installed")
        self.assertIn("/lib/systemd/system/", path, f"{name} installed outside a unit directory")
        return path

    def test_all_installed(self):
        for name in UNITS:
            self.unit(name)
        sysusers = [p for p in (os.path.join(r, f) for r, _d, fs in os.walk(self.stage) for f in fs)
                    if p.endswith("/sysusers.d/mta.conf")]
        tmpfiles = [p for p in (os.path.join(r, f) for r, _d, fs in os.walk(self.stage) for f in fs)
                    if p.endswith("/tmpfiles.d/mta.conf")]
        self.assertEqual(len(sysusers), 1, "sysusers.d/mta.conf not installed")
        self.assertEqual(len(tmpfiles), 1, "tmpfiles.d/mta.conf not installed")

    def test_security_ceilings(self):
        failures = []
        for name, ceiling in CEILINGS.items():
            figure, report = exposure(self.unit(name))
            print(f"{name}: exposure {figure} (ceiling {ceiling})", file=sys.stderr)
            if figure > ceiling:
                failures.append(f"{name}: {figure} > {ceiling}\n{report}")
        self.assertEqual(failures, [])

    def test_verify(self):
        """systemd-analyze verify on the staged units. ExecStart= paths name the installed
        location (prefix); they are pointed into the stage so that verify checks the binaries
        the install actually put there."""
        tmp = tempfile.mkdtemp(prefix="mta-units-verify-")
        self.addCleanup(shutil.rmtree, tmp, True)
        paths = []
        for name in UNITS:
            with open(self.unit(name)) as f:
                text = f.read()

            def to_stage(m):
                staged = self.stage + m.group(2)
                self.assertTrue(os.access(staged, os.X_OK),
                                f"{name}: {m.group(2)} is not installed (looked for {staged})")
                return m.group(1) + staged
            text = re.sub(r"^(Exec(?:Start|Reload|Stop)[A-Za-z]*=[-@:+!]*)(/\S+)", to_stage, text,
                          flags=re.M)
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                f.write(text)
            paths.append(path)
        env = dict(os.environ)
        env["MANPATH"] = self.stage + self.mandir_abs()
        r = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True,
                           env=env)
        out = (r.stdout + r.stderr).strip()
        self.assertEqual(out, "", f"systemd-analyze verify complains:\n{out}")
        self.assertEqual(r.returncode, 0)

    def mandir_abs(self):
        return self.mandir if os.path.isabs(self.mandir) else os.path.join(self.prefix, self.mandir)

    def test_sysusers_tmpfiles(self):
        """sysusers.d makes mta and mail; tmpfiles.d then makes every directory with its owner."""
        root = tempfile.mkdtemp(prefix="mta-units-root-")
        self.addCleanup(shutil.rmtree, root, True)
        os.makedirs(os.path.join(root, "etc"))
        files = [os.path.join(r, f) for r, _d, fs in os.walk(self.stage) for f in fs if f == "mta.conf"]
        sysusers = next(p for p in files if "/sysusers.d/" in p)
        tmpfiles = next(p for p in files if "/tmpfiles.d/" in p)
        r = subprocess.run(["systemd-sysusers", f"--root={root}", sysusers], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", tmpfiles],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.strip(), "")
        ids = {}
        for db in ("passwd", "group"):
            with open(os.path.join(root, "etc", db)) as f:
                for line in f:
                    fields = line.split(":")
                    ids[(db, fields[0])] = int(fields[2])
        mta_uid, mta_gid, mail_gid = ids[("passwd", "mta")], ids[("group", "mta")], ids[("group", "mail")]
        spool = os.path.join(root, "var/spool/mta")
        for sub in ["", "incoming", "new", "deferred", "hold", "corrupt", "defer", "done"]:
            st = os.stat(os.path.join(spool, sub))
            self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (mta_uid, mta_gid, 0o700), sub)
        st = os.stat(os.path.join(root, "var/mail"))
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (0, mail_gid, 0o2775))
        self.assertTrue(os.path.isdir(os.path.join(root, "run/mta")))
        self.assertTrue(os.path.isdir(os.path.join(root, "etc/mta")))

    def test_start_socket_pulls_everything(self):
        """`systemctl start mta.socket` and `systemctl enable mta.socket` reach every other unit."""
        with open(self.unit("mta.socket")) as f:
            text = f.read()
        wants = set(re.search(r"^Wants=(.*)$", text, re.M).group(1).split())
        also = set(re.search(r"^Also=(.*)$", text, re.M).group(1).split())
        rest = {"mta-submit.socket", "mta-local.socket", "mta-queue.path", "mta-queue.timer"}
        self.assertEqual(wants, rest)
        self.assertEqual(also, rest)


if __name__ == "__main__":
    mtatest.main()
