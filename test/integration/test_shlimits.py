"""
The per-host limits across worker processes (lib/shlimits.h): with
[server] workers = 2 the kernel spreads connections over two processes
(SO_REUSEPORT, by the connection's addresses and ports), and still
max_connections, max_connections_per_ip and max_logins_per_user count
every worker's connections, and the penalty delay doubles from one
connection to the next whichever worker it lands in. Each check makes
several connections past a limit: with per-process counts some of them
would land in the worker that has room and get in.

The same checks run on a single process (OneProcess), which is what a
daemon without the workers key does; AcrossWorkers is skipped while
`evpop3d -t` refuses a config with workers = 2 (the key comes with the
workers branch). A reload raising max_connections past what the shared
tables were sized for says a restart is needed.
"""

import signal
import time

import evtest
from srcconn import SrcClients, SrcConn

FD = 200		# failure_delay, ms
CAP = 800		# penalty_max, ms
TRIES = 8		# connections past a limit, each must be refused


def limits_config(server):
    """The checks' limits; loopback is not exempt. server: [server] keys
    (workers)."""
    return {"server": dict(server),
            "auth": {"limits_exempt": '""',
                     "failure_delay": str(FD), "penalty_max": str(CAP),
                     "penalty_expire": "3600",
                     "max_failures": "20",
                     "max_connections_per_ip": "3",
                     "max_unauth_per_ip": "50",
                     "max_logins_per_user": "1"}}


class Checks(SrcClients):
    """The limits, for a daemon of one or more workers."""

    def test_per_ip(self):
        held = [self.src("127.0.1.2") for _ in range(3)]
        for _ in range(TRIES):
            r = self.refused("127.0.1.2")
            self.assertTrue(r.startswith("-ERR [SYS/TEMP] Too many "
                                         "connections from your address"), r)
        # One goes: exactly one place comes free, in whichever worker.
        # The disconnect line comes just before the count goes down,
        # which another worker may not see yet: retry until it does.
        mark = len(self.srv.log())
        held.pop().quit()
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect rip=127\.0\.1\.2", start=mark))
        deadline = time.monotonic() + 5 * evtest.SCALE
        while True:
            c = SrcConn(self.srv.port, "127.0.1.2", greet=False)
            self.addCleanup(c.close)
            r = c.status()
            if r.startswith("+OK") or time.monotonic() > deadline:
                break
            c.expect_closed()
        self.assertTrue(r.startswith("+OK"), r)
        c.ok("CAPA")
        c.multi()
        for _ in range(TRIES):
            self.assertTrue(self.refused("127.0.1.2").startswith("-ERR"))

    def test_penalty_doubles(self):
        mb = self.srv.fresh()
        # A new connection for each failure: the count follows the
        # address, not the connection's worker.
        for want in (FD, 2 * FD, 4 * FD, CAP, CAP):
            c = self.src("127.0.1.3")
            self.assertDelay(self.failed_login_time(c, mb.user), want)
            c.quit()
        c = self.src("127.0.1.3")
        c.login(mb.user, mb.password)		# clears it, for all
        c.quit()
        c = self.src("127.0.1.3")
        self.assertDelay(self.failed_login_time(c, mb.user), FD)

    def test_logins_per_user(self):
        mb = self.srv.fresh()
        a = self.src("127.0.1.4")
        a.login(mb.user, mb.password)
        for _ in range(TRIES):
            b = self.src("127.0.1.4")
            b.ok("USER " + mb.user)
            r = b.err("PASS " + mb.password)
            # Not the maildrop lock's answer: the limit's, before it.
            self.assertTrue(r.startswith("-ERR [IN-USE] Too many logins "
                                         "for this user from your "
                                         "address"), r)
            b.quit()


class OneProcess(Checks, evtest.ServerTestCase):
    CONFIG = limits_config({})

    def test_reload_past_sizing(self):
        """The tables were sized for 5000 connections (evtest's
        max_connections); a reload to more says a restart is needed."""
        mark = len(self.srv.log())
        self.srv.config["server"]["max_connections"] = "6000"
        self.srv.write_config()
        try:
            self.srv.proc.send_signal(signal.SIGHUP)
            self.assertTrue(self.srv.wait_log(
                r"^warn event=reload-restart-needed key=\"\[server\] "
                r"max_connections, \[auth\] penalty_table_size\" "
                r"note=\"the shared limit tables were sized at start for "
                r"5000 and 20000\"$", start=mark))
            self.assertTrue(self.srv.wait_log(r"event=reload result=ok",
                                              start=mark))
        finally:
            self.srv.config["server"]["max_connections"] = "5000"
            self.srv.write_config()
            mark = len(self.srv.log())
            self.srv.proc.send_signal(signal.SIGHUP)
            self.assertTrue(self.srv.wait_log(r"event=reload result=ok",
                                              start=mark))


class AcrossWorkers(Checks, evtest.ServerTestCase):
    CONFIG = limits_config({"workers": "2"})


class MaxConnectionsAcrossWorkers(evtest.ServerTestCase):
    """[server] max_connections counts both workers' connections."""
    CONFIG = {"server": {"workers": "2", "max_connections": "4"}}

    def test_fifth_refused(self):
        held = [self.connect() for _ in range(4)]
        for c in held:
            c.ok("CAPA")
            c.multi()
        for _ in range(TRIES):
            c = evtest.Conn(self.srv.port, greet=False)
            self.addCleanup(c.close)
            r = c.status()
            self.assertTrue(r.startswith("-ERR [SYS/TEMP] Too many "
                                         "connections"), r)


if __name__ == "__main__":
    evtest.main()
