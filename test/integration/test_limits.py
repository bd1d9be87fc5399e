"""
Per-address limits ([auth] max_connections_per_ip, max_unauth_per_ip,
max_logins_per_user, limits_exempt): refusals with their RFC 3206 codes,
recovery once a connection goes, other clients unaffected, the exempt
loopback address, and exact counts after many connects and disconnects,
abrupt ones included (the SIGUSR1 stats line shows the tables empty).

Each client is a loopback source address of its own (srcconn.py).
"""

import re
import signal
import socket

import evtest
from srcconn import SrcClients


class Base(SrcClients, evtest.ServerTestCase):
    def stats(self):
        start = len(self.srv.log())
        self.srv.proc.send_signal(signal.SIGUSR1)
        # SIGUSR1 writes the net, pop3 and penalty lines in that order.
        self.assertTrue(self.srv.wait_log(r"event=stats part=penalty ",
                                          start=start))
        text = "\n".join(self.srv.log()[start:])
        net = re.search(r"event=stats part=net .*refused_per_ip=(\d+) "
                        r"per_ip_addrs=(\d+)", text)
        pen = re.search(r"event=stats part=penalty addrs=(\d+) "
                        r"idle_addrs=(\d+) evicted=(\d+) user_addrs=(\d+) "
                        r"refused_unauth=(\d+) refused_user=(\d+)", text)
        self.assertIsNotNone(net, text)
        self.assertIsNotNone(pen, text)
        return ([int(x) for x in net.groups()],
                [int(x) for x in pen.groups()])


class PerIp(Base):
    CONFIG = {"auth": {"max_connections_per_ip": "3",
                       "max_unauth_per_ip": "0"},
              "log": {"debug": "yes"}}

    def test_refused_and_recovers(self):
        held = [self.src("127.0.0.2") for _ in range(3)]
        r = self.refused("127.0.0.2")
        self.assertTrue(r.startswith("-ERR [SYS/TEMP] Too many connections "
                                     "from your address"), r)
        self.assertTrue(self.srv.wait_log(
            r"^warn event=refused reason=max-connections-per-ip "
            r"rip=127\.0\.0\.2 count=\d+$"))
        # Another client is not affected, nor the exempt 127.0.0.1.
        others = [self.src("127.0.0.3") for _ in range(3)]
        local = [self.connect() for _ in range(6)]
        for c in others + local:
            c.ok("CAPA")
            c.multi()
        # One goes (abruptly): a place comes free.
        mark = len(self.srv.log())
        held.pop().reset()
        self.assertTrue(self.srv.wait_log(r"event=disconnect rip=127\.0\.0\.2",
                                          start=mark))
        c = self.src("127.0.0.2")
        c.ok("CAPA")
        c.multi()
        self.assertEqual(self.refused("127.0.0.2")[:4], "-ERR")


class Unauth(Base):
    CONFIG = {"server": {"max_connections": "10"},
              "auth": {"max_connections_per_ip": "20",
                       "max_unauth_per_ip": "3"}}

    def test_idle_prelogin_cannot_starve_others(self):
        mb = self.srv.fresh()
        idle = [self.src("127.0.0.2") for _ in range(3)]
        r = self.refused("127.0.0.2")
        self.assertTrue(r.startswith("-ERR [SYS/TEMP] Too many connections "
                                     "from your address not logged in"), r)
        self.assertTrue(self.srv.wait_log(
            r"^warn sess=[0-9a-f]{16} event=refused "
            r"reason=max-unauth-per-ip rip=127\.0\.0\.2:\d+ count=\d+$"))
        # The hog holds 3 of max_connections = 10: the others get in.
        others = [self.src("127.0.0.%d" % (3 + i)) for i in range(6)]
        others[0].login(mb.user, mb.password)
        for c in others[1:]:
            c.ok("CAPA")
            c.multi()
        # A logged-in session no longer counts as unauthenticated.
        mb2 = self.srv.fresh()
        idle[0].login(mb2.user, mb2.password)
        c = self.src("127.0.0.2")
        c.ok("CAPA")
        c.multi()


