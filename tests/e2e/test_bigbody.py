# -*- test-case-name: tests.e2e.test_bigbody -*-
"""
Big buffered bodies through the proxy (the hardening issue, item 7): read
into one buffer of their announced size and written a slice at a time
(L{interceptor.layers.body_buffer}, L{interceptor.transport.paced}), each
way, byte for byte, in order with a request pipelined behind; and the
256m default of C{stream_large_bodies}.  bench/bigbody.py measures the
memory (1 GiB: about the body's size, where it was three times).
"""

from __future__ import annotations

import json
import os

from twisted.trial import unittest

from addons.tlsconfig import TlsConfig

from interceptor.core.options import proxy_options
from interceptor.testing import start_proxy
from tests.e2e.peers import RawClient, RawServer, Recorder, http_response, parse_responses
from tests.e2e.tlspeers import HttpsServer, TestCA, tunnel_tls

SIZE = 6 * (1 << 20) + 7


def big(n: int = SIZE) -> bytes:
    return bytes(range(256)) * (n // 256) + b"z" * (n % 256)


class BigBodyTests(unittest.TestCase):
    timeout = 20

    async def start(self, handler):
        self.recorder = Recorder()
        self.proxy = await start_proxy(self, self.recorder, stream_large_bodies="")
        self.server = await RawServer.start(self, handler)

    async def test_download_then_pipelined_request(self):
        body = big()

        def handler(conn, request):
            if request.target.endswith(b"/big"):
                conn.write(http_response(200, body))
            else:
                conn.write(http_response(200, b"second"))

        await self.start(handler)
        client = await RawClient.connect(self, self.proxy.port_number)
        url = self.server.url("").encode()
        client.send(b"GET %s/big HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET %s/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (url, url))
        raw = await client.wait_closed(10)
        responses = parse_responses(raw)
        self.assertEqual([r.status for r in responses], [200, 200])
        self.assertTrue(responses[0].body == body, "the big body changed on the way")
        self.assertEqual(responses[1].body, b"second")
        [first, _] = self.recorder.flows()
        self.assertEqual(len(first.response.raw_content), SIZE)

    async def test_upload(self):
        body = big()
        await self.start(lambda conn, request: conn.write(http_response(200, b"got")))
        client = await RawClient.connect(self, self.proxy.port_number)
        client.send(b"POST %s/up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                    b"Connection: close\r\n\r\n" % (self.server.url("").encode(), SIZE) + body)
        raw = await client.wait_closed(10)
        self.assertEqual([r.status for r in parse_responses(raw)], [200])
        [request] = self.server.requests
        self.assertTrue(request.body == body, "the big upload changed on the way")

    async def test_both_ways_over_intercepted_tls(self):
        """
        A 6 MiB upload echoed back, through a CONNECT tunnel whose TLS the
        proxy intercepts: both bodies are buffered and written a slice at a
        time to a TLS transport (no pair gate on the client's side there).
        """
        ca = TestCA.shared()
        confdir = self.mktemp()
        proxy = await start_proxy(self, TlsConfig(), confdir=confdir, stream_large_bodies="",
                                  ssl_verify_upstream_trusted_ca=ca.cert_path(self))
        server = await HttpsServer.start(self, ca)
        body = b"a" * SIZE
        request = (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n"
                   b"Connection: close\r\n\r\n" % SIZE) + body
        result = await tunnel_tls(proxy.port_number, "localhost", server.port,
                                  cafile=os.path.join(confdir, "interceptor-ca-cert.pem"),
                                  server_hostname="localhost", request=request)
        self.assertIsNone(result.error)
        [response] = parse_responses(result.response)
        self.assertEqual(response.status, 200)
        self.assertTrue(json.loads(response.body)["body"] == body.decode(), "the body changed")

    def test_streamed_above_256m_by_default(self):
        self.assertEqual(proxy_options().stream_large_bodies, "256m")
