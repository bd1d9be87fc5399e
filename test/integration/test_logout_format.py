"""
[log] logout_format: the disconnect line, like Dovecot's
pop3_logout_format. A session with RETR, TOP and DELE, counted by the
client (octets in and out on the socket), must give the numbers the line
says; the default stays the line evpop3d always wrote; a user name cannot
push another rip= before the real one; a bad format is a config error
for -t and for a start; the login and failed-login lines carry rip=.
"""

import re
import socket
import subprocess

import evtest

FMT = ("user=%{user} lip=%{lip} in=%i out=%o top=%t/%p retr=%r/%b del=%d "
       "msgs=%m size=%s left=%{left} dur=%{duration} reason=%{reason} "
       "tls=%{tls} 100%%")


class Raw:
    """A POP3 client on a plain socket that counts every octet."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=evtest.TIMEOUT)
        self.buf = b""
        self.sent = 0
        self.received = 0
        self.line()		# greeting

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError
        self.received += len(d)
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        l, _, self.buf = self.buf.partition(b"\r\n")
        return l.decode("latin-1")

    def cmd(self, c, multi=False):
        data = c.encode() + b"\r\n"
        self.sock.sendall(data)
        self.sent += len(data)
        r = self.line()
        if multi and r.startswith("+OK"):
            while self.line() != ".":
                pass
        return r

    def until_eof(self):
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        self.sock.close()


class Custom(evtest.ServerTestCase):
    CONFIG = {"log": {"logout_format": FMT}}

    def test_counts(self):
        mb = self.fresh()
        sizes = [len(evtest.wire(m)) for m in (
            b"Subject: 1\n\none\n", b"Subject: 2\n\ntwo two\n",
            b"Subject: 3\n\nthree\n")]
        for i in range(3):
            mb.add(b"Subject: %d\n\n%s\n" % (i + 1, [b"one", b"two two",
                                                     b"three"][i]))
        c = Raw(self.srv.port)
        lport = c.sock.getpeername()[1]
        self.assertTrue(c.cmd("USER " + mb.user).startswith("+OK"))
        self.assertTrue(c.cmd("PASS " + mb.password).startswith("+OK"))
        self.assertTrue(c.cmd("RETR 1", multi=True).startswith("+OK"))
        self.assertTrue(c.cmd("TOP 2 0", multi=True).startswith("+OK"))
        self.assertTrue(c.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(c.cmd("QUIT").startswith("+OK"))
        c.until_eof()
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect rip=127\.0\.0\.1:\d+ user=\"%s\" " %
            re.escape(mb.user)))
        line = [l for l in self.srv.log() if "event=disconnect" in l][-1]
        want = (r"^info sess=[0-9a-f]{16} event=disconnect "
                r"rip=127\.0\.0\.1:\d+ user=\"%s\" lip=127\.0\.0\.1:%d "
                r"in=%d out=%d top=1/(\d+) retr=1/(\d+) del=1 msgs=3 "
                r"size=%d left=2 dur=\d+\.\d{3} reason=quit 100%%$" % (
                    re.escape(mb.user), lport, c.sent, c.received,
                    sum(sizes)))
        self.assertRegex(line, want)
        top, retr = map(int, re.search(want, line).groups())
        self.assertEqual(retr, sizes[0])	# as LIST says
        self.assertGreater(top, 0)

    def test_user_cannot_forge_rip(self):
        c = self.connect()
        c.ok("USER rip=10.9.9.9")
        c.err("PASS nope")
        c.close()
        self.assertTrue(self.srv.wait_log(r"event=disconnect .*10\.9\.9\.9"))
        line = [l for l in self.srv.log() if "event=disconnect" in l][-1]
        self.assertRegex(line, r"^info sess=[0-9a-f]{16} event=disconnect "
                         r"rip=127\.0\.0\.1:\d+ "
                         r'user="rip=10\.9\.9\.9" ')
        # No tls= on a plain connection: the label goes with the value.
        self.assertNotIn("tls=", line)
        # The failed login names the real address first too.
        self.assertTrue(self.srv.wait_log(
            r"^warn sess=[0-9a-f]{16} event=auth-failed "
            r"rip=127\.0\.0\.1:\d+ user="))


class Default(evtest.ServerTestCase):

    def test_default_line(self):
        mb = self.fresh()
        mb.add(b"Subject: x\n\nbody\n")
        c = self.connect()
        c.login(mb.user, mb.password)
        c.retr(1)
        c.quit()
        c.close()
        self.assertTrue(self.srv.wait_log(
            r"^info sess=[0-9a-f]{16} event=disconnect "
            r"rip=127\.0\.0\.1:\d+ reason=quit user=\"%s\" state=UPDATE "
            r"retr=1/\d+ top=0/0 deleted=0 duration_ms=\d+$" %
            re.escape(mb.user)))
        # The login line carries the client's address.
        self.assertTrue(self.srv.wait_log(
            r"^info sess=[0-9a-f]{16} event=login rip=127\.0\.0\.1:\d+ "
            r"user=\"%s\"" % re.escape(mb.user)))


class BadFormat(evtest.ServerTestCase):
    START = False

    def check(self, fmt, why):
        cfg = {s: dict(kv) for s, kv in evtest.DEFAULT_CONFIG.items()}
        cfg["log"] = {"logout_format": fmt}
        path = self.srv.write_config(path=self.srv.dir + "/bad.ini",
                                     config=cfg)
        self.srv.write_passwd()
        for args in (["-t", "-c", path], ["-c", path]):
            p = subprocess.run([evtest.BIN] + args, capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=30,
                               cwd="/")
            err = p.stderr.decode(errors="replace")
            self.assertEqual(p.returncode, 1, err)
            self.assertIn("[log] logout_format: " + why, err)
            self.assertNotIn("event=ready", err)
            if "-t" not in args:
                self.assertRegex(err, r"(?m)^\S+ error event=startup-failed "
                                 r"step=config ")
                self.assertRegex(err, r"(?m)^\S+ error event=exiting "
                                 r"reason=startup-failed$")

    def test_unknown_variable(self):
        self.check("x=%{nosuch}", "unknown variable '%{nosuch}'")

    def test_unknown_letter(self):
        self.check("x=%q", "unknown variable '%q'")

    def test_unterminated(self):
        self.check("x=%{user", "unterminated '%{'")


if __name__ == "__main__":
    evtest.main()
