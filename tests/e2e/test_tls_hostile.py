# -*- test-case-name: tests.e2e.test_tls_hostile -*-
"""
End-to-end tests of TLS input the proxy must refuse cleanly, and of what it
says when a client refuses the proxy: a ClientHello whose server name
cannot be one (a NUL byte, a space), and a client that
does not trust the proxy's certificate.  Each gets one log line and a
closed connection: no traceback, no socket left open.
"""

from __future__ import annotations

import ssl
import socket

from twisted.trial import unittest

from addons.tlsconfig import TlsConfig
from interceptor.testing import LogRecorder, start_proxy
from tests.e2e.peers import RawClient
from tests.e2e.tlspeers import HttpsServer, TestCA, in_thread, tunnel_tls
from tests.test_tls import client_hello


class HostileTlsTestCase(unittest.TestCase):
    timeout = 20

    def setUp(self) -> None:
        self.ca = TestCA.shared()
        self.confdir = self.mktemp()
        self.log = LogRecorder()

    async def proxy(self, **options):
        options.setdefault("confdir", self.confdir)
        options.setdefault("ssl_verify_upstream_trusted_ca", self.ca.cert_path(self))
        options.setdefault("read_timeout", 3.0)
        return await start_proxy(self, TlsConfig(), self.log, **options)

    async def tunnel(self, proxy, server) -> RawClient:
        """
        A raw client with a CONNECT tunnel to C{server} open.
        """
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n"
                    % (server.port, server.port))
        await client.wait_for(lambda d: b"\r\n\r\n" in d, 5)
        self.assertTrue(bytes(client.received).startswith(b"HTTP/1.1 200"))
        client.received.clear()
        return client


class BadServerNameTests(HostileTlsTestCase):
    """
    A ClientHello whose SNI is no host name is refused at once.
    """

    async def assert_refused(self, hello: bytes) -> None:
        proxy = await self.proxy()
        server = await HttpsServer.start(self, self.ca)
        client = await self.tunnel(proxy, server)
        client.send(hello)
        await client.wait_closed(2)
        self.assertTrue(client.closed, "the proxy left the connection open")
        [line] = [m for m in self.log.messages() if "invalid server name" in m]
        self.assertIn("closing", line)
        self.assertEqual(server.requests, [])

    async def test_nul_byte(self):
        """
        A NUL byte in the SNI (pyOpenSSL refused to copy it upstream: an
        unhandled TypeError, and the client's socket stayed in CLOSE-WAIT).
        """
        name = b"aaaa.example"
        hello = client_hello(name.decode())
        await self.assert_refused(hello.replace(name, b"a\x00aa.example"))

    async def test_space(self):
        """
        A space in the SNI (no host name has one).
        """
        name = b"aaaa.example"
        hello = client_hello(name.decode())
        await self.assert_refused(hello.replace(name, b"a aa.example"))


class SchemeInTunnelTests(HostileTlsTestCase):
    """
    A request that came through a TLS tunnel goes on over TLS: an HTTP/1
    absolute-form C{http://} URL inside it is sent to the tunnel's server
    over TLS, never in cleartext with its credentials.
    """

    async def test_absolute_http_url_in_tls_tunnel(self):
        import os

        proxy = await self.proxy()
        server = await HttpsServer.start(self, self.ca)
        request = (b"GET http://localhost:%d/hello HTTP/1.1\r\nHost: localhost:%d\r\n"
                   b"Authorization: Bearer not-for-cleartext\r\nConnection: close\r\n\r\n"
                   % (server.port, server.port))
        result = await tunnel_tls(proxy.port_number, "localhost", server.port,
                                  cafile=os.path.join(self.confdir, "interceptor-ca-cert.pem"),
                                  server_hostname="localhost", request=request)
        self.assertIsNone(result.error)
        self.assertTrue(result.response.startswith(b"HTTP/1.1 200"), result.response[:300])
        # (The server speaks only TLS: a 200 is an answer over TLS.)
        [seen] = server.requests
        self.assertEqual(seen.getHeader(b"authorization"), b"Bearer not-for-cleartext")


class UntrustedProxyTests(HostileTlsTestCase):
    """
    A client that rejects the proxy's certificate: the most common first
    mistake, said once per host.
    """

    async def test_unknown_ca_logged_once_per_host(self):
        proxy = await self.proxy()
        server = await HttpsServer.start(self, self.ca)

        def handshake() -> str:
            # A client trusting only the system store (not the proxy's CA).
            context = ssl.create_default_context(cafile=self.ca.cert_path(self))
            with socket.create_connection(("127.0.0.1", proxy.port_number), timeout=5) as raw:
                raw.sendall(b"CONNECT localhost:%d HTTP/1.1\r\n\r\n" % server.port)
                answer = b""
                while b"\r\n\r\n" not in answer:
                    answer += raw.recv(1024)
                try:
                    with context.wrap_socket(raw, server_hostname="localhost"):
                        return "trusted"
                except ssl.SSLCertVerificationError as e:
                    return e.verify_message

        for _ in range(2):
            self.assertIn("unable to get local issuer certificate", await in_thread(handshake))
        lines = [m for m in self.log.messages("warn") if "does not trust the proxy's certificate" in m]
        self.assertEqual(len(lines), 1, self.log.messages())
        self.assertIn("localhost", lines[0])
        self.assertIn("unknown ca", lines[0])
