"""
tlsbench: the TLS phases of scripts/bench (issue 11).

    tls-handshake     connect + handshake + greeting + QUIT (the
                      `handshake` scenario), sessions/s = handshakes/s
    tls-full          the `full` scenario over TLS
    tls-noop-latency  NOOP p99 of 200 idle logged-in TLS sessions while
                      a burst of 500 TLS handshakes/s runs
    tls-idle          server memory per idle logged-in TLS session

Each runs over implicit TLS (the swarm's --tls, against the servers' pop3s
ports) and STLS (--stls, on their plain ports), with an ECDSA P-256 and an
RSA-2048 certificate that the bench makes with the openssl CLI under
state/bench/tls/ (self-signed; the swarm does not verify, as --cacert is
not given). Both servers are restarted with each certificate. evpop3d
gets `[server] listen_tls` and `[tls] cert`/`key`; Dovecot `ssl = yes`,
`ssl_cert`/`ssl_key` and its pop3s listener. A build of evpop3d without
TLS (it starts but its TLS port does not handshake) is reported and
only Dovecot is measured.

The work is driven from bench.py (Bench.tls()); bm is the bench module.
"""

import os
import ssl
import socket
import subprocess
import time

from figures import med

TLS_PORTS = {"evpop3d": 11111, "dovecot": 11112}
KEYS = ["ecdsa", "rsa"]
MODES = ["tls", "stls"]
PHASES = ["tls-handshake", "tls-full", "tls-noop-latency", "tls-idle"]
HANDSHAKE_C = 50		# sessions in flight for handshake and full runs
BURST_RATE = 500		# handshakes/s during tls-noop-latency
IDLE_TLS_RATE = 1000		# TLS logins/s while tls-idle ramps up
GOAL_RATIO = 10.0
GOAL_NOOP_P99_MS = 10.0
GOAL_IDLE_KIB = 16.0


def ensure_certs(state, log):
    """state/bench/tls/{ecdsa,rsa}.{crt,key}, made once."""
    d = os.path.join(state, "tls")
    os.makedirs(d, exist_ok=True)
    out = {}
    for key, newkey in (("ecdsa", ["-newkey", "ec", "-pkeyopt",
                                   "ec_paramgen_curve:P-256"]),
                        ("rsa", ["-newkey", "rsa:2048"])):
        crt = os.path.join(d, key + ".crt")
        kp = os.path.join(d, key + ".key")
        if not (os.path.exists(crt) and os.path.exists(kp)):
            log("tls: making the %s certificate" % key)
            subprocess.run(["openssl", "req", "-x509", "-nodes", "-days",
                            "3650", "-subj", "/CN=bench.example",
                            "-addext", "subjectAltName=DNS:bench.example",
                            "-keyout", kp, "-out", crt] + newkey,
                           check=True, capture_output=True, timeout=120)
            os.chmod(kp, 0o600)
        out[key] = (crt, kp)
    return out


def handshakes(port, timeout=1.0):
    """True if a TLS handshake on 127.0.0.1:port completes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            with ctx.wrap_socket(s) as t:
                t.settimeout(timeout)
                return t.recv(64).startswith(b"+OK")
    except (OSError, ssl.SSLError):
        return False


def tls_classes(bm):
    """Evpop3d and Dovecot with TLS, built on bench.py's classes."""

    class TlsEvpop3d(bm.Evpop3d):
        def __init__(self, passwd, cert):
            super().__init__(passwd)
            self.tls_port = TLS_PORTS["evpop3d"]
            self.cert = cert

        def settings(self):
            t = super().settings()
            t = t.replace("[server]\n", "[server]\nlisten_tls = "
                          "127.0.0.1:%d\n" % self.tls_port, 1)
            return t + "[tls]\ncert = %s\nkey = %s\n" % self.cert

        def start(self):
            super().start()
            bm.wait_for(lambda: handshakes(self.tls_port), 10,
                        "evpop3d TLS on port %d" % self.tls_port,
                        self.proc, self.log)

    class TlsDovecot(bm.Dovecot):
        def __init__(self, passwd, uid, gid, cert):
            super().__init__(passwd, uid, gid)
            self.tls_port = TLS_PORTS["dovecot"]
            self.cert = cert

        def settings(self):
            t = super().settings()
            t = t.replace("ssl = no\n", "ssl = yes\nssl_cert = <%s\n"
                          "ssl_key = <%s\n" % self.cert, 1)
            t = t.replace("  inet_listener pop3s {\n    port = 0\n",
                          "  inet_listener pop3s {\n    address = "
                          "127.0.0.1\n    port = %d\n    ssl = yes\n"
                          % self.tls_port, 1)
            return t

        def start(self):
            super().start()
            bm.wait_for(lambda: handshakes(self.tls_port), 20,
                        "dovecot TLS on port %d" % self.tls_port,
                        self.proc, self.log)

    return TlsEvpop3d, TlsDovecot


