# doc/bench/phases-13c/storm.py BIN [CONFIG]: run by hand after scripts/bench
# has made the fixtures (state/bench); as root, on a quiet machine.
# NOOP latency of 20 logged-in sessions while the swarm logs in (login
# scenario, c=10) and, in the second half, dd writes 3 GB to the same disk.
import socket, subprocess, sys, time, threading, os, re
BIN = sys.argv[1]
W = "/work/main"
log = open("/tmp/prof/storm.log", "w")
srv = subprocess.Popen([BIN, "-c", sys.argv[2] if len(sys.argv) > 2 else W + "/state/bench/evpop3d.ini"], stderr=log, stdout=log)
time.sleep(1.0)
def conn(u):
    s = socket.create_connection(("127.0.0.1", 11101)); f = s.makefile("rb")
    f.readline()
    for c in ("USER bench%04d" % u, "PASS pass"):
        s.sendall(c.encode() + b"\r\n"); r = f.readline()
    return s, f
sess = [conn(900 + i) for i in range(20)]
lat = {"quiet": [], "storm": []}
phase = ["quiet"]
stop = [False]
def prober():
    while not stop[0]:
        for s, f in sess:
            t = time.monotonic(); s.sendall(b"NOOP\r\n"); f.readline()
            lat[phase[0]].append((time.monotonic() - t) * 1000)
        time.sleep(0.005)
th = threading.Thread(target=prober); th.start()
env = dict(os.environ, EVPOP3D_SWARM_DIR=W + "/scripts/swarm")
sw = subprocess.Popen([W + "/build-bench/evpop3d-swarm", "-q", "-j", "-H", "127.0.0.1", "-p", "11101", "-c", "10", "-d", "24",
     "-s", "127.0.9.1,127.0.9.2", "-u", "bench%04d", "--user-count", "800", "-P", "pass", "login"],
     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
time.sleep(10)
phase[0] = "storm"
dd = subprocess.Popen(["dd", "if=/dev/zero", "of=" + W + "/state/ddtest", "bs=1M", "count=3000", "conv=fdatasync"],
                      stderr=subprocess.DEVNULL)
out = sw.communicate()[0]
dd.wait()
stop[0] = True; th.join()
os.unlink(W + "/state/ddtest")
srv.terminate(); srv.wait()
import json
d = json.loads(out)
print("login sessions/s %.0f" % d["sessions_per_s"])
for k, v in lat.items():
    v.sort()
    if v:
        print("%s: NOOPs %d p50 %.2f p99 %.2f max %.2f ms" % (k, len(v), v[len(v)//2], v[int(len(v)*0.99)], v[-1]))
txt = open("/tmp/prof/storm.log").read()
print("quick-slow events:", len(re.findall("quick-slow", txt)))
for l in re.findall(r".*quick-slow.*", txt)[:5]:
    print(l[:160])
