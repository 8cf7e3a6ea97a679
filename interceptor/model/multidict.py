# -*- test-case-name: tests.test_http -*-
"""
:class:`MultiDictView`, the multi-valued mapping view behind ``query``,
``cookies`` and the forms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, Generic, TypeVar

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
