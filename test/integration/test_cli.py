"""
The command line (-t, --version, hash), listeners (several, IPv6, a busy
port) and the log.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

import evtest


def run(args, stdin=b"", timeout=30):
    return subprocess.run([evtest.BIN] + args, input=stdin,
                          capture_output=True, timeout=timeout)


class ConfigTest(unittest.TestCase):
    """evpop3d -t -c FILE: 0 for a good config, 1 naming the bad key."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="evtest-cli-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("u@example.com:{PLAIN}pw::::%s::\n" % self.dir)

    def conf(self, overrides=None, drop=None, raw=None):
        cfg = {s: dict(kv) for s, kv in evtest.DEFAULT_CONFIG.items()}
        for sect, kv in (overrides or {}).items():
            cfg.setdefault(sect, {}).update(kv)
        for sect, key in (drop or []):
            del cfg[sect][key]
        path = os.path.join(self.dir, "evpop3d.ini")
        if raw is not None:
            with open(path, "w") as f:
                f.write(raw)
            return path
        with open(path, "w") as f:
            for sect, kv in cfg.items():
                f.write("[%s]\n" % sect)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
        return path

    def assert_good(self, path):
        p = run(["-t", "-c", path])
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))

    def assert_bad(self, path, section, key):
        p = run(["-t", "-c", path])
        err = (p.stdout + p.stderr).decode(errors="replace")
        self.assertEqual(p.returncode, 1, err)
        self.assertIn(os.path.basename(path), err)
        self.assertIn(section, err)
        self.assertIn(key, err)
        self.assertNotIn("event=ready", err)

    def test_good(self):
        self.assert_good(self.conf())

    def test_good_relative_config_path(self):
        self.conf()
        p = subprocess.run([evtest.BIN, "-t", "-c", "evpop3d.ini"],
                           capture_output=True, timeout=30, cwd=self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_good_minimal_values(self):
        self.assert_good(self.conf({
            "server": {"listen": "127.0.0.1:0, [::1]:0",
                       "idle_timeout": "600"},
            "auth": {"apop": "yes", "failure_delay": "2000"},
            "pop3": {"enable_last": "no"}}))

    def test_idle_timeout_too_small(self):
        self.assert_bad(self.conf({"server": {"idle_timeout": "30"}}),
                        "[server]", "idle_timeout")

    def test_bad_number(self):
        self.assert_bad(self.conf({"server": {"login_timeout": "soon"}}),
                        "[server]", "login_timeout")

    def test_bad_listen(self):
        for addr in ("127.0.0.1:99999", "not-an-address", "127.0.0.1",
                     "[::1:110"):
            with self.subTest(addr=addr):
                self.assert_bad(self.conf({"server": {"listen": addr}}),
                                "[server]", "listen")

    def test_bad_bool(self):
        self.assert_bad(self.conf({"auth": {"apop": "maybe"}}),
                        "[auth]", "apop")

    def test_bad_driver(self):
        self.assert_bad(self.conf({"mail": {"driver": "nosuch"}}),
                        "[mail]", "driver")

    def test_bad_max_failures(self):
        self.assert_bad(self.conf({"auth": {"max_failures": "-1"}}),
                        "[auth]", "max_failures")

    def test_missing_file(self):
        p = run(["-t", "-c", os.path.join(self.dir, "nonexistent.ini")])
        self.assertEqual(p.returncode, 1)
        self.assertIn("nonexistent.ini",
                      (p.stdout + p.stderr).decode(errors="replace"))

    def test_no_args_or_bad_option(self):
        p = run(["--no-such-option"])
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"usage:", p.stderr)
        self.assertEqual(p.stdout, b"")

    def test_help(self):
        for opt in ("--help", "-h"):
            with self.subTest(opt=opt):
                p = run([opt])
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn(b"usage:", p.stdout)
                self.assertEqual(p.stderr, b"")

    def assert_warned(self, path, n, *texts):
        """-t fails with n warnings, each of texts in its output."""
        p = run(["-t", "-c", path])
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("configuration %s has %d warning(s)" % (path, n), err)
        self.assertNotIn("is valid", p.stdout.decode(errors="replace"))
        for t in texts:
            self.assertIn(t, err)
        return err

    def test_mistyped_key_warns_and_start_still_runs(self):
        self.assert_warned(
            self.conf({"server": {"idle_timout": "700"}}), 1,
            "[server] idle_timout: unknown key, ignored; "
            "did you mean idle_timeout?")
        # A start takes the warning and serves.
        srv = evtest.Server(config={"server": {"idle_timout": "700"}},
                            pool=1)
        self.addCleanup(srv.cleanup)
        srv.start()
        self.assertIn("did you mean idle_timeout?", srv.log_text())
        srv.stop()

    def test_unknown_key_far_from_any_has_no_hint(self):
        err = self.assert_warned(
            self.conf({"auth": {"colour": "blue"}}), 1,
            "[auth] colour: unknown key, ignored")
        self.assertNotIn("did you mean", err)

    def test_prefix_hint(self):
        self.assert_warned(self.conf({"auth": {"penalty": "1"}}), 1,
                           "did you mean penalty_")

    def test_duplicate_key(self):
        path = self.conf(raw=self.raw_default().replace(
            "[auth]\n", "[auth]\nMax_Failures = 5\n", 1) +
            "[AUTH]\n; comment = x\nmax_failures = 4\n")
        with open(path) as f:
            lines = f.read().splitlines()
        first = lines.index("Max_Failures = 5") + 1
        self.assertIn("max_failures = 3", lines)
        second = lines.index("max_failures = 3") + 1
        third = len(lines)
        self.assert_warned(
            path, 2,
            "evpop3d.ini:%d: [auth] max_failures: duplicate key, overrides "
            "line %d" % (second, first),
            "evpop3d.ini:%d: [auth] max_failures: duplicate key, overrides "
            "line %d" % (third, second))

    def raw_default(self):
        cfg = {s: dict(kv) for s, kv in evtest.DEFAULT_CONFIG.items()}
        cfg["auth"]["max_failures"] = "3"
        return "".join("[%s]\n" % sect + "".join(
            "%s = %s\n" % kv for kv in kvs.items())
            for sect, kvs in cfg.items())

    def test_passwd_file_missing(self):
        p = run(["-t", "-c", self.conf({"auth": {"passwd_file": "nosuch"}})])
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 1, err)
        self.assertRegex(err, r"\[auth\] passwd_file: \S*/nosuch: "
                         r"No such file or directory")
        self.assertEqual(p.stdout, b"")

    def test_passwd_file_unreadable(self):
        # The tests run as root, who reads any file: a directory stands
        # in for a file that cannot be read.
        os.mkdir(os.path.join(self.dir, "pwdir"))
        p = run(["-t", "-c", self.conf({"auth": {"passwd_file": "pwdir"}})])
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("passwd_file: %s/pwdir" % self.dir, err)

    def test_passwd_unknown_scheme_is_a_warning(self):
        with open(os.path.join(self.dir, "passwd"), "a") as f:
            f.write("v@example.com:{NOSUCH}x::::%s::\n" % self.dir)
        self.assert_warned(self.conf(), 1, "event=passwd-entry-unusable",
                           'user="v@example.com"')

    def test_version(self):
        p = run(["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r"^evpop3d \d+\.\d+\.\d+\S*\n$")


class Hash(unittest.TestCase):

    def test_hash_format_and_salt(self):
        p1 = run(["hash"], b"s3cret pass phrase\n")
        p2 = run(["hash"], b"s3cret pass phrase\n")
        self.assertEqual(p1.returncode, 0, p1.stderr)
        h1, h2 = p1.stdout.decode().strip(), p2.stdout.decode().strip()
        m = re.fullmatch(r"\{SHA512-CRYPT\}(\$6\$([^$]+)\$[./0-9A-Za-z]{86})",
                         h1)
        self.assertIsNotNone(m, h1)
        self.assertNotEqual(h1, h2, "same salt twice")
        self.assertNotIn("s3cret", p1.stdout.decode() + p1.stderr.decode())
        # Independent check with openssl.
        self.assertEqual(evtest.openssl_passwd("s3cret pass phrase", "-6",
                                               m.group(2)), m.group(1))


class HashLogin(evtest.ServerTestCase):
    POOL = 0

    @classmethod
    def setup_users(cls, srv):
        p = run(["hash"], b"hashed by evpop3d\n")
        stored = p.stdout.decode().strip()
        cls.mb = srv.add_user("hashed@example.com", "hashed by evpop3d",
                              stored=stored)
        cls.mb.add(b"Subject: x\n\ny\n")

    def test_login_with_generated_hash(self):
        c = self.login(self.mb)
        self.assertEqual(c.ok("STAT").split()[1], "1")
        c.quit()
        c = self.connect()
        c.ok("USER " + self.mb.user)
        c.err("PASS hashed by evpop3")
        c.close()


class Listeners(evtest.ServerTestCase):
    POOL = 4
    CONFIG = {"server": {"listen": "127.0.0.1:0, [::1]:0"}}

    @classmethod
    def setUpClass(cls):
        if not evtest.ipv6_available():
            raise unittest.SkipTest("::1 not available")
        super().setUpClass()

    def test_both_listeners(self):
        self.assertEqual(sorted(h for h, _ in self.srv.ports),
                         ["127.0.0.1", "::1"])
        mb = self.fresh()
        mb.add(b"Subject: v6\n\nhello\n")
        c = self.connect(host="::1")
        self.assertTrue(c.greeting.startswith("+OK"))
        c.login(mb.user, mb.password)
        self.assertEqual(c.retr(1), b"Subject: v6\r\n\r\nhello\r\n")
        c.quit()
        c = self.connect(host="127.0.0.1")
        c.login(mb.user, mb.password)
        c.quit()

    def test_listen_log_line(self):
        text = self.srv.log_text()
        self.assertRegex(text, r"event=listen\b.*addr=\[::1\]:\d+")
        self.assertRegex(text, r"event=listen\b.*addr=127\.0\.0\.1:\d+")


class BusyPort(unittest.TestCase):

    def test_port_in_use(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        port = s.getsockname()[1]
        srv = evtest.Server(config={"server": {"listen": "127.0.0.1:%d" %
                                               port}}, pool=1)
        self.addCleanup(srv.cleanup)
        srv.start(wait=False)
        try:
            srv.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.fail("daemon kept running on a port in use")
        srv.reader.join(5)
        self.assertGreater(srv.proc.returncode, 0)
        self.assertNotIn("event=ready", srv.log_text())
        self.assertEqual(srv.check_log(), [])
        # At error level, and the last line says the daemon stopped.
        log = srv.log()
        self.assertIn("error event=listen-failed addr=127.0.0.1:%d step=bind:"
                      " Address already in use" % port, log)
        self.assertEqual(log[-1], "error event=exiting reason=startup-failed")

    def test_passwd_file_missing(self):
        srv = evtest.Server(config={"auth": {"passwd_file": "nosuch"}},
                            pool=1)
        self.addCleanup(srv.cleanup)
        srv.write_passwd()
        srv.write_config()
        p = subprocess.run([evtest.BIN, "-c", srv.conf_path],
                           capture_output=True, timeout=30, cwd="/")
        log = [evtest.LOG_STAMP.sub("", l, count=1) for l in
               p.stderr.decode(errors="replace").splitlines()]
        self.assertEqual(p.returncode, 1, log)
        self.assertRegex(log[-2], r"^error event=startup-failed "
                         r"step=passwd-file: .*nosuch.*No such file")
        self.assertEqual(log[-1], "error event=exiting reason=startup-failed")


class Logging(evtest.ServerTestCase):
    POOL = 4

    def test_session_events_and_no_password(self):
        mb = self.fresh()
        mb.add(b"Subject: x\n\ny\n")
        start = len(self.srv.log())
        c = self.login(mb)
        c.ok("DELE 1")
        c.quit()
        c = self.connect()
        c.ok("USER " + mb.user)
        c.err("PASS wrong-" + mb.password)
        self.srv.secret("wrong-" + mb.password)
        c.close()
        s = evtest.plain_b64(mb.user, mb.password)
        self.srv.secret(s)
        c = self.connect()
        c.ok("AUTH PLAIN " + s)
        c.quit()
        # The three sessions' last lines (the event, not a pause).
        self.assertTrue(self.srv.wait_count(r"event=disconnect ", 3,
                                            start=start))
        lines = self.srv.log()[start:]
        text = "\n".join(lines)
        self.assertIn(mb.user, text, "the user name is not logged")
        for l in lines:
            self.assertRegex(l, r"\bevent=\S+", "log line without event=")
        self.assertNotIn(mb.password, text)
        self.assertNotIn(s, text)


if __name__ == "__main__":
    evtest.main()
