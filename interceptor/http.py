# -*- test-case-name: tests.test_http -*-
"""
The HTTP flow model: :class:`Headers`, :class:`Request` and :class:`Response`.

The names follow mitmproxy's ``mitmproxy.http`` module so addon authors feel at
home.  The objects sit on the proxy's hot path, so constructors store what the
wire parser hands over as-is (the header list is kept by reference, bodies are
not copied) and everything derived (case-insensitive header index, decoded
body, parsed query/cookies) is computed lazily on first use.

Conventions:

* Header names and values are stored as ``bytes``.  Accessing a header with a
  ``str`` key returns ``str``, with a ``bytes`` key returns ``bytes``.  The
  str/bytes conversion is UTF-8 with ``surrogateescape``, which round-trips
  arbitrary bytes.
* ``raw_content`` is the body as on the wire (after transfer-decoding, still
  content-encoded); ``content`` is the body with Content-Encoding removed.
  Assigning ``content`` re-encodes transparently and fixes Content-Length.
* Headers added by this module use lowercase names (HTTP/2-compatible, as in
  mitmproxy); existing headers keep the case they arrived with.

Usage::

    >>> from interceptor.http import Headers, Request, Response
    >>> req = Request.make("GET", "https://example.com/search?q=cats",
    ...                    headers={"Host": "example.com"})
    >>> req.query["q"]
    'cats'
    >>> req.query["q"] = "dogs"
    >>> req.path
    '/search?q=dogs'
    >>> req.url = "http://example.org:8080/"
    >>> req.headers["Host"]
    'example.org:8080'
    >>> resp = Response.make(200, "hello", {"Content-Type": "text/plain"})
    >>> resp.headers["content-length"], resp.text
    ('5', 'hello')
"""

from __future__ import annotations

import codecs
import email.parser
import email.policy
import http as _stdlib_http
import json as _json
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, Generic, TypeVar, overload

from interceptor import encoding as _encoding

__all__ = [
    "Headers",
    "MultiDictView",
    "Message",
    "Request",
    "Response",
    "HeadersLike",
    "StreamSetting",
    "CookieAttrs",
    "default_port",
    "hostport",
    "parse_authority",
    "parse_url",
]

_SE = "surrogateescape"

StreamSetting = bool | Callable[[bytes], bytes | Iterable[bytes]]
"""Type of :attr:`Message.stream`."""


def _b(s: str | bytes) -> bytes:
    """Coerce a header name/value to bytes (UTF-8, surrogateescape)."""
    if s.__class__ is bytes:
        return s
    if isinstance(s, str):
        return s.encode("utf-8", _SE)
    if isinstance(s, (bytes, bytearray, memoryview)):
        return bytes(s)
    raise TypeError(f"expected str or bytes, not {type(s).__name__}")


def _s(b: bytes) -> str:
    """Decode header bytes to str (UTF-8, surrogateescape)."""
    return b.decode("utf-8", _SE)


# ---------------------------------------------------------------------------
# Headers
# ---------------------------------------------------------------------------


