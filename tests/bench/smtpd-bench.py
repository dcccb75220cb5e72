#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Load benchmark for mta-smtpd (not a test: it prints figures and never fails on them).

For each scenario it starts a fresh receiver in a throwaway directory under
systemd-socket-activate, drives it with N concurrent SMTP sessions from an asyncio client (each
session pipelines MAIL/RCPT/DATA, then sends the message), and prints messages per second
accepted (250 after the final dot, i.e. durably queued), p50/p99 latency from the final dot to
the 250, and the receiver's peak RSS. Then it opens 1,000 idle sessions and prints the receiver's
memory. --modes picks the receiver's commit modes to compare: "single" (fdatasync, rename and
fsync of new/ per message, one after the other), "group" (the default: a batch of messages shares
one fsync of new/), "syncfs" (a batch shares one syncfs() and one fsync of new/), "auto" (the
default: syncfs for batches of three or more, group below).

    tests/bench/smtpd-bench.py [--build DIR] [--seconds 5] [--smoke] [--modes single,group,syncfs]
"""

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))


def proc_status(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])   # kB
    except OSError:
        return None
    return None




class Receiver:
    def __init__(self, mode="group", tmpfs=False):
        import mtatest
        self.mtatest = mtatest
        if mtatest.is_root():
            mtatest.ensure_test_users()
        self.inst = mtatest.Instance()
        self.mounted = False
        if tmpfs:
            # Syncs cost nothing on tmpfs: what is left is the receiver's own CPU cost.
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "tmpfs", self.inst.spool], check=True)
            self.mounted = True
            if mtatest.is_root():
                import pwd
                pw = pwd.getpwnam("mta")
                os.chown(self.inst.spool, pw.pw_uid, pw.pw_gid)
        args = ["--idle-timeout=0", "--max-sessions=5000"]
        args.append("--commit=" + mode)
        self.proc = self.inst.start_smtpd(extra_args=args)
        self.port = self.inst.port

    @property
    def pid(self):
        return self.proc.pid

    def cpu_ms(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
        except OSError:
            return float("nan")

    def close(self):
        self.inst.stop()
        if self.mounted:
            subprocess.run(["umount", "-l", self.inst.spool])
        self.inst.close()


async def read_reply(reader):
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError("connection closed")
        if line[3:4] != b"-":
            return line


async def session(port, body, deadline, latencies, counter, rcpt):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    await read_reply(reader)
    writer.write(b"EHLO bench.example\r\n")
    await read_reply(reader)
    envelope = b"MAIL FROM:<bench@example.org>\r\nRCPT TO:<" + rcpt + b">\r\nDATA\r\n"
    while time.monotonic() < deadline:
        writer.write(envelope)
        for want in (b"250", b"250", b"354"):
            line = await read_reply(reader)
            if not line.startswith(want):
                raise RuntimeError("unexpected reply %r" % line)
        writer.write(body)
        t0 = time.perf_counter()
        writer.write(b".\r\n")
        line = await read_reply(reader)
        latencies.append(time.perf_counter() - t0)
        if not line.startswith(b"250"):
            raise RuntimeError("message refused: %r" % line)
        counter[0] += 1
    writer.write(b"QUIT\r\n")
    await read_reply(reader)
    writer.close()


def make_body(size):
    line = b"x" * 76 + b"\r\n"
    header = b"From: bench@example.org\r\nSubject: benchmark\r\n\r\n"
    n = max(1, (size - len(header)) // len(line))
    return header + line * n


async def run_load(port, concurrency, size, seconds, rcpt):
    body = make_body(size)
    latencies, counter = [], [0]
    deadline = time.monotonic() + seconds
    t0 = time.monotonic()
    await asyncio.gather(*(session(port, body, deadline, latencies, counter, rcpt) for _ in range(concurrency)))
    return counter[0], time.monotonic() - t0, latencies


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def scenario(concurrency, size, seconds, mode, rcpt, tmpfs=False):
    r = Receiver(mode, tmpfs)
    try:
        cpu0 = r.cpu_ms()
        n, elapsed, lat = asyncio.run(run_load(r.port, concurrency, size, seconds, rcpt))
        hwm = proc_status(r.pid, "VmHWM")
        return {
            "sessions": concurrency, "size": size, "messages": n, "rate": n / elapsed,
            "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000, "peak_rss_kib": hwm,
            "cpu_ms": (r.cpu_ms() - cpu0) / max(n, 1),
        }
    finally:
        r.close()


async def idle_sessions(port, n):
    conns = []
    for i in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conns.append((reader, writer))
    for reader, writer in conns:
        await read_reply(reader)
        writer.write(b"EHLO idle.example\r\n")
    for reader, writer in conns:
        await read_reply(reader)
    return conns


def idle_scenario(n, mode):
    r = Receiver(mode)
    try:
        async def go():
            conns = await idle_sessions(r.port, n)
            await asyncio.sleep(0.5)
            rss = proc_status(r.pid, "VmRSS")
            hwm = proc_status(r.pid, "VmHWM")
            # Still answering a fresh client while they all sit there.
            t0 = time.perf_counter()
            reader, writer = await asyncio.open_connection("127.0.0.1", r.port)
            await read_reply(reader)
            banner_ms = (time.perf_counter() - t0) * 1000
            writer.close()
            for _, w in conns:
                w.close()
            return rss, hwm, banner_ms
        return asyncio.run(go())
    finally:
        r.close()


def disk_calibration(seconds=1.0):
    """create + write 1 KiB + fdatasync per second on the file system the tests use (the figure
    the receiver's syncs compete with; it drifts a lot on shared machines)."""
    import tempfile
    d = tempfile.mkdtemp(prefix="mta-bench-disk-")
    n = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            fd = os.open(os.path.join(d, str(n)), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600)
            os.write(fd, b"x" * 1024)
            os.fdatasync(fd)
            os.close(fd)
            n += 1
        return n / (time.monotonic() - t0)
    finally:
        subprocess.run(["rm", "-rf", d])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("MTA_BUILD_DIR") or os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--smoke", action="store_true", help="tiny load, for CI")
    ap.add_argument("--modes", default="auto", help="commit modes to compare: single,group,syncfs,auto")
    ap.add_argument("--idle", type=int, default=1000, help="idle sessions to hold (0: skip)")
    ap.add_argument("--rcpt", default="mtatest-alice@example.test")
    ap.add_argument("--tmpfs", action="store_true", help="queue on a tmpfs (root): CPU cost without disk syncs")
    args = ap.parse_args()
    os.environ["MTA_BUILD_DIR"] = os.path.abspath(args.build)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    seconds = 0.5 if args.smoke else args.seconds
    matrix = [(1, 1024), (20, 1024), (1, 65536), (20, 65536)]
    if args.smoke:
        matrix = [(1, 1024), (4, 1024)]
    modes = [m for m in args.modes.split(",") if m]
    idle = 20 if args.smoke and args.idle else args.idle

    print("disk: %.0f create+write+fdatasync per second (same file system, same run)" %
          disk_calibration(0.3 if args.smoke else 1.0))
    for group in modes:
        print("== mta-smtpd, --commit=%s, %.1f s per scenario%s ==" % (group, seconds,
                                                                    ", queue on tmpfs" if args.tmpfs else ""))
        print("%8s %8s %9s %9s %9s %9s %12s %10s" % ("sessions", "size", "messages", "msg/s", "p50 ms", "p99 ms",
                                                      "peak RSS KiB", "CPU ms/msg"))
        for conc, size in matrix:
            res = scenario(conc, size, seconds, group, args.rcpt.encode(), args.tmpfs)
            print("%8d %8d %9d %9.0f %9.2f %9.2f %12s %10.3f" % (res["sessions"], res["size"], res["messages"],
                                                                  res["rate"], res["p50_ms"], res["p99_ms"],
                                                                  res["peak_rss_kib"], res["cpu_ms"]))
            sys.stdout.flush()
        if idle:
            rss, hwm, banner = idle_scenario(idle, group)
            print("%d idle sessions: receiver RSS %s KiB (peak %s KiB); banner to a new client meanwhile in %.2f ms"
                  % (idle, rss, hwm, banner))
    return 0


if __name__ == "__main__":
    sys.exit(main())
