"""
The listing cache ([mail] listing_cache, src/store/maildir/listcache.c):
a login into a Maildir whose new/ and cur/ have not changed since the
last login's listing uses that listing instead of reading the
directories. Real sessions against the real daemon, with mail delivered
and flags changed between them the way an MDA and an IMAP server do it:
no message is ever missed, shown twice or shown after it is gone, and
the metrics (evpop3d_listing_cache_lookups_total) say when the kept
listing was used, found stale or missing. A listing is kept only when
the directories' times are over a second old, so the test waits for the
clock (polled) where it needs one kept. With listing_cache = 0 nothing
is looked up.
"""

import os
import time

import evtest
from test_metrics import val
from test_quick import require_local_fs, scrape


def wait_settled(mb):
    """Until new/'s and cur/'s mtime and ctime are over 1 s old."""
    deadline = time.monotonic() + evtest.TIMEOUT
    for sub in ("new", "cur"):
        st = os.stat(os.path.join(mb.maildir, sub))
        newest = max(st.st_mtime_ns, st.st_ctime_ns) // 10**9
        while int(time.time()) - 1 <= newest:
            if time.monotonic() > deadline:
                raise AssertionError("the clock did not move on")
            time.sleep(0.05)


class ListingBase(evtest.ServerTestCase):
    CONFIG = {"metrics": {"listen": "127.0.0.1:0"},
              "auth": {"failure_delay": "0", "penalty_max": "0"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_local_fs(cls.srv, "the listing cache serves")
        cls.url = "http://127.0.0.1:%d/metrics" % cls.srv.metrics_port()

    def counts(self):
        """(hit, stale, miss, entries) since the start."""
        s = scrape(self.url)
        name = "evpop3d_listing_cache_lookups_total"
        return (val(s, name, result="hit"), val(s, name, result="stale"),
                val(s, name, result="miss"),
                val(s, "evpop3d_listing_cache_entries"))

    def session(self, mb, dele=()):
        """Log in; UIDL listing and STAT; DELE some; QUIT; the change in
        hit, stale and miss, and the listings kept after. QUIT's +OK
        comes after the maildrop's release, which is where a listing is
        put back: the counts are final when the client has it."""
        before = self.counts()
        c = self.connect()
        c.login(mb.user, mb.password)
        stat = c.cmd("STAT")
        self.assertOK(stat)
        _, uidls = c.ok_multi("UIDL")
        for n in dele:
            self.assertOK(c.cmd("DELE %d" % n))
        self.assertOK(c.cmd("QUIT"))
        c.expect_closed()
        after = self.counts()
        ids = [line.split()[1].decode() for line in uidls]
        return (stat, ids,
                tuple(a - b for a, b in zip(after[:3], before[:3])),
                after[3])

    def assertListed(self, changes):
        """The kept listing was found stale and not used. The open may
        then have been tried twice (the loop's, declined for a message
        it would have to read, then a thread's): the second finds none."""
        hit, stale, miss = changes
        self.assertEqual((hit, stale), (0, 1))
        self.assertIn(miss, (0, 1))


class ListingCache(ListingBase):
    @classmethod
    def setup_users(cls, srv):
        cls.alice = srv.add_user("alice", "alice-pw")
        cls.one = cls.alice.add(b"Subject: one\r\n\r\nfirst\r\n")
        cls.two = cls.alice.add(b"Subject: two\r\n\r\nsecond\r\n",
                                folder="cur", flags="S")

    def test_changes_between_logins(self):
        mb = self.alice
        wait_settled(mb)
        # The first login lists and keeps; the next ones use it.
        stat, ids, (hit, stale, miss), entries = self.session(mb)
        self.assertEqual(ids, [self.one, self.two])
        self.assertEqual((hit, stale, miss), (0, 0, 1))
        self.assertEqual(entries, 1)
        stat2, ids2, (hit, stale, miss), _ = self.session(mb)
        self.assertEqual((stat2, ids2), (stat, ids))
        self.assertEqual((hit, stale, miss), (1, 0, 0))

        # An MDA delivers (tmp/, then a rename into new/): seen at once.
        t0 = time.monotonic()
        three = mb.add(b"Subject: three\r\n\r\nthird\r\n")
        stat, ids, changes, entries = self.session(mb)
        self.assertEqual(ids, [self.one, self.two, three])
        self.assertTrue(stat.startswith("+OK 3 "))
        self.assertListed(changes)
        if time.monotonic() - t0 < 0.9:	# else a stall: no proof
            self.assertEqual(entries, 0)	# new/ changed within 1 s
        # (A listing is kept only by the close of an open that made or
        # used one of settled directories: none while a session has it.)

        # An IMAP server moves a message to cur/ and flags it.
        wait_settled(mb)
        self.session(mb)			# kept again
        files = mb.files()
        os.rename(files[three], os.path.join(mb.maildir, "cur",
                                             three + ":2,S"))
        stat, ids, changes, _ = self.session(mb)
        self.assertEqual(ids, [self.one, self.two, three])
        self.assertListed(changes)

        # Another program removes one.
        wait_settled(mb)
        self.session(mb)
        os.unlink(mb.files()[self.one])
        stat, ids, changes, _ = self.session(mb)
        self.assertEqual(ids, [self.two, three])
        self.assertListed(changes)

        # Our own DELE: the listing goes with the UPDATE.
        wait_settled(mb)
        self.session(mb)
        _, _, _, entries = self.session(mb, dele=(1,))
        self.assertEqual(entries, 0)
        stat, ids, _, _ = self.session(mb)
        self.assertEqual(ids, [three])
        self.assertTrue(stat.startswith("+OK 1 "))


class ListingCacheOff(ListingBase):
    CONFIG = {"metrics": {"listen": "127.0.0.1:0"},
              "auth": {"failure_delay": "0", "penalty_max": "0"},
              "mail": {"listing_cache": "0"}}

    @classmethod
    def setup_users(cls, srv):
        cls.bob = srv.add_user("bob", "bob-pw")
        cls.bob.add(b"Subject: b\r\n\r\nbody\r\n")

    def test_never_looked_up(self):
        wait_settled(self.bob)
        for _ in range(3):
            stat, _, changes, entries = self.session(self.bob)
            self.assertTrue(stat.startswith("+OK 1 "))
            self.assertEqual(changes, (0, 0, 0))
            self.assertEqual(entries, 0)
        self.bob.add(b"Subject: c\r\n\r\nbody\r\n")
        stat, _, _, _ = self.session(self.bob)
        self.assertTrue(stat.startswith("+OK 2 "))


if __name__ == "__main__":
    evtest.main()
