"""
mbox UPDATE under faults (issue 4): whatever happens while evpop3d
rewrites an mbox, the file holds exactly the old mailbox or exactly the
new one, and mail delivered meanwhile survives.

 - kill -9 of the daemon at random moments of the rewrite, many times;
   each time the file is byte-identical to the old or the new mailbox,
   and another daemon logs in at once (the dead session's locks are
   stale) and parses it;
 - a delivery process appending with the MDA locks (mboxdeliver.py) while
   sessions DELE and QUIT: every delivered message is there exactly once
   unless a session deleted it;
 - a write error (RLIMIT_FSIZE -> EFBIG): -ERR [SYS/TEMP], the mbox is
   untouched, no temp file is left;
 - another program (an MUA) rewrote the mbox during the session: the
   UPDATE deletes nothing and says so;
 - owner and mode of the mbox survive an UPDATE;
 - the MDA's locks (dotlock, fcntl) make a login wait; a dotlock left by
   a dead process does not.

EVTEST_KILL_RUNS (default 30) sets the number of kill runs (up to twice
as many are made until both outcomes were seen), EVTEST_KILL_SPAN the
initial kill window in seconds (default 1.5 x the measured UPDATE time),
EVTEST_SEED the random seed (printed on failure).
"""

import fcntl
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import evtest
import mboxdeliver

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = int(os.environ.get("EVTEST_SEED") or random.randrange(1 << 30))
KILL_RUNS = int(os.environ.get("EVTEST_KILL_RUNS", "30"))
TMP_RX = re.compile(r"evpop3d-tmp")


