#!/usr/bin/env python3
"""Load-independent cost of a session: the daemon's instructions (callgrind)
and syscalls (strace -c -f) per session for a fixed swarm workload.

Wall-clock sessions/s depend on what else the machine runs; the number of
instructions the daemon executes for N identical sessions does not: with
one session at a time (--concurrency 1, the default) the same binary gives
the same count within 0.1 %, syscalls within ~1 % (at higher concurrency
how many events one epoll_wait() returns varies, ~0.5 % and ~2 %). So
this is what scripts/bench-commit records per commit and what bisects use.

One measure: start the daemon (under valgrind --tool=callgrind, or plain for
the strace pass), run every fixture user once (warm-up: state files such as
evpop3d-uidl-cutoff exist afterwards, the page cache is warm), wait until
what that wrote is two seconds old and run every user once more (the
Maildir listing cache keeps a listing only of directories changed over a
second before: now every user's is kept, as for a mailbox polled again
unchanged), zero the counters (callgrind_control -z, or attach strace),
run the measured N sessions, dump (callgrind_control -d, or detach
strace), stop the daemon. Start-up and shutdown are not counted.

The fixture (make_fixture): FIX_USERS users bench0000.. with 10 messages
of ~4 KiB each, {PLAIN} passwords, the same bytes as the first FIX_USERS
bench users of scripts/bench.d/fixtures.py (same generator, same seed).
"""

import argparse
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixtures  # noqa: E402

FIX_USERS = 100
FIX_MSGS = 10
FIX_VERSION = "1"


def log(msg):
    print("instr: " + msg, file=sys.stderr, flush=True)


def make_fixture(root):
    """FIX_USERS Maildir users under root (reused when the marker says
    they are complete); returns the passwd-file path."""
    marker = os.path.join(root, "fixture.ok")
    passwd = os.path.join(root, "passwd")
    want = "version=%s users=%d msgs=%d\n" % (FIX_VERSION, FIX_USERS,
                                               FIX_MSGS)
    try:
        with open(marker) as f:
            if f.read() == want:
                return passwd
    except FileNotFoundError:
        pass
    shutil.rmtree(os.path.join(root, "mail"), ignore_errors=True)
    gen = fixtures.Gen()
    uid, gid = os.getuid(), os.getgid()
    lines = []
    for u in range(FIX_USERS):
        user = "bench%04d" % u
        home = os.path.join(root, "mail", user)
        md = os.path.join(home, "Maildir")
        fixtures.make_maildir(md)
        # as fixtures.ensure() makes its first FIX_USERS bench users
        for m in range(FIX_MSGS):
            stamp = 1699900000 + u * 100 + m
            data = gen.message(user, stamp, gen.rng.randint(3400, 4600))
            fixtures.write_msg(os.path.join(md, "cur"),
                               fixtures.md_name(stamp, 100000 + m, 4242,
                                                data), data)
        lines.append("%s:{PLAIN}%s:%d:%d::%s::\n" % (
            user, fixtures.PASSWORD, uid, gid, home))
    with open(passwd, "w") as f:
        f.writelines(lines)
    with open(marker, "w") as f:
        f.write(want)
    return passwd


