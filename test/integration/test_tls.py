"""
TLS in the daemon (issue 11): STLS (RFC 2595) on the plain listener and
implicit TLS (RFC 8314) on listen_tls, with real clients: python poplib
(stls() and POP3_SSL), openssl s_client, curl, fetchmail and mpop; the
STLS injection test (CVE-2011-0411 class); STLS refusals; SNI; handshake
garbage and silence. Certificates are made at test time (tlstest.py).
"""

import os
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import evtest
import tlstest
from evtest import wire

CURL = shutil.which("curl")
FETCHMAIL = shutil.which("fetchmail")
MPOP = shutil.which("mpop")

MSG = b"From: a@example.com\nSubject: over tls\n\n.dotted\nbody\n"


class PoplibClients(tlstest.TLSTestCase):

    def test_stls_capa_and_login(self):
        mb = self.fresh()
        mb.add(MSG)
        p = poplib.POP3("127.0.0.1", self.srv.port, timeout=evtest.TIMEOUT)
        self.addCleanup(p.close)
        self.assertIn("STLS", p.capa())
        p.stls(self.ctx())
        capa = p.capa()			# RFC 2595: asked again after TLS
        self.assertNotIn("STLS", capa)
        self.assertIn("USER", capa)
        self.assertEqual(capa["SASL"], ["PLAIN", "LOGIN"])
        p.user(mb.user)
        p.pass_(mb.password)
        self.assertEqual(p.stat(), (1, len(wire(MSG))))
        resp, lines, octets = p.retr(1)
        self.assertEqual(b"\r\n".join(lines) + b"\r\n", wire(MSG))
        p.quit()
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect .*reason=quit tls=TLSv1\.3 user=\"%s\"" %
            re.escape(mb.user)))

    def test_pop3_ssl(self):
        mb = self.fresh()
        mb.add(MSG)
        p = poplib.POP3_SSL("127.0.0.1", self.tls_port,
                            context=self.ctx(), timeout=evtest.TIMEOUT)
        self.addCleanup(p.close)
        self.assertTrue(p.getwelcome().startswith(b"+OK"))
        capa = p.capa()
        self.assertNotIn("STLS", capa)	# secure from the start
        self.assertIn("USER", capa)
        p.user(mb.user)
        p.pass_(mb.password)
        resp, lines, octets = p.retr(1)
        self.assertEqual(b"\r\n".join(lines) + b"\r\n", wire(MSG))
        p.quit()


class StlsRules(tlstest.TLSTestCase):

    def test_second_stls_refused(self):
        c = self.stls(self.connect_plain())
        self.assertIn("already active", c.err("STLS"))
        c.ok("CAPA")
        self.assertNotIn(b"STLS", c.multi())

    def test_stls_after_login_refused(self):
        mb = self.fresh()
        c = self.connect_plain()
        c.login(mb.user, mb.password)
        self.assertIn("not valid in this state", c.err("STLS"))

    def test_stls_after_user_refused(self):
        mb = self.fresh()
        c = self.connect_plain()
        c.ok("USER " + mb.user)
        self.assertIn("after USER", c.err("STLS"))
        c.ok("PASS " + mb.password)	# the session goes on in plaintext

    def test_stls_on_implicit_refused(self):
        c = self.connect_tls()
        self.assertIn("already active", c.err("STLS"))

    def test_stls_forgets_user(self):
        """No USER given before TLS survives it (USER then STLS is refused
        anyway; this checks a failed USER leaves nothing either)."""
        mb = self.fresh()
        c = self.stls(self.connect_plain())
        self.assertIn("send USER first", c.err("PASS " + mb.password))
        c.login(mb.user, mb.password)

    def test_capa_before_tls_lists_stls(self):
        c = self.connect_plain()
        c.ok("CAPA")
        caps = c.multi()
        self.assertIn(b"STLS", caps)
        self.assertIn(b"USER", caps)		# from loopback: localhost
        self.assertIn(b"SASL PLAIN LOGIN", caps)


