"""
TLS configuration (issue 11): a missing, bad or mismatched certificate or
key stops the start with one clear line naming the file, and `evpop3d -t`
catches it (it loads the certificates); the keys that need TLS; SIGHUP
reloads the certificates (a new connection sees the new one while a
session under TLS goes on; a bad file keeps the old ones).
"""

import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import unittest

import evtest
import tlstest


class StartupErrors(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="evtest-tlscfg-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        tlstest.make_certs(cls.dir)
        with open(os.path.join(cls.dir, "passwd"), "w") as f:
            f.write("u:{PLAIN}pw::::%s::\n" % cls.dir)
        with open(os.path.join(cls.dir, "garbage.pem"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n"
                    "-----END CERTIFICATE-----\n")

    def run_daemon(self, tls=None, server=None, auth=None, check=False):
        conf = {"server": {"listen": "127.0.0.1:0", "allow_root": "yes"},
                "auth": {"passwd_file": "passwd"},
                "mail": {"location": "%h/Maildir"}}
        conf["server"].update(server or {})
        conf["auth"].update(auth or {})
        if tls is not None:
            conf["tls"] = tls
        path = os.path.join(self.dir, "e.ini")
        with open(path, "w") as f:
            for sect, kv in conf.items():
                f.write("[%s]\n" % sect)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
        argv = [evtest.BIN] + (["-t"] if check else []) + ["-c", path]
        p = subprocess.run(argv, capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        return p.returncode, p.stderr.decode(errors="replace")

    def both_fail(self, pattern, **kw):
        for check in (True, False):
            with self.subTest(check=check):
                rc, err = self.run_daemon(check=check, **kw)
                self.assertEqual(rc, 1, err)
                self.assertRegex(err, pattern)
                self.assertNotIn("event=ready", err)
                self.assertNotIn("BEGIN", err)	# no key material

    def test_valid(self):
        rc, err = self.run_daemon(tls={"cert": "rsa.pem", "key": "rsa.key"},
                                  server={"listen_tls": "127.0.0.1:0"},
                                  check=True)
        self.assertEqual(rc, 0, err)

    def test_missing_cert(self):
        self.both_fail(r"e\.ini: \[tls\] cert: cannot read \S+/nope\.pem: "
                       r"No such file", tls={"cert": "nope.pem",
                                             "key": "rsa.key"})

    def test_bad_cert(self):
        self.both_fail(r"\[tls\] cert: no PEM certificate in \S+garbage\.pem",
                       tls={"cert": "garbage.pem", "key": "rsa.key"})

    def test_missing_key(self):
        self.both_fail(r"\[tls\] key: cannot read \S+/nokey: No such",
                       tls={"cert": "rsa.pem", "key": "nokey"})

    def test_key_is_a_cert(self):
        self.both_fail(r"\[tls\] key: no PEM private key in \S+ec\.pem",
                       tls={"cert": "rsa.pem", "key": "ec.pem"})

    def test_mismatch(self):
        self.both_fail(r"\[tls\] key: \S+/ec\.key does not match the "
                       r"certificate in \S+/rsa\.pem",
                       tls={"cert": "rsa.pem", "key": "ec.key"})

    def test_mismatch_same_type(self):
        tlstest.make_cert(self.dir, "rsa2", "two.example", "rsa")
        self.both_fail(r"\[tls\] key: \S+/rsa2\.key does not match",
                       tls={"cert": "rsa.pem", "key": "rsa2.key"})

    def test_sni_section_checked(self):
        path = os.path.join(self.dir, "sni.ini")
        with open(path, "w") as f:
            f.write("[server]\nlisten = 127.0.0.1:0\nallow_root = yes\n"
                    "[auth]\npasswd_file = passwd\n"
                    "[mail]\nlocation = %h/Maildir\n"
                    "[tls]\ncert = rsa.pem\nkey = rsa.key\n"
                    "[tls.other.example]\ncert = ec.pem\nkey = rsa.key\n")
        p = subprocess.run([evtest.BIN, "-t", "-c", path],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr.decode(), r"\[tls\.other\.example\] key: "
                         r"\S+/rsa\.key does not match")

    def test_listen_tls_needs_cert(self):
        self.both_fail(r"\[server\] listen_tls: needs \[tls\] cert and key",
                       server={"listen_tls": "127.0.0.1:0"})

    def test_key_without_cert(self):
        self.both_fail(r"\[tls\] cert: required with key",
                       tls={"key": "rsa.key"})

    def test_bad_values(self):
        tls = {"cert": "rsa.pem", "key": "rsa.key"}
        self.both_fail(r"\[tls\] min_protocol: must be TLSv1\.2 or TLSv1\.3, "
                       r"got 'TLSv1\.1'", tls=dict(tls, min_protocol="TLSv1.1"))
        self.both_fail(r"\[tls\] ciphers: no usable cipher in 'NOPE'",
                       tls=dict(tls, ciphers="NOPE"))
        self.both_fail(r"\[tls\] ciphersuites: no usable suite",
                       tls=dict(tls, ciphersuites="TLS_NOPE"))
        self.both_fail(r"\[auth\] plaintext: must be allowed, localhost or "
                       r"never, got 'sometimes'", tls=tls,
                       auth={"plaintext": "sometimes"})
        self.both_fail(r"\[auth\] plaintext: needs \[tls\] cert and key",
                       auth={"plaintext": "never"})


class Reload(tlstest.TLSTestCase):

    def replace_default(self, name):
        """Copy <name>.pem/.key over rsa.pem/rsa.key, atomically."""
        for ext in ("pem", "key"):
            src = os.path.join(self.srv.dir, "%s.%s" % (name, ext))
            tmp = os.path.join(self.srv.dir, "rsa.%s.tmp" % ext)
            shutil.copyfile(src, tmp)
            os.rename(tmp, os.path.join(self.srv.dir, "rsa." + ext))

    def hup(self, result):
        n = len(self.srv.log())
        self.srv.proc.send_signal(signal.SIGHUP)
        self.assertTrue(self.srv.wait_log(
            r"event=reload result=%s" % result, start=n),
            self.srv.log()[n:])

    def test_reload(self):
        mb = self.fresh()
        mb.add(b"Subject: a\n\nbody\n")
        old_ca = tlstest.client_context(self.srv)	# trusts the old rsa.pem
        live = tlstest.TLSConn(self.tls_port, implicit=True, ctx=old_ca)
        self.addCleanup(live.close)
        live.login(mb.user, mb.password)
        stls = self.stls(self.connect_plain())

        tlstest.make_cert(self.srv.dir, "new", "mail.test.example", "ec",
                          ["DNS:mail.test.example"])
        self.replace_default("new")
        self.hup("ok")
        c = tlstest.TLSConn(self.tls_port, implicit=True,
                            ctx=tlstest.client_context(self.srv, "new.pem"))
        self.addCleanup(c.close)
        self.assertEqual(c.sock.getpeercert(binary_form=True),
                         self.der("new.pem"))
        # The session started before goes on with its own context.
        self.assertEqual(live.ok("STAT"), "+OK 1 20")
        self.assertEqual(live.retr(1), b"Subject: a\r\n\r\nbody\r\n")
        stls.ok("CAPA")
        stls.multi()

        # A broken file: the reload fails and the last good one stays.
        with open(os.path.join(self.srv.dir, "rsa.pem"), "w") as f:
            f.write("garbage\n")
        self.hup("failed")
        self.assertTrue(self.srv.wait_log(r"error .*event=reload "
                                          r"result=failed error=.*rsa\.pem"))
        c2 = tlstest.TLSConn(self.tls_port, implicit=True,
                             ctx=tlstest.client_context(self.srv, "new.pem"))
        self.addCleanup(c2.close)
        self.assertEqual(c2.sock.getpeercert(binary_form=True),
                         self.der("new.pem"))
        live.quit()

    def der(self, name):
        with open(os.path.join(self.srv.dir, name)) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())


if __name__ == "__main__":
    evtest.main()