def free_port():
    """A free port below Linux's ephemeral range (32768-60999), so that no
    client's source port takes it between this test and the daemon's
    bind; start_daemon() still retries if something else does."""
    while True:
        p = random.randrange(20000, 32000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()


def write_ini(path, port, passwd):
    # keys an older commit does not know are warned about and ignored
    with open(path, "w") as f:
        f.write("; written by scripts/bench.d/instr.py\n"
                "[server]\n"
                "listen = 127.0.0.1:%d\n"
                "hostname = bench.example\n"
                "idle_timeout = 600\n"
                "allow_root = yes\n"
                "[auth]\n"
                # as scripts/bench: no per-IP limit for the swarm
                "limits_exempt = 127.0.0.0/8, ::1\n"
                "passwd_file = %s\n"
                "failure_delay = 0\n"
                "threads = 2\n"
                # the work the loop does itself is timed; under callgrind
                # it is 50 times slower, and would be sent to the threads
                "quick_limit = 1000\n"
                "[mail]\n"
                "driver = maildir\n"
                "location = %%h/Maildir\n"
                "[control]\n"
                "socket =\n"
                "[log]\n"
                "logout_format =\n" % (port, passwd))


def wait_log(path, needle, proc, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with open(path, "rb") as f:
            if needle in f.read():
                return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with open(path, "rb") as f:
        tail = f.read()[-3000:].decode(errors="replace")
    raise RuntimeError("daemon not ready (%s)\n%s" % (
        "exited %s" % proc.returncode if proc.poll() is not None
        else "timeout", tail))


def swarm(args, port, scenario, n, conc):
    argv = [args.swarm, "--json", "-q", "-H", "127.0.0.1", "-p", str(port),
            "-c", str(conc), "-n", str(n), "-d", "3600",
            "-u", "bench%04d", "--user-count", str(FIX_USERS),
            "-P", fixtures.PASSWORD, "--reply-timeout", "120000", scenario]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(os.environ, EVPOP3D_SWARM_DIR=args.swarm_dir))
    try:
        r = json.loads(p.stdout)
    except ValueError:
        r = None
    if p.returncode != 0 or r is None:
        raise RuntimeError("swarm %s exited %d\n%s" % (
            scenario, p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    return r


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_daemon(args, wd, passwd, wrap):
    for attempt in range(5):
        port = free_port()
        ini = os.path.join(wd, "evpop3d.ini")
        write_ini(ini, port, passwd)
        logp = os.path.join(wd, "evpop3d.log")
        with open(logp, "wb") as logf:
            proc = subprocess.Popen(wrap + [args.bin, "-c", ini], cwd=wd,
                                    stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=logf)
        try:
            wait_log(logp, b"event=ready", proc, 300)
            return proc, port
        except RuntimeError as e:
            stop(proc)
            if "Address already in use" not in str(e) or attempt == 4:
                raise


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError("no totals in " + path)


def warm_up(args, port, scenario):
    """Every user once, then again once what the first pass wrote (lock
    records, cutoff files) and the fixture are settled (see above)."""
    swarm(args, port, scenario, FIX_USERS, args.concurrency)
    settled = time.time() + 2.2
    while time.time() < settled:
        time.sleep(0.05)
    swarm(args, port, scenario, FIX_USERS, args.concurrency)


def measure_instr(args, passwd, scenario, keep=None):
    wd = tempfile.mkdtemp(prefix="instr-", dir=args.tmp)
    out = os.path.join(wd, "cg.out")
    wrap = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
            "--dump-instr=no", "--separate-threads=no"]
    proc, port = start_daemon(args, wd, passwd, wrap)
    try:
        warm_up(args, port, scenario)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        r = swarm(args, port, scenario, args.sessions, args.concurrency)
        subprocess.run(["callgrind_control", "-d", "measured",
                        str(proc.pid)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    finally:
        stop(proc)
    dumps = [p for p in glob.glob(out + "*")
             if open(p).read(4096).find("measured") >= 0]
    if len(dumps) != 1:
        raise RuntimeError("expected one 'measured' dump in %s" % wd)
    total = callgrind_total(dumps[0])
    if keep:
        shutil.copy(dumps[0], keep)
    shutil.rmtree(wd, ignore_errors=True)
    return total, r


def measure_syscalls(args, passwd, scenario):
    wd = tempfile.mkdtemp(prefix="strace-", dir=args.tmp)
    proc, port = start_daemon(args, wd, passwd, [])
    out = os.path.join(wd, "strace.txt")
    try:
        warm_up(args, port, scenario)
        st = subprocess.Popen(["strace", "-c", "-f", "-o", out,
                               "-p", str(proc.pid)],
                              stderr=subprocess.PIPE)
        # "strace: Process N attached with T threads": printed once every
        # thread is attached
        line = st.stderr.readline()
        if b"attached" not in line:
            raise RuntimeError("strace: %r" % line)
        r = swarm(args, port, scenario, args.sessions, args.concurrency)
        st.send_signal(signal.SIGINT)
        st.wait(60)
    finally:
        stop(proc)
    calls = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?"
                         r"(\w+)\s*$", line)
            if m and m.group(2) != "total":
                calls[m.group(2)] = int(m.group(1))
    shutil.rmtree(wd, ignore_errors=True)
    return calls, r


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="evpop3d binary")
    ap.add_argument("--swarm", required=True, help="evpop3d-swarm binary")
    ap.add_argument("--swarm-dir", default=os.path.join(
        os.path.dirname(os.path.dirname(HERE)), "scripts", "swarm"))
    ap.add_argument("--fixture", default="/tmp/evpop3d-instr-fixture")
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--scenarios", default="full")
    ap.add_argument("--no-strace", action="store_true")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--keep-profile", default=None,
                    help="copy the callgrind dump to PREFIX-SCENARIO.out")
    args = ap.parse_args(argv)
    passwd = make_fixture(args.fixture)
    res = {}
    for scen in args.scenarios.split(","):
        d = {}
        if not args.no_callgrind:
            keep = ("%s-%s.out" % (args.keep_profile, scen)
                    if args.keep_profile else None)
            total, r = measure_instr(args, passwd, scen, keep)
            d["instr_per_session"] = round(total / args.sessions)
            log("%s: %d instructions per session (%d sessions)" % (
                scen, d["instr_per_session"], args.sessions))
        if not args.no_strace:
            calls, r = measure_syscalls(args, passwd, scen)
            n = sum(calls.values())
            d["syscalls_per_session"] = round(n / args.sessions, 2)
            d["syscalls"] = {k: round(v / args.sessions, 2)
                             for k, v in sorted(calls.items(),
                                                key=lambda kv: -kv[1])}
            log("%s: %.2f syscalls per session" % (
                scen, d["syscalls_per_session"]))
        res[scen] = d
    json.dump(res, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
