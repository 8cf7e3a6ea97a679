# -*- test-case-name: tests.test_flowfilter -*-
"""
The filter base class and the boolean combinators C{!}, C{&} and C{|}.

A filter is a tree of these nodes; calling it with a flow says whether the
flow matches.  Two filters are equal when their trees are, and C{str()} of
a filter is its canonical text, which parses back to an equal filter.
"""

from __future__ import annotations

from typing import Sequence

from interceptor.model.flow import Flow

__all__ = ["Filter", "And", "Or", "Not"]


class Filter:
    """
    A parsed filter expression: C{f(flow)} is True when the flow matches.

    @ivar pattern: The text it was parsed from (set on the tree's root by
        L{interceptor.flowfilter.parse}), else None.
    """

    __slots__ = ("pattern",)

    def __init__(self) -> None:
        self.pattern: str | None = None

    def __call__(self, flow: Flow) -> bool:
        raise NotImplementedError(f"{type(self).__name__} does not match flows")

    def key(self) -> tuple[object, ...]:
        """
        What makes this filter what it is: equal keys, equal filters.
        """
        raise NotImplementedError(f"{type(self).__name__} has no key")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Filter):
            return NotImplemented
        return type(self) is type(other) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash((type(self), self.key()))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self}>"


class _Combination(Filter):
    """
    Two or more filters joined by one operator.

    @ivar filters: The joined filters, in order.
    """

    __slots__ = ("filters",)
    joiner = ""

    def __init__(self, filters: Sequence[Filter]) -> None:
        super().__init__()
        if len(filters) < 2:
            raise ValueError(f"{type(self).__name__} joins two or more filters, not {len(filters)}")
        self.filters = tuple(filters)

    def key(self) -> tuple[object, ...]:
        return self.filters

    def _needs_parentheses(self, child: Filter) -> bool:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.joiner.join(
            f"({child})" if self._needs_parentheses(child) else str(child)
            for child in self.filters
        )


class And(_Combination):
    """
    C{a & b}: every filter matches (evaluated left to right, stopping at the
    first that does not).
    """

    __slots__ = ()
    joiner = " & "

    def __call__(self, flow: Flow) -> bool:
        for child in self.filters:
            if not child(flow):
                return False
        return True

    def _needs_parentheses(self, child: Filter) -> bool:
        # An unparenthesised "&" inside would flatten into this one.
        return isinstance(child, _Combination)


class Or(_Combination):
    """
    C{a | b}: some filter matches (left to right, stopping at the first that
    does).
    """

    __slots__ = ()
    joiner = " | "

    def __call__(self, flow: Flow) -> bool:
        for child in self.filters:
            if child(flow):
                return True
        return False

    def _needs_parentheses(self, child: Filter) -> bool:
        # "&" binds tighter than "|", so only another "|" needs them.
        return isinstance(child, Or)


class Not(Filter):
    """
    C{!a}: the filter does not match.

    @ivar filter: The negated filter.
    """

    __slots__ = ("filter",)

    def __init__(self, filter: Filter) -> None:
        super().__init__()
        self.filter = filter

    def __call__(self, flow: Flow) -> bool:
        return not self.filter(flow)

    def key(self) -> tuple[object, ...]:
        return (self.filter,)

    def __str__(self) -> str:
        if isinstance(self.filter, _Combination):
            return f"!({self.filter})"
        return f"!{self.filter}"
