"""
evpop3d-swarm against the real daemon: the shipped `full`, `pipeline`,
`login` and `churn` scenarios run clean (exit 0, no violations, command
counts consistent with the scenario) on maildrops with dot-stuffed lines
and bare-LF messages; --server-pid charges CPU to the server.  And the
swarm's teeth: a fake server that announces the wrong RETR size, and
nullpop with a wrong expectation, are flagged (exit 1); a non-loopback
--host or --source and a broken scenario are refused (exit 2).

Env: EVPOP3D_SWARM (the swarm binary), EVPOP3D_NULLPOP (optional),
EVPOP3D_SOURCE_DIR (repo root, for scripts/swarm).
"""

import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import evtest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("EVPOP3D_SOURCE_DIR") or os.path.join(HERE, "..", "..")
SWARM = os.environ.get("EVPOP3D_SWARM") or os.path.join(
    HERE, "..", "..", "build-it", "evpop3d-swarm")
NULLPOP = os.environ.get("EVPOP3D_NULLPOP")
SCRIPTS = os.path.join(SRC, "scripts", "swarm")

READERS = 20
CHURNERS = 20
CHURN_MSGS = 12
RUN_S = "2"


def messages(i):
    """Four messages: dot-stuffing, a bare-LF body, CRLF, a bigger one."""
    return [
        b"Subject: dots %d\n\n.leading dot\n..two dots\n.\n. space\nend\n"
        % i,
        b"Subject: bare LF %d\nX: y\n\nline one\nline two\n\n.x\nlast" % i,
        b"Subject: crlf %d\r\n\r\nbody\r\n.\r\n..\r\n" % i,
        b"Subject: big %d\n\n" % i + b"".join(
            b"%s%05d %s\n" % (b"." if k % 7 == 0 else b"", k, b"z" * 60)
            for k in range(600)),
    ]


def swarm(args, timeout=60):
    """Run the swarm; returns (rc, parsed JSON or None, stderr)."""
    if not os.access(SWARM, os.X_OK):
        raise AssertionError("no swarm binary at %s (set EVPOP3D_SWARM)" %
                             SWARM)
    env = dict(os.environ, EVPOP3D_SWARM_DIR=SCRIPTS)
    p = subprocess.run([SWARM, "-q"] + args, capture_output=True,
                       text=True, timeout=timeout, env=env)
    report = None
    if p.stdout.strip().startswith("{"):
        report = json.loads(p.stdout)
    return p.returncode, report, p.stderr


class FakeServer:
    """A scripted POP3 server: three messages (dot-stuffed lines among
    them).  lie adds to LIST's (and STAT's) size of message 1; dribble
    writes every reply in random small pieces, so replies reach the
    swarm split at arbitrary points."""

    WIRE = [evtest.wire(m) for m in (
        b"Subject: one\n\n..dot\nbody\n",
        b"Subject: two\n\n.\n.x\n\nlast\n",
        b"Subject: three\n\n" + b"abc\n" * 50,
    )]

    def __init__(self, lie=0, dribble=False):
        self.lie = lie
        self.dribble = dribble
        self.sizes = [len(w) for w in self.WIRE]
        self.sizes[0] += lie
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.session, args=(c,),
                             daemon=True).start()

    def out(self, c, data, rnd):
        if not self.dribble:
            c.sendall(data)
            return
        while data:
            k = rnd.randint(1, 7)
            c.sendall(data[:k])
            data = data[k:]
            time.sleep(0.0003)

    def reply(self, line):
        words = line.split()
        verb = words[0].upper() if words else b""
        n = len(self.WIRE)
        if verb in (b"USER", b"PASS", b"NOOP", b"DELE"):
            return b"+OK\r\n"
        if verb == b"STAT":
            return b"+OK %d %d\r\n" % (n, sum(self.sizes))
        if verb == b"LIST":
            return b"+OK\r\n" + b"".join(
                b"%d %d\r\n" % (i + 1, sz)
                for i, sz in enumerate(self.sizes)) + b".\r\n"
        if verb == b"UIDL":
            return b"+OK\r\n" + b"".join(
                b"%d uid-%d\r\n" % (i + 1, i + 1)
                for i in range(n)) + b".\r\n"
        if verb == b"RETR" and len(words) == 2 and words[1].isdigit() \
                and 1 <= int(words[1]) <= n:
            return b"+OK\r\n" + evtest.stuff(self.WIRE[int(words[1]) - 1])
        return b"-ERR what\r\n"

    def session(self, c):
        import random
        rnd = random.Random(c.fileno())
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.settimeout(10)
        f = c.makefile("rb")
        try:
            self.out(c, b"+OK fake ready\r\n", rnd)
            for line in f:
                if line.split()[:1] == [b"QUIT"]:
                    self.out(c, b"+OK bye\r\n", rnd)
                    break
                self.out(c, self.reply(line), rnd)
        except OSError:
            pass
        finally:
            f.close()
            c.close()

    def close(self):
        self.stop = True
        self.sock.close()
        self.thread.join(5)


