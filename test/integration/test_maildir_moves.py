"""
Maildir messages that another program (an IMAP server, an MUA) moves or
removes during a POP3 session (issue 4, "Maildir driver, hardened").

A file that is not where the login's scan saw it is looked up on a worker
thread (the driver's msg_locate()) while the session waits, so these
tests also check that pipelined commands after such a RETR are answered
in order (RFC 2449 section 6.6), that a client dropping out during the
lookup crashes nothing and leaves the maildrop unlocked, and that the
lock is released before QUIT's +OK (RFC 1939 section 6).
"""

import os
import socket
import struct
import time

import evtest
from evtest import wire, stuff

MSGS = [b"Subject: one\n\nfirst body\n",
        b"Subject: two\r\n\r\n.dotted line\r\nsecond body\r\n",
        b"Subject: three\n\nthird body\nline 2\nline 3\n"]


def fill(mb, msgs=MSGS):
    mb.uid = [mb.add(m) for m in msgs]
    return mb


def move(mb, uidl, flags):
    """What an IMAP server does to set flags: rename into cur/ as
    "<uidl>:2,<flags>" (from new/, or from cur/ with other flags)."""
    old = mb.files()[uidl]
    new = os.path.join(mb.maildir, "cur", uidl + ":2," + flags)
    os.rename(old, new)
    return new


def retr_body(c):
    return b"".join(l + b"\r\n" for l in c.multi())


