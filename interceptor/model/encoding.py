# -*- test-case-name: tests.test_encoding -*-
"""
Content-Encoding codecs (RFC 9110 section 8.4).

Supported codings: ``identity`` (and the empty string), ``gzip`` (and
``x-gzip``), ``deflate``, ``br`` (needs the ``brotli`` package) and ``zstd``
(needs the ``zstandard`` package).  Names are case-insensitive.  A
comma-separated list such as ``"gzip, br"`` means the codings were applied in
that order: :func:`encode` applies them left to right and :func:`decode`
removes them right to left.

Any failure (unknown coding, corrupt or truncated data, missing optional
package) raises :class:`ValueError` naming the coding.

Decoding empty input always yields ``b""`` whatever the coding (servers
routinely send ``Content-Encoding: gzip`` on empty bodies).

Usage::

    >>> from interceptor import encoding
    >>> raw = encoding.encode(b"hello", "gzip, br")
    >>> encoding.decode(raw, "gzip, br")
    b'hello'
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

try:
    import brotli as _brotli
except ImportError:  # pragma: no cover - optional dependency
    _HAVE_BROTLI = False
else:
    _HAVE_BROTLI = True

try:
    import zstandard as _zstd
except ImportError:  # pragma: no cover - optional dependency
    _HAVE_ZSTD = False
else:
    _HAVE_ZSTD = True

__all__ = ["decode", "encode", "SUPPORTED"]

SUPPORTED: tuple[str, ...] = ("identity", "gzip", "x-gzip", "deflate", "br", "zstd")
"""The Content-Encoding names this module understands (lowercase)."""

# Compression levels: chosen for proxy throughput rather than maximum ratio.
_GZIP_LEVEL = 6
_BROTLI_QUALITY = 5
_ZSTD_LEVEL = 3


def _identity(data: bytes) -> bytes:
    return data


# -- gzip -------------------------------------------------------------------


def _gzip_decode(data: bytes) -> bytes:
    # gzip.decompress handles multi-member streams and trailing zero padding.
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"Invalid gzip data: {e}") from e


def _gzip_encode(data: bytes) -> bytes:
    # wbits=31 writes a gzip header with mtime 0 (deterministic output).
    return zlib.compress(data, _GZIP_LEVEL, 31)


# -- deflate ----------------------------------------------------------------


def _deflate_decode(data: bytes) -> bytes:
    # RFC 9110 says "deflate" is zlib-wrapped, but many servers send raw
    # deflate streams, so accept both.
    try:
        return zlib.decompress(data)
    except zlib.error:
        pass
    try:
        return zlib.decompress(data, -zlib.MAX_WBITS)
    except zlib.error as e:
        raise ValueError(f"Invalid deflate data: {e}") from e


def _deflate_encode(data: bytes) -> bytes:
    return zlib.compress(data, _GZIP_LEVEL)


# -- br ---------------------------------------------------------------------


def _br_decode(data: bytes) -> bytes:
    if not _HAVE_BROTLI:  # pragma: no cover
        raise ValueError("Cannot decode br: the 'brotli' package is not installed")
    try:
        decoded: bytes = _brotli.decompress(data)  # (brotli has no annotations)
    except _brotli.error as e:
        raise ValueError(f"Invalid br data: {e}") from e
    return decoded


def _br_encode(data: bytes) -> bytes:
    if not _HAVE_BROTLI:  # pragma: no cover
        raise ValueError("Cannot encode br: the 'brotli' package is not installed")
    encoded: bytes = _brotli.compress(data, quality=_BROTLI_QUALITY)  # (no annotations)
    return encoded


# -- zstd -------------------------------------------------------------------


def _zstd_decode(data: bytes) -> bytes:
    if not _HAVE_ZSTD:  # pragma: no cover
        raise ValueError("Cannot decode zstd: the 'zstandard' package is not installed")
    # A streaming decompressobj copes with frames that do not declare their
    # content size (ZstdDecompressor.decompress() refuses those).  One object
    # decodes one frame; loop for concatenated frames.
    dctx = _zstd.ZstdDecompressor()
    out: list[bytes] = []
    try:
        while data:
            dobj = dctx.decompressobj()
            out.append(dobj.decompress(data))
            if not dobj.eof:
                raise ValueError("Invalid zstd data: truncated frame")
            data = dobj.unused_data
    except _zstd.ZstdError as e:
        raise ValueError(f"Invalid zstd data: {e}") from e
    return b"".join(out)


def _zstd_encode(data: bytes) -> bytes:
    if not _HAVE_ZSTD:  # pragma: no cover
        raise ValueError("Cannot encode zstd: the 'zstandard' package is not installed")
    return _zstd.ZstdCompressor(level=_ZSTD_LEVEL).compress(data)


_Codec = Callable[[bytes], bytes]

_DECODERS: dict[str, _Codec] = {
    "": _identity,
    "identity": _identity,
    "gzip": _gzip_decode,
    "x-gzip": _gzip_decode,
    "deflate": _deflate_decode,
    "br": _br_decode,
    "zstd": _zstd_decode,
}

_ENCODERS: dict[str, _Codec] = {
    "": _identity,
    "identity": _identity,
    "gzip": _gzip_encode,
    "x-gzip": _gzip_encode,
    "deflate": _deflate_encode,
    "br": _br_encode,
    "zstd": _zstd_encode,
}


def _codings(encoding: str) -> list[str]:
    if "," not in encoding:
        return [encoding.strip().lower()]
    return [e.strip() for e in encoding.lower().split(",")]


def decode(data: bytes, encoding: str) -> bytes:
    """
    Remove the Content-Encoding ``encoding`` from ``data``.

    ``encoding`` may be a comma-separated list; the codings are removed in
    reverse order.  Raises ``ValueError`` for an unknown coding or for data
    that is not valid for it.
    """
    for name in reversed(_codings(encoding)):
        fn = _DECODERS.get(name)
        if fn is None:
            raise ValueError(f"Unknown content encoding: {name!r}")
        if data:
            data = fn(data)
    return data


def encode(data: bytes, encoding: str) -> bytes:
    """
    Apply the Content-Encoding ``encoding`` to ``data``.

    ``encoding`` may be a comma-separated list; the codings are applied in
    order (so ``decode(encode(d, e), e) == d``).  ``deflate`` produces a
    zlib-wrapped stream as RFC 9110 requires.  Raises ``ValueError`` for an
    unknown coding.
    """
    fns: list[_Codec] = []
    for name in _codings(encoding):
        fn = _ENCODERS.get(name)
        if fn is None:
            raise ValueError(f"Unknown content encoding: {name!r}")
        fns.append(fn)
    for fn in fns:
        data = fn(data)
    return data