def tls_args(mode, resume=False):
    return ["--" + mode] + (["--tls-resume"] if resume else [])


class TlsBench:
    """The TLS phases over one Bench (bench.py): it swaps the plain
    servers for TLS ones per certificate and puts them back at the end."""

    def __init__(self, b, bm, passwd, uid, gid):
        self.b, self.bm = b, bm
        self.passwd, self.uid, self.gid = passwd, uid, gid
        self.certs = ensure_certs(bm.STATE, bm.say)
        self.data = b.data.setdefault("tls", {
            "handshake": {}, "full": {}, "noop": {}, "idle": {},
            "unsupported": []})
        self.cls = tls_classes(bm)

    def port(self, srv, mode):
        return srv.tls_port if mode == "tls" else srv.port

    def servers(self, key):
        """Stop the plain evpop3d and Dovecot; start TLS ones with key's
        certificate. Returns the ones that came up with TLS."""
        bm, b = self.bm, self.b
        TlsEvpop3d, TlsDovecot = self.cls
        out = []
        for name in ("evpop3d", "dovecot"):
            old = b.servers.get(name)
            if old is None:
                continue
            old.stop()
            srv = TlsEvpop3d(self.passwd, self.certs[key]) \
                if name == "evpop3d" else \
                TlsDovecot(self.passwd, self.uid, self.gid, self.certs[key])
            try:
                bm.say("tls: starting %s with the %s certificate (TLS port "
                       "%d)" % (name, key, srv.tls_port))
                srv.start()
            except bm.BenchError as e:
                msg = "%s: no TLS (%s)" % (name, str(e).split("\n")[0])
                bm.warn(msg)
                if msg not in self.data["unsupported"]:
                    self.data["unsupported"].append(msg)
                    b.problems.append("tls: " + msg)
                if srv.proc is not None:
                    srv.stop()
                srv = old
                srv.start()
                b.servers[name] = srv
                continue
            b.servers[name] = srv
            out.append(srv)
        return out

    def restore(self):
        """Plain servers again, for the phases that follow."""
        bm, b = self.bm, self.b
        for name in ("evpop3d", "dovecot"):
            srv = b.servers.get(name)
            if srv is None or not hasattr(srv, "tls_port"):
                continue
            srv.stop()
            plain = bm.Evpop3d(self.passwd) if name == "evpop3d" else \
                bm.Dovecot(self.passwd, self.uid, self.gid)
            plain.start()
            b.servers[name] = plain

    def run(self, phases):
        try:
            for key in KEYS:
                srvs = self.servers(key)
                if not srvs:
                    continue
                if "tls-handshake" in phases:
                    self.handshake(key, srvs)
                if "tls-full" in phases:
                    self.full(key, srvs)
                if "tls-noop-latency" in phases:
                    self.noop(key, srvs)
                if "tls-idle" in phases and key == "ecdsa":
                    self.idle(key, srvs)
        finally:
            self.restore()

    def handshake(self, key, srvs):
        b, a = self.b, self.b.args
        for rnd in range(1, a.rounds + 1):
            for mode in MODES:
                for resume in (False, True):
                    for srv in srvs:
                        tag = "%s/%s/%s/%s" % (key, mode, "resume" if resume
                                               else "full", srv.name)
                        name = "tls-hs-%s-r%d" % (tag.replace("/", "-"), rnd)
                        r = b.run(name, srv, "handshake", HANDSHAKE_C,
                                  a.duration, port=self.port(srv, mode),
                                  extra=tls_args(mode, resume),
                                  label="tls handshake " + tag)
                        self.data["handshake"].setdefault(tag, []).append(r)

    def full(self, key, srvs):
        b, a = self.b, self.b.args
        for rnd in range(1, a.rounds + 1):
            for mode in MODES:
                for srv in srvs:
                    tag = "%s/%s/%s" % (key, mode, srv.name)
                    name = "tls-full-%s-r%d" % (tag.replace("/", "-"), rnd)
                    r = b.run(name, srv, "full", HANDSHAKE_C, a.duration,
                              port=self.port(srv, mode),
                              extra=tls_args(mode), label="tls full " + tag)
                    self.data["full"].setdefault(tag, []).append(r)

    def noop(self, key, srvs):
        """200 idle TLS sessions (NOOP every 100 ms) around a burst of
        BURST_RATE full TLS handshakes/s (implicit TLS, no resumption)."""
        b, bm, a = self.b, self.bm, self.b.args
        settle, tail = 2.0, 2.0
        load_s = a.resp_duration
        for srv in srvs:
            tag = "%s/%s" % (key, srv.name)
            name = "tls-noop-%s" % tag.replace("/", "-")
            b.wait_quiet()
            b.nrun += 1
            busy0, t0 = bm.cpu_busy_us(), time.time()
            idle_d = int(load_s + settle + tail + 120)
            idle = b.start_swarm(name + "-idle", b.swarm_argv(
                srv, "idle", 200, idle_d, users="bench%04d", user_count=200,
                var=["interval=100"], port=srv.tls_port,
                extra=tls_args("tls")))
            time.sleep(settle)
            load = b.run(name + "-load", srv, "handshake", 100, load_s,
                         rate=BURST_RATE, sample=False, port=srv.tls_port,
                         extra=tls_args("tls"),
                         label="%s load: %d TLS handshakes/s" % (
                             srv.name, BURST_RATE))
            time.sleep(tail)
            if idle.poll() is None:
                os.kill(idle.pid, bm.signal.SIGINT)
            r = b.finish_swarm(name + "-idle", idle, idle_d + 90, srv)
            b.foreign(name, r, busy0, t0, other_us=bm.g(
                load, "client", "cpu_us", default=0))
            b.progress("%s idle TLS NOOPs (%s)" % (srv.name, key), r)
            n = r["latency_us"]["commands"].get("NOOP", {})
            bm.say("      NOOP p50 %.2f ms  p99 %.2f ms  max %.2f ms (%d "
                   "NOOPs); load %.0f handshakes/s" % (
                       n.get("p50", 0) / 1e3, n.get("p99", 0) / 1e3,
                       n.get("max", 0) / 1e3, n.get("count", 0),
                       load["sessions_per_s"]))
            self.data["noop"][tag] = {"idle": r, "load": load}

    def idle(self, key, srvs):
        """Memory per idle logged-in TLS session: evpop3d at
        --idle-sessions (fresh process), Dovecot at 500."""
        b, a = self.b, self.b.args
        for srv in srvs:
            c = a.idle_sessions if srv.name == "evpop3d" else 500
            dur = a.idle_duration + c // IDLE_TLS_RATE

            def fresh(srv=srv):
                if srv.name == "evpop3d":
                    self.bm.say("tls-idle: restarting evpop3d for a clean "
                                "RSS baseline")
                    b.restart(srv)
                b.wait_quiet()
            r = b.run("tls-idle-%s-%s-c%d" % (key, srv.name, c), srv,
                      "idle", c, dur, users="idle%05d", user_count=c,
                      rate=IDLE_TLS_RATE, var=["interval=10000"],
                      before=fresh, port=srv.tls_port,
                      extra=tls_args("tls"))
            self.data["idle"]["%s/%s" % (key, srv.name)] = r


