#!/usr/bin/env python3
"""[server] workers = N (issue 13): a supervisor forks N serving processes
on SO_REUSEPORT sockets (net/supervise.h), restarts one that dies with a
back-off, forwards SIGHUP and SIGTERM, and answers the admin socket and
the metrics endpoint from every worker.

Real binary, real sockets: which worker served a connection is read from
its login line ("worker=I event=login rip=127.0.0.1:PORT"), a worker's
pid from "event=worker-start worker=I pid=P".
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.request

import evtest
import tlstest
from clientloop import ClientLoop
from test_lifecycle import Notify, has

SCALE = evtest.SCALE
PROMTOOL = shutil.which("promtool")
WORKERS = {"server": {"workers": "2"}}


def cli(srv, *args):
    return subprocess.run([evtest.BIN] + list(args) + [
        "-s", srv.config["control"]["socket"]], capture_output=True,
        text=True, timeout=60 * SCALE)


def worker_of(srv, c, start=0):
    """The worker index that logged c in (its login line)."""
    port = c.sock.getsockname()[1]
    m = srv.wait_log(r"\bworker=(\d+) event=login rip=127\.0\.0\.1:%d "
                     % port, start=start)
    assert m, "no login line for port %d" % port
    return int(m.group(1))


def worker_pids(srv):
    """{index: pid} of the workers started last."""
    pids = {}
    for l in srv.log():
        m = re.search(r"event=worker-start worker=(\d+) pid=(\d+)", l)
        if m:
            pids[int(m.group(1))] = int(m.group(2))
    return pids


def gone(pid, timeout=10):
    """Wait until pid no longer exists (or is a zombie nobody reaps)."""
    deadline = time.monotonic() + timeout * SCALE
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.05)
    return False


def merged(a, b):
    cfg = {s: dict(kv) for s, kv in a.items()}
    for s, kv in b.items():
        cfg.setdefault(s, {}).update(kv)
    return cfg


class Workers(evtest.ServerTestCase):
    """One daemon with two workers for the read-only checks."""
    CONFIG = merged(WORKERS, {"metrics": {"listen": "127.0.0.1:0"}})
    POOL = 24

    def in_both(self, n_max=60):
        """Logged-in connections until one is in each worker:
        {index: (conn, mailbox)}; the others are quit."""
        have = {}
        for _ in range(n_max):
            mb = self.fresh() if len(self.srv.pool) > 2 else None
            if mb is None:
                break
            c = self.login(mb)
            w = worker_of(self.srv, c)
            if w in have:
                c.quit()
                continue
            have[w] = (c, mb)
            if len(have) == 2:
                return have
        self.fail("no login landed in both workers: %r" % have.keys())

    def test_both_accept_ids_unique(self):
        mb = self.fresh()
        seen, ids = set(), []
        for _ in range(40):
            c = self.login(mb)
            seen.add(worker_of(self.srv, c))
            c.quit()
        self.assertEqual(seen, {0, 1})
        for l in self.srv.log():
            m = re.search(r"sess=([0-9a-f]{16}) worker=(\d) event=login ", l)
            if m:
                ids.append(m.group(1))
                # Worker I hands out the ids congruent to I modulo 2.
                self.assertEqual(int(m.group(1), 16) % 2, int(m.group(2)))
        self.assertEqual(len(ids), len(set(ids)))
        self.assertTrue(self.srv.wait_log(
            r"event=ready version=\S+ workers=2 sockets=reuseport"))

    def test_admin_who_kick_stats(self):
        have = self.in_both()
        users = {w: mb.user for w, (c, mb) in have.items()}
        r = cli(self.srv, "who", "-1")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(sum(1 for l in lines if l.startswith("ID USER")), 1)
        for u in users.values():
            self.assertTrue(any(" %s " % u in l for l in lines), r.stdout)
        r = cli(self.srv, "who")
        self.assertEqual(r.returncode, 0, r.stderr)
        for u in users.values():
            self.assertTrue(any(l.startswith(u + " 1 (") for l in
                                r.stdout.splitlines()), r.stdout)

        # Kick the user of worker 1: its session closes, worker 0's not.
        r = cli(self.srv, "kick", users[1])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("kicked 1 session(s) of %s" % users[1], r.stdout)
        have[1][0].expect_closed()
        self.assertEqual(have[0][0].ok("NOOP"), "+OK")
        r = cli(self.srv, "kick", "nobody-here@example.com")
        self.assertNotEqual(r.returncode, 0)
        have[0][0].quit()

        # stats and a scrape: the logins of both, summed.
        logins = sum(1 for l in self.srv.log()
                     if re.search(r"\bworker=\d event=login ", l))
        r = cli(self.srv, "stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"^evpop3d_logins_total (\d+)$", r.stdout, re.M)
        self.assertIsNotNone(m, r.stdout[:2000])
        self.assertEqual(int(m.group(1)), logins)
        self.assertEqual(len(re.findall(r"^evpop3d_build_info\b", r.stdout,
                                        re.M)), 1)
        addr = self.srv.wait_log(r"event=metrics-listen addr=(\S+)").group(1)
        body = urllib.request.urlopen("http://%s/metrics" % addr,
                                      timeout=30 * SCALE).read()
        m = re.search(rb"^evpop3d_logins_total (\d+)$", body, re.M)
        self.assertEqual(int(m.group(1)), logins)
        if PROMTOOL:
            p = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


class Base(unittest.TestCase):
    """Each test its own daemon (kills and stops end it)."""

    def server(self, config=None, pool=6, start=True):
        srv = evtest.Server(config=merged(WORKERS, config or {}), pool=pool)
        self.addCleanup(srv.cleanup)
        if start:
            srv.start()
        return srv

    def conn(self, srv, **kw):
        c = evtest.Conn(srv.port, **kw)
        self.addCleanup(c.close)
        return c

    def login_in(self, srv, worker, mb=None, tries=60):
        """A connection logged in (as mb, or a fresh user) in worker."""
        for _ in range(tries):
            n = len(srv.log())
            user = mb or srv.fresh()
            c = self.conn(srv)
            c.login(user.user, user.password)
            if worker_of(srv, c, start=n) == worker:
                return c, user
            c.quit()
            if mb is None:
                srv.pool.append(user)
        self.fail("no login landed in worker %d" % worker)

    def stop_clean(self, srv):
        pids = worker_pids(srv).values()
        srv.stop()
        for pid in pids:
            self.assertTrue(gone(pid), "worker %d left behind" % pid)


class Restart(Base):

    def test_kill9_restarts_refuses_nobody(self):
        srv = self.server()
        mb = srv.fresh()
        held, _ = self.login_in(srv, 0, mb)
        victim = worker_pids(srv)[0]

        loop = ClientLoop(srv.port, "CAPA")

        def run(n):
            with loop:
                self.assertTrue(loop.wait_ok(n, 20 * SCALE))

        run(40)
        n = len(srv.log())
        # The clients stop while it dies (a session inside a process
        # that is killed is lost with it), then connect through the
        # restart: worker 0's queue waits for its successor.
        os.kill(victim, signal.SIGKILL)
        self.assertTrue(srv.wait_log(r"event=worker-exit worker=0 signal=9 "
                                     r"ran_ms=\d+ restart_in_s=[01]\b",
                                     start=n))
        run(60)
        self.assertTrue(srv.wait_log(r"worker=0 event=worker-ready", start=n))
        run(20)
        self.assertEqual(loop.failed, [])
        self.assertNotEqual(worker_pids(srv)[0], victim)
        # Its user logs in again: the maildrop lock died with it.
        c = evtest.login_retry(lambda: self.conn(srv), mb, timeout=10,
                               code="-ERR")
        c.quit()
        self.stop_clean(srv)

    def test_crash_loop_backs_off(self):
        srv = self.server()
        passwd = os.path.join(srv.dir, "passwd")
        # An honest failure: the passwd-file gone, a new worker cannot
        # start (pop3_env_new() fails) and exits at once.
        os.rename(passwd, passwd + ".away")
        n = len(srv.log())
        t0 = time.monotonic()
        os.kill(worker_pids(srv)[0], signal.SIGKILL)
        self.assertTrue(srv.wait_log(r"event=worker-exit worker=0 exit=1 "
                                     r"ran_ms=\d+ restart_in_s=4", start=n,
                                     timeout=20))
        took = time.monotonic() - t0
        exits = [l for l in srv.log()[n:]
                 if re.search(r"event=worker-exit worker=0 ", l)]
        waits = [int(re.search(r"restart_in_s=(\d+)", l).group(1))
                 for l in exits]
        # 1, 2, 4 seconds: three deaths in about three seconds, no spin
        # (0 first if the killed worker had run SUPERVISE_STABLE_S).
        self.assertEqual([w for w in waits if w > 0], [1, 2, 4], exits)
        self.assertGreaterEqual(took, 2.5)
        os.rename(passwd + ".away", passwd)
        self.assertTrue(srv.wait_log(r"worker=0 event=worker-ready",
                                     start=n, timeout=20))
        c, _ = self.login_in(srv, 0)
        c.quit()
        self.stop_clean(srv)


class Signals(Base):

    def test_sighup_reaches_every_worker(self):
        srv = self.server(config={"pop3": {"enable_last": "yes"}})
        srv.config["pop3"]["enable_last"] = "no"
        srv.write_config()
        n = len(srv.log())
        srv.proc.send_signal(signal.SIGHUP)
        for w in (0, 1):
            self.assertTrue(srv.wait_log(r"worker=%d event=reload result=ok"
                                         % w, start=n))
        for w in (0, 1):
            c, _ = self.login_in(srv, w)
            c.err("LAST")
            c.quit()

        # A bad file: refused by the supervisor, no worker reloads, all
        # keep serving with what they have.
        with open(srv.conf_path, "a") as f:
            f.write("[server]\nidle_timeout = 1\n")
        n = len(srv.log())
        srv.proc.send_signal(signal.SIGHUP)
        self.assertTrue(srv.wait_log(r"^error event=reload result=failed",
                                     start=n))
        self.assertFalse(any(re.search(r"worker=\d event=reload", l)
                             for l in srv.log()[n:]))
        for w in (0, 1):
            c, _ = self.login_in(srv, w)
            c.err("LAST")
            c.quit()
        self.stop_clean(srv)

    def test_sigterm_drains_a_retr(self):
        srv = self.server(start=False)
        mb = srv.fresh()
        data = b"Subject: big\n\n" + (b"x" * 998 + b"\n") * (20 << 10)
        mb.add(data)
        srv.start()
        busy, _ = self.login_in(srv, 1, mb)
        pids = worker_pids(srv)
        busy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        busy.send("RETR 1\r\n")
        self.assertTrue(busy.status().startswith("+OK"))
        srv.proc.send_signal(signal.SIGTERM)
        self.assertTrue(srv.wait_log(r"worker=1 event=shutdown sessions=1"))
        body = b"".join(l + b"\r\n" for l in busy.multi())
        self.assertEqual(body, evtest.wire(data))
        self.assertEqual(srv.proc.wait(20 * SCALE), 0)
        for pid in pids.values():
            self.assertTrue(gone(pid), "worker %d left behind" % pid)
        srv.stop()

    def test_supervisor_killed_workers_exit(self):
        srv = self.server()
        c, _ = self.login_in(srv, 0)
        pids = worker_pids(srv)
        srv.proc.kill()
        srv.proc.wait(10)
        for pid in pids.values():
            self.assertTrue(gone(pid, 20), "orphan worker %d" % pid)
        c.expect_closed()
        self.assertTrue(srv.wait_log(r"worker=\d event=supervisor-gone"))
        self.assertEqual(srv.check_log(), [])


class SdNotify(Base):

    def test_ready_once_all_status_summed(self):
        tmp = tempfile.mkdtemp(prefix="evtest-notify-")
        self.addCleanup(shutil.rmtree, tmp, True)
        n = Notify(tmp)
        self.addCleanup(n.close)
        srv = self.server(start=False)
        srv.prefix = ["env", "NOTIFY_SOCKET=" + n.path]
        srv.start()
        n.wait(has("READY=1"))
        # The supervisor logs event=ready before it sends READY=1, but the
        # stderr reader may not have appended the line yet.
        self.assertTrue(srv.wait_log(r"^info event=ready "))
        # READY=1 only after both workers said they were ready.
        ready = max(i for i, l in enumerate(srv.log())
                    if re.search(r"worker=\d event=worker-ready", l))
        self.assertTrue(any(re.search(r"^info event=ready ", l)
                            for l in srv.log()[ready:]))
        c, _ = self.login_in(srv, 1)
        pat = re.compile(r"^STATUS=1 sessions, 1 logged in; \d+ connections; "
                         r"2 of 2 workers, 0 restarts$")
        n.wait(lambda m: any(pat.match(l) for x in m
                             for l in x.split("\n")), timeout=20)
        k = len(n.msgs)
        srv.proc.send_signal(signal.SIGHUP)
        n.wait(lambda m: has("RELOADING=1")(m[k:]) and has("READY=1")(m[k:]))
        c.quit()
        srv.proc.send_signal(signal.SIGTERM)
        n.wait(has("STOPPING=1"))
        self.assertEqual(srv.proc.wait(20 * SCALE), 0)
        srv.stop()


class Activation(Base):

    def test_socket_activation_shared(self):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(512)
        self.addCleanup(ls.close)
        port = ls.getsockname()[1]
        srv = self.server(start=False)
        srv.prefix = ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 '
                      'LISTEN_FDNAMES=pop3; export LISTEN_PID LISTEN_FDS '
                      'LISTEN_FDNAMES; exec "$@" 3<&%d' % ls.fileno(), "sh"]
        srv.pass_fds = (ls.fileno(),)
        srv.start()
        self.assertTrue(srv.wait_log(r"event=listen-shared sockets=1 "
                                     r"workers=2 from=systemd"))
        self.assertTrue(srv.wait_log(r"event=ready .*sockets=systemd"))
        for w in (0, 1):
            self.assertTrue(srv.wait_log(
                r"worker=%d event=listen addr=127\.0\.0\.1:%d "
                r"from=supervisor" % (w, port)))
        mb = srv.fresh()
        for _ in range(10):
            c = self.conn(srv)
            c.login(mb.user, mb.password)
            c.quit()
        self.stop_clean(srv)


class Check(unittest.TestCase):

    def check(self, value):
        tmp = tempfile.mkdtemp(prefix="evtest-workers-")
        self.addCleanup(shutil.rmtree, tmp, True)
        srv = evtest.Server(config=merged(WORKERS, {
            "server": {"workers": value}}), pool=1, tmpdir=tmp)
        srv.write_passwd()
        path = srv.write_config()
        return subprocess.run([evtest.BIN, "-t", "-c", path],
                              capture_output=True, text=True, timeout=60)

    def test_values(self):
        for v in ("1", "2", "256", "auto"):
            r = self.check(v)
            self.assertEqual(r.returncode, 0, (v, r.stderr))
        for v in ("0", "257", "x", "-1", "02", ""):
            r = self.check(v)
            self.assertNotEqual(r.returncode, 0, v)
            self.assertIn("workers", r.stderr, (v, r.stderr))



class ReloadTLS(tlstest.TLSTestCase):
    """A worker forked after a reload serves the reloaded certificate:
    the supervisor reloads its own TLS state, which later forks
    inherit, not only the workers running at the SIGHUP."""

    CONFIG = tlstest.merge(tlstest.TLS_CONFIG, {"server": {"workers": "2"}})

    def der(self, name):
        with open(os.path.join(self.srv.dir, name)) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def test_restart_after_reload(self):
        d = self.srv.dir
        tlstest.make_cert(d, "new", "mail.test.example", "ec",
                          ["DNS:mail.test.example"])
        for ext in ("pem", "key"):
            tmp = os.path.join(d, "rsa.%s.tmp" % ext)
            shutil.copyfile(os.path.join(d, "new." + ext), tmp)
            os.rename(tmp, os.path.join(d, "rsa." + ext))
        n = len(self.srv.log())
        self.srv.proc.send_signal(signal.SIGHUP)
        for w in (0, 1):
            self.assertTrue(self.srv.wait_log(
                r"worker=%d event=reload result=ok" % w, start=n))
        pids = worker_pids(self.srv)
        n = len(self.srv.log())
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        for w in (0, 1):
            self.assertTrue(self.srv.wait_log(
                r"worker=%d event=worker-ready" % w, start=n, timeout=20))
        new = self.der("new.pem")
        for _ in range(8):  # SO_REUSEPORT spreads them over both
            c = tlstest.TLSConn(self.tls_port, implicit=True,
                                ctx=tlstest.client_context(self.srv,
                                                           "new.pem"))
            self.assertEqual(c.sock.getpeercert(binary_form=True), new)
            c.close()


if __name__ == "__main__":
    evtest.main()
