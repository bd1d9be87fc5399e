"""
PROXY protocol (issue 13; net/proxy.c, the accept path in net/server.c):
[server] proxy_protocol_from = 127.0.0.1, so this process's connections
from 127.0.0.1 play the load balancer and must begin with a header (v1 or
v2) naming the real client, while connections from 127.0.0.2
(srcconn.py) are ordinary clients to whom a header is only a bad command.

Checked: the real address reaches the log (rip=), the penalty, the
per-address connection limit and the plaintext policy; LOCAL and UNKNOWN
keep the proxy's address; the octets after the header are not lost
(pipelined commands, a ClientHello in the same segment); TLS after the
header (implicit TLS and STLS); hostile headers (bad signature, bad
fields, truncated, oversized, slow, silent) close the connection without
a greeting and are logged and counted.
"""

import re
import signal
import socket
import subprocess
import time
import urllib.request

import evtest
import proxytest
import tlstest
from proxytest import v1, v2, tlv
from srcconn import SrcConn

FD = 200		# failure_delay, ms
CAP = 800		# penalty_max, ms
TIMEOUT_S = 1		# proxy_protocol_timeout
SLACK = 1.0 * evtest.SCALE
EARLY = 0.005		# a failed login's answer: a precise timer
# The header's deadline: a libevent timer, on its coarse clock (a jiffy
# early at most: 4 ms at HZ=250, 10 ms at HZ=100).
COARSE = 0.012
REFUSED = ("-ERR [AUTH] Plaintext authentication disallowed on non-secure "
           "connections.")