# ------------------------------------------------------------ report

def summarize(data):
    if not data:
        return None
    out = {"handshake": {}, "full": {}, "noop": {}, "idle": {},
           "unsupported": data.get("unsupported", [])}
    for kind in ("handshake", "full"):
        for tag, runs in data[kind].items():
            out[kind][tag] = {
                "sessions_per_s": med([r["sessions_per_s"] for r in runs]),
                "runs": [round(r["sessions_per_s"], 1) for r in runs],
                "resumed": med([(r.get("tls") or {}).get("resumed", 0)
                                for r in runs]),
                "handshake_p99_ms": med([r["latency_us"].get(
                    "handshake", {}).get("p99", 0) / 1e3 for r in runs]),
                "cpu_us_per_session": med([
                    (r.get("server") or {}).get("cpu_us_per_session")
                    for r in runs]),
                "violations": sum(r["violations"]["total"] for r in runs),
                "failed": sum(r["sessions"]["failed"] for r in runs),
                "protocol": "%s %s" % ((runs[0].get("tls") or {}).get(
                    "protocol", ""), (runs[0].get("tls") or {}).get(
                        "cipher", "")),
            }
    for tag, pr in data["noop"].items():
        n = pr["idle"]["latency_us"]["commands"].get("NOOP", {})
        out["noop"][tag] = {
            "p50_ms": n.get("p50", 0) / 1e3, "p99_ms": n.get("p99", 0) / 1e3,
            "max_ms": n.get("max", 0) / 1e3, "noops": n.get("count", 0),
            "load_per_s": pr["load"]["sessions_per_s"],
            "violations": pr["idle"]["violations"]["total"] +
            pr["load"]["violations"]["total"]}
    for tag, r in data["idle"].items():
        s = r.get("server") or {}
        out["idle"][tag] = {
            "held": r.get("peak_open", 0),
            "mem_sessions": s.get("mem_sessions", 0),
            "rss_per_session_kib": s.get("mem_per_session", 0) / 1024.0,
            "pss_per_session_kib": s.get("pss_per_session", 0) / 1024.0,
            "failed": r["sessions"]["failed"],
            "violations": r["violations"]["total"]}
    return out


def ratio(a, b):
    return a / b if a and b else None


