# -*- test-case-name: tests.test_save,tests.e2e.test_flowfile -*-
"""
Records every finished flow to a flow file as it completes, as mitmdump's
C{-w}::

    twistd -n interceptor -w flows.bin                       # a new file
    twistd -n interceptor -w +flows.bin                      # appended to
    twistd -n interceptor -w flows.bin --set save_stream_filter='~d example.org'

An HTTP flow is written once its response (or error) is done; a WebSocket
flow when its connection ends, with its messages; a raw TCP flow when it
ends, with its messages.  Flows still open when the proxy stops are written
too: closing their connections fails them (C{error}, C{websocket_error},
C{tcp_error}).  Replayed flows are written like live ones.  There is no
C{request} hook: an addon with one costs every request a call (5 % of S1).

Records leave the process at every tick (0.1 s) and at the end, so a
killed proxy loses at most the last tick's flows, and the reader reports a
record cut short (L{interceptor.io.FlowReader}).

The hooks exist only while C{save_stream_file} is set (a L{StreamRecorder}
nested under L{Save}): with no file, recording costs the proxy nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from twisted.logger import Logger
from zope.interface import implementer

from addons.finished import FinishedFlows
from interceptor.core.interfaces import IConfigure, IDone, ITCPEnd, ITCPError, ITick
from interceptor.core.options import OptionsError, filter_check, filter_option
from interceptor.io import FlowReadException, FlowWriter

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.master import Master
    from interceptor.core.options import Options
    from interceptor.model.flow import Flow
    from interceptor.model.tcp import TCPFlow

__all__ = ["Save", "StreamRecorder", "open_writer"]

_log = Logger(namespace="interceptor.save")


def open_writer(spec: str) -> FlowWriter:
    """
    A writer to the flow file C{spec}: C{PATH} is made anew, C{+PATH}
    appended to (after dropping a record cut short by a killed proxy).

    @raise OptionsError: It cannot be opened, or is another kind of file.
    """
    try:
        return FlowWriter.open(spec)
    except FlowReadException as e:
        raise OptionsError(f"save_stream_file: {e}") from None


@implementer(ITCPEnd, ITCPError, ITick)
class StreamRecorder(FinishedFlows):
    """
    Writes flows to one open flow file as they finish (nested under
    L{Save} while C{save_stream_file} is set): HTTP and WebSocket flows
    (L{FinishedFlows}), and raw TCP flows when they end, with their
    messages.
    """

    def __init__(self, writer: FlowWriter, name: str, keep: Optional[Callable[[Any], bool]]) -> None:
        super().__init__(keep)
        self.writer = writer
        self.name = name
        self._broken = False

    def add(self, flow: Flow) -> bool:
        """
        Write C{flow} (a write error is logged once, and recording stops).
        """
        if self._broken:
            return False
        try:
            self.writer.add(flow)
        except OSError as e:
            self._fail(e)
            return False
        return True

    def _fail(self, error: OSError) -> None:
        self._broken = True
        _log.error(
            "Recording stopped: cannot write {name}: {error}",
            name=self.name,
            error=error.strerror or error,
        )

    def tcp_end(self, flow: TCPFlow) -> None:
        """
        Write a raw TCP flow with its messages.
        """
        self.finished(flow)

    def tcp_error(self, flow: TCPFlow) -> None:
        """
        Write a raw TCP flow that failed.
        """
        self.finished(flow)

    def tick(self) -> None:
        """
        Hand what was written to the system.
        """
        self.flush()

    def flush(self) -> None:
        """
        Hand what was written to the system (errors are logged once).
        """
        if self._broken:
            return
        try:
            self.writer.flush()
        except OSError as e:
            self._fail(e)

    def close(self) -> None:
        """
        Close the file (what comes after is not written).
        """
        self.flush()
        self._broken = True
        try:
            self.writer.close()
        except OSError:
            pass


@implementer(IConfigure, IDone)
class Save:
    """
    The C{save_stream_file} and C{save_stream_filter} options: a
    L{StreamRecorder} nested under this addon while a file is set.
    """

    name = "save"

    def __init__(self) -> None:
        self.master: Optional[Master] = None
        self.recorder: Optional[StreamRecorder] = None

    def load(self, loader: Loader) -> None:
        """
        Declare the options.
        """
        self.master = loader.master
        loader.add_option(
            "save_stream_file",
            Optional[str],
            None,
            "Write every finished flow to this flow file (+PATH appends to it).",
        )
        loader.add_option(
            "save_stream_filter",
            Optional[str],
            None,
            "Write only the flows matching this filter expression.",
        )
        loader.master.options.subscribe(filter_check("save_stream_filter"))

    def configure(self, options: Options, updated: set[str]) -> None:
        """
        Open the file (or stop recording) when the options change.

        @raise OptionsError: The filter does not parse or the file cannot be
            opened; the recording in progress goes on.
        """
        if updated.isdisjoint({"save_stream_file", "save_stream_filter"}):
            return
        keep = filter_option(options, "save_stream_filter")
        spec = options.save_stream_file
        if "save_stream_file" not in updated and self.recorder is not None:
            self.recorder.keep = keep
            return
        recorder = StreamRecorder(open_writer(spec), spec.lstrip("+"), keep) if spec else None
        self._replace(recorder)

    def _replace(self, recorder: Optional[StreamRecorder]) -> None:
        previous, self.recorder = self.recorder, recorder
        master = self.master
        if previous is not None:
            if master is not None:
                master.addons.nest(previous, self, False)
            previous.close()
        if recorder is not None and master is not None:
            master.addons.nest(recorder, self, True)

    def done(self) -> None:
        """
        The proxy stops (or this addon is removed): write what is open and
        close the file.
        """
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.close()
