"""
AUTHORIZATION state: USER/PASS (RFC 1939 section 7), password schemes of
the passwd-file, SASL PLAIN (RFC 5034, RFC 4616) and LOGIN, APOP, response codes
(RFC 2449, RFC 3206), failure limits and delays, user-name validation.
"""

import base64
import re
import time

import evtest
from evtest import plain_b64, apop_digest


class UserPass(evtest.ServerTestCase):
    POOL = 30

    @classmethod
    def setup_users(cls, srv):
        cls.spaced = srv.add_user("spaced@example.com", "  two  spaces here ")
        cls.colon = srv.add_user("special@example.com", "pa$ss%wo\\rd#1!")
        cls.longpw = srv.add_user("longpw@example.com", "L" * 600)
        cls.nodomain = srv.add_user("plainname", "nodomain-pw")
        cls.hashed = {}
        for scheme, stored_fn in (
                ("SHA512-CRYPT",
                 lambda p: "{SHA512-CRYPT}" + evtest.openssl_passwd(p, "-6")),
                ("SHA256-CRYPT",
                 lambda p: "{SHA256-CRYPT}" + evtest.openssl_passwd(p, "-5")),
                ("CRYPT",
                 lambda p: "{CRYPT}" + evtest.openssl_passwd(p, "-1")),
                ("BARE", lambda p: evtest.openssl_passwd(p, "-6"))):
            pw = "hashed-%s-pw" % scheme.lower()
            name = "%s@example.com" % scheme.lower()
            cls.hashed[scheme] = srv.add_user(name, pw, stored=stored_fn(pw))
        bf = evtest.bcrypt_hash("hashed-blf-pw")
        if bf:
            cls.hashed["BLF-CRYPT"] = srv.add_user(
                "blf@example.com", "hashed-blf-pw", stored="{BLF-CRYPT}" + bf)
        for mb in [cls.spaced, cls.colon, cls.longpw, cls.nodomain] + \
                list(cls.hashed.values()):
            mb.add(b"Subject: hi\n\nhello\n")

    def test_user_pass(self):
        mb = self.fresh()
        c = self.connect()
        self.assertOK(c.cmd("USER " + mb.user))
        self.assertOK(c.cmd("PASS " + mb.password))
        self.assertEqual(c.ok("STAT"), "+OK 0 0")
        c.quit()

    def test_password_with_spaces(self):
        c = self.connect()
        c.login(self.spaced.user, self.spaced.password)
        self.assertEqual(c.ok("STAT").split()[1], "1")
        c.quit()
        # The trailing space matters: without it the password is wrong.
        c = self.connect()
        c.ok("USER " + self.spaced.user)
        self.assertTrue(c.cmd("PASS " + self.spaced.password.rstrip())
                        .startswith("-ERR"))
        c.close()

    def test_password_with_special_chars(self):
        c = self.login(self.colon)
        c.quit()

    def test_user_without_domain(self):
        c = self.login(self.nodomain)
        self.assertEqual(c.ok("STAT").split()[1], "1")
        c.quit()

    def test_hashed_schemes(self):
        for scheme, mb in self.hashed.items():
            with self.subTest(scheme=scheme):
                c = self.connect()
                c.login(mb.user, mb.password)
                self.assertEqual(c.ok("STAT").split()[1], "1")
                c.quit()
                c = self.connect()
                c.ok("USER " + mb.user)
                self.assertTrue(c.cmd("PASS " + mb.password + "x")
                                .startswith("-ERR [AUTH]"))
                c.close()
        if "BLF-CRYPT" not in self.hashed:
            self.skipTest("no bcrypt in libcrypt: BLF-CRYPT not tested")

    def test_bad_password_equals_unknown_user(self):
        mb = self.fresh()
        c = self.connect()
        u1 = c.cmd("USER " + mb.user)
        p1 = c.cmd("PASS wrong-password")
        c.close()
        c = self.connect()
        u2 = c.cmd("USER nosuchuser@example.com")
        p2 = c.cmd("PASS wrong-password")
        c.close()
        self.assertTrue(p1.startswith("-ERR [AUTH]"), p1)
        self.assertEqual(u1, u2, "USER reveals whether the user exists")
        self.assertEqual(p1, p2, "PASS reveals whether the user exists")

    def test_empty_and_missing_password(self):
        mb = self.fresh()
        c = self.connect()
        c.ok("USER " + mb.user)
        c.err("PASS")
        c.close()
        c = self.connect()
        c.ok("USER " + mb.user)
        c.err("PASS ")
        c.close()

    def test_user_twice_takes_last(self):
        mb = self.fresh()
        c = self.connect()
        c.ok("USER nosuchuser@example.com")
        c.ok("USER " + mb.user)
        c.ok("PASS " + mb.password)
        c.quit()

    def test_invalid_user_names(self):
        before = evtest.tree(self.srv.dir)
        names = ["../../etc", "a/b@example.com", "..@example.com",
                 "a..b@example.com", ".hidden@example.com", "a\x01b",
                 "a\x7fb", "a\x00b", "a" * 256, "a@b@c", "@example.com",
                 "user@", "a\\b", "a%b", "a:b"]
        for name in names:
            with self.subTest(name=name[:20]):
                c = self.connect()
                r = c.cmd("USER " + name)
                if r.startswith("+OK"):
                    r = c.cmd("PASS whatever-pw")
                self.assertTrue(r.startswith("-ERR"), r)
                # The session survives the refusal.
                _, caps = c.ok_multi("CAPA")
                self.assertTrue(caps)
                c.close()
        # A 255-octet name is still a valid name (just unknown here).
        c = self.connect()
        c.ok("USER " + "a" * 255)
        self.assertTrue(c.cmd("PASS whatever-pw").startswith("-ERR [AUTH]"))
        c.close()
        self.assertEqual(evtest.tree(self.srv.dir) - before, set(),
                         "files created for invalid user names")

    def test_max_failures_disconnects(self):
        mb = self.fresh()
        c = self.connect()
        for i in range(2):
            c.ok("USER " + mb.user)
            self.assertTrue(c.cmd("PASS bad%d" % i).startswith("-ERR [AUTH]"))
        c.ok("USER " + mb.user)
        try:
            r = c.cmd("PASS bad2")
            self.assertTrue(r.startswith("-ERR"), r)
        except evtest.Closed:
            pass
        c.expect_closed()
        # A new connection may log in (the limit is per connection).
        c = self.login(mb)
        c.quit()

    def test_max_failures_mixed_auth(self):
        mb = self.fresh()
        c = self.connect()
        c.ok("USER " + mb.user)
        c.err("PASS bad")
        c.err("AUTH PLAIN " + plain_b64(mb.user, "bad"))
        try:
            c.send("AUTH PLAIN %s\r\n" % plain_b64(mb.user, "bad2"))
            self.assertTrue(c.status().startswith("-ERR"))
        except evtest.Closed:
            pass
        c.expect_closed()

    def test_long_password_long_line(self):
        # RFC 2449 section 4: lines longer than 255 octets are allowed when
        # a capability needs them; AUTH PLAIN with a 600-octet password is
        # an 824-octet command line.
        c = self.connect()
        line = "AUTH PLAIN " + plain_b64(self.longpw.user, self.longpw.password)
        self.assertGreater(len(line), 800)
        self.assertLess(len(line), 1024)
        self.assertOK(c.cmd(line))
        c.quit()
        c = self.connect()
        c.login(self.longpw.user, self.longpw.password)
        c.quit()


