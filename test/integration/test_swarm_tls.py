"""
evpop3d-swarm over TLS (--tls, --stls): against a real TLS server (python's
ssl module, OpenSSL underneath, on a loopback socket) the `full` scenario
runs clean over implicit TLS and after STLS, with every reply parsed and
cross-checked as over plain TCP (RETR sizes against LIST, with replies cut
at random points inside TLS records too), and the same against the real
daemon's `listen_tls` port and STLS (ECDSA P-256), with resumption; --tls-resume resumes sessions
(and nothing is resumed without it); --cacert verifies (a wrong name or
CA is a `tls` violation); and the swarm's teeth over STLS: a server that
refuses STLS is a `status` violation, one that talks in clear after its
+OK (the CVE-2011-0411 shape, seen from the client) a `tls` violation, one
that never answers the handshake a bounded `tls` timeout.

Env: EVPOP3D_SWARM, EVPOP3D_SOURCE_DIR (see test_swarm.py).
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

import evtest
from test_swarm import FakeServer, messages, swarm

HAVE_OPENSSL = shutil.which("openssl") is not None


def make_cert(d, name, key="ec"):
    """A self-signed certificate for name (CN and subjectAltName)."""
    keyp = os.path.join(d, name + ".key")
    crtp = os.path.join(d, name + ".crt")
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] \
        if key == "ec" else ["-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "2",
                    "-subj", "/CN=" + name, "-addext",
                    "subjectAltName=DNS:" + name, "-keyout", keyp,
                    "-out", crtp] + newkey,
                   check=True, capture_output=True, timeout=60)
    return crtp, keyp


class TLSFakeServer(FakeServer):
    """FakeServer behind TLS. mode "implicit": TLS from accept; "stls":
    plain greeting, STLS answered with stls_reply (then TLS if it is +OK,
    after sending junk in clear if any); "hang": STLS +OK, then nothing
    (the handshake never completes)."""

    def __init__(self, cert, key, mode, stls_reply=b"+OK begin TLS\r\n",
                 junk=b"", dribble=False):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.mode = mode
        self.stls_reply = stls_reply
        self.junk = junk
        self.handshakes = 0
        self.lock = threading.Lock()
        super().__init__(dribble=dribble)

    def session(self, c):
        c.settimeout(10)
        try:
            if self.mode == "implicit":
                c = self.ctx.wrap_socket(c, server_side=True)
            else:
                c.sendall(b"+OK fake ready\r\n")
                line = b""
                while not line.endswith(b"\n") and len(line) < 100:
                    b = c.recv(1)
                    if not b:
                        raise OSError("EOF before STLS")
                    line += b
                if line.rstrip(b"\r\n").upper() != b"STLS":
                    c.sendall(b"-ERR STLS first\r\n")
                    raise OSError("no STLS")
                c.sendall(self.stls_reply + self.junk)
                if not self.stls_reply.startswith(b"+OK"):
                    c.recv(100)		# until the client goes
                    raise OSError("refused")
                if self.mode == "hang":
                    c.recv(4096)	# the ClientHello, never answered
                    c.recv(100)
                    raise OSError("hung")
                c = self.ctx.wrap_socket(c, server_side=True)
            with self.lock:
                self.handshakes += 1
        except (OSError, ssl.SSLError):
            c.close()
            return
        self.serve_tls(c, greet=self.mode == "implicit")

    def serve_tls(self, c, greet):
        """FakeServer.session over TLS; after STLS, no second greeting
        (RFC 2595 section 4: the dialogue goes on)."""
        import random
        rnd = random.Random(c.fileno())
        f = c.makefile("rb")
        try:
            if greet:
                self.out(c, b"+OK fake ready\r\n", rnd)
            for line in f:
                if line.split()[:1] == [b"QUIT"]:
                    self.out(c, b"+OK bye\r\n", rnd)
                    break
                self.out(c, self.reply(line), rnd)
        except (OSError, ssl.SSLError):
            pass
        finally:
            f.close()
            c.close()


@unittest.skipUnless(HAVE_OPENSSL, "no openssl CLI")
class SwarmTLS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.cert, cls.key = make_cert(cls.tmp.name, "pop.test")
        cls.rsa_cert, cls.rsa_key = make_cert(cls.tmp.name, "rsa.test",
                                              key="rsa")
        cls.other, _ = make_cert(cls.tmp.name, "other.test")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def fake(self, mode, **kw):
        cert = kw.pop("cert", self.cert)
        key = kw.pop("key", self.key)
        f = TLSFakeServer(cert, key, mode, **kw)
        self.addCleanup(f.close)
        return f

    def run_swarm(self, fake, args, want_rc=0):
        rc, rep, err = swarm(["-p", str(fake.port), "-d", "30",
                              "--reply-timeout", "10000", "--json"] + args,
                             timeout=90)
        self.assertIsNotNone(rep, err)
        self.assertEqual(rc, want_rc, err)
        return rep, err

    def check_full(self, rep, n, mode, resume=False):
        """n clean `full` sessions over TLS: every command answered and
        checked (9 per session: USER PASS STAT LIST UIDL RETR x3 QUIT)."""
        self.assertEqual(rep["sessions"]["completed"], n)
        self.assertEqual(rep["violations"]["total"], 0)
        self.assertEqual(rep["commands"], 9 * n)
        self.assertEqual(rep["latency_us"]["commands"]["RETR"]["count"],
                         3 * n)
        t = rep["tls"]
        self.assertEqual(t["mode"], mode)
        self.assertEqual(t["resume"], resume)
        self.assertEqual(t["handshakes"], n)
        self.assertEqual(t["full"] + t["resumed"], n)
        self.assertEqual(rep["latency_us"]["handshake"]["count"], n)
        self.assertTrue(t["protocol"].startswith("TLSv1."), t)
        # the plaintext of the whole RETR bodies came through
        self.assertGreater(rep["bytes_in"],
                           n * sum(len(w) for w in FakeServer.WIRE))

    def test_implicit_full(self):
        f = self.fake("implicit")
        rep, _ = self.run_swarm(f, ["--tls", "-c", "4", "-n", "12", "full"])
        self.check_full(rep, 12, "implicit")
        self.assertEqual(rep["tls"]["resumed"], 0)
        self.assertEqual(f.handshakes, 12)

    def test_stls_full(self):
        f = self.fake("stls")
        rep, _ = self.run_swarm(f, ["--stls", "-c", "4", "-n", "12", "full"])
        self.check_full(rep, 12, "stls")
        self.assertEqual(f.handshakes, 12)
        # the greeting came in clear, before STLS: counted once per session
        self.assertEqual(rep["latency_us"]["greeting"]["count"], 12)

    def test_rsa_and_split_records(self):
        # RSA-2048; every reply written in pieces of 1-7 octets, each a
        # TLS record of its own, pipelined and not: still exact.
        f = self.fake("implicit", cert=self.rsa_cert, key=self.rsa_key,
                      dribble=True)
        rep, _ = self.run_swarm(f, ["--tls", "-c", "3", "-n", "6", "full"])
        self.check_full(rep, 6, "implicit")
        rep, _ = self.run_swarm(f, ["--tls", "-c", "3", "-n", "6",
                                    "-D", "msgs=3", "pipeline"])
        self.assertEqual(rep["sessions"]["completed"], 6)
        self.assertEqual(rep["commands"], 6 * 9)

    def test_resume(self):
        # 2 slots, 10 sessions: each slot's first handshake is full, the
        # later ones offer the slot's ticket and are resumed.
        for mode in ("implicit", "stls"):
            f = self.fake(mode)
            rep, _ = self.run_swarm(f, ["--" + ("tls" if mode == "implicit"
                                                else "stls"),
                                        "--tls-resume", "-c", "2", "-n",
                                        "10", "full"])
            self.check_full(rep, 10, mode, resume=True)
            self.assertGreaterEqual(rep["tls"]["full"], 2, rep["tls"])
            self.assertGreaterEqual(rep["tls"]["resumed"], 6, rep["tls"])

    def test_verify(self):
        f = self.fake("implicit")
        rep, _ = self.run_swarm(f, ["--tls", "--cacert", self.cert,
                                    "--tls-name", "pop.test", "-c", "2",
                                    "-n", "4", "login"])
        self.assertEqual(rep["tls"]["verify"], True)
        self.assertEqual(rep["sessions"]["completed"], 4)
        for args in (["--cacert", self.cert, "--tls-name", "wrong.test"],
                     ["--cacert", self.other, "--tls-name", "pop.test"]):
            rep, err = self.run_swarm(f, ["--tls", "-c", "2", "-n", "4"] +
                                      args + ["login"], want_rc=1)
            self.assertEqual(rep["violations"]["by_kind"]["tls"], 4, err)
            self.assertEqual(rep["sessions"]["completed"], 0)
            self.assertIn("certificate", err)

    def test_stls_refused(self):
        f = self.fake("stls", stls_reply=b"-ERR no TLS here\r\n")
        rep, err = self.run_swarm(f, ["--stls", "-c", "2", "-n", "4",
                                      "login"], want_rc=1)
        self.assertEqual(rep["violations"]["by_kind"]["status"], 4, err)
        self.assertIn("no TLS here", err)

    def test_stls_cleartext_after_ok(self):
        f = self.fake("stls", junk=b"+OK injected\r\n")
        rep, err = self.run_swarm(f, ["--stls", "-c", "2", "-n", "4",
                                      "login"], want_rc=1)
        self.assertEqual(rep["violations"]["by_kind"]["tls"], 4, err)
        self.assertIn("in clear after the STLS reply", err)

    def test_handshake_timeout(self):
        f = self.fake("hang")
        rc, rep, err = swarm(["-p", str(f.port), "--stls", "-c", "2", "-n",
                              "2", "--reply-timeout", "300", "--json",
                              "login"], timeout=60)
        self.assertEqual(rc, 1, err)
        self.assertEqual(rep["violations"]["by_kind"]["tls"], 2, err)
        self.assertIn("handshake not done within 300 ms", err)

    def test_plain_server_refuses_handshake(self):
        # --tls against a plain POP3 server: its greeting is no
        # ServerHello.
        f = FakeServer()
        self.addCleanup(f.close)
        rc, rep, err = swarm(["-p", str(f.port), "--tls", "-c", "1", "-n",
                              "2", "--json", "login"], timeout=60)
        self.assertEqual(rc, 1, err)
        self.assertEqual(rep["violations"]["by_kind"]["tls"], 2, err)

    def test_usage(self):
        for args in (["--tls", "--stls"], ["--tls-resume"],
                     ["--cacert", "/nonexistent"], ["--tls", "--tls-name",
                                                    ""]):
            rc, rep, err = swarm(["-p", "1", "-d", "1"] + args + ["login"])
            self.assertEqual(rc, 2, "%r: %s" % (args, err))
        # an unreadable CA file is a setup error, named
        rc, rep, err = swarm(["-p", "1", "-d", "1", "--tls", "--cacert",
                              "/nonexistent/ca.pem", "login"])
        self.assertEqual(rc, 2, err)
        self.assertIn("/nonexistent/ca.pem", err)


@unittest.skipUnless(HAVE_OPENSSL, "no openssl CLI")
class SwarmTLSDaemon(evtest.ServerTestCase):
    """The swarm over TLS against evpop3d itself: implicit TLS on
    listen_tls and STLS on the plain listener, `full` with every reply
    checked, counts exact (-n), resumption with the daemon's tickets."""
    POOL = 1
    USERS = 10
    N = 30

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.cert, cls.key = make_cert(cls.tmp.name, "pop.test")
        cls.CONFIG = {"server": {"listen_tls": "127.0.0.1:0"},
                      "tls": {"cert": cls.cert, "key": cls.key}}
        super().setUpClass()
        m = [re.search(r"\bevent=listen\b.*\baddr=127\.0\.0\.1:(\d+)"
                       r".*\btls=implicit", l) for l in cls.srv.log()]
        ports = [int(x.group(1)) for x in m if x]
        if len(ports) != 1:
            raise AssertionError("no implicit TLS listener logged:\n" +
                                 "\n".join(cls.srv.log()))
        cls.tls_port = ports[0]

    @classmethod
    def setup_users(cls, srv):
        cls.users = os.path.join(srv.dir, "users.txt")
        with open(cls.users, "w") as f:
            for i in range(cls.USERS):
                mb = srv.add_user("tls%02d@example.com" % i, "Tl-%02d-pw" % i)
                for msg in messages(i):
                    mb.add(msg)
                f.write("%s:%s\n" % (mb.user, mb.password))

    def run_full(self, port, mode, extra=()):
        rc, rep, err = swarm(["-p", str(port), "--" + mode, "-c", "5",
                              "-n", str(self.N), "-d", "60", "-U",
                              self.users, "--json"] + list(extra) +
                             ["full"], timeout=120)
        self.assertIsNotNone(rep, err)
        self.assertEqual(rc, 0, err)
        n = self.N
        self.assertEqual(rep["sessions"]["completed"], n, err)
        self.assertEqual(rep["violations"]["total"], 0, err)
        # USER PASS STAT LIST UIDL, RETR x4, QUIT
        self.assertEqual(rep["commands"], 10 * n)
        self.assertEqual(rep["latency_us"]["commands"]["RETR"]["count"],
                         4 * n)
        self.assertEqual(rep["tls"]["handshakes"], n)
        self.assertEqual(rep["latency_us"]["handshake"]["count"], n)
        self.assertTrue(rep["tls"]["protocol"].startswith("TLSv1."))
        return rep

    def test_implicit(self):
        rep = self.run_full(self.tls_port, "tls")
        self.assertEqual(rep["tls"]["resumed"], 0)

    def test_stls(self):
        rep = self.run_full(self.srv.port, "stls")
        self.assertEqual(rep["tls"]["resumed"], 0)

    def test_resume(self):
        # 5 slots: at most 5 full handshakes, the rest resumed with the
        # daemon's tickets (if a ticket arrived before its session ended)
        for port, mode in ((self.tls_port, "tls"), (self.srv.port, "stls")):
            rep = self.run_full(port, mode, ["--tls-resume"])
            self.assertGreaterEqual(rep["tls"]["resumed"], self.N // 2,
                                    rep["tls"])

    def test_verify(self):
        rc, rep, err = swarm(["-p", str(self.tls_port), "--tls", "--cacert",
                              self.cert, "--tls-name", "pop.test", "-c",
                              "2", "-n", "4", "-d", "60", "-U", self.users,
                              "--json", "login"], timeout=120)
        self.assertEqual(rc, 0, err)
        self.assertEqual(rep["sessions"]["completed"], 4)


if __name__ == "__main__":
    unittest.main()
