"""
report: medians, tables, the markdown report, results.json and the gnuplot
charts of one scripts/bench run (see bench.py).
"""

import datetime
import json
import os
import platform
import subprocess

import fixtures
from figures import g, med
import pgbench
import tlsbench

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = ["evpop3d", "dovecot", "nullpop", "evpop3d-w2"]
TITLE = {"evpop3d": "evpop3d", "dovecot": "Dovecot",
         "nullpop": "null responder", "evpop3d-w2": "evpop3d, workers = 2"}
KIB = 1024.0
MIB = 1024.0 * 1024.0
GIB = 1024.0 * MIB
RESP_PHASES = ["baseline", "blf", "huge", "mbox"]
RESP_NAMES = {"baseline": "no other load",
              "blf": "200 {BLF-CRYPT} logins/s",
              "huge": "logins to a 100,000-message Maildir",
              "mbox": "logins to a 2 GiB mbox"}
# the target while a big mailbox is opened
RESP_TARGET_MS = 50.0



# Issue 13's goals against the null responder in the same run, and the
# server's CPU per `full` session.
NULL_GOAL = {"full": 0.75, "login": 0.75, "pipeline": 0.60}
FULL_CPU_GOAL_US = 200

def ms(r, *keys):
    """A swarm report's latency_us value in ms, or None."""
    v = g(r, "latency_us", *keys)
    return None if v is None else v / 1e3


