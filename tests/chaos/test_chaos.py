# SPDX-License-Identifier: MIT
"""Crash chaos: mail keeps flowing while the receiver, the queue runner and the delivery agent
are killed with SIGKILL at random moments. Afterwards the system drains and we check the promise:
every message that got a 250 is delivered byte for byte; nothing is delivered for a message whose
final dot was never sent; no queue file is stuck; every mbox parses. Duplicates (allowed: the
promise is at-least-once) and messages whose dot was sent but whose reply was lost are counted
and printed.

CHAOS_MESSAGES (default 600) and CHAOS_SESSIONS (default 12) scale the run; CHAOS_SEED fixes
the random choices.
"""

import os
import random
import signal
import socket
import subprocess
import threading
import time
import unittest

import mtatest

MESSAGES = int(os.environ.get("CHAOS_MESSAGES", "600"))
SESSIONS = int(os.environ.get("CHAOS_SESSIONS", "12"))
SEED = int(os.environ.get("CHAOS_SEED", str(int(time.time()))))


def recv_reply(f):
    """Reads one SMTP reply (possibly multi-line); returns (code, text) or raises on EOF."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        lines.append(line.decode("latin-1").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return int(lines[-1][:3]), "\n".join(lines)


class Outcome:
    def __init__(self):
        self.lock = threading.Lock()
        self.accepted = {}       # token -> body bytes
        self.no_dot = set()      # final dot never sent: must never be delivered
        self.dot_no_reply = {}   # dot sent, reply lost: may or may not be delivered
        self.rejected = set()    # got a 4xx/5xx after the dot


def send_one(port, token, rcpt, body, outcome):
    dot_sent = False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            f = s.makefile("rb")
            steps = [None, b"EHLO chaos.test\r\n", b"MAIL FROM:<chaos@example.org>\r\n",
                     f"RCPT TO:<{rcpt}>\r\n".encode(), b"DATA\r\n"]
            expect = [220, 250, 250, 250, 354]
            for cmd, want in zip(steps, expect):
                if cmd:
                    s.sendall(cmd)
                code, text = recv_reply(f)
                if code != want:
                    raise ConnectionError(f"unexpected {text!r}")
            wire = body.replace(b"\n", b"\r\n")
            s.sendall(wire + b".\r\n")
            dot_sent = True
            code, text = recv_reply(f)
            with outcome.lock:
                if code == 250:
                    outcome.accepted[token] = body
                else:
                    outcome.rejected.add(token)
            try:
                s.sendall(b"QUIT\r\n")
            except OSError:
                pass
            return code == 250
    except (OSError, ConnectionError, ValueError):
        with outcome.lock:
            if dot_sent:
                outcome.dot_no_reply[token] = body
            else:
                outcome.no_dot.add(token)
        return False


def make_body(token, rnd):
    lines = [f"Message-ID: <{token}@chaos.test>", f"Subject: chaos {token}", "From: chaos@example.org", ""]
    for i in range(rnd.randint(1, 60)):
        lines.append(f"{token} line {i} " + "x" * rnd.randint(0, 120))
    return ("\n".join(lines) + "\n").encode()


@unittest.skipUnless(mtatest.is_root(), "needs root (local delivery switches users)")
class ChaosTest(unittest.TestCase):
    def test_kill_everything_lose_nothing(self):
        for name in ("mta-smtpd", "mta-queue", "mta-local"):
            if not mtatest.have_program(name):
                self.skipTest(f"{name} is not built")
        users = mtatest.ensure_test_users()
        rnd = random.Random(SEED)
        print(f"chaos: seed {SEED}, {MESSAGES} messages over {SESSIONS} sessions")
        with mtatest.Instance() as inst:
            smtpd = mtatest.SocketActivator([mtatest.program("mta-smtpd"), "-c", inst.etc],
                                            log_path=inst.path("smtpd.log"))
            smtpd.start()
            outcome = Outcome()
            stop = threading.Event()
            kills = {"smtpd": 0, "queue": 0, "local": 0}
            runner_log = open(inst.path("queue.log"), "ab")

            def runner_loop():
                # Stands in for mta-queue.path: run the queue over and over while mail arrives.
                while not stop.is_set():
                    subprocess.run([mtatest.program("mta-queue"), "-c", inst.etc],
                                   stdout=runner_log, stderr=subprocess.STDOUT)
                    time.sleep(0.05)

            def smtpd_keeper():
                while not stop.is_set():
                    smtpd.start_if_dead()
                    time.sleep(0.01)

            def killer():
                krnd = random.Random(SEED + 1)
                while not stop.is_set():
                    time.sleep(krnd.uniform(0.05, 0.6))
                    victim = krnd.choice(("smtpd", "queue", "local"))
                    if victim == "smtpd":
                        smtpd.kill()
                        kills["smtpd"] += 1
                        continue
                    prog = "mta-queue" if victim == "queue" else "mta-local"
                    for pid in mtatest.pids_of(mtatest.program(prog)):
                        try:
                            os.kill(pid, signal.SIGKILL)
                            kills[victim] += 1
                        except ProcessLookupError:
                            pass

            threads = [threading.Thread(target=t, daemon=True) for t in (runner_loop, smtpd_keeper, killer)]
            for t in threads:
                t.start()

            work = list(range(MESSAGES))
            work_lock = threading.Lock()

            def sender():
                while True:
                    with work_lock:
                        if not work:
                            return
                        n = work.pop()
                    token = f"T{SEED}x{n:06d}"
                    rcpt = rnd.choice(users).pw_name + "@example.test"
                    body = make_body(token, random.Random(n))
                    # A client retries a message whose transaction failed before the dot, as MTAs do.
                    for _ in range(5):
                        if send_one(smtpd.port, token, rcpt, body, outcome):
                            break
                        with outcome.lock:
                            if token in outcome.dot_no_reply:
                                break
                            outcome.no_dot.discard(token)
                        time.sleep(0.05)
                    else:
                        with outcome.lock:
                            outcome.no_dot.add(token)

            senders = [threading.Thread(target=sender) for _ in range(SESSIONS)]
            t0 = time.monotonic()
            for t in senders:
                t.start()
            for t in senders:
                t.join()
            elapsed = time.monotonic() - t0
            stop.set()
            for t in threads:
                t.join(30)

            # Recovery: a fresh receiver is not needed; drain the queue without chaos.
            for _ in range(20):
                subprocess.run([mtatest.program("mta-queue"), "-c", inst.etc, "-f"],
                               stdout=runner_log, stderr=subprocess.STDOUT)
                if not inst.queue_ids("new") and not inst.queue_ids("deferred"):
                    break
                time.sleep(0.5)
            smtpd.close()

            delivered = {}
            for pw in users:
                for msg in inst.read_mbox(pw.pw_name):
                    mid = msg["Message-ID"].strip("<>").split("@")[0]
                    payload = msg.get_payload(decode=False)
                    delivered.setdefault(mid, []).append(payload)

            print(f"chaos: {elapsed:.1f}s, kills {kills}, smtpd starts {smtpd.starts}")
            print(f"chaos: accepted {len(outcome.accepted)}, dot-but-no-reply {len(outcome.dot_no_reply)}, "
                  f"rejected after dot {len(outcome.rejected)}, never sent dot {len(outcome.no_dot)}")
            dups = sum(len(v) - 1 for v in delivered.values() if len(v) > 1)
            ambiguous_delivered = sum(1 for t in outcome.dot_no_reply if t in delivered)
            print(f"chaos: delivered {len(delivered)} distinct, {dups} duplicates, "
                  f"{ambiguous_delivered} of the dot-but-no-reply delivered")

            self.assertEqual(inst.queue_ids("new"), [], "mail stuck in new/")
            self.assertEqual(inst.queue_ids("deferred"), [], "mail stuck in deferred/")
            lost = [t for t in outcome.accepted if t not in delivered]
            self.assertEqual(lost, [], f"{len(lost)} accepted messages were lost")
            for token, body in outcome.accepted.items():
                want = body.split(b"\n\n", 1)[1].decode()
                for got in delivered[token]:
                    self.assertEqual(got, want, f"{token} delivered with different content")
            phantom = [t for t in outcome.no_dot if t in delivered and t not in outcome.accepted]
            self.assertEqual(phantom, [], "messages whose final dot was never sent were delivered")
            self.assertGreater(len(outcome.accepted), MESSAGES // 2, "too little mail got through to judge")


if __name__ == "__main__":
    mtatest.main()
