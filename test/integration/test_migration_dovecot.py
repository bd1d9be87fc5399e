"""
Migration from a real Dovecot without re-downloads (issue 4): Maildirs that
Debian's Dovecot (dovecot-pop3d, run standalone on loopback) has served keep
their UIDL lists, message numbers included, when evpop3d serves them.

One Dovecot serves four users, each a Maildir of 20 messages (new/ and cur/,
with and without flags, names with and without ,S= and ,W=), with per-user
settings from its passwd-file: the default pop3_uidl_format (%08Xu%08Xv),
pop3_uidl_format=%f, and pop3_save_uidl=yes with an unusual format (Dovecot
then writes P fields into dovecot-uidlist). Fetching the UIDL list makes
Dovecot write dovecot-uidlist; then Dovecot is stopped and evpop3d, with
uidl_format unset or %f, must list the same. Also: mail delivered after
Dovecot stopped, a hand-written P field (courier-dovecot-migrate.pl style),
a damaged dovecot-uidlist (name-based ids, login works), that evpop3d
never writes Dovecot's file, and the migration cutoff: mail the real
Dovecot lists after evpop3d's first login keeps its name-based id (a client
has seen it), and a list that goes away after that fails the login
([SYS/TEMP]) rather than change ids.

Dovecot runs its mail processes as `nobody` (it refuses root), so the test
runs as root, as CI does; it is skipped for other users. A missing Dovecot
is a failure: scripts/deps installs it.
"""

import os
import poplib
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest

import evtest

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
POP_TIMEOUT = 10

DOVECOT_CONF = """\
# written by test_migration_dovecot.py
instance_name = evtest-{port}
base_dir = {dir}/run
state_dir = {dir}/lib
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {dir}/passwd
}}
first_valid_uid = 1
mail_location = maildir:~/Maildir
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""

# Dovecot settings per user (passwd-file extra fields override settings).
USERS = {
    "dflt@example.com": "",
    "fname@example.com": "userdb_pop3_uidl_format=%%f",
    "saved@example.com": "userdb_pop3_save_uidl=yes "
                         "userdb_pop3_uidl_format=S%%u.%%v",
    "order@example.com": "",
    "later@example.com": "",
}
# Dovecot serves this one again during the test (it rewrites the list).
LATER = "later@example.com"


def free_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def descendants(pid):
    """Pids of every live descendant of pid (from /proc)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
                parent[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def fill(mb, seed):
    """20 messages: new/ and cur/, flags, names with and without ,S=/,W=.

    Returns the unique parts in delivery order.
    """
    names = []
    for i in range(20):
        body = ("From: sender%d@example.org\nSubject: message %d of %s\n"
                "Message-ID: <%d.%d@example.org>\n\nline one\n.dot line\n"
                "%s\n" % (i, i, mb.user, seed, i, "x" * (i * 37))).encode()
        ts = 1700000000 + seed * 1000 + i * 10
        base = "%d.M%dP%d.mx.example.org" % (ts, 100 + i, 4000 + seed)
        if i % 4 != 3:				# some without sizes
            base += ",S=%d,W=%d" % (len(body), len(evtest.wire(body)))
        if i % 3 == 0:
            mb.add(body, name=base)			# new/
        elif i % 3 == 1:
            mb.add(body, name=base, folder="cur", flags="S")
        else:
            mb.add(body, name=base, folder="cur", flags="RS" if i % 2 else "")
        names.append(base)
    return names


def pop3_lists(port, user, password):
    """(UIDL list, LIST list) as [(number, value)], then QUIT."""
    p = poplib.POP3("127.0.0.1", port, timeout=POP_TIMEOUT)
    try:
        p.user(user)
        p.pass_(password)
        uidl = [tuple(l.decode().split()) for l in p.uidl()[1]]
        sizes = [tuple(l.decode().split()) for l in p.list()[1]]
    finally:
        p.quit()
    return uidl, sizes


class Dovecot:
    """A standalone Dovecot on a loopback port, stopped by its pid."""

    def __init__(self, top, users):
        self.dir = os.path.join(top, "dovecot")
        os.makedirs(self.dir)
        self.port = free_port()
        self.proc = None
        nobody = pwd.getpwnam("nobody")
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            for mb, extra in users:
                f.write("%s:{PLAIN}%s:%d:%d::%s::%s\n" % (
                    mb.user, mb.password, nobody.pw_uid, nobody.pw_gid,
                    mb.home, extra))
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(dir=self.dir, port=self.port))

    def start(self):
        out = open(os.path.join(self.dir, "dovecot.out"), "wb")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        out.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("dovecot exited (%d):\n%s" % (
                    self.proc.returncode, self.log()))
            try:
                s = socket.create_connection(("127.0.0.1", self.port), 1)
                try:
                    s.settimeout(5)
                    if s.recv(64).startswith(b"+OK"):
                        return
                finally:
                    s.close()
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("dovecot not up after 20 s:\n" + self.log())

    def stop(self):
        if self.proc is None:
            return
        kids = descendants(self.proc.pid) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        deadline = time.monotonic() + 5
        for k in kids:			# by pid, only what it started
            while (time.monotonic() < deadline and
                   os.path.exists("/proc/%d" % k)):
                time.sleep(0.05)
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None

    def log(self):
        text = ""
        for n in ("dovecot.out", "dovecot.log"):
            try:
                with open(os.path.join(self.dir, n), errors="replace") as f:
                    text += "--- %s\n%s" % (n, f.read()[-4000:])
            except OSError:
                pass
        return text


def chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.chown(os.path.join(root, n), uid, gid)


@unittest.skipUnless(os.geteuid() == 0,
                     "Dovecot runs mail as another user: needs root (CI)")
class DovecotMigration(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not os.access(DOVECOT, os.X_OK):
            raise AssertionError("no dovecot at %s: scripts/deps installs "
                                 "dovecot-core and dovecot-pop3d" % DOVECOT)
        cls.srv = evtest.Server(pool=0)
        cls.addClassCleanup(cls.srv.cleanup)
        cls.mb, cls.names = {}, {}
        for seed, user in enumerate(sorted(USERS), 1):
            mb = cls.srv.add_user(user, "Pw-%s-%s" % (seed,
                                                       os.urandom(4).hex()))
            cls.mb[user] = mb
            cls.names[user] = fill(mb, seed)
        # The "order" user: Dovecot numbers mail by UID, assigned in the
        # order it first saw the names (microseconds of M<usecs>), which
        # is not evpop3d's name order: M9 before M10.
        mb = cls.mb["order@example.com"]
        for i, us in enumerate((10, 9, 100, 11)):
            mb.add(b"Subject: same second %d\n\nx\n" % i,
                   name="1800000000.M%dP1.mx" % us)

        # Dovecot's mail processes run as nobody.
        nobody = pwd.getpwnam("nobody")
        os.chmod(cls.srv.dir, 0o711)
        os.chmod(os.path.join(cls.srv.dir, "home"), 0o711)
        for mb in cls.mb.values():
            chown_tree(mb.home, nobody.pw_uid, nobody.pw_gid)

        cls.dovecot = Dovecot(cls.srv.dir, [(cls.mb[u], USERS[u])
                                            for u in sorted(USERS)])
        cls.addClassCleanup(cls.dovecot.stop)
        cls.dovecot.start()
        cls.seen = {}
        try:
            for user in sorted(USERS):
                mb = cls.mb[user]
                cls.seen[user] = pop3_lists(cls.dovecot.port, mb.user,
                                            mb.password)
        except Exception as e:
            raise AssertionError("POP3 with Dovecot: %s\n%s" % (
                e, cls.dovecot.log()))
        finally:
            cls.dovecot.stop()
        cls.uidlists = {}
        for user, mb in cls.mb.items():
            path = os.path.join(mb.maildir, "dovecot-uidlist")
            if not os.path.exists(path):
                raise AssertionError("Dovecot wrote no %s\n%s" % (
                    path, cls.dovecot.log()))
            with open(path, "rb") as f:
                cls.uidlists[user] = (f.read(), os.stat(path).st_mtime_ns)

        # A Maildir Dovecot never saw: P fields written by hand, in the
        # form courier-dovecot-migrate.pl writes Courier's UIDLs.
        cls.hand = cls.srv.add_user("hand@example.com", "Pw-hand-x1")
        cls.hand_names = fill(cls.hand, 7)
        with open(os.path.join(cls.hand.maildir, "dovecot-uidlist"),
                  "w") as f:
            f.write("3 V1234567 N30\n")
            for i, n in enumerate(cls.hand_names, 1):
                if i % 2:
                    f.write("%d P%s W5 :%s\n" % (i, "UID%d-1111" % (i + 40),
                                                  n))
                else:
                    f.write("%d :%s\n" % (i, n))
        # A damaged one: UIDs out of order.
        cls.bad = cls.srv.add_user("bad@example.com", "Pw-bad-x2")
        cls.bad_names = fill(cls.bad, 8)
        with open(os.path.join(cls.bad.maildir, "dovecot-uidlist"),
                  "w") as f:
            f.write("3 V99 N30\n5 :%s\n4 :%s\n" % tuple(cls.bad_names[:2]))

        cls.srv.start()
        cls.addClassCleanup(cls.srv.stop)

    def evpop3d_lists(self, mb, srv=None):
        srv = srv or self.srv
        return pop3_lists(srv.port, mb.user, mb.password)

    def test_default_format(self):
        """pop3_uidl_format unset: the same list, numbers and sizes."""
        mb = self.mb["dflt@example.com"]
        uidl, sizes = self.seen["dflt@example.com"]
        self.assertEqual(len(uidl), 20)
        for n, u in uidl:		# Dovecot's %X is lower-case hex
            self.assertRegex(u, r"^[0-9a-f]{16}$")
        self.assertEqual(self.evpop3d_lists(mb), (uidl, sizes))

        # Mail delivered after Dovecot stopped: old ids stay, new ones
        # are their names, all unique.
        new = [mb.add(b"Subject: after %d\n\nlate\n" % i,
                      ts=1800000000 + i) for i in range(2)]
        uidl2, _ = self.evpop3d_lists(mb)
        self.assertEqual(uidl2[:20], uidl)
        self.assertEqual([u for n, u in uidl2[20:]], new)
        self.assertEqual(len(set(u for n, u in uidl2)), 22)

    def test_order(self):
        """Dovecot's numbering (by UID) even where name order differs."""
        mb = self.mb["order@example.com"]
        uidl, sizes = self.seen["order@example.com"]
        self.assertEqual(len(uidl), 24)
        self.assertEqual(self.evpop3d_lists(mb), (uidl, sizes))

    def test_filename_format(self):
        """pop3_uidl_format=%f in Dovecot, uidl_format=%f in evpop3d."""
        mb = self.mb["fname@example.com"]
        uidl, sizes = self.seen["fname@example.com"]
        self.assertEqual([u for n, u in uidl],
                         self.names["fname@example.com"])
        srv = evtest.Server(config={"pop3": {"uidl_format": "%f"}}, pool=0)
        self.addCleanup(srv.cleanup)
        srv.add_user(mb.user, mb.password, home=mb.home)
        srv.start()
        try:
            self.assertEqual(self.evpop3d_lists(mb, srv), (uidl, sizes))
        finally:
            srv.stop()

    def test_explicit_default_format(self):
        """uidl_format=%08Xu%08Xv (copied from a Dovecot config) lists
        what Dovecot listed: X is lower-case hex in Dovecot's
        var_expand()."""
        mb = self.mb["dflt@example.com"]
        uidl, sizes = self.seen["dflt@example.com"]
        srv = evtest.Server(config={"pop3": {"uidl_format": "%08Xu%08Xv"}},
                            pool=0)
        self.addCleanup(srv.cleanup)
        srv.add_user(mb.user, mb.password, home=mb.home)
        srv.start()
        try:
            self.assertEqual(self.evpop3d_lists(mb, srv)[0][:20], uidl)
        finally:
            srv.stop()

    def test_saved_uidls(self):
        """pop3_save_uidl=yes: the P fields Dovecot wrote are served."""
        mb = self.mb["saved@example.com"]
        uidl, sizes = self.seen["saved@example.com"]
        text = self.uidlists["saved@example.com"][0].decode()
        self.assertEqual(len(re.findall(r" PS\d+\.\d+ ", text)), 20, text)
        for n, u in uidl:
            self.assertRegex(u, r"^S\d+\.\d+$")
        self.assertEqual(self.evpop3d_lists(mb), (uidl, sizes))

    def test_hand_written_p(self):
        """A P field wins over Dovecot's default format."""
        uidl, _ = self.evpop3d_lists(self.hand)
        want = [(str(i), "UID%d-1111" % (i + 40) if i % 2 else
                 "%08x%08x" % (i, 1234567)) for i in range(1, 21)]
        self.assertEqual(uidl, want)

    def test_damaged_uidlist(self):
        """Damaged: name-based ids, and the login works."""
        uidl, sizes = self.evpop3d_lists(self.bad)
        self.assertEqual([u for n, u in uidl], self.bad_names)
        self.assertEqual(len(sizes), 20)

    def test_listed_later(self):
        """Mail the real Dovecot lists after evpop3d's first login keeps
        its name (the migration cutoff); the old mail keeps Dovecot's
        ids. Without the list, the login fails rather than change ids."""
        mb = self.mb[LATER]
        uidl, sizes = self.seen[LATER]
        self.assertEqual(len(uidl), 20)
        self.assertEqual(self.evpop3d_lists(mb), (uidl, sizes))
        # Frozen at the list's UIDVALIDITY and highest UID.
        text = self.uidlists[LATER][0].decode()
        uidv = int(re.match(r"3 V(\d+) ", text).group(1))
        top = max(int(l.split()[0]) for l in text.splitlines()[1:])
        cutoff = os.path.join(mb.maildir, "evpop3d-uidl-cutoff")
        with open(cutoff) as f:
            self.assertEqual(f.read(), "evpop3d-uidl-cutoff 1 V%d U%d\n"
                             % (uidv, top))

        # New mail, seen by evpop3d first, then listed by Dovecot.
        new = mb.add(b"Subject: late\n\nx\n", ts=1800000000)
        self.assertEqual(self.evpop3d_lists(mb)[0][20:], [("21", new)])
        nobody = pwd.getpwnam("nobody")
        chown_tree(mb.home, nobody.pw_uid, nobody.pw_gid)
        self.dovecot.start()
        try:
            duidl, _ = pop3_lists(self.dovecot.port, mb.user, mb.password)
        except Exception as e:
            raise AssertionError("POP3 with Dovecot: %s\n%s" % (
                e, self.dovecot.log()))
        finally:
            self.dovecot.stop()
        self.assertEqual(duidl[:20], uidl)
        self.assertEqual(duidl[20][1], "%08x%08x" % (top + 1, uidv))
        with open(os.path.join(mb.maildir, "dovecot-uidlist")) as f:
            self.assertRegex(f.read(), r"\n%d .*:%s" % (top + 1,
                                                         re.escape(new)))
        # evpop3d: Dovecot's ids for the old mail, the name for the new.
        uidl2, _ = self.evpop3d_lists(mb)
        self.assertEqual(uidl2, uidl + [("21", new)])

        # The list gone: [SYS/TEMP], not other ids; back: the same ids.
        path = os.path.join(mb.maildir, "dovecot-uidlist")
        os.rename(path, path + ".away")
        try:
            with self.assertRaisesRegex(poplib.error_proto,
                                        r"^b'-ERR \[SYS/TEMP\]"):
                self.evpop3d_lists(mb)
        finally:
            os.rename(path + ".away", path)
        # Logged before the reply, read by evtest's thread: wait for it.
        self.assertTrue(self.srv.wait_log(
            re.escape("dovecot-uidlist: missing, but evpop3d-uidl-cutoff")),
            self.srv.log_text())
        self.assertEqual(self.evpop3d_lists(mb)[0], uidl + [("21", new)])

    def test_read_only(self):
        """evpop3d never writes, locks or replaces dovecot-uidlist."""
        for user in USERS:
            self.evpop3d_lists(self.mb[user])
        for user, (text, mtime) in self.uidlists.items():
            if user == LATER:		# Dovecot ran again on it
                continue
            path = os.path.join(self.mb[user].maildir, "dovecot-uidlist")
            with open(path, "rb") as f:
                self.assertEqual(f.read(), text, user)
            self.assertEqual(os.stat(path).st_mtime_ns, mtime, user)
            self.assertFalse(os.path.exists(path + ".lock"))


if __name__ == "__main__":
    evtest.main()
