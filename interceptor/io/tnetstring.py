# -*- test-case-name: tests.test_io_mitmproxy -*-
"""
Reading tnetstrings, the records of mitmproxy's flow files.

A tnetstring is C{LENGTH:DATA TYPE}: the decimal length of DATA, a colon,
DATA, and one type byte: C{,} bytes, C{;} text (UTF-8), C{#} an integer,
C{^} a float, C{!} C{true} or C{false}, C{~} null (empty data), C{]} a list
of tnetstrings, C{}} a dict of alternating key and value tnetstrings.  A
mitmproxy flow file is one dict per flow, one after the other.

Only reading is needed (flows are written in interceptor's own format).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any, Optional

from interceptor.io.exceptions import FlowReadException
from interceptor.io.records import Records

__all__ = ["parse", "TnetstringReader", "looks_like_tnetstring"]

_MAX_DIGITS = 12
_MAX_DEPTH = 64
_CHUNK = 1 << 20

_BYTES, _TEXT, _INT, _FLOAT, _BOOL, _NULL, _LIST, _DICT = b",;#^!~]}"


def looks_like_tnetstring(prefix: bytes) -> bool:
    """
    Whether a file starting with C{prefix} may be tnetstrings: digits, then
    a colon.
    """
    digits = len(prefix) - len(prefix.lstrip(b"0123456789"))
    return 0 < digits <= _MAX_DIGITS and prefix[digits : digits + 1] == b":"


def _items(data: bytes, start: int, end: int, depth: int) -> list[Any]:
    """
    The values of the tnetstrings from C{start} to C{end} (a list's or a
    dict's data).  Leaves are parsed here, in the loop: only containers
    cost a call.
    """
    if depth > _MAX_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_DEPTH} at byte {start}")
    items: list[Any] = []
    append = items.append
    index = data.index
    while start < end:
        colon = index(b":", start, end)
        if colon - start > _MAX_DIGITS:
            raise ValueError(f"length prefix too long at byte {start}")
        length = int(data[start:colon])
        body = colon + 1
        stop = body + length
        if length < 0 or stop >= end:
            raise ValueError(f"value at byte {start} runs past its container")
        kind = data[stop]
        if kind == _BYTES:
            append(data[body:stop])
        elif kind == _TEXT:
            append(data[body:stop].decode("utf-8", "surrogateescape"))
        elif kind == _DICT:
            pairs = _items(data, body, stop, depth + 1)
            if len(pairs) % 2:
                raise ValueError(f"dict key without a value at byte {start}")
            keys = iter(pairs)
            append(dict(zip(keys, keys)))
        elif kind == _LIST:
            append(_items(data, body, stop, depth + 1))
        elif kind == _INT:
            append(int(data[body:stop]))
        elif kind == _FLOAT:
            append(float(data[body:stop]))
        elif kind == _NULL:
            if length:
                raise ValueError(f"null with data at byte {start}")
            append(None)
        elif kind == _BOOL:
            word = data[body:stop]
            if word != b"true" and word != b"false":
                raise ValueError(f"bad boolean {word!r} at byte {start}")
            append(word == b"true")
        else:
            raise ValueError(f"unknown type {chr(kind)!r} at byte {stop}")
        start = stop + 1
    return items


def parse(data: bytes, start: int = 0, end: Optional[int] = None) -> Any:
    """
    The value of one whole tnetstring, C{data[start:end]}.

    @raise ValueError: That is not exactly one tnetstring (offsets in the
        message are within C{data}).
    """
    if end is None:
        end = len(data)
    try:
        values = _items(data, start, end, 0)
    except (IndexError, ValueError, OverflowError) as e:
        raise ValueError(str(e)) from e
    if len(values) != 1:
        raise ValueError(f"{len(values)} values where one was expected")
    return values[0]


class TnetstringReader(Records):
    """
    The top-level tnetstrings of a file (see L{Records}).  Only the records
    of one read chunk (or one bigger record) are in memory at a time.
    """

    def __init__(self, fileobj: IO[bytes], name: str, start: bytes = b"") -> None:
        super().__init__(fileobj, name, start)
        self._buffer = start
        self._pos = 0
        self._consumed = 0  # file offset of the buffer's first byte

    def _fill(self, at_least: int) -> bool:
        """
        Read until the buffer holds C{at_least} bytes past the current
        position; False when the file ends first.
        """
        have = len(self._buffer) - self._pos
        if have >= at_least:
            return True
        pieces = [self._buffer[self._pos :]]
        self._consumed += self._pos
        self._pos = 0
        while have < at_least:
            data = self._fileobj.read(max(_CHUNK, at_least - have))
            if not data:
                break
            pieces.append(data)
            have += len(data)
        self._buffer = b"".join(pieces)
        return have >= at_least

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        while True:
            self._fill(_MAX_DIGITS + 1)
            buffer, pos = self._buffer, self._pos
            offset = self._consumed + pos
            left = len(buffer) - pos
            if not left:
                return
            colon = buffer.find(b":", pos, pos + _MAX_DIGITS + 1)
            digits = buffer[pos:colon]
            if colon < 0 or not digits.isdigit():
                if colon < 0 and left <= _MAX_DIGITS and buffer[pos:].isdigit():
                    self._cut(offset, left)
                    return
                raise FlowReadException.at(
                    self._name, offset, "not a tnetstring record (no length prefix)"
                )
            size = colon - pos + 1 + int(digits) + 1
            if not self._fill(size):
                self._cut(offset, len(self._buffer) - self._pos)
                return
            buffer, pos = self._buffer, self._pos
            try:
                value = parse(buffer, pos, pos + size)
            except ValueError as e:
                raise FlowReadException.at(self._name, offset, f"bad tnetstring record: {e}") from e
            self._pos = pos + size
            yield offset, value

    def _cut(self, offset: int, size: int) -> None:
        super()._cut(offset, size)
        self._buffer = b""
        self._pos = 0
