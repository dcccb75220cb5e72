# SPDX-License-Identifier: MIT
"""mta-smtpd: process life cycle (idle exit, SIGTERM, SIGHUP), privileges, the local submission
socket, refused sockets, and a full disk."""

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import mtatest
from smtpdtest import Raw, body_of, start_smtpd

ALICE = "mtatest-alice@example.test"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def need_smtpd(tc):
    if not mtatest.have_program("mta-smtpd") or not shutil.which("systemd-socket-activate"):
        tc.skipTest("mta-smtpd or systemd-socket-activate missing")
    if mtatest.is_root():
        mtatest.ensure_test_users()


class Lifecycle(unittest.TestCase):
    def setUp(self):
        need_smtpd(self)
        self.inst = mtatest.Instance()
        self.addCleanup(self.inst.close)

    def log(self):
        with open(self.inst.path("smtpd.log"), errors="replace") as f:
            return f.read()

    def test_idle_exit(self):
        p = self.inst.start_smtpd(extra_args=("--idle-timeout=1",))
        with self.inst.smtp() as s:
            s.noop()
        self.assertEqual(p.wait(10), 0)

    def test_sigterm_finishes_sessions_in_flight(self):
        p = self.inst.start_smtpd(extra_args=("--idle-timeout=0", "--shutdown-grace-ms=0"))
        idle = Raw(self.inst.port)
        idle.expect("220 ")
        busy = Raw(self.inst.port)
        busy.expect("220 ")
        busy.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\nSubject: x\r\n\r\n" % ALICE)
        busy.expect("250 ", "250 ", "250 ", "354 ")
        time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        idle.expect("421 4.3.2 mx.example.test Service shutting down")
        self.assertTrue(idle.closed())
        busy.send("still here\r\n.\r\n")
        busy.expect("250 2.0.0 Ok: queued as ", "421 4.3.2 ")
        self.assertTrue(busy.closed())
        self.assertEqual(p.wait(10), 0)
        msgs = list(mtatest.queued_messages(self.inst.spool).values())
        self.assertEqual(len(msgs), 1)
        self.assertEqual(body_of(msgs[0]), b"Subject: x\n\nstill here\n")

    def test_sigterm_grace_serves_a_greeted_client(self):
        # A restart under load: a client greeted just before SIGTERM still gets its mail through.
        p = self.inst.start_smtpd(extra_args=("--idle-timeout=0", "--shutdown-grace-ms=1500"))
        late = Raw(self.inst.port)
        late.expect("220 ")
        p.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        late.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % ALICE)
        late.expect("250 ", "250 ", "250 ", "354 ")
        late.send("Subject: late\r\n\r\nstill served\r\n.\r\n")
        late.expect("250 2.0.0 Ok: queued as ")
        late.expect("421 4.3.2 ")
        self.assertEqual(p.wait(10), 0)
        msgs = list(mtatest.queued_messages(self.inst.spool).values())
        self.assertEqual(len(msgs), 1)

    def test_sigterm_bound(self):
        p = self.inst.start_smtpd(extra_args=("--idle-timeout=0", "--shutdown-timeout=1"))
        busy = Raw(self.inst.port)
        busy.expect("220 ")
        busy.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\nhalf" % ALICE)
        busy.expect("250 ", "250 ", "250 ", "354 ")
        time.sleep(0.2)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(mtatest.queued_messages(self.inst.spool), {})
        self.assertEqual(os.listdir(os.path.join(self.inst.spool, "incoming")), [])

    def test_syncfs_failure_refuses_the_batch_and_loses_nothing(self):
        # A write-back error reported by the batch's syncfs() cannot be pinned on one file: the
        # batch is refused with 451 and later files are synced one by one. Every 250 is queued.
        # (Here every syncfs() fails from the first on, so mail only flows if the committer has
        # stopped using it.)
        shim = os.path.join(os.environ.get("MTA_BUILD_DIR", ""), "tests", "services", "smtpd",
                            "fail-syncfs.so")
        if not os.path.exists(shim):
            self.skipTest("fail-syncfs.so not built")
        asan = os.environ.get("ASAN_OPTIONS", "")
        start_smtpd(self.inst, extra_args=("--idle-timeout=0", "--commit=syncfs"),
                    sa_args=("-E", "LD_PRELOAD=" + shim, "-E", "MTA_TEST_SYNCFS_FAIL_FROM=1",
                             "-E", "ASAN_OPTIONS=verify_asan_link_order=0" + (":" + asan if asan else "")))
        first = Raw(self.inst.port)
        first.expect("220 ")
        first.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % ALICE)
        first.expect("250 ", "250 ", "250 ", "354 ")
        first.send("Subject: lost to EIO\r\n\r\nx\r\n.\r\n")
        first.expect("451 4.3.0 Error: queue file write error")
        self.assertEqual(mtatest.queued_messages(self.inst.spool), {})
        # The refused file goes right after the reply is on its way.
        incoming = os.path.join(self.inst.spool, "incoming")
        deadline = time.monotonic() + 3
        while os.listdir(incoming) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(os.listdir(incoming), [])
        self.assertIn("queue file", self.log())

        # The same session and new ones go on; sessions at once form batches again.
        first.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\nSubject: again\r\n\r\ny\r\n.\r\n" % ALICE)
        first.expect("250 ", "250 ", "354 ", "250 2.0.0 Ok: queued as ")
        clients = [Raw(self.inst.port) for _ in range(8)]
        for i, c in enumerate(clients):
            c.expect("220 ")
            c.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                   "Subject: p%d\r\n\r\nz\r\n.\r\n" % (ALICE, i))
        for c in clients:
            c.expect("250 ", "250 ", "250 ", "354 ", "250 2.0.0 Ok: queued as ")
        subjects = sorted(re.search(rb"Subject: (\S+)", m["content"]).group(1).decode()
                          for m in mtatest.queued_messages(self.inst.spool).values())
        self.assertEqual(subjects, sorted(["again"] + ["p%d" % i for i in range(8)]))

    def test_sighup_reloads_for_new_sessions(self):
        p = self.inst.start_smtpd(extra_args=("--idle-timeout=0",))
        old = Raw(self.inst.port)
        old.expect("220 mx.example.test ESMTP mta")
        self.inst.write_main_cf("smtpd_banner = $myhostname ESMTP reloaded\nmessage_size_limit = 1234\n")
        p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        new = Raw(self.inst.port)
        new.expect("220 mx.example.test ESMTP reloaded")
        new.send("EHLO c\r\n")
        _, lines = new.reply()
        self.assertIn("250-SIZE 1234", lines)
        old.send("EHLO c\r\n")
        _, lines = old.reply()
        self.assertIn("250-SIZE 10240000", lines)
        # A broken main.cf keeps the old configuration.
        with open(os.path.join(self.inst.etc, "main.cf"), "a") as f:
            f.write("smtpd_tls_security_level = bogus\n")
        p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        again = Raw(self.inst.port)
        again.expect("220 mx.example.test ESMTP reloaded")
        self.assertIsNone(p.poll())

    def test_drops_privileges(self):
        if not mtatest.is_root():
            self.skipTest("needs root")
        p = self.inst.start_smtpd(extra_args=("--idle-timeout=0",))
        mta = pwd.getpwnam("mta").pw_uid
        # Once the first session is served, the drop has happened (it comes before the loop).
        with self.inst.smtp() as s:
            s.noop()
        with open("/proc/%d/status" % p.pid) as f:
            uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
        self.assertEqual(set(int(u) for u in uids), {mta})

    def test_unexpected_socket_name_refused(self):
        port = mtatest.free_port()
        p = subprocess.Popen(["systemd-socket-activate", "-l", "127.0.0.1:%d" % port, "--fdname=bogus",
                              mtatest.program("mta-smtpd"), "-c", self.inst.etc], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            mtatest.wait_for_port(port)
        except TimeoutError:
            pass
        self.assertEqual(p.wait(10), 1)
        self.assertIn(b"Unexpected socket", p.stdout.read())

    def test_no_socket_refused(self):
        p = subprocess.run([mtatest.program("mta-smtpd"), "-c", self.inst.etc], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn("No listening sockets", p.stderr)

    def test_usage(self):
        p = subprocess.run([mtatest.program("mta-smtpd"), "--bogus"], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([mtatest.program("mta-smtpd"), "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--idle-timeout", p.stdout)


SUBMIT_CLIENT = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    f = s.makefile("rb")
    def reply():
        while True:
            line = f.readline().decode()
            if line[3:4] != "-":
                return line.rstrip()
    out = [reply()]
    for cmd in sys.argv[2:]:
        s.sendall(cmd.encode().replace(b"\\\\n", b"\\r\\n") + b"\\r\\n")
        out.append(reply())
    print("\\n".join(out))
""")


class Submission(unittest.TestCase):
    """The "submit" unix socket: peer credentials decide who may claim which sender."""

    def setUp(self):
        need_smtpd(self)
        if not mtatest.is_root():
            self.skipTest("needs root to act as several users")
        self.inst = mtatest.Instance()
        self.addCleanup(self.inst.close)
        self.sock = self.inst.path("submit.sock")
        start_smtpd(self.inst, extra_args=("--idle-timeout=0",), listen=[self.sock],
                    sa_args=("--fdname=smtp:submit",))
        os.chmod(self.sock, 0o666)

    def client(self, user, *cmds):
        pw = pwd.getpwnam(user)
        p = subprocess.run([PYTHON, "-c", SUBMIT_CLIENT, self.sock, *cmds], capture_output=True, text=True,
                           timeout=30, user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.split("\n")

    def test_forged_sender_refused(self):
        out = self.client("mtatest-alice", "EHLO localhost", "MAIL FROM:<mtatest-bob@mx.example.test>",
                          "MAIL FROM:<root>", "MAIL FROM:<>", "MAIL FROM:<mtatest-alice@elsewhere.example>")
        self.assertTrue(out[2].startswith("553 5.7.1 <mtatest-bob@mx.example.test>: Sender address rejected: "
                                          "not owned by user mtatest-alice"), out)
        self.assertTrue(out[3].startswith("553 5.7.1 <root>: "), out)
        self.assertTrue(out[4].startswith("553 5.7.1 <>: "), out)
        self.assertTrue(out[5].startswith("553 5.7.1 "), out)

    def test_own_sender_accepted_and_may_relay(self):
        out = self.client("mtatest-alice", "EHLO localhost", "MAIL FROM:<mtatest-alice@mx.example.test>",
                          "RCPT TO:<someone@remote.example>", "RCPT TO:<%s>" % ALICE, "DATA",
                          "Subject: local\\n\\nhello\\n.", "QUIT")
        self.assertEqual(out[2], "250 2.1.0 Ok", out)
        self.assertEqual(out[3], "250 2.1.5 Ok", out)
        self.assertTrue(out[6].startswith("250 2.0.0 Ok: queued as "), out)
        msgs = list(mtatest.queued_messages(self.inst.spool).values())
        self.assertEqual(len(msgs), 1)
        m = msgs[0]
        self.assertEqual(m["user"], "mtatest-alice")
        self.assertEqual(m["client"], "local")
        self.assertEqual(m["protocol"], "LOCAL")
        self.assertEqual(m["sender"], "mtatest-alice@mx.example.test")
        uid = pwd.getpwnam("mtatest-alice").pw_uid
        self.assertIn(b"Received: by mx.example.test (mta, from userid %d)" % uid, m["content"])
        out = self.client("mtatest-alice", "EHLO localhost", "MAIL FROM:<mtatest-alice>")
        self.assertEqual(out[2], "250 2.1.0 Ok", out)

    def test_root_may_use_any_sender(self):
        out = self.client("root", "EHLO localhost", "MAIL FROM:<anybody@example.org>", "RSET", "MAIL FROM:<>")
        self.assertEqual(out[2], "250 2.1.0 Ok")
        self.assertEqual(out[4], "250 2.1.0 Ok")

    def test_no_starttls_on_local_socket(self):
        out = self.client("mtatest-alice", "STARTTLS")
        self.assertTrue(out[1].startswith("502 5.5.1"), out)


class DiskFull(unittest.TestCase):
    """queue_directory on a 1 MiB tmpfs."""

    def setUp(self):
        need_smtpd(self)
        if not mtatest.is_root():
            self.skipTest("needs root to mount a tmpfs")
        self.inst = mtatest.Instance()
        self.addCleanup(self.inst.close)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", self.inst.spool],
                           capture_output=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: %s" % r.stderr.decode().strip())
        self.addCleanup(lambda: subprocess.run(["umount", "-l", self.inst.spool]))
        os.chown(self.inst.spool, pwd.getpwnam("mta").pw_uid, pwd.getpwnam("mta").pw_gid)

    def test_452_at_mail_and_451_at_end_of_data(self):
        # 1.5 x message_size_limit does not fit in 1 MiB: MAIL is refused at once.
        self.inst.write_main_cf("message_size_limit = 10240000\n")
        p = self.inst.start_smtpd(extra_args=("--idle-timeout=0",))
        r = Raw(self.inst.port)
        r.expect("220 ")
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\n")
        r.expect("250 ", "452 4.3.1 Insufficient system storage")
        r.close()
        # Without a size limit MAIL passes, and the write fails during DATA: 451, nothing left over.
        self.inst.write_main_cf("message_size_limit = 0\n")
        p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        r = Raw(self.inst.port)
        r.expect("220 ")
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % ALICE)
        r.expect("250 ", "250 2.1.0", "250 2.1.5", "354 ")
        r.send(("z" * 998 + "\r\n") * 2100 + ".\r\n")
        r.expect("451 4.3.0 Error: queue file write error")
        r.send("NOOP\r\n")
        r.expect("250 2.0.0 Ok")
        self.assertEqual(mtatest.queued_messages(self.inst.spool), {})
        self.assertEqual(os.listdir(os.path.join(self.inst.spool, "incoming")), [])
        # Space is back: mail flows again.
        r.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\nsmall\r\n.\r\n" % ALICE)
        r.expect("250 2.1.0", "250 2.1.5", "354 ", "250 2.0.0 Ok: queued as ")


if __name__ == "__main__":
    mtatest.main()
