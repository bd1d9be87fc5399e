"""
Quick jobs ([auth] quick_jobs, src/pop3/quick.h): logins and lock
releases the event loop does itself when they are cheap. Real sessions
against the real daemon, counted through its metrics
(evpop3d_worker_quick_jobs_total): a user's first login goes to a
thread and teaches the loop that the maildrop is small and local, the
next one is done on the loop; a QUIT with nothing deleted is a release
on the loop. Every login that is not cheap is declined and runs on a
thread, answered the same: a {BLF-CRYPT} password, a passwd-file that
changed since it was read, a maildrop over 500 messages, new mail whose
size the name does not give, an mbox, a user whose last login failed.
With quick_jobs = no the loop never tries.
"""

import os
import subprocess
import unittest
import urllib.request

import evtest
from test_metrics import parse, val

# fio_fs_local()'s statfs(2) f_type list (src/lib/fileio.c).
LOCAL_FS = (0xEF53, 0x58465342, 0x9123683E, 0x01021994, 0xF2F52010,
            0x2FC12FC1, 0x794C7630)


def require_local_fs(srv, what):
    """Skip the test class unless srv's directory is on a file system
    fio_fs_local() calls local (what needs one: for the message)."""
    fstype = subprocess.run(["stat", "-f", "-c", "%t", srv.dir],
                            stdout=subprocess.PIPE, text=True,
                            check=True).stdout.strip()
    if int(fstype, 16) not in LOCAL_FS:
        srv.stop()
        raise unittest.SkipTest("%s is on file system 0x%s, not one %s"
                                % (srv.dir, fstype, what))


def scrape(url):
    """The metrics endpoint's samples (test_metrics.parse())."""
    with urllib.request.urlopen(url, timeout=evtest.TIMEOUT) as r:
        return parse(r.read().decode("utf-8"))


