# SPDX-License-Identifier: MIT
"""mta-smtpd: the SMTP dialogue, reply by reply, and what ends up in the queue."""

import os
import smtplib
import subprocess
import time
import unittest

import mtatest
from smtpdtest import SmtpdCase, body_of, swaks

ALICE = "mtatest-alice@example.test"
BOB = "mtatest-bob@example.test"


class Protocol(SmtpdCase):
    MAIN_CF = "message_size_limit = 100000\nsmtpd_recipient_limit = 5\nrecipient_delimiter = +\n"

    def test_banner_and_ehlo(self):
        r = self.raw(greet=False)
        last, _ = r.reply()
        self.assertEqual(last, "220 mx.example.test ESMTP mta")
        r.send("EHLO client.example\r\n")
        last, lines = r.reply()
        self.assertEqual(lines[0], "250-mx.example.test")
        keywords = [line[4:] for line in lines[1:]]
        for kw in ("PIPELINING", "SIZE 100000", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "CHUNKING",
                   "VRFY"):
            self.assertIn(kw, keywords)
        self.assertNotIn("STARTTLS", keywords)   # no certificate configured
        r.send("HELO client.example\r\n")
        r.expect("250 mx.example.test")
        r.send("EHLO\r\n")
        r.expect("501 Syntax: EHLO hostname")
        r.send("HELO\r\n")
        r.expect("501 Syntax: HELO hostname")

    def test_simple_commands(self):
        r = self.raw()
        for cmd, want in (("NOOP", "250 2.0.0 Ok"), ("RSET", "250 2.0.0 Ok"), ("rset", "250 2.0.0 Ok"),
                          ("VRFY root", "252 2.0.0"), ("VRFY mtatest-alice", "252 2.0.0"),
                          ("VRFY", "501 5.5.4 Syntax: VRFY address"), ("HELP", "214 2.0.0"),
                          ("EXPN staff", "502 5.5.2 Error: command not recognized"),
                          ("AUTH PLAIN AAAA", "502 5.5.2 Error: command not recognized"),
                          ("FOO", "502 5.5.2 Error: command not recognized"),
                          ("RSET x", "501 5.5.4 Syntax: RSET"),
                          ("STARTTLS", "502 5.5.1 Error: command not implemented")):
            r.send(cmd + "\r\n")
            r.expect(want)
        # VRFY discloses nothing: the same answer for a user that exists and one that does not.
        r.send("VRFY nosuchuser\r\nVRFY root\r\n")
        a, b = r.expect("252 ", "252 ")
        self.assertEqual(a, b)
        r.send("QUIT\r\n")
        r.expect("221 2.0.0 Bye")
        self.assertTrue(r.closed())

    def test_sequence_errors(self):
        r = self.raw()
        r.send("RCPT TO:<%s>\r\n" % ALICE)
        r.expect("503 5.5.1 Error: need MAIL command")
        r.send("DATA\r\n")
        r.expect("503 5.5.1 Error: need MAIL command")
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\n")
        r.expect("250 ", "250 2.1.0 Ok")
        r.send("MAIL FROM:<a@example.org>\r\n")
        r.expect("503 5.5.1 Error: nested MAIL command")
        r.send("DATA\r\n")
        r.expect("503 5.5.1 Error: need RCPT command")
        r.send("DATA x\r\n")
        r.expect("501 5.5.4 Syntax: DATA")
        r.send("RCPT TO:<nosuchuser@example.test>\r\nDATA\r\n")
        r.expect("550 5.1.1 <nosuchuser@example.test>: Recipient address rejected: User unknown in local "
                 "recipient table", "554 5.5.1 Error: no valid recipients")

    def test_syntax_errors(self):
        r = self.raw()
        r.send("EHLO c\r\n")
        r.expect("250 ")
        for cmd, want in (("MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>"),
                          ("MAIL TO:<a@b>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
                          ("MAIL FROM:<a@b", "501 5.1.7 Bad sender address syntax"),
                          ("MAIL FROM:<a@b> SIZE=x", "501 5.5.4 Bad message size syntax"),
                          ("MAIL FROM:<a@b> BODY=BINARYMIME", "501 5.5.4 Bad BODY keyword syntax"),
                          ("MAIL FROM:<a@b> FOO=BAR", "555 5.5.4 Unsupported option: FOO=BAR"),
                          ("MAIL FROM:<a@b> SIZE=100001", "552 5.3.4 Message size exceeds fixed limit"),
                          ("MAIL FROM:<a@b> SIZE=100000 BODY=8BITMIME SMTPUTF8", "250 2.1.0 Ok"),
                          ("RCPT", "501 5.5.4 Syntax: RCPT TO:<address>"),
                          ("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax"),
                          ("RCPT TO:<a b@c>", "501 5.1.3 Bad recipient address syntax"),
                          ("RCPT TO:<%s> NOTIFY=NEVER" % ALICE, "555 5.5.4 Unsupported option: NOTIFY=NEVER"),
                          ("RCPT TO:<%s>" % ALICE, "250 2.1.5 Ok")):
            r.send(cmd + "\r\n")
            r.expect(want)

    def test_message_queued(self):
        before = self.queued()
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            code, _ = s.mail("sender@example.org", ["BODY=8BITMIME"])
            self.assertEqual(code, 250)
            self.assertEqual(s.rcpt(ALICE)[0], 250)
            self.assertEqual(s.rcpt("mtatest-bob+ext@example.test")[0], 250)
            code, text = s.data(b"Subject: test\r\n\r\nline one\r\n.leading dot\r\n\xc3\xa9t\xc3\xa9\r\n")
            self.assertEqual(code, 250)
            self.assertRegex(text.decode(), r"^2\.0\.0 Ok: queued as [0-9A-F]{20}$")
            qid = text.decode().split()[-1]
        msgs = self.new_messages(before)
        self.assertEqual(len(msgs), 1)
        m = msgs[0]
        self.assertEqual(m["id"], qid)
        self.assertEqual(m["sender"], "sender@example.org")
        self.assertEqual(m["recipients"], [("P", ALICE), ("P", "mtatest-bob+ext@example.test")])
        self.assertEqual(m["client"], "127.0.0.1")
        self.assertEqual(m["helo"], "client.example")
        self.assertEqual(m["protocol"], "ESMTP")
        self.assertEqual(m["esmtp"], "BODY=8BITMIME")
        self.assertLessEqual(abs(m["arrival"] - time.time()), 60)
        self.assertEqual(body_of(m), b"Subject: test\n\nline one\n.leading dot\n\xc3\xa9t\xc3\xa9\n")
        hdr = m["content"].split(b"\nSubject:")[0].decode()
        self.assertRegex(hdr, r"^Received: from client\.example \(unknown \[127\.0\.0\.1\]\)\n"
                              r"\tby mx\.example\.test \(mta\) with ESMTP id " + qid + r";\n\t\w{3}, ")
        self.assertNoIncoming()

    def test_received_for_single_recipient(self):
        before = self.queued()
        with self.inst.smtp() as s:
            s.helo("h.example")
            s.sendmail("", [ALICE], b"Subject: x\r\n\r\nx\r\n")
        m = self.new_messages(before)[0]
        self.assertEqual(m["sender"], "")
        self.assertEqual(m["protocol"], "SMTP")
        self.assertIn(b"\tfor <%s>; " % ALICE.encode(), m["content"])

    def test_rset_and_second_transaction(self):
        before = self.queued()
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nRSET\r\n" % ALICE)
        r.expect("250 ", "250 2.1.0", "250 2.1.5", "250 2.0.0 Ok")
        r.send("RCPT TO:<%s>\r\n" % ALICE)
        r.expect("503 5.5.1 Error: need MAIL command")
        r.send("MAIL FROM:<b@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % BOB)
        r.expect("250 2.1.0", "250 2.1.5", "354 End data with <CR><LF>.<CR><LF>")
        r.send("one\r\n.\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % ALICE)
        r.expect("250 2.0.0 Ok: queued as ", "250 2.1.0", "250 2.1.5", "354 ")
        r.send("two\r\n.\r\nQUIT\r\n")
        r.expect("250 2.0.0 Ok: queued as ", "221 2.0.0 Bye")
        msgs = self.new_messages(before)
        self.assertEqual(sorted(m["sender"] for m in msgs), ["b@example.org", "c@example.org"])
        self.assertEqual(sorted(body_of(m) for m in msgs), [b"one\n", b"two\n"])

    def test_size_limit_during_data(self):
        before = self.queued()
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % ALICE)
        r.expect("250 ", "250 2.1.0", "250 2.1.5", "354 ")
        r.send(("x" * 998 + "\r\n") * 120 + ".\r\n")
        r.expect("552 5.3.4 Message size exceeds fixed limit")
        # The session goes on, with a fresh transaction.
        r.send("RCPT TO:<%s>\r\nNOOP\r\n" % ALICE)
        r.expect("503 5.5.1 Error: need MAIL command", "250 2.0.0 Ok")
        self.assertEqual(self.new_messages(before), [])
        self.assertNoIncoming()

    def test_recipient_limit(self):
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\n")
        r.expect("250 ", "250 2.1.0")
        for i in range(5):
            r.send("RCPT TO:<%s>\r\n" % ALICE)
            r.expect("250 2.1.5 Ok")
        r.send("RCPT TO:<%s>\r\n" % BOB)
        r.expect("452 4.5.3 Error: too many recipients")

    def test_unknown_users_and_relay_from_mynetworks(self):
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\n")
        r.expect("250 ", "250 2.1.0")
        r.send("RCPT TO:<nosuchuser@example.test>\r\n")
        r.expect("550 5.1.1 <nosuchuser@example.test>: Recipient address rejected: User unknown in local "
                 "recipient table")
        r.send("RCPT TO:<NoSuchUser@MX.EXAMPLE.TEST>\r\n")
        r.expect("550 5.1.1 ")
        # 127.0.0.1 is in mynetworks: relaying is allowed.
        r.send("RCPT TO:<someone@remote.example>\r\n")
        r.expect("250 2.1.5 Ok")

    def test_pipelined_session_in_one_write(self):
        before = self.queued()
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<p@example.org>\r\nRCPT TO:<%s>\r\nRCPT TO:<nouser@example.test>\r\n"
               "RCPT TO:<%s>\r\nDATA\r\n" % (ALICE, BOB))
        r.expect("250 ", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354 ")
        r.send("Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        r.expect("250 2.0.0 Ok: queued as", "221 ")
        m = self.new_messages(before)
        self.assertEqual(len(m), 1)
        self.assertEqual([a for _, a in m[0]["recipients"]], [ALICE, BOB])

    def test_bdat(self):
        before = self.queued()
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<%s>\r\n" % ALICE)
        r.expect("250 ", "250 2.1.0", "250 2.1.5")
        chunk1 = b"Subject: bdat\r\n\r\nline\r\n.not stuffed\r"
        chunk2 = b"\nQUIT\r\n"
        r.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
        r.expect("250 2.0.0 Ok: %d bytes" % len(chunk1))
        r.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
        r.expect("250 2.0.0 Ok: queued as ")
        r.send("NOOP\r\n")
        r.expect("250 2.0.0 Ok")
        m = self.new_messages(before)
        self.assertEqual(len(m), 1)
        self.assertEqual(body_of(m[0]), b"Subject: bdat\n\nline\n.not stuffed\nQUIT\n")
        # DATA after BDAT in the same transaction, BDAT 0 LAST.
        r.send("MAIL FROM:<b@example.org>\r\nRCPT TO:<%s>\r\nBDAT 3\r\nabcDATA\r\n" % ALICE)
        r.expect("250 2.1.0", "250 2.1.5", "250 2.0.0 Ok: 3 bytes", "503 5.5.1 Error: DATA after BDAT")
        r.send("BDAT 0 LAST\r\n")
        r.expect("250 2.0.0 Ok: queued as ")

    def test_bdat_refused_chunk_is_skipped(self):
        before = self.queued()
        r = self.raw()
        evil = b"MAIL FROM:<e@example.org>\r\nRCPT TO:<%s>\r\n" % ALICE.encode()
        r.send(b"EHLO c\r\nBDAT %d\r\n" % len(evil) + evil + b"NOOP\r\n")
        # The chunk's bytes are data, never commands, even when the BDAT itself is refused.
        r.expect("250 ", "503 5.5.1 Error: need MAIL command", "250 2.0.0 Ok")
        r.send("BDAT x\r\n")
        r.expect("501 5.5.4 Syntax: BDAT count [LAST]")
        self.assertTrue(r.closed())
        self.assertEqual(self.new_messages(before), [])

    def test_dropped_before_dot_queues_nothing(self):
        before = self.queued()
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % ALICE)
        r.expect("250 ", "250 ", "250 ", "354 ")
        r.send("Subject: lost\r\n\r\n" + "text\r\n" * 10000)
        r.close()
        time.sleep(0.3)
        self.assertEqual(self.new_messages(before), [])
        self.assertNoIncoming()

    def test_swaks_pipeline(self):
        if not swaks():
            self.skipTest("swaks missing")
        before = self.queued()
        p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.inst.port), "--pipeline",
                            "--from", "sw@example.org", "--to", ALICE, "--helo", "swaks.example",
                            "--header", "Subject: swaks"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("250 2.0.0 Ok: queued as", p.stdout)
        m = self.new_messages(before)
        self.assertEqual(len(m), 1)
        self.assertIn(b"Subject: swaks", m[0]["content"])

    def test_smtplib_sendmail_many(self):
        before = self.queued()
        with self.inst.smtp() as s:
            for i in range(20):
                s.sendmail("many@example.org", [ALICE], b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
        self.assertEqual(len(self.new_messages(before)), 20)

    def test_log_lines(self):
        r = self.raw()
        r.send("EHLO logtest\r\nMAIL FROM:<log@example.org>\r\nRCPT TO:<nolog@example.test>\r\nQUIT\r\n")
        r.expect("250 ", "250 ", "550 ", "221 ")
        r.closed()
        time.sleep(0.3)
        with open(self.inst.path("smtpd.log"), errors="replace") as f:
            log = f.read()
        self.assertIn("connect from unknown[127.0.0.1]", log)
        self.assertIn("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 550 5.1.1 <nolog@example.test>: Recipient "
                      "address rejected: User unknown in local recipient table; from=<log@example.org> "
                      "to=<nolog@example.test> proto=ESMTP helo=<logtest>", log)
        self.assertRegex(log, r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=0/1 quit=1 "
                              r"commands=3/4")


class RelayFromOutside(SmtpdCase):
    """127.0.0.1 is not in mynetworks here, so the receiver must refuse to relay."""
    MAIN_CF = "mynetworks = 192.0.2.0/24\n"

    def test_relay_denied_deferred(self):
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<victim@remote.example>\r\n")
        r.expect("250 ", "250 2.1.0", "454 4.7.1 <victim@remote.example>: Relay access denied")

    def test_relay_tricks(self):
        before = self.queued()
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\n")
        r.expect("250 ", "250 2.1.0")
        for addr in ("victim%remote.example@example.test", '"victim@remote.example"@example.test',
                     "victim@remote.example@example.test", "remote.example!victim@example.test",
                     "@example.test:victim@remote.example", "@example.test,@mx.example.test:victim@remote.example",
                     "victim@[192.0.2.99]", "victim@remote.example."):
            r.send("RCPT TO:<%s>\r\n" % addr)
            last, _ = r.reply()
            self.assertRegex(last, r"^(550 5\.1\.1|454 4\.7\.1|501 5\.1\.3) ", addr)
        r.send("DATA\r\n")
        r.expect("554 5.5.1 Error: no valid recipients")
        self.assertEqual(self.new_messages(before), [])

    def test_local_delivery_still_accepted(self):
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<%s>\r\n" % ALICE)
        r.expect("250 ", "250 2.1.0", "250 2.1.5 Ok")


class RelayRejected(SmtpdCase):
    MAIN_CF = "mynetworks = 192.0.2.0/24\nsmtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"

    def test_relay_denied_rejected(self):
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<victim@remote.example>\r\n")
        r.expect("250 ", "250 2.1.0", "554 5.7.1 <victim@remote.example>: Relay access denied")


class Tarpit(SmtpdCase):
    MAIN_CF = "smtpd_soft_error_limit = 2\nsmtpd_error_sleep_time = 1s\nsmtpd_hard_error_limit = 6\n"

    def test_errors_beyond_the_soft_limit_are_slowed_down(self):
        r = self.raw()
        t0 = time.monotonic()
        r.send("FOO\r\nFOO\r\nNOOP\r\n")
        r.expect("502 ", "502 ", "250 2.0.0 Ok")
        self.assertLess(time.monotonic() - t0, 0.9)
        r.send("FOO\r\nFOO\r\nFOO\r\nFOO\r\nNOOP\r\n")
        r.expect("502 ", "502 ", "502 ", "502 ", "421 4.7.0 mx.example.test Error: too many errors")
        self.assertGreater(time.monotonic() - t0, 3.5)


class ConnectionLimit(SmtpdCase):
    MAIN_CF = "mynetworks = 192.0.2.0/24\nsmtpd_client_connection_count_limit = 3\n"

    def test_too_many_connections_from_one_client(self):
        conns = [self.raw() for _ in range(3)]
        extra = self.raw(greet=False)
        extra.expect("421 4.7.0 mx.example.test Error: too many connections from 127.0.0.1")
        self.assertTrue(extra.closed())
        conns[0].send("QUIT\r\n")
        conns[0].expect("221 ")
        self.assertTrue(conns[0].closed())
        time.sleep(0.2)
        again = self.raw()
        again.send("NOOP\r\n")
        again.expect("250 2.0.0 Ok")


class Limits(SmtpdCase):
    MAIN_CF = "smtpd_hard_error_limit = 3\nsmtpd_timeout = 2s\nline_length_limit = 1000\n"

    def test_too_many_errors(self):
        r = self.raw()
        r.send("FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n")
        r.expect("502 ", "502 ", "502 ", "421 4.7.0 mx.example.test Error: too many errors")
        self.assertTrue(r.closed())

    def test_timeout(self):
        r = self.raw()
        t0 = time.monotonic()
        r.expect("421 4.4.2 mx.example.test Error: timeout exceeded")
        self.assertTrue(r.closed())
        self.assertGreater(time.monotonic() - t0, 1.5)

    def test_slow_trickle_command(self):
        # One byte a second never completes a command within smtpd_timeout.
        r = self.raw()
        t0 = time.monotonic()
        got = None
        for ch in "NOOP NOOP NOOP NOOP NOOP\r\n":
            try:
                r.send(ch)
            except OSError:
                break
            time.sleep(0.5)
            r.sock.settimeout(0.01)
            try:
                data = r.sock.recv(4096)
                if data:
                    got = data
                    break
            except OSError:
                pass
        self.assertIsNotNone(got)
        self.assertTrue(got.startswith(b"421 4.4.2"), got)
        self.assertLess(time.monotonic() - t0, 6)

    def test_long_command_line(self):
        r = self.raw()
        r.send("NOOP " + "x" * 5000 + "\r\nNOOP\r\n")
        r.expect("500 5.5.2 Error: line too long", "250 2.0.0 Ok")

    def test_long_text_lines_kept_whole(self):
        before = self.queued()
        line = b"y" * 9000
        with self.inst.smtp() as s:
            s.sendmail("a@example.org", [ALICE], b"Subject: long\r\n\r\n" + line + b"\r\n.dot" + b"z" * 3000 +
                       b"\r\nend\r\n")
        m = self.new_messages(before)
        self.assertEqual(body_of(m[0]), b"Subject: long\n\n" + line + b"\n.dot" + b"z" * 3000 + b"\nend\n")


if __name__ == "__main__":
    mtatest.main()
