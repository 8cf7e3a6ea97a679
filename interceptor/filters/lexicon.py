# -*- test-case-name: tests.test_flowfilter -*-
"""
The words of the filter language: which characters a bare word may hold, and
how a quoted argument is written and read (mitmproxy's rules).

A bare word is a run of characters other than whitespace, parentheses, C{~}
and quotes.  A quoted argument is enclosed in C{"} or C{'}; inside it a
backslash escapes the next character, except that C{\\n}, C{\\t}, C{\\r},
C{\\f} stand for those whitespace characters and C{\\0} for NUL.  So a
regular expression's own backslash is doubled inside quotes (C{"\\\\d+"}) and
written once in a bare word (C{\\d+}).
"""

from __future__ import annotations

import re

__all__ = ["WHITESPACE", "QUOTES", "bare_word_end", "quote", "unescape"]

# The whitespace pyparsing skips (mitmproxy's grammar); other spaces are word characters.
WHITESPACE = " \t\n\r"
QUOTES = "\"'"

_BARE = re.compile(r"[^()~'\" \t\n\r]+")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_WHITESPACE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "0": "\0"}
_QUOTE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r",
                  "\f": "\\f", "\0": "\\0"}
_NEEDS_ESCAPE = re.compile(r"[\\\"\n\t\r\f\0]")


def bare_word_end(text: str, start: int) -> int:
    """
    Where the bare word starting at C{start} ends (C{start} itself when
    there is none).
    """
    found = _BARE.match(text, start)
    return start if found is None else found.end()


def unescape(body: str) -> str:
    """
    The text a quoted argument stands for, given what is between its quotes.
    """
    return _ESCAPE.sub(lambda found: _WHITESPACE_ESCAPES.get(found[1], found[1]), body)


def quote(argument: str) -> str:
    """
    How C{argument} is written in a filter: as a bare word when it is one,
    else in double quotes with backslash escapes.
    """
    if _BARE.fullmatch(argument):
        return argument
    return '"' + _NEEDS_ESCAPE.sub(lambda found: _QUOTE_ESCAPES[found[0]], argument) + '"'