class Headers(MutableMapping[str, str]):
    """
    HTTP header fields: ordered, multi-valued, case-insensitive lookup,
    case-preserving storage.

    ``fields`` is the list of ``(name, value)`` byte pairs exactly as received
    (order and name case kept).  The list handed to the constructor is kept by
    reference.  Lookups with a ``str`` key return ``str``; with a ``bytes`` key
    they return ``bytes``.  Several fields with the same name are joined with
    ``", "`` by ``[]``/``get``; use :meth:`get_all` to see them separately.

    A lowercase-name index is built on the first lookup.  All methods keep it
    up to date; edits of ``fields`` that change its length or its last field
    are detected; if you replace another element of ``fields`` in place by one
    with a different name, reassign ``headers.fields = headers.fields``
    afterwards.
    """

    __slots__ = ("_fields", "_index", "_ilen", "_ilast")

    def __init__(self, fields: list[tuple[bytes, bytes]] | None = None, **kwargs: str) -> None:
        """
        Wrap ``fields`` (kept by reference, not copied).  Keyword arguments
        are appended as extra fields, underscores in names becoming dashes:
        ``Headers(content_type="text/html")``.
        """
        if fields is None:
            fields = []
        elif fields.__class__ is not list:
            fields = list(fields)
        if kwargs:
            for name, value in kwargs.items():
                fields.append((_b(name.replace("_", "-")), _b(value)))
        self._fields = fields
        self._index: dict[bytes, list[int]] | None = None
        self._ilen = 0
        self._ilast: tuple[bytes, bytes] | None = None

    # -- internals --------------------------------------------------------

    def _idx(self) -> dict[bytes, list[int]]:
        """Return the lowercase-name -> field positions index, (re)building it if needed."""
        idx = self._index
        fields = self._fields
        # A changed length or last field means ``fields`` was edited directly
        # (a deletion, an append, or both).
        if idx is None or self._ilen != len(fields) or (fields and fields[-1] is not self._ilast):
            idx = {}
            i = 0
            for name, _ in fields:
                key = name.lower()
                pos = idx.get(key)
                if pos is None:
                    idx[key] = [i]
                else:
                    pos.append(i)
                i += 1
            self._index = idx
            self._ilen = i
            self._ilast = fields[-1] if fields else None
        return idx

    def _raw(self, key: str | bytes) -> bytes | None:
        """Joined bytes value for ``key`` or None."""
        pos = self._idx().get(_b(key).lower())
        if pos is None:
            return None
        fields = self._fields
        if len(pos) == 1:
            return fields[pos[0]][1]
        return b", ".join([fields[i][1] for i in pos])

    # -- fields ---------------------------------------------------------------

    @property
    def fields(self) -> list[tuple[bytes, bytes]]:
        """The underlying list of ``(name, value)`` byte pairs (live, not a copy)."""
        return self._fields

    @fields.setter
    def fields(self, value: Iterable[tuple[bytes, bytes]]) -> None:
        self._fields = value if value.__class__ is list else list(value)
        self._index = None

    # -- mapping protocol -----------------------------------------------------

    @overload
    def __getitem__(self, key: str) -> str: ...

    @overload
    def __getitem__(self, key: bytes) -> bytes: ...

    def __getitem__(self, key: str | bytes) -> str | bytes:
        """Return the (joined) value of ``key``; raise KeyError if absent."""
        value = self._raw(key)
        if value is None:
            raise KeyError(key)
        return value if key.__class__ is bytes else _s(value)

    def __setitem__(self, key: str | bytes, value: str | bytes) -> None:
        """
        Replace all fields named ``key`` with a single one at the position of
        the first occurrence (keeping that field's name case), or append a new
        field if there is none.
        """
        kb = _b(key)
        vb = _b(value)
        lk = kb.lower()
        idx = self._idx()
        fields = self._fields
        pos = idx.get(lk)
        if pos is None:
            fields.append((kb, vb))
            idx[lk] = [len(fields) - 1]
            self._ilen = len(fields)
            self._ilast = fields[-1]
        elif len(pos) == 1:
            i = pos[0]
            fields[i] = (fields[i][0], vb)
            if i == len(fields) - 1:
                self._ilast = fields[i]
        else:
            i = pos[0]
            fields[i] = (fields[i][0], vb)
            for i in reversed(pos[1:]):
                del fields[i]
            self._index = None

    def __delitem__(self, key: str | bytes) -> None:
        """Remove all fields named ``key``; raise KeyError if there is none."""
        pos = self._idx().get(_b(key).lower())
        if pos is None:
            raise KeyError(key)
        fields = self._fields
        for i in reversed(pos):
            del fields[i]
        self._index = None

    def __contains__(self, key: object) -> bool:
        """Whether a field named ``key`` (str or bytes, any case) exists."""
        if not isinstance(key, (str, bytes)):
            return False
        return _b(key).lower() in self._idx()

    def __len__(self) -> int:
        """Number of distinct header names (as mitmproxy counts)."""
        return len(self._idx())

    def __bool__(self) -> bool:
        """True if there is at least one field."""
        return bool(self._fields)

    def __iter__(self) -> Iterator[str]:
        """Iterate over distinct names as str, first-seen order, original case."""
        fields = self._fields
        return iter([_s(fields[pos[0]][0]) for pos in self._idx().values()])

    def __eq__(self, other: object) -> bool:
        """Equal if the fields match in order (names compared case-insensitively)."""
        if not isinstance(other, Headers):
            return NotImplemented
        a = self._fields
        b = other._fields
        if len(a) != len(b):
            return False
        for (n1, v1), (n2, v2) in zip(a, b, strict=True):
            if v1 != v2 or n1.lower() != n2.lower():
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        """``Headers([(b'Host', b'example.com'), ...])``."""
        return f"Headers({self._fields!r})"

    def __bytes__(self) -> bytes:
        """Same as :meth:`to_bytes`."""
        return self.to_bytes()

    # -- mitmproxy-style API -------------------------------------------------------

    @overload
    def get(self, key: str, default: Any = None) -> Any: ...

    @overload
    def get(self, key: bytes, default: Any = None) -> Any: ...

    def get(self, key: str | bytes, default: Any = None) -> Any:
        """Return the (joined) value of ``key`` (str or bytes like the key), or ``default``."""
        value = self._raw(key)
        if value is None:
            return default
        return value if key.__class__ is bytes else _s(value)

    @overload
    def get_all(self, key: str) -> list[str]: ...

    @overload
    def get_all(self, key: bytes) -> list[bytes]: ...

    def get_all(self, key: str | bytes) -> list[str] | list[bytes]:
        """All values of ``key`` in order (``list[bytes]`` for a bytes key); ``[]`` if absent."""
        pos = self._idx().get(_b(key).lower())
        if pos is None:
            return []
        fields = self._fields
        if key.__class__ is bytes:
            return [fields[i][1] for i in pos]
        return [_s(fields[i][1]) for i in pos]

    def set_all(self, key: str | bytes, values: Iterable[str | bytes]) -> None:
        """
        Set the values of ``key``: existing fields are reused in order (keeping
        their position and name case), surplus ones removed and extra values
        appended at the end (as mitmproxy does).
        """
        kb = _b(key)
        vals = [_b(v) for v in values]
        fields = self._fields
        pos = self._idx().get(kb.lower())
        if pos is None:
            if vals:
                fields.extend([(kb, v) for v in vals])
                self._index = None
            return
        name = fields[pos[0]][0]
        n = min(len(pos), len(vals))
        for j in range(n):
            i = pos[j]
            fields[i] = (fields[i][0], vals[j])
        for i in reversed(pos[n:]):
            del fields[i]
        if len(vals) > n:
            fields.extend([(name, v) for v in vals[n:]])
        self._index = None

    def add(self, key: str | bytes, value: str | bytes) -> None:
        """Append a field (even if one with that name already exists)."""
        kb = _b(key)
        fields = self._fields
        fields.append((kb, _b(value)))
        idx = self._index
        if idx is not None and self._ilen == len(fields) - 1:
            lk = kb.lower()
            pos = idx.get(lk)
            if pos is None:
                idx[lk] = [len(fields) - 1]
            else:
                pos.append(len(fields) - 1)
            self._ilen = len(fields)
            self._ilast = fields[-1]

    def insert(self, index: int, key: str | bytes, value: str | bytes) -> None:
        """Insert a field at position ``index`` of ``fields``."""
        self._fields.insert(index, (_b(key), _b(value)))
        self._index = None

    def items(self, multi: bool = False) -> list[tuple[str, str]]:  # type: ignore[override]
        """
        ``(name, value)`` str pairs: one per distinct name with joined values,
        or with ``multi=True`` one per field.
        """
        fields = self._fields
        if multi:
            return [(_s(n), _s(v)) for n, v in fields]
        out = []
        for pos in self._idx().values():
            if len(pos) == 1:
                n, v = fields[pos[0]]
            else:
                n = fields[pos[0]][0]
                v = b", ".join([fields[i][1] for i in pos])
            out.append((_s(n), _s(v)))
        return out

    def keys(self, multi: bool = False) -> list[str]:  # type: ignore[override]
        """Distinct names (first-seen order, original case); every field's name if ``multi``."""
        if multi:
            return [_s(n) for n, _ in self._fields]
        return list(self)

    def values(self, multi: bool = False) -> list[str]:  # type: ignore[override]
        """Joined value per distinct name, or every field's value with ``multi=True``."""
        return [v for _, v in self.items(multi)]

    def clear(self) -> None:
        """Remove all fields."""
        self._fields.clear()
        self._index = None

    def copy(self) -> Headers:
        """A copy with its own field list."""
        return Headers(list(self._fields))

    __copy__ = copy

    def to_bytes(self) -> bytes:
        """Serialize as HTTP/1 lines ``b"Name: value\\r\\n"``, in order (no final blank line)."""
        parts = [b": ".join(f) for f in self._fields]
        parts.append(b"")
        return b"\r\n".join(parts)


