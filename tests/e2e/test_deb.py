#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Debian package, installed the way an administrator installs it, in a throwaway system.

Builds the binary package from the source tree under test (dpkg-buildpackage -us -uc -b, tests
skipped: the other suites run them), checks lintian reports no error, then boots a container
whose root is an overlay of the host's root with a tmpfs on top (nothing reaches the host) and
there: removes an installed MTA (another mail-transport-agent conflicts), `dpkg -i`, checks that
debhelper enabled and started the units, sends mail over port 25 and through sendmail as a user,
and finally removes and purges the package: units stopped and gone, queue removed.

Needs root, systemd-nspawn, dpkg-buildpackage with debhelper, and overlayfs; skips otherwise.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
import uuid

import mtatest
from test_container import ALL_UNITS, Container, log

SKIP_DIRS = {".git", "__pycache__"}


def copy_source(src, dst):
    def ignore(d, names):
        return [n for n in names if n in SKIP_DIRS or
                (d == src and (n.startswith("build") or n.startswith("obj-")))]
    shutil.copytree(src, dst, ignore=ignore, symlinks=True)
    # A previous in-tree package build would leave its debian/ output behind.
    for leftover in ("debian/mta", "debian/.debhelper", "debian/files"):
        shutil.rmtree(os.path.join(dst, leftover), ignore_errors=True)


