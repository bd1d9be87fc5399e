"""
The Debian package (issue 12), built, checked, installed and run on this
machine:

 - `dpkg-buildpackage -us -uc -b` in a copy of the tree (it writes into
   the parent directory) builds evpop3d_*.deb; lintian reports no error;
 - `dpkg -i` installs the files where the unit and the man pages say,
   with /etc/evpop3d/evpop3d.ini a conffile; postinst creates the vmail
   system user and group (or reuses them), /var/vmail (vmail, 0750) and an
   empty /etc/evpop3d/passwd (root:vmail 0640); evpop3d.service is enabled
   for boot, the socket units are not;
 - the installed default starts: `evpop3d -t` accepts it, and the
   installed unit's ExecStart line, run as a plain process (systemd is not
   PID 1 here) in the part of the unit's sandbox that can be had without
   systemd, read from the installed unit (class Sandbox: a read-only /
   but ReadWritePaths and RuntimeDirectory in a mount namespace of its
   own, PrivateTmp, ProtectHome, the SystemCallFilter= allow list as a
   seccomp filter, the capability bounding set, no_new_privs, the memory
   write-xor-execute of MemoryDenyWriteExecute, UMask, LimitNOFILE),
   sends READY=1 to the NOTIFY_SOCKET the test listens on, binds
   127.0.0.1:110 and drops to vmail. A user added to the installed
   passwd-file with `evpop3d hash` while it runs logs in with poplib and
   gets the message in its Maildir under /var/vmail; SIGTERM gives
   STOPPING=1 and exit status 0; `evpop3d stats` reaches it through the
   admin socket in the unit's RuntimeDirectory;
 - socket activation as the installed socket units describe it (the test
   holds the listening sockets as systemd would, on loopback, and passes
   them with LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID): with evpop3d.socket's
   "pop3" socket the daemon serves it instead of binding [server] listen;
   a client that connects while the daemon is stopped waits in the backlog
   and is served by the next start (a restart refuses no one); with
   evpop3d-tls.socket's "pop3s" too but no [tls], the start is refused
   with a reason;
 - `dpkg --purge` removes the files, the conffiles, the passwd-file and
   the enable link; the vmail user and /var/vmail stay by design (they
   hold mail), but the test removes them again when it created them.

Runs as root only (CI does), one at a time on the machine (a flock), and
cleans up after a failure too. Skipped when an evpop3d package is already
installed (it is not ours to remove) or when the packaging tools are
missing (scripts/deps installs them).
"""

import ctypes
import errno
import fcntl
import grp
import os
import poplib
import pwd
import resource
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from evtest import run

SRC = os.environ.get("EVPOP3D_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
LOCK = "/run/lock/evpop3d-test-dpkg.lock"	# shared with test_deps
CONF = "/etc/evpop3d/evpop3d.ini"
PASSWD = "/etc/evpop3d/passwd"
UNIT = "/lib/systemd/system/evpop3d.service"
WANTS = "/etc/systemd/system/multi-user.target.wants"
TIMEOUT = 30
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1

TOOLS = ("dpkg-buildpackage", "lintian", "dh", "setpriv")


def copy_source(tree):
    """The source tree into tree: in a git checkout the files git tracks
    and the new ones it does not ignore (not build trees, nor state/ with
    the benchmark's fixtures and a running Dovecot's sockets)."""
    r = run(["git", "-C", SRC, "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"], check=False)
    if r.returncode != 0:
        shutil.copytree(SRC, tree, symlinks=True,
                        ignore=shutil.ignore_patterns(
                            "build*", "state", ".git", "__pycache__",
                            "debian/evpop3d", "obj-*"))
        return
    for rel in r.stdout.split("\0"):
        src = os.path.join(SRC, rel)
        if not rel or not os.path.lexists(src):
            continue		# deleted in the working tree
        dst = os.path.join(tree, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)


def installed(pkg):
    r = run(["dpkg-query", "-W", "-f", "${Status}", pkg], check=False)
    return r.returncode == 0 and "ok installed" in r.stdout


def exists_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def exists_group(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def unit_exec_start(path):
    with open(path) as f:
        for line in f:
            if line.startswith("ExecStart="):
                return shlex.split(line.partition("=")[2])
    raise AssertionError("no ExecStart in " + path)


def unit_values(path, key):
    """Every value of key in a unit file, split on spaces."""
    out = []
    with open(path) as f:
        for line in f:
            k, eq, v = line.strip().partition("=")
            if eq and k == key:
                out += v.split()
    return out


def syscall_groups():
    """{"@group": [names and @groups]} from systemd-analyze, the lists
    SystemCallFilter= uses."""
    r = run(["systemd-analyze", "syscall-filter"])
    groups, cur = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), [])
        elif line.startswith(" ") and cur is not None:
            tok = line.strip()
            if tok and not tok.startswith("#"):
                cur.append(tok)
        else:
            cur = None
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for n in names:
        if n.startswith("@"):
            if n not in seen:
                seen.add(n)
                out |= expand(groups[n], groups, seen)
        else:
            out.add(n)
    return out


