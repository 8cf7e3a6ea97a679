# -*- test-case-name: tests.test_log -*-
"""
Log entries for addons, and the bridge from Twisted's logger to the C{log}
event.

Everything the proxy logs goes through L{twisted.logger}.  A running master
installs a L{LogBridge} on the global log publisher; each event becomes a
L{LogEntry} and is delivered to the addons' C{log} hooks::

    def log(entry):
        if entry.level == "error":
            alert(entry.msg)

Under C{twistd -n}, terminal output is left to the C{termlog} addon: the
plugin installs L{terminal_observer}, which prints only while no termlog
has claimed the terminal (start-up messages, start-up failures).
"""

from __future__ import annotations

import sys
from typing import Any, Callable, TextIO

from twisted.logger import (
    ILogObserver,
    LogLevel,
    formatEvent,
    formatEventAsClassicLogText,
    globalLogPublisher,
)
from twisted.python import threadable
from zope.interface import implementer

__all__ = ["LogEntry", "LogBridge", "LEVELS", "level_name", "terminal_observer"]

LEVELS = ("debug", "info", "warn", "error")
"""The entry levels, least urgent first."""

_LEVEL_NAMES = {
    LogLevel.debug: "debug",
    LogLevel.info: "info",
    LogLevel.warn: "warn",
    LogLevel.error: "error",
    LogLevel.critical: "error",
}


def level_name(event: dict[str, Any]) -> str:
    """
    The entry level (debug/info/warn/error) of a Twisted log event.
    """
    level = event.get("log_level", LogLevel.info)
    if event.get("log_failure") is not None and level < LogLevel.error:
        level = LogLevel.error
    return _LEVEL_NAMES.get(level, "info")


class LogEntry:
    """
    One log line as addons see it.

    @ivar msg: The text, with a traceback appended when the event carried one.
    @ivar level: C{"debug"}, C{"info"}, C{"warn"} or C{"error"}.
    @ivar event: The underlying Twisted log event.
    """

    __slots__ = ("msg", "level", "event")

    def __init__(self, msg: str, level: str, event: dict[str, Any] | None = None) -> None:
        self.msg = msg
        self.level = level
        self.event = event if event is not None else {}

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> "LogEntry":
        """
        Make an entry from a Twisted log event.
        """
        msg = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            msg = f"{msg}\n{failure.getTraceback()}".rstrip()
        return cls(msg, level_name(event), event)

    def __repr__(self) -> str:
        return f"LogEntry({self.level}: {self.msg!r})"


@implementer(ILogObserver)
class LogBridge:
    """
    A log observer that hands each log event, as a L{LogEntry}, to
    C{deliver} (the master passes its addons' C{log} trigger).

    A log line written from inside C{deliver} (an addon logging from its
    C{log} hook) is not delivered again, so it cannot loop.  A line logged
    from another thread than the reactor's is delivered in the reactor
    thread (through C{reactor.callFromThread}), so addons never run in a
    foreign thread.
    """

    def __init__(self, deliver: Callable[[LogEntry], object], reactor: object = None) -> None:
        self._deliver = deliver
        self._reactor = reactor
        self._delivering = False

    def __call__(self, event: dict[str, Any]) -> None:
        # (Twisted's threadable.ioThread is typed None, as its module sets it;
        # the reactor sets the thread id when it runs.)
        foreign = (
            threadable.ioThread is not None
            and not threadable.isInIOThread()  # type: ignore[unreachable]
        )
        if foreign:
            call_from_thread = getattr(self._reactor, "callFromThread", None)
            if call_from_thread is None:
                return
            call_from_thread(self._deliver_now, LogEntry.from_event(event))
            return
        self._deliver_now(LogEntry.from_event(event))

    def _deliver_now(self, entry: LogEntry) -> None:
        if self._delivering:
            return
        self._delivering = True
        try:
            self._deliver(entry)
        finally:
            self._delivering = False

    def install(self) -> None:
        """
        Start observing the global log publisher.
        """
        globalLogPublisher.addObserver(self)

    def uninstall(self) -> None:
        """
        Stop observing the global log publisher.
        """
        globalLogPublisher.removeObserver(self)


class _TerminalClaims:
    """
    Counts the termlog addons that print to the terminal, so that the
    twistd observer stays quiet while one does.
    """

    def __init__(self) -> None:
        self.count = 0


terminal_claims = _TerminalClaims()
"""Claimed by each running C{termlog} addon that writes to the terminal."""


def terminal_observer(outfile: TextIO | None = None) -> ILogObserver:
    """
    The log observer C{twistd -n interceptor} uses instead of twistd's own:
    it prints log events to the terminal only while no C{termlog} addon has
    claimed it, i.e. before the proxy has started and after it has stopped.
    """

    @implementer(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if terminal_claims.count:
            return
        text = formatEventAsClassicLogText(event)
        if text:
            out = outfile or sys.__stdout__
            if out is None:  # (no standard output at all)
                return
            out.write(text)
            out.flush()

    observer: ILogObserver = observe  # (what @implementer returns is not typed)
    return observer
