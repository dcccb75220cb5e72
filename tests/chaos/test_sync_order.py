# SPDX-License-Identifier: MIT
"""Write ordering: the promise that a 250 means "on disk" rests on the order of a few system
calls, which strace shows. SIGKILL tests cannot see a missing fsync (the page cache survives a
killed process), and device-mapper (dm-flakey, dm-log-writes) is not available on these machines
to cut the power under a running system, so this test checks the ordering itself:

- receiver: the queue file is fdatasync'ed (or fsync'ed), renamed from incoming/ into new/, and
  new/ is fsync'ed, all before "250 2.0.0 Ok: queued as ID" is written to the client;
- delivery: the mailbox is fsync'ed after its last write (and its directory after it was
  created) before the queue file is unlinked.
"""

import os
import re
import shutil
import signal
import smtplib
import subprocess
import time
import unittest

import mtatest

LINE = re.compile(r"^(\d+)\s+(\d+:\d+:\d+\.\d+)\s+(\w+)\((.*)$")
FD_PATH = re.compile(r"^(\d+)<([^>]*)>")


def parse(path):
    calls = []
    with open(path, errors="replace") as f:
        for raw in f:
            m = LINE.match(raw.rstrip("\n"))
            if not m or "resumed>" in raw:
                continue
            calls.append((m.group(3), m.group(4)))
    return calls


def fd_path(args):
    m = FD_PATH.match(args)
    return m.group(2) if m else None


@unittest.skipUnless(mtatest.is_root() and shutil.which("strace"), "needs root and strace")
class SyncOrderTest(unittest.TestCase):
    def setUp(self):
        for name in ("mta-smtpd", "mta-queue", "mta-local"):
            if not mtatest.have_program(name):
                self.skipTest(f"{name} is not built")
        mtatest.ensure_test_users()
        self.inst = mtatest.Instance()

    def tearDown(self):
        self.inst.close()

    def test_receive_then_deliver(self):
        replies = self.receive()
        self.deliver(replies)

    def test_receive_rename_syncfs_mode(self):
        self.receive("--commit=rename-syncfs")

    def receive(self, *smtpd_args):
        inst = self.inst
        port = mtatest.free_port()
        rtrace = inst.path("smtpd.trace")
        calls = "fdatasync,fsync,syncfs,rename,renameat,renameat2,write,sendto,sendmsg,unlink,unlinkat,openat"
        p = subprocess.Popen(["strace", "-f", "-y", "-tt", "-s", "200", "-o", rtrace, "-e", f"trace={calls}",
                              "systemd-socket-activate", "-l", f"127.0.0.1:{port}",
                              mtatest.program("mta-smtpd"), "-c", inst.etc, *smtpd_args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            mtatest.wait_for_port(port)
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                for i in range(3):
                    s.sendmail("sender@example.org", ["mtatest-alice@example.test"],
                               f"Subject: order {i}\n\nbody {i}\n")
        finally:
            time.sleep(0.3)
            # strace follows the receiver; stop the receiver and strace ends with it.
            for pid in mtatest.pids_of(mtatest.program("mta-smtpd"), inst.etc):
                os.kill(pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

        trace = parse(rtrace)
        replies = [(i, re.search(r"queued as ([0-9A-F]+)", a).group(1))
                   for i, (n, a) in enumerate(trace) if n in ("sendto", "write", "sendmsg") and "250 2.0.0 Ok: queued as" in a]
        self.assertEqual(len(replies), 3)
        for at, qid in replies:
            before = trace[:at]
            synced = [i for i, (n, a) in enumerate(before)
                      if n in ("fdatasync", "fsync") and (fd_path(a) or "").endswith(f"/incoming/{qid}")]
            renamed = [i for i, (n, a) in enumerate(before)
                       if n.startswith("rename") and f"incoming/{qid}" in a and f"new/{qid}" in a]
            self.assertTrue(synced or any(n == "syncfs" for n, _ in before), f"{qid}: data not synced before 250")
            self.assertTrue(renamed, f"{qid}: not renamed into new/ before 250")
            dir_synced = [i for i, (n, a) in enumerate(before)
                          if i > renamed[-1] and n in ("fsync", "fdatasync", "syncfs")
                          and ((fd_path(a) or "").endswith("/new") or n == "syncfs")]
            self.assertTrue(dir_synced, f"{qid}: new/ not synced between rename and 250")
            if synced:
                self.assertLess(synced[-1], renamed[-1], f"{qid}: renamed before its data was synced")
        return replies

    def deliver(self, replies):
        inst = self.inst
        qtrace = inst.path("queue.trace")
        subprocess.run(["strace", "-f", "-y", "-tt", "-s", "200", "-o", qtrace, "-e",
                        "trace=fdatasync,fsync,syncfs,write,unlink,unlinkat,openat,ftruncate",
                        mtatest.program("mta-queue"), "-c", inst.etc],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       # LeakSanitizer cannot run under ptrace and fails the exit of a sanitizer
                       # build; the leak check is for the other tests, this one reads syscalls.
                       env=dict(os.environ, LSAN_OPTIONS="detect_leaks=0"))
        self.assertEqual(len(inst.read_mbox("mtatest-alice")), 3)
        trace = parse(qtrace)
        mbox = inst.mbox_path("mtatest-alice")
        for _, qid in replies:
            gone = [i for i, (n, a) in enumerate(trace)
                    if n in ("unlink", "unlinkat") and f"/new/{qid}" in a or (n == "unlinkat" and f'"{qid}"' in a)]
            self.assertTrue(gone, f"{qid}: queue file not removed")
            before = trace[:gone[0]]
            writes = [i for i, (n, a) in enumerate(before) if n == "write" and fd_path(a) == mbox]
            self.assertTrue(writes, f"{qid}: no mailbox write before the queue file went")
            syncs = [i for i, (n, a) in enumerate(before)
                     if n in ("fsync", "fdatasync") and fd_path(a) == mbox and i > writes[-1]]
            self.assertTrue(syncs, f"{qid}: queue file removed before the mailbox was synced")
        created = [i for i, (n, a) in enumerate(trace) if n == "openat" and "O_CREAT" in a
                   and re.search(r'"mtatest-alice"', a) and "= -1" not in a]
        self.assertTrue(created, "the mailbox was not created by this run")
        dir_syncs = [i for i, (n, a) in enumerate(trace) if n in ("fsync", "fdatasync")
                     and fd_path(a) == inst.mail and i > created[0]]
        first_unlink = min(i for i, (n, a) in enumerate(trace) if n in ("unlink", "unlinkat") and "/new/" in a)
        self.assertTrue(dir_syncs and dir_syncs[0] < first_unlink,
                        "a new mailbox's directory entry was not synced before the queue file was removed")


if __name__ == "__main__":
    mtatest.main()
