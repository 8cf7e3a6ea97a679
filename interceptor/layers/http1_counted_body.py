# -*- test-case-name: tests.e2e.test_bodyrelay,tests.e2e.test_http1 -*-
"""
The rest of a response body of known length, counted through to its
exchange instead of parsed (L{CountedBody}).

An exchange that takes a Content-Length body as it is asks the HTTP/1
server connection to relay it (C{relay_body}).  Once the piece being parsed
is done, the connection's parser steps aside until the count is reached:
the body's bytes go to the exchange as they are read, in bigger reads, or
between plain sockets straight to the client through a L{BodyRelay}
(L{interceptor.transport.fast.bodyrelay}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from interceptor.layers.http1_framing import (
    _BULK_BUFFER,
    _BULK_THRESHOLD,
    _DEFAULT_BUFFER,
    _content_length,
)
from interceptor.transport.fast.bodyrelay import BodyRelay

if TYPE_CHECKING:
    from interceptor.layers.exchange import HttpExchange

__all__ = ["CountedBody"]


class CountedBody:
    """
    The counted-through bodies of one server connection's responses.

    @ivar wanted: Whether the exchange asked for its body as it is
        (counting starts once the piece being parsed is done).
    @ivar left: How much of the body is still to come; 0 while the
        connection's parser reads.
    @ivar relay: The L{BodyRelay} moving the body socket to socket, while
        one does.
    """

    __slots__ = ("wanted", "left", "relay", "_direct_to", "_keep_alive", "_raw", "_moved", "_through")

    def __init__(self, moved: Callable[[int], None], through: Callable[[bool, bytes], None]) -> None:
        """
        @param moved: Called with the count of each batch of bytes a relay
            moved (past the connection's C{dataReceived}).
        @param through: Called once the whole body is through, with whether
            the connection stays open after it and the bytes that followed
            it.
        """
        self.wanted = False
        self.left = 0
        self.relay: Optional[BodyRelay] = None
        self._direct_to: Any = None
        self._keep_alive = True
        self._raw: Any = None
        self._moved = moved
        self._through = through

    def want(self, direct_to: Any) -> None:
        """
        The exchange takes the body as it is: count the rest through once
        the current piece is parsed, straight to C{direct_to} (the client's
        transport) when given and possible.
        """
        self.wanted = True
        self._direct_to = direct_to

    def start(self, exchange: Optional[HttpExchange], parser: Any, transport: Any, raw: Any) -> bool:
        """
        The piece being parsed is done: count the rest of C{exchange}'s
        response body through, if some of it is still to come.

        @param parser: The connection's httptools parser (it tells whether
            the connection stays open after this response).
        @param transport: The connection's transport.
        @param raw: The TCP connection itself (beneath TLS, when there is
            TLS): its C{bufferSize} is how much one read takes.
        @return: Whether counting started: the parser is then done with
            this response, and the next one needs a fresh parser.
        """
        self.wanted = False
        response = exchange.flow.response if exchange is not None else None
        length = _content_length(response.headers) if response is not None else None
        if exchange is None or length is None or exchange.response_size >= length:
            return False
        self.left = length - exchange.response_size
        self._keep_alive = parser.should_keep_alive()
        self._raw = raw
        direct_to = self._direct_to
        if (
            direct_to is not None
            and self.left >= _BULK_THRESHOLD
            and BodyRelay.possible(transport, direct_to)
        ):
            # Plain TCP on both sides: socket to socket, past Twisted's
            # read and write buffers.
            self.relay = BodyRelay(transport, direct_to, self.left, self._relayed, self._moved)
            self.relay.start()
            return True
        raw.bufferSize = _BULK_BUFFER
        return True

    def received(self, exchange: HttpExchange, data: bytes) -> None:
        """
        Bytes the connection read while counting: the body's go to
        C{exchange}; past its end, the rest goes back with C{through}.
        """
        left = self.left
        if len(data) < left:
            self.left = left - len(data)
            exchange.response_data(data)
            return
        self.left = 0
        exchange.response_data(data[:left] if len(data) > left else data)
        self._raw.bufferSize = _DEFAULT_BUFFER
        self._through(self._keep_alive, data[left:])

    def _relayed(self) -> None:
        self.relay = None
        self.left = 0
        self._through(self._keep_alive, b"")

    def abandon(self) -> None:
        """
        The connection closed: a relay still running lets go of both
        transports.
        """
        relay, self.relay = self.relay, None
        if relay is not None:
            relay.abandon()
