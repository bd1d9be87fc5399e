"""
Privileges (issue 11): started by root, evpop3d drops to [server] user and
group before serving any client, and serves as that one mail user.

 - every thread of the serving process (the loop and each worker, which
   exist before the drop) has the mail user's real, effective, saved and
   filesystem uid and gid, no supplementary groups and no capabilities;
 - a maildrop a login creates belongs to the mail user, mode 0700, and a
   delivery agent running as that uid can deliver into it (RETR gets it);
 - a chmod 000 maildrop answers PASS with -ERR [SYS/...] (as root it
   would have been read: the acceptance case holds for a daemon started
   by root);
 - the passwd-file stays re-readable after the drop with the documented
   modes (root:GROUP 0640), and an unreadable one is warned about;
 - root without a user and without allow_root is refused, as is
   user = root; an unknown user or group stops the start and `-t`; a
   start by another user with no user set runs as it is.

The daemon is started as root, as CI does; for any other user every test
is skipped.
"""

import grp
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import unittest

import evtest

IS_ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody")
# nobody's own group, and another one for [server] group
NOGROUP = grp.getgrgid(NOBODY.pw_gid)
OTHER_GROUP = grp.getgrnam("mail")


def proc_ids(pid):
    """{tid: {"Uid": [...], "Gid": [...], "Groups": [...], "CapEff": x,
    "CapPrm": x}} of every thread of pid."""
    out = {}
    task = "/proc/%d/task" % pid
    for tid in sorted(os.listdir(task)):
        ids = {}
        with open(os.path.join(task, tid, "status")) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Uid", "Gid", "Groups"):
                    ids[k] = [int(x) for x in v.split()]
                elif k in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                    ids[k] = int(v.strip(), 16)
        out[int(tid)] = ids
    return out


def deliver_as(uid, gid, maildir, name, data):
    """Deliver data into maildir/new as uid:gid in a child process, the
    way a delivery agent does (tmp/, then rename into new/)."""
    script = 'cat > "$1/tmp/$2" && mv "$1/tmp/$2" "$1/new/$2"'

    def become():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return subprocess.run(["/bin/sh", "-c", script, "mda", maildir, name],
                          input=data, capture_output=True, timeout=30,
                          preexec_fn=become)


def chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.chown(os.path.join(root, n), uid, gid)


def open_for(srv, uid, gid):
    """Make srv's directory a mail host for uid: its directory and home/
    searchable, every home owned by uid:gid, the passwd-file root:gid
    0640 (written by start(); see fix_passwd())."""
    os.chmod(srv.dir, 0o711)
    home = os.path.join(srv.dir, "home")
    os.makedirs(home, exist_ok=True)
    os.chmod(home, 0o711)
    for mb in srv.users:
        chown_tree(mb.home, uid, gid)


@unittest.skipUnless(IS_ROOT, "starts the daemon as root and drops to "
                     "nobody: needs root (CI runs as root)")
