# -*- test-case-name: tests.e2e.test_examples_tls -*-
"""
End-to-end test of examples/https_rewrite.py, loaded as users load it:
as a script through the C{scripts} option, with curl trusting only the
proxy's CA against a real HTTPS server.
"""

from __future__ import annotations

import os

from twisted.trial import unittest

from addons.script import ScriptLoader
from addons.tlsconfig import TlsConfig
from interceptor.testing import start_proxy
from tests.e2e.peers import curl
from tests.e2e.tlspeers import HttpsServer, TestCA

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples")


class HttpsRewriteExampleTests(unittest.TestCase):
    """
    examples/https_rewrite.py replaces a word in HTTPS response bodies.
    """

    timeout = 15

    async def start(self) -> tuple:
        """
        A proxy running the example as a script, trusting the test CA
        upstream, and an HTTPS server with a certificate from that CA; with
        the path of the proxy's CA certificate, for curl to trust.
        """
        path = os.path.abspath(os.path.join(EXAMPLES, "https_rewrite.py"))
        ca = TestCA.shared()
        confdir = self.mktemp()
        proxy = await start_proxy(
            self, TlsConfig(), ScriptLoader(), scripts=[path], confdir=confdir,
            ssl_verify_upstream_trusted_ca=ca.cert_path(self), read_timeout=3.0,
        )
        server = await HttpsServer.start(self, ca)
        proxy_ca = os.path.join(confdir, "interceptor-ca-cert.pem")
        return proxy, server, proxy_ca

    async def test_https_body_rewritten(self):
        """Through the script, an HTTPS "hello world" arrives as "hello interceptor", with the marker header."""
        proxy, server, proxy_ca = await self.start()
        result = await curl(self, "-x", proxy.url, "--cacert", proxy_ca, server.url("/hello"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (200, b"hello interceptor"))
        self.assertEqual(result.heads[-1].header(b"x-rewritten"), b"world -> interceptor")
        self.assertEqual(result.heads[-1].header(b"content-length"), b"17")

    async def test_json_untouched(self):
        """A non-text HTTPS response (JSON) is left as it is."""
        proxy, server, proxy_ca = await self.start()
        result = await curl(self, "-x", proxy.url, "--cacert", proxy_ca,
                            "-H", "X-Word: world", server.url("/echo"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        self.assertIn(b'"x-word": ["world"]', result.body)
        self.assertIsNone(result.heads[-1].header(b"x-rewritten"))
