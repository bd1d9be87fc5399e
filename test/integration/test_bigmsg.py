"""
A 20 MiB message: retrieved intact through poplib, size agrees with LIST,
and a client that stops reading in the middle of it neither blocks other
clients nor makes the daemon buffer the message in memory.
"""

import base64
import hashlib
import os
import poplib
import random
import signal
import socket
import subprocess
import time

import evtest
from evtest import wire

SIZE = 20 * 1024 * 1024


def big_message(seed=1939):
    """~20 MiB of LF-ended text lines, some starting with '.' or "..",
    some empty, some a lone "."; deterministic."""
    rnd = random.Random(seed)
    blob = base64.b64encode(rnd.randbytes(SIZE * 3 // 4 + 4096))
    out = [b"From: big@example.com\nSubject: twenty MiB\n\n"]
    pos = n = 0
    total = len(out[0])
    while total < SIZE:
        k = rnd.randrange(0, 200)
        line = blob[pos:pos + k]
        pos = (pos + k) % (len(blob) - 256)
        r = rnd.random()
        if r < 0.05:
            line = b"." + line
        elif r < 0.07:
            line = b".." + line
        elif r < 0.08:
            line = b"."
        elif r < 0.09:
            line = b""
        out.append(line + b"\n")
        total += len(line) + 1
        n += 1
    return b"".join(out)


class BigMessage(evtest.ServerTestCase):
    POOL = 4

    @classmethod
    def setup_users(cls, srv):
        cls.data = big_message()
        cls.wire = wire(cls.data)
        cls.digest = hashlib.sha256(cls.wire).hexdigest()
        cls.big = srv.add_user("big@example.com", "big-user-pw")
        cls.big.add(b"Subject: small\n\nsmall\n")
        cls.big.add(cls.data)
        # A second maildrop with the same big file (a hard link).
        cls.big2 = srv.add_user("big2@example.com", "big2-user-pw")
        src = cls.big.files()[cls.big.uidls()[1]]
        os.link(src, os.path.join(cls.big2.maildir, "new",
                                  "1800000000.M1P1.evtest"))
        cls.small = srv.add_user("small@example.com", "small-user-pw")
        cls.small_msgs = [b"Subject: s%d\n\n%s\n" % (i, b"z" * 1000 * i)
                          for i in range(5)]
        for m in cls.small_msgs:
            cls.small.add(m)

    def test_poplib_retr(self):
        p = poplib.POP3("127.0.0.1", self.srv.port, timeout=60)
        try:
            p.user(self.big.user)
            p.pass_(self.big.password)
            count, size = p.stat()
            self.assertEqual(count, 2)
            resp, listing, _ = p.list()
            sizes = dict(map(int, l.split()) for l in listing)
            self.assertEqual(sizes[2], len(self.wire))
            self.assertEqual(size, sizes[1] + sizes[2])
            resp, lines, octets = p.retr(2)
            got = b"".join(l + b"\r\n" for l in lines)
            self.assertEqual(len(got), len(self.wire))
            self.assertEqual(hashlib.sha256(got).hexdigest(), self.digest)
            resp, lines, _ = p.top(2, 3)
            self.assertEqual(b"".join(l + b"\r\n" for l in lines),
                             b"\r\n".join(self.wire.split(b"\r\n")[:6]) +
                             b"\r\n")
            p.quit()
        finally:
            p.close()

    def test_raw_stuffing(self):
        c = self.connect(timeout=60)
        c.login(self.big2.user, self.big2.password)
        c.send("RETR 1\r\n")
        self.assertOK(c.status())
        raw = c.multi_raw()
        self.assertEqual(hashlib.sha256(raw).hexdigest(),
                         hashlib.sha256(evtest.stuff(self.wire)).hexdigest())
        c.quit()

    def test_slow_reader_does_not_block(self):
        a = self.connect(timeout=60, rcvbuf=4096)
        a.login(self.big.user, self.big.password)
        a.ok("NOOP")
        time.sleep(0.3)
        rss0 = self.srv.rss_kb()
        a.send("RETR 2\r\n")
        a._fill(100)			# the transfer has started ...
        time.sleep(1.5)			# ... and now A does not read
        rss1 = self.srv.rss_kb()

        t0 = time.monotonic()
        b = self.connect(timeout=5)
        b.login(self.small.user, self.small.password)
        self.assertEqual(b.ok("STAT").split()[1], "5")
        b.ok_multi("LIST")
        for i, m in enumerate(self.small_msgs, 1):
            self.assertEqual(b.retr(i), wire(m))
        b.quit()
        dt = time.monotonic() - t0
        self.assertLess(dt, 2.0, "client B took %.2fs while A stalled" % dt)

        time.sleep(0.5)
        rss2 = self.srv.rss_kb()
        grow = max(rss1, rss2) - rss0
        if os.environ.get("EVTEST_VERBOSE"):
            print("\nRSS %d -> %d -> %d KiB, B took %.3fs" % (rss0, rss1, rss2, dt))
        self.assertLess(grow, 8 * 1024,
                        "RSS grew %d KiB while a reader stalled "
                        "(%d -> %d -> %d KiB)" % (grow, rss0, rss1, rss2))

        # A resumes and gets the whole message.
        self.assertOK(a.status())
        raw = a.multi_raw()
        self.assertEqual(len(raw), len(evtest.stuff(self.wire)))
        self.assertEqual(hashlib.sha256(raw).hexdigest(),
                         hashlib.sha256(evtest.stuff(self.wire)).hexdigest())
        a.ok("NOOP")
        a.quit()

    def test_disconnect_mid_transfer(self):
        mark = len(self.srv.log())
        a = self.connect(timeout=60, rcvbuf=4096)
        a.login(self.big2.user, self.big2.password)
        a.send("RETR 2\r\nRETR 1\r\n")	# -ERR (no 2), then a stalled +OK
        self.assertTrue(a.status().startswith("-ERR"))
        a._fill(100)
        a.close()
        # The summary counts the octets that went out, not 0 (the RETR did
        # not finish) and not what was queued but never sent.
        m = self.srv.wait_log(r'event=disconnect .*user="%s" '
                              r'state=TRANSACTION retr=1/(\d+) ' %
                              self.big2.user, start=mark)
        self.assertTrue(m, "\n".join(self.srv.log()[mark:]))
        self.assertGreater(int(m.group(1)), 0)
        self.assertLess(int(m.group(1)), len(self.wire))
        # The lock is released (maybe after a moment) and nothing deleted.
        deadline = time.monotonic() + 5
        while True:
            c = self.connect(timeout=60)
            c.ok("USER " + self.big2.user)
            r = c.cmd("PASS " + self.big2.password)
            if r.startswith("+OK") or time.monotonic() > deadline:
                break
            c.close()
            time.sleep(0.1)
        self.assertOK(r)
        self.assertEqual(c.ok("STAT"), "+OK 1 %d" % len(self.wire))
        c.quit()


class WriteTimeout(evtest.ServerTestCase):
    """write_timeout: a client that stops reading is dropped (no UPDATE);
    one that reads slowly but steadily is not."""
    CONFIG = {"server": {"write_timeout": "5"},
              "auth": {"max_failures": "100"}}
    POOL = 0

    @classmethod
    def setup_users(cls, srv):
        cls.data = big_message(seed=5)
        cls.wire = wire(cls.data)
        cls.a = srv.add_user("a@example.com", "a-user-pw")
        cls.a.add(b"Subject: small\n\nsmall\n")
        cls.a.add(cls.data)
        cls.b = srv.add_user("b@example.com", "b-user-pw")
        os.link(cls.a.files()[cls.a.uidls()[1]],
                os.path.join(cls.b.maildir, "new", "1800000000.M1P1.evtest"))

    def test_stalled_reader_dropped(self):
        c = self.connect(timeout=30, rcvbuf=4096)
        c.login(self.a.user, self.a.password)
        c.ok("DELE 1")
        c.send("RETR 2\r\n")
        c._fill(100)
        t0 = time.monotonic()
        # The maildrop stays locked ([IN-USE]) until the server drops us.
        while time.monotonic() - t0 < 15:
            p = self.connect(timeout=10)
            p.ok("USER " + self.a.user)
            r = p.cmd("PASS " + self.a.password)
            p.close()
            if r.startswith("+OK"):
                break
            self.assertIn("[IN-USE]", r)
            time.sleep(0.5)
        dt = time.monotonic() - t0
        self.assertGreater(dt, 3.5, "dropped after %.1fs" % dt)
        self.assertLess(dt, 12, "not dropped after %.1fs" % dt)
        c.close()
        self.assertEqual(len(self.a.uidls()), 2, "a dropped session deleted")

    def test_slow_steady_reader_kept(self):
        c = self.connect(timeout=30, rcvbuf=65536)
        c.login(self.b.user, self.b.password)
        c.send("RETR 1\r\n")
        t0 = time.monotonic()
        # Longer than write_timeout, reading a little all the time.
        while time.monotonic() - t0 < 7:
            c._fill(32768)
            time.sleep(0.25)
        self.assertOK(c.status())
        raw = c.multi_raw()
        self.assertEqual(hashlib.sha256(raw).hexdigest(),
                         hashlib.sha256(evtest.stuff(self.wire)).hexdigest())
        c.quit()


class ShutdownDuringTransfer(evtest.ServerTestCase):
    """SIGTERM while a client has stopped reading a big RETR: the RETR
    may go on for shutdown_timeout, then the daemon cuts it and exits 0;
    what the client got is a prefix of the reply (no status line injected
    inside the multi-line body), and its DELE is not applied."""
    POOL = 0
    CONFIG = {"server": {"shutdown_timeout": "2"}}

    @classmethod
    def setup_users(cls, srv):
        cls.data = big_message(seed=7)
        cls.stuffed = evtest.stuff(wire(cls.data))
        cls.a = srv.add_user("a@example.com", "a-user-pw")
        cls.a.add(b"Subject: small\n\nsmall\n")
        cls.a.add(cls.data)

    def test_sigterm_with_stalled_reader(self):
        c = self.connect(timeout=30, rcvbuf=4096)
        c.login(self.a.user, self.a.password)
        c.ok("DELE 1")
        c.send("RETR 2\r\n")
        c._fill(100)
        time.sleep(0.5)
        t0 = time.monotonic()
        self.srv.proc.send_signal(signal.SIGTERM)
        try:
            self.srv.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.fail("daemon still running 15s after SIGTERM")
        dt = time.monotonic() - t0
        self.assertGreater(dt, 1.5, "the RETR was not given its time")
        self.assertLess(dt, 10, "exit took %.1fs" % dt)
        self.assertTrue(self.srv.wait_log(r"event=shutdown-deadline "
                                          r"sessions=1"))
        self.assertEqual(self.srv.proc.returncode, 0)
        # Read what the kernel still holds for us.
        got = bytes(c.buf)
        c.sock.settimeout(5)
        try:
            while True:
                d = c.sock.recv(1 << 20)
                if not d:
                    break
                got += d
        except (ConnectionResetError, socket.timeout):
            pass
        status, _, body = got.partition(b"\r\n")
        self.assertTrue(status.startswith(b"+OK"), status[:80])
        if len(body) <= len(self.stuffed):
            self.assertEqual(body, self.stuffed[:len(body)],
                             "not a prefix of the message")
        else:
            # Complete message, then possibly one status line.
            self.assertEqual(body[:len(self.stuffed)], self.stuffed)
            rest = body[len(self.stuffed):]
            self.assertRegex(rest, rb"^-ERR [^\r\n]*\r\n$")
        self.assertEqual(len(self.a.uidls()), 2)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()


class MaxConnections(evtest.ServerTestCase):
    CONFIG = {"server": {"max_connections": "3"}}
    POOL = 2

    def test_excess_connection_refused(self):
        conns = [self.connect() for _ in range(3)]
        extra = evtest.Conn(self.srv.port, greet=False, timeout=5)
        self.addCleanup(extra.close)
        lines = extra.expect_closed()
        for l in lines:
            self.assertTrue(l.startswith(b"-ERR"), l)
        # The admitted ones work.
        mb = self.fresh()
        conns[0].login(mb.user, mb.password)
        conns[0].quit()
        # A slot is free again (maybe after a moment).
        deadline = time.monotonic() + 3
        while True:
            c = evtest.Conn(self.srv.port, greet=False, timeout=5)
            self.addCleanup(c.close)
            try:
                g = c.status()
            except evtest.Closed:
                g = ""
            if g.startswith("+OK") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertTrue(g.startswith("+OK"), g)


if __name__ == "__main__":
    evtest.main()
