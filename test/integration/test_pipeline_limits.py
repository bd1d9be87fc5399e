"""
PIPELINING (RFC 2449 section 6.6), line-length limits (RFC 2449 section 4),
the bad-command limits and the login timeout.
"""

import base64
import time

import evtest
from evtest import wire, parse_list

MSGS = [b"Subject: a\n\n.dot\nbody a\n",
        b"Subject: b\r\n\r\nbody b\r\n",
        b"Subject: c\n\nbody c, no newline"]


class Pipelining(evtest.ServerTestCase):
    POOL = 10

    def maildrop(self):
        mb = self.fresh()
        mb.uid = [mb.add(m) for m in MSGS]
        return mb

    def test_whole_session_in_one_write(self):
        mb = self.maildrop()
        c = self.connect()
        c.send("USER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nRETR 1\r\nUIDL\r\n"
               "TOP 2 0\r\nNOOP\r\nDELE 3\r\nLIST 3\r\nRSET\r\nQUIT\r\n" %
               (mb.user, mb.password))
        self.assertOK(c.status())			# USER
        self.assertOK(c.status())			# PASS
        total = sum(len(wire(m)) for m in MSGS)
        self.assertEqual(c.status(), "+OK 3 %d" % total)	# STAT
        self.assertOK(c.status())			# LIST
        self.assertEqual(parse_list(c.multi()),
                         {i + 1: len(wire(m)) for i, m in enumerate(MSGS)})
        self.assertOK(c.status())			# RETR 1
        self.assertEqual(b"".join(l + b"\r\n" for l in c.multi()),
                         wire(MSGS[0]))
        self.assertOK(c.status())			# UIDL
        self.assertEqual([l.split()[1].decode() for l in c.multi()], mb.uid)
        self.assertOK(c.status())			# TOP 2 0
        self.assertEqual(c.multi(), [b"Subject: b", b""])
        self.assertOK(c.status())			# NOOP
        self.assertOK(c.status())			# DELE 3
        self.assertTrue(c.status().startswith("-ERR"))	# LIST 3
        self.assertOK(c.status())			# RSET
        self.assertOK(c.status())			# QUIT
        c.expect_closed()
        self.assertEqual(mb.uidls(), sorted(mb.uid))

    def test_pipelined_login_then_failure(self):
        # A failed PASS must not let the pipelined STAT run as logged in.
        mb = self.maildrop()
        c = self.connect()
        c.send("USER %s\r\nPASS wrong\r\nSTAT\r\nUSER %s\r\nPASS %s\r\n"
               "STAT\r\nQUIT\r\n" % (mb.user, mb.user, mb.password))
        self.assertOK(c.status())
        self.assertTrue(c.status().startswith("-ERR"))
        self.assertTrue(c.status().startswith("-ERR"))
        self.assertOK(c.status())
        self.assertOK(c.status())
        self.assertTrue(c.status().startswith("+OK 3 "))
        self.assertOK(c.status())
        c.expect_closed()

    def test_many_commands_one_write(self):
        mb = self.maildrop()
        c = self.login(mb)
        n = 500
        c.send("NOOP\r\nSTAT\r\n" * n)
        for _ in range(n):
            self.assertEqual(c.status(), "+OK")
            self.assertTrue(c.status().startswith("+OK 3 "))
        c.quit()

    def test_many_retr_one_write(self):
        mb = self.maildrop()
        big = b"".join(b"line %06d %s\n" % (i, b"y" * 60) for i in range(3000))
        mb.add(big)
        c = self.login(mb)
        n = 40
        c.send("RETR 4\r\nRETR 1\r\n" * n + "QUIT\r\n")
        for _ in range(n):
            self.assertOK(c.status())
            self.assertEqual(b"".join(l + b"\r\n" for l in c.multi()),
                             wire(big))
            self.assertOK(c.status())
            self.assertEqual(b"".join(l + b"\r\n" for l in c.multi()),
                             wire(MSGS[0]))
        self.assertOK(c.status())
        c.expect_closed()

    def test_pipelined_sasl_continuation(self):
        mb = self.maildrop()
        b64 = evtest.plain_b64(mb.user, mb.password)
        self.srv.secret(b64)
        c = self.connect()
        c.send("AUTH PLAIN\r\n%s\r\nSTAT\r\nQUIT\r\n" % b64)
        r = c.status()
        self.assertTrue(r.startswith("+ ") or r == "+", r)
        self.assertOK(c.status())
        self.assertTrue(c.status().startswith("+OK 3 "))
        self.assertOK(c.status())
        c.expect_closed()

    def test_nothing_after_quit(self):
        mb = self.maildrop()
        c = self.login(mb)
        c.send("DELE 1\r\nQUIT\r\nDELE 2\r\nNOOP\r\n")
        self.assertOK(c.status())
        self.assertOK(c.status())
        self.assertEqual(c.expect_closed(), [])
        self.assertEqual(mb.uidls(), sorted(mb.uid[1:]))

    def test_byte_at_a_time(self):
        mb = self.maildrop()
        c = self.connect()
        for ch in "USER %s\r\nPASS %s\r\nSTAT\r\n" % (mb.user, mb.password):
            c.send(ch)
        self.assertOK(c.status())
        self.assertOK(c.status())
        self.assertTrue(c.status().startswith("+OK 3 "))
        c.quit()