class StlsInjection(tlstest.TLSTestCase):
    """RFC 2595 section 4, CVE-2011-0411: whatever is pipelined after STLS
    in the same packet is discarded, never run inside TLS."""

    def inject(self, tail):
        c = self.connect_plain()
        local_port = c.sock.getsockname()[1]
        c.send(b"STLS\r\n" + tail)		# one write, one segment
        self.assertEqual(c.status(), "+OK Begin TLS negotiation")
        c.starttls(self.ctx())
        return c, local_port

    def test_capa_not_run_inside_tls(self):
        c, port = self.inject(b"CAPA\r\n")
        # The first reply inside TLS answers our QUIT, not the CAPA.
        self.assertIn("signing off", c.cmd("QUIT"))
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect rip=127\.0\.0\.1:%d reason=quit tls=" % port))
        cmds = [l for l in self.session_lines(port) if "event=command" in l]
        self.assertEqual([re.search(r"cmd=(\S+)", l).group(1) for l in cmds],
                         ["STLS", "QUIT"])

    def test_user_not_run_inside_tls(self):
        mb = self.fresh()
        c, port = self.inject(b"USER " + mb.user.encode() + b"\r\n")
        # Had USER run, this PASS would log in.
        self.assertIn("send USER first", c.err("PASS " + mb.password))
        c.quit()
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect rip=127\.0\.0\.1:%d reason=quit" % port))
        log = "\n".join(self.session_lines(port))
        self.assertNotIn("cmd=USER", log)
        self.assertNotIn(mb.user, log)

    def test_injection_larger_than_a_line(self):
        """Several pipelined commands and a partial line: all dropped."""
        c, port = self.inject(b"CAPA\r\nNOOP\r\nUSER x@y\r\nPASS" + b"z" * 300)
        self.assertIn("signing off", c.cmd("QUIT"))
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect rip=127\.0\.0\.1:%d reason=quit" % port))
        cmds = [l for l in self.session_lines(port) if "event=command" in l]
        self.assertEqual(len(cmds), 2, cmds)


class OpenSSLClient(tlstest.TLSTestCase):

    def s_client(self, *args, port=None, stdin=b""):
        cmd = ["openssl", "s_client", "-brief", "-CAfile",
               os.path.join(self.srv.dir, "rsa.pem"),
               "-connect", "127.0.0.1:%d" % (port or self.tls_port)]
        p = subprocess.run(cmd + list(args), input=stdin,
                           capture_output=True, timeout=60)
        return p.returncode, (p.stdout + p.stderr).decode(errors="replace")

    def test_starttls_pop3(self):
        rc, out = self.s_client("-starttls", "pop3", port=self.srv.port)
        self.assertIn("Protocol version: TLSv1.3", out)
        self.assertIn("CN = mail.test.example", out)
        self.assertIn("Verification: OK", out)

    def test_implicit(self):
        rc, out = self.s_client("-servername", "mail.test.example")
        self.assertIn("Protocol version: TLSv1.3", out)
        self.assertIn("CN = mail.test.example", out)

    def test_tls12(self):
        rc, out = self.s_client("-tls1_2")
        self.assertIn("Protocol version: TLSv1.2", out)
        self.assertRegex(out, r"Ciphersuite: ECDHE-RSA-\S+GCM")

    def test_tls11_refused(self):
        n = len(self.srv.log())
        rc, out = self.s_client("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        self.assertNotEqual(rc, 0, out)
        self.assertNotIn("Protocol version: TLSv1.1", out)
        # The server refused it, not the client's own policy.
        self.assertTrue(self.srv.wait_log(
            r"event=tls-failed .*error=\"?unsupported protocol", start=n),
            self.srv.log()[n:])
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect .*reason=tls-handshake-failed", start=n))

    def test_sni(self):
        for name, cn in (("other.test.example", "other.test.example"),
                         ("OTHER.test.example", "other.test.example"),
                         ("a.wild.example", "*.wild.example"),
                         ("a.b.wild.example", "mail.test.example"),
                         ("unknown.example", "mail.test.example")):
            with self.subTest(name=name):
                rc, out = self.s_client("-servername", name)
                self.assertIn("Peer certificate: CN = %s" % cn, out)
        rc, out = self.s_client("-noservername")
        self.assertIn("Peer certificate: CN = mail.test.example", out)

    def test_sni_ecdsa_works(self):
        mb = self.fresh()
        c = self.connect_tls(ctx=self.ctx("ec.pem"),
                             server_hostname="other.test.example")
        self.assertEqual(tlstest.peer_cn(c.sock), "other.test.example")
        c.login(mb.user, mb.password)
        c.quit()


@unittest.skipIf(CURL is None, "curl not installed")
class Curl(tlstest.TLSTestCase):

    def curl(self, url, mb):
        cmd = [CURL, "-s", "-S", "--ssl-reqd", "--max-time", "30", "--cacert",
               os.path.join(self.srv.dir, "rsa.pem"),
               "-u", "%s:%s" % (mb.user, mb.password), url]
        p = subprocess.run(cmd, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_ssl_reqd_stls(self):
        mb = self.fresh()
        mb.add(MSG)
        out = self.curl("pop3://127.0.0.1:%d/1" % self.srv.port, mb)
        self.assertEqual(out, wire(MSG))
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect .*tls=TLSv1\.3 user=\"%s\"" %
            re.escape(mb.user)))

    def test_pop3s(self):
        mb = self.fresh()
        mb.add(MSG)
        out = self.curl("pop3s://127.0.0.1:%d/1" % self.tls_port, mb)
        self.assertEqual(out, wire(MSG))


