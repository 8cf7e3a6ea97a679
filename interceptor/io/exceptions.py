"""
The one error a flow file gives when it cannot be read.
"""

from __future__ import annotations

__all__ = ["FlowReadException"]


class FlowReadException(ValueError):
    """
    A flow file is corrupt, foreign, or written by a newer interceptor.

    The message names the file and the byte offset where reading stopped,
    so it can be shown to the user as it is.

    @ivar name: The file's name (or a description of the stream).
    @ivar offset: The byte offset of the record that could not be read,
        or None when the file could not be opened at all.
    """

    def __init__(self, message: str, name: str = "", offset: int | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.offset = offset

    @classmethod
    def at(cls, name: str, offset: int, what: str) -> FlowReadException:
        """
        The error for a problem at a byte offset of a file.

        @param name: The file's name.
        @param offset: Where the record that could not be read starts.
        @param what: What is wrong there.
        """
        return cls(f"{name}: byte {offset}: {what}", name, offset)
