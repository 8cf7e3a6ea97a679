"""
The contracts between the proxy's layers, as zope interfaces.

Three seams:

- L{ILayer}: what the root protocol (L{interceptor.proxy.ProxyProtocol})
  asks of the layer in charge of a client connection's bytes.  The root
  holds exactly one current layer (C{root.layer}) and hands it every read;
  changing it is the one switch, L{interceptor.proxy.ProxyProtocol.switch_layer}.
- L{IClientSide} and L{IServerSide}: the two ends of one HTTP exchange
  (L{interceptor.layers.exchange.HttpExchange}).  The exchange is the same
  state machine whatever the framing; HTTP/1 and HTTP/2 each provide the
  two sides, translating bytes or frames to the exchange's neutral events
  and carrying out its neutral commands.
- L{IServerOwner}: what a connection to a server needs from the client
  layer it serves (pairing for backpressure, and being forgotten when it
  closes); an L{IServerReplacer} also gives an HTTP/2 connection that the
  server is ending (GOAWAY) a successor for the exchanges it cannot carry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from interceptor.layers.exchange import HttpExchange
    from interceptor.layers.http2_server import H2ServerConnection
    from interceptor.model.http import Request, Response

__all__ = [
    "ILayer",
    "IHalfCloseLayer",
    "IEagerLayer",
    "IClientSide",
    "IServerSide",
    "IServerConnection",
    "IServerOwner",
    "IServerReplacer",
]


class ILayer(Interface):
    """
    A layer in charge of a client connection's bytes.
    """

    root = Attribute("The root protocol of the client connection.")
    layer = Attribute(
        "Set by a next_layer hook to substitute another layer (None by default)."
    )

    def start() -> None:
        """
        The layer is now in charge of the connection.
        """

    def data_received(data: bytes) -> None:
        """
        Bytes from the client.
        """

    def connection_lost(reason: Failure) -> None:
        """
        The client connection is gone.
        """


class IHalfCloseLayer(ILayer):
    """
    A layer that relays the client's half-close instead of closing.
    """

    def read_connection_lost() -> None:
        """
        The client shut its writing half.
        """


class IEagerLayer(ILayer):
    """
    A layer that can open its server connection before the first request
    (option C{connection_strategy=eager}).
    """

    def connect_eagerly() -> None:
        """
        Open the connection to the layer's known target now.
        """


class IClientSide(Interface):
    """
    The client's end of one HTTP exchange, in its framing (one HTTP/1
    request on a connection, or one HTTP/2 stream).

    The exchange feeds nothing to it but these commands; the framing feeds
    the exchange the client's events (C{start}, C{request_data},
    C{request_end}, C{client_failed}).
    """

    can_upgrade = Attribute("Whether the request may switch protocols (HTTP/1 only).")
    chunked_ok = Attribute("Whether the client reads a body without a length (HTTP/1.1, HTTP/2).")
    direct_transport = Attribute(
        "The plain transport response bytes may be written to directly, or None."
    )
    in_turn = Attribute(
        "Whether the client is being answered now (HTTP/1: not pipelined behind another)."
    )

    def connect(request: Request) -> Deferred[Optional[IServerSide]]:
        """
        A server side for C{request}: a Deferred firing with an
        L{IServerSide} (a connection reused, or opened after
        C{serverconnect}), or with None when the exchange ended meanwhile,
        or failing with the reason.
        """

    def idle_server(request: Request) -> Optional[IServerSide]:
        """
        A server side ready at once for C{request} (a kept-alive connection
        to where it goes, now carrying this exchange), or None: then
        L{connect}.
        """

    def hold_reads() -> None:
        """
        Read no more of the client until the matching L{release_reads}.
        """

    def release_reads() -> None:
        """
        Undo one L{hold_reads}.
        """

    def send_continue() -> None:
        """
        Tell a client waiting on C{Expect: 100-continue} to send its body.
        """

    def send_response_head(response: Response) -> bool:
        """
        Start a streamed response: its head, the body follows.

        @return: Whether the body goes to the client byte for byte, framed
            by its Content-Length (the server side may then count it
            through past its parser).
        """

    def send_response_data(data: bytes, ack: Optional[Callable[[], None]]) -> None:
        """
        A piece of a streamed response; C{ack} (a callable, or None) runs
        once the piece has left the proxy, or little enough waits here.
        """

    def end_response(response: Response) -> None:
        """
        The streamed response is complete (its trailers are on it).
        """

    def send_response(response: Response, early: bool) -> None:
        """
        Send a whole buffered response (C{early}: an addon's answer sent
        before the request went upstream).
        """

    def send_error(status: int, reason: str, detail: str, started: bool) -> None:
        """
        Answer with an error the proxy made, or break off a response that
        has C{started}; the exchange is over.
        """

    def abandon() -> None:
        """
        The exchange broke off: give back what is held for data that will
        never be sent (credits of the server's window).
        """

    def kill() -> None:
        """
        An addon killed the flow: drop the client's stream or connection.
        """

    def switch_protocols(server: IServerSide, after: list[bytes]) -> None:
        """
        The server agreed to an upgrade: hand both connections over
        (C{after}: the server's bytes that followed its 101).
        """

    def finished() -> None:
        """
        The exchange is over on this side (HTTP/1: start the next request,
        or close, as keep-alive allows).
        """

    def flush() -> None:
        """
        Send what the framing has queued (after a hook's Deferred fired).
        """


class IServerSide(Interface):
    """
    The server's end of one HTTP exchange: an HTTP/1 connection carrying
    it, or a stream of an HTTP/2 connection.

    It feeds the exchange C{response_head}, C{response_data},
    C{response_end}, C{fail} and C{switch_protocols}.
    """

    server_conn = Attribute("The ServerConnection addons see.")
    read_gate = Attribute("The ReadGate holding this server's reads, or None (HTTP/2 uses windows).")

    def send_request(request: Request, body: bytes) -> None:
        """
        Send a whole buffered request.
        """

    def send_request_head(request: Request) -> None:
        """
        Start a streamed request: its head, the body follows.
        """

    def send_request_data(data: bytes, ack: Callable[[], None]) -> None:
        """
        A piece of a streamed request body; C{ack} (a callable) runs once
        the server has taken it, or little enough waits here.
        """

    def end_request(request: Request) -> None:
        """
        The streamed request is complete (its trailers are on it).
        """

    def relay_body(direct_to: object) -> None:
        """
        The response's counted body goes on unchanged: the framing may
        count it through past its parser, and write it straight to
        C{direct_to} (a transport) when given and possible.
        """

    def done(broken: bool) -> None:
        """
        The exchange is over on this side; C{broken}: cancel it (reset the
        stream, or drop the connection).
        """


class IServerConnection(Interface):
    """
    A connection from the proxy to a server (HTTP/1, or HTTP/2 carrying
    many exchanges), kept by a client layer for reuse.
    """

    server_conn = Attribute("The ServerConnection addons see.")
    address = Attribute("The (host, port) it is connected to.")
    reuse_key = Attribute(
        'How it reaches its server: ("https", sni) or ("http", None); a request '
        "reuses it only the same way."
    )
    client_gate = Attribute(
        "The ReadGate registered as the producer of the client's transport (its "
        "pauses say the client's write buffer is full), or None."
    )

    def idle() -> bool:
        """
        Whether it is open and can carry a new exchange now.
        """

    def open_exchange(exchange: HttpExchange) -> IServerSide:
        """
        Carry C{exchange}: its L{IServerSide} on this connection.
        """

    def release() -> None:
        """
        The client layer closes: stop pacing it, and close unless an
        exchange still uses the connection.
        """

    def close() -> None:
        """
        Close once what is written has been sent.
        """

    def abort() -> None:
        """
        Drop the connection now.
        """


class IServerOwner(Interface):
    """
    What a server connection needs of the client layer it serves.
    """

    master = Attribute("The Master.")
    client_conn = Attribute("The ClientConnection served.")
    gate = Attribute("The client's ReadGate.")
    pairing_transport = Attribute(
        "The client transport a server connection pairs with for "
        "backpressure (HTTP/1), or None (HTTP/2 paces by windows)."
    )

    def server_lost(server: IServerConnection) -> None:
        """
        C{server}'s connection closed: forget it.
        """


class IServerReplacer(IServerOwner):
    """
    A client layer that can give an HTTP/2 server connection a successor.
    """

    def replace_server(server: IServerConnection) -> Deferred[Optional[H2ServerConnection]]:
        """
        The server is ending C{server} (GOAWAY): the HTTP/2 connection to
        the same server, reached the same way, that carries this layer's
        next exchanges, opened (after C{serverconnect}) if need be.  Fires
        with None when there is none: the layer is closing, or the server
        no longer negotiates h2.
        """
