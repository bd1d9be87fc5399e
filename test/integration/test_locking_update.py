"""
The maildrop lock (RFC 1939 section 4, RFC 2449 [IN-USE]) and the UPDATE
state (section 6): only QUIT in TRANSACTION removes messages; a dropped
connection or SIGTERM removes nothing.
"""

import os
import signal
import time

import evtest
from evtest import wire


def fill(mb, n=5):
    mb.uid = [mb.add(b"Subject: m%d\n\nbody %d\n" % (i, i)) for i in range(n)]
    return mb


class Locking(evtest.ServerTestCase):
    POOL = 12
    CONFIG = {"auth": {"max_failures": "10"}}

    def test_second_login_in_use(self):
        mb = fill(self.fresh())
        a = self.login(mb)
        b = self.connect()
        b.ok("USER " + mb.user)
        r = b.cmd("PASS " + mb.password)
        self.assertTrue(r.startswith("-ERR [IN-USE]"), r)
        # The failed login leaves b in AUTHORIZATION, usable.
        r = b.cmd("AUTH PLAIN " + evtest.plain_b64(mb.user, mb.password))
        self.assertTrue(r.startswith("-ERR [IN-USE]"), r)
        a.ok("STAT")		# the first session is not disturbed
        a.quit()
        b.ok("USER " + mb.user)
        b.ok("PASS " + mb.password)
        self.assertEqual(b.ok("STAT").split()[1], "5")
        b.quit()

    def test_lock_released_after_drop(self):
        mb = fill(self.fresh())
        a = self.login(mb)
        a.ok("DELE 1")
        a.close()		# no QUIT
        c = self.login_retry(mb)
        self.assertEqual(c.ok("STAT").split()[1], "5")
        c.quit()

    def test_drop_after_dele_deletes_nothing(self):
        mb = fill(self.fresh())
        before = mb.uidls()
        a = self.login(mb)
        for i in range(1, 6):
            a.ok("DELE %d" % i)
        self.assertEqual(a.ok("STAT"), "+OK 0 0")
        a.close()
        c = self.login_retry(mb)
        self.assertEqual(c.ok("STAT").split()[1], "5")
        _, lines = c.ok_multi("UIDL")
        self.assertEqual([l.split()[1].decode() for l in lines], mb.uid)
        c.quit()
        self.assertEqual(mb.uidls(), before)

    def test_reset_connection_deletes_nothing(self):
        mb = fill(self.fresh())
        a = self.login(mb)
        a.ok("DELE 2")
        # RST instead of FIN.
        a.sock.setsockopt(evtest.socket.SOL_SOCKET, evtest.socket.SO_LINGER,
                          b"\x01\x00\x00\x00\x00\x00\x00\x00")
        a.close()
        c = self.login_retry(mb)
        self.assertEqual(c.ok("STAT").split()[1], "5")
        c.quit()
        self.assertEqual(len(mb.uidls()), 5)

    def test_dele_quit_removes_exactly(self):
        mb = fill(self.fresh())
        c = self.login(mb)
        c.ok("DELE 2")
        c.ok("DELE 4")
        c.ok("DELE 5")
        c.ok("RSET")		# undo all ...
        c.ok("DELE 2")		# ... and mark again
        c.ok("DELE 4")
        self.assertOK(c.cmd("QUIT"))
        c.expect_closed()
        self.assertEqual(mb.uidls(), sorted([mb.uid[0], mb.uid[2],
                                             mb.uid[4]]))
        # Nothing left behind in tmp/ either.
        self.assertEqual(os.listdir(os.path.join(mb.maildir, "tmp")), [])
        c = self.login(mb)
        _, lines = c.ok_multi("UIDL")
        self.assertEqual([l.split()[1].decode() for l in lines],
                         [mb.uid[0], mb.uid[2], mb.uid[4]])
        self.assertEqual(c.retr(2), wire(b"Subject: m2\n\nbody 2\n"))
        c.quit()

    def test_quit_without_dele_keeps_all(self):
        mb = fill(self.fresh())
        c = self.login(mb)
        c.retr(1)
        c.ok_multi("TOP 2 0")
        c.quit()
        self.assertEqual(mb.uidls(), sorted(mb.uid))

    def test_quit_in_authorization_no_update(self):
        mb = fill(self.fresh())
        c = self.connect()
        c.ok("USER " + mb.user)
        self.assertOK(c.cmd("QUIT"))
        c.expect_closed()
        self.assertEqual(len(mb.uidls()), 5)

    def test_new_mail_during_session_invisible(self):
        mb = fill(self.fresh(), 2)
        c = self.login(mb)
        late = mb.add(b"Subject: late\n\nlate\n")
        self.assertEqual(c.ok("STAT").split()[1], "2")
        c.ok("DELE 1")
        c.quit()
        # The late message survives the UPDATE and shows up now.
        self.assertEqual(mb.uidls(), sorted([mb.uid[1], late]))
        c = self.login(mb)
        _, lines = c.ok_multi("UIDL")
        self.assertEqual([l.split()[1].decode() for l in lines],
                         [mb.uid[1], late])
        c.quit()

    def test_message_removed_by_other_program(self):
        mb = fill(self.fresh(), 3)
        c = self.login(mb)
        os.unlink(mb.files()[mb.uid[1]])
        r = c.cmd("RETR 2")
        if r.startswith("+OK"):
            # Already opened or cached: it must then be complete.
            self.assertEqual(b"".join(l + b"\r\n" for l in c.multi()),
                             wire(b"Subject: m1\n\nbody 1\n"))
        c.ok("NOOP")
        self.assertEqual(c.retr(3), wire(b"Subject: m2\n\nbody 2\n"))
        c.ok("DELE 1")
        r = c.cmd("QUIT")
        self.assertTrue(r.startswith("+OK") or r.startswith("-ERR"), r)
        c.expect_closed()
        self.assertEqual(mb.uidls(), [mb.uid[2]])

    def test_flagged_cur_messages_deleted(self):
        mb = self.fresh()
        u1 = mb.add(b"a\n", folder="cur", flags="S")
        u2 = mb.add(b"b\n", folder="cur", flags="RS")
        u3 = mb.add(b"c\n")
        c = self.login(mb)
        self.assertEqual(c.ok("UIDL 1").split()[2], u1)
        self.assertEqual(c.ok("UIDL 2").split()[2], u2)
        c.ok("DELE 1")
        c.ok("DELE 2")
        c.quit()
        self.assertEqual(mb.uidls(), [u3])

    def test_users_are_independent(self):
        a_mb, b_mb = fill(self.fresh(), 2), fill(self.fresh(), 3)
        a = self.login(a_mb)
        b = self.login(b_mb)
        self.assertEqual(a.ok("STAT").split()[1], "2")
        self.assertEqual(b.ok("STAT").split()[1], "3")
        a.ok("DELE 1")
        b.ok("DELE 3")
        b.quit()
        a.quit()
        self.assertEqual(a_mb.uidls(), [a_mb.uid[1]])
        self.assertEqual(b_mb.uidls(), sorted(b_mb.uid[:2]))


