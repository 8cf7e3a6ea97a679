# -*- test-case-name: tests.test_http -*-
"""
Header fields: :class:`Headers` and the str/bytes coercions (``_b``, ``_s``)
the model uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import TypeVar, overload

_SE = "surrogateescape"
_T = TypeVar("_T")


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
        # (The proxy looks up about a dozen fields per exchange: the index
        # check and the bytes key are inlined here.)
        idx = self._index
        fields = self._fields
        if idx is None or self._ilen != len(fields) or (fields and fields[-1] is not self._ilast):
            idx = self._idx()
        pos = idx.get((key if key.__class__ is bytes else _b(key)).lower())
        if pos is None:
            return None
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

    # (Mutable, so unhashable; typeshed declares __hash__ a method.)
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        """``Headers([(b'Host', b'example.com'), ...])``."""
        return f"Headers({self._fields!r})"

    def __bytes__(self) -> bytes:
        """Same as :meth:`to_bytes`."""
        return self.to_bytes()

    # -- mitmproxy-style API -------------------------------------------------------

    @overload
    def get(self, key: str, default: None = None) -> str | None: ...

    @overload
    def get(self, key: str, default: str | _T) -> str | _T: ...

    @overload
    def get(self, key: bytes, default: None = None) -> bytes | None: ...

    @overload
    def get(self, key: bytes, default: bytes | _T) -> bytes | _T: ...

    def get(self, key: str | bytes, default: object = None) -> object:
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

    # items/keys/values: lists with a multi flag, as mitmproxy's (not Mapping's views).
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


HeadersLike = (
    Headers
    | Mapping[str, str | bytes]
    | Mapping[bytes, str | bytes]
    | Iterable[tuple[str | bytes, str | bytes]]
    | None
)
"""What ``Request.make``/``Response.make`` accept as ``headers``."""


def _make_headers(headers: HeadersLike) -> Headers:
    """Build a Headers from the loose forms accepted by ``make()``."""
    if headers is None:
        return Headers()
    if isinstance(headers, Headers):
        return headers
    items = headers.items() if isinstance(headers, Mapping) else headers
    return Headers([(_b(k), _b(v)) for k, v in items])
