"""A raw POP3 client bound to a chosen loopback source address, so one
test can be several clients (127.0.0.2, 127.0.0.3, ...) for the per-address
limits and the penalty. Linux routes all of 127.0.0.0/8 to lo."""

import socket
import struct

import evtest


class SrcConn(evtest.Conn):
    def __init__(self, port, source, host="127.0.0.1",
                 timeout=evtest.TIMEOUT, greet=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False
        self.greeting = self.status() if greet else None

    def reset(self):
        """Close abruptly: an RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.close()


class SrcClients:
    """For a test case with a server in self.srv: clients from chosen
    source addresses, closed at the test's end."""

    def src(self, source, **kw):
        c = SrcConn(self.srv.port, source, **kw)
        self.addCleanup(c.close)
        return c

    def refused(self, source):
        """Connect from source; the reply to a refused connection."""
        c = SrcConn(self.srv.port, source, greet=False)
        self.addCleanup(c.close)
        r = c.status()
        c.expect_closed()
        return r
