#!/usr/bin/env python3
"""The daemon's life under an init system: the drain at SIGTERM, the
reload at SIGHUP, socket activation and sd_notify (issue 12).

Each test starts its own daemon (a stop ends it). systemd is not needed:
the tests play its part, as sd_notify(3) and sd_listen_fds(3) define it:
a datagram socket named by $NOTIFY_SOCKET, and listening sockets passed
from descriptor 3 with $LISTEN_FDS, $LISTEN_PID and $LISTEN_FDNAMES.
"""
import copy
import os
import re
import signal
import socket
import tempfile
import time
import unittest
import urllib.request

import evtest
import tlstest
from clientloop import ClientLoop

BYE = "-ERR [SYS/TEMP] Server shutting down."


def big(n, seed):
    """A message of about n octets with lines of every length."""
    lines = [b"Subject: big %d" % seed, b""]
    size, i = 0, 0
    while size < n:
        line = (b"%08d " % i) * (1 + (i * 7 + seed) % 11)
        lines.append(line)
        size += len(line) + 1
        i += 1
    return b"\n".join(lines) + b"\n"


class Notify:
    """The systemd end of sd_notify(3): a datagram socket."""

    def __init__(self, tmpdir):
        self.path = os.path.join(tmpdir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.msgs = []

    def wait(self, pred, timeout=10):
        """Read datagrams until pred(msgs) holds; returns msgs."""
        deadline = time.monotonic() + timeout * evtest.SCALE
        while not pred(self.msgs):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("sd_notify: waited for %r" % self.msgs)
            self.sock.settimeout(left)
            try:
                self.msgs.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        return self.msgs

    def close(self):
        self.sock.close()


def has(key):
    return lambda msgs: any(key in m.split("\n") for m in msgs)


class Base(unittest.TestCase):
    CONFIG = {}

    def server(self, config=None, pool=4, start=True):
        cfg = dict((s, dict(kv)) for s, kv in self.CONFIG.items())
        for s, kv in (config or {}).items():
            cfg.setdefault(s, {}).update(kv)
        srv = evtest.Server(config=cfg, pool=pool)
        self.addCleanup(srv.cleanup)
        if start:
            srv.start()
        return srv

    def conn(self, srv, **kw):
        c = evtest.Conn(srv.port_for("127.0.0.1"), **kw)
        self.addCleanup(c.close)
        return c


class Drain(Base):
    """SIGTERM: idle sessions are told at once; a RETR in flight is sent
    whole, then its next command gets the bye; no UPDATE for them."""

    def test_retr_in_flight_finishes(self):
        srv = self.server(start=False)
        mb = srv.fresh()
        data = big(30 << 20, 1)
        mb.add(b"Subject: small\n\nsmall\n")
        mb.add(data)
        srv.start()
        idle = self.conn(srv)
        busy = self.conn(srv, rcvbuf=65536)
        busy.login(mb.user, mb.password)
        busy.ok("DELE 1")
        # The reply is under way: the client reads its first octets.
        busy.send("RETR 2\r\nSTAT\r\n")
        self.assertTrue(busy.status().startswith("+OK"))
        n = len(srv.log())
        srv.proc.send_signal(signal.SIGTERM)
        self.assertTrue(srv.wait_log(r"event=shutdown sessions=2", start=n))
        # Idle: the bye, and closed.
        self.assertEqual(idle.expect_closed(), [BYE.encode()])
        # No new connection is accepted while the drain goes on.
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", srv.port_for(
                "127.0.0.1")), timeout=5).close()
        self.assertIsNone(srv.proc.poll())
        # The whole message, then STAT's answer is the bye.
        body = b"".join(l + b"\r\n" for l in busy.multi())
        self.assertEqual(body, evtest.wire(data))
        self.assertEqual(busy.expect_closed(), [BYE.encode()])
        self.assertEqual(srv.proc.wait(10 * evtest.SCALE), 0)
        self.assertEqual(len(mb.uidls()), 2, "DELE applied without QUIT")
        self.assertTrue(srv.wait_log(
            r"event=disconnect .*reason=shutdown .*retr=1/"))

    def test_update_never_half_done(self):
        """QUIT and SIGTERM together: either QUIT's UPDATE runs whole
        (+OK, the messages gone) or the session gets the bye and keeps
        them all; never a part."""
        outcomes = set()
        for i in range(6):
            srv = self.server(start=False, pool=1)
            mb = srv.fresh()
            for j in range(40):
                mb.add(b"Subject: %d\n\nbody\n" % j)
            srv.start()
            c = self.conn(srv)
            c.login(mb.user, mb.password)
            c.send("".join("DELE %d\r\n" % (j + 1) for j in range(40)))
            for j in range(40):
                self.assertTrue(c.status().startswith("+OK"))
            c.send("QUIT\r\n")
            if i % 2:
                time.sleep(0.001 * i)
            srv.proc.send_signal(signal.SIGTERM)
            r = c.expect_closed()
            self.assertEqual(srv.proc.wait(10 * evtest.SCALE), 0)
            left = len(mb.uidls())
            if r and r[0].startswith(b"+OK"):
                self.assertEqual(left, 0, r)
                outcomes.add("update")
            else:
                self.assertEqual(r, [BYE.encode()])
                self.assertEqual(left, 40)
                outcomes.add("bye")
            srv.stop()
        self.assertIn("update", outcomes)

    def stalled_retr(self, shutdown_timeout, seed):
        """A daemon with a client that stopped reading a 20 MB RETR."""
        srv = self.server(start=False, config={
            "server": {"shutdown_timeout": str(shutdown_timeout)}})
        mb = srv.fresh()
        mb.add(big(20 << 20, seed))
        srv.start()
        c = self.conn(srv, rcvbuf=4096)
        c.login(mb.user, mb.password)
        c.send("RETR 1\r\n")
        c._fill(100)
        return srv

    def test_second_signal_cuts(self):
        srv = self.stalled_retr(600, 2)
        n = len(srv.log())
        srv.proc.send_signal(signal.SIGTERM)
        self.assertTrue(srv.wait_log(r"event=shutdown sessions=1", start=n))
        self.assertIsNone(srv.proc.poll())
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGINT)
        self.assertEqual(srv.proc.wait(10 * evtest.SCALE), 0)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertTrue(srv.wait_log(r"warn event=shutdown-now sessions=1"))

    def test_timeout_bounds_the_drain(self):
        srv = self.stalled_retr(1, 3)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(srv.proc.wait(15 * evtest.SCALE), 0)
        self.assertGreater(time.monotonic() - t0, 0.9)
        self.assertTrue(srv.wait_log(r"event=shutdown-deadline sessions=1"))