class LineLimits(evtest.ServerTestCase):
    POOL = 10

    def test_long_line_then_next(self):
        mb = self.fresh()
        c = self.login(mb)
        c.send("NOOP " + "x" * 2000 + "\r\nNOOP\r\n")
        self.assertTrue(c.status().startswith("-ERR"))
        self.assertEqual(c.status(), "+OK")
        c.quit()

    def test_long_line_in_pieces(self):
        # The tail of an over-long line is discarded across many reads and
        # reported once.
        mb = self.fresh()
        c = self.login(mb)
        c.send("STAT " + "y" * 1500)
        time.sleep(0.1)
        for _ in range(5):
            c.send("z" * 1000)
            time.sleep(0.05)
        c.send("\r\nSTAT\r\n")
        self.assertTrue(c.status().startswith("-ERR"))
        self.assertEqual(c.status(), "+OK 0 0")
        c.ok("NOOP")
        c.quit()

    def test_long_line_before_login(self):
        mb = self.fresh()
        c = self.connect()
        c.send("USER " + "u" * 5000 + "\r\n")
        self.assertTrue(c.status().startswith("-ERR"))
        c.login(mb.user, mb.password)
        c.quit()

    def test_huge_line_bounded(self):
        # 4 MiB without a newline must not kill the session or the daemon.
        mb = self.fresh()
        c = self.login(mb)
        chunk = b"A" * 65536
        for _ in range(64):
            c.send(chunk)
        c.send("\r\nNOOP\r\n")
        self.assertTrue(c.status().startswith("-ERR"))
        self.assertEqual(c.status(), "+OK")
        c.quit()

    def test_1024_octet_boundary(self):
        # Exactly POP3_LINE_MAX (1024) octets before CRLF is a command (an
        # invalid user name); one more is an over-long line.
        c = self.connect()
        invalid = c.cmd("USER " + "a" * 300)
        toolong = c.cmd("USER " + "a" * 3000)
        c.close()
        self.assertTrue(invalid.startswith("-ERR"), invalid)
        self.assertTrue(toolong.startswith("-ERR"), toolong)
        # The two replies differ, so the boundary is visible.
        self.assertNotEqual(invalid, toolong)
        c = self.connect()
        self.assertEqual(c.cmd("USER " + "a" * 1019), invalid)
        c.close()
        c = self.connect()
        self.assertEqual(c.cmd("USER " + "a" * 1020), toolong)
        c.close()

    def test_255_octet_command(self):
        # RFC 2449 section 4: at least 255 octets including CRLF.
        c = self.connect()
        line = "USER " + "a" * 248
        self.assertEqual(len(line) + 2, 255)
        self.assertOK(c.cmd(line))
        c.close()

    def test_keyword_rules(self):
        mb = self.fresh()
        c = self.login(mb)
        c.err("")			# empty line
        c.ok("NOOP")
        c.err("NOOPNOOP")
        c.ok("NOOP")
        c.quit()


