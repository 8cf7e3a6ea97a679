# -*- test-case-name: tests.e2e.test_http1,tests.e2e.test_http2 -*-
"""
What every HTTP exchange does whatever the protocol on either side: the
steps shared by L{interceptor.layers.http1_stream.Http1Stream} and
L{interceptor.layers.http2.H2Stream}.

A subclass keeps C{flow}, C{request_chunks}, C{request_done} and
C{_waiting_for_body}, and provides C{_trigger(event, then)}, C{_kill()},
C{_send_early_response()}, C{_connect(then)} and C{_send_buffered_request}.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, succeed

__all__ = ["Exchange", "wants_streaming"]


def wants_streaming(message: Any, length: Optional[int], limit: Optional[int]) -> bool:
    """
    Whether C{message}'s body is streamed: an addon set C{message.stream},
    or its announced C{length} is over C{stream_large_bodies} (C{limit}).
    Marks the message as streamed when the size decided it.
    """
    if message.stream:
        return True
    if limit is not None and length is not None and length > limit:
        message.stream = True
        return True
    return False


class Exchange:
    """
    The request-side steps shared by the HTTP/1 and HTTP/2 streams.
    """

    flow: Any
    master: Any
    request_chunks: list[bytes]
    request_done: bool
    _waiting_for_body: Optional[Callable[[], None]]
    _running: Optional[Deferred] = None
    """The hooks of an event still running for this flow, if any."""
    announced = True
    """Whether addons have seen this flow (its first event has fired)."""

    def _fire_error(self) -> Deferred:
        """
        Fire C{error} for the flow once hooks still running for it are done,
        so that no addon sees an event after C{error}.
        """
        trigger = self.master.addons.trigger
        if not self.announced:
            # A request answered before its turn came (pipelined behind
            # another): addons never saw it, so no error for it either.
            return succeed(None)
        running = self._running
        if running is None:
            return trigger("error", self.flow)
        fired: Deferred = Deferred()

        def after(_: Any) -> None:
            trigger("error", self.flow).chainDeferred(fired)

        running.addBoth(after)
        return fired

    def _trigger(self, event: str, then: Callable[[], None]) -> None:
        raise NotImplementedError

    def _kill(self) -> None:
        raise NotImplementedError

    def _send_early_response(self) -> None:
        raise NotImplementedError

    def _connect(self, then: Callable[..., None]) -> None:
        raise NotImplementedError

    def _send_buffered_request(self, *upstream: Any) -> None:
        raise NotImplementedError

    def _after_request(self) -> None:
        """
        The C{request} hooks are done: drop a killed flow, answer with the
        response an addon set, or send the request upstream.
        """
        flow = self.flow
        if flow.killed:
            return self._kill()
        if flow.response is not None:
            return self._send_early_response()
        self._connect(self._send_buffered_request)

    def _when_request_read(self, then: Callable[[], None]) -> None:
        """
        Call C{then} once the whole request body has arrived.
        """
        if self.request_done:
            then()
        else:
            self._waiting_for_body = then

    def _request_read(self) -> None:
        """
        The buffered request is complete: store its body and fire C{request}.
        """
        self.flow.request.load_body(b"".join(self.request_chunks))
        self.request_chunks = []
        self._trigger("request", self._after_request)
