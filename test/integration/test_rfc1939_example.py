"""
The example POP3 session of RFC 1939 section 10, replayed against evpop3d.

    S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>
    C: APOP mrose c4c9334bac560ecc979e58001b3e22fb
    S: +OK mrose's maildrop has 2 messages (320 octets)
    C: STAT                       S: +OK 2 320
    C: LIST                       S: +OK 2 messages (320 octets) / 1 120 / 2 200 / .
    C: RETR 1 ... DELE 1 ... RETR 2 ... DELE 2 ... QUIT
    S: +OK dewey POP3 server signing off (maildrop empty)

The server's timestamp differs, so the digest is computed from it; the
digest of the RFC's own timestamp is checked first to pin the algorithm.
"""

import re

import evtest
from evtest import wire, apop_digest


def message(size, subject):
    """An LF-ended message whose wire size (CRLF) is exactly size octets."""
    head = ("From: mrose@dbc.mtview.ca.us\nTo: mrose@dbc.mtview.ca.us\n"
            "Subject: %s\n\n" % subject).encode()
    body = b".starts with a dot\n"
    # Pad the last body line so the CRLF form is exactly size octets.
    fixed = len(wire(head + body + b"\n"))
    pad = size - fixed
    assert pad > 0
    data = head + body + b"x" * pad + b"\n"
    assert len(wire(data)) == size, len(wire(data))
    return data


class Rfc1939Example(evtest.ServerTestCase):
    CONFIG = {"auth": {"apop": "yes"}}
    POOL = 0

    @classmethod
    def setup_users(cls, srv):
        cls.mb = srv.add_user("mrose", "tanstaaf")
        cls.m1 = message(120, "one")
        cls.m2 = message(200, "two")
        cls.mb.add(cls.m1)
        cls.mb.add(cls.m2)

    def test_digest_of_rfc_example(self):
        self.assertEqual(apop_digest("<1896.697170952@dbc.mtview.ca.us>",
                                     "tanstaaf"),
                         "c4c9334bac560ecc979e58001b3e22fb")

    def test_session(self):
        mb = self.mb
        c = self.connect()
        self.assertTrue(c.greeting.startswith("+OK "), c.greeting)
        m = re.search(r"<[^<>]*@test\.example>", c.greeting)
        self.assertIsNotNone(m, "no APOP timestamp in %r" % c.greeting)
        digest = apop_digest(m.group(0), "tanstaaf")
        self.assertOK(c.cmd("APOP mrose " + digest))
        self.assertEqual(c.ok("STAT"), "+OK 2 320")
        _, lines = c.ok_multi("LIST")
        self.assertEqual(lines, [b"1 120", b"2 200"])
        self.assertEqual(c.retr(1), wire(self.m1))
        self.assertOK(c.cmd("DELE 1"))
        self.assertEqual(c.retr(2), wire(self.m2))
        self.assertOK(c.cmd("DELE 2"))
        self.assertEqual(c.ok("STAT"), "+OK 0 0")
        self.assertOK(c.cmd("QUIT"))
        c.expect_closed()
        self.assertEqual(mb.files(), {}, "maildrop not empty after QUIT")
        # And a new session agrees.
        c = self.connect()
        m = re.search(r"<[^<>]*@test\.example>", c.greeting)
        c.ok("APOP mrose " + apop_digest(m.group(0), "tanstaaf"))
        self.assertEqual(c.ok("STAT"), "+OK 0 0")
        c.quit()


if __name__ == "__main__":
    evtest.main()
