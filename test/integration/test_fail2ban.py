"""
Log lines cannot be forged, and the shipped fail2ban filter bans the real
client, never an address a client wrote into its user name.

A client chooses the user name (USER, APOP, AUTH PLAIN). It used to be
logged before rip= and unquoted, so `USER rip=10.9.8.7` gave
`event=auth-failed user=rip=10.9.8.7 rip=127.0.0.1:37376` and a lax
fail2ban expression banned 10.9.8.7. Now rip= comes right after event=,
client-chosen values are quoted and escaped, and every byte outside
printable ASCII is written as \\xNN (also checked for every test's log by
evtest.Server.check_log()).

The daemon's real log lines go through the real fail2ban-regex (Debian's
fail2ban, installed by scripts/deps) with conf/fail2ban/evpop3d.conf
installed the way an operator installs it (beside fail2ban's common.conf),
and also through a deliberately lax expression, `rip=<HOST>`.
"""

import os
import shutil
import socket
import subprocess

import evtest

SRC = os.environ.get("EVPOP3D_SOURCE_DIR") or os.path.join(
    evtest.HERE, "..", "..")
FILTER = os.path.join(SRC, "conf", "fail2ban", "evpop3d.conf")
COMMON = "/etc/fail2ban/filter.d/common.conf"

FORGED = ("rip=10.9.8.7", 'x"rip=10.9.8.6', "10.9.8.5",
          'a"_"rip=10.9.8.4', "rip=192.0.2.99")


def listen_addrs():
    addrs = ["127.0.0.1:0"]
    if evtest.ipv6_available():
        addrs.append("[::1]:0")
    return ", ".join(addrs)


