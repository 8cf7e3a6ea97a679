"""
Tests for L{interceptor.core.coroutines}: hooks' coroutines on the running
reactor (trial's, not asyncio-based), and the bridge that lets one await
Deferreds inside an asyncio task (on an asyncio loop of the test's own).
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine

from twisted.internet import reactor
from twisted.internet.asyncioreactor import AsyncioSelectorReactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.trial import unittest

from interceptor.core.coroutines import AsyncioNeeded, _drive, asyncio_loop, run_coroutine


_ON_ASYNCIO = "trial --reactor=asyncio: tests.compat.test_asyncio covers that reactor"


class OnTrialsReactorTests(unittest.TestCase):
    """
    trial's default reactor is not asyncio-based.
    """

    # (Told by the reactor's class, not by asyncio_loop(), which
    # test_no_loop checks.)
    if isinstance(reactor, AsyncioSelectorReactor):
        skip = _ON_ASYNCIO

    def test_no_loop(self) -> None:
        self.assertIsNone(asyncio_loop())

    async def test_awaiting_deferreds(self) -> None:
        """
        A coroutine awaiting Deferreds runs as Twisted runs coroutines.
        """

        async def hook() -> str:
            return await deferLater(reactor, 0.01, lambda: "done")

        self.assertEqual(await run_coroutine(hook(), "request"), "done")

    async def test_awaiting_asyncio(self) -> None:
        """
        A coroutine awaiting asyncio fails with an error naming the event
        and the reactor it needs, not asyncio's "no running event loop".
        """

        async def hook() -> None:
            await asyncio.sleep(0.01)

        with self.assertRaises(AsyncioNeeded) as caught:
            await run_coroutine(hook(), "response")
        self.assertIn("the response hook awaits asyncio", str(caught.exception))
        self.assertIn("twistd -r asyncio", str(caught.exception))
        self.assertIn("trial --reactor=asyncio", str(caught.exception))

    async def test_other_errors_unchanged(self) -> None:
        async def hook() -> None:
            raise RuntimeError("mine")

        with self.assertRaises(RuntimeError) as caught:
            await run_coroutine(hook(), "request")
        self.assertNotIsInstance(caught.exception, AsyncioNeeded)


class BridgeTests(unittest.TestCase):
    """
    A coroutine run as an asyncio task through the bridge, on a loop of
    the test's own (the Deferreds it awaits are fired from that loop).
    """

    if asyncio_loop() is not None:
        skip = _ON_ASYNCIO  # (its loop already runs in this thread)

    def setUp(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.addCleanup(self.loop.close)

    def run_task(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        task = self.loop.create_task(_drive(coroutine, self.loop))
        return self.loop.run_until_complete(asyncio.wait_for(task, 5))

    def later(self, fire: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.loop.call_later(0.01, fire, d)
        return d

    def test_deferred_result(self) -> None:
        """
        An awaited Deferred gives its result, an asyncio future its own.
        """

        async def hook() -> tuple[Any, Any]:
            first = await self.later(lambda d: d.callback("deferred"))
            future = self.loop.create_future()
            self.loop.call_later(0.01, future.set_result, "future")
            return first, await future

        self.assertEqual(self.run_task(hook()), ("deferred", "future"))

    def test_deferred_error(self) -> None:
        """
        An awaited Deferred's failure is raised in the coroutine, which may
        catch it.
        """

        async def hook() -> str:
            try:
                await self.later(lambda d: d.errback(ValueError("boom")))
            except ValueError as e:
                return str(e)
            return "not raised"

        self.assertEqual(self.run_task(hook()), "boom")

    def test_deferred_kept(self) -> None:
        """
        Awaiting a Deferred does not take its result away from the other
        callbacks it has.
        """
        seen: list[Any] = []

        async def hook() -> Any:
            d = self.later(lambda d: d.callback(7))
            value = await d
            d.addCallback(seen.append)
            return value

        self.assertEqual(self.run_task(hook()), 7)
        self.assertEqual(seen, [7])

    def test_cancelled_task(self) -> None:
        """
        Cancelling the task cancels the Deferred it waits on; the coroutine
        sees Twisted's CancelledError.
        """
        waiting: Deferred[None] = Deferred()
        seen: list[str] = []

        async def hook() -> None:
            try:
                await waiting
            except CancelledError:
                seen.append("cancelled")
                raise

        task = self.loop.create_task(_drive(hook(), self.loop))
        self.loop.call_later(0.01, task.cancel)
        with self.assertRaises(CancelledError):
            self.loop.run_until_complete(asyncio.wait_for(task, 5))
        self.assertEqual(seen, ["cancelled"])
