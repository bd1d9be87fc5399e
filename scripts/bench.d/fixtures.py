"""
fixtures: the benchmark's users and Maildirs under state/bench/.

Layout (everything owned by the `evbench` system user, whose uid/gid are
in the passwd-file so that Dovecot runs its mail processes as that user;
evpop3d reads the uid/gid fields but runs as whoever started it):

    passwd                    one Dovecot passwd-file shared by both servers
    mail/<user>/Maildir/      cur/ new/ tmp/
    pristine/shared/          10 messages hard-linked into idle and blf users
    pristine/churn/<user>/    the churn users' Maildirs as generated
    fixture.ok                marker: FIXTURE_VERSION, root, uid, gid, counts
    mbox/mbox0000             a ~2 GiB mbox (made by ensure_mbox(), only for
                              the responsiveness phase; kept apart from the
                              rest so that neither regenerates the other)
    mbox/mbox.ok              its marker: MBOX_VERSION, size, messages, ...

Users (password "pass" for all):
    bench0000..bench0999      {PLAIN}, 10 messages of ~4 KiB each
    big0000                   {PLAIN}, one ~20 MiB message (base64 attachment)
    huge0000                  {PLAIN}, 100,000 small messages
    blf0000..blf0199          {BLF-CRYPT} cost 5, 10 (hard-linked) messages each
    churn0000..churn0099      {PLAIN}, CHURN_MSGS messages, restored per run
    idle00000..idleNNNNN      {PLAIN}, 10 (hard-linked) messages each: the
                              idle runs hold one session per user, and a
                              maildrop is locked by its session (RFC 1939 s.4)
    mbox0000                  {PLAIN}, an mbox user: its passwd-file extra
                              field userdb_mail=mbox:...:INBOX=<the mbox>
                              is read by both servers (ensure_mbox())

Message files are named like Dovecot's deliveries:
    <time>.M<usec>P<pid>.bench,S=<size>,W=<wire size>:2,S
Both servers take the POP3 size from W= (the size with CRLF line ends,
RFC 1939 section 11) instead of reading the file. Contents use LF line ends
and include lines that start with "." (dot-stuffed on the wire).
"""

import base64
import bisect
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "test", "integration"))
import evtest  # noqa: E402  (the test harness: one bcrypt helper)

FIXTURE_VERSION = 3
PASSWORD = "pass"
BENCH_USERS = 1000
BENCH_MSGS = 10
BLF_USERS = 200
CHURN_USERS = 100
CHURN_MSGS = 150		# the churn scenario DELEs 3 per session
HUGE_MSGS = 100000
BIG_SIZE = 20 * 1024 * 1024
BENCH_UID_NAME = "evbench"

WORDS = """
the a of to and in for on with at by from about as into like through after
over between out against during without before under around among report
meeting schedule budget quarter invoice shipment delivery customer account
project review draft update release server network storage backup restore
please thanks regards attached following question answer issue ticket team
tomorrow today yesterday week month morning afternoon evening office remote
contract proposal estimate approval deadline milestone feature request fix
could would should might will can must need want think know see look find
new old first last next early late small large important urgent minor major
we you they it this that these those our your their its here there when
""".split()

NAMES = ["Alice Martin", "Bob Schulz", "Carol Nguyen", "Dmitri Ivanov",
         "Eve Laurent", "Farid Haddad", "Grace Okafor", "Hiro Tanaka",
         "Ines Silva", "Jonas Berg", "Kavya Rao", "Liam O'Brien"]

DOT_LINES = [".", "..", ".signature follows below",
             "...and that was the third dot", ". a line with a leading dot"]


def wire_size(data):
    """POP3 size of LF-only data that ends with LF: every LF becomes CRLF."""
    return len(data) + data.count(b"\n")


