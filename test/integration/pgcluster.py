"""
pgcluster: a throw-away PostgreSQL for the tests and the benchmark
([auth] driver = pgsql).

Debian's binaries (/usr/lib/postgresql/*/bin): initdb into a temp dir as
an unprivileged user (nobody when run as root: postgres refuses root),
then postgres on a unix socket only (listen_addresses = ''), in a process
group of its own so that the whole server can be paused (SIGSTOP) and
resumed. Trust authentication for the user "postgres" on the socket;
every statement logged (log_statement = all) to PgCluster.logfile, so a
test can count the queries evpop3d sent. Only the standard library.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time


def bindir():
    """The newest /usr/lib/postgresql/N/bin holding initdb, or None."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                  key=lambda p: int(p.split("/")[4])
                  if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(dirs[-1]) if dirs else None


# The Dovecot-style users table (Dovecot's doc/example-config/dovecot-sql).
SCHEMA = """
CREATE TABLE users (
    userid   text PRIMARY KEY,
    password text NOT NULL,
    home     text,
    uid      integer,
    gid      integer,
    mail     text
);
"""


def quote(s):
    """A SQL string literal (or NULL) for the tests' own statements."""
    if s is None:
        return "NULL"
    return "'" + str(s).replace("'", "''") + "'"


class PgCluster:
    def __init__(self, tmpdir=None, scale=1.0, log_statements=True):
        self.log_statements = log_statements
        self.bin = bindir()
        if self.bin is None:
            raise RuntimeError("no PostgreSQL binaries "
                               "(/usr/lib/postgresql/*/bin; scripts/deps)")
        self.scale = scale
        self.dir = tmpdir or tempfile.mkdtemp(prefix="evtest-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.proc = None
        self.user = None
        if os.geteuid() == 0:
            self.user = "nobody"
            pw = pwd.getpwnam(self.user)
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        os.makedirs(self.sock, exist_ok=True)
        os.makedirs(self.data, mode=0o700, exist_ok=True)
        open(self.logfile, "a").close()
        if self.user:
            for p in (self.sock, self.data, self.logfile):
                os.chown(p, self.uid, self.gid)
        self._as(["initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync", "--locale=C"])

    def _as(self, argv, **kw):
        argv = [os.path.join(self.bin, argv[0])] + argv[1:]
        if self.user:
            kw["user"] = self.uid
            kw["group"] = self.gid
            kw["extra_groups"] = []
        kw.setdefault("capture_output", True)
        kw.setdefault("timeout", 120)
        r = subprocess.run(argv, cwd=self.dir, **kw)
        if r.returncode != 0:
            raise RuntimeError("%s: exit %d\n%s%s" % (
                " ".join(argv), r.returncode, r.stdout.decode(),
                r.stderr.decode()))
        return r

    @property
    def conninfo(self):
        return "host=%s dbname=postgres user=postgres" % self.sock

    def start(self, timeout=30):
        """Start the server (unless it runs); returns once it accepts
        connections."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self.logfile, "ab")
        kw = {}
        if self.user:
            kw = {"user": self.uid, "group": self.gid, "extra_groups": []}
        self.proc = subprocess.Popen(
            [os.path.join(self.bin, "postgres"), "-D", self.data,
             "-k", self.sock, "-c", "listen_addresses=",
             "-c", "log_statement=%s" % (
                 "all" if self.log_statements else "none"),
             "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir,
            start_new_session=True, **kw)
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=30):
        """Poll pg_isready (it answers at once) until the server accepts,
        or fail: the server exited, or timeout."""
        deadline = time.monotonic() + timeout * self.scale
        isready = os.path.join(self.bin, "pg_isready")
        while True:
            r = subprocess.run([isready, "-q", "-h", self.sock, "-U",
                                "postgres", "-d", "postgres", "-t", "1"],
                               capture_output=True, timeout=30)
            if r.returncode == 0:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited:\n" + self.log_text())
            if time.monotonic() > deadline:
                raise RuntimeError("postgres not ready:\n" + self.log_text())
            time.sleep(0.05)

    def psql(self, sql):
        """Run sql; returns the output rows (unaligned, tab-separated)."""
        r = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q",
                            "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t",
                            "-h", self.sock, "-U", "postgres", "-d",
                            "postgres", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("psql: %s" % r.stderr)
        return [l for l in r.stdout.splitlines() if l]

    def add_user(self, user, stored, home=None, mail=None, uid=None,
                 gid=None, table="users"):
        self.psql("INSERT INTO %s (userid, password, home, uid, gid, mail) "
                  "VALUES (%s, %s, %s, %s, %s, %s)" % (
                      table, quote(user), quote(stored), quote(home),
                      quote(uid), quote(gid), quote(mail)))

    def log_text(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def pids(self):
        """The postmaster's pid and its children's (each backend is in a
        session of its own: a process group signal misses them)."""
        pids = [self.proc.pid]
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                pids.append(int(d))
        return pids

    def signal(self, signo):
        """signo to the whole server (postmaster and backends), by pid."""
        for pid in self.pids():
            try:
                os.kill(pid, signo)
            except ProcessLookupError:
                pass

    def crash(self):
        """Immediate shutdown (SIGQUIT): every backend exits at once, as
        in a crash; start() again recovers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            self.proc.wait(30)

    def stop(self):
        """Fast shutdown (SIGINT) by pid; SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def cleanup(self):
        self.stop()
        if not os.environ.get("EVTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