class Sandbox:
    """What of evpop3d.service can be had without systemd, read from the
    installed unit and applied in the child before it execs (as systemd
    does it): a mount namespace where / is read-only but ReadWritePaths
    and RuntimeDirectory (ProtectSystem=strict), an empty /tmp and
    /var/tmp (PrivateTmp), /home and /root inaccessible (ProtectHome),
    UMask, LimitNOFILE, the memory write-xor-execute of
    MemoryDenyWriteExecute (PR_SET_MDWE), and the SystemCallFilter= allow
    list (libseccomp; other calls fail with EPERM, as
    SystemCallErrorNumber= says). setpriv does CapabilityBoundingSet and
    NoNewPrivileges. Not reproduced: PrivateDevices, the Protect*Kernel*
    and Restrict* options."""

    MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = \
        1, 32, 4096, 16384, 1 << 18
    CLONE_NEWNS = 0x20000
    SCMP_ACT_ALLOW = 0x7fff0000

    def __init__(self, unit):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.mount.argtypes = [ctypes.c_char_p] * 3 + [
            ctypes.c_ulong, ctypes.c_char_p]
        self.umask = int(unit_values(unit, "UMask")[0], 8)
        n = int(unit_values(unit, "LimitNOFILE")[0])
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        # As much of it as this container allows.
        self.nofile = n if hard == resource.RLIM_INFINITY else min(n, hard)
        self.rw = [p.lstrip("-") for p in unit_values(unit, "ReadWritePaths")
                   if os.path.isdir(p.lstrip("-"))]
        self.rw += ["/run/" + d for d in unit_values(unit,
                                                      "RuntimeDirectory")]
        for d in self.rw:
            os.makedirs(d, exist_ok=True)
        self.caps = unit_values(unit, "CapabilityBoundingSet")
        self.seccomp = self.seccomp_filter(unit)

    def seccomp_filter(self, unit):
        groups = syscall_groups()
        allow, deny = set(), set()
        for v in unit_values(unit, "SystemCallFilter"):
            if v.startswith("~"):
                deny |= expand([v[1:]], groups)
            else:
                allow |= expand([v], groups)
        self.syscalls = allow - deny
        err = unit_values(unit, "SystemCallErrorNumber")
        assert err == ["EPERM"], err
        lib = ctypes.CDLL("libseccomp.so.2")
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
                                         ctypes.c_int, ctypes.c_uint]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        ctx = lib.seccomp_init(0x00050000 | errno.EPERM)
        for name in sorted(self.syscalls):
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr >= 0:		# else not on this architecture
                if lib.seccomp_rule_add(ctx, self.SCMP_ACT_ALLOW, nr, 0):
                    raise AssertionError("seccomp_rule_add " + name)
        self.lib = lib
        return ctx

    def argv(self, argv):
        caps = ",".join(["-all"] + ["+" + c.lower()[4:] for c in self.caps])
        return ["setpriv", "--no-new-privs", "--bounding-set", caps,
                "--"] + argv

    def mount(self, src, dst, fstype, flags, data=None):
        enc = lambda x: None if x is None else x.encode()
        if self.libc.mount(enc(src), enc(dst), enc(fstype), flags,
                           enc(data)) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "mount %s: %s" % (dst, os.strerror(e)))

    def __call__(self):
        """In the child, between fork and exec."""
        try:
            if self.libc.unshare(self.CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), "unshare")
            self.mount(None, "/", None, self.MS_REC | self.MS_PRIVATE)
            for d in self.rw:
                self.mount(d, d, None, self.MS_BIND | self.MS_REC)
            for d in ("/tmp", "/var/tmp"):
                self.mount("tmpfs", d, "tmpfs", 0, "mode=1777")
            for d in ("/home", "/root"):
                if os.path.isdir(d):
                    self.mount("tmpfs", d, "tmpfs", self.MS_RDONLY,
                               "mode=000")
            self.mount(None, "/", None, self.MS_REMOUNT | self.MS_BIND |
                       self.MS_RDONLY)
            os.umask(self.umask)
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (self.nofile, self.nofile))
            if self.libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN,
                               0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "PR_SET_MDWE")
            if self.lib.seccomp_load(self.seccomp) != 0:
                raise OSError(0, "seccomp_load")
        except OSError as e:
            os.write(2, ("test_package: sandbox: %s\n" % e).encode())
            os._exit(127)


