# -*- test-case-name: tests.test_flowfilter,tests.e2e.test_flowfilter_real -*-
"""
Filter expressions, the language mitmproxy users type to pick flows::

    from interceptor import flowfilter

    errors_from_api = flowfilter.parse("~d api\\\\.example & (~c 500 | ~e)")

    def response(flow):
        if errors_from_api(flow):
            print(flow.request.url)

    flowfilter.match("~websocket & ~b hello", flow)     # parses (cached), then matches

Operators (regular expressions are searched, case-insensitively):

    ~all           every flow
    ~a             the response is an asset (CSS, JavaScript, image, font)
    ~b rex         a request or response body, or a WebSocket/TCP message
    ~bq, ~bs rex   the request's (client's) / the response's (server's) only
    ~c code        the response status code
    ~comment rex   the flow's comment
    ~d rex         the request's host or Host header / authority
    ~dns, ~udp     DNS / UDP flows (there are none here: never match)
    ~dst rex       the server address, "host:port"
    ~e             the flow has an error
    ~h rex         a header line, "Name: value", of the request or response
    ~hq, ~hs rex   the request's / the response's header lines
    ~http          HTTP flows (WebSocket flows too: they begin as HTTP)
    ~m rex         the request method
    ~marked        the flow is marked
    ~marker rex    the flow's marker
    ~meta rex      the flow's metadata, "key: value" lines
    ~q             an HTTP flow with no response (yet)
    ~replay        a replayed flow; ~replayq, ~replays: its request, its response
    ~s             an HTTP flow with a response
    ~src rex       the client address, "host:port"
    ~t rex         a Content-Type header; ~tq, ~ts: the request's, the response's
    ~tcp           raw TCP flows
    ~u rex         the URL (a bare regex means the same)
    ~websocket     WebSocket flows

joined with C{!} (not), C{&} (and), C{|} (or) and parentheses; C{!} binds
tightest, then C{&}, then C{|}.  A regex is a bare word or quoted with C{"}
or C{'} (see L{interceptor.filters.lexicon} for the escapes).

A malformed expression raises L{FilterSyntaxError} (a ValueError) naming
the column and what was expected there.  C{str()} of a filter is its
canonical text, which parses back to an equal filter.
"""

from __future__ import annotations

import functools
from typing import Callable, Union

from interceptor.filters.nodes import Filter
from interceptor.filters.operators import OPERATORS, RegexOperator, StatusCode
from interceptor.filters.parser import FilterSyntaxError, parse_filter
from interceptor.model.flow import Flow

__all__ = ["Filter", "FilterSyntaxError", "help", "match", "parse"]


@functools.lru_cache(maxsize=256)
def _parse_cached(text: str) -> Filter:
    tree = parse_filter(text)
    tree.pattern = text
    return tree


def parse(text: str) -> Filter:
    """
    Parse a filter expression.  The same text gives the same (immutable)
    filter object: parses are cached.

    @param text: The expression, e.g. C{"~d example.com & !~c 200"}.
    @return: A L{Filter}: C{f(flow)} is True when the flow matches.
    @raise FilterSyntaxError: The text is not a filter expression.
    @raise TypeError: C{text} is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"a filter expression is a str, not {type(text).__name__}")
    return _parse_cached(text)


def match(flt: Union[str, Callable[[Flow], bool], None], flow: Flow) -> bool:
    """
    Whether C{flow} matches C{flt}: an expression (parsed with L{parse}), a
    parsed filter, or None (which matches every flow), as mitmproxy's
    C{flowfilter.match}.

    @raise FilterSyntaxError: C{flt} is text that is not a filter expression.
    """
    if isinstance(flt, str):
        flt = parse(flt)
    if flt is None:
        return True
    return bool(flt(flow))


def _help() -> list[tuple[str, str]]:
    rows = []
    for code, kind in OPERATORS.items():
        argument = " regex" if issubclass(kind, RegexOperator) else ""
        argument = " int" if issubclass(kind, StatusCode) else argument
        rows.append((f"~{code}{argument}", kind.help))
    rows.sort()
    rows += [("!", "unary not"), ("&", "and"), ("|", "or"), ("(...)", "grouping")]
    return rows


help: list[tuple[str, str]] = _help()
"""(syntax, meaning) rows for every operator, as mitmproxy's C{flowfilter.help}."""