def lock_free(mb):
    with open(os.path.join(mb.maildir, "evpop3d.lock"), "rb") as f:
        return f.read().startswith(b"free")


class ReleaseAheadOfLogins(evtest.ServerTestCase):
    """Releasing a maildrop (QUIT, a dropped client) is a worker job, like
    password hashing: with one worker thread and a queue of slow bcrypt
    logins, the release must not wait for the queue (worker_submit_urgent),
    only for the hash already running. Times are compared with the hashing
    time measured in the same test, not with wall-clock constants."""
    POOL = 2
    CONFIG = {"auth": {"threads": "1"}}
    QUEUED = 8
    COST = 10			# ~50 ms a hash

    @classmethod
    def setup_users(cls, srv):
        h = evtest.bcrypt_hash("slow-pw", cls.COST)
        cls.slow = h and srv.add_user("slow@example.com", "slow-pw",
                                      stored="{BLF-CRYPT}" + h)

    def queue_logins(self):
        """QUEUED failing bcrypt logins, sent; returns (conns, start)."""
        if not self.slow:
            self.skipTest("no bcrypt in libcrypt")
        conns = []
        for _ in range(self.QUEUED):
            w = self.connect()
            w.ok("USER " + self.slow.user)
            conns.append(w)
        t0 = time.monotonic()
        for w in conns:
            w.send("PASS not-the-password\r\n")
        time.sleep(0.02)	# the loop reads them all, the first hash runs
        return conns, t0

    def per_hash(self, conns, t0):
        for w in conns:
            self.assertTrue(w.status().startswith("-ERR [AUTH]"))
        return (time.monotonic() - t0) / len(conns)

    def test_quit_ahead_of_hashing(self):
        mb = fill(self.fresh(), 2)
        c = self.login(mb)
        c.ok("DELE 1")
        conns, t0 = self.queue_logins()
        t1 = time.monotonic()
        r = c.cmd("QUIT")
        quit_s = time.monotonic() - t1
        self.assertEqual(r, "+OK evpop3d signing off (1 messages deleted).")
        self.assertTrue(lock_free(mb))
        hash_s = self.per_hash(conns, t0)
        # Behind the queue QUIT would take QUEUED hashes; ahead, one at most.
        self.assertLess(quit_s, 3 * hash_s, "QUIT %.0f ms, a hash %.0f ms" %
                        (quit_s * 1000, hash_s * 1000))
        self.assertEqual(len(mb.uidls()), 1)

    def test_drop_released_ahead_of_hashing(self):
        mb = fill(self.fresh(), 2)
        c = self.login(mb)
        conns, t0 = self.queue_logins()
        t1 = time.monotonic()
        c.close()				# no QUIT
        deadline = t1 + 10
        while not lock_free(mb) and time.monotonic() < deadline:
            time.sleep(0.002)
        free_s = time.monotonic() - t1
        hash_s = self.per_hash(conns, t0)
        self.assertLess(free_s, 3 * hash_s, "unlock %.0f ms, a hash %.0f ms"
                        % (free_s * 1000, hash_s * 1000))
        self.login(mb).quit()			# no retry: free


