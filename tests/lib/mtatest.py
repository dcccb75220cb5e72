# SPDX-License-Identifier: MIT
"""Test harness: runs the real programs in a throwaway directory.

An Instance owns a temporary tree (etc/main.cf, spool/ for queue_directory, mail/ for
mail_spool_directory) and starts the receiver under systemd-socket-activate on a free loopback
port, so tests talk to it with smtplib or swaks exactly as a client would. Tests run as root (CI
does); the harness creates the mail_owner user "mta" and test recipients when they are missing.
"""

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get("MTA_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
SOURCE = os.environ.get("MTA_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")

PROGRAMS = {
    "mta-smtpd": "services/smtpd/mta-smtpd",
    "mta-queue": "services/queue/mta-queue",
    "mta-local": "services/local/mta-local",
    "mta-map": "tools/map/mta-map",
    "mta-alias": "tools/map/mta-alias",
    "mtactl": "tools/ctl/mtactl",
    "mta-sendmail": "tools/sendmail/mta-sendmail",
}

TEST_USERS = ("mtatest-alice", "mtatest-bob", "mtatest-carol")


def program(name):
    return os.path.join(BUILD, PROGRAMS[name])


def have_program(name):
    return os.access(program(name), os.X_OK)


def is_root():
    return os.geteuid() == 0


def ensure_user(name, system=False, home=True):
    """Creates a local account if it is missing (root only); returns its passwd entry."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    args = ["useradd"]
    if system:
        args += ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    elif home:
        args += ["-m"]
    subprocess.run(args + [name], check=True, stdout=subprocess.DEVNULL)
    return pwd.getpwnam(name)


def ensure_test_users():
    ensure_user("mta", system=True)
    try:
        grp.getgrnam("mail")
    except KeyError:
        subprocess.run(["groupadd", "--system", "mail"], check=True)
    return [ensure_user(u) for u in TEST_USERS]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port}")


class Instance:
    """One throwaway mail system. Use as a context manager."""

    def __init__(self, main_cf_extra="", hostname="mx.example.test", keep=False):
        self.root = tempfile.mkdtemp(prefix="mtatest-")
        os.chmod(self.root, 0o755)
        self.etc = os.path.join(self.root, "etc")
        self.spool = os.path.join(self.root, "spool")
        self.mail = os.path.join(self.root, "mail")
        self.keep = keep
        self.procs = []
        self.port = None
        os.makedirs(self.etc)
        os.makedirs(self.spool)
        os.makedirs(self.mail)
        if is_root():
            mta = pwd.getpwnam("mta") if _has_user("mta") else None
            if mta:
                os.chown(self.spool, mta.pw_uid, mta.pw_gid)
            with contextlib.suppress(KeyError):
                os.chown(self.mail, 0, grp.getgrnam("mail").gr_gid)
            os.chmod(self.mail, 0o2775)
        self.hostname = hostname
        self.write_main_cf(main_cf_extra)

    def write_main_cf(self, extra=""):
        base = f"""# written by the test harness
myhostname = {self.hostname}
mydomain = example.test
mydestination = $myhostname, localhost.$mydomain, localhost, example.test
mynetworks = 127.0.0.0/8, [::1]/128
queue_directory = {self.spool}
mail_spool_directory = {self.mail}
alias_maps = hash:{self.etc}/aliases
alias_database = hash:{self.etc}/aliases
virtual_alias_maps = hash:{self.etc}/virtual
"""
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(base + extra)
        for name in ("aliases", "virtual"):
            path = os.path.join(self.etc, name)
            if not os.path.exists(path):
                open(path, "w").close()

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def run(self, name, *args, input=None, check=False, env=None, timeout=60, user=None):
        """Runs one of our programs with -c (or -C for sendmail) pointing at this instance."""
        flag = "-C" if name == "mta-sendmail" else "-c"
        e = dict(os.environ)
        e.update(env or {})
        cmd = [program(name), flag, self.etc, *args]
        kwargs = {}
        if user is not None:
            pw = pwd.getpwnam(user)
            kwargs = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        return subprocess.run(cmd, input=input, capture_output=True, check=check, env=e,
                              timeout=timeout, **kwargs)

    def start_smtpd(self, extra_args=(), accept=False, env=None):
        """Starts mta-smtpd under systemd-socket-activate on a free loopback port."""
        self.port = free_port()
        cmd = ["systemd-socket-activate", "-l", f"127.0.0.1:{self.port}"]
        if accept:
            cmd.append("--accept")
        cmd += [program("mta-smtpd"), "-c", self.etc, *extra_args]
        e = dict(os.environ)
        e.update(env or {})
        self.smtpd_log = open(self.path("smtpd.log"), "ab")
        p = subprocess.Popen(cmd, stdout=self.smtpd_log, stderr=subprocess.STDOUT, env=e,
                             start_new_session=True)
        self.procs.append(p)
        wait_for_port(self.port)
        return p

    def smtp(self, timeout=10):
        import smtplib
        return smtplib.SMTP("127.0.0.1", self.port, timeout=timeout)

    def queue_ids(self, sub="new"):
        d = os.path.join(self.spool, sub)
        if not os.path.isdir(d):
            return []
        return sorted(os.listdir(d))

    def mbox_path(self, user):
        return os.path.join(self.mail, user)

    def read_mbox(self, user):
        import mailbox
        path = self.mbox_path(user)
        if not os.path.exists(path):
            return []
        box = mailbox.mbox(path, create=False)
        try:
            return [m for m in box]
        finally:
            box.close()

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        self.procs = []

    def close(self):
        self.stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def main():
    """unittest.main() that prints the closing line CI reads: 'N passed, N failed'."""
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stderr)
    prog = unittest.main(testRunner=runner, exit=False)
    r = prog.result
    failed = len(r.failures) + len(r.errors) + len(getattr(r, "unexpectedSuccesses", []))
    skipped = len(r.skipped)
    passed = r.testsRun - failed - skipped
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    # meson treats 77 as "skipped" for a whole test file.
    if r.testsRun > 0 and skipped == r.testsRun:
        sys.exit(77)
    sys.exit(0 if failed == 0 else 1)


class SocketActivator:
    """Holds a listening socket the way systemd does and (re)starts a program on it.

    Unlike systemd-socket-activate, which execs into the program and so loses the socket when the
    program dies, this keeps the socket open across crashes: kill the program and the next
    start_if_dead() brings up a fresh one on the same socket, while clients queue in the backlog.
    """

    def __init__(self, argv, host="127.0.0.1", port=0, log_path=None, env=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.argv = list(argv)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.env["LISTEN_FDS"] = "1"
        self.env["LISTEN_FDNAMES"] = "smtp"
        self.log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = None
        self.starts = 0

    def _preexec(self):
        os.dup2(self.sock.fileno(), 3)
        os.set_inheritable(3, True)

    def start(self):
        # LISTEN_PID must be the program's own pid: a shell sets it and then execs the program.
        wrapper = ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"']
        self.proc = subprocess.Popen(wrapper + self.argv, env=self.env, preexec_fn=self._preexec,
                                     close_fds=False, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.starts += 1
        return self.proc

    def start_if_dead(self):
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.proc.wait()
            return self.start()
        return None

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            self.proc.wait()

    def close(self):
        self.kill(signal.SIGTERM)
        self.sock.close()


def pids_of(program_path, marker=None):
    """Pids of running processes whose executable is program_path (and whose argv contains marker)."""
    real = os.path.realpath(program_path)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{entry}/exe")
            if exe != real:
                continue
            if marker:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() not in f.read():
                        continue
            found.append(int(entry))
        except OSError:
            continue
    return found


# ---- queue files (format: common/queue.h, mta-queue(5)) ----

def queue_record(letter, data):
    """One record "T<len>:<bytes>\\n"; data is str or bytes and may hold any byte."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return letter.encode() + str(len(data)).encode() + b":" + data + b"\n"


def queue_file_bytes(qid, sender, recipients, content, arrival=None, client=None, helo=None,
                     protocol=None, user=None, esmtp=None):
    """A complete version-1 queue file as the receiver writes it (M with a 20-digit length, Z last).

    Returns (bytes, content_offset, content_size)."""
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogateescape")
    arrival = int(time.time()) if arrival is None else int(arrival)
    out = bytearray(b"MTAQ1\n")
    out += queue_record("I", qid)
    out += queue_record("T", str(arrival))
    out += queue_record("W", "%020d %010d" % (0, 0))
    out += queue_record("S", sender)
    for letter, value in (("C", client), ("H", helo), ("P", protocol), ("U", user), ("E", esmtp)):
        if value is not None:
            out += queue_record(letter, value)
    for r in recipients:
        out += queue_record("R", "P" + r)
    out += b"M%020d:" % len(content)
    offset = len(out)
    out += content + b"\n"
    out += queue_record("Z", b"")
    return bytes(out), offset, len(content)


def write_queue_file(path, sender, recipients, content, qid=None, **kw):
    """Writes a queue file at path (fsynced); returns (content_offset, content_size, qid)."""
    if qid is None:
        qid = "%020X" % (int(time.time() * 1e6) ^ int.from_bytes(os.urandom(4), "big"))
    data, offset, size = queue_file_bytes(qid, sender, recipients, content, **kw)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return offset, size, qid


class QueueFormatError(Exception):
    pass


def parse_queue_bytes(data):
    """Parses a whole version-1 queue file strictly, as common/queue.c does.

    Returns a dict: id, arrival, next_attempt, attempts, sender, client, helo, protocol, user,
    esmtp (None when absent; bytes values decoded as UTF-8 with surrogateescape), recipients
    [(status, address)], content (bytes). Raises QueueFormatError for anything malformed."""
    if not data.startswith(b"MTAQ1\n"):
        raise QueueFormatError("bad magic")
    pos = 6
    out = {"recipients": []}
    single = {"I": "id", "T": "arrival", "W": "schedule", "S": "sender", "C": "client", "H": "helo",
              "P": "protocol", "U": "user", "E": "esmtp", "M": "content"}
    seen_z = False
    while pos < len(data):
        if seen_z:
            raise QueueFormatError("data after Z")
        letter = chr(data[pos])
        colon = data.find(b":", pos + 1, pos + 23)
        if colon < 0:
            raise QueueFormatError("no length at %d" % pos)
        digits = data[pos + 1:colon]
        if not digits.isdigit() or (letter != "M" and len(digits) > 1 and digits[:1] == b"0"):
            raise QueueFormatError("bad length at %d" % pos)
        if letter == "M" and len(digits) != 20:
            raise QueueFormatError("M length not 20 digits")
        n = int(digits)
        start = colon + 1
        end = start + n
        if end >= len(data) or data[end:end + 1] != b"\n":
            raise QueueFormatError("record at %d not terminated" % pos)
        value = data[start:end]
        pos = end + 1
        if letter == "Z":
            if n != 0:
                raise QueueFormatError("Z with data")
            seen_z = True
        elif letter == "R":
            if n < 2 or value[:1] not in (b"P", b"D", b"B"):
                raise QueueFormatError("bad recipient")
            out["recipients"].append((value[:1].decode(), value[1:].decode("utf-8", "surrogateescape")))
        elif letter in single:
            key = single[letter]
            if key in out:
                raise QueueFormatError("duplicate %s" % letter)
            out[key] = value if letter == "M" else value.decode("utf-8", "surrogateescape")
        else:
            raise QueueFormatError("unknown record %r" % letter)
    if not seen_z:
        raise QueueFormatError("no Z record")
    for k in ("id", "arrival", "schedule", "sender", "content"):
        if k not in out:
            raise QueueFormatError("missing %s" % k)
    if not out["recipients"]:
        raise QueueFormatError("no recipients")
    sched = out.pop("schedule")
    out["next_attempt"], out["attempts"] = int(sched[:20]), int(sched[21:])
    out["arrival"] = int(out["arrival"])
    for k in ("client", "helo", "protocol", "user", "esmtp"):
        out.setdefault(k, None)
    return out


def read_queue_file(path):
    with open(path, "rb") as f:
        return parse_queue_bytes(f.read())


def queued_messages(spool, sub="new"):
    """{id: parsed queue file} for every file in spool/sub."""
    d = os.path.join(spool, sub)
    if not os.path.isdir(d):
        return {}
    return {name: read_queue_file(os.path.join(d, name)) for name in sorted(os.listdir(d))}
