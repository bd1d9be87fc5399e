"""
A real client: curl's POP3 support (LIST, RETR, DELE, UIDL, TOP; SASL PLAIN
and APOP logins; curl cannot be made to use USER/PASS while the server offers
SASL PLAIN, so USER/PASS is covered by the other files).

curl prints a RETR body as sent, CRLF line ends, with the dot-stuffing and
the terminating ".CRLF" removed, so its output equals wire(file). LIST and
custom commands print the multi-line body the same way.
"""

import shutil
import subprocess
import unittest

import evtest
from evtest import wire

CURL = shutil.which("curl")

M1 = b"From: a@example.com\nSubject: curl one\n\n.dotted line\n..two\nend\n"
M2 = b"Subject: curl two\r\n\r\nsecond\r\nmessage"
M3 = b"Subject: curl three\n\n" + b"".join(b"%05d %s\n" % (i, b"q" * 70)
                                           for i in range(2000))


@unittest.skipIf(CURL is None, "curl not installed")
class Curl(evtest.ServerTestCase):

    def curl(self, mb, path="/", *args, check=True, password=None):
        url = "pop3://127.0.0.1:%d%s" % (self.srv.port, path)
        cmd = [CURL, "-s", "-S", "--max-time", "30",
               "-u", "%s:%s" % (mb.user, password or mb.password),
               url] + list(args)
        p = subprocess.run(cmd, capture_output=True, timeout=60)
        if check and p.returncode != 0:
            self.fail("%s -> exit %d: %s" % (" ".join(cmd[-len(args) - 1:]),
                                             p.returncode,
                                             p.stderr.decode(errors="replace")))
        return p

    def maildrop(self):
        mb = self.fresh()
        mb.uid = [mb.add(M1), mb.add(M2), mb.add(M3)]
        return mb

    def test_list(self):
        mb = self.maildrop()
        out = self.curl(mb).stdout
        self.assertEqual(out, b"".join(b"%d %d\r\n" % (i, len(wire(m)))
                                       for i, m in
                                       enumerate([M1, M2, M3], 1)))

    def test_retr(self):
        mb = self.maildrop()
        for i, m in enumerate([M1, M2, M3], 1):
            with self.subTest(msg=i):
                self.assertEqual(self.curl(mb, "/%d" % i).stdout, wire(m))
        self.assertEqual(mb.uidls(), sorted(mb.uid))	# RETR deletes nothing

    def test_sasl_plain_login(self):
        mb = self.maildrop()
        p = self.curl(mb, "/1", "--login-options", "AUTH=PLAIN")
        self.assertEqual(p.stdout, wire(M1))

    def test_wrong_password(self):
        mb = self.maildrop()
        p = self.curl(mb, "/", check=False, password="not-the-password")
        self.assertEqual(p.returncode, 67, p.stderr)	# CURLE_LOGIN_DENIED

    def test_no_such_message(self):
        mb = self.maildrop()
        p = self.curl(mb, "/9", check=False)
        self.assertNotEqual(p.returncode, 0)

    def test_uidl_and_top(self):
        mb = self.maildrop()
        out = self.curl(mb, "/", "-X", "UIDL").stdout
        self.assertEqual(out, b"".join(b"%d %s\r\n" % (i, u.encode())
                                       for i, u in enumerate(mb.uid, 1)))
        out = self.curl(mb, "/", "-X", "TOP 1 0").stdout
        self.assertEqual(out, b"From: a@example.com\r\nSubject: curl one"
                         b"\r\n\r\n")

    def test_dele(self):
        mb = self.maildrop()
        self.curl(mb, "/2", "-X", "DELE", "-I")
        self.assertEqual(mb.uidls(), sorted([mb.uid[0], mb.uid[2]]))
        out = self.curl(mb).stdout
        self.assertEqual(out, b"1 %d\r\n2 %d\r\n" % (len(wire(M1)),
                                                     len(wire(M3))))
        self.assertEqual(self.curl(mb, "/2").stdout, wire(M3))

    def test_single_line_custom_commands(self):
        # A custom single-line command needs -I (no body expected).
        mb = self.maildrop()
        self.assertEqual(self.curl(mb, "/", "-X", "LIST 2", "-I").stdout, b"")
        self.assertEqual(self.curl(mb, "/", "-X", "NOOP", "-I").stdout, b"")
        p = self.curl(mb, "/", "-X", "LIST 9", "-I", check=False)
        self.assertNotEqual(p.returncode, 0)


@unittest.skipIf(CURL is None, "curl not installed")
class CurlApop(evtest.ServerTestCase):
    CONFIG = {"auth": {"apop": "yes"}}
    POOL = 2

    def test_apop(self):
        mb = self.fresh()
        mb.add(M1)
        p = subprocess.run([CURL, "-s", "-S", "--max-time", "30",
                            "-u", "%s:%s" % (mb.user, mb.password),
                            "--login-options", "AUTH=+APOP",
                            "pop3://127.0.0.1:%d/1" % self.srv.port],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, wire(M1))


if __name__ == "__main__":
    evtest.main()
