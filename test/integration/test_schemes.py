"""
Password schemes users migrating from Dovecot have, against hashes made
by Dovecot's own `doveadm pw` at test time: the digest schemes ({SHA},
{SHA256}, {SHA512}, the salted {SSHA}, {SSHA256}, {SSHA512}, and their
.HEX/.B64 forms) and {CRYPT} with yescrypt (libxcrypt, Debian's default).
Each user logs in with poplib with the right password and fails with a
wrong one.
"""

import ctypes
import ctypes.util
import poplib
import re
import secrets
import shutil
import subprocess

import evtest

DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
SCHEMES = ["SHA", "SHA1", "SHA256", "SHA512", "SSHA", "SSHA256", "SSHA512",
           "SHA256.HEX", "SSHA512.HEX", "SHA512.B64"]


def doveadm_pw(scheme, password):
    out = subprocess.run([DOVEADM, "pw", "-s", scheme, "-p", password],
                         capture_output=True, text=True, check=True,
                         timeout=30)
    return out.stdout.strip()


def yescrypt(password):
    """$y$ through libxcrypt's crypt_gensalt_rn() and crypt_r()."""
    lib = ctypes.CDLL(ctypes.util.find_library("crypt"))
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong,
                                  ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b"$y$", 0, None, 0)
    return lib.crypt(password.encode(), salt).decode()


class Schemes(evtest.ServerTestCase):

    @classmethod
    def setup_users(cls, srv):
        cls.users = {}
        for scheme in SCHEMES:
            pw = "pw-" + secrets.token_hex(6)
            stored = doveadm_pw(scheme, pw)
            assert stored.upper().startswith("{%s}" % scheme), stored
            cls.users[scheme] = srv.add_user("u-%s@example.com" %
                                             scheme.lower(), pw, stored)
        pw = "pw-" + secrets.token_hex(6)
        stored = "{CRYPT}" + yescrypt(pw)
        assert stored.startswith("{CRYPT}$y$"), stored
        cls.users["yescrypt"] = srv.add_user("u-yescrypt@example.com", pw,
                                             stored)

    def login(self, mb, password):
        p = poplib.POP3("127.0.0.1", self.srv.port, timeout=10)
        self.addCleanup(p.close)
        p.user(mb.user)
        return p, p.pass_(password)

    def test_every_scheme(self):
        for scheme, mb in sorted(self.users.items()):
            with self.subTest(scheme=scheme):
                p, resp = self.login(mb, mb.password)
                self.assertTrue(resp.startswith(b"+OK"), resp)
                p.quit()
                with self.assertRaises(poplib.error_proto) as e:
                    self.login(mb, mb.password + "x")
                self.assertIn(b"[AUTH]", e.exception.args[0])

    def test_no_unusable_entry(self):
        """Every entry was usable: no passwd-entry-unusable line."""
        self.test_every_scheme()
        self.assertNotIn("passwd-entry-unusable", self.srv.log_text())