class BadCommands(evtest.ServerTestCase):
    POOL = 6

    def test_after_login_limit(self):
        mb = self.fresh()
        c = self.login(mb)
        # 19 consecutive bad commands are tolerated; a good one resets.
        for _ in range(19):
            c.err("XYZZY")
        c.ok("NOOP")
        for _ in range(19):
            c.err("XYZZY")
        c.ok("NOOP")
        # Then 25 in a row: the 20th is the last one answered, and the
        # session ends with a reason (pipelined input runs in order, so
        # the count is exact).
        c.send("XYZZY\r\n" * 25)
        lines = c.expect_closed()
        self.assertEqual(len(lines), 21, lines)
        for l in lines:
            self.assertTrue(l.startswith(b"-ERR"), l)
        self.assertEqual(lines[-1], b"-ERR Too many bad commands, closing.")
        # The session ended without UPDATE; the daemon is fine.
        c = self.login(mb)
        c.quit()

    def test_before_login_limit(self):
        mb = self.fresh()
        c = self.connect()
        for _ in range(4):
            c.err("XYZZY")
        c.ok_multi("CAPA")
        c.send("XYZZY\r\n" * 10)
        lines = c.expect_closed()
        # CAPA reset the count: five more answered, then the close.
        self.assertEqual(len(lines), 6, lines)
        for l in lines:
            self.assertTrue(l.startswith(b"-ERR"), l)
        self.assertEqual(lines[-1], b"-ERR Too many bad commands, closing.")
        c = self.login(mb)
        c.quit()

    def test_wrong_state_counts_before_login(self):
        c = self.connect()
        c.send("STAT\r\n" * 10)
        lines = c.expect_closed()
        self.assertEqual(len(lines), 6, lines)
        self.assertEqual(lines[-1], b"-ERR Too many bad commands, closing.")

    def test_invalid_arguments_count_before_login(self):
        """Invalid USER, APOP and AUTH data are bad commands too: a client
        cannot send hundreds of them on one connection."""
        floods = [
            "USER ../etc\r\n" * 300,
            "USER a b\r\nUSER \x85\r\n" * 150,
            "AUTH PLAIN !!!!\r\n" * 300,
            "AUTH X-NOSUCH\r\n" * 300,
            "AUTH PLAIN %s\r\n" % base64.b64encode(b"no-nuls").decode() * 300,
            "APOP ../x 0123\r\n" * 300,
            "PASS without-user\r\n" * 300,
        ]
        for flood in floods:
            with self.subTest(flood=flood[:20]):
                c = self.connect()
                c.send(flood)
                lines = c.expect_closed()
                self.assertEqual(len(lines), 6, lines)
                for l in lines:
                    self.assertTrue(l.startswith(b"-ERR"), l)
                self.assertEqual(lines[-1],
                                 b"-ERR Too many bad commands, closing.")
        # SASL responses that are not valid count too (cancelling does not).
        c = self.connect()
        c.send("AUTH PLAIN\r\n*\r\n")
        self.assertEqual(c.status(), "+ ")
        self.assertTrue(c.status().startswith("-ERR"))
        for _ in range(4):
            self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
            self.assertTrue(c.cmd("%%%%").startswith("-ERR [AUTH]"))
        c.ok_multi("CAPA")
        c.send("AUTH PLAIN\r\n%%%%\r\n" * 5)
        lines = c.expect_closed()
        self.assertEqual(lines[-1], b"-ERR Too many bad commands, closing.")


class Concurrency(evtest.ServerTestCase):
    POOL = 20

    def test_many_clients_interleaved(self):
        # 200 connections open at once, served in any order.
        conns = [self.connect() for _ in range(200)]
        for c in reversed(conns):
            c.send("CAPA\r\n")
        for c in conns:
            self.assertOK(c.status())
            self.assertIn(b"UIDL", c.multi())
        for c in conns:
            c.close()

    def test_parallel_logins_and_retr(self):
        # 20 users log in and fetch at the same time (the logins run on
        # worker threads; the replies must go to the right clients).
        users = [self.fresh() for _ in range(20)]
        for i, mb in enumerate(users):
            mb.body = b"Subject: %s\n\n%s\n" % (mb.user.encode(),
                                                  b"w" * (100 * i))
            mb.add(mb.body)
        conns = [self.connect() for _ in users]
        for c, mb in zip(conns, users):
            c.send("USER %s\r\nPASS %s\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n"
                   % (mb.user, mb.password))
        for c, mb in zip(conns, users):
            self.assertOK(c.status())
            self.assertOK(c.status())
            self.assertOK(c.status())
            self.assertEqual(b"".join(l + b"\r\n" for l in c.multi()),
                             wire(mb.body))
            self.assertOK(c.status())
            self.assertOK(c.status())
            c.expect_closed()
        for mb in users:
            self.assertEqual(mb.uidls(), [])


class LoginTimeout(evtest.ServerTestCase):
    CONFIG = {"server": {"login_timeout": "2"}}
    POOL = 4

    def test_idle_before_login(self):
        c = self.connect()
        t0 = time.monotonic()
        c.expect_closed(timeout=8)
        dt = time.monotonic() - t0
        self.assertGreater(dt, 1.5)
        self.assertLess(dt, 5)

    def test_commands_do_not_extend_login_timeout(self):
        c = self.connect()
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 8:
                if not c.cmd("CAPA").startswith("+OK"):
                    break	# e.g. "-ERR timeout" just before the close
                c.multi()
                time.sleep(0.3)
        except (evtest.Closed, BrokenPipeError, ConnectionResetError):
            pass
        dt = time.monotonic() - t0
        self.assertLess(dt, 5, "still connected after %.1fs" % dt)

    def test_logged_in_session_survives(self):
        mb = self.fresh()
        c = self.login(mb)
        time.sleep(3)
        c.ok("NOOP")
        c.quit()

    def test_half_login_times_out(self):
        mb = self.fresh()
        c = self.connect()
        c.ok("USER " + mb.user)
        c.expect_closed(timeout=8)


if __name__ == "__main__":
    evtest.main()
