"""
[log] target: where the lines go and with which priority.

- stderr on a pipe: an ISO 8601 timestamp (milliseconds, UTC offset) at
  the start of every line.
- stderr that is the journal's stream ($JOURNAL_STREAM names its
  device:inode; here a file of the test's): no timestamp, an sd-daemon(3)
  "<N>" priority prefix instead.
- journald: the daemon runs in a mount namespace of its own (unshare -m)
  where /run is a tmpfs and /run/systemd/journal is a directory of the
  test's, in which the test has bound a datagram socket named "socket":
  what libsystemd's sd_journal_sendv() sends is read and parsed here (the
  native protocol: KEY=VALUE lines, the binary length form, a memfd for
  big entries). target is left at auto with $JOURNAL_STREAM matching
  stderr, which must choose journald.
- syslog: the same with /dev a tmpfs in the namespace, /dev/log a link to
  the test's datagram socket and /dev/null etc. links to the real ones;
  the "<PRI>" of each datagram gives the facility and severity.

Each level's priority is checked: debug 7 ([log] debug), info 6, warning
4 (a failed login), err 3 (a start that fails: its port is taken).

A journal or syslog daemon that stops reading (the test's socket, read
until the daemon is ready, then not: Linux queues net.unix.max_dgram_qlen
datagrams, 10 by default) never holds the loop: sessions go on and a
NOOP is answered at once while the lines wait in the 64 KiB backlog and
then are dropped; once the socket is read again, the backlog comes in
order and "warn event=log-dropped count=N" follows it.
"""

import array
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import evtest

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "
                   r"(debug|info|warn|error) ")
PRI = {"debug": 7, "info": 6, "warn": 4, "error": 3}

JOURNAL_NS = ('mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal '
              '&& mount --bind "$0" /run/systemd/journal && exec "$@"')
SYSLOG_NS = ('mkdir -p "$0/dev" && mount --rbind /dev "$0/dev" && '
             'mount -t tmpfs tmpfs /dev && '
             'for n in null zero full random urandom; do '
             'ln -s "$0/dev/$n" /dev/$n; done && '
             'ln -s "$0/log" /dev/log && exec "$@"')


