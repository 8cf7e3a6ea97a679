# -*- test-case-name: tests.e2e.test_flowfile -*-
"""
Writes the HTTP flows as a HAR 1.2 file when the proxy stops, as
mitmproxy's C{hardump} option::

    twistd -n interceptor --set hardump=traffic.har
    twistd -n interceptor --set hardump=-          # to standard output

Each entry is made as its flow finishes (L{addons.finished.FinishedFlows})
and kept in a temporary file, not in memory; at the end the file is completed and moved (or copied) where
C{hardump} says.  C{hardump_filter} keeps only the matching flows.
WebSocket flows are written once they end (or fail), with their messages
(C{_webSocketMessages}, as Chromium writes them).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import IO, TYPE_CHECKING, Any, Callable, Optional

from twisted.logger import Logger
from zope.interface import implementer

from addons.finished import FinishedFlows
from interceptor.core.interfaces import IConfigure, IDone
from interceptor.core.options import filter_check, filter_option
from interceptor.io.har import HarWriter
from interceptor.model.flow import HTTPFlow

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.master import Master
    from interceptor.core.options import Options
    from interceptor.model.flow import Flow

__all__ = ["SaveHar", "HarRecorder"]

_log = Logger(namespace="interceptor.savehar")


class HarRecorder(FinishedFlows):
    """
    Adds each finished HTTP flow to a HAR being written to a temporary
    file (nested under L{SaveHar} while C{hardump} is set).
    """

    def __init__(self, keep: Optional[Callable[[Any], bool]]) -> None:
        super().__init__(keep)
        self.spool: IO[bytes] = tempfile.TemporaryFile()
        self.writer = HarWriter(self.spool)

    def add(self, flow: Flow) -> bool:
        """
        Add C{flow}'s entry.
        """
        if not isinstance(flow, HTTPFlow):
            return False
        self.writer.add(flow)
        return True

    def finish(self, target: str) -> None:
        """
        Complete the HAR and write it to C{target} (a path, or C{-} for
        standard output).
        """
        self.writer.close()
        spool = self.spool
        spool.seek(0)
        if target == "-":
            out = sys.stdout.buffer if sys.stdout is not None else None
            if out is not None:
                shutil.copyfileobj(spool, out)
                out.flush()
        else:
            path = os.path.expanduser(target)
            with open(path, "wb") as f:
                shutil.copyfileobj(spool, f)
            _log.info("HAR with {count} entries written to {path}", count=self.count, path=path)
        spool.close()


@implementer(IConfigure, IDone)
class SaveHar:
    """
    The C{hardump} and C{hardump_filter} options.
    """

    name = "savehar"

    def __init__(self) -> None:
        self.master: Optional[Master] = None
        self.recorder: Optional[HarRecorder] = None
        self.target: Optional[str] = None

    def load(self, loader: Loader) -> None:
        """
        Declare the options.
        """
        self.master = loader.master
        loader.add_option(
            "hardump",
            str,
            "",
            "Write the HTTP flows to this HAR file when the proxy stops (- for standard output).",
        )
        loader.add_option(
            "hardump_filter",
            Optional[str],
            None,
            "Write only the flows matching this filter expression to the HAR.",
        )
        loader.master.options.subscribe(filter_check("hardump_filter"))

    def configure(self, options: Options, updated: set[str]) -> None:
        """
        Start (or stop) collecting flows when C{hardump} changes.

        @raise OptionsError: The filter does not parse.
        """
        keep = filter_option(options, "hardump_filter")
        if self.recorder is not None:
            self.recorder.keep = keep
        if "hardump" not in updated:
            return
        self.target = options.hardump or None
        if self.target and self.recorder is None:
            self.recorder = HarRecorder(keep)
            if self.master is not None:
                self.master.addons.nest(self.recorder, self, True)

    def done(self) -> None:
        """
        The proxy stops: write the HAR.
        """
        recorder, self.recorder = self.recorder, None
        if recorder is None or not self.target:
            return
        try:
            recorder.finish(self.target)
        except OSError as e:
            _log.error("Cannot write the HAR {path}: {error}", path=self.target, error=e.strerror or e)
