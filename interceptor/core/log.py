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

Records of Python's C{logging} module (any logger, the root one included)
join them while a master runs: L{StdlibBridge} turns each record into a
Twisted log event at the record's level, so C{logging.info(...)} in a
script reaches the C{log} event and the terminal like the proxy's own
lines.  L{ALERT} is mitmproxy's level between info and warn.

Under C{twistd -n}, terminal output is left to the C{termlog} addon: the
plugin installs L{terminal_observer}, which prints only while no termlog
has claimed the terminal (start-up messages, start-up failures).
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any, Callable, TextIO

from twisted.logger import (
    ILogObserver,
    Logger,
    LogLevel,
    formatEvent,
    formatEventAsClassicLogText,
    globalLogPublisher,
)
from twisted.python import threadable
from zope.interface import implementer

__all__ = [
    "LogEntry",
    "LogBridge",
    "LEVELS",
    "ALERT",
    "DEBUG",
    "INFO",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "level_name",
    "terminal_observer",
    "StdlibBridge",
    "stdlib_bridge",
    "ScriptLog",
]

ALERT = logging.INFO + 1
"""mitmproxy's C{logging} level for what deserves the user's attention: as
urgent as info (its value, 21, is mitmproxy's)."""
logging.addLevelName(ALERT, "ALERT")

DEBUG, INFO, WARNING, ERROR, CRITICAL = (
    logging.DEBUG,
    logging.INFO,
    logging.WARNING,
    logging.ERROR,
    logging.CRITICAL,
)

LEVELS = ("debug", "info", "alert", "warn", "error")
"""The entry levels, least urgent first."""

# The level a Twisted event carries when it came from a logging record
# whose level Twisted has no name for (ALERT).
_ENTRY_LEVEL_KEY = "interceptor_level"

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
    named = event.get(_ENTRY_LEVEL_KEY)
    if named is not None:
        return str(named)
    level = event.get("log_level", LogLevel.info)
    if event.get("log_failure") is not None and level < LogLevel.error:
        level = LogLevel.error
    return _LEVEL_NAMES.get(level, "info")


class LogEntry:
    """
    One log line as addons see it.

    @ivar msg: The text, with a traceback appended when the event carried one.
    @ivar level: C{"debug"}, C{"info"}, C{"alert"}, C{"warn"} or C{"error"}.
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


def _twisted_level(levelno: int) -> tuple[LogLevel, str | None]:
    # (The Twisted level, and the entry level when Twisted has no name for it.)
    if levelno >= logging.ERROR:
        return LogLevel.error if levelno < logging.CRITICAL else LogLevel.critical, None
    if levelno >= logging.WARNING:
        return LogLevel.warn, None
    if levelno >= ALERT:
        return LogLevel.info, "alert"
    if levelno >= logging.INFO:
        return LogLevel.info, None
    return LogLevel.debug, None


# Libraries that log every frame or header block at debug level: quiet
# unless their loggers were configured, or each would cost every request.
_CHATTY = ("hpack", "h2", "hyperframe", "wsproto", "asyncio", "charset_normalizer")


class StdlibBridge(logging.Handler):
    """
    A handler on the root logger of Python's C{logging} that re-emits every
    record as a Twisted log event (namespace: the record's logger name) at
    its level, so that it reaches the proxy's log.  Installed while at
    least one master runs (L{join}/L{leave} count them): the root
    logger's level is then DEBUG (restored after), and the loggers of
    chatty libraries that nobody configured are set to WARNING.
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self, logging.DEBUG)
        self._holders = 0
        self._root_level = logging.WARNING
        self._quieted: list[logging.Logger] = []

    def emit(self, record: logging.LogRecord) -> None:
        """
        Re-emit C{record} as a Twisted log event.
        """
        try:
            text = record.getMessage()
        except Exception as e:  # a format string that does not fit its arguments
            text = f"{record.msg!r} (bad log arguments {record.args!r}: {e})"
        if record.exc_info and record.exc_info[0] is not None:
            text = f"{text}\n{''.join(traceback.format_exception(*record.exc_info)).rstrip()}"
        level, named = _twisted_level(record.levelno)
        extra = {_ENTRY_LEVEL_KEY: named} if named is not None else {}
        Logger(namespace=record.name or "root").emit(level, "{stdlib_text}", stdlib_text=text, **extra)

    def join(self) -> None:
        """
        A master started: install the handler if it is the first.
        """
        self._holders += 1
        if self._holders > 1:
            return
        root = logging.getLogger()
        self._root_level = root.level
        root.setLevel(logging.DEBUG)
        for name in _CHATTY:
            chatty = logging.getLogger(name)
            if chatty.level == logging.NOTSET:
                chatty.setLevel(logging.WARNING)
                self._quieted.append(chatty)
        root.addHandler(self)

    # (Not hold/release: logging.Handler's release() is its lock's.)
    def leave(self) -> None:
        """
        A master stopped: remove the handler once the last one has.
        """
        if self._holders == 0:
            return
        self._holders -= 1
        if self._holders:
            return
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._root_level)
        for chatty in self._quieted:
            chatty.setLevel(logging.NOTSET)
        self._quieted.clear()

    @property
    def installed(self) -> bool:
        """
        Whether the handler is on the root logger now.
        """
        return self._holders > 0


stdlib_bridge = StdlibBridge()
"""The one bridge of the process (masters share it: each record is
re-emitted once, and each master's L{LogBridge} delivers it)."""


class ScriptLog:
    """
    mitmproxy's C{ctx.log} (deprecated there too): each method logs its
    text on Python's root logger at its level.
    """

    def debug(self, text: object) -> None:
        """Log at debug level."""
        logging.getLogger().debug("%s", text)

    def info(self, text: object) -> None:
        """Log at info level."""
        logging.getLogger().info("%s", text)

    def alert(self, text: object) -> None:
        """Log at L{ALERT} level (info that deserves attention)."""
        logging.getLogger().log(ALERT, "%s", text)

    def warn(self, text: object) -> None:
        """Log at warning level."""
        logging.getLogger().warning("%s", text)

    def error(self, text: object) -> None:
        """Log at error level."""
        logging.getLogger().error("%s", text)

    def __call__(self, text: object, level: str = "info") -> None:
        """
        Log at the level named C{level} (C{"debug"} ... C{"error"}).
        """
        number = logging.getLevelName(level.upper())
        if not isinstance(number, int):
            raise ValueError(f"ctx.log: unknown level {level!r}, expected one of {', '.join(LEVELS)}")
        logging.getLogger().log(number, "%s", text)


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
