# SPDX-License-Identifier: MIT
"""mta-smtpd: STARTTLS with a certificate made at test time; security levels; the CVE-2011-0411 class."""

import os
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import time
import unittest

import mtatest
from smtpdtest import Raw, SmtpdCase, body_of, make_cert, start_smtpd, swaks

ALICE = "mtatest-alice@example.test"


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def starttls(r):
    """Upgrades a Raw connection after the 220 reply was read."""
    assert r.buf == b"", r.buf
    r.sock = client_context().wrap_socket(r.sock)
    return r


class TlsMay(SmtpdCase):
    TLS = True
    MAIN_CF = "smtpd_tls_security_level = may\n"

    def test_ehlo_offers_starttls(self):
        r = self.raw()
        r.send("EHLO c\r\n")
        _, lines = r.reply()
        self.assertIn("250-STARTTLS", lines)

    def test_smtplib_starttls(self):
        before = self.queued()
        with self.inst.smtp() as s:
            s.ehlo("tls.example")
            s.starttls(context=client_context())
            s.ehlo("tls.example")
            self.assertNotIn("starttls", s.esmtp_features)
            s.sendmail("t@example.org", [ALICE], b"Subject: tls\r\n\r\nsecret\r\n")
        m = self.new_messages(before)
        self.assertEqual(len(m), 1)
        self.assertEqual(m[0]["protocol"], "ESMTPS")
        self.assertIn(b" with ESMTPS id ", m[0]["content"])
        self.assertEqual(body_of(m[0]), b"Subject: tls\n\nsecret\n")

    def test_swaks_tls(self):
        if not swaks():
            self.skipTest("swaks missing")
        before = self.queued()
        p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.inst.port), "--tls",
                            "--from", "sw@example.org", "--to", ALICE, "--helo", "swaks.example",
                            "--header", "Subject: swaks tls"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("250 2.0.0 Ok: queued as", p.stdout)
        self.assertEqual(len(self.new_messages(before)), 1)

    def test_swaks_tls_pipeline(self):
        if not swaks():
            self.skipTest("swaks missing")
        p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.inst.port), "--tls", "--pipeline",
                            "--from", "sw@example.org", "--to", ALICE], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("250 2.0.0 Ok: queued as", p.stdout)

    def test_commands_pipelined_behind_starttls_are_discarded(self):
        before = self.queued()
        r = self.raw()
        r.send("EHLO c\r\n")
        r.expect("250 ")
        r.send("STARTTLS\r\nMAIL FROM:<inject@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\ninjected\r\n.\r\n" % ALICE)
        r.expect("220 2.0.0 Ready to start TLS")
        starttls(r)
        # Nothing sent in clear text after STARTTLS was executed: the transaction does not exist.
        r.send("EHLO c\r\nRCPT TO:<%s>\r\nDATA\r\n" % ALICE)
        r.expect("250 ", "503 5.5.1 Error: need MAIL command", "503 5.5.1 Error: need MAIL command")
        self.assertEqual(self.new_messages(before), [])

    def test_bdat_pipelined_behind_starttls_is_discarded(self):
        before = self.queued()
        r = self.raw()
        r.send("EHLO c\r\nSTARTTLS\r\nMAIL FROM:<i@example.org>\r\nRCPT TO:<%s>\r\nBDAT 4 LAST\r\nabcd" % ALICE)
        r.expect("250 ", "220 2.0.0 Ready to start TLS")
        starttls(r)
        r.send("NOOP\r\n")
        r.expect("250 2.0.0 Ok")
        self.assertEqual(self.new_messages(before), [])

    def test_state_is_reset_by_tls(self):
        r = self.raw()
        r.send("EHLO c\r\nSTARTTLS\r\n")
        r.expect("250 ", "220 ")
        starttls(r)
        r.send("STARTTLS\r\n")
        r.expect("554 5.5.1 Error: TLS already active")
        r.send("EHLO c\r\n")
        _, lines = r.reply()
        self.assertNotIn("250-STARTTLS", lines)
        r.send("QUIT\r\n")
        r.expect("221 ")

    def test_starttls_errors(self):
        r = self.raw()
        r.send("EHLO c\r\nSTARTTLS now\r\nMAIL FROM:<a@example.org>\r\nSTARTTLS\r\n")
        r.expect("250 ", "501 5.5.4 Syntax: STARTTLS", "250 2.1.0", "503 5.5.1 Error: MAIL transaction in progress")

    def test_failed_handshake_does_not_hurt_others(self):
        r = self.raw()
        r.send("STARTTLS\r\n")
        r.expect("220 ")
        r.send(b"\x16\x03\x01\x00\x05hello this is not TLS\r\n" * 4)
        self.assertTrue(r.closed())
        with self.inst.smtp() as s:
            self.assertEqual(s.noop()[0], 250)


