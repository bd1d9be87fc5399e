"""
evpop3d behind Debian's real HAProxy (issue 13): haproxy on a loopback
port, `send-proxy-v2` to TWO evpop3d instances on one shared Maildir root
(balance roundrobin), health-checked with a tcp-check that expects the
greeting's "+OK" over its own PROXY v2 header (check-send-proxy: a LOCAL
header, the check's own address stands). HAProxy has no POP3 check of
its own (2.6 has no `option pop3-check`: `haproxy -c` refuses it), so
the tcp-check is the way.

Checked: haproxy's stats socket (`show stat`) reports both servers UP;
through haproxy, one user's sessions never both hold the maildrop (the
second concurrent login gets [IN-USE] whichever instance it lands on,
and each instance is both the holder and the refuser once); both
instances' logs show the real client address, 127.0.0.5 (the client
binds it), never haproxy's 127.0.0.1; mail one instance's session
deletes is gone for the other's.

The README's "Behind HAProxy" configuration is this test's, ports aside.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import evtest
from srcconn import SrcConn

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
CLIENT = "127.0.0.5"

HAPROXY_CFG = """\
global
    stats socket {dir}/haproxy.sock mode 600 level admin
    maxconn 200

defaults
    mode tcp
    timeout connect 5s
    timeout client 10m
    timeout server 10m

frontend pop3
    bind 127.0.0.1:{port}
    default_backend evpop3d

backend evpop3d
    balance roundrobin
    option tcp-check
    tcp-check expect string +OK
    default-server send-proxy-v2 check check-send-proxy inter 500ms fall 2 rise 1
    server a 127.0.0.1:{port_a}
    server b 127.0.0.1:{port_b}
