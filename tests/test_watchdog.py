"""
Tests for L{interceptor.transport.watchdog}: the inactivity timer, on a L{Clock}.
"""

from twisted.internet.task import Clock
from twisted.trial import unittest

from interceptor.transport.watchdog import SilenceWatch, Watchdog


class WatchdogTests(unittest.TestCase):
    """
    Watchdog calls expired(silence) after timeout() seconds without touch().
    """

    def _dog(self, limit=5.0, **options):
        self.clock = Clock()
        self.limit = limit
        self.expired = []
        dog = Watchdog(self.clock, lambda: self.limit, self.expired.append, **options)
        return dog

    def test_expires_after_silence(self):
        """Without touch() the watchdog expires exactly after the timeout, once."""
        dog = self._dog()
        dog.start()
        self.clock.advance(4.9)
        self.assertEqual(self.expired, [])
        self.clock.advance(0.1)
        self.assertEqual(self.expired, [5.0])
        self.clock.advance(100)
        self.assertEqual(self.expired, [5.0])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_touch_postpones(self):
        """A touch() restarts the silence count: expiry comes timeout seconds after the last touch."""
        dog = self._dog()
        dog.start()
        self.clock.advance(3)
        dog.touch()
        self.clock.advance(3)
        self.assertEqual(self.expired, [])
        self.clock.advance(1.9)
        self.assertEqual(self.expired, [])
        self.clock.advance(0.1)
        self.assertEqual(self.expired, [5.0])

    def test_touch_does_not_reschedule(self):
        """touch() only reads the clock: between two looks there is one delayed call, and it does not move."""
        dog = self._dog()
        dog.start()
        [call] = self.clock.getDelayedCalls()
        when = call.getTime()
        for _ in range(50):
            self.clock.advance(0.01)
            dog.touch()
        self.assertEqual(self.clock.getDelayedCalls(), [call])
        self.assertEqual(call.getTime(), when)

    def test_shrinking_limit_noticed_within_period(self):
        """A limit that shrinks while waiting is noticed at the next look, at most a period later."""
        dog = self._dog(limit=300.0, period=2.0)
        dog.start()
        self.clock.advance(10.0)
        self.limit = 5.0
        self.clock.advance(1.9)
        self.assertEqual(self.expired, [])
        self.clock.advance(0.1)
        self.assertEqual(self.expired, [12.0])

    def test_no_limit(self):
        """While timeout() is None nothing expires; a limit set later applies to the silence so far."""
        dog = self._dog(limit=None)
        dog.start()
        self.clock.pump([1.0] * 10)
        self.assertEqual(self.expired, [])
        self.limit = 12.0
        self.clock.pump([1.0] * 2)
        self.assertEqual(self.expired, [12.0])

    def test_limit_read_each_time(self):
        """A longer timeout set while waiting is honoured when the check runs."""
        dog = self._dog(limit=2.0)
        dog.start()
        self.limit = 4.0
        self.clock.advance(2.0)
        self.assertEqual(self.expired, [])
        self.clock.advance(2.0)
        self.assertEqual(self.expired, [4.0])

    def test_stop(self):
        """stop() cancels the timer and leaves no delayed call."""
        dog = self._dog()
        dog.start()
        dog.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10)
        self.assertEqual(self.expired, [])
        dog.stop()

    def test_restart_after_expiry(self):
        """start() after an expiry watches again from now."""
        dog = self._dog(limit=1.0)
        dog.start()
        self.clock.advance(1.0)
        dog.start()
        self.clock.advance(0.5)
        self.assertEqual(self.expired, [1.0])
        self.clock.advance(0.5)
        self.assertEqual(self.expired, [1.0, 1.0])


class SilenceWatchTests(unittest.TestCase):
    """
    SilenceWatch times many keys with one timer that looks every period.
    """

    def setUp(self):
        self.clock = Clock()
        self.held = set()
        self.expired = []
        self.watch = SilenceWatch(
            self.clock, 1.0, lambda key: None if key in self.held else 4.0,
            lambda key, silence: self.expired.append((key, silence)),
        )

    def test_each_key_expires_after_its_own_silence(self):
        """Keys touched at different times expire separately, each once, and are then forgotten."""
        self.watch.touch("a")
        self.clock.advance(2)
        self.watch.touch("b")
        self.clock.advance(2)
        self.assertEqual(self.expired, [("a", 4.0)])
        self.clock.advance(2)
        self.assertEqual(self.expired, [("a", 4.0), ("b", 4.0)])
        self.assertEqual(self.watch.last, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_one_timer(self):
        """However many keys are touched, one call is scheduled."""
        for key in range(100):
            self.watch.touch(key)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_touch_restarts_count(self):
        """A touch restarts that key's count."""
        self.watch.touch("a")
        self.clock.advance(3)
        self.watch.touch("a")
        self.clock.advance(3)
        self.assertEqual(self.expired, [])
        self.clock.advance(1)
        self.assertEqual(self.expired, [("a", 4.0)])

    def test_held_key_not_counted(self):
        """While limit() says None the key does not expire; counting restarts from the last look."""
        self.watch.touch("a")
        self.held.add("a")
        self.clock.advance(10)
        self.assertEqual(self.expired, [])
        self.held.discard("a")
        self.clock.advance(3)
        self.assertEqual(self.expired, [])
        self.clock.advance(1)
        self.assertEqual(self.expired, [("a", 4.0)])

    def test_forget_and_stop(self):
        """A forgotten key never expires; stop() cancels the timer."""
        self.watch.touch("a")
        self.watch.touch("b")
        self.watch.forget("a")
        self.clock.advance(5)
        self.assertEqual([key for key, _ in self.expired], ["b"])
        self.watch.touch("c")
        self.watch.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10)
        self.assertEqual([key for key, _ in self.expired], ["b"])