class DropToNobody(evtest.ServerTestCase):
    """Started by root with user = nobody; three worker threads."""

    CONFIG = {"server": {"user": "nobody", "allow_root": "no"},
              "auth": {"threads": "3"}}

    @classmethod
    def setup_users(cls, srv):
        cls.newbie = srv.add_user("newbie@example.com", "Newbie-pw-9")
        shutil.rmtree(cls.newbie.maildir)	# created by the login
        cls.locked = srv.add_user("locked@example.com", "Locked-pw-7")
        cls.locked.add(b"Subject: can't\n\nbe read\n")
        open_for(srv, NOBODY.pw_uid, NOBODY.pw_gid)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The documented mode: root writes it, the mail group reads it.
        path = os.path.join(cls.srv.dir, "passwd")
        os.chown(path, 0, NOBODY.pw_gid)
        os.chmod(path, 0o640)

    def test_every_thread_dropped(self):
        self.assertTrue(self.srv.wait_log(
            r"^info event=privdrop user=nobody uid=%d gid=%d groups=none$"
            % (NOBODY.pw_uid, NOBODY.pw_gid)), self.srv.log_text())
        # A login first, so the workers have run a job as well.
        c = self.login(self.fresh())
        c.ok("STAT")
        ids = proc_ids(self.srv.pid)
        # the loop and 3 workers at least (ASan may add its own)
        self.assertGreaterEqual(len(ids), 4, ids)
        for tid, t in ids.items():
            self.assertEqual(t["Uid"], [NOBODY.pw_uid] * 4, (tid, t))
            self.assertEqual(t["Gid"], [NOBODY.pw_gid] * 4, (tid, t))
            self.assertEqual(t["Groups"], [], (tid, t))
            self.assertEqual(t["CapEff"], 0, (tid, t))
            self.assertEqual(t["CapPrm"], 0, (tid, t))
        self.assertNotIn("event=running-as-root", self.srv.log_text())
        self.assertNotIn("event=file-unreadable", self.srv.log_text())

    def test_created_maildrop_deliverable(self):
        mb = self.newbie
        self.assertFalse(os.path.exists(mb.maildir))
        c = self.login(mb)
        self.assertEqual(c.ok("STAT"), "+OK 0 0")
        for sub in ("", "cur", "new", "tmp"):
            st = os.stat(os.path.join(mb.maildir, sub))
            self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777),
                             (NOBODY.pw_uid, NOBODY.pw_gid, 0o700), sub)
        self.assertOK(c.quit())
        # The delivery agent runs as the same uid: it can deliver.
        body = b"Subject: delivered as nobody\r\n\r\nhello\r\n"
        r = deliver_as(NOBODY.pw_uid, NOBODY.pw_gid, mb.maildir,
                       "1800000000.M1P1.mda", body)
        self.assertEqual(r.returncode, 0, r.stderr)
        c = self.login_retry(mb)
        self.assertEqual(c.ok("STAT"), "+OK 1 %d" % len(body))
        self.assertEqual(c.retr(1), body)
        self.assertOK(c.quit())

    def test_unreadable_maildrop(self):
        # Acceptance case: a maildrop the mail user cannot read is a
        # [SYS/...] answer to PASS, also for a daemon started by root.
        mb = self.locked
        os.chmod(mb.maildir, 0)
        self.addCleanup(os.chmod, mb.maildir, 0o700)
        c = self.connect()
        c.ok("USER " + mb.user)
        r = c.cmd("PASS " + mb.password)
        self.assertRegex(r, r"^-ERR \[SYS/(PERM|TEMP)\] ")
        self.assertTrue(self.srv.wait_log(
            r'event=login-failed .*user="locked@example\.com" reason="lock '
            r'.*: Permission denied"$'), self.srv.log_text())
        # Nothing was created or changed inside it.
        os.chmod(mb.maildir, 0o700)
        self.assertEqual(len(os.listdir(os.path.join(mb.maildir, "new"))),
                         1)
        c.close()

    def test_passwd_reload_after_drop(self):
        # The daemon is nobody now; the file is root:nogroup 0640: a new
        # user added by the operator (atomic rename) can log in.
        mb = self.srv.add_user("later@example.com", "Later-pw-3")
        chown_tree(mb.home, NOBODY.pw_uid, NOBODY.pw_gid)
        path = os.path.join(self.srv.dir, "passwd")
        tmp = path + ".new"
        with open(path) as f:
            text = f.read()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "w") as f:
            f.write(text + "%s:%s::::%s::\n" % (mb.user, mb.stored, mb.home))
        os.chown(tmp, 0, NOBODY.pw_gid)
        os.rename(tmp, path)
        c = self.login(mb)
        self.assertEqual(c.ok("STAT"), "+OK 0 0")
        self.assertOK(c.quit())


@unittest.skipUnless(IS_ROOT, "needs root to start as root")
class RootServesWithoutUser(evtest.ServerTestCase):
    """The counterpart of test_unreadable_maildrop: as root (allow_root,
    no user) the same chmod 000 maildrop is read, and a warning says
    that clients are served by uid 0."""

    @classmethod
    def setup_users(cls, srv):
        cls.locked = srv.add_user("locked@example.com", "Locked-pw-8")
        cls.locked.add(b"Subject: read by root\n\nx\n")

    def test_root_reads_it(self):
        self.assertTrue(self.srv.wait_log(r"^warn event=running-as-root "))
        ids = proc_ids(self.srv.pid)
        for t in ids.values():
            self.assertEqual(t["Uid"], [0] * 4)
        mb = self.locked
        os.chmod(mb.maildir, 0)
        self.addCleanup(os.chmod, mb.maildir, 0o700)
        c = self.login(mb)
        self.assertRegex(c.ok("STAT"), r"^\+OK 1 ")


@unittest.skipUnless(IS_ROOT, "needs root to start as root")
class GroupAndUnreadablePasswd(evtest.ServerTestCase):
    """[server] group overrides the user's primary group; a passwd-file
    the dropped user cannot read is a warning at start."""

    CONFIG = {"server": {"user": "nobody", "group": OTHER_GROUP.gr_name,
                         "allow_root": "no"}}

    @classmethod
    def setup_users(cls, srv):
        open_for(srv, NOBODY.pw_uid, OTHER_GROUP.gr_gid)
        # start() writes the passwd-file 0644 (umask 022 or stricter);
        # make the umask strict so it is root-only 0600.
        cls.old_umask = os.umask(0o077)

    @classmethod
    def setUpClass(cls):
        try:
            super().setUpClass()
        finally:
            os.umask(cls.old_umask)

    def test_group_and_warning(self):
        for t in proc_ids(self.srv.pid).values():
            self.assertEqual(t["Uid"], [NOBODY.pw_uid] * 4)
            self.assertEqual(t["Gid"], [OTHER_GROUP.gr_gid] * 4)
            self.assertEqual(t["Groups"], [])
        m = self.srv.wait_log(r"^warn event=file-unreadable key=passwd_file "
                              r"file=(\S+) uid=%d gid=%d note=.*: "
                              r"Permission denied$" % (NOBODY.pw_uid,
                                                       OTHER_GROUP.gr_gid))
        self.assertTrue(m, self.srv.log_text())
        self.assertEqual(m.group(1), os.path.join(self.srv.dir, "passwd"))
        # The users were loaded as root: logins work until a change.
        mb = self.fresh()
        st = os.stat(mb.maildir)
        self.assertEqual((st.st_uid, st.st_gid),
                         (NOBODY.pw_uid, OTHER_GROUP.gr_gid))
        c = self.login(mb)
        self.assertOK(c.quit())
        # A change cannot be loaded: the old users stay, it is logged.
        path = os.path.join(self.srv.dir, "passwd")
        n = len(self.srv.log())
        with open(path, "a") as f:
            f.write("added@example.com:{PLAIN}Added-pw-1::::/nonexistent::\n")
        self.srv.secret("Added-pw-1")
        c = self.connect()
        c.ok("USER added@example.com")
        c.err("PASS Added-pw-1")
        self.assertTrue(self.srv.wait_log(
            r"^warn passwd-file reload failed: .*Permission denied; keeping "
            r"the old user table$", start=n), self.srv.log_text())
        c = self.login(self.fresh())
        self.assertOK(c.quit())