"""

CONFIG = {
    "server": {"proxy_protocol_from": "127.0.0.1"},
    "log": {"debug": "yes"},
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class HAProxy:
    """haproxy -db (foreground) with its own config and stats socket."""

    def __init__(self, directory, port_a, port_b):
        self.dir = directory
        self.proc = None
        self.out = []
        for _ in range(5):	# a port taken between free_port() and bind
            self.port = free_port()
            cfg = os.path.join(directory, "haproxy.cfg")
            with open(cfg, "w") as f:
                f.write(HAPROXY_CFG.format(dir=directory, port=self.port,
                                           port_a=port_a, port_b=port_b))
            subprocess.run([HAPROXY, "-c", "-f", cfg], check=True,
                           capture_output=True, timeout=30)
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", cfg],
                                         stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT)
            threading.Thread(target=self._read, daemon=True).start()
            if self._wait_listening():
                return
            self.stop()
        raise AssertionError("haproxy did not start: %s" % "".join(self.out))

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            self.out.append(raw.decode("latin-1"))

    def _wait_listening(self, timeout=15):
        deadline = time.monotonic() + timeout * evtest.SCALE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                self.stat()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def command(self, line):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(os.path.join(self.dir, "haproxy.sock"))
            s.sendall(line.encode() + b"\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    return data.decode()
                data += d
        finally:
            s.close()

    def stat(self):
        """{(pxname, svname): row dict} from `show stat` (CSV)."""
        text = self.command("show stat")
        lines = text.splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for l in lines[1:]:
            if l:
                row = dict(zip(head, l.split(",")))
                out[(row["pxname"], row["svname"])] = row
        return out

    def wait_up(self, names, timeout=20, backend="evpop3d"):
        deadline = time.monotonic() + timeout * evtest.SCALE
        while True:
            st = self.stat()
            status = {n: st[(backend, n)]["status"] for n in names}
            if all(v == "UP" for v in status.values()):
                return st
            if time.monotonic() > deadline:
                raise AssertionError("haproxy servers not UP: %r\n%s" %
                                     (status, "".join(self.out[-20:])))
            time.sleep(0.1)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@unittest.skipUnless(HAPROXY, "haproxy not installed (scripts/deps)")
class BehindHAProxy(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.shared = tempfile.mkdtemp(prefix="evtest-haproxy-")
        cls.addClassCleanup(shutil.rmtree, cls.shared, True)
        cls.a = evtest.Server(config=CONFIG, pool=0)
        cls.addClassCleanup(cls.a.cleanup)
        cls.b = evtest.Server(config=CONFIG, pool=0)
        cls.addClassCleanup(cls.b.cleanup)
        cls.users = []
        for i in range(4):
            user = "ha%d@example.com" % i
            password = "Ha-%d-%s" % (i, os.urandom(4).hex())
            home = os.path.join(cls.shared, "home", "ha%d" % i)
            mb = cls.a.add_user(user, password, home=home)
            cls.b.add_user(user, password, stored=mb.stored, home=home)
            cls.users.append(mb)
        cls.a.start()
        cls.b.start()
        cls.ha = HAProxy(cls.shared, cls.a.port, cls.b.port)
        cls.addClassCleanup(cls.ha.stop)

    @classmethod
    def tearDownClass(cls):
        cls.ha.stop()
        problems = []
        for srv in (cls.a, cls.b):
            try:
                srv.stop()
            except AssertionError as e:
                problems.append(str(e))
        if problems:
            raise AssertionError("\n".join(problems))

    def client(self):
        c = SrcConn(self.ha.port, CLIENT)
        self.addCleanup(c.close)
        self.assertTrue(c.greeting.startswith("+OK"), c.greeting)
        return c

    def served_by(self, c, marks):
        """Which instance logged the session of client c ("a" or "b"),
        by its real address and port."""
        port = c.sock.getsockname()[1]
        rx = r"rip=127\.0\.0\.5:%d\b" % port
        deadline = time.monotonic() + 10 * evtest.SCALE
        while time.monotonic() < deadline:
            for name, srv in (("a", self.a), ("b", self.b)):
                if srv.wait_log(rx, 0, marks[name]):
                    return name
            time.sleep(0.05)
        raise AssertionError("no instance logged %s" % rx)

    def test_1_both_up(self):
        for backend in ("evpop3d",):
            st = self.ha.wait_up(["a", "b"], backend=backend)
            for n in ("a", "b"):
                self.assertEqual(st[(backend, n)]["check_status"], "L7OK",
                                 st[(backend, n)])
        # The checks came with a LOCAL header: the check's own address.
        self.assertTrue(self.a.wait_log(
            r"^debug event=proxy-header rip=127\.0\.0\.1:\d+ "
            r"proxy=127\.0\.0\.1:\d+ version=2 local=1$", 10))
        self.assertTrue(self.b.wait_log(r"event=proxy-header .* local=1$",
                                        10))

    def test_2_maildrop_held_once(self):
        """Two rounds, shifted by one connection so that each instance is
        once the holder and once the refuser."""
        self.ha.wait_up(["a", "b"])
        mb = self.users[0]
        holders = []
        for rnd in range(2):
            marks = {"a": len(self.a.log()), "b": len(self.b.log())}
            first = self.client()
            first.login(mb.user, mb.password)
            second = self.client()
            second.ok("USER " + mb.user)
            r = second.cmd("PASS " + mb.password)
            self.assertTrue(r.startswith("-ERR [IN-USE]"), r)
            h, o = self.served_by(first, marks), self.served_by(second, marks)
            self.assertNotEqual(h, o, "roundrobin put both on %s" % h)
            holders.append(h)
            # The refusal is logged by the refusing instance, with the
            # client's address.
            other = self.a if o == "a" else self.b
            self.assertTrue(other.wait_log(
                r"event=login-failed rip=127\.0\.0\.5:%d user=\"%s\" "
                r"reason=" % (second.sock.getsockname()[1],
                                            re.escape(mb.user)), 10,
                marks[o]))
            second.close()
            first.quit()
            # Shift roundrobin by one for the next round.
            self.client().quit()
        self.assertEqual(sorted(holders), ["a", "b"])

    def test_3_real_address_in_both_logs(self):
        self.ha.wait_up(["a", "b"])
        marks = {"a": len(self.a.log()), "b": len(self.b.log())}
        seen = set()
        for i in range(4):
            mb = self.users[1 + i % 3]
            c = self.client()
            c.login(mb.user, mb.password)
            c.quit()
            seen.add(self.served_by(c, marks))
        self.assertEqual(seen, {"a", "b"})
        for srv, name in ((self.a, "a"), (self.b, "b")):
            logins = [l for l in srv.log()[marks[name]:]
                      if "event=login " in l]
            self.assertTrue(logins, name)
            for l in logins:
                self.assertRegex(l, r"rip=127\.0\.0\.5:\d+ ")

    def test_4_shared_maildir(self):
        """A message deleted through one instance is gone through the
        other (one Maildir root, two daemons)."""
        self.ha.wait_up(["a", "b"])
        mb = self.users[3]
        mb.add(b"Subject: one\n\nbody\n")
        mb.add(b"Subject: two\n\nbody\n")
        c = self.client()
        c.login(mb.user, mb.password)
        self.assertEqual(c.ok("STAT").split()[1], "2")
        c.ok("DELE 1")
        c.quit()
        # The next connection goes to the other instance (roundrobin).
        d = self.client()
        d.login(mb.user, mb.password)
        self.assertEqual(d.ok("STAT").split()[1], "1")
        d.quit()
        marks = {"a": 0, "b": 0}
        self.assertNotEqual(self.served_by(c, marks),
                            self.served_by(d, marks))


if __name__ == "__main__":
    evtest.main()
