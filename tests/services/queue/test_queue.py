# SPDX-License-Identifier: MIT
"""mta-queue end to end: remote delivery to scripted SMTP peers (aiosmtpd and a raw socket peer),
retries and bounces, two of our own instances relaying to each other, local delivery through
mta-local, concurrent and crashed runners, MX routing between network namespaces, and the mtactl
queue commands."""

import contextlib
import email
import email.policy
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import mtatest

try:
    from aiosmtpd.controller import Controller
except ImportError:          # the tests that need an SMTP peer skip themselves
    Controller = None


def mta_ids():
    pw = pwd.getpwnam("mta")
    return pw.pw_uid, pw.pw_gid


def enqueue(inst, sender, recipients, content, arrival=None, attempts=0, next_attempt=0, sub="new",
            esmtp=None):
    """Puts a committed message into the instance's queue, as the receiver would."""
    uid, gid = mta_ids()
    os.makedirs(inst.spool, exist_ok=True)
    d = os.path.join(inst.spool, sub)
    if not os.path.isdir(d):
        os.mkdir(d, 0o700)
        os.chown(d, uid, gid)
    qid = "%020X" % (int(time.time() * 1e6) * 256 + int.from_bytes(os.urandom(1), "big"))
    data, _, _ = mtatest.queue_file_bytes(qid, sender, recipients, content, arrival=arrival, esmtp=esmtp)
    data = data.replace(b"W31:" + b"%020d %010d" % (0, 0), b"W31:" + b"%020d %010d" % (next_attempt, attempts))
    tmp = os.path.join(d, "." + qid)
    with open(tmp, "wb") as f:
        f.write(data)
    os.chown(tmp, uid, gid)
    os.chmod(tmp, 0o600)
    os.rename(tmp, os.path.join(d, qid))
    return qid


def message(subject, body="hello\n", extra=""):
    return f"From: sender@remote.test\nTo: someone\nSubject: {subject}\nMessage-ID: <{subject}@test>\n{extra}\n{body}"


class Peer:
    """An aiosmtpd server whose replies follow a script.

    rcpt(address) returns the RCPT reply; data_replies is a list of replies used one per DATA (the
    last one repeats)."""

    def __init__(self, rcpt=None, data_replies=("250 2.0.0 Ok: queued",), server_hostname="peer.remote.test",
                 delay=0.0, tls_context=None):
        self.messages = []
        self.sessions = 0
        self.rcpt = rcpt or (lambda a: "250 2.1.5 Ok")
        self.data_replies = list(data_replies)
        self.delay = delay
        self.lock = threading.Lock()
        if Controller is None:
            raise unittest.SkipTest("python3-aiosmtpd is not installed")
        self.port = mtatest.free_port()
        kw = {}
        if tls_context is not None:
            kw = dict(tls_context=tls_context, require_starttls=False)
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                     server_hostname=server_hostname, **kw)
        self.controller.start()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        return "250 peer"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt(address)
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            reply = self.data_replies.pop(0) if len(self.data_replies) > 1 else self.data_replies[0]
            if reply.startswith("250"):
                self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                                      session.ssl is not None))
        return reply

    def stop(self):
        self.controller.stop()


