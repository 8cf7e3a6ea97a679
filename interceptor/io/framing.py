# -*- test-case-name: tests.test_io -*-
"""
The framing of interceptor's own flow files: a stream of msgpack objects.

A file is a header record followed by one record per flow, each a msgpack
map (the state of L{interceptor.io.state}).  The header is the map
C{{"format": "interceptor-flows", "version": N}}; it may appear again
anywhere between records, which is what appending to a file (opening it
with C{"ab"}) does, so a file is read the same whether it was written in one
go or in several.  Bytes are msgpack C{bin}, text is C{str} (lone surrogates
pass, so any Python str survives), so a body may hold any bytes.

Reading is incremental: the file is fed to a C{msgpack.Unpacker} in chunks,
each record is handed on as soon as it is whole, and a record cut short at
the end of the file (the proxy killed mid-write) is reported, not raised.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import msgpack

from interceptor.io.exceptions import FlowReadException
from interceptor.io.records import Records

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "HEADER",
    "is_own_format",
    "new_packer",
    "RecordReader",
    "end_of_whole_records",
]

MAGIC = "interceptor-flows"
"""The value of the header's C{"format"} key."""

FORMAT_VERSION = 1
"""The version of the format this module writes; it reads this one and older."""

_UNICODE_ERRORS = "surrogatepass"

HEADER = msgpack.packb({"format": MAGIC, "version": FORMAT_VERSION}, use_bin_type=True)
"""The header record, as written at the start of a file (and of each append)."""

# Everything of a header before its version: what a file of any version starts with.
_SNIFF = msgpack.packb({"format": MAGIC, "version": 0}, use_bin_type=True)[:-1]

SNIFF_SIZE = len(_SNIFF)
"""How many bytes L{is_own_format} needs to see."""

MAX_RECORD = 2**31 - 1
"""The largest record msgpack can read back (a body of 2 GiB or more cannot be stored)."""

_CHUNK = 1 << 20


def is_own_format(prefix: bytes) -> bool:
    """
    Whether a file starting with C{prefix} is one of ours (any version).

    @param prefix: The file's first bytes, at least L{SNIFF_SIZE} unless
        the file is shorter; not empty.
    """
    # (A file shorter than a header is one of ours cut short.)
    return prefix.startswith(_SNIFF) or _SNIFF.startswith(prefix)


def new_packer(strict: bool = False) -> msgpack.Packer:
    """
    A packer writing records as this format has them; C{strict}: one that
    refuses (UnicodeEncodeError) a str holding a lone surrogate instead of
    writing it as its byte.
    """
    if strict:
        return msgpack.Packer(use_bin_type=True)
    return msgpack.Packer(use_bin_type=True, unicode_errors=_UNICODE_ERRORS)


def _new_unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(
        raw=False,
        unicode_errors=_UNICODE_ERRORS,
        strict_map_key=False,
        max_buffer_size=MAX_RECORD,
    )


class RecordReader(Records):
    """
    The msgpack objects of a file (see L{Records}), fed to a
    C{msgpack.Unpacker} a chunk at a time.
    """

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        unpacker = _new_unpacker()
        unpack = unpacker.unpack
        read = self._fileobj.read
        fed = 0
        record_start = 0
        data = self._start
        self._start = b""
        while True:
            if data:
                unpacker.feed(data)
                fed += len(data)
            while True:
                try:
                    obj = unpack()
                except msgpack.OutOfData:
                    break
                except ValueError as e:
                    raise FlowReadException.at(
                        self._name, record_start, f"not a flow record ({e})"
                    ) from e
                yield record_start, obj
                record_start = unpacker.tell()
            data = read(_CHUNK)
            if not data:
                break
        if record_start < fed:
            self._cut(record_start, fed - record_start)


def end_of_whole_records(fileobj: IO[bytes]) -> int:
    """
    The offset just past the last whole msgpack object of a file: its size,
    unless the last object is cut short.  Objects are skipped, not built, so
    this runs at the speed of reading.

    @param fileobj: Read from its current position to its end.
    @raise ValueError: Some bytes are not msgpack.
    """
    unpacker = _new_unpacker()
    end = 0
    while True:
        data = fileobj.read(_CHUNK)
        if not data:
            return end
        unpacker.feed(data)
        while True:
            try:
                unpacker.skip()
            except msgpack.OutOfData:
                break
            end = unpacker.tell()