class TestDeb(unittest.TestCase):
    workdir = None
    c = None
    mounts = []

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root")
        for tool in ("systemd-nspawn", "nsenter", "dpkg-buildpackage", "dh", "swaks", "setpriv"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest(f"{tool} is not installed (apt-get install debhelper "
                                        "dpkg-dev systemd-container swaks)")
        missing = [p for p in mtatest.PROGRAMS if not mtatest.have_program(p)]
        if missing:
            raise unittest.SkipTest(f"not built yet: {', '.join(missing)}")
        cls.workdir = tempfile.mkdtemp(prefix="mta-deb-")
        os.chmod(cls.workdir, 0o755)
        try:
            cls.build_package()
            cls.make_root()
            cls.c = Container(cls.workdir, root=cls.merged)
            cls.c.boot()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def build_package(cls):
        src = os.path.join(cls.workdir, "src", "mta")
        copy_source(mtatest.SOURCE, src)
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck")
        r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise AssertionError(f"dpkg-buildpackage failed:\n{r.stdout[-4000:]}{r.stderr[-4000:]}")
        debs = [f for f in os.listdir(os.path.dirname(src))
                if re.fullmatch(r"mta_[^_]+_[a-z0-9]+\.deb", f)]
        assert len(debs) == 1, debs
        cls.deb = os.path.join(os.path.dirname(src), debs[0])
        cls.changes = cls.deb[:-4] + ".changes"

    @classmethod
    def make_root(cls):
        """The host's root filesystem under a tmpfs overlay: a writable, throwaway copy."""
        t = os.path.join(cls.workdir, "t")
        os.makedirs(t)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2G", "mtadeb", t], check=True)
        cls.mounts.append(t)
        for d in ("upper", "work", "merged"):
            os.makedirs(os.path.join(t, d))
        cls.merged = os.path.join(t, "merged")
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            f"lowerdir=/,upperdir={t}/upper,workdir={t}/work", cls.merged],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise unittest.SkipTest(f"cannot mount an overlay of /: {r.stderr.strip()}")
        cls.mounts.append(cls.merged)
        shutil.copy(cls.deb, os.path.join(cls.merged, "root", "mta.deb"))
        # The host may forbid starting services from maintainer scripts (containers often
        # do); the throwaway system must behave like a normal Debian machine.
        policy = os.path.join(cls.merged, "usr/sbin/policy-rc.d")
        if os.path.lexists(policy):
            os.unlink(policy)

    @classmethod
    def tearDownClass(cls):
        if cls.c is not None:
            cls.c.stop()
        for m in reversed(cls.mounts):
            for _ in range(20):
                if subprocess.run(["umount", m], capture_output=True).returncode == 0:
                    break
                time.sleep(0.5)     # the container's last processes may still hold it
            else:
                subprocess.run(["umount", "-l", m], check=False)
        cls.mounts = []
        with open("/proc/self/mounts") as f:
            busy = [line.split()[1] for line in f if cls.workdir and cls.workdir in line]
        if busy:
            log(f"deb: not removing {cls.workdir}, still mounted: {busy}")
        elif cls.workdir:
            shutil.rmtree(cls.workdir, ignore_errors=True)

    def diag(self):
        for argv in (["systemctl", "status", "--no-pager", "-l", "mta*"],
                     ["journalctl", "-b", "--no-pager", "-n", "150"]):
            r = self.c.run(*argv, check=False)
            log(f"---- {' '.join(argv)}\n{r.stdout}{r.stderr}")

    def test_01_lintian(self):
        if shutil.which("lintian") is None:
            self.skipTest("lintian is not installed")
        r = subprocess.run(["lintian", self.changes], capture_output=True, text=True, timeout=600)
        log("lintian:\n" + r.stdout)
        errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
        self.assertEqual(errors, [])

    def test_02_install_mail_flows_remove(self):
        try:
            self.install_and_send()
        except BaseException:
            self.diag()
            raise

    def install_and_send(self):
        c = self.c
        # Another MTA (the host may have one) conflicts through mail-transport-agent.
        others = c.run("dpkg-query", "-W", "-f", "${Package} ${Status} ${Provides}\n",
                       check=False).stdout
        for line in others.splitlines():
            if "mail-transport-agent" in line and " installed" in line:
                c.run("dpkg", "--purge", "--force-depends", line.split()[0])
        c.run("dpkg", "-i", "/root/mta.deb", timeout=300)
        # debhelper enabled the units and started them.
        r = c.run("systemctl", "is-enabled", *ALL_UNITS, check=False)
        self.assertEqual(r.stdout.split(), ["enabled"] * len(ALL_UNITS), r.stdout)
        r = c.run("systemctl", "is-active", *ALL_UNITS, check=False)
        self.assertEqual(r.stdout.split(), ["active"] * len(ALL_UNITS), r.stdout)
        c.run("systemctl", "start", "mta.socket")

        c.write("/etc/mta/main.cf", "myhostname = mx.example.test\nmydomain = example.test\n"
                "mydestination = $myhostname, localhost, $mydomain\n"
                "alias_maps = hash:/etc/mta/aliases\nalias_database = hash:/etc/mta/aliases\n")
        c.write("/etc/mta/aliases", "info: debuser\n")
        c.run("newaliases")
        c.run("useradd", "-m", "debuser")
        tag = uuid.uuid4().hex[:8]
        c.run("swaks", "--server", "127.0.0.1", "--port", "25", "--to", "info@example.test",
              "--from", "x@example.org", "--header", f"Subject: deb-smtp-{tag}")
        uid = c.run("id", "-u", "debuser").stdout.strip()
        gid = c.run("id", "-g", "debuser").stdout.strip()
        c.run("setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--",
              "/usr/sbin/sendmail", "-i", "debuser@example.test",
              input=f"Subject: deb-sendmail-{tag}\n\nhello\n")
        deadline = time.monotonic() + 90
        want = {f"deb-smtp-{tag}", f"deb-sendmail-{tag}"}
        while True:
            try:
                with open(c.path("/var/mail/debuser"), errors="replace") as f:
                    got = set(re.findall(r"^Subject: (deb-\S+)$", f.read(), re.M))
            except FileNotFoundError:
                got = set()
            if want <= got:
                break
            self.assertLess(time.monotonic(), deadline, f"not delivered: {want - got}")
            time.sleep(0.5)
        self.assertEqual(c.run("mtactl", "check", check=False).returncode, 0)

        # Remove: everything stops; purge: the queue goes, the units are unknown.
        c.run("dpkg", "-r", "--force-depends", "mta", timeout=300)
        r = c.run("systemctl", "is-active", *ALL_UNITS, "mta-smtpd.service", check=False)
        self.assertNotIn("active", r.stdout.split(), r.stdout)
        c.run("dpkg", "--purge", "--force-depends", "mta", timeout=300)
        self.assertFalse(os.path.exists(c.path("/var/spool/mta")))
        r = c.run("systemctl", "list-unit-files", "--no-legend", "mta*", check=False)
        self.assertEqual(r.stdout.strip(), "")


if __name__ == "__main__":
    mtatest.main()