class RawPeer(threading.Thread):
    """A minimal SMTP server on a socket that can drop the connection in the middle of DATA."""

    def __init__(self, drop_first=1, close_after_data=False, rcpt_reply=None, no_ehlo=False, broken_tls=False):
        super().__init__(daemon=True)
        self.no_ehlo = no_ehlo
        self.broken_tls = broken_tls
        self.commands = []
        self.rcpt_reply = rcpt_reply
        self.close_after_data = close_after_data
        self.sessions = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.drops_left = drop_first
        self.messages = []
        self.running = True
        self.start()

    def run(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with contextlib.suppress(OSError):
                self.serve(conn)
            conn.close()

    def serve(self, conn):
        f = conn.makefile("rb")
        self.sessions += 1
        conn.sendall(b"220 raw.remote.test ESMTP\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line[:4].upper()
            self.commands.append(line.strip().decode(errors="replace"))
            if cmd == b"EHLO" and self.no_ehlo:
                conn.sendall(b"502 5.5.1 EHLO not implemented\r\n")
            elif cmd == b"HELO":
                conn.sendall(b"250 raw.remote.test\r\n")
            elif cmd == b"EHLO":
                tls = b"250-STARTTLS\r\n" if self.broken_tls else b""
                conn.sendall(b"250-raw.remote.test\r\n" + tls + b"250 8BITMIME\r\n")
            elif cmd == b"STAR" and self.broken_tls:
                conn.sendall(b"220 2.0.0 go ahead\r\n")
                time.sleep(0.2)   # after the client has started its handshake
                conn.sendall(b"this is not a TLS server hello\r\n" * 4)
                return
            elif cmd == b"RCPT" and self.rcpt_reply and b"sender@" not in line:
                conn.sendall(self.rcpt_reply)
            elif cmd in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                conn.sendall(b"250 2.0.0 Ok\r\n")
            elif cmd == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                if self.drops_left > 0:
                    self.drops_left -= 1
                    f.readline()   # the first line of content, then the line goes dead
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                data = b""
                while True:
                    l = f.readline()
                    if not l or l == b".\r\n":
                        break
                    data += l
                self.messages.append(data)
                conn.sendall(b"250 2.0.0 Ok\r\n")
                if self.close_after_data:
                    return
            elif cmd == b"QUIT":
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                conn.sendall(b"502 5.5.2 Error\r\n")

    def stop(self):
        self.running = False
        self.sock.close()


def runner(inst, *args, timeout=120):
    r = inst.run("mta-queue", *args, timeout=timeout)
    return r


def pending_files(inst):
    return inst.queue_ids("new") + inst.queue_ids("deferred")


@unittest.skipUnless(mtatest.is_root(), "needs root (creates users, runs as mta)")
@unittest.skipUnless(mtatest.have_program("mta-queue"), "mta-queue not built")
class RemoteTest(unittest.TestCase):
    def setUp(self):
        mtatest.ensure_test_users()
        self.peers = []
        self.inst = None

    def tearDown(self):
        for p in self.peers:
            p.stop()
        if self.inst:
            self.inst.close()

    def make(self, peer, extra=""):
        self.peers.append(peer)
        self.inst = mtatest.Instance(f"relayhost = [127.0.0.1]:{peer.port}\n"
                                     "minimal_backoff_time = 300s\nmaximal_backoff_time = 4000s\n" + extra,
                                     hostname="a.example.test")
        return self.inst

    def test_one_session_dot_stuffing(self):
        peer = Peer()
        inst = self.make(peer)
        body = ".leading dot\n..two dots\nplain\n.\nlast line without newline"
        enqueue(inst, "sender@remote.test", ["bob@remote.test", "carol@remote.test", "dave@other.test"],
                message("stuffing", body))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(peer.messages), 1, "one session and one transaction for all recipients")
        self.assertEqual(peer.sessions, 1)
        mail_from, rcpts, content, _ = peer.messages[0]
        self.assertEqual(mail_from, "sender@remote.test")
        self.assertEqual(sorted(rcpts), ["bob@remote.test", "carol@remote.test", "dave@other.test"])
        expected = message("stuffing", body).replace("\n", "\r\n") + "\r\n"
        self.assertEqual(content.decode(), expected)
        self.assertEqual(pending_files(inst), [])
        if not mtatest_journal():
            self.assertIn(b"dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)", r.stderr)

    def test_recipient_limit_splits_sessions(self):
        peer = Peer()
        inst = self.make(peer, "smtp_destination_recipient_limit = 2\n")
        enqueue(inst, "s@remote.test", [f"u{i}@remote.test" for i in range(5)], message("limit"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([len(m[1]) for m in peer.messages], [2, 2, 1])
        self.assertEqual(pending_files(inst), [])

    def test_connection_reused_across_messages(self):
        peer = Peer()
        inst = self.make(peer)
        for i in range(5):
            enqueue(inst, "s@remote.test", [f"u{i}@remote.test"], message(f"reuse{i}"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(peer.messages), 5)
        self.assertEqual(peer.sessions, 1, "one connection for all five messages")
        self.assertEqual(pending_files(inst), [])

    def test_cached_connection_closed_by_server(self):
        peer = RawPeer(drop_first=0, close_after_data=True)
        inst = self.make(peer)
        for i in range(3):
            enqueue(inst, "s@remote.test", ["bob@remote.test"], message(f"closed{i}"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(peer.messages), 3)
        self.assertEqual(peer.sessions, 3)
        self.assertEqual(pending_files(inst), [])

    def test_tempfail_then_retry(self):
        peer = Peer(data_replies=["451 4.3.0 Try again later", "250 2.0.0 Ok"])
        inst = self.make(peer)
        qid = enqueue(inst, "s@remote.test", ["bob@remote.test"], message("retry"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(peer.messages, [])
        self.assertEqual(inst.queue_ids("deferred"), [qid])
        with open(inst.path("spool", "defer", qid)) as f:
            self.assertIn("451 4.3.0 Try again later", f.read())
        q = inst.run("mtactl", "queue")
        self.assertEqual(q.returncode, 0, q.stderr)
        out = q.stdout.decode()
        self.assertIn(qid, out)
        self.assertIn("(host 127.0.0.1[127.0.0.1] said: 451 4.3.0 Try again later (in reply to end of DATA command))",
                      out)
        self.assertIn(" " * 41 + "bob@remote.test", out)
        self.assertIn("-- 1 Kbytes in 1 Request.", out)
        # Not due yet: a plain run leaves it alone.
        runner(inst)
        self.assertEqual(peer.messages, [])
        self.assertEqual(inst.queue_ids("deferred"), [qid])
        # The flush makes it due.
        r = runner(inst, "-f")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(peer.messages), 1)
        self.assertEqual(pending_files(inst), [])
        self.assertFalse(os.path.exists(inst.path("spool", "defer", qid)))
        self.assertEqual(inst.run("mtactl", "queue").stdout.decode().strip(), "Mail queue is empty")

    def test_backoff_grows(self):
        peer = Peer(data_replies=["451 4.3.0 later"])
        inst = self.make(peer, "minimal_backoff_time = 100s\nmaximal_backoff_time = 350s\n")
        qid = enqueue(inst, "s@remote.test", ["bob@remote.test"], message("backoff"))
        waits = []
        for i in range(4):
            before = int(time.time())
            runner(inst, "-f")
            with open(inst.path("spool", "deferred", qid), "rb") as f:
                data = f.read()
            i = data.index(b"W31:") + 4
            nxt, attempts = int(data[i:i + 20]), int(data[i + 21:i + 31])
            waits.append((nxt - before, attempts))
        self.assertEqual([a for _, a in waits], [1, 2, 3, 4])
        for (w, _), want in zip(waits, [100, 200, 350, 350]):
            self.assertTrue(want - 2 <= w <= want + 2, waits)

    def test_permfail_bounce(self):
        peer = Peer(rcpt=lambda a: "550 5.1.1 <%s>: Recipient address rejected: User unknown" % a
                    if a.startswith("nobody") else "250 2.1.5 Ok")
        inst = self.make(peer)
        enqueue(inst, "sender@remote.test", ["nobody@remote.test", "bob@remote.test"],
                message("bounceme", extra="X-Original: yes\n"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pending_files(inst), [])
        # bob got it; the bounce went back to the sender through the same relay.
        self.assertEqual(len(peer.messages), 2, peer.messages)
        self.assertEqual(peer.messages[0][1], ["bob@remote.test"])
        mail_from, rcpts, content, _ = peer.messages[1]
        self.assertIn(mail_from, ("", "<>"))   # aiosmtpd spells the null sender "<>"
        self.assertEqual(rcpts, ["sender@remote.test"])
        msg = email.message_from_bytes(content, policy=email.policy.default)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertEqual(msg["From"].addresses[0].addr_spec, "MAILER-DAEMON@a.example.test")
        parts = list(msg.iter_parts())
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status", "text/rfc822-headers"])
        self.assertIn("This is the mail system at host a.example.test.", parts[0].get_content())
        self.assertIn("<nobody@remote.test>", parts[0].get_content())
        # message/delivery-status: per-message fields, then one block per recipient.
        blocks = parts[1].get_payload()
        self.assertEqual(len(blocks), 2)
        self.assertEqual(blocks[0]["Reporting-MTA"], "dns; a.example.test")
        self.assertTrue(blocks[0]["Arrival-Date"])
        rb = blocks[1]
        self.assertEqual(rb["Final-Recipient"], "rfc822; nobody@remote.test")
        self.assertEqual(rb["Original-Recipient"], "rfc822; nobody@remote.test")
        self.assertEqual(rb["Action"], "failed")
        self.assertEqual(rb["Status"], "5.1.1")
        self.assertEqual(rb["Remote-MTA"], "dns; 127.0.0.1")
        self.assertIn("smtp; 550 5.1.1 <nobody@remote.test>: Recipient address rejected", rb["Diagnostic-Code"])
        headers = parts[2].get_payload()
        self.assertIn("Subject: bounceme", headers)
        self.assertIn("X-Original: yes", headers)
        self.assertNotIn("hello", headers)   # headers only, not the body

    def test_null_sender_never_bounced(self):
        peer = Peer(rcpt=lambda a: "550 5.1.1 no such user")
        inst = self.make(peer)
        enqueue(inst, "", ["nobody@remote.test"], message("bounce-of-bounce"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(peer.messages, [])
        self.assertEqual(pending_files(inst), [])
        self.assertEqual(peer.sessions, 1, "no second session: nothing was bounced")

    def test_expired_bounces_with_last_reason(self):
        peer = Peer(rcpt=lambda a: "250 Ok" if a.startswith("sender") else "450 4.2.0 mailbox busy")
        inst = self.make(peer, "maximal_queue_lifetime = 1d\n")
        old = int(time.time()) - 2 * 86400
        enqueue(inst, "sender@remote.test", ["busy@remote.test"], message("expired"), arrival=old,
                attempts=5, sub="deferred")
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pending_files(inst), [])
        self.assertEqual(len(peer.messages), 1)
        msg = email.message_from_bytes(peer.messages[0][2], policy=email.policy.default)
        rb = list(msg.iter_parts())[1].get_payload()[1]
        self.assertEqual(rb["Status"], "4.2.0")
        self.assertIn("450 4.2.0 mailbox busy", rb["Diagnostic-Code"])

    def test_hostile_reply_text_is_sanitized(self):
        evil = b"550-5.1.1 first\x00line\x1b[31m\xff\r\n550 5.1.1 Injected: yes\rFinal-Recipient: x\r\n"
        peer = RawPeer(drop_first=0, rcpt_reply=evil)
        inst = self.make(peer)
        enqueue(inst, "sender@remote.test", ["victim@remote.test"], message("hostile"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pending_files(inst), [])
        self.assertEqual(len(peer.messages), 1)   # the bounce
        msg = email.message_from_bytes(peer.messages[0], policy=email.policy.default)
        parts = list(msg.iter_parts())
        self.assertEqual(len(parts), 3)
        blocks = parts[1].get_payload()
        self.assertEqual(len(blocks), 2, "no recipient block was forged")
        diag = blocks[1]["Diagnostic-Code"]
        self.assertIn("first?line?[31m?", diag)
        self.assertNotIn("\x00", diag)
        self.assertEqual(blocks[1]["Final-Recipient"], "rfc822; victim@remote.test")
        self.assertIsNone(blocks[1]["Injected"])

    def test_helo_fallback(self):
        peer = RawPeer(drop_first=0, no_ehlo=True)
        inst = self.make(peer)
        enqueue(inst, "s@remote.test", ["bob@remote.test"], message("helo"), esmtp="BODY=8BITMIME")
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(peer.messages), 1)
        self.assertIn("HELO a.example.test", peer.commands)
        # No ESMTP: no parameters on MAIL FROM.
        self.assertIn("MAIL FROM:<s@remote.test>", peer.commands)

    def test_tls_may_falls_back_to_plain(self):
        peer = RawPeer(drop_first=0, broken_tls=True)
        inst = self.make(peer, "smtp_tls_security_level = may\n")
        enqueue(inst, "s@remote.test", ["bob@remote.test"], message("tls-fallback"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(peer.messages), 1, r.stderr)
        self.assertEqual(peer.commands.count("STARTTLS"), 1)
        self.assertEqual(pending_files(inst), [])

    def test_only_given_ids(self):
        peer = Peer()
        inst = self.make(peer)
        a = enqueue(inst, "s@remote.test", ["bob@remote.test"], message("only-a"))
        b = enqueue(inst, "s@remote.test", ["bob@remote.test"], message("only-b"))
        r = runner(inst, "-i", b)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([email.message_from_bytes(m[2])["Subject"] for m in peer.messages], ["only-b"])
        self.assertEqual(inst.queue_ids("new"), [a])
        self.assertEqual(runner(inst, "-i", "not-an-id").returncode, 2)

    def test_drop_mid_data(self):
        peer = RawPeer(drop_first=1)
        inst = self.make(peer)
        qid = enqueue(inst, "s@remote.test", ["bob@remote.test"], message("dropped", "line\n" * 1000))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(inst.queue_ids("deferred"), [qid])
        self.assertEqual(peer.messages, [])
        with open(inst.path("spool", "defer", qid)) as f:
            self.assertIn("lost connection", f.read())
        runner(inst, "-f")
        self.assertEqual(pending_files(inst), [])
        self.assertEqual(len(peer.messages), 1)
        self.assertTrue(peer.messages[0].endswith(b"line\r\n" * 1000))

    def test_mail_loop_bounces(self):
        # The peer greets with our own hostname: that is a mail loop.
        peer = Peer(server_hostname="a.example.test")
        inst = self.make(peer)
        enqueue(inst, "", ["x@remote.test"], message("loop"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(peer.messages, [])
        self.assertEqual(pending_files(inst), [])
        if not mtatest_journal():
            self.assertIn(b"dsn=5.4.6", r.stderr)
            self.assertIn(b"loops back to myself", r.stderr)

    def test_tls_encrypt_not_offered(self):
        peer = Peer()
        inst = self.make(peer, "smtp_tls_security_level = encrypt\n")
        qid = enqueue(inst, "s@remote.test", ["bob@remote.test"], message("tls"))
        runner(inst)
        self.assertEqual(peer.messages, [])
        self.assertEqual(inst.queue_ids("deferred"), [qid])
        with open(inst.path("spool", "defer", qid)) as f:
            self.assertIn("TLS is required, but was not offered", f.read())

    @unittest.skipUnless(shutil.which("openssl"), "openssl not installed")
    def test_tls_may_uses_starttls(self):
        import ssl
        d = tempfile.mkdtemp()
        try:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                            "-subj", "/CN=peer.remote.test", "-keyout", f"{d}/k.pem", "-out", f"{d}/c.pem"],
                           check=True, capture_output=True)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(f"{d}/c.pem", f"{d}/k.pem")
            peer = Peer(tls_context=ctx)
            inst = self.make(peer, "smtp_tls_security_level = may\n")
            enqueue(inst, "s@remote.test", ["bob@remote.test"], message("tls-may"))
            r = runner(inst)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(peer.messages), 1, r.stderr)
            self.assertTrue(peer.messages[0][3], "the message went over TLS")
            self.assertEqual(pending_files(inst), [])
        finally:
            shutil.rmtree(d)

    def test_two_runners_deliver_once(self):
        peer = Peer(delay=0.01)
        inst = self.make(peer)
        subjects = [f"race{i}" for i in range(40)]
        for s in subjects:
            enqueue(inst, "s@remote.test", ["bob@remote.test"], message(s))
        cmd = [mtatest.program("mta-queue"), "-c", inst.etc]
        procs = [subprocess.Popen(cmd, stderr=subprocess.DEVNULL) for _ in range(2)]
        for p in procs:
            self.assertEqual(p.wait(120), 0)
        got = [email.message_from_bytes(m[2])["Subject"] for m in peer.messages]
        self.assertEqual(sorted(got), sorted(subjects), "every message exactly once")
        self.assertEqual(pending_files(inst), [])

    def test_crash_and_rerun_loses_nothing(self):
        peer = Peer(delay=0.03)
        inst = self.make(peer)
        subjects = [f"crash{i}" for i in range(40)]
        for s in subjects:
            enqueue(inst, "s@remote.test", ["bob@remote.test"], message(s))
        p = subprocess.Popen([mtatest.program("mta-queue"), "-c", inst.etc], stderr=subprocess.DEVNULL,
                             start_new_session=True)
        deadline = time.time() + 30
        while len(peer.messages) < 3 and time.time() < deadline:
            time.sleep(0.01)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        before = len(peer.messages)
        self.assertGreater(before, 0)
        self.assertLess(before, len(subjects), "the runner was killed mid-run")
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [email.message_from_bytes(m[2])["Subject"] for m in peer.messages]
        self.assertEqual(sorted(set(got)), sorted(subjects), "nothing lost")
        dups = len(got) - len(set(got))
        print(f"crash test: {before} delivered before the kill, {dups} duplicate(s)", file=sys.stderr)
        # At most the message each worker process had in flight repeats (mta-queue uses up to 4).
        self.assertLessEqual(dups, 4)
        self.assertEqual(pending_files(inst), [])

    def test_stale_incoming_removed(self):
        peer = Peer()
        inst = self.make(peer)
        uid, gid = mta_ids()
        inc = inst.path("spool", "incoming")
        os.makedirs(inc, exist_ok=True)
        os.chown(inc, uid, gid)
        old = os.path.join(inc, "0000000000000000000A")
        fresh = os.path.join(inc, "0000000000000000000B")
        for p in (old, fresh):
            with open(p, "wb") as f:
                f.write(b"MTAQ1\n")
            os.chown(p, uid, gid)
        os.utime(old, (time.time() - 7200, time.time() - 7200))
        runner(inst)
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(fresh))

    def test_corrupt_file_moved_aside(self):
        peer = Peer()
        inst = self.make(peer)
        qid = enqueue(inst, "s@remote.test", ["bob@remote.test"], message("corrupt"))
        path = inst.path("spool", "new", qid)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 5)
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(inst.queue_ids("corrupt"), [qid])
        self.assertEqual(peer.messages, [])


def mtatest_journal():
    return os.access("/run/systemd/journal/socket", os.W_OK)


@unittest.skipUnless(mtatest.is_root(), "needs root")
@unittest.skipUnless(mtatest.have_program("mtactl") and mtatest.have_program("mta-queue"), "not built")
class CtlTest(unittest.TestCase):
    def setUp(self):
        mtatest.ensure_test_users()
        self.peer = Peer(data_replies=["451 4.3.0 not now", "250 2.0.0 Ok"])
        self.inst = mtatest.Instance(f"relayhost = [127.0.0.1]:{self.peer.port}\n", hostname="a.example.test")

    def tearDown(self):
        self.peer.stop()
        self.inst.close()

    def ctl(self, *args):
        return self.inst.run("mtactl", *args)

    def test_hold_release_flush_delete(self):
        inst = self.inst
        self.assertEqual(self.ctl("queue").stdout.decode().strip(), "Mail queue is empty")
        a = enqueue(inst, "s@remote.test", ["bob@remote.test"], message("ctl-a"))
        b = enqueue(inst, "", ["carol@remote.test", "dave@remote.test"], message("ctl-b"))
        out = self.ctl("queue").stdout.decode()
        lines = out.splitlines()
        self.assertEqual(lines[0], "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------")
        self.assertRegex(out, a + r"  +\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d  s@remote.test\n")
        self.assertRegex(out, b + r"  +\d+ .*  MAILER-DAEMON\n")
        self.assertIn(" " * 41 + "dave@remote.test", out)
        self.assertTrue(lines[-1].startswith("-- ") and lines[-1].endswith(" in 2 Requests."), lines[-1])

        r = self.ctl("queue", "hold", a)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(inst.queue_ids("hold"), [a])
        self.assertIn(a + "!", self.ctl("queue").stdout.decode())
        # The runner leaves held mail alone; b gets its 451 and is deferred.
        inst.run("mta-queue", "-f")
        self.assertEqual(self.peer.messages, [])
        self.assertEqual(inst.queue_ids("hold"), [a])
        self.assertEqual(inst.queue_ids("deferred"), [b])

        r = self.ctl("queue", "release", "ALL")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(inst.queue_ids("hold"), [])
        self.assertEqual(sorted(inst.queue_ids("deferred")), sorted([a, b]))

        r = self.ctl("queue", "delete", b)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(inst.queue_ids("deferred"), [a])
        self.assertFalse(os.path.exists(inst.path("spool", "defer", b)))
        self.assertEqual(self.ctl("queue", "delete", b).returncode, 1, "gone already")
        self.assertEqual(self.ctl("queue", "delete", "nonsense").returncode, 2)
        self.assertEqual(self.ctl("queue", "frobnicate", a).returncode, 2)

        # flush (no systemd here): runs the queue with every deferred message due.
        r = self.ctl("flush")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.peer.messages), 1)
        self.assertEqual(pending_files(inst), [])
        self.assertEqual(self.ctl("queue").stdout.decode().strip(), "Mail queue is empty")

    def test_active_mark(self):
        import fcntl
        qid = enqueue(self.inst, "s@remote.test", ["bob@remote.test"], message("active"))
        with open(self.inst.path("spool", "new", qid), "rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            self.assertIn(qid + "*", self.ctl("queue").stdout.decode())
            # A locked message is being delivered: it cannot be deleted under the runner's feet.
            self.assertEqual(self.ctl("queue", "delete", qid).returncode, 1)
        self.assertNotIn(qid + "*", self.ctl("queue").stdout.decode())

    def test_status_counts(self):
        enqueue(self.inst, "s@remote.test", ["bob@remote.test"], message("st1"))
        enqueue(self.inst, "s@remote.test", ["bob@remote.test"], message("st2"), sub="hold")
        r = self.ctl("status")
        out = r.stdout.decode()
        self.assertIn("new 1, deferred 0, hold 1, corrupt 0", out)

    def test_delete_all(self):
        for i in range(3):
            enqueue(self.inst, "s@remote.test", ["bob@remote.test"], message(f"del{i}"))
        r = self.ctl("queue", "delete", "ALL")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"Deleted: 3 messages", r.stderr)
        self.assertEqual(pending_files(self.inst), [])


def local_ready():
    return all(mtatest.have_program(p) for p in ("mta-local", "mta-alias", "mta-map", "mta-queue"))


@unittest.skipUnless(mtatest.is_root(), "needs root")
@unittest.skipUnless(local_ready(), "mta-local or the map tools not built")
class LocalTest(unittest.TestCase):
    def setUp(self):
        mtatest.ensure_test_users()
        self.inst = mtatest.Instance("virtual_alias_domains = virt.test\n", hostname="a.example.test")
        with open(self.inst.path("etc", "aliases"), "w") as f:
            f.write("postmaster: root\nteam: mtatest-alice, mtatest-bob\nalias1: mtatest-alice\n")
        with open(self.inst.path("etc", "virtual"), "w") as f:
            f.write("v1@virt.test alias1\n")
        for tool, name in (("mta-alias", "aliases"), ("mta-map", "virtual")):
            r = subprocess.run([mtatest.program(tool), "-c", self.inst.etc, self.inst.path("etc", name)],
                               capture_output=True)
            self.assertEqual(r.returncode, 0, r.stderr)

    def tearDown(self):
        self.inst.close()

    def test_alias_and_virtual_alias(self):
        inst = self.inst
        enqueue(inst, "s@remote.test", ["alias1@a.example.test"], message("via-alias"))
        enqueue(inst, "s@remote.test", ["v1@virt.test"], message("via-virtual"))
        enqueue(inst, "s@remote.test", ["team@a.example.test"], message("via-team"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pending_files(inst), [], r.stderr)
        alice = sorted(m["Subject"] for m in inst.read_mbox("mtatest-alice"))
        bob = sorted(m["Subject"] for m in inst.read_mbox("mtatest-bob"))
        self.assertEqual(alice, ["via-alias", "via-team", "via-virtual"])
        self.assertEqual(bob, ["via-team"])
        # The done/ records made sure nothing repeats on a rerun.
        runner(inst, "-f")
        self.assertEqual(len(inst.read_mbox("mtatest-alice")), 3)

    def test_same_mailbox_twice_delivered_once(self):
        inst = self.inst
        enqueue(inst, "s@remote.test", ["alias1@a.example.test", "mtatest-alice@a.example.test",
                                        "team@a.example.test"], message("dedup"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pending_files(inst), [], r.stderr)
        self.assertEqual(len(inst.read_mbox("mtatest-alice")), 1)
        self.assertEqual(len(inst.read_mbox("mtatest-bob")), 1)

    def test_partial_delivery_recorded_and_not_repeated(self):
        # A message with one delivery never writes done/ID; one with several must have the
        # deliveries that went through on record once it stays queued for the rest.
        inst = self.inst
        os.mkdir(inst.mbox_path("mtatest-bob"))     # bob's mailbox cannot be written: temporary failure
        enqueue(inst, "s@remote.test", ["mtatest-alice@a.example.test", "mtatest-bob@a.example.test"],
                message("partial"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        [qid] = inst.queue_ids("deferred")
        with open(os.path.join(inst.spool, "done", qid)) as f:
            self.assertEqual(f.read(), "0\tmailbox\tmtatest-alice\n")
        self.assertEqual(len(inst.read_mbox("mtatest-alice")), 1)

        os.rmdir(inst.mbox_path("mtatest-bob"))
        r = runner(inst, "-f")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pending_files(inst), [], r.stderr)
        self.assertEqual(len(inst.read_mbox("mtatest-alice")), 1, "alice's delivery is not repeated")
        self.assertEqual(len(inst.read_mbox("mtatest-bob")), 1)
        self.assertFalse(os.path.exists(os.path.join(inst.spool, "done", qid)))

    def test_batch_into_one_mailbox_and_mixed(self):
        # Messages for one mailbox go to mta-local as one pipelined batch; a message for another
        # mailbox, one with two recipients and one for an alias list end or bypass the batch.
        inst = self.inst
        for i in range(40):
            enqueue(inst, "s@remote.test", ["mtatest-carol@a.example.test"], message(f"c{i}"))
        enqueue(inst, "s@remote.test", ["mtatest-bob@a.example.test"], message("b0"))
        enqueue(inst, "s@remote.test", ["mtatest-carol@a.example.test", "mtatest-bob@a.example.test"],
                message("both"))
        enqueue(inst, "s@remote.test", ["team@a.example.test"], message("team"))
        for i in range(40, 45):
            enqueue(inst, "s@remote.test", ["mtatest-carol@a.example.test"], message(f"c{i}"))
        r = inst.run("mta-queue", env={"MTA_QUEUE_WORKERS": "1"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pending_files(inst), [], r.stderr)
        carol = sorted(m["Subject"] for m in inst.read_mbox("mtatest-carol"))
        self.assertEqual(carol, sorted([f"c{i}" for i in range(45)] + ["both"]))
        self.assertEqual(sorted(m["Subject"] for m in inst.read_mbox("mtatest-bob")), ["b0", "both", "team"])
        self.assertEqual(sorted(m["Subject"] for m in inst.read_mbox("mtatest-alice")), ["team"])
        for m in inst.read_mbox("mtatest-carol"):
            self.assertEqual(m["Delivered-To"], "mtatest-carol@a.example.test")

    def test_killed_mid_batch_loses_nothing(self):
        inst = self.inst
        subjects = [f"k{i}" for i in range(300)]
        for s in subjects:
            enqueue(inst, "s@remote.test", ["mtatest-carol@a.example.test"], message(s, body="x" * 4000 + "\n"))
        p = subprocess.Popen([mtatest.program("mta-queue"), "-c", inst.etc], stderr=subprocess.DEVNULL,
                             start_new_session=True)
        mbox = inst.mbox_path("mtatest-carol")
        deadline = time.time() + 30
        while time.time() < deadline and (not os.path.exists(mbox) or os.path.getsize(mbox) < 100000):
            time.sleep(0.002)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        before = len(inst.read_mbox("mtatest-carol"))
        self.assertLess(before, len(subjects), "the runner was killed mid-run")
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pending_files(inst), [], r.stderr)
        got = [m["Subject"] for m in inst.read_mbox("mtatest-carol")]
        self.assertEqual(sorted(set(got)), sorted(subjects), "nothing lost")
        for m in inst.read_mbox("mtatest-carol"):
            self.assertEqual(m.get_payload(), "x" * 4000 + "\n", "no message cut short")
        dups = len(got) - len(set(got))
        print(f"killed mid-batch: {before} delivered before the kill, {dups} duplicate(s)", file=sys.stderr)
        # At most the batch each worker process had in flight repeats (LOCAL_AGENT_PIPELINE_MAX).
        self.assertLessEqual(dups, 4 * 8)

    def test_parallel_workers_deliver_once(self):
        inst = self.inst
        users = ["mtatest-alice", "mtatest-bob", "mtatest-carol"]
        for i in range(60):
            enqueue(inst, "s@remote.test", [users[i % 3] + "@a.example.test"], message(f"par{i}"))
        r = inst.run("mta-queue", env={"MTA_QUEUE_WORKERS": "3"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pending_files(inst), [], r.stderr)
        for n, u in enumerate(users):
            got = sorted(m["Subject"] for m in inst.read_mbox(u))
            self.assertEqual(got, sorted(f"par{i}" for i in range(n, 60, 3)))

    def test_dot_forward(self):
        inst = self.inst
        carol = pwd.getpwnam("mtatest-carol")
        fwd = os.path.join(carol.pw_dir, ".forward")
        with open(fwd, "w") as f:
            f.write("mtatest-bob, \\mtatest-carol\n")
        os.chown(fwd, carol.pw_uid, carol.pw_gid)
        os.chmod(fwd, 0o644)
        try:
            enqueue(inst, "s@remote.test", ["mtatest-carol@a.example.test"], message("forwarded"))
            r = runner(inst)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(pending_files(inst), [], r.stderr)
            self.assertEqual([m["Subject"] for m in inst.read_mbox("mtatest-bob")], ["forwarded"])
            self.assertEqual([m["Subject"] for m in inst.read_mbox("mtatest-carol")], ["forwarded"])
        finally:
            os.unlink(fwd)

    def test_unprivileged_runner_uses_local_socket(self):
        """The systemd arrangement: the runner runs as mta and asks a socket-activated mta-local."""
        inst = self.inst
        sock = inst.path("local.sock")
        act = subprocess.Popen(["systemd-socket-activate", "-l", sock, "--seqpacket", "--accept",
                                mtatest.program("mta-local"), "-c", inst.etc],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.time() + 10
            while not os.path.exists(sock) and time.time() < deadline:
                time.sleep(0.05)
            os.chmod(sock, 0o666)
            enqueue(inst, "s@remote.test", ["alias1@a.example.test"], message("via-socket"))
            r = inst.run("mta-queue", user="mta", env={"MTA_LOCAL_SOCKET": sock})
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(pending_files(inst), [], r.stderr)
            self.assertEqual([m["Subject"] for m in inst.read_mbox("mtatest-alice")], ["via-socket"])
        finally:
            os.killpg(act.pid, signal.SIGTERM)
            act.wait()

    def test_unprivileged_runner_without_socket_defers(self):
        """Nothing listens: the runner starts mta-local itself, which cannot become another user."""
        inst = self.inst
        qid = enqueue(inst, "s@remote.test", ["mtatest-alice@a.example.test"], message("no-socket"))
        r = inst.run("mta-queue", user="mta", env={"MTA_LOCAL_SOCKET": inst.path("nothing.sock")})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(inst.queue_ids("deferred"), [qid], r.stderr)
        self.assertEqual(inst.read_mbox("mtatest-alice"), [])

    def test_unknown_local_user_bounces_to_local_sender(self):
        inst = self.inst
        enqueue(inst, "mtatest-bob@a.example.test", ["no-such-user@a.example.test"], message("unknown"))
        r = runner(inst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pending_files(inst), [], r.stderr)
        box = inst.read_mbox("mtatest-bob")
        self.assertEqual(len(box), 1)
        self.assertEqual(box[0].get_content_type(), "multipart/report")
        self.assertIn("no-such-user@a.example.test", box[0].as_string())


@unittest.skipUnless(mtatest.is_root(), "needs root")
@unittest.skipUnless(local_ready() and mtatest.have_program("mta-smtpd"), "programs not built")
class TwoInstancesTest(unittest.TestCase):
    """Instance A relays to instance B's receiver; B delivers locally."""

    def test_relay_between_instances(self):
        mtatest.ensure_test_users()
        with mtatest.Instance(hostname="b.example.test") as b:
            b.start_smtpd()
            with mtatest.Instance(f"relayhost = [127.0.0.1]:{b.port}\n", hostname="a.example.test") as a:
                enqueue(a, "mtatest-bob@a.example.test", ["mtatest-alice@b.example.test"],
                        message("a-to-b", "across two instances\n.dot line\n"))
                r = runner(a)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(pending_files(a), [], r.stderr)
                deadline = time.time() + 10
                while not b.queue_ids("new") and time.time() < deadline:
                    time.sleep(0.1)
                r = runner(b)
                self.assertEqual(r.returncode, 0, r.stderr)
                box = b.read_mbox("mtatest-alice")
                self.assertEqual(len(box), 1)
                self.assertEqual(box[0]["Subject"], "a-to-b")
                self.assertIn(".dot line", box[0].get_payload())


NS_A = f"mtaqa{os.getpid()}"
NS_B = f"mtaqb{os.getpid()}"

PEER_SCRIPT = r"""
import asyncio, sys, time
from aiosmtpd.controller import Controller
out = sys.argv[2]
class H:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "ab") as f:
            f.write(b"%s %s\n" % (envelope.mail_from.encode(), ",".join(envelope.rcpt_tos).encode()))
        return "250 2.0.0 Ok"
c = Controller(H(), hostname=sys.argv[1], port=25, server_hostname="mx2.mx.test")
c.start()
open(out + ".ready", "w").close()
while True:
    time.sleep(1)
"""


def netns_possible():
    if not mtatest.is_root() or not shutil.which("ip") or not shutil.which("dnsmasq"):
        return False
    r = subprocess.run(["ip", "netns", "add", NS_A + "x"], capture_output=True)
    if r.returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", NS_A + "x"], capture_output=True)
    return True


@unittest.skipUnless(netns_possible(), "network namespaces or dnsmasq not available")
@unittest.skipUnless(mtatest.have_program("mta-queue"), "mta-queue not built")
class MxTest(unittest.TestCase):
    def setUp(self):
        mtatest.ensure_test_users()
        self.procs = []
        self.tmp = tempfile.mkdtemp()
        os.chmod(self.tmp, 0o755)

        def ip(*a):
            subprocess.run(["ip", *a], check=True, capture_output=True)

        ip("netns", "add", NS_A)
        ip("netns", "add", NS_B)
        ip("link", "add", "va" + NS_A[-6:], "type", "veth", "peer", "name", "vb" + NS_A[-6:])
        ip("link", "set", "va" + NS_A[-6:], "netns", NS_A)
        ip("link", "set", "vb" + NS_A[-6:], "netns", NS_B)
        ip("-n", NS_A, "addr", "add", "192.0.2.1/24", "dev", "va" + NS_A[-6:])
        # 192.0.2.11 is the preferred MX: the address exists but nothing listens (a host that is down).
        ip("-n", NS_A, "addr", "add", "192.0.2.11/24", "dev", "va" + NS_A[-6:])
        ip("-n", NS_B, "addr", "add", "192.0.2.2/24", "dev", "vb" + NS_A[-6:])
        for ns, dev in ((NS_A, "va"), (NS_B, "vb")):
            ip("-n", ns, "link", "set", dev + NS_A[-6:], "up")
            ip("-n", ns, "link", "set", "lo", "up")
        os.makedirs(f"/etc/netns/{NS_B}", exist_ok=True)
        with open(f"/etc/netns/{NS_B}/resolv.conf", "w") as f:
            f.write("nameserver 192.0.2.1\n")
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", NS_A, "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
             "--listen-address=192.0.2.1", "--bind-interfaces", "--pid-file=",
             "--mx-host=mx.test,mx1.mx.test,10", "--mx-host=mx.test,mx2.mx.test,20",
             "--host-record=mx1.mx.test,192.0.2.11", "--host-record=mx2.mx.test,192.0.2.1",
             # self.test's only MX is the sending host itself, under another name.
             "--mx-host=self.test,other-name.mx.test,10", "--host-record=other-name.mx.test,192.0.2.2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.out = os.path.join(self.tmp, "received")
        script = os.path.join(self.tmp, "peer.py")
        with open(script, "w") as f:
            f.write(PEER_SCRIPT)
        self.procs.append(subprocess.Popen(["ip", "netns", "exec", NS_A, "/usr/bin/python3", script,
                                            "192.0.2.1", self.out], stderr=subprocess.DEVNULL))
        deadline = time.time() + 15
        while not os.path.exists(self.out + ".ready") and time.time() < deadline:
            time.sleep(0.1)

    def tearDown(self):
        for p in self.procs:
            p.kill()
            p.wait()
        subprocess.run(["ip", "netns", "del", NS_A], capture_output=True)
        subprocess.run(["ip", "netns", "del", NS_B], capture_output=True)
        shutil.rmtree(f"/etc/netns/{NS_B}", ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_preferred_mx_down_next_one_receives(self):
        with mtatest.Instance("smtp_connect_timeout = 5s\n", hostname="a.example.test") as inst:
            enqueue(inst, "s@a.example.test", ["user@mx.test"], message("mx"))
            cmd = ["ip", "netns", "exec", NS_B, mtatest.program("mta-queue"), "-c", inst.etc]
            r = subprocess.run(cmd, capture_output=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(pending_files(inst), [], r.stderr)
            with open(self.out) as f:
                self.assertEqual(f.read(), "s@a.example.test user@mx.test\n")
            if not mtatest_journal():
                self.assertIn(b"relay=mx2.mx.test[192.0.2.1]:25", r.stderr)

    def test_mx_pointing_to_ourselves_is_a_loop(self):
        with mtatest.Instance(hostname="a.example.test") as inst:
            enqueue(inst, "", ["user@self.test"], message("self"))
            cmd = ["ip", "netns", "exec", NS_B, mtatest.program("mta-queue"), "-c", inst.etc]
            r = subprocess.run(cmd, capture_output=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(pending_files(inst), [], r.stderr)
            if not mtatest_journal():
                self.assertIn(b"dsn=5.4.6", r.stderr)
                self.assertIn(b"mail for self.test loops back to myself", r.stderr)

    def test_unknown_domain_bounces(self):
        with mtatest.Instance(hostname="a.example.test") as inst:
            enqueue(inst, "", ["user@nonexistent.test"], message("nx"))
            cmd = ["ip", "netns", "exec", NS_B, mtatest.program("mta-queue"), "-c", inst.etc]
            r = subprocess.run(cmd, capture_output=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            # dnsmasq without upstream answers REFUSED/NXDOMAIN: either way nothing is delivered,
            # and a null-sender message is not kept forever on a permanent error.
            self.assertFalse(os.path.exists(self.out))


if __name__ == "__main__":
    mtatest.main()