class SaslPlain(evtest.ServerTestCase):
    POOL = 16

    def secret_b64(self, *a):
        s = plain_b64(*a)
        self.srv.secret(s)
        return s

    def test_initial_response(self):
        mb = self.fresh()
        mb.add(b"Subject: x\n\ny\n")
        c = self.connect()
        self.assertOK(c.cmd("AUTH PLAIN " + self.secret_b64(mb.user,
                                                            mb.password)))
        self.assertEqual(c.ok("STAT").split()[1], "1")
        c.quit()

    def test_lowercase_mechanism(self):
        mb = self.fresh()
        c = self.connect()
        self.assertOK(c.cmd("auth plain " + self.secret_b64(mb.user,
                                                            mb.password)))
        c.quit()

    def test_authzid_same_as_user(self):
        mb = self.fresh()
        c = self.connect()
        self.assertOK(c.cmd("AUTH PLAIN " + self.secret_b64(
            mb.user, mb.password, mb.user)))
        c.quit()

    def test_authzid_other_user_refused(self):
        mb, other = self.fresh(), self.fresh()
        c = self.connect()
        c.err("AUTH PLAIN " + self.secret_b64(mb.user, mb.password,
                                              other.user))
        c.close()

    def test_continuation(self):
        mb = self.fresh()
        c = self.connect()
        r = c.cmd("AUTH PLAIN")
        self.assertTrue(r == "+" or r.startswith("+ "), r)
        self.assertFalse(r.startswith("+OK"))
        self.assertOK(c.cmd(self.secret_b64(mb.user, mb.password)))
        c.ok("NOOP")
        c.quit()

    def test_cancel(self):
        mb = self.fresh()
        c = self.connect()
        r = c.cmd("AUTH PLAIN")
        self.assertTrue(r.startswith("+"), r)
        c.err("*")
        # Still in AUTHORIZATION and usable.
        c.login(mb.user, mb.password)
        c.quit()

    def test_invalid_base64(self):
        mb = self.fresh()
        c = self.connect()
        c.err("AUTH PLAIN !!!!not-base64!!!!")
        c.ok_multi("CAPA")
        r = c.cmd("AUTH PLAIN")
        self.assertTrue(r.startswith("+"), r)
        c.err("%%%%")
        c.ok_multi("CAPA")
        c.close()
        # Valid base64 of a malformed PLAIN message (no NULs).
        c = self.connect()
        c.err("AUTH PLAIN " + base64.b64encode(b"just-text").decode())
        c.ok("USER " + mb.user)
        c.ok("PASS " + mb.password)
        c.quit()

    def test_wrong_password(self):
        mb = self.fresh()
        c = self.connect()
        r = c.cmd("AUTH PLAIN " + plain_b64(mb.user, "wrong"))
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        c.close()

    def test_bare_auth_lists_mechanisms(self):
        c = self.connect()
        _, lines = c.ok_multi("AUTH")
        self.assertIn(b"PLAIN", [l.strip().upper() for l in lines])
        c.close()

    def test_auth_trailing_space(self):
        # Outlook sends "AUTH " (with a space): tolerate it.
        mb = self.fresh()
        c = self.connect()
        r = c.cmd("AUTH ")
        if r.startswith("+OK"):
            self.assertIn(b"PLAIN", [l.strip().upper() for l in c.multi()])
        else:
            self.assertTrue(r.startswith("-ERR"), r)
        c.login(mb.user, mb.password)
        c.quit()

    def test_unknown_mechanism(self):
        mb = self.fresh()
        c = self.connect()
        c.err("AUTH X-NOSUCH")
        c.err("AUTH CRAM-MD5")
        c.login(mb.user, mb.password)
        c.quit()

    def test_empty_initial_response(self):
        # RFC 5034: "=" is an empty initial response; for PLAIN it fails.
        mb = self.fresh()
        c = self.connect()
        c.err("AUTH PLAIN =")
        c.login(mb.user, mb.password)
        c.quit()


