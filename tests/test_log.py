"""
Tests for L{interceptor.log}: log entries, the bridge from Twisted's
logger, and the terminal observer twistd uses.
"""

import io

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.trial import unittest

from interceptor.core.log import (
    LEVELS,
    LogBridge,
    LogEntry,
    level_name,
    terminal_claims,
    terminal_observer,
)


def event(fmt="hello {who}", level=LogLevel.info, **fields):
    """
    A Twisted log event.
    """
    return dict(log_format=fmt, log_level=level, log_namespace="test", **fields)


class LogEntryTests(unittest.TestCase):
    """
    LogEntry: msg and level from a Twisted log event.
    """

    def test_levels(self):
        """Twisted levels map to debug/info/warn/error (critical counts as error)."""
        self.assertEqual(LEVELS, ("debug", "info", "alert", "warn", "error"))
        for level, name in [
            (LogLevel.debug, "debug"),
            (LogLevel.info, "info"),
            (LogLevel.warn, "warn"),
            (LogLevel.error, "error"),
            (LogLevel.critical, "error"),
        ]:
            self.assertEqual(level_name(event(level=level)), name)

    def test_failure_raises_level(self):
        """An event carrying a failure is at least an error, whatever its level."""
        self.assertEqual(level_name(event(level=LogLevel.info, log_failure=Failure(ValueError()))), "error")

    def test_from_event(self):
        """The entry's msg is the formatted text, and it keeps the event."""
        e = event(who="world")
        entry = LogEntry.from_event(e)
        self.assertEqual((entry.msg, entry.level), ("hello world", "info"))
        self.assertIs(entry.event, e)
        self.assertIn("hello world", repr(entry))

    def test_traceback_appended(self):
        """A failure's traceback follows the message."""
        try:
            raise ValueError("bad value")
        except ValueError:
            failure = Failure()
        entry = LogEntry.from_event(event("it broke", log_failure=failure))
        self.assertTrue(entry.msg.startswith("it broke\n"))
        self.assertIn("Traceback", entry.msg)
        self.assertIn("ValueError: bad value", entry.msg)


class LogBridgeTests(unittest.TestCase):
    """
    LogBridge hands events to its deliver function without looping.
    """

    def test_delivers_entries(self):
        """Each observed event is delivered as a LogEntry."""
        got = []
        bridge = LogBridge(got.append)
        bridge(event(who="a"))
        bridge(event(who="b", level=LogLevel.warn))
        self.assertEqual([(e.msg, e.level) for e in got], [("hello a", "info"), ("hello b", "warn")])

    def test_reentrant_event_dropped(self):
        """An event emitted while delivering (a log hook logging) is not delivered again."""
        got = []

        def deliver(entry):
            got.append(entry.msg)
            bridge(event(who="again"))

        bridge = LogBridge(deliver)
        bridge(event(who="first"))
        bridge(event(who="second"))
        self.assertEqual(got, ["hello first", "hello second"])

    def test_error_in_deliver_resets(self):
        """An exception while delivering does not leave the bridge stuck."""
        got = []

        def deliver(entry):
            got.append(entry.msg)
            if len(got) == 1:
                raise RuntimeError("once")

        bridge = LogBridge(deliver)
        self.assertRaises(RuntimeError, bridge, event(who="1"))
        bridge(event(who="2"))
        self.assertEqual(got, ["hello 1", "hello 2"])

    def test_install_uninstall(self):
        """install() observes the global publisher, uninstall() stops it."""
        got = []
        log = Logger(namespace="tests.test_log")
        bridge = LogBridge(got.append)
        bridge.install()
        try:
            log.info("hello {who}", who="installed")
        finally:
            bridge.uninstall()
        log.info("hello {who}", who="removed")
        mine = [e.msg for e in got if e.event.get("log_namespace") == "tests.test_log"]
        self.assertEqual(mine, ["hello installed"])


class TerminalObserverTests(unittest.TestCase):
    """
    The twistd observer prints only while no termlog claims the terminal.
    """

    def test_prints_when_unclaimed(self):
        """With no claim, events are printed as classic log text."""
        out = io.StringIO()
        observer = terminal_observer(out)
        observer(event(who="terminal", log_time=0.0, log_system="-"))
        self.assertIn("hello terminal", out.getvalue())

    def test_quiet_when_claimed(self):
        """While a termlog claims the terminal, nothing is printed."""
        out = io.StringIO()
        observer = terminal_observer(out)
        terminal_claims.count += 1
        try:
            observer(event(who="hidden", log_time=0.0, log_system="-"))
        finally:
            terminal_claims.count -= 1
        self.assertEqual(out.getvalue(), "")