class Reload(Base):
    """SIGHUP applies the whole file, or none of it."""

    def hup(self, srv, result):
        n = len(srv.log())
        srv.proc.send_signal(signal.SIGHUP)
        m = srv.wait_log(r"event=reload result=(ok|failed)", start=n)
        self.assertIsNotNone(m, srv.log()[n:])
        self.assertEqual(m.group(1), result, srv.log()[n:])
        return srv.log()[n:]

    def test_settings_users_listeners(self):
        srv = self.server(config={"pop3": {"enable_last": "yes"}})
        a = srv.fresh()
        a.add(b"Subject: a\n\na\n")
        old = self.conn(srv)
        old.login(a.user, a.password)
        port1 = srv.port_for("127.0.0.1")

        # A new user, LAST off, and a second listener on another address.
        b = srv.add_user("new@example.com", "new-user-pw")
        srv.write_passwd()
        srv.config["pop3"]["enable_last"] = "no"
        srv.config["server"]["listen"] = "127.0.0.1:%d, 127.0.0.2:0" % port1
        srv.write_config()
        log = self.hup(srv, "ok")
        self.assertTrue(any("event=listen addr=127.0.0.2:" in l
                            for l in log), log)
        port2 = int(next(l for l in log if "addr=127.0.0.2:" in l)
                    .split("addr=127.0.0.2:")[1].split()[0])

        # The session from before keeps its settings; new ones get the
        # new ones, on either listener; the new user logs in.
        self.assertEqual(old.ok("LAST"), "+OK 0")
        new = self.conn(srv)
        new.login(b.user, b.password)
        new.err("LAST")
        c2 = evtest.Conn(port2, host="127.0.0.2")
        self.addCleanup(c2.close)
        other = srv.fresh()
        c2.login(other.user, other.password)
        old.quit()
        new.quit()

        # The first listener removed: refused there, served on the other.
        srv.config["server"]["listen"] = "127.0.0.2:%d" % port2
        srv.write_config()
        log = self.hup(srv, "ok")
        self.assertTrue(any("event=unlisten addr=127.0.0.1:%d" % port1
                            in l for l in log), log)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port1), timeout=5)
        c3 = evtest.Conn(port2, host="127.0.0.2")
        self.addCleanup(c3.close)
        c3.login(a.user, a.password)
        c3.quit()
        c2.quit()

    def test_metrics_endpoint(self):
        """[metrics] listen added, then removed, by reloads."""
        srv = self.server()
        srv.config["metrics"] = {"listen": "127.0.0.1:0"}
        srv.write_config()
        log = self.hup(srv, "ok")
        m = [re.search(r"event=metrics-listen addr=127\.0\.0\.1:(\d+)", l)
             for l in log]
        port = int(next(x for x in m if x).group(1))
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                      timeout=10).read().decode()
        self.assertIn("evpop3d_connections_accepted_total", body)
        srv.config["metrics"] = {"listen": ""}
        srv.write_config()
        self.hup(srv, "ok")
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)

    def test_tls_added_and_removed(self):
        """[tls] and listen_tls added by a reload: STLS offered and the
        implicit-TLS listener serving; removed: neither, while a session
        that went under TLS before goes on."""
        srv = self.server()
        a = srv.fresh()
        tlstest.make_cert(srv.dir, "rsa", "mail.test.example", "rsa",
                          ["DNS:mail.test.example", "IP:127.0.0.1"])
        ctx = tlstest.client_context(srv)
        c = self.conn(srv)
        _, caps = c.ok_multi("CAPA")
        self.assertNotIn(b"STLS", caps)

        srv.config["server"]["listen_tls"] = "127.0.0.1:0"
        srv.config["tls"] = {"cert": "rsa.pem", "key": "rsa.key"}
        srv.write_config()
        log = self.hup(srv, "ok")
        m = [re.search(r"event=listen addr=127\.0\.0\.1:(\d+) "
                       r"tls=implicit", l) for l in log]
        tls_port = int(next(x for x in m if x).group(1))
        new = self.conn(srv)
        _, caps = new.ok_multi("CAPA")
        self.assertIn(b"STLS", caps)
        under = tlstest.TLSConn(srv.port_for("127.0.0.1"))
        self.addCleanup(under.close)
        under.ok("STLS")
        under.starttls(ctx)
        under.login(a.user, a.password)
        implicit = tlstest.TLSConn(tls_port, implicit=True, ctx=ctx)
        self.addCleanup(implicit.close)
        implicit.ok_multi("CAPA")
        implicit.quit()

        del srv.config["tls"]
        del srv.config["server"]["listen_tls"]
        srv.write_config()
        log = self.hup(srv, "ok")
        self.assertTrue(any("event=unlisten addr=127.0.0.1:%d" % tls_port
                            in l for l in log), log)
        last = self.conn(srv)
        _, caps = last.ok_multi("CAPA")
        self.assertNotIn(b"STLS", caps)
        last.err("STLS")
        # The session under TLS from before is not dropped.
        self.assertTrue(under.ok("STAT").startswith("+OK"))
        under.quit()

    def test_bad_config_keeps_the_old(self):
        srv = self.server()
        a = srv.fresh()
        good = copy.deepcopy(srv.config)
        # An invalid value, then a listener that cannot be bound, then a
        # missing passwd-file: each refused, the old configuration stays.
        bad = [
            ("server", "idle_timeout", "30", r"idle_timeout"),
            ("server", "listen", "127.0.0.1:%d, 192.0.2.1:110" %
             srv.port_for("127.0.0.1"), r"listener"),
            ("auth", "passwd_file", "/nonexistent/passwd", r"nonexistent"),
        ]
        for sect, key, value, why in bad:
            srv.config[sect][key] = value
            srv.write_config()
            log = self.hup(srv, "failed")
            err = [l for l in log if "event=reload result=failed" in l]
            self.assertTrue(err[0].startswith("error ") or
                            " error " in err[0][:40], err)
            self.assertRegex(err[0], why)
            c = self.conn(srv)
            c.login(a.user, a.password)
            c.quit()
            srv.config = copy.deepcopy(good)
            srv.write_config()
        # And a good reload after them works.
        self.hup(srv, "ok")