class Fail2banRegex:
    """fail2ban-regex over the daemon's log (a mixin)."""

    @classmethod
    def setup_users(cls, srv):
        cls.known = srv.add_user("known@example.com", "Known-Pw-1")

    def fail2ban_ips(self, regex):
        """fail2ban-regex over the daemon's log so far: the addresses it
        finds, one per matched line."""
        self.assertTrue(shutil.which("fail2ban-regex"),
                        "fail2ban-regex missing: scripts/deps installs "
                        "Debian's fail2ban")
        d = os.path.join(self.srv.dir, "f2b")
        os.makedirs(os.path.join(d, "filter.d"), exist_ok=True)
        log = os.path.join(d, "evpop3d.log")
        with open(log, "w") as f:	# as written: timestamps first
            f.write("\n".join(l for l in self.srv.raw_lines
                              if l is not None) + "\n")
        if regex is None:
            shutil.copy(COMMON, os.path.join(d, "filter.d"))
            shutil.copy(FILTER, os.path.join(d, "filter.d"))
            regex = os.path.join(d, "filter.d", "evpop3d.conf")
        out = subprocess.run(["fail2ban-regex", "-o", "ip", log, regex],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout.split()


class Fail2ban(Fail2banRegex, evtest.ServerTestCase):
    CONFIG = {"server": {"listen": listen_addrs()},
              "auth": {"max_failures": "100", "apop": "yes"},
              "log": {"debug": "yes"}}

    def attempt(self, how, user, host="127.0.0.1"):
        c = self.connect(host=host)
        if how == "pass":
            c.ok("USER " + user)
            c.err("PASS wrong-password")
        elif how == "plain":
            c.err("AUTH PLAIN " + evtest.plain_b64(user, "wrong-password"))
        else:
            c.err("APOP %s %s" % (user, "0" * 32))
        c.quit()

    def test_forged_user_names(self):
        failures = 0
        for how in ("pass", "plain", "apop"):
            for user in FORGED:
                self.attempt(how, user)
                failures += 1
        self.attempt("pass", self.known.user)		# a real user's guess
        failures += 1
        v6 = evtest.ipv6_available()
        if v6:
            self.attempt("pass", "rip=10.9.8.3", host="::1")
            failures += 1
        # Not the client's doing, and not a failed guess either: no match.
        c = self.connect()
        c.ok("USER " + self.known.user)
        c.ok("PASS " + self.known.password)
        c.quit()
        self.assertTrue(self.srv.wait_log(r"event=disconnect .*user=\"%s\" "
                                          r"state=UPDATE" % self.known.user))

        # The lines: rip= right after event=, the name quoted and escaped.
        lines = [l for l in self.srv.log() if "event=auth-failed" in l]
        self.assertEqual(len(lines), failures, "\n".join(lines))
        for l in lines:
            self.assertRegex(l, r'^warn sess=[0-9a-f]{16} event=auth-failed '
                             r'rip=(127\.0\.0\.1|\[::1\]):\d+ user="')
        self.assertIn(r'user="x\"rip=10.9.8.6"', "\n".join(lines))
        self.assertIn(r'user="a\"_\"rip=10.9.8.4"', "\n".join(lines))

        want = ["127.0.0.1"] * (failures - v6) + ["::1"] * v6
        self.assertEqual(sorted(self.fail2ban_ips(None)), sorted(want))
        # Even a lax expression finds only the real addresses now.
        self.assertEqual(sorted(self.fail2ban_ips("rip=<HOST>")),
                         sorted(self.lax_expected(want)))

    def lax_expected(self, want):
        """rip=<HOST> matches auth-failed lines and every other line with
        a rip= (login, disconnect): all of them the real client's."""
        ips = []
        for l in self.srv.log():
            if " rip=" in l:
                ips.append("::1" if "rip=[::1]" in l else "127.0.0.1")
        self.assertGreaterEqual(len(ips), len(want))
        return ips

    def test_raw_bytes_escaped(self):
        """Bytes >= 0x80 and control bytes a client sends reach the (debug)
        log as \\xNN, never raw."""
        mark = len(self.srv.log())
        c = self.connect()
        c.err(b"USER caf\xc3\xa9")
        c.err(b"USER \x85\x9b2J")
        c.err(b"USER \x1b[2J\x7f\xff")
        c.quit()
        # This session's last line (not another test's): then all of its
        # lines have been read.
        self.assertTrue(self.srv.wait_log(r"event=disconnect ", start=mark))
        text = self.srv.log_text()
        self.assertIn(r"caf\xc3\xa9", text)
        self.assertIn(r"\x85\x9b2J", text)
        self.assertIn(r"\x1b[2J\x7f\xff", text)
        # Commands and state changes are debug lines, not info.
        self.assertRegex(text, r"(?m)^debug sess=\S+ event=command rip=")
        self.assertNotRegex(text, r"(?m)^info .*event=(command|state) ")
        # check_log() at the end of the class rejects any raw byte too.
        self.assertEqual(self.srv.check_log(), [])


class Fail2banLimits(Fail2banRegex, evtest.ServerTestCase):
    """Every warn line of a client's failure or refusal is matched by the
    shipped filter, once per line, with the client's address: a penalized
    guess, max_logins_per_user, max_unauth_per_ip, max_connections_per_ip
    (each client a loopback source address of its own)."""
    CONFIG = {"server": {"listen": "127.0.0.1:0"},
              "auth": {"max_failures": "100", "failure_delay": "10",
                       "max_connections_per_ip": "3",
                       "max_unauth_per_ip": "2",
                       "max_logins_per_user": "1"}}

    def test_limits_matched(self):
        from srcconn import SrcConn
        conns = []

        def src(source, greet=True):
            c = SrcConn(self.srv.port, source, greet=greet)
            conns.append(c)
            self.addCleanup(c.close)
            return c

        mb = self.known
        # Two wrong guesses (the second penalized) from .21.
        c = src("127.0.0.21")
        for _ in range(2):
            c.ok("USER " + mb.user)
            c.err("PASS wrong-password")
        c.quit()
        # max_logins_per_user from .22.
        a = src("127.0.0.22")
        a.login(mb.user, mb.password)
        b = src("127.0.0.22")
        b.ok("USER " + mb.user)
        self.assertIn("[IN-USE] Too many logins", b.err("PASS x-y-z"))
        # max_unauth_per_ip from .23 (the refusal line waits for none).
        src("127.0.0.23"), src("127.0.0.23")
        r = src("127.0.0.23", greet=False).status()
        self.assertIn("not logged in", r)
        # max_connections_per_ip from .24: 3 logged in, a 4th refused.
        for u in (self.srv.fresh(), self.srv.fresh(), self.srv.fresh()):
            src("127.0.0.24").login(u.user, u.password)
        r = src("127.0.0.24", greet=False).status()
        self.assertIn("from your address", r)
        for pat in (r"reason=max-unauth-per-ip rip=127\.0\.0\.23:",
                    r"reason=max-connections-per-ip rip=127\.0\.0\.24 ",
                    r"rip=127\.0\.0\.22:.*reason=max-logins-per-user",
                    r"rip=127\.0\.0\.21:.*failures=2 "):
            self.assertTrue(self.srv.wait_log(pat), pat)
        want = ["127.0.0.21"] * 2 + ["127.0.0.22", "127.0.0.23",
                                       "127.0.0.24"]
        self.assertEqual(sorted(self.fail2ban_ips(None)), want)


if __name__ == "__main__":
    evtest.main()
