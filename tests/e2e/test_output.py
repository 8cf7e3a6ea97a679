# -*- test-case-name: tests.e2e.test_output -*-
"""
End-to-end tests of the flow output (issue #3, point 6): the dumper addon
prints one line per flow, more with a higher flow_detail.
"""

from __future__ import annotations

import re
from io import StringIO

from twisted.trial import unittest

from addons.dumper import Dumper, human_size
from interceptor.testing import start_proxy
from tests.e2e.peers import RawServer, curl, http_response, unused_port
from tests.e2e.test_decode import MemoryGrowth, bomb, bomb_server


def handler(conn, request):
    """
    Answer with a recognisable body and header.
    """
    conn.write(
        http_response(200, b"the response body " * 100, [(b"Content-Type", b"text/plain"),
                                                          (b"X-Server-Header", b"present")])
    )


class DumperTests(unittest.TestCase):
    """
    The dumper prints flows at the chosen detail.
    """

    timeout = 15

    async def _dump(self, detail: int, *curl_args: str) -> tuple:
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out), flow_detail=detail, read_timeout=2.0)
        server = await RawServer.start(self, handler)
        url = server.url("/dumped?x=1")
        result = await curl(self, "-x", proxy.url, "-H", "X-Client-Header: here", *curl_args, url)
        self.assertEqual(result.status, 200)
        # The dumper writes in the response event, before curl has the
        # response; stopping the proxy rules out anything later.
        await proxy.stop()
        return out.getvalue(), url

    async def test_one_line_per_flow(self):
        """flow_detail=1 prints one line: client, method, URL, status, size and duration."""
        text, url = await self._dump(1)
        lines = text.splitlines()
        self.assertEqual(len(lines), 1, text)
        pattern = (
            r"^127\.0\.0\.1:\d+: GET " + re.escape(url) + r" << 200 OK 1\.8k \d+ms$"
        )
        self.assertRegex(lines[0], pattern)

    async def test_one_line_per_flow_on_keep_alive(self):
        """Two requests on one connection print two lines."""
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out), read_timeout=2.0)
        server = await RawServer.start(self, handler)
        result = await curl(self, "-x", proxy.url, server.url("/a"), "-o", "/dev/null", server.url("/b"))
        self.assertEqual(result.code, 0, result.stderr)
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2, out.getvalue())
        self.assertIn("GET " + server.url("/a"), lines[0])
        self.assertIn("GET " + server.url("/b"), lines[1])

    async def test_detail_zero_silent(self):
        """flow_detail=0 prints nothing."""
        text, _ = await self._dump(0)
        self.assertEqual(text, "")

    async def test_detail_two_headers(self):
        """flow_detail=2 adds the request and response headers, but no bodies."""
        text, _ = await self._dump(2)
        self.assertIn("X-Client-Header: here", text)
        self.assertIn("X-Server-Header: present", text)
        self.assertNotIn("the response body", text)

    async def test_detail_three_bodies(self):
        """flow_detail=3 adds the bodies too."""
        text, _ = await self._dump(3, "--data", "posted=data")
        self.assertIn("X-Server-Header: present", text)
        self.assertIn("the response body", text)
        self.assertIn("posted=data", text)

    async def test_error_line(self):
        """A failed flow prints one line with its error."""
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out), read_timeout=2.0, connect_timeout=2.0)
        port = await unused_port()
        result = await curl(self, "-x", proxy.url, f"http://127.0.0.1:{port}/gone")
        self.assertEqual(result.status, 502)
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 1, out.getvalue())
        self.assertRegex(
            lines[0], r"^127\.0\.0\.1:\d+: GET http://127\.0\.0\.1:%d/gone << error: .+" % port
        )

    async def test_bomb_at_detail_three(self):
        """
        -vv with no addon: the dumper decodes the body for its preview; a
        body decoding past max_decoded_size prints a note, in bounded memory.
        """
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out), flow_detail=3,
                                  max_decoded_size="1m", read_timeout=2.0)
        body = bomb("gzip")
        server = await RawServer.start(self, bomb_server(body, "gzip"))
        with MemoryGrowth() as growth:
            result = await curl(self, "-x", proxy.url, server.url("/bomb"))
        self.assertEqual(result.body, body)
        await proxy.stop()
        text = out.getvalue()
        size = human_size(len(body))
        self.assertIn(f"<< 200 OK {size}", text)
        self.assertIn(f"(body too large to decode: gzip content of {size} decodes to more than "
                      "1.0m; max_decoded_size)", text)
        growth.check(self)
