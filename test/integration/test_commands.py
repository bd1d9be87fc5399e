"""
TRANSACTION-state commands (RFC 1939 sections 5 and 7, RFC 1460 LAST,
RFC 2449 CAPA) and the generic command rules of section 3.
"""

import os
import re

import evtest
from evtest import wire, parse_list

M1 = (b"From: alice@example.com\nTo: bob@example.com\nSubject: one\n\n"
      b"Hello Bob,\n.a line with a leading dot\n..two dots\n.\n\nbye\n")
M2 = (b"Subject: two\r\nX-Header: crlf\r\n\r\nline 1\r\nline 2\r\n"
      b"line 3 without a newline")
M3 = (b"Subject: three\n\nmixed\r\nendings\nhere\r\n")


class Commands(evtest.ServerTestCase):

    def maildrop(self):
        """A fresh user with M1 (new/), M2 (new/), M3 (cur/, seen)."""
        mb = self.fresh()
        mb.uid = [mb.add(M1), mb.add(M2), mb.add(M3, folder="cur", flags="S")]
        mb.msgs = [M1, M2, M3]
        return mb

    # -- greeting, CAPA

    def test_greeting(self):
        c = self.connect()
        self.assertTrue(c.greeting.startswith("+OK"), c.greeting)
        c.quit()

    def check_capa(self, lines, after_login):
        caps = [l.decode() for l in lines]
        upper = [l.upper() for l in caps]
        for tag in ("TOP", "USER", "UIDL", "PIPELINING", "RESP-CODES",
                    "AUTH-RESP-CODE"):
            self.assertIn(tag, upper, caps)
        sasl = [l.split()[1:] for l in upper if l.split()[0] == "SASL"]
        self.assertEqual(len(sasl), 1, caps)
        self.assertIn("PLAIN", sasl[0], caps)
        self.assertTrue(any(re.fullmatch(r"EXPIRE (NEVER|\d+)( USER)?", l)
                            for l in upper), caps)
        self.assertTrue(any(re.fullmatch(r"LOGIN-DELAY \d+( USER)?", l)
                            for l in upper), caps)
        impl = [l for l in upper if l.split()[0] == "IMPLEMENTATION"]
        if after_login:
            self.assertEqual(len(impl), 1, caps)
        else:
            self.assertEqual(impl, [], "IMPLEMENTATION before login: %r" % caps)
        return caps

    def test_capa_both_states(self):
        mb = self.maildrop()
        c = self.connect()
        _, lines = c.ok_multi("CAPA")
        before = self.check_capa(lines, after_login=False)
        c.login(mb.user, mb.password)
        _, lines = c.ok_multi("CAPA")
        after = self.check_capa(lines, after_login=True)
        # RFC 2449 section 5: what AUTHORIZATION offers is listed in both.
        for cap in before:
            self.assertIn(cap.upper(), [a.upper() for a in after])
        c.quit()

    # -- STAT, LIST, UIDL, RETR, TOP

    def test_stat_list_sizes_crlf(self):
        mb = self.maildrop()
        sizes = [len(wire(m)) for m in mb.msgs]
        c = self.login(mb)
        self.assertEqual(c.ok("STAT"), "+OK 3 %d" % sum(sizes))
        _, lines = c.ok_multi("LIST")
        self.assertEqual(parse_list(lines), {1: sizes[0], 2: sizes[1],
                                             3: sizes[2]})
        for i, s in enumerate(sizes, 1):
            self.assertEqual(c.ok("LIST %d" % i).split()[:3],
                             ["+OK", str(i), str(s)])
        c.quit()

    def test_uidl(self):
        mb = self.maildrop()
        c = self.login(mb)
        _, lines = c.ok_multi("UIDL")
        got = dict(l.decode().split() for l in lines)
        self.assertEqual(got, {"1": mb.uid[0], "2": mb.uid[1],
                               "3": mb.uid[2]})
        for i, u in enumerate(mb.uid, 1):
            self.assertEqual(c.ok("UIDL %d" % i).split()[1:3], [str(i), u])
        for u in got.values():
            self.assertTrue(re.fullmatch(r"[\x21-\x7e]{1,70}", u), u)
        c.quit()
        # Persistent across sessions (RFC 1939 section 7).
        c = self.login(mb)
        _, lines2 = c.ok_multi("UIDL")
        self.assertEqual(lines2, lines)
        c.quit()

    def test_retr_exact_bytes_and_stuffing(self):
        mb = self.maildrop()
        c = self.login(mb)
        for i, m in enumerate(mb.msgs, 1):
            c.send("RETR %d\r\n" % i)
            st = c.status()
            self.assertTrue(st.startswith("+OK"), st)
            raw = c.multi_raw()
            self.assertEqual(raw, evtest.stuff(wire(m)), "message %d" % i)
        c.ok("NOOP")
        c.quit()

    def test_retr_unstuffed_equals_file(self):
        mb = self.maildrop()
        c = self.login(mb)
        for i, m in enumerate(mb.msgs, 1):
            self.assertEqual(c.retr(i), wire(m))
        c.quit()

    def test_odd_contents(self):
        # Sizes agree with RETR for empty, binary, CR-only, dot-only and
        # unterminated contents; a lone CR is an ordinary byte.
        msgs = [b"", b"Subject: bin\n\n\x00\x01\xff\xfe lone\rcr\nend\r",
                b"x" * 300000, b"\n\n\n", b".", b"\r\n.\r\n", b"a\r\r\nb\n",
                b"..\n...\n. \n"]
        mb = self.fresh()
        for m in msgs:
            mb.add(m)
        c = self.login(mb)
        _, lines = c.ok_multi("LIST")
        self.assertEqual(parse_list(lines),
                         {i: len(wire(m)) for i, m in enumerate(msgs, 1)})
        for i, m in enumerate(msgs, 1):
            with self.subTest(msg=m[:20]):
                c.send("RETR %d\r\n" % i)
                self.assertOK(c.status())
                self.assertEqual(c.multi_raw(), evtest.stuff(wire(m)))
        c.quit()

    def test_message_order(self):
        # Ordered by the numeric leading timestamp, then by name; the folder
        # (new/ or cur/) does not matter.
        mb = self.fresh()
        mb.add(b"d\n", name="1700000010.A.host")
        mb.add(b"a\n", name="1700000002.B.host", folder="cur", flags="S")
        mb.add(b"c\n", name="1700000005.C.host")
        mb.add(b"b\n", name="1700000005.B.host", folder="cur", flags="")
        mb.add(b"0\n", name="999999999.Z.host")
        mb.add(b"tmp\n", folder="tmp")		# not a message
        c = self.login(mb)
        _, lines = c.ok_multi("UIDL")
        self.assertEqual([l.decode().split()[1] for l in lines],
                         ["999999999.Z.host", "1700000002.B.host",
                          "1700000005.B.host", "1700000005.C.host",
                          "1700000010.A.host"])
        self.assertEqual(c.retr(3), b"b\r\n")
        c.quit()

    def test_uidl_long_and_odd_names(self):
        # RFC 1939 section 7: 1..70 characters in 0x21..0x7E, unique and
        # stable, whatever the Maildir file names look like.
        mb = self.fresh()
        names = ["1700000001.M1P1." + "h" * 100 + ",S=2,W=4",
                 "1700000002.M2P2." + "h" * 100 + ",S=2,W=4",
                 "1700000003.M3P3.a b",
                 "1700000004.M4P4.h\u00e9st"]
        for i, n in enumerate(names):
            mb.add(b"%d\n" % i, name=n)
        got = []
        for _ in range(2):
            c = self.login(mb)
            _, lines = c.ok_multi("UIDL")
            got.append([l.split(b" ", 1)[1] for l in lines])
            self.assertEqual(len(lines), 4)
            for i in range(4):
                self.assertEqual(c.retr(i + 1), b"%d\r\n" % i)
                u = c.ok("UIDL %d" % (i + 1)).split(" ")[2]
                self.assertEqual(u.encode("latin-1"), got[-1][i])
            c.quit()
        for u in got[0]:
            self.assertRegex(u, rb"^[\x21-\x7e]{1,70}$")
        self.assertEqual(len(set(got[0])), 4, got[0])
        self.assertEqual(got[0], got[1], "UIDLs changed between sessions")

    def test_uidl_stable_when_moved_to_cur(self):
        # Another MUA moves new/X to cur/X:2,S: same UIDL.
        mb = self.maildrop()
        c = self.login(mb)
        _, before = c.ok_multi("UIDL")
        c.quit()
        for u, path in mb.files().items():
            if "/new/" in path:
                os.rename(path, os.path.join(mb.maildir, "cur", u + ":2,S"))
        c = self.login(mb)
        _, after = c.ok_multi("UIDL")
        c.quit()
        self.assertEqual(before, after)

    def test_ignores_non_messages(self):
        mb = self.fresh()
        u = mb.add(b"real\n")
        os.mkdir(os.path.join(mb.maildir, "new", "1700000099.subdir"))
        for sub in ("new", "cur"):
            with open(os.path.join(mb.maildir, sub, ".hidden"), "wb") as f:
                f.write(b"not a message\n")
        mb.add(b"in tmp\n", folder="tmp")
        c = self.login(mb)
        self.assertEqual(c.ok("STAT"), "+OK 1 6")
        self.assertEqual(c.ok("UIDL 1").split()[2], u)
        c.quit()

    def test_top(self):
        mb = self.maildrop()
        c = self.login(mb)
        w = wire(M1).split(b"\r\n")[:-1]
        blank = w.index(b"")
        headers, body = w[:blank], w[blank + 1:]
        for n in (0, 1, 3, len(body), len(body) + 5, 1000000):
            _, lines = c.ok_multi("TOP 1 %d" % n)
            self.assertEqual(lines, headers + [b""] + body[:n], "TOP 1 %d" % n)
        # No trailing newline in the file: TOP 2 big == RETR 2.
        _, lines = c.ok_multi("TOP 2 100")
        self.assertEqual(b"".join(l + b"\r\n" for l in lines), wire(M2))
        c.quit()

    def test_empty_maildrop(self):
        mb = self.fresh()
        c = self.login(mb)
        self.assertEqual(c.ok("STAT"), "+OK 0 0")
        _, lines = c.ok_multi("LIST")
        self.assertEqual(lines, [])
        _, lines = c.ok_multi("UIDL")
        self.assertEqual(lines, [])
        c.err("RETR 1")
        c.err("LIST 1")
        c.ok("NOOP")
        c.quit()

    def test_noop_and_case_insensitive(self):
        mb = self.maildrop()
        c = self.connect()
        c.ok("uSeR " + mb.user)
        c.ok("pass " + mb.password)
        c.ok("noop")
        c.ok("NoOp")
        self.assertEqual(c.ok("stat").split()[1], "3")
        _, lines = c.ok_multi("list")
        self.assertEqual(len(lines), 3)
        self.assertEqual(c.ok("Last"), "+OK 0")
        self.assertEqual(c.cmd("quit")[:3], "+OK")
        c.expect_closed()

    def test_bare_lf(self):
        mb = self.maildrop()
        c = self.connect()
        c.send("USER %s\nPASS %s\n" % (mb.user, mb.password))
        self.assertOK(c.status())
        self.assertOK(c.status())
        c.send("STAT\n")
        self.assertEqual(c.status().split()[1], "3")
        c.send("RETR 2\n")
        self.assertOK(c.status())
        self.assertEqual(b"".join(l + b"\r\n" for l in c.multi()), wire(M2))
        c.send("QUIT\n")
        self.assertOK(c.status())
        c.expect_closed()

    # -- DELE, RSET

    def test_dele_hides_message(self):
        mb = self.maildrop()
        sizes = [len(wire(m)) for m in mb.msgs]
        c = self.login(mb)
        self.assertOK(c.ok("DELE 2"))
        c.err("DELE 2")
        self.assertEqual(c.ok("STAT"), "+OK 2 %d" % (sizes[0] + sizes[2]))
        _, lines = c.ok_multi("LIST")
        self.assertEqual(parse_list(lines), {1: sizes[0], 3: sizes[2]})
        _, lines = c.ok_multi("UIDL")
        self.assertEqual(dict(l.decode().split() for l in lines),
                         {"1": mb.uid[0], "3": mb.uid[2]})
        for cmd in ("RETR 2", "TOP 2 0", "LIST 2", "UIDL 2", "DELE 2"):
            c.err(cmd)
            c.ok("NOOP")
        # Numbers do not shift.
        self.assertEqual(c.retr(3), wire(M3))
        c.ok("RSET")
        self.assertEqual(c.ok("STAT"), "+OK 3 %d" % sum(sizes))
        self.assertEqual(c.retr(2), wire(M2))
        c.ok("DELE 2")	# deletable again after RSET
        c.ok("RSET")
        c.quit()
        self.assertEqual(sorted(mb.uidls()), sorted(mb.uid))

    # -- LAST (RFC 1460)

    def test_last_retr_and_rset(self):
        mb = self.fresh()
        for i in range(4):
            mb.add(b"Subject: %d\n\nbody\n" % i)
        c = self.login(mb)
        self.assertEqual(c.ok("LAST"), "+OK 0")
        c.retr(2)
        self.assertEqual(c.ok("LAST"), "+OK 2")
        c.retr(1)
        self.assertEqual(c.ok("LAST"), "+OK 2")
        c.retr(3)
        self.assertEqual(c.ok("LAST"), "+OK 3")
        c.ok("RSET")
        self.assertEqual(c.ok("LAST"), "+OK 0")
        c.quit()

    # -- bad arguments, unknown commands, wrong state

    def test_bad_message_numbers(self):
        mb = self.maildrop()
        c = self.login(mb)
        bad = ["0", "-1", "99999999999999999999", "abc", "4", "1abc", "",
               "18446744073709551617", "4294967297"]
        for cmd in ("RETR", "LIST", "DELE", "UIDL", "TOP"):
            for arg in bad:
                if arg == "" and cmd in ("LIST", "UIDL"):
                    continue	# no argument: the multi-line form
                line = cmd + (" " + arg if arg else "")
                if cmd == "TOP" and arg:
                    line += " 0"
                c.err(line)
                c.ok("NOOP")	# the session survives
        for line in ("TOP 1", "TOP 1 -1", "TOP 1 abc", "TOP 1 0 0",
                     "RETR 1 2", "DELE 1 1", "STAT 1", "NOOP x"):
            c.err(line)
            c.ok("NOOP")
        self.assertEqual(c.ok("STAT").split()[1], "3")
        c.quit()
        self.assertEqual(len(mb.uidls()), 3)

    def test_unknown_vs_wrong_state(self):
        mb = self.maildrop()
        c = self.connect()
        unknown = c.err("XYZZY")
        wrong = c.err("STAT")
        self.assertNotEqual(unknown, wrong,
                            "unknown command and wrong state: same text")
        c.err("RETR 1")
        c.err("PASS nobody-sent-user")
        c.login(mb.user, mb.password)
        c.err("USER " + mb.user)
        c.err("PASS " + mb.password)
        c.err("APOP %s 0123456789abcdef0123456789abcdef" % mb.user)
        c.err("AUTH PLAIN " + evtest.plain_b64(mb.user, mb.password))
        c.err("XYZZY")
        c.err("RETRX 1")
        c.err("RE")
        c.ok("NOOP")
        c.quit()

    def test_quit_in_authorization(self):
        c = self.connect()
        self.assertOK(c.cmd("QUIT"))
        c.expect_closed()


