#!/usr/bin/env python3
"""
[auth] driver = pgsql: users in a real PostgreSQL (pgcluster.py: Debian's
binaries, initdb into a temp dir as nobody, a unix socket only), with a
Dovecot-style users table.

 - logins: USER/PASS for {SHA512-CRYPT}, {BLF-CRYPT} and {PLAIN} users,
   APOP for a {PLAIN} one, AUTH PLAIN; a per-user mail location (the mail
   column); the user column's canonical name;
 - a wrong password and an unknown user: the same [AUTH] answer at the
   same failure_delay; SQL in the user name is a value (the table is
   intact, no login);
 - the cache: a second login within cache_ttl sends no query (counted in
   the server's statement log), one after it does;
 - the database killed mid-run: [SYS/TEMP] (never [AUTH]), not counted
   for max_failures, one pgsql-down line; a cached user still logs in;
   the database back: logins work again (the back-off's probe), one
   pgsql-up line;
 - the database stalled (SIGSTOP): another session's NOOP is answered at
   once (nothing blocks the loop), the login answers [SYS/TEMP] at
   pgsql_timeout; resumed: logins work again;
 - a reload that changes the query (a new pool) and one that does not (the
   pool kept, the cache flushed); evpop3d -t on the templates.
"""

import os
import signal
import subprocess
import sys
import time
import unittest

import evtest
import pgcluster

DELAY_MS = 300
TTL_S = 2
TIMEOUT_S = 2
# In the conninfo: trust authentication never asks for it, and it must
# never reach the log.
DB_SECRET = "Db-Secret-%s" % os.urandom(4).hex()


