"""
tlstest: what the TLS tests share: certificates made at test time with
the openssl CLI, a daemon class with [tls] and listen_tls, and clients.

Certificates (self-signed, each its own trust anchor), in the server's
directory:
    rsa.pem / rsa.key     RSA-2048, CN mail.test.example, SAN that name,
                          localhost and IP 127.0.0.1: the default
    ec.pem / ec.key       ECDSA P-256, CN other.test.example: [tls.NAME]
    wild.pem / wild.key   ECDSA P-256, CN *.wild.example: a wildcard
"""

import os
import re
import socket
import ssl
import subprocess

import evtest

OPENSSL = "openssl"


def make_cert(directory, name, cn, kind="rsa", sans=None):
    """A self-signed certificate and key: <name>.pem, <name>.key."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    if kind == "rsa":
        newkey = ["-newkey", "rsa:2048"]
    else:
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    sans = sans or ["DNS:" + cn]
    subprocess.run([OPENSSL, "req", "-x509", "-nodes", "-days", "2",
                    "-subj", "/CN=" + cn, "-keyout", key, "-out", cert,
                    "-addext", "subjectAltName=" + ",".join(sans),
                    "-addext", "basicConstraints=critical,CA:TRUE"] + newkey,
                   check=True, capture_output=True, timeout=60)
    return cert, key


def make_certs(directory):
    make_cert(directory, "rsa", "mail.test.example", "rsa",
              ["DNS:mail.test.example", "DNS:localhost", "IP:127.0.0.1"])
    make_cert(directory, "ec", "other.test.example", "ec")
    make_cert(directory, "wild", "*.wild.example", "ec")


TLS_CONFIG = {
    "server": {"listen_tls": "127.0.0.1:0"},
    "tls": {"cert": "rsa.pem", "key": "rsa.key"},
    "tls.other.test.example": {"cert": "ec.pem", "key": "ec.key"},
    "tls.*.wild.example": {"cert": "wild.pem", "key": "wild.key"},
    "log": {"debug": "yes"},
}


def merge(*configs):
    out = {}
    for c in configs:
        for sect, kv in c.items():
            out.setdefault(sect, {}).update(kv)
    return out


def tls_port(srv):
    """The port of the first listen_tls listener, from the log."""
    m = srv.wait_log(r"\bevent=listen addr=\S+:(\d+) tls=implicit", 5)
    if not m:
        raise evtest.ServerError("no listen_tls listener in the log")
    return int(m.group(1))


def client_context(srv, name="rsa.pem"):
    ctx = ssl.create_default_context(cafile=os.path.join(srv.dir, name))
    return ctx


def peer_cn(sslsock):
    """The CN of the certificate the server sent."""
    der = sslsock.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    p = subprocess.run([OPENSSL, "x509", "-noout", "-subject"],
                       input=pem.encode(), capture_output=True, timeout=30,
                       check=True)
    m = re.search(r"CN\s*=\s*(\S+)", p.stdout.decode())
    return m.group(1) if m else None


class TLSConn(evtest.Conn):
    """evtest.Conn whose socket can be put under TLS (STLS or implicit)."""

    def __init__(self, port, greet=True, implicit=False, ctx=None,
                 server_hostname="mail.test.example", **kw):
        super().__init__(port, greet=False, **kw)
        if implicit:
            self.starttls(ctx, server_hostname)
        if greet:
            self.greeting = self.status()

    def _fill(self, n=65536):
        # A close without close_notify (output cut short) is an EOF here.
        try:
            super()._fill(n)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            self.eof = True
            raise evtest.Closed("connection closed by server")

    def starttls(self, ctx, server_hostname="mail.test.example"):
        if self.buf:
            raise AssertionError("plaintext octets before TLS: %r" %
                                 bytes(self.buf[:80]))
        self.sock = ctx.wrap_socket(self.sock,
                                    server_hostname=server_hostname)
        return self.sock


class TLSTestCase(evtest.ServerTestCase):
    """A daemon with [tls], SNI sections and a listen_tls listener."""

    CONFIG = TLS_CONFIG

    @classmethod
    def setup_users(cls, srv):
        make_certs(srv.dir)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tls_port = tls_port(cls.srv)

    def ctx(self, name="rsa.pem"):
        return client_context(self.srv, name)

    def connect_tls(self, **kw):
        c = TLSConn(self.tls_port, implicit=True,
                    ctx=kw.pop("ctx", None) or self.ctx(), **kw)
        self.addCleanup(c.close)
        return c

    def connect_plain(self, **kw):
        c = TLSConn(self.srv.port, **kw)
        self.addCleanup(c.close)
        return c

    def stls(self, c):
        c.ok("STLS")
        c.starttls(self.ctx())
        return c

    def session_lines(self, port_of_client):
        """Log lines of the session whose peer is 127.0.0.1:port."""
        rx = re.compile(r"\bsess=(\S+) .*rip=127\.0\.0\.1:%d\b" %
                        port_of_client)
        ids = set()
        for l in self.srv.log():
            m = rx.search(l)
            if m:
                ids.add(m.group(1))
        return [l for l in self.srv.log()
                if any("sess=%s " % i in l for i in ids)]
