"""
The auth penalty (src/pop3/penalty.c): each failed login from an address
doubles the delay of the next failure's answer, from failure_delay up to
penalty_max; a successful login clears it; penalty_expire seconds without
a failure forget it; parallel connections from one address wait their
turn instead of each getting the short delay. Every test is a loopback
source address of its own (srcconn.py), so tests do not share penalties.

Timing tolerances: a delay is never shorter than its lower bound (that is
what the penalty guarantees) and the upper bounds leave a busy machine a
second of slack.
"""

import re
import threading
import time

import evtest
from srcconn import SrcClients

FD = 200		# failure_delay, ms
CAP = 800		# penalty_max, ms
EXPIRE = 2		# penalty_expire, s
SLACK = 1.0		# s, for a busy machine
EARLY = 0.005		# s, timer and clock rounding


class Penalty(SrcClients, evtest.ServerTestCase):
    CONFIG = {"auth": {"failure_delay": str(FD), "penalty_max": str(CAP),
                       "penalty_expire": str(EXPIRE),
                       "max_failures": "20",
                       "max_connections_per_ip": "50",
                       "max_unauth_per_ip": "50"}}

    def test_doubles_to_cap(self):
        mb = self.srv.fresh()
        c = self.src("127.0.0.10")
        for want in (FD, 2 * FD, 4 * FD, CAP, CAP):
            self.assertDelay(self.failed_login_time(c, mb.user), want)
        lines = [l for l in self.srv.log() if "rip=127.0.0.10:" in l and
                 "event=auth-failed" in l]
        self.assertEqual(len(lines), 5)
        for i, (l, want) in enumerate(zip(lines, (FD, 2 * FD, 4 * FD, CAP,
                                                  CAP))):
            self.assertRegex(l, r'^warn sess=[0-9a-f]{16} event=auth-failed '
                             r'rip=127\.0\.0\.10:\d+ user="%s" '
                             r'reason=bad-credentials '
                             r'detail=password-mismatch failures=%d '
                             r'delay_ms=%d$' % (re.escape(mb.user), i + 1,
                                                want))
            self.assertNotIn("wrong-password", l)

    def test_other_address_unaffected(self):
        mb = self.srv.fresh()
        c = self.src("127.0.0.11")
        for want in (FD, 2 * FD, 4 * FD):
            self.assertDelay(self.failed_login_time(c, mb.user), want)
        # A new connection from the same address keeps the penalty...
        self.assertDelay(self.failed_login_time(self.src("127.0.0.11"),
                                                mb.user), CAP)
        # ... another address starts afresh.
        self.assertDelay(self.failed_login_time(self.src("127.0.0.12"),
                                                mb.user), FD)

    def test_success_clears(self):
        mb = self.srv.fresh()
        c = self.src("127.0.0.13")
        for want in (FD, 2 * FD, 4 * FD):
            self.assertDelay(self.failed_login_time(c, mb.user), want)
        self.src("127.0.0.13").login(mb.user, mb.password)
        self.assertDelay(self.failed_login_time(c, mb.user), FD)
        self.assertDelay(self.failed_login_time(c, mb.user), 2 * FD)

    def test_expires(self):
        mb = self.srv.fresh()
        c = self.src("127.0.0.14")
        for want in (FD, 2 * FD, 4 * FD):
            self.assertDelay(self.failed_login_time(c, mb.user), want)
        # The penalty is about time passing: wait out penalty_expire.
        time.sleep(EXPIRE + 0.1)
        self.assertDelay(self.failed_login_time(c, mb.user), FD)

    def test_parallel_connections_wait_their_turn(self):
        """After one failure, 4 connections guess at once. Without turns
        each would be answered within 2 * FD; with them the answers are
        spread out: their turns queue up behind one another."""
        mb = self.srv.fresh()
        self.assertDelay(self.failed_login_time(self.src("127.0.0.15"),
                                                mb.user), FD)
        conns = [self.src("127.0.0.15") for _ in range(4)]
        for c in conns:
            c.ok("USER " + mb.user)
        took = [None] * len(conns)

        def guess(i):
            t = time.monotonic()
            took[i] = (conns[i].cmd("PASS wrong-password"),
                       time.monotonic() - t)

        threads = [threading.Thread(target=guess, args=(i,))
                   for i in range(len(conns))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(evtest.TIMEOUT)
        for r, _ in took:
            self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        times = sorted(t for _, t in took)
        # The first turn is now: 2 * FD. The last waits penalty_max for
        # its turn, then its own delay, penalty_max.
        self.assertGreaterEqual(times[0], 2 * FD / 1000 - EARLY)
        self.assertGreaterEqual(times[-1], 2 * CAP / 1000 - EARLY)
        self.assertLess(times[-1], 2 * CAP / 1000 + SLACK)

    def test_login_while_penalized_waits(self):
        """A correct password from a penalized address is answered when
        its turn comes, not at once."""
        mb = self.srv.fresh()
        c = self.src("127.0.0.16")
        self.assertDelay(self.failed_login_time(c, mb.user), FD)
        held = self.src("127.0.0.16")
        held.ok("USER " + mb.user)
        held.send("PASS wrong-password\r\n")	# answered at 2 * FD
        self.assertTrue(self.srv.wait_log(r"rip=127\.0\.0\.16:\d+ .*"
                                          r"failures=1 "))
        t = time.monotonic()
        r = self.src("127.0.0.16").login(mb.user, mb.password)
        took = time.monotonic() - t
        self.assertTrue(r.startswith("+OK"), r)
        self.assertTrue(held.status().startswith("-ERR"))
        # Its turn comes after the pending failure's 2 * FD from its
        # start (minus the moment between the two commands).
        self.assertGreaterEqual(took, (2 * FD - 50) / 1000)


class Exempt(evtest.ServerTestCase):
    """127.0.0.1 is exempt by default: failure_delay only, no penalty."""
    CONFIG = {"auth": {"failure_delay": str(FD), "max_failures": "20"}}

    def test_loopback_exempt(self):
        mb = self.srv.fresh()
        c = self.connect()
        for _ in range(4):
            c.ok("USER " + mb.user)
            t = time.monotonic()
            c.err("PASS wrong")
            took = time.monotonic() - t
            self.assertGreaterEqual(took, FD / 1000 - EARLY)
            self.assertLess(took, 2 * FD / 1000)


if __name__ == "__main__":
    evtest.main()
