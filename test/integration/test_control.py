"""
The admin socket (issue 12): `evpop3d who | kick | stats | reload` run as
a real CLI against the real daemon's [control] socket.

 - who lists the logged-in users with their session counts and client
   addresses, who -1 every session (not logged in: user "-");
 - kick closes a hung user's sessions without UPDATE: the maildrop is free
   at once for a new login and nothing the kicked session DELE'd is gone;
   a user with no session is an error (exit 1);
 - stats prints counters that move with what was done;
 - reload does what SIGHUP does (one function), prints OK, and is logged;
 - mode 0600: another user (nobody) is refused by the file's mode;
 - a dead daemon's socket file is replaced at start, a live one is not
   stolen by a second daemon;
 - hostile clients are bounded: a 1 MB line, binary garbage, an unknown
   command, clients that connect and say nothing (timeout, and the
   limit of concurrent control clients), all while POP3 is served.
"""

import os
import pwd
import re
import socket
import stat
import subprocess
import threading
import time

import evtest
import mboxdeliver

SCALE = evtest.SCALE
NOBODY = pwd.getpwnam("nobody")


def run_cli(args, preexec_fn=None, timeout=60):
    return subprocess.run([evtest.BIN] + args, capture_output=True,
                          text=True, timeout=timeout * SCALE,
                          preexec_fn=preexec_fn)


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY.pw_gid)
    os.setuid(NOBODY.pw_uid)