class LoginsPerUser(Base):
    CONFIG = {"auth": {"max_logins_per_user": "1"},
              "log": {"debug": "yes"}}

    def test_user_and_address(self):
        mb = self.srv.fresh()
        a = self.src("127.0.0.2")
        a.login(mb.user, mb.password)
        # Same user, same address: refused by the limit, before any check.
        b = self.src("127.0.0.2")
        b.ok("USER " + mb.user)
        r = b.err("PASS " + mb.password)
        self.assertTrue(r.startswith("-ERR [IN-USE] Too many logins for "
                                     "this user from your address"), r)
        self.assertTrue(self.srv.wait_log(
            r'^warn sess=[0-9a-f]{16} event=auth-failed rip=127\.0\.0\.2:\d+ '
            r'user="%s" reason=max-logins-per-user$' % re.escape(mb.user)))
        # From another address the limit does not apply (the lock does).
        c = self.src("127.0.0.3")
        c.ok("USER " + mb.user)
        r = c.err("PASS " + mb.password)
        self.assertIn("locked", r)
        # Another user from the same address is fine.
        other = self.srv.fresh()
        self.src("127.0.0.2").login(other.user, other.password)
        # The first session goes: the user may log in from .2 again.
        mark = len(self.srv.log())
        a.quit()
        self.assertTrue(self.srv.wait_log(
            r'event=disconnect rip=127\.0\.0\.2:\d+ .*user="%s"'
            % re.escape(mb.user), start=mark))
        deadline = evtest.time.monotonic() + 10
        while True:
            b.ok("USER " + mb.user)
            r = b.cmd("PASS " + mb.password)
            if r.startswith("+OK") or "locked" not in r or \
                    evtest.time.monotonic() > deadline:
                break
        self.assertTrue(r.startswith("+OK"), r)


class ExactCounts(Base):
    """Hundreds of sessions from two addresses end in every way; then
    every count is back to zero. failure_delay 0: no penalty records."""
    CONFIG = {"auth": {"limits_exempt": '""',
                       "max_connections_per_ip": "1000",
                       "max_unauth_per_ip": "1000",
                       "max_logins_per_user": "1000",
                       "max_failures": "100"},
              "server": {"max_connections": "5000"}}
    POOL = 40

    def test_counts_return_to_zero(self):
        users = [self.srv.fresh() for _ in range(30)]
        mark = len(self.srv.log())
        n = 0
        for i in range(300):
            src = "127.0.0.%d" % (1 + i % 2)
            mb = users[i % len(users)]
            c = self.src(src)
            how = i % 6
            if how == 0:
                c.reset()			# RST right after the greeting
            elif how == 1:
                c.ok("USER " + mb.user)
                c.reset()
            elif how == 2:
                c.ok("USER " + mb.user)
                c.send("PASS wrong\r\n")	# gone while the check runs
                c.reset()
            elif how == 3:
                c.login(mb.user, mb.password)
                c.reset()			# logged in, then RST
            elif how == 4:
                c.ok("USER " + mb.user)
                c.err("PASS wrong")
                c.quit()
            else:
                c.ok("USER " + mb.user)
                c.send("PASS " + mb.password + "\r\nQUIT\r\n")
                c.expect_closed()
            n += 1
            if how == 3:
                # Its maildrop lock is released on a worker: wait for the
                # disconnect before the next login of the same user.
                self.assertTrue(self.srv.wait_count(r"event=disconnect ",
                                                    n, start=mark))
        self.assertTrue(self.srv.wait_count(r"event=disconnect ", n,
                                            start=mark, timeout=30))
        net, pen = self.stats()
        self.assertEqual(net[1], 0, "per_ip_addrs")
        self.assertEqual(pen[0], 0, "addrs")
        self.assertEqual(pen[3], 0, "user_addrs")
        self.assertEqual(net[0], 0, "refused_per_ip")


if __name__ == "__main__":
    evtest.main()
