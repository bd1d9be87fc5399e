"""
The Prometheus endpoint ([metrics] listen): a real scrape over HTTP with
urllib after real sessions (logins ok and failed, RETR, a refusal), the
values checked exactly, the output validated by Debian's promtool (lint
included); OpenMetrics on request; and hostile HTTP: other methods,
other paths, huge headers, a client that sends nothing or stops halfway.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import evtest

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")

# net/metrics.h METRICS_TIMEOUT: an idle HTTP connection is closed then.
HTTP_TIMEOUT = 10


def parse(text):
    """{(name, labels): value} of a text exposition; labels a sorted
    tuple of (key, value)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        assert m, "malformed sample line %r" % line
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"',
                                         m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class MetricsBase(evtest.ServerTestCase):
    # No per-address exemption for loopback, so that the per-address limit
    # refuses our fourth connection; no penalty: failure answers at once.
    CONFIG = {"metrics": {"listen": "127.0.0.1:0"},
              "auth": {"limits_exempt": '""',
                       "max_connections_per_ip": "3",
                       "max_unauth_per_ip": "0",
                       "penalty_max": "0"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.mport = cls.srv.metrics_port()
        cls.url = "http://127.0.0.1:%d/metrics" % cls.mport

    def scrape(self, accept=None):
        req = urllib.request.Request(self.url)
        if accept:
            req.add_header("Accept", accept)
        with urllib.request.urlopen(req, timeout=evtest.TIMEOUT) as r:
            return r.status, r.headers.get("Content-Type"), \
                r.read().decode("utf-8")

    def samples(self):
        status, ctype, body = self.scrape()
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        return parse(body)

    def wait_value(self, name, want, timeout=10, **labels):
        """Scrape until name{labels} == want (a gauge that settles)."""
        deadline = time.monotonic() + timeout * evtest.SCALE
        while True:
            got = val(self.samples(), name, **labels)
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def raw_session(self, lines):
        """Pipeline lines on a new connection and read to EOF: every
        octet the server sent."""
        s = socket.create_connection(("127.0.0.1", self.srv.port),
                                     timeout=evtest.TIMEOUT)
        try:
            s.sendall("".join(l + "\r\n" for l in lines).encode())
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    return data
                data += d
        finally:
            s.close()


class Scrape(MetricsBase):

    def test_counts_after_sessions(self):
        mb = self.fresh()
        mb.add(b"Subject: one\n\nhello\n")
        before = self.samples()
        start = len(self.srv.log())

        # A login, a RETR and a RETR that fails, QUIT: pipelined.
        ok = self.raw_session(["USER " + mb.user, "PASS " + mb.password,
                               "RETR 1", "RETR 7", "QUIT"])
        self.assertIn(b"+OK 23 octets\r\n", ok)
        # Two failed logins: a wrong password, an unknown user.
        bad1 = self.raw_session(["USER " + mb.user, "PASS wrong", "QUIT"])
        bad2 = self.raw_session(["USER nobody@example.com", "PASS x",
                                 "QUIT"])
        self.assertEqual(bad1.count(b"-ERR [AUTH]"), 1, bad1)
        self.assertEqual(bad2.count(b"-ERR [AUTH]"), 1, bad2)
        # Three idle connections, then the fourth over the per-address
        # limit is refused; the three then leave without QUIT.
        idle = [self.connect() for _ in range(3)]
        greet = sum(len(c.greeting) + 2 for c in idle)
        refused = self.connect(greet=False)
        self.assertIn("Too many connections from your address",
                      refused.readline().decode())
        refused.expect_closed()
        for c in idle:
            c.close()
        self.assertTrue(self.srv.wait_count(r"event=disconnect ", 6,
                                            start=start))
        self.assertEqual(self.wait_value("evpop3d_connections", 0), 0)
        self.assertEqual(self.wait_value("evpop3d_worker_jobs", 0), 0)

        after = self.samples()

        def delta(name, **labels):
            return val(after, name, **labels) - val(before, name, **labels)

        self.assertEqual(delta("evpop3d_connections_accepted_total"), 7)
        self.assertEqual(delta("evpop3d_connections_refused_total",
                               reason="max-connections-per-ip"), 1)
        self.assertEqual(delta("evpop3d_connections_refused_total",
                               reason="max-connections"), 0)
        self.assertEqual(delta("evpop3d_sessions_ended_total",
                               reason="quit"), 3)
        self.assertEqual(delta("evpop3d_sessions_ended_total",
                               reason="disconnected"), 3)
        self.assertEqual(delta("evpop3d_logins_total"), 1)
        self.assertEqual(delta("evpop3d_login_failures_total",
                               reason="password-mismatch"), 1)
        self.assertEqual(delta("evpop3d_login_failures_total",
                               reason="unknown-user"), 1)
        self.assertEqual(delta("evpop3d_login_duration_seconds_count"), 3)
        self.assertEqual(delta("evpop3d_login_duration_seconds_bucket",
                               le="+Inf"), 3)
        for cmd, n in (("USER", 3), ("PASS", 3), ("RETR", 2), ("QUIT", 3),
                       ("STAT", 0)):
            self.assertEqual(delta("evpop3d_commands_total", command=cmd),
                             n, cmd)
            self.assertEqual(delta("evpop3d_command_duration_seconds_count",
                                   command=cmd), n, cmd)
        self.assertEqual(delta("evpop3d_command_errors_total",
                               command="RETR"), 1)
        self.assertEqual(delta("evpop3d_message_sent_bytes_total",
                               command="RETR"), 23)
        # Every octet the sessions sent (the refusal is written before any
        # session exists, so it is not among them).
        self.assertEqual(delta("evpop3d_sent_bytes_total"),
                         len(ok) + len(bad1) + len(bad2) + greet)
        self.assertEqual(delta("evpop3d_store_errors_total", kind="temp"),
                         0)
        self.assertEqual(val(after, "evpop3d_worker_threads"), 2)

    def test_histogram_consistent(self):
        s = self.samples()
        for (name, labels), v in s.items():
            if not name.endswith("_count"):
                continue
            base = name[:-len("_count")]
            inf = dict(labels)
            inf["le"] = "+Inf"
            self.assertEqual(val(s, base + "_bucket", **inf), v, name)
        buckets = sorted((float(dict(l)["le"]), v) for (n, l), v in s.items()
                         if n == "evpop3d_login_duration_seconds_bucket")
        self.assertEqual(len(buckets), 17)
        self.assertEqual([b[1] for b in buckets],
                         sorted(b[1] for b in buckets), "cumulative")

    @unittest.skipUnless(PROMTOOL, "promtool not installed (scripts/deps)")
    def test_promtool(self):
        # Something in every family with a label, first.
        c = self.login(self.fresh())
        c.ok("STAT")
        c.quit()
        _, _, body = self.scrape()
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        for family in ("evpop3d_build_info", "evpop3d_connections",
                       "evpop3d_sessions_ended_total",
                       "evpop3d_login_failures_total",
                       "evpop3d_command_duration_seconds",
                       "evpop3d_worker_jobs", "evpop3d_sent_bytes_total",
                       "evpop3d_log_dropped_lines_total"):
            self.assertIn("# TYPE %s " % family, body)

    def test_openmetrics(self):
        status, ctype, body = self.scrape(
            accept="application/openmetrics-text;version=1.0.0,"
                   "text/plain;version=0.0.4;q=0.5")
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("application/openmetrics-text; "
                                         "version=1.0.0"), ctype)
        self.assertTrue(body.endswith("\n# EOF\n"), body[-40:])
        self.assertEqual(body.count("# EOF"), 1)
        # Counter families are named without _total, samples with it.
        self.assertIn("# TYPE evpop3d_logins counter\n", body)
        self.assertIn("\nevpop3d_logins_total ", body)

    def test_head(self):
        req = urllib.request.Request(self.url, method="HEAD")
        with urllib.request.urlopen(req, timeout=evtest.TIMEOUT) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.read(), b"")


