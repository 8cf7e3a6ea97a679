# -*- test-case-name: tests.test_http -*-
"""
:class:`Message`, the base of :class:`Request` and :class:`Response`
(bodies, content encoding, charsets), and the reason phrase lookup.
"""

from __future__ import annotations

import codecs
import copy as _copy
import http as _stdlib_http
import json as _json
import re
from collections.abc import Callable, Iterable
from typing import Any, Self

from interceptor.model import encoding as _encoding
from interceptor.model.headers import _SE, Headers, _b
from interceptor.utils.strutils import escaped_str_to_bytes

StreamSetting = bool | Callable[[bytes], bytes | Iterable[bytes]]
"""Type of :attr:`Message.stream`."""

ReplacePattern = str | bytes | re.Pattern[bytes]
"""What :meth:`Message.replace` takes as a pattern."""




_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
_CSS_CHARSET = re.compile(rb"""@charset ["']([a-zA-Z0-9_.:-]+)["'];""", re.IGNORECASE)


def _charset_of(content_type: bytes | None) -> str | None:
    """The ``charset=`` parameter of a Content-Type value (validated codec name) or None."""
    if not content_type:
        return None
    for param in content_type.split(b";")[1:]:
        name, _, value = param.partition(b"=")
        if name.strip().lower() == b"charset":
            cs = value.strip().strip(b"\"'").decode("latin-1")
            try:
                info = codecs.lookup(cs)
            except LookupError:
                return None
            if not getattr(info, "_is_text_encoding", True):
                return None
            return info.name
    return None


