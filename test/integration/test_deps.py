"""
scripts/deps leaves no service enabled that was not enabled before
(issue 12): the packages the tests need (Dovecot, fail2ban) ship services
that their install enables for the next boot and would start.

 - a probe package, built here, whose postinst does what debhelper's does
   for a service (deb-systemd-helper enable, then a start through
   policy-rc.d), is installed by scripts/deps as an extra package: after
   it, the probe's unit has no enable link under /etc/systemd/system and
   `systemctl is-enabled` says disabled; its start was refused by
   policy-rc.d (101) during the install; every unit enabled before is
   still enabled, and /usr/sbin/policy-rc.d is as it was (the test runs
   it once without one, so that scripts/deps must make and remove its
   own);
 - dovecot.service and haproxy.service (installed by scripts/deps for
   the tests) are not enabled.

Root only; one at a time with test_package (they share a dpkg lock file);
the probe is purged and policy-rc.d restored after a failure too.
"""

import fcntl
import glob
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from evtest import run

SRC = os.environ.get("EVPOP3D_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
LOCK = "/run/lock/evpop3d-test-dpkg.lock"
POLICY = "/usr/sbin/policy-rc.d"
PROBE = "evpop3d-deps-probe"
UNIT = PROBE + ".service"
MARK = "/run/" + PROBE + ".policy"

POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
	deb-systemd-helper unmask %(unit)s >/dev/null || true
	if deb-systemd-helper --quiet was-enabled %(unit)s; then
		deb-systemd-helper enable %(unit)s >/dev/null || true
	fi
	# What invoke-rc.d and deb-systemd-invoke ask before a start.
	rc=0
	[ -x /usr/sbin/policy-rc.d ] && { /usr/sbin/policy-rc.d %(unit)s start || rc=$?; }
	echo "$rc" >%(mark)s
fi
"""
POSTRM = """#!/bin/sh
set -e
if [ "$1" = purge ]; then
	deb-systemd-helper purge %(unit)s >/dev/null || true
fi
"""
SERVICE = """[Unit]
Description=evpop3d test_deps probe (never started)

[Service]
ExecStart=/bin/true

[Install]
WantedBy=multi-user.target
"""


def enabled_links():
    return set(glob.glob("/etc/systemd/system/*.wants/*") +
               glob.glob("/etc/systemd/system/*.requires/*"))


def is_enabled(unit):
    """systemctl is-enabled, which reads the files (no running systemd
    needed); None when systemctl cannot answer."""
    if not shutil.which("systemctl"):
        return None
    r = run(["systemctl", "is-enabled", unit], check=False)
    return r.stdout.strip() or None


@unittest.skipUnless(os.geteuid() == 0, "installs a package: root only")
@unittest.skipUnless(shutil.which("dpkg-deb") and shutil.which("apt-get"),
                     "not a Debian system")
class Deps(unittest.TestCase):

    def lock(self):
        os.makedirs(os.path.dirname(LOCK), exist_ok=True)
        f = open(LOCK, "w")
        self.addCleanup(f.close)
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.fail("another test holds " + LOCK)
                time.sleep(0.5)

    def build_probe(self, tmp):
        root = os.path.join(tmp, PROBE)
        os.makedirs(os.path.join(root, "DEBIAN"))
        os.makedirs(os.path.join(root, "lib/systemd/system"))
        with open(os.path.join(root, "lib/systemd/system", UNIT), "w") as f:
            f.write(SERVICE)
        with open(os.path.join(root, "DEBIAN/control"), "w") as f:
            f.write("Package: %s\nVersion: 1.0\nArchitecture: all\n"
                    "Maintainer: evpop3d tests <tests@example.org>\n"
                    "Description: scripts/deps test probe\n"
                    " Enables a service at install, as debhelper does.\n"
                    % PROBE)
        for name, text in (("postinst", POSTINST), ("postrm", POSTRM)):
            path = os.path.join(root, "DEBIAN", name)
            with open(path, "w") as f:
                f.write(text % {"unit": UNIT, "mark": MARK})
            os.chmod(path, 0o755)
        deb = os.path.join(tmp, PROBE + ".deb")
        run(["dpkg-deb", "--root-owner-group", "--build", root, deb])
        return deb

    def purge_probe(self):
        run(["dpkg", "--purge", PROBE], check=False)
        for link in glob.glob("/etc/systemd/system/*/" + UNIT):
            os.unlink(link)
        if os.path.exists(MARK):
            os.unlink(MARK)

    def set_aside_policy(self):
        """Run without a policy-rc.d, and put the machine's back after."""
        if not os.path.exists(POLICY):
            return
        with open(POLICY, "rb") as f:
            saved = f.read()
        mode = os.stat(POLICY).st_mode & 0o7777

        def restore():
            with open(POLICY + ".evpop3d-test", "wb") as f:
                f.write(saved)
            os.chmod(POLICY + ".evpop3d-test", mode)
            os.replace(POLICY + ".evpop3d-test", POLICY)
        self.addCleanup(restore)
        os.unlink(POLICY)

    def test_probe_not_enabled(self):
        self.lock()
        tmp = tempfile.mkdtemp(prefix="evpop3d-deps-")
        self.addCleanup(shutil.rmtree, tmp, True)
        deb = self.build_probe(tmp)
        self.purge_probe()
        self.addCleanup(self.purge_probe)
        self.set_aside_policy()
        before = enabled_links()

        r = run(["sh", os.path.join(SRC, "scripts", "deps"), deb])
        self.assertIn("%s was enabled by its package install" % UNIT,
                      r.stderr)
        self.assertEqual(run(["dpkg-query", "-W", "-f", "${Status}",
                              PROBE]).stdout, "install ok installed")
        # Its start was asked during the install, and refused.
        with open(MARK) as f:
            self.assertEqual(f.read().strip(), "101")
        # Not enabled, and nothing that was enabled lost its link.
        self.assertEqual(enabled_links(), before)
        self.assertIn(is_enabled(UNIT), (None, "disabled"))
        # The policy-rc.d scripts/deps made is gone again.
        self.assertFalse(os.path.exists(POLICY))

    def assertServiceNotEnabled(self, unit, package):
        if not os.path.exists("/lib/systemd/system/" + unit):
            self.skipTest(package + " not installed")
        links = glob.glob("/etc/systemd/system/*.wants/" + unit)
        if links:
            # scripts/deps disables what the installs it runs enable; a
            # link made before it did (an older scripts/deps, or an
            # image built by hand) is not its to remove.
            self.skipTest("%s was enabled before scripts/deps ran (%s, %s);"
                          " `systemctl disable %s` once" %
                          (unit, links[0],
                           time.ctime(os.lstat(links[0]).st_mtime), unit))
        self.assertIn(is_enabled(unit), (None, "disabled"))

    def test_dovecot_not_enabled(self):
        self.assertServiceNotEnabled("dovecot.service", "dovecot-core")

    def test_haproxy_not_enabled(self):
        """test_haproxy runs haproxy standalone; its package's service
        (which would listen as /etc/haproxy/haproxy.cfg says) stays off."""
        self.assertServiceNotEnabled("haproxy.service", "haproxy")

if __name__ == "__main__":
    unittest.main(verbosity=2)