HeadersLike = Headers | Mapping[Any, Any] | Iterable[tuple[str | bytes, str | bytes]] | None
"""What ``Request.make``/``Response.make`` accept as ``headers``."""


def _make_headers(headers: HeadersLike) -> Headers:
    """Build a Headers from the loose forms accepted by ``make()``."""
    if headers is None:
        return Headers()
    if isinstance(headers, Headers):
        return headers
    items = headers.items() if isinstance(headers, Mapping) else headers
    return Headers([(_b(k), _b(v)) for k, v in items])


# ---------------------------------------------------------------------------
# MultiDictView
# ---------------------------------------------------------------------------

_V = TypeVar("_V")


def _pairs(value: Any) -> list[tuple[str, Any]]:
    """Normalize a MultiDictView, mapping or iterable of pairs to a list of pairs."""
    if isinstance(value, MultiDictView):
        return list(value.fields)
    if isinstance(value, Mapping):
        return list(value.items())
    return [tuple(p) for p in value]


class MultiDictView(MutableMapping[str, _V], Generic[_V]):
    """
    A mutable, multi-valued, case-sensitive mapping view over a list of
    ``(key, value)`` pairs that lives elsewhere (a query string, a Cookie
    header, a form body...).

    Every read calls ``getter()``; every modification builds the new list and
    hands it to ``setter(pairs)``, so changes go straight back into the
    underlying message.  ``view[k]`` returns the first value.
    """

    __slots__ = ("_getter", "_setter")

    def __init__(
        self,
        getter: Callable[[], list[tuple[str, _V]]],
        setter: Callable[[list[tuple[str, _V]]], None],
    ) -> None:
        """Create a view reading pairs from ``getter`` and writing them with ``setter``."""
        self._getter = getter
        self._setter = setter

    @property
    def fields(self) -> tuple[tuple[str, _V], ...]:
        """All ``(key, value)`` pairs in order (a snapshot)."""
        return tuple(self._getter())

    @fields.setter
    def fields(self, value: Iterable[tuple[str, _V]]) -> None:
        self._setter(_pairs(value))

    def __getitem__(self, key: str) -> _V:
        """First value for ``key``; KeyError if absent."""
        for k, v in self._getter():
            if k == key:
                return v
        raise KeyError(key)

    def __setitem__(self, key: str, value: _V) -> None:
        """Replace all values of ``key`` with ``value`` (position of the first kept)."""
        self.set_all(key, [value])

    def __delitem__(self, key: str) -> None:
        """Remove all pairs with ``key``; KeyError if absent."""
        pairs = self._getter()
        new = [p for p in pairs if p[0] != key]
        if len(new) == len(pairs):
            raise KeyError(key)
        self._setter(new)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is present."""
        return any(k == key for k, _ in self._getter())

    def __iter__(self) -> Iterator[str]:
        """Distinct keys in first-seen order."""
        return iter(dict.fromkeys(k for k, _ in self._getter()))

    def __len__(self) -> int:
        """Number of distinct keys."""
        return len({k for k, _ in self._getter()})

    def __repr__(self) -> str:
        """``MultiDictView[('a', '1'), ...]``."""
        return "MultiDictView[{}]".format(", ".join(repr(p) for p in self._getter()))

    def get_all(self, key: str) -> list[_V]:
        """All values for ``key`` in order."""
        return [v for k, v in self._getter() if k == key]

    def set_all(self, key: str, values: Iterable[_V]) -> None:
        """Set the values of ``key``: positions reused, surplus removed, extras appended."""
        vals = list(values)
        new: list[tuple[str, _V]] = []
        i = 0
        for k, v in self._getter():
            if k == key:
                if i < len(vals):
                    new.append((k, vals[i]))
                    i += 1
            else:
                new.append((k, v))
        new.extend((key, v) for v in vals[i:])
        self._setter(new)

    def add(self, key: str, value: _V) -> None:
        """Append a pair."""
        pairs = list(self._getter())
        pairs.append((key, value))
        self._setter(pairs)

    def insert(self, index: int, key: str, value: _V) -> None:
        """Insert a pair at ``index``."""
        pairs = list(self._getter())
        pairs.insert(index, (key, value))
        self._setter(pairs)

    def items(self, multi: bool = False) -> list[tuple[str, _V]]:  # type: ignore[override]
        """``(key, first value)`` per distinct key, or every pair with ``multi=True``."""
        pairs = self._getter()
        if multi:
            return list(pairs)
        first: dict[str, _V] = {}
        for k, v in pairs:
            if k not in first:
                first[k] = v
        return list(first.items())

    def keys(self, multi: bool = False) -> list[str]:  # type: ignore[override]
        """Distinct keys, or every pair's key with ``multi=True``."""
        return [k for k, _ in self.items(multi)]

    def values(self, multi: bool = False) -> list[_V]:  # type: ignore[override]
        """First value per distinct key, or every value with ``multi=True``."""
        return [v for _, v in self.items(multi)]

    def clear(self) -> None:
        """Remove all pairs."""
        self._setter([])