class SaslLogin(evtest.ServerTestCase):
    """SASL LOGIN (Outlook, older clients): "Username:", then "Password:"
    challenges, each answered in base64; the user name may come as the
    initial response."""
    POOL = 16

    def b64(self, text, secret=False):
        s = base64.b64encode(text.encode()).decode()
        if secret:
            self.srv.secret(s)
        return s

    def test_capa_and_mechanism_list(self):
        c = self.connect()
        _, lines = c.ok_multi("CAPA")
        sasl = [l.decode().split()[1:] for l in lines
                if l.decode().upper().startswith("SASL ")]
        self.assertEqual(sasl, [["PLAIN", "LOGIN"]])
        _, lines = c.ok_multi("AUTH")
        self.assertEqual([l.decode() for l in lines], ["PLAIN", "LOGIN"])
        c.quit()

    def test_challenges(self):
        mb = self.fresh()
        mb.add(b"Subject: x\n\ny\n")
        c = self.connect()
        r = c.cmd("AUTH LOGIN")
        self.assertEqual(r, "+ VXNlcm5hbWU6")		# "Username:"
        r = c.cmd(self.b64(mb.user))
        self.assertEqual(r, "+ UGFzc3dvcmQ6")		# "Password:"
        self.assertOK(c.cmd(self.b64(mb.password, secret=True)))
        self.assertEqual(c.ok("STAT").split()[1], "1")
        c.quit()

    def test_initial_response(self):
        mb = self.fresh()
        c = self.connect()
        r = c.cmd("auth login " + self.b64(mb.user))
        self.assertEqual(r, "+ UGFzc3dvcmQ6")
        self.assertOK(c.cmd(self.b64(mb.password, secret=True)))
        c.ok("NOOP")
        c.quit()

    def test_wrong_password_and_cancel(self):
        mb = self.fresh()
        c = self.connect()
        c.cmd("AUTH LOGIN " + self.b64(mb.user))
        r = c.err(self.b64("wrong-" + mb.password, secret=True))
        self.assertIn("[AUTH]", r)
        self.assertTrue(c.cmd("AUTH LOGIN").startswith("+ "))
        c.err("*")				# cancelled at "Username:"
        c.cmd("AUTH LOGIN " + self.b64(mb.user))
        c.err("*")				# and at "Password:"
        c.login(mb.user, mb.password)		# still usable
        c.quit()

    def test_bad_data(self):
        c = self.connect()
        c.err("AUTH LOGIN !!!not-base64!!!")
        c.err("AUTH LOGIN " + self.b64("a/../b"))	# not a user name
        self.assertTrue(c.cmd("AUTH LOGIN").startswith("+ "))
        c.err("%%%%")
        c.ok_multi("CAPA")
        c.close()

    def test_pipelined(self):
        """The responses pipelined behind AUTH LOGIN, and a command behind
        the password, which waits for the login to finish."""
        mb = self.fresh()
        c = self.connect()
        c.send("AUTH LOGIN\r\n%s\r\n%s\r\nSTAT\r\n" % (
            self.b64(mb.user), self.b64(mb.password, secret=True)))
        self.assertEqual(c.readline(), b"+ VXNlcm5hbWU6")
        self.assertEqual(c.readline(), b"+ UGFzc3dvcmQ6")
        self.assertOK(c.status())
        self.assertOK(c.status())
        c.quit()