class SdNotify(Base):

    def test_ready_reloading_stopping_status(self):
        tmp = tempfile.mkdtemp(prefix="evtest-notify-")
        n = Notify(tmp)
        self.addCleanup(n.close)
        srv = self.server(start=False)
        srv.prefix = ["env", "NOTIFY_SOCKET=" + n.path]
        srv.start()
        n.wait(has("READY=1"))
        n.wait(lambda m: any(l.startswith("STATUS=") and "sessions" in l
                             for x in m for l in x.split("\n")))
        k = len(n.msgs)
        srv.proc.send_signal(signal.SIGHUP)
        n.wait(lambda m: has("RELOADING=1")(m[k:]) and has("READY=1")(m[k:]))
        msgs = n.msgs[k:]
        first = next(i for i, x in enumerate(msgs)
                     if "RELOADING=1" in x.split("\n"))
        self.assertTrue(any("READY=1" in x.split("\n")
                            for x in msgs[first + 1:]), msgs)
        self.assertTrue(any(l.startswith("MONOTONIC_USEC=")
                            for l in msgs[first].split("\n")), msgs)
        srv.proc.send_signal(signal.SIGTERM)
        n.wait(has("STOPPING=1"))
        self.assertEqual(srv.proc.wait(10 * evtest.SCALE), 0)


