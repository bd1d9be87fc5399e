"""
mbox users next to Maildir users in one server, through real clients:
python's poplib, curl and fetchmail (issue 4, "Tests").

The global driver stays maildir; each mbox user names its file in the
passwd-file extra field (userdb_mail=mbox:PATH, see store_locate()). The
fixtures are written by hand with what a client must see next to what is
stored (the mbox driver's rules: src/store/mbox/mbox_parse.h, uidl.c):

 - a message is what follows its "From " line up to the next one, minus
   the blank line writers put before the separator;
 - a "From " line is a separator only if it carries an asctime date;
 - body lines ^>+From  lose one '>' (mboxrd);
 - Status, X-Status, X-UID, X-IMAPbase, X-IMAP, X-Keywords headers (any
   case, with continuation lines) are not sent; Content-Length is sent
   but never trusted;
 - the UW-IMAP/Dovecot pseudo message is hidden and always kept;
 - a valid X-UIDL header is the UIDL; identical messages get distinct ids.
"""

import os
import poplib
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import evtest
import mboxdeliver
from evtest import wire

CURL = shutil.which("curl")
FETCHMAIL = shutil.which("fetchmail")

# poplib refuses lines over 2048 octets; the fixture has a 70 KB header.
poplib._MAXLINE = 1 << 20


class Msg:
    """One mbox entry: its raw bytes in the file and the client's view
    (None for the hidden pseudo message)."""

    def __init__(self, raw, view, uidl=None):
        self.raw = raw
        self.view = view
        self.uidl = uidl


def fl(sender, hour, tail=b"", eol=b"\n"):
    return b"From %s Mon Jan  1 %02d:00:00 2024%s%s" % (
        sender, hour, tail, eol)


PSEUDO = Msg(
    fl(b"MAILER-DAEMON", 9) +
    b"Date: Mon, 01 Jan 2024 09:00:00 +0000\n"
    b"From: Mail System Internal Data <MAILER-DAEMON@test.example>\n"
    b"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
    b"Message-ID: <1704099600@test.example>\n"
    b"X-IMAP: 1704099600 0000000007\n"
    b"Status: RO\n"
    b"\n"
    b"This text is part of the internal format of your mail folder, and "
    b"is not\na real message.  It is created automatically by the mail "
    b"system software.\n"
    b"\n", None)

# Internal headers anywhere in the header block, in any case, folded;
# mboxrd quoting; "From " body lines that are no separators; dots.
M_INTERNAL = Msg(
    fl(b"alice@example.com", 10) +
    b"Return-Path: <alice@example.com>\n"
    b"Status: RO\n"
    b"X-Status: A\n"
    b"From: Alice <alice@example.com>\n"
    b"X-Keywords: $Forwarded\n"
    b"\tJunk\n"
    b" NonJunk\n"
    b"Subject: internal headers and quoting\n"
    b"X-UID: 17\n"
    b"Message-ID: <m1@example.com>\n"
    b"x-status: lower case is internal too\n"
    b"X-IMAPbase: 1704099600 7\n"
    b"X-Mailer-Status: not internal\n"
    b"Status-Report: not internal either\n"
    b"\n"
    b"Body with >From not at the start of the line\n"
    b">From someone, quoted once\n"
    b">>From someone, quoted twice\n"
    b"From here on, a body line without a date: no separator\n"
    b"From \n"
    b".a leading dot\n"
    b"..two leading dots\n"
    b" From with a leading space\n"
    b"\n",
    b"Return-Path: <alice@example.com>\n"
    b"From: Alice <alice@example.com>\n"
    b"Subject: internal headers and quoting\n"
    b"Message-ID: <m1@example.com>\n"
    b"X-Mailer-Status: not internal\n"
    b"Status-Report: not internal either\n"
    b"\n"
    b"Body with >From not at the start of the line\n"
    b"From someone, quoted once\n"
    b">From someone, quoted twice\n"
    b"From here on, a body line without a date: no separator\n"
    b"From \n"
    b".a leading dot\n"
    b"..two leading dots\n"
    b" From with a leading space\n")

