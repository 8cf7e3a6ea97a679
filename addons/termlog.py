# -*- test-case-name: tests.test_termlog -*-
"""
Prints log entries to the terminal, filtered by the option
C{termlog_verbosity} (debug, info, alert, warn, error; alert, mitmproxy's
level between info and warn, prints like info)::

    master.addons.add(TermLog())               # writes to the real stdout
    master.addons.add(TermLog(outfile=buf))    # or to any text file
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Optional, TextIO

from zope.interface import implementer

from interceptor.core.interfaces import IConfigure, IDone, ILog
from interceptor.core.log import LEVELS, LogEntry, terminal_claims

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.options import Options

__all__ = ["TermLog"]


@implementer(IConfigure, IDone, ILog)
class TermLog:
    """
    Writes each log entry at or above C{termlog_verbosity} to C{outfile}
    (the process's real stdout when not given).  While it writes to the
    terminal, the C{twistd} log observer stays quiet, so nothing is printed
    twice.
    """

    name = "termlog"

    def __init__(self, outfile: Optional[TextIO] = None) -> None:
        self.outfile = outfile
        self.threshold = LEVELS.index("info")
        self._claimed = False
        self._done = False

    def load(self, loader: Loader) -> None:
        """
        Declare C{termlog_verbosity}.
        """
        loader.add_option(
            "termlog_verbosity", str, "info", "Log verbosity on the terminal.", choices=LEVELS
        )

    def configure(self, options: Options, updated: set[str]) -> None:
        """
        Follow C{termlog_verbosity}; claim the terminal once running.
        """
        if "termlog_verbosity" in updated:
            self.threshold = LEVELS.index(options.termlog_verbosity)
        if self.outfile is None and not self._claimed:
            self._claimed = True
            terminal_claims.count += 1

    def log(self, entry: LogEntry) -> None:
        """
        Print the entry if it is urgent enough (and until C{done()}; then
        the twistd observer prints again).
        """
        if self._done:
            return
        level = LEVELS.index(entry.level) if entry.level in LEVELS else LEVELS.index("info")
        if level < self.threshold:
            return
        out = self.outfile or sys.__stdout__
        if out is None:  # (no standard output at all)
            return
        prefix = "" if entry.level in ("info", "alert") else f"[{entry.level}] "
        out.write(f"{prefix}{entry.msg}\n")
        out.flush()

    def done(self) -> None:
        """
        Give the terminal back.
        """
        self._done = True
        if self._claimed:
            self._claimed = False
            terminal_claims.count -= 1