# ---------------------------------------------------------------------------
# URL helpers
# ---------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def default_port(scheme: str) -> int | None:
    """Default port for ``scheme`` (http/ws 80, https/wss 443) or None."""
    return _DEFAULT_PORTS.get(scheme.lower())


def hostport(scheme: str, host: str, port: int, always_port: bool = False) -> str:
    """
    ``host[:port]`` for URLs and Host headers: IPv6 bracketed, the scheme's
    default port omitted unless ``always_port``.
    """
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if not always_port and _DEFAULT_PORTS.get(scheme.lower()) == port:
        return host
    return f"{host}:{port}"


def parse_authority(authority: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 bracketed) into ``(host, port or None)``; never raises."""
    if authority.startswith("["):
        end = authority.find("]")
        if end == -1:
            return authority, None
        rest = authority[end + 1 :]
        port = rest[1:]
        if rest[:1] == ":" and port.isascii() and port.isdigit():
            return authority[1:end], int(port)
        return authority[1:end], None
    host, sep, port = authority.rpartition(":")
    if sep and ":" not in host:
        if port.isascii() and port.isdigit():
            return host, int(port)
        if not port:
            return host, None
    return authority, None


def parse_url(url: str) -> tuple[str, str, int, str]:
    """
    Split an absolute URL into ``(scheme, host, port, path)``.  The host is
    lowercased and unbracketed, the port defaults by scheme, the path includes
    the query and defaults to ``"/"``; the fragment is dropped.  Raises
    ValueError for URLs without scheme/host or with an invalid port.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"Invalid URL {url!r}: {e}") from e
    scheme = parts.scheme
    host = parts.hostname
    if not scheme or not host:
        raise ValueError(f"Invalid URL {url!r}: scheme and host are required")
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
        if port is None:
            raise ValueError(
                f"Invalid URL {url!r}: no port and no default port for scheme {scheme!r}"
            )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port, path