class HashCommand(evtest.ServerTestCase):
    """`evpop3d hash -s SCHEME [-r ROUNDS]`, like `doveadm pw`: each hash
    it prints is verified by Dovecot's `doveadm pw -t` and logs in."""

    HASHED = ["SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "MD5-CRYPT",
              "CRYPT", "SSHA", "SSHA256", "SSHA512", "SHA", "SHA256",
              "SHA512", "PLAIN"]

    @classmethod
    def hash(cls, *args, password="pw-hash-1\n"):
        return subprocess.run([evtest.BIN, "hash"] + list(args),
                              input=password, capture_output=True,
                              text=True, timeout=30)

    @classmethod
    def setup_users(cls, srv):
        cls.users = {}
        for scheme in cls.HASHED:
            pw = "pw-" + secrets.token_hex(6)
            r = cls.hash("-s", scheme.lower(), password=pw + "\n")
            assert r.returncode == 0, r.stderr
            cls.users[scheme] = srv.add_user(
                "h-%s@example.com" % scheme.lower(), pw, r.stdout.strip())

    def test_doveadm_verifies(self):
        for scheme, mb in sorted(self.users.items()):
            with self.subTest(scheme=scheme):
                self.assertTrue(mb.stored.startswith("{%s}" % scheme),
                                mb.stored)
                out = subprocess.run([DOVEADM, "pw", "-t", mb.stored, "-p",
                                      mb.password], capture_output=True,
                                     text=True, timeout=30)
                self.assertIn("(verified)", out.stdout + out.stderr)
                p = poplib.POP3("127.0.0.1", self.srv.port, timeout=10)
                self.addCleanup(p.close)
                p.user(mb.user)
                self.assertTrue(p.pass_(mb.password).startswith(b"+OK"))
                p.quit()

    def test_default_and_rounds(self):
        r = self.hash()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("{SHA512-CRYPT}$6$"), r.stdout)
        r = self.hash("-s", "SHA512-CRYPT", "-r", "6000")
        self.assertTrue(r.stdout.startswith("{SHA512-CRYPT}$6$rounds=6000$"),
                        r.stdout)
        r = self.hash("-s", "BLF-CRYPT", "-r", "4")
        self.assertTrue(r.stdout.startswith("{BLF-CRYPT}$2b$04$"), r.stdout)

    def test_refused(self):
        for args, password, why in (
                ([], "\n", "empty password refused"),
                (["-s", "FOO"], "x\n", "unknown scheme"),
                (["-s", "SHA256", "-r", "5"], "x\n", "takes no rounds"),
                (["-s", "BLF-CRYPT", "-r", "99"], "x\n", "out of range"),
                (["-s", "PLAIN"], "a:b\n", "does not fit"),
                (["-r", "x"], "x\n", "bad rounds")):
            with self.subTest(args=args):
                r = self.hash(*args, password=password)
                self.assertNotEqual(r.returncode, 0)
                self.assertEqual(r.stdout, "")
                self.assertIn(why, r.stderr)


class UnusableEntries(evtest.ServerTestCase):
    """A user whose password cannot be checked is named at load time, with
    the file's line and the scheme, never the hash."""

    @classmethod
    def setup_users(cls, srv):
        cls.ok = srv.add_user("fine@example.com", "pw-fine-1",
                              doveadm_pw("SSHA256", "pw-fine-1"))
        cls.unknown = srv.add_user("unknown@example.com", "pw-unknown-1",
                                   "{CRAM-MD5}e02d374fde0dc75a17a557039a3a5"
                                   "338c7743304777dccd376f332bee68d2cf6")
        cls.broken = srv.add_user("broken@example.com", "pw-broken-1",
                                  "{SHA256}c2VjcmV0LWhhc2gtYml0cw==")
        cls.bare = srv.add_user("bare@example.com", "pw-bare-1", "*locked*")

    def test_named_at_load(self):
        log = self.srv.log_text()
        for mb, scheme in ((self.unknown, "CRAM-MD5"),
                           (self.broken, "SHA256"), (self.bare, "CRYPT")):
            m = re.search(r"warn event=passwd-entry-unusable file=\S+ "
                          r'line=(\d+) user="%s" scheme="%s" ' %
                          (re.escape(mb.user), re.escape(scheme)), log)
            self.assertIsNotNone(m, log)
        self.assertNotIn('user="fine@example.com"', log)
        for secret in ("e02d374fde0dc75a", "c2VjcmV0LWhhc2gtYml0cw",
                       "*locked*"):
            self.assertNotIn(secret, log)
        # They cannot log in; the others can.
        with self.assertRaises(poplib.error_proto):
            p = poplib.POP3("127.0.0.1", self.srv.port, timeout=10)
            self.addCleanup(p.close)
            p.user(self.unknown.user)
            p.pass_(self.unknown.password)
        p = poplib.POP3("127.0.0.1", self.srv.port, timeout=10)
        self.addCleanup(p.close)
        p.user(self.ok.user)
        self.assertTrue(p.pass_(self.ok.password).startswith(b"+OK"))
        p.quit()


if __name__ == "__main__":
    evtest.main()
