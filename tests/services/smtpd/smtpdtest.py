# SPDX-License-Identifier: MIT
"""Helpers for the receiver's tests: raw SMTP dialogues and checks of what got queued."""

import os
import re
import shutil
import socket
import subprocess
import time
import unittest

import mtatest

REPLY_RE = re.compile(rb"^(\d{3})([ -])(.*)$")


class Raw:
    """A raw SMTP client: send exact bytes, read replies one by one."""

    def __init__(self, port, host="127.0.0.1", timeout=10, path=None):
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; unread: %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def reply(self):
        """One whole (possibly multi-line) reply as 'CODE text' of its last line, and all lines."""
        lines = []
        while True:
            line = self._line()
            m = REPLY_RE.match(line)
            if not m:
                raise AssertionError("malformed reply line %r" % line)
            lines.append(line.decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return lines[-1], lines

    def expect(self, *prefixes):
        got = []
        for p in prefixes:
            last, _ = self.reply()
            got.append(last)
            if not last.startswith(p):
                raise AssertionError("expected %r, got %r (replies so far %r)" % (p, last, got))
        return got

    def closed(self, timeout=5):
        """True when the server closes the connection (after any unread replies)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def start_smtpd(inst, extra_args=(), sa_args=(), listen=None):
    """Like Instance.start_smtpd(), with extra systemd-socket-activate arguments (-E VAR=value,
    more -l sockets, --fdname=...). Returns the Popen."""
    inst.port = mtatest.free_port()
    cmd = ["systemd-socket-activate", "-l", "127.0.0.1:%d" % inst.port]
    for l in listen or ():
        cmd += ["-l", l]
    cmd += list(sa_args)
    cmd += [mtatest.program("mta-smtpd"), "-c", inst.etc, *extra_args]
    inst.smtpd_log = open(inst.path("smtpd.log"), "ab")
    p = subprocess.Popen(cmd, stdout=inst.smtpd_log, stderr=subprocess.STDOUT, start_new_session=True)
    inst.procs.append(p)
    mtatest.wait_for_port(inst.port)
    return p


def swaks():
    return shutil.which("swaks")


def make_cert(directory, cn="mx.example.test"):
    """A self-signed certificate made now; returns (cert, key) or None when no tool is there."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    if shutil.which("openssl"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=" + cn],
                       check=True, capture_output=True)
    elif shutil.which("certtool"):
        tmpl = os.path.join(directory, "cert.tmpl")
        with open(tmpl, "w") as f:
            f.write("cn = %s\nexpiration_days = 2\ntls_www_server\nsigning_key\nencryption_key\n" % cn)
        subprocess.run(["certtool", "--generate-privkey", "--outfile", key], check=True, capture_output=True)
        subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key, "--template", tmpl,
                        "--outfile", cert], check=True, capture_output=True)
    else:
        return None
    os.chmod(key, 0o644)   # the receiver reads it after dropping to mta in these tests
    return cert, key


class SmtpdCase(unittest.TestCase):
    """A receiver per test class, with main.cf extras in MAIN_CF."""

    MAIN_CF = ""
    ARGS = ()
    TLS = False

    @classmethod
    def setUpClass(cls):
        if not mtatest.have_program("mta-smtpd"):
            raise unittest.SkipTest("mta-smtpd not built")
        if not shutil.which("systemd-socket-activate"):
            raise unittest.SkipTest("systemd-socket-activate missing")
        if mtatest.is_root():
            mtatest.ensure_test_users()
        cls.inst = mtatest.Instance()
        extra = cls.MAIN_CF
        if cls.TLS:
            made = make_cert(cls.inst.etc)
            if not made:
                cls.inst.close()
                raise unittest.SkipTest("no openssl or certtool to make a certificate")
            cls.cert, cls.key = made
            extra += "\nsmtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n" % made
        cls.inst.write_main_cf(extra)
        cls.prepare(cls.inst)
        cls.inst.start_smtpd(extra_args=("--idle-timeout=0",) + tuple(cls.ARGS))

    @classmethod
    def prepare(cls, inst):
        pass

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def raw(self, greet=True):
        r = Raw(self.inst.port)
        self.addCleanup(r.close)
        if greet:
            r.expect("220 ")
        return r

    def queued(self):
        return mtatest.queued_messages(self.inst.spool)

    def new_messages(self, before):
        """Messages queued since the snapshot `before` (a dict from queued())."""
        # The 250 comes after new/ is synced, so the files are there already.
        now = self.queued()
        return [now[k] for k in now if k not in before]

    def assertNoIncoming(self):
        d = os.path.join(self.inst.spool, "incoming")
        deadline = time.monotonic() + 3
        while os.path.isdir(d) and os.listdir(d) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(os.listdir(d) if os.path.isdir(d) else [], [])


def body_of(msg):
    """The content without our Received: header (its first two or three lines)."""
    c = msg["content"]
    assert c.startswith(b"Received: "), c[:80]
    # The header ends at the first line that does not start with a tab.
    lines = c.split(b"\n")
    i = 1
    while i < len(lines) and lines[i].startswith(b"\t"):
        i += 1
    return b"\n".join(lines[i:])
