#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""mta-map and mta-alias, the real binaries, on the golden files in golden/.

NAME.in is compiled (names starting with "aliases" by mta-alias, the others by mta-map); the sorted
output of -s must equal NAME.ref (shown as a diff when not), and each line "KEY<TAB>VALUE" of
NAME.queries must give VALUE with -q (exit 0), or exit 1 when VALUE is "-". broken-*.in must fail
with exit 2 and the message in broken-*.err (FILE standing for the source path), and leave the map
compiled before from a good source exactly as it was.
"""

import difflib
import glob
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "lib"))
import mtatest  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


def tool_for(name):
    return "mta-alias" if os.path.basename(name).startswith(("aliases", "broken-alias")) else "mta-map"


def run(tool, *args, config=None):
    cmd = [mtatest.program(tool)]
    if config:
        cmd += ["-c", config]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)


class MapTool(unittest.TestCase):
    def setUp(self):
        for tool in ("mta-map", "mta-alias"):
            if not mtatest.have_program(tool):
                self.skipTest(f"{tool} is not built")
        self.dir = tempfile.mkdtemp(prefix="mta-map-test-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def copy(self, name, as_name=None):
        dst = os.path.join(self.dir, as_name or os.path.basename(name))
        shutil.copyfile(os.path.join(GOLDEN, name), dst)
        return dst

    def test_golden(self):
        inputs = sorted(glob.glob(os.path.join(GOLDEN, "*.in")))
        good = [p for p in inputs if not os.path.basename(p).startswith("broken-")]
        self.assertTrue(good)
        for path in good:
            name = os.path.basename(path)[:-3]
            with self.subTest(name=name):
                src = self.copy(name + ".in", name)
                tool = tool_for(name)
                p = run(tool, "hash:" + src)
                self.assertEqual(p.returncode, 0, p.stderr)
                p = run(tool, "-s", "hash:" + src)
                self.assertEqual(p.returncode, 0, p.stderr)
                got = sorted(p.stdout.splitlines(keepends=True))
                with open(os.path.join(GOLDEN, name + ".ref")) as f:
                    want = f.readlines()
                if got != want:
                    self.fail("".join(difflib.unified_diff(want, got, name + ".ref", "mta-map -s")))
                queries = os.path.join(GOLDEN, name + ".queries")
                if os.path.exists(queries):
                    with open(queries) as f:
                        for line in f:
                            key, value = line.rstrip("\n").split("\t", 1)
                            q = run(tool, "-q", key, src)
                            if value == "-":
                                self.assertEqual((q.returncode, q.stdout), (1, ""), key)
                            else:
                                self.assertEqual((q.returncode, q.stdout), (0, value + "\n"), key)

    def test_broken(self):
        broken = sorted(glob.glob(os.path.join(GOLDEN, "broken-*.in")))
        self.assertGreaterEqual(len(broken), 8)
        for path in broken:
            name = os.path.basename(path)[:-3]
            with self.subTest(name=name):
                tool = tool_for(name)
                src = os.path.join(self.dir, name)
                with open(src, "w") as f:
                    f.write("good: value\n" if tool == "mta-alias" else "good value\n")
                self.assertEqual(run(tool, src).returncode, 0)
                db = src + ".db"
                before = os.stat(db)
                with open(db, "rb") as f:
                    before_bytes = f.read()

                shutil.copyfile(path, src)
                p = run(tool, "hash:" + src)
                with open(os.path.join(GOLDEN, name + ".err")) as f:
                    want = f.read().strip().replace("FILE", src)
                self.assertEqual(p.returncode, 2)
                self.assertEqual(p.stderr.strip(), f"{tool}: {want}")

                after = os.stat(db)
                self.assertEqual((before.st_ino, before.st_mtime_ns), (after.st_ino, after.st_mtime_ns))
                with open(db, "rb") as f:
                    self.assertEqual(f.read(), before_bytes)
                self.assertEqual(run(tool, "-q", "good", src).stdout, "value\n")
                self.assertEqual([f for f in os.listdir(self.dir) if ".tmp" in f], [])

    def test_query_exit_codes(self):
        src = os.path.join(self.dir, "virtual")
        with open(src, "w") as f:
            f.write("a@example.org b@example.org\n")
        self.assertEqual(run("mta-map", src).returncode, 0)
        self.assertEqual(run("mta-map", "-q", "A@EXAMPLE.ORG", src).returncode, 0)
        self.assertEqual(run("mta-map", "-q", "zz", src).returncode, 1)
        # A missing compiled map, an unsupported type, no file, a bad option: all exit 2.
        p = run("mta-map", "-q", "a", os.path.join(self.dir, "missing"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("missing", p.stderr)
        p = run("mta-map", "ldap:" + src)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unsupported map type", p.stderr)
        self.assertEqual(run("mta-map").returncode, 2)
        self.assertEqual(run("mta-map", "--bogus", src).returncode, 2)
        p = run("mta-map", os.path.join(self.dir, "nonexistent"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("No such file", p.stderr)
        # A .db that is not a map is an error, not "not found".
        with open(os.path.join(self.dir, "junk.db"), "w") as f:
            f.write("junk\n")
        self.assertEqual(run("mta-map", "-q", "a", os.path.join(self.dir, "junk")).returncode, 2)

    def test_duplicate_warns(self):
        src = os.path.join(self.dir, "dup")
        with open(src, "w") as f:
            f.write("k first\nk second\n")
        p = run("mta-map", src)
        self.assertEqual(p.returncode, 0)
        self.assertIn(f"{src}:2: duplicate entry \"k\"", p.stderr)
        self.assertEqual(run("mta-map", "-q", "k", src).stdout, "first\n")

    def test_alias_database_default(self):
        with mtatest.Instance() as inst:
            with open(inst.path("etc", "aliases"), "w") as f:
                f.write("postmaster: root\n")
            p = inst.run("mta-alias")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(os.path.exists(inst.path("etc", "aliases.db")))
            p = inst.run("mta-alias", "-q", "postmaster")
            self.assertEqual((p.returncode, p.stdout), (0, b"root\n"))
            self.assertEqual(inst.run("mta-alias", "-q", "nobody").returncode, 1)

    def test_permissions_follow_source(self):
        src = os.path.join(self.dir, "private")
        with open(src, "w") as f:
            f.write("k v\n")
        os.chmod(src, 0o640)
        if mtatest.is_root():
            os.chown(src, 1, 1)   # daemon: the owner that alias commands run as
        self.assertEqual(run("mta-map", src).returncode, 0)
        st = os.stat(src + ".db")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        if mtatest.is_root():
            self.assertEqual((st.st_uid, st.st_gid), (1, 1))

    def test_replace_while_reading(self):
        # A reader that opened the old map keeps reading it whole while a new one is installed.
        src = os.path.join(self.dir, "live")
        with open(src, "w") as f:
            f.writelines(f"key{i} old{i}\n" for i in range(2000))
        self.assertEqual(run("mta-map", src).returncode, 0)
        old_ino = os.stat(src + ".db").st_ino
        fd = os.open(src + ".db", os.O_RDONLY)
        try:
            with open(src, "w") as f:
                f.writelines(f"key{i} new{i}\n" for i in range(2000))
            self.assertEqual(run("mta-map", src).returncode, 0)
            self.assertNotEqual(os.stat(src + ".db").st_ino, old_ino)
            self.assertEqual(os.fstat(fd).st_ino, old_ino)   # the old file is intact, just unlinked
        finally:
            os.close(fd)
        self.assertEqual(run("mta-map", "-q", "key1999", src).stdout, "new1999\n")


if __name__ == "__main__":
    mtatest.main()
