"""
evtest: the shared harness of the evpop3d integration tests.

Every test class gets a fresh daemon in a fresh temporary directory:

    class T(evtest.ServerTestCase):
        CONFIG = {"pop3": {"enable_last": "no"}}     # overrides of DEFAULT_CONFIG

        def test_x(self):
            mb = self.fresh()                          # a user with an empty Maildir
            mb.add(b"Subject: x\n\nbody\n")
            c = self.connect()
            c.login(mb.user, mb.password)
            self.assertEqual(c.ok("STAT"), "+OK 1 20")

The daemon (EVPOP3D_BIN) runs in the foreground with its stderr read by a
thread that keeps every line; the listening ports are parsed from the
"event=listen addr=..." lines. At the end of the class the daemon gets
SIGTERM and must exit with status 0; a death by signal, a sanitizer report
or a registered secret (password, SASL response) in its log fails the class.

Only the python3 standard library is used. Set EVTEST_LOG=1 to print each
daemon's log to stderr when it is stopped, EVTEST_KEEP=1 to keep the temp
directories.
"""

import base64
import ctypes
import hashlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("EVPOP3D_BIN") or os.path.join(
    HERE, "..", "..", "build-it", "evpop3d")

# A command that runs the daemon (EVTEST_WRAPPER, split like a shell
# would, e.g. "valgrind --error-exitcode=99"; scripts/test --valgrind sets
# it). It must exec the daemon in its own process, as valgrind does, so
# that the daemon's pid is the one started. Under it everything is slower:
# EVTEST_TIMEOUT_SCALE multiplies every wait below (socket operations,
# log lines, start-up, stop).
WRAPPER = shlex.split(os.environ.get("EVTEST_WRAPPER", ""))
SCALE = float(os.environ.get("EVTEST_TIMEOUT_SCALE", "1"))

# Tests that cannot hold under the wrapper (they measure time, or the
# descriptor limit valgrind lowers): EVTEST_SKIP, one "Class.test: why"
# a line; ServerTestCase skips them with the reason.
SKIP = dict((k.strip(), v.strip()) for k, _, v in
            (l.partition(":") for l in
             os.environ.get("EVTEST_SKIP", "").splitlines()) if k.strip())

# Seconds any single socket operation may take before the test fails.
TIMEOUT = float(os.environ.get("EVTEST_TIMEOUT", "15")) * SCALE

# "2026-12-06T13:29:12.345+00:00 " (ISO 8601, milliseconds, UTC offset).
LOG_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}"
                       r"[+-]\d\d:\d\d ")

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
    "ERROR: UndefinedBehaviorSanitizer",
    "VALGRIND-ERROR-BEGIN",	# --error-markers of scripts/test --valgrind
)

DEFAULT_CONFIG = {
    "server": {
        "listen": "127.0.0.1:0",
        "hostname": "test.example",
        "login_timeout": "60",
        "idle_timeout": "600",
        "write_timeout": "300",
        "max_connections": "5000",
        "max_bad_commands": "20",
        # The tests run as root (CI does) on files they made as root;
        # test_privdrop.py starts the daemon with a user to drop to.
        "allow_root": "yes",
    },
    "auth": {
        "passwd_file": "passwd",
        "apop": "no",
        "failure_delay": "0",
        "max_failures": "3",
    },
    "mail": {
        "driver": "maildir",
        "location": "%h/Maildir",
    },
    "pop3": {
        "enable_last": "yes",
    },
}


# ---------------------------------------------------------------- helpers

def wire(data):
    """The POP3 wire form of a message (RFC 1939 section 3), unstuffed.

    Bare LF becomes CRLF, a lone CR stays, and a last line without a
    terminator gets CRLF. len(wire(x)) is what STAT/LIST must report.
    """
    out = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def stuff(wire_data):
    """Dot-stuff wire data and append the terminator: the exact RETR body."""
    lines = wire_data.split(b"\r\n")[:-1] if wire_data else []
    out = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                   for l in lines)
    return out + b".\r\n"


def openssl_passwd(password, algo="-6", salt="evtestsalt"):
    """crypt(3) hash via `openssl passwd` (-1 MD5, -5 SHA-256, -6 SHA-512)."""
    out = subprocess.run(["openssl", "passwd", algo, "-salt", salt,
                          "-stdin"], input=password.encode() + b"\n",
                         capture_output=True, check=True, timeout=30)
    return out.stdout.decode().strip()


