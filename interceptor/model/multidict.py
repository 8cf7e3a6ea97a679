# -*- test-case-name: tests.test_http -*-
"""
:class:`MultiDictView`, the multi-valued mapping view behind ``query``,
``cookies`` and the forms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Generic, TypeVar, cast

_K = TypeVar("_K")
_V = TypeVar("_V")


def _pairs(
    value: MultiDictView[_K, _V] | Mapping[_K, _V] | Iterable[tuple[_K, _V]],
) -> list[tuple[_K, _V]]:
    """Normalize a MultiDictView, mapping or iterable of pairs to a list of pairs."""
    if isinstance(value, MultiDictView):
        return list(value.fields)
    if isinstance(value, Mapping):
        return list(value.items())
    # (Pairs given as 2-item lists become tuples.)
    return [cast("tuple[_K, _V]", tuple(p)) for p in value]


class MultiDictView(MutableMapping[_K, _V], Generic[_K, _V]):
    """
    A mutable, multi-valued, case-sensitive mapping view over a list of
    ``(key, value)`` pairs that lives elsewhere (a query string, a Cookie
    header, a form body...).  ``MultiDictView[K, V]``: keys are str, except
    the bytes field names of ``multipart_form``.

    Every read calls ``getter()``; every modification builds the new list and
    hands it to ``setter(pairs)``, so changes go straight back into the
    underlying message.  ``view[k]`` returns the first value.
    """

    __slots__ = ("_getter", "_setter")

    def __init__(
        self,
        getter: Callable[[], list[tuple[_K, _V]]],
        setter: Callable[[list[tuple[_K, _V]]], None],
    ) -> None:
        """Create a view reading pairs from ``getter`` and writing them with ``setter``."""
        self._getter = getter
        self._setter = setter

    @property
    def fields(self) -> tuple[tuple[_K, _V], ...]:
        """All ``(key, value)`` pairs in order (a snapshot)."""
        return tuple(self._getter())

    @fields.setter
    def fields(self, value: Iterable[tuple[_K, _V]]) -> None:
        self._setter(_pairs(value))

    def __getitem__(self, key: _K) -> _V:
        """First value for ``key``; KeyError if absent."""
        for k, v in self._getter():
            if k == key:
                return v
        raise KeyError(key)

    def __setitem__(self, key: _K, value: _V) -> None:
        """Replace all values of ``key`` with ``value`` (position of the first kept)."""
        self.set_all(key, [value])

    def __delitem__(self, key: _K) -> None:
        """Remove all pairs with ``key``; KeyError if absent."""
        pairs = self._getter()
        new = [p for p in pairs if p[0] != key]
        if len(new) == len(pairs):
            raise KeyError(key)
        self._setter(new)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is present."""
        return any(k == key for k, _ in self._getter())

    def __iter__(self) -> Iterator[_K]:
        """Distinct keys in first-seen order."""
        return iter(dict.fromkeys(k for k, _ in self._getter()))

    def __len__(self) -> int:
        """Number of distinct keys."""
        return len({k for k, _ in self._getter()})

    def __repr__(self) -> str:
        """``MultiDictView[('a', '1'), ...]``."""
        return "MultiDictView[{}]".format(", ".join(repr(p) for p in self._getter()))

    def get_all(self, key: _K) -> list[_V]:
        """All values for ``key`` in order."""
        return [v for k, v in self._getter() if k == key]

    def set_all(self, key: _K, values: Iterable[_V]) -> None:
        """Set the values of ``key``: positions reused, surplus removed, extras appended."""
        vals = list(values)
        new: list[tuple[_K, _V]] = []
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

    def add(self, key: _K, value: _V) -> None:
        """Append a pair."""
        pairs = list(self._getter())
        pairs.append((key, value))
        self._setter(pairs)

    def insert(self, index: int, key: _K, value: _V) -> None:
        """Insert a pair at ``index``."""
        pairs = list(self._getter())
        pairs.insert(index, (key, value))
        self._setter(pairs)

    # items/keys/values: lists with a multi flag, as mitmproxy's (not Mapping's views).
    def items(self, multi: bool = False) -> list[tuple[_K, _V]]:  # type: ignore[override]
        """``(key, first value)`` per distinct key, or every pair with ``multi=True``."""
        pairs = self._getter()
        if multi:
            return list(pairs)
        first: dict[_K, _V] = {}
        for k, v in pairs:
            if k not in first:
                first[k] = v
        return list(first.items())

    def keys(self, multi: bool = False) -> list[_K]:  # type: ignore[override]
        """Distinct keys, or every pair's key with ``multi=True``."""
        return [k for k, _ in self.items(multi)]

    def values(self, multi: bool = False) -> list[_V]:  # type: ignore[override]
        """First value per distinct key, or every value with ``multi=True``."""
        return [v for _, v in self.items(multi)]

    def clear(self) -> None:
        """Remove all pairs."""
        self._setter([])
