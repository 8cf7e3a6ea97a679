# -*- test-case-name: tests.test_io -*-
"""
Writing flows to interceptor's own flow files, one record per flow::

    from interceptor.io import FlowWriter

    writer = FlowWriter.open("+~/dump.flows")   # "+": append
    writer.add(flow)
    writer.close()

C{add} is on the proxy's hot path when it records: it builds the flow's
state (L{interceptor.io.state}, nothing copied) and packs it with msgpack's C
packer in one write.  Metadata that msgpack cannot pack is left out of the
record rather than failing it.
"""

from __future__ import annotations

import os
from typing import IO, Any

from interceptor.io.exceptions import FlowReadException
from interceptor.io.framing import HEADER, end_of_whole_records, new_packer
from interceptor.io.reader import sniff
from interceptor.io.state import flow_to_state
from interceptor.model.flow import Flow

__all__ = ["FlowWriter", "packable_metadata"]

_PACK_ERRORS = (TypeError, ValueError, OverflowError)
_BUFFER = 1024 * 1024


def packable_metadata(metadata: dict[Any, Any]) -> dict[Any, Any]:
    """
    The entries of a metadata dict that can be written, each tried alone.

    @param metadata: A flow's C{metadata}.
    """
    pack = new_packer().pack
    kept = {}
    for key, value in metadata.items():
        try:
            pack(key)
            pack(value)
        except _PACK_ERRORS:
            continue
        kept[key] = value
    return kept


class FlowWriter:
    """
    Writes flows to a binary file as records of interceptor's format.

    A header is written first, so a file opened with C{"ab"} on an existing
    flow file gets a second header mid-file, which readers expect.  Writes
    go to the file object as they are; call L{flush} (or close the file) to
    have them on disk.
    """

    def __init__(self, fileobj: IO[bytes]) -> None:
        """
        @param fileobj: A binary file open for writing or appending.
        """
        self._fileobj = fileobj
        self._pack = new_packer().pack
        # (A third faster than the packer tolerating lone surrogates, which
        # only strs decoded from bytes that are not UTF-8 hold.)
        self._pack_strict = new_packer(strict=True).pack
        self._owned = False
        fileobj.write(HEADER)

    @classmethod
    def open(cls, path: str) -> FlowWriter:
        """
        A writer to a file it opens (and L{close}s): C{path} is replaced,
        or appended to if it starts with C{"+"}; C{~} is expanded.

        Appending to a file that is not interceptor's own format is refused.
        When its last record was cut short (the proxy was killed mid-write)
        the cut bytes are dropped first, so the records after them can be
        read.

        @raise FlowReadException: C{path} is a flow file of another kind,
            or cannot be opened.
        """
        append = path.startswith("+")
        name = os.path.expanduser(path[1:] if append else path)
        try:
            existing = append and os.path.exists(name)
            # (A big buffer: a few large writes instead of one per 8 KiB;
            # what is written leaves at each flush, e.g. the recorder's tick.)
            fileobj = open(name, "r+b" if existing else "wb", buffering=_BUFFER)
            if existing:
                _seek_to_append(fileobj, name)
        except OSError as e:
            raise FlowReadException(f"{name}: {e.strerror or e}", name) from e
        writer = cls(fileobj)
        writer._owned = True
        return writer

    def add(self, flow: Flow) -> None:
        """
        Write one finished flow as one record.

        @param flow: An HTTP flow (with its WebSocket data if it upgraded)
            or a TCP flow.
        @raise ValueError: For a kind of flow with no record layout.
        """
        state = flow_to_state(flow)
        try:
            data = self._pack_strict(state)
        except _PACK_ERRORS:
            # A lone surrogate in a str (from bytes that were not UTF-8), or
            # metadata that does not pack: the tolerant packer, then without
            # that metadata.
            try:
                data = self._pack(state)
            except _PACK_ERRORS:
                state["metadata"] = packable_metadata(flow.metadata)
                data = self._pack(state)
        self._fileobj.write(data)

    def flush(self) -> None:
        """
        Hand what was written to the operating system.
        """
        self._fileobj.flush()

    def close(self) -> None:
        """
        Flush, and close the file if L{open} opened it.
        """
        if self._owned:
            self._fileobj.close()
        else:
            self._fileobj.flush()

    def __enter__(self) -> FlowWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _seek_to_append(fileobj: IO[bytes], name: str) -> None:
    """
    Put a file opened with C{"r+b"} where the next record goes: after its
    last whole record.
    """
    prefix = fileobj.read(64)
    fileobj.seek(0)
    kind = sniff(prefix)
    if kind == "empty":
        return
    if kind != "interceptor":
        raise FlowReadException.at(
            name, 0, f"cannot append interceptor flows to a file of another kind ({kind or 'unknown'})"
        )
    try:
        end = end_of_whole_records(fileobj)
    except ValueError as e:
        raise FlowReadException.at(name, 0, f"cannot append to a corrupt flow file: {e}") from e
    fileobj.seek(end)
    fileobj.truncate()

