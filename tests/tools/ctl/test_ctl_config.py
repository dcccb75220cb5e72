# SPDX-License-Identifier: MIT
"""mtactl config and mtactl check, run as the real binary on temporary configuration trees."""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import unittest

import mtatest

MTACTL = mtatest.program("mtactl")


def mtactl(*args, env=None):
    e = dict(os.environ)
    e.pop("MTA_CONFIG_DIR", None)
    e.update(env or {})
    return subprocess.run([MTACTL, *args], capture_output=True, text=True, env=e, timeout=60)


class Tree:
    """A config directory plus the directories and maps `check` looks at, all sane by default."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="mtactl-test-")
        os.chmod(self.root, 0o755)
        self.etc = os.path.join(self.root, "etc")
        self.spool = os.path.join(self.root, "spool")
        self.mail = os.path.join(self.root, "mail")
        for d in (self.etc, self.spool, self.mail):
            os.makedirs(d)
        if mtatest.is_root():
            mtatest.ensure_user("mta", system=True)
            mta = pwd.getpwnam("mta")
            os.chown(self.spool, mta.pw_uid, mta.pw_gid)
            self.owner = "mta"
        else:
            self.owner = pwd.getpwuid(os.getuid()).pw_name
        os.chmod(self.mail, 0o1777)
        self.aliases = os.path.join(self.etc, "aliases")
        self.virtual = os.path.join(self.etc, "virtual")
        for src in (self.aliases, self.virtual):
            self.write(src, "")
            self.compile(src)

    def write(self, path, text):
        with open(path, "w") as f:
            f.write(text)

    def compile(self, src, age=0):
        """Stands in for a compiled map: check only compares modification times."""
        self.write(src + ".db", "")
        t = time.time() - age
        os.utime(src + ".db", (t, t))

    def base(self):
        return (f"myhostname = mx.example.test\n"
                f"mail_owner = {self.owner}\n"
                f"queue_directory = {self.spool}\n"
                f"mail_spool_directory = {self.mail}\n"
                f"alias_maps = hash:{self.aliases}\n"
                f"alias_database = hash:{self.aliases}\n"
                f"virtual_alias_maps = hash:{self.virtual}\n")

    def main_cf(self, text, binary=False):
        mode = "wb" if binary else "w"
        with open(os.path.join(self.etc, "main.cf"), mode) as f:
            f.write(text)

    def ctl(self, *args):
        return mtactl("-c", self.etc, *args)

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


@unittest.skipUnless(mtatest.have_program("mtactl"), "mtactl not built")
class ConfigTest(unittest.TestCase):
    def setUp(self):
        self.t = Tree()

    def tearDown(self):
        self.t.close()

    def test_config_n_exact(self):
        self.t.main_cf("# comment\n"
                       "myhostname=mx.example.org\n"
                       "mynetworks = 10.0.0.0/8,\n"
                       "    192.168.0.0/16\n"
                       "\t[::1]/128   \n"
                       "relayhost =\n"
                       "message_size_limit = 1000\n"
                       "message_size_limit = 2000\n"
                       "my_own_thing = $myhostname\n"
                       "mydestination = $myhostname, localhost\n")
        r = self.t.ctl("config", "-n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout,
                         "message_size_limit = 2000\n"
                         "my_own_thing = $myhostname\n"
                         "mydestination = $myhostname, localhost\n"
                         "myhostname = mx.example.org\n"
                         "mynetworks = 10.0.0.0/8, 192.168.0.0/16 [::1]/128\n"
                         "relayhost =\n")
        r = self.t.ctl("config", "-n", "-x")
        self.assertIn("mydestination = mx.example.org, localhost\n", r.stdout)
        self.assertIn("my_own_thing = mx.example.org\n", r.stdout)

    def test_config_defaults(self):
        self.t.main_cf("mynetworks = 10.0.0.0/8\n")
        r = self.t.ctl("config", "-d", "mynetworks")
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128\n", ""))
        r = self.t.ctl("config", "mynetworks", "myorigin", "mailbox_size_limit")
        self.assertEqual(r.stdout, "mynetworks = 10.0.0.0/8\nmyorigin = $myhostname\n"
                                   "mailbox_size_limit = 51200000\n")
        r = self.t.ctl("config", "-d", "message_size_limit", "maximal_queue_lifetime", "alias_maps")
        self.assertEqual(r.stdout, "message_size_limit = 10240000\nmaximal_queue_lifetime = 5d\n"
                                   "alias_maps = hash:/etc/mta/aliases\n")
        r = self.t.ctl("config", "-h", "mynetworks")
        self.assertEqual(r.stdout, "10.0.0.0/8\n")

    def test_config_expand(self):
        self.t.main_cf("myhostname = host.example.net\nsmtpd_banner = $myhostname ${mail_name} $$ ${nope?x}${nope:y}\n")
        r = self.t.ctl("config", "-x", "smtpd_banner", "mydomain", "myorigin")
        self.assertEqual(r.stdout, "smtpd_banner = host.example.net mta $ y\nmydomain = example.net\n"
                                   "myorigin = host.example.net\n")
        r = self.t.ctl("config", "smtpd_banner")
        self.assertEqual(r.stdout, "smtpd_banner = $myhostname ${mail_name} $$ ${nope?x}${nope:y}\n")

    def test_config_all_sorted(self):
        self.t.main_cf("")
        r = self.t.ctl("config")
        self.assertEqual(r.returncode, 0)
        names = [line.split(" =")[0] for line in r.stdout.splitlines()]
        self.assertEqual(names, sorted(names))
        self.assertGreater(len(names), 100)
        for required in ("myhostname", "mydomain", "myorigin", "mydestination", "mynetworks", "relayhost",
                         "smtpd_relay_restrictions", "alias_maps", "alias_database", "virtual_alias_domains",
                         "virtual_alias_maps", "mailbox_size_limit", "message_size_limit", "queue_directory",
                         "mail_spool_directory", "smtpd_banner", "smtpd_tls_cert_file", "smtpd_tls_key_file",
                         "smtpd_tls_security_level", "smtp_tls_security_level", "maximal_queue_lifetime",
                         "bounce_queue_lifetime", "minimal_backoff_time", "maximal_backoff_time",
                         "recipient_delimiter", "smtpd_recipient_limit", "allow_mail_to_commands",
                         "allow_mail_to_files", "mail_owner", "line_length_limit"):
            self.assertIn(required, names)
        d = self.t.ctl("config", "-d")
        self.assertEqual(r.stdout, d.stdout)   # nothing set: effective values are the defaults
        n = self.t.ctl("config", "-n")
        self.assertEqual((n.returncode, n.stdout), (0, ""))

    def test_config_unknown_name(self):
        self.t.main_cf("custom = 1\n")
        r = self.t.ctl("config", "nosuch_parameter", "mail_name")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "mtactl: warning: nosuch_parameter: unknown parameter\n")
        self.assertEqual(r.stdout, "mail_name = mta\n")
        r = self.t.ctl("config", "custom")
        self.assertEqual((r.returncode, r.stdout), (0, "custom = 1\n"))

    def test_config_missing_main_cf(self):
        r = self.t.ctl("config", "mail_name")
        self.assertEqual((r.returncode, r.stdout), (0, "mail_name = mta\n"))

    def test_env_dir(self):
        self.t.main_cf("mail_name = fromenv\n")
        r = mtactl("config", "mail_name", env={"MTA_CONFIG_DIR": self.t.etc})
        self.assertEqual(r.stdout, "mail_name = fromenv\n")
        r = mtactl("-c", self.t.etc, "config", "mail_name", env={"MTA_CONFIG_DIR": "/nonexistent"})
        self.assertEqual(r.stdout, "mail_name = fromenv\n")

    def test_config_broken(self):
        self.t.main_cf("myhostname = a.example\nmynetworks 127.0.0.1\n")
        r = self.t.ctl("config", "-n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("main.cf:2: missing '=' after parameter name", r.stderr)
        self.assertEqual(r.stdout, "")

        self.t.main_cf(b"a = b\nc = \0\n", binary=True)
        r = self.t.ctl("config")
        self.assertEqual(r.returncode, 2)
        self.assertIn("main.cf:2: NUL byte", r.stderr)

        self.t.main_cf("  leading = white space\n")
        r = self.t.ctl("config")
        self.assertEqual(r.returncode, 2)
        self.assertIn("main.cf:1: continuation line", r.stderr)

        os.unlink(os.path.join(self.t.etc, "main.cf"))
        os.mkdir(os.path.join(self.t.etc, "main.cf"))
        r = self.t.ctl("config")
        self.assertEqual(r.returncode, 2)
        self.assertIn("main.cf: is a directory", r.stderr)
        r = self.t.ctl("check")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is a directory", r.stderr)

    def test_crlf(self):
        self.t.main_cf("myhostname = crlf.example\r\nmynetworks = 10.0.0.0/8\r\n  10.1.0.0/16\r\n")
        r = self.t.ctl("config", "-n")
        self.assertEqual(r.stdout, "myhostname = crlf.example\nmynetworks = 10.0.0.0/8 10.1.0.0/16\n")

    def test_usage(self):
        self.assertEqual(mtactl().returncode, 2)
        r = mtactl("-c", self.t.etc, "nonsense")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command", r.stderr)
        r = mtactl("-h")
        self.assertEqual(r.returncode, 0)
        self.assertIn("config", r.stdout)
        self.assertEqual(self.t.ctl("config", "-q").returncode, 2)
        self.assertEqual(self.t.ctl("check", "extra").returncode, 2)


@unittest.skipUnless(mtatest.have_program("mtactl"), "mtactl not built")
class CheckTest(unittest.TestCase):
    def setUp(self):
        self.t = Tree()

    def tearDown(self):
        self.t.close()

    def check(self, extra=""):
        self.t.main_cf(self.t.base() + extra)
        return self.t.ctl("check")

    def test_clean(self):
        r = self.check()
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_misspelled(self):
        r = self.check("mynetwork = 10.0.0.0/8\nmydestinaton = x\nwhatever_else = 1\n")
        self.assertEqual(r.returncode, 0, r.stderr)   # warnings do not change the exit code
        main_cf = os.path.join(self.t.etc, "main.cf")
        self.assertEqual(r.stderr,
                         f"mtactl: warning: {main_cf}:8: unknown parameter 'mynetwork', did you mean 'mynetworks'?\n"
                         f"mtactl: warning: {main_cf}:9: unknown parameter 'mydestinaton', "
                         f"did you mean 'mydestination'?\n"
                         f"mtactl: warning: {main_cf}:10: unknown parameter 'whatever_else'\n")

    def test_ignored_settings(self):
        r = self.check("smtpd_sasl_auth_enable = yes\nreadme_directory = /usr/share/doc/postfix\n"
                       "compatibility_level = 3.6\nsmtpd_use_tls = no\n")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stderr, f"mtactl: warning: {self.t.etc}/main.cf:8: smtpd_sasl_auth_enable is accepted "
                                   f"for compatibility but has no effect in mta\n")

    def test_debian_main_cf(self):
        """The main.cf Debian 12 installs for Postfix (paths adapted) loads without unknown names."""
        r = self.check("smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)\n"
                       "biff = no\nappend_dot_mydomain = no\nreadme_directory = no\ncompatibility_level = 3.6\n"
                       "smtpd_tls_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem\n"
                       "smtpd_tls_key_file=/etc/ssl/private/ssl-cert-snakeoil.key\n"
                       "smtpd_tls_security_level=none\nsmtp_tls_CApath=/etc/ssl/certs\n"
                       "smtp_tls_security_level=may\n"
                       "smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache\n"
                       "smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated "
                       "defer_unauth_destination\n"
                       "mydestination = $myhostname, localhost.example.test, , localhost\nrelayhost =\n"
                       "mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128\n"
                       "mailbox_size_limit = 0\nrecipient_delimiter = +\ninet_interfaces = all\n"
                       "inet_protocols = all\n")
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_broken_main_cf(self):
        self.t.main_cf("myhostname = x.example\nnot a parameter line\n")
        r = self.t.ctl("check")
        self.assertEqual(r.returncode, 1)
        self.assertIn("main.cf:2: missing '=' after parameter name", r.stderr)

    def test_bad_values(self):
        r = self.check("message_size_limit = 10x\nsmtpd_timeout = 5y\nsmtpd_helo_required = maybe\n"
                       "smtpd_recipient_limit = 99999999999999999999999\n")
        self.assertEqual(r.returncode, 1)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 4, r.stderr)
        self.assertIn("main.cf:8: bad value '10x' for message_size_limit: expected a size in bytes", r.stderr)
        self.assertIn("bad value '5y' for smtpd_timeout", r.stderr)
        self.assertIn("bad value 'maybe' for smtpd_helo_required: expected yes or no", r.stderr)
        self.assertIn("bad value '99999999999999999999999' for smtpd_recipient_limit", r.stderr)

    def test_size_relation(self):
        r = self.check("mailbox_size_limit = 1000\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("mailbox_size_limit (1000) is smaller than message_size_limit (10240000)", r.stderr)
        self.assertEqual(self.check("mailbox_size_limit = 0\n").returncode, 0)

    def test_mynetworks(self):
        r = self.check("mynetworks = 127.0.0.0/8 10.0.0.1/8\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("main.cf:8: mynetworks: \"10.0.0.1/8\": address has bits set", r.stderr)
        r = self.check("mynetworks = 192.0.2.0/33\n")
        self.assertIn("bad prefix length", r.stderr)
        self.assertEqual(self.check("mynetworks = 192.0.2.0/24, [2001:db8::]/32\n").returncode, 0)

    def test_relayhost(self):
        for good in ("smtp.example.net", "[smtp.example.net]", "[smtp.example.net]:587", "relay.example:25",
                     "[192.0.2.1]", "[192.0.2.1]:2525", "[ipv6:2001:db8::1]:25", "mail.example:submission"):
            r = self.check(f"relayhost = {good}\n")
            self.assertEqual((good, r.returncode, r.stderr), (good, 0, ""))
        for bad in ("[smtp.example.net", "smtp.example.net:99999", "smtp..example", "-bad.example",
                    "[smtp.example.net]x", "host:", "a b"):
            r = self.check(f"relayhost = {bad}\n")
            self.assertEqual((bad, r.returncode), (bad, 1))
            self.assertIn(f"bad relayhost '{bad}'", r.stderr)

    def test_directories(self):
        os.chmod(self.t.mail, 0o777)
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{self.t.mail} (mail_spool_directory): writable by everyone (mode 0777) without the sticky bit",
                      r.stderr)
        os.chmod(self.t.mail, 0o1777)
        shutil.rmtree(self.t.spool)
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{self.t.spool} (queue_directory): No such file or directory", r.stderr)
        open(self.t.spool, "w").close()
        r = self.check()
        self.assertIn("(queue_directory): not a directory", r.stderr)

    def test_queue_subdirs(self):
        sub = os.path.join(self.t.spool, "deferred")
        os.mkdir(sub, 0o700)
        if mtatest.is_root():
            mta = pwd.getpwnam("mta")
            os.chown(sub, mta.pw_uid, mta.pw_gid)
        self.assertEqual(self.check().returncode, 0)
        os.chmod(sub, 0o777)
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{sub}: writable by group or others (mode 0777)", r.stderr)
        if mtatest.is_root():
            os.chmod(sub, 0o700)
            os.chown(sub, 0, 0)
            r = self.check()
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"{sub}: owned by uid 0, not by mail_owner mta", r.stderr)

    @unittest.skipUnless(mtatest.is_root(), "needs root to chown")
    def test_queue_owner(self):
        os.chown(self.t.spool, 0, 0)
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn("(queue_directory): owned by uid 0, not by mail_owner mta", r.stderr)

    def test_mail_owner(self):
        r = self.check("mail_owner = no-such-user-here\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("mail_owner no-such-user-here: no such user", r.stderr)

    def test_maps(self):
        self.t.compile(self.t.aliases, age=100)     # older than its source now
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        self.assertIn(f"{self.t.aliases}.db (alias_database): older than {self.t.aliases}; run mta-alias", r.stderr)

        os.unlink(self.t.virtual + ".db")
        r = self.check()
        self.assertIn(f"{self.t.virtual}.db (virtual_alias_maps): not compiled; run mta-map {self.t.virtual}",
                      r.stderr)
        self.assertEqual(r.stderr.count("\n"), 2, r.stderr)

        self.t.compile(self.t.aliases)
        self.t.compile(self.t.virtual)
        self.assertEqual(self.check().returncode, 0)

        r = self.check(f"alias_maps = hash:{self.t.aliases}, nis:mail.aliases\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("alias_maps: unsupported map type in 'nis:mail.aliases'", r.stderr)

        r = self.check(f"virtual_alias_maps = hash:{self.t.etc}/missing\n")
        self.assertIn(f"{self.t.etc}/missing (virtual_alias_maps): missing", r.stderr)

    def test_tls(self):
        r = self.check("smtpd_tls_security_level = may\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("smtpd_tls_cert_file is empty but smtpd_tls_security_level = may", r.stderr)

        cert = os.path.join(self.t.etc, "cert.pem")
        key = os.path.join(self.t.etc, "key.pem")
        r = self.check(f"smtpd_tls_security_level = encrypt\nsmtpd_tls_cert_file = {cert}\n"
                       f"smtpd_tls_key_file = {key}\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{cert} (smtpd_tls_cert_file): No such file or directory", r.stderr)
        self.assertIn(f"{key} (smtpd_tls_key_file): No such file or directory", r.stderr)

        self.t.write(cert, "cert\n")
        self.t.write(key, "key\n")
        os.chmod(cert, 0o644)
        os.chmod(key, 0o600)
        if mtatest.is_root():
            mta = pwd.getpwnam("mta")
            os.chown(key, mta.pw_uid, mta.pw_gid)
        r = self.check(f"smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {cert}\nsmtpd_tls_key_file = {key}\n")
        self.assertEqual((r.returncode, r.stderr), (0, ""))

        # The key file defaults to the cert file, as in Postfix; a world-readable key is a warning.
        r = self.check(f"smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {cert}\n")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stderr, f"mtactl: warning: {cert} (smtpd_tls_key_file): private key readable by "
                                   f"everyone (mode 0644)\n")

        if mtatest.is_root():
            os.chown(key, 0, 0)
            r = self.check(f"smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {cert}\n"
                           f"smtpd_tls_key_file = {key}\n")
            self.assertEqual(r.returncode, 0)
            self.assertIn("not readable by mail_owner mta", r.stderr)

        r = self.check("smtpd_tls_security_level = maybe\nsmtp_tls_security_level = sometimes\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad smtpd_tls_security_level 'maybe'", r.stderr)
        self.assertIn("bad smtp_tls_security_level 'sometimes'", r.stderr)


if __name__ == "__main__":
    mtatest.main()
