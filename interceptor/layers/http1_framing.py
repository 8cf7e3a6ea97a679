# -*- test-case-name: tests.e2e.test_http1,tests.e2e.test_streaming -*-
"""
HTTP/1 message framing and serialisation, shared by the HTTP/1 client side,
its upstream connections and the HTTP/2 translation paths.

    head = _head_bytes("GET / HTTP/1.1", request.headers)
    framing = _prepare_buffered(response, body, bodiless=False, chunked_ok=True)
    writer = _BodyWriter(write, framing, transform=None)

It also holds the small helpers every layer uses: C{error_response} (the
502/504/4xx the proxy answers itself), C{_no_delay}.
"""

from __future__ import annotations

import inspect
import time
import weakref
from typing import Any, Callable, Iterable, Optional

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from interceptor.model.http import Headers, Request, Response

__all__ = ["error_response"]

_BODILESS_STATUS = frozenset((204, 304))
_HOP_BY_HOP_REQUEST = frozenset((b"proxy-connection",))
_DEFAULT_BUFFER = 65536
# Read and buffer size while relaying a large body unparsed: fewer, bigger
# reads and writes per megabyte.
_BULK_BUFFER = 1 << 20
_BULK_THRESHOLD = 256 * 1024


def error_response(status: int, reason: str, detail: str) -> Response:
    """
    The response the proxy sends itself when something fails: a short
    plain-text body saying why, and C{Connection: close}.
    """
    body = f"{status} {reason}\n{detail}\n".encode("utf-8", "replace")
    headers = Headers(
        [
            (b"Server", b"interceptor"),
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Content-Length", str(len(body)).encode()),
            (b"Connection", b"close"),
        ]
    )
    now = time.time()
    return Response("HTTP/1.1", status, reason, headers, body, now, now)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _head_bytes(first_line: str, headers: Headers) -> bytes:
    return first_line.encode("utf-8", "surrogateescape") + b"\r\n" + headers.to_bytes() + b"\r\n"


def _content_length(headers: Headers) -> Optional[int]:
    value = headers.get(b"content-length")
    if value is None:
        return None
    try:
        return int(value.split(b",")[0])
    except ValueError:
        return None


def _is_chunked(headers: Headers) -> bool:
    # Chunked framing only when chunked is the final transfer coding.
    value = headers.get(b"transfer-encoding")
    return value is not None and value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"


def _wants_close(headers: Headers) -> bool:
    value = headers.get(b"connection")
    return value is not None and b"close" in value.lower()


def asks_to_upgrade(headers: Headers) -> bool:
    """
    Whether a request asks to switch protocols (an C{Upgrade} header with
    C{Connection: upgrade}); a 101 to anything else is invalid.
    """
    connection = headers.get(b"connection") or b""
    return headers.get(b"upgrade") is not None and b"upgrade" in connection.lower()


class _Framing:
    """
    How a message's body is delimited when the proxy sends it: by
    Content-Length (C{"length"}), chunked (C{"chunked"}), by closing the
    connection (C{"close"}), or not at all (C{"none"}).
    """

    LENGTH, CHUNKED, CLOSE, NONE = "length", "chunked", "close", "none"


def _prepare_buffered(message: Any, body: bytes, bodiless: bool, chunked_ok: bool) -> str:
    """
    Fix the framing headers of a buffered message about to be sent, and
    return its framing.  Headers are left untouched when they already fit;
    a request without a body needs no framing header at all.  An HTTP/1.0
    request goes with a Content-Length (its trailers cannot travel): that
    version has no chunked framing.
    """
    headers = message.headers
    if bodiless:
        return _Framing.NONE
    if isinstance(message, Request) and message.http_version == "HTTP/1.0":
        chunked_ok = False
    if _is_chunked(headers):
        if chunked_ok:
            # One framing only: an addon that asked for chunked (to add
            # trailers, say) left the server's Content-Length behind.
            if b"content-length" in headers:
                del headers[b"content-length"]
            return _Framing.CHUNKED
        del headers[b"transfer-encoding"]
        headers[b"Content-Length"] = str(len(body)).encode()
        return _Framing.LENGTH
    coding = headers.get(b"transfer-encoding")
    if coding is not None or (chunked_ok and message.trailers):
        # A body still under another transfer coding (e.g. gzip) may not go
        # with a Content-Length (RFC 9112 6.1), and trailers travel only
        # after a chunked body.
        if b"content-length" in headers:
            del headers[b"content-length"]
        if chunked_ok:
            headers[b"Transfer-Encoding"] = coding + b", chunked" if coding else b"chunked"
            return _Framing.CHUNKED
        return _Framing.CLOSE
    length = _content_length(headers)
    if length is None and not body and isinstance(message, Request):
        return _Framing.NONE
    if length != len(body):
        headers[b"Content-Length"] = str(len(body)).encode()
    return _Framing.LENGTH


