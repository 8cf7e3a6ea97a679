# -*- test-case-name: tests.e2e.test_websocket -*-
"""
The autobahn WebSocket peers behind L{interceptor.testing}'s
C{start_websocket_server} and C{connect_websocket}.  Only those helpers
import this module, so suites that do not use them never import autobahn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, cast

from autobahn.twisted.websocket import (
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.compress import (
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
    PerMessageDeflateResponse,
    PerMessageDeflateResponseAccept,
)
from autobahn.websocket.types import ConnectionRequest
from twisted.internet.defer import Deferred, DeferredQueue, succeed
from twisted.internet.interfaces import ITCPTransport, ITransport
from twisted.python.failure import Failure

from interceptor.testing import WebSocketClosed, WebSocketReceived, _bounded

if TYPE_CHECKING:
    from autobahn.websocket.protocol import WebSocketProtocol
    from twisted.internet.protocol import Protocol

    class _PeerBase(Protocol, WebSocketProtocol):
        """
        (For the type checker: the autobahn protocol a peer is mixed into.)
        """

else:
    _PeerBase = object


def tcp_transport(transport: Optional[ITransport]) -> ITCPTransport:
    """
    A peer's transport, as what it is: TCP (or TLS over TCP).  (Twisted types
    a protocol's transport as an ITransport, or None before it connects.)
    """
    return cast(ITCPTransport, transport)


class WebSocketPeer(_PeerBase):
    """
    What L{WebSocketTestClient} and L{WebSocketTestServerProtocol} share:
    received messages, pongs and the close kept for the test to await.
    (A mixin: each comes before an autobahn protocol class.)
    """

    def _init_peer(self) -> None:
        self.received: list[WebSocketReceived] = []
        self._messages: DeferredQueue[WebSocketReceived] = DeferredQueue()
        self._pongs: DeferredQueue[bytes] = DeferredQueue()
        self.opened: Deferred[WebSocketPeer] = Deferred()
        self.closed: Deferred[WebSocketClosed] = Deferred()
        self.close_info: Optional[WebSocketClosed] = None
        self.echo = False
        self._frames = 0

    def onOpen(self) -> None:
        """
        autobahn: the handshake is done.
        """
        if not self.opened.called:
            self.opened.callback(self)

    def onMessageFrameBegin(self, length: int) -> None:
        """
        autobahn: a frame begins (counted, then handled as usual).
        """
        self._frames += 1
        super().onMessageFrameBegin(length)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        autobahn: a whole message arrived; keep it (and echo it when asked).
        """
        received = WebSocketReceived(payload, isBinary, self._frames)
        self._frames = 0
        self.received.append(received)
        self._messages.put(received)
        if self.echo:
            self.sendMessage(payload, isBinary)

    def onPong(self, payload: bytes) -> None:
        """
        autobahn: a Pong arrived.
        """
        self._pongs.put(payload)

    def onClose(self, wasClean: bool, code: Optional[int], reason: Optional[str]) -> None:
        """
        autobahn: the connection ended.
        """
        self.close_info = WebSocketClosed(wasClean, code, reason)
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"WebSocket handshake failed: {reason}"))
        if not self.closed.called:
            self.closed.callback(self.close_info)

    def send_text(self, text: str, fragment_size: Optional[int] = None) -> None:
        """
        Send a TEXT message (in frames of C{fragment_size} bytes, if given).
        """
        self.sendMessage(text.encode("utf-8"), False, fragmentSize=fragment_size)

    def send_binary(self, data: bytes, fragment_size: Optional[int] = None) -> None:
        """
        Send a BINARY message (in frames of C{fragment_size} bytes, if given).
        """
        self.sendMessage(data, True, fragmentSize=fragment_size)

    def next_message(self, timeout: float = 5.0) -> Deferred[WebSocketReceived]:
        """
        A Deferred firing with the next L{WebSocketReceived} (failing with
        C{TimeoutError} after C{timeout} seconds).
        """
        return _bounded(self._messages.get(), timeout)

    def ping(self, payload: bytes = b"") -> None:
        """
        Send a Ping.
        """
        self.sendPing(payload)

    def next_pong(self, timeout: float = 5.0) -> Deferred[bytes]:
        """
        A Deferred firing with the payload of the next Pong received.
        """
        return _bounded(self._pongs.get(), timeout)

    def close(self, code: Optional[int] = 1000, reason: Optional[str] = None,
              timeout: float = 5.0) -> Deferred[WebSocketClosed]:
        """
        Start the close handshake; a Deferred firing with the
        L{WebSocketClosed} once the connection has ended.
        """
        self.sendClose(code, reason)
        return self.wait_closed(timeout)

    def drop(self) -> None:
        """
        Drop the TCP connection without a Close frame.
        """
        tcp_transport(self.transport).abortConnection()

    def wait_closed(self, timeout: float = 5.0) -> Deferred[WebSocketClosed]:
        """
        A Deferred firing with the L{WebSocketClosed} once the connection
        has ended (at once if it has).
        """
        if self.close_info is not None:
            return succeed(self.close_info)
        waiting: Deferred[WebSocketClosed] = Deferred()

        def relay(result: WebSocketClosed | Failure) -> WebSocketClosed | Failure:
            if not waiting.called:
                waiting.callback(result)
            return result

        self.closed.addBoth(relay)
        return _bounded(waiting, timeout)


