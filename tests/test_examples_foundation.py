"""
Tests for C{examples/options_and_log.py}, loaded through the script loader
as C{--addon examples/options_and_log.py} would load it.
"""

import os

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial import unittest

from addons.script import ScriptLoader
from interceptor.core.master import Master
from interceptor.core.options import OptionsError, proxy_options
from interceptor.testing import LogRecorder

EXAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "options_and_log.py"
)

_log = Logger(namespace="tests.test_examples_foundation")


class OptionsAndLogExampleTests(unittest.TestCase):
    """
    The example declares an option, follows configure, counts ticks and
    watches log entries.
    """

    def setUp(self):
        self.clock = Clock()
        self.recorder = LogRecorder()
        self.master = Master(proxy_options(), [self.recorder, ScriptLoader()], reactor=self.clock)
        self.master.options.update(scripts=[EXAMPLE])
        self.master.start()
        self.addCleanup(self.master.stop)
        [script] = self.master.addons.get("scriptloader").loaded.values()
        self.addon = self.master.addons.get("options_and_log")
        self.assertIs(self.addon, script.module.addons[0])

    def test_loads_cleanly(self):
        """The example loads through the script loader with no warning or error."""
        self.assertTrue(os.path.isfile(EXAMPLE))
        self.assertEqual(self.recorder.messages("warn"), [])
        self.assertEqual(self.recorder.messages("error"), [])

    def test_declares_option(self):
        """The example declares report_every (int, default 100) with help text, and follows it."""
        option = self.master.options.option("report_every")
        self.assertIs(option.typespec, int)
        self.assertEqual(option.default, 100)
        self.assertIn("warnings and errors", option.help)
        self.assertEqual(self.addon.report_every, 100)
        self.master.options.set("report_every=5")
        self.assertEqual(self.addon.report_every, 5)

    def test_refuses_negative(self):
        """A negative report_every is refused and the option keeps its value."""
        self.master.options.update(report_every=7)
        e = self.assertRaises(OptionsError, self.master.options.update, report_every=-1)
        self.assertIn("report_every", str(e))
        self.assertEqual(self.master.options.report_every, 7)
        self.assertEqual(self.addon.report_every, 7)

    def test_counts_ticks_and_reports_log_levels(self):
        """Every report_every ticks it logs how many warnings and errors it saw since the last report."""
        self.master.options.update(report_every=10)
        _log.warn("first warning")
        _log.warn("second warning")
        _log.error("an error")
        _log.info("not counted")
        self.clock.pump([0.1] * 9)
        self.assertEqual(self.addon.ticks, 9)
        self.assertEqual(self.addon.reports, [])
        self.clock.advance(0.1)
        self.assertEqual(self.addon.reports, ["10 ticks: 2 warnings, 1 errors"])
        self.assertIn("options_and_log: 10 ticks: 2 warnings, 1 errors", self.recorder.messages("info"))
        self.clock.pump([0.1] * 10)
        self.assertEqual(self.addon.reports[-1], "20 ticks: 0 warnings, 0 errors")

    def test_zero_turns_reports_off(self):
        """With report_every=0 it still counts ticks but never reports."""
        self.master.options.update(report_every=0)
        self.clock.pump([0.1] * 50)
        self.assertEqual(self.addon.ticks, 50)
        self.assertEqual(self.addon.reports, [])