class PgsqlTest(evtest.ServerTestCase):
    START = False
    CONFIG = {
        "auth": {
            "driver": "pgsql",
            "apop": "yes",
            "failure_delay": str(DELAY_MS),
            "max_failures": "3",
            "cache_ttl": str(TTL_S),
            "pgsql_timeout": str(TIMEOUT_S),
            "pgsql_connections": "3",
            # The tests connect from 127.0.0.1: no penalty in the way.
            "limits_exempt": "127.0.0.1",
            # Dovecot's default and the mail column (prefetch).
            "password_query": "SELECT userid AS user, password, home, uid, "
                              "gid, mail FROM users WHERE userid = '%u'",
        },
    }

    @classmethod
    def setUpClass(cls):
        cls.pg = pgcluster.PgCluster(scale=evtest.SCALE)
        cls.addClassCleanup(cls.pg.cleanup)
        cls.pg.start()
        cls.pg.psql(pgcluster.SCHEMA)
        super().setUpClass()
        srv = cls.srv
        srv.config["auth"]["pgsql_connect"] = "%s password=%s" % (
            cls.pg.conninfo, DB_SECRET)
        srv.secret(DB_SECRET)
        cls.users = {}
        for mb in srv.pool:
            cls.pg.add_user(mb.user, mb.stored, mb.home)
        # One of each scheme, and a user with a mail location of its own.
        sha = srv.add_user("sha@example.com", "Sha-pw-1")
        sha.stored = "{SHA512-CRYPT}" + evtest.openssl_passwd("Sha-pw-1")
        cls.pg.add_user(sha.user, sha.stored, sha.home)
        cls.users["sha"] = sha
        blf = evtest.bcrypt_hash("Blf-pw-1")
        if blf:
            mb = srv.add_user("blf@example.com", "Blf-pw-1")
            mb.stored = "{BLF-CRYPT}" + blf
            cls.pg.add_user(mb.user, mb.stored, mb.home)
            cls.users["blf"] = mb
        loc = os.path.join(srv.dir, "elsewhere", "maildir")
        mb = srv.add_user("loc@example.com", "Loc-pw-1")
        os.makedirs(os.path.join(loc, "new"))
        os.makedirs(os.path.join(loc, "cur"))
        os.makedirs(os.path.join(loc, "tmp"))
        mb.maildir = loc
        mb.add(b"Subject: elsewhere\n\nbody\n")
        cls.pg.add_user(mb.user, mb.stored, mb.home,
                        mail="maildir:" + loc)
        cls.users["loc"] = mb
        srv.start()

    # -- helpers

    def queries(self, user):
        """Password queries the server logged for user."""
        return self.pg.log_text().count(
            "parameters: $1 = %s" % pgcluster.quote(user))

    def wait_queries(self, user, n, timeout=5):
        deadline = time.monotonic() + timeout * evtest.SCALE
        while self.queries(user) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.queries(user)

    def queries_named(self, value, n=0, timeout=5):
        """Queries with a parameter value, waiting for n of them (no
        wait: 0)."""
        deadline = time.monotonic() + timeout * evtest.SCALE
        while True:
            got = self.pg.log_text().count("= %s" % pgcluster.quote(value))
            if got >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.02)

    def backends(self):
        """evpop3d's connections to the server now."""
        return int(self.pg.psql("SELECT count(*) FROM pg_stat_activity "
                                "WHERE application_name = 'evpop3d'")[0])

    def wait_backends(self, n, timeout=5):
        """Wait until evpop3d holds n connections (a closed one's backend
        exits a little later); returns the count then."""
        deadline = time.monotonic() + timeout * evtest.SCALE
        while self.backends() != n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.backends()

    def login_until_ok(self, mb, timeout=20):
        """Log in, retrying [SYS/TEMP] while the pool's back-off has not
        yet found the database again."""
        return self.login_retry(mb, timeout, code="[SYS/TEMP]")

    def assertTempFail(self, r):
        self.assertTrue(r.startswith("-ERR [SYS/TEMP]"), r)

    # -- tests

    def test_a_logins(self):
        for key in ("sha", "blf", "loc"):
            if key not in self.users:
                continue
            mb = self.users[key]
            c = self.login(mb)
            if key == "loc":	# the mail column: a maildrop elsewhere
                self.assertTrue(c.ok("STAT").startswith("+OK 1 "))
            c.quit()
        # AUTH PLAIN
        mb = self.fresh()
        c = self.connect()
        c.ok("AUTH PLAIN " + evtest.plain_b64(mb.user, mb.password))
        c.quit()
        # APOP, {PLAIN} users only
        mb = self.fresh()
        c = self.connect()
        ts = c.greeting[c.greeting.index("<"):c.greeting.index(">") + 1]
        c.ok("APOP %s %s" % (mb.user, evtest.apop_digest(ts, mb.password)))
        c.quit()
        c = self.connect()
        ts = c.greeting[c.greeting.index("<"):c.greeting.index(">") + 1]
        self.assertTrue(c.err("APOP %s %s" % (self.users["sha"].user,
                        evtest.apop_digest(ts, "Sha-pw-1")))
                        .startswith("-ERR [AUTH]"))

    def test_b_failures_look_alike(self):
        mb = self.fresh()
        c = self.connect()
        took_bad = self.failed_login_time(c, mb.user)
        took_unknown = self.failed_login_time(c, "nobody@example.com")
        self.assertDelay(took_bad, DELAY_MS)
        self.assertDelay(took_unknown, DELAY_MS)
        self.assertTrue(self.srv.wait_log(
            r"event=auth-failed .*user=\"?nobody@example.com.*"
            r"detail=unknown-user"))
        # SQL in the user name is a parameter's value, nothing more.
        for evil in ("x'OR'1'='1", "a';DROP-TABLE-users;--",
                     "x'||(SELECT'1')||'"):
            c = self.connect()
            c.ok("USER " + evil)
            self.assertTrue(c.err("PASS x").startswith("-ERR [AUTH]"))
        self.assertEqual(int(self.pg.psql("SELECT count(*) FROM users")[0]),
                         len(self.srv.users))

    def test_c_cache(self):
        mb = self.fresh()
        t_put = time.monotonic()	# the entry is cached after this
        c = self.login(mb)
        c.quit()
        self.assertEqual(self.wait_queries(mb.user, 1), 1)
        t0 = time.monotonic()
        c = self.login(mb)
        c.quit()
        # A wrong password against the cached entry: no query either.
        c = self.connect()
        c.ok("USER " + mb.user)
        self.assertTrue(c.err("PASS wrong").startswith("-ERR [AUTH]"))
        if time.monotonic() - t_put < TTL_S - 0.2:
            self.assertEqual(self.queries(mb.user), 1)
        # Past the TTL: asked again.
        time.sleep(max(0, t0 + TTL_S + 0.1 - time.monotonic()))
        c = self.login(mb)
        c.quit()
        self.assertGreaterEqual(self.wait_queries(mb.user, 2), 2)

    def test_cc_server_closes_idle(self):
        """The server closing an idle connection (pg_terminate_backend,
        as an idle timeout would) is no failure of the database: no
        event=pgsql-down, and the next login needs no back-off."""
        c = self.login(self.fresh())
        c.quit()
        self.assertGreaterEqual(self.wait_backends(1), 1)
        start = len(self.srv.log())
        self.pg.psql("SELECT pg_terminate_backend(pid) FROM "
                     "pg_stat_activity WHERE application_name = 'evpop3d'")
        # The pool opens another at once.
        self.assertGreaterEqual(self.wait_backends(1), 1)
        c = self.login(self.fresh())
        c.quit()
        log = self.srv.log()[start:]
        self.assertFalse(any("event=pgsql-down" in l for l in log), log)

    def test_d_db_down_and_back(self):
        cached = self.fresh()
        c = self.login(cached)
        c.quit()
        fresh = self.fresh()
        start = len(self.srv.log())
        self.pg.crash()
        self.addCleanup(self.pg.start)	# if the test fails before
        # The idle connections see the end: logged once.
        self.assertTrue(self.srv.wait_log(r"event=pgsql-down ", start=start))
        c = self.connect()
        for i in range(4):	# more than max_failures: not counted
            c.ok("USER " + fresh.user)
            t = time.monotonic()
            self.assertTempFail(c.cmd("PASS " + fresh.password))
            self.assertDelay(time.monotonic() - t, DELAY_MS)
        # A cached user still logs in while the database is down.
        c2 = self.login(cached)
        c2.quit()
        log = self.srv.log()[start:]
        self.assertEqual(sum("event=pgsql-down" in l for l in log), 1, log)
        self.assertFalse(any("event=pgsql-down" in l and DB_SECRET in l
                             for l in log))
        self.pg.start()
        c = self.login_until_ok(fresh)
        c.quit()
        self.assertTrue(self.srv.wait_log(r"event=pgsql-up", start=start))
        log = self.srv.log()[start:]
        self.assertEqual(sum("event=pgsql-up" in l for l in log), 1, log)

    def test_e_stalled_db_does_not_block(self):
        other = self.fresh()
        idle = self.login_until_ok(other)
        mb = self.fresh()
        self.pg.signal(signal.SIGSTOP)
        self.addCleanup(self.pg.signal, signal.SIGCONT)
        c = self.connect()
        c.ok("USER " + mb.user)
        t = time.monotonic()
        c.send("PASS %s\r\n" % mb.password)
        # The login waits for the database; the loop does not.
        for i in range(5):
            n = time.monotonic()
            idle.ok("NOOP")
            self.assertLess(time.monotonic() - n, 0.1 * evtest.SCALE)
        self.assertTempFail(c.status())
        took = time.monotonic() - t
        self.assertGreaterEqual(took, TIMEOUT_S - 0.05)
        self.assertLess(took, TIMEOUT_S + 2 * evtest.SCALE)
        self.pg.signal(signal.SIGCONT)
        c = self.login_until_ok(mb)
        c.quit()
        idle.quit()

    def test_f_reload(self):
        srv = self.srv
        self.pg.psql("CREATE TABLE accounts (name text PRIMARY KEY, "
                     "pw text, maildir text)")
        mb = self.fresh()
        self.pg.psql("INSERT INTO accounts VALUES (%s, %s, %s)" % (
            pgcluster.quote(mb.user), pgcluster.quote(mb.stored),
            pgcluster.quote("maildir:" + mb.maildir)))
        self.pg.psql("DELETE FROM users WHERE userid = %s" %
                     pgcluster.quote(mb.user))
        c = self.connect()
        c.ok("USER " + mb.user)
        self.assertTrue(c.err("PASS " + mb.password).startswith("-ERR [AUTH]"))
        self.assertGreaterEqual(self.backends(), 1)
        # A new query: the local part and the domain, glued in SQL.
        srv.config["auth"]["password_query"] = (
            "SELECT name AS user, pw AS password, maildir AS mail "
            "FROM accounts WHERE name = '%n@%d'")
        start = len(srv.log())
        srv.write_config()
        os.kill(srv.pid, signal.SIGHUP)
        self.assertTrue(srv.wait_log(r"event=reload result=ok", start=start))
        c = self.login_until_ok(mb)
        c.quit()
        # The old pool closed its connections: only the new one's is left.
        self.assertEqual(self.wait_backends(1), 1)
        # A reload that changes nothing of the pool keeps it (and its
        # connection), flushing its cache: mb's next login asks again.
        local = mb.user.split("@")[0]	# the new query's $1
        n = self.queries_named(local, 1)
        start = len(srv.log())
        os.kill(srv.pid, signal.SIGHUP)
        self.assertTrue(srv.wait_log(r"event=reload result=ok", start=start))
        c = self.login_until_ok(mb)
        c.quit()
        self.assertEqual(self.wait_backends(1), 1)
        self.assertGreater(self.queries_named(local, n + 1), n)
        # evpop3d -t refuses an unknown variable.
        bad = dict(srv.config)
        bad["auth"] = dict(srv.config["auth"], password_query=
                           "SELECT pw AS password FROM accounts "
                           "WHERE name = '%x'")
        path = srv.write_config(os.path.join(srv.dir, "bad.ini"), bad)
        r = subprocess.run([evtest.BIN, "-t", "-c", path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("[auth] password_query: unknown variable %x", r.stderr)
        self.assertNotIn(DB_SECRET, r.stderr + r.stdout)
        # ... and a host name (resolving it would block the loop).
        bad["auth"] = dict(srv.config["auth"], pgsql_connect=
                           "host=db.example.org dbname=mail")
        path = srv.write_config(os.path.join(srv.dir, "bad.ini"), bad)
        r = subprocess.run([evtest.BIN, "-t", "-c", path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("host db.example.org is a name", r.stderr)
        # ... a host name from the environment (PGHOST), when the
        # conninfo names no host ...
        bad["auth"] = dict(srv.config["auth"], pgsql_connect="dbname=mail")
        path = srv.write_config(os.path.join(srv.dir, "bad.ini"), bad)
        r = subprocess.run([evtest.BIN, "-t", "-c", path],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PGHOST="db.example.org"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("host db.example.org is a name", r.stderr)
        # ... and a service (its file could name a host).
        bad["auth"] = dict(srv.config["auth"], pgsql_connect="service=x")
        path = srv.write_config(os.path.join(srv.dir, "bad.ini"), bad)
        r = subprocess.run([evtest.BIN, "-t", "-c", path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("service x (or PGSERVICE) is refused", r.stderr)
        r = subprocess.run([evtest.BIN, "-t", "-c", srv.conf_path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_g_stop_with_lookup_pending(self):
        """A daemon stopped while a lookup waits for a stalled database
        (shutdown_timeout shorter than pgsql_timeout): it exits 0 at the
        shutdown deadline, not at the query's timeout, with no sanitizer
        report (the stop answers the lookup, its login job ends in the
        pool's last drain)."""
        srv = evtest.Server(config={
            "auth": dict(self.CONFIG["auth"], pgsql_connect=self.pg.conninfo,
                         pgsql_timeout="30"),
            "server": {"shutdown_timeout": "1"},
            "log": {"debug": "yes"}}, pool=1)
        self.addCleanup(srv.cleanup)
        mb = srv.add_user("stop@example.com", "Stop-pw-1")
        self.pg.add_user(mb.user, mb.stored, mb.home)
        srv.start()
        self.pg.signal(signal.SIGSTOP)
        self.addCleanup(self.pg.signal, signal.SIGCONT)
        c = self.connect(port=srv.port)
        c.ok("USER " + mb.user)
        c.send("PASS %s\r\n" % mb.password)
        self.assertTrue(srv.wait_log(r"event=pgsql-lookup user=\"?stop@"))
        t = time.monotonic()
        srv.stop()		# exit status 0, no sanitizer report
        self.assertLess(time.monotonic() - t, 15 * evtest.SCALE)
        self.pg.signal(signal.SIGCONT)


if __name__ == "__main__":
    evtest.main()