# (autobahn's own two bases disagree on the types of peer and
# _transport_details, which mypy reports at each class that joins them.)


class WebSocketTestClient(WebSocketPeer, WebSocketClientProtocol):  # type: ignore[misc]
    """
    An autobahn client protocol recording what it receives.
    """

    def __init__(self) -> None:
        WebSocketClientProtocol.__init__(self)
        self._init_peer()


class WebSocketTestServerProtocol(WebSocketPeer, WebSocketServerProtocol):  # type: ignore[misc]
    """
    An autobahn server protocol recording what it receives; it echoes
    each message when its factory's C{echo} is set.
    """

    def __init__(self) -> None:
        WebSocketServerProtocol.__init__(self)
        self._init_peer()

    def onConnect(self, request: ConnectionRequest) -> None:
        """
        autobahn: a handshake request; kept as C{self.request}.
        """
        self.request = request
        self.echo = self.factory.echo
        return None

    def onOpen(self) -> None:
        """
        autobahn: the handshake is done; the test may now pick it up.
        """
        WebSocketPeer.onOpen(self)
        self.factory.opened.put(self)

    def connectionMade(self) -> None:
        """
        Track the connection so the server can close it at cleanup.
        """
        self.factory.connections.append(self)
        WebSocketServerProtocol.connectionMade(self)

    def connectionLost(self, reason: Any = None) -> None:
        """
        Forget the connection.
        """
        WebSocketServerProtocol.connectionLost(self, reason)
        self.factory.lost(self)


class WebSocketTestServerFactory(WebSocketServerFactory):
    """
    Makes the server's L{WebSocketTestServerProtocol}s and keeps track of
    them.

    @ivar echo: Whether connections opened from now on echo messages.
    @ivar opened: The connections whose handshake is done, for the test
        to pick up.
    @ivar connections: The connections currently open.
    """

    protocol = WebSocketTestServerProtocol

    def __init__(self, echo: bool) -> None:
        WebSocketServerFactory.__init__(self)
        self.echo = echo
        self.opened: DeferredQueue[WebSocketTestServerProtocol] = DeferredQueue()
        self.connections: list[WebSocketTestServerProtocol] = []

    def lost(self, protocol: WebSocketTestServerProtocol) -> None:
        """
        Forget a connection that has ended.
        """
        self.connections.remove(protocol)


def deflate_server_options() -> dict[str, Any]:
    """
    autobahn options accepting a C{permessage-deflate} offer.
    """

    def accept(offers: list[Any]) -> Optional[PerMessageDeflateOfferAccept]:
        for offer in offers:
            if isinstance(offer, PerMessageDeflateOffer):
                return PerMessageDeflateOfferAccept(offer)
        return None

    return {"perMessageCompressionAccept": accept}


def deflate_client_options() -> dict[str, Any]:
    """
    autobahn options offering C{permessage-deflate}.
    """

    def accept(response: Any) -> Optional[PerMessageDeflateResponseAccept]:
        if isinstance(response, PerMessageDeflateResponse):
            return PerMessageDeflateResponseAccept(response)
        return None

    return {
        "perMessageCompressionOffers": [PerMessageDeflateOffer()],
        "perMessageCompressionAccept": accept,
    }
