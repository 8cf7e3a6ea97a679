"""
Tests for L{addons.termlog}: log entries on the terminal, filtered by the
option C{termlog_verbosity}.
"""

import io

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from addons.termlog import TermLog
from interceptor.core.interfaces import IConfigure, IDone, ILog
from interceptor.core.log import LogEntry, terminal_claims
from interceptor.core.master import Master
from interceptor.core.options import OptionsError, proxy_options

_log = Logger(namespace="tests.test_termlog")


class TermLogTests(unittest.TestCase):
    """
    TermLog prints entries at or above its verbosity.
    """

    def _termlog(self, **values):
        out = io.StringIO()
        termlog = TermLog(outfile=out)
        master = Master(proxy_options(), [termlog], reactor=Clock())
        if values:
            master.options.update(**values)
        master.start()
        self.addCleanup(master.stop)
        return termlog, master, out

    def _emit_all(self, termlog):
        for level in ("debug", "info", "warn", "error"):
            termlog.log(LogEntry(f"{level} line", level))

    def test_provides_interfaces(self):
        """TermLog verifies against ILog, IConfigure and IDone."""
        termlog = TermLog(outfile=io.StringIO())
        for iface in (ILog, IConfigure, IDone):
            self.assertTrue(verifyObject(iface, termlog))

    def test_declares_verbosity(self):
        """TermLog declares termlog_verbosity (default info, one of the four levels)."""
        _, master, _ = self._termlog()
        option = master.options.option("termlog_verbosity")
        self.assertEqual(option.default, "info")
        self.assertEqual(option.choices, ["debug", "info", "alert", "warn", "error"])
        self.assertRaises(OptionsError, master.options.update, termlog_verbosity="loud")

    def test_default_info(self):
        """By default info and above are printed, with a [level] prefix on warnings and errors."""
        termlog, _, out = self._termlog()
        self._emit_all(termlog)
        self.assertEqual(out.getvalue(), "info line\n[warn] warn line\n[error] error line\n")

    def test_verbosity_levels(self):
        """Each verbosity prints exactly its level and the more urgent ones."""
        expected = {
            "debug": ["debug", "info", "warn", "error"],
            "info": ["info", "warn", "error"],
            "warn": ["warn", "error"],
            "error": ["error"],
        }
        for verbosity, levels in expected.items():
            termlog, _, out = self._termlog(termlog_verbosity=verbosity)
            self._emit_all(termlog)
            printed = [line.split()[-2] for line in out.getvalue().splitlines()]
            self.assertEqual(printed, levels, verbosity)

    def test_verbosity_changes_at_run_time(self):
        """Setting termlog_verbosity while running takes effect for the next entries."""
        termlog, master, out = self._termlog()
        master.options.set("termlog_verbosity=error")
        self._emit_all(termlog)
        self.assertEqual(out.getvalue(), "[error] error line\n")

    def test_proxy_log_reaches_terminal(self):
        """A line logged through Twisted's logger while running is printed by TermLog."""
        _, _, out = self._termlog(termlog_verbosity="warn")
        _log.info("quiet info")
        _log.warn("loud {what}", what="warning")
        self.assertNotIn("quiet info", out.getvalue())
        self.assertIn("[warn] loud warning\n", out.getvalue())

    def test_nothing_after_done(self):
        """After done() TermLog prints nothing (twistd's observer takes over)."""
        termlog, master, out = self._termlog()
        self.successResultOf(master.stop())
        termlog.log(LogEntry("late", "error"))
        self.assertEqual(out.getvalue(), "")

    def test_claims_terminal_only_without_outfile(self):
        """A TermLog writing to the real stdout claims the terminal while running; with an outfile it does not."""
        before = terminal_claims.count
        _, master, _ = self._termlog()
        self.assertEqual(terminal_claims.count, before)
        real = TermLog()
        other = Master(proxy_options(), [real], reactor=Clock())
        other.start()
        self.assertEqual(terminal_claims.count, before + 1)
        self.successResultOf(other.stop())
        self.assertEqual(terminal_claims.count, before)
