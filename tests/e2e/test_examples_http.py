# -*- test-case-name: tests.e2e.test_examples_http -*-
"""
End-to-end tests of the HTTP example addons in C{examples/}, loaded the way
users load them: as scripts through the C{scripts} option.
"""

from __future__ import annotations

import os

from twisted.trial import unittest

from addons.script import ScriptLoader
from interceptor.testing import start_proxy
from tests.e2e.peers import RawServer, curl, http_response

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples")


class AddHeaderExampleTests(unittest.TestCase):
    """
    examples/add_header.py adds a request header and a response header.
    """

    timeout = 15

    async def test_add_header_script(self):
        """Loaded through the scripts option, add_header.py marks the request and the response."""
        path = os.path.abspath(os.path.join(EXAMPLES, "add_header.py"))
        proxy = await start_proxy(self, ScriptLoader(), scripts=[path], read_timeout=2.0)
        server = await RawServer.start(
            self, lambda c, r: c.write(http_response(200, b"ok", [(b"Content-Type", b"text/plain")]))
        )
        result = await curl(self, "-x", proxy.url, server.url("/"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (200, b"ok"))
        [request] = server.requests
        self.assertEqual(request.header(b"x-interceptor"), b"request")
        self.assertEqual(result.heads[-1].header(b"x-interceptor"), b"response")
