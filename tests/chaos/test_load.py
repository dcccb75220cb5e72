# SPDX-License-Identifier: MIT
"""Load: 1,000 concurrent connections, most idle, some trickling a byte at a time. The receiver
must keep answering new clients at once, stay small (its memory is printed and bounded), and drop
the idle and the slow at smtpd_timeout with "421 4.4.2 ... timeout exceeded"."""

import resource
import smtplib
import socket
import subprocess
import threading
import time
import unittest

import mtatest

IDLE = 950
SLOW = 30
FRESH = 20
TIMEOUT = 6


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@unittest.skipUnless(mtatest.is_root(), "needs root (the receiver drops to mail_owner)")
class LoadTest(unittest.TestCase):
    def test_thousand_connections(self):
        if not mtatest.have_program("mta-smtpd"):
            self.skipTest("mta-smtpd is not built")
        mtatest.ensure_test_users()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
        with mtatest.Instance(f"smtpd_timeout = {TIMEOUT}s\n") as inst:
            p = inst.start_smtpd(extra_args=("--idle-timeout=0",))
            idle = []
            t0 = time.monotonic()
            for _ in range(IDLE):
                s = socket.create_connection(("127.0.0.1", inst.port), timeout=10)
                s.settimeout(10)
                self.assertTrue(s.recv(512).startswith(b"220 "))
                idle.append(s)
            print(f"load: {IDLE} idle sessions greeted in {time.monotonic() - t0:.2f}s")

            stop = threading.Event()
            slow_socks = []

            def trickle(s):
                # A byte every half second: never a complete command within the timeout.
                for b in b"EHLO slowly.example.test\r\n":
                    if stop.wait(0.5):
                        return
                    try:
                        s.send(bytes([b]))
                    except OSError:
                        return

            threads = []
            for _ in range(SLOW):
                s = socket.create_connection(("127.0.0.1", inst.port), timeout=10)
                s.recv(512)
                slow_socks.append(s)
                threads.append(threading.Thread(target=trickle, args=(s,), daemon=True))
            for t in threads:
                t.start()

            # With 980 sessions open, new clients are served at once.
            latencies = []
            for i in range(FRESH):
                t1 = time.monotonic()
                with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
                    c.sendmail("load@example.org", ["mtatest-alice@example.test"], f"Subject: load {i}\n\nx\n")
                latencies.append(time.monotonic() - t1)
            rss = rss_kib(p.pid)
            latencies.sort()
            print(f"load: {FRESH} fresh sessions while {IDLE + SLOW} are open: "
                  f"median {latencies[len(latencies) // 2] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
            print(f"load: receiver RSS with {IDLE + SLOW} open sessions: {rss / 1024:.1f} MiB")
            self.assertLess(latencies[-1], 2.0, "a new client waited behind the crowd")
            self.assertLess(rss, 64 * 1024, "the receiver grew past 64 MiB")
            self.assertEqual(len(mtatest.queued_messages(inst.spool)), FRESH)

            # Idle and slow clients are dropped at the timeout, with the standard reply.
            time.sleep(TIMEOUT + 2)
            stop.set()
            dropped = 0
            for s in idle + slow_socks:
                s.settimeout(5)
                data = b""
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                if b"421 4.4.2" in data and b"timeout exceeded" in data:
                    dropped += 1
                s.close()
            print(f"load: {dropped} of {IDLE + SLOW} idle or slow sessions dropped with 421 4.4.2")
            self.assertEqual(dropped, IDLE + SLOW)
            self.assertIsNone(p.poll(), "the receiver died")

    def test_descriptor_limit_queues_clients(self):
        # With 200 descriptors the receiver admits (200 - 64) / 2 = 68 sessions; the rest wait in
        # the listen backlog (no error, no spinning) and are greeted as soon as sessions end.
        if not mtatest.have_program("mta-smtpd"):
            self.skipTest("mta-smtpd is not built")
        mtatest.ensure_test_users()
        with mtatest.Instance() as inst:
            port = mtatest.free_port()
            p = subprocess.Popen(["prlimit", "--nofile=200:200", "systemd-socket-activate", "-l",
                                  f"127.0.0.1:{port}", mtatest.program("mta-smtpd"), "-c", inst.etc,
                                  "--idle-timeout=0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            inst.procs.append(p)
            mtatest.wait_for_port(port)
            time.sleep(0.2)
            socks = []
            for _ in range(100):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                socks.append(s)
            greeted = 0
            for s in socks:
                s.settimeout(0.5)
                try:
                    if s.recv(512).startswith(b"220 "):
                        greeted += 1
                except socket.timeout:
                    pass
            print(f"load: {greeted} of 100 greeted under a limit of 200 descriptors")
            self.assertLess(greeted, 100)
            self.assertGreaterEqual(greeted, 60)
            cpu0 = sum(int(x) for x in open(f"/proc/{p.pid}/stat").read().split()[13:15])
            time.sleep(1)
            cpu1 = sum(int(x) for x in open(f"/proc/{p.pid}/stat").read().split()[13:15])
            self.assertLess(cpu1 - cpu0, 20, "the receiver spins while clients wait")
            for s in socks[:greeted]:
                s.sendall(b"QUIT\r\n")
                s.close()
            late = 0
            for s in socks[greeted:]:
                s.settimeout(5)
                if s.recv(512).startswith(b"220 "):
                    late += 1
                s.close()
            self.assertEqual(late, 100 - greeted, "waiting clients were not served after others left")


if __name__ == "__main__":
    mtatest.main()
