# -*- test-case-name: tests.test_encoding -*-
"""Tests for interceptor.encoding."""

from __future__ import annotations

import gzip
import tracemalloc
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


def _bomb(name: str, size: int, members: int = 1) -> bytes:
    """``members`` concatenated streams of ``name``, each decoding to ``size`` zero bytes."""
    zeros = bytes(1 << 20)
    if name == "gzip":
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        process, finish = c.compress, c.flush
    elif name == "deflate":
        c = zlib.compressobj(9)
        process, finish = c.compress, c.flush
    elif name == "br":
        b = brotli.Compressor(quality=5)
        process, finish = b.process, b.finish
    else:
        z = zstandard.ZstdCompressor(level=3).compressobj()
        process, finish = z.compress, z.flush
    one = b"".join([process(zeros) for _ in range(size >> 20)] + [finish()])
    return one * members


class _Peak:
    """The peak of the memory Python allocates (bytes objects included) within a block."""

    def __enter__(self) -> "_Peak":
        tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


class BoundedDecodeTests(SynchronousTestCase):
    """
    decode() produces no more than max_size bytes: a decompression bomb
    raises DecodedSizeError once the output passes the cap, having used
    about the cap in memory (not the decoded size).
    """

    def test_bomb_each_coding_raises_with_bounded_memory(self) -> None:
        """A 16 MiB bomb with a 1 MiB cap: DecodedSizeError, under 4 MiB allocated."""
        for name in ("gzip", "deflate", "br", "zstd"):
            bomb = _bomb(name, 16 << 20)
            with _Peak() as peak:
                e = self.assertRaises(
                    encoding.DecodedSizeError, encoding.decode, bomb, name, 1 << 20
                )
            self.assertIsInstance(e, ValueError)
            self.assertEqual((e.encoding, e.limit), (name, 1 << 20))
            self.assertIn("too large to decode", str(e))
            self.assertLess(peak.bytes, 4 << 20, name)

    def test_gzip_members_count_together(self) -> None:
        """Ten members of 4 MiB each pass a 16 MiB cap together; the first ones decode."""
        bomb = _bomb("gzip", 4 << 20, members=10)
        with _Peak() as peak:
            self.assertRaises(encoding.DecodedSizeError, encoding.decode, bomb, "gzip", 16 << 20)
        self.assertLess(peak.bytes, 40 << 20)
        self.assertEqual(encoding.decode(_bomb("gzip", 1 << 20, members=3), "gzip", 3 << 20),
                         bytes(3 << 20))

    def test_exact_limit(self) -> None:
        """A body of exactly max_size bytes decodes; one byte less raises."""
        for name in ("gzip", "deflate", "br", "zstd", "gzip, br"):
            encoded = encoding.encode(DATA, name)
            self.assertEqual(encoding.decode(encoded, name, len(DATA)), DATA, name)
            self.assertRaises(
                encoding.DecodedSizeError, encoding.decode, encoded, name, len(DATA) - 1
            )

    def test_each_stage_of_a_list_is_bounded(self) -> None:
        """In "gzip, br" the br stage's output (a gzip bomb) is bounded too."""
        encoded = brotli.compress(_bomb("gzip", 8 << 20))
        e = self.assertRaises(
            encoding.DecodedSizeError, encoding.decode, encoded, "gzip, br", 1 << 20
        )
        self.assertEqual(e.encoding, "gzip")

    def test_identity_not_counted(self) -> None:
        """identity decodes nothing, so a cap does not apply to it."""
        self.assertIs(encoding.decode(DATA, "identity", 1), DATA)

    def test_many_small_gzip_members(self) -> None:
        """Thousands of small members (and zero padding) decode in order."""
        members = [gzip.compress(b"%d," % i, mtime=0) for i in range(5000)]
        data = b"".join(members) + bytes(100)
        self.assertEqual(encoding.decode(data, "gzip"), b"".join(b"%d," % i for i in range(5000)))

    def test_default_is_the_process_cap(self) -> None:
        """Without max_size, decode() uses decode_cap: the smallest cap held, else the default."""
        self.assertEqual(encoding.max_decoded_size(), encoding.DEFAULT_MAX_DECODED_SIZE)
        self.assertEqual(encoding.DEFAULT_MAX_DECODED_SIZE, 64 << 20)
        one, two = object(), object()
        self.addCleanup(encoding.decode_cap.release, one)
        self.addCleanup(encoding.decode_cap.release, two)
        encoding.decode_cap.hold(one, 2000)
        encoding.decode_cap.hold(two, 1 << 20)
        self.assertEqual(encoding.max_decoded_size(), 2000)
        self.assertRaises(encoding.DecodedSizeError, encoding.decode,
                          encoding.encode(DATA, "gzip"), "gzip")
        encoding.decode_cap.release(one)
        self.assertEqual(encoding.decode(encoding.encode(DATA, "gzip"), "gzip"), DATA)
        encoding.decode_cap.release(two)
        self.assertEqual(encoding.max_decoded_size(), encoding.DEFAULT_MAX_DECODED_SIZE)

    def test_public_names(self) -> None:
        """The error and the cap are importable from interceptor.encoding."""
        from interceptor import encoding as public

        self.assertIs(public.DecodedSizeError, encoding.DecodedSizeError)
        self.assertIs(public.decode_cap, encoding.decode_cap)
        self.assertIs(public.max_decoded_size, encoding.max_decoded_size)