def mountns_unavailable():
    try:
        p = subprocess.run(["unshare", "-m", "sh", "-c",
                            "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unshare -m: %s" % e
    if p.returncode != 0:
        return "unshare -m not permitted here: %s" % p.stderr.decode().strip()
    return None


def parse_journal(data):
    """The native journal protocol (systemd's JOURNAL_NATIVE_PROTOCOL)."""
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, _, v = line.partition(b"=")
            i = nl + 1
        else:
            k = line
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            v = data[nl + 9:nl + 9 + n]
            assert data[nl + 9 + n:nl + 10 + n] == b"\n"
            i = nl + 10 + n
        fields.setdefault(k.decode(), []).append(v.decode("latin-1"))
    return {k: v[0] if len(v) == 1 else v for k, v in fields.items()}


class Sink:
    """A bound datagram socket whose datagrams a thread keeps; with
    stop_after, the thread stops reading after the first item for which
    it is true, until resume()."""

    def __init__(self, path, parse, stop_after=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.parse = parse
        self.items = []
        self.cond = threading.Condition()
        self.stop_after = stop_after
        self.go = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def resume(self):
        self.go.set()

    def _run(self):
        fds = array.array("i")
        while True:
            if (self.stop_after and self.items and not self.go.is_set()
                    and self.stop_after(self.items[-1])):
                self.stop_after = None
                self.stopped.set()
                self.go.wait()
            try:
                data, anc, _, _ = self.sock.recvmsg(
                    1 << 17, socket.CMSG_LEN(fds.itemsize))
            except OSError:
                return
            for level, kind, raw in anc:
                # A big entry comes as a sealed memfd (SCM_RIGHTS).
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fd = array.array("i", raw[:fds.itemsize])[0]
                    with os.fdopen(fd, "rb") as f:
                        data = f.read()
            with self.cond:
                self.items.append(self.parse(data))
                self.cond.notify_all()

    def wait(self, pred, timeout=15):
        deadline = time.monotonic() + timeout * evtest.SCALE
        with self.cond:
            while True:
                for it in self.items:
                    if pred(it):
                        return it
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("not received in %ss; got %r" % (
                        timeout, self.items[-10:]))
                self.cond.wait(left)

    def close(self):
        self.sock.close()


def wait_file(path, pattern, timeout=15):
    """Wait for a line matching pattern in a file the daemon writes."""
    rx = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout * evtest.SCALE
    while True:
        with open(path, errors="replace") as f:
            m = rx.search(f.read())
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError("no %r in %s" % (pattern, path))
        time.sleep(0.02)	# polling a file: no event to wait for


class Daemon:
    """evtest's files and users; the process run here with the given
    prefix, environment and stderr."""

    def __init__(self, test, config, prefix=(), env=None, stderr=None):
        self.srv = evtest.Server(config=config, pool=1)
        test.addCleanup(self.srv.cleanup)
        self.mb = self.srv.fresh()
        self.srv.write_passwd()
        self.srv.write_config()
        self.proc = subprocess.Popen(
            list(prefix) + [evtest.BIN, "-c", self.srv.conf_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr, env=env, cwd="/")
        test.addCleanup(self.kill)

    def session(self, port):
        """One failed and one good login, then QUIT."""
        c = evtest.Conn(port)
        c.ok("USER " + self.mb.user)
        c.err("PASS wrong")
        c.close()
        c = evtest.Conn(port)
        c.login(self.mb.user, self.mb.password)
        c.quit()
        c.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15 * evtest.SCALE)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


LOG_CONFIG = {"log": {"debug": "yes"}}


class StderrTimestamps(evtest.ServerTestCase):
    CONFIG = {"log": {"target": "stderr"}}

    def test_every_line_stamped(self):
        mb = self.fresh()
        c = self.connect()
        c.login(mb.user, mb.password)
        c.quit()
        c.close()
        self.assertTrue(self.srv.wait_log(r"event=disconnect "))
        raw = list(self.srv.raw_lines)
        self.assertGreater(len(raw), 3)
        for l in raw:
            if l is not None:
                self.assertRegex(l, STAMP)


class StderrJournalStream(unittest.TestCase):
    """stderr is "the journal" ($JOURNAL_STREAM): "<N>" prefixes."""

    def run_with(self, target):
        d = tempfile.mkdtemp(prefix="evtest-logs-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "stderr")
        f = open(path, "wb")
        self.addCleanup(f.close)
        st = os.fstat(f.fileno())
        env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev,
                                                          st.st_ino))
        cfg = {"log": {"debug": "yes", "target": target}}
        dm = Daemon(self, cfg, env=env, stderr=f)
        m = wait_file(path, r"event=listen addr=127\.0\.0\.1:(\d+)")
        wait_file(path, r"event=ready")
        dm.session(int(m.group(1)))
        wait_file(path, r"event=disconnect .*reason=quit")
        self.assertEqual(dm.stop(), 0)
        with open(path, errors="replace") as f2:
            lines = f2.read().splitlines()
        seen = set()
        for l in lines:
            m = re.match(r"^<(\d)>(debug|info|warn|error) ", l)
            self.assertIsNotNone(m, l)
            self.assertEqual(int(m.group(1)), PRI[m.group(2)], l)
            seen.add(m.group(2))
        self.assertEqual(seen, {"debug", "info", "warn"})

    def test_stderr_target(self):
        self.run_with("stderr")

    @unittest.skipIf(os.path.exists("/run/systemd/journal/socket"),
                     "auto would choose this host's real journal")
    def test_auto_without_journal_socket_falls_back(self):
        # auto picks journald; with no journal to take the lines they
        # go to stderr, still with their priorities.
        self.run_with("auto")


class Journald(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        why = mountns_unavailable()
        if why:
            raise unittest.SkipTest(why)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="evtest-journal-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = Sink(os.path.join(self.dir, "socket"), parse_journal)
        self.addCleanup(self.sink.close)

    def start(self, config, stderr_path):
        """target auto, $JOURNAL_STREAM naming stderr: journald."""
        f = open(stderr_path, "wb")
        self.addCleanup(f.close)
        st = os.fstat(f.fileno())
        env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev,
                                                          st.st_ino))
        return Daemon(self, config, env=env, stderr=f,
                      prefix=["unshare", "-m", "sh", "-c", JOURNAL_NS,
                              self.dir])

    def test_entries(self):
        errpath = os.path.join(self.dir, "stderr")
        dm = self.start(LOG_CONFIG, errpath)
        s = self.sink
        ready = s.wait(lambda e: "event=ready" in e.get("MESSAGE", ""))
        listen = s.wait(lambda e: e.get("EVPOP3D_EVENT") == "listen")
        port = int(re.search(r"addr=127\.0\.0\.1:(\d+)",
                             listen["MESSAGE"]).group(1))
        dm.session(port)
        failed = s.wait(lambda e: e.get("EVPOP3D_EVENT") == "auth-failed")
        login = s.wait(lambda e: e.get("EVPOP3D_EVENT") == "login")
        disc = s.wait(lambda e: e.get("EVPOP3D_EVENT") == "disconnect" and
                      "reason=quit" in e["MESSAGE"])
        debug = s.wait(lambda e: e["MESSAGE"].startswith("debug "))
        self.assertEqual(dm.stop(), 0)
        s.wait(lambda e: e.get("EVPOP3D_EVENT") == "stopped")

        for e in s.items:
            self.assertEqual(e["SYSLOG_IDENTIFIER"], "evpop3d")
            level = e["MESSAGE"].split(" ", 1)[0]
            self.assertEqual(int(e["PRIORITY"]), PRI[level], e)
        self.assertEqual(ready["PRIORITY"], "6")
        self.assertEqual(failed["PRIORITY"], "4")
        self.assertEqual(debug["PRIORITY"], "7")
        # The message is the line evpop3d always wrote, level first.
        self.assertRegex(failed["MESSAGE"],
                         r'^warn sess=[0-9a-f]{16} event=auth-failed '
                         r'rip=127\.0\.0\.1:\d+ user="%s" ' % dm.mb.user)
        self.assertRegex(login["MESSAGE"],
                         r"^info sess=[0-9a-f]{16} event=login "
                         r"rip=127\.0\.0\.1:\d+ ")
        self.assertEqual(login["EVPOP3D_SESSION"],
                         re.search(r"sess=(\S+)", login["MESSAGE"]).group(1))
        self.assertEqual(disc["EVPOP3D_SESSION"], login["EVPOP3D_SESSION"])
        # Nothing went to stderr: the journal took every line.
        with open(errpath, "rb") as f:
            self.assertEqual(f.read(), b"")

    def test_startup_failure_is_error(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        cfg = {"server": {"listen": "127.0.0.1:%d" % port}}
        dm = self.start(cfg, os.path.join(self.dir, "stderr"))
        self.assertEqual(dm.proc.wait(15 * evtest.SCALE), 1)
        e = self.sink.wait(lambda e: e.get("EVPOP3D_EVENT") == "exiting")
        self.assertEqual(e["PRIORITY"], "3")
        self.assertEqual(e["MESSAGE"],
                         "error event=exiting reason=startup-failed")
        e = self.sink.wait(lambda e: "listen-failed" in e["MESSAGE"])
        self.assertEqual(e["PRIORITY"], "3")


class StalledReceiver:
    """The journal's or syslog's socket stops being read once the daemon
    is ready. Subclasses: ns (the namespace script), sockname, parse,
    config."""

    ns = sockname = parse = None
    config = {}

    @classmethod
    def setUpClass(cls):
        why = mountns_unavailable()
        if why:
            raise unittest.SkipTest(why)

    def test_full_receiver_never_blocks(self):
        d = tempfile.mkdtemp(prefix="evtest-stall-")
        self.addCleanup(shutil.rmtree, d, True)
        sink = Sink(os.path.join(d, self.sockname), type(self).parse,
                    stop_after=lambda e: "event=ready" in e["MESSAGE"])
        self.addCleanup(sink.close)
        errpath = os.path.join(d, "stderr")
        f = open(errpath, "wb")
        self.addCleanup(f.close)
        st = os.fstat(f.fileno())
        env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev,
                                                          st.st_ino))
        dm = Daemon(self, self.config, env=env, stderr=f,
                    prefix=["unshare", "-m", "sh", "-c", self.ns, d])
        listen = sink.wait(lambda e: "event=listen " in e["MESSAGE"])
        port = int(re.search(r"addr=127\.0\.0\.1:(\d+)",
                             listen["MESSAGE"]).group(1))
        self.assertTrue(sink.stopped.wait(15 * evtest.SCALE))
        n_before = len(sink.items)

        # Nobody reads: 400 sessions log 800 lines and more (connect,
        # disconnect, debug: over 100 KiB) into a queue of 10 and a
        # backlog of 64 KiB. The loop goes on.
        held = evtest.Conn(port)
        self.addCleanup(held.close)
        held.login(dm.mb.user, dm.mb.password)
        for i in range(400):
            c = evtest.Conn(port)
            c.quit()
            c.close()
            if i % 50 == 0:
                t0 = time.monotonic()
                held.ok("NOOP")
                self.assertLess(time.monotonic() - t0, 1.0 * evtest.SCALE)
        # No check that the sink got nothing meanwhile: its thread is
        # parked, so that could not fail. That lines were dropped while
        # nobody read is the log-dropped count below (this test has no
        # metrics endpoint to read it from before the resume).

        # Read again: the backlog comes (within a second: the loop's
        # flush, or with the next line), then the count.
        sink.resume()
        report = sink.wait(lambda e: "event=log-dropped" in e["MESSAGE"])
        m = re.match(r"^warn event=log-dropped count=(\d+) target=(\w+)$",
                     report["MESSAGE"])
        self.assertIsNotNone(m, report)
        self.assertGreater(int(m.group(1)), 100)
        self.assertEqual(m.group(2), self.target)
        # What was kept came in order: the 400 sessions' ids ascend.
        ids = [int(x.group(1), 16) for x in (
            re.search(r" sess=([0-9a-f]{16}) event=connect ", e["MESSAGE"])
            for e in sink.items[n_before:]) if x]
        self.assertGreater(len(ids), 50)
        self.assertEqual(ids, sorted(ids))
        held.ok("NOOP")
        held.quit()
        self.assertEqual(dm.stop(), 0)
        # Dropped, not sent to stderr instead.
        with open(errpath, "rb") as f2:
            self.assertEqual(f2.read(), b"")


