"""
pgbench: the login-pgsql phase of scripts/bench ([auth] driver = pgsql).

The `login` scenario (USER, PASS, QUIT) against three evpop3d daemons in
alternation, the same bench users each time:

    evpop3d              the passwd-file (the bench's own daemon)
    evpop3d-pgsql        users in PostgreSQL, cache_ttl = 60 (after the
                         first pass every bench user is cached)
    evpop3d-pgsql-nocache  cache_ttl = 0: one query per login

The users come from the bench's passwd-file, copied into a throw-away
PostgreSQL (test/integration/pgcluster.py: initdb into a temp dir as
nobody, a unix socket only, statements not logged here). PostgreSQL's own
CPU (the postmaster and every backend, from /proc) is reported per
session beside evpop3d's. The work is driven from bench.py; bm is the
bench module.
"""

import os
import sys

from figures import med

PHASES = ["login-pgsql"]
PORTS = {"evpop3d-pgsql": 11104, "evpop3d-pgsql-nocache": 11105}
CONCURRENCY = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pg_classes(bm):
    class PgEvpop3d(bm.Evpop3d):
        def __init__(self, passwd, name, conninfo, ttl):
            self.name = name
            bm.PORTS.setdefault(name, PORTS[name])
            super().__init__(passwd)
            self.ini = os.path.join(bm.STATE, name + ".ini")
            self.log = os.path.join(bm.STATE, name + ".log")
            self.conninfo, self.ttl = conninfo, ttl

        def settings(self):
            t = super().settings()
            t = t.replace("passwd_file = %s\n" % self.passwd,
                          "driver = pgsql\npgsql_connect = %s\n"
                          "cache_ttl = %d\npgsql_connections = 4\n" % (
                              self.conninfo, self.ttl), 1)
            return t.replace("socket = %s\n" % os.path.join(
                bm.STATE, "control"), "socket = %s\n" % os.path.join(
                    bm.STATE, self.name + ".control"), 1)
    return PgEvpop3d


def proc_cpu_us(pids):
    """utime + stime of pids, and of their reaped children, in µs."""
    t = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                v = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        t += sum(int(x) for x in v[11:15])	# utime stime cutime cstime
    return t * 1e6 / CLK_TCK


def load_users(pg, passwd):
    """Every passwd-file user into pg's users table (COPY)."""
    import subprocess
    rows = []
    with open(passwd) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            p = line.split(":", 7) + [""] * 8
            mail = ""
            for kv in p[7].split():
                if kv.startswith("userdb_mail="):
                    mail = kv[len("userdb_mail="):]
            rows.append("\t".join([p[0], p[1], p[5], p[2] or "\\N",
                                   p[3] or "\\N", mail or "\\N"]))
    r = subprocess.run([os.path.join(pg.bin, "psql"), "-X", "-q", "-v",
                        "ON_ERROR_STOP=1", "-h", pg.sock, "-U", "postgres",
                        "-d", "postgres", "-c", "COPY users FROM STDIN"],
                       input="\n".join(rows) + "\n", text=True,
                       capture_output=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("COPY users: " + r.stderr)
    return len(rows)


class PgBench:
    def __init__(self, b, bm, passwd):
        self.b, self.bm, self.passwd = b, bm, passwd

    def run(self):
        bm, b = self.bm, self.b
        sys.path.insert(0, os.path.join(bm.ROOT, "test", "integration"))
        import pgcluster
        for name, port in PORTS.items():
            if not bm.port_free(port):
                raise bm.BenchError("port %d (%s) is in use" % (port, name))
        pg = pgcluster.PgCluster(log_statements=False)
        srvs = []
        try:
            pg.start()
            pg.psql(pgcluster.SCHEMA)
            n = load_users(pg, self.passwd)
            bm.say("login-pgsql: %d users in PostgreSQL (%s)" % (n, pg.dir))
            cls = pg_classes(bm)
            for name, ttl in (("evpop3d-pgsql", 60),
                              ("evpop3d-pgsql-nocache", 0)):
                srv = cls(self.passwd, name, pg.conninfo, ttl)
                b.start_server(srv)
                srvs.append(srv)
            order = [b.servers["evpop3d"]] + srvs
            data = b.data.setdefault("login-pgsql", {})
            for rnd in range(1, b.args.rounds + 1):
                for srv in order:
                    name = "pg-login-c%d-%s-r%d" % (CONCURRENCY, srv.name,
                                                     rnd)
                    pg0 = proc_cpu_us(pg.pids())
                    r = b.run(name, srv, "login", CONCURRENCY,
                              b.args.duration)
                    done = max(r["sessions"].get("completed", 0) or
                               r.get("sessions_per_s", 0) *
                               b.args.duration, 1)
                    r["pg_cpu_us_per_session"] = (
                        proc_cpu_us(pg.pids()) - pg0) / done
                    data.setdefault(srv.name, []).append(r)
        finally:
            for srv in srvs:
                srv.stop()
                b.servers.pop(srv.name, None)
            pg.cleanup()


def summarize(data):
    if not data:
        return None
    out = {}
    for name, runs in data.items():
        out[name] = {
            "rounds": len(runs),
            "sessions_per_s": med([r["sessions_per_s"] for r in runs]),
            "cpu_us_per_session": med([(r.get("server") or {}).get(
                "cpu_us_per_session") for r in runs]),
            "pg_cpu_us_per_session": med([r.get("pg_cpu_us_per_session")
                                          for r in runs]),
            "p99_session_ms": med([r["latency_us"]["session"].get(
                "p99", 0) / 1e3 for r in runs]),
            "failed": sum(r["sessions"]["failed"] for r in runs),
            "violations": sum(r["violations"]["total"] for r in runs)}
    return out


def markdown(s):
    """The report's section (a list of lines), or []."""
    if not s:
        return []
    base = (s.get("evpop3d") or {}).get("sessions_per_s")
    md = ["### Login with users in PostgreSQL (login scenario, c=%d)\n"
          % CONCURRENCY,
          "| user database | sessions/s | vs passwd-file | evpop3d CPU "
          "µs/session | PostgreSQL CPU µs/session | p99 session ms | "
          "failed |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for name, what in (("evpop3d", "passwd-file"),
                       ("evpop3d-pgsql", "pgsql, cache_ttl = 60"),
                       ("evpop3d-pgsql-nocache", "pgsql, no cache")):
        r = s.get(name)
        if not r:
            continue
        sps = r["sessions_per_s"]
        md.append("| %s | %.0f | %s | %.0f | %s | %.1f | %d |" % (
            what, sps, "%.0f%%" % (100 * sps / base) if base and sps
            else "-", r["cpu_us_per_session"] or 0,
            "-" if name == "evpop3d" else
            "%.0f" % (r["pg_cpu_us_per_session"] or 0),
            r["p99_session_ms"], r["failed"]))
    md.append("\nThe same 1,000 bench users ({PLAIN} passwords, Maildir) "
              "from the passwd-file and from a PostgreSQL on a unix socket "
              "(Dovecot's default password_query; 4 connections); medians "
              "of the rounds. With the cache every login after the first "
              "pass is answered without a query. The runs' \"other load\" "
              "includes PostgreSQL's CPU.\n")
    return md