def _qs_decode(qs: str) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(qs, keep_blank_values=True, errors=_SE)


def _qs_encode(pairs: Iterable[tuple[str, str]], similar_to: str = "") -> str:
    """urlencode ``pairs``; empty values stay bare if ``similar_to`` had bare keys."""
    encoded = urllib.parse.urlencode(list(pairs), False, errors=_SE)
    if encoded and similar_to and any("=" not in p for p in similar_to.split("&")):
        encoded = encoded.replace("=&", "&")
        if encoded.endswith("="):
            encoded = encoded[:-1]
    return encoded


def _split_path(path: str) -> tuple[str, str, str]:
    """Split a request path into ``(path, query, "#fragment" or "")``."""
    base, sep, rest = path.partition("?")
    if sep:
        query, hsep, frag = rest.partition("#")
    else:
        base, hsep, frag = base.partition("#")
        query = ""
    return base, query, (hsep + frag)


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------


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
        self._cache: tuple[bytes, bytes, bytes] | None = None
        self.trailers = None
        self.timestamp_start = timestamp_start
        self.timestamp_end = timestamp_end
        self.stream = False

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
        """
        raw = self._raw_content
        if raw is None:
            return None
        ce = self.headers.get(b"content-encoding")
        if not ce:
            return raw
        cache = self._cache
        if cache is not None and cache[0] is raw and cache[1] == ce:
            return cache[2]
        try:
            decoded = _encoding.decode(raw, ce.decode("latin-1"))
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


# ---------------------------------------------------------------------------
# Request
# ---------------------------------------------------------------------------


class Request(Message):
    """
    An HTTP request.

    ``host``/``port`` are the connection target (which may differ from the
    Host header, e.g. in transparent mode); ``authority`` is the
    absolute-form/``:authority`` target ("" for origin-form HTTP/1 requests).
    """

    __slots__ = ("method", "scheme", "_host", "_port", "path", "authority")

    method: str
    """Request method, e.g. ``"GET"``."""
    scheme: str
    """``"http"`` or ``"https"`` (lowercase)."""
    path: str
    """Request target path including the query string, e.g. ``"/a?b=c"``."""
    authority: str
    """Authority from an absolute-form target or HTTP/2 ``:authority``; "" if none."""

    def __init__(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int,
        path: str,
        http_version: str,
        headers: Headers,
        content: bytes | None = b"",
        authority: str = "",
        timestamp_start: float | None = None,
        timestamp_end: float | None = None,
    ) -> None:
        """Store the fields as given (``headers`` by reference, ``content`` as the raw body)."""
        Message.__init__(self, http_version, headers, content, timestamp_start, timestamp_end)
        self.method = method
        self.scheme = scheme
        self._host = host
        self._port = port
        self.path = path
        self.authority = authority

    def __repr__(self) -> str:
        """``Request(GET example.com:443/path)``."""
        hp = (
            hostport(self.scheme, self._host, self._port, True)
            if self._host and self._port
            else ""
        )
        return f"Request({self.method} {hp}{self.path})"

    @classmethod
    def make(
        cls,
        method: str,
        url: str,
        content: bytes | str = b"",
        headers: HeadersLike = None,
    ) -> Request:
        """
        Build an HTTP/1.1 request for ``url``.  ``headers`` may be a Headers
        (used as-is), a dict or a list of pairs (str or bytes).  str content is
        encoded with the Content-Type charset (default UTF-8); a non-empty body
        gets a Content-Length.  No Host header is added (as in mitmproxy); an
        existing one is updated to match ``url``.
        """
        t = time.time()
        req = cls(method, "", "", 0, "/", "HTTP/1.1", _make_headers(headers), b"", "", t, t)
        req.url = url
        if isinstance(content, bytes):
            req.content = content
        elif isinstance(content, str):
            req.text = content
        else:
            raise TypeError(f"content must be bytes or str, not {type(content).__name__}")
        return req

    # -- target -----------------------------------------------------------------

    def _update_host_and_authority(self) -> None:
        hp = hostport(self.scheme, self._host, self._port, self.method == "CONNECT")
        h = self.headers
        if b"host" in h:
            h[b"host"] = _b(hp)
        if self.authority:
            self.authority = hp

    @property
    def host(self) -> str:
        """
        Target host (no brackets for IPv6).  Setting it also updates the Host
        header (if present) and ``authority`` (if non-empty), keeping a
        non-default port.
        """
        return self._host

    @host.setter
    def host(self, value: str) -> None:
        if isinstance(value, bytes):
            value = value.decode("idna")
        self._host = value
        self._update_host_and_authority()

    @property
    def port(self) -> int:
        """
        Target port.  Setting it also updates the Host header (if present)
        and ``authority`` (if non-empty).
        """
        return self._port

    @port.setter
    def port(self, value: int) -> None:
        if not isinstance(value, int) or not 0 <= value <= 65535:
            raise ValueError(f"Invalid port: {value!r}")
        self._port = value
        self._update_host_and_authority()

    @property
    def first_line_format(self) -> str:
        """``"authority"`` (CONNECT), ``"absolute"`` (authority set) or ``"relative"``."""
        if self.method == "CONNECT":
            return "authority"
        if self.authority:
            return "absolute"
        return "relative"

    @property
    def url(self) -> str:
        """
        ``scheme://host[:port]path`` (default port omitted, IPv6 bracketed;
        ``host:port`` for CONNECT).  Setting it re-targets scheme, host, port
        and path, updating the Host header/authority as the host setter does.
        """
        if self.method == "CONNECT":
            return hostport(self.scheme, self._host, self._port, True)
        return f"{self.scheme}://{hostport(self.scheme, self._host, self._port)}{self.path}"

    @url.setter
    def url(self, value: str) -> None:
        self.scheme, self._host, self._port, self.path = parse_url(value)
        self._update_host_and_authority()

    @property
    def host_header(self) -> str | None:
        """
        The Host header (for HTTP/2 and 3: ``authority``, falling back to
        Host); None if absent.  Setting None removes it.
        """
        if self.is_http2 or self.is_http3:
            return self.authority or self.headers.get("host")
        return self.headers.get("host")

    @host_header.setter
    def host_header(self, value: str | None) -> None:
        h2 = self.is_http2 or self.is_http3
        if value is None:
            if h2:
                self.authority = ""
            if b"host" in self.headers:
                del self.headers[b"host"]
        else:
            if h2:
                self.authority = value
            if not h2 or b"host" in self.headers:
                self.headers[b"host"] = _b(value)

    @property
    def pretty_host(self) -> str:
        """
        The host from the Host header (or HTTP/2 authority) if present, else
        ``host``.  Client-controlled: do not trust it for security decisions.
        """
        hh = self.host_header
        if hh:
            return parse_authority(hh)[0]
        return self._host

    @property
    def pretty_url(self) -> str:
        """Like ``url`` but built from ``pretty_host`` (and the Host header's port)."""
        if self.method == "CONNECT":
            return self.authority or self.url
        hh = self.host_header
        if not hh:
            return self.url
        host, port = parse_authority(hh)
        if port is None:
            port = default_port(self.scheme) or self._port
        return f"{self.scheme}://{hostport(self.scheme, host, port)}{self.path}"

    # -- query / path -------------------------------------------------------------

    def _get_query(self) -> list[tuple[str, str]]:
        query = _split_path(self.path)[1]
        return _qs_decode(query) if query else []

    def _set_query(self, pairs: list[tuple[str, str]]) -> None:
        base, old, frag = _split_path(self.path)
        query = _qs_encode(pairs, old)
        self.path = f"{base}?{query}{frag}" if query else base + frag

    @property
    def query(self) -> MultiDictView[str]:
        """The query string as a MultiDictView; modifications rewrite ``path``."""
        return MultiDictView(self._get_query, self._set_query)

    @query.setter
    def query(self, value: Iterable[tuple[str, str]] | Mapping[str, str]) -> None:
        self._set_query(_pairs(value))

    @property
    def path_components(self) -> tuple[str, ...]:
        """The non-empty, percent-decoded segments of the path (without query).  Settable."""
        base = _split_path(self.path)[0]
        return tuple(urllib.parse.unquote(c, errors=_SE) for c in base.split("/") if c)

    @path_components.setter
    def path_components(self, components: Iterable[str]) -> None:
        _, query, frag = _split_path(self.path)
        path = "/" + "/".join(urllib.parse.quote(c, safe="", errors=_SE) for c in components)
        self.path = f"{path}?{query}{frag}" if query else path + frag

    # -- cookies ----------------------------------------------------------------

    def _get_cookies(self) -> list[tuple[str, str]]:
        out = []
        for line in self.headers.get_all("cookie"):
            for name, value in _cookie_pairs(line):
                if name or value:
                    out.append((name, value or ""))
        return out

    def _set_cookies(self, pairs: list[tuple[str, str]]) -> None:
        if pairs:
            self.headers["cookie"] = "; ".join(
                f"{k}={_cookie_value(v)}" if k else _cookie_value(v) for k, v in pairs
            )
        elif b"cookie" in self.headers:
            del self.headers[b"cookie"]

    @property
    def cookies(self) -> MultiDictView[str]:
        """The Cookie header(s) as a MultiDictView; changes rewrite one Cookie header."""
        return MultiDictView(self._get_cookies, self._set_cookies)

    @cookies.setter
    def cookies(self, value: Iterable[tuple[str, str]] | Mapping[str, str]) -> None:
        self._set_cookies(_pairs(value))

    # -- forms ------------------------------------------------------------------

    def _is_urlencoded(self) -> bool:
        ct = self.headers.get(b"content-type")
        return ct is not None and ct.strip().lower().startswith(
            b"application/x-www-form-urlencoded"
        )

    def _get_urlencoded_form(self) -> list[tuple[str, str]]:
        if not self._is_urlencoded():
            return []
        text = self.get_text(strict=False)
        return _qs_decode(text) if text else []

    def _set_urlencoded_form(self, pairs: list[tuple[str, str]]) -> None:
        old = ""
        if self._is_urlencoded():
            old = self.get_text(strict=False) or ""
        else:
            self.headers["content-type"] = "application/x-www-form-urlencoded"
        self.set_content(_qs_encode(pairs, old).encode("ascii"))

    def _get_multipart_form(self) -> list[tuple[bytes, bytes]]:
        content_type = self.headers.get(b"content-type") or b""
        if not content_type.lower().startswith(b"multipart/form-data"):
            return []
        content = self.get_content(strict=False) or b""
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type + b"\r\n\r\n" + content
        )
        if not message.is_multipart():
            return []
        pairs = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name is not None:
                pairs.append((str(name).encode("utf-8", _SE), part.get_payload(decode=True) or b""))
        return pairs

    def _set_multipart_form(self, pairs: list[tuple[bytes, bytes]]) -> None:
        boundary = uuid.uuid4().hex
        body = b"".join(
            b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
            % (boundary.encode(), _b(name).replace(b'"', b"%22"), _b(value))
            for name, value in pairs
        ) + b"--%s--\r\n" % boundary.encode()
        self.headers["content-type"] = f"multipart/form-data; boundary={boundary}"
        self.set_content(body)

    @property
    def multipart_form(self) -> MultiDictView[bytes]:
        """
        The multipart/form-data body as a MultiDictView of field name to
        value, bytes (as in mitmproxy; empty for other content types; file
        parts give their content).  Modifications rewrite the body (fields
        only) and set that Content-Type with a new boundary.
        """
        return MultiDictView(self._get_multipart_form, self._set_multipart_form)

    @multipart_form.setter
    def multipart_form(self, value: Iterable[tuple[bytes, bytes]] | Mapping[bytes, bytes]) -> None:
        self._set_multipart_form(_pairs(value))

    @property
    def urlencoded_form(self) -> MultiDictView[str]:
        """
        The application/x-www-form-urlencoded body as a MultiDictView (empty
        for other content types).  Modifications rewrite the body and set
        that Content-Type.
        """
        return MultiDictView(self._get_urlencoded_form, self._set_urlencoded_form)

    @urlencoded_form.setter
    def urlencoded_form(self, value: Iterable[tuple[str, str]] | Mapping[str, str]) -> None:
        self._set_urlencoded_form(_pairs(value))