def _prepare_streamed(message: Any, chunked_ok: bool, transform: bool) -> str:
    """
    Choose and set the framing of a message whose body is streamed.
    """
    headers = message.headers
    chunked = _is_chunked(headers)
    length = _content_length(headers)
    # Trailers an addon set before the body travel only after a chunked one.
    trailers = chunked_ok and bool(message.trailers)
    if length is not None and not chunked and not transform and not trailers:
        return _Framing.LENGTH
    if length is not None:
        del headers[b"content-length"]
    if chunked_ok:
        if not chunked:
            headers[b"Transfer-Encoding"] = b"chunked"
        return _Framing.CHUNKED
    if chunked:
        del headers[b"transfer-encoding"]
    return _Framing.CLOSE


def message_trailers(message: Any) -> Optional[list[tuple[bytes, bytes]]]:
    """
    A message's trailers as an HTTP/2 header block, or None.
    """
    trailers = message.trailers
    if not trailers:
        return None
    return [(name.lower(), value) for name, value in trailers.fields]


def _last_chunk(trailers: Optional[Headers]) -> bytes:
    # The end of a chunked body, with the trailer fields if there are any.
    return b"0\r\n" + (trailers.to_bytes() if trailers else b"") + b"\r\n"


def _write_message(
    write: Callable[[bytes], None], head: bytes, body: bytes, framing: str,
    trailers: Optional[Headers] = None,
) -> None:
    """
    Send a buffered message: C{head}, then C{body} framed as C{framing}
    (from L{_prepare_buffered}) and, chunked, the C{trailers}; a small body
    goes out in the same write.
    """
    if framing == _Framing.CHUNKED:
        write(head + (_chunk(body) if body else b"") + _last_chunk(trailers))
    elif framing == _Framing.NONE or not body:
        write(head)
    elif len(body) < 65536:
        write(head + body)
    else:
        write(head)
        write(body)


def drop_length_if_transformed(message: Any) -> None:
    """
    A message streamed through a chunk transform may change length: its
    Content-Length no longer holds (over HTTP/2 the DATA frames then carry
    the length; over HTTP/1 chunked framing does).
    """
    if callable(message.stream) and b"content-length" in message.headers:
        del message.headers[b"content-length"]


_Transform = Callable[[bytes], "bytes | Iterable[bytes]"]
"""An addon's chunk transform (a callable C{Message.stream})."""


# Transforms found to be of mitmproxy 2.x's kind (see transformed).
_CHUNK_TRANSFORMS: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()


def transformed(transform: _Transform, data: bytes) -> bytes:
    """
    C{data} through an addon's chunk transform (C{message.stream}), which
    may return bytes or an iterable of bytes.

    mitmproxy 2.x's transforms took an iterable of chunks instead
    (C{def modify(chunks): for chunk in chunks: yield ...}).  Both kinds
    are generator functions, so a generator function that fails on bytes
    (iterating bytes gives ints) the first time is tried with the piece as
    one chunk, and is known as that kind from then on.
    """
    if not inspect.isgeneratorfunction(transform):
        return _joined(transform(data))
    # (A generator function is weakly referenceable; the arg-type ignores:
    # _Transform is annotated as the bytes -> bytes kind.)
    if _CHUNK_TRANSFORMS.get(transform):
        return _joined(transform([data]))  # type: ignore[arg-type]
    try:
        return _joined(transform(data))
    except (TypeError, AttributeError):
        out = _joined(transform([data]))  # type: ignore[arg-type]
        _CHUNK_TRANSFORMS[transform] = True
        return out


def _joined(out: "bytes | bytearray | Iterable[bytes]") -> bytes:
    if isinstance(out, bytes):
        return out
    if isinstance(out, bytearray):
        return bytes(out)
    return b"".join(out)


class _BodyWriter:
    """
    Writes body pieces to a transport with the chosen framing, applying an
    addon's chunk transform on the way.
    """

    __slots__ = ("write_out", "framing", "transform")

    def __init__(
        self, write_out: Callable[[bytes], None], framing: str, transform: Optional[_Transform]
    ) -> None:
        self.write_out = write_out
        self.framing = framing
        self.transform = transform

    def write(self, data: bytes) -> None:
        """
        Send one piece of the body.
        """
        if self.transform is not None:
            data = transformed(self.transform, data)
        if not data or self.framing == _Framing.NONE:
            return
        if self.framing == _Framing.CHUNKED:
            self.write_out(_chunk(data))
        else:
            self.write_out(data)

    def finish(self, trailers: Optional[Headers] = None) -> None:
        """
        Send the end of the body, if the framing has one (with C{trailers}
        when chunked; other framings cannot carry them).
        """
        if self.framing == _Framing.CHUNKED:
            self.write_out(_last_chunk(trailers))


def _no_delay(transport: Any) -> None:
    # Each message goes out in as few writes as possible; Nagle would only
    # add latency to the last partial segment.
    try:
        transport.setTcpNoDelay(True)
    except (AttributeError, OSError):
        pass


def _not_attached(data: bytes) -> None:
    raise RuntimeError("the layer has no transport yet")


def _failed(error: Exception) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(Failure(error))
    return d


