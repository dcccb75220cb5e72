#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End to end under a real systemd: the installed units, in a throwaway container.

The build under test is installed with `meson install --destdir` (prefix /usr/local; a build
configured with another prefix is rebuilt here with /usr/local), and a container is booted from
the host's /usr with a fresh /etc and /var (systemd-nspawn --volatile=yes, see
shared/RECIPES.md) and the stage bound onto /usr/local, where systemd finds the units,
sysusers.d and tmpfiles.d. Inside: `systemctl start mta.socket` alone, then mail over port 25
with swaks to a user, an alias and a virtual alias address, read back with `mail -f`; the
journal's MTA_QUEUE_ID story; `mtactl check`; a relay attempt from an address outside
mynetworks; a receiver restart in the middle of a load that must refuse no connection and lose
no message; and mta-sendmail run by an ordinary user through the submission socket.

Needs root and systemd-nspawn (package systemd-container); skips (exit 77) otherwise, and when a
program is not built yet. MTA_E2E_KEEP=1 keeps the container and the stage for a post-mortem.
"""

import functools
import json
import mailbox
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import mtatest

PREFIX = "/usr/local"
ALL_UNITS = ["mta.socket", "mta-submit.socket", "mta-local.socket", "mta-queue.path",
             "mta-queue.timer"]
# Host units that a first boot would enable from presets and that would take port 25 or hold up
# the boot. The host's /usr is shared with the container.
MASK = ["postfix.service", "postfix@.service", "postfix@-.service", "postfix-resolvconf.path",
        "postfix-resolvconf.service", "exim4.service", "exim4-base.timer", "sendmail.service",
        "opensmtpd.service", "systemd-networkd-wait-online.service", "postgresql.service"]

# bsd-mailx's `mail` is an alternatives link in /etc, which the container's fresh /etc lacks.
MAILX = "bsd-mailx" if shutil.which("bsd-mailx") else "mail"

MAIN_CF = """# written by tests/e2e/test_container.py
myhostname = mx.example.test
mydomain = example.test
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain, localhost, $mydomain
mynetworks = 127.0.0.0/8, [::1]/128
alias_maps = hash:/etc/mta/aliases
alias_database = hash:/etc/mta/aliases
virtual_alias_domains = virtual.test
virtual_alias_maps = hash:/etc/mta/virtual
"""
ALIASES = "postmaster: root\ninfo: alice\n"
VIRTUAL = "sales@virtual.test alice\n"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def build_options(build):
    out = subprocess.run(["meson", "introspect", "--buildoptions", build], check=True,
                         capture_output=True, text=True).stdout
    return {o["name"]: o["value"] for o in json.loads(out)}


def stage_install(workdir):
    """Returns the destdir of a --prefix=/usr/local install of the build under test."""
    build = os.path.realpath(mtatest.BUILD)
    if build_options(build)["prefix"] != PREFIX:
        # An honest install needs the real prefix compiled in: build once more with it.
        build = os.path.join(workdir, "build")
        log(f"e2e: the build under test has another prefix; building {build} with {PREFIX}")
        subprocess.run(["meson", "setup", build, mtatest.SOURCE, f"--prefix={PREFIX}"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["ninja", "-C", build], check=True, stdout=subprocess.DEVNULL)
    stage = os.path.join(workdir, "stage")
    subprocess.run(["meson", "install", "-C", build, "--destdir", stage, "--no-rebuild", "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    return stage


class Container:
    """A booted systemd-nspawn container; run() executes a command inside it with nsenter."""

    def __init__(self, workdir, stage=None, root="/"):
        """stage: a destdir bound onto /usr/local of a volatile container booted from the
        host's /usr; without it, root is booted as it is (a writable throwaway tree)."""
        self.workdir = workdir
        self.stage = stage
        self.root = root
        self.name = f"mtae2e{os.getpid()}"
        self.proc = None
        self.pid1 = None

    def boot(self, timeout=180):
        args = ["systemd-nspawn", "-q", "-D", self.root, "--boot", "--register=no", "--keep-unit",
                "-M", self.name, "--private-network"]
        if self.stage:
            # Presets of a first boot would enable (and start) our units at boot: keep them
            # off, so that `systemctl start mta.socket` is what brings them up.
            preset = os.path.join(self.workdir, "00-mtatest.preset")
            with open(preset, "w") as f:
                f.write("disable mta*\n")
            args += ["--volatile=yes", f"--bind-ro={self.stage}{PREFIX}:{PREFIX}",
                     f"--bind-ro={preset}:/etc/systemd/system-preset/00-mtatest.preset"]
        args += ["--", "systemd.firstboot=off", *[f"systemd.mask={u}" for u in MASK]]
        self.console = open(os.path.join(self.workdir, "console.log"), "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.console,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while self.pid1 is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("the container's systemd did not appear")
            self.pid1 = self._find_pid1()
            time.sleep(0.2)
        state = ""
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if state == "starting" and self.run("systemctl", "is-active", "basic.target",
                                                "sockets.target", check=False).returncode == 0:
                jobs = self.run("systemctl", "list-jobs", "--no-legend", check=False).stdout
                if len(jobs.splitlines()) <= 2:
                    break
            time.sleep(0.5)
        else:
            raise TimeoutError(f"the container did not finish booting (state {state!r})")
        log(f"e2e: container {self.name} booted (PID 1 = {self.pid1} outside, state {state})")

    def _find_pid1(self):
        """The container's systemd: a child of our systemd-nspawn process."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv0 = f.read().split(b"\0")[0]
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid and argv0.endswith(b"/systemd"):
                return int(entry)
        return None

    def run(self, *argv, input=None, check=True, timeout=120, env=None):
        e = {"PATH": f"{PREFIX}/sbin:{PREFIX}/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
             "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
        e.update(env or {})
        r = subprocess.run(["nsenter", "-t", str(self.pid1), "-a", *argv], input=input,
                           capture_output=True, text=True, timeout=timeout, env=e,
                           errors="replace")
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited with {r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def path(self, p):
        return f"/proc/{self.pid1}/root{p}"

    def write(self, p, text, mode=0o644):
        with open(self.path(p), "w") as f:
            f.write(text)
        os.chmod(self.path(p), mode)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)   # nspawn powers the container off
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def diagnose(fn):
    """On failure, prints what an engineer needs to see before the container is gone."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except BaseException:
            type(self).dump_diagnostics()
            raise
    return wrapper


class TestContainer(unittest.TestCase):
    maxDiff = None
    c = None
    workdir = None
    dumped = False

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root")
        for tool in ("systemd-nspawn", "nsenter", "swaks", MAILX, "setpriv", "ip"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest(f"{tool} is not installed")
        missing = [p for p in mtatest.PROGRAMS if not mtatest.have_program(p)]
        if missing:
            raise unittest.SkipTest(f"not built yet: {', '.join(missing)}")
        cls.workdir = tempfile.mkdtemp(prefix="mta-e2e-")
        os.chmod(cls.workdir, 0o755)
        try:
            cls.stage = stage_install(cls.workdir)
            cls.c = Container(cls.workdir, cls.stage)
            cls.c.boot()
            cls.prepare()
        except BaseException:
            cls.dump_diagnostics()
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        keep = os.environ.get("MTA_E2E_KEEP") == "1"
        if cls.c is not None and not keep:
            cls.c.stop()
        if cls.workdir and not keep:
            shutil.rmtree(cls.workdir, ignore_errors=True)
        elif keep and cls.c is not None:
            log(f"e2e: kept {cls.workdir}; container PID 1 {cls.c.pid1}, nspawn PID {cls.c.proc.pid}")

    @classmethod
    def prepare(cls):
        c = cls.c
        # What netbase and man-db give every real system (a volatile /etc lacks them).
        for name in ("protocols", "services", "hosts", "manpath.config"):
            shutil.copyfile(f"/etc/{name}", c.path(f"/etc/{name}"))
        # tmpfiles.d made /etc/mta at boot; the administrator's part follows.
        c.write("/etc/mta/main.cf", MAIN_CF)
        c.write("/etc/mta/aliases", ALIASES)
        c.write("/etc/mta/virtual", VIRTUAL)
        c.run("mta-alias", "/etc/mta/aliases")
        c.run("mta-map", "/etc/mta/virtual")
        for user in ("alice", "bob"):
            c.run("useradd", "-m", user)

    @classmethod
    def dump_diagnostics(cls):
        if cls.dumped or cls.c is None or cls.c.pid1 is None:
            if cls.workdir and os.path.exists(os.path.join(cls.workdir, "console.log")):
                with open(os.path.join(cls.workdir, "console.log"), errors="replace") as f:
                    log("---- container console (tail)\n" + "".join(f.readlines()[-60:]))
            return
        cls.dumped = True
        c = cls.c
        for argv in (["systemctl", "--failed", "--no-pager"],
                     ["systemctl", "status", "--no-pager", "-l", "--lines=30", "mta.socket",
                      "mta-submit.socket", "mta-local.socket", "mta-smtpd.service",
                      "mta-queue.service", "mta-queue.path", "mta-queue.timer", "mta-local@*"],
                     ["journalctl", "-b", "--no-pager", "-n", "300"],
                     ["ls", "-lanR", "/var/spool/mta", "/var/mail", "/run/mta"],
                     ["mtactl", "queue"]):
            try:
                r = c.run(*argv, check=False, timeout=60)
                log(f"---- {' '.join(argv)} (exit {r.returncode})\n{r.stdout}{r.stderr}")
            except Exception as e:       # diagnostics must never hide the real failure
                log(f"---- {' '.join(argv)}: {e}")

    # ---- helpers

    def swaks(self, to, token, sender="e2e@example.org", server="127.0.0.1", extra=(), check=True):
        r = self.c.run("swaks", "--server", server, "--port", "25", "--to", to, "--from", sender,
                       "--helo", "client.example.org", "--timeout", "60",
                       "--header", f"Subject: {token}", "--body", f"token {token}\n", *extra,
                       check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"swaks to {to} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def mbox_messages(self, user):
        path = self.c.path(f"/var/mail/{user}")
        if not os.path.exists(path):
            return []
        box = mailbox.mbox(path, create=False)
        try:
            return [(m.get_from(), m["Subject"] or "", m.get_payload()) for m in box]
        finally:
            box.close()

    def wait_for_subjects(self, user, tokens, timeout=120):
        """Waits until every token is the subject of a message in /var/mail/USER; returns the
        subjects found (with repeats)."""
        deadline = time.monotonic() + timeout
        while True:
            subjects = [s for _f, s, _b in self.mbox_messages(user)]
            missing = [t for t in tokens if t not in subjects]
            if not missing:
                return subjects
            if time.monotonic() > deadline:
                raise AssertionError(f"not delivered to {user} within {timeout}s: {missing}")
            time.sleep(0.5)

    def journal_entries(self):
        r = self.c.run("journalctl", "-b", "-o", "json", "--no-pager", timeout=120)
        entries = []
        for line in r.stdout.splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries

    def main_pid(self, unit):
        r = self.c.run("systemctl", "show", "-p", "MainPID", "--value", unit)
        return int(r.stdout.strip() or 0)

    # ---- the tests, in order

    @diagnose
    def test_01_verify_installed_units(self):
        units = [f"{PREFIX}/lib/systemd/system/{u}" for u in
                 ["mta.socket", "mta-submit.socket", "mta-smtpd.service", "mta-queue.service",
                  "mta-queue.path", "mta-queue.timer", "mta-local.socket", "mta-local@.service"]]
        r = self.c.run("systemd-analyze", "verify", *units, check=False)
        self.assertEqual((r.stdout + r.stderr).strip(), "", "systemd-analyze verify complains")
        self.assertEqual(r.returncode, 0)

    @diagnose
    def test_02_start_socket_brings_up_everything(self):
        c = self.c
        st = os.stat(c.path("/var/mail"))
        self.assertEqual(oct(st.st_mode & 0o7777), oct(0o2775), "tmpfiles.d made /var/mail")
        c.run("id", "mta")
        r = c.run("systemctl", "is-active", *ALL_UNITS, check=False)
        self.assertNotIn("active", r.stdout.split(), "mail units running before systemctl start")
        c.run("systemctl", "start", "mta.socket")
        r = c.run("systemctl", "is-active", *ALL_UNITS, check=False)
        self.assertEqual(r.stdout.split(), ["active"] * len(ALL_UNITS), r.stdout)

    @diagnose
    def test_03_deliveries(self):
        c = self.c
        tag = uuid.uuid4().hex[:8]
        sends = {f"e2e-user-{tag}": "alice@example.test",
                 f"e2e-alias-{tag}": "info@example.test",
                 f"e2e-virtual-{tag}": "sales@virtual.test"}
        ids = {}
        for token, rcpt in sends.items():
            out = self.swaks(rcpt, token, sender=f"{token}@example.org").stdout
            m = re.search(r"<-\s+250[ -].*queued as ([A-Za-z0-9]+)", out)
            if m:
                ids[token] = m.group(1)
        self.wait_for_subjects("alice", list(sends))
        # As an administrator reads it: bsd-mailx lists the three (x: leave without changes).
        r = c.run(MAILX, "-f", "/var/mail/alice", input="x\n", check=False)
        for token in sends:
            self.assertIn(token, r.stdout, f"mail -f does not list {token}:\n{r.stdout}{r.stderr}")
        # The journal tells each message's story under its queue id, ending in a delivery.
        entries = self.journal_entries()
        for token in sends:
            qid = ids.get(token)
            if qid is None:     # the 250 reply did not name it: find it by the unique sender
                qids = {e.get("MTA_QUEUE_ID") for e in entries
                        if token in str(e.get("MTA_SENDER", "")) and e.get("MTA_QUEUE_ID")}
                self.assertEqual(len(qids), 1, f"no single queue id in the journal for {token}")
                qid = qids.pop()
            r = c.run("journalctl", "-b", "-o", "json", "--no-pager", f"MTA_QUEUE_ID={qid}")
            story = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
            sent = [e for e in story if e.get("MTA_STATUS") == "sent"]
            self.assertTrue(sent, f"journalctl MTA_QUEUE_ID={qid} shows no delivery:\n"
                            + "\n".join(str(e.get("MESSAGE")) for e in story))
            log(f"e2e: {token} -> {sends[token]}: queue id {qid}, {len(story)} journal entries, "
                f"delivered to {sent[0].get('MTA_RECIPIENT')}")

    @diagnose
    def test_04_mtactl_check(self):
        r = self.c.run("mtactl", "check", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotRegex((r.stdout + r.stderr).lower(), "warning|error", r.stdout + r.stderr)

    @diagnose
    def test_05_no_relay_from_outside_mynetworks(self):
        c = self.c
        # A second address on the container's own loopback (a dummy link would need the dummy
        # module, which a container cannot load): traffic from it is not from 127.0.0.0/8.
        c.run("ip", "addr", "add", "192.0.2.10/32", "dev", "lo")
        tag = uuid.uuid4().hex[:8]
        outside = ("--local-interface", "192.0.2.10")
        r = self.swaks(f"victim-{tag}@remote.example", f"e2e-relay-{tag}", server="192.0.2.10",
                       extra=outside, check=False)
        self.assertNotEqual(r.returncode, 0, "relay attempt accepted:\n" + r.stdout)
        # Refused at RCPT, temporarily or for good (Postfix's default smtpd_relay_restrictions
        # ends in defer_unauth_destination: 454 4.7.1).
        self.assertRegex(r.stdout, r"RCPT TO:<victim-[^\n]*\n<\*\*\s+[45]\d\d [45]\.7\.1 ", r.stdout)
        # The same client may still send to a local user: the refusal was about relaying.
        token = f"e2e-outside-{tag}"
        self.swaks("alice@example.test", token, server="192.0.2.10", extra=outside)
        self.wait_for_subjects("alice", [token])
        # Nothing addressed to the victim was queued or sent anywhere.
        bad = [e for e in self.journal_entries()
               if f"victim-{tag}" in str(e.get("MTA_RECIPIENT", ""))
               and e.get("MTA_STATUS") in ("sent", "deferred", "bounced")]
        self.assertEqual(bad, [])

    @diagnose
    def test_06_restart_under_load(self):
        c = self.c
        tag = uuid.uuid4().hex[:8]
        per_thread, n_threads = 25, 3
        results = []
        lock = threading.Lock()

        def sender(t):
            for i in range(per_thread):
                token = f"e2e-load-{tag}-{t}-{i}"
                r = self.swaks("bob@example.test", token, check=False)
                with lock:
                    results.append((token, r.returncode, r.stdout + r.stderr))

        threads = [threading.Thread(target=sender, args=(t,)) for t in range(n_threads)]
        for t in threads:
            t.start()
        restarts = []
        for at in (10, 40):
            while len(results) < at and any(t.is_alive() for t in threads):
                time.sleep(0.05)
            before = self.main_pid("mta-smtpd.service")
            c.run("systemctl", "restart", "mta-smtpd.service")
            after = self.main_pid("mta-smtpd.service")
            restarts.append((len(results), before, after))
            log(f"e2e: restarted mta-smtpd after {len(results)} sends: MainPID {before} -> {after}")
        for t in threads:
            t.join(600)
        self.assertEqual(len(results), per_thread * n_threads)
        self.assertTrue(any(b and a and b != a for _n, b, a in restarts),
                        f"the receiver was never replaced mid-load: {restarts}")
        refused = [tok for tok, rc, out in results if rc != 0 and "Connection refused" in out]
        self.assertEqual(refused, [], "connections refused across the restart")
        # A client that got its 220 must be able to finish: a 421 or a hang-up from the old
        # receiver is as good as a refusal to that client.
        failed = [(tok, rc, out) for tok, rc, out in results if rc != 0]
        self.assertEqual(failed, [], "sessions failed across the restart")
        tokens = [tok for tok, _rc, _out in results]
        subjects = self.wait_for_subjects("bob", tokens, timeout=300)
        dups = {t: subjects.count(t) for t in tokens if subjects.count(t) > 1}
        log(f"e2e: {len(tokens)} messages over {len(restarts)} restarts, all delivered; "
            f"duplicates: {len(dups)} {sorted(dups)[:5]}")

    @diagnose
    def test_07_sendmail_as_user(self):
        c = self.c
        token = f"e2e-sendmail-{uuid.uuid4().hex[:8]}"
        msg = f"To: alice@example.test\nSubject: {token}\n\nfrom bob by mta-sendmail\n"
        uid = c.run("id", "-u", "bob").stdout.strip()
        gid = c.run("id", "-g", "bob").stdout.strip()
        c.run("setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--",
              "mta-sendmail", "-i", "alice@example.test", input=msg)
        self.wait_for_subjects("alice", [token])
        froms = [f for f, s, _b in self.mbox_messages("alice") if s == token]
        self.assertTrue(froms[0].startswith("bob@"), f"envelope sender is not bob: {froms[0]}")

    @diagnose
    def test_08_services_unprivileged(self):
        c = self.c
        # The receiver runs as mta (it may have exited idle: a connection brings it back).
        self.swaks("alice@example.test", f"e2e-wake-{uuid.uuid4().hex[:8]}")
        pid = self.main_pid("mta-smtpd.service")
        if pid:
            with open(c.path(f"/proc/{pid}/status")) as f:
                uids = re.search(r"^Uid:\s+(.*)$", f.read(), re.M).group(1).split()
            mta_uid = c.run("id", "-u", "mta").stdout.strip()
            self.assertEqual(set(uids), {mta_uid})

    @diagnose
    def test_09_queue_drained_and_enable(self):
        c = self.c
        deadline = time.monotonic() + 60
        while True:
            left = [n for sub in ("incoming", "new", "deferred")
                    for n in os.listdir(c.path(f"/var/spool/mta/{sub}"))]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(left, [], "messages left in the queue")
        c.run("systemctl", "enable", "mta.socket")
        r = c.run("systemctl", "is-enabled", *ALL_UNITS, check=False)
        self.assertEqual(r.stdout.split(), ["enabled"] * len(ALL_UNITS), r.stdout)

    @diagnose
    def test_10_reload_keeps_socket_and_process(self):
        """systemctl reload re-reads main.cf in the running receiver, socket untouched."""
        c = self.c
        token = f"reloaded-{uuid.uuid4().hex[:8]}"
        c.run("systemctl", "start", "mta-smtpd.service")
        before = self.main_pid("mta-smtpd.service")
        self.assertNotEqual(before, 0)
        c.write("/etc/mta/main.cf", MAIN_CF + f"smtpd_banner = $myhostname ESMTP {token}\n")
        c.run("systemctl", "reload", "mta-smtpd.service")
        r = c.run("swaks", "--server", "127.0.0.1", "--port", "25", "--quit-after", "CONNECT",
                  check=False)
        self.assertIn(token, r.stdout, r.stdout + r.stderr)
        self.assertEqual(self.main_pid("mta-smtpd.service"), before, "reload replaced the process")
        c.write("/etc/mta/main.cf", MAIN_CF)
        c.run("systemctl", "reload", "mta-smtpd.service", check=False)

    @diagnose
    def test_11_stop_socket_stops_everything(self):
        """What `mtactl stop` and `mtactl start` do: systemctl stop/start mta.socket."""
        c = self.c
        c.run("systemctl", "stop", "mta.socket")
        r = c.run("systemctl", "is-active", *ALL_UNITS, "mta-smtpd.service", check=False)
        self.assertNotIn("active", r.stdout.split(), r.stdout)
        c.run("systemctl", "start", "mta.socket")
        r = c.run("systemctl", "is-active", *ALL_UNITS, check=False)
        self.assertEqual(r.stdout.split(), ["active"] * len(ALL_UNITS), r.stdout)
        token = f"e2e-after-stop-{uuid.uuid4().hex[:8]}"
        self.swaks("alice@example.test", token)
        self.wait_for_subjects("alice", [token])

    @diagnose
    def test_12_tls_key_from_credentials(self):
        """STARTTLS with a key only root can read, handed over by LoadCredential=."""
        c = self.c
        if shutil.which("openssl") is None:
            self.skipTest("openssl is not installed")
        key, cert = os.path.join(self.workdir, "tls.key"), os.path.join(self.workdir, "tls.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                            key, "-out", cert, "-days", "2", "-subj", "/CN=mx.example.test"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"openssl cannot make a test certificate: {r.stderr}")
        os.makedirs(c.path("/etc/ssl/private"), exist_ok=True)
        shutil.copyfile(key, c.path("/etc/ssl/private/mta-test.key"))
        os.chmod(c.path("/etc/ssl/private/mta-test.key"), 0o600)
        shutil.copyfile(cert, c.path("/etc/ssl/private/mta-test.pem"))
        os.makedirs(c.path("/etc/systemd/system/mta-smtpd.service.d"), exist_ok=True)
        c.write("/etc/systemd/system/mta-smtpd.service.d/tls.conf",
                "[Service]\nLoadCredential=smtpd-key:/etc/ssl/private/mta-test.key\n"
                "LoadCredential=smtpd-cert:/etc/ssl/private/mta-test.pem\n")
        c.write("/etc/mta/main.cf", MAIN_CF + "smtpd_tls_security_level = may\n")
        c.run("systemctl", "daemon-reload")
        c.run("systemctl", "stop", "mta-smtpd.service")
        token = f"e2e-tls-{uuid.uuid4().hex[:8]}"
        r = self.swaks("alice@example.test", token, extra=("--tls",))
        self.assertIn("TLS started", r.stdout)
        self.wait_for_subjects("alice", [token])


if __name__ == "__main__":
    mtatest.main()