class TlsEncrypt(SmtpdCase):
    TLS = True
    MAIN_CF = "smtpd_tls_security_level = encrypt\n"

    def test_mail_needs_starttls(self):
        r = self.raw()
        r.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\nVRFY x\r\nNOOP\r\n" % ALICE)
        r.expect("250 ", "530 5.7.0 Must issue a STARTTLS command first",
                 "530 5.7.0 Must issue a STARTTLS command first", "530 5.7.0 Must issue a STARTTLS command first",
                 "530 5.7.0 Must issue a STARTTLS command first", "250 2.0.0 Ok")
        r.send("BDAT 5 LAST\r\nxxxxxNOOP\r\n")
        r.expect("530 5.7.0 Must issue a STARTTLS command first", "250 2.0.0 Ok")

    def test_after_starttls(self):
        before = self.queued()
        with self.inst.smtp() as s:
            s.starttls(context=client_context())
            s.sendmail("a@example.org", [ALICE], b"Subject: enc\r\n\r\nx\r\n")
        self.assertEqual(len(self.new_messages(before)), 1)


class TlsCredentials(unittest.TestCase):
    """Certificate and key from $CREDENTIALS_DIRECTORY when main.cf leaves the paths empty."""

    def test_credentials_directory(self):
        if not mtatest.have_program("mta-smtpd") or not shutil.which("systemd-socket-activate"):
            self.skipTest("mta-smtpd or systemd-socket-activate missing")
        if mtatest.is_root():
            mtatest.ensure_test_users()
        with mtatest.Instance() as inst:
            creds = inst.path("creds")
            os.makedirs(creds)
            os.chmod(creds, 0o755)
            made = make_cert(creds)
            if not made:
                self.skipTest("no openssl or certtool")
            os.rename(made[0], os.path.join(creds, "smtpd-cert"))
            os.rename(made[1], os.path.join(creds, "smtpd-key"))
            inst.write_main_cf("smtpd_tls_security_level = may\nsmtpd_tls_cert_file =\nsmtpd_tls_key_file =\n")
            start_smtpd(inst, extra_args=("--idle-timeout=0",), sa_args=("-E", "CREDENTIALS_DIRECTORY=" + creds))
            with inst.smtp() as s:
                s.ehlo("c")
                self.assertIn("starttls", s.esmtp_features)
                s.starttls(context=client_context())
                self.assertEqual(s.ehlo("c")[0], 250)

    def test_missing_certificate_is_a_config_error(self):
        if not mtatest.have_program("mta-smtpd"):
            self.skipTest("mta-smtpd missing")
        with mtatest.Instance() as inst:
            inst.write_main_cf("smtpd_tls_security_level = may\nsmtpd_tls_cert_file = /nonexistent.pem\n")
            env = dict(os.environ)
            env.pop("CREDENTIALS_DIRECTORY", None)
            p = subprocess.run([mtatest.program("mta-smtpd"), "-c", inst.etc], capture_output=True, text=True,
                               timeout=10, env=env)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("/nonexistent.pem", p.stderr)


if __name__ == "__main__":
    mtatest.main()
