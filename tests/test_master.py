"""
Tests for L{interceptor.master}: the tick loop, the log bridge to the
C{log} event, listening on endpoint strings, and stopping.
"""

import threading

from twisted.internet import reactor, threads
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger
from twisted.trial import unittest

from interceptor.core.master import Master, listening_at
from interceptor.core.options import OptionsError, proxy_options
from interceptor.model.encoding import DEFAULT_MAX_DECODED_SIZE, decode_cap
from interceptor.testing import LogRecorder

_log = Logger(namespace="tests.test_master")


class Ticks:
    """
    Counts ticks; returns C{self.returns()} from each when set.
    """

    def __init__(self, returns=None):
        self.count = 0
        self.returns = returns

    def tick(self):
        self.count += 1
        if self.returns is not None:
            return self.returns()


def make_slow_ticks():
    """
    L{Ticks} whose every tick returns a new unfired Deferred; with the list
    those Deferreds are appended to, oldest first.
    """
    pending = []

    def slow():
        d = Deferred()
        pending.append(d)
        return d

    return Ticks(slow), pending


class TickTests(unittest.TestCase):
    """
    tick() fires every tick_interval seconds, never re-entrantly.
    """

    def _master(self, *addons, **values):
        clock = Clock()
        master = Master(proxy_options(**values), addons, reactor=clock)
        self.addCleanup(master.stop)
        return master, clock

    def test_default_interval(self):
        """With the default 0.1 s interval, tick fires ten times per second, only once started."""
        ticks = Ticks()
        master, clock = self._master(ticks)
        clock.advance(1)
        self.assertEqual(ticks.count, 0)
        master.start()
        clock.pump([0.1] * 10)
        self.assertEqual(ticks.count, 10)
        clock.advance(0.05)
        self.assertEqual(ticks.count, 10)

    def test_no_tick_after_stop(self):
        """After stop() no tick fires and no call is left on the clock."""
        ticks = Ticks()
        master, clock = self._master(ticks)
        master.start()
        clock.advance(0.1)
        self.successResultOf(master.stop())
        clock.pump([0.1] * 5)
        self.assertEqual(ticks.count, 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_interval_option(self):
        """Changing tick_interval at run time changes the pace."""
        ticks = Ticks()
        master, clock = self._master(ticks)
        master.start()
        master.options.update(tick_interval=0.5)
        clock.pump([0.1] * 4)
        self.assertEqual(ticks.count, 0)
        clock.advance(0.1)
        self.assertEqual(ticks.count, 1)

    def test_interval_must_be_positive(self):
        """A tick_interval of zero or less is refused and the old one is kept."""
        master, _ = self._master()
        master.start()
        self.assertRaises(OptionsError, master.options.update, tick_interval=0.0)
        self.assertRaises(OptionsError, master.options.update, tick_interval=-1.0)
        self.assertEqual(master.options.tick_interval, 0.1)

    def test_slow_tick_not_reentrant(self):
        """A tick returning an unfired Deferred is not called again until it fires."""
        slow_ticks, pending = make_slow_ticks()
        master, clock = self._master(slow_ticks)
        master.start()
        clock.pump([0.1] * 20)
        self.assertEqual(slow_ticks.count, 1)
        pending[0].callback(None)
        clock.advance(0.1)
        self.assertEqual(slow_ticks.count, 2)

    def test_slow_tick_not_reentrant_across_interval_change(self):
        """Restarting the loop with a new tick_interval does not start a tick while one is running."""
        slow_ticks, pending = make_slow_ticks()
        master, clock = self._master(slow_ticks)
        master.start()
        clock.advance(0.1)
        master.options.update(tick_interval=0.2)
        clock.pump([0.2] * 5)
        self.assertEqual(slow_ticks.count, 1)
        pending[0].callback(None)
        clock.pump([0.2] * 3)
        self.assertEqual(slow_ticks.count, 2)
        pending[1].callback(None)
        clock.advance(0.2)
        self.assertEqual(slow_ticks.count, 3)

    def test_slow_tick_waits_for_clock(self):
        """A tick held 1 s by a deferLater on the clock delays the next tick, which then resumes."""
        holder = {}
        ticks = Ticks(lambda: deferLater(holder["clock"], 1.0, lambda: None))
        master, clock = self._master(ticks)
        holder["clock"] = clock
        master.start()
        clock.advance(0.1)
        clock.pump([0.1] * 9)
        self.assertEqual(ticks.count, 1)
        clock.pump([0.1] * 3)
        self.assertEqual(ticks.count, 2)


class LogBridgeTests(unittest.TestCase):
    """
    Every log line of the proxy reaches the addons' log hooks.
    """

    def _master(self, *addons):
        master = Master(proxy_options(), addons, reactor=Clock())
        master.start()
        self.addCleanup(master.stop)
        return master

    def test_levels(self):
        """Twisted log events arrive as entries with msg and a level among debug/info/warn/error."""
        recorder = LogRecorder()
        self._master(recorder)
        _log.debug("a {what}", what="debug line")
        _log.info("an info line")
        _log.warn("a warning")
        _log.error("an error")
        _log.critical("a critical line")
        mine = [(e.level, e.msg) for e in recorder.entries if e.event.get("log_namespace") == "tests.test_master"]
        self.assertEqual(
            mine,
            [
                ("debug", "a debug line"),
                ("info", "an info line"),
                ("warn", "a warning"),
                ("error", "an error"),
                ("error", "a critical line"),
            ],
        )

    def test_legacy_log(self):
        """Lines logged through twisted.python.log reach the log hooks too."""
        from twisted.python import log as legacy

        recorder = LogRecorder()
        self._master(recorder)
        legacy.msg("legacy line")
        self.assertIn("legacy line", recorder.messages("info"))

    def test_failure_is_error_with_traceback(self):
        """A logged failure is an error entry whose text carries the traceback."""
        recorder = LogRecorder()
        self._master(recorder)
        try:
            {}["missing"]
        except KeyError:
            _log.failure("lookup failed")
        [entry] = [e for e in recorder.entries if "lookup failed" in e.msg]
        self.assertEqual(entry.level, "error")
        self.assertIn("Traceback", entry.msg)
        self.assertIn("KeyError", entry.msg)
        self.flushLoggedErrors(KeyError)

    def test_not_before_start_nor_after_stop(self):
        """The bridge delivers only while the master runs."""
        recorder = LogRecorder()
        master = Master(proxy_options(), [recorder], reactor=Clock())
        _log.info("before start")
        master.start()
        _log.info("while running")
        self.successResultOf(master.stop())
        _log.info("after stop")
        self.assertEqual([m for m in recorder.messages() if m in {"before start", "while running", "after stop"}],
                         ["while running"])

    def test_logging_from_log_hook_does_not_loop(self):
        """An addon that logs from its log hook gets each outside line once and does not loop."""

        class Echo:
            def __init__(self):
                self.seen = []

            def log(self, entry):
                self.seen.append(entry.msg)
                _log.info("echo: {msg}", msg=entry.msg)

        echo = Echo()
        recorder = LogRecorder()
        self._master(echo, recorder)
        _log.info("outside")
        self.assertEqual(echo.seen.count("outside"), 1)
        self.assertFalse(any(m.startswith("echo:") for m in echo.seen))
        self.assertEqual(recorder.messages().count("outside"), 1)

    def test_log_from_thread_delivered_in_reactor_thread(self):
        """A line logged in another thread reaches the addons in the reactor thread."""
        seen = []

        class Where:
            def log(self, entry):
                if entry.msg == "from a thread":
                    seen.append(threading.current_thread())

        master = Master(proxy_options(), [Where()], reactor=reactor)
        master.start()
        self.addCleanup(master.stop)

        d = threads.deferToThread(_log.info, "from a thread")
        d.addCallback(lambda _: deferLater(reactor, 0, lambda: None))

        def check(_):
            self.assertEqual(seen, [threading.main_thread()])

        return d.addCallback(check)


class ListenTests(unittest.TestCase):
    """
    listen() takes any server endpoint string; stop() closes everything.
    """

    def test_listen_memory_reactor(self):
        """listen() parses the endpoint string and listens with the master's reactor."""
        memory = MemoryReactorClock()
        master = Master(proxy_options(), [], reactor=memory)
        master.start()
        port = self.successResultOf(master.listen("tcp:8123:interface=127.0.0.1"))
        [(number, factory, _, interface)] = memory.tcpServers
        self.assertEqual((number, interface), (8123, "127.0.0.1"))
        self.assertIs(factory.master, master)
        self.assertEqual(master.ports, [port])
        self.successResultOf(master.stop())
        self.assertEqual(master.ports, [])

    async def test_listen_real_port(self):
        """listen('tcp:0:...') returns a real listening port; stop() closes it and fires once done."""
        recorder = LogRecorder()
        master = Master(proxy_options(), [recorder])
        master.start()
        port = await master.listen("tcp:0:interface=127.0.0.1")
        self.assertTrue(IListeningPort.providedBy(port))
        self.assertEqual(port.getHost().host, "127.0.0.1")
        self.assertNotEqual(port.getHost().port, 0)
        number = port.getHost().port
        await master.stop()
        self.assertIn(f"Proxy listening on http://127.0.0.1:{number}\n", recorder.text() + "\n")
        self.assertFalse(port.connected)

    def test_listening_at(self):
        """The start-up line names the scheme clients use, the address and the mode."""
        v4, v6 = IPv4Address("TCP", "127.0.0.1", 8080), IPv6Address("TCP", "::1", 1080)
        cases = [
            ("regular", "tcp:8080", v4, "http://127.0.0.1:8080"),
            ("regular", "ssl:8080:privateKey=k.pem", v4, "https://127.0.0.1:8080"),
            ("socks5", "tcp:1080", v6, "socks5://[::1]:1080 (SOCKS5 mode)"),
            ("upstream:http://10.0.0.1:3128", "tcp:8080", v4,
             "http://127.0.0.1:8080 (upstream mode: http://10.0.0.1:3128)"),
            ("reverse:https://example.org", "tcp:8080", v4,
             "http://127.0.0.1:8080 (reverse mode: https://example.org)"),
            ("transparent", "tcp:8080", v4, "127.0.0.1:8080 (transparent mode)"),
        ]
        for mode, description, address, expected in cases:
            self.assertEqual(listening_at(mode, description, address), expected)

    def test_stop_twice(self):
        """A second stop() while the first waits for done() fires only when the first finishes."""
        clock = Clock()

        class SlowDone:
            def done(self):
                return deferLater(clock, 1.0, lambda: None)

        master = Master(proxy_options(), [SlowDone()], reactor=clock)
        master.start()
        first = master.stop()
        second = master.stop()
        self.assertNoResult(first)
        self.assertNoResult(second)
        clock.advance(1.0)
        self.successResultOf(first)
        self.successResultOf(second)
        self.successResultOf(master.stop())

    def test_stop_never_started(self):
        """stop() on a master that never started fires at once and calls no done()."""
        calls = []

        class Done:
            def done(self):
                calls.append("done")

        master = Master(proxy_options(), [Done()], reactor=Clock())
        self.successResultOf(master.stop())
        self.assertEqual(calls, [])

    def test_decode_cap_held_while_running(self):
        """
        A running master holds the process's decode cap: the smaller of
        max_decoded_size and body_size_limit, following changes; stopping
        releases it.
        """
        master = Master(proxy_options(max_decoded_size="3m"), reactor=Clock())
        self.assertEqual(decode_cap.size, DEFAULT_MAX_DECODED_SIZE)
        master.start()
        self.addCleanup(decode_cap.release, master)
        self.assertEqual(decode_cap.size, 3 << 20)
        master.options.update(body_size_limit="1m")
        self.assertEqual(decode_cap.size, 1 << 20)
        master.options.update(body_size_limit=None, max_decoded_size="5m")
        self.assertEqual(decode_cap.size, 5 << 20)
        self.successResultOf(master.stop())
        self.assertEqual(decode_cap.size, DEFAULT_MAX_DECODED_SIZE)

    def test_default_options(self):
        """A master built without options gets the core proxy options."""
        master = Master(reactor=Clock())
        self.assertEqual(master.options.tick_interval, 0.1)