# A CRLF message in an LF mbox, with a wrong Content-Length.
M_CRLF = Msg(
    fl(b"bob@example.com", 11) +
    b"From: bob@example.com\r\n"
    b"Subject: crlf lines\r\n"
    b"Content-Length: 3\r\n"
    b"X-UID: 5\r\n"
    b"\r\n"
    b"line one\r\n"
    b">From crlf quoted\r\n"
    b"last\r\n"
    b"\n",
    b"From: bob@example.com\r\n"
    b"Subject: crlf lines\r\n"
    b"Content-Length: 3\r\n"
    b"\r\n"
    b"line one\r\n"
    b"From crlf quoted\r\n"
    b"last\r\n")

# An X-UIDL header (kept in the message) is the UIDL; a "remote from"
# separator.
M_XUIDL = Msg(
    fl(b"carol@example.com", 12, b" remote from gateway") +
    b"X-UIDL: legacy.uidl-0001\n"
    b"From: carol@example.com\n"
    b"Subject: has an x-uidl\n"
    b"\n"
    b"body\n"
    b"\n",
    b"X-UIDL: legacy.uidl-0001\n"
    b"From: carol@example.com\n"
    b"Subject: has an x-uidl\n"
    b"\n"
    b"body\n",
    uidl="legacy.uidl-0001")

M_EMPTY = Msg(fl(b"nobody@example.com", 13) + b"\n", b"")

M_DUP = Msg(
    fl(b"dup@example.com", 14) +
    b"From: dup@example.com\n"
    b"Subject: duplicate\n"
    b"Message-ID: <dup@example.com>\n"
    b"\n"
    b"same body\n"
    b"\n",
    b"From: dup@example.com\n"
    b"Subject: duplicate\n"
    b"Message-ID: <dup@example.com>\n"
    b"\n"
    b"same body\n")

M_HUGEHDR = Msg(
    fl(b"dave@example.com", 15) +
    b"Subject: huge header\n"
    b"X-Long: " + b"a" * 70000 + b"\n"
    b"Status: O\n"
    b"\n"
    b"short body\n"
    b"\n",
    b"Subject: huge header\n"
    b"X-Long: " + b"a" * 70000 + b"\n"
    b"\n"
    b"short body\n")

# No blank line before the next separator: the last line terminator goes.
M_NOBLANK = Msg(
    fl(b"gina@example.com", 16) +
    b"Subject: no blank line before the next separator\n"
    b"\n"
    b"body\n",
    b"Subject: no blank line before the next separator\n"
    b"\n"
    b"body")

# An entry written with CRLF throughout, separator and blank line too.
M_CRLFENTRY = Msg(
    fl(b"eve@example.com", 17, eol=b"\r\n") +
    b"From: eve@example.com\r\n"
    b"Subject: crlf mbox entry\r\n"
    b"Status: O\r\n"
    b"\r\n"
    b">From a crlf body\r\n"
    b"end\r\n"
    b"\r\n",
    b"From: eve@example.com\r\n"
    b"Subject: crlf mbox entry\r\n"
    b"\r\n"
    b"From a crlf body\r\n"
    b"end\r\n")

M_BIG = Msg(
    fl(b"hal@example.com", 18) +
    b"Subject: a bigger message\n\n" +
    b"".join(b"%05d %s\n" % (i, b"q" * 70) for i in range(4000)) +
    b">From inside a big one\n"
    b"\n",
    b"Subject: a bigger message\n\n" +
    b"".join(b"%05d %s\n" % (i, b"q" * 70) for i in range(4000)) +
    b"From inside a big one\n")

# Last in the file, no final newline at all.
M_NOEOL = Msg(
    fl(b"frank@example.com", 19) +
    b"From: frank@example.com\n"
    b"Subject: no final newline\n"
    b"\n"
    b"first\n"
    b"last line without a newline",
    b"From: frank@example.com\n"
    b"Subject: no final newline\n"
    b"\n"
    b"first\n"
    b"last line without a newline")