@unittest.skipIf(FETCHMAIL is None, "fetchmail not installed")
class Fetchmail(tlstest.TLSTestCase):
    """fetchmail 6.4 with a default rc: it upgrades with STLS by itself."""

    def test_default_rc_retrieves_over_tls(self):
        mb = self.fresh()
        mb.add(MSG)
        home = tempfile.mkdtemp(dir=self.srv.dir)
        out = os.path.join(home, "out")
        rc = os.path.join(home, "fetchmailrc")
        with open(rc, "w") as f:
            f.write('poll mail.test.example via 127.0.0.1 port %d '
                    'proto pop3\n  user "%s" password "%s" '
                    'mda "/bin/sh -c \'cat >> %s\'"\n  sslcertfile "%s"\n'
                    '  sslcommonname "mail.test.example"\n'
                    % (self.srv.port, mb.user, mb.password, out,
                       os.path.join(self.srv.dir, "rsa.pem")))
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=home, FETCHMAILHOME=home)
        p = subprocess.run([FETCHMAIL, "-f", rc, "--nodetach", "-v",
                            "--pidfile", os.path.join(home, "pid")],
                           capture_output=True, timeout=120, env=env)
        text = (p.stdout + p.stderr).decode(errors="replace")
        self.assertEqual(p.returncode, 0, text)
        self.assertIn("STLS", text)
        with open(out, "rb") as f:
            got = f.read()
        self.assertIn(b"Subject: over tls", got)
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect .*reason=quit tls=TLSv1\.[23] user=\"%s\""
            % re.escape(mb.user)))


@unittest.skipIf(MPOP is None, "mpop not installed (scripts/deps)")
class Mpop(tlstest.TLSTestCase):

    def run_mpop(self, mb, port, starttls):
        home = tempfile.mkdtemp(dir=self.srv.dir)
        box = os.path.join(home, "mbox")
        open(box, "w").close()
        rc = os.path.join(home, "mpoprc")
        with open(rc, "w") as f:
            f.write("account default\nhost 127.0.0.1\nport %d\n"
                    "tls on\ntls_starttls %s\ntls_trust_file %s\n"
                    "auth user\nuser %s\npassword %s\n"
                    "delivery mbox %s\nuidls_file %s\n" %
                    (port, "on" if starttls else "off",
                     os.path.join(self.srv.dir, "rsa.pem"), mb.user,
                     mb.password, box, os.path.join(home, "uidls")))
        os.chmod(rc, 0o600)
        p = subprocess.run([MPOP, "-C", rc, "-q"], capture_output=True,
                           timeout=120, env=dict(os.environ, HOME=home))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(box, "rb") as f:
            return f.read()

    def test_starttls(self):
        mb = self.fresh()
        mb.add(MSG)
        self.assertIn(b"Subject: over tls", self.run_mpop(mb, self.srv.port,
                                                          True))
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect .*tls=TLSv1\.[23] user=\"%s\"" %
            re.escape(mb.user)))

    def test_implicit(self):
        mb = self.fresh()
        mb.add(MSG)
        self.assertIn(b"Subject: over tls", self.run_mpop(mb, self.tls_port,
                                                          False))


