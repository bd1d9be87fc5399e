"""
A reconnect right after a session ends never gets [IN-USE].

A session that ends without QUIT gives its maildrop up on the event loop
the moment it is freed (an in-process table of held locks, sesslock.h);
the lock file's record is cleared later by a worker job. Before that, with
several worker threads, the next login's job could run beside the release
job, read a record that still named this process and answer
-ERR [IN-USE]: 0.1-0.3 % of immediate reconnects, more under load.

Here clients drop and reconnect thousands of times with `threads = 4`,
pipelining USER and PASS straight after connecting, ending sessions every
way a session ends (FIN, RST, QUIT, a drop in AUTHORIZATION after a
login, a drop during a pipelined LIST), on Maildir and mbox users at once.
Every login must succeed.

EVTEST_RECONNECT_CYCLES sets the cycles per client (default 1500; four
clients).
"""

import os
import socket
import struct
import threading
import time

import evtest

CYCLES = int(os.environ.get("EVTEST_RECONNECT_CYCLES", "1500"))
ENDINGS = ("fin", "rst", "quit", "list-rst", "fin")


class Reconnect(evtest.ServerTestCase):
    POOL = 3
    CONFIG = {"auth": {"threads": "4", "max_failures": "100"}}

    @classmethod
    def setup_users(cls, srv):
        for i, mb in enumerate(srv.pool):
            for j in range(3):
                mb.add(b"Subject: m%d\n\nbody %d of %d\n" % (j, j, i))
        spool = os.path.join(srv.dir, "spool")
        os.makedirs(spool)
        path = os.path.join(spool, "mboxuser")
        with open(path, "wb") as f:
            for j in range(3):
                f.write(b"From a@example.com Mon Jan  1 10:0%d:00 2024\n"
                        b"Subject: m%d\n\nbody\n\n" % (j, j))
        cls.mbox_user = srv.add_user("mboxuser@example.com", "mbox-Pw-1",
                                     extra="userdb_mail=mbox:" + path)

    def cycle(self, port, user, password, ending):
        """One session: log in (pipelined), end it the given way. Returns
        the PASS reply."""
        s = socket.create_connection(("127.0.0.1", port),
                                     timeout=evtest.TIMEOUT)
        try:
            s.sendall(("USER %s\r\nPASS %s\r\n" % (user, password)).encode())
            f = s.makefile("rb")
            greeting, r_user, r_pass = (f.readline() for _ in range(3))
            if not (greeting.startswith(b"+OK") and
                    r_user.startswith(b"+OK")):
                raise AssertionError("%r %r" % (greeting, r_user))
            if ending == "quit" and r_pass.startswith(b"+OK"):
                s.sendall(b"QUIT\r\n")
                r = f.readline()
                if not r.startswith(b"+OK"):
                    raise AssertionError("QUIT -> %r" % r)
                if f.read() != b"":
                    raise AssertionError("data after QUIT")
            elif ending == "list-rst":
                s.sendall(b"LIST\r\nUIDL\r\n")
            f.close()
            if ending in ("rst", "list-rst"):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
            return r_pass.decode("latin-1").rstrip("\r\n")
        finally:
            s.close()

    def test_drop_and_reconnect(self):
        port = self.srv.port
        users = [(mb.user, mb.password) for mb in self.srv.pool]
        users.append((self.mbox_user.user, self.mbox_user.password))
        results = {}
        errors = []

        def run(user, password):
            inuse, other, done = 0, [], 0
            try:
                for i in range(CYCLES):
                    r = self.cycle(port, user, password,
                                   ENDINGS[i % len(ENDINGS)])
                    done += 1
                    if "[IN-USE]" in r:
                        inuse += 1
                    elif not r.startswith("+OK"):
                        other.append(r)
            except Exception as e:		# reported below
                errors.append("%s: %r" % (user, e))
            results[user] = (done, inuse, other[:3])

        t0 = time.monotonic()
        threads = [threading.Thread(target=run, args=u) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        self.assertEqual(errors, [])
        total = sum(d for d, _, _ in results.values())
        inuse = sum(n for _, n, _ in results.values())
        print("\n%d drop-and-reconnect cycles in %.1f s, %d [IN-USE]" %
              (total, elapsed, inuse))
        self.assertEqual(total, CYCLES * len(users))
        for user, (_, n, other) in results.items():
            self.assertEqual(other, [], user)
            self.assertEqual(n, 0, "%s: %d of %d logins got [IN-USE]" %
                             (user, n, CYCLES))
        # Nothing was deleted by all those sessions without QUIT + DELE.
        for mb in self.srv.pool:
            self.assertEqual(len(mb.uidls()), 3)
        # Every record ends up free once the releases have run.
        for mb in self.srv.pool:
            lock = os.path.join(mb.maildir, "evpop3d.lock")
            deadline = time.monotonic() + 10
            while True:
                with open(lock, "rb") as f:
                    if f.read().startswith(b"free"):
                        break
                self.assertLess(time.monotonic(), deadline, lock)
                time.sleep(0.01)


if __name__ == "__main__":
    evtest.main()
