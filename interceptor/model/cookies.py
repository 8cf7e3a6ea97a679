# -*- test-case-name: tests.test_http -*-
"""
Cookie and Set-Cookie parsing and formatting: :class:`CookieAttrs` and the
``_cookie_*`` helpers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, Optional, SupportsIndex, TypeVar, overload


_Attr = tuple[str, Optional[str]]
_T = TypeVar("_T")


class CookieAttrs(list[_Attr]):
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

    @overload
    def __getitem__(self, key: str) -> Optional[str]: ...

    @overload
    def __getitem__(self, key: SupportsIndex) -> _Attr: ...

    @overload
    def __getitem__(self, key: slice) -> list[_Attr]: ...

    def __getitem__(
        self, key: str | SupportsIndex | slice
    ) -> Optional[str] | _Attr | list[_Attr]:
        if isinstance(key, str):
            i = self._find(key)
            if i < 0:
                raise KeyError(key)
            return list.__getitem__(self, i)[1]
        return list.__getitem__(self, key)

    @overload
    def __setitem__(self, key: str, value: Optional[str]) -> None: ...

    @overload
    def __setitem__(self, key: SupportsIndex, value: _Attr) -> None: ...

    @overload
    def __setitem__(self, key: slice, value: Iterable[_Attr]) -> None: ...

    def __setitem__(self, key: str | SupportsIndex | slice, value: Any) -> None:
        if isinstance(key, str):
            i = self._find(key)
            if i < 0:
                self.append((key, value))
            else:
                list.__setitem__(self, i, (list.__getitem__(self, i)[0], value))
            return
        list.__setitem__(self, key, value)

    def __delitem__(self, key: str | SupportsIndex | slice) -> None:
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

    @overload
    def get(self, key: str, default: None = None) -> Optional[str]: ...

    @overload
    def get(self, key: str, default: _T) -> Optional[str] | _T: ...

    def get(self, key: str, default: object = None) -> object:
        """
        The value of attribute C{key}, or C{default}.
        """
        i = self._find(key)
        return default if i < 0 else list.__getitem__(self, i)[1]

    @overload
    def pop(self, key: SupportsIndex = -1) -> _Attr: ...

    @overload
    def pop(self, key: str) -> Optional[str]: ...

    @overload
    def pop(self, key: str, default: _T, /) -> Optional[str] | _T: ...

    def pop(self, key: str | SupportsIndex = -1, *default: object) -> object:
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


class SetCookieValue(NamedTuple):
    """
    A Set-Cookie's value and attributes: a C{(value, attrs)} pair, also
    read by name (C{.value}, C{.attrs}) as mitmproxy's response cookies.
    """

    value: str
    attrs: CookieAttrs


def _parse_set_cookie(line: str) -> tuple[str, tuple[str, CookieAttrs]]:
    pairs = _cookie_pairs(line) or [("", None)]
    name, value = pairs[0]
    if value is None:  # RFC 6265bis: a nameless cookie
        name, value = "", name
    attrs = CookieAttrs((k, v) for k, v in pairs[1:] if k or v is not None)
    return name, SetCookieValue(value, attrs)


def _format_set_cookie(name: str, value: str, attrs: Iterable[tuple[str, str | None]]) -> str:
    value = _cookie_value(value)
    parts = [f"{name}={value}" if name else value]
    parts.extend(k if v is None else f"{k}={v}" for k, v in attrs)
    return "; ".join(parts)
