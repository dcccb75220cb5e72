# SPDX-License-Identifier: MIT
"""mta-local, driven through its real protocol: a SOCK_SEQPACKET socketpair, requests as records
with the queue file passed as SCM_RIGHTS, exactly as the queue runner talks to it.

Runs as root (it switches users); the test users come from mtatest.ensure_test_users()."""

import contextlib
import fcntl
import grp
import mailbox
import os
import pwd
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

import mtatest

ALICE, BOB, CAROL = mtatest.TEST_USERS
DATE_RE = re.compile(rb"^From (\S+) [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}$", re.M)


def rec(letter, data):
    return mtatest.queue_record(letter, data)


def parse_records(buf):
    out, pos = {}, 0
    while pos < len(buf):
        letter = chr(buf[pos])
        colon = buf.index(b":", pos)
        n = int(buf[pos + 1:colon])
        data = buf[colon + 1:colon + 1 + n]
        assert buf[colon + 1 + n:colon + 2 + n] == b"\n", buf
        out[letter] = data.decode("utf-8", "replace")
        pos = colon + 2 + n
    return out


class Agent:
    """One mta-local process on a socketpair, as the queue runner starts it without systemd."""

    def __init__(self, inst, run_as=None, traced=False):
        self.inst = inst
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ, LISTEN_FDS="1")
        if traced:
            # LeakSanitizer cannot work under ptrace and would fail the exit of an ASan build.
            env["ASAN_OPTIONS"] = ":".join(filter(None, (env.get("ASAN_OPTIONS"), "detect_leaks=0")))
        env.pop("LISTEN_FDNAMES", None)

        def preexec():
            os.dup2(theirs.fileno(), 3)
            os.set_inheritable(3, True)
            if run_as is not None:
                pw = pwd.getpwnam(run_as)
                os.setgroups([])
                os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
                os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)

        self.log = open(inst.path("mta-local.log"), "ab")
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', mtatest.program("mta-local"), "-c", inst.etc],
            env=env, preexec_fn=preexec, close_fds=False,
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        theirs.close()

    def send(self, kind, user, recipient, qpath, offset, size, sender="sender@example.test", target=None,
             original=None, extension=None, flags=None, qid="0123456789ABCDEF0123", raw=None, fd=True):
        if raw is None:
            raw = rec("K", kind) + rec("U", user)
            if target is not None:
                raw += rec("T", target)
            raw += rec("S", sender) + rec("R", recipient)
            if original is not None:
                raw += rec("O", original)
            if extension is not None:
                raw += rec("X", extension)
            raw += rec("Q", qid) + rec("A", "1700000000") + rec("o", str(offset)) + rec("n", str(size))
            if flags is not None:
                raw += rec("F", flags)
        if fd:
            qfd = os.open(qpath, os.O_RDONLY | os.O_CLOEXEC)
            try:
                socket.send_fds(self.sock, [raw], [qfd])
            finally:
                os.close(qfd)
        else:
            self.sock.send(raw)

    def reply(self, timeout=60):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            raise TimeoutError("no reply from mta-local")
        data = self.sock.recv(70000)
        if not data:
            raise EOFError("mta-local closed the socket")
        return parse_records(data)

    def ready(self):
        r, _, _ = select.select([self.sock], [], [], 0)
        return bool(r)

    def deliver(self, *a, timeout=60, **kw):
        self.send(*a, **kw)
        return self.reply(timeout)

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def kill(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def mbox_entry(sender, recipient, content, command=False):
    """What Postfix-style local delivery writes for one message (date normalised to DATE)."""
    if isinstance(content, str):
        content = content.encode()
    head = b"From %s DATE\nReturn-Path: <%s>\nDelivered-To: %s\n" % (
        (sender or "MAILER-DAEMON").encode(), sender.encode(), recipient.encode())
    if command:
        return head + content
    lines = content.split(b"\n")
    body = b"\n".join(b">" + l if l.startswith(b"From ") else l for l in lines)
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return head + body + b"\n"


def normalise(data):
    return DATE_RE.sub(lambda m: b"From " + m.group(1) + b" DATE", data)


@unittest.skipUnless(mtatest.is_root(), "needs root: mta-local switches users")
@unittest.skipUnless(mtatest.have_program("mta-local"), "mta-local not built")
class LocalTest(unittest.TestCase):
    extra = "deliver_lock_attempts = 3\ndeliver_lock_delay = 1s\n"

    @classmethod
    def setUpClass(cls):
        cls.users = {p.pw_name: p for p in mtatest.ensure_test_users()}

    def setUp(self):
        self.inst = mtatest.Instance(self.extra)
        self.agents = []
        self.qn = 0

    def tearDown(self):
        for a in self.agents:
            a.kill()
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-l", self.inst.path("tmpfs")], stderr=subprocess.DEVNULL)
        if os.environ.get("MTA_KEEP") is None:
            self.inst.close()
        else:
            print("kept", self.inst.root, file=sys.stderr)

    def agent(self, **kw):
        a = Agent(self.inst, **kw)
        self.agents.append(a)
        return a

    def config(self, extra):
        self.inst.write_main_cf(self.extra + extra)

    def queue(self, content, sender="sender@example.test", recipients=("x@example.test",)):
        self.qn += 1
        path = self.inst.path("q%d" % self.qn)
        off, size, _ = mtatest.write_queue_file(path, sender, list(recipients), content)
        return path, off, size

    def deliver(self, agent, user, content, kind="mailbox", sender="sender@example.test", recipient=None,
                **kw):
        q, off, size = self.queue(content, sender)
        recipient = recipient or user + "@example.test"
        return agent.deliver(kind, user, recipient, q, off, size, sender=sender, **kw)

    def mbox(self, user):
        return self.inst.mbox_path(user)

    def read(self, user):
        with open(self.mbox(user), "rb") as f:
            return f.read()

    def assert_mbox(self, path, expected_entries):
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(normalise(data), b"".join(expected_entries))
        self.assertEqual(len(data), len(b"".join(expected_entries)) +
                         sum(24 - 4 for _ in expected_entries))  # "DATE" stands for 24 characters
        box = mailbox.mbox(path, create=False)
        try:
            self.assertEqual(len(box), len(expected_entries))
        finally:
            box.close()
        # bsd-mailx lists every message with its size: the count and the sizes must add up.
        out = subprocess.run(["mail", "-N", "-f", path], input=b"from *\nx\n", capture_output=True,
                             env=dict(os.environ, HOME="/tmp"), timeout=60)
        text = out.stdout.decode("utf-8", "replace")
        m = re.search(r'": (\d+) messages?', text)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(1)), len(expected_entries), out)
        sizes = [int(x.group(1)) for x in
                 re.finditer(r"^[> ][NUOR ]?\s*\d+ .*\s\d+/(\d+)\s", text, re.M)]
        self.assertEqual(len(sizes), len(expected_entries), out)
        self.assertEqual(sum(sizes), len(data), out)

    def ok(self, reply):
        self.assertEqual(reply.get("s"), "ok", reply)
        self.assertEqual(reply.get("d"), "2.0.0", reply)

    def assertNextDeliveryCutsBackTo(self, agent, good):
        """After a delivery killed mid-write: the next one cuts ALICE's mbox back to good (what
        was there before) and appends its own message."""
        self.ok(self.deliver(agent, ALICE, "Subject: after\n\nz\n"))
        data = self.read(ALICE)
        self.assertTrue(data.startswith(good))
        self.assertEqual(normalise(data[len(good):]),
                         mbox_entry("sender@example.test", ALICE + "@example.test", "Subject: after\n\nz\n"))

    # ---- mailbox format ----

    def test_formats(self):
        a = self.agent()
        ten = ("0123456789" * 7 + "\n") * (10 * 1024 * 1024 // 71 + 1)
        cases = [
            "Subject: plain\n\nhello\n",
            "Subject: from lines\n\nFrom here\nFrom  two\n From not\nFrom\nFromage\nFrom ",
            "Subject: quoted\n\n>From already\n>>From twice\n>From \n",
            "Subject: 8bit\nContent-Type: text/plain; charset=utf-8\n\nGr\u00fc\u00dfe \u2014 \u00e9t\u00e9\n\xff",
            "Subject: no final newline\n\nlast line",
            "Subject: big\n\n" + ten,
            "",
        ]
        expected = []
        for c in cases:
            content = c.encode("utf-8", "surrogateescape") if "\xff" not in c else \
                c.replace("\xff", "").encode() + b"\xff\xfe"
            self.ok(self.deliver(a, ALICE, content))
            expected.append(mbox_entry("sender@example.test", ALICE + "@example.test", content))
        st = os.stat(self.mbox(ALICE))
        self.assertEqual(st.st_uid, self.users[ALICE].pw_uid)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertFalse(os.path.exists(self.mbox(ALICE) + ".lock"))
        self.assert_mbox(self.mbox(ALICE), expected)
        box = mailbox.mbox(self.mbox(ALICE), create=False)
        msgs = list(box)
        box.close()
        self.assertEqual(msgs[1].get_payload(), "From here\nFrom  two\n From not\nFrom\nFromage\n>From \n"
                         .replace("From here", ">From here").replace("From  two", ">From  two"))
        self.assertEqual(msgs[0]["Return-Path"], "<sender@example.test>")
        self.assertEqual(msgs[0]["Delivered-To"], ALICE + "@example.test")
        self.assertEqual(len(msgs[5].get_payload()), len(ten))   # the separator line is not part of it

    def test_forwarding_loop(self):
        a = self.agent()
        r = self.deliver(a, ALICE, "Delivered-To: %s@example.test\nSubject: loop\n\nx\n" % ALICE)
        self.assertEqual((r["s"], r["d"]), ("permfail", "5.4.6"), r)
        self.assertFalse(os.path.exists(self.mbox(ALICE)))
        d = self.user_dir(ALICE)
        r = self.deliver(a, ALICE, "Delivered-To: %s@example.test\nSubject: loop\n\nx\n" % ALICE,
                         kind="command", target="touch %s/ran" % d)
        self.assertEqual((r["s"], r["d"]), ("permfail", "5.4.6"), r)
        self.assertFalse(os.path.exists(os.path.join(d, "ran")))
        self.ok(self.deliver(a, ALICE, "Delivered-To: someone@else.test\nSubject: no loop\n\n"
                             "Delivered-To: %s@example.test\n" % ALICE))

    def test_null_sender_and_header_injection(self):
        a = self.agent()
        self.ok(self.deliver(a, ALICE, "Subject: bounce\n\nx\n", sender=""))
        self.ok(self.deliver(a, ALICE, "Subject: evil\n\nx\n", sender="a b\nX-Injected: yes\r\n@x",
                             recipient="alice\nX-Also: yes@example.test"))
        data = self.read(ALICE)
        self.assertTrue(data.startswith(b"From MAILER-DAEMON "), data)
        self.assertIn(b"Return-Path: <>\n", data)
        self.assertNotIn(b"\nX-Injected", data)
        self.assertNotIn(b"\nX-Also", data)
        self.assertIn(b"From a_b?X-Injected:_yes??@x ", data)
        box = mailbox.mbox(self.mbox(ALICE), create=False)
        self.assertEqual(len(box), 2)
        box.close()

    # ---- locking ----

    def hold_locks(self, user):
        """Holds the dot-lock (with our live pid, as liblockfile writes it) and the fcntl lock."""
        path = self.mbox(user)
        if not os.path.exists(path):
            self.ok(self.deliver(self.agent(), user, "Subject: first\n\nx\n"))
        lock = path + ".lock"
        with open(lock, "x") as f:
            f.write("%d\n" % os.getpid())
        fd = os.open(path, os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX)
        return lock, fd

    def test_race_with_reader_holding_lock(self):
        self.config("deliver_lock_attempts = 30\n")
        lock, fd = self.hold_locks(ALICE)
        before = os.path.getsize(self.mbox(ALICE))
        a, b = self.agent(), self.agent()
        qa = self.queue("Subject: racer A\n\n" + "A\n" * 100000)
        qb = self.queue("Subject: racer B\n\n" + "B\n" * 100000)
        a.send("mailbox", ALICE, ALICE + "@example.test", *qa)
        b.send("mailbox", ALICE, ALICE + "@example.test", *qb)
        time.sleep(2)
        self.assertFalse(a.ready() or b.ready(), "a delivery did not wait for the lock")
        self.assertEqual(os.path.getsize(self.mbox(ALICE)), before)
        # The reader lets go of the dot-lock first, the fcntl lock a little later.
        os.unlink(lock)
        time.sleep(1)
        self.assertEqual(os.path.getsize(self.mbox(ALICE)), before)
        fcntl.lockf(fd, fcntl.LOCK_UN)
        os.close(fd)
        self.ok(a.reply())
        self.ok(b.reply())
        box = mailbox.mbox(self.mbox(ALICE), create=False)
        subjects = sorted(m["Subject"] for m in box)
        box.close()
        self.assertEqual(subjects, ["first", "racer A", "racer B"])
        with open(self.mbox(ALICE), "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        self.assertEqual(lines.count(b"A"), 100000)
        self.assertEqual(lines.count(b"B"), 100000)

    def test_lock_timeout(self):
        lock, fd = self.hold_locks(ALICE)
        before = os.path.getsize(self.mbox(ALICE))
        t = time.monotonic()
        r = self.deliver(self.agent(), ALICE, "Subject: waits\n\nx\n")
        self.assertEqual((r["s"], r["d"]), ("tempfail", "4.2.0"), r)
        self.assertGreaterEqual(time.monotonic() - t, 2.5)
        self.assertEqual(os.path.getsize(self.mbox(ALICE)), before)
        self.assertTrue(os.path.exists(lock), "a live reader's lock was removed")
        os.unlink(lock)
        # Only the fcntl lock held: also a bounded wait.
        r = self.deliver(self.agent(), ALICE, "Subject: waits\n\nx\n")
        self.assertEqual((r["s"], r["d"]), ("tempfail", "4.2.0"), r)
        os.close(fd)
        self.ok(self.deliver(self.agent(), ALICE, "Subject: now\n\nx\n"))

    def test_stale_lock(self):
        a = self.agent()
        self.ok(self.deliver(a, ALICE, "Subject: first\n\nx\n"))
        lock = self.mbox(ALICE) + ".lock"
        # A lock with no pid, ten minutes old: stale.
        with open(lock, "w") as f:
            f.write("")
        old = time.time() - 600
        os.utime(lock, (old, old))
        self.ok(self.deliver(a, ALICE, "Subject: second\n\nx\n"))
        self.assertFalse(os.path.exists(lock))
        # A fresh lock of a dead process that is not ours: held until it is stale.
        dead = subprocess.Popen(["true"])
        dead.wait()
        with open(lock, "w") as f:
            f.write("%d\n" % dead.pid)
        r = self.deliver(a, ALICE, "Subject: third\n\nx\n")
        self.assertEqual(r["s"], "tempfail", r)
        os.utime(lock, (old, old))
        self.ok(self.deliver(a, ALICE, "Subject: third\n\nx\n"))
        # A symlink as lock: never followed, removed once stale.
        os.symlink("/etc/passwd", lock)
        os.utime(lock, (old, old), follow_symlinks=False)
        passwd = open("/etc/passwd", "rb").read()
        self.ok(self.deliver(a, ALICE, "Subject: fourth\n\nx\n"))
        self.assertEqual(open("/etc/passwd", "rb").read(), passwd)
        self.assertFalse(os.path.lexists(lock))
        box = mailbox.mbox(self.mbox(ALICE), create=False)
        self.assertEqual([m["Subject"] for m in box], ["first", "second", "third", "fourth"])
        box.close()

    def kill_mid_write(self, whole_group):
        self.config("mailbox_size_limit = 0\n")
        self.ok(self.deliver(self.agent(), ALICE, "Subject: first\n\nx\n"))
        good = self.read(ALICE)
        big = "Subject: huge\n\n" + ("y" * 1000 + "\n") * 40000
        caught = False
        for attempt in range(8):
            a = self.agent()
            q = self.queue(big)
            a.send("mailbox", ALICE, ALICE + "@example.test", *q)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                size = os.path.getsize(self.mbox(ALICE))
                if size > len(good) + 4096:
                    if whole_group:
                        a.kill()
                    else:
                        # Only mta-local itself: its delivery child must die with it.
                        os.kill(a.proc.pid, signal.SIGKILL)
                        a.proc.wait()
                    break
            time.sleep(0.5)
            size = os.path.getsize(self.mbox(ALICE))
            if len(good) < size < len(good) + len(big):
                caught = True
                break
            # Too late (already complete): start over from the good state.
            with open(self.mbox(ALICE), "r+b") as f:
                f.truncate(len(good))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.mbox(ALICE) + ".lock")
        self.assertTrue(caught, "never caught the delivery mid-write")
        time.sleep(0.5)
        self.assertEqual(os.path.getsize(self.mbox(ALICE)), size, "the delivery went on writing")
        self.assertTrue(os.path.exists(self.mbox(ALICE) + ".lock"), "the killed delivery's lock is gone")
        # The next delivery finds the dead delivery's lock, cuts the partial message off, writes.
        self.assertNextDeliveryCutsBackTo(self.agent(), good)

    def test_killed_delivery_is_cut_back(self):
        self.kill_mid_write(whole_group=True)

    def test_killed_agent_takes_its_delivery_along(self):
        self.kill_mid_write(whole_group=False)

    @staticmethod
    def children(agent):
        """The pids of mta-local's child processes (its delivery workers)."""
        with open("/proc/%d/task/%d/children" % (agent.proc.pid, agent.proc.pid)) as f:
            return [int(x) for x in f.read().split()]

    def test_worker_per_credentials(self):
        """Consecutive deliveries with the same rights share one worker; other rights get their own,
        a command runs apart, and the workers end with the connection."""
        a = self.agent()
        for i in range(3):
            self.ok(self.deliver(a, ALICE, "Subject: a%d\n\nx\n" % i))
        kids = self.children(a)
        self.assertEqual(len(kids), 1, kids)
        with open("/proc/%d/status" % kids[0]) as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        self.assertEqual(set(uids), {str(self.users[ALICE].pw_uid)})
        self.ok(self.deliver(a, BOB, "Subject: b\n\nx\n"))
        self.ok(self.deliver(a, ALICE, "Subject: command\n\nx\n", kind="command", target="cat >/dev/null"))
        self.ok(self.deliver(a, ALICE, "Subject: a3\n\nx\n"))
        kids2 = self.children(a)
        self.assertEqual(len(kids2), 2, kids2)
        self.assertIn(kids[0], kids2)
        box = mailbox.mbox(self.mbox(ALICE), create=False)
        self.assertEqual([m["Subject"] for m in box], ["a0", "a1", "a2", "a3"])
        box.close()
        self.assertEqual(a.close(), 0)
        for pid in kids2:
            self.assertFalse(os.path.exists("/proc/%d" % pid), "worker %d outlived the connection" % pid)

    def test_worker_cache_is_bounded(self):
        """More rights than the cache holds: the least recently used worker goes, nothing is lost."""
        a = self.agent()
        d = tempfile.mkdtemp(dir=self.inst.root)
        os.chmod(d, 0o1777)
        users = (ALICE, BOB, CAROL, "mta", "nobody")
        # A mailbox and a file for each of five accounts: ten sets of rights, twice over.
        first = None
        for rnd in range(2):
            for u in users:
                self.ok(self.deliver(a, u, "Subject: m%d\n\nx\n" % rnd))
                first = first or self.children(a)[0]
                self.ok(self.deliver(a, u, "Subject: f%d\n\nx\n" % rnd, kind="file",
                                     target=os.path.join(d, u)))
                self.assertLessEqual(len(self.children(a)), 8)
        self.assertEqual(len(self.children(a)), 8)
        self.assertNotIn(first, self.children(a), "the least recently used worker is still there")
        for u in users:
            box = mailbox.mbox(self.mbox(u), create=False)
            self.assertEqual([m["Subject"] for m in box], ["m0", "m1"])
            box.close()
            box = mailbox.mbox(os.path.join(d, u), create=False)
            self.assertEqual([m["Subject"] for m in box], ["f0", "f1"])
            box.close()
        self.assertEqual(a.close(), 0)

    def test_worker_killed_mid_write(self):
        """A worker that dies mid-delivery gives tempfail; the same connection goes on, and the next
        delivery cuts the partial message back."""
        self.config("mailbox_size_limit = 0\n")
        a = self.agent()
        self.ok(self.deliver(a, ALICE, "Subject: first\n\nx\n"))
        good = self.read(ALICE)
        big = "Subject: huge\n\n" + ("y" * 1000 + "\n") * 40000
        caught = False
        for attempt in range(8):
            worker = self.children(a)[0]
            q = self.queue(big)
            a.send("mailbox", ALICE, ALICE + "@example.test", *q)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if os.path.getsize(self.mbox(ALICE)) > len(good) + 4096:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker, signal.SIGKILL)
                    break
            r = a.reply()
            size = os.path.getsize(self.mbox(ALICE))
            if r["s"] == "tempfail" and len(good) < size < len(good) + len(big):
                self.assertEqual(r["d"], "4.3.0", r)
                self.assertIn("killed by signal 9", r["r"], r)
                caught = True
                break
            # Too late (already complete): start over from the good state.
            with open(self.mbox(ALICE), "r+b") as f:
                f.truncate(len(good))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.mbox(ALICE) + ".lock")
        self.assertTrue(caught, "never caught the worker mid-write")
        self.assertTrue(os.path.exists(self.mbox(ALICE) + ".lock"), "the killed delivery's lock is gone")
        self.assertNextDeliveryCutsBackTo(a, good)

    def test_crash_journal(self):
        """The dot-lock of a dead delivery says where the mailbox ended before it wrote."""
        a = self.agent()
        self.ok(self.deliver(a, ALICE, "Subject: first\n\nx\n"))
        good = self.read(ALICE)
        lock = self.mbox(ALICE) + ".lock"
        dead = subprocess.Popen(["true"])
        dead.wait()
        st = os.stat(self.mbox(ALICE))
        with open(self.mbox(ALICE), "ab") as f:
            f.write(b"From partial Thu Jan  1 00:00:00 1970\nSubject: half a mess")
        with open(lock, "w") as f:
            f.write("%d\nmta-local %d %d %d\n" % (dead.pid, st.st_dev, st.st_ino, len(good)))
        self.ok(self.deliver(a, ALICE, "Subject: second\n\nx\n"))
        data = self.read(ALICE)
        self.assertTrue(data.startswith(good))
        self.assertNotIn(b"half a mess", data)
        box = mailbox.mbox(self.mbox(ALICE), create=False)
        self.assertEqual([m["Subject"] for m in box], ["first", "second"])
        box.close()
        # A journal for another inode (the mailbox was replaced meanwhile) cuts nothing.
        size = os.path.getsize(self.mbox(ALICE))
        with open(lock, "w") as f:
            f.write("%d\nmta-local %d %d %d\n" % (dead.pid, st.st_dev, st.st_ino + 1, 10))
        self.ok(self.deliver(a, ALICE, "Subject: third\n\nx\n"))
        self.assertTrue(self.read(ALICE).startswith(data))
        self.assertGreater(os.path.getsize(self.mbox(ALICE)), size)
        # One of ours that died before it wrote anything: removed at once, nothing cut.
        with open(lock, "w") as f:
            f.write("%d\nmta-local\n" % dead.pid)
        size = os.path.getsize(self.mbox(ALICE))
        t = time.monotonic()
        self.ok(self.deliver(a, ALICE, "Subject: fourth\n\nx\n"))
        self.assertLess(time.monotonic() - t, 2)
        self.assertGreater(os.path.getsize(self.mbox(ALICE)), size)
        # A live holder (a process of alice's, as our deliveries to her mailbox are) keeps it.
        pw = self.users[ALICE]
        holder = subprocess.Popen(["sleep", "60"], user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        try:
            size = os.path.getsize(self.mbox(ALICE))
            with open(lock, "w") as f:
                f.write("%d\nmta-local %d %d %d\n" % (holder.pid, st.st_dev, st.st_ino, 0))
            r = self.deliver(a, ALICE, "Subject: fifth\n\nx\n")
            self.assertEqual((r["s"], r["d"]), ("tempfail", "4.2.0"), r)
            self.assertEqual(os.path.getsize(self.mbox(ALICE)), size)
            self.assertTrue(os.path.exists(lock))
            # ... unless the lock is older than stale_lock_time and nobody holds the fcntl lock:
            # no delivery of ours takes that long, and a live writer would hold the fcntl lock.
            old = time.time() - 3600
            os.utime(lock, (old, old))
            fd = os.open(self.mbox(ALICE), os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX)
            r = self.deliver(a, ALICE, "Subject: fifth\n\nx\n")
            self.assertEqual((r["s"], r["d"]), ("tempfail", "4.2.0"), r)
            os.close(fd)
            with open(lock, "w") as f:
                f.write("%d\nmta-local %d %d %d\n" % (holder.pid, st.st_dev, st.st_ino, size))
            os.utime(lock, (old, old))
            self.ok(self.deliver(a, ALICE, "Subject: sixth\n\nx\n"))
        finally:
            holder.kill()
            holder.wait()
        # A pid we may not signal is not a delivery of ours for alice's mailbox: the pid was reused.
        size = os.path.getsize(self.mbox(ALICE))
        with open(lock, "w") as f:
            f.write("%d\nmta-local %d %d %d\n" % (os.getpid(), st.st_dev, st.st_ino, size))
        self.ok(self.deliver(a, ALICE, "Subject: seventh\n\nx\n"))
        box = mailbox.mbox(self.mbox(ALICE), create=False)
        self.assertEqual([m["Subject"] for m in box], ["first", "second", "third", "fourth", "sixth", "seventh"])
        box.close()

    def test_fcntl_only(self):
        self.config("mailbox_delivery_lock = fcntl\n")
        a = self.agent()
        self.ok(self.deliver(a, ALICE, "Subject: x\n\nx\n"))
        # A dot-lock is neither made nor waited for.
        with open(self.mbox(ALICE) + ".lock", "w") as f:
            f.write("%d\n" % os.getpid())
        self.ok(self.deliver(a, ALICE, "Subject: y\n\nx\n"))
        self.assertEqual(len(mailbox.mbox(self.mbox(ALICE), create=False)), 2)

    def test_disk_full(self):
        mnt = self.inst.path("tmpfs")
        os.makedirs(mnt)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=2775", "tmpfs", mnt]).returncode:
            self.skipTest("cannot mount a tmpfs here")
        os.chown(mnt, 0, grp.getgrnam("mail").gr_gid)
        os.chmod(mnt, 0o2775)
        self.config("mail_spool_directory = %s\n" % mnt)
        a = self.agent()
        self.ok(self.deliver(a, ALICE, "Subject: small\n\nx\n"))
        before = self.read_path(os.path.join(mnt, ALICE))
        r = self.deliver(a, ALICE, "Subject: too big\n\n" + "z" * 400 * 1024 + "\n")
        self.assertEqual((r["s"], r["d"]), ("tempfail", "4.3.0"), r)
        self.assertEqual(self.read_path(os.path.join(mnt, ALICE)), before)
        self.assertFalse(os.path.exists(os.path.join(mnt, ALICE + ".lock")))
        # Completely full: not even the lock file fits.
        filler = os.path.join(mnt, "filler")
        ffd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):
            while True:
                os.write(ffd, b"f" * 4096)
        with contextlib.suppress(OSError):
            while True:
                os.write(ffd, b"f")
        os.close(ffd)
        r = self.deliver(a, ALICE, "Subject: no room\n\nx\n")
        self.assertEqual((r["s"], r["d"]), ("tempfail", "4.3.0"), r)
        self.assertEqual(self.read_path(os.path.join(mnt, ALICE)), before)
        os.unlink(filler)
        self.ok(self.deliver(a, ALICE, "Subject: small again\n\nx\n"))
        box = mailbox.mbox(os.path.join(mnt, ALICE), create=False)
        self.assertEqual([m["Subject"] for m in box], ["small", "small again"])
        box.close()

    @staticmethod
    def read_path(p):
        with open(p, "rb") as f:
            return f.read()

    # ---- mailbox_size_limit ----

    def test_size_limit_edges(self):
        content = "Subject: quota\n\nbody\n"
        size = len(mbox_entry("sender@example.test", ALICE + "@example.test", content)) + 20
        for limit, want in ((size + 1, "ok"), (size, "ok"), (size - 1, "permfail")):
            with self.subTest(limit=limit):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.mbox(ALICE))
                self.config("mailbox_size_limit = %d\n" % limit)
                r = self.deliver(self.agent(), ALICE, content)
                self.assertEqual(r["s"], want, r)
                if want == "ok":
                    self.assertEqual(os.path.getsize(self.mbox(ALICE)), size)
                else:
                    self.assertEqual(r["d"], "5.2.2", r)
                    self.assertIn("mailbox full", r["r"])
                    self.assertEqual(os.path.getsize(self.mbox(ALICE)), 0)
        # The limit counts what is already there.
        self.config("mailbox_size_limit = %d\n" % (2 * size))
        a = self.agent()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.mbox(ALICE))
        self.ok(self.deliver(a, ALICE, content))
        self.ok(self.deliver(a, ALICE, content))
        r = self.deliver(a, ALICE, content)
        self.assertEqual((r["s"], r["d"]), ("permfail", "5.2.2"), r)
        self.assertEqual(os.path.getsize(self.mbox(ALICE)), 2 * size)
        # ... and applies to file deliveries too.
        d = self.user_dir(ALICE)
        self.config("mailbox_size_limit = %d\n" % (size - 1))
        r = self.deliver(self.agent(), ALICE, content, kind="file", target=os.path.join(d, "f"))
        self.assertEqual((r["s"], r["d"]), ("permfail", "5.2.2"), r)

    # ---- unsafe mailboxes ----

    def test_unsafe_mailboxes(self):
        a = self.agent()
        path = self.mbox(ALICE)
        victim = self.inst.path("victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.chown(victim, self.users[ALICE].pw_uid, -1)

        def refused(why):
            r = self.deliver(a, ALICE, "Subject: x\n\nx\n")
            self.assertEqual((r["s"], r["d"]), ("tempfail", "4.2.0"), r)
            self.assertIn(why, r["r"])
            self.assertEqual(open(victim).read(), "precious\n")
            self.assertFalse(os.path.exists(path + ".lock"))

        os.symlink(victim, path)
        refused("symbolic link")
        os.unlink(path)
        os.symlink(self.inst.path("nowhere"), path)   # dangling: must not be created through
        refused("symbolic link")
        self.assertFalse(os.path.exists(self.inst.path("nowhere")))
        os.unlink(path)
        os.link(victim, path)
        refused("hard link")
        os.unlink(path)
        with open(path, "w") as f:
            f.write("")
        os.chown(path, self.users[BOB].pw_uid, -1)
        refused("wrong owner")
        os.unlink(path)
        os.mkfifo(path)
        os.chown(path, self.users[ALICE].pw_uid, -1)
        t = time.monotonic()
        refused("not a regular file")
        self.assertLess(time.monotonic() - t, 5)
        os.unlink(path)
        os.mkdir(path)
        refused("directory")
        os.rmdir(path)
        self.ok(self.deliver(a, ALICE, "Subject: fine\n\nx\n"))

    def test_bad_user_names(self):
        a = self.agent()
        for name in ("../etc/passwd", "/etc/passwd", "a/b", ".hidden", "", "-x", "a\nb"):
            with self.subTest(name=name):
                r = self.deliver(a, name, "Subject: x\n\nx\n", recipient="x@example.test")
                self.assertEqual((r["s"], r["d"]), ("permfail", "5.1.3"), r)
        r = self.deliver(a, "mtatest-nosuchuser", "Subject: x\n\nx\n")
        self.assertEqual((r["s"], r["d"]), ("permfail", "5.1.1"), r)
        self.assertEqual(sorted(os.listdir(self.inst.mail)), [])

    def test_malformed_requests(self):
        a = self.agent()
        q, off, size = self.queue("Subject: x\n\nx\n")
        for raw in (b"K7:mailbox", b"K7:mailbox\nK7:mailbox\n", b"Z1:x\n", b"K4:junk\n", b"U5:alice\n"):
            with self.subTest(raw=raw):
                a.send(None, None, None, q, 0, 0, raw=raw)
                r = a.reply()
                self.assertEqual((r["s"], r["d"]), ("tempfail", "4.3.5"), r)
        a.send("mailbox", ALICE, ALICE + "@x", q, off, size, fd=False)
        r = a.reply()
        self.assertEqual((r["s"], r["d"]), ("tempfail", "4.3.5"), r)
        # Content beyond the end of the queue file.
        r = a.deliver("mailbox", ALICE, ALICE + "@x", q, off, size + 100)
        self.assertEqual(r["s"], "tempfail", r)
        self.assertFalse(os.path.exists(self.mbox(ALICE)))
        # Still serving after all that.
        self.ok(a.deliver("mailbox", ALICE, ALICE + "@x", q, off, size))
        self.assertEqual(a.close(), 0)

    # ---- files ----

    def user_dir(self, user):
        d = self.inst.path("home-" + user)
        os.makedirs(d, exist_ok=True)
        pw = self.users[user] if user in self.users else pwd.getpwnam(user)
        os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(d, 0o755)
        return d

    def test_file_target(self):
        a = self.agent()
        d = self.user_dir(ALICE)
        target = os.path.join(d, "archive")
        content = "Subject: to a file\n\nFrom me\n"
        self.ok(self.deliver(a, ALICE, content, kind="file", target=target))
        self.ok(self.deliver(a, ALICE, content, kind="file", target=target))
        st = os.stat(target)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (self.users[ALICE].pw_uid, 0o600))
        e = mbox_entry("sender@example.test", ALICE + "@example.test", content)
        self.assert_mbox(target, [e, e])
        self.ok(self.deliver(a, ALICE, content, kind="file", target="/dev/null"))
        # Written as alice: a root-only directory is closed to her.
        r = self.deliver(a, ALICE, content, kind="file", target=self.inst.path("etc", "owned-by-root"))
        self.assertEqual(r["s"], "tempfail", r)
        self.assertFalse(os.path.exists(self.inst.path("etc", "owned-by-root")))
        # Bob's file in alice's directory: wrong owner.
        bobs = os.path.join(d, "bobs")
        open(bobs, "w").close()
        os.chown(bobs, self.users[BOB].pw_uid, -1)
        r = self.deliver(a, ALICE, content, kind="file", target=bobs)
        self.assertEqual(r["s"], "tempfail", r)
        self.assertEqual(os.path.getsize(bobs), 0)
        # A symlink planted as target.
        link = os.path.join(d, "link")
        os.symlink(target, link)
        r = self.deliver(a, ALICE, content, kind="file", target=link)
        self.assertEqual(r["s"], "tempfail", r)
        # root's file deliveries run as default_privs.
        r = self.deliver(a, "root", content, kind="file", target=os.path.join(d, "as-root"))
        self.assertEqual(r["s"], "tempfail", r)     # nobody cannot write in alice's 0755 directory

    # ---- commands ----

    def test_command_environment_no_injection(self):
        a = self.agent()
        d = self.user_dir(ALICE)
        out = os.path.join(d, "out")
        pwned = self.inst.path("PWNED")
        evil = "x`touch %s`$(touch %s);touch %s;'\"|&>" % (pwned, pwned, pwned)
        cmd = ('printf "%%s\\n" "$SENDER" "$RECIPIENT" "$LOCAL" "$DOMAIN" "$EXTENSION" "$ORIGINAL_RECIPIENT" '
               '"$USER" "$LOGNAME" "$HOME" "$SHELL" "$PATH" "$(id -u)" "$(id -G)" "$(pwd)" > %s; cat > %s.msg' % (out, out))
        content = "Subject: cmd\n\nFrom x\nbody\n"
        r = self.deliver(a, ALICE, content, kind="command", target=cmd, sender=evil + "@evil.test",
                         recipient=evil + "+ext@example.test", extension="ext;" + evil,
                         original="Orig$(touch %s)@example.test" % pwned)
        self.ok(r)
        self.assertFalse(os.path.exists(pwned), "shell injection")
        pw = self.users[ALICE]
        lines = open(out).read().split("\n")
        self.assertEqual(lines[:14], [
            evil + "@evil.test", evil + "+ext@example.test", evil + "+ext", "example.test", "ext;" + evil,
            "Orig$(touch %s)@example.test" % pwned, ALICE, ALICE, pw.pw_dir, pw.pw_shell or "/bin/sh",
            "/usr/bin:/bin", str(pw.pw_uid), str(pw.pw_gid), pw.pw_dir if os.path.isdir(pw.pw_dir) else "/"])
        msg = open(out + ".msg", "rb").read()
        self.assertEqual(normalise(msg).split(b"\n", 1)[1],
                         mbox_entry("", evil + "@evil.test", content, command=True).split(b"\n", 1)[1]
                         .replace(b"<>", b"<" + evil.encode() + b"@evil.test>")
                         .replace(b"Delivered-To: " + evil.encode() + b"@evil.test",
                                  b"Delivered-To: " + evil.encode() + b"+ext@example.test"))

    def test_command_exit_codes(self):
        self.config("command_time_limit = 2s\n")
        a = self.agent()
        cases = [
            ("exit 0", "ok", "2.0.0"),
            ("echo busy; exit 75", "tempfail", "4.3.0"),
            ("echo 'no such user here'; echo second; exit 67", "permfail", "5.1.1"),
            ("exit 1", "permfail", "5.3.0"),
            ("exit 71", "tempfail", "4.3.0"),
            ("exit 78", "permfail", "5.3.5"),
            ("kill -9 $$", "tempfail", "4.3.0"),
            ("exec 0<&-; echo ignoring input; exit 0", "ok", "2.0.0"),
            ("i=0; while [ $i -lt 20000 ]; do echo lots of output before reading; i=$((i+1)); done; cat >/dev/null",
             "ok", "2.0.0"),
        ]
        for cmd, s, d in cases:
            with self.subTest(cmd=cmd):
                r = self.deliver(a, ALICE, "Subject: x\n\n" + "x" * 200000 + "\n", kind="command", target=cmd)
                self.assertEqual((r["s"], r["d"]), (s, d), r)
        r = self.deliver(a, ALICE, "Subject: x\n\nx\n", kind="command",
                         target="echo 'no such user here'; echo second; exit 67")
        self.assertIn("no such user here", r["r"])
        self.assertNotIn("second", r["r"])
        t = time.monotonic()
        r = self.deliver(a, ALICE, "Subject: x\n\nx\n", kind="command", target="sleep 30 & sleep 30")
        self.assertEqual((r["s"], r["d"]), ("tempfail", "4.3.0"), r)
        self.assertIn("time limit", r["r"])
        self.assertLess(time.monotonic() - t, 10)

    def test_command_never_as_root(self):
        a = self.agent()
        d = tempfile.mkdtemp(dir=self.inst.root)
        os.chmod(d, 0o1777)
        out = os.path.join(d, "who")
        self.ok(self.deliver(a, "root", "Subject: x\n\nx\n", kind="command", target="id -u > %s" % out))
        self.assertEqual(int(open(out).read()), pwd.getpwnam("nobody").pw_uid)

    # ---- ~/.forward ----

    def test_forward(self):
        pw = self.users[ALICE]
        home = pw.pw_dir
        os.makedirs(home, exist_ok=True)
        fwd = os.path.join(home, ".forward")
        a = self.agent()
        try:
            text = "bob\n\\" + ALICE + "\n|\"/usr/bin/true\"\n"
            with open(fwd, "w") as f:
                f.write(text)
            os.chown(fwd, pw.pw_uid, pw.pw_gid)
            os.chmod(fwd, 0o644)
            r = self.deliver(a, ALICE, "Subject: x\n\nx\n")
            self.assertEqual((r["s"], r.get("f")), ("forward", text), r)
            self.assertFalse(os.path.exists(self.mbox(ALICE)))
            # "\alice" comes back flagged noforward: into the mailbox.
            self.ok(self.deliver(a, ALICE, "Subject: x\n\nx\n", flags="noforward"))
            self.assertTrue(os.path.exists(self.mbox(ALICE)))
            # Writable by others: ignored, mail goes to the mailbox.
            os.chmod(fwd, 0o664)
            self.ok(self.deliver(a, ALICE, "Subject: x\n\nx\n"))
            os.chmod(fwd, 0o644)
            # Owned by someone else: ignored.
            os.chown(fwd, self.users[BOB].pw_uid, -1)
            self.ok(self.deliver(a, ALICE, "Subject: x\n\nx\n"))
            os.chown(fwd, pw.pw_uid, -1)
            # Only comments and blanks: as if absent.
            with open(fwd, "w") as f:
                f.write("# nothing\n\n   \n")
            self.ok(self.deliver(a, ALICE, "Subject: x\n\nx\n"))
            # Read as alice: unreadable to her means no forwarding, even though root could read it.
            with open(fwd, "w") as f:
                f.write("bob\n")
            os.chown(fwd, 0, 0)
            os.chmod(fwd, 0o600)
            self.ok(self.deliver(a, ALICE, "Subject: x\n\nx\n"))
            box = mailbox.mbox(self.mbox(ALICE), create=False)
            self.assertEqual(len(box), 5)
            box.close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(fwd)

    # ---- pipelining and group commit ----

    def wait_taken(self, a, timeout=30):
        """Until mta-local has read every request sent to it, and a moment for it to pass them on."""
        deadline = time.monotonic() + timeout
        while struct.unpack("i", fcntl.ioctl(a.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0] > 0:
            self.assertLess(time.monotonic(), deadline, "mta-local does not read its requests")
            time.sleep(0.01)
        time.sleep(0.3)

    def send_batch(self, a, items):
        """Sends (user, content, kwargs) requests back to back, as the pipelining runner does: the
        queue files are written first, so that nothing delays one request after another."""
        reqs = []
        for user, content, kw in items:
            kw = dict(kw)
            kind = kw.pop("kind", "mailbox")
            reqs.append((kind, user, kw.pop("recipient", user + "@example.test"), self.queue(content), kw))
        for kind, user, recipient, q, kw in reqs:
            a.send(kind, user, recipient, *q, **kw)

    def stopped_batch(self, a, worker, items):
        """The whole batch reaches the worker while it is stopped, so that it finds all of it
        waiting: mta-local is stopped too until every request is in its socket, so it sees them all
        at once and passes them on without waiting for a reply."""
        os.kill(worker, signal.SIGSTOP)
        try:
            os.kill(a.proc.pid, signal.SIGSTOP)
            try:
                self.send_batch(a, items)
            finally:
                os.kill(a.proc.pid, signal.SIGCONT)
            self.wait_taken(a)
        finally:
            os.kill(worker, signal.SIGCONT)

    def start_strace(self, pid, out):
        p = subprocess.Popen(["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", out,
                              "-p", str(pid)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with open("/proc/%d/status" % pid) as f:
                tracer = [l for l in f if l.startswith("TracerPid:")][0].split()[1]
            if tracer != "0":
                return p
            self.assertLess(time.monotonic(), deadline, "strace did not attach")
            time.sleep(0.01)

    def count_fsyncs(self, out, path):
        with open(out) as f:
            return len(re.findall(r"f(?:data)?sync\(\d+<%s>\) = 0" % re.escape(path), f.read()))

    @unittest.skipUnless(shutil.which("strace"), "needs strace")
    def test_pipeline_group_commit(self):
        """8 requests for one mailbox sent back to back (as many as mta-local keeps outstanding):
        8 replies in order, 8 intact messages in order, and one fsync of the mailbox for all of
        them; then 20 more as the runner sends them, with far fewer than 20 fsyncs."""
        first = "Subject: m0\n\nx\n"
        contents = ["Subject: m%d\n\nbody %d\nFrom the middle\n%s" % (i, i, "z" * (i * 997))
                    for i in range(1, 9)]
        more = ["Subject: n%d\n\nx\n" % i for i in range(20)]
        trace = self.inst.path("strace.out")
        a = self.agent(traced=True)
        tracer = self.start_strace(a.proc.pid, trace)
        try:
            self.ok(self.deliver(a, ALICE, first))
            # The worker finds all 8 waiting: one group.
            self.stopped_batch(a, self.children(a)[0], [(ALICE, c, {}) for c in contents])
            for i in range(len(contents)):
                r = a.reply()
                self.ok(r)
                self.assertIn("mailbox " + self.mbox(ALICE), r["r"])
            self.assertFalse(os.path.exists(self.mbox(ALICE) + ".lock"))
            self.assertEqual(a.close(), 0)
        finally:
            tracer.wait(30)
        # One for the first message, one for the group.
        self.assertEqual(self.count_fsyncs(trace, self.mbox(ALICE)), 2, open(trace).read())
        # Unstopped, as the runner sends: the worker takes what is already waiting.
        a = self.agent(traced=True)
        tracer = self.start_strace(a.proc.pid, trace)
        try:
            self.send_batch(a, [(ALICE, c, {}) for c in more])
            for i in range(20):
                self.ok(a.reply())
            self.assertEqual(a.close(), 0)
        finally:
            tracer.wait(30)
        n = self.count_fsyncs(trace, self.mbox(ALICE))
        print("%d fsyncs of the mailbox for 20 pipelined deliveries" % n, file=sys.stderr)
        self.assertGreaterEqual(n, 1)
        self.assertLess(n, 20, "no group commit at all")
        self.assert_mbox(self.mbox(ALICE), [mbox_entry("sender@example.test", ALICE + "@example.test", c)
                                            for c in [first] + contents + more])
        box = mailbox.mbox(self.mbox(ALICE), create=False)
        self.assertEqual([m["Subject"] for m in box],
                         ["m%d" % i for i in range(len(contents) + 1)] + ["n%d" % i for i in range(20)])
        box.close()

    def test_pipeline_size_limit_in_group(self):
        """mailbox_size_limit per message within a group, against the size the group has reached: a
        message that does not fit permfails 5.2.2 in its place, the others are delivered."""
        small = "Subject: s%d\n\nx\n"
        e = len(mbox_entry("sender@example.test", ALICE + "@example.test", small % 1)) + 20
        self.config("mailbox_size_limit = %d\n" % (4 * e + e // 2))
        a = self.agent()
        self.ok(self.deliver(a, ALICE, small % 0))
        big = "Subject: big\n\n" + "b" * (10 * e) + "\n"
        batch = [small % 1, small % 2, big, small % 3, small % 4, small % 5]
        self.stopped_batch(a, self.children(a)[0], [(ALICE, c, {}) for c in batch])
        got = [a.reply() for _ in batch]
        want = ["ok", "ok", "permfail", "ok", "permfail", "permfail"]
        self.assertEqual([r["s"] for r in got], want, got)
        for r, w in zip(got, want):
            if w == "permfail":
                self.assertEqual(r["d"], "5.2.2", r)
                self.assertIn("mailbox full", r["r"])
        self.assertEqual(os.path.getsize(self.mbox(ALICE)), 4 * e)
        box = mailbox.mbox(self.mbox(ALICE), create=False)
        self.assertEqual([m["Subject"] for m in box], ["s0", "s1", "s2", "s3"])
        box.close()
        self.assertEqual(a.close(), 0)

    def test_pipeline_alternating_users(self):
        """Requests for two users' mailboxes alternating, back to back: each reply in its place."""
        a = self.agent()
        items = [((ALICE, BOB)[i % 2], "Subject: x%d\n\nx\n" % i, {}) for i in range(16)]
        self.send_batch(a, items)
        for user, content, _ in items:
            r = a.reply()
            self.ok(r)
            self.assertTrue(r["r"].endswith("/" + user), r)
        for user, first in ((ALICE, 0), (BOB, 1)):
            box = mailbox.mbox(self.mbox(user), create=False)
            self.assertEqual([m["Subject"] for m in box], ["x%d" % i for i in range(first, 16, 2)])
            box.close()
        self.assertEqual(a.close(), 0)

    def test_pipeline_mixed_batch(self):
        """A batch with malformed requests, failed checks, a command, a file and a ~/.forward among
        mailbox deliveries: every reply in its request's place, the mailbox messages in order."""
        pw = self.users[ALICE]
        os.makedirs(pw.pw_dir, exist_ok=True)
        fwd = os.path.join(pw.pw_dir, ".forward")
        d = self.user_dir(ALICE)
        a = self.agent()
        try:
            with open(fwd, "w") as f:
                f.write("bob\n")
            os.chown(fwd, pw.pw_uid, pw.pw_gid)
            os.chmod(fwd, 0o644)
            nf = {"flags": "noforward"}
            self.ok(self.deliver(a, ALICE, "Subject: a0\n\nx\n", **nf))
            # A forward in the middle of a group is answered in its place.
            self.stopped_batch(a, self.children(a)[0], [(ALICE, "Subject: a1\n\nx\n", nf),
                                                        (ALICE, "Subject: fwd\n\nx\n", {}),
                                                        (ALICE, "Subject: a2\n\nx\n", nf)])
            got = [a.reply() for _ in range(3)]
            self.assertEqual([r["s"] for r in got], ["ok", "forward", "ok"], got)
            self.assertEqual(got[1]["f"], "bob\n")
            items = [
                (ALICE, "Subject: a3\n\nx\n", nf),
                (ALICE, "", {"raw": b"garbage"}),
                (ALICE, "Subject: fwd\n\nx\n", {}),
                (ALICE, "Subject: a4\n\nx\n", nf),
                (ALICE, "Subject: nofd\n\nx\n", dict(nf, fd=False)),
                (ALICE, "Subject: a5\n\nx\n", nf),
                ("nosuchuser-mtatest", "Subject: u\n\nx\n", {}),
                (ALICE, "Subject: a6\n\nx\n", nf),
                (ALICE, "Subject: c\n\nx\n", {"kind": "command", "target": "cat >/dev/null"}),
                (ALICE, "Subject: a7\n\nx\n", nf),
                (ALICE, "Subject: f\n\nx\n", {"kind": "file", "target": os.path.join(d, "archive")}),
                (ALICE, "Subject: a8\n\nx\n", nf),
            ]
            self.send_batch(a, items)
            got = [a.reply() for _ in items]
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(fwd)
        want = [("ok", "2.0.0"), ("tempfail", "4.3.5"), ("forward", "2.0.0"), ("ok", "2.0.0"),
                ("tempfail", "4.3.5"), ("ok", "2.0.0"), ("permfail", "5.1.1"), ("ok", "2.0.0"), ("ok", "2.0.0"),
                ("ok", "2.0.0"), ("ok", "2.0.0"), ("ok", "2.0.0")]
        self.assertEqual([(r["s"], r["d"]) for r in got], want, got)
        self.assertEqual(got[1]["r"], "malformed request")
        self.assertEqual(got[2]["f"], "bob\n")
        self.assertEqual(got[4]["r"], "request without a queue file")
        self.assertIn("command", got[8]["r"])
        self.assertIn("file", got[10]["r"])
        box = mailbox.mbox(self.mbox(ALICE), create=False)
        self.assertEqual([m["Subject"] for m in box], ["a%d" % i for i in range(9)])
        box.close()
        self.assertEqual(a.close(), 0)

    def test_pipeline_worker_killed_mid_group(self):
        """The worker killed in the middle of a group: every outstanding request gets the tempfail of
        a dead worker, none of the group stays after the next delivery, and everything answered
        "ok" before is still there."""
        self.config("mailbox_size_limit = 0\n")
        a = self.agent()
        before = ["Subject: b%d\n\nx\n" % i for i in range(3)]
        self.send_batch(a, [(ALICE, c, {}) for c in before])
        for _ in before:
            self.ok(a.reply())
        good = self.read(ALICE)
        small = ["Subject: s%d\n\nx\n" % i for i in range(3)]
        big = "Subject: huge\n\n" + ("y" * 1000 + "\n") * 10000
        big_len = len(mbox_entry("sender@example.test", ALICE + "@example.test", big)) + 20
        small_len = sum(len(mbox_entry("sender@example.test", ALICE + "@example.test", c)) + 20
                        for c in small)
        batch = [(ALICE, c, {}) for c in small + [big] * 4]
        caught = False
        for attempt in range(8):
            worker = self.children(a)[0]
            self.stopped_batch(a, worker, batch)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if os.path.getsize(self.mbox(ALICE)) > len(good) + small_len + big_len + 4096:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker, signal.SIGKILL)
                    break
            got = [a.reply() for _ in batch]
            if all(r["s"] == "tempfail" for r in got):
                for r in got:
                    self.assertEqual(r["d"], "4.3.0", r)
                    self.assertIn("killed by signal 9", r["r"], r)
                self.assertGreater(os.path.getsize(self.mbox(ALICE)), len(good) + small_len)
                caught = True
                break
            # Too late: the group was complete and answered; start over from the good state.
            self.assertEqual([r["s"] for r in got], ["ok"] * len(batch), got)
            with open(self.mbox(ALICE), "r+b") as f:
                f.truncate(len(good))
        self.assertTrue(caught, "never caught the worker in the middle of a group")
        self.assertTrue(os.path.exists(self.mbox(ALICE) + ".lock"), "the killed group's lock is gone")
        # The next delivery cuts back the whole group, whose messages were never answered "ok".
        self.assertNextDeliveryCutsBackTo(a, good)
        self.assertEqual(a.close(), 0)

    # ---- home_mailbox ----

    def test_home_mailbox(self):
        pw = self.users[ALICE]
        os.makedirs(pw.pw_dir, exist_ok=True)
        mbox_path = os.path.join(pw.pw_dir, "Mailbox")
        maildir = os.path.join(pw.pw_dir, "Mail", "inbox")
        content = "Subject: home\n\nFrom here\nno newline"
        try:
            self.config("home_mailbox = Mailbox\n")
            a = self.agent()
            self.ok(self.deliver(a, ALICE, content))
            self.ok(self.deliver(a, ALICE, content))
            st = os.stat(mbox_path)
            self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (pw.pw_uid, 0o600))
            e = mbox_entry("sender@example.test", ALICE + "@example.test", content)
            self.assert_mbox(mbox_path, [e, e])
            self.assertFalse(os.path.exists(self.mbox(ALICE)))
            # Same safety as in the spool.
            os.unlink(mbox_path)
            os.symlink("/etc/passwd", mbox_path)
            r = self.deliver(a, ALICE, content)
            self.assertEqual((r["s"], r["d"]), ("tempfail", "4.2.0"), r)
            os.unlink(mbox_path)

            self.config("home_mailbox = Mail/inbox/\n")
            a = self.agent()
            self.ok(self.deliver(a, ALICE, content))
            self.ok(self.deliver(a, ALICE, content, sender=""))
            for sub in ("tmp", "new", "cur"):
                st = os.stat(os.path.join(maildir, sub))
                self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (pw.pw_uid, 0o700))
            self.assertEqual(os.listdir(os.path.join(maildir, "tmp")), [])
            files = sorted(os.listdir(os.path.join(maildir, "new")))
            self.assertEqual(len(files), 2)
            bodies = sorted(open(os.path.join(maildir, "new", f), "rb").read() for f in files)
            want = sorted([
                b"Return-Path: <sender@example.test>\nDelivered-To: %s@example.test\n" % ALICE.encode()
                + content.encode() + b"\n",
                b"Return-Path: <>\nDelivered-To: %s@example.test\n" % ALICE.encode() + content.encode() + b"\n"])
            self.assertEqual(bodies, want)
            for f in files:
                self.assertTrue(f.endswith(",S=%d" % len(open(os.path.join(maildir, "new", f), "rb").read())), f)
            box = mailbox.Maildir(maildir, create=False)
            self.assertEqual(sorted(m["Subject"] for m in box), ["home", "home"])
            # mailbox_size_limit limits each message file.
            self.config("home_mailbox = Mail/inbox/\nmailbox_size_limit = 50\n")
            r = self.deliver(self.agent(), ALICE, content)
            self.assertEqual((r["s"], r["d"]), ("permfail", "5.2.2"), r)
            self.assertEqual(len(os.listdir(os.path.join(maildir, "new"))), 2)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(mbox_path)
            shutil.rmtree(os.path.join(pw.pw_dir, "Mail"), ignore_errors=True)

    def test_mailbox_command(self):
        d = tempfile.mkdtemp(dir=self.inst.root)
        os.chmod(d, 0o1777)
        pwned = self.inst.path("PWNED")
        # Postfix's lower-case names become the environment variables that carry them.
        self.config('mailbox_command = cat > %s/"$user".msg; printf "%%s|%%s|%%s\\n" "$extension" '
                    '"${recipient}" "$(id -u):$(id -G)" > %s/"$USER".env\n' % (d, d))
        a = self.agent()
        evil = "x$(touch %s)" % pwned
        self.ok(self.deliver(a, ALICE, "Subject: cmd\n\nFrom x\n", recipient=evil + "@example.test",
                             extension=evil))
        self.assertFalse(os.path.exists(pwned))
        self.assertFalse(os.path.exists(self.mbox(ALICE)))
        pw = self.users[ALICE]
        self.assertEqual(open(os.path.join(d, ALICE + ".env")).read(),
                         "%s|%s@example.test|%d:%d\n" % (evil, evil, pw.pw_uid, pw.pw_gid))
        msg = open(os.path.join(d, ALICE + ".msg"), "rb").read()
        self.assertTrue(normalise(msg).startswith(b"From sender@example.test DATE\nReturn-Path:"), msg)
        self.assertTrue(msg.endswith(b"\nFrom x\n"), msg)
        # Never as root.
        self.ok(self.deliver(a, "root", "Subject: cmd\n\nx\n"))
        uid, groups = open(os.path.join(d, "nobody.env")).read().strip().split("|")[2].split(":")
        self.assertEqual(int(uid), pwd.getpwnam("nobody").pw_uid)

    # ---- privileges ----

    def test_unprivileged(self):
        d = self.user_dir(ALICE)
        a = self.agent(run_as=ALICE)
        self.ok(self.deliver(a, ALICE, "Subject: x\n\nx\n", kind="file", target=os.path.join(d, "mine")))
        r = self.deliver(a, BOB, "Subject: x\n\nx\n", kind="file", target=os.path.join(d, "bobs"))
        self.assertEqual((r["s"], r["d"]), ("tempfail", "4.3.0"), r)
        self.assertIn("cannot deliver as other user while not root", r["r"])
        r = self.deliver(a, BOB, "Subject: x\n\nx\n")
        self.assertEqual(r["s"], "tempfail", r)
        self.assertFalse(os.path.exists(self.mbox(BOB)))

    def test_mailbox_written_as_user(self):
        # The spool directory is root:mail 2775: alice may create her mailbox only through group
        # mail, and the mailbox must come out hers.
        a = self.agent()
        self.ok(self.deliver(a, BOB, "Subject: x\n\nx\n"))
        st = os.stat(self.mbox(BOB))
        self.assertEqual(st.st_uid, self.users[BOB].pw_uid)
        # A read-only spool: a delivery as the user cannot write, and says so.
        os.chmod(self.inst.mail, 0o755)
        r = self.deliver(a, CAROL, "Subject: x\n\nx\n")
        self.assertEqual(r["s"], "tempfail", r)
        self.assertFalse(os.path.exists(self.mbox(CAROL)))

    def test_root_mailbox(self):
        # Root's own mailbox is written as root (and stays root's, 0600); see mta-local(8).
        a = self.agent()
        self.ok(self.deliver(a, "root", "Subject: for root\n\nx\n", flags="noforward"))
        st = os.stat(self.mbox("root"))
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o600))
        # ... through the same careful open: a root mailbox owned by alice is refused.
        os.chown(self.mbox("root"), self.users[ALICE].pw_uid, -1)
        r = self.deliver(a, "root", "Subject: again\n\nx\n", flags="noforward")
        self.assertEqual((r["s"], r["d"]), ("tempfail", "4.2.0"), r)

    def test_peer_must_be_trusted(self):
        # A socket made by bob: mta-local must refuse to serve it (SO_PEERCRED).
        pw = self.users[BOB]
        ctl_ours, ctl_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = ("import socket,sys\n"
                "c=socket.socket(fileno=int(sys.argv[1]))\n"
                "x,y=socket.socketpair(socket.AF_UNIX,socket.SOCK_SEQPACKET)\n"
                "socket.send_fds(c,[b'x'],[x.fileno(),y.fileno()])\n")
        subprocess.run(["/usr/bin/python3", "-c", code, str(ctl_theirs.fileno())], pass_fds=(ctl_theirs.fileno(),),
                       user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], check=True, timeout=30)
        _, (x, y), _, _ = socket.recv_fds(ctl_ours, 16, 2)
        ours = socket.socket(fileno=x)

        def preexec():
            os.dup2(y, 3)
            os.set_inheritable(3, True)

        env = dict(os.environ, LISTEN_FDS="1")
        p = subprocess.run(["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', mtatest.program("mta-local"),
                            "-c", self.inst.etc], env=env, preexec_fn=preexec, close_fds=False,
                           capture_output=True, timeout=30)
        os.close(y)
        self.assertEqual(p.returncode, 77, p)
        self.assertIn(b"neither root nor mail_owner", p.stderr)
        ours.close()
        ctl_ours.close()
        ctl_theirs.close()

    def test_no_socket(self):
        p = subprocess.run([mtatest.program("mta-local"), "-c", self.inst.etc], capture_output=True, timeout=30,
                           env={k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")})
        self.assertEqual(p.returncode, 2, p)
        # A stream socket is not what we serve on.
        s1, s2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

        def preexec():
            os.dup2(s2.fileno(), 3)
            os.set_inheritable(3, True)

        p = subprocess.run(["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', mtatest.program("mta-local"),
                            "-c", self.inst.etc], env=dict(os.environ, LISTEN_FDS="1"), preexec_fn=preexec,
                           close_fds=False, capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2, p)
        s1.close()
        s2.close()


if __name__ == "__main__":
    mtatest.main()