class Proxy(tlstest.TLSTestCase):
    CONFIG = tlstest.merge(tlstest.TLS_CONFIG, {
        "server": {"proxy_protocol_from": "127.0.0.1",
                   "proxy_protocol_timeout": str(TIMEOUT_S)},
        "auth": {"failure_delay": str(FD), "penalty_max": str(CAP),
                 "max_failures": "20", "max_connections_per_ip": "3",
                 "max_unauth_per_ip": "50"},
        "metrics": {"listen": "127.0.0.1:0"},
    })

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.mport = cls.srv.metrics_port()

    # -- helpers

    def raw(self, port=None):
        """A connection from 127.0.0.1 (the trusted proxy), no greeting
        read: the test sends the header."""
        c = evtest.Conn(port or self.srv.port, greet=False)
        self.addCleanup(c.close)
        return c

    def via(self, header, port=None):
        c = self.raw(port)
        c.send(header)
        c.greeting = c.status()
        self.assertTrue(c.greeting.startswith("+OK"), c.greeting)
        return c

    def refused_metric(self):
        body = urllib.request.urlopen(
            "http://127.0.0.1:%d/metrics" % self.mport, timeout=10).read()
        m = re.search(rb'evpop3d_connections_refused_total\{reason='
                      rb'"proxy-header"\} (\d+)', body)
        return int(m.group(1))

    def assertHostile(self, data, error, close=False, port=None):
        """data from the proxy: closed with no greeting, logged (debug
        line per connection) with why, and counted."""
        before = self.refused_metric()
        n = len(self.srv.log())
        c = self.raw(port)
        if data:
            c.send(data)
        if close:
            c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(c.expect_closed(timeout=TIMEOUT_S + 5), [])
        self.assertTrue(self.srv.wait_log(
            r"^debug event=proxy-refused proxy=127\.0\.0\.1:%d error=%s$"
            % (c.sock.getsockname()[1], re.escape(error)), 5, n),
            "no proxy-refused error=%s" % error)
        self.assertEqual(self.refused_metric(), before + 1)

    # -- the real address

    def test_v1_real_address(self):
        mb = self.fresh()
        n = len(self.srv.log())
        c = self.via(v1("127.0.0.21", 40001))
        c.login(mb.user, mb.password)
        c.quit()
        self.assertTrue(self.srv.wait_log(
            r"event=login rip=127\.0\.0\.21:40001 user=\"%s\"" %
            re.escape(mb.user), 5, n))
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect rip=127\.0\.0\.21:40001 ", 5, n))
        self.assertTrue(self.srv.wait_log(
            r"^debug event=proxy-header rip=127\.0\.0\.21:40001 "
            r"proxy=127\.0\.0\.1:%d version=1$" % c.sock.getsockname()[1],
            5, n))

    def test_v1_tcp6(self):
        n = len(self.srv.log())
        c = self.via(v1("2001:db8::7", 40002, "2001:db8::1"))
        c.quit()
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect rip=\[2001:db8::7\]:40002 ", 5, n))

    def test_v2_tlvs_and_pipelining(self):
        """Header, TLVs and two commands in one segment: none lost."""
        mb = self.fresh()
        n = len(self.srv.log())
        hdr = v2("127.0.0.22", 40003, tlvs=tlv(0x01, b"pop3") +
                 tlv(0x05, b"unique-id") + tlv(0x04, b""))
        c = self.raw()
        c.send(hdr + ("USER %s\r\nPASS %s\r\nSTAT\r\n" %
                      (mb.user, mb.password)).encode())
        self.assertTrue(c.status().startswith("+OK"))	# greeting
        self.assertTrue(c.status().startswith("+OK"))	# USER
        self.assertTrue(c.status().startswith("+OK"))	# PASS
        self.assertEqual(c.status(), "+OK 0 0")
        c.quit()
        self.assertTrue(self.srv.wait_log(
            r"event=login rip=127\.0\.0\.22:40003 ", 5, n))

    def test_v2_inet6(self):
        n = len(self.srv.log())
        c = self.via(v2("2001:db8::8", 40004, "2001:db8::1"))
        c.quit()
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect rip=\[2001:db8::8\]:40004 ", 5, n))

    def test_local_and_unknown_keep_proxy_address(self):
        for hdr in (v2(local=True), b"PROXY UNKNOWN\r\n"):
            n = len(self.srv.log())
            c = self.via(hdr)
            port = c.sock.getsockname()[1]
            c.quit()
            self.assertTrue(self.srv.wait_log(
                r"event=disconnect rip=127\.0\.0\.1:%d " % port, 5, n))

    def test_penalty_follows_real_address(self):
        """Two clients behind the same proxy do not share a penalty."""
        mb = self.fresh()
        a = self.via(v2("127.0.0.30", 40010))
        for want in (FD, 2 * FD, 4 * FD):
            self.assertDelay(self.failed_login_time(a, mb.user), want)
        # The same real address through a new proxy connection: still
        # penalized...
        self.assertDelay(self.failed_login_time(
            self.via(v2("127.0.0.30", 40011)), mb.user), CAP)
        # ... another one behind the same proxy starts afresh.
        self.assertDelay(self.failed_login_time(
            self.via(v2("127.0.0.31", 40012)), mb.user), FD)

    def test_per_ip_limit_by_real_address(self):
        """max_connections_per_ip = 3 counts real clients, not the proxy."""
        n = len(self.srv.log())
        held = [self.via(v1("127.0.0.40", 41000 + i)) for i in range(3)]
        c = self.raw()
        c.send(v1("127.0.0.40", 41003))
        self.assertEqual(c.expect_closed(), [
            b"-ERR [SYS/TEMP] Too many connections from your address, "
            b"try again later."])
        self.assertTrue(self.srv.wait_log(
            r"event=refused reason=max-connections-per-ip "
            r"rip=127\.0\.0\.40 count=1", 5, n))
        # Other clients behind the same proxy are not affected.
        more = [self.via(v1("127.0.0.41", 41010 + i)) for i in range(3)]
        for x in held + more:
            x.quit()

    def test_plaintext_policy_by_real_address(self):
        """A non-loopback client behind a loopback proxy: no plaintext
        login until STLS (the header then STLS in one segment)."""
        mb = self.fresh()
        n = len(self.srv.log())
        c = self.via(v2("192.0.2.7", 40020))
        self.assertNotIn("<", c.greeting)		# no APOP timestamp
        self.assertEqual(c.cmd("USER " + mb.user), REFUSED)
        c.close()
        c = tlstest.TLSConn(self.srv.port, greet=False)
        self.addCleanup(c.close)
        c.send(v2("192.0.2.7", 40021) + b"STLS\r\n")
        self.assertTrue(c.status().startswith("+OK"))	# greeting
        self.assertTrue(c.status().startswith("+OK"))	# STLS
        c.starttls(self.ctx())
        c.login(mb.user, mb.password)
        c.quit()
        self.assertTrue(self.srv.wait_log(
            r"event=login rip=192\.0\.2\.7:40021 user=\"%s\"" %
            re.escape(mb.user), 5, n))

    def test_implicit_tls_hello_in_header_segment(self):
        """listen_tls: the header, then the handshake; the ClientHello
        rides in the header's segment."""
        mb = self.fresh()
        n = len(self.srv.log())
        for hdr, rip in ((v2("192.0.2.8", 40030), r"192\.0\.2\.8:40030"),
                         (v1("192.0.2.9", 40031), r"192\.0\.2\.9:40031")):
            s = socket.create_connection(("127.0.0.1", self.tls_port),
                                         timeout=evtest.TIMEOUT)
            self.addCleanup(s.close)
            t = proxytest.BioTLS(s, self.ctx(), hdr)
            self.assertTrue(t.readline().startswith("+OK"))
            # Under TLS: plaintext login allowed for a remote client.
            self.assertTrue(t.cmd("USER " + mb.user).startswith("+OK"))
            self.assertTrue(t.cmd("PASS " + mb.password).startswith("+OK"))
            self.assertTrue(t.cmd("QUIT").startswith("+OK"))
            self.assertTrue(self.srv.wait_log(
                r"event=login rip=%s user=" % rip, 5, n))

    def test_admin_who_shows_real_address(self):
        mb = self.fresh()
        c = self.via(v1("127.0.0.23", 40005))
        c.login(mb.user, mb.password)
        p = subprocess.run([evtest.BIN, "who", "-s",
                            self.srv.config["control"]["socket"]],
                           capture_output=True, text=True,
                           timeout=60 * evtest.SCALE)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("%s 1 (127.0.0.23)" % mb.user, p.stdout.splitlines())
        c.quit()

    # -- hostile headers

    def test_hostile_bad_signature(self):
        self.assertHostile(b"USER alice\r\n", "bad-signature")
        self.assertHostile(b"GET / HTTP/1.0\r\n\r\n", "bad-signature")

    def test_hostile_tls_without_header(self):
        """A client reaching the TLS listener without the proxy's header."""
        self.assertHostile(b"\x16\x03\x01\x02\x00\x01", "bad-signature",
                           port=self.tls_port)

    def test_hostile_fields(self):
        self.assertHostile(b"PROXY TCP4 1.2.3.4 1.2.3.4 99999 1\r\n",
                           "bad-v1-address")
        self.assertHostile(b"PROXY TCP9 x\r\n", "bad-v1-protocol")
        self.assertHostile(b"PROXY TCP4 1.2.3.4\n", "bad-v1")
        self.assertHostile(proxytest.SIG2 + b"\x31\x11\x00\x0c" + b"\0" * 12,
                           "bad-v2-version")
        self.assertHostile(proxytest.SIG2 + b"\x21\x31\x00\x00",
                           "unsupported-family")
        self.assertHostile(v2("127.0.0.50", 1, tlvs=b"\x01\x00\x09ab"),
                           "bad-v2-tlv")

    def test_hostile_oversized(self):
        self.assertHostile(proxytest.SIG2 + b"\x21\x11\xff\xff",
                           "too-long")
        self.assertHostile(b"PROXY UNKNOWN " + b"x" * 200, "too-long")

    def test_hostile_truncated(self):
        self.assertHostile(v2("127.0.0.51", 2)[:20], "truncated",
                           close=True)
        self.assertHostile(b"PROXY TCP4 1.2.3.4 ", "truncated", close=True)

    def test_hostile_slow(self):
        """Part of a header, then nothing: closed at the deadline."""
        t = time.monotonic()
        self.assertHostile(b"PROXY TCP4 1.2.3.4 ", "timeout")
        self.assertGreaterEqual(time.monotonic() - t, TIMEOUT_S - COARSE)
        self.assertLess(time.monotonic() - t, TIMEOUT_S + SLACK + 1)
        # Byte by byte, each in time, the whole too slow: still the
        # deadline from connect, not from the last octet.
        before = self.refused_metric()
        c = self.raw()
        hdr = v1("127.0.0.52", 40040)
        t = time.monotonic()
        try:
            for b in hdr:
                c.send(bytes([b]))
                time.sleep(TIMEOUT_S * 2 / len(hdr))
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.assertEqual(c.expect_closed(timeout=TIMEOUT_S + 5), [])
        self.assertEqual(self.refused_metric(), before + 1)

    def test_hostile_silent(self):
        self.assertHostile(b"", "timeout")

    def test_refusal_warning_rate_limited(self):
        """The warning names the proxy and the error, at most once a
        second, with the count."""
        n = len(self.srv.log())
        for _ in range(5):
            c = self.raw()
            c.send(b"junk\r\n")
            c.expect_closed()
        self.assertTrue(self.srv.wait_log(
            r"^warn event=refused reason=proxy-header proxy=127\.0\.0\.1 "
            r"count=\d+ error=bad-signature$", 5, n))
        lines = [l for l in self.srv.log()[n:]
                 if "reason=proxy-header" in l and l.startswith("warn")]
        self.assertLessEqual(len(lines), 2)

    # -- not from the proxy

    def test_header_from_elsewhere_is_a_bad_command(self):
        """127.0.0.2 is no trusted proxy: its header is POP3 input, never
        believed (the v1 line is an unknown command; v2's signature holds
        a QUIT by design)."""
        mb = self.fresh()
        n = len(self.srv.log())
        c = SrcConn(self.srv.port, "127.0.0.2")
        self.addCleanup(c.close)
        self.assertTrue(c.cmd(v1("127.0.0.99", 1).decode()[:-2])
                        .startswith("-ERR"))
        c.login(mb.user, mb.password)
        c.quit()
        self.assertTrue(self.srv.wait_log(
            r"event=login rip=127\.0\.0\.2:\d+ user=", 5, n))
        self.assertFalse([l for l in self.srv.log()[n:]
                          if "127.0.0.99" in l])
        c = SrcConn(self.srv.port, "127.0.0.2")
        self.addCleanup(c.close)
        c.send(v2("127.0.0.98", 1))
        c.expect_closed()
        self.assertFalse([l for l in self.srv.log()[n:]
                          if "127.0.0.98" in l])