class QuickBase(evtest.ServerTestCase):
    # quick_limit: a sanitizer build on a busy machine may take more than
    # the default 2 ms for a login, and would cool off and count nothing
    # (the cool-off is test_worker's); here the counts must be exact.
    CONFIG = {"metrics": {"listen": "127.0.0.1:0"},
              "auth": {"failure_delay": "0", "penalty_max": "0",
                       "quick_limit": "1000"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Quick logins need a local file system (lib/fileio.h
        # fio_fs_local()); the counts below assume the test's own.
        require_local_fs(cls.srv, "quick logins use")
        cls.url = "http://127.0.0.1:%d/metrics" % cls.srv.metrics_port()

    def counts(self):
        """(done, declined, slow) since the start."""
        s = scrape(self.url)
        name = "evpop3d_worker_quick_jobs_total"
        return (val(s, name, outcome="done"), val(s, name, outcome="declined"),
                val(s, "evpop3d_worker_quick_slow_total"))

    def session(self, mb, want_retr=None):
        """Log in, check the maildrop, QUIT; the counters' change."""
        before = self.counts()
        c = self.connect()
        c.login(mb.user, mb.password)
        if want_retr is not None:
            self.assertEqual(c.retr(1), want_retr)
        self.assertOK(c.cmd("QUIT"))
        c.expect_closed()
        after = self.counts()
        return tuple(a - b for a, b in zip(after, before))


class QuickLogins(QuickBase):
    @classmethod
    def setup_users(cls, srv):
        cls.alice = srv.add_user("alice", "alice-pw")
        cls.alice_msg = b"Subject: one\r\n\r\nfirst message\r\n"
        cls.alice.add(cls.alice_msg)
        cls.bob = srv.add_user("bob", "bob-pw")
        cls.bob.add(b"Subject: b\r\n\r\nbody\r\n")
        cls.carol = srv.add_user("carol", "carol-pw")
        for i in range(501):
            cls.carol.add(b"Subject: %d\r\n\r\nbody\r\n" % i)
        cls.dave = srv.add_user("dave", "dave-pw")
        cls.erin = srv.add_user("erin", "erin-pw",
                                stored=evtest.bcrypt_hash("erin-pw"))
        cls.frank = srv.add_user("frank", "frank-pw")
        spool = os.path.join(srv.dir, "spool")
        os.makedirs(spool)
        path = os.path.join(spool, "gina")
        with open(path, "wb") as f:
            f.write(b"From a@example.com Mon Jan  1 10:00:00 2024\n"
                    b"Subject: m\n\nbody\n\n")
        cls.gina = srv.add_user("gina", "gina-pw",
                                extra="userdb_mail=mbox:" + path)

    def test_second_login_on_the_loop(self):
        # First: no hint yet, declined; the QUIT's release on the loop.
        self.assertEqual(self.session(self.alice, self.alice_msg),
                         (1, 1, 0))
        # Then the login too, with the same answers.
        self.assertEqual(self.session(self.alice, self.alice_msg),
                         (2, 0, 0))
        self.assertEqual(self.session(self.alice, self.alice_msg),
                         (2, 0, 0))
        # Nothing left locked or lost: a fourth session sees the message.
        c = self.connect()
        c.login(self.alice.user, self.alice.password)
        self.assertEqual(c.cmd("STAT"), "+OK 1 %d" % len(self.alice_msg))
        c.quit()

    def test_slow_scheme_declined(self):
        # erin's {BLF-CRYPT} login is declined even with a hint.
        self.assertEqual(self.session(self.erin), (1, 1, 0))
        self.assertEqual(self.session(self.erin), (1, 1, 0))

    def test_changed_passwd_file_declined(self):
        self.assertEqual(self.session(self.bob), (1, 1, 0))
        self.assertEqual(self.session(self.bob), (2, 0, 0))
        # A new password: the file changed, so the loop does not look bob
        # up (the reload is a thread's); the new password works.
        self.bob.password = "bob-pw-2"
        self.bob.stored = "{PLAIN}bob-pw-2"
        self.srv.secret(self.bob.password)
        self.srv.write_passwd()
        self.assertEqual(self.session(self.bob), (1, 1, 0))
        self.assertEqual(self.session(self.bob), (2, 0, 0))
        c = self.connect()
        c.ok("USER bob")
        self.assertERR(c.cmd("PASS bob-pw"))

    def test_big_maildrop_declined(self):
        # 501 messages: over QUICK_MAX_MSGS, every login on a thread.
        self.assertEqual(self.session(self.carol), (1, 1, 0))
        self.assertEqual(self.session(self.carol), (1, 1, 0))

    def test_failed_login_forgets(self):
        self.assertEqual(self.session(self.dave), (1, 1, 0))
        # A wrong password, checked on the loop ({PLAIN}): the hint goes.
        before = self.counts()
        c = self.connect()
        c.ok("USER dave")
        self.assertERR(c.cmd("PASS wrong"))
        c.quit()
        after = self.counts()
        self.assertEqual(after[0] - before[0], 1)
        # So the next login is a thread's again, then the loop's.
        self.assertEqual(self.session(self.dave), (1, 1, 0))
        self.assertEqual(self.session(self.dave), (2, 0, 0))

    def test_new_mail_declined(self):
        # Names without ,W= (as Postfix delivers): a size the cache does
        # not have would be read whole, so that open is a thread's.
        self.assertEqual(self.session(self.frank), (1, 1, 0))
        self.assertEqual(self.session(self.frank), (2, 0, 0))
        self.frank.add(b"Subject: new\r\n\r\n" + b"x" * 100000 + b"\r\n")
        self.assertEqual(self.session(self.frank), (1, 1, 0))
        self.assertEqual(self.session(self.frank), (2, 0, 0))

    def test_mbox_never_quick(self):
        # mbox opens take MDA locks that wait: always a thread's, and so
        # its release; the user gets no hint, so the loop does not try.
        self.assertEqual(self.session(self.gina), (0, 1, 0))
        self.assertEqual(self.session(self.gina), (0, 1, 0))

    def test_dropped_session_released_on_the_loop(self):
        mb = self.fresh()
        mb.add(b"Subject: x\r\n\r\nx\r\n")
        self.session(mb)
        before = self.counts()
        c = self.connect()
        c.login(mb.user, mb.password)
        c.close()			# no QUIT: a release, no UPDATE
        # The release runs on the loop at the end of the turn that sees
        # the close (the next login may come first: [IN-USE], retried).
        c2 = self.login_retry(mb)
        self.assertEqual(c2.cmd("STAT"), "+OK 1 17")
        c2.quit()
        after = self.counts()
        self.assertGreaterEqual(after[0] - before[0], 3)
        self.assertEqual(after[2], 0)


class QuickOff(QuickBase):
    CONFIG = {"metrics": {"listen": "127.0.0.1:0"},
              "auth": {"quick_jobs": "no"}}

    def test_never_tried(self):
        mb = self.fresh()
        mb.add(b"Subject: x\r\n\r\nx\r\n")
        for _ in range(3):
            self.assertEqual(self.session(mb), (0, 0, 0))


if __name__ == "__main__":
    evtest.main()