@unittest.skipUnless(os.geteuid() == 0, "installs a package: root only")
@unittest.skipUnless(all(shutil.which(t) for t in TOOLS),
                     "packaging tools missing (scripts/deps installs them)")
class Package(unittest.TestCase):

    def setUp(self):
        os.makedirs(os.path.dirname(LOCK), exist_ok=True)
        self.lockf = open(LOCK, "w")
        self.addCleanup(self.lockf.close)
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(self.lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.fail("another test_package holds " + LOCK)
                time.sleep(0.5)
        if installed("evpop3d"):
            self.skipTest("an evpop3d package is installed already")
        self.tmp = tempfile.mkdtemp(prefix="evpop3d-pkg-")
        os.chmod(self.tmp, 0o755)	# the notify socket, for vmail
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.had_user = exists_user("vmail")
        self.had_group = exists_group("vmail")
        self.had_vmail_dir = os.path.exists("/var/vmail")
        self.had_run_dir = os.path.exists("/run/evpop3d")
        self.proc = None

    def build(self):
        tree = os.path.join(self.tmp, "src", "evpop3d")
        copy_source(tree)
        env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=2 nocheck")
        run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, env=env)
        debs = [f for f in os.listdir(os.path.dirname(tree))
                if f.startswith("evpop3d_") and f.endswith(".deb")]
        self.assertEqual(len(debs), 1, debs)
        return os.path.join(os.path.dirname(tree), debs[0])

    def purge(self):
        """Undo the install, whatever state a failure left."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if installed("evpop3d") or run(["dpkg-query", "-W", "evpop3d"],
                                       check=False).returncode == 0:
            run(["dpkg", "--purge", "evpop3d"], check=False)
        shutil.rmtree("/var/vmail/example.org", ignore_errors=True)
        if not self.had_user and exists_user("vmail"):
            run(["userdel", "vmail"], check=False)
        if not self.had_group and exists_group("vmail"):
            run(["groupdel", "vmail"], check=False)
        if not self.had_vmail_dir:
            shutil.rmtree("/var/vmail", ignore_errors=True)
        if not self.had_run_dir:	# the sandbox's RuntimeDirectory
            shutil.rmtree("/run/evpop3d", ignore_errors=True)

    def test_package(self):
        t0 = time.monotonic()
        deb = self.build()
        t_build = time.monotonic() - t0

        r = run(["lintian", "--tag-display-limit", "0", deb], check=False)
        tags = [l for l in (r.stdout + r.stderr).splitlines()
                if "root privileges is not recommended" not in l]
        errors = [l for l in tags if l.startswith("E:")]
        self.assertEqual(errors, [], "\n".join(tags))

        self.addCleanup(self.purge)
        run(["dpkg", "-i", deb])
        self.check_installed()
        self.start_and_login()
        self.socket_activation()
        run(["dpkg", "--purge", "evpop3d"])
        self.check_purged()
        print("test_package: build %.1f s, all %.1f s; lintian: %s" % (
            t_build, time.monotonic() - t0,
            "; ".join(tags) if tags else "clean"))

    def check_installed(self):
        for f in ("/usr/sbin/evpop3d", "/usr/bin/evpop3d-swarm"):
            self.assertTrue(os.access(f, os.X_OK), f)
        for f in (UNIT, "/lib/systemd/system/evpop3d.socket",
                  "/lib/systemd/system/evpop3d-tls.socket",
                  "/usr/share/evpop3d/swarm/login.swarm",
                  "/usr/share/man/man8/evpop3d.8.gz",
                  "/usr/share/man/man1/evpop3d-swarm.1.gz",
                  "/usr/share/man/man5/evpop3d.ini.5.gz",
                  "/etc/fail2ban/filter.d/evpop3d.conf", CONF):
            self.assertTrue(os.path.isfile(f), f)
        conffiles = run(["dpkg-query", "-W", "-f", "${Conffiles}",
                         "evpop3d"]).stdout
        self.assertIn(CONF, conffiles)
        self.assertNotIn(PASSWD, conffiles)
        self.assertEqual(unit_exec_start(UNIT),
                         ["/usr/sbin/evpop3d", "-c", CONF])
        # The mail user, its group and its home.
        pw = pwd.getpwnam("vmail")
        self.assertEqual(grp.getgrgid(pw.pw_gid).gr_name, "vmail")
        if not self.had_user:
            self.assertEqual(pw.pw_dir, "/var/vmail")
            self.assertLess(pw.pw_uid, 1000)	# a system user
            self.assertIn("nologin", pw.pw_shell)
        if not self.had_vmail_dir:
            st = os.stat("/var/vmail")
            self.assertEqual((st.st_uid, st.st_gid,
                              stat.S_IMODE(st.st_mode)),
                             (pw.pw_uid, pw.pw_gid, 0o750))
        st = os.stat(PASSWD)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                         (0, pw.pw_gid, 0o640))
        # Enabled for boot (deb-systemd-helper; nothing is started here:
        # systemd is not running); the socket units are the operator's
        # choice.
        self.assertTrue(os.path.islink(os.path.join(WANTS,
                                                    "evpop3d.service")))
        for u in ("evpop3d.socket", "evpop3d-tls.socket"):
            self.assertFalse(os.path.lexists(os.path.join(
                "/etc/systemd/system/sockets.target.wants", u)), u)
        # The installed configuration is valid as shipped.
        r = run(["/usr/sbin/evpop3d", "-t", "-c", CONF], check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run(["man", "-w", "evpop3d.ini"], check=False)
        self.assertEqual(r.stdout.strip(),
                         "/usr/share/man/man5/evpop3d.ini.5.gz")

    def notify_socket(self):
        # In /run, as systemd's: the sandbox hides /tmp. Written by the
        # daemon after its drop to vmail.
        d = tempfile.mkdtemp(prefix="evpop3d-test-", dir="/run")
        os.chmod(d, 0o755)
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "notify")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        os.chmod(path, 0o777)
        self.addCleanup(s.close)
        return s, path

    def wait_notify(self, s, what):
        """Read datagrams until one says what. Once the daemon has exited,
        what it sent before is still queued: read that too, then stop."""
        deadline = time.monotonic() + TIMEOUT
        seen = []
        while time.monotonic() < deadline:
            gone = self.proc.poll() is not None
            s.settimeout(0 if gone else
                         max(0.1, deadline - time.monotonic()))
            try:
                msg = s.recv(4096).decode()
            except (socket.timeout, BlockingIOError):
                break
            seen.append(msg)
            if what in msg.split("\n"):
                return
        self.fail("no %s from the daemon (got %r); log:\n%s" % (
            what, seen, self.log()))

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def start(self, listen=()):
        """Start the installed unit's ExecStart in the sandbox, with the
        listening sockets listen ([(socket, FileDescriptorName)]) passed as
        systemd passes them (fds 3.., LISTEN_FDS, LISTEN_FDNAMES,
        LISTEN_PID); wait for READY=1 unless told not to."""
        self.nstart += 1
        self.ns.setblocking(False)	# nothing of the last daemon's left
        try:
            while self.ns.recv(4096):
                pass
        except BlockingIOError:
            pass
        self.logpath = os.path.join(self.tmp, "log.%d" % self.nstart)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "NOTIFY_SOCKET": self.nspath}
        if listen:
            env["LISTEN_FDS"] = str(len(listen))
            env["LISTEN_FDNAMES"] = ":".join(n for _, n in listen)
        srcs = [s.fileno() for s, _ in listen]
        # fds 3.. must not be Popen's own error pipe: hold them here.
        for fd in range(3, 3 + len(srcs)):
            try:
                os.fstat(fd)
            except OSError:
                self.addCleanup(os.close, os.open(os.devnull, os.O_RDONLY))
        box = self.box

        def child():
            # LISTEN_PID is the pid exec keeps: known only here.
            os.environ.clear()
            os.environ.update(env)
            if srcs:
                os.environ["LISTEN_PID"] = str(os.getpid())
                high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in srcs]
                for i, fd in enumerate(high):
                    os.dup2(fd, 3 + i)
                    os.close(fd)
            box()

        with open(self.logpath, "wb") as logf:
            self.proc = subprocess.Popen(
                box.argv(unit_exec_start(UNIT)), env=None,
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                preexec_fn=child, pass_fds=range(3, 3 + len(srcs)), cwd="/")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.wait_notify(self.ns, "STOPPING=1")
        self.assertEqual(self.proc.wait(timeout=TIMEOUT), 0, self.log())
        log = self.log()
        if os.environ.get("EVTEST_LOG"):
            print("\n--- the installed daemon's log:\n" + log)
        self.assertNotIn(self.password, log)
        self.assertNotIn("test_package: sandbox:", log)
        return log

    def login(self):
        c = poplib.POP3("127.0.0.1", 110, timeout=TIMEOUT)
        c.user("alice@example.org")
        c.pass_(self.password)
        self.assertEqual(c.stat(), (1, len(self.body)))
        resp, lines, _ = c.retr(1)
        self.assertIn(b"hello from the package test", lines)
        c.quit()

    def start_and_login(self):
        """The daemon binds [server] listen itself."""
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", 110)) == 0:
                self.fail("something listens on 127.0.0.1:110 already")
        self.ns, self.nspath = self.notify_socket()
        self.nstart = 0
        self.box = Sandbox(UNIT)
        self.assertIn("setresuid", self.box.syscalls)
        self.assertNotIn("mount", self.box.syscalls)
        self.start()
        self.wait_notify(self.ns, "READY=1")
        pw = pwd.getpwnam("vmail")
        pid = self.proc.pid
        with open("/proc/%d/status" % pid) as f:
            st = dict(l.rstrip("\n").split(":\t", 1) for l in f)
        self.assertEqual(st["Uid"].split(), [str(pw.pw_uid)] * 4)
        # The sandbox is the daemon's: a seccomp filter, no_new_privs, the
        # bounding set (CAP_SETGID 6, CAP_SETUID 7, CAP_NET_BIND_SERVICE
        # 10), a read-only / in a mount namespace of its own.
        self.assertEqual(st["Seccomp"], "2")
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertEqual(int(st["CapBnd"], 16), (1 << 6) | (1 << 7) | (1 << 10))
        self.assertNotEqual(os.readlink("/proc/%d/ns/mnt" % pid),
                            os.readlink("/proc/self/ns/mnt"))
        with open("/proc/%d/mountinfo" % pid) as f:
            mounts = {l.split()[4]: l.split()[5].split(",") for l in f}
        self.assertIn("ro", mounts["/"])
        self.assertIn("rw", mounts["/var/vmail"])

        # A user and a message, added while it runs: the passwd-file is
        # re-read (as vmail, through group vmail) at the next login.
        self.password = "p4ckage-Test-pw"
        h = run(["/usr/sbin/evpop3d", "hash"], input=self.password + "\n")
        with open(PASSWD, "a") as f:
            f.write("alice@example.org:%s\n" % h.stdout.strip())
        md = "/var/vmail/example.org/alice/Maildir"
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub))
        self.body = b"Subject: packaged\r\n\r\nhello from the package test\r\n"
        with open(os.path.join(md, "new", "1.test.host"), "wb") as f:
            f.write(self.body)
        for root, dirs, files in os.walk("/var/vmail/example.org"):
            for n in dirs + files + [""]:
                os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
        self.login()
        # The admin socket, in the unit's RuntimeDirectory.
        r = run(["/usr/sbin/evpop3d", "stats", "-c", CONF], check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^evpop3d_logins_total 1$")
        log = self.stop()
        self.assertIn("event=privdrop user=vmail", log)
        self.assertIn("event=login", log)

    def socket_unit(self, name):
        """A listening socket as the installed socket unit describes it,
        and its FileDescriptorName. On loopback: ListenStream=PORT means
        every address, which a test does not open."""
        path = "/lib/systemd/system/" + name
        port = int(unit_values(path, "ListenStream")[0])
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(int(unit_values(path, "Backlog")[0]))
        self.addCleanup(s.close)
        return s, unit_values(path, "FileDescriptorName")[0]

    def socket_activation(self):
        """systemd holds the socket (evpop3d.socket): the daemon serves
        it instead of binding [server] listen (the same address: a bind
        would fail), and a client that connects while the daemon
        restarts waits in the backlog and is served by the next one."""
        pop3 = self.socket_unit("evpop3d.socket")
        self.assertEqual(pop3[1], "pop3")
        self.start([pop3])
        self.wait_notify(self.ns, "READY=1")
        self.login()
        self.stop()
        waiting = socket.create_connection(("127.0.0.1", 110),
                                           timeout=TIMEOUT)
        self.start([pop3])
        self.wait_notify(self.ns, "READY=1")
        f = waiting.makefile("rwb")
        for line in (None, b"USER alice@example.org",
                     b"PASS " + self.password.encode(), b"STAT", b"QUIT"):
            if line is not None:
                f.write(line + b"\r\n")
                f.flush()
            self.assertTrue(f.readline().startswith(b"+OK"), line)
        f.close()
        waiting.close()
        log = self.stop()
        self.assertIn("event=listen addr=127.0.0.1:110 from=systemd", log)
        self.assertNotIn("step=bind", log)

        # evpop3d-tls.socket without [tls]: the start is refused, saying
        # why.
        pop3s = self.socket_unit("evpop3d-tls.socket")
        self.assertEqual(pop3s[1], "pop3s")
        self.start([pop3, pop3s])
        self.assertEqual(self.proc.wait(timeout=TIMEOUT), 1, self.log())
        self.assertIn("implicit TLS needs [tls]", self.log())

    def check_purged(self):
        for f in ("/usr/sbin/evpop3d", UNIT, CONF, PASSWD,
                  "/etc/fail2ban/filter.d/evpop3d.conf",
                  os.path.join(WANTS, "evpop3d.service")):
            self.assertFalse(os.path.lexists(f), f)
        self.assertFalse(os.path.exists("/etc/evpop3d"))
        # Kept by design: they may hold mail.
        self.assertTrue(exists_user("vmail"))
        self.assertTrue(os.path.isdir("/var/vmail/example.org"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
