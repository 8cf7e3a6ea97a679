# -*- test-case-name: tests.test_watchdog -*-
"""
Cheap inactivity timers: L{Watchdog} for a connection, L{SilenceWatch}
for the streams of a multiplexed one.

    dog = Watchdog(reactor, lambda: 30.0, on_silence)
    dog.start()
    ...
    dog.touch()      # on every read: one clock read, no rescheduling
    dog.stop()

The timer is rescheduled only when it fires, so touching it per chunk costs
almost nothing.  C{timeout()} is asked each time: it returns the current
allowed silence in seconds, or None for "no limit right now".  It looks at
least every C{period} seconds, so a limit that shrinks is noticed in time.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Callable, Generic, Optional, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

if TYPE_CHECKING:
    from interceptor.core.master import Master

_K = TypeVar("_K", bound=Hashable)

__all__ = ["SilenceWatch", "Watchdog"]


class Watchdog:
    """
    Calls C{expired(silence)} when nothing touched it for C{timeout()}
    seconds.
    """

    __slots__ = ("clock", "timeout", "expired", "period", "last", "_call")

    def __init__(
        self,
        clock: IReactorTime,
        timeout: Callable[[], Optional[float]],
        expired: Callable[[float], None],
        period: Optional[float] = None,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.expired = expired
        self.period = period
        self.last = clock.seconds()
        self._call: Optional[IDelayedCall] = None

    @classmethod
    def for_connection(
        cls, master: Master, timeout: Callable[[], Optional[float]], expired: Callable[[float], None]
    ) -> "Watchdog":
        """
        A watchdog on C{master}'s clock that looks four times per
        C{read_timeout} (the shortest limit a proxied connection has).
        """
        return cls(master.clock, timeout, expired, period=master.options.read_timeout / 4)

    def touch(self) -> None:
        """
        Something happened: restart the silence count.
        """
        self.last = self.clock.seconds()

    def start(self) -> None:
        """
        Start (or restart) watching, counting from now.
        """
        self.touch()
        self._schedule()

    def _schedule(self) -> None:
        if self._call is not None and self._call.active():
            return
        limit = self.timeout()
        # The limit may shrink before this call fires (an idle connection
        # starts a request): never wait longer than the period between looks.
        period = self.period if self.period is not None else 1.0
        if limit is None:
            delay = period
        else:
            delay = min(max(limit - (self.clock.seconds() - self.last), 0.0), period)
        self._call = self.clock.callLater(delay, self._check)

    def _check(self) -> None:
        self._call = None
        limit = self.timeout()
        silence = self.clock.seconds() - self.last
        if limit is not None and silence >= limit:
            self.expired(silence)
        else:
            self._schedule()

    def stop(self) -> None:
        """
        Stop watching.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


class SilenceWatch(Generic[_K]):
    """
    Inactivity timers for the many streams of one connection, all looked
    at by one timer:

        watch = SilenceWatch(reactor, 7.5, limit, expired)
        watch.touch(stream)      # activity on stream: restart its count
        watch.forget(stream)     # stream is over
        watch.stop()             # the connection is over

    C{limit(stream)} returns the silence allowed of C{stream} right now, or
    None while it is not to be counted (the proxy itself holds it back);
    its count then restarts.  C{expired(stream, silence)} is called once,
    after the stream is forgotten.
    """

    __slots__ = ("clock", "period", "limit", "expired", "last", "_call")

    def __init__(
        self,
        clock: IReactorTime,
        period: float,
        limit: Callable[[_K], Optional[float]],
        expired: Callable[[_K, float], None],
    ) -> None:
        self.clock = clock
        self.period = period
        self.limit = limit
        self.expired = expired
        self.last: dict[_K, float] = {}
        self._call: Optional[IDelayedCall] = None

    def touch(self, key: _K) -> None:
        """
        Something happened on C{key}: restart its count.
        """
        self.last[key] = self.clock.seconds()
        if self._call is None:
            self._call = self.clock.callLater(self.period, self._check)

    def forget(self, key: _K) -> None:
        """
        Stop watching C{key}.
        """
        self.last.pop(key, None)

    def _check(self) -> None:
        self._call = None
        now = self.clock.seconds()
        silent = []
        for key, last in list(self.last.items()):
            limit = self.limit(key)
            if limit is None:
                self.last[key] = now
            elif now - last >= limit:
                del self.last[key]
                silent.append((key, now - last))
        for key, silence in silent:
            self.expired(key, silence)
        if self.last and self._call is None:
            self._call = self.clock.callLater(self.period, self._check)

    def stop(self) -> None:
        """
        Stop watching everything.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.last.clear()