TRICKY = [PSEUDO, M_INTERNAL, M_CRLF, M_XUIDL, M_EMPTY, M_DUP, M_DUP,
          M_HUGEHDR, M_NOBLANK, M_CRLFENTRY, M_BIG, M_NOEOL]
# What fetchmail fetches (no empty message: fetchmail's business).
FETCH = [PSEUDO, M_INTERNAL, M_CRLF, M_XUIDL, M_DUP, M_DUP, M_HUGEHDR,
         M_NOBLANK, M_CRLFENTRY, M_BIG, M_NOEOL]


def visible(msgs):
    return [m for m in msgs if m.view is not None]


def mbox_of(msgs):
    return b"".join(m.raw for m in msgs)


def top(w, n):
    """TOP of a message in wire form: headers, blank line, n lines."""
    lines = w.split(b"\r\n")[:-1]
    if b"" not in lines:
        return w
    h = lines.index(b"")
    return b"".join(l + b"\r\n" for l in lines[:h + 1 + n])


def valid_uidl(u):
    return 1 <= len(u) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in u)


def simple(i, tag=b"s"):
    """A plain LF message and its mbox entry."""
    view = (b"From: sender@example.com\nSubject: %s %d\n"
            b"Message-ID: <%s-%d@example.com>\n\nbody %d\n"
            b">From a quoted line\n" % (tag, i, tag, i, i))
    return Msg(mboxdeliver.entry(view, "sender@example.com",
                                 1704103200 + i * 60), view)