class CrossProcessLock(evtest.ServerTestCase):
    """Two daemons on the same passwd-file and Maildirs: the lock holds
    across processes, and a SIGKILLed holder leaves no stale lock."""
    POOL = 4

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.srv2 = evtest.Server(pool=0, config={"auth": {
            "passwd_file": os.path.join(cls.srv.dir, "passwd")}})
        cls.addClassCleanup(cls.srv2.cleanup)
        cls.srv2.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv2.stop()
        finally:
            super().tearDownClass()

    def test_lock_across_processes(self):
        mb = fill(self.fresh(), 2)
        a = self.login(mb)
        b = self.connect(port=self.srv2.port)
        b.ok("USER " + mb.user)
        r = b.cmd("PASS " + mb.password)
        self.assertTrue(r.startswith("-ERR [IN-USE]"), r)
        a.ok("DELE 1")
        a.quit()
        b.ok("USER " + mb.user)
        b.ok("PASS " + mb.password)
        self.assertEqual(b.ok("STAT").split()[1], "1")
        b.quit()

    def test_killed_holder_leaves_no_stale_lock(self):
        mb = fill(self.fresh(), 2)
        victim = evtest.Server(pool=0, config={"auth": {
            "passwd_file": os.path.join(self.srv.dir, "passwd")}})
        self.addCleanup(victim.cleanup)
        victim.start()
        a = self.connect(port=victim.port)
        a.login(mb.user, mb.password)
        a.ok("DELE 1")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        # A stale lock would refuse it: login_retry() raises.
        b = evtest.login_retry(lambda: self.connect(port=self.srv2.port), mb,
                               timeout=5, code="-ERR")
        self.assertEqual(b.ok("STAT").split()[1], "2")
        b.quit()


class SigtermNoUpdate(evtest.ServerTestCase):
    POOL = 3

    def test_sigterm_deletes_nothing(self):
        mb, idle = fill(self.fresh()), self.fresh()
        c = self.login(mb)
        for i in range(1, 6):
            c.ok("DELE %d" % i)
        w = self.connect()			# one still in AUTHORIZATION
        w.ok("USER " + idle.user)
        t0 = time.monotonic()
        self.srv.proc.send_signal(signal.SIGTERM)
        self.srv.proc.wait(10)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(self.srv.proc.returncode, 0,
                         "exit status after SIGTERM")
        c.expect_closed()
        w.expect_closed()
        self.assertEqual(mb.uidls(), sorted(mb.uid))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()		# already exited: checks status and log


if __name__ == "__main__":
    evtest.main()
