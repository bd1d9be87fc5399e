"""
{ARGON2I} and {ARGON2ID} (issue 11), against hashes made at test time by
Dovecot's own `doveadm pw -s ARGON2I` and `-s ARGON2ID` (its defaults:
32 MiB and 4 passes, 64 MiB and 3 passes), and the other way round:
`evpop3d hash -s ARGON2I|ARGON2ID` verified by `doveadm pw -t`.

 - each user logs in with poplib with the right password and gets
   -ERR [AUTH] with a wrong one;
 - malformed or over-limit argon2 entries are named at load and cannot
   log in;
 - the checks run on the worker pool: with one worker busy with argon2
   logins, a logged-in session's NOOP is answered before them.
"""

import poplib
import re
import secrets
import shutil
import select
import subprocess

import evtest

DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"


def doveadm_pw(scheme, password, rounds=None):
    args = [DOVEADM, "pw", "-s", scheme, "-p", password]
    if rounds is not None:
        args += ["-r", str(rounds)]
    out = subprocess.run(args, capture_output=True, text=True, check=True,
                         timeout=60)
    return out.stdout.strip()


def evpop3d_hash(*args, password):
    return subprocess.run([evtest.BIN, "hash"] + list(args),
                          input=password + "\n", capture_output=True,
                          text=True, timeout=60)


class Argon2(evtest.ServerTestCase):

    CONFIG = {"auth": {"threads": "1"}}

    @classmethod
    def setup_users(cls, srv):
        cls.users = {}
        for scheme, rounds, params in (
                ("ARGON2I", None, "m=32768,t=4,p=1"),
                ("ARGON2ID", None, "m=65536,t=3,p=1"),
                ("ARGON2I", 3, "m=32768,t=3,p=1"),
                ("ARGON2ID", 3, "m=262144,t=3,p=1")):
            pw = "pw-" + secrets.token_hex(6)
            stored = doveadm_pw(scheme, pw, rounds)
            assert stored.startswith("{%s}$%s$v=19$%s$" % (
                scheme, scheme.lower(), params)), stored
            name = "d-%s-%s@example.com" % (scheme.lower(), rounds or 0)
            cls.users[name] = srv.add_user(name, pw, stored)
        for scheme in ("ARGON2I", "ARGON2ID"):
            pw = "pw-" + secrets.token_hex(6)
            r = evpop3d_hash("-s", scheme, password=pw)
            assert r.returncode == 0, r.stderr
            name = "h-%s@example.com" % scheme.lower()
            cls.users[name] = srv.add_user(name, pw, r.stdout.strip())
        # Refused at load: a hostile or mistyped entry must not make
        # every login allocate 4 GiB, nor be a silent failure.
        good = cls.users["d-argon2id-0@example.com"].stored
        cls.bad = {
            "big@example.com": re.sub(r"m=\d+", "m=4194304", good),
            "slow@example.com": re.sub(r"t=\d+", "t=1000", good),
            "cut@example.com": good[:good.rindex("$")],
            "variant@example.com": good.replace("{ARGON2ID}$argon2id$",
                                                "{ARGON2ID}$argon2d$"),
            "swapped@example.com": good.replace("{ARGON2ID}", "{ARGON2I}"),
        }
        cls.bad_mb = {name: srv.add_user(name, "pw-bad-" + name[:3], stored)
                      for name, stored in cls.bad.items()}

    def pop_login(self, mb, password):
        p = poplib.POP3("127.0.0.1", self.srv.port, timeout=30)
        self.addCleanup(p.close)
        p.user(mb.user)
        return p, p.pass_(password)

    def test_logins(self):
        for name, mb in sorted(self.users.items()):
            with self.subTest(user=name):
                p, resp = self.pop_login(mb, mb.password)
                self.assertTrue(resp.startswith(b"+OK"), resp)
                p.quit()
                with self.assertRaises(poplib.error_proto) as e:
                    self.pop_login(mb, mb.password[:-1])
                self.assertIn(b"[AUTH]", e.exception.args[0])

    def test_doveadm_verifies_ours(self):
        for scheme in ("ARGON2I", "ARGON2ID"):
            mb = self.users["h-%s@example.com" % scheme.lower()]
            out = subprocess.run([DOVEADM, "pw", "-t", mb.stored, "-p",
                                  mb.password], capture_output=True,
                                 text=True, timeout=60)
            self.assertIn("(verified)", out.stdout + out.stderr)
            out = subprocess.run([DOVEADM, "pw", "-t", mb.stored, "-p",
                                  mb.password + "x"], capture_output=True,
                                 text=True, timeout=60)
            self.assertNotIn("(verified)", out.stdout + out.stderr)

    def test_bad_entries_named(self):
        log = self.srv.log_text()
        for name, stored in sorted(self.bad.items()):
            scheme = stored[1:stored.index("}")]
            self.assertRegex(log, r'warn event=passwd-entry-unusable '
                             r'file=\S+ line=\d+ user="%s" scheme="%s" ' %
                             (re.escape(name), scheme))
            mb = self.bad_mb[name]
            with self.assertRaises(poplib.error_proto):
                self.pop_login(mb, mb.password)
        for name in self.users:
            self.assertNotIn('user="%s"' % name, log)

    def test_on_the_worker(self):
        # One worker, three argon2id logins of 256 MiB and 3 passes each
        # queued on it: a session already logged in gets its NOOP
        # answered while they run. Were the checks on the loop, every
        # PASS would be answered before the NOOP is even read.
        mb = self.users["d-argon2id-3@example.com"]
        idle = self.login(self.fresh())
        conns = []
        for _ in range(3):
            c = self.connect(timeout=60)
            c.ok("USER " + mb.user)
            conns.append(c)
        for c in conns:
            c.send("PASS %s\r\n" % mb.password)
        self.assertEqual(idle.cmd("NOOP"), "+OK")
        ready, _, _ = select.select([c.sock for c in conns], [], [], 0)
        self.assertLess(len(ready), len(conns))
        answers = [c.status() for c in conns]
        # Same user: one gets the maildrop, the others [IN-USE].
        self.assertEqual(sum(a.startswith("+OK") for a in answers), 1,
                         answers)


class Argon2HashCommand(evtest.ServerTestCase):
    """`evpop3d hash -s ARGON2I|ARGON2ID [-r]`: Dovecot's parameters."""

    START = False

    def test_parameters(self):
        for args, prefix in (
                (["-s", "ARGON2I"], "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$"),
                (["-s", "argon2id"],
                 "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$"),
                (["-s", "ARGON2I", "-r", "5"],
                 "{ARGON2I}$argon2i$v=19$m=32768,t=5,p=1$")):
            with self.subTest(args=args):
                r = evpop3d_hash(*args, password="pw-x")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.startswith(prefix), r.stdout)
                # doveadm makes the same for the same rounds
                scheme = args[1].upper()
                rounds = int(args[3]) if len(args) > 2 else None
                self.assertTrue(doveadm_pw(scheme, "pw-x", rounds)
                                .startswith(prefix))

    def test_refused(self):
        for args, why in ((["-s", "ARGON2I", "-r", "2"], "out of range"),
                          (["-s", "ARGON2ID", "-r", "65"], "out of range")):
            with self.subTest(args=args):
                r = evpop3d_hash(*args, password="x")
                self.assertNotEqual(r.returncode, 0)
                self.assertEqual(r.stdout, "")
                self.assertIn(why, r.stderr)
        r = evpop3d_hash("-s", "ARGON2ID", password="")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("empty password refused", r.stderr)


if __name__ == "__main__":
    evtest.main()