class ApopDisabled(evtest.ServerTestCase):
    POOL = 2

    def test_apop_refused(self):
        mb = self.fresh()
        c = self.connect()
        self.assertIsNone(re.search(r"<[^<>]+@[^<>]+>", c.greeting),
                          "APOP timestamp in greeting with apop = no")
        c.err("APOP %s %s" % (mb.user, apop_digest("<x@y>", mb.password)))
        c.login(mb.user, mb.password)
        c.quit()


class Apop(evtest.ServerTestCase):
    CONFIG = {"auth": {"apop": "yes"}}
    POOL = 6

    @classmethod
    def setup_users(cls, srv):
        cls.hashed = srv.add_user(
            "hashed@example.com", "hashed-apop-pw",
            stored="{SHA512-CRYPT}" +
            evtest.openssl_passwd("hashed-apop-pw", "-6"))

    def timestamp(self, c):
        m = re.search(r"<[^<>]*@test\.example>", c.greeting)
        self.assertIsNotNone(m, c.greeting)
        return m.group(0)

    def test_timestamp_unique(self):
        stamps = set()
        for _ in range(5):
            c = self.connect()
            stamps.add(self.timestamp(c))
            c.close()
        self.assertEqual(len(stamps), 5, stamps)

    def test_apop_login(self):
        mb = self.fresh()
        mb.add(b"Subject: x\n\ny\n")
        c = self.connect()
        ts = self.timestamp(c)
        self.assertOK(c.cmd("APOP %s %s" % (mb.user,
                                           apop_digest(ts, mb.password))))
        self.assertEqual(c.ok("STAT").split()[1], "1")
        c.quit()

    def test_apop_wrong_digest(self):
        mb = self.fresh()
        c = self.connect()
        ts = self.timestamp(c)
        r = c.cmd("APOP %s %s" % (mb.user, apop_digest(ts, "wrong")))
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        # A digest for another connection's timestamp is refused too.
        other = self.connect()
        ts2 = self.timestamp(other)
        c.err("APOP %s %s" % (mb.user, apop_digest(ts2, mb.password)))
        other.close()
        c.close()

    def test_apop_unknown_user_same_reply(self):
        mb = self.fresh()
        c = self.connect()
        ts = self.timestamp(c)
        r1 = c.cmd("APOP %s %s" % (mb.user, apop_digest(ts, "wrong")))
        c.close()
        c = self.connect()
        ts = self.timestamp(c)
        r2 = c.cmd("APOP nobody@example.com %s" % apop_digest(ts, "wrong"))
        c.close()
        self.assertEqual(r1, r2)

    def test_apop_malformed(self):
        mb = self.fresh()
        c = self.connect()
        c.err("APOP")
        c.err("APOP " + mb.user)
        c.close()
        c = self.connect()
        c.err("APOP %s nothex-nothex-nothex-nothex-nothe" % mb.user)
        c.close()

    def test_apop_hashed_user_refused(self):
        c = self.connect()
        ts = self.timestamp(c)
        c.err("APOP %s %s" % (self.hashed.user,
                              apop_digest(ts, self.hashed.password)))
        c.close()
        c = self.login(self.hashed)	# USER/PASS still works
        c.quit()