def markdown(s):
    """The report's TLS section (a list of lines), or []."""
    if not s:
        return []
    md = ["## TLS\n"]
    for u in s["unsupported"]:
        md.append("- **%s**" % u)
    if s["unsupported"]:
        md.append("")
    for kind, title in (("handshake", "connect + TLS handshake + greeting "
                         "+ QUIT (`handshake`), c=%d" % HANDSHAKE_C),
                        ("full", "`full` over TLS, c=%d" % HANDSHAKE_C)):
        rows = s[kind]
        if not rows:
            continue
        md.append("### %s\n" % title)
        md.append("| cert | mode | resumption | evpop3d sess/s | Dovecot "
                  "sess/s | ratio | evpop3d handshake p99 ms | server "
                  "us cpu/sess e / D | cpu ratio |")
        md.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
        combos = sorted({tuple(t.split("/")[:-1]) for t in rows})
        for c in combos:
            ev = rows.get("/".join(c + ("evpop3d",)), {})
            dv = rows.get("/".join(c + ("dovecot",)), {})
            e, d = ev.get("sessions_per_s"), dv.get("sessions_per_s")
            rt = ratio(e, d)
            key, mode = c[0], c[1]
            res = c[2] if len(c) > 2 else "full"
            ce, cd = ev.get("cpu_us_per_session"), dv.get(
                "cpu_us_per_session")
            md.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                key, "implicit" if mode == "tls" else "STLS",
                "offered" if res == "resume" else "no",
                "%.0f" % e if e else "-", "%.0f" % d if d else "-",
                "%.1fx" % rt if rt else "-",
                "%.2f" % ev["handshake_p99_ms"] if ev.get(
                    "handshake_p99_ms") else "-",
                "%s / %s" % ("%.0f" % ce if ce else "-",
                             "%.0f" % cd if cd else "-"),
                "%.1fx" % (cd / ce) if ce and cd else "-"))
        md.append("")
    if s["noop"]:
        md.append("### NOOP round trip of 200 idle TLS sessions during %d "
                  "handshakes/s\n" % BURST_RATE)
        md.append("| cert | server | NOOP p50 ms | p99 ms | max ms | load "
                  "achieved/s |")
        md.append("|---|---|---:|---:|---:|---:|")
        for tag, n in sorted(s["noop"].items()):
            key, srv = tag.split("/")
            md.append("| %s | %s | %.2f | %.2f | %.2f | %.0f |" % (
                key, srv, n["p50_ms"], n["p99_ms"], n["max_ms"],
                n["load_per_s"]))
        md.append("")
    if s["idle"]:
        md.append("### Idle logged-in TLS sessions\n")
        md.append("| cert | server | held | RSS/session KiB | PSS/session "
                  "KiB |")
        md.append("|---|---|---:|---:|---:|")
        for tag, i in sorted(s["idle"].items()):
            key, srv = tag.split("/")
            md.append("| %s | %s | %d | %.2f | %.2f |" % (
                key, srv, i["held"], i["rss_per_session_kib"],
                i["pss_per_session_kib"]))
        md.append("")
    return md


def targets(s):
    """(target, measured, met) rows for the TLS goals of issue 11."""
    if not s:
        return []
    res = []
    for kind in ("handshake", "full"):
        for tag, ev in sorted(s[kind].items()):
            if not tag.endswith("/evpop3d"):
                continue
            dv = s[kind].get(tag[:-len("evpop3d")] + "dovecot", {})
            rt = ratio(ev.get("sessions_per_s"), dv.get("sessions_per_s"))
            if rt is None:
                continue
            res.append(("tls %s %s: >= %gx Dovecot's sessions/s" % (
                kind, tag[:-len("/evpop3d")], GOAL_RATIO),
                "%.1fx (%.0f vs %.0f)" % (rt, ev["sessions_per_s"],
                                          dv["sessions_per_s"]),
                rt >= GOAL_RATIO))
    for tag, n in sorted(s["noop"].items()):
        if tag.endswith("/evpop3d"):
            res.append(("tls NOOP p99 of 200 idle TLS sessions during %d "
                        "handshakes/s (%s) <= %g ms" % (
                            BURST_RATE, tag.split("/")[0],
                            GOAL_NOOP_P99_MS),
                        "%.2f ms" % n["p99_ms"],
                        n["p99_ms"] <= GOAL_NOOP_P99_MS))
    for tag, i in sorted(s["idle"].items()):
        if tag.endswith("/evpop3d"):
            res.append(("tls idle: <= %g KiB RSS per session (%d held)" % (
                GOAL_IDLE_KIB, i["held"]),
                "%.2f KiB" % i["rss_per_session_kib"],
                i["rss_per_session_kib"] <= GOAL_IDLE_KIB and
                i["held"] >= 19000))
    return res