def message(i, size, tag=b"m"):
    """A message of about size bytes with a unique Message-ID, some
    lines that need mboxrd quoting and a "From " line without a date."""
    head = (b"From: sender%d@example.com\nTo: rcpt@example.com\n"
            b"Subject: %s %d\nMessage-ID: <%s-%d@example.com>\n\n" %
            (i, tag, i, tag, i))
    line = b"%s %06d the quick brown fox jumps over the lazy dog 0123456789\n"
    n = max(1, (size - len(head)) // 70)
    body = b"".join(line % (tag, j) for j in range(n))
    if i % 5 == 0:
        body += b"From the body of %d, no date here\n>From quoted\n" % i
    return head + body


def entries(msgs):
    return [mboxdeliver.entry(m, "sender@example.com", 1704103200 + i)
            for i, m in enumerate(msgs)]


def temp_files(d):
    return sorted(n for n in os.listdir(d) if TMP_RX.search(n))


def uidls(c):
    _, lines = c.ok_multi("UIDL")
    return [l.split()[1].decode() for l in lines]


def halt(srv):
    """SIGTERM srv and check its exit status and log; keeps its dir."""
    rc = srv.terminate()
    srv.kill()
    problems = srv.check_log()
    if rc not in (0, None):
        problems.append("exit status %d" % rc)
    if problems:
        raise AssertionError("; ".join(problems) + "\n" +
                             "\n".join(srv.log()[-40:]))


class Faults(evtest.ServerTestCase):
    POOL = 0

    @classmethod
    def setup_users(cls, srv):
        cls.mb = {}
        for name in ("efbig", "mua-rename", "mua-inplace", "mua-samesize",
                     "owner", "owner-group", "deliver", "mda-dotlock",
                     "mda-fcntl", "dead-dotlock"):
            cls.mb[name] = mboxdeliver.add_user(srv, name + "@example.com")

    def setUp(self):
        self.rng = random.Random(SEED)

    def fill(self, mb, n=6, size=3000):
        mb.raw = entries([message(i, size) for i in range(n)])
        mboxdeliver.write(mb.mbox, b"".join(mb.raw))
        return mb.raw

    def assertFile(self, mb, data, what):
        got = mboxdeliver.read(mb.mbox)
        if got != data:
            self.fail("%s: mbox is %s bytes, expected %d (seed %d)" % (
                what, None if got is None else len(got), len(data), SEED))

    # -- write error

    def test_write_error_efbig(self):
        mb = self.mb["efbig"]
        raw = self.fill(mb, 40, 5000)
        before = b"".join(raw)
        c = self.login(mb)
        c.ok("DELE 1")
        c.ok("DELE 7")
        pid = self.srv.pid
        old = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        # Well below the new file's size: its write fails with EFBIG
        # (main.c ignores SIGXFSZ).
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (8192, old[1]))
        mark = len(self.srv.log())
        try:
            r = c.cmd("QUIT")
            c.expect_closed()
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, old)
        self.assertTrue(r.startswith("-ERR [SYS/TEMP]"), r)
        self.assertTrue(self.srv.wait_log("File too large", start=mark),
                        "\n".join(self.srv.log()[mark:]))
        self.assertTrue(self.srv.alive())
        self.assertFile(mb, before, "after EFBIG")
        self.assertEqual(temp_files(os.path.dirname(mb.mbox)), [])
        c = self.login(mb)
        self.assertEqual(c.ok("STAT").split()[1], "40")
        c.quit()
        self.assertFile(mb, before, "after the next session")

    # -- another program rewrote the mbox during the session

    def mua_session(self, mb, rewrite, during=None):
        """DELE 2 and 3, let rewrite() act as an MUA, then during(conn),
        then QUIT: nothing may be deleted and the file must be what the
        MUA left."""
        raw = self.fill(mb)
        mua = b"".join(raw[1:])			# the MUA expunged message 1
        c = self.login(mb)
        u = uidls(c)
        c.ok("DELE 2")
        c.ok("DELE 3")
        mua = rewrite(mb, raw, mua)
        if during is not None:
            during(c)
        mark = len(self.srv.log())
        r = c.cmd("QUIT")
        c.expect_closed()
        self.assertTrue(r.startswith("-ERR [SYS/TEMP]"), r)
        # ... and the log says why.
        self.assertTrue(self.srv.wait_log(
            re.escape(mb.mbox) + ".*changed by another program",
            start=mark), "\n".join(self.srv.log()[mark:]))
        self.assertTrue(self.srv.wait_log(
            r'event=update rip=\S+ user="%s" deleted=0 failed=2' %
            re.escape(mb.user), start=mark),
            "\n".join(self.srv.log()[mark:]))
        self.assertFile(mb, mua, "after an MUA rewrite")
        self.assertEqual(temp_files(os.path.dirname(mb.mbox)), [])
        c = self.login(mb)
        n = len(mboxdeliver.split(mua))
        self.assertEqual(c.ok("STAT").split()[1], str(n))
        if n == len(raw) - 1:
            self.assertEqual(uidls(c), u[1:])
        c.quit()

    def test_mua_rename_over(self):
        def rename(mb, raw, mua):
            tmp = mb.mbox + ".mua"
            mboxdeliver.write(tmp, mua)
            os.rename(tmp, mb.mbox)
            return mua

        def retr(c):
            # The indexed file is gone: RETR fails, the session goes on.
            c.err("RETR 4")
            c.ok("NOOP")
        self.mua_session(self.mb["mua-rename"], rename, retr)

    def test_mua_inplace_truncate(self):
        def inplace(mb, raw, mua):
            with open(mb.mbox, "r+b") as f:
                f.write(mua)
                f.truncate()
            return mua
        self.mua_session(self.mb["mua-inplace"], inplace)

    def test_mua_inplace_same_size(self):
        # A flag change the MUA writes in place: same size, same inode,
        # one byte of message 4 differs.
        def flip(mb, raw, mua):
            data = bytearray(b"".join(raw))
            off = len(b"".join(raw[:3])) + raw[3].index(b"Subject: m") + 9
            data[off] = ord("M")
            with open(mb.mbox, "r+b") as f:
                f.seek(off)
                f.write(data[off:off + 1])
            return bytes(data)
        self.mua_session(self.mb["mua-samesize"], flip)

    # -- owner and mode

    def owner_mode(self, mb, uid, gid, mode):
        raw = self.fill(mb)
        os.chown(mb.mbox, uid, gid)
        os.chmod(mb.mbox, mode)
        c = self.login(mb)
        c.ok("DELE 2")
        c.ok("DELE 6")
        self.assertOK(c.quit())
        self.assertFile(mb, b"".join(raw[:1] + raw[2:5]), "after UPDATE")
        st = os.stat(mb.mbox)
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777),
                         (uid, gid, mode))
        self.assertEqual(temp_files(os.path.dirname(mb.mbox)), [])

    @unittest.skipIf(os.geteuid() != 0, "needs root for chown")
    def test_owner_mode_0600(self):
        self.owner_mode(self.mb["owner"], 65534, 65534, 0o600)

    @unittest.skipIf(os.geteuid() != 0, "needs root for chown")
    def test_owner_mode_0640_group(self):
        self.owner_mode(self.mb["owner-group"], 65534, 8, 0o640)

    # -- the MDA's locks

    def hold_locks(self, mb, secs, dotlock=True, fcntl_lock=True):
        """Hold the MDA locks on mb as a delivery would, for secs, in a
        thread; returns the thread (started once the locks are held)."""
        held = threading.Event()
        lockpath = mb.mbox + ".lock"

        def run():
            if dotlock:
                fd = os.open(lockpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
                os.write(fd, b"%d\n" % os.getpid())
                os.close(fd)
            fd = os.open(mb.mbox, os.O_RDWR)
            if fcntl_lock:
                fcntl.lockf(fd, fcntl.LOCK_EX)
            held.set()
            time.sleep(secs)
            os.close(fd)
            if dotlock:
                os.unlink(lockpath)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.assertTrue(held.wait(5))
        self.addCleanup(t.join, 10)
        return t

    def timed_login(self, mb):
        t0 = time.monotonic()
        c = self.connect()
        c.ok("USER " + mb.user)
        r = c.cmd("PASS " + mb.password)
        return c, r, time.monotonic() - t0

    def test_login_waits_for_mda_dotlock(self):
        mb = self.mb["mda-dotlock"]
        self.fill(mb, 3)
        self.hold_locks(mb, 0.6, fcntl_lock=False)
        c, r, t = self.timed_login(mb)
        self.assertTrue(r.startswith("+OK"), r)
        self.assertGreater(t, 0.4, "login did not wait for the dotlock")
        c.quit()

    def test_login_waits_for_mda_fcntl(self):
        mb = self.mb["mda-fcntl"]
        self.fill(mb, 3)
        self.hold_locks(mb, 0.6, dotlock=False)
        c, r, t = self.timed_login(mb)
        self.assertTrue(r.startswith("+OK"), r)
        self.assertGreater(t, 0.4, "login did not wait for the fcntl lock")
        c.quit()

    def test_dotlock_of_dead_process(self):
        # What a kill -9 during UPDATE leaves: PATH.lock naming a pid that
        # is gone, just written. Waiting for the 5-minute mtime rule
        # locks the user and the MDA out after every crash; Dovecot's 2 s
        # (lib/file-dotlock.c) still makes the next login wait: a complete
        # record of a dead pid is taken over at once.
        mb = self.mb["dead-dotlock"]
        raw = self.fill(mb, 3)
        p = subprocess.Popen(["true"])
        p.wait()
        with open(mb.mbox + ".lock", "w") as f:
            f.write("%d\n" % p.pid)
        c, r, t = self.timed_login(mb)
        self.assertTrue(r.startswith("+OK") and t < 1,
                        "dotlock of dead pid %d: login -> %r after %.1fs" %
                        (p.pid, r, t))
        c.ok("DELE 1")
        self.assertOK(c.quit())
        self.assertFile(mb, b"".join(raw[1:]), "after UPDATE")
        self.assertFalse(os.path.exists(mb.mbox + ".lock"))

    # -- concurrent delivery

    def test_concurrent_delivery(self):
        mb = self.mb["deliver"]
        rng = self.rng
        first = [mboxdeliver.loop_entry(100000 + i) for i in range(20)]
        mboxdeliver.write(mb.mbox, b"".join(first))
        count = 100000
        p = subprocess.Popen([sys.executable,
                              os.path.join(HERE, "mboxdeliver.py"),
                              mb.mbox, str(count), "0.005"],
                             stdout=subprocess.PIPE)
        self.addCleanup(p.stdout.close)
        self.addCleanup(p.wait, 10)
        self.addCleanup(p.kill)
        done = []

        def reader():
            for line in p.stdout:
                done.append(int(line))
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        deleted = {}			# Message-ID -> session number
        sessions, t0 = 0, time.monotonic()
        while sessions < 20 or len(done) < 50:
            if time.monotonic() - t0 > 20:
                break
            sessions += 1
            c = self.login(mb)
            n = int(c.ok("STAT").split()[1])
            marked = []
            for i in rng.sample(range(1, n + 1), min(n, rng.randint(0, 5))):
                _, hdr = c.ok_multi("TOP %d 0" % i)
                mid = [h for h in hdr if h.startswith(b"Message-ID: ")]
                self.assertEqual(len(mid), 1, hdr)
                marked.append(mid[0][12:].decode())
                c.ok("DELE %d" % i)
            self.assertEqual(len(set(uidls(c))), n - len(marked))
            time.sleep(rng.uniform(0, 0.05))	# deliveries meanwhile
            r = c.quit()
            self.assertTrue(r.startswith("+OK"), "session %d: %r (seed %d)"
                            % (sessions, r, SEED))
            for m in marked:
                self.assertNotIn(m, deleted, "deleted twice")
                deleted[m] = sessions
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0)
        t.join(10)
        self.assertFalse(os.path.exists(mb.mbox + ".lock"))
        self.assertGreater(len(done), 20, "too few deliveries to test")
        self.assertEqual(done, list(range(len(done))))
        # Everything delivered, in order, exactly once, minus what the
        # sessions deleted; byte for byte.
        mid = re.compile(rb"^Message-ID: (\S+)$", re.M)
        allr = first + [mboxdeliver.loop_entry(i) for i in done]
        want = [e for e in allr
                if mid.search(e).group(1).decode() not in deleted]
        got = mboxdeliver.read(mb.mbox)
        if got != b"".join(want):
            ids = [m.decode() for m in mid.findall(got)]
            wids = [mid.search(e).group(1).decode() for e in want]
            dup = sorted({x for x in ids if ids.count(x) > 1})
            lost = sorted(set(wids) - set(ids))
            extra = sorted(set(ids) - set(wids))
            self.fail("mbox differs (seed %d): %d messages, expected %d; "
                      "duplicated %s, lost %s, not expected %s" % (
                          SEED, len(ids), len(wids), dup[:5], lost[:5],
                          extra[:5]))
        c = self.login(mb)
        self.assertEqual(c.ok("STAT").split()[1], str(len(want)))
        u = uidls(c)
        self.assertEqual(len(set(u)), len(u))
        c.quit()
        sys.stderr.write("\n  concurrent delivery: %d sessions, %d "
                         "delivered, %d deleted, %d left ... " % (
                             sessions, len(done), len(deleted), len(want)))


