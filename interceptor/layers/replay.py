# -*- test-case-name: tests.e2e.test_replay -*-
"""
Client replay: a recorded request sent to its server again, through the
same L{HttpExchange} (and so the same addon events) as a live one, with no
client connection behind it::

    replay = ReplayClientSide(master, flow)    # flow.is_replay = "request"
    replay.run().addCallback(lambda flow: print(flow.response or flow.error))

L{ReplayClientSide} is the exchange's client side: it hands the recorded
request over as a client framing would (head, body, end) and takes the
answer without sending it anywhere.  Each replayed request gets a server
connection of its own (L{ReplayOwner}), which speaks HTTP/2 when the server
negotiates it, and is closed once the response is complete.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Optional

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from interceptor.layers.contracts import (
    IClientSide,
    IServerConnection,
    IServerReplacer,
    IServerSide,
)
from interceptor.layers.exchange import HttpExchange
from interceptor.layers.http1_server import Http1ServerConnection
from interceptor.layers.http2_server import H2ServerConnection, connect_upstream
from interceptor.model.connection import ClientConnection, ServerConnection
from interceptor.model.flow import HTTPFlow
from interceptor.model.http import Request, Response
from interceptor.tls.handshake import server_name_for
from interceptor.transport.modes import parse_mode

if TYPE_CHECKING:
    from interceptor.core.master import Master

__all__ = ["ReplayClientSide", "ReplayOwner", "prepare_for_replay"]


def prepare_for_replay(flow: HTTPFlow) -> None:
    """
    Make a recorded flow ready to be sent again, as mitmproxy does: no
    response, no error, C{is_replay = "request"}, live while it runs.
    """
    flow.is_replay = "request"
    flow.response = None
    flow.error = None
    flow.killed = False
    flow.live = True
    flow.server_conn = None
    request = flow.request
    request.is_replay = True
    request.timestamp_start = request.timestamp_end = time.time()
    client = flow.client_conn
    if client.timestamp_end is not None:
        # (A loaded flow's client is gone: a replay is a connection of its own.)
        flow.client_conn = ClientConnection(client.address or ("", 0))


@implementer(IServerReplacer)
class ReplayOwner:
    """
    What the server connection of one replayed request needs of the
    client layer it serves: there is no client transport to pair with, and
    nobody to move HTTP/2 streams to when the server ends the connection.
    """

    pairing_transport = None
    gate = None

    def __init__(self, master: Master, client_conn: ClientConnection) -> None:
        self.master = master
        self.client_conn = client_conn
        self.connections: list[IServerConnection] = []

    def server_lost(self, server: IServerConnection) -> None:
        """
        Forget C{server}.
        """
        if server in self.connections:
            self.connections.remove(server)

    def replace_server(self, server: IServerConnection) -> Deferred[Optional[H2ServerConnection]]:
        """
        None: a replayed request has one connection of its own.
        """
        return succeed(None)

    def open(self, request: Request) -> Deferred[IServerConnection]:
        """
        A new connection for C{request} (after C{serverconnect}): to its
        host, or to the upstream proxy for plain HTTP in upstream mode; TLS
        for https, offering h2 when the C{http2} option is on.
        """
        address = (request.host, request.port)
        mode = parse_mode(self.master.options.mode)
        via_proxy = mode.kind == "upstream" and request.scheme == "http"
        if via_proxy and mode.address is not None:
            address = mode.address
        tls = None
        if request.scheme == "https":
            offers = [b"h2", b"http/1.1"] if self.master.options.http2 else [b"http/1.1"]
            tls = (server_name_for(request.host), offers)
        upstream = Http1ServerConnection(self, ServerConnection(address), tls=tls, single_use=True)
        upstream.absolute_form = via_proxy

        def connected(connection: IServerConnection) -> IServerConnection:
            self.connections.append(connection)
            return connection

        return connect_upstream(self, upstream).addCallback(connected)

    def close(self) -> None:
        """
        Close the connections still open (once the response is complete).
        """
        for connection in list(self.connections):
            connection.close()


@implementer(IClientSide)
class ReplayClientSide:
    """
    The client side of one replayed request.

    @ivar exchange: The L{HttpExchange} the request runs through.
    @ivar done: Fires with the flow once the exchange is over (a response,
        an error, or killed).
    """

    can_upgrade = False
    chunked_ok = True
    direct_transport = None
    in_turn = True

    def __init__(self, master: Master, flow: HTTPFlow) -> None:
        self.owner = ReplayOwner(master, flow.client_conn)
        self.exchange = HttpExchange(master, flow, self)
        self.done: Deferred[HTTPFlow] = Deferred()

    def run(self) -> Deferred[HTTPFlow]:
        """
        Send the request: its head, its body, its end, as a client would.

        @return: L{done}.
        """
        exchange = self.exchange
        body = exchange.flow.request.raw_content
        exchange.start()
        if body:
            exchange.request_data(body)
        exchange.request_end()
        return self.done

    def _over(self) -> None:
        self.owner.close()
        if not self.done.called:
            self.done.callback(self.exchange.flow)

    # -- the server ---------------------------------------------------------

    def idle_server(self, request: Request) -> Optional[IServerSide]:
        """
        None: each replayed request opens its own connection.
        """
        return None

    def connect(self, request: Request) -> Deferred[Optional[IServerSide]]:
        """
        A connection of this replay's own for C{request}.
        """

        def connected(connection: IServerConnection) -> Optional[IServerSide]:
            if self.exchange.over:
                connection.close()
                return None
            return connection.open_exchange(self.exchange)

        return self.owner.open(request).addCallback(connected)

    # -- what a client would be sent: nothing, the flow records it ----------

    def hold_reads(self) -> None:
        """
        Nothing to hold: the whole request is already here.
        """

    def release_reads(self) -> None:
        """
        Nothing to release.
        """

    def send_continue(self) -> None:
        """
        The body is sent without waiting.
        """

    def send_response_head(self, response: Response) -> bool:
        """
        A streamed response starts (its body is not kept).
        """
        return False

    def send_response_data(self, data: bytes, ack: Optional[Callable[[], None]]) -> None:
        """
        A piece of a streamed response: taken at once.
        """
        if ack is not None:
            ack()

    def end_response(self, response: Response) -> None:
        """
        The streamed response is complete.
        """

    def send_response(self, response: Response, early: bool) -> None:
        """
        The whole response is on the flow.
        """

    def send_error(self, status: int, reason: str, detail: str, started: bool) -> None:
        """
        The replay failed (the flow has its error): it is over.
        """
        self._over()

    def abandon(self) -> None:
        """
        Nothing is held for data that will not be sent.
        """

    def kill(self) -> None:
        """
        An addon killed the replayed flow: it is over.
        """
        self._over()

    def switch_protocols(self, server: IServerSide, after: list[bytes]) -> None:
        """
        The server agreed to an upgrade the replayed request asked for (a
        recorded WebSocket handshake sent again): the flow keeps the 101,
        and with no client to hand the connection to, it is closed.
        """
        self.exchange.switched()
        server.done(True)
        self._over()

    def finished(self) -> None:
        """
        The response is complete.
        """
        self._over()

    def flush(self) -> None:
        """
        Nothing is queued.
        """
