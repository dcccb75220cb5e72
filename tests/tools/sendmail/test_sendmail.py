# SPDX-License-Identifier: MIT
"""mta-sendmail: the sendmail command line as cron, mail(1) and scripts use it.

Root writes into the queue directly (no service needed); other users go through the submission
socket, which mta-smtpd serves under systemd-socket-activate here. Envelopes are checked by reading
the queue files (format: common/queue.h).
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import mtatest

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL, EX_NOPERM = 64, 65, 67, 75, 77


def read_queue_file(path):
    """Parses a queue file into a dict: letter -> value (R: list of (status, address)).

    Strict on framing (every record ends in LF, Z must be there) so a malformed file fails the test.
    """
    with open(path, "rb") as f:
        data = f.read()
    assert data.startswith(b"MTAQ1\n"), path
    pos, out = 6, {"R": []}
    while pos < len(data):
        letter = chr(data[pos])
        colon = data.index(b":", pos)
        n = int(data[pos + 1:colon])
        value = data[colon + 1:colon + 1 + n]
        assert data[colon + 1 + n:colon + 2 + n] == b"\n", "record not terminated"
        pos = colon + 2 + n
        if letter == "R":
            out["R"].append((chr(value[0]), value[1:].decode()))
        elif letter == "M":
            out["M"] = value
        else:
            out[letter] = value.decode("utf-8", "surrogateescape")
        if letter == "Z":
            break
    assert "Z" in out, "queue file without end marker"
    return out


def split_message(content):
    head, _, body = content.partition(b"\n\n")
    headers = {}
    for line in head.decode("utf-8", "surrogateescape").replace("\n ", " ").replace("\n\t", " ").split("\n"):
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return headers, body


@unittest.skipUnless(mtatest.is_root(), "needs root (direct queue mode, test users)")
@unittest.skipUnless(mtatest.have_program("mta-sendmail"), "mta-sendmail not built")
class DirectTest(unittest.TestCase):
    """Root's submissions, written into the queue without any service running."""

    def setUp(self):
        mtatest.ensure_test_users()
        self.inst = mtatest.Instance()
        self.home = tempfile.mkdtemp(prefix="mtatest-home-")

    def tearDown(self):
        self.inst.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def sendmail(self, *args, input=b"", env=None):
        e = {"HOME": self.home, "MTA_SUBMIT_SOCKET": self.inst.path("no-such.sock")}
        e.update(env or {})
        if isinstance(input, str):
            input = input.encode()
        return self.inst.run("mta-sendmail", *args, input=input, env=e)

    def only_queued(self):
        ids = self.inst.queue_ids("new")
        self.assertEqual(len(ids), 1, ids)
        return read_queue_file(os.path.join(self.inst.spool, "new", ids[0]))

    def test_extract_recipients(self):
        msg = ("To: Alice <mtatest-alice>, \"Smith, Bob\" <mtatest-bob@example.test> (Bob)\n"
               "Cc: team: carol@other.test,\n  dave@other.test;\n"
               "Subject: hello\n\nHello there.\n")
        p = self.sendmail("-t", input=msg)
        self.assertEqual(p.returncode, 0, p.stderr)
        q = self.only_queued()
        self.assertEqual(sorted(a for _, a in q["R"]),
                         sorted(["mtatest-alice@mx.example.test", "mtatest-bob@example.test",
                                 "carol@other.test", "dave@other.test"]))
        self.assertTrue(all(s == "P" for s, _ in q["R"]))
        self.assertEqual(q["S"], "root@mx.example.test")
        self.assertEqual(q["U"], "root")
        h, body = split_message(q["M"])
        self.assertEqual(body, b"Hello there.\n")
        self.assertEqual(h["subject"], ["hello"])
        self.assertEqual(len(h["date"]), 1)
        self.assertRegex(h["message-id"][0], r"^<[0-9A-F]{20}@mx\.example\.test>$")
        self.assertRegex(h["from"][0], r"<root@mx\.example\.test>$")
        self.assertEqual(len(h["received"]), 1)
        self.assertRegex(h["received"][0], r"^by mx\.example\.test \(mta, from userid 0\)\s+id " + q["I"])
        self.assertTrue(q["M"].startswith(b"Received: "))

    def test_extract_adds_arguments(self):
        # Postfix: with -t, recipients on the command line are added to those in the headers.
        p = self.sendmail("-t", "extra@example.test", input="To: mtatest-bob@example.test\n\nx\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(a for _, a in self.only_queued()["R"]),
                         ["extra@example.test", "mtatest-bob@example.test"])

    def test_bcc_removed_recipient_kept(self):
        msg = "To: a@example.test\nBcc: secret@example.test\nSubject: s\n\nbody\n"
        p = self.sendmail("-t", input=msg)
        self.assertEqual(p.returncode, 0, p.stderr)
        q = self.only_queued()
        self.assertIn("secret@example.test", [a for _, a in q["R"]])
        self.assertNotIn(b"secret", q["M"])
        self.assertNotIn(b"Bcc", q["M"])

    def test_duplicates_once(self):
        p = self.sendmail("-t", "A@example.test", input="To: a@example.test\nCc: a@example.test\n\nx\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(self.only_queued()["R"]), 1)

    def test_lone_dot_ends_input_without_i(self):
        p = self.sendmail("x@example.test", input="Subject: d\n\nfirst\n.\nafter the dot\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        _, body = split_message(self.only_queued()["M"])
        self.assertEqual(body, b"first\n")

    def test_lone_dot_is_data_with_i_and_oi(self):
        for flag in ("-i", "-oi"):
            with self.subTest(flag=flag):
                for qid in self.inst.queue_ids("new"):
                    os.unlink(os.path.join(self.inst.spool, "new", qid))
                p = self.sendmail(flag, "x@example.test", input="Subject: d\n\nfirst\n.\n..two\nlast\n")
                self.assertEqual(p.returncode, 0, p.stderr)
                _, body = split_message(self.only_queued()["M"])
                self.assertEqual(body, b"first\n.\n..two\nlast\n")

    def test_crlf_normalized(self):
        p = self.sendmail("x@example.test", input=b"Subject: crlf\r\n\r\nline one\r\nline two")
        self.assertEqual(p.returncode, 0, p.stderr)
        q = self.only_queued()
        self.assertNotIn(b"\r", q["M"])
        self.assertTrue(q["M"].endswith(b"\n\nline one\nline two\n"), q["M"])

    def test_sender_and_full_name(self):
        p = self.sendmail("-f", "owner@lists.example.test", "-F", "List Robot", "x@example.test",
                          input="Subject: s\n\nb\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        q = self.only_queued()
        self.assertEqual(q["S"], "owner@lists.example.test")
        h, _ = split_message(q["M"])
        self.assertEqual(h["from"], ["List Robot <owner@lists.example.test>"])
        # Without -F, the NAME environment variable gives the full name.
        os.unlink(os.path.join(self.inst.spool, "new", self.inst.queue_ids("new")[0]))
        p = self.sendmail("x@example.test", input="Subject: s\n\nb\n", env={"NAME": "J. Random"})
        self.assertEqual(p.returncode, 0, p.stderr)
        h, _ = split_message(self.only_queued()["M"])
        self.assertEqual(h["from"], ['"J. Random" <root@mx.example.test>'])
        # -fADDR attached, <> for the null sender; an existing From: is kept.
        os.unlink(os.path.join(self.inst.spool, "new", self.inst.queue_ids("new")[0]))
        p = self.sendmail("-f<>", "x@example.test", input="From: Me <me@example.test>\n\nb\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        q = self.only_queued()
        self.assertEqual(q["S"], "")
        h, _ = split_message(q["M"])
        self.assertEqual(h["from"], ["Me <me@example.test>"])

    def test_cron_style(self):
        # Debian's cron runs "sendmail -FCronDaemon -i -B8BITMIME -oem USER" with a minimal
        # environment and its own From:/To:/Subject: headers.
        env = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "LOGNAME": "root", "HOME": self.home,
               "MTA_CONFIG_DIR": self.inst.etc}
        msg = ("From: root (Cron Daemon)\nTo: mtatest-alice\nSubject: Cron <root@host> /usr/bin/job\n"
               "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
               "Content-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\n\n"
               "job output: caf\u00e9\n")
        p = subprocess.run([mtatest.program("mta-sendmail"), "-FCronDaemon", "-i", "-B8BITMIME", "-oem",
                            "mtatest-alice"], input=msg.encode(), capture_output=True, env=env,
                           stdin=None, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout + p.stderr, b"", "cron mails any output back: there must be none")
        q = self.only_queued()
        self.assertEqual([a for _, a in q["R"]], ["mtatest-alice@mx.example.test"])
        self.assertEqual(q.get("E"), "BODY=8BITMIME")
        h, body = split_message(q["M"])
        self.assertEqual(h["from"], ["root (Cron Daemon)"])
        self.assertEqual(h["subject"], ["Cron <root@host> /usr/bin/job"])
        self.assertEqual(body, "job output: caf\u00e9\n".encode())

    def test_mailx(self):
        mail = shutil.which("mail") or shutil.which("bsd-mailx")
        if not mail:
            self.skipTest("bsd-mailx not installed")
        rc = os.path.join(self.home, "mailrc")
        with open(rc, "w") as f:
            f.write(f"set sendmail={mtatest.program('mta-sendmail')}\nset sendwait\n")
        env = dict(os.environ, MAILRC=rc, HOME=self.home, MTA_CONFIG_DIR=self.inst.etc)
        p = subprocess.run([mail, "-s", "greetings from mailx", "mtatest-bob"], input=b"Hi Bob.\n",
                           capture_output=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        q = self.only_queued()
        self.assertEqual([a for _, a in q["R"]], ["mtatest-bob@mx.example.test"])
        h, body = split_message(q["M"])
        self.assertEqual(h["subject"], ["greetings from mailx"])
        self.assertIn("date", h)
        self.assertIn("message-id", h)
        self.assertIn(b"Hi Bob.", body)

    def test_no_recipients(self):
        p = self.sendmail("-t", input="Subject: nobody\n\nlost?\n")
        self.assertEqual(p.returncode, EX_USAGE)
        self.assertIn(b"No recipient addresses found in message header", p.stderr)
        self.assertEqual(self.inst.queue_ids("new"), [])
        # Not lost: it is in ~/dead.letter.
        with open(os.path.join(self.home, "dead.letter"), "rb") as f:
            self.assertIn(b"lost?", f.read())
        p = self.sendmail(input="Subject: s\n\nb\n")
        self.assertEqual(p.returncode, EX_USAGE)

    def test_bad_recipient_syntax(self):
        for bad in ("bad\x01addr@example.test", '"unclosed@example.test', "x" * 300 + "@example.test"):
            p = self.sendmail(bad, input="x\n")
            self.assertEqual(p.returncode, EX_USAGE, p.stderr)
            self.assertIn(b"Bad recipient address on the command line", p.stderr)
        p = self.sendmail("-t", input="To: \"unclosed@example.test\n\nx\n")
        self.assertEqual(p.returncode, EX_DATAERR, p.stderr)
        self.assertEqual(self.inst.queue_ids("new"), [])

    def test_options(self):
        for args in (["-bz"], ["-Z"], ["-B", "9BIT"], ["-f"]):
            with self.subTest(args=args):
                p = self.sendmail(*args)
                self.assertEqual(p.returncode, EX_USAGE, p.stderr)
        # Legacy options are accepted and ignored.
        p = self.sendmail("-oem", "-odb", "-c", "-m", "-n", "-x", "-N", "never", "-R", "hdrs", "-V", "env1",
                          "-bm", "-oA/none", "-h", "5", "-v", "x@example.test", input="Subject: s\n\nb\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"Queued as", p.stderr)
        self.assertEqual(len(self.inst.queue_ids("new")), 1)

    def test_message_size_limit(self):
        self.inst.write_main_cf("message_size_limit = 1000\n")
        p = self.sendmail("x@example.test", input="Subject: big\n\n" + "x" * 2000 + "\n")
        self.assertEqual(p.returncode, EX_DATAERR, p.stderr)
        self.assertIn(b"message_size_limit", p.stderr)
        self.assertEqual(self.inst.queue_ids("new"), [])

    def test_queue_unwritable_tempfail(self):
        self.inst.write_main_cf(f"queue_directory = {self.inst.path('missing', 'spool')}\n")
        p = self.sendmail("x@example.test", input="Subject: s\n\nkeep me\n")
        self.assertEqual(p.returncode, EX_TEMPFAIL, p.stderr)
        self.assertIn(b"dead.letter", p.stderr)
        with open(os.path.join(self.home, "dead.letter"), "rb") as f:
            self.assertIn(b"keep me", f.read())

    def test_local_smtp_session(self):
        # -bs as root with no submission socket: our own small SMTP server on stdin/stdout.
        dialogue = ("EHLO client\r\nMAIL FROM:<root>\r\nRCPT TO:<mtatest-carol>\r\n"
                    "RCPT TO:<bad address>\r\nDATA\r\nSubject: smtp\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
        p = self.sendmail("-bs", input=dialogue)
        self.assertEqual(p.returncode, 0, p.stderr)
        codes = [line[:3] for line in p.stdout.decode().split("\r\n") if line[3:4] == " "]
        self.assertEqual(codes, ["220", "250", "250", "250", "501", "354", "250", "221"], p.stdout)
        q = self.only_queued()
        self.assertEqual(q["S"], "root@mx.example.test")
        self.assertEqual([a for _, a in q["R"]], ["mtatest-carol@mx.example.test"])
        self.assertEqual(q["P"], "ESMTP")
        _, body = split_message(q["M"])
        self.assertEqual(body, b".dot\n")

    def test_flush_delivers(self):
        # sendmail -q runs "mtactl flush", which runs the queue itself without systemd.
        for name in ("mtactl", "mta-queue", "mta-local"):
            if not mtatest.have_program(name):
                self.skipTest(f"{name} not built")
        self.inst.write_main_cf("alias_maps =\nvirtual_alias_maps =\n")
        p = self.sendmail("mtatest-alice", input="Subject: flushed\n\nhello alice\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(self.inst.queue_ids("new")), 1)
        path = ":".join(os.path.dirname(mtatest.program(n)) for n in ("mtactl", "mta-queue", "mta-local"))
        p = self.sendmail("-q", env={"PATH": path + ":" + os.environ.get("PATH", "")})
        self.assertEqual(p.returncode, 0, p.stderr)
        msgs = self.inst.read_mbox("mtatest-alice")
        self.assertEqual(len(msgs), 1, p.stderr)
        self.assertEqual(msgs[0]["Subject"], "flushed")
        self.assertEqual(msgs[0]["Return-Path"], "<root@mx.example.test>")
        self.assertEqual(self.inst.queue_ids("new"), [])

    def test_invoked_as_newaliases_and_mailq(self):
        if not (mtatest.have_program("mta-alias") and mtatest.have_program("mtactl")):
            self.skipTest("mta-alias or mtactl not built")
        bindir = tempfile.mkdtemp(prefix="mtatest-bin-")
        self.addCleanup(shutil.rmtree, bindir, ignore_errors=True)
        for name in ("newaliases", "mailq"):
            os.symlink(mtatest.program("mta-sendmail"), os.path.join(bindir, name))
        path = ":".join([os.path.dirname(mtatest.program("mta-alias")),
                         os.path.dirname(mtatest.program("mtactl")), os.environ.get("PATH", "")])
        env = dict(os.environ, PATH=path, MTA_CONFIG_DIR=self.inst.etc, HOME=self.home)
        with open(os.path.join(self.inst.etc, "aliases"), "w") as f:
            f.write("postmaster: root\n")
        p = subprocess.run([os.path.join(bindir, "newaliases")], capture_output=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.inst.etc, "aliases.db")))
        p = self.sendmail("x@example.test", input="Subject: q\n\nb\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        qid = self.inst.queue_ids("new")[0]
        p = subprocess.run([os.path.join(bindir, "mailq")], capture_output=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(qid.encode(), p.stdout)
        self.assertIn(b"x@example.test", p.stdout)
        # The same listing as mtactl's (one formatter, common/mailq.c).
        q = subprocess.run([mtatest.program("mtactl"), "-c", self.inst.etc, "queue"], capture_output=True,
                           env=env, timeout=60)
        self.assertEqual(p.stdout, q.stdout)


def wait_for_unix_socket(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        time.sleep(0.02)
    raise TimeoutError(f"no socket at {path}")


@unittest.skipUnless(mtatest.is_root(), "needs root (test users)")
@unittest.skipUnless(mtatest.have_program("mta-sendmail"), "mta-sendmail not built")
class SocketTest(unittest.TestCase):
    """Users other than root go through the submission socket, served by mta-smtpd."""

    def setUp(self):
        mtatest.ensure_test_users()
        self.inst = mtatest.Instance()
        self.alice = pwd.getpwnam("mtatest-alice")
        self.home = tempfile.mkdtemp(prefix="mtatest-home-")
        os.chown(self.home, self.alice.pw_uid, self.alice.pw_gid)
        self.sock = self.inst.path("submit.sock")

    def tearDown(self):
        self.inst.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def start_submit_service(self):
        if not mtatest.have_program("mta-smtpd"):
            self.skipTest("mta-smtpd not built")
        log = open(self.inst.path("smtpd.log"), "ab")
        p = subprocess.Popen(["systemd-socket-activate", "-l", self.sock, "--fdname=submit",
                              mtatest.program("mta-smtpd"), "-c", self.inst.etc],
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.inst.procs.append(p)
        wait_for_unix_socket(self.sock)
        # systemd's socket unit sets SocketMode=0666; systemd-socket-activate has no such option.
        os.chmod(self.sock, 0o666)

    def smtpd_log(self):
        with open(self.inst.path("smtpd.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def as_alice(self, *args, input=b""):
        env = {"HOME": self.home, "MTA_SUBMIT_SOCKET": self.sock, "USER": "mtatest-alice",
               "LOGNAME": "mtatest-alice"}
        if isinstance(input, str):
            input = input.encode()
        return self.inst.run("mta-sendmail", *args, input=input, env=env, user="mtatest-alice")

    def dead_letter(self):
        path = os.path.join(self.home, "dead.letter")
        if not os.path.exists(path):
            return b""
        with open(path, "rb") as f:
            return f.read()

    def test_system_down(self):
        # Nothing listens: the message is not accepted, the caller hears so (75), and the text is
        # kept in ~/dead.letter.
        p = self.as_alice("mtatest-bob", input="Subject: down\n\nplease keep\n")
        self.assertEqual(p.returncode, EX_TEMPFAIL, p.stderr)
        self.assertIn(b"Cannot reach the mail submission service", p.stderr)
        self.assertIn(b"not accepted", p.stderr)
        self.assertIn(b"please keep", self.dead_letter())
        self.assertEqual(os.stat(os.path.join(self.home, "dead.letter")).st_uid, self.alice.pw_uid)
        # -bs says 421 to the SMTP client.
        p = self.as_alice("-bs", input="EHLO x\r\nQUIT\r\n")
        self.assertEqual(p.returncode, EX_TEMPFAIL)
        self.assertTrue(p.stdout.startswith(b"421 "), p.stdout)

    def test_user_submission(self):
        self.start_submit_service()
        p = self.as_alice("-t", input="To: mtatest-bob\nSubject: via socket\n\nhi\n")
        self.assertEqual(p.returncode, 0, p.stderr + self.smtpd_log().encode())
        ids = self.inst.queue_ids("new")
        self.assertEqual(len(ids), 1)
        q = read_queue_file(os.path.join(self.inst.spool, "new", ids[0]))
        self.assertEqual(q["S"], "mtatest-alice@mx.example.test")
        self.assertEqual(q.get("U"), "mtatest-alice")
        self.assertEqual([a for _, a in q["R"]], ["mtatest-bob@mx.example.test"])
        h, body = split_message(q["M"])
        self.assertIn("mtatest-alice@mx.example.test", h["from"][0])
        self.assertEqual(body, b"hi\n")

    def test_user_cannot_forge_root(self):
        self.start_submit_service()
        p = self.as_alice("-f", "root", "mtatest-bob", input="Subject: forged\n\nI am root\n")
        self.assertEqual(p.returncode, EX_NOPERM, p.stderr + self.smtpd_log().encode())
        self.assertIn(b"Sender address <root@mx.example.test> rejected: 553", p.stderr)
        for sub in ("new", "incoming", "deferred"):
            for qid in self.inst.queue_ids(sub):
                q = read_queue_file(os.path.join(self.inst.spool, sub, qid))
                self.assertNotEqual(q["S"], "root@mx.example.test")
        self.assertIn(b"I am root", self.dead_letter())

    def test_mailq_needs_privilege(self):
        # The queue belongs to mail_owner (mode 0700): a user is told so, with EX_NOPERM.
        p = self.inst.run("mta-sendmail", "x@example.test", input=b"Subject: s\n\nb\n",
                          env={"HOME": self.home})
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.inst.run("mta-sendmail", "-bp")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(self.inst.queue_ids("new")[0].encode(), p.stdout)
        p = self.as_alice("-bp")
        self.assertEqual(p.returncode, EX_NOPERM, p.stderr)
        self.assertIn(b"Cannot read the queue", p.stderr)

    def test_recipient_limit_and_unknown_user(self):
        # The receiver takes 2 recipients per transaction (452 4.5.3 for more): the rest go in
        # further transactions. An unknown local user is refused: EX_NOUSER, the others get it.
        self.inst.write_main_cf("smtpd_recipient_limit = 2\n")
        self.start_submit_service()
        rcpts = ["a@other.test", "b@other.test", "c@other.test", "nosuchuser", "e@other.test"]
        p = self.as_alice(*rcpts, input="Subject: many\n\nbody\n")
        self.assertEqual(p.returncode, EX_NOUSER, p.stderr)
        self.assertIn(b"Recipient address <nosuchuser@mx.example.test> rejected: 550", p.stderr)
        got = []
        for qid in self.inst.queue_ids("new"):
            q = read_queue_file(os.path.join(self.inst.spool, "new", qid))
            self.assertLessEqual(len(q["R"]), 2)
            got += [a for _, a in q["R"]]
        self.assertEqual(sorted(got), ["a@other.test", "b@other.test", "c@other.test", "e@other.test"])
        self.assertIn(b"Subject: many", self.dead_letter())

    def test_user_smtp_relay(self):
        self.start_submit_service()
        dialogue = ("EHLO client\r\nMAIL FROM:<mtatest-alice@mx.example.test>\r\n"
                    "RCPT TO:<mtatest-carol@mx.example.test>\r\nDATA\r\nSubject: bs\r\n\r\nvia -bs\r\n.\r\n"
                    "QUIT\r\n")
        p = self.as_alice("-bs", input=dialogue)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"\r\n221", p.stdout)
        ids = self.inst.queue_ids("new")
        self.assertEqual(len(ids), 1, p.stdout)
        q = read_queue_file(os.path.join(self.inst.spool, "new", ids[0]))
        self.assertEqual(q.get("U"), "mtatest-alice")


if __name__ == "__main__":
    mtatest.main()