class KillDuringUpdate(unittest.TestCase):
    """kill -9 of the daemon at a random moment of the UPDATE of a ~20 MB
    mbox, KILL_RUNS times. A second daemon (the checker) on the same
    passwd-file logs in after each kill."""

    TARGET = 20 << 20

    @classmethod
    def setUpClass(cls):
        cls.checker = evtest.Server(pool=0)
        cls.addClassCleanup(cls.checker.cleanup)
        cls.mb = mboxdeliver.add_user(cls.checker, "victim@example.com")
        rng = random.Random(SEED)
        msgs, total = [], 0
        while total < cls.TARGET:
            msgs.append(message(len(msgs), rng.choice(
                (2000, 4000, 8000, 16000, 32000, 64000)), b"k"))
            total += len(msgs[-1])
        cls.raw = entries(msgs)
        cls.orig = b"".join(cls.raw)
        cls.checker.start()

    @classmethod
    def tearDownClass(cls):
        cls.checker.stop()

    def victim(self):
        v = evtest.Server(pool=0, config={"auth": {
            "passwd_file": os.path.join(self.checker.dir, "passwd")}})
        self.addCleanup(v.cleanup)
        v.start()
        return v

    def update(self, dele, delay=None):
        """Restore the original mbox, DELE dele (1-based) in a victim
        daemon and QUIT. With delay, kill -9 the victim delay seconds
        after QUIT; else wait for the reply. Returns (UIDLs seen, seconds
        from QUIT to the reply or None if killed, the victim's pid)."""
        mboxdeliver.write(self.mb.mbox, self.orig)
        v = self.victim()
        t0 = time.monotonic()
        c = evtest.Conn(v.port)
        self.addCleanup(c.close)
        c.login(self.mb.user, self.mb.password)
        self.t_logins.append(time.monotonic() - t0)
        u = uidls(c)
        c.send("".join("DELE %d\r\n" % i for i in dele))
        for i in dele:
            r = c.status()
            self.assertTrue(r.startswith("+OK"), r)
        c.send("QUIT\r\n")
        t0 = time.monotonic()
        if delay is None:
            r = c.status()
            t = time.monotonic() - t0
            self.assertTrue(r.startswith("+OK"), r)
            c.expect_closed()
            halt(v)
            return u, t, v.pid
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        v.proc.send_signal(signal.SIGKILL)
        v.proc.wait(10)
        problems = v.check_log()
        self.assertEqual(problems, [], "\n".join(v.log()[-30:]))
        return u, None, v.pid

    def test_kill_during_update(self):
        self.t_logins = []
        rng = random.Random(SEED)
        n = len(self.raw)
        spool = os.path.dirname(self.mb.mbox)

        def pick():
            return sorted(rng.sample(range(1, n + 1), rng.randint(1, n // 4)))

        # How long an UPDATE takes here: the kills are spread over 1.5x.
        times = []
        for _ in range(3):
            dele = pick()
            u, t, _ = self.update(dele)
            times.append(t)
            keep = [r for i, r in enumerate(self.raw, 1) if i not in dele]
            self.assertEqual(mboxdeliver.read(self.mb.mbox), b"".join(keep))
        span = 1.5 * max(times)
        old = new = 0
        stale_tmp = lock_waits = dotlocks = mid_write = 0
        t_start = time.monotonic()
        span = float(os.environ.get("EVTEST_KILL_SPAN") or span)
        run = 0
        while run < KILL_RUNS or ((old == 0 or new == 0) and
                                  run < 2 * KILL_RUNS):
            if run and run % 5 == 0:
                # The machine got slower or faster than when measured:
                # keep both outcomes possible.
                if new == 0:
                    span *= 2
                elif old == 0:
                    span /= 2
            run += 1
            dele = pick()
            delay = rng.uniform(0, span)
            u, _, pid = self.update(dele, delay)
            what = "run %d, kill at %.3fs of %.3fs, seed %d" % (
                run, delay, span, SEED)
            got = mboxdeliver.read(self.mb.mbox)
            keep = [r for i, r in enumerate(self.raw, 1) if i not in dele]
            if got == self.orig:
                old += 1
                want_u = u
            elif got == b"".join(keep):
                new += 1
                want_u = [x for i, x in enumerate(u, 1) if i not in dele]
            else:
                self.fail("%s: the mbox is neither old nor new (%s bytes; "
                          "old %d, new %d)" % (
                              what, None if got is None else len(got),
                              len(self.orig), len(b"".join(keep))))
            # A dotlock the victim held when it died is stale: its pid is
            # gone. test_dotlock_of_dead_process checks that such a lock
            # is broken at once; here it is aged past the 5-minute rule so
            # that each run tests the session lock and the file (and a
            # pid reused meanwhile cannot make a run wait). The
            # dotlock is link()ed into place with "PID:HOST" already in
            # it, so the victim never leaves an empty one.
            if temp_files(spool):
                mid_write += 1
            dotlock = self.mb.mbox + ".lock"
            if os.path.exists(dotlock):
                dotlocks += 1
                with open(dotlock) as f:
                    owner = f.read()
                self.assertEqual(owner, "%d:%s\n" % (pid, socket.gethostname()),
                                 "%s: whose dotlock?" % what)
                os.utime(dotlock, (time.time() - 600, time.time() - 600))
            # The dead session's lock must not keep anyone out.
            t0 = time.monotonic()
            c = evtest.Conn(self.checker.port)
            self.addCleanup(c.close)
            c.ok("USER " + self.mb.user)
            r = c.cmd("PASS " + self.mb.password)
            t = time.monotonic() - t0
            self.assertTrue(r.startswith("+OK"), "%s: login after the kill "
                            "-> %r after %.1fs (dotlock %s)" % (
                                what, r, t,
                                "left" if os.path.exists(
                                    self.mb.mbox + ".lock") else "gone"))
            if t > 1.0:
                lock_waits += 1
            self.assertEqual(uidls(c), want_u, what)
            c.quit()
            # The checker's open may remove a dead run's temp file; count
            # and remove what is left so the disk does not fill.
            left = temp_files(spool)
            stale_tmp += len(left)
            for name in left:
                os.unlink(os.path.join(spool, name))
        sys.stderr.write(
            "\n  kill -9 during UPDATE of %.1f MB (%d msgs): UPDATE took "
            "%s s, kills spread over %.3f s at the end; %d runs: %d old, "
            "%d new; "
            "%d killed with a temp file, %d of them left after the next "
            "login; %d dotlocks left; "
            "%d logins waited > 1 s; login (scan) median %.3f s; "
            "%.1f s ... " % (
                len(self.orig) / 1e6, n, "/".join("%.3f" % x for x in times),
                span, run, old, new, mid_write, stale_tmp, dotlocks,
                lock_waits, sorted(self.t_logins)[len(self.t_logins) // 2],
                time.monotonic() - t_start))
        self.assertGreater(old, 0, "no kill before the rename: timing "
                           "tests nothing")
        self.assertGreater(new, 0, "no kill after the rename: timing "
                           "tests nothing")


if __name__ == "__main__":
    evtest.main()