class Moves(evtest.ServerTestCase):
    POOL = 12

    def test_moved_to_cur_with_flags(self):
        mb = fill(self.fresh())
        c = self.login(mb)
        move(mb, mb.uid[0], "S")
        self.assertEqual(c.ok("RETR 1"), "+OK %d octets" % len(wire(MSGS[0])))
        self.assertEqual(retr_body(c), wire(MSGS[0]))
        # Renamed again with other flags, within cur/.
        move(mb, mb.uid[0], "RS")
        self.assertEqual(c.retr(1), wire(MSGS[0]))
        # TOP follows a move as RETR does; sizes and UIDLs do not change.
        move(mb, mb.uid[2], "")
        _, lines = c.ok_multi("TOP 3 1")
        self.assertEqual(lines, [b"Subject: three", b"", b"third body"])
        self.assertEqual(c.ok("UIDL 3").split()[2], mb.uid[2])
        self.assertEqual(c.ok("LIST 3"), "+OK 3 %d" % len(wire(MSGS[2])))
        self.assertEqual(c.retr(2), wire(MSGS[1]))	# never moved
        c.quit()

    def test_moved_then_deleted(self):
        mb = fill(self.fresh())
        c = self.login(mb)
        move(mb, mb.uid[1], "S")
        self.assertEqual(c.retr(2), wire(MSGS[1]))
        move(mb, mb.uid[1], "ST")
        c.ok("DELE 2")
        c.quit()			# UPDATE follows the second rename too
        self.assertEqual(mb.uidls(), sorted([mb.uid[0], mb.uid[2]]))

    def test_removed_gives_err_and_session_goes_on(self):
        mb = fill(self.fresh())
        c = self.login(mb)
        os.unlink(mb.files()[mb.uid[1]])
        r = c.cmd("RETR 2")
        self.assertTrue(r.startswith("-ERR") and "removed" in r, r)
        r = c.cmd("TOP 2 0")
        self.assertTrue(r.startswith("-ERR"), r)
        c.ok("NOOP")
        self.assertEqual(c.retr(1), wire(MSGS[0]))
        # Moved first, then removed: the lookup finds nothing either.
        move(mb, mb.uid[2], "S")
        os.unlink(mb.files()[mb.uid[2]])
        self.assertERR(c.cmd("RETR 3"))
        self.assertEqual(c.ok("STAT"), "+OK 3 %d" %
                         sum(len(wire(m)) for m in MSGS))
        c.quit()

    def test_pipelined_order(self):
        mb = fill(self.fresh())
        c = self.login(mb)
        move(mb, mb.uid[1], "S")
        os.unlink(mb.files()[mb.uid[2]])
        c.send("RETR 1\r\nRETR 2\r\nNOOP\r\nRETR 3\r\nNOOP\r\nTOP 2 0\r\n"
               "STAT\r\n")
        self.assertEqual(c.status(), "+OK %d octets" % len(wire(MSGS[0])))
        self.assertEqual(c.multi_raw(), stuff(wire(MSGS[0])))
        self.assertEqual(c.status(), "+OK %d octets" % len(wire(MSGS[1])))
        self.assertEqual(c.multi_raw(), stuff(wire(MSGS[1])))
        self.assertEqual(c.status(), "+OK")			# NOOP
        r = c.status()						# RETR 3
        self.assertTrue(r.startswith("-ERR") and "removed" in r, r)
        self.assertEqual(c.status(), "+OK")			# NOOP
        self.assertEqual(c.status(), "+OK")			# TOP 2 0
        self.assertEqual(c.multi(), [b"Subject: two", b""])
        self.assertTrue(c.status().startswith("+OK 3 "))	# STAT
        c.quit()

    def test_fin_after_retr_of_moved(self):
        # The client half-closes right after a RETR that needs a lookup:
        # the RETR and the NOOP after it are still answered, then EOF.
        mb = fill(self.fresh())
        c = self.login(mb)
        move(mb, mb.uid[0], "S")
        c.send("RETR 1\r\nNOOP\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        self.assertOK(c.status())
        self.assertEqual(retr_body(c), wire(MSGS[0]))
        self.assertEqual(c.status(), "+OK")
        c.expect_closed()
        self.login_retry(mb).quit()


class DropDuringLookup(evtest.ServerTestCase):
    """A client that resets the connection while its RETR's lookup runs.
    The server logs at debug level so that the test can tell that the
    reset did come during a lookup (event=locate-detached)."""
    POOL = 1
    CONFIG = {"log": {"debug": "yes"}}
    ATTEMPTS = 12

    def test_drop_during_lookup(self):
        # A big cur/ makes the lookup take a while (it reads all of
        # cur/); the client resets the connection while it runs. The
        # job must not touch the freed session, the maildrop must be
        # released once (ASan would report a double free; a leak or a
        # lock never released fails the login below), after the lookup.
        mb = self.fresh()
        cur = os.path.join(mb.maildir, "cur")
        body = b"Subject: filler\n\nx\n"
        for i in range(30000):
            name = "%d.F%d.evtest,W=%d:2,S" % (1600000000 + i, i,
                                               len(wire(body)))
            with open(os.path.join(cur, name), "wb") as f:
                f.write(body)
        target = mb.add(b"Subject: target\n\nmoved\n")
        n = 30001
        flags = ["S", "RS", "FS", "T"]
        line = "event=locate-detached msg=%d" % n
        c = self.login_retry(mb, timeout=10)
        for k in range(self.ATTEMPTS):
            move(mb, target, flags[k % len(flags)])
            c.send("RETR %d\r\n" % n)
            time.sleep(0.002)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              struct.pack("ii", 1, 0))
            c.close()				# RST
            # This login waits for the release, which the lookup makes
            # after logging the line (if the reset came during it).
            c = self.login_retry(mb, timeout=10)
            if sum(line in l for l in self.srv.log()) >= 2:
                break
        # At least once the reset must have come while the lookup ran.
        self.assertIsNotNone(self.srv.wait_log(line, timeout=5),
                             "no reset during a lookup in %d attempts" %
                             self.ATTEMPTS)
        move(mb, target, "")
        self.assertEqual(c.retr(n), wire(b"Subject: target\n\nmoved\n"))
        c.quit()
        self.assertTrue(self.srv.alive())


class QuitReleasesFirst(evtest.ServerTestCase):
    """RFC 1939 section 6: QUIT releases the maildrop, then says +OK, so
    a client that logs in again at once never gets [IN-USE] (the release
    runs on a worker thread: the +OK must wait for it)."""
    POOL = 2

    def test_relogin_at_once(self):
        mb = fill(self.fresh())
        lock = os.path.join(mb.maildir, "evpop3d.lock")
        for i in range(40):
            c = self.login(mb)
            if i % 10 == 9:
                c.ok("RSET")
                c.ok("NOOP")
            r = c.cmd("QUIT")
            # The lock record (sesslock.h) says "free" by the time the
            # +OK arrives, not some time after it.
            with open(lock, "rb") as f:
                self.assertTrue(f.read().startswith(b"free"), i)
            self.assertEqual(r, "+OK evpop3d signing off.")
            c.expect_closed()
        # With deletions too: UPDATE, unlock, +OK.
        c = self.login(mb)
        c.ok("DELE 1")
        self.assertOK(c.cmd("QUIT"))
        c = self.login(mb)			# no retry: must be free
        self.assertEqual(c.ok("STAT").split()[1], "2")
        c.quit()


if __name__ == "__main__":
    evtest.main()
