# -*- test-case-name: tests.test_examples_foundation -*-
"""
An addon that declares its own option, follows it in C{configure}, counts
C{tick}s and watches the proxy's C{log} entries::

    twistd -n interceptor --addon examples/options_and_log.py --set report_every=50

Every C{report_every} ticks (0.1 s each by default, so every 5 s here) it
logs one line saying how many warnings and errors the proxy logged since
the last report; C{--set report_every=0} turns the reports off.  A negative
value is refused, and the option keeps its previous value.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from interceptor.log import LogEntry
from interceptor.options import OptionsError

_log = Logger(namespace="examples.options_and_log")


class OptionsAndLog:
    """
    Counts ticks, warnings and errors; reports every C{report_every} ticks.

    @ivar ticks: Ticks since the addon was loaded.
    @ivar warnings: Warning entries seen since the last report.
    @ivar errors: Error entries seen since the last report.
    @ivar reports: The report lines logged so far.
    """

    name = "options_and_log"

    def __init__(self) -> None:
        self.report_every = 0
        self.ticks = 0
        self.warnings = 0
        self.errors = 0
        self.reports: list[str] = []

    def load(self, loader: Any) -> None:
        """
        Declare the option C{report_every}.
        """
        loader.add_option(
            "report_every",
            int,
            100,
            "Log how many warnings and errors were seen every N ticks (0: never).",
        )

    def configure(self, options: Any, updated: set[str]) -> None:
        """
        Follow C{report_every}; refuse a negative value.
        """
        if "report_every" in updated:
            if options.report_every < 0:
                raise OptionsError(
                    f"option report_every: must be 0 or more, got {options.report_every}"
                )
            self.report_every = options.report_every

    def tick(self) -> None:
        """
        Count the tick; report when it is time.
        """
        self.ticks += 1
        if self.report_every and self.ticks % self.report_every == 0:
            line = f"{self.ticks} ticks: {self.warnings} warnings, {self.errors} errors"
            self.reports.append(line)
            self.warnings = self.errors = 0
            _log.info("options_and_log: {line}", line=line)

    def log(self, entry: LogEntry) -> None:
        """
        Count warnings and errors (our own reports are info, so they do not
        count themselves).
        """
        if entry.level == "warn":
            self.warnings += 1
        elif entry.level == "error":
            self.errors += 1


addons = [OptionsAndLog()]