def median_run(runs, key="sessions_per_s"):
    """The run whose key is the median (the lower middle for even counts)."""
    if not runs:
        return None
    s = sorted(runs, key=lambda r: r.get(key, 0))
    return s[(len(s) - 1) // 2]


def fmt(v, spec="%.0f", none="-"):
    return none if v is None else spec % v


def div(v, d):
    return None if v is None else v / d


def ratio(a, b):
    if a is None or not b:
        return None
    return a / b


def cmd_out(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ------------------------------------------------------------ summaries

def summarize(b):
    d = b.data
    out = {"throughput": [], "idle": {}, "retr_big": {}, "churn": {},
           "responsiveness": {}}
    keys = sorted({tuple(k.split("/")) for k in d["throughput"]},
                  key=lambda k: (["full", "login", "pipeline"].index(k[0])
                                 if k[0] in ("full", "login", "pipeline")
                                 else 9, int(k[1]), SERVERS.index(k[2])))
    for scen, c, srv in keys:
        runs = d["throughput"]["%s/%s/%s" % (scen, c, srv)]
        out["throughput"].append({
            "scenario": scen, "concurrency": int(c), "server": srv,
            "rounds": len(runs),
            "sessions_per_s": med([r["sessions_per_s"] for r in runs]),
            "cpu_us_per_session": med([g(r, "server", "cpu_us_per_session")
                                       for r in runs]),
            "p99_session_ms": med([g(r, "latency_us", "session", "p99",
                                     default=0) / 1e3 for r in runs]),
            "p50_session_ms": med([g(r, "latency_us", "session", "p50",
                                     default=0) / 1e3 for r in runs]),
            "violations": sum(r["violations"]["total"] for r in runs),
            "failed": sum(r["sessions"]["failed"] for r in runs),
            "all_sessions_per_s": [r["sessions_per_s"] for r in runs],
        })

    for name, r in d["idle"].items():
        s = r.get("server") or {}
        out["idle"][name] = {
            "concurrency": r["concurrency"], "peak_open": r.get("peak_open"),
            "completed": r["sessions"]["completed"],
            "failed": r["sessions"]["failed"],
            "violations": r["violations"]["total"],
            "mem_per_session": s.get("mem_per_session"),
            "pss_per_session": s.get("pss_per_session"),
            "rss_start": s.get("rss_start"), "rss_peak": s.get("rss_peak"),
            "pss_start": s.get("pss_start"), "pss_peak": s.get("pss_peak"),
            "nprocs_peak": s.get("nprocs_peak"),
            "noop_p99_ms": g(r, "latency_us", "commands", "NOOP", "p99",
                             default=0) / 1e3,
        }

    for srv, runs in d["retr-big"].items():
        deltas = [g(r, "server", "rss_peak", default=0) -
                  g(r, "server", "rss_start", default=0) for r in runs]
        m = median_run(runs, "mb_per_s")
        out["retr_big"][srv] = {
            "mb_per_s": med([r["mb_per_s"] for r in runs]),
            "all_mb_per_s": [r["mb_per_s"] for r in runs],
            "rss_start": g(m, "server", "rss_start"),
            "rss_peak": g(m, "server", "rss_peak"),
            "rss_growth_max": max(deltas) if deltas else None,
            "cpu_us_per_session": med([g(r, "server", "cpu_us_per_session")
                                       for r in runs]),
            "violations": sum(r["violations"]["total"] for r in runs),
        }

    for srv, runs in d["churn"].items():
        out["churn"][srv] = {
            "sessions_per_s": med([r["sessions_per_s"] for r in runs]),
            "sessions": [r["sessions"]["completed"] for r in runs],
            "violations": sum(r["violations"]["total"] for r in runs),
            "failed": sum(r["sessions"]["failed"] for r in runs),
            "cpu_us_per_session": med([g(r, "server", "cpu_us_per_session")
                                       for r in runs]),
        }

    for srv, phases in d["responsiveness"].items():
        o = {}
        for phase, pr in phases.items():
            noop = g(pr["idle"], "latency_us", "commands", "NOOP",
                     default={})
            load = pr.get("load")
            o[phase] = {
                "noop_count": noop.get("count"),
                "noop_p50_ms": noop.get("p50", 0) / 1e3,
                "noop_p99_ms": noop.get("p99", 0) / 1e3,
                "noop_max_ms": noop.get("max", 0) / 1e3,
                "violations": pr["idle"]["violations"]["total"],
                "load_sessions_per_s": load and load["sessions_per_s"],
                "load_sessions": load and load["sessions"]["completed"],
                "load_failed": load and load["sessions"]["failed"],
                "load_pass_p50_ms": ms(load, "commands", "PASS", "p50"),
                "load_pass_p99_ms": ms(load, "commands", "PASS", "p99"),
                # one whole login (connect to QUIT's reply)
                "load_session_p50_ms": ms(load, "session", "p50"),
                "load_session_p99_ms": ms(load, "session", "p99"),
                "load_violations": load and load["violations"]["total"],
            }
        out["responsiveness"][srv] = o

    # the first login into each big mailbox (the unmeasured warm-up: for
    # Dovecot the one that builds a missing index): a swarm run for the
    # Maildir, bench.py's mbox_first_login() for the mbox
    first = {}
    for srv, runs in d.get("resp-warmup", {}).items():
        r = runs.get("huge")
        if r and r["sessions"]["completed"] == 1:
            first.setdefault(srv, {})["huge"] = {
                "login_ms": g(r, "latency_us", "session", "max",
                              default=0) / 1e3}
        if runs.get("mbox"):
            first.setdefault(srv, {})["mbox"] = runs["mbox"]
    out["big_mailbox_first_login"] = first
    mbox = getattr(b, "mbox", None)
    if mbox:
        out["fixtures"] = {"mbox": {
            "size": int(mbox["size"]), "messages": int(mbox["messages"]),
            "with_attachments": int(mbox["big"]),
            "generate_s": float(mbox["generate_s"])}}
    return out


def tp_lookup(summary):
    return {(t["scenario"], t["concurrency"], t["server"]): t
            for t in summary["throughput"]}


def targets(summary, a):
    """The issue's targets: list of (target, measured, met or None)."""
    res = []
    tp = tp_lookup(summary)
    for scen in ("full", "login", "pipeline"):
        for c in (10, 50, 500):
            e = g(tp.get((scen, c, "evpop3d")), "sessions_per_s")
            dv = g(tp.get((scen, c, "dovecot")), "sessions_per_s")
            n = g(tp.get((scen, c, "nullpop")), "sessions_per_s")
            if e is None:
                continue
            rd, rn = ratio(e, dv), ratio(e, n)
            if rd is not None:
                res.append(("`%s` c=%d: >= 10x Dovecot" % (scen, c),
                            "%.1fx (%.0f vs %.0f/s)" % (rd, e, dv),
                            rd >= 10))
            if rn is not None:
                goal = NULL_GOAL[scen]
                res.append(("`%s` c=%d: >= %.0f%% of null responder"
                            % (scen, c, 100 * goal),
                            "%.0f%% (%.0f vs %.0f/s)" % (100 * rn, e, n),
                            rn >= goal))
            cpu = g(tp.get((scen, c, "evpop3d")), "cpu_us_per_session")
            if scen == "full" and cpu is not None:
                res.append(("`full` c=%d: server CPU <= %d us a session"
                            % (c, FULL_CPU_GOAL_US), "%.0f us" % cpu,
                            cpu <= FULL_CPU_GOAL_US))
    idle = summary["idle"].get("evpop3d")
    if idle:
        held = idle["peak_open"] or 0
        ok = held >= 19000 and not idle["failed"] and not idle["violations"]
        res.append(("idle: one evpop3d holds 19,000 logged-in sessions",
                    "%d held (%d failed)%s" % (
                        held, idle["failed"],
                        "" if a.idle_sessions >= 19000 else
                        " - run asked for %d only" % a.idle_sessions),
                    ok))
        m = idle["mem_per_session"]
        res.append(("idle: <= 4 KiB RSS per session",
                    fmt(div(m, KIB), "%.2f KiB"),
                    m is not None and m <= 4096))
    rb = summary["retr_big"]
    if "evpop3d" in rb:
        e = rb["evpop3d"]
        dv = g(rb.get("dovecot"), "mb_per_s")
        r = ratio(e["mb_per_s"], dv)
        if r is not None:
            res.append(("retr-big: >= 2x Dovecot's MB/s",
                        "%.2fx (%.0f vs %.0f MB/s)" % (r, e["mb_per_s"], dv),
                        r >= 2))
        grow = e["rss_growth_max"]
        res.append(("retr-big: RSS flat during the 20 MiB transfer "
                    "(growth < 2 MiB)",
                    fmt(div(grow, MIB), "%.2f MiB growth"),
                    grow is not None and grow < 2 * MIB))
    ch = summary["churn"].get("evpop3d")
    if ch:
        res.append(("churn: no violations", "%d violations, %d failed" % (
            ch["violations"], ch["failed"]),
            ch["violations"] == 0 and ch["failed"] == 0))
    rs = summary["responsiveness"].get("evpop3d")
    if rs:
        for phase, what, target in (
                ("blf", "200 {BLF-CRYPT} logins/s", False),
                ("huge", "a 100,000-message Maildir is opened", True),
                ("mbox", "a 2 GiB mbox is opened", True)):
            if phase not in rs:
                continue
            p99 = rs[phase]["noop_p99_ms"]
            res.append(("NOOP p99 of idle sessions while %s%s" % (
                what, " < %.0f ms" % RESP_TARGET_MS if target else ""),
                "%.2f ms (baseline %.2f ms)" % (
                    p99, g(rs, "baseline", "noop_p99_ms", default=0)),
                p99 < RESP_TARGET_MS if target else None))
    return res


# ------------------------------------------------------------ tables

def tables(summary, a):
    """Markdown tables (also printed on stdout)."""
    out = []
    tp = tp_lookup(summary)
    if tp:
        out.append("### Throughput: sessions/s (median of %d x %d s)\n"
                   % (a.rounds, a.duration))
        out.append("| scenario | c | evpop3d | Dovecot | null | "
                   "evpop3d/Dovecot | evpop3d/null | CPU µs/session "
                   "e / D / n | p99 session ms e / D / n |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for scen in ("full", "login", "pipeline"):
            for c in (10, 50, 500):
                row = [tp.get((scen, c, s)) for s in SERVERS]
                if not any(row):
                    continue
                sps = [g(r, "sessions_per_s") for r in row]
                cpu = [g(r, "cpu_us_per_session") for r in row]
                p99 = [g(r, "p99_session_ms") for r in row]
                rd = ratio(sps[0], sps[1])
                rn = ratio(sps[0], sps[2])
                out.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
                    scen, c, fmt(sps[0]), fmt(sps[1]), fmt(sps[2]),
                    fmt(rd, "%.1fx"), fmt(rn and 100 * rn, "%.0f%%"),
                    " / ".join(fmt(v) for v in cpu[:3]),
                    " / ".join(fmt(v, "%.1f") for v in p99[:3])))
        out.append("")
        if any(k[2] == "evpop3d-w2" for k in tp):
            out.append("### Throughput with `[server] workers = 2` (same "
                       "rounds)\n")
            out.append("| scenario | c | workers = 1 | workers = 2 | 2 / 1 "
                       "| CPU µs/session 1 / 2 (all processes) | "
                       "p99 session ms 1 / 2 |")
            out.append("|---|---:|---:|---:|---:|---:|---:|")
            for scen in ("full", "login", "pipeline"):
                for c in (10, 50, 500):
                    r1, r2 = tp.get((scen, c, "evpop3d")), tp.get(
                        (scen, c, "evpop3d-w2"))
                    if not r2:
                        continue
                    out.append("| %s | %d | %s | %s | %s | %s / %s | "
                               "%s / %s |" % (
                        scen, c, fmt(g(r1, "sessions_per_s")),
                        fmt(g(r2, "sessions_per_s")),
                        fmt(ratio(g(r2, "sessions_per_s"),
                                  g(r1, "sessions_per_s")), "%.2fx"),
                        fmt(g(r1, "cpu_us_per_session")),
                        fmt(g(r2, "cpu_us_per_session")),
                        fmt(g(r1, "p99_session_ms"), "%.1f"),
                        fmt(g(r2, "p99_session_ms"), "%.1f")))
            out.append("\nThe swarm runs on the same two cores, so a second "
                       "worker has no idle core to use here: the row shows "
                       "what the supervisor and a second process cost, not "
                       "how it scales (README, Scaling out).\n")
    idle = summary["idle"]
    if idle:
        out.append("### Idle sessions (logged in, NOOP every 10 s)\n")
        out.append("| server | sessions held | failed | RSS start | RSS peak "
                   "| RSS/session | PSS/session | processes |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name in ("evpop3d", "evpop3d-500", "dovecot"):
            r = idle.get(name)
            if not r:
                continue
            out.append("| %s | %s | %d | %s | %s | %s | %s | %s |" % (
                {"evpop3d-500": "evpop3d (c=500)",
                 "dovecot": "Dovecot (c=500)"}.get(name, name),
                fmt(r["peak_open"], "%d"), r["failed"],
                fmt(div(r["rss_start"], MIB), "%.1f MiB"),
                fmt(div(r["rss_peak"], MIB), "%.1f MiB"),
                fmt(div(r["mem_per_session"], KIB), "%.2f KiB"),
                fmt(div(r["pss_per_session"], KIB), "%.1f KiB"),
                fmt(r["nprocs_peak"], "%d")))
        out.append("\nRSS/session: (RSS with every session logged in - RSS "
                   "before) / sessions, RSS summed over the server's "
                   "processes (for Dovecot that counts pages shared between "
                   "its processes once per process; PSS splits them and is "
                   "the fair figure for a process-per-session server).\n")
    rb = summary["retr_big"]
    if rb:
        out.append("### 20 MiB RETR (c=1, 5 RETRs per session; median of "
                   "%d x %d s)\n" % (a.rounds, a.duration))
        out.append("| server | MB/s | evpop3d/this | RSS start | RSS peak | "
                   "max RSS growth | CPU µs/session |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        e = g(rb.get("evpop3d"), "mb_per_s")
        for s in SERVERS:
            r = rb.get(s)
            if not r:
                continue
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                TITLE[s], fmt(r["mb_per_s"]),
                fmt(ratio(e, r["mb_per_s"]), "%.2fx"),
                fmt(div(r["rss_start"], MIB), "%.1f MiB"),
                fmt(div(r["rss_peak"], MIB), "%.1f MiB"),
                fmt(div(r["rss_growth_max"], MIB), "%.2f MiB"),
                fmt(r["cpu_us_per_session"])))
        out.append("")
    ch = summary["churn"]
    if ch:
        out.append("### Churn (login, STAT, LIST, DELE 1-3, QUIT; c=10; "
                   "median of %d)\n" % a.rounds)
        out.append("| server | sessions/s | sessions per run | violations "
                   "| failed | CPU µs/session |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for s in ("evpop3d", "dovecot"):
            r = ch.get(s)
            if r:
                out.append("| %s | %s | %s | %d | %d | %s |" % (
                    TITLE[s], fmt(r["sessions_per_s"]),
                    ", ".join(str(x) for x in r["sessions"]),
                    r["violations"], r["failed"],
                    fmt(r["cpu_us_per_session"])))
        out.append("")
    rs = summary["responsiveness"]
    if rs:
        out.append("### Responsiveness: NOOP round trip of 200 idle "
                   "sessions (one NOOP per 100 ms each)\n")
        out.append("| server | phase | NOOPs | p50 ms | p99 ms | max ms | "
                   "load sessions/s | load PASS p50 / p99 ms | "
                   "load session p50 ms |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for s in ("evpop3d", "dovecot"):
            for phase in RESP_PHASES:
                r = g(rs, s, phase)
                if not r:
                    continue
                out.append("| %s | %s | %s | %.2f | %.2f | %.2f | %s | %s "
                           "| %s |" % (
                               TITLE[s], RESP_NAMES[phase],
                               fmt(r["noop_count"], "%d"), r["noop_p50_ms"],
                               r["noop_p99_ms"], r["noop_max_ms"],
                               fmt(r["load_sessions_per_s"], "%.1f"),
                               "-" if r["load_pass_p50_ms"] is None else
                               "%.1f / %.1f" % (r["load_pass_p50_ms"],
                                                r["load_pass_p99_ms"]),
                               fmt(r["load_session_p50_ms"], "%.1f")))
        out.append("")
        first = summary.get("big_mailbox_first_login", {})
        rows = []
        for s in ("evpop3d", "dovecot"):
            for phase, what in (("huge", "100,000-message Maildir"),
                                ("mbox", "2 GiB mbox")):
                r = g(rs, s, phase)
                f = g(first, s, phase)
                if not r and not f:
                    continue
                rows.append("| %s | %s | %s | %s | %s | %s |" % (
                    TITLE[s], what, fmt(g(f, "login_ms"), "%.0f"),
                    fmt(g(r, "load_session_p50_ms"), "%.0f"),
                    fmt(g(r, "load_sessions"), "%d"),
                    "-" if g(f, "stat_count") is None else "%d %d" % (
                        f["stat_count"], f["stat_octets"])))
        if rows:
            out.append("### One login into a big mailbox (c=1)\n")
            out.append("| server | maildrop | first login ms | login p50 "
                       "ms | logins in the phase | STAT |")
            out.append("|---|---|---:|---:|---:|---:|")
            out.extend(rows)
            out.append("\nFirst login: the warm-up login of this run (for "
                       "Dovecot the one that builds its index when the "
                       "index is new; for evpop3d the one that may read the "
                       "mailbox from disk rather than the page cache): "
                       "USER, PASS, QUIT for the Maildir; for the mbox, "
                       "connect to the reply to a STAT after PASS, which "
                       "must count the fixture's messages (Dovecot answers "
                       "PASS before it opens the mailbox, at the first "
                       "command). Login p50: one whole session (USER, PASS, "
                       "QUIT) of the responsiveness phase.\n")
    return "\n".join(out)


# ------------------------------------------------------------ charts

def gnuplot_term():
    r = subprocess.run(["gnuplot", "-e", "set terminal pngcairo"],
                       capture_output=True)
    return "pngcairo" if r.returncode == 0 and not r.stderr else "png"


def charts(b, summary, outdir):
    """PNG charts; returns the list of files written."""
    if not cmd_out(["sh", "-c", "command -v gnuplot"]):
        b.problems.append("gnuplot not found: no charts")
        return []
    pdir = os.path.join(b.resdir, "plot")
    os.makedirs(pdir, exist_ok=True)
    term = gnuplot_term()
    written = []
    tp = tp_lookup(summary)

    def plot(gp, out, **var):
        var.update(datadir=pdir, outfile=os.path.join(outdir, out), term=term)
        e = "; ".join("%s='%s'" % (k, v) for k, v in var.items())
        r = subprocess.run(["gnuplot", "-e", e, os.path.join(HERE, gp)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            b.problems.append("gnuplot %s: %s" % (gp, r.stderr.strip()))
        else:
            written.append(out)

    if tp:
        scens = [s for s in ("full", "login", "pipeline")
                 if any(k[0] == s for k in tp)]
        for s in scens:
            with open(os.path.join(pdir, "tp-%s.dat" % s), "w") as f:
                f.write("# c evpop3d dovecot nullpop (sessions/s)\n")
                for c in (10, 50, 500):
                    f.write("%d %s\n" % (c, " ".join(
                        fmt(g(tp.get((s, c, srv)), "sessions_per_s"),
                            "%.1f", "NaN") for srv in SERVERS)))
        plot("throughput.gp", "throughput.png", scenarios=" ".join(scens))

    runs = {s: median_run(b.data["throughput"].get("full/50/%s" % s, []))
            for s in SERVERS}
    if any(runs.values()):
        have = []
        for s, r in runs.items():
            cdf = g(r, "cdf", "session")
            if not cdf:
                continue
            with open(os.path.join(pdir, "cdf-%s.dat" % s), "w") as f:
                f.write("# session latency ms, cumulative fraction\n")
                for up, frac in cdf:
                    f.write("%.4f %.6f\n" % (up / 1e3, frac))
            have.append(s)
        if have:
            plot("latency-cdf.gp", "latency-cdf.png", servers=" ".join(have))

    rs = summary["responsiveness"]
    if rs:
        have = [s for s in ("evpop3d", "dovecot") if s in rs]
        with open(os.path.join(pdir, "noop.dat"), "w") as f:
            f.write("# phase, NOOP p99 ms of: %s\n" % " ".join(have))
            for phase, label in (("baseline", "no load"),
                                 ("blf", "200 BLF logins/s"),
                                 ("huge", "100k-msg Maildir"),
                                 ("mbox", "2 GiB mbox")):
                if not any(g(rs, s, phase) for s in have):
                    continue
                f.write('"%s" %s\n' % (label, " ".join(
                    fmt(g(rs, s, phase, "noop_p99_ms"), "%.3f", "NaN")
                    for s in have)))
        plot("noop-p99.gp", "noop-p99.png", servers=" ".join(have))
    return written


# ------------------------------------------------------------ the report

def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kb / 1024.0 / 1024.0)
    except (OSError, ValueError, IndexError):
        pass
    debian = "?"
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        pass
    bench_bin = os.path.join(os.path.dirname(os.path.dirname(HERE)),
                             "build-bench", "evpop3d")
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory": mem,
        "kernel": platform.release(), "debian": debian,
        "evpop3d": cmd_out([bench_bin, "--version"]),
        "dovecot": cmd_out(["dovecot", "--version"]),
        "libevent": cmd_out(["pkg-config", "--modversion", "libevent_core"]),
        "git": cmd_out(["git", "-C", os.path.dirname(os.path.dirname(HERE)),
                        "describe", "--always", "--dirty"]),
    }


def read(path):
    try:
        with open(path) as f:
            return f.read().rstrip()
    except OSError:
        return "(missing)"


def mbox_fixture_text(b):
    """The report's description of the mbox fixture (a markdown list
    continuation), or "" without one."""
    m = getattr(b, "mbox", None)
    if not m:
        return ""
    return """
  `mbox0000`: one mbox file of %.2f GiB, %s messages (text of 2-64 KiB,
  %s with a base64 attachment of 256 KiB-4 MiB), From_ lines with asctime
  dates, mboxrd `>From ` quoting, the Status/X-IMAPbase/X-UID/Content-Length
  headers an IMAP server leaves in a spool (Dovecot would otherwise rewrite
  the whole file at its first open); its passwd-file entry names it for
  both servers: `userdb_mail=mbox:ROOT:INBOX=FILE:INDEX=DIR` (evpop3d serves
  INBOX=; Dovecot refuses a file as ROOT). Generated in %.1f s, reused while
  unchanged.""" % (int(m["size"]) / GIB, "{:,}".format(int(m["messages"])),
                   m["big"], float(m["generate_s"]))


def write(b, a, outdir, elapsed, STATE, SOURCES, IDLE_RATE, FOREIGN_MAX):
    os.makedirs(outdir, exist_ok=True)
    summary = summarize(b)
    summary["tls"] = tlsbench.summarize(b.data.get("tls"))
    summary["login_pgsql"] = pgbench.summarize(b.data.get("login-pgsql"))
    tgt = targets(summary, a) + tlsbench.targets(summary["tls"])
    tab = tables(summary, a)
    mach = machine()
    pngs = charts(b, summary, outdir)
    now = datetime.datetime.now(datetime.timezone.utc)

    print("\n" + tab)
    print("\n".join(pgbench.markdown(summary["login_pgsql"])))
    if tgt:
        print("Targets:")
        for t, v, ok in tgt:
            print("  %-6s %s: %s" % ({True: "MET", False: "MISSED",
                                      None: "info"}[ok], t, v))
    for p in b.problems:
        print("problem: " + p)

    res = {"date": now.isoformat(timespec="seconds"),
           "runtime_s": round(elapsed, 1), "machine": mach,
           "options": {"rounds": a.rounds, "duration": a.duration,
                       "quick": a.quick, "idle_sessions": a.idle_sessions,
                       "phases": sorted(a.phases),
                       "dovecot": not a.no_dovecot},
           "results_dir": b.resdir, "summary": summary,
           "targets": [{"target": t, "measured": v, "met": ok}
                       for t, v, ok in tgt],
           "other_load_per_run": b.foreign_by_run,
           "problems": b.problems}
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
        f.write("\n")

    md = []
    md.append("# evpop3d benchmark\n")
    md.append("Generated by `scripts/bench%s` on %s (%.0f minutes). Raw "
              "swarm reports: `state/bench/results/%s/` (not committed); "
              "medians: [results.json](results.json).\n" % (
                  "".join(" " + x for x in getattr(a, "argv", [])),
                  now.strftime("%Y-%m-%d %H:%M UTC"), elapsed / 60,
                  b.runid))
    if a.partial:
        md.append("**This is a partial or quick run (smoke test), not a "
                  "representative measurement.**\n")
    md.append("## Machine\n")
    md.append("| CPU | cores | memory | kernel | Debian | evpop3d | Dovecot "
              "| libevent |")
    md.append("|---|---:|---|---|---|---|---|---|")
    md.append("| %s | %s | %s | %s | %s | %s (%s) | %s | %s |\n" % (
        mach["cpu"], mach["cores"], mach["memory"], mach["kernel"],
        mach["debian"], mach["evpop3d"], mach["git"], mach["dovecot"],
        mach["libevent"]))
    md.append("Client (evpop3d-swarm) and servers share the same cores, "
              "over loopback TCP. Other processes' CPU during a run (the "
              "machine's busy time minus the swarm's and the server's): at "
              "most %.0f%% of one core%s.\n" % (
                  100 * b.foreign_max,
                  "" if not b.disturbed else
                  " - **%d run(s) disturbed by other load**, see Problems"
                  % len(b.disturbed)))
    if tgt:
        md.append("## Targets\n")
        md.append("| target | measured | |")
        md.append("|---|---|---|")
        for t, v, ok in tgt:
            md.append("| %s | %s | %s |" % (t, v, {True: "met",
                                                  False: "**missed**",
                                                  None: "(reported)"}[ok]))
        md.append("")
    md.append("## Results\n")
    md.append(tab)
    md.extend(pgbench.markdown(summary["login_pgsql"]))
    md.extend(tlsbench.markdown(summary["tls"]))
    for png, alt in (("throughput.png", "sessions/s vs concurrency"),
                     ("latency-cdf.png", "session latency CDF, full, c=50"),
                     ("noop-p99.png", "NOOP p99 of idle sessions")):
        if png in pngs:
            md.append("![%s](%s)\n" % (alt, png))
    pss = g(summary, "idle", "dovecot", "pss_per_session")
    if pss:
        md.append("Dovecot's idle run holds 500 sessions, not 19,000: it "
                  "runs one pop3 process per logged-in session (%.0f KiB "
                  "PSS each here, the master and all its children summed), "
                  "so 19,000 sessions would be 19,000 processes and about "
                  "%.1f GiB.\n" % (pss / KIB, pss * 19000 / MIB / 1024))
    md.append("## How it was measured\n")
    md.append("""- `scripts/bench` builds a Release tree (`build-bench/`), makes the fixtures
  under `state/bench/` and runs `evpop3d-swarm` (one process, one libevent loop)
  against evpop3d (127.0.0.1:%(e)d), Dovecot (:%(d)d) and `evpop3d-nullpop`
  (:%(n)d), in alternation (evpop3d, Dovecot, null, evpop3d, ...), %(rounds)d
  round(s) of %(dur)d s per configuration; the tables show medians. The swarm
  connects from %(src)s (loopback addresses no test uses) and samples each
  server's CPU and memory from /proc every 100 ms (`--server-pid`; Dovecot with
  `--server-children`: the master and every descendant, including reaped ones'
  CPU).
- Scenarios (`scripts/swarm/*.swarm`): `full` = USER, PASS, STAT, LIST, UIDL,
  RETR of every message (checked: sizes against LIST, UIDL format,
  terminators), QUIT; `login` = USER, PASS, QUIT; `pipeline` = USER, PASS, then
  STAT, LIST, UIDL, RETR 1-10, QUIT in one write (RFC 2449 pipelining).
  CPU µs/session is the server's CPU time (user+system) over the run divided by
  the completed sessions.
- Fixtures: 1,000 users `bench0000`-`bench0999` with 10 messages of 3.4-4.6 KB
  each (realistic headers, text, some lines starting with "."), Maildir files
  named like Dovecot's deliveries (`<time>.M<usec>P<pid>.bench,S=<size>,W=<wire
  size>:2,S`: both servers take the POP3 size from W=), one passwd-file
  (`{PLAIN}`, `{BLF-CRYPT}` cost 5 for `blf0000`-`blf0199`) read by both
  servers; `big0000` with one 20 MiB message; `huge0000` with 100,000 small
  messages; `idle00000`-`idle19999` (one user per idle session: the maildrop
  lock of RFC 1939 section 4 allows one session per maildrop); `churn0000`-
  `churn0099` with %(churn)d messages each, restored before every churn run.%(mboxfx)s
  The null responder serves 10 messages of 4096 octets (message 1 is 20 MiB
  in the retr-big run).
- idle: %(idle)d sessions log in (ramped up at %(irate)d logins/s), STAT,
  then send a NOOP every 10 s for %(idled)d s; RSS/session is (RSS when all
  sessions are logged in - RSS at start) / sessions. retr-big: user big0000, 5 RETRs of the 20 MiB message per
  session, c=1; MB/s is the octets received per second. churn: 100 users,
  DELE 1-3 and QUIT (UPDATE) per session, c=10, stopped at %(churnn)d sessions
  or %(churnd)d s. Responsiveness: 200 idle sessions send a NOOP every 100 ms
  each for the whole phase (%(respd)d s of load): no other load; a `login`
  swarm on the `{BLF-CRYPT}` users at 200 logins/s; a `login` swarm (c=1) on
  huge0000, which makes the server open and scan the 100,000-message maildrop
  at every PASS; a `login` swarm (c=1) on mbox0000, whose every session
  opens the 2 GiB mbox (evpop3d at PASS, parsing all of it; Dovecot at the
  first command after PASS, checking it against its index). The idle
  sessions start 2 s before the load and stop 2 s after its last session
  ended; after the mbox phase the mbox (inode, size, mtime) and its
  directory's names are checked unchanged (the logins only QUIT).
- Warm-up (not measured): one `full` pass over the 1,000 bench users per
  server (Dovecot builds its indexes, the page cache fills), one login of
  every blf user, of huge0000 and of mbox0000.
- Other load: for every run the bench compares the machine's busy CPU time
  (/proc/stat) with the swarm's and the server's; a run in which other
  processes used more than %(fmax).0f%% of a core is repeated once when the
  machine is quiet again, and listed under Problems if it stays disturbed.
""" % {"e": b.servers["evpop3d"].port if "evpop3d" in b.servers else 0,
       "d": 11102, "n": 11103, "rounds": a.rounds, "dur": a.duration,
       "src": SOURCES, "churn": fixtures.CHURN_MSGS, "idle": a.idle_sessions,
       "idled": a.idle_duration, "irate": IDLE_RATE,
       "churnn": fixtures.CHURN_USERS * (fixtures.CHURN_MSGS // 3 - 1),
       "churnd": a.churn_duration, "respd": a.resp_duration,
       "mboxfx": mbox_fixture_text(b),
       "fmax": 100 * FOREIGN_MAX})
    md.append("### evpop3d configuration\n")
    md.append("```ini\n%s\n```\n" % read(os.path.join(STATE, "evpop3d.ini")))
    if not a.no_dovecot:
        md.append("### Dovecot configuration\n")
        md.append("Dovecot %s from Debian (`dovecot-core`, `dovecot-pop3d`), "
                  "run standalone as `dovecot -F -c dovecot.conf`:\n"
                  % mach["dovecot"])
        md.append("```\n%s\n```\n" % read(os.path.join(STATE, "dovecot",
                                                       "dovecot.conf")))
    md.append("### Null responder\n")
    md.append("`evpop3d-nullpop -l 127.0.0.1:11103 -m 10 -s 4096` (with "
              "`-b 20971520` for retr-big): one libevent loop answering "
              "canned replies from memory, no store, no authentication.\n")
    if b.problems:
        md.append("## Problems seen in this run\n")
        for p in b.problems:
            md.append("- %s" % p.replace("\n", " "))
        md.append("")
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write("\n".join(md))
