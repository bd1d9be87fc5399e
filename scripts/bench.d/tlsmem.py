#!/usr/bin/env python3
"""
tlsmem: the daemon's memory per idle logged-in session, plain, implicit
TLS and STLS (README "### TLS", issue 11).

For each mode and run: a fresh daemon (EVPOP3D_BIN, a Release build
please), N users with empty Maildirs, a warm-up of 20 sessions opened and
closed, then N sessions opened one after the other, each logged in and
left idle; the daemon's VmRSS before and after gives KiB per session.
Prints one line per run and the median per mode.

    EVPOP3D_BIN=build-rel/evpop3d scripts/bench.d/tlsmem.py -n 2000 -r 3

Only the python3 standard library and the test harness (test/integration)
are used; the client holds N sockets, so ulimit -n must allow them.
"""

import argparse
import os
import socket
import ssl
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "test", "integration"))

import evtest	# noqa: E402
import tlstest	# noqa: E402


def readline(sock):
    buf = b""
    while not buf.endswith(b"\r\n"):
        b = sock.recv(1)
        if not b:
            raise evtest.Closed("closed")
        buf += b
    return buf.decode()


def cmd(sock, line):
    sock.sendall(line.encode() + b"\r\n")
    r = readline(sock)
    if not r.startswith("+OK"):
        raise evtest.ServerError("%s: %s" % (line.split()[0], r.strip()))
    return r


def session(mode, srv, port, tls_port, ctx, mb):
    if mode == "implicit":
        raw = socket.create_connection(("127.0.0.1", tls_port))
        sock = ctx.wrap_socket(raw, server_hostname="mail.test.example")
    else:
        sock = socket.create_connection(("127.0.0.1", port))
    readline(sock)
    if mode == "stls":
        cmd(sock, "STLS")
        sock = ctx.wrap_socket(sock, server_hostname="mail.test.example")
    cmd(sock, "USER " + mb.user)
    cmd(sock, "PASS " + mb.password)
    return sock


def run(mode, n, warm=20):
    srv = evtest.Server(config=tlstest.merge(tlstest.TLS_CONFIG, {
        "log": {"debug": "no"},
        "server": {"max_connections": str(n + 100)},
    }), pool=n)
    tlstest.make_certs(srv.dir)
    srv.start()
    try:
        tport = tlstest.tls_port(srv)
        ctx = tlstest.client_context(srv)
        for i in range(warm):
            session(mode, srv, srv.port, tport, ctx, srv.pool[i]).close()
        time.sleep(0.5)
        rss0 = srv.rss_kb()
        socks = [session(mode, srv, srv.port, tport, ctx, mb)
                 for mb in srv.pool[:n]]
        time.sleep(1.0)
        rss1 = srv.rss_kb()
        for s in socks:
            s.close()
        return (rss1 - rss0) / n
    finally:
        srv.terminate()
        srv.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=2000, help="sessions")
    ap.add_argument("-r", "--runs", type=int, default=3)
    ap.add_argument("-m", "--modes", default="plain,implicit,stls")
    a = ap.parse_args()
    for mode in a.modes.split(","):
        per = []
        for _ in range(a.runs):
            per.append(run(mode, a.n))
            print("%-8s n=%d %.1f KiB/session" % (mode, a.n, per[-1]),
                  flush=True)
        print("%-8s median %.1f KiB/session" % (mode,
              statistics.median(per)), flush=True)


if __name__ == "__main__":
    main()