# ---------------------------------------------------------------------------
# Response
# ---------------------------------------------------------------------------

class CookieAttrs(list):
    """
    Set-Cookie attributes as ``(name, value)`` pairs, in order; value None
    for flags like ``Secure``.  Also read and written by attribute name
    (case-insensitive), as mitmproxy's attribute MultiDict is:
    ``attrs["Path"]``, ``attrs.get("domain")``, ``"secure" in attrs``.
    """

    def _find(self, key: str) -> int:
        key = key.lower()
        for i, (name, _) in enumerate(self):
            if name.lower() == key:
                return i
        return -1

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            i = self._find(key)
            if i < 0:
                raise KeyError(key)
            return list.__getitem__(self, i)[1]
        return list.__getitem__(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, str):
            i = self._find(key)
            if i < 0:
                self.append((key, value))
            else:
                list.__setitem__(self, i, (list.__getitem__(self, i)[0], value))
            return
        list.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        if isinstance(key, str):
            i = self._find(key)
            if i < 0:
                raise KeyError(key)
            key = i
        list.__delitem__(self, key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return self._find(key) >= 0
        return list.__contains__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """
        The value of attribute C{key}, or C{default}.
        """
        i = self._find(key)
        return default if i < 0 else list.__getitem__(self, i)[1]

    def pop(self, key: Any = -1, *default: Any) -> Any:
        """
        By name: remove attribute C{key} and return its value (or
        C{default}); by index: remove and return that pair, as a list does.
        """
        if not isinstance(key, str):
            return list.pop(self, key)
        i = self._find(key)
        if i < 0:
            if default:
                return default[0]
            raise KeyError(key)
        return list.pop(self, i)[1]

    def keys(self) -> list[str]:
        """
        The attribute names, in order.
        """
        return [name for name, _ in self]

    def values(self) -> list[str | None]:
        """
        The attribute values, in order.
        """
        return [value for _, value in self]

    def items(self) -> list[tuple[str, str | None]]:
        """
        The ``(name, value)`` pairs, in order.
        """
        return list(self)


def _cookie_pairs(line: str) -> list[tuple[str, str | None]]:
    """
    The ``name=value`` pairs of a Cookie or Set-Cookie line, split at ``;``
    outside double quotes; values as sent (a quoted one keeps its quotes:
    cookies have no escapes and servers see the quotes); value None
    without ``=``.
    """
    pairs: list[tuple[str, str | None]] = []
    i, n = 0, len(line)
    while i < n:
        end = line.find(";", i)
        eq = line.find("=", i)
        if end < 0:
            end = n
        if eq < 0 or eq > end:
            pairs.append((line[i:end].strip(), None))
            i = end + 1
            continue
        name = line[i:eq].strip()
        j = eq + 1
        while j < n and line[j] in " \t":
            j += 1
        if j < n and line[j] == '"':
            close = line.find('"', j + 1)
            end = line.find(";", close + 1 if close >= 0 else n)
            if end < 0:
                end = n
        value = line[j:end].strip()
        pairs.append((name, value))
        i = end + 1
    return pairs


def _cookie_value(value: str) -> str:
    # As given, unless a ';' would split it: then in double quotes (a value
    # read with its quotes is written back as it was).
    if ";" in value and not (len(value) >= 2 and value[0] == value[-1] == '"'):
        return '"' + value + '"'
    return value


def _parse_set_cookie(line: str) -> tuple[str, tuple[str, CookieAttrs]]:
    pairs = _cookie_pairs(line) or [("", None)]
    name, value = pairs[0]
    if value is None:  # RFC 6265bis: a nameless cookie
        name, value = "", name
    attrs = CookieAttrs((k, v) for k, v in pairs[1:] if k or v is not None)
    return name, (value, attrs)


def _format_set_cookie(name: str, value: str, attrs: Iterable[tuple[str, str | None]]) -> str:
    value = _cookie_value(value)
    parts = [f"{name}={value}" if name else value]
    parts.extend(k if v is None else f"{k}={v}" for k, v in attrs)
    return "; ".join(parts)


def _reason_phrase(status_code: int) -> str:
    try:
        return _stdlib_http.HTTPStatus(status_code).phrase
    except ValueError:
        return ""


class Response(Message):
    """An HTTP response."""

    __slots__ = ("status_code", "reason")

    status_code: int
    """Status code, e.g. 200."""
    reason: str
    """Reason phrase, e.g. ``"OK"`` ("" for HTTP/2)."""

    def __init__(
        self,
        http_version: str,
        status_code: int,
        reason: str,
        headers: Headers,
        content: bytes | None,
        timestamp_start: float | None = None,
        timestamp_end: float | None = None,
    ) -> None:
        """Store the fields as given (``headers`` by reference, ``content`` as the raw body)."""
        Message.__init__(self, http_version, headers, content, timestamp_start, timestamp_end)
        self.status_code = status_code
        self.reason = reason

    def __repr__(self) -> str:
        """``Response(200 OK, text/html, 1234 bytes)``."""
        ct = self.headers.get("content-type") or "unknown content type"
        raw = self._raw_content
        size = "no content" if raw is None else f"{len(raw)} bytes"
        return f"Response({self.status_code} {self.reason}, {ct}, {size})"

    @classmethod
    def make(
        cls,
        status_code: int = 200,
        content: bytes | str = b"",
        headers: HeadersLike = None,
    ) -> Response:
        """
        Build an HTTP/1.1 response.  The reason comes from
        :class:`http.HTTPStatus` ("" if unknown); ``headers`` may be a
        Headers (used as-is), a dict or a list of pairs; str content is
        encoded with the Content-Type charset (default UTF-8) and bytes are
        content-encoded if a Content-Encoding header is given.  Content-Length
        is always set to the body length (unless Transfer-Encoding is given);
        both timestamps are set to now.
        """
        t = time.time()
        resp = cls(
            "HTTP/1.1", status_code, _reason_phrase(status_code), _make_headers(headers), b"", t, t
        )
        if isinstance(content, bytes):
            resp.content = content
        elif isinstance(content, str):
            resp.text = content
        else:
            raise TypeError(f"content must be bytes or str, not {type(content).__name__}")
        if b"transfer-encoding" not in resp.headers:
            resp.headers[b"content-length"] = b"%d" % len(resp._raw_content or b"")
        return resp

    def _get_cookies(self) -> list[tuple[str, tuple[str, CookieAttrs]]]:
        return [_parse_set_cookie(line) for line in self.headers.get_all("set-cookie")]

    def _set_cookies(self, pairs: list[tuple[str, tuple[str, CookieAttrs]]]) -> None:
        self.headers.set_all(
            "set-cookie", [_format_set_cookie(name, v[0], v[1]) for name, v in pairs]
        )

    @property
    def cookies(self) -> MultiDictView[tuple[str, CookieAttrs]]:
        """
        The Set-Cookie headers as a MultiDictView mapping cookie name to
        ``(value, attrs)``, attrs being a list of ``(name, value-or-None)``
        pairs.  Modifications rewrite the Set-Cookie headers.
        """
        return MultiDictView(self._get_cookies, self._set_cookies)

    @cookies.setter
    def cookies(
        self,
        value: Iterable[tuple[str, tuple[str, CookieAttrs]]]
        | Mapping[str, tuple[str, CookieAttrs]],
    ) -> None:
        self._set_cookies(_pairs(value))
