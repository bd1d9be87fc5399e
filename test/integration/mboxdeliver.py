"""
mboxdeliver: mbox fixtures and a locking mbox appender for the tests.

An mbox entry is a "From " separator line, the message with its body
lines quoted mboxrd style (">From " gets one more '>'), and the blank line
writers put between messages. deliver() appends one entry the way a local
MDA does (Postfix local, procmail, dovecot-lda):

 1. the dotlock <mbox>.lock, created with O_CREAT|O_EXCL (retried while
    another program holds it),
 2. an fcntl write lock (F_SETLKW) on the mbox descriptor,
 3. a check that the path still names the locked inode (a rename over
    the mbox while we waited means: unlock, reopen, lock again),
 4. append, fsync, unlock, remove the dotlock.

Run as a program it is a delivery loop for the fault tests:

    python3 mboxdeliver.py MBOX COUNT INTERVAL

appends loop_entry(0) .. loop_entry(COUNT - 1), INTERVAL seconds apart,
printing each index on stdout once its entry is on disk; SIGTERM stops it
between two deliveries (never inside one).

Only the python3 standard library is used.
"""

import fcntl
import os
import re
import signal
import sys
import time

# A separator line as the parser must accept it: "From ADDR asctime-DATE".
FROM_RX = re.compile(rb"^From \S+ [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d "
                     rb"\d\d:\d\d:\d\d \d{4}\r?\n", re.M)


def from_line(sender="MAILER-DAEMON", t=1704103200, crlf=False):
    """A separator line with an asctime(3) date (UTC)."""
    line = "From %s %s" % (sender, time.asctime(time.gmtime(t)))
    return line.encode() + (b"\r\n" if crlf else b"\n")


def quote(msg):
    """mboxrd quoting of a message: one more '>' before ^>*From ."""
    return re.sub(rb"(?m)^(>*From )", rb">\1", msg)


def entry(msg, sender="MAILER-DAEMON", t=1704103200, eol=b"\n"):
    """The raw mbox entry of msg: separator, quoted message, blank line.

    A message not ending in a newline gets eol first, as writers do.
    """
    q = quote(msg)
    if q and not q.endswith(b"\n"):
        q += eol
    return from_line(sender, t, eol == b"\r\n") + q + eol


def split(data):
    """The raw entries of an mbox file written by entry(): each from its
    separator line up to the next one (blank line included)."""
    starts = [m.start() for m in FROM_RX.finditer(data)]
    if data and (not starts or starts[0] != 0):
        raise ValueError("not an mbox made by entry()")
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


def add_user(srv, user, password=None, path=None, spec=None):
    """A passwd-file user of srv whose maildrop is the mbox file path
    (default <srv.dir>/spool/<user>), through userdb_mail=mbox:SPEC in the
    extra field. The returned evtest.Mailbox gets .mbox = path."""
    if path is None:
        path = os.path.join(srv.dir, "spool", user)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mb = srv.add_user(user, password or "Mb-" + os.urandom(6).hex(),
                      extra="userdb_mail=mbox:" + (spec or path))
    mb.mbox = path
    return mb


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------- delivery

class LockTimeout(Exception):
    pass


def _dotlock(lockpath, deadline):
    while True:
        try:
            fd = os.open(lockpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         0o644)
        except FileExistsError:
            if time.monotonic() > deadline:
                raise LockTimeout("dotlock %s held too long" % lockpath)
            time.sleep(0.002)
            continue
        os.write(fd, b"%d\n" % os.getpid())
        os.close(fd)
        return


def deliver(path, raw, timeout=30):
    """Append the raw entry (see entry()) to the mbox at path under the
    dotlock and fcntl locks; returns once it is on disk."""
    lockpath = path + ".lock"
    deadline = time.monotonic() + timeout
    _dotlock(lockpath, deadline)
    try:
        while True:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)		# F_SETLKW, F_WRLCK
                st, fst = os.stat(path), os.fstat(fd)
                if (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
                    # Replaced while we waited: lock the new file.
                    fcntl.lockf(fd, fcntl.LOCK_UN)
                    continue
                off = 0
                while off < len(raw):
                    off += os.write(fd, raw[off:])
                os.fsync(fd)
                fcntl.lockf(fd, fcntl.LOCK_UN)
                return
            finally:
                os.close(fd)
    finally:
        os.unlink(lockpath)


def loop_entry(i):
    """The i-th message of the delivery loop, as a raw mbox entry."""
    msg = (b"From: deliver@example.com\n"
           b"Message-ID: <loop-%06d@example.com>\n"
           b"Subject: loop delivery %d\n\n" % (i, i) +
           b"".join(b"line %d of message %d %s\n" % (j, i, b"z" * (i % 40))
                    for j in range(i % 23 + 1)) +
           (b"From the loop, a body line to quote\n" if i % 3 == 0 else b""))
    return entry(msg, "deliver@example.com", 1704103200 + i)


def _loop(path, count, interval):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    for i in range(count):
        if stop:
            break
        deliver(path, loop_entry(i))
        sys.stdout.write("%d\n" % i)
        sys.stdout.flush()
        time.sleep(interval)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: mboxdeliver.py MBOX COUNT INTERVAL")
    _loop(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
