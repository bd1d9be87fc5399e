"""
Install and systemd units (issue 12): what `cmake --install` puts where,
and the units it installs, checked by systemd's own tools.

 - cmake --install of the test build into a DESTDIR puts every file in
   its GNUInstallDirs place: the daemon in sbin, evpop3d-swarm in bin and
   every scenario of scripts/swarm in share/evpop3d/swarm, evpop3d.ini
   (0644) and an empty passwd-file (0640) in SYSCONFDIR/evpop3d, the
   three units in the unit directory, the man pages evpop3d(8),
   evpop3d.ini(5) and evpop3d-swarm(1), the fail2ban filter;
   the installed unit's ExecStart names the installed binary and
   configuration, and the installed configuration is the packaged
   default (loopback port 110, user vmail, /var/vmail);
 - a second install keeps an edited configuration and passwd-file;
 - `systemd-analyze verify` passes every installed unit, with ExecStart
   pointing at the installed binary in the DESTDIR and the installed man
   pages for Documentation= (and fails a unit with a mistyped key: the
   check can fail);
 - `systemd-analyze security --offline=yes` rates the installed service
   at an exposure of 4.0 or less (Debian's dovecot.service is printed
   beside it when it is on the machine);
 - the socket units name the descriptors pop3 and pop3s for the service,
   and the service neither requires nor pulls them in (socket activation
   is optional);
 - the man pages are clean for `mandoc -T lint` and `groff -ww`.

No daemon is started here: test_package runs the installed one.
"""

import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