class Gen:
    """Deterministic message text from a pool of pre-made body lines."""

    def __init__(self, seed=1939):
        self.rng = random.Random(seed)
        self.lines = []
        for _ in range(3000):
            words = []
            n = 0
            target = self.rng.randint(40, 76)
            while n < target:
                w = self.rng.choice(WORDS)
                words.append(w)
                n += len(w) + 1
            line = " ".join(words)
            self.lines.append((line[0].upper() + line[1:]).encode())
        self.seq = 0

    def headers(self, user, stamp, subject_extra="", date=None):
        """A header block; date (RFC 5322) defaults to a time of day on
        one fixed day, which the Maildir fixtures keep."""
        r = self.rng
        self.seq += 1
        name = r.choice(NAMES)
        addr = name.split()[0].lower().replace("'", "") + "@example.net"
        mid = "%d.%d.%x@example.net" % (stamp, self.seq, r.getrandbits(40))
        if date is None:
            date = "Tue, 14 Nov 2023 %02d:%02d:%02d +0000" % (
                (stamp // 3600) % 24, (stamp // 60) % 60, stamp % 60)
        k = r.randint(1, 254)
        subj = " ".join(r.choice(WORDS) for _ in range(r.randint(3, 8)))
        return ("Return-Path: <%s>\n"
                "Delivered-To: %s@bench.example\n"
                "Received: from mx%d.example.net (mx%d.example.net "
                "[192.0.2.%d])\n"
                "\tby mail.bench.example with ESMTPS id %X\n"
                "\tfor <%s@bench.example>; %s\n"
                "Date: %s\n"
                "From: %s <%s>\n"
                "To: %s@bench.example\n"
                "Subject: %s%s\n"
                "Message-ID: <%s>\n"
                "MIME-Version: 1.0\n"
                "Content-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: 7bit\n"
                "\n" % (addr, user, k, k, k, r.getrandbits(48), user, date,
                        date, name, addr, user, subj.capitalize(),
                        subject_extra, mid)).encode()

    def message(self, user, stamp, target):
        """One message of about target octets; some have dot lines."""
        r = self.rng
        out = [self.headers(user, stamp)]
        size = len(out[0])
        dots = r.random() < 0.4
        while size < target:
            if dots and r.random() < 0.05:
                line = r.choice(DOT_LINES).encode()
            else:
                line = r.choice(self.lines)
            out.append(line + b"\n")
            size += len(line) + 1
        if dots:
            out.insert(r.randint(2, len(out)), b".\n")
        return b"".join(out)

    def small(self, user, stamp):
        r = self.rng
        out = [self.headers(user, stamp)]
        for _ in range(r.randint(2, 8)):
            out.append(r.choice(self.lines) + b"\n")
        if r.random() < 0.1:
            out.append(b".\n")
        return b"".join(out)

    def big(self, user, stamp, target):
        """A multipart message with a base64 attachment, about target octets
        on the wire."""
        hdr = self.headers(user, stamp).replace(
            b"Content-Type: text/plain; charset=utf-8\n"
            b"Content-Transfer-Encoding: 7bit\n",
            b"Content-Type: multipart/mixed; boundary=\"b1_bench\"\n")
        part = (b"--b1_bench\nContent-Type: text/plain; charset=utf-8\n\n"
                b"The file you asked for is attached.\n\n"
                b"--b1_bench\nContent-Type: application/octet-stream; "
                b"name=\"dump.bin\"\nContent-Transfer-Encoding: base64\n"
                b"Content-Disposition: attachment; filename=\"dump.bin\"\n\n")
        tail = b"\n--b1_bench--\n"
        head = hdr + part
        # each base64 line: 76 chars + LF = 78 wire octets
        room = target - wire_size(head) - wire_size(tail)
        nlines = room // 78
        raw = random.Random(20).randbytes(nlines * 57)
        b64 = base64.encodebytes(raw)	# 76-char lines, LF-terminated
        return head + b64 + tail


def md_name(stamp, usec, pid, data):
    return "%d.M%dP%d.bench,S=%d,W=%d:2,S" % (stamp, usec, pid, len(data),
                                               wire_size(data))


def make_maildir(path):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


def write_msg(cur, name, data):
    fd = os.open(os.path.join(cur, name),
                 os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def bcrypt_hash(password):
    """{BLF-CRYPT} $2b$ cost 5 (Dovecot's default), made by the test
    harness's libxcrypt helper."""
    h = evtest.bcrypt_hash(password)
    if h is None:
        raise RuntimeError("libxcrypt cannot make $2b$ hashes")
    return "{BLF-CRYPT}" + h


def ensure_user():
    """The evbench system user/group; returns (uid, gid)."""
    import pwd
    try:
        pw = pwd.getpwnam(BENCH_UID_NAME)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group",
                        "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", BENCH_UID_NAME],
                       check=True)
        pw = pwd.getpwnam(BENCH_UID_NAME)
    return pw.pw_uid, pw.pw_gid


def marker_text(state, uid, gid, idle_users):
    return ("version=%d root=%s uid=%d gid=%d bench=%d huge=%d blf=%d "
            "churn=%dx%d idle=%d\n" % (FIXTURE_VERSION, state, uid, gid,
                                       BENCH_USERS, HUGE_MSGS, BLF_USERS,
                                       CHURN_USERS, CHURN_MSGS, idle_users))


def ensure(state, idle_users, log=print):
    """Create the fixtures under state unless a matching marker says they
    are complete. Returns (uid, gid, passwd path)."""
    uid, gid = ensure_user()
    marker = os.path.join(state, "fixture.ok")
    want = marker_text(state, uid, gid, idle_users)
    passwd = os.path.join(state, "passwd")
    try:
        with open(marker) as f:
            if f.read() == want:
                log("fixtures: reusing %s" % state)
                return uid, gid, passwd
    except FileNotFoundError:
        pass

    log("fixtures: generating under %s (takes a minute)" % state)
    for d in ("mail", "pristine"):
        shutil.rmtree(os.path.join(state, d), ignore_errors=True)
    for f in ("fixture.ok", "passwd"):
        try:
            os.unlink(os.path.join(state, f))
        except FileNotFoundError:
            pass
    # Dovecot's indexes describe the old mailboxes
    for d in ("index", "control"):
        shutil.rmtree(os.path.join(state, "dovecot", d), ignore_errors=True)

    mail = os.path.join(state, "mail")
    g = Gen()
    pid = 4242
    lines = []

    def user_line(user, pw=None):
        home = os.path.join(mail, user)
        lines.append("%s:%s:%d:%d::%s::\n" % (
            user, pw or "{PLAIN}" + PASSWORD, uid, gid, home))
        return home

    # bench users
    for u in range(BENCH_USERS):
        user = "bench%04d" % u
        md = os.path.join(user_line(user), "Maildir")
        make_maildir(md)
        cur = os.path.join(md, "cur")
        for i in range(BENCH_MSGS):
            stamp = 1699900000 + u * 100 + i
            data = g.message(user, stamp, g.rng.randint(3400, 4600))
            write_msg(cur, md_name(stamp, 100000 + i, pid, data), data)
    log("fixtures: %d bench users" % BENCH_USERS)

    # big0000: one ~20 MiB message
    user = "big0000"
    md = os.path.join(user_line(user), "Maildir")
    make_maildir(md)
    data = g.big(user, 1699800000, BIG_SIZE)
    write_msg(os.path.join(md, "cur"), md_name(1699800000, 1, pid, data),
              data)

    # huge0000: 100,000 small messages
    user = "huge0000"
    md = os.path.join(user_line(user), "Maildir")
    make_maildir(md)
    cur = os.path.join(md, "cur")
    for i in range(HUGE_MSGS):
        stamp = 1600000000 + i * 7
        data = g.small(user, stamp)
        write_msg(cur, md_name(stamp, i % 1000000, pid, data), data)
    log("fixtures: huge0000 with %d messages" % HUGE_MSGS)

    # the shared messages for blf and idle users
    shared = os.path.join(state, "pristine", "shared")
    os.makedirs(shared)
    shared_names = []
    for i in range(BENCH_MSGS):
        stamp = 1699000000 + i
        data = g.message("shared", stamp, g.rng.randint(3400, 4600))
        name = md_name(stamp, 200000 + i, pid, data)
        write_msg(shared, name, data)
        shared_names.append(name)

    def linked_user(user, pw=None):
        md = os.path.join(user_line(user, pw), "Maildir")
        make_maildir(md)
        cur = os.path.join(md, "cur")
        for name in shared_names:
            os.link(os.path.join(shared, name), os.path.join(cur, name))

    for u in range(BLF_USERS):
        linked_user("blf%04d" % u, bcrypt_hash(PASSWORD))
    log("fixtures: %d {BLF-CRYPT} users" % BLF_USERS)
    for u in range(idle_users):
        linked_user("idle%05d" % u)
    log("fixtures: %d idle users" % idle_users)

    # churn users: pristine copies, restored into mail/ before each run
    for u in range(CHURN_USERS):
        user = "churn%04d" % u
        user_line(user)
        md = os.path.join(state, "pristine", "churn", user, "Maildir")
        make_maildir(md)
        cur = os.path.join(md, "cur")
        for i in range(CHURN_MSGS):
            stamp = 1698000000 + u * 1000 + i
            data = g.message(user, stamp, g.rng.randint(3400, 4600))
            write_msg(cur, md_name(stamp, 300000 + i, pid, data), data)
    log("fixtures: %d churn users x %d messages" % (CHURN_USERS, CHURN_MSGS))

    subprocess.run(["chown", "-R", "%d:%d" % (uid, gid), mail,
                    os.path.join(state, "pristine")], check=True)
    for u in range(CHURN_USERS):
        restore_churn_user(state, "churn%04d" % u)

    tmp = passwd + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(lines)
    # Dovecot's auth process runs as the dovecot user and reads it too
    try:
        import grp
        os.chown(tmp, 0, grp.getgrnam("dovecot").gr_gid)
        os.chmod(tmp, 0o640)
    except KeyError:
        os.chmod(tmp, 0o600)
    os.rename(tmp, passwd)
    with open(marker, "w") as f:
        f.write(want)
    log("fixtures: done")
    return uid, gid, passwd


def restore_churn_user(state, user):
    dst = os.path.join(state, "mail", user)
    shutil.rmtree(dst, ignore_errors=True)
    subprocess.run(["cp", "-a", os.path.join(state, "pristine", "churn", user),
                    dst], check=True)


def restore_churn(state):
    """Put every churn user's Maildir back as generated, and drop Dovecot's
    indexes of them (they describe messages that are gone)."""
    for u in range(CHURN_USERS):
        user = "churn%04d" % u
        restore_churn_user(state, user)
        for d in ("index", "control"):
            shutil.rmtree(os.path.join(state, "dovecot", d, user),
                          ignore_errors=True)


# ------------------------------------------------------------ the big mbox
#
# mbox0000's maildrop: one mbox file of about MBOX_TARGET octets in
# mboxrd format, as a local MDA (Postfix local, procmail) writes it and an
# IMAP server that served the spool before leaves it:
#
#     From alice@example.net Tue Jan  1 00:29:38 2019     <- asctime, UTC
#     Return-Path: <alice@example.net>
#     ... (Received, Date, From, To, Subject, Message-ID, MIME)
#     Status: RO                          <- an MUA's: read (half) or seen
#     X-IMAPbase: 1546300800 0000094485   <- first message only
#     X-UID: 1
#     Content-Length: 32042
#
#     body, lines matching ^>*From  stored with one more '>'
#     <empty line>                                         <- separator
#     From ...
#
# The IMAP server's headers (in Dovecot's order and form) are there
# because Dovecot, at its first open of a spool without them, rewrites
# the whole file to add them (and would at every run of a fresh one):
# with them, its first open only builds its index, the file never
# changes, and every run, with Dovecot or without, measures the same
# bytes. evpop3d hides Status, X-IMAPbase and X-UID from clients and
# ignores Content-Length.
#
# Text messages of 2-64 KiB (log-uniform, mean about 18 KiB) and a few
# with a base64 attachment of 256 KiB-4 MiB: about 95,000 messages. The
# body text is cut at line boundaries from a 4 MiB corpus made (and
# mboxrd-quoted) once, so that generation runs at disk speed rather than
# at Python's per-line speed.

MBOX_USER = "mbox0000"
MBOX_VERSION = 1
MBOX_TARGET = 2 * 1024 * 1024 * 1024
MBOX_SEED = 110
MBOX_TEXT_MIN = 2 * 1024
MBOX_TEXT_MAX = 64 * 1024
MBOX_BIG_SHARE = 0.003		# share of messages with an attachment
MBOX_BIG_MIN = 256 * 1024
MBOX_BIG_MAX = 4 * 1024 * 1024
MBOX_CORPUS = 4 * 1024 * 1024
MBOX_CHUNK = 32 * 1024 * 1024	# octets per write(2)
MBOX_FIRST_STAMP = 1546300800	# 2019-01-01 00:00 UTC
MBOX_UIDVALIDITY = 1546300800
MBOX_LAST_UID_PAD = b"0000000000"	# X-IMAPbase's last UID, %010u

# Body lines the original text starts with "From " or ">From ": stored
# with one more '>' (the quoting the mboxrd reader undoes).
MBOX_FROM_LINES = [b"From the minutes of the last meeting:",
                   b"From here on the figures are estimates.",
                   b">From the archive, quoted in the original:",
                   b">>From a thread long ago"]


def mbox_dir(state):
    return os.path.join(state, "mbox")


def mbox_path(state):
    return os.path.join(mbox_dir(state), MBOX_USER)


def mboxrd_quote(line):
    """line (no LF) as stored in an mboxrd file: one more '>' before a line
    that matches ^>*From ."""
    return b">" + line if line.lstrip(b">").startswith(b"From ") else line


def log_uniform(r, lo, hi):
    return int(lo * (hi / lo) ** r.random())


class MboxGen:
    """The messages of the big mbox, each with its From_ line and the
    separating empty line, deterministic for a seed."""

    def __init__(self, seed=MBOX_SEED):
        self.g = Gen(seed)
        r = self.g.rng
        lines, size = [], 0
        while size < MBOX_CORPUS:
            x = r.random()
            if x < 0.01:
                line = r.choice(DOT_LINES).encode()
            elif x < 0.012:
                line = r.choice(MBOX_FROM_LINES)
            elif x < 0.04:
                line = b""			# a paragraph break
            else:
                line = r.choice(self.g.lines)	# may start "From " too
            line = mboxrd_quote(line) + b"\n"
            lines.append(line)
            size += len(line)
        self.corpus = b"".join(lines)
        self.starts, off = [], 0
        for line in lines:
            self.starts.append(off)
            off += len(line)
        # the room a text body may start in
        self.nstart = bisect.bisect_left(self.starts,
                                         len(self.corpus) - 2 * MBOX_TEXT_MAX)
        # attachments: slices of one base64 text, 77-octet lines
        self.b64 = base64.encodebytes(
            random.Random(seed).randbytes(MBOX_BIG_MAX * 3 // 4 + 4096))
        self.stamp = MBOX_FIRST_STAMP
        self.nbig = self.uid = self.base_off = 0

    def header(self, stamp):
        """Header fields without the empty line that ends them."""
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                             time.gmtime(stamp))
        return self.g.headers(MBOX_USER, stamp, date=date)[:-1]

    def text(self, stamp, target):
        hdr = self.header(stamp)
        a = self.starts[self.g.rng.randrange(self.nstart)]
        j = bisect.bisect_left(self.starts, a + max(target - len(hdr), 1))
        return hdr, self.corpus[a:self.starts[j]]

    def big(self, stamp, target):
        r = self.g.rng
        hdr = self.header(stamp).replace(
            b"Content-Type: text/plain; charset=utf-8\n"
            b"Content-Transfer-Encoding: 7bit\n",
            b"Content-Type: multipart/mixed; boundary=\"b1_mbox\"\n")
        part = (b"--b1_mbox\nContent-Type: text/plain; charset=utf-8\n\n"
                b"The scans are attached.\n\n"
                b"--b1_mbox\nContent-Type: application/pdf; "
                b"name=\"scan.pdf\"\nContent-Transfer-Encoding: base64\n"
                b"Content-Disposition: attachment; filename=\"scan.pdf\"\n\n")
        nlines = max(1, (target - len(hdr) - len(part)) // 77)
        first = r.randrange(len(self.b64) // 77 - nlines)
        return hdr, (part + self.b64[first * 77:(first + nlines) * 77] +
                     b"\n--b1_mbox--\n")

    def next(self):
        """The next message as stored: From_ line, message, empty line.
        The first one carries X-IMAPbase with MBOX_LAST_UID_PAD as its
        last UID (10 digits at offset self.base_off of that message, to
        be overwritten with the real count)."""
        r = self.g.rng
        self.stamp += r.randint(60, 1800)
        if r.random() < MBOX_BIG_SHARE:
            hdr, body = self.big(self.stamp, log_uniform(r, MBOX_BIG_MIN,
                                                         MBOX_BIG_MAX))
            self.nbig += 1
        else:
            hdr, body = self.text(self.stamp, log_uniform(r, MBOX_TEXT_MIN,
                                                          MBOX_TEXT_MAX))
        self.uid += 1
        # the envelope sender: the Return-Path the header starts with
        # asctime(3): "Www Mmm dd hh:mm:ss yyyy", the day padded by a space
        from_ = b"From %s %s\n" % (
            hdr[14:hdr.index(b">")],
            time.strftime("%a %b %e %H:%M:%S %Y",
                          time.gmtime(self.stamp)).encode())
        # what an IMAP server that kept this spool before leaves: the
        # MUA's Status (read or only seen), UIDs, and Content-Length
        # (Dovecot's order)
        mine = b"Status: %s\n" % (b"RO" if r.random() < 0.5 else b"O")
        if self.uid == 1:
            self.base_off = len(from_) + len(hdr) + len(mine) + \
                len(b"X-IMAPbase: %d " % MBOX_UIDVALIDITY)
            mine += b"X-IMAPbase: %d %s\n" % (MBOX_UIDVALIDITY,
                                              MBOX_LAST_UID_PAD)
        mine += b"X-UID: %d\nContent-Length: %d\n\n" % (self.uid, len(body))
        return b"".join((from_, hdr, mine, body, b"\n"))


def write_mbox(path, target, uid, gid):
    """Write the mbox (owner uid:gid, mode 0600) through path.tmp, renamed
    into place once complete. Returns (size, messages, big messages)."""
    mg = MboxGen()
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    size = nmsg = 0
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o600)
        parts, pending = [], 0
        while size < target:
            m = mg.next()
            parts.append(m)
            pending += len(m)
            size += len(m)
            nmsg += 1
            if pending >= MBOX_CHUNK or size >= target:
                buf = memoryview(b"".join(parts))
                while buf:
                    buf = buf[os.write(fd, buf):]
                parts, pending = [], 0
        os.pwrite(fd, b"%010d" % nmsg, mg.base_off)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)
    return size, nmsg, mg.nbig


def mbox_passwd_line(state, uid, gid):
    """mbox0000's passwd-file entry. The extra (8th) field is Dovecot's
    userdb_mail: INBOX= is the mbox file (evpop3d serves that file),
    the root directory and INDEX= are for Dovecot (evpop3d ignores them;
    Dovecot refuses a file as its mbox root)."""
    return ("%s:{PLAIN}%s:%d:%d::%s::userdb_mail=mbox:%s:INBOX=%s:"
            "INDEX=%s\n" % (
                MBOX_USER, PASSWORD, uid, gid, mbox_dir(state),
                os.path.join(state, "dovecot", "mbox-root", MBOX_USER),
                mbox_path(state),
                os.path.join(state, "dovecot", "index", MBOX_USER)))


def set_passwd_line(passwd, user, line):
    """Put line as user's entry into the passwd-file (replacing an older
    one), atomically and keeping the file's owner and mode."""
    with open(passwd) as f:
        old = f.readlines()
    new = [x for x in old if not x.startswith(user + ":")] + [line]
    if new == old:
        return
    st = os.stat(passwd)
    tmp = passwd + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(new)
    os.chown(tmp, st.st_uid, st.st_gid)
    os.chmod(tmp, st.st_mode & 0o7777)
    os.rename(tmp, passwd)


def mbox_marker(state):
    return os.path.join(mbox_dir(state), "mbox.ok")


def mbox_info(state):
    """The marker's fields (dict of str) if the mbox is complete and
    unchanged since it was generated, else None."""
    try:
        with open(mbox_marker(state)) as f:
            info = dict(w.split("=", 1) for w in f.read().split())
        st = os.stat(mbox_path(state))
    except (OSError, ValueError):
        return None
    if info.get("size") != str(st.st_size):
        return None
    return info


def ensure_mbox(state, uid, gid, passwd, generate=True, log=print):
    """mbox0000: its passwd-file entry, and (with generate) the mbox file,
    made once and reused while its marker matches. Returns the marker's
    fields, or None if the mbox does not exist (generate false)."""
    set_passwd_line(passwd, MBOX_USER, mbox_passwd_line(state, uid, gid))
    want = {"version": str(MBOX_VERSION), "target": str(MBOX_TARGET),
            "seed": str(MBOX_SEED), "uid": str(uid), "gid": str(gid),
            "path": mbox_path(state)}
    info = mbox_info(state)
    if info is not None and all(info.get(k) == v for k, v in want.items()):
        log("fixtures: reusing %s (%s messages, %.2f GiB)" % (
            mbox_path(state), info["messages"],
            int(info["size"]) / 1024.0 ** 3))
        return info
    if not generate:
        return None
    d = mbox_dir(state)
    log("fixtures: generating the %.1f GiB mbox %s" % (
        MBOX_TARGET / 1024.0 ** 3, mbox_path(state)))
    # the old one goes first: 79 GB disks do not want two of them
    for f in (mbox_marker(state), mbox_path(state),
              mbox_path(state) + ".tmp"):
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
    # Dovecot's index describes the old mbox
    for sub in ("index", "control", "mbox-root"):
        shutil.rmtree(os.path.join(state, "dovecot", sub, MBOX_USER),
                      ignore_errors=True)
    # the directory belongs to the mail user: Dovecot (running as it)
    # takes the mbox0000.lock dotlock there, as an MDA would
    os.makedirs(d, exist_ok=True)
    os.chown(d, uid, gid)
    os.chmod(d, 0o755)
    t0 = time.time()
    size, nmsg, nbig = write_mbox(mbox_path(state), MBOX_TARGET, uid, gid)
    el = time.time() - t0
    log("fixtures: mbox0000: %d messages (%d with attachments), %d octets "
        "in %.1f s (%.0f MB/s)" % (nmsg, nbig, size, el, size / el / 1e6))
    info = dict(want, size=str(size), messages=str(nmsg), big=str(nbig),
                generate_s="%.1f" % el)
    tmp = mbox_marker(state) + ".tmp"
    with open(tmp, "w") as f:
        f.write(" ".join("%s=%s" % kv for kv in sorted(info.items())) + "\n")
    os.rename(tmp, mbox_marker(state))
    return info
