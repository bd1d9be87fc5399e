"""
The plaintext policy (issue 11; RFC 2595 section 2.3, RFC 8314): [auth]
plaintext = localhost (the default), allowed or never.

A client that is not on loopback is needed: the daemon runs in a network
namespace of its own (`unshare -n`) where lo also has 10.99.0.1, which
is not a loopback address, and this process's thread joins that namespace
(setns) for the class, so its clients connect from 10.99.0.1 or from
127.0.0.1 as they choose. Without the right to make a namespace the
tests are skipped, with the reason.
"""

import base64
import ctypes
import os
import re
import subprocess
import unittest

import evtest
import tlstest

CLONE_NEWNET = 0x40000000
ADDR = "10.99.0.1"
REFUSED = ("-ERR [AUTH] Plaintext authentication disallowed on non-secure "
           "connections.")
NETNS = ('ip link set lo up && ip addr add %s/32 dev lo && exec "$0" "$@"'
         % ADDR)


def netns_unavailable():
    try:
        p = subprocess.run(["unshare", "-n", "sh", "-c",
                            "ip link set lo up"], capture_output=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unshare -n: %s" % e
    if p.returncode != 0:
        return "unshare -n not permitted here: %s" % p.stderr.decode().strip()
    return None


def setns(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (path, os.strerror(e)))
    finally:
        os.close(fd)


class NetnsCase(tlstest.TLSTestCase):
    """A TLS daemon in its own network namespace; the test thread in it."""

    POLICY = "localhost"

    @classmethod
    def setUpClass(cls):
        why = netns_unavailable()
        if why:
            raise unittest.SkipTest(why)
        cls.CONFIG = tlstest.merge(tlstest.TLS_CONFIG, {
            "server": {"listen": "%s:0, 127.0.0.1:0" % ADDR,
                       "listen_tls": "%s:0" % ADDR},
            "auth": {"plaintext": cls.POLICY, "apop": "yes"}})
        cls.srv = evtest.Server(config=cls.CONFIG, pool=cls.POOL)
        cls.addClassCleanup(cls.srv.cleanup)
        tlstest.make_certs(cls.srv.dir)
        cls.srv.prefix = ["unshare", "-n", "sh", "-c", NETNS]
        cls.home_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
        cls.srv.start()
        setns("/proc/%d/ns/net" % cls.srv.pid)
        cls.addClassCleanup(cls.leave_ns)
        cls.tls_port = tlstest.tls_port(cls.srv)

    @classmethod
    def leave_ns(cls):
        setns("/proc/self/fd/%d" % cls.home_ns)
        os.close(cls.home_ns)

    def remote(self, **kw):
        c = tlstest.TLSConn(self.srv.port_for(ADDR), host=ADDR, **kw)
        self.addCleanup(c.close)
        return c

    def local(self, **kw):
        c = tlstest.TLSConn(self.srv.port_for("127.0.0.1"), **kw)
        self.addCleanup(c.close)
        return c

    def capa(self, c):
        c.ok("CAPA")
        return [l.decode() for l in c.multi()]

    def assertRefused(self, c, user, password):
        plain = base64.b64encode(b"\0" + user.encode() + b"\0" +
                                 password.encode()).decode()
        self.assertEqual(c.cmd("USER " + user), REFUSED)
        self.assertEqual(c.cmd("PASS " + password), REFUSED)
        self.assertEqual(c.cmd("AUTH PLAIN " + plain), REFUSED)
        self.assertEqual(c.cmd("AUTH LOGIN"), REFUSED)

    def assertOpen(self, c, user, password):
        caps = self.capa(c)
        self.assertIn("USER", caps)
        self.assertIn("SASL PLAIN LOGIN", caps)
        c.login(user, password)
        c.quit()


class Localhost(NetnsCase):
    """The default: clear-text logins from loopback only, until STLS."""

    def test_remote_refused_until_stls(self):
        mb = self.fresh()
        n = len(self.srv.log())
        c = self.remote()
        self.assertNotIn("<", c.greeting)	# no APOP timestamp
        caps = self.capa(c)
        self.assertIn("STLS", caps)
        self.assertNotIn("USER", caps)
        self.assertFalse([l for l in caps if l.startswith("SASL")], caps)
        self.assertRefused(c, mb.user, mb.password)
        # Bad commands, not failed logins: no password was checked.
        self.assertFalse(self.srv.wait_log(r"event=auth-failed", 0.2, n))
        c.ok("STLS")
        c.starttls(self.ctx())
        caps = self.capa(c)
        self.assertNotIn("STLS", caps)
        self.assertOpen(c, mb.user, mb.password)
        self.assertTrue(self.srv.wait_log(
            r"event=login rip=10\.99\.0\.1:\d+ user=\"%s\"" %
            re.escape(mb.user), start=n))

    def test_apop_refused(self):
        mb = self.fresh()
        c = self.remote()
        self.assertEqual(c.cmd("APOP %s %s" % (mb.user, "0" * 32)), REFUSED)

    def test_refusals_count_as_bad_commands(self):
        c = self.remote()
        for i in range(4):
            self.assertEqual(c.cmd("USER x%d" % i), REFUSED)
        # The fifth bad command before login closes (client.c).
        self.assertEqual(c.cmd("USER x5"), REFUSED)
        c.expect_closed()

    def test_remote_implicit_tls(self):
        mb = self.fresh()
        c = tlstest.TLSConn(self.tls_port, host=ADDR, implicit=True,
                            ctx=self.ctx())
        self.addCleanup(c.close)
        self.assertIn("<", c.greeting)		# APOP under TLS
        self.assertOpen(c, mb.user, mb.password)

    def test_local_allowed(self):
        mb = self.fresh()
        c = self.local()
        self.assertIn("<", c.greeting)
        caps = self.capa(c)
        self.assertIn("STLS", caps)
        self.assertOpen(c, mb.user, mb.password)


class Never(NetnsCase):
    """plaintext = never: only under TLS, even from loopback."""

    POLICY = "never"

    def test_local_refused_until_stls(self):
        mb = self.fresh()
        c = self.local()
        self.assertNotIn("<", c.greeting)
        caps = self.capa(c)
        self.assertNotIn("USER", caps)
        self.assertIn("STLS", caps)
        self.assertRefused(c, mb.user, mb.password)
        c.ok("STLS")
        c.starttls(self.ctx())
        self.assertOpen(c, mb.user, mb.password)

    def test_remote_refused(self):
        mb = self.fresh()
        self.assertRefused(self.remote(), mb.user, mb.password)


class Allowed(NetnsCase):
    """plaintext = allowed: clear-text logins from anywhere."""

    POLICY = "allowed"

    def test_remote_allowed(self):
        mb = self.fresh()
        c = self.remote()
        self.assertIn("<", c.greeting)
        caps = self.capa(c)
        self.assertIn("STLS", caps)
        self.assertOpen(c, mb.user, mb.password)


class StartupWarning(unittest.TestCase):
    """plaintext = localhost without [tls] on a listener other hosts can
    reach: nobody there can log in, and the start says so."""

    def daemon(self, config, netns):
        srv = evtest.Server(config=config, pool=1)
        self.addCleanup(srv.cleanup)
        if netns:
            srv.prefix = ["unshare", "-n", "sh", "-c", NETNS]
        srv.start()
        # Warnings come before the ready line start() waits for.
        return "\n".join(srv.log())

    def test_remote_listener_warned(self):
        why = netns_unavailable()
        if why:
            self.skipTest(why)
        log = self.daemon({"server": {"listen": "%s:0" % ADDR}}, True)
        self.assertRegex(log, r"(?m)^warn event=plaintext-local-only "
                         r"addr=10\.99\.0\.1:0 note=")
        log = self.daemon({"server": {"listen": "%s:0" % ADDR},
                           "auth": {"plaintext": "allowed"}}, True)
        self.assertNotIn("plaintext-local-only", log)

    def test_loopback_listener_not_warned(self):
        log = self.daemon({}, False)
        self.assertIn("event=ready", log)
        self.assertNotIn("plaintext-local-only", log)


if __name__ == "__main__":
    evtest.main()
