"""Clients in a loop: threads that connect, send one command, read its
answer and close, over and over, for the tests that restart the daemon
or kill a worker under load and check that nobody is refused
(test_workers, test_lifecycle).

    loop = ClientLoop(port, "NOOP")
    with loop:                      # start the threads; stop and join
        assert loop.wait_ok(20, 10 * evtest.SCALE)
    assert loop.failed == []

Any answer counts as answered (a draining daemon's bye too: the point is
that the connection was taken); each failure (a refused connect, a
reset, a timeout) is recorded in failed as its repr.
"""

import threading
import time

import evtest


class ClientLoop:
    def __init__(self, port, command="NOOP", threads=4,
                 timeout=30 * evtest.SCALE):
        self.port = port
        self.command = command
        self.n_threads = threads
        self.timeout = timeout
        self.ok = 0
        self.failed = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads = []

    def _client(self):
        while not self._stop.is_set():
            c = None
            try:
                c = evtest.Conn(self.port, timeout=self.timeout)
                c.cmd(self.command)
                with self._cond:
                    self.ok += 1
                    self._cond.notify_all()
            except Exception as e:	# noqa: any failure counts
                with self._cond:
                    self.failed.append(repr(e))
            finally:
                if c is not None:
                    c.close()

    def start(self):
        self._stop.clear()
        self._threads = [threading.Thread(target=self._client)
                         for _ in range(self.n_threads)]
        for t in self._threads:
            t.start()

    def stop(self):
        """Stop the clients and wait for each (its last one finishes)."""
        self._stop.set()
        for t in self._threads:
            t.join(60 * evtest.SCALE)
        self._threads = []

    def wait_ok(self, n, timeout):
        """Wait until n more clients than now were answered; False at
        timeout (seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            want = self.ok + n
            while self.ok < want:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