class Refusals(unittest.TestCase):
    """What stops the start, and `-t` with it."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="evtest-priv-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("u@example.com:{PLAIN}pw::::%s::\n" % self.dir)

    def conf(self, server):
        cfg = {s: dict(kv) for s, kv in evtest.DEFAULT_CONFIG.items()}
        del cfg["server"]["allow_root"]
        cfg["server"].update(server)
        path = os.path.join(self.dir, "evpop3d.ini")
        with open(path, "w") as f:
            for sect, kv in cfg.items():
                f.write("[%s]\n" % sect)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
        os.chmod(path, 0o644)
        return path

    def run_both(self, path, prefix=()):
        """`-t` and a start; both must fail with one message. Returns the
        start's stderr."""
        out = []
        for args in (["-t", "-c", path], ["-c", path]):
            p = subprocess.run(list(prefix) + [evtest.BIN] + args,
                               stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=30)
            err = p.stderr.decode(errors="replace")
            self.assertEqual(p.returncode, 1, err)
            self.assertNotIn("event=ready", err)
            self.assertNotIn("event=listen", err)
            out.append(err)
        return out

    @unittest.skipUnless(IS_ROOT, "needs root")
    def test_root_without_user(self):
        for server in ({}, {"allow_root": "no"}):
            for err in self.run_both(self.conf(server)):
                self.assertIn("refusing to run as root: set [server] user",
                              err)
                self.assertIn("allow_root = yes", err)

    @unittest.skipUnless(IS_ROOT, "needs root")
    def test_user_root(self):
        for err in self.run_both(self.conf({"user": "root"})):
            self.assertIn("[server] user: 'root' is root (uid 0)", err)

    def test_unknown_user_and_group(self):
        for key in ("user", "group"):
            server = {"user": "nobody", "allow_root": "no"}
            server[key] = "no-such-evtest-name"
            path = self.conf(server)
            for err in self.run_both(path):
                self.assertIn("%s: [server] %s: unknown %s (not in the "
                              "system's %s database), got "
                              "'no-such-evtest-name'" % (path, key, key, key),
                              err)

    def test_group_without_user(self):
        for err in self.run_both(self.conf({"group": NOGROUP.gr_name,
                                            "allow_root": "yes"})):
            self.assertIn("[server] group: set without [server] user", err)

    @unittest.skipUnless(IS_ROOT, "needs root to become another user")
    def test_non_root_start(self):
        # Started as nobody (setpriv execs the daemon): without a user it
        # runs as is; naming another user is refused, naming itself is not.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            self.skipTest("no setpriv (util-linux)")
        prefix = [setpriv, "--reuid=%d" % NOBODY.pw_uid,
                  "--regid=%d" % NOBODY.pw_gid, "--clear-groups"]
        for err in self.run_both(self.conf({"user": "mail"}), prefix):
            self.assertIn("[server] user: cannot switch to 'mail'", err)
            self.assertIn("not started as root", err)
        for server in ({}, {"user": "nobody"}):
            srv = evtest.Server(config={"server": server}, pool=1,
                                tmpdir=tempfile.mkdtemp(prefix="evtest-"))
            self.addCleanup(srv.cleanup)
            del srv.config["server"]["allow_root"]
            # nobody cannot make the admin socket in root's temp dir
            srv.config["control"]["socket"] = '""'
            open_for(srv, NOBODY.pw_uid, NOBODY.pw_gid)
            srv.prefix = prefix
            srv.start()
            for t in proc_ids(srv.pid).values():
                self.assertEqual(t["Uid"], [NOBODY.pw_uid] * 4)
            log = srv.log_text()
            self.assertNotIn("event=privdrop", log)
            self.assertNotIn("event=running-as-root", log)
            c = evtest.Conn(srv.port)
            c.login(srv.pool[0].user, srv.pool[0].password)
            self.assertTrue(c.ok("STAT").startswith("+OK 0 0"))
            c.quit()
            c.close()
            srv.stop()


if __name__ == "__main__":
    evtest.main()
