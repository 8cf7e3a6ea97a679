# -*- test-case-name: tests.test_encoding -*-
"""Tests for interceptor.encoding."""

from __future__ import annotations

import gzip
import zlib

import brotli
import zstandard
from twisted.trial.unittest import SynchronousTestCase

from interceptor.model import encoding

DATA = b"The quick brown fox jumps over the lazy dog. " * 50


class RoundTripTests(SynchronousTestCase):
    """encode() followed by decode() gives the original data."""

    def assertRoundTrip(self, name: str) -> None:
        """Assert that DATA survives encode+decode with coding ``name``."""
        encoded = encoding.encode(DATA, name)
        self.assertEqual(encoding.decode(encoded, name), DATA)

    def test_identity(self) -> None:
        """identity and "" leave the data untouched."""
        self.assertIs(encoding.encode(DATA, "identity"), DATA)
        self.assertIs(encoding.decode(DATA, "identity"), DATA)
        self.assertIs(encoding.decode(DATA, ""), DATA)

    def test_gzip(self) -> None:
        """gzip round-trips and produces real gzip data."""
        self.assertRoundTrip("gzip")
        self.assertEqual(gzip.decompress(encoding.encode(DATA, "gzip")), DATA)
        self.assertLess(len(encoding.encode(DATA, "gzip")), len(DATA))

    def test_x_gzip(self) -> None:
        """x-gzip is an alias of gzip."""
        self.assertRoundTrip("x-gzip")
        self.assertEqual(encoding.decode(gzip.compress(DATA), "x-gzip"), DATA)

    def test_deflate(self) -> None:
        """deflate round-trips and encodes zlib-wrapped."""
        self.assertRoundTrip("deflate")
        self.assertEqual(zlib.decompress(encoding.encode(DATA, "deflate")), DATA)

    def test_br(self) -> None:
        """br round-trips and interoperates with the brotli package."""
        self.assertRoundTrip("br")
        self.assertEqual(brotli.decompress(encoding.encode(DATA, "br")), DATA)
        self.assertEqual(encoding.decode(brotli.compress(DATA), "br"), DATA)

    def test_zstd(self) -> None:
        """zstd round-trips and interoperates with the zstandard package."""
        self.assertRoundTrip("zstd")
        self.assertEqual(
            zstandard.ZstdDecompressor().decompress(encoding.encode(DATA, "zstd")), DATA
        )

    def test_empty_data(self) -> None:
        """Every coding round-trips empty data."""
        for name in ("identity", "gzip", "deflate", "br", "zstd"):
            self.assertEqual(encoding.decode(encoding.encode(b"", name), name), b"", name)

    def test_case_and_whitespace(self) -> None:
        """Coding names are case-insensitive and surrounding whitespace is ignored."""
        self.assertEqual(encoding.decode(encoding.encode(DATA, " GZIP "), "Gzip"), DATA)


class DecodeFormatTests(SynchronousTestCase):
    """decode() accepts the format variants seen in the wild."""

    def test_raw_deflate(self) -> None:
        """deflate decoding also accepts raw (headerless) deflate streams."""
        c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        raw = c.compress(DATA) + c.flush()
        self.assertEqual(encoding.decode(raw, "deflate"), DATA)

    def test_zstd_without_content_size(self) -> None:
        """zstd frames that do not declare their content size are decoded."""
        frame = zstandard.ZstdCompressor(write_content_size=False).compress(DATA)
        self.assertEqual(encoding.decode(frame, "zstd"), DATA)

    def test_zstd_streamed_frame(self) -> None:
        """A zstd frame produced by a streaming compressor is decoded."""
        cobj = zstandard.ZstdCompressor().compressobj()
        frame = cobj.compress(DATA) + cobj.flush()
        self.assertEqual(encoding.decode(frame, "zstd"), DATA)

    def test_zstd_multiple_frames(self) -> None:
        """Concatenated zstd frames decode to the concatenated data."""
        c = zstandard.ZstdCompressor()
        self.assertEqual(
            encoding.decode(c.compress(b"abc") + c.compress(b"def"), "zstd"), b"abcdef"
        )

    def test_gzip_multiple_members(self) -> None:
        """Concatenated gzip members decode to the concatenated data."""
        self.assertEqual(
            encoding.decode(gzip.compress(b"abc") + gzip.compress(b"def"), "gzip"), b"abcdef"
        )

    def test_empty_input_decodes_to_empty(self) -> None:
        """Empty input decodes to b"" whatever the (known) coding."""
        for name in ("gzip", "deflate", "br", "zstd", "gzip, br"):
            self.assertEqual(encoding.decode(b"", name), b"", name)


class MultipleEncodingTests(SynchronousTestCase):
    """Comma-separated coding lists."""

    def test_encode_order(self) -> None:
        """encode() applies the codings left to right."""
        encoded = encoding.encode(DATA, "gzip, br")
        self.assertEqual(gzip.decompress(brotli.decompress(encoded)), DATA)

    def test_decode_reverse_order(self) -> None:
        """decode() removes the codings right to left."""
        encoded = zstandard.ZstdCompressor().compress(zlib.compress(DATA))
        self.assertEqual(encoding.decode(encoded, "deflate, zstd"), DATA)

    def test_round_trip_with_identity(self) -> None:
        """A list containing identity round-trips."""
        self.assertEqual(
            encoding.decode(encoding.encode(DATA, "identity, gzip, zstd"), "identity,gzip,zstd"),
            DATA,
        )


class ErrorTests(SynchronousTestCase):
    """Failures raise ValueError naming the coding."""

    def test_unknown_encode(self) -> None:
        """Encoding with an unknown coding raises ValueError naming it."""
        e = self.assertRaises(ValueError, encoding.encode, DATA, "compress")
        self.assertIn("compress", str(e))

    def test_unknown_decode(self) -> None:
        """Decoding with an unknown coding raises ValueError naming it, even for empty data."""
        e = self.assertRaises(ValueError, encoding.decode, DATA, "snappy")
        self.assertIn("snappy", str(e))
        self.assertRaises(ValueError, encoding.decode, b"", "snappy")

    def test_unknown_in_list(self) -> None:
        """An unknown coding in a list raises ValueError before anything is encoded."""
        e = self.assertRaises(ValueError, encoding.encode, DATA, "gzip, bogus")
        self.assertIn("bogus", str(e))

    def test_corrupt(self) -> None:
        """Garbage raises ValueError naming the coding for every compressing coding."""
        for name in ("gzip", "deflate", "br", "zstd"):
            e = self.assertRaises(
                ValueError, encoding.decode, b"this is not compressed data", name
            )
            self.assertIn(name, str(e))

    def test_truncated(self) -> None:
        """Truncated compressed data raises ValueError naming the coding."""
        for name in ("gzip", "deflate", "br", "zstd"):
            encoded = encoding.encode(DATA, name)
            e = self.assertRaises(ValueError, encoding.decode, encoded[: len(encoded) // 2], name)
            self.assertIn(name, str(e))

    def test_truncated_zstd_without_content_size(self) -> None:
        """A truncated zstd frame without declared size raises ValueError."""
        frame = zstandard.ZstdCompressor(write_content_size=False).compress(DATA)
        self.assertRaises(ValueError, encoding.decode, frame[:-4], "zstd")

    def test_trailing_garbage_gzip(self) -> None:
        """Garbage after a gzip member raises ValueError."""
        self.assertRaises(ValueError, encoding.decode, gzip.compress(DATA) + b"garbage", "gzip")
