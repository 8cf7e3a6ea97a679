"""
What the record readers of each file format share: the offsets of whole
records, and where the file was cut short.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import IO, Any, Optional

__all__ = ["Records"]


class Records(abc.ABC):
    """
    The top-level records of a file, with the byte offset each starts at.

    Iterate it once.  When the file ends inside a record (the writer was
    killed mid-write), iteration stops after the last whole one and
    L{truncated_at} tells where the cut one started.

    @ivar truncated_at: The offset of a record cut short by the end of the
        file, or None.
    @ivar cut_bytes: How many bytes of it there were.
    """

    def __init__(self, fileobj: IO[bytes], name: str, start: bytes = b"") -> None:
        """
        @param fileobj: Read from its current position to its end.
        @param name: The file's name, for errors.
        @param start: Bytes already read from C{fileobj} (by sniffing),
            which come first.
        """
        self._fileobj = fileobj
        self._name = name
        self._start = start
        self.truncated_at: Optional[int] = None
        self.cut_bytes = 0

    def _cut(self, offset: int, size: int) -> None:
        self.truncated_at = offset
        self.cut_bytes = size

    @abc.abstractmethod
    def __iter__(self) -> Iterator[tuple[int, Any]]:
        """
        Yield C{(offset, record)} for each whole record.

        @raise interceptor.io.FlowReadException: The bytes at some offset
            are not a record of this format.
        """
