# -*- test-case-name: tests.e2e.test_http2_hardening -*-
"""
Hardening over HTTP/2 (the exchange is shared, so these are the HTTP/2
halves of tests/e2e/test_http1_hostile.py):

- a request that arrived over TLS goes upstream over TLS: an HTTP/2 client
  in an intercepted CONNECT tunnel that says C{:scheme http} must not make
  the proxy send its request, credentials included, in cleartext;
- a field an addon set with CR/LF in it fails the flow instead of reaching
  the h2 client or server.
"""

from __future__ import annotations

import json

from tests.e2e.h2peers import bounded
from tests.e2e.peers import Recorder
from tests.e2e.test_http2 import _Base, base_fields, raw_request


class AddonFieldTests(_Base):

    async def test_crlf_in_a_response_header(self):
        class Inject:
            def response(self, flow):
                flow.response.headers["X-Echo"] = "a\r\nX-Injected: 1"

        recorder = Recorder()
        proxy = await self.proxy(Inject(), recorder)
        server = await self.h2_server()
        client = await self.client(proxy, server.port)
        response = await bounded(client.request("GET", "/x").done)
        self.assertEqual(response.status, 502)
        self.assertIn(b"X-Echo", bytes(response.body))
        self.assertNotIn(b"x-injected", [name for name, _ in response.headers])
        [flow] = recorder.flows()
        self.assertIn("X-Echo", flow.error.msg)


class TunnelSchemeTests(_Base):

    async def test_h2_scheme_http_in_tls_tunnel(self):
        recorder = Recorder()
        proxy = await self.proxy(recorder)
        server = await self.h2_server()
        client = await self.client(proxy, server.port)
        fields = [
            (name, b"http" if name == b":scheme" else value)
            for name, value in base_fields(client, path="/secret")
        ] + [(b"authorization", b"Bearer not-for-cleartext")]
        response = await bounded(raw_request(client, fields).done)
        self.assertEqual(response.status, 200, bytes(response.body))
        headers = [tuple(h) for h in json.loads(bytes(response.body))["headers"]]
        # The TLS-only server got it, over TLS, as https.
        self.assertIn((":scheme", "https"), headers)
        self.assertIn(("authorization", "Bearer not-for-cleartext"), headers)
        [flow] = recorder.flows()
        self.assertEqual(flow.request.scheme, "https")
