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

Decoding is bounded: :func:`decode` never produces more than ``max_size``
bytes (by default :func:`max_decoded_size`, the process's cap, see
:data:`decode_cap`).  A body that decodes to more raises
:class:`DecodedSizeError` (a ``ValueError``) as soon as the output passes the
cap, so a small compressed body that inflates to gigabytes (a "decompression
bomb") costs at most about the cap in memory and the time to decode that
much.  Every decoder is incremental: zlib's ``max_length`` for gzip (any
number of members) and deflate, brotli's output limit, zstd fed in pieces
small enough that no piece can inflate past the cap.

Decoding empty input always yields ``b""`` whatever the coding (servers
routinely send ``Content-Encoding: gzip`` on empty bodies).

Usage::

    >>> from interceptor import encoding
    >>> raw = encoding.encode(b"hello", "gzip, br")
    >>> encoding.decode(raw, "gzip, br")
    b'hello'
    >>> try:
    ...     encoding.decode(raw, "gzip, br", max_size=3)
    ... except encoding.DecodedSizeError as e:
    ...     e.limit
    3
"""

from __future__ import annotations

import re
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

__all__ = [
    "decode",
    "encode",
    "SUPPORTED",
    "DecodedSizeError",
    "DEFAULT_MAX_DECODED_SIZE",
    "DecodeCap",
    "decode_cap",
    "max_decoded_size",
]

SUPPORTED: tuple[str, ...] = ("identity", "gzip", "x-gzip", "deflate", "br", "zstd")
"""The Content-Encoding names this module understands (lowercase)."""

DEFAULT_MAX_DECODED_SIZE = 64 * 1024 * 1024
"""The cap on a decoded body while no running proxy sets one (64 MiB)."""

# Compression levels: chosen for proxy throughput rather than maximum ratio.
_GZIP_LEVEL = 6
_BROTLI_QUALITY = 5
_ZSTD_LEVEL = 3


class DecodedSizeError(ValueError):
    """
    A body decodes to more than the allowed size: the proxy's
    C{max_decoded_size} option, or C{body_size_limit} when that is smaller
    (L{max_decoded_size}).  Raised by L{decode} and by reading a message's
    C{content}, C{text}, C{get_content()} or C{json()}; as a C{ValueError},
    code that already handles undecodable bodies handles it too::

        try:
            body = flow.response.content
        except DecodedSizeError:
            return          # too big to look at; the body still goes through

    @ivar encoding: The coding that produced too much (e.g. C{"gzip"}).
    @ivar limit: The size in bytes it went past.
    """

    def __init__(self, encoding: str, limit: int) -> None:
        self.encoding = encoding
        self.limit = limit
        super().__init__(
            f"body too large to decode: its {encoding} content decodes to more than "
            f"{limit} bytes (max_decoded_size)"
        )

    def __reduce__(self) -> tuple[type[DecodedSizeError], tuple[str, int]]:
        return (type(self), (self.encoding, self.limit))


class DecodeCap:
    """
    The decoded-size cap of the process: the smallest cap that a running
    proxy holds (its C{max_decoded_size}, or C{body_size_limit} when
    smaller), or L{DEFAULT_MAX_DECODED_SIZE} while none does.  A message does
    not know its proxy, so the cap is the process's, as the fast-path switch
    is: with several proxies in one process, the strictest one applies to
    all.
    """

    def __init__(self, default: int) -> None:
        self.default = default
        self._held: dict[int, int] = {}

    def hold(self, owner: object, size: int) -> None:
        """
        Set C{owner}'s cap (a running master's) to C{size} bytes.
        """
        self._held[id(owner)] = size

    def release(self, owner: object) -> None:
        """
        Drop C{owner}'s cap (the master stopped).
        """
        self._held.pop(id(owner), None)

    @property
    def size(self) -> int:
        """
        The cap in force, in bytes.
        """
        return min(self._held.values(), default=self.default)


decode_cap = DecodeCap(DEFAULT_MAX_DECODED_SIZE)
"""The process's cap; L{interceptor.master.Master} holds its options' value while it runs."""


def max_decoded_size() -> int:
    """
    How many bytes L{decode} may produce at most by default (L{decode_cap}).
    """
    return decode_cap.size


class _Output:
    """
    The pieces a decoder produced, refusing more than C{limit} bytes in all.
    """

    __slots__ = ("name", "limit", "size", "pieces")

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self.size = 0
        self.pieces: list[bytes] = []

    def room(self) -> int:
        """
        How many more bytes fit.
        """
        return self.limit - self.size

    def add(self, piece: bytes) -> None:
        """
        Keep C{piece}, or raise L{DecodedSizeError} if it goes past the limit.
        """
        self.size += len(piece)
        if self.size > self.limit:
            self.pieces = []
            raise DecodedSizeError(self.name, self.limit)
        if piece:
            self.pieces.append(piece)

    def result(self) -> bytes:
        """
        Everything kept, as one bytes object.
        """
        pieces = self.pieces
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _identity(data: bytes) -> bytes:
    return data


# -- gzip and deflate -------------------------------------------------------

_NOT_ZERO = re.compile(b"[^\x00]")


def _inflate(data: bytes, start: int, wbits: int, out: _Output) -> int:
    """
    Inflate the one zlib/gzip/raw deflate stream at C{data[start:]} into
    C{out}; return where the input after it starts.

    The input goes in pieces that double in size (so what is left after the
    stream's end, which zlib copies, is never much more than the stream
    itself: many small gzip members cost linear time), each with
    C{max_length} one more than the room left, so no call produces more
    than the cap allows.

    @raise zlib.error: The data is not valid for C{wbits}.
    @raise EOFError: The stream is cut short.
    """
    view = memoryview(data)
    d = zlib.decompressobj(wbits)
    position, step, end = start, 256, len(data)
    while not d.eof:
        if position >= end:
            raise EOFError("truncated")
        piece = view[position : position + step]
        out.add(d.decompress(piece, out.room() + 1))
        # (max_length reached means out.add raised: all of piece was read.)
        position += len(piece) - len(d.unused_data)
        step *= 2
    return position


def _gzip_decode(data: bytes, out: _Output) -> None:
    # Any number of members, and zero padding after them (as gzip.decompress).
    position = 0
    try:
        while True:
            padding = _NOT_ZERO.search(data, position)
            if padding is None:
                return
            position = _inflate(data, padding.start(), 31, out)
    except (zlib.error, EOFError) as e:
        raise ValueError(f"Invalid gzip data: {e}") from e


def _gzip_encode(data: bytes) -> bytes:
    # wbits=31 writes a gzip header with mtime 0 (deterministic output).
    return zlib.compress(data, _GZIP_LEVEL, 31)


def _deflate_decode(data: bytes, out: _Output) -> None:
    # RFC 9110 says "deflate" is zlib-wrapped, but many servers send raw
    # deflate streams, so accept both (anything after the stream is ignored,
    # as zlib.decompress does).
    try:
        _inflate(data, 0, zlib.MAX_WBITS, out)
        return
    except (zlib.error, EOFError):
        out.size, out.pieces = 0, []
    try:
        _inflate(data, 0, -zlib.MAX_WBITS, out)
    except (zlib.error, EOFError) as e:
        raise ValueError(f"Invalid deflate data: {e}") from e


def _deflate_encode(data: bytes) -> bytes:
    return zlib.compress(data, _GZIP_LEVEL)


# -- br ---------------------------------------------------------------------

_BR_STEP = 1 << 20  # (brotli may pass its output limit by one buffer block)


def _br_decode(data: bytes, out: _Output) -> None:
    if not _HAVE_BROTLI:  # pragma: no cover
        raise ValueError("Cannot decode br: the 'brotli' package is not installed")
    d = _brotli.Decompressor()
    try:
        piece: bytes = d.process(data, output_buffer_limit=min(out.room() + 1, _BR_STEP))
        out.add(piece)
        # Each turn produces output or ends, and the output is bounded: so is the loop.
        while not d.is_finished():
            piece = d.process(b"", output_buffer_limit=min(out.room() + 1, _BR_STEP))
            if not piece:
                raise ValueError("Invalid br data: truncated")
            out.add(piece)
    except _brotli.error as e:
        raise ValueError(f"Invalid br data: {e}") from e


def _br_encode(data: bytes) -> bytes:
    if not _HAVE_BROTLI:  # pragma: no cover
        raise ValueError("Cannot encode br: the 'brotli' package is not installed")
    encoded: bytes = _brotli.compress(data, quality=_BROTLI_QUALITY)  # (no annotations)
    return encoded


# -- zstd -------------------------------------------------------------------

# One input byte decodes to at most ~32 KiB (an RLE block: 4 bytes for 128 KiB),
# so a piece of room >> 15 bytes cannot inflate much past the room left.
_ZSTD_RATIO_SHIFT = 15
_ZSTD_MIN_PIECE = 64


def _zstd_decode(data: bytes, out: _Output) -> None:
    if not _HAVE_ZSTD:  # pragma: no cover
        raise ValueError("Cannot decode zstd: the 'zstandard' package is not installed")
    # A streaming decompressobj copes with frames that do not declare their
    # content size (ZstdDecompressor.decompress() refuses those).  One object
    # decodes one frame; the next frame starts where its input ended.
    dctx = _zstd.ZstdDecompressor()
    view = memoryview(data)
    position, end = 0, len(data)
    try:
        while position < end:
            dobj = dctx.decompressobj()
            while not dobj.eof:
                if position >= end:
                    raise ValueError("Invalid zstd data: truncated frame")
                step = max(_ZSTD_MIN_PIECE, out.room() >> _ZSTD_RATIO_SHIFT)
                piece = view[position : position + step]
                out.add(dobj.decompress(piece))
                position += len(piece) - len(dobj.unused_data)
    except _zstd.ZstdError as e:
        raise ValueError(f"Invalid zstd data: {e}") from e


def _zstd_encode(data: bytes) -> bytes:
    if not _HAVE_ZSTD:  # pragma: no cover
        raise ValueError("Cannot encode zstd: the 'zstandard' package is not installed")
    return _zstd.ZstdCompressor(level=_ZSTD_LEVEL).compress(data)


_Codec = Callable[[bytes], bytes]
_Decoder = Callable[[bytes, _Output], None]

_IDENTITY = ("", "identity")

_DECODERS: dict[str, _Decoder] = {
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


def decode(data: bytes, encoding: str, max_size: int | None = None) -> bytes:
    """
    Remove the Content-Encoding ``encoding`` from ``data``.

    ``encoding`` may be a comma-separated list; the codings are removed in
    reverse order.  Raises ``ValueError`` for an unknown coding or for data
    that is not valid for it, and :class:`DecodedSizeError` (a ``ValueError``)
    as soon as one coding's output passes ``max_size`` bytes (default
    :func:`max_decoded_size`); ``identity`` decodes nothing, so it is not
    counted.
    """
    limit = max_decoded_size() if max_size is None else max_size
    decoders: list[tuple[str, _Decoder]] = []
    for name in reversed(_codings(encoding)):
        if name in _IDENTITY:
            continue
        fn = _DECODERS.get(name)
        if fn is None:
            raise ValueError(f"Unknown content encoding: {name!r}")
        decoders.append((name, fn))
    for name, fn in decoders:
        if not data:
            break
        out = _Output(name, limit)
        fn(data, out)
        data = out.result()
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