class BigListing(evtest.ServerTestCase):
    """LIST and UIDL of 7,000 messages: more than one refill of the
    listing (64 KiB) and many of its line buffer (4 KiB); every line
    exact, deleted messages skipped, and "." last."""
    POOL = 0
    N = 7000

    @classmethod
    def setup_users(cls, srv):
        cls.mb = srv.add_user("many@example.com", "many-user-pw")
        cls.sizes, cls.uids = [], []
        for i in range(cls.N):
            data = b"Subject: %d\n\n%s\n" % (i, b"x" * (i % 300))
            cls.sizes.append(len(wire(data)))
            cls.uids.append(cls.mb.add(data))

    def test_list_and_uidl(self):
        c = self.login(self.mb)
        gone = {1, 2, 999, 4096, self.N}
        for n in sorted(gone):
            c.ok("DELE %d" % n)
        _, lines = c.ok_multi("LIST")
        self.assertEqual(parse_list(lines),
                         {i + 1: s for i, s in enumerate(self.sizes)
                          if i + 1 not in gone})
        _, lines = c.ok_multi("UIDL")
        self.assertEqual([l.decode() for l in lines],
                         ["%d %s" % (i + 1, u) for i, u in
                          enumerate(self.uids) if i + 1 not in gone])
        c.ok("RSET")
        _, lines = c.ok_multi("UIDL")
        self.assertEqual(len(lines), self.N)
        c.quit()


class LastDisabled(evtest.ServerTestCase):
    CONFIG = {"pop3": {"enable_last": "no"}}
    POOL = 2

    def test_last_is_unknown(self):
        mb = self.fresh()
        mb.add(b"Subject: x\n\ny\n")
        c = self.login(mb)
        c.err("LAST")
        c.ok("NOOP")
        c.quit()


if __name__ == "__main__":
    evtest.main()