class SocketActivation(Base):
    """Listening sockets from "systemd" (this test), named by
    FileDescriptorName=; a restart on them never refuses a client."""

    def activated(self, socks, names):
        srv = self.server(start=False, pool=2)
        fds = [s.fileno() for s in socks]
        dups = " ".join("%d<&%d" % (3 + i, fd) for i, fd in enumerate(fds))
        srv.prefix = ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=%d '
                      'LISTEN_FDNAMES=%s; export LISTEN_PID LISTEN_FDS '
                      'LISTEN_FDNAMES; exec "$@" %s'
                      % (len(fds), ":".join(names), dups), "sh"]
        srv.pass_fds = tuple(fds)
        return srv

    def listener(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(512)
        self.addCleanup(s.close)
        return s

    def test_restart_refuses_nobody(self):
        ls = self.listener()
        port = ls.getsockname()[1]
        srv = self.activated([ls], ["pop3"])
        srv.start()
        self.assertTrue(srv.wait_log(r"event=listen addr=127\.0\.0\.1:%d "
                                     r"from=systemd" % port))
        self.assertTrue(srv.wait_log(r"event=ready .*sockets=systemd"))

        with ClientLoop(port, "NOOP") as loop:
            for i in range(3):
                self.assertTrue(loop.wait_ok(20, 10 * evtest.SCALE))
                # "systemctl restart": stop, then start on the same socket.
                srv.proc.send_signal(signal.SIGTERM)
                self.assertEqual(srv.proc.wait(10 * evtest.SCALE), 0)
                srv.stop()
                srv = self.activated([ls], ["pop3"])
                srv.start()
            self.assertTrue(loop.wait_ok(20, 10 * evtest.SCALE))
        self.assertEqual(loop.failed, [])
        self.assertGreater(loop.ok, 80)

    def test_names(self):
        plain, other = self.listener(), self.listener()
        srv = self.activated([plain, other], ["pop3", "imap"])
        srv.start(wait=False)
        self.assertEqual(srv.proc.wait(10 * evtest.SCALE), 1)
        self.assertTrue(srv.wait_log(r'error event=listen-failed fd=4 '
                                     r'name="imap"'))
        srv = self.activated([plain, other], ["pop3", "pop3s"])
        srv.start(wait=False)
        self.assertEqual(srv.proc.wait(10 * evtest.SCALE), 1)
        self.assertTrue(srv.wait_log(r"name=pop3s note=\"implicit TLS "
                                     r"needs \[tls\]"))


if __name__ == "__main__":
    evtest.main()
