# -*- test-case-name: tests.test_coroutines,tests.compat.test_asyncio -*-
"""
Running the coroutine an C{async def} hook returned, as a L{Deferred}.

    d = run_coroutine(hook(flow), "request")

On a reactor built on an asyncio event loop (C{twistd -r asyncio}, or
C{trial --reactor=asyncio}) the coroutine runs as an asyncio task, so it may
await anything asyncio offers (C{asyncio.sleep}, futures, tasks, libraries
built on asyncio) and Deferreds alike: a Deferred it awaits is handed to the
task as a future of the same loop.

On any other reactor it runs as L{Deferred.fromCoroutine} does, awaiting
Deferreds only.  There asyncio code cannot run (no event loop turns), so a
hook that tries fails with an error saying so and how to run it, instead of
asyncio's own "no running event loop".
"""

from __future__ import annotations

import sys
from asyncio import AbstractEventLoop, CancelledError, Future
from typing import Any, Coroutine, Generator, Optional

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

__all__ = ["run_coroutine", "asyncio_loop", "AsyncioNeeded"]

# What asyncio raises when its code runs with no loop turning, and what a
# Deferred-driven coroutine raises when it is handed an asyncio future.
_NO_LOOP = ("no running event loop", "await wasn't used with future")


class AsyncioNeeded(RuntimeError):
    """
    A hook awaited asyncio while the reactor is not asyncio-based.
    """


def asyncio_loop() -> Optional[AbstractEventLoop]:
    """
    The asyncio event loop the installed reactor runs on, or None when it
    is not asyncio-based (or no reactor is installed yet).
    """
    # Looked up, not imported: importing it would install the default reactor.
    reactor = sys.modules.get("twisted.internet.reactor")
    loop: Optional[AbstractEventLoop] = getattr(reactor, "_asyncioEventloop", None)
    return loop


def run_coroutine(coroutine: Coroutine[Any, Any, Any], event: str) -> Deferred[Any]:
    """
    Run C{coroutine} (what a hook for C{event} returned) to its end.

    @return: A Deferred with its result, or its failure (an L{AsyncioNeeded}
        when it awaited asyncio on a reactor that is not asyncio-based).
    """
    loop = asyncio_loop()
    if loop is not None:
        return Deferred.fromFuture(loop.create_task(_drive(coroutine, loop)))
    d: Deferred[Any] = Deferred.fromCoroutine(coroutine)
    return d.addErrback(_explain_missing_loop, event)


def _explain_missing_loop(failure: Failure, event: str) -> Failure:
    if failure.check(RuntimeError) and str(failure.value) in _NO_LOOP:
        raise AsyncioNeeded(
            f"the {event} hook awaits asyncio, which needs the asyncio reactor: "
            "run 'twistd -r asyncio interceptor ...' (in a trial suite, "
            "'trial --reactor=asyncio')"
        ) from failure.value
    return failure


async def _drive(coroutine: Coroutine[Any, Any, Any], loop: AbstractEventLoop) -> Any:
    # A coroutine wrapper for create_task, which wants a real coroutine.
    return await _Bridged(coroutine, loop)


class _Bridged:
    """
    Awaiting this awaits C{coroutine} inside an asyncio task, waiting on a
    future of C{loop} for each Deferred it waits on (asyncio's task would
    reject a bare Deferred: "Task got bad yield").  Everything else it
    yields (asyncio futures, bare yields) goes to the task as it is; what
    the task sends or throws back (results, cancellation) goes to it.
    """

    def __init__(self, coroutine: Coroutine[Any, Any, Any], loop: AbstractEventLoop) -> None:
        self.coroutine = coroutine
        self.loop = loop

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine = self.coroutine
        sent: Any = None
        thrown: Optional[BaseException] = None
        while True:
            try:
                if thrown is None:
                    yielded = coroutine.send(sent)
                else:
                    yielded = coroutine.throw(thrown)
            except StopIteration as done:
                return done.value
            sent, thrown = None, None
            if isinstance(yielded, Deferred):
                # Once it has fired, the coroutine is resumed and takes the
                # Deferred's result (or error) itself, as when Twisted
                # drives it.
                try:
                    yield from _fired(yielded, self.loop).__await__()
                except CancelledError:
                    yielded.cancel()
                continue
            try:
                sent = yield yielded
            except BaseException as e:
                thrown = e


def _fired(d: Deferred[Any], loop: AbstractEventLoop) -> Future[None]:
    # Unlike Deferred.asFuture, leaves the Deferred's result in place.
    future: Future[None] = loop.create_future()

    def wake(result: Any) -> Any:
        if not future.done():
            future.set_result(None)
        return result

    d.addBoth(wake)
    return future
