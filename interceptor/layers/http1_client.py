# -*- test-case-name: tests.e2e.test_http1,tests.e2e.test_events,tests.e2e.test_streaming -*-
"""
The client side of one HTTP/1 request: L{Http1ClientSide} carries the
commands of its L{interceptor.layers.exchange.HttpExchange} to the client
connection (response heads and bodies in HTTP/1 framing, 100 Continue,
error answers, keep-alive, and the switch after a 101).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from interceptor.layers.contracts import IClientSide, IServerConnection, IServerSide
from interceptor.layers.exchange import HttpExchange
from interceptor.layers.http1_server import Http1ServerConnection
from interceptor.layers.http1_framing import (
    _BODILESS_STATUS,
    _BodyWriter,
    _Framing,
    _prepare_buffered,
    _prepare_streamed,
    _wants_close,
    _write_message,
    error_response,
)
from interceptor.layers.websocket import WebSocketLayer
from interceptor.layers.websocket_handshake import is_websocket_upgrade
from interceptor.model.flow import HTTPFlow
from interceptor.model.http import Request, Response
from interceptor.transport.paced import PACE_ABOVE, PacedWrite

if TYPE_CHECKING:
    from interceptor.layers.http1 import Http1Layer

__all__ = ["Http1ClientSide"]


@implementer(IClientSide)
class Http1ClientSide:
    """
    One request on an HTTP/1 client connection, as its exchange's client
    side.

    @ivar exchange: The L{HttpExchange}.
    @ivar keep_alive: Whether the connection may carry another request.
    @ivar holding_client: Whether the layer holds the client's reads for
        this request (it is pipelined behind another).
    @ivar upgrade_data: Client bytes after an upgrade request, relayed once
        the server has answered.
    """

    can_upgrade = True
    direct_transport: Any = None

    _writer: Optional[_BodyWriter] = None
    """The streamed response's body framing (set by send_response_head, before its data)."""
    _finish_after_paced = False
    """Whether finished() came while the layer still paced this response's body."""

    def __init__(self, layer: Http1Layer, flow: HTTPFlow, keep_alive: bool) -> None:
        self.layer = layer
        self.keep_alive = keep_alive
        self.holding_client = False
        self.upgrade_data: list[bytes] = []
        self.exchange = HttpExchange(layer.master, flow, self)

    def __repr__(self) -> str:
        return f"<Http1ClientSide {self.exchange.flow!r}>"

    @property
    def chunked_ok(self) -> bool:
        """
        Whether the client reads chunked bodies (HTTP/1.1).
        """
        return self.exchange.flow.request.http_version == "HTTP/1.1"

    @property
    def in_turn(self) -> bool:
        """
        Whether this request is being answered (not pipelined behind another).
        """
        streams = self.layer.streams
        return not streams or streams[0] is self

    # -- the server ---------------------------------------------------------

    def idle_server(self, request: Request) -> Optional[IServerSide]:
        """
        The layer's idle connection, if C{request} goes there.
        """
        idle = self.layer.idle_upstream((request.host, request.port), request.scheme)
        return idle.open_exchange(self.exchange) if idle is not None else None

    def connect(self, request: Request) -> Deferred[Optional[IServerSide]]:
        """
        The connection for C{request}: the layer's idle one if it goes
        there, else a new one.
        """
        idle = self.idle_server(request)
        if idle is not None:
            return succeed(idle)
        d = self.layer.get_upstream((request.host, request.port), request.scheme)

        def connected(connection: IServerConnection) -> Optional[IServerSide]:
            if self.exchange.over:
                return None
            return connection.open_exchange(self.exchange)

        return d.addCallback(connected)

    # -- reading the client -------------------------------------------------

    def hold_reads(self) -> None:
        """
        Read no more of the client for now.
        """
        self.layer.gate.hold()

    def release_reads(self) -> None:
        """
        Undo one L{hold_reads}.
        """
        self.layer.gate.release()

    def send_continue(self) -> None:
        """
        The client waits for a 100 before its body.
        """
        self.layer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # -- the response ---------------------------------------------------------

    def _bodiless(self, response: Response) -> bool:
        # A response to HEAD, or a status that never has a body.
        status = response.status_code
        return (
            self.exchange.flow.request.method == "HEAD"
            or status in _BODILESS_STATUS
            or 100 <= status < 200
        )

    def _response_head(self, response: Response) -> bytes:
        if self.keep_alive and self.exchange.flow.request.http_version == "HTTP/1.0":
            if response.headers.get(b"connection") is None:
                response.headers[b"Connection"] = b"keep-alive"
        version = response.http_version
        if version.startswith("HTTP/2"):
            version = "HTTP/1.1"
        reason = response.reason
        try:
            # Read as ISO-8859-1 (as mitmproxy does), so any byte comes back as sent.
            reason_bytes = reason.encode("latin-1")
        except UnicodeEncodeError:
            reason_bytes = reason.encode("utf-8", "surrogateescape")
        first = f"{version} {response.status_code} ".encode("ascii") + reason_bytes
        return first + b"\r\n" + response.headers.to_bytes() + b"\r\n"

    def send_response_head(self, response: Response) -> bool:
        """
        Start a streamed response.
        """
        transform = callable(response.stream)
        framing = (
            _Framing.NONE
            if self._bodiless(response)
            else _prepare_streamed(response, self.chunked_ok, transform)
        )
        if framing == _Framing.CLOSE:
            self.keep_alive = False
        write = self.layer.write
        write(self._response_head(response))
        self._writer = _BodyWriter(write, framing, None)
        unchanged = framing == _Framing.LENGTH and not transform
        if unchanged:
            self.direct_transport = self.layer.transport
        return unchanged

    def send_response_data(self, data: bytes, ack: Optional[Callable[[], None]]) -> None:
        """
        A piece of a streamed response (an HTTP/2 server's C{ack} runs at
        once: its window is paced by this transport's buffer instead).
        """
        cast(_BodyWriter, self._writer).write(data)
        if ack is not None:
            ack()

    def end_response(self, response: Response) -> None:
        """
        The end of a streamed response.
        """
        cast(_BodyWriter, self._writer).finish(response.trailers)

    def send_response(self, response: Response, early: bool) -> None:
        """
        A whole buffered response.
        """
        body = response.raw_content or b""
        framing = _prepare_buffered(response, body, self._bodiless(response), self.chunked_ok)
        if framing == _Framing.CLOSE:
            self.keep_alive = False
        if early and _wants_close(response.headers):
            self.keep_alive = False
        head = self._response_head(response)
        if len(body) > PACE_ABOVE and framing == _Framing.LENGTH:
            # (finished() waits for the last slice: a pipelined response
            # must not be written in between.)
            layer = self.layer
            layer.write(head)
            layer.pacing = PacedWrite(
                layer.write, body, self._paced_out, gate=layer.client_gate(),
                transport=layer.transport,
            )
            layer.pacing.start()
            return
        _write_message(self.layer.write, head, body, framing, response.trailers)

    def _paced_out(self) -> None:
        self.layer.pacing = None
        if self._finish_after_paced:
            self.finished()

    def send_error(self, status: int, reason: str, detail: str, started: bool) -> None:
        """
        Answer with an error, then close (or drop a response that started).
        """
        layer = self.layer
        writer = self._writer
        if started and not layer.closing and writer is not None and writer.framing in (
            _Framing.LENGTH, _Framing.CHUNKED
        ):
            # The client can tell the body is cut short: let what was written
            # go out first (an abort drops what Twisted still buffers).
            layer.close()
            return
        if started or layer.closing:
            layer.abort()
            return
        layer.write_response_head_and_body(error_response(status, reason, detail))
        layer.stream_finished(self, keep_alive=False)

    def abandon(self) -> None:
        """
        Nothing is held for an HTTP/1 client (its transport paces the server).
        """

    def kill(self) -> None:
        """
        Drop the client connection.
        """
        self.layer.abort()

    def finished(self) -> None:
        """
        The exchange is over: the next request, or close.
        """
        if self.layer.pacing is not None:
            self._finish_after_paced = True
            return
        exchange = self.exchange
        keep_alive = self.keep_alive and exchange.request_complete and not self.upgrade_data
        response = exchange.flow.response
        if response is not None and _wants_close(response.headers):
            keep_alive = False
        self.layer.stream_finished(self, keep_alive)

    def flush(self) -> None:
        """
        HTTP/1 writes go out as they are made.
        """

    # -- upgrades (relayed as raw bytes, or as WebSocket) ---------------------

    def switch_protocols(self, server: IServerSide, after: list[bytes]) -> None:
        """
        The server agreed to an upgrade: hand the rest of the connection to
        the WebSocket layer (a WebSocket upgrade, option C{websocket} on),
        or relay it as raw bytes both ways.
        """
        exchange = self.exchange
        layer = self.layer
        response = exchange.flow.response
        if response is None or not isinstance(server, Http1ServerConnection):
            # (Not reached: a switch follows an HTTP/1 server's 101 response.)
            raise RuntimeError(f"{self!r}: switch_protocols without a 101 from an HTTP/1 server")
        rest = b"".join(after)
        if not server.connected:
            if not rest:
                exchange.fail("the server closed the connection after its 101", 502)
                return
            # It sent its last bytes and closed while the hooks ran: the
            # client still gets the switch and those bytes, then the close.
            layer.write(self._response_head(response) + rest)
            layer.close()
            exchange.switched()
            layer.master.addons.trigger("response", exchange.flow)
            return
        response.timestamp_end = time.time()
        layer.write(self._response_head(response))
        # Requests pipelined behind the upgrade will never be answered.
        for other in list(layer.streams):
            if other is not self:
                if other.holding_client:
                    other.holding_client = False
                    layer.gate.release()
                other.exchange.client_failed("the connection switched protocols before this request")
        layer.streams.clear()
        layer.watchdog.stop()
        exchange.switched()
        if exchange.websocket and is_websocket_upgrade(response.headers):
            websocket = WebSocketLayer(exchange.flow, layer, server)
            layer.hand_over(websocket.client_data_received, websocket.client_connection_lost)
            server.relay_to(websocket.upstream_sink)
            websocket.start(rest, self.upgrade_data)
            return
        if rest:
            layer.transport.write(rest)
        server_transport = server.server_transport
        for data in self.upgrade_data:
            server_transport.write(data)
        layer.hand_over(server_transport.write)
        server.relay_to(layer.transport)
        layer.master.addons.trigger("response", exchange.flow)
