# -*- test-case-name: tests.test_io,tests.test_io_mitmproxy -*-
"""
Reading flow files of any kind the proxy knows, one flow at a time::

    from interceptor.io import FlowReader, FlowReadException

    with open("dump.flows", "rb") as f:
        reader = FlowReader(f, report=print)
        for flow in reader.stream():
            print(flow.request.url)

The kind of file is sniffed from its first bytes: interceptor's own format
(L{interceptor.io.framing}), mitmproxy's flow files (tnetstring records,
L{interceptor.io.tnetstring} and L{interceptor.io.mitmstate}), or HAR (JSON,
read by L{interceptor.io.har}).  A corrupt or foreign file raises one
L{FlowReadException} naming the file and byte offset.  What is read but
not an error (the last record cut short by a proxy killed mid-write, flows
of kinds with no model here) is said in one line each, in
C{reader.problems} and to the C{report} callable.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Optional, Union

from twisted.logger import Logger

from interceptor.io.exceptions import FlowReadException
from interceptor.io.framing import FORMAT_VERSION, MAGIC, RecordReader, is_own_format
from interceptor.io.mitmstate import state_from_mitmproxy
from interceptor.io.state import UnknownFlowType, flow_from_state
from interceptor.io.tnetstring import TnetstringReader, looks_like_tnetstring
from interceptor.model.flow import Flow

__all__ = ["FlowReader", "read_flows_from_paths", "sniff"]

_SNIFF = 64
_READ_SIZE = 256 * 1024
_BOM = b"\xef\xbb\xbf"

Report = Callable[[str], None]


def sniff(prefix: bytes) -> Optional[str]:
    """
    The kind of flow file that starts with C{prefix}: C{"interceptor"},
    C{"mitmproxy"}, C{"har"}, C{"empty"}, or None for none of them.

    @param prefix: The file's first bytes (64 are plenty).
    """
    if not prefix:
        return "empty"
    if is_own_format(prefix):
        return "interceptor"
    if looks_like_tnetstring(prefix):
        return "mitmproxy"
    text = prefix[len(_BOM) :] if prefix.startswith(_BOM) else prefix
    if text.lstrip()[:1] in (b"{", b"["):
        return "har"
    return None


class _Prefixed(io.RawIOBase):
    """
    A stream that gives some bytes already read, then the rest of a file.
    """

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            size = min(len(view), len(self._prefix))
            view[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Upto(io.RawIOBase):
    """
    A file read up to the size it had when opened: flows appended while it
    is read (a proxy replaying a file it also records to) are not read.
    """

    def __init__(self, fileobj: IO[bytes]) -> None:
        super().__init__()
        self._fileobj = fileobj
        self._left = os.fstat(fileobj.fileno()).st_size - fileobj.tell()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._fileobj.read(min(len(view), self._left))
        self._left -= len(data)
        view[: len(data)] = data
        return len(data)


class FlowReader:
    """
    The flows of one file, read one at a time.

    @ivar name: The file's name, as errors and problems name it.
    @ivar problems: One line for each thing read past that is not an error
        (a cut last record, flows that were skipped), in the order met.
    """

    def __init__(
        self, fileobj: IO[bytes], name: Optional[str] = None, report: Optional[Report] = None
    ) -> None:
        """
        @param fileobj: A binary file, read from its current position.
        @param name: How to name the file in errors and problems (by
            default its C{name} attribute, else C{"<stream>"}).
        @param report: Called with each line added to L{problems}.
        """
        self._fileobj = fileobj
        if name is None:
            given = getattr(fileobj, "name", None)
            name = given if isinstance(given, str) else "<stream>"
        self.name = name
        self._report = report
        self.problems: list[str] = []

    def _problem(self, line: str) -> None:
        self.problems.append(line)
        if self._report is not None:
            self._report(line)

    def stream(self) -> Iterator[Flow]:
        """
        Yield the file's flows one at a time (none of them live), never
        holding more than one record in memory.

        @raise FlowReadException: The file is not a flow file, is corrupt,
            or was written by a newer interceptor.
        """
        start = self._fileobj.tell() if self._seekable() else None
        prefix = self._fileobj.read(_SNIFF)
        kind = sniff(prefix)
        if kind == "empty":
            return
        if kind == "interceptor":
            yield from self._own(prefix)
        elif kind == "mitmproxy":
            yield from self._mitmproxy(prefix)
        elif kind == "har":
            yield from self._har(prefix, start)
        else:
            raise _not_a_flow_file(self.name, prefix)

    def _seekable(self) -> bool:
        try:
            return bool(self._fileobj.seekable())
        except (AttributeError, ValueError):
            return False

    def _own(self, prefix: bytes) -> Iterator[Flow]:
        records = RecordReader(self._fileobj, self.name, prefix)
        for offset, record in records:
            if not isinstance(record, dict):
                raise FlowReadException.at(
                    self.name, offset, f"not a flow record (a {type(record).__name__})"
                )
            if "format" in record:
                self._check_header(offset, record)
                continue
            try:
                flow = flow_from_state(record)
            except ValueError as e:
                raise FlowReadException.at(self.name, offset, f"bad flow record: {e}") from e
            yield flow
        self._check_cut(records.truncated_at, records.cut_bytes)

    def _check_header(self, offset: int, header: dict[Any, Any]) -> None:
        version = header.get("version")
        if header.get("format") != MAGIC or not isinstance(version, int):
            raise FlowReadException.at(self.name, offset, f"not a flow file header: {header!r}")
        if version > FORMAT_VERSION:
            raise FlowReadException.at(
                self.name,
                offset,
                f"written by a newer interceptor (flow file format version {version}; "
                f"this one reads up to version {FORMAT_VERSION})",
            )

    def _mitmproxy(self, prefix: bytes) -> Iterator[Flow]:
        records = TnetstringReader(self._fileobj, self.name, prefix)
        skipped: Counter[str] = Counter()
        first_skipped: dict[str, int] = {}
        for offset, record in records:
            try:
                flow = flow_from_state(state_from_mitmproxy(record))
            except UnknownFlowType as e:
                kind = str(e.flow_type)
                skipped[kind] += 1
                first_skipped.setdefault(kind, offset)
                continue
            except ValueError as e:
                raise FlowReadException.at(self.name, offset, f"bad mitmproxy flow: {e}") from e
            yield flow
        for kind, count in skipped.items():
            self._problem(
                f"{self.name}: skipped {count} mitmproxy {kind} flow(s), the first at byte "
                f"{first_skipped[kind]}: interceptor has no model for {kind} flows"
            )
        self._check_cut(records.truncated_at, records.cut_bytes)

    def _har(self, prefix: bytes, start: Optional[int]) -> Iterator[Flow]:
        # (Imported here: it costs nothing until a HAR file comes.)
        from interceptor.io.har import read_har

        stream: IO[bytes]
        if start is not None:
            self._fileobj.seek(start)
            stream = self._fileobj
        else:
            stream = io.BufferedReader(_Prefixed(prefix, self._fileobj))
        try:
            # (Its flows are not live.)
            yield from read_har(stream, self.name)
        except ValueError as e:
            # (The HAR reader names the file and the entry; a HAR has no record offsets.)
            raise FlowReadException(str(e), self.name) from e

    def _check_cut(self, truncated_at: Optional[int], cut_bytes: int) -> None:
        if truncated_at is not None:
            self._problem(
                f"{self.name}: the last record, at byte {truncated_at}, is cut short "
                f"({cut_bytes} bytes, ignored): the file ends mid-write"
            )


_log = Logger(namespace="interceptor.io")


def log_problem(line: str) -> None:
    """
    A C{report} for L{FlowReader} that logs each problem as a warning (for
    the addons reading flow files in the proxy).
    """
    _log.warn("{problem}", problem=line)


def _opened(path: Union[str, os.PathLike[str]]) -> tuple[str, IO[bytes]]:
    # The expanded name and the open file, or the error naming it.
    name = os.path.expanduser(os.fspath(path))
    try:
        return name, open(name, "rb")
    except OSError as e:
        raise FlowReadException(f"{name}: {e.strerror or e}", name) from e


def _not_a_flow_file(name: str, prefix: bytes) -> FlowReadException:
    return FlowReadException.at(name, 0, f"not a flow file (it starts with {prefix[:16]!r})")


def check_flow_files(paths: Iterable[Union[str, os.PathLike[str]]]) -> None:
    """
    Check that each file opens and starts as a flow file (interceptor's,
    mitmproxy's or HAR) without reading it: for an option naming files, so
    that a wrong path is refused when the proxy starts.

    @raise FlowReadException: A file cannot be opened or is of no known kind.
    """
    for path in paths:
        name, fileobj = _opened(path)
        with fileobj:
            prefix = fileobj.read(_SNIFF)
        if sniff(prefix) is None:
            raise _not_a_flow_file(name, prefix)


def flows_from_paths(
    paths: Iterable[Union[str, os.PathLike[str]]], report: Optional[Report] = None
) -> Iterator[Flow]:
    """
    The flows of some files, in order, one at a time: never all in memory.

    @param paths: File names; C{~} is expanded.
    @param report: Given each problem line (see L{FlowReader.problems}).
    @raise FlowReadException: (while iterating) A file cannot be opened or read.

    Each file is read up to the size it had when its turn came: flows
    appended meanwhile (C{-C flows.bin -w +flows.bin}) are not read again.
    """
    for path in paths:
        name, fileobj = _opened(path)
        with fileobj:
            upto = io.BufferedReader(_Upto(fileobj), _READ_SIZE)
            yield from FlowReader(upto, name, report).stream()


def read_flows_from_paths(
    paths: Iterable[Union[str, os.PathLike[str]]], report: Optional[Report] = None
) -> list[Flow]:
    """
    All the flows of some files, in order (as mitmproxy's function of that
    name).  A file that cannot be read stops it with an error, before any
    flow is handed on.

    @param paths: File names; C{~} is expanded.
    @param report: Given each problem line (see L{FlowReader.problems}).
    @raise FlowReadException: A file cannot be opened or read.
    """
    return list(flows_from_paths(paths, report))
