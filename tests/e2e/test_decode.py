# -*- test-case-name: tests.e2e.test_decode -*-
"""
End-to-end tests of bounded decoding: a server on 127.0.0.1 answers with a
small compressed body that decodes to 16 MiB (a "decompression bomb");
a proxy with C{max_decoded_size=1m} must refuse to decode it for the addon
that reads C{content}, using about the cap in memory, and still relay the
body unchanged.
"""

from __future__ import annotations

import tracemalloc
import zlib
from typing import Any, Optional

import brotli
import zstandard
from twisted.trial import unittest
from zope.interface import implementer

from interceptor.core.interfaces import IResponse
from interceptor.model.encoding import DecodedSizeError
from interceptor.testing import start_proxy
from tests.e2e.peers import RawServer, curl, http_response

DECODED = 16 << 20
"""What each bomb decodes to: 16 times the proxies' 1 MiB cap."""

TRACED = 6 << 20
"""The most Python may allocate while the proxy handles a bomb (decoding it took 2x DECODED)."""

RSS = 12 << 20
"""
The most the process's peak RSS may grow meanwhile: more than L{TRACED}, as
what the allocator has freed and kept varies with the tests run before.
"""


def _zeros(compress: Any, finish: Any, size: int) -> bytes:
    zeros = bytes(1 << 20)
    return b"".join([compress(zeros) for _ in range(size >> 20)] + [finish()])


def bomb(coding: str) -> bytes:
    """
    A body decoding to L{DECODED} zero bytes: gzip members of 1 MiB each,
    or one br or zstd stream.
    """
    if coding == "gzip":
        member = zlib.compressobj(9, zlib.DEFLATED, 31)
        return _zeros(member.compress, member.flush, 1 << 20) * (DECODED >> 20)
    if coding == "br":
        # (A 64 KiB window: the decoder's ring buffer, up to 16 MiB for br in
        # HTTP, is a fixed cost that would hide what the test measures.)
        b = brotli.Compressor(quality=5, lgwin=16)
        return _zeros(b.process, b.finish, DECODED)
    z = zstandard.ZstdCompressor(level=3).compressobj()
    return _zeros(z.compress, z.flush, DECODED)


def bomb_server(body: bytes, coding: str) -> Any:
    def handler(conn: Any, request: Any) -> None:
        conn.write(http_response(200, body, [(b"Content-Encoding", coding.encode()),
                                             (b"Content-Type", b"text/plain")]))
    return handler


def _status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class MemoryGrowth:
    """
    How much this process grows within a block: its peak RSS over the RSS at
    the start (Linux: the peak is reset through /proc/self/clear_refs), and
    the peak of what Python allocates (tracemalloc: deterministic, whatever
    memory the allocator had kept).
    """

    rss: Optional[int] = None
    traced = 0

    def __enter__(self) -> "MemoryGrowth":
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # (resets VmHWM to the current RSS)
            self._start = _status_kib("VmRSS")
        except OSError:
            self._start = None
        tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        peak = _status_kib("VmHWM")
        if self._start is not None and peak is not None:
            self.rss = (peak - self._start) * 1024

    def check(self, testcase: unittest.TestCase) -> None:
        testcase.assertLess(self.traced, TRACED, "allocated by Python")
        if self.rss is not None:
            testcase.assertLess(self.rss, RSS, "peak RSS growth")


@implementer(IResponse)
class ContentReader:
    """Reads the response's content in the response hook; keeps what happened."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def response(self, flow: Any) -> None:
        try:
            self.seen.append(len(flow.response.content))
        except DecodedSizeError as e:
            self.seen.append(e)


class DecodeBombTests(unittest.TestCase):
    """
    An addon reading C{flow.response.content} of a bomb gets
    L{DecodedSizeError}; the proxy's memory stays bounded, and the client
    gets the body as the server sent it.
    """

    timeout = 30

    async def _bomb_through_proxy(self, coding: str) -> None:
        body = bomb(coding)
        reader = ContentReader()
        proxy = await start_proxy(self, reader, max_decoded_size="1m", read_timeout=5.0)
        server = await RawServer.start(self, bomb_server(body, coding))
        with MemoryGrowth() as growth:
            result = await curl(self, "-x", proxy.url, server.url("/bomb"))
        self.assertEqual(result.status, 200)
        self.assertEqual(result.body, body)
        self.assertEqual(len(reader.seen), 1)
        error = reader.seen[0]
        self.assertIsInstance(error, DecodedSizeError)
        self.assertEqual((error.encoding, error.limit), (coding, 1 << 20))
        growth.check(self)

    async def test_gzip_members(self) -> None:
        """Sixteen gzip members of 1 MiB: the second one passes the 1 MiB cap."""
        await self._bomb_through_proxy("gzip")

    async def test_br(self) -> None:
        await self._bomb_through_proxy("br")

    async def test_zstd(self) -> None:
        await self._bomb_through_proxy("zstd")

    async def test_body_size_limit_caps_decoding(self) -> None:
        """
        With body_size_limit under max_decoded_size, decoding stops at
        body_size_limit (the raw body is within it).
        """
        reader = ContentReader()
        proxy = await start_proxy(self, reader, body_size_limit="512k")
        body = zlib.compress(bytes(1 << 20))
        server = await RawServer.start(self, bomb_server(body, "deflate"))
        result = await curl(self, "-x", proxy.url, server.url("/"))
        self.assertEqual(result.body, body)
        self.assertIsInstance(reader.seen[0], DecodedSizeError)
        self.assertEqual(reader.seen[0].limit, 512 << 10)

    async def test_under_the_cap_decodes(self) -> None:
        """A body decoding to less than the cap is read as usual."""
        reader = ContentReader()
        proxy = await start_proxy(self, reader, max_decoded_size="1m")
        server = await RawServer.start(self, bomb_server(zlib.compress(bytes(1 << 20)), "deflate"))
        await curl(self, "-x", proxy.url, server.url("/"))
        self.assertEqual(reader.seen, [1 << 20])