SRC = os.environ.get("EVPOP3D_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
BIN = os.environ.get("EVPOP3D_BIN") or os.path.join(SRC, "build-it",
                                                    "evpop3d")
BUILD = os.path.dirname(os.path.abspath(BIN))
UNITS = ("evpop3d.service", "evpop3d.socket", "evpop3d-tls.socket")
MAX_EXPOSURE = 4.0


def run(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(argv, **kw)


def cache_var(name):
    """A variable of the build's CMakeCache.txt."""
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(r"%s:[A-Z]+=(.*)$" % re.escape(name), line)
            if m:
                return m.group(1)
    raise KeyError(name)


def unit_keys(path):
    """{(section, key): [values]} of a unit file."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            out.setdefault((section, k.strip()), []).append(v.strip())
    return out


def exposure(path):
    """The overall exposure systemd-analyze gives a service unit file."""
    r = run(["systemd-analyze", "security", "--offline=yes", path])
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    if m is None:
        raise AssertionError("no exposure in systemd-analyze output:\n" +
                             r.stdout + r.stderr)
    return float(m.group(1))


class Install(unittest.TestCase):
    """One cmake --install into a DESTDIR, shared by the tests."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="evpop3d-units-")
        cls.dest = os.path.join(cls.tmp, "dest")
        cls.prefix = cache_var("CMAKE_INSTALL_PREFIX")
        cls.unitdir = cache_var("EVPOP3D_SYSTEMD_UNITDIR")
        cls.install(cls.dest)
        # GNUInstallDirs: SYSCONFDIR is /etc for prefix /usr, else
        # PREFIX/etc.
        cls.sysconf = "/etc" if cls.prefix == "/usr" else \
            os.path.join(cls.prefix, "etc")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @staticmethod
    def install(dest):
        env = dict(os.environ, DESTDIR=dest)
        r = run(["cmake", "--install", BUILD], env=env)
        if r.returncode != 0:
            raise AssertionError("cmake --install failed:\n" + r.stdout +
                                 r.stderr)
        return r.stdout

    def d(self, path, dest=None):
        """path (absolute, as installed) inside the DESTDIR."""
        return os.path.join(dest or self.dest, path.lstrip("/"))

    def p(self, rel):
        return self.d(os.path.join(self.prefix, rel))

    def assertFile(self, path, mode=None, same_as=None):
        st = os.lstat(path)
        self.assertTrue(stat.S_ISREG(st.st_mode), path)
        if mode is not None:
            self.assertEqual(stat.S_IMODE(st.st_mode), mode,
                             "%s: mode %o" % (path, st.st_mode))
        if same_as is not None:
            with open(path, "rb") as a, open(same_as, "rb") as b:
                self.assertEqual(a.read(), b.read(), path)

    def test_files(self):
        self.assertFile(self.p("sbin/evpop3d"), mode=0o755)
        self.assertFile(self.p("bin/evpop3d-swarm"), mode=0o755)
        scen = os.path.join(SRC, "scripts", "swarm")
        want = sorted(f for f in os.listdir(scen) if f.endswith(".swarm"))
        self.assertTrue(want)
        got = self.p("share/evpop3d/swarm")
        self.assertEqual(sorted(os.listdir(got)), want)
        for f in want:
            self.assertFile(os.path.join(got, f), mode=0o644,
                            same_as=os.path.join(scen, f))
        conf = self.d(os.path.join(self.sysconf, "evpop3d"))
        self.assertFile(os.path.join(conf, "evpop3d.ini"), mode=0o644)
        self.assertFile(os.path.join(conf, "passwd"), mode=0o640)
        for u in UNITS:
            self.assertFile(self.d(os.path.join(self.unitdir, u)),
                            mode=0o644)
        self.assertFile(self.p("share/man/man1/evpop3d-swarm.1"),
                        same_as=os.path.join(SRC, "doc/man/evpop3d-swarm.1"))
        self.assertFile(self.p("share/man/man8/evpop3d.8"),
                        same_as=os.path.join(SRC, "doc/man/evpop3d.8"))
        self.assertFile(self.p("share/man/man5/evpop3d.ini.5"),
                        same_as=os.path.join(SRC, "doc/man/evpop3d.ini.5"))
        self.assertFile(self.d(os.path.join(self.sysconf,
                                            "fail2ban/filter.d/evpop3d.conf")),
                        same_as=os.path.join(SRC, "conf/fail2ban/evpop3d.conf"))

    def test_installed_paths(self):
        """The unit starts the installed binary with the installed config,
        which is the packaged default."""
        sbin = os.path.join(self.prefix, "sbin", "evpop3d")
        ini = os.path.join(self.sysconf, "evpop3d", "evpop3d.ini")
        keys = unit_keys(self.d(os.path.join(self.unitdir,
                                             "evpop3d.service")))
        self.assertEqual(keys[("Service", "ExecStart")],
                         ["%s -c %s" % (sbin, ini)])
        with open(self.d(ini)) as f:
            text = f.read()
        for line in ("listen = 127.0.0.1:110, [::1]:110", "user = vmail",
                     "group = vmail", "allow_shrink = yes",
                     "passwd_file = %s/evpop3d/passwd" % self.sysconf,
                     "location = /var/vmail/%d/%n/Maildir"):
            self.assertRegex(text, r"(?m)^%s$" % re.escape(line))
        # Nothing else differs from the commented example.
        with open(os.path.join(SRC, "conf", "evpop3d.ini")) as f:
            example = f.read()
        self.assertEqual(len(text.splitlines()),
                         len(example.splitlines()) + 1)
        self.assertNotIn("1100", text)

    def test_reinstall_keeps_edits(self):
        # A DESTDIR of its own: the other tests read the pristine install.
        dest = os.path.join(self.tmp, "again")
        self.install(dest)
        conf = self.d(os.path.join(self.sysconf, "evpop3d"), dest)
        ini, pw = os.path.join(conf, "evpop3d.ini"), os.path.join(conf,
                                                                  "passwd")
        with open(ini, "a") as f:
            f.write("; edited by the operator\n")
        with open(pw, "a") as f:
            f.write("alice:{PLAIN}secret\n")
        os.chmod(pw, 0o600)
        with open(ini) as f:
            ini_text = f.read()
        with open(pw) as f:
            pw_text = f.read()
        out = self.install(dest)
        self.assertIn("Kept existing: %s" % ini, out)
        self.assertIn("Kept existing: %s" % pw, out)
        with open(ini) as f:
            self.assertEqual(f.read(), ini_text)
        with open(pw) as f:
            self.assertEqual(f.read(), pw_text)
        self.assertEqual(stat.S_IMODE(os.stat(pw).st_mode), 0o600)
        # The rest is installed as usual.
        self.assertFile(self.d(os.path.join(self.prefix, "sbin/evpop3d"),
                               dest), mode=0o755)

    def verify(self, unitdir):
        env = dict(os.environ,
                   MANPATH=self.p("share/man"), SYSTEMD_LOG_COLOR="0")
        return run(["systemd-analyze", "verify"] +
                   [os.path.join(unitdir, u) for u in UNITS], env=env,
                   cwd=self.tmp)

    def copy_units(self, name):
        """The installed units in a directory of their own, ExecStart
        naming the installed binary in the DESTDIR (verify checks that
        it is there and executable)."""
        out = os.path.join(self.tmp, name)
        os.makedirs(out)
        sbin = os.path.join(self.prefix, "sbin", "evpop3d")
        for u in UNITS:
            with open(self.d(os.path.join(self.unitdir, u))) as f:
                text = f.read()
            if u == "evpop3d.service":
                self.assertIn("ExecStart=%s " % sbin, text)
                text = text.replace("ExecStart=%s " % sbin,
                                    "ExecStart=%s " % self.d(sbin))
            with open(os.path.join(out, u), "w") as f:
                f.write(text)
        return out

    @unittest.skipUnless(shutil.which("systemd-analyze"),
                         "no systemd-analyze (scripts/deps installs systemd)")
    def test_verify(self):
        units = self.copy_units("verify")
        r = self.verify(units)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
        # The check can fail: a mistyped key is reported.
        with open(os.path.join(units, "evpop3d.socket"), "a") as f:
            f.write("[Socket]\nListenStrem=110\n")
        r = self.verify(units)
        self.assertIn("Unknown key 'ListenStrem'", r.stderr)

    @unittest.skipUnless(shutil.which("systemd-analyze"),
                         "no systemd-analyze (scripts/deps installs systemd)")
    def test_security(self):
        path = os.path.join(self.copy_units("security"), "evpop3d.service")
        ours = exposure(path)
        line = "systemd-analyze security: evpop3d.service %.1f" % ours
        dovecot = "/lib/systemd/system/dovecot.service"
        if os.path.exists(dovecot):
            line += ", Debian's dovecot.service %.1f" % exposure(dovecot)
        print(line)
        self.assertLessEqual(ours, MAX_EXPOSURE)

    def test_socket_units(self):
        sock = unit_keys(self.d(os.path.join(self.unitdir,
                                             "evpop3d.socket")))
        tls = unit_keys(self.d(os.path.join(self.unitdir,
                                            "evpop3d-tls.socket")))
        svc = unit_keys(self.d(os.path.join(self.unitdir,
                                            "evpop3d.service")))
        # The names the daemon tells plain and TLS listeners apart by.
        self.assertEqual(sock[("Socket", "FileDescriptorName")], ["pop3"])
        self.assertEqual(tls[("Socket", "FileDescriptorName")], ["pop3s"])
        self.assertEqual(sock[("Socket", "ListenStream")], ["110"])
        self.assertEqual(tls[("Socket", "ListenStream")], ["995"])
        for u in (sock, tls):
            self.assertEqual(u[("Socket", "Service")], ["evpop3d.service"])
            self.assertEqual(u[("Install", "WantedBy")], ["sockets.target"])
        # Optional: the service runs without them (it binds [server]
        # listen then); Sockets= would pull them in.
        for k in ("Sockets", "Requires", "Wants", "BindsTo"):
            for sec in ("Unit", "Service"):
                self.assertNotIn((sec, k), svc)
        self.assertEqual(svc[("Service", "Type")], ["notify"])
        self.assertEqual(svc[("Service", "ExecReload")],
                         ["kill -HUP $MAINPID"])
        self.assertNotIn(("Service", "ExecStartPre"), svc)
        # Room for 2 * max_connections + 60 descriptors (the default
        # max_connections is 10000).
        self.assertGreaterEqual(int(svc[("Service", "LimitNOFILE")][0]),
                                2 * 10000 + 60)


class ManPages(unittest.TestCase):
    PAGES = ("doc/man/evpop3d.8", "doc/man/evpop3d.ini.5",
             "doc/man/evpop3d-swarm.1")

    @unittest.skipUnless(shutil.which("mandoc"),
                         "no mandoc (scripts/deps installs it)")
    def test_mandoc_lint(self):
        for p in self.PAGES:
            r = run(["mandoc", "-T", "lint", "-W", "warning",
                     os.path.join(SRC, p)])
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""), p)

    @unittest.skipUnless(shutil.which("groff"), "no groff")
    def test_groff(self):
        for p in self.PAGES:
            r = run(["groff", "-mandoc", "-ww", "-z", os.path.join(SRC, p)])
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""), p)


if __name__ == "__main__":
    unittest.main(verbosity=2)