class MboxClients(evtest.ServerTestCase):
    POOL = 4
    CONFIG = {"auth": {"max_failures": "10"}}

    @classmethod
    def setup_users(cls, srv):
        def user(name, msgs, **kw):
            mb = mboxdeliver.add_user(srv, name, **kw)
            if msgs is not None:
                mboxdeliver.write(mb.mbox, mbox_of(msgs))
            mb.msgs = msgs
            return mb

        cls.tricky = user("tricky@example.com", TRICKY)
        cls.stable = user("stable@example.com",
                          [simple(i) for i in range(4)])
        cls.side = user("side@example.com", [simple(i) for i in range(3)])
        cls.missing = user("missing@example.com", None)
        # The %n escape in the userdb_mail template.
        spool = os.path.join(srv.dir, "spool")
        cls.templ = user("templ@example.com", [simple(0)],
                         path=os.path.join(spool, "templ"),
                         spec=os.path.join(spool, "%n"))
        cls.curl_r = user("curl-r@example.com",
                          [simple(i, b"c") for i in range(3)])
        cls.curl_d = user("curl-d@example.com",
                          [simple(i, b"d") for i in range(3)])
        cls.fm_del = user("fm-del@example.com", FETCH)
        cls.fm_keep = user("fm-keep@example.com", FETCH)

    def pop(self, mb):
        p = poplib.POP3("127.0.0.1", self.srv.port, timeout=evtest.TIMEOUT)
        self.addCleanup(p.close)
        p.user(mb.user)
        p.pass_(mb.password)
        return p

    def assertNoMismatch(self):
        """cmd_mail logs a RETR whose bytes differ from LIST's size."""
        bad = [l for l in self.srv.log() if "event=size-mismatch" in l]
        self.assertEqual(bad, [])

    def assertFile(self, mb, data):
        got = mboxdeliver.read(mb.mbox)
        if got != data:
            self.fail("mbox %s: %r... (%s bytes) != expected %r... (%d "
                      "bytes)" % (mb.mbox, (got or b"")[:200],
                                  None if got is None else len(got),
                                  data[:200], len(data)))

    # -- poplib

    def test_poplib_tricky(self):
        mb = self.tricky
        views = [m.view for m in visible(TRICKY)]
        sizes = [len(wire(v)) for v in views]
        p = self.pop(mb)
        self.assertEqual(p.stat(), (len(views), sum(sizes)))
        _, lines, _ = p.list()
        self.assertEqual(lines, [b"%d %d" % (i, s)
                                 for i, s in enumerate(sizes, 1)])
        for i, v in enumerate(views, 1):
            with self.subTest(msg=i):
                _, lines, octets = p.retr(i)
                got = b"".join(l + b"\r\n" for l in lines)
                self.assertEqual(got, wire(v))
                self.assertEqual(octets, sizes[i - 1])	# LIST == bytes sent
                self.assertEqual(p.list(i).split()[2], b"%d" % sizes[i - 1])
                for n in (0, 2):
                    _, lines, _ = p.top(i, n)
                    self.assertEqual(b"".join(l + b"\r\n" for l in lines),
                                     top(wire(v), n))
        _, lines, _ = p.uidl()
        uidls = [l.split()[1].decode() for l in lines]
        self.assertEqual([l.split()[0] for l in lines],
                         [b"%d" % i for i in range(1, len(views) + 1)])
        self.assertTrue(all(valid_uidl(u) for u in uidls), uidls)
        self.assertEqual(len(set(uidls)), len(uidls), uidls)	# dups too
        self.assertEqual(uidls[visible(TRICKY).index(M_XUIDL)],
                         M_XUIDL.uidl)
        self.assertEqual(p.uidl(3).split()[2].decode(), uidls[2])
        p.quit()
        self.assertFile(mb, mbox_of(TRICKY))		# nothing touched
        self.assertNoMismatch()
        # The same ids in the next session.
        p = self.pop(mb)
        _, lines, _ = p.uidl()
        self.assertEqual([l.split()[1].decode() for l in lines], uidls)
        p.quit()

    def test_uidl_stable_after_dele_and_append(self):
        mb = self.stable
        msgs = list(mb.msgs)
        p = self.pop(mb)
        u1 = [l.split()[1] for l in p.uidl()[1]]
        # Delivered while the session is open: survives the UPDATE.
        late = simple(10)
        mboxdeliver.deliver(mb.mbox, late.raw)
        self.assertEqual(p.stat()[0], 4)
        p.dele(1)
        p.dele(3)
        self.assertTrue(p.quit().startswith(b"+OK"))
        self.assertFile(mb, msgs[1].raw + msgs[3].raw + late.raw)

        p = self.pop(mb)
        u2 = [l.split()[1] for l in p.uidl()[1]]
        self.assertEqual(u2[:2], [u1[1], u1[3]])
        self.assertNotIn(u2[2], u1)
        _, lines, _ = p.retr(3)
        self.assertEqual(b"".join(l + b"\r\n" for l in lines),
                         wire(late.view))
        p.quit()
        later = simple(11)
        mboxdeliver.deliver(mb.mbox, later.raw)
        p = self.pop(mb)
        u3 = [l.split()[1] for l in p.uidl()[1]]
        self.assertEqual(u3[:3], u2)
        self.assertEqual(len(set(u3)), 4)
        p.quit()

    def test_missing_mbox_is_empty(self):
        mb = self.missing
        before = evtest.tree(os.path.dirname(mb.mbox))
        p = self.pop(mb)
        self.assertEqual(p.stat(), (0, 0))
        self.assertEqual(p.list()[1], [])
        p.quit()
        self.assertFalse(os.path.exists(mb.mbox))
        # No dotlock left: it would hold off the MDA (and the next login)
        # until it goes stale.
        self.assertFalse(os.path.exists(mb.mbox + ".lock"),
                         "dotlock left behind after the session")
        # At most a hidden session lock file beside it, nothing else.
        new = evtest.tree(os.path.dirname(mb.mbox)) - before
        self.assertTrue(all(n.startswith(".") for n in new), new)
        # The first delivery creates it; the next session sees it.
        m = simple(0, b"first")
        mboxdeliver.deliver(mb.mbox, m.raw, timeout=5)
        p = self.pop(mb)
        self.assertEqual(p.stat(), (1, len(wire(m.view))))
        p.quit()

    def test_location_template(self):
        p = self.pop(self.templ)
        self.assertEqual(p.stat(), (1, len(wire(self.templ.msgs[0].view))))
        p.quit()

    # -- two kinds of users side by side

    def test_maildir_user_while_mbox_user_logged_in(self):
        mbx = self.side
        md = self.fresh()
        md_uid = md.add(b"Subject: maildir\n\nmaildir body\n")
        a = self.login(mbx)
        self.assertEqual(a.ok("STAT"), "+OK 3 %d" % sum(
            len(wire(m.view)) for m in mbx.msgs))
        # The mbox session lock holds against a second session.
        b = self.connect()
        b.ok("USER " + mbx.user)
        r = b.cmd("PASS " + mbx.password)
        self.assertTrue(r.startswith("-ERR [IN-USE]"), r)
        c = self.login(md)
        self.assertEqual(c.retr(1), wire(b"Subject: maildir\n\nmaildir body\n"))
        self.assertEqual(c.ok("UIDL 1").split()[2], md_uid)
        c.ok("DELE 1")
        self.assertOK(c.quit())
        self.assertEqual(md.uidls(), [])
        self.assertEqual(a.retr(2), wire(mbx.msgs[1].view))
        a.ok("DELE 2")
        self.assertOK(a.quit())
        self.assertFile(mbx, mbx.msgs[0].raw + mbx.msgs[2].raw)
        # The lock is free again.
        b.ok("USER " + mbx.user)
        b.ok("PASS " + mbx.password)
        self.assertEqual(b.ok("STAT").split()[1], "2")
        b.quit()

    # -- curl

    def curl(self, mb, path="/", *args):
        cmd = [CURL, "-s", "-S", "--max-time", "30",
               "-u", "%s:%s" % (mb.user, mb.password),
               "pop3://127.0.0.1:%d%s" % (self.srv.port, path)] + list(args)
        p = subprocess.run(cmd, capture_output=True, timeout=60)
        if p.returncode != 0:
            self.fail("curl %s %s -> exit %d: %s" % (
                path, " ".join(args), p.returncode,
                p.stderr.decode(errors="replace")))
        return p.stdout

    @unittest.skipIf(CURL is None, "curl not installed")
    def test_curl_list_retr_uidl(self):
        mb = self.curl_r
        views = [m.view for m in mb.msgs]
        self.assertEqual(self.curl(mb), b"".join(
            b"%d %d\r\n" % (i, len(wire(v))) for i, v in enumerate(views, 1)))
        for i, v in enumerate(views, 1):
            with self.subTest(msg=i):
                self.assertEqual(self.curl(mb, "/%d" % i), wire(v))
        out = self.curl(mb, "/", "-X", "UIDL").split(b"\r\n")
        self.assertEqual(out[-1], b"")
        uidls = [l.split()[1].decode() for l in out[:-1]]
        self.assertEqual(len(set(uidls)), 3)
        self.assertTrue(all(valid_uidl(u) for u in uidls), uidls)
        self.assertEqual(self.curl(mb, "/", "-X", "TOP 2 0"),
                         top(wire(views[1]), 0))
        self.assertFile(mb, mbox_of(mb.msgs))
        self.assertNoMismatch()

    @unittest.skipIf(CURL is None, "curl not installed")
    def test_curl_dele(self):
        mb = self.curl_d
        m = mb.msgs
        uidls = self.curl(mb, "/", "-X", "UIDL").split(b"\r\n")
        self.curl(mb, "/2", "-X", "DELE", "-I")
        self.assertFile(mb, m[0].raw + m[2].raw)
        self.assertEqual(self.curl(mb), b"1 %d\r\n2 %d\r\n" % (
            len(wire(m[0].view)), len(wire(m[2].view))))
        self.assertEqual(self.curl(mb, "/2"), wire(m[2].view))
        after = self.curl(mb, "/", "-X", "UIDL").split(b"\r\n")
        self.assertEqual([l.split()[1] for l in after[:-1]],
                         [uidls[0].split()[1], uidls[2].split()[1]])

    # -- fetchmail

    def fetchmail(self, mb, keep, runs=1):
        """Run fetchmail runs times against mb, each message delivered to
        an MDA that writes it to <out>/NNNN. Returns (out dir, [exit])."""
        d = tempfile.mkdtemp(prefix="fm-", dir=self.srv.dir)
        out = os.path.join(d, "out")
        os.mkdir(out)
        mda = os.path.join(d, "mda.py")
        with open(mda, "w") as f:
            f.write("import os, sys\n"
                    "d = sys.argv[1]\n"
                    "n = len(os.listdir(d))\n"
                    "with open(os.path.join(d, '%04d' % n), 'wb') as f:\n"
                    "    f.write(sys.stdin.buffer.read())\n")
        rc = os.path.join(d, "fetchmailrc")
        with open(rc, "w") as f:
            f.write('poll 127.0.0.1 protocol pop3 service %d auth password '
                    'timeout 30 uidl\n'
                    '  user "%s" there with password "%s" is root here\n'
                    '  options %s norewrite sslproto ""\n'
                    '  mda "%s %s %s"\n' % (
                        self.srv.port, mb.user, mb.password,
                        "keep" if keep else "nokeep fetchall",
                        sys.executable, mda, out))
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=d, FETCHMAILHOME=d)
        codes = []
        for _ in range(runs):
            p = subprocess.run([FETCHMAIL, "-f", rc, "-N", "--nosyslog",
                                "-v", "--pidfile", os.path.join(d, "pid"),
                                "-i", os.path.join(d, "ids")],
                               env=env, capture_output=True, timeout=120)
            codes.append(p.returncode)
            if p.returncode not in (0, 1):		# 1: no new mail
                self.fail("fetchmail exit %d:\n%s%s" % (
                    p.returncode, p.stdout.decode(errors="replace"),
                    p.stderr.decode(errors="replace")))
        return out, codes

    def check_delivered(self, out, msgs):
        """Each file in out is fetchmail's Received header and then the
        client's view of one message, LF line ends."""
        names = sorted(os.listdir(out))
        self.assertEqual(len(names), len(msgs), names)
        rx = re.compile(rb"\AReceived: from 127\.0\.0\.1[^\n]*\n"
                        rb"(?:[ \t][^\n]*\n)*")
        for n, m in zip(names, msgs):
            with self.subTest(file=n):
                with open(os.path.join(out, n), "rb") as f:
                    got = f.read()
                hdr = rx.match(got)
                self.assertIsNotNone(hdr, got[:200])
                self.assertEqual(got[hdr.end():],
                                 wire(m.view).replace(b"\r\n", b"\n"))

    @unittest.skipIf(FETCHMAIL is None, "fetchmail not installed")
    def test_fetchmail_fetch_and_delete(self):
        mb = self.fm_del
        out, codes = self.fetchmail(mb, keep=False)
        self.assertEqual(codes, [0])
        self.check_delivered(out, visible(FETCH))
        self.assertNoMismatch()
        # Only the pseudo message is left, byte-identical.
        self.assertFile(mb, PSEUDO.raw)
        p = self.pop(mb)
        self.assertEqual(p.stat(), (0, 0))
        p.quit()

    @unittest.skipIf(FETCHMAIL is None, "fetchmail not installed")
    def test_fetchmail_keep_uidl(self):
        mb = self.fm_keep
        out, codes = self.fetchmail(mb, keep=True, runs=2)
        # The second run finds nothing new (exit 1) by UIDL.
        self.assertEqual(codes, [0, 1])
        self.check_delivered(out, visible(FETCH))
        self.assertFile(mb, mbox_of(FETCH))


if __name__ == "__main__":
    evtest.main()