class Raw:
    """A raw admin-socket client: the greeting, then lines."""

    def __init__(self, path, greet=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(evtest.TIMEOUT)
        self.sock.connect(path)
        self.buf = b""
        if greet:
            self.greeting = self.line()

    def line(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError(self.buf)
            self.buf += d
        l, _, self.buf = self.buf.partition(b"\n")
        return l.decode("latin-1")

    def rest(self, timeout):
        """Everything until EOF (a reset counts as EOF)."""
        self.sock.settimeout(timeout * SCALE)
        out = self.buf
        while True:
            try:
                d = self.sock.recv(65536)
            except ConnectionResetError:
                d = b""
            if not d:
                return out.decode("latin-1")
            out += d

    def close(self):
        self.sock.close()


def connect_from(port, src):
    """A POP3 connection from source address src (127.0.0.0/8)."""
    c = evtest.Conn.__new__(evtest.Conn)
    c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.sock.bind((src, 0))
    c.sock.settimeout(evtest.TIMEOUT)
    c.timeout = evtest.TIMEOUT
    c.sock.connect(("127.0.0.1", port))
    c.buf = bytearray()
    c.eof = False
    c.greeting = c.status()
    return c


class Control(evtest.ServerTestCase):

    CONFIG = {"auth": {"max_unauth_per_ip": "0",
                       "max_connections_per_ip": "0"}}

    @classmethod
    def setup_users(cls, srv):
        cls.sock = srv.config["control"]["socket"]

    def cli(self, *args, **kw):
        return run_cli(list(args[:1]) + ["-s", self.sock] + list(args[1:]),
                       **kw)

    def wait_gone(self, user, timeout=10):
        """Wait until `who` no longer lists user."""
        deadline = time.monotonic() + timeout * SCALE
        while True:
            p = self.cli("who")
            if not any(l.split(" ")[0] == user for l in
                       p.stdout.splitlines()):
                return
            if time.monotonic() > deadline:
                self.fail("%s still listed: %r" % (user, p.stdout))
            time.sleep(0.05)

    # -------------------------------------------------------------- who

    def test_who(self):
        """Two users: a with two sessions (logged in from 127.0.0.1, and
        from 127.0.0.2 refused [IN-USE], not logged in), b logged in; and
        a session that named no user yet."""
        a, b = self.fresh(), self.fresh()
        a.add(b"Subject: x\n\nbody\n")
        a1 = self.login(a)
        a1.retr(1)
        a1.send("TOP 1 0\r\n")
        a1.status()
        a1.multi()
        a2 = connect_from(self.srv.port, "127.0.0.2")
        self.addCleanup(a2.close)
        a2.ok("USER " + a.user)
        self.assertIn("[IN-USE]", a2.cmd("PASS " + a.password))
        b1 = self.login(b)
        anon = self.connect()			# no USER yet

        p = self.cli("who")
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = {l.split(" ")[0]: l for l in p.stdout.splitlines()}
        self.assertEqual(rows[a.user], "%s 2 (127.0.0.1 127.0.0.2)" % a.user)
        self.assertEqual(rows[b.user], "%s 1 (127.0.0.1)" % b.user)
        self.assertNotIn("-", rows)

        p = self.cli("who", "-1")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "ID USER RIP LIP STATE LOGIN_S "
                         "CONNECTED_S RETR TOP")
        by_rip = {}
        for l in lines[1:]:
            f = l.split(" ")
            self.assertEqual(len(f), 9, l)
            self.assertRegex(f[0], r"^[0-9a-f]{16}$")
            by_rip[f[2]] = f
        lip = "127.0.0.1:%d" % self.srv.port
        for conn, user, state, counts in (
                (a1, a.user, "TRANSACTION", ["1", "1"]),
                (a2, a.user, "AUTHORIZATION", ["0", "0"]),
                (b1, b.user, "TRANSACTION", ["0", "0"]),
                (anon, "-", "AUTHORIZATION", ["0", "0"])):
            rip = "%s:%d" % conn.sock.getsockname()
            self.assertIn(rip, by_rip, p.stdout)
            f = by_rip[rip]
            self.assertEqual((f[1], f[3], f[4], f[7:]),
                             (user, lip, state, counts), f)
            self.assertLess(int(f[5]), 60)
            self.assertLess(int(f[6]), 60)
        b1.quit()
        self.wait_gone(b.user)
        self.assertTrue(self.srv.wait_log(
            r"event=admin cmd=who uid=0 pid=\d+ sessions=\d+ result=ok"))

    def test_who_escapes_names(self):
        """A user name is client-chosen text: one that is not plain
        (letters, digits, "._@+=-") is quoted and escaped as in the log."""
        c = self.connect()
        c.ok('USER evil"OK(x)')
        p = self.cli("who")
        self.assertIn('"evil\\"OK(x)" 1 (127.0.0.1)\n', p.stdout)
        self.assertEqual(p.returncode, 0)
        c.ok("USER -")
        p = self.cli("who", "-1")
        self.assertRegex(p.stdout, r' "-" 127\.0\.0\.1:%d ' %
                         c.sock.getsockname()[1])

    # ------------------------------------------------------------- kick

    def test_kick_frees_maildrop_without_update(self):
        mb = self.fresh()
        for i in range(3):
            mb.add(b"Subject: %d\n\nmessage %d\n" % (i, i))
        before = sorted(mb.files())
        hung = self.login(mb)
        hung.ok("DELE 1")
        hung.ok("DELE 2")
        # The maildrop is held: a second login is refused.
        other = self.connect()
        other.ok("USER " + mb.user)
        self.assertIn("[IN-USE]", other.cmd("PASS " + mb.password))
        other.close()

        start = len(self.srv.log())
        p = self.cli("kick", mb.user)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "kicked 1 session(s) of %s\n" % mb.user)
        # At once: no retry, the lock was given up on the loop.
        again = self.login(mb)
        r = again.ok("STAT")
        self.assertTrue(r.startswith("+OK 3 "), r)	# nothing deleted
        self.assertEqual(sorted(mb.files()), before)
        self.assertEqual(hung.expect_closed(),
                         [b"-ERR [SYS/TEMP] Disconnected by the "
                          b"administrator."])
        self.assertTrue(self.srv.wait_log(
            r'event=admin cmd=kick uid=0 pid=\d+ user="%s" kicked=1 '
            r'updating=0 result=ok' % re.escape(mb.user), start=start))
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect .*reason=kicked user=\"%s\" "
            r"state=TRANSACTION" % re.escape(mb.user), start=start))
        again.quit()
        self.assertEqual(sorted(mb.files()), before)

    def test_kick_busy_session(self):
        """A session in the middle of a RETR its client does not read is
        closed at once, without a line in the middle of the message."""
        mb = self.fresh()
        mb.add(b"Subject: big\n\n" + (b"y" * 78 + b"\n") * 30000)
        c = self.connect(rcvbuf=4096)
        c.login(mb.user, mb.password)
        c.send("RETR 1\r\n")
        c.sock.recv(1, socket.MSG_PEEK)		# the reply has begun
        p = self.cli("kick", mb.user)
        self.assertEqual(p.returncode, 0, p.stderr)
        again = self.login(mb)
        self.assertTrue(again.ok("STAT").startswith("+OK 1 "))
        again.quit()

    def test_kick_nobody(self):
        p = self.cli("kick", "no-such-user@example.com")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertIn("no session of no-such-user@example.com to kick",
                      p.stderr)
        p = self.cli("kick")
        self.assertEqual(p.returncode, 2)

    # ------------------------------------------------------------ stats

    def stats(self):
        p = self.cli("stats")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = {}
        for l in p.stdout.splitlines():
            name, value = l.rsplit(" ", 1)
            out[name] = int(value)
        return out

    def test_stats(self):
        mb = self.fresh()
        mb.add(b"Subject: one\n\nhello\n")
        s0 = self.stats()
        c = self.login(mb)
        c.retr(1)
        c.retr(1)
        c.err("RETR 9")
        bad = self.connect()
        bad.ok("USER " + mb.user)
        self.assertERR(bad.cmd("PASS wrong-password"))
        s1 = self.stats()
        d = {k: s1[k] - s0.get(k, 0) for k in s1}
        self.assertEqual(d["net_connections"], 2)
        self.assertEqual(d["pop3_logins"], 1)
        self.assertEqual(d["pop3_login_failures"], 1)
        self.assertEqual(d['pop3_cmd_calls{cmd="RETR"}'], 3)
        self.assertEqual(d['pop3_cmd_errors{cmd="RETR"}'], 1)
        self.assertEqual(d['pop3_cmd_calls{cmd="PASS"}'], 2)
        self.assertGreaterEqual(s1["net_sessions"], 2)
        c.quit()
        bad.close()

    # ----------------------------------------------------------- reload

    def test_reload(self):
        start = len(self.srv.log())
        p = self.cli("reload")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "OK\n", ""))
        self.assertTrue(self.srv.wait_log(r"event=reload ", start=start))
        self.assertTrue(self.srv.wait_log(
            r"event=admin cmd=reload uid=0 pid=\d+ result=ok", start=start))
        # SIGHUP goes through the same function.
        start = len(self.srv.log())
        os.kill(self.srv.pid, 1)
        self.assertTrue(self.srv.wait_log(r"event=sighup", start=start))
        self.assertTrue(self.srv.wait_log(r"event=reload ", start=start))

    def test_reload_found_through_config(self):
        """-c FILE: the socket is read from [control] socket."""
        p = run_cli(["reload", "-c", self.srv.conf_path])
        self.assertEqual((p.returncode, p.stdout), (0, "OK\n"), p.stderr)

    # ------------------------------------------------------ permissions

    def test_mode_0600_refuses_nobody(self):
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, 0)
        # Only the socket's mode may stop nobody: the directory is open.
        os.chmod(self.srv.dir, 0o711)
        p = self.cli("who", preexec_fn=as_nobody)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, "evpop3d: cannot connect to %s: "
                         "Permission denied\n" % self.sock)
        p = self.cli("who")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_no_daemon(self):
        p = run_cli(["stats", "-s", os.path.join(self.srv.dir, "nothing")])
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot connect to %s: No such file or directory" %
                      os.path.join(self.srv.dir, "nothing"), p.stderr)

    def test_config_values(self):
        """[control] values are checked at load (and by -t); an empty
        socket turns the admin socket off, which the CLI says."""
        for key, value, msg in (
                ("mode", "0800", "[control] mode: must be octal "
                 "permissions such as 0600 or 0660, got '0800'"),
                ("socket", "rel/ctl", "[control] socket: must be an "
                 "absolute path (or \"\"), got 'rel/ctl'"),
                ("socket", "/" + "x" * 120, "[control] socket: longer "
                 "than a socket path may be")):
            cfg = {k: dict(v) for k, v in self.srv.config.items()}
            cfg["control"][key] = value
            path = self.srv.write_config(os.path.join(self.srv.dir,
                                                      "bad.ini"), cfg)
            p = run_cli(["-t", "-c", path])
            self.assertEqual(p.returncode, 1)
            self.assertIn(msg, p.stderr)
        cfg = {k: dict(v) for k, v in self.srv.config.items()}
        cfg["control"]["socket"] = '""'
        path = self.srv.write_config(os.path.join(self.srv.dir, "off.ini"),
                                     cfg)
        p = run_cli(["stats", "-c", path])
        self.assertEqual(p.returncode, 1)
        self.assertIn("[control] socket is empty: the admin socket is off",
                      p.stderr)

    # ---------------------------------------------------------- hostile

    def test_hostile_long_line(self):
        r = Raw(self.sock)
        self.assertEqual(r.greeting, "EVPOP3D-CONTROL 1")
        rss0 = self.srv.rss_kb()

        def flood():
            try:
                r.sock.sendall(b"who " + b"A" * (1 << 20) + b"\n")
            except OSError:
                pass			# the daemon closed: expected
        t = threading.Thread(target=flood)
        t.start()
        out = r.rest(timeout=20)
        t.join(30)
        r.close()
        self.assertEqual(out, "ERR request too long\n")
        self.assertLess(self.srv.rss_kb() - rss0, 4096)
        self.assertTrue(self.cli("who").returncode == 0)

    def test_hostile_garbage_and_unknown(self):
        for req, reply in ((b"\x00\xff\x01\x02garbage\r\n",
                            "ERR bad request (not printable ASCII)\n"),
                           (b"frobnicate now\n", "ERR unknown command\n"),
                           (b"stats extra\n", "ERR no argument expected\n"),
                           (b"kick\n", "ERR argument missing\n"),
                           (b"who -x\n", "ERR usage: who [-1]\n")):
            r = Raw(self.sock)
            r.sock.sendall(req)
            self.assertEqual(r.rest(timeout=10), reply, req)
            r.close()
        self.assertTrue(self.srv.wait_log(
            r'event=admin cmd="frobnicate" uid=0 pid=\d+ result=error'))

    def test_hostile_silent_clients(self):
        """Idle control clients take at most CONTROL_CLIENTS slots and
        are closed after the timeout; POP3 is served meanwhile."""
        t0 = time.monotonic()
        idle = [Raw(self.sock) for _ in range(8)]
        extra = Raw(self.sock, greet=False)
        self.assertEqual(extra.rest(timeout=10),
                         "ERR busy: too many control connections\n")
        self.assertTrue(self.srv.wait_log(r"event=admin-refused "
                                          r"reason=busy uid=0"))
        # The loop is not blocked by them.
        c = self.login(self.fresh())
        c.ok("NOOP")
        c.quit()
        # A client that says nothing is dropped 10 s after it connected.
        self.assertEqual(idle[0].rest(timeout=30), "")
        self.assertGreater(time.monotonic() - t0, 9.5)
        for r in idle:
            r.close()
        self.assertTrue(self.srv.wait_log(
            r'event=admin-timeout uid=0 pid=\d+ note="no request"'))
        # The slots come back.
        deadline = time.monotonic() + 15 * SCALE
        while self.cli("who").returncode != 0:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)