class Reload(evtest.ServerTestCase):
    """SIGHUP turns proxy_protocol_from on and off for new connections;
    a session made before keeps its address."""

    CONFIG = {"log": {"debug": "yes"}}

    def hup(self):
        n = len(self.srv.log())
        self.srv.write_config()
        self.srv.proc.send_signal(signal.SIGHUP)
        m = self.srv.wait_log(r"event=reload result=(ok|failed)", start=n)
        self.assertIsNotNone(m, self.srv.log()[n:])
        self.assertEqual(m.group(1), "ok", self.srv.log()[n:])

    def test_on_and_off(self):
        before = self.connect()			# no header: plain POP3
        self.srv.config["server"]["proxy_protocol_from"] = "127.0.0.0/8"
        self.hup()
        n = len(self.srv.log())
        c = evtest.Conn(self.srv.port, greet=False)
        self.addCleanup(c.close)
        c.send(v2("192.0.2.40", 40050))
        self.assertTrue(c.status().startswith("+OK"))
        c.quit()
        self.assertTrue(self.srv.wait_log(
            r"event=disconnect rip=192\.0\.2\.40:40050 ", 5, n))
        # Without a header now: no greeting, closed at its first octet.
        c = evtest.Conn(self.srv.port, greet=False)
        self.addCleanup(c.close)
        c.send(b"CAPA\r\n")
        self.assertEqual(c.expect_closed(), [])
        before.ok("CAPA")			# made before: untouched
        before.multi()
        self.srv.config["server"]["proxy_protocol_from"] = ""
        self.hup()
        self.connect().quit()


if __name__ == "__main__":
    evtest.main()