class HandshakeFailures(tlstest.TLSTestCase):

    def raw(self, port=None):
        s = socket.create_connection(("127.0.0.1", port or self.tls_port),
                                     timeout=evtest.TIMEOUT)
        self.addCleanup(s.close)
        return s

    def read_until_eof(self, s):
        """What the server sends before it closes. A reset counts as the
        close: the server closes with our unread octets in its buffer."""
        data = b""
        while len(data) < 65536:
            try:
                d = s.recv(4096)
            except ConnectionResetError:
                return data
            if not d:
                return data
            data += d
        raise AssertionError("no EOF after %d octets" % len(data))

    def client_hello(self):
        ctx = ssl.create_default_context()
        inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inb, outb, server_hostname="mail.test.example")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return outb.read()

    def test_plaintext_on_implicit_port(self):
        n = len(self.srv.log())
        s = self.raw()
        s.sendall(b"USER someone\r\n")
        data = self.read_until_eof(s)
        self.assertNotIn(b"+OK", data)
        self.assertTrue(self.srv.wait_log(r"event=tls-failed .*error=",
                                          start=n))
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect .*reason=tls-handshake-failed", start=n))
        self.assertTrue(self.srv.alive())

    def test_truncated_client_hello(self):
        hello = self.client_hello()
        self.assertGreater(len(hello), 40)
        n = len(self.srv.log())
        s = self.raw()
        s.sendall(hello[:len(hello) // 2])
        s.shutdown(socket.SHUT_WR)
        data = self.read_until_eof(s)
        # Nothing, or one TLS alert record (content type 21), then EOF.
        self.assertTrue(data == b"" or (data[0] == 21 and len(data) == 7),
                        data)
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect .*reason=tls-handshake-failed", start=n))

    def test_garbage_after_stls(self):
        n = len(self.srv.log())
        c = self.connect_plain()
        c.ok("STLS")
        c.send(b"\x16\x03\x01\x00\x05hello" + b"\xff" * 100)
        # As on the implicit port: nothing, or one TLS alert, then EOF.
        data = bytes(c.buf) + self.read_until_eof(c.sock)
        self.assertTrue(data == b"" or (data[0] == 21 and len(data) == 7),
                        data)
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect .*reason=tls-handshake-failed", start=n))


class SilentClient(tlstest.TLSTestCase):
    """A TLS client that never finishes its handshake is closed by the
    login timeout (the handshake's bound)."""

    CONFIG = tlstest.merge(tlstest.TLS_CONFIG,
                           {"server": {"login_timeout": "1"}})

    def test_silent_implicit(self):
        n = len(self.srv.log())
        s = socket.create_connection(("127.0.0.1", self.tls_port),
                                     timeout=10)
        self.addCleanup(s.close)
        t0 = time.monotonic()
        self.assertEqual(s.recv(100), b"")
        self.assertLess(time.monotonic() - t0, 8)
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect .*reason=tls-handshake-timeout", start=n))

    def test_silent_after_stls(self):
        n = len(self.srv.log())
        c = self.connect_plain()
        c.ok("STLS")
        c.expect_closed(timeout=8)
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect .*reason=login-timeout", start=n))


class NoTLS(evtest.ServerTestCase):
    """Without [tls]: no STLS in CAPA, STLS is -ERR, plain logins work."""

    def test_stls_unavailable(self):
        mb = self.fresh()
        c = self.connect()
        c.ok("CAPA")
        self.assertNotIn(b"STLS", c.multi())
        self.assertIn("not available", c.err("STLS"))
        c.login(mb.user, mb.password)


if __name__ == "__main__":
    evtest.main()