class JournaldStalled(StalledReceiver, unittest.TestCase):
    ns = JOURNAL_NS
    sockname = "socket"
    parse = staticmethod(parse_journal)
    target = "journald"
    config = LOG_CONFIG


def parse_syslog(data):
    m = re.match(rb"^<(\d+)>(.*?)evpop3d\[(\d+)\]: (.*)$", data, re.S)
    assert m, data
    pri = int(m.group(1))
    return {"facility": pri >> 3, "severity": pri & 7,
            "pid": int(m.group(3)),
            "MESSAGE": m.group(4).decode("latin-1").rstrip("\0\n")}


class Syslog(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        why = mountns_unavailable()
        if why:
            raise unittest.SkipTest(why)

    def test_facility_and_severities(self):
        d = tempfile.mkdtemp(prefix="evtest-syslog-")
        self.addCleanup(shutil.rmtree, d, True)
        sink = Sink(os.path.join(d, "log"), parse_syslog)
        self.addCleanup(sink.close)
        errpath = os.path.join(d, "stderr")
        f = open(errpath, "wb")
        self.addCleanup(f.close)
        cfg = {"log": {"debug": "yes", "target": "syslog",
                       "syslog_facility": "local3"}}
        dm = Daemon(self, cfg, stderr=f,
                    prefix=["unshare", "-m", "sh", "-c", SYSLOG_NS, d])
        listen = sink.wait(lambda e: "event=listen " in e["MESSAGE"])
        port = int(re.search(r"addr=127\.0\.0\.1:(\d+)",
                             listen["MESSAGE"]).group(1))
        sink.wait(lambda e: "event=ready" in e["MESSAGE"])
        dm.session(port)
        failed = sink.wait(lambda e: "event=auth-failed" in e["MESSAGE"])
        sink.wait(lambda e: "event=disconnect" in e["MESSAGE"] and
                  "reason=quit" in e["MESSAGE"])
        self.assertEqual(dm.stop(), 0)
        sink.wait(lambda e: "event=stopped" in e["MESSAGE"])
        levels = set()
        for e in sink.items:
            self.assertEqual(e["facility"], 19, e)	# LOG_LOCAL3
            self.assertEqual(e["pid"], dm.proc.pid)
            level = e["MESSAGE"].split(" ", 1)[0]
            self.assertEqual(e["severity"], PRI[level], e)
            levels.add(level)
        self.assertEqual(levels, {"debug", "info", "warn"})
        self.assertRegex(failed["MESSAGE"],
                         r'^warn sess=[0-9a-f]{16} event=auth-failed '
                         r'rip=127\.0\.0\.1:\d+ user=')
        with open(errpath, "rb") as f2:
            self.assertEqual(f2.read(), b"")


class SyslogStalled(StalledReceiver, unittest.TestCase):
    ns = SYSLOG_NS
    sockname = "log"
    parse = staticmethod(parse_syslog)
    target = "syslog"
    config = {"log": {"debug": "yes", "target": "syslog"}}


if __name__ == "__main__":
    evtest.main()
