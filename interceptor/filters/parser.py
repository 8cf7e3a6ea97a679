# -*- test-case-name: tests.test_flowfilter -*-
"""
Filter text to a filter tree: a scanner and a recursive-descent parser.

The grammar, with mitmproxy's precedence (C{!} binds tightest, then C{&},
then C{|}; filters written side by side are joined by an "and" weaker than
all three)::

    expression := disjunction+              (side by side: And)
    disjunction := conjunction ("|" conjunction)*
    conjunction := negation ("&" negation)*
    negation := "!" negation | "(" expression ")" | operator | word
    operator := "~" name [regex | status code]
    word := a bare or quoted regex, the same as "~u" word

Which characters make a token depends on where the parser is, as in
mitmproxy: C{&}, C{|} and C{!} are operators between filters but ordinary
characters inside a word (C{a|b}, C{~d !x}), so the scanner is asked for the
kind of token the parser expects next.

Differences from mitmproxy's pyparsing grammar, all in what it rejected or
misread: an operator name may be followed directly by C{(}, C{)}, C{!},
C{&}, C{|} or a quote (C{(~q)}, C{~q|~s}); filters side by side are allowed
inside parentheses too; a status code must end at whitespace, a
parenthesis, C{&}, C{|} or the end (C{~c 200x} is an error, not C{~c 200
& x}); in quotes C{\\xNN}, C{\\uNNNN} and octal escapes are not special.
"""

from __future__ import annotations

import re

from interceptor.filters.lexicon import QUOTES, WHITESPACE, bare_word_end, unescape
from interceptor.filters.nodes import And, Filter, Not, Or
from interceptor.filters.operators import OPERATORS, RegexOperator, StatusCode, Url

__all__ = ["FilterSyntaxError", "parse_filter", "MAX_NESTING"]

MAX_NESTING = 100
"""How deep C{(} and C{!} may nest, so no text can exhaust the stack."""

_MAX_STATUS_DIGITS = 20
_NAME = re.compile(r"[A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]+")
_AFTER_STATUS = WHITESPACE + "()&|"


class FilterSyntaxError(ValueError):
    """
    A filter expression could not be parsed.

    @ivar text: The expression.
    @ivar column: Where the problem is, counting from 1.
    @ivar problem: What was wrong or expected there.
    """

    def __init__(self, text: str, column: int, problem: str) -> None:
        self.text = text
        self.column = column
        self.problem = problem
        if text.strip(WHITESPACE):
            message = f"{text}: {problem} at column {column}"
        else:
            message = f"empty filter expression {text!r}"
        super().__init__(message)


class _Parser:
    """
    One parse of one text.

    @ivar position: The index of the next character to read.
    @ivar depth: How many C{(} and C{!} enclose what is being read.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self.depth = 0

    def fail(self, problem: str, position: int | None = None) -> FilterSyntaxError:
        where = self.position if position is None else position
        return FilterSyntaxError(self.text, where + 1, problem)

    def peek(self) -> str:
        """
        The next character after whitespace ("" at the end), not consumed.
        """
        text = self.text
        position = self.position
        while position < len(text) and text[position] in WHITESPACE:
            position += 1
        self.position = position
        return text[position] if position < len(text) else ""

    def expression(self) -> Filter:
        parts = [self.disjunction()]
        while self.peek() not in ("", ")"):
            parts.append(self.disjunction())
        return parts[0] if len(parts) == 1 else And(parts)

    def disjunction(self) -> Filter:
        parts = [self.conjunction()]
        while self.peek() == "|":
            self.position += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Or(parts)

    def conjunction(self) -> Filter:
        parts = [self.negation()]
        while self.peek() == "&":
            self.position += 1
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else And(parts)

    def negation(self) -> Filter:
        char = self.peek()
        if char == "!":
            self.enter()
            self.position += 1
            negated = Not(self.negation())
            self.depth -= 1
            return negated
        if char == "(":
            return self.group()
        if char == "~":
            return self.operator()
        if char == "" or char == ")":
            follows = self.text[:self.position].rstrip(WHITESPACE)[-1:]
            after = f" after {follows!r}" if follows in ("!", "&", "|", "(") else ""
            raise self.fail(f"expected a filter expression{after}")
        return self.regex_operator(Url, "a URL")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"nested deeper than {MAX_NESTING} levels")

    def group(self) -> Filter:
        opening = self.position
        self.enter()
        self.position += 1
        inside = self.expression()
        if self.peek() != ")":
            raise self.fail("unclosed '('", opening)
        self.position += 1
        self.depth -= 1
        return inside

    def operator(self) -> Filter:
        start = self.position
        name_end = _NAME.match(self.text, start + 1)
        assert name_end is not None  # (it matches the empty string)
        name = name_end.group()
        self.position = name_end.end()
        kind = OPERATORS.get(name)
        if kind is None:
            raise self.fail(f"unknown operator ~{name}", start)
        if issubclass(kind, StatusCode):
            return StatusCode(self.status_code())
        if issubclass(kind, RegexOperator):
            return self.regex_operator(kind, f"a regular expression after ~{name}")
        return kind()

    def regex_operator(self, kind: type[RegexOperator], expected: str) -> Filter:
        """
        The operator C{kind} with the regular expression that comes next.
        """
        self.peek()
        start = self.position
        word = self.regex(expected)
        try:
            return kind(word)
        except (re.error, ValueError) as e:
            raise self.fail(f"bad regular expression for ~{kind.code} ({e})", start) from None

    def status_code(self) -> int:
        self.peek()
        start = self.position
        digits = _DIGITS.match(self.text, start)
        end = digits.end() if digits is not None else start
        if digits is None or (end < len(self.text) and self.text[end] not in _AFTER_STATUS):
            raise self.fail("expected a status code", start)
        if end - start > _MAX_STATUS_DIGITS:
            raise self.fail(f"status code longer than {_MAX_STATUS_DIGITS} digits", start)
        self.position = end
        return int(digits.group())

    def regex(self, expected: str) -> str:
        """
        Read a bare or quoted word; C{expected} names it if there is none.
        """
        char = self.peek()
        start = self.position
        if char and char in QUOTES:
            word = self.quoted(char)
        else:
            end = bare_word_end(self.text, start)
            if end == start:
                raise self.fail(f"expected {expected}")
            word = self.text[start:end]
            self.position = end
        return word

    def quoted(self, quote: str) -> str:
        text = self.text
        start = self.position
        position = start + 1
        while position < len(text):
            char = text[position]
            if char == quote:
                self.position = position + 1
                return unescape(text[start + 1:position])
            if char in "\n\r":
                break
            position += 2 if char == "\\" else 1
        raise self.fail(f"unterminated {quote}-quoted string", start)


def parse_filter(text: str) -> Filter:
    """
    Parse C{text} to a filter tree.

    @raise FilterSyntaxError: It is not a filter expression, or a regular
        expression in it does not compile.
    """
    parser = _Parser(text)
    tree = parser.expression()
    if parser.peek() == ")":
        raise parser.fail("unexpected ')'")
    return tree