class Message:
    """
    Base class of :class:`Request` and :class:`Response`.

    ``raw_content`` is the body as received (after transfer-decoding, still
    content-encoded) or None if it has not been read; ``content`` and
    ``text`` are decoded views of it.
    """

    __slots__ = (
        "http_version",
        "headers",
        "_raw_content",
        "_cache",
        "trailers",
        "timestamp_start",
        "timestamp_end",
        "stream",
    )

    http_version: str
    """HTTP version string, e.g. ``"HTTP/1.1"``."""
    headers: Headers
    """The header fields."""
    trailers: Headers | None
    """Trailer fields (chunked/HTTP/2), None if there are none."""
    timestamp_start: float | None
    """When the first byte of the message was received/sent (``time.time()``)."""
    timestamp_end: float | None
    """When the last byte of the message was received/sent."""
    stream: StreamSetting
    """False (buffer the body), True (stream unmodified) or a callable transforming each chunk."""

    def __init__(
        self,
        http_version: str,
        headers: Headers,
        content: bytes | None,
        timestamp_start: float | None = None,
        timestamp_end: float | None = None,
    ) -> None:
        """Store the fields as given; ``content`` is the raw (still content-encoded) body."""
        self.http_version = http_version
        self.headers = headers
        self._raw_content = content
        # (raw, content-encoding, decoded body), or (raw, content-encoding,
        # cap) when the body decoded to more than that cap.
        self._cache: tuple[bytes, bytes, bytes | int] | None = None
        self.trailers = None
        self.timestamp_start = timestamp_start
        self.timestamp_end = timestamp_end
        self.stream = False

    def copy(self) -> Self:
        """A deep copy (headers and body too), as mitmproxy's ``Message.copy``."""
        return _copy.deepcopy(self)

    # -- version helpers ----------------------------------------------------------

    @property
    def is_http10(self) -> bool:
        """Whether this is an HTTP/1.0 message."""
        return self.http_version == "HTTP/1.0"

    @property
    def is_http11(self) -> bool:
        """Whether this is an HTTP/1.1 message."""
        return self.http_version == "HTTP/1.1"

    @property
    def is_http2(self) -> bool:
        """Whether this is an HTTP/2 message."""
        return self.http_version.startswith("HTTP/2")

    @property
    def is_http3(self) -> bool:
        """Whether this is an HTTP/3 message."""
        return self.http_version.startswith("HTTP/3")

    # -- body -------------------------------------------------------------

    def _fix_length(self, length: int) -> None:
        """Update Content-Length in place, or add it for a non-empty, unframed body."""
        h = self.headers
        if b"content-length" in h:
            h[b"content-length"] = b"%d" % length
        elif length and b"transfer-encoding" not in h:
            h.add(b"content-length", b"%d" % length)

    @property
    def raw_content(self) -> bytes | None:
        """
        The body as on the wire (content-encoded), or None if not read.
        Setting it fixes Content-Length but encodes nothing.
        """
        return self._raw_content

    @raw_content.setter
    def raw_content(self, value: bytes | None) -> None:
        if value is not None and not isinstance(value, bytes):
            raise TypeError(f"raw_content must be bytes or None, not {type(value).__name__}")
        self._raw_content = value
        self._cache = None
        if value is not None:
            self._fix_length(len(value))

    def load_body(self, value: bytes | None) -> None:
        """
        Store the body exactly as it was received, leaving the framing
        headers alone (the wire layers use this; addons set C{content} or
        C{raw_content}).
        """
        self._raw_content = value
        self._cache = None

    def get_content(self, strict: bool = True) -> bytes | None:
        """
        The body with Content-Encoding removed (cached).  On undecodable data
        raise ValueError if ``strict``, else return ``raw_content``.

        Decoding stops once the output passes the process's cap
        (:func:`interceptor.encoding.max_decoded_size`: the proxy's
        ``max_decoded_size`` option, or ``body_size_limit`` when smaller),
        which counts as undecodable: :class:`interceptor.encoding.DecodedSizeError`
        (a ValueError) if ``strict``, else ``raw_content``.
        """
        raw = self._raw_content
        if raw is None:
            return None
        ce = self.headers.get(b"content-encoding")
        if not ce:
            return raw
        cap = _encoding.max_decoded_size()
        cache = self._cache
        if cache is not None and cache[0] is raw and cache[1] == ce:
            known = cache[2]
            if isinstance(known, bytes):
                return known
            if cap <= known:  # (it decoded to more than this cap before)
                if strict:
                    raise _encoding.DecodedSizeError(ce.decode("latin-1"), cap)
                return raw
        try:
            decoded = _encoding.decode(raw, ce.decode("latin-1"), cap)
        except _encoding.DecodedSizeError:
            self._cache = (raw, ce, cap)
            if strict:
                raise
            return raw
        except ValueError:
            if strict:
                raise
            return raw
        self._cache = (raw, ce, decoded)
        return decoded

    def set_content(self, value: bytes | None) -> None:
        """
        Set the decoded body: it is re-encoded with the current
        Content-Encoding (an unknown one is removed instead, as mitmproxy
        does) and Content-Length is fixed.
        """
        if value is None:
            self._raw_content = None
            self._cache = None
            return
        if not isinstance(value, bytes):
            raise TypeError(f"content must be bytes or None, not {type(value).__name__}")
        h = self.headers
        ce = h.get(b"content-encoding")
        if ce:
            cache = self._cache
            if (
                cache is not None
                and cache[2] is value
                and cache[1] == ce
                and cache[0] is self._raw_content
            ):
                raw = cache[0]  # unchanged (e.g. ``m.content = m.content``)
            else:
                try:
                    raw = _encoding.encode(value, ce.decode("latin-1"))
                except ValueError:
                    del h[b"content-encoding"]
                    raw = value
                    ce = None
        else:
            raw = value
        self._raw_content = raw
        self._cache = (raw, ce, value) if ce else None
        self._fix_length(len(raw))

    @property
    def content(self) -> bytes | None:
        """
        The body with Content-Encoding removed (ValueError if undecodable).
        Assigning re-encodes it and fixes Content-Length.
        """
        return self.get_content(True)

    @content.setter
    def content(self, value: bytes | None) -> None:
        self.set_content(value)

    def _charset(self, content: bytes | None = None) -> str:
        content_type = self.headers.get(b"content-type")
        declared = _charset_of(content_type)
        if declared is None and content and content_type:
            # As mitmproxy guesses: an HTML <meta> charset, a CSS @charset.
            kind = content_type.split(b";")[0].strip().lower()
            pattern = _META_CHARSET if kind == b"text/html" else (
                _CSS_CHARSET if kind == b"text/css" else None
            )
            match = pattern.search(content[:4096]) if pattern is not None else None
            if match:
                declared = _charset_of(b"x; charset=" + match.group(1))
        if declared in ("gb2312", "gbk"):
            declared = "gb18030"  # (a superset, as mitmproxy and browsers read them)
        return declared or "utf-8"

    def json(self, **kwargs: Any) -> Any:
        """
        The decoded body parsed as JSON (C{json.loads(content, **kwargs)}).

        @raise ValueError: There is no body, or it is not JSON.
        """
        content = self.get_content()
        if content is None:
            raise ValueError("no content")
        return _json.loads(content, **kwargs)

    def get_text(self, strict: bool = True) -> str | None:
        """
        The decoded body as str, using the Content-Type charset (default
        UTF-8, errors="surrogateescape").  If ``strict`` is false, decoding
        problems fall back to the raw body / UTF-8 instead of raising.
        """
        content = self.get_content(strict)
        if content is None:
            return None
        try:
            return content.decode(self._charset(content), _SE)
        except UnicodeDecodeError:
            if strict:
                raise
            return content.decode("utf-8", _SE)

    def set_text(self, text: str | None) -> None:
        """
        Set the body from str, encoded with the Content-Type charset (default
        UTF-8).  If the charset cannot represent ``text``, UTF-8 is used and
        the Content-Type charset is updated.
        """
        if text is None:
            self.set_content(None)
            return
        try:
            # (The charset get_text used, a sniffed <meta> one included.)
            data = text.encode(self._charset(self.get_content(strict=False)), _SE)
        except UnicodeEncodeError:
            ct = self.headers.get("content-type") or "text/plain"
            params = [
                p for p in ct.split(";")[1:] if p.partition("=")[0].strip().lower() != "charset"
            ]
            self.headers["content-type"] = "; ".join(
                [ct.split(";")[0].strip(), *(p.strip() for p in params), "charset=utf-8"]
            )
            data = text.encode("utf-8", _SE)
        self.set_content(data)

    @property
    def text(self) -> str | None:
        """The body as str (see :meth:`get_text`); assigning encodes with the message charset."""
        return self.get_text(True)

    @text.setter
    def text(self, value: str | None) -> None:
        self.set_text(value)

    def decode(self, strict: bool = True) -> None:
        """Decode the body and remove the Content-Encoding header (Content-Length is updated)."""
        decoded = self.get_content(strict)
        if b"content-encoding" in self.headers:
            del self.headers[b"content-encoding"]
        self.set_content(decoded)

    def encode(self, encoding: str) -> None:
        """
        Encode the body with ``encoding`` ("gzip", "deflate", "br", "zstd",
        "identity") and set Content-Encoding.  As in mitmproxy the current
        raw body is encoded as-is (call :meth:`decode` first if it is already
        encoded).  Raises ValueError for an unknown encoding, changing nothing.
        """
        raw = self._raw_content
        encoded = _encoding.encode(raw if raw is not None else b"", encoding)
        self.headers[b"content-encoding"] = _b(encoding)
        if raw is not None:
            self._raw_content = encoded
            self._cache = (encoded, _b(encoding), raw)
            self._fix_length(len(encoded))

    def replace(self, pattern: ReplacePattern, repl: str | bytes, flags: int = 0, count: int = 0) -> int:
        """
        Replace a regular expression in the body (content-decoded first and
        encoded again after) and in each header line (``name: value``), as
        mitmproxy 2.x's ``Message.replace``.

        :param pattern: A bytes regular expression; a str is first unescaped
            to bytes as a Python bytes literal would be (``r"\\x00"`` is a NUL
            byte, see ``interceptor.utils.strutils.escaped_str_to_bytes``).
        :param repl: The replacement (``re.sub``'s; a str is unescaped the same way).
        :param count: At most this many replacements in the body, and as
            many in the headers (0: all).
        :return: How many replacements were made.
        :raises ValueError: A str pattern or replacement has a bad escape, or
            the body cannot be decoded.
        """
        compiled, replacement = _compile_replacement(pattern, repl, flags)
        made = 0
        content = self.get_content(True)
        if content:
            content, made = compiled.subn(replacement, content, count=count)
            if made:
                self.set_content(content)
        return made + _replace_in_headers(self.headers, compiled, replacement, count)