class ControlTrickle(evtest.ServerTestCase):
    """A client that sends its request a byte a second never reaches the
    per-read timeout, but the whole exchange ends at 30 s."""

    POOL = 1

    def test_trickle(self):
        r = Raw(self.srv.config["control"]["socket"])
        t0 = time.monotonic()
        stop = threading.Event()

        def trickle():
            while not stop.wait(1):
                try:
                    r.sock.send(b"w")
                except OSError:
                    return
        t = threading.Thread(target=trickle)
        t.start()
        try:
            self.assertEqual(r.rest(timeout=60), "")
        finally:
            stop.set()
            t.join(10)
        took = time.monotonic() - t0
        self.assertGreater(took, 29)
        self.assertLess(took, 45 * SCALE)
        r.close()
        self.assertTrue(self.srv.wait_log(
            r'event=admin-timeout uid=0 pid=\d+ note="no request"'))


class KickDuringUpdate(evtest.ServerTestCase):
    """A session in UPDATE (it sent QUIT) is not cut by kick: the UPDATE
    completes and deletes what the client asked for. The UPDATE is held
    deterministically by the MDA's dotlock on the mbox, which it waits
    for (up to 10 s)."""

    POOL = 0

    @classmethod
    def setup_users(cls, srv):
        cls.mb = mboxdeliver.add_user(srv, "upd@example.com")
        cls.sock = srv.config["control"]["socket"]

    def test_update_finishes(self):
        mb = self.mb
        raw = [mboxdeliver.entry(b"Subject: %d\n\nmessage %d\n" % (i, i),
                                 "sender@example.com", 1704103200 + i)
               for i in range(3)]
        mboxdeliver.write(mb.mbox, b"".join(raw))
        c = self.login(mb)
        c.ok("DELE 1")
        lock = mb.mbox + ".lock"
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        os.write(fd, b"%d\n" % os.getpid())
        os.close(fd)
        self.addCleanup(lambda: os.path.exists(lock) and os.unlink(lock))
        c.send("QUIT\r\n")
        deadline = time.monotonic() + 5 * SCALE
        while " UPDATE " not in run_cli(["who", "-1", "-s",
                                          self.sock]).stdout:
            self.assertLess(time.monotonic(), deadline, "no UPDATE")
            time.sleep(0.02)
        p = run_cli(["kick", "-s", self.sock, mb.user])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "kicked 0 session(s) of %s\n"
                         "1 session(s) of %s in UPDATE close when it is "
                         "done\n" % (mb.user, mb.user))
        self.assertTrue(c.is_open())
        os.unlink(lock)
        self.assertEqual(c.status(), "+OK evpop3d signing off (1 messages "
                         "deleted).")
        c.expect_closed()
        self.assertEqual(mboxdeliver.read(mb.mbox), b"".join(raw[1:]))
        self.assertTrue(self.srv.wait_log(
            r'event=admin cmd=kick uid=0 pid=\d+ user="upd@example.com" '
            r'kicked=0 updating=1 result=ok'))