class FailureDelay(evtest.ServerTestCase):
    CONFIG = {"auth": {"failure_delay": "700"}}
    POOL = 4

    def test_delay_and_no_blocking(self):
        mb, other = self.fresh(), self.fresh()
        c = self.connect()
        c.ok("USER " + mb.user)
        t0 = time.monotonic()
        c.send("PASS wrong\r\n")
        # While the failure is being delayed, other clients are served.
        t1 = time.monotonic()
        o = self.connect()
        o.login(other.user, other.password)
        o.ok("STAT")
        o.quit()
        t_other = time.monotonic() - t1
        r = c.status()
        dt = time.monotonic() - t0
        self.assertTrue(r.startswith("-ERR"), r)
        self.assertGreaterEqual(dt, 0.6, "failure reply after %.2fs" % dt)
        self.assertLess(t_other, 0.6, "other client waited %.2fs" % t_other)
        # A good login is not delayed.
        c.ok("USER " + mb.user)
        t0 = time.monotonic()
        c.ok("PASS " + mb.password)
        self.assertLess(time.monotonic() - t0, 0.5)
        c.quit()


class GoneDuringDelay(evtest.ServerTestCase):
    """Clients that go away while their failed login is being delayed
    (session_pause()): one resets its connection and is freed at once,
    its pause cancelled; one half-closes and is answered and closed when
    the pause ends. A pause left behind by a freed session would run on
    freed memory when due: the third client's failure, answered after
    both deadlines, lets them pass before the checks, and the sanitizers
    (check_log at the end of the class) would report it."""
    CONFIG = {"auth": {"failure_delay": "2000", "penalty_max": "0"}}
    POOL = 4

    def failed(self, user, mark):
        """A connection whose wrong PASS is being delayed, and its
        session id."""
        c = self.connect()
        c.ok("USER " + user)
        c.send("PASS wrong\r\n")
        m = self.srv.wait_log(r"sess=(\w+) event=auth-failed .*user=\"%s\""
                              % user, start=mark)
        self.assertIsNotNone(m)
        return c, m.group(1)

    def test_reset_and_half_close(self):
        mark = len(self.srv.log())
        rst, fin, last = self.fresh(), self.fresh(), self.fresh()
        a, sess_a = self.failed(rst.user, mark)
        b, sess_b = self.failed(fin.user, mark)
        t0 = time.monotonic()
        a.sock.setsockopt(evtest.socket.SOL_SOCKET, evtest.socket.SO_LINGER,
                          b"\x01\x00\x00\x00\x00\x00\x00\x00")
        a.close()
        b.sock.shutdown(evtest.socket.SHUT_WR)
        # The reset one is freed now, not when its 2 s pause would end.
        self.assertTrue(self.srv.wait_log(
            r"sess=%s event=disconnect .*reason=connection-error" % sess_a,
            start=mark))
        self.assertLess(time.monotonic() - t0, 1.5 * evtest.SCALE)
        # The half-closed one gets its answer when due, then EOF.
        self.assertTrue(b.status().startswith("-ERR"))
        self.assertEqual(b.expect_closed(), [])
        self.assertTrue(self.srv.wait_log(
            r"sess=%s event=disconnect " % sess_b, start=mark))
        # Answered after both pauses were due: the server goes on.
        c, _ = self.failed(last.user, mark)
        self.assertTrue(c.status().startswith("-ERR"))
        c.ok("USER " + rst.user)
        c.ok("PASS " + rst.password)
        c.quit()
        self.assertTrue(self.srv.alive())


class PasswdReload(evtest.ServerTestCase):
    POOL = 2

    def test_new_user_without_restart(self):
        # auth.h: the db re-reads the file when it changes.
        mb = self.srv.add_user("late@example.com", "late-user-pw")
        time.sleep(1.1)		# a different mtime second
        self.srv.write_passwd()
        c = self.login(mb)
        c.quit()


if __name__ == "__main__":
    evtest.main()
