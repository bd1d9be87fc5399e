"""
proxytest: PROXY protocol headers (v1 text, v2 binary) for the tests, and
a TLS client that sends its ClientHello in the same segment as the header
(a memory BIO: the header and the first TLS record in one send).
"""

import socket
import ssl
import struct

SIG2 = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, sport, dst="127.0.0.1", dport=110):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport,
                                          dport)).encode()


def v2(src=None, sport=0, dst="127.0.0.1", dport=110, tlvs=b"",
       local=False):
    """A v2 header: PROXY over TCP for src, or LOCAL (a health check)."""
    if local:
        return SIG2 + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    if ":" in src:
        addrs = socket.inet_pton(socket.AF_INET6, src) + \
            socket.inet_pton(socket.AF_INET6, dst)
        fam = 0x21
    else:
        addrs = socket.inet_aton(src) + socket.inet_aton(dst)
        fam = 0x11
    body = addrs + struct.pack("!HH", sport, dport) + tlvs
    return SIG2 + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


class BioTLS:
    """A TLS client on sock over memory BIOs: the header and the
    ClientHello leave in one sendall()."""

    def __init__(self, sock, ctx, header,
                 server_hostname="mail.test.example"):
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out,
                                server_hostname=server_hostname)
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(header + self.out.read())
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                d = sock.recv(65536)
                if not d:
                    raise ConnectionError("closed during the handshake")
                self.inc.write(d)
        self._flush()
        self.buf = b""

    def _flush(self):
        d = self.out.read()
        if d:
            self.sock.sendall(d)

    def send(self, data):
        self.obj.write(data)
        self._flush()

    def readline(self):
        while b"\r\n" not in self.buf:
            try:
                self.buf += self.obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.inc.write(d)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode("latin-1")

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.readline()