def free_port():
    """A loopback port free now (prometheus takes no port 0)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@unittest.skipUnless(PROMETHEUS, "prometheus not installed (scripts/deps)")
class RealPrometheus(MetricsBase):
    """Debian's Prometheus server scrapes the endpoint (it asks for
    OpenMetrics first): the target is up, with no scrape error, and the
    values it stored are ours."""

    def query(self, port, q):
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (
            port, urllib.request.quote(q))
        with urllib.request.urlopen(url, timeout=evtest.TIMEOUT) as r:
            res = json.load(r)["data"]["result"]
        return [float(x["value"][1]) for x in res]

    def test_scraped(self):
        c = self.login(self.fresh())
        c.quit()
        d = os.path.join(self.srv.dir, "prometheus")
        os.makedirs(d)
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n"
                    "scrape_configs:\n  - job_name: evpop3d\n"
                    "    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % self.mport)
        port = free_port()
        logpath = os.path.join(d, "log")
        with open(logpath, "w") as log:
            p = subprocess.Popen(
                [PROMETHEUS,
                 "--config.file=" + os.path.join(d, "prometheus.yml"),
                 "--storage.tsdb.path=" + os.path.join(d, "data"),
                 "--web.listen-address=127.0.0.1:%d" % port],
                stdout=subprocess.DEVNULL, stderr=log, cwd=d)

        def stop():
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.addCleanup(stop)
        deadline = time.monotonic() + 90 * evtest.SCALE
        up = []
        while time.monotonic() < deadline and p.poll() is None:
            try:
                up = self.query(port, 'up{job="evpop3d"}')
                if up == [1.0] and self.query(
                        port, "evpop3d_logins_total") == [1.0]:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        with open(logpath) as log:
            self.assertEqual(up, [1.0], log.read()[-2000:])
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/targets" %
                                    port, timeout=evtest.TIMEOUT) as r:
            t = json.load(r)["data"]["activeTargets"]
        self.assertEqual([x["lastError"] for x in t], [""])
        self.assertEqual(self.query(port, "evpop3d_logins_total"), [1.0])
        self.assertEqual(self.query(
            port, 'evpop3d_commands_total{command="QUIT"}'), [1.0])
        self.assertEqual(self.query(
            port, 'evpop3d_command_duration_seconds_count{command="PASS"}'),
            [1.0])
        self.assertEqual(self.query(port, "evpop3d_build_info"), [1.0])


class Hostile(MetricsBase):

    def http_status(self, data):
        """Send data raw; the status code of the answer, or None when the
        server closed without one."""
        s = socket.create_connection(("127.0.0.1", self.mport),
                                     timeout=evtest.TIMEOUT)
        try:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            got = b""
            try:
                while b"\r\n" not in got:
                    d = s.recv(4096)
                    if not d:
                        break
                    got += d
            except ConnectionResetError:
                pass
        finally:
            s.close()
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ", got)
        return int(m.group(1)) if m else None

    def assert_still_serving(self):
        status, _, body = self.scrape()
        self.assertEqual(status, 200)
        self.assertIn("evpop3d_build_info", body)

    def test_methods(self):
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            req = urllib.request.Request(self.url, data=b"x=1",
                                         method=method)
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(req, timeout=evtest.TIMEOUT)
            self.assertEqual(cm.exception.code, 405, method)
            self.assertEqual(cm.exception.headers.get("Allow"), "GET, HEAD")
        self.assert_still_serving()

    def test_paths(self):
        for path in ("/", "/metricsx", "/metrics/", "/../metrics",
                     "/admin"):
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen("http://127.0.0.1:%d%s" %
                                       (self.mport, path),
                                       timeout=evtest.TIMEOUT)
            self.assertEqual(cm.exception.code, 404, path)
        # A query string is no other path.
        with urllib.request.urlopen(self.url + "?x=1",
                                    timeout=evtest.TIMEOUT) as r:
            self.assertEqual(r.status, 200)

    def test_huge_headers(self):
        big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + \
            b"a" * 65536 + b"\r\n\r\n"
        status = self.http_status(big)
        self.assertTrue(status is None or 400 <= status < 500, status)
        many = b"GET /metrics HTTP/1.1\r\n" + \
            b"".join(b"X-%d: y\r\n" % i for i in range(4000)) + b"\r\n"
        status = self.http_status(many)
        self.assertTrue(status is None or 400 <= status < 500, status)
        body = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: " + \
            b"10000000\r\n\r\n" + b"z" * 4096
        status = self.http_status(body)
        self.assertTrue(status is None or 400 <= status < 500, status)
        self.assert_still_serving()

    def test_slowloris(self):
        # One connection says nothing, one stops in the middle of its
        # headers: both are closed after the timeout, and a scrape is
        # answered meanwhile.
        silent = socket.create_connection(("127.0.0.1", self.mport))
        half = socket.create_connection(("127.0.0.1", self.mport))
        self.addCleanup(silent.close)
        self.addCleanup(half.close)
        half.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        t0 = time.monotonic()
        self.assert_still_serving()
        limit = (HTTP_TIMEOUT + 10) * evtest.SCALE
        for s in (silent, half):
            s.settimeout(limit)
            try:
                d = s.recv(4096)
                # evhttp may answer the cut request (408) before closing.
                while d:
                    self.assertTrue(d.startswith(b"HTTP/1.1 4"), d[:40])
                    d = s.recv(4096)
            except ConnectionResetError:
                pass
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, HTTP_TIMEOUT - 1)
        self.assertLess(took, limit)
        self.assert_still_serving()


class Off(evtest.ServerTestCase):
    """Off by default: no endpoint, no log line."""

    def test_off(self):
        self.assertIsNone(self.srv.wait_log(r"event=metrics-listen",
                                            timeout=0))


class BadAddress(unittest.TestCase):
    """A [metrics] listen that does not parse fails the config check."""

    def test_bad(self):
        srv = evtest.Server(config={"metrics": {"listen": "localhost:x"}})
        self.addCleanup(srv.cleanup)
        srv.write_passwd()
        path = srv.write_config()
        r = subprocess.run([evtest.BIN, "-t", "-c", path],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("[metrics] listen", r.stderr)


if __name__ == "__main__":
    evtest.main()