def _compile_replacement(
    pattern: ReplacePattern, repl: str | bytes, flags: int
) -> tuple[re.Pattern[bytes], bytes]:
    """The pattern compiled and the replacement as bytes, for :meth:`Message.replace`."""
    if isinstance(pattern, re.Pattern):
        compiled = pattern if not flags else re.compile(pattern.pattern, pattern.flags | flags)
    else:
        compiled = re.compile(_as_escaped_bytes(pattern, "pattern"), flags)
    return compiled, _as_escaped_bytes(repl, "repl")


def _as_escaped_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return escaped_str_to_bytes(value)
        except ValueError as e:
            raise ValueError(f"replace: bad {what} {value!r}: {e}") from e
    raise TypeError(f"replace: {what} must be str or bytes, not {type(value).__name__}")


def _replace_in_headers(headers: Headers, compiled: re.Pattern[bytes], repl: bytes, count: int) -> int:
    """
    Replace in each ``name: value`` line of ``headers``; a line whose
    ``": "`` the replacement removed stays as it was (and is not counted).
    """
    made = 0
    fields = []
    for name, value in headers.fields:
        left = count - made if count else 0
        if count and not left:
            fields.append((name, value))
            continue
        line, n = compiled.subn(repl, name + b": " + value, count=left)
        new_name, colon, new_value = line.partition(b": ")
        if n and colon:
            made += n
            name, value = new_name, new_value
        fields.append((name, value))
    if made:
        headers.fields = fields
    return made


def _reason_phrase(status_code: int) -> str:
    try:
        return _stdlib_http.HTTPStatus(status_code).phrase
    except ValueError:
        return ""
