#!/usr/bin/env python3
"""
bench.py: the body of scripts/bench, run by it after the dependencies are
installed and build-bench/ is built. See scripts/bench --help.

It makes the fixtures (fixtures.py), starts evpop3d, Dovecot and the null
responder on loopback ports, drives evpop3d-swarm against them in
alternation and writes the tables, doc/bench/report.md, results.json and
gnuplot charts (report.py). Every process it starts is recorded by pid and
stopped on exit, Ctrl-C and SIGTERM; nothing else is touched.
"""

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixtures  # noqa: E402
from figures import g  # noqa: E402
import report  # noqa: E402
import tlsbench  # noqa: E402
import pgbench  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
STATE = os.path.join(ROOT, "state", "bench")
BUILD = os.path.join(ROOT, "build-bench")
SWARM_DIR = os.path.join(ROOT, "scripts", "swarm")
# loopback source addresses no test uses: Dovecot's per-IP penalties and
# anvil counters never see the tests' 127.0.0.1
SOURCES = "127.0.9.1,127.0.9.2,127.0.9.3,127.0.9.4"
PORTS = {"evpop3d": 11101, "dovecot": 11102, "nullpop": 11103,
         "evpop3d-w2": 11106}
THROUGHPUT_SCENARIOS = ["full", "login", "pipeline"]
CONCURRENCY = [10, 50, 500]
PHASES = ["throughput", "idle", "retr-big", "churn", "responsiveness"] + \
    tlsbench.PHASES + pgbench.PHASES
BIG_SIZE = 20 * 1024 * 1024
IDLE_USERS = 20000		# idle00000..idle19999 in the fixtures
IDLE_RATE = 4000		# logins/s while the idle runs ramp up
LOG_ROTATE = 64 * 1024 * 1024	# truncate a server log beyond this
# swarm reply timeout of the mbox logins: the first one may build
# Dovecot's index of 2 GiB (the default 30 s is for ordinary replies)
MBOX_REPLY_TIMEOUT_MS = 900000

CHILDREN = []			# every Popen we started, for cleanup
CLK_TCK = os.sysconf("SC_CLK_TCK")
# A run is "disturbed" when processes other than the swarm and the server
# used more than this share of one core (the bench script itself and the
# kernel's housekeeping always use a little; the report lists the share
# measured for every run).
FOREIGN_MAX = 0.15


