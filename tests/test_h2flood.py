# -*- test-case-name: tests.test_h2flood -*-
"""
Unit tests of L{interceptor.layers.http2_flood.FloodGuard}: per-window
counts of an HTTP/2 client's resets, empty DATA frames and control frames,
on a L{Clock}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial import unittest

from interceptor.core.options import OptionsError, proxy_options
from interceptor.layers.http2_flood import CONTROL, EMPTY_DATA, RESETS, FloodGuard


def _guard(clock, **values):
    values.setdefault("http2_max_resets", 3)
    values.setdefault("http2_max_empty_frames", 2)
    values.setdefault("http2_max_control_frames", 5)
    values.setdefault("http2_flood_window", 10.0)
    return FloodGuard(clock, proxy_options(**values))


class FloodGuardTests(unittest.TestCase):
    """
    A guard answers None until a kind's count in the current window passes
    its limit, then the reason.
    """

    def test_over_the_limit_names_the_reason(self):
        """The limit itself is allowed; one more gives the reason, naming the kind, limit and window."""
        guard = _guard(Clock())
        self.assertEqual([guard.count(RESETS) for _ in range(3)], [None] * 3)
        self.assertEqual(guard.count(RESETS), "more than 3 stream resets in 10 s")

    def test_kinds_counted_apart(self):
        """Resets, empty DATA frames and control frames each have their own count and limit."""
        guard = _guard(Clock())
        for _ in range(3):
            self.assertIsNone(guard.count(RESETS))
        for _ in range(2):
            self.assertIsNone(guard.count(EMPTY_DATA))
        for _ in range(5):
            self.assertIsNone(guard.count(CONTROL))
        self.assertEqual(guard.count(EMPTY_DATA), "more than 2 empty DATA frames in 10 s")
        self.assertEqual(guard.count(CONTROL), "more than 5 SETTINGS and PING frames in 10 s")

    def test_new_window_starts_over(self):
        """Once the window has passed, counting starts again from zero."""
        clock = Clock()
        guard = _guard(clock)
        for _ in range(3):
            self.assertIsNone(guard.count(RESETS))
        clock.advance(9.9)
        self.assertIsNotNone(guard.count(RESETS))
        clock.advance(0.1)
        for _ in range(3):
            self.assertIsNone(guard.count(RESETS))
        self.assertIsNotNone(guard.count(RESETS))

    def test_zero_is_no_limit(self):
        """A limit of 0 never closes the connection."""
        guard = _guard(Clock(), http2_max_resets=0)
        self.assertEqual({guard.count(RESETS) for _ in range(10000)}, {None})

    def test_defaults(self):
        """The defaults: 200 resets, 100 empty DATA frames, 1000 SETTINGS/PING frames per 10 s."""
        guard = FloodGuard(Clock(), proxy_options())
        self.assertEqual((guard.limits, guard.window), ((200, 100, 1000), 10.0))

    def test_bad_options_refused(self):
        """A negative limit or a window that is not positive is refused when set."""
        options = proxy_options()
        for name, value in (("http2_max_resets", -1), ("http2_max_empty_frames", -5),
                            ("http2_max_control_frames", -1), ("http2_flood_window", 0.0)):
            with self.assertRaises(OptionsError):
                options.update(**{name: value})
        self.assertEqual(options.http2_max_resets, 200)
