# -*- test-case-name: tests.compat.test_asyncio -*-
"""
C{@concurrent}: a hook that runs in a thread, as mitmproxy's decorator of
the same name.

    from interceptor.concurrent import concurrent   # or interceptor.script

    @concurrent
    def request(flow):
        time.sleep(1)            # blocks this thread only
        flow.request.headers["x-slow"] = "1"

The decorated hook runs in the reactor's thread pool
(L{twisted.internet.threads.deferToThread}); the flow it is called for
waits until it returns, other flows and connections go on meanwhile.  An
C{async def} hook runs on an asyncio event loop of its own in that thread.
The pool has Twisted's default size (10 threads; more hooks at once
queue), and a hook in a thread must not call into the reactor: it may
change the flow it was given, nothing else the proxy owns.

Only event hooks may be decorated, and not C{load}, C{configure} or
C{start}, whose result the proxy needs at once: decorating anything else
raises L{NotImplementedError} when the script is imported.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from interceptor.core.interfaces import EVENTS

__all__ = ["concurrent"]

_SYNCHRONOUS = frozenset({"load", "configure", "start"})
"""Hooks whose result the proxy uses at once, so they cannot wait on a thread."""


def concurrent(hook: Callable[..., Any]) -> Callable[..., Deferred[Any]]:
    """
    Make C{hook} (an event hook: a function or a method) run in a thread;
    the decorated hook returns a Deferred firing with its result.

    @raise NotImplementedError: C{hook} is not named after an event, or
        names one that cannot wait (C{load}, C{configure}, C{start}).
    """
    name = getattr(hook, "__name__", repr(hook))
    if name not in EVENTS or name in _SYNCHRONOUS:
        raise NotImplementedError(
            f"@concurrent is not supported for {name!r}: only event hooks other than "
            f"{', '.join(sorted(_SYNCHRONOUS))} can run in a thread"
        )

    def run(*args: Any) -> Any:
        result = hook(*args)
        if inspect.iscoroutine(result):
            return asyncio.run(result)
        return result

    @functools.wraps(hook)
    def in_thread(*args: Any) -> Deferred[Any]:
        return deferToThread(run, *args)

    return in_thread