class ControlSocketFile(evtest.ServerTestCase):
    """Start-up: a stale socket file is replaced, a live one is kept."""

    START = False

    def test_stale_replaced_live_kept(self):
        path = os.path.join(self.srv.dir, "run", "ctl.sock")
        os.mkdir(os.path.dirname(path))
        # A dead daemon's socket: bound, then closed without unlink.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()
        self.srv.config["control"]["socket"] = path
        self.srv.config["control"]["mode"] = "0660"
        self.srv.start()
        self.assertTrue(self.srv.wait_log(
            r"event=control-stale-removed path=%s" % re.escape(path)))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o660)
        self.assertEqual(run_cli(["who", "-s", path]).returncode, 0)

        # A second daemon must not steal the live socket.
        two = evtest.Server(config={"control": {"socket": path}}, pool=1)
        self.addCleanup(two.cleanup)
        two.start(wait=False)
        self.assertEqual(two.proc.wait(60 * SCALE), 1)
        two.reader.join(10)
        self.assertRegex(two.log_text(), r"event=startup-failed "
                         r"step=control error=\".*ctl.sock: in use by a "
                         r"running daemon")
        self.assertEqual(two.check_log(), [])
        self.assertEqual(run_cli(["who", "-s", path]).returncode, 0)

        # A file that is not a socket is never removed.
        notsock = os.path.join(self.srv.dir, "run", "file")
        with open(notsock, "w") as f:
            f.write("keep me\n")
        three = evtest.Server(config={"control": {"socket": notsock}},
                              pool=1)
        self.addCleanup(three.cleanup)
        three.start(wait=False)
        self.assertEqual(three.proc.wait(60 * SCALE), 1)
        three.reader.join(10)
        self.assertIn("file: exists and is not a socket", three.log_text())
        with open(notsock) as f:
            self.assertEqual(f.read(), "keep me\n")

        # At a clean stop the daemon removes its socket file.
        self.assertEqual(self.srv.terminate(), 0)
        self.assertFalse(os.path.exists(path))


if __name__ == "__main__":
    evtest.main()