def cpu_busy_us():
    """CPU time the whole machine spent busy so far (all cores, /proc/stat:
    user, nice, system, irq, softirq, steal), in microseconds."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * 1e6 / CLK_TCK


def srv_children(r):
    return bool(g_server(r).get("children"))


def g_server(r):
    return r.get("server") or {}


class BenchError(Exception):
    pass


def say(msg):
    print(msg, flush=True)


def warn(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------ processes

def spawn(argv, **kw):
    """Start a child in its own session (Ctrl-C on the terminal reaches
    only us; we stop the children in order)."""
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    CHILDREN.append(p)
    return p


def descendants(pid):
    """Pids of all live descendants of pid (from /proc/*/stat)."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        # the comm field may hold spaces and parens: ppid follows the last ')'
        parent[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out.extend(kids)
        todo.extend(kids)
    return out


def stop_proc(p, timeout=15.0, tree=False):
    """SIGTERM p (a child we started), SIGKILL after timeout. With tree,
    also SIGKILL any of its descendants still alive then (by pid)."""
    if p is None:
        return
    kids = descendants(p.pid) if tree and p.poll() is None else []
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            warn("pid %d did not stop on SIGTERM; SIGKILL" % p.pid)
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
    deadline = time.time() + 5
    for k in kids:
        while time.time() < deadline and os.path.exists("/proc/%d" % k):
            time.sleep(0.05)
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if p in CHILDREN:
        CHILDREN.remove(p)


def cleanup():
    for p in list(reversed(CHILDREN)):
        try:
            stop_proc(p, timeout=10, tree=True)
        except Exception as e:  # keep stopping the others
            warn("stopping pid %d: %s" % (p.pid, e))


def on_signal(signo, frame):
    raise KeyboardInterrupt("signal %d" % signo)


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            lines = f.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pop3_check(port, user="bench0000", password=fixtures.PASSWORD,
               timeout=10.0):
    """Log in with poplib and STAT; returns the STAT tuple."""
    import poplib
    p = poplib.POP3("127.0.0.1", port, timeout=timeout)
    try:
        p.user(user)
        p.pass_(password)
        return p.stat()
    finally:
        try:
            p.quit()
        except Exception:
            pass


def wait_for(pred, timeout, what, proc=None, logpath=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise BenchError("%s: exited with status %s\n%s" % (
                what, proc.returncode, tail(logpath) if logpath else ""))
        time.sleep(0.05)
    raise BenchError("%s: not ready after %.0f s\n%s" % (
        what, timeout, tail(logpath) if logpath else ""))


# ------------------------------------------------------------ servers

class Server:
    name = "?"
    children = False	# count descendants (swarm -C)

    def __init__(self):
        self.port = PORTS[self.name]
        self.proc = None
        self.log = None

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        stop_proc(self.proc, tree=self.children)
        self.proc = None

    def rotate_log(self):
        """Server logs are opened with O_APPEND: truncating is safe."""
        try:
            if self.log and os.path.getsize(self.log) > LOG_ROTATE:
                os.truncate(self.log, 0)
        except OSError:
            pass

    def check(self):
        if not self.alive():
            raise BenchError("%s died (status %s)\n%s" % (
                self.name, self.proc and self.proc.returncode,
                tail(self.log)))


class Evpop3d(Server):
    name = "evpop3d"

    def __init__(self, passwd, workers=1):
        super().__init__()
        # [server] workers = N > 1: the swarm samples the supervisor and
        # its worker processes (-C), so cpu_us is all of them summed.
        self.workers = workers
        self.children = workers > 1
        self.bin = os.path.join(BUILD, "evpop3d")
        self.ini = os.path.join(STATE, "evpop3d.ini")
        self.log = os.path.join(STATE, "evpop3d.log")
        self.passwd = passwd

    def settings(self):
        return ("; written by scripts/bench\n"
                "[server]\n"
                "listen = 127.0.0.1:%d\n"
                "hostname = bench.example\n"
                "idle_timeout = 600\n"
                "max_connections = 25000\n"
                "workers = %d\n"
                # the fixtures belong to the user running the bench
                "allow_root = %s\n"
                "[auth]\n"
                "passwd_file = %s\n"
                "failure_delay = 0\n"
                # the swarm connects from several loopback addresses
                # (tls-idle: 127.0.9.1-4, 4,750 sessions each)
                "limits_exempt = 127.0.0.0/8, ::1\n"
                "threads = 2\n"
                "[mail]\n"
                "driver = maildir\n"
                "location = %%h/Maildir\n"
                # the admin socket beside the state, not in /run
                "[control]\n"
                "socket = %s\n" % (
                    self.port, self.workers,
                    "yes" if os.geteuid() == 0 else "no",
                    self.passwd, os.path.join(STATE, "control")))

    def start(self):
        with open(self.ini, "w") as f:
            f.write(self.settings())
        with open(self.log, "wb"):
            pass
        with open(self.log, "ab") as logf:
            self.proc = spawn([self.bin, "-c", self.ini],
                              stdin=subprocess.DEVNULL, stdout=logf,
                              stderr=logf)

        def ready():
            with open(self.log, "rb") as f:
                return b"event=ready" in f.read(1 << 20)
        wait_for(ready, 20, "evpop3d", self.proc, self.log)
        pop3_check(self.port)


class Evpop3dWorkers(Evpop3d):
    """The throughput phase's evpop3d with [server] workers = 2, beside
    the single process, in the same rounds."""
    name = "evpop3d-w2"

    def __init__(self, passwd):
        super().__init__(passwd, workers=2)
        self.ini = os.path.join(STATE, "evpop3d-w2.ini")
        self.log = os.path.join(STATE, "evpop3d-w2.log")

    def settings(self):
        return super().settings().replace(
            os.path.join(STATE, "control"),
            os.path.join(STATE, "control-w2"))


class Dovecot(Server):
    name = "dovecot"
    children = True

    def __init__(self, passwd, uid, gid):
        super().__init__()
        self.dir = os.path.join(STATE, "dovecot")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")
        self.out = os.path.join(self.dir, "dovecot.out")
        self.passwd, self.uid, self.gid = passwd, uid, gid

    def settings(self):
        with open(os.path.join(HERE, "dovecot.conf.in")) as f:
            t = f.read()
        for k, v in (("STATE", STATE), ("PASSWD", self.passwd),
                     ("UID", self.uid), ("GID", self.gid),
                     ("PORT", self.port)):
            t = t.replace("@%s@" % k, str(v))
        return t

    def start(self):
        # mbox-root: mbox0000's mbox root directory (fixtures.py), empty:
        # Dovecot wants one besides the INBOX file
        for d in ("run", "lib", "index", "control", "mbox-root"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        for d in ("index", "control", "mbox-root"):
            os.chown(os.path.join(self.dir, d), self.uid, self.gid)
        pidfile = os.path.join(self.dir, "run", "master.pid")
        try:
            with open(pidfile) as f:
                old = int(f.read().split()[0])
            if os.path.exists("/proc/%d" % old):
                raise BenchError(
                    "a Dovecot with base_dir %s/run is still running (pid "
                    "%d, from an earlier bench?); stop it first" % (
                        self.dir, old))
        except (OSError, ValueError, IndexError):
            pass
        with open(self.conf, "w") as f:
            f.write(self.settings())
        with open(self.log, "wb"):
            pass
        with open(self.out, "wb") as outf:
            self.proc = spawn(["dovecot", "-F", "-c", self.conf],
                              stdin=subprocess.DEVNULL, stdout=outf,
                              stderr=subprocess.STDOUT)

        def greets():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), 1)
            except OSError:
                return False
            try:
                s.settimeout(2)
                return s.recv(64).startswith(b"+OK")
            except OSError:
                return False
            finally:
                s.close()
        try:
            wait_for(greets, 20, "dovecot", self.proc, self.log)
            pop3_check(self.port)
        except Exception as e:
            raise BenchError("Dovecot did not come up: %s\n--- %s:\n%s\n"
                             "--- %s:\n%s" % (str(e).split("\n")[0],
                                              self.out, tail(self.out),
                                              self.log, tail(self.log)))


class Nullpop(Server):
    name = "nullpop"

    def __init__(self):
        super().__init__()
        self.bin = os.path.join(BUILD, "evpop3d-nullpop")
        self.log = os.path.join(STATE, "nullpop.log")
        self.big = False

    def start(self, big=False):
        self.big = big
        argv = [self.bin, "-l", "127.0.0.1:%d" % self.port, "-m", "10",
                "-s", "4096"]
        if big:
            argv += ["-b", str(BIG_SIZE)]
        with open(self.log, "wb") as logf:
            self.proc = spawn(argv, stdin=subprocess.DEVNULL, stdout=logf,
                              stderr=logf)

        def ready():
            with open(self.log, "rb") as f:
                return b"nullpop listening" in f.read()
        wait_for(ready, 10, "nullpop", self.proc, self.log)
        pop3_check(self.port)


# ------------------------------------------------------------ the swarm

class Bench:
    def __init__(self, args, mbox=None):
        self.args = args
        self.mbox = mbox	# fixtures.ensure_mbox()'s marker, or None
        self.swarm = os.path.join(BUILD, "evpop3d-swarm")
        self.runid = time.strftime("%Y%m%d-%H%M%S")
        self.resdir = os.path.join(STATE, "results", self.runid)
        os.makedirs(self.resdir)
        latest = os.path.join(STATE, "results", "latest")
        try:
            os.unlink(latest)
        except FileNotFoundError:
            pass
        os.symlink(self.runid, latest)
        self.servers = {}
        self.nrun = 0
        self.problems = []	# for the report: failed runs, violations
        self.data = {"throughput": {}, "idle": {}, "retr-big": {},
                     "churn": {}, "responsiveness": {}, "warmup": {},
                     "resp-warmup": {}}
        self.disturbed = []	# runs with foreign CPU load
        self.foreign_max = 0.0
        self.foreign_by_run = {}	# run name -> other load, share of a core

    # one swarm invocation -------------------------------------------------
    def swarm_argv(self, srv, scenario, c, duration, users="bench%04d",
                   user_count=1000, n=None, rate=None, var=(),
                   sample=True, reply_timeout_ms=None, port=None,
                   extra=()):
        """port: instead of srv.port (a TLS port); extra: more options
        (--tls, --stls, --tls-resume)."""
        argv = [self.swarm, "--json", "-q", "-H", "127.0.0.1",
                "-p", str(port or srv.port), "-c", str(c), "-d", str(duration),
                "-s", SOURCES, "-u", users, "--user-count", str(user_count),
                "-P", fixtures.PASSWORD]
        if reply_timeout_ms:
            argv += ["--reply-timeout", str(reply_timeout_ms)]
        if n:
            argv += ["-n", str(n)]
        if rate:
            argv += ["-r", str(rate)]
        for v in var:
            argv += ["-D", v]
        if sample:
            argv += ["-S", str(srv.pid)]
            if srv.children:
                argv += ["-C"]
        argv += list(extra)
        argv.append(scenario)
        return argv

    def start_swarm(self, name, argv):
        out = open(os.path.join(self.resdir, name + ".json"), "wb")
        err = open(os.path.join(self.resdir, name + ".err"), "wb")
        env = dict(os.environ, EVPOP3D_SWARM_DIR=SWARM_DIR)
        with open(os.path.join(self.resdir, name + ".cmd"), "w") as f:
            f.write(" ".join(argv) + "\n")
        p = spawn(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                  env=env)
        out.close()
        err.close()
        return p

    def finish_swarm(self, name, p, timeout, srv):
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_proc(p, timeout=5)
            raise BenchError("%s: the swarm ran over its %d s safety "
                             "timeout" % (name, timeout))
        finally:
            if p in CHILDREN:
                CHILDREN.remove(p)
        errpath = os.path.join(self.resdir, name + ".err")
        if p.returncode not in (0, 1):
            raise BenchError("%s: evpop3d-swarm exited with %d\n%s" % (
                name, p.returncode, tail(errpath, 15)))
        try:
            with open(os.path.join(self.resdir, name + ".json")) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            raise BenchError("%s: no JSON report from the swarm (%s)\n%s" % (
                name, e, tail(errpath, 15)))
        if srv is not None:
            srv.check()
            srv.rotate_log()
        bad = r["violations"]["total"]
        failed = r["sessions"]["failed"]
        if bad or failed:
            kinds = {k: v for k, v in r["violations"]["by_kind"].items() if v}
            self.problems.append("%s: %d violations %s, %d failed sessions"
                                 % (name, bad, kinds, failed))
        return r

    def run(self, name, srv, scenario, c, duration, label=None,
            retry=True, before=None, check=True, **kw):
        """One swarm run, checked for CPU load from other processes. A
        disturbed run is repeated once (after before(), e.g. a fixture
        restore), when the machine is quiet again; the first attempt's
        files are kept as NAME-disturbed.*."""
        sample = kw.get("sample", True) and check
        for attempt in (1, 2):
            if before:
                before()
            self.nrun += 1
            argv = self.swarm_argv(srv, scenario, c, duration, **kw)
            busy0, t0 = cpu_busy_us(), time.time()
            p = self.start_swarm(name, argv)
            r = self.finish_swarm(name, p, duration + 90 + (
                kw.get("reply_timeout_ms") or 0) // 1000, srv)
            last = attempt == 2 or not retry or not sample or \
                self.args.noisy
            if sample:
                self.foreign(name, r, busy0, t0, record=last)
            self.progress(label or name, r)
            if last or r["bench_foreign_cpu"] <= FOREIGN_MAX:
                return r
            self.keep_disturbed(name)
            say("      disturbed by other processes: repeating it when the "
                "machine is quiet")
            self.wait_quiet()
        return r

    def keep_disturbed(self, name):
        """Rename a disturbed run's files out of the way of its repeat."""
        for ext in (".json", ".err", ".cmd"):
            base = os.path.join(self.resdir, name)
            if os.path.exists(base + ext):
                os.replace(base + ext, base + "-disturbed" + ext)

    def wait_quiet(self, limit=60.0):
        """Wait until other processes use less than FOREIGN_MAX of a core
        (sampled over 0.5 s; our servers are idle between runs), at most
        limit seconds. Returns True if the machine got quiet. With
        --noisy, returns False at once."""
        if self.args.noisy:
            return False
        deadline = time.time() + limit
        while True:
            busy0, t0 = cpu_busy_us(), time.time()
            time.sleep(0.5)
            share = (cpu_busy_us() - busy0) / 1e6 / (time.time() - t0)
            if share <= FOREIGN_MAX:
                return True
            if time.time() > deadline:
                warn("the machine is still busy (%.0f%% of a core); going "
                     "on" % (100 * share))
                return False

    def foreign(self, name, r, busy0, t0, other_us=0.0, record=True):
        """Check that nothing else ran on the machine during a run: the
        machine's busy CPU time minus the swarm's and the server's (and
        other_us, e.g. a concurrent load swarm's). Records the share of
        one core in r["bench_foreign_cpu"], and in the report for the
        attempt that is kept: a clean one, or (record) the last one, which
        goes on the problem list if it was disturbed."""
        el = max(time.time() - t0, 0.001)
        own = g_server(r).get("cpu_us", 0) + \
            (r.get("client") or {}).get("cpu_us", 0) + other_us
        share = (cpu_busy_us() - busy0 - own) / 1e6 / el
        if el < 1.0:
            share = 0.0	# too short to tell (reaped children lag)
        r["bench_foreign_cpu"] = round(share, 3)
        if not record and share > FOREIGN_MAX:
            return share	# repeated; the repeat is recorded
        self.foreign_by_run[name] = round(share, 3)
        self.foreign_max = max(self.foreign_max, share)
        if share > FOREIGN_MAX:
            self.disturbed.append(name)
            self.problems.append(
                "%s: other processes used %.0f%% of a core during the run: "
                "its numbers are disturbed" % (name, 100 * share))
        return share

    def progress(self, label, r):
        s = r.get("server") or {}
        msg = "[%3d] %-34s" % (self.nrun, label)
        if r["scenario"] == "idle":
            noop = r["latency_us"]["commands"].get("NOOP", {})
            msg += " %6d held" % r.get("peak_open", 0)
            if s:
                msg += "  %7.2f KiB RSS/sess" % (
                    s.get("mem_per_session", 0) / 1024.0)
                if srv_children(r):
                    msg += "  %7.1f KiB PSS/sess" % (
                        s.get("pss_per_session", 0) / 1024.0)
            msg += "  NOOP p99 %.2f ms" % (noop.get("p99", 0) / 1000.0)
        else:
            msg += " %9.1f sess/s" % r["sessions_per_s"]
            if s:
                msg += "  %7.0f us cpu/sess" % s.get("cpu_us_per_session", 0)
            msg += "  p99 %7.2f ms" % (
                r["latency_us"]["session"].get("p99", 0) / 1000.0)
            if r["scenario"] == "retr-big":
                msg += "  %.0f MB/s" % r.get("mb_per_s", 0)
        v = r["violations"]["total"]
        f = r["sessions"]["failed"]
        if v or f:
            msg += "  !! %d violations, %d failed" % (v, f)
        if r.get("bench_foreign_cpu", 0) > FOREIGN_MAX:
            msg += "  !! other load: %.0f%% of a core" % (
                100 * r["bench_foreign_cpu"])
        say(msg)

    # servers ----------------------------------------------------------------
    def start_server(self, srv, **kw):
        say("starting %s on 127.0.0.1:%d" % (srv.name, srv.port))
        srv.start(**kw)
        self.servers[srv.name] = srv

    def restart(self, srv, **kw):
        srv.stop()
        srv.start(**kw)

    def active(self, names):
        return [self.servers[n] for n in names if n in self.servers]

    # phases -----------------------------------------------------------------
    def warmup(self):
        """Unmeasured: page cache for evpop3d, indexes for Dovecot."""
        for srv in self.active(["evpop3d", "dovecot"]):
            say("warm-up: %s reads every bench mailbox once" % srv.name)
            r = self.run("warmup-full-%s" % srv.name, srv, "full", 10, 120,
                         n=1000, label="warm-up full %s" % srv.name,
                         check=False)
            self.data["warmup"][srv.name] = r["sessions_per_s"]

    def throughput(self, scenarios):
        a = self.args
        order = self.active(["evpop3d", "evpop3d-w2", "dovecot", "nullpop"])
        for rnd in range(1, a.rounds + 1):
            for scen in scenarios:
                for c in CONCURRENCY:
                    for srv in order:
                        name = "tp-%s-c%d-%s-r%d" % (scen, c, srv.name, rnd)
                        r = self.run(name, srv, scen, c, a.duration)
                        self.data["throughput"].setdefault(
                            "%s/%d/%s" % (scen, c, srv.name), []).append(r)

    def idle(self):
        """Idle sessions: memory per logged-in session. evpop3d is
        restarted before each run, so that the RSS baseline is a fresh
        process's (freed memory is not necessarily returned to the
        kernel)."""
        a = self.args
        ev = self.servers["evpop3d"]
        n = a.idle_sessions
        runs = [("evpop3d", ev, n, a.idle_duration),
                ("evpop3d-500", ev, 500, 20)]
        if "dovecot" in self.servers:
            runs.append(("dovecot", self.servers["dovecot"], 500, 20))
        def fresh_evpop3d():
            say("idle: restarting evpop3d for a clean RSS baseline")
            self.restart(ev)
            self.wait_quiet()

        for key, srv, c, dur in runs:
            # ramped up at IDLE_RATE logins/s: 19,000 connects at once
            # overflow any listen queue (somaxconn is 4096) and lose a few
            # handshakes, which measures the kernel rather than the server
            r = self.run("idle-%s-c%d" % (srv.name, c), srv, "idle", c, dur,
                         users="idle%05d", user_count=c, rate=IDLE_RATE,
                         var=["interval=10000"],
                         before=fresh_evpop3d if srv is ev else
                         self.wait_quiet)
            self.data["idle"][key] = r

    def retr_big(self):
        a = self.args
        nullpop = self.servers.get("nullpop")
        if nullpop:
            say("retr-big: restarting nullpop with a %d-octet message 1"
                % BIG_SIZE)
            self.restart(nullpop, big=True)
        try:
            for rnd in range(1, a.rounds + 1):
                for srv in self.active(["evpop3d", "dovecot", "nullpop"]):
                    name = "retr-big-%s-r%d" % (srv.name, rnd)
                    r = self.run(name, srv, "retr-big", 1, a.duration,
                                 users="big%04d", user_count=1,
                                 var=["times=5"])
                    self.data["retr-big"].setdefault(srv.name, []).append(r)
        finally:
            if nullpop:
                self.restart(nullpop, big=False)

    def churn(self):
        a = self.args
        # 150 messages per user, 3 DELEs per session: 50 sessions per user
        # empty a mailbox. Stop at 49 so the sessions still in flight when
        # -n is reached find messages too.
        n = fixtures.CHURN_USERS * (fixtures.CHURN_MSGS // 3 - 1)
        for rnd in range(1, a.rounds + 1):
            for srv in self.active(["evpop3d", "dovecot"]):
                name = "churn-%s-r%d" % (srv.name, rnd)
                r = self.run(name, srv, "churn", 10, a.churn_duration,
                             users="churn%04d",
                             user_count=fixtures.CHURN_USERS, n=n,
                             before=lambda: fixtures.restore_churn(STATE))
                self.data["churn"].setdefault(srv.name, []).append(r)
        fixtures.restore_churn(STATE)

    def responsiveness(self):
        a = self.args
        for srv in self.active(["evpop3d", "dovecot"]):
            warm = self.data["resp-warmup"].setdefault(srv.name, {})
            # unmeasured: Dovecot builds its indexes of these on first use
            self.run("resp-warmup-blf-%s" % srv.name, srv, "login", 10, 60,
                     users="blf%04d", user_count=fixtures.BLF_USERS,
                     n=fixtures.BLF_USERS, check=False,
                     label="warm-up blf %s" % srv.name)
            warm["huge"] = self.run(
                "resp-warmup-huge-%s" % srv.name, srv, "login", 1, 60,
                users="huge%04d", user_count=1, n=1,
                label="warm-up huge %s" % srv.name, check=False)
            phases = ["baseline", "blf", "huge"]
            if self.mbox:
                warm["mbox"] = self.mbox_first_login(srv)
                if warm["mbox"]["ok"]:
                    phases.append("mbox")
            out = {}
            for phase in phases:
                mb0 = self.mbox_state() if phase == "mbox" else None
                self.wait_quiet()
                out[phase] = self.resp_phase(srv, phase, a.resp_duration,
                                             record=False)
                if out[phase]["idle"]["bench_foreign_cpu"] > FOREIGN_MAX:
                    say("      disturbed by other processes: repeating it "
                        "when the machine is quiet")
                    for part in ("idle", "load"):
                        self.keep_disturbed("resp-%s-%s-%s" % (
                            srv.name, phase, part))
                    self.wait_quiet()
                    out[phase] = self.resp_phase(srv, phase,
                                                 a.resp_duration)
                if mb0 is not None:
                    self.check_mbox(srv, mb0)
            self.data["responsiveness"][srv.name] = out

    def mbox_first_login(self, srv):
        """The mbox phase's warm-up, one login with STAT (by poplib): the
        page cache for evpop3d, the index of the whole 2 GiB for Dovecot.
        STAT must count the fixture's messages: a server that serves
        something else (a build without the mbox driver, the userdb_mail
        field ignored: an empty Maildir under the home directory) gets no
        mbox phase. Returns {ok, login_ms (connect to STAT's reply: Dovecot
        answers PASS before it opens the mailbox, at the first command),
        pass_ms (connect to PASS's reply), stat_count, stat_octets,
        error}."""
        import poplib
        want = int(self.mbox["messages"])
        res = {"ok": False, "login_ms": None, "pass_ms": None,
               "stat_count": None, "stat_octets": None, "error": None}
        self.nrun += 1
        t0 = time.time()
        try:
            p = poplib.POP3("127.0.0.1", srv.port,
                            timeout=MBOX_REPLY_TIMEOUT_MS / 1000.0)
            try:
                p.user(fixtures.MBOX_USER)
                p.pass_(fixtures.PASSWORD)
                res["pass_ms"] = round((time.time() - t0) * 1e3, 1)
                res["stat_count"], res["stat_octets"] = p.stat()
                res["login_ms"] = round((time.time() - t0) * 1e3, 1)
            finally:
                try:
                    p.quit()
                except (poplib.error_proto, OSError):
                    pass
        except (poplib.error_proto, OSError) as e:
            res["error"] = str(e)
        if res["error"] is None and res["stat_count"] != want:
            res["error"] = "STAT counts %s messages, the mbox has %d" % (
                res["stat_count"], want)
        res["ok"] = res["error"] is None
        if res["ok"]:
            say("[%3d] %-34s %.2f s  STAT %d %d" % (
                self.nrun, "first login mbox %s" % srv.name,
                res["login_ms"] / 1e3, res["stat_count"],
                res["stat_octets"]))
        else:
            self.problems.append(
                "%s: the first login into mbox0000 failed (%s): no mbox "
                "phase" % (srv.name, res["error"]))
            warn(self.problems[-1])
        srv.check()
        return res

    def mbox_state(self):
        """What must not change when sessions only log in and QUIT: the
        mbox's inode, size, mtime, and the directory's file names (a
        temporary file left behind would show there)."""
        path = fixtures.mbox_path(STATE)
        st = os.stat(path)
        return (st.st_ino, st.st_size, st.st_mtime_ns,
                sorted(os.listdir(os.path.dirname(path))))

    def check_mbox(self, srv, before):
        after = self.mbox_state()
        if after != before:
            self.problems.append(
                "%s: the mbox phase changed mbox0000 or its directory "
                "(inode, size, mtime, names before %s, after %s): logins "
                "that only QUIT must leave it alone" % (
                    srv.name, before, after))
            warn(self.problems[-1])

    def resp_phase(self, srv, phase, load_s, record=True):
        """An idle swarm (200 sessions, NOOP every 100 ms) around one load
        phase; the idle swarm's NOOP latencies are the result. The idle
        swarm starts settle seconds before the load and is stopped (SIGINT:
        it finishes its sessions and reports) tail seconds after the load
        ended, however long the load's last session took (one login into
        the mbox takes seconds); its -d is only a safety limit."""
        settle, tail = 2.0, 2.0
        idle_d = int(load_s + settle + tail + 120)
        name = "resp-%s-%s" % (srv.name, phase)
        self.nrun += 1
        busy0, t0 = cpu_busy_us(), time.time()
        idle = self.start_swarm(name + "-idle", self.swarm_argv(
            srv, "idle", 200, idle_d, users="bench%04d", user_count=200,
            var=["interval=100"]))
        time.sleep(settle)
        load = None
        if phase == "blf":
            load = self.run(name + "-load", srv, "login", 100, load_s,
                            users="blf%04d", user_count=fixtures.BLF_USERS,
                            rate=200, sample=False,
                            label="%s load: blf logins at 200/s" % srv.name)
        elif phase == "huge":
            load = self.run(name + "-load", srv, "login", 1, load_s,
                            users="huge%04d", user_count=1, sample=False,
                            label="%s load: huge0000 logins" % srv.name)
        elif phase == "mbox":
            load = self.run(name + "-load", srv, "login", 1, load_s,
                            users="mbox%04d", user_count=1, sample=False,
                            reply_timeout_ms=MBOX_REPLY_TIMEOUT_MS,
                            label="%s load: mbox0000 logins" % srv.name)
        else:
            time.sleep(load_s)
        time.sleep(tail)
        if idle.poll() is None:
            os.kill(idle.pid, signal.SIGINT)
        r = self.finish_swarm(name + "-idle", idle, idle_d + 90, srv)
        self.foreign(name, r, busy0, t0, record=record,
                     other_us=g(load, "client", "cpu_us", default=0))
        self.progress("%s idle NOOPs (%s)" % (srv.name, phase), r)
        noop = r["latency_us"]["commands"].get("NOOP", {})
        say("      NOOP p50 %.2f ms  p99 %.2f ms  max %.2f ms (%d NOOPs)" % (
            noop.get("p50", 0) / 1e3, noop.get("p99", 0) / 1e3,
            noop.get("max", 0) / 1e3, noop.get("count", 0)))
        if load is not None:
            say("      load: %d sessions, session p50 %.1f ms" % (
                load["sessions"]["completed"],
                g(load, "latency_us", "session", "p50", default=0) / 1e3))
        return {"idle": r, "load": load}


# ------------------------------------------------------------ main

def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            hard = want
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="scripts/bench", description=(
        "Benchmark evpop3d against Dovecot and the null responder."))
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 round, 2 s runs, idle at 2000")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=int, help="seconds per run")
    ap.add_argument("--only", help="comma-separated phases (%s, or tls "
                    "for the four tls-*) or throughput scenarios (%s)" % (
                        ",".join(PHASES), ",".join(THROUGHPUT_SCENARIOS)))
    ap.add_argument("--no-dovecot", action="store_true")
    ap.add_argument("--noisy", action="store_true",
                    help="a shared machine: never wait for quiet or repeat "
                    "a disturbed run (they stay marked in the report)")
    ap.add_argument("--idle-sessions", type=int)
    ap.add_argument("--workers", type=int, default=1,
                    help="evpop3d's [server] workers (default 1)")
    ap.add_argument("--no-workers2", action="store_true",
                    help="throughput: no second evpop3d with workers = 2")
    ap.add_argument("--out", help="where report.md, results.json and the "
                    "charts go (default doc/bench, or the run's results "
                    "directory with --quick or --only)")
    a = ap.parse_args(argv)
    q = a.quick
    a.rounds = a.rounds or (1 if q else 3)
    a.duration = a.duration or (2 if q else 5)
    a.idle_sessions = a.idle_sessions or (2000 if q else 19000)
    a.idle_duration = 15 if q else 40
    a.churn_duration = 4 if q else 10
    a.resp_duration = 4 if q else 10
    if a.rounds < 1 or a.duration < 1 or a.idle_sessions < 1:
        ap.error("--rounds, --duration and --idle-sessions must be >= 1")
    if a.idle_sessions > IDLE_USERS:
        ap.error("--idle-sessions: at most %d (one user per session)"
                 % IDLE_USERS)
    a.phases, a.scenarios = set(), []
    if a.only:
        for w in a.only.split(","):
            w = w.strip()
            if w == "tls":
                a.phases.update(tlsbench.PHASES)
            elif w in PHASES:
                a.phases.add(w)
                if w == "throughput":
                    a.scenarios = list(THROUGHPUT_SCENARIOS)
            elif w in THROUGHPUT_SCENARIOS:
                a.phases.add("throughput")
                if w not in a.scenarios:
                    a.scenarios.append(w)
            else:
                ap.error("--only: unknown '%s'" % w)
    else:
        a.phases = set(PHASES)
        a.scenarios = list(THROUGHPUT_SCENARIOS)
    a.partial = bool(a.only) or q
    a.argv = argv
    return a


def main(argv):
    a = parse_args(argv)
    if os.geteuid() != 0:
        raise BenchError("run as root (Dovecot runs mail processes as the "
                         "evbench user; the fixtures belong to it)")
    for b in ("evpop3d", "evpop3d-swarm", "evpop3d-nullpop"):
        if not os.access(os.path.join(BUILD, b), os.X_OK):
            raise BenchError("%s/%s is missing: build first" % (BUILD, b))
    for name, port in PORTS.items():
        if not port_free(port):
            raise BenchError("port %d (%s) is in use: an earlier bench still "
                             "running?" % (port, name))
    nofile = raise_nofile(20000)
    if nofile < a.idle_sessions + 500:
        n = max(500, nofile - 500)
        warn("descriptor limit %d: idle run lowered to %d sessions"
             % (nofile, n))
        a.idle_sessions = n

    busy0, t0 = cpu_busy_us(), time.time()
    time.sleep(2)
    quiet = (cpu_busy_us() - busy0) / 1e6 / (time.time() - t0)
    if quiet > FOREIGN_MAX:
        warn("the machine is busy (%.0f%% of a core before the bench "
             "started): results will be disturbed" % (100 * quiet))

    t0 = time.time()
    os.makedirs(STATE, exist_ok=True)
    uid, gid, passwd = fixtures.ensure(STATE, IDLE_USERS, log=say)
    fixtures.restore_churn(STATE)
    # the 2 GiB mbox only for the phase that uses it
    mbox = fixtures.ensure_mbox(STATE, uid, gid, passwd,
                                generate="responsiveness" in a.phases,
                                log=say)

    b = Bench(a, mbox)
    say("results: %s" % b.resdir)
    try:
        b.start_server(Evpop3d(passwd, a.workers))
        if "throughput" in a.phases and a.workers == 1 and \
                not a.no_workers2:
            b.start_server(Evpop3dWorkers(passwd))
        if not a.no_dovecot:
            b.start_server(Dovecot(passwd, uid, gid))
        b.start_server(Nullpop())
        if a.phases & {"throughput"}:
            b.warmup()
        steps = [("throughput", lambda: b.throughput(a.scenarios)),
                 ("retr-big", b.retr_big), ("churn", b.churn),
                 ("responsiveness", b.responsiveness), ("idle", b.idle),
                 ("login-pgsql", lambda: pgbench.PgBench(
                     b, sys.modules[__name__], passwd).run()),
                 ("tls", lambda: tlsbench.TlsBench(
                     b, sys.modules[__name__], passwd, uid, gid).run(
                         a.phases))]
        for phase, fn in steps:
            if phase not in a.phases and not (
                    phase == "tls" and a.phases & set(tlsbench.PHASES)):
                continue
            say("=== %s" % phase)
            try:
                fn()
            except BenchError as e:
                warn("phase %s failed: %s" % (phase, e))
                b.problems.append("phase %s failed: %s" % (
                    phase, str(e).split("\n")[0]))
                for srv in list(b.servers.values()):
                    if not srv.alive():
                        raise
    finally:
        cleanup()
    elapsed = time.time() - t0
    out = a.out or (os.path.join(b.resdir, "doc") if a.partial
                    else os.path.join(ROOT, "doc", "bench"))
    report.write(b, a, out, elapsed, STATE, SOURCES, IDLE_RATE,
                 FOREIGN_MAX)
    say("bench: done in %.1f min; report in %s" % (elapsed / 60, out))
    return 1 if b.problems else 0


if __name__ == "__main__":
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt as e:
        cleanup()
        warn("interrupted (%s); stopped everything we started" % (e or "^C"))
        sys.exit(130)
    except BenchError as e:
        cleanup()
        warn(str(e))
        sys.exit(1)