class Swarm(evtest.ServerTestCase):
    POOL = 1

    @classmethod
    def setup_users(cls, srv):
        cls.readers = os.path.join(srv.dir, "readers.txt")
        cls.churners = os.path.join(srv.dir, "churners.txt")
        with open(cls.readers, "w") as f:
            f.write("# user:password\n")
            for i in range(READERS):
                mb = srv.add_user("reader%02d@example.com" % i,
                                  "Rd-%02d-pw" % i)
                for m in messages(i):
                    mb.add(m)
                f.write("%s:%s\n" % (mb.user, mb.password))
        cls.churn_boxes = []
        with open(cls.churners, "w") as f:
            for i in range(CHURNERS):
                mb = srv.add_user("churn%02d@example.com" % i,
                                  "Ch-%02d-pw" % i)
                for k in range(CHURN_MSGS):
                    mb.add(b"Subject: churn %d\n\n.dot %d\n" % (k, k))
                cls.churn_boxes.append(mb)
                f.write("%s:%s\n" % (mb.user, mb.password))

    def run_clean(self, scenario, users, per_session, extra=()):
        args = ["-p", str(self.srv.port), "-c", "20", "-d", RUN_S,
                "-U", users, "--json"] + list(extra) + [scenario]
        rc, rep, err = swarm(args)
        self.assertIsNotNone(rep, "no JSON report:\n" + err)
        msg = "%s: %s\n%s" % (scenario, json.dumps(rep["violations"]), err)
        self.assertEqual(rc, 0, msg)
        self.assertEqual(rep["violations"]["total"], 0, msg)
        self.assertEqual(rep["sessions"]["failed"], 0, msg)
        done = rep["sessions"]["completed"]
        self.assertGreater(done, 0, msg)
        self.assertGreaterEqual(rep["commands"], done * per_session, msg)
        self.assertEqual(rep["scenario"], scenario)
        self.assertEqual(rep["concurrency"], 20)
        self.assertLessEqual(rep["peak_open"], 20)
        self.assertGreater(rep["bytes_in"], 0)
        lat = rep["latency_us"]
        self.assertEqual(lat["session"]["count"], done)
        self.assertEqual(lat["greeting"]["count"],
                         rep["sessions"]["started"] -
                         rep["sessions"]["aborted"])
        return rep

    def test_full(self):
        # USER PASS STAT LIST UIDL, RETR x4, QUIT; sampled server.
        rep = self.run_clean("full", self.readers, 10,
                             ["-S", str(self.srv.pid)])
        cmds = rep["latency_us"]["commands"]
        self.assertEqual(cmds["RETR"]["count"], 4 * cmds["LIST"]["count"])
        self.assertGreater(rep["server"]["cpu_us"], 0)
        self.assertEqual(rep["server"]["pid"], self.srv.pid)
        self.assertGreater(rep["server"]["rss_peak"], 0)
        self.assertTrue(rep["cdf"]["commands"]["RETR"])
        self.assertAlmostEqual(rep["cdf"]["session"][-1][1], 1.0)
        self.assertGreaterEqual(len(rep["timeline"]), 1)

    def test_pipeline(self):
        # USER PASS, then STAT LIST UIDL RETR 1..4 QUIT in one write.
        self.run_clean("pipeline", self.readers, 10, ["-D", "msgs=4"])

    def test_login(self):
        rep = self.run_clean("login", self.readers, 3)
        self.assertIsNone(rep["server"])

    def test_churn(self):
        before = sum(len(mb.files()) for mb in self.churn_boxes)
        # USER PASS STAT LIST QUIT (+ DELE while there is mail).
        self.run_clean("churn", self.churners, 5)
        after = sum(len(mb.files()) for mb in self.churn_boxes)
        self.assertLess(after, before)

    def test_retr_size_violation(self):
        fake = FakeServer(lie=-1)
        try:
            rc, rep, err = swarm(["-p", str(fake.port), "-c", "2", "-n", "4",
                                  "-d", "10", "--json", "full"])
        finally:
            fake.close()
        self.assertEqual(rc, 1, err)
        self.assertEqual(rep["violations"]["by_kind"]["retr_size"], 4, err)
        self.assertEqual(rep["violations"]["total"], 4)
        self.assertEqual(rep["sessions"]["failed"], 4)
        want = len(FakeServer.WIRE[0])
        self.assertIn("violation retr_size", err)
        self.assertIn("RETR 1: %d octets, LIST said %d" % (want, want - 1),
                      err)

    def test_split_replies(self):
        # Replies cut at random points, one command at a time and
        # pipelined: still exact (3 messages, -n: no partial sessions).
        fake = FakeServer(dribble=True)
        try:
            for scen, extra, per in (("full", [], 9),
                                     ("pipeline", ["-D", "msgs=3"], 9)):
                rc, rep, err = swarm(["-p", str(fake.port), "-c", "3",
                                      "-n", "6", "-d", "20", "--json"] +
                                     extra + [scen])
                self.assertEqual(rc, 0, err)
                self.assertEqual(rep["sessions"]["completed"], 6, err)
                self.assertEqual(rep["commands"], 6 * per, err)
                self.assertEqual(rep["latency_us"]["commands"]["RETR"]
                                 ["count"], 18)
        finally:
            fake.close()

    @unittest.skipUnless(NULLPOP and os.access(NULLPOP, os.X_OK),
                         "EVPOP3D_NULLPOP not set")
    def test_status_violation_nullpop(self):
        p = subprocess.Popen([NULLPOP, "-l", "127.0.0.1:0"],
                             stderr=subprocess.PIPE, text=True)
        try:
            line = p.stderr.readline()
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            self.assertIsNotNone(m, line)
            port = m.group(1)
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "wrong.swarm")
                with open(path, "w") as f:
                    f.write("connect\nexpect OK\nsend NOOP\n"
                            "expect ERR   # nullpop says +OK\n")
                rc, rep, err = swarm(["-p", port, "-c", "2", "-n", "3",
                                      "--json", path])
                self.assertEqual(rc, 1, err)
                self.assertEqual(rep["violations"]["by_kind"]["status"], 3)
                self.assertEqual(rep["scenario"], "wrong")
                # ...and a clean `full` against it.
                rc, rep, err = swarm(["-p", port, "-c", "5", "-d", "1",
                                      "--json", "full"])
                self.assertEqual(rc, 0, err)
                self.assertGreater(rep["sessions"]["completed"], 0)
        finally:
            p.terminate()
            p.wait(10)
            p.stderr.close()

    def test_refusals(self):
        for args in (["-H", "10.0.0.1"], ["-H", "localhost"],
                     ["-H", "::ffff:10.0.0.1"], ["-H", "128.0.0.1"],
                     ["-s", "127.0.0.2,192.168.1.1"], ["-c", "0"],
                     ["-d", "0"], ["-u", "bench%s"], ["nonexistent"]):
            rc, rep, err = swarm(["-p", str(self.srv.port), "-d", "1"] +
                                 args + (["login"] if args[0] != "nonexistent"
                                         else []))
            self.assertEqual(rc, 2, "%r: %s" % (args, err))
            self.assertIsNone(rep)

    def test_parse_error(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.swarm")
            with open(path, "w") as f:
                f.write("connect\nexpect OK\nsend USER {nobody}\n")
            rc, rep, err = swarm(["-p", str(self.srv.port), path])
        self.assertEqual(rc, 2)
        self.assertIn("%s:3: unknown variable 'nobody'" % path, err)


if __name__ == "__main__":
    evtest.main()