def bcrypt_hash(password, cost=5):
    """A $2b$ hash of the given cost from libxcrypt through ctypes, or None
    if unavailable."""
    try:
        lib = ctypes.CDLL("libcrypt.so.1")
        lib.crypt_gensalt.restype = ctypes.c_char_p
        lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong,
                                      ctypes.c_char_p, ctypes.c_int]
        lib.crypt.restype = ctypes.c_char_p
        lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        salt = lib.crypt_gensalt(b"$2b$", cost, None, 0)
        if not salt:
            return None
        h = lib.crypt(password.encode(), salt)
        if not h or not h.startswith(b"$2b$"):
            return None
        return h.decode()
    except (OSError, AttributeError):
        return None


def ipv6_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


def plain_b64(user, password, authzid=""):
    return base64.b64encode(("%s\0%s\0%s" % (authzid, user, password))
                            .encode()).decode()


def apop_digest(timestamp, secret):
    return hashlib.md5((timestamp + secret).encode()).hexdigest()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def run(argv, check=True, **kw):
    """subprocess.run() with its output captured as text and a time limit;
    with check, a nonzero exit fails the test showing the output."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 600)
    r = subprocess.run(argv, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (
            " ".join(argv), r.returncode, r.stdout, r.stderr))
    return r


def tree(path):
    """Every path below path (relative), for "nothing was created" checks."""
    out = set()
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(root, n), path))
    return out


# ---------------------------------------------------------------- maildrops

class Mailbox:
    """A passwd-file user and its Maildir (<home>/Maildir/{cur,new,tmp})."""

    _seq = 0

    def __init__(self, user, password, home, stored=None, extra=""):
        self.user = user
        self.password = password
        self.stored = stored if stored is not None else "{PLAIN}" + password
        self.home = home
        self.extra = extra		# passwd-file field 8 (userdb_mail=...)
        self.maildir = os.path.join(home, "Maildir")
        self.ts = 1700000000
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub), exist_ok=True)

    def add(self, data, ts=None, name=None, folder="new", flags=None):
        """Deliver data; returns its UIDL (the file name up to ':').

        Without ts the messages get increasing timestamps, so the POP3
        message numbers follow the order of add() calls.
        """
        if isinstance(data, str):
            data = data.encode()
        if ts is None:
            self.ts += 10
            ts = self.ts
        if name is None:
            Mailbox._seq += 1
            name = "%d.M%dP%d.evtest" % (ts, Mailbox._seq, os.getpid())
        uidl = name
        if folder == "cur" or flags is not None:
            name += ":2," + (flags or "")
        path = os.path.join(self.maildir, folder, name)
        tmp = os.path.join(self.maildir, "tmp", uidl)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
        return uidl

    def files(self):
        """{uidl: path} of every message file in new/ and cur/."""
        out = {}
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir, sub)
            for n in os.listdir(d):
                if n.startswith("."):
                    continue
                out[n.split(":", 1)[0]] = os.path.join(d, n)
        return out

    def uidls(self):
        return sorted(self.files())

    def read(self, uidl):
        with open(self.files()[uidl], "rb") as f:
            return f.read()


# ---------------------------------------------------------------- daemon

class ServerError(Exception):
    pass


class Server:
    """One evpop3d process with its own temp dir, config and passwd-file."""

    def __init__(self, config=None, pool=12, tmpdir=None):
        self.dir = tmpdir or tempfile.mkdtemp(prefix="evtest-")
        self.config = {s: dict(kv) for s, kv in DEFAULT_CONFIG.items()}
        # The admin socket in the temp dir: daemons never share one.
        self.config["control"] = {"socket": os.path.join(self.dir,
                                                         "control")}
        for sect, kv in (config or {}).items():
            self.config.setdefault(sect, {}).update(kv)
        self.users = []
        self.pool = []
        self.secrets = set()
        self.proc = None
        # argv before the daemon's: a command that execs it (prlimit), so
        # that self.pid stays the daemon's
        self.prefix = []
        self.pass_fds = ()		# descriptors the daemon inherits
        self.lines = []
        self.raw_lines = []		# as written, timestamps included
        self.cond = threading.Condition()
        self.reader = None
        self.ports = []			# [(host, port)] as logged
        self.conf_path = os.path.join(self.dir, "evpop3d.ini")
        for i in range(pool):
            mb = self.add_user("pool%02d@example.com" % i,
                               "Pw-%02d-%s" % (i, os.urandom(4).hex()))
            self.pool.append(mb)

    # -- setup

    def add_user(self, user, password, stored=None, home=None, extra=""):
        """Add a passwd-file user with a Maildir; call before start().

        extra is the passwd-file extra field, e.g. "userdb_mail=mbox:PATH"
        for a user of another driver (store_locate() in src/store/registry.c).
        """
        if home is None:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", user) or "x"
            home = os.path.join(self.dir, "home", safe)
        mb = Mailbox(user, password, home, stored, extra)
        self.users.append(mb)
        self.secret(password)
        return mb

    def secret(self, s):
        """Register a string that must never appear in the daemon's log."""
        if s and len(s) >= 4:
            self.secrets.add(s)

    def fresh(self):
        """A pool user nobody has used yet, with an empty Maildir."""
        if not self.pool:
            raise ServerError("user pool exhausted; raise pool=")
        return self.pool.pop(0)

    def write_passwd(self):
        """Write the passwd-file atomically (a temporary file renamed over
        it), as the README tells operators: a reload never sees half."""
        path = os.path.join(self.dir, "passwd")
        with open(path + ".tmp", "w") as f:
            f.write("# evtest passwd-file\n")
            for mb in self.users:
                f.write("%s:%s::::%s::%s\n" % (mb.user, mb.stored, mb.home,
                                                 mb.extra))
        os.rename(path + ".tmp", path)

    def write_config(self, path=None, config=None):
        path = path or self.conf_path
        config = config or self.config
        with open(path, "w") as f:
            for sect, kv in config.items():
                f.write("[%s]\n" % sect)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")
        return path

    # -- lifecycle

    def start(self, wait=True):
        if not os.access(BIN, os.X_OK):
            raise ServerError("no daemon binary at %s (set EVPOP3D_BIN)" % BIN)
        self.write_passwd()
        self.write_config()
        self.proc = subprocess.Popen(self.prefix + WRAPPER +
                                     [BIN, "-c", self.conf_path],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE,
                                     pass_fds=self.pass_fds,
                                     cwd="/")	# relative paths: config dir
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        if wait:
            self.wait_ready()
        return self

    def _read_stderr(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.raw_lines.append(line)
                # The timestamp log.c puts before each line on a pipe
                # (test_log_targets.py checks it): the tests read the rest.
                self.lines.append(LOG_STAMP.sub("", line, count=1))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)		# EOF marker
            self.cond.notify_all()

    def log(self):
        with self.cond:
            return [l for l in self.lines if l is not None]

    def log_text(self):
        return "\n".join(self.log())

    def wait_log(self, pattern, timeout=10, start=0):
        """Wait for a log line (index >= start) matching pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SCALE
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if line is not None and rx.search(line):
                        return rx.search(line)
                left = deadline - time.monotonic()
                if left <= 0 or (self.lines and self.lines[-1] is None):
                    return None
                self.cond.wait(left)

    def metrics_port(self):
        """The port of [metrics] listen = 127.0.0.1:0, once it listens."""
        m = self.wait_log(r"event=metrics-listen addr=127\.0\.0\.1:(\d+)")
        assert m, self.log_text()
        return int(m.group(1))

    def wait_count(self, pattern, n, timeout=10, start=0):
        """Wait until n log lines (index >= start) match pattern; returns
        whether they did."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SCALE
        with self.cond:
            while True:
                if sum(1 for l in self.lines[start:]
                       if l is not None and rx.search(l)) >= n:
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or (self.lines and self.lines[-1] is None):
                    return False
                self.cond.wait(left)

    def wait_ready(self, timeout=20):
        n_listen = len([a for a in self.config["server"]["listen"].split(",")
                        if a.strip()])
        deadline = time.monotonic() + timeout * SCALE
        with self.cond:
            while True:
                have = [l for l in self.lines if l is not None]
                listens = [re.search(r"\bevent=listen\b.*\baddr=(\S+)", l)
                           for l in have]
                listens = [m.group(1) for m in listens if m]
                ready = any(re.search(r"\bevent=ready\b", l) for l in have)
                if ready and len(listens) >= n_listen:
                    break
                if self.lines and self.lines[-1] is None:
                    raise ServerError("daemon exited during startup:\n" +
                                      "\n".join(have))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServerError("daemon not ready after %ds:\n%s" %
                                      (timeout, "\n".join(have)))
                self.cond.wait(left)
        self.ports = []
        for a in listens:
            m = re.match(r"^\[(.*)\]:(\d+)$", a) or re.match(r"^(.*):(\d+)$", a)
            if not m:
                raise ServerError("cannot parse listen addr %r" % a)
            self.ports.append((m.group(1), int(m.group(2))))

    @property
    def port(self):
        for host, port in self.ports:
            if host == "127.0.0.1":
                return port
        return self.ports[0][1]

    def port_for(self, host):
        for h, p in self.ports:
            if h == host:
                return p
        raise ServerError("no listener on %s: %r" % (host, self.ports))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def terminate(self, timeout=10):
        """SIGTERM and wait; returns the exit status (negative: signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SCALE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                if self.reader:
                    self.reader.join(10)
                raise ServerError("daemon did not exit %ds after SIGTERM" %
                                  timeout)
        if self.reader:
            self.reader.join(10)
        return self.proc.returncode

    def kill(self):
        """Last-resort cleanup: SIGKILL by pid if still running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stderr:
            if self.reader:
                self.reader.join(5)
            self.proc.stderr.close()

    def cleanup(self):
        """Kill if needed and remove the temp dir (unless EVTEST_KEEP)."""
        self.kill()
        if not os.environ.get("EVTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def check_log(self):
        """Problems in the log: sanitizer reports, leaked secrets."""
        problems = []
        text = self.log_text()
        for m in SANITIZER_MARKERS:
            if m in text:
                problems.append("sanitizer report (%s) in the log" % m)
        for s in sorted(self.secrets):
            if s in text:
                problems.append("secret %r appears in the log" % s)
        # The daemon's own lines are printable ASCII (log.c escapes every
        # other byte as \xNN; a raw one decodes to U+FFFD or non-ASCII).
        for l in self.log():
            if (re.match(r"(?:\S+ )?(?:debug|info|warn|error) ", l) and
                    not re.fullmatch(r"[\x20-\x7e]*", l)):
                problems.append("unescaped byte in log line %r" % l[:120])
                break
        return problems

    def stop(self):
        """Graceful stop; raises AssertionError with the log tail if bad."""
        problems = []
        try:
            rc = self.terminate()
            if rc is not None and rc != 0:
                problems.append("daemon exit status %d (%s)" % (
                    rc, "signal %d" % -rc if rc < 0 else "expected 0"))
        except ServerError as e:
            problems.append(str(e))
        finally:
            self.kill()
        problems += self.check_log()
        if os.environ.get("EVTEST_LOG"):
            sys.stderr.write("---- evpop3d log (%s)\n%s\n----\n" %
                             (self.dir, self.log_text()))
        if not os.environ.get("EVTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            tail = "\n".join(self.log()[-60:])
            raise AssertionError("; ".join(problems) +
                                 "\n---- log tail:\n" + tail)


# ---------------------------------------------------------------- client

class Closed(Exception):
    """The server closed the connection."""


class Conn:
    """A raw POP3 client: exact bytes, strict checks on every reply line."""

    def __init__(self, port, host="127.0.0.1", timeout=TIMEOUT, rcvbuf=None,
                 greet=True):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False
        self.greeting = self.status() if greet else None

    # -- raw I/O

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, n=65536):
        if self.eof:
            raise Closed("connection closed by server")
        try:
            d = self.sock.recv(n)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            raise Closed("connection closed by server")
        self.buf += d

    def _take(self, n):
        d = bytes(self.buf[:n])
        del self.buf[:n]
        return d

    def readline(self):
        """One line without its CRLF; a bare LF from the server fails."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = self._take(i + 1)
                if not line.endswith(b"\r\n"):
                    raise AssertionError("server sent a bare LF: %r" %
                                         line[-80:])
                return line[:-2]
            start = len(self.buf)
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill(max(65536, n - len(self.buf)))
        return self._take(n)

    def multi_raw(self):
        """The raw (still stuffed) body of a multi-line reply, with ".\r\n"."""
        start = 0
        while True:
            if self.buf[:3] == b".\r\n":
                return self._take(3)
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                return self._take(i + 5)
            start = max(0, len(self.buf) - 4)
            self._fill(1 << 20)

    def status(self):
        """A status line: "+OK ..." / "-ERR ..." (or a "+ " continuation)."""
        raw = self.readline()
        if len(raw) + 2 > 512:
            raise AssertionError("status line over 512 octets: %r" % raw[:80])
        line = raw.decode("latin-1")
        if not (line == "+OK" or line.startswith("+OK ") or
                line == "-ERR" or line.startswith("-ERR ") or
                line == "+" or line.startswith("+ ")):
            raise AssertionError("malformed status line %r" % line)
        return line

    def multi(self):
        """The body of a multi-line reply, unstuffed, without ".\r\n"."""
        lines = []
        while True:
            l = self.readline()
            if l == b".":
                return lines
            if l.startswith(b"."):
                l = l[1:]
            lines.append(l)

    # -- commands

    def cmd(self, line):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.status()

    def ok(self, line):
        r = self.cmd(line)
        if not r.startswith("+OK"):
            raise AssertionError("%r -> %r, expected +OK" % (_show(line), r))
        return r

    def err(self, line):
        r = self.cmd(line)
        if not r.startswith("-ERR"):
            raise AssertionError("%r -> %r, expected -ERR" % (_show(line), r))
        return r

    def ok_multi(self, line):
        r = self.ok(line)
        return r, self.multi()

    def retr(self, n):
        """RETR n; returns the message in wire form (CRLF, unstuffed)."""
        self.ok("RETR %d" % n)
        return b"".join(l + b"\r\n" for l in self.multi())

    def login(self, user, password):
        self.ok("USER " + user)
        return self.ok("PASS " + password)

    def quit(self):
        r = self.cmd("QUIT")
        self.expect_closed()
        return r

    def expect_closed(self, timeout=5):
        """Wait for EOF; returns whatever lines came first."""
        timeout *= SCALE
        self.sock.settimeout(timeout)
        lines = []
        try:
            while True:
                lines.append(self.readline())
        except Closed:
            return lines
        except socket.timeout:
            raise AssertionError("server did not close the connection "
                                 "within %ss (got %r)" % (timeout, lines[:5]))
        finally:
            self.sock.settimeout(self.timeout)

    def is_open(self, wait=0.2):
        """True if the server has not closed the connection (no data read)."""
        self.sock.settimeout(wait)
        try:
            d = self.sock.recv(1, socket.MSG_PEEK)
            return d != b""
        except socket.timeout:
            return True
        except ConnectionResetError:
            return False
        finally:
            self.sock.settimeout(self.timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _show(line):
    s = line if isinstance(line, str) else line.decode("latin-1")
    return s if len(s) < 80 else s[:77] + "..."


def parse_list(lines):
    """["1 120", ...] -> {1: 120, ...}"""
    out = {}
    for l in lines:
        n, size = l.decode().split()
        out[int(n)] = int(size)
    return out


# ---------------------------------------------------------------- test base

def login_retry(connect, mb, timeout=5, code="[IN-USE]"):
    """Log in on connect() (a new Conn each time), retrying while PASS
    answers code ("-ERR": any refusal) for up to timeout seconds (scaled);
    returns the logged-in Conn, or raises AssertionError."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        c = connect()
        c.ok("USER " + mb.user)
        r = c.cmd("PASS " + mb.password)
        if r.startswith("+OK"):
            return c
        c.close()
        if code not in r or time.monotonic() > deadline:
            raise AssertionError("login failed: %r" % r)
        time.sleep(0.05)


class ServerTestCase(unittest.TestCase):
    """A fresh daemon and temp dir per test class."""

    CONFIG = {}
    POOL = 24
    START = True

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for name, why in SKIP.items():
            c, _, m = name.partition(".")
            if c == cls.__name__ and m in cls.__dict__:
                setattr(cls, m, unittest.skip(why)(cls.__dict__[m]))

    @classmethod
    def setup_users(cls, srv):
        """Hook: add users or mail before the daemon starts."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(config=cls.CONFIG, pool=cls.POOL)
        cls.addClassCleanup(cls.srv.cleanup)
        cls.setup_users(cls.srv)
        if cls.START:
            cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def fresh(self):
        return self.srv.fresh()

    def connect(self, **kw):
        host = kw.pop("host", "127.0.0.1")
        port = kw.pop("port", None) or self.srv.port_for(host)
        c = Conn(port, host=host, **kw)
        self.addCleanup(c.close)
        return c

    def failed_login_time(self, c, user):
        """USER user and a wrong PASS on c: seconds until the -ERR."""
        c.ok("USER " + user)
        t = time.monotonic()
        c.err("PASS wrong-password")
        return time.monotonic() - t

    def assertDelay(self, took, want_ms, early=0.005, slack=1.0):
        """took seconds is want_ms: no earlier than timer rounding allows
        (early), no later than slack (scaled) on a busy machine."""
        self.assertGreaterEqual(took, want_ms / 1000 - early)
        self.assertLess(took, want_ms / 1000 + slack * SCALE)

    def login(self, mb, **kw):
        c = self.connect(**kw)
        c.login(mb.user, mb.password)
        return c

    def login_retry(self, mb, timeout=5, code="[IN-USE]"):
        """Log in, retrying while PASS answers code: by default [IN-USE],
        while a dropped session's maildrop is still being released (that
        happens on a worker thread); [SYS/TEMP] while a user database
        comes back."""
        return login_retry(self.connect, mb, timeout=timeout, code=code)

    def assertOK(self, reply, msg=None):
        self.assertTrue(reply.startswith("+OK"), msg or reply)

    def assertERR(self, reply, msg=None):
        self.assertTrue(reply.startswith("-ERR"), msg or reply)


def main():
    unittest.main(verbosity=2)
